#include "targets.h"

#include <fcntl.h>
#include <openssl/ocsp.h>
#include <openssl/ts.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "kyso/ca-bridge/certificate_pool.h"
#include "kyso/ca-bridge/crl.h"
#include "kyso/ca-bridge/issuer.h"
#include "kyso/ca-bridge/ocsp.h"
#include "kyso/ca-bridge/path.h"
#include "kyso/ca-bridge/revocation.h"
#include "kyso/hsm/pkcs11_uri.h"
#include "kyso/policies/signing_policy.h"
#include "kyso/policies/validation.h"
#include "kyso/signer/jws.h"
#include "kyso/signer/pades.h"
#include "kyso/signer/pdf_signatures.h"
#include "kyso/signer/tsa.h"
#include "receipt.h"
#include "test_env.h"

namespace kyso::fuzz {

namespace {

// The revocation checker's URLs in the fuzzing leaf certificate: nothing answers them but the
// target's own fetch function, so no input ever reaches the network.
constexpr const char* kOcspUrl = "http://ocsp.kyso.invalid/";
constexpr const char* kCrlUrl = "http://crl.kyso.invalid/ca.crl";

class CountingSerials final : public signer::SerialSource {
  public:
    Result<std::uint64_t> next() override { return ++m_next; }

  private:
    std::uint64_t m_next = 0;
};

// What every target needs, made once per process on a fresh SoftHSM2 token.
struct Env {
    hsm::Token* token = nullptr;
    hsm::Credential ca;       // the test root (RSA-2048)
    hsm::Credential officer;  // EC P-256, issued by the root
    hsm::Credential tsa;      // EC P-256, critical timeStamping EKU
    std::string leafDer;      // the officer's key again, with OCSP and CRL URLs
    std::string dir;
    std::string dataFile;  // the content of detached CMS inputs
    std::string inPdf, outPdf;
    int outFd = -1;
    CountingSerials serials;
    std::unique_ptr<signer::TimeStampAuthority> authority;
    ca::CertificatePool pool;
};

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "kyso fuzz setup: %s\n", what.c_str());
    std::abort();
}

hsm::Credential makeTsaCredential(hsm::Token& token, const hsm::Credential& ca) {
    hsm::Credential c;
    c.id = "fuzz-tsa";
    c.kind = "tsa";
    c.token = &token;
    hsm::KeySpec spec;
    spec.type = hsm::KeyType::Ec;
    spec.label = "fuzz-tsa";
    auto key = token.generateKey(spec);
    if (!key) {
        die("TSA key: " + key.error().detail);
    }
    c.key = *key;
    hsm::chooseDefaultAlgorithms(c);
    ca::CertificateProfile p;
    p.subject = {{"C", "VN"}, {"O", "Kyso Fuzz"}, {"CN", "Kyso Fuzz TSA"}};
    p.publicKeyDer = c.key.publicKeyDer;
    p.digitalSignature = true;
    p.extendedKeyUsage = {"timeStamping"};
    p.extendedKeyUsageCritical = true;
    auto der = ca::issueCertificate(p, ca);
    if (!der) {
        die("TSA certificate: " + der.error().detail);
    }
    c.certificateDer = *der;
    c.chainDer = {ca.certificateDer};
    return c;
}

Env& env() {
    static Env* e = [] {
        auto* n = new Env();
        hsm::Token& token = test::openTestToken();
        n->token = &token;
        n->ca = test::testPki(token).ca;
        n->officer = test::makeCredential(token, "fuzz-officer", hsm::KeyType::Ec);
        n->tsa = makeTsaCredential(token, n->ca);
        ca::CertificateProfile p;
        p.subject = {{"C", "VN"}, {"O", "Kyso Fuzz"}, {"CN", "Kyso Fuzz Leaf"}};
        p.publicKeyDer = n->officer.key.publicKeyDer;
        p.digitalSignature = true;
        p.nonRepudiation = true;
        p.ocspUrl = kOcspUrl;
        p.crlUrl = kCrlUrl;
        auto leaf = ca::issueCertificate(p, n->ca);
        if (!leaf) {
            die("leaf certificate: " + leaf.error().detail);
        }
        n->leafDer = *leaf;
        n->dir = test::tempDir("fuzz");
        n->dataFile = n->dir + "/data.txt";
        // What scripts/fuzz signs for its detached CMS seeds, so that their digests match.
        test::writeFile(n->dataFile, "Kyso seed content\n");
        n->inPdf = n->dir + "/in.pdf";
        n->outPdf = n->dir + "/out.pdf";
        n->outFd = ::open(n->outPdf.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (n->outFd < 0) {
            die("cannot open " + n->outPdf);
        }
        signer::TsaPolicy policy;
        policy.otherPolicies = {"2.999.1.2"};
        auto authority = signer::TimeStampAuthority::create(n->tsa, policy, n->serials);
        if (!authority) {
            die("TSA: " + authority.error().detail);
        }
        n->authority = std::move(*authority);
        return n;
    }();
    return *e;
}

std::string bytes(const std::uint8_t* data, std::size_t size) {
    return std::string(reinterpret_cast<const char*>(data), size);
}

thread_local std::string g_outcome;

// Records the outcome of a Result and passes it on.
template <typename T>
const Result<T>& noted(const Result<T>& r) {
    g_outcome = r ? "ok" : r.error().code;
    return r;
}

int broken(const char* target, const std::string& what) {
    std::fprintf(stderr, "kyso fuzz %s: property broken: %s\n", target, what.c_str());
    return 1;
}

// Revocation with no network: every fetch fails, as when the responders are unreachable.
Result<std::string> offline(const std::string& url, const std::string&, const std::string&) {
    return Error::make("net.unreachable", "fuzzing is offline: " + url);
}

// A validation context as the service's Verifier builds it: the test root as the only trust
// anchor, revocation checked but never answered.
policies::ValidationContext offlineContext(ca::RevocationChecker& revocation) {
    policies::ValidationContext ctx;
    ctx.anchorsDer = {env().ca.certificateDer};
    ctx.revocation = &revocation;
    ctx.certificates = &env().pool;
    return ctx;
}

int checkReport(const char* target, const Result<policies::ValidationReport>& r) {
    if (r && r->indication.empty()) {
        return broken(target, "a report without an indication");
    }
    if (r) {
        g_outcome = r->indication;
        for (const auto& s : r->signatures) {
            if (s.indication.empty()) {
                return broken(target, "a signature without an indication");
            }
        }
    }
    return 0;
}

int checkRevocation(const char* target, const ca::RevocationStatus& s) {
    if (s.status != "GOOD" && s.status != "REVOKED" && s.status != "UNKNOWN" &&
        s.status != "UNAVAILABLE") {
        return broken(target, "revocation status " + s.status);
    }
    return 0;
}

}  // namespace

int fuzzPdfSign(const std::uint8_t* data, std::size_t size) {
    Env& e = env();
    test::writeFile(e.inPdf, bytes(data, size));
    if (::ftruncate(e.outFd, 0) != 0 || ::lseek(e.outFd, 0, SEEK_SET) != 0) {
        die("cannot reset " + e.outPdf);
    }
    signer::PadesOptions options;
    options.reason = "Fuzz";
    options.signingTime = std::chrono::system_clock::from_time_t(1767225600);  // 2026-01-01
    options.durable = false;
    auto r = signer::signPdfTo(e.inPdf, e.outFd, e.officer, options);
    if (!noted(r)) {
        return 0;
    }
    // What we signed, a verifier must find intact: the new field, covering the whole file.
    auto sigs = signer::readPdfSignatures(e.outPdf);
    if (!sigs) {
        return broken("pdf_sign", "the signed output does not read: " + sigs.error().code);
    }
    for (const auto& s : *sigs) {
        if (s.fieldName == r->fieldName) {
            if (!s.digestMatches || !s.signatureValid ||
                s.coverage != signer::Coverage::EntireFile) {
                return broken("pdf_sign", "the new signature does not verify (coverage " +
                                              std::string(signer::coverageName(s.coverage)) + ")");
            }
            return 0;
        }
    }
    return broken("pdf_sign", "the new signature field " + r->fieldName + " is not found");
}

int fuzzPdfVerify(const std::uint8_t* data, std::size_t size) {
    Env& e = env();
    test::writeFile(e.inPdf, bytes(data, size));
    ca::RevocationChecker revocation(offline, 7 * 86400, nullptr, &e.pool);
    return checkReport("pdf_verify",
                       noted(policies::validatePdf(e.inPdf, offlineContext(revocation))));
}

int fuzzCms(const std::uint8_t* data, std::size_t size) {
    Env& e = env();
    const std::string cms = bytes(data, size);
    ca::RevocationChecker revocation(offline, 7 * 86400, nullptr, &e.pool);
    const auto ctx = offlineContext(revocation);
    // Attached, then detached over the data file (the outcome kept is the detached one's).
    if (checkReport("cms", policies::validateCms(cms, "", ctx)) != 0) {
        return 1;
    }
    return checkReport("cms", noted(policies::validateCms(cms, e.dataFile, ctx)));
}

int fuzzTsaRequest(const std::uint8_t* data, std::size_t size) {
    Env& e = env();
    auto r = e.authority->respond(std::string_view(reinterpret_cast<const char*>(data), size));
    if (!noted(r)) {
        return 0;
    }
    const auto* p = reinterpret_cast<const unsigned char*>(r->data());
    TS_RESP* resp = ::d2i_TS_RESP(nullptr, &p, static_cast<long>(r->size()));
    const bool whole =
        resp != nullptr && p == reinterpret_cast<const unsigned char*>(r->data()) + r->size();
    if (resp != nullptr) {
        // PKIStatus: 0 granted, 2 rejection (RFC 3161 section 2.4.2).
        const ASN1_INTEGER* status = ::TS_STATUS_INFO_get0_status(::TS_RESP_get_status_info(resp));
        g_outcome = "status " + std::to_string(::ASN1_INTEGER_get(status));
    }
    ::TS_RESP_free(resp);
    return whole ? 0 : broken("tsa_request", "the answer is not one DER TimeStampResp");
}

int fuzzOcspRequest(const std::uint8_t* data, std::size_t size) {
    Env& e = env();
    const std::vector<const hsm::Credential*> cas = {&e.ca};
    auto r = noted(ca::respondOcsp(
        std::string_view(reinterpret_cast<const char*>(data), size), cas,
        [](const std::string&, const std::string& serial) {
            ca::StatusInfo s;
            s.status = serial.size() % 2 == 0 ? ca::CertStatus::Good : ca::CertStatus::Revoked;
            s.revokedAt = 1767225600;
            return s;
        },
        3600));
    if (!r) {
        return 0;
    }
    const auto* p = reinterpret_cast<const unsigned char*>(r->data());
    OCSP_RESPONSE* resp = ::d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(r->size()));
    const bool whole =
        resp != nullptr && p == reinterpret_cast<const unsigned char*>(r->data()) + r->size();
    ::OCSP_RESPONSE_free(resp);
    return whole ? 0 : broken("ocsp_request", "the answer is not one DER OCSPResponse");
}

// The revocation checker on our leaf, with the input as the only answer it gets: from URL (the
// leaf's OCSP responder or its CRL distribution point); nothing else answers.
int checkRevocationAnswer(const char* name, const char* url, const std::uint8_t* data,
                          std::size_t size) {
    Env& e = env();
    const std::string der = bytes(data, size);
    ca::RevocationChecker checker(
        [&](const std::string& u, const std::string&, const std::string&) -> Result<std::string> {
            if (u == url) {
                return der;
            }
            return Error::make("net.unreachable", "offline");
        },
        7 * 86400, nullptr, &e.pool);
    const auto status = checker.check(e.leafDer, e.ca.certificateDer, std::time(nullptr));
    g_outcome = status.status;
    return checkRevocation(name, status);
}

int fuzzOcspResponse(const std::uint8_t* data, std::size_t size) {
    return checkRevocationAnswer("ocsp_response", kOcspUrl, data, size);
}

int fuzzCrl(const std::uint8_t* data, std::size_t size) {
    return checkRevocationAnswer("crl", kCrlUrl, data, size);
}

int fuzzCertificate(const std::uint8_t* data, std::size_t size) {
    Env& e = env();
    const std::string der = bytes(data, size);
    const std::time_t now = std::time(nullptr);
    // As a signer's certificate, and as the intermediate of our own leaf.
    auto signing = noted(ca::validatePath(der, {}, {e.ca.certificateDer}, now, ca::Usage::Signing));
    if (signing) {
        g_outcome = signing->indication;
    }
    if (signing && signing->passed() && signing->chainDer.empty()) {
        return broken("certificate", "a passed path without a chain");
    }
    auto stamping = ca::validatePath(der, {e.ca.certificateDer}, {e.ca.certificateDer}, now,
                                     ca::Usage::TimeStamping, &e.pool);
    (void)stamping;
    auto through =
        ca::validatePath(e.leafDer, {der}, {e.ca.certificateDer}, now, ca::Usage::Signing, &e.pool);
    if (!through) {
        return broken("certificate", "our own leaf is not DER: " + through.error().detail);
    }
    const std::string serial = ca::serialHexOf(der);
    if (serial.empty() != (ca::parseCertificate(nullptr, der) == nullptr)) {
        return broken("certificate", "serialHexOf and the parser disagree");
    }
    // The revocation checker reads the same certificate's AIA and CRL distribution points.
    ca::RevocationChecker checker(offline, 7 * 86400, nullptr, &e.pool);
    return checkRevocation("certificate", checker.check(der, e.ca.certificateDer, now));
}

int fuzzReceiptJson(const std::uint8_t* data, std::size_t size) {
    auto check = api::checkReceipt(std::string_view(reinterpret_cast<const char*>(data), size));
    g_outcome = check.errors.empty() ? "ok" : "invalid";
    if (check.errors.empty() && check.receipt.isNull()) {
        return broken("receipt_json", "accepted without a parsed receipt");
    }
    return 0;
}

int fuzzCanonicalJson(const std::uint8_t* data, std::size_t size) {
    auto once = signer::canonicalJson(std::string_view(reinterpret_cast<const char*>(data), size));
    if (!noted(once)) {
        return 0;
    }
    auto twice = signer::canonicalJson(*once);
    if (!twice) {
        return broken("canonical_json", "the canonical form is refused: " + twice.error().detail);
    }
    if (*twice != *once) {
        return broken("canonical_json", "the canonical form is not canonical");
    }
    return 0;
}

int fuzzJws(const std::uint8_t* data, std::size_t size) {
    Env& e = env();
    const std::string_view jws(reinterpret_cast<const char*>(data), size);
    auto facts = signer::verifyJws(jws);
    if (!noted(facts)) {
        return 0;
    }
    if (facts->valid() && facts->certificateDer.empty()) {
        return broken("jws", "valid without a certificate");
    }
    ca::RevocationChecker revocation(offline, 7 * 86400, nullptr, &e.pool);
    const int rc =
        checkReport("jws", policies::validateJws(*facts, jws, offlineContext(revocation)));
    g_outcome = facts->valid() ? "valid" : "not-valid";
    return rc;
}

int fuzzPkcs11Uri(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto uri = hsm::parsePkcs11Uri(text);
    if (!noted(uri)) {
        return 0;
    }
    if (!hsm::looksLikePkcs11Uri(text)) {
        return broken("pkcs11_uri", "parsed without the pkcs11: scheme");
    }
    // Encoding a parsed value and parsing it again gives the same bytes.
    const std::pair<const char*, const std::optional<std::string>*> attrs[] = {
        {"token", &uri->token}, {"object", &uri->object}, {"id", &uri->id}};
    for (const auto& [name, value] : attrs) {
        if (!value->has_value()) {
            continue;
        }
        auto again = hsm::parsePkcs11Uri(std::string("pkcs11:") + name + "=" +
                                         hsm::pkcs11UriEncode(**value));
        const auto* back = again ? (std::string_view(name) == "token"    ? &again->token
                                    : std::string_view(name) == "object" ? &again->object
                                                                         : &again->id)
                                 : nullptr;
        if (back == nullptr || *back != *value) {
            return broken("pkcs11_uri", std::string(name) + " does not round-trip");
        }
    }
    return 0;
}

int fuzzSigningPolicy(const std::uint8_t* data, std::size_t size) {
    auto policy = policies::parseSigningPolicy(bytes(data, size), "fuzz.policy");
    if (!noted(policy)) {
        if (policy.error().code != "policy.invalid") {
            return broken("signing_policy", "error code " + policy.error().code);
        }
        return 0;
    }
    policies::SigningRequestFacts facts;
    facts.documentBytes = 1000;
    facts.level = "B-T";
    facts.keyType = "EC";
    facts.keyBits = 256;
    facts.hash = "SHA-256";
    (void)policies::checkSigningRequest(*policy, facts);
    (void)policies::checkAppearanceOverrides(*policy, {"layout", "text"});
    const policies::Principal who{"officer-1", policies::Role::Officer};
    const policies::CredentialFacts cred{"officer-1", "officer", {"officer-1"}};
    for (auto op : {policies::Operation::SignPdf, policies::Operation::Seal,
                    policies::Operation::Timestamp, policies::Operation::Receipt}) {
        auto d = policies::decide(policies::authorizationOf(*policy), who, cred, op);
        if (d.rule.empty()) {
            return broken("signing_policy", "a decision without a rule");
        }
    }
    (void)policies::validationPolicyOf(policy->validation);
    return 0;
}

const std::string& lastOutcome() {
    return g_outcome;
}

const std::vector<TargetInfo>& targets() {
    static const std::vector<TargetInfo> all = {
        {"pdf_sign", fuzzPdfSign},
        {"pdf_verify", fuzzPdfVerify},
        {"cms", fuzzCms},
        {"tsa_request", fuzzTsaRequest},
        {"ocsp_request", fuzzOcspRequest},
        {"ocsp_response", fuzzOcspResponse},
        {"crl", fuzzCrl},
        {"certificate", fuzzCertificate},
        {"receipt_json", fuzzReceiptJson},
        {"canonical_json", fuzzCanonicalJson},
        {"jws", fuzzJws},
        {"pkcs11_uri", fuzzPkcs11Uri},
        {"signing_policy", fuzzSigningPolicy},
    };
    return all;
}

}  // namespace kyso::fuzz
