#include "appearance_stream.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "kyso/signer/png_image.h"
#include "pdf_font.h"
#include "png_pdf.h"

namespace kyso::signer {

const char* const kDefaultFontPath =
    "/usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf";

namespace {

// Space kept between the rectangle's edge and what is drawn in it, and between image and text.
constexpr double kPad = 2;
// Sizes tried, from the largest, when the font size is automatic.
constexpr double kMaxAutoSize = 10;
constexpr double kMinSize = 4;
constexpr double kSealFontSize = 7;
constexpr double kLineSpacing = 1.15;
// Rounding slack when a rectangle touches the page edge.
constexpr double kEpsilon = 0.01;

// An image as drawn: decoded and compressed once per file and process (an agency's seal is on
// every document it seals), and again when the file changes (size, time, inode).
struct PreparedImage {
    EncodedImage encoded;
    std::optional<std::pair<double, double>> sizePoints;
};

Result<std::shared_ptr<const PreparedImage>> preparedImage(const std::string& path) {
    struct Entry {
        struct stat st {};
        std::shared_ptr<const PreparedImage> image;
    };
    static std::mutex mu;
    static std::map<std::string, Entry> cache;
    struct stat st {};
    const bool statted = ::stat(path.c_str(), &st) == 0;
    auto same = [&](const struct stat& o) {
        return statted && o.st_ino == st.st_ino && o.st_dev == st.st_dev &&
               o.st_size == st.st_size && o.st_mtim.tv_sec == st.st_mtim.tv_sec &&
               o.st_mtim.tv_nsec == st.st_mtim.tv_nsec;
    };
    {
        std::lock_guard lk(mu);
        auto it = cache.find(path);
        if (it != cache.end() && same(it->second.st)) {
            return it->second.image;
        }
    }
    auto png = readPng(path);
    if (!png) {
        return png.error();
    }
    auto prepared = std::make_shared<PreparedImage>();
    prepared->encoded = encodeImage(*png);
    prepared->sizePoints = png->sizePoints();
    if (statted) {
        std::lock_guard lk(mu);
        cache[path] = Entry{st, prepared};
    }
    return std::shared_ptr<const PreparedImage>(std::move(prepared));
}

bool rotated(int r) {
    return r == 90 || r == 270;
}

struct Line {
    ShapedText shaped;
    double width = 0;
};

// The text block: its lines at one size.
struct TextBlock {
    std::vector<Line> lines;
    double size = 0;
    double lineHeight = 0;
    double width = 0;   // widest line
    double height = 0;  // lines * lineHeight
};

void measure(const FontSubset& font, double size, TextBlock* b) {
    b->size = size;
    b->lineHeight = kLineSpacing * (font.ascent(size) - font.descent(size));
    b->width = 0;
    for (auto& l : b->lines) {
        l.width = font.width(l.shaped, size);
        b->width = std::max(b->width, l.width);
    }
    b->height = b->lineHeight * static_cast<double>(b->lines.size());
}

// The size at which the block fits W x H: FIXED when set, else the largest from 10 pt down.
Status fitText(const FontSubset& font, double fixed, double w, double h, TextBlock* b) {
    if (b->lines.empty()) {
        return Ok{};
    }
    for (double size = fixed > 0 ? fixed : kMaxAutoSize; size >= kMinSize - 1e-9; size -= 0.5) {
        measure(font, size, b);
        if (b->width <= w + kEpsilon && b->height <= h + kEpsilon) {
            return Ok{};
        }
        if (fixed > 0) {
            break;
        }
    }
    return Error::make("appearance.too_small",
                       fixed > 0
                           ? "the text does not fit the rectangle at " + pdfNumber(fixed) + " pt"
                           : "the text does not fit the rectangle even at " + pdfNumber(kMinSize) +
                                 " pt; make it larger");
}

// Where a W x H picture goes inside BOX, aspect kept, centred.
PdfRect fitInto(double w, double h, const PdfRect& box) {
    const double s = std::min(box.w / w, box.h / h);
    const double fw = w * s;
    const double fh = h * s;
    return {box.x + (box.w - fw) / 2, box.y + (box.h - fh) / 2, fw, fh};
}

// The text operators of BLOCK inside BOX: vertically centred; left-aligned or centred.
std::string drawText(const FontSubset& font, const TextBlock& b, const PdfRect& box, bool centre,
                     const double color[3]) {
    if (b.lines.empty()) {
        return "";
    }
    std::string s =
        pdfNumber(color[0]) + " " + pdfNumber(color[1]) + " " + pdfNumber(color[2]) + " rg\n";
    const double top = box.y + (box.h + b.height) / 2;
    const double firstBaseline = top -
                                 (b.lineHeight - (font.ascent(b.size) - font.descent(b.size))) / 2 -
                                 font.ascent(b.size);
    for (std::size_t i = 0; i < b.lines.size(); ++i) {
        const Line& l = b.lines[i];
        const double x = centre ? box.x + (box.w - l.width) / 2 : box.x;
        const double y = firstBaseline - b.lineHeight * static_cast<double>(i);
        s += font.show(l.shaped, "F0", b.size, x, y) + "\n";
    }
    return s;
}

bool inside(const PdfRect& r, double w, double h) {
    return r.x >= -kEpsilon && r.y >= -kEpsilon && r.x + r.w <= w + kEpsilon &&
           r.y + r.h <= h + kEpsilon;
}

std::string rectText(const PdfRect& r) {
    return pdfNumber(r.x) + "," + pdfNumber(r.y) + "," + pdfNumber(r.w) + "," + pdfNumber(r.h);
}

}  // namespace

Status checkAppearanceFiles(const std::string& imagePath, const std::string& fontPath) {
    if (!imagePath.empty()) {
        auto png = readPng(imagePath);
        if (!png) {
            return png.error();
        }
    }
    auto face = loadFont(fontPath.empty() ? kDefaultFontPath : fontPath);
    if (!face) {
        return face.error();
    }
    return Ok{};
}

std::optional<PdfRect> parsePdfRect(std::string_view text) {
    double v[4];
    std::size_t at = 0;
    for (int i = 0; i < 4; ++i) {
        const std::size_t comma = i < 3 ? text.find(',', at) : text.size();
        if (comma == std::string_view::npos) {
            return std::nullopt;
        }
        const std::string part(text.substr(at, comma - at));
        char* end = nullptr;
        v[i] = std::strtod(part.c_str(), &end);
        if (part.empty() || end != part.c_str() + part.size() || !std::isfinite(v[i]) ||
            std::isspace(static_cast<unsigned char>(part.front()))) {
            return std::nullopt;
        }
        at = comma + 1;
    }
    if (!(v[2] > 0) || !(v[3] > 0)) {
        return std::nullopt;
    }
    return PdfRect{v[0], v[1], v[2], v[3]};
}

std::optional<AppearanceLayout> parseAppearanceLayout(std::string_view name) {
    static const std::pair<const char*, AppearanceLayout> names[] = {
        {"image-left", AppearanceLayout::ImageLeft},
        {"image-above", AppearanceLayout::ImageAbove},
        {"image-only", AppearanceLayout::ImageOnly},
        {"text-only", AppearanceLayout::TextOnly},
        {"seal", AppearanceLayout::Seal}};
    for (const auto& [n, l] : names) {
        if (name == n) {
            return l;
        }
    }
    return std::nullopt;
}

double PageGeometry::displayedWidth() const {
    return rotated(rotate) ? ury - lly : urx - llx;
}

double PageGeometry::displayedHeight() const {
    return rotated(rotate) ? urx - llx : ury - lly;
}

PdfRect PageGeometry::toUser(const PdfRect& d) const {
    const double w = urx - llx;
    const double h = ury - lly;
    // The displayed rectangle's corners, turned back by the page's rotation (clockwise when
    // displayed) into offsets from the crop box's lower-left corner.
    double x0 = 0;
    double y0 = 0;
    double x1 = 0;
    double y1 = 0;
    switch (rotate) {
        case 90:
            x0 = w - d.y - d.h, y0 = d.x, x1 = w - d.y, y1 = d.x + d.w;
            break;
        case 180:
            x0 = w - d.x - d.w, y0 = h - d.y - d.h, x1 = w - d.x, y1 = h - d.y;
            break;
        case 270:
            x0 = d.y, y0 = h - d.x - d.w, x1 = d.y + d.h, y1 = h - d.x;
            break;
        default:
            x0 = d.x, y0 = d.y, x1 = d.x + d.w, y1 = d.y + d.h;
            break;
    }
    return {llx + x0, lly + y0, x1 - x0, y1 - y0};
}

PdfRect PageGeometry::toDisplayed(const PdfRect& u) const {
    const double w = urx - llx;
    const double h = ury - lly;
    const double x = u.x - llx;
    const double y = u.y - lly;
    switch (rotate) {
        case 90:
            return {y, w - x - u.w, u.h, u.w};
        case 180:
            return {w - x - u.w, h - y - u.h, u.w, u.h};
        case 270:
            return {h - y - u.h, x, u.h, u.w};
        default:
            return {x, y, u.w, u.h};
    }
}

Result<BuiltAppearance> buildAppearance(const Appearance& a, const PageGeometry& page,
                                        const std::optional<PdfRect>& fieldRect,
                                        const ObjectNumbers& next, std::vector<PdfObject>* out,
                                        bool hardMasks) {
    // The image, and its size when it is drawn at its real size.
    std::shared_ptr<const PreparedImage> image;
    double imageW = 0;
    double imageH = 0;
    if (!a.imagePath.empty()) {
        auto prepared = preparedImage(a.imagePath);
        if (!prepared) {
            return prepared.error();
        }
        image = std::move(*prepared);
        const auto& real = image->sizePoints;
        // Non-square pixels keep their aspect through the physical size.
        const double aspect =
            real ? real->second / real->first
                 : static_cast<double>(image->encoded.height) / image->encoded.width;
        if (a.imageWidth > 0) {
            imageW = a.imageWidth;
        } else if (real) {
            imageW = real->first;
        } else if (a.layout == AppearanceLayout::Seal) {
            return Error::make("appearance.image_size_unknown",
                               "the seal image has no physical size (no pHYs chunk): set its "
                               "width in the appearance configuration (imageWidthMm)");
        } else {
            imageW = image->encoded.width;
        }
        imageH = imageW * aspect;
    }

    auto face = loadFont(a.fontPath.empty() ? kDefaultFontPath : a.fontPath);
    if (!face) {
        return face.error();
    }
    FontSubset font(*face);
    TextBlock text;
    for (const auto& l : a.lines) {
        if (l.empty()) {
            continue;
        }
        auto shaped = font.shape(l);
        if (!shaped) {
            return shaped.error();
        }
        text.lines.push_back({std::move(*shaped), 0});
    }

    AppearanceLayout layout = a.layout;
    if (layout != AppearanceLayout::Seal) {
        if (!image && layout != AppearanceLayout::TextOnly) {
            layout = AppearanceLayout::TextOnly;
        } else if (text.lines.empty() && image) {
            layout = AppearanceLayout::ImageOnly;
        }
    }

    // The rectangle, as displayed.
    const double pageW = page.displayedWidth();
    const double pageH = page.displayedHeight();
    PdfRect rect;
    if (a.rect) {
        rect = *a.rect;
    } else if (fieldRect) {
        rect = page.toDisplayed(*fieldRect);
    } else if (layout == AppearanceLayout::Seal && a.overlapLeftThirdOf) {
        if (!image) {
            return Error::make("appearance.no_rect", "a seal placed by its image needs an image");
        }
        measure(font, a.fontSize > 0 ? a.fontSize : kSealFontSize, &text);
        const PdfRect& anchor = *a.overlapLeftThirdOf;
        const double imageX = anchor.x + anchor.w / 3 - imageW;
        const double imageY = anchor.y + anchor.h / 2 - imageH / 2;
        const double w = std::max(imageW, text.width) + 2 * kPad;
        const double h = imageH + (text.lines.empty() ? 0 : text.height + kPad) + 2 * kPad;
        rect = {imageX + imageW / 2 - w / 2, imageY + imageH + kPad - h, w, h};
    } else {
        return Error::make("appearance.no_rect",
                           "a visible signature needs a rectangle (rect=x,y,w,h) or a field");
    }
    if (!(rect.w > 0) || !(rect.h > 0) || !std::isfinite(rect.x) || !std::isfinite(rect.y) ||
        !std::isfinite(rect.w) || !std::isfinite(rect.h)) {
        return Error::make("appearance.rect_invalid",
                           "the rectangle needs a positive width and height");
    }
    if (!inside(rect, pageW, pageH)) {
        return Error::make("appearance.outside_page",
                           "the appearance (" + rectText(rect) + ") is not wholly on the page (" +
                               pdfNumber(pageW) + " x " + pdfNumber(pageH) + " pt as displayed)");
    }

    // The layout inside the rectangle, in the form's own space [0 0 w h].
    const PdfRect inner{kPad, kPad, rect.w - 2 * kPad, rect.h - 2 * kPad};
    if (inner.w <= 0 || inner.h <= 0) {
        return Error::make("appearance.too_small", "the rectangle is too small to draw in");
    }
    std::optional<PdfRect> imageBox;  // in the form's space
    PdfRect textBox = inner;
    bool centreText = false;
    switch (layout) {
        case AppearanceLayout::ImageLeft: {
            const double split = inner.w * 0.4;
            imageBox = fitInto(imageW, imageH, {inner.x, inner.y, split - kPad, inner.h});
            textBox = {inner.x + split, inner.y, inner.w - split, inner.h};
            break;
        }
        case AppearanceLayout::ImageAbove: {
            const double split = inner.h * 0.45;
            imageBox = fitInto(imageW, imageH,
                               {inner.x, inner.y + split + kPad, inner.w, inner.h - split - kPad});
            textBox = {inner.x, inner.y, inner.w, split};
            centreText = true;
            break;
        }
        case AppearanceLayout::ImageOnly:
            imageBox = fitInto(imageW, imageH, inner);
            break;
        case AppearanceLayout::TextOnly:
            break;
        case AppearanceLayout::Seal: {
            if (image) {
                if (imageW > inner.w + kEpsilon || imageH > inner.h + kEpsilon) {
                    return Error::make("appearance.too_small",
                                       "the seal image (" + pdfNumber(imageW) + " x " +
                                           pdfNumber(imageH) +
                                           " pt at its real size) does not fit the rectangle");
                }
                imageBox = PdfRect{inner.x + (inner.w - imageW) / 2, inner.y + inner.h - imageH,
                                   imageW, imageH};
                textBox = {inner.x, inner.y, inner.w, std::max(0.0, inner.h - imageH - kPad)};
            }
            centreText = true;
            break;
        }
    }
    if (layout == AppearanceLayout::Seal) {
        if (auto s = fitText(font, a.fontSize > 0 ? a.fontSize : kSealFontSize, textBox.w,
                             textBox.h, &text);
            !s) {
            return s.error();
        }
    } else if (auto s = fitText(font, a.fontSize, textBox.w, textBox.h, &text); !s) {
        return s.error();
    }

    BuiltAppearance built;
    built.displayedRect = rect;
    built.userRect = page.toUser(rect);

    std::string resources;
    std::string content;
    if (image && imageBox) {
        const int imageNum = appendImageObjects(image->encoded, next, out, hardMasks);
        resources += "/XObject << /Im0 " + std::to_string(imageNum) + " 0 R >> ";
        content += "q " + pdfNumber(imageBox->w) + " 0 0 " + pdfNumber(imageBox->h) + " " +
                   pdfNumber(imageBox->x) + " " + pdfNumber(imageBox->y) + " cm /Im0 Do Q\n";
        built.imageRect =
            PdfRect{rect.x + imageBox->x, rect.y + imageBox->y, imageBox->w, imageBox->h};
    }
    if (!text.lines.empty()) {
        auto fontNum = font.embed(next, out);
        if (!fontNum) {
            return fontNum.error();
        }
        resources += "/Font << /F0 " + std::to_string(*fontNum) + " 0 R >> ";
        content += drawText(font, text, textBox, centreText, a.textColor);
    }

    // The form is drawn upright as displayed: its matrix turns it against the page's rotation.
    std::string matrix;
    switch (page.rotate) {
        case 90:
            matrix = "0 1 -1 0 0 0";
            break;
        case 180:
            matrix = "-1 0 0 -1 0 0";
            break;
        case 270:
            matrix = "0 -1 1 0 0 0";
            break;
        default:
            matrix = "1 0 0 1 0 0";
            break;
    }
    built.formNum = next();
    out->push_back(
        {built.formNum, pdfStream("/Type /XObject /Subtype /Form /BBox [0 0 " + pdfNumber(rect.w) +
                                      " " + pdfNumber(rect.h) + "] /Matrix [" + matrix +
                                      "] /Resources << " + resources + ">> /Filter /FlateDecode",
                                  flateEncode(content))});
    return built;
}

}  // namespace kyso::signer
