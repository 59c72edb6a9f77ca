// The HTTPS service when its token misbehaves: `kyso serve` as a child process whose [pkcs11]
// module is the fault shim (tests/support/p11fault, docs/FAULTS.md) in front of the demo's
// SoftHSM2 token. While the token is pulled out, in error or has lost its sessions, signing
// answers 503 problem+json "token.unavailable", verification and /healthz keep answering 200,
// /readyz says the token is unavailable; once the shim says "ok" the same process signs again
// (polled for up to 20 s; the test fails if it does not), after exactly one C_Login. A rejected
// PIN is tried once and never again, however many requests come. Failed attempts are audited as
// failed and nothing half-made is returned.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "rest_env.h"

namespace kyso::test {
namespace {

namespace fs = std::filesystem;

// One `kyso serve` on the fault shim, with its own control and counter files.
class FaultServe {
  public:
    // `start`: false to only write the configuration and set the environment.
    explicit FaultServe(const std::string& tag, const std::string& pinFile = "",
                        bool start = true) {
        auto& env = Env::get();
        m_dir = tempDir("fault-" + tag);
        m_control = m_dir + "/control";
        m_counts = m_dir + "/counts";
        control("ok");
        std::string conf = readFile(serveConf("fault-" + tag));
        const std::string key = "\nmodule = ";
        const auto at = conf.find(key);
        if (at == std::string::npos) {
            throw std::runtime_error("no [pkcs11] module in the demo configuration");
        }
        const auto from = at + key.size();
        const auto to = conf.find('\n', from);
        const std::string real = conf.substr(from, to - from);
        conf.replace(from, to - from, KYSO_P11FAULT);
        if (!pinFile.empty()) {
            const auto p = conf.find("\npin = ");
            conf.replace(p + 7, conf.find('\n', p + 7) - (p + 7), "file:" + pinFile);
        }
        m_spool = env.dir + "/spool-fault-" + tag;
        m_conf = env.dir + "/kyso-fault-" + tag + ".conf";
        writeFile(m_conf, conf);
        // The child reads these when it loads the shim; set in this process before the fork.
        ::setenv("KYSO_P11FAULT_CONTROL", m_control.c_str(), 1);
        ::setenv("KYSO_P11FAULT_COUNTS", m_counts.c_str(), 1);
        ::setenv("KYSO_P11FAULT_MODULE", real.c_str(), 1);
        if (start) {
            m_serve = startServe(m_conf);
        }
    }
    ~FaultServe() { stop(); }
    FaultServe(const FaultServe&) = delete;
    FaultServe& operator=(const FaultServe&) = delete;

    // The exit status once it stopped by itself (-1 while it runs).
    int exited() {
        if (m_serve.pid <= 0) {
            return m_status;
        }
        int status = 0;
        if (::waitpid(m_serve.pid, &status, WNOHANG) == m_serve.pid) {
            m_serve.pid = -1;
            m_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
        }
        return m_serve.pid <= 0 ? m_status : -1;
    }
    void stop() {
        if (m_serve.pid > 0) {
            ::kill(m_serve.pid, SIGTERM);
            int status = 0;
            ::waitpid(m_serve.pid, &status, 0);
            m_serve.pid = -1;
        }
    }

    bool listening() const { return !m_serve.port.empty(); }
    const std::string& conf() const { return m_conf; }
    std::string log() const { return readFile(m_serve.log); }
    const std::string& spool() const { return m_spool; }

    void control(const std::string& commands) const {
        writeFile(m_control + ".new", commands + "\n");
        ASSERT_EQ(std::rename((m_control + ".new").c_str(), m_control.c_str()), 0);
    }

    std::map<std::string, unsigned long> counts() const {
        std::map<std::string, unsigned long> m;
        std::istringstream in(readFile(m_counts));
        std::string name;
        unsigned long v = 0;
        while (in >> name >> v) {
            m[name] = v;
        }
        return m;
    }

    Response request(const std::string& method, const std::string& path,
                     const std::string& bearer = "", const std::string& bodyFile = "",
                     const std::string& contentType = "application/pdf",
                     const std::string& outFile = "") const {
        return curlRequest(Env::get().dir + "/pki/root-ca.pem", "https://127.0.0.1:" + m_serve.port,
                           method, path, bearer, bodyFile, contentType, outFile);
    }

  private:
    std::string m_dir;
    std::string m_control;
    std::string m_counts;
    std::string m_conf;
    std::string m_spool;
    ServeProcess m_serve;
    int m_status = -1;
};

std::string cmsInput() {
    static const std::string path = [] {
        const std::string p = tempDir("fault-data") + "/data.bin";
        writeFile(p, "Tờ khai đăng ký hộ tịch\n" + std::string(5000, 'x'));
        return p;
    }();
    return path;
}

std::string tsaQuery() {
    static const std::string path = [] {
        const std::string dir = tempDir("fault-tsq");
        writeFile(dir + "/data", "thời điểm");
        if (run("openssl ts -query -data " + dir + "/data -sha256 -cert -out " + dir +
                "/q.tsq 2>&1") != 0) {
            ADD_FAILURE() << "openssl ts -query failed";
        }
        return dir + "/q.tsq";
    }();
    return path;
}

Response signPdf(const FaultServe& s, const std::string& out) {
    return s.request("POST", "/api/v1/sign/pdf?credential=officer-1", Env::get().keys["officer-1"],
                     samplePdf(), "application/pdf", out);
}

Response signCms(const FaultServe& s, const std::string& out) {
    return s.request("POST", "/api/v1/sign/cms?credential=officer-1", Env::get().keys["officer-1"],
                     cmsInput(), "application/octet-stream", out);
}

Response timestamp(const FaultServe& s, const std::string& out) {
    return s.request("POST", "/tsa", "", tsaQuery(), "application/timestamp-query", out);
}

// A problem+json 503 "token.unavailable" written to `out` (curl's -o) instead of a document.
void expectUnavailable(const Response& r, const std::string& out, const std::string& what) {
    SCOPED_TRACE(what);
    Response withBody = r;
    withBody.body = readFile(out);
    expectProblem(withBody, 503, "token.unavailable");
    EXPECT_EQ(withBody.body.find("%PDF"), std::string::npos) << "a document came back";
}

bool pdfsigValid(const std::string& pdf) {
    std::string out;
    run("pdfsig " + shellQuote(pdf) + " 2>&1", &out);
    return out.find("Signature is Valid.") != std::string::npos;
}

unsigned long lastAuditSeq() {
    std::string out;
    run("sqlite3 " + shellQuote(Env::get().dir + "/kyso.db") + " 'SELECT max(seq) FROM audit'",
        &out);
    return std::strtoul(out.c_str(), nullptr, 10);
}

// The audit rows after `seq`: "type|outcome|detail" lines.
std::vector<std::string> auditAfter(unsigned long seq) {
    std::string out;
    run("sqlite3 " + shellQuote(Env::get().dir + "/kyso.db") +
            " \"SELECT type || '|' || outcome || '|' || detail FROM audit WHERE seq > " +
            std::to_string(seq) + " ORDER BY seq\"",
        &out);
    std::vector<std::string> rows;
    std::istringstream in(out);
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty()) {
            rows.push_back(line);
        }
    }
    return rows;
}

// Regular files left in the spool directory (tree).
std::vector<std::string> spoolFiles(const std::string& dir) {
    std::vector<std::string> files;
    std::error_code ec;
    if (!fs::exists(dir, ec)) {
        return files;
    }
    for (const auto& e : fs::recursive_directory_iterator(dir, ec)) {
        if (e.is_regular_file()) {
            files.push_back(e.path().string());
        }
    }
    return files;
}

// Polls POST /api/v1/sign/pdf until it answers 200, for up to 20 s; the seconds it took, or a
// negative number if it never did. `polls`: the requests made.
double waitForSigning(const FaultServe& s, const std::string& out, unsigned* polls) {
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + std::chrono::seconds(20);
    *polls = 0;
    while (std::chrono::steady_clock::now() < deadline) {
        ++*polls;
        if (signPdf(s, out).status == 200) {
            return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return -1;
}

// Each fault in turn on one running service: what fails, what keeps working, and the recovery.
TEST(TokenFaults, SigningIsUnavailableVerificationIsNotAndTheServiceRecovers) {
    auto& env = Env::get();
    FaultServe s("modes");
    ASSERT_TRUE(s.listening()) << s.log();
    const std::string dir = tempDir("fault-modes");
    const std::string signedPdf = dir + "/signed.pdf";
    ASSERT_EQ(signPdf(s, signedPdf).status, 200) << readFile(signedPdf);
    ASSERT_TRUE(pdfsigValid(signedPdf));
    ASSERT_EQ(s.request("GET", "/readyz").status, 200);

    for (const std::string mode : {"removed", "device_error", "session_invalid"}) {
        SCOPED_TRACE(mode);
        auto before = s.counts();
        const unsigned long seq = lastAuditSeq();
        s.control(mode);

        const std::string out = dir + "/" + mode;
        const auto t0 = std::chrono::steady_clock::now();
        expectUnavailable(signPdf(s, out + ".pdf"), out + ".pdf", "sign/pdf");
        std::cout << "[ fault ] " << mode << ": first refused sign/pdf answered in "
                  << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()
                  << " s\n";
        expectUnavailable(signPdf(s, out + "-2.pdf"), out + "-2.pdf", "sign/pdf again");
        expectUnavailable(signCms(s, out + ".p7s"), out + ".p7s", "sign/cms");
        expectUnavailable(timestamp(s, out + ".tsr"), out + ".tsr", "tsa");

        // Verification, liveness and the open endpoints do not need the token.
        auto verified = s.request("POST", "/api/v1/verify", env.keys["portal"], signedPdf);
        EXPECT_EQ(verified.status, 200) << verified.body;
        EXPECT_EQ(s.request("GET", "/healthz").status, 200);
        auto ready = s.request("GET", "/readyz");
        EXPECT_EQ(ready.status, 503) << ready.body;
        EXPECT_NE(ready.body.find("\"token\":\"unavailable\""), std::string::npos) << ready.body;
        auto mid = s.counts();
        EXPECT_EQ(mid["login_forwarded"], before["login_forwarded"])
            << "a PIN reached a token that is not there";

        // Every failed attempt is audited as failed; none claims a signature.
        const auto rows = auditAfter(seq);
        unsigned failed = 0;
        for (const auto& row : rows) {
            EXPECT_EQ(row.find("|ok|"), std::string::npos) << row;
            if (row.find("|failed|") != std::string::npos &&
                row.find("token.unavailable") != std::string::npos) {
                ++failed;
            }
        }
        EXPECT_EQ(failed, 4u) << "audit rows: " << rows.size();
        EXPECT_TRUE(spoolFiles(s.spool()).empty()) << "files left in the spool";

        s.control("ok");
        const std::string again = out + "-recovered.pdf";
        unsigned polls = 0;
        const double took = waitForSigning(s, again, &polls);
        ASSERT_GE(took, 0) << "no recovery within 20 s after the token came back: "
                           << readFile(again);
        std::cout << "[ fault ] " << mode << ": signing again " << took
                  << " s after the token came back (request " << polls << ")\n";
        EXPECT_TRUE(pdfsigValid(again));
        EXPECT_EQ(s.request("GET", "/readyz").status, 200);
        ASSERT_EQ(signCms(s, out + "-recovered.p7s").status, 200);
        ASSERT_EQ(timestamp(s, out + "-recovered.tsr").status, 200);
        auto after = s.counts();
        EXPECT_EQ(after["login_forwarded"], before["login_forwarded"] + 1)
            << "one login per recovery";
        EXPECT_EQ(after["login_ok"], before["login_ok"] + 1);
        EXPECT_EQ(after["login_rejected"], before["login_rejected"]);
        EXPECT_EQ(s.exited(), -1) << "the service stopped: " << s.log();
    }
}

// /readyz is enough to notice the token is back: no signing request needed.
TEST(TokenFaults, ReadyzComesBackByItself) {
    FaultServe s("readyz");
    ASSERT_TRUE(s.listening()) << s.log();
    ASSERT_EQ(s.request("GET", "/readyz").status, 200);
    s.control("removed");
    EXPECT_EQ(s.request("GET", "/readyz").status, 503);
    EXPECT_EQ(s.request("GET", "/readyz").status, 503);
    s.control("ok");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    int status = 0;
    while (std::chrono::steady_clock::now() < deadline &&
           (status = s.request("GET", "/readyz").status) != 200) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_EQ(status, 200) << "/readyz did not come back within 20 s";
    const std::string out = tempDir("fault-readyz") + "/signed.pdf";
    ASSERT_EQ(signPdf(s, out).status, 200) << readFile(out);
    EXPECT_TRUE(pdfsigValid(out));
}

// A token pulled out and put back while nobody signs: the service's background probe notices
// both and logs in again by itself (one C_Login, no request), so the first signature after the
// re-insert succeeds.
TEST(TokenFaults, ReinsertedWhileIdleRecoversWithoutARequest) {
    FaultServe s("idle");
    ASSERT_TRUE(s.listening()) << s.log();
    const std::string dir = tempDir("fault-idle");
    ASSERT_EQ(signPdf(s, dir + "/before.pdf").status, 200) << readFile(dir + "/before.pdf");
    const auto before = s.counts();
    s.control("removed");
    // Long enough for several probes to see the token gone; no request meanwhile.
    std::this_thread::sleep_for(std::chrono::milliseconds(3500));
    EXPECT_EQ(s.counts()["login_forwarded"], before.at("login_forwarded"));
    s.control("ok");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline &&
           s.counts()["login_ok"] == before.at("login_ok")) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_EQ(s.counts()["login_ok"], before.at("login_ok") + 1)
        << "the service did not log in again by itself within 20 s";
    const std::string out = dir + "/after.pdf";
    ASSERT_EQ(signPdf(s, out).status, 200) << readFile(out);
    EXPECT_TRUE(pdfsigValid(out));
    EXPECT_EQ(s.counts()["login_forwarded"], before.at("login_forwarded") + 1);
}

// A slow token makes slow answers, not hung ones; the other endpoints answer meanwhile.
TEST(TokenFaults, SlowTokenStillAnswers) {
    FaultServe s("slow");
    ASSERT_TRUE(s.listening()) << s.log();
    const std::string dir = tempDir("fault-slow");
    ASSERT_EQ(signPdf(s, dir + "/warm.pdf").status, 200);
    auto seconds = [](auto since) {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
    };
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(signPdf(s, dir + "/fast.pdf").status, 200);
    std::cout << "[ fault ] sign/pdf without delay: " << seconds(t0) << " s\n";
    auto before = s.counts();
    s.control("delay 50");
    t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(signPdf(s, dir + "/slow.pdf").status, 200);
    std::cout << "[ fault ] sign/pdf with delay 50: " << seconds(t0) << " s\n";
    t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    std::vector<int> statuses(3, 0);
    for (unsigned i = 0; i < statuses.size(); ++i) {
        threads.emplace_back([&, i] {
            statuses[i] = signPdf(s, dir + "/slow-" + std::to_string(i) + ".pdf").status;
        });
    }
    EXPECT_EQ(s.request("GET", "/healthz").status, 200);
    for (auto& t : threads) {
        t.join();
    }
    std::cout << "[ fault ] three concurrent sign/pdf with delay 50: " << seconds(t0) << " s\n";
    for (unsigned i = 0; i < statuses.size(); ++i) {
        EXPECT_EQ(statuses[i], 200) << readFile(dir + "/slow-" + std::to_string(i) + ".pdf");
        EXPECT_TRUE(pdfsigValid(dir + "/slow-" + std::to_string(i) + ".pdf"));
    }
    EXPECT_EQ(s.request("GET", "/readyz").status, 200);
    EXPECT_EQ(s.counts()["login_calls"], before["login_calls"]) << "a slow token is not a lost one";
    s.control("ok");
}

std::string pinWithoutNewline(const std::string& file) {
    std::string pin = readFile(file);
    while (!pin.empty() && (pin.back() == '\n' || pin.back() == '\r')) {
        pin.pop_back();
    }
    return pin;
}

std::string wrongPinFor(const std::string& pin) {
    std::string w = pin;
    w.back() = w.back() == 'x' ? 'y' : 'x';
    return w;
}

// A service configured with a wrong PIN does not start, after exactly one C_Login.
TEST(TokenFaults, WrongPinAtStartIsOneLoginAttempt) {
    auto& env = Env::get();
    const std::string pinFile = tempDir("fault-pin") + "/user.pin";
    const std::string wrong = wrongPinFor(pinWithoutNewline(env.dir + "/secrets/user.pin"));
    writeFile(pinFile, wrong + "\n");
    FaultServe s("wrongpin", pinFile, false);
    std::string log;
    const int rc = run("timeout 60 " + shellQuote(KYSO_BINARY) + " serve --config " +
                           shellQuote(s.conf()) + " 2>&1",
                       &log);
    EXPECT_NE(rc, 0) << "started with a wrong PIN: " << log;
    EXPECT_NE(rc, 124) << "still running after 60 s: " << log;
    auto c = s.counts();
    EXPECT_EQ(c["login_calls"], 1u);
    EXPECT_EQ(c["login_forwarded"], 1u);
    EXPECT_EQ(c["login_rejected"], 1u);
    EXPECT_EQ(c["login_ok"], 0u);
    EXPECT_NE(log.find("token.pin_incorrect"), std::string::npos) << log;
    EXPECT_EQ(log.find(wrong), std::string::npos) << "the PIN is in the log";
}

// A token that is not there when the service starts: it does not start ("token.not_found",
// the configuration names a token that cannot be found), and no PIN was sent anywhere.
TEST(TokenFaults, AbsentTokenAtStartStopsTheService) {
    FaultServe s("absent", "", false);
    s.control("removed");
    std::string log;
    const int rc = run("timeout 60 " + shellQuote(KYSO_BINARY) + " serve --config " +
                           shellQuote(s.conf()) + " 2>&1",
                       &log);
    EXPECT_NE(rc, 0) << "started without its token: " << log;
    EXPECT_NE(rc, 124) << "still running after 60 s: " << log;
    EXPECT_NE(log.find("token.not_found"), std::string::npos) << log;
    EXPECT_EQ(s.counts()["login_calls"], 0u);
}

// The PIN file changes while the token is out; when it is back the wrong PIN is tried once, and
// never again however many requests come (no lockout). Verification keeps working.
TEST(TokenFaults, WrongPinAfterRecoveryIsTriedOnce) {
    auto& env = Env::get();
    const std::string dir = tempDir("fault-pin2");
    const std::string pinFile = dir + "/user.pin";
    const std::string good = readFile(env.dir + "/secrets/user.pin");
    writeFile(pinFile, good);
    FaultServe s("pinchange", pinFile);
    ASSERT_TRUE(s.listening()) << s.log();
    const std::string signedPdf = dir + "/signed.pdf";
    ASSERT_EQ(signPdf(s, signedPdf).status, 200);

    s.control("removed");
    expectUnavailable(signPdf(s, dir + "/removed.pdf"), dir + "/removed.pdf", "removed");
    const std::string wrong = wrongPinFor(pinWithoutNewline(pinFile));
    writeFile(pinFile, wrong + "\n");
    auto before = s.counts();
    const unsigned long seq = lastAuditSeq();
    s.control("ok");
    for (int i = 0; i < 8; ++i) {
        const std::string out = dir + "/refused-" + std::to_string(i);
        Response r = signPdf(s, out);
        r.body = readFile(out);
        expectProblem(r, 503, "token.pin_incorrect");
        EXPECT_EQ(r.body.find(wrong), std::string::npos) << "the PIN in a problem";
    }
    EXPECT_EQ(s.request("GET", "/readyz").status, 503);
    auto verified = s.request("POST", "/api/v1/verify", env.keys["portal"], signedPdf);
    EXPECT_EQ(verified.status, 200) << verified.body;
    auto after = s.counts();
    EXPECT_EQ(after["login_calls"], before["login_calls"] + 1) << "the PIN was retried";
    EXPECT_EQ(after["login_forwarded"], before["login_forwarded"] + 1);
    EXPECT_EQ(after["login_rejected"], before["login_rejected"] + 1);
    EXPECT_EQ(after["login_ok"], before["login_ok"]);
    for (const auto& row : auditAfter(seq)) {
        EXPECT_EQ(row.find("|ok|"), std::string::npos) << row;
    }
    // The right PIN back in the file changes nothing for this process: no retry.
    writeFile(pinFile, good);
    const std::string out = dir + "/still.pdf";
    EXPECT_EQ(signPdf(s, out).status, 503) << readFile(out);
    EXPECT_EQ(s.counts()["login_calls"], after["login_calls"]);
    s.stop();
    EXPECT_EQ(s.log().find(wrong), std::string::npos) << "the PIN is in the log";
}

}  // namespace
}  // namespace kyso::test
