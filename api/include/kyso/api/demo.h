// `kyso demo init`: the embedded default, made idempotently in one directory.
#pragma once

#include <ostream>
#include <string>

#include "kyso/hsm/result.h"

namespace kyso::api {

struct DemoOptions {
    std::string dir;
    std::string listen = "127.0.0.1:8443";
    std::string module = "/usr/lib/softhsm/libsofthsm2.so";
    // The key type of the signing credentials (officer-1, agency-seal, receipt-seal, tsa):
    // "RSA-2048" or "P-256" (ECDSA). The CAs and the audit key stay RSA.
    std::string keyType = "RSA-2048";
};

// Creates, or completes, the demo under options.dir: a SoftHSM2 token "kyso-demo" with random
// PINs in DIR/secrets (0600), a demo PKI whose keys are generated on the token (root CA, issuing
// CA, officer "Nguyễn Văn An"), a localhost TLS certificate, DIR/kyso.conf, the database with one
// API key per role, and DIR/demo-credentials.json. What exists is kept; a second run changes
// nothing. Progress goes to `log`; no secret is ever printed there.
Status demoInit(const DemoOptions& options, std::ostream& log);

}  // namespace kyso::api
