// Token-backed EVP_PKEYs through OpenSSL's RSA_METHOD and EC_KEY_METHOD (deprecated in OpenSSL 3
// but supported: a key with a non-default method is "foreign" and takes the legacy code path,
// as libp11's engine keys do). A provider would be the OpenSSL 3 way; for the few signing APIs
// we need it is much more code for the same result.
#include "kyso/hsm/evp_key.h"

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/rsa.h>

#include <cstring>
#include <mutex>

namespace kyso::hsm {

namespace {

thread_local std::optional<Error> t_lastError;

void freeCredential(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
    delete static_cast<Credential*>(ptr);
}

int rsaIndex() {
    static const int idx = ::RSA_get_ex_new_index(0, nullptr, nullptr, nullptr, freeCredential);
    return idx;
}

int ecIndex() {
    static const int idx = ::EC_KEY_get_ex_new_index(0, nullptr, nullptr, nullptr, freeCredential);
    return idx;
}

std::optional<HashAlg> hashFromNid(int nid) {
    switch (nid) {
        case NID_sha256:
            return HashAlg::Sha256;
        case NID_sha384:
            return HashAlg::Sha384;
        case NID_sha512:
            return HashAlg::Sha512;
        default:
            return std::nullopt;
    }
}

std::optional<HashAlg> hashFromLength(int len) {
    switch (len) {
        case 32:
            return HashAlg::Sha256;
        case 48:
            return HashAlg::Sha384;
        case 64:
            return HashAlg::Sha512;
        default:
            return std::nullopt;
    }
}

Result<std::string> signWith(const Credential* c, SignScheme scheme, std::optional<HashAlg> hash,
                             const unsigned char* m, unsigned int len) {
    if (c == nullptr || c->token == nullptr) {
        return Error::make("key.unsupported", "token-backed key without a credential");
    }
    if (!hash) {
        return Error::make("sign.bad_digest", "only SHA-256, SHA-384 and SHA-512 are signed");
    }
    return c->token->sign(c->key, scheme, *hash,
                          std::string_view(reinterpret_cast<const char*>(m), len));
}

int rsaSign(int type, const unsigned char* m, unsigned int mLen, unsigned char* sigret,
            unsigned int* siglen, const RSA* rsa) {
    const auto* c = static_cast<const Credential*>(::RSA_get_ex_data(rsa, rsaIndex()));
    auto sig = signWith(c, SignScheme::RsaPkcs1v15, hashFromNid(type), m, mLen);
    if (!sig || sig->size() > static_cast<std::size_t>(::RSA_size(rsa))) {
        t_lastError =
            sig ? Error::make("token.error", "signature longer than the modulus") : sig.error();
        ERR_raise(ERR_LIB_RSA, ERR_R_OPERATION_FAIL);
        return 0;
    }
    std::memcpy(sigret, sig->data(), sig->size());
    *siglen = static_cast<unsigned int>(sig->size());
    return 1;
}

ECDSA_SIG* ecSignSig(const unsigned char* dgst, int dlen, const BIGNUM*, const BIGNUM*,
                     EC_KEY* eckey) {
    const auto* c = static_cast<const Credential*>(::EC_KEY_get_ex_data(eckey, ecIndex()));
    auto sig =
        signWith(c, SignScheme::Ecdsa, hashFromLength(dlen), dgst, static_cast<unsigned int>(dlen));
    if (!sig) {
        t_lastError = sig.error();
        ERR_raise(ERR_LIB_EC, ERR_R_OPERATION_FAIL);
        return nullptr;
    }
    const unsigned char* p = reinterpret_cast<const unsigned char*>(sig->data());
    return ::d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig->size()));
}

int ecSign(int, const unsigned char* dgst, int dlen, unsigned char* sig, unsigned int* siglen,
           const BIGNUM* kinv, const BIGNUM* r, EC_KEY* eckey) {
    ECDSA_SIG* s = ecSignSig(dgst, dlen, kinv, r, eckey);
    if (s == nullptr) {
        return 0;
    }
    unsigned char* p = sig;
    const int n = ::i2d_ECDSA_SIG(s, &p);
    ::ECDSA_SIG_free(s);
    if (n <= 0) {
        return 0;
    }
    *siglen = static_cast<unsigned int>(n);
    return 1;
}

int ecSignSetup(EC_KEY*, BN_CTX*, BIGNUM**, BIGNUM**) {
    return 1;
}

// The methods live for the process: keys made from them may be anywhere.
const RSA_METHOD* rsaMethod() {
    static RSA_METHOD* m = [] {
        RSA_METHOD* meth = ::RSA_meth_dup(::RSA_get_default_method());
        ::RSA_meth_set1_name(meth, "kyso token RSA");
        ::RSA_meth_set_sign(meth, rsaSign);
        // Everything else private is refused: the private exponent is not here.
        ::RSA_meth_set_priv_enc(meth, nullptr);
        ::RSA_meth_set_priv_dec(meth, nullptr);
        return meth;
    }();
    return m;
}

const EC_KEY_METHOD* ecMethod() {
    static EC_KEY_METHOD* m = [] {
        EC_KEY_METHOD* meth = ::EC_KEY_METHOD_new(::EC_KEY_get_default_method());
        ::EC_KEY_METHOD_set_sign(meth, ecSign, ecSignSetup, ecSignSig);
        return meth;
    }();
    return m;
}

}  // namespace

std::optional<Error> takeTokenError() {
    std::optional<Error> e = std::move(t_lastError);
    t_lastError.reset();
    return e;
}

Result<OsslPtr<EVP_PKEY>> tokenBackedKey(const Credential& credential) {
    const unsigned char* p =
        reinterpret_cast<const unsigned char*>(credential.key.publicKeyDer.data());
    OsslPtr<EVP_PKEY> pub(
        ::d2i_PUBKEY(nullptr, &p, static_cast<long>(credential.key.publicKeyDer.size())));
    if (!pub) {
        ::ERR_clear_error();
        return Error::make("key.unsupported", "cannot decode the credential's public key");
    }
    OsslPtr<EVP_PKEY> out(::EVP_PKEY_new());
    if (credential.key.type == KeyType::Rsa) {
        RSA* rsa = ::EVP_PKEY_get1_RSA(pub.get());
        if (rsa == nullptr || ::RSA_set_method(rsa, rsaMethod()) != 1 ||
            ::RSA_set_ex_data(rsa, rsaIndex(), new Credential(credential)) != 1 ||
            ::EVP_PKEY_assign_RSA(out.get(), rsa) != 1) {
            ::RSA_free(rsa);
            ::ERR_clear_error();
            return Error::make("key.unsupported", "cannot make a token-backed RSA key");
        }
    } else {
        EC_KEY* ec = ::EVP_PKEY_get1_EC_KEY(pub.get());
        if (ec == nullptr || ::EC_KEY_set_method(ec, ecMethod()) != 1 ||
            ::EC_KEY_set_ex_data(ec, ecIndex(), new Credential(credential)) != 1 ||
            ::EVP_PKEY_assign_EC_KEY(out.get(), ec) != 1) {
            ::EC_KEY_free(ec);
            ::ERR_clear_error();
            return Error::make("key.unsupported", "cannot make a token-backed EC key");
        }
    }
    return out;
}

}  // namespace kyso::hsm
