// The fuzz targets: each feeds one input to the product's own entry points, as the service or the
// CLI would, and checks what must hold whatever the input. Used by the libFuzzer executables
// (fuzz/*_fuzzer.cpp, built with KYSO_FUZZ) and by the regression test that replays the saved
// inputs (tests/fuzz/replay_test.cpp, part of every build).
//
// Each function returns 0 when the input was handled (accepted or refused with an error), and 1
// when a property that must hold for every input was broken (printed on stderr): the fuzzer turns
// that into a crash. The first call makes a SoftHSM2 token with the keys and certificates the
// targets need (tests/support/test_env.h), so SOFTHSM2_CONF is set for the process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace kyso::fuzz {

using Target = int (*)(const std::uint8_t* data, std::size_t size);

// PDF: signed as POST /api/v1/sign/pdf signs it (signer::signPdfTo, EC P-256 key on the token);
// a signature that was made must verify.
int fuzzPdfSign(const std::uint8_t* data, std::size_t size);
// PDF: validated as POST /api/v1/verify does (policies::validatePdf, revocation offline).
int fuzzPdfVerify(const std::uint8_t* data, std::size_t size);
// DER/PEM CMS: validated as a detached signature over a fixed file and as an attached one.
int fuzzCms(const std::uint8_t* data, std::size_t size);
// DER TimeStampReq: answered by the token TSA (POST /tsa); an answer must be a TimeStampResp.
int fuzzTsaRequest(const std::uint8_t* data, std::size_t size);
// DER OCSPRequest: answered by the embedded CA's responder (POST /ca/ID/ocsp).
int fuzzOcspRequest(const std::uint8_t* data, std::size_t size);
// DER OCSPResponse: what an OCSP responder sent back to the revocation checker.
int fuzzOcspResponse(const std::uint8_t* data, std::size_t size);
// DER CRL: what a CRL distribution point served to the revocation checker.
int fuzzCrl(const std::uint8_t* data, std::size_t size);
// DER certificate: a signer certificate through path validation and serial number reading.
int fuzzCertificate(const std::uint8_t* data, std::size_t size);
// JSON: a payment receipt request body (POST /api/v1/receipts), checked against its schema.
int fuzzReceiptJson(const std::uint8_t* data, std::size_t size);
// JSON: the strict RFC 8785 canonicalizer; a canonical form is its own canonical form.
int fuzzCanonicalJson(const std::uint8_t* data, std::size_t size);
// JWS (flattened JSON or compact): verified and validated as POST /api/v1/receipts/verify does.
int fuzzJws(const std::uint8_t* data, std::size_t size);
// RFC 7512 PKCS#11 URI (configuration, --key): parsed; a parsed token label round-trips.
int fuzzPkcs11Uri(const std::uint8_t* data, std::size_t size);
// Signing policy file text (policies/signing.policy format): parsed and applied.
int fuzzSigningPolicy(const std::uint8_t* data, std::size_t size);

// What the last call of a target on this thread concluded, for the regression test's expected
// outcomes: the error code the product refused the input with ("pdf.damaged",
// "jws.alg_unsupported", ...) or, when it was accepted: "ok" (pdf_sign: signed and verified;
// receipt_json: "invalid" when the body has field errors), the report's indication (pdf_verify,
// cms: the detached validation, certificate: the signing path), "valid"/"not-valid" (jws), the
// PKIStatus as "status N" (tsa_request), the revocation status (ocsp_response, crl).
const std::string& lastOutcome();

struct TargetInfo {
    const char* name;  // as in fuzz/<name>_fuzzer and tests/data/fuzz/<name>/
    Target fn;
};
// Every target, in the order above.
const std::vector<TargetInfo>& targets();

}  // namespace kyso::fuzz
