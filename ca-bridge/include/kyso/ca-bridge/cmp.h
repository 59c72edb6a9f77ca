// The bridge to an external (production) CA: a certificate request over CMP (RFC 4210, profiled
// by RFC 9483 "Lightweight CMP"), sent with OpenSSL's own CMP client over plain HTTP. The new key
// stays on the token: the proof of possession (CRMF POPO or the PKCS#10 signature) is one token
// operation. CMP protects every message itself (a MAC from a shared secret, or a signature), so
// the transport carries no trust; the issued certificate is accepted only when it carries the
// requested public key and chains to the configured trust anchors. Anything else is refused and
// the refusal is confirmed to the CA (certConf with a failInfo), so it does not count the
// certificate as delivered.
#pragma once

#include <string>
#include <vector>

#include "kyso/ca-bridge/issuer.h"
#include "kyso/hsm/credential.h"
#include "kyso/hsm/result.h"

namespace kyso::ca {

// Which CMP enrollment message carries the request. RFC 9483 4.1.1 (ir: first certificate from
// this PKI, usually MAC-protected), 4.1.2 (cr: the client already holds a certificate of this
// PKI and signs with it), 4.1.4 (p10cr: a PKCS#10 CSR for CAs that only take those).
enum class CmpRequestType { Ir, Cr, P10cr };

struct CmpServer {
    // "http://host[:port]/path"; https is refused (see cmp.config below). OpenSSL honours the
    // http_proxy and no_proxy environment variables for it.
    std::string url;
    // PEM file with the CA's root certificate(s): signed CMP responses and the issued
    // certificate must chain to one of them. Roots sent in caPubs never replace these.
    std::string trustAnchorsPem;
    // The CA's name, for the recipient field of our messages; empty: NULL-DN (RFC 9483 3.1
    // allows it when the client does not know the name).
    std::vector<NameEntry> recipient;

    // MAC protection (PBM, RFC 4210 5.1.3.1): the reference the CA gave out with the secret
    // (sent as senderKID) and where the secret is: "file:PATH" or "env:NAME" (hsm/secret.h).
    // The secret is read for this request only, wiped after, never logged or put in an error.
    std::string reference;
    std::string secretSource;

    // Signature protection instead: a credential on the token whose certificate (with its
    // chain, sent as extraCerts) the CA accepts. Borrowed; must outlive the call. Exactly one of
    // secretSource and clientCredential is set.
    const hsm::Credential* clientCredential = nullptr;

    // Bounds each message round trip and the whole transaction, polling included. A refused
    // connection is retried within it (OpenSSL's BIO_do_connect_retry), so a CA that is
    // restarting gets that long to come back; OpenSSL counts in whole seconds, so a call may
    // take up to about one second more.
    int timeoutSeconds = 10;
};

struct CmpRequest {
    CmpRequestType type = CmpRequestType::Ir;
    std::vector<NameEntry> subject;  // required
    // The key to certify, on the token (key.publicKeyDer and the token are used; its certificate
    // may be empty). Borrowed; must outlive the call.
    const hsm::Credential* key = nullptr;
};

struct CmpResult {
    std::string certificateDer;  // the new certificate; carries the requested public key
    // The verified path above it, issuer first, without the trust anchor (as in
    // hsm::Credential::chainDer), ready to install with the certificate.
    std::vector<std::string> chainDer;
    // As received, for the caller to judge: extraCerts of the certificate response and the
    // caPubs of an ip. Neither is trusted by this function.
    std::vector<std::string> extraCertsDer;
    std::vector<std::string> caPubsDer;
};

// Runs one enrollment transaction (request, certificate response, polling if the CA asks for
// it, certConf/pkiConf) and returns the issued certificate. Blocks for up to about
// server.timeoutSeconds. Thread-safe: every call has its own CMP context.
//
// Errors (stable codes; `cause` keeps the OpenSSL error code where there is one):
//   cmp.config       bad url (or https), unreadable trust anchors or secret, missing subject,
//                    key, reference, or both/neither protection kind
//   cmp.unreachable  connection refused, HTTP failure, or timeout
//   cmp.rejected     the CA answered with PKIStatus rejection (or an error message); the detail
//                    holds its PKIFailureInfo and statusString
//   cmp.protection   a response's MAC or signature does not verify, or is missing
//   cmp.key_mismatch the certificate returned is not for the requested key (refused to the CA)
//   cmp.invalid      anything else wrong in a response, including a certificate that does not
//                    chain to the trust anchors
// and the token's own errors ("token.unavailable", ...) when the token cannot sign.
Result<CmpResult> requestCertificate(const CmpServer& server, const CmpRequest& request);

}  // namespace kyso::ca
