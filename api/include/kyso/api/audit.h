// The audit log: every security-relevant event, appended to SQLite as a hash chain with
// checkpoints signed by an audit key on the token, so that deleting, editing, reordering or
// truncating entries is detected (`kyso audit verify`).
//
// Entry n's hash is SHA-256 (hex) over "kyso-audit-v1", entry n-1's hash (empty for the first)
// and the entry's fields (seq, time, type, principal, credential, outcome, detail), each
// length-prefixed (`auditHash`). A checkpoint signs "kyso-audit-checkpoint-v1", seq and hash
// with the audit credential's key (its scheme and hash), and is also written to the service log,
// so that a copy of the latest checkpoints exists outside the database.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kyso/api/store.h"
#include "kyso/hsm/credential.h"
#include "kyso/hsm/result.h"

namespace kyso::api {

struct AuditEvent {
    std::string type;        // e.g. "sign.pdf", "timestamp", "auth.failure", "apikey.create"
    std::string principal;   // "-" when unknown
    std::string credential;  // "" when none
    std::string outcome;     // "ok", "denied", "failed"
    std::string detail;      // a JSON object (e.g. {"sha256":"..."}); "{}" when none
};

std::string auditHash(const AuditRow& row);
// What a checkpoint's signature covers.
std::string auditCheckpointMessage(std::uint64_t seq, const std::string& hash);

class AuditLog {
  public:
    // `checkpointKey` (borrowed; null: no checkpoints) signs a checkpoint every
    // `checkpointEvery` entries, and when the log is closed. The store must outlive the log.
    AuditLog(Store& store, const hsm::Credential* checkpointKey,
             std::uint64_t checkpointEvery = 100);
    ~AuditLog();
    AuditLog(const AuditLog&) = delete;
    AuditLog& operator=(const AuditLog&) = delete;

    // Appends `e` and returns its sequence number once it is durably committed (concurrent
    // appends share one transaction). Errors: "audit.unavailable".
    Result<std::uint64_t> append(AuditEvent e);
    // Signs a checkpoint of the current head now (nothing when the log is empty or unchanged).
    Status checkpoint();

  private:
    void run();
    void checkpointOrLog();

    Store& m_store;
    const hsm::Credential* m_key;
    std::uint64_t m_every;
    std::mutex m_mu;
    std::condition_variable m_cv;
    struct Pending {
        AuditEvent event;
        std::promise<Result<std::uint64_t>> done;
    };
    std::deque<Pending> m_pending;
    bool m_stop = false;
    std::mutex m_checkpointMu;
    std::uint64_t m_lastCheckpoint = 0;
    std::uint64_t m_head = 0;
    std::string m_headHash;
    std::thread m_writer;
};

struct AuditVerification {
    bool intact = true;
    std::uint64_t firstBadSeq = 0;  // when not intact
    std::string reason;
    std::uint64_t entries = 0;
    std::uint64_t checkpoints = 0;
    std::uint64_t lastCheckpointSeq = 0;
};

// Checks the whole chain and every checkpoint (signature with `auditCertificateDer`; empty:
// checkpoints cannot be checked and make the log not intact).
AuditVerification verifyAuditLog(Store& store, const std::string& auditCertificateDer);

// The same over any source of rows (an export read back): `rowsAfter(seq, limit)` gives the rows
// after `seq` in order, at most `limit`.
using AuditRowSource = std::function<std::vector<AuditRow>(std::uint64_t after, std::size_t limit)>;
AuditVerification verifyAuditChain(const AuditRowSource& rowsAfter,
                                   const std::vector<AuditCheckpoint>& checkpoints,
                                   const std::string& auditCertificateDer);

// An export an auditor verifies offline (`kyso audit verify --export FILE`): every entry, every
// checkpoint and the audit certificate (PEM), as JSON ("format": "kyso-audit-export-v1").
std::string exportAuditLog(Store& store, const std::string& auditCertificatePem);
// Reads an export back. Errors: "audit.export_invalid".
struct AuditExport {
    std::vector<AuditRow> rows;
    std::vector<AuditCheckpoint> checkpoints;
    std::string certificatePem;
};
Result<AuditExport> readAuditExport(const std::string& json);

}  // namespace kyso::api
