// Certificates from DER and PEM: what the store, the importer and the expiry checks need.
#include <arpa/inet.h>

#include <chrono>
#include <optional>
#include <string>
#include <variant>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certstore/certstore.h"
#include "input.h"
#include "openssl.h"

namespace scada::certstore {

namespace {

// The extension of that kind, decoded, or why not. Duplicates are refused: which of two
// subjectAltName extensions would a verifier use?
template <class Ptr>
std::variant<Ptr, std::string> single_extension(const X509* cert, int nid, const char* what) {
  int critical = -1;
  Ptr extension(
      static_cast<typename Ptr::element_type*>(X509_get_ext_d2i(cert, nid, &critical, nullptr)));
  if (critical == -2) return std::string("more than one ") + what + " extension";
  if (!extension && critical >= 0) return std::string(what) + " extension is malformed";
  return extension;
}

std::optional<std::string> add_subject_alt_names(const X509* cert, CertificateInfo& info) {
  auto names = single_extension<GeneralNamesPtr>(cert, NID_subject_alt_name, "subjectAltName");
  if (auto* problem = std::get_if<std::string>(&names)) return *problem;
  const GENERAL_NAMES* all = std::get<GeneralNamesPtr>(names).get();
  for (int i = 0; all != nullptr && i < sk_GENERAL_NAME_num(all); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(all, i);
    if (name->type == GEN_DNS) {
      const auto* data = ASN1_STRING_get0_data(name->d.dNSName);
      const std::string dns(reinterpret_cast<const char*>(data),
                            static_cast<std::size_t>(ASN1_STRING_length(name->d.dNSName)));
      // A NUL or control character would let "plc1\0.evil" pass for "plc1" in C string code
      // and garble logs; an IA5String has no bytes above 0x7F.
      for (const unsigned char c : dns) {
        if (c < 0x20 || c > 0x7E) return "subjectAltName DNS name holds a non-printable byte";
      }
      info.dns_names.push_back(dns);
    } else if (name->type == GEN_IPADD) {
      const auto* data = ASN1_STRING_get0_data(name->d.iPAddress);
      const int length = ASN1_STRING_length(name->d.iPAddress);
      char text[INET6_ADDRSTRLEN] = {};
      if (length != 4 && length != 16) {
        return "subjectAltName IP address of " + std::to_string(length) +
               " bytes (4 or 16 expected)";
      }
      inet_ntop(length == 4 ? AF_INET : AF_INET6, data, text, sizeof text);
      info.ip_addresses.emplace_back(text);
    }
    // Other kinds (e-mail, URI, directory names) play no part in matching a PLC.
  }
  return std::nullopt;
}

std::string describe_key(const X509* cert) {
  const EVP_PKEY* key = X509_get0_pubkey(cert);  // owned by the certificate
  if (key == nullptr) {
    const ASN1_OBJECT* algorithm = nullptr;
    X509_PUBKEY_get0_param(const_cast<ASN1_OBJECT**>(&algorithm), nullptr, nullptr, nullptr,
                           X509_get_X509_PUBKEY(cert));
    char oid[80] = "?";
    if (algorithm != nullptr) OBJ_obj2txt(oid, sizeof oid, algorithm, 0);
    return std::string("unreadable ") + oid + " key";
  }
  const std::string bits = std::to_string(EVP_PKEY_get_bits(key));
  if (EVP_PKEY_is_a(key, "RSA")) return "RSA " + bits;
  if (EVP_PKEY_is_a(key, "RSA-PSS")) return "RSA-PSS " + bits;
  if (EVP_PKEY_is_a(key, "DSA")) return "DSA " + bits;
  if (EVP_PKEY_is_a(key, "ED25519")) return "Ed25519";
  if (EVP_PKEY_is_a(key, "ED448")) return "Ed448";
  if (EVP_PKEY_is_a(key, "EC")) {
    char group[80] = {};
    std::size_t length = 0;
    if (EVP_PKEY_get_group_name(key, group, sizeof group, &length) != 1) {
      return "EC " + bits + "-bit, explicit curve parameters";
    }
    const char* nist = EC_curve_nid2nist(OBJ_sn2nid(group));  // "prime256v1" -> "P-256"
    return std::string("EC ") + (nist != nullptr ? nist : group);
  }
  const char* type = EVP_PKEY_get0_type_name(key);
  return type != nullptr ? type : "unknown key";
}

// What a decoded certificate says, or which field is unusable.
std::variant<CertificateInfo, std::string> extract(const X509* cert, ByteView der) {
  CertificateInfo info;
  auto subject = name_to_text(X509_get_subject_name(cert));
  auto issuer = name_to_text(X509_get_issuer_name(cert));
  if (!subject) return "subject name cannot be shown as text";
  if (!issuer) return "issuer name cannot be shown as text";
  info.subject = std::move(*subject);
  info.issuer = std::move(*issuer);
  info.serial_hex = integer_to_hex(X509_get0_serialNumber(cert));

  const auto not_before = to_time_point(X509_get0_notBefore(cert));
  const auto not_after = to_time_point(X509_get0_notAfter(cert));
  if (!not_before) return "notBefore is not a valid time";
  if (!not_after) return "notAfter is not a valid time";
  info.not_before = *not_before;
  info.not_after = *not_after;

  auto constraints =
      single_extension<BasicConstraintsPtr>(cert, NID_basic_constraints, "basicConstraints");
  if (auto* problem = std::get_if<std::string>(&constraints)) return *problem;
  const BASIC_CONSTRAINTS* basic = std::get<BasicConstraintsPtr>(constraints).get();
  info.is_ca = basic != nullptr && basic->ca != 0;

  if (auto problem = add_subject_alt_names(cert, info)) return *problem;

  EVP_PKEY* key = X509_get0_pubkey(cert);
  info.self_signed = X509_NAME_cmp(X509_get_subject_name(cert), X509_get_issuer_name(cert)) == 0 &&
                     key != nullptr && X509_verify(const_cast<X509*>(cert), key) == 1;
  info.key_type = describe_key(cert);
  info.der.assign(der.begin(), der.end());
  info.sha256 = fingerprint_sha256(der);
  return info;
}

bool is_crl(ByteView der) {
  const unsigned char* p = der.data();
  return X509CrlPtr(d2i_X509_CRL(nullptr, &p, static_cast<long>(der.size()))) != nullptr;
}

// One certificate in DER, from a DER file (pem_block 0) or from PEM block pem_block.
std::variant<CertificateInfo, std::string> decode(ByteView der, std::size_t pem_block) {
  auto decoded = decode_der<X509Ptr>(der, d2i_X509, i2d_X509);
  if (auto* problem = std::get_if<DecodeProblem>(&decoded)) {
    // Files land in the wrong folder (a CRL next to the certificates): say so.
    if (pem_block == 0 && problem->kind == DecodeProblem::Kind::malformed && is_crl(der)) {
      return "DER data is a CRL, not a certificate";
    }
    return describe(*problem, "certificate", pem_block);
  }
  auto info = extract(std::get<X509Ptr>(decoded).get(), der);
  if (auto* problem = std::get_if<std::string>(&info)) {
    return describe(DecodeProblem{DecodeProblem::Kind::invalid, *problem}, "certificate",
                    pem_block);
  }
  return std::get<CertificateInfo>(std::move(info));
}

}  // namespace

int CertificateInfo::days_until_expiry(TimePoint now) const {
  using namespace std::chrono;
  // floor((not_after - now) / 1 day), exactly, without forming not_after - now in nanoseconds:
  // that overflows for a clamped not_after. Whole seconds (truncated toward zero, so always
  // representable) and the parts of a second (under one second each) are subtracted apart.
  const auto whole = [](TimePoint t) { return duration_cast<seconds>(t.time_since_epoch()); };
  const auto part = [&](TimePoint t) { return t.time_since_epoch() - whole(t); };
  const seconds left = whole(not_after) - whole(now) + floor<seconds>(part(not_after) - part(now));
  return static_cast<int>(floor<days>(left).count());
}

bool CertificateInfo::valid_at(TimePoint t) const {
  return not_before <= t && t <= not_after;
}

FileResult<std::vector<CertificateInfo>> parse_certificates(ByteView bytes,
                                                            std::string_view source) {
  const auto fail = [&](std::string reason) {
    return FileError{std::string(source), std::move(reason)};
  };
  if (auto problem = check_input_size(bytes, kMaxCertificateFileSize)) return fail(*problem);
  const OpenSslErrorScope errors;
  std::vector<CertificateInfo> certificates;
  switch (detect_encoding(bytes)) {
    case Encoding::unknown:
      return fail("not a certificate (neither DER nor PEM)");
    case Encoding::der: {
      auto one = decode(bytes, 0);
      if (auto* problem = std::get_if<std::string>(&one)) return fail(*problem);
      certificates.push_back(std::move(std::get<CertificateInfo>(one)));
      break;
    }
    case Encoding::pem: {
      auto blocks = read_pem_blocks(bytes);
      if (auto* problem = std::get_if<std::string>(&blocks)) return fail(*problem);
      std::size_t number = 0;
      for (const PemBlock& block : std::get<std::vector<PemBlock>>(blocks)) {
        ++number;
        if (block.type != "CERTIFICATE" && block.type != "X509 CERTIFICATE") {
          return fail("PEM block " + std::to_string(number) + " is \"" + block.type +
                      "\", expected \"CERTIFICATE\"");
        }
        auto one = decode(block.data, number);
        if (auto* problem = std::get_if<std::string>(&one)) return fail(*problem);
        certificates.push_back(std::move(std::get<CertificateInfo>(one)));
      }
      break;
    }
  }
  return certificates;
}

FileResult<std::vector<CertificateInfo>> read_certificate_file(const std::filesystem::path& path) {
  auto bytes = read_small_file(path, kMaxCertificateFileSize);
  if (auto* error = std::get_if<FileError>(&bytes)) return *error;
  return parse_certificates(std::get<Bytes>(bytes), path.string());
}

std::string fingerprint_sha256(ByteView der) {
  static constexpr char kDigits[] = "0123456789abcdef";
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  std::string hex;
  if (EVP_Digest(der.data(), der.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
    return hex;  // only when OpenSSL cannot allocate; an empty fingerprint matches no file
  }
  for (unsigned int i = 0; i < length; ++i) {
    hex += kDigits[digest[i] >> 4];
    hex += kDigits[digest[i] & 0x0F];
  }
  return hex;
}

}  // namespace scada::certstore
