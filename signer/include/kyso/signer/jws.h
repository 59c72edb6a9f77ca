// JWS seals for JSON documents (payment receipts): JAdES baseline B (ETSI TS 119 182-1) in the
// flattened JWS JSON serialization (RFC 7515 §7.2.2), with an RFC 8785 (JCS) canonical payload
// so that the same receipt always yields the same signed bytes.
//
// What the verifier checks is only what the JWS says about itself (signature, certificate
// reference, header syntax); trust in x5c and revocation are judged by policies/validation.h,
// as for CMS signatures (signature_facts.h).
#pragma once

#include <chrono>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "kyso/hsm/credential.h"
#include "kyso/hsm/result.h"

namespace kyso::signer {

// Limits on JSON accepted by canonicalJson and by the JWS parser: a receipt is a few KiB, so
// anything near these is an attack or a mistake.
inline constexpr std::size_t kMaxJsonBytes = 1 << 20;
inline constexpr int kMaxJsonDepth = 32;

// RFC 8785 (JCS) canonical form of the JSON text `json`: object members sorted by the UTF-16
// code units of their names, no insignificant whitespace, strings escaped as JCS prescribes.
//
// Restriction: numbers must be integers within ±(2^53−1) written without fraction or exponent
// ("-0" becomes "0"); for those, ECMAScript's Number serialization is the decimal integer
// itself. Other numbers are refused rather than formatted, because receipts carry amounts as
// integers (đồng) and a full ES double formatter would be code no receipt needs.
//
// The parser is strict (RFC 8259 only) and refuses, as "jws.payload_invalid" with the reason in
// the detail: malformed JSON, duplicate member names, invalid UTF-8 (overlong forms, encoded
// surrogates), lone surrogates in \u escapes, nesting deeper than kMaxJsonDepth, input larger
// than kMaxJsonBytes, and non-integer numbers.
Result<std::string> canonicalJson(std::string_view json);

// Seals the JSON document `payloadJson` with `seal` (one token operation) and returns the
// flattened JWS JSON serialization, itself canonical:
//   {"payload":"<b64url JCS(payload)>","protected":"<b64url JCS(header)>","signature":"..."}
// Protected header (JCS): alg (RS256/384/512 for RSA PKCS#1 v1.5, PS256/384/512 for RSA-PSS,
// ES256 on P-256 with SHA-256, ES384 on P-384 with SHA-384), cty "json" (application/json,
// shortened as RFC 7515 §4.1.10 recommends), kid (base64 of the DER IssuerSerial (RFC 5035),
// the form JAdES gives kid), x5t#S256 (the signing-certificate reference JAdES baseline B
// requires), x5c (the signer certificate then seal.chainDer, base64 DER), sigT (`when` in UTC to
// the second, "YYYY-MM-DDThh:mm:ssZ"), crit ["sigT"]. RSA PKCS#1 v1.5 is deterministic: the same
// receipt, credential and time give the same bytes. Errors: "jws.payload_invalid" (see
// canonicalJson), "jws.alg_unsupported" (no JOSE alg for the credential's scheme/hash/curve),
// "jws.certificate" (the credential's certificate is missing or unreadable), "jws.build" (OpenSSL
// refused a step), and the token's errors.
Result<std::string> sealJws(const hsm::Credential& seal, std::string_view payloadJson,
                            std::chrono::system_clock::time_point when);

// What a JWS says about itself, checked cryptographically (cf. SignatureFacts).
struct JwsFacts {
    std::string alg;              // "RS256", "PS256", "ES256", ...
    bool signatureValid = false;  // the signature over the signing input verifies with the key
                                  // of certificateDer (x5c[0])
    // The protected header names the signer certificate by hash (x5t#S256) ...
    bool hasSigningCertificateReference = false;
    // ... and that hash is the SHA-256 of x5c[0]. A mismatch is also listed in `errors`.
    bool signingCertificateBound = false;
    std::string signerSubject;          // RFC 2253, UTF-8; empty without x5c
    std::string certificateDer;         // x5c[0]; empty when the header carries no x5c
    std::vector<std::string> chainDer;  // x5c[1..]
    std::string signingTimeText;        // sigT as written, empty when absent
    std::time_t signingTime = 0;        // sigT, 0 when absent or malformed
    std::string protectedHeader;        // the decoded protected header (JSON text)
    std::string payload;                // the decoded payload bytes
    std::vector<std::string> errors;    // why a check failed, for people

    // The signature verifies and is bound to the certificate it was verified with.
    bool valid() const { return signatureValid && signingCertificateBound && errors.empty(); }
};

// Parses and checks a JWS: the flattened JSON serialization, or the compact one. Errors only
// where there is nothing to check:
//   "jws.invalid": not a JWS (syntax, base64url, header not a JSON object, no alg, malformed
//     crit, a name in both the protected and the unprotected header, the general
//     serialization);
//   "jws.alg_unsupported": alg "none" or any alg other than RS256/384/512, PS256/384/512,
//     ES256, ES384 (RFC 7515 §5.2 step 8: the JWS must be rejected);
//   "jws.crit_unsupported": crit names an extension we do not implement (RFC 7515 §4.1.11).
// Everything else - a bad signature, a missing or unreadable x5c, a mismatching x5t#S256, a
// malformed sigT - is a fact: signatureValid / signingCertificateBound false and a line in
// `errors`.
Result<JwsFacts> verifyJws(std::string_view jws);

}  // namespace kyso::signer
