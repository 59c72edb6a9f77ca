// The `kyso` executable: one command with subcommands (docs/API.md). It
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
#include "cli_sign.h"
#include "kyso/api/credentials.h"

namespace kyso::cli {
namespace {

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
        if (cmd == "serve" || cmd == "demo" || cmd == "apikey" || cmd == "ca" || cmd == "verify" ||
            cmd == "audit") {
            return execService(argv);
        }
        auto args = parseArgs(argc, argv, 3);
        if (!args || !args->positional.empty()) {
            std::cerr << kUsage;
            return kExitUsage;
        }
        if (cmd == "sign") {
            // B-T needs a TSA client: kyso-service has one.
            auto cfg = configFrom(*args);
            if (cfg && signLevel(*args, *cfg) == "B-T") {
                return execService(argv);
            }
            return cmdSign(sub, *args, nullptr);
        }
        std::cerr << kUsage;
        return kExitUsage;
    });
}
