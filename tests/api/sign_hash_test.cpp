// POST /api/v1/sign/hash: raw signatures of precomputed digests, in batches, checked by
// `openssl pkeyutl`; and the demo made with ECDSA P-256 signing keys (`kyso demo init
// --key-type P-256`) signing hashes, PDFs and timestamps, checked by openssl and pdfsig.
#include <Poco/Base64Decoder.h>
#include <Poco/Base64Encoder.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>

#include "rest_env.h"

namespace kyso::test {
namespace {

std::string toBase64(const std::string& bin) {
    std::ostringstream out;
    Poco::Base64Encoder enc(out);
    enc.rdbuf()->setLineLength(0);
    enc << bin;
    enc.close();
    return out.str();
}

std::string fromBase64(const std::string& text) {
    std::istringstream in(text);
    Poco::Base64Decoder dec(in);
    return std::string(std::istreambuf_iterator<char>(dec), {});
}

std::string randomDigest(std::size_t len) {
    std::string d(len, '\0');
    EXPECT_EQ(::RAND_bytes(reinterpret_cast<unsigned char*>(d.data()), static_cast<int>(len)), 1);
    return d;
}

std::string sha256(const std::string& data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    ::EVP_Digest(data.data(), data.size(), md, &len, ::EVP_sha256(), nullptr);
    return std::string(reinterpret_cast<char*>(md), len);
}

std::string hexOf(const std::string& bin) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned char c : bin) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

// The request body, written to a file for curl.
std::string hashRequest(const std::string& credential, const std::string& hashAlgorithm,
                        const std::string& signAlgorithm, const std::vector<std::string>& digests,
                        const std::string& extra = "") {
    std::string body =
        "{\"credential\":\"" + credential + "\",\"hashAlgorithm\":\"" + hashAlgorithm + "\"";
    if (!signAlgorithm.empty()) {
        body += ",\"signAlgorithm\":\"" + signAlgorithm + "\"";
    }
    body += ",\"hashes\":[";
    for (std::size_t i = 0; i < digests.size(); ++i) {
        body += (i ? ",\"" : "\"") + toBase64(digests[i]) + "\"";
    }
    body += "]" + extra + "}";
    const std::string path = tempDir("sign-hash") + "/req.json";
    writeFile(path, body);
    return path;
}

std::vector<std::string> signaturesOf(const Response& r) {
    std::vector<std::string> out;
    auto arr = r.json()->getArray("signatures");
    for (std::size_t i = 0; arr && i < arr->size(); ++i) {
        out.push_back(fromBase64(arr->getElement<std::string>(static_cast<unsigned>(i))));
    }
    return out;
}

// Whether `openssl pkeyutl -verify` accepts SIG over DIGEST with CERTPEM's public key.
bool opensslVerifies(const std::string& certPem, const std::string& digest, const std::string& sig,
                     const std::string& mdName, bool pss = false) {
    const std::string d = tempDir("pkeyutl");
    EXPECT_EQ(
        run("openssl x509 -in " + shellQuote(certPem) + " -pubkey -noout > " + d + "/pub.pem"), 0);
    writeFile(d + "/h.bin", digest);
    writeFile(d + "/s.bin", sig);
    std::string cmd = "openssl pkeyutl -verify -pubin -inkey " + d + "/pub.pem -in " + d +
                      "/h.bin -sigfile " + d + "/s.bin -pkeyopt digest:" + mdName;
    if (pss) {
        cmd += " -pkeyopt rsa_padding_mode:pss -pkeyopt rsa_pss_saltlen:digest";
    }
    std::string out;
    return run(cmd + " 2>&1", &out) == 0 &&
           out.find("Signature Verified Successfully") != std::string::npos;
}

// The `sign.hash` entries of the audit log with outcome ok, as their detail objects.
std::vector<Object::Ptr> okSignHashEntries(Env& env) {
    std::vector<Object::Ptr> out;
    std::uint64_t after = 0;
    for (;;) {
        auto r = env.request("GET", "/api/v1/audit?limit=1000&after=" + std::to_string(after),
                             env.keys["admin"]);
        EXPECT_EQ(r.status, 200) << r.body;
        auto entries = r.status == 200 ? r.json()->getArray("entries") : nullptr;
        if (!entries || entries->size() == 0) {
            return out;
        }
        for (std::size_t i = 0; i < entries->size(); ++i) {
            auto e = entries->getObject(static_cast<unsigned>(i));
            after = e->getValue<std::uint64_t>("seq");
            if (e->getValue<std::string>("type") == "sign.hash" &&
                e->getValue<std::string>("outcome") == "ok") {
                out.push_back(e);
            }
        }
    }
}

TEST(SignHash, RsaBatchVerifiesWithOpensslAndIsAuditedOnce) {
    auto& env = Env::get();
    const std::size_t before = okSignHashEntries(env).size();
    std::vector<std::string> digests;
    for (int i = 0; i < 5; ++i) {
        digests.push_back(randomDigest(32));
    }
    auto r = env.request("POST", "/api/v1/sign/hash", env.keys["officer-1"],
                         hashRequest("officer-1", "SHA-256", "", digests), "application/json");
    ASSERT_EQ(r.status, 200) << r.body;
    auto sigs = signaturesOf(r);
    ASSERT_EQ(sigs.size(), digests.size());
    const std::string cert = env.dir + "/pki/officer-1.pem";
    for (std::size_t i = 0; i < sigs.size(); ++i) {
        EXPECT_EQ(sigs[i].size(), 256u);  // RSA-2048
        EXPECT_TRUE(opensslVerifies(cert, digests[i], sigs[i], "sha256")) << i;
    }
    // In order: signature 0 is not one over digest 1.
    EXPECT_FALSE(opensslVerifies(cert, digests[1], sigs[0], "sha256"));

    auto entries = okSignHashEntries(env);
    ASSERT_EQ(entries.size(), before + 1);
    std::string all;
    for (const auto& d : digests) {
        all += d;
    }
    auto detail = entries.back()->getObject("detail");
    ASSERT_FALSE(detail.isNull()) << "audit entry without a detail object";
    EXPECT_EQ(detail->getValue<std::string>("signatures"), "5");
    EXPECT_EQ(detail->getValue<std::string>("hashes.sha256"), hexOf(sha256(all)));
    EXPECT_EQ(entries.back()->getValue<std::string>("credential"), "officer-1");
}

TEST(SignHash, PssWithSha384AndOidNames) {
    auto& env = Env::get();
    const std::vector<std::string> digests = {randomDigest(48), randomDigest(48)};
    auto r = env.request("POST", "/api/v1/sign/hash", env.keys["officer-1"],
                         hashRequest("officer-1", "2.16.840.1.101.3.4.2.2", "RSASSA-PSS", digests),
                         "application/json");
    ASSERT_EQ(r.status, 200) << r.body;
    auto sigs = signaturesOf(r);
    ASSERT_EQ(sigs.size(), 2u);
    const std::string cert = env.dir + "/pki/officer-1.pem";
    for (std::size_t i = 0; i < sigs.size(); ++i) {
        EXPECT_TRUE(opensslVerifies(cert, digests[i], sigs[i], "sha384", true)) << i;
        // PSS, not PKCS#1 v1.5.
        EXPECT_FALSE(opensslVerifies(cert, digests[i], sigs[i], "sha384", false)) << i;
    }
    // PKCS#1 v1.5 named by its OID.
    r = env.request("POST", "/api/v1/sign/hash", env.keys["officer-1"],
                    hashRequest("officer-1", "SHA-512", "1.2.840.113549.1.1.1", {randomDigest(64)}),
                    "application/json");
    ASSERT_EQ(r.status, 200) << r.body;
}

TEST(SignHash, RefusesBadRequestsWithoutSigning) {
    auto& env = Env::get();
    const std::size_t before = okSignHashEntries(env).size();
    const std::string officer = env.keys["officer-1"];
    auto post = [&](const std::string& file, const std::string& key) {
        return env.request("POST", "/api/v1/sign/hash", key, file, "application/json");
    };
    const std::string good = toBase64(randomDigest(32));
    // A SHA-256 request with a 20-byte digest.
    expectProblem(post(hashRequest("officer-1", "SHA-256", "", {randomDigest(20)}), officer), 400,
                  "request.invalid");
    expectProblem(post(hashRequest("officer-1", "SHA-256", "", {}), officer), 400,
                  "request.invalid");
    expectProblem(post(hashRequest("officer-1", "SHA-256", "",
                                   std::vector<std::string>(501, randomDigest(32))),
                       officer),
                  400, "request.invalid");
    expectProblem(post(hashRequest("officer-1", "MD5", "", {randomDigest(16)}), officer), 400,
                  "request.invalid");
    expectProblem(post(hashRequest("officer-1", "SHA-256", "ECDSA", {randomDigest(32)}), officer),
                  400, "request.invalid");
    expectProblem(
        post(hashRequest("officer-1", "SHA-256", "", {randomDigest(32)}, ",\"detached\":true"),
             officer),
        400, "request.invalid");
    const std::string notJson = tempDir("sign-hash") + "/x";
    writeFile(notJson, "hashes=" + good);
    expectProblem(post(notJson, officer), 400, "request.invalid");
    const std::string notBase64 = tempDir("sign-hash") + "/nb.json";
    writeFile(notBase64,
              "{\"credential\":\"officer-1\",\"hashAlgorithm\":\"SHA-256\",\"hashes\":[\"!!\"]}");
    expectProblem(post(notBase64, officer), 400, "request.invalid");
    expectProblem(post(hashRequest("nobody", "SHA-256", "", {randomDigest(32)}), officer), 404,
                  "credential.unknown");
    // Another officer, the clerk (a seal is not for hashes), an administrator.
    for (const char* who : {"officer-2", "clerk", "admin", "portal"}) {
        SCOPED_TRACE(who);
        expectProblem(
            post(hashRequest("officer-1", "SHA-256", "", {randomDigest(32)}), env.keys[who]), 403,
            "auth.denied");
    }
    expectProblem(
        post(hashRequest("agency-seal", "SHA-256", "", {randomDigest(32)}), env.keys["clerk"]), 403,
        "auth.denied");
    EXPECT_EQ(okSignHashEntries(env).size(), before);
}

TEST(SignHash, EcdsaP256DemoSignsHashesPdfsAndTimestamps) {
    const std::string dir = tempDir("demo-p256");
    const std::string listen = "127.0.0.1:" + std::to_string(freePort());
    std::string out;
    ASSERT_EQ(run(std::string(KYSO_BINARY) + " demo init --dir " + dir + " --listen " + listen +
                      " --key-type P-256 2>&1",
                  &out),
              0)
        << out;
    // A second run with another key type is refused (usage), and changes nothing.
    EXPECT_EQ(run(std::string(KYSO_BINARY) + " demo init --dir " + dir + " --listen " + listen +
                      " --key-type RSA-2048 2>&1",
                  &out),
              64)
        << out;
    EXPECT_NE(out.find("demo.key_type"), std::string::npos) << out;
    EXPECT_EQ(run(std::string(KYSO_BINARY) + " demo init --dir " + dir + "-x --key-type P-384 2>&1",
                  &out),
              64)
        << out;
    EXPECT_FALSE(std::filesystem::exists(dir + "-x"));
    std::string text;
    ASSERT_EQ(run("openssl x509 -in " + dir + "/pki/officer-1.pem -noout -text", &text), 0);
    EXPECT_NE(text.find("NIST CURVE: P-256"), std::string::npos) << text;

    ServeProcess serve = startServe(dir + "/kyso.conf");
    ASSERT_FALSE(serve.port.empty()) << readFile(serve.log);
    const std::string base = "https://" + listen;
    const std::string ca = dir + "/pki/root-ca.pem";
    const std::string officer = demoApiKey(dir, "officer-1");
    ASSERT_FALSE(officer.empty());

    const std::vector<std::string> digests = {randomDigest(32), randomDigest(32), randomDigest(32)};
    auto r = curlRequest(ca, base, "POST", "/api/v1/sign/hash", officer,
                         hashRequest("officer-1", "SHA-256", "ECDSA", digests), "application/json");
    ASSERT_EQ(r.status, 200) << r.body;
    auto sigs = signaturesOf(r);
    ASSERT_EQ(sigs.size(), 3u);
    for (std::size_t i = 0; i < sigs.size(); ++i) {
        EXPECT_TRUE(opensslVerifies(dir + "/pki/officer-1.pem", digests[i], sigs[i], "sha256"))
            << i;
    }
    expectProblem(
        curlRequest(ca, base, "POST", "/api/v1/sign/hash", officer,
                    hashRequest("officer-1", "SHA-256", "RSASSA-PSS", digests), "application/json"),
        400, "request.invalid");

    // PAdES with the P-256 key: pdfsig and our verifier accept it.
    const std::string pdf = tempDir("p256") + "/signed.pdf";
    r = curlRequest(ca, base, "POST", "/api/v1/sign/pdf?credential=officer-1&level=B-T", officer,
                    samplePdf(), "application/pdf", pdf);
    ASSERT_EQ(r.status, 200) << readFile(pdf);
    ASSERT_EQ(run("pdfsig " + pdf + " 2>&1", &out), 0) << out;
    EXPECT_NE(out.find("Signature is Valid."), std::string::npos) << out;
    r = curlRequest(ca, base, "POST", "/api/v1/verify", demoApiKey(dir, "portal"), pdf);
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.json()->getValue<std::string>("indication"), "TOTAL_PASSED") << r.body;

    // RFC 3161 with the P-256 TSA key.
    const std::string t = tempDir("p256-tsa");
    ASSERT_EQ(run("openssl ts -query -data " + samplePdf() + " -sha256 -cert -out " + t + "/q.tsq"),
              0);
    r = curlRequest(ca, base, "POST", "/tsa", "", t + "/q.tsq", "application/timestamp-query",
                    t + "/r.tsr");
    ASSERT_EQ(r.status, 200);
    writeFile(t + "/untrusted.pem",
              readFile(dir + "/pki/issuing-ca.pem") + readFile(dir + "/pki/tsa.pem"));
    ASSERT_EQ(run("openssl ts -verify -queryfile " + t + "/q.tsq -in " + t + "/r.tsr -CAfile " +
                      ca + " -untrusted " + t + "/untrusted.pem 2>&1",
                  &out),
              0)
        << out;
    EXPECT_NE(out.find("Verification: OK"), std::string::npos) << out;
    ASSERT_EQ(run("openssl x509 -in " + dir + "/pki/tsa.pem -noout -text", &text), 0);
    EXPECT_NE(text.find("NIST CURVE: P-256"), std::string::npos);

    ::kill(serve.pid, SIGTERM);
    int status = 0;
    ::waitpid(serve.pid, &status, 0);
}

}  // namespace
}  // namespace kyso::test
