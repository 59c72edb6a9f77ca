// Sole control of a citizen's signing key (issue 7; Cloud Signature Consortium API v2 at SCAL2):
// enrolment secrets, PIN changes, credentials/authorize (PIN + one-time code + the hashes to be
// signed -> a SAD) and the spending of a SAD by signHash. Pure logic over the Store and a clock;
// the HTTP endpoints, key generation and certificate issuance sit on top of it, and the caller
// writes the audit log from the AttemptReport each call fills in.
//
// Decisions (see also docs/ARCHITECTURE.md when the endpoints land):
// - A wrong PIN and a wrong one-time code give the same public error, "csc.invalid_grant"
//   ("PIN or one-time code incorrect"), and both factors are always checked (the Argon2id cost
//   is paid either way), so neither the answer nor its timing tells an attacker who holds one
//   factor whether a guess of the other was right. The AttemptReport says which one failed, for
//   the audit log only.
// - A request that is malformed (no hashes, numSignatures not their number, a hash of the wrong
//   length, an unknown algorithm, no PIN or no code) is refused before any secret is looked at:
//   it costs the citizen no attempt and does not spend the code.
// - A hash listed twice in one authorization is refused (csc.invalid_request): every authorized
//   hash is signed at most once, so numSignatures is the number of distinct hashes.
// - A one-time code is accepted once: the time step it matched must be above the last accepted
//   one (which also refuses an older code after a newer one). A replayed code counts as a failed
//   attempt, like a wrong one: replaying an observed code is the attack it stops.
// - The 5th consecutive failure (wrong PIN in changePin or authorize, wrong or replayed code)
//   locks the credential until unlock() (portal or admin); that failure already answers
//   "csc.locked". A success resets the count.
// - TOTP is RFC 6238 with HMAC-SHA-1, 6 digits, 30-second steps (what authenticator apps and
//   oathtool default to); codes of the steps before and after the current one are accepted.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "kyso/api/store.h"
#include "kyso/hsm/result.h"
#include "kyso/hsm/secret.h"

namespace kyso::api {

// Who is being enrolled, as the portal states it.
struct CitizenEnrolment {
    std::string identityNumber;  // 9 (CMND) or 12 (CCCD) ASCII digits
    std::string fullName;        // UTF-8, 1 to 200 bytes, no control characters
    std::string province;        // UTF-8, 1 to 100 bytes
    std::string contact;         // e-mail or phone, 1 to 200 bytes
    std::string portal;          // the enrolling principal
};

// The secrets handed to the citizen once, at enrolment or re-issue. Nothing here is stored:
// the database keeps the PIN's Argon2id hash and the raw TOTP key only.
struct NewActivation {
    hsm::Secret initialPin;        // 8 random digits; must be changed before the first authorize
    hsm::Secret totpSecretBase32;  // the 20-byte key, RFC 4648 base32 (32 characters)
    // otpauth://totp/kyso:<url-encoded label>?secret=...&issuer=kyso&algorithm=SHA1&digits=6
    // &period=30
    hsm::Secret otpauthUri;
    hsm::Secret qrPng;  // the URI as a QR code, PNG bytes
};

struct Enrolment {
    Citizen citizen;  // as stored; keyLabel is the id: generate the key pair under that label
    NewActivation activation;
};

// Signature Activation Data: 256 random bits, base64url (43 characters). A bearer secret for its
// lifetime: only its SHA-256 is stored.
struct Sad {
    hsm::Secret value;
    std::chrono::system_clock::time_point expiresAt;
};

// What an attempt to use the PIN or the code came to, for the audit log (never shown to the
// client, whose error says only "PIN or one-time code incorrect").
enum class AttemptOutcome {
    NotChecked,     // refused before the PIN and the code were looked at (nothing counted)
    Succeeded,      // both right; the failure count is reset
    Failed,         // counted as a failed attempt (see the flags)
    RefusedLocked,  // the credential was locked already; nothing was checked
};

struct AttemptReport {
    AttemptOutcome outcome = AttemptOutcome::NotChecked;
    bool wrongPin = false;
    bool wrongOtp = false;     // no match in the accepted window
    bool replayedOtp = false;  // matched a step that was accepted already
    int failedAttempts = 0;    // consecutive failures after this attempt
    bool lockedNow = false;    // this attempt locked the credential
};

// A stable word for the audit detail: "not_checked", "ok", "locked", "wrong_pin", "wrong_otp",
// "replayed_otp", "wrong_pin_and_otp", "wrong_pin_replayed_otp".
std::string attemptCode(const AttemptReport& report);

// The credential's state as the portal shows it.
struct ActivationState {
    bool locked = false;
    int failedAttempts = 0;
    bool mustChangePin = false;
    bool revoked = false;
};

// One credentials/authorize call. The PIN and the code are borrowed: keep them in a Secret.
struct AuthorizeRequest {
    std::string credentialId;
    std::string_view pin;
    std::string_view otp;
    std::vector<std::string> hashes;  // raw digest bytes
    std::string hashAlgorithm;        // OID (2.16.840.1.101.3.4.2.1/.2/.3) or SHA-256/-384/-512
    int numSignatures = 0;
};

class Activation final {
  public:
    using Clock = std::function<std::chrono::system_clock::time_point()>;
    struct Options {
        std::chrono::seconds sadLifetime{300};
        int maxAttempts = 5;      // consecutive failures that lock
        int maxSignatures = 100;  // hashes in one authorization
        int qrScale = 8;          // pixels per QR module
        // Wraps a TOTP key for the database and unwraps it to check a code (AES-GCM under a
        // key on the token, the credential id as associated data): a copy of the database
        // alone then computes no code. Both null: the key is stored as it is (tests).
        std::function<Result<std::string>(std::string_view key, std::string_view credentialId)>
            sealSecret;
        std::function<Result<hsm::Secret>(std::string_view sealed, std::string_view credentialId)>
            unsealSecret;
    };

    // `store` must outlive this object.
    explicit Activation(
        Store& store, Clock clock = [] { return std::chrono::system_clock::now(); });
    Activation(Store& store, Clock clock, Options options);

    // Enrols a citizen: a new credential id ("citizen-<32 hex>"), an initial PIN and a TOTP
    // secret, stored in one transaction. The otpauth label is the citizen's full name.
    // Errors: citizen.invalid (a field breaks the rules above), citizen.duplicate (the identity
    // number has a credential that is not revoked), qr.invalid, image.encode, db.unavailable.
    Result<Enrolment> enrol(const CitizenEnrolment& who);

    // Re-issues the activation of an existing credential (lost phone, forgotten PIN): a new
    // initial PIN and TOTP secret replace the old ones, the credential is unlocked, and its
    // outstanding SADs are deleted, all in one transaction. `label` is the otpauth account name.
    // Errors: citizen.unknown, citizen.revoked, citizen.invalid (empty label), qr.invalid,
    // image.encode, db.unavailable.
    Result<NewActivation> createActivation(const std::string& credentialId,
                                           const std::string& label);

    // Changes the PIN. The new PIN is 6 to 16 digits, differs from the old one, and is neither
    // one repeated digit nor an ascending or descending run ("123456"). Errors, in the order they
    // are checked: citizen.unknown, citizen.revoked, csc.locked (nothing else checked),
    // csc.invalid_request (no old PIN), csc.invalid_new_pin, csc.invalid_pin (the old PIN is
    // wrong: a failed attempt; the one that locks answers csc.locked), activation.conflict (a
    // concurrent change won), db.unavailable.
    Status changePin(const std::string& credentialId, std::string_view oldPin,
                     std::string_view newPin, AttemptReport& report);

    // credentials/authorize. Checked in this order:
    //   citizen.unknown, citizen.revoked
    //   csc.locked                 locked already: nothing else is checked (report: RefusedLocked)
    //   csc.pin_change_required    the initial PIN was never changed
    //   csc.invalid_request        malformed request (see above); nothing counted
    //   csc.invalid_grant          wrong PIN, wrong or replayed code, or both: a failed attempt
    //   csc.locked                 ... the failure that reached maxAttempts
    //   activation.conflict, db.unavailable
    // On success the SAD expires sadLifetime after now and authorizes exactly `hashes`, each
    // once, under that algorithm, for this credential only.
    Result<Sad> authorize(const AuthorizeRequest& request, AttemptReport& report);

    // signHash's check: spends one authorized hash of `sad`. Errors: csc.sad_invalid (unknown,
    // malformed, or another credential's SAD: one message for all), csc.sad_expired,
    // csc.sad_used_up, csc.hash_not_authorized (not one of its hashes, or signed already),
    // db.unavailable. The result names the authorized algorithm: sign with that one.
    Result<SadUse> consume(const std::string& credentialId, std::string_view sad,
                           std::string_view hash);

    // Portal or admin: clears the lock and the failure count. citizen.unknown, db.unavailable.
    Status unlock(const std::string& credentialId);

    // citizen.unknown, db.unavailable.
    Result<ActivationState> state(const std::string& credentialId);

  private:
    // The TOTP key of RECORD sealed in place / unsealed, per the options.
    Status sealTotp(ActivationRecord& record, const std::string& credentialId) const;
    Result<hsm::Secret> unsealTotp(const ActivationRecord& record,
                                   const std::string& credentialId) const;
    Error fail(const std::string& credentialId, AttemptReport& report, Error wrong);

    Store& m_store;
    Clock m_clock;
    Options m_options;
};

}  // namespace kyso::api
