// Citizens' certificates from the embedded CA (issue 7), read back by the openssl CLI.
#include "kyso/ca-bridge/issuer.h"

#include <gtest/gtest.h>

#include <regex>

#include "kyso/hsm/ossl_ptr.h"
#include "test_env.h"

namespace kyso::test {
namespace {

TEST(Issuer, CitizenCertificateCarriesTheIdentityAndTheCaUrls) {
    hsm::Token& token = openTestToken();
    const TestPki& pki = testPki(token);
    hsm::KeySpec spec;
    spec.type = hsm::KeyType::Rsa;
    spec.rsaBits = 2048;
    spec.label = "citizen-issuer-test";
    auto key = token.generateKey(spec);
    ASSERT_TRUE(key.ok()) << key.error().detail;
    ca::CertificateProfile p = ca::citizenCertificateProfile(
        {"Trần Thị Bích Ngọc", "001203004567", "Hà Nam"},
        "https://kyso.example.vn/ca/issuing-ca.crl", "https://kyso.example.vn/ocsp", 365);
    p.publicKeyDer = key->publicKeyDer;
    auto der = ca::issueCertificate(p, pki.ca);
    ASSERT_TRUE(der.ok()) << der.error().detail;

    const std::string dir = tempDir("citizen-cert");
    writeFile(dir + "/c.pem", ca::certificateToPem(*der));
    std::string text;
    ASSERT_EQ(
        run("openssl x509 -in " + dir + "/c.pem -noout -text -nameopt utf8,sep_comma_plus", &text),
        0);
    EXPECT_NE(text.find("CN=Trần Thị Bích Ngọc"), std::string::npos) << text;
    EXPECT_NE(text.find("serialNumber=001203004567"), std::string::npos) << text;
    EXPECT_NE(text.find("ST=Hà Nam"), std::string::npos) << text;
    EXPECT_NE(text.find("C=VN"), std::string::npos) << text;
    EXPECT_TRUE(std::regex_search(text, std::regex("X509v3 Key Usage: critical\\s+Digital "
                                                   "Signature, Non Repudiation\\s")))
        << text;
    EXPECT_NE(text.find("URI:https://kyso.example.vn/ca/issuing-ca.crl"), std::string::npos);
    EXPECT_NE(text.find("OCSP - URI:https://kyso.example.vn/ocsp"), std::string::npos);
    // One year, and a serial number of 64 random bits or more (127 here).
    std::string dates;
    ASSERT_EQ(run("openssl x509 -in " + dir + "/c.pem -noout -startdate -enddate -serial", &dates),
              0);
    std::smatch m;
    ASSERT_TRUE(std::regex_search(dates, m, std::regex("serial=([0-9A-F]+)"))) << dates;
    EXPECT_GE(m[1].str().size(), 16u);
    OsslPtr<X509> x = x509FromDer(*der);
    ASSERT_TRUE(x);
    int days = 0;
    int secs = 0;
    ASSERT_EQ(::ASN1_TIME_diff(&days, &secs, ::X509_get0_notBefore(x.get()),
                               ::X509_get0_notAfter(x.get())),
              1);
    EXPECT_EQ(days, 365);
    // Verifies against the CA.
    std::string out;
    EXPECT_EQ(run("openssl verify -CAfile " + pki.caPemFile + " " + dir + "/c.pem 2>&1", &out), 0)
        << out;
}

}  // namespace
}  // namespace kyso::test
