// CMS SignedData for CAdES baseline B: detached, with content-type, message-digest and
// signing-certificate-v2 signed attributes and no signing-time (PAdES puts the time in /M).
#pragma once

#include <string>
#include <string_view>

#include "kyso/hsm/credential.h"

namespace kyso::signer {

using hsm::Credential;

// Builds the DER SignedData over content whose digest (of c.hash) is `contentDigest`, signing the
// signed attributes on the token: exactly one token operation. Certificates: the signer's and
// c.chainDer. Errors: "cms.build" (OpenSSL refused a step), and the token's errors.
Result<std::string> buildCadesDetached(const Credential& c, std::string_view contentDigest);

// An upper bound of the size of what buildCadesDetached returns for this credential, computed by
// building the structure with a signature value of maximal length. Used to size /Contents.
Result<std::size_t> maxCadesSize(const Credential& c);

}  // namespace kyso::signer
