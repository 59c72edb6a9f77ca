#include "kyso/ca-bridge/certificate_pool.h"

namespace kyso::ca {

OsslPtr<X509> CertificatePool::get1(std::string_view der) {
    {
        std::lock_guard lk(m_mu);
        auto it = m_certs.find(std::string(der));
        if (it != m_certs.end()) {
            ::X509_up_ref(it->second.get());
            return OsslPtr<X509>(it->second.get());
        }
    }
    OsslPtr<X509> x = x509FromDer(der);
    if (!x) {
        return x;
    }
    // Cache the extensions now, while this thread is the only user of the object.
    ::X509_check_purpose(x.get(), -1, 0);
    std::lock_guard lk(m_mu);
    if (m_certs.size() >= m_max) {
        m_certs.clear();
    }
    auto [it, inserted] = m_certs.emplace(std::string(der), nullptr);
    if (inserted) {
        it->second = std::move(x);
    }
    ::X509_up_ref(it->second.get());
    return OsslPtr<X509>(it->second.get());
}

}  // namespace kyso::ca
