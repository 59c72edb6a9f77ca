// The /DSS and document-timestamp updates of PAdES B-LT and B-LTA (see pades_ltv.h).
#include "kyso/signer/pades_ltv.h"

#include <map>
#include <qpdf/Buffer.hh>
#include <qpdf/QPDFPageDocumentHelper.hh>
#include <set>

#include "pdf_incremental.h"
#include "pdf_util.h"

namespace kyso::signer {

namespace {

// The decoded data of a stream, empty when it is not a stream or cannot be decoded.
std::string streamData(QPDFObjectHandle h) {
    if (!h.isStream()) {
        return {};
    }
    try {
        std::shared_ptr<Buffer> b = h.getStreamData(qpdf_dl_generalized);
        return std::string(reinterpret_cast<const char*>(b->getBuffer()), b->getSize());
    } catch (const std::exception&) {
        return {};
    }
}

// One of the DSS's three kinds of validation data: the streams the document has (by their data,
// as references) and those this update adds.
class DssList {
  public:
    DssList(OpenedPdf& doc, std::vector<PdfObject>* objects) : m_doc(doc), m_objects(objects) {}

    // The existing array (direct or indirect) of the document's DSS.
    void load(QPDFObjectHandle arr) {
        if (!arr.isArray()) {
            return;
        }
        for (auto& item : arr.getArrayAsVector()) {
            if (!item.isIndirect()) {
                continue;  // a direct stream cannot exist; anything else is not validation data
            }
            const std::string data = streamData(item);
            const std::string ref = item.unparse();
            if (!data.empty() && m_refs.emplace(data, ref).second) {
                m_order.push_back(ref);
            }
        }
    }

    // The reference of DER, written as a new stream unless the document has it already.
    std::string add(const std::string& der) {
        const auto it = m_refs.find(der);
        if (it != m_refs.end()) {
            return it->second;
        }
        const int num = m_doc.allocate();
        m_objects->push_back({num, pdfStream("/Filter /FlateDecode", flateEncode(der))});
        const std::string ref = std::to_string(num) + " 0 R";
        m_refs.emplace(der, ref);
        m_order.push_back(ref);
        ++m_added;
        return ref;
    }

    std::string array() const {
        std::string s = "[";
        for (const auto& r : m_order) {
            s += (s.size() > 1 ? " " : "") + r;
        }
        return s + "]";
    }
    bool empty() const { return m_order.empty(); }
    std::size_t added() const { return m_added; }

  private:
    OpenedPdf& m_doc;
    std::vector<PdfObject>* m_objects;
    std::map<std::string, std::string> m_refs;  // data -> "N G R"
    std::vector<std::string> m_order;
    std::size_t m_added = 0;
};

// The references of an existing /VRI entry's array (/Cert, /OCSP, /CRL).
std::vector<std::string> refsOf(QPDFObjectHandle arr) {
    std::vector<std::string> out;
    if (arr.isArray()) {
        for (auto& item : arr.getArrayAsVector()) {
            if (item.isIndirect()) {
                out.push_back(item.unparse());
            }
        }
    }
    return out;
}

std::string refArray(const std::vector<std::string>& refs) {
    std::string s = "[";
    std::set<std::string> seen;
    for (const auto& r : refs) {
        if (seen.insert(r).second) {
            s += (s.size() > 1 ? " " : "") + r;
        }
    }
    return s + "]";
}

}  // namespace

Result<LtvUpdateResult> appendDss(const std::string& inPath, int outFd, const DssContent& content,
                                  const hsm::Secret* password) {
    auto opened = openForUpdate(inPath, password);
    if (!opened) {
        return opened.error();
    }
    OpenedPdf& doc = *opened;
    LtvUpdateResult result;
    result.originalSize = doc.facts.size;
    std::vector<PdfObject> objects;
    try {
        // Adding validation data is part of signing: it needs what signing into an existing
        // field needs.
        if (doc.encryptor) {
            if (auto st = checkPermissions(*doc.pdf, true); !st) {
                return st.error();
            }
        }
        QPDFObjectHandle root = doc.pdf->getRoot();
        if (!root.isIndirect()) {
            return damaged("the document catalog is not an indirect object");
        }
        QPDFObjectHandle old = root.getKey("/DSS");
        if (!old.isDictionary()) {
            old = QPDFObjectHandle();
        }
        DssList certs(doc, &objects), ocsps(doc, &objects), crls(doc, &objects);
        // The number of the DSS dictionary: the existing one when it is indirect.
        const bool rewriteInPlace = old.isInitialized() && old.isIndirect();
        const int dssNum = rewriteInPlace ? old.getObjectID() : doc.allocate();
        const int dssGen = rewriteInPlace ? old.getGeneration() : 0;
        std::map<std::string, std::string> vri;  // key -> its dictionary, serialised
        if (old.isInitialized()) {
            certs.load(old.getKey("/Certs"));
            ocsps.load(old.getKey("/OCSPs"));
            crls.load(old.getKey("/CRLs"));
            QPDFObjectHandle oldVri = old.getKey("/VRI");
            if (oldVri.isDictionary()) {
                for (const auto& key : oldVri.getKeys()) {
                    QPDFObjectHandle v = oldVri.getKey(key);
                    vri[key.substr(1)] = v.unparse();
                }
            }
        }
        for (const auto& d : content.certificatesDer) {
            certs.add(d);
        }
        for (const auto& d : content.ocspResponsesDer) {
            ocsps.add(d);
        }
        for (const auto& d : content.crlsDer) {
            crls.add(d);
        }
        for (const auto& v : content.vri) {
            std::vector<std::string> c, o, r;
            QPDFObjectHandle existing = old.isInitialized() && old.getKey("/VRI").isDictionary()
                                            ? old.getKey("/VRI").getKey("/" + v.key)
                                            : QPDFObjectHandle();
            if (existing.isInitialized() && existing.isDictionary()) {
                c = refsOf(existing.getKey("/Cert"));
                o = refsOf(existing.getKey("/OCSP"));
                r = refsOf(existing.getKey("/CRL"));
            }
            for (const auto& d : v.certificatesDer) {
                c.push_back(certs.add(d));
            }
            for (const auto& d : v.ocspResponsesDer) {
                o.push_back(ocsps.add(d));
            }
            for (const auto& d : v.crlsDer) {
                r.push_back(crls.add(d));
            }
            std::string entry = "<<";
            if (!c.empty()) {
                entry += " /Cert " + refArray(c);
            }
            if (!o.empty()) {
                entry += " /OCSP " + refArray(o);
            }
            if (!r.empty()) {
                entry += " /CRL " + refArray(r);
            }
            vri[v.key] = entry + " >>";
        }
        std::string dss = "<<\n/Type /DSS";
        if (!certs.empty()) {
            dss += "\n/Certs " + certs.array();
        }
        if (!ocsps.empty()) {
            dss += "\n/OCSPs " + ocsps.array();
        }
        if (!crls.empty()) {
            dss += "\n/CRLs " + crls.array();
        }
        if (!vri.empty()) {
            dss += "\n/VRI <<";
            for (const auto& [key, value] : vri) {
                dss += "\n/" + key + " " + value;
            }
            dss += "\n>>";
        }
        dss += "\n>>";
        objects.push_back({dssNum, dss, dssGen});
        if (!rewriteInPlace) {
            root.replaceKey("/DSS", placeholderRef(dssNum));
            // The extension that introduced the DSS to PDF 1.7 (ISO 32000-2 has it built in).
            QPDFObjectHandle ext = root.getKey("/Extensions");
            if (doc.pdf->getPDFVersion() < "2.0" && !ext.isIndirect() &&
                (!ext.isDictionary() || !ext.hasKey("/ESIC"))) {
                QPDFObjectHandle e =
                    ext.isDictionary() ? ext : QPDFObjectHandle::newDictionary();
                e.replaceKey("/ESIC", QPDFObjectHandle::parse(
                                          "<< /BaseVersion /1.7 /ExtensionLevel 5 >>"));
                root.replaceKey("/Extensions", e);
            }
            objects.push_back({root.getObjectID(), serialize(root), root.getGeneration()});
        }
        result.certificatesAdded = certs.added();
        result.ocspResponsesAdded = ocsps.added();
        result.crlsAdded = crls.added();
    } catch (const std::exception& e) {
        return damaged(std::string("qpdf cannot read the document: ") + e.what());
    }
    if (doc.pdf->anyWarnings()) {
        return damaged("the document's structure is damaged: " +
                       doc.pdf->getWarnings().front().getMessageDetail());
    }
    auto total = writeUpdate(inPath, outFd, doc, std::move(objects), nullptr);
    if (!total) {
        return total.error();
    }
    result.outputSize = *total;
    return result;
}

Result<LtvUpdateResult> appendDocumentTimestamp(const std::string& inPath, int outFd,
                                                Timestamper& timestamper, hsm::HashAlg hash,
                                                const hsm::Secret* password) {
    auto opened = openForUpdate(inPath, password);
    if (!opened) {
        return opened.error();
    }
    OpenedPdf& doc = *opened;
    LtvUpdateResult result;
    result.originalSize = doc.facts.size;
    std::vector<PdfObject> objects;
    const int sigNum = doc.allocate();
    try {
        if (doc.encryptor) {
            if (auto st = checkPermissions(*doc.pdf, false); !st) {
                return st.error();
            }
        }
        QPDFObjectHandle root = doc.pdf->getRoot();
        if (!root.isIndirect()) {
            return damaged("the document catalog is not an indirect object");
        }
        auto pages = QPDFPageDocumentHelper(*doc.pdf).getAllPages();
        if (pages.empty() || doc.pdf->anyWarnings()) {
            return damaged(pages.empty() ? "the document has no page"
                                         : "the document's structure is damaged: " +
                                               doc.pdf->getWarnings().front().getMessageDetail());
        }
        // An invisible widget on the first page, as for an invisible signature.
        result.fieldName = newSignatureFieldName(root);
        const int widgetNum = doc.allocate();
        const std::string ap = pdfaPart(root) > 0 ? emptyAppearance(doc, &objects) : "";
        addSignatureWidget(root, pages.front().getObjectHandle(), widgetNum, sigNum,
                           result.fieldName, "[0 0 0 0]", ap, &objects);
    } catch (const std::exception& e) {
        return damaged(std::string("qpdf cannot read the document: ") + e.what());
    }
    if (doc.pdf->anyWarnings()) {
        return damaged("the document's structure is damaged: " +
                       doc.pdf->getWarnings().front().getMessageDetail());
    }
    auto maxToken = timestamper.maxTokenSize(hash);
    if (!maxToken) {
        return maxToken.error();
    }
    result.contentsBytes = *maxToken;
    SignatureSlot slot;
    slot.num = sigNum;
    slot.hexLen = *maxToken * 2;
    slot.hash = hash;
    // No string but /Contents, which stays in clear: nothing to encrypt in this dictionary.
    std::string body = "<<\n/Type /DocTimeStamp\n/Filter /Adobe.PPKLite\n/SubFilter /ETSI.RFC3161\n";
    std::size_t br = 0;
    std::size_t ct = 0;
    const std::string fields = byteRangeAndContents(slot.hexLen, &br, &ct);
    slot.byteRangeAt = body.size() + br;
    slot.contentsAt = body.size() + ct;
    slot.body = body + fields + "\n>>";
    slot.contents = [&](std::string_view digest) { return timestamper.timestamp(digest, hash); };
    auto total = writeUpdate(inPath, outFd, doc, std::move(objects), &slot);
    if (!total) {
        return total.error();
    }
    result.outputSize = *total;
    return result;
}

}  // namespace kyso::signer
