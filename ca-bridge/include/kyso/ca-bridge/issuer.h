// Certificate issuance with a CA key on a token: the embedded demo PKI today, the citizen CA of
// later issues. The TBSCertificate is built with OpenSSL and signed by one token operation; the
// CA's private key never leaves the token.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "kyso/hsm/credential.h"
#include "kyso/hsm/result.h"

namespace kyso::ca {

// One RDN attribute, by OpenSSL short name or OID: "C", "ST", "L", "O", "OU", "CN",
// "serialNumber", "title". Values are UTF-8.
struct NameEntry {
    std::string field;
    std::string value;
};

struct CertificateProfile {
    std::vector<NameEntry> subject;
    std::string publicKeyDer;  // SubjectPublicKeyInfo of the subject's key
    int validDays = 365;
    int backdateSeconds = 300;  // notBefore = now - this, for clock skew between hosts
    bool isCa = false;
    int pathLength = -1;  // for CAs; -1: unlimited
    // keyUsage bits (the extension is always critical).
    bool digitalSignature = false;
    bool nonRepudiation = false;
    bool keyEncipherment = false;
    bool keyCertSign = false;
    bool crlSign = false;
    // extendedKeyUsage by name: "serverAuth", "clientAuth", "timeStamping", ...
    std::vector<std::string> extendedKeyUsage;
    bool extendedKeyUsageCritical = false;
    std::vector<std::string> dnsNames;
    std::vector<std::string> ipAddresses;
    std::optional<std::string> crlUrl;
    std::optional<std::string> ocspUrl;
    std::optional<std::string> caIssuersUrl;
};

// A citizen's personal signing certificate: the full name (UTF-8) as CN, the identity number
// (CCCD, 12 digits) as serialNumber, C=VN and the province as ST; keyUsage digitalSignature and
// nonRepudiation (critical); the CRL distribution point and OCSP URL of the issuing CA that
// revokes it; VALIDDAYS of validity (configuration; one year by default).
struct CitizenIdentity {
    std::string fullName;
    std::string identityNumber;
    std::string province;
};
CertificateProfile citizenCertificateProfile(const CitizenIdentity& citizen,
                                             const std::string& crlUrl, const std::string& ocspUrl,
                                             int validDays = 365);

// Issues a certificate signed by `issuer`. When issuer.certificateDer is empty the certificate is
// self-signed: its issuer is its own subject and `profile.publicKeyDer` must be the issuer key's.
// The serial number is 127 random bits. Errors: "ca.profile" (bad name field, key, or
// extension), "ca.build", and the token's errors.
Result<std::string> issueCertificate(const CertificateProfile& profile,
                                     const hsm::Credential& issuer);

// PEM <-> DER for certificates.
std::string certificateToPem(const std::string& der);
Result<std::vector<std::string>> certificatesFromPem(const std::string& pem);

}  // namespace kyso::ca
