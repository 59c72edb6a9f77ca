#include "kyso/api/demo.h"

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "demo_images.h"
#include "kyso/api/audit.h"
#include "kyso/api/config.h"
#include "kyso/api/store.h"
#include "kyso/ca-bridge/issuer.h"
#include "kyso/hsm/ossl_ptr.h"
#include "kyso/hsm/pkcs11_uri.h"
#include "kyso/hsm/token.h"
#include "kyso/hsm/token_admin.h"

namespace kyso::api {

namespace fs = std::filesystem;

namespace {

constexpr const char* kTokenLabel = "kyso-demo";

Status writePrivateFile(const std::string& path, const std::string& data, mode_t mode) {
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        ::chmod(tmp.c_str(), mode);
        out << data;
        if (!out) {
            return Error::make("io.write", "cannot write " + path);
        }
    }
    ::chmod(tmp.c_str(), mode);
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) {
        return Error::make("io.write", "cannot write " + path);
    }
    return Ok{};
}

struct Demo {
    DemoOptions o;
    std::ostream& log;
    std::string dir;
    std::unique_ptr<hsm::Token> token;
    std::unique_ptr<Store> store;

    std::string p(const std::string& rel) const { return dir + "/" + rel; }

    // The demo CAs' OCSP responder answers "good" only for certificates recorded here.
    Status record(const hsm::Credential& issuer, const std::string& der) {
        OsslPtr<X509> x = x509FromDer(der);
        char subject[512] = {0};
        if (x) {
            ::X509_NAME_oneline(::X509_get_subject_name(x.get()), subject, sizeof subject);
        }
        return store->recordIssued(issuer.id, ca::serialHexOf(der), subject);
    }

    Result<hsm::KeyInfo> ensureKey(const std::string& label, hsm::KeyType type, unsigned bits) {
        auto k = token->findKey(hsm::KeyRef{label, std::nullopt});
        if (k) {
            if (k->type != type || k->bits != bits) {
                return Error::make(
                    "demo.key_type",
                    "the token already holds key '" + label + "' of another type (" +
                        (k->type == hsm::KeyType::Rsa ? "RSA-" + std::to_string(k->bits)
                                                      : k->curve) +
                        "); use a new --dir for another --key-type");
            }
            return k;
        }
        if (k.error().code != "key.not_found") {
            return k.error();
        }
        log << "  generating "
            << (type == hsm::KeyType::Rsa ? "RSA-" + std::to_string(bits) : std::string("EC"))
            << " key '" << label << "' on the token\n";
        hsm::KeySpec spec;
        spec.type = type;
        spec.rsaBits = bits;
        spec.curve = "P-" + std::to_string(bits);
        spec.label = label;
        auto generated = token->generateKey(spec);
        if (generated) {
            AuditLog audit(*store, nullptr);
            auto r = audit.append({"key.generate", "demo", label, "ok",
                                   "{\"type\":\"" +
                                       std::string(type == hsm::KeyType::Rsa ? "RSA" : "EC") +
                                       "\",\"bits\":\"" + std::to_string(generated->bits) + "\"}"});
            if (!r) {
                return r.error();
            }
        }
        return generated;
    }

    // The certificate of `label`: from the token if it is there, otherwise issued and stored.
    // Also written as DIR/pki/<label>.pem.
    Result<std::string> ensureCert(const std::string& label, const hsm::KeyInfo& key,
                                   ca::CertificateProfile profile, const hsm::Credential& issuer) {
        auto existing = token->findCertificate(hsm::KeyRef{label, std::nullopt});
        std::string der;
        if (existing) {
            der = *existing;
        } else {
            profile.publicKeyDer = key.publicKeyDer;
            auto issued = ca::issueCertificate(profile, issuer);
            if (!issued) {
                return issued.error();
            }
            auto st = token->storeCertificate(label, key.id, *issued);
            if (!st) {
                return st.error();
            }
            der = *issued;
            log << "  issued certificate for '" << label << "'\n";
        }
        auto recorded = record(issuer, der);
        if (!recorded) {
            return recorded.error();
        }
        auto st = writePrivateFile(p("pki/" + label + ".pem"), ca::certificateToPem(der), 0644);
        if (!st) {
            return st.error();
        }
        return der;
    }

    hsm::Credential credential(const std::string& id, const hsm::KeyInfo& key,
                               const std::string& certDer) {
        hsm::Credential c;
        c.id = id;
        c.token = token.get();
        c.key = key;
        c.certificateDer = certDer;
        hsm::chooseDefaultAlgorithms(c);
        return c;
    }

    // Key and certificate of `label`, made if missing; `issuer` null means self-signed.
    // `bits`: the RSA modulus size, or with type Ec the curve's (256: P-256).
    Result<hsm::Credential> ensureCredential(const std::string& label, unsigned bits,
                                             ca::CertificateProfile profile,
                                             const hsm::Credential* issuer,
                                             hsm::KeyType type = hsm::KeyType::Rsa) {
        auto key = ensureKey(label, type, bits);
        if (!key) {
            return key.error();
        }
        const hsm::Credential self = credential(label, *key, "");
        auto cert = ensureCert(label, *key, std::move(profile), issuer ? *issuer : self);
        if (!cert) {
            return cert.error();
        }
        return credential(label, *key, *cert);
    }

    // The TLS key is a file (0600): the HTTPS stack loads it directly. Signing keys never are.
    // A certificate for a software key (P-256) written as files: the TLS server's, and the
    // demo's TLS client certificates (their holders keep such keys on their own machines).
    Status ensureFileKeyCertificate(const std::string& keyPath, const std::string& certPath,
                                    ca::CertificateProfile prof, const hsm::Credential& issuer,
                                    const std::string& what) {
        if (fs::exists(keyPath) && fs::exists(certPath)) {
            return Ok{};
        }
        OsslPtr<EVP_PKEY> pkey(::EVP_EC_gen("P-256"));
        if (!pkey) {
            return Error::make("ca.build", "cannot generate the key of " + what);
        }
        OsslPtr<BIO> kb(::BIO_new(::BIO_s_mem()));
        ::PEM_write_bio_PrivateKey(kb.get(), pkey.get(), nullptr, nullptr, 0, nullptr, nullptr);
        char* data = nullptr;
        const long n = ::BIO_get_mem_data(kb.get(), &data);
        std::string keyPem(data, static_cast<std::size_t>(n));
        unsigned char* spki = nullptr;
        const int len = ::i2d_PUBKEY(pkey.get(), &spki);
        prof.publicKeyDer.assign(reinterpret_cast<char*>(spki), len > 0 ? len : 0);
        ::OPENSSL_free(spki);
        auto cert = ca::issueCertificate(prof, issuer);
        if (!cert) {
            return cert.error();
        }
        auto recorded = record(issuer, *cert);
        if (!recorded) {
            return recorded;
        }
        fs::create_directories(fs::path(keyPath).parent_path());
        auto st = writePrivateFile(keyPath, keyPem, 0600);
        ::OPENSSL_cleanse(keyPem.data(), keyPem.size());
        if (!st) {
            return st;
        }
        log << "  issued " << what << "\n";
        // Leaf first, then the issuing CA: peers that trust the root can build the path.
        return writePrivateFile(
            certPath, ca::certificateToPem(*cert) + ca::certificateToPem(issuer.certificateDer),
            0644);
    }

    Status ensureTls(const hsm::Credential& issuer) {
        ca::CertificateProfile prof;
        prof.subject = {{"C", "VN"}, {"O", "kyso demo"}, {"CN", "localhost"}};
        prof.validDays = 825;
        prof.digitalSignature = true;
        prof.extendedKeyUsage = {"serverAuth"};
        prof.dnsNames = {"localhost"};
        prof.ipAddresses = {"127.0.0.1", "::1"};
        return ensureFileKeyCertificate(p("tls/server.key"), p("tls/server.pem"), prof, issuer,
                                        "the localhost TLS certificate");
    }

    // TLS client certificates for an officer's desktop and a portal (mTLS instead of API keys).
    Status ensureClient(const std::string& name, const hsm::Credential& issuer) {
        ca::CertificateProfile prof;
        prof.subject = {{"C", "VN"}, {"O", "kyso demo"}, {"CN", name + " (TLS client)"}};
        prof.validDays = 825;
        prof.digitalSignature = true;
        prof.extendedKeyUsage = {"clientAuth"};
        return ensureFileKeyCertificate(p("clients/" + name + ".key"),
                                        p("clients/" + name + ".pem"), prof, issuer,
                                        "the TLS client certificate of " + name);
    }
};

}  // namespace

Status demoInit(const DemoOptions& options, std::ostream& log) {
    if (options.dir.empty()) {
        return Error::make("request.invalid", "demo init needs --dir");
    }
    // The signing credentials' key type; the CAs and the audit key stay RSA.
    if (options.keyType != "RSA-2048" && options.keyType != "P-256") {
        return Error::make("demo.key_type",
                           "--key-type must be RSA-2048 or P-256, not '" + options.keyType + "'");
    }
    const hsm::KeyType signingType =
        options.keyType == "P-256" ? hsm::KeyType::Ec : hsm::KeyType::Rsa;
    const unsigned signingBits = signingType == hsm::KeyType::Ec ? 256 : 2048;

    Demo d{options, log, fs::absolute(options.dir).lexically_normal().string(), nullptr, nullptr};
    std::error_code ec;
    for (const char* sub : {"", "/tokens", "/secrets", "/pki", "/tls", "/spool"}) {
        fs::create_directories(d.dir + sub, ec);
        if (ec) {
            return Error::make("io.write", "cannot create " + d.dir + sub);
        }
    }
    fs::permissions(d.dir + "/secrets", fs::perms::owner_all, fs::perm_options::replace, ec);
    log << "kyso demo init: " << d.dir << "\n";

    const std::string hsmConf = d.p("softhsm2.conf");
    if (!fs::exists(hsmConf)) {
        auto st = writePrivateFile(hsmConf,
                                   "# SoftHSM2 configuration of the kyso demo token\n"
                                   "directories.tokendir = " +
                                       d.p("tokens") +
                                       "\nobjectstore.backend = file\nlog.level = ERROR\n",
                                   0600);
        if (!st) {
            return st;
        }
    }
    ::setenv("SOFTHSM2_CONF", hsmConf.c_str(), 1);

    const std::string userPinFile = d.p("secrets/user.pin");
    const std::string soPinFile = d.p("secrets/so.pin");
    const bool tokenExists = !fs::is_empty(d.p("tokens"));
    if (!tokenExists) {
        hsm::Secret so = hsm::randomPin(16);
        hsm::Secret user = hsm::randomPin(12);
        auto st = writePrivateFile(soPinFile, std::string(so.view()) + "\n", 0600);
        if (st) {
            st = writePrivateFile(userPinFile, std::string(user.view()) + "\n", 0600);
        }
        if (!st) {
            return st;
        }
        log << "  initialising SoftHSM2 token '" << kTokenLabel << "' (PINs in " << d.p("secrets")
            << ")\n";
        st = hsm::initToken(options.module, kTokenLabel, so, user);
        if (!st) {
            return st;
        }
    } else if (!fs::exists(userPinFile)) {
        return Error::make("demo.inconsistent",
                           "the demo token exists but " + userPinFile + " is missing");
    }

    hsm::TokenConfig tc;
    tc.modulePath = options.module;
    tc.tokenLabel = kTokenLabel;
    tc.pinSource = "file:" + userPinFile;
    auto token = hsm::Token::open(tc);
    if (!token) {
        return token.error();
    }
    d.token = std::move(token.value());
    auto store = Store::open(d.p("kyso.db"));
    if (!store) {
        return store.error();
    }
    d.store = std::move(*store);

    // Where this demo's service answers: the CRL URLs in its certificates point there.
    std::string host = options.listen.substr(0, options.listen.rfind(':'));
    if (host == "0.0.0.0" || host.empty()) {
        host = "127.0.0.1";
    }
    const std::string baseUrl =
        "https://" + host + options.listen.substr(options.listen.rfind(':'));

    // The demo PKI: root CA -> issuing CA -> officer; every key generated on the token.
    ca::CertificateProfile rootProf;
    rootProf.subject = {{"C", "VN"}, {"O", "kyso demo"}, {"CN", "kyso Demo Root CA"}};
    rootProf.isCa = true;
    rootProf.keyCertSign = true;
    rootProf.crlSign = true;
    rootProf.validDays = 3650;
    auto root = d.ensureCredential("root-ca", 3072, rootProf, nullptr);
    if (!root) {
        return root.error();
    }

    ca::CertificateProfile issuingProf;
    issuingProf.subject = {{"C", "VN"}, {"O", "kyso demo"}, {"CN", "kyso Demo Issuing CA"}};
    issuingProf.isCa = true;
    issuingProf.pathLength = 0;
    issuingProf.keyCertSign = true;
    issuingProf.crlSign = true;
    issuingProf.crlUrl = baseUrl + "/ca/root-ca.crl";
    issuingProf.ocspUrl = baseUrl + "/ocsp";
    issuingProf.validDays = 1825;
    auto issuing = d.ensureCredential("issuing-ca", 2048, issuingProf, &*root);
    if (!issuing) {
        return issuing.error();
    }

    // Signing certificates issued by the issuing CA: digitalSignature + nonRepudiation, with
    // the demo's CRL and OCSP URLs.
    auto signingProfile = [&](std::vector<ca::NameEntry> subject, int validDays) {
        ca::CertificateProfile p;
        p.subject = std::move(subject);
        p.digitalSignature = true;
        p.nonRepudiation = true;
        p.crlUrl = baseUrl + "/ca/issuing-ca.crl";
        p.ocspUrl = baseUrl + "/ocsp";
        p.validDays = validDays;
        return p;
    };
    auto officer = d.ensureCredential("officer-1", signingBits,
                                      signingProfile({{"C", "VN"},
                                                      {"ST", "Hà Nội"},
                                                      {"O", "Sở Thông tin và Truyền thông"},
                                                      {"title", "Giám đốc Sở"},
                                                      {"CN", "Nguyễn Văn An"}},
                                                     730),
                                      &*issuing, signingType);
    if (!officer) {
        return officer.error();
    }
    // The agency's e-seal (Decree 30/2020, Art. 5): the registry office applies it after the
    // officer's signature; its certificate names the agency.
    auto seal =
        d.ensureCredential("agency-seal", signingBits,
                           signingProfile({{"C", "VN"},
                                           {"ST", "Hà Nam"},
                                           {"O", "Sở Thông tin và Truyền thông"},
                                           {"CN", "Sở Thông tin và Truyền thông tỉnh Hà Nam"}},
                                          1825),
                           &*issuing, signingType);
    if (!seal) {
        return seal.error();
    }
    // The agency's receipt e-seal (issue 8): seals the payment receipts portals ask for.
    auto receiptSeal = d.ensureCredential(
        "receipt-seal", signingBits,
        signingProfile({{"C", "VN"},
                        {"ST", "Hà Nam"},
                        {"O", "Sở Thông tin và Truyền thông"},
                        {"CN", "Sở Thông tin và Truyền thông tỉnh Hà Nam - Biên lai điện tử"}},
                       1825),
        &*issuing, signingType);
    if (!receiptSeal) {
        return receiptSeal.error();
    }
    // The images of visible signatures: drawn here, kept if they exist (an agency replaces them
    // with its own scans).
    fs::create_directories(d.p("appearance"));
    if (!fs::exists(d.p("appearance/officer-1-signature.png"))) {
        auto st = writeDemoSignatureImage(d.p("appearance/officer-1-signature.png"));
        if (!st) {
            return st;
        }
        log << "  drew appearance/officer-1-signature.png\n";
    }
    if (!fs::exists(d.p("appearance/agency-seal.png"))) {
        auto st =
            writeDemoSealImage(d.p("appearance/agency-seal.png"), "SỞ THÔNG TIN VÀ TRUYỀN THÔNG");
        if (!st) {
            return st;
        }
        log << "  drew appearance/agency-seal.png\n";
    }

    ca::CertificateProfile tsaProf =
        signingProfile({{"C", "VN"}, {"O", "kyso demo"}, {"CN", "kyso Demo TSA"}}, 1825);
    tsaProf.extendedKeyUsage = {"timeStamping"};
    tsaProf.extendedKeyUsageCritical = true;  // RFC 3161 2.3
    auto tsa = d.ensureCredential("tsa", signingBits, tsaProf, &*issuing, signingType);
    if (!tsa) {
        return tsa.error();
    }
    auto audit = d.ensureCredential(
        "audit", 2048,
        signingProfile({{"C", "VN"}, {"O", "kyso demo"}, {"CN", "kyso Demo Audit"}}, 1825),
        &*issuing);
    if (!audit) {
        return audit.error();
    }
    auto st = d.ensureTls(*issuing);
    if (!st) {
        return st;
    }
    for (const char* client : {"admin", "officer-1", "clerk", "portal"}) {
        st = d.ensureClient(client, *issuing);
        if (!st) {
            return st;
        }
    }

    auto uriFor = [](const std::string& label) {
        return "pkcs11:token=" + hsm::pkcs11UriEncode(kTokenLabel) +
               ";object=" + hsm::pkcs11UriEncode(label) + ";type=private";
    };
    const std::string officerUri = uriFor("officer-1");
    const std::string confPath = d.p("kyso.conf");
    if (!fs::exists(confPath)) {
        std::ostringstream conf;
        conf << "# kyso configuration (see docs/CONFIGURATION.md). Made by `kyso demo init`.\n"
             << "[server]\nlisten = " << options.listen << "\ncertificate = tls/server.pem\n"
             << "privateKey = tls/server.key\nmaxBodyBytes = 104857600\nthreads = 8\n"
             << "spoolDir = spool\nclientCa = pki/root-ca.pem\n\n"
             << "[client.admin]\ncertificate = clients/admin.pem\nrole = admin\n\n"
             << "[client.officer-1]\ncertificate = clients/officer-1.pem\nrole = officer\n\n"
             << "[client.clerk]\ncertificate = clients/clerk.pem\nrole = clerk\n\n"
             << "[client.portal]\ncertificate = clients/portal.pem\nrole = portal\n\n"
             << "[pkcs11]\nmodule = " << options.module << "\ntoken = " << kTokenLabel
             << "\npin = file:secrets/user.pin\nsofthsm2Conf = softhsm2.conf\n\n"
             << "[database]\npath = kyso.db\n\n"
             << "[credential.officer-1]\nkind = officer\nkey = " << officerUri
             << "\ncertificate = pki/officer-1.pem\nchain = pki/issuing-ca.pem\n"
             << "owners = officer-1\n\n"
             << "[credential.agency-seal]\nkind = seal\nkey = " << uriFor("agency-seal")
             << "\ncertificate = pki/agency-seal.pem\nchain = pki/issuing-ca.pem\n"
             << "owners = clerk, officer-1\n\n"
             << "# Visible signatures (docs/CONFIGURATION.md): the officer's signature image and\n"
             << "# names (default: from the certificate), the seal at its real size.\n"
             << "[appearance.officer-1]\nimage = appearance/officer-1-signature.png\n"
             << "layout = image-left\n"
             << "text = Ký bởi: {name} | {title} | {agency} | Thời gian ký: {time}\n\n"
             << "[appearance.agency-seal]\nimage = appearance/agency-seal.png\n"
             << "imageWidthMm = 36\n"
             << "text = Ủy ban nhân dân tỉnh Hà Nam | {agency} | {time}\n"
             << "agency = Sở Thông tin và Truyền thông\n\n"
             << "[credential.receipt-seal]\nkind = receipt-seal\nkey = " << uriFor("receipt-seal")
             << "\ncertificate = pki/receipt-seal.pem\nchain = pki/issuing-ca.pem\n\n"
             << "[credential.issuing-ca]\nkind = ca\nkey = " << uriFor("issuing-ca")
             << "\ncertificate = pki/issuing-ca.pem\ncrlDays = 7\n\n"
             << "[credential.root-ca]\nkind = ca\nkey = " << uriFor("root-ca")
             << "\ncertificate = pki/root-ca.pem\ncrlDays = 30\n\n"
             << "[credential.tsa]\nkind = tsa\nkey = " << uriFor("tsa")
             << "\ncertificate = pki/tsa.pem\nchain = pki/issuing-ca.pem\n\n"
             << "[tsa]\ncredential = tsa\npolicy = 2.999.1.1\n"
             << "digests = SHA-256, SHA-384, SHA-512\naccuracySeconds = 1\n"
             << "trustAnchors = pki/root-ca.pem\n\n"
             << "[credential.audit]\nkind = audit\nkey = " << uriFor("audit")
             << "\ncertificate = pki/audit.pem\nchain = pki/issuing-ca.pem\n\n"
             << "[audit]\ncredential = audit\ncheckpointEvery = 100\n\n"
             << "# Citizens' personal signatures: keys on the token, certificates from the\n"
             << "# issuing CA, CRL and OCSP from this service.\n"
             << "[citizens]\nca = issuing-ca\npublicUrl = " << baseUrl
             << "\nvalidityDays = 365\nkeyType = RSA-2048\nsadLifetimeSeconds = 300\n\n"
             << "[validation]\ntrustAnchors = pki/root-ca.pem\ntlsCaFile = pki/root-ca.pem\n"
             << "timeoutSeconds = 10\n";
        st = writePrivateFile(confPath, conf.str(), 0600);
        if (!st) {
            return st;
        }
        log << "  wrote " << confPath << "\n";
    }

    const std::string credsPath = d.p("demo-credentials.json");
    if (!fs::exists(credsPath)) {
        Store* store = d.store.get();
        Poco::JSON::Array keys;
        const std::pair<const char*, policies::Role> principals[] = {
            {"admin", policies::Role::Admin},
            {"officer-1", policies::Role::Officer},
            {"clerk", policies::Role::Clerk},
            {"portal", policies::Role::Portal}};
        for (const auto& [name, role] : principals) {
            auto key = store->createApiKey(name, role);
            if (!key) {
                return key.error();
            }
            Poco::JSON::Object k;
            k.set("role", std::string(policies::roleName(role)));
            k.set("name", std::string(name));
            k.set("apiKey", *key);
            keys.add(k);
        }
        Poco::JSON::Object j;
        j.set("url", baseUrl);
        j.set("trustAnchors", d.p("pki/root-ca.pem"));
        j.set("apiKeys", keys);
        Poco::JSON::Array clients;
        for (const auto& [name, role] : {std::pair<std::string, std::string>{"admin", "admin"},
                                         {"officer-1", "officer"},
                                         {"clerk", "clerk"},
                                         {"portal", "portal"}}) {
            Poco::JSON::Object c;
            c.set("role", role);
            c.set("name", name);
            c.set("certificate", d.p("clients/" + name + ".pem"));
            c.set("key", d.p("clients/" + name + ".key"));
            clients.add(c);
        }
        j.set("clientCertificates", clients);
        Poco::JSON::Array creds;
        Poco::JSON::Object officer;
        officer.set("id", "officer-1");
        officer.set("kind", "officer");
        officer.set("certificate", d.p("pki/officer-1.pem"));
        officer.set("pkcs11Uri", officerUri);
        creds.add(officer);
        Poco::JSON::Object sealCred;
        sealCred.set("id", "agency-seal");
        sealCred.set("kind", "seal");
        sealCred.set("certificate", d.p("pki/agency-seal.pem"));
        sealCred.set("pkcs11Uri", uriFor("agency-seal"));
        creds.add(sealCred);
        Poco::JSON::Object receiptCred;
        receiptCred.set("id", "receipt-seal");
        receiptCred.set("kind", "receipt-seal");
        receiptCred.set("certificate", d.p("pki/receipt-seal.pem"));
        receiptCred.set("pkcs11Uri", uriFor("receipt-seal"));
        creds.add(receiptCred);
        Poco::JSON::Object tsaCred;
        tsaCred.set("id", "tsa");
        tsaCred.set("kind", "tsa");
        tsaCred.set("certificate", d.p("pki/tsa.pem"));
        tsaCred.set("pkcs11Uri", uriFor("tsa"));
        creds.add(tsaCred);
        j.set("credentials", creds);
        std::ostringstream js;
        j.stringify(js, 2);
        st = writePrivateFile(credsPath, js.str() + "\n", 0600);
        if (!st) {
            return st;
        }
        log << "  wrote " << credsPath << " (API keys per role; keep it private)\n";
    }
    log << "kyso demo init: done. Start the service with: kyso serve --config " << confPath << "\n";
    return Ok{};
}

}  // namespace kyso::api
