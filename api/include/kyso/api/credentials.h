// The configured credentials, resolved on the token at start: each key found by its PKCS#11 URI,
// each certificate read from its PEM file and checked against the key.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kyso/api/config.h"
#include "kyso/hsm/credential.h"
#include "kyso/hsm/token.h"
#include "kyso/policies/authorization.h"

namespace kyso::api {

class CredentialRegistry {
  public:
    // Errors: "config.invalid" (bad URI, unreadable or mismatched certificate), "key.not_found",
    // and the token's errors.
    static Result<CredentialRegistry> load(const Config& cfg, hsm::Token& token);

    const hsm::Credential* find(const std::string& id) const;
    policies::CredentialFacts facts(const std::string& id) const;
    const std::vector<std::string>& ids() const { return m_ids; }

  private:
    std::map<std::string, hsm::Credential> m_creds;
    std::map<std::string, policies::CredentialFacts> m_facts;
    std::vector<std::string> m_ids;
};

// A credential for a key given as a PKCS#11 URI: the key and its certificate from the token
// (same label or id), the chain from `chainPem` if given. For `kyso sign --key pkcs11:...`.
Result<hsm::Credential> credentialFromUri(const std::string& uri, hsm::Token& token,
                                          const std::string& chainPem);

// The credential for `keyOrId`: a configured id, or a PKCS#11 URI.
Result<hsm::Credential> resolveCredential(const Config& cfg, hsm::Token& token,
                                          const std::string& keyOrId);

// "RSA-2048", "EC-P256", ...
std::string keyAlgorithmName(const hsm::KeyInfo& k);

}  // namespace kyso::api
