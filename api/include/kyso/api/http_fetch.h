// HTTP(S) GET/POST with Poco for revocation data (CRLs, OCSP), bounded in time and size.
#pragma once

#include <string>

#include "kyso/ca-bridge/revocation.h"

namespace kyso::api {

// tlsCaFile: PEM roots for https URLs (empty: the system's). Bodies over maxBytes are refused.
ca::Fetch makeHttpFetch(std::string tlsCaFile, int timeoutSeconds,
                        std::size_t maxBytes = 16 * 1024 * 1024);

}  // namespace kyso::api
