// The audit log: what the service records, who may read it, and tampering with the SQLite file
// (delete, edit, reorder, truncate, rewrite with recomputed hashes) found by `kyso audit verify`
// at the right sequence number.
#include "kyso/api/audit.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <thread>

#include "kyso/ca-bridge/issuer.h"
#include "kyso/hsm/encoding.h"
#include "pdf_update.h"
#include "rest_env.h"

namespace kyso::test {
namespace {

namespace fs = std::filesystem;
using Poco::JSON::Object;

std::string sha256Hex(const std::string& data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    ::EVP_Digest(data.data(), data.size(), md, &len, ::EVP_sha256(), nullptr);
    return hsm::hexOf(md, len);
}

// The audit entries after `after`, as the admin reads them.
Poco::JSON::Array::Ptr entriesAfter(std::uint64_t after) {
    auto& env = Env::get();
    auto r = env.request("GET", "/api/v1/audit?after=" + std::to_string(after) + "&limit=1000",
                         env.keys["admin"]);
    EXPECT_EQ(r.status, 200) << r.body;
    return r.json()->getArray("entries");
}

std::uint64_t lastSeq() {
    std::uint64_t last = 0;
    for (;;) {
        auto e = entriesAfter(last);
        if (e->size() == 0) {
            return last;
        }
        last = e->getObject(static_cast<unsigned>(e->size() - 1))->getValue<std::uint64_t>("seq");
    }
}

TEST(Audit, SignaturesDenialsAndFailuresAreRecordedAndOnlyAdminsReadThem) {
    auto& env = Env::get();
    const std::uint64_t before = lastSeq();
    const std::string out = tempDir("audit") + "/signed.pdf";
    auto s = env.request("POST", "/api/v1/sign/pdf?credential=officer-1&level=B-B",
                         env.keys["officer-1"], samplePdf(), "application/pdf", out);
    ASSERT_EQ(s.status, 200) << s.body;
    // A denial (officer-2 does not own officer-1) and a bad key.
    env.request("POST", "/api/v1/sign/pdf?credential=officer-1", env.keys["officer-2"],
                samplePdf());
    env.request("GET", "/api/v1/credentials",
                "kyso_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");

    auto entries = entriesAfter(before);
    bool signedSeen = false, denialSeen = false, authSeen = false;
    for (std::size_t i = 0; i < entries->size(); ++i) {
        auto e = entries->getObject(static_cast<unsigned>(i));
        const std::string type = e->getValue<std::string>("type");
        if (type == "sign.pdf" && e->getValue<std::string>("outcome") == "ok") {
            signedSeen = true;
            EXPECT_EQ(e->getValue<std::string>("principal"), "officer-1");
            EXPECT_EQ(e->getValue<std::string>("credential"), "officer-1");
            // The digest of exactly what the client received.
            EXPECT_EQ(e->getObject("detail")->getValue<std::string>("sha256"),
                      sha256Hex(readFile(out)));
            // And of the document that was sent to be signed.
            EXPECT_EQ(e->getObject("detail")->getValue<std::string>("input.sha256"),
                      sha256Hex(readFile(samplePdf())));
        } else if (type == "policy.denial") {
            denialSeen = true;
            EXPECT_EQ(e->getValue<std::string>("principal"), "officer-2");
            EXPECT_EQ(e->getObject("detail")->getValue<std::string>("rule"), "officer-not-owner");
        } else if (type == "auth.failure") {
            authSeen = true;
            // The key's public id, never its secret.
            EXPECT_EQ(e->getObject("detail")->getValue<std::string>("key"), "0123456789abcdef");
            std::ostringstream text;
            e->stringify(text);
            EXPECT_EQ(text.str().find("AAAAAAAA"), std::string::npos);
        }
        EXPECT_EQ(e->getValue<std::string>("hash").size(), 64u);
    }
    EXPECT_TRUE(signedSeen);
    EXPECT_TRUE(denialSeen);
    EXPECT_TRUE(authSeen);

    for (const char* who : {"officer-1", "clerk", "portal"}) {
        expectProblem(env.request("GET", "/api/v1/audit", env.keys[who]), 403, "auth.denied");
    }
    expectProblem(env.request("GET", "/api/v1/audit?limit=0", env.keys["admin"]), 400,
                  "request.invalid");
    expectProblem(env.request("GET", "/api/v1/audit?after=-1", env.keys["admin"]), 400,
                  "request.invalid");
}

// A database of its own: 20 entries, a checkpoint signed by the demo's audit key every 5.
struct AuditFixture {
    std::string dir, db, conf;
};

AuditFixture makeAuditLog() {
    auto& env = Env::get();
    AuditFixture f;
    f.dir = tempDir("audit-db");
    f.db = f.dir + "/audit.db";
    {
        auto store = api::Store::open(f.db).value();
        api::AuditLog log(*store, env.creds->find("audit"), 5);
        for (int i = 1; i <= 20; ++i) {
            auto r = log.append({"test.event", "tester", "officer-1", "ok",
                                 "{\"n\":\"" + std::to_string(i) + "\"}"});
            EXPECT_TRUE(r.ok());
        }
    }
    // The demo's configuration, on this database (paths in it are relative to the demo dir).
    std::string text = readFile(env.dir + "/kyso.conf");
    const auto at = text.find("path = kyso.db");
    EXPECT_NE(at, std::string::npos);
    text.replace(at, 14, "path = " + f.db);
    f.conf = env.dir + "/audit-" + fs::path(f.dir).filename().string() + ".conf";
    writeFile(f.conf, text);
    return f;
}

// `kyso audit verify`: exit status and what it printed on stdout.
std::pair<int, std::string> auditVerify(const AuditFixture& f) {
    std::string out;
    const int rc = run("(" + std::string(KYSO_BINARY) + " audit verify --config " +
                           shellQuote(f.conf) + " 2>/dev/null)",
                       &out);
    return {rc, out};
}

int sql(const AuditFixture& f, const std::string& statement) {
    std::string out;
    const int rc = run("sqlite3 " + shellQuote(f.db) + " " + shellQuote(statement), &out);
    EXPECT_EQ(rc, 0) << out;
    return rc;
}

TEST(Audit, AnIntactLogVerifies) {
    auto f = makeAuditLog();
    auto [rc, out] = auditVerify(f);
    EXPECT_EQ(rc, 0) << out;
    std::string count;
    run("sqlite3 " + shellQuote(f.db) + " 'SELECT count(*) FROM audit_checkpoints'", &count);
    EXPECT_EQ(count, "4\n");  // at 5, 10, 15, 20
}

TEST(Audit, TamperingIsFoundAtTheRightEntry) {
    struct Case {
        const char* name;
        std::string statement;
        std::string firstBad;
    };
    const Case cases[] = {
        {"delete entry 7", "DELETE FROM audit WHERE seq = 7", "7\n"},
        {"edit entry 7", "UPDATE audit SET principal = 'someone else' WHERE seq = 7", "7\n"},
        {"edit entry 7's time", "UPDATE audit SET time = '2020-01-01T00:00:00Z' WHERE seq = 7",
         "7\n"},
        {"reorder entries 7 and 8",
         "UPDATE audit SET seq = -1 WHERE seq = 7; UPDATE audit SET seq = 7 WHERE seq = 8; "
         "UPDATE audit SET seq = 8 WHERE seq = -1",
         "7\n"},
        {"truncate after 12", "DELETE FROM audit WHERE seq > 12", "13\n"},
        {"truncate after 12, its checkpoints too",
         "DELETE FROM audit WHERE seq > 12; DELETE FROM audit_checkpoints WHERE seq > 12", ""},
        {"a forged checkpoint", "UPDATE audit_checkpoints SET hash = '00' WHERE seq = 10", "10\n"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        auto f = makeAuditLog();
        sql(f, c.statement);
        auto [rc, out] = auditVerify(f);
        if (c.firstBad.empty()) {
            // Back to an older checkpoint with everything after it: the database alone cannot
            // tell; the service log's copy of the checkpoints can (documented).
            EXPECT_EQ(rc, 0) << out;
        } else {
            EXPECT_EQ(rc, 1) << out;
            EXPECT_EQ(out, c.firstBad);
        }
    }
}

TEST(Audit, ARewrittenChainIsCaughtByTheNextSignedCheckpoint) {
    auto f = makeAuditLog();
    // Edit entry 7 and recompute every later hash as an attacker with the file can: the chain is
    // consistent again, but the checkpoint at 10 signed another hash.
    auto store = api::Store::open(f.db).value();
    auto rows = store->auditRows(0, 100);
    std::string prev = rows[5].hash;  // entry 6
    std::string statement;
    for (std::size_t i = 6; i < rows.size(); ++i) {
        api::AuditRow r = rows[i];
        if (r.seq == 7) {
            r.principal = "someone else";
        }
        r.prevHash = prev;
        r.hash = api::auditHash(r);
        prev = r.hash;
        statement += "UPDATE audit SET principal = '" + r.principal + "', prev_hash = '" +
                     r.prevHash + "', hash = '" + r.hash +
                     "' WHERE seq = " + std::to_string(r.seq) + ";";
    }
    store.reset();
    sql(f, statement);
    auto [rc, out] = auditVerify(f);
    EXPECT_EQ(rc, 1);
    EXPECT_EQ(out, "10\n");
}

// An export verifies offline with the audit certificate alone; an edited export does not.
TEST(Audit, AnExportVerifiesOfflineAndItsTamperingIsFound) {
    auto& env = Env::get();
    auto f = makeAuditLog();
    const std::string exported = f.dir + "/audit.json";
    std::string out;
    ASSERT_EQ(run(std::string(KYSO_BINARY) + " audit export --config " + shellQuote(f.conf) +
                      " --out " + shellQuote(exported),
                  &out),
              0)
        << out;
    const std::string cert = env.dir + "/pki/audit.pem";
    auto verifyExport = [&](const std::string& file) {
        std::string text;
        const int rc =
            run("(" + std::string(KYSO_BINARY) + " audit verify --export " + shellQuote(file) +
                    " --certificate " + shellQuote(cert) + " 2>/dev/null)",
                &text);
        return std::make_pair(rc, text);
    };
    auto [rc, text] = verifyExport(exported);
    EXPECT_EQ(rc, 0) << text;
    // Entry 12's principal changed in the export.
    std::string json = readFile(exported);
    std::size_t at = std::string::npos;
    for (auto k = json.find("\"seq\""); k != std::string::npos; k = json.find("\"seq\"", k + 1)) {
        auto v = json.find_first_of("0123456789", k);
        if (json.compare(v, 3, "12,") == 0 || json.compare(v, 3, "12\n") == 0) {
            at = k;
            break;
        }
    }
    ASSERT_NE(at, std::string::npos) << json.substr(0, 400);
    const auto who = json.find("\"tester\"", at);
    ASSERT_NE(who, std::string::npos);
    json.replace(who, 8, "\"tester2\"");
    writeFile(f.dir + "/edited.json", json);
    auto [rc2, text2] = verifyExport(f.dir + "/edited.json");
    EXPECT_EQ(rc2, 1);
    EXPECT_EQ(text2, "12\n");
    // Against another certificate, the checkpoints do not verify.
    auto [rc3, text3] = [&] {
        std::string t;
        const int r = run("(" + std::string(KYSO_BINARY) + " audit verify --export " +
                              shellQuote(exported) + " --certificate " +
                              shellQuote(env.dir + "/pki/officer-1.pem") + " 2>/dev/null)",
                          &t);
        return std::make_pair(r, t);
    }();
    EXPECT_EQ(rc3, 1);
    EXPECT_EQ(text3, "5\n");
}

// The service log: one JSON object a line, a request id on each request line, and never a PIN,
// an API key's secret, or the content of a document (nor the reason given with it).
TEST(Audit, TheLogIsJsonAndHoldsNoSecret) {
    auto& env = Env::get();
    ServeProcess serve = startServe(serveConf("log"));
    ASSERT_FALSE(serve.port.empty()) << readFile(serve.log);
    const std::string dir = tempDir("log");
    const std::string marker = "KYSO-DOCUMENT-MARKER-7f3a";
    writeFile(
        dir + "/in.pdf",
        makePdf({"<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                 "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R >>",
                 pdfStream("BT /F1 12 Tf 10 100 Td (" + marker + ") Tj ET")}));
    const std::string base = "https://127.0.0.1:" + serve.port;
    auto curl = [&](const std::string& key, const std::string& args) {
        writeFile(dir + "/auth", "Authorization: Bearer " + key + "\n");
        std::string out;
        run("curl -s --max-time 60 -o " + dir + "/out --cacert " +
                shellQuote(env.dir + "/pki/root-ca.pem") + " -H @" + dir + "/auth " + args,
            &out);
    };
    curl(env.keys["officer-1"], "-H 'Content-Type: application/pdf' --data-binary @" + dir +
                                    "/in.pdf '" + base +
                                    "/api/v1/sign/pdf?credential=officer-1&reason=KYSO-REASON-"
                                    "MARKER'");
    ASSERT_NE(readFile(dir + "/out").find(marker), std::string::npos);  // it was signed
    curl("kyso_0123456789abcdef_" + env.keys["officer-1"].substr(22),
         "'" + base + "/api/v1/credentials'");
    ASSERT_EQ(::kill(serve.pid, SIGTERM), 0);
    int status = 0;
    ::waitpid(serve.pid, &status, 0);

    const std::string log = readFile(serve.log);
    const std::string pin = readFile(env.dir + "/secrets/user.pin");
    ASSERT_FALSE(pin.empty());
    EXPECT_EQ(log.find(pin.substr(0, pin.find_last_not_of("\r\n") + 1)), std::string::npos);
    EXPECT_EQ(log.find(env.keys["officer-1"].substr(22)), std::string::npos);
    EXPECT_EQ(log.find(marker), std::string::npos);
    EXPECT_EQ(log.find("KYSO-REASON-MARKER"), std::string::npos);
    std::istringstream lines(log);
    std::string line;
    int requests = 0;
    while (std::getline(lines, line)) {
        if (line.rfind("kyso: ", 0) == 0) {
            continue;  // the start and stop messages on stdout
        }
        SCOPED_TRACE(line);
        Poco::JSON::Parser parser;
        Object::Ptr o;
        ASSERT_NO_THROW(o = parser.parse(line).extract<Object::Ptr>());
        EXPECT_TRUE(o->has("time") && o->has("level") && o->has("msg"));
        if (o->getValue<std::string>("msg") == "request") {
            ++requests;
            EXPECT_EQ(o->getValue<std::string>("requestId").size(), 24u);
        }
    }
    EXPECT_GE(requests, 2);
}

// When the audit entry cannot be committed (another process holds the database's write lock
// past the busy timeout), the signature is withheld: 503 audit.unavailable, no PDF.
TEST(Audit, NoSignatureWithoutItsCommittedEntry) {
    auto& env = Env::get();
    ServeProcess serve = startServe(serveConf("locked"));
    ASSERT_FALSE(serve.port.empty()) << readFile(serve.log);
    const std::string dir = tempDir("locked");
    writeFile(dir + "/auth", "Authorization: Bearer " + env.keys["officer-1"] + "\n");
    auto sign = [&](const std::string& out) {
        std::string code;
        run("curl -s --max-time 60 -o " + out + " -w '%{http_code}' --cacert " +
                shellQuote(env.dir + "/pki/root-ca.pem") + " -H @" + dir +
                "/auth -H 'Content-Type: application/pdf' --data-binary @" +
                shellQuote(samplePdf()) + " 'https://127.0.0.1:" + serve.port +
                "/api/v1/sign/pdf?credential=officer-1&level=B-B'",
            &code);
        return code;
    };
    ASSERT_EQ(sign(dir + "/first.pdf"), "200");  // the key is verified and cached
    // Hold the write lock for 12 s (the service waits 5 s for it).
    std::thread locker([&] {
        run("sqlite3 " + shellQuote(env.dir + "/kyso.db") +
            " 'BEGIN EXCLUSIVE; SELECT count(*) FROM audit;' '.shell sleep 12' 'COMMIT;'");
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    EXPECT_EQ(sign(dir + "/second.pdf"), "503");
    const std::string body = readFile(dir + "/second.pdf");
    EXPECT_NE(body.find("audit.unavailable"), std::string::npos) << body;
    EXPECT_EQ(body.find("%PDF"), std::string::npos);
    locker.join();
    // The lock released, signing and the chain are fine again.
    EXPECT_EQ(sign(dir + "/third.pdf"), "200");
    ::kill(serve.pid, SIGTERM);
    int status = 0;
    ::waitpid(serve.pid, &status, 0);
    AuditFixture f{env.dir, env.dir + "/kyso.db", serveConf("locked")};
    auto [rc, out] = auditVerify(f);
    EXPECT_EQ(rc, 0) << out;
}

// /readyz says not ready while the database cannot be written, and when a credential's
// certificate has expired.
TEST(Audit, ReadinessFollowsTheDatabaseAndTheCertificates) {
    auto& env = Env::get();
    // A credential whose certificate expired two days ago (key on the demo token).
    hsm::KeySpec spec;
    spec.label = "expired-officer";
    auto key = env.token->generateKey(spec).value();
    ca::CertificateProfile p;
    p.subject = {{"CN", "Expired Officer"}};
    p.publicKeyDer = key.publicKeyDer;
    p.digitalSignature = true;
    p.backdateSeconds = 3 * 86400;
    p.validDays = -2;  // notAfter two days ago
    const std::string cert = ca::issueCertificate(p, *env.creds->find("issuing-ca")).value();
    const std::string dir = tempDir("ready");
    writeFile(dir + "/expired.pem", ca::certificateToPem(cert));
    const std::string conf = serveConf("ready");
    const std::string base = readFile(conf);

    auto ready = [&](const ServeProcess& s, std::string* body) {
        std::string code;
        run("curl -s --max-time 30 -o " + dir + "/r.json -w '%{http_code}' --cacert " +
                shellQuote(env.dir + "/pki/root-ca.pem") + " https://127.0.0.1:" + s.port +
                "/readyz",
            &code);
        *body = readFile(dir + "/r.json");
        return code;
    };
    std::string body;
    {
        ServeProcess serve = startServe(conf);
        ASSERT_FALSE(serve.port.empty()) << readFile(serve.log);
        EXPECT_EQ(ready(serve, &body), "200") << body;
        std::thread locker([&] {
            run("sqlite3 " + shellQuote(env.dir + "/kyso.db") +
                " 'BEGIN EXCLUSIVE;' '.shell sleep 8' 'COMMIT;'");
        });
        std::this_thread::sleep_for(std::chrono::milliseconds(700));
        EXPECT_EQ(ready(serve, &body), "503");
        EXPECT_NE(body.find("\"database\":\"unavailable\""), std::string::npos) << body;
        locker.join();
        EXPECT_EQ(ready(serve, &body), "200") << body;
        ::kill(serve.pid, SIGTERM);
        int status = 0;
        ::waitpid(serve.pid, &status, 0);
    }
    writeFile(conf, base +
                        "\n[credential.expired]\nkind = officer\n"
                        "key = pkcs11:token=kyso-demo;object=expired-officer;type=private\n"
                        "certificate = " +
                        dir + "/expired.pem\n");
    ServeProcess serve = startServe(conf);
    ASSERT_FALSE(serve.port.empty()) << readFile(serve.log);
    EXPECT_EQ(ready(serve, &body), "503");
    EXPECT_NE(body.find("expired"), std::string::npos) << body;
    ::kill(serve.pid, SIGTERM);
    int status = 0;
    ::waitpid(serve.pid, &status, 0);
}

// kill -9 during concurrent signing: no committed entry is lost, the chain verifies, and every
// signed PDF a client received has its entry (a signature is sent only after its entry commits).
TEST(Audit, KilledDuringSigningLosesNothingAClientReceived) {
    auto& env = Env::get();
    const std::string conf = serveConf("crash");
    ServeProcess serve = startServe(conf);
    ASSERT_FALSE(serve.port.empty()) << readFile(serve.log);

    std::atomic<bool> stop{false};
    std::atomic<int> ok{0};
    std::mutex mu;
    std::vector<std::string> received;  // files of complete 200 answers
    std::vector<std::thread> clients;
    for (int t = 0; t < 4; ++t) {
        clients.emplace_back([&] {
            const std::string dir = tempDir("crash-client");
            writeFile(dir + "/auth", "Authorization: Bearer " + env.keys["officer-1"] + "\n");
            for (int i = 0; !stop; ++i) {
                const std::string out = dir + "/" + std::to_string(i) + ".pdf";
                std::string code;
                // A complete answer only: curl exits 0 (a transfer cut by the kill is exit 18,
                // still with status 200).
                const int rc = run("curl -s --max-time 20 --cacert " +
                                       shellQuote(env.dir + "/pki/root-ca.pem") + " -H @" + dir +
                                       "/auth -H 'Content-Type: application/pdf' --data-binary @" +
                                       shellQuote(samplePdf()) + " -o " + out +
                                       " -w '%{http_code}' " + "'https://127.0.0.1:" + serve.port +
                                       "/api/v1/sign/pdf?credential=officer-1&level=B-B'",
                                   &code);
                if (rc == 0 && code == "200") {
                    std::lock_guard lk(mu);
                    received.push_back(out);
                    ++ok;
                }
            }
        });
    }
    for (int i = 0; i < 1500 && ok < 12; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_GE(ok.load(), 12) << "no signatures before the kill";
    ASSERT_EQ(::kill(serve.pid, SIGKILL), 0);
    int status = 0;
    ::waitpid(serve.pid, &status, 0);
    stop = true;
    for (auto& c : clients) {
        c.join();
    }

    AuditFixture f{env.dir, env.dir + "/kyso.db", conf};
    auto [rc, out] = auditVerify(f);
    EXPECT_EQ(rc, 0) << out;
    std::string details;
    run("sqlite3 " + shellQuote(f.db) + " \"SELECT detail FROM audit WHERE type = 'sign.pdf'\"",
        &details);
    for (const auto& file : received) {
        EXPECT_NE(details.find(sha256Hex(readFile(file))), std::string::npos)
            << file << " was received but has no audit entry";
    }

    // The service starts again on that database, and the chain still verifies after it.
    ServeProcess again = startServe(conf);
    ASSERT_FALSE(again.port.empty()) << readFile(again.log);
    ASSERT_EQ(::kill(again.pid, SIGTERM), 0);
    ::waitpid(again.pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << readFile(again.log);
    auto [rc2, out2] = auditVerify(f);
    EXPECT_EQ(rc2, 0) << out2;
}

}  // namespace
}  // namespace kyso::test
