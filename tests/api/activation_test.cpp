// Citizens' remote signing (issue 7): enrolment, PIN change, credentials/authorize and signHash's
// SAD checks, against a real SQLite file made per test. The one-time codes come from oathtool
// (OATH Toolkit), not from our TOTP code, and the QR codes are read back by zbarimg (ZBar): our
// output is checked by tools we did not write.
#include "activation.h"

#include <botan/base64.h>
#include <botan/hash.h>
#include <botan/hex.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "kyso/api/store.h"
#include "kyso/signer/png_image.h"
#include "qr.h"
#include "test_env.h"

namespace kyso::test {
namespace {

using std::chrono::seconds;
using std::chrono::system_clock;

// 2025-03-01T08:00:10Z: ten seconds into a 30-second TOTP step.
constexpr std::int64_t kStart = 1740816010;
constexpr const char* kPin = "40917362";
constexpr const char* kSha256Oid = "2.16.840.1.101.3.4.2.1";

std::int64_t unixOf(system_clock::time_point t) {
    return std::chrono::duration_cast<seconds>(t.time_since_epoch()).count();
}

std::string digest(const std::string& algorithm, const std::string& data) {
    auto h = Botan::HashFunction::create_or_throw(algorithm);
    h->update(data);
    const auto out = h->final();
    return std::string(out.begin(), out.end());
}

std::string sha256(const std::string& data) {
    return digest("SHA-256", data);
}

std::string trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) {
        s.pop_back();
    }
    return s;
}

api::CitizenEnrolment person(const std::string& identity,
                             const std::string& name = "Nguyễn Văn An") {
    return api::CitizenEnrolment{identity, name, "Hà Nội", "an.nguyen@example.vn", "portal-hn"};
}

class Activation : public ::testing::Test {
  protected:
    void SetUp() override {
        m_dir = tempDir("activation");
        m_db = m_dir + "/kyso.db";
        m_store = std::move(api::Store::open(m_db).value());
        m_now = system_clock::time_point(seconds(kStart));
        m_act = std::make_unique<api::Activation>(*m_store, [this] { return m_now; });
    }

    // oathtool's code for a base32 key at time t. The key reaches oathtool through a file, not
    // its argv.
    std::string oathCode(const std::string& base32, system_clock::time_point t) {
        const std::string keyFile = m_dir + "/totp.key";
        writeFile(keyFile, base32 + "\n");
        std::string out;
        const int rc = run(
            "oathtool --totp -b --now=@" + std::to_string(unixOf(t)) + " @" + shellQuote(keyFile),
            &out);
        ::unlink(keyFile.c_str());
        EXPECT_EQ(rc, 0) << out;
        out = trimmed(out);
        EXPECT_TRUE(std::regex_match(out, std::regex("[0-9]{6}"))) << out;
        return out;
    }
    std::string code(const std::string& base32, int stepsFromNow = 0) {
        return oathCode(base32, m_now + seconds(30 * stepsFromNow));
    }

    struct Ready {
        std::string id;
        std::string base32;
    };
    // Enrolled, initial PIN changed to kPin: ready to authorize.
    Ready ready(const std::string& identity = "001234567890") {
        auto e = m_act->enrol(person(identity));
        EXPECT_TRUE(e.ok()) << e.error().code << ": " << e.error().detail;
        api::AttemptReport r;
        auto st = m_act->changePin(e->citizen.id, e->activation.initialPin.view(), kPin, r);
        EXPECT_TRUE(st.ok()) << st.error().code;
        return Ready{e->citizen.id, std::string(e->activation.totpSecretBase32.view())};
    }

    api::AuthorizeRequest request(const std::string& id, std::string_view pin, std::string_view otp,
                                  std::vector<std::string> hashes) {
        api::AuthorizeRequest rq;
        rq.credentialId = id;
        rq.pin = pin;
        rq.otp = otp;
        rq.numSignatures = static_cast<int>(hashes.size());
        rq.hashes = std::move(hashes);
        rq.hashAlgorithm = kSha256Oid;
        return rq;
    }

    // An authorization with the right PIN and the current code; fails the test otherwise.
    std::string authorizeOk(const Ready& c, std::vector<std::string> hashes) {
        const std::string otp = code(c.base32);
        api::AttemptReport r;
        auto sad = m_act->authorize(request(c.id, kPin, otp, std::move(hashes)), r);
        EXPECT_TRUE(sad.ok()) << sad.error().code << ": " << sad.error().detail;
        EXPECT_EQ(r.outcome, api::AttemptOutcome::Succeeded);
        return sad.ok() ? std::string(sad->value.view()) : std::string();
    }

    std::string sqlite(const std::string& sql) {
        std::string out;
        run("sqlite3 " + shellQuote(m_db) + " " + shellQuote(sql), &out);
        return trimmed(out);
    }

    std::string m_dir;
    std::string m_db;
    std::unique_ptr<api::Store> m_store;
    system_clock::time_point m_now;
    std::unique_ptr<api::Activation> m_act;
};

TEST_F(Activation, EnrolmentGivesAnOtpauthUriWhoseSecretMakesOathtoolCodesThatAuthorize) {
    auto e = m_act->enrol(person("001234567890"));
    ASSERT_TRUE(e.ok()) << e.error().code << ": " << e.error().detail;
    EXPECT_TRUE(std::regex_match(e->citizen.id, std::regex("citizen-[0-9a-f]{32}")));
    EXPECT_EQ(e->citizen.keyLabel, e->citizen.id);
    EXPECT_TRUE(
        std::regex_match(std::string(e->activation.initialPin.view()), std::regex("[0-9]{8}")));

    // The label is the UTF-8 name, percent-encoded; the rest as authenticator apps expect it.
    const std::string uri(e->activation.otpauthUri.view());
    std::smatch m;
    ASSERT_TRUE(std::regex_match(
        uri, m,
        std::regex("otpauth://totp/kyso:Nguy%E1%BB%85n%20V%C4%83n%20An\\?secret=([A-Z2-7]{32})"
                   "&issuer=kyso&algorithm=SHA1&digits=6&period=30")))
        << uri;
    const std::string secret = m[1];
    EXPECT_EQ(secret, e->activation.totpSecretBase32.view());

    // Stored as given, UTF-8 intact.
    auto stored = m_store->citizen(e->citizen.id);
    ASSERT_TRUE(stored.ok());
    EXPECT_EQ(stored->fullName, "Nguyễn Văn An");
    EXPECT_EQ(stored->province, "Hà Nội");
    EXPECT_EQ(stored->identityNumber, "001234567890");
    EXPECT_EQ(stored->portal, "portal-hn");
    EXPECT_FALSE(stored->revoked);
    EXPECT_EQ(stored->created, "2025-03-01T08:00:10Z");
    ASSERT_TRUE(m_store->setCitizenCertificate(e->citizen.id, std::string("\x30\x00\x82", 3)).ok());
    EXPECT_EQ(m_store->citizen(e->citizen.id)->certificateDer, std::string("\x30\x00\x82", 3));

    api::AttemptReport r;
    ASSERT_TRUE(m_act->changePin(e->citizen.id, e->activation.initialPin.view(), kPin, r).ok());
    const std::string h = sha256("document 1");
    auto sad = m_act->authorize(request(e->citizen.id, kPin, code(secret), {h}), r);
    ASSERT_TRUE(sad.ok()) << sad.error().code << ": " << sad.error().detail;
    EXPECT_EQ(r.outcome, api::AttemptOutcome::Succeeded);
    EXPECT_EQ(api::attemptCode(r), "ok");
    EXPECT_TRUE(std::regex_match(std::string(sad->value.view()), std::regex("[A-Za-z0-9_-]{43}")));
    EXPECT_EQ(sad->expiresAt, m_now + seconds(300));
    auto used = m_act->consume(e->citizen.id, sad->value.view(), h);
    ASSERT_TRUE(used.ok()) << used.error().code;
    EXPECT_EQ(used->hashAlgorithm, kSha256Oid);
    EXPECT_EQ(used->remaining, 0);
}

TEST_F(Activation, TheInitialPinMustBeChangedFirstUnderThePinRules) {
    auto e = m_act->enrol(person("001234567890"));
    ASSERT_TRUE(e.ok());
    const std::string id = e->citizen.id;
    const std::string secret(e->activation.totpSecretBase32.view());
    const std::string initial(e->activation.initialPin.view());
    const std::string otp = code(secret);
    api::AttemptReport r;

    auto sad = m_act->authorize(request(id, initial, otp, {sha256("d")}), r);
    ASSERT_FALSE(sad.ok());
    EXPECT_EQ(sad.error().code, "csc.pin_change_required");
    EXPECT_EQ(r.outcome, api::AttemptOutcome::NotChecked);
    EXPECT_TRUE(m_act->state(id)->mustChangePin);

    // The rules on the new PIN are checked before the old one, and cost no attempt.
    for (const char* bad :
         {"12345", "12345678901234567", "12a456", "", "777777", "123456", "876543", "890123"}) {
        auto st = m_act->changePin(id, initial, bad, r);
        ASSERT_FALSE(st.ok()) << bad;
        EXPECT_EQ(st.error().code, "csc.invalid_new_pin") << bad;
    }
    auto same = m_act->changePin(id, initial, initial, r);
    EXPECT_EQ(same.error().code, "csc.invalid_new_pin");
    EXPECT_EQ(m_act->state(id)->failedAttempts, 0);

    // A wrong current PIN is a failed attempt.
    auto wrong = m_act->changePin(id, "99999999", kPin, r);
    ASSERT_FALSE(wrong.ok());
    EXPECT_EQ(wrong.error().code, "csc.invalid_pin");
    EXPECT_EQ(r.outcome, api::AttemptOutcome::Failed);
    EXPECT_TRUE(r.wrongPin);
    EXPECT_EQ(r.failedAttempts, 1);
    EXPECT_EQ(m_act->state(id)->failedAttempts, 1);

    ASSERT_TRUE(m_act->changePin(id, initial, kPin, r).ok());
    EXPECT_EQ(r.outcome, api::AttemptOutcome::Succeeded);
    auto st = m_act->state(id);
    EXPECT_FALSE(st->mustChangePin);
    EXPECT_EQ(st->failedAttempts, 0);

    // The initial PIN is gone; the refusal above did not spend the code.
    sad = m_act->authorize(request(id, initial, otp, {sha256("d")}), r);
    EXPECT_EQ(sad.error().code, "csc.invalid_grant");
    EXPECT_TRUE(r.wrongPin);
    EXPECT_FALSE(r.wrongOtp);
    sad = m_act->authorize(request(id, kPin, otp, {sha256("d")}), r);
    EXPECT_TRUE(sad.ok()) << sad.error().code;
}

TEST_F(Activation, ASadSignsExactlyItsHashesEachOnceThenIsUsedUp) {
    const auto c = ready();
    const std::string h1 = sha256("one"), h2 = sha256("two"), h3 = sha256("three");
    const std::string sad = authorizeOk(c, {h1, h2, h3});

    auto u = m_act->consume(c.id, sad, h2);
    ASSERT_TRUE(u.ok()) << u.error().code;
    EXPECT_EQ(u->remaining, 2);
    // Signed already: not again.
    EXPECT_EQ(m_act->consume(c.id, sad, h2).error().code, "csc.hash_not_authorized");
    // Never authorized, though of the right length and algorithm.
    EXPECT_EQ(m_act->consume(c.id, sad, sha256("four")).error().code, "csc.hash_not_authorized");
    EXPECT_EQ(m_act->consume(c.id, sad, h1.substr(0, 31)).error().code, "csc.hash_not_authorized");
    EXPECT_EQ(m_act->consume(c.id, sad, h1)->remaining, 1);
    EXPECT_EQ(m_act->consume(c.id, sad, h3)->remaining, 0);
    EXPECT_EQ(m_act->consume(c.id, sad, h1).error().code, "csc.sad_used_up");
    EXPECT_EQ(m_act->consume(c.id, sad, sha256("four")).error().code, "csc.sad_used_up");
}

TEST_F(Activation, AnotherCredentialsSadReadsLikeAnUnknownOne) {
    const auto a = ready("001234567890");
    const auto b = ready("001234567891");
    const std::string h = sha256("contract");
    const std::string sadA = authorizeOk(a, {h});

    auto other = m_act->consume(b.id, sadA, h);
    ASSERT_FALSE(other.ok());
    EXPECT_EQ(other.error().code, "csc.sad_invalid");
    std::vector<std::uint8_t> random(32, 0x5a);
    std::string unknown = Botan::base64_encode(random).substr(0, 43);
    auto none = m_act->consume(b.id, unknown, h);
    EXPECT_EQ(none.error().code, "csc.sad_invalid");
    EXPECT_EQ(none.error().detail, other.error().detail);
    EXPECT_EQ(m_act->consume(a.id, "short", h).error().code, "csc.sad_invalid");
    // The refusal did not spend A's hash.
    EXPECT_TRUE(m_act->consume(a.id, sadA, h).ok());
}

TEST_F(Activation, ASadExpiresAfterItsLifetime) {
    const auto c = ready();
    const std::string h1 = sha256("a"), h2 = sha256("b");
    const std::string sad = authorizeOk(c, {h1, h2});
    m_now += seconds(299);
    EXPECT_TRUE(m_act->consume(c.id, sad, h1).ok());
    m_now += seconds(61);  // six minutes after the authorization
    auto late = m_act->consume(c.id, sad, h2);
    ASSERT_FALSE(late.ok());
    EXPECT_EQ(late.error().code, "csc.sad_expired");

    // The lifetime is a parameter.
    api::Activation::Options options;
    options.sadLifetime = seconds(60);
    api::Activation shortLived(
        *m_store, [this] { return m_now; }, options);
    m_now += seconds(30);
    api::AttemptReport r;
    auto s2 = shortLived.authorize(request(c.id, kPin, code(c.base32), {h1}), r);
    ASSERT_TRUE(s2.ok()) << s2.error().code;
    EXPECT_EQ(s2->expiresAt, m_now + seconds(60));
    m_now += seconds(60);
    EXPECT_EQ(shortLived.consume(c.id, s2->value.view(), h1).error().code, "csc.sad_expired");
}

TEST_F(Activation, AOneTimeCodeIsAcceptedOnceAndOnlyWithinOneStepEachWay) {
    const auto c = ready();
    const std::string h = sha256("x");
    api::AttemptReport r;

    // Two steps away either way: wrong.
    for (int steps : {-2, 2}) {
        auto s = m_act->authorize(request(c.id, kPin, code(c.base32, steps), {h}), r);
        ASSERT_FALSE(s.ok());
        EXPECT_EQ(s.error().code, "csc.invalid_grant") << steps;
        EXPECT_TRUE(r.wrongOtp) << steps;
        EXPECT_FALSE(r.wrongPin);
        EXPECT_EQ(api::attemptCode(r), "wrong_otp");
    }
    EXPECT_EQ(m_act->state(c.id)->failedAttempts, 2);

    // One step back, now and one step ahead: each accepted once, in order.
    const std::string previous = code(c.base32, -1);
    const std::string current = code(c.base32);
    const std::string next = code(c.base32, 1);
    ASSERT_TRUE(m_act->authorize(request(c.id, kPin, previous, {h}), r).ok());
    EXPECT_EQ(m_act->state(c.id)->failedAttempts, 0);
    ASSERT_TRUE(m_act->authorize(request(c.id, kPin, current, {h}), r).ok());

    // The same code again: replayed, and counted.
    auto replay = m_act->authorize(request(c.id, kPin, current, {h}), r);
    ASSERT_FALSE(replay.ok());
    EXPECT_EQ(replay.error().code, "csc.invalid_grant");
    EXPECT_TRUE(r.replayedOtp);
    EXPECT_FALSE(r.wrongOtp);
    EXPECT_EQ(api::attemptCode(r), "replayed_otp");
    EXPECT_EQ(r.failedAttempts, 1);

    ASSERT_TRUE(m_act->authorize(request(c.id, kPin, next, {h}), r).ok());
    // An older code after a newer one is refused too, though still within the window.
    EXPECT_EQ(m_act->authorize(request(c.id, kPin, current, {h}), r).error().code,
              "csc.invalid_grant");
    EXPECT_TRUE(r.replayedOtp);
    // Malformed codes are wrong codes.
    for (const char* bad : {"12345", "1234567", "abcdef"}) {
        EXPECT_EQ(m_act->authorize(request(c.id, kPin, bad, {h}), r).error().code,
                  "csc.invalid_grant");
        EXPECT_TRUE(r.wrongOtp) << bad;
    }
}

TEST_F(Activation, AWrongPinAndAWrongCodeLookTheSameToTheClient) {
    const auto c = ready();
    const std::string h = sha256("x");
    const std::string otp = code(c.base32);
    api::AttemptReport pinReport, otpReport, bothReport;
    auto wrongPin = m_act->authorize(request(c.id, "11112222", otp, {h}), pinReport);
    auto wrongOtp = m_act->authorize(
        request(c.id, kPin, otp == "000000" ? "000001" : "000000", {h}), otpReport);
    auto both = m_act->authorize(request(c.id, "11112222", "000000", {h}), bothReport);
    ASSERT_FALSE(wrongPin.ok());
    ASSERT_FALSE(wrongOtp.ok());
    EXPECT_EQ(wrongPin.error().code, "csc.invalid_grant");
    EXPECT_EQ(wrongPin.error().code, wrongOtp.error().code);
    EXPECT_EQ(wrongPin.error().detail, wrongOtp.error().detail);
    EXPECT_EQ(wrongPin.error().detail, "PIN or one-time code incorrect");
    EXPECT_EQ(both.error().detail, wrongPin.error().detail);
    // Only the audit report tells them apart.
    EXPECT_EQ(api::attemptCode(pinReport), "wrong_pin");
    EXPECT_EQ(api::attemptCode(otpReport), "wrong_otp");
    EXPECT_EQ(bothReport.outcome, api::AttemptOutcome::Failed);
    EXPECT_TRUE(bothReport.wrongPin);
    EXPECT_EQ(bothReport.failedAttempts, 3);
    // A wrong PIN did not spend the (right) code.
    EXPECT_TRUE(m_act->authorize(request(c.id, kPin, otp, {h}), pinReport).ok());
}

TEST_F(Activation, FiveFailuresLockUntilUnlockedThroughThePortal) {
    const auto c = ready();
    const std::string h = sha256("x");
    const std::string otp = code(c.base32);
    api::AttemptReport r;
    for (int i = 1; i <= 4; ++i) {
        auto s = m_act->authorize(request(c.id, "11112222", otp, {h}), r);
        EXPECT_EQ(s.error().code, "csc.invalid_grant") << i;
        EXPECT_EQ(r.failedAttempts, i);
        EXPECT_FALSE(r.lockedNow);
    }
    auto fifth = m_act->authorize(request(c.id, "11112222", otp, {h}), r);
    ASSERT_FALSE(fifth.ok());
    EXPECT_EQ(fifth.error().code, "csc.locked");
    EXPECT_EQ(r.outcome, api::AttemptOutcome::Failed);
    EXPECT_TRUE(r.lockedNow);
    EXPECT_EQ(r.failedAttempts, 5);

    // Locked: even the right PIN and code are refused, and nothing is checked or counted.
    auto right = m_act->authorize(request(c.id, kPin, otp, {h}), r);
    ASSERT_FALSE(right.ok());
    EXPECT_EQ(right.error().code, "csc.locked");
    EXPECT_EQ(r.outcome, api::AttemptOutcome::RefusedLocked);
    EXPECT_EQ(api::attemptCode(r), "locked");
    EXPECT_EQ(m_act->changePin(c.id, kPin, "55501234", r).error().code, "csc.locked");
    auto st = m_act->state(c.id);
    EXPECT_TRUE(st->locked);
    EXPECT_EQ(st->failedAttempts, 5);

    ASSERT_TRUE(m_act->unlock(c.id).ok());
    st = m_act->state(c.id);
    EXPECT_FALSE(st->locked);
    EXPECT_EQ(st->failedAttempts, 0);
    EXPECT_TRUE(m_act->authorize(request(c.id, kPin, otp, {h}), r).ok());
    EXPECT_EQ(m_act->unlock("citizen-nobody").error().code, "citizen.unknown");
}

TEST_F(Activation, ASuccessResetsTheFailureCountAndPinChangesCountToo) {
    const auto c = ready();
    const std::string h = sha256("x");
    api::AttemptReport r;
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(m_act->authorize(request(c.id, "11112222", code(c.base32), {h}), r).error().code,
                  "csc.invalid_grant");
    }
    EXPECT_EQ(m_act->changePin(c.id, "11112222", "55501234", r).error().code, "csc.invalid_pin");
    EXPECT_EQ(r.failedAttempts, 4);
    ASSERT_TRUE(m_act->authorize(request(c.id, kPin, code(c.base32), {h}), r).ok());
    EXPECT_EQ(m_act->state(c.id)->failedAttempts, 0);
    for (int i = 0; i < 4; ++i) {
        EXPECT_EQ(m_act->changePin(c.id, "11112222", "55501234", r).error().code,
                  "csc.invalid_pin");
    }
    EXPECT_FALSE(m_act->state(c.id)->locked);
    EXPECT_EQ(m_act->changePin(c.id, "11112222", "55501234", r).error().code, "csc.locked");
    EXPECT_TRUE(r.lockedNow);
}

TEST_F(Activation, MalformedRequestsAreRefusedBeforeTheSecretsAndCostNothing) {
    const auto c = ready();
    const std::string otp = code(c.base32);
    const std::string h = sha256("x");
    api::AttemptReport r;
    std::vector<api::AuthorizeRequest> bad;
    bad.push_back(request(c.id, kPin, otp, {}));
    bad.push_back(request(c.id, kPin, otp, {h}));
    bad.back().numSignatures = 0;
    bad.push_back(request(c.id, kPin, otp, {h, sha256("y")}));
    bad.back().numSignatures = 1;
    bad.push_back(request(c.id, kPin, otp, {h, h}));  // a hash listed twice
    bad.push_back(request(c.id, kPin, otp, {h}));
    bad.back().hashAlgorithm = "2.16.840.1.101.3.4.2.2";  // SHA-384 wants 48 bytes
    bad.push_back(request(c.id, kPin, otp, {h}));
    bad.back().hashAlgorithm = "1.3.14.3.2.26";  // SHA-1
    bad.push_back(request(c.id, kPin, otp, {h.substr(1)}));
    bad.push_back(request(c.id, "", otp, {h}));
    bad.push_back(request(c.id, kPin, "", {h}));
    for (std::size_t i = 0; i < bad.size(); ++i) {
        auto s = m_act->authorize(bad[i], r);
        ASSERT_FALSE(s.ok()) << i;
        EXPECT_EQ(s.error().code, "csc.invalid_request") << i;
        EXPECT_EQ(r.outcome, api::AttemptOutcome::NotChecked) << i;
    }
    EXPECT_EQ(m_act->state(c.id)->failedAttempts, 0);
    std::vector<std::string> tooMany;
    for (int i = 0; i < 101; ++i) {
        tooMany.push_back(sha256(std::to_string(i)));
    }
    EXPECT_EQ(m_act->authorize(request(c.id, kPin, otp, tooMany), r).error().code,
              "csc.invalid_request");

    // The code is still good, and SHA-384 and SHA-512, named or by OID, are accepted.
    auto rq = request(c.id, kPin, otp, {digest("SHA-512", "x"), digest("SHA-512", "y")});
    rq.hashAlgorithm = "2.16.840.1.101.3.4.2.3";
    auto sad = m_act->authorize(rq, r);
    ASSERT_TRUE(sad.ok()) << sad.error().code << ": " << sad.error().detail;
    EXPECT_EQ(m_act->consume(c.id, sad->value.view(), digest("SHA-512", "y"))->hashAlgorithm,
              "2.16.840.1.101.3.4.2.3");
    // rq keeps string_views of the PIN and code: the code must outlive it (not a temporary).
    const std::string next = code(c.base32, 1);
    rq = request(c.id, kPin, next, {digest("SHA-384", "x")});
    rq.hashAlgorithm = "SHA-384";
    sad = m_act->authorize(rq, r);
    ASSERT_TRUE(sad.ok()) << sad.error().code;
    EXPECT_EQ(m_act->consume(c.id, sad->value.view(), digest("SHA-384", "x"))->hashAlgorithm,
              "2.16.840.1.101.3.4.2.2");
    EXPECT_EQ(m_act->authorize(request("citizen-nobody", kPin, otp, {h}), r).error().code,
              "citizen.unknown");
}

TEST_F(Activation, AnIdentityNumberHasOneLiveCredentialUntilItIsRevoked) {
    auto first = m_act->enrol(person("079123456789"));
    ASSERT_TRUE(first.ok());
    auto again = m_act->enrol(person("079123456789", "Trần Thị Bình"));
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().code, "citizen.duplicate");

    // The database itself refuses a second live row, whoever writes it.
    const std::string direct = sqlite(
        "INSERT INTO citizens (id, identity_number, full_name, province, contact, portal,"
        " key_label, status, created) VALUES ('citizen-x', '079123456789', 'x', 'x', 'x', 'x',"
        " 'x', 'active', 'x');");
    EXPECT_NE(direct.find("UNIQUE constraint failed: citizens.identity_number"), std::string::npos)
        << direct;

    // A SAD of the first credential dies with it.
    api::AttemptReport r;
    const std::string firstId = first->citizen.id;
    ASSERT_TRUE(m_act->changePin(firstId, first->activation.initialPin.view(), kPin, r).ok());
    const std::string h = sha256("x");
    auto sad = m_act->authorize(
        request(firstId, kPin, code(std::string(first->activation.totpSecretBase32.view())), {h}),
        r);
    ASSERT_TRUE(sad.ok());

    ASSERT_TRUE(m_store->revokeCitizen(firstId).ok());
    EXPECT_EQ(m_store->revokeCitizen(firstId).error().code, "citizen.already_revoked");
    EXPECT_EQ(m_store->revokeCitizen("citizen-nobody").error().code, "citizen.unknown");
    EXPECT_EQ(m_act->consume(firstId, sad->value.view(), h).error().code, "csc.sad_invalid");
    EXPECT_EQ(m_act->authorize(request(firstId, kPin, "123456", {h}), r).error().code,
              "citizen.revoked");
    EXPECT_TRUE(m_act->state(firstId)->revoked);

    auto second = m_act->enrol(person("079123456789", "Trần Thị Bình"));
    ASSERT_TRUE(second.ok()) << second.error().code;
    EXPECT_EQ(m_act->enrol(person("079123456789")).error().code, "citizen.duplicate");
    EXPECT_TRUE(m_act->enrol(person("079123456780")).ok());

    auto listed = m_store->citizensOfPortal("portal-hn");
    ASSERT_TRUE(listed.ok());
    ASSERT_EQ(listed->size(), 3u);
    EXPECT_EQ((*listed)[0].id, firstId);
    EXPECT_TRUE((*listed)[0].revoked);
    EXPECT_EQ((*listed)[1].id, second->citizen.id);
    EXPECT_FALSE((*listed)[1].revoked);
    EXPECT_EQ((*listed)[1].fullName, "Trần Thị Bình");
    EXPECT_TRUE(m_store->citizensOfPortal("another-portal")->empty());

    // Fields are checked before anything is stored.
    for (auto bad : {person("12345"), person("0791234567a9"), person("079123456781", ""),
                     person("079123456781", "bad\x01name"), person("079123456781", "\xc3\x28")}) {
        EXPECT_EQ(m_act->enrol(bad).error().code, "citizen.invalid");
    }
}

TEST_F(Activation, NeitherTheSadNorThePinIsStoredInTheDatabaseFile) {
    auto e = m_act->enrol(person("001234567890"));
    ASSERT_TRUE(e.ok());
    const std::string initial(e->activation.initialPin.view());
    api::AttemptReport r;
    ASSERT_TRUE(m_act->changePin(e->citizen.id, initial, kPin, r).ok());
    const std::string h = sha256("x");
    auto sad = m_act->authorize(
        request(e->citizen.id, kPin, code(std::string(e->activation.totpSecretBase32.view())), {h}),
        r);
    ASSERT_TRUE(sad.ok());
    const std::string sadValue(sad->value.view());

    // Everything SQLite wrote: the file and its write-ahead log.
    const std::string bytes = readFile(m_db) + readFile(m_db + "-wal");
    ASSERT_FALSE(bytes.empty());
    // The checks can see stored values: the identity number and the SAD's SHA-256 are there.
    EXPECT_NE(bytes.find("001234567890"), std::string::npos);
    EXPECT_NE(bytes.find(Botan::hex_encode(
                  reinterpret_cast<const std::uint8_t*>(sha256(sadValue).data()), 32, false)),
              std::string::npos);
    // The secrets are not, in any form we could have written them.
    EXPECT_EQ(bytes.find(sadValue), std::string::npos);
    std::string raw = sadValue;
    std::replace(raw.begin(), raw.end(), '-', '+');
    std::replace(raw.begin(), raw.end(), '_', '/');
    const auto sadBytes = Botan::base64_decode(raw + "=");
    EXPECT_EQ(bytes.find(std::string(sadBytes.begin(), sadBytes.end())), std::string::npos);
    EXPECT_EQ(bytes.find(Botan::hex_encode(sadBytes, false)), std::string::npos);
    EXPECT_EQ(bytes.find(Botan::hex_encode(reinterpret_cast<const std::uint8_t*>(sadValue.data()),
                                           sadValue.size(), false)),
              std::string::npos);
    EXPECT_EQ(bytes.find(kPin), std::string::npos);
    EXPECT_EQ(bytes.find(initial), std::string::npos);
    EXPECT_NE(bytes.find("$argon2id$"), std::string::npos);
}

TEST_F(Activation, AFailureInTheMiddleOfAChangeLeavesNothingOfIt) {
    const auto c = ready();
    api::AttemptReport r;
    for (int i = 0; i < 2; ++i) {
        EXPECT_FALSE(
            m_act->authorize(request(c.id, "11112222", code(c.base32), {sha256("x")}), r).ok());
    }
    const auto before = m_store->activation(c.id).value().lastTotpStep;
    ASSERT_EQ(m_act->state(c.id)->failedAttempts, 2);

    // The SAD row and the spent step are written before the hash rows; the second hash row
    // violates the primary key, and the whole authorization rolls back.
    api::SadRecord rec;
    rec.sadHash = sha256("sad");
    rec.credentialId = c.id;
    rec.hashAlgorithm = kSha256Oid;
    rec.hashes = {sha256("x"), sha256("x")};
    rec.expires = unixOf(m_now) + 300;
    const std::int64_t step = unixOf(m_now) / 30;
    auto st = m_store->acceptAuthorization(c.id, step, m_store->activation(c.id)->pinHash, rec, 0);
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.error().code, "csc.invalid_request");
    auto after = m_store->activation(c.id);
    EXPECT_EQ(after->lastTotpStep, before);
    EXPECT_EQ(after->failedAttempts, 2);
    EXPECT_EQ(m_store->useSad(c.id, rec.sadHash, sha256("x"), unixOf(m_now)).error().code,
              "csc.sad_invalid");
    EXPECT_EQ(sqlite("SELECT count(*) FROM csc_sads; SELECT count(*) FROM csc_sad_hashes;"),
              "0\n0");
    // So this step's code is still good.
    EXPECT_TRUE(m_act->authorize(request(c.id, kPin, code(c.base32), {sha256("x")}), r).ok());

    // Enrolment: the citizen row goes in first; a failure inserting its activation state (made
    // here by a trigger, through another process) must take the citizen row with it.
    ASSERT_EQ(sqlite("CREATE TRIGGER fail_activation BEFORE INSERT ON citizen_activation"
                     " BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"),
              "");
    auto e = m_act->enrol(person("079000000001"));
    ASSERT_FALSE(e.ok());
    EXPECT_EQ(e.error().code, "db.unavailable");
    EXPECT_NE(e.error().detail.find("injected failure"), std::string::npos) << e.error().detail;
    EXPECT_EQ(sqlite("SELECT count(*) FROM citizens WHERE identity_number = '079000000001'"), "0");
    ASSERT_EQ(sqlite("DROP TRIGGER fail_activation;"), "");
    // Nothing half-made holds the identity number.
    EXPECT_TRUE(m_act->enrol(person("079000000001")).ok());

    // signHash: the hash is marked used before the count goes down; a failure there keeps both.
    const std::string h = sha256("y");
    m_now += seconds(30);
    const std::string sad = authorizeOk(c, {h});
    ASSERT_EQ(sqlite("CREATE TRIGGER fail_count BEFORE UPDATE OF remaining ON csc_sads"
                     " BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"),
              "");
    EXPECT_EQ(m_act->consume(c.id, sad, h).error().code, "db.unavailable");
    ASSERT_EQ(sqlite("DROP TRIGGER fail_count;"), "");
    auto u = m_act->consume(c.id, sad, h);
    ASSERT_TRUE(u.ok()) << u.error().code;
    EXPECT_EQ(u->remaining, 0);
}

TEST_F(Activation, ReissuingReplacesThePinAndSecretAndDropsOutstandingSads) {
    const auto c = ready();
    const std::string h = sha256("x");
    const std::string sad = authorizeOk(c, {h});
    api::AttemptReport r;
    for (int i = 0; i < 5; ++i) {
        EXPECT_FALSE(m_act->authorize(request(c.id, "11112222", "000000", {h}), r).ok());
    }
    ASSERT_TRUE(m_act->state(c.id)->locked);

    auto fresh = m_act->createActivation(c.id, "an.nguyen@example.vn");
    ASSERT_TRUE(fresh.ok()) << fresh.error().code;
    EXPECT_EQ(std::string(fresh->otpauthUri.view())
                  .rfind("otpauth://totp/kyso:an.nguyen%40example.vn?secret=", 0),
              0u);
    const std::string secret(fresh->totpSecretBase32.view());
    EXPECT_NE(secret, c.base32);
    auto st = m_act->state(c.id);
    EXPECT_FALSE(st->locked);
    EXPECT_TRUE(st->mustChangePin);
    EXPECT_EQ(m_act->consume(c.id, sad, h).error().code, "csc.sad_invalid");

    ASSERT_TRUE(m_act->changePin(c.id, fresh->initialPin.view(), "55501234", r).ok());
    m_now += seconds(30);
    // The old secret's codes are wrong now; the new one's work.
    EXPECT_EQ(m_act->authorize(request(c.id, "55501234", code(c.base32), {h}), r).error().code,
              "csc.invalid_grant");
    EXPECT_TRUE(m_act->authorize(request(c.id, "55501234", code(secret), {h}), r).ok());
    EXPECT_EQ(m_act->createActivation("citizen-nobody", "x").error().code, "citizen.unknown");
}

TEST_F(Activation, ConcurrentRequestsSpendACodeAndAHashOnce) {
    const auto c = ready();
    const std::string h = sha256("x");
    const std::string otp = code(c.base32);
    constexpr int kThreads = 6;
    std::atomic<int> granted{0};
    std::vector<std::string> sads(kThreads);
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
        threads.emplace_back([&, i] {
            api::AttemptReport r;
            auto s = m_act->authorize(request(c.id, kPin, otp, {h}), r);
            if (s.ok()) {
                ++granted;
                sads[i] = std::string(s->value.view());
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    EXPECT_EQ(granted.load(), 1);
    ASSERT_TRUE(m_act->unlock(c.id).ok());

    std::string sad;
    for (const auto& s : sads) {
        sad += s;
    }
    std::atomic<int> signedCount{0};
    threads.clear();
    for (int i = 0; i < kThreads; ++i) {
        threads.emplace_back([&] {
            if (m_act->consume(c.id, sad, h).ok()) {
                ++signedCount;
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    EXPECT_EQ(signedCount.load(), 1);
}

TEST(ActivationSchema, AnOlderDatabaseGainsTheCitizenTablesAndKeepsItsRows) {
    // A database as the service wrote it before issue 7: API keys, no citizens.
    const std::string dir = tempDir("activation-migrate");
    const std::string db = dir + "/kyso.db";
    std::string out;
    ASSERT_EQ(run("sqlite3 " + shellQuote(db) +
                      " \"CREATE TABLE api_keys (id TEXT PRIMARY KEY, name TEXT NOT NULL,"
                      " role TEXT NOT NULL, hash TEXT NOT NULL, created TEXT NOT NULL,"
                      " revoked INTEGER NOT NULL DEFAULT 0); INSERT INTO api_keys VALUES"
                      " ('00112233445566aa', 'old-admin', 'admin', 'x', 't', 0);\"",
                  &out),
              0)
        << out;
    auto store = std::move(api::Store::open(db).value());
    ASSERT_EQ(store->listApiKeys().size(), 1u);
    EXPECT_EQ(store->listApiKeys()[0].name, "old-admin");
    api::Activation act(*store);
    auto e = act.enrol(person("001234567890"));
    ASSERT_TRUE(e.ok()) << e.error().code << ": " << e.error().detail;
    store.reset();
    // Opening again changes nothing: the citizen is still there, still unique.
    store = std::move(api::Store::open(db).value());
    EXPECT_TRUE(store->citizen(e->citizen.id).ok());
    api::Activation again(*store);
    EXPECT_EQ(again.enrol(person("001234567890")).error().code, "citizen.duplicate");
}

// --- QR codes --------------------------------------------------------------------------------

std::string zbarDecode(const std::string& dir, const std::string& png) {
    const std::string file = dir + "/qr.png";
    writeFile(file, png);
    std::string out;
    const int rc = run("zbarimg --raw -q --nodbus " + shellQuote(file), &out);
    EXPECT_EQ(rc, 0) << out;
    return trimmed(out);
}

TEST(Qr, APngOfTheUriDecodesToItWithAQuietZone) {
    const std::string dir = tempDir("qr");
    const std::string uri =
        "otpauth://totp/kyso:Nguy%E1%BB%85n%20V%C4%83n%20An?secret="
        "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=kyso&algorithm=SHA1&digits=6&period=30";
    auto png = api::qrPng(uri, 4);
    ASSERT_TRUE(png.ok()) << png.error().code;
    EXPECT_EQ(zbarDecode(dir, std::string(png->view())), uri);

    auto image = signer::decodePng(png->view());
    ASSERT_TRUE(image.ok());
    ASSERT_EQ(image->width, image->height);
    ASSERT_EQ(image->width % 4, 0);
    const int modules = image->width / 4 - 8;
    EXPECT_GE(modules, 21);
    EXPECT_EQ((modules - 21) % 4, 0);  // a QR symbol is 17 + 4 * version modules wide
    // Four white modules all round; the finder pattern's dark corner right inside them.
    const int side = image->width;
    auto white = [&](int x, int y) {
        return image->rgb.substr((static_cast<std::size_t>(y) * side + x) * 3, 3) ==
               std::string(3, '\xff');
    };
    for (int i = 0; i < side; ++i) {
        for (int q = 0; q < 16; ++q) {
            ASSERT_TRUE(white(i, q) && white(q, i) && white(i, side - 1 - q) &&
                        white(side - 1 - q, i))
                << i << "," << q;
        }
    }
    EXPECT_FALSE(white(16, 16));
    EXPECT_EQ(image->rgb.substr((16 * side + 16) * 3, 3), std::string(3, '\0'));

    // The scale multiplies the size.
    auto bigger = api::qrPng(uri, 8);
    ASSERT_TRUE(bigger.ok());
    EXPECT_EQ(signer::decodePng(bigger->view())->width, 2 * side);
    EXPECT_EQ(zbarDecode(dir, std::string(bigger->view())), uri);

    EXPECT_EQ(api::qrPng("", 4).error().code, "qr.invalid");
    EXPECT_EQ(api::qrPng(uri, 0).error().code, "qr.invalid");
    EXPECT_EQ(api::qrPng(uri, api::kMaxQrScale + 1).error().code, "qr.invalid");
    EXPECT_EQ(api::qrPng(std::string(3000, 'a'), 1).error().code, "qr.invalid");
    EXPECT_EQ(signer::encodePng(2, 2, "short", 0).error().code, "image.encode");
}

TEST(Qr, AnEnrolmentsQrCodeCarriesItsOtpauthUri) {
    const std::string dir = tempDir("qr-enrol");
    auto store = std::move(api::Store::open(dir + "/kyso.db").value());
    api::Activation act(*store);
    auto e = act.enrol(person("001234567890"));
    ASSERT_TRUE(e.ok()) << e.error().code;
    EXPECT_EQ(zbarDecode(dir, std::string(e->activation.qrPng.view())),
              e->activation.otpauthUri.view());
}

}  // namespace
}  // namespace kyso::test
