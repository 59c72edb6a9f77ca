// CAdES over a file. The SignedData is built detached (the signature covers the signed
// attributes, whose message-digest is that of the content, so encapsulation does not change it);
// for the attached form the content is spliced in as encapContentInfo's eContent while the output
// is written, with every enclosing DER length computed from the file size. Streaming DER with
// definite lengths keeps memory flat without BER's indefinite-length encoding.
#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "kyso/hsm/encoding.h"
#include "kyso/hsm/ossl_ptr.h"
#include "kyso/signer/cms.h"
#include "output_file.h"

namespace kyso::signer {

namespace {

struct Tlv {
    std::size_t at = 0;      // offset of the tag
    std::size_t header = 0;  // tag and length bytes
    std::size_t length = 0;  // content bytes
    std::size_t end() const { return at + header + length; }
};

bool readTlv(const std::string& d, std::size_t at, Tlv* t) {
    if (at + 2 > d.size()) {
        return false;
    }
    std::size_t len = static_cast<unsigned char>(d[at + 1]);
    std::size_t hdr = 2;
    if (len & 0x80) {
        const std::size_t n = len & 0x7f;
        if (n == 0 || n > 8 || at + 2 + n > d.size()) {
            return false;
        }
        len = 0;
        for (std::size_t i = 0; i < n; ++i) {
            len = (len << 8) | static_cast<unsigned char>(d[at + 2 + i]);
        }
        hdr += n;
    }
    *t = Tlv{at, hdr, len};
    return t->end() <= d.size();
}

}  // namespace

Result<CadesResult> signCms(const std::string& inPath, int outFd, const Credential& c,
                            const CadesOptions& options) {
    const EVP_MD* md = hsm::evpMd(c.hash);
    OsslPtr<EVP_MD_CTX> ctx(::EVP_MD_CTX_new());
    if (!ctx || ::EVP_DigestInit_ex(ctx.get(), md, nullptr) != 1) {
        return Error::make("cms.build", "cannot start the content digest");
    }
    CadesResult result;
    if (!streamFile(inPath, &result.contentSize, [&](const char* p, std::size_t n) {
            return ::EVP_DigestUpdate(ctx.get(), p, n) == 1;
        })) {
        return Error::make("io.read", "cannot read the content");
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digestLen = 0;
    ::EVP_DigestFinal_ex(ctx.get(), digest, &digestLen);
    auto der = buildCadesDetached(c, std::string_view(reinterpret_cast<char*>(digest), digestLen),
                                  options.timestamper, /*signingTime=*/true);
    if (!der) {
        return der.error();
    }
    if (options.detached) {
        if (!writeAll(outFd, der->data(), der->size())) {
            return Error::make("io.write", "cannot write the signature");
        }
        result.outputSize = der->size();
        return result;
    }

    // ContentInfo { OID, [0] { SignedData { version, digestAlgorithms, encap { OID }, rest } } }
    const std::string& d = *der;
    Tlv ci, explicit0, sd, version, algs, encap, eType;
    if (!readTlv(d, 0, &ci) || !readTlv(d, ci.at + ci.header, &eType) ||
        !readTlv(d, eType.end(), &explicit0) || !readTlv(d, explicit0.at + explicit0.header, &sd) ||
        !readTlv(d, sd.at + sd.header, &version) || !readTlv(d, version.end(), &algs) ||
        !readTlv(d, algs.end(), &encap)) {
        return Error::make("cms.build", "unexpected SignedData layout");
    }
    const std::string contentInfoType = d.substr(eType.at, eType.header + eType.length);
    const std::string sdHead = d.substr(version.at, encap.at - version.at);         // version, algs
    const std::string encapType = d.substr(encap.at + encap.header, encap.length);  // OID data
    const std::string sdTail = d.substr(encap.end(), sd.end() - encap.end());  // certs, signers

    const std::uint64_t n = result.contentSize;
    const std::string octetHeader = hsm::derHeader(0x04, n);
    const std::uint64_t octetLen = octetHeader.size() + n;
    const std::string eContentHeader = hsm::derHeader(0xa0, octetLen);
    const std::uint64_t encapBody = encapType.size() + eContentHeader.size() + octetLen;
    const std::string encapHeader = hsm::derHeader(0x30, encapBody);
    const std::uint64_t sdBody = sdHead.size() + encapHeader.size() + encapBody + sdTail.size();
    const std::string sdHeader = hsm::derHeader(0x30, sdBody);
    const std::uint64_t explicitBody = sdHeader.size() + sdBody;
    const std::string explicitHeader = hsm::derHeader(0xa0, explicitBody);
    const std::uint64_t ciBody = contentInfoType.size() + explicitHeader.size() + explicitBody;
    const std::string prefix = hsm::derHeader(0x30, ciBody) + contentInfoType + explicitHeader +
                               sdHeader + sdHead + encapHeader + encapType + eContentHeader +
                               octetHeader;
    if (!writeAll(outFd, prefix.data(), prefix.size())) {
        return Error::make("io.write", "cannot write the signature");
    }
    // The content is digested again on the way out: it must be what was signed.
    if (::EVP_DigestInit_ex(ctx.get(), md, nullptr) != 1) {
        return Error::make("cms.build", "cannot start the content digest");
    }
    std::uint64_t copied = 0;
    const bool read = streamFile(inPath, &copied, [&](const char* p, std::size_t k) {
        return ::EVP_DigestUpdate(ctx.get(), p, k) == 1 && writeAll(outFd, p, k);
    });
    unsigned char again[EVP_MAX_MD_SIZE];
    unsigned int againLen = 0;
    ::EVP_DigestFinal_ex(ctx.get(), again, &againLen);
    if (!read || copied != n || againLen != digestLen ||
        std::memcmp(again, digest, digestLen) != 0) {
        return Error::make("io.read", "the content changed or could not be read while signing");
    }
    if (!writeAll(outFd, sdTail.data(), sdTail.size())) {
        return Error::make("io.write", "cannot write the signature");
    }
    result.outputSize = prefix.size() + n + sdTail.size();
    return result;
}

Result<CadesResult> signCmsFile(const std::string& inPath, const std::string& outPath,
                                const Credential& c, const CadesOptions& options) {
    return writeAtomically(outPath, true, [&](int fd) { return signCms(inPath, fd, c, options); });
}

}  // namespace kyso::signer
