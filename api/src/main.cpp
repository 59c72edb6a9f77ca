// The `kyso` executable: one command with subcommands (see ../shared/spec/contract.md). It
// signs locally itself and hands the service commands (serve, demo init, apikey) to its sibling
// `kyso-service`, so that a signature on an officer's desktop does not pay for loading the HTTP,
// database and password-hashing libraries (docs/PERFORMANCE.md, row a). Secrets come from files
// or environment variables named in the configuration, never from argv.
#include <limits.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>

#include "cli_common.h"
#include "kyso/api/credentials.h"
#include "kyso/signer/cms.h"
#include "kyso/signer/pades.h"

namespace kyso::cli {
namespace {

int cmdSignPdf(const Args& a) {
    if (!onlyKnown(a, {"config", "key", "in", "out", "reason", "location", "contact-info", "field",
                       "page", "level"})) {
        return kExitUsage;
    }
    for (const char* req : {"key", "in", "out"}) {
        if (!a.options.count(req)) {
            std::cerr << "kyso: --" << req << " is required\n" << kUsage;
            return kExitUsage;
        }
    }
    if (a.options.count("level") && a.options.at("level") != "B-B") {
        return fail(
            Error::make("level.unsupported", "only B-B is available without a timestamp authority"),
            kExitUsage);
    }
    auto cfg = configFrom(a);
    if (!cfg) {
        return fail(cfg.error(), kExitConfig);
    }
    auto token = kyso::hsm::Token::open(cfg->token);
    if (!token) {
        return fail(token.error(), kExitUnavailable);
    }
    auto cred = kyso::api::resolveCredential(*cfg, **token, a.options.at("key"));
    if (!cred) {
        return fail(cred.error(), exitCodeFor(cred.error()));
    }
    kyso::signer::PadesOptions o;
    auto opt = [&](const char* k) {
        auto it = a.options.find(k);
        return it == a.options.end() ? std::string() : it->second;
    };
    o.reason = opt("reason");
    o.location = opt("location");
    o.contactInfo = opt("contact-info");
    if (a.options.count("field")) {
        o.fieldName = a.options.at("field");
    }
    if (a.options.count("page")) {
        try {
            o.page = std::stoi(a.options.at("page"));
        } catch (const std::exception&) {
            std::cerr << "kyso: --page must be a number\n";
            return kExitUsage;
        }
    }
    auto r = kyso::signer::signPdf(a.options.at("in"), a.options.at("out"), *cred, o);
    if (!r) {
        return fail(r.error(), exitCodeFor(r.error()));
    }
    std::cout << "kyso: signed " << a.options.at("out") << " (field " << r->fieldName << ", "
              << (r->outputSize - r->originalSize) << " bytes appended)\n";
    return 0;
}

// CAdES B-B over any file, detached unless --attached true. B-T needs a TSA client, which this
// executable does not have yet: use the service's POST /api/v1/sign/cms.
int cmdSignCms(const Args& a) {
    if (!onlyKnown(a, {"config", "key", "in", "out", "attached", "level"})) {
        return kExitUsage;
    }
    for (const char* req : {"key", "in", "out"}) {
        if (!a.options.count(req)) {
            std::cerr << "kyso: --" << req << " is required\n" << kUsage;
            return kExitUsage;
        }
    }
    if (a.options.count("level") && a.options.at("level") != "B-B") {
        return fail(Error::make("level.unsupported",
                                "kyso sign cms makes B-B; B-T is made by the service "
                                "(POST /api/v1/sign/cms)"),
                    kExitUsage);
    }
    const std::string attached = a.options.count("attached") ? a.options.at("attached") : "false";
    if (attached != "true" && attached != "false") {
        std::cerr << "kyso: --attached must be true or false\n";
        return kExitUsage;
    }
    auto cfg = configFrom(a);
    if (!cfg) {
        return fail(cfg.error(), kExitConfig);
    }
    auto token = kyso::hsm::Token::open(cfg->token);
    if (!token) {
        return fail(token.error(), kExitUnavailable);
    }
    auto cred = kyso::api::resolveCredential(*cfg, **token, a.options.at("key"));
    if (!cred) {
        return fail(cred.error(), exitCodeFor(cred.error()));
    }
    kyso::signer::CadesOptions o;
    o.detached = attached == "false";
    auto r = kyso::signer::signCmsFile(a.options.at("in"), a.options.at("out"), *cred, o);
    if (!r) {
        return fail(r.error(), exitCodeFor(r.error()));
    }
    std::cout << "kyso: signed " << a.options.at("in") << " -> " << a.options.at("out") << " ("
              << (o.detached ? "detached" : "attached") << ", " << r->outputSize << " bytes)\n";
    return 0;
}

// Replaces this process with kyso-service from the same directory, same arguments.
int execService(char** argv) {
    char self[PATH_MAX];
    const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        std::cerr << "kyso: cannot locate its own executable\n";
        return kExitSoftware;
    }
    self[n] = '\0';
    const std::string service =
        (std::filesystem::path(self).parent_path() / "kyso-service").string();
    argv[0] = const_cast<char*>("kyso");
    ::execv(service.c_str(), argv);
    std::cerr << "kyso: cannot run " << service << ": " << std::strerror(errno) << "\n";
    return kExitSoftware;
}

}  // namespace
}  // namespace kyso::cli

int main(int argc, char** argv) {
    using namespace kyso::cli;
    return runCli(argc, argv, [&](const std::string& cmd, const std::string& sub) {
        if (cmd == "version" || cmd == "--version") {
            std::cout << "kyso " << KYSO_VERSION << "\n";
            return 0;
        }
        if (cmd == "help" || cmd == "--help" || cmd == "-h") {
            std::cout << kUsage;
            return 0;
        }
        if (cmd == "serve" || cmd == "demo" || cmd == "apikey") {
            return execService(argv);
        }
        auto args = parseArgs(argc, argv, 3);
        if (!args || !args->positional.empty()) {
            std::cerr << kUsage;
            return kExitUsage;
        }
        if (cmd == "sign" && sub == "pdf") {
            return cmdSignPdf(*args);
        }
        if (cmd == "sign" && sub == "cms") {
            return cmdSignCms(*args);
        }
        std::cerr << kUsage;
        return kExitUsage;
    });
}
