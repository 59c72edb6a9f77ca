#include "pdf_encrypt.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cctype>
#include <cstring>
#include <memory>
#include <qpdf/BufferInputSource.hh>
#include <qpdf/QPDFCryptoImpl.hh>
#include <qpdf/QPDFCryptoProvider.hh>
#include <qpdf/QPDFObjectHandle.hh>
#include <qpdf/QPDFTokenizer.hh>
#include <stdexcept>
#include <vector>

#include "kyso/hsm/encoding.h"
#include "kyso/hsm/secret.h"

namespace kyso::signer {

namespace {

constexpr int kMaxDepth = 64;
constexpr const char* kStreamStart = ">>\nstream\n";
constexpr const char* kStreamEnd = "\nendstream";

// A PDF hex string.
std::string hexString(const std::string& bin) {
    return "<" + hsm::hexOf(bin, true) + ">";
}

bool supported(QPDF::encryption_method_e m) {
    return m == QPDF::e_none || m == QPDF::e_rc4 || m == QPDF::e_aes || m == QPDF::e_aesv3;
}

// AES-CBC with a random 16-byte IV in front and PKCS#5 padding: /AESV2 and /AESV3
// (ISO 32000-1, 7.6.2; ISO 32000-2, 7.6.3.3).
std::string aesCbc(const std::string& key, const std::string& data) {
    unsigned char iv[16];
    if (::RAND_bytes(iv, sizeof iv) != 1) {
        throw std::runtime_error("no random bytes for the AES initialisation vector");
    }
    const EVP_CIPHER* cipher = key.size() == 32 ? ::EVP_aes_256_cbc() : ::EVP_aes_128_cbc();
    std::unique_ptr<EVP_CIPHER_CTX, decltype(&::EVP_CIPHER_CTX_free)> ctx(::EVP_CIPHER_CTX_new(),
                                                                          &::EVP_CIPHER_CTX_free);
    if (!ctx || ::EVP_EncryptInit_ex(ctx.get(), cipher, nullptr,
                                     reinterpret_cast<const unsigned char*>(key.data()), iv) != 1) {
        throw std::runtime_error("cannot start AES encryption");
    }
    std::string out(reinterpret_cast<char*>(iv), sizeof iv);
    out.resize(sizeof iv + data.size() + 16);
    int n = 0;
    int total = sizeof iv;
    if (::EVP_EncryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(&out[total]), &n,
                            reinterpret_cast<const unsigned char*>(data.data()),
                            static_cast<int>(data.size())) != 1) {
        throw std::runtime_error("AES encryption failed");
    }
    total += n;
    if (::EVP_EncryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(&out[total]), &n) != 1) {
        throw std::runtime_error("AES encryption failed");
    }
    out.resize(static_cast<std::size_t>(total + n));
    return out;
}

// RC4 (/V2 and /V1): OpenSSL 3 keeps it in its legacy provider; qpdf's own crypto has it.
std::string rc4(const std::string& key, const std::string& data) {
    std::shared_ptr<QPDFCryptoImpl> impl = QPDFCryptoProvider::getImpl();
    impl->RC4_init(reinterpret_cast<const unsigned char*>(key.data()),
                   static_cast<int>(key.size()));
    std::string out(data.size(), '\0');
    impl->RC4_process(reinterpret_cast<const unsigned char*>(data.data()), data.size(),
                      reinterpret_cast<unsigned char*>(out.data()));
    impl->RC4_finalize();
    return out;
}

constexpr const char* kRefName = "/KysoEncRef_";

// TEXT (one PDF object) with every reference "N G R" turned into a name /KysoEncRef_N_G, so
// that qpdf parses it without a document and keeps every key (a reference to an object that its
// document lacks would read as null, and a null value drops its key). Tokens come from qpdf's
// tokenizer, so a string that contains "1 0 R" stays a string.
std::string referencesAsNames(const std::string& text) {
    auto input = std::make_shared<BufferInputSource>("update object", text);
    QPDFTokenizer tokenizer;
    tokenizer.allowEOF();
    std::vector<QPDFTokenizer::Token> tokens;
    std::string out;
    auto flush = [&](std::size_t keep) {
        while (tokens.size() > keep) {
            out += tokens.front().getRawValue();
            out += ' ';
            tokens.erase(tokens.begin());
        }
    };
    for (;;) {
        QPDFTokenizer::Token t = tokenizer.readToken(input, "update object", true);
        if (t.getType() == QPDFTokenizer::tt_eof) {
            break;
        }
        if (t.getType() == QPDFTokenizer::tt_bad) {
            throw std::runtime_error("an object of the update does not parse");
        }
        if (t.isWord("R") && tokens.size() >= 2 &&
            tokens[tokens.size() - 1].getType() == QPDFTokenizer::tt_integer &&
            tokens[tokens.size() - 2].getType() == QPDFTokenizer::tt_integer) {
            const std::string num = tokens[tokens.size() - 2].getValue();
            const std::string gen = tokens[tokens.size() - 1].getValue();
            tokens.resize(tokens.size() - 2);
            flush(0);
            out += std::string(kRefName) + num + "_" + gen + " ";
            continue;
        }
        tokens.push_back(t);
        flush(2);
    }
    flush(0);
    return out;
}

// The inverse, on qpdf's unparsed text: each /KysoEncRef_N_G becomes "N G R" again.
std::string namesAsReferences(std::string s) {
    const std::size_t prefix = std::strlen(kRefName);
    for (std::size_t p = s.find(kRefName); p != std::string::npos; p = s.find(kRefName, p)) {
        std::size_t e = p + prefix;
        while (e < s.size() && (std::isdigit(static_cast<unsigned char>(s[e])) || s[e] == '_')) {
            ++e;
        }
        std::string ref = s.substr(p + prefix, e - p - prefix);
        const auto sep = ref.find('_');
        ref = ref.substr(0, sep) + " " + ref.substr(sep + 1) + " R";
        s.replace(p, e - p, ref);
        p += ref.size();
    }
    return s;
}

}  // namespace

Result<std::optional<UpdateEncryptor>> UpdateEncryptor::of(QPDF& pdf) {
    int r = 0;
    int p = 0;
    int v = 0;
    QPDF::encryption_method_e streams = QPDF::e_none;
    QPDF::encryption_method_e strings = QPDF::e_none;
    QPDF::encryption_method_e files = QPDF::e_none;
    if (!pdf.isEncrypted(r, p, v, streams, strings, files)) {
        return std::optional<UpdateEncryptor>();
    }
    if (v < 4) {
        // Before crypt filters (V 1 and 2), everything is RC4; qpdf reports the methods only
        // from V 4 on.
        streams = QPDF::e_rc4;
        strings = QPDF::e_rc4;
    }
    QPDFObjectHandle encrypt = pdf.getTrailer().getKey("/Encrypt");
    if (!encrypt.isDictionary() || !encrypt.getKey("/Filter").isNameAndEquals("/Standard")) {
        return Error::make("pdf.encrypted",
                           "the document uses a security handler other than the standard "
                           "password handler; it is not signed");
    }
    if (!supported(streams) || !supported(strings)) {
        return Error::make("pdf.encrypted",
                           "the document's encryption method (crypt filter) is not one kyso "
                           "can write (RC4, AES-128, AES-256)");
    }
    UpdateEncryptor e;
    e.m_key = pdf.getEncryptionKey();
    e.m_v = v;
    e.m_r = r;
    e.m_streams = streams;
    e.m_strings = strings;
    if (e.m_key.empty()) {
        return Error::make("pdf.encrypted", "the document's encryption key is not available");
    }
    return std::optional<UpdateEncryptor>(std::move(e));
}

UpdateEncryptor::UpdateEncryptor(UpdateEncryptor&& other) noexcept
    : m_key(other.m_key),
      m_v(other.m_v),
      m_r(other.m_r),
      m_streams(other.m_streams),
      m_strings(other.m_strings) {
    hsm::secureWipe(other.m_key.data(), other.m_key.size());
}

UpdateEncryptor::~UpdateEncryptor() {
    hsm::secureWipe(m_key.data(), m_key.size());
}

std::string UpdateEncryptor::encrypt(int num, int gen, const std::string& data,
                                     QPDF::encryption_method_e m) const {
    switch (m) {
        case QPDF::e_none:
            return data;
        case QPDF::e_aesv3:
            // AES-256 uses the file key itself for every object (ISO 32000-2, 7.6.3.3).
            return aesCbc(m_key, data);
        case QPDF::e_aes:
            return aesCbc(QPDF::compute_data_key(m_key, num, gen, true, m_v, m_r), data);
        case QPDF::e_rc4:
            return rc4(QPDF::compute_data_key(m_key, num, gen, false, m_v, m_r), data);
        default:
            throw std::runtime_error("unsupported encryption method");
    }
}

std::string UpdateEncryptor::string(int num, const std::string& raw) const {
    return m_strings == QPDF::e_none ? hexString(raw) : hexString(encrypt(num, 0, raw, m_strings));
}

void UpdateEncryptor::encryptStrings(int num, int gen, QPDFObjectHandle h, int depth) const {
    if (depth > kMaxDepth || h.isIndirect()) {
        return;
    }
    auto encrypted = [&](QPDFObjectHandle s) {
        return QPDFObjectHandle::newString(encrypt(num, gen, s.getStringValue(), m_strings));
    };
    if (h.isDictionary()) {
        for (const auto& key : h.getKeys()) {
            QPDFObjectHandle v = h.getKey(key);
            if (v.isString() && !v.isIndirect()) {
                h.replaceKey(key, encrypted(v));
            } else {
                encryptStrings(num, gen, v, depth + 1);
            }
        }
    } else if (h.isArray()) {
        for (int i = 0; i < h.getArrayNItems(); ++i) {
            QPDFObjectHandle v = h.getArrayItem(i);
            if (v.isString() && !v.isIndirect()) {
                h.setArrayItem(i, encrypted(v));
            } else {
                encryptStrings(num, gen, v, depth + 1);
            }
        }
    }
}

std::string UpdateEncryptor::object(int num, int gen, const std::string& body) const {
    // A stream as our writers make it (pdfStream): the dictionary, then the data.
    const bool isStream = body.size() > std::strlen(kStreamEnd) &&
                          body.compare(body.size() - std::strlen(kStreamEnd),
                                       std::strlen(kStreamEnd), kStreamEnd) == 0;
    const std::size_t dictEnd = isStream ? body.find(kStreamStart) : std::string::npos;
    if (isStream && dictEnd == std::string::npos) {
        throw std::runtime_error("a stream object without a dictionary");
    }
    const std::string dictText = isStream ? body.substr(0, dictEnd + 2) : body;
    QPDFObjectHandle h = QPDFObjectHandle::parse(referencesAsNames(dictText), "update object");
    if (m_strings != QPDF::e_none) {
        if (h.isString()) {
            h = QPDFObjectHandle::newString(encrypt(num, gen, h.getStringValue(), m_strings));
        } else {
            encryptStrings(num, gen, h, 0);
        }
    }
    if (!isStream) {
        return namesAsReferences(h.unparse());
    }
    const std::size_t dataStart = dictEnd + std::strlen(kStreamStart);
    const std::string data =
        body.substr(dataStart, body.size() - std::strlen(kStreamEnd) - dataStart);
    const std::string sealed = encrypt(num, gen, data, m_streams);
    h.replaceKey("/Length", QPDFObjectHandle::newInteger(static_cast<long long>(sealed.size())));
    return namesAsReferences(h.unparse()) + "\nstream\n" + sealed + kStreamEnd;
}

}  // namespace kyso::signer
