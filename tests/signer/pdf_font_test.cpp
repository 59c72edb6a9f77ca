// Fonts for visible signatures (signer/src/pdf_font.h): Vietnamese text shaped and embedded as a
// TrueType subset in a PDF written here by hand, then checked by tools we did not write: qpdf
// (structure), pdffonts (embedded subset CID TrueType), pdftotext (the exact characters and where
// they are), pdftoppm (the outlines are really drawn) and fc-scan (the FontFile2 is a font).
#include "pdf_font.h"

#include <gtest/gtest.h>
#include <hb-subset.h>
#include <hb.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

#include "test_env.h"

namespace kyso::test {
namespace {

using signer::FontSubset;
using signer::PdfObject;
using signer::ShapedText;

const std::string kSerif = "/usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf";
const std::string kSans = "/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf";
const std::string kDejaVu = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

std::string workDir() {
    static std::string d = tempDir("pdf-font");
    return d;
}

std::shared_ptr<const signer::FontFace> face(const std::string& path) {
    auto r = signer::loadFont(path);
    if (!r) {
        ADD_FAILURE() << path << ": " << r.error().code << " " << r.error().detail;
        return nullptr;
    }
    return r.value();
}

// One line of text on the test page: baseline origin (x, y) in points.
struct Line {
    std::string text;
    double x;
    double y;
    double size;
};

// A one-page PDF written by hand: catalog, pages, page, content stream, the font objects from
// embed(), and a classic cross-reference table.
struct TestPdf {
    std::string path;
    std::vector<PdfObject> fontObjects;
    std::vector<double> widths;  // of each line, points
    double ascent = 0;           // for the lines' size, points
    double descent = 0;
    double pageWidth = 0;
    double pageHeight = 0;
};

void buildPdf(const std::string& fontPath, const std::vector<Line>& lines, double pageWidth,
              double pageHeight, const std::string& name, TestPdf* pdf) {
    FontSubset font(face(fontPath));
    std::vector<ShapedText> shaped;
    for (const Line& l : lines) {
        auto r = font.shape(l.text);
        ASSERT_TRUE(r.ok()) << l.text << ": " << r.error().detail;
        pdf->widths.push_back(font.width(*r, l.size));
        shaped.push_back(std::move(r.value()));
    }
    int nextNum = 5;
    auto type0 = font.embed([&nextNum] { return nextNum++; }, &pdf->fontObjects);
    ASSERT_TRUE(type0.ok()) << type0.error().detail;
    pdf->ascent = font.ascent(lines.front().size);
    pdf->descent = font.descent(lines.front().size);
    pdf->pageWidth = pageWidth;
    pdf->pageHeight = pageHeight;

    std::string content;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        content += font.show(shaped[i], "F1", lines[i].size, lines[i].x, lines[i].y) + "\n";
    }
    std::map<int, std::string> objects;
    objects[1] = "<< /Type /Catalog /Pages 2 0 R >>";
    objects[2] = "<< /Type /Pages /Kids [3 0 R] /Count 1 >>";
    objects[3] = "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 " + signer::pdfNumber(pageWidth) +
                 " " + signer::pdfNumber(pageHeight) + "] /Resources << /Font << /F1 " +
                 std::to_string(*type0) + " 0 R >> >> /Contents 4 0 R >>";
    objects[4] = signer::pdfStream("", content);
    for (const PdfObject& o : pdf->fontObjects) {
        ASSERT_EQ(objects.count(o.num), 0u) << o.num;
        objects[o.num] = o.body;
    }
    ASSERT_EQ(objects.rbegin()->first, static_cast<int>(objects.size()));

    std::string out = "%PDF-1.7\n%\xE2\xE3\xCF\xD3\n";
    std::vector<std::size_t> offsets;
    for (const auto& [num, body] : objects) {
        offsets.push_back(out.size());
        out += std::to_string(num) + " 0 obj\n" + body + "\nendobj\n";
    }
    const std::size_t xref = out.size();
    out += "xref\n0 " + std::to_string(objects.size() + 1) + "\n0000000000 65535 f \n";
    for (std::size_t off : offsets) {
        char entry[32];
        std::snprintf(entry, sizeof entry, "%010zu 00000 n \n", off);
        out += entry;
    }
    out += "trailer\n<< /Size " + std::to_string(objects.size() + 1) +
           " /Root 1 0 R >>\nstartxref\n" + std::to_string(xref) + "\n%%EOF\n";
    pdf->path = workDir() + "/" + name + ".pdf";
    writeFile(pdf->path, out);
}

// A rendered page: 8-bit gray, row 0 at the top.
struct Gray {
    int width = 0;
    int height = 0;
    std::string pixels;

    // Pixels darker than mid-gray in the rectangle [x0, x1) x [y0, y1) of PDF points (origin at
    // the bottom left) on a page rendered at 72 dpi.
    int darkIn(double x0, double y0, double x1, double y1) const {
        int n = 0;
        const int c0 = std::max(0, static_cast<int>(x0));
        const int c1 = std::min(width, static_cast<int>(x1 + 0.999));
        const int r0 = std::max(0, static_cast<int>(height - y1));
        const int r1 = std::min(height, static_cast<int>(height - y0 + 0.999));
        for (int r = r0; r < r1; ++r) {
            for (int c = c0; c < c1; ++c) {
                n += static_cast<unsigned char>(pixels[static_cast<std::size_t>(r * width + c)]) <
                     128;
            }
        }
        return n;
    }
};

void render(const std::string& pdfPath, Gray* out) {
    const std::string base = pdfPath + "-page";
    std::string log;
    ASSERT_EQ(
        run("pdftoppm -r 72 -gray -singlefile " + shellQuote(pdfPath) + " " + shellQuote(base),
            &log),
        0)
        << log;
    const std::string pgm = readFile(base + ".pgm");
    std::istringstream in(pgm);
    std::string magic;
    int maxVal = 0;
    in >> magic >> out->width >> out->height >> maxVal;
    ASSERT_EQ(magic, "P5");
    ASSERT_EQ(maxVal, 255);
    in.get();
    const auto start = static_cast<std::size_t>(in.tellg());
    out->pixels = pgm.substr(start);
    ASSERT_EQ(out->pixels.size(), static_cast<std::size_t>(out->width * out->height));
}

// pdftotext's lines, without the page's form feed and surrounding blanks; empty lines dropped.
std::vector<std::string> extractLines(const std::string& pdfPath) {
    std::string text;
    EXPECT_EQ(run("pdftotext -enc UTF-8 " + shellQuote(pdfPath) + " -", &text), 0) << text;
    std::vector<std::string> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        line.erase(std::remove(line.begin(), line.end(), '\f'), line.end());
        const auto b = line.find_first_not_of(' ');
        if (b == std::string::npos) {
            continue;
        }
        out.push_back(line.substr(b, line.find_last_not_of(' ') - b + 1));
    }
    return out;
}

// pdftotext -bbox: each word with its box (PDF points, y from the top of the page).
struct Word {
    std::string text;
    double xMin, yMin, xMax, yMax;
};

std::vector<Word> extractWords(const std::string& pdfPath) {
    std::string html;
    EXPECT_EQ(run("pdftotext -enc UTF-8 -bbox " + shellQuote(pdfPath) + " -", &html), 0) << html;
    std::vector<Word> words;
    const std::regex re(
        "<word xMin=\"([0-9.]+)\" yMin=\"([0-9.]+)\" xMax=\"([0-9.]+)\" yMax=\"([0-9.]+)\">"
        "([^<]*)</word>");
    for (std::sregex_iterator it(html.begin(), html.end(), re), end; it != end; ++it) {
        words.push_back({(*it)[5].str(), std::stod((*it)[1].str()), std::stod((*it)[2].str()),
                         std::stod((*it)[3].str()), std::stod((*it)[4].str())});
    }
    return words;
}

const PdfObject* objectWith(const std::vector<PdfObject>& objects, const std::string& part) {
    for (const PdfObject& o : objects) {
        if (o.body.find(part) != std::string::npos) {
            return &o;
        }
    }
    return nullptr;
}

// ---------------------------------------------------------------------------------------------
// The whole path, per font: shaped, subset, embedded, shown; then read back by other tools.

struct FontCase {
    std::string path;
    std::string psName;  // what the name table says
};

void PrintTo(const FontCase& c, std::ostream* os) {
    *os << c.psName;
}

class FontPdfTest : public ::testing::TestWithParam<FontCase> {};

const std::vector<Line>& vietnameseLines() {
    static const std::vector<Line> lines = {
        {"Nguyễn Văn An", 30, 270, 14},
        {"Ủy ban nhân dân tỉnh", 30, 240, 14},
        {"Giám đốc Sở", 30, 210, 14},
        {"Thời gian ký: 10:00:00 25/11/2026", 30, 180, 14},
        // "Nguyễn Thị Ánh" in NFD: e + U+0302 + U+0303, i + U+0323, A + U+0301.
        {"Nguye\u0302\u0303n Thi\u0323 A\u0301nh", 30, 150, 14},
        // Kerning pairs (AV, AT, To, Ty), so the line needs TJ adjustments; DejaVu Sans has an
        // "ffi" ligature, one glyph for three characters.
        {"AVATAR Tờ Tyếu office", 30, 120, 14},
    };
    return lines;
}

const std::vector<std::string>& expectedLines() {
    static const std::vector<std::string> lines = {
        "Nguyễn Văn An",
        "Ủy ban nhân dân tỉnh",
        "Giám đốc Sở",
        "Thời gian ký: 10:00:00 25/11/2026",
        // NFD in, NFC out: the font has the precomposed glyphs, HarfBuzz composes, and the
        // ToUnicode CMap gives the character Vietnamese text is normally stored as.
        "Nguyễn Thị Ánh",
        "AVATAR Tờ Tyếu office",
    };
    return lines;
}

TEST_P(FontPdfTest, VietnameseLinesAreEmbeddedExtractedAndDrawn) {
    const FontCase& fc = GetParam();
    const std::string name = fc.psName;
    TestPdf pdf;
    ASSERT_NO_FATAL_FAILURE(buildPdf(fc.path, vietnameseLines(), 420, 300, name, &pdf));

    // Structure: qpdf finds nothing wrong, not even a warning.
    std::string log;
    EXPECT_EQ(run("qpdf --check " + shellQuote(pdf.path), &log), 0) << log;
    EXPECT_NE(log.find("No syntax or stream encoding errors found"), std::string::npos) << log;
    EXPECT_EQ(log.find("WARNING"), std::string::npos) << log;

    // pdffonts: "ABCDEF+Name  CID TrueType  Identity-H  yes yes yes  5  0".
    ASSERT_EQ(run("pdffonts " + shellQuote(pdf.path), &log), 0) << log;
    const std::regex fontLine("(^|\n)[A-Z]{6}\\+" + fc.psName +
                              " +CID TrueType +Identity-H +yes +yes +yes +5 +0\n");
    EXPECT_TRUE(std::regex_search(log, fontLine)) << log;
    std::cout << "pdffonts (" << name << "):\n" << log;

    // Text: every line exactly, in order.
    EXPECT_EQ(extractLines(pdf.path), expectedLines());

    // Positions: poppler's word boxes start at each line's x and end at x + width(), so the TJ
    // adjustments move the pen where HarfBuzz put the glyphs.
    const auto words = extractWords(pdf.path);
    for (std::size_t i = 0; i < vietnameseLines().size(); ++i) {
        const Line& l = vietnameseLines()[i];
        double xMin = 1e9;
        double xMax = -1e9;
        for (const Word& w : words) {
            // A word box is the font's ascent..descent around the baseline, y from the top.
            const double baseline = pdf.pageHeight - l.y;
            if (w.yMin < baseline && w.yMax > baseline) {
                xMin = std::min(xMin, w.xMin);
                xMax = std::max(xMax, w.xMax);
            }
        }
        EXPECT_NEAR(xMin, l.x, 0.05) << expectedLines()[i];
        EXPECT_NEAR(xMax, l.x + pdf.widths[i], 0.05) << expectedLines()[i];
    }

    // Rendering: dark pixels in each line's box, none in the empty band below the last line.
    Gray page;
    ASSERT_NO_FATAL_FAILURE(render(pdf.path, &page));
    ASSERT_EQ(page.width, 420);
    ASSERT_EQ(page.height, 300);
    for (std::size_t i = 0; i < vietnameseLines().size(); ++i) {
        const Line& l = vietnameseLines()[i];
        const int dark = page.darkIn(l.x, l.y + pdf.descent, l.x + pdf.widths[i], l.y + pdf.ascent);
        EXPECT_GT(dark, 40) << expectedLines()[i];
    }
    EXPECT_EQ(page.darkIn(0, 0, 420, 100), 0);
    EXPECT_EQ(page.darkIn(320, 0, 420, 300), 0);

    // The FontFile2 is a TrueType font by fontconfig's reading, and a small subset of the file.
    const PdfObject* file = objectWith(pdf.fontObjects, "/Length1 ");
    ASSERT_NE(file, nullptr);
    const std::size_t at = file->body.find("/Length1 ") + 9;
    const long length1 = std::stol(file->body.substr(at));
    const std::string ttf = pdf.path + ".ttf";
    ASSERT_EQ(run("qpdf --show-object=" + std::to_string(file->num) + " --filtered-stream-data " +
                      shellQuote(pdf.path) + " > " + shellQuote(ttf),
                  &log),
              0)
        << log;
    EXPECT_EQ(static_cast<long>(readFile(ttf).size()), length1);
    ASSERT_EQ(run("fc-scan --format '%{fontformat}|%{postscriptname}' " + shellQuote(ttf), &log), 0)
        << log;
    EXPECT_EQ(log, "TrueType|" + fc.psName);
    const long full = static_cast<long>(readFile(fc.path).size());
    EXPECT_LT(length1 * 10, full) << "subset " << length1 << " bytes of " << full;
    std::cout << name << ": subset FontFile2 " << length1 << " bytes, full font " << full
              << " bytes\n";
}

INSTANTIATE_TEST_SUITE_P(Fonts, FontPdfTest,
                         ::testing::Values(FontCase{kSerif, "LiberationSerif"},
                                           FontCase{kSans, "LiberationSans"},
                                           FontCase{kDejaVu, "DejaVuSans"}),
                         [](const ::testing::TestParamInfo<FontCase>& i) {
                             return i.param.psName;
                         });

// The marks are drawn, not only extracted: "ễ" has ink high above the x-height where "e" has
// none, and a mark the font has no precomposed glyph for ("x" + U+0303, placed by HarfBuzz) is
// drawn over its base, not after it.
TEST(PdfFontTest, DiacriticsAreDrawnAboveTheirBase) {
    const double size = 100;
    TestPdf pdf;
    ASSERT_NO_FATAL_FAILURE(buildPdf(kSerif,
                                     {{"e", 20, 40, size},
                                      {"ễ", 120, 40, size},
                                      {"e\u0302\u0303", 220, 40, size},
                                      {"x\u0303", 320, 40, size}},
                                     440, 200, "diacritics", &pdf));
    std::string log;
    EXPECT_EQ(run("qpdf --check " + shellQuote(pdf.path), &log), 0) << log;
    Gray page;
    ASSERT_NO_FATAL_FAILURE(render(pdf.path, &page));
    // Liberation Serif: x-height 0.46 em; the band from 0.6 em up is empty for "e" and "x".
    const double band0 = 40 + 0.6 * size;
    const double band1 = 40 + 1.3 * size;
    EXPECT_EQ(page.darkIn(20, band0, 20 + pdf.widths[0], band1), 0);
    EXPECT_GT(page.darkIn(120, band0, 120 + pdf.widths[1], band1), 100);
    EXPECT_GT(page.darkIn(220, band0, 220 + pdf.widths[2], band1), 100);
    // The tilde over the x: ink above the x, within its advance, and nothing to its right.
    EXPECT_GT(page.darkIn(320, band0, 320 + pdf.widths[3], band1), 100);
    EXPECT_EQ(page.darkIn(320 + pdf.widths[3] + 1, 0, 440, 200), 0);
    // Extraction: "ễ" twice (NFC), and the x with its combining tilde.
    EXPECT_EQ(extractLines(pdf.path), (std::vector<std::string>{"e ễ ễ x\u0303"}));
}

// ---------------------------------------------------------------------------------------------
// Unit behaviour.

// A character the font draws with another character's glyph plus a mark ("≮" is "<" and U+0338
// in Liberation Serif): the ToUnicode CMap gives that glyph "<", so /ActualText gives "≮".
TEST(PdfFontTest, TextWithoutItsOwnGlyphIsExtractedThroughActualText) {
    // Words of more than one letter: pdftotext joins one-letter words evenly spaced.
    TestPdf pdf;
    ASSERT_NO_FATAL_FAILURE(buildPdf(kSerif, {{"Một < Hai", 20, 60, 14}, {"Hai ≮ Một", 20, 30, 14}},
                                     200, 100, "actual", &pdf));
    std::string log;
    EXPECT_EQ(run("qpdf --check " + shellQuote(pdf.path), &log), 0) << log;
    EXPECT_EQ(log.find("WARNING"), std::string::npos) << log;
    EXPECT_EQ(extractLines(pdf.path), (std::vector<std::string>{"Một < Hai", "Hai ≮ Một"}));
    // The test's content stream is not compressed.
    const std::string bytes = readFile(pdf.path);
    EXPECT_EQ(bytes.find("/ActualText"), bytes.rfind("/ActualText"));
    EXPECT_NE(bytes.find("/Span << /ActualText <FEFF226E> >> BDC"), std::string::npos);
}

TEST(PdfFontTest, LoadFontIsCachedPerPath) {
    auto a = signer::loadFont(kSerif);
    auto b = signer::loadFont(kSerif);
    auto c = signer::loadFont(kSans);
    ASSERT_TRUE(a.ok() && b.ok() && c.ok());
    EXPECT_EQ(a->get(), b->get());
    EXPECT_NE(a->get(), c->get());
}

TEST(PdfFontTest, LoadFontMissingFileIsUnreadable) {
    auto r = signer::loadFont(workDir() + "/no-such-dir/Missing.ttf");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "appearance.font_unreadable");
    EXPECT_NE(r.error().detail.find("Missing.ttf"), std::string::npos) << r.error().detail;
    EXPECT_EQ(r.error().detail.find("no-such-dir"), std::string::npos) << r.error().detail;
    // A directory is not a readable font file either.
    auto d = signer::loadFont(workDir());
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.error().code, "appearance.font_unreadable");
}

TEST(PdfFontTest, LoadFontRejectsFilesThatAreNotFonts) {
    const std::string text = workDir() + "/notes.ttf";
    writeFile(text, "Nguyễn Văn An, this is not a font\n");
    auto r = signer::loadFont(text);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "appearance.font_unsupported");
    EXPECT_NE(r.error().detail.find("notes.ttf"), std::string::npos) << r.error().detail;

    const std::string empty = workDir() + "/empty.ttf";
    writeFile(empty, "");
    auto e = signer::loadFont(empty);
    ASSERT_FALSE(e.ok());
    EXPECT_TRUE(e.error().code == "appearance.font_unsupported" ||
                e.error().code == "appearance.font_unreadable")
        << e.error().code;
}

// No CFF font is installed on the build machine; an OpenType font without glyf outlines is made
// here by having HarfBuzz drop the glyf table from Liberation Serif.
TEST(PdfFontTest, LoadFontRejectsFontsWithoutGlyfOutlines) {
    hb_blob_t* blob = ::hb_blob_create_from_file_or_fail(kSerif.c_str());
    ASSERT_NE(blob, nullptr);
    hb_face_t* source = ::hb_face_create(blob, 0);
    hb_subset_input_t* input = ::hb_subset_input_create_or_fail();
    ::hb_set_add(::hb_subset_input_unicode_set(input), 'A');
    ::hb_set_add(::hb_subset_input_set(input, HB_SUBSET_SETS_DROP_TABLE_TAG),
                 HB_TAG('g', 'l', 'y', 'f'));
    hb_face_t* subset = ::hb_subset_or_fail(source, input);
    ASSERT_NE(subset, nullptr);
    hb_blob_t* out = ::hb_face_reference_blob(subset);
    unsigned len = 0;
    const char* data = ::hb_blob_get_data(out, &len);
    const std::string path = workDir() + "/NoGlyf.ttf";
    writeFile(path, std::string(data, len));
    ::hb_blob_destroy(out);
    ::hb_face_destroy(subset);
    ::hb_subset_input_destroy(input);
    ::hb_face_destroy(source);
    ::hb_blob_destroy(blob);

    auto r = signer::loadFont(path);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "appearance.font_unsupported");
    EXPECT_NE(r.error().detail.find("NoGlyf.ttf"), std::string::npos) << r.error().detail;
}

TEST(PdfFontTest, GlyphMissingNamesTheCharacter) {
    FontSubset font(face(kSerif));
    auto emoji = font.shape("Chữ ký 😀");
    ASSERT_FALSE(emoji.ok());
    EXPECT_EQ(emoji.error().code, "appearance.glyph_missing");
    EXPECT_NE(emoji.error().detail.find("U+1F600 \"😀\""), std::string::npos)
        << emoji.error().detail;

    auto cjk = font.shape("Hà Nội 中");
    ASSERT_FALSE(cjk.ok());
    EXPECT_EQ(cjk.error().code, "appearance.glyph_missing");
    EXPECT_NE(cjk.error().detail.find("U+4E2D \"中\""), std::string::npos) << cjk.error().detail;

    // DejaVu Sans has no CJK either; the first missing character is named.
    FontSubset dejavu(face(kDejaVu));
    auto two = dejavu.shape("ab 中文");
    ASSERT_FALSE(two.ok());
    EXPECT_NE(two.error().detail.find("U+4E2D"), std::string::npos) << two.error().detail;
}

TEST(PdfFontTest, InvalidUtf8IsTextInvalid) {
    FontSubset font(face(kSerif));
    for (const std::string& bad : {
             std::string("Nguy\xE1\xBB", 6),   // truncated "ễ"
             std::string("\xC3\x28"),          // bad continuation byte
             std::string("\xC0\xAF"),          // overlong "/"
             std::string("\xED\xA0\x80"),      // a UTF-16 surrogate
             std::string("\xF4\x90\x80\x80"),  // above U+10FFFF
             std::string("ab\xFF"),
         }) {
        auto r = font.shape(bad);
        ASSERT_FALSE(r.ok()) << bad;
        EXPECT_EQ(r.error().code, "appearance.text_invalid");
    }
    EXPECT_TRUE(font.shape("").ok());
}

TEST(PdfFontTest, SpaceIsTheFontsSpaceGlyph) {
    auto f = face(kSerif);
    FontSubset font(f);
    auto r = font.shape("Văn An");
    ASSERT_TRUE(r.ok()) << r.error().detail;
    ASSERT_EQ(r->glyphs.size(), 6u);
    EXPECT_EQ(r->glyphs[3].text, " ");
    EXPECT_NE(r->glyphs[3].gid, 0u);
    EXPECT_GT(r->glyphs[3].advance, 0);
    EXPECT_EQ(r->glyphs[1].text, "ă");
}

// The caller splits lines; a control character left in the text shows nothing rather than
// failing as a missing glyph.
TEST(PdfFontTest, ControlCharactersAreNotMissingGlyphs) {
    FontSubset font(face(kSerif));
    auto r = font.shape("Văn\tAn\n");
    ASSERT_TRUE(r.ok()) << r.error().detail;
    std::string text;
    for (const auto& g : r->glyphs) {
        EXPECT_NE(g.gid, 0u);
        text += g.text;
    }
    EXPECT_EQ(text, "VănAn");
}

// Liberation Serif has the metrics of Times New Roman: "A" is 722/1000 em wide (Adobe's AFM),
// ascent 0.891 em and descent -0.216 em (its hhea).
TEST(PdfFontTest, MetricsMatchTheFont) {
    FontSubset font(face(kSerif));
    auto a = font.shape("A");
    ASSERT_TRUE(a.ok());
    EXPECT_NEAR(font.width(*a, 10), 7.22, 0.01);
    EXPECT_NEAR(font.ascent(10), 8.91, 0.01);
    EXPECT_NEAR(font.descent(10), -2.16, 0.01);
    auto line = font.shape("Nguyễn Văn An");
    ASSERT_TRUE(line.ok());
    double sum = 0;
    for (const auto& g : line->glyphs) {
        sum += g.advance;
    }
    EXPECT_EQ(sum, line->advance);
    EXPECT_NEAR(font.width(*line, 12), line->advance * 12.0 / 2048, 1e-9);
}

std::vector<PdfObject> embedLines(const std::string& path, const std::vector<std::string>& lines,
                                  int first) {
    FontSubset font(face(path));
    for (const auto& l : lines) {
        EXPECT_TRUE(font.shape(l).ok()) << l;
    }
    std::vector<PdfObject> out;
    auto r = font.embed([&first] { return first++; }, &out);
    EXPECT_TRUE(r.ok()) << r.error().detail;
    return out;
}

TEST(PdfFontTest, EmbedIsByteIdenticalForTheSameText) {
    const std::vector<std::string> lines = {"Nguyễn Văn An", "Giám đốc Sở"};
    const auto a = embedLines(kSerif, lines, 10);
    const auto b = embedLines(kSerif, lines, 10);
    ASSERT_EQ(a.size(), 5u);
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        EXPECT_EQ(a[i].num, b[i].num);
        EXPECT_EQ(a[i].body, b[i].body) << a[i].num;
    }
    // Other glyphs, another subset name.
    const auto c = embedLines(kSerif, {"Ủy ban nhân dân tỉnh"}, 10);
    const std::regex tag("/BaseFont /([A-Z]{6})\\+LiberationSerif ");
    std::smatch ma;
    std::smatch mc;
    ASSERT_TRUE(std::regex_search(a[0].body, ma, tag)) << a[0].body;
    ASSERT_TRUE(std::regex_search(c[0].body, mc, tag)) << c[0].body;
    EXPECT_NE(ma[1].str(), mc[1].str());
}

TEST(PdfFontTest, EmbedOnlyOnceAndShapeAfterwardsOnlyWithEmbeddedGlyphs) {
    FontSubset font(face(kSerif));
    ASSERT_TRUE(font.shape("Văn An").ok());
    std::vector<PdfObject> out;
    int n = 1;
    ASSERT_TRUE(font.embed([&n] { return n++; }, &out).ok());
    auto again = font.embed([&n] { return n++; }, &out);
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().code, "appearance.font_subset");
    EXPECT_EQ(out.size(), 5u);
    EXPECT_TRUE(font.shape("An Văn").ok());
    auto other = font.shape("Zz");
    ASSERT_FALSE(other.ok());
    EXPECT_EQ(other.error().code, "appearance.font_subset");
}

// The dictionaries say what the brief of a Type0 / CIDFontType2 font requires, with widths in
// 1/1000 em (the A of Liberation Serif: 1479 of 2048 units = 722.168).
TEST(PdfFontTest, FontDictionaries) {
    const auto objs = embedLines(kSerif, {"A"}, 7);
    ASSERT_EQ(objs.size(), 5u);
    EXPECT_NE(objs[0].body.find("/Subtype /Type0"), std::string::npos);
    EXPECT_NE(objs[0].body.find("/Encoding /Identity-H /DescendantFonts [8 0 R] /ToUnicode 11 0 R"),
              std::string::npos)
        << objs[0].body;
    EXPECT_NE(objs[1].body.find("/Subtype /CIDFontType2"), std::string::npos);
    EXPECT_NE(objs[1].body.find("/CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) "
                                "/Supplement 0 >>"),
              std::string::npos);
    EXPECT_NE(objs[1].body.find("/CIDToGIDMap /Identity"), std::string::npos);
    // Glyph 0 (.notdef) and A: the subset's glyph 1.
    EXPECT_NE(objs[1].body.find("/W [1 [722.168]]"), std::string::npos) << objs[1].body;
    EXPECT_NE(objs[2].body.find("/Type /FontDescriptor"), std::string::npos);
    EXPECT_NE(objs[2].body.find("/FontFile2 10 0 R"), std::string::npos) << objs[2].body;
    EXPECT_NE(objs[2].body.find("/Ascent 891 /Descent -216"), std::string::npos) << objs[2].body;
    EXPECT_NE(objs[3].body.find("/Filter /FlateDecode /Length1 "), std::string::npos);
}

TEST(PdfFontTest, ShowWritesGlyphIdsAndKerning) {
    FontSubset font(face(kSerif));
    auto plain = font.shape("An");
    auto kerned = font.shape("AV");
    ASSERT_TRUE(plain.ok() && kerned.ok());
    std::vector<PdfObject> out;
    int n = 1;
    ASSERT_TRUE(font.embed([&n] { return n++; }, &out).ok());
    // Subset glyph ids in old-id order: .notdef 0, A 1, V 2, n 3.
    EXPECT_EQ(font.show(*plain, "F0", 12, 10, 20), "BT\n/F0 12 Tf\n10 20 Td\n<00010003> Tj\nET");
    const std::string k = font.show(*kerned, "F0", 12, 10.5, 20.25);
    EXPECT_TRUE(std::regex_match(k, std::regex("BT\n/F0 12 Tf\n10.5 20.25 Td\n\\[<0001> "
                                               "[0-9.]+ <0002>\\] TJ\nET")))
        << k;
}

TEST(PdfFontTest, ThreadsShareOneFace) {
    const std::vector<std::string> lines = {"Nguyễn Văn An", "Thời gian ký: 10:00:00 25/11/2026"};
    const auto expected = embedLines(kDejaVu, lines, 1);
    std::vector<std::vector<PdfObject>> results(8);
    std::vector<std::thread> threads;
    for (auto& r : results) {
        threads.emplace_back([&r, &lines] {
            auto f = signer::loadFont(kDejaVu);
            if (!f) {
                return;
            }
            for (int rep = 0; rep < 5; ++rep) {
                FontSubset font(*f);
                for (const auto& l : lines) {
                    if (!font.shape(l).ok()) {
                        return;
                    }
                }
                std::vector<PdfObject> out;
                int n = 1;
                if (!font.embed([&n] { return n++; }, &out).ok()) {
                    return;
                }
                r = std::move(out);
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    for (const auto& r : results) {
        ASSERT_EQ(r.size(), expected.size());
        for (std::size_t i = 0; i < r.size(); ++i) {
            EXPECT_EQ(r[i].body, expected[i].body);
        }
    }
}

}  // namespace
}  // namespace kyso::test
