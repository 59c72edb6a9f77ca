// The PDF objects of a visible signature's appearance: the form XObject (the widget's /AP /N),
// its image XObjects and its embedded font subset, laid out in the page as the reader sees it.
#pragma once

#include <optional>
#include <vector>

#include "kyso/hsm/result.h"
#include "kyso/signer/appearance.h"
#include "pdf_util.h"

namespace kyso::signer {

// A page's crop box in its own user space, and its /Rotate (0, 90, 180 or 270).
struct PageGeometry {
    double llx = 0;
    double lly = 0;
    double urx = 0;
    double ury = 0;
    int rotate = 0;

    double displayedWidth() const;
    double displayedHeight() const;
    // Between the page as displayed (see appearance.h) and its user space.
    PdfRect toUser(const PdfRect& displayed) const;
    PdfRect toDisplayed(const PdfRect& user) const;
};

struct BuiltAppearance {
    PdfRect userRect;                  // the widget's /Rect
    PdfRect displayedRect;             // the same, as displayed
    std::optional<PdfRect> imageRect;  // where the image landed, as displayed
    int formNum = 0;                   // the form XObject for /AP << /N ... >>
};

// Lays out APPEARANCE on a page of GEOMETRY, in its rect, its anchor, or FIELDRECT (an existing
// field's /Rect in user space), and appends the objects to OUT, numbered by NEXT. HARD_MASKS:
// an image's transparency is a 1-bit /Mask, not a soft mask (for PDF/A-1 documents).
Result<BuiltAppearance> buildAppearance(const Appearance& appearance, const PageGeometry& geometry,
                                        const std::optional<PdfRect>& fieldRect,
                                        const ObjectNumbers& next, std::vector<PdfObject>* out,
                                        bool hardMasks = false);

// The font used when an appearance names none (Liberation Serif: the metrics of Times New
// Roman, which Vietnamese administrative documents use).
extern const char* const kDefaultFontPath;

}  // namespace kyso::signer
