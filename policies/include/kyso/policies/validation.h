// The validation policy: from the cryptographic facts of a signature (signer/) and its certificate
// path and revocation status (ca-bridge/) to the ETSI TS 119 102-1 indication of each signature
// and of the document, in the report shape of the contract (modelled on DSS's simple report).
#pragma once

#include <ctime>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "kyso/ca-bridge/certificate_pool.h"
#include "kyso/ca-bridge/revocation.h"
#include "kyso/hsm/result.h"
#include "kyso/policies/signing_policy.h"
#include "kyso/signer/jws.h"
#include "kyso/signer/pdf_signatures.h"

namespace kyso::policies {

struct ValidationPolicy {
    std::string name = "default";
    // The most later revisions may change after a signature. A certified document's DocMDP
    // level lowers it (P=1: validation data and document timestamps only, P=2: form filling,
    // P=3: annotations); OTHER never passes.
    signer::Modification maxModifications = signer::Modification::FormFilling;
    // Algorithm constraints (national rules: SHA-2, RSA >= 2048, ECDSA >= 256): a signature
    // below them is INDETERMINATE / SIG_CONSTRAINTS_FAILURE.
    std::set<std::string> digests = {"SHA-256", "SHA-384", "SHA-512"};
    unsigned rsaMinBits = 2048;
    unsigned ecMinBits = 256;
};

// What a validation needs; every pointer is borrowed.
struct ValidationContext {
    std::vector<std::string> anchorsDer;        // trust anchors (configuration)
    std::vector<std::string> intermediatesDer;  // besides those the signature carries
    // Null: revocation cannot be checked, and a chain that would pass is INDETERMINATE /
    // TRY_LATER (the national rule: never a silent pass).
    ca::RevocationChecker* revocation = nullptr;
    std::time_t validationTime = 0;  // 0: now
    // false: offline, revocation only from the validation data the document carries (a PDF's
    // DSS, CAdES revocation-values); nothing is fetched.
    bool network = true;
    // Parses each distinct certificate once across validations (null: parse every time).
    ca::CertificatePool* certificates = nullptr;
    ValidationPolicy policy;
};

struct CertificateReport {
    std::string subjectDN, issuerDN, serialNumber;  // serial in upper-case hex
    std::time_t notBefore = 0, notAfter = 0;
    bool trusted = false;  // a configured trust anchor
};

struct TimestampReport {
    std::string type;  // SIGNATURE, DOCUMENT
    std::time_t genTime = 0;
    std::string tsa;  // the TSA's subject DN
    std::string indication, subIndication;
    std::vector<std::string> errors;
};

// One revocation status a validation used: for which certificate, and where it came from.
struct ValidationDataReport {
    std::string certificate;  // subject DN
    std::string usedFor;      // SIGNER (the signer's path), TIMESTAMP (a TSA's path)
    std::string status;       // GOOD, REVOKED, UNKNOWN, UNAVAILABLE
    std::string source;       // OCSP, CRL; empty when UNAVAILABLE
    std::string origin;       // DOCUMENT, NETWORK, CACHE; empty when UNAVAILABLE
    std::time_t thisUpdate = 0;
};

struct SignatureReport {
    std::string id;  // "S-" and the first 16 bytes of the SHA-256 of the CMS, hex
    std::string format;
    std::string fieldName;
    std::string signedBy;  // the signer's common name
    std::string subjectDN;
    std::time_t claimedSigningTime = 0;  // 0: none claimed
    std::time_t bestSignatureTime = 0;
    std::string indication;                 // TOTAL_PASSED, TOTAL_FAILED, INDETERMINATE
    std::string subIndication;              // empty when passed
    std::string coverage;                   // PDF only
    std::string modificationsAfterSigning;  // PDF only
    std::vector<CertificateReport> certificateChain;
    bool revocationChecked = false;  // a revocation status was looked for
    ca::RevocationStatus revocation;
    std::vector<TimestampReport> timestamps;
    // Every revocation status looked for: the signer's path, then its timestamps' TSAs'.
    std::vector<ValidationDataReport> validationData;
    std::vector<std::string> errors, warnings;
    bool passed() const { return indication == "TOTAL_PASSED"; }
};

struct ValidationReport {
    std::time_t validationTime = 0;
    std::string policy;
    std::string indication;  // TOTAL_PASSED, TOTAL_FAILED, INDETERMINATE, NO_SIGNATURE_FOUND
    std::vector<SignatureReport> signatures;
    int validSignaturesCount() const;
};

// The policy of a policy file's [validation] section.
ValidationPolicy validationPolicyOf(const ValidationRules& rules);

// The report of the PDF at `path`. Errors (the input cannot be read as a PDF at all) are
// "io.read", "pdf.not_pdf", "pdf.damaged"; everything else is in the report.
Result<ValidationReport> validatePdf(const std::string& path, const ValidationContext& ctx);

// The report of a CMS / CAdES signature (DER or PEM); `dataPath` the detached data's file.
// Errors: "cms.invalid", "cms.data_missing", "io.read".
Result<ValidationReport> validateCms(const std::string& cms, const std::string& dataPath,
                                     const ValidationContext& ctx);

// The report of a sealed receipt: a JWS (JAdES) from what signer::verifyJws found in it (the
// caller has the facts already: it reads the payload too), or an XML document with an
// enveloped XAdES signature (error "xml.invalid": nothing to check).
Result<ValidationReport> validateJws(const signer::JwsFacts& facts, std::string_view jws,
                                     const ValidationContext& ctx);
Result<ValidationReport> validateXml(std::string_view xml, const ValidationContext& ctx);

// "NONE", ... as in the report; false for an unknown name.
bool parseModification(const std::string& name, signer::Modification* out);

}  // namespace kyso::policies
