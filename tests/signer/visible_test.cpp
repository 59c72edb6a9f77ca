// Visible signatures and the agency e-seal (Decree 30/2020): every output is checked by tools we
// did not write. pdfsig (both signatures valid, the first still covering its revision),
// pdftotext (the Vietnamese text, exactly), pdftoppm (pixels: the seal's red over the left part
// of the signature image and nowhere outside the seal's rectangle, white elsewhere), pdffonts
// (embedded subset) and qpdf --check.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>

#include "kyso/signer/appearance.h"
#include "kyso/signer/pades.h"
#include "kyso/signer/pdf_signatures.h"
#include "kyso/signer/png_image.h"
#include "pdf_update.h"
#include "test_env.h"

namespace kyso::test {
namespace {

namespace fs = std::filesystem;
using signer::Appearance;
using signer::AppearanceLayout;
using signer::PdfRect;

const hsm::Credential& officer() {
    static hsm::Credential c =
        makeCredential(openTestToken(), "visible-officer", hsm::KeyType::Rsa);
    return c;
}
const hsm::Credential& agencySeal() {
    static hsm::Credential c = makeCredential(openTestToken(), "visible-seal", hsm::KeyType::Rsa);
    return c;
}

// A blank page (nothing drawn), MEDIABOX as PDF text, optional /Rotate.
std::string blankPdf(const std::string& mediaBox = "[0 0 595 842]", int rotate = 0) {
    return makePdf({"<< /Type /Catalog /Pages 2 0 R >>",
                    "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                    "<< /Type /Page /Parent 2 0 R /MediaBox " + mediaBox +
                        (rotate ? " /Rotate " + std::to_string(rotate) : "") +
                        " /Contents 4 0 R /Resources << >> >>",
                    pdfStream("")});
}

// The test's own images, written through libpng: a blue "signature" (an opaque stroke band on
// a transparent background) and a red disc (the seal) 36 mm across at 300 dpi.
struct Images {
    std::string signature;
    std::string seal;
};
const Images& images() {
    static Images im = [] {
        Images i;
        const std::string dir = tempDir("visible-images");
        i.signature = dir + "/signature.png";
        i.seal = dir + "/seal.png";
        const int sw = 300;
        const int sh = 120;
        std::string rgba(static_cast<std::size_t>(sw * sh * 4), '\0');
        for (int y = 0; y < sh; ++y) {
            for (int x = 0; x < sw; ++x) {
                // A wavy band across the whole width, three quarters of the height.
                const double c = sh / 2.0 + sh / 4.0 * std::sin(x / 30.0);
                if (std::fabs(y - c) < sh / 5.0) {
                    unsigned char* p = reinterpret_cast<unsigned char*>(
                        &rgba[static_cast<std::size_t>((y * sw + x) * 4)]);
                    p[0] = 0;
                    p[1] = 40;
                    p[2] = 140;
                    p[3] = 255;
                }
            }
        }
        EXPECT_TRUE(signer::writePng(i.signature, sw, sh, rgba, 11811).ok());
        const int d = 425;
        std::string seal(static_cast<std::size_t>(d * d * 4), '\0');
        for (int y = 0; y < d; ++y) {
            for (int x = 0; x < d; ++x) {
                const double r = std::hypot(x - d / 2.0 + 0.5, y - d / 2.0 + 0.5);
                if (r < d / 2.0 - 1) {
                    unsigned char* p = reinterpret_cast<unsigned char*>(
                        &seal[static_cast<std::size_t>((y * d + x) * 4)]);
                    p[0] = 220;
                    p[3] = 255;
                }
            }
        }
        EXPECT_TRUE(signer::writePng(i.seal, d, d, seal, 11811).ok());
        return i;
    }();
    return im;
}

Appearance officerAppearance(const PdfRect& rect) {
    Appearance a;
    a.layout = AppearanceLayout::ImageLeft;
    a.rect = rect;
    a.imagePath = images().signature;
    a.lines = {"Nguyễn Văn An", "Giám đốc Sở", "Ủy ban nhân dân tỉnh",
               "Thời gian ký: 10:00:00 25/11/2026"};
    return a;
}

Appearance sealAppearance(const std::optional<PdfRect>& anchor) {
    Appearance a;
    a.layout = AppearanceLayout::Seal;
    a.overlapLeftThirdOf = anchor;
    a.imagePath = images().seal;
    a.lines = {"Sở Thông tin và Truyền thông", "2026-11-25T10:00:00+07:00"};
    return a;
}

// A rendered page: pdftoppm's PPM (P6), RGB.
struct Raster {
    int width = 0;
    int height = 0;
    std::string rgb;
    double scale = 1;  // pixels per point

    const unsigned char* at(int x, int y) const {
        return reinterpret_cast<const unsigned char*>(
            &rgb[static_cast<std::size_t>((y * width + x) * 3)]);
    }
    bool red(int x, int y) const {
        const unsigned char* p = at(x, y);
        return p[0] > 150 && p[1] < 90 && p[2] < 90;
    }
    bool white(int x, int y) const {
        const unsigned char* p = at(x, y);
        return p[0] > 245 && p[1] > 245 && p[2] > 245;
    }
    // A displayed-page rectangle (points, origin lower-left) in pixels: [x0, x1) x [y0, y1).
    void pixels(const PdfRect& r, int* x0, int* y0, int* x1, int* y1) const {
        *x0 = static_cast<int>(std::floor(r.x * scale));
        *x1 = static_cast<int>(std::ceil((r.x + r.w) * scale));
        *y0 = static_cast<int>(std::floor(height - (r.y + r.h) * scale));
        *y1 = static_cast<int>(std::ceil(height - r.y * scale));
    }
    bool inside(const PdfRect& r, int x, int y, int margin) const {
        int x0, y0, x1, y1;
        pixels(r, &x0, &y0, &x1, &y1);
        return x >= x0 - margin && x < x1 + margin && y >= y0 - margin && y < y1 + margin;
    }
};

Raster render(const std::string& pdf, int dpi = 72) {
    const std::string base = tempDir("render") + "/page";
    EXPECT_EQ(run("pdftoppm -r " + std::to_string(dpi) + " -singlefile " + shellQuote(pdf) + " " +
                  shellQuote(base)),
              0);
    const std::string ppm = readFile(base + ".ppm");
    Raster r;
    r.scale = dpi / 72.0;
    // "P6\n<w> <h>\n255\n" then the samples.
    std::size_t pos = 0;
    auto token = [&] {
        while (pos < ppm.size() && std::isspace(static_cast<unsigned char>(ppm[pos]))) {
            ++pos;
        }
        std::size_t start = pos;
        while (pos < ppm.size() && !std::isspace(static_cast<unsigned char>(ppm[pos]))) {
            ++pos;
        }
        return ppm.substr(start, pos - start);
    };
    EXPECT_EQ(token(), "P6");
    r.width = std::stoi(token());
    r.height = std::stoi(token());
    EXPECT_EQ(token(), "255");
    r.rgb = ppm.substr(pos + 1);
    EXPECT_EQ(r.rgb.size(), static_cast<std::size_t>(r.width * r.height * 3));
    return r;
}

struct Signed {
    std::string path;
    signer::PadesResult officer;
    signer::PadesResult seal;
};

// Signs IN visibly as the officer at RECT, then seals it over the officer's image.
Signed signAndSeal(const std::string& in, const PdfRect& rect, const std::string& tag) {
    Signed s;
    const std::string dir = tempDir(tag);
    const std::string mid = dir + "/signed.pdf";
    s.path = dir + "/sealed.pdf";
    signer::PadesOptions o;
    o.appearance = officerAppearance(rect);
    auto first = signer::signPdf(in, mid, officer(), o);
    EXPECT_TRUE(first.ok()) << (first ? "" : first.error().code + ": " + first.error().detail);
    if (!first) {
        return s;
    }
    s.officer = *first;
    signer::PadesOptions so;
    so.page = first->page;
    so.appearance = sealAppearance(first->imageRect);
    auto second = signer::signPdf(mid, s.path, agencySeal(), so);
    EXPECT_TRUE(second.ok()) << (second ? "" : second.error().code + ": " + second.error().detail);
    if (second) {
        s.seal = *second;
    }
    return s;
}

std::string tool(const std::string& command) {
    std::string out;
    EXPECT_EQ(run(command + " 2>&1", &out), 0) << command << "\n" << out;
    return out;
}

// The checks every signed-and-sealed output must pass, whatever the page geometry.
void expectSignedAndSealed(const Signed& s) {
    // pdfsig: two signatures, both valid; the first covers its revision, the second the file.
    const std::string sig = tool("pdfsig " + shellQuote(s.path));
    EXPECT_EQ(std::count(sig.begin(), sig.end(), '\n') > 0, true);
    std::smatch m;
    EXPECT_NE(sig.find("Signature #1"), std::string::npos) << sig;
    EXPECT_NE(sig.find("Signature #2"), std::string::npos) << sig;
    EXPECT_EQ(sig.find("Signature #3"), std::string::npos) << sig;
    const auto second = sig.find("Signature #2");
    const std::string one = sig.substr(0, second);
    const std::string two = sig.substr(second);
    EXPECT_NE(one.find("Signature Validation: Signature is Valid."), std::string::npos) << sig;
    EXPECT_NE(two.find("Signature Validation: Signature is Valid."), std::string::npos) << sig;
    EXPECT_NE(two.find("Total document signed"), std::string::npos) << sig;
    EXPECT_NE(one.find("Not total document signed"), std::string::npos) << sig;

    // Our own reading: the first signature covers exactly its revision, and what came after it
    // is a signature (with its appearance), nothing else.
    auto sigs = signer::readPdfSignatures(s.path);
    ASSERT_TRUE(sigs.ok());
    ASSERT_EQ(sigs->size(), 2u);
    EXPECT_EQ((*sigs)[0].coverage, signer::Coverage::EntireRevision);
    EXPECT_EQ((*sigs)[1].coverage, signer::Coverage::EntireFile);
    EXPECT_EQ((*sigs)[0].modifications, signer::Modification::SignaturesOnly);
    EXPECT_TRUE((*sigs)[0].digestMatches && (*sigs)[0].signatureValid);
    EXPECT_TRUE((*sigs)[1].digestMatches && (*sigs)[1].signatureValid);

    // qpdf: clean.
    const std::string check = tool("qpdf --check " + shellQuote(s.path));
    EXPECT_NE(check.find("No syntax or stream encoding errors found"), std::string::npos) << check;
    EXPECT_EQ(check.find("WARNING"), std::string::npos) << check;

    // pdffonts: every font embedded and subset.
    const std::string fonts = tool("pdffonts " + shellQuote(s.path));
    std::istringstream lines(fonts);
    std::string line;
    int fontLines = 0;
    while (std::getline(lines, line)) {
        if (std::regex_search(line, std::regex("^[A-Z]{6}\\+"))) {
            ++fontLines;
            EXPECT_TRUE(std::regex_search(
                line, std::regex("CID TrueType\\s+Identity-H\\s+yes\\s+yes\\s+yes")))
                << line;
        }
    }
    EXPECT_EQ(fontLines, 2) << fonts;  // the officer's subset and the seal's

    // pdftotext: the Vietnamese strings, exactly.
    const std::string text = tool("pdftotext -layout " + shellQuote(s.path) + " -");
    for (const char* expected : {"Nguyễn Văn An", "Giám đốc Sở", "Ủy ban nhân dân tỉnh",
                                 "Thời gian ký: 10:00:00 25/11/2026",
                                 "Sở Thông tin và Truyền thông", "2026-11-25T10:00:00+07:00"}) {
        EXPECT_NE(text.find(expected), std::string::npos) << expected << "\n" << text;
    }
}

// Pixels, as displayed: red inside the seal's rectangle over the left third of the signature
// image, no red outside the seal's rectangle, white outside both appearances.
void expectPixels(const Signed& s, const Raster& r) {
    ASSERT_TRUE(s.officer.imageRect && s.seal.rect && s.officer.rect);
    const PdfRect image = *s.officer.imageRect;
    const PdfRect sealRect = *s.seal.rect;
    // The overlap: the left third of the signature image.
    const PdfRect leftThird{image.x + 1, image.y + 1, image.w / 3 - 2, image.h - 2};
    int x0, y0, x1, y1;
    r.pixels(leftThird, &x0, &y0, &x1, &y1);
    int redInOverlap = 0;
    int overlapPixels = 0;
    for (int y = y0; y < y1; ++y) {
        for (int x = x0; x < x1; ++x) {
            ++overlapPixels;
            redInOverlap += r.red(x, y) ? 1 : 0;
        }
    }
    EXPECT_GT(redInOverlap, overlapPixels / 3) << "the seal does not cover the image's left third";
    // The middle third of the image is not under the seal.
    const PdfRect rightPart{image.x + image.w / 3 + 2, image.y, image.w * 2 / 3 - 2, image.h};
    r.pixels(rightPart, &x0, &y0, &x1, &y1);
    int redRight = 0;
    for (int y = y0; y < y1; ++y) {
        for (int x = x0; x < x1; ++x) {
            redRight += r.red(x, y) ? 1 : 0;
        }
    }
    EXPECT_EQ(redRight, 0) << "red beyond the left third of the signature image";
    int redOutside = 0;
    int notWhite = 0;
    for (int y = 0; y < r.height; ++y) {
        for (int x = 0; x < r.width; ++x) {
            if (r.red(x, y) && !r.inside(sealRect, x, y, 1)) {
                ++redOutside;
            }
            if (!r.white(x, y) && !r.inside(sealRect, x, y, 1) &&
                !r.inside(*s.officer.rect, x, y, 1)) {
                ++notWhite;
            }
        }
    }
    EXPECT_EQ(redOutside, 0);
    EXPECT_EQ(notWhite, 0);
}

TEST(VisibleSignature, OfficerSignatureAndAgencySealOnAPlainPage) {
    const std::string in = tempDir("visible-plain") + "/in.pdf";
    writeFile(in, blankPdf());
    const Signed s = signAndSeal(in, {300, 100, 240, 80}, "visible-plain-out");
    ASSERT_TRUE(s.seal.rect.has_value());
    expectSignedAndSealed(s);
    expectPixels(s, render(s.path, 144));
    // The seal is drawn at its real size: 36 mm = 102 pt across.
    EXPECT_NEAR(s.seal.imageRect->w, 36 / 25.4 * 72, 0.5);
    EXPECT_NEAR(s.seal.imageRect->h, 36 / 25.4 * 72, 0.5);
}

TEST(VisibleSignature, PermissionProtectedDocumentIsSignedAndSealedWithItsEncryption) {
    // What portals publish: AES-256, an empty user password, printing and copying restricted.
    const std::string dir = tempDir("visible-protected");
    writeFile(dir + "/plain.pdf", blankPdf());
    ASSERT_EQ(run("qpdf --encrypt '' kyso-owner 256 --print=none --extract=n -- " + dir +
                  "/plain.pdf " + dir + "/in.pdf"),
              0);
    const std::string before = tool("qpdf --show-encryption " + dir + "/in.pdf");
    const Signed s = signAndSeal(dir + "/in.pdf", {300, 100, 240, 80}, "visible-protected-out");
    ASSERT_TRUE(s.seal.rect.has_value());
    EXPECT_TRUE(s.officer.encrypted && s.seal.encrypted);
    // Every check of a plain document: pdfsig, qpdf, embedded fonts, the Vietnamese text (from
    // encrypted strings and streams), and the pixels of the seal over the image.
    expectSignedAndSealed(s);
    expectPixels(s, render(s.path, 144));
    // The encryption is unchanged: same handler, same permissions.
    EXPECT_EQ(tool("qpdf --show-encryption " + shellQuote(s.path)), before);
    // The update's strings and streams are encrypted: no plain text of ours in the bytes.
    const std::string bytes = readFile(s.path);
    const std::string update = bytes.substr(std::filesystem::file_size(dir + "/in.pdf"));
    // Every stream the updates wrote decrypts (qpdf, with the document's key) into valid Flate
    // data: a stream left in clear would "decrypt" into bytes that do not inflate.
    std::istringstream xref(tool("qpdf --show-xref " + shellQuote(s.path)));
    std::string line;
    int streams = 0;
    while (std::getline(xref, line)) {
        std::smatch m;
        if (!std::regex_search(line, m,
                               std::regex("^(\\d+)/(\\d+): uncompressed; offset = (\\d+)")) ||
            std::stoll(m[3]) <
                static_cast<long long>(std::filesystem::file_size(dir + "/in.pdf"))) {
            continue;
        }
        const std::string object = "qpdf --show-object=" + m[1].str() + "," + m[2].str() + " ";
        std::string shown;
        run(object + shellQuote(s.path) + " 2>/dev/null", &shown);
        if (shown.rfind("Object is stream", 0) != 0 ||
            shown.find("/FlateDecode") == std::string::npos) {
            continue;
        }
        ++streams;
        std::string decoded;
        EXPECT_EQ(run(object + "--filtered-stream-data " + shellQuote(s.path) + " 2>&1 >/dev/null",
                      &decoded),
                  0)
            << "stream " << m[1] << " does not decrypt: " << decoded;
        EXPECT_EQ(decoded.find("WARNING"), std::string::npos) << decoded;
    }
    EXPECT_GE(streams, 4) << "the appearances' form, image and font streams";
    // (A pattern long enough that random ciphertext does not hold it by chance.)
    EXPECT_EQ(update.find("(D:20"), std::string::npos) << "a date string is not encrypted";
    EXPECT_NE(update.find("/Encrypt"), std::string::npos) << "the trailer lost /Encrypt";
}

// XMP metadata claiming PDF/A part PART, conformance B.
std::string pdfaXmp(int part) {
    return "<?xpacket begin=\"\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>"
           "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"><rdf:RDF "
           "xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\"><rdf:Description "
           "rdf:about=\"\" xmlns:pdfaid=\"http://www.aiim.org/pdfa/ns/id/\"><pdfaid:part>" +
           std::to_string(part) +
           "</pdfaid:part><pdfaid:conformance>B</pdfaid:conformance></rdf:Description>"
           "</rdf:RDF></x:xmpmeta><?xpacket end=\"w\"?>";
}

// The PDF/A part claimed by the XMP of the document's reachable objects, as qpdf rewrites it
// (only objects still reachable from the trailer are written).
std::string pdfaPartOf(const std::string& path) {
    std::string out;
    run("qpdf --qdf --object-streams=disable " + shellQuote(path) +
            " - | grep -a -o 'pdfaid:part[^0-9]\\{0,3\\}[0-9]' | head -1 | tr -dc 0-9",
        &out);
    return out;
}

TEST(VisibleSignature, PdfA1StaysPdfA1WithHardMasks) {
    // A PDF/A-1b claim (pdfaid:part 1): the seal's transparency must not be a soft mask, which
    // PDF/A-1 forbids, and must still leave the signature image visible around the seal.
    const std::string dir = tempDir("visible-pdfa1");
    const std::string in = dir + "/in.pdf";
    writeFile(in, blankPdf());
    PdfInfo info = readPdfInfo(in);
    PdfUpdate u;
    const int md = info.size;
    u.objects.push_back({md, 0, pdfStream(pdfaXmp(1), "/Type /Metadata /Subtype /XML")});
    u.objects.push_back(
        {info.root, 0, pdfEditedDict(in, info.root, {{"/Metadata", std::to_string(md) + " 0 R"}})});
    appendPdfUpdate(in, u);
    EXPECT_EQ(pdfaPartOf(in), "1");
    const Signed s = signAndSeal(in, {300, 100, 240, 80}, "visible-pdfa1-out");
    ASSERT_TRUE(s.seal.rect.has_value());
    EXPECT_EQ(s.officer.pdfaPart, 1);
    expectSignedAndSealed(s);  // includes: every font embedded and subset
    expectPixels(s, render(s.path, 144));
    EXPECT_EQ(pdfaPartOf(s.path), "1");
    const std::string update = readFile(s.path).substr(std::filesystem::file_size(in));
    EXPECT_EQ(update.find("/SMask"), std::string::npos);
    EXPECT_EQ(update.find("/Group"), std::string::npos);
    EXPECT_NE(update.find("/ImageMask true"), std::string::npos);
}

TEST(VisibleSignature, InvisibleSignatureOnPdfAHasAnEmptyAppearance) {
    const std::string in = corpusDir() + "/pdf/unsigned/dss-pdfa2a-rgb.pdf";
    const std::string out = tempDir("pdfa-invisible") + "/signed.pdf";
    auto r = signer::signPdf(in, out, officer(), {});
    ASSERT_TRUE(r.ok()) << r.error().detail;
    EXPECT_EQ(r->pdfaPart, 2);
    EXPECT_EQ(pdfaPartOf(out), "2");
    const std::string update = readFile(out).substr(std::filesystem::file_size(in));
    EXPECT_NE(update.find("/AP << /N "), std::string::npos) << "a PDF/A widget needs /AP";
    EXPECT_NE(tool("pdfsig " + shellQuote(out)).find("Signature is Valid."), std::string::npos);
    // Not PDF/A: no appearance is added to an invisible signature.
    const std::string plain = tempDir("pdf-invisible") + "/signed.pdf";
    ASSERT_TRUE(
        signer::signPdf(corpusDir() + "/pdf/unsigned/ph-minimal.pdf", plain, officer(), {}).ok());
    EXPECT_EQ(readFile(plain).find("/AP << /N "), std::string::npos);
}

TEST(VisibleSignature, PdfA2KeepsItsClaimAndSoftMasks) {
    const std::string in = corpusDir() + "/pdf/unsigned/dss-pdfa2a-rgb.pdf";
    ASSERT_EQ(pdfaPartOf(in), "2");
    const Signed s = signAndSeal(in, {300, 100, 240, 80}, "visible-pdfa2-out");
    ASSERT_TRUE(s.seal.rect.has_value());
    EXPECT_EQ(s.officer.pdfaPart, 2);
    EXPECT_EQ(pdfaPartOf(s.path), "2");
    // PDF/A-2 allows soft masks: the seal keeps its smooth edge.
    const std::string update = readFile(s.path).substr(std::filesystem::file_size(in));
    EXPECT_NE(update.find("/SMask"), std::string::npos);
    std::string fonts;
    run("pdffonts " + shellQuote(s.path), &fonts);
    std::istringstream lines(fonts);
    std::string line;
    while (std::getline(lines, line)) {
        if (std::regex_search(line, std::regex("^[A-Z]{6}\\+"))) {
            EXPECT_TRUE(std::regex_search(line, std::regex("\\s+yes\\s+yes\\s+yes"))) << line;
        }
    }
}

TEST(VisibleSignature, RotatedPageWithOffsetMediaBox) {
    for (int rotate : {90, 180, 270}) {
        SCOPED_TRACE(rotate);
        const std::string in = tempDir("visible-rot") + "/in.pdf";
        writeFile(in, blankPdf("[100 200 712 992]", rotate));
        // As displayed; on a 90/270 page the page is 792 wide and 612 high.
        const Signed s = signAndSeal(in, {300, 150, 240, 80}, "visible-rot-out");
        ASSERT_TRUE(s.seal.rect.has_value());
        expectSignedAndSealed(s);
        const Raster r = render(s.path, 144);
        EXPECT_EQ(r.width, rotate == 180 ? 612 * 2 : 792 * 2);
        expectPixels(s, r);
    }
}

TEST(VisibleSignature, OutsideThePageIsAnErrorAndWritesNothing) {
    const std::string dir = tempDir("visible-outside");
    writeFile(dir + "/in.pdf", blankPdf());
    for (const PdfRect& bad :
         {PdfRect{500, 100, 200, 80}, PdfRect{-10, 100, 200, 80}, PdfRect{100, 800, 200, 80}}) {
        signer::PadesOptions o;
        o.appearance = officerAppearance(bad);
        auto r = signer::signPdf(dir + "/in.pdf", dir + "/out.pdf", officer(), o);
        ASSERT_FALSE(r.ok());
        EXPECT_EQ(r.error().code, "appearance.outside_page");
        EXPECT_FALSE(fs::exists(dir + "/out.pdf"));
    }
    // A seal pushed off the page by its anchor is refused too, never dropped silently.
    signer::PadesOptions o;
    o.appearance = sealAppearance(PdfRect{0, 100, 60, 40});
    auto r = signer::signPdf(dir + "/in.pdf", dir + "/out.pdf", agencySeal(), o);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "appearance.outside_page");
    EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
}

TEST(VisibleSignature, TextThatDoesNotFitIsAnError) {
    const std::string dir = tempDir("visible-small");
    writeFile(dir + "/in.pdf", blankPdf());
    signer::PadesOptions o;
    o.appearance = officerAppearance({100, 100, 40, 10});
    auto r = signer::signPdf(dir + "/in.pdf", dir + "/out.pdf", officer(), o);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "appearance.too_small");
}

TEST(VisibleSignature, ExistingEmptyFieldIsFilledWithTheAppearance) {
    const std::string dir = tempDir("visible-field");
    writeFile(dir + "/in.pdf",
              makePdf({"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [5 0 R] >> >>",
                       "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                       "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
                       "/Resources << >> /Annots [5 0 R] >>",
                       pdfStream(""),
                       "<< /Type /Annot /Subtype /Widget /FT /Sig /T (ChuKy) /F 4 "
                       "/Rect [320 80 560 160] /P 3 0 R >>"}));
    signer::PadesOptions o;
    o.fieldName = "ChuKy";
    Appearance a = officerAppearance({0, 0, 1, 1});
    a.rect.reset();
    o.appearance = a;
    auto r = signer::signPdf(dir + "/in.pdf", dir + "/out.pdf", officer(), o);
    ASSERT_TRUE(r.ok()) << r.error().code << ": " << r.error().detail;
    EXPECT_EQ(r->fieldName, "ChuKy");
    ASSERT_TRUE(r->rect.has_value());
    EXPECT_NEAR(r->rect->x, 320, 0.01);
    EXPECT_NEAR(r->rect->w, 240, 0.01);
    const std::string sig = tool("pdfsig " + shellQuote(dir + "/out.pdf"));
    EXPECT_NE(sig.find("Signature is Valid."), std::string::npos) << sig;
    const std::string text = tool("pdftotext " + shellQuote(dir + "/out.pdf") + " -");
    EXPECT_NE(text.find("Nguyễn Văn An"), std::string::npos) << text;
    // Something is drawn inside the field and nothing outside it.
    const Raster ras = render(dir + "/out.pdf");
    int inkInside = 0;
    int inkOutside = 0;
    for (int y = 0; y < ras.height; ++y) {
        for (int x = 0; x < ras.width; ++x) {
            if (!ras.white(x, y)) {
                (ras.inside(*r->rect, x, y, 1) ? inkInside : inkOutside)++;
            }
        }
    }
    EXPECT_GT(inkInside, 200);
    EXPECT_EQ(inkOutside, 0);
}

TEST(VisibleSignature, SealAloneOverlapsTheLastVisibleSignature) {
    const std::string dir = tempDir("visible-seal-alone");
    writeFile(dir + "/in.pdf", blankPdf());
    signer::PadesOptions o;
    o.appearance = officerAppearance({300, 100, 240, 80});
    auto first = signer::signPdf(dir + "/in.pdf", dir + "/signed.pdf", officer(), o);
    ASSERT_TRUE(first.ok());
    // The clerk seals later, knowing nothing of where the officer signed.
    signer::PadesOptions so;
    so.appearance = sealAppearance(std::nullopt);
    auto sealed = signer::signPdf(dir + "/signed.pdf", dir + "/sealed.pdf", agencySeal(), so);
    ASSERT_TRUE(sealed.ok()) << sealed.error().code << ": " << sealed.error().detail;
    ASSERT_TRUE(sealed->imageRect.has_value());
    // Its image's right edge is a third into the officer's whole appearance.
    EXPECT_NEAR(sealed->imageRect->x + sealed->imageRect->w, 300 + 240 / 3.0, 0.01);
    EXPECT_NEAR(sealed->imageRect->y + sealed->imageRect->h / 2, 100 + 40, 0.01);
    // With no visible signature to overlap, the seal needs a rectangle.
    auto none = signer::signPdf(dir + "/in.pdf", dir + "/none.pdf", agencySeal(), so);
    ASSERT_FALSE(none.ok());
    EXPECT_EQ(none.error().code, "appearance.no_rect");
}

TEST(VisibleSignature, MissingGlyphIsAnErrorNotATofu) {
    const std::string dir = tempDir("visible-glyph");
    writeFile(dir + "/in.pdf", blankPdf());
    signer::PadesOptions o;
    Appearance a = officerAppearance({300, 100, 240, 80});
    a.lines.push_back("\xe4\xb8\xad");  // U+4E2D, not in Liberation Serif
    o.appearance = a;
    auto r = signer::signPdf(dir + "/in.pdf", dir + "/out.pdf", officer(), o);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "appearance.glyph_missing");
    EXPECT_NE(r.error().detail.find("U+4E2D"), std::string::npos) << r.error().detail;
    EXPECT_FALSE(fs::exists(dir + "/out.pdf"));
}

}  // namespace
}  // namespace kyso::test
