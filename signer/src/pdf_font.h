// Text in visible signatures: a TrueType font shaped with HarfBuzz and embedded as a subset.
//
// The font is a Type 0 font over a CIDFontType2 (Identity-H, CID = glyph id of the subset) with a
// ToUnicode CMap, so Vietnamese text ("Nguyễn Văn An", "Ủy ban nhân dân tỉnh") renders with every
// diacritic in any reader and text extraction (pdftotext) gives back the exact characters.
//
// Use: loadFont() once (cached per path for the process), then per appearance one FontSubset:
// shape() every line, embed() once, then show() each line into the content stream.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kyso/hsm/result.h"
#include "pdf_util.h"

namespace kyso::signer {

// A font file loaded and ready to shape; immutable, shared between threads.
class FontFace;

// Loads a TrueType font (glyf outlines; a .ttf, or face 0 of a .ttc). Cached by path: the second
// call returns the same face. Errors (the detail names the file's base name, not its directory):
//   appearance.font_unreadable    the file cannot be read
//   appearance.font_unsupported   not a TrueType font with glyf outlines (e.g. CFF .otf)
Result<std::shared_ptr<const FontFace>> loadFont(const std::string& path);

struct ShapedGlyph {
    std::uint32_t gid = 0;     // glyph id in the original font
    std::int32_t advance = 0;  // font units
    std::int32_t xOffset = 0;  // font units
    std::int32_t yOffset = 0;  // font units
    // The UTF-8 text of the glyph's cluster, on the cluster's first glyph; empty on the others.
    std::string text;
};

struct ShapedText {
    std::vector<ShapedGlyph> glyphs;
    std::int32_t advance = 0;  // sum of the glyphs' advances, font units
};

// The glyphs one appearance uses, embedded once as a subset.
class FontSubset {
  public:
    explicit FontSubset(std::shared_ptr<const FontFace> face);
    ~FontSubset();
    FontSubset(FontSubset&&) noexcept;
    FontSubset& operator=(FontSubset&&) noexcept;

    // Shapes one line, left to right (no line breaking: the caller splits lines), and records
    // its glyphs for the subset. Text in NFD is composed where the font has the precomposed
    // glyph. Errors: appearance.glyph_missing, naming the first character (as U+XXXX and
    // itself) that the font has no glyph for; appearance.text_invalid for invalid UTF-8.
    // Control characters without a glyph (tab, line feed) show nothing. After embed(), a text
    // needing a glyph outside the subset fails with appearance.font_subset.
    Result<ShapedText> shape(std::string_view utf8);

    // Metrics in points for a font size in points.
    double width(const ShapedText& text, double size) const;
    double ascent(double size) const;   // above the baseline, > 0
    double descent(double size) const;  // below the baseline, < 0

    // Subsets the font to the glyphs shape() recorded (plus .notdef) and appends to OUT the
    // Type0 font dictionary and what it refers to (CIDFontType2 with /W, FontDescriptor with a
    // subset name "ABCDEF+PostScriptName", FontFile2, ToUnicode), numbered by NEXT. Returns the
    // Type0 dictionary's object number. Call once, after every shape(). Errors:
    // appearance.font_subset when HarfBuzz cannot subset the font, or on a second call.
    Result<int> embed(const ObjectNumbers& next, std::vector<PdfObject>* out);

    // Content-stream operators showing TEXT (from shape() on this subset) with its baseline
    // origin at (x, y) in the current user space, in font resource /RESOURCE at SIZE points:
    // "BT /RESOURCE SIZE Tf ... ET" with Identity-H glyph strings and TJ adjustments where an
    // advance differs from the glyph's width. Only after embed(). RESOURCE is given without its
    // slash ("F0"). A cluster whose text the ToUnicode CMap cannot give (its glyph stands for
    // other text elsewhere, e.g. "<" drawing "≮") is wrapped in a /Span with /ActualText.
    std::string show(const ShapedText& text, std::string_view resource, double size, double x,
                     double y) const;

  private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

}  // namespace kyso::signer
