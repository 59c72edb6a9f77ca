#include "test_env.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>

#include "kyso/ca-bridge/issuer.h"
#include "kyso/hsm/token_admin.h"

namespace kyso::test {

namespace fs = std::filesystem;

namespace {

// Never destroyed: the atexit handler below runs after static destructors would.
std::vector<std::string>& cleanupList() {
    static auto* dirs = new std::vector<std::string>();
    return *dirs;
}

void cleanupAll() {
    if (std::getenv("KYSO_KEEP_TEST_DIRS") != nullptr) {
        return;
    }
    for (auto& d : cleanupList()) {
        std::error_code ec;
        fs::remove_all(d, ec);
    }
}

}  // namespace

const char* softhsmModule() {
    const char* m = std::getenv("KYSO_PKCS11_MODULE");
    return m != nullptr ? m : "/usr/lib/softhsm/libsofthsm2.so";
}

std::string tempDir(const std::string& tag) {
    static std::once_flag once;
    std::call_once(once, [] { std::atexit(cleanupAll); });
    std::string tmpl = (fs::temp_directory_path() / ("kyso-" + tag + "-XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
        throw std::runtime_error("mkdtemp failed");
    }
    cleanupList().push_back(tmpl);
    return tmpl;
}

void writeFile(const std::string& path, const std::string& data) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << data;
    if (!out) {
        throw std::runtime_error("cannot write " + path);
    }
}

std::string readFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string shellQuote(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'') {
            out += "'\\''";
        } else {
            out.push_back(c);
        }
    }
    return out + "'";
}

int run(const std::string& command, std::string* output) {
    std::string cmd = command + " 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    if (p == nullptr) {
        return -1;
    }
    std::string out;
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) {
        out.append(buf, n);
    }
    const int status = ::pclose(p);
    if (output != nullptr) {
        *output = out;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

const TestToken& testToken() {
    static TestToken t = [] {
        TestToken tt;
        tt.dir = tempDir("token");
        fs::create_directories(tt.dir + "/tokens");
        writeFile(tt.dir + "/softhsm2.conf", "directories.tokendir = " + tt.dir +
                                                 "/tokens\nobjectstore.backend = file\n"
                                                 "log.level = ERROR\n");
        ::setenv("SOFTHSM2_CONF", (tt.dir + "/softhsm2.conf").c_str(), 1);
        hsm::Secret so = hsm::randomPin();
        hsm::Secret user = hsm::randomPin();
        tt.pinFile = tt.dir + "/user.pin";
        tt.soPinFile = tt.dir + "/so.pin";
        writeFile(tt.pinFile, std::string(user.view()) + "\n");
        writeFile(tt.soPinFile, std::string(so.view()) + "\n");
        ::chmod(tt.pinFile.c_str(), 0600);
        ::chmod(tt.soPinFile.c_str(), 0600);
        auto st = hsm::initToken(softhsmModule(), "kyso-test", so, user);
        if (!st) {
            throw std::runtime_error("cannot initialise the test token: " + st.error().detail);
        }
        return tt;
    }();
    return t;
}

hsm::Token& openTestToken() {
    static std::unique_ptr<hsm::Token> t = [] {
        auto r = hsm::Token::open(testToken().config());
        if (!r) {
            throw std::runtime_error("cannot open the test token: " + r.error().detail);
        }
        return std::move(r.value());
    }();
    return *t;
}

hsm::TokenConfig TestToken::config() const {
    hsm::TokenConfig c;
    c.modulePath = softhsmModule();
    c.tokenLabel = "kyso-test";
    c.pinSource = "file:" + pinFile;
    return c;
}

hsm::Credential makeCredential(hsm::Token& token, const std::string& label, hsm::KeyType type,
                               unsigned rsaBits, const std::string& curve) {
    const TestPki& pki = testPki(token);
    hsm::Credential c;
    c.id = label;
    c.kind = "officer";
    c.token = &token;
    auto existing = token.findKey(hsm::KeyRef{label, std::nullopt});
    if (existing) {
        c.key = *existing;
    } else {
        hsm::KeySpec spec;
        spec.type = type;
        spec.rsaBits = rsaBits;
        spec.curve = curve;
        spec.label = label;
        auto k = token.generateKey(spec);
        if (!k) {
            throw std::runtime_error("key generation failed: " + k.error().detail);
        }
        c.key = *k;
    }
    hsm::chooseDefaultAlgorithms(c);
    auto cert = token.findCertificate(hsm::KeyRef{label, std::nullopt});
    if (cert) {
        c.certificateDer = *cert;
    } else {
        ca::CertificateProfile p;
        p.subject = {{"C", "VN"}, {"O", "Kyso Test"}, {"CN", "Nguyễn Văn An " + label}};
        p.publicKeyDer = c.key.publicKeyDer;
        p.digitalSignature = true;
        p.nonRepudiation = true;
        auto der = ca::issueCertificate(p, pki.ca);
        if (!der) {
            throw std::runtime_error("certificate issuance failed: " + der.error().detail);
        }
        c.certificateDer = *der;
        auto st = token.storeCertificate(label, c.key.id, *der);
        if (!st) {
            throw std::runtime_error("certificate storage failed: " + st.error().detail);
        }
    }
    c.chainDer = {pki.ca.certificateDer};
    return c;
}

const TestPki& testPki(hsm::Token& token) {
    static std::mutex mu;
    static std::map<hsm::Token*, TestPki> cache;
    std::lock_guard lk(mu);
    auto it = cache.find(&token);
    if (it != cache.end()) {
        return it->second;
    }
    TestPki pki;
    pki.ca.id = "test-ca";
    pki.ca.token = &token;
    auto key = token.findKey(hsm::KeyRef{std::string("test-ca"), std::nullopt});
    if (!key) {
        hsm::KeySpec spec;
        spec.label = "test-ca";
        key = token.generateKey(spec);
        if (!key) {
            throw std::runtime_error("CA key generation failed: " + key.error().detail);
        }
    }
    pki.ca.key = *key;
    hsm::chooseDefaultAlgorithms(pki.ca);
    auto cert = token.findCertificate(hsm::KeyRef{std::string("test-ca"), std::nullopt});
    if (cert) {
        pki.ca.certificateDer = *cert;
    } else {
        ca::CertificateProfile p;
        p.subject = {{"C", "VN"}, {"O", "Kyso Test"}, {"CN", "Kyso Test Root CA"}};
        p.publicKeyDer = key->publicKeyDer;
        p.isCa = true;
        p.keyCertSign = true;
        p.crlSign = true;
        p.validDays = 3650;
        auto der = ca::issueCertificate(p, pki.ca);
        if (!der) {
            throw std::runtime_error("CA certificate failed: " + der.error().detail);
        }
        pki.ca.certificateDer = *der;
        (void)token.storeCertificate("test-ca", key->id, *der);
    }
    pki.caPemFile = tempDir("pki") + "/ca.pem";
    writeFile(pki.caPemFile, ca::certificateToPem(pki.ca.certificateDer));
    return cache.emplace(&token, std::move(pki)).first->second;
}

std::string corpusDir() {
    const char* env = std::getenv("KYSO_CORPUS_DIR");
    if (env != nullptr) {
        return env;
    }
    return testDataDir() + "/corpus";
}

std::string testDataDir() {
    return std::string(KYSO_SOURCE_DIR) + "/tests/data";
}

}  // namespace kyso::test
