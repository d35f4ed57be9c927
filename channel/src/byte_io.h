// Bounds-checked big-endian reading and writing for the codec (private to channel/).
#pragma once

#include <cstdint>
#include <string>

#include "channel/channel.h"

namespace scada::channel::detail {

// Reads big-endian fields from a view. Every read checks the remaining length first; a
// failed read records a WireError at the failing offset and later reads keep failing, so a
// decoder can read a whole structure and check once.
class Reader {
 public:
  explicit Reader(ByteView data, std::size_t base = 0) : data_(data), base_(base) {}

  bool need(std::size_t n, const char* what) {
    if (error_) return false;
    if (data_.size() - pos_ < n) {
      fail(WireErrorKind::truncated, std::string(what) + ": needs " + std::to_string(n) +
                                         " bytes, " + std::to_string(data_.size() - pos_) +
                                         " left");
      return false;
    }
    return true;
  }
  std::uint8_t u8(const char* what) {
    if (!need(1, what)) return 0;
    return data_[pos_++];
  }
  std::uint16_t u16(const char* what) {
    if (!need(2, what)) return 0;
    std::uint16_t v = std::uint16_t(data_[pos_] << 8 | data_[pos_ + 1]);
    pos_ += 2;
    return v;
  }
  std::uint32_t u24(const char* what) {
    if (!need(3, what)) return 0;
    std::uint32_t v =
        std::uint32_t(data_[pos_]) << 16 | std::uint32_t(data_[pos_ + 1]) << 8 | data_[pos_ + 2];
    pos_ += 3;
    return v;
  }
  ByteView take(std::size_t n, const char* what) {
    if (!need(n, what)) return {};
    ByteView v = data_.subspan(pos_, n);
    pos_ += n;
    return v;
  }
  Bytes bytes(std::size_t n, const char* what) {
    ByteView v = take(n, what);
    return Bytes(v.begin(), v.end());
  }
  void skip(std::size_t n, const char* what) { take(n, what); }

  void fail(WireErrorKind kind, std::string reason) { fail_at(pos_, kind, std::move(reason)); }
  void fail_at(std::size_t pos, WireErrorKind kind, std::string reason) {
    if (!error_) error_ = WireError{kind, base_ + pos, std::move(reason)};
  }

  std::size_t pos() const { return pos_; }
  std::size_t offset() const { return base_ + pos_; }
  std::size_t remaining() const { return data_.size() - pos_; }
  bool at_end() const { return pos_ == data_.size(); }
  bool failed() const { return error_.has_value(); }
  const WireError& error() const { return *error_; }

 private:
  ByteView data_;
  std::size_t base_;
  std::size_t pos_ = 0;
  std::optional<WireError> error_;
};

inline void put_u8(Bytes& out, std::uint8_t v) {
  out.push_back(v);
}
inline void put_u16(Bytes& out, std::uint16_t v) {
  out.push_back(std::uint8_t(v >> 8));
  out.push_back(std::uint8_t(v));
}
inline void put_u24(Bytes& out, std::uint32_t v) {
  out.push_back(std::uint8_t(v >> 16));
  out.push_back(std::uint8_t(v >> 8));
  out.push_back(std::uint8_t(v));
}
inline void put_bytes(Bytes& out, ByteView v) {
  out.insert(out.end(), v.begin(), v.end());
}

inline std::string hex16(std::uint16_t v) {
  static const char* digits = "0123456789ABCDEF";
  std::string s = "0x0000";
  for (int i = 0; i < 4; ++i) s[5 - i] = digits[(v >> (4 * i)) & 0xF];
  return s;
}
inline std::string hex8(std::uint8_t v) {
  static const char* digits = "0123456789ABCDEF";
  return std::string("0x") + digits[v >> 4] + digits[v & 0xF];
}

}  // namespace scada::channel::detail
