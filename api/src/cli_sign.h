// `kyso sign pdf|cms`, shared by both executables: `kyso` runs B-B itself; a B-T signature needs
// a TSA client (HTTP, or the service's own TSA with its database), so `kyso` hands it to
// `kyso-service`, which passes its timestamper in. Private to api/.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "cli_common.h"
#include "kyso/hsm/token.h"
#include "kyso/signer/timestamper.h"

namespace kyso::cli {

// The level asked for: --level, else B-T when a TSA is configured ([timestamping] or [tsa]),
// else B-B. Empty with a message printed when --level is not B-B, B-T or B-LT.
std::string signLevel(const Args& a, const api::Config& cfg);

// Makes the timestamper for a B-T signature once the token is open.
using TimestamperFactory =
    std::function<Result<std::unique_ptr<signer::Timestamper>>(hsm::Token& token)>;

// Runs `kyso sign SUB`. A null factory means B-B only: B-T is then refused ("level.unsupported").
int cmdSign(const std::string& sub, const Args& a, const TimestamperFactory& makeTimestamper);

}  // namespace kyso::cli
