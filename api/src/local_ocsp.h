// The embedded CA's OCSP responder as one function, for POST /ocsp and for the service's own
// verifications: a certificate of the embedded CA is checked in process, not by an HTTP request
// from the service to itself (which, with every worker thread busy verifying, would wait for a
// thread that none of them frees).
#pragma once

#include <string>
#include <string_view>

#include "kyso/api/config.h"
#include "kyso/api/credentials.h"
#include "kyso/api/store.h"
#include "kyso/ca-bridge/revocation.h"

namespace kyso::api {

// How long an answer of the embedded responder is valid (its nextUpdate).
inline constexpr long kOcspValiditySeconds = 3600;

// The DER OCSPResponse to a DER OCSPRequest, signed by the configured CA credentials (kind ca)
// with the statuses the store has recorded. Errors: "route.not_found" (no CA is configured),
// the token's errors, "ca.build".
Result<std::string> answerOcsp(const Config& cfg, const CredentialRegistry& creds, Store& store,
                               std::string_view request);

// A revocation transport that answers POSTs to this service's own /ocsp URL in process
// (answerOcsp) and gives every other request to `other`. This service's URLs: the [citizens]
// publicUrl and https://HOST:PORT of [server] listen (both as the certificates of the embedded
// CA name them; with port 0 only the publicUrl). The registry and the store are borrowed.
ca::Fetch withLocalOcsp(const Config& cfg, const CredentialRegistry& creds, Store& store,
                        ca::Fetch other);

}  // namespace kyso::api
