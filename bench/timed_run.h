// Shared by the in-process benchmarks: one operation called from T threads for a fixed time.
#pragma once

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace kyso::bench {

struct TimedRun {
    unsigned long done = 0;    // calls that succeeded
    unsigned long failed = 0;  // calls that did not
    double seconds = 0;
};

// Calls `call(thread, n)` (n: that thread's call count so far; true on success) from `threads`
// threads until `seconds` have passed.
template <typename Call>
TimedRun runFor(unsigned threads, double seconds, Call&& call) {
    std::atomic<bool> stop{false};
    std::atomic<unsigned long> failed{0};
    std::vector<unsigned long> counts(threads, 0);
    std::vector<std::thread> pool;
    const auto start = std::chrono::steady_clock::now();
    for (unsigned i = 0; i < threads; ++i) {
        pool.emplace_back([&, i] {
            unsigned long n = 0;
            for (unsigned long calls = 0; !stop.load(std::memory_order_relaxed); ++calls) {
                if (call(i, calls)) {
                    ++n;
                } else {
                    failed.fetch_add(1);
                }
            }
            counts[i] = n;
        });
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop = true;
    for (auto& th : pool) {
        th.join();
    }
    TimedRun r;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (auto c : counts) {
        r.done += c;
    }
    r.failed = failed.load();
    return r;
}

}  // namespace kyso::bench
