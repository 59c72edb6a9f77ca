// CMS SignedData for CAdES baseline B: detached, with content-type, message-digest and
// signing-certificate-v2 signed attributes and no signing-time (PAdES puts the time in /M).
#pragma once

#include <cstdint>
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
// `signingTime`: add the signing-time attribute (CAdES baseline B requires it; PAdES forbids it).
Result<std::string> buildCadesDetached(const Credential& c, std::string_view contentDigest,
                                       Timestamper* timestamper = nullptr,
                                       bool signingTime = false);

// An upper bound of the size of what buildCadesDetached returns for this credential, computed by
// building the structure with a signature value of maximal length, plus the timestamper's token
// bound. Used to size /Contents.
Result<std::size_t> maxCadesSize(const Credential& c, Timestamper* timestamper = nullptr,
                                 bool signingTime = false);

struct CadesOptions {
    bool detached = true;
    Timestamper* timestamper = nullptr;  // B-T when set
};

struct CadesResult {
    std::uint64_t contentSize = 0;
    std::uint64_t outputSize = 0;
};

// CAdES baseline B (or B-T) over the file at `inPath`, written as DER to `outFd`: detached, or
// with the content encapsulated. The file is read twice as a stream (digest, then copy when
// attached): memory stays flat in the file size. Errors: "io.read", "io.write", and those of
// buildCadesDetached.
Result<CadesResult> signCms(const std::string& inPath, int outFd, const Credential& c,
                            const CadesOptions& options);

// The same into OUT, through a temporary file renamed into place: never a partial file.
Result<CadesResult> signCmsFile(const std::string& inPath, const std::string& outPath,
                                const Credential& c, const CadesOptions& options);

}  // namespace kyso::signer
