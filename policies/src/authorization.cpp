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

namespace {

bool isOfficerSigning(Operation op) {
    return op == Operation::SignPdf || op == Operation::SignCms || op == Operation::SignHash;
}

// Which credential kind each operation needs.
bool kindFits(const std::string& kind, Operation op) {
    switch (op) {
        case Operation::SignPdf:
        case Operation::SignCms:
        case Operation::SignHash:
            return kind == "officer";
        case Operation::Seal:
            return kind == "seal";
        case Operation::Receipt:
            return kind == "receipt-seal";
        case Operation::Timestamp:
            return kind == "tsa";
    }
    return false;
}

Decision deny(std::string rule, std::string reason) {
    return Decision{false, std::move(rule), std::move(reason)};
}

Decision allow(std::string rule) {
    return Decision{true, std::move(rule), {}};
}

}  // namespace

Decision decide(const Principal& who, const CredentialFacts& c, Operation op) {
    if (op == Operation::Timestamp && c.kind == "tsa") {
        return allow("tsa-for-timestamps");
    }
    if (who.role == Role::Admin) {
        return deny("admin-no-signing", "administrators manage the service and do not sign");
    }
    if (!kindFits(c.kind, op)) {
        return deny("kind-mismatch",
                    "credential '" + c.id + "' (" + c.kind + ") cannot be used for this operation");
    }
    if (who.role == Role::Officer && isOfficerSigning(op)) {
        const bool owner = std::find(c.owners.begin(), c.owners.end(), who.name) != c.owners.end();
        if (owner) {
            return allow("officer-own-credential");
        }
        return deny("officer-not-owner", "an officer signs only with his own credential; '" + c.id +
                                             "' belongs to someone else");
    }
    if (who.role == Role::Clerk && op == Operation::Seal) {
        return allow("clerk-applies-seal");
    }
    if (who.role == Role::Portal && op == Operation::Receipt) {
        return allow("portal-seals-receipts");
    }
    return deny("default-deny", std::string("role ") + roleName(who.role) +
                                    " may not use credential '" + c.id + "' for this operation");
}

bool mayUse(const Principal& who, const CredentialFacts& c) {
    for (Operation op : {Operation::SignPdf, Operation::SignCms, Operation::SignHash,
                         Operation::Seal, Operation::Timestamp, Operation::Receipt}) {
        if (decide(who, c, op).allowed) {
            return true;
        }
    }
    return false;
}

}  // namespace kyso::policies
