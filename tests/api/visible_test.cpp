// One call, two signatures (Decree 30/2020, Art. 5): the officer signs and the agency seals,
// visibly, over real HTTPS with the demo's credentials, images and configuration. Checked by
// pdfsig, pdftotext, pdftoppm, qpdf and our own /api/v1/verify.
#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <regex>

#include "kyso/signer/png_image.h"
#include "pdf_update.h"
#include "rest_env.h"

namespace kyso::test {
namespace {

// A blank A4 page: what is not white after signing was drawn by the signatures.
std::string blankPdfFile(const std::string& dir) {
    writeFile(
        dir + "/blank.pdf",
        makePdf({"<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                 "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
                 "/Resources << >> >>",
                 pdfStream("")}));
    return dir + "/blank.pdf";
}

std::string toolOutput(const std::string& command) {
    std::string out;
    EXPECT_EQ(run(command + " 2>&1", &out), 0) << command << "\n" << out;
    return out;
}

// Red pixels of the page rendered at 72 dpi, and how many of them fall in [x0,x1) x [y0,y1)
// (pixels from the top-left).
struct RedCount {
    int total = 0;
    int inside = 0;
};
RedCount redPixels(const std::string& pdf, int x0, int y0, int x1, int y1) {
    const std::string base = tempDir("visible-render") + "/p";
    EXPECT_EQ(run("pdftoppm -r 72 -singlefile " + shellQuote(pdf) + " " + base), 0);
    const std::string ppm = readFile(base + ".ppm");
    std::istringstream head(ppm);
    std::string magic;
    int w = 0;
    int h = 0;
    int max = 0;
    head >> magic >> w >> h >> max;
    const std::size_t start = static_cast<std::size_t>(head.tellg()) + 1;
    RedCount c;
    for (int y = 0; y < h; ++y) {
        for (int x = 0; x < w; ++x) {
            const auto* p = reinterpret_cast<const unsigned char*>(
                &ppm[start + static_cast<std::size_t>((y * w + x) * 3)]);
            if (p[0] > 150 && p[1] < 90 && p[2] < 90) {
                ++c.total;
                if (x >= x0 && x < x1 && y >= y0 && y < y1) {
                    ++c.inside;
                }
            }
        }
    }
    return c;
}

// Seconds between the Vietnam-time text of the appearance and now.
long long secondsFromNow(int h, int mi, int s, int d, int mo, int y) {
    std::tm tm{};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    const std::time_t shown = ::timegm(&tm) - 7 * 3600;  // UTC+07:00
    return static_cast<long long>(std::time(nullptr) - shown);
}

TEST(VisibleRest, OfficerSignsAndTheAgencySealsInOneCall) {
    auto& env = Env::get();
    const std::string dir = tempDir("visible-rest");
    const std::string out = dir + "/out.pdf";
    auto r = env.request("POST",
                         "/api/v1/sign/pdf?credential=officer-1&seal=agency-seal&visible=true"
                         "&page=1&rect=330,120,230,80&level=B-T",
                         env.keys["officer-1"], blankPdfFile(dir), "application/pdf", out);
    ASSERT_EQ(r.status, 200) << readFile(out);
    EXPECT_EQ(r.header("Kyso-Signature-Field"), "Signature1");
    EXPECT_EQ(r.header("Kyso-Seal-Field"), "Signature2");

    const std::string sig = toolOutput("pdfsig " + shellQuote(out));
    const auto second = sig.find("Signature #2");
    ASSERT_NE(second, std::string::npos) << sig;
    EXPECT_EQ(sig.find("Signature #3"), std::string::npos) << sig;
    EXPECT_NE(sig.substr(0, second).find("Signature is Valid."), std::string::npos) << sig;
    EXPECT_NE(sig.substr(second).find("Signature is Valid."), std::string::npos) << sig;
    EXPECT_NE(sig.find("Signer Certificate Common Name: Nguyễn Văn An"), std::string::npos);
    EXPECT_NE(sig.find("Signer Certificate Common Name: Sở Thông tin và Truyền thông tỉnh Hà Nam"),
              std::string::npos)
        << sig;

    const std::string check = toolOutput("qpdf --check " + shellQuote(out));
    EXPECT_NE(check.find("No syntax or stream encoding errors found"), std::string::npos) << check;

    // The texts of both appearances, exactly; the officer's time in Vietnam time
    // (hh:mm:ss dd/mm/yyyy), the seal's in ISO 8601 with +07:00, both now.
    const std::string text = toolOutput("pdftotext " + shellQuote(out) + " -");
    for (const char* s : {"Ký bởi: Nguyễn Văn An", "Giám đốc Sở", "Sở Thông tin và Truyền thông",
                          "Ủy ban nhân dân tỉnh Hà Nam"}) {
        EXPECT_NE(text.find(s), std::string::npos) << s << "\n" << text;
    }
    std::smatch m;
    ASSERT_TRUE(std::regex_search(
        text, m, std::regex("Thời gian ký: (\\d\\d):(\\d\\d):(\\d\\d) (\\d\\d)/(\\d\\d)/(\\d{4})")))
        << text;
    EXPECT_LT(std::llabs(secondsFromNow(std::stoi(m[1]), std::stoi(m[2]), std::stoi(m[3]),
                                        std::stoi(m[4]), std::stoi(m[5]), std::stoi(m[6]))),
              300);
    ASSERT_TRUE(std::regex_search(
        text, m, std::regex("(\\d{4})-(\\d\\d)-(\\d\\d)T(\\d\\d):(\\d\\d):(\\d\\d)\\+07:00")))
        << text;
    EXPECT_LT(std::llabs(secondsFromNow(std::stoi(m[4]), std::stoi(m[5]), std::stoi(m[6]),
                                        std::stoi(m[3]), std::stoi(m[2]), std::stoi(m[1]))),
              300);

    // The seal's red is there, left of the officer's text: all of it left of x = 330 + 230 / 3
    // (the seal overlaps only the left third of the officer's image, which is in the left 40 %).
    const RedCount red = redPixels(out, 0, 0, 330 + 230 / 3 + 1, 842);
    EXPECT_GT(red.total, 800);
    EXPECT_EQ(red.inside, red.total);

    // Our own validation: both pass; after the officer's signature came only a signature.
    auto v = env.request("POST", "/api/v1/verify", env.keys["portal"], out, "application/pdf");
    ASSERT_EQ(v.status, 200) << v.body;
    auto j = v.json();
    EXPECT_EQ(j->getValue<std::string>("indication"), "TOTAL_PASSED") << v.body;
    EXPECT_EQ(j->getValue<int>("validSignaturesCount"), 2) << v.body;
    auto first = j->getArray("signatures")->getObject(0);
    EXPECT_EQ(first->getValue<std::string>("modificationsAfterSigning"), "SIGNATURES_ONLY");
    EXPECT_EQ(first->getValue<std::string>("coverage"), "ENTIRE_REVISION");
}

TEST(VisibleRest, TheClerkSealsASignedDocumentAlone) {
    auto& env = Env::get();
    const std::string dir = tempDir("visible-clerk");
    const std::string signedPdf = dir + "/signed.pdf";
    ASSERT_EQ(env.request("POST",
                          "/api/v1/sign/pdf?credential=officer-1&visible=true&rect=300,80,240,80"
                          "&level=B-B",
                          env.keys["officer-1"], blankPdfFile(dir), "application/pdf", signedPdf)
                  .status,
              200);
    const std::string sealed = dir + "/sealed.pdf";
    auto r = env.request("POST", "/api/v1/sign/pdf?seal=agency-seal&visible=true&level=B-B",
                         env.keys["clerk"], signedPdf, "application/pdf", sealed);
    ASSERT_EQ(r.status, 200) << readFile(sealed);
    const std::string sig = toolOutput("pdfsig " + shellQuote(sealed));
    EXPECT_NE(sig.find("Signature #2"), std::string::npos) << sig;
    EXPECT_EQ(std::count(sig.begin(), sig.end(), 'V') > 0, true);
    std::size_t valid = 0;
    for (auto p = sig.find("Signature is Valid."); p != std::string::npos;
         p = sig.find("Signature is Valid.", p + 1)) {
        ++valid;
    }
    EXPECT_EQ(valid, 2u) << sig;
    // The seal sits over the officer's appearance: its red reaches into [300, 380).
    const RedCount red = redPixels(sealed, 300, 0, 380, 842);
    EXPECT_GT(red.inside, 500);

    // The same as credential=agency-seal.
    r = env.request("POST", "/api/v1/sign/pdf?credential=agency-seal&visible=true&level=B-B",
                    env.keys["clerk"], signedPdf, "application/pdf", dir + "/sealed2.pdf");
    EXPECT_EQ(r.status, 200);
}

TEST(VisibleRest, ThePolicyDecidesWhoMayUseWhichSeal) {
    auto& env = Env::get();
    const std::string dir = tempDir("visible-policy");
    const std::string in = blankPdfFile(dir);
    // A portal is no registry office; officer-2 was not entrusted with this agency's seal.
    expectProblem(
        env.request("POST", "/api/v1/sign/pdf?seal=agency-seal&level=B-B", env.keys["portal"], in),
        403, "auth.denied");
    auto r = env.request("POST", "/api/v1/sign/pdf?seal=agency-seal&level=B-B",
                         env.keys["officer-2"], in);
    expectProblem(r, 403, "auth.denied");
    EXPECT_NE(r.body.find("seal-not-entrusted"), std::string::npos) << r.body;
    // The admin never signs nor seals.
    expectProblem(
        env.request("POST", "/api/v1/sign/pdf?seal=agency-seal&level=B-B", env.keys["admin"], in),
        403, "auth.denied");
    // A seal is not an officer's signature.
    expectProblem(env.request("POST", "/api/v1/sign/pdf?credential=agency-seal&seal=agency-seal",
                              env.keys["clerk"], in),
                  400, "request.invalid");
    // Invisible signature and seal: both there, no appearance.
    const std::string out = dir + "/invisible.pdf";
    ASSERT_EQ(
        env.request("POST", "/api/v1/sign/pdf?credential=officer-1&seal=agency-seal&level=B-B",
                    env.keys["officer-1"], in, "application/pdf", out)
            .status,
        200);
    const std::string sig = toolOutput("pdfsig " + shellQuote(out));
    EXPECT_NE(sig.find("Signature #2"), std::string::npos) << sig;
    EXPECT_EQ(redPixels(out, 0, 0, 0, 0).total, 0);
}

TEST(VisibleRest, RequestOverridesStayWithinThePolicy) {
    auto& env = Env::get();
    const std::string dir = tempDir("visible-overrides");
    const std::string in = blankPdfFile(dir);
    const std::string base = "/api/v1/sign/pdf?credential=officer-1&visible=true&level=B-B";
    // The shipped policy lets a request choose the layout and the font size ...
    const std::string out = dir + "/text-only.pdf";
    ASSERT_EQ(env.request("POST", base + "&rect=100,100,300,60&layout=text-only&fontSize=9",
                          env.keys["officer-1"], in, "application/pdf", out)
                  .status,
              200);
    // ... but not the text under the officer's name.
    auto r = env.request("POST", base + "&rect=100,100,300,60&text=Ch%E1%BB%A7%20t%E1%BB%8Bch",
                         env.keys["officer-1"], in);
    expectProblem(r, 403, "auth.denied");
    EXPECT_NE(r.body.find("appearance-override"), std::string::npos) << r.body;
}

TEST(VisibleRest, BadAppearanceRequestsAreClearErrors) {
    auto& env = Env::get();
    const std::string dir = tempDir("visible-bad");
    const std::string in = blankPdfFile(dir);
    const std::string key = env.keys["officer-1"];
    const std::string base = "/api/v1/sign/pdf?credential=officer-1&level=B-B";
    expectProblem(env.request("POST", base + "&visible=true&rect=500,100,200,80", key, in), 422,
                  "appearance.outside_page");
    expectProblem(env.request("POST", base + "&visible=true&rect=1,2,3", key, in), 400,
                  "request.invalid");
    expectProblem(env.request("POST", base + "&visible=true&rect=1,2,0,5", key, in), 400,
                  "request.invalid");
    expectProblem(env.request("POST", base + "&visible=true", key, in), 422, "appearance.no_rect");
    expectProblem(env.request("POST", base + "&visible=yes&rect=100,100,200,80", key, in), 400,
                  "request.invalid");
    expectProblem(env.request("POST", base + "&rect=100,100,200,80", key, in), 400,
                  "request.invalid");
    expectProblem(env.request("POST", base + "&visible=true&rect=100,100,20,8", key, in), 422,
                  "appearance.too_small");
    expectProblem(
        env.request("POST", base + "&visible=true&rect=100,100,200,80&layout=round", key, in), 400,
        "request.invalid");
    expectProblem(env.request("POST", base + "&visible=true&page=2&rect=100,100,200,80", key, in),
                  422, "pdf.page_out_of_range");
    // The seal of a document with no visible signature needs a rectangle.
    expectProblem(env.request("POST", "/api/v1/sign/pdf?seal=agency-seal&visible=true&level=B-B",
                              env.keys["clerk"], in),
                  422, "appearance.no_rect");
}

TEST(VisibleRest, TheDemoImagesAreARedSealAtItsRealSizeAndATransparentSignature) {
    auto& env = Env::get();
    auto seal = signer::readPng(env.dir + "/appearance/agency-seal.png");
    ASSERT_TRUE(seal.ok()) << seal.error().detail;
    ASSERT_TRUE(seal->sizePoints().has_value());
    EXPECT_NEAR(seal->sizePoints()->first, 36 / 25.4 * 72, 0.5);  // 36 mm
    ASSERT_FALSE(seal->alpha.empty());
    std::size_t ink = 0;
    for (std::size_t i = 0; i < seal->alpha.size(); ++i) {
        if (static_cast<unsigned char>(seal->alpha[i]) > 0) {
            ++ink;
            const auto* p = reinterpret_cast<const unsigned char*>(&seal->rgb[i * 3]);
            EXPECT_TRUE(p[0] > 180 && p[1] < 60 && p[2] < 60) << "pixel " << i << " is not red";
        }
    }
    EXPECT_GT(ink, seal->alpha.size() / 10);
    EXPECT_EQ(seal->alpha.front(), 0);  // transparent corners
    EXPECT_EQ(seal->alpha.back(), 0);
    auto signature = signer::readPng(env.dir + "/appearance/officer-1-signature.png");
    ASSERT_TRUE(signature.ok());
    ASSERT_FALSE(signature->alpha.empty());
    EXPECT_EQ(signature->alpha.front(), 0);
    // A config naming a broken image does not start.
    writeFile(env.dir + "/broken.png", "not a png");
    const std::string conf = readFile(env.dir + "/kyso.conf");
    const std::string bad = std::regex_replace(conf, std::regex("appearance/agency-seal\\.png"),
                                               env.dir + "/broken.png");
    ASSERT_NE(bad, conf);
    writeFile(env.dir + "/broken.conf", bad);
    auto c = api::loadConfig(env.dir + "/broken.conf");
    ASSERT_TRUE(c.ok()) << c.error().detail;
    EXPECT_TRUE(api::checkAppearances(env.cfg).ok());
    auto checked = api::checkAppearances(*c);
    ASSERT_FALSE(checked.ok());
    EXPECT_EQ(checked.error().code, "config.invalid");
    EXPECT_NE(checked.error().detail.find("[appearance.agency-seal]"), std::string::npos)
        << checked.error().detail;
    // `kyso serve` does not start on it.
    std::string log;
    EXPECT_EQ(run(std::string(KYSO_BINARY) + " serve --config " +
                      shellQuote(env.dir + "/broken.conf") + " 2>&1",
                  &log),
              78)
        << log;
    EXPECT_NE(log.find("appearance.image_invalid"), std::string::npos) << log;
}

}  // namespace
}  // namespace kyso::test
