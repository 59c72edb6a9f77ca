// XML seals (XAdES B-B): every sealed receipt is checked by the xmlsec1 command-line tool against
// the test CA, and by our own verifyXml; tampering with the receipt or with the signed XAdES
// properties must be caught by both. Hostile input (DOCTYPE / external entities) is refused
// without anything being read.
#include "kyso/signer/xades.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <future>

#include "test_env.h"

namespace kyso::test {
namespace {

using namespace std::chrono_literals;
using signer::sealXml;
using signer::verifyXml;

const hsm::Credential& credential(hsm::KeyType type) {
    static hsm::Credential rsa = makeCredential(openTestToken(), "xades-rsa", hsm::KeyType::Rsa);
    static hsm::Credential ec = makeCredential(openTestToken(), "xades-ec", hsm::KeyType::Ec);
    return type == hsm::KeyType::Rsa ? rsa : ec;
}

// 2024-05-01T08:30:00Z.
const std::chrono::system_clock::time_point kWhen =
    std::chrono::system_clock::from_time_t(1714552200);

// A receipt written the way libxml2 serializes (declaration, double quotes, a final newline), so
// the sealed output must start with it byte for byte.
const std::string kReceipt =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<BienLai xmlns=\"urn:kyso:bien-lai\" SoBienLai=\"BL-2024-000123\">\n"
    "  <!-- biên lai thu phí, lệ phí -->\n"
    "  <NguoiNop>Nguyễn Văn An</NguoiNop>\n"
    "  <DiaChi>Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội</DiaChi>\n"
    "  <NoiDung>Lệ phí cấp giấy phép lái xe</NoiDung>\n"
    "  <SoTien DonVi=\"VND\">150000</SoTien>\n"
    "  <NgayThu>2024-05-01</NgayThu>\n"
    "</BienLai>\n";

struct Xmlsec1 {
    int status = -1;
    std::string output;
    bool ok() const { return status == 0 && output.find("OK") != std::string::npos; }
};

// xmlsec1's own verdict, with the chain checked against the test CA. --id-attr makes the
// SignedProperties Id resolvable for the second Reference.
Xmlsec1 xmlsec1Verify(const std::string& xml) {
    const std::string dir = tempDir("xades");
    const std::string file = dir + "/sealed.xml";
    writeFile(file, xml);
    Xmlsec1 r;
    r.status =
        run("xmlsec1 --verify --trusted-pem " + shellQuote(testPki(openTestToken()).caPemFile) +
                " --id-attr:Id 'http://uri.etsi.org/01903/v1.3.2#:SignedProperties' " +
                shellQuote(file) + " 2>&1",
            &r.output);
    return r;
}

std::string replaceOnce(std::string s, const std::string& from, const std::string& to) {
    const auto pos = s.find(from);
    EXPECT_NE(pos, std::string::npos) << from;
    if (pos != std::string::npos) {
        s.replace(pos, from.size(), to);
    }
    return s;
}

class XadesSeal : public ::testing::TestWithParam<hsm::KeyType> {};

INSTANTIATE_TEST_SUITE_P(Keys, XadesSeal, ::testing::Values(hsm::KeyType::Rsa, hsm::KeyType::Ec),
                         [](const auto& info) {
                             return info.param == hsm::KeyType::Rsa ? std::string("Rsa")
                                                                    : std::string("Ec");
                         });

TEST_P(XadesSeal, Xmlsec1AndVerifyXmlAcceptTheSeal) {
    const hsm::Credential& cred = credential(GetParam());
    auto sealed = sealXml(cred, kReceipt, kWhen);
    ASSERT_TRUE(sealed.ok()) << sealed.error().code << ": " << sealed.error().detail;

    const Xmlsec1 tool = xmlsec1Verify(*sealed);
    EXPECT_TRUE(tool.ok()) << tool.output << "\n" << *sealed;

    auto facts = verifyXml(*sealed);
    ASSERT_TRUE(facts.ok()) << facts.error().detail;
    EXPECT_TRUE(facts->signatureValid) << facts->failure;
    EXPECT_TRUE(facts->signedPropertiesSigned);
    EXPECT_TRUE(facts->signingCertificateMatches);
    EXPECT_TRUE(facts->failure.empty()) << facts->failure;
    EXPECT_EQ(facts->certificateDer, cred.certificateDer);
    EXPECT_EQ(facts->chainDer, cred.chainDer);
    ASSERT_TRUE(facts->signingTime.has_value());
    EXPECT_EQ(*facts->signingTime, kWhen);
    EXPECT_EQ(facts->signatureMethod, GetParam() == hsm::KeyType::Rsa
                                          ? "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
                                          : "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256");
}

TEST_P(XadesSeal, SignatureIsTheLastChildAndTheReceiptIsAPrefix) {
    auto sealed = sealXml(credential(GetParam()), kReceipt, kWhen);
    ASSERT_TRUE(sealed.ok()) << sealed.error().detail;
    const std::string endTag = "</BienLai>\n";
    const std::string before = kReceipt.substr(0, kReceipt.size() - endTag.size());
    // Everything before the Signature is the input, byte for byte ...
    ASSERT_EQ(sealed->compare(0, before.size(), before), 0) << *sealed;
    EXPECT_EQ(sealed->compare(before.size(), 13, "<ds:Signature"), 0) << *sealed;
    // ... and after it comes only the root's end tag: the Signature is the root's last child.
    const std::string tail = "</ds:Signature>" + endTag;
    ASSERT_GE(sealed->size(), tail.size());
    EXPECT_EQ(sealed->substr(sealed->size() - tail.size()), tail);
    EXPECT_EQ(sealed->find("<ds:Signature "), sealed->rfind("<ds:Signature "));
    // The XAdES B-B pieces are where EN 319 132-1 puts them.
    for (const char* piece : {"Type=\"http://uri.etsi.org/01903#SignedProperties\"",
                              "<xades:QualifyingProperties xmlns:xades=\"http://uri.etsi.org/01903/"
                              "v1.3.2#\" Target=\"#kyso-sig-",
                              "<xades:SigningTime>2024-05-01T08:30:00Z</xades:SigningTime>",
                              "<xades:SigningCertificateV2>", "<xades:IssuerSerialV2>",
                              "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
                              "http://www.w3.org/2001/10/xml-exc-c14n#"}) {
        EXPECT_NE(sealed->find(piece), std::string::npos) << piece;
    }
}

TEST_P(XadesSeal, ChangedAmountIsCaught) {
    auto sealed = sealXml(credential(GetParam()), kReceipt, kWhen);
    ASSERT_TRUE(sealed.ok()) << sealed.error().detail;
    const std::string tampered = replaceOnce(*sealed, ">150000<", ">950000<");

    const Xmlsec1 tool = xmlsec1Verify(tampered);
    EXPECT_FALSE(tool.ok()) << tool.output;
    auto facts = verifyXml(tampered);
    ASSERT_TRUE(facts.ok()) << facts.error().detail;
    EXPECT_FALSE(facts->signatureValid);
    EXPECT_NE(facts->failure.find("URI=\"\""), std::string::npos) << facts->failure;
    // Who signed is still reported, for the caller's records.
    EXPECT_EQ(facts->certificateDer, credential(GetParam()).certificateDer);
}

TEST_P(XadesSeal, ChangedSigningTimeIsCaught) {
    auto sealed = sealXml(credential(GetParam()), kReceipt, kWhen);
    ASSERT_TRUE(sealed.ok()) << sealed.error().detail;
    const std::string tampered =
        replaceOnce(*sealed, "2024-05-01T08:30:00Z", "2024-05-01T08:39:00Z");

    const Xmlsec1 tool = xmlsec1Verify(tampered);
    EXPECT_FALSE(tool.ok()) << tool.output;
    auto facts = verifyXml(tampered);
    ASSERT_TRUE(facts.ok()) << facts.error().detail;
    EXPECT_FALSE(facts->signatureValid);
    EXPECT_FALSE(facts->signedPropertiesSigned);
    EXPECT_NE(facts->failure.find("#kyso-sp-"), std::string::npos) << facts->failure;
}

// Input that libxml2 re-serializes differently (no declaration, single quotes, an empty
// element pair, a character reference) is still sealed over exactly what is returned.
TEST(XadesXml, NonCanonicalInputSealsWhatIsReturned) {
    const std::string input =
        "<BienLai SoBienLai='BL-2'><NguoiNop>Tr&#7847;n Th&#7883; B&#236;nh</NguoiNop>"
        "<GhiChu></GhiChu><SoTien>150000</SoTien></BienLai>";
    auto sealed = sealXml(credential(hsm::KeyType::Ec), input, kWhen);
    ASSERT_TRUE(sealed.ok()) << sealed.error().detail;
    EXPECT_NE(sealed->find("Trần Thị Bình"), std::string::npos) << *sealed;
    const Xmlsec1 tool = xmlsec1Verify(*sealed);
    EXPECT_TRUE(tool.ok()) << tool.output << "\n" << *sealed;
    auto facts = verifyXml(*sealed);
    ASSERT_TRUE(facts.ok());
    EXPECT_TRUE(facts->signatureValid) << facts->failure;
}

// Runs `f` on another thread; a parser that opened the FIFO would block there, which the test
// turns into a failure (and then unblocks it by opening the FIFO for writing).
template <typename F>
auto withFifoGuard(const std::string& fifo, F f) {
    auto fut = std::async(std::launch::async, f);
    if (fut.wait_for(10s) != std::future_status::ready) {
        ADD_FAILURE() << "the parser opened " << fifo;
        const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
        if (fd >= 0) {
            ::close(fd);
        }
    }
    return fut.get();
}

TEST(XadesXml, DoctypeAndExternalEntitiesAreRefusedUnread) {
    const std::string dir = tempDir("xxe");
    const std::string fifo = dir + "/secret";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    const std::vector<std::string> hostile = {
        "<?xml version=\"1.0\"?>\n<!DOCTYPE BienLai [<!ENTITY x SYSTEM \"file://" + fifo +
            "\">]>\n<BienLai><NguoiNop>&x;</NguoiNop></BienLai>",
        "<?xml version=\"1.0\"?>\n<!DOCTYPE BienLai SYSTEM \"file://" + fifo +
            "\">\n<BienLai><NguoiNop>An</NguoiNop></BienLai>",
        "<!DOCTYPE BienLai [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><BienLai>&x;</BienLai>",
        // An internal entity bomb: refused before a single expansion.
        "<!DOCTYPE l [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">"
        "<!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">]><l>&c;&c;&c;</l>",
    };
    for (const auto& doc : hostile) {
        auto sealed =
            withFifoGuard(fifo, [&] { return sealXml(credential(hsm::KeyType::Rsa), doc, kWhen); });
        ASSERT_FALSE(sealed.ok()) << *sealed;
        EXPECT_EQ(sealed.error().code, "xml.invalid");
        EXPECT_EQ(sealed.error().detail.find("root:"), std::string::npos);
        auto verified = withFifoGuard(fifo, [&] { return verifyXml(doc); });
        ASSERT_FALSE(verified.ok());
        EXPECT_EQ(verified.error().code, "xml.invalid");
    }

    // A sealed document with a DOCTYPE spliced in is refused by the verifier too.
    auto sealed = sealXml(credential(hsm::KeyType::Rsa), kReceipt, kWhen);
    ASSERT_TRUE(sealed.ok());
    const std::string withDoctype = replaceOnce(
        *sealed, "?>\n", "?>\n<!DOCTYPE BienLai [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n");
    auto verified = verifyXml(withDoctype);
    ASSERT_FALSE(verified.ok());
    EXPECT_EQ(verified.error().code, "xml.invalid");
}

TEST(XadesXml, NotXmlOrUnsignedIsInvalid) {
    for (const std::string input : {"", "not xml at all", "{\"SoTien\":150000}",
                                    "<BienLai><SoTien>150000</SoTien>", "<a></b>"}) {
        auto sealed = sealXml(credential(hsm::KeyType::Ec), input, kWhen);
        ASSERT_FALSE(sealed.ok()) << input;
        EXPECT_EQ(sealed.error().code, "xml.invalid") << input;
        auto verified = verifyXml(input);
        ASSERT_FALSE(verified.ok()) << input;
        EXPECT_EQ(verified.error().code, "xml.invalid") << input;
    }
    auto unsignedReceipt = verifyXml(kReceipt);
    ASSERT_FALSE(unsignedReceipt.ok());
    EXPECT_EQ(unsignedReceipt.error().code, "xml.invalid");
}

TEST(XadesXml, ForeignCertificateInKeyInfoDoesNotVerify) {
    // The RSA seal's KeyInfo swapped for the EC credential's certificate: the SigningCertificateV2
    // digest no longer names a KeyInfo certificate and the signature does not verify.
    const hsm::Credential& rsa = credential(hsm::KeyType::Rsa);
    const hsm::Credential& ec = credential(hsm::KeyType::Ec);
    auto sealed = sealXml(rsa, kReceipt, kWhen);
    ASSERT_TRUE(sealed.ok());
    auto b64 = [](const std::string& der) {
        std::string out(4 * ((der.size() + 2) / 3) + 1, '\0');
        out.resize(static_cast<std::size_t>(::EVP_EncodeBlock(
            reinterpret_cast<unsigned char*>(out.data()),
            reinterpret_cast<const unsigned char*>(der.data()), static_cast<int>(der.size()))));
        return out;
    };
    const std::string swapped =
        replaceOnce(*sealed, b64(rsa.certificateDer), b64(ec.certificateDer));
    auto facts = verifyXml(swapped);
    ASSERT_TRUE(facts.ok());
    EXPECT_FALSE(facts->signatureValid);
    EXPECT_FALSE(facts->signingCertificateMatches);
    EXPECT_EQ(facts->certificateDer, ec.certificateDer);
    EXPECT_FALSE(xmlsec1Verify(swapped).ok());
}

}  // namespace
}  // namespace kyso::test
