// CMS SignedData for CAdES baseline B: detached, with content-type, message-digest and
// signing-certificate-v2 signed attributes and no signing-time (PAdES puts the time in /M).
#pragma once

#include <string>
#include <string_view>

#include "kyso/hsm/credential.h"
#include "kyso/signer/timestamper.h"

namespace kyso::signer {

using hsm::Credential;

// Builds the DER SignedData over content whose digest (of c.hash) is `contentDigest`, signing the
// signed attributes on the token: exactly one token operation. Certificates: the signer's and
// c.chainDer. With a timestamper (B-T), the signature value is timestamped (one TSA call) and the
// token added as the signature-time-stamp unsigned attribute. Errors: "cms.build" (OpenSSL
// refused a step), the token's errors, and the timestamper's ("tsa.*").
Result<std::string> buildCadesDetached(const Credential& c, std::string_view contentDigest,
                                       Timestamper* timestamper = nullptr);

// An upper bound of the size of what buildCadesDetached returns for this credential, computed by
// building the structure with a signature value of maximal length, plus the timestamper's token
// bound. Used to size /Contents.
Result<std::size_t> maxCadesSize(const Credential& c, Timestamper* timestamper = nullptr);

}  // namespace kyso::signer
