#include "kyso/signer/timestamper.h"

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ts.h>

#include "kyso/hsm/encoding.h"
#include "kyso/hsm/ossl_ptr.h"

namespace kyso::signer {

namespace {

// Room for what varies between two tokens of one TSA: serial and time lengths, nonce, and the
// signature of an ECDSA key.
constexpr std::size_t kTokenMargin = 256;

}  // namespace

Timestamper::Timestamper(std::vector<std::string> trustAnchorsDer, std::size_t initialReserve)
    : m_anchors(std::move(trustAnchorsDer)), m_initialReserve(initialReserve) {}

Result<std::string> Timestamper::timestamp(std::string_view digest, hsm::HashAlg hash) {
    // The request: imprint, a 64-bit random nonce, certReq so that the chain comes along.
    TS_REQ* req = ::TS_REQ_new();
    TS_MSG_IMPRINT* imprint = ::TS_MSG_IMPRINT_new();
    X509_ALGOR* alg = ::X509_ALGOR_new();
    OsslPtr<ASN1_STRING> nonce(::ASN1_INTEGER_new());
    unsigned char nonceBytes[8];
    ::RAND_bytes(nonceBytes, sizeof nonceBytes);
    nonceBytes[0] &= 0x7f;
    OsslPtr<BIGNUM> nonceBn(::BN_bin2bn(nonceBytes, sizeof nonceBytes, nullptr));
    bool ok = req != nullptr && imprint != nullptr && alg != nullptr && nonce && nonceBn &&
              ::TS_REQ_set_version(req, 1) == 1 &&
              ::X509_ALGOR_set0(alg, ::OBJ_nid2obj(::EVP_MD_get_type(hsm::evpMd(hash))),
                                V_ASN1_NULL, nullptr) == 1 &&
              ::TS_MSG_IMPRINT_set_algo(imprint, alg) == 1 &&
              ::TS_MSG_IMPRINT_set_msg(
                  imprint, reinterpret_cast<unsigned char*>(const_cast<char*>(digest.data())),
                  static_cast<int>(digest.size())) == 1 &&
              ::TS_REQ_set_msg_imprint(req, imprint) == 1 &&
              ::BN_to_ASN1_INTEGER(nonceBn.get(), nonce.get()) != nullptr &&
              ::TS_REQ_set_nonce(req, nonce.get()) == 1 && ::TS_REQ_set_cert_req(req, 1) == 1;
    ::X509_ALGOR_free(alg);
    ::TS_MSG_IMPRINT_free(imprint);
    std::string request;
    if (ok) {
        unsigned char* buf = nullptr;
        const int n = ::i2d_TS_REQ(req, &buf);
        request.assign(reinterpret_cast<char*>(buf), n > 0 ? static_cast<std::size_t>(n) : 0);
        ::OPENSSL_free(buf);
    }
    if (request.empty()) {
        ::TS_REQ_free(req);
        return opensslError("tsa.invalid_reply", "cannot build the TimeStampReq");
    }

    auto reply = exchange(request);
    if (!reply) {
        ::TS_REQ_free(req);
        return reply.error();
    }
    const unsigned char* p = reinterpret_cast<const unsigned char*>(reply->data());
    TS_RESP* resp = ::d2i_TS_RESP(nullptr, &p, static_cast<long>(reply->size()));
    if (resp == nullptr) {
        ::TS_REQ_free(req);
        return opensslError("tsa.invalid_reply", "the TSA's answer is not a TimeStampResp");
    }
    const long status =
        ::ASN1_INTEGER_get(::TS_STATUS_INFO_get0_status(::TS_RESP_get_status_info(resp)));
    if (status != TS_STATUS_GRANTED && status != TS_STATUS_GRANTED_WITH_MODS) {
        ::TS_RESP_free(resp);
        ::TS_REQ_free(req);
        return Error::make("tsa.rejected", "the TSA refused the request (PKIStatus " +
                                               std::to_string(status) + ")");
    }
    // Imprint, nonce and version from the request; signature and signer chain against our roots.
    TS_VERIFY_CTX* vctx = ::TS_REQ_to_TS_VERIFY_CTX(req, nullptr);
    ::TS_REQ_free(req);
    X509_STORE* store = ::X509_STORE_new();
    for (const auto& d : m_anchors) {
        OsslPtr<X509> x = x509FromDer(d);
        if (x) {
            ::X509_STORE_add_cert(store, x.get());
        }
    }
    int verified = 0;
    if (vctx != nullptr && store != nullptr) {
        ::TS_VERIFY_CTX_add_flags(vctx, TS_VFY_SIGNATURE);
        ::TS_VERIFY_CTX_set_store(vctx, store);  // the context owns the store from here
        store = nullptr;
        verified = ::TS_RESP_verify_response(vctx, resp);
    }
    ::X509_STORE_free(store);
    ::TS_VERIFY_CTX_free(vctx);
    if (verified != 1) {
        ::TS_RESP_free(resp);
        return opensslError("tsa.invalid_reply", "the TSA's reply does not verify");
    }
    unsigned char* tok = nullptr;
    const int n = ::i2d_PKCS7(::TS_RESP_get_token(resp), &tok);
    std::string token(reinterpret_cast<char*>(tok), n > 0 ? static_cast<std::size_t>(n) : 0);
    ::OPENSSL_free(tok);
    ::TS_RESP_free(resp);
    if (token.empty()) {
        return opensslError("tsa.invalid_reply", "the reply carries no token");
    }
    std::lock_guard lk(m_mu);
    m_maxSeen = std::max(m_maxSeen, token.size());
    return token;
}

Result<std::size_t> Timestamper::maxTokenSize(hsm::HashAlg hash) {
    {
        std::lock_guard lk(m_mu);
        if (m_maxSeen > 0) {
            return m_maxSeen + kTokenMargin;
        }
        if (m_initialReserve > 0) {
            return m_initialReserve;
        }
    }
    // Ask once, with a digest of the algorithm the signatures will use.
    auto probe = timestamp(std::string(hsm::digestLength(hash), '\x5a'), hash);
    if (!probe) {
        return probe.error();
    }
    std::lock_guard lk(m_mu);
    return m_maxSeen + kTokenMargin;
}

}  // namespace kyso::signer
