// An RFC 3161 time-stamping authority whose key is on the token (RFC 5816 ESSCertIDv2).
//
// OpenSSL's TS_RESP_CTX carries per-request state and is not thread-safe: each request borrows
// one from a pool (created on demand, at most one per concurrent request), as uts-server keeps
// one per worker. Serial numbers come from a SerialSource that records them durably before they
// are used.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kyso/hsm/credential.h"
#include "kyso/hsm/result.h"

namespace kyso::signer {

// Serial numbers that are never handed out twice, across restarts and crashes.
class SerialSource {
  public:
    virtual ~SerialSource() = default;
    // The next serial; it is durably recorded as used before it is returned.
    virtual Result<std::uint64_t> next() = 0;
};

struct TsaPolicy {
    std::string policyOid = "2.999.1.1";     // default policy (2.999: the ITU "example" arc)
    std::vector<std::string> otherPolicies;  // further policies a request may ask for
    std::vector<hsm::HashAlg> digests = {hsm::HashAlg::Sha256, hsm::HashAlg::Sha384,
                                         hsm::HashAlg::Sha512};
    int accuracySeconds = 1;
    int accuracyMillis = 0;
    int accuracyMicros = 0;
    bool includeTsaName = true;  // the TSA's subject as the TSTInfo tsa field
    std::size_t maxRequestBytes = 16 * 1024;
};

class TimeStampAuthority {
  public:
    // `tsa`: the TSA credential (its certificate must have the critical timeStamping EKU);
    // chainDer of the credential is sent when a request asks for certificates. Errors:
    // "tsa.config" (certificate not fit for time-stamping, bad policy OID, no digest).
    static Result<std::unique_ptr<TimeStampAuthority>> create(const hsm::Credential& tsa,
                                                              TsaPolicy policy,
                                                              SerialSource& serials);
    ~TimeStampAuthority();

    // The DER TimeStampResp for a DER TimeStampReq. A request that is malformed, has trailing
    // bytes, uses a digest not accepted, or asks for an unknown policy gets a response with
    // PKIStatus rejection and the failure info (badDataFormat, badAlg, unacceptedPolicy,
    // badRequest) - that is a result, not an error. Errors are only: "tsa.too_large" (over
    // maxRequestBytes), "tsa.not_a_request" (the body is not DER at all), and the token's errors
    // (e.g. "token.unavailable") when the signature cannot be made.
    Result<std::string> respond(std::string_view request);

    const TsaPolicy& policy() const;

    struct Impl;

  private:
    explicit TimeStampAuthority(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m_impl;
};

}  // namespace kyso::signer
