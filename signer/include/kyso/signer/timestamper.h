// Signature timestamps (RFC 3161 client side): where B-T signatures get their trusted time.
//
// Every reply is checked before it is used: status granted, version, message imprint, nonce,
// the TSA's signature and ESS signing-certificate binding, and the TSA certificate's path to a
// configured trust anchor with the timeStamping EKU (OpenSSL TS_RESP_verify_response).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "kyso/hsm/result.h"
#include "kyso/hsm/token.h"
#include "kyso/signer/tsa.h"

namespace kyso::signer {

class Timestamper {
  public:
    // trustAnchorsDer: the roots the TSA certificate must chain to; intermediates come from the
    // reply (certReq is always set). initialReserve: the token size to reserve before any token
    // was seen; 0 means "ask the TSA once" (cheap for an in-process TSA, a second network round
    // trip for a remote one).
    explicit Timestamper(std::vector<std::string> trustAnchorsDer, std::size_t initialReserve = 0);
    virtual ~Timestamper() = default;

    // A checked TimeStampToken (DER ContentInfo) for `digest` of algorithm `hash`. Errors:
    // "tsa.unavailable" (no answer), "tsa.rejected" (a PKIStatus other than granted),
    // "tsa.invalid_reply" (any check failed), and the transport's own.
    Result<std::string> timestamp(std::string_view digest, hsm::HashAlg hash);

    // An upper bound of the size of the tokens this TSA returns for `hash`, for /Contents sizing:
    // the largest token seen plus a margin; before any, initialReserve, or (when that is 0) the
    // size of one token asked for with a fixed digest of that algorithm.
    Result<std::size_t> maxTokenSize(hsm::HashAlg hash);

  protected:
    // Sends a DER TimeStampReq, returns the DER TimeStampResp.
    virtual Result<std::string> exchange(const std::string& request) = 0;

  private:
    std::vector<std::string> m_anchors;
    std::size_t m_initialReserve;
    std::mutex m_mu;
    std::size_t m_maxSeen = 0;
};

// The service's own TSA, called in process.
class LocalTimestamper final : public Timestamper {
  public:
    LocalTimestamper(TimeStampAuthority& tsa, std::vector<std::string> trustAnchorsDer)
        : Timestamper(std::move(trustAnchorsDer)), m_tsa(tsa) {}

  protected:
    Result<std::string> exchange(const std::string& request) override {
        return m_tsa.respond(request);
    }

  private:
    TimeStampAuthority& m_tsa;
};

}  // namespace kyso::signer
