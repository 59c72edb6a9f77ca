#include "cli_sign.h"

#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>

#include "kyso/api/credentials.h"
#include "kyso/signer/cms.h"
#include "kyso/signer/pades.h"
#include "visible.h"

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

// The officer's signature and, with --seal, the agency's e-seal over it (as the REST call).
int signPdf(const Args& a, const api::Config& cfg, const hsm::Credential& cred,
            const hsm::Credential* seal, signer::Timestamper* ts) {
    std::map<std::string, std::string> params;
    for (const auto& [opt, param] : {std::pair<const char*, const char*>{"rect", "rect"},
                                     {"page", "page"},
                                     {"layout", "layout"},
                                     {"text", "text"},
                                     {"font-size", "fontSize"},
                                     {"image", "image"},
                                     {"reason", "reason"},
                                     {"location", "location"}}) {
        if (a.options.count(opt)) {
            params[param] = a.options.at(opt);
        }
    }
    const std::string visibleOpt = opt(a, "visible");
    if (!visibleOpt.empty() && visibleOpt != "true" && visibleOpt != "false") {
        std::cerr << "kyso: --visible must be true or false\n";
        return kExitUsage;
    }
    const bool visible = visibleOpt == "true";
    auto vis = api::visibleRequestOf(params);
    if (!vis) {
        std::cerr << "kyso: " << vis.error().detail << "\n";
        return kExitUsage;
    }
    if (!visible && (vis->rect || !api::overridesOf(*vis).empty())) {
        std::cerr << "kyso: --rect, --layout, --text, --font-size and --image need --visible "
                     "true\n";
        return kExitUsage;
    }
    // The desktop's own policy file limits the overrides as the service's does.
    if (visible) {
        const auto d = policies::checkAppearanceOverrides(cfg.signing, api::overridesOf(*vis));
        if (!d.allowed) {
            return fail(Error::make("auth.denied", d.reason + " (rule " + d.rule + ")"),
                        kExitUsage);
        }
    }
    const auto when = std::chrono::system_clock::now();
    signer::PadesOptions o;
    o.timestamper = ts;
    o.reason = vis->reason;
    o.location = vis->location;
    o.contactInfo = opt(a, "contact-info");
    o.signingTime = when;
    if (a.options.count("field")) {
        o.fieldName = a.options.at("field");
    }
    o.page = vis->page.value_or(1);
    // The password of a document that needs one to open: from a file (or env:NAME), never argv.
    std::optional<hsm::Secret> documentPassword;
    if (a.options.count("document-password-file")) {
        auto pw = hsm::readSecret(a.options.at("document-password-file"));
        if (!pw) {
            return fail(pw.error(), kExitUsage);
        }
        documentPassword = std::move(*pw);
        o.password = &*documentPassword;
    }
    if (visible) {
        o.appearance = api::appearanceFor(cfg, cred, *vis, when, &o.page);
        if (o.fieldName && !vis->rect) {
            o.appearance->rect.reset();
        }
    }
    const std::string out = a.options.at("out");
    // With a seal, the officer's signature is a temporary file beside OUT until both are made.
    const std::string first = seal != nullptr ? out + ".kyso-signed.tmp" : out;
    auto r = signer::signPdf(a.options.at("in"), first, cred, o);
    if (!r) {
        return fail(r.error(), exitCodeFor(r.error()));
    }
    std::optional<signer::PadesResult> sealed;
    if (seal != nullptr) {
        signer::PadesOptions so;
        so.timestamper = ts;
        so.signingTime = when;
        so.reason = o.reason;
        so.location = o.location;
        so.page = r->page > 0 ? r->page : o.page;
        so.password = o.password;
        if (visible) {
            api::VisibleRequest sv;
            sv.page = so.page;
            so.appearance = api::appearanceFor(cfg, *seal, sv, when, &so.page);
            so.appearance->rect.reset();
            so.appearance->overlapLeftThirdOf = r->imageRect ? r->imageRect : r->rect;
        }
        auto s = signer::signPdf(first, out, *seal, so);
        std::remove(first.c_str());
        if (!s) {
            return fail(s.error(), exitCodeFor(s.error()));
        }
        sealed = *s;
    }
    const std::uint64_t outputSize = sealed ? sealed->outputSize : r->outputSize;
    std::cout << "kyso: signed " << out << " (PAdES-BASELINE-" << (ts ? "T" : "B") << ", field "
              << r->fieldName << (sealed ? ", sealed in field " + sealed->fieldName : "") << ", "
              << (outputSize - r->originalSize) << " bytes appended)\n";
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
                             "field", "page", "level", "visible", "rect", "layout", "text",
                             "font-size", "image", "seal", "document-password-file"})
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
    if (!pdf) {
        return signCms(a, *cred, ts.get());
    }
    std::optional<hsm::Credential> seal;
    if (a.options.count("seal")) {
        auto s = api::resolveCredential(*cfg, **token, a.options.at("seal"));
        if (!s) {
            return fail(s.error(), exitCodeFor(s.error()));
        }
        seal = std::move(*s);
    }
    return signPdf(a, *cfg, *cred, seal ? &*seal : nullptr, ts.get());
}

}  // namespace kyso::cli
