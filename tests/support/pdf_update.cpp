#include "pdf_update.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>
#include <qpdf/Buffer.hh>
#include <qpdf/QPDF.hh>
#include <qpdf/QPDFAcroFormDocumentHelper.hh>
#include <qpdf/QPDFObjectHandle.hh>
#include <qpdf/QPDFPageDocumentHelper.hh>
#include <regex>
#include <stdexcept>

#include "test_env.h"

namespace kyso::test {

namespace {

// A QPDF over bytes the caller keeps alive.
void open(QPDF& pdf, const std::string& bytes, const std::string& description) {
    pdf.setSuppressWarnings(true);
    try {
        pdf.processMemoryFile(description.c_str(), bytes.data(), bytes.size());
    } catch (const std::exception& e) {
        throw std::runtime_error("pdf_update: cannot read " + description + ": " + e.what());
    }
}

std::string readPdf(const std::string& path) {
    std::string bytes = readFile(path);
    if (bytes.empty()) {
        throw std::runtime_error("pdf_update: cannot read " + path);
    }
    return bytes;
}

long long lastStartxref(const std::string& pdf) {
    const auto sx = pdf.rfind("startxref");
    if (sx == std::string::npos) {
        throw std::runtime_error("pdf_update: no startxref");
    }
    std::size_t p = sx + 9;
    while (p < pdf.size() && std::isspace(static_cast<unsigned char>(pdf[p]))) {
        ++p;
    }
    long long v = 0;
    bool digits = false;
    while (p < pdf.size() && std::isdigit(static_cast<unsigned char>(pdf[p]))) {
        v = v * 10 + (pdf[p] - '0');
        digits = true;
        ++p;
    }
    if (!digits) {
        throw std::runtime_error("pdf_update: startxref has no offset");
    }
    return v;
}

std::string xrefLine(long long offset, int gen) {
    char line[32];
    std::snprintf(line, sizeof line, "%010lld %05d n \n", offset, gen);
    return line;
}

int objectId(QPDFObjectHandle h) {
    return h.isIndirect() ? h.getObjectID() : 0;
}

}  // namespace

std::string withPdfUpdate(const std::string& pdf, const PdfUpdate& update) {
    QPDF prev;
    open(prev, pdf, "previous revision");
    QPDFObjectHandle trailer = prev.getTrailer();
    const long long prevXref = lastStartxref(pdf);
    long long size =
        trailer.getKey("/Size").isInteger() ? trailer.getKey("/Size").getIntValue() : 0;

    std::string out = pdf;
    if (out.empty() || (out.back() != '\n' && out.back() != '\r')) {
        out += '\n';
    }
    // (number, generation, offset) for every entry, in writing order.
    std::vector<PdfXrefPointer> entries;
    for (const auto& o : update.unlisted) {
        out +=
            std::to_string(o.num) + " " + std::to_string(o.gen) + " obj\n" + o.body + "\nendobj\n";
    }
    for (const auto& o : update.objects) {
        entries.push_back({o.num, o.gen, static_cast<long long>(out.size())});
        out +=
            std::to_string(o.num) + " " + std::to_string(o.gen) + " obj\n" + o.body + "\nendobj\n";
    }
    entries.insert(entries.end(), update.pointers.begin(), update.pointers.end());
    const long long xrefAt = static_cast<long long>(out.size());
    out += "xref\n";
    if (entries.empty()) {
        out += "0 0\n";
    }
    for (const auto& e : entries) {
        out += std::to_string(e.num) + " 1\n" + xrefLine(e.offset, e.gen);
        size = std::max<long long>(size, e.num + 1);
    }
    for (const auto& o : update.unlisted) {
        size = std::max<long long>(size, o.num + 1);
    }
    out += "trailer\n<< /Size " + std::to_string(size);
    out += " /Root " + (update.root.empty() ? trailer.getKey("/Root").unparse() : update.root);
    for (const char* key : {"/Info", "/ID"}) {
        if (trailer.hasKey(key)) {
            out += std::string(" ") + key + " " + trailer.getKey(key).unparse();
        }
    }
    if (update.xrefStm >= 0) {
        out += " /XRefStm " + std::to_string(update.xrefStm);
    }
    out += " /Prev " + std::to_string(prevXref) + " >>\nstartxref\n" + std::to_string(xrefAt) +
           "\n%%EOF\n";
    return out;
}

std::vector<long long> unlistedOffsets(const std::string& pdf, const PdfUpdate& update) {
    // The same layout as withPdfUpdate: an end-of-line if needed, then the unlisted objects.
    long long at = static_cast<long long>(pdf.size());
    if (pdf.empty() || (pdf.back() != '\n' && pdf.back() != '\r')) {
        ++at;
    }
    std::vector<long long> offsets;
    for (const auto& o : update.unlisted) {
        offsets.push_back(at);
        at += static_cast<long long>(std::to_string(o.num).size() + std::to_string(o.gen).size() +
                                     6 + o.body.size() + 8);
    }
    return offsets;
}

std::string pdfXrefStreamBody(const std::vector<PdfXrefStreamRow>& rows, int size) {
    std::string data;
    std::string index;
    for (const auto& r : rows) {
        data.push_back(static_cast<char>(r.type));
        for (int b = 3; b >= 0; --b) {
            data.push_back(static_cast<char>((r.field2 >> (8 * b)) & 0xff));
        }
        data.push_back(static_cast<char>((r.field3 >> 8) & 0xff));
        data.push_back(static_cast<char>(r.field3 & 0xff));
        index += (index.empty() ? "" : " ") + std::to_string(r.num) + " 1";
    }
    return pdfStream(
        data, "/Type /XRef /Size " + std::to_string(size) + " /W [1 4 2] /Index [" + index + "]");
}

void appendPdfUpdate(const std::string& path, const PdfUpdate& update) {
    writeFile(path, withPdfUpdate(readPdf(path), update));
}

std::string pdfStream(const std::string& data, const std::string& extraKeys) {
    return "<< " + extraKeys + (extraKeys.empty() ? "" : " ") + "/Length " +
           std::to_string(data.size()) + " >>\nstream\n" + data + "\nendstream";
}

std::string makePdf(const std::vector<std::string>& bodies) {
    std::string pdf = "%PDF-1.7\n%\xe2\xe3\xcf\xd3\n";
    std::vector<std::size_t> offsets;
    for (std::size_t i = 0; i < bodies.size(); ++i) {
        offsets.push_back(pdf.size());
        pdf += std::to_string(i + 1) + " 0 obj\n" + bodies[i] + "\nendobj\n";
    }
    const std::size_t xref = pdf.size();
    pdf += "xref\n0 " + std::to_string(bodies.size() + 1) + "\n0000000000 65535 f \n";
    for (auto o : offsets) {
        pdf += xrefLine(static_cast<long long>(o), 0);
    }
    pdf += "trailer\n<< /Size " + std::to_string(bodies.size() + 1) +
           " /Root 1 0 R >>\nstartxref\n" + std::to_string(xref) + "\n%%EOF\n";
    return pdf;
}

PdfInfo readPdfInfo(const std::string& path) {
    const std::string bytes = readPdf(path);
    QPDF pdf;
    open(pdf, bytes, path);
    PdfInfo info;
    info.fileSize = static_cast<long long>(bytes.size());
    info.startxref = lastStartxref(bytes);
    QPDFObjectHandle trailer = pdf.getTrailer();
    QPDFObjectHandle root = trailer.getKey("/Root");
    info.root = objectId(root);
    info.info = objectId(trailer.getKey("/Info"));
    info.size = trailer.getKey("/Size").isInteger()
                    ? static_cast<int>(trailer.getKey("/Size").getIntValue())
                    : 0;
    info.pagesRoot = objectId(root.getKey("/Pages"));
    info.acroForm = objectId(root.getKey("/AcroForm"));
    for (auto& page : QPDFPageDocumentHelper(pdf).getAllPages()) {
        QPDFObjectHandle p = page.getObjectHandle();
        info.pages.push_back(p.getObjectID());
        QPDFObjectHandle c = p.getKey("/Contents");
        if (c.isArray() && c.getArrayNItems() > 0) {
            c = c.getArrayItem(0);
        }
        info.contents.push_back(objectId(c));
        info.annots.push_back(objectId(p.getKey("/Annots")));
    }
    QPDFAcroFormDocumentHelper form(pdf);
    for (auto& field : form.getFormFields()) {
        PdfFieldInfo f;
        f.name = field.getFullyQualifiedName();
        f.num = field.getObjectHandle().getObjectID();
        f.type = field.getFieldType();
        f.isSigned = f.type == "/Sig" && field.getValue().isDictionary();
        for (auto& w : form.getAnnotationsForField(field)) {
            f.widgets.push_back(w.getObjectHandle().getObjectID());
        }
        info.fields.push_back(std::move(f));
    }
    return info;
}

std::string pdfObjectBody(const std::string& path, int num, int gen) {
    const std::string bytes = readPdf(path);
    QPDF pdf;
    open(pdf, bytes, path);
    QPDFObjectHandle h = pdf.getObjectByObjGen(QPDFObjGen(num, gen));
    if (!h.isStream()) {
        return h.unparseResolved();
    }
    std::shared_ptr<Buffer> data = h.getRawStreamData();
    const std::string raw(reinterpret_cast<const char*>(data->getBuffer()), data->getSize());
    QPDFObjectHandle dict = h.getDict().shallowCopy();
    dict.replaceKey("/Length", QPDFObjectHandle::newInteger(static_cast<long long>(raw.size())));
    return dict.unparse() + "\nstream\n" + raw + "\nendstream";
}

std::string pdfEditedDict(const std::string& path, int num,
                          const std::vector<std::pair<std::string, std::string>>& changes,
                          int gen) {
    const std::string bytes = readPdf(path);
    QPDF pdf;
    open(pdf, bytes, path);
    QPDFObjectHandle h = pdf.getObjectByObjGen(QPDFObjGen(num, gen));
    if (!h.isDictionary()) {
        throw std::runtime_error("pdf_update: object " + std::to_string(num) +
                                 " is not a dictionary");
    }
    // References become names while qpdf holds them, so that objects that do not exist yet
    // survive, and are put back after serialising.
    static const std::regex ref(R"((\d+)\s+(\d+)\s+R\b)");
    static const std::regex placeholder(R"(/KysoTestRef_(\d+)_(\d+))");
    for (const auto& [key, value] : changes) {
        if (value.empty()) {
            h.removeKey(key);
        } else {
            h.replaceKey(
                key, QPDFObjectHandle::parse(std::regex_replace(value, ref, "/KysoTestRef_$1_$2")));
        }
    }
    return std::regex_replace(h.unparseResolved(), placeholder, "$1 $2 R");
}

long long pdfObjectOffset(const std::string& path, int num, int gen, long long revisionEnd) {
    std::string bytes = readPdf(path);
    if (revisionEnd >= 0) {
        if (revisionEnd > static_cast<long long>(bytes.size())) {
            throw std::runtime_error("pdf_update: revision end past the end of the file");
        }
        bytes.resize(static_cast<std::size_t>(revisionEnd));
    }
    QPDF pdf;
    open(pdf, bytes, path);
    const auto table = pdf.getXRefTable();
    auto it = table.find(QPDFObjGen(num, gen));
    if (it == table.end() || it->second.getType() != 1) {
        return -1;
    }
    return it->second.getOffset();
}

}  // namespace kyso::test
