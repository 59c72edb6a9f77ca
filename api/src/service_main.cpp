// `kyso-service`: the service side of the `kyso` command (serve, demo init, apikey), started by
// `kyso` with the same arguments. It links the HTTP, database and Argon2id libraries that local
// signing does not need.
#include <Poco/JSON/Stringifier.h>
#include <Poco/Net/NetSSL.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>

#include "cli_common.h"
#include "cli_sign.h"
#include "kyso/api/audit.h"
#include "kyso/api/credentials.h"
#include "kyso/api/demo.h"
#include "kyso/api/http_timestamper.h"
#include "kyso/api/service.h"
#include "kyso/api/store.h"
#include "kyso/api/verifier.h"
#include "kyso/ca-bridge/cmp.h"
#include "kyso/ca-bridge/crl.h"
#include "kyso/ca-bridge/issuer.h"
#include "report_json.h"

namespace kyso::cli {
namespace {

// A JSON string literal.
std::string jsonString(const std::string& s) {
    std::ostringstream o;
    Poco::JSON::Stringifier::formatString(s, o);
    return o.str();
}

// One audit event from a command-line process (no checkpoint key: the service signs the next
// checkpoint, which covers it). A failure is reported but does not undo the command.
void auditOnce(kyso::api::Store& store, kyso::api::AuditEvent e) {
    kyso::api::AuditLog log(store, nullptr);
    auto r = log.append(std::move(e));
    if (!r) {
        std::cerr << "kyso: warning: " << r.error().detail << "\n";
    }
}

int cmdDemoInit(const Args& a) {
    if (!onlyKnown(a, {"dir", "listen", "module", "key-type"})) {
        return kExitUsage;
    }
    kyso::api::DemoOptions o;
    if (!a.options.count("dir")) {
        std::cerr << kUsage;
        return kExitUsage;
    }
    o.dir = a.options.at("dir");
    if (a.options.count("listen")) {
        o.listen = a.options.at("listen");
    }
    if (a.options.count("module")) {
        o.module = a.options.at("module");
    }
    if (a.options.count("key-type")) {
        o.keyType = a.options.at("key-type");
    }
    auto st = kyso::api::demoInit(o, std::cout);
    return st ? 0 : fail(st.error(), exitCodeFor(st.error()));
}

int cmdServe(const Args& a) {
    if (!onlyKnown(a, {"config"})) {
        return kExitUsage;
    }
    auto cfg = configFrom(a);
    if (!cfg) {
        return fail(cfg.error(), kExitConfig);
    }
    if (auto st = kyso::api::checkAppearances(*cfg); !st) {
        return fail(st.error(), kExitConfig);
    }
    // A fixed mmap threshold, so that every allocation of 1 MiB or more is its own mapping and
    // goes back to the system when freed. Without it glibc raises the threshold to the size of
    // the first large block freed (up to 32 MiB): the 19 MiB of each Argon2id API-key check
    // (Store::authenticate, when a key's cache entry has expired) then come from the worker
    // threads' arenas and stay resident, up to 19 MiB per thread that ever checked a key at the
    // same time as others (the soak measured +95 MiB after the first expiry, docs/SOAK.md).
    ::mallopt(M_MMAP_THRESHOLD, 1 << 20);
    // Block the termination signals in every thread; the main thread waits for them below.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    ::signal(SIGPIPE, SIG_IGN);

    auto token = kyso::hsm::Token::open(cfg->token);
    if (!token) {
        return fail(token.error(), kExitUnavailable);
    }
    auto store = kyso::api::Store::open(cfg->databasePath);
    if (!store) {
        return fail(store.error(), kExitUnavailable);
    }
    auto creds = kyso::api::CredentialRegistry::load(*cfg, **token);
    if (!creds) {
        return fail(creds.error(), exitCodeFor(creds.error()));
    }
    auto serials = (*store)->serialSource("tsa");
    auto tsa = kyso::api::makeTimeStampAuthority(*cfg, *creds, *serials);
    if (!tsa) {
        return fail(tsa.error(), exitCodeFor(tsa.error()));
    }
    std::unique_ptr<kyso::signer::Timestamper> timestamper;
    if (cfg->timestamping) {
        auto http = kyso::api::makeHttpTimestamperFrom(*cfg->timestamping);
        if (!http) {
            return fail(http.error(), exitCodeFor(http.error()));
        }
        timestamper = std::move(*http);
    } else if (*tsa) {
        auto local = kyso::api::makeLocalTimestamper(*cfg, **tsa);
        if (!local) {
            return fail(local.error(), exitCodeFor(local.error()));
        }
        timestamper = std::move(*local);
    }
    if (timestamper && !cfg->timestamping) {
        // Size the in-process TSA's tokens now, not during the first signature.
        (void)timestamper->maxTokenSize(kyso::hsm::HashAlg::Sha256);
    }
    Poco::Net::initializeSSL();
    auto verifier = kyso::api::Verifier::make(*cfg, store->get(), &*creds);
    if (!verifier) {
        return fail(verifier.error(), kExitConfig);
    }
    const kyso::hsm::Credential* auditKey =
        cfg->audit ? creds->find(cfg->audit->credential) : nullptr;
    kyso::api::AuditLog audit(**store, auditKey, cfg->audit ? cfg->audit->checkpointEvery : 100);
    kyso::api::Service service(*cfg, **token, **store, *creds, **verifier, audit, tsa->get(),
                               timestamper.get());
    auto st = service.start();
    if (!st) {
        return fail(st.error(), kExitUnavailable);
    }
    if (!audit.append({"service.start", "-", "", "ok",
                       "{\"config\":" + jsonString(cfg->path) + ",\"policy\":" +
                           jsonString(cfg->signingPolicyFile.empty() ? "(built in)"
                                                                     : cfg->signingPolicyFile) +
                           "}"})) {
        service.stop();
        return fail(Error::make("audit.unavailable", "the audit log cannot be written"),
                    kExitUnavailable);
    }
    std::cout << "kyso: listening on https://" << cfg->listenHost << ":" << service.port()
              << " (token '" << (*token)->info().label << "', " << creds->ids().size()
              << " credentials)" << std::endl;
    int sig = 0;
    sigwait(&sigs, &sig);
    std::cout << "kyso: stopping (signal " << sig << ")" << std::endl;
    service.stop();
    if (!audit.append(
            {"service.stop", "-", "", "ok", "{\"signal\":" + std::to_string(sig) + "}"})) {
        std::cerr << "kyso: the stop could not be recorded in the audit log\n";
    }
    Poco::Net::uninitializeSSL();
    return 0;
}

int cmdApiKey(const std::string& verb, const Args& a) {
    if (!onlyKnown(a, {"config", "role", "name", "id"})) {
        return kExitUsage;
    }
    auto cfg = configFrom(a);
    if (!cfg) {
        return fail(cfg.error(), kExitConfig);
    }
    auto store = kyso::api::Store::open(cfg->databasePath);
    if (!store) {
        return fail(store.error(), kExitUnavailable);
    }
    if (verb == "create") {
        if (!a.options.count("role") || !a.options.count("name")) {
            std::cerr << kUsage;
            return kExitUsage;
        }
        auto role = kyso::policies::parseRole(a.options.at("role"));
        if (!role) {
            std::cerr << "kyso: role must be admin, officer, clerk or portal\n";
            return kExitUsage;
        }
        auto key = (*store)->createApiKey(a.options.at("name"), *role);
        if (!key) {
            return fail(key.error(), kExitUnavailable);
        }
        auditOnce(**store, {"apikey.create", "cli", "", "ok",
                            "{\"name\":" + jsonString(a.options.at("name")) +
                                ",\"role\":" + jsonString(a.options.at("role")) +
                                ",\"id\":" + jsonString(key->substr(5, 16)) + "}"});
        // The only time the key is shown.
        std::cout << *key << "\n";
        return 0;
    }
    if (verb == "list") {
        for (const auto& k : (*store)->listApiKeys()) {
            std::cout << k.id << "\t" << k.name << "\t" << k.role << "\t" << k.created << "\t"
                      << (k.revoked ? "revoked" : "active") << "\n";
        }
        return 0;
    }
    if (verb == "revoke") {
        if (!a.options.count("id")) {
            std::cerr << kUsage;
            return kExitUsage;
        }
        auto st = (*store)->revokeApiKey(a.options.at("id"));
        if (st) {
            auditOnce(**store, {"apikey.revoke", "cli", "", "ok",
                                "{\"idOrName\":" + jsonString(a.options.at("id")) + "}"});
        }
        return st ? 0 : fail(st.error(), kExitData);
    }
    std::cerr << kUsage;
    return kExitUsage;
}

// kyso ca revoke SERIAL --config FILE --ca NAME [--reason R]: records the revocation; the
// service's CRL of that CA lists it from its next request on.
// `kyso verify`: the report on stdout; the exit status says the indication.
int cmdVerify(const Args& a) {
    if (!onlyKnown(a, {"config", "data", "at"}) || a.positional.size() != 1) {
        std::cerr << kUsage;
        return kExitUsage;
    }
    std::time_t at = 0;
    if (a.options.count("at")) {
        struct tm tm {};
        const std::string& s = a.options.at("at");
        const char* end = ::strptime(s.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
        if (end == nullptr || *end != '\0') {
            std::cerr << "kyso: --at must be a UTC time like 2026-11-25T10:00:00Z\n";
            return kExitUsage;
        }
        at = ::timegm(&tm);
    }
    auto cfg = configFrom(a);
    if (!cfg) {
        return fail(cfg.error(), kExitConfig);
    }
    const std::string& in = a.positional[0];
    std::ifstream f(in, std::ios::binary);
    if (!f) {
        return fail(Error::make("io.read", "cannot read " + in), kExitIo);
    }
    std::string head(1024, '\0');
    f.read(head.data(), static_cast<std::streamsize>(head.size()));
    head.resize(static_cast<std::size_t>(f.gcount()));
    auto store = kyso::api::Store::open(cfg->databasePath);
    auto verifier = kyso::api::Verifier::make(*cfg, store ? store->get() : nullptr);
    if (!verifier) {
        return fail(verifier.error(), kExitConfig);
    }
    Result<kyso::policies::ValidationReport> report = Error::make("internal", "not run");
    if (head.find("%PDF-") != std::string::npos) {
        if (a.options.count("data")) {
            std::cerr << "kyso: --data is for detached CMS signatures, not PDFs\n";
            return kExitUsage;
        }
        report = (*verifier)->pdf(in, at);
    } else {
        std::stringstream ss;
        f.clear();
        f.seekg(0);
        ss << f.rdbuf();
        report =
            (*verifier)->cms(ss.str(), a.options.count("data") ? a.options.at("data") : "", at);
    }
    if (!report) {
        return fail(report.error(), exitCodeFor(report.error()));
    }
    kyso::api::reportJson(*report)->stringify(std::cout, 2);
    std::cout << "\n";
    return kyso::api::verifyExitCode(*report);
}

// kyso ca request --config FILE --key LABEL --subject "C=VN,O=...,CN=..." --server URL
//   --anchors PEM (--reference REF --secret file:PATH|env:NAME | --client CREDENTIAL)
//   [--type ir|cr|p10cr] [--generate RSA-2048|RSA-3072|EC-P256|EC-P384] --out CERT.pem
// The bridge to a production CA: the key (generated on the token with --generate when it is not
// there yet) is certified by an external CA over CMP, and the certificate is installed on the
// token beside its key and written to OUT with its chain, ready for a [credential.ID].
int cmdCaRequest(const Args& a) {
    if (!onlyKnown(a, {"config", "key", "subject", "server", "anchors", "reference", "secret",
                       "client", "type", "generate", "out", "timeout"}) ||
        !a.positional.empty()) {
        std::cerr << kUsage;
        return kExitUsage;
    }
    for (const char* req : {"key", "subject", "server", "anchors", "out"}) {
        if (!a.options.count(req)) {
            std::cerr << "kyso: --" << req << " is required\n" << kUsage;
            return kExitUsage;
        }
    }
    auto opt = [&](const char* k) { return a.options.count(k) ? a.options.at(k) : std::string(); };
    kyso::ca::CmpRequest request;
    const std::string type = opt("type").empty() ? "ir" : opt("type");
    if (type != "ir" && type != "cr" && type != "p10cr") {
        std::cerr << "kyso: --type must be ir, cr or p10cr\n";
        return kExitUsage;
    }
    request.type = type == "cr"      ? kyso::ca::CmpRequestType::Cr
                   : type == "p10cr" ? kyso::ca::CmpRequestType::P10cr
                                     : kyso::ca::CmpRequestType::Ir;
    // "C=VN,ST=Hà Nội,O=...,CN=..." (a comma inside a value is not supported here).
    std::stringstream subject(opt("subject"));
    for (std::string part; std::getline(subject, part, ',');) {
        const auto eq = part.find('=');
        if (eq == std::string::npos || eq == 0) {
            std::cerr << "kyso: --subject must be FIELD=VALUE,... (e.g. C=VN,O=Agency,CN=Name)\n";
            return kExitUsage;
        }
        request.subject.push_back({part.substr(0, eq), part.substr(eq + 1)});
    }
    auto cfg = configFrom(a);
    if (!cfg) {
        return fail(cfg.error(), kExitConfig);
    }
    auto token = kyso::hsm::Token::open(cfg->token);
    if (!token) {
        return fail(token.error(), kExitUnavailable);
    }
    const std::string label = opt("key");
    auto key = (*token)->findKey(kyso::hsm::KeyRef{label, std::nullopt});
    if (!key && key.error().code == "key.not_found" && !opt("generate").empty()) {
        const std::string g = opt("generate");
        kyso::hsm::KeySpec spec;
        spec.label = label;
        if (g == "RSA-2048" || g == "RSA-3072") {
            spec.type = kyso::hsm::KeyType::Rsa;
            spec.rsaBits = g == "RSA-3072" ? 3072 : 2048;
        } else if (g == "EC-P256" || g == "EC-P384") {
            spec.type = kyso::hsm::KeyType::Ec;
            spec.curve = g == "EC-P384" ? "P-384" : "P-256";
        } else {
            std::cerr << "kyso: --generate must be RSA-2048, RSA-3072, EC-P256 or EC-P384\n";
            return kExitUsage;
        }
        key = (*token)->generateKey(spec);
    }
    if (!key) {
        return fail(key.error(), exitCodeFor(key.error()));
    }
    kyso::hsm::Credential cred;
    cred.id = label;
    cred.token = token->get();
    cred.key = *key;
    kyso::hsm::chooseDefaultAlgorithms(cred);
    request.key = &cred;

    kyso::ca::CmpServer server;
    server.url = opt("server");
    server.trustAnchorsPem = opt("anchors");
    server.reference = opt("reference");
    server.secretSource = opt("secret");
    std::optional<kyso::hsm::Credential> client;
    if (!opt("client").empty()) {
        auto c = kyso::api::resolveCredential(*cfg, **token, opt("client"));
        if (!c) {
            return fail(c.error(), exitCodeFor(c.error()));
        }
        client = std::move(*c);
        server.clientCredential = &*client;
    }
    if (!opt("timeout").empty()) {
        server.timeoutSeconds = std::atoi(opt("timeout").c_str());
    }
    auto issued = kyso::ca::requestCertificate(server, request);
    if (!issued) {
        return fail(issued.error(), issued.error().code == "cmp.config"        ? kExitUsage
                                    : issued.error().code == "cmp.unreachable" ? kExitUnavailable
                                                                               : kExitData);
    }
    if (auto st = (*token)->storeCertificate(label, key->id, issued->certificateDer); !st) {
        return fail(st.error(), exitCodeFor(st.error()));
    }
    std::string pem = kyso::ca::certificateToPem(issued->certificateDer);
    for (const auto& c : issued->chainDer) {
        pem += kyso::ca::certificateToPem(c);
    }
    {
        std::ofstream out(opt("out"), std::ios::binary | std::ios::trunc);
        out << pem;
        if (!out) {
            return fail(kyso::Error::make("io.write", "cannot write " + opt("out")), kExitIo);
        }
    }
    std::cout << "kyso: certificate " << kyso::ca::serialHexOf(issued->certificateDer)
              << " installed on the token for key '" << label << "' and written to " << opt("out")
              << " (with " << issued->chainDer.size() << " chain certificate(s))\n";
    return 0;
}

int cmdCaRevoke(const Args& a) {
    if (!onlyKnown(a, {"config", "ca", "reason"}) || a.positional.size() != 1 ||
        !a.options.count("ca")) {
        std::cerr << kUsage;
        return kExitUsage;
    }
    const std::string reasonName =
        a.options.count("reason") ? a.options.at("reason") : "unspecified";
    auto reason = kyso::ca::parseRevocationReason(reasonName);
    if (!reason) {
        std::cerr << "kyso: --reason must be an RFC 5280 reason (unspecified, keyCompromise, "
                     "cACompromise, affiliationChanged, superseded, cessationOfOperation, "
                     "certificateHold, privilegeWithdrawn)\n";
        return kExitUsage;
    }
    std::string serial = a.positional[0];
    for (char& ch : serial) {
        ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    }
    serial.erase(std::remove(serial.begin(), serial.end(), ':'), serial.end());
    if (serial.empty() || serial.find_first_not_of("0123456789ABCDEF") != std::string::npos) {
        std::cerr << "kyso: SERIAL must be the certificate serial number in hex\n";
        return kExitUsage;
    }
    while (serial.size() > 1 && serial[0] == '0') {
        serial.erase(0, 1);
    }
    auto cfg = configFrom(a);
    if (!cfg) {
        return fail(cfg.error(), kExitConfig);
    }
    const auto* cc = cfg->findCredential(a.options.at("ca"));
    if (cc == nullptr || cc->kind != "ca") {
        return fail(kyso::Error::make("credential.unknown",
                                      "no CA '" + a.options.at("ca") + "' is configured"),
                    kExitConfig);
    }
    auto store = kyso::api::Store::open(cfg->databasePath);
    if (!store) {
        return fail(store.error(), kExitUnavailable);
    }
    auto st = (*store)->revokeCertificate(cc->id, serial, static_cast<int>(*reason));
    if (!st) {
        return fail(st.error(), kExitData);
    }
    auditOnce(**store, {"ca.revoke", "cli", cc->id, "ok",
                        "{\"serial\":" + jsonString(serial) +
                            ",\"reason\":" + jsonString(reasonName) + "}"});
    std::cout << "kyso: revoked " << serial << " of " << cc->id << " (" << reasonName << ")\n";
    return 0;
}

// `kyso audit verify`: exit 0 when the chain and every checkpoint hold; otherwise the first bad
// sequence number on stdout and exit 1.
// The audit certificate's PEM from [audit] (empty when none is configured).
Result<std::string> auditCertificatePem(const kyso::api::Config& cfg) {
    if (!cfg.audit) {
        return std::string();
    }
    const kyso::api::CredentialConfig* cc = cfg.findCredential(cfg.audit->credential);
    std::ifstream in(cc->certificate, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    auto certs = kyso::ca::certificatesFromPem(ss.str());
    if (!certs || certs->empty()) {
        return Error::make("config.invalid",
                           "cannot read the audit certificate " + cc->certificate);
    }
    return kyso::ca::certificateToPem(certs->front());
}

// The database and the audit certificate (PEM; empty without [audit]) of --config; on failure
// the exit status is in *exitCode.
struct AuditSource {
    std::unique_ptr<kyso::api::Store> store;
    std::string certificatePem;
};

std::optional<AuditSource> openAudit(const Args& a, int* exitCode) {
    auto cfg = configFrom(a);
    if (!cfg) {
        *exitCode = fail(cfg.error(), kExitConfig);
        return std::nullopt;
    }
    auto pem = auditCertificatePem(*cfg);
    if (!pem) {
        *exitCode = fail(pem.error(), kExitConfig);
        return std::nullopt;
    }
    auto store = kyso::api::Store::open(cfg->databasePath);
    if (!store) {
        *exitCode = fail(store.error(), kExitUnavailable);
        return std::nullopt;
    }
    return AuditSource{std::move(*store), std::move(*pem)};
}

int reportAudit(const kyso::api::AuditVerification& v, bool haveCertificate) {
    if (!v.intact) {
        std::cout << v.firstBadSeq << "\n";
        std::cerr << "kyso: audit log broken at entry " << v.firstBadSeq << ": " << v.reason
                  << "\n";
        return 1;
    }
    std::cerr << "kyso: audit log intact: " << v.entries << " entries, " << v.checkpoints
              << " signed checkpoints (last at " << v.lastCheckpointSeq << ")"
              << (haveCertificate ? "" : "; no audit certificate: checkpoints not configured")
              << "\n";
    return 0;
}

// `kyso audit verify --config FILE`: the database. `kyso audit verify --export FILE
// [--certificate PEM]`: an export, offline (the auditor's own copy of the audit certificate,
// else the one in the export). Exit 0 when the chain and every checkpoint hold; otherwise the
// first bad sequence number on stdout and exit 1.
int cmdAuditVerify(const Args& a) {
    if (!onlyKnown(a, {"config", "export", "certificate"})) {
        return kExitUsage;
    }
    if (a.options.count("export")) {
        std::ifstream in(a.options.at("export"), std::ios::binary);
        if (!in) {
            return fail(Error::make("io.read", "cannot read " + a.options.at("export")), kExitIo);
        }
        std::stringstream text;
        text << in.rdbuf();
        auto x = kyso::api::readAuditExport(text.str());
        if (!x) {
            return fail(x.error(), kExitData);
        }
        std::string pem = x->certificatePem;
        if (a.options.count("certificate")) {
            std::ifstream c(a.options.at("certificate"), std::ios::binary);
            std::stringstream cs;
            cs << c.rdbuf();
            pem = cs.str();
        } else if (!pem.empty()) {
            std::cerr << "kyso: warning: checking with the certificate inside the export; give "
                         "--certificate with your own copy\n";
        }
        auto certs = kyso::ca::certificatesFromPem(pem);
        const std::string der = certs && !certs->empty() ? certs->front() : std::string();
        std::size_t next = 0;
        auto v = kyso::api::verifyAuditChain(
            [&](std::uint64_t, std::size_t limit) {
                std::vector<kyso::api::AuditRow> out;
                while (next < x->rows.size() && out.size() < limit) {
                    out.push_back(x->rows[next++]);
                }
                return out;
            },
            x->checkpoints, der);
        return reportAudit(v, !der.empty());
    }
    int exitCode = 0;
    auto audit = openAudit(a, &exitCode);
    if (!audit) {
        return exitCode;
    }
    auto certs = kyso::ca::certificatesFromPem(audit->certificatePem);
    const std::string der = certs && !certs->empty() ? certs->front() : std::string();
    return reportAudit(kyso::api::verifyAuditLog(*audit->store, der), !der.empty());
}

// `kyso audit export --config FILE --out FILE`: every entry and checkpoint with the audit
// certificate, for `kyso audit verify --export` on another machine.
int cmdAuditExport(const Args& a) {
    if (!onlyKnown(a, {"config", "out"}) || !a.options.count("out")) {
        std::cerr << kUsage;
        return kExitUsage;
    }
    int exitCode = 0;
    auto audit = openAudit(a, &exitCode);
    if (!audit) {
        return exitCode;
    }
    std::ofstream out(a.options.at("out"), std::ios::binary | std::ios::trunc);
    out << kyso::api::exportAuditLog(*audit->store, audit->certificatePem);
    out.close();
    if (!out) {
        return fail(Error::make("io.write", "cannot write " + a.options.at("out")), kExitIo);
    }
    return 0;
}

// The TSA of a B-T signature made on the command line: the configured external TSA, else the
// service's own TSA run in this process (the token is shared; serial numbers come from the same
// database, in their own reserved blocks).
TimestamperFactory signingTimestamper(const Args& a) {
    return
        [&a](kyso::hsm::Token& token) -> kyso::Result<std::unique_ptr<kyso::signer::Timestamper>> {
            auto cfg = configFrom(a);
            if (!cfg) {
                return cfg.error();
            }
            if (cfg->timestamping) {
                return kyso::api::makeHttpTimestamperFrom(*cfg->timestamping);
            }
            struct Local final : kyso::signer::Timestamper {
                // Owns what the in-process TSA needs, for the command's lifetime.
                std::unique_ptr<kyso::api::Store> store;
                std::unique_ptr<kyso::signer::SerialSource> serials;
                std::optional<kyso::api::CredentialRegistry> creds;
                std::unique_ptr<kyso::signer::TimeStampAuthority> tsa;
                explicit Local(std::vector<std::string> anchors)
                    : Timestamper(std::move(anchors)) {}
                kyso::Result<std::string> exchange(const std::string& request) override {
                    return tsa->respond(request);
                }
            };
            if (!cfg->tsa) {
                return kyso::Error::make("level.unsupported", "no TSA is configured");
            }
            std::ifstream in(cfg->tsa->trustAnchors, std::ios::binary);
            std::stringstream pem;
            pem << in.rdbuf();
            auto anchors = kyso::ca::certificatesFromPem(pem.str());
            if (!anchors) {
                return kyso::Error::make("config.invalid", "[tsa] trustAnchors: no certificate");
            }
            auto local = std::make_unique<Local>(std::move(*anchors));
            auto store = kyso::api::Store::open(cfg->databasePath);
            if (!store) {
                return store.error();
            }
            local->store = std::move(*store);
            local->serials = local->store->serialSource("tsa");
            auto creds = kyso::api::CredentialRegistry::load(*cfg, token);
            if (!creds) {
                return creds.error();
            }
            local->creds = std::move(*creds);
            auto tsa = kyso::api::makeTimeStampAuthority(*cfg, *local->creds, *local->serials);
            if (!tsa) {
                return tsa.error();
            }
            local->tsa = std::move(*tsa);
            return std::unique_ptr<kyso::signer::Timestamper>(std::move(local));
        };
}

}  // namespace
}  // namespace kyso::cli

int main(int argc, char** argv) {
    using namespace kyso::cli;
    return runCli(argc, argv, [&](const std::string& cmd, const std::string& sub) {
        auto args = parseArgs(argc, argv, cmd == "serve" || cmd == "verify" ? 2 : 3);
        if (args && cmd == "ca" && sub == "revoke") {
            return cmdCaRevoke(*args);
        }
        if (args && cmd == "ca" && sub == "request") {
            return cmdCaRequest(*args);
        }
        if (args && cmd == "verify") {
            return cmdVerify(*args);
        }
        if (args && args->positional.empty() && cmd == "audit" && sub == "verify") {
            return cmdAuditVerify(*args);
        }
        if (args && args->positional.empty() && cmd == "audit" && sub == "export") {
            return cmdAuditExport(*args);
        }
        if (!args || !args->positional.empty()) {
            std::cerr << kUsage;
            return kExitUsage;
        }
        if (cmd == "demo" && sub == "init") {
            return cmdDemoInit(*args);
        }
        if (cmd == "serve") {
            return cmdServe(*args);
        }
        if (cmd == "apikey") {
            return cmdApiKey(sub, *args);
        }
        if (cmd == "sign") {
            return cmdSign(sub, *args, signingTimestamper(*args));
        }
        std::cerr << kUsage;
        return kExitUsage;
    });
}
