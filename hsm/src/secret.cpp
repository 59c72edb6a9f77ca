#include "kyso/hsm/secret.h"

#include <openssl/crypto.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

namespace kyso::hsm {

void secureWipe(void* p, std::size_t n) noexcept {
    if (p != nullptr && n > 0) {
        ::OPENSSL_cleanse(p, n);
    }
}

bool constantTimeEquals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) {
        return false;
    }
    return a.empty() || ::CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

Secret::Secret(Secret&& other) noexcept : m_value(std::move(other.m_value)) {
    other.wipe();
}

Secret& Secret::operator=(Secret&& other) noexcept {
    if (this != &other) {
        wipe();
        m_value = std::move(other.m_value);
        other.wipe();
    }
    return *this;
}

Secret::~Secret() {
    wipe();
}

void Secret::wipe() noexcept {
    // Wipe the whole capacity: a shorter value may have been assigned over a longer one.
    m_value.resize(m_value.capacity());
    secureWipe(m_value.data(), m_value.size());
    m_value.clear();
}

Result<Secret> readSecret(std::string_view source) {
    std::string src(source);
    if (src.rfind("env:", 0) == 0) {
        const std::string name = src.substr(4);
        const char* v = name.empty() ? nullptr : std::getenv(name.c_str());
        if (v == nullptr) {
            return Error::make("secret.unavailable",
                               "environment variable " + name + " is not set");
        }
        return Secret(std::string(v));
    }
    if (src.rfind("file:", 0) == 0) {
        src = src.substr(5);
    }
    if (src.empty()) {
        return Error::make("secret.unavailable", "no secret source configured");
    }
    std::ifstream in(src, std::ios::binary);
    if (!in) {
        return Error::make("secret.unavailable", "cannot read secret file " + src);
    }
    std::string value;
    value.reserve(256);
    char c;
    while (in.get(c) && value.size() < 4096) {
        value.push_back(c);
    }
    while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) {
        value.back() = '\0';
        value.pop_back();
    }
    Secret s(std::move(value));
    if (s.empty()) {
        return Error::make("secret.unavailable", "secret file " + src + " is empty");
    }
    return s;
}

}  // namespace kyso::hsm
