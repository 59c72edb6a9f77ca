// Result<T>: a value or an Error. Module boundaries return these instead of throwing, so a
// failed token call or a refused document is a value the caller must look at (see STYLE.md).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace kyso {

// A stable, machine-readable error code ("pdf.encrypted", "token.unavailable", ...) with a
// human-readable detail and, where there is one, the raw cause (a CK_RV, an OpenSSL reason).
struct Error {
    std::string code;
    std::string detail;
    unsigned long cause = 0;

    static Error make(std::string code, std::string detail, unsigned long cause = 0) {
        return Error{std::move(code), std::move(detail), cause};
    }
};

template <typename T>
class [[nodiscard]] Result {
  public:
    Result(T value) : m_v(std::move(value)) {}
    Result(Error error) : m_v(std::move(error)) {}

    bool ok() const noexcept { return m_v.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }

    T& value() & { return std::get<0>(m_v); }
    const T& value() const& { return std::get<0>(m_v); }
    T&& value() && { return std::get<0>(std::move(m_v)); }
    T* operator->() { return &std::get<0>(m_v); }
    const T* operator->() const { return &std::get<0>(m_v); }
    T& operator*() & { return std::get<0>(m_v); }
    const T& operator*() const& { return std::get<0>(m_v); }

    const Error& error() const { return std::get<1>(m_v); }

  private:
    std::variant<T, Error> m_v;
};

// Result of an operation that yields nothing but may fail.
struct Ok {};
using Status = Result<Ok>;

}  // namespace kyso
