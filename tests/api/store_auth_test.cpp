// API-key checks under concurrency (Store::authenticate): one Argon2id check of the same key at
// a time (the threads presenting it wait for it and then use the cache), a wrong secret never
// passes because a check of the right one ran beside it, and it does not keep the right one out.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "kyso/api/store.h"
#include "test_env.h"

namespace kyso::test {
namespace {

TEST(StoreAuthenticate, ConcurrentChecksOfOneKeyPassOnlyWithTheRightSecret) {
    const std::string db = tempDir("store-auth") + "/kyso.db";
    auto store = api::Store::open(db).value();
    const std::string key = store->createApiKey("officer-9", policies::Role::Officer).value();
    std::string wrong = key;
    wrong.back() = wrong.back() == 'A' ? 'B' : 'A';

    std::atomic<int> rightPassed{0};
    std::atomic<int> rightRefused{0};
    std::atomic<int> wrongPassed{0};
    std::vector<std::thread> threads;
    // The wrong secrets start first, so a check of a wrong secret is running while the right
    // ones wait for it; the cache is cold.
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 3; ++i) {
                if (store->authenticate(wrong)) {
                    ++wrongPassed;
                }
            }
        });
    }
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 3; ++i) {
                auto p = store->authenticate(key);
                if (p && p->name == "officer-9" && p->role == policies::Role::Officer) {
                    ++rightPassed;
                } else {
                    ++rightRefused;
                }
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    EXPECT_EQ(rightPassed.load(), 24);
    EXPECT_EQ(rightRefused.load(), 0);
    EXPECT_EQ(wrongPassed.load(), 0);
    // Once cached, the wrong secret is still refused.
    EXPECT_FALSE(store->authenticate(wrong).has_value());
    EXPECT_TRUE(store->authenticate(key).has_value());
}

}  // namespace
}  // namespace kyso::test
