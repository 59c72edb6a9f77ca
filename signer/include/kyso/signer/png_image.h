// PNG images for visible signatures, decoded and encoded with libpng (never by hand).
//
// An image keeps its transparency: the colour samples and the alpha channel are kept apart, the
// way a PDF image XObject and its /SMask hold them. The physical size comes from the pHYs chunk,
// so an agency seal can be drawn at its real size.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "kyso/hsm/result.h"

namespace kyso::signer {

struct PngImage {
    int width = 0;   // pixels
    int height = 0;  // pixels
    // 8-bit samples, row by row from the top: width*height*3 bytes of RGB (grey and palette
    // images are expanded to RGB).
    std::string rgb;
    // 8-bit alpha, width*height bytes; empty when every pixel is opaque (no alpha channel, no
    // tRNS, or an alpha channel that is 255 everywhere).
    std::string alpha;
    // From pHYs when its unit is the metre; 0 when the image has no physical size.
    double pixelsPerMeterX = 0;
    double pixelsPerMeterY = 0;

    // The image's real size in PDF points (1/72 inch), from pHYs; nullopt without one.
    std::optional<std::pair<double, double>> sizePoints() const;
};

// The largest image accepted, in pixels (width * height): a decompression bomb is refused before
// its rows are decoded.
inline constexpr long long kMaxPngPixels = 16LL * 1024 * 1024;

// Decodes a PNG file or buffer. Any bit depth, colour type and interlacing is accepted; 16-bit
// samples are reduced to 8. Errors (the detail never names a path):
//   appearance.image_unreadable   the file cannot be read
//   appearance.image_invalid      not a PNG, truncated, or a CRC/zlib error inside
//   appearance.image_too_large    more than kMaxPngPixels pixels, or a side over 16384
Result<PngImage> readPng(const std::string& path);
Result<PngImage> decodePng(std::string_view bytes);

// Encodes 8-bit RGBA pixels (width*height*4 bytes, rows from the top) as PNG bytes with a pHYs
// chunk of `pixelsPerMeter` (0: none). Errors: image.encode (a size, pixel count or resolution
// out of range, or libpng failing). Used for QR codes served from memory.
Result<std::string> encodePng(int width, int height, std::string_view rgba, double pixelsPerMeter);

// encodePng, written to `path` whole or not at all. Errors: io.write (for every failure,
// encoding ones included). Used for the demo's images.
Status writePng(const std::string& path, int width, int height, std::string_view rgba,
                double pixelsPerMeter);

}  // namespace kyso::signer
