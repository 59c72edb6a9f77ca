// The service end to end: `kyso demo init` into a fresh directory, a real HTTPS server on a
// loopback port, curl as the client, pdfsig and qpdf to check what comes back.
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/NetSSL.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <sstream>
#include <thread>

#include "kyso/api/config.h"
#include "kyso/api/credentials.h"
#include "kyso/api/demo.h"
#include "kyso/api/service.h"
#include "kyso/api/store.h"
#include "kyso/ca-bridge/crl.h"
#include "kyso/ca-bridge/issuer.h"
#include "rest_env.h"
#include "test_env.h"

namespace kyso::test {
namespace {

namespace fs = std::filesystem;
using Poco::JSON::Object;

TEST(Rest, HealthAndReadiness) {
    auto& env = Env::get();
    auto h = env.request("GET", "/healthz");
    EXPECT_EQ(h.status, 200);
    auto r = env.request("GET", "/readyz");
    EXPECT_EQ(r.status, 200) << r.body;
    auto j = r.json();
    EXPECT_EQ(j->getValue<std::string>("status"), "ready");
    EXPECT_EQ(j->getObject("checks")->getValue<std::string>("token"), "ok");
}

// The ids in a credentials listing, in order.
std::vector<std::string> listedIds(const Response& r) {
    std::vector<std::string> ids;
    auto list = r.json()->getArray("credentials");
    for (std::size_t i = 0; i < list->size(); ++i) {
        ids.push_back(list->getObject(static_cast<unsigned>(i))->getValue<std::string>("id"));
    }
    return ids;
}

TEST(Rest, CredentialsListShowsWhatTheCallerMayUse) {
    auto& env = Env::get();
    auto r = env.request("GET", "/api/v1/credentials", env.keys["officer-1"]);
    ASSERT_EQ(r.status, 200) << r.body;
    // Their own credential, the agency seal entrusted to them, and the TSA that every role may
    // use for timestamps.
    ASSERT_EQ(listedIds(r), (std::vector<std::string>{"officer-1", "agency-seal", "tsa"}));
    auto c = r.json()->getArray("credentials")->getObject(0);
    EXPECT_EQ(c->getValue<std::string>("kind"), "officer");
    EXPECT_EQ(c->getValue<std::string>("keyAlgorithm"), "RSA-2048");
    EXPECT_NE(c->getValue<std::string>("subject").find("Nguyễn Văn An"), std::string::npos);
    EXPECT_EQ(c->getArray("certificateChain")->size(), 2u);
    EXPECT_FALSE(c->getValue<std::string>("notAfter").empty());
    EXPECT_EQ(r.json()->getArray("credentials")->getObject(1)->getValue<std::string>("kind"),
              "seal");
    EXPECT_EQ(r.json()->getArray("credentials")->getObject(2)->getValue<std::string>("kind"),
              "tsa");
    // The registry office sees the seal it applies, and never an officer's credential.
    auto clerk = env.request("GET", "/api/v1/credentials", env.keys["clerk"]);
    EXPECT_EQ(listedIds(clerk), (std::vector<std::string>{"agency-seal", "tsa"}));
    // Another officer and a portal see no officer credential.
    auto other = env.request("GET", "/api/v1/credentials", env.keys["officer-2"]);
    ASSERT_EQ(other.status, 200);
    EXPECT_EQ(listedIds(other), (std::vector<std::string>{"tsa"}));
    // A portal: the receipt seal it has receipts sealed with, and the TSA.
    auto portal = env.request("GET", "/api/v1/credentials", env.keys["portal"]);
    EXPECT_EQ(listedIds(portal), (std::vector<std::string>{"receipt-seal", "tsa"}));
}

TEST(Rest, AuthenticationIsRequired) {
    auto& env = Env::get();
    expectProblem(env.request("GET", "/api/v1/credentials"), 401, "auth.required");
    auto bad = env.request("GET", "/api/v1/credentials",
                           "kyso_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    expectProblem(bad, 401, "auth.invalid");
    // A real key id with a wrong secret.
    std::string forged = env.keys["officer-1"];
    forged.back() = forged.back() == 'A' ? 'B' : 'A';
    expectProblem(env.request("GET", "/api/v1/credentials", forged), 401, "auth.invalid");
}

TEST(Rest, RevokedKeyIsRefused) {
    auto& env = Env::get();
    auto key = env.store->createApiKey("temp-officer", policies::Role::Officer);
    ASSERT_TRUE(key.ok());
    EXPECT_EQ(env.request("GET", "/api/v1/credentials", *key).status, 200);
    ASSERT_TRUE(env.store->revokeApiKey("temp-officer").ok());
    expectProblem(env.request("GET", "/api/v1/credentials", *key), 401, "auth.invalid");
}

TEST(Rest, SignsAPdfVerifiedByPdfsig) {
    auto& env = Env::get();
    const std::string out = tempDir("rest") + "/signed.pdf";
    auto r =
        env.request("POST", "/api/v1/sign/pdf?credential=officer-1&reason=Ph%C3%AA%20duy%E1%BB%87t",
                    env.keys["officer-1"], samplePdf(), "application/pdf", out);
    ASSERT_EQ(r.status, 200) << readFile(out);
    EXPECT_EQ(r.header("Content-Type"), "application/pdf");
    EXPECT_EQ(r.header("Kyso-Signature-Id").size(), 32u);
    const std::string original = readFile(samplePdf());
    const std::string signedPdf = readFile(out);
    ASSERT_GT(signedPdf.size(), original.size());
    EXPECT_EQ(signedPdf.compare(0, original.size(), original), 0);
    std::string pdfsig;
    run("pdfsig " + shellQuote(out), &pdfsig);
    EXPECT_NE(pdfsig.find("Signature is Valid."), std::string::npos) << pdfsig;
    EXPECT_NE(pdfsig.find("Total document signed"), std::string::npos) << pdfsig;
    EXPECT_NE(pdfsig.find("Nguyễn Văn An"), std::string::npos) << pdfsig;
    EXPECT_NE(pdfsig.find("ETSI.CAdES.detached"), std::string::npos) << pdfsig;
    std::string check;
    EXPECT_EQ(run("qpdf --check " + shellQuote(out), &check), 0) << check;
}

// Without Content-Length the body is spooled to an anonymous file on disk rather than memory.
TEST(Rest, SignsAChunkedBody) {
    auto& env = Env::get();
    const std::string dir = tempDir("chunked");
    writeFile(dir + "/auth", "Authorization: Bearer " + env.keys["officer-1"] + "\n");
    std::string code;
    run("curl -sS --cacert " + shellQuote(env.dir + "/pki/root-ca.pem") + " -H @" + dir +
            "/auth -H 'Content-Type: application/pdf' -H 'Transfer-Encoding: chunked' "
            "--data-binary @" +
            shellQuote(samplePdf()) + " -o " + dir + "/o.pdf -w '%{http_code}' " +
            shellQuote(env.url("/api/v1/sign/pdf?credential=officer-1")),
        &code);
    ASSERT_EQ(code, "200") << readFile(dir + "/o.pdf");
    std::string pdfsig;
    run("pdfsig " + dir + "/o.pdf", &pdfsig);
    EXPECT_NE(pdfsig.find("Signature is Valid."), std::string::npos) << pdfsig;
    EXPECT_NE(pdfsig.find("Total document signed"), std::string::npos) << pdfsig;
    // A chunked body over the limit is cut off while it is read.
    writeFile(dir + "/big.pdf", "%PDF-1.7\n" + std::string(kTestBodyLimit + 1, 'x'));
    run("curl -sS --cacert " + shellQuote(env.dir + "/pki/root-ca.pem") + " -H @" + dir +
            "/auth -H 'Content-Type: application/pdf' -H 'Transfer-Encoding: chunked' "
            "--data-binary @" +
            dir + "/big.pdf -o " + dir + "/p.json -w '%{http_code}' " +
            shellQuote(env.url("/api/v1/sign/pdf?credential=officer-1")),
        &code);
    EXPECT_EQ(code, "413") << readFile(dir + "/p.json");
    EXPECT_TRUE(fs::is_empty(env.cfg.spoolDir));
}

TEST(Rest, ConcurrentSigningRequests) {
    auto& env = Env::get();
    std::vector<std::future<int>> results;
    for (int i = 0; i < 16; ++i) {
        results.push_back(std::async(std::launch::async, [&env, i] {
            const std::string out = tempDir("conc") + "/o" + std::to_string(i) + ".pdf";
            auto r = env.request("POST", "/api/v1/sign/pdf?credential=officer-1",
                                 env.keys["officer-1"], samplePdf(), "application/pdf", out);
            if (r.status != 200) {
                return r.status;
            }
            std::string pdfsig;
            run("pdfsig " + shellQuote(out), &pdfsig);
            return pdfsig.find("Signature is Valid.") != std::string::npos ? 200 : -2;
        }));
    }
    for (auto& f : results) {
        EXPECT_EQ(f.get(), 200);
    }
}

TEST(Rest, DocumentErrorsAreProblems) {
    auto& env = Env::get();
    const std::string dir = tempDir("bad");
    const std::string key = env.keys["officer-1"];
    const std::string path = "/api/v1/sign/pdf?credential=officer-1";
    writeFile(dir + "/notpdf", "this is plain text, not a PDF at all");
    expectProblem(env.request("POST", path, key, dir + "/notpdf"), 415, "pdf.not_pdf");
    writeFile(dir + "/empty", "");
    expectProblem(env.request("POST", path, key, dir + "/empty"), 400, "pdf.empty");
    const std::string sample = readFile(samplePdf());
    writeFile(dir + "/trunc", sample.substr(0, sample.size() / 3));
    expectProblem(env.request("POST", path, key, dir + "/trunc"), 422, "pdf.truncated");
    expectProblem(
        env.request("POST", path, key, corpusDir() + "/pdf/unsigned/ph-minimal-aes256.pdf"), 422,
        "pdf.encrypted");
    // A permission-protected document whose permissions forbid filling in forms or signing.
    expectProblem(
        env.request("POST", path, key,
                    corpusDir() + "/pdf/unsigned/dss-protected-edition_protected_none.pdf"),
        422, "pdf.permissions");
    expectProblem(env.request("POST", path, key, samplePdf(), "text/plain"), 415,
                  "content_type.unsupported");
    // Damaged documents: the detail says what, but names no path of the service (its spool
    // files are /proc/self/fd/N) - for signing and for verifying.
    for (const char* name : {"dss-EmptyPage-corrupted.pdf", "ph-circular-page-tree.pdf"}) {
        SCOPED_TRACE(name);
        const std::string file = corpusDir() + "/pdf/unsigned/" + name;
        auto r = env.request("POST", path, key, file);
        expectProblem(r, 422, "pdf.damaged");
        EXPECT_EQ(r.body.find("/proc/"), std::string::npos) << r.body;
        EXPECT_EQ(r.body.find(env.cfg.spoolDir), std::string::npos) << r.body;
        auto v = env.request("POST", "/api/v1/verify", env.keys["portal"], file);
        EXPECT_EQ(v.body.find("/proc/"), std::string::npos) << v.body;
    }
    // The spool directory holds nothing afterwards: no half-written file stays behind.
    EXPECT_TRUE(fs::is_empty(env.cfg.spoolDir));
}

TEST(Rest, WordHybridDocumentIsSigned) {
    auto& env = Env::get();
    const std::string out = tempDir("hybrid-rest") + "/signed.pdf";
    auto r = env.request("POST", "/api/v1/sign/pdf?credential=officer-1", env.keys["officer-1"],
                         testDataDir() + "/pdf/hybrid-word.pdf", "application/pdf", out);
    ASSERT_EQ(r.status, 200) << readFile(out);
    std::string pdfsig;
    run("pdfsig " + shellQuote(out), &pdfsig);
    EXPECT_NE(pdfsig.find("Signature is Valid."), std::string::npos) << pdfsig;
    EXPECT_NE(pdfsig.find("Total document signed"), std::string::npos) << pdfsig;
}

TEST(Rest, PasswordProtectedDocumentIsSignedWithThePasswordInAHeader) {
    auto& env = Env::get();
    const std::string in = corpusDir() + "/pdf/unsigned/ph-minimal-aes256.pdf";
    const std::string path = "/api/v1/sign/pdf?credential=officer-1";
    const std::string out = tempDir("password-rest") + "/signed.pdf";
    // Without the password, and with a wrong one: pdf.encrypted, and the detail never echoes it.
    expectProblem(env.request("POST", path, env.keys["officer-1"], in), 422, "pdf.encrypted");
    auto wrong = env.request("POST", path, env.keys["officer-1"], in, "application/pdf", "",
                             "-H 'Kyso-Document-Password: wrong-guess' ");
    expectProblem(wrong, 422, "pdf.encrypted");
    EXPECT_EQ(wrong.body.find("wrong-guess"), std::string::npos) << wrong.body;
    auto r = env.request("POST", path, env.keys["officer-1"], in, "application/pdf", out,
                         "-H 'Kyso-Document-Password: usersecret' ");
    ASSERT_EQ(r.status, 200) << readFile(out);
    std::string pdfsig;
    run("pdfsig -upw usersecret " + shellQuote(out), &pdfsig);
    EXPECT_NE(pdfsig.find("Signature is Valid."), std::string::npos) << pdfsig;
    std::string check;
    EXPECT_EQ(run("qpdf --password=usersecret --check " + shellQuote(out), &check), 0) << check;
    // A portal verifies a permission-protected signed document (no password needed) as any other.
    const std::string protectedIn = corpusDir() + "/pdf/unsigned/dss-protected-open_protected.pdf";
    const std::string copy = tempDir("password-rest-verify") + "/p.pdf";
    ASSERT_EQ(
        run("qpdf --password=' ' --decrypt " + shellQuote(protectedIn) + " " + copy +
            ".plain && qpdf --encrypt '' owner 256 --print=none -- " + copy + ".plain " + copy),
        0);
    const std::string protectedOut = tempDir("password-rest-verify2") + "/signed.pdf";
    ASSERT_EQ(
        env.request("POST", path, env.keys["officer-1"], copy, "application/pdf", protectedOut)
            .status,
        200);
    auto v = env.request("POST", "/api/v1/verify", env.keys["portal"], protectedOut);
    ASSERT_EQ(v.status, 200) << v.body;
    auto report = v.json();
    EXPECT_EQ(report->getValue<std::string>("indication"), "TOTAL_PASSED") << v.body;
    // A document that needs a password is not verified, and says why.
    expectProblem(env.request("POST", "/api/v1/verify", env.keys["portal"], out), 422,
                  "pdf.encrypted");
    // The audit trail records the signature, never the password.
    auto audit = env.request("GET", "/api/v1/audit?limit=1000", env.keys["admin"]);
    ASSERT_EQ(audit.status, 200);
    EXPECT_EQ(audit.body.find("usersecret"), std::string::npos);
    EXPECT_EQ(audit.body.find("wrong-guess"), std::string::npos);
}

TEST(Rest, BodyOverTheLimitIsRefused) {
    auto& env = Env::get();
    const std::string dir = tempDir("big");
    writeFile(dir + "/big.pdf", "%PDF-1.7\n" + std::string(kTestBodyLimit + 1, 'x'));
    expectProblem(env.request("POST", "/api/v1/sign/pdf?credential=officer-1",
                              env.keys["officer-1"], dir + "/big.pdf"),
                  413, "body.too_large");
    EXPECT_TRUE(fs::is_empty(env.cfg.spoolDir));
}

TEST(Rest, CredentialAndPermissionErrors) {
    auto& env = Env::get();
    expectProblem(env.request("POST", "/api/v1/sign/pdf?credential=nobody", env.keys["officer-1"],
                              samplePdf()),
                  404, "credential.unknown");
    expectProblem(env.request("POST", "/api/v1/sign/pdf?credential=officer-1",
                              env.keys["officer-2"], samplePdf()),
                  403, "auth.denied");
    expectProblem(env.request("POST", "/api/v1/sign/pdf?credential=officer-1", env.keys["portal"],
                              samplePdf()),
                  403, "auth.denied");
    expectProblem(env.request("POST", "/api/v1/sign/pdf?credential=officer-1", env.keys["admin"],
                              samplePdf()),
                  403, "auth.denied");
    expectProblem(env.request("POST", "/api/v1/sign/pdf", env.keys["officer-1"], samplePdf()), 400,
                  "request.invalid");
    expectProblem(env.request("POST", "/api/v1/sign/pdf?credential=officer-1&bogus=1",
                              env.keys["officer-1"], samplePdf()),
                  400, "request.invalid");
}

// GET /openapi.json documents every route the service has, and nothing it does not have.
TEST(Rest, OpenApiDocumentsEveryRoute) {
    auto& env = Env::get();
    auto r = env.request("GET", "/openapi.json");
    ASSERT_EQ(r.status, 200);
    auto doc = r.json();
    EXPECT_EQ(doc->getValue<std::string>("openapi").substr(0, 2), "3.");
    auto paths = doc->getObject("paths");
    std::set<std::string> served;
    for (const auto& [method, path] : api::Service::routes()) {
        std::string m = method;
        for (char& c : m) {
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        served.insert(m + " " + path);
        ASSERT_TRUE(paths->has(path)) << path << " is served but not in openapi.json";
        EXPECT_TRUE(paths->getObject(path)->has(m))
            << method << " " << path << " is not documented";
    }
    for (const auto& [path, value] : *paths) {
        for (const auto& [m, op] : *paths->getObject(path)) {
            EXPECT_TRUE(served.count(m + " " + path))
                << m << " " << path << " is documented but not served";
        }
    }
    // Every route answers at its documented method (not 404 route.not_found).
    for (const auto& [method, path] : api::Service::routes()) {
        std::string p = path;
        const auto brace = p.find("{name}");
        if (brace != std::string::npos) {
            p.replace(brace, 6, "root-ca");
        }
        auto a = method == "POST" ? env.request(method, p, "", "/dev/null", "application/x-empty")
                                  : env.request(method, p);
        if (p.find("{id}") != std::string::npos) {
            // An id that names nothing: the route answers that, not "no such endpoint".
            EXPECT_EQ(a.body.find("route.not_found"), std::string::npos) << method << " " << p;
        } else {
            EXPECT_NE(a.status, 404) << method << " " << p << ": " << a.body;
        }
    }
}

TEST(Rest, MetricsCountRequestsSignaturesAndCertificateLifetimes) {
    auto& env = Env::get();
    const std::string out = tempDir("metrics") + "/signed.pdf";
    ASSERT_EQ(env.request("POST", "/api/v1/sign/pdf?credential=officer-1&level=B-B",
                          env.keys["officer-1"], samplePdf(), "application/pdf", out)
                  .status,
              200);
    env.request("GET", "/no/such/path/12345");
    auto r = env.request("GET", "/metrics");
    ASSERT_EQ(r.status, 200);
    EXPECT_NE(r.header("Content-Type").find("text/plain"), std::string::npos);
    const std::string& m = r.body;
    EXPECT_NE(m.find("kyso_operations_total{credential=\"officer-1\",operation=\"sign.pdf\","
                     "outcome=\"ok\"}"),
              std::string::npos)
        << m;
    EXPECT_NE(m.find("kyso_http_requests_total{method=\"POST\",route=\"/api/v1/sign/pdf\","
                     "status=\"200\"}"),
              std::string::npos);
    EXPECT_NE(m.find("kyso_http_request_duration_seconds_bucket{route=\"/api/v1/sign/pdf\","
                     "le=\"+Inf\"}"),
              std::string::npos);
    EXPECT_NE(m.find("kyso_token_up 1"), std::string::npos);
    EXPECT_NE(m.find("kyso_certificate_expiry_days{credential=\"officer-1\"} 7"),
              std::string::npos);  // the demo officer's certificate: 730 days
    // Unknown paths share one label: the label set stays bounded.
    EXPECT_EQ(m.find("/no/such/path"), std::string::npos);
    EXPECT_NE(m.find("route=\"other\",status=\"404\""), std::string::npos);
    // Nothing secret.
    EXPECT_EQ(m.find(env.keys["officer-1"].substr(22)), std::string::npos);
}

TEST(Rest, RoutingErrors) {
    auto& env = Env::get();
    // A POST without Content-Length or chunked coding: refused at once, not read until the
    // connection closes (curl --max-time bounds the test if it were).
    std::string code;
    run("curl -s -o /dev/null -w '%{http_code}' --max-time 20 -X POST --cacert " +
            shellQuote(env.dir + "/pki/root-ca.pem") + " " + shellQuote(env.url("/api/v1/verify")),
        &code);
    EXPECT_EQ(code, "411");
    // Oversized or too many header fields, refused by the HTTP parser before any handler runs:
    // 400 problem+json all the same, and the service keeps serving.
    std::string many;
    for (int i = 0; i < 150; ++i) {
        many += "-H 'X-H" + std::to_string(i) + ": v' ";
    }
    const std::string bigFile = tempDir("headers2") + "/big";
    writeFile(bigFile, "X-Big: " + std::string(20000, 'a') + "\n");
    for (const std::string& args : {"-H @" + bigFile + " ", many}) {
        expectProblem(env.request("GET", "/healthz", "", "", "", "", args), 400,
                      "request.malformed");
    }
    EXPECT_EQ(env.request("GET", "/healthz").status, 200);
    expectProblem(env.request("GET", "/nope"), 404, "route.not_found");
    expectProblem(env.request("GET", "/api/v1/sign/pdf", env.keys["officer-1"]), 405,
                  "method.not_allowed");
}

TEST(Rest, OnlyTls12AndLaterOverHttps) {
    auto& env = Env::get();
    const std::string port = std::to_string(env.service->port());
    std::string out;
    EXPECT_NE(run("curl -sS --max-time 5 http://127.0.0.1:" + port + "/healthz", &out), 0)
        << "plain HTTP must be refused: " << out;
    EXPECT_NE(run("echo | openssl s_client -connect 127.0.0.1:" + port + " -tls1_1", &out), 0)
        << out;
    EXPECT_EQ(run("curl -sS --tlsv1.2 --tls-max 1.2 --cacert " +
                      shellQuote(env.dir + "/pki/root-ca.pem") + " " + env.url("/healthz"),
                  &out),
              0)
        << out;
}

// The CLI on the same demo: local signing by credential id and by PKCS#11 URI.
TEST(Cli, SignPdfLocally) {
    auto& env = Env::get();
    const std::string dir = tempDir("cli");
    for (const std::string& key :
         {std::string("officer-1"),
          std::string("pkcs11:token=kyso-demo;object=officer-1;type=private")}) {
        const std::string out = dir + "/out.pdf";
        std::string log;
        const int rc = run(std::string(KYSO_BINARY) + " sign pdf --config " +
                               shellQuote(env.dir + "/kyso.conf") + " --key " + shellQuote(key) +
                               " --in " + shellQuote(samplePdf()) + " --out " + shellQuote(out) +
                               " --reason Test --location 'Hà Nội'",
                           &log);
        ASSERT_EQ(rc, 0) << log;
        std::string pdfsig;
        run("pdfsig " + shellQuote(out), &pdfsig);
        EXPECT_NE(pdfsig.find("Signature is Valid."), std::string::npos) << pdfsig;
        EXPECT_NE(pdfsig.find("Total document signed"), std::string::npos) << pdfsig;
    }
}

// The officer's desktop signs and seals visibly in one command, as the REST call does; a seal
// that cannot be drawn leaves no output and no temporary file.
TEST(Cli, SignAndSealVisiblyLocally) {
    auto& env = Env::get();
    const std::string dir = tempDir("cli-visible");
    const std::string out = dir + "/out.pdf";
    const std::string base =
        std::string(KYSO_BINARY) + " sign pdf --config " + shellQuote(env.dir + "/kyso.conf") +
        " --key officer-1 --seal agency-seal --level B-B --visible true --in " +
        shellQuote(samplePdf()) + " --out " + shellQuote(out);
    std::string log;
    ASSERT_EQ(run(base + " --page 1 --rect 330,60,230,80 2>&1", &log), 0) << log;
    EXPECT_NE(log.find("sealed in field Signature2"), std::string::npos) << log;
    std::string pdfsig;
    run("pdfsig " + shellQuote(out), &pdfsig);
    const auto second = pdfsig.find("Signature #2");
    ASSERT_NE(second, std::string::npos) << pdfsig;
    EXPECT_NE(pdfsig.find("Signature is Valid.", second), std::string::npos) << pdfsig;
    EXPECT_NE(pdfsig.substr(0, second).find("Signature is Valid."), std::string::npos) << pdfsig;
    std::string text;
    run("pdftotext " + shellQuote(out) + " -", &text);
    EXPECT_NE(text.find("Ký bởi: Nguyễn Văn An"), std::string::npos) << text;
    EXPECT_NE(text.find("Ủy ban nhân dân tỉnh Hà Nam"), std::string::npos) << text;
    // At the page's left edge the seal would hang off the page: refused, nothing written.
    fs::remove(out);
    EXPECT_EQ(run(base + " --rect 0,300,230,80 2>&1", &log), 65) << log;
    EXPECT_NE(log.find("appearance.outside_page"), std::string::npos) << log;
    EXPECT_FALSE(fs::exists(out));
    EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 0);
    // Appearance options without --visible true are a usage error.
    EXPECT_EQ(
        run(std::string(KYSO_BINARY) + " sign pdf --config " + shellQuote(env.dir + "/kyso.conf") +
                " --key officer-1 --in " + shellQuote(samplePdf()) + " --out " + shellQuote(out) +
                " --rect 1,1,100,50 2>&1",
            &log),
        64)
        << log;
}

TEST(Cli, RefusesPinsOnTheCommandLineAndReportsErrors) {
    auto& env = Env::get();
    const std::string conf = shellQuote(env.dir + "/kyso.conf");
    std::string log;
    EXPECT_EQ(run(std::string(KYSO_BINARY) + " sign pdf --config " + conf +
                      " --key officer-1 --in a --out b --pin 1234",
                  &log),
              64)
        << log;
    EXPECT_EQ(log.find("1234"), std::string::npos) << "a PIN must never be echoed";
    const std::string out = tempDir("cli") + "/x.pdf";
    EXPECT_EQ(
        run(std::string(KYSO_BINARY) + " sign pdf --config " + conf + " --key officer-1 --in " +
                shellQuote(corpusDir() + "/pdf/unsigned/ph-minimal-aes256.pdf") + " --out " +
                shellQuote(out),
            &log),
        65)
        << log;
    EXPECT_NE(log.find("pdf.encrypted"), std::string::npos) << log;
    EXPECT_FALSE(fs::exists(out));
    // The document's password comes from a file, and is never echoed.
    const std::string pw = tempDir("cli-password") + "/pw";
    writeFile(pw, "usersecret\n");
    EXPECT_EQ(
        run(std::string(KYSO_BINARY) + " sign pdf --config " + conf + " --key officer-1 --in " +
                shellQuote(corpusDir() + "/pdf/unsigned/ph-minimal-aes256.pdf") + " --out " +
                shellQuote(out) + " --document-password-file " + pw + " 2>&1",
            &log),
        0)
        << log;
    EXPECT_EQ(log.find("usersecret"), std::string::npos) << log;
    std::string pdfsig;
    run("pdfsig -upw usersecret " + shellQuote(out), &pdfsig);
    EXPECT_NE(pdfsig.find("Signature is Valid."), std::string::npos) << pdfsig;
}

TEST(Cli, DemoInitIsIdempotent) {
    auto& env = Env::get();
    const std::string before = readFile(env.dir + "/demo-credentials.json");
    const std::string conf = readFile(env.dir + "/kyso.conf");
    const std::string cert = readFile(env.dir + "/pki/officer-1.pem");
    std::string log;
    ASSERT_EQ(run(std::string(KYSO_BINARY) + " demo init --dir " + shellQuote(env.dir), &log), 0)
        << log;
    EXPECT_EQ(readFile(env.dir + "/demo-credentials.json"), before);
    EXPECT_EQ(readFile(env.dir + "/kyso.conf"), conf);
    EXPECT_EQ(readFile(env.dir + "/pki/officer-1.pem"), cert);
    // No secret in what it prints.
    const std::string pin = readFile(env.dir + "/secrets/user.pin");
    EXPECT_EQ(log.find(pin.substr(0, pin.size() - 1)), std::string::npos);
}

TEST(Cli, ApiKeyCreateShowsTheKeyOnceAndStoresOnlyAHash) {
    auto& env = Env::get();
    std::string key;
    ASSERT_EQ(run(std::string(KYSO_BINARY) + " apikey create --config " +
                      shellQuote(env.dir + "/kyso.conf") + " --role portal --name portal-2",
                  &key),
              0)
        << key;
    while (!key.empty() && key.back() == '\n') {
        key.pop_back();
    }
    EXPECT_EQ(key.size(), 65u) << key;
    auto p = env.store->authenticate(key);
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->name, "portal-2");
    EXPECT_EQ(p->role, policies::Role::Portal);
    // The database holds an Argon2id hash, never the secret.
    // Read by another process: closing a descriptor of the live database in this process would
    // drop the POSIX locks SQLite holds on it for the service's connection.
    std::string db;
    run("cat " + shellQuote(env.cfg.databasePath) + " " + shellQuote(env.cfg.databasePath + "-wal"),
        &db);
    EXPECT_EQ(db.find(key.substr(22)), std::string::npos);
    EXPECT_NE(db.find("$argon2id$"), std::string::npos);
}

}  // namespace
}  // namespace kyso::test

#include <signal.h>
#include <sys/wait.h>

namespace kyso::test {
namespace {

// `kyso serve` as its own process, stopped with SIGTERM while signing requests are in flight:
// it must wait for them, exit 0, and leave no request document in its spool directory.
// A client that sends half a request and then nothing is disconnected after
// [server] socketTimeoutSeconds, and the service answers others meanwhile.
TEST(Serve, SlowClientsAreDisconnected) {
    auto& env = Env::get();
    const std::string conf = serveConf("slow");
    std::string text = readFile(conf);
    const auto at = text.find("threads = 8");
    ASSERT_NE(at, std::string::npos);
    text.replace(at, 11, "threads = 2\nsocketTimeoutSeconds = 2");
    writeFile(conf, text);
    ServeProcess serve = startServe(conf);
    ASSERT_FALSE(serve.port.empty()) << readFile(serve.log);
    // Two slow clients (as many as the service has threads), each holding its connection open
    // after half a header; `timeout 60` is only our own bound, exit 124 means it was reached.
    const std::string script = tempDir("slow") + "/slow.sh";
    writeFile(
        script,
        "timeout 60 openssl s_client -quiet -connect 127.0.0.1:" + serve.port +
            " < <(printf 'GET /healthz HTTP/1.1\\r\\nHost: x\\r\\n'; exec sleep 55 2>/dev/null) "
            ">/dev/null 2>&1\n");
    std::vector<std::thread> slow;
    std::vector<int> rcs(2, -1);
    for (int i = 0; i < 2; ++i) {
        slow.emplace_back([&, i] { rcs[static_cast<std::size_t>(i)] = run("bash " + script); });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    std::string code;
    run("curl -s -o /dev/null -w '%{http_code}' --max-time 30 --cacert " +
            shellQuote(env.dir + "/pki/root-ca.pem") + " https://127.0.0.1:" + serve.port +
            "/healthz",
        &code);
    EXPECT_EQ(code, "200");
    for (auto& t : slow) {
        t.join();
    }
    ::kill(serve.pid, SIGTERM);
    int status = 0;
    ::waitpid(serve.pid, &status, 0);
    for (int rc : rcs) {
        EXPECT_NE(rc, 124) << "the server kept a silent client's connection open";
    }
}

// A second service on a port that is already served does not start (no SO_REUSEPORT sharing).
TEST(Serve, RefusesAPortInUse) {
    auto& env = Env::get();
    std::string conf = readFile(env.dir + "/kyso.conf");  // the in-process service's port
    const auto sp = conf.find("spoolDir = spool");
    ASSERT_NE(sp, std::string::npos);
    conf.replace(sp, 16, "spoolDir = spool-port-test");
    writeFile(env.dir + "/kyso-port-test.conf", conf);
    std::string out;
    const int rc = run("timeout 20 " + std::string(KYSO_BINARY) + " serve --config " +
                           shellQuote(env.dir + "/kyso-port-test.conf"),
                       &out);
    EXPECT_EQ(rc, 69) << out;
    EXPECT_NE(out.find("server.start"), std::string::npos) << out;
}

TEST(Serve, StopsCleanlyUnderLoad) {
    auto& env = Env::get();
    ServeProcess serve = startServe(serveConf("serve-test"));
    const pid_t pid = serve.pid;
    const std::string& port = serve.port;
    const std::string& log = serve.log;
    ASSERT_FALSE(port.empty()) << readFile(log);

    std::atomic<bool> stop{false};
    std::atomic<int> ok{0};
    std::atomic<int> unexpected{0};
    std::vector<std::thread> clients;
    for (int t = 0; t < 8; ++t) {
        clients.emplace_back([&, t] {
            const std::string dir = tempDir("load");
            writeFile(dir + "/auth", "Authorization: Bearer " + env.keys["officer-1"] + "\n");
            while (!stop) {
                std::string code;
                run("curl -s --max-time 20 --cacert " + shellQuote(env.dir + "/pki/root-ca.pem") +
                        " -H @" + dir + "/auth -H 'Content-Type: application/pdf' --data-binary @" +
                        shellQuote(samplePdf()) + " -o " + dir + "/o.pdf -w '%{http_code}' " +
                        "'https://127.0.0.1:" + port + "/api/v1/sign/pdf?credential=officer-1'",
                    &code);
                // 200, 503 (stopping), or no answer once the listener is closed.
                if (code == "200") {
                    ++ok;
                } else if (code != "503" && code != "000") {
                    ++unexpected;
                }
                (void)t;
            }
        });
    }
    // Some signatures done first, so that the stop really comes under load (bounded wait).
    for (int i = 0; i < 1500 && ok < 8 && unexpected == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_GE(ok.load(), 8) << "the server did not sign under load before the stop";
    ASSERT_EQ(::kill(pid, SIGTERM), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    stop = true;
    for (auto& c : clients) {
        c.join();
    }
    EXPECT_TRUE(WIFEXITED(status)) << "kyso serve died by signal " << WTERMSIG(status) << "\n"
                                   << readFile(log);
    EXPECT_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0) << readFile(log);
    EXPECT_EQ(unexpected.load(), 0);
    EXPECT_TRUE(fs::is_empty(env.dir + "/spool-serve-test"));
}

}  // namespace
}  // namespace kyso::test

#include <botan/pubkey.h>
#include <botan/x509cert.h>

namespace kyso::test {
namespace {

// ---- RFC 3161: openssl ts as the client and the verifier ----------------------------------

struct TsaReply {
    int status = 0;
    std::string text;  // openssl ts -reply -text
    std::string file;
};

TsaReply timestamp(const std::string& queryFile) {
    auto& env = Env::get();
    TsaReply r;
    r.file = queryFile + ".tsr";
    auto resp = env.request("POST", "/tsa", "", queryFile, "application/timestamp-query", r.file);
    r.status = resp.status;
    run("openssl ts -reply -in " + shellQuote(r.file) + " -text", &r.text);
    return r;
}

TEST(Tsa, OpensslQueryReplyVerifyForEveryDigestNonceAndCertReq) {
    auto& env = Env::get();
    const std::string dir = tempDir("tsa");
    writeFile(dir + "/data", "Hồ sơ thủ tục hành chính số 42");
    for (const std::string digest : {"sha256", "sha384", "sha512"}) {
        for (bool nonce : {true, false}) {
            for (bool certReq : {true, false}) {
                SCOPED_TRACE(digest + (nonce ? " nonce" : " no-nonce") +
                             (certReq ? " cert" : " no-cert"));
                const std::string q =
                    dir + "/" + digest + std::to_string(nonce) + std::to_string(certReq) + ".tsq";
                ASSERT_EQ(
                    run("openssl ts -query -data " + dir + "/data -" + digest +
                        (nonce ? "" : " -no_nonce") + (certReq ? " -cert" : "") + " -out " + q),
                    0);
                TsaReply r = timestamp(q);
                ASSERT_EQ(r.status, 200);
                EXPECT_NE(r.text.find("Status: Granted."), std::string::npos) << r.text;
                EXPECT_NE(r.text.find("Policy OID: 2.999.1.1"), std::string::npos) << r.text;
                EXPECT_NE(r.text.find("Hash Algorithm: " + digest), std::string::npos) << r.text;
                EXPECT_NE(r.text.find("Ordering: no"), std::string::npos) << r.text;
                EXPECT_NE(r.text.find("TSA: DirName:/C=VN/O=kyso demo/CN=kyso Demo TSA"),
                          std::string::npos)
                    << r.text;
                EXPECT_EQ(r.text.find("Nonce: unspecified") == std::string::npos, nonce) << r.text;
                std::string out;
                // Without certReq the TSA certificate is not in the reply: give it to the
                // verifier, as a client would.
                const std::string untrusted = dir + "/untrusted.pem";
                writeFile(untrusted, readFile(env.dir + "/pki/issuing-ca.pem") +
                                         (certReq ? "" : readFile(env.dir + "/pki/tsa.pem")));
                EXPECT_EQ(
                    run("openssl ts -verify -data " + dir + "/data -in " + r.file + " -CAfile " +
                            env.dir + "/pki/root-ca.pem -untrusted " + untrusted,
                        &out),
                    0)
                    << out;
                EXPECT_NE(out.find("Verification: OK"), std::string::npos) << out;
                // RFC 5816: ESSCertIDv2 (id-aa-signingCertificateV2) in the signed attributes.
                run("openssl ts -reply -in " + r.file + " -token_out -out " + r.file +
                        ".tst && openssl cms -cmsout -print -inform DER -in " + r.file + ".tst",
                    &out);
                EXPECT_NE(out.find("id-smime-aa-signingCertificateV2"), std::string::npos);
                // The certificate is there exactly when it was asked for.
                run("openssl pkcs7 -inform DER -in " + r.file + ".tst -print_certs", &out);
                EXPECT_EQ(out.find("CN = kyso Demo TSA") != std::string::npos, certReq) << out;
            }
        }
    }
}

TEST(Tsa, MalformedRequestsGetRfc3161RejectionsAndTheServiceKeepsServing) {
    const std::string dir = tempDir("tsa-bad");
    writeFile(dir + "/data", "x");
    ASSERT_EQ(run("openssl ts -query -data " + dir + "/data -sha256 -cert -out " + dir + "/good"),
              0);
    const std::string good = readFile(dir + "/good");
    struct Case {
        std::string name;
        std::string bytes;
        std::string failure;  // openssl's text for the PKIFailureInfo bit
    };
    std::vector<Case> cases;
    ASSERT_EQ(run("openssl ts -query -data " + dir + "/data -sha1 -out " + dir + "/sha1"), 0);
    cases.push_back({"sha1", readFile(dir + "/sha1"), "unrecognized or unsupported algorithm"});
    ASSERT_EQ(run("openssl ts -query -data " + dir + "/data -sha256 -tspolicy 1.2.3.4 -out " + dir +
                  "/policy"),
              0);
    cases.push_back({"policy", readFile(dir + "/policy"), "policy is not supported"});
    cases.push_back({"truncated", good.substr(0, good.size() - 7), "wrong format"});
    cases.push_back({"trailing", good + "garbage", "wrong format"});
    std::string v2 = good;
    ASSERT_EQ(v2.substr(2, 3), std::string("\x02\x01\x01", 3));
    v2[4] = '\x02';
    cases.push_back({"version-2", v2, "transaction not permitted or supported"});
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        writeFile(dir + "/" + c.name + ".tsq", c.bytes);
        TsaReply r = timestamp(dir + "/" + c.name + ".tsq");
        EXPECT_EQ(r.status, 200);
        EXPECT_NE(r.text.find("Status: Rejected."), std::string::npos) << r.text;
        EXPECT_NE(r.text.find(c.failure), std::string::npos) << r.text;
    }
    auto& env = Env::get();
    writeFile(dir + "/json", "{\"not\": \"a timestamp query\"}");
    expectProblem(env.request("POST", "/tsa", "", dir + "/json", "application/timestamp-query"),
                  400, "tsa.not_a_request");
    writeFile(dir + "/huge", "\x30\x84" + std::string(64 * 1024, '\x01'));
    expectProblem(env.request("POST", "/tsa", "", dir + "/huge", "application/timestamp-query"),
                  413, "tsa.too_large");
    expectProblem(env.request("POST", "/tsa", "", dir + "/good", "application/octet-stream"), 415,
                  "content_type.unsupported");
    TsaReply after = timestamp(dir + "/good");
    EXPECT_NE(after.text.find("Status: Granted."), std::string::npos) << after.text;
}

TEST(Tsa, ConcurrentClientsGetDistinctSerials) {
    const std::string dir = tempDir("tsa-conc");
    writeFile(dir + "/data", "concurrent");
    ASSERT_EQ(run("openssl ts -query -data " + dir + "/data -sha256 -cert -out " + dir + "/q"), 0);
    std::mutex mu;
    std::set<std::string> serials;
    std::atomic<int> bad{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 15; ++i) {
                const std::string q = dir + "/q" + std::to_string(t) + "-" + std::to_string(i);
                fs::copy_file(dir + "/q", q);
                TsaReply r = timestamp(q);
                const auto p = r.text.find("Serial number: ");
                if (r.status != 200 || r.text.find("Status: Granted.") == std::string::npos ||
                    p == std::string::npos) {
                    ++bad;
                    continue;
                }
                std::lock_guard lk(mu);
                serials.insert(r.text.substr(p, r.text.find('\n', p) - p));
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    EXPECT_EQ(bad.load(), 0);
    EXPECT_EQ(serials.size(), 8u * 15u);
}

TEST(Tsa, SerialNumbersSurviveRestartsWithoutReuse) {
    auto& env = Env::get();
    std::set<std::uint64_t> seen;
    auto first = env.store->serialSource("restart-test", 10);
    for (int i = 0; i < 3; ++i) {
        seen.insert(first->next().value());
    }
    first.reset();  // a crash or restart: the rest of the reserved block is never handed out
    auto second = env.store->serialSource("restart-test", 10);
    const std::uint64_t next = second->next().value();
    EXPECT_EQ(seen.count(next), 0u);
    EXPECT_GT(next, *seen.rbegin());
    // Many threads on one source: all distinct.
    std::mutex mu;
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 200; ++i) {
                auto s = second->next();
                std::lock_guard lk(mu);
                EXPECT_TRUE(s.ok());
                EXPECT_TRUE(seen.insert(*s).second) << "serial " << *s << " handed out twice";
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
}

// A minimal DER walker for the test's independent check below.
struct Tlv {
    unsigned char tag = 0;
    std::size_t header = 0;
    std::size_t length = 0;
};

Tlv readTlv(const std::string& d, std::size_t at) {
    Tlv t;
    t.tag = static_cast<unsigned char>(d.at(at));
    std::size_t len = static_cast<unsigned char>(d.at(at + 1));
    std::size_t hdr = 2;
    if (len & 0x80) {
        const std::size_t n = len & 0x7f;
        len = 0;
        for (std::size_t i = 0; i < n; ++i) {
            len = (len << 8) | static_cast<unsigned char>(d.at(at + 2 + i));
        }
        hdr += n;
    }
    t.header = hdr;
    t.length = len;
    return t;
}

// The children of the constructed TLV at `at`: their offsets.
std::vector<std::size_t> children(const std::string& d, std::size_t at) {
    const Tlv t = readTlv(d, at);
    std::vector<std::size_t> out;
    for (std::size_t p = at + t.header; p < at + t.header + t.length;) {
        out.push_back(p);
        const Tlv c = readTlv(d, p);
        p += c.header + c.length;
    }
    return out;
}

TEST(Tsa, BotanVerifiesTheTsaSignatureIndependently) {
    auto& env = Env::get();
    const std::string dir = tempDir("tsa-botan");
    writeFile(dir + "/data", "independent check");
    ASSERT_EQ(run("openssl ts -query -data " + dir + "/data -sha256 -out " + dir + "/q"), 0);
    TsaReply r = timestamp(dir + "/q");
    ASSERT_NE(r.text.find("Status: Granted."), std::string::npos) << r.text;
    ASSERT_EQ(run("openssl ts -reply -in " + r.file + " -token_out -out " + dir + "/tst"), 0);
    const std::string tst = readFile(dir + "/tst");
    // ContentInfo -> [0] -> SignedData -> signerInfos (last SET) -> SignerInfo.
    const auto ci = children(tst, 0);
    const auto sd = children(tst, children(tst, ci.at(1)).at(0));
    const auto sis = children(tst, sd.back());
    const auto si = children(tst, sis.at(0));
    std::size_t attrs = 0;
    std::size_t sig = 0;
    for (std::size_t c : si) {
        const Tlv t = readTlv(tst, c);
        if (t.tag == 0xa0) {
            attrs = c;
        } else if (t.tag == 0x04) {
            sig = c;
        }
    }
    ASSERT_NE(attrs, 0u);
    ASSERT_NE(sig, 0u);
    // The signed attributes are signed as a SET OF (tag 0x31), not as their [0] IMPLICIT tag.
    const Tlv at = readTlv(tst, attrs);
    std::string signedBytes = tst.substr(attrs, at.header + at.length);
    signedBytes[0] = '\x31';
    const Tlv st = readTlv(tst, sig);
    const std::string signature = tst.substr(sig + st.header, st.length);

    Botan::X509_Certificate cert(env.dir + "/pki/tsa.pem");
    std::unique_ptr<Botan::Public_Key> key(cert.subject_public_key());
    Botan::PK_Verifier verifier(*key, "EMSA3(SHA-256)");
    EXPECT_TRUE(verifier.verify_message(
        reinterpret_cast<const std::uint8_t*>(signedBytes.data()), signedBytes.size(),
        reinterpret_cast<const std::uint8_t*>(signature.data()), signature.size()));
    signedBytes.back() ^= 1;
    EXPECT_FALSE(verifier.verify_message(
        reinterpret_cast<const std::uint8_t*>(signedBytes.data()), signedBytes.size(),
        reinterpret_cast<const std::uint8_t*>(signature.data()), signature.size()));
}

}  // namespace
}  // namespace kyso::test

#include <openssl/cms.h>
#include <openssl/sha.h>

#include "kyso/hsm/ossl_ptr.h"

namespace kyso::test {
namespace {

// The CMS of the last signature in a signed PDF (from its /ByteRange).
std::string lastCms(const std::string& pdf) {
    const auto p = pdf.rfind("/ByteRange [");
    std::istringstream in(pdf.substr(p + 12, 100));
    std::uint64_t a = 0, b = 0, c = 0, d = 0;
    in >> a >> b >> c >> d;
    const std::string hex = pdf.substr(b + 1, c - b - 2);
    std::string bin;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
        bin.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    return bin;
}

struct SignatureParts {
    std::string signatureValue;
    std::string timestampToken;  // empty when absent
};

SignatureParts partsOf(const std::string& cmsDer) {
    SignatureParts parts;
    const unsigned char* p = reinterpret_cast<const unsigned char*>(cmsDer.data());
    OsslPtr<CMS_ContentInfo> cms(
        ::d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(cmsDer.size())));
    if (!cms) {
        return parts;
    }
    CMS_SignerInfo* si = sk_CMS_SignerInfo_value(::CMS_get0_SignerInfos(cms.get()), 0);
    ASN1_OCTET_STRING* sig = ::CMS_SignerInfo_get0_signature(si);
    parts.signatureValue.assign(reinterpret_cast<const char*>(::ASN1_STRING_get0_data(sig)),
                                static_cast<std::size_t>(::ASN1_STRING_length(sig)));
    auto* tok = static_cast<ASN1_STRING*>(::CMS_unsigned_get0_data_by_OBJ(
        si, ::OBJ_nid2obj(NID_id_smime_aa_timeStampToken), -3, V_ASN1_SEQUENCE));
    if (tok != nullptr) {
        parts.timestampToken.assign(reinterpret_cast<const char*>(::ASN1_STRING_get0_data(tok)),
                                    static_cast<std::size_t>(::ASN1_STRING_length(tok)));
    }
    return parts;
}

TEST(PadesBT, DefaultLevelIsBTWithACheckableSignatureTimestamp) {
    auto& env = Env::get();
    const std::string dir = tempDir("bt");
    const std::string out = dir + "/signed.pdf";
    auto r = env.request("POST", "/api/v1/sign/pdf?credential=officer-1", env.keys["officer-1"],
                         samplePdf(), "application/pdf", out);
    ASSERT_EQ(r.status, 200) << readFile(out);
    EXPECT_EQ(r.header("Kyso-Signature-Level"), "PAdES-BASELINE-T");
    std::string pdfsig;
    run("pdfsig " + shellQuote(out), &pdfsig);
    EXPECT_NE(pdfsig.find("Signature is Valid."), std::string::npos) << pdfsig;
    EXPECT_NE(pdfsig.find("Total document signed"), std::string::npos) << pdfsig;

    SignatureParts parts = partsOf(lastCms(readFile(out)));
    ASSERT_FALSE(parts.signatureValue.empty());
    ASSERT_FALSE(parts.timestampToken.empty()) << "no signature-time-stamp attribute";
    // The token's imprint is the SHA-256 of the signature value: openssl ts -verify checks it,
    // the TSA's signature and its chain to the demo root.
    writeFile(dir + "/token.der", parts.timestampToken);
    unsigned char md[32];
    ::SHA256(reinterpret_cast<const unsigned char*>(parts.signatureValue.data()),
             parts.signatureValue.size(), md);
    std::string hex;
    char b[3];
    for (unsigned char c : md) {
        std::snprintf(b, sizeof b, "%02x", c);
        hex += b;
    }
    std::string verify;
    EXPECT_EQ(
        run("openssl ts -verify -digest " + hex + " -token_in -in " + dir + "/token.der -CAfile " +
                env.dir + "/pki/root-ca.pem -untrusted " + env.dir + "/pki/issuing-ca.pem",
            &verify),
        0)
        << verify;
    EXPECT_NE(verify.find("Verification: OK"), std::string::npos) << verify;
    // And not over anything else.
    hex[0] = hex[0] == '0' ? '1' : '0';
    EXPECT_NE(
        run("openssl ts -verify -digest " + hex + " -token_in -in " + dir + "/token.der -CAfile " +
                env.dir + "/pki/root-ca.pem -untrusted " + env.dir + "/pki/issuing-ca.pem",
            &verify),
        0);
    // The whole CMS still verifies with OpenSSL over the signed bytes.
    const std::string pdf = readFile(out);
    const auto p = pdf.rfind("/ByteRange [");
    std::istringstream in(pdf.substr(p + 12, 100));
    std::uint64_t a = 0, bb = 0, c = 0, d = 0;
    in >> a >> bb >> c >> d;
    writeFile(dir + "/content", pdf.substr(0, bb) + pdf.substr(c, d));
    writeFile(dir + "/sig.der", lastCms(pdf));
    EXPECT_EQ(
        run("openssl cms -verify -binary -inform DER -in " + dir + "/sig.der -content " + dir +
                "/content -CAfile " + env.dir + "/pki/root-ca.pem -purpose any -out " + "/dev/null",
            &verify),
        0)
        << verify;
}

TEST(PadesBT, ExplicitBBHasNoTimestampAndBLTIsRefused) {
    auto& env = Env::get();
    const std::string out = tempDir("bb") + "/signed.pdf";
    auto r = env.request("POST", "/api/v1/sign/pdf?credential=officer-1&level=B-B",
                         env.keys["officer-1"], samplePdf(), "application/pdf", out);
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.header("Kyso-Signature-Level"), "PAdES-BASELINE-B");
    EXPECT_TRUE(partsOf(lastCms(readFile(out))).timestampToken.empty());
    expectProblem(env.request("POST", "/api/v1/sign/pdf?credential=officer-1&level=B-LT",
                              env.keys["officer-1"], samplePdf()),
                  400, "level.unsupported");
    expectProblem(env.request("POST", "/api/v1/sign/pdf?credential=officer-1&level=C",
                              env.keys["officer-1"], samplePdf()),
                  400, "request.invalid");
}

}  // namespace
}  // namespace kyso::test

namespace kyso::test {
namespace {

// ---- CAdES over any content ---------------------------------------------------------------

std::string sha256Hex(const std::string& data) {
    unsigned char md[32];
    ::SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
    std::string hex;
    char b[3];
    for (unsigned char c : md) {
        std::snprintf(b, sizeof b, "%02x", c);
        hex += b;
    }
    return hex;
}

// openssl ts -verify of a signature-time-stamp token over `signatureValue`, against the demo
// root; returns its exit code and output.
int verifyTimestampToken(const std::string& token, const std::string& signatureValue,
                         std::string* log) {
    auto& env = Env::get();
    const std::string file = tempDir("tst") + "/token.der";
    writeFile(file, token);
    return run("openssl ts -verify -digest " + sha256Hex(signatureValue) + " -token_in -in " +
                   file + " -CAfile " + env.dir + "/pki/root-ca.pem -untrusted " + env.dir +
                   "/pki/issuing-ca.pem",
               log);
}

TEST(Cades, DetachedAndAttachedBBAndBTVerifyWithOpenssl) {
    auto& env = Env::get();
    const std::string dir = tempDir("cades");
    writeFile(dir + "/data.bin", "Biên lai thu phí, lệ phí\n" + std::string(200000, 'x'));
    for (const std::string level : {"B-B", "B-T"}) {
        for (bool detached : {true, false}) {
            SCOPED_TRACE(level + (detached ? " detached" : " attached"));
            const std::string out = dir + "/" + level + (detached ? "-d" : "-a") + ".p7";
            auto r = env.request("POST",
                                 "/api/v1/sign/cms?credential=officer-1&level=" + level +
                                     "&detached=" + (detached ? "true" : "false"),
                                 env.keys["officer-1"], dir + "/data.bin",
                                 "application/octet-stream", out);
            ASSERT_EQ(r.status, 200) << readFile(out);
            EXPECT_EQ(
                r.header("Content-Type")
                    .rfind(detached ? "application/pkcs7-signature" : "application/pkcs7-mime", 0),
                0u)
                << r.headers;
            EXPECT_EQ(r.header("Kyso-Signature-Level"), "CAdES-BASELINE-" + level.substr(2));
            std::string log;
            EXPECT_EQ(run("openssl cms -verify -binary -inform DER -in " + out +
                              (detached ? " -content " + dir + "/data.bin" : "") + " -CAfile " +
                              env.dir + "/pki/root-ca.pem -purpose any -out " + out + ".content",
                          &log),
                      0)
                << log;
            EXPECT_EQ(readFile(out + ".content"), readFile(dir + "/data.bin"));
            run("openssl cms -cmsout -print -inform DER -in " + out, &log);
            EXPECT_NE(log.find("signingTime"), std::string::npos);
            EXPECT_NE(log.find("id-smime-aa-signingCertificateV2"), std::string::npos);
            SignatureParts parts = partsOf(readFile(out));
            EXPECT_EQ(parts.timestampToken.empty(), level == "B-B");
            if (!parts.timestampToken.empty()) {
                EXPECT_EQ(verifyTimestampToken(parts.timestampToken, parts.signatureValue, &log), 0)
                    << log;
            }
        }
    }
}

TEST(Cades, PolicyAndInputErrors) {
    auto& env = Env::get();
    const std::string dir = tempDir("cades-bad");
    writeFile(dir + "/data", "x");
    writeFile(dir + "/empty", "");
    expectProblem(env.request("POST", "/api/v1/sign/cms?credential=officer-1",
                              env.keys["officer-2"], dir + "/data", "text/plain"),
                  403, "auth.denied");
    expectProblem(env.request("POST", "/api/v1/sign/cms?credential=officer-1",
                              env.keys["officer-1"], dir + "/empty", "text/plain"),
                  400, "cms.empty");
    expectProblem(env.request("POST", "/api/v1/sign/cms?credential=officer-1&detached=maybe",
                              env.keys["officer-1"], dir + "/data", "text/plain"),
                  400, "request.invalid");
}

// The CLI streams a large file into an attached signature; OpenSSL gets the content back whole.
TEST(Cades, CliSignsALargeFileAttached) {
    auto& env = Env::get();
    const std::string dir = tempDir("cades-big");
    {
        std::ofstream big(dir + "/big.bin", std::ios::binary);
        std::string block(1 << 20, '\0');
        for (int i = 0; i < 24; ++i) {
            std::fill(block.begin(), block.end(), static_cast<char>('a' + i));
            big << block;
        }
    }
    std::string log;
    ASSERT_EQ(run(std::string(KYSO_BINARY) + " sign cms --config " +
                      shellQuote(env.dir + "/kyso.conf") + " --key officer-1 --in " + dir +
                      "/big.bin --out " + dir + "/big.p7m --attached true",
                  &log),
              0)
        << log;
    EXPECT_EQ(run("openssl cms -verify -binary -inform DER -in " + dir + "/big.p7m -CAfile " +
                      env.dir + "/pki/root-ca.pem -purpose any -out " + dir + "/back.bin",
                  &log),
              0)
        << log;
    EXPECT_EQ(run("cmp " + dir + "/big.bin " + dir + "/back.bin", &log), 0) << log;
    // B-T from the command line: the configured TSA (here the demo's own, run in process).
    ASSERT_EQ(
        run(std::string(KYSO_BINARY) + " sign cms --config " + shellQuote(env.dir + "/kyso.conf") +
                " --key officer-1 --in " + dir + "/big.bin --out " + dir + "/bt.p7s --level B-T",
            &log),
        0)
        << log;
    EXPECT_NE(log.find("CAdES-BASELINE-T"), std::string::npos) << log;
    SignatureParts parts = partsOf(readFile(dir + "/bt.p7s"));
    ASSERT_FALSE(parts.timestampToken.empty());
    EXPECT_EQ(verifyTimestampToken(parts.timestampToken, parts.signatureValue, &log), 0) << log;
    EXPECT_EQ(
        run(std::string(KYSO_BINARY) + " sign cms --config " + shellQuote(env.dir + "/kyso.conf") +
                " --key officer-1 --in " + dir + "/big.bin --out " + dir + "/x.p7s --level B-LT",
            &log),
        64);
    EXPECT_NE(log.find("level.unsupported"), std::string::npos) << log;
    EXPECT_FALSE(fs::exists(dir + "/x.p7s"));
}

// `kyso sign pdf` makes B-T by default when a TSA is configured, and B-B when asked.
TEST(Cli, SignPdfLevels) {
    auto& env = Env::get();
    const std::string dir = tempDir("cli-levels");
    std::string log;
    for (const std::string level : {"", "B-B"}) {
        const std::string out = dir + "/o" + level + ".pdf";
        ASSERT_EQ(run(std::string(KYSO_BINARY) + " sign pdf --config " +
                          shellQuote(env.dir + "/kyso.conf") + " --key officer-1 --in " +
                          shellQuote(samplePdf()) + " --out " + out +
                          (level.empty() ? "" : " --level " + level),
                      &log),
                  0)
            << log;
        const bool bt = level.empty();
        EXPECT_NE(log.find(bt ? "PAdES-BASELINE-T" : "PAdES-BASELINE-B"), std::string::npos) << log;
        EXPECT_EQ(partsOf(lastCms(readFile(out))).timestampToken.empty(), !bt);
        std::string pdfsig;
        run("pdfsig " + out, &pdfsig);
        EXPECT_NE(pdfsig.find("Signature is Valid."), std::string::npos) << pdfsig;
    }
}

}  // namespace
}  // namespace kyso::test

#include "kyso/api/http_timestamper.h"
#include "kyso/signer/pades.h"

namespace kyso::test {
namespace {

// The RFC 3161 client over real HTTPS, against this service's own /tsa as the external TSA.
TEST(HttpTimestamper, SignsBTThroughAnHttpsTsa) {
    auto& env = Env::get();
    api::TimestampingConfig t;
    t.url = env.url("/tsa");
    t.trustAnchors = env.dir + "/pki/root-ca.pem";
    t.tlsCaFile = env.dir + "/pki/root-ca.pem";
    auto http = api::makeHttpTimestamperFrom(t);
    ASSERT_TRUE(http.ok()) << http.error().detail;
    const std::string dir = tempDir("http-tsa");
    // The TSA's serial numbers count its replies: a first B-T signature through a new client
    // takes exactly one (no extra request to size /Contents).
    writeFile(dir + "/data", "serial probe");
    ASSERT_EQ(run("openssl ts -query -data " + dir + "/data -sha256 -out " + dir + "/q"), 0);
    auto serialOf = [&](const std::string& tag) {
        fs::copy_file(dir + "/q", dir + "/q" + tag);
        TsaReply t = timestamp(dir + "/q" + tag);
        const auto p = t.text.find("Serial number: 0x");
        return p == std::string::npos ? -1L : std::stol(t.text.substr(p + 17, 16), nullptr, 16);
    };
    const long before = serialOf("1");
    signer::PadesOptions o;
    o.timestamper = http->get();
    auto r = signer::signPdf(samplePdf(), dir + "/out.pdf", *env.creds->find("officer-1"), o);
    ASSERT_TRUE(r.ok()) << r.error().code << ": " << r.error().detail;
    const long after = serialOf("2");
    ASSERT_GT(before, 0);
    EXPECT_EQ(after - before, 2) << "the signature used " << after - before - 1 << " TSA calls";
    std::string pdfsig;
    run("pdfsig " + dir + "/out.pdf", &pdfsig);
    EXPECT_NE(pdfsig.find("Signature is Valid."), std::string::npos) << pdfsig;
    SignatureParts parts = partsOf(lastCms(readFile(dir + "/out.pdf")));
    ASSERT_FALSE(parts.timestampToken.empty());
    std::string log;
    EXPECT_EQ(verifyTimestampToken(parts.timestampToken, parts.signatureValue, &log), 0) << log;
}

TEST(HttpTimestamper, UnreachableOrUntrustedTsaFailsCleanly) {
    auto& env = Env::get();
    const std::string dir = tempDir("http-tsa-bad");
    signer::PadesOptions o;
    // Nothing listens on port 9 of loopback.
    auto down = api::makeHttpTimestamper(
        {"http://127.0.0.1:9/tsa", {env.creds->find("officer-1")->chainDer.front()}, "", 2});
    ASSERT_TRUE(down.ok());
    o.timestamper = down->get();
    auto r = signer::signPdf(samplePdf(), dir + "/a.pdf", *env.creds->find("officer-1"), o);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "tsa.unavailable") << r.error().detail;
    EXPECT_FALSE(fs::exists(dir + "/a.pdf"));
    // A reachable TSA whose certificate does not chain to the configured anchor: refused.
    writeFile(dir + "/other-root.pem", readFile(testPki(*env.token).caPemFile));
    api::TimestampingConfig t;
    t.url = env.url("/tsa");
    t.trustAnchors = dir + "/other-root.pem";
    t.tlsCaFile = env.dir + "/pki/root-ca.pem";
    auto untrusted = api::makeHttpTimestamperFrom(t);
    ASSERT_TRUE(untrusted.ok());
    o.timestamper = untrusted->get();
    r = signer::signPdf(samplePdf(), dir + "/b.pdf", *env.creds->find("officer-1"), o);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "tsa.invalid_reply") << r.error().detail;
    EXPECT_FALSE(fs::exists(dir + "/b.pdf"));
}

}  // namespace
}  // namespace kyso::test

namespace kyso::test {
namespace {

// A TSA that accepts SHA-256 only still serves B-T signatures: the size probe uses the
// signature's own digest algorithm.
TEST(HttpTimestamper, TsaWithOneDigestAlgorithmServesBT) {
    auto& env = Env::get();
    signer::TsaPolicy policy;
    policy.digests = {hsm::HashAlg::Sha256};
    auto serials = env.store->serialSource("tsa-sha256-only", 10);
    auto tsa = signer::TimeStampAuthority::create(*env.creds->find("tsa"), policy, *serials);
    ASSERT_TRUE(tsa.ok()) << tsa.error().detail;
    auto anchors = ca::certificatesFromPem(readFile(env.dir + "/pki/root-ca.pem"));
    ASSERT_TRUE(anchors.ok());
    signer::LocalTimestamper ts(**tsa, *anchors);
    signer::PadesOptions o;
    o.timestamper = &ts;
    const std::string out = tempDir("sha256-tsa") + "/out.pdf";
    auto r = signer::signPdf(samplePdf(), out, *env.creds->find("officer-1"), o);
    ASSERT_TRUE(r.ok()) << r.error().code << ": " << r.error().detail;
    EXPECT_FALSE(partsOf(lastCms(readFile(out))).timestampToken.empty());
}

}  // namespace
}  // namespace kyso::test

namespace kyso::test {
namespace {

// ---- the embedded CA: certificates, CRLs, revocation --------------------------------------

// A certificate from the demo's issuing CA for a key made by openssl, with the OCSP and CRL URLs
// given (none when empty); recorded as issued, as the CA does, unless `record` is false.
std::string issueLeaf(const std::string& cn, const std::string& ocsp = "",
                      const std::string& crl = "", bool record = true) {
    auto& env = Env::get();
    const std::string dir = tempDir("leaf");
    EXPECT_EQ(run("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " + dir +
                  "/k.pem && openssl pkey -in " + dir + "/k.pem -pubout -outform DER -out " + dir +
                  "/spki.der"),
              0);
    ca::CertificateProfile p;
    p.subject = {{"C", "VN"}, {"CN", cn}};
    p.publicKeyDer = readFile(dir + "/spki.der");
    p.digitalSignature = true;
    if (!ocsp.empty()) {
        p.ocspUrl = ocsp;
    }
    if (!crl.empty()) {
        p.crlUrl = crl;
    }
    auto leaf = ca::issueCertificate(p, *env.creds->find("issuing-ca"));
    EXPECT_TRUE(leaf.ok()) << (leaf.ok() ? "" : leaf.error().detail);
    if (!leaf.ok()) {
        return {};
    }
    if (record) {
        EXPECT_TRUE(env.store->recordIssued("issuing-ca", ca::serialHexOf(*leaf), cn).ok());
    }
    return *leaf;
}

TEST(CaService, ServesCertificatesAndACrlThatListsRevocations) {
    auto& env = Env::get();
    const std::string dir = tempDir("ca");
    auto crt = env.request("GET", "/ca/issuing-ca.crt", "", "", "", dir + "/issuing.der");
    ASSERT_EQ(crt.status, 200);
    EXPECT_EQ(crt.header("Content-Type"), "application/pkix-cert");
    EXPECT_EQ(readFile(dir + "/issuing.der"), env.creds->find("issuing-ca")->certificateDer);
    expectProblem(env.request("GET", "/ca/nope.crl"), 404, "route.not_found");
    expectProblem(env.request("GET", "/ca/officer-1.crl"), 404, "route.not_found");

    // The officer's certificate says where its CRL is.
    std::string out;
    run("openssl x509 -noout -ext crlDistributionPoints -in " + env.dir + "/pki/officer-1.pem",
        &out);
    EXPECT_NE(out.find("/ca/issuing-ca.crl"), std::string::npos) << out;

    // A certificate issued by the demo's issuing CA, for a key made by openssl.
    const std::string leaf = issueLeaf("Trần Thị Bình");
    ASSERT_FALSE(leaf.empty());
    writeFile(dir + "/leaf.pem", ca::certificateToPem(leaf));
    const std::string serial = ca::serialHexOf(leaf);
    const std::string conf = shellQuote(env.dir + "/kyso.conf");
    const std::string chain = dir + "/chain.pem";
    writeFile(chain,
              readFile(env.dir + "/pki/root-ca.pem") + readFile(env.dir + "/pki/issuing-ca.pem"));

    auto fetchCrl = [&](const std::string& name) {
        auto r = env.request("GET", "/ca/issuing-ca.crl", "", "", "", dir + "/" + name + ".der");
        EXPECT_EQ(r.status, 200);
        EXPECT_EQ(r.header("Content-Type"), "application/pkix-crl");
        const std::string der = dir + "/" + name + ".der";
        std::string text;
        EXPECT_EQ(
            run("openssl crl -inform DER -in " + der + " -CAfile " + chain + " -noout", &text), 0)
            << text;
        EXPECT_NE(text.find("verify OK"), std::string::npos) << text;
        run("openssl crl -inform DER -in " + der + " -noout -text", &text);
        run("openssl crl -inform DER -in " + der + " -out " + dir + "/" + name + ".pem");
        return text;
    };
    std::string before = fetchCrl("before");
    EXPECT_EQ(before.find(serial), std::string::npos);
    EXPECT_EQ(run("openssl verify -crl_check -CAfile " + chain + " -CRLfile " + dir +
                      "/before.pem " + dir + "/leaf.pem",
                  &out),
              0)
        << out;

    ASSERT_EQ(run(std::string(KYSO_BINARY) + " ca revoke " + serial + " --config " + conf +
                      " --ca issuing-ca --reason keyCompromise",
                  &out),
              0)
        << out;
    EXPECT_EQ(run(std::string(KYSO_BINARY) + " ca revoke " + serial + " --config " + conf +
                      " --ca issuing-ca",
                  &out),
              65)
        << out;
    EXPECT_NE(out.find("ca.already_revoked"), std::string::npos) << out;

    std::string after = fetchCrl("after");
    EXPECT_NE(after.find(serial), std::string::npos) << after;
    EXPECT_NE(after.find("Key Compromise"), std::string::npos) << after;
    EXPECT_NE(run("openssl verify -crl_check -CAfile " + chain + " -CRLfile " + dir +
                      "/after.pem " + dir + "/leaf.pem",
                  &out),
              0);
    EXPECT_NE(out.find("certificate revoked"), std::string::npos) << out;
    // The CRL number grows.
    auto number = [](const std::string& text) {
        const auto p = text.find("X509v3 CRL Number:");
        return p == std::string::npos ? std::string() : text.substr(p + 18, 40);
    };
    EXPECT_NE(number(before), number(after));
}

}  // namespace
}  // namespace kyso::test

namespace kyso::test {
namespace {

// POST /ocsp with openssl ocsp as client and verifier: good, revoked, unknown.
TEST(CaService, OcspResponderAnswersGoodRevokedAndUnknown) {
    auto& env = Env::get();
    const std::string dir = tempDir("ocsp");
    const std::string issuing = env.dir + "/pki/issuing-ca.pem";
    const std::string chain = dir + "/chain.pem";
    writeFile(chain, readFile(env.dir + "/pki/root-ca.pem") + readFile(issuing));
    // A certificate issued by the demo CA and recorded as issued, as the CA does.
    const std::string leaf = issueLeaf("Lê Văn Cường");
    ASSERT_FALSE(leaf.empty());
    writeFile(dir + "/leaf.pem", ca::certificateToPem(leaf));
    const std::string serial = ca::serialHexOf(leaf);

    auto ask = [&](const std::string& cert, const std::string& tag) {
        const std::string req = dir + "/" + tag + ".req";
        const std::string resp = dir + "/" + tag + ".resp";
        EXPECT_EQ(run("openssl ocsp -issuer " + issuing + " -cert " + cert + " -reqout " + req), 0);
        auto r = env.request("POST", "/ocsp", "", req, "application/ocsp-request", resp);
        EXPECT_EQ(r.status, 200);
        EXPECT_EQ(r.header("Content-Type"), "application/ocsp-response");
        // The signature and the echoed nonce against the request; then the status of `cert`.
        std::string verify;
        std::string status;
        run("openssl ocsp -respin " + resp + " -reqin " + req + " -CAfile " + chain, &verify);
        run("openssl ocsp -respin " + resp + " -issuer " + issuing + " -cert " + cert +
                " -CAfile " + chain + " -no_nonce",
            &status);
        EXPECT_NE(verify.find("Response verify OK"), std::string::npos) << verify;
        EXPECT_EQ(verify.find("Nonce Verify error"), std::string::npos) << verify;
        return verify + status;
    };
    std::string out = ask(env.dir + "/pki/officer-1.pem", "officer");
    EXPECT_NE(out.find("Response verify OK"), std::string::npos) << out;
    EXPECT_NE(out.find("officer-1.pem: good"), std::string::npos) << out;
    out = ask(dir + "/leaf.pem", "before");
    EXPECT_NE(out.find("leaf.pem: good"), std::string::npos) << out;
    ASSERT_EQ(run(std::string(KYSO_BINARY) + " ca revoke " + serial + " --config " +
                      shellQuote(env.dir + "/kyso.conf") + " --ca issuing-ca --reason superseded",
                  &out),
              0)
        << out;
    out = ask(dir + "/leaf.pem", "after");
    EXPECT_NE(out.find("Response verify OK"), std::string::npos) << out;
    EXPECT_NE(out.find("leaf.pem: revoked"), std::string::npos) << out;
    EXPECT_NE(out.find("superseded"), std::string::npos) << out;
    // A serial this CA never issued: unknown, never good.
    const std::string stranger = issueLeaf("not recorded", "", "", /*record=*/false);
    ASSERT_FALSE(stranger.empty());
    writeFile(dir + "/stranger.pem", ca::certificateToPem(stranger));
    out = ask(dir + "/stranger.pem", "stranger");
    EXPECT_NE(out.find("stranger.pem: unknown"), std::string::npos) << out;
    // Not an OCSP request at all: malformedRequest, and the service keeps serving.
    writeFile(dir + "/junk", "junk");
    auto junk = env.request("POST", "/ocsp", "", dir + "/junk", "application/ocsp-request",
                            dir + "/junk.resp");
    EXPECT_EQ(junk.status, 200);
    run("openssl ocsp -respin " + dir + "/junk.resp -resp_text -noverify", &out);
    EXPECT_NE(out.find("malformedrequest"), std::string::npos) << out;
    EXPECT_NE(ask(env.dir + "/pki/officer-1.pem", "again").find("good"), std::string::npos);
}

}  // namespace
}  // namespace kyso::test

#include "kyso/api/http_fetch.h"
#include "kyso/ca-bridge/revocation.h"

namespace kyso::test {
namespace {

TEST(Revocation, OcspThenCrlThenUnavailable) {
    auto& env = Env::get();
    const std::string issuer = env.creds->find("issuing-ca")->certificateDer;
    ca::RevocationChecker checker(api::makeHttpFetch(env.dir + "/pki/root-ca.pem", 2));
    const std::string dead = "https://127.0.0.1:9";
    const std::time_t now = std::time(nullptr);

    // OCSP answers.
    const std::string a = issueLeaf("OCSP user", env.url("/ocsp"), env.url("/ca/issuing-ca.crl"));
    auto st = checker.check(a, issuer, now);
    EXPECT_EQ(st.status, "GOOD");
    EXPECT_EQ(st.source, "OCSP");
    ASSERT_EQ(run(std::string(KYSO_BINARY) + " ca revoke " + ca::serialHexOf(a) + " --config " +
                  shellQuote(env.dir + "/kyso.conf") + " --ca issuing-ca --reason keyCompromise"),
              0);
    // A verified OCSP status is kept until the response's nextUpdate, as a CRL is: the checker
    // that asked before still has "good"; a new one (an empty cache) asks and sees the revocation.
    st = checker.check(a, issuer, now + 1);
    EXPECT_EQ(st.status, "GOOD");
    ca::RevocationChecker afterRevocation(api::makeHttpFetch(env.dir + "/pki/root-ca.pem", 2));
    st = afterRevocation.check(a, issuer, now + 1);
    EXPECT_EQ(st.status, "REVOKED");
    EXPECT_EQ(st.source, "OCSP");
    EXPECT_GT(st.revocationTime, 0);

    // The OCSP responder is down: the latest CRL decides.
    const std::string b = issueLeaf("CRL user", dead + "/ocsp", env.url("/ca/issuing-ca.crl"));
    st = checker.check(b, issuer, now);
    EXPECT_EQ(st.status, "GOOD");
    EXPECT_EQ(st.source, "CRL");
    EXPECT_FALSE(st.warnings.empty());
    // The revoked certificate is on that CRL too.
    const std::string c = issueLeaf("CRL revoked", dead + "/ocsp", env.url("/ca/issuing-ca.crl"));
    ASSERT_EQ(run(std::string(KYSO_BINARY) + " ca revoke " + ca::serialHexOf(c) + " --config " +
                  shellQuote(env.dir + "/kyso.conf") + " --ca issuing-ca"),
              0);
    ca::RevocationChecker fresh(api::makeHttpFetch(env.dir + "/pki/root-ca.pem", 2));
    st = fresh.check(c, issuer, now + 1);
    EXPECT_EQ(st.status, "REVOKED");
    EXPECT_EQ(st.source, "CRL");

    // Neither answers: UNAVAILABLE with the reasons, never a pass.
    const std::string d = issueLeaf("Nobody answers", dead + "/ocsp", dead + "/crl");
    st = checker.check(d, issuer, now);
    EXPECT_EQ(st.status, "UNAVAILABLE");
    EXPECT_TRUE(st.source.empty());
    EXPECT_GE(st.warnings.size(), 3u);

    // A response signed by another CA is not believed: the issuer here is the test CA, so the
    // demo responder's answer does not verify and the CRL is not that issuer's.
    st = checker.check(a, testPki(*env.token).ca.certificateDer, now);
    EXPECT_EQ(st.status, "UNAVAILABLE");
}

}  // namespace
}  // namespace kyso::test

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace kyso::test {
namespace {

// A responder that accepts the connection and never answers: the check ends at the configured
// timeout with UNAVAILABLE (the report's TRY_LATER), not a hang and not a pass.
TEST(Revocation, SilentResponderEndsAsUnavailableAtTheTimeout) {
    auto& env = Env::get();
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::listen(fd, 8), 0);  // the kernel completes handshakes; nobody ever reads
    socklen_t len = sizeof addr;
    ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    const std::string silent = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
    const std::string leaf = issueLeaf("Silent", silent + "/ocsp", silent + "/crl");
    ca::RevocationChecker checker(api::makeHttpFetch(env.dir + "/pki/root-ca.pem", 1));
    auto st =
        checker.check(leaf, env.creds->find("issuing-ca")->certificateDer, std::time(nullptr));
    ::close(fd);
    EXPECT_EQ(st.status, "UNAVAILABLE");
    std::string all;
    for (const auto& w : st.warnings) {
        all += w + "\n";
    }
    EXPECT_NE(all.find("OCSP " + silent), std::string::npos) << all;
    EXPECT_NE(all.find("CRL " + silent), std::string::npos) << all;
}

}  // namespace
}  // namespace kyso::test

namespace kyso::test {
namespace {

// CRLs are kept in the database until their nextUpdate: a new checker (a restart) does not fetch
// the CRL again, and still gets the answer.
TEST(Revocation, CrlsAreCachedInTheDatabaseUntilNextUpdate) {
    auto& env = Env::get();
    const std::string issuer = env.creds->find("issuing-ca")->certificateDer;
    const std::string leaf =
        issueLeaf("Cached CRL", "https://127.0.0.1:9/ocsp", env.url("/ca/issuing-ca.crl"));
    auto cache = env.store->revocationCache();
    auto http = api::makeHttpFetch(env.dir + "/pki/root-ca.pem", 2);
    int crlFetches = 0;
    auto counting = [&](const std::string& url, const std::string& body, const std::string& ct) {
        if (body.empty()) {
            ++crlFetches;
        }
        return http(url, body, ct);
    };
    const std::time_t now = std::time(nullptr);
    ca::RevocationChecker first(counting, 7 * 86400, cache.get());
    auto st = first.check(leaf, issuer, now);
    EXPECT_EQ(st.status, "GOOD");
    EXPECT_EQ(st.source, "CRL");
    EXPECT_EQ(crlFetches, 1);
    ca::RevocationChecker second(counting, 7 * 86400, cache.get());
    st = second.check(leaf, issuer, now + 60);
    EXPECT_EQ(st.status, "GOOD");
    EXPECT_EQ(crlFetches, 1) << "the cached CRL was fetched again";
    // Past the CRL's nextUpdate (7 days in the demo), it is fetched again.
    st = second.check(leaf, issuer, now + 8 * 86400);
    EXPECT_EQ(crlFetches, 2);
}

}  // namespace
}  // namespace kyso::test
