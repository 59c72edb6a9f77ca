// Private: the strings and streams of an incremental update to an encrypted PDF, encrypted with
// the document's own key (ISO 32000-1, 7.6; ISO 32000-2, 7.6.3 for AES-256), so that the update
// reads as the rest of the document. Used for permission-protected documents, whose user password
// is empty, and for documents opened with a password the caller supplied.
#pragma once

#include <optional>
#include <qpdf/QPDF.hh>
#include <string>

#include "kyso/hsm/result.h"

namespace kyso::signer {

class UpdateEncryptor {
  public:
    // The document's security handler as qpdf opened it; nullopt (no encryption needed) when the
    // document is not encrypted. Errors: pdf.encrypted for a method we cannot write (an unknown
    // crypt filter).
    static Result<std::optional<UpdateEncryptor>> of(QPDF& pdf);

    // STRING (raw bytes) of new object NUM (generation 0), encrypted, as a PDF hex string "<...>".
    std::string string(int num, const std::string& raw) const;
    // The serialised body of object NUM GEN (a dictionary, an array or any direct object, or a
    // stream "<<...>>\nstream\n...\nendstream") with every string and the stream data
    // encrypted; the stream dictionary's /Length follows. References are kept as they are.
    std::string object(int num, int gen, const std::string& body) const;

    int revision() const { return m_r; }

    // The document's key is wiped from memory with the encryptor.
    UpdateEncryptor(UpdateEncryptor&& other) noexcept;
    UpdateEncryptor& operator=(UpdateEncryptor&&) = delete;
    UpdateEncryptor(const UpdateEncryptor&) = delete;
    ~UpdateEncryptor();

  private:
    UpdateEncryptor() = default;
    std::string encrypt(int num, int gen, const std::string& data,
                        QPDF::encryption_method_e m) const;
    void encryptStrings(int num, int gen, QPDFObjectHandle h, int depth) const;

    std::string m_key;
    int m_v = 0;
    int m_r = 0;
    QPDF::encryption_method_e m_streams = QPDF::e_none;
    QPDF::encryption_method_e m_strings = QPDF::e_none;
};

}  // namespace kyso::signer
