// The validation policy over documents signed by other products (tests/data/corpus/pdf/signed):
// without their trust anchors nothing may pass, every file gives a report, and the known facts
// of the corpus README hold in the report.
#include "kyso/policies/validation.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>

#include "pdf_update.h"
#include "test_env.h"

namespace kyso::test {
namespace {

namespace fs = std::filesystem;

policies::ValidationReport validate(const std::string& name) {
    policies::ValidationContext ctx;  // no anchors, no revocation source
    auto r = policies::validatePdf(corpusDir() + "/pdf/signed/" + name, ctx);
    EXPECT_TRUE(r.ok()) << name << ": " << (r.ok() ? "" : r.error().detail);
    return r.ok() ? *r : policies::ValidationReport{};
}

TEST(Validation, EveryCorpusFileGivesAReportAndNothingPassesWithoutAnchors) {
    int files = 0;
    for (auto& e : fs::directory_iterator(corpusDir() + "/pdf/signed")) {
        const std::string name = e.path().filename().string();
        SCOPED_TRACE(name);
        auto rep = validate(name);
        ASSERT_GE(rep.signatures.size(), 1u);
        EXPECT_NE(rep.indication, "TOTAL_PASSED");
        EXPECT_EQ(rep.validSignaturesCount(), 0);
        std::cout << name << ": " << rep.indication;
        for (const auto& s : rep.signatures) {
            EXPECT_FALSE(s.id.empty());
            EXPECT_FALSE(s.format.empty());
            EXPECT_NE(s.indication, "TOTAL_PASSED");
            EXPECT_FALSE(s.subIndication.empty());
            std::cout << " [" << s.format << " " << s.coverage << " " << s.subIndication << " "
                      << s.modificationsAfterSigning << "]";
        }
        std::cout << "\n";
        ++files;
    }
    EXPECT_GE(files, 30);
}

TEST(Validation, BrokenAndUnsignedFilesGiveAClearResult) {
    // Hybrid references, broken cross-reference tables, a circular page tree, encrypted files:
    // a report (no signature) or a typed error, never a crash or a hang.
    int files = 0;
    for (auto& e : fs::directory_iterator(corpusDir() + "/pdf/unsigned")) {
        const std::string name = e.path().filename().string();
        SCOPED_TRACE(name);
        auto r = policies::validatePdf(e.path().string(), policies::ValidationContext{});
        if (r.ok()) {
            // One input file is signed already (pyHanko's widget listed only in its field's
            // indirect /Kids, with no /Parent): its later signature is still "signatures only".
            if (name == "ph-separate-annots-kids-indir.pdf") {
                ASSERT_EQ(r->signatures.size(), 2u);
                EXPECT_EQ(r->signatures[0].modificationsAfterSigning, "SIGNATURES_ONLY");
                EXPECT_EQ(r->signatures[0].subIndication, "NO_CERTIFICATE_CHAIN_FOUND");
            } else {
                EXPECT_EQ(r->indication, "NO_SIGNATURE_FOUND");
            }
        } else {
            EXPECT_EQ(r.error().code.rfind("pdf.", 0), 0u) << r.error().code;
        }
        ++files;
    }
    EXPECT_GE(files, 40);
}

TEST(Validation, WorkPerDocumentIsBounded) {
    std::vector<std::string> bodies = {"<< /Type /Catalog /Pages 2 0 R >>",
                                       "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                                       "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >>"};
    for (int i = 0; i < 101; ++i) {
        bodies.push_back("<< /Type /Sig /ByteRange [0 " + std::to_string(10 + i) + " " +
                         std::to_string(20 + i) + " 5] /Contents <3000> >>");
    }
    const std::string path = tempDir("many") + "/many.pdf";
    writeFile(path, makePdf(bodies));
    auto r = policies::validatePdf(path, policies::ValidationContext{});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "pdf.too_many_signatures");
    // 100 are analysed, and fail.
    bodies.pop_back();
    writeFile(path, makePdf(bodies));
    r = policies::validatePdf(path, policies::ValidationContext{});
    ASSERT_TRUE(r.ok()) << r.error().detail;
    EXPECT_EQ(r->signatures.size(), 100u);
    EXPECT_EQ(r->indication, "TOTAL_FAILED");
}

TEST(Validation, CoverageAnomaliesFailWithFormatFailure) {
    for (const char* name :
         {"ph-coverage-anomalies-tail-uncovered.pdf",
          "ph-coverage-anomalies-signature-gap-too-big.pdf",
          "ph-coverage-anomalies-one-byterange.pdf", "ph-coverage-anomalies-weird-byterange.pdf"}) {
        SCOPED_TRACE(name);
        auto rep = validate(name);
        ASSERT_EQ(rep.signatures.size(), 1u);
        EXPECT_EQ(rep.indication, "TOTAL_FAILED");
        EXPECT_EQ(rep.signatures[0].subIndication, "FORMAT_FAILURE");
    }
}

TEST(Validation, IntactForeignSignaturesLackOnlyTheirChain) {
    // Two intact signatures, the later revision adds only a signature: the first finding is the
    // missing trust anchor, or (DSS's file) the signer's 1024-bit RSA key, below the national
    // minimum the validation policy holds.
    for (const char* name :
         {"ph-minimal-two-fields-signed-twice.pdf", "dss-hello_signed_INCSAVE_signed.pdf"}) {
        SCOPED_TRACE(name);
        auto rep = validate(name);
        ASSERT_EQ(rep.signatures.size(), 2u);
        EXPECT_EQ(rep.indication, "INDETERMINATE");
        const bool weakKey = std::string(name).rfind("dss-", 0) == 0;
        for (const auto& s : rep.signatures) {
            EXPECT_EQ(s.subIndication,
                      weakKey ? "SIG_CONSTRAINTS_FAILURE" : "NO_CERTIFICATE_CHAIN_FOUND");
        }
        EXPECT_EQ(rep.signatures[0].coverage, "ENTIRE_REVISION");
        EXPECT_EQ(rep.signatures[0].modificationsAfterSigning, "SIGNATURES_ONLY");
        EXPECT_EQ(rep.signatures[1].modificationsAfterSigning, "NONE");
    }
}

TEST(Validation, SignatureWithoutSignedAttributesIsChecked) {
    // adbe.pkcs7.sha1 without signed attributes: the value signs the SHA-1 of the range itself.
    auto rep = validate("dss-pkcs7_sha1.pdf");
    ASSERT_EQ(rep.signatures.size(), 2u);
    // Intact, but SHA-1: below the validation policy's algorithms (SHA-2 only).
    EXPECT_EQ(rep.signatures[0].subIndication, "SIG_CONSTRAINTS_FAILURE");
    // With SHA-1 accepted, only the missing trust anchor remains.
    policies::ValidationContext lenient;
    lenient.policy.digests.insert("SHA-1");
    lenient.policy.rsaMinBits = 1024;
    auto accepted = policies::validatePdf(corpusDir() + "/pdf/signed/dss-pkcs7_sha1.pdf", lenient);
    ASSERT_TRUE(accepted.ok());
    EXPECT_EQ(accepted->signatures.at(0).subIndication, "NO_CERTIFICATE_CHAIN_FOUND");
    // One byte of the first revision changed: that signature no longer verifies.
    std::string pdf = readFile(corpusDir() + "/pdf/signed/dss-pkcs7_sha1.pdf");
    const auto at = pdf.find("stream") + 20;
    pdf[at] = static_cast<char>(pdf[at] ^ 0x20);
    const std::string copy = tempDir("sha1") + "/copy.pdf";
    writeFile(copy, pdf);
    auto bad = policies::validatePdf(copy, policies::ValidationContext{});
    ASSERT_TRUE(bad.ok());
    ASSERT_EQ(bad->signatures.size(), 2u);
    EXPECT_EQ(bad->indication, "TOTAL_FAILED");
    EXPECT_EQ(bad->signatures[0].subIndication, "HASH_FAILURE");
    EXPECT_EQ(bad->signatures[1].subIndication, "HASH_FAILURE");
}

TEST(Validation, DocumentTimestampIsReportedAsOne) {
    auto rep = validate("dss-pades-5-signatures-and-1-document-timestamp.pdf");
    ASSERT_EQ(rep.signatures.size(), 6u);
    int timestamps = 0;
    for (const auto& s : rep.signatures) {
        if (s.format == "TIMESTAMP") {
            ++timestamps;
            ASSERT_EQ(s.timestamps.size(), 1u);
            EXPECT_EQ(s.timestamps[0].type, "DOCUMENT");
            EXPECT_NE(s.bestSignatureTime, 0);
        }
    }
    EXPECT_EQ(timestamps, 1);
}

}  // namespace
}  // namespace kyso::test
