// One owning pointer per OpenSSL object type, after BoringSSL's bssl::UniquePtr. Every module
// uses these; a raw OpenSSL pointer in kyso code is borrowed (get0) unless it is wrapped here.
#pragma once

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <memory>
#include <string>
#include <string_view>

#include "kyso/hsm/result.h"

namespace kyso {

template <typename T>
struct OsslDeleter;

#define KYSO_OSSL_DELETER(T, fn)                          \
    template <>                                           \
    struct OsslDeleter<T> {                               \
        void operator()(T* p) const noexcept { ::fn(p); } \
    }

KYSO_OSSL_DELETER(X509, X509_free);
KYSO_OSSL_DELETER(X509_NAME, X509_NAME_free);
KYSO_OSSL_DELETER(X509_EXTENSION, X509_EXTENSION_free);
KYSO_OSSL_DELETER(EVP_PKEY, EVP_PKEY_free);
KYSO_OSSL_DELETER(EVP_PKEY_CTX, EVP_PKEY_CTX_free);
KYSO_OSSL_DELETER(EVP_MD_CTX, EVP_MD_CTX_free);
KYSO_OSSL_DELETER(CMS_ContentInfo, CMS_ContentInfo_free);
KYSO_OSSL_DELETER(BIO, BIO_free_all);
KYSO_OSSL_DELETER(BIGNUM, BN_free);
// ASN1_INTEGER and ASN1_TIME are ASN1_STRINGs: OsslPtr<ASN1_INTEGER> frees them too.
KYSO_OSSL_DELETER(ASN1_STRING, ASN1_STRING_free);
KYSO_OSSL_DELETER(X509_ALGOR, X509_ALGOR_free);
KYSO_OSSL_DELETER(ASN1_OBJECT, ASN1_OBJECT_free);
KYSO_OSSL_DELETER(X509_STORE, X509_STORE_free);
KYSO_OSSL_DELETER(X509_STORE_CTX, X509_STORE_CTX_free);
KYSO_OSSL_DELETER(X509_REQ, X509_REQ_free);
KYSO_OSSL_DELETER(X509_CRL, X509_CRL_free);
KYSO_OSSL_DELETER(OCSP_RESPONSE, OCSP_RESPONSE_free);
KYSO_OSSL_DELETER(OCSP_BASICRESP, OCSP_BASICRESP_free);
#undef KYSO_OSSL_DELETER

template <typename T>
using OsslPtr = std::unique_ptr<T, OsslDeleter<T>>;

// DER <-> X509 helpers. Parsing returns null on malformed input.
inline OsslPtr<X509> x509FromDer(std::string_view der) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
    return OsslPtr<X509>(::d2i_X509(nullptr, &p, static_cast<long>(der.size())));
}

inline std::string x509ToDer(X509* x) {
    unsigned char* buf = nullptr;
    const int n = ::i2d_X509(x, &buf);
    std::string out;
    if (n > 0) {
        out.assign(reinterpret_cast<char*>(buf), static_cast<std::size_t>(n));
    }
    ::OPENSSL_free(buf);
    return out;
}

// A name as RFC 2253 text in UTF-8 ("CN=Nguyễn Văn An,O=...").
inline std::string nameToString(const X509_NAME* name) {
    OsslPtr<BIO> bio(::BIO_new(::BIO_s_mem()));
    ::X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    char* data = nullptr;
    const long n = ::BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

// An ASN.1 time as seconds since the epoch; 0 when absent or unreadable.
inline std::time_t timeOf(const ASN1_TIME* t) {
    std::tm tm{};
    if (t == nullptr || ::ASN1_TIME_to_tm(t, &tm) != 1) {
        return 0;
    }
    return ::timegm(&tm);
}

// An Error with `code` whose detail is `what` and OpenSSL's last error, which becomes the cause;
// the OpenSSL error queue is cleared.
inline Error opensslError(const std::string& code, const std::string& what) {
    const unsigned long e = ::ERR_peek_last_error();
    char buf[256] = {0};
    if (e != 0) {
        ::ERR_error_string_n(e, buf, sizeof buf);
    }
    ::ERR_clear_error();
    return Error::make(code, what + (e != 0 ? std::string(": ") + buf : ""), e);
}

}  // namespace kyso
