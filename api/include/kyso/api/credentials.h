// The configured credentials, resolved on the token at start: each key found by its PKCS#11 URI,
// each certificate read from its PEM file and checked against the key.
#pragma once

#include <map>
#include <memory>
#include <shared_mutex>
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

    // The credential; null when unknown. The pointer stays valid for the registry's lifetime:
    // credentials are added (a citizen's, at enrolment) but never removed.
    const hsm::Credential* find(const std::string& id) const;
    policies::CredentialFacts facts(const std::string& id) const;
    // Every id, configured ones first, then in the order they were added.
    std::vector<std::string> ids() const;
    // The ids of kyso.conf's credentials (readiness and certificate-expiry metrics watch these;
    // citizens' certificates are the CA's business, not the service's health).
    std::vector<std::string> configuredIds() const;

    // Adds a credential made while the service runs (a citizen's). Thread-safe against find()
    // and facts(). Errors: "credential.exists" when the id is taken.
    Status add(hsm::Credential credential, policies::CredentialFacts facts);

  private:
    std::map<std::string, hsm::Credential> m_creds;
    std::map<std::string, policies::CredentialFacts> m_facts;
    std::vector<std::string> m_ids;
    std::size_t m_configured = 0;
    // Guards the three above once the service runs; a pointer so the registry stays movable.
    std::unique_ptr<std::shared_mutex> m_mu = std::make_unique<std::shared_mutex>();
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
