// PAdES baseline B-B and B-T signatures on PDF files, as an incremental update.
//
// The input is read with qpdf; the update we append is written here. Encrypted inputs
// (permission-protected, or opened with options.password) get an update encrypted with the
// document's key, except the signature's /Contents (ISO 32000-1, 7.6.1 and 12.8.1). The input file
// is a byte-for-byte prefix of the output; the output is written to a temporary file beside OUT and
// renamed into place only when complete, so a failure never leaves a partial file. Memory does
// not grow with the file size: the original bytes are streamed through the digest.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "kyso/hsm/credential.h"
#include "kyso/hsm/secret.h"
#include "kyso/signer/appearance.h"
#include "kyso/signer/timestamper.h"

namespace kyso::signer {

using hsm::Credential;

struct PadesOptions {
    std::string reason;
    std::string location;
    std::string contactInfo;
    // Sign into this existing, empty signature field; otherwise a new invisible field is added.
    std::optional<std::string> fieldName;
    // Page (1-based) that carries the new field's widget.
    int page = 1;
    // A visible signature (appearance.h); null: invisible. Into an existing field, the appearance
    // fills the field's rectangle unless it has its own. A seal appearance with neither a rect
    // nor an anchor overlaps the last visible signature of the document, on its page.
    std::optional<Appearance> appearance;
    // The claimed signing time (/M). Defaults to now.
    std::optional<std::chrono::system_clock::time_point> signingTime;
    // fsync the output before it is renamed into place (signPdf only).
    bool durable = true;
    // B-T: timestamp the signature with this TSA (one call per signature); null gives B-B.
    Timestamper* timestamper = nullptr;
    // The password of a document that needs one to open (its user or its owner password), or
    // null. A permission-protected document (empty user password) needs none. Never logged, never
    // in an error.
    const hsm::Secret* password = nullptr;
};

struct PadesResult {
    std::string fieldName;  // the signature field that now holds the signature
    std::uint64_t originalSize = 0;
    std::uint64_t outputSize = 0;
    std::uint64_t contentsBytes = 0;  // bytes reserved for /Contents (binary, before hex)
    bool xrefStream = false;          // the update kept the original's cross-reference stream
    bool hybridXref = false;          // the original is a hybrid-reference file (/XRefStm)
    bool encrypted = false;           // the update was encrypted with the document's key
    int pdfaPart = 0;                 // the PDF/A part the input claims (pdfaid:part), 0: none
    // A visible signature: its page (1-based), its rectangle and its image's, as displayed.
    int page = 0;
    std::optional<PdfRect> rect;
    std::optional<PdfRect> imageRect;
};

// Signs IN into OUT (OUT may equal IN). Errors, each with a stable code:
//   pdf.empty, pdf.not_pdf, pdf.truncated   the input is not a complete PDF file
//   pdf.encrypted                           the document needs a password to open and none (or
//                                           a wrong one) was given, or its security handler is
//                                           not the standard one
//   pdf.permissions                         permission-protected: its permissions do not allow
//                                           signing (the detail names the missing permission)
//   pdf.damaged                             qpdf had to repair it, or cannot read it
//   pdf.certified_no_changes                DocMDP P=1: no changes allowed
//   pdf.field_not_found, pdf.field_signed,  the requested field is missing, already signed,
//   pdf.field_not_signature                 or not a signature field
//   pdf.page_out_of_range                   options.page is not a page of the document
//   appearance.*, pdf.field_no_widget       the visible signature cannot be drawn (appearance.h)
//   io.read, io.write                       file system errors
// plus the credential's token errors.
Result<PadesResult> signPdf(const std::string& inPath, const std::string& outPath,
                            const Credential& credential, const PadesOptions& options);

// The same, writing the whole output to an open file descriptor (at its current position) and
// nothing else: for a caller that owns the output, such as the service's anonymous spool files.
// On failure, what was written to `outFd` must be discarded by the caller.
Result<PadesResult> signPdfTo(const std::string& inPath, int outFd, const Credential& credential,
                              const PadesOptions& options);

}  // namespace kyso::signer
