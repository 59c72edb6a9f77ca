#include "kyso/hsm/pkcs11_uri.h"

#include <array>
#include <charconv>
#include <system_error>

namespace kyso::hsm {

namespace {

constexpr std::string_view kScheme = "pkcs11:";

// ASCII only: the scheme and hex digits are ASCII, and the C locale functions would make the
// result depend on the process locale.
char asciiLower(char c) noexcept {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

int hexValue(char c) noexcept {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    const char lower = asciiLower(c);
    if (lower >= 'a' && lower <= 'f') {
        return lower - 'a' + 10;
    }
    return -1;
}

bool isUnreserved(char c) noexcept {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

// Details name the attribute but never echo its value: a value may be a label or id the
// operator would rather not see in logs, and pin-value must never be echoed at all.
Error invalid(std::string_view attribute, std::string_view why) {
    return Error::make("uri.invalid",
                       "attribute '" + std::string(attribute) + "': " + std::string(why));
}

std::optional<std::string> percentDecode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out.push_back(s[i]);
            continue;
        }
        if (s.size() - i < 3) {
            return std::nullopt;
        }
        const int hi = hexValue(s[i + 1]);
        const int lo = hexValue(s[i + 2]);
        if (hi < 0 || lo < 0) {
            return std::nullopt;
        }
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
    }
    return out;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> parts;
    std::size_t start = 0;
    for (;;) {
        const std::size_t end = s.find(sep, start);
        parts.push_back(s.substr(start, end - start));
        if (end == std::string_view::npos) {
            return parts;
        }
        start = end + 1;
    }
}

struct RawAttribute {
    std::string_view name;
    std::string_view value;  // still percent-encoded
};

Result<RawAttribute> splitAttribute(std::string_view text) {
    const std::size_t eq = text.find('=');
    if (eq == 0 || text.empty()) {
        return Error::make("uri.invalid", "empty attribute name");
    }
    if (eq == std::string_view::npos) {
        return invalid(text, "missing '='");
    }
    return RawAttribute{text.substr(0, eq), text.substr(eq + 1)};
}

using StringField = std::optional<std::string> Pkcs11Uri::*;

struct NamedField {
    std::string_view name;
    StringField field;
};

constexpr std::array kPathFields{
    NamedField{"token", &Pkcs11Uri::token},
    NamedField{"manufacturer", &Pkcs11Uri::manufacturer},
    NamedField{"serial", &Pkcs11Uri::serial},
    NamedField{"model", &Pkcs11Uri::model},
    NamedField{"object", &Pkcs11Uri::object},
    NamedField{"id", &Pkcs11Uri::id},
    NamedField{"type", &Pkcs11Uri::type},
    NamedField{"library-manufacturer", &Pkcs11Uri::libraryManufacturer},
    NamedField{"library-description", &Pkcs11Uri::libraryDescription},
    NamedField{"library-version", &Pkcs11Uri::libraryVersion},
    NamedField{"slot-description", &Pkcs11Uri::slotDescription},
    NamedField{"slot-manufacturer", &Pkcs11Uri::slotManufacturer},
};

constexpr std::array kQueryFields{
    NamedField{"pin-source", &Pkcs11Uri::pinSource},
    NamedField{"module-path", &Pkcs11Uri::modulePath},
    NamedField{"module-name", &Pkcs11Uri::moduleName},
};

const NamedField* findField(const auto& fields, std::string_view name) noexcept {
    for (const NamedField& f : fields) {
        if (f.name == name) {
            return &f;
        }
    }
    return nullptr;
}

bool isValidType(std::string_view v) noexcept {
    return v == "private" || v == "public" || v == "cert" || v == "secret-key" || v == "data";
}

std::optional<Error> parseSlotId(Pkcs11Uri& uri, std::string_view value) {
    if (uri.slotId) {
        return invalid("slot-id", "repeated");
    }
    // from_chars alone would accept a numeric prefix ("12abc"); RFC 7512 wants 1*DIGIT.
    if (value.empty() || value.find_first_not_of("0123456789") != std::string_view::npos) {
        return invalid("slot-id", "expected a decimal number");
    }
    unsigned long id = 0;
    const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), id);
    if (ec == std::errc::result_out_of_range) {
        return invalid("slot-id", "out of range");
    }
    if (ec != std::errc{} || ptr != value.data() + value.size()) {
        return invalid("slot-id", "expected a decimal number");
    }
    uri.slotId = id;
    return std::nullopt;
}

std::optional<Error> parsePathAttribute(Pkcs11Uri& uri, std::string_view text) {
    auto raw = splitAttribute(text);
    if (!raw) {
        return raw.error();
    }
    const NamedField* field = findField(kPathFields, raw->name);
    if (field == nullptr && raw->name != "slot-id") {
        // A misspelt path attribute would otherwise widen the key search silently.
        return invalid(raw->name, "unknown path attribute");
    }
    auto value = percentDecode(raw->value);
    if (!value) {
        return invalid(raw->name, "malformed percent escape");
    }
    if (field == nullptr) {
        return parseSlotId(uri, *value);
    }
    if (uri.*(field->field)) {
        return invalid(raw->name, "repeated");
    }
    if (field->field == &Pkcs11Uri::type && !isValidType(*value)) {
        return invalid("type", "expected private, public, cert, secret-key or data");
    }
    uri.*(field->field) = std::move(*value);
    return std::nullopt;
}

std::optional<Error> parseQueryAttribute(Pkcs11Uri& uri, std::string_view text) {
    auto raw = splitAttribute(text);
    if (!raw) {
        return raw.error();
    }
    // Refused before the value is even decoded, so nothing downstream can copy or echo it.
    if (raw->name == "pin-value") {
        return invalid("pin-value", "refused: PINs never travel in a URI, use pin-source");
    }
    auto value = percentDecode(raw->value);
    if (!value) {
        return invalid(raw->name, "malformed percent escape");
    }
    const NamedField* field = findField(kQueryFields, raw->name);
    if (field == nullptr) {
        return std::nullopt;
    }
    // RFC 7512 section 2.3 forbids duplicates of the defined query attributes, and two
    // module-path values would leave it ambiguous which library gets loaded.
    if (uri.*(field->field)) {
        return invalid(raw->name, "repeated");
    }
    uri.*(field->field) = std::move(*value);
    return std::nullopt;
}

}  // namespace

Result<Pkcs11Uri> parsePkcs11Uri(std::string_view uri) {
    if (!looksLikePkcs11Uri(uri)) {
        return Error::make("uri.invalid", "missing \"pkcs11:\" scheme");
    }
    uri.remove_prefix(kScheme.size());
    const std::size_t q = uri.find('?');
    const std::string_view path = uri.substr(0, q);

    Pkcs11Uri out;
    // Both components may be empty (RFC 7512 section 3), but an empty piece between
    // separators is an attribute with an empty name.
    if (!path.empty()) {
        for (std::string_view attr : split(path, ';')) {
            if (auto err = parsePathAttribute(out, attr)) {
                return *err;
            }
        }
    }
    if (q != std::string_view::npos && q + 1 < uri.size()) {
        for (std::string_view attr : split(uri.substr(q + 1), '&')) {
            if (auto err = parseQueryAttribute(out, attr)) {
                return *err;
            }
        }
    }
    return out;
}

bool looksLikePkcs11Uri(std::string_view s) noexcept {
    if (s.size() < kScheme.size()) {
        return false;
    }
    for (std::size_t i = 0; i < kScheme.size(); ++i) {
        if (asciiLower(s[i]) != kScheme[i]) {
            return false;
        }
    }
    return true;
}

std::string pkcs11UriEncode(std::string_view raw) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(raw.size() * 3);
    for (char c : raw) {
        if (isUnreserved(c)) {
            out.push_back(c);
            continue;
        }
        const auto byte = static_cast<unsigned char>(c);
        out.push_back('%');
        out.push_back(kHex[byte >> 4]);
        out.push_back(kHex[byte & 0x0F]);
    }
    return out;
}

}  // namespace kyso::hsm
