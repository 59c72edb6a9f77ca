// Who may use which credential for what: a pure function of (policy, principal, credential,
// operation). The rules are declarative, in the policy file (policies/signing.policy, [rule.NAME]
// sections, first match decides, none: default-deny); the shipped table is below, with a test per
// row (tests/policies/authorization_test.cpp).
//
// clang-format off
// | # | rule                   | role    | operation         | credential           | result |
// |---|------------------------|---------|-------------------|----------------------|--------|
// | 1 | tsa-for-timestamps     | any     | timestamp         | tsa                  | allow  |
// | 2 | admin-no-signing       | admin   | any               | any                  | deny   |
// | 3 | kind-mismatch          | any     | any               | a kind the op refuses| deny   |
// | 4 | officer-own-credential | officer | sign-pdf/cms/hash | owned                | allow  |
// | 5 | officer-not-owner      | officer | sign-pdf/cms/hash | not owned            | deny   |
// | 6 | seal-entrusted         | clerk, officer | seal       | owned (kind: seal)   | allow  |
// | 7 | seal-not-entrusted     | any     | seal              | not owned            | deny   |
// | 8 | portal-own-citizen     | portal  | sign-pdf/hash     | owned (kind: citizen)| allow  |
// | 9 | portal-seals-receipts  | portal  | receipt           | any (receipt-seal)   | allow  |
// | - | default-deny           | anything else                                   | deny   |
// clang-format on
//
// "Owned" means the principal's name is listed in the credential's owners. Listing credentials
// shows a principal exactly those it may use for at least one operation.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace kyso::policies {

enum class Role { Admin, Officer, Clerk, Portal };
enum class Operation { SignPdf, SignCms, SignHash, Seal, Timestamp, Receipt };

std::optional<Role> parseRole(std::string_view name) noexcept;
const char* roleName(Role r) noexcept;

struct Principal {
    std::string name;
    Role role = Role::Portal;
};

struct CredentialFacts {
    std::string id;
    std::string kind;  // "officer", "seal", "receipt-seal", "tsa", "citizen"
    std::vector<std::string> owners;
};

struct Decision {
    bool allowed = false;
    std::string rule;    // the row of the table that decided
    std::string reason;  // for the problem+json detail
};

// One row of the table: every condition that is set must hold; the first matching row decides.
struct AuthorizationRule {
    std::string name;
    std::set<Role> roles;                   // empty: any role
    std::set<Operation> operations;         // empty: any operation
    std::set<std::string> kinds;            // credential kinds; empty: any
    std::optional<bool> owner;              // the principal is among the credential's owners
    std::optional<bool> kindFitsOperation;  // the credential's kind is one the operation takes
    bool allow = false;
    std::string reason;  // for a deny; "{credential}", "{kind}" and "{role}" are filled in
};

// The [operations] and [rule.NAME] sections of the policy file (policies/signing.policy).
struct AuthorizationPolicy {
    std::vector<AuthorizationRule> rules;
    std::map<Operation, std::set<std::string>> kindsFor;  // which credential kinds each takes
};

// The table above, as the shipped policies/signing.policy states it.
const AuthorizationPolicy& defaultAuthorizationPolicy();

// "sign-pdf", "sign-cms", "sign-hash", "seal", "timestamp", "receipt".
std::optional<Operation> parseOperation(std::string_view name) noexcept;
const char* operationName(Operation op) noexcept;

Decision decide(const AuthorizationPolicy& policy, const Principal& who,
                const CredentialFacts& credential, Operation op);
// With defaultAuthorizationPolicy().
Decision decide(const Principal& who, const CredentialFacts& credential, Operation op);

// True when `who` may use `credential` for at least one operation.
bool mayUse(const AuthorizationPolicy& policy, const Principal& who,
            const CredentialFacts& credential);
bool mayUse(const Principal& who, const CredentialFacts& credential);

}  // namespace kyso::policies
