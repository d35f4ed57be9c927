// libFuzzer target: certificate and CRL files (DER or PEM) on arbitrary bytes. Whatever parses
// must carry the fingerprint of its own DER and parse again, from that DER alone, to the same
// result; every error must name its source and give a reason. Anything else aborts.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <variant>
#include <vector>

#include "certstore/certstore.h"

namespace {

using scada::certstore::ByteView;
using scada::certstore::CertificateInfo;
using scada::certstore::CrlInfo;
using scada::certstore::FileError;

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_certificate: %s: %s\n", what, detail.c_str());
  std::abort();
}

void check_error(const FileError& error) {
  if (error.source != "input" || error.reason.empty())
    fail("error without source or reason", error.to_string());
}

void check_fingerprint(const std::string& sha256, ByteView der) {
  if (sha256.size() != 64 || sha256.find_first_not_of("0123456789abcdef") != std::string::npos) {
    fail("fingerprint is not 64 lowercase hex digits", sha256);
  }
  if (sha256 != scada::certstore::fingerprint_sha256(der))
    fail("fingerprint is not of the DER", sha256);
}

void check_certificates(ByteView input) {
  const auto result = scada::certstore::parse_certificates(input, "input");
  if (const auto* error = std::get_if<FileError>(&result)) return check_error(*error);
  const auto& certificates = std::get<std::vector<CertificateInfo>>(result);
  if (certificates.empty()) fail("success without a certificate", "");
  for (const CertificateInfo& info : certificates) {
    check_fingerprint(info.sha256, info.der);
    const auto again = scada::certstore::parse_certificates(info.der, "input");
    const auto* one = std::get_if<std::vector<CertificateInfo>>(&again);
    if (one == nullptr)
      fail("DER of a parsed certificate does not parse", std::get<FileError>(again).to_string());
    if (one->size() != 1 || !(one->front() == info))
      fail("DER parses to another certificate", info.subject);
  }
}

void check_crl(ByteView input) {
  const auto result = scada::certstore::parse_crl(input, "input");
  if (const auto* error = std::get_if<FileError>(&result)) return check_error(*error);
  const CrlInfo& crl = std::get<CrlInfo>(result);
  check_fingerprint(crl.sha256, crl.der);
  const auto again = scada::certstore::parse_crl(crl.der, "input");
  if (const auto* error = std::get_if<FileError>(&again))
    fail("DER of a parsed CRL does not parse", error->to_string());
  if (!(std::get<CrlInfo>(again) == crl)) fail("DER parses to another CRL", crl.issuer);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const ByteView input(data, size);
  check_certificates(input);
  check_crl(input);
  return 0;
}
