#include "kyso/ca-bridge/ocsp.h"

#include <openssl/err.h>
#include <openssl/ocsp.h>

#include "kyso/hsm/encoding.h"
#include "kyso/hsm/evp_key.h"
#include "kyso/hsm/ossl_ptr.h"

namespace kyso::ca {

namespace {

std::string responseDer(OCSP_RESPONSE* r) {
    unsigned char* buf = nullptr;
    const int n = ::i2d_OCSP_RESPONSE(r, &buf);
    std::string out(reinterpret_cast<char*>(buf), n > 0 ? static_cast<std::size_t>(n) : 0);
    ::OPENSSL_free(buf);
    return out;
}

std::string errorResponse(int status) {
    OCSP_RESPONSE* r = ::OCSP_response_create(status, nullptr);
    std::string out = r != nullptr ? responseDer(r) : std::string();
    ::OCSP_RESPONSE_free(r);
    return out;
}

}  // namespace

Result<std::string> respondOcsp(std::string_view request,
                                const std::vector<const hsm::Credential*>& cas,
                                const StatusLookup& lookup, long validitySeconds) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(request.data());
    OCSP_REQUEST* req = ::d2i_OCSP_REQUEST(nullptr, &p, static_cast<long>(request.size()));
    if (req == nullptr ||
        p != reinterpret_cast<const unsigned char*>(request.data()) + request.size() ||
        cas.empty()) {
        ::OCSP_REQUEST_free(req);
        ::ERR_clear_error();
        return errorResponse(OCSP_RESPONSE_STATUS_MALFORMEDREQUEST);
    }
    std::vector<OsslPtr<X509>> certs;
    for (const auto* ca : cas) {
        certs.push_back(x509FromDer(ca->certificateDer));
        if (!certs.back()) {
            ::OCSP_REQUEST_free(req);
            return Error::make("ca.build", "a CA certificate is not valid DER");
        }
    }
    OCSP_BASICRESP* basic = ::OCSP_BASICRESP_new();
    OsslPtr<ASN1_STRING> thisUpdate(::X509_gmtime_adj(nullptr, 0));
    OsslPtr<ASN1_STRING> nextUpdate(::X509_gmtime_adj(nullptr, validitySeconds));
    bool ok = basic != nullptr && thisUpdate && nextUpdate;
    std::optional<std::size_t> responder;
    const int count = ::OCSP_request_onereq_count(req);
    for (int i = 0; ok && i < count; ++i) {
        OCSP_CERTID* id = ::OCSP_onereq_get0_id(::OCSP_request_onereq_get0(req, i));
        ASN1_OBJECT* mdOid = nullptr;
        ASN1_INTEGER* serial = nullptr;
        ::OCSP_id_get0_info(nullptr, &mdOid, nullptr, &serial, id);
        const EVP_MD* md = mdOid != nullptr ? ::EVP_get_digestbyobj(mdOid) : nullptr;
        StatusInfo info;
        for (std::size_t c = 0; md != nullptr && c < cas.size(); ++c) {
            // The same issuer name and key hashes, computed with the request's digest.
            OCSP_CERTID* ours =
                ::OCSP_cert_id_new(md, ::X509_get_subject_name(certs[c].get()),
                                   ::X509_get0_pubkey_bitstr(certs[c].get()), serial);
            const bool match = ours != nullptr && ::OCSP_id_issuer_cmp(ours, id) == 0;
            ::OCSP_CERTID_free(ours);
            if (match) {
                info = lookup(cas[c]->id, serialHex(serial));
                if (!responder) {
                    responder = c;
                }
                break;
            }
        }
        int status = V_OCSP_CERTSTATUS_UNKNOWN;
        OsslPtr<ASN1_STRING> revokedAt;
        int reason = -1;
        if (info.status == CertStatus::Good) {
            status = V_OCSP_CERTSTATUS_GOOD;
        } else if (info.status == CertStatus::Revoked) {
            status = V_OCSP_CERTSTATUS_REVOKED;
            revokedAt.reset(::ASN1_TIME_set(nullptr, info.revokedAt));
            reason = static_cast<int>(info.reason);
        }
        ok = ::OCSP_basic_add1_status(basic, id, status, reason, revokedAt.get(), thisUpdate.get(),
                                      nextUpdate.get()) != nullptr;
    }
    const hsm::Credential& signer = *cas[responder.value_or(0)];
    auto key = hsm::tokenBackedKey(signer);
    ok = ok && key && ::OCSP_copy_nonce(basic, req) != 0 &&
         ::OCSP_basic_sign(basic, certs[responder.value_or(0)].get(), key->get(),
                           hsm::evpMd(signer.hash), nullptr, 0) == 1;
    ::OCSP_REQUEST_free(req);
    if (!ok) {
        ::OCSP_BASICRESP_free(basic);
        ::ERR_clear_error();
        if (auto tokenError = hsm::takeTokenError()) {
            return *tokenError;
        }
        return Error::make("ca.build", "cannot build the OCSP response");
    }
    OCSP_RESPONSE* resp = ::OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, basic);
    ::OCSP_BASICRESP_free(basic);
    std::string out = resp != nullptr ? responseDer(resp) : std::string();
    ::OCSP_RESPONSE_free(resp);
    if (out.empty()) {
        return Error::make("ca.build", "cannot encode the OCSP response");
    }
    return out;
}

}  // namespace kyso::ca
