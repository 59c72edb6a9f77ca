#include "receipt.h"

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Parser.h>

#include <ctime>
#include <regex>
#include <set>

namespace kyso::api {

namespace {

using Poco::Dynamic::Var;
using Poco::JSON::Array;
using Poco::JSON::Object;

// Code points of UTF-8 text; -1 when it is not UTF-8.
long long utf8Length(const std::string& s) {
    long long n = 0;
    for (std::size_t i = 0; i < s.size();) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        const std::size_t len = c < 0x80         ? 1
                                : (c >> 5) == 6  ? 2
                                : (c >> 4) == 14 ? 3
                                : (c >> 3) == 30 ? 4
                                                 : 0;
        if (len == 0 || i + len > s.size()) {
            return -1;
        }
        for (std::size_t k = 1; k < len; ++k) {
            if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) {
                return -1;
            }
        }
        i += len;
        ++n;
    }
    return n;
}

class Checker {
  public:
    std::vector<FieldError> errors;

    void fail(const std::string& field, const std::string& problem) {
        errors.push_back({field, problem});
    }

    // Members: required ones present, no others.
    void members(const Object::Ptr& o, const std::string& at, const std::set<std::string>& required,
                 const std::set<std::string>& allowed) {
        for (const auto& r : required) {
            if (!o->has(r)) {
                fail(at + "/" + r, "is required");
            }
        }
        std::vector<std::string> names;
        o->getNames(names);
        for (const auto& n : names) {
            if (!allowed.count(n)) {
                fail(at + "/" + n, "is not a member of a receipt (unknown field)");
            }
        }
    }

    bool string(const Object::Ptr& o, const std::string& at, const std::string& key,
                long long minLen, long long maxLen, const std::regex* pattern = nullptr) {
        if (!o->has(key)) {
            return false;
        }
        const Var v = o->get(key);
        const std::string field = at + "/" + key;
        if (!v.isString()) {
            fail(field, "must be a string");
            return false;
        }
        const std::string s = v.extract<std::string>();
        const long long n = utf8Length(s);
        if (n < 0) {
            fail(field, "must be UTF-8 text");
        } else if (n < minLen || n > maxLen) {
            fail(field, "must be " + std::to_string(minLen) + " to " + std::to_string(maxLen) +
                            " characters");
        } else if (pattern != nullptr && !std::regex_match(s, *pattern)) {
            fail(field, "has not the expected form");
        } else {
            return true;
        }
        return false;
    }

    bool integer(const Object::Ptr& o, const std::string& at, const std::string& key, long long min,
                 long long max, long long* out = nullptr) {
        if (!o->has(key)) {
            return false;
        }
        const Var v = o->get(key);
        const std::string field = at + "/" + key;
        if (!v.isInteger() || v.isBoolean()) {
            fail(field, "must be an integer (whole VND, no fraction)");
            return false;
        }
        long long n = 0;
        try {
            n = v.convert<long long>();
        } catch (const Poco::Exception&) {
            fail(field, "is out of range");
            return false;
        }
        if (n < min || n > max) {
            fail(field, "must be from " + std::to_string(min) + " to " + std::to_string(max));
            return false;
        }
        if (out != nullptr) {
            *out = n;
        }
        return true;
    }

    Object::Ptr object(const Object::Ptr& o, const std::string& at, const std::string& key) {
        if (!o->has(key)) {
            return nullptr;
        }
        Object::Ptr child;
        try {
            child = o->getObject(key);
        } catch (const Poco::Exception&) {
        }
        if (child.isNull()) {
            fail(at + "/" + key, "must be an object");
        }
        return child;
    }
};

bool realTime(const std::string& s) {
    std::tm tm{};
    const char* end = ::strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
    if (end == nullptr) {
        return false;
    }
    std::tm copy = tm;
    const std::time_t t = ::timegm(&copy);
    std::tm back{};
    ::gmtime_r(&t, &back);
    // 2026-02-30 would come back as March: not a real day.
    return back.tm_mday == tm.tm_mday && back.tm_mon == tm.tm_mon && tm.tm_hour < 24 &&
           tm.tm_min < 60 && tm.tm_sec < 61;
}

}  // namespace

ReceiptCheck checkReceipt(std::string_view body) {
    ReceiptCheck out;
    Object::Ptr root;
    try {
        Poco::JSON::Parser parser;
        root = parser.parse(std::string(body)).extract<Object::Ptr>();
    } catch (const Poco::Exception&) {
    } catch (const std::exception&) {
    }
    if (root.isNull()) {
        out.errors.push_back({"", "the body must be one JSON object"});
        return out;
    }
    static const std::regex code("[A-Za-z0-9._-]{1,64}");
    static const std::regex identity("[0-9]{9}|[0-9]{12}");
    static const std::regex time(
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]"
        "{2})");
    Checker c;
    c.members(root, "", {"payer", "procedureCode", "items", "total", "currency", "payment"},
              {"payer", "procedureCode", "items", "total", "currency", "payment"});
    if (Object::Ptr payer = c.object(root, "", "payer")) {
        c.members(payer, "/payer", {"name", "identityNumber"},
                  {"name", "identityNumber", "address"});
        c.string(payer, "/payer", "name", 1, 200);
        c.string(payer, "/payer", "identityNumber", 9, 12, &identity);
        c.string(payer, "/payer", "address", 1, 300);
    }
    c.string(root, "", "procedureCode", 1, 64, &code);
    long long sum = 0;
    bool sumKnown = true;
    if (root->has("items")) {
        Array::Ptr items;
        try {
            items = root->getArray("items");
        } catch (const Poco::Exception&) {
        }
        if (items.isNull()) {
            c.fail("/items", "must be an array");
            sumKnown = false;
        } else if (items->size() < 1 || items->size() > 50) {
            c.fail("/items", "must hold 1 to 50 fee items");
            sumKnown = false;
        } else {
            for (std::size_t i = 0; i < items->size(); ++i) {
                const std::string at = "/items/" + std::to_string(i);
                Object::Ptr item;
                try {
                    item = items->getObject(static_cast<unsigned>(i));
                } catch (const Poco::Exception&) {
                }
                if (item.isNull()) {
                    c.fail(at, "must be an object");
                    sumKnown = false;
                    continue;
                }
                c.members(item, at, {"description", "amount"},
                          {"description", "amount", "quantity"});
                c.string(item, at, "description", 1, 200);
                long long amount = 0;
                long long quantity = 1;
                const bool a = c.integer(item, at, "amount", 0, 1000000000000LL, &amount);
                const bool q =
                    !item->has("quantity") || c.integer(item, at, "quantity", 1, 10000, &quantity);
                if (a && q) {
                    sum += amount * quantity;
                } else {
                    sumKnown = false;
                }
            }
        }
    }
    long long total = 0;
    if (c.integer(root, "", "total", 0, 1000000000000000LL, &total) && sumKnown && total != sum) {
        c.fail("/total",
               "must be the sum of the items' amount x quantity (" + std::to_string(sum) + ")");
    }
    if (root->has("currency")) {
        const Var v = root->get("currency");
        if (!v.isString() || v.extract<std::string>() != "VND") {
            c.fail("/currency", "must be \"VND\"");
        }
    }
    if (Object::Ptr payment = c.object(root, "", "payment")) {
        c.members(payment, "/payment", {"channel", "transactionId", "paidAt"},
                  {"channel", "transactionId", "paidAt"});
        c.string(payment, "/payment", "channel", 1, 64, &code);
        c.string(payment, "/payment", "transactionId", 1, 128);
        if (c.string(payment, "/payment", "paidAt", 20, 40, &time) &&
            !realTime(payment->getValue<std::string>("paidAt"))) {
            c.fail("/payment/paidAt", "is not a real date and time");
        }
    }
    out.errors = std::move(c.errors);
    if (out.errors.empty()) {
        out.receipt = root;
    }
    return out;
}

}  // namespace kyso::api
