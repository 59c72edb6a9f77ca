// PNG decoding (readPng/decodePng), encoding (writePng) and the PDF image objects made from a
// decoded PNG (appendImageObjects).
//
// The PNG inputs are written by netpbm (pnmtopng, pamtopng) from samples the test chooses, so
// the decoder is checked against an encoder we did not write; each test first asserts that the
// file has the colour type, bit depth, interlacing and chunks it is meant to exercise. Only the
// malformed files (a huge IHDR, a damaged zlib stream) are put together here, with zlib's CRC.
// writePng's output is read back by netpbm's pngtopam, and the image objects are drawn by
// poppler's pdftoppm.
#include "kyso/signer/png_image.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "pdf_update.h"
#include "png_pdf.h"
#include "test_env.h"

namespace kyso::test {
namespace {

using signer::decodePng;
using signer::PngImage;
using signer::readPng;
using signer::writePng;

const std::string kSignature("\x89PNG\r\n\x1a\n", 8);

// Deterministic samples with many distinct values.
std::string samples(std::size_t n, unsigned seed) {
    std::string s(n, '\0');
    unsigned x = seed;
    for (auto& c : s) {
        x = x * 1103515245u + 12345u;
        c = static_cast<char>((x >> 16) & 0xff);
    }
    return s;
}

std::string be32(std::uint32_t v) {
    return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
            static_cast<char>(v)};
}

std::uint32_t readBe32(const std::string& s, std::size_t at) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(s.at(at))) << 24 |
           static_cast<std::uint32_t>(static_cast<unsigned char>(s.at(at + 1))) << 16 |
           static_cast<std::uint32_t>(static_cast<unsigned char>(s.at(at + 2))) << 8 |
           static_cast<std::uint32_t>(static_cast<unsigned char>(s.at(at + 3)));
}

// What a PNG file says about itself, read from its bytes.
struct Header {
    std::uint32_t width = 0;
    std::uint32_t height = 0;
    int bitDepth = 0;
    int colorType = 0;  // 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA
    int interlace = 0;
    std::vector<std::string> chunks;
    std::map<std::string, std::size_t> offsets;  // first chunk of each type: its length field
};

Header header(const std::string& png) {
    Header h;
    if (png.size() < 33 || png.compare(0, 8, kSignature) != 0) {
        ADD_FAILURE() << "not a PNG";
        return h;
    }
    h.width = readBe32(png, 16);
    h.height = readBe32(png, 20);
    h.bitDepth = static_cast<unsigned char>(png[24]);
    h.colorType = static_cast<unsigned char>(png[25]);
    h.interlace = static_cast<unsigned char>(png[28]);
    for (std::size_t at = 8; at + 12 <= png.size();) {
        const std::string type = png.substr(at + 4, 4);
        h.chunks.push_back(type);
        h.offsets.emplace(type, at);
        at += 12 + readBe32(png, at);
    }
    return h;
}

std::string chunk(const std::string& type, const std::string& data) {
    const std::string body = type + data;
    const auto crc = static_cast<std::uint32_t>(
        ::crc32(0, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size())));
    return be32(static_cast<std::uint32_t>(data.size())) + body + be32(crc);
}

// A PNG put together here: IHDR as given, one IDAT with IDAT_DATA, IEND.
std::string craftedPng(std::uint32_t width, std::uint32_t height, int bitDepth, int colorType,
                       const std::string& idatData) {
    std::string ihdr = be32(width) + be32(height);
    ihdr += {static_cast<char>(bitDepth), static_cast<char>(colorType), 0, 0, 0};
    return kSignature + chunk("IHDR", ihdr) + chunk("IDAT", idatData) + chunk("IEND", "");
}

// Recomputes the CRC of the chunk whose length field is at AT, after its data was changed.
void fixCrc(std::string* png, std::size_t at) {
    const std::uint32_t len = readBe32(*png, at);
    const auto crc = static_cast<std::uint32_t>(
        ::crc32(0, reinterpret_cast<const Bytef*>(png->data() + at + 4), len + 4));
    png->replace(at + 8 + len, 4, be32(crc));
}

std::string ppm(int w, int h, int maxval, const std::string& raster) {
    return "P6\n" + std::to_string(w) + " " + std::to_string(h) + "\n" + std::to_string(maxval) +
           "\n" + raster;
}

std::string pgm(int w, int h, int maxval, const std::string& raster) {
    return "P5\n" + std::to_string(w) + " " + std::to_string(h) + "\n" + std::to_string(maxval) +
           "\n" + raster;
}

std::string pam(int w, int h, int depth, int maxval, const std::string& tupltype,
                const std::string& raster) {
    return "P7\nWIDTH " + std::to_string(w) + "\nHEIGHT " + std::to_string(h) + "\nDEPTH " +
           std::to_string(depth) + "\nMAXVAL " + std::to_string(maxval) + "\nTUPLTYPE " + tupltype +
           "\nENDHDR\n" + raster;
}

// RGB and alpha of an RGBA raster.
std::string rgbOf(const std::string& rgba) {
    std::string out;
    for (std::size_t i = 0; i + 3 < rgba.size(); i += 4) {
        out.append(rgba, i, 3);
    }
    return out;
}

std::string alphaOf(const std::string& rgba) {
    std::string out;
    for (std::size_t i = 3; i < rgba.size(); i += 4) {
        out.push_back(rgba[i]);
    }
    return out;
}

std::string greyToRgb(const std::string& grey) {
    std::string out;
    for (char g : grey) {
        out.append(3, g);
    }
    return out;
}

unsigned byteAt(const std::string& s, std::size_t i) {
    return static_cast<unsigned char>(s.at(i));
}

// An 8-bit sample from a 16-bit one, rounded.
char to8(unsigned v16) {
    return static_cast<char>(std::lround(v16 * 255.0 / 65535.0));
}

std::string zlibInflate(const std::string& data, std::size_t expected) {
    std::string out(expected + 16, '\0');
    uLongf len = static_cast<uLongf>(out.size());
    const int rc =
        ::uncompress(reinterpret_cast<Bytef*>(out.data()), &len,
                     reinterpret_cast<const Bytef*>(data.data()), static_cast<uLong>(data.size()));
    EXPECT_EQ(rc, Z_OK);
    out.resize(len);
    return out;
}

// A stream object's body split as pdfStream() writes it.
struct StreamParts {
    std::string dict;  // between "<<" and ">>"
    std::string data;
};

StreamParts splitStream(const std::string& body) {
    StreamParts p;
    const auto end = body.find(">>\nstream\n");
    if (body.rfind("<<", 0) != 0 || end == std::string::npos || body.size() < end + 10 + 10 ||
        body.compare(body.size() - 10, 10, "\nendstream") != 0) {
        ADD_FAILURE() << "not a stream object: " << body.substr(0, 200);
        return p;
    }
    p.dict = body.substr(2, end - 2);
    p.data = body.substr(end + 10, body.size() - 10 - (end + 10));
    return p;
}

// The integer after KEY in DICT ("/Width 5" -> 5), -1 when absent.
long long dictInt(const std::string& dict, const std::string& key) {
    const auto at = dict.find(key + " ");
    if (at == std::string::npos) {
        return -1;
    }
    return std::stoll(dict.substr(at + key.size() + 1));
}

class PngImageTest : public ::testing::Test {
  protected:
    void SetUp() override { m_dir = tempDir("png"); }

    // Runs a netpbm converter (COMMAND, e.g. "pnmtopng -force") on INPUT and returns its output.
    std::string netpbm(const std::string& command, const std::string& input) {
        const std::string in = m_dir + "/in-" + std::to_string(m_count);
        const std::string out = m_dir + "/out-" + std::to_string(m_count++);
        writeFile(in, input);
        std::string log;
        const int rc =
            run("{ " + command + " " + shellQuote(in) + " > " + shellQuote(out) + "; }", &log);
        EXPECT_EQ(rc, 0) << command << ": " << log;
        return readFile(out);
    }

    std::string path(const std::string& name) const { return m_dir + "/" + name; }

    std::string m_dir;
    int m_count = 0;
};

// --- Colour types and bit depths ------------------------------------------------------------

TEST_F(PngImageTest, RgbaWithPartialAlphaKeepsItsAlpha) {
    const int w = 5, h = 3;
    std::string rgba = samples(w * h * 4, 1);
    rgba[3] = 0;                       // fully transparent
    rgba[7] = static_cast<char>(128);  // half
    rgba[11] = static_cast<char>(255);
    const std::string png = netpbm("pamtopng", pam(w, h, 4, 255, "RGB_ALPHA", rgba));
    const Header hd = header(png);
    ASSERT_EQ(hd.colorType, 6);
    ASSERT_EQ(hd.bitDepth, 8);

    auto img = decodePng(png);
    ASSERT_TRUE(img.ok()) << img.error().code << ": " << img.error().detail;
    EXPECT_EQ(img->width, w);
    EXPECT_EQ(img->height, h);
    EXPECT_EQ(img->rgb, rgbOf(rgba));
    EXPECT_EQ(img->alpha, alphaOf(rgba));
}

TEST_F(PngImageTest, OpaqueRgbHasNoAlpha) {
    const int w = 6, h = 4;
    const std::string rgb = samples(w * h * 3, 2);
    const std::string png = netpbm("pnmtopng -force", ppm(w, h, 255, rgb));
    const Header hd = header(png);
    ASSERT_EQ(hd.colorType, 2);
    ASSERT_EQ(hd.bitDepth, 8);

    auto img = decodePng(png);
    ASSERT_TRUE(img.ok()) << img.error().detail;
    EXPECT_EQ(img->rgb, rgb);
    EXPECT_TRUE(img->alpha.empty());
}

TEST_F(PngImageTest, AlphaChannelThatIsOpaqueEverywhereIsDropped) {
    const int w = 4, h = 2;
    std::string rgba = samples(w * h * 4, 3);
    for (std::size_t i = 3; i < rgba.size(); i += 4) {
        rgba[i] = static_cast<char>(255);
    }
    const std::string png = netpbm("pamtopng", pam(w, h, 4, 255, "RGB_ALPHA", rgba));
    ASSERT_EQ(header(png).colorType, 6);

    auto img = decodePng(png);
    ASSERT_TRUE(img.ok()) << img.error().detail;
    EXPECT_EQ(img->rgb, rgbOf(rgba));
    EXPECT_TRUE(img->alpha.empty());
}

TEST_F(PngImageTest, PaletteWithTrnsBecomesAlpha) {
    // Four colours: pnmtopng writes a palette, and a tRNS entry for the transparent one.
    const std::string red("\xff\x00\x00", 3), green("\x00\xff\x00", 3), blue("\x00\x00\xff", 3),
        grey("\x80\x80\x80", 3);
    const std::string rgb = red + green + blue + grey + red + blue;
    const std::string png = netpbm("pnmtopng -transparent=rgb:ff/00/00", ppm(3, 2, 255, rgb));
    const Header hd = header(png);
    ASSERT_EQ(hd.colorType, 3);
    ASSERT_EQ(hd.offsets.count("tRNS"), 1u);

    auto img = decodePng(png);
    ASSERT_TRUE(img.ok()) << img.error().detail;
    EXPECT_EQ(img->rgb, rgb);
    EXPECT_EQ(img->alpha, std::string("\x00\xff\xff\xff\x00\xff", 6));
}

TEST_F(PngImageTest, RgbAndGreyWithTrnsBecomeAlpha) {
    // A tRNS colour in a truecolour image: pixels of exactly that colour are transparent.
    const std::string rgb = std::string("\xff\x00\x00\xfe\x00\x00\x00\x00\xff\xff\x00\x00", 12);
    std::string png = netpbm("pnmtopng -force -transparent=rgb:ff/00/00", ppm(4, 1, 255, rgb));
    Header hd = header(png);
    ASSERT_EQ(hd.colorType, 2);
    ASSERT_EQ(hd.offsets.count("tRNS"), 1u);
    auto img = decodePng(png);
    ASSERT_TRUE(img.ok()) << img.error().detail;
    EXPECT_EQ(img->rgb, rgb);
    EXPECT_EQ(img->alpha, std::string("\x00\xff\xff\x00", 4));

    // A tRNS grey level in a grey image.
    const std::string grey = std::string("\x64\x00\x65\x64", 4);
    png = netpbm("pnmtopng -force -transparent=rgb:64/64/64", pgm(4, 1, 255, grey));
    hd = header(png);
    ASSERT_EQ(hd.colorType, 0);
    ASSERT_EQ(hd.offsets.count("tRNS"), 1u);
    img = decodePng(png);
    ASSERT_TRUE(img.ok()) << img.error().detail;
    EXPECT_EQ(img->rgb, greyToRgb(grey));
    EXPECT_EQ(img->alpha, std::string("\x00\xff\xff\x00", 4));
}

TEST_F(PngImageTest, PaletteWithoutTrnsIsOpaqueRgb) {
    const std::string rgb = std::string("\x10\x20\x30\xff\xff\xff\x00\x00\x00\x10\x20\x30", 12);
    const std::string png = netpbm("pnmtopng", ppm(2, 2, 255, rgb));
    const Header hd = header(png);
    ASSERT_EQ(hd.colorType, 3);
    ASSERT_LT(hd.bitDepth, 8);  // packed indices are expanded too

    auto img = decodePng(png);
    ASSERT_TRUE(img.ok()) << img.error().detail;
    EXPECT_EQ(img->rgb, rgb);
    EXPECT_TRUE(img->alpha.empty());
}

TEST_F(PngImageTest, SixteenBitSamplesAreReducedToEight) {
    // RGB: exact multiples of 257 and values in between, which must round to the nearest.
    const std::vector<unsigned> values = {0,     257, 65535, 4863,  4864,  32767,
                                          32768, 128, 129,   65407, 65408, 12345};
    std::string raster, expected;
    for (unsigned v : values) {
        raster.push_back(static_cast<char>(v >> 8));
        raster.push_back(static_cast<char>(v & 0xff));
        expected.push_back(to8(v));
    }
    const std::string png = netpbm("pnmtopng -force", ppm(2, 2, 65535, raster));
    Header hd = header(png);
    ASSERT_EQ(hd.colorType, 2);
    ASSERT_EQ(hd.bitDepth, 16);
    auto img = decodePng(png);
    ASSERT_TRUE(img.ok()) << img.error().detail;
    EXPECT_EQ(img->rgb, expected);
    EXPECT_TRUE(img->alpha.empty());

    // Grey, 16 bits.
    const std::string greyRaster = raster.substr(0, 8);  // 4 samples
    const std::string grey16 = netpbm("pnmtopng -force", pgm(4, 1, 65535, greyRaster));
    hd = header(grey16);
    ASSERT_EQ(hd.colorType, 0);
    ASSERT_EQ(hd.bitDepth, 16);
    img = decodePng(grey16);
    ASSERT_TRUE(img.ok()) << img.error().detail;
    EXPECT_EQ(img->rgb, greyToRgb(expected.substr(0, 4)));

    // RGBA, 16 bits: alpha is reduced the same way and kept.
    const std::string rgba16 = netpbm("pamtopng", pam(3, 1, 4, 65535, "RGB_ALPHA", raster));
    hd = header(rgba16);
    ASSERT_EQ(hd.colorType, 6);
    ASSERT_EQ(hd.bitDepth, 16);
    img = decodePng(rgba16);
    ASSERT_TRUE(img.ok()) << img.error().detail;
    EXPECT_EQ(img->rgb, rgbOf(expected));
    EXPECT_EQ(img->alpha, alphaOf(expected));
}

TEST_F(PngImageTest, GreyBecomesRgb) {
    // 8-bit grey.
    const std::string grey = samples(5 * 3, 4);
    std::string png = netpbm("pnmtopng -force", pgm(5, 3, 255, grey));
    Header hd = header(png);
    ASSERT_EQ(hd.colorType, 0);
    ASSERT_EQ(hd.bitDepth, 8);
    auto img = decodePng(png);
    ASSERT_TRUE(img.ok()) << img.error().detail;
    EXPECT_EQ(img->rgb, greyToRgb(grey));
    EXPECT_TRUE(img->alpha.empty());

    // 1-bit grey (a bitmap): black and white samples expanded to 0 and 255.
    png = netpbm("pnmtopng", "P1\n3 2\n1 0 1\n0 0 1\n");
    hd = header(png);
    ASSERT_EQ(hd.colorType, 0);
    ASSERT_EQ(hd.bitDepth, 1);
    img = decodePng(png);
    ASSERT_TRUE(img.ok()) << img.error().detail;
    EXPECT_EQ(img->rgb, greyToRgb(std::string("\x00\xff\x00\xff\xff\x00", 6)));

    // Grey with alpha.
    const std::string ga = std::string("\x10\x00\x80\x80\xff\xff", 6);
    png = netpbm("pamtopng", pam(3, 1, 2, 255, "GRAYSCALE_ALPHA", ga));
    hd = header(png);
    ASSERT_EQ(hd.colorType, 4);
    img = decodePng(png);
    ASSERT_TRUE(img.ok()) << img.error().detail;
    EXPECT_EQ(img->rgb, greyToRgb(std::string("\x10\x80\xff", 3)));
    EXPECT_EQ(img->alpha, std::string("\x00\x80\xff", 3));
}

TEST_F(PngImageTest, InterlacedDecodesTheSamePixels) {
    // Odd sizes, so that every Adam7 pass has partial blocks.
    const int w = 37, h = 23;
    const std::string rgb = samples(w * h * 3, 5);
    const std::string plain = netpbm("pnmtopng -force", ppm(w, h, 255, rgb));
    const std::string interlaced = netpbm("pnmtopng -force -interlace", ppm(w, h, 255, rgb));
    ASSERT_EQ(header(plain).interlace, 0);
    ASSERT_EQ(header(interlaced).interlace, 1);
    auto a = decodePng(plain);
    auto b = decodePng(interlaced);
    ASSERT_TRUE(a.ok()) << a.error().detail;
    ASSERT_TRUE(b.ok()) << b.error().detail;
    EXPECT_EQ(a->rgb, rgb);
    EXPECT_EQ(b->rgb, rgb);

    // With alpha too.
    const std::string rgba = samples(w * h * 4, 6);
    const std::string interlacedRgba =
        netpbm("pamtopng -interlace", pam(w, h, 4, 255, "RGB_ALPHA", rgba));
    ASSERT_EQ(header(interlacedRgba).interlace, 1);
    ASSERT_EQ(header(interlacedRgba).colorType, 6);
    auto c = decodePng(interlacedRgba);
    ASSERT_TRUE(c.ok()) << c.error().detail;
    EXPECT_EQ(c->rgb, rgbOf(rgba));
    EXPECT_EQ(c->alpha, alphaOf(rgba));
}

TEST_F(PngImageTest, TextChunksDoNotStopDecoding) {
    // Text chunks, compressed or not, are skipped (never decompressed), not refused.
    writeFile(path("text"), "Title Seal\nAuthor kyso test\n");
    const std::string rgb = samples(2 * 2 * 3, 7);
    for (const char* option : {"-ztxt=", "-text="}) {
        const std::string png =
            netpbm("pnmtopng -force " + std::string(option) + shellQuote(path("text")),
                   ppm(2, 2, 255, rgb));
        const Header hd = header(png);
        ASSERT_EQ(hd.offsets.count(option[1] == 'z' ? "zTXt" : "tEXt"), 1u) << option;
        auto img = decodePng(png);
        ASSERT_TRUE(img.ok()) << img.error().detail;
        EXPECT_EQ(img->rgb, rgb);
    }
}

// --- Physical size ---------------------------------------------------------------------------

TEST_F(PngImageTest, PhysInMetresGivesTheRealSize) {
    // A 36 mm seal at 300 dpi: 425 px at 11811 px/m is 102 pt.
    const std::string png =
        netpbm("pnmtopng -size='11811 11811 1'", pgm(425, 425, 255, std::string(425 * 425, 'x')));
    ASSERT_EQ(header(png).offsets.count("pHYs"), 1u);
    auto img = decodePng(png);
    ASSERT_TRUE(img.ok()) << img.error().detail;
    EXPECT_EQ(img->pixelsPerMeterX, 11811);
    EXPECT_EQ(img->pixelsPerMeterY, 11811);
    const auto size = img->sizePoints();
    ASSERT_TRUE(size.has_value());
    EXPECT_NEAR(size->first, 102.0, 0.05);
    EXPECT_NEAR(size->second, 102.0, 0.05);

    // Different resolutions across and down: 100 px at 100 dpi is 72 pt, at 200 dpi 36 pt.
    const std::string wide =
        netpbm("pnmtopng -force -size='3937 7874 1'", pgm(100, 100, 255, samples(100 * 100, 8)));
    img = decodePng(wide);
    ASSERT_TRUE(img.ok()) << img.error().detail;
    ASSERT_TRUE(img->sizePoints().has_value());
    EXPECT_NEAR(img->sizePoints()->first, 72.0, 0.02);
    EXPECT_NEAR(img->sizePoints()->second, 36.0, 0.02);
}

TEST_F(PngImageTest, NoPhysOrNoUnitMeansNoSize) {
    const std::string rgb = samples(4 * 4 * 3, 9);
    const std::string none = netpbm("pnmtopng -force", ppm(4, 4, 255, rgb));
    ASSERT_EQ(header(none).offsets.count("pHYs"), 0u);
    auto img = decodePng(none);
    ASSERT_TRUE(img.ok()) << img.error().detail;
    EXPECT_EQ(img->pixelsPerMeterX, 0);
    EXPECT_EQ(img->pixelsPerMeterY, 0);
    EXPECT_FALSE(img->sizePoints().has_value());

    // pHYs with unit 0 gives only the pixels' aspect ratio, not a size.
    const std::string aspect = netpbm("pnmtopng -force -size='1 2 0'", ppm(4, 4, 255, rgb));
    ASSERT_EQ(header(aspect).offsets.count("pHYs"), 1u);
    img = decodePng(aspect);
    ASSERT_TRUE(img.ok()) << img.error().detail;
    EXPECT_FALSE(img->sizePoints().has_value());
}

// --- Damaged files ---------------------------------------------------------------------------

TEST_F(PngImageTest, EveryTruncationIsInvalid) {
    const std::string png =
        netpbm("pnmtopng -force -size='11811 11811 1'", ppm(9, 7, 255, samples(9 * 7 * 3, 10)));
    ASSERT_TRUE(decodePng(png).ok());
    for (std::size_t n = 0; n < png.size(); ++n) {
        auto img = decodePng(std::string_view(png).substr(0, n));
        ASSERT_FALSE(img.ok()) << "prefix of " << n << " of " << png.size() << " bytes";
        EXPECT_EQ(img.error().code, "appearance.image_invalid") << "prefix of " << n;
    }
}

TEST_F(PngImageTest, CrcErrorInAnyChunkIsInvalid) {
    const std::string png =
        netpbm("pnmtopng -force -size='11811 11811 1'", ppm(9, 7, 255, samples(9 * 7 * 3, 11)));
    const Header hd = header(png);
    // pHYs too: a damaged physical size must not draw a seal at some other size.
    for (const char* type : {"IHDR", "pHYs", "IDAT", "IEND"}) {
        ASSERT_EQ(hd.offsets.count(type), 1u) << type;
        const std::size_t at = hd.offsets.at(type);
        std::string bad = png;
        bad[at + 8 + readBe32(png, at) + 3] ^= 0x01;  // last byte of its CRC
        auto img = decodePng(bad);
        ASSERT_FALSE(img.ok()) << type;
        EXPECT_EQ(img.error().code, "appearance.image_invalid") << type;
    }
}

TEST_F(PngImageTest, ZlibErrorInsideIsInvalid) {
    const std::string png = netpbm("pnmtopng -force", ppm(9, 7, 255, samples(9 * 7 * 3, 12)));
    const std::size_t at = header(png).offsets.at("IDAT");
    const std::uint32_t len = readBe32(png, at);
    // A wrong zlib header, a wrong Adler-32 checksum, garbage in the deflate data: each with a
    // correct chunk CRC, so that only the zlib stream is at fault.
    const std::vector<std::pair<std::size_t, unsigned char>> damages = {
        {at + 8, 0xff}, {at + 8 + len - 1, 0x01}, {at + 8 + 2, 0xff}};
    for (const auto& [pos, mask] : damages) {
        std::string bad = png;
        bad[pos] = static_cast<char>(bad[pos] ^ mask);
        fixCrc(&bad, at);
        auto img = decodePng(bad);
        ASSERT_FALSE(img.ok()) << "byte " << pos - at - 8 << " of the IDAT data";
        EXPECT_EQ(img.error().code, "appearance.image_invalid");
    }
}

TEST_F(PngImageTest, NotAPngIsInvalid) {
    const std::vector<std::string> inputs = {
        "",
        "hello",
        "%PDF-1.7\n1 0 obj\n<< >>\nendobj\n",
        std::string("\xff\xd8\xff\xe0\x00\x10JFIF\x00", 11),
        kSignature,
        "\x89PNG\r\n\x1a\r" + std::string(40, '\0'),  // a signature damaged by a text transfer
        kSignature + chunk("IEND", ""),               // no IHDR
    };
    for (const auto& in : inputs) {
        auto img = decodePng(in);
        ASSERT_FALSE(img.ok()) << in.size() << " bytes";
        EXPECT_EQ(img.error().code, "appearance.image_invalid") << in.size() << " bytes";
    }
}

TEST_F(PngImageTest, HugeImagesAreRefusedBeforeTheirRowsAreDecoded) {
    // The IDAT is garbage: a decoder that got as far as the rows would say image_invalid.
    const std::string garbage = "not a zlib stream at all";
    struct Case {
        std::uint32_t w, h;
    };
    for (const Case c : {Case{20000, 20000}, Case{16385, 1}, Case{1, 16385}, Case{16384, 16384},
                         Case{4097, 4096}, Case{0xffffffffu >> 1, 1}}) {
        auto img = decodePng(craftedPng(c.w, c.h, 8, 6, garbage));
        ASSERT_FALSE(img.ok()) << c.w << "x" << c.h;
        EXPECT_EQ(img.error().code, "appearance.image_too_large") << c.w << "x" << c.h;
    }
    // Exactly kMaxPngPixels is accepted: the same garbage IDAT is then what fails.
    static_assert(4096LL * 4096 == signer::kMaxPngPixels);
    auto img = decodePng(craftedPng(4096, 4096, 8, 2, garbage));
    ASSERT_FALSE(img.ok());
    EXPECT_EQ(img.error().code, "appearance.image_invalid");
}

// --- Files -----------------------------------------------------------------------------------

TEST_F(PngImageTest, MissingOrUnreadableFileIsUnreadableWithoutItsPath) {
    const std::string missing = path("secret-dir-name/no-such.png");
    auto img = readPng(missing);
    ASSERT_FALSE(img.ok());
    EXPECT_EQ(img.error().code, "appearance.image_unreadable");
    EXPECT_EQ(img.error().detail.find("secret-dir-name"), std::string::npos);
    EXPECT_EQ(img.error().detail.find(m_dir), std::string::npos);

    img = readPng(m_dir);  // a directory
    ASSERT_FALSE(img.ok());
    EXPECT_EQ(img.error().code, "appearance.image_unreadable");

    // A file that is there but not a PNG: invalid, and its name is not in the detail either.
    writeFile(path("secret-name.png"), "GIF89a....");
    img = readPng(path("secret-name.png"));
    ASSERT_FALSE(img.ok());
    EXPECT_EQ(img.error().code, "appearance.image_invalid");
    EXPECT_EQ(img.error().detail.find("secret-name"), std::string::npos);
}

TEST_F(PngImageTest, ReadPngReadsTheFile) {
    const std::string rgba = samples(3 * 2 * 4, 13);
    writeFile(path("a.png"), netpbm("pamtopng", pam(3, 2, 4, 255, "RGB_ALPHA", rgba)));
    auto img = readPng(path("a.png"));
    ASSERT_TRUE(img.ok()) << img.error().detail;
    EXPECT_EQ(img->rgb, rgbOf(rgba));
    EXPECT_EQ(img->alpha, alphaOf(rgba));
}

TEST_F(PngImageTest, OversizedFileIsRefusedWithoutReadingIt) {
    // Sparse: 300 MiB of nothing that no accepted image needs.
    const std::string big = path("big.png");
    writeFile(big, craftedPng(1, 1, 8, 2, ""));
    ASSERT_EQ(::truncate(big.c_str(), 300LL * 1024 * 1024), 0);
    auto img = readPng(big);
    ASSERT_FALSE(img.ok());
    EXPECT_EQ(img.error().code, "appearance.image_too_large");
}

// --- writePng --------------------------------------------------------------------------------

TEST_F(PngImageTest, WritePngRoundTripsAndNetpbmReadsIt) {
    const int w = 7, h = 5;
    std::string rgba = samples(w * h * 4, 14);
    rgba[3] = 0;
    rgba[7] = static_cast<char>(255);
    const std::string file = path("w.png");
    auto st = writePng(file, w, h, rgba, 11811);
    ASSERT_TRUE(st.ok()) << st.error().detail;
    const std::string bytes = readFile(file);
    const Header hd = header(bytes);
    EXPECT_EQ(hd.width, 7u);
    EXPECT_EQ(hd.height, 5u);
    EXPECT_EQ(hd.colorType, 6);
    EXPECT_EQ(hd.bitDepth, 8);
    ASSERT_EQ(hd.offsets.count("pHYs"), 1u);
    const std::size_t phys = hd.offsets.at("pHYs");
    EXPECT_EQ(readBe32(bytes, phys + 8), 11811u);
    EXPECT_EQ(readBe32(bytes, phys + 12), 11811u);
    EXPECT_EQ(byteAt(bytes, phys + 16), 1u);  // the metre

    auto img = readPng(file);
    ASSERT_TRUE(img.ok()) << img.error().detail;
    EXPECT_EQ(img->rgb, rgbOf(rgba));
    EXPECT_EQ(img->alpha, alphaOf(rgba));
    EXPECT_EQ(img->pixelsPerMeterX, 11811);

    // Another decoder reads the same pixels: pngtopam writes them as a PAM after its header.
    std::string pamOut;
    ASSERT_EQ(run("pngtopam -alphapam " + shellQuote(file), &pamOut), 0) << pamOut;
    const auto end = pamOut.find("ENDHDR\n");
    ASSERT_NE(end, std::string::npos) << pamOut;
    EXPECT_NE(pamOut.find("TUPLTYPE RGB_ALPHA"), std::string::npos);
    EXPECT_EQ(pamOut.substr(end + 7), rgba);

    // Same input, same bytes; and without a resolution there is no pHYs.
    ASSERT_TRUE(writePng(path("w2.png"), w, h, rgba, 11811).ok());
    EXPECT_EQ(readFile(path("w2.png")), bytes);
    ASSERT_TRUE(writePng(path("w3.png"), w, h, rgba, 0).ok());
    EXPECT_EQ(header(readFile(path("w3.png"))).offsets.count("pHYs"), 0u);
    img = readPng(path("w3.png"));
    ASSERT_TRUE(img.ok());
    EXPECT_FALSE(img->sizePoints().has_value());

    // Overwriting replaces the file.
    const std::string opaque(w * h * 4, '\xff');
    ASSERT_TRUE(writePng(file, w, h, opaque, 0).ok());
    img = readPng(file);
    ASSERT_TRUE(img.ok());
    EXPECT_EQ(img->rgb, std::string(w * h * 3, '\xff'));
    EXPECT_TRUE(img->alpha.empty());
}

TEST_F(PngImageTest, WritePngFailsWithoutLeavingAFile) {
    const std::string rgba = samples(4 * 4 * 4, 15);
    auto st = writePng(path("no-such-dir/x.png"), 4, 4, rgba, 0);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, "io.write");

    // Pixels that do not match the size, and sizes out of range.
    st = writePng(path("short.png"), 4, 5, rgba, 0);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, "io.write");
    EXPECT_FALSE(std::filesystem::exists(path("short.png")));
    EXPECT_EQ(writePng(path("zero.png"), 0, 4, "", 0).error().code, "io.write");
    EXPECT_EQ(writePng(path("neg.png"), 4, 4, rgba, -1).error().code, "io.write");

    // An existing file is kept whole when writing over it fails.
    ASSERT_TRUE(writePng(path("keep.png"), 4, 4, rgba, 0).ok());
    const std::string before = readFile(path("keep.png"));
    ASSERT_FALSE(writePng(path("keep.png"), 4, 5, rgba, 0).ok());
    EXPECT_EQ(readFile(path("keep.png")), before);

    // No temporary file is left behind, after success or failure.
    for (const auto& e : std::filesystem::directory_iterator(m_dir)) {
        EXPECT_EQ(e.path().filename().string().find("tmp"), std::string::npos) << e.path();
    }
}

// --- PDF image objects -----------------------------------------------------------------------

TEST_F(PngImageTest, ImageObjectsHoldTheSamplesAndTheirSoftMask) {
    PngImage image;
    image.width = 3;
    image.height = 2;
    image.rgb = samples(3 * 2 * 3, 16);
    image.alpha = std::string("\x00\x40\x80\xc0\xff\x10", 6);
    int counter = 41;
    std::vector<signer::PdfObject> objects;
    const int num = signer::appendImageObjects(
        image, [&] { return counter++; }, &objects);
    ASSERT_EQ(objects.size(), 2u);
    EXPECT_EQ(num, 41);
    EXPECT_EQ(objects[0].num, 41);
    EXPECT_EQ(objects[1].num, 42);

    const StreamParts im = splitStream(objects[0].body);
    EXPECT_NE(im.dict.find("/Type /XObject"), std::string::npos);
    EXPECT_NE(im.dict.find("/Subtype /Image"), std::string::npos);
    EXPECT_EQ(dictInt(im.dict, "/Width"), 3);
    EXPECT_EQ(dictInt(im.dict, "/Height"), 2);
    EXPECT_NE(im.dict.find("/ColorSpace /DeviceRGB"), std::string::npos);
    EXPECT_EQ(dictInt(im.dict, "/BitsPerComponent"), 8);
    EXPECT_NE(im.dict.find("/Filter /FlateDecode"), std::string::npos);
    EXPECT_NE(im.dict.find("/SMask 42 0 R"), std::string::npos);
    EXPECT_EQ(dictInt(im.dict, "/Length"), static_cast<long long>(im.data.size()));
    EXPECT_EQ(zlibInflate(im.data, image.rgb.size()), image.rgb);

    const StreamParts mask = splitStream(objects[1].body);
    EXPECT_NE(mask.dict.find("/Subtype /Image"), std::string::npos);
    EXPECT_EQ(dictInt(mask.dict, "/Width"), 3);
    EXPECT_EQ(dictInt(mask.dict, "/Height"), 2);
    EXPECT_NE(mask.dict.find("/ColorSpace /DeviceGray"), std::string::npos);
    EXPECT_EQ(dictInt(mask.dict, "/BitsPerComponent"), 8);
    EXPECT_NE(mask.dict.find("/Filter /FlateDecode"), std::string::npos);
    EXPECT_EQ(mask.dict.find("/SMask"), std::string::npos);
    EXPECT_EQ(dictInt(mask.dict, "/Length"), static_cast<long long>(mask.data.size()));
    EXPECT_EQ(zlibInflate(mask.data, image.alpha.size()), image.alpha);

    // Without alpha: one object, no /SMask, one number taken.
    image.alpha.clear();
    objects.clear();
    EXPECT_EQ(signer::appendImageObjects(
                  image, [&] { return counter++; }, &objects),
              43);
    ASSERT_EQ(objects.size(), 1u);
    EXPECT_EQ(counter, 44);
    EXPECT_EQ(splitStream(objects[0].body).dict.find("/SMask"), std::string::npos);
}

TEST_F(PngImageTest, PopplerDrawsTheImageWithItsTransparency) {
    // Four pixels in a row: opaque red, half-transparent green, transparent blue, opaque black,
    // drawn over a white page 80x20 pt and rendered at 72 dpi: 20x20 device pixels each.
    std::string rgba("\xff\x00\x00\xff\x00\xff\x00\x80\x00\x00\xff\x00\x00\x00\x00\xff", 16);
    const std::string file = path("four.png");
    ASSERT_TRUE(writePng(file, 4, 1, rgba, 0).ok());
    auto img = readPng(file);
    ASSERT_TRUE(img.ok()) << img.error().detail;

    int counter = 5;  // 1 catalog, 2 pages, 3 page, 4 content
    std::vector<signer::PdfObject> objects;
    const int num = signer::appendImageObjects(
        *img, [&] { return counter++; }, &objects);
    std::vector<std::string> bodies = {
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 80 20] /Resources << /XObject << /Im0 " +
            std::to_string(num) + " 0 R >> >> /Contents 4 0 R >>",
        kyso::test::pdfStream("q 80 0 0 20 0 0 cm /Im0 Do Q"),
    };
    for (const auto& o : objects) {
        ASSERT_EQ(o.num, static_cast<int>(bodies.size()) + 1);
        bodies.push_back(o.body);
    }
    writeFile(path("four.pdf"), makePdf(bodies));
    std::string log;
    ASSERT_EQ(run("pdftoppm -r 72 -singlefile " + shellQuote(path("four.pdf")) + " " +
                      shellQuote(path("four")),
                  &log),
              0)
        << log;
    const std::string ppmOut = readFile(path("four.ppm"));
    ASSERT_EQ(ppmOut.rfind("P6\n80 20\n255\n", 0), 0u) << ppmOut.substr(0, 20);
    const std::size_t base = std::string("P6\n80 20\n255\n").size();
    auto pixel = [&](int x, int y) {
        const std::size_t at = base + static_cast<std::size_t>(y * 80 + x) * 3;
        return std::vector<int>{static_cast<int>(byteAt(ppmOut, at)),
                                static_cast<int>(byteAt(ppmOut, at + 1)),
                                static_cast<int>(byteAt(ppmOut, at + 2))};
    };
    const std::vector<std::vector<int>> expected = {
        {255, 0, 0}, {127, 255, 127}, {255, 255, 255}, {0, 0, 0}};
    for (int i = 0; i < 4; ++i) {
        const auto got = pixel(10 + 20 * i, 10);
        for (int k = 0; k < 3; ++k) {
            EXPECT_NEAR(got[k], expected[i][k], 3) << "pixel " << i << " channel " << k;
        }
    }
}

}  // namespace
}  // namespace kyso::test
