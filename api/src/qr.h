// QR codes for authenticator apps: text encoded with libqrencode, drawn black on white and
// written as PNG by the signer's encoder (libpng). Private to the service.
#pragma once

#include <string_view>

#include "kyso/hsm/result.h"
#include "kyso/hsm/secret.h"

namespace kyso::api {

// The largest scale accepted: a version-40 symbol at 32 pixels a module is 5,952 pixels wide.
inline constexpr int kMaxQrScale = 32;

// Encodes `text` in byte mode at error-correction level M (about 15% of the symbol may be lost)
// as a black-on-white QR code with the standard quiet zone of 4 modules on every side, each
// module `scale` x `scale` pixels. The PNG carries `text` (for an otpauth:// URI, the TOTP
// secret), so it comes back as a Secret and the module grid and pixel buffer made on the way are
// wiped; libpng's and zlib's internal buffers are not.
// Errors (the detail never quotes the text):
//   qr.invalid    empty text, a scale outside 1..kMaxQrScale, or more than a QR code holds
//                 (2,331 bytes at level M)
//   image.encode  the PNG encoder failed
Result<hsm::Secret> qrPng(std::string_view text, int scale = 8);

}  // namespace kyso::api
