// Visible signatures: what a signature looks like on the page (Decree 30/2020, Appendix I).
//
// An appearance is a form XObject in the signature widget: an image (a PNG with its alpha channel
// kept as a soft mask) and lines of text in an embedded subset of a TrueType font with a
// ToUnicode map, so Vietnamese renders with every diacritic and extracts exactly.
//
// Coordinates are those of the page as the reader sees it: points, origin at the lower-left
// corner of the page's crop box after its /Rotate, x to the right, y up. The widget's /Rect is
// computed in the page's own space and the appearance is turned with the page, so it stands
// upright on a rotated page. A rectangle that is not wholly on the page is an error.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kyso/hsm/result.h"

namespace kyso::signer {

struct PdfRect {
    double x = 0;
    double y = 0;
    double w = 0;
    double h = 0;
};

enum class AppearanceLayout {
    ImageLeft,   // the image in the left 40 %, the text beside it
    ImageAbove,  // the image in the upper part, the text centred below it
    ImageOnly,   // the image fills the rectangle (aspect kept)
    TextOnly,    // the text fills the rectangle
    Seal,        // the image at its real size, the text centred below it (agency e-seal)
};

struct Appearance {
    AppearanceLayout layout = AppearanceLayout::ImageLeft;
    // Where, on PadesOptions::page: a rectangle, or the seal's anchor (below), or, when signing
    // into an existing field, nothing (the field's own rectangle).
    std::optional<PdfRect> rect;
    // Seal layout without a rect: the rectangle is computed so that the image's right third
    // overlaps the left third of this rectangle (the officer's signature image), centred on it
    // vertically (Decree 30/2020, Appendix I: the seal covers about a third of the signature
    // image, on its left).
    std::optional<PdfRect> overlapLeftThirdOf;
    // A PNG file (empty: no image). Its size: for the seal layout, imageWidth points when set,
    // else the PNG's physical size (pHYs); the other layouts fit it to its box.
    std::string imagePath;
    double imageWidth = 0;
    // Lines of text, top to bottom (UTF-8); empty lines are dropped.
    std::vector<std::string> lines;
    std::string fontPath;
    // Points; 0: the largest size from 10 down to 4 at which every line fits (7 for the seal).
    double fontSize = 0;
    // Text colour, RGB in 0..1.
    double textColor[3] = {0, 0, 0};
};

// Loads IMAGEPATH (when not empty) and the font FONTPATH (empty: the default font), as a visible
// signature would: for a configuration to be checked when it is read, not at the first request.
Status checkAppearanceFiles(const std::string& imagePath, const std::string& fontPath);

// "x,y,w,h" (points, finite numbers, w and h positive); nullopt otherwise.
std::optional<PdfRect> parsePdfRect(std::string_view text);
// "image-left", "image-above", "image-only", "text-only", "seal".
std::optional<AppearanceLayout> parseAppearanceLayout(std::string_view name);

// Errors of visible signatures (codes):
//   appearance.outside_page      the rectangle is not wholly on the page
//   appearance.rect_invalid      a width or height that is not positive
//   appearance.too_small         the text (at 4 pt) or the seal's image does not fit
//   appearance.image_size_unknown  a seal image without pHYs and without imageWidth
//   appearance.no_rect           no rectangle, no anchor and no field rectangle to draw in
// and those of png_image.h and the font (appearance.font_*, appearance.glyph_missing).

}  // namespace kyso::signer
