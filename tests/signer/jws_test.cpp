// JWS seals (signer/jws.h): JCS against RFC 8785's examples, seals on the test token checked by
// our verifier and by Botan 2 (an implementation we did not write), and tampered seals refused.
#include "kyso/signer/jws.h"

#include <botan/base64.h>
#include <botan/pubkey.h>
#include <botan/x509cert.h>
#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/evp.h>

#include <chrono>
#include <regex>
#include <string>

#include "kyso/hsm/encoding.h"
#include "kyso/hsm/ossl_ptr.h"
#include "test_env.h"

namespace kyso::signer {
namespace {

using namespace std::chrono_literals;

// 2025-03-14T09:26:53Z
const auto kWhen = std::chrono::system_clock::time_point(1741944413s);

const std::string kReceipt = R"({
  "receiptId": "BL-2025-000123",
  "payer": {"name": "Nguyễn Văn An", "taxCode": "0101234567"},
  "amount": 1500000,
  "currency": "VND",
  "items": [{"code": "LPTB", "amount": 1500000}],
  "paid": true,
  "note": null
})";
// The same receipt, members in another order and other whitespace.
const std::string kReceiptReordered =
    R"({"note":null,"paid":true,"items":[{"amount":1500000,"code":"LPTB"}],"currency":"VND",)"
    R"("amount":1500000,"payer":{"taxCode":"0101234567","name":"Nguy\u1ec5n V\u0103n An"},)"
    R"("receiptId":"BL-2025-000123"})";

std::string jcs(const std::string& in) {
    auto r = canonicalJson(in);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().detail);
    return r.ok() ? *r : std::string();
}

std::string jcsError(const std::string& in) {
    auto r = canonicalJson(in);
    return r.ok() ? "accepted: " + *r : r.error().code;
}

// --- JCS -------------------------------------------------------------------------------------

// RFC 8785 §3.2.3, the sorting example: UTF-16 code unit order puts U+1F600 (D83D DE00) before
// U+FB33, which UTF-8 byte order or code point order would not.
TEST(JcsTest, SortsKeysByUtf16CodeUnitsAsRfc8785) {
    const std::string in = R"({
      "\u20ac": "Euro Sign",
      "\r": "Carriage Return",
      "\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\ud83d\ude00": "Emoji: Grinning Face",
      "\u0080": "Control",
      "\u00f6": "Latin Small Letter O With Diaeresis"
    })";
    const std::string expected =
        "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\xC2\x80\":\"Control\","
        "\"\xC3\xB6\":\"Latin Small Letter O With Diaeresis\",\"\xE2\x82\xAC\":\"Euro Sign\","
        "\"\xF0\x9F\x98\x80\":\"Emoji: Grinning Face\","
        "\"\xEF\xAC\xB3\":\"Hebrew Letter Dalet With Dagesh\"}";
    EXPECT_EQ(jcs(in), expected);
}

// RFC 8785 §3.2.2's example, without its "numbers" member (non-integers are refused here, see
// the next test); the expected output is the RFC's, minus that member.
TEST(JcsTest, EscapesStringsAndLiteralsAsRfc8785) {
    const std::string in = R"({
      "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
      "literals": [null, true, false]
    })";
    EXPECT_EQ(jcs(in),
              "{\"literals\":[null,true,false],\"string\":\"\xE2\x82\xAC$\\u000f\\nA'B\\\"\\\\\\\\"
              "\\\"/\"}");
}

TEST(JcsTest, RefusesTheRfcNumbersItDoesNotFormat) {
    EXPECT_EQ(jcsError(R"({"numbers":[333333333.33333329, 1E30, 4.50, 2e-3]})"),
              "jws.payload_invalid");
    EXPECT_EQ(jcsError("[1.0]"), "jws.payload_invalid");
    EXPECT_EQ(jcsError("[1e3]"), "jws.payload_invalid");
    EXPECT_EQ(jcsError("[9007199254740992]"), "jws.payload_invalid");
    EXPECT_EQ(jcs("[9007199254740991,-9007199254740991,-0,0,12]"),
              "[9007199254740991,-9007199254740991,0,0,12]");
}

TEST(JcsTest, CanonicalFormIsIndependentOfMemberOrderAndWhitespace) {
    EXPECT_EQ(jcs(kReceipt), jcs(kReceiptReordered));
    EXPECT_EQ(jcs(kReceipt),
              "{\"amount\":1500000,\"currency\":\"VND\",\"items\":[{\"amount\":1500000,\"code\":"
              "\"LPTB\"}],\"note\":null,\"paid\":true,\"payer\":{\"name\":\"Nguyễn Văn "
              "An\",\"taxCode\":\"0101234567\"},\"receiptId\":\"BL-2025-000123\"}");
    // Control characters other than the named ones are \u00xx in lower case; U+007F and
    // U+2028 are themselves.
    EXPECT_EQ(jcs(R"(["\u001f\u007f\u2028\b\f\t"])"), "[\"\\u001f\x7F\xE2\x80\xA8\\b\\f\\t\"]");
}

TEST(JcsTest, RefusesWhatIsNotStrictJson) {
    for (const std::string bad : {
             R"({"a":1,"a":2})",        // duplicate
             R"({"a":1,"\u0061":2})",   // duplicate once escapes are decoded
             "[\"\xC3\x28\"]",          // invalid UTF-8
             "[\"\xC0\xAF\"]",          // overlong
             "[\"\xED\xA0\x80\"]",      // a surrogate encoded in UTF-8
             "[\"\xF4\x90\x80\x80\"]",  // beyond U+10FFFF
             R"(["\ud800"])",           // lone high surrogate
             R"(["\udc00x"])",          // lone low surrogate
             R"(["\ud800\u0041"])",     // high surrogate without its low half
             "[1,]",
             "{\"a\":1,}",
             "[01]",
             "[+1]",
             "[NaN]",
             "[\"a\tb\"]",
             "'a'",
             "{\"a\" 1}",
             "[1] [2]",
             "",
             "[\"\\x\"]",
             "[tru]",
         }) {
        EXPECT_EQ(jcsError(bad), "jws.payload_invalid") << bad;
    }
    auto nested = [](int depth) {
        return std::string(static_cast<std::size_t>(depth), '[') +
               std::string(static_cast<std::size_t>(depth), ']');
    };
    EXPECT_EQ(jcs(nested(kMaxJsonDepth)), nested(kMaxJsonDepth));
    auto deep = canonicalJson(nested(kMaxJsonDepth + 1));
    ASSERT_FALSE(deep.ok());
    EXPECT_EQ(deep.error().code, "jws.payload_invalid");
    EXPECT_NE(deep.error().detail.find("deeper"), std::string::npos) << deep.error().detail;

    const std::string big = "[\"" + std::string(kMaxJsonBytes, 'x') + "\"]";
    auto tooBig = canonicalJson(big);
    ASSERT_FALSE(tooBig.ok());
    EXPECT_NE(tooBig.error().detail.find("larger"), std::string::npos) << tooBig.error().detail;
}

// --- helpers for the seals -----------------------------------------------------------------

std::string b64urlToStd(std::string s) {
    for (char& c : s) {
        c = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    while (s.size() % 4 != 0) {
        s += '=';
    }
    return s;
}

std::string b64urlDecode(const std::string& s) {
    const auto v = Botan::base64_decode(b64urlToStd(s));
    return std::string(v.begin(), v.end());
}

std::string b64urlEncode(const std::string& bytes) {
    std::string s =
        Botan::base64_encode(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    for (char& c : s) {
        c = c == '+' ? '-' : c == '/' ? '_' : c;
    }
    while (!s.empty() && s.back() == '=') {
        s.pop_back();
    }
    return s;
}

struct Parts {
    std::string header;  // base64url, as in the JWS
    std::string payload;
    std::string signature;
};

// Our seals are {"payload":"..","protected":"..","signature":".."}: read with a regex, not
// with the code under test.
Parts partsOf(const std::string& jws) {
    static const std::regex re(
        R"re(^\{"payload":"([A-Za-z0-9_-]*)","protected":"([A-Za-z0-9_-]+)","signature":"([A-Za-z0-9_-]+)"\}$)re");
    std::smatch m;
    EXPECT_TRUE(std::regex_match(jws, m, re)) << jws;
    if (m.empty()) {
        return {};
    }
    return Parts{m[2], m[1], m[3]};
}

std::string flattened(const Parts& p) {
    return "{\"payload\":\"" + p.payload + "\",\"protected\":\"" + p.header +
           "\",\"signature\":\"" + p.signature + "\"}";
}

std::string headerMember(const std::string& headerJson, const std::string& name) {
    const std::regex re("\"" + name + "\":\"([^\"]*)\"");
    std::smatch m;
    return std::regex_search(headerJson, m, re) ? std::string(m[1]) : std::string();
}

// Botan 2 checks the signature over ASCII(header "." payload) with the key of x5c[0].
bool botanVerifies(const std::string& jws) {
    const Parts p = partsOf(jws);
    const std::string header = b64urlDecode(p.header);
    std::smatch m;
    if (!std::regex_search(header, m, std::regex(R"re("x5c":\["([A-Za-z0-9+/=]+)")re"))) {
        ADD_FAILURE() << "no x5c in " << header;
        return false;
    }
    const Botan::secure_vector<uint8_t> der = Botan::base64_decode(std::string(m[1]));
    Botan::X509_Certificate cert(std::vector<uint8_t>(der.begin(), der.end()));
    std::unique_ptr<Botan::Public_Key> key = cert.load_subject_public_key();
    const std::string alg = headerMember(header, "alg");
    const std::string input = p.header + "." + p.payload;
    const std::string sig = b64urlDecode(p.signature);
    std::unique_ptr<Botan::PK_Verifier> v;
    if (alg == "RS256") {
        v = std::make_unique<Botan::PK_Verifier>(*key, "EMSA3(SHA-256)");
    } else if (alg == "PS256") {
        // RFC 7518 §3.5: MGF1 with SHA-256 and a 32-byte salt, which Botan then requires.
        v = std::make_unique<Botan::PK_Verifier>(*key, "EMSA4(SHA-256,MGF1,32)");
    } else if (alg == "ES256" || alg == "ES384") {
        v = std::make_unique<Botan::PK_Verifier>(
            *key, alg == "ES256" ? "EMSA1(SHA-256)" : "EMSA1(SHA-384)", Botan::IEEE_1363);
    } else {
        ADD_FAILURE() << "no Botan mapping for " << alg;
        return false;
    }
    return v->verify_message(reinterpret_cast<const uint8_t*>(input.data()), input.size(),
                             reinterpret_cast<const uint8_t*>(sig.data()), sig.size());
}

// A compact JWS over `headerJson` and `payload` signed RS256 with `c`, for headers sealJws
// would never write.
std::string signCompact(const hsm::Credential& c, const std::string& headerJson,
                        const std::string& payload) {
    const std::string input = b64urlEncode(headerJson) + "." + b64urlEncode(payload);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    ::EVP_Digest(input.data(), input.size(), md, &n, ::EVP_sha256(), nullptr);
    auto sig = c.signDigest(std::string(reinterpret_cast<char*>(md), n));
    EXPECT_TRUE(sig.ok());
    return input + "." + b64urlEncode(sig.ok() ? *sig : std::string());
}

std::string std64(const std::string& der) {
    return Botan::base64_encode(reinterpret_cast<const uint8_t*>(der.data()), der.size());
}

std::string thumbprint(const std::string& der) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    ::EVP_Digest(der.data(), der.size(), md, &n, ::EVP_sha256(), nullptr);
    return b64urlEncode(std::string(reinterpret_cast<char*>(md), n));
}

class JwsTest : public ::testing::Test {
  protected:
    hsm::Token& token = test::openTestToken();

    hsm::Credential rsa() { return test::makeCredential(token, "jws-rsa", hsm::KeyType::Rsa); }
    hsm::Credential pss() {
        hsm::Credential c = rsa();
        c.scheme = hsm::SignScheme::RsaPss;
        return c;
    }
    hsm::Credential ec() { return test::makeCredential(token, "jws-ec", hsm::KeyType::Ec); }
    hsm::Credential ec384() {
        return test::makeCredential(token, "jws-ec384", hsm::KeyType::Ec, 2048, "P-384");
    }

    std::string seal(const hsm::Credential& c, const std::string& json = kReceipt) {
        auto r = sealJws(c, json, kWhen);
        EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().code + ": " + r.error().detail);
        return r.ok() ? *r : std::string();
    }

    JwsFacts verify(const std::string& jws) {
        auto r = verifyJws(jws);
        EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().code + ": " + r.error().detail);
        return r.ok() ? *r : JwsFacts{};
    }
};

// --- seals -----------------------------------------------------------------------------------

TEST_F(JwsTest, SealsWithEachSchemeAndBothVerifiersAccept) {
    struct Case {
        hsm::Credential cred;
        const char* alg;
    };
    for (const Case& k : {Case{rsa(), "RS256"}, Case{pss(), "PS256"}, Case{ec(), "ES256"},
                          Case{ec384(), "ES384"}}) {
        SCOPED_TRACE(k.alg);
        const std::string jws = seal(k.cred);
        const JwsFacts f = verify(jws);
        EXPECT_EQ(f.alg, k.alg);
        EXPECT_TRUE(f.signatureValid);
        EXPECT_TRUE(f.hasSigningCertificateReference);
        EXPECT_TRUE(f.signingCertificateBound);
        EXPECT_TRUE(f.valid()) << (f.errors.empty() ? "" : f.errors.front());
        EXPECT_EQ(f.certificateDer, k.cred.certificateDer);
        EXPECT_EQ(f.chainDer, k.cred.chainDer);
        EXPECT_EQ(f.signingTimeText, "2025-03-14T09:26:53Z");
        EXPECT_EQ(f.signingTime, std::chrono::system_clock::to_time_t(kWhen));
        EXPECT_EQ(f.payload, jcs(kReceipt));
        EXPECT_NE(f.signerSubject.find("jws-"), std::string::npos) << f.signerSubject;
        EXPECT_TRUE(botanVerifies(jws));
        if (k.cred.key.type == hsm::KeyType::Ec) {
            EXPECT_EQ(b64urlDecode(partsOf(jws).signature).size(),
                      k.cred.key.curve == "P-256" ? 64u : 96u);
        }
    }
}

TEST_F(JwsTest, HeaderIsCanonicalJadesBaselineB) {
    const hsm::Credential c = rsa();
    const std::string header = b64urlDecode(partsOf(seal(c)).header);
    EXPECT_EQ(jcs(header), header);
    std::string x5c = "[\"" + std64(c.certificateDer) + "\"";
    for (const auto& der : c.chainDer) {
        x5c += ",\"" + std64(der) + "\"";
    }
    x5c += "]";
    const std::string kid = headerMember(header, "kid");
    EXPECT_EQ(header, "{\"alg\":\"RS256\",\"crit\":[\"sigT\"],\"cty\":\"json\",\"kid\":\"" + kid +
                          "\",\"sigT\":\"2025-03-14T09:26:53Z\",\"x5c\":" + x5c +
                          ",\"x5t#S256\":\"" + thumbprint(c.certificateDer) + "\"}");

    // kid is the DER IssuerSerial: read back by the openssl CLI, it holds the issuer as a
    // directoryName ([4]) and the certificate's serial number.
    const Botan::secure_vector<uint8_t> kidDer = Botan::base64_decode(kid);
    const std::string dir = test::tempDir("jws-kid");
    test::writeFile(dir + "/kid.der", std::string(kidDer.begin(), kidDer.end()));
    std::string out;
    ASSERT_EQ(
        test::run("openssl asn1parse -inform DER -in " + test::shellQuote(dir + "/kid.der"), &out),
        0)
        << out;
    EXPECT_NE(out.find("cont [ 4 ]"), std::string::npos) << out;
    auto cert = x509FromDer(c.certificateDer);
    OsslPtr<BIGNUM> serial(::ASN1_INTEGER_to_BN(::X509_get0_serialNumber(cert.get()), nullptr));
    char* hex = ::BN_bn2hex(serial.get());
    EXPECT_NE(out.find(std::string("INTEGER           :") + hex), std::string::npos) << out;
    ::OPENSSL_free(hex);
}

TEST_F(JwsTest, SameReceiptInAnotherOrderGivesTheSameBytes) {
    // RSA PKCS#1 v1.5 is deterministic: the whole JWS is identical.
    EXPECT_EQ(seal(rsa(), kReceipt), seal(rsa(), kReceiptReordered));
    // ECDSA is randomized: header and payload identical, signatures not.
    const Parts a = partsOf(seal(ec(), kReceipt));
    const Parts b = partsOf(seal(ec(), kReceiptReordered));
    EXPECT_EQ(a.header, b.header);
    EXPECT_EQ(a.payload, b.payload);
    EXPECT_NE(a.signature, b.signature);
}

TEST_F(JwsTest, AcceptsTheCompactSerialization) {
    const Parts p = partsOf(seal(ec()));
    const JwsFacts f = verify(p.header + "." + p.payload + "." + p.signature);
    EXPECT_TRUE(f.valid());
}

TEST_F(JwsTest, RefusesPayloadThatIsNotStrictJson) {
    auto r = sealJws(rsa(), R"({"amount":1500000,"amount":1})", kWhen);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "jws.payload_invalid");
}

// --- tampering -------------------------------------------------------------------------------

TEST_F(JwsTest, ChangedAmountBreaksTheSignatureForBothVerifiers) {
    for (const hsm::Credential& c : {rsa(), pss(), ec()}) {
        Parts p = partsOf(seal(c));
        std::string payload = b64urlDecode(p.payload);
        const auto at = payload.find("1500000");
        ASSERT_NE(at, std::string::npos);
        payload.replace(at, 7, "1500001");
        p.payload = b64urlEncode(payload);
        const std::string tampered = flattened(p);
        const JwsFacts f = verify(tampered);
        EXPECT_FALSE(f.signatureValid);
        EXPECT_FALSE(f.valid());
        EXPECT_EQ(f.payload, payload);
        EXPECT_FALSE(botanVerifies(tampered));
    }
}

TEST_F(JwsTest, ChangedSignatureByteIsAFactNotAnError) {
    Parts p = partsOf(seal(ec()));
    std::string sig = b64urlDecode(p.signature);
    sig[5] = static_cast<char>(sig[5] ^ 1);
    p.signature = b64urlEncode(sig);
    const JwsFacts f = verify(flattened(p));
    EXPECT_FALSE(f.signatureValid);
    EXPECT_FALSE(f.errors.empty());
    EXPECT_FALSE(botanVerifies(flattened(p)));
}

TEST_F(JwsTest, RefusesAlgNoneAndUnknownAlgs) {
    const std::string payload = b64urlEncode(jcs(kReceipt));
    for (const std::string alg : {"none", "HS256", "EdDSA", "ES512", "RS1"}) {
        auto r = verifyJws(b64urlEncode("{\"alg\":\"" + alg + "\"}") + "." + payload + ".");
        ASSERT_FALSE(r.ok()) << alg;
        EXPECT_EQ(r.error().code, "jws.alg_unsupported") << alg;
    }
}

TEST_F(JwsTest, RefusesUnknownCriticalHeaders) {
    const hsm::Credential c = rsa();
    const std::string x5c = "[\"" + std64(c.certificateDer) + "\"]";
    const std::string payload = jcs(kReceipt);
    // Correctly signed, so only crit can be the reason.
    auto r = verifyJws(signCompact(c,
                                   "{\"alg\":\"RS256\",\"crit\":[\"sigT\",\"exp\"],\"exp\":1,"
                                   "\"sigT\":\"2025-03-14T09:26:53Z\",\"x5c\":" +
                                       x5c + "}",
                                   payload));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "jws.crit_unsupported");
    // crit may not list RFC 7515 parameters, nor parameters the header lacks.
    for (const std::string crit : {"[\"alg\"]", "[\"sigT\"]", "[]", "\"sigT\""}) {
        auto bad = verifyJws(signCompact(
            c, "{\"alg\":\"RS256\",\"crit\":" + crit + ",\"x5c\":" + x5c + "}", payload));
        ASSERT_FALSE(bad.ok()) << crit;
        EXPECT_EQ(bad.error().code, "jws.invalid") << crit;
    }
    // The control: the same construction with understood crit verifies.
    const JwsFacts ok = verify(signCompact(
        c,
        "{\"alg\":\"RS256\",\"crit\":[\"sigT\"],\"sigT\":\"2025-03-14T09:26:53Z\",\"x5c\":" + x5c +
            ",\"x5t#S256\":\"" + thumbprint(c.certificateDer) + "\"}",
        payload));
    EXPECT_TRUE(ok.valid()) << (ok.errors.empty() ? "" : ok.errors.front());
}

TEST_F(JwsTest, MismatchingCertificateThumbprintIsRefused) {
    const hsm::Credential c = rsa();
    const std::string caDer = test::testPki(token).ca.certificateDer;
    // A correct signature by the key of x5c[0], but the header names another certificate.
    const JwsFacts f =
        verify(signCompact(c,
                           "{\"alg\":\"RS256\",\"x5c\":[\"" + std64(c.certificateDer) +
                               "\"],\"x5t#S256\":\"" + thumbprint(caDer) + "\"}",
                           jcs(kReceipt)));
    EXPECT_TRUE(f.signatureValid);
    EXPECT_TRUE(f.hasSigningCertificateReference);
    EXPECT_FALSE(f.signingCertificateBound);
    EXPECT_FALSE(f.valid());
    ASSERT_FALSE(f.errors.empty());
    EXPECT_NE(f.errors.front().find("x5t#S256"), std::string::npos);
}

TEST_F(JwsTest, SignatureFromAnotherKeyIsInvalid) {
    // x5c[0] swapped for another credential's certificate (and its thumbprint): the RSA
    // signature no longer verifies with the key it names.
    const hsm::Credential other = test::makeCredential(token, "jws-rsa-other", hsm::KeyType::Rsa);
    const JwsFacts f =
        verify(signCompact(rsa(),
                           "{\"alg\":\"RS256\",\"x5c\":[\"" + std64(other.certificateDer) +
                               "\"],\"x5t#S256\":\"" + thumbprint(other.certificateDer) + "\"}",
                           jcs(kReceipt)));
    EXPECT_FALSE(f.signatureValid);
    EXPECT_TRUE(f.signingCertificateBound);
}

TEST_F(JwsTest, InputThatIsNotAJwsIsAnError) {
    const Parts p = partsOf(seal(rsa()));
    for (const std::string& bad : {
             std::string("not a jws"),
             std::string("a.b"),
             std::string("a.b.c.d"),
             "{\"payload\":\"" + p.payload + "\",\"signature\":\"" + p.signature + "\"}",
             std::string("{\"signatures\":[]}"),
             p.header + "=." + p.payload + "." + p.signature,  // padding is not base64url
             b64urlEncode("[1]") + "." + p.payload + "." + p.signature,
             b64urlEncode("{\"typ\":\"JWT\"}") + "." + p.payload + "." + p.signature,
             b64urlEncode("{\"alg\":\"RS256\",\"alg\":\"none\"}") + "." + p.payload + ".",
             "{\"payload\":\"" + p.payload + "\",\"protected\":\"" + p.header +
                 "\",\"header\":{\"alg\":\"RS256\"},\"signature\":\"" + p.signature + "\"}",
         }) {
        auto r = verifyJws(bad);
        ASSERT_FALSE(r.ok()) << bad;
        EXPECT_EQ(r.error().code, "jws.invalid") << bad;
    }
}

TEST_F(JwsTest, MissingCertificateIsAFact) {
    const JwsFacts f = verify(signCompact(rsa(), "{\"alg\":\"RS256\"}", jcs(kReceipt)));
    EXPECT_FALSE(f.signatureValid);
    EXPECT_TRUE(f.certificateDer.empty());
    EXPECT_FALSE(f.errors.empty());
}

}  // namespace
}  // namespace kyso::signer
