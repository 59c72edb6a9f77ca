// XML seals with libxmlsec1. xmlsec builds the References, computes their digests and
// canonicalizes SignedInfo; the SignatureValue is then made by the token over those exact bytes
// (Credential::signDigest), so no private key is ever in this process.
//
// Why not hand xmlsec the token-backed EVP_PKEY: libxmlsec1 1.2.37 asks a key whether it is
// private by looking for the private exponent / scalar in the EVP_PKEY, finds none in a
// token-backed key, and refuses to sign with it ("key not found"). xmlsec therefore signs with a
// throwaway in-memory key of the same algorithm, whose SignatureValue is discarded and replaced.
// The result is checked with the certificate's public key before it is returned.
#include "kyso/signer/xades.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/valid.h>
#include <libxml/xmlerror.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <xmlsec/crypto.h>
#include <xmlsec/errors.h>
#include <xmlsec/membuf.h>
#include <xmlsec/openssl/evp.h>
#include <xmlsec/templates.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/xmlsec.h>
#include <xmlsec/xmltree.h>

#include <cctype>
#include <cstdio>
#include <ctime>
#include <memory>

#include "kyso/hsm/ossl_ptr.h"

namespace kyso::signer {

namespace {

constexpr const char* kDsigNs = "http://www.w3.org/2000/09/xmldsig#";
constexpr const char* kSignedPropertiesType = "http://uri.etsi.org/01903#SignedProperties";
constexpr const char* kSha256Uri = "http://www.w3.org/2001/04/xmlenc#sha256";

const xmlChar* X(const char* s) {
    return reinterpret_cast<const xmlChar*>(s);
}
const xmlChar* X(const std::string& s) {
    return X(s.c_str());
}

struct DocFree {
    void operator()(xmlDoc* d) const noexcept { ::xmlFreeDoc(d); }
};
using DocPtr = std::unique_ptr<xmlDoc, DocFree>;

struct ParserCtxtFree {
    void operator()(xmlParserCtxt* c) const noexcept { ::xmlFreeParserCtxt(c); }
};

struct DSigCtxFree {
    void operator()(xmlSecDSigCtx* c) const noexcept { ::xmlSecDSigCtxDestroy(c); }
};
using DSigCtxPtr = std::unique_ptr<xmlSecDSigCtx, DSigCtxFree>;

struct KeyFree {
    void operator()(xmlSecKey* k) const noexcept { ::xmlSecKeyDestroy(k); }
};
using KeyPtr = std::unique_ptr<xmlSecKey, KeyFree>;

struct GeneralNamesFree {
    void operator()(GENERAL_NAMES* n) const noexcept { ::GENERAL_NAMES_free(n); }
};

// xmlsec reports errors through one process-wide callback; keeping the first message per thread
// lets a failed call carry its cause without xmlsec writing to stderr.
thread_local std::string t_xmlsecError;

void recordXmlsecError(const char*, int, const char* func, const char*, const char* subject, int,
                       const char* msg) {
    // The first report is the innermost cause; the callers' reports that follow add little.
    if (!t_xmlsecError.empty()) {
        return;
    }
    t_xmlsecError = std::string(func != nullptr ? func : "?") + ": " +
                    (subject != nullptr ? std::string(subject) + ": " : std::string()) +
                    (msg != nullptr ? msg : "");
}

// Set by the DOCTYPE callback of the parse running on this thread.
thread_local bool t_sawDoctype = false;

// Called at "<!DOCTYPE name ..." before the internal subset is read: nothing of a DTD is parsed,
// loaded or expanded.
void refuseDoctype(void* ctx, const xmlChar*, const xmlChar*, const xmlChar*) {
    t_sawDoctype = true;
    ::xmlStopParser(static_cast<xmlParserCtxtPtr>(ctx));
}

Status initOnce() {
    // A function-local static: initialised once, thread-safely, before any xmlsec use.
    static const Status status = []() -> Status {
        ::xmlInitParser();
        if (::xmlSecInit() < 0) {
            return Error::make("xml.init", "xmlSecInit failed");
        }
        if (xmlSecCheckVersion() != 1) {
            return Error::make("xml.init", "libxmlsec1 version mismatch");
        }
        // No key files, no config: keys are handed to each context explicitly.
        if (xmlSecCryptoAppInit(nullptr) < 0 || xmlSecCryptoInit() < 0) {
            return Error::make("xml.init", "xmlsec OpenSSL back end failed to initialise");
        }
        ::xmlSecErrorsSetCallback(recordXmlsecError);
        return Ok{};
    }();
    return status;
}

Result<DocPtr> parseSafely(std::string_view xml) {
    if (xml.size() > static_cast<std::size_t>(INT32_MAX)) {
        return Error::make("xml.invalid", "document too large");
    }
    std::unique_ptr<xmlParserCtxt, ParserCtxtFree> ctxt(::xmlNewParserCtxt());
    if (!ctxt || ctxt->sax == nullptr) {
        return Error::make("xml.invalid", "cannot create an XML parser");
    }
    ctxt->sax->internalSubset = refuseDoctype;
    t_sawDoctype = false;
    // NONET, and deliberately none of NOENT, DTDLOAD, DTDATTR, DTDVALID, XINCLUDE, HUGE.
    const int options = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING;
    DocPtr doc(::xmlCtxtReadMemory(ctxt.get(), xml.data(), static_cast<int>(xml.size()), nullptr,
                                   nullptr, options));
    if (t_sawDoctype || (doc && (doc->intSubset != nullptr || doc->extSubset != nullptr))) {
        return Error::make("xml.invalid", "documents with a DOCTYPE are refused");
    }
    if (!doc) {
        const xmlError* e = ::xmlCtxtGetLastError(ctxt.get());
        std::string why = e != nullptr && e->message != nullptr ? e->message : "not well-formed";
        while (!why.empty() && std::isspace(static_cast<unsigned char>(why.back()))) {
            why.pop_back();
        }
        return Error::make("xml.invalid", "not well-formed XML: " + why,
                           e != nullptr ? static_cast<unsigned long>(e->code) : 0);
    }
    if (::xmlDocGetRootElement(doc.get()) == nullptr) {
        return Error::make("xml.invalid", "no root element");
    }
    return doc;
}

std::string base64(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    const int n = ::EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                    reinterpret_cast<const unsigned char*>(bytes.data()),
                                    static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

// Decodes base64 with any whitespace (XML text wraps it); nullopt when malformed.
std::optional<std::string> unbase64(std::string_view text) {
    std::string clean;
    for (char c : text) {
        if (!std::isspace(static_cast<unsigned char>(c))) {
            clean.push_back(c);
        }
    }
    if (clean.empty() || clean.size() % 4 != 0) {
        return std::nullopt;
    }
    std::string out(clean.size() / 4 * 3, '\0');
    const int n = ::EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                    reinterpret_cast<const unsigned char*>(clean.data()),
                                    static_cast<int>(clean.size()));
    if (n < 0) {
        return std::nullopt;
    }
    // EVP_DecodeBlock counts the padding as zero bytes.
    std::size_t pad = 0;
    for (auto it = clean.rbegin(); it != clean.rend() && *it == '=' && pad < 2; ++it) {
        ++pad;
    }
    out.resize(static_cast<std::size_t>(n) - pad);
    return out;
}

std::optional<std::string> digest(const EVP_MD* md, std::string_view data) {
    unsigned char buf[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (md == nullptr || ::EVP_Digest(data.data(), data.size(), buf, &len, md, nullptr) != 1) {
        return std::nullopt;
    }
    return std::string(reinterpret_cast<char*>(buf), len);
}

const EVP_MD* digestFromUri(const std::string& uri) {
    if (uri == kSha256Uri) {
        return ::EVP_sha256();
    }
    if (uri == "http://www.w3.org/2001/04/xmldsig-more#sha384") {
        return ::EVP_sha384();
    }
    if (uri == "http://www.w3.org/2001/04/xmlenc#sha512") {
        return ::EVP_sha512();
    }
    return nullptr;  // SHA-1 and unknown digests never match
}

void appendDerLength(std::string& out, std::size_t n) {
    if (n < 0x80) {
        out.push_back(static_cast<char>(n));
        return;
    }
    std::string bytes;
    for (; n > 0; n >>= 8) {
        bytes.insert(bytes.begin(), static_cast<char>(n & 0xff));
    }
    out.push_back(static_cast<char>(0x80 | bytes.size()));
    out += bytes;
}

// RFC 5035 IssuerSerial { issuer GeneralNames (one directoryName), serialNumber } in DER, the
// content of XAdES IssuerSerialV2.
std::optional<std::string> issuerSerialDer(X509* cert) {
    std::unique_ptr<GENERAL_NAMES, GeneralNamesFree> names(sk_GENERAL_NAME_new_null());
    GENERAL_NAME* gn = ::GENERAL_NAME_new();
    X509_NAME* issuer = ::X509_NAME_dup(::X509_get_issuer_name(cert));
    if (!names || gn == nullptr || issuer == nullptr) {
        ::GENERAL_NAME_free(gn);
        ::X509_NAME_free(issuer);
        return std::nullopt;
    }
    ::GENERAL_NAME_set0_value(gn, GEN_DIRNAME, issuer);
    if (sk_GENERAL_NAME_push(names.get(), gn) <= 0) {
        ::GENERAL_NAME_free(gn);
        return std::nullopt;
    }
    std::string content;
    unsigned char* buf = nullptr;
    int n = ::i2d_GENERAL_NAMES(names.get(), &buf);
    if (n <= 0) {
        return std::nullopt;
    }
    content.assign(reinterpret_cast<char*>(buf), static_cast<std::size_t>(n));
    ::OPENSSL_free(buf);
    buf = nullptr;
    n = ::i2d_ASN1_INTEGER(::X509_get0_serialNumber(cert), &buf);
    if (n <= 0) {
        return std::nullopt;
    }
    content.append(reinterpret_cast<char*>(buf), static_cast<std::size_t>(n));
    ::OPENSSL_free(buf);
    std::string out(1, '\x30');
    appendDerLength(out, content.size());
    return out + content;
}

std::string formatTime(std::chrono::system_clock::time_point when) {
    const std::time_t t = std::chrono::system_clock::to_time_t(when);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

// xs:dateTime with a time zone ("...Z" or "...+07:00"), fractions of a second dropped.
std::optional<std::chrono::system_clock::time_point> parseTime(const std::string& s) {
    std::tm tm{};
    int consumed = 0;
    if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                    &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6 ||
        consumed != 19) {
        return std::nullopt;
    }
    std::size_t i = 19;
    if (i < s.size() && s[i] == '.') {
        ++i;
        while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
            ++i;
        }
    }
    long offset = 0;
    const std::string zone = s.substr(i);
    if (zone == "Z") {
        offset = 0;
    } else if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':') {
        int hh = 0;
        int mm = 0;
        if (std::sscanf(zone.c_str() + 1, "%2d:%2d", &hh, &mm) != 2) {
            return std::nullopt;
        }
        offset = (zone[0] == '+' ? 1 : -1) * (hh * 3600L + mm * 60L);
    } else {
        return std::nullopt;  // a local time without zone is not a point in time
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    const std::time_t t = ::timegm(&tm);
    return std::chrono::system_clock::from_time_t(t - offset);
}

std::string textOf(xmlNodePtr node) {
    xmlChar* c = ::xmlNodeGetContent(node);
    std::string out = c != nullptr ? reinterpret_cast<const char*>(c) : "";
    ::xmlFree(c);
    return out;
}

std::optional<std::string> attrOf(xmlNodePtr node, const char* name) {
    xmlChar* v = ::xmlGetProp(node, X(name));
    if (v == nullptr) {
        return std::nullopt;
    }
    std::string out = reinterpret_cast<const char*>(v);
    ::xmlFree(v);
    return out;
}

xmlNodePtr child(xmlNodePtr parent, const char* name, const char* ns) {
    return parent != nullptr ? ::xmlSecFindChild(parent, X(name), X(ns)) : nullptr;
}

std::vector<xmlNodePtr> children(xmlNodePtr parent, const char* name, const char* ns) {
    std::vector<xmlNodePtr> out;
    if (parent == nullptr) {
        return out;
    }
    for (xmlNodePtr n = parent->children; n != nullptr; n = n->next) {
        if (n->type == XML_ELEMENT_NODE && ::xmlSecCheckNodeName(n, X(name), X(ns)) == 1) {
            out.push_back(n);
        }
    }
    return out;
}

std::string randomHex(std::size_t bytes) {
    std::string raw(bytes, '\0');
    if (::RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1) {
        return {};
    }
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : raw) {
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xf]);
    }
    return out;
}

struct Algorithms {
    xmlSecTransformId sign;
    xmlSecTransformId digest;
};

Result<Algorithms> algorithmsFor(const hsm::Credential& c) {
    if (c.scheme == hsm::SignScheme::RsaPss) {
        return Error::make("key.unsupported", "RSA-PSS XML signatures are not made");
    }
    const bool rsa = c.key.type == hsm::KeyType::Rsa;
    switch (c.hash) {
        case hsm::HashAlg::Sha256:
            return Algorithms{rsa ? xmlSecTransformRsaSha256Id : xmlSecTransformEcdsaSha256Id,
                              xmlSecTransformSha256Id};
        case hsm::HashAlg::Sha384:
            return Algorithms{rsa ? xmlSecTransformRsaSha384Id : xmlSecTransformEcdsaSha384Id,
                              xmlSecTransformSha384Id};
        case hsm::HashAlg::Sha512:
            return Algorithms{rsa ? xmlSecTransformRsaSha512Id : xmlSecTransformEcdsaSha512Id,
                              xmlSecTransformSha512Id};
    }
    return Error::make("key.unsupported", "unknown hash");
}

// An xmlsec key holding `pkey` (adopted on success, left to the caller on failure). xmlsec
// up-references the EVP_PKEY where it needs another owner; it never copies key material.
Result<KeyPtr> xmlsecKey(OsslPtr<EVP_PKEY>& pkey) {
    KeyPtr key(::xmlSecKeyCreate());
    if (!key) {
        return Error::make("sign.failed", "xmlSecKeyCreate failed");
    }
    xmlSecKeyDataPtr data = ::xmlSecOpenSSLEvpKeyAdopt(pkey.get());
    if (data == nullptr) {
        return Error::make("key.unsupported", "xmlsec does not take this key: " + t_xmlsecError);
    }
    pkey.release();  // owned by `data` now
    if (::xmlSecKeySetValue(key.get(), data) < 0) {
        ::xmlSecKeyDataDestroy(data);
        return Error::make("sign.failed", "xmlSecKeySetValue failed: " + t_xmlsecError);
    }
    return key;
}

// The throwaway keys xmlsec signs with before the token's SignatureValue replaces its output;
// made once per process, in memory, never used for anything that is kept.
EVP_PKEY* placeholderKey(hsm::KeyType type) {
    static EVP_PKEY* const rsa = ::EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", std::size_t{2048});
    static EVP_PKEY* const ec = ::EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    return type == hsm::KeyType::Rsa ? rsa : ec;
}

const EVP_MD* mdOf(hsm::HashAlg h) {
    switch (h) {
        case hsm::HashAlg::Sha256:
            return ::EVP_sha256();
        case hsm::HashAlg::Sha384:
            return ::EVP_sha384();
        case hsm::HashAlg::Sha512:
            return ::EVP_sha512();
    }
    return nullptr;
}

// XML DSig wants ECDSA as r || s, each padded to the size of the group order (RFC 4050); the
// token returns a DER ECDSA-Sig-Value.
std::optional<std::string> ecdsaDerToRaw(std::string_view der, EVP_PKEY* pub) {
    const std::size_t n = static_cast<std::size_t>((::EVP_PKEY_get_bits(pub) + 7) / 8);
    const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
    ECDSA_SIG* sig = ::d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
    if (sig == nullptr) {
        return der.size() == 2 * n ? std::optional<std::string>(std::string(der)) : std::nullopt;
    }
    std::string raw(2 * n, '\0');
    auto* out = reinterpret_cast<unsigned char*>(raw.data());
    const bool ok = ::BN_bn2binpad(::ECDSA_SIG_get0_r(sig), out, static_cast<int>(n)) > 0 &&
                    ::BN_bn2binpad(::ECDSA_SIG_get0_s(sig), out + n, static_cast<int>(n)) > 0;
    ::ECDSA_SIG_free(sig);
    return ok ? std::optional<std::string>(raw) : std::nullopt;
}

// Checks an XML DSig SignatureValue over `signedInfo` with `pub` (raw r || s for ECDSA).
bool checkSignatureValue(EVP_PKEY* pub, const EVP_MD* md, std::string_view signedInfo,
                         std::string_view value, bool ecdsa) {
    std::string der(value);
    if (ecdsa) {
        const std::size_t n = value.size() / 2;
        ECDSA_SIG* sig = ::ECDSA_SIG_new();
        BIGNUM* r = ::BN_bin2bn(reinterpret_cast<const unsigned char*>(value.data()),
                                static_cast<int>(n), nullptr);
        BIGNUM* s = ::BN_bin2bn(reinterpret_cast<const unsigned char*>(value.data()) + n,
                                static_cast<int>(n), nullptr);
        if (sig == nullptr || r == nullptr || s == nullptr || ::ECDSA_SIG_set0(sig, r, s) != 1) {
            ::ECDSA_SIG_free(sig);
            ::BN_free(r);
            ::BN_free(s);
            return false;
        }
        unsigned char* buf = nullptr;
        const int len = ::i2d_ECDSA_SIG(sig, &buf);
        ::ECDSA_SIG_free(sig);
        if (len <= 0) {
            return false;
        }
        der.assign(reinterpret_cast<char*>(buf), static_cast<std::size_t>(len));
        ::OPENSSL_free(buf);
    }
    OsslPtr<EVP_MD_CTX> ctx(::EVP_MD_CTX_new());
    return ctx && ::EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, pub) == 1 &&
           ::EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(der.data()),
                              der.size(), reinterpret_cast<const unsigned char*>(signedInfo.data()),
                              signedInfo.size()) == 1;
}

}  // namespace

Result<std::string> sealXml(const hsm::Credential& seal, std::string_view xml,
                            std::chrono::system_clock::time_point when, const XmlStamp* stamp) {
    if (auto s = initOnce(); !s) {
        return s.error();
    }
    auto parsed = parseSafely(xml);
    if (!parsed) {
        return parsed.error();
    }
    DocPtr doc = std::move(*parsed);
    xmlNodePtr root = ::xmlDocGetRootElement(doc.get());
    if (stamp != nullptr) {
        xmlNodePtr el = ::xmlNewChild(root, nullptr, BAD_CAST stamp->name.c_str(), nullptr);
        xmlNsPtr ns = el == nullptr ? nullptr
                                    : ::xmlNewNs(el, BAD_CAST stamp->ns.c_str(),
                                                 BAD_CAST stamp->prefix.c_str());
        if (ns == nullptr) {
            return Error::make("xml.invalid", "cannot add the receipt element");
        }
        ::xmlSetNs(el, ns);
        for (const auto& [k, v] : stamp->attributes) {
            ::xmlSetProp(el, BAD_CAST k.c_str(), BAD_CAST v.c_str());
        }
    }

    auto algs = algorithmsFor(seal);
    if (!algs) {
        return algs.error();
    }
    OsslPtr<X509> cert = x509FromDer(seal.certificateDer);
    if (!cert) {
        return Error::make("certificate.invalid", "the seal certificate is not DER X.509");
    }
    const auto certDigest = digest(::EVP_sha256(), seal.certificateDer);
    const auto issuerSerial = issuerSerialDer(cert.get());
    if (!certDigest || !issuerSerial) {
        return opensslError("certificate.invalid", "cannot encode SigningCertificateV2");
    }
    OsslPtr<EVP_PKEY> publicKey(::X509_get_pubkey(cert.get()));
    const bool ecdsa = seal.key.type == hsm::KeyType::Ec;
    if (!publicKey ||
        ::EVP_PKEY_get_base_id(publicKey.get()) != (ecdsa ? EVP_PKEY_EC : EVP_PKEY_RSA)) {
        return Error::make("certificate.invalid",
                           "the seal certificate's key is not the credential's");
    }
    EVP_PKEY* placeholder = placeholderKey(seal.key.type);
    if (placeholder == nullptr || ::EVP_PKEY_up_ref(placeholder) != 1) {
        return opensslError("sign.failed", "cannot make xmlsec's placeholder key");
    }
    OsslPtr<EVP_PKEY> placeholderRef(placeholder);
    auto key = xmlsecKey(placeholderRef);
    if (!key) {
        return key.error();
    }

    // Random ids so a second seal on the same document cannot collide with the first.
    const std::string suffix = randomHex(8);
    if (suffix.empty()) {
        return opensslError("sign.failed", "no randomness for the signature ids");
    }
    const std::string sigId = "kyso-sig-" + suffix;
    const std::string spId = "kyso-sp-" + suffix;

    xmlNodePtr sig = ::xmlSecTmplSignatureCreateNsPref(doc.get(), xmlSecTransformExclC14NId,
                                                       algs->sign, X(sigId), X("ds"));
    if (sig == nullptr) {
        return Error::make("sign.failed", "cannot build the Signature template");
    }
    if (::xmlAddChild(root, sig) == nullptr) {
        ::xmlFreeNode(sig);
        return Error::make("sign.failed", "cannot add the Signature to the root");
    }
    xmlNodePtr docRef =
        ::xmlSecTmplSignatureAddReference(sig, algs->digest, nullptr, X(""), nullptr);
    xmlNodePtr spRef = ::xmlSecTmplSignatureAddReference(sig, algs->digest, nullptr, X("#" + spId),
                                                         X(kSignedPropertiesType));
    if (docRef == nullptr || spRef == nullptr ||
        ::xmlSecTmplReferenceAddTransform(docRef, xmlSecTransformEnvelopedId) == nullptr ||
        ::xmlSecTmplReferenceAddTransform(docRef, xmlSecTransformExclC14NId) == nullptr ||
        ::xmlSecTmplReferenceAddTransform(spRef, xmlSecTransformExclC14NId) == nullptr) {
        return Error::make("sign.failed", "cannot build the References");
    }

    // XAdES QualifyingProperties in a ds:Object.
    xmlNsPtr dsNs = sig->ns;
    xmlNodePtr object = ::xmlSecTmplSignatureAddObject(sig, nullptr, nullptr, nullptr);
    xmlNodePtr qp = object != nullptr
                        ? ::xmlNewChild(object, nullptr, X("QualifyingProperties"), nullptr)
                        : nullptr;
    if (qp == nullptr) {
        return Error::make("sign.failed", "cannot build the XAdES properties");
    }
    xmlNsPtr xades = ::xmlNewNs(qp, X(kXadesNamespace), X("xades"));
    ::xmlSetNs(qp, xades);
    ::xmlNewProp(qp, X("Target"), X("#" + sigId));
    xmlNodePtr sp = ::xmlNewChild(qp, xades, X("SignedProperties"), nullptr);
    xmlAttrPtr spIdAttr = ::xmlNewProp(sp, X("Id"), X(spId));
    // Registered so that xmlsec resolves URI="#kyso-sp-..." to this element and nothing else.
    if (spIdAttr == nullptr || ::xmlAddID(nullptr, doc.get(), X(spId), spIdAttr) == nullptr) {
        return Error::make("sign.failed", "cannot register the SignedProperties Id");
    }
    xmlNodePtr ssp = ::xmlNewChild(sp, xades, X("SignedSignatureProperties"), nullptr);
    ::xmlNewTextChild(ssp, xades, X("SigningTime"), X(formatTime(when)));
    xmlNodePtr scv2 = ::xmlNewChild(ssp, xades, X("SigningCertificateV2"), nullptr);
    xmlNodePtr certNode = ::xmlNewChild(scv2, xades, X("Cert"), nullptr);
    xmlNodePtr certDigestNode = ::xmlNewChild(certNode, xades, X("CertDigest"), nullptr);
    xmlNodePtr dm = ::xmlNewChild(certDigestNode, dsNs, X("DigestMethod"), nullptr);
    ::xmlNewProp(dm, X("Algorithm"), X(kSha256Uri));
    ::xmlNewTextChild(certDigestNode, dsNs, X("DigestValue"), X(base64(*certDigest)));
    ::xmlNewTextChild(certNode, xades, X("IssuerSerialV2"), X(base64(*issuerSerial)));

    DSigCtxPtr ctx(::xmlSecDSigCtxCreate(nullptr));
    if (!ctx) {
        return Error::make("sign.failed", "xmlSecDSigCtxCreate failed");
    }
    ctx->signKey = key->release();  // owned by the context
    ctx->enabledReferenceUris = static_cast<xmlSecTransformUriType>(
        xmlSecTransformUriTypeEmpty | xmlSecTransformUriTypeSameDocument);
    // Keep the canonical SignedInfo xmlsec signed: the token signs exactly these bytes.
    ctx->flags |= XMLSEC_DSIG_FLAGS_STORE_SIGNATURE;
    t_xmlsecError.clear();
    if (::xmlSecDSigCtxSign(ctx.get(), sig) < 0 || ctx->status != xmlSecDSigStatusSucceeded) {
        return opensslError("sign.failed", "xmlsec signing failed: " + t_xmlsecError);
    }
    xmlSecBufferPtr c14n = ctx->preSignMemBufMethod != nullptr
                               ? ::xmlSecTransformMemBufGetBuffer(ctx->preSignMemBufMethod)
                               : nullptr;
    xmlNodePtr signatureValue = child(sig, "SignatureValue", kDsigNs);
    if (c14n == nullptr || signatureValue == nullptr) {
        return Error::make("sign.failed", "xmlsec kept no canonical SignedInfo");
    }
    const std::string signedInfo(reinterpret_cast<const char*>(::xmlSecBufferGetData(c14n)),
                                 ::xmlSecBufferGetSize(c14n));
    const auto signedInfoDigest = digest(mdOf(seal.hash), signedInfo);
    if (!signedInfoDigest) {
        return opensslError("sign.failed", "cannot digest SignedInfo");
    }
    auto tokenSignature = seal.signDigest(*signedInfoDigest);
    if (!tokenSignature) {
        return tokenSignature.error();
    }
    std::optional<std::string> value = *tokenSignature;
    if (ecdsa) {
        value = ecdsaDerToRaw(*tokenSignature, publicKey.get());
    }
    // A token that signed with another key or a broken signature must not leave here.
    if (!value ||
        !checkSignatureValue(publicKey.get(), mdOf(seal.hash), signedInfo, *value, ecdsa)) {
        ::ERR_clear_error();
        return Error::make("sign.failed",
                           "the token's signature does not verify with the seal certificate");
    }
    ::xmlNodeSetContent(signatureValue, X(base64(*value)));

    // KeyInfo is added after signing: it is not signed (SigningCertificateV2 binds the
    // certificate), and xmlsec's KeyInfo writer then has nothing to rewrite.
    xmlNodePtr keyInfo = ::xmlSecTmplSignatureEnsureKeyInfo(sig, nullptr);
    xmlNodePtr x509Data = keyInfo != nullptr ? ::xmlSecTmplKeyInfoAddX509Data(keyInfo) : nullptr;
    if (x509Data == nullptr) {
        return Error::make("sign.failed", "cannot add KeyInfo");
    }
    ::xmlNewTextChild(x509Data, dsNs, X("X509Certificate"), X(base64(seal.certificateDer)));
    for (const auto& der : seal.chainDer) {
        ::xmlNewTextChild(x509Data, dsNs, X("X509Certificate"), X(base64(der)));
    }

    xmlChar* out = nullptr;
    int outLen = 0;
    ::xmlDocDumpMemoryEnc(doc.get(), &out, &outLen, "UTF-8");
    if (out == nullptr) {
        return Error::make("sign.failed", "cannot serialize the sealed document");
    }
    std::string result(reinterpret_cast<char*>(out), static_cast<std::size_t>(outLen));
    ::xmlFree(out);
    return result;
}

Result<XmlSignatureFacts> verifyXml(std::string_view xml) {
    if (auto s = initOnce(); !s) {
        return s.error();
    }
    auto parsed = parseSafely(xml);
    if (!parsed) {
        return parsed.error();
    }
    DocPtr doc = std::move(*parsed);
    xmlNodePtr root = ::xmlDocGetRootElement(doc.get());
    xmlNodePtr sig = ::xmlSecCheckNodeName(root, xmlSecNodeSignature, xmlSecDSigNs) == 1
                         ? root
                         : ::xmlSecFindNode(root, xmlSecNodeSignature, xmlSecDSigNs);
    if (sig == nullptr) {
        return Error::make("xml.invalid", "no ds:Signature in the document");
    }

    XmlSignatureFacts facts;
    xmlNodePtr signedInfo = child(sig, "SignedInfo", kDsigNs);
    if (xmlNodePtr sm = child(signedInfo, "SignatureMethod", kDsigNs)) {
        facts.signatureMethod = attrOf(sm, "Algorithm").value_or("");
    }

    // Certificates of KeyInfo, in document order.
    std::vector<OsslPtr<X509>> certs;
    for (xmlNodePtr data : children(child(sig, "KeyInfo", kDsigNs), "X509Data", kDsigNs)) {
        for (xmlNodePtr c : children(data, "X509Certificate", kDsigNs)) {
            if (auto der = unbase64(textOf(c))) {
                if (OsslPtr<X509> x = x509FromDer(*der)) {
                    certs.push_back(std::move(x));
                }
            }
        }
    }

    // XAdES: the QualifyingProperties aimed at this signature.
    const std::optional<std::string> sigId = attrOf(sig, "Id");
    xmlNodePtr signedProps = nullptr;
    for (xmlNodePtr obj : children(sig, "Object", kDsigNs)) {
        for (xmlNodePtr qp : children(obj, "QualifyingProperties", kXadesNamespace)) {
            const auto target = attrOf(qp, "Target");
            if (signedProps == nullptr && (!sigId || target == "#" + *sigId)) {
                signedProps = child(qp, "SignedProperties", kXadesNamespace);
            }
        }
    }
    std::optional<std::string> spId;
    xmlNodePtr signingCertV2 = nullptr;
    xmlNodePtr signingCertV1 = nullptr;
    if (signedProps != nullptr) {
        xmlNodePtr ssp = child(signedProps, "SignedSignatureProperties", kXadesNamespace);
        if (xmlNodePtr st = child(ssp, "SigningTime", kXadesNamespace)) {
            facts.signingTime = parseTime(textOf(st));
        }
        signingCertV2 = child(ssp, "SigningCertificateV2", kXadesNamespace);
        signingCertV1 = child(ssp, "SigningCertificate", kXadesNamespace);
        // Only this element's Id is made resolvable: a "#id" reference cannot be pointed at
        // another element carrying the same value.
        xmlAttrPtr idAttr = ::xmlHasProp(signedProps, X("Id"));
        spId = attrOf(signedProps, "Id");
        if (idAttr != nullptr && spId &&
            ::xmlAddID(nullptr, doc.get(), X(*spId), idAttr) == nullptr) {
            spId.reset();  // a duplicate id: the reference cannot be trusted to mean this element
        }
    }

    // The first Cert of SigningCertificate(V2): its digest and, for V2, IssuerSerialV2.
    xmlNodePtr firstCert =
        child(signingCertV2 != nullptr ? signingCertV2 : signingCertV1, "Cert", kXadesNamespace);
    auto certMatches = [&](X509* x) {
        if (firstCert == nullptr) {
            return false;
        }
        xmlNodePtr cd = child(firstCert, "CertDigest", kXadesNamespace);
        xmlNodePtr dm = child(cd, "DigestMethod", kDsigNs);
        xmlNodePtr dv = child(cd, "DigestValue", kDsigNs);
        if (dm == nullptr || dv == nullptr) {
            return false;
        }
        const auto expected = unbase64(textOf(dv));
        const auto actual =
            digest(digestFromUri(attrOf(dm, "Algorithm").value_or("")), x509ToDer(x));
        if (!expected || !actual || *expected != *actual) {
            return false;
        }
        if (xmlNodePtr is = child(firstCert, "IssuerSerialV2", kXadesNamespace)) {
            const auto mine = issuerSerialDer(x);
            const auto theirs = unbase64(textOf(is));
            return mine && theirs && *mine == *theirs;  // DER is unique: bytes compare
        }
        return true;
    };

    // The signer: the KeyInfo certificate SigningCertificate names (signed, so it is the
    // signer's own statement), else the one that issued none of the others.
    std::size_t signer = certs.size();
    for (std::size_t i = 0; i < certs.size() && signer == certs.size(); ++i) {
        if (certMatches(certs[i].get())) {
            signer = i;
        }
    }
    for (std::size_t i = 0; i < certs.size() && signer == certs.size(); ++i) {
        bool issuesAnother = false;
        for (std::size_t j = 0; j < certs.size(); ++j) {
            if (j != i && ::X509_check_issued(certs[i].get(), certs[j].get()) == X509_V_OK) {
                issuesAnother = true;
            }
        }
        if (!issuesAnother) {
            signer = i;
        }
    }
    if (signer == certs.size() && !certs.empty()) {
        signer = 0;
    }
    ::ERR_clear_error();
    if (signer == certs.size()) {
        facts.failure = "no X.509 certificate in KeyInfo";
        return facts;
    }
    facts.certificateDer = x509ToDer(certs[signer].get());
    for (std::size_t i = 0; i < certs.size(); ++i) {
        if (i != signer) {
            facts.chainDer.push_back(x509ToDer(certs[i].get()));
        }
    }
    facts.signingCertificateMatches = certMatches(certs[signer].get());

    OsslPtr<EVP_PKEY> pub(::X509_get_pubkey(certs[signer].get()));
    if (!pub) {
        facts.failure = "the signer certificate's public key is unreadable";
        ::ERR_clear_error();
        return facts;
    }
    auto key = xmlsecKey(pub);
    if (!key) {
        facts.failure = key.error().detail;
        return facts;
    }
    DSigCtxPtr ctx(::xmlSecDSigCtxCreate(nullptr));
    if (!ctx) {
        return Error::make("xml.verify", "xmlSecDSigCtxCreate failed");
    }
    ctx->signKey = key->release();  // owned by the context; KeyInfo is not read
    // Nothing outside the document is fetched, and only the transforms an enveloped XAdES
    // signature needs are run (no XPath, XSLT or base64 transform over the document).
    ctx->enabledReferenceUris = static_cast<xmlSecTransformUriType>(
        xmlSecTransformUriTypeEmpty | xmlSecTransformUriTypeSameDocument);
    const xmlSecTransformId c14n[] = {
        xmlSecTransformInclC14NId,   xmlSecTransformInclC14NWithCommentsId,
        xmlSecTransformInclC14N11Id, xmlSecTransformInclC14N11WithCommentsId,
        xmlSecTransformExclC14NId,   xmlSecTransformExclC14NWithCommentsId};
    const xmlSecTransformId digests[] = {xmlSecTransformSha256Id, xmlSecTransformSha384Id,
                                         xmlSecTransformSha512Id};
    const xmlSecTransformId signatures[] = {
        xmlSecTransformRsaSha256Id,   xmlSecTransformRsaSha384Id,   xmlSecTransformRsaSha512Id,
        xmlSecTransformEcdsaSha256Id, xmlSecTransformEcdsaSha384Id, xmlSecTransformEcdsaSha512Id};
    bool enabled =
        ::xmlSecDSigCtxEnableReferenceTransform(ctx.get(), xmlSecTransformEnvelopedId) >= 0;
    for (auto id : c14n) {
        enabled = enabled && ::xmlSecDSigCtxEnableReferenceTransform(ctx.get(), id) >= 0 &&
                  ::xmlSecDSigCtxEnableSignatureTransform(ctx.get(), id) >= 0;
    }
    for (auto id : digests) {
        enabled = enabled && ::xmlSecDSigCtxEnableReferenceTransform(ctx.get(), id) >= 0;
    }
    for (auto id : signatures) {
        enabled = enabled && ::xmlSecDSigCtxEnableSignatureTransform(ctx.get(), id) >= 0;
    }
    if (!enabled) {
        return Error::make("xml.verify", "cannot restrict the xmlsec transforms");
    }

    t_xmlsecError.clear();
    const int rc = ::xmlSecDSigCtxVerify(ctx.get(), sig);
    ::ERR_clear_error();
    const bool cryptoValid = rc >= 0 && ctx->status == xmlSecDSigStatusSucceeded;

    bool documentCovered = false;
    bool propertiesCovered = false;
    for (xmlNodePtr ref : children(signedInfo, "Reference", kDsigNs)) {
        const auto uri = attrOf(ref, "URI");
        if (uri && uri->empty()) {
            documentCovered = true;
        }
        if (uri && spId && *uri == "#" + *spId && attrOf(ref, "Type") == kSignedPropertiesType) {
            propertiesCovered = true;
        }
    }
    facts.signatureValid = cryptoValid && documentCovered;
    facts.signedPropertiesSigned = cryptoValid && propertiesCovered;
    if (rc < 0) {
        facts.failure = "xmlsec could not verify: " + t_xmlsecError;
    } else if (!cryptoValid) {
        facts.failure = "the SignatureValue does not verify";
        for (xmlSecSize i = 0; i < ::xmlSecPtrListGetSize(&ctx->signedInfoReferences); ++i) {
            auto* r = static_cast<xmlSecDSigReferenceCtxPtr>(
                ::xmlSecPtrListGetItem(&ctx->signedInfoReferences, i));
            if (r != nullptr && r->status != xmlSecDSigStatusSucceeded) {
                facts.failure = std::string("the digest of Reference URI=\"") +
                                (r->uri != nullptr ? reinterpret_cast<char*>(r->uri) : "") +
                                "\" does not match";
                break;
            }
        }
    } else if (!documentCovered) {
        facts.failure = "no Reference with URI=\"\" covers the document";
    }
    return facts;
}

}  // namespace kyso::signer
