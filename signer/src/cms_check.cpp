#include "cms_check.h"

#include <openssl/err.h>
#include <openssl/ts.h>
#include <openssl/x509.h>

#include <ctime>

#include "kyso/hsm/ossl_ptr.h"

namespace kyso::signer {

namespace {

std::string asString(const ASN1_STRING* s) {
    return s != nullptr ? std::string(reinterpret_cast<const char*>(::ASN1_STRING_get0_data(s)),
                                      static_cast<std::size_t>(::ASN1_STRING_length(s)))
                        : std::string();
}

// The value of the single signed attribute `nid`, or null.
ASN1_TYPE* signedAttribute(CMS_SignerInfo* si, int nid) {
    const int idx = ::CMS_signed_get_attr_by_NID(si, nid, -1);
    X509_ATTRIBUTE* attr = idx >= 0 ? ::CMS_signed_get_attr(si, idx) : nullptr;
    return attr != nullptr ? ::X509_ATTRIBUTE_get0_type(attr, 0) : nullptr;
}

// ESS signing-certificate(-v2) (RFC 5035): the signed attributes must name the signer's
// certificate by its hash, so that another certificate with the same key cannot be substituted.
// The hash is looked for in the attribute's DER under each algorithm the attribute may use.
void checkSigningCertificate(CMS_SignerInfo* si, X509* signer, SignatureFacts* out) {
    for (int nid : {NID_id_smime_aa_signingCertificateV2, NID_id_smime_aa_signingCertificate}) {
        ASN1_TYPE* attr = signedAttribute(si, nid);
        if (attr == nullptr || attr->type != V_ASN1_SEQUENCE) {
            continue;
        }
        out->hasSigningCertificateAttribute = true;
        if (signer == nullptr) {
            return;
        }
        const std::string der = asString(attr->value.sequence);
        for (const EVP_MD* h : {::EVP_sha1(), ::EVP_sha256(), ::EVP_sha384(), ::EVP_sha512()}) {
            unsigned char md[EVP_MAX_MD_SIZE];
            unsigned int len = 0;
            if (::X509_digest(signer, h, md, &len) == 1 &&
                der.find(std::string(reinterpret_cast<char*>(md), len)) != std::string::npos) {
                out->signingCertificateBound = true;
            }
        }
        if (!out->signingCertificateBound) {
            out->errors.push_back("the signing-certificate attribute names another certificate");
        }
        return;
    }
}

}  // namespace

Digester digestOfBytes(const std::string& bytes) {
    return [&bytes](const EVP_MD* md) -> std::string {
        unsigned char out[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        if (md == nullptr ||
            ::EVP_Digest(bytes.data(), bytes.size(), out, &len, md, nullptr) != 1) {
            return {};
        }
        return std::string(reinterpret_cast<char*>(out), len);
    };
}

void checkSignedData(CMS_ContentInfo* cms, const Digester& contentDigest, SignatureFacts* out) {
    STACK_OF(CMS_SignerInfo)* sis = cms != nullptr ? ::CMS_get0_SignerInfos(cms) : nullptr;
    if (sis == nullptr || sk_CMS_SignerInfo_num(sis) < 1) {
        out->errors.push_back("not a CMS SignedData with a signer");
        ::ERR_clear_error();
        return;
    }
    if (sk_CMS_SignerInfo_num(sis) > 1) {
        out->errors.push_back("more than one SignerInfo: only the first is checked");
    }
    CMS_SignerInfo* si = sk_CMS_SignerInfo_value(sis, 0);
    ::CMS_set1_signers_certs(cms, nullptr, 0);
    if (STACK_OF(X509)* certs = ::CMS_get1_certs(cms)) {
        for (int i = 0; i < sk_X509_num(certs); ++i) {
            out->certificatesDer.push_back(x509ToDer(sk_X509_value(certs, i)));
        }
        sk_X509_pop_free(certs, ::X509_free);
    }
    X509* signer = nullptr;
    X509_ALGOR* digestAlg = nullptr;
    ::CMS_SignerInfo_get0_algs(si, nullptr, &signer, &digestAlg, nullptr);
    if (signer != nullptr) {
        out->signerSubject = nameToString(::X509_get_subject_name(signer));
        out->signerCertDer = x509ToDer(signer);
    } else {
        out->errors.push_back("the signer's certificate is not in the CMS");
    }
    checkSigningCertificate(si, signer, out);
    if (ASN1_TYPE* t = signedAttribute(si, NID_pkcs9_signingTime)) {
        if (t->type == V_ASN1_UTCTIME || t->type == V_ASN1_GENERALIZEDTIME) {
            out->claimedSigningTime = timeOf(t->value.asn1_string);
        }
    }
    const ASN1_OBJECT* mdOid = nullptr;
    ::X509_ALGOR_get0(&mdOid, nullptr, nullptr, digestAlg);
    const EVP_MD* md = mdOid != nullptr ? ::EVP_get_digestbyobj(mdOid) : nullptr;
    switch (md != nullptr ? ::EVP_MD_get_type(md) : NID_undef) {
        case NID_sha256:
            out->digestAlgorithm = "SHA-256";
            break;
        case NID_sha384:
            out->digestAlgorithm = "SHA-384";
            break;
        case NID_sha512:
            out->digestAlgorithm = "SHA-512";
            break;
        case NID_sha1:
            out->digestAlgorithm = "SHA-1";
            break;
        default:
            out->digestAlgorithm = md != nullptr ? ::EVP_MD_get0_name(md) : "unknown";
    }
    if (::CMS_signed_get_attr_count(si) < 0) {
        // No signed attributes (PKCS#7 style): the signature is over the content's digest.
        const std::string computed = md != nullptr ? contentDigest(md) : std::string();
        const std::string sig = asString(::CMS_SignerInfo_get0_signature(si));
        EVP_PKEY* pub = signer != nullptr ? ::X509_get0_pubkey(signer) : nullptr;
        OsslPtr<EVP_PKEY_CTX> pctx(pub != nullptr ? ::EVP_PKEY_CTX_new(pub, nullptr) : nullptr);
        const bool ok =
            pctx && !computed.empty() && ::EVP_PKEY_verify_init(pctx.get()) == 1 &&
            ::EVP_PKEY_CTX_set_signature_md(pctx.get(), md) == 1 &&
            ::EVP_PKEY_verify(pctx.get(), reinterpret_cast<const unsigned char*>(sig.data()),
                              sig.size(), reinterpret_cast<const unsigned char*>(computed.data()),
                              computed.size()) == 1;
        // The value signs the digest itself: a wrong digest and a wrong value look the same.
        out->digestMatches = ok;
        out->signatureValid = ok;
        if (!ok) {
            out->errors.push_back("the signature value does not verify over the signed data");
        }
    } else {
        if (signer != nullptr) {
            out->signatureValid = ::CMS_SignerInfo_verify(si) == 1;
            if (!out->signatureValid) {
                out->errors.push_back("the signature value does not verify");
            }
        }
        ASN1_TYPE* digest = signedAttribute(si, NID_pkcs9_messageDigest);
        const std::string computed = md != nullptr ? contentDigest(md) : std::string();
        out->digestMatches = digest != nullptr && digest->type == V_ASN1_OCTET_STRING &&
                             !computed.empty() && asString(digest->value.octet_string) == computed;
        if (!out->digestMatches) {
            out->errors.push_back("the signed digest is not that of the signed data");
        }
    }
    // Signature timestamps: over the signature value (RFC 5126 / ETSI EN 319 122-1 5.3).
    const std::string signatureValue = asString(::CMS_SignerInfo_get0_signature(si));
    for (int idx = -1;
         (idx = ::CMS_unsigned_get_attr_by_NID(si, NID_id_smime_aa_timeStampToken, idx)) >= 0;) {
        X509_ATTRIBUTE* attr = ::CMS_unsigned_get_attr(si, idx);
        for (int v = 0; attr != nullptr && v < ::X509_ATTRIBUTE_count(attr); ++v) {
            ASN1_TYPE* t = ::X509_ATTRIBUTE_get0_type(attr, v);
            if (t == nullptr || t->type != V_ASN1_SEQUENCE) {
                out->errors.push_back("a signature timestamp is not a TimeStampToken");
                continue;
            }
            out->timestamps.push_back(
                checkTimestampToken(asString(t->value.sequence), digestOfBytes(signatureValue)));
        }
    }
    ::ERR_clear_error();
}

TimestampFacts checkTimestampToken(const std::string& tokenDer, const Digester& stamped) {
    TimestampFacts ts;
    const unsigned char* p = reinterpret_cast<const unsigned char*>(tokenDer.data());
    OsslPtr<CMS_ContentInfo> cms(
        ::d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(tokenDer.size())));
    ASN1_OCTET_STRING** content = cms ? ::CMS_get0_content(cms.get()) : nullptr;
    if (content == nullptr || *content == nullptr ||
        ::OBJ_obj2nid(::CMS_get0_eContentType(cms.get())) != NID_id_smime_ct_TSTInfo) {
        ts.errors.push_back("the timestamp token is not a CMS SignedData over a TSTInfo");
        ::ERR_clear_error();
        return ts;
    }
    const std::string tstDer = asString(*content);
    SignatureFacts signer;
    checkSignedData(cms.get(), digestOfBytes(tstDer), &signer);
    ts.signatureValid = signer.signatureValid && signer.digestMatches;
    ts.tsaSubject = signer.signerSubject;
    ts.tsaCertDer = signer.signerCertDer;
    ts.certificatesDer = std::move(signer.certificatesDer);
    for (auto& e : signer.errors) {
        ts.errors.push_back("timestamp: " + e);
    }
    const unsigned char* q = reinterpret_cast<const unsigned char*>(tstDer.data());
    TS_TST_INFO* tst = ::d2i_TS_TST_INFO(nullptr, &q, static_cast<long>(tstDer.size()));
    if (tst == nullptr) {
        ts.errors.push_back("the timestamp's content is not a TSTInfo");
        ::ERR_clear_error();
        return ts;
    }
    ts.genTime = timeOf(::TS_TST_INFO_get_time(tst));
    TS_MSG_IMPRINT* imp = ::TS_TST_INFO_get_msg_imprint(tst);
    const ASN1_OBJECT* impOid = nullptr;
    ::X509_ALGOR_get0(&impOid, nullptr, nullptr, ::TS_MSG_IMPRINT_get_algo(imp));
    const EVP_MD* md = impOid != nullptr ? ::EVP_get_digestbyobj(impOid) : nullptr;
    const std::string expected = md != nullptr ? stamped(md) : std::string();
    ts.imprintMatches = !expected.empty() && asString(::TS_MSG_IMPRINT_get_msg(imp)) == expected;
    if (!ts.imprintMatches) {
        ts.errors.push_back("the timestamp's imprint is not that of the stamped data");
    }
    ::TS_TST_INFO_free(tst);
    ::ERR_clear_error();
    return ts;
}

}  // namespace kyso::signer
