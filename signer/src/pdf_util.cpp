#include "pdf_util.h"

#include <zlib.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <new>

#include "kyso/hsm/encoding.h"

namespace kyso::signer {

namespace {

// Decodes UTF-8 to code points; an invalid sequence becomes U+FFFD.
std::u32string decodeUtf8(std::string_view s) {
    std::u32string out;
    for (std::size_t i = 0; i < s.size();) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        int extra = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
        if (extra < 0 || i + static_cast<std::size_t>(extra) >= s.size() + (extra == 0 ? 1 : 0)) {
            out.push_back(0xFFFD);
            ++i;
            continue;
        }
        char32_t cp = extra == 0 ? c : c & (0x3F >> extra);
        bool ok = true;
        for (int k = 1; k <= extra; ++k) {
            const unsigned char cc = static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]);
            if ((cc >> 6) != 2) {
                ok = false;
                break;
            }
            cp = (cp << 6) | (cc & 0x3F);
        }
        if (!ok || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            out.push_back(0xFFFD);
            ++i;
            continue;
        }
        out.push_back(cp);
        i += static_cast<std::size_t>(extra) + 1;
    }
    return out;
}

}  // namespace

namespace {

bool printableAscii(std::string_view s) {
    for (unsigned char c : s) {
        if (c < 0x20 || c > 0x7e) {
            return false;
        }
    }
    return true;
}

}  // namespace

std::string pdfTextBytes(std::string_view utf8) {
    if (printableAscii(utf8)) {
        return std::string(utf8);
    }
    std::string out = "\xFE\xFF";
    auto put16 = [&](unsigned v) {
        out.push_back(static_cast<char>((v >> 8) & 0xff));
        out.push_back(static_cast<char>(v & 0xff));
    };
    for (char32_t cp : decodeUtf8(utf8)) {
        if (cp >= 0x10000) {
            const unsigned v = static_cast<unsigned>(cp) - 0x10000;
            put16(0xD800 + (v >> 10));
            put16(0xDC00 + (v & 0x3FF));
        } else {
            put16(static_cast<unsigned>(cp));
        }
    }
    return out;
}

std::string pdfTextString(std::string_view utf8) {
    if (printableAscii(utf8)) {
        std::string out = "(";
        for (char c : utf8) {
            if (c == '(' || c == ')' || c == '\\') {
                out.push_back('\\');
            }
            out.push_back(c);
        }
        return out + ")";
    }
    return "<" + hsm::hexOf(pdfTextBytes(utf8), true) + ">";
}

std::string pdfDateString(std::chrono::system_clock::time_point t) {
    const std::time_t secs = std::chrono::system_clock::to_time_t(t) + 7 * 3600;
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "(D:%04d%02d%02d%02d%02d%02d+07'00')", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return buf;
}

std::string pdfStream(std::string_view dict, std::string_view data) {
    std::string s = "<<";
    s.append(dict);
    s += " /Length " + std::to_string(data.size()) + " >>\nstream\n";
    s.append(data);
    s += "\nendstream";
    return s;
}

std::string flateEncode(std::string_view data) {
    uLongf len = ::compressBound(static_cast<uLong>(data.size()));
    std::string out(len, '\0');
    const int rc = ::compress2(reinterpret_cast<Bytef*>(out.data()), &len,
                               reinterpret_cast<const Bytef*>(data.data()),
                               static_cast<uLong>(data.size()), Z_DEFAULT_COMPRESSION);
    if (rc != Z_OK) {
        // Only Z_MEM_ERROR is possible with a buffer of compressBound(): out of memory.
        throw std::bad_alloc();
    }
    out.resize(len);
    return out;
}

std::string pdfNumber(double v) {
    if (std::fabs(v) < 0.0005) {
        return "0";
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3f", v);
    std::string s = buf;
    while (s.back() == '0') {
        s.pop_back();
    }
    if (s.back() == '.') {
        s.pop_back();
    }
    return s;
}

}  // namespace kyso::signer
