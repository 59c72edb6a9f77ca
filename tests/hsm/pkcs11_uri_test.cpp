#include "kyso/hsm/pkcs11_uri.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <string_view>

namespace kyso::hsm {
namespace {

// Every refusal must carry the stable code and name the attribute at fault.
void expectInvalid(std::string_view uri, std::string_view attribute) {
    const auto r = parsePkcs11Uri(uri);
    ASSERT_FALSE(r.ok()) << uri;
    EXPECT_EQ(r.error().code, "uri.invalid") << uri;
    EXPECT_NE(r.error().detail.find(attribute), std::string::npos)
        << uri << " -> " << r.error().detail;
}

TEST(Pkcs11Uri, ContractExample) {
    const auto r = parsePkcs11Uri("pkcs11:token=kyso-demo;object=officer-1;type=private");
    ASSERT_TRUE(r.ok()) << r.error().detail;
    EXPECT_EQ(r->token, "kyso-demo");
    EXPECT_EQ(r->object, "officer-1");
    EXPECT_EQ(r->type, "private");
    EXPECT_FALSE(r->id);
    EXPECT_FALSE(r->slotId);
    EXPECT_FALSE(r->modulePath);
}

TEST(Pkcs11Uri, EmptyPathYieldsNothing) {
    const auto r = parsePkcs11Uri("pkcs11:");
    ASSERT_TRUE(r.ok()) << r.error().detail;
    EXPECT_FALSE(r->token);
    EXPECT_FALSE(r->manufacturer);
    EXPECT_FALSE(r->serial);
    EXPECT_FALSE(r->model);
    EXPECT_FALSE(r->object);
    EXPECT_FALSE(r->id);
    EXPECT_FALSE(r->type);
    EXPECT_FALSE(r->libraryManufacturer);
    EXPECT_FALSE(r->libraryDescription);
    EXPECT_FALSE(r->libraryVersion);
    EXPECT_FALSE(r->slotId);
    EXPECT_FALSE(r->slotDescription);
    EXPECT_FALSE(r->slotManufacturer);
    EXPECT_FALSE(r->pinSource);
    EXPECT_FALSE(r->modulePath);
    EXPECT_FALSE(r->moduleName);
}

TEST(Pkcs11Uri, EveryPathAttribute) {
    const auto r = parsePkcs11Uri(
        "pkcs11:token=T;manufacturer=M;serial=S;model=Mo;object=O;id=I;type=cert;"
        "library-manufacturer=LM;library-description=LD;library-version=1.2;slot-id=7;"
        "slot-description=SD;slot-manufacturer=SM");
    ASSERT_TRUE(r.ok()) << r.error().detail;
    EXPECT_EQ(r->token, "T");
    EXPECT_EQ(r->manufacturer, "M");
    EXPECT_EQ(r->serial, "S");
    EXPECT_EQ(r->model, "Mo");
    EXPECT_EQ(r->object, "O");
    EXPECT_EQ(r->id, "I");
    EXPECT_EQ(r->type, "cert");
    EXPECT_EQ(r->libraryManufacturer, "LM");
    EXPECT_EQ(r->libraryDescription, "LD");
    EXPECT_EQ(r->libraryVersion, "1.2");
    EXPECT_EQ(r->slotId, 7UL);
    EXPECT_EQ(r->slotDescription, "SD");
    EXPECT_EQ(r->slotManufacturer, "SM");
}

TEST(Pkcs11Uri, EveryTypeValue) {
    for (const char* type : {"private", "public", "cert", "secret-key", "data"}) {
        const auto r = parsePkcs11Uri(std::string("pkcs11:type=") + type);
        ASSERT_TRUE(r.ok()) << type;
        EXPECT_EQ(r->type, type);
    }
}

TEST(Pkcs11Uri, EmptyValueIsPresent) {
    const auto r = parsePkcs11Uri("pkcs11:id=");
    ASSERT_TRUE(r.ok()) << r.error().detail;
    EXPECT_EQ(r->id, "");
}

TEST(Pkcs11Uri, PercentDecodesIdBytes) {
    const auto r = parsePkcs11Uri("pkcs11:id=%01%02%ff%00");
    ASSERT_TRUE(r.ok()) << r.error().detail;
    EXPECT_EQ(r->id, std::string("\x01\x02\xff\x00", 4));
}

TEST(Pkcs11Uri, PercentDecodesUtf8Label) {
    const auto r = parsePkcs11Uri("pkcs11:object=Nguy%E1%BB%85n;token=My%20Token");
    ASSERT_TRUE(r.ok()) << r.error().detail;
    EXPECT_EQ(r->object, "Nguy\xE1\xBB\x85n");
    EXPECT_EQ(r->token, "My Token");
}

TEST(Pkcs11Uri, EncodeKeepsUnreservedAndUppercasesHex) {
    EXPECT_EQ(pkcs11UriEncode("AZaz09-._~"), "AZaz09-._~");
    EXPECT_EQ(pkcs11UriEncode(std::string("a b;c\x01\xff", 7)), "a%20b%3Bc%01%FF");
    EXPECT_EQ(pkcs11UriEncode(""), "");
}

TEST(Pkcs11Uri, RoundTripsAllByteValues) {
    std::string all;
    for (int b = 0; b < 256; ++b) {
        all.push_back(static_cast<char>(b));
    }
    const std::string encoded = pkcs11UriEncode(all);
    EXPECT_EQ(encoded.find_first_of(";?&=/"), std::string::npos) << encoded;
    for (std::size_t i = 0; i < encoded.size(); ++i) {
        if (encoded[i] == '%') {
            ASSERT_LT(i + 2, encoded.size());
            for (char h : {encoded[i + 1], encoded[i + 2]}) {
                EXPECT_TRUE((h >= '0' && h <= '9') || (h >= 'A' && h <= 'F')) << encoded;
            }
        }
    }
    const auto id = parsePkcs11Uri("pkcs11:id=" + encoded);
    ASSERT_TRUE(id.ok()) << id.error().detail;
    EXPECT_EQ(id->id, all);

    const auto path = parsePkcs11Uri("pkcs11:object=x?module-path=" + encoded);
    ASSERT_TRUE(path.ok()) << path.error().detail;
    EXPECT_EQ(path->modulePath, all);
}

TEST(Pkcs11Uri, RoundTripsEachByteAlone) {
    for (int b = 0; b < 256; ++b) {
        const std::string raw(1, static_cast<char>(b));
        const auto r = parsePkcs11Uri("pkcs11:object=" + pkcs11UriEncode(raw));
        ASSERT_TRUE(r.ok()) << b;
        EXPECT_EQ(r->object, raw) << b;
    }
}

TEST(Pkcs11Uri, RefusesMissingScheme) {
    for (const char* uri : {"", "pkcs11", "pkcs12:token=a", "file:/etc/key", "token=a"}) {
        const auto r = parsePkcs11Uri(uri);
        ASSERT_FALSE(r.ok()) << uri;
        EXPECT_EQ(r.error().code, "uri.invalid");
    }
}

TEST(Pkcs11Uri, RefusesUnknownPathAttribute) {
    expectInvalid("pkcs11:token=a;lable=x", "lable");
    expectInvalid("pkcs11:x-vendor=1", "x-vendor");
}

TEST(Pkcs11Uri, RefusesRepeatedPathAttribute) {
    expectInvalid("pkcs11:token=a;token=b", "token");
    expectInvalid("pkcs11:object=a;id=1;object=a", "object");
    expectInvalid("pkcs11:slot-id=1;slot-id=1", "slot-id");
    expectInvalid("pkcs11:id=;id=", "id");
}

TEST(Pkcs11Uri, RefusesEmptyAttributeName) {
    expectInvalid("pkcs11:=a", "empty attribute name");
    expectInvalid("pkcs11:token=a;;object=b", "empty attribute name");
    expectInvalid("pkcs11:token=a;", "empty attribute name");
    expectInvalid("pkcs11:token=a?=b", "empty attribute name");
    expectInvalid("pkcs11:token=a?module-name=m&", "empty attribute name");
}

TEST(Pkcs11Uri, RefusesAttributeWithoutEquals) {
    expectInvalid("pkcs11:token", "token");
    expectInvalid("pkcs11:token=a;object", "object");
    expectInvalid("pkcs11:?module-path", "module-path");
}

TEST(Pkcs11Uri, RefusesMalformedPercentEscapes) {
    expectInvalid("pkcs11:object=%G1", "object");
    expectInvalid("pkcs11:id=%0", "id");
    expectInvalid("pkcs11:id=%4", "id");
    expectInvalid("pkcs11:token=abc%", "token");
    expectInvalid("pkcs11:serial=%%41", "serial");
    expectInvalid("pkcs11:?module-path=%zz", "module-path");
    expectInvalid("pkcs11:?x-vendor=%", "x-vendor");
}

TEST(Pkcs11Uri, RefusesBadType) {
    expectInvalid("pkcs11:type=secret", "type");
    expectInvalid("pkcs11:type=PRIVATE", "type");
    expectInvalid("pkcs11:type=", "type");
    expectInvalid("pkcs11:type=private;type=public", "type");
}

TEST(Pkcs11Uri, ParsesSlotId) {
    auto r = parsePkcs11Uri("pkcs11:slot-id=0");
    ASSERT_TRUE(r.ok()) << r.error().detail;
    EXPECT_EQ(r->slotId, 0UL);

    const std::string max = std::to_string(std::numeric_limits<unsigned long>::max());
    r = parsePkcs11Uri("pkcs11:slot-id=" + max);
    ASSERT_TRUE(r.ok()) << r.error().detail;
    EXPECT_EQ(r->slotId, std::numeric_limits<unsigned long>::max());

    r = parsePkcs11Uri("pkcs11:slot-id=%34%32");
    ASSERT_TRUE(r.ok()) << r.error().detail;
    EXPECT_EQ(r->slotId, 42UL);
}

TEST(Pkcs11Uri, RefusesBadSlotId) {
    expectInvalid("pkcs11:slot-id=", "slot-id");
    expectInvalid("pkcs11:slot-id=abc", "slot-id");
    expectInvalid("pkcs11:slot-id=12abc", "slot-id");
    expectInvalid("pkcs11:slot-id=-1", "slot-id");
    expectInvalid("pkcs11:slot-id=+1", "slot-id");
    expectInvalid("pkcs11:slot-id=%G1", "slot-id");
}

TEST(Pkcs11Uri, RefusesOverflowingSlotId) {
    expectInvalid("pkcs11:slot-id=99999999999999999999999999", "slot-id");
    std::string justOver = std::to_string(std::numeric_limits<unsigned long>::max());
    justOver.back() = static_cast<char>(justOver.back() + 1);  // max ends in 5, never 9
    expectInvalid("pkcs11:slot-id=" + justOver, "slot-id");
}

TEST(Pkcs11Uri, RefusesPinValueWithoutEchoingIt) {
    for (const char* uri :
         {"pkcs11:token=a?pin-value=s3cr3t-Pin",
          "pkcs11:token=a?module-name=m&pin-value=s3cr3t-Pin",
          "pkcs11:?pin-source=file:/p&pin-value=s3cr3t-Pin", "pkcs11:?pin-value=s3cr3t-Pin%"}) {
        const auto r = parsePkcs11Uri(uri);
        ASSERT_FALSE(r.ok()) << uri;
        EXPECT_EQ(r.error().code, "uri.invalid");
        EXPECT_NE(r.error().detail.find("pin-value"), std::string::npos) << r.error().detail;
        EXPECT_NE(r.error().detail.find("PIN"), std::string::npos) << r.error().detail;
        EXPECT_EQ(r.error().detail.find("s3cr3t"), std::string::npos) << r.error().detail;
    }
}

TEST(Pkcs11Uri, DetailsNeverEchoValues) {
    const auto r = parsePkcs11Uri("pkcs11:type=hunter2");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().detail.find("hunter2"), std::string::npos) << r.error().detail;
}

TEST(Pkcs11Uri, IgnoresUnknownQueryAttributes) {
    const auto r = parsePkcs11Uri("pkcs11:token=a?x-vendor=1&x-vendor=2&module-name=softhsm2");
    ASSERT_TRUE(r.ok()) << r.error().detail;
    EXPECT_EQ(r->token, "a");
    EXPECT_EQ(r->moduleName, "softhsm2");
}

TEST(Pkcs11Uri, ParsesQueryAttributes) {
    const auto r = parsePkcs11Uri(
        "pkcs11:token=kyso-demo;object=officer-1"
        "?pin-source=file:/run/kyso/pin&module-path=/usr/lib/softhsm/libsofthsm2.so"
        "&module-name=softhsm2");
    ASSERT_TRUE(r.ok()) << r.error().detail;
    EXPECT_EQ(r->token, "kyso-demo");
    EXPECT_EQ(r->object, "officer-1");
    EXPECT_EQ(r->pinSource, "file:/run/kyso/pin");
    EXPECT_EQ(r->modulePath, "/usr/lib/softhsm/libsofthsm2.so");
    EXPECT_EQ(r->moduleName, "softhsm2");
}

TEST(Pkcs11Uri, PercentDecodesQueryValues) {
    const auto r = parsePkcs11Uri("pkcs11:?module-path=/opt/my%20hsm/lib%26.so");
    ASSERT_TRUE(r.ok()) << r.error().detail;
    EXPECT_EQ(r->modulePath, "/opt/my hsm/lib&.so");
}

TEST(Pkcs11Uri, QueryOnlyAndEmptyQuery) {
    auto r = parsePkcs11Uri("pkcs11:?module-name=softhsm2");
    ASSERT_TRUE(r.ok()) << r.error().detail;
    EXPECT_FALSE(r->token);
    EXPECT_EQ(r->moduleName, "softhsm2");

    r = parsePkcs11Uri("pkcs11:token=a?");
    ASSERT_TRUE(r.ok()) << r.error().detail;
    EXPECT_EQ(r->token, "a");
}

TEST(Pkcs11Uri, RefusesRepeatedKnownQueryAttribute) {
    expectInvalid("pkcs11:?module-path=/a.so&module-path=/b.so", "module-path");
    expectInvalid("pkcs11:?pin-source=a&pin-source=b", "pin-source");
}

TEST(Pkcs11Uri, SchemeIsCaseInsensitive) {
    for (const char* uri : {"PKCS11:token=a", "Pkcs11:token=a", "pKcS11:token=a"}) {
        EXPECT_TRUE(looksLikePkcs11Uri(uri)) << uri;
        const auto r = parsePkcs11Uri(uri);
        ASSERT_TRUE(r.ok()) << uri;
        EXPECT_EQ(r->token, "a");
    }
}

TEST(Pkcs11Uri, LooksLikePkcs11Uri) {
    EXPECT_TRUE(looksLikePkcs11Uri("pkcs11:"));
    EXPECT_TRUE(looksLikePkcs11Uri("pkcs11:token=a"));
    EXPECT_FALSE(looksLikePkcs11Uri(""));
    EXPECT_FALSE(looksLikePkcs11Uri("pkcs11"));
    EXPECT_FALSE(looksLikePkcs11Uri(" pkcs11:token=a"));
    EXPECT_FALSE(looksLikePkcs11Uri("/etc/kyso/key.pem"));
    EXPECT_FALSE(looksLikePkcs11Uri("pkcs12:token=a"));
}

}  // namespace
}  // namespace kyso::hsm
