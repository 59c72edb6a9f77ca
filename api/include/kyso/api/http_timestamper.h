// A timestamper that asks an external RFC 3161 TSA over HTTP or HTTPS (RFC 3161 3.4), with
// Poco's client. Replies are checked like any other (see kyso/signer/timestamper.h).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kyso/api/config.h"
#include "kyso/hsm/result.h"
#include "kyso/signer/timestamper.h"

namespace kyso::api {

struct HttpTsaConfig {
    std::string url;                        // http:// or https://
    std::vector<std::string> trustAnchors;  // DER roots of the TSA certificate
    std::string tlsCaFile;                  // PEM roots for the HTTPS connection (https only)
    int timeoutSeconds = 10;
    // Bytes reserved for the token before one was seen: no extra request to size the first
    // signature. A larger token fails that signature with tsa.token_too_large; the next one
    // reserves room for it.
    std::size_t reserveBytes = 16 * 1024;
};

// Errors: "config.invalid" (bad URL or scheme).
Result<std::unique_ptr<signer::Timestamper>> makeHttpTimestamper(HttpTsaConfig config);

// The same from the configuration's [timestamping] section (reads its PEM files).
Result<std::unique_ptr<signer::Timestamper>> makeHttpTimestamperFrom(const TimestampingConfig& t);

}  // namespace kyso::api
