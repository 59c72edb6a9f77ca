// Small PDF serialisation helpers for the objects we write ourselves.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>

namespace kyso::signer {

// A PDF text string: a literal "(...)" for printable ASCII, otherwise UTF-16BE with a BOM in
// hex, so Vietnamese names survive every reader (ISO 32000-1, 7.9.2.2).
std::string pdfTextString(std::string_view utf8);
// The bytes of that text string (ASCII, or a UTF-16BE BOM and UTF-16BE), for a writer that
// encrypts them.
std::string pdfTextBytes(std::string_view utf8);

// A PDF date "(D:YYYYMMDDHHmmSS+07'00')" in Vietnam time (UTC+07:00, no daylight saving).
std::string pdfDateString(std::chrono::system_clock::time_point t);

// An object we write in an incremental update: its number and its serialised body (a dictionary,
// an array, or a stream: "<<...>>\nstream\n...\nendstream").
struct PdfObject {
    int num;
    std::string body;
    int gen = 0;  // an object of the original keeps its generation when the update rewrites it
};

// Hands out the next free object number of the update being written.
using ObjectNumbers = std::function<int()>;

// A stream object's body: DICT is the inside of the stream dictionary without "<<" ">>" and
// without /Length (added here); DATA is written as is (already encoded).
std::string pdfStream(std::string_view dict, std::string_view data);

// zlib (/FlateDecode) compression of DATA at the default level.
std::string flateEncode(std::string_view data);

// A number for a content stream or an array: at most 3 decimals, no exponent, no "-0".
std::string pdfNumber(double v);

}  // namespace kyso::signer
