#include "metrics.h"

#include <cstdio>
#include <sstream>

namespace kyso::api {

std::string promLabel(const std::string& v) {
    std::string out;
    for (char c : v) {
        if (c == '\\' || c == '"') {
            out += '\\';
            out += c;
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

void Metrics::request(const std::string& method, const std::string& route, int status,
                      double seconds) {
    std::lock_guard lk(m_mu);
    ++m_requests[{method, route, status}];
    Histogram& h = m_latency[route];
    for (std::size_t i = 0; i < kBuckets.size(); ++i) {
        if (seconds <= kBuckets[i]) {
            ++h.buckets[i];
        }
    }
    ++h.count;
    h.sum += seconds;
}

void Metrics::operation(const std::string& credential, const std::string& op,
                        const std::string& outcome) {
    std::lock_guard lk(m_mu);
    ++m_operations[{credential, op, outcome}];
}

std::string Metrics::render() const {
    std::ostringstream o;
    std::lock_guard lk(m_mu);
    o << "# HELP kyso_http_requests_total HTTP requests answered, by method, route and status.\n"
      << "# TYPE kyso_http_requests_total counter\n";
    for (const auto& [k, n] : m_requests) {
        o << "kyso_http_requests_total{method=\"" << promLabel(std::get<0>(k)) << "\",route=\""
          << promLabel(std::get<1>(k)) << "\",status=\"" << std::get<2>(k) << "\"} " << n << "\n";
    }
    o << "# HELP kyso_http_request_duration_seconds Time to answer a request, by route.\n"
      << "# TYPE kyso_http_request_duration_seconds histogram\n";
    for (const auto& [route, h] : m_latency) {
        const std::string r = promLabel(route);
        for (std::size_t i = 0; i < kBuckets.size(); ++i) {
            char le[32];
            std::snprintf(le, sizeof le, "%g", kBuckets[i]);
            o << "kyso_http_request_duration_seconds_bucket{route=\"" << r << "\",le=\"" << le
              << "\"} " << h.buckets[i] << "\n";
        }
        o << "kyso_http_request_duration_seconds_bucket{route=\"" << r << "\",le=\"+Inf\"} "
          << h.count << "\n"
          << "kyso_http_request_duration_seconds_sum{route=\"" << r << "\"} " << h.sum << "\n"
          << "kyso_http_request_duration_seconds_count{route=\"" << r << "\"} " << h.count << "\n";
    }
    o << "# HELP kyso_operations_total Signatures and timestamps, by credential, operation and "
         "outcome.\n"
      << "# TYPE kyso_operations_total counter\n";
    for (const auto& [k, n] : m_operations) {
        o << "kyso_operations_total{credential=\"" << promLabel(std::get<0>(k)) << "\",operation=\""
          << promLabel(std::get<1>(k)) << "\",outcome=\"" << promLabel(std::get<2>(k)) << "\"} "
          << n << "\n";
    }
    return o.str();
}

}  // namespace kyso::api
