// Private: the service's log, one JSON object per line on stderr (time, level, msg, and fields
// such as requestId). Nothing secret goes in: no PIN, key, API key or document content.
#pragma once

#include <Poco/Dynamic/Var.h>
#include <Poco/JSON/Object.h>

#include <ctime>
#include <initializer_list>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <utility>

namespace kyso::api {

inline void logJson(const char* level, const std::string& msg,
                    std::initializer_list<std::pair<const char*, Poco::Dynamic::Var>> fields = {}) {
    Poco::JSON::Object o(Poco::JSON_PRESERVE_KEY_ORDER);
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    o.set("time", std::string(buf));
    o.set("level", std::string(level));
    o.set("msg", msg);
    for (const auto& [k, v] : fields) {
        o.set(k, v);
    }
    std::ostringstream line;
    o.stringify(line);
    line << "\n";
    const std::string text = line.str();
    static std::mutex mu;
    std::lock_guard lk(mu);
    // One write per line: std::clog is unbuffered.
    std::clog.write(text.data(), static_cast<std::streamsize>(text.size()));
}

}  // namespace kyso::api
