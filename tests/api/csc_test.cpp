// The citizen's whole flow over HTTPS (issue 7): a portal enrols a citizen, the citizen changes
// the PIN, authorizes with PIN + a one-time code computed by oathtool, and signHash's signature
// verifies with OpenSSL against the issued certificate; a time-stamp comes back from the CSC
// timestamp call. Then the attacks: a reused SAD, a hash the SAD did not name, a replayed code,
// another portal's citizen, five wrong PINs (locked), a revoked credential.
#include <botan/base32.h>
#include <botan/base64.h>
#include <botan/hex.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <regex>
#include <thread>

#include "rest_env.h"

namespace kyso::test {
namespace {

std::string b64(const std::string& bytes) {
    return Botan::base64_encode(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
}

std::string unb64(const std::string& text) {
    auto v = Botan::base64_decode(text);
    return std::string(v.begin(), v.end());
}

// oathtool's code for the key at now + STEPS * 30 s; the key reaches it through a file.
std::string oathCode(const std::string& base32, int steps) {
    const std::string dir = tempDir("csc-oath");
    writeFile(dir + "/k", base32 + "\n");
    const long long t = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count() +
                        30LL * steps;
    std::string out;
    EXPECT_EQ(run("oathtool --totp -b --now=@" + std::to_string(t) + " @" + dir + "/k", &out), 0);
    return out.substr(0, 6);
}

// POSTs JSON as KEY's principal.
Response post(Env& env, const std::string& path, const std::string& key, const std::string& body) {
    const std::string f = tempDir("csc-body") + "/b.json";
    writeFile(f, body);
    return env.request("POST", path, key, f, "application/json");
}

std::string sha256(const std::string& data) {
    const std::string dir = tempDir("csc-hash");
    writeFile(dir + "/d", data);
    EXPECT_EQ(run("openssl dgst -sha256 -binary " + dir + "/d > " + dir + "/h"), 0);
    return readFile(dir + "/h");
}

std::string authorizeBody(const std::string& id, const std::string& pin, const std::string& otp,
                          const std::vector<std::string>& hashes) {
    std::string list;
    for (const auto& h : hashes) {
        list += (list.empty() ? "\"" : ",\"") + b64(h) + "\"";
    }
    return "{\"credentialID\":\"" + id + "\",\"numSignatures\":" + std::to_string(hashes.size()) +
           ",\"hashes\":[" + list +
           "],\"hashAlgorithmOID\":\"2.16.840.1.101.3.4.2.1\",\"authData\":[{\"id\":\"PIN\","
           "\"value\":\"" +
           pin + "\"},{\"id\":\"OTP\",\"value\":\"" + otp + "\"}]}";
}

std::string signHashBody(const std::string& id, const std::string& sad, const std::string& hash) {
    return "{\"credentialID\":\"" + id + "\",\"SAD\":\"" + sad + "\",\"hashes\":[\"" + b64(hash) +
           "\"],\"hashAlgorithmOID\":\"2.16.840.1.101.3.4.2.1\",\"signAlgo\":"
           "\"1.2.840.113549.1.1.11\"}";
}

// A citizen enrolled by the demo portal, the initial PIN already changed to NEWPIN; an empty id
// (and a failure recorded) when that did not work.
struct Enrolled {
    std::string id;
    std::string totpSecret;  // base32, from the otpauth URI
};
Enrolled enrolWithPin(Env& env, const std::string& enrolment, const std::string& newPin) {
    const std::string portal = env.keys["portal"];
    auto r = post(env, "/api/v1/citizens", portal, enrolment);
    EXPECT_EQ(r.status, 201) << r.body;
    if (r.status != 201) {
        return {};
    }
    Enrolled e{r.json()->getValue<std::string>("credentialID"), ""};
    std::smatch m;
    const std::string uri = r.json()->getValue<std::string>("otpauthUri");
    EXPECT_TRUE(std::regex_search(uri, m, std::regex("[?&]secret=([A-Z2-7]+)"))) << uri;
    e.totpSecret = m.empty() ? "" : m[1].str();
    const int changed = post(env, "/api/v1/citizens/pin", portal,
                             "{\"credentialID\":\"" + e.id + "\",\"oldPin\":\"" +
                                 r.json()->getValue<std::string>("initialPin") +
                                 "\",\"newPin\":\"" + newPin + "\"}")
                            .status;
    EXPECT_EQ(changed, 200);
    return changed == 200 && !e.totpSecret.empty() ? e : Enrolled{};
}

TEST(Csc, EnrolAuthorizeSignHashAndTheAttacks) {
    auto& env = Env::get();
    const std::string portal = env.keys["portal"];
    const std::string dir = tempDir("csc");

    // Enrolment by the portal: the secrets come back once.
    auto r = post(env, "/api/v1/citizens", portal,
                  "{\"identityNumber\":\"079204001234\",\"fullName\":\"Lê Hoàng Minh Khôi\","
                  "\"province\":\"Thành phố Hồ Chí Minh\",\"contact\":\"khoi@example.vn\"}");
    ASSERT_EQ(r.status, 201) << r.body;
    EXPECT_NE(r.header("Cache-Control").find("no-store"), std::string::npos);
    auto j = r.json();
    const std::string id = j->getValue<std::string>("credentialID");
    const std::string initialPin = j->getValue<std::string>("initialPin");
    const std::string uri = j->getValue<std::string>("otpauthUri");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(uri, m, std::regex("[?&]secret=([A-Z2-7]+)"))) << uri;
    const std::string secret = m[1];
    // The QR code carries the otpauth URI (read back by zbarimg).
    writeFile(dir + "/qr.png", unb64(j->getValue<std::string>("qrPng")));
    std::string qr;
    ASSERT_EQ(run("zbarimg --quiet --raw " + dir + "/qr.png 2>/dev/null", &qr), 0);
    // (zbarimg may print D-Bus noise first: the decoded text is its last line.)
    qr = qr.substr(0, qr.find_last_not_of("\r\n") + 1);
    EXPECT_EQ(qr.substr(qr.find_last_of('\n') + 1), uri);
    // The same identity number again: refused.
    EXPECT_EQ(post(env, "/api/v1/citizens", portal,
                   "{\"identityNumber\":\"079204001234\",\"fullName\":\"Lê Hoàng Minh Khôi\","
                   "\"province\":\"Thành phố Hồ Chí Minh\",\"contact\":\"khoi@example.vn\"}")
                  .status,
              409);

    // The TOTP key is not in the database as it is: sealed by an AES key on the token.
    {
        auto raw = Botan::base32_decode(secret);
        std::string db = readFile(env.cfg.databasePath) + readFile(env.cfg.databasePath + "-wal");
        const std::string hex = Botan::hex_encode(raw.data(), raw.size(), true);
        const std::string lower = Botan::hex_encode(raw.data(), raw.size(), false);
        EXPECT_EQ(db.find(hex), std::string::npos) << "the TOTP key is stored in clear";
        EXPECT_EQ(db.find(lower), std::string::npos) << "the TOTP key is stored in clear";
        EXPECT_EQ(db.find(std::string(raw.begin(), raw.end())), std::string::npos);
    }

    // Signing before the initial PIN is changed: refused. Then the change.
    const std::string data = "Tờ khai đăng ký thường trú";
    const std::string hash = sha256(data);
    auto a = post(env, "/csc/v2/credentials/authorize", portal,
                  authorizeBody(id, initialPin, "000000", {hash}));
    EXPECT_EQ(a.status, 403) << a.body;
    EXPECT_NE(a.body.find("csc.pin_change_required"), std::string::npos) << a.body;
    ASSERT_EQ(post(env, "/api/v1/citizens/pin", portal,
                   "{\"credentialID\":\"" + id + "\",\"oldPin\":\"" + initialPin +
                       "\",\"newPin\":\"739164\"}")
                  .status,
              200);

    // info, list, credentials/info with the chain.
    EXPECT_EQ(post(env, "/csc/v2/info", "", "{}").status, 200);
    auto list = post(env, "/csc/v2/credentials/list", portal, "{\"userID\":\"079204001234\"}");
    ASSERT_EQ(list.status, 200);
    EXPECT_NE(list.body.find(id), std::string::npos) << list.body;
    auto info = post(env, "/csc/v2/credentials/info", portal,
                     "{\"credentialID\":\"" + id + "\",\"certificates\":\"chain\"}");
    ASSERT_EQ(info.status, 200) << info.body;
    auto certs = info.json()->getObject("cert")->getArray("certificates");
    ASSERT_EQ(certs->size(), 2u);
    EXPECT_EQ(info.json()->getValue<std::string>("SCAL"), "2");
    const std::string certDer = unb64(certs->getElement<std::string>(0));
    writeFile(dir + "/c.der", certDer);
    ASSERT_EQ(run("openssl x509 -inform DER -in " + dir + "/c.der -out " + dir + "/c.pem"), 0);
    std::string out;
    ASSERT_EQ(run("openssl verify -CAfile " + env.dir + "/pki/root-ca.pem -untrusted " + env.dir +
                      "/pki/issuing-ca.pem " + dir + "/c.pem 2>&1",
                  &out),
              0)
        << out;

    EXPECT_NE(ocspStatus(env, dir + "/c.pem").find("c.pem: good"), std::string::npos);

    // Authorize with PIN + the code oathtool computes, sign the hash, verify with OpenSSL.
    const std::string code = oathCode(secret, 0);
    a = post(env, "/csc/v2/credentials/authorize", portal,
             authorizeBody(id, "739164", code, {hash}));
    ASSERT_EQ(a.status, 200) << a.body;
    const std::string sad = a.json()->getValue<std::string>("SAD");
    EXPECT_GT(a.json()->getValue<int>("expiresIn"), 0);
    auto s = post(env, "/csc/v2/signatures/signHash", portal, signHashBody(id, sad, hash));
    ASSERT_EQ(s.status, 200) << s.body;
    writeFile(dir + "/sig", unb64(s.json()->getArray("signatures")->getElement<std::string>(0)));
    writeFile(dir + "/data", data);
    ASSERT_EQ(run("openssl x509 -in " + dir + "/c.pem -pubkey -noout > " + dir + "/pub.pem"), 0);
    ASSERT_EQ(run("openssl dgst -sha256 -verify " + dir + "/pub.pem -signature " + dir + "/sig " +
                      dir + "/data 2>&1",
                  &out),
              0)
        << out;

    // A reused SAD signs nothing more.
    s = post(env, "/csc/v2/signatures/signHash", portal, signHashBody(id, sad, hash));
    EXPECT_EQ(s.status, 400) << s.body;
    EXPECT_TRUE(s.body.find("csc.sad_used_up") != std::string::npos ||
                s.body.find("csc.hash_not_authorized") != std::string::npos)
        << s.body;
    // The same code again: replayed, refused (and counted).
    a = post(env, "/csc/v2/credentials/authorize", portal,
             authorizeBody(id, "739164", code, {hash}));
    EXPECT_EQ(a.status, 400) << a.body;
    EXPECT_NE(a.body.find("invalid_grant"), std::string::npos) << a.body;
    // The next code authorizes two hashes; a third hash is not among them.
    const std::string h1 = sha256("một");
    const std::string h2 = sha256("hai");
    a = post(env, "/csc/v2/credentials/authorize", portal,
             authorizeBody(id, "739164", oathCode(secret, 1), {h1, h2}));
    ASSERT_EQ(a.status, 200) << a.body;
    const std::string sad2 = a.json()->getValue<std::string>("SAD");
    s = post(env, "/csc/v2/signatures/signHash", portal, signHashBody(id, sad2, sha256("ba")));
    EXPECT_EQ(s.status, 400);
    EXPECT_NE(s.body.find("csc.hash_not_authorized"), std::string::npos) << s.body;
    EXPECT_EQ(post(env, "/csc/v2/signatures/signHash", portal, signHashBody(id, sad2, h2)).status,
              200);

    // Another portal's citizen: as if it did not exist, for every call.
    const std::string other = env.store->createApiKey("portal-2", policies::Role::Portal).value();
    for (const char* path : {"/csc/v2/credentials/info", "/csc/v2/signatures/signHash",
                             "/csc/v2/credentials/authorize", "/api/v1/citizens/revoke"}) {
        auto o = post(env, path, other, signHashBody(id, sad2, h1));
        EXPECT_EQ(o.status, 404) << path << " " << o.body;
    }
    EXPECT_EQ(post(env, "/csc/v2/credentials/list", other, "{}").body.find(id), std::string::npos);
    // ... nor may an officer use the SAD.
    EXPECT_EQ(
        post(env, "/csc/v2/signatures/signHash", env.keys["officer-1"], signHashBody(id, sad2, h1))
            .status,
        403);

    // A timestamp of the hash from the service's TSA, checked by openssl ts.
    auto t =
        post(env, "/csc/v2/signatures/timestamp", portal,
             "{\"hash\":\"" + b64(hash) + "\",\"hashAlgorithmOID\":\"2.16.840.1.101.3.4.2.1\"}");
    ASSERT_EQ(t.status, 200) << t.body;
    writeFile(dir + "/tst.der", unb64(t.json()->getValue<std::string>("timestamp")));
    ASSERT_EQ(
        run("openssl ts -verify -data " + dir + "/data -token_in -in " + dir + "/tst.der -CAfile " +
                env.dir + "/pki/root-ca.pem -untrusted " + env.dir + "/pki/issuing-ca.pem 2>&1",
            &out),
        0)
        << out;
    EXPECT_NE(out.find("Verification: OK"), std::string::npos) << out;

    // Five wrong PINs in a row (the success above reset the count) lock the credential; then
    // even the right PIN and a fresh code are refused, and the portal sees the key disabled.
    for (int i = 0; i < 5; ++i) {
        a = post(env, "/csc/v2/credentials/authorize", portal,
                 authorizeBody(id, "111999", "123456", {h1}));
    }
    EXPECT_EQ(a.status, 403) << a.body;
    EXPECT_NE(a.body.find("csc.locked"), std::string::npos) << a.body;
    a = post(env, "/csc/v2/credentials/authorize", portal,
             authorizeBody(id, "739164", oathCode(secret, 1), {h1}));
    EXPECT_EQ(a.status, 403) << a.body;
    info = post(env, "/csc/v2/credentials/info", portal, "{\"credentialID\":\"" + id + "\"}");
    EXPECT_EQ(info.json()->getObject("key")->getValue<std::string>("status"), "disabled");
    ASSERT_EQ(
        post(env, "/api/v1/citizens/unlock", portal, "{\"credentialID\":\"" + id + "\"}").status,
        200);
    info = post(env, "/csc/v2/credentials/info", portal, "{\"credentialID\":\"" + id + "\"}");
    EXPECT_EQ(info.json()->getObject("key")->getValue<std::string>("status"), "enabled");

    // Revocation: the certificate is revoked at once, and the SAD still open signs nothing. (The
    // officer may not revoke it; the portal, or an administrator, may.)
    EXPECT_EQ(post(env, "/api/v1/citizens/revoke", env.keys["officer-1"],
                   "{\"credentialID\":\"" + id + "\"}")
                  .status,
              403);
    ASSERT_EQ(post(env, "/api/v1/citizens/revoke", portal,
                   "{\"credentialID\":\"" + id + "\",\"reason\":\"keyCompromise\"}")
                  .status,
              200);
    s = post(env, "/csc/v2/signatures/signHash", portal, signHashBody(id, sad2, h1));
    EXPECT_EQ(s.status, 400) << s.body;
    info = post(env, "/csc/v2/credentials/info", portal, "{\"credentialID\":\"" + id + "\"}");
    EXPECT_EQ(info.json()->getObject("cert")->getValue<std::string>("status"), "revoked");
    EXPECT_NE(ocspStatus(env, dir + "/c.pem").find("c.pem: revoked"), std::string::npos);
    ASSERT_EQ(env.request("GET", "/ca/issuing-ca.crl", "", "", "", dir + "/crl.der").status, 200);
    run("openssl crl -inform DER -in " + dir + "/crl.der -noout -text", &out);
    std::string serial;
    run("openssl x509 -in " + dir + "/c.pem -noout -serial", &serial);
    serial = serial.substr(serial.find('=') + 1);
    serial = serial.substr(0, serial.find_last_not_of("\r\n") + 1);
    EXPECT_NE(out.find("Serial Number: " + serial), std::string::npos) << serial << "\n" << out;
    // Every step is in the audit log.
    std::string log;
    for (long long after = 0;;) {
        auto page = env.request("GET", "/api/v1/audit?limit=1000&after=" + std::to_string(after),
                                env.keys["admin"]);
        ASSERT_EQ(page.status, 200);
        auto entries = page.json()->getArray("entries");
        if (entries->size() == 0) {
            break;
        }
        log += page.body;
        after = entries->getObject(static_cast<unsigned>(entries->size() - 1))
                    ->getValue<long long>("seq");
    }
    for (const char* type : {"citizen.enrol", "citizen.pin", "csc.authorize", "csc.signHash",
                             "citizen.unlock", "citizen.revoke"}) {
        EXPECT_NE(log.find(type), std::string::npos) << type;
    }
    EXPECT_EQ(log.find("739164"), std::string::npos) << "a PIN in the audit log";
    EXPECT_EQ(log.find(sad), std::string::npos) << "a SAD in the audit log";
}

// A portal has a citizen sign an application form as PAdES: the SAD is authorized over the
// SHA-256 of the PDF the portal then sends, and signs only that PDF.
TEST(Csc, CitizenSignsAPdfFormUnderASad) {
    auto& env = Env::get();
    const std::string portal = env.keys["portal"];
    const std::string dir = tempDir("csc-pdf");
    const Enrolled citizen =
        enrolWithPin(env,
                     "{\"identityNumber\":\"036190007788\",\"fullName\":\"Phạm Thu Hà\","
                     "\"province\":\"Nam Định\",\"contact\":\"0912345678\"}",
                     "205813");
    ASSERT_FALSE(citizen.id.empty());
    const std::string& id = citizen.id;
    const std::string& secret = citizen.totpSecret;
    const std::string form = samplePdf();
    auto a = post(env, "/csc/v2/credentials/authorize", portal,
                  authorizeBody(id, "205813", oathCode(secret, 0), {sha256(readFile(form))}));
    ASSERT_EQ(a.status, 200) << a.body;
    const std::string sad = a.json()->getValue<std::string>("SAD");
    const std::string path = "/api/v1/sign/pdf?credential=" + id + "&level=B-T";
    // Without the SAD, or for another document: refused.
    EXPECT_EQ(env.request("POST", path, portal, form).status, 400);
    writeFile(dir + "/hdr", "Kyso-SAD: " + sad + "\n");
    const std::string other = corpusDir() + "/pdf/unsigned/ph-minimal.pdf";
    auto refused =
        env.request("POST", path, portal, other, "application/pdf", "", "-H @" + dir + "/hdr ");
    EXPECT_EQ(refused.status, 400) << refused.body;
    EXPECT_NE(refused.body.find("csc.hash_not_authorized"), std::string::npos) << refused.body;
    // Another portal cannot use the citizen's credential even with the SAD.
    const std::string other2 = env.store->createApiKey("portal-3", policies::Role::Portal).value();
    EXPECT_EQ(env.request("POST", path, other2, form, "application/pdf", "", "-H @" + dir + "/hdr ")
                  .status,
              403);
    // With it: a valid PAdES B-T signature by the citizen.
    auto ok = env.request("POST", path, portal, form, "application/pdf", dir + "/signed.pdf",
                          "-H @" + dir + "/hdr ");
    ASSERT_EQ(ok.status, 200) << readFile(dir + "/signed.pdf");
    std::string out;
    run("pdfsig " + dir + "/signed.pdf", &out);
    EXPECT_NE(out.find("Signature is Valid."), std::string::npos) << out;
    EXPECT_NE(out.find("Phạm Thu Hà"), std::string::npos) << out;
    auto v = env.request("POST", "/api/v1/verify", portal, dir + "/signed.pdf");
    EXPECT_EQ(v.json()->getValue<std::string>("indication"), "TOTAL_PASSED") << v.body;
    // The SAD is spent.
    EXPECT_EQ(env.request("POST", path, portal, form, "application/pdf", "", "-H @" + dir + "/hdr ")
                  .status,
              400);
    // An administrator revokes the credential (the citizen asked at the office).
    EXPECT_EQ(post(env, "/api/v1/citizens/revoke", env.keys["admin"],
                   "{\"credentialID\":\"" + id + "\",\"reason\":\"cessationOfOperation\"}")
                  .status,
              200);
}

// A SAD expires (a service started with sadLifetimeSeconds = 1), and a citizen enrolled before
// a service starts signs through it (citizens are loaded at start).
TEST(Csc, ASadExpiresAndCitizensSurviveARestart) {
    auto& env = Env::get();
    const std::string portal = env.keys["portal"];
    const Enrolled citizen =
        enrolWithPin(env,
                     "{\"identityNumber\":\"027301009911\",\"fullName\":\"Đỗ Văn Quý\","
                     "\"province\":\"Bắc Ninh\",\"contact\":\"quy@example.vn\"}",
                     "640297");
    ASSERT_FALSE(citizen.id.empty());
    const std::string& id = citizen.id;
    const std::string& secret = citizen.totpSecret;

    const std::string conf = serveConf("csc-expiry");
    std::string text = readFile(conf);
    const auto at = text.find("sadLifetimeSeconds = 300");
    ASSERT_NE(at, std::string::npos);
    text.replace(at, 24, "sadLifetimeSeconds = 1");
    writeFile(conf, text);
    ServeProcess serve = startServe(conf);
    ASSERT_FALSE(serve.port.empty()) << readFile(serve.log);
    const std::string dir = tempDir("csc-expiry");
    writeFile(dir + "/auth", "Authorization: Bearer " + portal + "\n");
    auto call = [&](const std::string& path, const std::string& body, std::string* answer) {
        writeFile(dir + "/req.json", body);
        std::string code;
        run("curl -s --max-time 60 -o " + dir + "/resp -w '%{http_code}' --cacert " + env.dir +
                "/pki/root-ca.pem -H @" + dir + "/auth -H 'Content-Type: application/json' " +
                "--data-binary @" + dir + "/req.json https://127.0.0.1:" + serve.port + path,
            &code);
        *answer = readFile(dir + "/resp");
        return code;
    };
    const std::string hash = sha256("hết hạn");
    std::string answer;
    EXPECT_EQ(call("/csc/v2/credentials/authorize",
                   authorizeBody(id, "640297", oathCode(secret, 0), {hash}), &answer),
              "200")
        << answer;
    Poco::JSON::Parser parser;
    const std::string sad =
        parser.parse(answer).extract<Poco::JSON::Object::Ptr>()->getValue<std::string>("SAD");
    std::this_thread::sleep_for(std::chrono::milliseconds(2100));
    EXPECT_EQ(call("/csc/v2/signatures/signHash", signHashBody(id, sad, hash), &answer), "400");
    EXPECT_NE(answer.find("csc.sad_expired"), std::string::npos) << answer;
    ::kill(serve.pid, SIGTERM);
    int status = 0;
    ::waitpid(serve.pid, &status, 0);
}

}  // namespace
}  // namespace kyso::test
