#include "kyso/api/verifier.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "kyso/api/http_fetch.h"
#include "kyso/ca-bridge/issuer.h"
#include "kyso/ca-bridge/path.h"
#include "local_ocsp.h"

namespace kyso::api {

namespace {

Result<std::vector<std::string>> pemFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    auto certs = in ? ca::certificatesFromPem(ss.str())
                    : Result<std::vector<std::string>>(Error::make("io.read", path));
    if (!certs || certs->empty()) {
        return Error::make("config.invalid", "no PEM certificate can be read from " + path);
    }
    return certs;
}

}  // namespace

Result<std::unique_ptr<Verifier>> Verifier::make(const Config& cfg, Store* store,
                                                 const CredentialRegistry* creds) {
    std::unique_ptr<Verifier> v(new Verifier());
    const ValidationConfig& vc = cfg.validation;
    if (!vc.trustAnchors.empty()) {
        auto anchors = std::filesystem::is_directory(vc.trustAnchors)
                           ? ca::loadAnchorDirectory(vc.trustAnchors)
                           : pemFile(vc.trustAnchors);
        if (!anchors) {
            return Error::make("config.invalid",
                               "[validation] trustAnchors: " + anchors.error().detail);
        }
        v->m_anchors = std::move(*anchors);
    }
    if (!vc.intermediates.empty()) {
        auto inter = pemFile(vc.intermediates);
        if (!inter) {
            return Error::make("config.invalid",
                               "[validation] intermediates: " + inter.error().detail);
        }
        v->m_intermediates = std::move(*inter);
    }
    v->m_policy = policies::validationPolicyOf(cfg.signing.validation);
    if (store != nullptr) {
        v->m_cache = store->revocationCache();
    }
    ca::Fetch fetch = makeHttpFetch(vc.tlsCaFile, vc.timeoutSeconds);
    if (creds != nullptr && store != nullptr) {
        fetch = withLocalOcsp(cfg, *creds, *store, std::move(fetch));
    }
    v->m_revocation = std::make_unique<ca::RevocationChecker>(
        std::move(fetch), cfg.signing.validation.ocspMaxAgeSeconds, v->m_cache.get(),
        v->m_pool.get());
    return v;
}

policies::ValidationContext Verifier::context(std::time_t at) const {
    policies::ValidationContext ctx;
    ctx.anchorsDer = m_anchors;
    ctx.intermediatesDer = m_intermediates;
    ctx.revocation = m_revocation.get();
    ctx.validationTime = at;
    ctx.certificates = m_pool.get();
    ctx.policy = m_policy;
    return ctx;
}

Result<policies::ValidationReport> Verifier::pdf(const std::string& path, std::time_t at) const {
    return policies::validatePdf(path, context(at));
}

Result<policies::ValidationReport> Verifier::cms(const std::string& cms,
                                                 const std::string& dataPath,
                                                 std::time_t at) const {
    return policies::validateCms(cms, dataPath, context(at));
}

Result<policies::ValidationReport> Verifier::jws(const signer::JwsFacts& facts,
                                                 std::string_view jws, std::time_t at) const {
    return policies::validateJws(facts, jws, context(at));
}

Result<policies::ValidationReport> Verifier::xml(std::string_view xml, std::time_t at) const {
    return policies::validateXml(xml, context(at));
}

}  // namespace kyso::api
