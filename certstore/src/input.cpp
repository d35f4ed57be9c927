#include "input.h"

#include <cerrno>
#include <cstdint>
#include <string>
#include <string_view>

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include "openssl.h"
#include "store_files.h"

namespace scada::certstore {

namespace {

constexpr std::string_view kPemBegin = "-----BEGIN ";
constexpr std::string_view kUtf8ByteOrderMark = "\xEF\xBB\xBF";

std::string_view as_text(ByteView bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

std::size_t count_occurrences(std::string_view text, std::string_view word) {
  std::size_t count = 0;
  for (auto at = text.find(word); at != std::string_view::npos; at = text.find(word, at + 1)) {
    ++count;
  }
  return count;
}

}  // namespace

std::string FileError::to_string() const {
  return source + ": " + reason;
}

FileResult<Bytes> read_small_file(const std::filesystem::path& path, std::size_t limit) {
  const std::string source = path.string();
  // O_NONBLOCK: a FIFO dropped into a watched folder must not block the reader until some
  // writer appears; it is refused below as not a regular file.
  const FileDescriptor file(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (file.get() < 0) return FileError{source, "cannot open: " + system_error_text(errno)};
  struct stat status {};
  if (::fstat(file.get(), &status) != 0) {
    return FileError{source, "cannot read: " + system_error_text(errno)};
  }
  if (S_ISDIR(status.st_mode)) {
    return FileError{source, "cannot read: " + system_error_text(EISDIR)};
  }
  if (!S_ISREG(status.st_mode)) return FileError{source, "not a regular file"};
  if (static_cast<std::uintmax_t>(status.st_size) > limit) {
    return FileError{source, "file is " + std::to_string(status.st_size) + " bytes, the limit is " +
                                 std::to_string(limit)};
  }
  // One byte more than allowed: a file still being written may have grown since fstat.
  Bytes bytes(limit + 1);
  std::size_t filled = 0;
  while (filled < bytes.size()) {
    const ssize_t n = ::read(file.get(), bytes.data() + filled, bytes.size() - filled);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return FileError{source, "cannot read: " + system_error_text(errno)};
    if (n == 0) break;
    filled += static_cast<std::size_t>(n);
  }
  if (filled > limit) {
    return FileError{
        source, "file grew past the limit of " + std::to_string(limit) + " bytes while being read"};
  }
  if (filled == 0) return FileError{source, "empty file"};
  bytes.resize(filled);
  return bytes;
}

std::optional<std::string> check_input_size(ByteView bytes, std::size_t limit) {
  if (bytes.empty()) return "empty input";
  if (bytes.size() > limit) {
    return "input is " + std::to_string(bytes.size()) + " bytes, the limit is " +
           std::to_string(limit);
  }
  return std::nullopt;
}

Encoding detect_encoding(ByteView bytes) {
  // Every DER certificate and CRL is a SEQUENCE (0x30). A PEM file could only be mistaken for
  // DER if the text before its first block started with the digit '0'; no tool writes that.
  if (!bytes.empty() && bytes[0] == 0x30) return Encoding::der;
  if (as_text(bytes).find(kPemBegin) != std::string_view::npos) return Encoding::pem;
  return Encoding::unknown;
}

std::variant<std::vector<PemBlock>, std::string> read_pem_blocks(ByteView bytes) {
  std::string_view text = as_text(bytes);
  if (text.starts_with(kUtf8ByteOrderMark)) text.remove_prefix(kUtf8ByteOrderMark.size());
  const OpenSslErrorScope errors;
  BioPtr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  if (!bio) return "out of memory";

  // OpenSSL skips every line it does not take for a BEGIN line (a dash missing, text after the
  // dashes); such a block must not silently vanish from a file of trust material. So each
  // stretch of text one PEM_read_bio call consumed must hold exactly one "-----BEGIN ", and the
  // stretch after the last block none.
  std::size_t consumed = 0;
  const auto begin_markers_just_read = [&] {
    char* rest = nullptr;
    const auto remaining = static_cast<std::size_t>(BIO_get_mem_data(bio.get(), &rest));
    const std::size_t until = text.size() - remaining;
    const std::size_t count = count_occurrences(text.substr(consumed, until - consumed), kPemBegin);
    consumed = until;
    return count;
  };
  const auto bad_begin_line = [](std::size_t number) {
    return "PEM block " + std::to_string(number) +
           " is malformed: its BEGIN line is not \"-----BEGIN <TYPE>-----\"";
  };

  std::vector<PemBlock> blocks;
  for (;;) {
    const std::size_t number = blocks.size() + 1;
    char* name = nullptr;
    char* header = nullptr;
    unsigned char* data = nullptr;
    long length = 0;
    const int ok = PEM_read_bio(bio.get(), &name, &header, &data, &length);
    const OpenSslBuffer<char> name_owner(name), header_owner(header);
    const OpenSslBuffer<unsigned char> data_owner(data);
    if (ok != 1) {
      const unsigned long error = ERR_peek_last_error();
      if (error == 0) {  // OpenSSL fails a block without base64 but queues no reason
        return "PEM block " + std::to_string(number) + " is malformed: it holds no data";
      }
      if (ERR_GET_LIB(error) != ERR_LIB_PEM || ERR_GET_REASON(error) != PEM_R_NO_START_LINE) {
        return "PEM block " + std::to_string(number) + " is malformed: " + take_openssl_error();
      }
      if (begin_markers_just_read() != 0) return bad_begin_line(number);
      break;
    }
    if (begin_markers_just_read() != 1) return bad_begin_line(number);
    blocks.push_back(PemBlock{name, Bytes(data, data + length)});
  }
  return blocks;
}

std::string describe(const DecodeProblem& problem, std::string_view object, std::size_t pem_block) {
  const std::string named = (pem_block == 0 ? "DER " : "") + std::string(object);
  std::string text;
  switch (problem.kind) {
    case DecodeProblem::Kind::malformed:
      text = pem_block == 0 ? named + " truncated or malformed: " + problem.detail : problem.detail;
      break;
    case DecodeProblem::Kind::trailing_bytes:
      text = std::to_string(problem.trailing_bytes) +
             (problem.trailing_bytes == 1 ? " trailing byte" : " trailing bytes") + " after the " +
             named;
      break;
    case DecodeProblem::Kind::not_canonical:
      text = named + " is not canonical DER (re-encoding it gives other bytes)";
      break;
    case DecodeProblem::Kind::invalid:
      text = pem_block == 0 ? named + " is malformed: " + problem.detail : problem.detail;
      break;
  }
  if (pem_block == 0) return text;
  return "PEM block " + std::to_string(pem_block) + " is malformed: " + text;
}

}  // namespace scada::certstore
