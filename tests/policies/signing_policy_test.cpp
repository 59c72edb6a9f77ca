// The signing policy file: the shipped default, errors named by file and line, and one test per
// row of the decision table in signing_policy.h.
#include "kyso/policies/signing_policy.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace kyso::policies {
namespace {

SigningRequestFacts good() {
    return SigningRequestFacts{1000, "B-T", "RSA", 2048, "SHA-256"};
}

TEST(SigningPolicy, TheShippedFileIsTheDefault) {
    std::ifstream in(KYSO_POLICY_FILE);
    std::stringstream text;
    text << in.rdbuf();
    auto p = parseSigningPolicy(text.str(), "signing.policy");
    ASSERT_TRUE(p.ok()) << p.error().detail;
    const SigningPolicy d;
    EXPECT_EQ(p->maxDocumentBytes, d.maxDocumentBytes);
    EXPECT_EQ(p->minimumLevel, d.minimumLevel);
    EXPECT_EQ(p->rsaMinBits, d.rsaMinBits);
    EXPECT_EQ(p->ecMinBits, d.ecMinBits);
    EXPECT_EQ(p->hashes, d.hashes);
    EXPECT_EQ(p->ratePerMinute, d.ratePerMinute);
}

TEST(SigningPolicy, BadFilesAreRefusedWithFileAndLine) {
    const std::pair<const char*, const char*> cases[] = {
        {"[signing]\nmaxDocumentBytes = 10\n", "p.policy:2: maxDocumentBytes"},
        {"[signing]\n# comment\nrsaMinBits = 1024\n", "p.policy:3: rsaMinBits"},
        {"[signing]\necMinBits = 192\n", "p.policy:2: ecMinBits"},
        {"[signing]\nhashes = SHA-256, SHA-1\n", "p.policy:2: hashes"},
        {"[signing]\nminimumLevel = B-LTA\n", "p.policy:2: minimumLevel"},
        {"[signing]\nmaxDocumentByte = 2048\n", "p.policy:2: unknown key 'maxDocumentByte'"},
        {"[signature]\n", "p.policy:1: unknown section [signature]"},
        {"maxDocumentBytes = 2048\n", "p.policy:1: expected key = value in a section"},
        {"[signing]\nratePerMinute = -1\n", "p.policy:2: ratePerMinute"},
    };
    for (const auto& [text, expected] : cases) {
        SCOPED_TRACE(text);
        auto p = parseSigningPolicy(text, "p.policy");
        ASSERT_FALSE(p.ok());
        EXPECT_EQ(p.error().code, "policy.invalid");
        EXPECT_EQ(p.error().detail.rfind(expected, 0), 0u) << p.error().detail;
    }
}

TEST(SigningPolicy, RowAllowed) {
    EXPECT_TRUE(checkSigningRequest(SigningPolicy{}, good()).allowed);
}

TEST(SigningPolicy, RowDocumentTooLarge) {
    SigningPolicy p;
    p.maxDocumentBytes = 999;
    auto d = checkSigningRequest(p, good());
    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.rule, "document-too-large");
}

TEST(SigningPolicy, RowMinimumLevel) {
    SigningPolicy p;
    p.minimumLevel = "B-T";
    auto r = good();
    r.level = "B-B";
    EXPECT_EQ(checkSigningRequest(p, r).rule, "minimum-level");
    r.level = "B-T";
    EXPECT_TRUE(checkSigningRequest(p, r).allowed);
}

TEST(SigningPolicy, RowRsaKeyTooSmall) {
    SigningPolicy p;
    p.rsaMinBits = 3072;
    EXPECT_EQ(checkSigningRequest(p, good()).rule, "rsa-key-too-small");
}

TEST(SigningPolicy, RowEcKeyTooSmall) {
    SigningPolicy p;
    p.ecMinBits = 384;
    auto r = good();
    r.keyType = "EC";
    r.keyBits = 256;
    EXPECT_EQ(checkSigningRequest(p, r).rule, "ec-key-too-small");
    r.keyBits = 384;
    EXPECT_TRUE(checkSigningRequest(p, r).allowed);
}

TEST(SigningPolicy, RowHashNotAllowed) {
    SigningPolicy p;
    p.hashes = {"SHA-384"};
    EXPECT_EQ(checkSigningRequest(p, good()).rule, "hash-not-allowed");
}

}  // namespace
}  // namespace kyso::policies
