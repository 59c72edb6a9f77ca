#include "kyso/api/credentials.h"

#include <algorithm>
#include <fstream>
#include <mutex>
#include <sstream>

#include "kyso/ca-bridge/issuer.h"
#include "kyso/hsm/ossl_ptr.h"
#include "kyso/hsm/pkcs11_uri.h"

namespace kyso::api {

namespace {

Result<std::vector<std::string>> readPemFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return Error::make("config.invalid", "cannot read certificate file " + path);
    }
    std::stringstream ss;
    ss << in.rdbuf();
    auto certs = ca::certificatesFromPem(ss.str());
    if (!certs) {
        return Error::make("config.invalid", "no certificate in " + path);
    }
    return certs;
}

// The certificate must carry the public key of the token key it is configured with.
Status checkMatches(const std::string& certDer, const hsm::KeyInfo& key, const std::string& what) {
    OsslPtr<X509> x = x509FromDer(certDer);
    if (!x) {
        return Error::make("config.invalid", what + ": certificate is not valid");
    }
    unsigned char* buf = nullptr;
    const int n = ::i2d_X509_PUBKEY(::X509_get_X509_PUBKEY(x.get()), &buf);
    const std::string spki(reinterpret_cast<char*>(buf), n > 0 ? n : 0);
    ::OPENSSL_free(buf);
    if (spki != key.publicKeyDer) {
        return Error::make("config.invalid",
                           what + ": the certificate does not belong to the key on the token");
    }
    return Ok{};
}

Result<hsm::KeyInfo> findByUri(const std::string& uri, hsm::Token& token) {
    auto parsed = hsm::parsePkcs11Uri(uri);
    if (!parsed) {
        return Error::make("config.invalid", "bad key URI: " + parsed.error().detail);
    }
    if (parsed->token && *parsed->token != token.info().label) {
        return Error::make("key.not_found", "the key's token '" + *parsed->token +
                                                "' is not the configured token '" +
                                                token.info().label + "'");
    }
    if (parsed->serial && *parsed->serial != token.info().serial) {
        return Error::make("key.not_found", "the key's token serial '" + *parsed->serial +
                                                "' is not the configured token's");
    }
    if (parsed->type && *parsed->type != "private") {
        return Error::make("config.invalid", "the key URI must name a private key (type=private)");
    }
    return token.findKey(hsm::keyRefFrom(*parsed));
}

}  // namespace

std::string keyAlgorithmName(const hsm::KeyInfo& k) {
    if (k.type == hsm::KeyType::Rsa) {
        return "RSA-" + std::to_string(k.bits);
    }
    std::string c = k.curve;
    c.erase(std::remove(c.begin(), c.end(), '-'), c.end());
    return "EC-" + c;
}

Result<CredentialRegistry> CredentialRegistry::load(const Config& cfg, hsm::Token& token) {
    CredentialRegistry reg;
    for (const auto& cc : cfg.credentials) {
        auto key = findByUri(cc.key, token);
        if (!key) {
            return Error::make(key.error().code, "credential " + cc.id + ": " + key.error().detail);
        }
        auto certs = readPemFile(cc.certificate);
        if (!certs) {
            return certs.error();
        }
        hsm::Credential c;
        c.id = cc.id;
        c.kind = cc.kind;
        c.token = &token;
        c.key = *key;
        c.certificateDer = certs->front();
        for (std::size_t i = 1; i < certs->size(); ++i) {
            c.chainDer.push_back((*certs)[i]);
        }
        if (!cc.chain.empty()) {
            auto chain = readPemFile(cc.chain);
            if (!chain) {
                return chain.error();
            }
            c.chainDer.insert(c.chainDer.end(), chain->begin(), chain->end());
        }
        auto st = checkMatches(c.certificateDer, c.key, "credential " + cc.id);
        if (!st) {
            return st.error();
        }
        hsm::chooseDefaultAlgorithms(c);
        if (cc.scheme == "pss") {
            if (c.key.type != hsm::KeyType::Rsa) {
                return Error::make("config.invalid", "credential " + cc.id + ": PSS needs RSA");
            }
            c.scheme = hsm::SignScheme::RsaPss;
        }
        reg.m_facts[cc.id] = policies::CredentialFacts{cc.id, cc.kind, cc.owners};
        reg.m_creds.emplace(cc.id, std::move(c));
        reg.m_ids.push_back(cc.id);
    }
    reg.m_configured = reg.m_ids.size();
    return reg;
}

const hsm::Credential* CredentialRegistry::find(const std::string& id) const {
    std::shared_lock lk(*m_mu);
    auto it = m_creds.find(id);
    return it == m_creds.end() ? nullptr : &it->second;
}

policies::CredentialFacts CredentialRegistry::facts(const std::string& id) const {
    std::shared_lock lk(*m_mu);
    auto it = m_facts.find(id);
    return it == m_facts.end() ? policies::CredentialFacts{} : it->second;
}

std::vector<std::string> CredentialRegistry::ids() const {
    std::shared_lock lk(*m_mu);
    return m_ids;
}

std::vector<std::string> CredentialRegistry::configuredIds() const {
    std::shared_lock lk(*m_mu);
    return {m_ids.begin(), m_ids.begin() + static_cast<std::ptrdiff_t>(m_configured)};
}

Status CredentialRegistry::add(hsm::Credential credential, policies::CredentialFacts facts) {
    std::unique_lock lk(*m_mu);
    const std::string id = credential.id;
    if (m_creds.count(id)) {
        return Error::make("credential.exists", "a credential '" + id + "' exists already");
    }
    m_facts[id] = std::move(facts);
    m_creds.emplace(id, std::move(credential));
    m_ids.push_back(id);
    return Ok{};
}

Result<hsm::Credential> credentialFromUri(const std::string& uri, hsm::Token& token,
                                          const std::string& chainPem) {
    auto key = findByUri(uri, token);
    if (!key) {
        return key.error();
    }
    hsm::Credential c;
    c.id = key->label;
    c.kind = "officer";
    c.token = &token;
    c.key = *key;
    auto cert = token.findCertificate(hsm::KeyRef{std::nullopt, key->id});
    if (!cert) {
        cert = token.findCertificate(hsm::KeyRef{key->label, std::nullopt});
    }
    if (!cert) {
        return Error::make("cert.not_found",
                           "no certificate for key '" + key->label + "' on the token");
    }
    c.certificateDer = *cert;
    auto st = checkMatches(c.certificateDer, c.key, "key " + key->label);
    if (!st) {
        return st.error();
    }
    if (!chainPem.empty()) {
        auto chain = readPemFile(chainPem);
        if (!chain) {
            return chain.error();
        }
        c.chainDer = *chain;
    }
    hsm::chooseDefaultAlgorithms(c);
    return c;
}

Result<hsm::Credential> resolveCredential(const Config& cfg, hsm::Token& token,
                                          const std::string& keyOrId) {
    if (hsm::looksLikePkcs11Uri(keyOrId)) {
        // A URI that names a configured credential's key gets that credential's chain.
        for (const auto& cc : cfg.credentials) {
            if (cc.key == keyOrId) {
                return resolveCredential(cfg, token, cc.id);
            }
        }
        return credentialFromUri(keyOrId, token, "");
    }
    const CredentialConfig* cc = cfg.findCredential(keyOrId);
    if (cc == nullptr) {
        return Error::make("credential.unknown", "no credential '" + keyOrId + "' is configured");
    }
    Config one = cfg;
    one.credentials = {*cc};
    auto reg = CredentialRegistry::load(one, token);
    if (!reg) {
        return reg.error();
    }
    return *reg->find(keyOrId);
}

}  // namespace kyso::api
