#include "kyso/api/store.h"

#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/Session.h>
#include <Poco/Data/Statement.h>
#include <botan/argon2.h>
#include <botan/base64.h>
#include <botan/hash.h>
#include <botan/hex.h>
#include <botan/system_rng.h>

#include <chrono>
#include <map>
#include <mutex>

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

}  // namespace

struct Store::Impl {
    std::mutex mu;  // Poco::Data sessions are not thread-safe
    std::unique_ptr<Poco::Data::Session> session;

    struct Cached {
        std::string secretHash;
        policies::Principal principal;
        std::chrono::steady_clock::time_point until;
    };
    std::mutex cacheMu;
    std::map<std::string, Cached> cache;
};

Store::Store(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::open(const std::string& path) {
    static std::once_flag once;
    std::call_once(once, [] { Poco::Data::SQLite::Connector::registerConnector(); });
    auto impl = std::make_unique<Impl>();
    try {
        impl->session = std::make_unique<Poco::Data::Session>("SQLite", path);
        auto& s = *impl->session;
        s << "PRAGMA journal_mode=WAL", now;
        s << "PRAGMA synchronous=FULL", now;
        s << "PRAGMA busy_timeout=5000", now;
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
    const std::string hash =
        Botan::argon2_generate_pwhash(secret.c_str(), secret.view().size(), rng, kArgonParallelism,
                                      kArgonMemoryKiB, kArgonIterations, 2 /* Argon2id */);
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
    const auto nowT = std::chrono::steady_clock::now();
    {
        std::lock_guard lk(m_impl->cacheMu);
        auto it = m_impl->cache.find(id);
        if (it != m_impl->cache.end() && it->second.until > nowT) {
            if (hsm::constantTimeEquals(it->second.secretHash, secretHash)) {
                return it->second.principal;
            }
            return std::nullopt;
        }
    }
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
    const std::string s(secret);
    if (!Botan::argon2_check_pwhash(s.data(), s.size(), hashes[0])) {
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
        auto& s = *m_impl.session;
        try {
            s << "BEGIN IMMEDIATE", now;
            std::string name = m_name;
            s << "INSERT OR IGNORE INTO counters (name, next) VALUES (?, 1)", use(name), now;
            Poco::Int64 start = 0;
            s << "SELECT next FROM counters WHERE name = ?", use(name), into(start), now;
            Poco::Int64 end = start + static_cast<Poco::Int64>(m_block);
            s << "UPDATE counters SET next = ? WHERE name = ?", use(end), use(name), now;
            s << "COMMIT", now;
            m_next = static_cast<std::uint64_t>(start);
            m_end = static_cast<std::uint64_t>(end);
        } catch (const Poco::Exception& e) {
            try {
                s << "ROLLBACK", now;
            } catch (const Poco::Exception&) {
            }
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
        } catch (const Poco::Exception&) {
            // A cache that cannot be written only costs a fetch next time.
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
    auto& s = *m_impl->session;
    try {
        s << "BEGIN IMMEDIATE", now;
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
        s << "COMMIT", now;
    } catch (const Poco::Exception& e) {
        try {
            s << "ROLLBACK", now;
        } catch (const Poco::Exception&) {
        }
        return Error::make("db.unavailable", "cannot append to the audit log: " + e.displayText());
    } catch (const std::exception& e) {
        try {
            s << "ROLLBACK", now;
        } catch (const Poco::Exception&) {
        }
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
        *m_impl->session << "INSERT OR REPLACE INTO audit_checkpoints (seq, hash, time, signature)"
                            " VALUES (?, ?, ?, ?)",
            use(seq), use(hash), use(time), use(sig), now;
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
    try {
        std::lock_guard lk(m_impl->mu);
        *m_impl->session << "BEGIN IMMEDIATE", now;
        *m_impl->session << "ROLLBACK", now;
        return true;
    } catch (const Poco::Exception&) {
        return false;
    }
}

}  // namespace kyso::api
