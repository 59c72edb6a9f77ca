// Token administration: initialising a fresh token (the embedded default and the tests).
#pragma once

#include <string>

#include "kyso/hsm/result.h"
#include "kyso/hsm/secret.h"

namespace kyso::hsm {

// Initialises the first uninitialised token of the module with `label`, the security officer PIN
// and the user PIN (through libp11: C_InitToken, then C_InitPIN as the SO). If a token with that
// label already exists, does nothing and returns Ok. Errors: "token.module",
// "token.not_found" (no free slot), "token.error" (also: a label of 0 or more than 32 bytes,
// the PKCS#11 limit). It loads and finalises the module on its own:
// call it before any Token of the same module is open in the process (as demo init and the
// tests do), never beside one.
Status initToken(const std::string& modulePath, const std::string& label, const Secret& soPin,
                 const Secret& userPin);

// A fresh random PIN of `digits` decimal digits.
Secret randomPin(unsigned digits = 12);

}  // namespace kyso::hsm
