// PAdES B-B as an incremental update: qpdf reads the structure, we append the update.
//
// The update holds: the signature dictionary, the field (merged with its widget, or the existing
// field being filled), the rewritten page (or its /Annots array), the rewritten AcroForm (or the
// catalog when the AcroForm is direct or absent), and a cross-reference section in the style of
// the original (table or stream) whose /Prev points at the original's last one.
#include "kyso/signer/pades.h"

#include <openssl/evp.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <qpdf/Buffer.hh>
#include <qpdf/QPDF.hh>
#include <qpdf/QPDFAcroFormDocumentHelper.hh>
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
#include "pdf_incremental.h"
#include "pdf_util.h"

namespace kyso::signer {

namespace {

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
    std::size_t br = 0;
    std::size_t ct = 0;
    const std::string slot = byteRangeAndContents(contentsHexLen, &br, &ct);
    *byteRangeOffset = s.size() + br;
    *contentsOffset = s.size() + ct;
    s += slot;
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
    auto opened = openForUpdate(inPath, options.password);
    if (!opened) {
        return opened.error();
    }
    OpenedPdf& doc = *opened;
    QPDF& pdf = *doc.pdf;
    PadesResult result;
    result.originalSize = doc.facts.size;
    result.xrefStream = doc.facts.xrefStream;
    result.hybridXref = doc.hybridXref;
    result.encrypted = doc.encryptor.has_value();
    if (doc.encryptor) {
        try {
            if (auto st = checkPermissions(pdf, options.fieldName.has_value()); !st) {
                return st.error();
            }
        } catch (const std::exception& e) {
            return damaged(std::string("qpdf cannot read the document's encryption: ") + e.what());
        }
    }

    QPDFObjectHandle root;
    std::vector<QPDFPageObjectHelper> pages;
    // What the update writes, each object with its serialised body, in writing order.
    std::vector<PdfObject> objects;
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

        sigNum = doc.allocate();

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
                    [&] { return doc.allocate(); }, &objects, result.pdfaPart == 1);
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

        const int widgetNum = newField ? doc.allocate() : 0;
        if (newField) {
            fieldName = newSignatureFieldName(root);
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
                    appearance, *geometry, std::nullopt, [&] { return doc.allocate(); }, &objects,
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
                ap = emptyAppearance(doc, &objects);
            }
            addSignatureWidget(root, pages[static_cast<std::size_t>(pageIndex)].getObjectHandle(),
                               widgetNum, sigNum, fieldName, rect, ap, &objects);
        } else {
            markSigned(root, &objects);
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

    // /Contents holds the CMS in hex; its size is fixed before signing, from a full-size build.
    auto maxCms = maxCadesSize(credential, options.timestamper);
    if (!maxCms) {
        return maxCms.error();
    }
    result.contentsBytes = *maxCms;
    const std::size_t hexLen = *maxCms * 2;

    SignatureSlot slot;
    slot.num = sigNum;
    slot.hexLen = hexLen;
    slot.hash = credential.hash;
    slot.body = sigDictionary(options, hexLen,
                              options.signingTime.value_or(std::chrono::system_clock::now()),
                              &slot.byteRangeAt, &slot.contentsAt,
                              doc.encryptor ? &*doc.encryptor : nullptr, sigNum);
    slot.contents = [&](std::string_view digest) {
        return buildCadesDetached(credential, digest, options.timestamper);
    };
    auto total = writeUpdate(inPath, outFd, doc, std::move(objects), &slot);
    if (!total) {
        return total.error();
    }
    result.fieldName = fieldName;
    result.outputSize = *total;
    return result;
}

Result<PadesResult> signPdf(const std::string& inPath, const std::string& outPath,
                            const Credential& credential, const PadesOptions& options) {
    return writeAtomically(outPath, options.durable,
                           [&](int fd) { return signPdfTo(inPath, fd, credential, options); });
}

}  // namespace kyso::signer
