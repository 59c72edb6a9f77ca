// kyso_loadgen: HTTPS load from a separate process for scripts/soak. N keep-alive connections,
// each on its own thread, send a weighted mix of requests to a running `kyso serve` and check
// every response; anything that is not the expected answer is an error, printed (status and the
// first bytes) for the first few and counted for all.
//
//   kyso_loadgen --url https://127.0.0.1:PORT --cafile ROOT.pem (--max | --rate R)
//                [--duration S] [--connections N] [--mix sign=4,seal=1,tsa=4,verify=2]
//                [--pdf IN.pdf] [--signed SIGNED.pdf] [--tsq Q.tsq]
//                [--officer-keyfile F] [--portal-keyfile F] [--progress S]
//
// Request types (a type with weight 0 needs none of its inputs):
//   sign    POST /api/v1/sign/pdf?credential=officer-1&level=B-B, body --pdf, officer key:
//           200, application/pdf, a body that starts with %PDF, ends with %%EOF, one /ByteRange
//   seal    POST /api/v1/sign/pdf?credential=officer-1&seal=agency-seal&level=B-B: the same,
//           with two /ByteRange (the officer's signature and the agency's seal)
//   tsa     POST /tsa, body --tsq (DER TimeStampReq): 200, application/timestamp-reply, one DER
//           TimeStampResp whose PKIStatus is granted (0 or 1) and that carries a token
//   verify  POST /api/v1/verify, body --signed, portal key: 200, application/json, and every
//           "indication" in the report TOTAL_PASSED
// --max is a closed loop: every connection sends its next request as soon as the last one is
// answered. --rate R is an open loop: R requests a second in total, connection k of N sends at
// start + (k + i*N)/R, and a request's latency is measured from its scheduled time, so a slow
// server is not hidden by sending fewer requests (coordinated omission).
// API keys are read from files (never from the command line). Output: one table on stdout and a
// last line `loadgen_json {...}` for scripts; progress every --progress seconds on stderr.
// Exit status: 0 when no request failed, 1 when any did, 64 for a usage error.
#include <Poco/Exception.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JSON/Stringifier.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/StreamCopier.h>
#include <Poco/URI.h>
#include <openssl/asn1.h>
#include <openssl/ts.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

enum Kind { kSign, kSeal, kTsa, kVerify, kKinds };
constexpr std::array<const char*, kKinds> kNames{"sign", "seal", "tsa", "verify"};

struct Options {
    std::string url;
    std::string caFile;
    bool max = false;
    double rate = 0;
    double seconds = 60;
    unsigned connections = 8;
    std::array<unsigned, kKinds> weights{4, 1, 4, 2};
    std::string pdf;
    std::string signedPdf;
    std::string tsq;
    std::string officerKeyFile;
    std::string portalKeyFile;
    double progress = 10;
    unsigned printErrors = 10;
};

[[noreturn]] void usage(const std::string& why = "") {
    if (!why.empty()) {
        std::cerr << "kyso_loadgen: " << why << "\n";
    }
    std::cerr << "usage: kyso_loadgen --url https://HOST:PORT --cafile ROOT.pem (--max | --rate R)"
                 " [--duration S] [--connections N] [--mix sign=4,seal=1,tsa=4,verify=2]"
                 " [--pdf F] [--signed F] [--tsq F] [--officer-keyfile F] [--portal-keyfile F]"
                 " [--progress S] [--print-errors N]\n";
    std::exit(64);
}

std::array<unsigned, kKinds> parseMix(const std::string& s) {
    std::array<unsigned, kKinds> w{0, 0, 0, 0};
    std::stringstream ss(s);
    for (std::string item; std::getline(ss, item, ',');) {
        const auto eq = item.find('=');
        if (eq == std::string::npos) {
            usage("--mix items are NAME=WEIGHT");
        }
        const std::string name = item.substr(0, eq);
        const auto it = std::find(kNames.begin(), kNames.end(), name);
        if (it == kNames.end()) {
            usage("unknown request type in --mix: " + name);
        }
        w[static_cast<std::size_t>(it - kNames.begin())] =
            static_cast<unsigned>(std::stoul(item.substr(eq + 1)));
    }
    return w;
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--max") {
            o.max = true;
            continue;
        }
        if (i + 1 >= argc) {
            usage("missing value after " + a);
        }
        const std::string v = argv[++i];
        try {
            if (a == "--url") {
                o.url = v;
            } else if (a == "--cafile") {
                o.caFile = v;
            } else if (a == "--rate") {
                o.rate = std::stod(v);
            } else if (a == "--duration") {
                o.seconds = std::stod(v);
            } else if (a == "--connections") {
                o.connections = static_cast<unsigned>(std::stoul(v));
            } else if (a == "--mix") {
                o.weights = parseMix(v);
            } else if (a == "--pdf") {
                o.pdf = v;
            } else if (a == "--signed") {
                o.signedPdf = v;
            } else if (a == "--tsq") {
                o.tsq = v;
            } else if (a == "--officer-keyfile") {
                o.officerKeyFile = v;
            } else if (a == "--portal-keyfile") {
                o.portalKeyFile = v;
            } else if (a == "--progress") {
                o.progress = std::stod(v);
            } else if (a == "--print-errors") {
                o.printErrors = static_cast<unsigned>(std::stoul(v));
            } else {
                usage("unknown option " + a);
            }
        } catch (const std::logic_error&) {
            usage("bad value for " + a + ": " + v);
        }
    }
    if (o.url.empty() || o.caFile.empty()) {
        usage("--url and --cafile are required");
    }
    if (o.max == (o.rate > 0)) {
        usage("exactly one of --max and --rate R (R > 0)");
    }
    if (o.connections == 0 || o.seconds <= 0) {
        usage("--connections and --duration must be positive");
    }
    unsigned total = 0;
    for (unsigned w : o.weights) {
        total += w;
    }
    if (total == 0) {
        usage("--mix has no request type with a weight above 0");
    }
    return o;
}

std::string slurp(const std::string& path, const char* what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        std::cerr << "kyso_loadgen: cannot read " << what << " " << path << "\n";
        std::exit(66);
    }
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string readKey(const std::string& path, const char* what) {
    std::string k = slurp(path, what);
    while (!k.empty() && std::isspace(static_cast<unsigned char>(k.back()))) {
        k.pop_back();
    }
    if (k.empty()) {
        std::cerr << "kyso_loadgen: " << what << " " << path << " is empty\n";
        std::exit(66);
    }
    return k;
}

// One request type: what is sent, and how its answer is checked (empty string: accepted;
// otherwise why not).
struct Target {
    std::string path;
    std::string contentType;
    const std::string* body = nullptr;
    std::string authorization;  // "Bearer KEY" or empty
    std::string wantType;
};

std::size_t countOf(const std::string& hay, const std::string& needle) {
    std::size_t n = 0;
    for (auto p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) {
        ++n;
    }
    return n;
}

std::string checkPdf(const std::string& body, std::size_t signatures) {
    if (body.compare(0, 5, "%PDF-") != 0) {
        return "not a PDF (no %PDF- at the start)";
    }
    auto end = body.find_last_not_of("\r\n \t");
    if (end == std::string::npos || end < 4 || body.compare(end - 4, 5, "%%EOF") != 0) {
        return "the PDF does not end with %%EOF";
    }
    const std::size_t n = countOf(body, "/ByteRange");
    if (n != signatures) {
        return std::to_string(n) + " /ByteRange in the PDF, " + std::to_string(signatures) +
               " expected";
    }
    return {};
}

std::string checkTsa(const std::string& body) {
    const auto* p = reinterpret_cast<const unsigned char*>(body.data());
    TS_RESP* resp = ::d2i_TS_RESP(nullptr, &p, static_cast<long>(body.size()));
    if (resp == nullptr) {
        return "not a DER TimeStampResp";
    }
    std::string why;
    if (p != reinterpret_cast<const unsigned char*>(body.data()) + body.size()) {
        why = "bytes after the TimeStampResp";
    } else {
        const ASN1_INTEGER* status = ::TS_STATUS_INFO_get0_status(::TS_RESP_get_status_info(resp));
        const long s = ::ASN1_INTEGER_get(status);
        if (s != 0 && s != 1) {
            why = "PKIStatus " + std::to_string(s) + " (not granted)";
        } else if (::TS_RESP_get_token(resp) == nullptr) {
            why = "granted, but no timeStampToken";
        }
    }
    ::TS_RESP_free(resp);
    return why;
}

// Every "indication" anywhere in the report; the report must have at least one and all
// TOTAL_PASSED.
void indications(const Poco::Dynamic::Var& v, std::vector<std::string>& out) {
    if (v.type() == typeid(Poco::JSON::Object::Ptr)) {
        auto o = v.extract<Poco::JSON::Object::Ptr>();
        for (const auto& [k, child] : *o) {
            if (k == "indication" && child.isString()) {
                out.push_back(child.toString());
            } else {
                indications(child, out);
            }
        }
    } else if (v.type() == typeid(Poco::JSON::Array::Ptr)) {
        auto a = v.extract<Poco::JSON::Array::Ptr>();
        for (const auto& child : *a) {
            indications(child, out);
        }
    }
}

std::string checkVerify(const std::string& body) {
    std::vector<std::string> found;
    try {
        Poco::JSON::Parser parser;
        indications(parser.parse(body), found);
    } catch (const Poco::Exception& e) {
        return "the report is not JSON: " + e.displayText();
    }
    if (found.size() < 2) {
        return "the report has " + std::to_string(found.size()) + " indications";
    }
    for (const auto& i : found) {
        if (i != "TOTAL_PASSED") {
            return "indication " + i;
        }
    }
    return {};
}

std::string check(Kind k, const std::string& body) {
    switch (k) {
        case kSign:
            return checkPdf(body, 1);
        case kSeal:
            return checkPdf(body, 2);
        case kTsa:
            return checkTsa(body);
        case kVerify:
            return checkVerify(body);
        default:
            return "unknown request type";
    }
}

// The first bytes of a body, printable.
std::string preview(const std::string& body) {
    std::string out;
    for (std::size_t i = 0; i < body.size() && i < 160; ++i) {
        const unsigned char c = static_cast<unsigned char>(body[i]);
        if (c >= 0x20 && c < 0x7f) {
            out.push_back(static_cast<char>(c));
        } else {
            char hex[5];
            std::snprintf(hex, sizeof hex, "\\x%02x", c);
            out += hex;
        }
    }
    return out;
}

// Per connection and request type: latencies in microseconds and the error count.
struct Samples {
    std::vector<std::uint32_t> us;
    unsigned long errors = 0;
};

struct Shared {
    std::atomic<unsigned long> done{0};
    std::atomic<unsigned long> errors{0};
    std::atomic<unsigned> printed{0};
    std::mutex printMu;
};

class Connection {
  public:
    Connection(const Options& o, Poco::Net::Context::Ptr tls, const std::vector<Target>& targets,
               Shared& shared)
        : m_o(o), m_tls(std::move(tls)), m_targets(targets), m_shared(shared) {}

    // Sends one request of kind k; true when its answer passed the check.
    bool send(Kind k) {
        const Target& t = m_targets[k];
        std::string why;
        int status = 0;
        std::string body;
        try {
            if (!m_session) {
                const Poco::URI uri(m_o.url);
                m_session = std::make_unique<Poco::Net::HTTPSClientSession>(uri.getHost(),
                                                                            uri.getPort(), m_tls);
                m_session->setKeepAlive(true);
                m_session->setTimeout(Poco::Timespan(60, 0));
            }
            Poco::Net::HTTPRequest req(Poco::Net::HTTPRequest::HTTP_POST, t.path,
                                       Poco::Net::HTTPMessage::HTTP_1_1);
            req.setKeepAlive(true);
            req.setContentType(t.contentType);
            req.setContentLength64(static_cast<Poco::Int64>(t.body->size()));
            if (!t.authorization.empty()) {
                req.set("Authorization", t.authorization);
            }
            m_session->sendRequest(req).write(t.body->data(),
                                              static_cast<std::streamsize>(t.body->size()));
            Poco::Net::HTTPResponse resp;
            std::istream& in = m_session->receiveResponse(resp);
            Poco::StreamCopier::copyToString(in, body);
            status = resp.getStatus();
            if (status != 200) {
                why = "HTTP " + std::to_string(status);
            } else if (resp.getContentType().rfind(t.wantType, 0) != 0) {
                why = "Content-Type " + resp.getContentType();
            } else {
                why = check(k, body);
            }
            if (!resp.getKeepAlive()) {
                // The server closed the connection (it does so after an error answer): the next
                // request opens a new one. Counted in the summary as a reconnect.
                m_session.reset();
                ++m_reconnects;
            }
        } catch (const Poco::Exception& e) {
            why = "exception: " + e.displayText();
            m_session.reset();
            ++m_reconnects;
        } catch (const std::exception& e) {
            why = std::string("exception: ") + e.what();
            m_session.reset();
            ++m_reconnects;
        }
        if (why.empty()) {
            return true;
        }
        if (m_shared.printed.fetch_add(1) < m_o.printErrors) {
            std::lock_guard lk(m_shared.printMu);
            std::cerr << "kyso_loadgen: error on " << kNames[k] << ": " << why << " (status "
                      << status << ", " << body.size() << " bytes: " << preview(body) << ")\n";
        }
        return false;
    }

    unsigned long reconnects() const { return m_reconnects; }

  private:
    const Options& m_o;
    Poco::Net::Context::Ptr m_tls;
    const std::vector<Target>& m_targets;
    Shared& m_shared;
    std::unique_ptr<Poco::Net::HTTPSClientSession> m_session;
    unsigned long m_reconnects = 0;
};

struct Stats {
    unsigned long requests = 0;
    unsigned long errors = 0;
    double rate = 0;
    double p50 = 0;
    double p99 = 0;
    double max = 0;
};

Stats summarize(std::vector<std::uint32_t> us, unsigned long errors, double seconds) {
    Stats s;
    s.requests = us.size();
    s.errors = errors;
    s.rate = static_cast<double>(us.size()) / seconds;
    if (!us.empty()) {
        std::sort(us.begin(), us.end());
        auto at = [&](double q) {
            std::size_t i = static_cast<std::size_t>(q * static_cast<double>(us.size() - 1) + 0.5);
            return us[std::min(i, us.size() - 1)] / 1000.0;
        };
        s.p50 = at(0.50);
        s.p99 = at(0.99);
        s.max = us.back() / 1000.0;
    }
    return s;
}

Poco::JSON::Object statsJson(const Stats& s) {
    Poco::JSON::Object j;
    j.set("requests", s.requests);
    j.set("errors", s.errors);
    j.set("rate", std::round(s.rate * 10) / 10);
    j.set("p50_ms", std::round(s.p50 * 100) / 100);
    j.set("p99_ms", std::round(s.p99 * 100) / 100);
    j.set("max_ms", std::round(s.max * 100) / 100);
    return j;
}

}  // namespace

int main(int argc, char** argv) {
    const Options o = parse(argc, argv);

    std::string pdf, signedPdf, tsq, officerAuth, portalAuth;
    if (o.weights[kSign] + o.weights[kSeal] > 0) {
        if (o.pdf.empty() || o.officerKeyFile.empty()) {
            usage("sign and seal need --pdf and --officer-keyfile");
        }
        pdf = slurp(o.pdf, "PDF");
        officerAuth = "Bearer " + readKey(o.officerKeyFile, "officer key file");
    }
    if (o.weights[kTsa] > 0) {
        if (o.tsq.empty()) {
            usage("tsa needs --tsq");
        }
        tsq = slurp(o.tsq, "TimeStampReq");
    }
    if (o.weights[kVerify] > 0) {
        if (o.signedPdf.empty() || o.portalKeyFile.empty()) {
            usage("verify needs --signed and --portal-keyfile");
        }
        signedPdf = slurp(o.signedPdf, "signed PDF");
        portalAuth = "Bearer " + readKey(o.portalKeyFile, "portal key file");
    }
    std::vector<Target> targets(kKinds);
    targets[kSign] = {"/api/v1/sign/pdf?credential=officer-1&level=B-B", "application/pdf", &pdf,
                      officerAuth, "application/pdf"};
    targets[kSeal] = {"/api/v1/sign/pdf?credential=officer-1&seal=agency-seal&level=B-B",
                      "application/pdf", &pdf, officerAuth, "application/pdf"};
    targets[kTsa] = {"/tsa", "application/timestamp-query", &tsq, "",
                     "application/timestamp-reply"};
    targets[kVerify] = {"/api/v1/verify", "application/pdf", &signedPdf, portalAuth,
                        "application/json"};

    Poco::Net::Context::Params p;
    p.verificationMode = Poco::Net::Context::VERIFY_STRICT;
    p.caLocation = o.caFile;
    p.loadDefaultCAs = false;
    Poco::Net::Context::Ptr tls = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, p);
    tls->requireMinimumProtocol(Poco::Net::Context::PROTO_TLSV1_2);
    // Keep-alive connections resume nothing, but a reconnect after an error may: allow it.
    tls->enableSessionCache(true);

    Shared shared;
    const unsigned n = o.connections;
    std::vector<std::array<Samples, kKinds>> samples(n);
    std::vector<unsigned long> reconnects(n, 0);
    std::vector<std::thread> pool;
    std::atomic<bool> stop{false};
    const auto start = Clock::now() + std::chrono::milliseconds(50);
    const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(o.seconds));

    for (unsigned c = 0; c < n; ++c) {
        pool.emplace_back([&, c] {
            Connection conn(o, tls, targets, shared);
            std::mt19937 rng(1000 + c);
            std::discrete_distribution<int> pick(o.weights.begin(), o.weights.end());
            auto& mine = samples[c];
            for (auto& s : mine) {
                s.us.reserve(4096);
            }
            std::this_thread::sleep_until(start);
            for (unsigned long i = 0;; ++i) {
                Clock::time_point scheduled;
                if (o.max) {
                    scheduled = Clock::now();
                } else {
                    const double at =
                        (static_cast<double>(c) + static_cast<double>(i) * n) / o.rate;
                    scheduled = start + std::chrono::duration_cast<Clock::duration>(
                                            std::chrono::duration<double>(at));
                    if (scheduled >= deadline) {
                        break;
                    }
                    std::this_thread::sleep_until(scheduled);
                }
                if (scheduled >= deadline || stop.load(std::memory_order_relaxed)) {
                    break;
                }
                const Kind k = static_cast<Kind>(pick(rng));
                const bool ok = conn.send(k);
                const auto us =
                    std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - scheduled)
                        .count();
                mine[k].us.push_back(static_cast<std::uint32_t>(
                    std::min<long long>(us, std::numeric_limits<std::uint32_t>::max())));
                if (!ok) {
                    ++mine[k].errors;
                    shared.errors.fetch_add(1, std::memory_order_relaxed);
                }
                shared.done.fetch_add(1, std::memory_order_relaxed);
            }
            reconnects[c] = conn.reconnects();
        });
    }

    // Progress on stderr while the load runs. A request still running at the deadline is
    // waited for (at most the 60 s socket timeout) and counted; none is started after it.
    {
        unsigned long lastDone = 0;
        auto last = start;
        std::this_thread::sleep_until(start);
        while (Clock::now() < deadline) {
            auto next = std::min(deadline, last + std::chrono::duration_cast<Clock::duration>(
                                                      std::chrono::duration<double>(o.progress)));
            std::this_thread::sleep_until(next);
            const unsigned long d = shared.done.load();
            const double secs = std::chrono::duration<double>(next - last).count();
            const double t = std::chrono::duration<double>(next - start).count();
            std::fprintf(stderr, "kyso_loadgen: t=%.0fs done=%lu errors=%lu rate=%.1f/s\n", t, d,
                         shared.errors.load(), secs > 0 ? (d - lastDone) / secs : 0.0);
            lastDone = d;
            last = next;
        }
        stop = true;
    }
    for (auto& t : pool) {
        t.join();
    }
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    // Rates are over the load window (the last answers may come in a little after it).
    const double window = std::max(o.seconds, 1e-9);

    Poco::JSON::Object json;
    json.set("mode", o.max ? "max" : "rate");
    json.set("target_rate", o.rate);
    json.set("connections", n);
    json.set("duration_s", o.seconds);
    json.set("elapsed_s", std::round(elapsed * 100) / 100);
    Poco::JSON::Object types;
    std::vector<std::uint32_t> all;
    unsigned long allErrors = 0;
    unsigned long allReconnects = 0;
    std::printf("%-7s %9s %7s %9s %9s %9s %9s\n", "type", "requests", "errors", "rate/s", "p50 ms",
                "p99 ms", "max ms");
    for (int k = 0; k < kKinds; ++k) {
        if (o.weights[k] == 0) {
            continue;
        }
        std::vector<std::uint32_t> us;
        unsigned long errors = 0;
        for (const auto& s : samples) {
            us.insert(us.end(), s[k].us.begin(), s[k].us.end());
            errors += s[k].errors;
        }
        all.insert(all.end(), us.begin(), us.end());
        allErrors += errors;
        const Stats st = summarize(std::move(us), errors, window);
        std::printf("%-7s %9lu %7lu %9.1f %9.2f %9.2f %9.2f\n", kNames[k], st.requests, st.errors,
                    st.rate, st.p50, st.p99, st.max);
        types.set(kNames[k], statsJson(st));
    }
    for (unsigned long r : reconnects) {
        allReconnects += r;
    }
    const Stats total = summarize(std::move(all), allErrors, window);
    std::printf("%-7s %9lu %7lu %9.1f %9.2f %9.2f %9.2f\n", "total", total.requests, total.errors,
                total.rate, total.p50, total.p99, total.max);
    // The load generator's own CPU time: it runs on the same machine as the server.
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    const double cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                       static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    char target[64] = "";
    if (!o.max) {
        std::snprintf(target, sizeof target, ", target %.1f/s", o.rate);
    }
    std::printf(
        "(%s, %u connections, %.0f s%s; latency from the %s time; %lu reconnects; "
        "kyso_loadgen CPU %.1f s)\n",
        o.max ? "closed loop, --max" : "open loop", n, o.seconds, target,
        o.max ? "send" : "scheduled", allReconnects, cpu);
    json.set("types", types);
    json.set("total", statsJson(total));
    json.set("reconnects", allReconnects);
    json.set("cpu_s", std::round(cpu * 10) / 10);
    std::ostringstream line;
    Poco::JSON::Stringifier::stringify(json, line);
    std::printf("loadgen_json %s\n", line.str().c_str());
    std::fflush(stdout);
    return total.errors == 0 && total.requests > 0 ? 0 : 1;
}
