// Private: the service's Prometheus metrics (GET /metrics, text exposition format 0.0.4).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

namespace kyso::api {

class Metrics {
  public:
    // One answered request: `route` is the route template ("/ca/{name}", "other"), never the raw
    // path, so that the label set stays bounded.
    void request(const std::string& method, const std::string& route, int status, double seconds);
    // One signing operation (sign.pdf, sign.cms, timestamp) and its outcome (ok, failed, denied).
    void operation(const std::string& credential, const std::string& op,
                   const std::string& outcome);
    // The counters and histograms, for the exposition.
    std::string render() const;

    static constexpr std::array<double, 11> kBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                        0.5,   1.0,  2.5,   5.0,  10.0};

  private:
    struct Histogram {
        std::array<std::uint64_t, kBuckets.size()> buckets{};
        std::uint64_t count = 0;
        double sum = 0;
    };
    mutable std::mutex m_mu;
    std::map<std::tuple<std::string, std::string, int>, std::uint64_t> m_requests;
    std::map<std::string, Histogram> m_latency;  // by route
    std::map<std::tuple<std::string, std::string, std::string>, std::uint64_t> m_operations;
};

// A Prometheus label value, escaped (backslash, double quote, newline).
std::string promLabel(const std::string& v);

}  // namespace kyso::api
