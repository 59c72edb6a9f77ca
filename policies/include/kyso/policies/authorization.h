// Who may use which credential for what: a pure function of (principal, credential, operation),
// with its decision table below and a test per row (tests/policies/authorization_test.cpp).
//
// | rule                    | principal role | operation              | credential          |
// result |
// |-------------------------|----------------|------------------------|---------------------|--------|
// | admin-no-signing        | admin          | any signing            | any                 | deny
// | | officer-own-credential  | officer        | sign-pdf/cms/hash      | officer, owned      |
// allow  | | officer-not-owner       | officer        | sign-pdf/cms/hash      | officer, not owned
// | deny   | | clerk-applies-seal      | clerk          | seal                   | seal | allow  |
// | portal-seals-receipts   | portal         | receipt                | receipt-seal        | allow
// | | tsa-for-timestamps      | any            | timestamp              | tsa                 |
// allow  | | kind-mismatch           | any            | any                    | kind not for op |
// deny   | | default-deny            | anything else  |                        | | deny   |
//
// "Owned" means the principal's name is listed in the credential's owners. Listing credentials
// shows a principal exactly those it may use for at least one operation.
#pragma once

#include <optional>
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

Decision decide(const Principal& who, const CredentialFacts& credential, Operation op);

// True when `who` may use `credential` for at least one operation.
bool mayUse(const Principal& who, const CredentialFacts& credential);

}  // namespace kyso::policies
