// Secrets in memory: a byte string wiped on destruction, read from a file or an environment
// variable, never from argv. Nothing here logs its content.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "kyso/hsm/result.h"

namespace kyso::hsm {

class Secret final {
  public:
    Secret() = default;
    explicit Secret(std::string value) : m_value(std::move(value)) {}
    Secret(const Secret&) = delete;
    Secret& operator=(const Secret&) = delete;
    Secret(Secret&& other) noexcept;
    Secret& operator=(Secret&& other) noexcept;
    ~Secret();

    // The secret as a C string for a C API that needs it; valid while this object lives.
    const char* c_str() const noexcept { return m_value.c_str(); }
    std::string_view view() const noexcept { return m_value; }
    bool empty() const noexcept { return m_value.empty(); }
    void wipe() noexcept;

  private:
    std::string m_value;
};

// Where a secret comes from: "file:/path" (trailing newline stripped) or "env:NAME".
// A bare path is taken as a file. Fails with "secret.unavailable" naming the source, never the
// content.
Result<Secret> readSecret(std::string_view source);

// Wipes memory in a way the optimiser may not remove.
void secureWipe(void* p, std::size_t n) noexcept;

// Constant-time equality of two byte strings (length may leak, content does not).
bool constantTimeEquals(std::string_view a, std::string_view b) noexcept;

}  // namespace kyso::hsm
