// Validation end to end: signatures made by the demo's service, checked through POST
// /api/v1/verify and `kyso verify` against the demo's trust anchor, its OCSP responder and CRLs
// (served by the same process), and against PKIs made by the openssl CLI.
#include <Poco/JSON/Array.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <fstream>
#include <functional>

#include "kyso/api/http_fetch.h"
#include "kyso/ca-bridge/crl.h"
#include "kyso/ca-bridge/issuer.h"
#include "kyso/hsm/encoding.h"
#include "kyso/policies/validation.h"
#include "kyso/signer/pades.h"
#include "pdf_update.h"
#include "rest_env.h"

namespace kyso::test {
namespace {

using Poco::JSON::Object;

// Signs the sample through the service as officer-1 at `level`; returns the signed file.
std::string signedByService(const std::string& level, const std::string& in = samplePdf()) {
    auto& env = Env::get();
    const std::string out = tempDir("verify") + "/signed.pdf";
    auto r = env.request("POST", "/api/v1/sign/pdf?credential=officer-1&level=" + level,
                         env.keys["officer-1"], in, "application/pdf", out);
    EXPECT_EQ(r.status, 200) << r.body;
    return out;
}

Object::Ptr verifyPdf(const std::string& path, int expectStatus = 200) {
    auto& env = Env::get();
    auto r = env.request("POST", "/api/v1/verify", env.keys["portal"], path, "application/pdf");
    EXPECT_EQ(r.status, expectStatus) << r.body;
    EXPECT_NE(r.header("Content-Type").find("json"), std::string::npos);
    return r.json();
}

Object::Ptr signatureOf(const Object::Ptr& report, unsigned i) {
    return report->getArray("signatures")->getObject(i);
}

std::string str(const Object::Ptr& o, const std::string& key) {
    return o->isNull(key) ? "null" : o->getValue<std::string>(key);
}

// A certificate for a new key on the demo token, issued by the demo's issuing CA (recorded, so
// its OCSP responder knows it), with the given revocation URLs.
hsm::Credential issueOfficer(const std::string& label, const std::string& crlUrl,
                             const std::string& ocspUrl) {
    auto& env = Env::get();
    hsm::Credential c;
    c.id = label;
    c.kind = "officer";
    c.token = env.token.get();
    hsm::KeySpec spec;
    spec.type = hsm::KeyType::Rsa;
    spec.rsaBits = 2048;
    spec.label = label;
    c.key = env.token->generateKey(spec).value();
    hsm::chooseDefaultAlgorithms(c);
    const hsm::Credential* issuing = env.creds->find("issuing-ca");
    ca::CertificateProfile p;
    p.subject = {{"C", "VN"}, {"O", "Kyso Test"}, {"CN", "Trần Thị Bình " + label}};
    p.publicKeyDer = c.key.publicKeyDer;
    p.digitalSignature = true;
    p.nonRepudiation = true;
    p.crlUrl = crlUrl;
    p.ocspUrl = ocspUrl;
    c.certificateDer = ca::issueCertificate(p, *issuing).value();
    c.chainDer = {issuing->certificateDer};
    EXPECT_TRUE(env.store->recordIssued("issuing-ca", ca::serialHexOf(c.certificateDer), label));
    return c;
}

std::string signLocally(const hsm::Credential& c) {
    const std::string out = tempDir("verify") + "/signed.pdf";
    auto r = signer::signPdf(samplePdf(), out, c, signer::PadesOptions{});
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().detail);
    return out;
}

TEST(Verify, OwnBBSignaturePasses) {
    auto report = verifyPdf(signedByService("B-B"));
    EXPECT_EQ(str(report, "indication"), "TOTAL_PASSED");
    EXPECT_EQ(report->getValue<int>("signaturesCount"), 1);
    EXPECT_EQ(report->getValue<int>("validSignaturesCount"), 1);
    EXPECT_EQ(str(report, "policy"), "default");
    auto s = signatureOf(report, 0);
    EXPECT_EQ(str(s, "format"), "PAdES-BASELINE-B");
    EXPECT_EQ(str(s, "indication"), "TOTAL_PASSED");
    EXPECT_EQ(str(s, "subIndication"), "null");
    EXPECT_EQ(str(s, "signedBy"), "Nguyễn Văn An");
    EXPECT_EQ(str(s, "coverage"), "ENTIRE_FILE");
    EXPECT_EQ(str(s, "modificationsAfterSigning"), "NONE");
    auto chain = s->getArray("certificateChain");
    ASSERT_EQ(chain->size(), 3u);  // officer, issuing CA, root
    EXPECT_FALSE(chain->getObject(0)->getValue<bool>("trusted"));
    EXPECT_TRUE(chain->getObject(2)->getValue<bool>("trusted"));
    auto rev = s->getObject("revocation");
    EXPECT_EQ(str(rev, "status"), "GOOD");
    EXPECT_EQ(str(rev, "source"), "OCSP");
    EXPECT_EQ(s->getArray("timestamps")->size(), 0u);
    EXPECT_EQ(s->getArray("errors")->size(), 0u) << str(s, "errors");
}

TEST(Verify, OwnBTSignaturePassesWithItsTimestampAsBestTime) {
    auto report = verifyPdf(signedByService("B-T"));
    EXPECT_EQ(str(report, "indication"), "TOTAL_PASSED");
    auto s = signatureOf(report, 0);
    EXPECT_EQ(str(s, "format"), "PAdES-BASELINE-T");
    auto ts = s->getArray("timestamps");
    ASSERT_EQ(ts->size(), 1u);
    EXPECT_EQ(str(ts->getObject(0), "type"), "SIGNATURE");
    EXPECT_EQ(str(ts->getObject(0), "indication"), "TOTAL_PASSED");
    EXPECT_NE(str(ts->getObject(0), "tsa").find("CN="), std::string::npos);
    EXPECT_EQ(str(s, "bestSignatureTime"), str(ts->getObject(0), "genTime"));
}

TEST(Verify, TwoSignaturesBothPass) {
    const std::string once = signedByService("B-T");
    const std::string twice = signedByService("B-T", once);
    auto report = verifyPdf(twice);
    EXPECT_EQ(str(report, "indication"), "TOTAL_PASSED");
    ASSERT_EQ(report->getValue<int>("signaturesCount"), 2);
    EXPECT_EQ(report->getValue<int>("validSignaturesCount"), 2);
    EXPECT_EQ(str(signatureOf(report, 0), "coverage"), "ENTIRE_REVISION");
    EXPECT_EQ(str(signatureOf(report, 0), "modificationsAfterSigning"), "SIGNATURES_ONLY");
    EXPECT_EQ(str(signatureOf(report, 1), "coverage"), "ENTIRE_FILE");
    EXPECT_EQ(str(signatureOf(report, 1), "modificationsAfterSigning"), "NONE");
}

TEST(Verify, FlippedByteFailsWithHashFailure) {
    const std::string path = signedByService("B-B");
    std::string pdf = readFile(path);
    // A byte of the original document, well inside the first signed range.
    const auto at = pdf.find("stream") + 10;
    pdf[at] = static_cast<char>(pdf[at] ^ 0x01);
    writeFile(path, pdf);
    auto report = verifyPdf(path);
    EXPECT_EQ(str(report, "indication"), "TOTAL_FAILED");
    EXPECT_EQ(str(signatureOf(report, 0), "subIndication"), "HASH_FAILURE");
}

TEST(Verify, RewrittenByteRangeFails) {
    const std::string path = signedByService("B-B");
    std::string pdf = readFile(path);
    const auto br = pdf.rfind("/ByteRange");
    ASSERT_NE(br, std::string::npos);
    const auto open = pdf.find('[', br);
    const auto close = pdf.find(']', open);
    std::istringstream in(pdf.substr(open + 1, close - open - 1));
    long long a = 0, b = 0, c = 0, d = 0;
    in >> a >> b >> c >> d;
    // The same length of text, but the first range now stops 10 bytes short: those bytes fall
    // in the gap and are not signed.
    std::string numbers = std::to_string(a) + " " + std::to_string(b - 10) + " " +
                          std::to_string(c) + " " + std::to_string(d);
    ASSERT_LE(numbers.size(), close - open - 1);
    numbers.resize(close - open - 1, ' ');
    pdf.replace(open + 1, close - open - 1, numbers);
    writeFile(path, pdf);
    auto report = verifyPdf(path);
    EXPECT_EQ(str(report, "indication"), "TOTAL_FAILED");
    auto s = signatureOf(report, 0);
    EXPECT_EQ(str(s, "coverage"), "UNCLEAR");
    EXPECT_EQ(str(s, "indication"), "TOTAL_FAILED");
    EXPECT_EQ(str(s, "subIndication"), "FORMAT_FAILURE");
}

// Incremental updates appended after our signature, each a tampered copy a portal must refuse.
TEST(Verify, ChangesAfterSigningFail) {
    struct Case {
        const char* name;
        std::function<PdfUpdate(const std::string& path, const PdfInfo& info)> update;
    };
    const Case cases[] = {
        {"page content replaced",
         [](const std::string&, const PdfInfo& info) {
             PdfUpdate u;
             u.objects.push_back(
                 {info.contents.at(0), 0, pdfStream("BT /F1 24 Tf 72 720 Td (Forged) Tj ET")});
             return u;
         }},
        {"page added",
         [](const std::string& path, const PdfInfo& info) {
             PdfUpdate u;
             const int page = info.size;
             std::string kids = "[";
             for (int p : info.pages) {
                 kids += std::to_string(p) + " 0 R ";
             }
             kids += std::to_string(page) + " 0 R]";
             u.objects.push_back({page, 0,
                                  "<< /Type /Page /Parent " + std::to_string(info.pagesRoot) +
                                      " 0 R /MediaBox [0 0 595 842] /Contents " +
                                      std::to_string(info.contents.at(0)) + " 0 R >>"});
             u.objects.push_back(
                 {info.pagesRoot, 0,
                  pdfEditedDict(
                      path, info.pagesRoot,
                      {{"/Kids", kids}, {"/Count", std::to_string(info.pages.size() + 1)}})});
             return u;
         }},
        {"signature appearance replaced",
         [](const std::string& path, const PdfInfo& info) {
             PdfUpdate u;
             int widget = 0;
             for (const auto& f : info.fields) {
                 if (f.isSigned && !f.widgets.empty()) {
                     widget = f.widgets[0];
                 }
             }
             const int ap = info.size;
             u.objects.push_back({ap, 0,
                                  pdfStream("0 0 1 rg 0 0 100 50 re f",
                                            "/Type /XObject /Subtype /Form /BBox [0 0 100 50]")});
             u.objects.push_back({widget, 0,
                                  pdfEditedDict(path, widget,
                                                {{"/AP", "<< /N " + std::to_string(ap) + " 0 R >>"},
                                                 {"/Rect", "[72 72 172 122]"}})});
             return u;
         }},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        const std::string path = signedByService("B-T");
        appendPdfUpdate(path, c.update(path, readPdfInfo(path)));
        auto report = verifyPdf(path);
        EXPECT_EQ(str(report, "indication"), "TOTAL_FAILED");
        auto s = signatureOf(report, 0);
        EXPECT_EQ(str(s, "coverage"), "ENTIRE_REVISION");
        EXPECT_EQ(str(s, "modificationsAfterSigning"), "OTHER");
        EXPECT_EQ(str(s, "subIndication"), "FORMAT_FAILURE");
        EXPECT_GE(s->getArray("errors")->size(), 1u);
    }
}

// An annotation added after signing: beyond the default policy (FORM_FILLING), within a policy
// that allows annotations.
TEST(Verify, AnnotationAfterSigningFollowsThePolicy) {
    const std::string path = signedByService("B-B");
    PdfInfo info = readPdfInfo(path);
    const int annot = info.size;
    std::string annots = "[";
    for (const auto& f : info.fields) {
        for (int w : f.widgets) {
            annots += std::to_string(w) + " 0 R ";
        }
    }
    annots += std::to_string(annot) + " 0 R]";
    PdfUpdate u;
    u.objects.push_back({annot, 0,
                         "<< /Type /Annot /Subtype /Text /Rect [72 72 92 92] /Contents (Đã xem) "
                         "/P " +
                             std::to_string(info.pages.at(0)) + " 0 R >>"});
    u.objects.push_back(
        {info.pages.at(0), 0, pdfEditedDict(path, info.pages.at(0), {{"/Annots", annots}})});
    appendPdfUpdate(path, u);
    auto report = verifyPdf(path);
    auto s = signatureOf(report, 0);
    EXPECT_EQ(str(s, "modificationsAfterSigning"), "ANNOTATIONS");
    EXPECT_EQ(str(s, "indication"), "TOTAL_FAILED");
    EXPECT_EQ(str(s, "subIndication"), "FORMAT_FAILURE");

    auto& env = Env::get();
    api::Config cfg = env.cfg;
    cfg.signing.validation.maxModifications = "ANNOTATIONS";
    auto lenient = api::Verifier::make(cfg, nullptr).value()->pdf(path);
    ASSERT_TRUE(lenient.ok());
    EXPECT_EQ(lenient->indication, "TOTAL_PASSED");
    EXPECT_FALSE(lenient->signatures.at(0).warnings.empty());
}

// Universal signature forgery (Mladenov et al., 2019): a second "signature" whose dictionary
// lacks the values a viewer would check. It must fail, so the document does not pass.
TEST(Verify, UniversalSignatureForgeriesFail) {
    const std::pair<const char*, const char*> variants[] = {
        {"no /Contents", "/ByteRange [0 10 20 30]"},
        {"empty /Contents", "/ByteRange [0 10 20 30] /Contents <>"},
        {"no /ByteRange", "/Contents <3082>"},
        {"null /ByteRange", "/ByteRange null /Contents <3082>"},
        {"zero /ByteRange", "/ByteRange [0 0 0 0] /Contents <3082>"},
    };
    for (const auto& [name, keys] : variants) {
        SCOPED_TRACE(name);
        const std::string path = signedByService("B-B");
        PdfInfo info = readPdfInfo(path);
        const int sig = info.size;
        const int field = info.size + 1;
        const std::string page = std::to_string(info.pages.at(0)) + " 0 R";
        std::string fields = "[";
        std::string annots = "[";
        for (const auto& f : info.fields) {
            fields += std::to_string(f.num) + " 0 R ";
            for (int w : f.widgets) {
                annots += std::to_string(w) + " 0 R ";
            }
        }
        fields += std::to_string(field) + " 0 R]";
        annots += std::to_string(field) + " 0 R]";
        PdfUpdate u;
        u.objects.push_back({sig, 0,
                             std::string("<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter "
                                         "/ETSI.CAdES.detached ") +
                                 keys + " >>"});
        u.objects.push_back({field, 0,
                             "<< /FT /Sig /T (Forged) /V " + std::to_string(sig) +
                                 " 0 R /Type /Annot /Subtype /Widget /Rect [0 0 0 0] /F 132 /P " +
                                 page + " >>"});
        if (info.acroForm != 0) {
            u.objects.push_back(
                {info.acroForm, 0, pdfEditedDict(path, info.acroForm, {{"/Fields", fields}})});
        } else {
            u.objects.push_back(
                {info.root, 0,
                 pdfEditedDict(path, info.root,
                               {{"/AcroForm", "<< /Fields " + fields + " /SigFlags 3 >>"}})});
        }
        u.objects.push_back(
            {info.pages.at(0), 0, pdfEditedDict(path, info.pages.at(0), {{"/Annots", annots}})});
        appendPdfUpdate(path, u);
        auto report = verifyPdf(path);
        EXPECT_EQ(str(report, "indication"), "TOTAL_FAILED");
        ASSERT_EQ(report->getValue<int>("signaturesCount"), 2);
        EXPECT_EQ(report->getValue<int>("validSignaturesCount"), 1);
        Object::Ptr forged = signatureOf(report, 0);
        if (str(forged, "fieldName") != "Forged") {
            forged = signatureOf(report, 1);
        }
        ASSERT_EQ(str(forged, "fieldName"), "Forged");
        EXPECT_EQ(str(forged, "indication"), "TOTAL_FAILED");
        EXPECT_EQ(str(forged, "subIndication"), "FORMAT_FAILURE");
    }
}

TEST(Verify, UnsignedDocumentHasNoSignature) {
    auto report = verifyPdf(samplePdf());
    EXPECT_EQ(str(report, "indication"), "NO_SIGNATURE_FOUND");
    EXPECT_EQ(report->getValue<int>("signaturesCount"), 0);
}

TEST(Verify, InputErrorsAreProblems) {
    auto& env = Env::get();
    const std::string dir = tempDir("verify-bad");
    writeFile(dir + "/junk", "this is not a document");
    expectProblem(env.request("POST", "/api/v1/verify", env.keys["portal"], dir + "/junk"), 415,
                  "pdf.not_pdf");
    expectProblem(env.request("POST", "/api/v1/verify", env.keys["portal"], dir + "/junk",
                              "application/pkcs7-signature"),
                  422, "cms.invalid");
    expectProblem(
        env.request("POST", "/api/v1/verify", env.keys["portal"], dir + "/junk", "text/plain"), 415,
        "content_type.unsupported");
    expectProblem(env.request("POST", "/api/v1/verify", "", dir + "/junk"), 401, "auth.required");
    expectProblem(env.request("POST", "/api/v1/verify?x=1", env.keys["portal"], dir + "/junk"), 400,
                  "request.invalid");
}

TEST(Verify, CmsDetachedAndAttached) {
    auto& env = Env::get();
    const std::string dir = tempDir("verify-cms");
    writeFile(dir + "/data.txt", "Biên lai thu phí số 0001\n");
    auto det =
        env.request("POST", "/api/v1/sign/cms?credential=officer-1&level=B-T",
                    env.keys["officer-1"], dir + "/data.txt", "text/plain", dir + "/sig.p7s");
    ASSERT_EQ(det.status, 200) << det.body;
    auto r = env.requestParts("/api/v1/verify", env.keys["portal"],
                              {{"signature", dir + "/sig.p7s"}, {"data", dir + "/data.txt"}});
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(str(r.json(), "indication"), "TOTAL_PASSED") << r.body;
    EXPECT_EQ(str(signatureOf(r.json(), 0), "format"), "CAdES-BASELINE-T");
    // Other data under the same signature.
    writeFile(dir + "/other.txt", "Biên lai thu phí số 0002\n");
    r = env.requestParts("/api/v1/verify", env.keys["portal"],
                         {{"signature", dir + "/sig.p7s"}, {"data", dir + "/other.txt"}});
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(str(r.json(), "indication"), "TOTAL_FAILED");
    EXPECT_EQ(str(signatureOf(r.json(), 0), "subIndication"), "HASH_FAILURE");
    // Multipart bodies that do not say what is what.
    expectProblem(
        env.requestParts("/api/v1/verify", env.keys["portal"], {{"document", dir + "/sig.p7s"}}),
        400, "request.invalid");
    expectProblem(
        env.requestParts("/api/v1/verify", env.keys["portal"], {{"data", dir + "/data.txt"}}), 400,
        "cms.empty");
    // Detached without its data: a clear error.
    expectProblem(env.request("POST", "/api/v1/verify", env.keys["portal"], dir + "/sig.p7s",
                              "application/pkcs7-signature"),
                  422, "cms.data_missing");
    // Attached.
    auto att =
        env.request("POST", "/api/v1/sign/cms?credential=officer-1&detached=false",
                    env.keys["officer-1"], dir + "/data.txt", "text/plain", dir + "/att.p7m");
    ASSERT_EQ(att.status, 200) << att.body;
    r = env.request("POST", "/api/v1/verify", env.keys["portal"], dir + "/att.p7m",
                    "application/pkcs7-mime");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(str(r.json(), "indication"), "TOTAL_PASSED") << r.body;
}

TEST(Verify, RevokedCertificateFailsThroughOcspAndThroughCrl) {
    auto& env = Env::get();
    const std::string base = "https://127.0.0.1:" + std::to_string(env.service->port());
    hsm::Credential c =
        issueOfficer("officer-revoked", base + "/ca/issuing-ca.crl", base + "/ocsp");
    const std::string signedPdf = signLocally(c);
    // Revoked before anyone asked: no cached status hides it.
    ASSERT_TRUE(env.store->revokeCertificate("issuing-ca", ca::serialHexOf(c.certificateDer),
                                             1 /* keyCompromise */));
    // Through OCSP (the service's own verifier).
    auto report = verifyPdf(signedPdf);
    auto s = signatureOf(report, 0);
    EXPECT_EQ(str(report, "indication"), "TOTAL_FAILED");
    EXPECT_EQ(str(s, "subIndication"), "REVOKED");
    EXPECT_EQ(str(s->getObject("revocation"), "status"), "REVOKED");
    EXPECT_EQ(str(s->getObject("revocation"), "source"), "OCSP");
    EXPECT_NE(str(s->getObject("revocation"), "revocationTime"), "null");
    // Through the CRL: a checker whose OCSP requests get no answer.
    auto http = api::makeHttpFetch(env.dir + "/pki/root-ca.pem", 5);
    ca::RevocationChecker crlOnly(
        [&](const std::string& url, const std::string& body, const std::string& type) {
            if (url.find("/ocsp") != std::string::npos) {
                return Result<std::string>(Error::make("net.refused", "no OCSP here"));
            }
            return http(url, body, type);
        });
    policies::ValidationContext ctx;
    ctx.anchorsDer = ca::certificatesFromPem(readFile(env.dir + "/pki/root-ca.pem")).value();
    ctx.revocation = &crlOnly;
    auto viaCrl = policies::validatePdf(signedPdf, ctx);
    ASSERT_TRUE(viaCrl.ok());
    ASSERT_EQ(viaCrl->signatures.size(), 1u);
    EXPECT_EQ(viaCrl->indication, "TOTAL_FAILED");
    EXPECT_EQ(viaCrl->signatures[0].subIndication, "REVOKED");
    EXPECT_EQ(viaCrl->signatures[0].revocation.source, "CRL");
}

// A TCP port that accepts connections (the kernel queues them) and never answers.
struct SilentServer {
    int fd = -1;
    int port = 0;
    SilentServer() {
        fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
        ::listen(fd, 16);
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
        port = ntohs(a.sin_port);
    }
    ~SilentServer() { ::close(fd); }
};

TEST(Verify, SilentResponderGivesTryLater) {
    auto& env = Env::get();
    SilentServer silent;
    const std::string base = "http://127.0.0.1:" + std::to_string(silent.port);
    hsm::Credential c = issueOfficer("officer-unreachable", base + "/crl", base + "/ocsp");
    const std::string signedPdf = signLocally(c);
    api::Config cfg = env.cfg;
    cfg.validation.timeoutSeconds = 1;
    auto verifier = api::Verifier::make(cfg, nullptr).value();
    auto report = verifier->pdf(signedPdf);
    ASSERT_TRUE(report.ok());
    EXPECT_EQ(report->indication, "INDETERMINATE");
    ASSERT_EQ(report->signatures.size(), 1u);
    const auto& s = report->signatures[0];
    EXPECT_EQ(s.subIndication, "TRY_LATER");
    EXPECT_EQ(s.revocation.status, "UNAVAILABLE");
    EXPECT_FALSE(s.warnings.empty());
}

// A root and a leaf for a token key made by the openssl CLI: the leaf is valid for one day from
// `notBefore`, so fixed validation times fall inside and after it.
struct OpensslPki {
    std::string dir, rootPem, leafPem, otherPem;
};

OpensslPki opensslPki(const hsm::KeyInfo& key, const std::string& tag) {
    OpensslPki p;
    p.dir = tempDir("openssl-" + tag);
    const std::string d = shellQuote(p.dir);
    writeFile(p.dir + "/pub.der", key.publicKeyDer);
    writeFile(p.dir + "/leaf.cnf",
              "[ext]\nkeyUsage=critical,digitalSignature,nonRepudiation\n"
              "basicConstraints=CA:FALSE\n");
    std::string out;
    const int rc =
        run("cd " + d +
                " && (openssl req -x509 -newkey rsa:2048 -nodes -keyout root.key "
                "-subj '/C=VN/O=Other Root/CN=Other Root CA' -days 3650 -out root.pem "
                "&& openssl pkey -pubin -inform DER -in pub.der -out pub.pem "
                "&& openssl req -new -newkey rsa:2048 -nodes -keyout tmp.key -utf8 "
                "-subj '/C=VN/O=Kyso Test/CN=Lê Văn Cường' -out leaf.csr "
                "&& openssl x509 -req -in leaf.csr -CA root.pem -CAkey root.key "
                "-force_pubkey pub.pem -set_serial 4242 -days 1 -extfile leaf.cnf "
                "-extensions ext -out leaf.pem "
                // A second certificate for the same key, same issuer and serial, another name
                // of the same length (for the substitution test).
                "&& openssl req -new -key tmp.key -utf8 "
                "-subj '/C=VN/O=Kyso Test/CN=Lê Văn Cườnh' -out other.csr "
                "&& openssl x509 -req -in other.csr -CA root.pem -CAkey root.key "
                "-force_pubkey pub.pem -set_serial 4242 -days 1 -extfile leaf.cnf "
                "-extensions ext -out other.pem) >openssl.log 2>&1 || (cat openssl.log; false)",
            &out);
    EXPECT_EQ(rc, 0) << out;
    p.rootPem = p.dir + "/root.pem";
    p.leafPem = p.dir + "/leaf.pem";
    p.otherPem = p.dir + "/other.pem";
    return p;
}

// A new key on the demo token with its certificates from opensslPki().
hsm::Credential otherPkiCredential(const std::string& label, OpensslPki* pki) {
    auto& env = Env::get();
    hsm::Credential c;
    c.id = label;
    c.token = env.token.get();
    hsm::KeySpec spec;
    spec.label = label;
    c.key = env.token->generateKey(spec).value();
    hsm::chooseDefaultAlgorithms(c);
    *pki = opensslPki(c.key, label);
    c.certificateDer = ca::certificatesFromPem(readFile(pki->leafPem)).value().at(0);
    return c;
}

TEST(Verify, UnknownRootAndExpiredCertificate) {
    OpensslPki pki;
    hsm::Credential c = otherPkiCredential("other-pki", &pki);
    const std::string signedPdf = signLocally(c);

    // The demo's anchors do not know this root.
    auto report = verifyPdf(signedPdf);
    EXPECT_EQ(str(report, "indication"), "INDETERMINATE");
    EXPECT_EQ(str(signatureOf(report, 0), "subIndication"), "NO_CERTIFICATE_CHAIN_FOUND");
    EXPECT_EQ(signatureOf(report, 0)->getArray("certificateChain")->size(), 1u);

    // With that root as the anchor, two days later (fixed validation time): expired, and no
    // timestamp proves the signature was made in time.
    policies::ValidationContext ctx;
    ctx.anchorsDer = ca::certificatesFromPem(readFile(pki.rootPem)).value();
    ctx.validationTime = std::time(nullptr) + 2 * 86400;
    auto later = policies::validatePdf(signedPdf, ctx);
    ASSERT_TRUE(later.ok());
    EXPECT_EQ(later->indication, "INDETERMINATE");
    EXPECT_EQ(later->signatures.at(0).subIndication, "OUT_OF_BOUNDS_NO_POE");
    // Now, with no revocation source configured: never a silent pass.
    ctx.validationTime = 0;
    auto now = policies::validatePdf(signedPdf, ctx);
    ASSERT_TRUE(now.ok());
    EXPECT_EQ(now->signatures.at(0).subIndication, "TRY_LATER");
    EXPECT_EQ(now->signatures.at(0).certificateChain.size(), 2u);
    EXPECT_TRUE(now->signatures.at(0).certificateChain.at(1).trusted);
}

// The certificate in the CMS swapped for another with the same key, issuer and serial: the
// signature value still verifies, but the signed signing-certificate-v2 names the first one.
TEST(Verify, SubstitutedSignerCertificateFails) {
    OpensslPki pki;
    hsm::Credential c = otherPkiCredential("substituted", &pki);
    const std::string other = ca::certificatesFromPem(readFile(pki.otherPem)).value().at(0);
    ASSERT_EQ(other.size(), c.certificateDer.size());
    const std::string path = signLocally(c);

    policies::ValidationContext ctx;
    ctx.anchorsDer = ca::certificatesFromPem(readFile(pki.rootPem)).value();
    auto before = policies::validatePdf(path, ctx);
    ASSERT_TRUE(before.ok());
    EXPECT_EQ(before->signatures.at(0).subIndication, "TRY_LATER");  // intact, no revocation

    std::string pdf = readFile(path);
    const auto at = pdf.find(hsm::hexOf(c.certificateDer, true));
    ASSERT_NE(at, std::string::npos);
    pdf.replace(at, other.size() * 2, hsm::hexOf(other, true));
    writeFile(path, pdf);
    auto after = policies::validatePdf(path, ctx);
    ASSERT_TRUE(after.ok());
    const auto& s = after->signatures.at(0);
    EXPECT_EQ(s.indication, "TOTAL_FAILED");
    EXPECT_EQ(s.subIndication, "FORMAT_FAILURE");
    EXPECT_NE(s.signedBy.find("Cườnh"), std::string::npos);  // what a careless viewer would show
    bool named = false;
    for (const auto& e : s.errors) {
        named = named || e.find("names another certificate") != std::string::npos;
    }
    EXPECT_TRUE(named);
}

TEST(Verify, CliExitCodes) {
    auto& env = Env::get();
    const std::string conf = env.dir + "/verify-cli.conf";
    // The demo's configuration, listening where this process serves (the CRL/OCSP URLs).
    std::string text = readFile(env.dir + "/kyso.conf");
    writeFile(conf, text);
    std::string out;
    const std::string kyso = KYSO_BINARY;
    const std::string good = signedByService("B-T");
    EXPECT_EQ(run(kyso + " verify --config " + shellQuote(conf) + " " + shellQuote(good), &out), 0)
        << out;
    EXPECT_NE(out.find("\"TOTAL_PASSED\""), std::string::npos) << out;
    std::string pdf = readFile(good);
    pdf[pdf.find("stream") + 10] ^= 0x01;
    writeFile(env.dir + "/bad.pdf", pdf);
    EXPECT_EQ(
        run(kyso + " verify --config " + shellQuote(conf) + " " + shellQuote(env.dir + "/bad.pdf"),
            &out),
        1)
        << out;
    EXPECT_EQ(
        run(kyso + " verify --config " + shellQuote(conf) + " " + shellQuote(samplePdf()), &out), 2)
        << out;
    writeFile(env.dir + "/junk.bin", "junk");
    EXPECT_EQ(
        run(kyso + " verify --config " + shellQuote(conf) + " " + shellQuote(env.dir + "/junk.bin"),
            &out),
        65)
        << out;
    EXPECT_EQ(run(kyso + " verify --config " + shellQuote(conf), &out), 64) << out;
}

// The service verifying certificates of its own embedded CA answers their OCSP requests in
// process. Over HTTP to itself, with every worker thread busy verifying, the requests would wait
// for a thread none of them frees (until the fetch timed out). A demo of its own (its
// certificates name its port) served by `kyso serve` with 2 threads: 6 verifications at once,
// all TOTAL_PASSED, and no request to its /ocsp or /ca/ in its access log.
TEST(Verify, OwnCertificatesAreCheckedInProcessWithEveryThreadBusy) {
    const std::string dir = tempDir("verify-busy");
    const std::string demo = dir + "/demo";
    const std::string listen = "127.0.0.1:" + std::to_string(freePort());
    std::string out;
    ASSERT_EQ(
        run(std::string(KYSO_BINARY) + " demo init --dir " + demo + " --listen " + listen + " 2>&1",
            &out),
        0)
        << out;
    std::string conf = readFile(demo + "/kyso.conf");
    const auto at = conf.find("threads = 8");
    ASSERT_NE(at, std::string::npos) << conf;
    conf.replace(at, 11, "threads = 2");
    writeFile(demo + "/kyso.conf", conf);
    ServeProcess serve = startServe(demo + "/kyso.conf");
    ASSERT_FALSE(serve.port.empty()) << readFile(serve.log);
    const std::string base = "https://" + listen;
    const std::string ca = demo + "/pki/root-ca.pem";
    const std::string pdf = dir + "/signed.pdf";
    ASSERT_EQ(curlRequest(ca, base, "POST", "/api/v1/sign/pdf?credential=officer-1&level=B-T",
                          demoApiKey(demo, "officer-1"), samplePdf(), "application/pdf", pdf)
                  .status,
              200)
        << readFile(pdf);
    writeFile(dir + "/auth", "Authorization: Bearer " + demoApiKey(demo, "portal") + "\n");
    const std::string cmd =
        "seq 6 | xargs -P 6 -I{} curl -sS --max-time 60 --cacert " + shellQuote(ca) + " -H @" +
        dir + "/auth" + " -H 'Content-Type: application/pdf' --data-binary @" + shellQuote(pdf) +
        " -o " + dir + "/report-{}.json -w '%{http_code}\\n' " + base + "/api/v1/verify";
    std::string codes;
    EXPECT_EQ(run(cmd, &codes), 0) << codes;
    for (int i = 1; i <= 6; ++i) {
        const std::string report = readFile(dir + "/report-" + std::to_string(i) + ".json");
        EXPECT_NE(report.find("\"indication\":\"TOTAL_PASSED\""), std::string::npos)
            << i << ": " << report;
    }
    EXPECT_EQ(codes, "200\n200\n200\n200\n200\n200\n");
    const std::string log = readFile(serve.log);
    EXPECT_EQ(log.find("\"path\":\"/ocsp\""), std::string::npos) << log;
    EXPECT_EQ(log.find("\"path\":\"/ca/"), std::string::npos) << log;
    ::kill(serve.pid, SIGTERM);
    int status = 0;
    ::waitpid(serve.pid, &status, 0);
}

}  // namespace
}  // namespace kyso::test
