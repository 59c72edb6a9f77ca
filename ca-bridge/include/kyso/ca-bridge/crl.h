// Certificate revocation lists of a CA whose key is on the token (RFC 5280 section 5).
#pragma once

#include <openssl/asn1.h>

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include "kyso/hsm/credential.h"
#include "kyso/hsm/result.h"

namespace kyso::ca {

// RFC 5280 CRLReason values accepted by `kyso ca revoke`.
enum class RevocationReason {
    Unspecified = 0,
    KeyCompromise = 1,
    CaCompromise = 2,
    AffiliationChanged = 3,
    Superseded = 4,
    CessationOfOperation = 5,
    CertificateHold = 6,
    PrivilegeWithdrawn = 9,
};
std::optional<RevocationReason> parseRevocationReason(const std::string& name);

struct RevokedCertificate {
    std::string serialHex;  // upper-case hex, no leading zeros beyond the DER encoding
    std::time_t revokedAt = 0;
    RevocationReason reason = RevocationReason::Unspecified;
};

// The DER CRL v2 of `issuer` (signed on the token): the given entries with their reason codes,
// thisUpdate, nextUpdate, CRL number and authority key identifier. Errors: "ca.build", "ca.profile"
// (a serial that is not hex), and the token's errors.
Result<std::string> buildCrl(const hsm::Credential& issuer,
                             const std::vector<RevokedCertificate>& revoked,
                             std::uint64_t crlNumber, std::time_t thisUpdate,
                             std::time_t nextUpdate);

// Upper-case hex of a serial number, as CRL entries, OCSP and `kyso ca revoke` name it.
std::string serialHex(const ASN1_INTEGER* serial);
// The same for a DER certificate's serial number ("" if it is not DER).
std::string serialHexOf(const std::string& certificateDer);

}  // namespace kyso::ca
