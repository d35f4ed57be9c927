#include "test_tls_files.h"

#include <openssl/rand.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <thread>

namespace scada::test {

namespace pki = certstore::test_pki;

namespace {

pki::CertificateSpec spec_valid_now(const std::string& common_name, std::uint32_t serial) {
  const auto now =
      std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
  pki::CertificateSpec spec;
  spec.subject = {{"O", "plcsim tests"}, {"CN", common_name}};
  spec.serial = {std::uint8_t(serial >> 24), std::uint8_t(serial >> 16), std::uint8_t(serial >> 8),
                 std::uint8_t(serial)};
  spec.not_before = now - std::chrono::hours(1);
  spec.not_after = now + std::chrono::hours(24);
  return spec;
}

}  // namespace

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "plcsim-test-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error("mkdtemp " + pattern + ": " + std::strerror(errno));
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

TestCa::TestCa(const std::string& name) : key_(pki::make_key(pki::KeyKind::ec_p256)) {
  pki::CertificateSpec spec = spec_valid_now(name, 1);
  spec.ca = true;
  certificate_ = pki::make_certificate(spec, key_.get(), nullptr, key_.get());
  certificate_pem_ = pki::pem_of(certificate_.get());
}

IssuedCertificate TestCa::issue(const std::string& common_name) {
  pki::KeyPtr key = pki::make_key(pki::KeyKind::ec_p256);
  pki::CertificateSpec spec = spec_valid_now(common_name, next_serial_++);
  spec.ca = false;
  spec.ip_addresses = {"127.0.0.1"};
  pki::CertificatePtr certificate =
      pki::make_certificate(spec, key.get(), certificate_.get(), key_.get());
  return IssuedCertificate{pki::pem_of(certificate.get()), pki::pem_of_private_key(key.get()),
                           pki::sha256_hex(pki::der_of(certificate.get()))};
}

ServerTlsFiles::ServerTlsFiles(const TempDir& dir, const std::string& name)
    : ca(name + " CA"),
      server(ca.issue(name)),
      ca_file(dir.file(name + "-ca.pem")),
      certificate_file(dir.file(name + ".crt")),
      key_file(dir.file(name + ".key")) {
  write_file(ca_file, ca.certificate_pem());
  write_file(certificate_file, server.certificate_pem);
  write_file(key_file, server.key_pem);
}

void write_file(const std::filesystem::path& file, const std::string& content) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  if (!out) throw std::runtime_error(file.string() + ": cannot write");
}

void replace_file_atomically(const std::filesystem::path& file, const std::string& content) {
  std::filesystem::path temporary = file;
  temporary += ".new";
  std::error_code ec;
  const auto old_time = std::filesystem::last_write_time(file, ec);
  write_file(temporary, content);
  // The clock behind file times advances in ticks of a few milliseconds: write again (a bounded
  // number of times) until the new file is younger than the one it replaces.
  for (int i = 0; !ec && i < 200 && std::filesystem::last_write_time(temporary) == old_time; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    write_file(temporary, content);
  }
  std::filesystem::rename(temporary, file);
}

std::vector<std::uint8_t> random_key(std::size_t bytes) {
  std::vector<std::uint8_t> key(bytes);
  if (RAND_bytes(key.data(), int(key.size())) != 1) throw std::runtime_error("RAND_bytes failed");
  return key;
}

}  // namespace scada::test
