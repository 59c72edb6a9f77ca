// What a CMS signature says about itself, checked cryptographically: the part of validation that
// needs no trust anchors and no network. Shared by PDF signatures (pdf_signatures.h) and
// stand-alone CMS/CAdES signatures (cms_verify.h); trust and revocation are judged by
// policies/validation.h.
#pragma once

#include <ctime>
#include <string>
#include <vector>

namespace kyso::signer {

// An RFC 3161 timestamp token: a signature timestamp (id-aa-signatureTimeStampToken, over the
// signature value) or a PDF document timestamp (over the /ByteRange).
struct TimestampFacts {
    bool document = false;
    std::time_t genTime = 0;
    bool imprintMatches = false;  // the TSTInfo's messageImprint is that of the stamped data
    bool signatureValid = false;  // the TSA's signature verifies and its messageDigest is that
                                  // of the TSTInfo
    std::string tsaSubject;       // RFC 2253, UTF-8
    std::string tsaCertDer;       // the TSA's certificate when the token carries it
    std::vector<std::string> certificatesDer;  // every certificate in the token
    std::vector<std::string> errors;
};

struct SignatureFacts {
    bool digestMatches = false;   // the messageDigest (or a document timestamp's imprint) is that
                                  // of the signed data
    bool signatureValid = false;  // the signature over the signed attributes verifies with the
                                  // signer certificate carried in the CMS
    // A signing-certificate(-v2) attribute names the signer's certificate by its hash.
    bool signingCertificateBound = false;
    bool hasSigningCertificateAttribute = false;
    std::string signerSubject;                 // RFC 2253, UTF-8
    std::string signerCertDer;                 // empty when the CMS does not carry it
    std::vector<std::string> certificatesDer;  // every certificate in the CMS (intermediates)
    std::time_t claimedSigningTime = 0;        // signing-time attribute, 0 when absent
    std::string digestAlgorithm;               // "SHA-256", "SHA-384", "SHA-512", "SHA-1", ...
    std::vector<TimestampFacts> timestamps;    // signature timestamps; a document timestamp's own
    std::vector<std::string> errors;
};

}  // namespace kyso::signer
