#include "kyso/ca-bridge/path.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "kyso/ca-bridge/issuer.h"
#include "kyso/hsm/ossl_ptr.h"

namespace kyso::ca {

namespace {

// OpenSSL's verification errors in the report's vocabulary.
const char* subIndicationFor(int err) {
    switch (err) {
        case X509_V_ERR_CERT_HAS_EXPIRED:
            return "EXPIRED";
        case X509_V_ERR_CERT_NOT_YET_VALID:
            return "NOT_YET_VALID";
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
            return "NO_CERTIFICATE_CHAIN_FOUND";
        case X509_V_ERR_CERT_REVOKED:
            return "REVOKED";
        case X509_V_ERR_CERT_SIGNATURE_FAILURE:
        case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
            return "SIG_CRYPTO_FAILURE";
        default:
            return "CHAIN_CONSTRAINTS_FAILURE";
    }
}

bool usageFits(X509* leaf, Usage usage, std::string* why) {
    const uint32_t ku = ::X509_get_key_usage(leaf);  // UINT32_MAX when absent: any usage
    if (usage == Usage::Signing) {
        if ((ku & (KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION)) == 0) {
            *why =
                "the certificate's key usage allows neither digitalSignature nor "
                "nonRepudiation";
            return false;
        }
        return true;
    }
    const int idx = ::X509_get_ext_by_NID(leaf, NID_ext_key_usage, -1);
    X509_EXTENSION* ext = idx >= 0 ? ::X509_get_ext(leaf, idx) : nullptr;
    if (ext == nullptr || ::X509_EXTENSION_get_critical(ext) == 0 ||
        (::X509_get_extended_key_usage(leaf) & XKU_TIMESTAMP) == 0) {
        *why = "a TSA certificate needs the critical timeStamping extended key usage";
        return false;
    }
    return true;
}

}  // namespace

Result<PathResult> validatePath(const std::string& leafDer,
                                const std::vector<std::string>& intermediatesDer,
                                const std::vector<std::string>& anchorsDer, std::time_t at,
                                Usage usage, CertificatePool* pool) {
    OsslPtr<X509> leaf = parseCertificate(pool, leafDer);
    if (!leaf) {
        return Error::make("cert.invalid", "the signer's certificate is not valid DER");
    }
    OsslPtr<X509_STORE> store(::X509_STORE_new());
    for (const auto& d : anchorsDer) {
        OsslPtr<X509> a = parseCertificate(pool, d);
        if (a) {
            ::X509_STORE_add_cert(store.get(), a.get());
        }
    }
    STACK_OF(X509)* untrusted = sk_X509_new_null();
    for (const auto& d : intermediatesDer) {
        X509* x = parseCertificate(pool, d).release();
        if (x != nullptr && sk_X509_push(untrusted, x) <= 0) {
            ::X509_free(x);
        }
    }
    OsslPtr<X509_STORE_CTX> ctx(::X509_STORE_CTX_new());
    PathResult r;
    int ok = 0;
    if (ctx && ::X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), untrusted) == 1) {
        ::X509_STORE_CTX_set_time(ctx.get(), 0, at);
        ok = ::X509_verify_cert(ctx.get());
        if (STACK_OF(X509)* chain = ::X509_STORE_CTX_get0_chain(ctx.get())) {
            for (int i = 0; i < sk_X509_num(chain); ++i) {
                r.chainDer.push_back(x509ToDer(sk_X509_value(chain, i)));
            }
        }
        if (ok != 1) {
            const int err = ::X509_STORE_CTX_get_error(ctx.get());
            r.subIndication = subIndicationFor(err);
            r.errors.push_back(::X509_verify_cert_error_string(err));
        }
    }
    sk_X509_pop_free(untrusted, ::X509_free);
    ::ERR_clear_error();
    std::string why;
    if (ok == 1 && !usageFits(leaf.get(), usage, &why)) {
        ok = 0;
        r.subIndication = "CHAIN_CONSTRAINTS_FAILURE";
        r.errors.push_back(why);
    }
    if (ok == 1) {
        r.indication = "TOTAL_PASSED";
    } else if (r.subIndication == "NO_CERTIFICATE_CHAIN_FOUND" || r.subIndication == "REVOKED" ||
               r.subIndication == "EXPIRED" || r.subIndication == "NOT_YET_VALID") {
        // ETSI TS 119 102-1: these are INDETERMINATE (a later POE or anchor may still help),
        // except a revocation before the signing time, which the caller decides with the time.
        r.indication = "INDETERMINATE";
    } else {
        r.indication = "TOTAL_FAILED";
    }
    return r;
}

Result<std::vector<std::string>> loadAnchorDirectory(const std::string& dir) {
    namespace fs = std::filesystem;
    std::error_code ec;
    std::vector<std::string> out;
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
        if (e.is_regular_file()) {
            files.push_back(e.path());
        }
    }
    if (ec) {
        return Error::make("config.invalid", "cannot read the trust anchor directory " + dir);
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
        std::ifstream in(f, std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        auto certs = certificatesFromPem(ss.str());
        if (certs) {
            out.insert(out.end(), certs->begin(), certs->end());
        }
    }
    if (out.empty()) {
        return Error::make("config.invalid", "no PEM certificate in " + dir);
    }
    return out;
}

}  // namespace kyso::ca
