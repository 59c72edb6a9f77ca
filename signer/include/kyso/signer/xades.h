// XML seals: an enveloped XML signature with XAdES baseline B-B properties (ETSI EN 319 132-1),
// made and checked with libxmlsec1. The private key stays on the token: xmlsec signs through the
// token-backed EVP_PKEY (hsm/evp_key.h), which holds only the public key.
//
// Input is parsed without network access, DTD loading or entity substitution, and a document with
// a DOCTYPE is refused before its internal subset is read, so no external entity (XXE) can be
// fetched and no entity can be expanded.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kyso/hsm/credential.h"
#include "kyso/hsm/result.h"

namespace kyso::signer {

// The XAdES namespace of EN 319 132-1 (SigningCertificateV2 lives in it too).
inline constexpr const char* kXadesNamespace = "http://uri.etsi.org/01903/v1.3.2#";

// Seals `xml` (UTF-8 or any encoding its declaration names) with `seal`'s key and returns the
// sealed document in UTF-8. A ds:Signature becomes the last child of the root element:
//   SignedInfo: exclusive C14N; rsa-sha256/384/512 or ecdsa-sha256/384/512 from the credential's
//     key type and hash; Reference URI="" (enveloped-signature + exclusive C14N) and a Reference
//     of Type ".../01903#SignedProperties" to the XAdES SignedProperties;
//   KeyInfo/X509Data: the signer certificate, then the chain;
//   Object/xades:QualifyingProperties: SigningTime (`when`, UTC, whole seconds) and
//     SigningCertificateV2 (SHA-256 CertDigest and IssuerSerialV2 of the signer certificate).
// What is kept: the output is libxml2's serialization of the parsed input with the Signature
// inserted before the root's end tag. Text, attributes, comments, PIs and CDATA are kept; the
// XML declaration is rewritten for UTF-8, and serialization details (empty-element form,
// attribute quotes, character references) follow libxml2. An input already in that form is a
// byte-for-byte prefix of the output.
// Errors: "xml.invalid" (not well-formed, a DOCTYPE, no root), "key.unsupported" (RSA-PSS or a
// key the token-backed EVP_PKEY cannot carry), "certificate.invalid", "sign.failed" (xmlsec or
// the token; a token error keeps its own code, e.g. "token.unavailable").
// Thread-safe; xmlsec is initialised once per process on first use.
// An element the seal adds to the document before signing it (a receipt's id and number), as
// the root's last child before the signature, in its own namespace; the attribute values are
// escaped by libxml2.
struct XmlStamp {
    std::string ns;      // namespace URI
    std::string prefix;  // its prefix
    std::string name;
    std::vector<std::pair<std::string, std::string>> attributes;
};

Result<std::string> sealXml(const hsm::Credential& seal, std::string_view xml,
                            std::chrono::system_clock::time_point when,
                            const XmlStamp* stamp = nullptr);

// What verifyXml found. A failed check is reported here, not as an error. Trust is not decided:
// the caller validates the path from certificateDer through chainDer to its anchors.
struct XmlSignatureFacts {
    // The SignatureValue verifies with the signer certificate's key, every Reference digest
    // matches, and a Reference with URI="" covers the whole document outside the signature.
    bool signatureValid = false;
    // A Reference of the XAdES SignedProperties type covers the SignedProperties read below.
    bool signedPropertiesSigned = false;
    // The first Cert of SigningCertificateV2 (or SigningCertificate) has the signer
    // certificate's digest and, when IssuerSerialV2 is present, its issuer and serial.
    bool signingCertificateMatches = false;
    std::optional<std::chrono::system_clock::time_point> signingTime;  // xades:SigningTime
    std::string signatureMethod;        // the SignatureMethod Algorithm URI
    std::string certificateDer;         // the signer: the KeyInfo certificate that issues no other
    std::vector<std::string> chainDer;  // the other KeyInfo certificates, in document order
    std::string failure;                // why signatureValid is false; empty when it is true
};

// Verifies the first ds:Signature of `xml` against the certificate in its KeyInfo. Only
// same-document references (URI="" and "#id") and the C14N / enveloped-signature transforms are
// followed; nothing is fetched. Errors: "xml.invalid" for input that is not well-formed XML, has
// a DOCTYPE, or holds no ds:Signature.
Result<XmlSignatureFacts> verifyXml(std::string_view xml);

}  // namespace kyso::signer
