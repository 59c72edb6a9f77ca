// Private: the validation report as the contract's JSON (docs/API.md, "The validation report").
#pragma once

#include <Poco/JSON/Object.h>

#include <ctime>
#include <string>

#include "kyso/policies/validation.h"

namespace kyso::api {

// RFC 3339 UTC ("2026-11-25T10:00:00Z").
std::string isoUtc(std::time_t t);

Poco::JSON::Object::Ptr reportJson(const policies::ValidationReport& report);

// Exit status of `kyso verify` for a report: 0 TOTAL_PASSED, 1 TOTAL_FAILED, 2 otherwise.
int verifyExitCode(const policies::ValidationReport& report);

}  // namespace kyso::api
