// The HTTPS service (Poco NetSSL, TLS 1.2 or later only). Every handler catches at its edge and
// answers problem+json with a stable code and the request id; nothing escapes as a bare 500.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kyso/api/audit.h"
#include "kyso/api/config.h"
#include "kyso/api/credentials.h"
#include "kyso/api/store.h"
#include "kyso/api/verifier.h"
#include "kyso/hsm/token.h"
#include "kyso/signer/timestamper.h"
#include "kyso/signer/tsa.h"

namespace kyso::api {

class Service {
  public:
    // All references must outlive the service. `tsa` null: POST /tsa answers 404.
    // `timestamper` null: signatures are B-B only; otherwise B-T is the default level.
    // `creds` gains the citizens enrolled while the service runs (and those enrolled before,
    // at start()).
    Service(const Config& cfg, hsm::Token& token, Store& store, CredentialRegistry& creds,
            const Verifier& verifier, AuditLog& audit, signer::TimeStampAuthority* tsa = nullptr,
            signer::Timestamper* timestamper = nullptr);
    ~Service();
    Service(const Service&) = delete;
    Service& operator=(const Service&) = delete;

    // Binds and starts serving. Errors: "server.start" (TLS files, address in use, ...).
    Status start();
    void stop();
    // The bound port (useful with listen port 0).
    std::uint16_t port() const;
    // Every route as (method, path template), e.g. ("GET", "/ca/{name}.crl").
    static std::vector<std::pair<std::string, std::string>> routes();

    struct Impl;

  private:
    std::unique_ptr<Impl> m_impl;
};

// The TSA of the configuration's [tsa] section, signing with its credential; null when there is
// no [tsa] section. `serials` must outlive it.
Result<std::unique_ptr<signer::TimeStampAuthority>> makeTimeStampAuthority(
    const Config& cfg, const CredentialRegistry& creds, signer::SerialSource& serials);

// A timestamper that asks `tsa` in process and checks its replies against [tsa] trustAnchors.
Result<std::unique_ptr<signer::Timestamper>> makeLocalTimestamper(const Config& cfg,
                                                                  signer::TimeStampAuthority& tsa);

// The OpenAPI 3 document of every route (api/openapi.json, built in).
const std::string& openApiDocument();

// HTTP status for an error code from the lower modules (pdf.*, token.*, ...).
int httpStatusFor(const std::string& code);

}  // namespace kyso::api
