// The token layer against a real SoftHSM2 token (no mocks). Every signature is checked by two
// verifiers we did not write, OpenSSL and Botan 2; key and certificate attributes are checked by
// OpenSC's pkcs11-tool in a separate process. Sealed secrets are opened by OpenSSL under a key
// that pkcs11-tool imported, and OpenSSL's are opened by the token.
//
// Each test opens its own Token and closes it at the end. Tokens of one process share the loaded
// module (PKCS#11 initialisation and login are per process); the TokenSharing tests at the end
// check that closing one Token, a wrong PIN in another, or keys sharing an id disturb nothing.
//
// Keys are token objects and outlive a Token: signing tests share a few keys by label (generated
// on first use), tests about generation use fresh labels.
#include "kyso/hsm/token.h"

#include <botan/pubkey.h>
#include <botan/x509_key.h>
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdint>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "kyso/hsm/secret.h"
#include "test_env.h"

namespace kyso::hsm {
namespace {

using test::readFile;
using test::run;
using test::shellQuote;
using test::softhsmModule;
using test::tempDir;
using test::testToken;
using test::writeFile;

constexpr unsigned long kCkrOk = 0;
constexpr unsigned long kCkrCryptokiNotInitialized = 0x190;
constexpr const char* kPinEnv = "KYSO_TEST_P11TOOL_PIN";

// ---- small utilities ------------------------------------------------------------------------

std::string hex(std::string_view bytes) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (unsigned char c : bytes) {
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 0x0f]);
    }
    return out;
}

const EVP_MD* evpMd(HashAlg h) {
    switch (h) {
        case HashAlg::Sha256:
            return EVP_sha256();
        case HashAlg::Sha384:
            return EVP_sha384();
        case HashAlg::Sha512:
            return EVP_sha512();
    }
    return nullptr;
}

// The digest the caller of Token::sign computes, done here with OpenSSL.
std::string digestOf(HashAlg h, std::string_view message) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(message.data(), message.size(), md, &len, evpMd(h), nullptr) != 1) {
        ADD_FAILURE() << "EVP_Digest failed";
        return {};
    }
    return std::string(reinterpret_cast<char*>(md), len);
}

// The user PIN of the test token, without the trailing newline of its file.
std::string userPin() {
    std::string pin = readFile(testToken().pinFile);
    while (!pin.empty() && (pin.back() == '\n' || pin.back() == '\r')) {
        pin.pop_back();
    }
    return pin;
}

// Same length, last digit changed: certainly not the PIN.
std::string wrongPin() {
    std::string pin = userPin();
    pin.back() = static_cast<char>('0' + (pin.back() - '0' + 1) % 10);
    return pin;
}

// A label no earlier test (or earlier --gtest_repeat round) has used.
std::string freshLabel(const std::string& base) {
    static std::atomic<unsigned> counter{0};
    return base + "-" + std::to_string(++counter);
}

std::unique_ptr<Token> openToken(TokenConfig cfg) {
    auto r = Token::open(std::move(cfg));
    if (!r) {
        ADD_FAILURE() << "Token::open: " << r.error().code << ": " << r.error().detail;
        return nullptr;
    }
    return std::move(r.value());
}

std::unique_ptr<Token> openToken() {
    return openToken(testToken().config());
}

// The key with this label, generated on first use (keys persist on the token across Tokens).
KeyInfo signingKey(Token& token, const std::string& label, KeyType type,
                   const std::string& curve = "P-256") {
    auto found = token.findKey(KeyRef{label, std::nullopt});
    if (found) {
        return *found;
    }
    EXPECT_EQ(found.error().code, "key.not_found") << found.error().detail;
    KeySpec spec;
    spec.type = type;
    spec.curve = curve;
    spec.label = label;
    auto k = token.generateKey(spec);
    if (!k) {
        ADD_FAILURE() << "generateKey(" << label << "): " << k.error().code << ": "
                      << k.error().detail;
        return {};
    }
    return *k;
}

// Pulls the rug: C_Finalize on the module this process already has loaded, as if the token
// had gone away. SoftHSM2 exports C_Finalize, so no function-list layout is assumed.
unsigned long finalizeModule() {
    void* h = ::dlopen(softhsmModule(), RTLD_NOW | RTLD_NOLOAD);
    if (h == nullptr) {
        ADD_FAILURE() << "the module is not loaded: " << ::dlerror();
        return ~0UL;
    }
    using FinalizeFn = unsigned long (*)(void*);
    auto fin = reinterpret_cast<FinalizeFn>(::dlsym(h, "C_Finalize"));
    const unsigned long rv = fin != nullptr ? fin(nullptr) : ~0UL;
    ::dlclose(h);
    return rv;
}

// Closes every session of the slot, as a token that was pulled and put back would.
unsigned long closeAllSessions(unsigned long slotId) {
    void* h = ::dlopen(softhsmModule(), RTLD_NOW | RTLD_NOLOAD);
    if (h == nullptr) {
        ADD_FAILURE() << "the module is not loaded: " << ::dlerror();
        return ~0UL;
    }
    using CloseAllFn = unsigned long (*)(unsigned long);
    auto close = reinterpret_cast<CloseAllFn>(::dlsym(h, "C_CloseAllSessions"));
    const unsigned long rv = close != nullptr ? close(slotId) : ~0UL;
    ::dlclose(h);
    return rv;
}

// ---- independent verifiers -----------------------------------------------------------------

struct PkeyFree {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct PkeyCtxFree {
    void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;

PkeyPtr parseSpki(std::string_view spki) {
    const auto* p = reinterpret_cast<const unsigned char*>(spki.data());
    return PkeyPtr(d2i_PUBKEY(nullptr, &p, static_cast<long>(spki.size())));
}

// OpenSSL over the digest. For PSS the salt length is checked exactly (default: digest length)
// and MGF1 uses `mgf1` (default: the signature hash).
bool opensslVerify(EVP_PKEY* pkey, SignScheme scheme, HashAlg hash, std::string_view digest,
                   std::string_view sig, std::optional<int> pssSalt = std::nullopt,
                   const EVP_MD* mgf1 = nullptr) {
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new(pkey, nullptr));
    if (!ctx || EVP_PKEY_verify_init(ctx.get()) != 1) {
        return false;
    }
    if (scheme == SignScheme::RsaPkcs1v15 &&
        EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1) {
        return false;
    }
    if (scheme == SignScheme::RsaPss &&
        (EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PSS_PADDING) != 1 ||
         EVP_PKEY_CTX_set_rsa_pss_saltlen(
             ctx.get(), pssSalt.value_or(static_cast<int>(digestLength(hash)))) != 1 ||
         EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), mgf1 != nullptr ? mgf1 : evpMd(hash)) != 1)) {
        return false;
    }
    if (EVP_PKEY_CTX_set_signature_md(ctx.get(), evpMd(hash)) != 1) {
        return false;
    }
    return EVP_PKEY_verify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()),
                           sig.size(), reinterpret_cast<const unsigned char*>(digest.data()),
                           digest.size()) == 1;
}

bool opensslVerify(std::string_view spki, SignScheme scheme, HashAlg hash, std::string_view digest,
                   std::string_view sig) {
    PkeyPtr pkey = parseSpki(spki);
    if (!pkey) {
        ADD_FAILURE() << "OpenSSL cannot parse the SubjectPublicKeyInfo";
        return false;
    }
    return opensslVerify(pkey.get(), scheme, hash, digest, sig);
}

// Botan's name for the encoding, written out here rather than derived from our code.
std::string botanEmsa(SignScheme scheme, HashAlg hash) {
    const std::string h = hash == HashAlg::Sha256   ? "SHA-256"
                          : hash == HashAlg::Sha384 ? "SHA-384"
                                                    : "SHA-512";
    const std::string salt = hash == HashAlg::Sha256 ? "32" : hash == HashAlg::Sha384 ? "48" : "64";
    switch (scheme) {
        case SignScheme::RsaPkcs1v15:
            return "EMSA3(" + h + ")";
        case SignScheme::RsaPss:
            return "EMSA4(" + h + ",MGF1," + salt + ")";
        case SignScheme::Ecdsa:
            return "EMSA1(" + h + ")";
    }
    return {};
}

// Botan over the original message (Botan hashes it itself).
bool botanVerify(std::string_view spki, const std::string& emsa, Botan::Signature_Format format,
                 std::string_view message, std::string_view sig) {
    try {
        const std::vector<uint8_t> der(spki.begin(), spki.end());
        std::unique_ptr<Botan::Public_Key> key(Botan::X509::load_key(der));
        Botan::PK_Verifier verifier(*key, emsa, format);
        return verifier.verify_message(reinterpret_cast<const uint8_t*>(message.data()),
                                       message.size(), reinterpret_cast<const uint8_t*>(sig.data()),
                                       sig.size());
    } catch (const std::exception&) {
        // A malformed signature may throw instead of returning false: still a rejection.
        return false;
    }
}

bool botanVerify(std::string_view spki, SignScheme scheme, HashAlg hash, std::string_view message,
                 std::string_view sig) {
    return botanVerify(spki, botanEmsa(scheme, hash),
                       scheme == SignScheme::Ecdsa ? Botan::DER_SEQUENCE : Botan::IEEE_1363,
                       message, sig);
}

// True when `sig` is exactly one DER ECDSA-Sig-Value (not raw r||s).
bool isDerEcdsaSig(std::string_view sig) {
    const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
    ECDSA_SIG* s = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    if (s == nullptr) {
        return false;
    }
    const bool consumedAll = p == reinterpret_cast<const unsigned char*>(sig.data()) + sig.size();
    unsigned char* again = nullptr;
    const int len = i2d_ECDSA_SIG(s, &again);
    const bool canonical = len > 0 && std::string_view(reinterpret_cast<char*>(again),
                                                       static_cast<std::size_t>(len)) == sig;
    OPENSSL_free(again);
    ECDSA_SIG_free(s);
    return consumedAll && canonical;
}

// Signs a digest of a fresh message on the token and has both verifiers check it; a flipped bit
// in the signature and a different message must both be rejected by both.
void expectSignatureVerifies(Token& token, const KeyInfo& key, SignScheme scheme, HashAlg hash) {
    const std::string message = "kyso token test: " + key.label + " " + botanEmsa(scheme, hash);
    const std::string digest = digestOf(hash, message);
    auto sig = token.sign(key, scheme, hash, digest);
    ASSERT_TRUE(sig.ok()) << sig.error().code << ": " << sig.error().detail;
    ASSERT_FALSE(sig->empty());
    if (key.type == KeyType::Rsa) {
        EXPECT_EQ(sig->size(), key.bits / 8);
    } else {
        EXPECT_TRUE(isDerEcdsaSig(*sig)) << "ECDSA signature is not DER: " << hex(*sig);
    }

    EXPECT_TRUE(opensslVerify(key.publicKeyDer, scheme, hash, digest, *sig)) << "OpenSSL";
    EXPECT_TRUE(botanVerify(key.publicKeyDer, scheme, hash, message, *sig)) << "Botan";

    std::string flipped = *sig;
    flipped[flipped.size() / 2] = static_cast<char>(flipped[flipped.size() / 2] ^ 0x01);
    EXPECT_FALSE(opensslVerify(key.publicKeyDer, scheme, hash, digest, flipped))
        << "OpenSSL accepted a signature with a flipped bit";
    EXPECT_FALSE(botanVerify(key.publicKeyDer, scheme, hash, message, flipped))
        << "Botan accepted a signature with a flipped bit";

    const std::string other = message + ".";
    EXPECT_FALSE(opensslVerify(key.publicKeyDer, scheme, hash, digestOf(hash, other), *sig))
        << "OpenSSL accepted the signature for another message";
    EXPECT_FALSE(botanVerify(key.publicKeyDer, scheme, hash, other, *sig))
        << "Botan accepted the signature for another message";
}

// RFC 5280 4.2.1.2 method (1), computed with OpenSSL from the SubjectPublicKeyInfo.
std::string expectedKeyId(std::string_view spki) {
    const auto* p = reinterpret_cast<const unsigned char*>(spki.data());
    X509_PUBKEY* xpk = d2i_X509_PUBKEY(nullptr, &p, static_cast<long>(spki.size()));
    if (xpk == nullptr) {
        ADD_FAILURE() << "cannot parse the SubjectPublicKeyInfo";
        return {};
    }
    const unsigned char* bits = nullptr;
    int len = 0;
    std::string id;
    if (X509_PUBKEY_get0_param(nullptr, &bits, &len, nullptr, xpk) == 1) {
        unsigned char md[SHA_DIGEST_LENGTH];
        SHA1(bits, static_cast<std::size_t>(len), md);
        id.assign(reinterpret_cast<char*>(md), sizeof md);
    }
    X509_PUBKEY_free(xpk);
    return id;
}

// A self-signed certificate from a throwaway software key: input for the certificate store.
std::string selfSignedCertificate(const std::string& commonName, long serial) {
    PkeyPtr key(EVP_EC_gen("P-256"));
    X509* x = X509_new();
    std::string der;
    if (key && x != nullptr) {
        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
        X509_gmtime_adj(X509_getm_notBefore(x), 0);
        X509_gmtime_adj(X509_getm_notAfter(x), 86400);
        X509_set_pubkey(x, key.get());
        X509_NAME* name = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(commonName.c_str()), -1,
                                   -1, 0);
        X509_set_issuer_name(x, name);
        if (X509_sign(x, key.get(), EVP_sha256()) > 0) {
            unsigned char* buf = nullptr;
            const int len = i2d_X509(x, &buf);
            if (len > 0) {
                der.assign(reinterpret_cast<char*>(buf), static_cast<std::size_t>(len));
            }
            OPENSSL_free(buf);
        }
    }
    X509_free(x);
    EXPECT_FALSE(der.empty()) << "cannot make a test certificate";
    return der;
}

// ---- pkcs11-tool ---------------------------------------------------------------------------

// One object from `pkcs11-tool --list-objects`: its header ("Private Key Object; RSA") and its
// "name: value" lines.
struct P11Object {
    std::string header;
    std::map<std::string, std::string> attrs;
    std::string attr(const std::string& name) const {
        auto it = attrs.find(name);
        return it == attrs.end() ? std::string() : it->second;
    }
};

std::string trim(std::string s) {
    const auto notSpace = [](unsigned char c) { return !std::isspace(c); };
    s.erase(s.begin(), std::find_if(s.begin(), s.end(), notSpace));
    s.erase(std::find_if(s.rbegin(), s.rend(), notSpace).base(), s.end());
    return s;
}

// Lists the token's objects of `type` (privkey, pubkey, cert) in a separate process. With
// `login`, the PIN goes through the environment (pkcs11-tool's "--pin env:NAME"), not argv.
std::vector<P11Object> pkcs11ToolList(const std::string& type, bool login) {
    std::string cmd = "/usr/bin/pkcs11-tool --module " + shellQuote(softhsmModule()) +
                      " --token-label kyso-test --list-objects --type " + shellQuote(type);
    if (login) {
        ::setenv(kPinEnv, userPin().c_str(), 1);
        cmd += std::string(" --login --pin env:") + kPinEnv;
    }
    std::string out;
    const int rc = run(cmd, &out);
    if (login) {
        ::unsetenv(kPinEnv);
    }
    EXPECT_EQ(rc, 0) << cmd << "\n" << out;
    std::vector<P11Object> objects;
    std::size_t pos = 0;
    while (pos < out.size()) {
        std::size_t end = out.find('\n', pos);
        if (end == std::string::npos) {
            end = out.size();
        }
        const std::string line = out.substr(pos, end - pos);
        pos = end + 1;
        if (trim(line).empty()) {
            continue;
        }
        if (line[0] != ' ' && line[0] != '\t') {
            objects.push_back(P11Object{trim(line), {}});
        } else if (!objects.empty()) {
            const auto colon = line.find(':');
            if (colon != std::string::npos) {
                objects.back().attrs[trim(line.substr(0, colon))] = trim(line.substr(colon + 1));
            }
        }
    }
    // Drop the "Using slot ..." preamble and anything else that is not an object.
    std::erase_if(objects,
                  [](const P11Object& o) { return o.header.find("Object") == std::string::npos; });
    return objects;
}

std::vector<P11Object> withLabel(const std::vector<P11Object>& objects, const std::string& label) {
    std::vector<P11Object> out;
    std::copy_if(objects.begin(), objects.end(), std::back_inserter(out),
                 [&](const P11Object& o) { return o.attr("label") == label; });
    return out;
}

// "sensitive, always sensitive, never extractable, local" -> its items.
std::vector<std::string> commaList(const std::string& s) {
    std::vector<std::string> out;
    std::size_t pos = 0;
    while (pos <= s.size()) {
        std::size_t end = s.find(',', pos);
        if (end == std::string::npos) {
            end = s.size();
        }
        std::string item = trim(s.substr(pos, end - pos));
        if (!item.empty()) {
            out.push_back(item);
        }
        pos = end + 1;
    }
    return out;
}

bool contains(const std::vector<std::string>& v, const std::string& item) {
    return std::find(v.begin(), v.end(), item) != v.end();
}

// What another PKCS#11 client sees of a key we generated: private (invisible without login),
// sensitive, never extractable, usable for signing only, with CKA_ID `id` on both halves.
void expectTokenShowsProtectedKey(const KeyInfo& key) {
    const auto anonymous = withLabel(pkcs11ToolList("privkey", false), key.label);
    EXPECT_TRUE(anonymous.empty()) << "private key visible without login (CKA_PRIVATE false?)";

    const auto privs = withLabel(pkcs11ToolList("privkey", true), key.label);
    ASSERT_EQ(privs.size(), 1u) << "pkcs11-tool should list exactly one private key " << key.label;
    const P11Object& priv = privs.front();
    EXPECT_NE(priv.header.find(key.type == KeyType::Rsa ? "RSA" : "EC"), std::string::npos)
        << priv.header;
    const auto access = commaList(priv.attr("Access"));
    EXPECT_TRUE(contains(access, "sensitive")) << priv.attr("Access");
    EXPECT_TRUE(contains(access, "always sensitive")) << priv.attr("Access");
    EXPECT_TRUE(contains(access, "never extractable")) << priv.attr("Access");
    EXPECT_FALSE(contains(access, "extractable")) << priv.attr("Access");
    EXPECT_TRUE(contains(access, "local")) << "not generated on the token: " << priv.attr("Access");
    const auto usage = commaList(priv.attr("Usage"));
    EXPECT_TRUE(contains(usage, "sign")) << priv.attr("Usage");
    EXPECT_FALSE(contains(usage, "decrypt")) << priv.attr("Usage");
    EXPECT_FALSE(contains(usage, "unwrap")) << priv.attr("Usage");
    EXPECT_EQ(priv.attr("ID"), hex(key.id));

    const auto pubs = withLabel(pkcs11ToolList("pubkey", false), key.label);
    ASSERT_EQ(pubs.size(), 1u) << "pkcs11-tool should list exactly one public key " << key.label;
    EXPECT_EQ(pubs.front().attr("ID"), hex(key.id)) << "public key id differs from private key id";
}

// ---- fixture -------------------------------------------------------------------------------

// A Token of its own for each test, closed at the end of the test.
class TokenTest : public ::testing::Test {
  protected:
    void SetUp() override {
        m_token = openToken();
        ASSERT_NE(m_token, nullptr);
    }
    void TearDown() override { m_token.reset(); }
    Token& token() { return *m_token; }

    std::unique_ptr<Token> m_token;
};

using TokenSign = TokenTest;
using TokenKeys = TokenTest;
using TokenFindKey = TokenTest;
using TokenCertificates = TokenTest;
using TokenConcurrency = TokenTest;
using TokenReconnect = TokenTest;

// ==== secrets ===============================================================================

TEST(ReadSecret, FileTrailingNewlineIsStripped) {
    const std::string dir = tempDir("secret");
    writeFile(dir + "/lf", "123456\n");
    writeFile(dir + "/crlf", "123456\r\n");
    writeFile(dir + "/inner", "12\n34\n\n");
    writeFile(dir + "/none", "123456");

    auto lf = readSecret("file:" + dir + "/lf");
    ASSERT_TRUE(lf.ok()) << lf.error().detail;
    EXPECT_EQ(lf->view(), "123456");
    auto crlf = readSecret("file:" + dir + "/crlf");
    ASSERT_TRUE(crlf.ok()) << crlf.error().detail;
    EXPECT_EQ(crlf->view(), "123456");
    auto inner = readSecret("file:" + dir + "/inner");
    ASSERT_TRUE(inner.ok()) << inner.error().detail;
    EXPECT_EQ(inner->view(), "12\n34");
    auto none = readSecret("file:" + dir + "/none");
    ASSERT_TRUE(none.ok()) << none.error().detail;
    EXPECT_EQ(none->view(), "123456");
}

TEST(ReadSecret, BarePathIsReadAsAFile) {
    const std::string path = tempDir("secret") + "/pin";
    writeFile(path, "s3cret\n");
    auto s = readSecret(path);
    ASSERT_TRUE(s.ok()) << s.error().detail;
    EXPECT_EQ(s->view(), "s3cret");
}

TEST(ReadSecret, EnvironmentVariableSource) {
    ::setenv("KYSO_TEST_SECRET_ENV", "from-env\n", 1);
    auto s = readSecret("env:KYSO_TEST_SECRET_ENV");
    ::unsetenv("KYSO_TEST_SECRET_ENV");
    ASSERT_TRUE(s.ok()) << s.error().detail;
    EXPECT_EQ(s->view(), "from-env\n") << "an environment value is taken as is";
}

TEST(ReadSecret, MissingSourcesAreUnavailable) {
    const std::string dir = tempDir("secret");
    auto missing = readSecret("file:" + dir + "/does-not-exist");
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error().code, "secret.unavailable");
    EXPECT_NE(missing.error().detail.find("does-not-exist"), std::string::npos)
        << "the error should name the source: " << missing.error().detail;

    ::unsetenv("KYSO_TEST_SECRET_UNSET");
    auto unset = readSecret("env:KYSO_TEST_SECRET_UNSET");
    ASSERT_FALSE(unset.ok());
    EXPECT_EQ(unset.error().code, "secret.unavailable");

    writeFile(dir + "/empty", "\n");
    auto empty = readSecret("file:" + dir + "/empty");
    ASSERT_FALSE(empty.ok());
    EXPECT_EQ(empty.error().code, "secret.unavailable");

    auto nothing = readSecret("");
    ASSERT_FALSE(nothing.ok());
    EXPECT_EQ(nothing.error().code, "secret.unavailable");
}

TEST(ConstantTimeEquals, ComparesContentAndLength) {
    EXPECT_TRUE(constantTimeEquals("", ""));
    EXPECT_TRUE(constantTimeEquals("123456", "123456"));
    EXPECT_FALSE(constantTimeEquals("123456", "123457"));
    EXPECT_FALSE(constantTimeEquals("123456", "023456"));
    EXPECT_FALSE(constantTimeEquals("123456", "12345"));
    EXPECT_FALSE(constantTimeEquals("12345", "123456"));
    EXPECT_FALSE(constantTimeEquals("", "1"));
    const std::string a("a\0b", 3);
    const std::string b("a\0c", 3);
    EXPECT_TRUE(constantTimeEquals(a, std::string("a\0b", 3)));
    EXPECT_FALSE(constantTimeEquals(a, b)) << "must compare past an embedded NUL";
}

// ==== opening the token =====================================================================

TEST(TokenOpen, OpensTheTestTokenByLabel) {
    auto token = openToken();
    ASSERT_NE(token, nullptr);
    EXPECT_EQ(token->info().label, "kyso-test");
    EXPECT_EQ(token->info().manufacturer, "SoftHSM project");
    EXPECT_FALSE(token->info().serial.empty());
    EXPECT_EQ(token->generation(), 1u);
    EXPECT_TRUE(token->ready());
}

TEST(TokenOpen, OpensTheTestTokenBySerial) {
    std::string serial;
    {
        auto byLabel = openToken();
        ASSERT_NE(byLabel, nullptr);
        serial = byLabel->info().serial;
    }
    TokenConfig cfg = testToken().config();
    cfg.tokenLabel.reset();
    cfg.tokenSerial = serial;
    auto bySerial = openToken(cfg);
    ASSERT_NE(bySerial, nullptr);
    EXPECT_EQ(bySerial->info().label, "kyso-test");
    EXPECT_EQ(bySerial->info().serial, serial);
}

TEST(TokenOpen, UnknownLabelIsNotFound) {
    TokenConfig cfg = testToken().config();
    cfg.tokenLabel = "no-such-token";
    auto r = Token::open(cfg);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "token.not_found") << r.error().detail;
    EXPECT_NE(r.error().detail.find("no-such-token"), std::string::npos) << r.error().detail;
}

TEST(TokenOpen, UnknownSerialIsNotFound) {
    TokenConfig cfg = testToken().config();
    cfg.tokenSerial = "0000000000000000";
    auto r = Token::open(cfg);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "token.not_found") << r.error().detail;
}

TEST(TokenOpen, MissingModuleIsAModuleError) {
    TokenConfig cfg = testToken().config();
    cfg.modulePath = tempDir("module") + "/libnothing.so";
    auto r = Token::open(cfg);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "token.module") << r.error().detail;
}

TEST(TokenOpen, MissingPinFileIsSecretUnavailable) {
    TokenConfig cfg = testToken().config();
    cfg.pinSource = "file:" + tempDir("pin") + "/no-pin-here";
    auto r = Token::open(cfg);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "secret.unavailable") << r.error().detail;
}

TEST(TokenOpen, PinFromEnvironmentVariable) {
    ::setenv("KYSO_TEST_USER_PIN", userPin().c_str(), 1);
    TokenConfig cfg = testToken().config();
    cfg.pinSource = "env:KYSO_TEST_USER_PIN";
    auto token = openToken(cfg);
    ::unsetenv("KYSO_TEST_USER_PIN");
    ASSERT_NE(token, nullptr);
    EXPECT_TRUE(token->ready());
    const KeyInfo key = signingKey(*token, "t-env-pin-p256", KeyType::Ec);
    auto sig = token->sign(key, SignScheme::Ecdsa, HashAlg::Sha256, digestOf(HashAlg::Sha256, "x"));
    EXPECT_TRUE(sig.ok()) << sig.error().detail;
}

TEST(TokenOpen, WrongPinIsRefusedWithoutLockingTheToken) {
    const std::string pinFile = tempDir("pin") + "/wrong.pin";
    writeFile(pinFile, wrongPin() + "\n");
    TokenConfig cfg = testToken().config();
    cfg.pinSource = "file:" + pinFile;
    auto r = Token::open(cfg);
    ASSERT_FALSE(r.ok()) << "a wrong PIN was accepted";
    EXPECT_EQ(r.error().code, "token.pin_incorrect") << r.error().detail;
    EXPECT_EQ(r.error().detail.find(wrongPin()), std::string::npos) << "PIN in error detail";
    EXPECT_EQ(r.error().detail.find(userPin()), std::string::npos) << "PIN in error detail";

    // One failed attempt, not a lockout: a Token with the right PIN works.
    auto good = openToken();
    ASSERT_NE(good, nullptr);
    EXPECT_TRUE(good->ready());
    const KeyInfo key = signingKey(*good, "t-after-wrong-pin-p256", KeyType::Ec);
    const std::string digest = digestOf(HashAlg::Sha256, "after a wrong PIN");
    auto sig = good->sign(key, SignScheme::Ecdsa, HashAlg::Sha256, digest);
    ASSERT_TRUE(sig.ok()) << sig.error().detail;
    EXPECT_TRUE(opensslVerify(key.publicKeyDer, SignScheme::Ecdsa, HashAlg::Sha256, digest, *sig));
}

TEST(TokenOpen, RejectedPinIsNeverRetried) {
    const std::string pinFile = tempDir("pin") + "/user.pin";
    const std::string goodPinFile = readFile(testToken().pinFile);
    writeFile(pinFile, goodPinFile);
    TokenConfig cfg = testToken().config();
    cfg.pinSource = "file:" + pinFile;
    auto token = openToken(cfg);
    ASSERT_NE(token, nullptr);
    const KeyInfo key = signingKey(*token, "t-no-retry-p256", KeyType::Ec);
    const std::string digest = digestOf(HashAlg::Sha256, "no retry");
    auto first = token->sign(key, SignScheme::Ecdsa, HashAlg::Sha256, digest);
    ASSERT_TRUE(first.ok()) << first.error().detail;

    // The PIN changes under the running service, then the token goes away.
    writeFile(pinFile, wrongPin() + "\n");
    ASSERT_EQ(finalizeModule(), kCkrOk);
    auto lost = token->sign(key, SignScheme::Ecdsa, HashAlg::Sha256, digest);
    ASSERT_FALSE(lost.ok());
    EXPECT_EQ(lost.error().code, "token.unavailable") << lost.error().detail;
    // The reconnect reads the PIN afresh and the token rejects it.
    auto refused = token->sign(key, SignScheme::Ecdsa, HashAlg::Sha256, digest);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code, "token.pin_incorrect") << refused.error().detail;
    const unsigned generation = token->generation();

    // The right PIN is back in the file, yet this Token does not try again.
    writeFile(pinFile, goodPinFile);
    for (int i = 0; i < 3; ++i) {
        auto again = token->sign(key, SignScheme::Ecdsa, HashAlg::Sha256, digest);
        ASSERT_FALSE(again.ok()) << "call " << i << " logged in again after a rejected PIN";
        EXPECT_EQ(again.error().code, "token.pin_incorrect") << again.error().detail;
    }
    auto find = token->findKey(KeyRef{key.label, std::nullopt});
    ASSERT_FALSE(find.ok());
    EXPECT_EQ(find.error().code, "token.pin_incorrect");
    EXPECT_FALSE(token->ready());
    EXPECT_EQ(token->generation(), generation) << "a reconnect succeeded after a rejected PIN";

    // The file is right again: a new Token logs in, so the refusals above were the layer's.
    token.reset();
    auto fresh = openToken(cfg);
    ASSERT_NE(fresh, nullptr);
    auto sig = fresh->sign(key, SignScheme::Ecdsa, HashAlg::Sha256, digest);
    EXPECT_TRUE(sig.ok()) << sig.error().detail;
}

// ==== signing ===============================================================================

TEST_F(TokenSign, RsaPkcs1v15Sha256) {
    const KeyInfo key = signingKey(token(), "t-sign-rsa", KeyType::Rsa);
    expectSignatureVerifies(token(), key, SignScheme::RsaPkcs1v15, HashAlg::Sha256);
}

TEST_F(TokenSign, RsaPkcs1v15Sha384) {
    const KeyInfo key = signingKey(token(), "t-sign-rsa", KeyType::Rsa);
    expectSignatureVerifies(token(), key, SignScheme::RsaPkcs1v15, HashAlg::Sha384);
}

TEST_F(TokenSign, RsaPkcs1v15Sha512) {
    const KeyInfo key = signingKey(token(), "t-sign-rsa", KeyType::Rsa);
    expectSignatureVerifies(token(), key, SignScheme::RsaPkcs1v15, HashAlg::Sha512);
}

TEST_F(TokenSign, RsaPkcs1v15IsDeterministic) {
    const KeyInfo key = signingKey(token(), "t-sign-rsa", KeyType::Rsa);
    const std::string digest = digestOf(HashAlg::Sha256, "same input");
    auto a = token().sign(key, SignScheme::RsaPkcs1v15, HashAlg::Sha256, digest);
    auto b = token().sign(key, SignScheme::RsaPkcs1v15, HashAlg::Sha256, digest);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(*a, *b);
}

TEST_F(TokenSign, RsaPssSha256) {
    const KeyInfo key = signingKey(token(), "t-rsa-pss", KeyType::Rsa);
    expectSignatureVerifies(token(), key, SignScheme::RsaPss, HashAlg::Sha256);
}

TEST_F(TokenSign, RsaPssSha384) {
    const KeyInfo key = signingKey(token(), "t-rsa-pss", KeyType::Rsa);
    expectSignatureVerifies(token(), key, SignScheme::RsaPss, HashAlg::Sha384);
}

TEST_F(TokenSign, RsaPssSha512) {
    const KeyInfo key = signingKey(token(), "t-rsa-pss", KeyType::Rsa);
    expectSignatureVerifies(token(), key, SignScheme::RsaPss, HashAlg::Sha512);
}

// Salt as long as the digest, MGF1 with the signature hash, and a fresh salt per signature.
TEST_F(TokenSign, RsaPssUsesDigestLengthSaltAndMatchingMgf1) {
    const KeyInfo key = signingKey(token(), "t-rsa-pss", KeyType::Rsa);
    const std::string message = "pss parameters";
    const std::string digest = digestOf(HashAlg::Sha256, message);
    auto a = token().sign(key, SignScheme::RsaPss, HashAlg::Sha256, digest);
    auto b = token().sign(key, SignScheme::RsaPss, HashAlg::Sha256, digest);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_NE(*a, *b) << "two PSS signatures are identical: the salt is not random";

    PkeyPtr pkey = parseSpki(key.publicKeyDer);
    ASSERT_TRUE(pkey);
    EXPECT_TRUE(opensslVerify(pkey.get(), SignScheme::RsaPss, HashAlg::Sha256, digest, *a, 32));
    EXPECT_FALSE(opensslVerify(pkey.get(), SignScheme::RsaPss, HashAlg::Sha256, digest, *a, 20))
        << "salt is not 32 bytes";
    EXPECT_FALSE(opensslVerify(pkey.get(), SignScheme::RsaPss, HashAlg::Sha256, digest, *a, 0));
    EXPECT_FALSE(opensslVerify(pkey.get(), SignScheme::RsaPss, HashAlg::Sha256, digest, *a,
                               std::nullopt, EVP_sha1()))
        << "MGF1 is not SHA-256";
    EXPECT_TRUE(
        botanVerify(key.publicKeyDer, "EMSA4(SHA-256,MGF1,32)", Botan::IEEE_1363, message, *a));
    EXPECT_FALSE(
        botanVerify(key.publicKeyDer, "EMSA4(SHA-256,MGF1,20)", Botan::IEEE_1363, message, *a));
}

TEST_F(TokenSign, EcdsaP256Sha256) {
    const KeyInfo key = signingKey(token(), "t-sign-p256", KeyType::Ec, "P-256");
    EXPECT_EQ(key.curve, "P-256");
    expectSignatureVerifies(token(), key, SignScheme::Ecdsa, HashAlg::Sha256);
}

TEST_F(TokenSign, EcdsaP384Sha384) {
    const KeyInfo key = signingKey(token(), "t-sign-p384", KeyType::Ec, "P-384");
    EXPECT_EQ(key.curve, "P-384");
    expectSignatureVerifies(token(), key, SignScheme::Ecdsa, HashAlg::Sha384);
}

TEST_F(TokenSign, DigestOfWrongLengthIsRefused) {
    const KeyInfo rsa = signingKey(token(), "t-sign-rsa", KeyType::Rsa);
    const KeyInfo ec = signingKey(token(), "t-sign-p256", KeyType::Ec);
    const std::string d256 = digestOf(HashAlg::Sha256, "m");
    const std::string d384 = digestOf(HashAlg::Sha384, "m");
    struct Case {
        const KeyInfo* key;
        SignScheme scheme;
        HashAlg hash;
        std::string digest;
    };
    const std::vector<Case> cases = {
        {&rsa, SignScheme::RsaPkcs1v15, HashAlg::Sha256, d256.substr(0, 31)},
        {&rsa, SignScheme::RsaPkcs1v15, HashAlg::Sha256, d256 + "x"},
        {&rsa, SignScheme::RsaPkcs1v15, HashAlg::Sha256, d384},
        {&rsa, SignScheme::RsaPss, HashAlg::Sha384, d256},
        {&rsa, SignScheme::RsaPkcs1v15, HashAlg::Sha512, d384},
        {&ec, SignScheme::Ecdsa, HashAlg::Sha256, ""},
        {&ec, SignScheme::Ecdsa, HashAlg::Sha384, d256},
    };
    for (const auto& c : cases) {
        auto r = token().sign(*c.key, c.scheme, c.hash, c.digest);
        ASSERT_FALSE(r.ok()) << "signed a " << c.digest.size() << "-byte digest as "
                             << hashName(c.hash);
        EXPECT_EQ(r.error().code, "sign.bad_digest") << r.error().detail;
    }
}

TEST_F(TokenSign, SchemeThatDoesNotFitTheKeyIsRefused) {
    const KeyInfo rsa = signingKey(token(), "t-sign-rsa", KeyType::Rsa);
    const KeyInfo ec = signingKey(token(), "t-sign-p256", KeyType::Ec);
    const std::string digest = digestOf(HashAlg::Sha256, "m");

    auto ecdsaOnRsa = token().sign(rsa, SignScheme::Ecdsa, HashAlg::Sha256, digest);
    ASSERT_FALSE(ecdsaOnRsa.ok());
    EXPECT_EQ(ecdsaOnRsa.error().code, "sign.scheme") << ecdsaOnRsa.error().detail;

    auto pkcs1OnEc = token().sign(ec, SignScheme::RsaPkcs1v15, HashAlg::Sha256, digest);
    ASSERT_FALSE(pkcs1OnEc.ok());
    EXPECT_EQ(pkcs1OnEc.error().code, "sign.scheme") << pkcs1OnEc.error().detail;

    auto pssOnEc = token().sign(ec, SignScheme::RsaPss, HashAlg::Sha256, digest);
    ASSERT_FALSE(pssOnEc.ok());
    EXPECT_EQ(pssOnEc.error().code, "sign.scheme") << pssOnEc.error().detail;
}

TEST_F(TokenSign, KeyNotOnTheTokenIsNotFound) {
    KeyInfo ghost = signingKey(token(), "t-sign-p256", KeyType::Ec);
    ghost.label = "t-no-such-key";
    ghost.id = "no-such-id";
    auto r =
        token().sign(ghost, SignScheme::Ecdsa, HashAlg::Sha256, digestOf(HashAlg::Sha256, "m"));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "key.not_found") << r.error().detail;
}

// ==== key generation ========================================================================

TEST_F(TokenKeys, GeneratedRsaKeyIsSensitiveAndNeverExtractable) {
    KeySpec spec;
    spec.type = KeyType::Rsa;
    spec.rsaBits = 2048;
    spec.label = freshLabel("t-gen-rsa");
    auto key = token().generateKey(spec);
    ASSERT_TRUE(key.ok()) << key.error().code << ": " << key.error().detail;
    EXPECT_EQ(key->label, spec.label);
    EXPECT_EQ(key->type, KeyType::Rsa);
    EXPECT_EQ(key->bits, 2048u);
    EXPECT_TRUE(key->sensitive);
    EXPECT_FALSE(key->extractable);

    PkeyPtr pkey = parseSpki(key->publicKeyDer);
    ASSERT_TRUE(pkey) << "publicKeyDer is not a SubjectPublicKeyInfo";
    EXPECT_EQ(EVP_PKEY_get_base_id(pkey.get()), EVP_PKEY_RSA);
    EXPECT_EQ(EVP_PKEY_get_bits(pkey.get()), 2048);

    expectTokenShowsProtectedKey(*key);
}

TEST_F(TokenKeys, GeneratedEcKeysHaveTheRequestedCurve) {
    for (const char* curve : {"P-256", "P-384"}) {
        SCOPED_TRACE(curve);
        KeySpec spec;
        spec.type = KeyType::Ec;
        spec.curve = curve;
        spec.label = freshLabel(std::string("t-gen-") + curve);
        auto key = token().generateKey(spec);
        ASSERT_TRUE(key.ok()) << key.error().code << ": " << key.error().detail;
        EXPECT_EQ(key->type, KeyType::Ec);
        EXPECT_EQ(key->curve, curve);
        EXPECT_EQ(key->bits, std::string(curve) == "P-256" ? 256u : 384u);
        EXPECT_TRUE(key->sensitive);
        EXPECT_FALSE(key->extractable);

        PkeyPtr pkey = parseSpki(key->publicKeyDer);
        ASSERT_TRUE(pkey);
        EXPECT_EQ(EVP_PKEY_get_base_id(pkey.get()), EVP_PKEY_EC);
        char group[64] = {};
        ASSERT_EQ(EVP_PKEY_get_group_name(pkey.get(), group, sizeof group, nullptr), 1);
        EXPECT_STREQ(group, std::string(curve) == "P-256" ? "prime256v1" : "secp384r1");

        expectTokenShowsProtectedKey(*key);
    }
}

TEST_F(TokenKeys, WeakOrUnsupportedSpecsAreRefused) {
    std::vector<KeySpec> specs;
    for (unsigned bits : {512u, 1024u, 2047u, 16384u}) {
        KeySpec s;
        s.type = KeyType::Rsa;
        s.rsaBits = bits;
        s.label = freshLabel("t-spec-rsa" + std::to_string(bits));
        specs.push_back(s);
    }
    for (const char* curve : {"P-521", "secp256k1", "P-224", ""}) {
        KeySpec s;
        s.type = KeyType::Ec;
        s.curve = curve;
        s.label = freshLabel(std::string("t-spec-ec-") + curve);
        specs.push_back(s);
    }
    KeySpec unlabelled;
    unlabelled.type = KeyType::Ec;
    unlabelled.label = "";
    specs.push_back(unlabelled);

    for (const auto& s : specs) {
        SCOPED_TRACE("rsaBits=" + std::to_string(s.rsaBits) + " curve=" + s.curve +
                     " label=" + s.label);
        auto r = token().generateKey(s);
        ASSERT_FALSE(r.ok()) << "generated a key for a refused spec";
        EXPECT_EQ(r.error().code, "key.spec") << r.error().detail;
        if (!s.label.empty()) {
            auto found = token().findKey(KeyRef{s.label, std::nullopt});
            ASSERT_FALSE(found.ok()) << "a refused spec left a key on the token";
            EXPECT_EQ(found.error().code, "key.not_found");
        }
    }
}

TEST_F(TokenKeys, DuplicateLabelIsRefused) {
    KeySpec spec;
    spec.type = KeyType::Ec;
    spec.label = freshLabel("t-dup");
    auto first = token().generateKey(spec);
    ASSERT_TRUE(first.ok()) << first.error().detail;

    auto again = token().generateKey(spec);
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().code, "key.exists") << again.error().detail;

    KeySpec rsa = spec;
    rsa.type = KeyType::Rsa;
    auto otherType = token().generateKey(rsa);
    ASSERT_FALSE(otherType.ok());
    EXPECT_EQ(otherType.error().code, "key.exists") << otherType.error().detail;

    // Still exactly the first key under that label.
    auto found = token().findKey(KeyRef{spec.label, std::nullopt});
    ASSERT_TRUE(found.ok()) << found.error().code;
    EXPECT_EQ(found->id, first->id);
    EXPECT_EQ(found->publicKeyDer, first->publicKeyDer);
    EXPECT_EQ(withLabel(pkcs11ToolList("pubkey", false), spec.label).size(), 1u);
}

TEST_F(TokenKeys, DefaultIdIsSha1OfThePublicKeyBits) {
    for (KeyType type : {KeyType::Ec, KeyType::Rsa}) {
        SCOPED_TRACE(type == KeyType::Ec ? "EC" : "RSA");
        KeySpec spec;
        spec.type = type;
        spec.label = freshLabel("t-keyid");
        auto key = token().generateKey(spec);
        ASSERT_TRUE(key.ok()) << key.error().detail;
        EXPECT_EQ(key->id.size(), 20u);
        EXPECT_EQ(hex(key->id), hex(expectedKeyId(key->publicKeyDer)));
        // And that is the id on the token, for both halves (no temporary id left behind).
        auto byId = token().findKey(KeyRef{std::nullopt, key->id});
        ASSERT_TRUE(byId.ok()) << byId.error().code;
        EXPECT_EQ(byId->label, spec.label);
        const auto pubs = withLabel(pkcs11ToolList("pubkey", false), spec.label);
        ASSERT_EQ(pubs.size(), 1u);
        EXPECT_EQ(pubs.front().attr("ID"), hex(expectedKeyId(key->publicKeyDer)));
    }
}

TEST_F(TokenKeys, ExplicitIdIsKept) {
    KeySpec spec;
    spec.type = KeyType::Ec;
    spec.label = freshLabel("t-explicit-id");
    spec.id = std::string("\x00\x01kyso\xff", 7) + spec.label;  // unique: see SharedIdIsAmbiguous
    auto key = token().generateKey(spec);
    ASSERT_TRUE(key.ok()) << key.error().detail;
    EXPECT_EQ(hex(key->id), hex(spec.id));
    auto byId = token().findKey(KeyRef{std::nullopt, spec.id});
    ASSERT_TRUE(byId.ok()) << byId.error().code;
    EXPECT_EQ(byId->label, spec.label);
}

// ==== finding keys ==========================================================================

TEST_F(TokenFindKey, ByLabel) {
    const KeyInfo made = signingKey(token(), "t-find-p256", KeyType::Ec);
    auto found = token().findKey(KeyRef{std::string("t-find-p256"), std::nullopt});
    ASSERT_TRUE(found.ok()) << found.error().code;
    EXPECT_EQ(found->label, "t-find-p256");
    EXPECT_EQ(found->id, made.id);
    EXPECT_EQ(found->type, KeyType::Ec);
    EXPECT_EQ(found->curve, "P-256");
    EXPECT_EQ(found->publicKeyDer, made.publicKeyDer);
    EXPECT_TRUE(found->sensitive);
    EXPECT_FALSE(found->extractable);
}

TEST_F(TokenFindKey, ById) {
    const KeyInfo made = signingKey(token(), "t-find-rsa", KeyType::Rsa);
    ASSERT_FALSE(made.id.empty());
    auto found = token().findKey(KeyRef{std::nullopt, made.id});
    ASSERT_TRUE(found.ok()) << found.error().code;
    EXPECT_EQ(found->label, "t-find-rsa");
    EXPECT_EQ(found->type, KeyType::Rsa);
    EXPECT_EQ(found->bits, 2048u);
    EXPECT_EQ(found->publicKeyDer, made.publicKeyDer);
}

TEST_F(TokenFindKey, LabelAndIdMustBothMatch) {
    const KeyInfo a = signingKey(token(), "t-find-p256", KeyType::Ec);
    const KeyInfo b = signingKey(token(), "t-find-rsa", KeyType::Rsa);
    auto both = token().findKey(KeyRef{a.label, a.id});
    ASSERT_TRUE(both.ok()) << both.error().code;
    EXPECT_EQ(both->publicKeyDer, a.publicKeyDer);
    auto mixed = token().findKey(KeyRef{a.label, b.id});
    ASSERT_FALSE(mixed.ok());
    EXPECT_EQ(mixed.error().code, "key.not_found");
}

TEST_F(TokenFindKey, UnknownLabelIsNotFound) {
    auto r = token().findKey(KeyRef{std::string("t-there-is-no-such-key"), std::nullopt});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "key.not_found") << r.error().detail;
    auto byId = token().findKey(KeyRef{std::nullopt, std::string("no such id")});
    ASSERT_FALSE(byId.ok());
    EXPECT_EQ(byId.error().code, "key.not_found") << byId.error().detail;
    auto empty = token().findKey(KeyRef{});
    ASSERT_FALSE(empty.ok());
    EXPECT_EQ(empty.error().code, "key.not_found") << empty.error().detail;
}

TEST_F(TokenFindKey, SharedIdIsAmbiguous) {
    // An EC key and an RSA key with the same CKA_ID.
    const std::string id = freshLabel("shared-id");
    for (KeyType type : {KeyType::Ec, KeyType::Rsa}) {
        KeySpec spec;
        spec.type = type;
        spec.label = freshLabel("t-shared-id");
        spec.id = id;
        auto k = token().generateKey(spec);
        ASSERT_TRUE(k.ok()) << k.error().code << ": " << k.error().detail;
        EXPECT_EQ(k->id, id);
    }
    auto r = token().findKey(KeyRef{std::nullopt, id});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "key.ambiguous") << r.error().detail;
}

// ==== certificates ==========================================================================

TEST_F(TokenCertificates, StoredCertificateIsReturnedUnchanged) {
    const std::string label = freshLabel("t-cert");
    const std::string id = "\x10\x20" + label;
    const std::string der = selfSignedCertificate("Kyso cert store " + label, 4242);
    ASSERT_FALSE(der.empty());

    auto st = token().storeCertificate(label, id, der);
    ASSERT_TRUE(st.ok()) << st.error().code << ": " << st.error().detail;

    auto byLabel = token().findCertificate(KeyRef{label, std::nullopt});
    ASSERT_TRUE(byLabel.ok()) << byLabel.error().code;
    EXPECT_EQ(hex(*byLabel), hex(der));
    auto byId = token().findCertificate(KeyRef{std::nullopt, id});
    ASSERT_TRUE(byId.ok()) << byId.error().code;
    EXPECT_EQ(hex(*byId), hex(der));

    // Another client sees it as a public X.509 certificate object with our label and id.
    const auto certs = withLabel(pkcs11ToolList("cert", false), label);
    ASSERT_EQ(certs.size(), 1u);
    EXPECT_NE(certs.front().header.find("X.509"), std::string::npos) << certs.front().header;
    EXPECT_EQ(certs.front().attr("ID"), hex(id));
    EXPECT_NE(certs.front().attr("subject").find("Kyso cert store"), std::string::npos)
        << certs.front().attr("subject");
}

TEST_F(TokenCertificates, StoringUnderTheSameLabelReplaces) {
    const std::string label = freshLabel("t-cert-replace");
    const std::string oldId = "old-" + label;
    const std::string newId = "new-" + label;
    const std::string oldDer = selfSignedCertificate("Kyso old", 1);
    const std::string newDer = selfSignedCertificate("Kyso new", 2);
    ASSERT_NE(oldDer, newDer);

    ASSERT_TRUE(token().storeCertificate(label, oldId, oldDer).ok());
    auto st = token().storeCertificate(label, newId, newDer);
    ASSERT_TRUE(st.ok()) << st.error().code << ": " << st.error().detail;

    auto found = token().findCertificate(KeyRef{label, std::nullopt});
    ASSERT_TRUE(found.ok()) << found.error().code;
    EXPECT_EQ(hex(*found), hex(newDer));
    auto old = token().findCertificate(KeyRef{std::nullopt, oldId});
    ASSERT_FALSE(old.ok()) << "the replaced certificate is still on the token";
    EXPECT_EQ(old.error().code, "cert.not_found");

    const auto certs = withLabel(pkcs11ToolList("cert", false), label);
    ASSERT_EQ(certs.size(), 1u) << "expected exactly one certificate labelled " << label;
    EXPECT_EQ(certs.front().attr("ID"), hex(newId));
}

TEST_F(TokenCertificates, InvalidDerIsRefused) {
    const std::string label = freshLabel("t-cert-invalid");
    auto st = token().storeCertificate(label, "id", "not a certificate");
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, "cert.invalid");
    auto found = token().findCertificate(KeyRef{label, std::nullopt});
    ASSERT_FALSE(found.ok());
    EXPECT_EQ(found.error().code, "cert.not_found");
}

TEST_F(TokenCertificates, UnknownCertificateIsNotFound) {
    auto r = token().findCertificate(KeyRef{std::string("t-no-such-cert"), std::nullopt});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "cert.not_found") << r.error().detail;
}

// ==== concurrency ===========================================================================

struct Signed {
    std::string digest;
    std::string sig;
};

// `threads` threads, `perThread` signatures each, every one over its own digest; returns the
// results and counts errors by code.
std::vector<Signed> signConcurrently(Token& token, const KeyInfo& key, SignScheme scheme,
                                     HashAlg hash, unsigned threads, unsigned perThread,
                                     std::map<std::string, unsigned>& errors) {
    std::vector<std::vector<Signed>> results(threads);
    std::vector<std::map<std::string, unsigned>> errs(threads);
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            results[t].reserve(perThread);
            for (unsigned i = 0; i < perThread; ++i) {
                const std::string msg =
                    "thread " + std::to_string(t) + " message " + std::to_string(i);
                Signed s{digestOf(hash, msg), {}};
                auto r = token.sign(key, scheme, hash, s.digest);
                if (r) {
                    s.sig = std::move(r.value());
                    results[t].push_back(std::move(s));
                } else {
                    ++errs[t][r.error().code + ": " + r.error().detail];
                }
            }
        });
    }
    for (auto& th : pool) {
        th.join();
    }
    std::vector<Signed> all;
    for (unsigned t = 0; t < threads; ++t) {
        for (auto& [e, n] : errs[t]) {
            errors[e] += n;
        }
        std::move(results[t].begin(), results[t].end(), std::back_inserter(all));
    }
    return all;
}

TEST_F(TokenConcurrency, EightThreadsThousandRsaSignaturesEach) {
    const KeyInfo key = signingKey(token(), "t-conc-rsa", KeyType::Rsa);
    std::map<std::string, unsigned> errors;
    const auto all =
        signConcurrently(token(), key, SignScheme::RsaPkcs1v15, HashAlg::Sha256, 8, 1000, errors);
    EXPECT_TRUE(errors.empty()) << errors.size()
                                << " kinds of error, first: " << errors.begin()->first << " x"
                                << errors.begin()->second;
    ASSERT_EQ(all.size(), 8000u);
    // Every signature must verify over its own digest: no cross-talk between sessions.
    PkeyPtr pkey = parseSpki(key.publicKeyDer);
    ASSERT_TRUE(pkey);
    unsigned bad = 0;
    for (const auto& s : all) {
        if (!opensslVerify(pkey.get(), SignScheme::RsaPkcs1v15, HashAlg::Sha256, s.digest, s.sig)) {
            ++bad;
        }
    }
    EXPECT_EQ(bad, 0u) << "signatures that do not verify";
    EXPECT_EQ(token().generation(), 1u) << "the token reconnected during the run";
}

TEST_F(TokenConcurrency, EightThreadsOnEcdsaWithASmallSessionPool) {
    // Two sessions for eight threads: most calls wait for a session.
    m_token.reset();  // one Token at a time (see the top of this file)
    TokenConfig cfg = testToken().config();
    cfg.maxSessions = 2;
    auto small = openToken(cfg);
    ASSERT_NE(small, nullptr);
    const KeyInfo key = signingKey(*small, "t-conc-p256", KeyType::Ec);
    std::map<std::string, unsigned> errors;
    const auto all =
        signConcurrently(*small, key, SignScheme::Ecdsa, HashAlg::Sha256, 8, 200, errors);
    EXPECT_TRUE(errors.empty()) << errors.size()
                                << " kinds of error, first: " << errors.begin()->first << " x"
                                << errors.begin()->second;
    ASSERT_EQ(all.size(), 1600u);
    PkeyPtr pkey = parseSpki(key.publicKeyDer);
    ASSERT_TRUE(pkey);
    unsigned bad = 0;
    for (const auto& s : all) {
        if (!opensslVerify(pkey.get(), SignScheme::Ecdsa, HashAlg::Sha256, s.digest, s.sig)) {
            ++bad;
        }
    }
    EXPECT_EQ(bad, 0u) << "signatures that do not verify";
    // A sample through Botan too, over the original messages (results are in thread order).
    for (unsigned t = 0; t < 8; ++t) {
        const std::string msg = "thread " + std::to_string(t) + " message 199";
        EXPECT_TRUE(botanVerify(key.publicKeyDer, SignScheme::Ecdsa, HashAlg::Sha256, msg,
                                all[t * 200 + 199].sig))
            << "Botan rejected " << msg;
    }
}

// ==== losing the token ======================================================================

TEST_F(TokenReconnect, RecoversAfterTheModuleIsFinalized) {
    const KeyInfo key = signingKey(token(), "t-reconnect-rsa", KeyType::Rsa);
    const std::string digest = digestOf(HashAlg::Sha256, "before and after");
    ASSERT_TRUE(token().sign(key, SignScheme::RsaPkcs1v15, HashAlg::Sha256, digest).ok());
    const unsigned before = token().generation();

    ASSERT_EQ(finalizeModule(), kCkrOk);

    auto lost = token().sign(key, SignScheme::RsaPkcs1v15, HashAlg::Sha256, digest);
    ASSERT_FALSE(lost.ok()) << "signed on a finalised module";
    EXPECT_EQ(lost.error().code, "token.unavailable") << lost.error().detail;
    EXPECT_EQ(lost.error().cause, kCkrCryptokiNotInitialized) << lost.error().detail;

    // Same Token object, no restart: the next call reconnects and logs in again.
    auto sig = token().sign(key, SignScheme::RsaPkcs1v15, HashAlg::Sha256, digest);
    ASSERT_TRUE(sig.ok()) << sig.error().code << ": " << sig.error().detail;
    EXPECT_TRUE(
        opensslVerify(key.publicKeyDer, SignScheme::RsaPkcs1v15, HashAlg::Sha256, digest, *sig));
    EXPECT_EQ(token().generation(), before + 1);
    EXPECT_TRUE(token().ready());
    auto found = token().findKey(KeyRef{key.label, std::nullopt});
    ASSERT_TRUE(found.ok()) << found.error().code;
    EXPECT_EQ(found->publicKeyDer, key.publicKeyDer);
}

TEST_F(TokenReconnect, RecoversAfterItsSessionsAreClosed) {
    const KeyInfo key = signingKey(token(), "t-reconnect-rsa", KeyType::Rsa);
    const std::string digest = digestOf(HashAlg::Sha256, "sessions gone");
    ASSERT_TRUE(token().sign(key, SignScheme::RsaPkcs1v15, HashAlg::Sha256, digest).ok());
    const unsigned before = token().generation();

    ASSERT_EQ(closeAllSessions(token().info().slotId), kCkrOk);

    auto lost = token().sign(key, SignScheme::RsaPkcs1v15, HashAlg::Sha256, digest);
    ASSERT_FALSE(lost.ok()) << "signed on a closed session";
    EXPECT_EQ(lost.error().code, "token.unavailable") << lost.error().detail;
    EXPECT_EQ(lost.error().cause, 0xB3UL)
        << "CKR_SESSION_HANDLE_INVALID expected: " << lost.error().detail;
    auto sig = token().sign(key, SignScheme::RsaPkcs1v15, HashAlg::Sha256, digest);
    ASSERT_TRUE(sig.ok()) << sig.error().code << ": " << sig.error().detail;
    EXPECT_TRUE(
        opensslVerify(key.publicKeyDer, SignScheme::RsaPkcs1v15, HashAlg::Sha256, digest, *sig));
    EXPECT_EQ(token().generation(), before + 1);
}

TEST_F(TokenReconnect, ReadyNoticesTheLossAndRecovers) {
    const KeyInfo key = signingKey(token(), "t-reconnect-p256", KeyType::Ec);
    ASSERT_TRUE(token().ready());
    const unsigned before = token().generation();

    ASSERT_EQ(finalizeModule(), kCkrOk);
    EXPECT_FALSE(token().ready()) << "ready() on a finalised module";
    EXPECT_TRUE(token().ready()) << "ready() did not reconnect";
    EXPECT_EQ(token().generation(), before + 1);

    const std::string digest = digestOf(HashAlg::Sha256, "after ready");
    auto sig = token().sign(key, SignScheme::Ecdsa, HashAlg::Sha256, digest);
    ASSERT_TRUE(sig.ok()) << sig.error().detail;
    EXPECT_TRUE(opensslVerify(key.publicKeyDer, SignScheme::Ecdsa, HashAlg::Sha256, digest, *sig));
}

TEST_F(TokenReconnect, RecoversTwiceInARow) {
    const KeyInfo key = signingKey(token(), "t-reconnect-p256", KeyType::Ec);
    const std::string digest = digestOf(HashAlg::Sha256, "twice");
    const unsigned before = token().generation();
    for (unsigned round = 1; round <= 2; ++round) {
        SCOPED_TRACE(round);
        ASSERT_EQ(finalizeModule(), kCkrOk);
        auto lost = token().sign(key, SignScheme::Ecdsa, HashAlg::Sha256, digest);
        ASSERT_FALSE(lost.ok());
        EXPECT_EQ(lost.error().code, "token.unavailable");
        auto sig = token().sign(key, SignScheme::Ecdsa, HashAlg::Sha256, digest);
        ASSERT_TRUE(sig.ok()) << sig.error().detail;
        EXPECT_EQ(token().generation(), before + round);
    }
}

// ==== secrets at rest (AES-256-GCM on the token) ===========================================

// Imports `key` as an AES secret key through pkcs11-tool (another implementation), logged in
// with the PIN through the environment. pkcs11-tool leaves CKA_EXTRACTABLE unset (false on
// SoftHSM2); `sensitive` sets CKA_SENSITIVE.
void pkcs11ToolImportAes(const std::string& label, const std::string& key, bool sensitive) {
    const std::string file = tempDir("aes") + "/key.bin";
    writeFile(file, key);
    std::string cmd = "/usr/bin/pkcs11-tool --module " + shellQuote(softhsmModule()) +
                      " --token-label kyso-test --login --pin env:" + kPinEnv + " --write-object " +
                      shellQuote(file) +
                      " --type secrkey --key-type AES:32 --private --usage-decrypt --label " +
                      shellQuote(label) + (sensitive ? " --sensitive" : "");
    ::setenv(kPinEnv, userPin().c_str(), 1);
    std::string out;
    const int rc = run(cmd, &out);
    ::unsetenv(kPinEnv);
    EXPECT_EQ(rc, 0) << cmd << "\n" << out;
}

std::string randomBytes(std::size_t n) {
    std::string out(n, '\0');
    EXPECT_EQ(RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)), 1);
    return out;
}

// AES-256-GCM by OpenSSL over a blob laid out as seal() promises: IV(12) || ciphertext || tag(16).
std::optional<std::string> opensslGcmOpen(const std::string& key, std::string_view blob,
                                          std::string_view aad) {
    if (blob.size() < 28) {
        return std::nullopt;
    }
    const auto* b = reinterpret_cast<const unsigned char*>(blob.data());
    const std::size_t ctLen = blob.size() - 28;
    std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(),
                                                                        EVP_CIPHER_CTX_free);
    std::string pt(ctLen, '\0');
    int n = 0;
    int fin = 0;
    std::string tag(blob.substr(12 + ctLen));
    const bool ok =
        EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr,
                           reinterpret_cast<const unsigned char*>(key.data()), b) == 1 &&
        EVP_DecryptUpdate(ctx.get(), nullptr, &n,
                          reinterpret_cast<const unsigned char*>(aad.data()),
                          static_cast<int>(aad.size())) == 1 &&
        EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(pt.data()), &n, b + 12,
                          static_cast<int>(ctLen)) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, 16, tag.data()) == 1 &&
        EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(pt.data()) + n, &fin) == 1;
    if (!ok) {
        return std::nullopt;
    }
    return pt;
}

// The same layout produced by OpenSSL, for the token to open.
std::string opensslGcmSeal(const std::string& key, std::string_view plaintext,
                           std::string_view aad) {
    const std::string iv = randomBytes(12);
    std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(),
                                                                        EVP_CIPHER_CTX_free);
    std::string ct(plaintext.size(), '\0');
    unsigned char tag[16];
    int n = 0;
    int fin = 0;
    const bool ok = EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr,
                                       reinterpret_cast<const unsigned char*>(key.data()),
                                       reinterpret_cast<const unsigned char*>(iv.data())) == 1 &&
                    EVP_EncryptUpdate(ctx.get(), nullptr, &n,
                                      reinterpret_cast<const unsigned char*>(aad.data()),
                                      static_cast<int>(aad.size())) == 1 &&
                    EVP_EncryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(ct.data()), &n,
                                      reinterpret_cast<const unsigned char*>(plaintext.data()),
                                      static_cast<int>(plaintext.size())) == 1 &&
                    EVP_EncryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(ct.data()) + n,
                                        &fin) == 1 &&
                    EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, 16, tag) == 1;
    EXPECT_TRUE(ok) << "OpenSSL AES-GCM encryption failed";
    return iv + ct + std::string(reinterpret_cast<char*>(tag), sizeof tag);
}

// The wrapping key most seal tests share (a token object: it outlives each test's Token).
constexpr const char* kSealKey = "t-seal-aes";
// A 20-byte TOTP secret (RFC 6238's SHA-1 test key), as the first user stores them.
const std::string kTotpSecret = "12345678901234567890";
const std::string kTotpAad = "citizen:079201000123:totp";

class TokenSeal : public TokenTest {
  protected:
    void SetUp() override {
        TokenTest::SetUp();
        ASSERT_NE(m_token, nullptr);
        auto k = token().ensureSecretKey(kSealKey);
        ASSERT_TRUE(k.ok()) << k.error().code << ": " << k.error().detail;
    }

    std::string sealOrFail(std::string_view plaintext, std::string_view aad,
                           const std::string& label = kSealKey) {
        auto r = token().seal(label, plaintext, aad);
        if (!r) {
            ADD_FAILURE() << "seal: " << r.error().code << ": " << r.error().detail;
            return {};
        }
        return *r;
    }

    // The error code of an unseal that must fail.
    std::string unsealError(std::string_view sealed, std::string_view aad,
                            const std::string& label = kSealKey) {
        auto r = token().unseal(label, sealed, aad);
        return r ? std::string("(unsealed)") : r.error().code;
    }
};

using TokenSecretKey = TokenTest;

TEST_F(TokenSeal, RoundTrip) {
    const std::string binary = randomBytes(4096);
    for (const auto& [plaintext, aad] : std::vector<std::pair<std::string, std::string>>{
             {kTotpSecret, kTotpAad},
             {"", kTotpAad},
             {kTotpSecret, ""},
             {binary, std::string("aad with a \0 inside", 19)},
         }) {
        SCOPED_TRACE(plaintext.size());
        const std::string sealed = sealOrFail(plaintext, aad);
        ASSERT_FALSE(sealed.empty());
        auto opened = token().unseal(kSealKey, sealed, aad);
        ASSERT_TRUE(opened.ok()) << opened.error().code << ": " << opened.error().detail;
        EXPECT_EQ(opened->view(), plaintext);
    }
}

TEST_F(TokenSeal, BlobIsIvCiphertextAndTag) {
    for (std::size_t n : {0u, 1u, 20u, 1000u}) {
        SCOPED_TRACE(n);
        const std::string plaintext(n, 'x');
        const std::string sealed = sealOrFail(plaintext, kTotpAad);
        EXPECT_EQ(sealed.size(), 12 + n + 16);
        // (A one-byte plaintext is in 29 random-looking bytes one time in nine: only a longer
        // one says anything.)
        if (n >= 20) {
            EXPECT_EQ(sealed.find(plaintext), std::string::npos) << "plaintext in the blob";
        }
    }
}

TEST_F(TokenSeal, SamePlaintextTwiceGivesDifferentBlobs) {
    const std::string a = sealOrFail(kTotpSecret, kTotpAad);
    const std::string b = sealOrFail(kTotpSecret, kTotpAad);
    ASSERT_EQ(a.size(), b.size());
    EXPECT_NE(a.substr(0, 12), b.substr(0, 12)) << "IV repeated";
    EXPECT_NE(a.substr(12), b.substr(12)) << "ciphertext repeated";
    auto ra = token().unseal(kSealKey, a, kTotpAad);
    auto rb = token().unseal(kSealKey, b, kTotpAad);
    ASSERT_TRUE(ra.ok() && rb.ok());
    EXPECT_EQ(ra->view(), kTotpSecret);
    EXPECT_EQ(rb->view(), kTotpSecret);
}

TEST_F(TokenSeal, WrongAadIsTampered) {
    const std::string sealed = sealOrFail(kTotpSecret, kTotpAad);
    const unsigned generation = token().generation();
    EXPECT_EQ(unsealError(sealed, "citizen:079201000124:totp"), "crypto.tampered");
    EXPECT_EQ(unsealError(sealed, ""), "crypto.tampered");
    EXPECT_EQ(unsealError(sealed, kTotpAad + "x"), "crypto.tampered");
    const std::string noAad = sealOrFail(kTotpSecret, "");
    EXPECT_EQ(unsealError(noAad, kTotpAad), "crypto.tampered");
    // A tag failure is the data's fault, not the token's: no reconnect, and the token works on.
    EXPECT_EQ(token().generation(), generation) << "a bad tag made the token reconnect";
    EXPECT_TRUE(token().unseal(kSealKey, sealed, kTotpAad).ok());
}

TEST_F(TokenSeal, AnyFlippedByteIsTampered) {
    const std::string sealed = sealOrFail(kTotpSecret, kTotpAad);
    ASSERT_EQ(sealed.size(), 48u);
    const unsigned generation = token().generation();
    for (std::size_t i = 0; i < sealed.size(); ++i) {
        SCOPED_TRACE(i < 12 ? "IV" : i < 32 ? "ciphertext" : "tag");
        SCOPED_TRACE(i);
        std::string bad = sealed;
        bad[i] = static_cast<char>(bad[i] ^ 0x01);
        EXPECT_EQ(unsealError(bad, kTotpAad), "crypto.tampered");
    }
    EXPECT_EQ(token().generation(), generation) << "a bad tag made the token reconnect";
}

TEST_F(TokenSeal, TruncatedOrExtendedBlobsAreRefused) {
    const std::string sealed = sealOrFail(kTotpSecret, kTotpAad);
    for (std::size_t n : {0u, 1u, 12u, 27u}) {
        SCOPED_TRACE(n);
        EXPECT_EQ(unsealError(sealed.substr(0, n), kTotpAad), "crypto.invalid");
    }
    // Long enough to parse, but bytes are missing or added: the tag says so.
    EXPECT_EQ(unsealError(sealed.substr(0, 28), kTotpAad), "crypto.tampered");
    EXPECT_EQ(unsealError(sealed.substr(0, sealed.size() - 1), kTotpAad), "crypto.tampered");
    EXPECT_EQ(unsealError(sealed + "x", kTotpAad), "crypto.tampered");
}

TEST_F(TokenSeal, AnotherKeyDoesNotUnseal) {
    auto other = token().ensureSecretKey("t-seal-aes-other");
    ASSERT_TRUE(other.ok()) << other.error().code << ": " << other.error().detail;
    const std::string sealed = sealOrFail(kTotpSecret, kTotpAad);
    EXPECT_EQ(unsealError(sealed, kTotpAad, "t-seal-aes-other"), "crypto.tampered");
    const std::string sealedOther = sealOrFail(kTotpSecret, kTotpAad, "t-seal-aes-other");
    EXPECT_EQ(unsealError(sealedOther, kTotpAad), "crypto.tampered");
}

TEST_F(TokenSeal, UnknownKeyIsNotFoundAndNotCreated) {
    const std::string label = freshLabel("t-seal-missing");
    auto sealed = token().seal(label, kTotpSecret, kTotpAad);
    ASSERT_FALSE(sealed.ok());
    EXPECT_EQ(sealed.error().code, "key.not_found") << sealed.error().detail;
    const std::string blob = sealOrFail(kTotpSecret, kTotpAad);
    EXPECT_EQ(unsealError(blob, kTotpAad, label), "key.not_found");
    EXPECT_TRUE(withLabel(pkcs11ToolList("secrkey", true), label).empty())
        << "seal or unseal created a key";
}

TEST_F(TokenSecretKey, EmptyLabelIsRefused) {
    auto k = token().ensureSecretKey("");
    ASSERT_FALSE(k.ok());
    EXPECT_EQ(k.error().code, "key.spec");
}

TEST_F(TokenSecretKey, EnsureTwiceReturnsTheSameKey) {
    const std::string label = freshLabel("t-secret-once");
    auto first = token().ensureSecretKey(label);
    ASSERT_TRUE(first.ok()) << first.error().code << ": " << first.error().detail;
    EXPECT_TRUE(first->generated);
    EXPECT_EQ(first->label, label);
    EXPECT_EQ(first->bits, 256u);
    EXPECT_EQ(first->id.size(), 16u);
    auto second = token().ensureSecretKey(label);
    ASSERT_TRUE(second.ok()) << second.error().code << ": " << second.error().detail;
    EXPECT_FALSE(second->generated);
    EXPECT_EQ(second->id, first->id);
    EXPECT_EQ(withLabel(pkcs11ToolList("secrkey", true), label).size(), 1u)
        << "pkcs11-tool should list exactly one secret key " << label;

    // Another Token (as after a restart) finds the same key and opens what the first sealed.
    auto sealed = token().seal(label, kTotpSecret, kTotpAad);
    ASSERT_TRUE(sealed.ok()) << sealed.error().detail;
    m_token.reset();
    auto again = openToken();
    ASSERT_NE(again, nullptr);
    auto third = again->ensureSecretKey(label);
    ASSERT_TRUE(third.ok()) << third.error().detail;
    EXPECT_FALSE(third->generated);
    EXPECT_EQ(third->id, first->id);
    auto opened = again->unseal(label, *sealed, kTotpAad);
    ASSERT_TRUE(opened.ok()) << opened.error().code << ": " << opened.error().detail;
    EXPECT_EQ(opened->view(), kTotpSecret);
}

TEST_F(TokenSecretKey, ConcurrentEnsureMakesOneKey) {
    const std::string label = freshLabel("t-secret-race");
    std::vector<std::optional<SecretKeyInfo>> got(8);
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < 8; ++t) {
        pool.emplace_back([&, t] {
            auto k = token().ensureSecretKey(label);
            if (k) {
                got[t] = *k;
            }
        });
    }
    for (auto& th : pool) {
        th.join();
    }
    unsigned generated = 0;
    for (const auto& k : got) {
        ASSERT_TRUE(k.has_value()) << "an ensureSecretKey call failed";
        EXPECT_EQ(k->id, got[0]->id);
        generated += k->generated ? 1 : 0;
    }
    EXPECT_EQ(generated, 1u);
    EXPECT_EQ(withLabel(pkcs11ToolList("secrkey", true), label).size(), 1u);
}

// What another PKCS#11 client sees of the wrapping key: private (invisible without login), an
// AES-256 key generated on the token that never was readable, usable to encrypt and decrypt only.
TEST_F(TokenSecretKey, KeyIsSensitiveNeverExtractableAndPrivate) {
    const std::string label = freshLabel("t-secret-attrs");
    auto key = token().ensureSecretKey(label);
    ASSERT_TRUE(key.ok()) << key.error().code << ": " << key.error().detail;
    // As the token reports them to us (C_GetAttributeValue) ...
    EXPECT_TRUE(key->sensitive);
    EXPECT_FALSE(key->extractable);

    // ... and to pkcs11-tool.
    EXPECT_TRUE(withLabel(pkcs11ToolList("secrkey", false), label).empty())
        << "secret key visible without login (CKA_PRIVATE false?)";
    const auto keys = withLabel(pkcs11ToolList("secrkey", true), label);
    ASSERT_EQ(keys.size(), 1u);
    const P11Object& k = keys.front();
    EXPECT_NE(k.header.find("AES length 32"), std::string::npos) << k.header;
    const auto access = commaList(k.attr("Access"));
    EXPECT_TRUE(contains(access, "sensitive")) << k.attr("Access");
    EXPECT_TRUE(contains(access, "always sensitive")) << k.attr("Access");
    EXPECT_TRUE(contains(access, "never extractable")) << k.attr("Access");
    EXPECT_FALSE(contains(access, "extractable")) << k.attr("Access");
    EXPECT_TRUE(contains(access, "local")) << "not generated on the token: " << k.attr("Access");
    EXPECT_EQ(commaList(k.attr("Usage")), (std::vector<std::string>{"encrypt", "decrypt"}))
        << k.attr("Usage");
    EXPECT_EQ(k.attr("ID"), hex(key->id));
}

// The independent check that seal() is AES-256-GCM with the documented layout: a key whose value
// the test knows, imported by pkcs11-tool; OpenSSL opens what the token sealed and the token
// opens what OpenSSL sealed.
TEST_F(TokenSecretKey, SealIsAesGcmAsOpenSslComputesIt) {
    const std::string label = freshLabel("t-secret-imported");
    const std::string aesKey = randomBytes(32);
    pkcs11ToolImportAes(label, aesKey, true);

    auto sealed = token().seal(label, kTotpSecret, kTotpAad);
    ASSERT_TRUE(sealed.ok()) << sealed.error().code << ": " << sealed.error().detail;
    auto opened = opensslGcmOpen(aesKey, *sealed, kTotpAad);
    ASSERT_TRUE(opened.has_value()) << "OpenSSL rejected the token's AES-GCM blob";
    EXPECT_EQ(*opened, kTotpSecret);
    EXPECT_FALSE(opensslGcmOpen(aesKey, *sealed, "other aad").has_value());

    const std::string fromOpenSsl = opensslGcmSeal(aesKey, kTotpSecret, kTotpAad);
    auto back = token().unseal(label, fromOpenSsl, kTotpAad);
    ASSERT_TRUE(back.ok()) << back.error().code << ": " << back.error().detail;
    EXPECT_EQ(back->view(), kTotpSecret);

    // Usable, but not what ensureSecretKey promises: its value existed outside the token.
    auto ensured = token().ensureSecretKey(label);
    ASSERT_FALSE(ensured.ok());
    EXPECT_EQ(ensured.error().code, "key.unsupported") << ensured.error().detail;
}

TEST_F(TokenSecretKey, ReadableKeyIsRefused) {
    const std::string label = freshLabel("t-secret-readable");
    pkcs11ToolImportAes(label, randomBytes(32), false);
    auto sealed = token().seal(label, kTotpSecret, kTotpAad);
    ASSERT_FALSE(sealed.ok()) << "sealed with a key that is not sensitive";
    EXPECT_EQ(sealed.error().code, "key.unsupported") << sealed.error().detail;
    auto ensured = token().ensureSecretKey(label);
    ASSERT_FALSE(ensured.ok());
    EXPECT_EQ(ensured.error().code, "key.unsupported") << ensured.error().detail;
}

TEST_F(TokenConcurrency, EightThreadsTwoHundredSealRoundTripsEach) {
    ASSERT_TRUE(token().ensureSecretKey(kSealKey).ok());
    std::vector<std::map<std::string, unsigned>> errs(8);
    std::vector<unsigned> mismatches(8, 0);
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < 8; ++t) {
        pool.emplace_back([&, t] {
            for (unsigned i = 0; i < 200; ++i) {
                const std::string secret = "secret " + std::to_string(t) + "/" + std::to_string(i);
                const std::string aad = "citizen:" + std::to_string(t * 1000 + i);
                auto sealed = token().seal(kSealKey, secret, aad);
                if (!sealed) {
                    ++errs[t]["seal " + sealed.error().code + ": " + sealed.error().detail];
                    continue;
                }
                auto opened = token().unseal(kSealKey, *sealed, aad);
                if (!opened) {
                    ++errs[t]["unseal " + opened.error().code + ": " + opened.error().detail];
                } else if (opened->view() != secret) {
                    ++mismatches[t];
                }
            }
        });
    }
    for (auto& th : pool) {
        th.join();
    }
    std::map<std::string, unsigned> errors;
    unsigned mismatched = 0;
    for (unsigned t = 0; t < 8; ++t) {
        for (auto& [e, n] : errs[t]) {
            errors[e] += n;
        }
        mismatched += mismatches[t];
    }
    EXPECT_TRUE(errors.empty()) << errors.size()
                                << " kinds of error, first: " << errors.begin()->first << " x"
                                << errors.begin()->second;
    EXPECT_EQ(mismatched, 0u) << "round trips that gave back another plaintext";
    EXPECT_EQ(token().generation(), 1u) << "the token reconnected during the run";
}

TEST_F(TokenReconnect, SealAndUnsealRecoverAfterTheModuleIsFinalized) {
    ASSERT_TRUE(token().ensureSecretKey(kSealKey).ok());
    auto before = token().seal(kSealKey, kTotpSecret, kTotpAad);
    ASSERT_TRUE(before.ok()) << before.error().detail;
    const unsigned generation = token().generation();

    ASSERT_EQ(finalizeModule(), kCkrOk);
    auto lost = token().seal(kSealKey, kTotpSecret, kTotpAad);
    ASSERT_FALSE(lost.ok()) << "sealed on a finalised module";
    EXPECT_EQ(lost.error().code, "token.unavailable") << lost.error().detail;
    EXPECT_EQ(lost.error().cause, kCkrCryptokiNotInitialized) << lost.error().detail;
    auto after = token().seal(kSealKey, kTotpSecret, kTotpAad);
    ASSERT_TRUE(after.ok()) << after.error().code << ": " << after.error().detail;
    EXPECT_EQ(token().generation(), generation + 1);

    ASSERT_EQ(finalizeModule(), kCkrOk);
    auto lostOpen = token().unseal(kSealKey, *before, kTotpAad);
    ASSERT_FALSE(lostOpen.ok()) << "unsealed on a finalised module";
    EXPECT_EQ(lostOpen.error().code, "token.unavailable") << lostOpen.error().detail;
    for (const std::string* blob : {&*before, &*after}) {
        auto opened = token().unseal(kSealKey, *blob, kTotpAad);
        ASSERT_TRUE(opened.ok()) << opened.error().code << ": " << opened.error().detail;
        EXPECT_EQ(opened->view(), kTotpSecret);
    }
    EXPECT_EQ(token().generation(), generation + 2);
}

// ==== several Tokens in one process ========================================================

// C_Login while the user is already logged in (by another Token) returns
// CKR_USER_ALREADY_LOGGED_IN without checking the PIN: the PIN must still be checked.
TEST(TokenSharing, WrongPinIsRefusedWhileAnotherTokenIsLoggedIn) {
    auto good = openToken();
    ASSERT_NE(good, nullptr);
    const std::string pinFile = tempDir("pin") + "/wrong.pin";
    writeFile(pinFile, wrongPin() + "\n");
    TokenConfig cfg = testToken().config();
    cfg.pinSource = "file:" + pinFile;
    auto r = Token::open(cfg);
    ASSERT_FALSE(r.ok()) << "a Token with a wrong PIN was opened";
    EXPECT_EQ(r.error().code, "token.pin_incorrect");
}

// Destroying a Token must not finalise the module, nor close sessions that are not its own.
TEST(TokenSharing, ClosingOneTokenDoesNotDisturbAnother) {
    auto a = openToken();
    ASSERT_NE(a, nullptr);
    const KeyInfo key = signingKey(*a, "t-multi-p256", KeyType::Ec);
    {
        auto b = openToken();
        ASSERT_NE(b, nullptr);
    }
    auto sig = a->sign(key, SignScheme::Ecdsa, HashAlg::Sha256, digestOf(HashAlg::Sha256, "m"));
    EXPECT_TRUE(sig.ok()) << sig.error().code << ": " << sig.error().detail;
}

// The public half is found by label and id and checked against the private key, so keys whose
// CKA_ID is shared keep their own public keys (SoftHSM2's EC private objects have no point).
TEST(TokenSharing, KeysSharingAnIdAreBothStillUsable) {
    auto token = openToken();
    ASSERT_NE(token, nullptr);
    const std::string id = freshLabel("shared-ec-id");
    KeySpec ec;
    ec.type = KeyType::Ec;
    ec.label = freshLabel("t-shared-ec");
    ec.id = id;
    auto first = token->generateKey(ec);
    ASSERT_TRUE(first.ok()) << first.error().detail;

    KeySpec rsa;
    rsa.type = KeyType::Rsa;
    rsa.label = freshLabel("t-shared-rsa");
    rsa.id = id;
    ASSERT_TRUE(token->generateKey(rsa).ok());
    auto again = token->findKey(KeyRef{ec.label, std::nullopt});
    ASSERT_TRUE(again.ok()) << again.error().code << ": " << again.error().detail;
    EXPECT_EQ(again->publicKeyDer, first->publicKeyDer);

    KeySpec ec2 = ec;
    ec2.label = freshLabel("t-shared-ec");
    auto second = token->generateKey(ec2);
    EXPECT_TRUE(second.ok()) << second.error().code << ": " << second.error().detail;
}

}  // namespace
}  // namespace kyso::hsm
