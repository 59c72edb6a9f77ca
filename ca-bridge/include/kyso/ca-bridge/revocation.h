// Revocation checking of one certificate (RFC 6960 OCSP, then RFC 5280 CRL), following the
// national rule: OCSP or the latest CRL; when neither answers, the status is UNAVAILABLE, which
// the report turns into INDETERMINATE / TRY_LATER with a warning - never a silent pass.
#pragma once

#include <openssl/x509.h>

#include <ctime>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "kyso/ca-bridge/certificate_pool.h"
#include "kyso/hsm/result.h"

namespace kyso::ca {

struct RevocationStatus {
    std::string status = "UNAVAILABLE";  // GOOD, REVOKED, UNKNOWN, UNAVAILABLE
    std::string source;                  // OCSP, CRL (empty when UNAVAILABLE)
    std::time_t thisUpdate = 0;
    std::time_t revocationTime = 0;     // when REVOKED
    std::vector<std::string> warnings;  // why a source was not used
    // Where the status came from: DOCUMENT (validation data the signature carries), NETWORK
    // (fetched now), CACHE (fetched earlier and kept until its nextUpdate); empty when
    // UNAVAILABLE.
    std::string origin;
    // With CheckOptions::needEvidence, the DER the status was read from, for embedding: the
    // OCSPResponse as the responder sent it, or the CRL; and the certificates the OCSP response
    // carries (a delegated responder's).
    std::string evidenceDer;
    std::vector<std::string> evidenceCertsDer;
};

// Revocation data a signature carries (a PDF's /DSS, CAdES revocation-values).
struct RevocationEvidence {
    std::vector<std::string> ocspResponsesDer;  // OCSPResponse, DER
    std::vector<std::string> crlsDer;           // CertificateList, DER
    bool empty() const { return ocspResponsesDer.empty() && crlsDer.empty(); }
};

struct CheckOptions {
    // Consulted before the network (borrowed; null: none).
    const RevocationEvidence* embedded = nullptr;
    // A proof of existence of what the certificate signed (a timestamp's time), 0 for none.
    // With one, a status issued at or after it is enough (ETSI EN 319 102-1, past signature
    // validation: the certificate was not revoked when it signed), however old it is now;
    // without one, the status must be fresh at `now`. A status issued before it is not used.
    std::time_t issuedAfter = 0;
    bool network = true;        // false: only the embedded data
    bool needEvidence = false;  // return the DER (OCSP is then fetched, not taken from the cache)
};

// Transport: GET when `body` is empty, else POST with `contentType`. Returns the response body;
// an Error for no answer, a timeout or a non-200 status.
using Fetch = std::function<Result<std::string>(const std::string& url, const std::string& body,
                                                const std::string& contentType)>;

// Where fetched CRLs and verified OCSP statuses are kept until their nextUpdate (api::Store keeps
// them in SQLite, so they survive restarts and are shared by the service's processes).
class RevocationCache {
  public:
    virtual ~RevocationCache() = default;
    // The DER stored for `key` if it is still valid at `now`.
    virtual std::optional<std::string> get(const std::string& key, std::time_t now) = 0;
    virtual void put(const std::string& key, const std::string& der, std::time_t validUntil) = 0;
};

// A cache in this process's memory.
class MemoryRevocationCache final : public RevocationCache {
  public:
    std::optional<std::string> get(const std::string& key, std::time_t now) override;
    void put(const std::string& key, const std::string& der, std::time_t validUntil) override;

  private:
    std::mutex m_mu;
    std::map<std::string, std::pair<std::string, std::time_t>> m_entries;
};

class RevocationChecker {
  public:
    // maxOcspAgeSeconds: an OCSP response whose thisUpdate is older is not fresh enough.
    // `cache` (borrowed; null: one in memory) keeps CRLs and verified OCSP statuses until their
    // nextUpdate (an OCSP status without one: 5 minutes), so a warm cache fetches nothing.
    // `pool` (borrowed, may be null) parses each distinct certificate once.
    explicit RevocationChecker(Fetch fetch, long maxOcspAgeSeconds = 7 * 86400,
                               RevocationCache* cache = nullptr, CertificatePool* pool = nullptr)
        : m_fetch(std::move(fetch)),
          m_maxOcspAge(maxOcspAgeSeconds),
          m_cache(cache != nullptr ? cache : &m_memory),
          m_pool(pool) {}

    // The status of `certDer` issued by `issuerDer`, at `now`: OCSP from the certificate's AIA
    // (with a nonce; the response must be signed by the issuer or a responder it delegated, and
    // be fresh), else the CRL from its distribution point (signed by the issuer, nextUpdate not
    // passed; cached until nextUpdate).
    RevocationStatus check(const std::string& certDer, const std::string& issuerDer,
                           std::time_t now) {
        return check(certDer, issuerDer, now, CheckOptions{});
    }
    // The same with embedded validation data first, a proof of existence, and the evidence.
    RevocationStatus check(const std::string& certDer, const std::string& issuerDer,
                           std::time_t now, const CheckOptions& options);

  private:
    bool ocsp(X509* cert, X509* issuer, std::time_t now, const CheckOptions& o,
              RevocationStatus* out);
    bool crl(X509* cert, X509* issuer, std::time_t now, const CheckOptions& o,
             RevocationStatus* out);
    bool embeddedOcsp(X509* cert, X509* issuer, std::time_t now, const CheckOptions& o,
                      RevocationStatus* out);
    bool embeddedCrl(X509* cert, X509* issuer, std::time_t now, const CheckOptions& o,
                     RevocationStatus* out);

    Fetch m_fetch;
    long m_maxOcspAge;
    MemoryRevocationCache m_memory;
    RevocationCache* m_cache;
    CertificatePool* m_pool;
};

}  // namespace kyso::ca
