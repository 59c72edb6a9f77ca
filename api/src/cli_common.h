// What the two executables of the CLI share: argument parsing, exit codes, usage. Private to api/.
#pragma once

#include <sys/prctl.h>
#include <sys/resource.h>

#include <exception>
#include <initializer_list>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kyso/api/config.h"

namespace kyso::cli {

using kyso::Error;

// sysexits(3)
constexpr int kExitUsage = 64;
constexpr int kExitData = 65;
constexpr int kExitUnavailable = 69;
constexpr int kExitSoftware = 70;
constexpr int kExitIo = 74;
constexpr int kExitConfig = 78;

inline const char* kUsage =
    "usage:\n"
    "  kyso demo init --dir DIR [--listen HOST:PORT] [--key-type RSA-2048|P-256]\n"
    "  kyso serve --config FILE\n"
    "  kyso sign pdf --config FILE --key ID_OR_PKCS11_URI --in IN --out OUT\n"
    "                [--reason TEXT] [--location TEXT] [--contact-info TEXT] [--field NAME]\n"
    "                [--page N] [--level B-B] [--seal SEAL_ID] [--visible true]\n"
    "                [--rect X,Y,W,H] [--layout L] [--font-size N] [--image false] [--text T]\n"
    "                [--document-password-file FILE|env:NAME]  (a PDF that needs a password)\n"
    "  kyso sign cms --config FILE --key ID_OR_PKCS11_URI --in IN --out OUT\n"
    "                [--attached true|false] [--level B-B]\n"
    "  kyso verify --config FILE IN [--data DETACHED] [--at YYYY-MM-DDTHH:MM:SSZ]\n"
    "                (exit 0 TOTAL_PASSED, 1 TOTAL_FAILED, 2 INDETERMINATE or no signature)\n"
    "  kyso audit verify --config FILE | --export FILE [--certificate PEM]\n"
    "                (exit 0 intact; else the first bad entry on stdout, exit 1)\n"
    "  kyso audit export --config FILE --out FILE\n"
    "  kyso apikey create --config FILE --role admin|officer|clerk|portal --name NAME\n"
    "  kyso apikey list --config FILE\n"
    "  kyso apikey revoke --config FILE --id ID_OR_NAME\n"
    "  kyso ca revoke SERIAL --config FILE --ca NAME [--reason REASON]\n"
    "  kyso ca request --config FILE --key LABEL --subject C=VN,O=..,CN=.. --server URL\n"
    "                --anchors PEM (--reference REF --secret file:PATH | --client ID)\n"
    "                [--type ir|cr|p10cr] [--generate RSA-2048] --out CERT.pem\n"
    "  kyso version\n";

struct Args {
    std::vector<std::string> positional;
    std::map<std::string, std::string> options;
};

// "--name value" pairs after the subcommand words. PINs have no option: they never pass argv.
inline std::optional<Args> parseArgs(int argc, char** argv, int from) {
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

inline bool onlyKnown(const Args& a, std::initializer_list<const char*> known) {
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

inline int fail(const Error& e, int code) {
    std::cerr << "kyso: " << e.code << ": " << e.detail << "\n";
    return code;
}

inline int exitCodeFor(const Error& e) {
    const std::string& c = e.code;
    if (c.rfind("pdf.", 0) == 0 || c.rfind("cms.", 0) == 0) {
        return kExitData;
    }
    // The configured images and fonts are configuration; what was asked to be drawn is data.
    if (c.rfind("appearance.image", 0) == 0 || c.rfind("appearance.font", 0) == 0) {
        return kExitConfig;
    }
    if (c.rfind("appearance.", 0) == 0) {
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
    if (c == "demo.key_type") {
        return kExitUsage;
    }
    return kExitSoftware;
}

inline kyso::Result<kyso::api::Config> configFrom(const Args& a) {
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

// PINs and keys pass through the process's memory: never into a core file or to a debugger of
// another user.
inline void protectMemory() {
    struct rlimit none {
        0, 0
    };
    ::setrlimit(RLIMIT_CORE, &none);
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

// The frame of both executables' main(): memory protection, the usage message for a bare
// command, and a catch-all that turns an escaped exception into exit code 70.
template <typename Dispatch>
int runCli(int argc, char** argv, Dispatch&& dispatch) {
    protectMemory();
    try {
        if (argc < 2) {
            std::cerr << kUsage;
            return kExitUsage;
        }
        return dispatch(std::string(argv[1]), std::string(argc > 2 ? argv[2] : ""));
    } catch (const std::exception& e) {
        std::cerr << "kyso: internal error: " << e.what() << "\n";
        return kExitSoftware;
    }
}

}  // namespace kyso::cli
