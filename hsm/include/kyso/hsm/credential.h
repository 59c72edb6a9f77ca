// A signing credential: a key on a token with its certificate chain. The token must outlive it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "kyso/hsm/result.h"
#include "kyso/hsm/token.h"

namespace kyso::hsm {

struct Credential {
    std::string id;          // configured credential id ("officer-1")
    std::string kind;        // "officer", "seal", "tsa", ...
    Token* token = nullptr;  // borrowed; outlives the credential
    KeyInfo key;             // the private key on the token
    SignScheme scheme = SignScheme::RsaPkcs1v15;
    HashAlg hash = HashAlg::Sha256;
    std::string certificateDer;         // the signer's certificate
    std::vector<std::string> chainDer;  // intermediates (issuer first), no trust anchor

    // Signs a digest of `hash` on the token (one token operation).
    Result<std::string> signDigest(std::string_view digest) const {
        return token->sign(key, scheme, hash, digest);
    }
    // Largest signature value the token can return for this key, in bytes.
    std::size_t maxSignatureSize() const;
};

// The default scheme and hash for a key: RSA PKCS#1 v1.5 with SHA-256, ECDSA with SHA-256 on
// P-256 and SHA-384 on P-384.
void chooseDefaultAlgorithms(Credential& c);

}  // namespace kyso::hsm
