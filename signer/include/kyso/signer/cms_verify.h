// Reading a stand-alone CMS / CAdES signature (detached or attached) for validation: the
// cryptographic facts only; trust and revocation are judged by policies/validation.h.
#pragma once

#include <string>

#include "kyso/hsm/result.h"
#include "kyso/signer/signature_facts.h"

namespace kyso::signer {

struct CmsSignature : SignatureFacts {
    bool detached = false;
    std::string cmsDer;
};

// `cms` is the SignedData (DER, or PEM "-----BEGIN PKCS7/CMS-----"). For a detached signature
// `dataPath` names the file with the signed data, streamed; for an attached one it may be empty
// (when given, the embedded content must equal it). Errors: "cms.invalid" (not a SignedData),
// "cms.data_missing" (detached and no data), "io.read".
Result<CmsSignature> readCmsSignature(const std::string& cms, const std::string& dataPath);

}  // namespace kyso::signer
