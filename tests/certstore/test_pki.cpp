#include "test_pki.h"

#include <cstdlib>
#include <ctime>
#include <stdexcept>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

namespace scada::certstore::test_pki {

namespace {

using BioPtr = std::unique_ptr<BIO, Free<BIO_free>>;
using BignumPtr = std::unique_ptr<BIGNUM, Free<BN_free>>;
using IntegerPtr = std::unique_ptr<ASN1_INTEGER, Free<ASN1_INTEGER_free>>;
using ExtensionPtr = std::unique_ptr<X509_EXTENSION, Free<X509_EXTENSION_free>>;
using OctetStringPtr = std::unique_ptr<ASN1_OCTET_STRING, Free<ASN1_OCTET_STRING_free>>;
using TimePtr = std::unique_ptr<ASN1_TIME, Free<ASN1_TIME_free>>;

// Test setup that fails is a broken test, not a finding: stop with OpenSSL's reason.
void check(bool ok, const char* what) {
  if (ok) return;
  char reason[256] = "no OpenSSL error";
  if (const unsigned long code = ERR_get_error()) ERR_error_string_n(code, reason, sizeof reason);
  throw std::runtime_error(std::string("test PKI: ") + what + ": " + reason);
}

IntegerPtr make_integer(const Bytes& magnitude, bool negative) {
  BignumPtr number(BN_bin2bn(magnitude.data(), static_cast<int>(magnitude.size()), nullptr));
  check(number != nullptr, "BN_bin2bn");
  BN_set_negative(number.get(), negative ? 1 : 0);
  IntegerPtr integer(BN_to_ASN1_INTEGER(number.get(), nullptr));
  check(integer != nullptr, "BN_to_ASN1_INTEGER");
  return integer;
}

TimePtr make_time(std::chrono::sys_seconds t) {
  TimePtr time(ASN1_TIME_set(nullptr, static_cast<time_t>(t.time_since_epoch().count())));
  check(time != nullptr, "ASN1_TIME_set");
  return time;
}

void add_extension(X509* certificate, X509V3_CTX* context, int nid, const std::string& value) {
  ExtensionPtr extension(X509V3_EXT_conf_nid(nullptr, context, nid, value.c_str()));
  check(extension != nullptr, "X509V3_EXT_conf_nid");
  check(X509_add_ext(certificate, extension.get(), -1) == 1, "X509_add_ext");
}

const EVP_MD* digest_for(EVP_PKEY* key) {
  return EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448") ? nullptr : EVP_sha256();
}

Bytes read_all(BIO* bio) {
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio, &data);
  return Bytes(data, data + length);
}

}  // namespace

KeyPtr make_key(KeyKind kind) {
  EVP_PKEY* key = nullptr;
  switch (kind) {
    case KeyKind::ec_p256:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
      break;
    case KeyKind::ec_p384:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384");
      break;
    case KeyKind::rsa2048:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(2048));
      break;
    case KeyKind::ed25519:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
      break;
  }
  check(key != nullptr, "EVP_PKEY_Q_keygen");
  return KeyPtr(key);
}

CertificatePtr make_certificate(const CertificateSpec& spec, EVP_PKEY* subject_key,
                                const X509* issuer, EVP_PKEY* issuer_key) {
  CertificatePtr certificate(X509_new());
  check(certificate != nullptr, "X509_new");
  X509* x = certificate.get();
  check(X509_set_version(x, X509_VERSION_3) == 1, "X509_set_version");
  check(X509_set_serialNumber(x, make_integer(spec.serial, spec.negative_serial).get()) == 1,
        "X509_set_serialNumber");
  X509_NAME* subject = X509_get_subject_name(x);
  for (const auto& [field, value] : spec.subject) {
    check(X509_NAME_add_entry_by_txt(subject, field.c_str(), MBSTRING_UTF8,
                                     reinterpret_cast<const unsigned char*>(value.data()),
                                     static_cast<int>(value.size()), -1, 0) == 1,
          "X509_NAME_add_entry_by_txt");
  }
  check(X509_set_issuer_name(x, issuer != nullptr ? X509_get_subject_name(issuer) : subject) == 1,
        "X509_set_issuer_name");
  check(X509_set1_notBefore(x, make_time(spec.not_before).get()) == 1, "X509_set1_notBefore");
  check(X509_set1_notAfter(x, make_time(spec.not_after).get()) == 1, "X509_set1_notAfter");
  check(X509_set_pubkey(x, subject_key) == 1, "X509_set_pubkey");

  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, issuer != nullptr ? const_cast<X509*>(issuer) : x, x, nullptr, nullptr,
                 0);
  if (spec.ca.has_value()) {
    add_extension(x, &context, NID_basic_constraints, *spec.ca ? "critical,CA:TRUE" : "CA:FALSE");
  }
  std::string alt_names;
  for (const auto& name : spec.dns_names)
    alt_names += (alt_names.empty() ? "" : ",") + ("DNS:" + name);
  for (const auto& ip : spec.ip_addresses)
    alt_names += (alt_names.empty() ? "" : ",") + ("IP:" + ip);
  if (!alt_names.empty()) add_extension(x, &context, NID_subject_alt_name, alt_names);
  for (const RawExtension& raw : spec.raw_extensions) {
    OctetStringPtr value(ASN1_OCTET_STRING_new());
    check(value != nullptr && ASN1_OCTET_STRING_set(value.get(), raw.value.data(),
                                                    static_cast<int>(raw.value.size())) == 1,
          "ASN1_OCTET_STRING_set");
    ExtensionPtr extension(X509_EXTENSION_create_by_NID(nullptr, raw.nid, 0, value.get()));
    check(extension != nullptr, "X509_EXTENSION_create_by_NID");
    check(X509_add_ext(x, extension.get(), -1) == 1, "X509_add_ext");
  }
  check(X509_sign(x, issuer_key, digest_for(issuer_key)) > 0, "X509_sign");
  return certificate;
}

CrlPtr make_crl(const CrlSpec& spec, const X509* issuer, EVP_PKEY* issuer_key) {
  CrlPtr crl(X509_CRL_new());
  check(crl != nullptr, "X509_CRL_new");
  X509_CRL* c = crl.get();
  check(X509_CRL_set_version(c, X509_CRL_VERSION_2) == 1, "X509_CRL_set_version");
  check(X509_CRL_set_issuer_name(c, X509_get_subject_name(issuer)) == 1, "set_issuer_name");
  check(X509_CRL_set1_lastUpdate(c, make_time(spec.this_update).get()) == 1, "set1_lastUpdate");
  if (spec.next_update) {
    check(X509_CRL_set1_nextUpdate(c, make_time(*spec.next_update).get()) == 1, "nextUpdate");
  }
  for (const Bytes& serial : spec.revoked_serials) {
    X509_REVOKED* entry = X509_REVOKED_new();
    check(entry != nullptr, "X509_REVOKED_new");
    X509_REVOKED_set_serialNumber(entry, make_integer(serial, false).get());
    X509_REVOKED_set_revocationDate(entry, make_time(spec.this_update).get());
    if (X509_CRL_add0_revoked(c, entry) != 1) {
      X509_REVOKED_free(entry);
      check(false, "X509_CRL_add0_revoked");
    }
  }
  check(X509_CRL_sign(c, issuer_key, digest_for(issuer_key)) > 0, "X509_CRL_sign");
  return crl;
}

Bytes der_of(const X509* certificate) {
  unsigned char* out = nullptr;
  const int length = i2d_X509(certificate, &out);
  check(length > 0, "i2d_X509");
  Bytes der(out, out + length);
  OPENSSL_free(out);
  return der;
}

Bytes der_of(const X509_CRL* crl) {
  unsigned char* out = nullptr;
  const int length = i2d_X509_CRL(crl, &out);
  check(length > 0, "i2d_X509_CRL");
  Bytes der(out, out + length);
  OPENSSL_free(out);
  return der;
}

std::string pem_of(const X509* certificate) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  check(bio && PEM_write_bio_X509(bio.get(), certificate) == 1, "PEM_write_bio_X509");
  const Bytes text = read_all(bio.get());
  return std::string(text.begin(), text.end());
}

std::string pem_of(const X509_CRL* crl) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  check(bio && PEM_write_bio_X509_CRL(bio.get(), const_cast<X509_CRL*>(crl)) == 1,
        "PEM_write_bio_X509_CRL");
  const Bytes text = read_all(bio.get());
  return std::string(text.begin(), text.end());
}

std::string pem_of_private_key(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  check(bio && PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1,
        "PEM_write_bio_PrivateKey");
  const Bytes text = read_all(bio.get());
  return std::string(text.begin(), text.end());
}

std::string pem_block(std::string_view type, const Bytes& data) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  const std::string name(type);
  check(bio && PEM_write_bio(bio.get(), name.c_str(), "", data.data(),
                             static_cast<long>(data.size())) > 0,
        "PEM_write_bio");
  const Bytes text = read_all(bio.get());
  return std::string(text.begin(), text.end());
}

Bytes to_bytes(std::string_view text) {
  return Bytes(text.begin(), text.end());
}

std::string sha256_hex(const Bytes& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  check(EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr) == 1,
        "EVP_Digest");
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    hex += kDigits[digest[i] >> 4];
    hex += kDigits[digest[i] & 0x0F];
  }
  return hex;
}

}  // namespace scada::certstore::test_pki
