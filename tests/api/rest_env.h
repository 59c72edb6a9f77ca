// The demo served in the test process (one per test binary), and a curl client for it: shared by
// the REST test files.
#pragma once

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/NetSSL.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "kyso/api/config.h"
#include "kyso/api/credentials.h"
#include "kyso/api/demo.h"
#include "kyso/api/service.h"
#include "kyso/api/store.h"
#include "kyso/api/verifier.h"
#include "test_env.h"

namespace kyso::test {

// A loopback port free right now (the kernel's choice for port 0).
inline int freePort() {
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

using Poco::JSON::Object;

inline constexpr std::uint64_t kTestBodyLimit = 256 * 1024;

struct Response {
    int status = 0;
    std::string headers;
    std::string body;
    Object::Ptr json() const {
        Poco::JSON::Parser p;
        return p.parse(body).extract<Object::Ptr>();
    }
    std::string header(const std::string& name) const {
        std::istringstream in(headers);
        std::string line;
        while (std::getline(in, line)) {
            if (line.size() > name.size() &&
                strncasecmp(line.c_str(), name.c_str(), name.size()) == 0 &&
                line[name.size()] == ':') {
                std::string v = line.substr(name.size() + 1);
                while (!v.empty() && (v.back() == '\r' || v.back() == ' ')) {
                    v.pop_back();
                }
                return v.substr(v.find_first_not_of(' '));
            }
        }
        return "";
    }
};

// One HTTPS request with curl to BASEURL + PATH, trusting CAFILE; the API key goes through a
// header file, not argv.
inline Response curlRequest(const std::string& caFile, const std::string& baseUrl,
                            const std::string& method, const std::string& path,
                            const std::string& bearer = "", const std::string& bodyFile = "",
                            const std::string& contentType = "application/pdf",
                            const std::string& outFile = "", const std::string& curlArgs = "") {
    const std::string tmp = tempDir("curl");
    std::string cmd = "curl -sS --max-time 120 --cacert " + shellQuote(caFile) + " -X " + method +
                      " -D " + tmp + "/h -o " +
                      (outFile.empty() ? tmp + "/b" : shellQuote(outFile)) + " -w '%{http_code}' ";
    if (!bearer.empty()) {
        // The key goes through a header file, not argv of a long-lived process.
        writeFile(tmp + "/auth", "Authorization: Bearer " + bearer + "\n");
        cmd += "-H @" + tmp + "/auth ";
    }
    if (!bodyFile.empty()) {
        cmd += "-H " + shellQuote("Content-Type: " + contentType) + " --data-binary @" +
               shellQuote(bodyFile) + " ";
    }
    cmd += curlArgs + shellQuote(baseUrl + path);
    std::string out;
    run(cmd, &out);
    Response r;
    try {
        r.status = std::stoi(out.substr(out.size() >= 3 ? out.size() - 3 : 0));
    } catch (const std::exception&) {
        r.status = -1;
    }
    r.headers = readFile(tmp + "/h");
    r.body = outFile.empty() ? readFile(tmp + "/b") : "";
    return r;
}

// The API key of principal NAME in the demo-credentials.json of a `kyso demo init` directory.
inline std::string demoApiKey(const std::string& demoDir, const std::string& name) {
    Poco::JSON::Parser p;
    auto j = p.parse(readFile(demoDir + "/demo-credentials.json")).extract<Object::Ptr>();
    auto arr = j->getArray("apiKeys");
    for (std::size_t i = 0; i < arr->size(); ++i) {
        auto k = arr->getObject(static_cast<unsigned>(i));
        if (k->getValue<std::string>("name") == name) {
            return k->getValue<std::string>("apiKey");
        }
    }
    return "";
}

// The demo, loaded and served in this process; one per test binary.
class Env {
  public:
    std::string dir;
    api::Config cfg;
    std::unique_ptr<hsm::Token> token;
    std::unique_ptr<api::Store> store;
    std::optional<api::CredentialRegistry> creds;
    std::unique_ptr<signer::SerialSource> serials;
    std::unique_ptr<signer::TimeStampAuthority> tsa;
    std::unique_ptr<signer::Timestamper> timestamper;
    std::unique_ptr<api::Verifier> verifier;
    std::unique_ptr<api::AuditLog> audit;
    std::unique_ptr<api::Service> service;
    std::map<std::string, std::string> keys;  // API key per principal name

    static Env& get() {
        static Env* env = [] {
            auto* e = new Env();
            e->init();
            return e;
        }();
        return *env;
    }

    std::string url(const std::string& path) const {
        return "https://127.0.0.1:" + std::to_string(service->port()) + path;
    }

    // POST multipart/form-data: one part per (name, file).
    Response requestParts(const std::string& path, const std::string& bearer,
                          const std::vector<std::pair<std::string, std::string>>& parts) const {
        std::string args;
        for (const auto& [name, file] : parts) {
            args += "-F " + shellQuote(name + "=@" + file) + " ";
        }
        return request("POST", path, bearer, "", "", "", args);
    }

    Response request(const std::string& method, const std::string& path,
                     const std::string& bearer = "", const std::string& bodyFile = "",
                     const std::string& contentType = "application/pdf",
                     const std::string& outFile = "", const std::string& curlArgs = "") const {
        return curlRequest(dir + "/pki/root-ca.pem", url(""), method, path, bearer, bodyFile,
                           contentType, outFile, curlArgs);
    }

  private:
    void init() {
        dir = tempDir("demo");
        api::DemoOptions o;
        o.dir = dir;
        // A free port known before the demo is made: its certificates carry the CRL and OCSP
        // URLs of this service.
        o.listen = "127.0.0.1:" + std::to_string(freePort());
        std::ostringstream log;
        auto st = api::demoInit(o, log);
        if (!st) {
            throw std::runtime_error("demo init failed: " + st.error().detail);
        }
        auto c = api::loadConfig(dir + "/kyso.conf");
        if (!c) {
            throw std::runtime_error("config: " + c.error().detail);
        }
        cfg = *c;
        cfg.maxBodyBytes = kTestBodyLimit;
        api::applyModuleEnvironment(cfg);
        token = std::move(hsm::Token::open(cfg.token).value());
        store = std::move(api::Store::open(cfg.databasePath).value());
        creds = std::move(api::CredentialRegistry::load(cfg, *token).value());
        Poco::JSON::Parser p;
        auto j = p.parse(readFile(dir + "/demo-credentials.json")).extract<Object::Ptr>();
        auto arr = j->getArray("apiKeys");
        for (std::size_t i = 0; i < arr->size(); ++i) {
            auto k = arr->getObject(static_cast<unsigned>(i));
            keys[k->getValue<std::string>("name")] = k->getValue<std::string>("apiKey");
        }
        keys["officer-2"] = store->createApiKey("officer-2", policies::Role::Officer).value();
        serials = store->serialSource("tsa", 50);
        tsa = std::move(api::makeTimeStampAuthority(cfg, *creds, *serials).value());
        if (!tsa) {
            throw std::runtime_error("the demo has no TSA");
        }
        timestamper = std::move(api::makeLocalTimestamper(cfg, *tsa).value());
        Poco::Net::initializeSSL();
        verifier = std::move(api::Verifier::make(cfg, store.get(), &*creds).value());
        audit = std::make_unique<api::AuditLog>(*store, creds->find("audit"),
                                                cfg.audit->checkpointEvery);
        service = std::make_unique<api::Service>(cfg, *token, *store, *creds, *verifier, *audit,
                                                 tsa.get(), timestamper.get());
        auto started = service->start();
        if (!started) {
            throw std::runtime_error("service: " + started.error().detail);
        }
        // The Env lives until the process ends and is never destroyed: stop the service (its
        // connection threads and its token probe) at exit, before the libraries' own exit
        // handlers (SoftHSM2's) run under a thread still using the token.
        std::atexit([] { Env::get().service->stop(); });
    }
};

// The OCSP status of CERTPEM from the demo's responder (POST /ocsp), as `openssl ocsp` reads it:
// "...: good", "...: revoked", ...
inline std::string ocspStatus(Env& env, const std::string& certPem) {
    const std::string dir = tempDir("ocsp-status");
    const std::string issuing = env.dir + "/pki/issuing-ca.pem";
    writeFile(dir + "/chain.pem", readFile(env.dir + "/pki/root-ca.pem") + readFile(issuing));
    EXPECT_EQ(
        run("openssl ocsp -issuer " + issuing + " -cert " + certPem + " -reqout " + dir + "/q.req"),
        0);
    EXPECT_EQ(env.request("POST", "/ocsp", "", dir + "/q.req", "application/ocsp-request",
                          dir + "/r.resp")
                  .status,
              200);
    std::string out;
    run("openssl ocsp -respin " + dir + "/r.resp -issuer " + issuing + " -cert " + certPem +
            " -CAfile " + dir + "/chain.pem -no_nonce 2>&1",
        &out);
    return out;
}

inline std::string samplePdf() {
    return corpusDir() + "/pdf/unsigned/dss-sample.pdf";
}

inline void expectProblem(const Response& r, int status, const std::string& code) {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_NE(r.header("Content-Type").find("application/problem+json"), std::string::npos)
        << r.headers;
    auto j = r.json();
    EXPECT_EQ(j->getValue<std::string>("code"), code) << r.body;
    EXPECT_EQ(j->getValue<int>("status"), status);
    EXPECT_FALSE(j->getValue<std::string>("requestId").empty());
    EXPECT_FALSE(j->getValue<std::string>("title").empty());
    EXPECT_EQ(j->getValue<std::string>("requestId"), r.header("X-Request-Id"));
}

// The demo's configuration for a `kyso serve` process of a test: any free port, its own spool
// directory; the same token and database as the in-process service.
inline std::string serveConf(const std::string& tag) {
    auto& env = Env::get();
    std::string conf = readFile(env.dir + "/kyso.conf");
    const auto sp = conf.find("spoolDir = spool");
    const auto li = conf.find("listen = ");
    if (sp == std::string::npos || li == std::string::npos) {
        throw std::runtime_error("unexpected demo configuration");
    }
    conf.replace(sp, 16, "spoolDir = spool-" + tag);
    conf.replace(li, conf.find('\n', li) - li, "listen = 127.0.0.1:0");
    const std::string path = env.dir + "/kyso-" + tag + ".conf";
    writeFile(path, conf);
    return path;
}

// `kyso serve --config conf` as a child process; its port once it listens (empty on failure).
struct ServeProcess {
    pid_t pid = -1;
    std::string port;
    std::string log;
};

inline ServeProcess startServe(const std::string& confPath) {
    ServeProcess s;
    s.log = tempDir("serve") + "/serve.log";
    s.pid = ::fork();
    if (s.pid == 0) {
        std::freopen(s.log.c_str(), "w", stdout);
        ::dup2(::fileno(stdout), 2);
        ::execl(KYSO_BINARY, "kyso", "serve", "--config", confPath.c_str(),
                static_cast<char*>(nullptr));
        ::_exit(127);
    }
    // Up to 60 s, returning as soon as it listens: a sanitizer build on a busy machine is slow.
    for (int i = 0; i < 1200 && s.port.empty() && s.pid > 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        const std::string l = readFile(s.log);
        const std::string mark = "listening on https://127.0.0.1:";
        const auto p = l.find(mark);
        if (p != std::string::npos) {
            const auto start = p + mark.size();
            s.port = l.substr(start, l.find(' ', start) - start);
        }
    }
    return s;
}

}  // namespace kyso::test
