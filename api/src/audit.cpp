#include "kyso/api/audit.h"

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <chrono>
#include <ctime>
#include <iostream>
#include <map>
#include <sstream>

#include "audit_json.h"
#include "kyso/hsm/encoding.h"
#include "kyso/hsm/ossl_ptr.h"
#include "log.h"
#include "report_json.h"

namespace kyso::api {

namespace {

std::string binOf(const std::string& hex) {
    std::string out;
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') {
            return c - '0';
        }
        if (c >= 'a' && c <= 'f') {
            return c - 'a' + 10;
        }
        return -1;
    };
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
        const int hi = nibble(hex[i]);
        const int lo = nibble(hex[i + 1]);
        if (hi < 0 || lo < 0) {
            return {};
        }
        out.push_back(static_cast<char>(hi << 4 | lo));
    }
    return out;
}

std::string digest(const EVP_MD* md, const std::string& data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    ::EVP_Digest(data.data(), data.size(), out, &len, md, nullptr);
    return std::string(reinterpret_cast<char*>(out), len);
}

std::string nowIso() {
    return isoUtc(std::time(nullptr));
}

const char* schemeName(hsm::SignScheme s) {
    switch (s) {
        case hsm::SignScheme::RsaPkcs1v15:
            return "pkcs1";
        case hsm::SignScheme::RsaPss:
            return "pss";
        case hsm::SignScheme::Ecdsa:
            return "ecdsa";
    }
    return "pkcs1";
}

// "scheme:HASH:hex" as written by AuditLog::checkpoint, checked with the certificate's key.
bool checkpointSignatureValid(const AuditCheckpoint& c, EVP_PKEY* key) {
    const auto a = c.signature.find(':');
    const auto b = a == std::string::npos ? a : c.signature.find(':', a + 1);
    if (b == std::string::npos || key == nullptr) {
        return false;
    }
    const std::string scheme = c.signature.substr(0, a);
    const auto hash = hsm::parseHashAlg(c.signature.substr(a + 1, b - a - 1));
    const std::string sig = binOf(c.signature.substr(b + 1));
    if (!hash || sig.empty()) {
        return false;
    }
    const EVP_MD* md = hsm::evpMd(*hash);
    const std::string d = digest(md, auditCheckpointMessage(c.seq, c.hash));
    OsslPtr<EVP_PKEY_CTX> ctx(::EVP_PKEY_CTX_new(key, nullptr));
    if (!ctx || ::EVP_PKEY_verify_init(ctx.get()) != 1 ||
        ::EVP_PKEY_CTX_set_signature_md(ctx.get(), md) != 1) {
        return false;
    }
    if (scheme == "pss" &&
        (::EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PSS_PADDING) != 1 ||
         ::EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx.get(), RSA_PSS_SALTLEN_DIGEST) != 1)) {
        return false;
    }
    const bool ok =
        ::EVP_PKEY_verify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                          reinterpret_cast<const unsigned char*>(d.data()), d.size()) == 1;
    ::ERR_clear_error();
    return ok;
}

}  // namespace

std::string auditHash(const AuditRow& r) {
    std::string data = "kyso-audit-v1;";
    for (const std::string* f :
         {&r.prevHash, &r.time, &r.type, &r.principal, &r.credential, &r.outcome, &r.detail}) {
        data += std::to_string(f->size()) + ":" + *f + ";";
    }
    data += std::to_string(r.seq) + ";";
    return hsm::hexOf(digest(::EVP_sha256(), data));
}

std::string auditCheckpointMessage(std::uint64_t seq, const std::string& hash) {
    return "kyso-audit-checkpoint-v1\n" + std::to_string(seq) + "\n" + hash;
}

AuditLog::AuditLog(Store& store, const hsm::Credential* checkpointKey,
                   std::uint64_t checkpointEvery)
    : m_store(store), m_key(checkpointKey), m_every(checkpointEvery == 0 ? 1 : checkpointEvery) {
    auto checkpoints = m_store.auditCheckpoints();
    if (!checkpoints.empty()) {
        m_lastCheckpoint = checkpoints.back().seq;
    }
    m_writer = std::thread([this] { run(); });
}

AuditLog::~AuditLog() {
    {
        std::lock_guard lk(m_mu);
        m_stop = true;
    }
    m_cv.notify_all();
    m_writer.join();
    checkpointOrLog();
}

Result<std::uint64_t> AuditLog::append(AuditEvent e) {
    std::future<Result<std::uint64_t>> f;
    {
        std::lock_guard lk(m_mu);
        if (m_stop) {
            return Error::make("audit.unavailable", "the audit log is closed");
        }
        m_pending.push_back(Pending{std::move(e), {}});
        f = m_pending.back().done.get_future();
    }
    m_cv.notify_one();
    return f.get();
}

void AuditLog::run() {
    for (;;) {
        std::deque<Pending> batch;
        {
            std::unique_lock lk(m_mu);
            m_cv.wait_for(lk, std::chrono::seconds(60),
                          [this] { return m_stop || !m_pending.empty(); });
            if (m_pending.empty()) {
                if (m_stop) {
                    return;
                }
                lk.unlock();
                checkpointOrLog();  // idle for a minute: sign what is there
                continue;
            }
            batch.swap(m_pending);
        }
        const std::string time = nowIso();
        std::uint64_t head = 0;
        std::string headHash;
        std::vector<std::uint64_t> seqs;
        Status st = Error::make("audit.unavailable", "not written");
        try {
            st = m_store.appendAudit([&](std::uint64_t last, const std::string& lastHash) {
                std::vector<AuditRow> rows;
                seqs.clear();
                std::string prev = lastHash;
                for (auto& p : batch) {
                    AuditRow r;
                    r.seq = ++last;
                    r.time = time;
                    r.type = p.event.type;
                    r.principal = p.event.principal.empty() ? "-" : p.event.principal;
                    r.credential = p.event.credential;
                    r.outcome = p.event.outcome;
                    r.detail = p.event.detail.empty() ? "{}" : p.event.detail;
                    r.prevHash = prev;
                    r.hash = auditHash(r);
                    prev = r.hash;
                    seqs.push_back(r.seq);
                    rows.push_back(std::move(r));
                }
                head = last;
                headHash = prev;
                return rows;
            });
        } catch (const std::exception& e) {
            // Nothing escapes the writer thread: every waiting request gets the error.
            st = Error::make("audit.unavailable", e.what());
        }
        for (std::size_t i = 0; i < batch.size(); ++i) {
            if (st) {
                batch[i].done.set_value(seqs[i]);
            } else {
                batch[i].done.set_value(Error::make("audit.unavailable", st.error().detail));
            }
        }
        if (st) {
            bool due = false;
            {
                std::lock_guard lk(m_checkpointMu);
                m_head = head;
                m_headHash = headHash;
                due = m_head >= m_lastCheckpoint + m_every;
            }
            if (due) {
                checkpointOrLog();
            }
        }
    }
}

void AuditLog::checkpointOrLog() {
    auto st = checkpoint();
    if (!st) {
        logJson("error", "audit checkpoint failed", {{"error", st.error().detail}});
    }
}

Status AuditLog::checkpoint() {
    std::lock_guard lk(m_checkpointMu);
    if (m_key == nullptr || m_head == 0 || m_head == m_lastCheckpoint) {
        return Ok{};
    }
    const std::string d =
        digest(hsm::evpMd(m_key->hash), auditCheckpointMessage(m_head, m_headHash));
    auto sig = m_key->signDigest(d);
    if (!sig) {
        logJson("error", "audit checkpoint not signed",
                {{"seq", static_cast<Poco::UInt64>(m_head)}, {"code", sig.error().code}});
        return sig.error();
    }
    AuditCheckpoint c{m_head, m_headHash, nowIso(),
                      std::string(schemeName(m_key->scheme)) + ":" + hsm::hashName(m_key->hash) +
                          ":" + hsm::hexOf(*sig)};
    auto st = m_store.addAuditCheckpoint(c);
    if (!st) {
        return st;
    }
    m_lastCheckpoint = m_head;
    // A copy outside the database: truncating the table back to an older checkpoint is then
    // visible against the service log.
    logJson("info", "audit checkpoint",
            {{"seq", static_cast<Poco::UInt64>(c.seq)}, {"hash", c.hash}});
    return Ok{};
}

AuditVerification verifyAuditLog(Store& store, const std::string& auditCertificateDer) {
    return verifyAuditChain(
        [&store](std::uint64_t after, std::size_t limit) { return store.auditRows(after, limit); },
        store.auditCheckpoints(), auditCertificateDer);
}

AuditVerification verifyAuditChain(const AuditRowSource& rowsAfter,
                                   const std::vector<AuditCheckpoint>& checkpoints,
                                   const std::string& auditCertificateDer) {
    AuditVerification v;
    auto fail = [&v](std::uint64_t seq, const std::string& why) {
        if (v.intact || seq < v.firstBadSeq) {
            v.intact = false;
            v.firstBadSeq = seq;
            v.reason = why;
        }
    };
    std::map<std::uint64_t, std::string> hashAt;  // at checkpoint sequence numbers
    for (const auto& c : checkpoints) {
        hashAt[c.seq];
    }
    std::uint64_t last = 0;
    std::string prev;
    bool broken = false;
    for (;;) {
        auto rows = rowsAfter(last, 10000);
        if (rows.empty()) {
            break;
        }
        for (const auto& r : rows) {
            if (r.seq != last + 1) {
                fail(last + 1, "entry " + std::to_string(last + 1) + " is missing");
                broken = true;
                break;
            }
            if (r.prevHash != prev) {
                fail(r.seq, "entry " + std::to_string(r.seq) + " does not follow the entry before");
                broken = true;
                break;
            }
            if (auditHash(r) != r.hash) {
                fail(r.seq, "entry " + std::to_string(r.seq) + " was changed");
                broken = true;
                break;
            }
            if (auto it = hashAt.find(r.seq); it != hashAt.end()) {
                it->second = r.hash;
            }
            prev = r.hash;
            last = r.seq;
            ++v.entries;
        }
        if (broken) {
            break;
        }
    }
    OsslPtr<X509> cert = x509FromDer(auditCertificateDer);
    EVP_PKEY* key = cert ? ::X509_get0_pubkey(cert.get()) : nullptr;
    for (const auto& c : checkpoints) {
        ++v.checkpoints;
        v.lastCheckpointSeq = c.seq;
        if (key == nullptr) {
            fail(c.seq, "no audit certificate to check the checkpoint at " + std::to_string(c.seq));
        } else if (!checkpointSignatureValid(c, key)) {
            fail(c.seq,
                 "the checkpoint at " + std::to_string(c.seq) + " is not signed by the audit key");
        } else if (!broken && c.seq > last) {
            fail(last + 1, "entries " + std::to_string(last + 1) + " to " + std::to_string(c.seq) +
                               ", covered by a signed checkpoint, are missing");
        } else if (c.seq <= last && hashAt[c.seq] != c.hash) {
            fail(c.seq, "entry " + std::to_string(c.seq) +
                            " differs from what the signed checkpoint recorded");
        }
    }
    return v;
}

std::string exportAuditLog(Store& store, const std::string& auditCertificatePem) {
    Poco::JSON::Object o(Poco::JSON_PRESERVE_KEY_ORDER);
    o.set("format", "kyso-audit-export-v1");
    o.set("exported", nowIso());
    o.set("auditCertificate", auditCertificatePem);
    Poco::JSON::Array entries;
    for (std::uint64_t after = 0;;) {
        auto rows = store.auditRows(after, 10000);
        if (rows.empty()) {
            break;
        }
        for (const auto& r : rows) {
            Poco::JSON::Object e = auditRowJson(r, false);
            entries.add(e);
            after = r.seq;
        }
    }
    o.set("entries", entries);
    Poco::JSON::Array checkpoints;
    for (const auto& c : store.auditCheckpoints()) {
        Poco::JSON::Object j(Poco::JSON_PRESERVE_KEY_ORDER);
        j.set("seq", static_cast<Poco::UInt64>(c.seq));
        j.set("hash", c.hash);
        j.set("time", c.time);
        j.set("signature", c.signature);
        checkpoints.add(j);
    }
    o.set("checkpoints", checkpoints);
    std::ostringstream out;
    o.stringify(out, 1);
    return out.str();
}

Result<AuditExport> readAuditExport(const std::string& json) {
    AuditExport x;
    try {
        Poco::JSON::Parser parser;
        auto o = parser.parse(json).extract<Poco::JSON::Object::Ptr>();
        if (o->getValue<std::string>("format") != "kyso-audit-export-v1") {
            return Error::make("audit.export_invalid", "not a kyso audit export");
        }
        x.certificatePem = o->optValue<std::string>("auditCertificate", "");
        auto entries = o->getArray("entries");
        for (std::size_t i = 0; entries && i < entries->size(); ++i) {
            auto e = entries->getObject(static_cast<unsigned>(i));
            x.rows.push_back(
                AuditRow{e->getValue<std::uint64_t>("seq"), e->getValue<std::string>("time"),
                         e->getValue<std::string>("type"), e->getValue<std::string>("principal"),
                         e->getValue<std::string>("credential"),
                         e->getValue<std::string>("outcome"), e->getValue<std::string>("detail"),
                         e->getValue<std::string>("prevHash"), e->getValue<std::string>("hash")});
        }
        auto cps = o->getArray("checkpoints");
        for (std::size_t i = 0; cps && i < cps->size(); ++i) {
            auto c = cps->getObject(static_cast<unsigned>(i));
            x.checkpoints.push_back(AuditCheckpoint{
                c->getValue<std::uint64_t>("seq"), c->getValue<std::string>("hash"),
                c->getValue<std::string>("time"), c->getValue<std::string>("signature")});
        }
    } catch (const Poco::Exception& e) {
        return Error::make("audit.export_invalid", "unreadable audit export: " + e.displayText());
    }
    return x;
}

}  // namespace kyso::api
