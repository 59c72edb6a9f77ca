// Long-term PAdES (ETSI EN 319 142-1): the incremental updates that turn a B-T signature into
// B-LT (a document security store, /DSS, with the validation data of the signatures) and B-LTA
// (a document timestamp over everything before it). What goes into the DSS is chosen by the
// caller (policies/ltv.h gathers paths and revocation data); this writes it.
//
// Like signPdf, the input is a byte-for-byte prefix of the output, the output is written whole or
// not at all, and an encrypted document gets an update encrypted with its own key.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kyso/hsm/result.h"
#include "kyso/hsm/secret.h"
#include "kyso/signer/timestamper.h"

namespace kyso::signer {

// Validation data for the /DSS (ISO 32000-2, 12.8.4.3; EN 319 142-1, 5.4.2).
struct DssContent {
    std::vector<std::string> certificatesDer;   // X.509 certificates, DER
    std::vector<std::string> ocspResponsesDer;  // OCSPResponse, DER, as the responder sent it
    std::vector<std::string> crlsDer;           // CertificateList, DER
    // A /VRI entry: the validation data of one signature, keyed by the upper-case hex SHA-1 of
    // its /Contents string (PdfSignature::vriKey). Items are DER values that are also in the
    // lists above (or already in the document's DSS).
    struct Vri {
        std::string key;
        std::vector<std::string> certificatesDer, ocspResponsesDer, crlsDer;
    };
    std::vector<Vri> vri;
    bool empty() const {
        return certificatesDer.empty() && ocspResponsesDer.empty() && crlsDer.empty() &&
               vri.empty();
    }
};

struct LtvUpdateResult {
    std::uint64_t originalSize = 0;
    std::uint64_t outputSize = 0;
    // DSS: the streams added (items already in the document's DSS are not written again).
    std::size_t certificatesAdded = 0, ocspResponsesAdded = 0, crlsAdded = 0;
    // Document timestamp: its field, and the bytes reserved for the token.
    std::string fieldName;
    std::uint64_t contentsBytes = 0;
};

// Appends an update whose /DSS holds what the document's DSS held (its arrays may be direct or
// indirect; the existing streams are referred to, not copied) plus `content`, each item once.
// Errors: those of signPdf for opening the document (pdf.*, io.*), and pdf.permissions for an
// encrypted document whose permissions do not allow changing it (bit 4 or bit 6).
Result<LtvUpdateResult> appendDss(const std::string& inPath, int outFd, const DssContent& content,
                                  const hsm::Secret* password = nullptr);

// Appends a document timestamp (EN 319 142-1, 5.4.3): a new invisible signature field whose value
// is a /DocTimeStamp dictionary, /SubFilter /ETSI.RFC3161, whose /Contents is an RFC 3161 token
// over the digest (of `hash`) of its /ByteRange, i.e. the whole file but the token. Errors: those
// of appendDss, pdf.certified_no_changes is not one (a document timestamp is allowed by DocMDP
// P=1), and the timestamper's (tsa.*).
Result<LtvUpdateResult> appendDocumentTimestamp(const std::string& inPath, int outFd,
                                                Timestamper& timestamper,
                                                hsm::HashAlg hash = hsm::HashAlg::Sha256,
                                                const hsm::Secret* password = nullptr);

}  // namespace kyso::signer
