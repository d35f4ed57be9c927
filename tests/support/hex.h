// Test helper: hex strings to bytes and back (spaces and '|' ignored).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace scada::test {

inline std::vector<std::uint8_t> hex(const std::string& text) {
  std::vector<std::uint8_t> out;
  int high = -1;
  for (char c : text) {
    int v;
    if (c >= '0' && c <= '9')
      v = c - '0';
    else if (c >= 'a' && c <= 'f')
      v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      v = c - 'A' + 10;
    else if (c == ' ' || c == '|' || c == '\n')
      continue;
    else
      throw std::invalid_argument("bad hex character in test vector");
    if (high < 0)
      high = v;
    else {
      out.push_back(std::uint8_t(high << 4 | v));
      high = -1;
    }
  }
  if (high >= 0) throw std::invalid_argument("odd number of hex digits in test vector");
  return out;
}

inline std::string to_hex(const std::vector<std::uint8_t>& bytes) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (auto b : bytes) {
    s += d[b >> 4];
    s += d[b & 15];
  }
  return s;
}

}  // namespace scada::test
