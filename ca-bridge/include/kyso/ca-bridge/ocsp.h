// An OCSP responder (RFC 6960) for an embedded CA whose key is on the token: the CA signs its own
// responses (responder ID by name), so no delegated responder certificate is needed.
#pragma once

#include <ctime>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kyso/ca-bridge/crl.h"
#include "kyso/hsm/credential.h"
#include "kyso/hsm/result.h"

namespace kyso::ca {

enum class CertStatus { Good, Revoked, Unknown };

struct StatusInfo {
    CertStatus status = CertStatus::Unknown;
    std::time_t revokedAt = 0;
    RevocationReason reason = RevocationReason::Unspecified;
};

// The status of a certificate of this CA by serial (upper-case hex): Good only for a certificate
// the CA issued and did not revoke; Unknown for a serial it never issued.
using StatusLookup =
    std::function<StatusInfo(const std::string& caId, const std::string& serialHex)>;

// The DER OCSPResponse for a DER OCSPRequest, for the CAs in `cas` (each looked up by the issuer
// name and key hashes of the request). The response is signed by the CA of the first certificate
// asked about (responder ID by name); a certificate of no CA here gets status unknown. A request
// that does not parse (or has trailing bytes) gets malformedRequest; the nonce is echoed.
// Responses are valid for `validitySeconds` (nextUpdate). Errors only from the token (e.g.
// "token.unavailable") or "ca.build".
Result<std::string> respondOcsp(std::string_view request,
                                const std::vector<const hsm::Credential*>& cas,
                                const StatusLookup& lookup, long validitySeconds);

}  // namespace kyso::ca
