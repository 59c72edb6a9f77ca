// Parsed certificates kept for reuse. OpenSSL 3 spends most of a validation decoding the same few
// certificates again (each parse decodes the public key through the provider decoders): the trust
// anchors, the CA certificates of every chain, the TSA's. A pool owned by the caller (the
// Verifier) parses each distinct DER once; callers share the parsed X509 read-only, as an
// X509_STORE does.
#pragma once

#include <openssl/x509.h>

#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "kyso/hsm/ossl_ptr.h"

namespace kyso::ca {

class CertificatePool {
  public:
    // At most `maxEntries` certificates are kept; when full, the pool starts again empty.
    explicit CertificatePool(std::size_t maxEntries = 4096) : m_max(maxEntries) {}
    CertificatePool(const CertificatePool&) = delete;
    CertificatePool& operator=(const CertificatePool&) = delete;

    // The certificate `der` encodes (a new reference, get1), or null when it is not DER.
    // Thread-safe.
    OsslPtr<X509> get1(std::string_view der);

  private:
    std::mutex m_mu;
    std::size_t m_max;
    std::unordered_map<std::string, OsslPtr<X509>> m_certs;
};

// `pool->get1(der)`, or a fresh parse when there is no pool.
inline OsslPtr<X509> parseCertificate(CertificatePool* pool, std::string_view der) {
    return pool != nullptr ? pool->get1(der) : x509FromDer(der);
}

}  // namespace kyso::ca
