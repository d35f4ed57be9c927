#include "text_scanner.h"

#include <utility>

namespace scada::tags {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}
bool is_letter(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
char to_upper(char c) {
  return c >= 'a' && c <= 'z' ? char(c - 'a' + 'A') : c;
}

// Messages quote user text; keep them one line long even for megabytes of input.
constexpr std::size_t kMaxQuoted = 24;

std::string quote(std::string_view text) {
  std::string out = "'";
  for (std::size_t i = 0; i < text.size() && i < kMaxQuoted; ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    out += c >= 0x20 && c < 0x7F ? text[i] : '?';
  }
  if (text.size() > kMaxQuoted) out += "...";
  return out + "'";
}

}  // namespace

std::string describe_char(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u < 0x7F) return std::string("'") + c + "'";
  static constexpr char kHex[] = "0123456789ABCDEF";
  return std::string("byte 0x") + kHex[u >> 4] + kHex[u & 0x0F];
}

TextScanner::TextScanner(std::string_view text) : text_(text), begin_(0), end_(text.size()) {
  while (begin_ < end_ && is_space(text_[begin_])) ++begin_;
  while (end_ > begin_ && is_space(text_[end_ - 1])) --end_;
  pos_ = begin_;
}

bool TextScanner::accept(std::string_view word) {
  if (end_ - pos_ < word.size()) return false;
  for (std::size_t i = 0; i < word.size(); ++i) {
    if (to_upper(text_[pos_ + i]) != word[i]) return false;
  }
  pos_ += word.size();
  return true;
}

std::string TextScanner::consumed() const {
  return quote(text_.substr(begin_, pos_ - begin_));
}

std::string TextScanner::whole() const {
  return quote(text_.substr(begin_, end_ - begin_));
}

std::string TextScanner::letters() const {
  std::size_t n = 0;
  while (pos_ + n < end_ && is_letter(text_[pos_ + n])) ++n;
  return quote(text_.substr(pos_, n));
}

std::optional<std::uint32_t> TextScanner::number(std::string_view what, std::uint32_t min,
                                                 std::uint32_t max) {
  const std::size_t start = pos_;
  if (peek() == '+' || peek() == '-') {
    fail(start, "sign " + describe_char(peek()) + " not allowed before " + std::string(what));
    return std::nullopt;
  }
  if (!is_digit(peek())) {
    fail_expected(what);
    return std::nullopt;
  }
  // Saturates instead of overflowing: any value above max is reported the same way.
  std::uint64_t value = 0;
  while (!done() && is_digit(peek())) {
    value = value * 10 + std::uint64_t(peek() - '0');
    if (value > max) value = std::uint64_t(max) + 1;
    ++pos_;
  }
  if (value < min || value > max) {
    std::string_view digits = text_.substr(start, pos_ - start);
    while (digits.size() > 1 && digits.front() == '0') digits.remove_prefix(1);
    std::string shown(digits.substr(0, kMaxQuoted));
    if (digits.size() > kMaxQuoted) shown += "...";
    fail(start, std::string(what) + " " + shown + " out of range " + std::to_string(min) + ".." +
                    std::to_string(max));
    return std::nullopt;
  }
  return std::uint32_t(value);
}

bool TextScanner::expect(char c, std::string_view then) {
  if (!done() && peek() == c) {
    ++pos_;
    return true;
  }
  std::string wanted = "'" + std::string(1, c) + "'";
  if (!then.empty()) wanted += " and " + std::string(then);
  fail_expected(wanted);
  return false;
}

bool TextScanner::expect_end(std::string_view subject) {
  if (done()) return true;
  fail(pos_, "trailing characters after " + std::string(subject) + " " + consumed() + ": " +
                 quote(text_.substr(pos_, end_ - pos_)));
  return false;
}

const ParseError& TextScanner::fail_expected(std::string_view what) {
  if (done()) return fail(pos_, "missing " + std::string(what) + " after " + consumed());
  return fail(pos_, "expected " + std::string(what) + " after " + consumed() + ", found " +
                        describe_char(peek()));
}

const ParseError& TextScanner::fail(std::size_t position, std::string reason) {
  if (!error_) error_ = ParseError{position, std::move(reason)};
  return *error_;
}

std::string ParseError::to_string() const {
  return reason + " (at position " + std::to_string(position) + ")";
}

}  // namespace scada::tags
