// An OpenSSL EVP_PKEY whose private-key operations are done by the token: for the OpenSSL APIs
// that sign with a key themselves (RFC 3161 responses, OCSP responses, CRLs, streamed CMS). The
// key material stays on the token; the EVP_PKEY holds only the public key and the credential.
//
// RSA keys sign with PKCS#1 v1.5 (RSA_sign); EC keys with ECDSA. Other padding modes are refused
// by the OpenSSL call that asks for them.
#pragma once

#include <optional>

#include "kyso/hsm/credential.h"
#include "kyso/hsm/ossl_ptr.h"
#include "kyso/hsm/result.h"

namespace kyso::hsm {

// Returns the key, or "key.unsupported" when the credential's public key cannot be decoded. A
// copy of the credential is kept inside; its Token must outlive the key.
Result<OsslPtr<EVP_PKEY>> tokenBackedKey(const Credential& credential);

// The token error behind the last failed signature with a token-backed key on this thread (for
// a typed error such as "token.unavailable" when OpenSSL only reports a failure). Cleared when
// read.
std::optional<Error> takeTokenError();

}  // namespace kyso::hsm
