// Replays every saved fuzzing input (tests/data/fuzz/<target>/: the crashes the fuzzers found,
// named after what they were, and a small minimized seed set) through the same functions the
// libFuzzer targets call (fuzz/targets.h), in the ordinary build: each must be handled - accepted
// or refused with an error - with every property of the target holding.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "targets.h"
#include "test_env.h"

namespace kyso::fuzz {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> inputsOf(const std::string& target) {
    std::vector<fs::path> files;
    const fs::path dir = fs::path(KYSO_FUZZ_DATA_DIR) / target;
    if (fs::is_directory(dir)) {
        for (const auto& entry : fs::directory_iterator(dir)) {
            if (entry.is_regular_file()) {
                files.push_back(entry.path());
            }
        }
    }
    std::sort(files.begin(), files.end());
    return files;
}

class Replay : public ::testing::TestWithParam<TargetInfo> {};

TEST_P(Replay, EverySavedInputIsHandled) {
    const TargetInfo& t = GetParam();
    const auto files = inputsOf(t.name);
    ASSERT_FALSE(files.empty()) << "no inputs in tests/data/fuzz/" << t.name;
    for (const auto& f : files) {
        const std::string data = test::readFile(f.string());
        EXPECT_EQ(t.fn(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()), 0)
            << f.filename().string();
        std::printf("  %s/%s: %s\n", t.name, f.filename().c_str(), lastOutcome().c_str());
    }
}

INSTANTIATE_TEST_SUITE_P(Fuzz, Replay, ::testing::ValuesIn(targets()),
                         [](const ::testing::TestParamInfo<TargetInfo>& info) {
                             return std::string(info.param.name);
                         });

// What a few saved inputs must give, so that a change that makes a target refuse everything (or
// accept everything) cannot pass unnoticed.
TEST(Replay, KnownInputsGiveTheirOutcome) {
    struct Case {
        const char* target;
        const char* file;
        const char* outcome;
    };
    const Case cases[] = {
        {"pdf_sign", "seed-dss-EmptyPage.pdf", "ok"},
        {"pdf_sign", "seed-ph-fontembed.pdf", "ok"},
        {"pdf_sign", "seed-dss-EmptyPage-corrupted.pdf", "pdf.damaged"},
        {"pdf_verify", "seed-dss-EmptyPage.pdf", "NO_SIGNATURE_FOUND"},
        {"pdf_verify", "seed-ph-coverage-anomalies-weird-byterange.pdf", "TOTAL_FAILED"},
        {"pdf_verify", "seed-dss-EmptyPage-corrupted.pdf", "pdf.damaged"},
        // Signed by an openssl CA that is not a trust anchor here.
        {"cms", "seed-cms-detached.der", "INDETERMINATE"},
        {"tsa_request", "seed-tsq-sha256-cert.der", "status 0"},
        {"tsa_request", "seed-tsq-sha1.der", "status 2"},
        {"ocsp_request", "seed-ocsp-req.der", "ok"},
        // Signed by another CA than the fuzzing leaf's issuer: not usable.
        {"ocsp_response", "seed-ocsp-resp-good.der", "UNAVAILABLE"},
        {"crl", "seed-crl-revoked.der", "UNAVAILABLE"},
        {"certificate", "seed-leaf.der", "INDETERMINATE"},
        {"receipt_json", "seed-good.json", "ok"},
        {"receipt_json", "seed-wrong-total.json", "invalid"},
        {"canonical_json", "seed-order.json", "ok"},
        {"jws", "seed-flattened.json", "valid"},
        {"jws", "seed-compact.txt", "valid"},
        {"jws", "seed-no-x5c.json", "not-valid"},
        {"jws", "seed-alg-none.txt", "jws.alg_unsupported"},
        {"pkcs11_uri", "seed-uri-1.txt", "ok"},
        {"signing_policy", "seed-shipped.policy", "ok"},
    };
    for (const auto& c : cases) {
        const auto it = std::find_if(targets().begin(), targets().end(), [&](const TargetInfo& t) {
            return std::string(t.name) == c.target;
        });
        ASSERT_NE(it, targets().end()) << c.target;
        const std::string data =
            test::readFile(std::string(KYSO_FUZZ_DATA_DIR) + "/" + c.target + "/" + c.file);
        ASSERT_FALSE(data.empty()) << c.target << "/" << c.file;
        EXPECT_EQ(it->fn(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()), 0);
        EXPECT_EQ(lastOutcome(), c.outcome) << c.target << "/" << c.file;
    }
}

// The empty input and a single byte reach every target (libFuzzer tries both first).
TEST(Replay, TrivialInputs) {
    const std::uint8_t one[1] = {0x30};
    for (const auto& t : targets()) {
        EXPECT_EQ(t.fn(one, 0), 0) << t.name;
        EXPECT_EQ(t.fn(one, 1), 0) << t.name;
    }
}

}  // namespace
}  // namespace kyso::fuzz
