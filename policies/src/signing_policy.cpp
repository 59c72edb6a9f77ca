#include "kyso/policies/signing_policy.h"

#include <map>
#include <sstream>

namespace kyso::policies {

namespace {

std::string trim(const std::string& s) {
    const auto a = s.find_first_not_of(" \t\r");
    const auto b = s.find_last_not_of(" \t\r");
    return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
}

int levelRank(const std::string& level) {
    return level == "B-B" ? 1 : level == "B-T" ? 2 : level == "B-LT" ? 3 : 0;
}

}  // namespace

Result<SigningPolicy> parseSigningPolicy(const std::string& text, const std::string& name) {
    SigningPolicy p;
    std::istringstream in(text);
    std::string line;
    std::string section;
    int lineNo = 0;
    auto bad = [&](const std::string& why) {
        return Error::make("policy.invalid", name + ":" + std::to_string(lineNo) + ": " + why);
    };
    auto number = [](const std::string& v, std::uint64_t min, std::uint64_t max,
                     std::uint64_t* out) {
        try {
            std::size_t used = 0;
            const unsigned long long n = std::stoull(v, &used);
            if (used != v.size() || v[0] == '-' || n < min || n > max) {
                return false;
            }
            *out = n;
            return true;
        } catch (const std::exception&) {
            return false;
        }
    };
    while (std::getline(in, line)) {
        ++lineNo;
        line = trim(line);
        if (line.empty() || line[0] == '#' || line[0] == ';') {
            continue;
        }
        if (line.front() == '[') {
            if (line.back() != ']') {
                return bad("a section header needs a closing ]");
            }
            section = trim(line.substr(1, line.size() - 2));
            if (section != "signing") {
                return bad("unknown section [" + section + "]");
            }
            continue;
        }
        const auto eq = line.find('=');
        if (eq == std::string::npos || section.empty()) {
            return bad("expected key = value in a section");
        }
        const std::string key = trim(line.substr(0, eq));
        const std::string value = trim(line.substr(eq + 1));
        std::uint64_t n = 0;
        if (key == "maxDocumentBytes") {
            if (!number(value, 1024, 1ull << 40, &n)) {
                return bad("maxDocumentBytes must be a number from 1024 to 2^40");
            }
            p.maxDocumentBytes = n;
        } else if (key == "minimumLevel") {
            if (levelRank(value) == 0) {
                return bad("minimumLevel must be B-B, B-T or B-LT");
            }
            p.minimumLevel = value;
        } else if (key == "rsaMinBits") {
            if (!number(value, 2048, 16384, &n)) {
                return bad("rsaMinBits must be from 2048 to 16384 (the national minimum is 2048)");
            }
            p.rsaMinBits = static_cast<unsigned>(n);
        } else if (key == "ecMinBits") {
            if (!number(value, 256, 521, &n)) {
                return bad("ecMinBits must be from 256 to 521 (the national minimum is 256)");
            }
            p.ecMinBits = static_cast<unsigned>(n);
        } else if (key == "hashes") {
            p.hashes.clear();
            std::istringstream list(value);
            std::string h;
            while (std::getline(list, h, ',')) {
                h = trim(h);
                if (h != "SHA-256" && h != "SHA-384" && h != "SHA-512") {
                    return bad("hashes may list SHA-256, SHA-384 and SHA-512 only, not '" + h +
                               "'");
                }
                p.hashes.insert(h);
            }
            if (p.hashes.empty()) {
                return bad("hashes must list at least one hash");
            }
        } else if (key == "ratePerMinute") {
            if (!number(value, 0, 1000000, &n)) {
                return bad("ratePerMinute must be a number from 0 (no limit) to 1000000");
            }
            p.ratePerMinute = static_cast<unsigned>(n);
        } else {
            return bad("unknown key '" + key + "' in [" + section + "]");
        }
    }
    return p;
}

Decision checkSigningRequest(const SigningPolicy& policy, const SigningRequestFacts& r) {
    if (r.documentBytes > policy.maxDocumentBytes) {
        return {false, "document-too-large",
                "the document is larger than the policy's " +
                    std::to_string(policy.maxDocumentBytes) + " bytes"};
    }
    if (levelRank(r.level) < levelRank(policy.minimumLevel)) {
        return {false, "minimum-level",
                "the policy requires at least level " + policy.minimumLevel};
    }
    if (r.keyType == "RSA" && r.keyBits < policy.rsaMinBits) {
        return {false, "rsa-key-too-small",
                "the policy requires RSA keys of at least " + std::to_string(policy.rsaMinBits) +
                    " bits"};
    }
    if (r.keyType == "EC" && r.keyBits < policy.ecMinBits) {
        return {false, "ec-key-too-small",
                "the policy requires EC keys of at least " + std::to_string(policy.ecMinBits) +
                    " bits"};
    }
    if (!policy.hashes.count(r.hash)) {
        return {false, "hash-not-allowed", "the policy does not allow " + r.hash};
    }
    return {true, "allowed", ""};
}

}  // namespace kyso::policies
