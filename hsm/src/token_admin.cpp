#include "kyso/hsm/token_admin.h"

#include <libp11.h>
#include <openssl/rand.h>

#include <cstring>
#include <string>

namespace kyso::hsm {

namespace {

std::string trimmed(const char* s) {
    std::string v = s != nullptr ? s : "";
    while (!v.empty() && (v.back() == ' ' || v.back() == '\0')) {
        v.pop_back();
    }
    return v;
}

// libp11 context with its slots, released in one place.
class Context final {
  public:
    Context() : m_ctx(::PKCS11_CTX_new()) {}
    ~Context() {
        if (m_slots != nullptr) {
            ::PKCS11_release_all_slots(m_ctx, m_slots, m_nslots);
        }
        if (m_loaded) {
            ::PKCS11_CTX_unload(m_ctx);
        }
        if (m_ctx != nullptr) {
            ::PKCS11_CTX_free(m_ctx);
        }
    }
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

    bool load(const std::string& module) {
        m_loaded = m_ctx != nullptr && ::PKCS11_CTX_load(m_ctx, module.c_str()) == 0;
        return m_loaded;
    }
    bool enumerate() {
        if (m_slots != nullptr) {
            ::PKCS11_release_all_slots(m_ctx, m_slots, m_nslots);
            m_slots = nullptr;
        }
        return ::PKCS11_enumerate_slots(m_ctx, &m_slots, &m_nslots) == 0;
    }
    PKCS11_SLOT* slot(unsigned i) { return &m_slots[i]; }
    unsigned count() const { return m_nslots; }

  private:
    PKCS11_CTX* m_ctx;
    PKCS11_SLOT* m_slots = nullptr;
    unsigned m_nslots = 0;
    bool m_loaded = false;
};

}  // namespace

Status initToken(const std::string& modulePath, const std::string& label, const Secret& soPin,
                 const Secret& userPin) {
    Context ctx;
    if (!ctx.load(modulePath)) {
        return Error::make("token.module", "cannot load PKCS#11 module " + modulePath);
    }
    if (!ctx.enumerate()) {
        return Error::make("token.error", "cannot enumerate slots");
    }
    PKCS11_SLOT* free = nullptr;
    for (unsigned i = 0; i < ctx.count(); ++i) {
        PKCS11_TOKEN* t = ctx.slot(i)->token;
        if (t == nullptr) {
            continue;
        }
        if (t->initialized != 0 && trimmed(t->label) == label) {
            return Ok{};
        }
        if (t->initialized == 0 && free == nullptr) {
            free = ctx.slot(i);
        }
    }
    if (free == nullptr) {
        return Error::make("token.not_found", "no uninitialised token slot is available");
    }
    // C_InitToken reads exactly 32 bytes of label (CK_UTF8CHAR[32], blank-padded, PKCS#11 v2.40
    // section 5.6) and libp11 passes our pointer through: a shorter C string would be over-read.
    if (label.empty() || label.size() > 32) {
        return Error::make("token.error", "a token label has 1 to 32 bytes");
    }
    char padded[33];
    std::memset(padded, ' ', 32);
    std::memcpy(padded, label.data(), label.size());
    padded[32] = '\0';
    if (::PKCS11_init_token(free->token, soPin.c_str(), padded) != 0) {
        return Error::make("token.error", "C_InitToken failed");
    }
    // Initialising a token renumbers SoftHSM2's slots: find it again by its old slot's token.
    if (!ctx.enumerate()) {
        return Error::make("token.error", "cannot enumerate slots");
    }
    PKCS11_SLOT* slot = nullptr;
    for (unsigned i = 0; i < ctx.count(); ++i) {
        PKCS11_TOKEN* t = ctx.slot(i)->token;
        if (t != nullptr && t->initialized != 0 && trimmed(t->label) == label) {
            slot = ctx.slot(i);
            break;
        }
    }
    if (slot == nullptr) {
        return Error::make("token.not_found", "the new token disappeared");
    }
    if (::PKCS11_open_session(slot, 1) != 0 || ::PKCS11_login(slot, 1, soPin.c_str()) != 0) {
        return Error::make("token.error", "cannot log in as security officer");
    }
    const int rc = ::PKCS11_init_pin(slot->token, userPin.c_str());
    ::PKCS11_logout(slot);
    if (rc != 0) {
        return Error::make("token.error", "C_InitPIN failed");
    }
    return Ok{};
}

Secret randomPin(unsigned digits) {
    std::string pin;
    pin.reserve(digits);
    while (pin.size() < digits) {
        unsigned char b = 0;
        if (::RAND_bytes(&b, 1) != 1) {
            continue;
        }
        if (b < 250) {  // unbiased: 250 = 25 * 10
            pin.push_back(static_cast<char>('0' + b % 10));
        }
    }
    return Secret(std::move(pin));
}

}  // namespace kyso::hsm
