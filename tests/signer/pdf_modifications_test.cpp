// What later revisions changed after a signature (signer/src/pdf_modifications.h): documents
// signed with our signer, then changed by incremental updates written with pdf_update.h, and the
// signed corpus.
#include "pdf_modifications.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <memory>
#include <set>

#include "kyso/signer/pades.h"
#include "kyso/signer/pdf_signatures.h"
#include "pdf_update.h"
#include "test_env.h"

namespace kyso::test {
namespace {

namespace fs = std::filesystem;
using signer::Modification;
using signer::ModificationReport;

const hsm::Credential& credential() {
    static hsm::Credential c =
        makeCredential(openTestToken(), "modifications-rsa", hsm::KeyType::Rsa);
    return c;
}

std::string workDir() {
    static std::string d = tempDir("modifications");
    return d;
}

// Signs `in` into `out` with a new invisible field (or into `field`).
void sign(const std::string& in, const std::string& out, const std::string& field = "") {
    signer::PadesOptions o;
    o.durable = false;
    if (!field.empty()) {
        o.fieldName = field;
    }
    auto r = signer::signPdf(in, out, credential(), o);
    ASSERT_TRUE(r.ok()) << in << ": " << r.error().detail;
}

// The report for the revision that ends at `signedEnd` of `path`.
ModificationReport classify(const std::string& path, long long signedEnd) {
    QPDF doc;
    doc.setSuppressWarnings(true);
    doc.processFile(path.c_str());
    return signer::classifyModifications(doc, path, signedEnd);
}

long long fileSize(const std::string& path) {
    return static_cast<long long>(fs::file_size(path));
}

bool hasNote(const ModificationReport& r, const std::string& part) {
    return std::any_of(r.notes.begin(), r.notes.end(),
                       [&](const std::string& n) { return n.find(part) != std::string::npos; });
}

std::string notesOf(const ModificationReport& r) {
    std::string s;
    for (const auto& n : r.notes) {
        s += "\n  " + n;
    }
    return s;
}

#define EXPECT_LEVEL(report, expected)                                                         \
    EXPECT_STREQ(signer::modificationName((report).level), signer::modificationName(expected)) \
        << "notes:" << notesOf(report)

constexpr const char* kHello = "BT /F1 24 Tf 72 720 Td (Hello) Tj ET";

// A one-page document: 1 catalog, 2 pages, 3 page, 4 content, 5 font, 6 resources.
std::vector<std::string> basicObjects(const std::string& resources = "<< /Font << /F1 5 0 R >> >>",
                                      const std::string& text = kHello) {
    return {"<< /Type /Catalog /Pages 2 0 R >>",
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
            "/Resources 6 0 R >>",
            pdfStream(text),
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            resources};
}

// Writes `pdf` to the work directory as `name` and returns its path.
std::string put(const std::string& name, const std::string& pdf) {
    const std::string path = workDir() + "/" + name;
    writeFile(path, pdf);
    return path;
}

// The basic document, signed once: the signed revision is the whole file.
struct Signed {
    std::string path;
    long long signedEnd = 0;
};

Signed signedBasic(const std::string& name) {
    Signed s;
    const std::string in = put(name + "-unsigned.pdf", makePdf(basicObjects()));
    s.path = workDir() + "/" + name + ".pdf";
    sign(in, s.path);
    s.signedEnd = fileSize(s.path);
    return s;
}

// The signed signature field of a document.
PdfFieldInfo signedField(const PdfInfo& info) {
    for (const auto& f : info.fields) {
        if (f.isSigned) {
            return f;
        }
    }
    return {};
}

TEST(PdfModifications, NamesAreStable) {
    EXPECT_STREQ(signer::modificationName(Modification::None), "NONE");
    EXPECT_STREQ(signer::modificationName(Modification::SignaturesOnly), "SIGNATURES_ONLY");
    EXPECT_STREQ(signer::modificationName(Modification::FormFilling), "FORM_FILLING");
    EXPECT_STREQ(signer::modificationName(Modification::Annotations), "ANNOTATIONS");
    EXPECT_STREQ(signer::modificationName(Modification::Other), "OTHER");
}

TEST(PdfModifications, NothingAppendedIsNone) {
    Signed s = signedBasic("nothing");
    ModificationReport r = classify(s.path, s.signedEnd);
    EXPECT_LEVEL(r, Modification::None);
    EXPECT_TRUE(r.validationDataOnly);
    EXPECT_FALSE(r.incomplete);
    EXPECT_EQ(r.docMdp, 0);
    EXPECT_TRUE(r.notes.empty()) << notesOf(r);
}

TEST(PdfModifications, ASecondSignatureIsSignaturesOnly) {
    Signed s = signedBasic("twice");
    const std::string twice = workDir() + "/twice-2.pdf";
    sign(s.path, twice);
    // The first signature's revision ends where its /ByteRange says.
    auto sigs = signer::readPdfSignatures(twice);
    ASSERT_TRUE(sigs.ok());
    ASSERT_EQ(sigs->size(), 2u);
    const auto& br = (*sigs)[0].byteRange;
    ASSERT_EQ(br.size(), 4u);
    EXPECT_EQ(br[2] + br[3], s.signedEnd);
    ModificationReport r = classify(twice, br[2] + br[3]);
    EXPECT_LEVEL(r, Modification::SignaturesOnly);
    EXPECT_FALSE(r.validationDataOnly);
    EXPECT_TRUE(hasNote(r, "signature Signature2 added")) << notesOf(r);
    // The second signature covers the whole file.
    const auto& br2 = (*sigs)[1].byteRange;
    EXPECT_LEVEL(classify(twice, br2[2] + br2[3]), Modification::None);
}

TEST(PdfModifications, SigningAnExistingEmptyFieldIsSignaturesOnly) {
    const std::string once = workDir() + "/field-1.pdf";
    sign(corpusDir() + "/pdf/unsigned/ph-minimal-with-field.pdf", once);
    const std::string twice = workDir() + "/field-2.pdf";
    sign(once, twice, "Sig1");
    ModificationReport r = classify(twice, fileSize(once));
    EXPECT_LEVEL(r, Modification::SignaturesOnly);
    EXPECT_FALSE(r.validationDataOnly);
    EXPECT_TRUE(hasNote(r, "signature Sig1 added")) << notesOf(r);
}

TEST(PdfModifications, ReplacedPageContentIsOther) {
    Signed s = signedBasic("content");
    PdfInfo info = readPdfInfo(s.path);
    ASSERT_EQ(info.contents.size(), 1u);
    ASSERT_NE(info.contents[0], 0);
    PdfUpdate u;
    u.objects.push_back({info.contents[0], 0, pdfStream("BT /F1 24 Tf 72 720 Td (Forged) Tj ET")});
    appendPdfUpdate(s.path, u);
    ModificationReport r = classify(s.path, s.signedEnd);
    EXPECT_LEVEL(r, Modification::Other);
    EXPECT_FALSE(r.validationDataOnly);
    EXPECT_FALSE(r.incomplete);
    EXPECT_TRUE(hasNote(r, "page 1: content changed")) << notesOf(r);
}

TEST(PdfModifications, AnAddedPageIsOther) {
    Signed s = signedBasic("page");
    PdfInfo info = readPdfInfo(s.path);
    const int page = info.size;
    const std::string pageRef = std::to_string(page) + " 0 R";
    PdfUpdate u;
    u.objects.push_back({page, 0,
                         "<< /Type /Page /Parent " + std::to_string(info.pagesRoot) +
                             " 0 R /MediaBox [0 0 595 842] /Contents " +
                             std::to_string(info.contents[0]) + " 0 R >>"});
    u.objects.push_back(
        {info.pagesRoot, 0,
         pdfEditedDict(s.path, info.pagesRoot,
                       {{"/Kids", "[" + std::to_string(info.pages[0]) + " 0 R " + pageRef + "]"},
                        {"/Count", "2"}})});
    appendPdfUpdate(s.path, u);
    ASSERT_EQ(readPdfInfo(s.path).pages.size(), 2u);
    ModificationReport r = classify(s.path, s.signedEnd);
    EXPECT_LEVEL(r, Modification::Other);
    EXPECT_TRUE(hasNote(r, "a page was added, removed or moved")) << notesOf(r);
}

TEST(PdfModifications, ANewAppearanceForTheSignedWidgetIsOther) {
    Signed s = signedBasic("appearance");
    PdfInfo info = readPdfInfo(s.path);
    PdfFieldInfo field = signedField(info);
    ASSERT_EQ(field.name, "Signature1");
    ASSERT_EQ(field.widgets.size(), 1u);
    const int ap = info.size;
    PdfUpdate u;
    u.objects.push_back({ap, 0,
                         pdfStream("0 0 1 rg 0 0 100 50 re f",
                                   "/Type /XObject /Subtype /Form /BBox [0 0 100 50]")});
    u.objects.push_back({field.widgets[0], 0,
                         pdfEditedDict(s.path, field.widgets[0],
                                       {{"/AP", "<< /N " + std::to_string(ap) + " 0 R >>"},
                                        {"/Rect", "[72 72 172 122]"}})});
    appendPdfUpdate(s.path, u);
    ModificationReport r = classify(s.path, s.signedEnd);
    EXPECT_LEVEL(r, Modification::Other);
    EXPECT_TRUE(hasNote(r, "signature field Signature1 changed after it was signed")) << notesOf(r);
}

TEST(PdfModifications, AByteIdenticalRewriteIsNone) {
    Signed s = signedBasic("identical");
    PdfInfo info = readPdfInfo(s.path);
    PdfUpdate u;
    // The same objects again, serialised by qpdf (other whitespace, same content).
    u.objects.push_back({info.root, 0, pdfObjectBody(s.path, info.root)});
    u.objects.push_back({info.pages[0], 0, pdfObjectBody(s.path, info.pages[0])});
    u.objects.push_back({info.contents[0], 0, pdfObjectBody(s.path, info.contents[0])});
    appendPdfUpdate(s.path, u);
    ModificationReport r = classify(s.path, s.signedEnd);
    EXPECT_LEVEL(r, Modification::None);
    EXPECT_TRUE(r.notes.empty()) << notesOf(r);
}

TEST(PdfModifications, AnAddedTextAnnotationIsAnnotations) {
    Signed s = signedBasic("annotation");
    PdfInfo info = readPdfInfo(s.path);
    PdfFieldInfo field = signedField(info);
    ASSERT_EQ(field.widgets.size(), 1u);
    ASSERT_EQ(info.annots[0], 0) << "our signer writes a direct /Annots array";
    const int annot = info.size;
    PdfUpdate u;
    u.objects.push_back({annot, 0,
                         "<< /Type /Annot /Subtype /Text /Rect [100 100 120 120] /Contents "
                         "(A note) /P " +
                             std::to_string(info.pages[0]) + " 0 R >>"});
    u.objects.push_back(
        {info.pages[0], 0,
         pdfEditedDict(s.path, info.pages[0],
                       {{"/Annots", "[" + std::to_string(field.widgets[0]) + " 0 R " +
                                        std::to_string(annot) + " 0 R]"}})});
    appendPdfUpdate(s.path, u);
    ModificationReport r = classify(s.path, s.signedEnd);
    EXPECT_LEVEL(r, Modification::Annotations);
    EXPECT_FALSE(r.validationDataOnly);
    EXPECT_TRUE(hasNote(r, "annotation added on page 1")) << notesOf(r);
}

TEST(PdfModifications, AFilledFormFieldIsFormFilling) {
    // 7 AcroForm, 8 a text field merged with its widget, 9 its appearance.
    std::vector<std::string> objs = basicObjects();
    objs[0] = "<< /Type /Catalog /Pages 2 0 R /AcroForm 7 0 R >>";
    objs[2] =
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources 6 0 R "
        "/Annots [8 0 R] >>";
    objs.push_back("<< /Fields [8 0 R] /DA (/F1 0 Tf 0 g) /DR 6 0 R >>");
    objs.push_back(
        "<< /Type /Annot /Subtype /Widget /FT /Tx /T (Name) /V (Ann) /Rect [72 600 300 620] "
        "/P 3 0 R /F 4 /DA (/F1 12 Tf 0 g) /AP << /N 9 0 R >> >>");
    objs.push_back(pdfStream("/Tx BMC BT /F1 12 Tf 2 4 Td (Ann) Tj ET EMC",
                             "/Type /XObject /Subtype /Form /BBox [0 0 228 20] /Resources 6 0 R"));
    const std::string in = put("form-unsigned.pdf", makePdf(objs));
    const std::string path = workDir() + "/form.pdf";
    sign(in, path);
    const long long signedEnd = fileSize(path);
    PdfInfo info = readPdfInfo(path);
    const int ap = info.size;
    PdfUpdate u;
    u.objects.push_back({ap, 0,
                         pdfStream("/Tx BMC BT /F1 12 Tf 2 4 Td (Bob) Tj ET EMC",
                                   "/Type /XObject /Subtype /Form /BBox [0 0 228 20] "
                                   "/Resources 6 0 R")});
    u.objects.push_back(
        {8, 0,
         pdfEditedDict(path, 8,
                       {{"/V", "(Bob)"}, {"/AP", "<< /N " + std::to_string(ap) + " 0 R >>"}})});
    appendPdfUpdate(path, u);
    ModificationReport r = classify(path, signedEnd);
    EXPECT_LEVEL(r, Modification::FormFilling);
    EXPECT_FALSE(r.validationDataOnly);
    EXPECT_TRUE(hasNote(r, "form field Name filled")) << notesOf(r);

    // Changing the old appearance stream in place is filling too; moving the field is not.
    PdfUpdate moved;
    moved.objects.push_back({8, 0, pdfEditedDict(path, 8, {{"/Rect", "[0 0 10 10]"}})});
    appendPdfUpdate(path, moved);
    ModificationReport m = classify(path, signedEnd);
    EXPECT_LEVEL(m, Modification::Other);
    EXPECT_TRUE(hasNote(m, "form field Name changed (/Rect)")) << notesOf(m);
}

TEST(PdfModifications, ADanglingReferenceFilledLaterIsOther) {
    // The page's resources name an image 99 0 R that the signed document does not define.
    std::vector<std::string> objs =
        basicObjects("<< /Font << /F1 5 0 R >> /XObject << /X1 99 0 R >> >>",
                     "BT /F1 24 Tf 72 720 Td (Hello) Tj ET q 100 0 0 100 72 500 cm /X1 Do Q");
    const std::string in = put("dangling-unsigned.pdf", makePdf(objs));
    const std::string path = workDir() + "/dangling.pdf";
    sign(in, path);
    const long long signedEnd = fileSize(path);
    PdfUpdate u;
    u.objects.push_back(
        {99, 0,
         pdfStream("0 0 1 rg 0 0 1 1 re f", "/Type /XObject /Subtype /Form /BBox [0 0 1 1]")});
    appendPdfUpdate(path, u);
    ModificationReport r = classify(path, signedEnd);
    EXPECT_LEVEL(r, Modification::Other);
    EXPECT_TRUE(hasNote(r, "referred to but did not define was added (99 0)")) << notesOf(r);
}

TEST(PdfModifications, AShadowedObjectPointedBackToIsOther) {
    // Revision 1 says "Hello"; revision 2 replaces the content with "Goodbye" and is signed; a
    // later cross-reference section points object 4 back at revision 1's definition.
    const std::string original = makePdf(basicObjects());
    const std::string in = put("shadow-unsigned.pdf", original);
    PdfUpdate second;
    second.objects.push_back({4, 0, pdfStream("BT /F1 24 Tf 72 720 Td (Goodbye) Tj ET")});
    appendPdfUpdate(in, second);
    const std::string path = workDir() + "/shadow.pdf";
    sign(in, path);
    const long long signedEnd = fileSize(path);
    const long long first = pdfObjectOffset(path, 4, 0, static_cast<long long>(original.size()));
    ASSERT_GT(first, 0);
    ASSERT_NE(first, pdfObjectOffset(path, 4, 0));
    PdfUpdate shadow;
    shadow.pointers.push_back({4, 0, first});
    appendPdfUpdate(path, shadow);
    ASSERT_EQ(pdfObjectOffset(path, 4, 0), first) << "the final document shows revision 1";
    ModificationReport r = classify(path, signedEnd);
    EXPECT_LEVEL(r, Modification::Other);
    EXPECT_TRUE(hasNote(r, "page 1: content changed")) << notesOf(r);
}

TEST(PdfModifications, RemovingTheSignedFieldIsOther) {
    Signed s = signedBasic("removed");
    PdfInfo info = readPdfInfo(s.path);
    ASSERT_EQ(info.acroForm, 0) << "our signer put the form into the catalog";
    PdfUpdate u;
    u.objects.push_back(
        {info.root, 0,
         pdfEditedDict(s.path, info.root, {{"/AcroForm", "<< /Fields [] /SigFlags 3 >>"}})});
    u.objects.push_back(
        {info.pages[0], 0, pdfEditedDict(s.path, info.pages[0], {{"/Annots", ""}})});
    appendPdfUpdate(s.path, u);
    ModificationReport r = classify(s.path, s.signedEnd);
    EXPECT_LEVEL(r, Modification::Other);
    EXPECT_TRUE(hasNote(r, "form field Signature1 removed")) << notesOf(r);
    EXPECT_TRUE(hasNote(r, "the widget of signature field Signature1 was removed from page 1"))
        << notesOf(r);
}

TEST(PdfModifications, AnAddedDssIsValidationDataOnly) {
    Signed s = signedBasic("dss");
    PdfInfo info = readPdfInfo(s.path);
    const int dss = info.size;
    const int cert = info.size + 1;
    PdfUpdate u;
    u.objects.push_back({dss, 0, "<< /Certs [" + std::to_string(cert) + " 0 R] >>"});
    u.objects.push_back({cert, 0, pdfStream(std::string("\x30\x03\x02\x01\x01", 5))});
    u.objects.push_back(
        {info.root, 0,
         pdfEditedDict(
             s.path, info.root,
             {{"/DSS", std::to_string(dss) + " 0 R"},
              {"/Extensions", "<< /ESIC << /BaseVersion /1.7 /ExtensionLevel 1 >> >>"}})});
    appendPdfUpdate(s.path, u);
    ModificationReport r = classify(s.path, s.signedEnd);
    EXPECT_LEVEL(r, Modification::SignaturesOnly);
    EXPECT_TRUE(r.validationDataOnly) << notesOf(r);
    EXPECT_TRUE(hasNote(r, "validation data (DSS) added or updated")) << notesOf(r);

    // Then a change to the signed revision's catalog beyond the DSS.
    PdfUpdate open;
    open.objects.push_back(
        {info.root, 0, pdfEditedDict(s.path, info.root, {{"/OpenAction", "[3 0 R /Fit]"}})});
    appendPdfUpdate(s.path, open);
    ModificationReport o = classify(s.path, s.signedEnd);
    EXPECT_LEVEL(o, Modification::Other);
    EXPECT_TRUE(hasNote(o, "the document catalog's /OpenAction changed")) << notesOf(o);
}

TEST(PdfModifications, ADocumentTimestampKeepsValidationDataOnly) {
    Signed s = signedBasic("timestamp");
    PdfInfo info = readPdfInfo(s.path);
    PdfFieldInfo first = signedField(info);
    ASSERT_EQ(first.widgets.size(), 1u);
    ASSERT_EQ(info.acroForm, 0);
    const int field = info.size;
    const int value = info.size + 1;
    const std::string fieldRef = std::to_string(field) + " 0 R";
    const std::string firstRef = std::to_string(first.widgets[0]) + " 0 R";
    PdfUpdate u;
    // Only the structure matters here: the token is not checked.
    u.objects.push_back({value, 0,
                         "<< /Type /DocTimeStamp /Filter /Adobe.PPKLite /SubFilter "
                         "/ETSI.RFC3161 /ByteRange [0 0 0 0] /Contents <00> >>"});
    u.objects.push_back({field, 0,
                         "<< /Type /Annot /Subtype /Widget /FT /Sig /T (Timestamp1) /V " +
                             std::to_string(value) + " 0 R /F 132 /Rect [0 0 0 0] /P " +
                             std::to_string(info.pages[0]) + " 0 R >>"});
    u.objects.push_back({info.pages[0], 0,
                         pdfEditedDict(s.path, info.pages[0],
                                       {{"/Annots", "[" + firstRef + " " + fieldRef + "]"}})});
    // Our signer put the form (absent before) directly into the catalog.
    u.objects.push_back({info.root, 0,
                         pdfEditedDict(s.path, info.root,
                                       {{"/AcroForm", "<< /Fields [" + firstRef + " " + fieldRef +
                                                          "] /SigFlags 3 >>"}})});
    appendPdfUpdate(s.path, u);
    ModificationReport r = classify(s.path, s.signedEnd);
    EXPECT_LEVEL(r, Modification::SignaturesOnly);
    EXPECT_TRUE(r.validationDataOnly) << notesOf(r);
    EXPECT_TRUE(hasNote(r, "document timestamp added")) << notesOf(r);
}

TEST(PdfModifications, DocMdpIsReadFromTheSignedRevision) {
    // A certification signature's dictionary (not a valid signature: only /Perms is read).
    auto certified = [](const std::string& params) {
        std::vector<std::string> objs = basicObjects();
        objs[0] = "<< /Type /Catalog /Pages 2 0 R /Perms << /DocMDP 7 0 R >> >>";
        objs.push_back(
            "<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /adbe.pkcs7.detached /Reference "
            "[<< /Type /SigRef /TransformMethod /DocMDP /TransformParams << /Type "
            "/TransformParams " +
            params + " /V /1.2 >> >>] /ByteRange [0 0 0 0] /Contents <00> >>");
        return makePdf(objs);
    };
    for (const auto& [params, expected] :
         std::vector<std::pair<std::string, int>>{{"/P 1", 1}, {"/P 2", 2}, {"/P 3", 3}, {"", 2}}) {
        SCOPED_TRACE(params);
        const std::string path = put("certified.pdf", certified(params));
        ModificationReport r = classify(path, fileSize(path));
        EXPECT_LEVEL(r, Modification::None);
        EXPECT_EQ(r.docMdp, expected);
    }
    // Signed after certification with P=2: still the certification's permission.
    const std::string in = put("certified-2.pdf", certified("/P 2"));
    const std::string out = workDir() + "/certified-2-signed.pdf";
    sign(in, out);
    ModificationReport r = classify(out, fileSize(in));
    EXPECT_LEVEL(r, Modification::SignaturesOnly);
    EXPECT_EQ(r.docMdp, 2);
}

TEST(PdfModifications, AnUnreadableRevisionIsOtherAndIncomplete) {
    Signed s = signedBasic("unreadable");
    ModificationReport r = classify(s.path, s.signedEnd + 100);  // past the end of the file
    EXPECT_LEVEL(r, Modification::Other);
    EXPECT_TRUE(r.incomplete);
    EXPECT_FALSE(r.validationDataOnly);
    ModificationReport z = classify(s.path, 0);
    EXPECT_LEVEL(z, Modification::Other);
    EXPECT_TRUE(z.incomplete);
}

TEST(PdfModifications, EveryCorpusSignatureIsClassified) {
    const std::set<std::string> signedTwice = {
        "ph-minimal-signed-twice-both-created.pdf", "ph-minimal-signed-twice-second-created.pdf",
        "ph-minimal-two-fields-signed-twice.pdf", "dss-hello_signed_INCSAVE_signed.pdf"};
    std::vector<fs::path> files;
    for (auto& e : fs::directory_iterator(corpusDir() + "/pdf/signed")) {
        files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    int checked = 0;
    for (const auto& file : files) {
        const std::string name = file.filename().string();
        SCOPED_TRACE(name);
        auto sigs = signer::readPdfSignatures(file.string());
        ASSERT_TRUE(sigs.ok());
        const long long size = fileSize(file.string());
        for (std::size_t i = 0; i < sigs->size(); ++i) {
            const auto& br = (*sigs)[i].byteRange;
            if (br.size() != 4 || br[2] < 0 || br[3] < 0 || br[2] + br[3] > size) {
                std::cout << "[ corpus   ] " << name << " #" << i + 1 << ": no usable /ByteRange\n";
                continue;
            }
            ModificationReport r;
            EXPECT_NO_THROW(r = classify(file.string(), br[2] + br[3]));
            std::cout << "[ corpus   ] " << name << " #" << i + 1 << " (" << (*sigs)[i].subFilter
                      << ", ends " << br[2] + br[3] << "/" << size
                      << "): " << signer::modificationName(r.level)
                      << (r.validationDataOnly ? " validation-data-only" : "")
                      << (r.incomplete ? " INCOMPLETE" : "")
                      << (r.docMdp ? " docMdp=" + std::to_string(r.docMdp) : "") << notesOf(r)
                      << "\n";
            if (signedTwice.count(name) && i == 0) {
                EXPECT_LEVEL(r, Modification::SignaturesOnly);
            }
            ++checked;
        }
    }
    EXPECT_GE(checked, 30);
}

// Our own second signature, over every input our signer accepts (classic tables, cross-reference
// streams, object streams, forms, annotations, broken files it repairs nothing in).
TEST(PdfModifications, OurSecondSignatureOverTheUnsignedCorpusIsSignaturesOnly) {
    std::vector<fs::path> files;
    for (auto& e : fs::directory_iterator(corpusDir() + "/pdf/unsigned")) {
        files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    int checked = 0;
    for (const auto& file : files) {
        const std::string name = file.filename().string();
        SCOPED_TRACE(name);
        const std::string once = workDir() + "/corpus-1-" + name;
        const std::string twice = workDir() + "/corpus-2-" + name;
        signer::PadesOptions o;
        o.durable = false;
        if (!signer::signPdf(file.string(), once, credential(), o).ok()) {
            continue;  // refused (encrypted, hybrid, damaged...): pades_test checks why
        }
        ASSERT_TRUE(signer::signPdf(once, twice, credential(), o).ok());
        ModificationReport r = classify(twice, fileSize(once));
        EXPECT_LEVEL(r, Modification::SignaturesOnly);
        EXPECT_FALSE(r.incomplete);
        EXPECT_LEVEL(classify(twice, fileSize(twice)), Modification::None);
        ++checked;
    }
    EXPECT_GE(checked, 25);
}

// Hybrid-reference attacks (pyHanko's "hybrid sneaky edit"): updates after the signature that
// show a reader following /XRefStm and a reader ignoring it different content. Each must be
// OTHER, whichever kind of reader our own analysis is.

// Appends an update and returns the file's bytes before it.
std::string appendAndKeep(const std::string& path, const PdfUpdate& u) {
    const std::string before = readFile(path);
    writeFile(path, withPdfUpdate(before, u));
    return before;
}

// Appends `u`, which writes the cross-reference stream object `stm`, then an empty hybrid
// section whose trailer's /XRefStm points at that stream.
void appendWithHybridSection(const std::string& path, const PdfUpdate& u, int stm) {
    const std::string before = appendAndKeep(path, u);
    PdfUpdate hybrid;
    hybrid.xrefStm = static_cast<long long>(
        readFile(path).find(std::to_string(stm) + " 0 obj\n", before.size()));
    appendPdfUpdate(path, hybrid);
}

// Object `num` (its decoded stream data) as qpdf shows it, following /XRefStm or ignoring it.
std::string objectAsRead(const std::string& path, int num, bool ignoreXRefStm) {
    std::string out;
    run(std::string("qpdf ") + (ignoreXRefStm ? "--ignore-xref-streams " : "") +
            "--show-object=" + std::to_string(num) + " --filtered-stream-data " + shellQuote(path),
        &out);
    return out;
}

TEST(PdfModifications, HybridSneakyEditSeenOnlyByReadersFollowingXRefStmIsOther) {
    Signed s = signedBasic("hybrid-sneaky");
    PdfInfo info = readPdfInfo(s.path);
    const int content = info.contents[0];
    // 1: forged page content written as object `content`, listed in no table.
    PdfUpdate forged;
    forged.unlisted.push_back({content, 0, pdfStream("BT /F1 24 Tf 72 720 Td (Forged) Tj ET")});
    const long long forgedAt = unlistedOffsets(appendAndKeep(s.path, forged), forged)[0];
    // 2: an info update that also writes a cross-reference stream moving `content` there.
    PdfUpdate info2;
    const int stm = info.size + 1;
    info2.objects.push_back({info.size, 0, "<< /Title (Hello) >>"});
    info2.objects.push_back(
        {stm, 0, pdfXrefStreamBody({{0, 0, 0, 65535}, {content, 1, forgedAt, 0}}, stm + 1)});
    // 3: an empty hybrid section whose /XRefStm is that stream.
    appendWithHybridSection(s.path, info2, stm);
    // qpdf, a reader that follows /XRefStm, now shows the forged text; one that ignores it not.
    EXPECT_NE(objectAsRead(s.path, content, false).find("Forged"), std::string::npos);
    EXPECT_EQ(objectAsRead(s.path, content, true).find("Forged"), std::string::npos);

    ModificationReport r = classify(s.path, s.signedEnd);
    EXPECT_LEVEL(r, Modification::Other);
    EXPECT_FALSE(r.validationDataOnly);
    EXPECT_TRUE(hasNote(r, "see different objects")) << notesOf(r);
    // And through the verifier: the signature is intact but the document was modified.
    auto sigs = signer::readPdfSignatures(s.path);
    ASSERT_TRUE(sigs.ok());
    ASSERT_EQ(sigs->size(), 1u);
    EXPECT_TRUE((*sigs)[0].digestMatches);
    EXPECT_EQ((*sigs)[0].modifications, Modification::Other);
}

TEST(PdfModifications, HybridEditSeenOnlyByReadersIgnoringXRefStmIsOther) {
    Signed s = signedBasic("hybrid-legacy");
    PdfInfo info = readPdfInfo(s.path);
    const int content = info.contents[0];
    const long long original = pdfObjectOffset(s.path, content, 0, s.signedEnd);
    ASSERT_GT(original, 0);
    // 1: forged content, listed in a classic table: every reader sees it...
    PdfUpdate forged;
    forged.objects.push_back({content, 0, pdfStream("BT /F1 24 Tf 72 720 Td (Forged) Tj ET")});
    appendPdfUpdate(s.path, forged);
    // 2: ... until a stream puts the signed definition back for readers that follow /XRefStm.
    PdfUpdate restore;
    const int stm = info.size;
    restore.objects.push_back(
        {stm, 0, pdfXrefStreamBody({{0, 0, 0, 65535}, {content, 1, original, 0}}, stm + 1)});
    appendWithHybridSection(s.path, restore, stm);
    EXPECT_EQ(objectAsRead(s.path, content, false).find("Forged"), std::string::npos);
    EXPECT_NE(objectAsRead(s.path, content, true).find("Forged"), std::string::npos);

    ModificationReport r = classify(s.path, s.signedEnd);
    EXPECT_LEVEL(r, Modification::Other);
    EXPECT_TRUE(hasNote(r, "ignores /XRefStm")) << notesOf(r);
    EXPECT_TRUE(hasNote(r, "page 1: content changed")) << notesOf(r);
}

TEST(PdfModifications, AnHonestHybridUpdateIsNotFlagged) {
    // A second signature over a hybrid-reference document we signed: no reader disagrees.
    const std::string once = workDir() + "/hybrid-honest-1.pdf";
    sign(testDataDir() + "/pdf/hybrid-word.pdf", once);
    const std::string twice = workDir() + "/hybrid-honest-2.pdf";
    sign(once, twice);
    ModificationReport r = classify(twice, fileSize(once));
    EXPECT_LEVEL(r, Modification::SignaturesOnly);
    EXPECT_FALSE(hasNote(r, "XRefStm")) << notesOf(r);
    EXPECT_LEVEL(classify(once, fileSize(once)), Modification::None);
}

}  // namespace
}  // namespace kyso::test
