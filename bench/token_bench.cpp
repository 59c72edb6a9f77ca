// kyso_token_bench: the baseline of the REST rows of bench/run. Signs SHA-256 digests with a key
// on the token (RSA PKCS#1 v1.5, or ECDSA for an EC key) through kyso::hsm::Token, from T threads
// for a fixed time, and
// prints how many signatures per second the token gave. No PDF, no CMS, no HTTP: only the token.
//
//   kyso_token_bench --dir DEMO_DIR [--key officer-1] [--threads 1,2] [--seconds 5]
//
// DEMO_DIR is a `kyso demo init` directory: the PIN is read from DEMO_DIR/secrets/user.pin by the
// token layer (never printed), and SOFTHSM2_CONF defaults to DEMO_DIR/softhsm2.conf.
// Output, one line per thread count (parsed by bench/run):
//   token_bench threads=T signatures=N seconds=S rate=R
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "kyso/hsm/token.h"
#include "timed_run.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
    std::string dir;
    std::string key = "officer-1";
    std::string module = "/usr/lib/softhsm/libsofthsm2.so";
    std::string tokenLabel = "kyso-demo";
    std::vector<unsigned> threads{1, 2};
    double seconds = 5.0;
};

[[noreturn]] void usage() {
    std::cerr << "usage: kyso_token_bench --dir DEMO_DIR [--key LABEL] [--threads 1,2]"
                 " [--seconds S] [--module SO] [--token LABEL]\n";
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
        if (a == "--dir") {
            o.dir = v;
        } else if (a == "--key") {
            o.key = v;
        } else if (a == "--module") {
            o.module = v;
        } else if (a == "--token") {
            o.tokenLabel = v;
        } else if (a == "--seconds") {
            o.seconds = std::stod(v);
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
    if (o.dir.empty() || o.threads.empty() || o.seconds <= 0) {
        usage();
    }
    return o;
}

// Checks one signature against the key's public half, so the benchmark is known to measure
// real, correct signatures.
bool verifies(const kyso::hsm::KeyInfo& key, const std::string& digest, const std::string& sig) {
    const auto* p = reinterpret_cast<const unsigned char*>(key.publicKeyDer.data());
    EVP_PKEY* pub = d2i_PUBKEY(nullptr, &p, static_cast<long>(key.publicKeyDer.size()));
    if (!pub) {
        return false;
    }
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(pub, nullptr);
    const bool rsa = key.type == kyso::hsm::KeyType::Rsa;
    bool ok =
        ctx && EVP_PKEY_verify_init(ctx) > 0 &&
        (!rsa || EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0) &&
        EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) > 0 &&
        EVP_PKEY_verify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                        reinterpret_cast<const unsigned char*>(digest.data()), digest.size()) == 1;
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pub);
    return ok;
}

}  // namespace

int main(int argc, char** argv) {
    Options o = parse(argc, argv);
    if (!std::getenv("SOFTHSM2_CONF")) {
        ::setenv("SOFTHSM2_CONF", (o.dir + "/softhsm2.conf").c_str(), 1);
    }
    kyso::hsm::TokenConfig cfg;
    cfg.modulePath = o.module;
    cfg.tokenLabel = o.tokenLabel;
    cfg.pinSource = "file:" + o.dir + "/secrets/user.pin";
    auto token = kyso::hsm::Token::open(cfg);
    if (!token) {
        std::cerr << "token_bench: " << token.error().code << ": " << token.error().detail << "\n";
        return 69;
    }
    kyso::hsm::KeyRef ref;
    ref.label = o.key;
    auto key = (*token)->findKey(ref);
    if (!key) {
        std::cerr << "token_bench: " << key.error().code << ": " << key.error().detail << "\n";
        return 69;
    }

    // 256 distinct SHA-256 digests of random data, made once; the loop only signs.
    std::vector<std::string> digests(256);
    for (auto& d : digests) {
        unsigned char buf[64];
        unsigned char md[32];
        RAND_bytes(buf, sizeof buf);
        unsigned int n = 0;
        EVP_Digest(buf, sizeof buf, md, &n, EVP_sha256(), nullptr);
        d.assign(reinterpret_cast<char*>(md), n);
    }

    const kyso::hsm::SignScheme scheme = key->type == kyso::hsm::KeyType::Rsa
                                             ? kyso::hsm::SignScheme::RsaPkcs1v15
                                             : kyso::hsm::SignScheme::Ecdsa;
    {
        auto sig = (*token)->sign(*key, scheme, kyso::hsm::HashAlg::Sha256, digests[0]);
        if (!sig || !verifies(*key, digests[0], *sig)) {
            std::cerr << "token_bench: the first signature did not verify\n";
            return 70;
        }
    }

    int rc = 0;
    for (unsigned t : o.threads) {
        const kyso::bench::TimedRun run =
            kyso::bench::runFor(t, o.seconds, [&](unsigned thread, unsigned long n) {
                return (*token)
                    ->sign(*key, scheme, kyso::hsm::HashAlg::Sha256,
                           digests[(thread * 31 + n) % digests.size()])
                    .ok();
            });
        std::printf("token_bench threads=%u signatures=%lu seconds=%.3f rate=%.1f errors=%lu\n", t,
                    run.done, run.seconds, run.done / run.seconds, run.failed);
        std::fflush(stdout);
        if (run.failed != 0) {
            rc = 70;
        }
    }
    return rc;
}
