// kyso_verify_bench: the in-process half of row g of bench/run. Validates one signed PDF with
// kyso::api::Verifier (the object the service and `kyso verify` use: [validation] trust anchors,
// policy, revocation through OCSP/CRL with a cache) from T threads for a fixed time, and prints
// how many verifications per second it gave. Every report must say TOTAL_PASSED; any other
// result counts as wrong and fails the run (exit 70).
//
//   kyso_verify_bench --config DEMO/kyso.conf --pdf FILE [--threads 1,2] [--seconds 5]
//                     [--split N]
//
// The revocation cache is in memory (Verifier::make(cfg, nullptr)): the service that may be
// running on the same demo keeps its SQLite database open, and this process must not open that
// file too. One verification before the timed loops warms the cache (the demo's OCSP and CRL
// URLs point at the running service, so it must be up for that call); after it nothing is
// fetched until the responses' nextUpdate (an OCSP status without one: 5 minutes).
//
// --split N times N sequential calls of each part of a verification, one thread, after the loops:
//   read    reading the file and SHA-256 over all of it (the I/O and digest floor)
//   facts   signer::readPdfSignatures: qpdf parse, /ByteRange digest, CMS and timestamp
//           signatures, modifications after signing (no trust, no network)
//   full    policies::validatePdf with the same anchors and policy as the Verifier and a
//           revocation checker whose fetches are counted (must stay 0 in the loop: a warm cache)
//   verifier  Verifier::pdf, as in the timed loops
// full - facts is the trust part: certificate paths of signer and TSA, revocation from the cache.
//
// Output (parsed by bench/run):
//   verify_bench warmup ms=M indication=I
//   verify_bench threads=T verifications=N seconds=S rate=R wrong=W
//   verify_bench split part=P calls=N ms=MS fetches=F
#include <Poco/Net/NetSSL.h>
#include <openssl/evp.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "kyso/api/config.h"
#include "kyso/api/http_fetch.h"
#include "kyso/api/verifier.h"
#include "kyso/ca-bridge/issuer.h"
#include "kyso/ca-bridge/path.h"
#include "kyso/ca-bridge/revocation.h"
#include "kyso/policies/validation.h"
#include "kyso/signer/pdf_signatures.h"
#include "timed_run.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
    std::string config;
    std::string pdf;
    std::vector<unsigned> threads{1, 2};
    double seconds = 5.0;
    unsigned split = 0;
};

[[noreturn]] void usage() {
    std::cerr << "usage: kyso_verify_bench --config KYSO_CONF --pdf FILE [--threads 1,2]"
                 " [--seconds S] [--split N]\n";
    std::exit(64);
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (i + 1 >= argc) {
            usage();
        }
        std::string v = argv[++i];
        if (a == "--config") {
            o.config = v;
        } else if (a == "--pdf") {
            o.pdf = v;
        } else if (a == "--seconds") {
            o.seconds = std::stod(v);
        } else if (a == "--split") {
            o.split = static_cast<unsigned>(std::stoul(v));
        } else if (a == "--threads") {
            o.threads.clear();
            std::stringstream ss(v);
            for (std::string t; std::getline(ss, t, ',');) {
                o.threads.push_back(static_cast<unsigned>(std::stoul(t)));
            }
        } else {
            usage();
        }
    }
    if (o.config.empty() || o.pdf.empty() || o.threads.empty() || o.seconds <= 0) {
        usage();
    }
    return o;
}

double msSince(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// A report is right when the document and every signature in it passed.
bool passed(const kyso::Result<kyso::policies::ValidationReport>& r) {
    if (!r || r->indication != "TOTAL_PASSED" || r->signatures.empty()) {
        return false;
    }
    for (const auto& s : r->signatures) {
        if (!s.passed()) {
            return false;
        }
    }
    return true;
}

std::string describe(const kyso::Result<kyso::policies::ValidationReport>& r) {
    if (!r) {
        return r.error().code + ": " + r.error().detail;
    }
    std::string s = r->indication;
    for (const auto& sig : r->signatures) {
        s += "; " + sig.id + " " + sig.indication + "/" + sig.subIndication;
        for (const auto& e : sig.errors) {
            s += "; error: " + e;
        }
        for (const auto& w : sig.warnings) {
            s += "; warning: " + w;
        }
    }
    return s;
}

std::vector<std::string> pemCerts(const std::string& path) {
    if (std::filesystem::is_directory(path)) {
        return kyso::ca::loadAnchorDirectory(path).value();
    }
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return kyso::ca::certificatesFromPem(ss.str()).value();
}

// The split (see the top of the file). Returns false when a part gave a wrong result.
bool split(const Options& o, const kyso::api::Config& cfg, const kyso::api::Verifier& verifier) {
    const auto& vc = cfg.validation;
    std::atomic<unsigned long> fetches{0};
    auto http = kyso::api::makeHttpFetch(vc.tlsCaFile, vc.timeoutSeconds);
    kyso::ca::RevocationChecker checker(
        [&](const std::string& url, const std::string& body, const std::string& type) {
            fetches.fetch_add(1);
            return http(url, body, type);
        },
        cfg.signing.validation.ocspMaxAgeSeconds);
    kyso::policies::ValidationContext ctx;
    if (!vc.trustAnchors.empty()) {
        ctx.anchorsDer = pemCerts(vc.trustAnchors);
    }
    if (!vc.intermediates.empty()) {
        ctx.intermediatesDer = pemCerts(vc.intermediates);
    }
    ctx.revocation = &checker;
    ctx.policy = kyso::policies::validationPolicyOf(cfg.signing.validation);

    // Warm this checker's own cache, as the Verifier's was warmed.
    auto warm = kyso::policies::validatePdf(o.pdf, ctx);
    if (!passed(warm)) {
        std::cerr << "verify_bench: split warm-up: " << describe(warm) << "\n";
        return false;
    }
    bool ok = true;
    auto part = [&](const char* name, auto&& call) {
        const unsigned long f0 = fetches.load();
        const auto t0 = Clock::now();
        for (unsigned i = 0; i < o.split; ++i) {
            if (!call()) {
                std::cerr << "verify_bench: split part " << name << " gave a wrong result\n";
                ok = false;
                return;
            }
        }
        std::printf("verify_bench split part=%s calls=%u ms=%.4f fetches=%lu\n", name, o.split,
                    msSince(t0) / o.split, fetches.load() - f0);
        std::fflush(stdout);
    };
    part("read", [&] {
        std::ifstream in(o.pdf, std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        return !bytes.empty() &&
               EVP_Digest(bytes.data(), bytes.size(), md, &n, EVP_sha256(), nullptr) == 1;
    });
    part("facts", [&] {
        auto sigs = kyso::signer::readPdfSignatures(o.pdf);
        return sigs && !sigs->empty() && sigs->front().signatureValid &&
               sigs->front().digestMatches;
    });
    part("full", [&] { return passed(kyso::policies::validatePdf(o.pdf, ctx)); });
    part("verifier", [&] { return passed(verifier.pdf(o.pdf)); });
    return ok && fetches.load() > 0;  // the warm-up fetched, the loops did not (printed)
}

}  // namespace

int main(int argc, char** argv) {
    Options o = parse(argc, argv);
    Poco::Net::initializeSSL();
    auto cfg = kyso::api::loadConfig(o.config);
    if (!cfg) {
        std::cerr << "verify_bench: " << cfg.error().code << ": " << cfg.error().detail << "\n";
        return 69;
    }
    auto made = kyso::api::Verifier::make(*cfg, nullptr);
    if (!made) {
        std::cerr << "verify_bench: " << made.error().code << ": " << made.error().detail << "\n";
        return 69;
    }
    const kyso::api::Verifier& verifier = **made;

    {
        const auto t0 = Clock::now();
        auto r = verifier.pdf(o.pdf);
        const double ms = msSince(t0);
        if (!passed(r)) {
            std::cerr << "verify_bench: the warm-up verification did not pass: " << describe(r)
                      << "\n";
            return 70;
        }
        std::printf("verify_bench warmup ms=%.2f indication=%s\n", ms, r->indication.c_str());
        std::fflush(stdout);
    }

    int rc = 0;
    for (unsigned t : o.threads) {
        std::string firstWrong;
        std::once_flag once;
        const kyso::bench::TimedRun run =
            kyso::bench::runFor(t, o.seconds, [&](unsigned, unsigned long) {
                auto r = verifier.pdf(o.pdf);
                if (!passed(r)) {
                    std::call_once(once, [&] { firstWrong = describe(r); });
                    return false;
                }
                return true;
            });
        std::printf("verify_bench threads=%u verifications=%lu seconds=%.3f rate=%.1f wrong=%lu\n",
                    t, run.done, run.seconds, run.done / run.seconds, run.failed);
        std::fflush(stdout);
        if (run.failed != 0) {
            std::cerr << "verify_bench: first wrong result: " << firstWrong << "\n";
            rc = 70;
        }
    }
    if (o.split > 0 && !split(o, *cfg, verifier)) {
        rc = 70;
    }
    Poco::Net::uninitializeSSL();
    return rc;
}
