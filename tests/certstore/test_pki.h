// A test PKI made with the OpenSSL API while the tests run: keys, CA and end-entity
// certificates and CRLs with exactly the fields a test asks for. Nothing is stored in the
// repository, so no test certificate ever expires.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <openssl/evp.h>
#include <openssl/x509.h>

namespace scada::certstore::test_pki {

using Bytes = std::vector<std::uint8_t>;

template <auto free_function>
struct Free {
  template <class T>
  void operator()(T* p) const {
    free_function(p);
  }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, Free<EVP_PKEY_free>>;
using CertificatePtr = std::unique_ptr<X509, Free<X509_free>>;
using CrlPtr = std::unique_ptr<X509_CRL, Free<X509_CRL_free>>;

enum class KeyKind { ec_p256, ec_p384, rsa2048, ed25519 };
KeyPtr make_key(KeyKind kind);

// A raw extension: its DER value as given, for encodings the OpenSSL API would not produce.
struct RawExtension {
  int nid = 0;
  Bytes value;
};

struct CertificateSpec {
  // Distinguished name in DER order, most general first: {{"O", "Plant A"}, {"CN", "PLC1"}}
  // is printed "CN=PLC1,O=Plant A". Values are UTF-8.
  std::vector<std::pair<std::string, std::string>> subject{{"CN", "Test"}};
  Bytes serial{0x01};  // big-endian magnitude
  bool negative_serial = false;
  std::chrono::sys_seconds not_before{};
  std::chrono::sys_seconds not_after{};
  std::optional<bool> ca;  // basicConstraints: none, CA:FALSE or CA:TRUE
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;
  std::vector<RawExtension> raw_extensions;
};

// Signed by issuer_key; the issuer name is issuer's subject, or the certificate's own when
// issuer is null (self-signed when issuer_key is the subject's key).
CertificatePtr make_certificate(const CertificateSpec& spec, EVP_PKEY* subject_key,
                                const X509* issuer, EVP_PKEY* issuer_key);

struct CrlSpec {
  std::chrono::sys_seconds this_update{};
  std::optional<std::chrono::sys_seconds> next_update;
  std::vector<Bytes> revoked_serials;  // big-endian magnitudes, in this order
};
CrlPtr make_crl(const CrlSpec& spec, const X509* issuer, EVP_PKEY* issuer_key);

Bytes der_of(const X509* certificate);
Bytes der_of(const X509_CRL* crl);
std::string pem_of(const X509* certificate);
std::string pem_of(const X509_CRL* crl);
std::string pem_of_private_key(EVP_PKEY* key);
// A PEM block of any type around any bytes (for malformed content).
std::string pem_block(std::string_view type, const Bytes& data);

Bytes to_bytes(std::string_view text);
// Lowercase hex SHA-256, computed here independently of the library.
std::string sha256_hex(const Bytes& data);

}  // namespace scada::certstore::test_pki
