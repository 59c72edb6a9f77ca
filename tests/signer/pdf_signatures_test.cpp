// Reading signatures from PDFs made by other products (tests/data/corpus/pdf/signed) and by us:
// count, coverage and integrity, and the known facts of the corpus README.
#include "kyso/signer/pdf_signatures.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "kyso/signer/pades.h"
#include "test_env.h"

namespace kyso::test {
namespace {

namespace fs = std::filesystem;

std::string signedCorpus(const std::string& name) {
    return corpusDir() + "/pdf/signed/" + name;
}

std::vector<signer::PdfSignature> read(const std::string& path) {
    auto r = signer::readPdfSignatures(path);
    EXPECT_TRUE(r.ok()) << path << ": " << (r.ok() ? "" : r.error().detail);
    return r.ok() ? *r : std::vector<signer::PdfSignature>{};
}

TEST(PdfSignatures, EveryCorpusFileParsesWithItsSignaturesCounted) {
    int files = 0;
    for (auto& e : fs::directory_iterator(corpusDir() + "/pdf/signed")) {
        SCOPED_TRACE(e.path().filename().string());
        auto sigs = read(e.path().string());
        EXPECT_GE(sigs.size(), 1u);
        for (const auto& s : sigs) {
            EXPECT_EQ(s.byteRange.empty(), false);
            EXPECT_FALSE(s.subFilter.empty());
        }
        ++files;
    }
    EXPECT_GE(files, 30);
}

TEST(PdfSignatures, CoverageAnomaliesAreClassified) {
    const std::map<std::string, signer::Coverage> expected = {
        // The base file has a later incremental update after its signature.
        {"ph-coverage-anomalies-base.pdf", signer::Coverage::EntireRevision},
        {"ph-coverage-anomalies-tail-uncovered.pdf", signer::Coverage::ContiguousBlockFromStart},
        {"ph-coverage-anomalies-signature-gap-too-big.pdf", signer::Coverage::Unclear},
        {"ph-coverage-anomalies-one-byterange.pdf", signer::Coverage::Unclear},
        {"ph-coverage-anomalies-weird-byterange.pdf", signer::Coverage::Unclear},
    };
    for (const auto& [name, coverage] : expected) {
        SCOPED_TRACE(name);
        auto sigs = read(signedCorpus(name));
        ASSERT_EQ(sigs.size(), 1u);
        EXPECT_STREQ(signer::coverageName(sigs[0].coverage), signer::coverageName(coverage));
        // The signature value itself is intact in every anomaly (the base file is the unfilled
        // template they were made from: pdfsig does not validate it either).
        if (name != "ph-coverage-anomalies-base.pdf") {
            EXPECT_TRUE(sigs[0].signatureValid)
                << (sigs[0].errors.empty() ? "" : sigs[0].errors[0]);
        }
    }
    auto base = read(signedCorpus("ph-coverage-anomalies-base.pdf"));
    ASSERT_EQ(base.size(), 1u);
    EXPECT_FALSE(base[0].signatureValid);
}

TEST(PdfSignatures, TwoSignaturesTheFirstCoveringItsRevision) {
    for (const std::string name :
         {"ph-minimal-signed-twice-both-created.pdf", "ph-minimal-signed-twice-second-created.pdf",
          "ph-minimal-two-fields-signed-twice.pdf", "dss-hello_signed_INCSAVE_signed.pdf"}) {
        SCOPED_TRACE(name);
        auto sigs = read(signedCorpus(name));
        ASSERT_EQ(sigs.size(), 2u);
        int entireFile = 0;
        int entireRevision = 0;
        for (const auto& s : sigs) {
            EXPECT_TRUE(s.digestMatches) << (s.errors.empty() ? "" : s.errors[0]);
            EXPECT_TRUE(s.signatureValid) << (s.errors.empty() ? "" : s.errors[0]);
            if (s.subFilter == "ETSI.CAdES.detached") {
                EXPECT_TRUE(s.signingCertificateBound) << (s.errors.empty() ? "" : s.errors[0]);
            }
            entireFile += s.coverage == signer::Coverage::EntireFile;
            entireRevision += s.coverage == signer::Coverage::EntireRevision;
        }
        EXPECT_EQ(entireFile, 1);
        EXPECT_EQ(entireRevision, 1);
    }
}

TEST(PdfSignatures, FiveSignaturesAndADocumentTimestamp) {
    auto sigs = read(signedCorpus("dss-pades-5-signatures-and-1-document-timestamp.pdf"));
    ASSERT_EQ(sigs.size(), 6u);
    int timestamps = 0;
    for (const auto& s : sigs) {
        timestamps += s.documentTimestamp;
        EXPECT_TRUE(s.digestMatches)
            << s.fieldName << ": " << (s.errors.empty() ? "" : s.errors[0]);
    }
    EXPECT_EQ(timestamps, 1);
}

TEST(PdfSignatures, ADocumentThatNeedsAPasswordIsEncryptedNotDamaged) {
    auto r = signer::readPdfSignatures(corpusDir() + "/pdf/unsigned/ph-minimal-aes256.pdf");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "pdf.encrypted") << r.error().detail;
}

TEST(PdfSignatures, OurSignatureIsIntactAndAFlippedByteIsCaught) {
    hsm::Credential c = makeCredential(openTestToken(), "read-back", hsm::KeyType::Rsa);
    const std::string dir = tempDir("readback");
    auto r = signer::signPdf(corpusDir() + "/pdf/unsigned/dss-sample.pdf", dir + "/s.pdf", c, {});
    ASSERT_TRUE(r.ok());
    auto sigs = read(dir + "/s.pdf");
    ASSERT_EQ(sigs.size(), 1u);
    EXPECT_EQ(sigs[0].coverage, signer::Coverage::EntireFile);
    EXPECT_TRUE(sigs[0].digestMatches);
    EXPECT_TRUE(sigs[0].signatureValid);
    EXPECT_EQ(sigs[0].subFilter, "ETSI.CAdES.detached");
    EXPECT_TRUE(sigs[0].signingCertificateBound);
    EXPECT_NE(sigs[0].signerSubject.find("Nguyễn Văn An"), std::string::npos);
    // One byte inside the signed range, in the original part of the file.
    std::string bytes = readFile(dir + "/s.pdf");
    bytes[bytes.size() / 4] ^= 0x01;
    writeFile(dir + "/t.pdf", bytes);
    auto tampered = signer::readPdfSignatures(dir + "/t.pdf");
    ASSERT_TRUE(tampered.ok());
    ASSERT_EQ(tampered->size(), 1u);
    EXPECT_FALSE((*tampered)[0].digestMatches);
    EXPECT_TRUE((*tampered)[0].signatureValid) << "the signed attributes were not touched";
}

}  // namespace
}  // namespace kyso::test
