// Validation as the service and `kyso verify` run it: the [validation] configuration (trust
// anchors, intermediates, policy), revocation over HTTP(S) with the store's cache, and the
// policies/validation.h report.
#pragma once

#include <ctime>
#include <memory>
#include <string>

#include "kyso/api/config.h"
#include "kyso/api/credentials.h"
#include "kyso/api/store.h"
#include "kyso/policies/validation.h"

namespace kyso::api {

class Verifier {
  public:
    // `store` (borrowed; null: a cache in memory) keeps CRLs and OCSP statuses. With `creds`
    // (borrowed, as `cfg`) and a store, the embedded CA's own OCSP URL is answered in process
    // (the service verifying its own certificates; api/src/local_ocsp.h). Errors:
    // "config.invalid" (unreadable trust anchors or intermediates).
    static Result<std::unique_ptr<Verifier>> make(const Config& cfg, Store* store,
                                                  const CredentialRegistry* creds = nullptr);

    // `at`: the validation time (0: now).
    Result<policies::ValidationReport> pdf(const std::string& path, std::time_t at = 0) const;
    Result<policies::ValidationReport> cms(const std::string& cms, const std::string& dataPath,
                                           std::time_t at = 0) const;

    // A sealed receipt: a JWS, or an XML document with an enveloped XAdES signature.
    Result<policies::ValidationReport> jws(const signer::JwsFacts& facts, std::string_view jws,
                                           std::time_t at = 0) const;
    Result<policies::ValidationReport> xml(std::string_view xml, std::time_t at = 0) const;

  private:
    Verifier() = default;
    policies::ValidationContext context(std::time_t at) const;

    std::vector<std::string> m_anchors;
    std::vector<std::string> m_intermediates;
    policies::ValidationPolicy m_policy;
    std::unique_ptr<ca::CertificatePool> m_pool = std::make_unique<ca::CertificatePool>();
    std::unique_ptr<ca::RevocationCache> m_cache;
    std::unique_ptr<ca::RevocationChecker> m_revocation;
};

}  // namespace kyso::api
