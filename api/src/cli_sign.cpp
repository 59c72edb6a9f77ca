#include "cli_sign.h"

#include <iostream>

#include "kyso/api/credentials.h"
#include "kyso/signer/cms.h"
#include "kyso/signer/pades.h"

namespace kyso::cli {

std::string signLevel(const Args& a, const api::Config& cfg) {
    auto it = a.options.find("level");
    if (it == a.options.end()) {
        return cfg.timestamping || cfg.tsa ? "B-T" : "B-B";
    }
    if (it->second != "B-B" && it->second != "B-T" && it->second != "B-LT") {
        std::cerr << "kyso: --level must be B-B, B-T or B-LT\n";
        return "";
    }
    return it->second;
}

namespace {

std::string opt(const Args& a, const char* k) {
    auto it = a.options.find(k);
    return it == a.options.end() ? std::string() : it->second;
}

int signPdf(const Args& a, const hsm::Credential& cred, signer::Timestamper* ts) {
    signer::PadesOptions o;
    o.timestamper = ts;
    o.reason = opt(a, "reason");
    o.location = opt(a, "location");
    o.contactInfo = opt(a, "contact-info");
    if (a.options.count("field")) {
        o.fieldName = a.options.at("field");
    }
    if (a.options.count("page")) {
        try {
            std::size_t used = 0;
            o.page = std::stoi(a.options.at("page"), &used);
            if (used != a.options.at("page").size() || o.page < 1) {
                throw std::invalid_argument("page");
            }
        } catch (const std::exception&) {
            std::cerr << "kyso: --page must be a positive number\n";
            return kExitUsage;
        }
    }
    auto r = signer::signPdf(a.options.at("in"), a.options.at("out"), cred, o);
    if (!r) {
        return fail(r.error(), exitCodeFor(r.error()));
    }
    std::cout << "kyso: signed " << a.options.at("out") << " (PAdES-BASELINE-" << (ts ? "T" : "B")
              << ", field " << r->fieldName << ", " << (r->outputSize - r->originalSize)
              << " bytes appended)\n";
    return 0;
}

int signCms(const Args& a, const hsm::Credential& cred, signer::Timestamper* ts) {
    const std::string attached = a.options.count("attached") ? a.options.at("attached") : "false";
    if (attached != "true" && attached != "false") {
        std::cerr << "kyso: --attached must be true or false\n";
        return kExitUsage;
    }
    signer::CadesOptions o;
    o.detached = attached == "false";
    o.timestamper = ts;
    auto r = signer::signCmsFile(a.options.at("in"), a.options.at("out"), cred, o);
    if (!r) {
        return fail(r.error(), exitCodeFor(r.error()));
    }
    std::cout << "kyso: signed " << a.options.at("in") << " -> " << a.options.at("out")
              << " (CAdES-BASELINE-" << (ts ? "T" : "B") << ", "
              << (o.detached ? "detached" : "attached") << ", " << r->outputSize << " bytes)\n";
    return 0;
}

}  // namespace

int cmdSign(const std::string& sub, const Args& a, const TimestamperFactory& makeTimestamper) {
    const bool pdf = sub == "pdf";
    if (!pdf && sub != "cms") {
        std::cerr << kUsage;
        return kExitUsage;
    }
    if (pdf ? !onlyKnown(a, {"config", "key", "in", "out", "reason", "location", "contact-info",
                             "field", "page", "level"})
            : !onlyKnown(a, {"config", "key", "in", "out", "attached", "level"})) {
        return kExitUsage;
    }
    for (const char* req : {"key", "in", "out"}) {
        if (!a.options.count(req)) {
            std::cerr << "kyso: --" << req << " is required\n" << kUsage;
            return kExitUsage;
        }
    }
    auto cfg = configFrom(a);
    if (!cfg) {
        return fail(cfg.error(), kExitConfig);
    }
    const std::string level = signLevel(a, *cfg);
    if (level.empty()) {
        return kExitUsage;
    }
    if (level == "B-LT" || (level == "B-T" && !makeTimestamper)) {
        return fail(Error::make("level.unsupported",
                                level == "B-LT" ? "level B-LT is not available in this version"
                                                : "level B-T needs a TSA: configure [timestamping] "
                                                  "or [tsa]"),
                    kExitUsage);
    }
    auto token = hsm::Token::open(cfg->token);
    if (!token) {
        return fail(token.error(), kExitUnavailable);
    }
    auto cred = api::resolveCredential(*cfg, **token, a.options.at("key"));
    if (!cred) {
        return fail(cred.error(), exitCodeFor(cred.error()));
    }
    std::unique_ptr<signer::Timestamper> ts;
    if (level == "B-T") {
        auto made = makeTimestamper(**token);
        if (!made) {
            return fail(made.error(), exitCodeFor(made.error()));
        }
        ts = std::move(*made);
    }
    return pdf ? signPdf(a, *cred, ts.get()) : signCms(a, *cred, ts.get());
}

}  // namespace kyso::cli
