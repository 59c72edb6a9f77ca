// kyso_p11fault: a PKCS#11 module for the tests that forwards every call to a real module
// (SoftHSM2) and, on command, makes the token misbehave: pulled out, in error, sessions invalid,
// slow, or one-shot failures. The commands come from a control file that the tests rewrite while
// the process under test keeps running; see docs/FAULTS.md ("Token faults").
//
// Environment (read once, when the module is first asked for its function list):
//   KYSO_P11FAULT_MODULE   the real module (default: $KYSO_PKCS11_MODULE, else SoftHSM2's path)
//   KYSO_P11FAULT_CONTROL  the control file; absent or unset: plain forwarding
//   KYSO_P11FAULT_COUNTS   where the C_Login counters are written (default: CONTROL.counts)
//
// Control file, one command a line (later lines win for the token state):
//   ok | removed | session_invalid | device_error   the token's state
//   delay MS                                         sleep MS before every call
//   fail_next N CKR                                  the next N session calls return CKR
// The file is stat()ed on every call and re-read when its inode, size or mtime changes; write it
// to a temporary name and rename it over, so that a reader never sees half a file.
//
// The real module is loaded from a private copy, so that it is a separate instance with its own
// initialisation, sessions and login: a process (the hsm tests) that also uses SoftHSM2 directly
// keeps its sessions when the shim's token is pulled out and its module finalised.
//
// The PIN passes through C_Login untouched; it is never stored, compared or written anywhere.
#define CRYPTOKI_GNU 1
#include <dlfcn.h>
#include <fcntl.h>
#include <p11-kit/pkcs11.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

enum class Kind { Module, SlotList, Slot, Session };
enum class Mode { Ok, Removed, SessionInvalid, DeviceError };

struct Counts {
    unsigned long loginCalls = 0;      // C_Login calls that reached the shim
    unsigned long loginForwarded = 0;  // ... and were passed to the real token
    unsigned long loginOk = 0;         // ... which said CKR_OK
    unsigned long loginRejected = 0;   // ... which rejected the PIN (incorrect, invalid, locked)
    unsigned long loginOther = 0;      // ... any other result
    unsigned long resets = 0;          // re-insertions: the real sessions closed
};

struct State {
    std::mutex mu;
    std::string controlPath;
    std::string countsPath;
    ck_function_list* real = nullptr;
    void* dl = nullptr;
    std::string loadError;

    // The control file as last read.
    bool haveStat = false;
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    timespec mtime{};

    Mode mode = Mode::Ok;
    unsigned long delayMs = 0;
    unsigned long failNext = 0;
    ck_rv_t failRv = CKR_OK;
    Counts counts;
};

State* g_state = nullptr;

State& state() {
    static State* s = g_state = new State();
    return *s;
}

// When libp11 unloads the shim (dlclose when its last user goes; the hsm tests check that) or the
// process ends, the state goes with it: a later load starts from a new State, continuing the
// counters from the counts file. Nothing calls a PKCS#11 module after it was unloaded, and the
// services under test stop their threads before they exit.
__attribute__((destructor)) void freeState() {
    delete g_state;
    g_state = nullptr;
}

ck_rv_t parseRv(const std::string& s) {
    static const struct {
        const char* name;
        ck_rv_t rv;
    } names[] = {
        {"CKR_GENERAL_ERROR", CKR_GENERAL_ERROR},
        {"CKR_FUNCTION_FAILED", CKR_FUNCTION_FAILED},
        {"CKR_DEVICE_ERROR", CKR_DEVICE_ERROR},
        {"CKR_DEVICE_MEMORY", CKR_DEVICE_MEMORY},
        {"CKR_DEVICE_REMOVED", CKR_DEVICE_REMOVED},
        {"CKR_SESSION_HANDLE_INVALID", CKR_SESSION_HANDLE_INVALID},
        {"CKR_SESSION_CLOSED", CKR_SESSION_CLOSED},
        {"CKR_TOKEN_NOT_PRESENT", CKR_TOKEN_NOT_PRESENT},
        {"CKR_USER_NOT_LOGGED_IN", CKR_USER_NOT_LOGGED_IN},
        {"CKR_PIN_INCORRECT", CKR_PIN_INCORRECT},
        {"CKR_PIN_LOCKED", CKR_PIN_LOCKED},
    };
    for (const auto& n : names) {
        if (s == n.name) {
            return n.rv;
        }
    }
    char* end = nullptr;
    const unsigned long v = std::strtoul(s.c_str(), &end, 0);
    return end != nullptr && *end == '\0' && !s.empty() ? v : CKR_GENERAL_ERROR;
}

void writeCounts(State& st) {
    if (st.countsPath.empty()) {
        return;
    }
    const Counts& c = st.counts;
    std::ostringstream o;
    o << "login_calls " << c.loginCalls << "\nlogin_forwarded " << c.loginForwarded << "\nlogin_ok "
      << c.loginOk << "\nlogin_rejected " << c.loginRejected << "\nlogin_other " << c.loginOther
      << "\nresets " << c.resets << "\n";
    const std::string tmp = st.countsPath + ".tmp";
    {
        std::ofstream f(tmp, std::ios::trunc);
        f << o.str();
        if (!f) {
            return;
        }
    }
    std::rename(tmp.c_str(), st.countsPath.c_str());
}

// A re-inserted token has none of the sessions (nor the login) it had before.
void resetRealSessions(State& st) {
    unsigned long n = 0;
    if (st.real->C_GetSlotList(0, nullptr, &n) == CKR_OK && n > 0) {
        std::vector<ck_slot_id_t> ids(n);
        if (st.real->C_GetSlotList(0, ids.data(), &n) == CKR_OK) {
            for (unsigned long i = 0; i < n; ++i) {
                st.real->C_CloseAllSessions(ids[i]);
            }
        }
    }
    ++st.counts.resets;
    writeCounts(st);
}

// Requires st.mu. Re-reads the control file if it changed.
void refresh(State& st) {
    if (st.controlPath.empty()) {
        return;
    }
    struct stat sb {};
    if (::stat(st.controlPath.c_str(), &sb) != 0) {
        if (st.haveStat) {
            st.haveStat = false;
            const bool faulted = st.mode != Mode::Ok;
            st.mode = Mode::Ok;
            st.delayMs = 0;
            st.failNext = 0;
            if (faulted) {
                resetRealSessions(st);
            }
        }
        return;
    }
    if (st.haveStat && sb.st_dev == st.dev && sb.st_ino == st.ino && sb.st_size == st.size &&
        sb.st_mtim.tv_sec == st.mtime.tv_sec && sb.st_mtim.tv_nsec == st.mtime.tv_nsec) {
        return;
    }
    std::ifstream f(st.controlPath);
    if (!f) {
        return;  // replaced under us; the next call sees the new file
    }
    st.haveStat = true;
    st.dev = sb.st_dev;
    st.ino = sb.st_ino;
    st.size = sb.st_size;
    st.mtime = sb.st_mtim;
    Mode mode = Mode::Ok;
    unsigned long delay = 0;
    unsigned long failNext = 0;
    ck_rv_t failRv = CKR_OK;
    std::string line;
    while (std::getline(f, line)) {
        std::istringstream in(line);
        std::string cmd;
        in >> cmd;
        if (cmd == "ok") {
            mode = Mode::Ok;
        } else if (cmd == "removed") {
            mode = Mode::Removed;
        } else if (cmd == "session_invalid") {
            mode = Mode::SessionInvalid;
        } else if (cmd == "device_error") {
            mode = Mode::DeviceError;
        } else if (cmd == "delay") {
            in >> delay;
        } else if (cmd == "fail_next") {
            unsigned long n = 0;
            std::string rv;
            in >> n >> rv;
            failNext = n;
            failRv = parseRv(rv);
        }
    }
    const bool reinserted = st.mode != Mode::Ok && mode == Mode::Ok;
    st.mode = mode;
    st.delayMs = delay;
    st.failNext = failNext;
    st.failRv = failRv;
    if (reinserted) {
        resetRealSessions(st);
    }
}

// What happens to a call of this kind now: CKR_OK to forward it, else the code to return.
ck_rv_t gate(Kind kind) {
    State& st = state();
    unsigned long delay = 0;
    ck_rv_t rv = CKR_OK;
    {
        std::lock_guard lk(st.mu);
        refresh(st);
        delay = st.delayMs;
        if (kind == Kind::Module) {
            // C_Initialize, C_Finalize, C_GetInfo: the library is there even without a token.
        } else if (st.mode == Mode::DeviceError) {
            rv = CKR_DEVICE_ERROR;
        } else if (st.mode == Mode::Removed && kind == Kind::Slot) {
            rv = CKR_TOKEN_NOT_PRESENT;
        } else if (st.mode == Mode::Removed && kind == Kind::Session) {
            rv = CKR_DEVICE_REMOVED;
        } else if (st.mode == Mode::SessionInvalid && kind == Kind::Session) {
            rv = CKR_SESSION_HANDLE_INVALID;
        } else if (st.failNext > 0 && kind == Kind::Session) {
            --st.failNext;
            rv = st.failRv;
        }
    }
    if (delay > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    }
    return rv;
}

Mode currentMode() {
    std::lock_guard lk(state().mu);
    return state().mode;
}

ck_function_list* real() {
    return state().real;
}

// The generic forwarder: the same signature as the real entry, gated by its kind.
template <typename F>
struct Forward;
template <typename... A>
struct Forward<ck_rv_t (*)(A...)> {
    template <auto Member, Kind K>
    static ck_rv_t call(A... a) {
        const ck_rv_t rv = gate(K);
        if (rv != CKR_OK) {
            return rv;
        }
        return (real()->*Member)(a...);
    }
};

ck_rv_t getSlotList(unsigned char tokenPresent, ck_slot_id_t* list, unsigned long* count) {
    const ck_rv_t rv = gate(Kind::SlotList);
    if (rv != CKR_OK) {
        return rv;
    }
    if (tokenPresent != 0 && currentMode() == Mode::Removed) {
        if (count == nullptr) {
            return CKR_ARGUMENTS_BAD;
        }
        *count = 0;
        return CKR_OK;
    }
    return real()->C_GetSlotList(tokenPresent, list, count);
}

ck_rv_t getSlotInfo(ck_slot_id_t slot, ck_slot_info* info) {
    const ck_rv_t rv = gate(Kind::SlotList);  // the slot is there without its token
    if (rv != CKR_OK) {
        return rv;
    }
    const ck_rv_t r = real()->C_GetSlotInfo(slot, info);
    if (r == CKR_OK && info != nullptr && currentMode() == Mode::Removed) {
        info->flags &= ~static_cast<ck_flags_t>(CKF_TOKEN_PRESENT);
    }
    return r;
}

ck_rv_t login(ck_session_handle_t session, ck_user_type_t user, unsigned char* pin,
              unsigned long pinLen) {
    State& st = state();
    {
        std::lock_guard lk(st.mu);
        ++st.counts.loginCalls;
        writeCounts(st);
    }
    const ck_rv_t rv = gate(Kind::Session);
    if (rv != CKR_OK) {
        return rv;
    }
    const ck_rv_t r = real()->C_Login(session, user, pin, pinLen);
    std::lock_guard lk(st.mu);
    ++st.counts.loginForwarded;
    if (r == CKR_OK) {
        ++st.counts.loginOk;
    } else if (r == CKR_PIN_INCORRECT || r == CKR_PIN_INVALID || r == CKR_PIN_LEN_RANGE ||
               r == CKR_PIN_LOCKED) {
        ++st.counts.loginRejected;
    } else {
        ++st.counts.loginOther;
    }
    writeCounts(st);
    return r;
}

ck_function_list g_list{};

ck_rv_t getFunctionList(ck_function_list** out);

#define KYSO_FWD(name, kind)                                                               \
    g_list.name =                                                                          \
        &Forward<decltype(ck_function_list::name)>::template call<&ck_function_list::name, \
                                                                  Kind::kind>

void buildList() {
    g_list.version = {CRYPTOKI_VERSION_MAJOR, CRYPTOKI_VERSION_MINOR};
    KYSO_FWD(C_Initialize, Module);
    KYSO_FWD(C_Finalize, Module);
    KYSO_FWD(C_GetInfo, Module);
    g_list.C_GetFunctionList = &getFunctionList;
    g_list.C_GetSlotList = &getSlotList;
    g_list.C_GetSlotInfo = &getSlotInfo;
    KYSO_FWD(C_GetTokenInfo, Slot);
    KYSO_FWD(C_GetMechanismList, Slot);
    KYSO_FWD(C_GetMechanismInfo, Slot);
    KYSO_FWD(C_InitToken, Slot);
    KYSO_FWD(C_InitPIN, Session);
    KYSO_FWD(C_SetPIN, Session);
    KYSO_FWD(C_OpenSession, Slot);
    KYSO_FWD(C_CloseSession, Session);
    KYSO_FWD(C_CloseAllSessions, Slot);
    KYSO_FWD(C_GetSessionInfo, Session);
    KYSO_FWD(C_GetOperationState, Session);
    KYSO_FWD(C_SetOperationState, Session);
    g_list.C_Login = &login;
    KYSO_FWD(C_Logout, Session);
    KYSO_FWD(C_CreateObject, Session);
    KYSO_FWD(C_CopyObject, Session);
    KYSO_FWD(C_DestroyObject, Session);
    KYSO_FWD(C_GetObjectSize, Session);
    KYSO_FWD(C_GetAttributeValue, Session);
    KYSO_FWD(C_SetAttributeValue, Session);
    KYSO_FWD(C_FindObjectsInit, Session);
    KYSO_FWD(C_FindObjects, Session);
    KYSO_FWD(C_FindObjectsFinal, Session);
    KYSO_FWD(C_EncryptInit, Session);
    KYSO_FWD(C_Encrypt, Session);
    KYSO_FWD(C_EncryptUpdate, Session);
    KYSO_FWD(C_EncryptFinal, Session);
    KYSO_FWD(C_DecryptInit, Session);
    KYSO_FWD(C_Decrypt, Session);
    KYSO_FWD(C_DecryptUpdate, Session);
    KYSO_FWD(C_DecryptFinal, Session);
    KYSO_FWD(C_DigestInit, Session);
    KYSO_FWD(C_Digest, Session);
    KYSO_FWD(C_DigestUpdate, Session);
    KYSO_FWD(C_DigestKey, Session);
    KYSO_FWD(C_DigestFinal, Session);
    KYSO_FWD(C_SignInit, Session);
    KYSO_FWD(C_Sign, Session);
    KYSO_FWD(C_SignUpdate, Session);
    KYSO_FWD(C_SignFinal, Session);
    KYSO_FWD(C_SignRecoverInit, Session);
    KYSO_FWD(C_SignRecover, Session);
    KYSO_FWD(C_VerifyInit, Session);
    KYSO_FWD(C_Verify, Session);
    KYSO_FWD(C_VerifyUpdate, Session);
    KYSO_FWD(C_VerifyFinal, Session);
    KYSO_FWD(C_VerifyRecoverInit, Session);
    KYSO_FWD(C_VerifyRecover, Session);
    KYSO_FWD(C_DigestEncryptUpdate, Session);
    KYSO_FWD(C_DecryptDigestUpdate, Session);
    KYSO_FWD(C_SignEncryptUpdate, Session);
    KYSO_FWD(C_DecryptVerifyUpdate, Session);
    KYSO_FWD(C_GenerateKey, Session);
    KYSO_FWD(C_GenerateKeyPair, Session);
    KYSO_FWD(C_WrapKey, Session);
    KYSO_FWD(C_UnwrapKey, Session);
    KYSO_FWD(C_DeriveKey, Session);
    KYSO_FWD(C_SeedRandom, Session);
    KYSO_FWD(C_GenerateRandom, Session);
    KYSO_FWD(C_GetFunctionStatus, Session);
    KYSO_FWD(C_CancelFunction, Session);
    KYSO_FWD(C_WaitForSlotEvent, Module);
}

#undef KYSO_FWD

// A private copy of the real module: dlopen() of another file is another instance.
void* loadPrivateCopy(const std::string& path, std::string& error) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        error = "cannot read " + path;
        return nullptr;
    }
    const char* tmpdir = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp") +
                       "/kyso-p11fault-XXXXXX";
    const int fd = ::mkstemp(tmpl.data());
    if (fd < 0) {
        error = "cannot create a copy of " + path;
        return nullptr;
    }
    std::ostringstream data;
    data << in.rdbuf();
    const std::string bytes = data.str();
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n <= 0) {
            break;
        }
        done += static_cast<std::size_t>(n);
    }
    ::close(fd);
    void* dl = done == bytes.size() ? ::dlopen(tmpl.c_str(), RTLD_NOW | RTLD_LOCAL) : nullptr;
    if (dl == nullptr) {
        const char* e = ::dlerror();
        error = "cannot load " + path + (e != nullptr ? std::string(": ") + e : "");
    }
    ::unlink(tmpl.c_str());  // the mapping stays
    return dl;
}

void load() {
    State& st = state();
    const char* control = std::getenv("KYSO_P11FAULT_CONTROL");
    st.controlPath = control != nullptr ? control : "";
    const char* counts = std::getenv("KYSO_P11FAULT_COUNTS");
    st.countsPath = counts != nullptr         ? counts
                    : !st.controlPath.empty() ? st.controlPath + ".counts"
                                              : "";
    const char* m = std::getenv("KYSO_P11FAULT_MODULE");
    if (m == nullptr || *m == '\0') {
        m = std::getenv("KYSO_PKCS11_MODULE");
    }
    const std::string path =
        m != nullptr && *m != '\0' ? std::string(m) : "/usr/lib/softhsm/libsofthsm2.so";
    st.dl = loadPrivateCopy(path, st.loadError);
    if (st.dl == nullptr) {
        return;
    }
    auto getList =
        reinterpret_cast<ck_rv_t (*)(ck_function_list**)>(::dlsym(st.dl, "C_GetFunctionList"));
    if (getList == nullptr || getList(&st.real) != CKR_OK || st.real == nullptr) {
        st.real = nullptr;
        st.loadError = "no C_GetFunctionList in " + path;
        return;
    }
    buildList();
    std::lock_guard lk(st.mu);
    // The counters continue those of an earlier load of the shim in this process (a module is
    // unloaded when its last user goes), so tests can take differences across Tokens.
    std::ifstream old(st.countsPath);
    std::string name;
    unsigned long v = 0;
    Counts& c = st.counts;
    const std::pair<const char*, unsigned long*> fields[] = {
        {"login_calls", &c.loginCalls}, {"login_forwarded", &c.loginForwarded},
        {"login_ok", &c.loginOk},       {"login_rejected", &c.loginRejected},
        {"login_other", &c.loginOther}, {"resets", &c.resets}};
    while (old >> name >> v) {
        for (const auto& [key, field] : fields) {
            if (name == key) {
                *field = v;
            }
        }
    }
    writeCounts(st);
}

ck_rv_t getFunctionList(ck_function_list** out) {
    static std::once_flag once;
    std::call_once(once, load);
    if (out == nullptr) {
        return CKR_ARGUMENTS_BAD;
    }
    if (state().real == nullptr) {
        std::fprintf(stderr, "kyso_p11fault: %s\n", state().loadError.c_str());
        return CKR_GENERAL_ERROR;
    }
    *out = &g_list;
    return CKR_OK;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) ck_rv_t C_GetFunctionList(
    ck_function_list** out) {
    return getFunctionList(out);
}
