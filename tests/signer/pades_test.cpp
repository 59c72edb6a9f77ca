// PAdES B-B: every output is checked by tools we did not write (poppler pdfsig, qpdf --check,
// openssl cms -verify over the /ByteRange bytes), and the original must be a prefix.
#include "kyso/signer/pades.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "kyso/signer/pdf_signatures.h"
#include "test_env.h"

namespace kyso::test {
namespace {

namespace fs = std::filesystem;

const hsm::Credential& rsaCredential() {
    static hsm::Credential c = makeCredential(openTestToken(), "pades-rsa", hsm::KeyType::Rsa);
    return c;
}

// A minimal one-page PDF with a classic cross-reference table, written by hand with exact
// offsets (the test's own input, independent of our writer).
std::string minimalPdf(const std::string& text = "Hello") {
    std::vector<std::string> objs = {
        "<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        "", "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"};
    const std::string stream = "BT /F1 24 Tf 72 720 Td (" + text + ") Tj ET";
    objs[3] =
        "<< /Length " + std::to_string(stream.size()) + " >>\nstream\n" + stream + "\nendstream";
    std::string pdf = "%PDF-1.7\n%\xe2\xe3\xcf\xd3\n";
    std::vector<std::size_t> offs;
    for (std::size_t i = 0; i < objs.size(); ++i) {
        offs.push_back(pdf.size());
        pdf += std::to_string(i + 1) + " 0 obj\n" + objs[i] + "\nendobj\n";
    }
    const std::size_t xref = pdf.size();
    pdf += "xref\n0 " + std::to_string(objs.size() + 1) + "\n0000000000 65535 f \n";
    for (auto o : offs) {
        char line[24];
        std::snprintf(line, sizeof line, "%010zu 00000 n \n", o);
        pdf += line;
    }
    pdf += "trailer\n<< /Size " + std::to_string(objs.size() + 1) + " /Root 1 0 R >>\nstartxref\n" +
           std::to_string(xref) + "\n%%EOF\n";
    return pdf;
}

struct Check {
    int signatures = 0;  // signed signature fields (empty fields are listed by pdfsig too)
    int valid = 0;
    bool lastTotal = false;
    std::string pdfsigOutput;
};

// pdfsig's own verdict: each signature's "Signature Validation" line, and whether the last
// signature covers the total document.
Check pdfsig(const std::string& path) {
    Check c;
    run("pdfsig -nocert " + shellQuote(path), &c.pdfsigOutput);
    std::istringstream in(c.pdfsigOutput);
    std::string line;
    bool lastTotalSeen = false;
    while (std::getline(in, line)) {
        if (line.rfind("Signature #", 0) == 0) {
            ++c.signatures;
            lastTotalSeen = false;
        }
        if (line.find("The signature form field is not signed.") != std::string::npos) {
            --c.signatures;
        }
        if (line.find("Signature Validation: Signature is Valid.") != std::string::npos) {
            ++c.valid;
        }
        if (line.find("Total document signed") != std::string::npos) {
            lastTotalSeen = true;
        }
    }
    c.lastTotal = lastTotalSeen;
    return c;
}

// The last signature's /ByteRange and /Contents, found by scanning the update we appended.
struct LastSig {
    std::uint64_t br[4] = {0, 0, 0, 0};
    std::string cmsDer;
};

LastSig lastSignature(const std::string& pdf) {
    LastSig s;
    const auto p = pdf.rfind("/ByteRange [");
    if (p == std::string::npos) {
        return s;
    }
    std::istringstream in(pdf.substr(p + 12, 100));
    in >> s.br[0] >> s.br[1] >> s.br[2] >> s.br[3];
    if (!in || s.br[1] + 2 > s.br[2] || s.br[2] > pdf.size()) {
        return s;
    }
    const std::string hex = pdf.substr(s.br[1] + 1, s.br[2] - s.br[1] - 2);
    std::string bin;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
        bin.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    // Trailing zero padding is not part of the DER.
    s.cmsDer = bin;
    return s;
}

// openssl cms -verify over the /ByteRange bytes against the test CA.
void expectCmsVerifies(const std::string& signedPath) {
    const std::string pdf = readFile(signedPath);
    LastSig s = lastSignature(pdf);
    ASSERT_EQ(s.br[0], 0u);
    ASSERT_EQ(s.br[2] + s.br[3], pdf.size());
    const std::string dir = tempDir("cms");
    writeFile(dir + "/content", pdf.substr(0, s.br[1]) + pdf.substr(s.br[2], s.br[3]));
    writeFile(dir + "/sig.der", s.cmsDer);
    std::string out;
    const int rc = run("openssl cms -verify -binary -inform DER -in " + dir + "/sig.der -content " +
                           dir + "/content -CAfile " + testPki(openTestToken()).caPemFile +
                           " -purpose any -out /dev/null",
                       &out);
    EXPECT_EQ(rc, 0) << out;
    // CAdES: signing-certificate-v2 present, no signing-time attribute.
    run("openssl cms -cmsout -print -inform DER -in " + dir + "/sig.der", &out);
    EXPECT_NE(out.find("id-smime-aa-signingCertificateV2"), std::string::npos);
    EXPECT_NE(out.find("messageDigest"), std::string::npos);
    EXPECT_EQ(out.find("signingTime"), std::string::npos);
}

// qpdf --check finds nothing in our output that it did not already find in the input.
void expectQpdfClean(const std::string& original, const std::string& path) {
    std::string before;
    const int rcBefore = run("qpdf --check " + shellQuote(original), &before);
    std::string out;
    const int rc = run("qpdf --check " + shellQuote(path), &out);
    if (rcBefore == 0) {
        EXPECT_EQ(rc, 0) << out;
        EXPECT_EQ(out.find("WARNING"), std::string::npos) << out;
    } else {
        auto count = [](const std::string& s) {
            std::size_t n = 0;
            for (auto p = s.find("WARNING"); p != std::string::npos; p = s.find("WARNING", p + 1)) {
                ++n;
            }
            return n;
        };
        EXPECT_LE(rc, rcBefore) << out;
        EXPECT_LE(count(out), count(before)) << out;
    }
}

void expectPrefix(const std::string& original, const std::string& signedPath) {
    const std::string a = readFile(original);
    const std::string b = readFile(signedPath);
    ASSERT_GT(b.size(), a.size());
    EXPECT_EQ(b.compare(0, a.size(), a), 0) << "the original is not a prefix of the output";
}

// Signs and runs every external check; `expectedSigs` counts all signatures after ours.
void signAndCheck(const std::string& in, int expectedSigs,
                  const hsm::Credential& cred = rsaCredential()) {
    const std::string out = tempDir("out") + "/signed.pdf";
    signer::PadesOptions o;
    o.reason = "Phê duyệt";
    o.location = "Hà Nội";
    auto r = signer::signPdf(in, out, cred, o);
    ASSERT_TRUE(r.ok()) << r.error().code << ": " << r.error().detail;
    Check c = pdfsig(out);
    EXPECT_EQ(c.signatures, expectedSigs) << c.pdfsigOutput;
    EXPECT_EQ(c.valid, expectedSigs) << c.pdfsigOutput;
    EXPECT_TRUE(c.lastTotal) << c.pdfsigOutput;
    expectQpdfClean(in, out);
    expectPrefix(in, out);
    expectCmsVerifies(out);
}

// The files of a corpus directory, in name order.
std::vector<fs::path> sortedFiles(const std::string& dir) {
    std::vector<fs::path> files;
    for (auto& e : fs::directory_iterator(dir)) {
        files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    return files;
}

TEST(Pades, SignsMinimalPdfWithClassicXref) {
    const std::string in = tempDir("in") + "/min.pdf";
    writeFile(in, minimalPdf());
    signAndCheck(in, 1);
}

TEST(Pades, SignsXrefStreamAndObjectStreamsWrittenByQpdf) {
    const std::string dir = tempDir("in");
    writeFile(dir + "/min.pdf", minimalPdf());
    ASSERT_EQ(run("qpdf --object-streams=generate " + dir + "/min.pdf " + dir + "/objstm.pdf"), 0);
    ASSERT_NE(readFile(dir + "/objstm.pdf").find("/XRef"), std::string::npos);
    signAndCheck(dir + "/objstm.pdf", 1);
    // The update keeps the original's cross-reference style.
    const std::string out = dir + "/objstm-signed.pdf";
    auto r = signer::signPdf(dir + "/objstm.pdf", out, rsaCredential(), {});
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r->xrefStream);
    const std::string signedPdf = readFile(out);
    const std::string update = signedPdf.substr(r->originalSize);
    EXPECT_NE(update.find("/Type /XRef"), std::string::npos);
    EXPECT_EQ(update.find("\nxref\n"), std::string::npos);
}

TEST(Pades, SignsWithEcdsaP256AndP384) {
    const std::string in = tempDir("in") + "/min.pdf";
    writeFile(in, minimalPdf());
    signAndCheck(in, 1,
                 makeCredential(openTestToken(), "pades-p256", hsm::KeyType::Ec, 0, "P-256"));
    signAndCheck(in, 1,
                 makeCredential(openTestToken(), "pades-p384", hsm::KeyType::Ec, 0, "P-384"));
}

TEST(Pades, SignsWithRsaPss) {
    const std::string in = tempDir("in") + "/min.pdf";
    writeFile(in, minimalPdf());
    hsm::Credential c = makeCredential(openTestToken(), "pades-pss", hsm::KeyType::Rsa);
    c.scheme = hsm::SignScheme::RsaPss;
    // pdfsig (NSS) accepts RSASSA-PSS in CMS; OpenSSL must too.
    signAndCheck(in, 1, c);
}

TEST(Pades, SecondSignatureKeepsTheFirstValid) {
    const std::string dir = tempDir("in");
    writeFile(dir + "/min.pdf", minimalPdf());
    auto r = signer::signPdf(dir + "/min.pdf", dir + "/once.pdf", rsaCredential(), {});
    ASSERT_TRUE(r.ok());
    signAndCheck(dir + "/once.pdf", 2);
}

TEST(Pades, SignsAfterPdfsigAddSignature) {
    // A signature made by another implementation (poppler + NSS) first, then ours.
    const std::string dir = tempDir("nss");
    writeFile(dir + "/min.pdf", minimalPdf());
    const std::string nssdb = dir + "/nssdb";
    fs::create_directories(nssdb);
    ASSERT_EQ(run("certutil -N -d sql:" + nssdb + " --empty-password"), 0);
    std::string out;
    ASSERT_EQ(
        run("openssl req -x509 -newkey rsa:2048 -nodes -keyout " + dir + "/k.pem -out " + dir +
                "/c.pem -days 30 -subj '/CN=NSS Signer' -addext "
                "keyUsage=critical,digitalSignature,nonRepudiation",
            &out),
        0)
        << out;
    ASSERT_EQ(run("openssl pkcs12 -export -inkey " + dir + "/k.pem -in " + dir +
                      "/c.pem -name nss-signer -passout pass: -out " + dir + "/p.p12",
                  &out),
              0)
        << out;
    ASSERT_EQ(run("pk12util -i " + dir + "/p.p12 -d sql:" + nssdb + " -W ''", &out), 0) << out;
    ASSERT_EQ(run("certutil -M -n nss-signer -t 'CT,C,C' -d sql:" + nssdb, &out), 0) << out;
    ASSERT_EQ(run("pdfsig -add-signature -nssdir sql:" + nssdb + " -nick nss-signer " + dir +
                      "/min.pdf " + dir + "/nss.pdf",
                  &out),
              0)
        << out;
    signAndCheck(dir + "/nss.pdf", 2);
}

TEST(Pades, SignsIntoAnExistingEmptyField) {
    const std::string in = corpusDir() + "/pdf/unsigned/ph-minimal-with-field.pdf";
    ASSERT_TRUE(fs::exists(in));
    std::string out;
    run("pdfsig -dump " + shellQuote(in), &out);
    const std::string dir = tempDir("field");
    signer::PadesOptions o;
    o.fieldName = "Sig1";
    auto r = signer::signPdf(in, dir + "/out.pdf", rsaCredential(), o);
    if (!r.ok() && r.error().code == "pdf.field_not_found") {
        GTEST_FAIL() << "the corpus file's field is not named Sig1: " << r.error().detail;
    }
    ASSERT_TRUE(r.ok()) << r.error().code << ": " << r.error().detail;
    EXPECT_EQ(r->fieldName, "Sig1");
    Check c = pdfsig(dir + "/out.pdf");
    EXPECT_EQ(c.signatures, 1) << c.pdfsigOutput;
    EXPECT_EQ(c.valid, 1) << c.pdfsigOutput;
    // Signing the same field again is refused.
    auto again = signer::signPdf(dir + "/out.pdf", dir + "/again.pdf", rsaCredential(), o);
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.error().code, "pdf.field_signed");
    EXPECT_FALSE(fs::exists(dir + "/again.pdf"));
}

TEST(Pades, RefusesBadInputWithNamedReasonsAndNoOutput) {
    const std::string dir = tempDir("bad");
    const std::string good = minimalPdf();
    struct Case {
        std::string name;
        std::string bytes;
        std::string code;
    };
    std::vector<Case> cases = {
        {"empty", "", "pdf.empty"},
        {"not-pdf", "GIF89a this is not a pdf", "pdf.not_pdf"},
        {"truncated", good.substr(0, good.size() / 2), "pdf.truncated"},
        {"shifted-header", "junk before the header\n" + good, "pdf.damaged"},
    };
    for (const auto& c : cases) {
        const std::string in = dir + "/" + c.name + ".pdf";
        const std::string out = dir + "/" + c.name + "-out.pdf";
        writeFile(in, c.bytes);
        auto r = signer::signPdf(in, out, rsaCredential(), {});
        ASSERT_FALSE(r.ok()) << c.name;
        EXPECT_EQ(r.error().code, c.code) << c.name << ": " << r.error().detail;
        EXPECT_FALSE(fs::exists(out)) << c.name;
    }
    // No temporary files left behind either.
    for (auto& e : fs::directory_iterator(dir)) {
        EXPECT_EQ(e.path().string().find(".kyso-tmp-"), std::string::npos) << e.path();
    }
}

TEST(Pades, RefusesCertifiedNoChangesDocuments) {
    // Certify with DocMDP P=1 by hand: a catalog /Perms pointing at a signature dictionary.
    std::string pdf = minimalPdf();
    const auto pos = pdf.find("<< /Type /Catalog /Pages 2 0 R >>");
    ASSERT_NE(pos, std::string::npos);
    // Same length replacement keeps the xref offsets of later objects valid... it does not, so
    // rebuild via qpdf instead: write a catalog with /Perms using qpdf's JSON-free path.
    const std::string dir = tempDir("mdp");
    writeFile(dir + "/min.pdf", pdf);
    const std::string fixed =
        pdf.substr(0, pos) +
        "<< /Type /Catalog /Pages 2 0 R /Perms << /DocMDP << /Type /Sig /Reference [<< "
        "/TransformMethod /DocMDP /TransformParams << /P 1 /V /1.2 >> >>] >> >> >>" +
        pdf.substr(pos + std::string("<< /Type /Catalog /Pages 2 0 R >>").size());
    writeFile(dir + "/broken-offsets.pdf", fixed);
    // qpdf rewrites it with correct offsets.
    ASSERT_EQ(run("qpdf " + dir + "/broken-offsets.pdf " + dir + "/certified.pdf"), 3);
    auto r = signer::signPdf(dir + "/certified.pdf", dir + "/out.pdf", rsaCredential(), {});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, "pdf.certified_no_changes") << r.error().detail;
    EXPECT_FALSE(fs::exists(dir + "/out.pdf"));
}

TEST(Pades, CorpusIsSignedOrRefusedWithAReason) {
    const std::string dir = corpusDir() + "/pdf/unsigned";
    ASSERT_TRUE(fs::is_directory(dir)) << dir;
    const std::set<std::string> refusals = {"pdf.encrypted", "pdf.permissions",
                                            "pdf.damaged",   "pdf.certified_no_changes",
                                            "pdf.truncated", "pdf.not_pdf"};
    int signedCount = 0;
    int refused = 0;
    for (const auto& path : sortedFiles(dir)) {
        SCOPED_TRACE(path.filename().string());
        const std::string out = tempDir("corpus") + "/out.pdf";
        auto r = signer::signPdf(path.string(), out, rsaCredential(), {});
        if (!r.ok()) {
            EXPECT_TRUE(refusals.count(r.error().code))
                << r.error().code << ": " << r.error().detail;
            EXPECT_FALSE(fs::exists(out));
            std::printf("  refused %-55s %s: %s\n", path.filename().c_str(), r.error().code.c_str(),
                        r.error().detail.c_str());
            ++refused;
            continue;
        }
        ++signedCount;
        Check c = pdfsig(out);
        EXPECT_GE(c.signatures, 1) << c.pdfsigOutput;
        EXPECT_EQ(c.valid, c.signatures) << c.pdfsigOutput;
        EXPECT_TRUE(c.lastTotal) << c.pdfsigOutput;
        expectQpdfClean(path.string(), out);
        expectPrefix(path.string(), out);
        expectCmsVerifies(out);
        std::printf("  signed  %-55s\n", path.filename().c_str());
    }
    std::printf("corpus: %d signed, %d refused\n", signedCount, refused);
    EXPECT_GT(signedCount, 20);
}

}  // namespace
}  // namespace kyso::test

namespace kyso::test {
namespace {

// pdfsig's "Signature Validation" verdicts, in order.
std::vector<std::string> verdicts(const std::string& path) {
    std::string out;
    run("pdfsig -nocert " + shellQuote(path), &out);
    std::vector<std::string> v;
    std::istringstream in(out);
    std::string line;
    while (std::getline(in, line)) {
        const auto p = line.find("Signature Validation:");
        if (p != std::string::npos) {
            v.push_back(line.substr(p));
        }
    }
    return v;
}

TEST(Pades, SigningSignedDocumentsFromOtherProductsKeepsTheirVerdicts) {
    const std::string dir = corpusDir() + "/pdf/signed";
    ASSERT_TRUE(fs::is_directory(dir)) << dir;
    const std::set<std::string> refusals = {"pdf.encrypted", "pdf.permissions", "pdf.damaged",
                                            "pdf.certified_no_changes"};
    int signedCount = 0;
    for (const auto& path : sortedFiles(dir)) {
        SCOPED_TRACE(path.filename().string());
        const auto before = verdicts(path.string());
        const std::string out = tempDir("resign") + "/out.pdf";
        auto r = signer::signPdf(path.string(), out, rsaCredential(), {});
        if (!r.ok()) {
            EXPECT_TRUE(refusals.count(r.error().code))
                << r.error().code << ": " << r.error().detail;
            EXPECT_FALSE(fs::exists(out));
            std::printf("  refused %-55s %s\n", path.filename().c_str(), r.error().code.c_str());
            continue;
        }
        ++signedCount;
        const auto after = verdicts(out);
        ASSERT_EQ(after.size(), before.size() + 1);
        for (std::size_t i = 0; i < before.size(); ++i) {
            EXPECT_EQ(after[i], before[i]) << "signature " << i + 1 << " changed its verdict";
        }
        EXPECT_EQ(after.back(), "Signature Validation: Signature is Valid.");
        expectPrefix(path.string(), out);
        expectCmsVerifies(out);
        std::printf("  signed  %-55s (%zu earlier signatures)\n", path.filename().c_str(),
                    before.size());
    }
    std::printf("signed corpus: %d signed again\n", signedCount);
    EXPECT_GT(signedCount, 20);
}

}  // namespace
}  // namespace kyso::test

// Hybrid-reference files (a classic table whose trailer has /XRefStm), as Word writes them: our
// own (tests/data/pdf/make-hybrid.py, with a page, the fonts and the Info only in an object
// stream) and pyHanko's. The update must leave every reader with the same document.
namespace kyso::test {
namespace {

std::string toolOutput(const std::string& command) {
    std::string out;
    EXPECT_EQ(run(command, &out), 0) << command << "\n" << out;
    return out;
}

// pdffonts' table without its header: one line per font (name, type, encoding, object).
std::string fontsOf(const std::string& path) {
    const std::string out = toolOutput("pdffonts " + shellQuote(path) + " 2>&1");
    const auto p = out.find("---\n");
    return p == std::string::npos ? out : out.substr(out.find('\n', p) + 1);
}

TEST(PadesHybrid, WordStyleHybridFilesAreSignedForEveryReader) {
    const std::vector<std::string> files = {
        testDataDir() + "/pdf/hybrid-single.pdf", testDataDir() + "/pdf/hybrid-word.pdf",
        corpusDir() + "/pdf/unsigned/ph-minimal-hybrid-xref.pdf",
        corpusDir() + "/pdf/unsigned/ph-minimal-hybrid-xref-mswordstyle.pdf"};
    for (const auto& in : files) {
        SCOPED_TRACE(in);
        const std::string out = tempDir("hybrid") + "/signed.pdf";
        signer::PadesOptions o;
        o.reason = "Phê duyệt";
        auto r = signer::signPdf(in, out, rsaCredential(), o);
        ASSERT_TRUE(r.ok()) << r.error().code << ": " << r.error().detail;
        EXPECT_TRUE(r->hybridXref);
        Check c = pdfsig(out);
        EXPECT_EQ(c.signatures, 1) << c.pdfsigOutput;
        EXPECT_EQ(c.valid, 1) << c.pdfsigOutput;
        EXPECT_TRUE(c.lastTotal) << c.pdfsigOutput;
        expectQpdfClean(in, out);
        expectPrefix(in, out);
        expectCmsVerifies(out);
        // The new section is a classic table with no /XRefStm of its own (it would be stale).
        const std::string bytes = readFile(out);
        const std::string update = bytes.substr(fs::file_size(in));
        EXPECT_EQ(update.find("/XRefStm"), std::string::npos) << update.substr(update.size() - 300);
        EXPECT_NE(update.find("\nxref\n"), std::string::npos);
        // Text, fonts and pages as before, for poppler (which follows /XRefStm) ...
        EXPECT_EQ(toolOutput("pdftotext " + shellQuote(out) + " - 2>&1"),
                  toolOutput("pdftotext " + shellQuote(in) + " - 2>&1"));
        EXPECT_EQ(fontsOf(out), fontsOf(in));
        EXPECT_EQ(toolOutput("qpdf --show-npages " + shellQuote(out)),
                  toolOutput("qpdf --show-npages " + shellQuote(in)));
        // ... and for a reader that ignores it: qpdf --ignore-xref-streams sees our signature
        // field and the same pages it saw in the original.
        const std::string legacyIn =
            toolOutput("qpdf --ignore-xref-streams --show-npages " + shellQuote(in) + " 2>&1");
        const std::string legacyOut =
            toolOutput("qpdf --ignore-xref-streams --show-npages " + shellQuote(out) + " 2>&1");
        EXPECT_EQ(legacyOut, legacyIn);
        // Our verifier: intact, covering the whole file, nothing changed after it.
        auto sigs = signer::readPdfSignatures(out);
        ASSERT_TRUE(sigs.ok()) << sigs.error().detail;
        ASSERT_EQ(sigs->size(), 1u);
        EXPECT_TRUE((*sigs)[0].digestMatches);
        EXPECT_TRUE((*sigs)[0].signatureValid);
        EXPECT_EQ((*sigs)[0].coverage, signer::Coverage::EntireFile);
        EXPECT_EQ((*sigs)[0].modifications, signer::Modification::None);
        // And a second signature on top of the first: both valid.
        const std::string twice = tempDir("hybrid2") + "/twice.pdf";
        ASSERT_TRUE(signer::signPdf(out, twice, rsaCredential(), o).ok());
        Check c2 = pdfsig(twice);
        EXPECT_EQ(c2.valid, 2) << c2.pdfsigOutput;
        expectQpdfClean(in, twice);
    }
}

TEST(PadesHybrid, TheTestFilesAreWhatTheirScriptMakes) {
    const std::string dir = tempDir("hybrid-gen");
    ASSERT_EQ(run("python3 " + shellQuote(testDataDir() + "/pdf/make-hybrid.py") + " " + dir), 0);
    for (const char* name : {"hybrid-single.pdf", "hybrid-word.pdf"}) {
        SCOPED_TRACE(name);
        EXPECT_EQ(readFile(dir + "/" + name), readFile(testDataDir() + "/pdf/" + name));
        // Only the stream knows page 2 and the fonts: a reader that ignores it loses them, which
        // is what makes these files a test of the update keeping the stream reachable.
        std::string out;
        run("pdffonts " + shellQuote(dir + "/" + name) + " 2>&1", &out);
        EXPECT_NE(out.find("Times-Roman"), std::string::npos) << out;
    }
}

}  // namespace
}  // namespace kyso::test

// Encrypted documents: permission-protected ones (empty user password, what portals publish) are
// signed when their permissions allow it, with the update encrypted by the document's key;
// documents that need a password to open are signed only with that password.
namespace kyso::test {
namespace {

// qpdf's and pdfsig's options for a document password ('' for none).
std::string qpdfPassword(const std::string& pw) {
    return pw.empty() ? "" : "--password=" + shellQuote(pw) + " ";
}

// qpdf --show-encryption without its warnings (some inputs have a /Size one too large).
std::string encryptionOf(const std::string& path, const std::string& password) {
    std::string out;
    EXPECT_LE(run("qpdf " + qpdfPassword(password) + "--show-encryption " + shellQuote(path), &out),
              3)
        << out;
    std::string kept;
    std::istringstream in(out);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("WARNING", 0) != 0 &&
            line.find("succeeded with warnings") == std::string::npos) {
            kept += line + "\n";
        }
    }
    EXPECT_NE(kept.find("R = "), std::string::npos) << out;
    return kept;
}

// The signature dictionaries' strings as qpdf decrypts them (JSON v2: "u:" for text strings).
std::string decryptedObjects(const std::string& path, const std::string& password = "") {
    std::string out;
    EXPECT_LE(run("qpdf " + qpdfPassword(password) + "--json=2 --json-key=qpdf " +
                      shellQuote(path) + " 2>/dev/null",
                  &out),
              3);
    return out;
}

// Every outside check of a signed encrypted document, against its unsigned original.
void expectEncryptedSigned(const std::string& in, const std::string& out, int signatures,
                           const std::string& password = "") {
    // qpdf: clean, and the same security handler and permissions as before.
    std::string check;
    EXPECT_EQ(run("qpdf " + qpdfPassword(password) + "--check " + shellQuote(out), &check), 0)
        << check;
    EXPECT_EQ(check.find("WARNING"), std::string::npos) << check;
    EXPECT_EQ(encryptionOf(out, password), encryptionOf(in, password));
    // pdfsig (poppler decrypts the document, and reads /Contents unencrypted).
    std::string sig;
    run("pdfsig -nocert " + (password.empty() ? "" : "-upw " + shellQuote(password) + " ") +
            shellQuote(out),
        &sig);
    std::size_t valid = 0;
    for (auto p = sig.find("Signature is Valid."); p != std::string::npos;
         p = sig.find("Signature is Valid.", p + 1)) {
        ++valid;
    }
    EXPECT_EQ(valid, static_cast<std::size_t>(signatures)) << sig;
    EXPECT_NE(sig.rfind("Total document signed"), std::string::npos) << sig;
    expectPrefix(in, out);
    expectCmsVerifies(out);
    // Every string of the original still decrypts to the same text after the update, which
    // rewrote some of the original's objects (catalog, AcroForm, page, field): not double
    // encrypted, not left in plain where a reader decrypts.
    static const std::regex str(R"("[ub]:[^"]*")");
    auto stringsOf = [&](const std::string& path) {
        std::set<std::string> found;
        const std::string json = decryptedObjects(path, password);
        for (std::sregex_iterator it(json.begin(), json.end(), str), end; it != end; ++it) {
            found.insert(it->str());
        }
        return found;
    };
    const auto before = stringsOf(in);
    const auto after = stringsOf(out);
    EXPECT_FALSE(before.empty());
    for (const auto& s : before) {
        EXPECT_TRUE(after.count(s)) << s << " is no longer in the document";
    }
    // Our verifier, for documents that open without a password.
    if (password.empty()) {
        auto sigs = signer::readPdfSignatures(out);
        ASSERT_TRUE(sigs.ok()) << sigs.error().detail;
        ASSERT_FALSE(sigs->empty());
        EXPECT_TRUE(sigs->back().digestMatches);
        EXPECT_TRUE(sigs->back().signatureValid);
        EXPECT_EQ(sigs->back().modifications, signer::Modification::None);
    }
}

signer::PadesOptions encryptedOptions() {
    signer::PadesOptions o;
    o.reason = "Phê duyệt hồ sơ";
    o.location = "Hà Nội";
    o.durable = false;
    return o;
}

TEST(PadesEncrypted, PermissionProtectedDocumentsAreSignedWithTheirOwnEncryption) {
    const std::string dir = tempDir("encrypted");
    const std::string plain = corpusDir() + "/pdf/unsigned/ph-minimal.pdf";
    // AES-256 (R6), AES-128 (R4) and RC4-128 (R3), each with an empty user password and printing
    // or copying restricted: signing a new field is allowed.
    const std::vector<std::pair<std::string, std::string>> made = {
        {"aes256", "256 --print=none --extract=n"},
        {"aes128", "128 --use-aes=y --print=none"},
        {"rc4", "128 --use-aes=n --print=low"}};
    for (const auto& [name, args] : made) {
        SCOPED_TRACE(name);
        const std::string in = dir + "/" + name + ".pdf";
        ASSERT_EQ(run("qpdf --allow-weak-crypto --encrypt '' kyso-owner " + args + " -- " + plain +
                      " " + in),
                  0);
        const std::string out = dir + "/" + name + "-signed.pdf";
        auto r = signer::signPdf(in, out, rsaCredential(), encryptedOptions());
        ASSERT_TRUE(r.ok()) << r.error().code << ": " << r.error().detail;
        EXPECT_TRUE(r->encrypted);
        expectEncryptedSigned(in, out, 1);
        // The /Reason and /Location (Vietnamese, encrypted) decrypt to what was written, and
        // no string of ours is in the file in plain.
        const std::string objects = decryptedObjects(out);
        EXPECT_NE(objects.find("\"u:Phê duyệt hồ sơ\""), std::string::npos);
        EXPECT_NE(objects.find("\"u:Hà Nội\""), std::string::npos);
        EXPECT_NE(objects.find("\"u:Signature1\""), std::string::npos);
        const std::string update = readFile(out).substr(fs::file_size(in));
        EXPECT_EQ(update.find("(Signature1)"), std::string::npos);
        EXPECT_EQ(update.find("(D:20"), std::string::npos);
        // Signed again: both signatures valid, the first one's revision untouched.
        const std::string twice = dir + "/" + name + "-twice.pdf";
        ASSERT_TRUE(signer::signPdf(out, twice, rsaCredential(), encryptedOptions()).ok());
        expectEncryptedSigned(in, twice, 2);
    }
}

TEST(PadesEncrypted, PermissionsThatForbidSigningAreRefusedNamingThem) {
    const std::string dir = tempDir("encrypted-perms");
    // Form filling only (bit 9, R6): no new signature field, but an existing empty one.
    const std::string withField = corpusDir() + "/pdf/unsigned/ph-minimal-with-field.pdf";
    const std::string in = dir + "/form-only.pdf";
    ASSERT_EQ(run("qpdf --encrypt '' kyso-owner 256 --modify=form -- " + withField + " " + in), 0);
    auto refused = signer::signPdf(in, dir + "/out.pdf", rsaCredential(), encryptedOptions());
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code, "pdf.permissions");
    EXPECT_NE(refused.error().detail.find("bit 4"), std::string::npos) << refused.error().detail;
    EXPECT_NE(refused.error().detail.find("existing empty signature field"), std::string::npos);
    EXPECT_FALSE(fs::exists(dir + "/out.pdf"));
    signer::PadesOptions o = encryptedOptions();
    o.fieldName = "Sig1";
    auto intoField = signer::signPdf(in, dir + "/field.pdf", rsaCredential(), o);
    ASSERT_TRUE(intoField.ok()) << intoField.error().code << ": " << intoField.error().detail;
    expectEncryptedSigned(in, dir + "/field.pdf", 1);

    // Nothing allowed: refused whatever the field, and the detail says which permission.
    const std::string none = dir + "/none.pdf";
    ASSERT_EQ(run("qpdf --encrypt '' kyso-owner 256 --modify=none -- " + withField + " " + none),
              0);
    for (bool existing : {false, true}) {
        signer::PadesOptions n = encryptedOptions();
        if (existing) {
            n.fieldName = "Sig1";
        }
        auto r = signer::signPdf(none, dir + "/none-out.pdf", rsaCredential(), n);
        ASSERT_FALSE(r.ok());
        EXPECT_EQ(r.error().code, "pdf.permissions");
        EXPECT_NE(r.error().detail.find("bit"), std::string::npos) << r.error().detail;
        EXPECT_FALSE(fs::exists(dir + "/none-out.pdf"));
    }
    // The owner password lifts the restrictions.
    hsm::Secret owner("kyso-owner");
    signer::PadesOptions withOwner = encryptedOptions();
    withOwner.password = &owner;
    auto r = signer::signPdf(none, dir + "/owner.pdf", rsaCredential(), withOwner);
    ASSERT_TRUE(r.ok()) << r.error().code << ": " << r.error().detail;
    expectEncryptedSigned(none, dir + "/owner.pdf", 1);
}

TEST(PadesEncrypted, DssProtectedCorpusFilesAreSignedOrRefusedForTheirPermissions) {
    const std::string dir = corpusDir() + "/pdf/unsigned/";
    const std::string out = tempDir("dss-protected") + "/out.pdf";
    // Editing, forms and annotations forbidden.
    auto none = signer::signPdf(dir + "dss-protected-edition_protected_none.pdf", out,
                                rsaCredential(), encryptedOptions());
    ASSERT_FALSE(none.ok());
    EXPECT_EQ(none.error().code, "pdf.permissions");
    EXPECT_NE(none.error().detail.find("bit"), std::string::npos) << none.error().detail;
    // Forms and annotations allowed, "modify the document" not: no new field.
    auto restricted = signer::signPdf(dir + "dss-protected-restricted_fields.pdf", out,
                                      rsaCredential(), encryptedOptions());
    ASSERT_FALSE(restricted.ok());
    EXPECT_EQ(restricted.error().code, "pdf.permissions");
    EXPECT_NE(restricted.error().detail.find("bit 4"), std::string::npos)
        << restricted.error().detail;
    EXPECT_FALSE(fs::exists(out));
    // Signs NAME with the password PW and checks the result.
    auto signsWith = [&](const std::string& name, const std::string& pw) {
        hsm::Secret secret(pw);
        signer::PadesOptions o = encryptedOptions();
        o.password = &secret;
        auto r = signer::signPdf(dir + name, out, rsaCredential(), o);
        ASSERT_TRUE(r.ok()) << r.error().code << ": " << r.error().detail;
        expectEncryptedSigned(dir + name, out, 1, pw);
        fs::remove(out);
    };
    // A user password is needed to open these two ("open_protected"): refused without it,
    // signed with it (DSS's tests use a single space).
    for (const char* name :
         {"dss-protected-open_protected.pdf", "dss-protected-protected_two_empty_fields.pdf"}) {
        SCOPED_TRACE(name);
        auto locked = signer::signPdf(dir + name, out, rsaCredential(), encryptedOptions());
        ASSERT_FALSE(locked.ok());
        EXPECT_EQ(locked.error().code, "pdf.encrypted");
        EXPECT_FALSE(fs::exists(out));
        hsm::Secret wrong("not the password");
        signer::PadesOptions bad = encryptedOptions();
        bad.password = &wrong;
        auto refused = signer::signPdf(dir + name, out, rsaCredential(), bad);
        ASSERT_FALSE(refused.ok());
        EXPECT_EQ(refused.error().code, "pdf.encrypted");
        EXPECT_EQ(refused.error().detail.find("not the password"), std::string::npos);
        signsWith(name, " ");
    }
    // pyHanko's AES-256 and RC4 files, whose user password is "usersecret".
    for (const char* name : {"ph-minimal-aes256.pdf", "ph-minimal-rc4.pdf"}) {
        SCOPED_TRACE(name);
        signsWith(name, "usersecret");
    }
}

}  // namespace
}  // namespace kyso::test

namespace kyso::test {
namespace {

TEST(Pades, ObjectsOfAnOlderGenerationKeepTheirGenerationWhenRewritten) {
    // Catalog and page at generation 1 (as a tool that reuses freed object numbers writes
    // them): the update rewrites both and must write "1 1 obj", "3 1 obj", not generation 0.
    const std::vector<std::pair<int, std::string>> objs = {
        {1, "<< /Type /Catalog /Pages 2 0 R >>"},
        {0, "<< /Type /Pages /Kids [3 1 R] /Count 1 >>"},
        {1,
         "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
         "/Resources << /Font << /F1 5 0 R >> >> >>"},
        {0, "<< /Length 34 >>\nstream\nBT /F1 24 Tf 72 720 Td (Hi) Tj ET\nendstream"},
        {0, "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"}};
    std::string pdf = "%PDF-1.7\n%\xe2\xe3\xcf\xd3\n";
    std::vector<std::size_t> offs;
    for (std::size_t i = 0; i < objs.size(); ++i) {
        offs.push_back(pdf.size());
        pdf += std::to_string(i + 1) + " " + std::to_string(objs[i].first) + " obj\n" +
               objs[i].second + "\nendobj\n";
    }
    const std::size_t xref = pdf.size();
    pdf += "xref\n0 6\n0000000000 65535 f \n";
    for (std::size_t i = 0; i < objs.size(); ++i) {
        char line[32];
        std::snprintf(line, sizeof line, "%010zu %05d n \n", offs[i], objs[i].first);
        pdf += line;
    }
    pdf += "trailer\n<< /Size 6 /Root 1 1 R >>\nstartxref\n" + std::to_string(xref) + "\n%%EOF\n";
    const std::string dir = tempDir("generation");
    writeFile(dir + "/in.pdf", pdf);
    std::string check;
    ASSERT_EQ(run("qpdf --check " + dir + "/in.pdf", &check), 0) << check;
    signAndCheck(dir + "/in.pdf", 1);
    const std::string out = dir + "/out.pdf";
    ASSERT_TRUE(signer::signPdf(dir + "/in.pdf", out, rsaCredential(), {}).ok());
    const std::string update = readFile(out).substr(pdf.size());
    EXPECT_NE(update.find("\n1 1 obj\n"), std::string::npos) << update.substr(0, 400);
    EXPECT_NE(update.find("\n3 1 obj\n"), std::string::npos);
    EXPECT_EQ(update.find("\n3 0 obj\n"), std::string::npos);
    // qpdf reads the page with its new /Annots (the signature widget) at generation 1.
    std::string page;
    run("qpdf --show-object=3,1 " + shellQuote(out), &page);
    EXPECT_NE(page.find("/Annots"), std::string::npos) << page;
}

}  // namespace
}  // namespace kyso::test
