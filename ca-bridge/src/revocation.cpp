#include "kyso/ca-bridge/revocation.h"

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>

#include <cstdio>

#include "kyso/ca-bridge/crl.h"
#include "kyso/hsm/ossl_ptr.h"

namespace kyso::ca {

namespace {

// The first URI of an access method in the AIA, or of the first CRL distribution point.
std::string ocspUrl(X509* cert) {
    STACK_OF(OPENSSL_STRING)* urls = ::X509_get1_ocsp(cert);
    std::string out = sk_OPENSSL_STRING_num(urls) > 0 ? sk_OPENSSL_STRING_value(urls, 0) : "";
    ::X509_email_free(urls);
    return out;
}

std::string crlUrl(X509* cert) {
    auto* dps = static_cast<CRL_DIST_POINTS*>(
        ::X509_get_ext_d2i(cert, NID_crl_distribution_points, nullptr, nullptr));
    std::string out;
    for (int i = 0; dps != nullptr && i < sk_DIST_POINT_num(dps) && out.empty(); ++i) {
        DIST_POINT* dp = sk_DIST_POINT_value(dps, i);
        if (dp->distpoint == nullptr || dp->distpoint->type != 0) {
            continue;
        }
        GENERAL_NAMES* names = dp->distpoint->name.fullname;
        for (int j = 0; j < sk_GENERAL_NAME_num(names); ++j) {
            GENERAL_NAME* n = sk_GENERAL_NAME_value(names, j);
            if (n->type == GEN_URI) {
                out.assign(
                    reinterpret_cast<const char*>(
                        ::ASN1_STRING_get0_data(n->d.uniformResourceIdentifier)),
                    static_cast<std::size_t>(::ASN1_STRING_length(n->d.uniformResourceIdentifier)));
                break;
            }
        }
    }
    CRL_DIST_POINTS_free(dps);
    return out;
}

// The single response about CERT in BASIC, whatever hash its CertID uses; null when none.
OCSP_SINGLERESP* singleResponseFor(OCSP_BASICRESP* basic, X509* cert, X509* issuer) {
    for (int i = 0; i < ::OCSP_resp_count(basic); ++i) {
        OCSP_SINGLERESP* sr = ::OCSP_resp_get0(basic, i);
        const OCSP_CERTID* cid = ::OCSP_SINGLERESP_get0_id(sr);
        ASN1_OBJECT* alg = nullptr;
        ::OCSP_id_get0_info(nullptr, &alg, nullptr, nullptr, const_cast<OCSP_CERTID*>(cid));
        const EVP_MD* md = alg != nullptr ? ::EVP_get_digestbyobj(alg) : nullptr;
        OCSP_CERTID* mine = md != nullptr ? ::OCSP_cert_to_id(md, cert, issuer) : nullptr;
        const bool match = mine != nullptr && ::OCSP_id_cmp(mine, cid) == 0;
        ::OCSP_CERTID_free(mine);
        if (match) {
            return sr;
        }
    }
    return nullptr;
}

// Signed by the issuer itself (OCSP_TRUSTOTHER: the issuer is the trust point here) or by a
// responder whose certificate the issuer signed for OCSP signing, valid at `at`.
bool ocspSignedFor(OCSP_BASICRESP* basic, X509* issuer, std::time_t at) {
    STACK_OF(X509)* signers = sk_X509_new_null();
    sk_X509_push(signers, issuer);
    OsslPtr<X509_STORE> store(::X509_STORE_new());
    ::X509_STORE_add_cert(store.get(), issuer);
    if (at != 0) {
        ::X509_VERIFY_PARAM_set_time(::X509_STORE_get0_param(store.get()), at);
    }
    const bool ok = ::OCSP_basic_verify(basic, signers, store.get(), OCSP_TRUSTOTHER) == 1;
    sk_X509_free(signers);
    return ok;
}

std::vector<std::string> certificatesOf(OCSP_BASICRESP* basic) {
    std::vector<std::string> out;
    const STACK_OF(X509)* certs = ::OCSP_resp_get0_certs(basic);
    for (int i = 0; i < sk_X509_num(certs); ++i) {
        out.push_back(x509ToDer(sk_X509_value(certs, i)));
    }
    return out;
}

const char* statusName(int status) {
    return status == V_OCSP_CERTSTATUS_GOOD      ? "GOOD"
           : status == V_OCSP_CERTSTATUS_REVOKED ? "REVOKED"
                                                 : "UNKNOWN";
}

}  // namespace

std::optional<std::string> MemoryRevocationCache::get(const std::string& key, std::time_t now) {
    std::lock_guard lk(m_mu);
    auto it = m_entries.find(key);
    if (it == m_entries.end() || it->second.second <= now) {
        return std::nullopt;
    }
    return it->second.first;
}

void MemoryRevocationCache::put(const std::string& key, const std::string& der,
                                std::time_t validUntil) {
    std::lock_guard lk(m_mu);
    m_entries[key] = {der, validUntil};
}

RevocationStatus RevocationChecker::check(const std::string& certDer, const std::string& issuerDer,
                                          std::time_t now, const CheckOptions& o) {
    RevocationStatus out;
    OsslPtr<X509> cert = parseCertificate(m_pool, certDer);
    OsslPtr<X509> issuer = parseCertificate(m_pool, issuerDer);
    if (!cert || !issuer) {
        out.warnings.push_back("certificate or issuer is not valid DER");
        return out;
    }
    if (o.embedded != nullptr && (embeddedOcsp(cert.get(), issuer.get(), now, o, &out) ||
                                  embeddedCrl(cert.get(), issuer.get(), now, o, &out))) {
        out.origin = "DOCUMENT";
        return out;
    }
    if (!o.network) {
        out.status = "UNAVAILABLE";
        out.source.clear();
        out.warnings.push_back(o.embedded != nullptr && !o.embedded->empty()
                                   ? "the validation data in the document does not cover it, "
                                     "and the network is not used"
                                   : "no validation data in the document, and the network is "
                                     "not used");
        return out;
    }
    if (ocsp(cert.get(), issuer.get(), now, o, &out) ||
        crl(cert.get(), issuer.get(), now, o, &out)) {
        return out;
    }
    out.status = "UNAVAILABLE";
    out.source.clear();
    out.warnings.push_back("neither OCSP nor a current CRL could be obtained");
    return out;
}

bool RevocationChecker::ocsp(X509* cert, X509* issuer, std::time_t now, const CheckOptions& o,
                             RevocationStatus* out) {
    const std::string url = ocspUrl(cert);
    if (url.empty()) {
        out->warnings.push_back("the certificate names no OCSP responder");
        return false;
    }
    // A status verified earlier, until the response's nextUpdate (5 minutes without one).
    const std::string cacheKey = "ocsp:" + url + "#" + serialHex(::X509_get0_serialNumber(cert)) +
                                 "@" + std::to_string(::X509_issuer_name_hash(cert)) + "/" +
                                 std::to_string(::X509_subject_name_hash(issuer));
    if (auto cached = o.needEvidence ? std::nullopt : m_cache->get(cacheKey, now)) {
        char status[16] = {0};
        long long thisUpdate = 0;
        long long revoked = 0;
        if (std::sscanf(cached->c_str(), "%15[A-Z] %lld %lld", status, &thisUpdate, &revoked) ==
                3 &&
            thisUpdate + m_maxOcspAge >= now) {
            out->source = "OCSP";
            out->status = status;
            out->thisUpdate = static_cast<std::time_t>(thisUpdate);
            out->revocationTime = static_cast<std::time_t>(revoked);
            out->origin = "CACHE";
            return true;
        }
    }
    OCSP_REQUEST* req = ::OCSP_REQUEST_new();
    OCSP_CERTID* id = ::OCSP_cert_to_id(::EVP_sha1(), cert, issuer);
    OCSP_CERTID* idCopy = id != nullptr ? ::OCSP_CERTID_dup(id) : nullptr;
    std::string reqDer;
    if (req != nullptr && idCopy != nullptr && ::OCSP_request_add0_id(req, idCopy) != nullptr &&
        ::OCSP_request_add1_nonce(req, nullptr, -1) == 1) {
        unsigned char* buf = nullptr;
        const int n = ::i2d_OCSP_REQUEST(req, &buf);
        reqDer.assign(reinterpret_cast<char*>(buf), n > 0 ? static_cast<std::size_t>(n) : 0);
        ::OPENSSL_free(buf);
    }
    bool used = false;
    auto resp = reqDer.empty() ? Result<std::string>(Error::make("ca.build", "request"))
                               : m_fetch(url, reqDer, "application/ocsp-request");
    if (!resp) {
        out->warnings.push_back("OCSP " + url + ": " + resp.error().detail);
    } else {
        const unsigned char* p = reinterpret_cast<const unsigned char*>(resp->data());
        OCSP_RESPONSE* r = ::d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(resp->size()));
        OCSP_BASICRESP* basic =
            r != nullptr && ::OCSP_response_status(r) == OCSP_RESPONSE_STATUS_SUCCESSFUL
                ? ::OCSP_response_get1_basic(r)
                : nullptr;
        STACK_OF(X509)* signers = sk_X509_new_null();
        sk_X509_push(signers, issuer);
        OsslPtr<X509_STORE> store(::X509_STORE_new());
        ::X509_STORE_add_cert(store.get(), issuer);
        int status = -1;
        int reason = -1;
        ASN1_GENERALIZEDTIME* revtime = nullptr;
        ASN1_GENERALIZEDTIME* thisupd = nullptr;
        ASN1_GENERALIZEDTIME* nextupd = nullptr;
        // Signed by the issuer itself (OCSP_TRUSTOTHER: the issuer is the trust point here) or by
        // a responder whose certificate the issuer signed; the nonce must come back.
        if (basic == nullptr) {
            out->warnings.push_back("OCSP " + url + ": no successful response");
        } else if (::OCSP_basic_verify(basic, signers, store.get(), OCSP_TRUSTOTHER) != 1) {
            out->warnings.push_back("OCSP " + url + ": the response signature does not verify");
        } else if (::OCSP_check_nonce(req, basic) != 1) {
            out->warnings.push_back("OCSP " + url + ": the nonce does not match");
        } else if (::OCSP_resp_find_status(basic, id, &status, &reason, &revtime, &thisupd,
                                           &nextupd) != 1) {
            out->warnings.push_back("OCSP " + url + ": no status for this certificate");
        } else if (::OCSP_check_validity(thisupd, nextupd, 300, m_maxOcspAge) != 1 ||
                   timeOf(thisupd) > now + 300) {
            out->warnings.push_back("OCSP " + url + ": the response is not fresh");
        } else {
            out->source = "OCSP";
            out->thisUpdate = timeOf(thisupd);
            out->status = statusName(status);
            out->revocationTime = status == V_OCSP_CERTSTATUS_REVOKED ? timeOf(revtime) : 0;
            out->origin = "NETWORK";
            if (o.needEvidence) {
                out->evidenceDer = *resp;
                out->evidenceCertsDer = certificatesOf(basic);
            }
            used = true;
            m_cache->put(cacheKey,
                         out->status + " " + std::to_string(out->thisUpdate) + " " +
                             std::to_string(out->revocationTime),
                         nextupd != nullptr ? timeOf(nextupd) : now + 300);
        }
        sk_X509_free(signers);
        ::OCSP_BASICRESP_free(basic);
        ::OCSP_RESPONSE_free(r);
    }
    ::OCSP_CERTID_free(id);
    ::OCSP_REQUEST_free(req);
    ::ERR_clear_error();
    return used;
}

bool RevocationChecker::crl(X509* cert, X509* issuer, std::time_t now, const CheckOptions& o,
                            RevocationStatus* out) {
    const std::string url = crlUrl(cert);
    if (url.empty()) {
        out->warnings.push_back("the certificate names no CRL distribution point");
        return false;
    }
    std::string der = m_cache->get("crl:" + url, now).value_or("");
    out->origin = der.empty() ? "NETWORK" : "CACHE";
    if (der.empty()) {
        auto fetched = m_fetch(url, "", "");
        if (!fetched) {
            out->warnings.push_back("CRL " + url + ": " + fetched.error().detail);
            return false;
        }
        der = std::move(*fetched);
    }
    const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
    X509_CRL* crl = ::d2i_X509_CRL(nullptr, &p, static_cast<long>(der.size()));
    EVP_PKEY* key = ::X509_get0_pubkey(issuer);
    bool used = false;
    if (crl == nullptr) {
        out->warnings.push_back("CRL " + url + ": not a DER CRL");
    } else if (::X509_NAME_cmp(::X509_CRL_get_issuer(crl), ::X509_get_subject_name(issuer)) != 0 ||
               key == nullptr || ::X509_CRL_verify(crl, key) != 1) {
        out->warnings.push_back("CRL " + url + ": not signed by the certificate's issuer");
    } else if (timeOf(::X509_CRL_get0_nextUpdate(crl)) <= now) {
        out->warnings.push_back("CRL " + url + ": its nextUpdate has passed");
    } else {
        X509_REVOKED* entry = nullptr;
        const bool revoked = ::X509_CRL_get0_by_cert(crl, &entry, cert) == 1;
        out->source = "CRL";
        out->thisUpdate = timeOf(::X509_CRL_get0_lastUpdate(crl));
        out->status = revoked ? "REVOKED" : "GOOD";
        out->revocationTime = revoked ? timeOf(::X509_REVOKED_get0_revocationDate(entry)) : 0;
        m_cache->put("crl:" + url, der, timeOf(::X509_CRL_get0_nextUpdate(crl)));
        if (o.needEvidence) {
            out->evidenceDer = der;
        }
        used = true;
    }
    ::X509_CRL_free(crl);
    ::ERR_clear_error();
    if (!used) {
        out->origin.clear();
    }
    return used;
}

// Embedded data is old by nature: with a proof of existence, a status issued after it suffices;
// without one, it must be as fresh as a fetched one.
namespace {
bool usable(std::time_t thisUpdate, std::time_t nextUpdate, std::time_t now, long maxAge,
            const CheckOptions& o) {
    if (o.issuedAfter != 0 && thisUpdate >= o.issuedAfter) {
        return true;
    }
    return thisUpdate + maxAge >= now && thisUpdate <= now + 300 &&
           (nextUpdate == 0 || nextUpdate + 300 >= now);
}
}  // namespace

bool RevocationChecker::embeddedOcsp(X509* cert, X509* issuer, std::time_t now,
                                     const CheckOptions& o, RevocationStatus* out) {
    bool found = false;
    for (const auto& der : o.embedded->ocspResponsesDer) {
        const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
        OsslPtr<OCSP_RESPONSE> r(::d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(der.size())));
        OsslPtr<OCSP_BASICRESP> basic(
            r && ::OCSP_response_status(r.get()) == OCSP_RESPONSE_STATUS_SUCCESSFUL
                ? ::OCSP_response_get1_basic(r.get())
                : nullptr);
        OCSP_SINGLERESP* sr = basic ? singleResponseFor(basic.get(), cert, issuer) : nullptr;
        if (sr == nullptr) {
            continue;
        }
        int reason = -1;
        ASN1_GENERALIZEDTIME* revtime = nullptr;
        ASN1_GENERALIZEDTIME* thisupd = nullptr;
        ASN1_GENERALIZEDTIME* nextupd = nullptr;
        const int status = ::OCSP_single_get0_status(sr, &reason, &revtime, &thisupd, &nextupd);
        const std::time_t tu = timeOf(thisupd);
        // The responder's certificate is checked as of when it answered.
        if (!ocspSignedFor(basic.get(), issuer,
                           timeOf(::OCSP_resp_get0_produced_at(basic.get())))) {
            out->warnings.push_back("an OCSP response in the document does not verify");
            continue;
        }
        if (!usable(tu, nextupd != nullptr ? timeOf(nextupd) : 0, now, m_maxOcspAge, o)) {
            continue;
        }
        // The latest usable answer wins.
        if (!found || tu > out->thisUpdate) {
            out->source = "OCSP";
            out->status = statusName(status);
            out->thisUpdate = tu;
            out->revocationTime = status == V_OCSP_CERTSTATUS_REVOKED ? timeOf(revtime) : 0;
            out->evidenceDer = o.needEvidence ? der : std::string();
            found = true;
        }
    }
    ::ERR_clear_error();
    return found;
}

bool RevocationChecker::embeddedCrl(X509* cert, X509* issuer, std::time_t now,
                                    const CheckOptions& o, RevocationStatus* out) {
    bool found = false;
    EVP_PKEY* key = ::X509_get0_pubkey(issuer);
    for (const auto& der : o.embedded->crlsDer) {
        const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
        OsslPtr<X509_CRL> crl(::d2i_X509_CRL(nullptr, &p, static_cast<long>(der.size())));
        if (!crl || key == nullptr ||
            ::X509_NAME_cmp(::X509_CRL_get_issuer(crl.get()), ::X509_get_subject_name(issuer)) !=
                0) {
            continue;
        }
        if (::X509_CRL_verify(crl.get(), key) != 1) {
            out->warnings.push_back("a CRL in the document is not signed by its issuer");
            continue;
        }
        const std::time_t tu = timeOf(::X509_CRL_get0_lastUpdate(crl.get()));
        const ASN1_TIME* next = ::X509_CRL_get0_nextUpdate(crl.get());
        if (!usable(tu, next != nullptr ? timeOf(next) : 0, now, m_maxOcspAge, o) ||
            (found && tu <= out->thisUpdate)) {
            continue;
        }
        X509_REVOKED* entry = nullptr;
        const bool revoked = ::X509_CRL_get0_by_cert(crl.get(), &entry, cert) == 1;
        out->source = "CRL";
        out->status = revoked ? "REVOKED" : "GOOD";
        out->thisUpdate = tu;
        out->revocationTime = revoked ? timeOf(::X509_REVOKED_get0_revocationDate(entry)) : 0;
        out->evidenceDer = o.needEvidence ? der : std::string();
        found = true;
    }
    ::ERR_clear_error();
    return found;
}

}  // namespace kyso::ca
