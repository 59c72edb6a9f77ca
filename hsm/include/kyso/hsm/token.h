// The token layer: one PKCS#11 token, loaded through libp11, logged in once, used from many
// threads. Keys never leave the token; this class only asks the token to sign digests.
//
// Threading: every method is thread-safe. Signing runs on a pool of PKCS#11 sessions (one
// operation per session at a time, as PKCS#11 requires); key generation and certificate storage
// take the same pool. When the token reports that it went away (device removed or in error,
// session invalid, module not initialised) the failing call returns "token.unavailable" and the
// next call reloads the module and logs in again, without a process restart.
//
// PIN handling: the PIN is read from its source (file or environment variable) for each login,
// used once and wiped. A rejected PIN is never retried automatically: after CKR_PIN_INCORRECT
// the token refuses further logins ("token.pin_incorrect") until a new Token is opened, so a
// misconfigured service cannot lock the token.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kyso/hsm/pkcs11_uri.h"
#include "kyso/hsm/result.h"

namespace kyso::hsm {

enum class KeyType { Rsa, Ec };
enum class HashAlg { Sha256, Sha384, Sha512 };
enum class SignScheme { RsaPkcs1v15, RsaPss, Ecdsa };

// Length in bytes of a digest of this algorithm.
std::size_t digestLength(HashAlg h) noexcept;
// "SHA-256", "SHA-384", "SHA-512".
const char* hashName(HashAlg h) noexcept;
// Parses "SHA-256"/"sha256"/... ; empty on an unknown name.
std::optional<HashAlg> parseHashAlg(std::string_view name) noexcept;

struct TokenConfig {
    std::string modulePath;                  // the PKCS#11 module (.so)
    std::optional<std::string> tokenLabel;   // pick the token by label ...
    std::optional<std::string> tokenSerial;  // ... and/or by serial
    std::string pinSource;                   // "file:/path" or "env:NAME" (see secret.h)
    unsigned maxSessions = 16;               // upper bound of the session pool
};

// Which key: by label, by id, or both (both must match). Build one from a URI with keyRefFrom.
struct KeyRef {
    std::optional<std::string> label;
    std::optional<std::string> id;  // raw CKA_ID bytes
};
KeyRef keyRefFrom(const Pkcs11Uri& uri);

struct KeyInfo {
    std::string label;
    std::string id;  // raw CKA_ID bytes
    KeyType type = KeyType::Rsa;
    unsigned bits = 0;         // RSA modulus bits, or the EC field size
    std::string curve;         // "P-256", "P-384" for EC keys
    std::string publicKeyDer;  // SubjectPublicKeyInfo (DER)
    bool sensitive = false;    // CKA_SENSITIVE as the token reports it
    bool extractable = true;   // CKA_EXTRACTABLE as the token reports it
};

struct KeySpec {
    KeyType type = KeyType::Rsa;
    unsigned rsaBits = 2048;
    std::string curve = "P-256";  // "P-256" or "P-384"
    std::string label;
    std::string id;  // raw CKA_ID bytes; empty: derived from the public key (SHA-1, RFC 5280)
};

struct TokenInfo {
    std::string label;
    std::string serial;
    std::string manufacturer;
    std::string model;
    unsigned long slotId = 0;
};

class Token final {
  public:
    // Loads the module, finds the token and logs in as the user with the PIN from
    // cfg.pinSource. Errors: "token.module" (module cannot be loaded), "token.not_found",
    // "token.pin_incorrect", "token.pin_locked", "secret.unavailable", "token.unavailable".
    static Result<std::unique_ptr<Token>> open(TokenConfig cfg);
    ~Token();
    Token(const Token&) = delete;
    Token& operator=(const Token&) = delete;

    const TokenInfo& info() const noexcept;

    // Finds a private key. "key.not_found" when none matches, "key.ambiguous" when several do.
    Result<KeyInfo> findKey(const KeyRef& ref);

    // Signs a precomputed digest of algorithm `hash`. RSA PKCS#1 v1.5 wraps it in a DigestInfo;
    // RSA-PSS uses MGF1 with the same hash and a salt as long as the digest; ECDSA returns the
    // DER ECDSA-Sig-Value (as X.509 and CMS carry it). Errors: "sign.bad_digest" (wrong length),
    // "sign.scheme" (scheme does not fit the key), "key.not_found", "token.unavailable",
    // "token.error" (any other CK_RV, kept in Error::cause).
    Result<std::string> sign(const KeyInfo& key, SignScheme scheme, HashAlg hash,
                             std::string_view digest);

    // Generates a key pair on the token: private key CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE true,
    // CKA_EXTRACTABLE false, CKA_SIGN true. Refuses RSA below 2048 bits and curves other than
    // P-256/P-384 ("key.spec"), and a label that is already used ("key.exists"). On a failure
    // after creation, the half-made objects are destroyed.
    Result<KeyInfo> generateKey(const KeySpec& spec);

    // Stores a DER certificate as a token object with the given label and id (normally those of
    // its key). An existing certificate with the same label is replaced.
    Status storeCertificate(std::string_view label, std::string_view id, std::string_view der);

    // The DER certificate stored with this label or id; "cert.not_found" if none.
    Result<std::string> findCertificate(const KeyRef& ref);

    // True when the token answers (the session pool can open a session, and the user is
    // logged in). Used by /readyz; reconnects if needed.
    bool ready();

    // How many times the module was (re)loaded since open; for tests and metrics.
    unsigned generation() const noexcept;

    struct Impl;

  private:
    explicit Token(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m_impl;
};

}  // namespace kyso::hsm
