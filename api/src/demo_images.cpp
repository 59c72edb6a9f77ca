#include "demo_images.h"

#include <ft2build.h>
#include FT_FREETYPE_H

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <vector>

#include "kyso/signer/png_image.h"

namespace kyso::api {

namespace {

constexpr double kPi = 3.14159265358979323846;
// 300 dpi in pixels per metre (300 / 0.0254).
constexpr double kPixelsPerMeter = 11811;
constexpr const char* kSealFont = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf";

struct Point {
    double x;
    double y;
};

// Ink coverage per pixel (0..1); shapes are combined by keeping the larger coverage, so
// overlapping strokes do not darken or show seams.
class Canvas {
  public:
    Canvas(int width, int height)
        : m_width(width), m_height(height), m_cov(static_cast<std::size_t>(width) * height) {}

    int width() const { return m_width; }
    int height() const { return m_height; }

    void cover(int x, int y, double c) {
        if (x < 0 || y < 0 || x >= m_width || y >= m_height || c <= 0) {
            return;
        }
        double& v = m_cov[static_cast<std::size_t>(y) * m_width + x];
        v = std::max(v, std::min(c, 1.0));
    }

    // RGBA rows: the ink colour everywhere (so that resampled edges never fringe towards
    // black) and the coverage as alpha.
    std::string rgba(unsigned char r, unsigned char g, unsigned char b) const {
        std::string out(m_cov.size() * 4, '\0');
        for (std::size_t i = 0; i < m_cov.size(); ++i) {
            out[i * 4] = static_cast<char>(r);
            out[i * 4 + 1] = static_cast<char>(g);
            out[i * 4 + 2] = static_cast<char>(b);
            out[i * 4 + 3] = static_cast<char>(std::lround(m_cov[i] * 255));
        }
        return out;
    }

  private:
    int m_width;
    int m_height;
    std::vector<double> m_cov;
};

// A segment drawn with a round pen whose radius goes from RA to RB: coverage from the distance
// of each pixel centre to the segment, one pixel of anti-aliasing across the edge.
void capsule(Canvas& c, Point a, Point b, double ra, double rb) {
    const double r = std::max(ra, rb) + 1;
    const int x0 = static_cast<int>(std::floor(std::min(a.x, b.x) - r));
    const int x1 = static_cast<int>(std::ceil(std::max(a.x, b.x) + r));
    const int y0 = static_cast<int>(std::floor(std::min(a.y, b.y) - r));
    const int y1 = static_cast<int>(std::ceil(std::max(a.y, b.y) + r));
    const double dx = b.x - a.x;
    const double dy = b.y - a.y;
    const double len2 = dx * dx + dy * dy;
    for (int y = y0; y <= y1; ++y) {
        for (int x = x0; x <= x1; ++x) {
            const double px = x + 0.5 - a.x;
            const double py = y + 0.5 - a.y;
            const double t = len2 > 0 ? std::clamp((px * dx + py * dy) / len2, 0.0, 1.0) : 0.0;
            const double d = std::hypot(px - t * dx, py - t * dy);
            c.cover(x, y, ra + (rb - ra) * t + 0.5 - d);
        }
    }
}

// A pen stroke along PTS (a finely sampled curve): thin where the pen lands and lifts, full
// width in between, as a fountain pen's line looks.
void stroke(Canvas& c, const std::vector<Point>& pts, double radius) {
    const std::size_t n = pts.size();
    auto radiusAt = [&](std::size_t i) {
        const double s = n > 1 ? static_cast<double>(i) / static_cast<double>(n - 1) : 0.5;
        return radius * (0.45 + 0.55 * std::sqrt(std::sin(kPi * s)));
    };
    for (std::size_t i = 0; i + 1 < n; ++i) {
        capsule(c, pts[i], pts[i + 1], radiusAt(i), radiusAt(i + 1));
    }
}

// A smooth curve through KNOTS (uniform Catmull-Rom), STEPS samples per span.
std::vector<Point> throughPoints(const std::vector<Point>& knots, int steps = 24) {
    std::vector<Point> out;
    const std::size_t n = knots.size();
    for (std::size_t i = 0; i + 1 < n; ++i) {
        const Point p0 = knots[i == 0 ? 0 : i - 1];
        const Point p1 = knots[i];
        const Point p2 = knots[i + 1];
        const Point p3 = knots[i + 2 < n ? i + 2 : n - 1];
        for (int k = 0; k < steps; ++k) {
            const double t = static_cast<double>(k) / steps;
            const double t2 = t * t;
            const double t3 = t2 * t;
            auto f = [&](double a, double b, double cc, double d) {
                return 0.5 * (2 * b + (-a + cc) * t + (2 * a - 5 * b + 4 * cc - d) * t2 +
                              (-a + 3 * b - 3 * cc + d) * t3);
            };
            out.push_back({f(p0.x, p1.x, p2.x, p3.x), f(p0.y, p1.y, p2.y, p3.y)});
        }
    }
    out.push_back(knots.back());
    return out;
}

// A ring between radii RIN and ROUT around (CX, CY).
void ring(Canvas& c, double cx, double cy, double rIn, double rOut) {
    for (int y = 0; y < c.height(); ++y) {
        for (int x = 0; x < c.width(); ++x) {
            const double d = std::hypot(x + 0.5 - cx, y + 0.5 - cy);
            c.cover(x, y, std::min(d - rIn, rOut - d) + 0.5);
        }
    }
}

bool insidePolygon(const std::vector<Point>& poly, double x, double y) {
    bool in = false;
    for (std::size_t i = 0, j = poly.size() - 1; i < poly.size(); j = i++) {
        const Point& a = poly[i];
        const Point& b = poly[j];
        if ((a.y > y) != (b.y > y) && x < (b.x - a.x) * (y - a.y) / (b.y - a.y) + a.x) {
            in = !in;
        }
    }
    return in;
}

// A filled polygon, anti-aliased by 5x5 samples per pixel.
void fillPolygon(Canvas& c, const std::vector<Point>& poly) {
    double minX = poly[0].x, maxX = poly[0].x, minY = poly[0].y, maxY = poly[0].y;
    for (const Point& p : poly) {
        minX = std::min(minX, p.x);
        maxX = std::max(maxX, p.x);
        minY = std::min(minY, p.y);
        maxY = std::max(maxY, p.y);
    }
    constexpr int kSamples = 5;
    for (int y = static_cast<int>(std::floor(minY)); y <= static_cast<int>(std::ceil(maxY)); ++y) {
        for (int x = static_cast<int>(std::floor(minX)); x <= static_cast<int>(std::ceil(maxX));
             ++x) {
            int hits = 0;
            for (int sy = 0; sy < kSamples; ++sy) {
                for (int sx = 0; sx < kSamples; ++sx) {
                    hits +=
                        insidePolygon(poly, x + (sx + 0.5) / kSamples, y + (sy + 0.5) / kSamples)
                            ? 1
                            : 0;
                }
            }
            c.cover(x, y, static_cast<double>(hits) / (kSamples * kSamples));
        }
    }
}

// A regular five-pointed star of outer radius R centred on (CX, CY), a point upwards.
void star(Canvas& c, double cx, double cy, double r) {
    // The inner vertices of a regular pentagram: r * sin(18°) / sin(126°)... = r * 0.381966.
    const double inner = r * 0.381966;
    std::vector<Point> poly;
    for (int i = 0; i < 10; ++i) {
        const double a = -kPi / 2 + i * kPi / 5;
        const double rr = i % 2 == 0 ? r : inner;
        poly.push_back({cx + rr * std::cos(a), cy + rr * std::sin(a)});
    }
    fillPolygon(c, poly);
}

// Decodes UTF-8 strictly; false on any invalid sequence.
bool decodeUtf8(const std::string& s, std::vector<char32_t>* out) {
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        const int extra = c < 0x80         ? 0
                          : (c >> 5) == 6  ? 1
                          : (c >> 4) == 14 ? 2
                          : (c >> 3) == 30 ? 3
                                           : -1;
        if (extra < 0 || i + static_cast<std::size_t>(extra) >= s.size() + (extra == 0 ? 1 : 0)) {
            return false;
        }
        char32_t cp = extra == 0 ? c : c & (0x3F >> extra);
        for (int k = 1; k <= extra; ++k) {
            const auto cc = static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]);
            if ((cc >> 6) != 2) {
                return false;
            }
            cp = (cp << 6) | (cc & 0x3F);
        }
        static const char32_t kMin[] = {0, 0x80, 0x800, 0x10000};
        if (cp < kMin[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        out->push_back(cp);
        i += static_cast<std::size_t>(extra) + 1;
    }
    return true;
}

struct FtLibraryDeleter {
    void operator()(FT_Library lib) const noexcept { ::FT_Done_FreeType(lib); }
};
struct FtFaceDeleter {
    void operator()(FT_Face face) const noexcept { ::FT_Done_Face(face); }
};
using FtLibraryPtr = std::unique_ptr<FT_LibraryRec_, FtLibraryDeleter>;
using FtFacePtr = std::unique_ptr<FT_FaceRec_, FtFaceDeleter>;

// Where the seal's text goes: centred on the top of a circle, reading clockwise, the tops of
// the letters outwards.
struct ArcText {
    double cx;
    double cy;
    double middle;       // radius of the band's middle: the text is centred on it
    double maxHeight;    // of the tallest letter above the baseline, accents included
    double maxAngle;     // radians the text may span at most
    double fillAngle;    // radians the text is spaced out to span, when it is short
    double letterSpace;  // pixels between letters at least
};

// Draws TEXT along the arc with FreeType, each glyph rendered already rotated (FT_Set_Transform)
// with its anti-aliasing. The size is the largest that fits maxHeight and maxAngle.
Status drawArcText(Canvas& c, const std::string& text, const ArcText& arc) {
    std::vector<char32_t> cps;
    if (!decodeUtf8(text, &cps)) {
        return Error::make("appearance.text_invalid", "the agency name is not valid UTF-8");
    }
    if (cps.empty()) {
        return Ok{};
    }
    FT_Library rawLib = nullptr;
    if (::FT_Init_FreeType(&rawLib) != 0) {
        return Error::make("appearance.font_unreadable", "cannot start FreeType");
    }
    FtLibraryPtr lib(rawLib);
    FT_Face rawFace = nullptr;
    if (const FT_Error e = ::FT_New_Face(lib.get(), kSealFont, 0, &rawFace); e != 0) {
        return Error::make("appearance.font_unreadable",
                           std::string("cannot load the font ") + kSealFont,
                           static_cast<unsigned long>(e));
    }
    FtFacePtr face(rawFace);
    std::vector<FT_UInt> glyphs;
    for (char32_t cp : cps) {
        const FT_UInt g = ::FT_Get_Char_Index(face.get(), cp);
        if (g == 0 && cp != U' ') {
            char buf[16];
            std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(cp));
            return Error::make("appearance.glyph_missing",
                               std::string("the seal font has no glyph for ") + buf);
        }
        glyphs.push_back(g);
    }

    // Measure at 100 px, unhinted, then scale: the advances and the tallest ink above the
    // baseline (Vietnamese capitals carry their marks above the cap height).
    constexpr FT_Int32 kLoad = FT_LOAD_NO_HINTING;
    ::FT_Set_Transform(face.get(), nullptr, nullptr);
    if (::FT_Set_Pixel_Sizes(face.get(), 0, 100) != 0) {
        return Error::make("appearance.font_unreadable", "cannot size the seal font");
    }
    double advance100 = 0;
    double top100 = 1;
    for (FT_UInt g : glyphs) {
        if (::FT_Load_Glyph(face.get(), g, kLoad) != 0) {
            return Error::make("appearance.font_unreadable", "cannot load a glyph of the font");
        }
        advance100 += face->glyph->advance.x / 64.0;
        const double top = (face->glyph->metrics.horiBearingY) / 64.0;  // ink above the baseline
        top100 = std::max(top100, top);
    }
    // Fitted on the lowest baseline the text can have, so that it fits wherever it sits.
    const double arcLength = arc.maxAngle * (arc.middle - arc.maxHeight / 2);
    const double spaces = arc.letterSpace * static_cast<double>(glyphs.size());
    double px = 100 * arc.maxHeight / top100;
    px = std::min(px, 100 * std::max(arcLength - spaces, 1.0) / advance100);
    const auto pxSize = static_cast<FT_UInt>(std::max(6.0, std::floor(px)));
    if (::FT_Set_Pixel_Sizes(face.get(), 0, pxSize) != 0) {
        return Error::make("appearance.font_unreadable", "cannot size the seal font");
    }

    std::vector<double> widths;
    double natural = 0;
    for (FT_UInt g : glyphs) {
        if (::FT_Load_Glyph(face.get(), g, kLoad) != 0) {
            return Error::make("appearance.font_unreadable", "cannot load a glyph of the font");
        }
        widths.push_back(face->glyph->advance.x / 64.0);
        natural += widths.back();
    }
    // Letters spaced out to fill the arc up to fillAngle, as a seal engraver does, but never
    // more than a third of the size apart.
    const double baseline = arc.middle - top100 * pxSize / 100 / 2;
    double space = arc.letterSpace;
    if (glyphs.size() > 1) {
        const double wanted =
            (arc.fillAngle * baseline - natural) / static_cast<double>(glyphs.size() - 1);
        space = std::clamp(wanted, arc.letterSpace, pxSize / 3.0);
    }
    const double total = natural + space * static_cast<double>(glyphs.size() - 1);

    // Angles clockwise from the top; a glyph's origin is on the baseline circle, half its
    // advance before the middle of its slice, its x axis along the tangent.
    double along = -total / 2;
    for (std::size_t i = 0; i < glyphs.size(); ++i) {
        const double half = widths[i] / 2;
        const double phi = (along + half) / baseline;
        along += widths[i] + space;
        const double cs = std::cos(phi);
        const double sn = std::sin(phi);
        const double ox = arc.cx + baseline * sn - half * cs;
        const double oy = arc.cy - baseline * cs - half * sn;
        // FreeType's y axis points up: turning clockwise on screen is a negative angle there.
        FT_Matrix m;
        m.xx = static_cast<FT_Fixed>(std::lround(cs * 65536));
        m.xy = static_cast<FT_Fixed>(std::lround(sn * 65536));
        m.yx = static_cast<FT_Fixed>(std::lround(-sn * 65536));
        m.yy = static_cast<FT_Fixed>(std::lround(cs * 65536));
        const double ix = std::floor(ox);
        const double iy = std::floor(oy);
        FT_Vector delta;
        delta.x = static_cast<FT_Pos>(std::lround((ox - ix) * 64));
        delta.y = static_cast<FT_Pos>(std::lround(-(oy - iy) * 64));
        ::FT_Set_Transform(face.get(), &m, &delta);
        if (::FT_Load_Glyph(face.get(), glyphs[i], kLoad | FT_LOAD_RENDER) != 0) {
            return Error::make("appearance.font_unreadable", "cannot render a glyph of the font");
        }
        const FT_GlyphSlot slot = face->glyph;
        const FT_Bitmap& bm = slot->bitmap;
        if (bm.pixel_mode != FT_PIXEL_MODE_GRAY) {
            continue;  // an empty glyph (a space) has no grey bitmap
        }
        for (unsigned row = 0; row < bm.rows; ++row) {
            for (unsigned col = 0; col < bm.width; ++col) {
                const unsigned char v =
                    bm.buffer[static_cast<std::ptrdiff_t>(row) * bm.pitch + col];
                c.cover(static_cast<int>(ix) + slot->bitmap_left + static_cast<int>(col),
                        static_cast<int>(iy) - slot->bitmap_top + static_cast<int>(row), v / 255.0);
            }
        }
    }
    return Ok{};
}

}  // namespace

Status writeDemoSignatureImage(const std::string& path) {
    constexpr int kWidth = 600;
    constexpr int kHeight = 240;
    constexpr double kPen = 1.7;  // radius: a pen about 3 px (0.3 mm) wide at full pressure
    Canvas c(kWidth, kHeight);

    // A tall looped capital, written in one movement.
    stroke(c,
           throughPoints({{52, 186},
                          {60, 150},
                          {74, 96},
                          {92, 48},
                          {108, 30},
                          {116, 44},
                          {106, 100},
                          {96, 160},
                          {94, 192},
                          {104, 178},
                          {124, 128},
                          {148, 76},
                          {166, 52},
                          {174, 64},
                          {166, 120},
                          {162, 176},
                          {170, 186},
                          {178, 184}}),
           kPen);

    // The rest of the name: a run of slanted loops (a prolate trochoid), as a quick hand writes
    // small letters, ending in a rising tail.
    std::vector<Point> loops;
    const double turns = 4.0;
    const double tMax = turns * 2 * kPi;
    for (int k = 0; k <= 1200; ++k) {
        // From the baseline (t = -pi) up into a loop at every top (t = 0, 2 pi, ...).
        const double t = -kPi + k / 1200.0 * (tMax + kPi);
        const double height = 22 + 8 * std::sin(0.5 * t + 1);  // letters of uneven size
        const double x = 205 + 10.5 * t - 19 * std::sin(t);
        const double y = 156 - height * std::cos(t) - 6 * std::sin((t + kPi) / (tMax + kPi) * kPi);
        loops.push_back({x + (150 - y) * 0.35, y});
    }
    const Point end = loops.back();
    for (const Point& p : throughPoints(
             {end, {end.x + 14, end.y - 12}, {end.x + 32, end.y - 34}, {end.x + 46, end.y - 52}})) {
        loops.push_back(p);
    }
    stroke(c, loops, kPen);

    // The flourish underneath, from left to right with a hook back at its end.
    stroke(c,
           throughPoints({{40, 214},
                          {130, 210},
                          {250, 204},
                          {370, 194},
                          {480, 180},
                          {548, 166},
                          {566, 156},
                          {556, 150},
                          {528, 160},
                          {510, 176}}),
           kPen * 0.9);

    // Dark blue ink, as the decree asks of a handwritten signature on a scanned page.
    return signer::writePng(path, kWidth, kHeight, c.rgba(0, 40, 140), kPixelsPerMeter);
}

Status writeDemoSealImage(const std::string& path, const std::string& agencyName) {
    // 36 mm at 300 dpi is 425 px; 1 mm is 11.8 px.
    constexpr int kSize = 425;
    constexpr double kCentre = kSize / 2.0;
    Canvas c(kSize, kSize);
    ring(c, kCentre, kCentre, 194, 208);  // outer ring, 1.2 mm
    ring(c, kCentre, kCentre, 141, 146);  // inner ring, 0.4 mm
    star(c, kCentre, kCentre, 64);
    if (!agencyName.empty()) {
        // The name between the rings, over at most 300°; a small star closes the ring at the
        // bottom, between its ends.
        const ArcText arc{kCentre, kCentre, 170, 30, 300 * kPi / 180, 270 * kPi / 180, 2};
        if (Status st = drawArcText(c, agencyName, arc); !st) {
            return st;
        }
        star(c, kCentre, kCentre + 170, 11);
    }
    return signer::writePng(path, kSize, kSize, c.rgba(220, 0, 0), kPixelsPerMeter);
}

}  // namespace kyso::api
