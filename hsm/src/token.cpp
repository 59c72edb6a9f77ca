// The token layer. libp11 loads and initialises the module (with CKF_OS_LOCKING_OK) once per
// process; the operations themselves (slot lookup, login, sign, generate, store) go through the
// module's own function list on sessions from our pool, because libp11 0.4.12 has no PSS
// mechanism parameters, no EC key generation, no control over CKA_EXTRACTABLE, reports CK_RV only
// through the OpenSSL error queue, and closes every session of a slot when it releases its slot
// list. See docs/ARCHITECTURE.md, "Decisions".
#include "kyso/hsm/token.h"

#include <dlfcn.h>
#include <libp11.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <shared_mutex>

#include "kyso/hsm/secret.h"
#include "pkcs11_gnu.h"

namespace kyso::hsm {

std::size_t digestLength(HashAlg h) noexcept {
    switch (h) {
        case HashAlg::Sha256:
            return 32;
        case HashAlg::Sha384:
            return 48;
        case HashAlg::Sha512:
            return 64;
    }
    return 0;
}

const char* hashName(HashAlg h) noexcept {
    switch (h) {
        case HashAlg::Sha256:
            return "SHA-256";
        case HashAlg::Sha384:
            return "SHA-384";
        case HashAlg::Sha512:
            return "SHA-512";
    }
    return "";
}

const char* hashOid(HashAlg h) noexcept {
    switch (h) {
        case HashAlg::Sha256:
            return "2.16.840.1.101.3.4.2.1";
        case HashAlg::Sha384:
            return "2.16.840.1.101.3.4.2.2";
        case HashAlg::Sha512:
            return "2.16.840.1.101.3.4.2.3";
    }
    return "";
}

std::optional<HashAlg> parseHashAlg(std::string_view name) noexcept {
    std::string n;
    for (char c : name) {
        if (c != '-' && c != '_') {
            n.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
        }
    }
    if (n == "sha256") {
        return HashAlg::Sha256;
    }
    if (n == "sha384") {
        return HashAlg::Sha384;
    }
    if (n == "sha512") {
        return HashAlg::Sha512;
    }
    return std::nullopt;
}

KeyRef keyRefFrom(const Pkcs11Uri& uri) {
    return KeyRef{uri.object, uri.id};
}

namespace {

// DER OIDs of the supported curves, as CKA_EC_PARAMS carries them.
const std::string kP256Oid("\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07", 10);
const std::string kP384Oid("\x06\x05\x2b\x81\x04\x00\x22", 7);

// DigestInfo prefixes (RFC 8017 section 9.2, note 1).
const std::string kSha256Prefix(
    "\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20", 19);
const std::string kSha384Prefix(
    "\x30\x41\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x02\x05\x00\x04\x30", 19);
const std::string kSha512Prefix(
    "\x30\x51\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x03\x05\x00\x04\x40", 19);

// AES-256-GCM as seal() lays it out: IV || ciphertext || tag.
constexpr std::size_t kGcmIvLen = 12;   // the GCM default; other lengths are hashed into one
constexpr std::size_t kGcmTagLen = 16;  // full tag: shorter ones weaken forgery resistance
constexpr unsigned long kAesKeyLen = 32;
// PKCS#11 3.0's "tag did not verify"; p11-kit 0.24's header predates it.
constexpr ck_rv_t kCkrAeadDecryptFailed = 0x35;

std::string rvName(ck_rv_t rv) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "CKR 0x%lx", rv);
    return buf;
}

// The token is gone or the module lost its state: reconnect before the next call.
bool isConnectionLost(ck_rv_t rv) {
    switch (rv) {
        case CKR_DEVICE_REMOVED:
        case CKR_DEVICE_ERROR:
        case CKR_DEVICE_MEMORY:
        case CKR_TOKEN_NOT_PRESENT:
        case CKR_TOKEN_NOT_RECOGNIZED:
        case CKR_SESSION_HANDLE_INVALID:
        case CKR_SESSION_CLOSED:
        case CKR_SLOT_ID_INVALID:
        case CKR_CRYPTOKI_NOT_INITIALIZED:
        case CKR_USER_NOT_LOGGED_IN:
        case CKR_GENERAL_ERROR:
        case CKR_FUNCTION_FAILED:
            return true;
        default:
            return false;
    }
}

// A blank-padded, not NUL-terminated CK_TOKEN_INFO field.
std::string fixedField(const unsigned char* p, std::size_t n) {
    std::string v(reinterpret_cast<const char*>(p), n);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\0')) {
        v.pop_back();
    }
    return v;
}

std::string pkeyToSpki(EVP_PKEY* pkey) {
    unsigned char* der = nullptr;
    const int len = ::i2d_PUBKEY(pkey, &der);
    std::string out;
    if (len > 0) {
        out.assign(reinterpret_cast<char*>(der), static_cast<std::size_t>(len));
    }
    ::OPENSSL_free(der);
    return out;
}

std::string rsaSpki(const std::string& modulus, const std::string& exponent) {
    BIGNUM* n = ::BN_bin2bn(reinterpret_cast<const unsigned char*>(modulus.data()),
                            static_cast<int>(modulus.size()), nullptr);
    BIGNUM* e = ::BN_bin2bn(reinterpret_cast<const unsigned char*>(exponent.data()),
                            static_cast<int>(exponent.size()), nullptr);
    OSSL_PARAM_BLD* bld = ::OSSL_PARAM_BLD_new();
    std::string out;
    if (n != nullptr && e != nullptr && bld != nullptr &&
        ::OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) == 1 &&
        ::OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) == 1) {
        OSSL_PARAM* params = ::OSSL_PARAM_BLD_to_param(bld);
        EVP_PKEY_CTX* ctx = ::EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
        EVP_PKEY* pkey = nullptr;
        if (ctx != nullptr && params != nullptr && ::EVP_PKEY_fromdata_init(ctx) == 1 &&
            ::EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) == 1) {
            out = pkeyToSpki(pkey);
        }
        ::EVP_PKEY_free(pkey);
        ::EVP_PKEY_CTX_free(ctx);
        ::OSSL_PARAM_free(params);
    }
    ::OSSL_PARAM_BLD_free(bld);
    ::BN_free(n);
    ::BN_free(e);
    return out;
}

// CKA_EC_POINT is a DER OCTET STRING around the uncompressed point (PKCS#11 2.40); some modules
// return the bare point. Accept both.
std::string unwrapEcPoint(const std::string& v) {
    if (v.size() >= 2 && static_cast<unsigned char>(v[0]) == 0x04) {
        std::size_t len = static_cast<unsigned char>(v[1]);
        std::size_t hdr = 2;
        if (len == 0x81 && v.size() >= 3) {
            len = static_cast<unsigned char>(v[2]);
            hdr = 3;
        }
        if (hdr + len == v.size() && len > 0 && static_cast<unsigned char>(v[hdr]) == 0x04) {
            return v.substr(hdr);
        }
    }
    return v;
}

std::string ecSpki(const char* group, const std::string& point) {
    OSSL_PARAM params[3];
    params[0] =
        ::OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, const_cast<char*>(group), 0);
    params[1] = ::OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
                                                    const_cast<char*>(point.data()), point.size());
    params[2] = ::OSSL_PARAM_construct_end();
    EVP_PKEY_CTX* ctx = ::EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
    EVP_PKEY* pkey = nullptr;
    std::string out;
    if (ctx != nullptr && ::EVP_PKEY_fromdata_init(ctx) == 1 &&
        ::EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) == 1) {
        out = pkeyToSpki(pkey);
    }
    ::EVP_PKEY_free(pkey);
    ::EVP_PKEY_CTX_free(ctx);
    return out;
}

// Raw r||s (PKCS#11 CKM_ECDSA output) to DER ECDSA-Sig-Value.
std::string ecdsaRawToDer(const std::string& raw) {
    const std::size_t half = raw.size() / 2;
    ECDSA_SIG* sig = ::ECDSA_SIG_new();
    BIGNUM* r = ::BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()),
                            static_cast<int>(half), nullptr);
    BIGNUM* s = ::BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + half,
                            static_cast<int>(half), nullptr);
    std::string out;
    if (sig != nullptr && r != nullptr && s != nullptr && ::ECDSA_SIG_set0(sig, r, s) == 1) {
        r = nullptr;
        s = nullptr;
        unsigned char* der = nullptr;
        const int len = ::i2d_ECDSA_SIG(sig, &der);
        if (len > 0) {
            out.assign(reinterpret_cast<char*>(der), static_cast<std::size_t>(len));
        }
        ::OPENSSL_free(der);
    }
    ::BN_free(r);
    ::BN_free(s);
    ::ECDSA_SIG_free(sig);
    return out;
}

std::string sha1(std::string_view data) {
    unsigned char md[SHA_DIGEST_LENGTH];
    ::SHA1(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
    return std::string(reinterpret_cast<char*>(md), sizeof md);
}

// The BIT STRING content of a SubjectPublicKeyInfo: the key identifier of RFC 5280 4.2.1.2 (1).
std::string spkiKeyId(const std::string& spki) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(spki.data());
    X509_PUBKEY* xpk = ::d2i_X509_PUBKEY(nullptr, &p, static_cast<long>(spki.size()));
    std::string id;
    if (xpk != nullptr) {
        const unsigned char* pk = nullptr;
        int pklen = 0;
        if (::X509_PUBKEY_get0_param(nullptr, &pk, &pklen, nullptr, xpk) == 1) {
            id = sha1(std::string_view(reinterpret_cast<const char*>(pk),
                                       static_cast<std::size_t>(pklen)));
        }
        ::X509_PUBKEY_free(xpk);
    }
    return id;
}

}  // namespace

// One loaded PKCS#11 module, shared by every Token of the process that uses the same module path.
// PKCS#11 initialisation and login state are per process: a Token that finalised the module on
// its own would end every other Token's sessions and login. So the module is loaded once,
// finalised only when its last user goes, and re-initialised in place after a loss; the epoch
// says which initialisation a session handle belongs to (handles restart at 1 after one).
class Module final {
  public:
    static Result<std::shared_ptr<Module>> acquire(const std::string& path) {
        static std::mutex registryMu;
        static auto* registry = new std::map<std::string, std::weak_ptr<Module>>();
        std::lock_guard lk(registryMu);
        if (auto existing = (*registry)[path].lock()) {
            return existing;
        }
        auto m = std::shared_ptr<Module>(new Module(path));
        m->ctx = ::PKCS11_CTX_new();
        if (m->ctx == nullptr || ::PKCS11_CTX_load(m->ctx, path.c_str()) != 0) {
            ::ERR_clear_error();
            return Error::make("token.module", "cannot load PKCS#11 module " + path);
        }
        m->loaded = true;
        m->dl = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        auto getList = m->dl != nullptr ? reinterpret_cast<ck_rv_t (*)(ck_function_list**)>(
                                              ::dlsym(m->dl, "C_GetFunctionList"))
                                        : nullptr;
        if (getList == nullptr || getList(&m->fl) != CKR_OK || m->fl == nullptr) {
            return Error::make("token.module", "module has no C_GetFunctionList: " + path);
        }
        (*registry)[path] = m;
        return m;
    }

    ~Module() {
        if (ctx != nullptr) {
            if (loaded) {
                ::PKCS11_CTX_unload(ctx);
            }
            ::PKCS11_CTX_free(ctx);
        }
        if (dl != nullptr) {
            ::dlclose(dl);
        }
    }

    ck_function_list* functions() const { return fl; }
    std::uint64_t epoch() const { return m_epoch.load(); }

    // Called after a Token saw the connection fail during `seenEpoch`. A sole user resets the
    // module (C_Finalize, C_Initialize); with other users, only a module that lost its
    // initialisation is initialised again. Either way a real re-initialisation starts a new
    // epoch; later callers for the same epoch find the work done.
    void recover(std::uint64_t seenEpoch, bool soleUser) {
        std::lock_guard lk(mu);
        if (m_epoch.load() != seenEpoch) {
            return;
        }
        if (soleUser) {
            fl->C_Finalize(nullptr);
        }
        ck_c_initialize_args args{};
        args.flags = CKF_OS_LOCKING_OK;
        if (fl->C_Initialize(&args) == CKR_OK) {
            logins.clear();
            ++m_epoch;
        }
    }

    // Finds the slot of the token with C_GetSlotList/C_GetTokenInfo. Not libp11's slot
    // enumeration: libp11 0.4.12 releases a slot with C_CloseAllSessions, which would end every
    // other Token's sessions on it, and its PKCS11_update_slots crashes on a second call.
    Result<TokenInfo> findToken(const TokenConfig& cfg) {
        std::lock_guard lk(mu);
        unsigned long n = 0;
        ck_rv_t rv = fl->C_GetSlotList(1, nullptr, &n);
        std::vector<ck_slot_id_t> ids(n);
        if (rv == CKR_OK && n > 0) {
            rv = fl->C_GetSlotList(1, ids.data(), &n);
            ids.resize(n);
        }
        if (rv != CKR_OK) {
            return Error::make("token.unavailable",
                               "cannot list PKCS#11 slots (" + rvName(rv) + ")", rv);
        }
        for (ck_slot_id_t id : ids) {
            ck_token_info ti{};
            if (fl->C_GetTokenInfo(id, &ti) != CKR_OK || (ti.flags & CKF_TOKEN_INITIALIZED) == 0) {
                continue;
            }
            TokenInfo info;
            info.label = fixedField(ti.label, sizeof ti.label);
            info.serial = fixedField(ti.serial_number, sizeof ti.serial_number);
            info.manufacturer = fixedField(ti.manufacturer_id, sizeof ti.manufacturer_id);
            info.model = fixedField(ti.model, sizeof ti.model);
            info.slotId = id;
            if ((cfg.tokenLabel && info.label != *cfg.tokenLabel) ||
                (cfg.tokenSerial && info.serial != *cfg.tokenSerial)) {
                continue;
            }
            if ((ti.flags & CKF_USER_PIN_LOCKED) != 0) {
                return Error::make("token.pin_locked", "the token's user PIN is locked");
            }
            return info;
        }
        std::string which = cfg.tokenLabel ? "label '" + *cfg.tokenLabel + "'" : "";
        if (cfg.tokenSerial) {
            which += (which.empty() ? "" : ", ") + std::string("serial '") + *cfg.tokenSerial + "'";
        }
        return Error::make("token.not_found",
                           "no initialised token" + (which.empty() ? "" : " with " + which));
    }

    // C_Login on `session`. CKR_USER_ALREADY_LOGGED_IN means another Token of this process
    // logged in and the token did not check this PIN: accept it only if it is the PIN that
    // logged in (compared as salted SHA-256, in constant time).
    ck_rv_t login(ck_session_handle_t session, ck_slot_id_t slot, const Secret& pin) {
        std::lock_guard lk(mu);
        ck_rv_t rv = fl->C_Login(session, CKU_USER,
                                 reinterpret_cast<unsigned char*>(const_cast<char*>(pin.c_str())),
                                 pin.view().size());
        auto it = logins.find(slot);
        if (rv == CKR_OK) {
            LoginRecord rec;
            ::RAND_bytes(reinterpret_cast<unsigned char*>(rec.salt.data()),
                         static_cast<int>(rec.salt.size()));
            rec.hash = pinHash(rec.salt, pin);
            logins[slot] = rec;
        } else if (rv == CKR_USER_ALREADY_LOGGED_IN) {
            if (it == logins.end() ||
                !constantTimeEquals(pinHash(it->second.salt, pin), it->second.hash)) {
                rv = CKR_PIN_INCORRECT;
            } else {
                rv = CKR_OK;
            }
        }
        return rv;
    }

  private:
    explicit Module(std::string p) : path(std::move(p)) {}

    struct LoginRecord {
        std::string salt = std::string(16, '\0');
        std::string hash;
    };

    static std::string pinHash(const std::string& salt, const Secret& pin) {
        unsigned char md[SHA256_DIGEST_LENGTH];
        SHA256_CTX c;
        ::SHA256_Init(&c);
        ::SHA256_Update(&c, salt.data(), salt.size());
        ::SHA256_Update(&c, pin.c_str(), pin.view().size());
        ::SHA256_Final(md, &c);
        return std::string(reinterpret_cast<char*>(md), sizeof md);
    }

    std::string path;
    std::mutex mu;
    PKCS11_CTX* ctx = nullptr;
    bool loaded = false;
    void* dl = nullptr;
    ck_function_list* fl = nullptr;
    std::atomic<std::uint64_t> m_epoch{1};
    std::map<ck_slot_id_t, LoginRecord> logins;
};

struct Token::Impl {
    TokenConfig cfg;
    TokenInfo info;

    // Shared for every operation, exclusive to (re)connect and tear down.
    std::shared_mutex connMutex;
    std::shared_ptr<Module> module;
    ck_function_list* fl = nullptr;
    ck_slot_id_t slotId = 0;
    std::uint64_t epoch = 0;  // the module epoch our session handles belong to
    bool connected = false;
    std::atomic<bool> lost{false};
    std::atomic<bool> pinRejected{false};
    std::atomic<unsigned> generation{0};

    // Held open for the connection's lifetime: a login lasts while a session is open, and pooled
    // sessions may be closed when an operation leaves them in an unknown state.
    ck_session_handle_t loginSession = 0;
    bool haveLoginSession = false;

    std::mutex poolMutex;
    std::condition_variable poolCv;
    std::vector<ck_session_handle_t> idle;
    unsigned openSessions = 0;

    std::mutex cacheMutex;
    std::map<std::string, ck_object_handle_t> keyHandles;
    std::map<std::string, ck_object_handle_t> secretHandles;  // wrapping keys, by label

    // Held across ensureSecretKey's find-then-generate, so that concurrent callers make one key.
    std::mutex ensureMutex;

    ~Impl() { disconnect(); }

    // Closes our sessions. Handles from an older module epoch are dropped without closing: after
    // a re-initialisation the same numbers may belong to another Token's new sessions.
    void disconnect() {
        const bool current = module && module->epoch() == epoch;
        {
            std::lock_guard lk(poolMutex);
            if (fl != nullptr && current) {
                for (auto s : idle) {
                    fl->C_CloseSession(s);
                }
                if (haveLoginSession) {
                    fl->C_CloseSession(loginSession);
                }
            }
            idle.clear();
            openSessions = 0;
            haveLoginSession = false;
        }
        {
            std::lock_guard lk(cacheMutex);
            keyHandles.clear();
            secretHandles.clear();
        }
        connected = false;
    }

    Error fromRv(ck_rv_t rv, const std::string& what) {
        if (isConnectionLost(rv)) {
            lost = true;
            return Error::make("token.unavailable",
                               what + ": token unavailable (" + rvName(rv) + ")", rv);
        }
        return Error::make("token.error", what + " failed (" + rvName(rv) + ")", rv);
    }

    // Requires connMutex held exclusively. `recovering`: the previous connection was lost.
    Status connect(bool recovering) {
        const std::uint64_t seen = epoch;
        disconnect();
        if (pinRejected) {
            return Error::make("token.pin_incorrect",
                               "the token rejected the configured PIN; not retrying");
        }
        if (!module) {
            auto m = Module::acquire(cfg.modulePath);
            if (!m) {
                return m.error();
            }
            module = *m;
        } else if (recovering) {
            module->recover(seen, module.use_count() == 1);
        }
        fl = module->functions();
        auto found = module->findToken(cfg);
        if (!found) {
            // A token that was there and is gone (pulled out, reader unplugged) is unavailable
            // until it comes back; "token.not_found" is for one never found at open.
            if (recovering && found.error().code == "token.not_found") {
                return Error::make("token.unavailable",
                                   found.error().detail + ": the token is not present");
            }
            return found.error();
        }
        info = *found;
        slotId = info.slotId;
        epoch = module->epoch();
        connected = true;
        return login();
    }

    Status login() {
        ck_session_handle_t s = 0;
        ck_rv_t rv =
            fl->C_OpenSession(slotId, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s);
        if (rv != CKR_OK) {
            return fromRv(rv, "open session");
        }
        auto pin = readSecret(cfg.pinSource);
        if (!pin) {
            fl->C_CloseSession(s);
            return pin.error();
        }
        rv = module->login(s, slotId, *pin);
        pin->wipe();
        if (rv != CKR_OK) {
            fl->C_CloseSession(s);
            if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_INVALID || rv == CKR_PIN_LEN_RANGE) {
                pinRejected = true;
                return Error::make("token.pin_incorrect",
                                   "the token rejected the configured PIN; not retrying", rv);
            }
            if (rv == CKR_PIN_LOCKED) {
                return Error::make("token.pin_locked", "the token's user PIN is locked", rv);
            }
            return fromRv(rv, "login");
        }
        std::lock_guard lk(poolMutex);
        loginSession = s;
        haveLoginSession = true;
        return Ok{};
    }

    // Ensures a live connection; takes the shared lock on success (returned to the caller).
    Result<std::shared_lock<std::shared_mutex>> acquire() {
        for (int attempt = 0; attempt < 2; ++attempt) {
            {
                std::shared_lock lk(connMutex);
                // Another Token re-initialised the module: our handles are stale.
                if (connected && !lost && module->epoch() == epoch) {
                    return lk;
                }
            }
            std::unique_lock ex(connMutex);
            if (!connected || lost) {
                lost = false;
                auto st = connect(true);
                if (!st) {
                    disconnect();
                    return st.error();
                }
                ++generation;
            }
        }
        return Error::make("token.unavailable", "token connection is not stable");
    }

    Result<ck_session_handle_t> takeSession() {
        std::unique_lock lk(poolMutex);
        for (;;) {
            if (!idle.empty()) {
                auto s = idle.back();
                idle.pop_back();
                return s;
            }
            if (openSessions < std::max(1u, cfg.maxSessions)) {
                ++openSessions;
                lk.unlock();
                ck_session_handle_t s = 0;
                ck_rv_t rv = fl->C_OpenSession(slotId, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr,
                                               nullptr, &s);
                if (rv != CKR_OK) {
                    lk.lock();
                    --openSessions;
                    poolCv.notify_one();
                    return fromRv(rv, "open session");
                }
                return s;
            }
            poolCv.wait(lk);
        }
    }

    void giveSession(ck_session_handle_t s, bool broken) {
        std::lock_guard lk(poolMutex);
        if (broken) {
            fl->C_CloseSession(s);
            --openSessions;
        } else {
            idle.push_back(s);
        }
        poolCv.notify_one();
    }

    // A session from the pool for the scope of one operation.
    class Lease {
      public:
        Lease(Impl& impl, ck_session_handle_t s) : m_impl(impl), m_s(s) {}
        ~Lease() { m_impl.giveSession(m_s, m_broken); }
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        ck_session_handle_t get() const { return m_s; }
        void markBroken() { m_broken = true; }

      private:
        Impl& m_impl;
        ck_session_handle_t m_s;
        bool m_broken = false;
    };

    // One operation: the connection held (shared) and a pooled session leased.
    struct Scope {
        Scope(std::shared_lock<std::shared_mutex> l, Impl& impl, ck_session_handle_t s)
            : lock(std::move(l)), lease(impl, s) {}
        std::shared_lock<std::shared_mutex> lock;  // released after the lease returns the session
        Lease lease;
        ck_session_handle_t session() const { return lease.get(); }
    };

    Result<std::unique_ptr<Scope>> begin() {
        auto lk = acquire();
        if (!lk) {
            return lk.error();
        }
        auto s = takeSession();
        if (!s) {
            return s.error();
        }
        return std::make_unique<Scope>(std::move(*lk), *this, *s);
    }

    Result<std::string> getAttr(ck_session_handle_t s, ck_object_handle_t o,
                                ck_attribute_type_t type) {
        ck_attribute a{type, nullptr, 0};
        ck_rv_t rv = fl->C_GetAttributeValue(s, o, &a, 1);
        if (rv != CKR_OK) {
            return fromRv(rv, "read attribute");
        }
        if (a.value_len == static_cast<unsigned long>(-1)) {
            return Error::make("token.error", "attribute is not available");
        }
        std::string v(a.value_len, '\0');
        a.value = v.data();
        rv = fl->C_GetAttributeValue(s, o, &a, 1);
        if (rv != CKR_OK) {
            return fromRv(rv, "read attribute");
        }
        v.resize(a.value_len);
        return v;
    }

    bool getBool(ck_session_handle_t s, ck_object_handle_t o, ck_attribute_type_t type, bool dflt) {
        unsigned char b = 0;
        ck_attribute a{type, &b, sizeof b};
        if (fl->C_GetAttributeValue(s, o, &a, 1) != CKR_OK) {
            return dflt;
        }
        return b != 0;
    }

    Result<std::vector<ck_object_handle_t>> findObjects(ck_session_handle_t s,
                                                        ck_object_class_t cls, const KeyRef& ref) {
        std::vector<ck_attribute> tmpl;
        tmpl.push_back({CKA_CLASS, &cls, sizeof cls});
        std::string label = ref.label.value_or("");
        std::string id = ref.id.value_or("");
        if (ref.label) {
            tmpl.push_back({CKA_LABEL, label.data(), label.size()});
        }
        if (ref.id) {
            tmpl.push_back({CKA_ID, id.data(), id.size()});
        }
        ck_rv_t rv = fl->C_FindObjectsInit(s, tmpl.data(), tmpl.size());
        if (rv != CKR_OK) {
            return fromRv(rv, "find objects");
        }
        std::vector<ck_object_handle_t> out;
        ck_object_handle_t buf[16];
        unsigned long n = 0;
        do {
            rv = fl->C_FindObjects(s, buf, 16, &n);
            if (rv != CKR_OK) {
                fl->C_FindObjectsFinal(s);
                return fromRv(rv, "find objects");
            }
            out.insert(out.end(), buf, buf + n);
        } while (n == 16);
        fl->C_FindObjectsFinal(s);
        return out;
    }

    // Whether public key object `pub` is the other half of `priv`: same key type, and for RSA the
    // same modulus (when the private object shows it), for EC the same curve.
    bool isPublicHalf(ck_session_handle_t s, ck_object_handle_t priv, ck_object_handle_t pub,
                      ck_key_type_t type) {
        auto pt = getAttr(s, pub, CKA_KEY_TYPE);
        ck_key_type_t ptype = ~0ul;
        if (pt) {
            std::memcpy(&ptype, pt->data(), std::min(pt->size(), sizeof ptype));
        }
        if (ptype != type) {
            return false;
        }
        const ck_attribute_type_t attr = type == CKK_RSA ? CKA_MODULUS : CKA_EC_PARAMS;
        auto a = getAttr(s, priv, attr);
        auto b = getAttr(s, pub, attr);
        return b && (!a || *a == *b);
    }

    // `pubHint`: the public half when the caller knows it (right after generation).
    Result<KeyInfo> describeKey(ck_session_handle_t s, ck_object_handle_t priv,
                                std::optional<ck_object_handle_t> pubHint = std::nullopt) {
        KeyInfo k;
        auto label = getAttr(s, priv, CKA_LABEL);
        auto id = getAttr(s, priv, CKA_ID);
        auto kt = getAttr(s, priv, CKA_KEY_TYPE);
        if (!kt) {
            return kt.error();
        }
        k.label = label ? *label : "";
        k.id = id ? *id : "";
        k.sensitive = getBool(s, priv, CKA_SENSITIVE, false);
        k.extractable = getBool(s, priv, CKA_EXTRACTABLE, true);
        ck_key_type_t type = 0;
        std::memcpy(&type, kt->data(), std::min(kt->size(), sizeof type));

        // Public components: from the matching public key object, found by label and id, then by
        // id, then by label; else from the private key object (SoftHSM2 and most HSMs expose the
        // RSA modulus there). Ids are not unique on every token, so each candidate is checked.
        ck_object_handle_t pub = priv;
        if (pubHint) {
            pub = *pubHint;
        } else {
            const std::optional<std::string> lbl =
                k.label.empty() ? std::nullopt : std::optional<std::string>(k.label);
            const std::optional<std::string> kid =
                k.id.empty() ? std::nullopt : std::optional<std::string>(k.id);
            bool found = false;
            for (const KeyRef& ref :
                 {KeyRef{lbl, kid}, KeyRef{std::nullopt, kid}, KeyRef{lbl, std::nullopt}}) {
                if (found || (!ref.label && !ref.id)) {
                    continue;
                }
                auto pubs = findObjects(s, CKO_PUBLIC_KEY, ref);
                for (auto h : pubs ? *pubs : std::vector<ck_object_handle_t>{}) {
                    if (isPublicHalf(s, priv, h, type)) {
                        pub = h;
                        found = true;
                        break;
                    }
                }
            }
        }
        if (type == CKK_RSA) {
            k.type = KeyType::Rsa;
            auto n = getAttr(s, pub, CKA_MODULUS);
            auto e = getAttr(s, pub, CKA_PUBLIC_EXPONENT);
            if (!n || !e) {
                return Error::make("key.unsupported", "cannot read the RSA public key");
            }
            k.bits = static_cast<unsigned>(n->size() * 8);
            k.publicKeyDer = rsaSpki(*n, *e);
        } else if (type == CKK_EC) {
            k.type = KeyType::Ec;
            auto params = getAttr(s, pub, CKA_EC_PARAMS);
            if (!params) {
                params = getAttr(s, priv, CKA_EC_PARAMS);
            }
            if (!params) {
                return Error::make("key.unsupported", "cannot read the EC parameters");
            }
            const char* group = nullptr;
            if (*params == kP256Oid) {
                k.curve = "P-256";
                k.bits = 256;
                group = "P-256";
            } else if (*params == kP384Oid) {
                k.curve = "P-384";
                k.bits = 384;
                group = "P-384";
            } else {
                return Error::make("key.unsupported", "EC curve is not P-256 or P-384");
            }
            auto point = getAttr(s, pub, CKA_EC_POINT);
            if (point) {
                k.publicKeyDer = ecSpki(group, unwrapEcPoint(*point));
            }
        } else {
            return Error::make("key.unsupported", "key type is neither RSA nor EC");
        }
        if (k.publicKeyDer.empty()) {
            return Error::make("key.unsupported", "cannot read the public key of " + k.label);
        }
        return k;
    }

    static std::string cacheKey(const KeyInfo& k) { return k.label + '\0' + k.id; }

    Result<ck_object_handle_t> keyHandle(ck_session_handle_t s, const KeyInfo& k) {
        {
            std::lock_guard lk(cacheMutex);
            auto it = keyHandles.find(cacheKey(k));
            if (it != keyHandles.end()) {
                return it->second;
            }
        }
        KeyRef ref;
        if (!k.id.empty()) {
            ref.id = k.id;
        }
        if (!k.label.empty()) {
            ref.label = k.label;
        }
        auto found = findObjects(s, CKO_PRIVATE_KEY, ref);
        if (!found) {
            return found.error();
        }
        if (found->size() != 1) {
            return Error::make("key.not_found",
                               "private key '" + k.label + "' is not on the token");
        }
        std::lock_guard lk(cacheMutex);
        keyHandles[cacheKey(k)] = found->front();
        return found->front();
    }

    std::optional<unsigned long> getUlong(ck_session_handle_t s, ck_object_handle_t o,
                                          ck_attribute_type_t type) {
        unsigned long v = 0;
        ck_attribute a{type, &v, sizeof v};
        if (fl->C_GetAttributeValue(s, o, &a, 1) != CKR_OK || a.value_len != sizeof v) {
            return std::nullopt;
        }
        return v;
    }

    // Describes secret key `h` and refuses it ("key.unsupported") as a wrapping key unless it is
    // AES-256, usable to encrypt and decrypt, and cannot be read out (sensitive, not
    // extractable). `bornOnToken` also demands that its value never existed outside the token
    // (generated there, always sensitive, never extractable), which is what ensureSecretKey
    // promises; seal and unseal accept a key imported under those protections.
    Result<SecretKeyInfo> wrappingKey(ck_session_handle_t s, ck_object_handle_t h,
                                      bool bornOnToken) {
        SecretKeyInfo k;
        auto label = getAttr(s, h, CKA_LABEL);
        if (!label) {
            return label.error();
        }
        k.label = *label;
        auto id = getAttr(s, h, CKA_ID);
        k.id = id ? *id : "";
        const auto type = getUlong(s, h, CKA_KEY_TYPE);
        const auto len = getUlong(s, h, CKA_VALUE_LEN);
        k.bits = len ? static_cast<unsigned>(*len * 8) : 0;
        k.sensitive = getBool(s, h, CKA_SENSITIVE, false);
        k.extractable = getBool(s, h, CKA_EXTRACTABLE, true);
        const std::string what = "secret key '" + k.label + "' ";
        if (type != CKK_AES || len != kAesKeyLen) {
            return Error::make("key.unsupported", what + "is not an AES-256 key");
        }
        if (!k.sensitive || k.extractable) {
            return Error::make("key.unsupported", what + "can be read out of the token");
        }
        if (!getBool(s, h, CKA_ENCRYPT, false) || !getBool(s, h, CKA_DECRYPT, false)) {
            return Error::make("key.unsupported", what + "may not encrypt and decrypt");
        }
        if (bornOnToken &&
            (!getBool(s, h, CKA_LOCAL, false) || !getBool(s, h, CKA_ALWAYS_SENSITIVE, false) ||
             !getBool(s, h, CKA_NEVER_EXTRACTABLE, false))) {
            return Error::make("key.unsupported", what + "was not generated on the token");
        }
        return k;
    }

    // The wrapping key labelled `label`, checked once per connection and then cached.
    Result<ck_object_handle_t> secretKeyHandle(ck_session_handle_t s, const std::string& label) {
        {
            std::lock_guard lk(cacheMutex);
            auto it = secretHandles.find(label);
            if (it != secretHandles.end()) {
                return it->second;
            }
        }
        auto found = findObjects(s, CKO_SECRET_KEY, KeyRef{label, std::nullopt});
        if (!found) {
            return found.error();
        }
        if (found->empty()) {
            return Error::make("key.not_found", "no secret key '" + label + "' on the token");
        }
        if (found->size() > 1) {
            return Error::make("key.ambiguous", "several secret keys '" + label + "' on the token");
        }
        auto k = wrappingKey(s, found->front(), false);
        if (!k) {
            return k.error();
        }
        std::lock_guard lk(cacheMutex);
        secretHandles[label] = found->front();
        return found->front();
    }

    // The cached handle went stale: the key was replaced on the token since we looked it up.
    void forgetSecretKey(const std::string& label, ck_rv_t rv) {
        if (rv == CKR_OBJECT_HANDLE_INVALID || rv == CKR_KEY_HANDLE_INVALID) {
            std::lock_guard lk(cacheMutex);
            secretHandles.erase(label);
        }
    }

    // Maps a failed C_Decrypt under AES-GCM. Tokens report a tag that does not verify as
    // CKR_ENCRYPTED_DATA_INVALID (2.40) or CKR_AEAD_DECRYPT_FAILED (3.0), but SoftHSM2 2.6 says
    // CKR_GENERAL_ERROR, which fromRv takes for a lost token. Taking it so would let anyone who
    // can write a sealed blob force a reconnect (a module reset for a sole user) that fails every
    // call in flight; so the session is asked whether it is still alive and logged in.
    Error decryptFailure(ck_session_handle_t s, ck_rv_t rv) {
        const Error tampered = Error::make(
            "crypto.tampered", "the sealed secret does not verify under this key and AAD", rv);
        if (rv == CKR_ENCRYPTED_DATA_INVALID || rv == CKR_ENCRYPTED_DATA_LEN_RANGE ||
            rv == kCkrAeadDecryptFailed) {
            return tampered;
        }
        if (rv == CKR_GENERAL_ERROR || rv == CKR_FUNCTION_FAILED) {
            ck_session_info si{};
            const ck_rv_t probe = fl->C_GetSessionInfo(s, &si);
            if (probe != CKR_OK) {
                return fromRv(probe, "unseal");
            }
            if (si.state == CKS_RW_USER_FUNCTIONS || si.state == CKS_RO_USER_FUNCTIONS) {
                return tampered;
            }
        }
        return fromRv(rv, "unseal");
    }
};

namespace {

// A failure of the token itself (not of the request) leaves the session in an unknown state.
void markBrokenOnTokenError(Token::Impl::Lease& lease, const Error& e) {
    if (e.code.rfind("token.", 0) == 0) {
        lease.markBroken();
    }
}

// CKM_AES_GCM over `iv` (kGcmIvLen bytes) and `aad`; both must outlive the Init call. C APIs
// take non-const pointers to input they only read: the token never writes through them.
void gcmMechanism(ck_mechanism& mech, ck_gcm_params& params, unsigned char* iv,
                  std::string_view aad, unsigned char* emptyInput) {
    params.iv_ptr = iv;
    params.iv_len = kGcmIvLen;
    params.iv_bits = kGcmIvLen * 8;
    params.aad_ptr =
        aad.empty()
            ? emptyInput
            : const_cast<unsigned char*>(reinterpret_cast<const unsigned char*>(aad.data()));
    params.aad_len = aad.size();
    params.tag_bits = kGcmTagLen * 8;
    mech.mechanism = CKM_AES_GCM;
    mech.parameter = &params;
    mech.parameter_len = sizeof params;
}

}  // namespace

Token::Token(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
Token::~Token() = default;

Result<std::unique_ptr<Token>> Token::open(TokenConfig cfg) {
    auto impl = std::make_unique<Impl>();
    impl->cfg = std::move(cfg);
    {
        std::unique_lock ex(impl->connMutex);
        auto st = impl->connect(false);
        if (!st) {
            impl->disconnect();
            return st.error();
        }
        impl->generation = 1;
    }
    return std::unique_ptr<Token>(new Token(std::move(impl)));
}

const TokenInfo& Token::info() const noexcept {
    return m_impl->info;
}
unsigned Token::generation() const noexcept {
    return m_impl->generation;
}

Result<KeyInfo> Token::findKey(const KeyRef& ref) {
    if (!ref.label && !ref.id) {
        return Error::make("key.not_found", "no key label or id given");
    }
    auto op = m_impl->begin();
    if (!op) {
        return op.error();
    }
    const ck_session_handle_t s = (*op)->session();
    Impl::Lease& lease = (*op)->lease;
    auto found = m_impl->findObjects(s, CKO_PRIVATE_KEY, ref);
    if (!found) {
        lease.markBroken();
        return found.error();
    }
    const std::string what = ref.label ? "'" + *ref.label + "'" : "with the given id";
    if (found->empty()) {
        return Error::make("key.not_found", "no private key " + what + " on the token");
    }
    if (found->size() > 1) {
        return Error::make("key.ambiguous", "several private keys " + what + " on the token");
    }
    return m_impl->describeKey(s, found->front());
}

Result<std::string> Token::sign(const KeyInfo& key, SignScheme scheme, HashAlg hash,
                                std::string_view digest) {
    if (digest.size() != digestLength(hash)) {
        return Error::make("sign.bad_digest",
                           std::string("digest length does not match ") + hashName(hash));
    }
    if ((key.type == KeyType::Ec) != (scheme == SignScheme::Ecdsa)) {
        return Error::make("sign.scheme", "signature scheme does not fit the key type");
    }
    std::string input;
    ck_mechanism mech{};
    ck_rsa_pkcs_pss_params pss{};
    switch (scheme) {
        case SignScheme::RsaPkcs1v15: {
            const std::string& prefix = hash == HashAlg::Sha256   ? kSha256Prefix
                                        : hash == HashAlg::Sha384 ? kSha384Prefix
                                                                  : kSha512Prefix;
            input = prefix + std::string(digest);
            mech.mechanism = CKM_RSA_PKCS;
            break;
        }
        case SignScheme::RsaPss:
            input = std::string(digest);
            pss.hash_alg = hash == HashAlg::Sha256   ? CKM_SHA256
                           : hash == HashAlg::Sha384 ? CKM_SHA384
                                                     : CKM_SHA512;
            pss.mgf = hash == HashAlg::Sha256   ? CKG_MGF1_SHA256
                      : hash == HashAlg::Sha384 ? CKG_MGF1_SHA384
                                                : CKG_MGF1_SHA512;
            pss.s_len = digest.size();
            mech.mechanism = CKM_RSA_PKCS_PSS;
            mech.parameter = &pss;
            mech.parameter_len = sizeof pss;
            break;
        case SignScheme::Ecdsa:
            input = std::string(digest);
            mech.mechanism = CKM_ECDSA;
            break;
    }

    auto op = m_impl->begin();
    if (!op) {
        return op.error();
    }
    const ck_session_handle_t s = (*op)->session();
    Impl::Lease& lease = (*op)->lease;
    auto h = m_impl->keyHandle(s, key);
    if (!h) {
        return h.error();
    }
    ck_function_list* fl = m_impl->fl;
    ck_rv_t rv = fl->C_SignInit(s, &mech, *h);
    if (rv == CKR_OBJECT_HANDLE_INVALID || rv == CKR_KEY_HANDLE_INVALID) {
        // The key was replaced on the token since we cached its handle.
        std::lock_guard clk(m_impl->cacheMutex);
        m_impl->keyHandles.erase(Impl::cacheKey(key));
    }
    if (rv != CKR_OK) {
        lease.markBroken();
        return m_impl->fromRv(rv, "sign init");
    }
    auto* in = reinterpret_cast<unsigned char*>(input.data());
    unsigned long len = 0;
    rv = fl->C_Sign(s, in, input.size(), nullptr, &len);
    std::string sig;
    if (rv == CKR_OK) {
        sig.resize(len);
        rv = fl->C_Sign(s, in, input.size(), reinterpret_cast<unsigned char*>(sig.data()), &len);
    }
    if (rv != CKR_OK) {
        // A failed C_Sign ends the operation (PKCS#11 5.2); the session state is unknown.
        lease.markBroken();
        return m_impl->fromRv(rv, "sign");
    }
    sig.resize(len);
    if (scheme == SignScheme::Ecdsa) {
        sig = ecdsaRawToDer(sig);
        if (sig.empty()) {
            return Error::make("token.error", "token returned a malformed ECDSA signature");
        }
    }
    return sig;
}

Result<KeyInfo> Token::generateKey(const KeySpec& spec) {
    if (spec.label.empty()) {
        return Error::make("key.spec", "a key needs a label");
    }
    const std::string* ecParams = nullptr;
    if (spec.type == KeyType::Rsa) {
        if (spec.rsaBits < 2048 || spec.rsaBits > 8192) {
            return Error::make("key.spec", "RSA keys must have 2048 to 8192 bits");
        }
    } else if (spec.curve == "P-256") {
        ecParams = &kP256Oid;
    } else if (spec.curve == "P-384") {
        ecParams = &kP384Oid;
    } else {
        return Error::make("key.spec", "EC keys must use P-256 or P-384");
    }

    auto op = m_impl->begin();
    if (!op) {
        return op.error();
    }
    const ck_session_handle_t s = (*op)->session();
    auto existing = m_impl->findObjects(s, CKO_PRIVATE_KEY, KeyRef{spec.label, std::nullopt});
    if (!existing) {
        return existing.error();
    }
    if (!existing->empty()) {
        return Error::make("key.exists", "a key labelled '" + spec.label + "' already exists");
    }

    // A temporary id, replaced by the key identifier once the public key is known.
    std::string label = spec.label;
    std::string id = spec.id.empty() ? std::string("kyso-pending-") + spec.label : spec.id;
    unsigned char yes = 1;
    unsigned char no = 0;
    ck_object_class_t pubClass = CKO_PUBLIC_KEY;
    ck_object_class_t privClass = CKO_PRIVATE_KEY;
    ck_key_type_t keyType = spec.type == KeyType::Rsa ? CKK_RSA : CKK_EC;
    unsigned long bits = spec.rsaBits;
    unsigned char exponent[] = {0x01, 0x00, 0x01};
    std::vector<ck_attribute> pubT = {
        {CKA_CLASS, &pubClass, sizeof pubClass},
        {CKA_KEY_TYPE, &keyType, sizeof keyType},
        {CKA_TOKEN, &yes, 1},
        {CKA_PRIVATE, &no, 1},
        {CKA_VERIFY, &yes, 1},
        {CKA_ENCRYPT, &no, 1},
        {CKA_WRAP, &no, 1},
        {CKA_LABEL, label.data(), label.size()},
        {CKA_ID, id.data(), id.size()},
    };
    std::vector<ck_attribute> privT = {
        {CKA_CLASS, &privClass, sizeof privClass},
        {CKA_KEY_TYPE, &keyType, sizeof keyType},
        {CKA_TOKEN, &yes, 1},
        {CKA_PRIVATE, &yes, 1},
        {CKA_SENSITIVE, &yes, 1},
        {CKA_EXTRACTABLE, &no, 1},
        {CKA_SIGN, &yes, 1},
        {CKA_DECRYPT, &no, 1},
        {CKA_UNWRAP, &no, 1},
        {CKA_DERIVE, &no, 1},
        {CKA_LABEL, label.data(), label.size()},
        {CKA_ID, id.data(), id.size()},
    };
    ck_mechanism mech{};
    std::string ecp;
    if (spec.type == KeyType::Rsa) {
        mech.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
        pubT.push_back({CKA_MODULUS_BITS, &bits, sizeof bits});
        pubT.push_back({CKA_PUBLIC_EXPONENT, exponent, sizeof exponent});
    } else {
        mech.mechanism = CKM_EC_KEY_PAIR_GEN;
        ecp = *ecParams;
        pubT.push_back({CKA_EC_PARAMS, ecp.data(), ecp.size()});
    }
    ck_object_handle_t pub = 0;
    ck_object_handle_t priv = 0;
    ck_function_list* fl = m_impl->fl;
    ck_rv_t rv = fl->C_GenerateKeyPair(s, &mech, pubT.data(), pubT.size(), privT.data(),
                                       privT.size(), &pub, &priv);
    if (rv != CKR_OK) {
        return m_impl->fromRv(rv, "generate key pair");
    }
    // From here on, any failure destroys both halves: no orphan keys on the token.
    auto rollback = [&](Error e) -> Result<KeyInfo> {
        fl->C_DestroyObject(s, priv);
        fl->C_DestroyObject(s, pub);
        return e;
    };
    auto info = m_impl->describeKey(s, priv, pub);
    if (!info) {
        return rollback(info.error());
    }
    if (spec.id.empty()) {
        std::string kid = spkiKeyId(info->publicKeyDer);
        ck_attribute a{CKA_ID, kid.data(), kid.size()};
        rv = fl->C_SetAttributeValue(s, priv, &a, 1);
        if (rv == CKR_OK) {
            rv = fl->C_SetAttributeValue(s, pub, &a, 1);
        }
        if (rv != CKR_OK) {
            return rollback(m_impl->fromRv(rv, "set key id"));
        }
        info->id = kid;
    }
    return info;
}

Status Token::storeCertificate(std::string_view label, std::string_view id, std::string_view der) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
    X509* x = ::d2i_X509(nullptr, &p, static_cast<long>(der.size()));
    if (x == nullptr) {
        return Error::make("cert.invalid", "not a DER certificate");
    }
    std::string subject;
    std::string issuer;
    std::string serial;
    {
        unsigned char* buf = nullptr;
        int n = ::i2d_X509_NAME(::X509_get_subject_name(x), &buf);
        subject.assign(reinterpret_cast<char*>(buf), n > 0 ? n : 0);
        ::OPENSSL_free(buf);
        buf = nullptr;
        n = ::i2d_X509_NAME(::X509_get_issuer_name(x), &buf);
        issuer.assign(reinterpret_cast<char*>(buf), n > 0 ? n : 0);
        ::OPENSSL_free(buf);
        buf = nullptr;
        n = ::i2d_ASN1_INTEGER(::X509_get_serialNumber(x), &buf);
        serial.assign(reinterpret_cast<char*>(buf), n > 0 ? n : 0);
        ::OPENSSL_free(buf);
    }
    ::X509_free(x);

    auto op = m_impl->begin();
    if (!op) {
        return op.error();
    }
    const ck_session_handle_t s = (*op)->session();
    auto old = m_impl->findObjects(s, CKO_CERTIFICATE, KeyRef{std::string(label), std::nullopt});
    if (!old) {
        return old.error();
    }
    ck_function_list* fl = m_impl->fl;
    ck_object_class_t cls = CKO_CERTIFICATE;
    ck_certificate_type_t ctype = CKC_X_509;
    unsigned char yes = 1;
    unsigned char no = 0;
    std::string l(label);
    std::string i(id);
    std::string v(der);
    std::vector<ck_attribute> t = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_CERTIFICATE_TYPE, &ctype, sizeof ctype},
        {CKA_TOKEN, &yes, 1},
        {CKA_PRIVATE, &no, 1},
        {CKA_LABEL, l.data(), l.size()},
        {CKA_ID, i.data(), i.size()},
        {CKA_SUBJECT, subject.data(), subject.size()},
        {CKA_ISSUER, issuer.data(), issuer.size()},
        {CKA_SERIAL_NUMBER, serial.data(), serial.size()},
        {CKA_VALUE, v.data(), v.size()},
    };
    ck_object_handle_t h = 0;
    ck_rv_t rv = fl->C_CreateObject(s, t.data(), t.size(), &h);
    if (rv != CKR_OK) {
        return m_impl->fromRv(rv, "store certificate");
    }
    for (auto o : *old) {
        fl->C_DestroyObject(s, o);
    }
    return Ok{};
}

Result<std::string> Token::findCertificate(const KeyRef& ref) {
    auto op = m_impl->begin();
    if (!op) {
        return op.error();
    }
    const ck_session_handle_t s = (*op)->session();
    auto found = m_impl->findObjects(s, CKO_CERTIFICATE, ref);
    if (!found) {
        return found.error();
    }
    if (found->empty()) {
        return Error::make("cert.not_found", "no certificate for this key on the token");
    }
    return m_impl->getAttr(s, found->front(), CKA_VALUE);
}

Result<SecretKeyInfo> Token::ensureSecretKey(std::string_view label) {
    if (label.empty()) {
        return Error::make("key.spec", "a key needs a label");
    }
    std::lock_guard once(m_impl->ensureMutex);
    auto op = m_impl->begin();
    if (!op) {
        return op.error();
    }
    const ck_session_handle_t s = (*op)->session();
    Impl::Lease& lease = (*op)->lease;
    std::string l(label);
    auto found = m_impl->findObjects(s, CKO_SECRET_KEY, KeyRef{l, std::nullopt});
    if (!found) {
        lease.markBroken();
        return found.error();
    }
    if (found->size() > 1) {
        return Error::make("key.ambiguous", "several secret keys '" + l + "' on the token");
    }
    if (found->size() == 1) {
        return m_impl->wrappingKey(s, found->front(), true);
    }

    ck_function_list* fl = m_impl->fl;
    // No public key to derive an identifier from: a random CKA_ID, so URIs can name the key.
    std::string id(16, '\0');
    ck_rv_t rv = fl->C_GenerateRandom(s, reinterpret_cast<unsigned char*>(id.data()), id.size());
    if (rv != CKR_OK) {
        lease.markBroken();
        return m_impl->fromRv(rv, "generate random");
    }
    ck_object_class_t cls = CKO_SECRET_KEY;
    ck_key_type_t keyType = CKK_AES;
    unsigned long valueLen = kAesKeyLen;
    unsigned char yes = 1;
    unsigned char no = 0;
    // Every usage but encrypt/decrypt is off explicitly: token defaults differ, and a wrapping
    // key that could wrap or derive would let its value out in another form.
    std::vector<ck_attribute> t = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_KEY_TYPE, &keyType, sizeof keyType},
        {CKA_VALUE_LEN, &valueLen, sizeof valueLen},
        {CKA_TOKEN, &yes, 1},
        {CKA_PRIVATE, &yes, 1},
        {CKA_SENSITIVE, &yes, 1},
        {CKA_EXTRACTABLE, &no, 1},
        {CKA_ENCRYPT, &yes, 1},
        {CKA_DECRYPT, &yes, 1},
        {CKA_SIGN, &no, 1},
        {CKA_VERIFY, &no, 1},
        {CKA_WRAP, &no, 1},
        {CKA_UNWRAP, &no, 1},
        {CKA_DERIVE, &no, 1},
        {CKA_LABEL, l.data(), l.size()},
        {CKA_ID, id.data(), id.size()},
    };
    ck_mechanism mech{};
    mech.mechanism = CKM_AES_KEY_GEN;
    ck_object_handle_t h = 0;
    rv = fl->C_GenerateKey(s, &mech, t.data(), t.size(), &h);
    if (rv != CKR_OK) {
        lease.markBroken();
        return m_impl->fromRv(rv, "generate secret key");
    }
    auto info = m_impl->wrappingKey(s, h, true);
    if (!info) {
        // The token did not make what we asked for: leave no unusable key under the label.
        fl->C_DestroyObject(s, h);
        return info.error();
    }
    info->generated = true;
    return info;
}

Result<std::string> Token::seal(std::string_view keyLabel, std::string_view plaintext,
                                std::string_view aad) {
    auto op = m_impl->begin();
    if (!op) {
        return op.error();
    }
    const ck_session_handle_t s = (*op)->session();
    Impl::Lease& lease = (*op)->lease;
    const std::string label(keyLabel);
    auto h = m_impl->secretKeyHandle(s, label);
    if (!h) {
        markBrokenOnTokenError(lease, h.error());
        return h.error();
    }
    ck_function_list* fl = m_impl->fl;
    // A fresh IV per seal: GCM under a repeated IV leaks the XOR of plaintexts and the key's
    // authentication subkey.
    unsigned char iv[kGcmIvLen];
    ck_rv_t rv = fl->C_GenerateRandom(s, iv, sizeof iv);
    if (rv != CKR_OK) {
        lease.markBroken();
        return m_impl->fromRv(rv, "generate IV");
    }
    unsigned char empty = 0;  // C_Encrypt refuses a null pointer even for no data
    ck_gcm_params params{};
    ck_mechanism mech{};
    gcmMechanism(mech, params, iv, aad, &empty);
    rv = fl->C_EncryptInit(s, &mech, *h);
    if (rv != CKR_OK) {
        m_impl->forgetSecretKey(label, rv);
        lease.markBroken();
        return m_impl->fromRv(rv, "seal init");
    }
    auto* in =
        plaintext.empty()
            ? &empty
            : const_cast<unsigned char*>(reinterpret_cast<const unsigned char*>(plaintext.data()));
    unsigned long len = 0;
    rv = fl->C_Encrypt(s, in, plaintext.size(), nullptr, &len);
    std::string out;
    if (rv == CKR_OK) {
        out.resize(kGcmIvLen + len);
        rv = fl->C_Encrypt(s, in, plaintext.size(),
                           reinterpret_cast<unsigned char*>(out.data()) + kGcmIvLen, &len);
    }
    if (rv != CKR_OK) {
        // A failed C_Encrypt ends the operation (PKCS#11 5.2); the session state is unknown.
        lease.markBroken();
        return m_impl->fromRv(rv, "seal");
    }
    if (len != plaintext.size() + kGcmTagLen) {
        return Error::make("token.error", "token returned AES-GCM output of an unexpected length");
    }
    std::memcpy(out.data(), iv, kGcmIvLen);
    out.resize(kGcmIvLen + len);
    return out;
}

Result<Secret> Token::unseal(std::string_view keyLabel, std::string_view sealed,
                             std::string_view aad) {
    if (sealed.size() < kGcmIvLen + kGcmTagLen) {
        return Error::make("crypto.invalid", "sealed secret is shorter than its IV and tag");
    }
    auto op = m_impl->begin();
    if (!op) {
        return op.error();
    }
    const ck_session_handle_t s = (*op)->session();
    Impl::Lease& lease = (*op)->lease;
    const std::string label(keyLabel);
    auto h = m_impl->secretKeyHandle(s, label);
    if (!h) {
        markBrokenOnTokenError(lease, h.error());
        return h.error();
    }
    ck_function_list* fl = m_impl->fl;
    unsigned char iv[kGcmIvLen];
    std::memcpy(iv, sealed.data(), kGcmIvLen);
    unsigned char empty = 0;
    ck_gcm_params params{};
    ck_mechanism mech{};
    gcmMechanism(mech, params, iv, aad, &empty);
    ck_rv_t rv = fl->C_DecryptInit(s, &mech, *h);
    if (rv != CKR_OK) {
        m_impl->forgetSecretKey(label, rv);
        lease.markBroken();
        return m_impl->fromRv(rv, "unseal init");
    }
    auto* in = const_cast<unsigned char*>(
        reinterpret_cast<const unsigned char*>(sealed.data() + kGcmIvLen));
    const unsigned long inLen = sealed.size() - kGcmIvLen;
    unsigned long len = 0;
    rv = fl->C_Decrypt(s, in, inLen, nullptr, &len);
    if (rv != CKR_OK) {
        lease.markBroken();
        return m_impl->fromRv(rv, "unseal");
    }
    // At least the tag's 16 bytes, so the buffer is on the heap (past the small-string buffer)
    // and moving it into the Secret hands over the one copy instead of leaving bytes behind.
    std::string out(std::max<std::size_t>(len, inLen), '\0');
    len = out.size();
    rv = fl->C_Decrypt(s, in, inLen, reinterpret_cast<unsigned char*>(out.data()), &len);
    if (rv != CKR_OK) {
        secureWipe(out.data(), out.size());
        lease.markBroken();
        return m_impl->decryptFailure(s, rv);
    }
    if (len != inLen - kGcmTagLen) {
        secureWipe(out.data(), out.size());
        return Error::make("token.error", "token returned AES-GCM output of an unexpected length");
    }
    out.resize(len);  // keeps the buffer; the Secret wipes its whole capacity
    return Secret(std::move(out));
}

bool Token::ready() {
    auto op = m_impl->begin();
    if (!op) {
        return false;
    }
    const ck_session_handle_t s = (*op)->session();
    Impl::Lease& lease = (*op)->lease;
    ck_session_info si{};
    ck_rv_t rv = m_impl->fl->C_GetSessionInfo(s, &si);
    if (rv != CKR_OK) {
        lease.markBroken();
        m_impl->fromRv(rv, "session info");
        return false;
    }
    return si.state == CKS_RW_USER_FUNCTIONS || si.state == CKS_RO_USER_FUNCTIONS;
}

}  // namespace kyso::hsm
