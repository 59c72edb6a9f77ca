// The embedded store (SQLite through Poco::Data): API keys, durable serial numbers, revocations of
// the embedded CAs. Nothing else in the process may open the database file: closing any
// descriptor of it drops the POSIX locks SQLite holds for this connection (sqlite.org, "How To
// Corrupt An SQLite Database File", 2.2). Callers see this interface
// only, so PostgreSQL can sit behind it later.
//
// API keys look like "kyso_<16 hex id>_<43 base64url secret>" (256 random bits of secret). Only an
// Argon2id hash of the secret is stored (Botan, m=19 MiB, t=2, p=1). A verified key is cached
// in memory for a minute as a SHA-256 of the secret, compared in constant time, so the Argon2id
// cost is paid once per key and minute, not per request.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kyso/ca-bridge/crl.h"
#include "kyso/ca-bridge/ocsp.h"
#include "kyso/ca-bridge/revocation.h"
#include "kyso/hsm/result.h"
#include "kyso/policies/authorization.h"
#include "kyso/signer/tsa.h"

namespace kyso::api {

struct ApiKeyInfo {
    std::string id;
    std::string name;
    std::string role;
    std::string created;
    bool revoked = false;
};

// One row of the audit log (see audit.h for what the fields mean and how `hash` is made).
struct AuditRow {
    std::uint64_t seq = 0;
    std::string time;  // RFC 3339 UTC
    std::string type;  // "sign.pdf", "auth.failure", ...
    std::string principal;
    std::string credential;
    std::string outcome;  // "ok", "denied", "failed"
    std::string detail;   // a JSON object
    std::string prevHash;
    std::string hash;
};

// A signed statement that the audit chain's entry `seq` has hash `hash`.
struct AuditCheckpoint {
    std::uint64_t seq = 0;
    std::string hash;
    std::string time;
    std::string signature;  // hex, by the audit key
};

class Store {
  public:
    // Opens (and creates or migrates) the database. Errors: "db.unavailable".
    static Result<std::unique_ptr<Store>> open(const std::string& path);
    ~Store();
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;

    // Creates a key for a principal; returns the full key, which is never stored or shown again.
    Result<std::string> createApiKey(const std::string& name, policies::Role role);
    std::vector<ApiKeyInfo> listApiKeys();
    // Revokes by id or by name (all keys of that name). "apikey.unknown" if none matched.
    Status revokeApiKey(const std::string& idOrName);
    // The principal of a valid, unrevoked key; empty otherwise (malformed, unknown, wrong secret).
    std::optional<policies::Principal> authenticate(std::string_view apiKey);
    // Revocations of the embedded CAs. "ca.already_revoked" if the serial is revoked already.
    Status revokeCertificate(const std::string& ca, const std::string& serialHex, int reason);
    // The revoked certificates of `ca`, oldest first.
    std::vector<ca::RevokedCertificate> revokedCertificates(const std::string& ca);
    // Certificates the embedded CAs issued (OCSP answers "good" only for those).
    Status recordIssued(const std::string& ca, const std::string& serialHex,
                        const std::string& subject);
    // Good, revoked (with time and reason) or unknown (never issued by `ca`).
    ca::StatusInfo certificateStatus(const std::string& ca, const std::string& serialHex);

    // A revocation cache (CRLs until their nextUpdate) in the database. The Store must outlive it.
    std::unique_ptr<ca::RevocationCache> revocationCache();

    // Audit log. appendAudit runs `build(lastSeq, lastHash)` inside one write transaction
    // (BEGIN IMMEDIATE: serialised with every other process on the database) and inserts the
    // rows it returns, committed durably before it returns. Errors: "db.unavailable".
    using AuditBuilder =
        std::function<std::vector<AuditRow>(std::uint64_t lastSeq, const std::string& lastHash)>;
    Status appendAudit(const AuditBuilder& build);
    // Rows with seq > after, in seq order, at most `limit`.
    std::vector<AuditRow> auditRows(std::uint64_t after, std::size_t limit);
    Status addAuditCheckpoint(const AuditCheckpoint& c);
    std::vector<AuditCheckpoint> auditCheckpoints();

    // True when a write transaction can be started (for /readyz).
    bool writable();

    // Durable serial numbers for `name` (e.g. "tsa"): blocks of `block` numbers are reserved by a
    // committed transaction (synchronous=FULL) before any number in them is handed out, so a
    // number is never handed out twice, whatever crashes; a crash skips the rest of its block.
    // The Store must outlive the source.
    std::unique_ptr<signer::SerialSource> serialSource(const std::string& name,
                                                       std::uint64_t block = 1000);

    struct Impl;

  private:
    explicit Store(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m_impl;
};

}  // namespace kyso::api
