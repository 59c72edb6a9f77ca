#include "visible.h"

#include <openssl/objects.h>
#include <openssl/x509.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <sstream>
#include <vector>

#include "kyso/hsm/ossl_ptr.h"

namespace kyso::api {

namespace {

// Vietnam has kept UTC+07:00 without daylight saving since 1975.
constexpr std::time_t kVietnamOffset = 7 * 3600;

std::tm vietnamCalendar(std::chrono::system_clock::time_point t) {
    const std::time_t s = std::chrono::system_clock::to_time_t(t) + kVietnamOffset;
    std::tm tm{};
    ::gmtime_r(&s, &tm);
    return tm;
}

// The UTF-8 text of the first NID entry of the certificate's subject; "" when absent.
std::string subjectEntry(const std::string& der, int nid) {
    OsslPtr<X509> x = x509FromDer(der);
    if (!x) {
        return "";
    }
    X509_NAME* name = ::X509_get_subject_name(x.get());
    const int at = ::X509_NAME_get_index_by_NID(name, nid, -1);
    if (at < 0) {
        return "";
    }
    ASN1_STRING* value = ::X509_NAME_ENTRY_get_data(::X509_NAME_get_entry(name, at));
    unsigned char* utf8 = nullptr;
    const int n = ::ASN1_STRING_to_UTF8(&utf8, value);
    if (n < 0) {
        return "";
    }
    std::string out(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(n));
    ::OPENSSL_free(utf8);
    return out;
}

std::vector<std::string> splitLines(const std::string& text) {
    std::vector<std::string> lines;
    std::stringstream in(text);
    std::string l;
    while (std::getline(in, l, '|')) {
        lines.push_back(l);
    }
    return lines;
}

// Fills the placeholders of LINE; a line whose placeholders are all empty is left out (so a
// credential without a title has no empty "title" line).
std::optional<std::string> fill(const std::string& line,
                                const std::map<std::string, std::string>& values) {
    std::string out;
    bool any = false;
    bool anyFilled = false;
    for (std::size_t i = 0; i < line.size();) {
        if (line[i] == '{') {
            const std::size_t close = line.find('}', i);
            if (close != std::string::npos) {
                const auto v = values.find(line.substr(i + 1, close - i - 1));
                if (v != values.end()) {
                    any = true;
                    anyFilled = anyFilled || !v->second.empty();
                    out += v->second;
                    i = close + 1;
                    continue;
                }
            }
        }
        out.push_back(line[i++]);
    }
    if (any && !anyFilled) {
        return std::nullopt;
    }
    return out;
}

double hexComponent(const std::string& c, std::size_t at) {
    return static_cast<double>(std::strtoul(c.substr(at, 2).c_str(), nullptr, 16)) / 255.0;
}

}  // namespace

std::string vietnamTime(std::chrono::system_clock::time_point t) {
    const std::tm tm = vietnamCalendar(t);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%02d:%02d:%02d %02d/%02d/%04d", tm.tm_hour, tm.tm_min,
                  tm.tm_sec, tm.tm_mday, tm.tm_mon + 1, tm.tm_year + 1900);
    return buf;
}

std::string vietnamIsoTime(std::chrono::system_clock::time_point t) {
    const std::tm tm = vietnamCalendar(t);
    char buf[80];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d+07:00", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return buf;
}

Result<VisibleRequest> visibleRequestOf(const std::map<std::string, std::string>& q) {
    VisibleRequest r;
    auto invalid = [](const std::string& what) { return Error::make("request.invalid", what); };
    if (auto it = q.find("rect"); it != q.end()) {
        r.rect = signer::parsePdfRect(it->second);
        if (!r.rect) {
            return invalid("rect must be x,y,w,h in points, with a positive width and height");
        }
    }
    if (auto it = q.find("page"); it != q.end()) {
        char* end = nullptr;
        const long v = std::strtol(it->second.c_str(), &end, 10);
        if (it->second.empty() || *end != '\0' || v < 1 || v > 1000000) {
            return invalid("page must be a positive integer");
        }
        r.page = static_cast<int>(v);
    }
    if (auto it = q.find("layout"); it != q.end()) {
        r.layout = signer::parseAppearanceLayout(it->second);
        if (!r.layout) {
            return invalid("layout must be image-left, image-above, image-only, text-only or seal");
        }
    }
    if (auto it = q.find("text"); it != q.end()) {
        if (it->second.size() > 1024) {
            return invalid("text is longer than 1024 bytes");
        }
        r.text = it->second;
    }
    if (auto it = q.find("fontSize"); it != q.end()) {
        char* end = nullptr;
        const double v = std::strtod(it->second.c_str(), &end);
        if (it->second.empty() || *end != '\0' || !(v >= 4 && v <= 72)) {
            return invalid("fontSize must be a number from 4 to 72");
        }
        r.fontSize = v;
    }
    if (auto it = q.find("image"); it != q.end()) {
        if (it->second != "true" && it->second != "false") {
            return invalid("image must be true or false");
        }
        r.image = it->second == "true";
    }
    if (auto it = q.find("reason"); it != q.end()) {
        r.reason = it->second;
    }
    if (auto it = q.find("location"); it != q.end()) {
        r.location = it->second;
    }
    return r;
}

std::set<std::string> overridesOf(const VisibleRequest& r) {
    std::set<std::string> o;
    if (r.layout) {
        o.insert("layout");
    }
    if (r.text) {
        o.insert("text");
    }
    if (r.fontSize) {
        o.insert("fontSize");
    }
    if (r.image) {
        o.insert("image");
    }
    return o;
}

signer::Appearance appearanceFor(const Config& config, const hsm::Credential& cred,
                                 const VisibleRequest& r,
                                 std::chrono::system_clock::time_point when, int* page) {
    static const AppearanceConfig kNone;
    const auto found = config.appearances.find(cred.id);
    const AppearanceConfig& c = found == config.appearances.end() ? kNone : found->second;
    const bool seal = cred.kind == "seal";

    signer::Appearance a;
    a.layout = seal ? signer::AppearanceLayout::Seal : signer::AppearanceLayout::ImageLeft;
    if (!c.layout.empty()) {
        a.layout = *signer::parseAppearanceLayout(c.layout);  // checked when the config was read
    }
    if (r.layout) {
        a.layout = *r.layout;
    }
    a.rect = r.rect ? r.rect : c.rect;
    *page = r.page ? *r.page : c.page > 0 ? c.page : 1;
    if (r.image.value_or(true)) {
        a.imagePath = c.image;
    }
    // 1 mm = 72 / 25.4 pt.
    a.imageWidth = c.imageWidthMm * 72.0 / 25.4;
    a.fontPath = c.font;
    a.fontSize = r.fontSize ? *r.fontSize : c.fontSize;
    if (c.textColor.size() == 7) {
        for (int i = 0; i < 3; ++i) {
            a.textColor[i] = hexComponent(c.textColor, 1 + 2 * static_cast<std::size_t>(i));
        }
    }

    const bool isoTime = a.layout == signer::AppearanceLayout::Seal;
    const std::map<std::string, std::string> values = {
        {"name", !c.name.empty() ? c.name : subjectEntry(cred.certificateDer, NID_commonName)},
        {"title", !c.title.empty() ? c.title : subjectEntry(cred.certificateDer, NID_title)},
        {"agency",
         !c.agency.empty() ? c.agency : subjectEntry(cred.certificateDer, NID_organizationName)},
        {"time", isoTime ? vietnamIsoTime(when) : vietnamTime(when)},
        {"reason", r.reason},
        {"location", r.location}};
    std::vector<std::string> templates =
        r.text            ? splitLines(*r.text)
        : !c.text.empty() ? c.text
        : seal            ? std::vector<std::string>{"{agency}", "{time}"}
                          : std::vector<std::string>{"Ký bởi: {name}", "{title}", "{agency}",
                                                     "Thời gian ký: {time}"};
    for (const auto& t : templates) {
        if (auto line = fill(t, values)) {
            a.lines.push_back(*line);
        }
    }
    return a;
}

}  // namespace kyso::api
