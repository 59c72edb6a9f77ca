#include "kyso/signer/pdf_signatures.h"

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/ts.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <qpdf/Buffer.hh>
#include <qpdf/QPDF.hh>
#include <qpdf/QPDFAcroFormDocumentHelper.hh>
#include <qpdf/QPDFExc.hh>
#include <qpdf/QPDFObjectHandle.hh>
#include <set>
#include <string_view>
#include <vector>

#include "cms_check.h"
#include "kyso/hsm/encoding.h"
#include "kyso/hsm/ossl_ptr.h"
#include "mapped_file.h"
#include "pdf_modifications.h"

namespace kyso::signer {

const char* coverageName(Coverage c) noexcept {
    switch (c) {
        case Coverage::EntireFile:
            return "ENTIRE_FILE";
        case Coverage::EntireRevision:
            return "ENTIRE_REVISION";
        case Coverage::ContiguousBlockFromStart:
            return "CONTIGUOUS_BLOCK_FROM_START";
        case Coverage::Unclear:
            return "UNCLEAR";
    }
    return "UNCLEAR";
}

namespace {

constexpr long long kMaxGap = 4 * 1024 * 1024;  // a /Contents larger than this is not believed
constexpr long long kMaxRecoveryBytes = 64 * 1024 * 1024;  // a damaged file re-read in memory
// Each signature costs a digest of up to the whole file and a comparison of its revision with the
// final document: a document with more is refused rather than analysed without bound.
constexpr std::size_t kMaxSignatures = 100;
// Validation data of a /DSS read per kind: an archive re-timestamped yearly for decades holds a
// few hundred; more is not believed.
constexpr std::size_t kMaxDssItems = 2000;

// Bytes [off, off+len) of the file; empty when they are not all in it.
std::string readAt(std::string_view file, long long off, long long len) {
    if (off < 0 || len < 0 || static_cast<unsigned long long>(off + len) > file.size()) {
        return {};
    }
    return std::string(file.substr(static_cast<std::size_t>(off), static_cast<std::size_t>(len)));
}

Coverage classify(std::string_view file, const std::vector<long long>& br) {
    const long long fileSize = static_cast<long long>(file.size());
    if (br.size() != 4 || br[0] != 0) {
        return Coverage::Unclear;
    }
    for (long long v : br) {
        if (v < 0) {
            return Coverage::Unclear;
        }
    }
    const long long gapStart = br[1];
    const long long gapEnd = br[2];
    const long long end = br[2] + br[3];
    if (gapStart < 1 || gapEnd <= gapStart + 1 || gapEnd - gapStart > kMaxGap || end > fileSize ||
        br[3] < 0) {
        return Coverage::Unclear;
    }
    // The gap must be exactly the /Contents hex string, delimiters included.
    const std::string gap = readAt(file, gapStart, gapEnd - gapStart);
    if (gap.size() < 2 || gap.front() != '<' || gap.back() != '>') {
        return Coverage::Unclear;
    }
    for (std::size_t i = 1; i + 1 < gap.size(); ++i) {
        if (!std::isxdigit(static_cast<unsigned char>(gap[i]))) {
            return Coverage::Unclear;
        }
    }
    if (end == fileSize) {
        return Coverage::EntireFile;
    }
    // Only end-of-line or other whitespace after the covered bytes: still the whole file.
    if (fileSize - end <= 1024) {
        const std::string rest = readAt(file, end, fileSize - end);
        if (!rest.empty() && std::all_of(rest.begin(), rest.end(), [](char ch) {
                return std::isspace(static_cast<unsigned char>(ch)) != 0 || ch == '\0';
            })) {
            return Coverage::EntireFile;
        }
    }
    // The end of a revision: "%%EOF" and at most an end-of-line before `end`.
    const long long from = std::max(0LL, end - 8);
    std::string tail = readAt(file, from, end - from);
    while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r')) {
        tail.pop_back();
    }
    if (tail.size() >= 5 && tail.compare(tail.size() - 5, 5, "%%EOF") == 0) {
        return Coverage::EntireRevision;
    }
    return Coverage::ContiguousBlockFromStart;
}

// The element at the start of `bytes`, with the zero padding after it dropped when its length is
// definite; a BER indefinite-length encoding is kept whole (the decoder stops at its end marker).
std::string firstDer(const std::string& bytes) {
    if (bytes.size() < 2 || static_cast<unsigned char>(bytes[0]) != 0x30) {
        return {};
    }
    std::size_t len = static_cast<unsigned char>(bytes[1]);
    std::size_t hdr = 2;
    if (len == 0x80) {
        return bytes;
    }
    if (len & 0x80) {
        const std::size_t n = len & 0x7f;
        if (n == 0 || n > 4 || bytes.size() < 2 + n) {
            return {};
        }
        len = 0;
        for (std::size_t i = 0; i < n; ++i) {
            len = (len << 8) | static_cast<unsigned char>(bytes[2 + i]);
        }
        hdr += n;
    }
    return hdr + len <= bytes.size() ? bytes.substr(0, hdr + len) : std::string();
}

// Digest of the bytes a well-formed 4-number /ByteRange names.
std::string digestRanges(std::string_view file, const std::vector<long long>& br,
                         const EVP_MD* md) {
    const long long fileSize = static_cast<long long>(file.size());
    if (md == nullptr || br.size() != 4 || br[0] < 0 || br[1] < 0 || br[2] < 0 || br[3] < 0 ||
        br[0] + br[1] > fileSize || br[2] + br[3] > fileSize) {
        return {};
    }
    OsslPtr<EVP_MD_CTX> ctx(::EVP_MD_CTX_new());
    ::EVP_DigestInit_ex(ctx.get(), md, nullptr);
    for (int r = 0; r < 2; ++r) {
        ::EVP_DigestUpdate(ctx.get(), file.data() + br[2 * r],
                           static_cast<std::size_t>(br[2 * r + 1]));
    }
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    ::EVP_DigestFinal_ex(ctx.get(), out, &len);
    return std::string(reinterpret_cast<char*>(out), len);
}

// The CMS that was signed is the hex string in the /ByteRange gap, as it is in the signed
// revision; a later revision may have rewritten the dictionary's /Contents. The dictionary's
// value is used only when the gap is not a clean hex string.
std::string signedContents(std::string_view file, const PdfSignature& s) {
    const std::string gap = readAt(file, s.byteRange[1] + 1, s.byteRange[2] - s.byteRange[1] - 2);
    std::string bin;
    bin.reserve(gap.size() / 2);
    auto nibble = [](char c) {
        return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;  // classify() checked isxdigit
    };
    for (std::size_t i = 0; i + 1 < gap.size(); i += 2) {
        bin.push_back(static_cast<char>(nibble(gap[i]) << 4 | nibble(gap[i + 1])));
    }
    return bin;
}

std::string cmsOf(std::string_view file, const PdfSignature& s, QPDFObjectHandle contents) {
    if (s.coverage != Coverage::Unclear) {
        std::string der = firstDer(signedContents(file, s));
        if (!der.empty()) {
            return der;
        }
    }
    return contents.isString() ? firstDer(contents.getStringValue()) : std::string();
}

// The key of the signature's /VRI entry: the SHA-1 of the whole /Contents string, padding
// included (what Adobe, DSS and pyHanko write).
std::string vriKeyOf(std::string_view file, const PdfSignature& s, QPDFObjectHandle contents) {
    const std::string bytes = s.coverage != Coverage::Unclear ? signedContents(file, s)
                              : contents.isString()           ? contents.getStringValue()
                                                              : std::string();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    ::EVP_Digest(bytes.data(), bytes.size(), md, &len, ::EVP_sha1(), nullptr);
    return hsm::hexOf(md, len, true);
}

// The validation data of a /DSS dictionary: the decoded data of every stream of its arrays.
PdfDss readDss(QPDFObjectHandle root) {
    PdfDss d;
    QPDFObjectHandle dss = root.getKey("/DSS");
    if (!dss.isDictionary()) {
        return d;
    }
    d.present = true;
    auto streams = [](QPDFObjectHandle arr, std::vector<std::string>* out) {
        if (!arr.isArray()) {
            return;
        }
        std::set<std::string> seen;
        for (auto& item : arr.getArrayAsVector()) {
            if (!item.isStream() || out->size() >= kMaxDssItems) {
                continue;
            }
            try {
                std::shared_ptr<Buffer> b = item.getStreamData(qpdf_dl_generalized);
                std::string data(reinterpret_cast<const char*>(b->getBuffer()), b->getSize());
                if (!data.empty() && seen.insert(data).second) {
                    out->push_back(std::move(data));
                }
            } catch (const std::exception&) {
                // An undecodable stream is no validation data.
            }
        }
    };
    streams(dss.getKey("/Certs"), &d.certificatesDer);
    streams(dss.getKey("/OCSPs"), &d.ocspResponsesDer);
    streams(dss.getKey("/CRLs"), &d.crlsDer);
    QPDFObjectHandle vri = dss.getKey("/VRI");
    if (vri.isDictionary()) {
        for (const auto& k : vri.getKeys()) {
            d.vriKeys.insert(k.substr(1));
        }
    }
    return d;
}

// A PDF date (D:YYYYMMDDHHmmSSOHH'mm', ISO 32000-1 7.9.4) as UTC; 0 when malformed.
std::time_t pdfDate(std::string d) {
    if (d.rfind("D:", 0) == 0) {
        d.erase(0, 2);
    }
    auto num = [&](std::size_t at, std::size_t n, int dflt) {
        if (d.size() < at + n) {
            return dflt;
        }
        int v = 0;
        for (std::size_t i = at; i < at + n; ++i) {
            if (!std::isdigit(static_cast<unsigned char>(d[i]))) {
                return -1;
            }
            v = v * 10 + (d[i] - '0');
        }
        return v;
    };
    struct tm tm {};
    tm.tm_year = num(0, 4, -1) - 1900;
    tm.tm_mon = num(4, 2, 1) - 1;
    tm.tm_mday = num(6, 2, 1);
    tm.tm_hour = num(8, 2, 0);
    tm.tm_min = num(10, 2, 0);
    tm.tm_sec = num(12, 2, 0);
    if (tm.tm_year < 0 || tm.tm_mon < 0 || tm.tm_mday < 1 || tm.tm_hour < 0 || tm.tm_min < 0 ||
        tm.tm_sec < 0) {
        return 0;
    }
    std::time_t t = ::timegm(&tm);
    if (d.size() > 14 && (d[14] == '+' || d[14] == '-')) {
        const int hh = num(15, 2, 0);
        const int mm = d.size() > 18 ? num(18, 2, 0) : 0;
        if (hh >= 0 && mm >= 0) {
            const long off = hh * 3600L + mm * 60L;
            t += d[14] == '+' ? -off : off;
        }
    }
    return t;
}

void checkCms(PdfSignature& s, std::string_view file) {
    const Digester ranges = [&](const EVP_MD* md) { return digestRanges(file, s.byteRange, md); };
    if (s.documentTimestamp) {
        // The TSTInfo's imprint is over the byte range; the signed messageDigest is over TSTInfo.
        TimestampFacts ts = checkTimestampToken(s.cmsDer, ranges);
        ts.document = true;
        s.digestMatches = ts.imprintMatches;
        s.signatureValid = ts.signatureValid;
        s.signerSubject = ts.tsaSubject;
        s.signerCertDer = ts.tsaCertDer;
        s.certificatesDer = ts.certificatesDer;
        s.claimedSigningTime = ts.genTime;
        s.errors.insert(s.errors.end(), ts.errors.begin(), ts.errors.end());
        s.timestamps.push_back(std::move(ts));
        return;
    }
    const unsigned char* p = reinterpret_cast<const unsigned char*>(s.cmsDer.data());
    OsslPtr<CMS_ContentInfo> cms(
        ::d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(s.cmsDer.size())));
    if (!cms) {
        s.errors.push_back("/Contents is not a CMS SignedData");
        ::ERR_clear_error();
        return;
    }
    if (s.subFilter == "adbe.pkcs7.sha1") {
        // ISO 32000-1 12.8.3.3.1: the signed content is the SHA-1 digest of the byte range,
        // encapsulated; the messageDigest is over that content.
        ASN1_OCTET_STRING** content = ::CMS_get0_content(cms.get());
        const std::string embedded =
            content != nullptr && *content != nullptr
                ? std::string(reinterpret_cast<const char*>(::ASN1_STRING_get0_data(*content)),
                              static_cast<std::size_t>(::ASN1_STRING_length(*content)))
                : std::string();
        const bool rangeMatches = !embedded.empty() && embedded == ranges(::EVP_sha1());
        checkSignedData(cms.get(), digestOfBytes(embedded), &s);
        if (!rangeMatches) {
            s.digestMatches = false;
            s.errors.push_back(
                "the encapsulated SHA-1 is not that of the bytes the /ByteRange names");
        }
        return;
    }
    checkSignedData(cms.get(), ranges, &s);
    if (!s.hasSigningCertificateAttribute && s.subFilter == "ETSI.CAdES.detached") {
        s.errors.push_back("no signing-certificate(-v2) attribute binds the signer's certificate");
    }
}

void classifyAfter(QPDF& pdf, const std::string& path, PdfSignature& s) {
    switch (s.coverage) {
        case Coverage::EntireFile:
            return;  // nothing after it
        case Coverage::Unclear:
            s.modifications = Modification::Other;
            s.modificationsValidationDataOnly = false;
            s.modificationNotes.push_back("the signed revision cannot be told from the /ByteRange");
            return;
        case Coverage::EntireRevision:
        case Coverage::ContiguousBlockFromStart:
            break;
    }
    ModificationReport m = classifyModifications(pdf, path, s.byteRange[2] + s.byteRange[3]);
    s.modifications = m.level;
    s.modificationsValidationDataOnly = m.validationDataOnly;
    s.docMdp = m.docMdp;
    s.modificationNotes = std::move(m.notes);
}

}  // namespace

Result<std::vector<PdfSignature>> readPdfSignatures(const std::string& path) {
    auto doc = readPdfDocument(path);
    if (!doc) {
        return doc.error();
    }
    return std::move(doc->signatures);
}

Result<PdfDocumentSignatures> readPdfDocument(const std::string& path) {
    std::error_code ec;
    const auto fileSize = std::filesystem::file_size(path, ec);
    if (ec) {
        return Error::make("io.read", "cannot open the document");
    }
    // One read-only mapping serves qpdf, the coverage checks and the digests.
    const MappedFile mapped(path);
    if (fileSize > 0 && mapped.data() == nullptr) {
        return Error::make("io.read", "cannot read the document");
    }
    const std::string_view file(mapped.data() != nullptr ? mapped.data() : "", mapped.size());
    const long long size = static_cast<long long>(file.size());
    if (size <= 0 ||
        readAt(file, 0, std::min<long long>(size, 1024)).find("%PDF-") == std::string::npos) {
        return Error::make("pdf.not_pdf", "the document is not a PDF");
    }
    std::vector<PdfSignature> out;
    PdfDss dss;
    std::set<std::vector<long long>> seen;  // byte ranges already reported
    QPDF pdf;
    pdf.setSuppressWarnings(true);
    try {
        // A neutral name in qpdf's messages: no path of ours in an error answer.
        pdf.processMemoryFile("document", mapped.data(), mapped.size());
    } catch (const QPDFExc& e) {
        if (e.getErrorCode() == qpdf_e_password) {
            return Error::make("pdf.encrypted",
                               "the document needs a password to open; only documents that open "
                               "without one (permission-protected ones too) are verified");
        }
        return Error::make("pdf.damaged",
                           std::string("the document structure cannot be read: ") + e.what());
    } catch (const std::exception& e) {
        return Error::make("pdf.damaged",
                           std::string("the document structure cannot be read: ") + e.what());
    }
    // One signature dictionary, reported once (by its byte range).
    bool tooMany = false;
    auto add = [&](QPDFObjectHandle v, std::string fieldName) {
        if (out.size() >= kMaxSignatures) {
            tooMany = true;
            return;
        }
        PdfSignature s;
        s.fieldName = std::move(fieldName);
        QPDFObjectHandle m = v.getKey("/M");
        s.dictionaryTime = m.isString() ? pdfDate(m.getUTF8Value()) : 0;
        QPDFObjectHandle sub = v.getKey("/SubFilter");
        s.subFilter = sub.isName() ? sub.getName().substr(1) : "";
        s.documentTimestamp = s.subFilter == "ETSI.RFC3161";
        QPDFObjectHandle br = v.getKey("/ByteRange");
        if (br.isArray()) {
            for (auto& n : br.getArrayAsVector()) {
                s.byteRange.push_back(n.isInteger() ? n.getIntValue() : -1);
            }
        }
        if (!seen.insert(s.byteRange).second) {
            return;
        }
        s.coverage = classify(file, s.byteRange);
        s.cmsDer = cmsOf(file, s, v.getKey("/Contents"));
        s.vriKey = vriKeyOf(file, s, v.getKey("/Contents"));
        if (s.cmsDer.empty()) {
            s.errors.push_back("/Contents holds no DER signature");
        } else {
            checkCms(s, file);
        }
        out.push_back(std::move(s));
    };
    try {
        for (auto& field : QPDFAcroFormDocumentHelper(pdf).getFormFields()) {
            QPDFObjectHandle v = field.getValue();
            // Empty signature fields have no /V.
            if (field.getFieldType() == "/Sig" && v.isDictionary()) {
                add(v, field.getFullyQualifiedName());
            }
        }
    } catch (const std::exception&) {
        // A damaged form: the scan below still finds the signature dictionaries.
    }
    // Signature dictionaries the form does not reach (a damaged /Fields tree, a widget only on a
    // page): every dictionary with a /ByteRange and a /Contents string is a signature.
    auto scan = [&](QPDF& doc) {
        for (auto& top : doc.getAllObjects()) {
            if (!top.isDictionary()) {
                continue;
            }
            // The signature dictionary itself, or a field's direct /V.
            QPDFObjectHandle obj = top.getKey("/ByteRange").isArray() ? top : top.getKey("/V");
            if (obj.isDictionary() && obj.getKey("/ByteRange").isArray() &&
                obj.getKey("/Contents").isString()) {
                QPDFObjectHandle t = top.getKey("/T");
                add(obj, t.isString() ? t.getUTF8Value() : "");
            }
        }
    };
    try {
        scan(pdf);
        if (pdf.anyWarnings() && size <= kMaxRecoveryBytes) {
            // qpdf followed a damaged revision chain (a /Prev that points nowhere, ...): read the
            // same bytes again with the last startxref spoiled, so that qpdf rebuilds the
            // cross-reference table from every object in the file, and look for more signatures.
            std::string bytes = readAt(file, 0, size);
            const auto sx = bytes.rfind("startxref");
            if (sx != std::string::npos) {
                for (std::size_t i = sx + 9; i < bytes.size() && i < sx + 40; ++i) {
                    if (std::isdigit(static_cast<unsigned char>(bytes[i]))) {
                        bytes[i] = '9';
                    }
                }
                QPDF rebuilt;
                rebuilt.setSuppressWarnings(true);
                rebuilt.processMemoryFile("document", bytes.data(), bytes.size());
                scan(rebuilt);
            }
        }
        // Signing order: by where each signed range ends.
        std::stable_sort(out.begin(), out.end(), [](const PdfSignature& a, const PdfSignature& b) {
            const long long ea = a.byteRange.size() == 4 ? a.byteRange[2] + a.byteRange[3] : 0;
            const long long eb = b.byteRange.size() == 4 ? b.byteRange[2] + b.byteRange[3] : 0;
            return ea < eb;
        });
        if (tooMany) {
            return Error::make("pdf.too_many_signatures", "the document has more than " +
                                                              std::to_string(kMaxSignatures) +
                                                              " signatures: not analysed");
        }
        // What the later revisions changed after each signature (the last one usually covers the
        // whole file: nothing to compare).
        for (auto& sig : out) {
            classifyAfter(pdf, path, sig);
        }
        dss = readDss(pdf.getRoot());
    } catch (const std::exception& e) {
        if (out.empty()) {
            return Error::make("pdf.damaged",
                               std::string("the document structure cannot be read: ") + e.what());
        }
        // The signatures found before the damage are still reported.
    }
    return PdfDocumentSignatures{std::move(out), std::move(dss)};
}

}  // namespace kyso::signer
