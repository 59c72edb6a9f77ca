// Citizens' personal signatures (issue 7): enrolment makes the key on the token, the certificate
// from the embedded CA ([citizens] ca) and the activation (PIN + TOTP, activation.h), and
// registers the credential so that it can sign (under a SAD) at once.
#pragma once

#include <string>

#include "activation.h"
#include "kyso/api/config.h"
#include "kyso/api/credentials.h"
#include "kyso/api/store.h"
#include "kyso/hsm/token.h"

namespace kyso::api {

struct EnrolledCitizen {
    Enrolment enrolment;         // the citizen row and the secrets handed out once
    hsm::Credential credential;  // as registered
};

class Citizens final {
  public:
    // All references must outlive this object; `config.citizens` must be set.
    Citizens(const Config& config, hsm::Token& token, Store& store, CredentialRegistry& registry,
             Activation& activation);

    // Enrols WHO for WHO.portal. In order: the citizen row and activation (one transaction;
    // citizen.invalid, citizen.duplicate), the key pair generated on the token under the
    // credential id (non-extractable), the certificate issued by the [citizens] CA and stored
    // on the token and in the database, recorded for OCSP, and the credential registered (kind
    // "citizen", owned by the portal). A failure after the row was written revokes the row (and
    // the certificate, when one was issued), so the identity number can enrol again and nothing
    // half-made stays usable. Errors: those above, citizens.unavailable (no [citizens]), the
    // CA's (ca.*) and the token's.
    Result<EnrolledCitizen> enrol(const CitizenEnrolment& who);

    // Registers every live citizen's credential (at start): its key found on the token by the
    // credential id, its certificate from the database. Errors: the token's (key.not_found for
    // a key that vanished), db.unavailable.
    Status loadAll();

    // Revokes a citizen's credential: the row, and the certificate at the CA (the next CRL and
    // every OCSP answer from now on say revoked). Errors: citizen.unknown,
    // citizen.already_revoked, ca.already_revoked.
    Status revoke(const std::string& credentialId, int reason);

  private:
    const hsm::Credential* issuer() const;
    Status registerCredential(const Citizen& citizen, const hsm::KeyInfo& key,
                              hsm::Credential* out);

    const Config& m_config;
    hsm::Token& m_token;
    Store& m_store;
    CredentialRegistry& m_registry;
    Activation& m_activation;
};

}  // namespace kyso::api
