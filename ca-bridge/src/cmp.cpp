// CMP enrollment with OpenSSL's CMP client (crypto/cmp): OpenSSL builds, protects, sends and
// checks every message; this file configures the context, decides whether to accept the
// certificate (the certConf callback) and turns OpenSSL's error queue into stable codes.
#include "kyso/ca-bridge/cmp.h"

#include <openssl/cmp.h>
#include <openssl/cmp_util.h>
#include <openssl/crmf.h>
#include <openssl/err.h>
#include <openssl/http.h>
#include <openssl/x509.h>

#include <fstream>
#include <iterator>
#include <optional>

#include "kyso/hsm/encoding.h"
#include "kyso/hsm/evp_key.h"
#include "kyso/hsm/ossl_ptr.h"
#include "kyso/hsm/secret.h"

namespace kyso {

// (The sk_X509_* stack functions are macros, so they go without the leading `::`.)
// Owners for the OpenSSL types only this module uses; they move to hsm/ossl_ptr.h when a second
// module needs them (a duplicate specialization there would fail to compile here, not silently).
template <>
struct OsslDeleter<OSSL_CMP_CTX> {
    void operator()(OSSL_CMP_CTX* p) const noexcept { ::OSSL_CMP_CTX_free(p); }
};
template <>
struct OsslDeleter<STACK_OF(X509)> {
    void operator()(STACK_OF(X509) * p) const noexcept { sk_X509_pop_free(p, ::X509_free); }
};

namespace ca {

namespace {

constexpr int kIncorrectData = 1 << OSSL_CMP_PKIFAILUREINFO_incorrectData;
constexpr int kSystemFailure = 1 << OSSL_CMP_PKIFAILUREINFO_systemFailure;

struct Endpoint {
    std::string host;
    int port = 0;
    std::string path;
};

Result<Endpoint> parseUrl(const std::string& url) {
    // TLS would need libssl and an http_cb here; CMP's own protection already authenticates
    // every message, so plain HTTP is what RFC 9483 profiles need. Say so rather than fail later.
    if (url.rfind("https://", 0) == 0) {
        return Error::make("cmp.config",
                           "https CMP URLs are not supported; use http (" + url + ")");
    }
    if (url.rfind("http://", 0) != 0) {
        return Error::make("cmp.config", "the CMP URL must start with http:// (" + url + ")");
    }
    int ssl = 0;
    int port = 0;
    char* user = nullptr;
    char* host = nullptr;
    char* portText = nullptr;
    char* path = nullptr;
    char* query = nullptr;
    char* frag = nullptr;
    const int ok = ::OSSL_HTTP_parse_url(url.c_str(), &ssl, &user, &host, &portText, &port, &path,
                                         &query, &frag);
    Endpoint e;
    const bool hasUser = user != nullptr && *user != '\0';
    if (ok == 1) {
        e.host = host;
        e.port = port;
        e.path = path;
        if (query != nullptr && *query != '\0') {
            e.path += std::string("?") + query;
        }
    }
    for (char* p : {user, host, portText, path, query, frag}) {
        ::OPENSSL_free(p);
    }
    ::ERR_clear_error();
    if (ok != 1 || e.host.empty()) {
        return Error::make("cmp.config", "not a valid CMP URL: " + url);
    }
    if (hasUser) {
        // Credentials in a URL end up in logs; the CMP secret has its own source.
        return Error::make("cmp.config", "user information in the CMP URL is not supported");
    }
    return e;
}

Result<OsslPtr<X509_NAME>> makeName(const std::vector<NameEntry>& entries, const char* what) {
    OsslPtr<X509_NAME> name(::X509_NAME_new());
    if (!name) {
        return opensslError("cmp.config", what);
    }
    for (const auto& e : entries) {
        if (::X509_NAME_add_entry_by_txt(name.get(), e.field.c_str(), MBSTRING_UTF8,
                                         reinterpret_cast<const unsigned char*>(e.value.data()),
                                         static_cast<int>(e.value.size()), -1, 0) != 1) {
            ::ERR_clear_error();
            return Error::make("cmp.config", std::string("bad ") + what + " attribute " + e.field);
        }
    }
    return name;
}

Result<OsslPtr<X509_STORE>> loadTrustAnchors(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return Error::make("cmp.config", "cannot read the CMP trust anchors file " + path);
    }
    const std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto ders = certificatesFromPem(pem);
    if (!ders) {
        return Error::make("cmp.config", "no certificate in the CMP trust anchors file " + path);
    }
    OsslPtr<X509_STORE> store(::X509_STORE_new());
    if (!store) {
        return opensslError("cmp.config", "trust store");
    }
    for (const auto& der : *ders) {
        OsslPtr<X509> x = x509FromDer(der);
        if (!x || ::X509_STORE_add_cert(store.get(), x.get()) != 1) {
            return opensslError("cmp.config", "bad certificate in " + path);
        }
    }
    return store;
}

std::vector<std::string> toDer(const STACK_OF(X509) * certs) {
    std::vector<std::string> out;
    for (int i = 0; i < sk_X509_num(certs); ++i) {
        out.push_back(x509ToDer(sk_X509_value(certs, i)));
    }
    return out;
}

// Appends up-referenced copies, so `to` owns what it holds.
void appendCerts(STACK_OF(X509) * to, const STACK_OF(X509) * from) {
    for (int i = 0; i < sk_X509_num(from); ++i) {
        X509* x = sk_X509_value(from, i);
        if (::X509_up_ref(x) == 1 && sk_X509_push(to, x) <= 0) {
            ::X509_free(x);
        }
    }
}

// What the certConf callback learnt. Lives on requestCertificate's stack for the transaction.
struct Confirmation {
    EVP_PKEY* requested = nullptr;  // borrowed: the public key we asked a certificate for
    // Borrowed: our trust anchors only. Not the context's store: OpenSSL adds the caPubs of a
    // MAC-protected response to that one (RFC 4210 5.3.2 lets it), and whoever holds the shared
    // secret must not be able to choose the roots the new certificate is checked against.
    X509_STORE* anchors = nullptr;
    bool accepted = false;
    std::optional<Error> refusal;
    std::vector<std::string> chainDer;
};

// Decides on the certificate before OpenSSL confirms it to the CA; the failInfo returned goes
// into the certConf, so a refused certificate is refused to the CA too. OpenSSL calls this from
// C: nothing may be thrown out of it.
int confirmCertificate(OSSL_CMP_CTX* ctx, X509* cert, int failInfo, const char** text) noexcept {
    auto* c = static_cast<Confirmation*>(::OSSL_CMP_CTX_get_certConf_cb_arg(ctx));
    if (c == nullptr || cert == nullptr) {
        return failInfo | kSystemFailure;
    }
    try {
        // Our own comparison, decoded keys rather than bytes: the CA may re-encode the SPKI.
        EVP_PKEY* got = ::X509_get0_pubkey(cert);
        if (got == nullptr || ::EVP_PKEY_eq(got, c->requested) != 1) {
            ::ERR_clear_error();
            c->refusal =
                Error::make("cmp.key_mismatch",
                            "the CA returned a certificate for another public key (subject " +
                                nameToString(::X509_get_subject_name(cert)) + ")");
            *text = "the certificate's public key is not the requested one";
            return failInfo | kIncorrectData;
        }
        // The new certificate must chain to our anchors, helped by what the CA sent along
        // (extraCerts, which OpenSSL has put into the untrusted set, and caPubs); none of those
        // is trusted on its own.
        OsslPtr<STACK_OF(X509)> helpers(sk_X509_new_null());
        OsslPtr<STACK_OF(X509)> caPubs(::OSSL_CMP_CTX_get1_caPubs(ctx));
        OsslPtr<STACK_OF(X509)> extra(::OSSL_CMP_CTX_get1_extraCertsIn(ctx));
        OsslPtr<X509_STORE_CTX> vctx(::X509_STORE_CTX_new());
        if (!helpers || !vctx || c->anchors == nullptr) {
            *text = "internal error";
            return failInfo | kSystemFailure;
        }
        appendCerts(helpers.get(), ::OSSL_CMP_CTX_get0_untrusted(ctx));
        appendCerts(helpers.get(), extra.get());
        appendCerts(helpers.get(), caPubs.get());
        if (::X509_STORE_CTX_init(vctx.get(), c->anchors, cert, helpers.get()) != 1) {
            *text = "internal error";
            return failInfo | kSystemFailure;
        }
        if (::X509_verify_cert(vctx.get()) != 1) {
            const int err = ::X509_STORE_CTX_get_error(vctx.get());
            ::ERR_clear_error();
            c->refusal = Error::make(
                "cmp.invalid", std::string("the new certificate does not chain to the CMP trust "
                                           "anchors: ") +
                                   ::X509_verify_cert_error_string(err));
            *text = "the certificate does not verify against our trust anchors";
            return failInfo | kIncorrectData;
        }
        if (failInfo != 0) {
            c->refusal = Error::make("cmp.invalid", "OpenSSL's CMP client refused the certificate");
            return failInfo;
        }
        // chain[0] is the certificate, the last element the trust anchor: keep what is between.
        const STACK_OF(X509)* chain = ::X509_STORE_CTX_get0_chain(vctx.get());
        const int n = sk_X509_num(chain);
        c->chainDer.clear();
        for (int i = 1; i < n - 1; ++i) {
            c->chainDer.push_back(x509ToDer(sk_X509_value(chain, i)));
        }
        c->accepted = true;
        return 0;
    } catch (...) {
        *text = "internal error";
        return failInfo | kSystemFailure;
    }
}

// OpenSSL's default CMP log goes to stdout; what matters reaches us through the error queue.
int dropLog(const char*, const char*, int, OSSL_CMP_severity, const char*) {
    return 1;
}

bool isProtectionFailure(int reason) {
    switch (reason) {
        case CMP_R_ERROR_VALIDATING_PROTECTION:
        case CMP_R_ERROR_VALIDATING_SIGNATURE:
        case CMP_R_WRONG_PBM_VALUE:
        case CMP_R_MISSING_PROTECTION:
        case CMP_R_MISSING_SECRET:
        case CMP_R_MISSING_TRUST_STORE:
        case CMP_R_MISSING_KEY_USAGE_DIGITALSIGNATURE:
        case CMP_R_NO_SUITABLE_SENDER_CERT:
        case CMP_R_SRVCERT_DOES_NOT_VALIDATE_MSG:
        case CMP_R_POTENTIALLY_INVALID_CERTIFICATE:
        case CMP_R_UNSUPPORTED_PROTECTION_ALG_DHBASEDMAC:
            return true;
        default:
            return false;
    }
}

// Turns a failed transaction into one stable code. Order matters: our own refusal and the
// token's failure explain the OpenSSL errors they caused; a response whose protection failed
// says nothing trustworthy about its status.
Error failure(OSSL_CMP_CTX* ctx, Confirmation& confirmation) {
    std::string detail;
    unsigned long first = 0;
    bool protection = false;
    bool transport = false;
    bool rejected = false;
    const char* data = nullptr;
    int flags = 0;
    for (;;) {
        const unsigned long e = ::ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags);
        if (e == 0) {
            break;
        }
        if (first == 0) {
            first = e;
        }
        char buf[256] = {0};
        ::ERR_error_string_n(e, buf, sizeof buf);
        detail += (detail.empty() ? "" : "; ") + std::string(buf);
        if (data != nullptr && (flags & ERR_TXT_STRING) != 0 && *data != '\0') {
            detail += std::string(" (") + data + ")";
        }
        const int lib = ERR_GET_LIB(e);
        const int reason = ERR_GET_REASON(e);
        if (lib == ERR_LIB_CMP && isProtectionFailure(reason)) {
            protection = true;
        }
        if (lib == ERR_LIB_CMP &&
            (reason == CMP_R_RECEIVED_ERROR || reason == CMP_R_REQUEST_REJECTED_BY_SERVER)) {
            rejected = true;
        }
        if (lib == ERR_LIB_HTTP || lib == ERR_LIB_BIO || lib == ERR_LIB_SYS ||
            (lib == ERR_LIB_CMP && reason == CMP_R_TOTAL_TIMEOUT)) {
            transport = true;
        }
    }
    if (detail.empty()) {
        detail = "no OpenSSL error reported";
    }
    if (auto tokenError = hsm::takeTokenError()) {
        return *tokenError;
    }
    if (confirmation.refusal) {
        return *confirmation.refusal;
    }
    if (protection) {
        return Error::make("cmp.protection",
                           "a CMP response failed its protection check: " + detail, first);
    }
    if (rejected || ::OSSL_CMP_CTX_get_status(ctx) == OSSL_CMP_PKISTATUS_rejection) {
        char buf[OSSL_CMP_PKISI_BUFLEN] = {0};
        const char* status = ::OSSL_CMP_CTX_snprint_PKIStatus(ctx, buf, sizeof buf);
        ::ERR_clear_error();
        return Error::make(
            "cmp.rejected",
            "the CA rejected the request: " + (status != nullptr ? std::string(status) : detail),
            first);
    }
    if (transport) {
        return Error::make("cmp.unreachable", "the CMP server did not answer: " + detail, first);
    }
    return Error::make("cmp.invalid", "the CMP exchange failed: " + detail, first);
}

Status useSignatureProtection(OSSL_CMP_CTX* ctx, const hsm::Credential& client) {
    OsslPtr<X509> cert = x509FromDer(client.certificateDer);
    if (!cert) {
        return Error::make("cmp.config", "the CMP client credential has no valid certificate");
    }
    auto key = hsm::tokenBackedKey(client);
    if (!key) {
        return Error::make("cmp.config", "the CMP client key: " + key.error().detail);
    }
    OsslPtr<STACK_OF(X509)> chain(sk_X509_new_null());
    if (!chain) {
        return opensslError("cmp.config", "client chain");
    }
    for (const auto& der : client.chainDer) {
        OsslPtr<X509> x = x509FromDer(der);
        if (!x || sk_X509_push(chain.get(), x.get()) <= 0) {
            return Error::make("cmp.config", "bad certificate in the CMP client chain");
        }
        x.release();  // now owned by `chain`
    }
    // set1: the context takes its own references.
    if (::OSSL_CMP_CTX_set1_cert(ctx, cert.get()) != 1 ||
        ::OSSL_CMP_CTX_set1_pkey(ctx, key->get()) != 1 ||
        (sk_X509_num(chain.get()) > 0 &&
         ::OSSL_CMP_CTX_set1_extraCertsOut(ctx, chain.get()) != 1)) {
        return opensslError("cmp.config", "CMP client credential");
    }
    return Ok{};
}

Status useMacProtection(OSSL_CMP_CTX* ctx, const CmpServer& server) {
    auto secret = hsm::readSecret(server.secretSource);
    if (!secret) {
        // readSecret names the source, never the content.
        return Error::make("cmp.config", "CMP shared secret: " + secret.error().detail);
    }
    if (secret->empty()) {
        return Error::make("cmp.config", "the CMP shared secret is empty");
    }
    const auto& ref = server.reference;
    // The context keeps a copy that OSSL_CMP_CTX_free cleanses; ours is wiped right away.
    const bool ok =
        ::OSSL_CMP_CTX_set1_referenceValue(ctx, reinterpret_cast<const unsigned char*>(ref.data()),
                                           static_cast<int>(ref.size())) == 1 &&
        ::OSSL_CMP_CTX_set1_secretValue(
            ctx, reinterpret_cast<const unsigned char*>(secret->view().data()),
            static_cast<int>(secret->view().size())) == 1;
    secret->wipe();
    if (!ok) {
        return opensslError("cmp.config", "CMP shared secret");
    }
    return Ok{};
}

}  // namespace

Result<CmpResult> requestCertificate(const CmpServer& server, const CmpRequest& request) {
    if (request.key == nullptr || request.key->token == nullptr) {
        return Error::make("cmp.config", "no key on a token to certify");
    }
    if (request.subject.empty()) {
        return Error::make("cmp.config", "the certificate request has no subject");
    }
    const bool mac = !server.secretSource.empty();
    if (mac == (server.clientCredential != nullptr)) {
        return Error::make("cmp.config",
                           "CMP protection: set either a shared secret or a client credential");
    }
    if (mac && server.reference.empty()) {
        return Error::make("cmp.config", "a CMP shared secret needs its reference (senderKID)");
    }
    if (server.timeoutSeconds <= 0) {
        return Error::make("cmp.config", "the CMP timeout must be positive");
    }
    auto endpoint = parseUrl(server.url);
    if (!endpoint) {
        return endpoint.error();
    }
    // Two copies: the context's (for response signatures, and which OpenSSL may extend with
    // caPubs) and ours for the new certificate (see Confirmation::anchors).
    auto anchors = loadTrustAnchors(server.trustAnchorsPem);
    if (!anchors) {
        return anchors.error();
    }
    auto ownAnchors = loadTrustAnchors(server.trustAnchorsPem);
    if (!ownAnchors) {
        return ownAnchors.error();
    }
    auto subject = makeName(request.subject, "subject");
    if (!subject) {
        return subject.error();
    }
    auto recipient = makeName(server.recipient, "recipient");
    if (!recipient) {
        return recipient.error();
    }
    const std::string& spki = request.key->key.publicKeyDer;
    const unsigned char* sp = reinterpret_cast<const unsigned char*>(spki.data());
    OsslPtr<EVP_PKEY> requested(::d2i_PUBKEY(nullptr, &sp, static_cast<long>(spki.size())));
    if (!requested) {
        ::ERR_clear_error();
        return Error::make("cmp.config", "the key to certify has no valid public key");
    }
    auto newKey = hsm::tokenBackedKey(*request.key);
    if (!newKey) {
        return Error::make("cmp.config", "the key to certify: " + newKey.error().detail);
    }
    const EVP_MD* md = hsm::evpMd(request.key->hash);

    OsslPtr<OSSL_CMP_CTX> ctx(::OSSL_CMP_CTX_new(nullptr, nullptr));
    if (!ctx) {
        return opensslError("cmp.config", "CMP context");
    }
    OSSL_CMP_CTX* c = ctx.get();
    // The digest signs the POPO and, with a client credential, the messages; the MAC follows
    // RFC 9481 (HMAC-SHA256, not OpenSSL's HMAC-SHA1 default).
    bool ok =
        ::OSSL_CMP_CTX_set_log_cb(c, dropLog) == 1 &&
        ::OSSL_CMP_CTX_set1_server(c, endpoint->host.c_str()) == 1 &&
        ::OSSL_CMP_CTX_set_serverPort(c, endpoint->port) == 1 &&
        ::OSSL_CMP_CTX_set1_serverPath(c, endpoint->path.c_str()) == 1 &&
        ::OSSL_CMP_CTX_set_option(c, OSSL_CMP_OPT_MSG_TIMEOUT, server.timeoutSeconds) == 1 &&
        ::OSSL_CMP_CTX_set_option(c, OSSL_CMP_OPT_TOTAL_TIMEOUT, server.timeoutSeconds) == 1 &&
        ::OSSL_CMP_CTX_set_option(c, OSSL_CMP_OPT_DIGEST_ALGNID, ::EVP_MD_get_type(md)) == 1 &&
        ::OSSL_CMP_CTX_set_option(c, OSSL_CMP_OPT_MAC_ALGNID, NID_hmacWithSHA256) == 1 &&
        ::OSSL_CMP_CTX_set_option(c, OSSL_CMP_OPT_POPO_METHOD, OSSL_CRMF_POPO_SIGNATURE) == 1;
    if (ok && !server.recipient.empty()) {
        ok = ::OSSL_CMP_CTX_set1_recipient(c, recipient->get()) == 1;
    }
    if (ok) {
        ok = ::OSSL_CMP_CTX_set0_trustedStore(c, anchors->get()) == 1;
        if (ok) {
            anchors->release();  // owned by the context now
        }
    }
    if (!ok) {
        return opensslError("cmp.config", "CMP context options");
    }
    auto protection =
        mac ? useMacProtection(c, server) : useSignatureProtection(c, *server.clientCredential);
    if (!protection) {
        return protection.error();
    }

    int bodyType = OSSL_CMP_IR;
    if (request.type == CmpRequestType::P10cr) {
        bodyType = OSSL_CMP_P10CR;
        OsslPtr<X509_REQ> csr(::X509_REQ_new());
        if (!csr || ::X509_REQ_set_version(csr.get(), 0) != 1 ||
            ::X509_REQ_set_subject_name(csr.get(), subject->get()) != 1 ||
            ::X509_REQ_set_pubkey(csr.get(), newKey->get()) != 1) {
            return opensslError("cmp.config", "PKCS#10 request");
        }
        (void)hsm::takeTokenError();
        if (::X509_REQ_sign(csr.get(), newKey->get(), md) <= 0) {
            if (auto tokenError = hsm::takeTokenError()) {
                ::ERR_clear_error();
                return *tokenError;
            }
            return opensslError("cmp.config", "signing the PKCS#10 request with the token key");
        }
        // Hand OpenSSL a re-decoded copy whose public key is a plain one: set1_p10CSR duplicates
        // the request, and duplicating a token-backed key would share its credential between
        // two keys (the ex_data holding it has no dup callback) and free it twice.
        unsigned char* der = nullptr;
        const int derLen = ::i2d_X509_REQ(csr.get(), &der);
        const unsigned char* dp = der;
        OsslPtr<X509_REQ> plain(derLen > 0 ? ::d2i_X509_REQ(nullptr, &dp, derLen) : nullptr);
        ::OPENSSL_free(der);
        if (!plain || ::OSSL_CMP_CTX_set1_p10CSR(c, plain.get()) != 1) {
            return opensslError("cmp.config", "PKCS#10 request");
        }
    } else {
        bodyType = request.type == CmpRequestType::Cr ? OSSL_CMP_CR : OSSL_CMP_IR;
        // priv = 1: OpenSSL signs the POPO with it (on the token, through the key's method).
        if (::OSSL_CMP_CTX_set1_subjectName(c, subject->get()) != 1 ||
            ::OSSL_CMP_CTX_set0_newPkey(c, 1, newKey->get()) != 1) {
            return opensslError("cmp.config", "certificate template");
        }
        newKey->release();  // owned by the context now
    }

    Confirmation confirmation;
    confirmation.requested = requested.get();
    confirmation.anchors = ownAnchors->get();
    if (::OSSL_CMP_CTX_set_certConf_cb(c, confirmCertificate) != 1 ||
        ::OSSL_CMP_CTX_set_certConf_cb_arg(c, &confirmation) != 1) {
        return opensslError("cmp.config", "certConf callback");
    }

    ::ERR_clear_error();
    (void)hsm::takeTokenError();
    X509* issued = ::OSSL_CMP_exec_certreq(c, bodyType, nullptr);  // get0: owned by ctx
    if (issued == nullptr) {
        return failure(c, confirmation);
    }
    // The callback has run for every certificate OpenSSL returns; check again here so that the
    // promise in the header does not rest on that alone.
    EVP_PKEY* got = ::X509_get0_pubkey(issued);
    if (got == nullptr || ::EVP_PKEY_eq(got, requested.get()) != 1) {
        ::ERR_clear_error();
        return Error::make("cmp.key_mismatch", "the CA returned a certificate for another key");
    }
    if (!confirmation.accepted) {
        return Error::make("cmp.invalid", "the new certificate was not checked");
    }
    CmpResult out;
    out.certificateDer = x509ToDer(issued);
    out.chainDer = std::move(confirmation.chainDer);
    OsslPtr<STACK_OF(X509)> extra(::OSSL_CMP_CTX_get1_extraCertsIn(c));
    OsslPtr<STACK_OF(X509)> caPubs(::OSSL_CMP_CTX_get1_caPubs(c));
    out.extraCertsDer = toDer(extra.get());
    out.caPubsDer = toDer(caPubs.get());
    ::ERR_clear_error();
    return out;
}

}  // namespace ca
}  // namespace kyso
