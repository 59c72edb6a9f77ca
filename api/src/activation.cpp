#include "activation.h"

#include <botan/base32.h>
#include <botan/base64.h>
#include <botan/hash.h>
#include <botan/hex.h>
#include <botan/otp.h>
#include <botan/system_rng.h>

#include <array>
#include <cstdio>
#include <set>
#include <utility>

#include "qr.h"
#include "report_json.h"

namespace kyso::api {

namespace {

using std::chrono::system_clock;

constexpr int kTotpDigits = 6;
constexpr std::int64_t kTotpPeriod = 30;   // seconds
constexpr std::size_t kTotpKeyBytes = 20;  // RFC 4226 recommends 160 bits for HMAC-SHA-1
constexpr std::size_t kInitialPinDigits = 8;
constexpr std::size_t kSadBytes = 32;
constexpr std::size_t kSadChars = 43;  // base64url of 32 bytes, unpadded
// Expired SADs are kept this long, so that a late signHash hears "expired", not "invalid".
constexpr std::int64_t kExpiredSadRetention = 3600;

struct HashAlgorithm {
    const char* oid;
    const char* name;
    std::size_t size;
};

constexpr std::array<HashAlgorithm, 3> kHashAlgorithms{{
    {"2.16.840.1.101.3.4.2.1", "SHA-256", 32},
    {"2.16.840.1.101.3.4.2.2", "SHA-384", 48},
    {"2.16.840.1.101.3.4.2.3", "SHA-512", 64},
}};

const HashAlgorithm* findHashAlgorithm(std::string_view oidOrName) {
    for (const auto& a : kHashAlgorithms) {
        if (oidOrName == a.oid || oidOrName == a.name) {
            return &a;
        }
    }
    return nullptr;
}

std::int64_t unixSeconds(system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

std::int64_t totpStep(system_clock::time_point t) {
    const std::int64_t s = unixSeconds(t);
    return s >= 0 ? s / kTotpPeriod : -1;
}

std::string base64url(const std::uint8_t* bytes, std::size_t n) {
    std::string s = Botan::base64_encode(bytes, n);
    for (char& c : s) {
        c = c == '+' ? '-' : c == '/' ? '_' : c;
    }
    while (!s.empty() && s.back() == '=') {
        s.pop_back();
    }
    return s;
}

std::string sha256(std::string_view s) {
    auto h = Botan::HashFunction::create_or_throw("SHA-256");
    h->update(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
    const auto out = h->final();
    return std::string(out.begin(), out.end());
}

bool allDigits(std::string_view s) {
    for (char c : s) {
        if (c < '0' || c > '9') {
            return false;
        }
    }
    return true;
}

// Well-formed UTF-8 (no overlong forms, surrogates or code points above U+10FFFF) without C0
// controls or DEL: names end up in certificates and on the portal's pages.
bool printableUtf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x20 || c == 0x7f) {
            return false;
        }
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t len = 0;
        std::uint32_t cp = 0;
        if ((c & 0xe0) == 0xc0) {
            len = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > s.size()) {
            return false;
        }
        for (std::size_t k = 1; k < len; ++k) {
            const auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (cc & 0x3f);
        }
        static constexpr std::uint32_t kMinimum[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < kMinimum[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }
        i += len;
    }
    return true;
}

bool textField(std::string_view s, std::size_t maxBytes) {
    return !s.empty() && s.size() <= maxBytes && printableUtf8(s);
}

// RFC 3986 percent-encoding of everything but the unreserved characters, for the otpauth label.
std::string urlEncode(std::string_view s) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                                (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
                                c == '~';
        if (unreserved) {
            out += ch;
        } else {
            out += '%';
            out += kHex[c >> 4];
            out += kHex[c & 0xf];
        }
    }
    return out;
}

// `n` uniformly random decimal digits (rejection sampling: 250 is the largest multiple of 10
// that fits a byte, so a byte of 250..255 is drawn again).
hsm::Secret randomDigits(Botan::RandomNumberGenerator& rng, std::size_t n) {
    std::string digits;
    digits.reserve(n);
    while (digits.size() < n) {
        std::uint8_t b = 0;
        rng.randomize(&b, 1);
        if (b < 250) {
            digits += static_cast<char>('0' + b % 10);
        }
    }
    return hsm::Secret(std::move(digits));
}

// "111111", "123456", "987654": the first PINs an attacker tries.
bool trivialPin(std::string_view pin) {
    bool same = true;
    bool up = true;
    bool down = true;
    for (std::size_t i = 1; i < pin.size(); ++i) {
        const int d = pin[i] - pin[i - 1];
        same = same && d == 0;
        up = up && (d == 1 || d == -9);
        down = down && (d == -1 || d == 9);
    }
    return same || up || down;
}

// The TOTP code of one time step, as the 6 digits a citizen types.
std::string totpCode(Botan::TOTP& totp, std::int64_t step) {
    const std::uint32_t code = totp.generate_totp(static_cast<std::uint64_t>(step * kTotpPeriod));
    char buf[16];
    std::snprintf(buf, sizeof buf, "%0*u", kTotpDigits, code);
    return buf;
}

struct OtpCheck {
    bool accepted = false;  // matched a step above the last accepted one
    bool replayed = false;  // matched only steps accepted already
    std::int64_t step = -1;
};

// Compares the code with those of the steps now-1, now and now+1, each of them (no early exit),
// in constant time. The lowest acceptable step is the one that gets spent.
OtpCheck checkOtp(const hsm::Secret& key, std::string_view otp, std::int64_t nowStep,
                  std::int64_t lastStep) {
    const bool wellFormed = otp.size() == kTotpDigits && allDigits(otp);
    Botan::TOTP totp(reinterpret_cast<const std::uint8_t*>(key.view().data()), key.view().size(),
                     "SHA-1", kTotpDigits, kTotpPeriod);
    OtpCheck r;
    bool matchedOld = false;
    for (std::int64_t step = nowStep - 1; step <= nowStep + 1; ++step) {
        if (step < 0) {
            continue;
        }
        std::string code = totpCode(totp, step);
        const bool match = hsm::constantTimeEquals(code, otp) && wellFormed;
        hsm::secureWipe(code.data(), code.size());
        if (match && step > lastStep && !r.accepted) {
            r.accepted = true;
            r.step = step;
        } else if (match && step <= lastStep) {
            matchedOld = true;
        }
    }
    r.replayed = !r.accepted && matchedOld;
    return r;
}

Error invalidRequest(std::string detail) {
    return Error::make("csc.invalid_request", std::move(detail));
}

Error lockedError() {
    return Error::make("csc.locked",
                       "the credential is locked after too many failed attempts; it can be "
                       "unlocked through the portal");
}

// Fresh secrets for a credential: what the citizen is given, and what is stored.
struct MadeSecrets {
    NewActivation given;
    ActivationRecord stored;
};

Result<MadeSecrets> makeSecrets(const std::string& label, int qrScale) {
    Botan::System_RNG rng;
    MadeSecrets m;
    m.given.initialPin = randomDigits(rng, kInitialPinDigits);
    Botan::secure_vector<std::uint8_t> key(kTotpKeyBytes);
    rng.randomize(key.data(), key.size());
    m.stored.totpSecret = hsm::Secret(std::string(key.begin(), key.end()));
    // 20 bytes are 32 base32 characters exactly: no '=' padding to strip.
    m.given.totpSecretBase32 = hsm::Secret(Botan::base32_encode(key.data(), key.size()));
    m.given.otpauthUri =
        hsm::Secret("otpauth://totp/kyso:" + urlEncode(label) +
                    "?secret=" + std::string(m.given.totpSecretBase32.view()) +
                    "&issuer=kyso&algorithm=SHA1&digits=" + std::to_string(kTotpDigits) +
                    "&period=" + std::to_string(kTotpPeriod));
    auto qr = qrPng(m.given.otpauthUri.view(), qrScale);
    if (!qr) {
        return qr.error();
    }
    m.given.qrPng = std::move(qr).value();
    m.stored.pinHash = argon2idHash(m.given.initialPin.view());
    m.stored.mustChangePin = true;
    m.stored.lastTotpStep = -1;
    return m;
}

std::string randomHex(std::size_t bytes) {
    Botan::System_RNG rng;
    std::vector<std::uint8_t> b(bytes);
    rng.randomize(b.data(), b.size());
    return Botan::hex_encode(b, false);
}

}  // namespace

std::string attemptCode(const AttemptReport& r) {
    switch (r.outcome) {
        case AttemptOutcome::NotChecked:
            return "not_checked";
        case AttemptOutcome::Succeeded:
            return "ok";
        case AttemptOutcome::RefusedLocked:
            return "locked";
        case AttemptOutcome::Failed:
            break;
    }
    if (r.wrongPin && r.replayedOtp) {
        return "wrong_pin_replayed_otp";
    }
    if (r.wrongPin && r.wrongOtp) {
        return "wrong_pin_and_otp";
    }
    if (r.wrongPin) {
        return "wrong_pin";
    }
    return r.replayedOtp ? "replayed_otp" : "wrong_otp";
}

Activation::Activation(Store& store, Clock clock) : Activation(store, std::move(clock), {}) {}

Activation::Activation(Store& store, Clock clock, Options options)
    : m_store(store), m_clock(std::move(clock)), m_options(options) {}

Result<Enrolment> Activation::enrol(const CitizenEnrolment& who) {
    if ((who.identityNumber.size() != 9 && who.identityNumber.size() != 12) ||
        !allDigits(who.identityNumber)) {
        return Error::make("citizen.invalid", "the identity number must be 9 or 12 digits");
    }
    if (!textField(who.fullName, 200)) {
        return Error::make("citizen.invalid",
                           "the full name must be 1 to 200 bytes of printable UTF-8");
    }
    if (!textField(who.province, 100)) {
        return Error::make("citizen.invalid",
                           "the province must be 1 to 100 bytes of printable UTF-8");
    }
    if (!textField(who.contact, 200)) {
        return Error::make("citizen.invalid",
                           "the contact must be 1 to 200 bytes of printable UTF-8");
    }
    if (!textField(who.portal, 200)) {
        return Error::make("citizen.invalid", "the enrolling portal must be named");
    }
    auto secrets = makeSecrets(who.fullName, m_options.qrScale);
    if (!secrets) {
        return secrets.error();
    }
    Citizen c;
    c.id = "citizen-" + randomHex(16);
    c.identityNumber = who.identityNumber;
    c.fullName = who.fullName;
    c.province = who.province;
    c.contact = who.contact;
    c.portal = who.portal;
    c.keyLabel = c.id;
    c.created = isoUtc(system_clock::to_time_t(m_clock()));
    if (auto sealed = sealTotp(secrets->stored, c.id); !sealed) {
        return sealed.error();
    }
    auto st = m_store.addCitizen(c, secrets->stored);
    if (!st) {
        return st.error();
    }
    return Enrolment{std::move(c), std::move(secrets->given)};
}

Status Activation::sealTotp(ActivationRecord& record, const std::string& credentialId) const {
    if (!m_options.sealSecret) {
        return Ok{};
    }
    auto sealed = m_options.sealSecret(record.totpSecret.view(), credentialId);
    if (!sealed) {
        return sealed.error();
    }
    record.totpSecret = hsm::Secret(std::move(*sealed));
    return Ok{};
}

Result<hsm::Secret> Activation::unsealTotp(const ActivationRecord& record,
                                           const std::string& credentialId) const {
    if (!m_options.unsealSecret) {
        return hsm::Secret(std::string(record.totpSecret.view()));
    }
    return m_options.unsealSecret(record.totpSecret.view(), credentialId);
}

Result<NewActivation> Activation::createActivation(const std::string& credentialId,
                                                   const std::string& label) {
    if (!textField(label, 200)) {
        return Error::make("citizen.invalid",
                           "the label must be 1 to 200 bytes of printable UTF-8");
    }
    auto secrets = makeSecrets(label, m_options.qrScale);
    if (!secrets) {
        return secrets.error();
    }
    if (auto sealed = sealTotp(secrets->stored, credentialId); !sealed) {
        return sealed.error();
    }
    auto st = m_store.replaceActivation(credentialId, secrets->stored);
    if (!st) {
        return st.error();
    }
    return std::move(secrets->given);
}

// Counts a failed attempt and says what the client is told: `wrong`, or that it is locked now.
Error Activation::fail(const std::string& credentialId, AttemptReport& report, Error wrong) {
    report.outcome = AttemptOutcome::Failed;
    auto counted = m_store.recordFailedAttempt(credentialId, m_options.maxAttempts);
    if (!counted) {
        // Not counted means not checked, as far as the client can tell: refuse all the same.
        return counted.error();
    }
    report.failedAttempts = counted->count;
    report.lockedNow = counted->lockedNow;
    return counted->locked ? lockedError() : std::move(wrong);
}

Status Activation::changePin(const std::string& credentialId, std::string_view oldPin,
                             std::string_view newPin, AttemptReport& report) {
    report = AttemptReport{};
    auto rec = m_store.activation(credentialId);
    if (!rec) {
        return rec.error();
    }
    if (rec->citizenRevoked) {
        return Error::make("citizen.revoked", "the citizen credential is revoked");
    }
    report.failedAttempts = rec->failedAttempts;
    if (rec->locked) {
        report.outcome = AttemptOutcome::RefusedLocked;
        return lockedError();
    }
    if (oldPin.empty()) {
        return invalidRequest("the current PIN is required");
    }
    if (newPin.size() < 6 || newPin.size() > 16 || !allDigits(newPin)) {
        return Error::make("csc.invalid_new_pin", "the new PIN must be 6 to 16 digits");
    }
    if (trivialPin(newPin)) {
        return Error::make("csc.invalid_new_pin",
                           "the new PIN must not be one repeated digit or a run of digits");
    }
    // Compared with what was typed: if that is the current PIN, equal means unchanged.
    if (hsm::constantTimeEquals(oldPin, newPin)) {
        return Error::make("csc.invalid_new_pin", "the new PIN must differ from the current one");
    }
    if (!argon2idCheck(oldPin, rec->pinHash)) {
        report.wrongPin = true;
        return fail(credentialId, report, Error::make("csc.invalid_pin", "PIN incorrect"));
    }
    auto st = m_store.changePinHash(credentialId, rec->pinHash, argon2idHash(newPin));
    if (!st) {
        if (st.error().code == "csc.locked") {
            report.outcome = AttemptOutcome::RefusedLocked;
        }
        return st;
    }
    report.outcome = AttemptOutcome::Succeeded;
    report.failedAttempts = 0;
    return Ok{};
}

Result<Sad> Activation::authorize(const AuthorizeRequest& rq, AttemptReport& report) {
    report = AttemptReport{};
    auto rec = m_store.activation(rq.credentialId);
    if (!rec) {
        return rec.error();
    }
    if (rec->citizenRevoked) {
        return Error::make("citizen.revoked", "the citizen credential is revoked");
    }
    report.failedAttempts = rec->failedAttempts;
    if (rec->locked) {
        report.outcome = AttemptOutcome::RefusedLocked;
        return lockedError();
    }
    if (rec->mustChangePin) {
        return Error::make("csc.pin_change_required",
                           "the initial PIN must be changed before the first signature");
    }

    // The request, before any secret is looked at.
    const HashAlgorithm* alg = findHashAlgorithm(rq.hashAlgorithm);
    if (alg == nullptr) {
        return invalidRequest("hashAlgorithmOID must be SHA-256, SHA-384 or SHA-512");
    }
    if (rq.hashes.empty()) {
        return invalidRequest("no hash to authorize");
    }
    if (rq.numSignatures < 1 || static_cast<std::size_t>(rq.numSignatures) != rq.hashes.size()) {
        return invalidRequest("numSignatures must equal the number of hashes");
    }
    if (rq.numSignatures > m_options.maxSignatures) {
        return invalidRequest("at most " + std::to_string(m_options.maxSignatures) +
                              " hashes in one authorization");
    }
    std::set<std::string_view> seen;
    for (const auto& h : rq.hashes) {
        if (h.size() != alg->size) {
            return invalidRequest(std::string("a ") + alg->name + " hash is " +
                                  std::to_string(alg->size) + " bytes");
        }
        if (!seen.insert(h).second) {
            return invalidRequest("a hash is listed more than once");
        }
    }
    if (rq.pin.empty() || rq.otp.empty()) {
        return invalidRequest("the PIN and the one-time code are required");
    }

    // Both factors, always, so that the time taken does not tell which one was wrong.
    const auto now = m_clock();
    const bool pinOk = argon2idCheck(rq.pin, rec->pinHash);
    auto totpKey = unsealTotp(*rec, rq.credentialId);
    if (!totpKey) {
        return totpKey.error();
    }
    const OtpCheck otp = checkOtp(*totpKey, rq.otp, totpStep(now), rec->lastTotpStep);
    const Error wrong = Error::make("csc.invalid_grant", "PIN or one-time code incorrect");
    if (!pinOk || !otp.accepted) {
        report.wrongPin = !pinOk;
        report.replayedOtp = otp.replayed;
        report.wrongOtp = !otp.accepted && !otp.replayed;
        return fail(rq.credentialId, report, wrong);
    }

    Botan::System_RNG rng;
    Botan::secure_vector<std::uint8_t> raw(kSadBytes);
    rng.randomize(raw.data(), raw.size());
    Sad sad{hsm::Secret(base64url(raw.data(), raw.size())), now + m_options.sadLifetime};
    SadRecord record;
    record.sadHash = sha256(sad.value.view());
    record.credentialId = rq.credentialId;
    record.hashAlgorithm = alg->oid;
    record.hashes = rq.hashes;
    record.expires = unixSeconds(sad.expiresAt);
    auto st = m_store.acceptAuthorization(rq.credentialId, otp.step, rec->pinHash, record,
                                          unixSeconds(now) - kExpiredSadRetention);
    if (!st) {
        const std::string& code = st.error().code;
        if (code == "activation.otp_replayed") {
            // A concurrent request spent this code first.
            report.replayedOtp = true;
            return fail(rq.credentialId, report, wrong);
        }
        if (code == "csc.locked") {
            report.outcome = AttemptOutcome::RefusedLocked;
        }
        return st.error();
    }
    report.outcome = AttemptOutcome::Succeeded;
    report.failedAttempts = 0;
    return sad;
}

Result<SadUse> Activation::consume(const std::string& credentialId, std::string_view sad,
                                   std::string_view hash) {
    if (sad.size() != kSadChars) {
        return Error::make("csc.sad_invalid", "the SAD is not valid for this credential");
    }
    return m_store.useSad(credentialId, sha256(sad), std::string(hash), unixSeconds(m_clock()));
}

Status Activation::unlock(const std::string& credentialId) {
    return m_store.unlockActivation(credentialId);
}

Result<ActivationState> Activation::state(const std::string& credentialId) {
    auto rec = m_store.activation(credentialId);
    if (!rec) {
        return rec.error();
    }
    return ActivationState{rec->locked, rec->failedAttempts, rec->mustChangePin,
                           rec->citizenRevoked};
}

}  // namespace kyso::api
