// Private: an audit row as JSON, for GET /api/v1/audit and `kyso audit export`.
#pragma once

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include "kyso/api/store.h"

namespace kyso::api {

// `detailAsObject`: the detail parsed (for reading); otherwise its exact text, which the hash
// covers (for an export that is verified again).
inline Poco::JSON::Object auditRowJson(const AuditRow& r, bool detailAsObject) {
    Poco::JSON::Object e(Poco::JSON_PRESERVE_KEY_ORDER);
    e.set("seq", static_cast<Poco::UInt64>(r.seq));
    e.set("time", r.time);
    e.set("type", r.type);
    e.set("principal", r.principal);
    e.set("credential", r.credential);
    e.set("outcome", r.outcome);
    if (detailAsObject) {
        Poco::JSON::Parser parser;
        e.set("detail", parser.parse(r.detail));
    } else {
        e.set("detail", r.detail);
    }
    e.set("prevHash", r.prevHash);
    e.set("hash", r.hash);
    return e;
}

}  // namespace kyso::api
