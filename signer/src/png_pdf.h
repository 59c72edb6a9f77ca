// A decoded PNG as PDF objects: an image XObject and its soft mask.
#pragma once

#include <string>
#include <vector>

#include "kyso/signer/png_image.h"
#include "pdf_util.h"

namespace kyso::signer {

// An image with its samples already compressed (/FlateDecode): what a PDF image XObject holds.
struct EncodedImage {
    int width = 0;
    int height = 0;
    std::string rgb;    // Flate-compressed RGB samples
    std::string alpha;  // Flate-compressed alpha samples; empty when the image is opaque
    // Flate-compressed 1-bit mask (1: transparent, alpha below one half), rows padded to a
    // byte; empty when opaque. For PDF/A-1, which forbids soft masks (ISO 19005-1, 6.4).
    std::string hardMask;
};
EncodedImage encodeImage(const PngImage& image);

// The same objects as below, from an image encoded once (a seal drawn on every document).
int appendImageObjects(const EncodedImage& image, const ObjectNumbers& next,
                       std::vector<PdfObject>* out, bool hardMask = false);

// Appends to OUT an image XObject (/DeviceRGB, 8 bits, /FlateDecode) for IMAGE and, when it has
// an alpha channel, its /SMask (/DeviceGray, 8 bits, /FlateDecode), or with HARD_MASK a 1-bit
// /Mask (explicit masking, what PDF/A-1 allows). Object numbers come from NEXT. Returns the image
// XObject's object number.
int appendImageObjects(const PngImage& image, const ObjectNumbers& next,
                       std::vector<PdfObject>* out);

}  // namespace kyso::signer
