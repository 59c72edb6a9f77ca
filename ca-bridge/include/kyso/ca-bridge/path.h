// Certificate path validation (RFC 5280) with OpenSSL, at a chosen time: the signature's best
// time (a timestamp's genTime when there is one) rather than "now". Revocation is checked
// separately (CRL/OCSP); this is the path, validity periods and key usage.
#pragma once

#include <ctime>
#include <string>
#include <vector>

#include "kyso/ca-bridge/certificate_pool.h"
#include "kyso/hsm/result.h"

namespace kyso::ca {

enum class Usage {
    Signing,       // keyUsage digitalSignature or nonRepudiation
    TimeStamping,  // critical extendedKeyUsage timeStamping (RFC 3161 2.3)
};

struct PathResult {
    // ETSI TS 119 102-1 indication / sub-indication, as in the validation report.
    std::string indication;             // TOTAL_PASSED, INDETERMINATE, TOTAL_FAILED
    std::string subIndication;          // empty when passed; e.g. NO_CERTIFICATE_CHAIN_FOUND
    std::vector<std::string> chainDer;  // leaf first, anchor last, when a path was built
    std::vector<std::string> errors;
    bool passed() const { return indication == "TOTAL_PASSED"; }
};

// Builds and validates the path from `leafDer` through `intermediatesDer` to one of
// `anchorsDer`, at time `at`. A failed validation is a result, not an error; errors are only
// "cert.invalid" (the leaf is not DER). `pool` (borrowed, may be null) parses each distinct
// certificate once across calls.
Result<PathResult> validatePath(const std::string& leafDer,
                                const std::vector<std::string>& intermediatesDer,
                                const std::vector<std::string>& anchorsDer, std::time_t at,
                                Usage usage, CertificatePool* pool = nullptr);

// Every certificate in the PEM files of `dir` (trust anchors from configuration).
Result<std::vector<std::string>> loadAnchorDirectory(const std::string& dir);

}  // namespace kyso::ca
