// The signatures of a PDF as they are in the file: where each one is, what its /ByteRange
// covers, and whether its bytes and signature value are intact. Trust (paths, revocation) and
// modifications after signing are judged elsewhere; this is the part no policy can overrule.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kyso/hsm/result.h"

namespace kyso::signer {

// After pyHanko's classification.
enum class Coverage {
    EntireFile,                // the byte range is the whole file but /Contents
    EntireRevision,            // ... up to the end of a revision (a later update follows)
    ContiguousBlockFromStart,  // from byte 0, not reaching a revision's end
    Unclear,                   // not [0 a b c], a gap other than /Contents, overlaps, past EOF
};
const char* coverageName(Coverage c) noexcept;

struct PdfSignature {
    std::string fieldName;
    std::string subFilter;  // adbe.pkcs7.detached, ETSI.CAdES.detached, ETSI.RFC3161, ...
    bool documentTimestamp = false;
    std::vector<long long> byteRange;
    Coverage coverage = Coverage::Unclear;
    bool digestMatches = false;   // the messageDigest (or the timestamp's imprint) is that of the
                                  // bytes the /ByteRange names
    bool signatureValid = false;  // the signature over the signed attributes verifies with the
                                  // signer certificate carried in the CMS
    // A signing-certificate(-v2) attribute names the signer's certificate by its hash.
    bool signingCertificateBound = false;
    std::string signerSubject;  // RFC 2253, UTF-8
    std::string cmsDer;         // the CMS from /Contents, trailing padding removed
    std::vector<std::string> errors;
};

// The signatures of the document at `path`, in field order. The file is read as a stream for the
// digests; a damaged file still yields the signatures qpdf finds before the damage. Errors:
// "io.read", "pdf.not_pdf", and "pdf.damaged" when qpdf cannot read the structure at all.
Result<std::vector<PdfSignature>> readPdfSignatures(const std::string& path);

}  // namespace kyso::signer
