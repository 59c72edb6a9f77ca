// CMP enrollment against OpenSSL's own CMP mock server (`openssl cmp -port`), run as a child
// process per test. The CA material is made with the openssl CLI; the new key is on the test
// token, so every successful exchange also proves that the token signed the proof of possession
// (the mock server verifies it, we do not ask it to accept RAVERIFIED).
#include "kyso/ca-bridge/cmp.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <random>
#include <regex>
#include <stdexcept>
#include <thread>

#include "kyso/ca-bridge/issuer.h"
#include "test_env.h"

namespace kyso::test {
namespace {

using Clock = std::chrono::steady_clock;

std::string randomHex(std::size_t bytes) {
    std::random_device rd;
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < bytes; ++i) {
        const unsigned v = rd() & 0xff;
        out.push_back(digits[v >> 4]);
        out.push_back(digits[v & 0xf]);
    }
    return out;
}

void runOrThrow(const std::string& cmd) {
    std::string out;
    if (run(cmd, &out) != 0) {
        throw std::runtime_error(cmd + " failed: " + out);
    }
}

// The software CA the mock server speaks for, made once per process with the openssl CLI:
// root -> intermediate -> certificates for the token key and for some other key. The mock server
// returns a fixed certificate, so the one for the token key is issued before it starts.
struct CmpPki {
    std::string dir;
    std::string rootPem;                    // our trust anchor
    std::string interPem;                   // sent by the server as extraCerts
    std::string tokenKeyPubPem;             // the token key's public key, exported from its SPKI
    std::string tokenKeyCert;               // issued by the intermediate for the token key
    std::string otherKeyCert;               // issued by the intermediate for a software key
    std::string srvCert, srvKey;            // CMP server signer, under the root
    std::string rogueSrvCert, rogueSrvKey;  // CMP server signer under another root
    std::string secretFile;                 // the shared secret, mode 0600
    std::string secret;
    std::string wrongSecretFile;  // another secret, for a server that does not share ours
    std::string wrongSecret;
    hsm::Credential newKey;  // the key to certify, on the token
    hsm::Credential client;  // a token credential for signature-protected requests
};

const CmpPki& cmpPki() {
    static CmpPki p = [] {
        CmpPki k;
        hsm::Token& token = openTestToken();
        k.dir = tempDir("cmp-pki");
        const std::string d = k.dir + "/";
        writeFile(d + "ext.cnf",
                  "[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
                  "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
                  "[ee]\nbasicConstraints=critical,CA:FALSE\n"
                  "keyUsage=critical,digitalSignature,nonRepudiation\n"
                  "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n");
        const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes ";
        auto root = [&](const std::string& name, const std::string& cn) {
            runOrThrow("openssl req -x509 " + ec + "-keyout " + d + name + ".key -out " + d + name +
                       ".pem -days 30 -subj " + shellQuote(cn) +
                       " -addext basicConstraints=critical,CA:TRUE"
                       " -addext keyUsage=critical,keyCertSign,cRLSign");
        };
        // A certificate for an existing public key (-force_pubkey), or for a fresh software key.
        auto issue = [&](const std::string& name, const std::string& cn, const std::string& issuer,
                         const std::string& section, const std::string& pubPem) {
            std::string pub = pubPem;
            if (pub.empty()) {
                runOrThrow("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " +
                           d + name + ".key");
                runOrThrow("openssl pkey -in " + d + name + ".key -pubout -out " + d + name +
                           ".pub.pem");
                pub = d + name + ".pub.pem";
            }
            runOrThrow("openssl x509 -new -subj " + shellQuote(cn) + " -force_pubkey " + pub +
                       " -CA " + d + issuer + ".pem -CAkey " + d + issuer + ".key -days 30" +
                       " -extfile " + d + "ext.cnf -extensions " + section + " -out " + d + name +
                       ".pem");
        };
        root("root", "/C=VN/O=Kyso CMP Test/CN=Kyso CMP Test Root");
        root("rogue", "/C=VN/O=Elsewhere/CN=Rogue Root");
        issue("inter", "/C=VN/O=Kyso CMP Test/CN=Kyso CMP Test Issuing CA", "root", "ca", "");

        k.newKey = makeCredential(token, "cmp-new-key", hsm::KeyType::Ec, 0, "P-256");
        k.newKey.certificateDer.clear();  // a key waiting for its certificate
        k.newKey.chainDer.clear();
        k.client = makeCredential(token, "cmp-client", hsm::KeyType::Ec, 0, "P-256");
        writeFile(d + "token-key.der", k.newKey.key.publicKeyDer);
        runOrThrow("openssl pkey -pubin -inform DER -in " + d + "token-key.der -out " + d +
                   "token-key.pub.pem");
        k.tokenKeyPubPem = d + "token-key.pub.pem";
        issue("token-key-cert", "/C=VN/O=Kyso CMP Test/CN=Nguyen Van An", "inter", "ee",
              k.tokenKeyPubPem);
        issue("other-key-cert", "/C=VN/O=Kyso CMP Test/CN=Someone Else", "inter", "ee", "");
        issue("srv", "/C=VN/O=Kyso CMP Test/CN=CMP Server", "root", "ee", "");
        issue("rogue-srv", "/C=VN/O=Elsewhere/CN=CMP Server", "rogue", "ee", "");

        k.rootPem = d + "root.pem";
        k.interPem = d + "inter.pem";
        k.tokenKeyCert = d + "token-key-cert.pem";
        k.otherKeyCert = d + "other-key-cert.pem";
        k.srvCert = d + "srv.pem";
        k.srvKey = d + "srv.key";
        k.rogueSrvCert = d + "rogue-srv.pem";
        k.rogueSrvKey = d + "rogue-srv.key";
        k.secret = "cmp-" + randomHex(16);
        k.wrongSecret = "cmp-" + randomHex(16);
        k.secretFile = d + "secret";
        k.wrongSecretFile = d + "wrong-secret";
        writeFile(k.secretFile, k.secret + "\n");
        writeFile(k.wrongSecretFile, k.wrongSecret + "\n");
        ::chmod(k.secretFile.c_str(), 0600);
        ::chmod(k.wrongSecretFile.c_str(), 0600);
        return k;
    }();
    return p;
}

std::string openSslPath() {
    const char* path = std::getenv("PATH");
    std::string dirs = path != nullptr ? path : "/usr/bin:/bin";
    std::size_t start = 0;
    while (start <= dirs.size()) {
        const std::size_t end = std::min(dirs.find(':', start), dirs.size());
        const std::string candidate = dirs.substr(start, end - start) + "/openssl";
        if (::access(candidate.c_str(), X_OK) == 0) {
            return candidate;
        }
        start = end + 1;
    }
    throw std::runtime_error("openssl is not on PATH");
}

// OpenSSL's CMP mock server as a child process on a port it picks itself (-port 0; OpenSSL 3.0
// prints "ACCEPT [::]:PORT PID=..."). Killed and reaped by the destructor.
class MockCmpServer final {
  public:
    explicit MockCmpServer(const std::vector<std::string>& options) {
        m_log = tempDir("cmp-srv") + "/server.log";
        std::vector<std::string> args = {"openssl", "cmp", "-port", "0"};
        args.insert(args.end(), options.begin(), options.end());
        std::vector<char*> argv;
        for (auto& a : args) {
            argv.push_back(a.data());
        }
        argv.push_back(nullptr);
        // Resolved before fork: the child may only make async-signal-safe calls until exec.
        const std::string exe = openSslPath();
        const pid_t parent = ::getpid();
        m_pid = ::fork();
        if (m_pid < 0) {
            throw std::runtime_error("cannot fork for openssl cmp");
        }
        if (m_pid == 0) {
            // Dies with the test process even when that one crashes before the destructor runs.
            ::prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (::getppid() != parent) {
                ::_exit(127);
            }
            const int log = ::open(m_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
            const int null = ::open("/dev/null", O_RDONLY);
            if (log < 0 || null < 0 || ::dup2(log, 1) < 0 || ::dup2(log, 2) < 0 ||
                ::dup2(null, 0) < 0) {
                ::_exit(127);
            }
            ::execv(exe.c_str(), argv.data());
            ::_exit(127);
        }
        const std::regex accept(R"(ACCEPT \S*:(\d+) PID=)");
        const auto deadline = Clock::now() + std::chrono::seconds(10);
        while (Clock::now() < deadline) {
            std::smatch m;
            const std::string text = readFile(m_log);
            if (std::regex_search(text, m, accept)) {
                m_port = std::stoi(m[1].str());
                return;
            }
            int status = 0;
            if (::waitpid(m_pid, &status, WNOHANG) == m_pid) {
                m_pid = -1;
                throw std::runtime_error("openssl cmp mock server exited: " + text);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        stop();
        throw std::runtime_error("openssl cmp mock server did not start: " + readFile(m_log));
    }
    ~MockCmpServer() { stop(); }
    MockCmpServer(const MockCmpServer&) = delete;
    MockCmpServer& operator=(const MockCmpServer&) = delete;

    std::string url() const { return "http://127.0.0.1:" + std::to_string(m_port) + "/pkix/"; }
    std::string log() const { return readFile(m_log); }

  private:
    void stop() noexcept {
        if (m_pid > 0) {
            ::kill(m_pid, SIGTERM);
            int status = 0;
            ::waitpid(m_pid, &status, 0);
            m_pid = -1;
        }
    }

    pid_t m_pid = -1;
    int m_port = 0;
    std::string m_log;
};

// Options every MAC-protecting mock server gets: it answers with the certificate for the token
// key, sends the intermediate as extraCerts and the root as caPubs.
std::vector<std::string> macServer(const std::string& secretFile,
                                   std::vector<std::string> more = {}) {
    const CmpPki& k = cmpPki();
    std::vector<std::string> o = {
        "-srv_ref",     "kyso-test-ca",    "-srv_secret", "file:" + secretFile, "-rsp_cert",
        k.tokenKeyCert, "-rsp_extracerts", k.interPem,    "-rsp_capubs",        k.rootPem};
    o.insert(o.end(), more.begin(), more.end());
    return o;
}

ca::CmpServer macClient(const std::string& url) {
    const CmpPki& k = cmpPki();
    ca::CmpServer s;
    s.url = url;
    s.trustAnchorsPem = k.rootPem;
    s.reference = "kyso-client-1";
    s.secretSource = "file:" + k.secretFile;
    s.timeoutSeconds = 10;
    return s;
}

ca::CmpRequest tokenKeyRequest(ca::CmpRequestType type = ca::CmpRequestType::Ir) {
    ca::CmpRequest r;
    r.type = type;
    r.subject = {{"C", "VN"}, {"O", "Kyso CMP Test"}, {"CN", "Nguyen Van An"}};
    r.key = &cmpPki().newKey;
    return r;
}

std::string derFile(const std::string& path) {
    auto ders = ca::certificatesFromPem(readFile(path));
    return ders ? ders->front() : std::string();
}

// The secret must not appear in anything we hand back.
void expectNoSecret(const Error& e) {
    const CmpPki& k = cmpPki();
    EXPECT_EQ(e.detail.find(k.secret), std::string::npos) << e.detail;
    EXPECT_EQ(e.detail.find(k.wrongSecret), std::string::npos) << e.detail;
}

// A loopback port with nothing listening on it (as tests/api/rest_env.h picks ports).
int closedPort() {
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = 0;
    if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
        port = ntohs(a.sin_port);
    }
    ::close(s);
    return port;
}

TEST(Cmp, IrWithSharedSecretReturnsTheCertificateForTheTokenKey) {
    const CmpPki& k = cmpPki();
    MockCmpServer srv(macServer(k.secretFile));
    auto r = ca::requestCertificate(macClient(srv.url()), tokenKeyRequest());
    ASSERT_TRUE(r.ok()) << r.error().code << ": " << r.error().detail << "\n" << srv.log();
    EXPECT_EQ(r->certificateDer, derFile(k.tokenKeyCert));
    // The path above it, without the anchor; what the server sent along, as sent.
    ASSERT_EQ(r->chainDer.size(), 1u);
    EXPECT_EQ(r->chainDer[0], derFile(k.interPem));
    ASSERT_EQ(r->caPubsDer.size(), 1u);
    EXPECT_EQ(r->caPubsDer[0], derFile(k.rootPem));
    EXPECT_NE(std::find(r->extraCertsDer.begin(), r->extraCertsDer.end(), derFile(k.interPem)),
              r->extraCertsDer.end());

    // Checked by the openssl CLI: it verifies under the root, and it is the token key's.
    const std::string dir = tempDir("cmp-out");
    writeFile(dir + "/cert.pem", ca::certificateToPem(r->certificateDer));
    writeFile(dir + "/chain.pem", ca::certificateToPem(r->chainDer[0]));
    std::string out;
    EXPECT_EQ(run("openssl verify -CAfile " + k.rootPem + " -untrusted " + dir + "/chain.pem " +
                      dir + "/cert.pem",
                  &out),
              0)
        << out;
    std::string certKey;
    ASSERT_EQ(run("openssl x509 -in " + dir + "/cert.pem -noout -pubkey", &certKey), 0) << certKey;
    EXPECT_EQ(certKey, readFile(k.tokenKeyPubPem));
}

TEST(Cmp, P10crSignedByTheTokenKeyIsAccepted) {
    const CmpPki& k = cmpPki();
    MockCmpServer srv(macServer(k.secretFile));
    auto r =
        ca::requestCertificate(macClient(srv.url()), tokenKeyRequest(ca::CmpRequestType::P10cr));
    ASSERT_TRUE(r.ok()) << r.error().code << ": " << r.error().detail << "\n" << srv.log();
    EXPECT_EQ(r->certificateDer, derFile(k.tokenKeyCert));
    ASSERT_EQ(r->chainDer.size(), 1u);
    EXPECT_EQ(r->chainDer[0], derFile(k.interPem));
}

TEST(Cmp, SecretFromTheEnvironmentWorksToo) {
    const CmpPki& k = cmpPki();
    MockCmpServer srv(macServer(k.secretFile));
    ::setenv("KYSO_TEST_CMP_SECRET", k.secret.c_str(), 1);
    auto s = macClient(srv.url());
    s.secretSource = "env:KYSO_TEST_CMP_SECRET";
    auto r = ca::requestCertificate(s, tokenKeyRequest());
    ::unsetenv("KYSO_TEST_CMP_SECRET");
    ASSERT_TRUE(r.ok()) << r.error().code << ": " << r.error().detail << "\n" << srv.log();
    EXPECT_EQ(r->certificateDer, derFile(k.tokenKeyCert));
}

TEST(Cmp, DelayedDeliveryIsPolledWithinTheTimeout) {
    const CmpPki& k = cmpPki();
    MockCmpServer srv(macServer(k.secretFile, {"-poll_count", "3", "-check_after", "1"}));
    const auto start = Clock::now();
    auto r = ca::requestCertificate(macClient(srv.url()), tokenKeyRequest());
    const auto elapsed = Clock::now() - start;
    ASSERT_TRUE(r.ok()) << r.error().code << ": " << r.error().detail << "\n" << srv.log();
    EXPECT_EQ(r->certificateDer, derFile(k.tokenKeyCert));
    // The first pollReq goes at once, the next two after checkAfter = 1 s each: the client did
    // wait as told.
    EXPECT_GE(elapsed, std::chrono::milliseconds(1900));
}

TEST(Cmp, WrongSharedSecretIsAProtectionFailure) {
    const CmpPki& k = cmpPki();
    // The server holds another secret: its answer's MAC does not verify with ours.
    MockCmpServer srv(macServer(k.wrongSecretFile));
    auto r = ca::requestCertificate(macClient(srv.url()), tokenKeyRequest());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "cmp.protection") << r.error().detail;
    EXPECT_NE(r.error().cause, 0u);
    expectNoSecret(r.error());
}

TEST(Cmp, RejectionCarriesTheServersFailInfoAndStatusString) {
    const CmpPki& k = cmpPki();
    const std::string why = "subject not authorised by the registration officer";
    MockCmpServer srv(
        macServer(k.secretFile, {"-pkistatus", "2", "-failure", "23", "-statusstring", why}));
    auto r = ca::requestCertificate(macClient(srv.url()), tokenKeyRequest());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "cmp.rejected") << r.error().detail;
    EXPECT_NE(r.error().detail.find(why), std::string::npos) << r.error().detail;
    EXPECT_NE(r.error().detail.find("notAuthorized"), std::string::npos) << r.error().detail;
    expectNoSecret(r.error());
}

TEST(Cmp, CertificateForAnotherKeyIsRefused) {
    const CmpPki& k = cmpPki();
    std::vector<std::string> o = macServer(k.secretFile);
    o[5] = k.otherKeyCert;  // -rsp_cert: a valid certificate, but not for the token key
    ASSERT_EQ(o[4], "-rsp_cert");
    MockCmpServer srv(o);
    auto r = ca::requestCertificate(macClient(srv.url()), tokenKeyRequest());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "cmp.key_mismatch") << r.error().detail;
    EXPECT_NE(r.error().detail.find("Someone Else"), std::string::npos) << r.error().detail;
    // The refusal reached the CA in the certConf, so it does not count the certificate as
    // delivered.
    EXPECT_NE(srv.log().find("certificate rejected by client"), std::string::npos) << srv.log();
    expectNoSecret(r.error());
}

TEST(Cmp, CertificateOutsideTheTrustAnchorsIsRefused) {
    const CmpPki& k = cmpPki();
    MockCmpServer srv(macServer(k.secretFile));
    auto s = macClient(srv.url());
    const std::string dir = tempDir("cmp-anchor");
    writeFile(dir + "/rogue-root.pem", readFile(k.dir + "/rogue.pem"));
    s.trustAnchorsPem = dir + "/rogue-root.pem";
    auto r = ca::requestCertificate(s, tokenKeyRequest());
    ASSERT_FALSE(r.ok());
    expectNoSecret(r.error());
    EXPECT_EQ(r.error().code, "cmp.invalid") << r.error().detail;
    EXPECT_NE(r.error().detail.find("trust anchors"), std::string::npos) << r.error().detail;
}

TEST(Cmp, NothingListeningIsUnreachableQuickly) {
    auto s = macClient("http://127.0.0.1:" + std::to_string(closedPort()) + "/pkix/");
    // OpenSSL retries a refused connection until the timeout, counted in whole seconds.
    s.timeoutSeconds = 1;
    const auto start = Clock::now();
    auto r = ca::requestCertificate(s, tokenKeyRequest());
    const auto elapsed = Clock::now() - start;
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "cmp.unreachable") << r.error().detail;
    EXPECT_LT(elapsed, std::chrono::milliseconds(2500));
    expectNoSecret(r.error());
}

TEST(Cmp, SilentServerTimesOut) {
    // Listening but never answering: the kernel completes the handshake from the backlog.
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(::listen(s, 4), 0);
    ASSERT_EQ(::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len), 0);
    auto srv = macClient("http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/pkix/");
    srv.timeoutSeconds = 1;
    const auto start = Clock::now();
    auto r = ca::requestCertificate(srv, tokenKeyRequest());
    const auto elapsed = Clock::now() - start;
    ::close(s);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "cmp.unreachable") << r.error().detail;
    expectNoSecret(r.error());
    EXPECT_GE(elapsed, std::chrono::milliseconds(900));
    EXPECT_LT(elapsed, std::chrono::milliseconds(2500));
}

TEST(Cmp, CrSignedWithATokenCredential) {
    const CmpPki& k = cmpPki();
    // The server trusts the test token CA (which issued the client credential) and signs its
    // answers with a certificate under our root.
    MockCmpServer srv({"-srv_cert", k.srvCert, "-srv_key", k.srvKey, "-srv_trusted",
                       testPki(openTestToken()).caPemFile, "-rsp_cert", k.tokenKeyCert,
                       "-rsp_extracerts", k.interPem});
    ca::CmpServer s;
    s.url = srv.url();
    s.trustAnchorsPem = k.rootPem;
    s.clientCredential = &k.client;
    s.recipient = {{"C", "VN"}, {"O", "Kyso CMP Test"}, {"CN", "CMP Server"}};
    auto r = ca::requestCertificate(s, tokenKeyRequest(ca::CmpRequestType::Cr));
    ASSERT_TRUE(r.ok()) << r.error().code << ": " << r.error().detail << "\n" << srv.log();
    EXPECT_EQ(r->certificateDer, derFile(k.tokenKeyCert));
    EXPECT_TRUE(r->caPubsDer.empty());  // caPubs only come with an ip
}

TEST(Cmp, ServerSigningOutsideTheTrustAnchorsIsAProtectionFailure) {
    const CmpPki& k = cmpPki();
    MockCmpServer srv({"-srv_cert", k.rogueSrvCert, "-srv_key", k.rogueSrvKey, "-srv_trusted",
                       testPki(openTestToken()).caPemFile, "-rsp_cert", k.tokenKeyCert});
    ca::CmpServer s;
    s.url = srv.url();
    s.trustAnchorsPem = k.rootPem;
    s.clientCredential = &k.client;
    auto r = ca::requestCertificate(s, tokenKeyRequest(ca::CmpRequestType::Cr));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "cmp.protection") << r.error().detail;
    expectNoSecret(r.error());
}

TEST(Cmp, ConfigurationErrors) {
    const CmpPki& k = cmpPki();
    auto https = macClient("https://127.0.0.1:1/pkix/");
    auto r = ca::requestCertificate(https, tokenKeyRequest());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "cmp.config");

    auto noSecret = macClient("http://127.0.0.1:1/pkix/");
    noSecret.secretSource = "file:" + k.dir + "/no-such-secret";
    r = ca::requestCertificate(noSecret, tokenKeyRequest());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "cmp.config");
    EXPECT_NE(r.error().detail.find("no-such-secret"), std::string::npos) << r.error().detail;

    auto both = macClient("http://127.0.0.1:1/pkix/");
    both.clientCredential = &k.client;
    r = ca::requestCertificate(both, tokenKeyRequest());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "cmp.config");

    auto noAnchors = macClient("http://127.0.0.1:1/pkix/");
    noAnchors.trustAnchorsPem = k.dir + "/ext.cnf";
    r = ca::requestCertificate(noAnchors, tokenKeyRequest());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "cmp.config");

    auto noSubject = tokenKeyRequest();
    noSubject.subject.clear();
    r = ca::requestCertificate(macClient("http://127.0.0.1:1/pkix/"), noSubject);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "cmp.config");
}

}  // namespace
}  // namespace kyso::test
