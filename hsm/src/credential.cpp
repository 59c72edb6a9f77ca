#include "kyso/hsm/credential.h"

namespace kyso::hsm {

std::size_t Credential::maxSignatureSize() const {
    if (key.type == KeyType::Rsa) {
        return (key.bits + 7) / 8;
    }
    // ECDSA-Sig-Value: SEQUENCE { INTEGER r, INTEGER s }, each up to field size + 1 byte.
    const std::size_t n = (key.bits + 7) / 8 + 1;
    const std::size_t inner = 2 * (2 + n);
    return inner + (inner < 128 ? 2 : 3);
}

void chooseDefaultAlgorithms(Credential& c) {
    if (c.key.type == KeyType::Rsa) {
        c.scheme = SignScheme::RsaPkcs1v15;
        c.hash = HashAlg::Sha256;
    } else {
        c.scheme = SignScheme::Ecdsa;
        c.hash = c.key.bits > 256 ? HashAlg::Sha384 : HashAlg::Sha256;
    }
}

}  // namespace kyso::hsm
