#include "kyso/ca-bridge/issuer.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "kyso/hsm/encoding.h"
#include "kyso/hsm/ossl_ptr.h"

namespace kyso::ca {

namespace {

bool addExt(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
    X509_EXTENSION* ex = ::X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str());
    if (ex == nullptr) {
        return false;
    }
    const bool ok = ::X509_add_ext(cert, ex, -1) == 1;
    ::X509_EXTENSION_free(ex);
    return ok;
}

int signatureNid(const hsm::Credential& c) {
    if (c.key.type == hsm::KeyType::Ec) {
        return c.hash == hsm::HashAlg::Sha256   ? NID_ecdsa_with_SHA256
               : c.hash == hsm::HashAlg::Sha384 ? NID_ecdsa_with_SHA384
                                                : NID_ecdsa_with_SHA512;
    }
    return c.hash == hsm::HashAlg::Sha256   ? NID_sha256WithRSAEncryption
           : c.hash == hsm::HashAlg::Sha384 ? NID_sha384WithRSAEncryption
                                            : NID_sha512WithRSAEncryption;
}

}  // namespace

Result<std::string> issueCertificate(const CertificateProfile& p, const hsm::Credential& issuer) {
    if (issuer.token == nullptr) {
        return Error::make("ca.profile", "issuer credential has no token");
    }
    if (issuer.scheme == hsm::SignScheme::RsaPss) {
        return Error::make("ca.profile", "certificates are signed with PKCS#1 v1.5 or ECDSA");
    }
    OsslPtr<X509> cert(::X509_new());
    const unsigned char* kp = reinterpret_cast<const unsigned char*>(p.publicKeyDer.data());
    OsslPtr<EVP_PKEY> subjectKey(
        ::d2i_PUBKEY(nullptr, &kp, static_cast<long>(p.publicKeyDer.size())));
    if (!cert || !subjectKey) {
        return Error::make("ca.profile", "the subject public key is not a valid SPKI");
    }
    OsslPtr<X509_NAME> subject(::X509_NAME_new());
    for (const auto& e : p.subject) {
        if (::X509_NAME_add_entry_by_txt(subject.get(), e.field.c_str(), MBSTRING_UTF8,
                                         reinterpret_cast<const unsigned char*>(e.value.data()),
                                         static_cast<int>(e.value.size()), -1, 0) != 1) {
            ::ERR_clear_error();
            return Error::make("ca.profile", "bad subject attribute " + e.field);
        }
    }
    OsslPtr<X509> issuerCert;
    if (!issuer.certificateDer.empty()) {
        issuerCert = x509FromDer(issuer.certificateDer);
        if (!issuerCert) {
            return Error::make("ca.profile", "issuer certificate is not valid DER");
        }
    }
    unsigned char serial[16];
    if (::RAND_bytes(serial, sizeof serial) != 1) {
        return opensslError("ca.build", "random serial");
    }
    serial[0] &= 0x7f;
    serial[0] |= 0x40;  // keep 16 bytes: no leading zero to strip, always positive
    OsslPtr<BIGNUM> sn(::BN_bin2bn(serial, sizeof serial, nullptr));
    if (!sn || ::X509_set_version(cert.get(), 2) != 1 ||
        ::BN_to_ASN1_INTEGER(sn.get(), ::X509_get_serialNumber(cert.get())) == nullptr ||
        ::X509_set_subject_name(cert.get(), subject.get()) != 1 ||
        ::X509_set_issuer_name(cert.get(), issuerCert ? ::X509_get_subject_name(issuerCert.get())
                                                      : subject.get()) != 1 ||
        ::X509_gmtime_adj(::X509_getm_notBefore(cert.get()), -p.backdateSeconds) == nullptr ||
        ::X509_time_adj_ex(::X509_getm_notAfter(cert.get()), p.validDays, 0, nullptr) == nullptr ||
        ::X509_set_pubkey(cert.get(), subjectKey.get()) != 1) {
        return opensslError("ca.build", "certificate fields");
    }

    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    ::X509V3_set_ctx(&ctx, issuerCert ? issuerCert.get() : cert.get(), cert.get(), nullptr, nullptr,
                     0);
    std::string bc = p.isCa ? "critical,CA:TRUE" : "critical,CA:FALSE";
    if (p.isCa && p.pathLength >= 0) {
        bc += ",pathlen:" + std::to_string(p.pathLength);
    }
    std::string ku;
    auto addKu = [&](bool on, const char* name) {
        if (on) {
            ku += (ku.empty() ? "" : ",") + std::string(name);
        }
    };
    addKu(p.digitalSignature, "digitalSignature");
    addKu(p.nonRepudiation, "nonRepudiation");
    addKu(p.keyEncipherment, "keyEncipherment");
    addKu(p.keyCertSign, "keyCertSign");
    addKu(p.crlSign, "cRLSign");
    bool ok = addExt(cert.get(), &ctx, NID_basic_constraints, bc) &&
              addExt(cert.get(), &ctx, NID_subject_key_identifier, "hash") &&
              addExt(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always");
    if (ok && !ku.empty()) {
        ok = addExt(cert.get(), &ctx, NID_key_usage, "critical," + ku);
    }
    if (ok && !p.extendedKeyUsage.empty()) {
        std::string eku = p.extendedKeyUsageCritical ? "critical" : "";
        for (const auto& e : p.extendedKeyUsage) {
            eku += (eku.empty() ? "" : ",") + e;
        }
        ok = addExt(cert.get(), &ctx, NID_ext_key_usage, eku);
    }
    if (ok && (!p.dnsNames.empty() || !p.ipAddresses.empty())) {
        std::string san;
        for (const auto& d : p.dnsNames) {
            san += (san.empty() ? "DNS:" : ",DNS:") + d;
        }
        for (const auto& ip : p.ipAddresses) {
            san += (san.empty() ? "IP:" : ",IP:") + ip;
        }
        ok = addExt(cert.get(), &ctx, NID_subject_alt_name, san);
    }
    if (ok && p.crlUrl) {
        ok = addExt(cert.get(), &ctx, NID_crl_distribution_points, "URI:" + *p.crlUrl);
    }
    if (ok && (p.ocspUrl || p.caIssuersUrl)) {
        std::string aia;
        if (p.ocspUrl) {
            aia = "OCSP;URI:" + *p.ocspUrl;
        }
        if (p.caIssuersUrl) {
            aia += (aia.empty() ? "" : ",") + std::string("caIssuers;URI:") + *p.caIssuersUrl;
        }
        ok = addExt(cert.get(), &ctx, NID_info_access, aia);
    }
    if (!ok) {
        ::ERR_clear_error();
        return Error::make("ca.profile", "bad certificate extension");
    }

    // The signature algorithm goes inside the TBSCertificate and after it; OpenSSL has no public
    // setter for the inner one, so set it through the accessor and re-encode.
    auto* innerAlg = const_cast<X509_ALGOR*>(::X509_get0_tbs_sigalg(cert.get()));
    const int sigNid = signatureNid(issuer);
    const int paramType = issuer.key.type == hsm::KeyType::Rsa ? V_ASN1_NULL : V_ASN1_UNDEF;
    if (::X509_ALGOR_set0(innerAlg, ::OBJ_nid2obj(sigNid), paramType, nullptr) != 1) {
        return opensslError("ca.build", "signature algorithm");
    }
    unsigned char* tbsBuf = nullptr;
    const int tbsLen = ::i2d_re_X509_tbs(cert.get(), &tbsBuf);
    if (tbsLen <= 0) {
        return opensslError("ca.build", "encode TBSCertificate");
    }
    const std::string tbs(reinterpret_cast<char*>(tbsBuf), static_cast<std::size_t>(tbsLen));
    ::OPENSSL_free(tbsBuf);
    unsigned char* algBuf = nullptr;
    const int algLen = ::i2d_X509_ALGOR(innerAlg, &algBuf);
    const std::string alg(reinterpret_cast<char*>(algBuf), algLen > 0 ? algLen : 0);
    ::OPENSSL_free(algBuf);

    unsigned char dg[EVP_MAX_MD_SIZE];
    unsigned int dglen = 0;
    if (::EVP_Digest(tbs.data(), tbs.size(), dg, &dglen, hsm::evpMd(issuer.hash), nullptr) != 1) {
        return opensslError("ca.build", "digest of TBSCertificate");
    }
    auto sig = issuer.signDigest(std::string_view(reinterpret_cast<char*>(dg), dglen));
    if (!sig) {
        return sig.error();
    }
    const std::string certDer =
        hsm::derTlv(0x30, tbs + alg + hsm::derTlv(0x03, std::string(1, '\0') + *sig));
    // Round-trip through OpenSSL so that a malformed result is caught here, not by a relying
    // party.
    OsslPtr<X509> check = x509FromDer(certDer);
    if (!check) {
        return opensslError("ca.build", "assembled certificate does not parse");
    }
    OsslPtr<EVP_PKEY> verifyKey(issuerCert ? ::X509_get_pubkey(issuerCert.get())
                                           : ::X509_get_pubkey(check.get()));
    if (!verifyKey || ::X509_verify(check.get(), verifyKey.get()) != 1) {
        return opensslError("ca.build", "the token's signature on the certificate does not verify");
    }
    return certDer;
}

CertificateProfile citizenCertificateProfile(const CitizenIdentity& citizen,
                                             const std::string& crlUrl, const std::string& ocspUrl,
                                             int validDays) {
    CertificateProfile p;
    p.subject = {{"C", "VN"},
                 {"ST", citizen.province},
                 {"serialNumber", citizen.identityNumber},
                 {"CN", citizen.fullName}};
    p.digitalSignature = true;
    p.nonRepudiation = true;
    p.crlUrl = crlUrl;
    p.ocspUrl = ocspUrl;
    p.validDays = validDays;
    return p;
}

std::string certificateToPem(const std::string& der) {
    OsslPtr<X509> x = x509FromDer(der);
    OsslPtr<BIO> bio(::BIO_new(::BIO_s_mem()));
    if (!x || !bio || ::PEM_write_bio_X509(bio.get(), x.get()) != 1) {
        return {};
    }
    char* data = nullptr;
    const long n = ::BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

Result<std::vector<std::string>> certificatesFromPem(const std::string& pem) {
    OsslPtr<BIO> bio(::BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    std::vector<std::string> out;
    for (;;) {
        X509* x = ::PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
        if (x == nullptr) {
            break;
        }
        out.push_back(x509ToDer(x));
        ::X509_free(x);
    }
    ::ERR_clear_error();
    if (out.empty()) {
        return Error::make("cert.invalid", "no PEM certificate found");
    }
    return out;
}

}  // namespace kyso::ca
