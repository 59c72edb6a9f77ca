// The demo's two PNG images, drawn here rather than shipped: an officer's handwritten signature
// and an agency's round red seal (Decree 30/2020: the seal is printed in red and overlaps the
// signature's left third). Both are deterministic: the same bytes on every run.
#pragma once

#include <string>

#include "kyso/hsm/result.h"

namespace kyso::api {

// A 600x240 px signature at 300 dpi (51x20 mm): dark blue anti-aliased pen strokes on a fully
// transparent background. Writes PATH whole or not at all. Errors: io.write.
Status writeDemoSignatureImage(const std::string& path);

// A round seal 36 mm across (425x425 px with pHYs at 300 dpi, so about 102 pt): a thick outer
// ring, a thin inner ring, a five-pointed star in the centre and AGENCYNAME (UTF-8, e.g.
// "SỞ THÔNG TIN VÀ TRUYỀN THÔNG") around the ring between them, in red on a transparent
// background. An empty name leaves the band empty; a long one is set smaller to fit. The text
// uses DejaVu Sans Bold (fonts-dejavu-core). Writes PATH whole or not at all. Errors: io.write;
// appearance.font_unreadable when the font cannot be loaded (only with a name);
// appearance.text_invalid for a name that is not UTF-8; appearance.glyph_missing when the font
// has no glyph for one of its characters.
Status writeDemoSealImage(const std::string& path, const std::string& agencyName);

}  // namespace kyso::api
