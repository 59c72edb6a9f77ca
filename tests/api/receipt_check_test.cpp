// Receipt bodies against the published schema (api/schemas/receipt.schema.json): our verdict
// and the field we name, and for every case the verdict of python3-jsonschema (a validator we
// did not write) on the same bytes and the same schema file.
#include <gtest/gtest.h>

#include <set>

#include "receipt.h"
#include "test_env.h"

namespace kyso::test {
namespace {

const char* kGood = R"({"payer":{"name":"Nguyễn Văn An","identityNumber":"001203004567"},
 "procedureCode":"1.001234","items":[{"description":"Lệ phí cấp giấy phép","amount":150000},
 {"description":"Phí thẩm định","amount":50000,"quantity":2}],"total":250000,"currency":"VND",
 "payment":{"channel":"vnpay","transactionId":"VNP-2026-0001","paidAt":"2026-11-25T09:30:00+07:00"}})";

// python3-jsonschema's verdict on BODY: true when valid.
bool schemaAccepts(const std::string& body) {
    const std::string dir = tempDir("schema");
    writeFile(dir + "/body.json", body);
    const std::string schema = std::string(KYSO_SOURCE_DIR) + "/api/schemas/receipt.schema.json";
    const int rc =
        run("/usr/bin/python3 -c 'import json,sys,jsonschema; "
            "s=json.load(open(sys.argv[1])); d=json.load(open(sys.argv[2])); "
            "jsonschema.Draft202012Validator(s).validate(d)' " +
            shellQuote(schema) + " " + dir + "/body.json 2>/dev/null");
    return rc == 0;
}

std::string with(std::string body, const std::string& from, const std::string& to) {
    const auto at = body.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return body.replace(at, from.size(), to);
}

TEST(ReceiptCheck, OurVerdictAndFieldAgreeWithTheSchema) {
    struct Case {
        std::string body;
        std::string field;           // "" : accepted
        bool schemaOnlyRule = true;  // the schema alone decides it (not the total rule)
    };
    const std::string g = kGood;
    const std::vector<Case> cases = {
        {g, ""},
        {with(g, R"("quantity":2)", R"("quantity":2,"note":"x")"), "/items/1/note"},
        {with(g, R"("procedureCode":"1.001234",)", ""), "/procedureCode"},
        {with(g, R"("amount":150000)", R"("amount":-150000)"), "/items/0/amount"},
        {with(g, R"("amount":150000)", R"("amount":"150000")"), "/items/0/amount"},
        {with(g, R"("amount":150000)", R"("amount":150000.5)"), "/items/0/amount"},
        {with(g, R"("currency":"VND")", R"("currency":"USD")"), "/currency"},
        {with(g, R"("identityNumber":"001203004567")", R"("identityNumber":"0012030045")"),
         "/payer/identityNumber"},
        {with(g, R"("paidAt":"2026-11-25T09:30:00+07:00")", R"("paidAt":"25/11/2026")"),
         "/payment/paidAt"},
        {with(g, R"("items":[)", R"("extra":1,"items":[)"), "/extra"},
        {with(g, R"("name":"Nguyễn Văn An")", R"("name":"")"), "/payer/name"},
        {with(g, R"("total":250000)", R"("total":true)"), "/total"},
        {R"({"payer":{"name":"A","identityNumber":"123456789"},"procedureCode":"P","items":[],)"
         R"("total":0,"currency":"VND","payment":{"channel":"c","transactionId":"t",)"
         R"("paidAt":"2026-11-25T09:30:00Z"}})",
         "/items"},
        {"[1,2,3]", ""},  // not an object: the whole body
        // Rules beyond the schema: the total, and a real date.
        {with(g, R"("total":250000)", R"("total":250001)"), "/total", false},
        {with(g, R"("paidAt":"2026-11-25T09:30:00+07:00")", R"("paidAt":"2026-02-30T09:30:00Z")"),
         "/payment/paidAt", false},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.body.substr(0, 120));
        const api::ReceiptCheck r = api::checkReceipt(c.body);
        const bool isArray = c.body == "[1,2,3]";
        if (c.field.empty() && !isArray) {
            EXPECT_TRUE(r.errors.empty())
                << r.errors.front().field << " " << r.errors.front().problem;
            EXPECT_FALSE(r.receipt.isNull());
        } else {
            ASSERT_FALSE(r.errors.empty());
            EXPECT_EQ(r.errors.front().field, c.field) << r.errors.front().problem;
            EXPECT_TRUE(r.receipt.isNull());
        }
        if (c.schemaOnlyRule) {
            EXPECT_EQ(schemaAccepts(c.body), r.errors.empty())
                << "python3-jsonschema disagrees with us on this body";
        } else {
            EXPECT_TRUE(schemaAccepts(c.body)) << "the schema alone accepts it; we refuse more";
        }
    }
}

TEST(ReceiptCheck, EveryErrorIsNamedNotOnlyTheFirst) {
    std::string body = kGood;
    body = with(body, R"("amount":150000)", R"("amount":-1)");
    body = with(body, R"("currency":"VND")", R"("currency":"EUR")");
    const api::ReceiptCheck r = api::checkReceipt(body);
    ASSERT_GE(r.errors.size(), 2u);
    std::set<std::string> fields;
    for (const auto& e : r.errors) {
        fields.insert(e.field);
    }
    EXPECT_TRUE(fields.count("/items/0/amount"));
    EXPECT_TRUE(fields.count("/currency"));
}

}  // namespace
}  // namespace kyso::test
