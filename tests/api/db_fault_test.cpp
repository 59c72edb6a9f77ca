// Database faults (issue 9, docs/FAULTS.md "Database faults"): a `kyso serve` whose database
// fills its filesystem (a small tmpfs, filled until ENOSPC) or whose files are made immutable
// (chattr +i, which binds root too). Every signing operation is refused with 503 problem+json and
// no signature; verification, stored receipts, /healthz keep working; /readyz says the database
// is unavailable; once the fault is gone, signing works again without a restart. Afterwards the
// audit chain verifies with `kyso audit verify` and holds an entry for every signature a client
// received and for nothing else, and receipt numbers have no gap.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <set>

#include "kyso/api/audit.h"
#include "kyso/hsm/encoding.h"
#include "rest_env.h"

namespace kyso::test {
namespace {

namespace fs = std::filesystem;

std::string sha256Hex(const std::string& data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    ::EVP_Digest(data.data(), data.size(), md, &len, ::EVP_sha256(), nullptr);
    return hsm::hexOf(md, len);
}

// A tmpfs of `size` mounted on a fresh directory; unmounted when it goes out of scope (lazily:
// whatever a failed test left open there does not keep it mounted).
class Tmpfs {
  public:
    explicit Tmpfs(const std::string& size) : m_dir(tempDir("dbfault-mnt") + "/fs") {
        fs::create_directory(m_dir);
        const std::string options = "size=" + size + ",mode=0700";
        if (::mount("kyso-dbfault", m_dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV,
                    options.c_str()) == 0) {
            m_mounted = true;
        } else {
            m_error = std::strerror(errno);
        }
    }
    ~Tmpfs() {
        if (m_mounted) {
            ::umount2(m_dir.c_str(), MNT_DETACH);
        }
    }
    Tmpfs(const Tmpfs&) = delete;
    Tmpfs& operator=(const Tmpfs&) = delete;

    bool mounted() const { return m_mounted; }
    const std::string& error() const { return m_error; }
    const std::string& dir() const { return m_dir; }

  private:
    std::string m_dir;
    bool m_mounted = false;
    std::string m_error;
};

// A file that fills its filesystem: written until write(2) fails with ENOSPC even for one byte.
// Removed when it goes out of scope.
class Filler {
  public:
    explicit Filler(std::string path) : m_path(std::move(path)) {
        const int fd = ::open(m_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) {
            m_error = std::string("open: ") + std::strerror(errno);
            return;
        }
        const std::vector<char> block(1 << 20, 'F');
        std::size_t chunk = block.size();
        for (;;) {
            const ssize_t n = ::write(fd, block.data(), chunk);
            if (n > 0 || (n < 0 && errno == EINTR)) {
                continue;
            }
            if (n < 0 && errno == ENOSPC && chunk > 1) {
                chunk /= 16;
                chunk = chunk == 0 ? 1 : chunk;
                continue;
            }
            if (n < 0 && errno == ENOSPC) {
                m_full = true;
            } else {
                m_error = std::string("write: ") + (n < 0 ? std::strerror(errno) : "returned 0");
            }
            break;
        }
        ::close(fd);
    }
    ~Filler() { remove(); }
    Filler(const Filler&) = delete;
    Filler& operator=(const Filler&) = delete;

    void remove() {
        if (!m_path.empty()) {
            ::unlink(m_path.c_str());
            m_path.clear();
        }
    }
    bool full() const { return m_full; }
    const std::string& error() const { return m_error; }

  private:
    std::string m_path;
    bool m_full = false;
    std::string m_error;
};

// chattr +i on files (no write, not even by root: EPERM), undone when it goes out of scope.
class Immutable {
  public:
    explicit Immutable(std::vector<std::string> files) : m_files(std::move(files)) {
        for (const auto& f : m_files) {
            std::string out;
            if (run("chattr +i " + shellQuote(f), &out) != 0) {
                m_error += f + ": " + out;
            }
        }
    }
    ~Immutable() { undo(); }
    Immutable(const Immutable&) = delete;
    Immutable& operator=(const Immutable&) = delete;

    void undo() {
        for (const auto& f : m_files) {
            run("chattr -i " + shellQuote(f));
        }
        m_files.clear();
    }
    const std::string& error() const { return m_error; }

  private:
    std::vector<std::string> m_files;
    std::string m_error;
};

// `kyso serve` as a child; stopped (SIGTERM, then SIGKILL after 20 s) when it goes out of scope.
class Serve {
  public:
    explicit Serve(const std::string& conf) : m_p(startServe(conf)) {}
    ~Serve() { stop(); }
    Serve(const Serve&) = delete;
    Serve& operator=(const Serve&) = delete;

    const std::string& port() const { return m_p.port; }
    std::string log() const { return readFile(m_p.log); }
    // True while the process runs (it has not crashed or exited).
    bool running() {
        int status = 0;
        return m_p.pid > 0 && ::waitpid(m_p.pid, &status, WNOHANG) == 0;
    }
    // Stops it; the wait status (-1 when it was not running).
    int stop() {
        if (m_p.pid <= 0) {
            return -1;
        }
        ::kill(m_p.pid, SIGTERM);
        int status = 0;
        for (int i = 0; i < 400; ++i) {
            if (::waitpid(m_p.pid, &status, WNOHANG) == m_p.pid) {
                m_p.pid = -1;
                return status;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        ::kill(m_p.pid, SIGKILL);
        ::waitpid(m_p.pid, &status, 0);
        m_p.pid = -1;
        return status;
    }

  private:
    ServeProcess m_p;
};

std::string receiptBody(const std::string& tx) {
    return R"({"payer":{"name":"Nguyễn Văn An","identityNumber":"001203004567"},)"
           R"("procedureCode":"2.000889","items":[{"description":"Lệ phí hộ tịch","amount":)"
           R"(150000}],"total":150000,"currency":"VND","payment":{"channel":"vnpay",)"
           R"("transactionId":")" +
           tx + R"(","paidAt":"2026-11-25T09:30:00+07:00"}})";
}

std::string sql(const std::string& db, const std::string& query) {
    std::string out;
    EXPECT_EQ(run("sqlite3 " + shellQuote(db) + " " + shellQuote(query), &out), 0) << out;
    return out;
}

// A database at DB with API keys of the demo's principals (names and roles) and the demo CA's
// records of what it issued and revoked (the service answers its own CA's OCSP requests from its
// database); closed on return, before a service opens it. The keys by name.
std::map<std::string, std::string> makeDatabase(const std::string& db) {
    std::map<std::string, std::string> keys;
    {
        auto store = api::Store::open(db);
        EXPECT_TRUE(store.ok()) << store.error().detail;
        if (!store) {
            return keys;
        }
        for (const auto& [name, role] : {std::pair{"officer-1", policies::Role::Officer},
                                         std::pair{"portal", policies::Role::Portal},
                                         std::pair{"admin", policies::Role::Admin}}) {
            keys[name] = (*store)->createApiKey(name, role).value();
        }
    }
    EXPECT_EQ(run("sqlite3 " + shellQuote(db) + " " +
                  shellQuote("ATTACH '" + Env::get().dir +
                             "/kyso.db' AS demo; INSERT INTO ca_issued SELECT * FROM "
                             "demo.ca_issued; INSERT INTO ca_revoked SELECT * FROM "
                             "demo.ca_revoked;")),
              0);
    return keys;
}

// The demo's configuration for a `kyso serve` on the database DB.
std::string confFor(const std::string& tag, const std::string& db) {
    const std::string conf = serveConf(tag);
    std::string text = readFile(conf);
    const auto at = text.find("path = kyso.db");
    if (at == std::string::npos) {
        throw std::runtime_error("the demo configuration names no kyso.db");
    }
    text.replace(at, 14, "path = " + db);
    writeFile(conf, text);
    return conf;
}

// Polls /readyz of BASE until it answers 200, for up to 20 s; its last status.
int waitReady(const std::string& ca, const std::string& base) {
    int status = 0;
    for (int i = 0; i < 40 && status != 200; ++i) {
        status = curlRequest(ca, base, "GET", "/readyz").status;
        if (status != 200) {
            std::this_thread::sleep_for(std::chrono::milliseconds(500));
        }
    }
    return status;
}

// What the fault scenario needs from the test: where the database is, how to break it, how to
// mend it.
struct Fault {
    std::string tag;
    std::string db;                // the database file (made here, with its API keys)
    std::function<void()> inject;  // may fail the test (ASSERT)
    std::function<void()> undo;    // undoes `inject`
    std::string signingCode;       // the problem code of a refused signature
    std::string cause;             // what SQLite says, in the service log
};

// One fault, start to end (see the file comment).
void signingRefusedReadsWorkThenRecovers(const Fault& f) {
    auto& env = Env::get();
    auto keys = makeDatabase(f.db);
    ASSERT_EQ(keys.size(), 3u);
    const std::string conf = confFor(f.tag, f.db);
    Serve serve(conf);
    ASSERT_FALSE(serve.port().empty()) << serve.log();
    const std::string base = "https://127.0.0.1:" + serve.port();
    const std::string ca = env.dir + "/pki/root-ca.pem";
    const std::string dir = tempDir("dbfault-" + f.tag);
    auto call = [&](const std::string& method, const std::string& path, const std::string& key,
                    const std::string& body = "", const std::string& type = "",
                    const std::string& args = "") {
        return curlRequest(ca, base, method, path, key, body, type, "", args);
    };
    writeFile(dir + "/data.bin", "Tờ khai lệ phí\n" + std::string(10000, 'x'));
    ASSERT_EQ(
        run("openssl ts -query -data " + dir + "/data.bin -sha256 -cert -out " + dir + "/q.tsq"),
        0);
    // Every signature a client received, by the digest its audit entry records.
    std::set<std::string> received;
    auto signPdf = [&] {
        return call("POST", "/api/v1/sign/pdf?credential=officer-1&level=B-B", keys["officer-1"],
                    samplePdf(), "application/pdf");
    };
    auto signCms = [&] {
        return call("POST", "/api/v1/sign/cms?credential=officer-1&level=B-B", keys["officer-1"],
                    dir + "/data.bin", "application/octet-stream");
    };
    auto timestamp = [&] {
        return call("POST", "/tsa", "", dir + "/q.tsq", "application/timestamp-query");
    };
    auto receipt = [&](const std::string& tx) {
        writeFile(dir + "/" + tx + ".json", receiptBody(tx));
        return call("POST", "/api/v1/receipts", keys["portal"], dir + "/" + tx + ".json",
                    "application/json");
    };
    auto readyz = [&] { return call("GET", "/readyz", ""); };
    std::vector<std::string> receipts;  // ids of the receipts a client received

    // Before the fault: everything works.
    auto pdf = signPdf();
    ASSERT_EQ(pdf.status, 200) << pdf.body;
    ASSERT_EQ(pdf.body.rfind("%PDF", 0), 0u);
    writeFile(dir + "/signed.pdf", pdf.body);
    received.insert(sha256Hex(pdf.body));
    auto cms = signCms();
    ASSERT_EQ(cms.status, 200) << cms.body;
    received.insert(sha256Hex(cms.body));
    auto tsr = timestamp();
    ASSERT_EQ(tsr.status, 200) << tsr.body;
    received.insert(sha256Hex(tsr.body));
    auto first = receipt("VNP-DBF-1");
    ASSERT_EQ(first.status, 201) << first.body;
    const std::string firstId = first.json()->getValue<std::string>("id");
    EXPECT_EQ(first.json()->getValue<Poco::UInt64>("number"), 1u);
    receipts.push_back(firstId);
    EXPECT_EQ(readyz().status, 200);

    f.inject();
    if (::testing::Test::HasFatalFailure()) {
        return;
    }

    // Signing is refused: 503 problem+json with a stable code, and no signature in the body.
    const Response p0 = signPdf();
    expectProblem(p0, 503, f.signingCode);
    for (int i = 0; i < 2; ++i) {
        SCOPED_TRACE("refused, round " + std::to_string(i));
        auto p = signPdf();
        expectProblem(p, 503, f.signingCode);
        EXPECT_EQ(p.body.find("%PDF"), std::string::npos);
        auto c = signCms();
        expectProblem(c, 503, f.signingCode);
        auto t = timestamp();
        expectProblem(t, 503, f.signingCode);
        EXPECT_EQ(t.header("Content-Type").find("timestamp-reply"), std::string::npos);
        // A receipt cannot be stored, so it is not sealed away: its number is not taken.
        auto r = receipt("VNP-DBF-2");
        expectProblem(r, 503, "db.unavailable");
    }
    // Reads keep working: verification (its revocation cache cannot be written), a stored
    // receipt, liveness. Readiness says the database is unavailable.
    auto verified =
        call("POST", "/api/v1/verify", keys["portal"], dir + "/signed.pdf", "application/pdf");
    ASSERT_EQ(verified.status, 200) << verified.body;
    EXPECT_EQ(verified.json()->getValue<std::string>("indication"), "TOTAL_PASSED")
        << verified.body;
    auto stored = call("GET", "/api/v1/receipts/" + firstId, "");
    ASSERT_EQ(stored.status, 200) << stored.body;
    EXPECT_EQ(stored.json()->getValue<Poco::UInt64>("number"), 1u);
    EXPECT_EQ(call("GET", "/healthz", "").status, 200);
    auto notReady = readyz();
    EXPECT_EQ(notReady.status, 503) << notReady.body;
    EXPECT_NE(notReady.body.find("\"database\":\"unavailable\""), std::string::npos)
        << notReady.body;
    EXPECT_TRUE(serve.running()) << serve.log();
    // The operator learns why from the service log; the client only gets the code.
    const std::string log = serve.log();
    EXPECT_NE(log.find("audit append failed: the result is withheld"), std::string::npos) << log;
    EXPECT_NE(log.find(f.cause), std::string::npos) << log;
    EXPECT_EQ(p0.body.find(f.cause), std::string::npos) << p0.body;

    f.undo();

    // Recovery without a restart: ready again within 20 s, then every operation works.
    ASSERT_EQ(waitReady(ca, base), 200) << "not ready 20 s after the fault was removed\n"
                                        << serve.log();
    auto pdf2 = signPdf();
    ASSERT_EQ(pdf2.status, 200) << pdf2.body;
    received.insert(sha256Hex(pdf2.body));
    auto cms2 = signCms();
    ASSERT_EQ(cms2.status, 200) << cms2.body;
    received.insert(sha256Hex(cms2.body));
    auto tsr2 = timestamp();
    ASSERT_EQ(tsr2.status, 200) << tsr2.body;
    EXPECT_EQ(tsr2.header("Content-Type"), "application/timestamp-reply");
    received.insert(sha256Hex(tsr2.body));
    // The receipt refused during the fault gets the next number: no gap.
    auto second = receipt("VNP-DBF-2");
    ASSERT_EQ(second.status, 201) << second.body;
    EXPECT_EQ(second.json()->getValue<Poco::UInt64>("number"), 2u);
    receipts.push_back(second.json()->getValue<std::string>("id"));

    EXPECT_TRUE(serve.running()) << serve.log();
    const int status = serve.stop();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "kyso serve did not stop cleanly (wait status " << status << ")\n"
        << serve.log();

    // The chain verifies, and its signing entries are exactly the results clients received.
    std::string out;
    EXPECT_EQ(run(std::string(KYSO_BINARY) + " audit verify --config " + shellQuote(conf), &out), 0)
        << out;
    std::set<std::string> entered;
    std::istringstream rows(sql(f.db,
                                "SELECT coalesce(json_extract(detail, '$.sha256'),"
                                " json_extract(detail, '$.\"reply.sha256\"')) FROM audit"
                                " WHERE outcome = 'ok' AND type IN"
                                " ('sign.pdf', 'sign.cms', 'timestamp')"));
    for (std::string line; std::getline(rows, line);) {
        entered.insert(line);
    }
    EXPECT_EQ(entered, received);
    std::string sealed;
    for (const auto& id : receipts) {
        sealed += id + "\n";
    }
    EXPECT_EQ(sql(f.db,
                  "SELECT json_extract(detail, '$.receipt') FROM audit"
                  " WHERE type = 'receipt.seal' AND outcome = 'ok' ORDER BY seq"),
              sealed);
    EXPECT_EQ(sql(f.db, "SELECT number FROM receipts ORDER BY number"), "1\n2\n");
    EXPECT_EQ(sql(f.db, "PRAGMA integrity_check"), "ok\n");
}

// The database on a 6 MiB tmpfs, filled until ENOSPC.
TEST(DbFault, FullDiskRefusesSigningKeepsReadsAndRecovers) {
    Tmpfs tmpfs("6m");
    ASSERT_TRUE(tmpfs.mounted()) << "cannot mount a tmpfs on " << tmpfs.dir() << ": "
                                 << tmpfs.error()
                                 << " (the database fault tests run as root, with mount(2))";
    std::optional<Filler> filler;
    Fault f;
    f.tag = "dbfault-full";
    f.db = tmpfs.dir() + "/kyso.db";
    f.signingCode = "audit.unavailable";
    f.cause = "database or disk is full";  // SQLITE_FULL
    f.inject = [&] {
        filler.emplace(tmpfs.dir() + "/filler");
        ASSERT_TRUE(filler->full()) << filler->error();
        struct statvfs st {};
        ASSERT_EQ(::statvfs(tmpfs.dir().c_str(), &st), 0);
        EXPECT_EQ(st.f_bavail, 0u);
    };
    f.undo = [&] { filler.reset(); };
    signingRefusedReadsWorkThenRecovers(f);
}

// The database file and its write-ahead log made immutable under the open connection (chattr
// +i: EPERM for every write, root's too). A read-only remount cannot be used for this: Linux
// refuses it (EBUSY) while SQLite holds the files open for writing.
TEST(DbFault, ImmutableDatabaseRefusesSigningKeepsReadsAndRecovers) {
    std::optional<Immutable> immutable;
    Fault f;
    f.tag = "dbfault-ro";
    f.db = tempDir("dbfault-ro") + "/kyso.db";
    f.signingCode = "audit.unavailable";
    f.cause = "disk I/O error";  // SQLITE_IOERR: write(2) fails with EPERM
    f.inject = [&] {
        ASSERT_TRUE(fs::exists(f.db + "-wal"));
        immutable.emplace(std::vector<std::string>{f.db, f.db + "-wal"});
        ASSERT_TRUE(immutable->error().empty())
            << "chattr +i failed: " << immutable->error()
            << " (the database fault tests run as root on a filesystem with the immutable flag)";
    };
    f.undo = [&] { immutable.reset(); };
    signingRefusedReadsWorkThenRecovers(f);
}

// Started on a database file that cannot be written (here immutable), `kyso serve` does not come
// up half-working: it cannot record its start in the audit log, says so and exits 69
// (EX_UNAVAILABLE), so that a supervisor retries; once the file is writable it starts and signs.
TEST(DbFault, ServeRefusesToStartOnAnImmutableDatabase) {
    auto& env = Env::get();
    const std::string db = tempDir("dbfault-ro-start") + "/kyso.db";
    auto keys = makeDatabase(db);
    ASSERT_EQ(keys.size(), 3u);
    ASSERT_FALSE(fs::exists(db + "-wal"));  // closed cleanly: everything is in the file
    const std::string conf = confFor("dbfault-ro-start", db);
    std::optional<Immutable> immutable;
    immutable.emplace(std::vector<std::string>{db});
    ASSERT_TRUE(immutable->error().empty()) << "chattr +i failed: " << immutable->error();
    std::string out;
    // `timeout` ends a service that came up after all (exit 124: the test fails).
    EXPECT_EQ(run("timeout 60 " + std::string(KYSO_BINARY) + " serve --config " + shellQuote(conf) +
                      " </dev/null",
                  &out),
              69)
        << out;
    EXPECT_NE(out.find("audit.unavailable"), std::string::npos) << out;
    EXPECT_EQ(out.find("listening on"), std::string::npos) << out;

    immutable.reset();
    Serve serve(conf);
    ASSERT_FALSE(serve.port().empty()) << serve.log();
    auto pdf = curlRequest(env.dir + "/pki/root-ca.pem", "https://127.0.0.1:" + serve.port(),
                           "POST", "/api/v1/sign/pdf?credential=officer-1&level=B-B",
                           keys["officer-1"], samplePdf(), "application/pdf");
    ASSERT_EQ(pdf.status, 200) << pdf.body;
    const int status = serve.stop();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << serve.log();
    EXPECT_EQ(run(std::string(KYSO_BINARY) + " audit verify --config " + shellQuote(conf), &out), 0)
        << out;
}

// A Store opened on a file it cannot write gets a read-only connection from SQLite (which falls
// back silently and never opens the file again by itself). The store opens the connection again
// at the next write after SQLite said "read-only", so making the file writable is enough: before,
// the process stayed read-only until it was restarted.
TEST(DbFault, ReadOnlyConnectionIsOpenedAgainOnceTheFileIsWritable) {
    const std::string db = tempDir("dbfault-ro-store") + "/kyso.db";
    ASSERT_EQ(makeDatabase(db).size(), 3u);
    std::optional<Immutable> immutable;
    immutable.emplace(std::vector<std::string>{db});
    ASSERT_TRUE(immutable->error().empty()) << "chattr +i failed: " << immutable->error();
    auto store = api::Store::open(db);
    ASSERT_TRUE(store.ok()) << store.error().detail;
    {
        api::AuditLog log(**store, nullptr);
        auto refused = log.append({"test.event", "tester", "", "ok", "{}"});
        ASSERT_FALSE(refused.ok());
        EXPECT_EQ(refused.error().code, "audit.unavailable");
        EXPECT_FALSE((*store)->writable());
        EXPECT_EQ((*store)->listApiKeys().size(), 3u);  // reads work

        immutable.reset();
        EXPECT_TRUE((*store)->writable());
        auto appended = log.append({"test.event", "tester", "", "ok", "{}"});
        ASSERT_TRUE(appended.ok()) << appended.error().detail;
        EXPECT_EQ(*appended, 1u);
    }
    EXPECT_EQ((*store)->auditRows(0, 10).size(), 1u);
    auto key = (*store)->createApiKey("after", policies::Role::Clerk);
    EXPECT_TRUE(key.ok());
}

}  // namespace
}  // namespace kyso::test
