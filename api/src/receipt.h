// Payment receipts (issue 8): the request body checked against the published JSON schema
// (api/schemas/receipt.schema.json), with every error named by its field.
#pragma once

#include <Poco/JSON/Object.h>

#include <string>
#include <string_view>
#include <vector>

namespace kyso::api {

struct FieldError {
    std::string field;    // a JSON pointer: "/items/0/amount"; "" for the whole body
    std::string problem;  // what is wrong, in words
};

struct ReceiptCheck {
    Poco::JSON::Object::Ptr receipt;  // the parsed body when there is no error
    std::vector<FieldError> errors;   // in document order; empty when the receipt is accepted
};

// The schema's rules written out (types, required and unknown members, lengths, patterns,
// ranges, the VND currency), plus what a schema cannot say: the total is the sum of amount x
// quantity, and paidAt is a real time. Strings must be UTF-8; lengths count characters.
ReceiptCheck checkReceipt(std::string_view body);

}  // namespace kyso::api
