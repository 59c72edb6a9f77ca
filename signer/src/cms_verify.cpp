#include "kyso/signer/cms_verify.h"

#include <openssl/pem.h>
#include <unistd.h>

#include <cstdint>

#include "cms_check.h"
#include "kyso/hsm/ossl_ptr.h"
#include "output_file.h"

namespace kyso::signer {

namespace {

// The digest of the file at `path`, streamed; empty on a read error.
std::string digestFile(const std::string& path, const EVP_MD* md) {
    if (md == nullptr) {
        return {};
    }
    OsslPtr<EVP_MD_CTX> ctx(::EVP_MD_CTX_new());
    ::EVP_DigestInit_ex(ctx.get(), md, nullptr);
    std::uint64_t size = 0;
    if (!streamFile(path, &size, [&](const char* p, std::size_t n) {
            return ::EVP_DigestUpdate(ctx.get(), p, n) == 1;
        })) {
        return {};
    }
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    ::EVP_DigestFinal_ex(ctx.get(), out, &len);
    return std::string(reinterpret_cast<char*>(out), len);
}

OsslPtr<CMS_ContentInfo> parse(const std::string& in) {
    if (in.rfind("-----BEGIN", 0) == 0) {
        OsslPtr<BIO> bio(::BIO_new_mem_buf(in.data(), static_cast<int>(in.size())));
        return OsslPtr<CMS_ContentInfo>(::PEM_read_bio_CMS(bio.get(), nullptr, nullptr, nullptr));
    }
    const unsigned char* p = reinterpret_cast<const unsigned char*>(in.data());
    return OsslPtr<CMS_ContentInfo>(
        ::d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(in.size())));
}

}  // namespace

Result<CmsSignature> readCmsSignature(const std::string& cms, const std::string& dataPath) {
    OsslPtr<CMS_ContentInfo> ci = parse(cms);
    if (!ci || ::OBJ_obj2nid(::CMS_get0_type(ci.get())) != NID_pkcs7_signed) {
        ::ERR_clear_error();
        return Error::make("cms.invalid", "the signature is not a CMS SignedData");
    }
    CmsSignature out;
    unsigned char* der = nullptr;
    const int n = ::i2d_CMS_ContentInfo(ci.get(), &der);
    if (n > 0) {
        out.cmsDer.assign(reinterpret_cast<char*>(der), static_cast<std::size_t>(n));
    }
    ::OPENSSL_free(der);
    ASN1_OCTET_STRING** content = ::CMS_get0_content(ci.get());
    out.detached = content == nullptr || *content == nullptr;
    if (out.detached && dataPath.empty()) {
        return Error::make("cms.data_missing",
                           "the signature is detached: the signed data must be given with it");
    }
    if (!dataPath.empty() && ::access(dataPath.c_str(), R_OK) != 0) {
        return Error::make("io.read", "cannot read the signed data");
    }
    std::string embedded;
    if (!out.detached) {
        embedded.assign(reinterpret_cast<const char*>(::ASN1_STRING_get0_data(*content)),
                        static_cast<std::size_t>(::ASN1_STRING_length(*content)));
    }
    const Digester digester = [&](const EVP_MD* md) -> std::string {
        if (out.detached) {
            return digestFile(dataPath, md);
        }
        const std::string mine = digestOfBytes(embedded)(md);
        if (!dataPath.empty() && digestFile(dataPath, md) != mine) {
            return {};  // the data given is not the content the signature carries
        }
        return mine;
    };
    checkSignedData(ci.get(), digester, &out);
    return out;
}

}  // namespace kyso::signer
