// Small encoding helpers every module needs: hex, the OpenSSL digest of a HashAlg, and DER
// tag-length-value writing for the few structures we assemble by hand (a certificate around a
// token signature, RFC 3161 rejections, CAdES with encapsulated content).
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <string>

#include "kyso/hsm/token.h"

namespace kyso::hsm {

// `n` bytes as hex, lower case (or upper case).
inline std::string hexOf(const unsigned char* p, std::size_t n, bool upper = false) {
    const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    std::string out;
    out.reserve(2 * n);
    for (std::size_t i = 0; i < n; ++i) {
        out += digits[p[i] >> 4];
        out += digits[p[i] & 15];
    }
    return out;
}
inline std::string hexOf(const std::string& bytes, bool upper = false) {
    return hexOf(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), upper);
}

inline const EVP_MD* evpMd(HashAlg h) {
    switch (h) {
        case HashAlg::Sha256:
            return ::EVP_sha256();
        case HashAlg::Sha384:
            return ::EVP_sha384();
        case HashAlg::Sha512:
            return ::EVP_sha512();
    }
    return nullptr;
}

// DER length octets (X.690 8.1.3, definite form).
inline std::string derLength(std::uint64_t n) {
    if (n < 128) {
        return std::string(1, static_cast<char>(n));
    }
    std::string b;
    for (; n > 0; n >>= 8) {
        b.insert(b.begin(), static_cast<char>(n & 0xff));
    }
    return static_cast<char>(0x80 | b.size()) + b;
}

// Tag and length of a value of `length` bytes.
inline std::string derHeader(unsigned char tag, std::uint64_t length) {
    return static_cast<char>(tag) + derLength(length);
}

inline std::string derTlv(unsigned char tag, const std::string& body) {
    return derHeader(tag, body.size()) + body;
}

}  // namespace kyso::hsm
