// Private: appending an incremental update to a PDF (ISO 32000-1, 7.5.6). Shared by signatures
// (pades.cpp), validation data and document timestamps (pades_ltv.cpp): the original is opened
// with qpdf, the caller lists the objects it adds or rewrites, and writeUpdate appends them with
// a cross-reference section in the style of the original whose /Prev points at the original's
// last one. An update may hold one signature whose /Contents is computed from the digest of its
// byte range once the whole update is laid out.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <qpdf/QPDF.hh>
#include <qpdf/QPDFObjectHandle.hh>
#include <qpdf/QPDFPageObjectHelper.hh>
#include <string>
#include <string_view>
#include <vector>

#include "kyso/hsm/result.h"
#include "kyso/hsm/secret.h"
#include "kyso/hsm/token.h"
#include "pdf_encrypt.h"
#include "pdf_util.h"

namespace kyso::signer {

// What qpdf does not tell us: the offset of the last cross-reference section and its kind.
struct FileFacts {
    std::uint64_t size = 0;
    std::uint64_t startxref = 0;
    bool xrefStream = false;
    bool endsWithEol = false;
};

// A document opened for an update.
struct OpenedPdf {
    FileFacts facts;
    std::unique_ptr<QPDF> pdf;
    std::optional<UpdateEncryptor> encryptor;  // set when the document is encrypted
    bool hybridXref = false;                   // a classic table whose trailer has /XRefStm
    int nextNum = 0;                           // the next free object number
    int allocate() { return nextNum++; }
};

// Opens IN for an update. Errors: pdf.empty, pdf.not_pdf, pdf.truncated, pdf.damaged (qpdf had
// to reconstruct the cross-reference table, or cannot read the file), pdf.encrypted (a password
// is needed and `password` is null or wrong, or the security handler is not one we write),
// io.read. The password is never in an error.
Result<OpenedPdf> openForUpdate(const std::string& inPath, const hsm::Secret* password);

Error damaged(const std::string& why);

// The permissions of an encrypted document opened without its owner password (ISO 32000-1,
// table 22) for signing into an existing field, or for adding a new one: pdf.permissions.
Status checkPermissions(QPDF& pdf, bool existingField);

// A reference to object NUM of the update, which qpdf does not know yet: a unique name replaced
// by "NUM 0 R" in serialize().
QPDFObjectHandle placeholderRef(int num);
// The serialised body of H (indirect objects resolved one level), placeholders replaced.
std::string serialize(QPDFObjectHandle h);

// A signature field name not yet used at the top of the AcroForm: Signature1, Signature2, ...
std::string newSignatureFieldName(QPDFObjectHandle root);

// A new signature field merged with its widget (object WIDGET_NUM: /T FIELD_NAME, /V SIG_NUM,
// /Rect RECT, printed and locked, then AP: "" or "\n/AP << ... >>") on PAGE's /Annots and in the
// AcroForm's /Fields, with /SigFlags 3; what must be rewritten goes into OBJECTS.
void addSignatureWidget(QPDFObjectHandle root, QPDFObjectHandle page, int widgetNum, int sigNum,
                        const std::string& fieldName, const std::string& rect,
                        const std::string& ap, std::vector<PdfObject>* objects);
// PDF/A wants an appearance for every widget (ISO 19005-2, 6.3.3): an invisible signature gets
// an empty one, as Acrobat writes it. Returns the "\n/AP << /N ... >>" entry.
std::string emptyAppearance(OpenedPdf& doc, std::vector<PdfObject>* objects);
// Only /SigFlags 3, for a signature into an existing field.
void markSigned(QPDFObjectHandle root, std::vector<PdfObject>* objects);

// The PDF/A part the document claims in its XMP metadata (pdfaid:part, ISO 19005), 0 for none.
int pdfaPart(QPDFObjectHandle root);

// The signature dictionary of the update: its /ByteRange and /Contents are placeholders at the
// given offsets of BODY, patched once the update is laid out. `contents` returns the DER for
// /Contents from the digest (of `hash`) of the byte range.
struct SignatureSlot {
    int num = 0;
    std::string body;
    std::size_t byteRangeAt = 0;  // the 84 spaces after "/ByteRange ["
    std::size_t contentsAt = 0;   // the "<" of /Contents
    std::size_t hexLen = 0;       // hex digits between "<" and ">"
    hsm::HashAlg hash = hsm::HashAlg::Sha256;
    std::function<Result<std::string>(std::string_view digest)> contents;
};

// "/ByteRange [<84 spaces>]\n/Contents <0...0>" for a slot body, with the offsets within it.
std::string byteRangeAndContents(std::size_t hexLen, std::size_t* byteRangeAt,
                                 std::size_t* contentsAt);

// Writes the original and then the update (the slot's signature, if any, first, then OBJECTS,
// encrypted with the document's key when it has one; the slot's body must be encrypted by the
// caller) to OUT_FD. Returns the size of the output. Errors: io.read, io.write, cms.build,
// tsa.token_too_large (the DER does not fit the reserved /Contents), and those of `contents`.
Result<std::uint64_t> writeUpdate(const std::string& inPath, int outFd, OpenedPdf& doc,
                                  std::vector<PdfObject> objects, SignatureSlot* slot);

}  // namespace kyso::signer
