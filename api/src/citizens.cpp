#include "citizens.h"

#include <openssl/x509.h>

#include "kyso/ca-bridge/crl.h"
#include "kyso/ca-bridge/issuer.h"
#include "kyso/hsm/ossl_ptr.h"

namespace kyso::api {

namespace {

hsm::KeySpec keySpecOf(const std::string& keyType, const std::string& label) {
    hsm::KeySpec spec;
    spec.label = label;
    if (keyType.rfind("EC-", 0) == 0) {
        spec.type = hsm::KeyType::Ec;
        spec.curve = keyType.substr(3, 1) + "-" + keyType.substr(4);  // "EC-P256" -> "P-256"
    } else {
        spec.type = hsm::KeyType::Rsa;
        spec.rsaBits = keyType == "RSA-3072" ? 3072 : 2048;
    }
    return spec;
}

}  // namespace

Citizens::Citizens(const Config& config, hsm::Token& token, Store& store,
                   CredentialRegistry& registry, Activation& activation)
    : m_config(config),
      m_token(token),
      m_store(store),
      m_registry(registry),
      m_activation(activation) {}

const hsm::Credential* Citizens::issuer() const {
    return m_config.citizens ? m_registry.find(m_config.citizens->ca) : nullptr;
}

Result<EnrolledCitizen> Citizens::enrol(const CitizenEnrolment& who) {
    const hsm::Credential* ca = issuer();
    if (ca == nullptr) {
        return Error::make("citizens.unavailable", "this service enrols no citizens ([citizens])");
    }
    const CitizensConfig& cc = *m_config.citizens;
    auto enrolment = m_activation.enrol(who);
    if (!enrolment) {
        return enrolment.error();
    }
    const std::string id = enrolment->citizen.id;
    std::string issuedSerial;
    // Whatever fails from here on leaves the row revoked, not half-made and usable.
    auto undo = [&](const Error& e) -> Error {
        if (!issuedSerial.empty()) {
            (void)m_store.revokeCertificate(
                cc.ca, issuedSerial, static_cast<int>(ca::RevocationReason::CessationOfOperation));
        }
        (void)m_store.revokeCitizen(id);
        return e;
    };

    auto key = m_token.generateKey(keySpecOf(cc.keyType, id));
    if (!key) {
        return undo(key.error());
    }
    ca::CertificateProfile profile = ca::citizenCertificateProfile(
        {who.fullName, who.identityNumber, who.province}, cc.publicUrl + "/ca/" + cc.ca + ".crl",
        cc.publicUrl + "/ocsp", cc.validityDays);
    profile.publicKeyDer = key->publicKeyDer;
    auto der = ca::issueCertificate(profile, *ca);
    if (!der) {
        return undo(der.error());
    }
    issuedSerial = ca::serialHexOf(*der);
    OsslPtr<X509> x = x509FromDer(*der);
    const std::string subject = x ? nameToString(::X509_get_subject_name(x.get())) : "";
    if (auto st = m_store.recordIssued(cc.ca, issuedSerial, subject); !st) {
        return undo(st.error());
    }
    if (auto st = m_token.storeCertificate(id, key->id, *der); !st) {
        return undo(st.error());
    }
    if (auto st = m_store.setCitizenCertificate(id, *der); !st) {
        return undo(st.error());
    }
    enrolment->citizen.certificateDer = *der;

    hsm::Credential c;
    if (auto st = registerCredential(enrolment->citizen, *key, &c); !st) {
        return undo(st.error());
    }
    return EnrolledCitizen{std::move(*enrolment), std::move(c)};
}

Status Citizens::registerCredential(const Citizen& citizen, const hsm::KeyInfo& key,
                                    hsm::Credential* out) {
    const hsm::Credential* ca = issuer();
    hsm::Credential c;
    c.id = citizen.id;
    c.kind = "citizen";
    c.token = &m_token;
    c.key = key;
    c.certificateDer = citizen.certificateDer;
    if (ca != nullptr) {
        c.chainDer.push_back(ca->certificateDer);
        c.chainDer.insert(c.chainDer.end(), ca->chainDer.begin(), ca->chainDer.end());
    }
    hsm::chooseDefaultAlgorithms(c);
    if (auto st = m_registry.add(c, policies::CredentialFacts{c.id, "citizen", {citizen.portal}});
        !st) {
        return st;
    }
    *out = std::move(c);
    return Ok{};
}

Status Citizens::loadAll() {
    auto live = m_store.liveCitizens();
    if (!live) {
        return live.error();
    }
    for (const Citizen& citizen : *live) {
        auto key = m_token.findKey(hsm::KeyRef{citizen.keyLabel, std::nullopt});
        if (!key) {
            return Error::make(key.error().code,
                               "citizen " + citizen.id + ": " + key.error().detail);
        }
        hsm::Credential c;
        if (auto st = registerCredential(citizen, *key, &c); !st) {
            return st;
        }
    }
    return Ok{};
}

Status Citizens::revoke(const std::string& credentialId, int reason) {
    auto citizen = m_store.citizen(credentialId);
    if (!citizen) {
        return citizen.error();
    }
    if (auto st = m_store.revokeCitizen(credentialId); !st) {
        return st;
    }
    if (!citizen->certificateDer.empty() && m_config.citizens) {
        return m_store.revokeCertificate(m_config.citizens->ca,
                                         ca::serialHexOf(citizen->certificateDer), reason);
    }
    return Ok{};
}

}  // namespace kyso::api
