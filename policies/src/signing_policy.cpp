#include "kyso/policies/signing_policy.h"

#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace kyso::policies {

namespace {

std::string trim(const std::string& s) {
    const auto a = s.find_first_not_of(" \t\r");
    const auto b = s.find_last_not_of(" \t\r");
    return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
}

// The items of a comma-separated list, trimmed, empty ones dropped.
std::vector<std::string> list(const std::string& v) {
    std::vector<std::string> out;
    std::istringstream items(v);
    std::string item;
    while (std::getline(items, item, ',')) {
        item = trim(item);
        if (!item.empty()) {
            out.push_back(item);
        }
    }
    return out;
}

bool boolean(const std::string& v, std::optional<bool>* out) {
    if (v != "true" && v != "false") {
        return false;
    }
    *out = v == "true";
    return true;
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
    AuthorizationRule* rule = nullptr;
    std::map<std::string, int> ruleStart;  // rule name -> line of its header
    std::set<std::string> ruleKeys;
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
            if (rule != nullptr && ruleKeys.count("effect") == 0) {
                return bad("[rule." + rule->name + "] needs effect = allow or deny");
            }
            section = trim(line.substr(1, line.size() - 2));
            rule = nullptr;
            ruleKeys.clear();
            if (section.rfind("rule.", 0) == 0 && section.size() > 5) {
                const std::string ruleName = section.substr(5);
                if (ruleStart.count(ruleName)) {
                    return bad("rule " + ruleName + " is defined twice");
                }
                ruleStart[ruleName] = lineNo;
                p.authorization.rules.push_back(AuthorizationRule{});
                rule = &p.authorization.rules.back();
                rule->name = ruleName;
            } else if (section != "signing" && section != "operations" && section != "validation" &&
                       section != "appearance") {
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
        if (section == "validation") {
            ValidationRules& v = p.validation;
            if (key == "name") {
                v.name = value;
            } else if (key == "maxModifications") {
                if (value != "NONE" && value != "SIGNATURES_ONLY" && value != "FORM_FILLING" &&
                    value != "ANNOTATIONS") {
                    return bad(
                        "maxModifications must be NONE, SIGNATURES_ONLY, FORM_FILLING or "
                        "ANNOTATIONS (OTHER never passes)");
                }
                v.maxModifications = value;
            } else if (key == "digests") {
                v.digests = list(value);
                for (const auto& d : v.digests) {
                    if (d != "SHA-256" && d != "SHA-384" && d != "SHA-512" && d != "SHA-1") {
                        return bad("digests may list SHA-256, SHA-384, SHA-512 (and SHA-1)");
                    }
                }
                if (v.digests.empty()) {
                    return bad("digests must list at least one digest");
                }
            } else if (key == "rsaMinBits") {
                if (!number(value, 1024, 16384, &n)) {
                    return bad("rsaMinBits must be from 1024 to 16384");
                }
                v.rsaMinBits = static_cast<unsigned>(n);
            } else if (key == "ecMinBits") {
                if (!number(value, 160, 521, &n)) {
                    return bad("ecMinBits must be from 160 to 521");
                }
                v.ecMinBits = static_cast<unsigned>(n);
            } else if (key == "ocspMaxAgeSeconds") {
                if (!number(value, 60, 366ull * 86400, &n)) {
                    return bad("ocspMaxAgeSeconds must be from 60 to 366 days in seconds");
                }
                v.ocspMaxAgeSeconds = static_cast<long>(n);
            } else if (key == "revocation") {
                // The national rule: OCSP or the latest CRL, never a silent pass.
                if (value != "required") {
                    return bad("revocation must be required (OCSP or the latest CRL)");
                }
            } else if (key == "trustAnchors") {
                v.trustAnchors = value;
            } else {
                return bad("unknown key '" + key + "' in [validation]");
            }
            continue;
        }
        if (section == "appearance") {
            if (key != "requestOverrides") {
                return bad("unknown key '" + key + "' in [appearance]");
            }
            p.appearance.requestOverrides.clear();
            for (const auto& o : list(value)) {
                if (o != "layout" && o != "text" && o != "fontSize" && o != "image") {
                    return bad("requestOverrides may list layout, text, fontSize and image, not '" +
                               o + "'");
                }
                p.appearance.requestOverrides.insert(o);
            }
            continue;
        }
        if (section == "operations") {
            auto op = parseOperation(key);
            if (!op) {
                return bad("unknown operation '" + key +
                           "' (sign-pdf, sign-cms, sign-hash, seal, timestamp, receipt)");
            }
            auto& kinds = p.authorization.kindsFor[*op];
            kinds.clear();
            for (const auto& k : list(value)) {
                kinds.insert(k);
            }
            continue;
        }
        if (rule != nullptr) {
            if (!ruleKeys.insert(key).second) {
                return bad(key + " is repeated in [rule." + rule->name + "]");
            }
            if (key == "roles") {
                for (const auto& r : list(value)) {
                    auto role = parseRole(r);
                    if (!role) {
                        return bad("unknown role '" + r + "' (admin, officer, clerk, portal)");
                    }
                    rule->roles.insert(*role);
                }
            } else if (key == "operations") {
                for (const auto& o : list(value)) {
                    auto op = parseOperation(o);
                    if (!op) {
                        return bad("unknown operation '" + o + "'");
                    }
                    rule->operations.insert(*op);
                }
            } else if (key == "kinds") {
                for (const auto& k : list(value)) {
                    rule->kinds.insert(k);
                }
            } else if (key == "owner") {
                if (!boolean(value, &rule->owner)) {
                    return bad("owner must be true or false");
                }
            } else if (key == "kindFitsOperation") {
                if (!boolean(value, &rule->kindFitsOperation)) {
                    return bad("kindFitsOperation must be true or false");
                }
            } else if (key == "effect") {
                if (value != "allow" && value != "deny") {
                    return bad("effect must be allow or deny");
                }
                rule->allow = value == "allow";
            } else if (key == "reason") {
                rule->reason = value;
            } else {
                return bad("unknown key '" + key + "' in [rule." + rule->name + "]");
            }
            continue;
        }
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
    if (rule != nullptr && ruleKeys.count("effect") == 0) {
        return bad("[rule." + rule->name + "] needs effect = allow or deny");
    }
    return p;
}

const AuthorizationPolicy& defaultAuthorizationPolicy() {
    static const AuthorizationPolicy policy = [] {
        auto p = parseSigningPolicy(shippedPolicyText(), "policies/signing.policy (built in)");
        if (!p) {
            throw std::logic_error(p.error().detail);  // a build with a broken shipped policy
        }
        return p->authorization;
    }();
    return policy;
}

const AuthorizationPolicy& authorizationOf(const SigningPolicy& p) {
    return p.authorization.rules.empty() && p.authorization.kindsFor.empty()
               ? defaultAuthorizationPolicy()
               : p.authorization;
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

Decision checkAppearanceOverrides(const SigningPolicy& policy,
                                  const std::set<std::string>& overrides) {
    for (const auto& o : overrides) {
        if (!policy.appearance.requestOverrides.count(o)) {
            return {false, "appearance-override",
                    "the policy keeps the configured appearance's " + o +
                        "; a request may not change it"};
        }
    }
    return {true, "allowed", ""};
}

}  // namespace kyso::policies
