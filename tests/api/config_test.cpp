// The configuration file: unknown keys and bad values are refused with the file and line named.
#include "kyso/api/config.h"

#include <gtest/gtest.h>

#include "test_env.h"

namespace kyso::test {
namespace {

const char* kGood =
    "[server]\nlisten = 127.0.0.1:9443\ncertificate = tls/server.pem\nprivateKey = tls/k.pem\n"
    "[pkcs11]\nmodule = /usr/lib/softhsm/libsofthsm2.so\ntoken = t\npin = file:secrets/p\n"
    "[credential.officer-1]\nkind = officer\nkey = pkcs11:object=officer-1\n"
    "certificate = pki/o.pem\nowners = a, b\n";

Result<api::Config> load(const std::string& text) {
    const std::string path = tempDir("conf") + "/kyso.conf";
    writeFile(path, text);
    return api::loadConfig(path);
}

TEST(Config, ReadsAndResolvesRelativePaths) {
    auto c = load(kGood);
    ASSERT_TRUE(c.ok()) << c.error().detail;
    EXPECT_EQ(c->listenPort, 9443);
    EXPECT_EQ(c->listenHost, "127.0.0.1");
    EXPECT_EQ(c->tlsCertificate.front(), '/');
    EXPECT_NE(c->token.pinSource.find("file:/"), std::string::npos);
    EXPECT_EQ(c->maxBodyBytes, 100ull * 1024 * 1024);
    ASSERT_EQ(c->credentials.size(), 1u);
    EXPECT_EQ(c->credentials[0].owners, (std::vector<std::string>{"a", "b"}));
}

TEST(Config, TheValidationPolicyComesFromThePolicyFile) {
    // Without a policy file: the shipped defaults.
    auto plain = load(kGood);
    ASSERT_TRUE(plain.ok()) << plain.error().detail;
    EXPECT_EQ(plain->signing.validation.maxModifications, "FORM_FILLING");
    EXPECT_EQ(plain->signing.validation.rsaMinBits, 2048u);
    // With one: its [validation], trust anchors relative to the policy file.
    const std::string dir = tempDir("policy-conf");
    writeFile(dir + "/portal.policy",
              "[validation]\nname = portal-strict\nmaxModifications = NONE\n"
              "digests = SHA-384, SHA-512\nrsaMinBits = 3072\ntrustAnchors = anchors\n");
    const std::string conf = dir + "/kyso.conf";
    writeFile(conf, std::string(kGood) + "[policy]\nfile = portal.policy\n");
    auto c = api::loadConfig(conf);
    ASSERT_TRUE(c.ok()) << c.error().detail;
    EXPECT_EQ(c->signing.validation.name, "portal-strict");
    EXPECT_EQ(c->signing.validation.maxModifications, "NONE");
    EXPECT_EQ(c->signing.validation.digests, (std::vector<std::string>{"SHA-384", "SHA-512"}));
    EXPECT_EQ(c->signing.validation.rsaMinBits, 3072u);
    EXPECT_EQ(c->validation.trustAnchors, dir + "/anchors");
    // A soft revocation rule is not a choice (national rule), and is named with its line.
    writeFile(dir + "/portal.policy", "[validation]\n\nrevocation = optional\n");
    auto bad = api::loadConfig(conf);
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().detail.find("portal.policy:3: revocation must be required"),
              std::string::npos)
        << bad.error().detail;
}

TEST(Config, RefusesUnknownKeysNamingFileAndLine) {
    auto c = load(std::string(kGood) + "pinn = 1234\n");
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error().code, "config.invalid");
    EXPECT_NE(c.error().detail.find("kyso.conf:14"), std::string::npos) << c.error().detail;
    EXPECT_NE(c.error().detail.find("pinn"), std::string::npos);
    EXPECT_EQ(c.error().detail.find("1234"), std::string::npos) << "values are never echoed";
}

TEST(Config, RefusesBadValues) {
    for (const std::string bad : {"[server]\nlisten = nowhere\n", "[server]\nthreads = 0\n",
                                  "[server]\nmaxBodyBytes = lots\n", "[bogus]\nx = 1\n",
                                  "[credential.x]\nkind = wizard\nkey = k\ncertificate = c\n"}) {
        auto c = load(std::string(kGood) + bad);
        EXPECT_FALSE(c.ok()) << bad;
        if (!c.ok()) {
            EXPECT_EQ(c.error().code, "config.invalid");
        }
    }
    auto noPin = load("[pkcs11]\nmodule = m\n");
    ASSERT_FALSE(noPin.ok());
    EXPECT_NE(noPin.error().detail.find("pin"), std::string::npos);
}

}  // namespace
}  // namespace kyso::test
