// certstore: the device certificate store (DESIGN.md §3, §5). Today: reading certificate and CRL
// files. To come: trust snapshots, verification decisions, quarantine, expiry and the watcher.
//
// Every file is hostile input (DESIGN.md §10): sizes are bounded, nothing is read past the
// input, and what cannot be used comes back as a FileError naming the file and what is wrong
// with it. All functions are safe to call from several threads at once; the parse and read
// functions leave the calling thread's OpenSSL error queue empty.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace scada::certstore {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;
using TimePoint = std::chrono::system_clock::time_point;

// Why a file (or bytes from elsewhere, e.g. a bundle's inline certificate) cannot be used.
struct FileError {
  std::string source;             // the file's path, or the name the caller gave the bytes
  std::string reason;             // e.g. "64 trailing bytes after the DER certificate"
  std::string to_string() const;  // "<source>: <reason>"
  bool operator==(const FileError&) const = default;
};

template <class T>
using FileResult = std::variant<T, FileError>;

// ---------------------------------------------------------------------------------------------
// Certificate and CRL files
//
// The encoding is detected by content: input starting with a DER SEQUENCE (0x30) is DER and must
// hold exactly one object, with no byte after it; otherwise text with "-----BEGIN " lines is PEM
// (text around the blocks is ignored; a leading UTF-8 byte order mark too). Objects must be
// canonical DER (re-encoding gives the same bytes), so the fingerprint of a file is the
// fingerprint of the certificate, whoever computes it. Nothing is verified here: a CRL's
// signature and a certificate's chain are checked when a trust snapshot is built.
//
// Times are clamped to TimePoint's range (1677-09-21 .. 2262-04-11): RFC 5280's "no expiry"
// notAfter 99991231235959Z becomes TimePoint::max().
//
// The read_*_file functions read regular files only (no directory, FIFO or device) of at most
// the limit; errors carry the system's text: "cannot open: No such file or directory".

inline constexpr std::size_t kMaxCertificateFileSize = 64 * 1024;  // BUNDLE.md: per certificate
inline constexpr std::size_t kMaxCrlFileSize = 1024 * 1024;

struct CertificateInfo {
  std::string subject;     // RFC 2253, most specific first, UTF-8: "CN=PLC1,O=Plant Süd"
  std::string issuer;      // same form
  std::string serial_hex;  // lowercase hex, two digits a byte: "01f3", "00"; "-" when negative
  std::string sha256;      // fingerprint: lowercase hex SHA-256 of der, 64 characters
  TimePoint not_before, not_after;
  bool is_ca = false;        // basicConstraints CA:TRUE
  bool self_signed = false;  // issuer == subject and the signature verifies with its own key
  std::vector<std::string> dns_names;     // subjectAltName dNSName entries, in order
  std::vector<std::string> ip_addresses;  // subjectAltName iPAddress: "192.168.0.10", "fd00::a"
  std::string key_type;  // "EC P-256", "RSA 2048", "RSA-PSS 3072", "Ed25519", "EC brainpoolP256r1"
  Bytes der;

  // Whole days from now until not_after, rounded down: 0 on the last day, negative once expired.
  int days_until_expiry(TimePoint now) const;
  bool valid_at(TimePoint t) const;  // not_before <= t <= not_after
  bool operator==(const CertificateInfo&) const = default;
};

// One or more certificates (PEM CERTIFICATE blocks, in file order); other PEM blocks (keys,
// CRLs) are errors. source names the bytes in errors. Up to kMaxCertificateFileSize bytes.
FileResult<std::vector<CertificateInfo>> parse_certificates(ByteView bytes,
                                                            std::string_view source);
FileResult<std::vector<CertificateInfo>> read_certificate_file(const std::filesystem::path& path);

struct CrlInfo {
  std::string issuer;  // as CertificateInfo::subject
  TimePoint this_update;
  std::optional<TimePoint> next_update;          // absent when the CRL announces none
  std::vector<std::string> revoked_serials_hex;  // as CertificateInfo::serial_hex, in CRL order
  std::string sha256;                            // as CertificateInfo::sha256
  Bytes der;
  bool operator==(const CrlInfo&) const = default;
};

// Exactly one CRL (a PEM file holds one X509 CRL block). Up to kMaxCrlFileSize bytes.
FileResult<CrlInfo> parse_crl(ByteView bytes, std::string_view source);
FileResult<CrlInfo> read_crl_file(const std::filesystem::path& path);

// Lowercase hex SHA-256 of the bytes; a quarantined certificate's file is "<sha256>.der".
std::string fingerprint_sha256(ByteView der);

}  // namespace scada::certstore
