#include "kyso/api/store.h"

#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/SQLite/SQLiteException.h>
#include <Poco/Data/Session.h>
#include <Poco/Data/Statement.h>
#include <botan/argon2.h>
#include <botan/base64.h>
#include <botan/hash.h>
#include <botan/hex.h>
#include <botan/system_rng.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <utility>

#include "kyso/hsm/secret.h"
#include "report_json.h"

namespace kyso::api {

using namespace Poco::Data::Keywords;

namespace {

constexpr std::size_t kArgonMemoryKiB = 19456;
constexpr std::size_t kArgonIterations = 2;
constexpr std::size_t kArgonParallelism = 1;
constexpr auto kCacheTtl = std::chrono::seconds(60);

std::string base64url(const std::vector<std::uint8_t>& bytes) {
    std::string s = Botan::base64_encode(bytes);
    for (char& c : s) {
        c = c == '+' ? '-' : c == '/' ? '_' : c;
    }
    while (!s.empty() && s.back() == '=') {
        s.pop_back();
    }
    return s;
}

std::string sha256(std::string_view s) {
    auto h = Botan::HashFunction::create_or_throw("SHA-256");
    h->update(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
    auto out = h->final();
    return std::string(out.begin(), out.end());
}

std::string nowIso() {
    return isoUtc(std::time(nullptr));
}

std::string hexOf(std::string_view bytes) {
    return Botan::hex_encode(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(),
                             false);
}

// A string that held secret material, wiped before it is freed.
struct WipedString {
    std::string s;
    ~WipedString() { hsm::secureWipe(s.data(), s.size()); }
};

}  // namespace

std::string argon2idHash(std::string_view secret) {
    Botan::System_RNG rng;
    return Botan::argon2_generate_pwhash(secret.data(), secret.size(), rng, kArgonParallelism,
                                         kArgonMemoryKiB, kArgonIterations, 2 /* Argon2id */);
}

bool argon2idCheck(std::string_view secret, const std::string& hash) {
    // Botan compares the recomputed hash with same_mem (constant time). A malformed stored hash
    // throws: that is a mismatch, not a crash.
    try {
        return Botan::argon2_check_pwhash(secret.data(), secret.size(), hash);
    } catch (const std::exception&) {
        return false;
    }
}

namespace {

// A connection to PATH with the store's settings.
std::unique_ptr<Poco::Data::Session> connect(const std::string& path) {
    auto session = std::make_unique<Poco::Data::Session>("SQLite", path);
    auto& s = *session;
    s << "PRAGMA journal_mode=WAL", now;
    s << "PRAGMA synchronous=FULL", now;
    s << "PRAGMA busy_timeout=5000", now;
    // The citizens' tables reference each other; SQLite checks that only when asked to.
    s << "PRAGMA foreign_keys=ON", now;
    return session;
}

}  // namespace

struct Store::Impl {
    std::mutex mu;  // Poco::Data sessions are not thread-safe
    std::string path;
    std::unique_ptr<Poco::Data::Session> session;
    // Set when a write failed (a full disk, an unwritable file, an I/O error, the write lock not
    // granted in time), cleared by the next write that commits. While it is set, writable()
    // proves the database with a write that commits: on a full disk SQLite still grants the
    // write lock, so taking it proves nothing.
    std::atomic<bool> writeFailed{false};
    // SQLite opened the file read-only (it could not be opened for writing) or said it is
    // read-only: the next write opens the connection again, so that a file made writable again
    // is written without a restart. An open connection never re-opens its file by itself.
    bool reopen = false;

    struct Cached {
        std::string secretHash;
        policies::Principal principal;
        std::chrono::steady_clock::time_point until;
    };
    std::mutex cacheMu;
    std::map<std::string, Cached> cache;
    // (key id, SHA-256 of the secret) pairs whose Argon2id check is running (under cacheMu): one
    // check of the same key at a time, so that when a busy key's cache entry expires the threads
    // that present it wait for one check (19 MiB, tens of ms) instead of all running their own
    // at once. A different secret for the same id (a wrong one) is checked on its own and never
    // makes the right one wait.
    std::set<std::pair<std::string, std::string>> checking;
    std::condition_variable checked;
};

namespace {

// What a failed write leaves behind (the caller holds impl.mu): writable() then needs a write
// that commits, and a connection SQLite says is read-only is opened again before the next write.
void noteWriteFailure(Store::Impl& impl, const std::exception& e) {
    impl.writeFailed = true;
    if (dynamic_cast<const Poco::Data::SQLite::ReadOnlyException*>(&e) != nullptr) {
        impl.reopen = true;
    }
}

// Rolls back what is open. SQLite rolls a transaction back by itself on SQLITE_FULL and
// SQLITE_IOERR, and then ROLLBACK says that no transaction is active: nothing to do either way.
void rollbackQuietly(Poco::Data::Session& s) {
    try {
        s << "ROLLBACK", now;
    } catch (const Poco::Exception&) {
    }
}

// BEGIN IMMEDIATE (the caller holds impl.mu), on a connection opened again first if it was
// found read-only. A transaction that an earlier failure left open (a ROLLBACK that failed) would
// refuse every later BEGIN: it is rolled back and BEGIN tried once more, so the connection never
// stays wedged. Throws what SQLite reports.
void beginWrite(Store::Impl& impl) {
    if (impl.reopen) {
        // On failure the old connection stays (reads keep working) and the next write tries again.
        impl.session = connect(impl.path);
        impl.reopen = false;
    }
    auto& s = *impl.session;
    try {
        s << "BEGIN IMMEDIATE", now;
    } catch (const Poco::Exception& e) {
        if (e.displayText().find("within a transaction") == std::string::npos) {
            throw;
        }
        rollbackQuietly(s);
        s << "BEGIN IMMEDIATE", now;
    }
}

// COMMIT; a write that commits ends the failure that writable() reports.
void commitWrite(Store::Impl& impl) {
    *impl.session << "COMMIT", now;
    impl.writeFailed = false;
}

}  // namespace

Store::Store(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::open(const std::string& path) {
    static std::once_flag once;
    std::call_once(once, [] { Poco::Data::SQLite::Connector::registerConnector(); });
    auto impl = std::make_unique<Impl>();
    impl->path = path;
    try {
        impl->session = connect(path);
        auto& s = *impl->session;
        // What writable() writes to prove the database takes writes again.
        s << "CREATE TABLE IF NOT EXISTS write_probe (id INTEGER PRIMARY KEY CHECK (id = 1),"
             " at INTEGER NOT NULL)",
            now;
        s << "CREATE TABLE IF NOT EXISTS api_keys ("
             " id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL,"
             " hash TEXT NOT NULL, created TEXT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0)",
            now;
        s << "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, next INTEGER NOT NULL)",
            now;
        s << "CREATE TABLE IF NOT EXISTS revocation_cache (key TEXT PRIMARY KEY,"
             " der TEXT NOT NULL, valid_until INTEGER NOT NULL)",
            now;
        s << "CREATE TABLE IF NOT EXISTS ca_issued (ca TEXT NOT NULL, serial TEXT NOT NULL,"
             " subject TEXT NOT NULL, PRIMARY KEY (ca, serial))",
            now;
        s << "CREATE TABLE IF NOT EXISTS ca_revoked (ca TEXT NOT NULL, serial TEXT NOT NULL,"
             " revoked_at INTEGER NOT NULL, reason INTEGER NOT NULL, PRIMARY KEY (ca, serial))",
            now;
        s << "CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY, time TEXT NOT NULL,"
             " type TEXT NOT NULL, principal TEXT NOT NULL, credential TEXT NOT NULL,"
             " outcome TEXT NOT NULL, detail TEXT NOT NULL, prev_hash TEXT NOT NULL,"
             " hash TEXT NOT NULL)",
            now;
        s << "CREATE TABLE IF NOT EXISTS audit_checkpoints (seq INTEGER PRIMARY KEY,"
             " hash TEXT NOT NULL, time TEXT NOT NULL, signature TEXT NOT NULL)",
            now;
        // Sealed payment receipts (issue 8). A receipt's number is its agency's next one for the
        // year, taken in the transaction that stores it: gap-free and never reused.
        s << "CREATE TABLE IF NOT EXISTS receipt_sequences (agency TEXT NOT NULL,"
             " year INTEGER NOT NULL, last INTEGER NOT NULL, PRIMARY KEY (agency, year))",
            now;
        s << "CREATE TABLE IF NOT EXISTS receipts (id TEXT PRIMARY KEY, agency TEXT NOT NULL,"
             " year INTEGER NOT NULL, number INTEGER NOT NULL, idempotency_key TEXT,"
             " transaction_key TEXT NOT NULL, format TEXT NOT NULL, sealed TEXT NOT NULL,"
             " digest TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'valid'"
             " CHECK (status IN ('valid','cancelled')), created TEXT NOT NULL,"
             " UNIQUE (agency, year, number), UNIQUE (agency, transaction_key))",
            now;
        s << "CREATE UNIQUE INDEX IF NOT EXISTS receipts_idempotency ON receipts"
             " (agency, idempotency_key) WHERE idempotency_key IS NOT NULL",
            now;
        s << "CREATE INDEX IF NOT EXISTS receipts_digest ON receipts (digest)", now;
        // Citizens' remote-signing credentials (issue 7). Binary values are stored as hex text:
        // lookups and equality then never depend on how a binding typed them.
        s << "CREATE TABLE IF NOT EXISTS citizens (id TEXT PRIMARY KEY,"
             " identity_number TEXT NOT NULL, full_name TEXT NOT NULL, province TEXT NOT NULL,"
             " contact TEXT NOT NULL, portal TEXT NOT NULL, key_label TEXT NOT NULL,"
             " certificate TEXT NOT NULL DEFAULT '',"
             " status TEXT NOT NULL CHECK (status IN ('active', 'revoked')),"
             " created TEXT NOT NULL)",
            now;
        // At most one live credential per person, whoever writes the file.
        s << "CREATE UNIQUE INDEX IF NOT EXISTS citizens_live_identity"
             " ON citizens (identity_number) WHERE status <> 'revoked'",
            now;
        s << "CREATE INDEX IF NOT EXISTS citizens_portal ON citizens (portal, created)", now;
        s << "CREATE TABLE IF NOT EXISTS citizen_activation ("
             " credential TEXT PRIMARY KEY REFERENCES citizens (id) ON DELETE CASCADE,"
             " pin_hash TEXT NOT NULL, must_change_pin INTEGER NOT NULL,"
             " totp_secret TEXT NOT NULL,"  // hex of the sealed key (see store.h)
             " failed_attempts INTEGER NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),"
             " locked INTEGER NOT NULL DEFAULT 0, last_totp_step INTEGER NOT NULL DEFAULT -1)",
            now;
        s << "CREATE TABLE IF NOT EXISTS csc_sads (sad TEXT PRIMARY KEY,"  // hex SHA-256
             " credential TEXT NOT NULL REFERENCES citizens (id) ON DELETE CASCADE,"
             " hash_algorithm TEXT NOT NULL, remaining INTEGER NOT NULL CHECK (remaining >= 0),"
             " expires INTEGER NOT NULL)",
            now;
        s << "CREATE INDEX IF NOT EXISTS csc_sads_expires ON csc_sads (expires)", now;
        // One row per authorized hash: the primary key refuses a hash listed twice.
        s << "CREATE TABLE IF NOT EXISTS csc_sad_hashes ("
             " sad TEXT NOT NULL REFERENCES csc_sads (sad) ON DELETE CASCADE,"
             " hash TEXT NOT NULL, used INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (sad, hash))",
            now;
    } catch (const Poco::Exception& e) {
        return Error::make("db.unavailable",
                           "cannot open database " + path + ": " + e.displayText());
    }
    return std::unique_ptr<Store>(new Store(std::move(impl)));
}

Result<std::string> Store::createApiKey(const std::string& name, policies::Role role) {
    if (name.empty() || name.size() > 128) {
        return Error::make("apikey.invalid", "an API key needs a name of 1 to 128 characters");
    }
    Botan::System_RNG rng;
    std::vector<std::uint8_t> idBytes(8);
    std::vector<std::uint8_t> secretBytes(32);
    rng.randomize(idBytes.data(), idBytes.size());
    rng.randomize(secretBytes.data(), secretBytes.size());
    const std::string id = Botan::hex_encode(idBytes, false);
    hsm::Secret secret(base64url(secretBytes));
    hsm::secureWipe(secretBytes.data(), secretBytes.size());
    const std::string hash = argon2idHash(secret.view());
    std::string roleName = policies::roleName(role);
    std::string created = nowIso();
    try {
        std::lock_guard lk(m_impl->mu);
        std::string n = name;
        std::string h = hash;
        std::string i = id;
        *m_impl->session << "INSERT INTO api_keys (id, name, role, hash, created) "
                            "VALUES (?, ?, ?, ?, ?)",
            use(i), use(n), use(roleName), use(h), use(created), now;
    } catch (const Poco::Exception& e) {
        return Error::make("db.unavailable", "cannot store the API key: " + e.displayText());
    }
    return "kyso_" + id + "_" + std::string(secret.view());
}

std::vector<ApiKeyInfo> Store::listApiKeys() {
    std::vector<std::string> ids, names, roles, created;
    std::vector<int> revoked;
    std::lock_guard lk(m_impl->mu);
    *m_impl->session
        << "SELECT id, name, role, created, revoked FROM api_keys ORDER BY created, id",
        into(ids), into(names), into(roles), into(created), into(revoked), now;
    std::vector<ApiKeyInfo> out;
    for (std::size_t i = 0; i < ids.size(); ++i) {
        out.push_back({ids[i], names[i], roles[i], created[i], revoked[i] != 0});
    }
    return out;
}

Status Store::revokeApiKey(const std::string& idOrName) {
    std::size_t changed = 0;
    try {
        std::lock_guard lk(m_impl->mu);
        std::string a = idOrName;
        std::string b = idOrName;
        Poco::Data::Statement st(*m_impl->session);
        st << "UPDATE api_keys SET revoked = 1 WHERE (id = ? OR name = ?) AND revoked = 0", use(a),
            use(b);
        changed = st.execute();
    } catch (const Poco::Exception& e) {
        return Error::make("db.unavailable", "cannot revoke: " + e.displayText());
    }
    if (changed == 0) {
        return Error::make("apikey.unknown", "no active API key with that id or name");
    }
    std::lock_guard lk(m_impl->cacheMu);
    m_impl->cache.clear();
    return Ok{};
}

std::optional<policies::Principal> Store::authenticate(std::string_view key) {
    // kyso_<16 hex>_<43 base64url>
    if (key.size() != 5 + 16 + 1 + 43 || key.substr(0, 5) != "kyso_" || key[21] != '_') {
        return std::nullopt;
    }
    const std::string id(key.substr(5, 16));
    const std::string_view secret = key.substr(22);
    const std::string secretHash = sha256(secret);
    auto nowT = std::chrono::steady_clock::now();
    {
        std::unique_lock lk(m_impl->cacheMu);
        for (;;) {
            auto it = m_impl->cache.find(id);
            if (it != m_impl->cache.end() && it->second.until > nowT) {
                if (hsm::constantTimeEquals(it->second.secretHash, secretHash)) {
                    return it->second.principal;
                }
                return std::nullopt;
            }
            if (m_impl->checking.emplace(id, secretHash).second) {
                break;  // this thread checks the key
            }
            // Another thread is checking the same key: when it is done, its result is in the
            // cache if the key was right; if it was not, this thread finds no entry and checks.
            m_impl->checked.wait(lk);
            nowT = std::chrono::steady_clock::now();
        }
    }
    // Ends this thread's check of the key on every return below and wakes the waiting threads.
    struct CheckDone {
        Impl& impl;
        const std::string& id;
        const std::string& secretHash;
        ~CheckDone() {
            {
                std::lock_guard lk(impl.cacheMu);
                impl.checking.erase({id, secretHash});
            }
            impl.checked.notify_all();
        }
    } done{*m_impl, id, secretHash};
    std::vector<std::string> names, roles, hashes;
    {
        std::lock_guard lk(m_impl->mu);
        std::string i = id;
        try {
            *m_impl->session
                << "SELECT name, role, hash FROM api_keys WHERE id = ? AND revoked = 0",
                use(i), into(names), into(roles), into(hashes), now;
        } catch (const Poco::Exception&) {
            return std::nullopt;
        }
    }
    if (hashes.size() != 1) {
        return std::nullopt;
    }
    if (!argon2idCheck(secret, hashes[0])) {
        return std::nullopt;
    }
    auto role = policies::parseRole(roles[0]);
    if (!role) {
        return std::nullopt;
    }
    policies::Principal p{names[0], *role};
    std::lock_guard lk(m_impl->cacheMu);
    m_impl->cache[id] = Impl::Cached{secretHash, p, nowT + kCacheTtl};
    return p;
}

namespace {

class BlockSerials final : public signer::SerialSource {
  public:
    BlockSerials(Store::Impl& impl, std::string name, std::uint64_t block)
        : m_impl(impl), m_name(std::move(name)), m_block(block) {}

    Result<std::uint64_t> next() override {
        std::lock_guard lk(m_mu);
        if (m_next == m_end) {
            auto st = reserve();
            if (!st) {
                return st.error();
            }
        }
        return m_next++;
    }

  private:
    Status reserve() {
        std::lock_guard lk(m_impl.mu);
        try {
            beginWrite(m_impl);
            auto& s = *m_impl.session;
            std::string name = m_name;
            s << "INSERT OR IGNORE INTO counters (name, next) VALUES (?, 1)", use(name), now;
            Poco::Int64 start = 0;
            s << "SELECT next FROM counters WHERE name = ?", use(name), into(start), now;
            Poco::Int64 end = start + static_cast<Poco::Int64>(m_block);
            s << "UPDATE counters SET next = ? WHERE name = ?", use(end), use(name), now;
            commitWrite(m_impl);
            m_next = static_cast<std::uint64_t>(start);
            m_end = static_cast<std::uint64_t>(end);
        } catch (const Poco::Exception& e) {
            noteWriteFailure(m_impl, e);
            rollbackQuietly(*m_impl.session);
            return Error::make("db.unavailable",
                               "cannot reserve serial numbers: " + e.displayText());
        }
        return Ok{};
    }

    Store::Impl& m_impl;
    std::string m_name;
    std::uint64_t m_block;
    std::mutex m_mu;
    std::uint64_t m_next = 0;
    std::uint64_t m_end = 0;
};

}  // namespace

std::unique_ptr<signer::SerialSource> Store::serialSource(const std::string& name,
                                                          std::uint64_t block) {
    return std::make_unique<BlockSerials>(*m_impl, name, block == 0 ? 1 : block);
}

Status Store::revokeCertificate(const std::string& ca, const std::string& serialHex, int reason) {
    std::string c = ca;
    std::string serial = serialHex;
    Poco::Int64 when = static_cast<Poco::Int64>(std::time(nullptr));
    int r = reason;
    try {
        std::lock_guard lk(m_impl->mu);
        std::vector<std::string> existing;
        *m_impl->session << "SELECT serial FROM ca_revoked WHERE ca = ? AND serial = ?", use(c),
            use(serial), into(existing), now;
        if (!existing.empty()) {
            return Error::make("ca.already_revoked",
                               "certificate " + serialHex + " of " + ca + " is already revoked");
        }
        *m_impl->session << "INSERT INTO ca_revoked (ca, serial, revoked_at, reason) "
                            "VALUES (?, ?, ?, ?)",
            use(c), use(serial), use(when), use(r), now;
    } catch (const Poco::Exception& e) {
        return Error::make("db.unavailable", "cannot record the revocation: " + e.displayText());
    }
    return Ok{};
}

std::vector<ca::RevokedCertificate> Store::revokedCertificates(const std::string& ca) {
    std::string c = ca;
    std::vector<std::string> serials;
    std::vector<Poco::Int64> times;
    std::vector<int> reasons;
    std::lock_guard lk(m_impl->mu);
    *m_impl->session << "SELECT serial, revoked_at, reason FROM ca_revoked WHERE ca = ? "
                        "ORDER BY revoked_at, serial",
        use(c), into(serials), into(times), into(reasons), now;
    std::vector<ca::RevokedCertificate> out;
    for (std::size_t i = 0; i < serials.size(); ++i) {
        out.push_back({serials[i], static_cast<std::time_t>(times[i]),
                       static_cast<ca::RevocationReason>(reasons[i])});
    }
    return out;
}

Status Store::recordIssued(const std::string& ca, const std::string& serialHex,
                           const std::string& subject) {
    std::string c = ca;
    std::string serial = serialHex;
    std::string subj = subject;
    try {
        std::lock_guard lk(m_impl->mu);
        *m_impl->session
            << "INSERT OR IGNORE INTO ca_issued (ca, serial, subject) VALUES (?, ?, ?)",
            use(c), use(serial), use(subj), now;
    } catch (const Poco::Exception& e) {
        return Error::make("db.unavailable", "cannot record the certificate: " + e.displayText());
    }
    return Ok{};
}

ca::StatusInfo Store::certificateStatus(const std::string& ca, const std::string& serialHex) {
    std::string c = ca;
    std::string serial = serialHex;
    std::vector<std::string> issued;
    std::vector<Poco::Int64> times;
    std::vector<int> reasons;
    std::lock_guard lk(m_impl->mu);
    *m_impl->session << "SELECT serial FROM ca_issued WHERE ca = ? AND serial = ?", use(c),
        use(serial), into(issued), now;
    *m_impl->session << "SELECT revoked_at, reason FROM ca_revoked WHERE ca = ? AND serial = ?",
        use(c), use(serial), into(times), into(reasons), now;
    ca::StatusInfo info;
    if (!times.empty()) {
        info.status = ca::CertStatus::Revoked;
        info.revokedAt = static_cast<std::time_t>(times[0]);
        info.reason = static_cast<ca::RevocationReason>(reasons[0]);
    } else if (!issued.empty()) {
        info.status = ca::CertStatus::Good;
    }
    return info;
}

namespace {

class SqliteRevocationCache final : public ca::RevocationCache {
  public:
    explicit SqliteRevocationCache(Store::Impl& impl) : m_impl(impl) {}

    std::optional<std::string> get(const std::string& key, std::time_t when) override {
        std::string k = key;
        Poco::Int64 t = static_cast<Poco::Int64>(when);
        std::vector<std::string> ders;
        try {
            std::lock_guard lk(m_impl.mu);
            *m_impl.session << "SELECT der FROM revocation_cache WHERE key = ? AND valid_until > ?",
                use(k), use(t), into(ders), now;
        } catch (const Poco::Exception&) {
            return std::nullopt;
        }
        if (ders.empty()) {
            return std::nullopt;
        }
        const auto bin = Botan::base64_decode(ders[0]);
        return std::string(bin.begin(), bin.end());
    }

    void put(const std::string& key, const std::string& der, std::time_t validUntil) override {
        std::string k = key;
        std::string b64 =
            Botan::base64_encode(reinterpret_cast<const std::uint8_t*>(der.data()), der.size());
        Poco::Int64 t = static_cast<Poco::Int64>(validUntil);
        try {
            std::lock_guard lk(m_impl.mu);
            *m_impl.session << "INSERT OR REPLACE INTO revocation_cache (key, der, valid_until) "
                               "VALUES (?, ?, ?)",
                use(k), use(b64), use(t), now;
        } catch (const Poco::Exception& e) {
            // A cache that cannot be written (a full disk, a read-only file) only costs a fetch
            // next time: verification goes on without it.
            std::lock_guard lk(m_impl.mu);
            noteWriteFailure(m_impl, e);
        }
    }

  private:
    Store::Impl& m_impl;
};

}  // namespace

std::unique_ptr<ca::RevocationCache> Store::revocationCache() {
    return std::make_unique<SqliteRevocationCache>(*m_impl);
}

Status Store::appendAudit(const AuditBuilder& build) {
    std::lock_guard lk(m_impl->mu);
    try {
        beginWrite(*m_impl);
        auto& s = *m_impl->session;
        std::vector<Poco::Int64> seqs;
        std::vector<std::string> hashes;
        s << "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", into(seqs), into(hashes), now;
        const std::uint64_t last = seqs.empty() ? 0 : static_cast<std::uint64_t>(seqs[0]);
        std::vector<AuditRow> rows = build(last, hashes.empty() ? std::string() : hashes[0]);
        for (auto& r : rows) {
            Poco::Int64 seq = static_cast<Poco::Int64>(r.seq);
            s << "INSERT INTO audit (seq, time, type, principal, credential, outcome, detail,"
                 " prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                use(seq), use(r.time), use(r.type), use(r.principal), use(r.credential),
                use(r.outcome), use(r.detail), use(r.prevHash), use(r.hash), now;
        }
        commitWrite(*m_impl);
    } catch (const Poco::Exception& e) {
        noteWriteFailure(*m_impl, e);
        rollbackQuietly(*m_impl->session);
        return Error::make("db.unavailable", "cannot append to the audit log: " + e.displayText());
    } catch (const std::exception& e) {
        rollbackQuietly(*m_impl->session);
        return Error::make("db.unavailable",
                           std::string("cannot append to the audit log: ") + e.what());
    }
    return Ok{};
}

std::vector<AuditRow> Store::auditRows(std::uint64_t after, std::size_t limit) {
    std::vector<Poco::Int64> seq;
    std::vector<std::string> time, type, principal, credential, outcome, detail, prev, hash;
    Poco::Int64 a = static_cast<Poco::Int64>(after);
    Poco::Int64 l = static_cast<Poco::Int64>(limit);
    std::lock_guard lk(m_impl->mu);
    *m_impl->session << "SELECT seq, time, type, principal, credential, outcome, detail,"
                        " prev_hash, hash FROM audit WHERE seq > ? ORDER BY seq LIMIT ?",
        use(a), use(l), into(seq), into(time), into(type), into(principal), into(credential),
        into(outcome), into(detail), into(prev), into(hash), now;
    std::vector<AuditRow> out(seq.size());
    for (std::size_t i = 0; i < seq.size(); ++i) {
        out[i] = AuditRow{static_cast<std::uint64_t>(seq[i]),
                          time[i],
                          type[i],
                          principal[i],
                          credential[i],
                          outcome[i],
                          detail[i],
                          prev[i],
                          hash[i]};
    }
    return out;
}

Status Store::addAuditCheckpoint(const AuditCheckpoint& c) {
    try {
        Poco::Int64 seq = static_cast<Poco::Int64>(c.seq);
        std::string hash = c.hash;
        std::string time = c.time;
        std::string sig = c.signature;
        std::lock_guard lk(m_impl->mu);
        try {
            *m_impl->session
                << "INSERT OR REPLACE INTO audit_checkpoints (seq, hash, time, signature)"
                   " VALUES (?, ?, ?, ?)",
                use(seq), use(hash), use(time), use(sig), now;
        } catch (const Poco::Exception& e) {
            noteWriteFailure(*m_impl, e);
            throw;
        }
        m_impl->writeFailed = false;
    } catch (const Poco::Exception& e) {
        return Error::make("db.unavailable", "cannot store the checkpoint: " + e.displayText());
    }
    return Ok{};
}

std::vector<AuditCheckpoint> Store::auditCheckpoints() {
    std::vector<Poco::Int64> seq;
    std::vector<std::string> hash, time, sig;
    std::lock_guard lk(m_impl->mu);
    *m_impl->session << "SELECT seq, hash, time, signature FROM audit_checkpoints ORDER BY seq",
        into(seq), into(hash), into(time), into(sig), now;
    std::vector<AuditCheckpoint> out(seq.size());
    for (std::size_t i = 0; i < seq.size(); ++i) {
        out[i] = AuditCheckpoint{static_cast<std::uint64_t>(seq[i]), hash[i], time[i], sig[i]};
    }
    return out;
}

bool Store::writable() {
    std::lock_guard lk(m_impl->mu);
    try {
        beginWrite(*m_impl);
        if (m_impl->writeFailed) {
            // A write failed since the last commit: only a write that commits shows that the
            // disk has room and the files can be written again.
            Poco::Int64 at = static_cast<Poco::Int64>(std::time(nullptr));
            *m_impl->session << "INSERT OR REPLACE INTO write_probe (id, at) VALUES (1, ?)",
                use(at), now;
            commitWrite(*m_impl);
        } else {
            *m_impl->session << "ROLLBACK", now;
        }
        return true;
    } catch (const Poco::Exception& e) {
        noteWriteFailure(*m_impl, e);
        rollbackQuietly(*m_impl->session);
        return false;
    }
}

// --- Citizens ------------------------------------------------------------------------------

namespace {

using Poco::Data::Session;

// Runs BODY(session) inside one write transaction (BEGIN IMMEDIATE: serialised with every other
// writer of the file) with the session lock held. An error that BODY returns, or anything it
// throws, rolls the whole transaction back, so no partial state is ever committed.
template <typename T, typename F>
Result<T> inTransaction(Store::Impl& impl, const char* what, F&& body) {
    std::lock_guard lk(impl.mu);
    const auto rollback = [&impl] { rollbackQuietly(*impl.session); };
    const auto failure = [what](const std::string& why) {
        return Error::make("db.unavailable", std::string("cannot ") + what + ": " + why);
    };
    try {
        beginWrite(impl);
    } catch (const Poco::Exception& e) {
        noteWriteFailure(impl, e);
        return failure(e.displayText());
    }
    Session& s = *impl.session;
    try {
        Result<T> r = body(s);
        if (!r.ok()) {
            rollback();
            return r;
        }
        commitWrite(impl);
        return r;
    } catch (const Poco::Exception& e) {
        noteWriteFailure(impl, e);
        rollback();
        return failure(e.displayText());
    } catch (const std::exception& e) {
        rollback();
        return failure(e.what());
    }
}

std::string fromHex(const std::string& hex) {
    const auto bytes = Botan::hex_decode(hex);
    return std::string(bytes.begin(), bytes.end());
}

Error unknownCitizen() {
    return Error::make("citizen.unknown", "no such citizen credential");
}

constexpr const char* kCitizenColumns =
    "SELECT id, identity_number, full_name, province, contact, portal, key_label, certificate,"
    " status, created FROM citizens ";

std::vector<Citizen> selectCitizens(Session& s, const std::string& where, std::string arg) {
    std::vector<std::string> id, identity, name, province, contact, portal, label, cert, status,
        created;
    s << std::string(kCitizenColumns) + where, use(arg), into(id), into(identity), into(name),
        into(province), into(contact), into(portal), into(label), into(cert), into(status),
        into(created), now;
    std::vector<Citizen> out(id.size());
    for (std::size_t i = 0; i < id.size(); ++i) {
        out[i] = Citizen{id[i],       identity[i],      name[i],
                         province[i], contact[i],       portal[i],
                         label[i],    fromHex(cert[i]), status[i] == "revoked",
                         created[i]};
    }
    return out;
}

void insertActivation(Session& s, const std::string& credential, const ActivationRecord& a) {
    std::string cred = credential;
    std::string pin = a.pinHash;
    WipedString secret{hexOf(a.totpSecret.view())};
    int mustChange = a.mustChangePin ? 1 : 0;
    int failed = a.failedAttempts;
    int locked = a.locked ? 1 : 0;
    Poco::Int64 step = a.lastTotpStep;
    s << "INSERT INTO citizen_activation (credential, pin_hash, must_change_pin, totp_secret,"
         " failed_attempts, locked, last_totp_step) VALUES (?, ?, ?, ?, ?, ?, ?)",
        use(cred), use(pin), use(mustChange), use(secret.s), use(failed), use(locked), use(step),
        now;
}

// Deletes the SADs of a credential (all of them) or those expired before a time.
void deleteSadsOf(Session& s, std::string credential) {
    s << "DELETE FROM csc_sad_hashes WHERE sad IN (SELECT sad FROM csc_sads WHERE credential = ?)",
        use(credential), now;
    s << "DELETE FROM csc_sads WHERE credential = ?", use(credential), now;
}

void deleteSadsExpiredBefore(Session& s, Poco::Int64 before) {
    s << "DELETE FROM csc_sad_hashes WHERE sad IN (SELECT sad FROM csc_sads WHERE expires < ?)",
        use(before), now;
    s << "DELETE FROM csc_sads WHERE expires < ?", use(before), now;
}

}  // namespace

Status Store::addCitizen(const Citizen& c, const ActivationRecord& a) {
    if (c.id.empty()) {
        return Error::make("citizen.invalid", "a citizen credential needs an id");
    }
    return inTransaction<Ok>(*m_impl, "store the citizen", [&](Session& s) -> Status {
        std::string id = c.id;
        std::string identity = c.identityNumber;
        std::string name = c.fullName;
        std::string province = c.province;
        std::string contact = c.contact;
        std::string portal = c.portal;
        std::string label = c.keyLabel;
        std::string cert = hexOf(c.certificateDer);
        std::string status = c.revoked ? "revoked" : "active";
        std::string created = c.created.empty() ? nowIso() : c.created;
        try {
            s << "INSERT INTO citizens (id, identity_number, full_name, province, contact, portal,"
                 " key_label, certificate, status, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                use(id), use(identity), use(name), use(province), use(contact), use(portal),
                use(label), use(cert), use(status), use(created), now;
        } catch (const Poco::Data::SQLite::ConstraintViolationException& e) {
            // The partial unique index names its column; a clash of ids (128 random bits) would
            // name citizens.id and stays a database error.
            if (e.displayText().find("citizens.identity_number") != std::string::npos) {
                return Error::make("citizen.duplicate",
                                   "this identity number has a credential that is not revoked");
            }
            throw;
        }
        insertActivation(s, c.id, a);
        return Ok{};
    });
}

Result<Citizen> Store::citizen(const std::string& id) {
    std::vector<Citizen> rows;
    try {
        std::lock_guard lk(m_impl->mu);
        rows = selectCitizens(*m_impl->session, "WHERE id = ?", id);
    } catch (const Poco::Exception& e) {
        return Error::make("db.unavailable", "cannot read the citizen: " + e.displayText());
    }
    if (rows.empty()) {
        return unknownCitizen();
    }
    return std::move(rows[0]);
}

Result<std::vector<Citizen>> Store::citizensOfPortal(const std::string& portal) {
    try {
        std::lock_guard lk(m_impl->mu);
        return selectCitizens(*m_impl->session, "WHERE portal = ? ORDER BY created, rowid", portal);
    } catch (const Poco::Exception& e) {
        return Error::make("db.unavailable", "cannot list the citizens: " + e.displayText());
    }
}

Result<StoredReceipt> Store::storeReceipt(const ReceiptKeys& keys, const SealReceipt& seal) {
    return inTransaction<StoredReceipt>(
        *m_impl, "store the receipt", [&](Session& s) -> Result<StoredReceipt> {
            std::string agency = keys.agency;
            std::string txKey = keys.transactionKey;
            std::string idem = keys.idempotencyKey;
            std::vector<std::string> id;
            std::vector<Poco::Int64> number;
            std::vector<std::string> sealed, digest, status, created, format;
            // The same Idempotency-Key, or the same payment, is the original receipt.
            if (!idem.empty()) {
                s << "SELECT id, number, sealed, digest, status, created, format FROM receipts"
                     " WHERE agency = ? AND idempotency_key = ?",
                    use(agency), use(idem), into(id), into(number), into(sealed), into(digest),
                    into(status), into(created), into(format), now;
            }
            if (id.empty()) {
                s << "SELECT id, number, sealed, digest, status, created, format FROM receipts"
                     " WHERE agency = ? AND transaction_key = ?",
                    use(agency), use(txKey), into(id), into(number), into(sealed), into(digest),
                    into(status), into(created), into(format), now;
            }
            if (!id.empty()) {
                return StoredReceipt{
                    id[0],     keys.agency, 0,         static_cast<std::uint64_t>(number[0]),
                    sealed[0], digest[0],   status[0], created[0],
                    format[0], true};
            }
            int year = keys.year;
            std::vector<Poco::Int64> last;
            s << "SELECT last FROM receipt_sequences WHERE agency = ? AND year = ?", use(agency),
                use(year), into(last), now;
            const Poco::Int64 next = last.empty() ? 1 : last[0] + 1;
            if (last.empty()) {
                s << "INSERT INTO receipt_sequences (agency, year, last) VALUES (?, ?, ?)",
                    use(agency), use(year), bind(next), now;
            } else {
                s << "UPDATE receipt_sequences SET last = ? WHERE agency = ? AND year = ?",
                    bind(next), use(agency), use(year), now;
            }
            // Sealed inside the transaction: a seal that fails, or a crash before COMMIT, gives
            // the number back.
            auto made = seal(static_cast<std::uint64_t>(next));
            if (!made) {
                return made.error();
            }
            StoredReceipt r;
            r.id = made->id;
            r.agency = keys.agency;
            r.year = keys.year;
            r.number = static_cast<std::uint64_t>(next);
            r.sealed = made->sealed;
            r.digest = made->digest;
            r.status = "valid";
            r.created = made->created;
            r.format = made->format;
            std::string rid = r.id, sealedText = r.sealed, dig = r.digest, cr = r.created,
                        fmt = r.format;
            Poco::Nullable<std::string> idemValue;
            if (!idem.empty()) {
                idemValue = idem;
            }
            s << "INSERT INTO receipts (id, agency, year, number, idempotency_key,"
                 " transaction_key, format, sealed, digest, created)"
                 " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                use(rid), use(agency), use(year), bind(next), use(idemValue), use(txKey), use(fmt),
                use(sealedText), use(dig), use(cr), now;
            return r;
        });
}

Result<StoredReceipt> Store::receipt(const std::string& idOrDigest) {
    try {
        std::lock_guard lk(m_impl->mu);
        std::string key = idOrDigest;
        std::vector<std::string> id, agency, sealed, digest, status, created, format;
        std::vector<int> year;
        std::vector<Poco::Int64> number;
        *m_impl->session << "SELECT id, agency, year, number, sealed, digest, status, created,"
                            " format FROM receipts WHERE id = ? OR digest = ?",
            use(key), bind(idOrDigest), into(id), into(agency), into(year), into(number),
            into(sealed), into(digest), into(status), into(created), into(format), now;
        if (id.empty()) {
            return Error::make("receipt.unknown", "no such receipt");
        }
        return StoredReceipt{id[0],     agency[0], year[0],   static_cast<std::uint64_t>(number[0]),
                             sealed[0], digest[0], status[0], created[0],
                             format[0], false};
    } catch (const Poco::Exception& e) {
        return Error::make("db.unavailable", "cannot read the receipt: " + e.displayText());
    }
}

Status Store::cancelReceipt(const std::string& id) {
    return inTransaction<Ok>(*m_impl, "cancel the receipt", [&](Session& s) -> Status {
        std::string i = id;
        std::vector<std::string> status;
        s << "SELECT status FROM receipts WHERE id = ?", use(i), into(status), now;
        if (status.empty()) {
            return Error::make("receipt.unknown", "no such receipt");
        }
        if (status[0] == "cancelled") {
            return Error::make("receipt.cancelled", "the receipt is cancelled already");
        }
        s << "UPDATE receipts SET status = 'cancelled' WHERE id = ?", use(i), now;
        return Ok{};
    });
}

Result<std::vector<std::uint64_t>> Store::receiptNumbers(const std::string& agency, int year) {
    try {
        std::lock_guard lk(m_impl->mu);
        std::string a = agency;
        std::vector<Poco::Int64> n;
        *m_impl->session << "SELECT number FROM receipts WHERE agency = ? AND year = ?"
                            " ORDER BY number",
            use(a), use(year), into(n), now;
        return std::vector<std::uint64_t>(n.begin(), n.end());
    } catch (const Poco::Exception& e) {
        return Error::make("db.unavailable", "cannot list the receipts: " + e.displayText());
    }
}

Result<std::vector<Citizen>> Store::liveCitizens() {
    try {
        std::lock_guard lk(m_impl->mu);
        return selectCitizens(
            *m_impl->session,
            "WHERE status = 'active' AND certificate <> ? ORDER BY created, rowid", std::string());
    } catch (const Poco::Exception& e) {
        return Error::make("db.unavailable", "cannot list the citizens: " + e.displayText());
    }
}

Status Store::revokeCitizen(const std::string& id) {
    return inTransaction<Ok>(*m_impl, "revoke the citizen", [&](Session& s) -> Status {
        std::string i = id;
        std::vector<std::string> status;
        s << "SELECT status FROM citizens WHERE id = ?", use(i), into(status), now;
        if (status.empty()) {
            return unknownCitizen();
        }
        if (status[0] == "revoked") {
            return Error::make("citizen.already_revoked", "the citizen credential is revoked");
        }
        s << "UPDATE citizens SET status = 'revoked' WHERE id = ?", use(i), now;
        // A SAD handed out before the revocation must not sign after it.
        deleteSadsOf(s, id);
        return Ok{};
    });
}

Status Store::setCitizenCertificate(const std::string& id, const std::string& der) {
    std::string i = id;
    std::string cert = hexOf(der);
    std::size_t changed = 0;
    try {
        std::lock_guard lk(m_impl->mu);
        Poco::Data::Statement st(*m_impl->session);
        st << "UPDATE citizens SET certificate = ? WHERE id = ?", use(cert), use(i);
        changed = st.execute();
    } catch (const Poco::Exception& e) {
        return Error::make("db.unavailable", "cannot store the certificate: " + e.displayText());
    }
    if (changed == 0) {
        return unknownCitizen();
    }
    return Ok{};
}

Result<ActivationRecord> Store::activation(const std::string& credentialId) {
    std::string id = credentialId;
    std::vector<std::string> pin, status;
    std::vector<int> mustChange, failed, locked;
    std::vector<Poco::Int64> step;
    std::vector<std::string> secrets;
    struct WipeAll {
        std::vector<std::string>& v;
        ~WipeAll() {
            for (auto& x : v) {
                hsm::secureWipe(x.data(), x.size());
            }
        }
    } wipe{secrets};
    try {
        std::lock_guard lk(m_impl->mu);
        *m_impl->session << "SELECT a.pin_hash, a.must_change_pin, a.totp_secret,"
                            " a.failed_attempts, a.locked, a.last_totp_step, c.status"
                            " FROM citizen_activation a JOIN citizens c ON c.id = a.credential"
                            " WHERE a.credential = ?",
            use(id), into(pin), into(mustChange), into(secrets), into(failed), into(locked),
            into(step), into(status), now;
    } catch (const Poco::Exception& e) {
        return Error::make("db.unavailable", "cannot read the activation: " + e.displayText());
    }
    if (pin.empty()) {
        return unknownCitizen();
    }
    ActivationRecord a;
    a.pinHash = pin[0];
    a.mustChangePin = mustChange[0] != 0;
    const auto key = Botan::hex_decode_locked(secrets[0]);
    a.totpSecret = hsm::Secret(std::string(key.begin(), key.end()));
    a.failedAttempts = failed[0];
    a.locked = locked[0] != 0;
    a.lastTotpStep = step[0];
    a.citizenRevoked = status[0] == "revoked";
    return a;
}

Status Store::replaceActivation(const std::string& credentialId, const ActivationRecord& a) {
    return inTransaction<Ok>(*m_impl, "replace the activation", [&](Session& s) -> Status {
        std::string id = credentialId;
        std::vector<std::string> status;
        s << "SELECT status FROM citizens WHERE id = ?", use(id), into(status), now;
        if (status.empty()) {
            return unknownCitizen();
        }
        if (status[0] == "revoked") {
            return Error::make("citizen.revoked", "the citizen credential is revoked");
        }
        s << "DELETE FROM citizen_activation WHERE credential = ?", use(id), now;
        insertActivation(s, credentialId, a);
        // SADs granted under the old PIN and secret go with them.
        deleteSadsOf(s, credentialId);
        return Ok{};
    });
}

Result<FailedAttempts> Store::recordFailedAttempt(const std::string& credentialId, int lockAfter) {
    return inTransaction<FailedAttempts>(
        *m_impl, "count the failed attempt", [&](Session& s) -> Result<FailedAttempts> {
            std::string id = credentialId;
            std::vector<int> wasLocked;
            s << "SELECT locked FROM citizen_activation WHERE credential = ?", use(id),
                into(wasLocked), now;
            if (wasLocked.empty()) {
                return unknownCitizen();
            }
            int limit = lockAfter;
            // One statement: concurrent failures each count (no read-modify-write in C++).
            s << "UPDATE citizen_activation SET failed_attempts = failed_attempts + 1,"
                 " locked = CASE WHEN failed_attempts + 1 >= ? THEN 1 ELSE locked END"
                 " WHERE credential = ?",
                use(limit), use(id), now;
            int count = 0;
            int locked = 0;
            s << "SELECT failed_attempts, locked FROM citizen_activation WHERE credential = ?",
                use(id), into(count), into(locked), now;
            return FailedAttempts{count, locked != 0, locked != 0 && wasLocked[0] == 0};
        });
}

Status Store::changePinHash(const std::string& credentialId, const std::string& expectedPinHash,
                            const std::string& newPinHash) {
    return inTransaction<Ok>(*m_impl, "change the PIN", [&](Session& s) -> Status {
        std::string id = credentialId;
        std::vector<std::string> pin;
        std::vector<int> locked;
        s << "SELECT pin_hash, locked FROM citizen_activation WHERE credential = ?", use(id),
            into(pin), into(locked), now;
        if (pin.empty()) {
            return unknownCitizen();
        }
        if (locked[0] != 0) {
            return Error::make("csc.locked", "the credential is locked");
        }
        if (!hsm::constantTimeEquals(pin[0], expectedPinHash)) {
            return Error::make("activation.conflict", "the PIN was changed meanwhile");
        }
        std::string h = newPinHash;
        s << "UPDATE citizen_activation SET pin_hash = ?, must_change_pin = 0, failed_attempts = 0"
             " WHERE credential = ?",
            use(h), use(id), now;
        return Ok{};
    });
}

Status Store::acceptAuthorization(const std::string& credentialId, std::int64_t totpStep,
                                  const std::string& expectedPinHash, const SadRecord& sad,
                                  std::int64_t purgeBefore) {
    return inTransaction<Ok>(*m_impl, "store the authorization", [&](Session& s) -> Status {
        std::string id = credentialId;
        std::vector<std::string> pin, status;
        std::vector<int> mustChange, locked;
        std::vector<Poco::Int64> last;
        s << "SELECT a.pin_hash, a.must_change_pin, a.locked, a.last_totp_step, c.status"
             " FROM citizen_activation a JOIN citizens c ON c.id = a.credential"
             " WHERE a.credential = ?",
            use(id), into(pin), into(mustChange), into(locked), into(last), into(status), now;
        if (pin.empty()) {
            return unknownCitizen();
        }
        if (status[0] == "revoked") {
            return Error::make("citizen.revoked", "the citizen credential is revoked");
        }
        if (locked[0] != 0) {
            return Error::make("csc.locked", "the credential is locked");
        }
        if (mustChange[0] != 0) {
            return Error::make("csc.pin_change_required", "the initial PIN must be changed first");
        }
        if (!hsm::constantTimeEquals(pin[0], expectedPinHash)) {
            return Error::make("activation.conflict", "the PIN was changed meanwhile");
        }
        // Checked here, inside the write transaction, so that of two requests carrying the same
        // code only the first one commits.
        if (totpStep <= last[0]) {
            return Error::make("activation.otp_replayed", "the one-time code was used already");
        }
        Poco::Int64 step = totpStep;
        s << "UPDATE citizen_activation SET last_totp_step = ?, failed_attempts = 0"
             " WHERE credential = ?",
            use(step), use(id), now;
        deleteSadsExpiredBefore(s, purgeBefore);
        std::string sadHex = hexOf(sad.sadHash);
        std::string cred = sad.credentialId;
        std::string alg = sad.hashAlgorithm;
        int remaining = static_cast<int>(sad.hashes.size());
        Poco::Int64 expires = sad.expires;
        s << "INSERT INTO csc_sads (sad, credential, hash_algorithm, remaining, expires)"
             " VALUES (?, ?, ?, ?, ?)",
            use(sadHex), use(cred), use(alg), use(remaining), use(expires), now;
        for (const auto& h : sad.hashes) {
            std::string hashHex = hexOf(h);
            try {
                s << "INSERT INTO csc_sad_hashes (sad, hash) VALUES (?, ?)", use(sadHex),
                    use(hashHex), now;
            } catch (const Poco::Data::SQLite::ConstraintViolationException&) {
                // Everything above (the spent step, the SAD row) is rolled back with it.
                return Error::make("csc.invalid_request", "a hash is listed more than once");
            }
        }
        return Ok{};
    });
}

Result<SadUse> Store::useSad(const std::string& credentialId, const std::string& sadHash,
                             const std::string& hash, std::int64_t nowUnix) {
    return inTransaction<SadUse>(*m_impl, "use the SAD", [&](Session& s) -> Result<SadUse> {
        // Looked up by its SHA-256: timing of the index search can only tell about the hash of
        // a 256-bit random value, never about the SAD.
        std::string sadHex = hexOf(sadHash);
        std::vector<std::string> cred, alg;
        std::vector<int> remaining;
        std::vector<Poco::Int64> expires;
        s << "SELECT credential, hash_algorithm, remaining, expires FROM csc_sads WHERE sad = ?",
            use(sadHex), into(cred), into(alg), into(remaining), into(expires), now;
        // Another credential's SAD reads exactly like an unknown one.
        if (cred.empty() || cred[0] != credentialId) {
            return Error::make("csc.sad_invalid", "the SAD is not valid for this credential");
        }
        if (nowUnix >= expires[0]) {
            return Error::make("csc.sad_expired", "the SAD has expired");
        }
        if (remaining[0] <= 0) {
            return Error::make("csc.sad_used_up", "the SAD has no signature left");
        }
        std::string hashHex = hexOf(hash);
        Poco::Data::Statement mark(s);
        mark << "UPDATE csc_sad_hashes SET used = 1 WHERE sad = ? AND hash = ? AND used = 0",
            use(sadHex), use(hashHex);
        if (mark.execute() != 1) {
            return Error::make("csc.hash_not_authorized",
                               "the hash is not authorized by this SAD, or was signed already");
        }
        s << "UPDATE csc_sads SET remaining = remaining - 1 WHERE sad = ?", use(sadHex), now;
        return SadUse{alg[0], remaining[0] - 1};
    });
}

Status Store::unlockActivation(const std::string& credentialId) {
    std::string id = credentialId;
    std::size_t changed = 0;
    try {
        std::lock_guard lk(m_impl->mu);
        Poco::Data::Statement st(*m_impl->session);
        st << "UPDATE citizen_activation SET locked = 0, failed_attempts = 0 WHERE credential = ?",
            use(id);
        changed = st.execute();
    } catch (const Poco::Exception& e) {
        return Error::make("db.unavailable", "cannot unlock: " + e.displayText());
    }
    if (changed == 0) {
        return unknownCitizen();
    }
    return Ok{};
}

}  // namespace kyso::api
