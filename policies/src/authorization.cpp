#include "kyso/policies/authorization.h"

#include <algorithm>

namespace kyso::policies {

std::optional<Role> parseRole(std::string_view name) noexcept {
    if (name == "admin") {
        return Role::Admin;
    }
    if (name == "officer") {
        return Role::Officer;
    }
    if (name == "clerk") {
        return Role::Clerk;
    }
    if (name == "portal") {
        return Role::Portal;
    }
    return std::nullopt;
}

const char* roleName(Role r) noexcept {
    switch (r) {
        case Role::Admin:
            return "admin";
        case Role::Officer:
            return "officer";
        case Role::Clerk:
            return "clerk";
        case Role::Portal:
            return "portal";
    }
    return "";
}

std::optional<Operation> parseOperation(std::string_view name) noexcept {
    for (Operation op : {Operation::SignPdf, Operation::SignCms, Operation::SignHash,
                         Operation::Seal, Operation::Timestamp, Operation::Receipt}) {
        if (name == operationName(op)) {
            return op;
        }
    }
    return std::nullopt;
}

const char* operationName(Operation op) noexcept {
    switch (op) {
        case Operation::SignPdf:
            return "sign-pdf";
        case Operation::SignCms:
            return "sign-cms";
        case Operation::SignHash:
            return "sign-hash";
        case Operation::Seal:
            return "seal";
        case Operation::Timestamp:
            return "timestamp";
        case Operation::Receipt:
            return "receipt";
    }
    return "";
}

namespace {

std::string fill(std::string text, const Principal& who, const CredentialFacts& c) {
    for (const auto& [key, value] : {std::pair<std::string, std::string>{"{credential}", c.id},
                                     {"{kind}", c.kind},
                                     {"{role}", roleName(who.role)}}) {
        for (auto at = text.find(key); at != std::string::npos; at = text.find(key, at)) {
            text.replace(at, key.size(), value);
            at += value.size();
        }
    }
    return text;
}

}  // namespace

Decision decide(const AuthorizationPolicy& policy, const Principal& who, const CredentialFacts& c,
                Operation op) {
    auto kinds = policy.kindsFor.find(op);
    const bool kindFits = kinds != policy.kindsFor.end() && kinds->second.count(c.kind) > 0;
    const bool owner = std::find(c.owners.begin(), c.owners.end(), who.name) != c.owners.end();
    for (const AuthorizationRule& r : policy.rules) {
        if ((!r.roles.empty() && !r.roles.count(who.role)) ||
            (!r.operations.empty() && !r.operations.count(op)) ||
            (!r.kinds.empty() && !r.kinds.count(c.kind)) || (r.owner && *r.owner != owner) ||
            (r.kindFitsOperation && *r.kindFitsOperation != kindFits)) {
            continue;
        }
        return Decision{r.allow, r.name, r.allow ? std::string() : fill(r.reason, who, c)};
    }
    return Decision{false, "default-deny",
                    std::string("role ") + roleName(who.role) + " may not use credential '" + c.id +
                        "' for this operation"};
}

Decision decide(const Principal& who, const CredentialFacts& c, Operation op) {
    return decide(defaultAuthorizationPolicy(), who, c, op);
}

bool mayUse(const AuthorizationPolicy& policy, const Principal& who, const CredentialFacts& c) {
    for (Operation op : {Operation::SignPdf, Operation::SignCms, Operation::SignHash,
                         Operation::Seal, Operation::Timestamp, Operation::Receipt}) {
        if (decide(policy, who, c, op).allowed) {
            return true;
        }
    }
    return false;
}

bool mayUse(const Principal& who, const CredentialFacts& c) {
    return mayUse(defaultAuthorizationPolicy(), who, c);
}

}  // namespace kyso::policies
