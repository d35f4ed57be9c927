// The raw side of certificate and CRL files: bounded reads, DER/PEM detection, PEM blocks.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "certstore/certstore.h"

namespace scada::certstore {

// The whole file, if it is a regular file of 1..limit bytes; errors carry the system's text.
FileResult<Bytes> read_small_file(const std::filesystem::path& path, std::size_t limit);

// "empty input" or "input is N bytes, the limit is L", or nothing when the size is acceptable.
std::optional<std::string> check_input_size(ByteView bytes, std::size_t limit);

enum class Encoding { der, pem, unknown };
Encoding detect_encoding(ByteView bytes);

struct PemBlock {
  std::string type;  // the word(s) of the BEGIN line: "CERTIFICATE", "X509 CRL", "PRIVATE KEY"
  Bytes data;        // the decoded base64
};

// Why one DER object (certificate or CRL) in a file cannot be used.
struct DecodeProblem {
  enum class Kind {
    malformed,       // OpenSSL could not decode it; detail is OpenSSL's reason
    trailing_bytes,  // it ends before its input does
    not_canonical,   // re-encoding it gives other bytes
    invalid,         // it decodes, but a field is unusable; detail says which
  } kind;
  std::string detail;
  std::size_t trailing_bytes = 0;
};

// The FileError reason for a problem with a DER file's object (pem_block 0): "DER certificate
// truncated or malformed: wrong tag", "64 trailing bytes after the DER certificate", or with the
// object of a PEM block: "PEM block 2 is malformed: 3 trailing bytes after the certificate".
// object is "certificate" or "CRL".
std::string describe(const DecodeProblem& problem, std::string_view object, std::size_t pem_block);

// Every PEM block, in order; or why not ("PEM block 2 is malformed: ...").
std::variant<std::vector<PemBlock>, std::string> read_pem_blocks(ByteView text);

}  // namespace scada::certstore
