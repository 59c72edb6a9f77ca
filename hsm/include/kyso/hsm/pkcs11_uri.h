// RFC 7512 PKCS#11 URIs: "pkcs11:token=kyso-demo;object=officer-1;type=private".
// libp11 0.4.12 has no public parser; this one is small and strict.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kyso/hsm/result.h"

namespace kyso::hsm {

struct Pkcs11Uri {
    // Path attributes (RFC 7512 section 2.3), percent-decoded.
    std::optional<std::string> token;         // token label
    std::optional<std::string> manufacturer;  // token manufacturer
    std::optional<std::string> serial;        // token serial
    std::optional<std::string> model;         // token model
    std::optional<std::string> object;        // object label (CKA_LABEL)
    std::optional<std::string> id;            // object id (CKA_ID), raw bytes
    std::optional<std::string> type;          // "private", "public", "cert", "secret-key", "data"
    std::optional<std::string> libraryManufacturer;
    std::optional<std::string> libraryDescription;
    std::optional<std::string> libraryVersion;
    std::optional<unsigned long> slotId;
    std::optional<std::string> slotDescription;
    std::optional<std::string> slotManufacturer;
    // Query attributes (section 2.4). pin-value is refused: a PIN never travels in a URI.
    std::optional<std::string> pinSource;
    std::optional<std::string> modulePath;
    std::optional<std::string> moduleName;
};

// Parses a URI. Fails with "uri.invalid" (detail names the offending attribute) on: a missing
// "pkcs11:" scheme, a malformed percent escape, an unknown or repeated path attribute, an empty
// attribute name, a bad type value or slot-id, or a pin-value query attribute.
// Unknown query attributes are ignored, as RFC 7512 section 2.4 allows ("vendor-specific").
Result<Pkcs11Uri> parsePkcs11Uri(std::string_view uri);

// True when the string starts with the "pkcs11:" scheme (case-insensitive).
bool looksLikePkcs11Uri(std::string_view s) noexcept;

// Percent-encodes bytes for a URI attribute value (unreserved characters kept).
std::string pkcs11UriEncode(std::string_view raw);

}  // namespace kyso::hsm
