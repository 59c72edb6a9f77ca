// The PKCS#11 header from p11-kit in its GNU naming (ck_attribute.value, ...). Its default
// "compat" mode #defines words like `value` and `type`, which would rename unrelated C++ code.
#pragma once

#ifndef CRYPTOKI_GNU
#define CRYPTOKI_GNU 1
#endif
#include <p11-kit/pkcs11.h>
