// JAdES baseline B seals in the flattened JWS JSON serialization (see jws.h).
//
// The JSON parser is our own, deliberately small, instead of Poco::JSON: JCS and RFC 7515 both
// need duplicate member names refused (Poco keeps the last one silently), lone surrogates
// refused (Poco decodes them into invalid UTF-8), and integers kept exact. Anything beyond RFC
// 8259 (comments, trailing commas, NaN) is a syntax error.
#include "kyso/signer/jws.h"

#include <openssl/ec.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <utility>

#include "kyso/hsm/encoding.h"
#include "kyso/hsm/ossl_ptr.h"

namespace kyso::signer {

namespace {

// ---------------------------------------------------------------------------------------------
// JSON

struct JsonMember;

struct JsonValue {
    enum class Kind { Null, Bool, Int, String, Array, Object };
    Kind kind = Kind::Null;
    bool boolean = false;
    std::int64_t integer = 0;
    std::string string;  // UTF-8, escapes decoded
    std::vector<JsonValue> items;
    std::vector<JsonMember> members;  // in input order until sorted

    const JsonValue* member(std::string_view name) const;
};

// An object member, named like the std::pair it replaces: clang (with libstdc++ 12) cannot
// instantiate std::pair<std::string, JsonValue> inside the recursive JsonValue.
struct JsonMember {
    std::string first;
    JsonValue second;
};

const JsonValue* JsonValue::member(std::string_view name) const {
    for (const auto& [k, v] : members) {
        if (k == name) {
            return &v;
        }
    }
    return nullptr;
}

// ECMAScript's Number.MAX_SAFE_INTEGER: beyond it an integer has no exact ES representation,
// so two different receipts could canonicalize alike.
constexpr std::int64_t kMaxSafeInteger = (std::int64_t{1} << 53) - 1;

std::u16string utf16Of(std::string_view utf8) {
    // Input is valid UTF-8 (the parser checked it).
    std::u16string out;
    for (std::size_t i = 0; i < utf8.size();) {
        const auto c = static_cast<unsigned char>(utf8[i]);
        char32_t cp = 0;
        int n = 0;
        if (c < 0x80) {
            cp = c;
            n = 1;
        } else if (c < 0xE0) {
            cp = c & 0x1F;
            n = 2;
        } else if (c < 0xF0) {
            cp = c & 0x0F;
            n = 3;
        } else {
            cp = c & 0x07;
            n = 4;
        }
        for (int k = 1; k < n; ++k) {
            cp = (cp << 6) | (static_cast<unsigned char>(utf8[i + k]) & 0x3F);
        }
        i += static_cast<std::size_t>(n);
        if (cp >= 0x10000) {
            cp -= 0x10000;
            out += static_cast<char16_t>(0xD800 + (cp >> 10));
            out += static_cast<char16_t>(0xDC00 + (cp & 0x3FF));
        } else {
            out += static_cast<char16_t>(cp);
        }
    }
    return out;
}

void appendUtf8(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

class JsonParser {
  public:
    explicit JsonParser(std::string_view in) : m_in(in) {}

    // The single value of the input; the reason in error() otherwise.
    std::optional<JsonValue> parseDocument() {
        if (m_in.size() > kMaxJsonBytes) {
            return fail("larger than " + std::to_string(kMaxJsonBytes) + " bytes");
        }
        skipSpace();
        auto v = parseValue(0);
        if (!v) {
            return std::nullopt;
        }
        skipSpace();
        if (m_pos != m_in.size()) {
            return fail("unexpected data after the JSON value");
        }
        return v;
    }

    const std::string& error() const { return m_error; }

  private:
    std::nullopt_t fail(const std::string& why) {
        if (m_error.empty()) {
            m_error = why + " (at byte " + std::to_string(m_pos) + ")";
        }
        return std::nullopt;
    }

    void skipSpace() {
        while (m_pos < m_in.size() && (m_in[m_pos] == ' ' || m_in[m_pos] == '\t' ||
                                       m_in[m_pos] == '\n' || m_in[m_pos] == '\r')) {
            ++m_pos;
        }
    }

    bool literal(std::string_view word) {
        if (m_in.substr(m_pos, word.size()) == word) {
            m_pos += word.size();
            return true;
        }
        return false;
    }

    std::optional<JsonValue> parseValue(int depth) {
        if (m_pos >= m_in.size()) {
            return fail("unexpected end of input");
        }
        JsonValue v;
        const char c = m_in[m_pos];
        if (c == '{' || c == '[') {
            if (depth >= kMaxJsonDepth) {
                return fail("nested deeper than " + std::to_string(kMaxJsonDepth));
            }
            return c == '{' ? parseObject(depth + 1) : parseArray(depth + 1);
        }
        if (c == '"') {
            auto s = parseString();
            if (!s) {
                return std::nullopt;
            }
            v.kind = JsonValue::Kind::String;
            v.string = std::move(*s);
            return v;
        }
        if (c == '-' || (c >= '0' && c <= '9')) {
            return parseNumber();
        }
        if (literal("true")) {
            v.kind = JsonValue::Kind::Bool;
            v.boolean = true;
            return v;
        }
        if (literal("false")) {
            v.kind = JsonValue::Kind::Bool;
            return v;
        }
        if (literal("null")) {
            return v;
        }
        return fail("not a JSON value");
    }

    std::optional<JsonValue> parseObject(int depth) {
        JsonValue v;
        v.kind = JsonValue::Kind::Object;
        ++m_pos;  // '{'
        skipSpace();
        if (m_pos < m_in.size() && m_in[m_pos] == '}') {
            ++m_pos;
            return v;
        }
        for (;;) {
            skipSpace();
            if (m_pos >= m_in.size() || m_in[m_pos] != '"') {
                return fail("expected a member name");
            }
            auto name = parseString();
            if (!name) {
                return std::nullopt;
            }
            skipSpace();
            if (m_pos >= m_in.size() || m_in[m_pos] != ':') {
                return fail("expected ':'");
            }
            ++m_pos;
            skipSpace();
            auto value = parseValue(depth);
            if (!value) {
                return std::nullopt;
            }
            v.members.push_back(JsonMember{std::move(*name), std::move(*value)});
            skipSpace();
            if (m_pos < m_in.size() && m_in[m_pos] == ',') {
                ++m_pos;
                continue;
            }
            if (m_pos < m_in.size() && m_in[m_pos] == '}') {
                ++m_pos;
                break;
            }
            return fail("expected ',' or '}'");
        }
        // Escapes are decoded, so "a" and "\u0061" compare equal here, as they must.
        std::vector<std::string_view> names;
        for (const auto& m : v.members) {
            names.push_back(m.first);
        }
        std::sort(names.begin(), names.end());
        const auto dup = std::adjacent_find(names.begin(), names.end());
        if (dup != names.end()) {
            return fail("duplicate member name \"" + std::string(*dup) + "\"");
        }
        return v;
    }

    std::optional<JsonValue> parseArray(int depth) {
        JsonValue v;
        v.kind = JsonValue::Kind::Array;
        ++m_pos;  // '['
        skipSpace();
        if (m_pos < m_in.size() && m_in[m_pos] == ']') {
            ++m_pos;
            return v;
        }
        for (;;) {
            skipSpace();
            auto item = parseValue(depth);
            if (!item) {
                return std::nullopt;
            }
            v.items.push_back(std::move(*item));
            skipSpace();
            if (m_pos < m_in.size() && m_in[m_pos] == ',') {
                ++m_pos;
                continue;
            }
            if (m_pos < m_in.size() && m_in[m_pos] == ']') {
                ++m_pos;
                break;
            }
            return fail("expected ',' or ']'");
        }
        return v;
    }

    std::optional<JsonValue> parseNumber() {
        const std::size_t start = m_pos;
        bool negative = false;
        if (m_in[m_pos] == '-') {
            negative = true;
            ++m_pos;
        }
        if (m_pos >= m_in.size() || m_in[m_pos] < '0' || m_in[m_pos] > '9') {
            return fail("malformed number");
        }
        if (m_in[m_pos] == '0' && m_pos + 1 < m_in.size() && m_in[m_pos + 1] >= '0' &&
            m_in[m_pos + 1] <= '9') {
            return fail("leading zero in number");
        }
        std::int64_t magnitude = 0;
        while (m_pos < m_in.size() && m_in[m_pos] >= '0' && m_in[m_pos] <= '9') {
            magnitude = magnitude * 10 + (m_in[m_pos] - '0');
            ++m_pos;
            if (magnitude > kMaxSafeInteger) {
                m_pos = start;
                return fail("integer beyond ±(2^53-1)");
            }
        }
        if (m_pos < m_in.size() &&
            (m_in[m_pos] == '.' || m_in[m_pos] == 'e' || m_in[m_pos] == 'E')) {
            m_pos = start;
            return fail("non-integer number (only integers are supported)");
        }
        JsonValue v;
        v.kind = JsonValue::Kind::Int;
        v.integer = negative ? -magnitude : magnitude;  // "-0" is 0, as ES prints it
        return v;
    }

    // Four hex digits of a \u escape.
    std::optional<char32_t> hex4() {
        if (m_pos + 4 > m_in.size()) {
            return fail("truncated \\u escape");
        }
        char32_t u = 0;
        for (int k = 0; k < 4; ++k) {
            const char h = m_in[m_pos++];
            u <<= 4;
            if (h >= '0' && h <= '9') {
                u |= static_cast<char32_t>(h - '0');
            } else if (h >= 'a' && h <= 'f') {
                u |= static_cast<char32_t>(h - 'a' + 10);
            } else if (h >= 'A' && h <= 'F') {
                u |= static_cast<char32_t>(h - 'A' + 10);
            } else {
                return fail("bad hex digit in \\u escape");
            }
        }
        return u;
    }

    std::optional<std::string> parseString() {
        ++m_pos;  // '"'
        std::string out;
        while (m_pos < m_in.size()) {
            const auto c = static_cast<unsigned char>(m_in[m_pos]);
            if (c == '"') {
                ++m_pos;
                return out;
            }
            if (c < 0x20) {
                return fail("unescaped control character in string");
            }
            if (c == '\\') {
                if (++m_pos >= m_in.size()) {
                    break;
                }
                const char e = m_in[m_pos++];
                switch (e) {
                    case '"':
                    case '\\':
                    case '/':
                        out += e;
                        break;
                    case 'b':
                        out += '\b';
                        break;
                    case 'f':
                        out += '\f';
                        break;
                    case 'n':
                        out += '\n';
                        break;
                    case 'r':
                        out += '\r';
                        break;
                    case 't':
                        out += '\t';
                        break;
                    case 'u': {
                        auto u = hex4();
                        if (!u) {
                            return std::nullopt;
                        }
                        char32_t cp = *u;
                        if (cp >= 0xDC00 && cp <= 0xDFFF) {
                            return fail("lone low surrogate");
                        }
                        if (cp >= 0xD800 && cp <= 0xDBFF) {
                            if (m_in.substr(m_pos, 2) != "\\u") {
                                return fail("lone high surrogate");
                            }
                            m_pos += 2;
                            auto low = hex4();
                            if (!low) {
                                return std::nullopt;
                            }
                            if (*low < 0xDC00 || *low > 0xDFFF) {
                                return fail("lone high surrogate");
                            }
                            cp = 0x10000 + ((cp - 0xD800) << 10) + (*low - 0xDC00);
                        }
                        appendUtf8(out, cp);
                        break;
                    }
                    default:
                        return fail("bad escape in string");
                }
                continue;
            }
            if (c < 0x80) {
                out += static_cast<char>(c);
                ++m_pos;
                continue;
            }
            // A multi-byte UTF-8 sequence: shortest form, no surrogates, at most U+10FFFF.
            int n = 0;
            char32_t cp = 0;
            char32_t min = 0;
            if (c >= 0xC2 && c <= 0xDF) {
                n = 2;
                cp = c & 0x1F;
                min = 0x80;
            } else if (c >= 0xE0 && c <= 0xEF) {
                n = 3;
                cp = c & 0x0F;
                min = 0x800;
            } else if (c >= 0xF0 && c <= 0xF4) {
                n = 4;
                cp = c & 0x07;
                min = 0x10000;
            } else {
                return fail("invalid UTF-8");
            }
            if (m_pos + static_cast<std::size_t>(n) > m_in.size()) {
                return fail("truncated UTF-8 sequence");
            }
            for (int k = 1; k < n; ++k) {
                const auto cc =
                    static_cast<unsigned char>(m_in[m_pos + static_cast<std::size_t>(k)]);
                if ((cc & 0xC0) != 0x80) {
                    return fail("invalid UTF-8");
                }
                cp = (cp << 6) | (cc & 0x3F);
            }
            if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
                return fail("invalid UTF-8 (overlong, surrogate or beyond U+10FFFF)");
            }
            out.append(m_in.substr(m_pos, static_cast<std::size_t>(n)));
            m_pos += static_cast<std::size_t>(n);
        }
        return fail("unterminated string");
    }

    std::string_view m_in;
    std::size_t m_pos = 0;
    std::string m_error;
};

// RFC 8785 §3.2.2.2: the two-character escapes where JSON has them, \u00xx (lower-case hex)
// for other control characters, everything else as itself.
void writeString(std::string& out, std::string_view s) {
    out += '"';
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (c < 0x20) {
                    out += "\\u00";
                    out += hsm::hexOf(&c, 1);
                } else {
                    out += ch;
                }
        }
    }
    out += '"';
}

void writeCanonical(std::string& out, const JsonValue& v) {
    switch (v.kind) {
        case JsonValue::Kind::Null:
            out += "null";
            return;
        case JsonValue::Kind::Bool:
            out += v.boolean ? "true" : "false";
            return;
        case JsonValue::Kind::Int:
            out += std::to_string(v.integer);
            return;
        case JsonValue::Kind::String:
            writeString(out, v.string);
            return;
        case JsonValue::Kind::Array: {
            out += '[';
            for (std::size_t i = 0; i < v.items.size(); ++i) {
                if (i > 0) {
                    out += ',';
                }
                writeCanonical(out, v.items[i]);
            }
            out += ']';
            return;
        }
        case JsonValue::Kind::Object: {
            // RFC 8785 §3.2.3: sort by UTF-16 code units, not by code points or UTF-8 bytes
            // (they differ for characters above U+FFFF against U+E000..U+FFFF).
            std::vector<std::pair<std::u16string, const JsonMember*>> sorted;
            for (const auto& m : v.members) {
                sorted.emplace_back(utf16Of(m.first), &m);
            }
            std::sort(sorted.begin(), sorted.end(),
                      [](const auto& a, const auto& b) { return a.first < b.first; });
            out += '{';
            for (std::size_t i = 0; i < sorted.size(); ++i) {
                if (i > 0) {
                    out += ',';
                }
                writeString(out, sorted[i].second->first);
                out += ':';
                writeCanonical(out, sorted[i].second->second);
            }
            out += '}';
            return;
        }
    }
}

Result<JsonValue> parseJson(std::string_view json, const char* code, const char* what) {
    JsonParser p(json);
    auto v = p.parseDocument();
    if (!v) {
        return Error::make(code, std::string(what) + ": " + p.error());
    }
    return std::move(*v);
}

// ---------------------------------------------------------------------------------------------
// Base64

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kB64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string base64Encode(std::string_view in, bool url) {
    const char* a = url ? kB64Url : kB64;
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 3 <= in.size(); i += 3) {
        const std::uint32_t n = (static_cast<unsigned char>(in[i]) << 16) |
                                (static_cast<unsigned char>(in[i + 1]) << 8) |
                                static_cast<unsigned char>(in[i + 2]);
        out += a[(n >> 18) & 63];
        out += a[(n >> 12) & 63];
        out += a[(n >> 6) & 63];
        out += a[n & 63];
    }
    const std::size_t rest = in.size() - i;
    if (rest > 0) {
        std::uint32_t n = static_cast<unsigned char>(in[i]) << 16;
        if (rest == 2) {
            n |= static_cast<unsigned char>(in[i + 1]) << 8;
        }
        out += a[(n >> 18) & 63];
        out += a[(n >> 12) & 63];
        if (rest == 2) {
            out += a[(n >> 6) & 63];
        }
        if (!url) {
            out.append(rest == 1 ? "==" : "=");
        }
    }
    return out;
}

// Strict decoding: base64url without padding (RFC 7515 §2), standard base64 with padding
// (x5c, RFC 7515 §4.1.6). Non-zero unused bits are refused, so each value has one encoding
// and the signing input cannot be varied without breaking the signature.
std::optional<std::string> base64Decode(std::string_view in, bool url) {
    if (!url) {
        if (in.size() % 4 != 0) {
            return std::nullopt;
        }
        std::size_t pad = 0;
        while (pad < 2 && !in.empty() && in[in.size() - 1 - pad] == '=') {
            ++pad;
        }
        in.remove_suffix(pad);
    }
    if (in.size() % 4 == 1) {
        return std::nullopt;
    }
    std::string out;
    std::uint32_t acc = 0;
    int bits = 0;
    for (const char c : in) {
        int v = -1;
        if (c >= 'A' && c <= 'Z') {
            v = c - 'A';
        } else if (c >= 'a' && c <= 'z') {
            v = c - 'a' + 26;
        } else if (c >= '0' && c <= '9') {
            v = c - '0' + 52;
        } else if (c == (url ? '-' : '+')) {
            v = 62;
        } else if (c == (url ? '_' : '/')) {
            v = 63;
        } else {
            return std::nullopt;
        }
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xFF);
        }
    }
    if ((acc & ((1u << bits) - 1)) != 0) {
        return std::nullopt;
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Algorithms

struct EcdsaSigDeleter {
    void operator()(ECDSA_SIG* p) const noexcept { ::ECDSA_SIG_free(p); }
};
// Local: ossl_ptr.h has no ECDSA_SIG owner and only this file converts signature formats.
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, EcdsaSigDeleter>;

struct Alg {
    const char* name;
    hsm::SignScheme scheme;
    hsm::HashAlg hash;
    std::size_t ecSize;  // bytes of R and of S for ES*, 0 otherwise
    const char* curve;   // "P-256", ... for ES*
};

constexpr std::array<Alg, 8> kAlgs = {{
    {"RS256", hsm::SignScheme::RsaPkcs1v15, hsm::HashAlg::Sha256, 0, ""},
    {"RS384", hsm::SignScheme::RsaPkcs1v15, hsm::HashAlg::Sha384, 0, ""},
    {"RS512", hsm::SignScheme::RsaPkcs1v15, hsm::HashAlg::Sha512, 0, ""},
    {"PS256", hsm::SignScheme::RsaPss, hsm::HashAlg::Sha256, 0, ""},
    {"PS384", hsm::SignScheme::RsaPss, hsm::HashAlg::Sha384, 0, ""},
    {"PS512", hsm::SignScheme::RsaPss, hsm::HashAlg::Sha512, 0, ""},
    {"ES256", hsm::SignScheme::Ecdsa, hsm::HashAlg::Sha256, 32, "P-256"},
    {"ES384", hsm::SignScheme::Ecdsa, hsm::HashAlg::Sha384, 48, "P-384"},
}};

const Alg* algByName(std::string_view name) {
    for (const auto& a : kAlgs) {
        if (name == a.name) {
            return &a;
        }
    }
    return nullptr;
}

const Alg* algForCredential(const hsm::Credential& c) {
    for (const auto& a : kAlgs) {
        if (a.scheme == c.scheme && a.hash == c.hash &&
            (a.scheme != hsm::SignScheme::Ecdsa || c.key.curve == a.curve)) {
            return &a;
        }
    }
    return nullptr;
}

// DER ECDSA-Sig-Value -> JOSE R||S, each left-padded to the field size (RFC 7518 §3.4).
std::optional<std::string> ecdsaDerToRaw(std::string_view der, std::size_t n) {
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    EcdsaSigPtr sig(::d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
    if (!sig) {
        return std::nullopt;
    }
    const BIGNUM* r = nullptr;
    const BIGNUM* s = nullptr;
    ::ECDSA_SIG_get0(sig.get(), &r, &s);
    std::string out(2 * n, '\0');
    auto* o = reinterpret_cast<unsigned char*>(out.data());
    if (::BN_bn2binpad(r, o, static_cast<int>(n)) < 0 ||
        ::BN_bn2binpad(s, o + n, static_cast<int>(n)) < 0) {
        return std::nullopt;
    }
    return out;
}

std::optional<std::string> ecdsaRawToDer(std::string_view raw, std::size_t n) {
    if (raw.size() != 2 * n) {
        return std::nullopt;
    }
    const auto* p = reinterpret_cast<const unsigned char*>(raw.data());
    OsslPtr<BIGNUM> r(::BN_bin2bn(p, static_cast<int>(n), nullptr));
    OsslPtr<BIGNUM> s(::BN_bin2bn(p + n, static_cast<int>(n), nullptr));
    EcdsaSigPtr sig(::ECDSA_SIG_new());
    if (!r || !s || !sig || ::ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) {
        return std::nullopt;
    }
    r.release();  // owned by sig now (set0)
    s.release();
    unsigned char* der = nullptr;
    const int len = ::i2d_ECDSA_SIG(sig.get(), &der);
    if (len <= 0) {
        return std::nullopt;
    }
    std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(len));
    ::OPENSSL_free(der);
    return out;
}

std::string sha256Of(std::string_view data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    ::EVP_Digest(data.data(), data.size(), md, &n, ::EVP_sha256(), nullptr);
    return std::string(reinterpret_cast<char*>(md), n);
}

// RFC 5035 IssuerSerial ::= SEQUENCE { issuer GeneralNames, serialNumber INTEGER }, the
// issuer as one directoryName ([4] EXPLICIT Name).
std::optional<std::string> issuerSerialDer(X509* cert) {
    unsigned char* name = nullptr;
    const int nameLen = ::i2d_X509_NAME(::X509_get_issuer_name(cert), &name);
    unsigned char* serial = nullptr;
    const int serialLen = ::i2d_ASN1_INTEGER(::X509_get0_serialNumber(cert), &serial);
    std::optional<std::string> out;
    if (nameLen > 0 && serialLen > 0) {
        const std::string nameDer(reinterpret_cast<char*>(name), static_cast<std::size_t>(nameLen));
        const std::string serialDer(reinterpret_cast<char*>(serial),
                                    static_cast<std::size_t>(serialLen));
        out = hsm::derTlv(0x30, hsm::derTlv(0x30, hsm::derTlv(0xA4, nameDer)) + serialDer);
    }
    ::OPENSSL_free(name);
    ::OPENSSL_free(serial);
    return out;
}

std::string formatSigT(std::time_t t) {
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::optional<std::time_t> parseSigT(const std::string& s) {
    // Exactly "YYYY-MM-DDThh:mm:ssZ": the form JAdES fixes for sigT, and a fixed form is what
    // keeps the header canonical.
    static constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:ddZ";
    if (s.size() != kShape.size()) {
        return std::nullopt;
    }
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (kShape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != kShape[i]) {
            return std::nullopt;
        }
    }
    std::tm tm{};
    tm.tm_year = std::stoi(s.substr(0, 4)) - 1900;
    tm.tm_mon = std::stoi(s.substr(5, 2)) - 1;
    tm.tm_mday = std::stoi(s.substr(8, 2));
    tm.tm_hour = std::stoi(s.substr(11, 2));
    tm.tm_min = std::stoi(s.substr(14, 2));
    tm.tm_sec = std::stoi(s.substr(17, 2));
    const std::tm given = tm;
    const std::time_t t = ::timegm(&tm);
    // timegm normalizes 2024-02-30 into March: a changed field means the date does not exist.
    if (tm.tm_mday != given.tm_mday || tm.tm_mon != given.tm_mon || tm.tm_hour != given.tm_hour ||
        tm.tm_min != given.tm_min || tm.tm_sec != given.tm_sec) {
        return std::nullopt;
    }
    return t;
}

// Header parameters RFC 7515 and RFC 7518 define for JWS: crit must not list them (§4.1.11).
constexpr std::array<std::string_view, 11> kRegisteredHeaders = {
    "alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit"};
// Extensions we implement, and so may be critical.
constexpr std::array<std::string_view, 1> kUnderstoodCritical = {"sigT"};

bool verifySignature(const Alg& alg, EVP_PKEY* key, std::string_view input, std::string_view sigIn,
                     std::string* why) {
    std::string sig(sigIn);
    const int type = ::EVP_PKEY_get_base_id(key);
    if (alg.scheme == hsm::SignScheme::Ecdsa) {
        if (type != EVP_PKEY_EC) {
            *why = std::string(alg.name) + " with a non-EC certificate key";
            return false;
        }
        char group[64] = {0};
        size_t groupLen = 0;
        ::EVP_PKEY_get_utf8_string_param(key, "group", group, sizeof group, &groupLen);
        const std::string_view expected = alg.ecSize == 32 ? "prime256v1" : "secp384r1";
        if (expected != group) {
            *why = std::string(alg.name) + " with a key on curve " + group;
            return false;
        }
        auto der = ecdsaRawToDer(sig, alg.ecSize);
        if (!der) {
            *why = "ECDSA signature is not R||S of " + std::to_string(2 * alg.ecSize) + " bytes";
            return false;
        }
        sig = std::move(*der);
    } else if (type != EVP_PKEY_RSA && type != EVP_PKEY_RSA_PSS) {
        *why = std::string(alg.name) + " with a non-RSA certificate key";
        return false;
    }
    OsslPtr<EVP_MD_CTX> ctx(::EVP_MD_CTX_new());
    EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
    if (!ctx || ::EVP_DigestVerifyInit(ctx.get(), &pctx, hsm::evpMd(alg.hash), nullptr, key) != 1) {
        *why = opensslError("jws.verify", "EVP_DigestVerifyInit").detail;
        return false;
    }
    if (alg.scheme == hsm::SignScheme::RsaPss) {
        // RFC 7518 §3.5: MGF1 with the same hash, salt as long as the hash.
        if (::EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
            ::EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
            ::EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, hsm::evpMd(alg.hash)) != 1) {
            *why = opensslError("jws.verify", "PSS parameters").detail;
            return false;
        }
    } else if (alg.scheme == hsm::SignScheme::RsaPkcs1v15) {
        if (::EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
            *why = opensslError("jws.verify", "PKCS#1 padding").detail;
            return false;
        }
    }
    const int rc = ::EVP_DigestVerify(
        ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
        reinterpret_cast<const unsigned char*>(input.data()), input.size());
    ::ERR_clear_error();
    if (rc != 1) {
        *why = "the signature does not verify with the key of x5c[0]";
        return false;
    }
    return true;
}

Error invalid(const std::string& why) {
    return Error::make("jws.invalid", why);
}

}  // namespace

// ---------------------------------------------------------------------------------------------

Result<std::string> canonicalJson(std::string_view json) {
    auto v = parseJson(json, "jws.payload_invalid", "payload is not acceptable JSON");
    if (!v) {
        return v.error();
    }
    std::string out;
    writeCanonical(out, *v);
    return out;
}

Result<std::string> sealJws(const hsm::Credential& seal, std::string_view payloadJson,
                            std::chrono::system_clock::time_point when) {
    auto payload = canonicalJson(payloadJson);
    if (!payload) {
        return payload.error();
    }
    const Alg* alg = algForCredential(seal);
    if (alg == nullptr) {
        return Error::make("jws.alg_unsupported",
                           "no JOSE algorithm for the credential's scheme, hash and curve (" +
                               std::string(hsm::hashName(seal.hash)) + ")");
    }
    auto cert = x509FromDer(seal.certificateDer);
    if (!cert) {
        return Error::make("jws.certificate",
                           "credential " + seal.id + " has no readable certificate");
    }
    auto issuerSerial = issuerSerialDer(cert.get());
    if (!issuerSerial) {
        return opensslError("jws.build", "IssuerSerial of the seal certificate");
    }

    // Built as JSON text and run through the canonicalizer, so header and payload follow one
    // set of rules; every value here is ASCII and needs no escaping.
    std::string x5c = "[\"" + base64Encode(seal.certificateDer, false) + "\"";
    for (const auto& der : seal.chainDer) {
        x5c += ",\"" + base64Encode(der, false) + "\"";
    }
    x5c += "]";
    const std::string header =
        std::string("{\"alg\":\"") + alg->name + "\"," +
        // RFC 7515 §4.1.10 recommends dropping "application/" when no other '/' follows.
        "\"cty\":\"json\"," + "\"kid\":\"" + base64Encode(*issuerSerial, false) + "\"," +
        "\"x5t#S256\":\"" + base64Encode(sha256Of(seal.certificateDer), true) + "\"," +
        "\"x5c\":" + x5c + "," + "\"sigT\":\"" +
        formatSigT(std::chrono::system_clock::to_time_t(when)) + "\"," +
        // JAdES requires sigT to be listed in crit, so that a plain JOSE verifier refuses
        // rather than ignores a signing time it does not understand.
        "\"crit\":[\"sigT\"]}";
    auto canonicalHeader = canonicalJson(header);
    if (!canonicalHeader) {
        return Error::make("jws.build", "header: " + canonicalHeader.error().detail);
    }

    const std::string b64Header = base64Encode(*canonicalHeader, true);
    const std::string b64Payload = base64Encode(*payload, true);
    const std::string input = b64Header + "." + b64Payload;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdLen = 0;
    if (::EVP_Digest(input.data(), input.size(), md, &mdLen, hsm::evpMd(alg->hash), nullptr) != 1) {
        return opensslError("jws.build", "digest of the signing input");
    }
    auto sig = seal.signDigest(std::string_view(reinterpret_cast<char*>(md), mdLen));
    if (!sig) {
        return sig.error();
    }
    std::string sigValue = std::move(*sig);
    if (alg->scheme == hsm::SignScheme::Ecdsa) {
        auto raw = ecdsaDerToRaw(sigValue, alg->ecSize);
        if (!raw) {
            return Error::make("jws.build", "the token's ECDSA signature is not a DER Ecdsa-Sig");
        }
        sigValue = std::move(*raw);
    }
    // Members in JCS order, so the serialization itself is canonical.
    return "{\"payload\":\"" + b64Payload + "\",\"protected\":\"" + b64Header +
           "\",\"signature\":\"" + base64Encode(sigValue, true) + "\"}";
}

Result<JwsFacts> verifyJws(std::string_view jws) {
    std::string b64Header;
    std::string b64Payload;
    std::string b64Signature;
    std::optional<JsonValue> unprotectedHeader;

    std::size_t first = 0;
    while (first < jws.size() &&
           (jws[first] == ' ' || jws[first] == '\n' || jws[first] == '\r' || jws[first] == '\t')) {
        ++first;
    }
    if (first < jws.size() && jws[first] == '{') {
        auto outer = parseJson(jws, "jws.invalid", "not a JWS JSON serialization");
        if (!outer) {
            return outer.error();
        }
        if (outer->kind != JsonValue::Kind::Object) {
            return invalid("not a JWS JSON serialization: not an object");
        }
        if (outer->member("signatures") != nullptr) {
            return invalid("the general JWS JSON serialization is not supported");
        }
        for (const char* name : {"payload", "protected", "signature"}) {
            const JsonValue* m = outer->member(name);
            if (m == nullptr || m->kind != JsonValue::Kind::String) {
                return invalid(std::string("member \"") + name + "\" missing or not a string");
            }
        }
        b64Payload = outer->member("payload")->string;
        b64Header = outer->member("protected")->string;
        b64Signature = outer->member("signature")->string;
        if (const JsonValue* h = outer->member("header")) {
            if (h->kind != JsonValue::Kind::Object) {
                return invalid("member \"header\" is not an object");
            }
            unprotectedHeader = *h;
        }
    } else {
        const std::size_t d1 = jws.find('.');
        const std::size_t d2 = d1 == std::string_view::npos ? d1 : jws.find('.', d1 + 1);
        if (d2 == std::string_view::npos || jws.find('.', d2 + 1) != std::string_view::npos) {
            return invalid("neither a JWS JSON serialization nor three dot-separated parts");
        }
        b64Header = jws.substr(0, d1);
        b64Payload = jws.substr(d1 + 1, d2 - d1 - 1);
        b64Signature = jws.substr(d2 + 1);
    }

    auto headerText = base64Decode(b64Header, true);
    auto payload = base64Decode(b64Payload, true);
    auto signature = base64Decode(b64Signature, true);
    if (!headerText || !payload || !signature) {
        return invalid("a part is not unpadded base64url");
    }
    auto header = parseJson(*headerText, "jws.invalid", "protected header");
    if (!header) {
        return header.error();
    }
    if (header->kind != JsonValue::Kind::Object) {
        return invalid("protected header is not a JSON object");
    }
    if (unprotectedHeader) {
        for (const auto& m : unprotectedHeader->members) {
            if (header->member(m.first) != nullptr) {
                return invalid("\"" + m.first + "\" in both the protected and unprotected header");
            }
        }
        if (unprotectedHeader->member("crit") != nullptr) {
            return invalid("crit outside the protected header");
        }
    }

    const JsonValue* algValue = header->member("alg");
    if (algValue == nullptr || algValue->kind != JsonValue::Kind::String) {
        return invalid("protected header has no alg");
    }
    const Alg* alg = algByName(algValue->string);
    if (alg == nullptr) {
        return Error::make("jws.alg_unsupported",
                           "alg \"" + algValue->string + "\" is not accepted");
    }

    if (const JsonValue* crit = header->member("crit")) {
        if (crit->kind != JsonValue::Kind::Array || crit->items.empty()) {
            return invalid("crit is not a non-empty array");
        }
        for (const auto& item : crit->items) {
            if (item.kind != JsonValue::Kind::String) {
                return invalid("crit holds a non-string");
            }
            if (std::find(kRegisteredHeaders.begin(), kRegisteredHeaders.end(), item.string) !=
                kRegisteredHeaders.end()) {
                return invalid("crit lists \"" + item.string + "\", defined by RFC 7515/7518");
            }
            if (header->member(item.string) == nullptr) {
                return invalid("crit lists \"" + item.string + "\", absent from the header");
            }
            if (std::find(kUnderstoodCritical.begin(), kUnderstoodCritical.end(), item.string) ==
                kUnderstoodCritical.end()) {
                return Error::make(
                    "jws.crit_unsupported",
                    "critical header parameter \"" + item.string + "\" is not implemented");
            }
        }
    }

    JwsFacts facts;
    facts.alg = alg->name;
    facts.protectedHeader = std::move(*headerText);
    facts.payload = std::move(*payload);

    if (const JsonValue* sigT = header->member("sigT")) {
        std::optional<std::time_t> t;
        if (sigT->kind == JsonValue::Kind::String) {
            facts.signingTimeText = sigT->string;
            t = parseSigT(sigT->string);
        }
        if (t) {
            facts.signingTime = *t;
        } else {
            facts.errors.push_back("sigT is not a time of the form YYYY-MM-DDThh:mm:ssZ");
        }
    }

    const JsonValue* x5c = header->member("x5c");
    if (x5c == nullptr) {
        facts.errors.push_back("no x5c: the signer certificate is not in the header");
        return facts;
    }
    if (x5c->kind != JsonValue::Kind::Array || x5c->items.empty()) {
        facts.errors.push_back("x5c is not a non-empty array");
        return facts;
    }
    for (std::size_t i = 0; i < x5c->items.size(); ++i) {
        const JsonValue& item = x5c->items[i];
        std::optional<std::string> der;
        if (item.kind == JsonValue::Kind::String) {
            der = base64Decode(item.string, false);
        }
        if (!der) {
            facts.errors.push_back("x5c[" + std::to_string(i) + "] is not base64 DER");
            return facts;
        }
        if (i == 0) {
            facts.certificateDer = std::move(*der);
        } else {
            facts.chainDer.push_back(std::move(*der));
        }
    }
    auto cert = x509FromDer(facts.certificateDer);
    if (!cert) {
        ::ERR_clear_error();
        facts.errors.push_back("x5c[0] is not an X.509 certificate");
        return facts;
    }
    facts.signerSubject = nameToString(::X509_get_subject_name(cert.get()));

    if (const JsonValue* t = header->member("x5t#S256")) {
        facts.hasSigningCertificateReference = true;
        std::optional<std::string> thumb;
        if (t->kind == JsonValue::Kind::String) {
            thumb = base64Decode(t->string, true);
        }
        facts.signingCertificateBound = thumb && *thumb == sha256Of(facts.certificateDer);
        if (!facts.signingCertificateBound) {
            facts.errors.push_back("x5t#S256 is not the SHA-256 of x5c[0]");
        }
    }

    EVP_PKEY* key = ::X509_get0_pubkey(cert.get());  // owned by cert
    if (key == nullptr) {
        ::ERR_clear_error();
        facts.errors.push_back("x5c[0] has an unreadable public key");
        return facts;
    }
    std::string why;
    facts.signatureValid =
        verifySignature(*alg, key, b64Header + "." + b64Payload, *signature, &why);
    if (!facts.signatureValid) {
        facts.errors.push_back(why);
    }
    return facts;
}

}  // namespace kyso::signer
