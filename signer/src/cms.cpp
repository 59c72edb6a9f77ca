#include "kyso/signer/cms.h"

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "kyso/hsm/encoding.h"
#include "kyso/hsm/ossl_ptr.h"

namespace kyso::signer {

namespace {

std::string der(const unsigned char* p, int n) {
    return n > 0 ? std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n))
                 : std::string();
}

// The DER of the signed attributes as they are signed: a SET OF in DER order (X.690 11.6),
// which is also how OpenSSL encodes them inside the SignerInfo.
std::string signedAttrsDer(CMS_SignerInfo* si) {
    std::vector<std::string> parts;
    const int n = ::CMS_signed_get_attr_count(si);
    for (int i = 0; i < n; ++i) {
        unsigned char* buf = nullptr;
        const int len = ::i2d_X509_ATTRIBUTE(::CMS_signed_get_attr(si, i), &buf);
        parts.push_back(der(buf, len));
        ::OPENSSL_free(buf);
    }
    std::sort(parts.begin(), parts.end(), [](const std::string& a, const std::string& b) {
        const int c = std::memcmp(a.data(), b.data(), std::min(a.size(), b.size()));
        return c != 0 ? c < 0 : a.size() < b.size();
    });
    std::string body;
    for (auto& p : parts) {
        body += p;
    }
    std::string out(1, '\x31');
    const std::size_t len = body.size();
    if (len < 128) {
        out.push_back(static_cast<char>(len));
    } else {
        std::string lb;
        for (std::size_t v = len; v > 0; v >>= 8) {
            lb.insert(lb.begin(), static_cast<char>(v & 0xff));
        }
        out.push_back(static_cast<char>(0x80 | lb.size()));
        out += lb;
    }
    return out + body;
}

// RSASSA-PSS-params with hash, MGF1 over the same hash and salt = digest length (RFC 4055).
bool setPssAlgorithm(CMS_SignerInfo* si, const EVP_MD* md) {
    X509_ALGOR* sigAlg = nullptr;
    ::CMS_SignerInfo_get0_algs(si, nullptr, nullptr, nullptr, &sigAlg);
    RSA_PSS_PARAMS* pss = ::RSA_PSS_PARAMS_new();
    if (pss == nullptr || sigAlg == nullptr) {
        ::RSA_PSS_PARAMS_free(pss);
        return false;
    }
    bool ok = false;
    pss->hashAlgorithm = ::X509_ALGOR_new();
    pss->maskGenAlgorithm = ::X509_ALGOR_new();
    pss->saltLength = ::ASN1_INTEGER_new();
    X509_ALGOR* mgfHash = ::X509_ALGOR_new();
    if (pss->hashAlgorithm != nullptr && pss->maskGenAlgorithm != nullptr &&
        pss->saltLength != nullptr && mgfHash != nullptr) {
        ::X509_ALGOR_set_md(pss->hashAlgorithm, md);
        ::X509_ALGOR_set_md(mgfHash, md);
        ::ASN1_INTEGER_set(pss->saltLength, ::EVP_MD_get_size(md));
        ASN1_STRING* mgfParam = ::ASN1_item_pack(mgfHash, ASN1_ITEM_rptr(X509_ALGOR), nullptr);
        if (mgfParam != nullptr) {
            ::X509_ALGOR_set0(pss->maskGenAlgorithm, ::OBJ_nid2obj(NID_mgf1), V_ASN1_SEQUENCE,
                              mgfParam);
            ASN1_STRING* params = ::ASN1_item_pack(pss, ASN1_ITEM_rptr(RSA_PSS_PARAMS), nullptr);
            if (params != nullptr) {
                ok = ::X509_ALGOR_set0(sigAlg, ::OBJ_nid2obj(NID_rsassaPss), V_ASN1_SEQUENCE,
                                       params) == 1;
                if (!ok) {
                    ::ASN1_STRING_free(params);
                }
            }
        }
    }
    ::X509_ALGOR_free(mgfHash);
    ::RSA_PSS_PARAMS_free(pss);
    return ok;
}

// Builds the SignedData; `signature` null means "sign on the token", otherwise that value is
// used as is (for sizing).
// A credential's certificates parsed once: parsing them per signature was a third of the CPU
// time of a REST signature. Shared read-only between threads (OpenSSL objects are reference
// counted and safe to read concurrently).
struct Parsed {
    OsslPtr<X509> cert;
    OsslPtr<EVP_PKEY> pub;
    std::vector<OsslPtr<X509>> chain;
    std::mutex sizeMu;
    std::map<std::pair<int, int>, std::size_t> maxSize;  // by (scheme and signing-time, hash)
};

Result<std::shared_ptr<Parsed>> parsedFor(const Credential& c) {
    static std::mutex mu;
    static auto* cache = new std::map<std::string, std::shared_ptr<Parsed>>();
    std::string key = c.certificateDer;
    for (const auto& d : c.chainDer) {
        key += '\0' + d;
    }
    {
        std::lock_guard lk(mu);
        auto it = cache->find(key);
        if (it != cache->end()) {
            return it->second;
        }
    }
    auto p = std::make_shared<Parsed>();
    p->cert = x509FromDer(c.certificateDer);
    if (!p->cert) {
        return Error::make("cms.build", "credential certificate is not valid DER");
    }
    // The certificate's public key stands in for the private one: CMS_add1_signer only compares
    // public components, and the signature itself comes from the token.
    p->pub.reset(::X509_get_pubkey(p->cert.get()));
    if (!p->pub) {
        return opensslError("cms.build", "certificate public key");
    }
    // Compute the cached extension data now, not concurrently on first use.
    ::X509_check_purpose(p->cert.get(), -1, -1);
    for (const auto& d : c.chainDer) {
        OsslPtr<X509> x = x509FromDer(d);
        if (!x) {
            return Error::make("cms.build", "chain certificate is not valid DER");
        }
        ::X509_check_purpose(x.get(), -1, -1);
        p->chain.push_back(std::move(x));
    }
    std::lock_guard lk(mu);
    if (cache->size() >= 256) {
        cache->clear();  // bounded: credentials are few; a URI-addressed key adds one
    }
    return cache->emplace(std::move(key), p).first->second;
}

Result<std::string> build(const Credential& c, std::string_view contentDigest,
                          const std::string* signature, Timestamper* timestamper,
                          bool signingTime) {
    const EVP_MD* md = hsm::evpMd(c.hash);
    auto parsed = parsedFor(c);
    if (!parsed) {
        return parsed.error();
    }
    const Parsed& p = **parsed;
    const unsigned flags = CMS_PARTIAL | CMS_DETACHED | CMS_BINARY;
    OsslPtr<CMS_ContentInfo> cms(::CMS_sign(nullptr, nullptr, nullptr, nullptr, flags));
    if (!cms) {
        return opensslError("cms.build", "CMS_sign");
    }
    CMS_SignerInfo* si = ::CMS_add1_signer(cms.get(), p.cert.get(), p.pub.get(), md,
                                           flags | CMS_NOSMIMECAP | CMS_CADES);
    if (si == nullptr) {
        return opensslError("cms.build", "CMS_add1_signer");
    }
    for (const auto& x : p.chain) {
        if (::CMS_add1_cert(cms.get(), x.get()) != 1) {
            return opensslError("cms.build", "chain certificate");
        }
    }
    if (::CMS_signed_add1_attr_by_NID(si, NID_pkcs9_contentType, V_ASN1_OBJECT,
                                      ::OBJ_nid2obj(NID_pkcs7_data), -1) != 1 ||
        ::CMS_signed_add1_attr_by_NID(si, NID_pkcs9_messageDigest, V_ASN1_OCTET_STRING,
                                      contentDigest.data(),
                                      static_cast<int>(contentDigest.size())) != 1) {
        return opensslError("cms.build", "signed attributes");
    }
    if (signingTime) {
        // CAdES baseline B requires it (ETSI EN 319 122-1, 5.2.1); PAdES forbids it.
        OsslPtr<ASN1_STRING> now(::X509_gmtime_adj(nullptr, 0));
        if (!now || ::CMS_signed_add1_attr_by_NID(si, NID_pkcs9_signingTime, now->type, now.get(),
                                                  -1) != 1) {
            return opensslError("cms.build", "signing-time attribute");
        }
    }
    if (c.scheme == hsm::SignScheme::RsaPss && !setPssAlgorithm(si, md)) {
        return opensslError("cms.build", "RSASSA-PSS parameters");
    }

    std::string sig;
    if (signature != nullptr) {
        sig = *signature;
    } else {
        const std::string attrs = signedAttrsDer(si);
        unsigned char dg[EVP_MAX_MD_SIZE];
        unsigned int dglen = 0;
        if (::EVP_Digest(attrs.data(), attrs.size(), dg, &dglen, md, nullptr) != 1) {
            return opensslError("cms.build", "digest of signed attributes");
        }
        auto s = c.signDigest(std::string_view(reinterpret_cast<char*>(dg), dglen));
        if (!s) {
            return s.error();
        }
        sig = std::move(*s);
    }
    if (::ASN1_STRING_set(::CMS_SignerInfo_get0_signature(si), sig.data(),
                          static_cast<int>(sig.size())) != 1) {
        return opensslError("cms.build", "signature value");
    }
    if (timestamper != nullptr) {
        // signature-time-stamp (RFC 3161 appendix A): a token over the signature value.
        unsigned char dg[EVP_MAX_MD_SIZE];
        unsigned int dglen = 0;
        if (::EVP_Digest(sig.data(), sig.size(), dg, &dglen, md, nullptr) != 1) {
            return opensslError("cms.build", "digest of the signature value");
        }
        auto token =
            timestamper->timestamp(std::string_view(reinterpret_cast<char*>(dg), dglen), c.hash);
        if (!token) {
            return token.error();
        }
        if (::CMS_unsigned_add1_attr_by_NID(si, NID_id_smime_aa_timeStampToken, V_ASN1_SEQUENCE,
                                            token->data(), static_cast<int>(token->size())) != 1) {
            return opensslError("cms.build", "signature-time-stamp attribute");
        }
    }
    unsigned char* out = nullptr;
    const int n = ::i2d_CMS_ContentInfo(cms.get(), &out);
    std::string result = der(out, n);
    ::OPENSSL_free(out);
    if (result.empty()) {
        return opensslError("cms.build", "encode SignedData");
    }
    return result;
}

}  // namespace

Result<std::string> buildCadesDetached(const Credential& c, std::string_view contentDigest,
                                       Timestamper* timestamper, bool signingTime) {
    if (c.token == nullptr) {
        return Error::make("cms.build", "credential has no token");
    }
    return build(c, contentDigest, nullptr, timestamper, signingTime);
}

Result<std::size_t> maxCadesSize(const Credential& c, Timestamper* timestamper, bool signingTime) {
    // The unsigned attribute around a token: SEQUENCE { OID, SET { token } } inside [1], plus one
    // more length byte for each enclosing structure.
    constexpr std::size_t kAttributeOverhead = 64;
    std::size_t extra = 0;
    if (timestamper != nullptr) {
        auto t = timestamper->maxTokenSize(c.hash);
        if (!t) {
            return t.error();
        }
        extra = *t + kAttributeOverhead;
    }
    auto parsed = parsedFor(c);
    if (!parsed) {
        return parsed.error();
    }
    const auto key = std::make_pair(static_cast<int>(c.scheme) * 2 + (signingTime ? 1 : 0),
                                    static_cast<int>(c.hash));
    {
        std::lock_guard lk((*parsed)->sizeMu);
        auto it = (*parsed)->maxSize.find(key);
        if (it != (*parsed)->maxSize.end()) {
            return it->second + extra;
        }
    }
    // 0x7f bytes keep every INTEGER and length at its longest encoding.
    const std::string fakeDigest(hsm::digestLength(c.hash), '\x7f');
    const std::string fakeSig(c.maxSignatureSize(), '\x7f');
    auto r = build(c, fakeDigest, &fakeSig, nullptr, signingTime);
    if (!r) {
        return r.error();
    }
    std::lock_guard lk((*parsed)->sizeMu);
    (*parsed)->maxSize[key] = r->size();
    return r->size() + extra;
}

}  // namespace kyso::signer
