#include "qr.h"

#include <qrencode.h>

#include <cerrno>
#include <memory>
#include <new>
#include <string>

#include "kyso/signer/png_image.h"

namespace kyso::api {

namespace {

// The quiet zone ISO/IEC 18004 asks for; scanners may not find a symbol without it.
constexpr int kQuietModules = 4;

struct QrFree {
    void operator()(QRcode* q) const noexcept {
        hsm::secureWipe(q->data, static_cast<std::size_t>(q->width) * q->width);
        ::QRcode_free(q);
    }
};

// A buffer of secret-derived bytes, wiped however the function leaves.
struct WipedBuffer {
    std::string bytes;
    ~WipedBuffer() { hsm::secureWipe(bytes.data(), bytes.size()); }
};

}  // namespace

Result<hsm::Secret> qrPng(std::string_view text, int scale) {
    if (text.empty()) {
        return Error::make("qr.invalid", "nothing to encode in the QR code");
    }
    if (scale < 1 || scale > kMaxQrScale) {
        return Error::make("qr.invalid",
                           "the QR scale must be 1 to " + std::to_string(kMaxQrScale));
    }
    // Byte mode for the whole text: no mode switching that depends on the content.
    errno = 0;
    std::unique_ptr<QRcode, QrFree> code(
        ::QRcode_encodeData(static_cast<int>(text.size()),
                            reinterpret_cast<const unsigned char*>(text.data()), 0, QR_ECLEVEL_M));
    if (!code) {
        const int err = errno;
        if (err == ERANGE || err == EINVAL) {
            return Error::make("qr.invalid", "the text is too long for a QR code",
                               static_cast<unsigned long>(err));
        }
        throw std::bad_alloc();  // ENOMEM: as for any other allocation
    }
    const int modules = code->width;
    const int side = (modules + 2 * kQuietModules) * scale;
    WipedBuffer pixels;
    pixels.bytes.assign(static_cast<std::size_t>(side) * side * 4, static_cast<char>(0xff));
    for (int y = 0; y < modules; ++y) {
        for (int x = 0; x < modules; ++x) {
            // Bit 0 of each byte is the module's colour (1: dark); the other bits describe which
            // function pattern it belongs to.
            if ((code->data[y * modules + x] & 1) == 0) {
                continue;
            }
            for (int dy = 0; dy < scale; ++dy) {
                const std::size_t row = static_cast<std::size_t>((y + kQuietModules) * scale + dy);
                for (int dx = 0; dx < scale; ++dx) {
                    const std::size_t col =
                        static_cast<std::size_t>((x + kQuietModules) * scale + dx);
                    char* px = pixels.bytes.data() + (row * side + col) * 4;
                    px[0] = px[1] = px[2] = 0;  // black, alpha stays 255
                }
            }
        }
    }
    auto png = signer::encodePng(side, side, pixels.bytes, 0);
    if (!png) {
        return png.error();
    }
    return hsm::Secret(std::move(png).value());
}

}  // namespace kyso::api
