// libFuzzer's entry point for one target of targets.h, chosen at build time (KYSO_FUZZ_TARGET,
// set by fuzz/CMakeLists.txt): the fuzzers and the regression test run the same function.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "targets.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (kyso::fuzz::KYSO_FUZZ_TARGET(data, size) != 0) {
        std::abort();  // a property that must hold for every input was broken (see stderr)
    }
    return 0;
}
