// The signatures of a PDF as they are in the file: where each one is, what its /ByteRange
// covers, and whether its bytes and signature value are intact. Trust (paths, revocation) and
// modifications after signing are judged elsewhere; this is the part no policy can overrule.
#pragma once

#include <cstdint>
#include <ctime>
#include <set>
#include <string>
#include <vector>

#include "kyso/hsm/result.h"
#include "kyso/signer/signature_facts.h"

namespace kyso::signer {

// After pyHanko's classification.
enum class Coverage {
    EntireFile,                // the byte range is the whole file but /Contents
    EntireRevision,            // ... up to the end of a revision (a later update follows)
    ContiguousBlockFromStart,  // from byte 0, not reaching a revision's end
    Unclear,                   // not [0 a b c], a gap other than /Contents, overlaps, past EOF
};
const char* coverageName(Coverage c) noexcept;

// What later revisions changed after a signature's revision, after pyHanko and DSS; ordered from
// least to most.
enum class Modification {
    None,            // nothing after the signed revision (or only byte-identical rewrites)
    SignaturesOnly,  // new signatures, document timestamps, DSS (validation data), metadata
    FormFilling,     // values and appearances of existing non-signature form fields
    Annotations,     // annotations added, changed or removed (not signature widgets)
    Other,           // anything else: page content, pages, an existing signature, the catalog...
};
const char* modificationName(Modification m) noexcept;

struct PdfSignature : SignatureFacts {
    std::string fieldName;
    std::string subFilter;  // adbe.pkcs7.detached, ETSI.CAdES.detached, ETSI.RFC3161, ...
    bool documentTimestamp = false;
    std::vector<long long> byteRange;
    Coverage coverage = Coverage::Unclear;
    std::string cmsDer;              // the CMS from /Contents, trailing padding removed
    std::time_t dictionaryTime = 0;  // the signature dictionary's /M, 0 when absent
    // What the revisions after this signature's changed (see pdf_modifications), and the
    // document's DocMDP permission (1-3, 0 when not certified).
    Modification modifications = Modification::None;
    bool modificationsValidationDataOnly = true;  // only DSS updates and document timestamps
    int docMdp = 0;
    std::vector<std::string> modificationNotes;
    // The key of its /VRI entry in a DSS: upper-case hex SHA-1 of the whole /Contents string.
    std::string vriKey;
};

// The document security store of the final revision (ISO 32000-2, 12.8.4.3): validation data
// for long-term validation, each item once.
struct PdfDss {
    bool present = false;
    std::vector<std::string> certificatesDer;   // the decoded streams of /Certs
    std::vector<std::string> ocspResponsesDer;  // ... of /OCSPs (OCSPResponse)
    std::vector<std::string> crlsDer;           // ... of /CRLs
    std::set<std::string> vriKeys;              // the keys of /VRI
};

struct PdfDocumentSignatures {
    std::vector<PdfSignature> signatures;
    PdfDss dss;
};

// The signatures of the document at `path`, in field order. The file is read as a stream for the
// digests; a damaged file still yields the signatures qpdf finds before the damage. Errors:
// "io.read", "pdf.not_pdf", "pdf.damaged" when qpdf cannot read the structure at all,
// "pdf.encrypted" when the document needs a password to open, and
// "pdf.too_many_signatures" beyond 100 (the work per document is bounded).
Result<std::vector<PdfSignature>> readPdfSignatures(const std::string& path);
// The same, with the document's DSS.
Result<PdfDocumentSignatures> readPdfDocument(const std::string& path);

}  // namespace kyso::signer
