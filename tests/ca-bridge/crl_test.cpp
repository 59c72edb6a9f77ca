// CRLs signed on the token, checked by the openssl CLI.
#include "kyso/ca-bridge/crl.h"

#include <gtest/gtest.h>

#include <ctime>

#include "kyso/ca-bridge/issuer.h"
#include "kyso/hsm/ossl_ptr.h"
#include "test_env.h"

namespace kyso::test {
namespace {

std::string pemCrl(const std::string& der) {
    const std::string dir = tempDir("crl");
    writeFile(dir + "/crl.der", der);
    std::string out;
    run("openssl crl -inform DER -in " + dir + "/crl.der", &out);
    return out;
}

TEST(Crl, RevokedCertificateIsRefusedByOpensslVerify) {
    hsm::Token& token = openTestToken();
    const TestPki& pki = testPki(token);
    hsm::Credential revoked =
        makeCredential(token, "crl-leaf-revoked", hsm::KeyType::Ec, 0, "P-256");
    hsm::Credential good = makeCredential(token, "crl-leaf-good", hsm::KeyType::Ec, 0, "P-256");
    const std::time_t now = std::time(nullptr);
    auto der = ca::buildCrl(
        pki.ca,
        {{ca::serialHexOf(revoked.certificateDer), now - 60, ca::RevocationReason::KeyCompromise}},
        7, now - 60, now + 7 * 86400);
    ASSERT_TRUE(der.ok()) << der.error().detail;
    const std::string dir = tempDir("crl-check");
    writeFile(dir + "/crl.pem", pemCrl(*der));
    writeFile(dir + "/revoked.pem", ca::certificateToPem(revoked.certificateDer));
    writeFile(dir + "/good.pem", ca::certificateToPem(good.certificateDer));
    std::string out;
    // The CRL's signature verifies with the CA certificate (made on the token).
    EXPECT_EQ(run("openssl crl -in " + dir + "/crl.pem -noout -CAfile " + pki.caPemFile, &out), 0)
        << out;
    EXPECT_NE(out.find("verify OK"), std::string::npos) << out;
    run("openssl crl -in " + dir + "/crl.pem -noout -text", &out);
    EXPECT_NE(out.find("Key Compromise"), std::string::npos) << out;
    EXPECT_NE(out.find("X509v3 CRL Number"), std::string::npos) << out;
    EXPECT_NE(out.find("Authority Key Identifier"), std::string::npos) << out;
    EXPECT_NE(out.find(ca::serialHexOf(revoked.certificateDer)), std::string::npos) << out;
    EXPECT_EQ(out.find(ca::serialHexOf(good.certificateDer)), std::string::npos) << out;
    // openssl verify with the CRL: revoked is refused, good passes.
    EXPECT_NE(run("openssl verify -crl_check -CAfile " + pki.caPemFile + " -CRLfile " + dir +
                      "/crl.pem " + dir + "/revoked.pem",
                  &out),
              0);
    EXPECT_NE(out.find("certificate revoked"), std::string::npos) << out;
    EXPECT_EQ(run("openssl verify -crl_check -CAfile " + pki.caPemFile + " -CRLfile " + dir +
                      "/crl.pem " + dir + "/good.pem",
                  &out),
              0)
        << out;
}

TEST(Crl, BadSerialIsRefused) {
    hsm::Token& token = openTestToken();
    auto der = ca::buildCrl(testPki(token).ca, {{"not-hex", 0, ca::RevocationReason::Unspecified}},
                            1, 0, 86400);
    ASSERT_FALSE(der.ok());
    EXPECT_EQ(der.error().code, "ca.profile");
    EXPECT_FALSE(ca::parseRevocationReason("stolen").has_value());
    EXPECT_EQ(ca::parseRevocationReason("keyCompromise"), ca::RevocationReason::KeyCompromise);
}

}  // namespace
}  // namespace kyso::test
