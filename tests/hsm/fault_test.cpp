// The token layer under PKCS#11 faults: a Token opened on the fault shim (tests/support/p11fault,
// docs/FAULTS.md) in front of the real SoftHSM2 token. The shim pulls the token out, puts it in
// error, invalidates sessions, slows every call or fails the next few; each test checks that the
// failing call says "token.unavailable" with the token's CK_RV, that the same Token recovers by
// itself once the shim says "ok", how many C_Login calls reached the token, and that every
// signature made afterwards verifies with OpenSSL.
//
// The shim loads its own copy of SoftHSM2 (another instance than the direct Tokens of the other
// test files use), so pulling its token out disturbs nothing else in this process.
#ifndef CRYPTOKI_GNU
#define CRYPTOKI_GNU 1  // the header's GNU names (ck_function_list), as hsm/src uses them
#endif
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <p11-kit/pkcs11.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "kyso/hsm/token.h"
#include "test_env.h"

namespace kyso::hsm {
namespace {

using test::readFile;
using test::tempDir;
using test::testToken;
using test::writeFile;

constexpr unsigned long kCkrDeviceError = 0x30;
constexpr unsigned long kCkrDeviceRemoved = 0x32;
constexpr unsigned long kCkrSessionHandleInvalid = 0xb3;

// The shim's control and counter files for this process; set before the shim is first loaded
// (it reads its environment once).
struct Shim {
    std::string control;
    std::string counts;
};

const Shim& shim() {
    static Shim s = [] {
        Shim r;
        const std::string dir = tempDir("p11fault");
        r.control = dir + "/control";
        r.counts = dir + "/counts";
        ::setenv("KYSO_P11FAULT_CONTROL", r.control.c_str(), 1);
        ::setenv("KYSO_P11FAULT_COUNTS", r.counts.c_str(), 1);
        ::setenv("KYSO_P11FAULT_MODULE", test::softhsmModule(), 1);
        testToken();  // SOFTHSM2_CONF for the real module
        return r;
    }();
    return s;
}

// Replaces the control file in one step (rename), as the shim expects.
void control(const std::string& commands) {
    const std::string tmp = shim().control + ".new";
    writeFile(tmp, commands + "\n");
    ASSERT_EQ(std::rename(tmp.c_str(), shim().control.c_str()), 0);
}

std::map<std::string, unsigned long> counts() {
    std::map<std::string, unsigned long> m;
    std::istringstream in(readFile(shim().counts));
    std::string name;
    unsigned long v = 0;
    while (in >> name >> v) {
        m[name] = v;
    }
    return m;
}

TokenConfig shimConfig() {
    shim();
    TokenConfig c = testToken().config();
    c.modulePath = KYSO_P11FAULT;
    return c;
}

std::string sha256(const std::string& data) {
    unsigned char md[SHA256_DIGEST_LENGTH];
    ::SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
    return std::string(reinterpret_cast<char*>(md), sizeof md);
}

// ECDSA over a SHA-256 digest, checked by OpenSSL against the key's SubjectPublicKeyInfo.
bool verifies(const KeyInfo& key, const std::string& digest, const std::string& sig) {
    const auto* p = reinterpret_cast<const unsigned char*>(key.publicKeyDer.data());
    EVP_PKEY* pkey = ::d2i_PUBKEY(nullptr, &p, static_cast<long>(key.publicKeyDer.size()));
    if (pkey == nullptr) {
        return false;
    }
    EVP_PKEY_CTX* ctx = ::EVP_PKEY_CTX_new(pkey, nullptr);
    const bool ok = ctx != nullptr && ::EVP_PKEY_verify_init(ctx) == 1 &&
                    ::EVP_PKEY_CTX_set_signature_md(ctx, ::EVP_sha256()) == 1 &&
                    ::EVP_PKEY_verify(
                        ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                        reinterpret_cast<const unsigned char*>(digest.data()), digest.size()) == 1;
    ::EVP_PKEY_CTX_free(ctx);
    ::EVP_PKEY_free(pkey);
    return ok;
}

class TokenFault : public ::testing::Test {
  protected:
    void SetUp() override {
        control("ok");
        auto r = Token::open(shimConfig());
        ASSERT_TRUE(r.ok()) << r.error().code << ": " << r.error().detail;
        m_token = std::move(r.value());
        auto found = m_token->findKey(KeyRef{std::string("t-fault-p256"), std::nullopt});
        if (found) {
            m_key = *found;
        } else {
            KeySpec spec;
            spec.type = KeyType::Ec;
            spec.label = "t-fault-p256";
            auto made = m_token->generateKey(spec);
            ASSERT_TRUE(made.ok()) << made.error().detail;
            m_key = *made;
        }
    }
    void TearDown() override {
        control("ok");
        m_token.reset();
    }

    Token& token() { return *m_token; }

    Result<std::string> sign(const std::string& message) {
        return m_token->sign(m_key, SignScheme::Ecdsa, HashAlg::Sha256, sha256(message));
    }

    // A signature now, checked by OpenSSL.
    void expectSigns(const std::string& message) {
        auto sig = sign(message);
        ASSERT_TRUE(sig.ok()) << sig.error().code << ": " << sig.error().detail;
        EXPECT_TRUE(verifies(m_key, sha256(message), *sig)) << "OpenSSL rejected the signature";
    }

    void expectUnavailable(const Result<std::string>& r, unsigned long cause) {
        ASSERT_FALSE(r.ok()) << "signed while the token was faulty";
        EXPECT_EQ(r.error().code, "token.unavailable") << r.error().detail;
        EXPECT_EQ(r.error().cause, cause) << r.error().detail;
    }

    std::unique_ptr<Token> m_token;
    KeyInfo m_key;
};

TEST_F(TokenFault, RemovedTokenIsUnavailableThenRecoversWithOneLogin) {
    expectSigns("before removal");
    const unsigned generation = token().generation();
    auto before = counts();

    control("removed");
    expectUnavailable(sign("while removed"), kCkrDeviceRemoved);
    // The reconnect finds no token: still "token.unavailable", never "token.not_found".
    for (int i = 0; i < 5; ++i) {
        auto again = sign("still removed");
        ASSERT_FALSE(again.ok());
        EXPECT_EQ(again.error().code, "token.unavailable") << again.error().detail;
    }
    auto find = token().findKey(KeyRef{m_key.label, std::nullopt});
    ASSERT_FALSE(find.ok());
    EXPECT_EQ(find.error().code, "token.unavailable") << find.error().detail;
    EXPECT_FALSE(token().ready());
    EXPECT_EQ(counts()["login_calls"], before["login_calls"])
        << "a login was tried with no token present";

    control("ok");
    expectSigns("after re-insertion");
    EXPECT_TRUE(token().ready());
    EXPECT_EQ(token().generation(), generation + 1);
    auto after = counts();
    EXPECT_EQ(after["login_forwarded"], before["login_forwarded"] + 1);
    EXPECT_EQ(after["login_ok"], before["login_ok"] + 1);
    EXPECT_EQ(after["login_rejected"], before["login_rejected"]);
    EXPECT_GE(after["resets"], before["resets"] + 1) << "the shim did not re-insert";
}

TEST_F(TokenFault, ReinsertionWhileIdleEndsTheOldSessions) {
    expectSigns("before");
    auto before = counts();
    const unsigned generation = token().generation();
    // Pulled out and put back while this Token made no call. Another caller of the same module
    // lists the slots meanwhile, as a reader's hotplug handler would: that is what the shim sees.
    void* dl = ::dlopen(KYSO_P11FAULT, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    ASSERT_NE(dl, nullptr) << "the shim is not loaded";
    auto getList =
        reinterpret_cast<ck_rv_t (*)(ck_function_list**)>(::dlsym(dl, "C_GetFunctionList"));
    ASSERT_NE(getList, nullptr);
    ck_function_list* fl = nullptr;
    ASSERT_EQ(getList(&fl), CKR_OK);
    unsigned long present = 99;
    control("removed");
    ASSERT_EQ(fl->C_GetSlotList(1, nullptr, &present), CKR_OK);
    EXPECT_EQ(present, 0u) << "the removed token is still listed";
    control("ok");
    ASSERT_EQ(fl->C_GetSlotList(1, nullptr, &present), CKR_OK);
    EXPECT_GE(present, 1u) << "the re-inserted token is not listed";
    ::dlclose(dl);

    // The sessions of before are gone, as after a real re-insertion: the first call finds its
    // session invalid, the next one reconnects and logs in once.
    expectUnavailable(sign("old session"), kCkrSessionHandleInvalid);
    expectSigns("after idle re-insertion");
    EXPECT_EQ(token().generation(), generation + 1);
    auto after = counts();
    EXPECT_EQ(after["login_forwarded"], before["login_forwarded"] + 1);
    EXPECT_EQ(after["login_ok"], before["login_ok"] + 1);
    EXPECT_EQ(after["resets"], before["resets"] + 1);
}

TEST_F(TokenFault, DeviceErrorIsUnavailableThenRecovers) {
    expectSigns("before");
    auto before = counts();
    control("device_error");
    expectUnavailable(sign("in error"), kCkrDeviceError);
    for (int i = 0; i < 3; ++i) {
        auto again = sign("still in error");
        ASSERT_FALSE(again.ok());
        EXPECT_EQ(again.error().code, "token.unavailable") << again.error().detail;
    }
    EXPECT_FALSE(token().ready());
    EXPECT_EQ(counts()["login_calls"], before["login_calls"]);

    control("ok");
    expectSigns("after the error");
    EXPECT_TRUE(token().ready());
    EXPECT_EQ(counts()["login_forwarded"], before["login_forwarded"] + 1);
}

TEST_F(TokenFault, InvalidSessionsAreUnavailableThenRecover) {
    expectSigns("before");
    auto before = counts();
    control("session_invalid");
    expectUnavailable(sign("sessions invalid"), kCkrSessionHandleInvalid);
    for (int i = 0; i < 3; ++i) {
        auto again = sign("still invalid");
        ASSERT_FALSE(again.ok());
        EXPECT_EQ(again.error().code, "token.unavailable") << again.error().detail;
    }
    EXPECT_FALSE(token().ready());
    // Logins were attempted on the reconnects but none reached the token.
    EXPECT_EQ(counts()["login_forwarded"], before["login_forwarded"]);

    control("ok");
    expectSigns("after");
    EXPECT_EQ(counts()["login_forwarded"], before["login_forwarded"] + 1);
    EXPECT_EQ(counts()["login_ok"], before["login_ok"] + 1);
}

TEST_F(TokenFault, OneShotFailureCostsOneCallAndOneLogin) {
    expectSigns("before");
    auto before = counts();
    const unsigned generation = token().generation();
    control("fail_next 1 CKR_DEVICE_ERROR");
    expectUnavailable(sign("one-shot"), kCkrDeviceError);
    expectSigns("next call");
    expectSigns("and the one after");
    EXPECT_EQ(token().generation(), generation + 1);
    EXPECT_EQ(counts()["login_forwarded"], before["login_forwarded"] + 1);
}

TEST_F(TokenFault, SlowTokenStillAnswersFromManyThreads) {
    expectSigns("before");
    auto before = counts();
    control("delay 20");
    std::atomic<unsigned> good{0};
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 3; ++i) {
                const std::string msg = "slow " + std::to_string(t) + "/" + std::to_string(i);
                auto sig = sign(msg);
                if (sig.ok() && verifies(m_key, sha256(msg), *sig)) {
                    ++good;
                }
            }
        });
    }
    for (auto& th : threads) {
        th.join();
    }
    EXPECT_EQ(good.load(), 12u);
    EXPECT_EQ(counts()["login_calls"], before["login_calls"]) << "a slow token is not lost";
}

TEST_F(TokenFault, FlappingTokenUnderLoadEndsWorking) {
    std::atomic<bool> stop{false};
    std::atomic<unsigned> ok{0};
    std::atomic<unsigned> unavailable{0};
    std::atomic<unsigned> other{0};
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (unsigned i = 0; !stop; ++i) {
                const std::string msg = "flap " + std::to_string(t) + "/" + std::to_string(i);
                auto sig = sign(msg);
                if (sig.ok()) {
                    ++(verifies(m_key, sha256(msg), *sig) ? ok : other);
                } else if (sig.error().code == "token.unavailable") {
                    ++unavailable;
                } else {
                    ++other;
                }
            }
        });
    }
    for (const char* state : {"removed", "ok", "device_error", "ok", "session_invalid", "ok"}) {
        control(state);
        std::this_thread::sleep_for(std::chrono::milliseconds(150));
    }
    stop = true;
    for (auto& th : threads) {
        th.join();
    }
    EXPECT_EQ(other.load(), 0u) << "a result other than a good signature or token.unavailable";
    EXPECT_GT(unavailable.load(), 0u);
    EXPECT_GT(ok.load(), 0u);
    expectSigns("after the flapping");
}

TEST(TokenFaultPin, WrongPinAtOpenIsOneLoginAttempt) {
    // No other Token of this process is open on the shim, so the token itself checks the PIN.
    control("ok");
    auto before = counts();
    const std::string pinFile = tempDir("fault-pin") + "/wrong.pin";
    std::string pin = readFile(testToken().pinFile);
    while (!pin.empty() && (pin.back() == '\n' || pin.back() == '\r')) {
        pin.pop_back();
    }
    pin.back() = static_cast<char>('0' + (pin.back() - '0' + 1) % 10);
    writeFile(pinFile, pin + "\n");
    TokenConfig cfg = shimConfig();
    cfg.pinSource = "file:" + pinFile;
    auto r = Token::open(cfg);
    ASSERT_FALSE(r.ok()) << "a wrong PIN was accepted";
    EXPECT_EQ(r.error().code, "token.pin_incorrect") << r.error().detail;
    EXPECT_EQ(r.error().detail.find(pin), std::string::npos) << "PIN in error detail";
    auto after = counts();
    EXPECT_EQ(after["login_calls"], before["login_calls"] + 1);
    EXPECT_EQ(after["login_forwarded"], before["login_forwarded"] + 1);
    EXPECT_EQ(after["login_rejected"], before["login_rejected"] + 1);
    EXPECT_EQ(after["login_ok"], before["login_ok"]);
    // One refusal is not a lockout: the right PIN still opens.
    auto good = Token::open(shimConfig());
    ASSERT_TRUE(good.ok()) << good.error().code << ": " << good.error().detail;
    EXPECT_TRUE((*good)->ready());
}

TEST_F(TokenFault, WrongPinAfterRecoveryIsTriedOnceAndNeverAgain) {
    // A Token of its own with a PIN file the test can change.
    control("ok");
    const std::string pinFile = tempDir("fault-pin") + "/user.pin";
    const std::string goodPin = readFile(testToken().pinFile);
    writeFile(pinFile, goodPin);
    TokenConfig cfg = shimConfig();
    cfg.pinSource = "file:" + pinFile;
    m_token.reset();
    auto r = Token::open(cfg);
    ASSERT_TRUE(r.ok()) << r.error().detail;
    m_token = std::move(r.value());
    expectSigns("with the right PIN");

    control("removed");
    expectUnavailable(sign("removed"), kCkrDeviceRemoved);
    std::string wrong = goodPin;
    while (!wrong.empty() && (wrong.back() == '\n' || wrong.back() == '\r')) {
        wrong.pop_back();
    }
    wrong.back() = static_cast<char>('0' + (wrong.back() - '0' + 1) % 10);
    writeFile(pinFile, wrong + "\n");
    auto before = counts();
    control("ok");
    for (int i = 0; i < 10; ++i) {
        auto refused = sign("wrong PIN");
        ASSERT_FALSE(refused.ok());
        EXPECT_EQ(refused.error().code, "token.pin_incorrect") << refused.error().detail;
        EXPECT_EQ(refused.error().detail.find(wrong), std::string::npos) << "PIN in error detail";
    }
    EXPECT_FALSE(token().ready());
    auto after = counts();
    EXPECT_EQ(after["login_calls"], before["login_calls"] + 1) << "the PIN was retried";
    EXPECT_EQ(after["login_forwarded"], before["login_forwarded"] + 1);
    EXPECT_EQ(after["login_rejected"], before["login_rejected"] + 1);
    EXPECT_EQ(after["login_ok"], before["login_ok"]);
    // The file is right again: still no retry from this Token.
    writeFile(pinFile, goodPin);
    auto still = sign("right PIN again");
    ASSERT_FALSE(still.ok());
    EXPECT_EQ(still.error().code, "token.pin_incorrect");
    EXPECT_EQ(counts()["login_calls"], after["login_calls"]);
}

TEST(TokenFaultOpen, TokenAbsentAtStartIsNotFound) {
    shimConfig();
    control("removed");
    auto r = Token::open(shimConfig());
    control("ok");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "token.not_found") << r.error().detail;
}

}  // namespace
}  // namespace kyso::hsm
