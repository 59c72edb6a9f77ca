// Citizens' enrolment (issue 7) on the demo: the key is born on the token, the certificate comes
// from the embedded CA and validates with OCSP GOOD, the citizen signs a hash under a SAD that an
// independent TOTP implementation (oathtool) unlocked, and revocation reaches OCSP and the CRL.
#include "citizens.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <regex>
#include <thread>

#include "activation.h"
#include "kyso/ca-bridge/crl.h"
#include "kyso/ca-bridge/issuer.h"
#include "rest_env.h"

namespace kyso::test {
namespace {

std::string totpNow(const std::string& base32) {
    // The secret goes to oathtool through a file read by the shell, not our argv.
    const std::string dir = tempDir("oath");
    writeFile(dir + "/s", base32);
    std::string code;
    EXPECT_EQ(run("oathtool --totp -b @" + dir + "/s", &code), 0);
    while (!code.empty() && (code.back() == '\n' || code.back() == '\r')) {
        code.pop_back();
    }
    return code;
}

TEST(Citizens, EnrolSignUnderSadAndRevoke) {
    auto& env = Env::get();
    ASSERT_TRUE(env.cfg.citizens.has_value()) << "the demo enrols citizens";
    api::Activation activation(*env.store);
    api::Citizens citizens(env.cfg, *env.token, *env.store, *env.creds, activation);
    api::CitizenEnrolment who{"001203004567", "Trần Thị Bích Ngọc", "Hà Nam", "ngoc@example.vn",
                              "portal"};
    auto enrolled = citizens.enrol(who);
    ASSERT_TRUE(enrolled.ok()) << enrolled.error().code << ": " << enrolled.error().detail;
    const std::string id = enrolled->enrolment.citizen.id;

    // Registered: a citizen credential owned by the enrolling portal, its key pair on the token
    // (generated there by the same code as every key, non-extractable: tests/hsm).
    const hsm::Credential* cred = env.creds->find(id);
    ASSERT_NE(cred, nullptr);
    EXPECT_EQ(cred->kind, "citizen");
    EXPECT_EQ(env.creds->facts(id).owners, std::vector<std::string>{"portal"});
    std::string p11;
    ASSERT_EQ(run("SOFTHSM2_CONF=" + shellQuote(env.dir + "/softhsm2.conf") +
                      " pkcs11-tool --module " + shellQuote(env.cfg.token.modulePath) +
                      " --token-label kyso-demo --list-objects --type pubkey 2>&1",
                  &p11),
              0);
    EXPECT_NE(p11.find("label:      " + id), std::string::npos) << p11;

    // The certificate: the identity, the demo chain, OCSP good.
    const std::string dir = tempDir("citizen");
    const std::string certPem = dir + "/c.pem";
    writeFile(certPem, ca::certificateToPem(cred->certificateDer));
    std::string out;
    ASSERT_EQ(run("openssl verify -CAfile " + env.dir + "/pki/root-ca.pem -untrusted " + env.dir +
                      "/pki/issuing-ca.pem " + certPem + " 2>&1",
                  &out),
              0)
        << out;
    run("openssl x509 -in " + certPem + " -noout -subject -nameopt utf8,sep_comma_plus", &out);
    EXPECT_NE(out.find("serialNumber=001203004567"), std::string::npos) << out;
    EXPECT_NE(out.find("CN=Trần Thị Bích Ngọc"), std::string::npos) << out;
    EXPECT_NE(ocspStatus(env, certPem).find("c.pem: good"), std::string::npos);

    // Sole control: the initial PIN changed, PIN + TOTP (oathtool) + the hash give a SAD, and
    // the signature made under it verifies with OpenSSL against the issued certificate.
    api::AttemptReport report;
    ASSERT_TRUE(
        activation.changePin(id, enrolled->enrolment.activation.initialPin.view(), "482915", report)
            .ok());
    const std::string data = "Đơn đề nghị cấp giấy phép xây dựng";
    writeFile(dir + "/data", data);
    std::string hashHex;
    ASSERT_EQ(run("openssl dgst -sha256 -binary " + dir + "/data > " + dir + "/hash", nullptr), 0);
    const std::string hash = readFile(dir + "/hash");
    api::AuthorizeRequest req;
    req.credentialId = id;
    req.pin = "482915";
    const std::string code =
        totpNow(std::string(enrolled->enrolment.activation.totpSecretBase32.view()));
    req.otp = code;
    req.hashes = {hash};
    req.hashAlgorithm = "2.16.840.1.101.3.4.2.1";
    req.numSignatures = 1;
    auto sad = activation.authorize(req, report);
    ASSERT_TRUE(sad.ok()) << sad.error().code << ": " << sad.error().detail;
    auto use = activation.consume(id, sad->value.view(), hash);
    ASSERT_TRUE(use.ok()) << use.error().code << ": " << use.error().detail;
    auto sig = cred->signDigest(hash);
    ASSERT_TRUE(sig.ok()) << sig.error().detail;
    writeFile(dir + "/sig", *sig);
    ASSERT_EQ(run("openssl x509 -in " + certPem + " -pubkey -noout > " + dir + "/pub.pem"), 0);
    ASSERT_EQ(run("openssl dgst -sha256 -verify " + dir + "/pub.pem -signature " + dir + "/sig " +
                      dir + "/data 2>&1",
                  &out),
              0)
        << out;
    EXPECT_NE(out.find("Verified OK"), std::string::npos) << out;

    // The same identity number cannot enrol again while this credential lives.
    auto again = citizens.enrol(who);
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().code, "citizen.duplicate");

    // Revocation reaches OCSP and the CRL at once.
    ASSERT_TRUE(citizens.revoke(id, static_cast<int>(ca::RevocationReason::KeyCompromise)).ok());
    EXPECT_NE(ocspStatus(env, certPem).find("c.pem: revoked"), std::string::npos);
    ASSERT_EQ(env.request("GET", "/ca/issuing-ca.crl", "", "", "", dir + "/crl.der").status, 200);
    run("openssl crl -inform DER -in " + dir + "/crl.der -noout -text", &out);
    EXPECT_NE(out.find("Serial Number: " + ca::serialHexOf(cred->certificateDer)),
              std::string::npos)
        << out;
    // ... and the identity number may enrol again.
    auto renewed = citizens.enrol(who);
    EXPECT_TRUE(renewed.ok()) << renewed.error().code;
}

// The bridge to a production CA from the command line: `kyso ca request` certifies a token key
// through OpenSSL's own CMP mock server and installs the certificate on the token.
TEST(Cli, CaRequestOverCmpInstallsTheCertificate) {
    auto& env = Env::get();
    const std::string dir = tempDir("cmp-cli");
    hsm::KeySpec spec;
    spec.label = "cmp-agency-key";
    auto key = env.token->generateKey(spec);
    ASSERT_TRUE(key.ok()) << key.error().detail;
    // The "external CA" answers with a certificate for that key (issued here by the demo CA).
    ca::CertificateProfile p;
    p.subject = {{"C", "VN"}, {"O", "Sở Tư pháp"}, {"CN", "Sở Tư pháp tỉnh Hà Nam"}};
    p.digitalSignature = true;
    p.nonRepudiation = true;
    p.publicKeyDer = key->publicKeyDer;
    auto der = ca::issueCertificate(p, *env.creds->find("issuing-ca"));
    ASSERT_TRUE(der.ok());
    writeFile(dir + "/rsp.pem", ca::certificateToPem(*der));
    writeFile(dir + "/secret", "chia-se-bi-mat-" + std::to_string(::getpid()) + "\n");
    ::chmod((dir + "/secret").c_str(), 0600);
    std::string pid;
    ASSERT_EQ(run("openssl cmp -port 0 -srv_ref kyso-test -srv_secret file:" + dir +
                      "/secret -rsp_cert " + dir + "/rsp.pem -rsp_extracerts " + env.dir +
                      "/pki/issuing-ca.pem -rsp_capubs " + env.dir + "/pki/root-ca.pem > " + dir +
                      "/server.log 2>&1 & echo $!",
                  &pid),
              0);
    struct Kill {
        std::string pid;
        ~Kill() { run("kill " + pid + " 2>/dev/null"); }
    } kill{pid.substr(0, pid.find('\n'))};
    std::string port;
    for (int i = 0; i < 100 && port.empty(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        std::smatch m;
        const std::string log = readFile(dir + "/server.log");
        if (std::regex_search(log, m, std::regex(R"(ACCEPT \S*:(\d+) PID=)"))) {
            port = m[1];
        }
    }
    ASSERT_FALSE(port.empty()) << readFile(dir + "/server.log");
    std::string out;
    const int rc = run(std::string(KYSO_BINARY) + " ca request --config " +
                           shellQuote(env.dir + "/kyso.conf") +
                           " --key cmp-agency-key --subject 'C=VN,O=Sở Tư pháp,CN=Sở Tư pháp tỉnh "
                           "Hà Nam' --server http://127.0.0.1:" +
                           port + "/pkix/ --anchors " + env.dir +
                           "/pki/root-ca.pem --reference kyso-test --secret file:" + dir +
                           "/secret --out " + dir + "/installed.pem 2>&1",
                       &out);
    ASSERT_EQ(rc, 0) << out;
    EXPECT_EQ(out.find("chia-se-bi-mat"), std::string::npos) << "the secret was printed";
    // Installed on the token beside its key, and written with its chain.
    auto onToken = env.token->findCertificate(hsm::KeyRef{"cmp-agency-key", std::nullopt});
    ASSERT_TRUE(onToken.ok()) << onToken.error().detail;
    EXPECT_EQ(*onToken, *der);
    auto written = ca::certificatesFromPem(readFile(dir + "/installed.pem"));
    ASSERT_TRUE(written.ok());
    ASSERT_EQ(written->size(), 2u);
    EXPECT_EQ(written->front(), *der);
    // A wrong secret: refused, nothing installed over it.
    writeFile(dir + "/wrong", "sai\n");
    EXPECT_NE(run(std::string(KYSO_BINARY) + " ca request --config " +
                      shellQuote(env.dir + "/kyso.conf") +
                      " --key cmp-agency-key --subject C=VN,CN=x --server http://127.0.0.1:" +
                      port + "/pkix/ --anchors " + env.dir +
                      "/pki/root-ca.pem --reference kyso-test --secret file:" + dir +
                      "/wrong --out " + dir + "/second.pem 2>&1",
                  &out),
              0);
    EXPECT_NE(out.find("cmp.protection"), std::string::npos) << out;
}

}  // namespace
}  // namespace kyso::test
