#include "kyso/policies/validation.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <algorithm>

#include "kyso/ca-bridge/crl.h"
#include "kyso/ca-bridge/path.h"
#include "kyso/hsm/encoding.h"
#include "kyso/hsm/ossl_ptr.h"
#include "kyso/signer/cms_verify.h"
#include "kyso/signer/jws.h"
#include "kyso/signer/xades.h"

namespace kyso::policies {

namespace {

constexpr const char* kPassed = "TOTAL_PASSED";
constexpr const char* kFailed = "TOTAL_FAILED";
constexpr const char* kIndeterminate = "INDETERMINATE";

std::string commonName(const std::string& certDer, ca::CertificatePool* pool) {
    OsslPtr<X509> x = ca::parseCertificate(pool, certDer);
    X509_NAME* n = x ? ::X509_get_subject_name(x.get()) : nullptr;
    const int idx = n != nullptr ? ::X509_NAME_get_index_by_NID(n, NID_commonName, -1) : -1;
    if (idx < 0) {
        return {};
    }
    unsigned char* utf8 = nullptr;
    const int len =
        ::ASN1_STRING_to_UTF8(&utf8, ::X509_NAME_ENTRY_get_data(::X509_NAME_get_entry(n, idx)));
    std::string out = len > 0 ? std::string(reinterpret_cast<char*>(utf8), len) : std::string();
    ::OPENSSL_free(utf8);
    return out;
}

CertificateReport describe(const std::string& der, bool trusted, ca::CertificatePool* pool) {
    CertificateReport c;
    OsslPtr<X509> x = ca::parseCertificate(pool, der);
    if (!x) {
        return c;
    }
    c.subjectDN = nameToString(::X509_get_subject_name(x.get()));
    c.issuerDN = nameToString(::X509_get_issuer_name(x.get()));
    c.serialNumber = ca::serialHex(::X509_get0_serialNumber(x.get()));
    c.notBefore = timeOf(::X509_get0_notBefore(x.get()));
    c.notAfter = timeOf(::X509_get0_notAfter(x.get()));
    c.trusted = trusted;
    return c;
}

std::string signatureId(const std::string& cmsDer) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    ::EVP_Digest(cmsDer.data(), cmsDer.size(), md, &len, ::EVP_sha256(), nullptr);
    return "S-" + hsm::hexOf(md, std::min(len, 16u), true);
}

bool isAnchor(const std::string& der, const ValidationContext& ctx) {
    return std::find(ctx.anchorsDer.begin(), ctx.anchorsDer.end(), der) != ctx.anchorsDer.end();
}

// Marks the report failed (or indeterminate) unless an earlier, stronger finding stands: the
// first TOTAL_FAILED wins; INDETERMINATE only replaces a pass.
void verdict(SignatureReport* r, const char* indication, const char* sub) {
    if (r->indication == kFailed) {
        return;
    }
    if (std::string(indication) == kFailed || r->indication == kPassed || r->indication.empty()) {
        r->indication = indication;
        r->subIndication = sub;
    }
}

struct TrustOutcome {
    std::string indication, subIndication;
    std::vector<std::string> chainDer;
    ca::RevocationStatus revocation;  // of the leaf
    bool revocationChecked = false;
    bool revocationFromDocument = true;  // every status of the path came from the document
    std::vector<std::string> errors, warnings;
};

// What one document carries for its own validation (a PDF's /DSS, CAdES values).
struct Embedded {
    ca::RevocationEvidence revocation;
    std::vector<std::string> certificatesDer;
};

// What a path is checked for: the time its validity is judged at (`at`, proven by a timestamp
// when hasPoe), and the time the certificate was used (issuedAfter: a revocation status issued
// after it shows the certificate was not revoked then, however old the status is now).
struct TrustQuery {
    std::time_t at = 0;
    bool hasPoe = false;
    std::time_t issuedAfter = 0;
    ca::Usage usage = ca::Usage::Signing;
    std::string usedFor;  // SIGNER, TIMESTAMP: for the report's validation data
};

// Path at q.at, then the revocation status of every certificate of the path but the anchor:
// from the document's validation data first, then (unless offline) the network.
TrustOutcome trust(const std::string& leafDer, std::vector<std::string> certsDer,
                   const ValidationContext& ctx, const Embedded* embedded, const TrustQuery& q,
                   std::time_t now, std::vector<ValidationDataReport>* uses) {
    TrustOutcome t;
    if (leafDer.empty()) {
        t.indication = kIndeterminate;
        t.subIndication = "NO_CERTIFICATE_CHAIN_FOUND";
        t.errors.push_back("the signer's certificate is not in the signature");
        return t;
    }
    certsDer.insert(certsDer.end(), ctx.intermediatesDer.begin(), ctx.intermediatesDer.end());
    if (embedded != nullptr) {
        certsDer.insert(certsDer.end(), embedded->certificatesDer.begin(),
                        embedded->certificatesDer.end());
    }
    auto path = ca::validatePath(leafDer, certsDer, ctx.anchorsDer, q.at, q.usage,
                                 ctx.certificates);
    if (!path) {
        t.indication = kIndeterminate;
        t.subIndication = "NO_CERTIFICATE_CHAIN_FOUND";
        t.errors.push_back(path.error().detail);
        return t;
    }
    t.chainDer = path->chainDer;
    t.errors = path->errors;
    if (!path->passed()) {
        t.indication = path->indication;
        t.subIndication = path->subIndication;
        if (path->subIndication == "EXPIRED") {
            // Expired at the time judged: a timestamp proves it was used after expiry
            // (TOTAL_FAILED); without one nothing proves it was used in time.
            t.indication = q.hasPoe ? kFailed : kIndeterminate;
            t.subIndication = q.hasPoe ? "EXPIRED" : "OUT_OF_BOUNDS_NO_POE";
        } else if (path->subIndication == "NOT_YET_VALID" && q.hasPoe) {
            t.indication = kFailed;
        }
        return t;
    }
    t.indication = kPassed;
    ca::CheckOptions opts;
    opts.embedded = embedded != nullptr ? &embedded->revocation : nullptr;
    opts.issuedAfter = q.issuedAfter;
    opts.network = ctx.network;
    for (std::size_t i = 0; i + 1 < t.chainDer.size(); ++i) {
        ca::RevocationStatus st;
        if (ctx.revocation != nullptr) {
            st = ctx.revocation->check(t.chainDer[i], t.chainDer[i + 1], now, opts);
        } else {
            st.warnings.push_back("revocation checking is not configured");
        }
        if (i == 0) {
            t.revocation = st;
            t.revocationChecked = true;
        }
        t.revocationFromDocument = t.revocationFromDocument && st.origin == "DOCUMENT";
        if (uses != nullptr) {
            ValidationDataReport u;
            u.certificate = describe(t.chainDer[i], false, ctx.certificates).subjectDN;
            u.usedFor = q.usedFor;
            u.status = st.status;
            u.source = st.source;
            u.origin = st.origin;
            u.thisUpdate = st.thisUpdate;
            uses->push_back(std::move(u));
        }
        const std::string who = i == 0 ? (q.usage == ca::Usage::TimeStamping
                                              ? "the TSA's certificate"
                                              : "the signer's certificate")
                                       : "a CA certificate";
        for (const auto& w : st.warnings) {
            t.warnings.push_back(who + ": " + w);
        }
        if (st.status == "REVOKED") {
            if (q.hasPoe && st.revocationTime > q.at) {
                t.warnings.push_back(who + " was revoked after the time a timestamp proves");
                continue;
            }
            t.indication = kFailed;
            t.subIndication = "REVOKED";
            t.errors.push_back(who + " is revoked");
            return t;
        }
        if (st.status != "GOOD" && t.indication == kPassed) {
            t.indication = kIndeterminate;
            t.subIndication = "TRY_LATER";
            t.warnings.push_back(who + (st.status == "UNKNOWN"
                                            ? ": the revocation status is unknown to its issuer"
                                            : ": no revocation status is available now"));
        }
    }
    return t;
}

std::vector<CertificateReport> chainReport(const TrustOutcome& t, const std::string& leafDer,
                                           const ValidationContext& ctx) {
    std::vector<CertificateReport> out;
    if (t.chainDer.empty()) {
        if (!leafDer.empty()) {
            out.push_back(describe(leafDer, isAnchor(leafDer, ctx), ctx.certificates));
        }
        return out;
    }
    for (const auto& d : t.chainDer) {
        out.push_back(describe(d, isAnchor(d, ctx), ctx.certificates));
    }
    return out;
}

// A timestamp's own validation: integrity, then its TSA's path and revocation. The TSA's
// certificate must be valid now, or when a later document timestamp proves the token existed
// (`poe`, 0 for none): that is what archive timestamps are for (ETSI EN 319 102-1, 5.6.2.1).
TimestampReport checkTimestamp(const signer::TimestampFacts& ts, const ValidationContext& ctx,
                               const Embedded* embedded, std::time_t poe, std::time_t now,
                               bool* fromDocument, std::vector<ValidationDataReport>* uses) {
    TimestampReport r;
    r.type = ts.document ? "DOCUMENT" : "SIGNATURE";
    r.genTime = ts.genTime;
    r.tsa = ts.tsaSubject;
    r.errors = ts.errors;
    if (!ts.imprintMatches) {
        r.indication = kFailed;
        r.subIndication = "HASH_FAILURE";
        return r;
    }
    if (!ts.signatureValid) {
        r.indication = kFailed;
        r.subIndication = "SIG_CRYPTO_FAILURE";
        return r;
    }
    TrustQuery q;
    q.at = poe != 0 ? poe : now;
    q.hasPoe = poe != 0;
    q.issuedAfter = ts.genTime;
    q.usage = ca::Usage::TimeStamping;
    q.usedFor = "TIMESTAMP";
    TrustOutcome t = trust(ts.tsaCertDer, ts.certificatesDer, ctx, embedded, q, now, uses);
    if (fromDocument != nullptr) {
        *fromDocument = t.indication == kPassed && t.revocationFromDocument;
    }
    r.indication = t.indication;
    r.subIndication = t.subIndication;
    r.errors.insert(r.errors.end(), t.errors.begin(), t.errors.end());
    r.errors.insert(r.errors.end(), t.warnings.begin(), t.warnings.end());
    return r;
}

// The signature's own integrity: digest, signature value, signing-certificate binding.
void judgeIntegrity(const signer::SignatureFacts& f, const ValidationContext& ctx,
                    SignatureReport* r) {
    r->subjectDN = f.signerSubject;
    r->signedBy = commonName(f.signerCertDer, ctx.certificates);
    r->errors.insert(r->errors.end(), f.errors.begin(), f.errors.end());
    if (!f.digestMatches) {
        verdict(r, kFailed, "HASH_FAILURE");
    } else if (!f.signatureValid) {
        verdict(r, kFailed, "SIG_CRYPTO_FAILURE");
    } else if (f.hasSigningCertificateAttribute && !f.signingCertificateBound) {
        verdict(r, kFailed, "FORMAT_FAILURE");
    }
    // The validation policy's algorithm constraints.
    if (!f.digestAlgorithm.empty() && !ctx.policy.digests.count(f.digestAlgorithm)) {
        r->errors.push_back("the digest algorithm " + f.digestAlgorithm +
                            " is not accepted by the validation policy");
        verdict(r, kIndeterminate, "SIG_CONSTRAINTS_FAILURE");
    }
    OsslPtr<X509> signer = ca::parseCertificate(ctx.certificates, f.signerCertDer);
    EVP_PKEY* key = signer ? ::X509_get0_pubkey(signer.get()) : nullptr;
    if (key != nullptr) {
        const int bits = ::EVP_PKEY_get_bits(key);
        const bool rsa = ::EVP_PKEY_is_a(key, "RSA") || ::EVP_PKEY_is_a(key, "RSA-PSS");
        const bool ec = ::EVP_PKEY_is_a(key, "EC");
        const unsigned min = rsa ? ctx.policy.rsaMinBits : ec ? ctx.policy.ecMinBits : 0;
        if ((rsa || ec) && bits < static_cast<int>(min)) {
            r->errors.push_back(std::string("the signer's ") + (rsa ? "RSA" : "EC") + " key has " +
                                std::to_string(bits) +
                                " bits, below the validation policy's minimum of " +
                                std::to_string(min));
            verdict(r, kIndeterminate, "SIG_CONSTRAINTS_FAILURE");
        }
    }
    ::ERR_clear_error();
}

// What validating one signature of a document takes besides the signature: the document's
// validation data, and the earliest time a later document timestamp proves it existed at.
struct DocumentView {
    const Embedded* embedded = nullptr;
    std::time_t poe = 0;  // 0: no later document timestamp passed
};

// What judgeTrust found that decides the signature's level.
struct TrustLevel {
    bool timestamped = false;   // a signature timestamp passed
    bool fromDocument = false;  // every revocation status came from the document
};

// Timestamps, the best signature time, the signer's path and revocation.
TrustLevel judgeTrust(const signer::SignatureFacts& f, const ValidationContext& ctx,
                      std::time_t now, bool documentTimestamp, const DocumentView& view,
                      SignatureReport* r) {
    TrustLevel level;
    bool timestampsFromDocument = true;
    // The earliest valid signature timestamp is the best signature time (a proof of existence).
    std::time_t best = 0;
    for (const auto& ts : f.timestamps) {
        if (documentTimestamp) {
            continue;  // the signature is the timestamp: its TSA is judged below
        }
        bool fromDoc = false;
        TimestampReport tr =
            checkTimestamp(ts, ctx, view.embedded, view.poe, now, &fromDoc, &r->validationData);
        timestampsFromDocument = timestampsFromDocument && fromDoc;
        if (tr.indication == kPassed) {
            best = best == 0 ? ts.genTime : std::min(best, ts.genTime);
        } else if (tr.indication == kFailed) {
            verdict(r, kFailed, tr.subIndication.c_str());
            r->errors.push_back("the signature timestamp fails: " +
                                (tr.errors.empty() ? tr.subIndication : tr.errors.front()));
        } else {
            r->warnings.push_back("the signature timestamp is not trusted: " +
                                  (tr.errors.empty() ? tr.subIndication : tr.errors.front()));
        }
        r->timestamps.push_back(std::move(tr));
    }
    level.timestamped = best != 0;
    // Without a signature timestamp of its own, a later document timestamp proves when the
    // signature existed (PAdES: the document timestamp of B-LTA gives a B-B signature its time).
    if (best == 0 && view.poe != 0 && !documentTimestamp) {
        best = view.poe;
    }
    TrustQuery q;
    if (documentTimestamp) {
        // The TSA's certificate must be valid now, or when a later document timestamp proves
        // this one existed; its revocation status must be issued after this one's time.
        const std::time_t gen = f.timestamps.empty() ? 0 : f.timestamps.front().genTime;
        r->bestSignatureTime = gen != 0 ? gen : now;
        q.at = view.poe != 0 ? view.poe : now;
        q.hasPoe = view.poe != 0;
        q.issuedAfter = gen;
        q.usage = ca::Usage::TimeStamping;
        q.usedFor = "TIMESTAMP";
    } else {
        r->bestSignatureTime = best != 0 ? best : now;
        q.at = r->bestSignatureTime;
        q.hasPoe = best != 0;
        q.issuedAfter = best;
        q.usage = ca::Usage::Signing;
        q.usedFor = "SIGNER";
    }
    TrustOutcome t = trust(f.signerCertDer, f.certificatesDer, ctx, view.embedded, q, now,
                           &r->validationData);
    level.fromDocument = t.indication == kPassed && t.revocationFromDocument &&
                         timestampsFromDocument;
    r->certificateChain = chainReport(t, f.signerCertDer, ctx);
    r->revocationChecked = t.revocationChecked;
    r->revocation = t.revocation;
    r->errors.insert(r->errors.end(), t.errors.begin(), t.errors.end());
    r->warnings.insert(r->warnings.end(), t.warnings.begin(), t.warnings.end());
    if (r->indication.empty()) {
        r->indication = kPassed;
    }
    if (t.indication != kPassed) {
        verdict(r, t.indication.c_str(), t.subIndication.c_str());
    }
    if (documentTimestamp && !f.timestamps.empty()) {
        TimestampReport tr;
        tr.type = "DOCUMENT";
        tr.genTime = f.timestamps.front().genTime;
        tr.tsa = f.timestamps.front().tsaSubject;
        tr.indication = r->indication;
        tr.subIndication = r->subIndication;
        r->timestamps.push_back(std::move(tr));
    }
    return level;
}

// The PAdES baseline level a signature reaches (EN 319 142-1, 6): T with a timestamp (its own,
// or a later document timestamp), LT when the document's validation data sufficed for its path
// and its timestamps' paths, LTA when a later document timestamp also covers it.
std::string padesFormat(bool cadesSubFilter, const TrustLevel& level, const DocumentView& view) {
    if (!cadesSubFilter) {
        return "PKCS7";
    }
    if (!level.timestamped && view.poe == 0) {
        return "PAdES-BASELINE-B";
    }
    if (view.embedded == nullptr || !level.fromDocument) {
        return "PAdES-BASELINE-T";
    }
    return view.poe != 0 ? "PAdES-BASELINE-LTA" : "PAdES-BASELINE-LT";
}

void judgeModifications(const signer::PdfSignature& s, const ValidationPolicy& policy,
                        SignatureReport* r) {
    r->modificationsAfterSigning = signer::modificationName(s.modifications);
    if (s.modifications == signer::Modification::None) {
        return;
    }
    signer::Modification allowed = policy.maxModifications;
    bool validationDataOnly = false;
    if (s.docMdp == 1) {
        validationDataOnly = true;
    } else if (s.docMdp == 2) {
        allowed = std::min(allowed, signer::Modification::FormFilling);
    } else if (s.docMdp == 3) {
        allowed = std::min(allowed, signer::Modification::Annotations);
    }
    const bool ok =
        s.modifications != signer::Modification::Other &&
        (validationDataOnly ? s.modificationsValidationDataOnly : s.modifications <= allowed);
    for (const auto& n : s.modificationNotes) {
        (ok ? r->warnings : r->errors).push_back("after signing: " + n);
    }
    if (!ok) {
        r->errors.push_back(std::string("the document was changed after signing (") +
                            signer::modificationName(s.modifications) + ") beyond what " +
                            (s.docMdp != 0 ? "its certification (DocMDP) level" : "the policy") +
                            " allows");
        verdict(r, kFailed, "FORMAT_FAILURE");
    }
}

ValidationReport finish(ValidationReport rep) {
    if (rep.signatures.empty()) {
        rep.indication = "NO_SIGNATURE_FOUND";
        return rep;
    }
    rep.indication = kPassed;
    for (const auto& s : rep.signatures) {
        if (s.indication == kFailed) {
            rep.indication = kFailed;
        } else if (s.indication != kPassed && rep.indication == kPassed) {
            rep.indication = kIndeterminate;
        }
    }
    return rep;
}

}  // namespace

int ValidationReport::validSignaturesCount() const {
    return static_cast<int>(std::count_if(signatures.begin(), signatures.end(),
                                          [](const SignatureReport& s) { return s.passed(); }));
}

bool parseModification(const std::string& name, signer::Modification* out) {
    for (auto m : {signer::Modification::None, signer::Modification::SignaturesOnly,
                   signer::Modification::FormFilling, signer::Modification::Annotations,
                   signer::Modification::Other}) {
        if (name == signer::modificationName(m)) {
            *out = m;
            return true;
        }
    }
    return false;
}

ValidationPolicy validationPolicyOf(const ValidationRules& rules) {
    ValidationPolicy p;
    p.name = rules.name;
    parseModification(rules.maxModifications, &p.maxModifications);
    p.digests = std::set<std::string>(rules.digests.begin(), rules.digests.end());
    p.rsaMinBits = rules.rsaMinBits;
    p.ecMinBits = rules.ecMinBits;
    return p;
}

Result<ValidationReport> validatePdf(const std::string& path, const ValidationContext& ctx) {
    auto doc = signer::readPdfDocument(path);
    if (!doc) {
        return doc.error();
    }
    const auto& sigs = doc->signatures;
    ValidationReport rep;
    rep.validationTime = ctx.validationTime != 0 ? ctx.validationTime : std::time(nullptr);
    rep.policy = ctx.policy.name;
    Embedded embedded;
    embedded.revocation.ocspResponsesDer = doc->dss.ocspResponsesDer;
    embedded.revocation.crlsDer = doc->dss.crlsDer;
    embedded.certificatesDer = doc->dss.certificatesDer;
    // From the last signature to the first (they are in file order): a document timestamp that
    // passes proves that everything before it existed at its time, which the earlier ones use.
    std::vector<SignatureReport> reports(sigs.size());
    std::time_t laterPoe = 0;
    for (std::size_t k = sigs.size(); k-- > 0;) {
        const signer::PdfSignature& s = sigs[k];
        SignatureReport& r = reports[k];
        DocumentView view;
        view.embedded = doc->dss.present ? &embedded : nullptr;
        view.poe = laterPoe;
        r.id = signatureId(s.cmsDer.empty() ? s.fieldName : s.cmsDer);
        r.fieldName = s.fieldName;
        r.claimedSigningTime = s.claimedSigningTime != 0 ? s.claimedSigningTime : s.dictionaryTime;
        r.coverage = signer::coverageName(s.coverage);
        if (s.coverage == signer::Coverage::Unclear ||
            s.coverage == signer::Coverage::ContiguousBlockFromStart) {
            r.errors.push_back(s.coverage == signer::Coverage::Unclear
                                   ? "the /ByteRange does not cover the file but exactly the "
                                     "signature value"
                                   : "the /ByteRange stops before the end of a revision: the bytes "
                                     "after it are not signed");
            verdict(&r, kFailed, "FORMAT_FAILURE");
        }
        if (s.cmsDer.empty()) {
            verdict(&r, kFailed, "FORMAT_FAILURE");
        }
        judgeIntegrity(s, ctx, &r);
        judgeModifications(s, ctx.policy, &r);
        const TrustLevel level =
            judgeTrust(s, ctx, rep.validationTime, s.documentTimestamp, view, &r);
        r.format = s.documentTimestamp
                       ? "TIMESTAMP"
                       : padesFormat(s.subFilter == "ETSI.CAdES.detached", level, view);
        if (s.documentTimestamp && r.passed() && !s.timestamps.empty()) {
            const std::time_t gen = s.timestamps.front().genTime;
            laterPoe = laterPoe == 0 ? gen : std::min(laterPoe, gen);
        }
    }
    for (auto& r : reports) {
        rep.signatures.push_back(std::move(r));
    }
    return finish(std::move(rep));
}

Result<ValidationReport> validateCms(const std::string& cms, const std::string& dataPath,
                                     const ValidationContext& ctx) {
    auto sig = signer::readCmsSignature(cms, dataPath);
    if (!sig) {
        return sig.error();
    }
    ValidationReport rep;
    rep.validationTime = ctx.validationTime != 0 ? ctx.validationTime : std::time(nullptr);
    rep.policy = ctx.policy.name;
    SignatureReport r;
    r.id = signatureId(sig->cmsDer);
    r.format = sig->hasSigningCertificateAttribute
                   ? (sig->timestamps.empty() ? "CAdES-BASELINE-B" : "CAdES-BASELINE-T")
                   : "PKCS7";
    r.claimedSigningTime = sig->claimedSigningTime;
    judgeIntegrity(*sig, ctx, &r);
    judgeTrust(*sig, ctx, rep.validationTime, false, DocumentView{}, &r);
    rep.signatures.push_back(std::move(r));
    return finish(std::move(rep));
}

// A JWS's or an XML signature's facts in the shape every signature is judged in: integrity
// (the signature over what it signs), the signing-certificate reference, the certificates.
namespace {

Result<ValidationReport> reportOf(const signer::SignatureFacts& f, const std::string& format,
                                  const std::string& sealed, const ValidationContext& ctx) {
    ValidationReport rep;
    rep.validationTime = ctx.validationTime != 0 ? ctx.validationTime : std::time(nullptr);
    rep.policy = ctx.policy.name;
    SignatureReport r;
    r.id = signatureId(sealed);
    r.format = format;
    r.claimedSigningTime = f.claimedSigningTime;
    judgeIntegrity(f, ctx, &r);
    judgeTrust(f, ctx, rep.validationTime, false, DocumentView{}, &r);
    rep.signatures.push_back(std::move(r));
    return finish(std::move(rep));
}

}  // namespace

Result<ValidationReport> validateJws(const signer::JwsFacts& facts, std::string_view jws,
                                     const ValidationContext& ctx) {
    signer::SignatureFacts f;
    // A JWS signs its signing input directly: there is no separate content digest.
    f.digestMatches = facts.signatureValid;
    f.signatureValid = facts.signatureValid;
    f.hasSigningCertificateAttribute = facts.hasSigningCertificateReference;
    f.signingCertificateBound = facts.signingCertificateBound;
    f.signerSubject = facts.signerSubject;
    f.signerCertDer = facts.certificateDer;
    f.certificatesDer = facts.chainDer;
    f.certificatesDer.insert(f.certificatesDer.begin(), facts.certificateDer);
    f.claimedSigningTime = facts.signingTime;
    const std::string bits = facts.alg.size() > 2 ? facts.alg.substr(2) : "";
    f.digestAlgorithm = "SHA-" + bits;
    f.errors = facts.errors;
    return reportOf(f, "JAdES-BASELINE-B", std::string(jws), ctx);
}

Result<ValidationReport> validateXml(std::string_view xml, const ValidationContext& ctx) {
    auto x = signer::verifyXml(xml);
    if (!x) {
        return x.error();
    }
    signer::SignatureFacts f;
    f.digestMatches = x->signatureValid;
    f.signatureValid = x->signatureValid;
    f.hasSigningCertificateAttribute = x->signedPropertiesSigned;
    f.signingCertificateBound = x->signingCertificateMatches;
    f.signerCertDer = x->certificateDer;
    f.certificatesDer = x->chainDer;
    f.certificatesDer.insert(f.certificatesDer.begin(), x->certificateDer);
    f.claimedSigningTime =
        x->signingTime ? std::chrono::system_clock::to_time_t(*x->signingTime) : 0;
    f.digestAlgorithm = "SHA-256";
    if (!x->failure.empty()) {
        f.errors.push_back(x->failure);
    }
    return reportOf(f, "XAdES-BASELINE-B", std::string(xml), ctx);
}

}  // namespace kyso::policies
