// Certificate revocation lists from DER and PEM.
#include <string>

#include <openssl/x509.h>

#include "certstore/certstore.h"
#include "input.h"
#include "openssl.h"

namespace scada::certstore {

namespace {

bool is_certificate(ByteView der) {
  const unsigned char* p = der.data();
  return X509Ptr(d2i_X509(nullptr, &p, static_cast<long>(der.size()))) != nullptr;
}

// What a decoded CRL says, or which field is unusable.
std::variant<CrlInfo, std::string> extract(const X509_CRL* crl, ByteView der) {
  CrlInfo info;
  auto issuer = name_to_text(X509_CRL_get_issuer(crl));
  if (!issuer) return "issuer name cannot be shown as text";
  info.issuer = std::move(*issuer);
  const auto this_update = to_time_point(X509_CRL_get0_lastUpdate(crl));
  if (!this_update) return "thisUpdate is not a valid time";
  info.this_update = *this_update;
  if (const ASN1_TIME* next = X509_CRL_get0_nextUpdate(crl)) {
    info.next_update = to_time_point(next);
    if (!info.next_update) return "nextUpdate is not a valid time";
  }
  // The CRL's own list, in file order: OpenSSL sorts it only when asked to look a serial up.
  const STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(const_cast<X509_CRL*>(crl));
  for (int i = 0; revoked != nullptr && i < sk_X509_REVOKED_num(revoked); ++i) {
    const X509_REVOKED* entry = sk_X509_REVOKED_value(revoked, i);
    info.revoked_serials_hex.push_back(integer_to_hex(X509_REVOKED_get0_serialNumber(entry)));
  }
  info.der.assign(der.begin(), der.end());
  info.sha256 = fingerprint_sha256(der);
  return info;
}

// One CRL in DER, from a DER file (pem_block 0) or from PEM block pem_block.
std::variant<CrlInfo, std::string> decode(ByteView der, std::size_t pem_block) {
  auto decoded = decode_der<X509CrlPtr>(der, d2i_X509_CRL, i2d_X509_CRL);
  if (auto* problem = std::get_if<DecodeProblem>(&decoded)) {
    // Files land in the wrong folder (a certificate among the CRLs): say so.
    if (pem_block == 0 && problem->kind == DecodeProblem::Kind::malformed && is_certificate(der)) {
      return "DER data is a certificate, not a CRL";
    }
    return describe(*problem, "CRL", pem_block);
  }
  auto info = extract(std::get<X509CrlPtr>(decoded).get(), der);
  if (auto* problem = std::get_if<std::string>(&info)) {
    return describe(DecodeProblem{DecodeProblem::Kind::invalid, *problem}, "CRL", pem_block);
  }
  return std::get<CrlInfo>(std::move(info));
}

}  // namespace

FileResult<CrlInfo> parse_crl(ByteView bytes, std::string_view source) {
  const auto fail = [&](std::string reason) {
    return FileError{std::string(source), std::move(reason)};
  };
  if (auto problem = check_input_size(bytes, kMaxCrlFileSize)) return fail(*problem);
  const OpenSslErrorScope errors;
  std::variant<CrlInfo, std::string> crl;
  switch (detect_encoding(bytes)) {
    case Encoding::unknown:
      return fail("not a CRL (neither DER nor PEM)");
    case Encoding::der:
      crl = decode(bytes, 0);
      break;
    case Encoding::pem: {
      auto blocks = read_pem_blocks(bytes);
      if (auto* problem = std::get_if<std::string>(&blocks)) return fail(*problem);
      const auto& all = std::get<std::vector<PemBlock>>(blocks);
      for (std::size_t i = 0; i < all.size(); ++i) {
        const std::string block = "PEM block " + std::to_string(i + 1);
        if (all[i].type != "X509 CRL") {
          return fail(block + " is \"" + all[i].type + "\", expected \"X509 CRL\"");
        }
        if (i > 0) return fail(block + " is a second CRL; a CRL file holds one");
      }
      crl = decode(all.front().data, 1);
      break;
    }
  }
  if (auto* problem = std::get_if<std::string>(&crl)) return fail(*problem);
  return std::get<CrlInfo>(std::move(crl));
}

FileResult<CrlInfo> read_crl_file(const std::filesystem::path& path) {
  auto bytes = read_small_file(path, kMaxCrlFileSize);
  if (auto* error = std::get_if<FileError>(&bytes)) return *error;
  return parse_crl(std::get<Bytes>(bytes), path.string());
}

}  // namespace scada::certstore
