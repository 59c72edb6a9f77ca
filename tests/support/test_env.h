// Test support: a real SoftHSM2 token created for this test process, in a fresh directory, and
// small helpers to run the external tools that check our output.
#pragma once

#include <string>
#include <vector>

#include "kyso/hsm/credential.h"
#include "kyso/hsm/token.h"

namespace kyso::test {

// The module every test uses.
const char* softhsmModule();

// A per-process SoftHSM2 token ("kyso-test") in a temporary directory, initialised on first use
// with random PINs written to files. SOFTHSM2_CONF is set for the process.
struct TestToken {
    std::string dir;
    std::string pinFile;
    std::string soPinFile;
    hsm::TokenConfig config() const;
};
const TestToken& testToken();
// A Token opened on the test token once for this process, shared by the tests that need one.
hsm::Token& openTestToken();

// A fresh temporary directory (removed at process exit).
std::string tempDir(const std::string& tag);

// A CA and an end-entity credential on the test token, issued by the test CA; generated once per
// label. The chain holds the CA certificate.
struct TestPki {
    hsm::Credential ca;  // self-signed root, RSA-2048
    std::string caPemFile;
};
const TestPki& testPki(hsm::Token& token);
hsm::Credential makeCredential(hsm::Token& token, const std::string& label, hsm::KeyType type,
                               unsigned rsaBits = 2048, const std::string& curve = "P-256");

// Runs a command through /bin/sh, returns its exit status; output goes to `output`.
int run(const std::string& command, std::string* output = nullptr);

std::string readFile(const std::string& path);
void writeFile(const std::string& path, const std::string& data);
std::string shellQuote(const std::string& s);

// Where the third-party corpus lives (tests/data/corpus in the source tree; KYSO_CORPUS_DIR
// overrides it).
std::string corpusDir();
// The project's own test inputs (tests/data in the source tree).
std::string testDataDir();

}  // namespace kyso::test
