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
    EXPECT_EQ(p->validation.name, d.validation.name);
    EXPECT_EQ(p->validation.maxModifications, d.validation.maxModifications);
    EXPECT_EQ(p->validation.digests, d.validation.digests);
    EXPECT_EQ(p->validation.rsaMinBits, d.validation.rsaMinBits);
    EXPECT_EQ(p->validation.ecMinBits, d.validation.ecMinBits);
    EXPECT_EQ(p->validation.ocspMaxAgeSeconds, d.validation.ocspMaxAgeSeconds);
    EXPECT_TRUE(p->validation.trustAnchors.empty());
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
        {"[validation]\nmaxModifications = OTHER\n", "p.policy:2: maxModifications"},
        {"[validation]\ndigests = MD5\n", "p.policy:2: digests"},
        {"[validation]\nanchors = x\n", "p.policy:2: unknown key 'anchors' in [validation]"},
    };
    for (const auto& [text, expected] : cases) {
        SCOPED_TRACE(text);
        auto p = parseSigningPolicy(text, "p.policy");
        ASSERT_FALSE(p.ok());
        EXPECT_EQ(p.error().code, "policy.invalid");
        EXPECT_EQ(p.error().detail.rfind(expected, 0), 0u) << p.error().detail;
    }
}

TEST(SigningPolicy, RulesFromTheFileReplaceTheShippedTable) {
    // An agency where only the clerk signs, and only with credentials it owns.
    auto p = parseSigningPolicy(
        "[operations]\nsign-pdf = officer, seal\n"
        "[rule.clerk-own]\nroles = clerk\noperations = sign-pdf\nowner = true\n"
        "kindFitsOperation = true\neffect = allow\n"
        "[rule.nobody-else]\neffect = deny\nreason = only clerks sign here, not {role}\n",
        "agency.policy");
    ASSERT_TRUE(p.ok()) << p.error().detail;
    const auto& rules = authorizationOf(*p);
    ASSERT_EQ(rules.rules.size(), 2u);
    const CredentialFacts seal{"seal-1", "seal", {"clerk-1"}};
    auto d = decide(rules, Principal{"clerk-1", Role::Clerk}, seal, Operation::SignPdf);
    EXPECT_TRUE(d.allowed);
    EXPECT_EQ(d.rule, "clerk-own");
    d = decide(rules, Principal{"clerk-2", Role::Clerk}, seal, Operation::SignPdf);
    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.rule, "nobody-else");
    d = decide(rules, Principal{"officer-1", Role::Officer},
               CredentialFacts{"officer-1", "officer", {"officer-1"}}, Operation::SignPdf);
    EXPECT_EQ(d.rule, "nobody-else");
    EXPECT_EQ(d.reason, "only clerks sign here, not officer");
    // A policy without rules keeps the shipped table.
    auto plain = parseSigningPolicy("[signing]\nratePerMinute = 5\n", "plain.policy");
    ASSERT_TRUE(plain.ok());
    EXPECT_EQ(&authorizationOf(*plain), &defaultAuthorizationPolicy());
    EXPECT_EQ(defaultAuthorizationPolicy().rules.size(), 9u);
}

TEST(SigningPolicy, BadRulesAreRefusedWithFileAndLine) {
    const std::pair<const char*, const char*> cases[] = {
        {"[rule.a]\nroles = officer, boss\neffect = allow\n", "r.policy:2: unknown role 'boss'"},
        {"[rule.a]\nroles = officer\n[rule.b]\neffect = deny\n",
         "r.policy:3: [rule.a] needs effect"},
        {"[rule.a]\neffect = maybe\n", "r.policy:2: effect must be allow or deny"},
        {"[rule.a]\neffect = allow\n[rule.a]\neffect = deny\n",
         "r.policy:3: rule a is defined twice"},
        {"[rule.a]\noperations = sign-xml\neffect = allow\n",
         "r.policy:2: unknown operation 'sign-xml'"},
        {"[rule.a]\nowner = yes\neffect = allow\n", "r.policy:2: owner must be true or false"},
        {"[rule.a]\neffect = allow\nwho = me\n", "r.policy:3: unknown key 'who'"},
        {"[operations]\nsign-xml = officer\n", "r.policy:2: unknown operation 'sign-xml'"},
        {"[rule.a]\nroles = admin\n", "r.policy:2: [rule.a] needs effect"},
    };
    for (const auto& [text, expected] : cases) {
        SCOPED_TRACE(text);
        auto p = parseSigningPolicy(text, "r.policy");
        ASSERT_FALSE(p.ok());
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
