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
//
// Citizens' remote-signing credentials (issue 7, CSC API v2 at SCAL2) live here too: the citizen
// rows, the activation state that guards each one (PIN hash, TOTP secret, failed attempts, lock,
// last accepted TOTP step) and the SADs handed out by credentials/authorize (only their SHA-256).
// The rules (what is checked in which order) are in activation.h; this file only keeps every
// state change atomic, so that two concurrent requests cannot both spend one OTP code, one
// authorized hash or one attempt of the five.
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
#include "kyso/hsm/secret.h"
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

// A sealed payment receipt as stored (issue 8).
struct StoredReceipt {
    std::string id;
    std::string agency;
    int year = 0;
    std::uint64_t number = 0;  // the agency's sequence for the year, from 1, gap-free
    std::string sealed;        // the JWS (JSON serialization) or the signed XML
    std::string digest;        // hex SHA-256 of `sealed`, for the QR code and lookups
    std::string status;        // "valid" or "cancelled"
    std::string created;       // RFC 3339 UTC
    std::string format;        // "jws" or "xml"
    bool replayed = false;     // storeReceipt: this is the original of a repeated request
};

// What makes a receipt the same one again: its agency, its Idempotency-Key (may be empty) and
// its payment (channel + transaction id).
struct ReceiptKeys {
    std::string agency;
    int year = 0;
    std::string idempotencyKey;
    std::string transactionKey;
};

// Seals the receipt that gets NUMBER: its id, the sealed bytes, their digest, time and format.
struct SealedReceipt {
    std::string id;
    std::string sealed;
    std::string digest;
    std::string created;
    std::string format;
};
using SealReceipt = std::function<Result<SealedReceipt>(std::uint64_t number)>;

// A citizen's personal signing credential. `id` is the CSC credentialID.
struct Citizen {
    std::string id;              // "citizen-<32 hex>"
    std::string identityNumber;  // the CCCD/CMND number: 9 or 12 ASCII digits
    std::string fullName;        // UTF-8
    std::string province;        // UTF-8
    std::string contact;         // e-mail or phone
    std::string portal;          // the principal that enrolled the citizen
    std::string keyLabel;        // label of the key pair on the token
    std::string certificateDer;  // empty until a certificate is issued
    bool revoked = false;
    std::string created;  // RFC 3339 UTC
};

// What guards one citizen credential: its PIN and TOTP secret, and the attempt counter.
struct ActivationRecord {
    std::string pinHash;  // Argon2id (argon2idHash below), never the PIN
    bool mustChangePin = true;
    // The TOTP key as the Activation gives it: in the service, sealed with AES-256-GCM by a
    // non-extractable key on the token (Activation::Options::sealSecret), so the database file
    // alone computes no code; raw (20 bytes) only where no sealer is set (tests).
    hsm::Secret totpSecret;
    int failedAttempts = 0;  // consecutive wrong PINs or OTPs
    bool locked = false;
    std::int64_t lastTotpStep = -1;  // the last accepted TOTP time step; -1 before the first
    bool citizenRevoked = false;     // read only: the citizen row's status
};

// One SAD (Signature Activation Data) as stored. The SAD value itself is never stored.
struct SadRecord {
    std::string sadHash;  // SHA-256 of the SAD value, 32 raw bytes
    std::string credentialId;
    std::string hashAlgorithm;        // an OID, e.g. "2.16.840.1.101.3.4.2.1" for SHA-256
    std::vector<std::string> hashes;  // raw bytes, pairwise distinct; numSignatures = size()
    std::int64_t expires = 0;         // Unix seconds; the SAD is refused from then on
};

// What one use of a SAD authorized.
struct SadUse {
    std::string hashAlgorithm;  // as authorized: the signature must use it
    int remaining = 0;          // signatures still allowed under the SAD
};

// Result of counting one failed PIN or OTP.
struct FailedAttempts {
    int count = 0;           // consecutive failures, this one included
    bool locked = false;     // the credential is locked now
    bool lockedNow = false;  // and this failure is the one that locked it
};

// Argon2id with the API keys' parameters (m=19 MiB, t=2, p=1), in Botan's PHC string format;
// shared with the citizens' PINs. argon2idCheck compares in constant time.
std::string argon2idHash(std::string_view secret);
bool argon2idCheck(std::string_view secret, const std::string& hash);

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

    // --- Citizens (CSC credentials) -----------------------------------------------------------
    // Every multi-row change below is one transaction: it happens whole or not at all.
    // Errors of all of them include "db.unavailable".

    // Adds a citizen and its first activation state. "citizen.duplicate": another citizen with
    // this identity number is not revoked (enforced by a partial unique index, so it holds for
    // any writer of the database); "citizen.invalid": an empty id.
    Status addCitizen(const Citizen& citizen, const ActivationRecord& activation);
    // "citizen.unknown" if there is no such id.
    Result<Citizen> citizen(const std::string& id);
    // The citizens a portal enrolled, revoked ones included, oldest first.
    Result<std::vector<Citizen>> citizensOfPortal(const std::string& portal);
    // A new receipt: the original when KEYS' Idempotency-Key or payment was stored before
    // (replayed = true, SEAL not called); otherwise the agency's next number for the year is
    // taken, SEAL makes the receipt with it, and both are committed in one transaction (BEGIN
    // IMMEDIATE: concurrent requests queue), so a failed seal or a crash gives the number back.
    // SEAL runs with the database locked: it must not use this Store. Errors: SEAL's,
    // db.unavailable.
    Result<StoredReceipt> storeReceipt(const ReceiptKeys& keys, const SealReceipt& seal);
    // By id or by digest. receipt.unknown.
    Result<StoredReceipt> receipt(const std::string& idOrDigest);
    // receipt.unknown, receipt.cancelled.
    Status cancelReceipt(const std::string& id);
    // The numbers stored for an agency and year, ascending (tests, audits).
    Result<std::vector<std::uint64_t>> receiptNumbers(const std::string& agency, int year);

    // Every citizen that is not revoked and has a certificate, oldest first (loaded at start).
    Result<std::vector<Citizen>> liveCitizens();
    // Marks revoked and deletes the credential's outstanding SADs. "citizen.unknown",
    // "citizen.already_revoked".
    Status revokeCitizen(const std::string& id);
    // Records the issued certificate. "citizen.unknown".
    Status setCitizenCertificate(const std::string& id, const std::string& der);

    // The activation state (with the PIN hash and the TOTP secret). "citizen.unknown".
    Result<ActivationRecord> activation(const std::string& credentialId);
    // Replaces the whole activation state (a re-issued PIN and TOTP secret; counter, lock and
    // last step reset from `a`) and deletes the outstanding SADs. "citizen.unknown",
    // "citizen.revoked".
    Status replaceActivation(const std::string& credentialId, const ActivationRecord& a);
    // Counts one failed PIN or OTP atomically; the `lockAfter`th consecutive one locks.
    // "citizen.unknown".
    Result<FailedAttempts> recordFailedAttempt(const std::string& credentialId, int lockAfter);
    // Sets a new PIN hash, clears mustChangePin and the failure counter, if the stored hash is
    // still `expectedPinHash` and the credential is not locked. "citizen.unknown", "csc.locked",
    // "activation.conflict" (the PIN changed since it was checked).
    Status changePinHash(const std::string& credentialId, const std::string& expectedPinHash,
                         const std::string& newPinHash);
    // A successful credentials/authorize: records `totpStep` as the last accepted step, resets
    // the failure counter and stores the SAD, if the credential is still unlocked, its PIN hash
    // is still `expectedPinHash` and `totpStep` is above the last accepted step (so two
    // concurrent requests cannot both spend one code). SADs that expired before `purgeBefore`
    // are deleted on the way. Errors: "citizen.unknown", "citizen.revoked", "csc.locked",
    // "csc.pin_change_required", "activation.otp_replayed", "activation.conflict".
    Status acceptAuthorization(const std::string& credentialId, std::int64_t totpStep,
                               const std::string& expectedPinHash, const SadRecord& sad,
                               std::int64_t purgeBefore);
    // Spends one authorized hash of the SAD whose SHA-256 is `sadHash`: marks the hash used and
    // decrements the remaining count, atomically. Checked in this order:
    //   csc.sad_invalid          no such SAD, or a SAD of another credential (same detail)
    //   csc.sad_expired          now >= its expiry
    //   csc.sad_used_up          no signature left
    //   csc.hash_not_authorized  `hash` is not one of its hashes, or was signed with it already
    Result<SadUse> useSad(const std::string& credentialId, const std::string& sadHash,
                          const std::string& hash, std::int64_t now);
    // Clears the lock and the failure counter. "citizen.unknown".
    Status unlockActivation(const std::string& credentialId);

    // True when the database takes writes (for /readyz): the write lock is granted within the
    // busy timeout and, if a write failed since the last one that committed (a full disk, a
    // read-only or immutable file, an I/O error), a small write commits now. So after such a
    // fault it stays false until the database can really be written again, and turns true
    // without a restart once it can. Every write path recovers the same way: a failed
    // transaction is rolled back, and a connection SQLite found read-only is opened again
    // before the next write.
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
