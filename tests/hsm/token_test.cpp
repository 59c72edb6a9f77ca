#include <gtest/gtest.h>
#include <dlfcn.h>
#include <openssl/sha.h>
#include "test_env.h"
using namespace kyso;
static std::string dg() { return std::string(32, 'a'); }
TEST(Exp, Interference) {
    auto a = hsm::Token::open(test::testToken().config());
    ASSERT_TRUE(a.ok()) << a.error().detail;
    hsm::KeySpec sp; sp.label = "exp-k"; sp.type = hsm::KeyType::Ec;
    auto k = (*a)->generateKey(sp);
    ASSERT_TRUE(k.ok()) << k.error().detail;
    auto s = (*a)->sign(*k, hsm::SignScheme::Ecdsa, hsm::HashAlg::Sha256, dg());
    printf("A sign: %d\n", s.ok());
    {
        auto b = hsm::Token::open(test::testToken().config());
        ASSERT_TRUE(b.ok()) << b.error().detail;
        s = (*a)->sign(*k, hsm::SignScheme::Ecdsa, hsm::HashAlg::Sha256, dg());
        printf("A sign with B alive: %d %s gen %u\n", s.ok(), s.ok() ? "" : s.error().detail.c_str(), (*a)->generation());
        auto sb = (*b)->sign(*k, hsm::SignScheme::Ecdsa, hsm::HashAlg::Sha256, dg());
        printf("B sign: %d %s\n", sb.ok(), sb.ok() ? "" : sb.error().detail.c_str());
    }
    for (int i = 0; i < 4; ++i) {
    s = (*a)->sign(*k, hsm::SignScheme::Ecdsa, hsm::HashAlg::Sha256, dg());
    printf("A sign after B gone: %d %s gen %u\n", s.ok(), s.ok() ? "" : s.error().detail.c_str(), (*a)->generation());
    }
    auto cfg = test::testToken().config(); cfg.pinSource = "env:NOPE_NOT_SET";
    auto c = hsm::Token::open(cfg);
    printf("C open: %s\n", c.ok() ? "ok" : c.error().code.c_str());
    for (int i = 0; i < 3; ++i) {
    s = (*a)->sign(*k, hsm::SignScheme::Ecdsa, hsm::HashAlg::Sha256, dg());
    printf("A sign after failed open: %d %s gen %u\n", s.ok(), s.ok() ? "" : s.error().detail.c_str(), (*a)->generation());
    }
    void* h = dlopen(test::softhsmModule(), RTLD_NOW | RTLD_NOLOAD);
    printf("h=%p\n", h);
    auto fin = reinterpret_cast<unsigned long (*)(void*)>(dlsym(h, "C_Finalize"));
    printf("fin rv=%lx\n", fin(nullptr));
    dlclose(h);
    for (int i = 0; i < 3; ++i) {
    s = (*a)->sign(*k, hsm::SignScheme::Ecdsa, hsm::HashAlg::Sha256, dg());
    printf("A sign after finalize: %d %s gen %u\n", s.ok(), s.ok() ? "" : s.error().detail.c_str(), (*a)->generation());
    }
}
