// PAdES B-B as an incremental update: qpdf reads the structure, we append the update.
//
// The update holds: the signature dictionary, the field (merged with its widget, or the existing
// field being filled), the rewritten page (or its /Annots array), the rewritten AcroForm (or the
// catalog when the AcroForm is direct or absent), and a cross-reference section in the style of
// the original (table or stream) whose /Prev points at the original's last one.
#include "kyso/signer/pades.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <qpdf/Buffer.hh>
#include <qpdf/QPDF.hh>
#include <qpdf/QPDFAcroFormDocumentHelper.hh>
#include <qpdf/QPDFExc.hh>
#include <qpdf/QPDFObjectHandle.hh>
#include <qpdf/QPDFPageDocumentHelper.hh>
#include <set>
#include <vector>

#include "appearance_stream.h"
#include "kyso/hsm/encoding.h"
#include "kyso/hsm/ossl_ptr.h"
#include "kyso/signer/cms.h"
#include "output_file.h"
#include "pdf_encrypt.h"
#include "pdf_util.h"

namespace kyso::signer {

namespace {

constexpr std::size_t kTailWindow = 4096;
constexpr std::size_t kCopyChunk = 1 << 16;

struct FileFacts {
    std::uint64_t size = 0;
    std::uint64_t startxref = 0;
    bool xrefStream = false;
    bool endsWithEol = false;
};

// Reads what qpdf does not tell us: the offset of the last cross-reference section and its kind.
Result<FileFacts> inspectFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return Error::make("io.read", "cannot open the input file");
    }
    in.seekg(0, std::ios::end);
    FileFacts f;
    f.size = static_cast<std::uint64_t>(in.tellg());
    if (f.size == 0) {
        return Error::make("pdf.empty", "the document is empty");
    }
    std::string head(std::min<std::uint64_t>(f.size, 1024), '\0');
    in.seekg(0);
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    const auto header = head.find("%PDF-");
    if (header == std::string::npos) {
        return Error::make("pdf.not_pdf", "the document does not start with a PDF header");
    }
    if (header != 0) {
        // Readers disagree on whether offsets then count from the file or from the header.
        return Error::make("pdf.damaged", "the PDF header is not at the start of the file");
    }
    const std::uint64_t tailLen = std::min<std::uint64_t>(f.size, kTailWindow);
    std::string tail(tailLen, '\0');
    in.seekg(static_cast<std::streamoff>(f.size - tailLen));
    in.read(tail.data(), static_cast<std::streamsize>(tailLen));
    const auto sx = tail.rfind("startxref");
    if (sx == std::string::npos || tail.find("%%EOF", sx) == std::string::npos) {
        return Error::make("pdf.truncated",
                           "the document has no startxref/%%EOF at its end (truncated?)");
    }
    std::size_t p = sx + 9;
    while (p < tail.size() && std::isspace(static_cast<unsigned char>(tail[p]))) {
        ++p;
    }
    std::uint64_t off = 0;
    bool digits = false;
    while (p < tail.size() && std::isdigit(static_cast<unsigned char>(tail[p]))) {
        off = off * 10 + static_cast<std::uint64_t>(tail[p] - '0');
        digits = true;
        ++p;
    }
    if (!digits || off >= f.size) {
        return Error::make("pdf.damaged", "startxref does not point into the file");
    }
    f.startxref = off;
    char probe[8] = {0};
    in.seekg(static_cast<std::streamoff>(off));
    in.read(probe, 4);
    f.xrefStream = std::strncmp(probe, "xref", 4) != 0;
    const char last = tail.back();
    f.endsWithEol = last == '\n' || last == '\r';
    return f;
}

// A reference that qpdf does not know yet: a unique name, replaced after unparsing.
QPDFObjectHandle placeholderRef(int num) {
    return QPDFObjectHandle::newName("/KysoRef" + std::to_string(num) + "Ref");
}

std::string resolvePlaceholders(std::string s) {
    for (std::size_t p = s.find("/KysoRef"); p != std::string::npos; p = s.find("/KysoRef", p)) {
        const std::size_t numStart = p + 8;
        const std::size_t end = s.find("Ref", numStart);
        const std::string num = s.substr(numStart, end - numStart);
        const std::string ref = num + " 0 R";
        s.replace(p, end + 3 - p, ref);
        p += ref.size();
    }
    return s;
}

std::string serialize(QPDFObjectHandle h) {
    return resolvePlaceholders(h.isIndirect() ? h.unparseResolved() : h.unparse());
}

std::string padded(std::uint64_t v, std::size_t width) {
    std::string s = std::to_string(v);
    return s.size() < width ? s + std::string(width - s.size(), ' ') : s;
}

Error damaged(const std::string& why) {
    return Error::make("pdf.damaged", why);
}

// The permissions of an encrypted document that was opened without its owner password (ISO
// 32000-1, table 22): filling in an existing signature field needs bit 6 ("fill in form fields")
// or, from revision 3, bit 9 ("fill in existing form fields, including signature fields"); a new
// signature field needs bit 6 and bit 4 ("create or modify form fields, including signature
// fields"). The owner password lifts every restriction.
Status checkPermissions(QPDF& pdf, bool existingField) {
    int r = 0;
    int p = 0;
    if (!pdf.isEncrypted(r, p) || pdf.ownerPasswordMatched()) {
        return Ok{};
    }
    auto bit = [p](int n) { return (static_cast<unsigned>(p) & (1u << (n - 1))) != 0; };
    const bool fill = bit(6) || (r >= 3 && bit(9));
    if (existingField) {
        if (!fill) {
            return Error::make("pdf.permissions",
                               "the document's permissions do not allow filling in form fields "
                               "or signing (not granted: bit 6, fill in form fields; bit 9, fill "
                               "in existing form fields and sign)");
        }
        return Ok{};
    }
    if (!bit(6) || !bit(4)) {
        std::string missing;
        if (!bit(4)) {
            missing = "bit 4, modify the document";
        }
        if (!bit(6)) {
            missing += std::string(missing.empty() ? "" : "; ") +
                       "bit 6, add annotations and fill in form fields";
        }
        return Error::make(
            "pdf.permissions",
            "the document's permissions do not allow adding a signature field (not granted: " +
                missing + ")" +
                (fill ? "; it may be signed into an existing empty signature field (field=)" : ""));
    }
    return Ok{};
}

// The PDF/A part the document claims in its XMP metadata (pdfaid:part, ISO 19005), 0 for none.
int pdfaPart(QPDFObjectHandle root) {
    QPDFObjectHandle md = root.getKey("/Metadata");
    if (!md.isStream()) {
        return 0;
    }
    std::string xmp;
    try {
        std::shared_ptr<Buffer> data = md.getStreamData(qpdf_dl_generalized);
        xmp.assign(reinterpret_cast<const char*>(data->getBuffer()), data->getSize());
    } catch (const std::exception&) {
        return 0;
    }
    // As an attribute (pdfaid:part="1") or an element (<pdfaid:part>1</pdfaid:part>).
    const auto p = xmp.find("pdfaid:part");
    if (p == std::string::npos) {
        return 0;
    }
    for (std::size_t i = p + 11; i < xmp.size() && i < p + 16; ++i) {
        if (std::isdigit(static_cast<unsigned char>(xmp[i]))) {
            return xmp[i] - '0';
        }
    }
    return 0;
}

// DocMDP P=1 in /Perms: the author certified the document and allowed no change at all.
bool certifiedNoChanges(QPDFObjectHandle root) {
    QPDFObjectHandle perms = root.getKey("/Perms");
    if (!perms.isDictionary()) {
        return false;
    }
    QPDFObjectHandle docmdp = perms.getKey("/DocMDP");
    if (!docmdp.isDictionary()) {
        return false;
    }
    QPDFObjectHandle refs = docmdp.getKey("/Reference");
    if (!refs.isArray()) {
        return false;
    }
    for (auto& r : refs.getArrayAsVector()) {
        if (!r.isDictionary() || !r.getKey("/TransformMethod").isNameAndEquals("/DocMDP")) {
            continue;
        }
        QPDFObjectHandle params = r.getKey("/TransformParams");
        QPDFObjectHandle p = params.isDictionary() ? params.getKey("/P") : QPDFObjectHandle();
        // /P defaults to 2 (ISO 32000-1, table 254).
        if (p.isInitialized() && p.isInteger() && p.getIntValue() == 1) {
            return true;
        }
    }
    return false;
}

// The signature dictionary (object NUM). In an encrypted document its strings are encrypted,
// except /Contents (ISO 32000-1, 7.6.1).
std::string sigDictionary(const PadesOptions& o, std::size_t contentsHexLen,
                          std::chrono::system_clock::time_point when, std::size_t* byteRangeOffset,
                          std::size_t* contentsOffset, const UpdateEncryptor* enc, int num) {
    auto text = [&](const std::string& utf8) {
        return enc != nullptr ? enc->string(num, pdfTextBytes(utf8)) : pdfTextString(utf8);
    };
    std::string s = "<<\n/Type /Sig\n/Filter /Adobe.PPKLite\n/SubFilter /ETSI.CAdES.detached\n";
    s += "/ByteRange [";
    *byteRangeOffset = s.size();
    // Four numbers of up to 20 digits each, patched in place once the offsets are known.
    s += std::string(4 * 21, ' ');
    s += "]\n/Contents ";
    *contentsOffset = s.size();
    s += '<' + std::string(contentsHexLen, '0') + '>';
    const std::string date = pdfDateString(when);
    s += "\n/M " + (enc != nullptr ? enc->string(num, date.substr(1, date.size() - 2)) : date);
    if (!o.reason.empty()) {
        s += "\n/Reason " + text(o.reason);
    }
    if (!o.location.empty()) {
        s += "\n/Location " + text(o.location);
    }
    if (!o.contactInfo.empty()) {
        s += "\n/ContactInfo " + text(o.contactInfo);
    }
    s += "\n>>";
    return s;
}

std::string hexEncode(const std::string& bin) {
    static const char* digits = "0123456789ABCDEF";
    std::string out;
    out.reserve(bin.size() * 2);
    for (unsigned char c : bin) {
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 15]);
    }
    return out;
}

// A rectangle array, normalised; nullopt when it is not four numbers.
std::optional<PdfRect> rectOf(QPDFObjectHandle a) {
    if (!a.isArray() || a.getArrayNItems() != 4) {
        return std::nullopt;
    }
    double v[4];
    for (int i = 0; i < 4; ++i) {
        QPDFObjectHandle n = a.getArrayItem(i);
        if (!n.isNumber()) {
            return std::nullopt;
        }
        v[i] = n.getNumericValue();
    }
    return PdfRect{std::min(v[0], v[2]), std::min(v[1], v[3]), std::fabs(v[2] - v[0]),
                   std::fabs(v[3] - v[1])};
}

// The page's crop box (else its media box) and rotation, inherited through the page tree.
Result<PageGeometry> geometryOf(QPDFPageObjectHelper& page) {
    const auto box = rectOf(page.getCropBox(false, false));
    if (!box || box->w <= 0 || box->h <= 0) {
        return damaged("the page has no usable /MediaBox");
    }
    PageGeometry g{box->x, box->y, box->x + box->w, box->y + box->h, 0};
    QPDFObjectHandle rot = page.getAttribute("/Rotate", false);
    if (rot.isInteger()) {
        // A multiple of 90 (ISO 32000-1, table 30); readers treat anything else as 0.
        const long long r = ((rot.getIntValue() % 360) + 360) % 360;
        g.rotate = r % 90 == 0 ? static_cast<int>(r) : 0;
    }
    return g;
}

// The widget of a signature field: the field itself when merged, else its only kid.
QPDFObjectHandle widgetOf(QPDFObjectHandle field) {
    if (field.hasKey("/Rect") || field.getKey("/Subtype").isNameAndEquals("/Widget")) {
        return field;
    }
    QPDFObjectHandle kids = field.getKey("/Kids");
    if (kids.isArray() && kids.getArrayNItems() == 1 && kids.getArrayItem(0).isDictionary()) {
        return kids.getArrayItem(0);
    }
    return QPDFObjectHandle();
}

// The index of the page whose /Annots holds WIDGET; -1 when none does.
int pageOfWidget(std::vector<QPDFPageObjectHelper>& pages, QPDFObjectHandle widget) {
    if (!widget.isIndirect()) {
        return -1;
    }
    for (std::size_t i = 0; i < pages.size(); ++i) {
        QPDFObjectHandle annots = pages[i].getObjectHandle().getKey("/Annots");
        if (!annots.isArray()) {
            continue;
        }
        for (auto& a : annots.getArrayAsVector()) {
            if (a.isIndirect() && a.getObjGen() == widget.getObjGen()) {
                return static_cast<int>(i);
            }
        }
    }
    return -1;
}

// The last signed signature field (in the form's order, which is the order of signing for
// the fields signers add) with a visible widget: its page index and its rectangle.
std::optional<std::pair<int, PdfRect>> lastVisibleSignature(
    QPDF& pdf, std::vector<QPDFPageObjectHelper>& pages) {
    QPDFAcroFormDocumentHelper af(pdf);
    std::map<QPDFObjGen, std::size_t> order;
    for (auto& f : af.getFormFields()) {
        order.emplace(f.getObjectHandle().getObjGen(), order.size());
    }
    std::optional<std::pair<int, PdfRect>> found;
    std::size_t foundAt = 0;
    for (std::size_t p = 0; p < pages.size(); ++p) {
        for (auto& w : af.getWidgetAnnotationsForPage(pages[p])) {
            QPDFFormFieldObjectHelper f = af.getFieldForAnnotation(w);
            const auto at = order.find(f.getObjectHandle().getObjGen());
            const auto r = rectOf(w.getObjectHandle().getKey("/Rect"));
            if (f.getFieldType() != "/Sig" || f.getValue().isNull() || at == order.end() || !r ||
                r->w <= 0 || r->h <= 0) {
                continue;
            }
            if (!found || at->second >= foundAt) {
                found = std::make_pair(static_cast<int>(p), *r);
                foundAt = at->second;
            }
        }
    }
    return found;
}

}  // namespace

Result<PadesResult> signPdfTo(const std::string& inPath, int outFd, const Credential& credential,
                              const PadesOptions& options) {
    auto facts = inspectFile(inPath);
    if (!facts) {
        return facts.error();
    }
    PadesResult result;
    result.originalSize = facts->size;
    result.xrefStream = facts->xrefStream;

    QPDF pdf;
    pdf.setSuppressWarnings(true);
    try {
        // qpdf names the input in its messages: a neutral name, so that no path of ours (a
        // spool file) reaches an error answer.
        FILE* f = std::fopen(inPath.c_str(), "rb");
        if (f == nullptr) {
            return Error::make("io.read", "cannot open the document");
        }
        pdf.processFile("document", f, true,
                        options.password != nullptr ? options.password->c_str() : nullptr);
    } catch (const QPDFExc& e) {
        if (e.getErrorCode() == qpdf_e_password) {
            return Error::make("pdf.encrypted",
                               options.password != nullptr
                                   ? "the password given does not open the document"
                                   : "the document needs a password to open; send it with the "
                                     "request (see docs/API.md), never in a URL");
        }
        return damaged(std::string("qpdf cannot read the document: ") + e.getMessageDetail());
    } catch (const std::exception& e) {
        return damaged(std::string("qpdf cannot read the document: ") + e.what());
    }
    std::optional<UpdateEncryptor> encryptor;
    try {
        auto enc = UpdateEncryptor::of(pdf);
        if (!enc) {
            return enc.error();
        }
        if (*enc) {
            encryptor.emplace(std::move(**enc));
        }
        if (encryptor) {
            if (auto st = checkPermissions(pdf, options.fieldName.has_value()); !st) {
                return st.error();
            }
        }
    } catch (const std::exception& e) {
        return damaged(std::string("qpdf cannot read the document's encryption: ") + e.what());
    }
    result.encrypted = encryptor.has_value();
    // Opening warnings: a reconstructed cross-reference table means readers may see different
    // objects than the chain our /Prev continues; refuse. Other opening warnings (a /Size larger
    // than needed, whitespace before "xref") leave the chain intact and are tolerated.
    for (const auto& w : pdf.getWarnings()) {
        const std::string m = w.getMessageDetail();
        if (m.find("reconstruct") != std::string::npos || m.find("damaged") != std::string::npos) {
            return damaged("the document's cross-reference table is broken (" + m + ")");
        }
    }
    QPDFObjectHandle trailer = pdf.getTrailer();
    // A hybrid-reference file (a classic table whose trailer has /XRefStm: what Word writes) is
    // signed like any classic file: the update is a classic table whose trailer has no /XRefStm
    // and whose /Prev is the original's last section. Every reader then meets the new objects
    // first, and a reader that follows /XRefStm still finds, through /Prev, the stream that lists
    // the objects kept in object streams (ISO 32000-1, 7.5.8.4). The /Size below counts them.
    result.hybridXref = trailer.hasKey("/XRefStm");

    const std::uint64_t origSize = facts->size;
    QPDFObjectHandle root;
    std::vector<QPDFPageObjectHelper> pages;
    // What the update writes, each object with its serialised body, in writing order.
    std::vector<PdfObject> objects;
    int nextNum = 0;
    int sigNum = 0;
    std::string fieldName;
    try {
        root = pdf.getRoot();
        // PDF/A stays PDF/A: the catalog (and its /Metadata) is carried over, fonts are embedded,
        // and for PDF/A-1, which forbids soft masks, images get a 1-bit mask instead.
        result.pdfaPart = pdfaPart(root);
        pages = QPDFPageDocumentHelper(pdf).getAllPages();
        // From here on, any warning is about objects the update reads or rewrites (a page tree
        // that qpdf had to fix, a missing dictionary): refuse rather than rewrite them.
        if (pdf.anyWarnings()) {
            return damaged("the document's structure is damaged: " +
                           pdf.getWarnings().front().getMessageDetail());
        }
        if (certifiedNoChanges(root)) {
            return Error::make("pdf.certified_no_changes",
                               "the document is certified with no changes allowed (DocMDP P=1)");
        }
        if (options.page < 1 || static_cast<std::size_t>(options.page) > pages.size()) {
            return Error::make("pdf.page_out_of_range",
                               "page " + std::to_string(options.page) + " is not in the document");
        }

        // New object numbers start above everything the original knows about.
        long long size =
            trailer.getKey("/Size").isInteger() ? trailer.getKey("/Size").getIntValue() : 0;
        for (auto& [og, entry] : pdf.getXRefTable()) {
            size = std::max<long long>(size, og.getObj() + 1);
        }
        nextNum = static_cast<int>(size);
        sigNum = nextNum++;

        QPDFObjectHandle acroForm = root.getKey("/AcroForm");
        std::set<std::string> topNames;
        QPDFObjectHandle fields =
            acroForm.isDictionary() ? acroForm.getKey("/Fields") : QPDFObjectHandle();
        if (fields.isInitialized() && fields.isArray()) {
            for (auto& f : fields.getArrayAsVector()) {
                if (f.isDictionary() && f.getKey("/T").isString()) {
                    topNames.insert(f.getKey("/T").getUTF8Value());
                }
            }
        }

        bool newField = true;
        if (options.fieldName) {
            QPDFAcroFormDocumentHelper af(pdf);
            QPDFObjectHandle target;
            for (auto& f : af.getFormFields()) {
                if (f.getFullyQualifiedName() == *options.fieldName) {
                    target = f.getObjectHandle();
                    if (f.getFieldType() != "/Sig") {
                        return Error::make(
                            "pdf.field_not_signature",
                            "field '" + *options.fieldName + "' is not a signature field");
                    }
                    if (!f.getValue().isNull()) {
                        return Error::make("pdf.field_signed",
                                           "field '" + *options.fieldName + "' is already signed");
                    }
                    break;
                }
            }
            if (!target.isInitialized()) {
                return Error::make("pdf.field_not_found",
                                   "no field named '" + *options.fieldName + "'");
            }
            if (!target.isIndirect()) {
                return damaged("the signature field is not an indirect object");
            }
            target.replaceKey("/V", placeholderRef(sigNum));
            fieldName = *options.fieldName;
            newField = false;
            QPDFObjectHandle widget = widgetOf(target);
            if (options.appearance) {
                const int pageIndex = widget.isInitialized() ? pageOfWidget(pages, widget) : -1;
                if (pageIndex < 0 || !widget.isIndirect()) {
                    return Error::make(
                        "pdf.field_no_widget",
                        "field '" + fieldName + "' has no widget on a page to draw in");
                }
                auto geometry = geometryOf(pages[static_cast<std::size_t>(pageIndex)]);
                if (!geometry) {
                    return geometry.error();
                }
                const auto fieldRect = rectOf(widget.getKey("/Rect"));
                auto built = buildAppearance(
                    *options.appearance, *geometry,
                    fieldRect && fieldRect->w > 0 && fieldRect->h > 0 ? fieldRect : std::nullopt,
                    [&] { return nextNum++; }, &objects, result.pdfaPart == 1);
                if (!built) {
                    return built.error();
                }
                widget.replaceKey("/Rect", QPDFObjectHandle::newArray(QPDFObjectHandle::Rectangle(
                                               built->userRect.x, built->userRect.y,
                                               built->userRect.x + built->userRect.w,
                                               built->userRect.y + built->userRect.h)));
                QPDFObjectHandle ap = QPDFObjectHandle::newDictionary();
                ap.replaceKey("/N", placeholderRef(built->formNum));
                widget.replaceKey("/AP", ap);
                // Printed, and not to be changed by a reader (ISO 32000-1, 12.5.3).
                widget.replaceKey("/F", QPDFObjectHandle::newInteger(132));
                result.page = pageIndex + 1;
                result.rect = built->displayedRect;
                result.imageRect = built->imageRect;
                if (widget.getObjGen() != target.getObjGen()) {
                    objects.push_back(
                        {widget.getObjectID(), serialize(widget), widget.getGeneration()});
                }
            }
            objects.push_back({target.getObjectID(), serialize(target), target.getGeneration()});
        }

        const int widgetNum = newField ? nextNum++ : 0;
        if (newField) {
            for (int i = 1;; ++i) {
                fieldName = "Signature" + std::to_string(i);
                if (!topNames.count(fieldName)) {
                    break;
                }
            }
            int pageIndex = options.page - 1;
            std::string rect = "[0 0 0 0]";
            std::string ap;
            if (options.appearance) {
                Appearance appearance = *options.appearance;
                if (appearance.layout == AppearanceLayout::Seal && !appearance.rect &&
                    !appearance.overlapLeftThirdOf) {
                    // A seal applied on its own: over the last visible signature, on its page.
                    const auto last = lastVisibleSignature(pdf, pages);
                    if (!last) {
                        return Error::make("appearance.no_rect",
                                           "the document has no visible signature for the seal "
                                           "to overlap; give the seal a rectangle (rect)");
                    }
                    pageIndex = last->first;
                    auto g = geometryOf(pages[static_cast<std::size_t>(pageIndex)]);
                    if (!g) {
                        return g.error();
                    }
                    appearance.overlapLeftThirdOf = g->toDisplayed(last->second);
                }
                auto geometry = geometryOf(pages[static_cast<std::size_t>(pageIndex)]);
                if (!geometry) {
                    return geometry.error();
                }
                auto built = buildAppearance(
                    appearance, *geometry, std::nullopt, [&] { return nextNum++; }, &objects,
                    result.pdfaPart == 1);
                if (!built) {
                    return built.error();
                }
                const PdfRect& u = built->userRect;
                rect = "[" + pdfNumber(u.x) + " " + pdfNumber(u.y) + " " + pdfNumber(u.x + u.w) +
                       " " + pdfNumber(u.y + u.h) + "]";
                ap = "\n/AP << /N " + std::to_string(built->formNum) + " 0 R >>";
                result.page = pageIndex + 1;
                result.rect = built->displayedRect;
                result.imageRect = built->imageRect;
            }
            if (!options.appearance && result.pdfaPart > 0) {
                // PDF/A wants an appearance for every widget (ISO 19005-2, 6.3.3): an invisible
                // signature gets an empty one, as Acrobat writes it.
                const int formNum = nextNum++;
                objects.push_back(
                    {formNum, pdfStream("/Type /XObject /Subtype /Form /BBox [0 0 0 0]", "")});
                ap = "\n/AP << /N " + std::to_string(formNum) + " 0 R >>";
            }
            QPDFObjectHandle page = pages[static_cast<std::size_t>(pageIndex)].getObjectHandle();
            std::string widget = "<<\n/Type /Annot\n/Subtype /Widget\n/FT /Sig\n/T " +
                                 pdfTextString(fieldName) + "\n/V " + std::to_string(sigNum) +
                                 " 0 R\n/F 132\n/Rect " + rect + ap + "\n/P " +
                                 std::to_string(page.getObjectID()) + " " +
                                 std::to_string(page.getGeneration()) + " R\n>>";
            objects.push_back({widgetNum, widget});

            QPDFObjectHandle annots = page.getKey("/Annots");
            if (annots.isArray() && annots.isIndirect()) {
                annots.appendItem(placeholderRef(widgetNum));
                objects.push_back(
                    {annots.getObjectID(), serialize(annots), annots.getGeneration()});
            } else {
                QPDFObjectHandle arr = annots.isArray() ? annots : QPDFObjectHandle::newArray();
                arr.appendItem(placeholderRef(widgetNum));
                page.replaceKey("/Annots", arr);
                objects.push_back({page.getObjectID(), serialize(page), page.getGeneration()});
            }
        }

        // The AcroForm: make it list the new field and say that the document holds signatures.
        QPDFObjectHandle form =
            acroForm.isDictionary() ? acroForm : QPDFObjectHandle::newDictionary();
        form.replaceKey("/SigFlags", QPDFObjectHandle::newInteger(3));
        if (newField) {
            if (fields.isInitialized() && fields.isArray() && fields.isIndirect()) {
                fields.appendItem(placeholderRef(widgetNum));
                objects.push_back(
                    {fields.getObjectID(), serialize(fields), fields.getGeneration()});
            } else {
                QPDFObjectHandle arr = fields.isInitialized() && fields.isArray()
                                           ? fields
                                           : QPDFObjectHandle::newArray();
                arr.appendItem(placeholderRef(widgetNum));
                form.replaceKey("/Fields", arr);
            }
        }
        if (acroForm.isDictionary() && acroForm.isIndirect()) {
            objects.push_back(
                {acroForm.getObjectID(), serialize(acroForm), acroForm.getGeneration()});
        } else {
            root.replaceKey("/AcroForm", form);
            objects.push_back({root.getObjectID(), serialize(root), root.getGeneration()});
        }
    } catch (const std::exception& e) {
        return damaged(std::string("qpdf cannot read the document: ") + e.what());
    }
    // Objects are read lazily: damage met while walking the form or the page counts too.
    if (pdf.anyWarnings()) {
        return damaged("the document's structure is damaged: " +
                       pdf.getWarnings().front().getMessageDetail());
    }
    if (!root.isIndirect()) {
        return damaged("the document catalog is not an indirect object");
    }

    if (encryptor) {
        try {
            for (auto& o : objects) {
                o.body = encryptor->object(o.num, o.gen, o.body);
            }
        } catch (const std::exception& e) {
            return damaged(std::string("the update cannot be encrypted: ") + e.what());
        }
    }

    // /Contents holds the CMS in hex; its size is fixed before signing, from a full-size build.
    auto maxCms = maxCadesSize(credential, options.timestamper);
    if (!maxCms) {
        return maxCms.error();
    }
    result.contentsBytes = *maxCms;
    const std::size_t hexLen = *maxCms * 2;

    // Serialise the update. Offsets are relative to the start of the update.
    std::string update = facts->endsWithEol ? "" : "\n";
    std::map<int, std::uint64_t> offsets;
    std::size_t byteRangeAt = 0;
    std::size_t contentsAt = 0;
    {
        std::size_t brRel = 0;
        std::size_t ctRel = 0;
        const auto when = options.signingTime.value_or(std::chrono::system_clock::now());
        std::string sig = sigDictionary(options, hexLen, when, &brRel, &ctRel,
                                        encryptor ? &*encryptor : nullptr, sigNum);
        offsets[sigNum] = update.size();
        const std::string head = std::to_string(sigNum) + " 0 obj\n";
        byteRangeAt = update.size() + head.size() + brRel;
        contentsAt = update.size() + head.size() + ctRel;
        update += head + sig + "\nendobj\n";
    }
    int maxNum = sigNum;
    std::map<int, int> generations;  // the new objects' are 0
    for (const auto& o : objects) {
        offsets[o.num] = update.size();
        generations[o.num] = o.gen;
        update +=
            std::to_string(o.num) + " " + std::to_string(o.gen) + " obj\n" + o.body + "\nendobj\n";
        maxNum = std::max(maxNum, o.num);
    }
    auto generationOf = [&generations](int num) {
        const auto it = generations.find(num);
        return it == generations.end() ? 0 : it->second;
    };

    // What the trailer carries over.
    // unparse(), not serialize(): the trailer refers to these objects, it must not inline them.
    std::string trailerKeys = "/Root " + trailer.getKey("/Root").unparse();
    if (trailer.hasKey("/Info")) {
        trailerKeys += "\n/Info " + trailer.getKey("/Info").unparse();
    }
    if (trailer.hasKey("/ID")) {
        trailerKeys += "\n/ID " + trailer.getKey("/ID").unparse();
    }
    if (encryptor) {
        // The update is encrypted like the rest: readers need the same security handler.
        trailerKeys += "\n/Encrypt " + trailer.getKey("/Encrypt").unparse();
    }
    trailerKeys += "\n/Prev " + std::to_string(facts->startxref);

    // Group object numbers into consecutive runs for the xref subsections.
    auto runs = [](const std::map<int, std::uint64_t>& offs) {
        std::vector<std::pair<int, int>> r;
        for (auto& [num, off] : offs) {
            if (!r.empty() && r.back().first + r.back().second == num) {
                ++r.back().second;
            } else {
                r.push_back({num, 1});
            }
        }
        return r;
    };

    if (facts->xrefStream) {
        const int xrefNum = std::max(nextNum, maxNum + 1);
        offsets[xrefNum] = update.size();
        const std::uint64_t maxOff = origSize + update.size();
        int w2 = 4;
        while (w2 < 8 && (maxOff >> (8 * w2)) != 0) {
            ++w2;
        }
        std::string data;
        std::string index;
        for (auto [first, count] : runs(offsets)) {
            index += std::to_string(first) + " " + std::to_string(count) + " ";
            for (int n = first; n < first + count; ++n) {
                const std::uint64_t off = origSize + offsets[n];
                data.push_back('\x01');
                for (int b = w2 - 1; b >= 0; --b) {
                    data.push_back(static_cast<char>((off >> (8 * b)) & 0xff));
                }
                const int gen = generationOf(n);
                data.push_back(static_cast<char>((gen >> 8) & 0xff));
                data.push_back(static_cast<char>(gen & 0xff));
            }
        }
        index.pop_back();
        update += std::to_string(xrefNum) + " 0 obj\n<<\n/Type /XRef\n/Size " +
                  std::to_string(xrefNum + 1) + "\n/W [1 " + std::to_string(w2) + " 2]\n/Index [" +
                  index + "]\n" + trailerKeys + "\n/Length " + std::to_string(data.size()) +
                  "\n>>\nstream\n" + data + "\nendstream\nendobj\nstartxref\n" +
                  std::to_string(origSize + offsets[xrefNum]) + "\n%%EOF\n";
    } else {
        const std::uint64_t xrefAt = origSize + update.size();
        update += "xref\n";
        for (auto [first, count] : runs(offsets)) {
            update += std::to_string(first) + " " + std::to_string(count) + "\n";
            for (int n = first; n < first + count; ++n) {
                char line[32];
                std::snprintf(line, sizeof line, "%010llu %05d n\r\n",
                              static_cast<unsigned long long>(origSize + offsets[n]),
                              generationOf(n));
                update += line;
            }
        }
        update += "trailer\n<<\n/Size " + std::to_string(maxNum + 1) + "\n" + trailerKeys +
                  "\n>>\nstartxref\n" + std::to_string(xrefAt) + "\n%%EOF\n";
    }

    // Byte range: everything but the /Contents hex string including its delimiters.
    const std::uint64_t total = origSize + update.size();
    const std::uint64_t cStart = origSize + contentsAt;
    const std::uint64_t cEnd = cStart + hexLen + 2;
    const std::string br = padded(0, 1) + " " + std::to_string(cStart) + " " +
                           std::to_string(cEnd) + " " + std::to_string(total - cEnd);
    update.replace(byteRangeAt, br.size(), br);

    OsslPtr<EVP_MD_CTX> md(::EVP_MD_CTX_new());
    const EVP_MD* evp = hsm::evpMd(credential.hash);
    if (!md || ::EVP_DigestInit_ex(md.get(), evp, nullptr) != 1) {
        return Error::make("cms.build", "cannot start the document digest");
    }
    {
        // Stream the original through the digest and into the output.
        const int in = ::open(inPath.c_str(), O_RDONLY | O_CLOEXEC);
        if (in < 0) {
            return Error::make("io.read", "cannot open the input file");
        }
        std::vector<char> buf(kCopyChunk);
        std::uint64_t copied = 0;
        bool ok = true;
        while (copied < origSize) {
            const ssize_t n = ::read(in, buf.data(), buf.size());
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                ok = false;
                break;
            }
            const std::size_t take =
                static_cast<std::size_t>(std::min<std::uint64_t>(n, origSize - copied));
            ::EVP_DigestUpdate(md.get(), buf.data(), take);
            if (!writeAll(outFd, buf.data(), take)) {
                ::close(in);
                return Error::make("io.write", "cannot write the output file");
            }
            copied += take;
        }
        ::close(in);
        if (!ok) {
            return Error::make("io.read", "the input file changed or could not be read");
        }
    }
    ::EVP_DigestUpdate(md.get(), update.data(), contentsAt);
    ::EVP_DigestUpdate(md.get(), update.data() + contentsAt + hexLen + 2,
                       update.size() - contentsAt - hexLen - 2);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digestLen = 0;
    ::EVP_DigestFinal_ex(md.get(), digest, &digestLen);

    auto cms =
        buildCadesDetached(credential, std::string_view(reinterpret_cast<char*>(digest), digestLen),
                           options.timestamper);
    if (!cms) {
        return cms.error();
    }
    const std::string hex = hexEncode(*cms);
    if (hex.size() > hexLen) {
        // Only a TSA token larger than any seen before can do this; the next signature reserves
        // room for it (the timestamper remembers the largest token).
        return Error::make("tsa.token_too_large",
                           "the time-stamp token is larger than the space reserved for it; "
                           "retry the request");
    }
    update.replace(contentsAt + 1, hex.size(), hex);
    if (!writeAll(outFd, update.data(), update.size())) {
        return Error::make("io.write", "cannot write the output file");
    }
    result.fieldName = fieldName;
    result.outputSize = total;
    return result;
}

Result<PadesResult> signPdf(const std::string& inPath, const std::string& outPath,
                            const Credential& credential, const PadesOptions& options) {
    return writeAtomically(outPath, options.durable,
                           [&](int fd) { return signPdfTo(inPath, fd, credential, options); });
}

}  // namespace kyso::signer
