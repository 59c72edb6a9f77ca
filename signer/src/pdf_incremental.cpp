// Private: the incremental update (see pdf_incremental.h).
#include "pdf_incremental.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <qpdf/Buffer.hh>
#include <qpdf/QPDFExc.hh>
#include <set>

#include "kyso/hsm/encoding.h"
#include "kyso/hsm/ossl_ptr.h"
#include "output_file.h"

namespace kyso::signer {

namespace {

constexpr std::size_t kTailWindow = 4096;
constexpr std::size_t kCopyChunk = 1 << 16;

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

}  // namespace

// A reference that qpdf does not know yet: a unique name, replaced after unparsing.
QPDFObjectHandle placeholderRef(int num) {
    return QPDFObjectHandle::newName("/KysoRef" + std::to_string(num) + "Ref");
}

static std::string resolvePlaceholders(std::string s) {
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

Result<OpenedPdf> openForUpdate(const std::string& inPath, const hsm::Secret* password) {
    auto facts = inspectFile(inPath);
    if (!facts) {
        return facts.error();
    }
    OpenedPdf doc;
    doc.facts = *facts;
    doc.pdf = std::make_unique<QPDF>();
    QPDF& pdf = *doc.pdf;
    pdf.setSuppressWarnings(true);
    try {
        // qpdf names the input in its messages: a neutral name, so that no path of ours (a
        // spool file) reaches an error answer.
        FILE* f = std::fopen(inPath.c_str(), "rb");
        if (f == nullptr) {
            return Error::make("io.read", "cannot open the document");
        }
        pdf.processFile("document", f, true, password != nullptr ? password->c_str() : nullptr);
    } catch (const QPDFExc& e) {
        if (e.getErrorCode() == qpdf_e_password) {
            return Error::make("pdf.encrypted",
                               password != nullptr
                                   ? "the password given does not open the document"
                                   : "the document needs a password to open; send it with the "
                                     "request (see docs/API.md), never in a URL");
        }
        return damaged(std::string("qpdf cannot read the document: ") + e.getMessageDetail());
    } catch (const std::exception& e) {
        return damaged(std::string("qpdf cannot read the document: ") + e.what());
    }
    try {
        auto enc = UpdateEncryptor::of(pdf);
        if (!enc) {
            return enc.error();
        }
        if (*enc) {
            doc.encryptor.emplace(std::move(**enc));
        }
    } catch (const std::exception& e) {
        return damaged(std::string("qpdf cannot read the document's encryption: ") + e.what());
    }
    // Opening warnings: a reconstructed cross-reference table means readers may see different
    // objects than the chain our /Prev continues; refuse. Other opening warnings (a /Size larger
    // than needed, whitespace before "xref") leave the chain intact and are tolerated.
    for (const auto& w : pdf.getWarnings()) {
        const std::string m = w.getMessageDetail();
        if (m.find("reconstruct") != std::string::npos || m.find("damaged") != std::string::npos) {
            return damaged("the document's cross-reference table is broken (" + m + ")");
        }
    }
    try {
        QPDFObjectHandle trailer = pdf.getTrailer();
        // A hybrid-reference file (a classic table whose trailer has /XRefStm: what Word writes)
        // is updated like any classic file: the update is a classic table whose trailer has no
        // /XRefStm and whose /Prev is the original's last section. Every reader then meets the
        // new objects first, and a reader that follows /XRefStm still finds, through /Prev, the
        // stream that lists the objects kept in object streams (ISO 32000-1, 7.5.8.4). The
        // /Size of the update counts them.
        doc.hybridXref = trailer.hasKey("/XRefStm");
        // New object numbers start above everything the original knows about.
        long long size =
            trailer.getKey("/Size").isInteger() ? trailer.getKey("/Size").getIntValue() : 0;
        for (auto& [og, entry] : pdf.getXRefTable()) {
            size = std::max<long long>(size, og.getObj() + 1);
        }
        doc.nextNum = static_cast<int>(size);
    } catch (const std::exception& e) {
        return damaged(std::string("qpdf cannot read the document: ") + e.what());
    }
    return doc;
}

std::string newSignatureFieldName(QPDFObjectHandle root) {
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
    for (int i = 1;; ++i) {
        std::string name = "Signature" + std::to_string(i);
        if (!topNames.count(name)) {
            return name;
        }
    }
}

namespace {

// The AcroForm: say that the document holds signatures, and list the new field (widgetNum, 0
// for none).
void updateAcroForm(QPDFObjectHandle root, int widgetNum, std::vector<PdfObject>* objects) {
    QPDFObjectHandle acroForm = root.getKey("/AcroForm");
    QPDFObjectHandle fields =
        acroForm.isDictionary() ? acroForm.getKey("/Fields") : QPDFObjectHandle();
    QPDFObjectHandle form = acroForm.isDictionary() ? acroForm : QPDFObjectHandle::newDictionary();
    form.replaceKey("/SigFlags", QPDFObjectHandle::newInteger(3));
    if (widgetNum != 0) {
        if (fields.isInitialized() && fields.isArray() && fields.isIndirect()) {
            fields.appendItem(placeholderRef(widgetNum));
            objects->push_back({fields.getObjectID(), serialize(fields), fields.getGeneration()});
        } else {
            QPDFObjectHandle arr = fields.isInitialized() && fields.isArray()
                                       ? fields
                                       : QPDFObjectHandle::newArray();
            arr.appendItem(placeholderRef(widgetNum));
            form.replaceKey("/Fields", arr);
        }
    }
    if (acroForm.isDictionary() && acroForm.isIndirect()) {
        objects->push_back(
            {acroForm.getObjectID(), serialize(acroForm), acroForm.getGeneration()});
    } else {
        root.replaceKey("/AcroForm", form);
        objects->push_back({root.getObjectID(), serialize(root), root.getGeneration()});
    }
}

}  // namespace

std::string emptyAppearance(OpenedPdf& doc, std::vector<PdfObject>* objects) {
    const int formNum = doc.allocate();
    objects->push_back({formNum, pdfStream("/Type /XObject /Subtype /Form /BBox [0 0 0 0]", "")});
    return "\n/AP << /N " + std::to_string(formNum) + " 0 R >>";
}

void addSignatureWidget(QPDFObjectHandle root, QPDFObjectHandle page, int widgetNum, int sigNum,
                        const std::string& fieldName, const std::string& rect,
                        const std::string& ap, std::vector<PdfObject>* objects) {
    objects->push_back(
        {widgetNum, "<<\n/Type /Annot\n/Subtype /Widget\n/FT /Sig\n/T " + pdfTextString(fieldName) +
                        "\n/V " + std::to_string(sigNum) + " 0 R\n/F 132\n/Rect " + rect + ap +
                        "\n/P " + std::to_string(page.getObjectID()) + " " +
                        std::to_string(page.getGeneration()) + " R\n>>"});
    QPDFObjectHandle annots = page.getKey("/Annots");
    if (annots.isArray() && annots.isIndirect()) {
        annots.appendItem(placeholderRef(widgetNum));
        objects->push_back({annots.getObjectID(), serialize(annots), annots.getGeneration()});
    } else {
        QPDFObjectHandle arr = annots.isArray() ? annots : QPDFObjectHandle::newArray();
        arr.appendItem(placeholderRef(widgetNum));
        page.replaceKey("/Annots", arr);
        objects->push_back({page.getObjectID(), serialize(page), page.getGeneration()});
    }
    updateAcroForm(root, widgetNum, objects);
}

void markSigned(QPDFObjectHandle root, std::vector<PdfObject>* objects) {
    updateAcroForm(root, 0, objects);
}

std::string byteRangeAndContents(std::size_t hexLen, std::size_t* byteRangeAt,
                                 std::size_t* contentsAt) {
    std::string s = "/ByteRange [";
    *byteRangeAt = s.size();
    // Four numbers of up to 20 digits each, patched in place once the offsets are known.
    s += std::string(4 * 21, ' ');
    s += "]\n/Contents ";
    *contentsAt = s.size();
    s += '<' + std::string(hexLen, '0') + '>';
    return s;
}

Result<std::uint64_t> writeUpdate(const std::string& inPath, int outFd, OpenedPdf& doc,
                                  std::vector<PdfObject> objects, SignatureSlot* slot) {
    const FileFacts& facts = doc.facts;
    QPDFObjectHandle trailer = doc.pdf->getTrailer();
    if (doc.encryptor) {
        try {
            for (auto& o : objects) {
                o.body = doc.encryptor->object(o.num, o.gen, o.body);
            }
        } catch (const std::exception& e) {
            return damaged(std::string("the update cannot be encrypted: ") + e.what());
        }
    }

    // Serialise the update. Offsets are relative to the start of the update.
    const std::uint64_t origSize = facts.size;
    std::string update = facts.endsWithEol ? "" : "\n";
    std::map<int, std::uint64_t> offsets;
    std::size_t byteRangeAt = 0;
    std::size_t contentsAt = 0;
    int maxNum = 0;
    if (slot != nullptr) {
        offsets[slot->num] = update.size();
        const std::string head = std::to_string(slot->num) + " 0 obj\n";
        byteRangeAt = update.size() + head.size() + slot->byteRangeAt;
        contentsAt = update.size() + head.size() + slot->contentsAt;
        update += head + slot->body + "\nendobj\n";
        maxNum = slot->num;
    }
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
    if (doc.encryptor) {
        // The update is encrypted like the rest: readers need the same security handler.
        trailerKeys += "\n/Encrypt " + trailer.getKey("/Encrypt").unparse();
    }
    trailerKeys += "\n/Prev " + std::to_string(facts.startxref);

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

    if (facts.xrefStream) {
        const int xrefNum = std::max(doc.nextNum, maxNum + 1);
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
        update += "trailer\n<<\n/Size " + std::to_string(std::max(doc.nextNum, maxNum + 1)) +
                  "\n" + trailerKeys + "\n>>\nstartxref\n" + std::to_string(xrefAt) + "\n%%EOF\n";
    }

    const std::uint64_t total = origSize + update.size();
    OsslPtr<EVP_MD_CTX> md;
    if (slot != nullptr) {
        // Byte range: everything but the /Contents hex string including its delimiters.
        const std::uint64_t cStart = origSize + contentsAt;
        const std::uint64_t cEnd = cStart + slot->hexLen + 2;
        const std::string br = "0 " + std::to_string(cStart) + " " + std::to_string(cEnd) + " " +
                               std::to_string(total - cEnd);
        update.replace(byteRangeAt, br.size(), br);
        md.reset(::EVP_MD_CTX_new());
        if (!md || ::EVP_DigestInit_ex(md.get(), hsm::evpMd(slot->hash), nullptr) != 1) {
            return Error::make("cms.build", "cannot start the document digest");
        }
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
            if (md) {
                ::EVP_DigestUpdate(md.get(), buf.data(), take);
            }
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
    if (slot != nullptr) {
        const std::size_t after = contentsAt + slot->hexLen + 2;
        ::EVP_DigestUpdate(md.get(), update.data(), contentsAt);
        ::EVP_DigestUpdate(md.get(), update.data() + after, update.size() - after);
        unsigned char digest[EVP_MAX_MD_SIZE];
        unsigned int digestLen = 0;
        ::EVP_DigestFinal_ex(md.get(), digest, &digestLen);
        auto der = slot->contents(std::string_view(reinterpret_cast<char*>(digest), digestLen));
        if (!der) {
            return der.error();
        }
        const std::string hex = hsm::hexOf(*der, true);
        if (hex.size() > slot->hexLen) {
            // Only a TSA token larger than any seen before can do this; the next signature
            // reserves room for it (the timestamper remembers the largest token).
            return Error::make("tsa.token_too_large",
                               "the time-stamp token is larger than the space reserved for it; "
                               "retry the request");
        }
        update.replace(contentsAt + 1, hex.size(), hex);
    }
    if (!writeAll(outFd, update.data(), update.size())) {
        return Error::make("io.write", "cannot write the output file");
    }
    return total;
}

}  // namespace kyso::signer
