// A decoded PNG as PDF objects: an image XObject and its soft mask.
#pragma once

#include <vector>

#include "kyso/signer/png_image.h"
#include "pdf_util.h"

namespace kyso::signer {

// Appends to OUT an image XObject (/DeviceRGB, 8 bits, /FlateDecode) for IMAGE and, when it has
// an alpha channel, its /SMask (/DeviceGray, 8 bits, /FlateDecode). Object numbers come from
// NEXT. Returns the image XObject's object number.
int appendImageObjects(const PngImage& image, const ObjectNumbers& next,
                       std::vector<PdfObject>* out);

}  // namespace kyso::signer
