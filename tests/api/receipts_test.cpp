// Payment receipts over HTTPS (issue 8): sealed by the agency's receipt-seal credential as a
// JWS, numbered without gaps, the original returned for a repeated request, field-level errors,
// the QR code read back by zbarimg, and a changed amount detected.
#include <botan/base64.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <regex>
#include <set>

#include "kyso/signer/jws.h"
#include "rest_env.h"

namespace kyso::test {
namespace {

std::string receiptBody(const std::string& tx, long long amount = 150000) {
    return R"({"payer":{"name":"Nguyễn Văn An","identityNumber":"001203004567"},)"
           R"("procedureCode":"2.000889","items":[{"description":"Lệ phí hộ tịch","amount":)" +
           std::to_string(amount) + R"(}],"total":)" + std::to_string(amount) +
           R"(,"currency":"VND","payment":{"channel":"vnpay","transactionId":")" + tx +
           R"(","paidAt":"2026-11-25T09:30:00+07:00"}})";
}

// Unpadded base64url (RFC 4648 §5), as JWS uses it.
std::string base64url(const std::string& bytes) {
    std::string b64 =
        Botan::base64_encode(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    for (char& c : b64) {
        c = c == '+' ? '-' : c == '/' ? '_' : c;
    }
    while (!b64.empty() && b64.back() == '=') {
        b64.pop_back();
    }
    return b64;
}

Response postReceipt(Env& env, const std::string& body, const std::string& idem = "") {
    const std::string dir = tempDir("receipt-post");
    writeFile(dir + "/b.json", body);
    std::string args;
    if (!idem.empty()) {
        writeFile(dir + "/h", "Idempotency-Key: " + idem + "\n");
        args = "-H @" + dir + "/h ";
    }
    return env.request("POST", "/api/v1/receipts", env.keys["portal"], dir + "/b.json",
                       "application/json", "", args);
}

TEST(Receipts, SealedNumberedAndVerifiable) {
    auto& env = Env::get();
    auto r = postReceipt(env, receiptBody("VNP-1001"), "idem-1001");
    ASSERT_EQ(r.status, 201) << r.body;
    auto j = r.json();
    const std::string id = j->getValue<std::string>("id");
    const auto number = j->getValue<Poco::UInt64>("number");
    EXPECT_GE(number, 1u);
    // The JWS verifies, names the receipt-seal certificate, and carries the number.
    std::ostringstream sealed;
    j->getObject("sealed")->stringify(sealed);
    auto facts = signer::verifyJws(sealed.str());
    ASSERT_TRUE(facts.ok()) << facts.error().detail;
    EXPECT_TRUE(facts->valid());
    EXPECT_NE(facts->signerSubject.find("Biên lai điện tử"), std::string::npos)
        << facts->signerSubject;
    EXPECT_NE(facts->payload.find("\"number\":" + std::to_string(number)), std::string::npos);
    EXPECT_NE(facts->payload.find("Nguyễn Văn An"), std::string::npos);
    // The signature also verifies with Botan over the signing input.
    const auto payloadB64 = j->getObject("sealed")->getValue<std::string>("payload");

    // The same Idempotency-Key, or the same payment: the original, never a second number.
    auto again = postReceipt(env, receiptBody("VNP-1001"), "idem-1001");
    ASSERT_EQ(again.status, 200) << again.body;
    EXPECT_EQ(again.header("Kyso-Replayed"), "true");
    EXPECT_EQ(again.json()->getValue<std::string>("id"), id);
    auto samePayment = postReceipt(env, receiptBody("VNP-1001"));
    EXPECT_EQ(samePayment.json()->getValue<std::string>("id"), id);
    auto next = postReceipt(env, receiptBody("VNP-1002"));
    ASSERT_EQ(next.status, 201);
    EXPECT_EQ(next.json()->getValue<Poco::UInt64>("number"), number + 1);

    // GET it back, and its QR code: the verification URL with the digest.
    auto got = env.request("GET", "/api/v1/receipts/" + id);
    ASSERT_EQ(got.status, 200) << got.body;
    EXPECT_EQ(got.json()->getValue<std::string>("status"), "valid");
    const std::string dir = tempDir("receipt-qr");
    ASSERT_EQ(env.request("GET", "/api/v1/receipts/" + id + "/qr.png", "", "", "", dir + "/qr.png")
                  .status,
              200);
    std::string qr;
    ASSERT_EQ(run("zbarimg --quiet --raw " + dir + "/qr.png 2>/dev/null", &qr), 0);
    qr = qr.substr(0, qr.find_last_not_of("\r\n") + 1);
    qr = qr.substr(qr.find_last_of('\n') + 1);
    EXPECT_EQ(qr, j->getValue<std::string>("verifyUrl") +
                      "#sha256=" + j->getValue<std::string>("digest"));
    EXPECT_EQ(env.request("GET", "/api/v1/receipts/rc-nothere").status, 404);

    // A changed amount in the payload: the signature fails.
    std::string payload = facts->payload;
    const auto at = payload.find("150000");
    ASSERT_NE(at, std::string::npos);
    payload.replace(at, 6, "950000");
    const std::string b64 = base64url(payload);
    std::string forged = sealed.str();
    forged.replace(forged.find(payloadB64), payloadB64.size(), b64);
    auto forgedFacts = signer::verifyJws(forged);
    ASSERT_TRUE(forgedFacts.ok());
    EXPECT_FALSE(forgedFacts->signatureValid);
}

// POST /api/v1/verify with a sealed receipt: the report of any signature (path to the demo
// root, OCSP from the demo CA), plus whether this service issued it and it stands.
TEST(Receipts, VerifyReportsTheSealAndTheReceiptsStatus) {
    auto& env = Env::get();
    auto r = postReceipt(env, receiptBody("VNP-3001"));
    ASSERT_EQ(r.status, 201) << r.body;
    const std::string id = r.json()->getValue<std::string>("id");
    std::ostringstream sealed;
    r.json()->getObject("sealed")->stringify(sealed);
    const std::string dir = tempDir("receipt-verify");
    writeFile(dir + "/r.json", sealed.str());
    auto v = env.request("POST", "/api/v1/verify", env.keys["portal"], dir + "/r.json",
                         "application/jose+json");
    ASSERT_EQ(v.status, 200) << v.body;
    auto j = v.json();
    EXPECT_EQ(j->getValue<std::string>("indication"), "TOTAL_PASSED") << v.body;
    auto sig = j->getArray("signatures")->getObject(0);
    EXPECT_EQ(sig->getValue<std::string>("format"), "JAdES-BASELINE-B");
    EXPECT_EQ(sig->getObject("revocation")->getValue<std::string>("status"), "GOOD") << v.body;
    EXPECT_TRUE(j->getObject("receipt")->getValue<bool>("known"));
    EXPECT_EQ(j->getObject("receipt")->getValue<std::string>("status"), "valid");

    // Cancelled (a refund): the number stays, the seal still verifies, the receipt does not
    // stand.
    writeFile(dir + "/cancel.json", "{\"id\":\"" + id + "\"}");
    EXPECT_EQ(env.request("POST", "/api/v1/receipts/cancel", env.keys["officer-1"],
                          dir + "/cancel.json", "application/json")
                  .status,
              403);
    auto c = env.request("POST", "/api/v1/receipts/cancel", env.keys["portal"],
                         dir + "/cancel.json", "application/json");
    ASSERT_EQ(c.status, 200) << c.body;
    EXPECT_EQ(c.json()->getValue<std::string>("status"), "cancelled");
    EXPECT_EQ(env.request("POST", "/api/v1/receipts/cancel", env.keys["portal"],
                          dir + "/cancel.json", "application/json")
                  .status,
              409);
    v = env.request("POST", "/api/v1/verify", env.keys["portal"], dir + "/r.json",
                    "application/jose+json");
    EXPECT_EQ(v.json()->getObject("receipt")->getValue<std::string>("status"), "cancelled");
    EXPECT_EQ(env.request("GET", "/api/v1/receipts/" + id).json()->getValue<std::string>("status"),
              "cancelled");

    // A changed amount: the seal fails, and the receipt is not the one issued.
    auto facts = signer::verifyJws(sealed.str());
    ASSERT_TRUE(facts.ok());
    std::string payload = facts->payload;
    payload.replace(payload.find("150000"), 6, "950000");
    const std::string b64 = base64url(payload);
    const std::string payloadB64 = r.json()->getObject("sealed")->getValue<std::string>("payload");
    std::string forged = sealed.str();
    forged.replace(forged.find(payloadB64), payloadB64.size(), b64);
    writeFile(dir + "/forged.json", forged);
    v = env.request("POST", "/api/v1/verify", env.keys["portal"], dir + "/forged.json",
                    "application/jose+json");
    ASSERT_EQ(v.status, 200) << v.body;
    EXPECT_EQ(v.json()->getValue<std::string>("indication"), "TOTAL_FAILED") << v.body;
    // Not a JWS at all: a clear error.
    writeFile(dir + "/junk.json", "{\"payload\":1}");
    EXPECT_EQ(env.request("POST", "/api/v1/verify", env.keys["portal"], dir + "/junk.json",
                          "application/jose+json")
                  .status,
              422);
}

// An XML receipt: sealed with XAdES-B (xmlsec1 --verify accepts it), numbered like the JSON
// ones, the same document returns the original, and /api/v1/verify reports it.
TEST(Receipts, XmlReceiptsAreSealedWithXadesAndVerify) {
    auto& env = Env::get();
    const std::string dir = tempDir("receipt-xml");
    writeFile(dir + "/in.xml",
              "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<BienLai><NguoiNop>Nguyễn Văn "
              "An</NguoiNop><SoTien>150000</SoTien><MaGiaoDich>XML-1</MaGiaoDich></BienLai>\n");
    auto r = env.request("POST", "/api/v1/receipts", env.keys["portal"], dir + "/in.xml",
                         "application/xml");
    ASSERT_EQ(r.status, 201) << r.body;
    const std::string sealed = r.json()->getValue<std::string>("sealed");
    const auto number = r.json()->getValue<Poco::UInt64>("number");
    EXPECT_NE(sealed.find("number=\"" + std::to_string(number) + "\""), std::string::npos)
        << sealed;
    writeFile(dir + "/sealed.xml", sealed);
    writeFile(dir + "/chain.pem",
              readFile(env.dir + "/pki/root-ca.pem") + readFile(env.dir + "/pki/issuing-ca.pem"));
    std::string out;
    EXPECT_EQ(
        run("xmlsec1 --verify --trusted-pem " + dir +
                "/chain.pem --id-attr:Id 'http://uri.etsi.org/01903/v1.3.2#:SignedProperties' " +
                dir + "/sealed.xml 2>&1",
            &out),
        0)
        << out;
    EXPECT_NE(out.find("OK"), std::string::npos) << out;
    // The same document again: the original.
    auto again = env.request("POST", "/api/v1/receipts", env.keys["portal"], dir + "/in.xml",
                             "application/xml");
    EXPECT_EQ(again.status, 200);
    EXPECT_EQ(again.json()->getValue<Poco::UInt64>("number"), number);
    // Verified as a receipt: passed and known; the amount changed: failed.
    auto v = env.request("POST", "/api/v1/verify", env.keys["portal"], dir + "/sealed.xml",
                         "application/xml");
    ASSERT_EQ(v.status, 200) << v.body;
    EXPECT_EQ(v.json()->getValue<std::string>("indication"), "TOTAL_PASSED") << v.body;
    EXPECT_EQ(v.json()->getArray("signatures")->getObject(0)->getValue<std::string>("format"),
              "XAdES-BASELINE-B");
    EXPECT_TRUE(v.json()->getObject("receipt")->getValue<bool>("known"));
    std::string forged = sealed;
    forged.replace(forged.find("150000"), 6, "950000");
    writeFile(dir + "/forged.xml", forged);
    v = env.request("POST", "/api/v1/verify", env.keys["portal"], dir + "/forged.xml",
                    "application/xml");
    EXPECT_EQ(v.json()->getValue<std::string>("indication"), "TOTAL_FAILED") << v.body;
    EXPECT_FALSE(v.json()->getObject("receipt")->getValue<bool>("known"));
    EXPECT_NE(
        run("xmlsec1 --verify --trusted-pem " + dir +
                "/chain.pem --id-attr:Id 'http://uri.etsi.org/01903/v1.3.2#:SignedProperties' " +
                dir + "/forged.xml 2>&1",
            &out),
        0);
    // An XXE attempt: refused, nothing read.
    writeFile(dir + "/xxe.xml",
              "<?xml version=\"1.0\"?><!DOCTYPE a [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
              "<a>&x;</a>");
    auto xxe = env.request("POST", "/api/v1/receipts", env.keys["portal"], dir + "/xxe.xml",
                           "application/xml");
    EXPECT_EQ(xxe.status, 422) << xxe.body;
    EXPECT_EQ(xxe.body.find("root:"), std::string::npos);
}

TEST(Receipts, BadReceiptsNameTheField) {
    auto& env = Env::get();
    auto r = postReceipt(env, receiptBody("VNP-2001", -5));
    EXPECT_EQ(r.status, 422) << r.body;
    auto j = r.json();
    EXPECT_EQ(j->getValue<std::string>("code"), "receipt.invalid");
    auto errors = j->getArray("errors");
    ASSERT_GE(errors->size(), 1u);
    EXPECT_EQ(errors->getObject(0)->getValue<std::string>("field"), "/items/0/amount");
    std::string unknown = receiptBody("VNP-2002");
    unknown.insert(1, R"("discount":1,)");
    r = postReceipt(env, unknown);
    EXPECT_EQ(r.status, 422);
    EXPECT_NE(r.body.find("/discount"), std::string::npos) << r.body;
    // A huge body: refused before it is read.
    const std::string dir = tempDir("receipt-huge");
    writeFile(dir + "/big.json", std::string(200000, ' ') + receiptBody("VNP-2003"));
    auto big = env.request("POST", "/api/v1/receipts", env.keys["portal"], dir + "/big.json",
                           "application/json");
    EXPECT_EQ(big.status, 413);
    // Only a portal has receipts sealed.
    writeFile(dir + "/ok.json", receiptBody("VNP-2004"));
    EXPECT_EQ(env.request("POST", "/api/v1/receipts", env.keys["officer-1"], dir + "/ok.json",
                          "application/json")
                  .status,
              403);
}

// 200 requests, 8 at a time, each sent twice with its Idempotency-Key: 200 receipts with
// consecutive numbers, none twice.
TEST(Receipts, ConcurrentRequestsGetConsecutiveNumbers) {
    auto& env = Env::get();
    const std::string dir = tempDir("receipt-concurrent");
    writeFile(dir + "/auth", "Authorization: Bearer " + env.keys["portal"] + "\n");
    std::string script =
        "for i in $(seq 1 200); do echo $i; echo $i; done | xargs -P 8 -I{} sh -c '"
        "curl -s "
        "--max-time 60 --cacert " +
        env.dir + "/pki/root-ca.pem -H @" + dir +
        "/auth -H \"Idempotency-Key: conc-{}\" -H \"Content-Type: "
        "application/json\" --data-binary @" +
        dir + "/body-{}.json " + env.url("/api/v1/receipts") + " -o " + dir + "/out-{}-$$.json'";
    for (int i = 1; i <= 200; ++i) {
        writeFile(dir + "/body-" + std::to_string(i) + ".json",
                  receiptBody("CONC-" + std::to_string(i)));
    }
    ASSERT_EQ(run(script), 0);
    std::map<std::string, std::set<std::string>> idsByRequest;
    std::set<Poco::UInt64> numbers;
    std::set<std::string> ids;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
        const std::string name = e.path().filename().string();
        if (name.rfind("out-", 0) != 0) {
            continue;
        }
        Poco::JSON::Parser p;
        auto o = p.parse(readFile(e.path().string())).extract<Poco::JSON::Object::Ptr>();
        ids.insert(o->getValue<std::string>("id"));
        numbers.insert(o->getValue<Poco::UInt64>("number"));
        idsByRequest[name.substr(4, name.find('-', 4) - 4)].insert(o->getValue<std::string>("id"));
    }
    EXPECT_EQ(ids.size(), 200u);
    EXPECT_EQ(numbers.size(), 200u);
    EXPECT_EQ(*numbers.rbegin() - *numbers.begin(), 199u) << "a gap in the numbers";
    for (const auto& [req, set] : idsByRequest) {
        EXPECT_EQ(set.size(), 1u) << "request " << req << " got two receipts";
    }
}

}  // namespace
}  // namespace kyso::test
