// Path validation against PKIs made by the openssl CLI in the test (not by our issuer), at
// validation times fixed relative to the certificates' own validity.
#include "kyso/ca-bridge/path.h"

#include <gtest/gtest.h>

#include <ctime>

#include "kyso/ca-bridge/certificate_pool.h"
#include "kyso/ca-bridge/issuer.h"
#include "test_env.h"

namespace kyso::test {
namespace {

struct OpensslPki {
    std::string dir;
    std::string root, inter, leaf, otherRoot, encipherOnly, tsa, tsaNonCritical;
};

std::string der(const std::string& pemFile) {
    auto certs = ca::certificatesFromPem(readFile(pemFile));
    return certs ? certs->front() : std::string();
}

// root -> intermediate -> leaves, each leaf valid 365 days from now.
const OpensslPki& pki() {
    static OpensslPki p = [] {
        OpensslPki k;
        k.dir = tempDir("pki");
        const std::string d = k.dir;
        writeFile(
            d + "/ext.cnf",
            "[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
            "subjectKeyIdentifier=hash\n"
            "[sign]\nbasicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,nonRepudiation\n"
            "[enc]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,keyEncipherment\n"
            "[tsa]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=critical,timeStamping\n"
            "[tsa_nc]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=timeStamping\n");
        auto sh = [&](const std::string& cmd) {
            std::string out;
            if (run("cd " + d + " && " + cmd, &out) != 0) {
                throw std::runtime_error(cmd + ": " + out);
            }
        };
        auto key = [&](const std::string& n) {
            sh("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " + n + ".key");
        };
        for (const char* n : {"root", "other", "inter", "leaf", "enc", "tsa", "tsanc"}) {
            key(n);
        }
        sh("openssl req -x509 -new -key root.key -subj '/C=VN/CN=Test Root' -days 3650 "
           "-extensions ca -config ext.cnf -out root.pem");
        sh("openssl req -x509 -new -key other.key -subj '/C=VN/CN=Other Root' -days 3650 "
           "-extensions ca -config ext.cnf -out other.pem");
        sh("openssl req -new -key inter.key -subj '/C=VN/CN=Test Issuing' -out inter.csr && "
           "openssl x509 -req -in inter.csr -CA root.pem -CAkey root.key -CAcreateserial "
           "-days 1825 -extfile ext.cnf -extensions ca -out inter.pem");
        auto leafCert = [&](const std::string& n, const std::string& ext) {
            sh("openssl req -new -key " + n + ".key -subj '/C=VN/CN=" + n + "' -out " + n +
               ".csr && openssl x509 -req -in " + n +
               ".csr -CA inter.pem -CAkey inter.key "
               "-CAcreateserial -days 365 -extfile ext.cnf -extensions " +
               ext + " -out " + n + ".pem");
        };
        leafCert("leaf", "sign");
        leafCert("enc", "enc");
        leafCert("tsa", "tsa");
        leafCert("tsanc", "tsa_nc");
        k.root = der(d + "/root.pem");
        k.otherRoot = der(d + "/other.pem");
        k.inter = der(d + "/inter.pem");
        k.leaf = der(d + "/leaf.pem");
        k.encipherOnly = der(d + "/enc.pem");
        k.tsa = der(d + "/tsa.pem");
        k.tsaNonCritical = der(d + "/tsanc.pem");
        return k;
    }();
    return p;
}

constexpr std::time_t kDay = 86400;

TEST(Path, ValidChainPassesAndIsReturnedLeafFirst) {
    const auto& p = pki();
    auto r = ca::validatePath(p.leaf, {p.inter}, {p.root}, std::time(nullptr), ca::Usage::Signing);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->indication, "TOTAL_PASSED") << (r->errors.empty() ? "" : r->errors[0]);
    ASSERT_EQ(r->chainDer.size(), 3u);
    EXPECT_EQ(r->chainDer.front(), p.leaf);
    EXPECT_EQ(r->chainDer.back(), p.root);
}

TEST(Path, APoolParsesEachCertificateOnceAndGivesTheSameVerdicts) {
    const auto& p = pki();
    ca::CertificatePool pool(3);
    OsslPtr<X509> a = pool.get1(p.leaf);
    OsslPtr<X509> b = pool.get1(p.leaf);
    ASSERT_TRUE(a);
    EXPECT_EQ(a.get(), b.get());  // one parsed object, shared
    EXPECT_FALSE(pool.get1("not DER"));
    for (int i = 0; i < 3; ++i) {
        const std::time_t at = std::time(nullptr) + (i == 2 ? 400 * kDay : 0);
        auto pooled = ca::validatePath(p.leaf, {p.inter}, {p.root}, at, ca::Usage::Signing, &pool);
        auto plain = ca::validatePath(p.leaf, {p.inter}, {p.root}, at, ca::Usage::Signing);
        ASSERT_TRUE(pooled.ok() && plain.ok());
        EXPECT_EQ(pooled->indication, plain->indication);
        EXPECT_EQ(pooled->subIndication, plain->subIndication);
        EXPECT_EQ(pooled->chainDer, plain->chainDer);
    }
    // Past its bound the pool starts again; a certificate still parses.
    pool.get1(p.otherRoot);
    pool.get1(p.tsa);
    EXPECT_TRUE(pool.get1(p.encipherOnly));
    OsslPtr<X509> c = pool.get1(p.leaf);
    ASSERT_TRUE(c);
    EXPECT_EQ(::X509_cmp(a.get(), c.get()), 0);
}

TEST(Path, MissingIntermediateOrUnknownRootHasNoChain) {
    const auto& p = pki();
    const std::time_t now = std::time(nullptr);
    for (auto r : {ca::validatePath(p.leaf, {}, {p.root}, now, ca::Usage::Signing),
                   ca::validatePath(p.leaf, {p.inter}, {p.otherRoot}, now, ca::Usage::Signing)}) {
        ASSERT_TRUE(r.ok());
        EXPECT_EQ(r->indication, "INDETERMINATE");
        EXPECT_EQ(r->subIndication, "NO_CERTIFICATE_CHAIN_FOUND");
    }
}

TEST(Path, ValidityIsCheckedAtTheGivenTime) {
    const auto& p = pki();
    const std::time_t now = std::time(nullptr);
    auto expired =
        ca::validatePath(p.leaf, {p.inter}, {p.root}, now + 400 * kDay, ca::Usage::Signing);
    ASSERT_TRUE(expired.ok());
    EXPECT_EQ(expired->subIndication, "EXPIRED");
    EXPECT_EQ(expired->indication, "INDETERMINATE");
    auto early = ca::validatePath(p.leaf, {p.inter}, {p.root}, now - 30 * kDay, ca::Usage::Signing);
    ASSERT_TRUE(early.ok());
    EXPECT_EQ(early->subIndication, "NOT_YET_VALID");
    // Within the validity, a year from now minus a day, it still passes.
    auto late = ca::validatePath(p.leaf, {p.inter}, {p.root}, now + 360 * kDay, ca::Usage::Signing);
    ASSERT_TRUE(late.ok());
    EXPECT_TRUE(late->passed());
}

TEST(Path, KeyUsageMustFitTheRole) {
    const auto& p = pki();
    const std::time_t now = std::time(nullptr);
    auto enc = ca::validatePath(p.encipherOnly, {p.inter}, {p.root}, now, ca::Usage::Signing);
    ASSERT_TRUE(enc.ok());
    EXPECT_EQ(enc->indication, "TOTAL_FAILED");
    EXPECT_EQ(enc->subIndication, "CHAIN_CONSTRAINTS_FAILURE");
    auto tsa = ca::validatePath(p.tsa, {p.inter}, {p.root}, now, ca::Usage::TimeStamping);
    ASSERT_TRUE(tsa.ok());
    EXPECT_TRUE(tsa->passed()) << (tsa->errors.empty() ? "" : tsa->errors[0]);
    auto nonCritical =
        ca::validatePath(p.tsaNonCritical, {p.inter}, {p.root}, now, ca::Usage::TimeStamping);
    ASSERT_TRUE(nonCritical.ok());
    EXPECT_FALSE(nonCritical->passed());
    auto signerAsTsa = ca::validatePath(p.leaf, {p.inter}, {p.root}, now, ca::Usage::TimeStamping);
    ASSERT_TRUE(signerAsTsa.ok());
    EXPECT_FALSE(signerAsTsa->passed());
}

TEST(Path, AnchorsComeFromADirectoryOfPemFiles) {
    const auto& p = pki();
    const std::string dir = tempDir("anchors");
    writeFile(dir + "/a-root.pem", ca::certificateToPem(p.root));
    writeFile(dir + "/b-other.pem", ca::certificateToPem(p.otherRoot));
    writeFile(dir + "/README", "not a certificate");
    auto anchors = ca::loadAnchorDirectory(dir);
    ASSERT_TRUE(anchors.ok());
    EXPECT_EQ(anchors->size(), 2u);
    EXPECT_FALSE(ca::loadAnchorDirectory(tempDir("empty")).ok());
    EXPECT_FALSE(ca::validatePath("not der", {}, *anchors, 0, ca::Usage::Signing).ok());
}

}  // namespace
}  // namespace kyso::test
