// Fonts for visible signatures: HarfBuzz loads, shapes and subsets; this file only writes the
// PDF objects around the subset (ISO 32000-1, 9.7 Composite Fonts, 9.10 ToUnicode).
#include "pdf_font.h"

#include <hb-ot.h>
#include <hb-subset.h>
#include <hb.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <mutex>
#include <new>
#include <optional>
#include <set>
#include <utility>

namespace kyso::signer {

namespace {

// One owning pointer per HarfBuzz object type.
template <typename T, void (*Destroy)(T*)>
struct HbDeleter {
    void operator()(T* p) const noexcept { Destroy(p); }
};
using HbBlob = std::unique_ptr<hb_blob_t, HbDeleter<hb_blob_t, ::hb_blob_destroy>>;
using HbFace = std::unique_ptr<hb_face_t, HbDeleter<hb_face_t, ::hb_face_destroy>>;
using HbFont = std::unique_ptr<hb_font_t, HbDeleter<hb_font_t, ::hb_font_destroy>>;
using HbBuffer = std::unique_ptr<hb_buffer_t, HbDeleter<hb_buffer_t, ::hb_buffer_destroy>>;
using HbSubsetInput =
    std::unique_ptr<hb_subset_input_t, HbDeleter<hb_subset_input_t, ::hb_subset_input_destroy>>;
using HbSubsetPlan =
    std::unique_ptr<hb_subset_plan_t, HbDeleter<hb_subset_plan_t, ::hb_subset_plan_destroy>>;

std::string baseName(const std::string& path) {
    const auto slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool hasTable(hb_face_t* face, hb_tag_t tag) {
    HbBlob blob(::hb_face_reference_table(face, tag));
    return ::hb_blob_get_length(blob.get()) > 0;
}

int readInt16(const char* p) {
    return static_cast<std::int16_t>(static_cast<std::uint16_t>(
        (static_cast<unsigned char>(p[0]) << 8) | static_cast<unsigned char>(p[1])));
}

// A name table entry in UTF-8 (empty when the font has none).
std::string nameEntry(hb_face_t* face, hb_ot_name_id_t id) {
    unsigned size = ::hb_ot_name_get_utf8(face, id, HB_LANGUAGE_INVALID, nullptr, nullptr);
    if (size == 0) {
        return {};
    }
    std::string s(size + 1, '\0');
    unsigned inOut = size + 1;
    ::hb_ot_name_get_utf8(face, id, HB_LANGUAGE_INVALID, &inOut, s.data());
    s.resize(inOut);
    return s;
}

// A PostScript name reduced to characters that need no escaping in a PDF name and fit, with the
// "ABCDEF+" subset prefix, in the 127-byte name limit of PDF 1.x readers.
std::string sanitisePsName(const std::string& name) {
    std::string out;
    for (char c : name) {
        const bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                          (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
        if (keep) {
            out.push_back(c);
        }
    }
    if (out.size() > 100) {
        out.resize(100);
    }
    return out;
}

// Strict UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF). Returns the
// code points with their byte offsets, or the offset of the first invalid byte.
struct DecodedText {
    std::u32string cps;
    std::vector<std::size_t> offsets;
    std::optional<std::size_t> badByte;
};

DecodedText decodeUtf8Strict(std::string_view s) {
    DecodedText d;
    for (std::size_t i = 0; i < s.size();) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        std::size_t len = 0;
        char32_t cp = 0;
        char32_t min = 0;  // the smallest code point of that length: shorter is overlong
        if (c < 0x80) {
            len = 1;
            cp = c;
        } else if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
            min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0F;
            min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
            min = 0x10000;
        } else {
            d.badByte = i;
            return d;
        }
        if (i + len > s.size()) {
            d.badByte = i;
            return d;
        }
        for (std::size_t k = 1; k < len; ++k) {
            const unsigned char cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80) {
                d.badByte = i;
                return d;
            }
            cp = (cp << 6) | (cc & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            d.badByte = i;
            return d;
        }
        d.cps.push_back(cp);
        d.offsets.push_back(i);
        i += len;
    }
    return d;
}

void appendUtf8(std::string* out, char32_t cp) {
    if (cp < 0x80) {
        out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

std::string toUtf8(const std::u32string& cps) {
    std::string out;
    for (char32_t cp : cps) {
        appendUtf8(&out, cp);
    }
    return out;
}

// Canonical reordering and canonical composition (the NFC algorithm, on text already in NFD or
// NFC as HarfBuzz sees it), so a glyph HarfBuzz composed from "e + U+0302 + U+0303" extracts as
// the one character "ễ" that Vietnamese text is normally written in.
std::u32string composeCluster(std::u32string cps) {
    hb_unicode_funcs_t* uf = ::hb_unicode_funcs_get_default();
    auto ccc = [uf](char32_t c) { return static_cast<int>(::hb_unicode_combining_class(uf, c)); };
    for (std::size_t i = 0; i < cps.size();) {
        if (ccc(cps[i]) == 0) {
            ++i;
            continue;
        }
        std::size_t j = i;
        while (j < cps.size() && ccc(cps[j]) != 0) {
            ++j;
        }
        std::stable_sort(cps.begin() + static_cast<std::ptrdiff_t>(i),
                         cps.begin() + static_cast<std::ptrdiff_t>(j),
                         [&](char32_t a, char32_t b) { return ccc(a) < ccc(b); });
        i = j;
    }
    if (cps.empty()) {
        return cps;
    }
    std::u32string out{cps[0]};
    std::size_t starter = 0;
    int lastClass = ccc(cps[0]) == 0 ? 0 : 256;
    for (std::size_t i = 1; i < cps.size(); ++i) {
        const int cc = ccc(cps[i]);
        hb_codepoint_t composed = 0;
        if ((lastClass < cc || lastClass == 0) &&
            ::hb_unicode_compose(uf, out[starter], cps[i], &composed)) {
            out[starter] = composed;
            continue;
        }
        if (cc == 0) {
            starter = out.size();
        }
        lastClass = cc;
        out.push_back(cps[i]);
    }
    return out;
}

bool isControl(char32_t cp) {
    return ::hb_unicode_general_category(::hb_unicode_funcs_get_default(), cp) ==
           HB_UNICODE_GENERAL_CATEGORY_CONTROL;
}

std::string codePointName(char32_t cp) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(cp));
    return buf;
}

std::string hex4(unsigned v) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04X", v & 0xFFFF);
    return buf;
}

// UTF-16BE in hex, for a ToUnicode destination string.
std::string utf16Hex(const std::u32string& cps) {
    std::string out;
    for (char32_t cp : cps) {
        if (cp >= 0x10000) {
            const unsigned v = static_cast<unsigned>(cp) - 0x10000;
            out += hex4(0xD800 + (v >> 10)) + hex4(0xDC00 + (v & 0x3FF));
        } else {
            out += hex4(static_cast<unsigned>(cp));
        }
    }
    return out;
}

// Collects the operands of one text-showing operator: glyph strings and TJ adjustments. A run
// that is one glyph string becomes Tj, anything else TJ; adjustments left at the end of the
// line are dropped (nothing follows them).
class TextRun {
  public:
    explicit TextRun(std::string* out) : m_out(out) {}

    void glyph(unsigned cid) {
        flushAdjust();
        if (m_items.empty() || m_items.back().front() != '<') {
            m_items.emplace_back("<>");
        }
        m_items.back().insert(m_items.back().size() - 1, hex4(cid));
    }
    // Thousandths of a text space unit, as in TJ: positive moves left.
    void adjust(double thousandths) { m_adjust += thousandths; }

    // Ends the run; KEEP_MOVE keeps a pending adjustment (something is shown after it).
    void flush(bool keepMove) {
        if (keepMove) {
            flushAdjust();
        }
        m_adjust = 0;
        if (m_items.empty()) {
            return;
        }
        if (m_items.size() == 1 && m_items[0].front() == '<') {
            *m_out += "\n" + m_items[0] + " Tj";
        } else {
            *m_out += "\n[";
            for (std::size_t i = 0; i < m_items.size(); ++i) {
                *m_out += (i == 0 ? "" : " ") + m_items[i];
            }
            *m_out += "] TJ";
        }
        m_items.clear();
    }

    // An operator between two runs (Ts, BDC, EMC).
    void op(const std::string& s) {
        flush(true);
        *m_out += "\n" + s;
    }

  private:
    void flushAdjust() {
        const std::string n = pdfNumber(m_adjust);
        m_adjust = 0;
        if (n != "0") {
            m_items.push_back(n);
        }
    }

    std::string* m_out;
    std::vector<std::string> m_items;
    double m_adjust = 0;
};

}  // namespace

// Immutable after loadFont(): every member is read-only, and HarfBuzz faces and immutable fonts
// may be used from several threads at once.
class FontFace final {
  public:
    std::string m_fileName;
    HbBlob m_blob;
    HbFace m_face;
    HbFont m_font;
    unsigned m_upem = 1000;
    int m_ascender = 0;   // font units, > 0
    int m_descender = 0;  // font units, < 0
    int m_capHeight = 0;
    int m_bbox[4] = {0, 0, 0, 0};
    double m_italicAngle = 0;
    double m_weight = 400;
    std::string m_psName;

    int advance(hb_codepoint_t gid) const {
        return ::hb_font_get_glyph_h_advance(m_font.get(), gid);
    }
    double thousandths(double fontUnits) const { return fontUnits * 1000.0 / m_upem; }
    // A glyph's /W width as written (3 decimals), so TJ adjustments are computed against exactly
    // what a reader uses.
    double pdfWidth(hb_codepoint_t gid) const {
        return std::round(thousandths(advance(gid)) * 1000.0) / 1000.0;
    }
};

namespace {

Result<std::shared_ptr<const FontFace>> openFont(const std::string& path) {
    const std::string name = baseName(path);
    HbBlob blob(::hb_blob_create_from_file_or_fail(path.c_str()));
    if (!blob) {
        return Error::make("appearance.font_unreadable", "cannot read the font file " + name);
    }
    if (::hb_face_count(blob.get()) == 0) {
        return Error::make("appearance.font_unsupported",
                           name + " is not a TrueType or OpenType font");
    }
    HbFace face(::hb_face_create(blob.get(), 0));
    if (!hasTable(face.get(), HB_TAG('g', 'l', 'y', 'f'))) {
        const bool cff = hasTable(face.get(), HB_TAG('C', 'F', 'F', ' ')) ||
                         hasTable(face.get(), HB_TAG('C', 'F', 'F', '2'));
        return Error::make("appearance.font_unsupported",
                           name + (cff ? " has CFF outlines, not TrueType (glyf) outlines"
                                       : " has no TrueType (glyf) outlines"));
    }
    HbBlob head(::hb_face_reference_table(face.get(), HB_TAG('h', 'e', 'a', 'd')));
    unsigned headLen = 0;
    const char* headData = ::hb_blob_get_data(head.get(), &headLen);
    if (headLen < 54 || !hasTable(face.get(), HB_TAG('l', 'o', 'c', 'a')) ||
        !hasTable(face.get(), HB_TAG('h', 'h', 'e', 'a')) ||
        !hasTable(face.get(), HB_TAG('h', 'm', 't', 'x')) ||
        !hasTable(face.get(), HB_TAG('m', 'a', 'x', 'p')) ||
        ::hb_face_get_glyph_count(face.get()) == 0) {
        return Error::make("appearance.font_unsupported",
                           name +
                               " lacks a table a TrueType font needs (head, hhea, hmtx, "
                               "loca, maxp)");
    }

    auto f = std::make_shared<FontFace>();
    f->m_fileName = name;
    f->m_upem = ::hb_face_get_upem(face.get());
    // FontBBox: xMin, yMin, xMax, yMax at offset 36 of 'head'.
    for (int i = 0; i < 4; ++i) {
        f->m_bbox[i] = readInt16(headData + 36 + 2 * i);
    }
    HbFont font(::hb_font_create(face.get()));
    hb_position_t v = 0;
    f->m_ascender =
        ::hb_ot_metrics_get_position(font.get(), HB_OT_METRICS_TAG_HORIZONTAL_ASCENDER, &v) && v > 0
            ? v
            : std::max(f->m_bbox[3], 1);
    f->m_descender =
        ::hb_ot_metrics_get_position(font.get(), HB_OT_METRICS_TAG_HORIZONTAL_DESCENDER, &v) &&
                v < 0
            ? v
            : std::min(f->m_bbox[1], -1);
    hb_codepoint_t gid = 0;
    hb_glyph_extents_t ext{};
    if (::hb_ot_metrics_get_position(font.get(), HB_OT_METRICS_TAG_CAP_HEIGHT, &v) && v > 0) {
        f->m_capHeight = v;
    } else if (::hb_font_get_nominal_glyph(font.get(), 'H', &gid) &&
               ::hb_font_get_glyph_extents(font.get(), gid, &ext) && ext.y_bearing > 0) {
        f->m_capHeight = ext.y_bearing;
    } else {
        f->m_capHeight = f->m_ascender;
    }
    f->m_italicAngle = ::hb_style_get_value(font.get(), HB_STYLE_TAG_SLANT_ANGLE);
    f->m_weight = ::hb_style_get_value(font.get(), HB_STYLE_TAG_WEIGHT);
    f->m_psName = sanitisePsName(nameEntry(face.get(), HB_OT_NAME_ID_POSTSCRIPT_NAME));
    if (f->m_psName.empty()) {
        f->m_psName = sanitisePsName(nameEntry(face.get(), HB_OT_NAME_ID_FONT_FAMILY));
    }
    if (f->m_psName.empty()) {
        f->m_psName = "Font";
    }
    ::hb_face_make_immutable(face.get());
    ::hb_font_make_immutable(font.get());
    f->m_blob = std::move(blob);
    f->m_face = std::move(face);
    f->m_font = std::move(font);
    return std::shared_ptr<const FontFace>(std::move(f));
}

// The subset prefix: six uppercase letters from a 64-bit FNV-1a hash of the glyph set and the
// font's name, so the same glyphs always give the same name (ISO 32000-1, 9.6.4).
std::string subsetTag(const std::set<std::uint32_t>& gids, const std::string& psName) {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    auto mix = [&h](unsigned char b) {
        h ^= b;
        h *= 0x100000001b3ULL;
    };
    for (std::uint32_t g : gids) {
        for (int s = 0; s < 32; s += 8) {
            mix(static_cast<unsigned char>(g >> s));
        }
    }
    for (char c : psName) {
        mix(static_cast<unsigned char>(c));
    }
    std::string tag;
    for (int i = 0; i < 6; ++i) {
        tag.push_back(static_cast<char>('A' + h % 26));
        h /= 26;
    }
    return tag;
}

std::string toUnicodeCMap(const std::map<unsigned, std::u32string>& byCid) {
    std::string s =
        "/CIDInit /ProcSet findresource begin\n"
        "12 dict begin\n"
        "begincmap\n"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        "/CMapName /Adobe-Identity-UCS def\n"
        "/CMapType 2 def\n"
        "1 begincodespacerange\n"
        "<0000> <FFFF>\n"
        "endcodespacerange\n";
    std::vector<std::string> entries;
    for (const auto& [cid, text] : byCid) {
        if (!text.empty()) {
            entries.push_back("<" + hex4(cid) + "> <" + utf16Hex(text) + ">\n");
        }
    }
    // At most 100 entries per bfchar block (PDF/Adobe CMap limit).
    for (std::size_t i = 0; i < entries.size(); i += 100) {
        const std::size_t n = std::min<std::size_t>(100, entries.size() - i);
        s += std::to_string(n) + " beginbfchar\n";
        for (std::size_t k = i; k < i + n; ++k) {
            s += entries[k];
        }
        s += "endbfchar\n";
    }
    s += "endcmap\n"
         "CMapName currentdict /CMap defineresource pop\n"
         "end\n"
         "end\n";
    return s;
}

// Tables a PDF reader needs from an embedded TrueType font; HarfBuzz drops every other one.
constexpr hb_tag_t kKeptTables[] = {
    HB_TAG('g', 'l', 'y', 'f'), HB_TAG('l', 'o', 'c', 'a'), HB_TAG('h', 'e', 'a', 'd'),
    HB_TAG('h', 'h', 'e', 'a'), HB_TAG('h', 'm', 't', 'x'), HB_TAG('m', 'a', 'x', 'p'),
    HB_TAG('c', 'm', 'a', 'p'), HB_TAG('p', 'o', 's', 't'), HB_TAG('n', 'a', 'm', 'e'),
    HB_TAG('O', 'S', '/', '2'),
};

}  // namespace

Result<std::shared_ptr<const FontFace>> loadFont(const std::string& path) {
    static std::mutex mutex;
    static std::map<std::string, std::shared_ptr<const FontFace>> cache;
    std::lock_guard<std::mutex> lock(mutex);
    auto it = cache.find(path);
    if (it != cache.end()) {
        return it->second;
    }
    auto r = openFont(path);
    if (r) {
        cache.emplace(path, r.value());
    }
    return r;
}

struct FontSubset::Impl {
    std::shared_ptr<const FontFace> face;
    // Glyphs shape() recorded (original ids), each with the text its ToUnicode entry gives
    // (empty: none).
    std::map<std::uint32_t, std::u32string> glyphs;
    bool embedded = false;
    std::map<std::uint32_t, unsigned> oldToNew;

    void record(std::uint32_t gid, const std::u32string& candidate) {
        auto [it, inserted] = glyphs.emplace(gid, candidate);
        if (inserted || candidate.empty()) {
            return;
        }
        // The first text seen wins, except that a space always extracts as U+0020 so word
        // breaks survive. Other uses of the glyph are covered by /ActualText in show().
        if (it->second.empty() || candidate == U" ") {
            it->second = candidate;
        }
    }

    // The text the ToUnicode CMap gives GID (empty if it gives none).
    const std::u32string& unicodeOf(std::uint32_t gid) const {
        static const std::u32string none;
        auto it = glyphs.find(gid);
        return it == glyphs.end() ? none : it->second;
    }
};

FontSubset::FontSubset(std::shared_ptr<const FontFace> face) : m_impl(std::make_unique<Impl>()) {
    m_impl->face = std::move(face);
}
FontSubset::~FontSubset() = default;
FontSubset::FontSubset(FontSubset&&) noexcept = default;
FontSubset& FontSubset::operator=(FontSubset&&) noexcept = default;

Result<ShapedText> FontSubset::shape(std::string_view utf8) {
    const FontFace& face = *m_impl->face;
    const DecodedText decoded = decodeUtf8Strict(utf8);
    if (decoded.badByte) {
        return Error::make("appearance.text_invalid", "the text is not valid UTF-8 (byte " +
                                                          std::to_string(*decoded.badByte) + ")");
    }
    HbBuffer buf(::hb_buffer_create());
    ::hb_buffer_set_direction(buf.get(), HB_DIRECTION_LTR);
    ::hb_buffer_set_flags(buf.get(),
                          static_cast<hb_buffer_flags_t>(HB_BUFFER_FLAG_BOT | HB_BUFFER_FLAG_EOT |
                                                         HB_BUFFER_FLAG_REMOVE_DEFAULT_IGNORABLES));
    ::hb_buffer_add_utf8(buf.get(), utf8.data(), static_cast<int>(utf8.size()), 0,
                         static_cast<int>(utf8.size()));
    ::hb_buffer_guess_segment_properties(buf.get());
    ::hb_shape(face.m_font.get(), buf.get(), nullptr, 0);
    if (!::hb_buffer_allocation_successful(buf.get())) {
        throw std::bad_alloc();
    }
    unsigned n = 0;
    const hb_glyph_info_t* info = ::hb_buffer_get_glyph_infos(buf.get(), &n);
    const hb_glyph_position_t* pos = ::hb_buffer_get_glyph_positions(buf.get(), &n);

    // Code points of the byte range [from, to).
    auto cpsIn = [&](std::size_t from, std::size_t to) {
        const auto b = std::lower_bound(decoded.offsets.begin(), decoded.offsets.end(), from);
        const auto e = std::lower_bound(b, decoded.offsets.end(), to);
        return decoded.cps.substr(static_cast<std::size_t>(b - decoded.offsets.begin()),
                                  static_cast<std::size_t>(e - b));
    };

    ShapedText shaped;
    std::vector<std::pair<std::uint32_t, std::u32string>> toRecord;
    // LTR: clusters (byte offsets) never decrease along the glyphs.
    for (unsigned i = 0; i < n;) {
        unsigned j = i;
        while (j < n && info[j].cluster == info[i].cluster) {
            ++j;
        }
        const std::size_t from = info[i].cluster;
        const std::size_t to = j < n ? info[j].cluster : utf8.size();
        const std::u32string cps = cpsIn(from, to);

        bool onlyControls = !cps.empty();
        for (char32_t cp : cps) {
            onlyControls = onlyControls && isControl(cp);
        }
        bool missing = false;
        for (unsigned k = i; k < j; ++k) {
            missing = missing || info[k].codepoint == 0;
        }
        if (missing && onlyControls) {
            // A control character (tab, line feed) the font has no glyph for shows nothing.
            i = j;
            continue;
        }
        if (missing) {
            char32_t culprit = 0;
            for (char32_t cp : cps) {
                hb_codepoint_t g = 0;
                if (!isControl(cp) && !::hb_font_get_nominal_glyph(face.m_font.get(), cp, &g)) {
                    culprit = cp;
                    break;
                }
            }
            if (culprit == 0) {
                for (char32_t cp : cps) {
                    if (!isControl(cp)) {
                        culprit = cp;
                        break;
                    }
                }
            }
            std::string ch;
            appendUtf8(&ch, culprit);
            return Error::make("appearance.glyph_missing",
                               "the font " + face.m_fileName + " has no glyph for " +
                                   codePointName(culprit) + " \"" + ch + "\"");
        }

        const std::u32string composed = composeCluster(cps);
        for (unsigned k = i; k < j; ++k) {
            ShapedGlyph g;
            g.gid = info[k].codepoint;
            g.advance = pos[k].x_advance;
            g.xOffset = pos[k].x_offset;
            g.yOffset = pos[k].y_offset;
            if (k == i) {
                g.text.assign(utf8.substr(from, to - from));
            }
            shaped.advance += g.advance;
            shaped.glyphs.push_back(std::move(g));

            // What this glyph extracts as: the whole cluster when it is the cluster's only
            // glyph, else the character it is the nominal glyph of, if any.
            std::u32string candidate;
            if (j - i == 1) {
                candidate = composed;
            } else {
                for (char32_t cp : cps) {
                    hb_codepoint_t nominal = 0;
                    if (::hb_font_get_nominal_glyph(face.m_font.get(), cp, &nominal) &&
                        nominal == info[k].codepoint) {
                        candidate = std::u32string(1, cp);
                        break;
                    }
                }
            }
            toRecord.emplace_back(info[k].codepoint, std::move(candidate));
        }
        i = j;
    }

    for (const auto& [gid, text] : toRecord) {
        if (m_impl->embedded && m_impl->oldToNew.count(gid) == 0) {
            return Error::make("appearance.font_subset",
                               "shape() after embed() needs a glyph the subset lacks");
        }
    }
    if (!m_impl->embedded) {
        for (const auto& [gid, text] : toRecord) {
            m_impl->record(gid, text);
        }
    }
    return shaped;
}

double FontSubset::width(const ShapedText& text, double size) const {
    return text.advance * size / m_impl->face->m_upem;
}

double FontSubset::ascent(double size) const {
    return m_impl->face->m_ascender * size / m_impl->face->m_upem;
}

double FontSubset::descent(double size) const {
    return m_impl->face->m_descender * size / m_impl->face->m_upem;
}

Result<int> FontSubset::embed(const ObjectNumbers& next, std::vector<PdfObject>* out) {
    if (m_impl->embedded) {
        return Error::make("appearance.font_subset", "the font subset is already embedded");
    }
    const FontFace& face = *m_impl->face;

    HbSubsetInput input(::hb_subset_input_create_or_fail());
    if (!input) {
        return Error::make("appearance.font_subset", "HarfBuzz cannot create a subset input");
    }
    hb_set_t* glyphSet = ::hb_subset_input_glyph_set(input.get());
    ::hb_set_add(glyphSet, 0);
    for (const auto& [gid, text] : m_impl->glyphs) {
        ::hb_set_add(glyphSet, gid);
    }
    // Hinting is for screens at small sizes; a signature appearance does without it.
    ::hb_subset_input_set_flags(input.get(), HB_SUBSET_FLAGS_NO_HINTING);
    hb_set_t* drop = ::hb_subset_input_set(input.get(), HB_SUBSET_SETS_DROP_TABLE_TAG);
    hb_tag_t tags[64];
    unsigned start = 0;
    unsigned count = 0;
    do {
        count = 64;
        ::hb_face_get_table_tags(face.m_face.get(), start, &count, tags);
        for (unsigned i = 0; i < count; ++i) {
            if (std::find(std::begin(kKeptTables), std::end(kKeptTables), tags[i]) ==
                std::end(kKeptTables)) {
                ::hb_set_add(drop, tags[i]);
            }
        }
        start += count;
    } while (count == 64);

    HbSubsetPlan plan(::hb_subset_plan_create_or_fail(face.m_face.get(), input.get()));
    if (!plan) {
        return Error::make("appearance.font_subset",
                           "HarfBuzz cannot plan a subset of " + face.m_fileName);
    }
    const hb_map_t* mapping = ::hb_subset_plan_old_to_new_glyph_mapping(plan.get());
    std::map<std::uint32_t, unsigned> oldToNew;
    for (const auto& [gid, text] : m_impl->glyphs) {
        const hb_codepoint_t g = ::hb_map_get(mapping, gid);
        if (g == HB_MAP_VALUE_INVALID) {
            return Error::make("appearance.font_subset",
                               "HarfBuzz left glyph " + std::to_string(gid) + " of " +
                                   face.m_fileName + " out of the subset");
        }
        oldToNew.emplace(gid, g);
    }
    HbFace subsetFace(::hb_subset_plan_execute_or_fail(plan.get()));
    if (!subsetFace) {
        return Error::make("appearance.font_subset", "HarfBuzz cannot subset " + face.m_fileName);
    }
    HbBlob subsetBlob(::hb_face_reference_blob(subsetFace.get()));
    unsigned fontLen = 0;
    const char* fontData = ::hb_blob_get_data(subsetBlob.get(), &fontLen);
    if (fontLen == 0) {
        return Error::make("appearance.font_subset",
                           "HarfBuzz made an empty subset of " + face.m_fileName);
    }

    std::set<std::uint32_t> gidSet{0};
    for (const auto& [gid, text] : m_impl->glyphs) {
        gidSet.insert(gid);
    }
    const std::string fontName = "/" + subsetTag(gidSet, face.m_psName) + "+" + face.m_psName;

    // /W: runs of consecutive CIDs, c [w1 w2 ...].
    std::map<unsigned, double> widths;
    std::map<unsigned, std::u32string> byCid;
    for (const auto& [gid, text] : m_impl->glyphs) {
        widths[oldToNew.at(gid)] = face.pdfWidth(gid);
        byCid[oldToNew.at(gid)] = text;
    }
    std::string w = "[";
    for (auto it = widths.begin(); it != widths.end();) {
        w += (w.size() > 1 ? " " : "") + std::to_string(it->first) + " [";
        unsigned expect = it->first;
        bool first = true;
        while (it != widths.end() && it->first == expect) {
            w += (first ? "" : " ") + pdfNumber(it->second);
            first = false;
            ++it;
            ++expect;
        }
        w += "]";
    }
    w += "]";

    const int type0 = next();
    const int cidFont = next();
    const int descriptor = next();
    const int fontFile = next();
    const int toUnicode = next();
    auto units = [&face](double v) { return pdfNumber(std::round(face.thousandths(v))); };
    // StemV is not stored in a TrueType font; this is the usual estimate from the weight class.
    const double stemV = 50 + (face.m_weight / 65) * (face.m_weight / 65);
    // Symbolic (4): the glyphs are outside the standard Latin set; Italic (64) when slanted.
    const int flags = 4 | (face.m_italicAngle != 0 ? 64 : 0);

    out->push_back({type0, "<< /Type /Font /Subtype /Type0 /BaseFont " + fontName +
                               " /Encoding /Identity-H /DescendantFonts [" +
                               std::to_string(cidFont) + " 0 R] /ToUnicode " +
                               std::to_string(toUnicode) + " 0 R >>"});
    out->push_back({cidFont, "<< /Type /Font /Subtype /CIDFontType2 /BaseFont " + fontName +
                                 " /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) "
                                 "/Supplement 0 >> /FontDescriptor " +
                                 std::to_string(descriptor) + " 0 R /DW " +
                                 pdfNumber(face.pdfWidth(0)) + " /W " + w +
                                 " /CIDToGIDMap /Identity >>"});
    out->push_back(
        {descriptor,
         "<< /Type /FontDescriptor /FontName " + fontName + " /Flags " + std::to_string(flags) +
             " /FontBBox [" + units(face.m_bbox[0]) + " " + units(face.m_bbox[1]) + " " +
             units(face.m_bbox[2]) + " " + units(face.m_bbox[3]) + "] /ItalicAngle " +
             pdfNumber(face.m_italicAngle) + " /Ascent " + units(face.m_ascender) + " /Descent " +
             units(face.m_descender) + " /CapHeight " + units(face.m_capHeight) + " /StemV " +
             pdfNumber(std::round(stemV)) + " /FontFile2 " + std::to_string(fontFile) + " 0 R >>"});
    out->push_back({fontFile, pdfStream("/Filter /FlateDecode /Length1 " + std::to_string(fontLen),
                                        flateEncode(std::string_view(fontData, fontLen)))});
    out->push_back(
        {toUnicode, pdfStream("/Filter /FlateDecode", flateEncode(toUnicodeCMap(byCid)))});

    m_impl->oldToNew = std::move(oldToNew);
    m_impl->embedded = true;
    return type0;
}

std::string FontSubset::show(const ShapedText& text, std::string_view resource, double size,
                             double x, double y) const {
    const FontFace& face = *m_impl->face;
    std::string out = "BT\n";
    out += resource.empty() || resource.front() != '/' ? "/" : "";
    out.append(resource);
    out += " " + pdfNumber(size) + " Tf\n" + pdfNumber(x) + " " + pdfNumber(y) + " Td";

    auto cidOf = [this](std::uint32_t gid) -> unsigned {
        auto it = m_impl->oldToNew.find(gid);
        return it == m_impl->oldToNew.end() ? 0 : it->second;
    };

    TextRun run(&out);
    const auto& glyphs = text.glyphs;
    for (std::size_t i = 0; i < glyphs.size();) {
        // One cluster: its first glyph carries the text, the following ones none.
        std::size_t j = i + 1;
        while (j < glyphs.size() && glyphs[j].text.empty()) {
            ++j;
        }
        const DecodedText decoded = decodeUtf8Strict(glyphs[i].text);
        const std::u32string wanted = composeCluster(decoded.cps);
        std::u32string extracted;
        for (std::size_t k = i; k < j; ++k) {
            extracted += m_impl->unicodeOf(glyphs[k].gid);
        }
        // Where the ToUnicode CMap cannot give this cluster's text (a glyph that stands for
        // different text elsewhere), /ActualText does (ISO 32000-1, 14.9.4).
        const bool actual = !wanted.empty() && extracted != wanted;
        if (actual) {
            run.op("/Span << /ActualText " + pdfTextString(toUtf8(wanted)) + " >> BDC");
        }
        for (std::size_t k = i; k < j; ++k) {
            const ShapedGlyph& g = glyphs[k];
            const double w = face.pdfWidth(g.gid);
            const double adv = face.thousandths(g.advance);
            if (g.xOffset == 0 && g.yOffset == 0) {
                run.glyph(cidOf(g.gid));
                run.adjust(w - adv);
                continue;
            }
            // A mark placed by GPOS: move to its offset, show it, and come back to where the
            // pen would be after its advance. The rise is in unscaled text space units.
            const double xo = face.thousandths(g.xOffset);
            if (g.yOffset != 0) {
                run.op(pdfNumber(g.yOffset * size / face.m_upem) + " Ts");
            }
            run.adjust(-xo);
            run.glyph(cidOf(g.gid));
            run.adjust(xo + w - adv);
            if (g.yOffset != 0) {
                run.op("0 Ts");
            }
        }
        if (actual) {
            run.op("EMC");
        }
        i = j;
    }
    run.flush(false);
    out += "\nET";
    return out;
}

}  // namespace kyso::signer
