// Token-backed EVP_PKEYs: OpenSSL's own signing APIs, the key on the token, verified by OpenSSL
// with the public key alone.
#include "kyso/hsm/evp_key.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include "test_env.h"

namespace kyso::test {
namespace {

std::string digestSign(EVP_PKEY* key, const EVP_MD* md, const std::string& msg) {
    OsslPtr<EVP_MD_CTX> ctx(::EVP_MD_CTX_new());
    std::size_t len = 0;
    if (::EVP_DigestSignInit(ctx.get(), nullptr, md, nullptr, key) != 1 ||
        ::EVP_DigestSign(ctx.get(), nullptr, &len,
                         reinterpret_cast<const unsigned char*>(msg.data()), msg.size()) != 1) {
        return {};
    }
    std::string sig(len, '\0');
    if (::EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                         reinterpret_cast<const unsigned char*>(msg.data()), msg.size()) != 1) {
        return {};
    }
    sig.resize(len);
    return sig;
}

bool digestVerify(const std::string& spki, const EVP_MD* md, const std::string& msg,
                  const std::string& sig) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(spki.data());
    OsslPtr<EVP_PKEY> pub(::d2i_PUBKEY(nullptr, &p, static_cast<long>(spki.size())));
    OsslPtr<EVP_MD_CTX> ctx(::EVP_MD_CTX_new());
    return pub && ::EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, pub.get()) == 1 &&
           ::EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()),
                              sig.size(), reinterpret_cast<const unsigned char*>(msg.data()),
                              msg.size()) == 1;
}

TEST(TokenBackedKey, SignsThroughOpenSslWithEveryKeyType) {
    struct Case {
        const char* label;
        hsm::KeyType type;
        const char* curve;
        const EVP_MD* md;
    };
    for (const Case& c : {Case{"evp-rsa", hsm::KeyType::Rsa, "", ::EVP_sha256()},
                          Case{"evp-rsa", hsm::KeyType::Rsa, "", ::EVP_sha512()},
                          Case{"evp-p256", hsm::KeyType::Ec, "P-256", ::EVP_sha256()},
                          Case{"evp-p384", hsm::KeyType::Ec, "P-384", ::EVP_sha384()}}) {
        SCOPED_TRACE(c.label);
        hsm::Credential cred = makeCredential(openTestToken(), c.label, c.type, 2048, c.curve);
        auto key = hsm::tokenBackedKey(cred);
        ASSERT_TRUE(key.ok()) << key.error().detail;
        const std::string msg = "Ủy ban nhân dân tỉnh";
        const std::string sig = digestSign(key->get(), c.md, msg);
        ASSERT_FALSE(sig.empty());
        EXPECT_TRUE(digestVerify(cred.key.publicKeyDer, c.md, msg, sig));
        EXPECT_FALSE(digestVerify(cred.key.publicKeyDer, c.md, msg + ".", sig));
        // The certificate matches the token-backed key (what OpenSSL checks before signing).
        OsslPtr<X509> cert = x509FromDer(cred.certificateDer);
        EXPECT_EQ(::X509_check_private_key(cert.get(), key->get()), 1);
    }
}

TEST(TokenBackedKey, RefusesDigestsItCannotSign) {
    hsm::Credential cred = makeCredential(openTestToken(), "evp-rsa", hsm::KeyType::Rsa);
    auto key = hsm::tokenBackedKey(cred);
    ASSERT_TRUE(key.ok());
    EXPECT_TRUE(digestSign(key->get(), ::EVP_sha1(), "m").empty());
    auto e = hsm::takeTokenError();
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->code, "sign.bad_digest");
    EXPECT_FALSE(hsm::takeTokenError().has_value()) << "the error is cleared when read";
}

}  // namespace
}  // namespace kyso::test
