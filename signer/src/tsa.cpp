#include "kyso/signer/tsa.h"

#include <openssl/err.h>
#include <openssl/ts.h>

#include <mutex>

#include "kyso/hsm/encoding.h"
#include "kyso/hsm/evp_key.h"
#include "kyso/hsm/ossl_ptr.h"

namespace kyso::signer {

namespace {

struct CtxFree {
    void operator()(TS_RESP_CTX* c) const noexcept { ::TS_RESP_CTX_free(c); }
};
using CtxPtr = std::unique_ptr<TS_RESP_CTX, CtxFree>;

std::string toDer(TS_RESP* r) {
    unsigned char* buf = nullptr;
    const int n = ::i2d_TS_RESP(r, &buf);
    std::string out(reinterpret_cast<char*>(buf), n > 0 ? static_cast<std::size_t>(n) : 0);
    ::OPENSSL_free(buf);
    return out;
}

// A TimeStampResp with PKIStatus rejection, one PKIFailureInfo bit and a text (RFC 3161 2.4.2),
// for requests OpenSSL would not answer properly itself. OpenSSL has no public setters for the
// failure info and text of a TS_STATUS_INFO, and the structure is three TLVs, so it is written
// here. A named BIT STRING in DER drops trailing zero bits.
std::string rejection(int failureBit, const std::string& text) {
    std::string bits(static_cast<std::size_t>(failureBit / 8 + 1), '\0');
    bits.back() = static_cast<char>(0x80 >> (failureBit % 8));
    const char unused = static_cast<char>(7 - failureBit % 8);
    const std::string status = hsm::derTlv(0x02, std::string(1, '\x02')) +        // rejection(2)
                               hsm::derTlv(0x30, hsm::derTlv(0x0c, text)) +       // statusString
                               hsm::derTlv(0x03, std::string(1, unused) + bits);  // failInfo
    return hsm::derTlv(0x30, hsm::derTlv(0x30, status));
}

}  // namespace

struct TimeStampAuthority::Impl {
    hsm::Credential credential;
    TsaPolicy policy;
    SerialSource* serials = nullptr;
    OsslPtr<EVP_PKEY> key;
    OsslPtr<X509> cert;
    STACK_OF(X509) * chain = nullptr;

    std::mutex poolMu;
    std::vector<CtxPtr> idle;

    ~Impl() { sk_X509_pop_free(chain, ::X509_free); }

    static ASN1_INTEGER* serialCb(TS_RESP_CTX* ctx, void* data) {
        auto* self = static_cast<Impl*>(data);
        auto s = self->serials->next();
        if (!s) {
            ::TS_RESP_CTX_set_status_info(ctx, TS_STATUS_REJECTION,
                                          "the serial number cannot be recorded");
            ::TS_RESP_CTX_add_failure_info(ctx, TS_INFO_SYSTEM_FAILURE);
            return nullptr;
        }
        ASN1_INTEGER* i = ::ASN1_INTEGER_new();
        if (i != nullptr && ::ASN1_INTEGER_set_uint64(i, *s) != 1) {
            ::ASN1_INTEGER_free(i);
            return nullptr;
        }
        return i;
    }

    Result<CtxPtr> makeCtx() {
        CtxPtr ctx(::TS_RESP_CTX_new());
        const EVP_MD* signMd = hsm::evpMd(credential.hash);
        if (!ctx || ::TS_RESP_CTX_set_signer_cert(ctx.get(), cert.get()) != 1) {
            ::ERR_clear_error();
            return Error::make("tsa.config",
                               "the TSA certificate is not fit for time-stamping (it needs the "
                               "critical timeStamping extended key usage)");
        }
        if (::TS_RESP_CTX_set_signer_key(ctx.get(), key.get()) != 1 ||
            ::TS_RESP_CTX_set_signer_digest(ctx.get(), signMd) != 1 ||
            ::TS_RESP_CTX_set_ess_cert_id_digest(ctx.get(), ::EVP_sha256()) != 1 ||
            (chain != nullptr && ::TS_RESP_CTX_set_certs(ctx.get(), chain) != 1) ||
            ::TS_RESP_CTX_set_accuracy(ctx.get(), policy.accuracySeconds, policy.accuracyMillis,
                                       policy.accuracyMicros) != 1) {
            ::ERR_clear_error();
            return Error::make("tsa.config", "cannot set up the TSA signer");
        }
        OsslPtr<ASN1_OBJECT> def(::OBJ_txt2obj(policy.policyOid.c_str(), 1));
        if (!def || ::TS_RESP_CTX_set_def_policy(ctx.get(), def.get()) != 1) {
            ::ERR_clear_error();
            return Error::make("tsa.config", "bad policy OID " + policy.policyOid);
        }
        for (const auto& oid : policy.otherPolicies) {
            OsslPtr<ASN1_OBJECT> o(::OBJ_txt2obj(oid.c_str(), 1));
            if (!o || ::TS_RESP_CTX_add_policy(ctx.get(), o.get()) != 1) {
                ::ERR_clear_error();
                return Error::make("tsa.config", "bad policy OID " + oid);
            }
        }
        for (hsm::HashAlg h : policy.digests) {
            ::TS_RESP_CTX_add_md(ctx.get(), hsm::evpMd(h));
        }
        if (policy.includeTsaName) {
            ::TS_RESP_CTX_add_flags(ctx.get(), TS_TSA_NAME);
        }
        ::TS_RESP_CTX_set_serial_cb(ctx.get(), serialCb, this);
        return ctx;
    }
};

TimeStampAuthority::TimeStampAuthority(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
TimeStampAuthority::~TimeStampAuthority() = default;

const TsaPolicy& TimeStampAuthority::policy() const {
    return m_impl->policy;
}

Result<std::unique_ptr<TimeStampAuthority>> TimeStampAuthority::create(const hsm::Credential& tsa,
                                                                       TsaPolicy policy,
                                                                       SerialSource& serials) {
    if (policy.digests.empty()) {
        return Error::make("tsa.config", "the TSA accepts no digest algorithm");
    }
    auto impl = std::make_unique<Impl>();
    impl->credential = tsa;
    impl->policy = std::move(policy);
    impl->serials = &serials;
    impl->cert = x509FromDer(tsa.certificateDer);
    if (!impl->cert) {
        return Error::make("tsa.config", "the TSA certificate is not valid DER");
    }
    auto key = hsm::tokenBackedKey(tsa);
    if (!key) {
        return key.error();
    }
    impl->key = std::move(*key);
    if (!tsa.chainDer.empty()) {
        impl->chain = sk_X509_new_null();
        for (const auto& d : tsa.chainDer) {
            OsslPtr<X509> x = x509FromDer(d);
            if (!x || sk_X509_push(impl->chain, x.get()) <= 0) {
                return Error::make("tsa.config", "a TSA chain certificate is not valid DER");
            }
            x.release();
        }
    }
    // Build one context now: a bad certificate or policy stops the start, not the first request.
    auto first = impl->makeCtx();
    if (!first) {
        return first.error();
    }
    impl->idle.push_back(std::move(*first));
    return std::unique_ptr<TimeStampAuthority>(new TimeStampAuthority(std::move(impl)));
}

Result<std::string> TimeStampAuthority::respond(std::string_view request) {
    if (request.size() > m_impl->policy.maxRequestBytes) {
        return Error::make("tsa.too_large", "a TimeStampReq is at most " +
                                                std::to_string(m_impl->policy.maxRequestBytes) +
                                                " bytes");
    }
    if (request.empty() || static_cast<unsigned char>(request[0]) != 0x30) {
        return Error::make("tsa.not_a_request", "the body is not a DER TimeStampReq");
    }
    // OpenSSL reads the first structure and ignores what follows: trailing bytes are refused
    // here, and so is anything that does not parse.
    const unsigned char* p = reinterpret_cast<const unsigned char*>(request.data());
    TS_REQ* parsed = ::d2i_TS_REQ(nullptr, &p, static_cast<long>(request.size()));
    const bool whole = parsed != nullptr &&
                       p == reinterpret_cast<const unsigned char*>(request.data()) + request.size();
    ::TS_REQ_free(parsed);
    if (!whole) {
        ::ERR_clear_error();
        return rejection(TS_INFO_BAD_DATA_FORMAT, parsed == nullptr
                                                      ? "the request is not a valid TimeStampReq"
                                                      : "the request has trailing data");
    }

    CtxPtr ctx;
    {
        std::lock_guard lk(m_impl->poolMu);
        if (!m_impl->idle.empty()) {
            ctx = std::move(m_impl->idle.back());
            m_impl->idle.pop_back();
        }
    }
    if (!ctx) {
        auto made = m_impl->makeCtx();
        if (!made) {
            return made.error();
        }
        ctx = std::move(*made);
    }
    OsslPtr<BIO> in(::BIO_new_mem_buf(request.data(), static_cast<int>(request.size())));
    TS_RESP* resp = ::TS_RESP_create_response(ctx.get(), in.get());
    ::ERR_clear_error();
    {
        std::lock_guard lk(m_impl->poolMu);
        m_impl->idle.push_back(std::move(ctx));
    }
    if (auto tokenError = hsm::takeTokenError()) {
        ::TS_RESP_free(resp);
        return *tokenError;
    }
    if (resp == nullptr) {
        return Error::make("tsa.internal", "OpenSSL could not build a response");
    }
    std::string out = toDer(resp);
    ::TS_RESP_free(resp);
    return out;
}

}  // namespace kyso::signer
