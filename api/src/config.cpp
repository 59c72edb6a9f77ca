#include "kyso/api/config.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "kyso/policies/authorization.h"

namespace kyso::api {

namespace fs = std::filesystem;

const CredentialConfig* Config::findCredential(const std::string& id) const {
    for (const auto& c : credentials) {
        if (c.id == id) {
            return &c;
        }
    }
    return nullptr;
}

namespace {

std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t\r");
    if (b == std::string::npos) {
        return "";
    }
    const auto e = s.find_last_not_of(" \t\r");
    return s.substr(b, e - b + 1);
}

std::string signerNumber(double v) {
    std::ostringstream o;
    o << v;
    return o.str();
}

std::vector<std::string> splitList(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ',')) {
        item = trim(item);
        if (!item.empty()) {
            out.push_back(item);
        }
    }
    return out;
}

struct Entry {
    std::string value;
    int line = 0;
};

// A small INI reader: "[section]", "key = value", "#" or ";" comments. Kept here rather than
// Poco's IniFileConfiguration because errors must name the line.
struct Ini {
    std::map<std::string, std::map<std::string, Entry>> sections;
    std::vector<std::string> order;
};

}  // namespace

Result<Config> loadConfig(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        return Error::make("config.invalid", "cannot read configuration file " + path);
    }
    const fs::path base = fs::absolute(path).parent_path();
    auto bad = [&](int line, const std::string& what) {
        return Error::make("config.invalid",
                           path + (line > 0 ? ":" + std::to_string(line) : "") + ": " + what);
    };
    Ini ini;
    std::string section;
    std::string raw;
    int lineNo = 0;
    while (std::getline(in, raw)) {
        ++lineNo;
        const std::string line = trim(raw);
        if (line.empty() || line[0] == '#' || line[0] == ';') {
            continue;
        }
        if (line.front() == '[') {
            if (line.back() != ']' || line.size() < 3) {
                return bad(lineNo, "malformed section header");
            }
            section = trim(line.substr(1, line.size() - 2));
            if (ini.sections.count(section)) {
                return bad(lineNo, "section [" + section + "] appears twice");
            }
            ini.sections[section];
            ini.order.push_back(section);
            continue;
        }
        const auto eq = line.find('=');
        if (eq == std::string::npos || section.empty()) {
            return bad(lineNo, "expected 'key = value' inside a section");
        }
        const std::string key = trim(line.substr(0, eq));
        auto& sec = ini.sections[section];
        if (sec.count(key)) {
            return bad(lineNo, "key '" + key + "' appears twice in [" + section + "]");
        }
        sec[key] = Entry{trim(line.substr(eq + 1)), lineNo};
    }

    Config c;
    c.path = path;
    auto resolve = [&](const std::string& p) {
        return p.empty() || fs::path(p).is_absolute() ? p : (base / p).lexically_normal().string();
    };
    static const std::map<std::string, std::set<std::string>> known = {
        {"server",
         {"listen", "certificate", "privateKey", "maxBodyBytes", "threads", "spoolDir", "clientCa",
          "socketTimeoutSeconds"}},
        {"pkcs11", {"module", "token", "serial", "pin", "softhsm2Conf", "maxSessions"}},
        {"database", {"path"}},
        {"tsa",
         {"credential", "policy", "otherPolicies", "digests", "accuracySeconds", "accuracyMillis",
          "includeName", "trustAnchors"}},
        {"timestamping", {"url", "trustAnchors", "tlsCaFile", "timeoutSeconds", "reserveBytes"}},
        {"audit", {"credential", "checkpointEvery"}},
        {"policy", {"file"}},
        {"citizens", {"ca", "publicUrl", "validityDays", "keyType", "sadLifetimeSeconds"}},
        {"validation", {"trustAnchors", "intermediates", "timeoutSeconds", "tlsCaFile"}},
    };
    static const std::set<std::string> appearanceKeys = {
        "image", "imageWidthMm", "layout", "font",      "fontSize", "text",
        "name",  "title",        "agency", "textColor", "rect",     "page"};
    static const std::set<std::string> credentialKeys = {"kind",   "key",    "certificate", "chain",
                                                         "owners", "scheme", "crlDays"};
    for (const auto& name : ini.order) {
        const auto& sec = ini.sections[name];
        if (name.rfind("client.", 0) == 0 && name.size() > 7) {
            for (const auto& [key, e] : sec) {
                if (key != "certificate" && key != "role") {
                    return bad(e.line, "unknown key '" + key + "' in [" + name + "]");
                }
            }
            continue;
        }
        const bool isCredential = name.rfind("credential.", 0) == 0 && name.size() > 11;
        const bool isAppearance = name.rfind("appearance.", 0) == 0 && name.size() > 11;
        auto k = known.find(name);
        if (!isCredential && !isAppearance && k == known.end()) {
            return bad(0, "unknown section [" + name + "]");
        }
        for (const auto& [key, e] : sec) {
            const bool ok = isCredential   ? credentialKeys.count(key) > 0
                            : isAppearance ? appearanceKeys.count(key) > 0
                                           : k->second.count(key) > 0;
            if (!ok) {
                return bad(e.line, "unknown key '" + key + "' in [" + name + "]");
            }
        }
    }
    auto get = [&](const std::string& s, const std::string& k) -> const Entry* {
        auto si = ini.sections.find(s);
        if (si == ini.sections.end()) {
            return nullptr;
        }
        auto ki = si->second.find(k);
        return ki == si->second.end() ? nullptr : &ki->second;
    };
    auto number = [&](const Entry* e, std::uint64_t min, std::uint64_t max,
                      const std::string& what) -> Result<std::uint64_t> {
        try {
            std::size_t used = 0;
            const unsigned long long v = std::stoull(e->value, &used);
            if (used != e->value.size() || v < min || v > max) {
                throw std::out_of_range(what);
            }
            return static_cast<std::uint64_t>(v);
        } catch (const std::exception&) {
            return bad(e->line, what + " must be a number from " + std::to_string(min) + " to " +
                                    std::to_string(max));
        }
    };

    if (const Entry* e = get("server", "listen")) {
        const auto colon = e->value.rfind(':');
        if (colon == std::string::npos) {
            return bad(e->line, "listen must be HOST:PORT");
        }
        c.listenHost = e->value.substr(0, colon);
        Entry port{e->value.substr(colon + 1), e->line};
        auto p = number(&port, 0, 65535, "the listen port (0: any free port)");
        if (!p) {
            return p.error();
        }
        c.listenPort = static_cast<std::uint16_t>(*p);
    }
    if (const Entry* e = get("server", "certificate")) {
        c.tlsCertificate = resolve(e->value);
    }
    if (const Entry* e = get("server", "privateKey")) {
        c.tlsPrivateKey = resolve(e->value);
    }
    if (const Entry* e = get("server", "maxBodyBytes")) {
        auto v = number(e, 1024, 1ull << 40, "maxBodyBytes");
        if (!v) {
            return v.error();
        }
        c.maxBodyBytes = *v;
    }
    if (const Entry* e = get("server", "threads")) {
        auto v = number(e, 1, 1024, "threads");
        if (!v) {
            return v.error();
        }
        c.threads = static_cast<unsigned>(*v);
    }
    c.spoolDir = resolve(get("server", "spoolDir") ? get("server", "spoolDir")->value : "spool");
    if (const Entry* e = get("server", "socketTimeoutSeconds")) {
        auto v = number(e, 1, 3600, "socketTimeoutSeconds");
        if (!v) {
            return v.error();
        }
        c.socketTimeoutSeconds = static_cast<int>(*v);
    }
    if (const Entry* e = get("server", "clientCa")) {
        c.clientCa = resolve(e->value);
    }
    for (const auto& name : ini.order) {
        if (name.rfind("client.", 0) != 0 || name.size() <= 7) {
            continue;
        }
        const Entry* cert = get(name, "certificate");
        const Entry* role = get(name, "role");
        if (cert == nullptr || role == nullptr) {
            return bad(0, "[" + name + "] needs certificate and role");
        }
        if (!policies::parseRole(role->value)) {
            return bad(role->line, "role must be admin, officer, clerk or portal");
        }
        if (c.clientCa.empty()) {
            return bad(0, "[" + name + "] needs [server] clientCa, the CA of client certificates");
        }
        c.clients.push_back({name.substr(7), resolve(cert->value), role->value});
    }

    const Entry* module = get("pkcs11", "module");
    if (module == nullptr) {
        return bad(0, "[pkcs11] module is required");
    }
    c.token.modulePath = resolve(module->value);
    if (const Entry* e = get("pkcs11", "token")) {
        c.token.tokenLabel = e->value;
    }
    if (const Entry* e = get("pkcs11", "serial")) {
        c.token.tokenSerial = e->value;
    }
    const Entry* pin = get("pkcs11", "pin");
    if (pin == nullptr) {
        return bad(0, "[pkcs11] pin is required (file:PATH or env:NAME)");
    }
    if (pin->value.rfind("env:", 0) == 0) {
        c.token.pinSource = pin->value;
    } else {
        const std::string p = pin->value.rfind("file:", 0) == 0 ? pin->value.substr(5) : pin->value;
        c.token.pinSource = "file:" + resolve(p);
    }
    if (const Entry* e = get("pkcs11", "softhsm2Conf")) {
        c.softhsm2Conf = resolve(e->value);
    }
    if (const Entry* e = get("pkcs11", "maxSessions")) {
        auto v = number(e, 1, 1024, "maxSessions");
        if (!v) {
            return v.error();
        }
        c.token.maxSessions = static_cast<unsigned>(*v);
    }
    const Entry* db = get("database", "path");
    c.databasePath = resolve(db != nullptr ? db->value : "kyso.db");

    static const std::set<std::string> kinds = {"officer", "seal", "receipt-seal",
                                                "tsa",     "ca",   "audit"};
    for (const auto& name : ini.order) {
        if (name.rfind("credential.", 0) != 0) {
            continue;
        }
        CredentialConfig cc;
        cc.id = name.substr(11);
        const Entry* kind = get(name, "kind");
        const Entry* key = get(name, "key");
        const Entry* cert = get(name, "certificate");
        if (kind == nullptr || key == nullptr || cert == nullptr) {
            return bad(0, "[" + name + "] needs kind, key and certificate");
        }
        if (!kinds.count(kind->value)) {
            return bad(kind->line, "kind must be officer, seal, receipt-seal, tsa, ca or audit");
        }
        cc.kind = kind->value;
        cc.key = key->value;
        cc.certificate = resolve(cert->value);
        if (const Entry* e = get(name, "chain")) {
            cc.chain = resolve(e->value);
        }
        if (const Entry* e = get(name, "owners")) {
            cc.owners = splitList(e->value);
        }
        if (const Entry* e = get(name, "crlDays")) {
            auto v = number(e, 1, 366, "crlDays");
            if (!v) {
                return v.error();
            }
            cc.crlDays = static_cast<int>(*v);
        }
        if (const Entry* e = get(name, "scheme")) {
            if (e->value != "pkcs1" && e->value != "pss" && e->value != "ecdsa") {
                return bad(e->line, "scheme must be pkcs1, pss or ecdsa");
            }
            cc.scheme = e->value;
        }
        c.credentials.push_back(std::move(cc));
    }
    for (const auto& name : ini.order) {
        if (name.rfind("appearance.", 0) != 0) {
            continue;
        }
        const std::string id = name.substr(11);
        if (c.findCredential(id) == nullptr) {
            return bad(0, "[" + name + "] names no [credential." + id + "]");
        }
        AppearanceConfig a;
        auto decimal = [&](const Entry* e, double min, double max, const std::string& what,
                           double* out) -> Status {
            char* end = nullptr;
            const double v = std::strtod(e->value.c_str(), &end);
            if (e->value.empty() || *end != '\0' || !(v >= min && v <= max)) {
                return bad(e->line, what + " must be a number from " + signerNumber(min) + " to " +
                                        signerNumber(max));
            }
            *out = v;
            return Ok{};
        };
        if (const Entry* e = get(name, "image")) {
            a.image = resolve(e->value);
        }
        if (const Entry* e = get(name, "imageWidthMm")) {
            if (auto s = decimal(e, 1, 500, "imageWidthMm", &a.imageWidthMm); !s) {
                return s.error();
            }
        }
        if (const Entry* e = get(name, "layout")) {
            if (!signer::parseAppearanceLayout(e->value)) {
                return bad(e->line,
                           "layout must be image-left, image-above, image-only, text-only or seal");
            }
            a.layout = e->value;
        }
        if (const Entry* e = get(name, "font")) {
            a.font = resolve(e->value);
        }
        if (const Entry* e = get(name, "fontSize")) {
            if (auto s = decimal(e, 4, 72, "fontSize", &a.fontSize); !s) {
                return s.error();
            }
        }
        if (const Entry* e = get(name, "text")) {
            std::stringstream lines(e->value);
            std::string l;
            while (std::getline(lines, l, '|')) {
                a.text.push_back(trim(l));
            }
        }
        if (const Entry* e = get(name, "name")) {
            a.name = e->value;
        }
        if (const Entry* e = get(name, "title")) {
            a.title = e->value;
        }
        if (const Entry* e = get(name, "agency")) {
            a.agency = e->value;
        }
        if (const Entry* e = get(name, "textColor")) {
            const bool hex =
                e->value.size() == 7 && e->value[0] == '#' &&
                e->value.find_first_not_of("0123456789abcdefABCDEF", 1) == std::string::npos;
            if (!hex) {
                return bad(e->line, "textColor must be #RRGGBB");
            }
            a.textColor = e->value;
        }
        if (const Entry* e = get(name, "rect")) {
            a.rect = signer::parsePdfRect(e->value);
            if (!a.rect) {
                return bad(e->line, "rect must be x,y,w,h in points (w and h positive)");
            }
        }
        if (const Entry* e = get(name, "page")) {
            auto v = number(e, 1, 1000000, "page");
            if (!v) {
                return v.error();
            }
            a.page = static_cast<int>(*v);
        }
        c.appearances[id] = std::move(a);
    }
    if (ini.sections.count("tsa")) {
        TsaConfig t;
        const Entry* cred = get("tsa", "credential");
        if (cred == nullptr) {
            return bad(0, "[tsa] credential is required");
        }
        const CredentialConfig* cc = c.findCredential(cred->value);
        if (cc == nullptr || cc->kind != "tsa") {
            return bad(cred->line, "[tsa] credential must name a [credential.ID] of kind tsa");
        }
        t.credential = cred->value;
        const Entry* anchors = get("tsa", "trustAnchors");
        if (anchors == nullptr) {
            return bad(0, "[tsa] trustAnchors is required (the PEM roots of the TSA certificate)");
        }
        t.trustAnchors = resolve(anchors->value);
        if (const Entry* e = get("tsa", "policy")) {
            t.policy = e->value;
        }
        if (const Entry* e = get("tsa", "otherPolicies")) {
            t.otherPolicies = splitList(e->value);
        }
        if (const Entry* e = get("tsa", "digests")) {
            t.digests.clear();
            for (const auto& name : splitList(e->value)) {
                auto h = hsm::parseHashAlg(name);
                if (!h) {
                    return bad(e->line, "digests: SHA-256, SHA-384 or SHA-512");
                }
                t.digests.push_back(*h);
            }
            if (t.digests.empty()) {
                return bad(e->line, "digests: at least one of SHA-256, SHA-384, SHA-512");
            }
        }
        if (const Entry* e = get("tsa", "accuracySeconds")) {
            auto v = number(e, 0, 3600, "accuracySeconds");
            if (!v) {
                return v.error();
            }
            t.accuracySeconds = static_cast<int>(*v);
        }
        if (const Entry* e = get("tsa", "accuracyMillis")) {
            auto v = number(e, 0, 999, "accuracyMillis");
            if (!v) {
                return v.error();
            }
            t.accuracyMillis = static_cast<int>(*v);
        }
        if (const Entry* e = get("tsa", "includeName")) {
            if (e->value != "true" && e->value != "false") {
                return bad(e->line, "includeName must be true or false");
            }
            t.includeName = e->value == "true";
        }
        c.tsa = t;
    }
    if (ini.sections.count("timestamping")) {
        TimestampingConfig t;
        const Entry* url = get("timestamping", "url");
        const Entry* anchors = get("timestamping", "trustAnchors");
        if (url == nullptr || anchors == nullptr) {
            return bad(0, "[timestamping] needs url and trustAnchors");
        }
        t.url = url->value;
        t.trustAnchors = resolve(anchors->value);
        if (const Entry* e = get("timestamping", "tlsCaFile")) {
            t.tlsCaFile = resolve(e->value);
        }
        if (const Entry* e = get("timestamping", "timeoutSeconds")) {
            auto v = number(e, 1, 300, "timeoutSeconds");
            if (!v) {
                return v.error();
            }
            t.timeoutSeconds = static_cast<int>(*v);
        }
        if (const Entry* e = get("timestamping", "reserveBytes")) {
            auto v = number(e, 1024, 1024 * 1024, "reserveBytes");
            if (!v) {
                return v.error();
            }
            t.reserveBytes = static_cast<std::size_t>(*v);
        }
        c.timestamping = t;
    }
    if (const Entry* e = get("policy", "file")) {
        c.signingPolicyFile = resolve(e->value);
        std::ifstream in(c.signingPolicyFile, std::ios::binary);
        if (!in) {
            return bad(e->line, "cannot read the policy file " + c.signingPolicyFile);
        }
        std::stringstream text;
        text << in.rdbuf();
        auto policy = policies::parseSigningPolicy(text.str(), c.signingPolicyFile);
        if (!policy) {
            // The service does not start on a bad policy; the error names its file and line.
            return Error::make("config.invalid", policy.error().detail);
        }
        c.signing = *policy;
    }
    if (ini.sections.count("audit")) {
        AuditConfig a;
        const Entry* cred = get("audit", "credential");
        if (cred == nullptr) {
            return bad(0, "[audit] needs credential");
        }
        a.credential = cred->value;
        const CredentialConfig* cc = c.findCredential(a.credential);
        if (cc == nullptr || cc->kind != "audit") {
            return bad(cred->line, "[audit] credential must name a [credential.ID] of kind audit");
        }
        if (const Entry* e = get("audit", "checkpointEvery")) {
            auto n = number(e, 1, 1000000, "checkpointEvery");
            if (!n) {
                return n.error();
            }
            a.checkpointEvery = *n;
        }
        c.audit = a;
    }
    if (ini.sections.count("citizens")) {
        CitizensConfig z;
        const Entry* ca = get("citizens", "ca");
        const Entry* url = get("citizens", "publicUrl");
        if (ca == nullptr || url == nullptr) {
            return bad(0, "[citizens] needs ca and publicUrl");
        }
        const CredentialConfig* cc = c.findCredential(ca->value);
        if (cc == nullptr || cc->kind != "ca") {
            return bad(ca->line, "[citizens] ca must name a [credential.ID] of kind ca");
        }
        z.ca = ca->value;
        if (url->value.rfind("https://", 0) != 0 && url->value.rfind("http://", 0) != 0) {
            return bad(url->line, "publicUrl must be an http(s) URL");
        }
        z.publicUrl = url->value;
        while (!z.publicUrl.empty() && z.publicUrl.back() == '/') {
            z.publicUrl.pop_back();
        }
        if (const Entry* e = get("citizens", "validityDays")) {
            auto n = number(e, 1, 3650, "validityDays");
            if (!n) {
                return n.error();
            }
            z.validityDays = static_cast<int>(*n);
        }
        if (const Entry* e = get("citizens", "keyType")) {
            if (e->value != "RSA-2048" && e->value != "RSA-3072" && e->value != "EC-P256" &&
                e->value != "EC-P384") {
                return bad(e->line, "keyType must be RSA-2048, RSA-3072, EC-P256 or EC-P384");
            }
            z.keyType = e->value;
        }
        if (const Entry* e = get("citizens", "sadLifetimeSeconds")) {
            auto n = number(e, 1, 3600, "sadLifetimeSeconds");
            if (!n) {
                return n.error();
            }
            z.sadLifetimeSeconds = static_cast<int>(*n);
        }
        c.citizens = z;
    }
    if (ini.sections.count("validation")) {
        ValidationConfig& v = c.validation;
        const Entry* anchors = get("validation", "trustAnchors");
        if (anchors == nullptr && c.signing.validation.trustAnchors.empty()) {
            return bad(0, "[validation] needs trustAnchors (here or in the policy file)");
        }
        if (anchors != nullptr) {
            v.trustAnchors = resolve(anchors->value);
        }
        if (const Entry* e = get("validation", "intermediates")) {
            v.intermediates = resolve(e->value);
        }
        if (const Entry* e = get("validation", "timeoutSeconds")) {
            auto n = number(e, 1, 300, "timeoutSeconds");
            if (!n) {
                return n.error();
            }
            v.timeoutSeconds = static_cast<int>(*n);
        }
        if (const Entry* e = get("validation", "tlsCaFile")) {
            v.tlsCaFile = resolve(e->value);
        }
    }
    // The policy file's trust anchors, when it names them, replace kyso.conf's.
    const policies::ValidationRules& rules = c.signing.validation;
    if (!rules.trustAnchors.empty()) {
        const fs::path anchors(rules.trustAnchors);
        c.validation.trustAnchors = anchors.is_absolute()
                                        ? rules.trustAnchors
                                        : (fs::path(c.signingPolicyFile).parent_path() / anchors)
                                              .lexically_normal()
                                              .string();
    }
    return c;
}

Status checkAppearances(const Config& c) {
    for (const auto& [id, a] : c.appearances) {
        if (auto st = signer::checkAppearanceFiles(a.image, a.font); !st) {
            return Error::make("config.invalid",
                               c.path + ": [appearance." + id + "]: " + st.error().detail + " (" +
                                   st.error().code + "; image " +
                                   (a.image.empty() ? "none" : a.image) + ", font " +
                                   (a.font.empty() ? "the default" : a.font) + ")");
        }
    }
    return Ok{};
}

void applyModuleEnvironment(const Config& c) {
    if (!c.softhsm2Conf.empty()) {
        ::setenv("SOFTHSM2_CONF", c.softhsm2Conf.c_str(), 1);
    }
}

}  // namespace kyso::api
