// The service configuration: an INI file (kyso.conf). Every key is documented in
// docs/CONFIGURATION.md; an unknown section or key is an error naming it, so a typo never
// silently falls back to a default.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kyso/hsm/result.h"
#include "kyso/hsm/token.h"
#include "kyso/policies/signing_policy.h"
#include "kyso/signer/appearance.h"

namespace kyso::api {

struct CredentialConfig {
    std::string id;
    std::string kind;         // officer, seal, receipt-seal, tsa, ca (/ca/ID.crt|crl), audit
    std::string key;          // RFC 7512 URI of the private key
    std::string certificate;  // PEM file of the signer's certificate
    std::string chain;        // PEM file of intermediates (optional)
    std::vector<std::string> owners;  // principals (API key names) who own it
    std::string scheme;               // "" (default for the key), "pkcs1", "pss", "ecdsa"
    int crlDays = 7;                  // kind ca: nextUpdate of its CRL, in days
};

// The time-stamping authority ([tsa]); absent section: no TSA.
struct TsaConfig {
    std::string credential;  // id of a [credential.ID] of kind tsa
    std::string policy = "2.999.1.1";
    std::vector<std::string> otherPolicies;
    std::vector<hsm::HashAlg> digests = {hsm::HashAlg::Sha256, hsm::HashAlg::Sha384,
                                         hsm::HashAlg::Sha512};
    int accuracySeconds = 1;
    int accuracyMillis = 0;
    bool includeName = true;
    // PEM: the roots the TSA's certificate chains to; B-T signatures check each reply of this
    // TSA against them before using it.
    std::string trustAnchors;
};

// An external TSA for B-T signatures ([timestamping]); it takes precedence over [tsa].
struct TimestampingConfig {
    std::string url;
    std::string trustAnchors;  // PEM roots of the TSA certificate
    std::string tlsCaFile;     // PEM roots for https (default: the system's)
    int timeoutSeconds = 10;
    std::size_t reserveBytes = 16 * 1024;  // token space before the first token is seen
};

// The audit log's checkpoint key ([audit]); absent: the chain has no signed checkpoints.
struct AuditConfig {
    std::string credential;  // id of a [credential.ID] of kind audit
    std::uint64_t checkpointEvery = 100;
};

// Validation of signatures ([validation]): POST /api/v1/verify and `kyso verify`. What passes
// is the policy file's [validation] (Config::signing.validation); this is the transport.
struct ValidationConfig {
    // A PEM file or a directory of PEM files; the policy file's trustAnchors, when it names
    // them, replace kyso.conf's here.
    std::string trustAnchors;
    std::string intermediates;  // PEM file of extra intermediates (optional)
    int timeoutSeconds = 10;    // each CRL / OCSP fetch
    std::string tlsCaFile;      // PEM roots for https revocation URLs
};

// How a credential's visible signatures look ([appearance.ID], ID a credential's id). Every
// setting has a default, so `visible=true` works for a credential without this section.
struct AppearanceConfig {
    std::string image;        // PNG with transparency (officer: signature; seal: the seal)
    double imageWidthMm = 0;  // the image's real width; 0: from the PNG's pHYs
    // image-left, image-above, image-only, text-only, seal; "": seal for a seal credential,
    // else image-left.
    std::string layout;
    std::string font;     // TrueType file; "": Liberation Serif (fonts-liberation2)
    double fontSize = 0;  // points; 0: automatic (7 for a seal)
    // Lines, separated by "|", with {name} {title} {agency} {time} {reason} {location}; a line
    // whose placeholders are all empty is left out. "": the defaults of docs/CONFIGURATION.md.
    std::vector<std::string> text;
    // The texts; "": from the certificate (CN, title, O).
    std::string name;
    std::string title;
    std::string agency;
    std::string textColor;  // #RRGGBB; "": black
    // Where, when a request gives neither rect nor field.
    std::optional<signer::PdfRect> rect;
    int page = 0;  // 0: the request's page, else 1
};

// Personal signatures for citizens ([citizens]); absent: no enrolment, no CSC API.
struct CitizensConfig {
    std::string ca;         // id of the [credential.ID] of kind ca that issues their certificates
    std::string publicUrl;  // this service as citizens' relying parties reach it: CRL and OCSP URLs
    int validityDays = 365;
    std::string keyType = "RSA-2048";  // RSA-2048, RSA-3072, EC-P256, EC-P384
    int sadLifetimeSeconds = 300;      // how long a CSC SAD may be used
};

// A TLS client certificate and the principal it authenticates ([client.NAME]).
struct ClientConfig {
    std::string name;         // the principal's name (e.g. "officer-1", as API keys have)
    std::string certificate;  // PEM file: this exact certificate (by its SHA-256)
    std::string role;         // admin, officer, clerk, portal
};

struct Config {
    std::string path;  // the file it was read from

    std::string listenHost = "127.0.0.1";
    std::uint16_t listenPort = 8443;
    std::string tlsCertificate;
    std::string tlsPrivateKey;
    std::uint64_t maxBodyBytes = 100ull * 1024 * 1024;
    unsigned threads = 8;
    int socketTimeoutSeconds = 60;  // a client silent this long is disconnected
    std::string spoolDir;           // request and response bodies; default: DIR-of-config/spool
    // PEM: the CA(s) whose client certificates the TLS server asks for and checks; empty: no
    // client certificates (bearer API keys only).
    std::string clientCa;
    std::vector<ClientConfig> clients;

    hsm::TokenConfig token;
    std::string softhsm2Conf;  // exported as SOFTHSM2_CONF before the module loads

    std::string databasePath;

    std::vector<CredentialConfig> credentials;
    std::map<std::string, AppearanceConfig> appearances;  // by credential id
    std::optional<TsaConfig> tsa;
    std::optional<TimestampingConfig> timestamping;
    // Absent: no trust anchors, so no chain is trusted (INDETERMINATE).
    ValidationConfig validation;
    std::optional<AuditConfig> audit;
    std::optional<CitizensConfig> citizens;
    // [policy] file: the signing policy (policies/signing.policy is the format and the
    // defaults); absent: those defaults.
    std::string signingPolicyFile;
    policies::SigningPolicy signing;
    const CredentialConfig* findCredential(const std::string& id) const;
};

// Reads and validates a configuration file. Relative paths are resolved against the file's
// directory. Errors: "config.invalid" naming the file and the key.
Result<Config> loadConfig(const std::string& path);

// Reads every [appearance.ID]'s image and font as a visible signature would, so that `kyso
// serve` stops at start on a missing or broken one rather than at the first signature. Not part
// of loadConfig: a command that draws nothing (kyso sign pdf without --visible, kyso verify)
// does not pay for decoding images and loading fonts. Errors: config.invalid naming the section.
Status checkAppearances(const Config& c);

// Exports SOFTHSM2_CONF when configured (the module reads it at C_Initialize).
void applyModuleEnvironment(const Config& c);

}  // namespace kyso::api
