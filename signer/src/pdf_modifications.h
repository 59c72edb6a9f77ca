// Private: what changed in a PDF after one of its revisions (the revision a signature covers).
#pragma once

#include <qpdf/QPDF.hh>
#include <string>
#include <vector>

#include "kyso/signer/pdf_signatures.h"

namespace kyso::signer {

struct ModificationReport {
    Modification level = Modification::None;
    // Every change after the signed revision is a DSS update or a document timestamp (what PAdES
    // allows even under DocMDP P=1).
    bool validationDataOnly = true;
    // DocMDP permission of the document's certification signature (/Perms /DocMDP in the signed
    // revision): 1, 2 or 3; 0 when the document is not certified.
    int docMdp = 0;
    // Human-readable reasons, one per kind of change ("page 1 content changed", ...).
    std::vector<std::string> notes;
    // The analysis could not be completed (a damaged signed revision, too many objects): the
    // level is then Other.
    bool incomplete = false;
};

// Compares the revision that ends at byte `signedEnd` of the file at `path` (bytes
// [0, signedEnd)) with the whole document as `finalDoc` (already processed from the same file)
// reads it. Never throws.
ModificationReport classifyModifications(QPDF& finalDoc, const std::string& path,
                                         long long signedEnd);

}  // namespace kyso::signer
