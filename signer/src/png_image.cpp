// PNG decoding and encoding with libpng.
//
// libpng reports errors by longjmp out of its error callback. No C++ object with a destructor
// may live in a frame that such a jump crosses, and no exception may cross libpng's C frames. So
// every libpng call runs inside a small function (readHeader, readRows, encode) that holds only
// trivial locals and keeps its state behind a pointer to a struct owned by the caller; buffers
// are allocated by the caller between two such calls, never inside one.
#include "kyso/signer/png_image.h"

#include <fcntl.h>
#include <png.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <csetjmp>
#include <cstring>
#include <new>
#include <vector>

#include "output_file.h"
#include "png_pdf.h"

namespace kyso::signer {

namespace {

// A side over this is refused by libpng itself (png_set_user_limits), while reading IHDR.
constexpr png_uint_32 kMaxPngSide = 16384;
// Memory libpng may allocate for one ancillary chunk; the chunks that can decompress to much
// more (iCCP, text) are skipped anyway.
constexpr png_alloc_size_t kMaxChunkBytes = 8u * 1024 * 1024;
// No valid image within kMaxPngPixels needs a larger file (16-bit RGBA, stored without
// compression, is 128 MiB): a larger file is refused before it is read into memory.
constexpr long long kMaxPngFileBytes = 256LL * 1024 * 1024;

// Everything the libpng callbacks touch; owned by the caller of the libpng calls.
struct ReadContext {
    png_structp png = nullptr;
    png_infop info = nullptr;
    const unsigned char* data = nullptr;
    std::size_t size = 0;
    std::size_t pos = 0;
    bool overUserLimit = false;  // libpng warned that IHDR exceeds png_set_user_limits
    char message[200] = {};      // libpng's last error message (never a path: we give none)
    // The header, once read and transformed.
    png_uint_32 width = 0;
    png_uint_32 height = 0;
    int channels = 0;
    int bitDepth = 0;
    std::size_t rowBytes = 0;
    png_uint_32 ppmX = 0;
    png_uint_32 ppmY = 0;
    bool hasPhys = false;
};

void copyMessage(char (&dst)[200], const char* msg) {
    std::strncpy(dst, msg != nullptr ? msg : "", sizeof dst - 1);
    dst[sizeof dst - 1] = '\0';
}

extern "C" void onPngError(png_structp png, png_const_charp msg) {
    auto* ctx = static_cast<ReadContext*>(::png_get_error_ptr(png));
    copyMessage(ctx->message, msg);
    ::png_longjmp(png, 1);
}

extern "C" void onPngWarning(png_structp png, png_const_charp msg) {
    // png_check_IHDR warns "Image width exceeds user limit in IHDR" (or height) and then fails
    // with a generic "Invalid IHDR data": the warning is what tells a large image apart.
    auto* ctx = static_cast<ReadContext*>(::png_get_error_ptr(png));
    if (msg != nullptr && std::strstr(msg, "exceeds user limit") != nullptr) {
        ctx->overUserLimit = true;
    }
}

extern "C" void readFromBuffer(png_structp png, png_bytep out, png_size_t n) {
    auto* ctx = static_cast<ReadContext*>(::png_get_io_ptr(png));
    if (ctx->size - ctx->pos < n) {
        ::png_error(png, "truncated file");
    }
    std::memcpy(out, ctx->data + ctx->pos, n);
    ctx->pos += n;
}

// Reads up to the first IDAT, sets the transformations that turn any PNG into 8-bit RGB or
// RGBA, and fills ctx's header fields. False after a libpng error (ctx->message says which).
bool readHeader(ReadContext* ctx) {
    if (setjmp(png_jmpbuf(ctx->png)) != 0) {
        return false;
    }
    png_structp png = ctx->png;
    png_infop info = ctx->info;
    ::png_set_user_limits(png, kMaxPngSide, kMaxPngSide);
    ::png_set_chunk_malloc_max(png, kMaxChunkBytes);
    // A damaged ancillary chunk is an error too: a seal whose pHYs is corrupt must not be drawn
    // at some other size.
    ::png_set_crc_action(png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
    // Chunks we never use, and the ones among them that can decompress to a lot of memory.
    static const png_byte kSkipped[] = "iCCP\0zTXt\0iTXt\0tEXt\0sPLT\0eXIf\0";
    ::png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, kSkipped, 6);
    ::png_set_read_fn(png, ctx, readFromBuffer);
    ::png_read_info(png, info);

    const int colorType = ::png_get_color_type(png, info);
    const int bitDepth = ::png_get_bit_depth(png, info);
    if (colorType == PNG_COLOR_TYPE_PALETTE) {
        ::png_set_palette_to_rgb(png);
    }
    if (colorType == PNG_COLOR_TYPE_GRAY && bitDepth < 8) {
        ::png_set_expand_gray_1_2_4_to_8(png);
    }
    if (::png_get_valid(png, info, PNG_INFO_tRNS) != 0) {
        ::png_set_tRNS_to_alpha(png);
    }
    if (bitDepth == 16) {
        ::png_set_scale_16(png);  // rounds, where png_set_strip_16 truncates
    }
    if (colorType == PNG_COLOR_TYPE_GRAY || colorType == PNG_COLOR_TYPE_GRAY_ALPHA) {
        ::png_set_gray_to_rgb(png);
    }
    ::png_set_interlace_handling(png);
    ::png_read_update_info(png, info);

    ctx->width = ::png_get_image_width(png, info);
    ctx->height = ::png_get_image_height(png, info);
    ctx->channels = ::png_get_channels(png, info);
    ctx->bitDepth = ::png_get_bit_depth(png, info);
    ctx->rowBytes = ::png_get_rowbytes(png, info);
    int unit = 0;
    if (::png_get_pHYs(png, info, &ctx->ppmX, &ctx->ppmY, &unit) != 0) {
        ctx->hasPhys = unit == PNG_RESOLUTION_METER;
    }
    return true;
}

// Decodes every row into ROWS (pointers into a buffer the caller allocated), then reads up to
// IEND so that a damaged or missing end is noticed. False after a libpng error.
bool readRows(ReadContext* ctx, png_bytepp rows) {
    if (setjmp(png_jmpbuf(ctx->png)) != 0) {
        return false;
    }
    ::png_read_image(ctx->png, rows);
    ::png_read_end(ctx->png, nullptr);
    return true;
}

// Owns the libpng read structures.
class PngReader {
  public:
    explicit PngReader(ReadContext* ctx) : m_ctx(ctx) {
        ctx->png = ::png_create_read_struct(PNG_LIBPNG_VER_STRING, ctx, onPngError, onPngWarning);
        if (ctx->png != nullptr) {
            ctx->info = ::png_create_info_struct(ctx->png);
        }
    }
    ~PngReader() {
        if (m_ctx->png != nullptr) {
            ::png_destroy_read_struct(&m_ctx->png, m_ctx->info != nullptr ? &m_ctx->info : nullptr,
                                      nullptr);
        }
    }
    PngReader(const PngReader&) = delete;
    PngReader& operator=(const PngReader&) = delete;
    bool ok() const { return m_ctx->png != nullptr && m_ctx->info != nullptr; }

  private:
    ReadContext* m_ctx;
};

Error invalid(const char* what) {
    return Error::make("appearance.image_invalid", std::string("not a valid PNG image: ") + what);
}

Error tooLarge() {
    return Error::make("appearance.image_too_large",
                       "the PNG image is larger than " + std::to_string(kMaxPngPixels) +
                           " pixels or " + std::to_string(kMaxPngSide) + " pixels on a side");
}

Result<PngImage> decode(std::string_view bytes) {
    if (bytes.size() < 8 ||
        ::png_sig_cmp(reinterpret_cast<png_const_bytep>(bytes.data()), 0, 8) != 0) {
        return invalid("no PNG signature");
    }
    ReadContext ctx;
    ctx.data = reinterpret_cast<const unsigned char*>(bytes.data());
    ctx.size = bytes.size();
    PngReader reader(&ctx);
    if (!reader.ok()) {
        throw std::bad_alloc();
    }
    if (!readHeader(&ctx)) {
        if (ctx.overUserLimit) {
            return tooLarge();
        }
        return invalid(ctx.message);
    }
    if (ctx.width > kMaxPngSide || ctx.height > kMaxPngSide ||
        static_cast<long long>(ctx.width) * ctx.height > kMaxPngPixels) {
        return tooLarge();
    }
    const std::size_t w = ctx.width;
    const std::size_t h = ctx.height;
    const std::size_t channels = static_cast<std::size_t>(ctx.channels);
    if (ctx.bitDepth != 8 || (channels != 3 && channels != 4) || ctx.rowBytes != w * channels) {
        // Cannot happen after the transformations above; refuse rather than misread.
        return invalid("unexpected sample layout");
    }

    std::vector<png_byte> pixels(ctx.rowBytes * h);
    std::vector<png_bytep> rows(h);
    for (std::size_t y = 0; y < h; ++y) {
        rows[y] = pixels.data() + y * ctx.rowBytes;
    }
    if (!readRows(&ctx, rows.data())) {
        return invalid(ctx.message);
    }

    PngImage image;
    image.width = static_cast<int>(w);
    image.height = static_cast<int>(h);
    if (ctx.hasPhys) {
        image.pixelsPerMeterX = ctx.ppmX;
        image.pixelsPerMeterY = ctx.ppmY;
    }
    const std::size_t n = w * h;
    if (channels == 3) {
        image.rgb.assign(reinterpret_cast<const char*>(pixels.data()), n * 3);
        return image;
    }
    image.rgb.resize(n * 3);
    image.alpha.resize(n);
    bool opaque = true;
    for (std::size_t i = 0; i < n; ++i) {
        const png_byte* p = pixels.data() + i * 4;
        image.rgb[i * 3] = static_cast<char>(p[0]);
        image.rgb[i * 3 + 1] = static_cast<char>(p[1]);
        image.rgb[i * 3 + 2] = static_cast<char>(p[2]);
        image.alpha[i] = static_cast<char>(p[3]);
        opaque = opaque && p[3] == 255;
    }
    if (opaque) {
        image.alpha.clear();
        image.alpha.shrink_to_fit();
    }
    return image;
}

// Encoding: the same discipline as reading.
struct WriteContext {
    png_structp png = nullptr;
    png_infop info = nullptr;
    std::string* out = nullptr;
    char message[200] = {};
};

extern "C" void onPngWriteError(png_structp png, png_const_charp msg) {
    auto* ctx = static_cast<WriteContext*>(::png_get_error_ptr(png));
    copyMessage(ctx->message, msg);
    ::png_longjmp(png, 1);
}

extern "C" void onPngWriteWarning(png_structp, png_const_charp) {}

extern "C" void writeToString(png_structp png, png_bytep data, png_size_t n) {
    auto* ctx = static_cast<WriteContext*>(::png_get_io_ptr(png));
    bool ok = true;
    try {
        ctx->out->append(reinterpret_cast<const char*>(data), n);
    } catch (...) {
        ok = false;
    }
    if (!ok) {
        ::png_error(png, "out of memory");
    }
}

extern "C" void flushNothing(png_structp) {}

bool encode(WriteContext* ctx, png_uint_32 width, png_uint_32 height, png_bytepp rows,
            png_uint_32 ppm) {
    if (setjmp(png_jmpbuf(ctx->png)) != 0) {
        return false;
    }
    ::png_set_write_fn(ctx->png, ctx, writeToString, flushNothing);
    ::png_set_IHDR(ctx->png, ctx->info, width, height, 8, PNG_COLOR_TYPE_RGB_ALPHA,
                   PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (ppm > 0) {
        ::png_set_pHYs(ctx->png, ctx->info, ppm, ppm, PNG_RESOLUTION_METER);
    }
    ::png_set_compression_level(ctx->png, 9);
    ::png_write_info(ctx->png, ctx->info);
    ::png_write_image(ctx->png, rows);
    ::png_write_end(ctx->png, ctx->info);
    return true;
}

class PngWriter {
  public:
    explicit PngWriter(WriteContext* ctx) : m_ctx(ctx) {
        ctx->png = ::png_create_write_struct(PNG_LIBPNG_VER_STRING, ctx, onPngWriteError,
                                             onPngWriteWarning);
        if (ctx->png != nullptr) {
            ctx->info = ::png_create_info_struct(ctx->png);
        }
    }
    ~PngWriter() {
        if (m_ctx->png != nullptr) {
            ::png_destroy_write_struct(&m_ctx->png,
                                       m_ctx->info != nullptr ? &m_ctx->info : nullptr);
        }
    }
    PngWriter(const PngWriter&) = delete;
    PngWriter& operator=(const PngWriter&) = delete;
    bool ok() const { return m_ctx->png != nullptr && m_ctx->info != nullptr; }

  private:
    WriteContext* m_ctx;
};

// How reading a whole file went.
enum class FileRead { Ok, Unreadable, TooBig };

// Reads a whole file of at most kMaxPngFileBytes into OUT; *ERR is errno on Unreadable.
FileRead readSmallFile(const std::string& path, std::string* out, int* err) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *err = errno;
        return FileRead::Unreadable;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        *err = S_ISDIR(st.st_mode) ? EISDIR : errno;
        ::close(fd);
        return FileRead::Unreadable;
    }
    if (st.st_size > kMaxPngFileBytes) {
        ::close(fd);
        return FileRead::TooBig;
    }
    out->resize(static_cast<std::size_t>(st.st_size));
    std::size_t got = 0;
    FileRead result = FileRead::Ok;
    for (;;) {
        if (got == out->size()) {
            // The file may have grown since fstat: read on in chunks, within the cap.
            if (static_cast<long long>(got) >= kMaxPngFileBytes) {
                result = FileRead::TooBig;
                break;
            }
            out->resize(got + 65536);
        }
        const ssize_t n = ::read(fd, out->data() + got, out->size() - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            *err = errno;
            result = FileRead::Unreadable;
            break;
        }
        if (n == 0) {
            break;
        }
        got += static_cast<std::size_t>(n);
    }
    ::close(fd);
    out->resize(got);
    return result;
}

}  // namespace

std::optional<std::pair<double, double>> PngImage::sizePoints() const {
    if (pixelsPerMeterX <= 0 || pixelsPerMeterY <= 0 || width <= 0 || height <= 0) {
        return std::nullopt;
    }
    constexpr double kPointsPerMeter = 72 / 0.0254;
    return std::make_pair(width / pixelsPerMeterX * kPointsPerMeter,
                          height / pixelsPerMeterY * kPointsPerMeter);
}

Result<PngImage> decodePng(std::string_view bytes) {
    try {
        return decode(bytes);
    } catch (const std::bad_alloc&) {
        return Error::make("appearance.image_too_large", "not enough memory to decode the image");
    }
}

Result<PngImage> readPng(const std::string& path) {
    std::string bytes;
    int err = 0;
    FileRead read = FileRead::Unreadable;
    try {
        read = readSmallFile(path, &bytes, &err);
    } catch (const std::bad_alloc&) {
        read = FileRead::TooBig;
    }
    switch (read) {
        case FileRead::Ok:
            return decodePng(bytes);
        case FileRead::TooBig:
            return Error::make("appearance.image_too_large",
                               "the image file is larger than " +
                                   std::to_string(kMaxPngFileBytes / (1024 * 1024)) + " MiB");
        case FileRead::Unreadable:
            break;
    }
    // errno is the cause; the detail never names the path.
    return Error::make("appearance.image_unreadable", "cannot read the image file",
                       static_cast<unsigned long>(err));
}

Result<std::string> encodePng(int width, int height, std::string_view rgba, double pixelsPerMeter) {
    if (width <= 0 || height <= 0 || width > static_cast<int>(kMaxPngSide) ||
        height > static_cast<int>(kMaxPngSide) ||
        static_cast<long long>(width) * height > kMaxPngPixels) {
        return Error::make("image.encode", "the image size is out of range");
    }
    const std::size_t w = static_cast<std::size_t>(width);
    const std::size_t h = static_cast<std::size_t>(height);
    if (rgba.size() != w * h * 4) {
        return Error::make("image.encode", "the pixel data does not match the image size");
    }
    if (!std::isfinite(pixelsPerMeter) || pixelsPerMeter < 0 || pixelsPerMeter > 2147483647.0) {
        return Error::make("image.encode", "the resolution is out of range");
    }
    std::string encoded;
    try {
        std::vector<png_bytep> rows(h);
        for (std::size_t y = 0; y < h; ++y) {
            // libpng only reads the rows it is given.
            rows[y] = reinterpret_cast<png_bytep>(const_cast<char*>(rgba.data())) + y * w * 4;
        }
        encoded.reserve(rgba.size() / 2 + 1024);
        WriteContext ctx;
        ctx.out = &encoded;
        PngWriter writer(&ctx);
        if (!writer.ok()) {
            return Error::make("image.encode", "cannot start the PNG encoder");
        }
        const auto ppm = static_cast<png_uint_32>(std::lround(pixelsPerMeter));
        if (!encode(&ctx, static_cast<png_uint_32>(w), static_cast<png_uint_32>(h), rows.data(),
                    ppm)) {
            return Error::make("image.encode",
                               std::string("cannot encode the PNG image: ") + ctx.message);
        }
    } catch (const std::bad_alloc&) {
        return Error::make("image.encode", "not enough memory to encode the image");
    }
    return encoded;
}

Status writePng(const std::string& path, int width, int height, std::string_view rgba,
                double pixelsPerMeter) {
    auto encoded = encodePng(width, height, rgba, pixelsPerMeter);
    if (!encoded) {
        // writePng's callers know one code for all of its failures.
        return Error::make("io.write", encoded.error().detail);
    }
    return writeAtomically(path, true, [&](int fd) -> Status {
        if (!writeAll(fd, encoded->data(), encoded->size())) {
            return Error::make("io.write", "cannot write the image file",
                               static_cast<unsigned long>(errno));
        }
        return Ok{};
    });
}

EncodedImage encodeImage(const PngImage& image) {
    EncodedImage e;
    e.width = image.width;
    e.height = image.height;
    e.rgb = flateEncode(image.rgb);
    if (!image.alpha.empty()) {
        e.alpha = flateEncode(image.alpha);
        const std::size_t rowBytes = (static_cast<std::size_t>(image.width) + 7) / 8;
        std::string bits(rowBytes * static_cast<std::size_t>(image.height), '\0');
        for (int y = 0; y < image.height; ++y) {
            for (int x = 0; x < image.width; ++x) {
                const auto a = static_cast<unsigned char>(
                    image.alpha[static_cast<std::size_t>(y) * image.width + x]);
                if (a < 128) {
                    bits[static_cast<std::size_t>(y) * rowBytes + x / 8] |=
                        static_cast<char>(0x80 >> (x % 8));
                }
            }
        }
        e.hardMask = flateEncode(bits);
    }
    return e;
}

int appendImageObjects(const EncodedImage& image, const ObjectNumbers& next,
                       std::vector<PdfObject>* out, bool hardMask) {
    const int imageNum = next();
    const std::string size =
        " /Width " + std::to_string(image.width) + " /Height " + std::to_string(image.height);
    std::string dict = "/Type /XObject /Subtype /Image" + size +
                       " /ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /FlateDecode";
    int maskNum = 0;
    if (!image.alpha.empty()) {
        maskNum = next();
        dict += (hardMask ? " /Mask " : " /SMask ") + std::to_string(maskNum) + " 0 R";
    }
    out->push_back({imageNum, pdfStream(dict, image.rgb)});
    if (maskNum != 0 && hardMask) {
        // A stencil: sample 1 is masked out (ISO 32000-1, 8.9.6.3).
        out->push_back({maskNum, pdfStream("/Type /XObject /Subtype /Image" + size +
                                               " /ImageMask true /BitsPerComponent 1"
                                               " /Filter /FlateDecode",
                                           image.hardMask)});
    } else if (maskNum != 0) {
        out->push_back({maskNum, pdfStream("/Type /XObject /Subtype /Image" + size +
                                               " /ColorSpace /DeviceGray /BitsPerComponent 8"
                                               " /Filter /FlateDecode",
                                           image.alpha)});
    }
    return imageNum;
}

int appendImageObjects(const PngImage& image, const ObjectNumbers& next,
                       std::vector<PdfObject>* out) {
    return appendImageObjects(encodeImage(image), next, out);
}

}  // namespace kyso::signer
