// Private: the checks of one CMS SignedData shared by PDF and stand-alone signatures.
#pragma once

#include <openssl/cms.h>

#include <functional>
#include <string>

#include "kyso/signer/signature_facts.h"

namespace kyso::signer {

// The digest, with `md`, of the data a signature covers; empty when it cannot be computed.
using Digester = std::function<std::string(const EVP_MD* md)>;

// Checks the first SignerInfo of `cms` against the data `contentDigest` hashes: signer and
// certificates, the messageDigest, the signature over the signed attributes, the ESS
// signing-certificate(-v2) binding, signing-time and the signature timestamps (unsigned
// attribute id-aa-signatureTimeStampToken). Fills `out`; failures are errors in `out`.
void checkSignedData(CMS_ContentInfo* cms, const Digester& contentDigest, SignatureFacts* out);

// Checks an RFC 3161 TimeStampToken (a CMS SignedData over a TSTInfo) whose imprint should be
// the digest of what `stamped` hashes.
TimestampFacts checkTimestampToken(const std::string& tokenDer, const Digester& stamped);

// A Digester over bytes held in memory; `bytes` must outlive it.
Digester digestOfBytes(const std::string& bytes);

}  // namespace kyso::signer
