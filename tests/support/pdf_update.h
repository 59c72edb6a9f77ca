// Test support: incremental updates appended to a PDF by hand, for tests that need a document
// changed after it was signed (tampered copies, later revisions, attacks on signed PDFs).
//
// The update is written here as text, exactly as given; qpdf is used only to read what a test
// needs (the previous trailer, object numbers, an object's current body). Typical use:
//
//     PdfInfo info = readPdfInfo(path);                    // after signing `path`
//     PdfUpdate u;
//     u.objects.push_back({info.contents[0], 0, pdfStream("BT /F1 24 Tf (Forged) Tj ET")});
//     appendPdfUpdate(path, u);                           // page 1 now shows other content
//
// Every function throws std::runtime_error when the file cannot be read or is not a PDF qpdf
// can open.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace kyso::test {

// One object written by the update: `body` is what goes between "N G obj" and "endobj": a
// dictionary, an array, any other object, or a stream (see pdfStream()).
struct PdfObject {
    int num = 0;
    int gen = 0;
    std::string body;
};

// A cross-reference entry that points at bytes already in the file (an older definition of the
// object, say) without writing the object again.
struct PdfXrefPointer {
    int num = 0;
    int gen = 0;
    long long offset = 0;
};

struct PdfUpdate {
    std::vector<PdfObject> objects;
    std::vector<PdfXrefPointer> pointers;
    // "N G R": the trailer's new /Root. Empty keeps the previous trailer's /Root.
    std::string root;
    // Objects written before `objects` but listed in no cross-reference table: bytes that only
    // a cross-reference stream written later can point at (hybrid-reference attacks).
    std::vector<PdfObject> unlisted;
    // When >= 0, the trailer's /XRefStm (the offset of a cross-reference stream): the section
    // becomes a hybrid-reference one. An update with no objects and no pointers writes an empty
    // table "xref 0 0", as Word does.
    long long xrefStm = -1;
};

// One row of a cross-reference stream: type 0 (free), 1 (offset `field2`, generation
// `field3`) or 2 (in object stream `field2` at index `field3`).
struct PdfXrefStreamRow {
    int num = 0;
    int type = 1;
    long long field2 = 0;
    int field3 = 0;
};

// The body of an uncompressed cross-reference stream object (/Type /XRef, /W [1 4 2], one
// /Index pair per row, /Size `size`) listing `rows`.
std::string pdfXrefStreamBody(const std::vector<PdfXrefStreamRow>& rows, int size);

// Where withPdfUpdate(pdf, update) writes each object of `update.unlisted` ("N G obj").
std::vector<long long> unlistedOffsets(const std::string& pdf, const PdfUpdate& update);

// `pdf` with `update` appended as one incremental update: the objects in the given order, a
// classic cross-reference table with one subsection per object (and per pointer), and a trailer
// with /Root, /Info and /ID copied from the previous trailer (as qpdf reads it), /Size the
// larger of the previous /Size and the highest object number written + 1, and /Prev the
// previous startxref. An end-of-line is added first when `pdf` does not end with one. Works
// after a classic table or a cross-reference stream (the result is then a mixed file).
std::string withPdfUpdate(const std::string& pdf, const PdfUpdate& update);
// The same on a file, rewritten in place.
void appendPdfUpdate(const std::string& path, const PdfUpdate& update);

// A stream object's body: "<< extraKeys /Length n >>\nstream\n" + data + "\nendstream".
std::string pdfStream(const std::string& data, const std::string& extraKeys = "");

// A complete one-revision PDF 1.7 with a classic cross-reference table: bodies[i] is object
// i + 1 (generation 0) and object 1 is the catalog.
std::string makePdf(const std::vector<std::string>& bodies);

struct PdfFieldInfo {
    std::string name;          // fully qualified
    int num = 0;               // the terminal field's object number
    std::string type;          // "/Sig", "/Tx", ... (inherited)
    bool isSigned = false;     // a signature field with a /V dictionary
    std::vector<int> widgets;  // object numbers of its widget annotations (the field itself
                               // when merged)
};

// What tests need to know to write an update, read with qpdf from the whole file.
struct PdfInfo {
    int root = 0;               // trailer /Root
    int info = 0;               // trailer /Info, 0 when absent
    int size = 0;               // trailer /Size: new objects may be numbered from here
    int pagesRoot = 0;          // the catalog's /Pages
    int acroForm = 0;           // the catalog's /AcroForm when indirect, else 0
    std::vector<int> pages;     // page objects, in order
    std::vector<int> contents;  // per page: its (first) content stream, 0 when none
    std::vector<int> annots;    // per page: its /Annots array when indirect, else 0
    std::vector<PdfFieldInfo> fields;
    long long startxref = 0;  // of the last cross-reference section
    long long fileSize = 0;
};
PdfInfo readPdfInfo(const std::string& path);

// Object `num gen` as qpdf reads it from the whole file, serialised as a body for PdfObject (a
// stream with its raw, still encoded data and a direct /Length).
std::string pdfObjectBody(const std::string& path, int num, int gen = 0);

// The body of dictionary object `num gen` with keys changed: each pair is (key, value) with the
// value as PDF text ("/Annots", "[8 0 R 20 0 R]"); an empty value removes the key. Values may
// refer to objects that do not exist yet ("N G R" is kept as written; do not put that pattern in
// strings). Keys whose value is a reference to a missing object are dropped (qpdf reads those as
// null).
std::string pdfEditedDict(const std::string& path, int num,
                          const std::vector<std::pair<std::string, std::string>>& changes,
                          int gen = 0);

// The offset of object `num gen` in the cross-reference table of the revision that ends at byte
// `revisionEnd` of the file (the whole file when -1); -1 when that revision does not have it or
// the object is in an object stream. For PdfXrefPointer at an older definition.
long long pdfObjectOffset(const std::string& path, int num, int gen = 0,
                          long long revisionEnd = -1);

}  // namespace kyso::test
