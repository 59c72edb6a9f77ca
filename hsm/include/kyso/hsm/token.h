// The token layer: one PKCS#11 token, loaded through libp11, logged in once, used from many
// threads. Keys never leave the token; this class only asks the token to sign digests and to
// seal and unseal secrets at rest.
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
#include "kyso/hsm/secret.h"

namespace kyso::hsm {

enum class KeyType { Rsa, Ec };
enum class HashAlg { Sha256, Sha384, Sha512 };
enum class SignScheme { RsaPkcs1v15, RsaPss, Ecdsa };

// Length in bytes of a digest of this algorithm.
std::size_t digestLength(HashAlg h) noexcept;
// "SHA-256", "SHA-384", "SHA-512".
const char* hashName(HashAlg h) noexcept;
// The algorithm's OID in dotted form (NIST: "2.16.840.1.101.3.4.2.1" for SHA-256, ...).
const char* hashOid(HashAlg h) noexcept;
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

// A secret (symmetric) key on the token, as ensureSecretKey finds or makes it. Only a
// description: the key value never leaves the token, and no handle is given out because handles
// change when the token reconnects.
struct SecretKeyInfo {
    std::string label;
    std::string id;           // raw CKA_ID bytes
    unsigned bits = 0;        // CKA_VALUE_LEN in bits (256 for the wrapping keys made here)
    bool sensitive = false;   // CKA_SENSITIVE as the token reports it
    bool extractable = true;  // CKA_EXTRACTABLE as the token reports it
    bool generated = false;   // made by this call; worth an audit entry, since a new wrapping
                              // key means secrets sealed under a lost one are gone for good
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

    // Secrets at rest (AES-256-GCM on the token), so that a stolen database is useless without
    // the HSM.
    //
    // The AES-256 wrapping key labelled `label`: found by label, or generated on the token once
    // (CKK_AES, 32 bytes, CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE true, CKA_EXTRACTABLE false,
    // usable to encrypt and decrypt only). A key found under the label is refused
    // ("key.unsupported") unless it is such a key and was generated on the token (CKA_LOCAL,
    // CKA_NEVER_EXTRACTABLE): an imported key may have a copy elsewhere. Errors: "key.spec"
    // (empty label), "key.ambiguous" (several secret keys with the label), "key.unsupported",
    // "token.unavailable", "token.error". Calls on one Token are serialised, so concurrent
    // callers get one key; two Tokens or processes racing on a new label can each make one, and
    // every later seal/unseal then fails with "key.ambiguous" until one is removed.
    Result<SecretKeyInfo> ensureSecretKey(std::string_view label);

    // Encrypts `plaintext` with the AES key labelled `keyLabel` (CKM_AES_GCM, a fresh 12-byte IV
    // from C_GenerateRandom, 128-bit tag) and binds `aad` to it (e.g. the row the secret
    // belongs to, so a blob copied to another row does not unseal). Returns IV || ciphertext ||
    // tag, 28 bytes longer than the plaintext. Random IVs are safe for up to 2^32 seals per key
    // (NIST SP 800-38D 8.3). The key must be an AES-256 key that is sensitive and not
    // extractable; it is never created here. Errors: "key.not_found", "key.ambiguous",
    // "key.unsupported", "token.unavailable" (the next call reconnects), "token.error".
    Result<std::string> seal(std::string_view keyLabel, std::string_view plaintext,
                             std::string_view aad);

    // The inverse of seal with the same key and AAD; the plaintext comes back in a Secret and
    // every intermediate copy here is wiped. Errors: "crypto.invalid" (shorter than IV + tag),
    // "crypto.tampered" (the tag does not verify: other AAD, changed bytes, another key; the
    // token connection is kept), and those of seal.
    Result<Secret> unseal(std::string_view keyLabel, std::string_view sealed, std::string_view aad);

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
