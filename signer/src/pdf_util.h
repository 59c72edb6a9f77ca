// Small PDF serialisation helpers for the objects we write ourselves.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace kyso::signer {

// A PDF text string: a literal "(...)" for printable ASCII, otherwise UTF-16BE with a BOM in
// hex, so Vietnamese names survive every reader (ISO 32000-1, 7.9.2.2).
std::string pdfTextString(std::string_view utf8);

// A PDF date "(D:YYYYMMDDHHmmSS+07'00')" in Vietnam time (UTC+07:00, no daylight saving).
std::string pdfDateString(std::chrono::system_clock::time_point t);

}  // namespace kyso::signer
