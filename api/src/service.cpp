#include "kyso/api/service.h"

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerConnection.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerRequestImpl.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/HTTPServerResponseImpl.h>
#include <Poco/Net/HTTPServerSession.h>
#include <Poco/Net/MediaType.h>
#include <Poco/Net/MessageHeader.h>
#include <Poco/Net/MultipartReader.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/SecureStreamSocket.h>
#include <Poco/Net/TCPServer.h>
#include <Poco/Net/TCPServerConnectionFactory.h>
#include <Poco/Net/X509Certificate.h>
#include <Poco/StreamCopier.h>
#include <Poco/ThreadPool.h>
#include <Poco/URI.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <regex>
#include <sstream>
#include <thread>

#include "activation.h"
#include "audit_json.h"
#include "citizens.h"
#include "kyso/api/verifier.h"
#include "kyso/ca-bridge/crl.h"
#include "kyso/ca-bridge/issuer.h"
#include "kyso/ca-bridge/ocsp.h"
#include "kyso/hsm/encoding.h"
#include "kyso/hsm/ossl_ptr.h"
#include "kyso/policies/signing_policy.h"
#include "kyso/signer/cms.h"
#include "kyso/signer/jws.h"
#include "kyso/signer/pades.h"
#include "kyso/signer/xades.h"
#include "local_ocsp.h"
#include "log.h"
#include "metrics.h"
#include "qr.h"
#include "receipt.h"
#include "report_json.h"
#include "visible.h"

namespace kyso::api {

namespace fs = std::filesystem;
using Poco::Net::HTTPResponse;
using Poco::Net::HTTPServerRequest;
using Poco::Net::HTTPServerResponse;

Result<std::unique_ptr<signer::TimeStampAuthority>> makeTimeStampAuthority(
    const Config& cfg, const CredentialRegistry& creds, signer::SerialSource& serials) {
    if (!cfg.tsa) {
        return std::unique_ptr<signer::TimeStampAuthority>();
    }
    const hsm::Credential* cred = creds.find(cfg.tsa->credential);
    if (cred == nullptr) {
        return Error::make("config.invalid", "the TSA credential is not loaded");
    }
    signer::TsaPolicy p;
    p.policyOid = cfg.tsa->policy;
    p.otherPolicies = cfg.tsa->otherPolicies;
    p.digests = cfg.tsa->digests;
    p.accuracySeconds = cfg.tsa->accuracySeconds;
    p.accuracyMillis = cfg.tsa->accuracyMillis;
    p.includeTsaName = cfg.tsa->includeName;
    return signer::TimeStampAuthority::create(*cred, p, serials);
}

Result<std::unique_ptr<signer::Timestamper>> makeLocalTimestamper(const Config& cfg,
                                                                  signer::TimeStampAuthority& tsa) {
    if (!cfg.tsa) {
        return Error::make("config.invalid", "no [tsa] section");
    }
    std::ifstream in(cfg.tsa->trustAnchors, std::ios::binary);
    std::stringstream pem;
    pem << in.rdbuf();
    auto anchors = ca::certificatesFromPem(pem.str());
    if (!anchors) {
        return Error::make("config.invalid",
                           "[tsa] trustAnchors: no certificate in " + cfg.tsa->trustAnchors);
    }
    return std::unique_ptr<signer::Timestamper>(
        new signer::LocalTimestamper(tsa, std::move(*anchors)));
}

// SHA-256/384/512 by OID (as the CSC API names them) or, with `names`, also by name ("SHA-256").
static std::optional<hsm::HashAlg> sha2Of(std::string_view id, bool names) {
    for (hsm::HashAlg h : {hsm::HashAlg::Sha256, hsm::HashAlg::Sha384, hsm::HashAlg::Sha512}) {
        if (id == hsm::hashOid(h) || (names && id == hsm::hashName(h))) {
            return h;
        }
    }
    return std::nullopt;
}

// How often the service checks its token in the background (Impl::probeToken).
constexpr std::chrono::seconds kTokenProbeInterval{1};

// The label of the token's AES key that seals citizens' TOTP keys in the database.
constexpr const char* kCitizenSecretsKey = "kyso-citizen-secrets";

int httpStatusFor(const std::string& code) {
    static const std::map<std::string, int> exact = {
        {"pdf.empty", 400},
        {"pdf.not_pdf", 415},
        {"request.invalid", 400},
        {"content_type.unsupported", 415},
        {"body.too_large", 413},
        {"auth.required", 401},
        {"auth.invalid", 401},
        {"auth.denied", 403},
        {"credential.unknown", 404},
        {"route.not_found", 404},
        {"request.malformed", 400},
        {"length.required", 411},
        {"rate.limited", 429},
        {"audit.unavailable", 503},
        {"method.not_allowed", 405},
        {"level.unsupported", 400},
        // What a request asks to draw that cannot be drawn; the other appearance.* codes are
        // the configured images and fonts (checked when the service starts).
        {"appearance.outside_page", 422},
        {"appearance.rect_invalid", 400},
        {"appearance.too_small", 422},
        {"appearance.no_rect", 422},
        {"appearance.glyph_missing", 422},
        {"appearance.text_invalid", 400},
        {"citizens.unavailable", 404},
        {"receipt.invalid", 422},
        {"receipt.unknown", 404},
        {"receipt.cancelled", 409},
        {"jws.payload_invalid", 422},
        {"jws.invalid", 422},
        {"jws.alg_unsupported", 422},
        {"jws.crit_unsupported", 422},
        {"xml.invalid", 422},
        {"citizen.invalid", 400},
        {"citizen.duplicate", 409},
        {"citizen.unknown", 404},
        {"citizen.revoked", 409},
        {"citizen.already_revoked", 409},
        {"ca.already_revoked", 409},
        {"activation.conflict", 409},
        {"csc.invalid_request", 400},
        {"csc.invalid_grant", 400},
        {"csc.invalid_pin", 400},
        {"csc.invalid_new_pin", 400},
        {"csc.locked", 403},
        {"csc.pin_change_required", 403},
        {"csc.sad_invalid", 400},
        {"csc.sad_expired", 400},
        {"csc.sad_used_up", 400},
        {"csc.hash_not_authorized", 400},
        {"tsa.too_large", 413},
        {"tsa.not_a_request", 400},
        {"cms.empty", 400},
        {"cms.invalid", 422},
        {"cms.data_missing", 422},
        {"tsa.unavailable", 503},
        {"tsa.token_too_large", 503},
        {"tsa.rejected", 502},
        {"tsa.invalid_reply", 502},
    };
    if (auto it = exact.find(code); it != exact.end()) {
        return it->second;
    }
    if (code.rfind("pdf.", 0) == 0) {
        return 422;
    }
    if (code.rfind("token.", 0) == 0 || code.rfind("key.", 0) == 0 || code == "db.unavailable") {
        return 503;
    }
    return 500;
}

namespace {

// Requests per principal in the last minute (a sliding window), for [policy] ratePerMinute.
class RateLimiter {
  public:
    bool allow(const std::string& principal, unsigned perMinute) {
        const auto now = std::chrono::steady_clock::now();
        std::lock_guard lk(m_mu);
        auto& times = m_seen[principal];
        while (!times.empty() && now - times.front() >= std::chrono::minutes(1)) {
            times.pop_front();
        }
        if (times.size() >= perMinute) {
            return false;
        }
        times.push_back(now);
        return true;
    }

  private:
    std::mutex m_mu;
    std::map<std::string, std::deque<std::chrono::steady_clock::time_point>> m_seen;
};

std::string sha256Hex(const std::string& data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    ::EVP_Digest(data.data(), data.size(), md, &len, ::EVP_sha256(), nullptr);
    return hsm::hexOf(md, len);
}

// SHA-256 of a (spool) file, hex; empty on a read error.
std::string hexToBytes(const std::string& hex) {
    std::string out;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
        out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    return out;
}

std::string sha256OfFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    OsslPtr<EVP_MD_CTX> ctx(::EVP_MD_CTX_new());
    ::EVP_DigestInit_ex(ctx.get(), ::EVP_sha256(), nullptr);
    std::vector<char> buf(1 << 16);
    while (in) {
        in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
        ::EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<std::size_t>(in.gcount()));
    }
    if (in.bad()) {
        return {};
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    ::EVP_DigestFinal_ex(ctx.get(), md, &len);
    return hsm::hexOf(md, len);
}

// An audit event's detail: a flat JSON object of strings.
std::string auditDetail(std::initializer_list<std::pair<const char*, std::string>> fields) {
    Poco::JSON::Object o(Poco::JSON_PRESERVE_KEY_ORDER);
    for (const auto& [k, v] : fields) {
        o.set(k, v);
    }
    std::ostringstream ss;
    o.stringify(ss);
    return ss.str();
}

// The public id part of an API key ("kyso_<id>_<secret>"), never the secret.
std::string keyIdOf(const std::string& key) {
    if (key.size() > 21 && key.rfind("kyso_", 0) == 0) {
        return key.substr(5, 16);
    }
    return "(malformed)";
}

std::string randomHex(std::size_t bytes) {
    std::vector<unsigned char> b(bytes);
    ::RAND_bytes(b.data(), static_cast<int>(b.size()));
    return hsm::hexOf(b.data(), b.size());
}

std::string isoTime(const ASN1_TIME* t) {
    std::tm tm{};
    if (t == nullptr || ::ASN1_TIME_to_tm(t, &tm) != 1) {
        return "";
    }
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::string subjectOf(const std::string& der) {
    OsslPtr<X509> x = x509FromDer(der);
    return x ? nameToString(::X509_get_subject_name(x.get())) : std::string();
}

// An anonymous spool file: in memory (memfd) for bodies up to kMemorySpool bytes, otherwise an
// O_TMPFILE file in the spool directory. Neither has a name in any directory, so nothing is left
// behind when the request ends or the process dies, and no directory entry is created per
// request. qpdf and the signer read it through /proc/self/fd/N.
constexpr std::int64_t kMemorySpool = 8 * 1024 * 1024;

class SpoolFile {
  public:
    SpoolFile(const std::string& dir, bool inMemory) {
        if (inMemory) {
            m_fd = ::memfd_create("kyso-spool", MFD_CLOEXEC);
        }
        if (m_fd < 0) {
            m_fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        }
        if (m_fd < 0) {
            // A file system without O_TMPFILE: a named file, unlinked at once.
            std::string path = dir + "/req-XXXXXX";
            m_fd = ::mkstemp(path.data());
            if (m_fd >= 0) {
                ::unlink(path.c_str());
            }
        }
    }
    ~SpoolFile() {
        if (m_fd >= 0) {
            ::close(m_fd);
        }
    }
    SpoolFile(const SpoolFile&) = delete;
    SpoolFile& operator=(const SpoolFile&) = delete;
    bool ok() const { return m_fd >= 0; }
    int fd() const { return m_fd; }
    std::string path() const { return "/proc/self/fd/" + std::to_string(m_fd); }

  private:
    int m_fd = -1;
};

struct Problem {
    std::string code;
    std::string detail;
};

const char* titleFor(int status) {
    switch (status) {
        case 400:
            return "Bad Request";
        case 401:
            return "Unauthorized";
        case 403:
            return "Forbidden";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 413:
            return "Content Too Large";
        case 415:
            return "Unsupported Media Type";
        case 422:
            return "Unprocessable Content";
        case 502:
            return "Bad Gateway";
        case 503:
            return "Service Unavailable";
        default:
            return "Internal Server Error";
    }
}

}  // namespace

struct Service::Impl {
    const Config& cfg;
    hsm::Token& token;
    Store& store;
    CredentialRegistry& creds;
    signer::TimeStampAuthority* tsa;
    signer::Timestamper* timestamper;
    const Verifier* verifier;
    AuditLog* audit;
    Metrics metrics;
    RateLimiter rateLimiter;
    std::unique_ptr<Poco::ThreadPool> pool;
    std::unique_ptr<Poco::Net::TCPServer> server;
    Poco::Net::HTTPRequestHandlerFactory::Ptr handlers;

    // The token probe: every kTokenProbeInterval, Token::ready() checks a session, so a token
    // that went away is noticed, and one that came back is logged in again (a lost connection
    // is re-made by the next probe), without a request having to fail first. Token never retries
    // a PIN the token rejected, so neither does the probe.
    std::thread tokenProbe;
    std::mutex probeMu;
    std::condition_variable probeCv;
    bool probeStop = false;

    void probeToken() {
        std::unique_lock lk(probeMu);
        while (!probeCv.wait_for(lk, kTokenProbeInterval, [this] { return probeStop; })) {
            lk.unlock();
            (void)token.ready();
            lk.lock();
        }
    }

    // Requests inside handle(): stop() waits for them before the token may go away.
    std::mutex flightMu;
    std::condition_variable flightCv;
    int inFlight = 0;
    bool stopping = false;

    // Citizens' enrolment and activation, with a [citizens] section.
    std::unique_ptr<Activation> activation;
    std::unique_ptr<Citizens> citizens;

    Impl(const Config& c, hsm::Token& t, Store& s, CredentialRegistry& r,
         signer::TimeStampAuthority* a, signer::Timestamper* ts, const Verifier& v, AuditLog& al)
        : cfg(c), token(t), store(s), creds(r), tsa(a), timestamper(ts), verifier(&v), audit(&al) {
        if (cfg.citizens) {
            Activation::Options options;
            options.sadLifetime = std::chrono::seconds(cfg.citizens->sadLifetimeSeconds);
            // Citizens' TOTP keys are kept in the database sealed by an AES key on the token.
            options.sealSecret = [this](std::string_view key, std::string_view id) {
                return token.seal(kCitizenSecretsKey, key, id);
            };
            options.unsealSecret = [this](std::string_view sealed, std::string_view id) {
                return token.unseal(kCitizenSecretsKey, sealed, id);
            };
            activation = std::make_unique<Activation>(
                store, [] { return std::chrono::system_clock::now(); }, options);
            citizens = std::make_unique<Citizens>(cfg, token, store, creds, *activation);
        }
    }

    struct Exchange {
        HTTPServerRequest& req;
        HTTPServerResponse& resp;
        std::string requestId;
        std::string principal = "-";
        int status = 0;
    };

    void sendObject(Exchange& x, int status, const std::string& contentType,
                    const Poco::JSON::Object& body) {
        std::ostringstream ss;
        body.stringify(ss);
        const std::string s = ss.str();
        x.status = status;
        x.resp.setStatus(static_cast<HTTPResponse::HTTPStatus>(status));
        x.resp.setContentType(contentType);
        x.resp.setContentLength64(static_cast<Poco::Int64>(s.size()));
        x.resp.send() << s;
    }

    void sendJson(Exchange& x, int status, const Poco::JSON::Object& body) {
        sendObject(x, status, "application/json", body);
    }

    void sendProblem(Exchange& x, const Problem& p, int status = 0) {
        if (status == 0) {
            status = httpStatusFor(p.code);
        }
        Poco::JSON::Object o;
        o.set("type", "urn:kyso:problem:" + p.code);
        o.set("title", std::string(titleFor(status)));
        o.set("status", status);
        o.set("detail", p.detail);
        o.set("code", p.code);
        o.set("requestId", x.requestId);
        if (status == 401) {
            x.resp.set("WWW-Authenticate", "Bearer realm=\"kyso\"");
        }
        sendObject(x, status, "application/problem+json", o);
    }

    void sendError(Exchange& x, const Error& e) { sendProblem(x, Problem{e.code, e.detail}); }

    // An audit event whose loss must not change the answer (failures, denials): an error is
    // logged, and the request is answered as it would have been.
    void record(AuditEvent e) {
        metrics.operation(e.credential, e.type, e.outcome);
        auto r = audit->append(std::move(e));
        if (!r) {
            logJson("error", "audit append failed", {{"error", r.error().detail}});
        }
    }

    // Appends an audit event and waits until it is durably committed. When the log cannot be
    // written the request fails with 503 and nothing it produced is returned.
    bool audited(Exchange& x, AuditEvent e) {
        metrics.operation(e.credential, e.type, e.outcome);
        auto r = audit->append(std::move(e));
        if (!r) {
            // The cause (e.g. "database or disk is full") is for the operator, not the client.
            logJson("error", "audit append failed: the result is withheld",
                    {{"requestId", x.requestId}, {"error", r.error().detail}});
            sendProblem(x, {"audit.unavailable",
                            "the audit log cannot be written: the result is withheld"});
            return false;
        }
        return true;
    }

    // Registered client certificates by the SHA-256 of their DER (hex), filled by start().
    std::map<std::string, policies::Principal> clients;

    // The principal of the TLS client certificate, when one was presented (the handshake has
    // checked it against [server] clientCa). `presented` says whether there was one.
    std::optional<policies::Principal> clientPrincipal(Exchange& x, bool* presented) {
        *presented = false;
        auto* impl = dynamic_cast<Poco::Net::HTTPServerRequestImpl*>(&x.req);
        if (impl == nullptr || clients.empty()) {
            return std::nullopt;
        }
        try {
            Poco::Net::SecureStreamSocket socket(impl->socket());
            if (!socket.havePeerCertificate()) {
                return std::nullopt;
            }
            *presented = true;
            Poco::Net::X509Certificate cert = socket.peerCertificate();
            unsigned char md[EVP_MAX_MD_SIZE];
            unsigned int len = 0;
            if (::X509_digest(cert.certificate(), ::EVP_sha256(), md, &len) != 1) {
                return std::nullopt;
            }
            auto it = clients.find(hsm::hexOf(md, len));
            if (it != clients.end()) {
                return it->second;
            }
        } catch (const Poco::Exception&) {
        }
        return std::nullopt;
    }

    std::optional<policies::Principal> authenticate(Exchange& x) {
        const std::string auth = x.req.get("Authorization", "");
        if (auth.empty()) {
            bool presented = false;
            if (auto p = clientPrincipal(x, &presented)) {
                x.principal = p->name;
                return p;
            }
            if (presented) {
                record({"auth.failure", "-", "", "denied",
                        auditDetail({{"certificate", "not registered"},
                                     {"path", Poco::URI(x.req.getURI()).getPath()}})});
                sendProblem(x, {"auth.invalid", "the client certificate is not registered"});
                return std::nullopt;
            }
            sendProblem(x, {"auth.required",
                            "this endpoint needs an API key (Authorization: "
                            "Bearer ...)"});
            return std::nullopt;
        }
        if (auth.size() < 8 || Poco::icompare(auth.substr(0, 7), "Bearer ") != 0) {
            sendProblem(x, {"auth.invalid", "the Authorization header is not a Bearer key"});
            return std::nullopt;
        }
        auto p = store.authenticate(auth.substr(7));
        if (!p) {
            record({"auth.failure", "-", "", "denied",
                    auditDetail({{"key", keyIdOf(auth.substr(7))},
                                 {"path", Poco::URI(x.req.getURI()).getPath()}})});
            sendProblem(x, {"auth.invalid", "the API key is not valid"});
            return std::nullopt;
        }
        x.principal = p->name;
        return p;
    }

    void healthz(Exchange& x) {
        Poco::JSON::Object o;
        o.set("status", "ok");
        sendJson(x, 200, o);
    }

    void readyz(Exchange& x) {
        Poco::JSON::Object checks;
        const bool tokenOk = token.ready();
        const bool dbOk = store.writable();
        bool certsOk = true;
        for (const auto& id : creds.configuredIds()) {
            OsslPtr<X509> c = x509FromDer(creds.find(id)->certificateDer);
            if (!c || ::X509_cmp_current_time(::X509_get0_notAfter(c.get())) <= 0 ||
                ::X509_cmp_current_time(::X509_get0_notBefore(c.get())) >= 0) {
                certsOk = false;
            }
        }
        checks.set("token", tokenOk ? "ok" : "unavailable");
        checks.set("database", dbOk ? "ok" : "unavailable");
        checks.set("certificates", certsOk ? "ok" : "expired or not yet valid");
        Poco::JSON::Object o;
        const bool ready = tokenOk && dbOk && certsOk;
        o.set("status", ready ? "ready" : "not ready");
        o.set("checks", checks);
        sendJson(x, ready ? 200 : 503, o);
    }

    void listCredentials(Exchange& x) {
        auto who = authenticate(x);
        if (!who) {
            return;
        }
        Poco::JSON::Array arr;
        for (const auto& id : creds.ids()) {
            if (!policies::mayUse(policies::authorizationOf(cfg.signing), *who, creds.facts(id))) {
                continue;
            }
            const hsm::Credential* c = creds.find(id);
            OsslPtr<X509> cert = x509FromDer(c->certificateDer);
            Poco::JSON::Object o;
            o.set("id", c->id);
            o.set("kind", c->kind);
            o.set("subject", subjectOf(c->certificateDer));
            o.set("keyAlgorithm", keyAlgorithmName(c->key));
            Poco::JSON::Array chain;
            chain.add(ca::certificateToPem(c->certificateDer));
            for (const auto& d : c->chainDer) {
                chain.add(ca::certificateToPem(d));
            }
            o.set("certificateChain", chain);
            o.set("notAfter", isoTime(cert ? ::X509_get0_notAfter(cert.get()) : nullptr));
            arr.add(o);
        }
        Poco::JSON::Object body;
        body.set("credentials", arr);
        sendJson(x, 200, body);
    }

    // Streams the request body into `file`, refusing more than maxBodyBytes.
    std::optional<Problem> spoolBody(Exchange& x, const SpoolFile& file, std::uint64_t* size) {
        const std::int64_t declared = x.req.getContentLength64();
        std::uint64_t total = 0;
        if (auto p = spoolStream(x, x.req.stream(), file.fd(), &total)) {
            return p;
        }
        if (declared > 0 && total != static_cast<std::uint64_t>(declared)) {
            x.resp.setKeepAlive(false);
            return Problem{"request.invalid", "the body is shorter than its Content-Length"};
        }
        *size = total;
        return std::nullopt;
    }

    // Copies `in` to `fd` (-1: into `text`), adding to `*total`, which may not pass maxBodyBytes.
    std::optional<Problem> spoolStream(Exchange& x, std::istream& in, int fd, std::uint64_t* total,
                                       std::string* text = nullptr) {
        std::vector<char> buf(1 << 16);
        while (in) {
            in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
            const auto n = static_cast<std::uint64_t>(in.gcount());
            if (n == 0) {
                break;
            }
            *total += n;
            if (*total > cfg.maxBodyBytes) {
                x.resp.setKeepAlive(false);
                return tooLarge();
            }
            if (text != nullptr) {
                text->append(buf.data(), n);
                continue;
            }
            const char* p = buf.data();
            std::size_t left = n;
            while (left > 0) {
                const ssize_t w = ::write(fd, p, left);
                if (w < 0 && errno == EINTR) {
                    continue;
                }
                if (w <= 0) {
                    return Problem{"io.write", "cannot spool the request body"};
                }
                p += w;
                left -= static_cast<std::size_t>(w);
            }
        }
        return std::nullopt;
    }

    // After the answer, read and discard a bounded part of an unread body: a client still
    // sending when the connection closes would see a reset instead of the answer, and a kept-alive
    // connection must not parse the rest of a body as the next request. Nothing is kept; a body
    // far over the bound gets the connection closed.
    static void drain(Exchange& x) {
        constexpr std::uint64_t kDrainBytes = 8 * 1024 * 1024;
        std::istream& in = x.req.stream();
        std::vector<char> buf(1 << 16);
        std::uint64_t seen = 0;
        while (in && seen < kDrainBytes) {
            in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
            if (in.gcount() <= 0) {
                break;
            }
            seen += static_cast<std::uint64_t>(in.gcount());
        }
        if (in && seen >= kDrainBytes) {
            x.resp.setKeepAlive(false);
        }
    }

    Problem tooLarge() const {
        return Problem{"body.too_large", "the body exceeds the limit of " +
                                             std::to_string(cfg.maxBodyBytes) + " bytes"};
    }

    // What every signing request has: an authenticated principal, known query parameters, a
    // credential the policy lets it use for `op`, and a level.
    struct SignRequest {
        policies::Principal principal;
        std::map<std::string, std::string> q;
        const hsm::Credential* cred = nullptr;
        std::string level;
        policies::Operation op = policies::Operation::SignPdf;
    };

    // The credential CREDID if WHO may use it for OP; otherwise the problem is sent, the
    // denial audited, and null returned.
    const hsm::Credential* authorizeUse(Exchange& x, const policies::Principal& who,
                                        const std::string& credId, policies::Operation op) {
        const hsm::Credential* cred = creds.find(credId);
        if (cred == nullptr) {
            sendProblem(x, {"credential.unknown", "no credential '" + credId + "'"});
            return nullptr;
        }
        auto decision =
            policies::decide(policies::authorizationOf(cfg.signing), who, creds.facts(credId), op);
        if (!decision.allowed) {
            record({"policy.denial", who.name, credId, "denied",
                    auditDetail(
                        {{"rule", decision.rule}, {"operation", policies::operationName(op)}})});
            sendProblem(x, {"auth.denied", decision.reason + " (rule " + decision.rule + ")"});
            return nullptr;
        }
        return cred;
    }

    std::optional<SignRequest> parseSignRequest(Exchange& x, policies::Operation op,
                                                const std::set<std::string>& known) {
        auto who = authenticate(x);
        if (!who) {
            return std::nullopt;
        }
        SignRequest r;
        Poco::URI uri(x.req.getURI());
        for (auto& [k, v] : uri.getQueryParameters()) {
            if (r.q.count(k)) {
                sendProblem(x, {"request.invalid", "parameter '" + k + "' is repeated"});
                return std::nullopt;
            }
            if (!known.count(k) && k != "credential" && k != "level") {
                sendProblem(x, {"request.invalid", "unknown parameter '" + k + "'"});
                return std::nullopt;
            }
            r.q[k] = v;
        }
        // A PDF is sealed on its own with seal=ID (or credential=ID of a seal credential).
        const bool sealOnly =
            op == policies::Operation::SignPdf && !r.q.count("credential") && r.q.count("seal");
        const std::string credId = sealOnly ? r.q["seal"] : r.q["credential"];
        if (credId.empty()) {
            sendProblem(x, {"request.invalid", "the 'credential' parameter is required"});
            return std::nullopt;
        }
        if (op == policies::Operation::SignPdf && creds.facts(credId).kind == "seal") {
            op = policies::Operation::Seal;
            if (!sealOnly && r.q.count("seal")) {
                sendProblem(x,
                            {"request.invalid", "credential is already a seal; give seal alone"});
                return std::nullopt;
            }
            r.q.erase("seal");
            r.q["credential"] = credId;
        }
        r.op = op;
        r.cred = authorizeUse(x, *who, credId, op);
        if (r.cred == nullptr) {
            return std::nullopt;
        }
        // B-T by default when a TSA is configured (contract); B-LT needs validation data that
        // this version does not embed yet.
        r.level = r.q.count("level") ? r.q["level"] : (timestamper ? "B-T" : "B-B");
        if (r.level != "B-B" && r.level != "B-T" && r.level != "B-LT") {
            sendProblem(x, {"request.invalid", "level must be B-B, B-T or B-LT"});
            return std::nullopt;
        }
        if (r.level == "B-LT" || (r.level == "B-T" && timestamper == nullptr)) {
            sendProblem(
                x, {"level.unsupported",
                    r.level == "B-LT" ? std::string("level B-LT is not available in this version")
                                      : std::string("level B-T needs a timestamp authority, "
                                                    "which is not configured")});
            return std::nullopt;
        }
        r.principal = *who;
        const std::int64_t declared = x.req.getContentLength64();
        if (!policyAllows(x, r, declared > 0 ? static_cast<std::uint64_t>(declared) : 0) ||
            !withinRate(x, *who, r.cred->id, op)) {
            return std::nullopt;
        }
        return r;
    }

    // [policy] ratePerMinute: false (429 sent, denial audited) when WHO is over it.
    bool withinRate(Exchange& x, const policies::Principal& who, const std::string& credId,
                    policies::Operation op) {
        if (cfg.signing.ratePerMinute == 0 ||
            rateLimiter.allow(who.name, cfg.signing.ratePerMinute)) {
            return true;
        }
        x.resp.set("Retry-After", "60");
        record({"policy.denial", who.name, credId, "denied",
                auditDetail({{"rule", "rate-limit"}, {"operation", policies::operationName(op)}})});
        sendProblem(x, {"rate.limited", "more than " + std::to_string(cfg.signing.ratePerMinute) +
                                            " signing requests a minute (rule rate-limit)"});
        return false;
    }

    // The signing policy ([policy] file) for this request: document size, level, key and hash.
    // `hash`: the digest algorithm when the request chooses it (sign/hash), else the
    // credential's.
    bool policyAllows(Exchange& x, const SignRequest& r, std::uint64_t documentBytes,
                      std::optional<hsm::HashAlg> hash = std::nullopt) {
        policies::SigningRequestFacts facts;
        facts.documentBytes = documentBytes;
        facts.level = r.level;
        facts.keyType = r.cred->key.type == hsm::KeyType::Rsa ? "RSA" : "EC";
        facts.keyBits = r.cred->key.bits;
        facts.hash = hsm::hashName(hash.value_or(r.cred->hash));
        const policies::Decision d = policies::checkSigningRequest(cfg.signing, facts);
        if (d.allowed) {
            return true;
        }
        record({"policy.denial", r.principal.name, r.cred->id, "denied",
                auditDetail({{"rule", d.rule}})});
        if (d.rule == "document-too-large") {
            x.resp.setKeepAlive(false);
        }
        // A denial is 403 naming the rule, whatever the rule.
        sendProblem(x, {"auth.denied", d.reason + " (rule " + d.rule + ")"});
        return false;
    }

    // Receives the body into an anonymous spool file (refused from Content-Length alone when it
    // is over the limit, before a byte is read), and makes the output spool file beside it.
    struct Spool {
        std::unique_ptr<SpoolFile> in;
        std::unique_ptr<SpoolFile> out;
        std::uint64_t size = 0;
    };

    std::optional<Spool> receiveBody(Exchange& x) {
        const std::int64_t declared = x.req.getContentLength64();
        if (declared > 0 && static_cast<std::uint64_t>(declared) > cfg.maxBodyBytes) {
            x.resp.setKeepAlive(false);
            sendProblem(x, tooLarge());
            return std::nullopt;
        }
        const bool small = declared >= 0 && declared <= kMemorySpool;
        Spool s{std::make_unique<SpoolFile>(cfg.spoolDir, small),
                std::make_unique<SpoolFile>(cfg.spoolDir, small), 0};
        if (!s.in->ok() || !s.out->ok()) {
            sendProblem(x, {"io.write", "cannot create spool files"});
            return std::nullopt;
        }
        if (auto p = spoolBody(x, *s.in, &s.size)) {
            sendProblem(x, *p);
            return std::nullopt;
        }
        return s;
    }

    // 200 with the first `size` bytes of `out` as the body.
    void sendSpooled(Exchange& x, const SpoolFile& out, std::uint64_t size,
                     const std::string& contentType) {
        x.status = 200;
        x.resp.setStatus(HTTPResponse::HTTP_OK);
        x.resp.set("Kyso-Signature-Id", randomHex(16));
        x.resp.setContentType(contentType);
        x.resp.setContentLength64(static_cast<Poco::Int64>(size));
        std::ostream& body = x.resp.send();
        std::vector<char> buf(1 << 16);
        for (std::uint64_t off = 0; off < size && body;) {
            const ssize_t n = ::pread(out.fd(), buf.data(), buf.size(), static_cast<off_t>(off));
            if (n <= 0) {
                break;  // the connection is closed short: the client sees a truncated body
            }
            body.write(buf.data(), n);
            off += static_cast<std::uint64_t>(n);
        }
    }

    // The officer's signature and, with seal=ID, the agency's e-seal as a second signature over
    // it, both incremental (Decree 30/2020, Art. 5). Visible with visible=true: the officer's
    // appearance at rect (or in field), the seal over the left third of the officer's image. A
    // seal alone (seal=ID, or credential=ID of a seal) overlaps the document's last visible
    // signature unless it has a rect.
    void signPdf(Exchange& x) {
        static const std::set<std::string> known = {"reason", "location", "visible",  "page",
                                                    "rect",   "field",    "seal",     "contactInfo",
                                                    "layout", "text",     "fontSize", "image"};
        auto r = parseSignRequest(x, policies::Operation::SignPdf, known);
        if (!r) {
            return;
        }
        auto& q = r->q;
        if (q.count("visible") && q["visible"] != "true" && q["visible"] != "false") {
            return sendProblem(x, {"request.invalid", "visible must be true or false"});
        }
        const bool visible = q.count("visible") && q["visible"] == "true";
        auto vis = visibleRequestOf(q);
        if (!vis) {
            return sendProblem(x, {vis.error().code, vis.error().detail});
        }
        if (!visible && (q.count("rect") || !overridesOf(*vis).empty())) {
            return sendProblem(
                x, {"request.invalid", "rect, layout, text, fontSize and image need visible=true"});
        }
        if (visible) {
            const auto d = policies::checkAppearanceOverrides(cfg.signing, overridesOf(*vis));
            if (!d.allowed) {
                record({"policy.denial", r->principal.name, r->cred->id, "denied",
                        auditDetail({{"rule", d.rule}})});
                return sendProblem(x, {"auth.denied", d.reason + " (rule " + d.rule + ")"});
            }
        }
        // The seal that follows the officer's signature, when asked for.
        const hsm::Credential* seal = nullptr;
        if (q.count("seal")) {
            seal = authorizeUse(x, r->principal, q["seal"], policies::Operation::Seal);
            if (seal == nullptr) {
                return;
            }
            if (!policyAllows(
                    x, SignRequest{r->principal, q, seal, r->level, policies::Operation::Seal},
                    0)) {
                return;
            }
        }
        const auto when = std::chrono::system_clock::now();
        signer::PadesOptions opts;
        opts.timestamper = r->level == "B-T" ? timestamper : nullptr;
        opts.reason = vis->reason;
        opts.location = vis->location;
        opts.contactInfo = q.count("contactInfo") ? q["contactInfo"] : "";
        opts.signingTime = when;
        if (q.count("field")) {
            opts.fieldName = q["field"];
        }
        opts.page = vis->page.value_or(1);
        // A document that needs a password to open: the password in a header (never in the URL,
        // never logged or audited).
        hsm::Secret documentPassword(x.req.get("Kyso-Document-Password", ""));
        if (x.req.has("Kyso-Document-Password")) {
            opts.password = &documentPassword;
        }
        if (visible) {
            opts.appearance = appearanceFor(cfg, *r->cred, *vis, when, &opts.page);
            if (opts.fieldName && !vis->rect) {
                opts.appearance->rect.reset();  // the field's own rectangle
            }
        }
        const std::string ctype = x.req.getContentType();
        if (ctype.rfind("application/pdf", 0) != 0) {
            x.resp.setKeepAlive(false);
            return sendProblem(x, {"content_type.unsupported",
                                   "the body must be application/pdf, not '" + ctype + "'"});
        }
        auto spool = receiveBody(x);
        if (!spool) {
            return;
        }
        if (spool->size == 0) {
            return sendProblem(x, {"pdf.empty", "the body is empty"});
        }
        if (!policyAllows(x, *r, spool->size)) {
            return;
        }
        // A citizen signs only under sole control: a SAD (header Kyso-SAD, from
        // /csc/v2/credentials/authorize) authorized over the SHA-256 of exactly this PDF.
        if (r->cred->kind == "citizen") {
            hsm::Secret sad(x.req.get("Kyso-SAD", ""));
            if (!activation || sad.view().empty()) {
                return sendCscError(x, Error::make("csc.sad_invalid",
                                                   "a citizen signs with a SAD (header Kyso-SAD) "
                                                   "authorized over the SHA-256 of the PDF"));
            }
            std::string digest = sha256OfFile(spool->in->path());
            digest = hexToBytes(digest);
            auto use = activation->consume(r->cred->id, sad.view(), digest);
            if (!use) {
                record({"sign.pdf", x.principal, r->cred->id, "denied",
                        auditDetail({{"code", use.error().code}})});
                return sendCscError(x, use.error());
            }
        }
        const char* action = r->op == policies::Operation::Seal ? "seal.pdf" : "sign.pdf";
        // With a seal, the officer's signature goes to a middle spool file first.
        std::unique_ptr<SpoolFile> middle;
        if (seal != nullptr) {
            middle = std::make_unique<SpoolFile>(cfg.spoolDir, spool->size <= kMemorySpool);
            if (!middle->ok()) {
                return sendProblem(x, {"io.write", "cannot create spool files"});
            }
        }
        SpoolFile& firstOut = seal != nullptr ? *middle : *spool->out;
        auto first = signer::signPdfTo(spool->in->path(), firstOut.fd(), *r->cred, opts);
        if (!first) {
            record({action, x.principal, r->cred->id, "failed",
                    auditDetail({{"code", first.error().code}})});
            return sendError(x, first.error());
        }
        std::optional<signer::PadesResult> second;
        if (seal != nullptr) {
            signer::PadesOptions sealOpts;
            sealOpts.timestamper = opts.timestamper;
            sealOpts.signingTime = when;
            sealOpts.reason = opts.reason;
            sealOpts.location = opts.location;
            sealOpts.page = first->page > 0 ? first->page : opts.page;
            sealOpts.password = opts.password;
            if (visible) {
                VisibleRequest sealVis;
                sealVis.page = sealOpts.page;
                int page = sealOpts.page;
                sealOpts.appearance = appearanceFor(cfg, *seal, sealVis, when, &page);
                sealOpts.appearance->rect.reset();
                sealOpts.appearance->overlapLeftThirdOf =
                    first->imageRect ? first->imageRect : first->rect;
            }
            auto sealed = signer::signPdfTo(middle->path(), spool->out->fd(), *seal, sealOpts);
            if (!sealed) {
                record({"seal.pdf", x.principal, seal->id, "failed",
                        auditDetail({{"code", sealed.error().code},
                                     {"officer", r->cred->id},
                                     {"delivered", "false"}})});
                return sendError(x, sealed.error());
            }
            second = *sealed;
            if (!audited(x, {action, x.principal, r->cred->id, "ok",
                             auditDetail({{"sha256", sha256OfFile(middle->path())},
                                          {"input.sha256", sha256OfFile(spool->in->path())},
                                          {"level", r->level},
                                          {"field", first->fieldName},
                                          {"visible", visible ? "true" : "false"}})})) {
                return;
            }
            if (!audited(x, {"seal.pdf", x.principal, seal->id, "ok",
                             auditDetail({{"sha256", sha256OfFile(spool->out->path())},
                                          {"input.sha256", sha256OfFile(middle->path())},
                                          {"level", r->level},
                                          {"field", sealed->fieldName},
                                          {"visible", visible ? "true" : "false"}})})) {
                return;
            }
        } else if (!audited(x, {action, x.principal, r->cred->id, "ok",
                                auditDetail({{"sha256", sha256OfFile(spool->out->path())},
                                             {"input.sha256", sha256OfFile(spool->in->path())},
                                             {"level", r->level},
                                             {"field", first->fieldName},
                                             {"visible", visible ? "true" : "false"}})})) {
            return;
        }
        x.resp.set("Kyso-Signature-Field", first->fieldName);
        if (second) {
            x.resp.set("Kyso-Seal-Field", second->fieldName);
        }
        x.resp.set("Kyso-Signature-Level", "PAdES-BASELINE-" + r->level.substr(2));
        sendSpooled(x, *spool->out, second ? second->outputSize : first->outputSize,
                    "application/pdf");
    }

    // CAdES over any content: detached by default (application/pkcs7-signature), attached with
    // detached=false (application/pkcs7-mime).
    void signCms(Exchange& x) {
        static const std::set<std::string> known = {"detached"};
        auto r = parseSignRequest(x, policies::Operation::SignCms, known);
        if (!r) {
            return;
        }
        signer::CadesOptions opts;
        if (r->q.count("detached")) {
            if (r->q["detached"] != "true" && r->q["detached"] != "false") {
                return sendProblem(x, {"request.invalid", "detached must be true or false"});
            }
            opts.detached = r->q["detached"] == "true";
        }
        opts.timestamper = r->level == "B-T" ? timestamper : nullptr;
        auto spool = receiveBody(x);
        if (!spool) {
            return;
        }
        if (spool->size == 0) {
            return sendProblem(x, {"cms.empty", "the body is empty: there is nothing to sign"});
        }
        if (!policyAllows(x, *r, spool->size)) {
            return;
        }
        auto cms = signer::signCms(spool->in->path(), spool->out->fd(), *r->cred, opts);
        if (!cms) {
            record({"sign.cms", x.principal, r->cred->id, "failed",
                    auditDetail({{"code", cms.error().code}})});
            return sendError(x, cms.error());
        }
        if (!audited(x, {"sign.cms", x.principal, r->cred->id, "ok",
                         auditDetail({{"sha256", sha256OfFile(spool->out->path())},
                                      {"input.sha256", sha256OfFile(spool->in->path())},
                                      {"level", r->level},
                                      {"detached", opts.detached ? "true" : "false"}})})) {
            return;
        }
        x.resp.set("Kyso-Signature-Level", "CAdES-BASELINE-" + r->level.substr(2));
        sendSpooled(x, *spool->out, cms->outputSize,
                    opts.detached ? "application/pkcs7-signature"
                                  : "application/pkcs7-mime; smime-type=signed-data");
    }

    // POST /api/v1/sign/hash {credential, hashAlgorithm, signAlgorithm, hashes: [base64]}: one
    // raw signature per precomputed digest, in order ({signatures: [base64]}). Up to
    // kMaxHashesPerRequest digests per request, all signed or none returned; one audit entry
    // names the count and the SHA-256 of the digests concatenated. Citizens sign hashes through
    // the CSC API with their SAD (SCAL2), not here.
    static constexpr std::size_t kMaxHashesPerRequest = 500;

    void signHash(Exchange& x) {
        auto who = authenticate(x);
        if (!who) {
            return;
        }
        auto body = readJsonBody(x);
        if (!body) {
            return;
        }
        static const std::set<std::string> known = {"credential", "hashAlgorithm", "signAlgorithm",
                                                    "hashes"};
        for (const auto& [k, v] : **body) {
            if (!known.count(k)) {
                return sendProblem(x, {"request.invalid", "unknown member '" + k + "'"});
            }
        }
        const std::string credId = stringField(*body, "credential");
        if (credId.empty()) {
            return sendProblem(x, {"request.invalid", "'credential' is required"});
        }
        const hsm::Credential* cred = authorizeUse(x, *who, credId, policies::Operation::SignHash);
        if (cred == nullptr) {
            return;
        }
        if (cred->kind == "citizen") {
            return sendProblem(x, {"auth.denied",
                                   "a citizen's credential signs hashes only through "
                                   "/csc/v2/signatures/signHash with the citizen's SAD"});
        }
        const auto hash = sha2Of(stringField(*body, "hashAlgorithm"), true);
        if (!hash) {
            return sendProblem(x, {"request.invalid",
                                   "hashAlgorithm must be SHA-256, SHA-384 or SHA-512 (name or "
                                   "OID)"});
        }
        // The scheme: the credential's own when signAlgorithm is absent.
        const bool rsa = cred->key.type == hsm::KeyType::Rsa;
        const std::string algName = stringField(*body, "signAlgorithm");
        std::optional<hsm::SignScheme> scheme;
        if (algName.empty()) {
            scheme = cred->scheme;
        } else if (rsa && (algName == "RSASSA-PKCS1-v1_5" || algName == "1.2.840.113549.1.1.1")) {
            scheme = hsm::SignScheme::RsaPkcs1v15;
        } else if (rsa && (algName == "RSASSA-PSS" || algName == "1.2.840.113549.1.1.10")) {
            scheme = hsm::SignScheme::RsaPss;
        } else if (!rsa && (algName == "ECDSA" || algName == "1.2.840.10045.2.1")) {
            scheme = hsm::SignScheme::Ecdsa;
        }
        if (!scheme) {
            return sendProblem(
                x, {"request.invalid",
                    rsa ? "signAlgorithm must be RSASSA-PKCS1-v1_5 or RSASSA-PSS for this RSA key"
                        : "signAlgorithm must be ECDSA for this EC key"});
        }
        Poco::JSON::Array::Ptr arr = (*body)->getArray("hashes");
        if (arr.isNull() || arr->size() == 0 || arr->size() > kMaxHashesPerRequest) {
            return sendProblem(x, {"request.invalid", "hashes must be an array of 1 to " +
                                                          std::to_string(kMaxHashesPerRequest) +
                                                          " base64 digests"});
        }
        std::vector<std::string> digests;
        digests.reserve(arr->size());
        for (std::size_t i = 0; i < arr->size(); ++i) {
            const Poco::Dynamic::Var v = arr->get(static_cast<unsigned>(i));
            auto d = v.isString() ? unbase64(v.extract<std::string>()) : std::nullopt;
            if (!d || d->size() != hsm::digestLength(*hash)) {
                return sendProblem(x, {"request.invalid", "hashes[" + std::to_string(i) +
                                                              "] is not the base64 of a " +
                                                              hsm::hashName(*hash) + " digest"});
            }
            digests.push_back(std::move(*d));
        }
        SignRequest r;
        r.principal = *who;
        r.cred = cred;
        r.level = "B-B";
        r.op = policies::Operation::SignHash;
        if (!policyAllows(x, r, 0, *hash) ||
            !withinRate(x, *who, cred->id, policies::Operation::SignHash)) {
            return;
        }
        Poco::JSON::Array sigs;
        std::string all;
        for (const auto& d : digests) {
            auto sig = cred->token->sign(cred->key, *scheme, *hash, d);
            if (!sig) {
                record({"sign.hash", who->name, cred->id, "failed",
                        auditDetail({{"code", sig.error().code}})});
                return sendError(x, sig.error());
            }
            sigs.add(base64(*sig));
            all += d;
        }
        if (!audited(x, {"sign.hash", who->name, cred->id, "ok",
                         auditDetail({{"signatures", std::to_string(digests.size())},
                                      {"hashAlgorithm", hsm::hashName(*hash)},
                                      {"hashes.sha256", sha256Hex(all)}})})) {
            return;
        }
        Poco::JSON::Object o;
        o.set("signatures", sigs);
        sendJson(x, 200, o);
    }

    // The validation report of a PDF (application/pdf), of a CMS with its content
    // (application/pkcs7-signature or -mime), or of a detached CMS with its data (multipart: a
    // part "signature" and a part "data"). Any authenticated principal may verify.
    void verify(Exchange& x) {
        auto who = authenticate(x);
        if (!who) {
            return;
        }
        Poco::URI uri(x.req.getURI());
        if (!uri.getQueryParameters().empty()) {
            return sendProblem(x, {"request.invalid", "POST /api/v1/verify takes no parameters"});
        }
        const std::string ctype = x.req.getContentType();
        Poco::Net::MediaType media("application/octet-stream");
        try {
            media = Poco::Net::MediaType(ctype);
        } catch (const Poco::Exception&) {
            x.resp.setKeepAlive(false);
            return sendProblem(x, {"content_type.unsupported", "unreadable Content-Type"});
        }
        const bool isPdf = media.matches("application", "pdf");
        const bool isCms = media.matches("application", "pkcs7-signature") ||
                           media.matches("application", "pkcs7-mime") ||
                           media.matches("application", "cms");
        const bool isMultipart = media.getType() == "multipart" && media.hasParameter("boundary");
        // A sealed receipt: a JWS (JSON or compact serialization) or an XML document.
        const bool isJws = media.matches("application", "jose+json") ||
                           media.matches("application", "jose") ||
                           media.matches("application", "json");
        const bool isXml = media.matches("application", "xml") || media.matches("text", "xml");
        if (isJws || isXml) {
            return verifyReceipt(x, isJws);
        }
        if (!isPdf && !isCms && !isMultipart) {
            x.resp.setKeepAlive(false);
            return sendProblem(
                x, {"content_type.unsupported",
                    "the body must be application/pdf, application/pkcs7-signature, multipart "
                    "(signature and data), or a sealed receipt (application/jose+json, "
                    "application/xml), not '" +
                        ctype + "'"});
        }
        Result<policies::ValidationReport> report = Error::make("internal", "not run");
        if (isPdf || isCms) {
            auto spool = receiveBody(x);
            if (!spool) {
                return;
            }
            if (spool->size == 0) {
                return sendProblem(x, {isPdf ? "pdf.empty" : "cms.empty", "the body is empty"});
            }
            if (isPdf) {
                report = verifier->pdf(spool->in->path());
            } else {
                std::string cms;
                std::uint64_t total = 0;
                std::ifstream in(spool->in->path(), std::ios::binary);
                if (auto p = spoolStream(x, in, -1, &total, &cms)) {
                    return sendProblem(x, *p);
                }
                report = verifier->cms(cms, "");
            }
        } else {
            std::string cms;
            SpoolFile data(cfg.spoolDir, false);
            bool haveData = false;
            std::uint64_t total = 0;
            try {
                Poco::Net::MultipartReader reader(x.req.stream(), media.getParameter("boundary"));
                while (reader.hasNextPart()) {
                    Poco::Net::MessageHeader h;
                    reader.nextPart(h);
                    std::string disposition;
                    Poco::Net::NameValueCollection params;
                    Poco::Net::MessageHeader::splitParameters(h.get("Content-Disposition", ""),
                                                              disposition, params);
                    const std::string name = params.get("name", "");
                    if (name == "signature") {
                        if (auto p = spoolStream(x, reader.stream(), -1, &total, &cms)) {
                            return sendProblem(x, *p);
                        }
                    } else if (name == "data") {
                        if (data.fd() < 0) {
                            return sendProblem(x, {"io.write", "cannot create a spool file"});
                        }
                        if (auto p = spoolStream(x, reader.stream(), data.fd(), &total)) {
                            return sendProblem(x, *p);
                        }
                        haveData = true;
                    } else {
                        return sendProblem(
                            x, {"request.invalid", "unknown part '" + name +
                                                       "': the parts are 'signature' and 'data'"});
                    }
                }
            } catch (const Poco::Exception&) {
                x.resp.setKeepAlive(false);
                return sendProblem(x, {"request.invalid", "unreadable multipart body"});
            }
            if (cms.empty()) {
                return sendProblem(x, {"cms.empty", "the multipart body has no 'signature' part"});
            }
            report = verifier->cms(cms, haveData ? data.path() : "");
        }
        if (!report) {
            return sendError(x, report.error());
        }
        sendJson(x, 200, *reportJson(*report));
    }

    // A sealed receipt's report, plus whether this service issued it and it stands: the
    // receipt named in the payload is looked up and its stored signature compared.
    void verifyReceipt(Exchange& x, bool jws) {
        auto body = readSmallBody(x);
        if (!body) {
            return;
        }
        if (body->empty()) {
            return sendProblem(x, {"request.invalid", "the body is empty"});
        }
        // A JWS is read once: its facts give the report and the receipt's id.
        std::optional<signer::JwsFacts> facts;
        if (jws) {
            auto read = signer::verifyJws(*body);
            if (!read) {
                return sendError(x, read.error());
            }
            facts = std::move(*read);
        }
        auto report = jws ? verifier->jws(*facts, *body) : verifier->xml(*body);
        if (!report) {
            return sendError(x, report.error());
        }
        Poco::JSON::Object::Ptr out = reportJson(*report);
        Poco::JSON::Object known;
        known.set("known", false);
        if (jws) {
            std::string id;
            std::string signature;
            try {
                Poco::JSON::Parser parser;
                auto payload = parser.parse(facts->payload).extract<Poco::JSON::Object::Ptr>();
                if (auto meta = payload->getObject("receipt")) {
                    id = meta->optValue<std::string>("id", "");
                }
                auto env = parser.parse(*body).extract<Poco::JSON::Object::Ptr>();
                signature = env->optValue<std::string>("signature", "");
            } catch (const Poco::Exception&) {
            }
            if (!id.empty()) {
                if (auto stored = store.receipt(id)) {
                    Poco::JSON::Parser parser;
                    auto storedJws =
                        parser.parse(stored->sealed).extract<Poco::JSON::Object::Ptr>();
                    const bool same = !signature.empty() && storedJws->optValue<std::string>(
                                                                "signature", "") == signature;
                    known.set("known", same);
                    known.set("id", stored->id);
                    known.set("number", static_cast<Poco::UInt64>(stored->number));
                    known.set("status", same ? stored->status : std::string("unknown"));
                }
            }
        }
        if (!jws) {
            // The kyso:Receipt element names the receipt; known when these are its exact bytes.
            std::smatch m;
            static const std::regex idAttr("<kyso:Receipt[^>]*\\sid=\"(rc-[0-9a-f]{24})\"");
            if (std::regex_search(*body, m, idAttr)) {
                if (auto stored = store.receipt(m[1].str())) {
                    const bool same = stored->sealed == *body;
                    known.set("known", same);
                    known.set("id", stored->id);
                    known.set("number", static_cast<Poco::UInt64>(stored->number));
                    known.set("status", same ? stored->status : std::string("unknown"));
                }
            }
        }
        out->set("receipt", known);
        sendJson(x, 200, *out);
    }

    // GET /api/v1/audit?after=SEQ&limit=N: audit entries in sequence order, for admins.
    void auditEntries(Exchange& x) {
        auto who = authenticate(x);
        if (!who) {
            return;
        }
        if (who->role != policies::Role::Admin) {
            record({"policy.denial", who->name, "", "denied",
                    auditDetail({{"rule", "audit-admin-only"}, {"operation", "audit.read"}})});
            return sendProblem(x, {"auth.denied",
                                   "only admins read the audit log (rule "
                                   "audit-admin-only)"});
        }
        std::uint64_t after = 0;
        std::uint64_t limit = 100;
        for (auto& [k, v] : Poco::URI(x.req.getURI()).getQueryParameters()) {
            std::uint64_t* target = k == "after" ? &after : k == "limit" ? &limit : nullptr;
            if (target == nullptr) {
                return sendProblem(x, {"request.invalid", "unknown parameter '" + k + "'"});
            }
            try {
                std::size_t used = 0;
                *target = std::stoull(v, &used);
                if (used != v.size() || v[0] == '-') {
                    throw std::invalid_argument(k);
                }
            } catch (const std::exception&) {
                return sendProblem(x, {"request.invalid", k + " must be a non-negative integer"});
            }
        }
        if (limit < 1 || limit > 1000) {
            return sendProblem(x, {"request.invalid", "limit must be from 1 to 1000"});
        }
        Poco::JSON::Array entries;
        for (const auto& r : store.auditRows(after, static_cast<std::size_t>(limit))) {
            Poco::JSON::Object e = auditRowJson(r, true);
            entries.add(e);
        }
        Poco::JSON::Object body;
        body.set("entries", entries);
        sendJson(x, 200, body);
    }

    // RFC 3161 over HTTP (RFC 3161 3.4): application/timestamp-query in, -reply out. Open to
    // every client, as a TSA is. A malformed query is answered with a PKIStatus rejection (HTTP
    // 200, as the RFC wants); only a body that is not a query at all is a 4xx.
    void timestamp(Exchange& x) {
        if (tsa == nullptr) {
            return sendProblem(x, {"route.not_found", "no time-stamping authority is configured"});
        }
        const std::string ctype = x.req.getContentType();
        if (ctype.rfind("application/timestamp-query", 0) != 0) {
            return sendProblem(
                x, {"content_type.unsupported", "the body must be application/timestamp-query"});
        }
        const std::size_t limit = tsa->policy().maxRequestBytes;
        const std::int64_t declared = x.req.getContentLength64();
        if (declared > 0 && static_cast<std::uint64_t>(declared) > limit) {
            x.resp.setKeepAlive(false);
            return sendProblem(x, {"tsa.too_large", "a TimeStampReq is at most " +
                                                        std::to_string(limit) + " bytes"});
        }
        std::string body;
        std::vector<char> buf(4096);
        std::istream& in = x.req.stream();
        while (in && body.size() <= limit) {
            in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
            body.append(buf.data(), static_cast<std::size_t>(in.gcount()));
        }
        auto reply = tsa->respond(body);
        if (!reply) {
            record({"timestamp", "-", cfg.tsa ? cfg.tsa->credential : "", "failed",
                    auditDetail({{"code", reply.error().code}})});
            return sendError(x, reply.error());
        }
        if (!audited(x, {"timestamp", "-", cfg.tsa ? cfg.tsa->credential : "", "ok",
                         auditDetail({{"request.sha256", sha256Hex(body)},
                                      {"reply.sha256", sha256Hex(*reply)}})})) {
            return;
        }
        x.status = 200;
        x.resp.setStatus(HTTPResponse::HTTP_OK);
        x.resp.setContentType("application/timestamp-reply");
        x.resp.setContentLength64(static_cast<Poco::Int64>(reply->size()));
        x.resp.send() << *reply;
    }

    // GET /ca/{name}.crt (DER certificate) and /ca/{name}.crl (DER CRL, signed on the token, made
    // again when the revocations change or half its validity has passed). Open to everyone, as
    // the URLs in the certificates are.
    struct CachedCrl {
        std::string der;
        std::size_t revokedCount = 0;
        std::time_t builtAt = 0;
    };
    std::mutex crlMu;
    std::map<std::string, CachedCrl> crls;

    void caObject(Exchange& x, const std::string& path) {
        const std::string file = path.substr(4);
        const auto dot = file.rfind('.');
        const std::string name = dot == std::string::npos ? "" : file.substr(0, dot);
        const std::string ext = dot == std::string::npos ? "" : file.substr(dot + 1);
        const CredentialConfig* cc = cfg.findCredential(name);
        const hsm::Credential* ca = creds.find(name);
        if (cc == nullptr || ca == nullptr || cc->kind != "ca" || (ext != "crt" && ext != "crl")) {
            return sendProblem(x, {"route.not_found", "no such CA object"});
        }
        std::string body;
        if (ext == "crt") {
            body = ca->certificateDer;
        } else {
            const auto revoked = store.revokedCertificates(name);
            const std::time_t now = std::time(nullptr);
            const std::time_t validity = static_cast<std::time_t>(cc->crlDays) * 86400;
            std::lock_guard lk(crlMu);
            CachedCrl& c = crls[name];
            if (c.der.empty() || c.revokedCount != revoked.size() ||
                now - c.builtAt > validity / 2) {
                auto number = crlNumbers(name).next();
                if (!number) {
                    return sendError(x, number.error());
                }
                auto der = ca::buildCrl(*ca, revoked, *number, now, now + validity);
                if (!der) {
                    return sendError(x, der.error());
                }
                c = CachedCrl{std::move(*der), revoked.size(), now};
            }
            body = c.der;
        }
        x.status = 200;
        x.resp.setStatus(HTTPResponse::HTTP_OK);
        x.resp.setContentType(ext == "crt" ? "application/pkix-cert" : "application/pkix-crl");
        x.resp.setContentLength64(static_cast<Poco::Int64>(body.size()));
        x.resp.send() << body;
    }

    // POST /ocsp (RFC 6960 A.1: application/ocsp-request in, application/ocsp-response out) for
    // every configured CA; open to everyone, as the URL in the certificates is.
    void ocsp(Exchange& x) {
        if (x.req.getContentType().rfind("application/ocsp-request", 0) != 0) {
            return sendProblem(
                x, {"content_type.unsupported", "the body must be application/ocsp-request"});
        }
        constexpr std::size_t kMaxRequest = 16 * 1024;
        std::string body;
        std::vector<char> buf(4096);
        std::istream& in = x.req.stream();
        while (in && body.size() <= kMaxRequest) {
            in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
            body.append(buf.data(), static_cast<std::size_t>(in.gcount()));
        }
        if (body.size() > kMaxRequest) {
            x.resp.setKeepAlive(false);
            return sendProblem(x, {"body.too_large", "an OCSP request is at most 16 KiB"});
        }
        auto reply = answerOcsp(cfg, creds, store, body);
        if (!reply) {
            return sendError(x, reply.error());
        }
        x.status = 200;
        x.resp.setStatus(HTTPResponse::HTTP_OK);
        x.resp.setContentType("application/ocsp-response");
        x.resp.setContentLength64(static_cast<Poco::Int64>(reply->size()));
        x.resp.send() << *reply;
    }

    // CRL numbers, increasing and never reused (RFC 5280 5.2.3), one source per CA.
    std::map<std::string, std::unique_ptr<signer::SerialSource>> crlNumberSources;
    signer::SerialSource& crlNumbers(const std::string& ca) {
        auto& src = crlNumberSources[ca];
        if (!src) {
            src = store.serialSource("crl:" + ca, 1);
        }
        return *src;
    }

    // ---------------------------------------------------------------------------------------
    // Citizens (issue 7): enrolment by a portal, and the CSC API v2 (SCAL2) for remote signing.
    // ---------------------------------------------------------------------------------------

    // The request body as text (at most 64 KiB: citizens' calls, receipts); nullopt when the
    // problem was sent.
    std::optional<std::string> readSmallBody(Exchange& x) {
        constexpr std::int64_t kMax = 64 * 1024;
        if (x.req.getContentLength64() > kMax) {
            x.resp.setKeepAlive(false);
            sendProblem(x, {"body.too_large", "the body is over 64 KiB"}, 413);
            return std::nullopt;
        }
        std::string body;
        std::vector<char> buf(8192);
        std::istream& in = x.req.stream();
        while (in) {
            in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
            body.append(buf.data(), static_cast<std::size_t>(in.gcount()));
            if (static_cast<std::int64_t>(body.size()) > kMax) {
                x.resp.setKeepAlive(false);
                sendProblem(x, {"body.too_large", "the body is over 64 KiB"}, 413);
                return std::nullopt;
            }
        }
        return body;
    }

    // A small JSON body (at most 64 KiB), parsed; the problem is sent when it is not one.
    std::optional<Poco::JSON::Object::Ptr> readJsonBody(Exchange& x) {
        auto body = readSmallBody(x);
        if (!body) {
            return std::nullopt;
        }
        try {
            Poco::JSON::Parser parser;
            auto v = parser.parse(*body);
            auto o = v.extract<Poco::JSON::Object::Ptr>();
            if (o.isNull()) {
                throw Poco::Exception("not an object");
            }
            return o;
        } catch (const Poco::Exception&) {
            sendProblem(x, {"request.invalid", "the body must be a JSON object"});
            return std::nullopt;
        } catch (const std::exception&) {
            sendProblem(x, {"request.invalid", "the body must be a JSON object"});
            return std::nullopt;
        }
    }

    static std::string stringField(const Poco::JSON::Object::Ptr& o, const std::string& k) {
        if (!o->has(k) || o->isNull(k)) {
            return "";
        }
        const Poco::Dynamic::Var v = o->get(k);
        return v.isString() ? v.extract<std::string>() : "";
    }

    // A CSC error: the problem+json of every kyso error, with CSC's own error and
    // error_description fields beside it.
    void sendCscError(Exchange& x, const Error& e) {
        const int status = httpStatusFor(e.code);
        Poco::JSON::Object o;
        o.set("type", "urn:kyso:problem:" + e.code);
        o.set("title", std::string(titleFor(status)));
        o.set("status", status);
        o.set("detail", e.detail);
        o.set("code", e.code);
        o.set("requestId", x.requestId);
        o.set("error", e.code == "csc.invalid_grant" ? std::string("invalid_grant")
                       : status == 403               ? std::string("access_denied")
                       : status == 401               ? std::string("invalid_token")
                                                     : std::string("invalid_request"));
        o.set("error_description", e.detail);
        sendObject(x, status, "application/problem+json", o);
    }

    bool citizensAvailable(Exchange& x) {
        if (!citizens) {
            sendProblem(x, {"citizens.unavailable",
                            "this service enrols no citizens (no [citizens] section)"});
            return false;
        }
        return true;
    }

    // The principal if it is a portal (the citizens' relying party); otherwise the denial is
    // audited and sent.
    std::optional<policies::Principal> portalOnly(Exchange& x, const char* operation) {
        auto who = authenticate(x);
        if (!who) {
            return std::nullopt;
        }
        if (who->role != policies::Role::Portal) {
            record({"policy.denial", who->name, "", "denied",
                    auditDetail({{"rule", "citizens-portal-only"}, {"operation", operation}})});
            sendProblem(x, {"auth.denied",
                            "only a portal acts for citizens (rule "
                            "citizens-portal-only)"});
            return std::nullopt;
        }
        return who;
    }

    // The citizen credential CREDID when WHO enrolled it; another portal's citizen reads as
    // unknown, so a portal cannot probe which credential ids exist.
    const hsm::Credential* ownCitizen(Exchange& x, const policies::Principal& who,
                                      const std::string& credId, const char* operation) {
        const policies::CredentialFacts facts = creds.facts(credId);
        const hsm::Credential* c = creds.find(credId);
        const bool owned =
            c != nullptr && facts.kind == "citizen" &&
            std::find(facts.owners.begin(), facts.owners.end(), who.name) != facts.owners.end();
        if (!owned) {
            if (c != nullptr) {
                record({"policy.denial", who.name, credId, "denied",
                        auditDetail({{"rule", "portal-own-citizen"}, {"operation", operation}})});
            }
            sendCscError(x, Error::make("credential.unknown", "no credential '" + credId + "'"));
            return nullptr;
        }
        return c;
    }

    static std::string base64(std::string_view bytes) {
        std::string out(4 * ((bytes.size() + 2) / 3), '\0');
        const int n = ::EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                        reinterpret_cast<const unsigned char*>(bytes.data()),
                                        static_cast<int>(bytes.size()));
        out.resize(static_cast<std::size_t>(n));
        return out;
    }

    // Strict base64 (RFC 4648, padded); nullopt when it is not.
    static std::optional<std::string> unbase64(const std::string& text) {
        if (text.empty() || text.size() % 4 != 0 ||
            text.find_first_not_of(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") !=
                std::string::npos) {
            return std::nullopt;
        }
        std::string out(text.size() / 4 * 3, '\0');
        const int n = ::EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                        reinterpret_cast<const unsigned char*>(text.data()),
                                        static_cast<int>(text.size()));
        if (n < 0) {
            return std::nullopt;
        }
        std::size_t pad = 0;
        if (text.back() == '=') {
            pad = text[text.size() - 2] == '=' ? 2 : 1;
        }
        out.resize(static_cast<std::size_t>(n) - pad);
        return out;
    }

    // The "hashes" array of a CSC request, decoded; nullopt (problem sent) when malformed.
    std::optional<std::vector<std::string>> hashesOf(Exchange& x,
                                                     const Poco::JSON::Object::Ptr& body) {
        Poco::JSON::Array::Ptr arr = body->getArray("hashes");
        if (arr.isNull() || arr->size() == 0) {
            sendCscError(x, Error::make("csc.invalid_request", "hashes must be a non-empty array"));
            return std::nullopt;
        }
        std::vector<std::string> out;
        for (std::size_t i = 0; i < arr->size(); ++i) {
            const Poco::Dynamic::Var v = arr->get(static_cast<unsigned>(i));
            auto h = v.isString() ? unbase64(v.extract<std::string>()) : std::nullopt;
            if (!h) {
                sendCscError(x, Error::make("csc.invalid_request",
                                            "hashes[" + std::to_string(i) + "] is not base64"));
                return std::nullopt;
            }
            out.push_back(std::move(*h));
        }
        return out;
    }

    // POST /api/v1/citizens: a portal that has checked a citizen's identity enrols them. The
    // answer carries the secrets once (initial PIN, otpauth URI, its QR code); none is kept.
    void enrolCitizen(Exchange& x) {
        auto who = portalOnly(x, "citizen-enrol");
        if (!who || !citizensAvailable(x)) {
            return;
        }
        auto body = readJsonBody(x);
        if (!body) {
            return;
        }
        CitizenEnrolment e{stringField(*body, "identityNumber"), stringField(*body, "fullName"),
                           stringField(*body, "province"), stringField(*body, "contact"),
                           who->name};
        auto r = citizens->enrol(e);
        if (!r) {
            record({"citizen.enrol", who->name, "", "failed",
                    auditDetail({{"code", r.error().code}})});
            return sendError(x, r.error());
        }
        const Citizen& c = r->enrolment.citizen;
        const NewActivation& a = r->enrolment.activation;
        if (!audited(x, {"citizen.enrol", who->name, c.id, "ok",
                         auditDetail({{"certificate.serial", ca::serialHexOf(c.certificateDer)},
                                      {"identity.last4",
                                       c.identityNumber.substr(c.identityNumber.size() - 4)}})})) {
            return;
        }
        Poco::JSON::Object o;
        o.set("credentialID", c.id);
        o.set("certificate", ca::certificateToPem(c.certificateDer));
        o.set("initialPin", std::string(a.initialPin.view()));
        o.set("mustChangePin", true);
        o.set("otpauthUri", std::string(a.otpauthUri.view()));
        o.set("qrPng", base64(a.qrPng.view()));
        sendJson(x, 201, o);
    }

    // What every call about one citizen's credential starts with: a portal, a [citizens]
    // section, a JSON body, and a credentialID the portal enrolled. Nullopt when the problem
    // was sent.
    struct CitizenCall {
        policies::Principal who;
        Poco::JSON::Object::Ptr body;
        std::string id;
        const hsm::Credential* cred = nullptr;
    };
    std::optional<CitizenCall> citizenCall(Exchange& x, const char* operation) {
        auto who = portalOnly(x, operation);
        if (!who || !citizensAvailable(x)) {
            return std::nullopt;
        }
        auto body = readJsonBody(x);
        if (!body) {
            return std::nullopt;
        }
        CitizenCall call{*who, *body, stringField(*body, "credentialID"), nullptr};
        call.cred = ownCitizen(x, call.who, call.id, operation);
        if (call.cred == nullptr) {
            return std::nullopt;
        }
        return call;
    }

    // POST /api/v1/citizens/pin {credentialID, oldPin, newPin}: the citizen changes the PIN
    // through the portal that enrolled them (the initial PIN must be changed before signing).
    void changeCitizenPin(Exchange& x) {
        auto call = citizenCall(x, "citizen-pin");
        if (!call) {
            return;
        }
        const policies::Principal& who = call->who;
        const Poco::JSON::Object::Ptr& body = call->body;
        const std::string& id = call->id;
        hsm::Secret oldPin(stringField(body, "oldPin"));
        hsm::Secret newPin(stringField(body, "newPin"));
        AttemptReport report;
        auto st = activation->changePin(id, oldPin.view(), newPin.view(), report);
        record({"citizen.pin", who.name, id, st ? "ok" : "failed",
                auditDetail({{"attempt", attemptCode(report)},
                             {"code", st ? std::string() : st.error().code}})});
        if (!st) {
            return sendCscError(x, st.error());
        }
        Poco::JSON::Object o;
        o.set("credentialID", id);
        sendJson(x, 200, o);
    }

    // POST /api/v1/citizens/unlock and /revoke {credentialID[, reason]}: the enrolling portal.
    void unlockCitizen(Exchange& x) { citizenAdmin(x, false); }
    void revokeCitizen(Exchange& x) { citizenAdmin(x, true); }
    // An administrator may revoke any citizen's credential too (not unlock it: that is the
    // portal's, which sees the citizen).
    void citizenAdmin(Exchange& x, bool revoke) {
        const char* op = revoke ? "citizen-revoke" : "citizen-unlock";
        std::optional<policies::Principal> who;
        if (revoke) {
            who = authenticate(x);
            if (who && who->role != policies::Role::Admin && who->role != policies::Role::Portal) {
                record({"policy.denial", who->name, "", "denied",
                        auditDetail({{"rule", "citizens-portal-only"}, {"operation", op}})});
                sendProblem(x, {"auth.denied",
                                "only a portal or an administrator revokes a "
                                "citizen's credential (rule citizens-portal-only)"});
                return;
            }
        } else {
            who = portalOnly(x, op);
        }
        if (!who || !citizensAvailable(x)) {
            return;
        }
        auto body = readJsonBody(x);
        if (!body) {
            return;
        }
        const std::string id = stringField(*body, "credentialID");
        if (who->role == policies::Role::Admin) {
            if (creds.facts(id).kind != "citizen") {
                return sendCscError(
                    x, Error::make("credential.unknown", "no credential '" + id + "'"));
            }
        } else if (ownCitizen(x, *who, id, op) == nullptr) {
            return;
        }
        Status st = Ok{};
        if (revoke) {
            const std::string reasonName = stringField(*body, "reason");
            auto reason = reasonName.empty() ? std::optional(ca::RevocationReason::Unspecified)
                                             : ca::parseRevocationReason(reasonName);
            if (!reason) {
                return sendProblem(x, {"request.invalid", "unknown revocation reason"});
            }
            st = citizens->revoke(id, static_cast<int>(*reason));
        } else {
            st = activation->unlock(id);
        }
        if (!audited(x, {revoke ? "citizen.revoke" : "citizen.unlock", who->name, id,
                         st ? "ok" : "failed",
                         auditDetail({{"code", st ? std::string() : st.error().code}})})) {
            return;
        }
        if (!st) {
            return sendError(x, st.error());
        }
        Poco::JSON::Object o;
        o.set("credentialID", id);
        o.set(revoke ? "revoked" : "unlocked", true);
        sendJson(x, 200, o);
    }

    // POST /csc/v2/info: open, as CSC requires.
    void cscInfo(Exchange& x) {
        Poco::JSON::Object o;
        o.set("specs", "2.0.0.2");
        o.set("name", "kyso");
        o.set("logo", "");
        o.set("region", "VN");
        o.set("lang", "vi");
        o.set("description", "kyso remote signing for citizens (SCAL2)");
        Poco::JSON::Array auth;
        auth.add("external");
        o.set("authType", auth);
        Poco::JSON::Array methods;
        for (const char* m : {"credentials/list", "credentials/info", "credentials/authorize",
                              "signatures/signHash", "signatures/timestamp"}) {
            methods.add(std::string(m));
        }
        o.set("methods", methods);
        sendJson(x, 200, o);
    }

    // POST /csc/v2/credentials/list {userID?}: the live citizen credentials this portal
    // enrolled; userID filters by identity number.
    void cscList(Exchange& x) {
        auto who = portalOnly(x, "csc-list");
        if (!who || !citizensAvailable(x)) {
            return;
        }
        auto body = readJsonBody(x);
        if (!body) {
            return;
        }
        const std::string user = stringField(*body, "userID");
        auto mine = store.citizensOfPortal(who->name);
        if (!mine) {
            return sendError(x, mine.error());
        }
        Poco::JSON::Array ids;
        for (const auto& c : *mine) {
            if (!c.revoked && (user.empty() || user == c.identityNumber) &&
                creds.find(c.id) != nullptr) {
                ids.add(c.id);
            }
        }
        Poco::JSON::Object o;
        o.set("credentialIDs", ids);
        sendJson(x, 200, o);
    }

    // POST /csc/v2/credentials/info {credentialID, certificates?, certInfo?, authInfo?}.
    void cscCredentialInfo(Exchange& x) {
        auto call = citizenCall(x, "csc-info");
        if (!call) {
            return;
        }
        const Poco::JSON::Object::Ptr& body = call->body;
        const std::string& id = call->id;
        const hsm::Credential* c = call->cred;
        auto state = activation->state(id);
        if (!state) {
            return sendError(x, state.error());
        }
        const std::string which = stringField(body, "certificates").empty()
                                      ? "single"
                                      : stringField(body, "certificates");
        const bool rsa = c->key.type == hsm::KeyType::Rsa;
        Poco::JSON::Object key;
        key.set("status", state->locked || state->revoked ? "disabled" : "enabled");
        Poco::JSON::Array algo;
        algo.add(std::string(rsa ? "1.2.840.113549.1.1.1" : "1.2.840.10045.2.1"));
        key.set("algo", algo);
        key.set("len", c->key.bits);
        Poco::JSON::Object cert;
        cert.set("status", state->revoked ? "revoked" : "valid");
        Poco::JSON::Array certs;
        if (which != "none") {
            certs.add(base64(c->certificateDer));
            if (which == "chain") {
                for (const auto& d : c->chainDer) {
                    certs.add(base64(d));
                }
            }
        }
        cert.set("certificates", certs);
        OsslPtr<X509> x509 = x509FromDer(c->certificateDer);
        if (x509) {
            cert.set("subjectDN", nameToString(::X509_get_subject_name(x509.get())));
            cert.set("issuerDN", nameToString(::X509_get_issuer_name(x509.get())));
            cert.set("serialNumber", ca::serialHexOf(c->certificateDer));
            cert.set("validFrom", isoTime(::X509_get0_notBefore(x509.get())));
            cert.set("validTo", isoTime(::X509_get0_notAfter(x509.get())));
        }
        Poco::JSON::Object auth;
        auth.set("mode", "explicit");
        Poco::JSON::Array objects;
        Poco::JSON::Object pin;
        pin.set("type", "Password");
        pin.set("id", "PIN");
        pin.set("format", "N");
        pin.set("label", "PIN");
        objects.add(pin);
        Poco::JSON::Object otp;
        otp.set("type", "OTP");
        otp.set("id", "OTP");
        otp.set("format", "N");
        otp.set("generator", "totp");
        otp.set("label", "OTP");
        objects.add(otp);
        auth.set("objects", objects);
        Poco::JSON::Object o;
        o.set("description", "personal signature of a citizen");
        o.set("key", key);
        o.set("cert", cert);
        o.set("auth", auth);
        o.set("authMode", "explicit");
        o.set("SCAL", "2");
        o.set("multisign", 100);
        o.set("lang", "vi");
        sendJson(x, 200, o);
    }

    // POST /csc/v2/credentials/authorize {credentialID, numSignatures, hashes, hashAlgorithmOID,
    // authData: [{id: PIN, value}, {id: OTP, value}]} (or the v1 fields PIN and OTP): the SAD,
    // bound to exactly those hashes.
    void cscAuthorize(Exchange& x) {
        auto call = citizenCall(x, "csc-authorize");
        if (!call) {
            return;
        }
        const policies::Principal& who = call->who;
        const Poco::JSON::Object::Ptr& body = call->body;
        const std::string& id = call->id;
        hsm::Secret pin(stringField(body, "PIN"));
        hsm::Secret otp(stringField(body, "OTP"));
        if (Poco::JSON::Array::Ptr data = body->getArray("authData"); !data.isNull()) {
            for (std::size_t i = 0; i < data->size(); ++i) {
                Poco::JSON::Object::Ptr item = data->getObject(static_cast<unsigned>(i));
                if (item.isNull()) {
                    continue;
                }
                const std::string name = stringField(item, "id");
                if (name == "PIN") {
                    pin = hsm::Secret(stringField(item, "value"));
                } else if (name == "OTP") {
                    otp = hsm::Secret(stringField(item, "value"));
                }
            }
        }
        auto hashes = hashesOf(x, body);
        if (!hashes) {
            return;
        }
        AuthorizeRequest req;
        req.credentialId = id;
        req.pin = pin.view();
        req.otp = otp.view();
        req.hashes = std::move(*hashes);
        req.hashAlgorithm = stringField(body, "hashAlgorithmOID");
        try {
            req.numSignatures =
                body->has("numSignatures") ? body->getValue<int>("numSignatures") : 0;
        } catch (const Poco::Exception&) {
            req.numSignatures = 0;
        }
        AttemptReport report;
        auto sad = activation->authorize(req, report);
        if (!sad) {
            record({"csc.authorize", who.name, id, "denied",
                    auditDetail({{"attempt", attemptCode(report)},
                                 {"code", sad.error().code},
                                 {"failedAttempts", std::to_string(report.failedAttempts)}})});
            return sendCscError(x, sad.error());
        }
        if (!audited(x, {"csc.authorize", who.name, id, "ok",
                         auditDetail({{"attempt", attemptCode(report)},
                                      {"numSignatures", std::to_string(req.numSignatures)}})})) {
            return;
        }
        const auto expiresIn = std::chrono::duration_cast<std::chrono::seconds>(
            sad->expiresAt - std::chrono::system_clock::now());
        Poco::JSON::Object o;
        o.set("SAD", std::string(sad->value.view()));
        o.set("expiresIn", static_cast<int>(std::max<std::int64_t>(0, expiresIn.count())));
        sendJson(x, 200, o);
    }

    // POST /csc/v2/signatures/signHash {credentialID, SAD, hashes, hashAlgorithmOID, signAlgo}:
    // each hash must be one the SAD authorized, signed once.
    void cscSignHash(Exchange& x) {
        auto call = citizenCall(x, "csc-signHash");
        if (!call) {
            return;
        }
        const policies::Principal& who = call->who;
        const Poco::JSON::Object::Ptr& body = call->body;
        const std::string& id = call->id;
        const hsm::Credential* c = call->cred;
        hsm::Secret sad(stringField(body, "SAD"));
        auto hashes = hashesOf(x, body);
        if (!hashes) {
            return;
        }
        const std::string signAlgo = stringField(body, "signAlgo");
        const bool rsa = c->key.type == hsm::KeyType::Rsa;
        static const std::set<std::string> rsaAlgos = {
            "1.2.840.113549.1.1.1", "1.2.840.113549.1.1.11", "1.2.840.113549.1.1.12",
            "1.2.840.113549.1.1.13"};
        static const std::set<std::string> ecAlgos = {"1.2.840.10045.2.1", "1.2.840.10045.4.3.2",
                                                      "1.2.840.10045.4.3.3", "1.2.840.10045.4.3.4"};
        if (!(rsa ? rsaAlgos : ecAlgos).count(signAlgo)) {
            return sendCscError(x, Error::make("csc.invalid_request",
                                               "signAlgo does not fit the credential's key"));
        }
        Poco::JSON::Array sigs;
        for (const auto& h : *hashes) {
            auto use = activation->consume(id, sad.view(), h);
            if (!use) {
                record({"csc.signHash", who.name, id, "denied",
                        auditDetail({{"code", use.error().code}})});
                return sendCscError(x, use.error());
            }
            const hsm::HashAlg alg =
                sha2Of(use->hashAlgorithm, false).value_or(hsm::HashAlg::Sha256);
            auto sig = c->token->sign(c->key, c->scheme, alg, h);
            if (!sig) {
                record({"csc.signHash", who.name, id, "failed",
                        auditDetail({{"code", sig.error().code}})});
                return sendError(x, sig.error());
            }
            sigs.add(base64(*sig));
        }
        if (!audited(x, {"csc.signHash", who.name, id, "ok",
                         auditDetail({{"signatures", std::to_string(hashes->size())}})})) {
            return;
        }
        Poco::JSON::Object o;
        o.set("signatures", sigs);
        sendJson(x, 200, o);
    }

    // POST /csc/v2/signatures/timestamp {hash, hashAlgorithmOID}: an RFC 3161 token from the
    // service's TSA.
    void cscTimestamp(Exchange& x) {
        auto who = portalOnly(x, "csc-timestamp");
        if (!who) {
            return;
        }
        auto body = readJsonBody(x);
        if (!body) {
            return;
        }
        if (timestamper == nullptr) {
            return sendProblem(x, {"tsa.unavailable", "no time-stamping authority is configured"});
        }
        const std::string oid = stringField(*body, "hashAlgorithmOID");
        const auto hash = unbase64(stringField(*body, "hash"));
        const std::optional<hsm::HashAlg> alg = sha2Of(oid, false);
        if (!hash || !alg || hash->size() != hsm::digestLength(*alg)) {
            return sendCscError(x, Error::make("csc.invalid_request",
                                               "hash must be base64 of a digest of "
                                               "hashAlgorithmOID (SHA-256, SHA-384, SHA-512)"));
        }
        auto token = timestamper->timestamp(*hash, *alg);
        if (!token) {
            return sendError(x, token.error());
        }
        if (!audited(x, {"timestamp", who->name, "", "ok",
                         auditDetail({{"via", "csc"}, {"token.sha256", sha256Hex(*token)}})})) {
            return;
        }
        Poco::JSON::Object o;
        o.set("timestamp", base64(*token));
        sendJson(x, 200, o);
    }

    // ---------------------------------------------------------------------------------------
    // Payment receipts (issue 8): sealed JWS receipts, numbered per agency and year.
    // ---------------------------------------------------------------------------------------

    std::string publicBase() const {
        if (cfg.citizens) {
            return cfg.citizens->publicUrl;
        }
        return "https://" + cfg.listenHost + ":" + std::to_string(port());
    }

    std::uint16_t port() const {
        return server ? static_cast<std::uint16_t>(server->port()) : cfg.listenPort;
    }

    Poco::JSON::Object receiptJson(const StoredReceipt& r) {
        Poco::JSON::Object o;
        o.set("id", r.id);
        o.set("agency", r.agency);
        o.set("year", r.year);
        o.set("number", static_cast<Poco::UInt64>(r.number));
        o.set("status", r.status);
        o.set("issuedAt", r.created);
        o.set("digest", r.digest);
        o.set("verifyUrl", publicBase() + "/api/v1/receipts/" + r.id);
        try {
            Poco::JSON::Parser parser;
            o.set("sealed", parser.parse(r.sealed));
        } catch (const Poco::Exception&) {
            o.set("sealed", r.sealed);
        }
        return o;
    }

    // POST /api/v1/receipts[?credential=ID]: a portal has a payment receipt sealed by the
    // agency's receipt-seal credential. Idempotency-Key (or the same payment) returns the
    // original receipt, never a second number.
    void sealReceipt(Exchange& x) {
        auto who = authenticate(x);
        if (!who) {
            return;
        }
        Poco::URI uri(x.req.getURI());
        std::string credId;
        for (const auto& [k, v] : uri.getQueryParameters()) {
            if (k != "credential" || !credId.empty()) {
                return sendProblem(
                    x, {"request.invalid", "unknown or repeated parameter '" + k + "'"});
            }
            credId = v;
        }
        if (credId.empty()) {
            for (const auto& id : creds.configuredIds()) {
                if (creds.facts(id).kind == "receipt-seal") {
                    credId = id;
                    break;
                }
            }
        }
        if (credId.empty()) {
            return sendProblem(x,
                               {"credential.unknown", "no receipt-seal credential is configured"});
        }
        const hsm::Credential* cred = authorizeUse(x, *who, credId, policies::Operation::Receipt);
        if (cred == nullptr) {
            return;
        }
        const std::string idem = x.req.get("Idempotency-Key", "");
        if (idem.size() > 128 ||
            std::any_of(idem.begin(), idem.end(), [](char c) { return c < 0x21 || c > 0x7e; })) {
            return sendProblem(x, {"request.invalid",
                                   "Idempotency-Key must be 1 to 128 printable ASCII characters"});
        }
        auto body = readSmallBody(x);
        if (!body) {
            return;
        }
        Poco::Net::MediaType media("application/json");
        try {
            media = Poco::Net::MediaType(x.req.getContentType());
        } catch (const Poco::Exception&) {
        }
        if (media.matches("application", "xml") || media.matches("text", "xml")) {
            return sealXmlReceipt(x, *who, *cred, idem, *body);
        }
        if (!media.matches("application", "json")) {
            return sendProblem(x, {"content_type.unsupported",
                                   "a receipt is application/json or application/xml"});
        }
        const ReceiptCheck check = checkReceipt(*body);
        if (!check.errors.empty()) {
            Poco::JSON::Array fields;
            for (const auto& e : check.errors) {
                Poco::JSON::Object f;
                f.set("field", e.field);
                f.set("problem", e.problem);
                fields.add(f);
            }
            const FieldError& first = check.errors.front();
            Poco::JSON::Object o;
            o.set("type", std::string("urn:kyso:problem:receipt.invalid"));
            o.set("title", std::string(titleFor(422)));
            o.set("status", 422);
            o.set("detail", (first.field.empty() ? std::string("the body") : first.field) + " " +
                                first.problem);
            o.set("code", std::string("receipt.invalid"));
            o.set("requestId", x.requestId);
            o.set("errors", fields);
            return sendObject(x, 422, "application/problem+json", o);
        }
        Poco::JSON::Object::Ptr payment = check.receipt->getObject("payment");
        const auto now = std::chrono::system_clock::now();
        const std::string issued = vietnamIsoTime(now);
        const int year = std::stoi(issued.substr(0, 4));
        ReceiptKeys keys{cred->id, year, idem,
                         payment->getValue<std::string>("channel") + ":" +
                             payment->getValue<std::string>("transactionId")};
        auto stored = store.storeReceipt(keys, [&](std::uint64_t number) -> Result<SealedReceipt> {
            SealedReceipt s;
            s.id = "rc-" + randomHex(12);
            s.created = issued;
            s.format = "jws";
            Poco::JSON::Object::Ptr doc = check.receipt;
            Poco::JSON::Object meta;
            meta.set("id", s.id);
            meta.set("agency", cred->id);
            meta.set("issuer", subjectOf(cred->certificateDer));
            meta.set("year", year);
            meta.set("number", static_cast<Poco::UInt64>(number));
            meta.set("issuedAt", issued);
            meta.set("verifyUrl", publicBase() + "/api/v1/receipts/" + s.id);
            doc->set("receipt", meta);
            std::ostringstream json;
            doc->stringify(json);
            auto jws = signer::sealJws(*cred, json.str(), now);
            if (!jws) {
                return jws.error();
            }
            s.sealed = *jws;
            s.digest = sha256Hex(s.sealed);
            return s;
        });
        if (!stored) {
            record({"receipt.seal", who->name, cred->id, "failed",
                    auditDetail({{"code", stored.error().code}})});
            return sendError(x, stored.error());
        }
        if (!audited(x, {"receipt.seal", who->name, cred->id, "ok",
                         auditDetail({{"receipt", stored->id},
                                      {"number", std::to_string(stored->number)},
                                      {"sha256", stored->digest},
                                      {"replayed", stored->replayed ? "true" : "false"}})})) {
            return;
        }
        if (stored->replayed) {
            x.resp.set("Kyso-Replayed", "true");
        }
        sendJson(x, stored->replayed ? 200 : 201, receiptJson(*stored));
    }

    // An XML receipt (the national e-receipt XML practice): sealed with an enveloped XAdES-B
    // signature, with a kyso:Receipt element (id, agency, year, number, issuedAt, verifyUrl)
    // added before it. The same document (or Idempotency-Key) returns the original.
    void sealXmlReceipt(Exchange& x, const policies::Principal& who, const hsm::Credential& cred,
                        const std::string& idem, const std::string& body) {
        if (body.empty()) {
            return sendProblem(x, {"request.invalid", "the body is empty"});
        }
        const auto now = std::chrono::system_clock::now();
        const std::string issued = vietnamIsoTime(now);
        const int year = std::stoi(issued.substr(0, 4));
        ReceiptKeys keys{cred.id, year, idem, "xml:" + sha256Hex(body)};
        auto stored = store.storeReceipt(keys, [&](std::uint64_t number) -> Result<SealedReceipt> {
            SealedReceipt s;
            s.id = "rc-" + randomHex(12);
            s.created = issued;
            s.format = "xml";
            signer::XmlStamp stamp{"urn:kyso:receipt",
                                   "kyso",
                                   "Receipt",
                                   {{"id", s.id},
                                    {"agency", cred.id},
                                    {"year", std::to_string(year)},
                                    {"number", std::to_string(number)},
                                    {"issuedAt", issued},
                                    {"verifyUrl", publicBase() + "/api/v1/receipts/" + s.id}}};
            auto xml = signer::sealXml(cred, body, now, &stamp);
            if (!xml) {
                return xml.error();
            }
            s.sealed = *xml;
            s.digest = sha256Hex(s.sealed);
            return s;
        });
        if (!stored) {
            record({"receipt.seal", who.name, cred.id, "failed",
                    auditDetail({{"code", stored.error().code}})});
            return sendError(x, stored.error());
        }
        if (!audited(x, {"receipt.seal", who.name, cred.id, "ok",
                         auditDetail({{"receipt", stored->id},
                                      {"number", std::to_string(stored->number)},
                                      {"format", "xml"},
                                      {"sha256", stored->digest},
                                      {"replayed", stored->replayed ? "true" : "false"}})})) {
            return;
        }
        if (stored->replayed) {
            x.resp.set("Kyso-Replayed", "true");
        }
        sendJson(x, stored->replayed ? 200 : 201, receiptJson(*stored));
    }

    // POST /api/v1/receipts/cancel {id}: a portal or an administrator cancels a receipt (the
    // fee was refunded); its number stays taken, verification then says "cancelled".
    void cancelReceipt(Exchange& x) {
        auto who = authenticate(x);
        if (!who) {
            return;
        }
        if (who->role != policies::Role::Portal && who->role != policies::Role::Admin) {
            record({"policy.denial", who->name, "", "denied",
                    auditDetail(
                        {{"rule", "receipts-portal-or-admin"}, {"operation", "receipt-cancel"}})});
            return sendProblem(x, {"auth.denied",
                                   "only a portal or an administrator cancels a "
                                   "receipt (rule receipts-portal-or-admin)"});
        }
        auto body = readJsonBody(x);
        if (!body) {
            return;
        }
        const std::string id = stringField(*body, "id");
        auto st = store.cancelReceipt(id);
        if (!audited(x, {"receipt.cancel", who->name, "", st ? "ok" : "failed",
                         auditDetail(
                             {{"receipt", id}, {"code", st ? std::string() : st.error().code}})})) {
            return;
        }
        if (!st) {
            return sendError(x, st.error());
        }
        auto r = store.receipt(id);
        if (!r) {
            return sendError(x, r.error());
        }
        sendJson(x, 200, receiptJson(*r));
    }

    // GET /api/v1/receipts/{id} and /api/v1/receipts/{id}/qr.png: open to anyone who holds
    // the receipt's id (what its QR code carries), as a verification page is.
    void receiptObject(Exchange& x, const std::string& path) {
        std::string rest = path.substr(std::string("/api/v1/receipts/").size());
        const bool qr = rest.size() > 7 && rest.compare(rest.size() - 7, 7, "/qr.png") == 0;
        if (qr) {
            rest.resize(rest.size() - 7);
        }
        if (rest.empty() || rest.find('/') != std::string::npos || rest.rfind("rc-", 0) != 0) {
            return sendProblem(x, {"receipt.unknown", "no such receipt"});
        }
        auto r = store.receipt(rest);
        if (!r) {
            return sendError(x, r.error());
        }
        if (!qr) {
            return sendJson(x, 200, receiptJson(*r));
        }
        // The verification URL and the receipt's digest: a scanner finds the receipt and can
        // check that the copy in hand is the one sealed.
        auto png = qrPng(publicBase() + "/api/v1/receipts/" + r->id + "#sha256=" + r->digest, 6);
        if (!png) {
            return sendError(x, png.error());
        }
        x.status = 200;
        x.resp.setStatus(HTTPResponse::HTTP_OK);
        x.resp.setContentType("image/png");
        x.resp.setContentLength64(static_cast<Poco::Int64>(png->view().size()));
        x.resp.send().write(png->view().data(), static_cast<std::streamsize>(png->view().size()));
    }

    // Every fixed route; GET /ca/{name}.crt|.crl are matched by prefix. Service::routes() and
    // the OpenAPI document list the same.
    struct Route {
        const char* method;
        const char* path;
        void (Impl::*fn)(Exchange&);
    };
    static const std::vector<Route>& routeTable() {
        static const std::vector<Route> table = {
            {"GET", "/healthz", &Impl::healthz},
            {"GET", "/readyz", &Impl::readyz},
            {"GET", "/openapi.json", &Impl::openapi},
            {"GET", "/metrics", &Impl::prometheus},
            {"GET", "/api/v1/credentials", &Impl::listCredentials},
            {"GET", "/api/v1/audit", &Impl::auditEntries},
            {"POST", "/api/v1/sign/pdf", &Impl::signPdf},
            {"POST", "/api/v1/sign/cms", &Impl::signCms},
            {"POST", "/api/v1/sign/hash", &Impl::signHash},
            {"POST", "/api/v1/verify", &Impl::verify},
            {"POST", "/tsa", &Impl::timestamp},
            {"POST", "/ocsp", &Impl::ocsp},
            {"POST", "/api/v1/citizens", &Impl::enrolCitizen},
            {"POST", "/api/v1/citizens/pin", &Impl::changeCitizenPin},
            {"POST", "/api/v1/citizens/unlock", &Impl::unlockCitizen},
            {"POST", "/api/v1/citizens/revoke", &Impl::revokeCitizen},
            {"POST", "/csc/v2/info", &Impl::cscInfo},
            {"POST", "/csc/v2/credentials/list", &Impl::cscList},
            {"POST", "/csc/v2/credentials/info", &Impl::cscCredentialInfo},
            {"POST", "/csc/v2/credentials/authorize", &Impl::cscAuthorize},
            {"POST", "/csc/v2/signatures/signHash", &Impl::cscSignHash},
            {"POST", "/csc/v2/signatures/timestamp", &Impl::cscTimestamp},
            {"POST", "/api/v1/receipts", &Impl::sealReceipt},
            {"POST", "/api/v1/receipts/cancel", &Impl::cancelReceipt},
        };
        return table;
    }

    // Prometheus text format. Open like /healthz: counts, latencies, token state and certificate
    // lifetimes, nothing secret.
    void prometheus(Exchange& x) {
        std::ostringstream o;
        o << metrics.render();
        o << "# HELP kyso_token_up 1 when the token answers and is logged in.\n"
          << "# TYPE kyso_token_up gauge\nkyso_token_up " << (token.ready() ? 1 : 0) << "\n";
        o << "# HELP kyso_certificate_expiry_days Days until each credential's certificate "
             "expires (negative: expired).\n"
          << "# TYPE kyso_certificate_expiry_days gauge\n";
        for (const auto& id : creds.configuredIds()) {
            OsslPtr<X509> c = x509FromDer(creds.find(id)->certificateDer);
            int days = 0;
            int secs = 0;
            if (c && ::ASN1_TIME_diff(&days, &secs, nullptr, ::X509_get0_notAfter(c.get())) == 1) {
                o << "kyso_certificate_expiry_days{credential=\"" << promLabel(id) << "\"} "
                  << (days + secs / 86400.0) << "\n";
            }
        }
        const std::string body = o.str();
        x.status = 200;
        x.resp.setStatus(HTTPResponse::HTTP_OK);
        x.resp.setContentType("text/plain; version=0.0.4; charset=utf-8");
        x.resp.setContentLength64(static_cast<Poco::Int64>(body.size()));
        x.resp.send() << body;
    }

    void openapi(Exchange& x) {
        const std::string& doc = openApiDocument();
        x.status = 200;
        x.resp.setStatus(HTTPResponse::HTTP_OK);
        x.resp.setContentType("application/json");
        x.resp.setContentLength64(static_cast<Poco::Int64>(doc.size()));
        x.resp.send() << doc;
    }

    void handle(HTTPServerRequest& req, HTTPServerResponse& resp) {
        const auto started = std::chrono::steady_clock::now();
        Exchange x{req, resp, randomHex(12)};
        resp.set("X-Request-Id", x.requestId);
        resp.set("Cache-Control", "no-store");
        {
            std::lock_guard lk(flightMu);
            if (stopping) {
                resp.setKeepAlive(false);
                sendProblem(x, {"service.stopping", "the service is shutting down"}, 503);
                return;
            }
            ++inFlight;
        }
        struct Leave {
            Impl& impl;
            ~Leave() {
                std::lock_guard lk(impl.flightMu);
                --impl.inFlight;
                impl.flightCv.notify_all();
            }
        } leave{*this};
        std::string routeLabel = "other";
        try {
            Poco::URI uri(req.getURI());
            const std::string path = uri.getPath();
            const std::string& m = req.getMethod();
            // RFC 9112 6.3: a request without Content-Length or chunked coding has no body, but
            // Poco would read such a body until the connection closes (and hold the answer).
            const bool unframed =
                m == "POST" && !req.hasContentLength() && !req.getChunkedTransferEncoding();
            const Route* r = nullptr;
            for (const Route& candidate : routeTable()) {
                if (path == candidate.path) {
                    r = &candidate;
                    break;
                }
            }
            const bool receiptPath = path.rfind("/api/v1/receipts/", 0) == 0;
            routeLabel = r != nullptr                 ? r->path
                         : path.rfind("/ca/", 0) == 0 ? "/ca/{name}"
                         : receiptPath                ? "/api/v1/receipts/{id}"
                                                      : "other";
            if (unframed) {
                resp.setKeepAlive(false);
                sendProblem(x, {"length.required",
                                "a POST needs Content-Length or chunked transfer coding"});
            } else if (path.rfind("/ca/", 0) == 0 && m == "GET") {
                caObject(x, path);
            } else if (receiptPath && m == "GET") {
                receiptObject(x, path);
            } else if (r == nullptr) {
                sendProblem(x, {"route.not_found", "no such endpoint"});
            } else if (m != r->method) {
                resp.set("Allow", r->method);
                sendProblem(x, {"method.not_allowed", "use " + std::string(r->method)});
            } else {
                (this->*(r->fn))(x);
            }
            // Whatever the handler did not read of the body (an early answer: 401, 403, 413, ...).
            if (!unframed) {
                drain(x);
            }
        } catch (const std::exception& e) {
            if (!resp.sent()) {
                sendProblem(x, {"internal", "internal error"}, 500);
            }
            logJson("error", "request failed", {{"requestId", x.requestId}, {"error", e.what()}});
        }
        const auto ms = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::steady_clock::now() - started)
                            .count() /
                        1000.0;
        metrics.request(req.getMethod(), routeLabel, x.status, ms / 1000.0);
        // The path only: a query may carry a reason or a location, which is the document's.
        logJson("info", "request",
                {{"requestId", x.requestId},
                 {"principal", x.principal},
                 {"method", req.getMethod()},
                 {"path", Poco::URI(req.getURI()).getPath()},
                 {"status", x.status},
                 {"ms", ms}});
    }
};

namespace {

class Handler final : public Poco::Net::HTTPRequestHandler {
  public:
    explicit Handler(Service::Impl& impl) : m_impl(impl) {}
    void handleRequest(HTTPServerRequest& req, HTTPServerResponse& resp) override {
        m_impl.handle(req, resp);
    }

  private:
    Service::Impl& m_impl;
};

class Factory final : public Poco::Net::HTTPRequestHandlerFactory {
  public:
    explicit Factory(Service::Impl& impl) : m_impl(impl) {}
    Poco::Net::HTTPRequestHandler* createRequestHandler(const HTTPServerRequest&) override {
        return new Handler(m_impl);
    }
    // What HTTPServer::stopAll(true) does: every connection closes its socket.
    void closeConnections(const void* server) {
        const bool abortCurrent = true;
        serverStopped(server, abortCurrent);
    }

  private:
    Service::Impl& m_impl;
};

// Poco's HTTPServerConnection with one difference: a request the HTTP parser refuses (a header
// field over 8 KiB, more than 100 fields, a malformed request line) is answered with
// problem+json like every other error, not a bare 400. Stopping works as with HTTPServer: the
// base class closes the socket when the handler factory reports serverStopped.
class Connection final : public Poco::Net::HTTPServerConnection {
  public:
    Connection(const Poco::Net::StreamSocket& socket, Poco::Net::HTTPServerParams::Ptr params,
               Poco::Net::HTTPRequestHandlerFactory::Ptr factory)
        : HTTPServerConnection(socket, params, factory), m_params(params), m_factory(factory) {}

    void run() override {
        Poco::Net::HTTPServerSession session(socket(), m_params);
        while (session.hasMoreRequests()) {
            try {
                Poco::Net::HTTPServerResponseImpl response(session);
                Poco::Net::HTTPServerRequestImpl request(response, session, m_params);
                response.setVersion(request.getVersion());
                response.setKeepAlive(m_params->getKeepAlive() && request.getKeepAlive() &&
                                      session.canKeepAlive());
                response.setDate(Poco::Timestamp());
                std::unique_ptr<Poco::Net::HTTPRequestHandler> handler(
                    m_factory->createRequestHandler(request));
                if (request.getExpectContinue() && response.getStatus() == HTTPResponse::HTTP_OK) {
                    response.sendContinue();
                }
                handler->handleRequest(request, response);
                session.setKeepAlive(m_params->getKeepAlive() && response.getKeepAlive() &&
                                     session.canKeepAlive());
            } catch (const Poco::Net::NoMessageException&) {
                break;  // the client closed the connection, or sent nothing before the timeout
            } catch (const Poco::Net::MessageException& e) {
                malformed(session, e.message());
                break;
            } catch (const Poco::Exception&) {
                if (session.networkException()) {
                    session.networkException()->rethrow();
                }
                break;
            }
        }
    }

  private:
    static void malformed(Poco::Net::HTTPServerSession& session, const std::string& why) {
        const std::string requestId = randomHex(12);
        Poco::JSON::Object o(Poco::JSON_PRESERVE_KEY_ORDER);
        o.set("type", "urn:kyso:problem:request.malformed");
        o.set("title", "Bad Request");
        o.set("status", 400);
        o.set("detail", "the request cannot be parsed: " + why);
        o.set("code", "request.malformed");
        o.set("requestId", requestId);
        std::ostringstream body;
        o.stringify(body);
        try {
            Poco::Net::HTTPServerResponseImpl response(session);
            response.setVersion(HTTPResponse::HTTP_1_1);
            response.setStatusAndReason(HTTPResponse::HTTP_BAD_REQUEST);
            response.setContentType("application/problem+json");
            response.set("X-Request-Id", requestId);
            response.setKeepAlive(false);
            response.setContentLength64(static_cast<Poco::Int64>(body.str().size()));
            response.send() << body.str();
        } catch (const Poco::Exception&) {
            // The client is gone: nothing to answer.
        }
        logJson("info", "request",
                {{"requestId", requestId},
                 {"principal", "-"},
                 {"status", 400},
                 {"error", "malformed request: " + why}});
    }

    Poco::Net::HTTPServerParams::Ptr m_params;
    Poco::Net::HTTPRequestHandlerFactory::Ptr m_factory;
};

class ConnectionFactory final : public Poco::Net::TCPServerConnectionFactory {
  public:
    ConnectionFactory(Poco::Net::HTTPServerParams::Ptr params,
                      Poco::Net::HTTPRequestHandlerFactory::Ptr factory)
        : m_params(params), m_factory(factory) {}
    Poco::Net::TCPServerConnection* createConnection(
        const Poco::Net::StreamSocket& socket) override {
        return new Connection(socket, m_params, m_factory);
    }

  private:
    Poco::Net::HTTPServerParams::Ptr m_params;
    Poco::Net::HTTPRequestHandlerFactory::Ptr m_factory;
};

}  // namespace

Service::Service(const Config& cfg, hsm::Token& token, Store& store, CredentialRegistry& creds,
                 const Verifier& verifier, AuditLog& audit, signer::TimeStampAuthority* tsa,
                 signer::Timestamper* timestamper)
    : m_impl(std::make_unique<Impl>(cfg, token, store, creds, tsa, timestamper, verifier, audit)) {}

Service::~Service() {
    stop();
}

Status Service::start() {
    const Config& cfg = m_impl->cfg;
    if (m_impl->citizens) {
        // The AES key that seals citizens' TOTP keys: made on the token once, non-extractable.
        auto wrap = m_impl->token.ensureSecretKey(kCitizenSecretsKey);
        if (!wrap) {
            return Error::make(
                "server.start",
                "cannot make the key that seals citizens' secrets: " + wrap.error().detail);
        }
        if (wrap->generated) {
            m_impl->record({"key.generate", "service", kCitizenSecretsKey, "ok",
                            auditDetail({{"type", "AES-256"}, {"use", "citizen TOTP keys"}})});
        }
        // Citizens enrolled before this start sign again at once.
        if (auto st = m_impl->citizens->loadAll(); !st) {
            return Error::make("server.start", "cannot load the citizens: " + st.error().detail);
        }
    }
    for (const auto& client : cfg.clients) {
        std::ifstream in(client.certificate, std::ios::binary);
        std::stringstream pem;
        pem << in.rdbuf();
        auto certs = ca::certificatesFromPem(pem.str());
        if (!certs || certs->empty()) {
            return Error::make("server.start",
                               "cannot read the client certificate " + client.certificate);
        }
        OsslPtr<X509> x = x509FromDer(certs->front());
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        ::X509_digest(x.get(), ::EVP_sha256(), md, &len);
        m_impl->clients[hsm::hexOf(md, len)] =
            policies::Principal{client.name, *policies::parseRole(client.role)};
    }
    try {
        std::error_code ec;
        fs::create_directories(cfg.spoolDir, ec);
        fs::permissions(cfg.spoolDir, fs::perms::owner_all, fs::perm_options::replace, ec);
        // Named spool files of an older version, or of the mkstemp fallback, left by a process
        // that died mid-request: documents of past requests.
        for (const auto& e : fs::directory_iterator(cfg.spoolDir, ec)) {
            if (e.path().filename().string().rfind("req-", 0) == 0) {
                fs::remove(e.path(), ec);
            }
        }
        Poco::Net::Context::Params params;
        params.privateKeyFile = cfg.tlsPrivateKey;
        params.certificateFile = cfg.tlsCertificate;
        // Client certificates, when a client CA is configured: asked for, checked by the
        // handshake when presented (VERIFY_RELAXED), and mapped to principals by [client.NAME].
        params.verificationMode = cfg.clientCa.empty() ? Poco::Net::Context::VERIFY_NONE
                                                       : Poco::Net::Context::VERIFY_RELAXED;
        params.caLocation = cfg.clientCa;
        params.cipherList =
            "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
            "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
            "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";
        params.loadDefaultCAs = false;
        Poco::Net::Context::Ptr ctx =
            new Poco::Net::Context(Poco::Net::Context::TLS_SERVER_USE, params);
        ctx->requireMinimumProtocol(Poco::Net::Context::PROTO_TLSV1_2);
        ctx->preferServerCiphers();
        // SO_REUSEADDR (restart while old connections linger in TIME_WAIT) but not SO_REUSEPORT,
        // which Poco sets with it by default: a second service on the same port would start
        // "successfully" and share the connections with the first.
        Poco::Net::SecureServerSocket socket(ctx);
        socket.bind(Poco::Net::SocketAddress(cfg.listenHost, cfg.listenPort), true, false);
        socket.listen(128);
        auto* hp = new Poco::Net::HTTPServerParams;
        hp->setMaxThreads(static_cast<int>(cfg.threads));
        hp->setMaxQueued(256);
        hp->setKeepAlive(true);
        hp->setMaxKeepAliveRequests(10000);
        hp->setKeepAliveTimeout(Poco::Timespan(15, 0));
        // A client that stops sending (or reading) for this long is disconnected: slow clients
        // cannot hold a worker thread.
        hp->setTimeout(Poco::Timespan(cfg.socketTimeoutSeconds, 0));
        // Our own pool, so that stop() can wait for every connection thread.
        m_impl->pool = std::make_unique<Poco::ThreadPool>(2, static_cast<int>(cfg.threads) + 2);
        m_impl->handlers = new Factory(*m_impl);
        Poco::Net::HTTPServerParams::Ptr httpParams(hp);
        m_impl->server = std::make_unique<Poco::Net::TCPServer>(
            new ConnectionFactory(httpParams, m_impl->handlers), *m_impl->pool, socket, httpParams);
        m_impl->server->start();
        m_impl->tokenProbe = std::thread([impl = m_impl.get()] { impl->probeToken(); });
    } catch (const Poco::Exception& e) {
        return Error::make("server.start", "cannot start the HTTPS server: " + e.displayText());
    }
    return Ok{};
}

void Service::stop() {
    if (m_impl->tokenProbe.joinable()) {
        {
            std::lock_guard lk(m_impl->probeMu);
            m_impl->probeStop = true;
        }
        m_impl->probeCv.notify_all();
        m_impl->tokenProbe.join();
    }
    if (!m_impl->server) {
        return;
    }
    // Stop accepting, let requests in progress finish (bounded), then close every connection and
    // wait for the connection threads: nothing may still be signing when the token is closed.
    m_impl->server->stop();
    {
        std::unique_lock lk(m_impl->flightMu);
        m_impl->stopping = true;
        m_impl->flightCv.wait_for(lk, std::chrono::seconds(30),
                                  [this] { return m_impl->inFlight == 0; });
    }
    // As HTTPServer::stopAll(true): every connection closes its socket.
    static_cast<Factory*>(m_impl->handlers.get())->closeConnections(m_impl->server.get());
    m_impl->pool->joinAll();
    m_impl->server.reset();
    m_impl->pool.reset();
}

std::vector<std::pair<std::string, std::string>> Service::routes() {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& r : Impl::routeTable()) {
        out.emplace_back(r.method, r.path);
    }
    out.emplace_back("GET", "/api/v1/receipts/{id}");
    out.emplace_back("GET", "/api/v1/receipts/{id}/qr.png");
    out.emplace_back("GET", "/ca/{name}.crt");
    out.emplace_back("GET", "/ca/{name}.crl");
    return out;
}

std::uint16_t Service::port() const {
    return m_impl->server ? m_impl->server->port() : 0;
}

}  // namespace kyso::api
