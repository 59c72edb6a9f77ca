// The signing policy: limits every signing request must meet, read from a policy file (format in
// policies/signing.policy, the shipped default). Pure: parsing is a function of the text, the
// decision a function of the policy and the request's facts.
//
// | rule                  | denies when                                                 |
// |-----------------------|-------------------------------------------------------------|
// | document-too-large    | the document is larger than maxDocumentBytes                |
// | minimum-level         | the level asked for is below minimumLevel (B-B < B-T < B-LT) |
// | rsa-key-too-small     | an RSA key has fewer than rsaMinBits                        |
// | ec-key-too-small      | an EC key is on a curve smaller than ecMinBits              |
// | hash-not-allowed      | the credential's hash is not in hashes                      |
// | appearance-override   | a request changes an appearance setting the policy keeps    |
// | (allowed)             | none of the above                                           |
// The per-principal rate (ratePerMinute) is enforced by the service, which keeps the counts.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "kyso/hsm/result.h"
#include "kyso/policies/authorization.h"

namespace kyso::policies {

// The [validation] section: what a signature must meet to pass (see validation.h).
struct ValidationRules {
    std::string name = "default";  // reported as the report's "policy"
    std::string maxModifications =
        "FORM_FILLING";  // NONE, SIGNATURES_ONLY, FORM_FILLING, ANNOTATIONS
    std::vector<std::string> digests = {"SHA-256", "SHA-384", "SHA-512"};
    unsigned rsaMinBits = 2048;
    unsigned ecMinBits = 256;
    long ocspMaxAgeSeconds = 7 * 86400;  // an older OCSP response is not fresh
    std::string trustAnchors;  // PEM file or directory; empty: kyso.conf [validation] trustAnchors
};

// The [appearance] section: what a signing request may change of the appearance configured for
// its credential. The text is not in the shipped list: a request that could write any name or
// title under an officer's signature image could make it say what the officer is not.
struct AppearanceRules {
    std::set<std::string> requestOverrides = {"layout", "fontSize"};  // layout text fontSize image
};

struct SigningPolicy {
    std::uint64_t maxDocumentBytes = 100ull * 1024 * 1024;
    std::string minimumLevel = "B-B";
    unsigned rsaMinBits = 2048;
    unsigned ecMinBits = 256;
    std::set<std::string> hashes = {"SHA-256", "SHA-384", "SHA-512"};
    unsigned ratePerMinute = 0;  // signing requests per principal and minute; 0: no limit
    // [operations] and [rule.NAME]; empty: the shipped table (authorizationOf()).
    AuthorizationPolicy authorization;
    ValidationRules validation;
    AppearanceRules appearance;
};

// The rules a policy uses: its own, or the shipped ones when it has none.
const AuthorizationPolicy& authorizationOf(const SigningPolicy& policy);

// The text of the shipped policies/signing.policy (built in).
const std::string& shippedPolicyText();

// Parses a policy file's text; `name` is used in errors ("policy.invalid": NAME:LINE: why).
// Unknown sections or keys and bad values are errors.
Result<SigningPolicy> parseSigningPolicy(const std::string& text, const std::string& name);

struct SigningRequestFacts {
    std::uint64_t documentBytes = 0;
    std::string level;    // B-B, B-T, B-LT
    std::string keyType;  // "RSA", "EC"
    unsigned keyBits = 0;
    std::string hash;  // "SHA-256", ...
};

Decision checkSigningRequest(const SigningPolicy& policy, const SigningRequestFacts& request);

// The appearance settings a request overrides (names as in AppearanceRules): denied by rule
// appearance-override when one is not in requestOverrides.
Decision checkAppearanceOverrides(const SigningPolicy& policy,
                                  const std::set<std::string>& overrides);

}  // namespace kyso::policies
