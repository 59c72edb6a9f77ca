// The `kyso` executable: one binary, subcommands (see ../shared/spec/contract.md). Secrets come
// from files or environment variables named in the configuration, never from argv.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <Poco/Net/NetSSL.h>

#include "kyso/api/config.h"
#include "kyso/api/credentials.h"
#include "kyso/api/demo.h"
#include "kyso/api/service.h"
#include "kyso/api/store.h"
#include "kyso/signer/pades.h"

namespace {

using kyso::Error;

// sysexits(3)
constexpr int kExitUsage = 64;
constexpr int kExitData = 65;
constexpr int kExitUnavailable = 69;
constexpr int kExitSoftware = 70;
constexpr int kExitIo = 74;
constexpr int kExitConfig = 78;

const char* kUsage =
    "usage:\n"
    "  kyso demo init --dir DIR [--listen HOST:PORT]\n"
    "  kyso serve --config FILE\n"
    "  kyso sign pdf --config FILE --key ID_OR_PKCS11_URI --in IN --out OUT\n"
    "                [--reason TEXT] [--location TEXT] [--contact-info TEXT] [--field NAME]\n"
    "                [--page N] [--level B-B]\n"
    "  kyso apikey create --config FILE --role admin|officer|clerk|portal --name NAME\n"
    "  kyso apikey list --config FILE\n"
    "  kyso apikey revoke --config FILE --id ID_OR_NAME\n"
    "  kyso version\n";

struct Args {
    std::vector<std::string> positional;
    std::map<std::string, std::string> options;
};

// "--name value" pairs after the subcommand words. PINs have no option: they never pass argv.
std::optional<Args> parseArgs(int argc, char** argv, int from) {
    Args a;
    for (int i = from; i < argc; ++i) {
        std::string s = argv[i];
        if (s.rfind("--", 0) == 0) {
            if (i + 1 >= argc) {
                std::cerr << "kyso: option " << s << " needs a value\n";
                return std::nullopt;
            }
            if (a.options.count(s.substr(2))) {
                std::cerr << "kyso: option " << s << " is repeated\n";
                return std::nullopt;
            }
            a.options[s.substr(2)] = argv[++i];
        } else {
            a.positional.push_back(s);
        }
    }
    return a;
}

bool onlyKnown(const Args& a, std::initializer_list<const char*> known) {
    for (const auto& [k, v] : a.options) {
        bool ok = false;
        for (const char* n : known) {
            ok = ok || k == n;
        }
        if (!ok) {
            std::cerr << "kyso: unknown option --" << k << "\n" << kUsage;
            return false;
        }
    }
    return true;
}

int fail(const Error& e, int code) {
    std::cerr << "kyso: " << e.code << ": " << e.detail << "\n";
    return code;
}

int exitCodeFor(const Error& e) {
    const std::string& c = e.code;
    if (c.rfind("pdf.", 0) == 0) {
        return kExitData;
    }
    if (c.rfind("token.", 0) == 0 || c.rfind("key.", 0) == 0 || c == "db.unavailable") {
        return kExitUnavailable;
    }
    if (c.rfind("config.", 0) == 0 || c == "credential.unknown" || c == "secret.unavailable") {
        return kExitConfig;
    }
    if (c.rfind("io.", 0) == 0) {
        return kExitIo;
    }
    return kExitSoftware;
}

kyso::Result<kyso::api::Config> configFrom(const Args& a) {
    auto it = a.options.find("config");
    if (it == a.options.end()) {
        return Error::make("config.invalid", "--config FILE is required");
    }
    auto cfg = kyso::api::loadConfig(it->second);
    if (cfg) {
        kyso::api::applyModuleEnvironment(*cfg);
    }
    return cfg;
}

int cmdDemoInit(const Args& a) {
    if (!onlyKnown(a, {"dir", "listen", "module"})) {
        return kExitUsage;
    }
    kyso::api::DemoOptions o;
    if (!a.options.count("dir")) {
        std::cerr << kUsage;
        return kExitUsage;
    }
    o.dir = a.options.at("dir");
    if (a.options.count("listen")) {
        o.listen = a.options.at("listen");
    }
    if (a.options.count("module")) {
        o.module = a.options.at("module");
    }
    auto st = kyso::api::demoInit(o, std::cout);
    return st ? 0 : fail(st.error(), exitCodeFor(st.error()));
}

int cmdServe(const Args& a) {
    if (!onlyKnown(a, {"config"})) {
        return kExitUsage;
    }
    auto cfg = configFrom(a);
    if (!cfg) {
        return fail(cfg.error(), kExitConfig);
    }
    // Block the termination signals in every thread; the main thread waits for them below.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    ::signal(SIGPIPE, SIG_IGN);

    auto token = kyso::hsm::Token::open(cfg->token);
    if (!token) {
        return fail(token.error(), kExitUnavailable);
    }
    auto store = kyso::api::Store::open(cfg->databasePath);
    if (!store) {
        return fail(store.error(), kExitUnavailable);
    }
    auto creds = kyso::api::CredentialRegistry::load(*cfg, **token);
    if (!creds) {
        return fail(creds.error(), exitCodeFor(creds.error()));
    }
    Poco::Net::initializeSSL();
    kyso::api::Service service(*cfg, **token, **store, *creds);
    auto st = service.start();
    if (!st) {
        return fail(st.error(), kExitUnavailable);
    }
    std::cout << "kyso: listening on https://" << cfg->listenHost << ":" << service.port()
              << " (token '" << (*token)->info().label << "', " << creds->ids().size()
              << " credentials)" << std::endl;
    int sig = 0;
    sigwait(&sigs, &sig);
    std::cout << "kyso: stopping (signal " << sig << ")" << std::endl;
    service.stop();
    Poco::Net::uninitializeSSL();
    return 0;
}

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
        return fail(Error::make("level.unsupported",
                                "only B-B is available without a timestamp authority"),
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

int cmdApiKey(const std::string& verb, const Args& a) {
    if (!onlyKnown(a, {"config", "role", "name", "id"})) {
        return kExitUsage;
    }
    auto cfg = configFrom(a);
    if (!cfg) {
        return fail(cfg.error(), kExitConfig);
    }
    auto store = kyso::api::Store::open(cfg->databasePath);
    if (!store) {
        return fail(store.error(), kExitUnavailable);
    }
    if (verb == "create") {
        if (!a.options.count("role") || !a.options.count("name")) {
            std::cerr << kUsage;
            return kExitUsage;
        }
        auto role = kyso::policies::parseRole(a.options.at("role"));
        if (!role) {
            std::cerr << "kyso: role must be admin, officer, clerk or portal\n";
            return kExitUsage;
        }
        auto key = (*store)->createApiKey(a.options.at("name"), *role);
        if (!key) {
            return fail(key.error(), kExitUnavailable);
        }
        // The only time the key is shown.
        std::cout << *key << "\n";
        return 0;
    }
    if (verb == "list") {
        for (const auto& k : (*store)->listApiKeys()) {
            std::cout << k.id << "\t" << k.name << "\t" << k.role << "\t" << k.created << "\t"
                      << (k.revoked ? "revoked" : "active") << "\n";
        }
        return 0;
    }
    if (verb == "revoke") {
        if (!a.options.count("id")) {
            std::cerr << kUsage;
            return kExitUsage;
        }
        auto st = (*store)->revokeApiKey(a.options.at("id"));
        return st ? 0 : fail(st.error(), kExitData);
    }
    std::cerr << kUsage;
    return kExitUsage;
}

}  // namespace

// PINs and keys pass through this process's memory: never into a core file or to a debugger
// of another user.
static void protectMemory() {
    struct rlimit none {0, 0};
    ::setrlimit(RLIMIT_CORE, &none);
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

int main(int argc, char** argv) {
    protectMemory();
    try {
        if (argc < 2) {
            std::cerr << kUsage;
            return kExitUsage;
        }
        const std::string cmd = argv[1];
        const std::string sub = argc > 2 ? argv[2] : "";
        if (cmd == "version" || cmd == "--version") {
            std::cout << "kyso " << KYSO_VERSION << "\n";
            return 0;
        }
        if (cmd == "help" || cmd == "--help" || cmd == "-h") {
            std::cout << kUsage;
            return 0;
        }
        const int from = (cmd == "serve") ? 2 : 3;
        auto args = parseArgs(argc, argv, from);
        if (!args || !args->positional.empty()) {
            std::cerr << kUsage;
            return kExitUsage;
        }
        if (cmd == "demo" && sub == "init") {
            return cmdDemoInit(*args);
        }
        if (cmd == "serve") {
            return cmdServe(*args);
        }
        if (cmd == "sign" && sub == "pdf") {
            return cmdSignPdf(*args);
        }
        if (cmd == "sign" && sub == "cms") {
            std::cerr << "kyso: sign cms is not available in this version\n";
            return kExitUsage;
        }
        if (cmd == "apikey") {
            return cmdApiKey(sub, *args);
        }
        std::cerr << kUsage;
        return kExitUsage;
    } catch (const std::exception& e) {
        std::cerr << "kyso: internal error: " << e.what() << "\n";
        return kExitSoftware;
    }
}
