// The authorization matrix over real HTTPS: every role (and no credential at all) against every
// endpoint, with the status each must get. A new route must be added here too: the test fails
// when a route of Service::routes() has no row.
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <signal.h>
#include <sys/wait.h>

#include <map>
#include <set>

#include "kyso/ca-bridge/issuer.h"
#include "kyso/hsm/ossl_ptr.h"
#include "rest_env.h"

namespace kyso::test {
namespace {

struct Row {
    std::string method, route, path;  // route: the template; path: what is requested
    std::string body, contentType;
    // Expected status per caller: "anonymous", "admin", "officer-1", "clerk", "portal".
    std::map<std::string, int> expect;
};

TEST(Authorization, EveryRoleAgainstEveryEndpoint) {
    auto& env = Env::get();
    const std::string dir = tempDir("authz");
    writeFile(dir + "/data", "dữ liệu");
    ASSERT_EQ(run("openssl ts -query -data " + dir + "/data -sha256 -out " + dir + "/q.tsq"), 0);
    ASSERT_EQ(
        run("openssl ocsp -issuer " + shellQuote(env.dir + "/pki/issuing-ca.pem") + " -cert " +
            shellQuote(env.dir + "/pki/officer-1.pem") + " -reqout " + dir + "/q.ocsp"),
        0);
    const std::string signedPdf = dir + "/signed.pdf";
    ASSERT_EQ(env.request("POST", "/api/v1/sign/pdf?credential=officer-1&level=B-B",
                          env.keys["officer-1"], samplePdf(), "application/pdf", signedPdf)
                  .status,
              200);

    auto all = [](int anonymous, int admin, int officer, int clerk, int portal) {
        return std::map<std::string, int>{{"anonymous", anonymous},
                                          {"admin", admin},
                                          {"officer-1", officer},
                                          {"clerk", clerk},
                                          {"portal", portal}};
    };
    // JSON bodies for the citizen and CSC rows, as files.
    int jsonFiles = 0;
    auto json = [&](const std::string& text) {
        const std::string path = dir + "/body" + std::to_string(jsonFiles++) + ".json";
        writeFile(path, text);
        return path;
    };
    const std::string noCitizen = json("{\"credentialID\":\"citizen-none\"}");
    const std::vector<Row> rows = {
        {"GET", "/healthz", "/healthz", "", "", all(200, 200, 200, 200, 200)},
        {"GET", "/readyz", "/readyz", "", "", all(200, 200, 200, 200, 200)},
        {"GET", "/metrics", "/metrics", "", "", all(200, 200, 200, 200, 200)},
        {"GET", "/openapi.json", "/openapi.json", "", "", all(200, 200, 200, 200, 200)},
        {"GET", "/api/v1/credentials", "/api/v1/credentials", "", "", all(401, 200, 200, 200, 200)},
        {"GET", "/api/v1/audit", "/api/v1/audit", "", "", all(401, 200, 403, 403, 403)},
        // Only the owner signs with an officer credential; the admin never signs.
        {"POST", "/api/v1/sign/pdf", "/api/v1/sign/pdf?credential=officer-1&level=B-B", samplePdf(),
         "application/pdf", all(401, 403, 200, 403, 403)},
        // The agency seal: the clerk and the officer it is entrusted to; never admin or portal.
        {"POST", "/api/v1/sign/pdf", "/api/v1/sign/pdf?seal=agency-seal&level=B-B", samplePdf(),
         "application/pdf", all(401, 403, 200, 200, 403)},
        {"POST", "/api/v1/sign/cms", "/api/v1/sign/cms?credential=officer-1&level=B-B",
         dir + "/data", "text/plain", all(401, 403, 200, 403, 403)},
        {"POST", "/api/v1/sign/hash", "/api/v1/sign/hash",
         json("{\"credential\":\"officer-1\",\"hashAlgorithm\":\"SHA-256\",\"hashes\":["
              "\"3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"]}"),
         "application/json", all(401, 403, 200, 403, 403)},
        {"POST", "/api/v1/verify", "/api/v1/verify", signedPdf, "application/pdf",
         all(401, 200, 200, 200, 200)},
        // The TSA, the OCSP responder and the CA objects are public, as their URLs are.
        {"POST", "/tsa", "/tsa", dir + "/q.tsq", "application/timestamp-query",
         all(200, 200, 200, 200, 200)},
        {"POST", "/ocsp", "/ocsp", dir + "/q.ocsp", "application/ocsp-request",
         all(200, 200, 200, 200, 200)},
        // Citizens and the CSC API: only a portal acts for citizens. The bodies name no
        // enrolled citizen, so a portal gets past authorization to the input check (400 or
        // 404), everyone else stops at 401/403.
        {"POST", "/api/v1/citizens", "/api/v1/citizens", json("{\"identityNumber\":\"12\"}"),
         "application/json", all(401, 403, 403, 403, 400)},
        {"POST", "/api/v1/citizens/pin", "/api/v1/citizens/pin", noCitizen, "application/json",
         all(401, 403, 403, 403, 404)},
        {"POST", "/api/v1/citizens/unlock", "/api/v1/citizens/unlock", noCitizen,
         "application/json", all(401, 403, 403, 403, 404)},
        // An administrator may revoke a citizen's credential too.
        {"POST", "/api/v1/citizens/revoke", "/api/v1/citizens/revoke", noCitizen,
         "application/json", all(401, 404, 403, 403, 404)},
        {"POST", "/csc/v2/info", "/csc/v2/info", json("{}"), "application/json",
         all(200, 200, 200, 200, 200)},
        {"POST", "/csc/v2/credentials/list", "/csc/v2/credentials/list", json("{}"),
         "application/json", all(401, 403, 403, 403, 200)},
        {"POST", "/csc/v2/credentials/info", "/csc/v2/credentials/info", noCitizen,
         "application/json", all(401, 403, 403, 403, 404)},
        {"POST", "/csc/v2/credentials/authorize", "/csc/v2/credentials/authorize", noCitizen,
         "application/json", all(401, 403, 403, 403, 404)},
        {"POST", "/csc/v2/signatures/signHash", "/csc/v2/signatures/signHash", noCitizen,
         "application/json", all(401, 403, 403, 403, 404)},
        {"POST", "/csc/v2/signatures/timestamp", "/csc/v2/signatures/timestamp",
         json("{\"hash\":\"3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\","
              "\"hashAlgorithmOID\":\"2.16.840.1.101.3.4.2.1\"}"),
         "application/json", all(401, 403, 403, 403, 200)},
        // Receipts: a portal has them sealed (by the receipt-seal credential); the body here
        // is not a receipt, so the portal gets the field-level 422. Reading a receipt is open.
        {"POST", "/api/v1/receipts", "/api/v1/receipts", json("{}"), "application/json",
         all(401, 403, 403, 403, 422)},
        {"POST", "/api/v1/receipts/cancel", "/api/v1/receipts/cancel",
         json("{\"id\":\"rc-000000000000000000000000\"}"), "application/json",
         all(401, 404, 403, 403, 404)},
        {"GET", "/api/v1/receipts/{id}", "/api/v1/receipts/rc-000000000000000000000000", "", "",
         all(404, 404, 404, 404, 404)},
        {"GET", "/api/v1/receipts/{id}/qr.png",
         "/api/v1/receipts/rc-000000000000000000000000/qr.png", "", "",
         all(404, 404, 404, 404, 404)},
        {"GET", "/ca/{name}.crt", "/ca/root-ca.crt", "", "", all(200, 200, 200, 200, 200)},
        {"GET", "/ca/{name}.crl", "/ca/issuing-ca.crl", "", "", all(200, 200, 200, 200, 200)},
    };
    std::set<std::string> covered;
    // Each principal authenticates twice: with its API key, then with its TLS client certificate.
    for (const bool withCertificate : {false, true}) {
        for (const auto& row : rows) {
            covered.insert(row.method + " " + row.route);
            for (const auto& [who, status] : row.expect) {
                SCOPED_TRACE(row.method + " " + row.path + " as " + who +
                             (withCertificate ? " (client certificate)" : " (API key)"));
                const bool anonymous = who == "anonymous";
                const std::string key = anonymous || withCertificate ? "" : env.keys[who];
                const std::string cert =
                    anonymous || !withCertificate
                        ? ""
                        : "--cert " + shellQuote(env.dir + "/clients/" + who + ".pem") + " --key " +
                              shellQuote(env.dir + "/clients/" + who + ".key") + " ";
                auto r =
                    env.request(row.method, row.path, key, row.body,
                                row.body.empty() ? "application/pdf" : row.contentType, "", cert);
                EXPECT_EQ(r.status, status) << r.body;
                if (status >= 400) {
                    EXPECT_NE(r.header("Content-Type").find("application/problem+json"),
                              std::string::npos);
                }
            }
        }
    }
    for (const auto& [method, route] : api::Service::routes()) {
        EXPECT_TRUE(covered.count(method + " " + route))
            << method << " " << route << " has no row in the authorization matrix";
    }
}

// A policy file: enforced by a service started on it (minimum level, document size, rate), and
// a bad one keeps the service from starting, naming the file and the line.
TEST(Authorization, SigningPolicyFile) {
    auto& env = Env::get();
    const std::string dir = tempDir("policy");
    writeFile(dir + "/strict.policy",
              "[signing]\nminimumLevel = B-T\nmaxDocumentBytes = 200000\nratePerMinute = 3\n");
    const std::string conf = serveConf("policy");
    writeFile(conf, readFile(conf) + "\n[policy]\nfile = " + dir + "/strict.policy\n");
    ServeProcess serve = startServe(conf);
    ASSERT_FALSE(serve.port.empty()) << readFile(serve.log);
    const std::string base = "https://127.0.0.1:" + serve.port;
    writeFile(dir + "/auth", "Authorization: Bearer " + env.keys["officer-1"] + "\n");
    auto post = [&](const std::string& level, const std::string& file) {
        std::string out;
        run("curl -s --max-time 60 -o " + dir + "/body -w '%{http_code}' --cacert " +
                shellQuote(env.dir + "/pki/root-ca.pem") + " -H @" + dir +
                "/auth -H 'Content-Type: application/pdf' --data-binary @" + shellQuote(file) +
                " '" + base + "/api/v1/sign/pdf?credential=officer-1&level=" + level + "'",
            &out);
        return out;
    };
    EXPECT_EQ(post("B-B", samplePdf()), "403");
    EXPECT_NE(readFile(dir + "/body").find("rule minimum-level"), std::string::npos);
    EXPECT_EQ(post("B-T", samplePdf()), "200");
    // A document over the policy's size (the service's own limit is larger).
    writeFile(dir + "/big.pdf", readFile(samplePdf()) + std::string(300000, '\n'));
    EXPECT_EQ(post("B-T", dir + "/big.pdf"), "403");
    EXPECT_NE(readFile(dir + "/body").find("rule document-too-large"), std::string::npos);
    // Requests the policy refused do not count; the fourth allowed one within a minute is over
    // the rate of 3.
    EXPECT_EQ(post("B-T", samplePdf()), "200");
    EXPECT_EQ(post("B-T", samplePdf()), "200");
    EXPECT_EQ(post("B-T", samplePdf()), "429");
    EXPECT_NE(readFile(dir + "/body").find("rate.limited"), std::string::npos);
    ::kill(serve.pid, SIGTERM);
    int status = 0;
    ::waitpid(serve.pid, &status, 0);

    writeFile(dir + "/bad.policy", "[signing]\n# weak keys\nrsaMinBits = 1024\n");
    writeFile(conf, readFile(conf) + "\n");
    std::string text = readFile(conf);
    text.replace(text.find(dir + "/strict.policy"), (dir + "/strict.policy").size(),
                 dir + "/bad.policy");
    writeFile(conf, text);
    std::string out;
    EXPECT_EQ(
        run("timeout 20 " + std::string(KYSO_BINARY) + " serve --config " + shellQuote(conf), &out),
        78);
    EXPECT_NE(out.find(dir + "/bad.policy:3: rsaMinBits"), std::string::npos) << out;
}

// TLS client certificates from the configured client CA authenticate as their [client.NAME];
// the same policy then applies as to API keys.
TEST(Authorization, ClientCertificates) {
    auto& env = Env::get();
    auto as = [&](const std::string& name) {
        return "--cert " + shellQuote(env.dir + "/clients/" + name + ".pem") + " --key " +
               shellQuote(env.dir + "/clients/" + name + ".key") + " ";
    };
    auto r = env.request("GET", "/api/v1/credentials", "", "", "", "", as("officer-1"));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_NE(r.body.find("\"officer-1\""), std::string::npos);
    const std::string dir = tempDir("mtls");
    r = env.request("POST", "/api/v1/sign/pdf?credential=officer-1&level=B-B", "", samplePdf(),
                    "application/pdf", dir + "/signed.pdf", as("officer-1"));
    EXPECT_EQ(r.status, 200);
    r = env.request("POST", "/api/v1/verify", "", dir + "/signed.pdf", "application/pdf", "",
                    as("portal"));
    EXPECT_EQ(r.status, 200) << r.body;
    r = env.request("POST", "/api/v1/sign/pdf?credential=officer-1", "", samplePdf(),
                    "application/pdf", "", as("portal"));
    EXPECT_EQ(r.status, 403);

    // A certificate the client CA did not issue: the handshake fails, nothing is answered.
    ASSERT_EQ(run("cd " + dir +
                  " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
                  "-keyout other.key -subj '/CN=intruder' -days 1 -out other.pem 2>/dev/null"),
              0);
    r = env.request("GET", "/api/v1/credentials", "", "", "", "",
                    "--cert " + dir + "/other.pem --key " + dir + "/other.key ");
    EXPECT_EQ(r.status, 0);
    // Issued by the client CA but not registered: 401, recorded as an authentication failure.
    OsslPtr<EVP_PKEY> key(::EVP_EC_gen("P-256"));
    unsigned char* spki = nullptr;
    const int len = ::i2d_PUBKEY(key.get(), &spki);
    ca::CertificateProfile prof;
    prof.subject = {{"CN", "unregistered"}};
    prof.publicKeyDer.assign(reinterpret_cast<char*>(spki), static_cast<std::size_t>(len));
    ::OPENSSL_free(spki);
    prof.digitalSignature = true;
    prof.extendedKeyUsage = {"clientAuth"};
    const std::string cert = ca::issueCertificate(prof, *env.creds->find("issuing-ca")).value();
    writeFile(dir + "/unregistered.pem",
              ca::certificateToPem(cert) +
                  ca::certificateToPem(env.creds->find("issuing-ca")->certificateDer));
    OsslPtr<BIO> kb(::BIO_new_file((dir + "/unregistered.key").c_str(), "w"));
    ::PEM_write_bio_PrivateKey(kb.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    kb.reset();
    r = env.request("GET", "/api/v1/credentials", "", "", "", "",
                    "--cert " + dir + "/unregistered.pem --key " + dir + "/unregistered.key ");
    expectProblem(r, 401, "auth.invalid");
}

}  // namespace
}  // namespace kyso::test
