#include "kyso/signer/pdf_signatures.h"

#include <fcntl.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/ts.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <qpdf/QPDF.hh>
#include <qpdf/QPDFAcroFormDocumentHelper.hh>
#include <qpdf/QPDFObjectHandle.hh>
#include <set>
#include <vector>

#include "kyso/hsm/ossl_ptr.h"

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

// Reads [off, off+len) of the file; empty on failure.
std::string readAt(int fd, long long off, long long len) {
    std::string out(static_cast<std::size_t>(len), '\0');
    long long done = 0;
    while (done < len) {
        const ssize_t n = ::pread(fd, out.data() + done, static_cast<std::size_t>(len - done),
                                  static_cast<off_t>(off + done));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return {};
        }
        done += n;
    }
    return out;
}

Coverage classify(int fd, long long fileSize, const std::vector<long long>& br) {
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
    const std::string gap = readAt(fd, gapStart, gapEnd - gapStart);
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
        const std::string rest = readAt(fd, end, fileSize - end);
        if (!rest.empty() && std::all_of(rest.begin(), rest.end(), [](char ch) {
                return std::isspace(static_cast<unsigned char>(ch)) != 0 || ch == '\0';
            })) {
            return Coverage::EntireFile;
        }
    }
    // The end of a revision: "%%EOF" and at most an end-of-line before `end`.
    const long long from = std::max(0LL, end - 8);
    std::string tail = readAt(fd, from, end - from);
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

// Digest of the bytes a well-formed 4-number /ByteRange names, streamed.
std::string digestRanges(int fd, long long fileSize, const std::vector<long long>& br,
                         const EVP_MD* md) {
    if (md == nullptr || br.size() != 4 || br[0] < 0 || br[1] < 0 || br[2] < 0 || br[3] < 0 ||
        br[0] + br[1] > fileSize || br[2] + br[3] > fileSize) {
        return {};
    }
    OsslPtr<EVP_MD_CTX> ctx(::EVP_MD_CTX_new());
    ::EVP_DigestInit_ex(ctx.get(), md, nullptr);
    std::vector<char> buf(1 << 16);
    for (int r = 0; r < 2; ++r) {
        long long off = br[2 * r];
        long long left = br[2 * r + 1];
        while (left > 0) {
            const ssize_t n = ::pread(
                fd, buf.data(), static_cast<std::size_t>(std::min<long long>(left, buf.size())),
                static_cast<off_t>(off));
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                return {};
            }
            ::EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<std::size_t>(n));
            off += n;
            left -= n;
        }
    }
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    ::EVP_DigestFinal_ex(ctx.get(), out, &len);
    return std::string(reinterpret_cast<char*>(out), len);
}

std::string subjectOf(X509* x) {
    OsslPtr<BIO> bio(::BIO_new(::BIO_s_mem()));
    ::X509_NAME_print_ex(bio.get(), ::X509_get_subject_name(x), 0,
                         XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    char* data = nullptr;
    const long n = ::BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

// The CMS that was signed is the hex string in the /ByteRange gap, as it is in the signed
// revision; a later revision may have rewritten the dictionary's /Contents. The dictionary's
// value is used only when the gap is not a clean hex string.
std::string cmsOf(int fd, const PdfSignature& s, QPDFObjectHandle contents) {
    if (s.coverage != Coverage::Unclear) {
        const std::string gap = readAt(fd, s.byteRange[1] + 1, s.byteRange[2] - s.byteRange[1] - 2);
        std::string bin;
        bin.reserve(gap.size() / 2);
        for (std::size_t i = 0; i + 1 < gap.size(); i += 2) {
            bin.push_back(static_cast<char>(std::stoi(gap.substr(i, 2), nullptr, 16)));
        }
        std::string der = firstDer(bin);
        if (!der.empty()) {
            return der;
        }
    }
    return contents.isString() ? firstDer(contents.getStringValue()) : std::string();
}

void checkCms(PdfSignature& s, int fd, long long fileSize) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(s.cmsDer.data());
    OsslPtr<CMS_ContentInfo> cms(
        ::d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(s.cmsDer.size())));
    STACK_OF(CMS_SignerInfo)* sis = cms ? ::CMS_get0_SignerInfos(cms.get()) : nullptr;
    if (sis == nullptr || sk_CMS_SignerInfo_num(sis) < 1) {
        s.errors.push_back("/Contents is not a CMS SignedData with a signer");
        ::ERR_clear_error();
        return;
    }
    CMS_SignerInfo* si = sk_CMS_SignerInfo_value(sis, 0);
    ::CMS_set1_signers_certs(cms.get(), nullptr, 0);
    X509* signer = nullptr;
    X509_ALGOR* digestAlg = nullptr;
    ::CMS_SignerInfo_get0_algs(si, nullptr, &signer, &digestAlg, nullptr);
    if (signer != nullptr) {
        s.signerSubject = subjectOf(signer);
    } else {
        s.errors.push_back("the signer's certificate is not in the CMS");
    }
    // ESS signing-certificate(-v2): the signed attributes must name this certificate by its hash
    // (RFC 5035), so that another certificate with the same key cannot be substituted. The hash
    // is looked for in the attribute's DER under each algorithm the attribute may use.
    for (int nid : {NID_id_smime_aa_signingCertificateV2, NID_id_smime_aa_signingCertificate}) {
        auto* attr = static_cast<ASN1_STRING*>(
            ::CMS_signed_get0_data_by_OBJ(si, ::OBJ_nid2obj(nid), -3, V_ASN1_SEQUENCE));
        if (attr == nullptr || signer == nullptr) {
            continue;
        }
        const std::string der(reinterpret_cast<const char*>(::ASN1_STRING_get0_data(attr)),
                              static_cast<std::size_t>(::ASN1_STRING_length(attr)));
        for (const EVP_MD* h : {::EVP_sha1(), ::EVP_sha256(), ::EVP_sha384(), ::EVP_sha512()}) {
            unsigned char md[EVP_MAX_MD_SIZE];
            unsigned int len = 0;
            if (::X509_digest(signer, h, md, &len) == 1 &&
                der.find(std::string(reinterpret_cast<char*>(md), len)) != std::string::npos) {
                s.signingCertificateBound = true;
            }
        }
        if (!s.signingCertificateBound) {
            s.errors.push_back("the signing-certificate attribute names another certificate");
        }
        break;
    }
    if (!s.signingCertificateBound && s.subFilter == "ETSI.CAdES.detached") {
        s.errors.push_back("no signing-certificate(-v2) attribute binds the signer's certificate");
    }
    const ASN1_OBJECT* mdOid = nullptr;
    ::X509_ALGOR_get0(&mdOid, nullptr, nullptr, digestAlg);
    const EVP_MD* md = mdOid != nullptr ? ::EVP_get_digestbyobj(mdOid) : nullptr;
    if (::CMS_signed_get_attr_count(si) < 0) {
        s.errors.push_back("signatures without signed attributes are not checked");
    } else if (signer != nullptr) {
        s.signatureValid = ::CMS_SignerInfo_verify(si) == 1;
        if (!s.signatureValid) {
            s.errors.push_back("the signature value does not verify");
        }
    }
    if (s.documentTimestamp) {
        // The TSTInfo's imprint is over the byte range; the signed messageDigest is over TSTInfo.
        ASN1_OCTET_STRING** content = ::CMS_get0_content(cms.get());
        if (content == nullptr || *content == nullptr) {
            s.errors.push_back("the document timestamp has no TSTInfo");
            return;
        }
        const unsigned char* q = ::ASN1_STRING_get0_data(*content);
        TS_TST_INFO* tst = ::d2i_TS_TST_INFO(nullptr, &q, ::ASN1_STRING_length(*content));
        if (tst == nullptr) {
            s.errors.push_back("the document timestamp's content is not a TSTInfo");
            ::ERR_clear_error();
            return;
        }
        TS_MSG_IMPRINT* imp = ::TS_TST_INFO_get_msg_imprint(tst);
        const ASN1_OBJECT* impOid = nullptr;
        ::X509_ALGOR_get0(&impOid, nullptr, nullptr, ::TS_MSG_IMPRINT_get_algo(imp));
        const std::string rangesForImprint =
            digestRanges(fd, fileSize, s.byteRange, ::EVP_get_digestbyobj(impOid));
        ASN1_OCTET_STRING* msg = ::TS_MSG_IMPRINT_get_msg(imp);
        const std::string imprint(reinterpret_cast<const char*>(::ASN1_STRING_get0_data(msg)),
                                  static_cast<std::size_t>(::ASN1_STRING_length(msg)));
        s.digestMatches = !rangesForImprint.empty() && imprint == rangesForImprint;
        ::TS_TST_INFO_free(tst);
    } else {
        auto* attr = static_cast<ASN1_OCTET_STRING*>(::CMS_signed_get0_data_by_OBJ(
            si, ::OBJ_nid2obj(NID_pkcs9_messageDigest), -3, V_ASN1_OCTET_STRING));
        const std::string signedDigest =
            attr != nullptr
                ? std::string(reinterpret_cast<const char*>(::ASN1_STRING_get0_data(attr)),
                              static_cast<std::size_t>(::ASN1_STRING_length(attr)))
                : std::string();
        const std::string ranges = digestRanges(fd, fileSize, s.byteRange, md);
        s.digestMatches = !ranges.empty() && signedDigest == ranges;
    }
    if (!s.digestMatches) {
        s.errors.push_back("the signed digest is not that of the bytes the /ByteRange names");
    }
    ::ERR_clear_error();
}

}  // namespace

Result<std::vector<PdfSignature>> readPdfSignatures(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return Error::make("io.read", "cannot open the document");
    }
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    const off_t size = ::lseek(fd, 0, SEEK_END);
    if (size <= 0 ||
        readAt(fd, 0, std::min<long long>(size, 1024)).find("%PDF-") == std::string::npos) {
        return Error::make("pdf.not_pdf", "the document is not a PDF");
    }
    std::vector<PdfSignature> out;
    std::set<std::vector<long long>> seen;  // byte ranges already reported
    QPDF pdf;
    pdf.setSuppressWarnings(true);
    try {
        pdf.processFile(path.c_str());
    } catch (const std::exception& e) {
        return Error::make("pdf.damaged",
                           std::string("the document structure cannot be read: ") + e.what());
    }
    // One signature dictionary, reported once (by its byte range).
    auto add = [&](QPDFObjectHandle v, std::string fieldName) {
        PdfSignature s;
        s.fieldName = std::move(fieldName);
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
        s.coverage = classify(fd, size, s.byteRange);
        s.cmsDer = cmsOf(fd, s, v.getKey("/Contents"));
        if (s.cmsDer.empty()) {
            s.errors.push_back("/Contents holds no DER signature");
        } else {
            checkCms(s, fd, size);
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
            std::string bytes = readAt(fd, 0, size);
            const auto sx = bytes.rfind("startxref");
            if (sx != std::string::npos) {
                for (std::size_t i = sx + 9; i < bytes.size() && i < sx + 40; ++i) {
                    if (std::isdigit(static_cast<unsigned char>(bytes[i]))) {
                        bytes[i] = '9';
                    }
                }
                QPDF rebuilt;
                rebuilt.setSuppressWarnings(true);
                rebuilt.processMemoryFile(path.c_str(), bytes.data(), bytes.size());
                scan(rebuilt);
            }
        }
        // Signing order: by where each signed range ends.
        std::stable_sort(out.begin(), out.end(), [](const PdfSignature& a, const PdfSignature& b) {
            const long long ea = a.byteRange.size() == 4 ? a.byteRange[2] + a.byteRange[3] : 0;
            const long long eb = b.byteRange.size() == 4 ? b.byteRange[2] + b.byteRange[3] : 0;
            return ea < eb;
        });
    } catch (const std::exception& e) {
        if (out.empty()) {
            return Error::make("pdf.damaged",
                               std::string("the document structure cannot be read: ") + e.what());
        }
        // The signatures found before the damage are still reported.
    }
    return out;
}

}  // namespace kyso::signer
