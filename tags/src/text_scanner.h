// TextScanner: the cursor the address and data type parsers share (internal to tags).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "tags/tags.h"

namespace scada::tags {

// Walks the text between its surrounding spaces, matches ASCII case-insensitively and keeps
// the first error. Positions always count from the start of the whole text, so an error
// points at the character the user typed.
class TextScanner {
 public:
  explicit TextScanner(std::string_view text);

  bool done() const { return pos_ >= end_; }
  std::size_t position() const { return pos_; }
  // The character under the cursor, '\0' at the end (never reads past the text).
  char peek() const { return done() ? '\0' : text_[pos_]; }
  // Consumes word (given in upper case) if the text continues with it, in any case.
  bool accept(std::string_view word);
  // The trimmed text up to the cursor, quoted and shortened for messages: 'DB1.DBX'.
  std::string consumed() const;
  // The trimmed text, quoted and shortened for messages.
  std::string whole() const;
  // The run of ASCII letters at the cursor, quoted and shortened for messages.
  std::string letters() const;

  // Reads an unsigned decimal number in [min, max]. On failure records the error (missing
  // number, sign, other character, out of range) naming the number as `what`.
  std::optional<std::uint32_t> number(std::string_view what, std::uint32_t min, std::uint32_t max);
  // Consumes word (upper case) only if it is all the rest of the text.
  bool accept_rest(std::string_view word) { return end_ - pos_ == word.size() && accept(word); }
  // Consumes c or records "missing/expected '<c>' [and <then>] after ...".
  bool expect(char c, std::string_view then = {});
  // Records "trailing characters after <subject> ..." unless the cursor is at the end.
  bool expect_end(std::string_view subject);

  // Records "missing <what> after 'consumed'" at the end, else "expected <what> after
  // 'consumed', found <char>", at the cursor.
  const ParseError& fail_expected(std::string_view what);
  // Records an error at a position (the first error wins) and returns it.
  const ParseError& fail(std::size_t position, std::string reason);
  const ParseError& error() const { return *error_; }

 private:
  std::string_view text_;
  std::size_t begin_;  // first non-space character
  std::size_t end_;    // one past the last non-space character
  std::size_t pos_;
  std::optional<ParseError> error_;
};

// Text of one character for a message: 'x' when printable ASCII, byte 0x01 otherwise.
std::string describe_char(char c);

}  // namespace scada::tags
