// TLS material for the plcsim tests, made with the OpenSSL API while the tests run (through the
// certstore tests' test PKI) and written to a temporary directory: nothing is committed, so
// nothing expires.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "test_pki.h"

namespace scada::test {

// A fresh directory under the system temp directory, removed with its contents.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path file(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

struct IssuedCertificate {
  std::string certificate_pem;
  std::string key_pem;
  std::string sha256;  // of the certificate's DER, lowercase hex
};

// A CA (EC P-256, valid from an hour ago for a day) that issues EC P-256 leaf certificates
// with the IP address 127.0.0.1 as subject alternative name.
class TestCa {
 public:
  explicit TestCa(const std::string& name);
  const std::string& certificate_pem() const { return certificate_pem_; }
  IssuedCertificate issue(const std::string& common_name);

 private:
  certstore::test_pki::KeyPtr key_;
  certstore::test_pki::CertificatePtr certificate_;
  std::string certificate_pem_;
  std::uint32_t next_serial_ = 2;
};

// A CA and a server certificate it issued, written as PEM files into dir (what clients
// trust, <name>-ca.pem), <name>.crt and <name>.key (what the server presents).
struct ServerTlsFiles {
  ServerTlsFiles(const TempDir& dir, const std::string& name);
  TestCa ca;
  IssuedCertificate server;
  std::filesystem::path ca_file, certificate_file, key_file;
};

void write_file(const std::filesystem::path& file, const std::string& content);
// Writes a temporary file beside file, then renames it over file: readers see the old content
// or the new one, never a mix (how certificate deployments replace files). The new file's
// modification time differs from the old one's, so watchers comparing time and size notice it
// even when both writes fall into one tick of the file system's coarse clock.
void replace_file_atomically(const std::filesystem::path& file, const std::string& content);

// Random key bytes, e.g. for a TLS external PSK (plcsim reads it as hex: to_hex in hex.h).
std::vector<std::uint8_t> random_key(std::size_t bytes);

}  // namespace scada::test
