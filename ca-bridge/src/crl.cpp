#include "kyso/ca-bridge/crl.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <map>

#include "kyso/hsm/encoding.h"
#include "kyso/hsm/evp_key.h"
#include "kyso/hsm/ossl_ptr.h"

namespace kyso::ca {

std::optional<RevocationReason> parseRevocationReason(const std::string& name) {
    static const std::map<std::string, RevocationReason> names = {
        {"unspecified", RevocationReason::Unspecified},
        {"keyCompromise", RevocationReason::KeyCompromise},
        {"cACompromise", RevocationReason::CaCompromise},
        {"affiliationChanged", RevocationReason::AffiliationChanged},
        {"superseded", RevocationReason::Superseded},
        {"cessationOfOperation", RevocationReason::CessationOfOperation},
        {"certificateHold", RevocationReason::CertificateHold},
        {"privilegeWithdrawn", RevocationReason::PrivilegeWithdrawn},
    };
    auto it = names.find(name);
    return it == names.end() ? std::nullopt : std::optional<RevocationReason>(it->second);
}

std::string serialHex(const ASN1_INTEGER* serial) {
    OsslPtr<BIGNUM> bn(::ASN1_INTEGER_to_BN(serial, nullptr));
    char* hex = bn ? ::BN_bn2hex(bn.get()) : nullptr;
    std::string out = hex != nullptr ? hex : "";
    ::OPENSSL_free(hex);
    return out;
}

std::string serialHexOf(const std::string& certificateDer) {
    OsslPtr<X509> x = x509FromDer(certificateDer);
    return x ? serialHex(::X509_get0_serialNumber(x.get())) : std::string();
}

Result<std::string> buildCrl(const hsm::Credential& issuer,
                             const std::vector<RevokedCertificate>& revoked,
                             std::uint64_t crlNumber, std::time_t thisUpdate,
                             std::time_t nextUpdate) {
    OsslPtr<X509> cert = x509FromDer(issuer.certificateDer);
    if (!cert) {
        return Error::make("ca.profile", "the CA certificate is not valid DER");
    }
    auto key = hsm::tokenBackedKey(issuer);
    if (!key) {
        return key.error();
    }
    X509_CRL* crl = ::X509_CRL_new();
    OsslPtr<ASN1_STRING> last(::ASN1_TIME_set(nullptr, thisUpdate));
    OsslPtr<ASN1_STRING> next(::ASN1_TIME_set(nullptr, nextUpdate));
    bool ok = crl != nullptr && last && next && ::X509_CRL_set_version(crl, 1) == 1 &&
              ::X509_CRL_set_issuer_name(crl, ::X509_get_subject_name(cert.get())) == 1 &&
              ::X509_CRL_set1_lastUpdate(crl, last.get()) == 1 &&
              ::X509_CRL_set1_nextUpdate(crl, next.get()) == 1;
    for (const auto& r : revoked) {
        if (!ok) {
            break;
        }
        BIGNUM* bn = nullptr;
        if (r.serialHex.empty() ||
            ::BN_hex2bn(&bn, r.serialHex.c_str()) != static_cast<int>(r.serialHex.size())) {
            ::BN_free(bn);
            ::X509_CRL_free(crl);
            return Error::make("ca.profile", "a revoked serial number is not hex");
        }
        X509_REVOKED* rev = ::X509_REVOKED_new();
        ASN1_INTEGER* serial = ::BN_to_ASN1_INTEGER(bn, nullptr);
        ::BN_free(bn);
        OsslPtr<ASN1_STRING> when(::ASN1_TIME_set(nullptr, r.revokedAt));
        ASN1_ENUMERATED* code = ::ASN1_ENUMERATED_new();
        ok = rev != nullptr && serial != nullptr && when && code != nullptr &&
             ::X509_REVOKED_set_serialNumber(rev, serial) == 1 &&
             ::X509_REVOKED_set_revocationDate(rev, when.get()) == 1 &&
             ::ASN1_ENUMERATED_set(code, static_cast<long>(r.reason)) == 1 &&
             ::X509_REVOKED_add1_ext_i2d(rev, NID_crl_reason, code, 0, 0) == 1 &&
             ::X509_CRL_add0_revoked(crl, rev) == 1;
        ::ASN1_INTEGER_free(serial);
        ::ASN1_ENUMERATED_free(code);
        if (!ok) {
            ::X509_REVOKED_free(rev);
        }
    }
    if (ok) {
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        ::X509V3_set_ctx(&ctx, cert.get(), nullptr, nullptr, crl, 0);
        X509_EXTENSION* aki =
            ::X509V3_EXT_conf_nid(nullptr, &ctx, NID_authority_key_identifier, "keyid:always");
        ok = aki != nullptr && ::X509_CRL_add_ext(crl, aki, -1) == 1;
        ::X509_EXTENSION_free(aki);
        OsslPtr<ASN1_STRING> number(::ASN1_INTEGER_new());
        ok = ok && number && ::ASN1_INTEGER_set_uint64(number.get(), crlNumber) == 1 &&
             ::X509_CRL_add1_ext_i2d(crl, NID_crl_number, number.get(), 0, 0) == 1;
    }
    ok = ok && ::X509_CRL_sort(crl) == 1 &&
         ::X509_CRL_sign(crl, key->get(), hsm::evpMd(issuer.hash)) > 0;
    if (!ok) {
        ::X509_CRL_free(crl);
        if (auto tokenError = hsm::takeTokenError()) {
            ::ERR_clear_error();
            return *tokenError;
        }
        return opensslError("ca.build", "cannot build the CRL");
    }
    unsigned char* der = nullptr;
    const int n = ::i2d_X509_CRL(crl, &der);
    std::string out(reinterpret_cast<char*>(der), n > 0 ? static_cast<std::size_t>(n) : 0);
    ::OPENSSL_free(der);
    ::X509_CRL_free(crl);
    return out;
}

}  // namespace kyso::ca
