// One test per row of the decision table in kyso/policies/authorization.h.
#include "kyso/policies/authorization.h"

#include <gtest/gtest.h>

namespace kyso::policies {
namespace {

const CredentialFacts kOfficerCred{"officer-1", "officer", {"officer-1"}};
const CredentialFacts kSeal{"seal-1", "seal", {"clerk", "officer-1", "portal"}};
const CredentialFacts kReceiptSeal{"receipt-1", "receipt-seal", {}};
const CredentialFacts kTsa{"tsa", "tsa", {}};

TEST(Authorization, AdminNeverSigns) {
    const Principal admin{"root", Role::Admin};
    for (auto op : {Operation::SignPdf, Operation::SignCms, Operation::SignHash}) {
        auto d = decide(admin, kOfficerCred, op);
        EXPECT_FALSE(d.allowed);
        EXPECT_EQ(d.rule, "admin-no-signing");
    }
    EXPECT_EQ(decide(admin, kSeal, Operation::Seal).rule, "admin-no-signing");
}

TEST(Authorization, OfficerSignsWithOwnCredential) {
    const Principal me{"officer-1", Role::Officer};
    for (auto op : {Operation::SignPdf, Operation::SignCms, Operation::SignHash}) {
        auto d = decide(me, kOfficerCred, op);
        EXPECT_TRUE(d.allowed);
        EXPECT_EQ(d.rule, "officer-own-credential");
    }
}

TEST(Authorization, OfficerCannotUseAnotherOfficersCredential) {
    const Principal other{"officer-2", Role::Officer};
    auto d = decide(other, kOfficerCred, Operation::SignPdf);
    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.rule, "officer-not-owner");
    EXPECT_NE(d.reason.find("officer-1"), std::string::npos);
}

TEST(Authorization, ClerkAppliesTheSealEntrustedToHim) {
    const Principal clerk{"clerk", Role::Clerk};
    auto d = decide(clerk, kSeal, Operation::Seal);
    EXPECT_TRUE(d.allowed);
    EXPECT_EQ(d.rule, "seal-entrusted");
    // ... but never signs as an officer.
    EXPECT_FALSE(decide(clerk, kOfficerCred, Operation::SignPdf).allowed);
}

TEST(Authorization, OfficerAppliesTheAgencySealOnlyWhenEntrusted) {
    auto d = decide({"officer-1", Role::Officer}, kSeal, Operation::Seal);
    EXPECT_TRUE(d.allowed);
    EXPECT_EQ(d.rule, "seal-entrusted");
    auto other = decide({"officer-2", Role::Officer}, kSeal, Operation::Seal);
    EXPECT_FALSE(other.allowed);
    EXPECT_EQ(other.rule, "seal-not-entrusted");
    EXPECT_NE(other.reason.find("seal-1"), std::string::npos);
}

TEST(Authorization, SealNotEntrustedIsDeniedWhateverTheRole) {
    const CredentialFacts otherAgency{"seal-2", "seal", {"clerk-2"}};
    for (auto role : {Role::Officer, Role::Clerk, Role::Portal}) {
        auto d = decide({"clerk", role}, otherAgency, Operation::Seal);
        EXPECT_FALSE(d.allowed);
        EXPECT_EQ(d.rule, "seal-not-entrusted");
    }
}

TEST(Authorization, PortalSealsReceiptsButNeverSignsAsOfficer) {
    const Principal portal{"portal", Role::Portal};
    auto d = decide(portal, kReceiptSeal, Operation::Receipt);
    EXPECT_TRUE(d.allowed);
    EXPECT_EQ(d.rule, "portal-seals-receipts");
    auto officer = decide(portal, kOfficerCred, Operation::SignPdf);
    EXPECT_FALSE(officer.allowed);
    EXPECT_EQ(officer.rule, "default-deny");
    EXPECT_FALSE(decide(portal, kSeal, Operation::Seal).allowed);
}

TEST(Authorization, TsaServesTimestampsToEveryRole) {
    for (auto role : {Role::Admin, Role::Officer, Role::Clerk, Role::Portal}) {
        auto d = decide(Principal{"x", role}, kTsa, Operation::Timestamp);
        EXPECT_TRUE(d.allowed);
        EXPECT_EQ(d.rule, "tsa-for-timestamps");
    }
}

TEST(Authorization, KindMismatchIsDenied) {
    const Principal me{"officer-1", Role::Officer};
    // A seal credential listing the officer as owner still cannot sign as an officer.
    const CredentialFacts sealOwned{"seal-1", "seal", {"officer-1"}};
    auto d = decide(me, sealOwned, Operation::SignPdf);
    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.rule, "kind-mismatch");
    EXPECT_EQ(decide(me, kOfficerCred, Operation::Timestamp).rule, "kind-mismatch");
}

TEST(Authorization, APortalSignsForTheCitizensItEnrolledOnly) {
    const CredentialFacts citizen{"citizen-1", "citizen", {"portal"}};
    for (auto op : {Operation::SignPdf, Operation::SignHash}) {
        auto d = decide({"portal", Role::Portal}, citizen, op);
        EXPECT_TRUE(d.allowed);
        EXPECT_EQ(d.rule, "portal-own-citizen");
        EXPECT_FALSE(decide({"portal-2", Role::Portal}, citizen, op).allowed);
        EXPECT_FALSE(decide({"officer-1", Role::Officer}, citizen, op).allowed);
    }
    EXPECT_EQ(decide({"portal", Role::Portal}, citizen, Operation::SignCms).rule, "kind-mismatch");
}

TEST(Authorization, DefaultDeny) {
    // A portal listed as a seal's owner is still no registry office.
    const Principal me{"portal", Role::Portal};
    auto d = decide(me, kSeal, Operation::Seal);
    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.rule, "default-deny");
}

TEST(Authorization, ListingShowsOnlyUsableCredentials) {
    EXPECT_TRUE(mayUse({"officer-1", Role::Officer}, kOfficerCred));
    EXPECT_FALSE(mayUse({"officer-2", Role::Officer}, kOfficerCred));
    EXPECT_FALSE(mayUse({"portal", Role::Portal}, kOfficerCred));
    EXPECT_TRUE(mayUse({"portal", Role::Portal}, kReceiptSeal));
}

TEST(Authorization, RoleNamesRoundTrip) {
    for (auto role : {Role::Admin, Role::Officer, Role::Clerk, Role::Portal}) {
        EXPECT_EQ(parseRole(roleName(role)), role);
    }
    EXPECT_FALSE(parseRole("root").has_value());
    EXPECT_FALSE(parseRole("Officer").has_value());
}

}  // namespace
}  // namespace kyso::policies
