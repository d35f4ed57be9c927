// AlternativeAddress::parse and to_string (tags.h, section "The alternative address").
#include <arpa/inet.h>

#include <cctype>
#include <charconv>
#include <string>
#include <string_view>

#include "tags/tags.h"
#include "text_scanner.h"

namespace scada::tags {

namespace {

using Result = std::variant<AlternativeAddress, ParseError>;

bool is_space(char c) {
  return c == ' ' || c == '\t';
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// One "Key=Value" pair: both trimmed, with the positions where they start in the whole text.
struct Pair {
  std::string_view key, value;
  std::size_t key_at = 0, value_at = 0;
};

std::string_view trimmed(std::string_view s, std::size_t& at) {
  while (!s.empty() && is_space(s.front())) {
    s.remove_prefix(1);
    ++at;
  }
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::optional<std::uint32_t> decimal(std::string_view v, std::uint32_t min, std::uint32_t max) {
  std::uint32_t n = 0;
  if (v.empty() || v.size() > 10) return std::nullopt;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || end != v.data() + v.size() || n < min || n > max) return std::nullopt;
  return n;
}

bool valid_ipv4(const std::string& v) {
  in_addr a{};
  return inet_pton(AF_INET, v.c_str(), &a) == 1;
}

bool looks_like_ipv4(std::string_view v) {
  return !v.empty() && v.find_first_not_of("0123456789.") == std::string_view::npos;
}

// RFC 1123 host name: labels of letters, digits and '-', 1..63 characters, not starting or
// ending with '-'; at most 253 characters; one final dot allowed.
std::optional<std::string> host_name_problem(std::string_view v) {
  if (!v.empty() && v.back() == '.') v.remove_suffix(1);
  if (v.empty()) return "empty host name";
  if (v.size() > 253) return "host name longer than 253 characters";
  std::size_t start = 0;
  while (start <= v.size()) {
    const std::size_t dot = std::min(v.find('.', start), v.size());
    const std::string_view label = v.substr(start, dot - start);
    if (label.empty()) return "empty label in host name";
    if (label.size() > 63) return "host name label longer than 63 characters";
    if (label.front() == '-' || label.back() == '-') {
      return "host name label starts or ends with '-'";
    }
    for (char c : label) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') {
        return "character " + describe_char(c) + " is not allowed in a host name";
      }
    }
    start = dot + 1;
  }
  return std::nullopt;
}

std::optional<std::uint16_t> parse_tsap(std::string_view v) {
  std::string digits;
  if (v.size() == 5 && v[2] == '.') {
    digits = std::string(v.substr(0, 2)) + std::string(v.substr(3, 2));
  } else if (v.size() == 6 && (v.substr(0, 2) == "0x" || v.substr(0, 2) == "0X")) {
    digits = std::string(v.substr(2));
  } else if (v.size() == 4) {
    digits = std::string(v);
  } else {
    return std::nullopt;
  }
  std::uint16_t n = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n, 16);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return n;
}

}  // namespace

Result AlternativeAddress::parse(std::string_view text) {
  const auto fail = [](std::size_t at, std::string reason) -> Result {
    return ParseError{at, std::move(reason)};
  };
  if (text.size() > kMaxAlternativeAddressLength) {
    return fail(kMaxAlternativeAddressLength,
                "longer than " + std::to_string(kMaxAlternativeAddressLength) + " characters");
  }
  // Control characters (a NUL above all, which C APIs would cut at) belong in no value; a tab
  // counts as a space between tokens.
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if ((c < 0x20 && c != '\t') || c == 0x7F) {
      return fail(i, "the control character " + describe_char(text[i]) + " is not allowed");
    }
  }
  AlternativeAddress out;
  bool seen_ip = false, seen_access_point = false;
  std::size_t rack_at = 0, slot_at = 0, tsap_at = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t semicolon = std::min(text.find(';', pos), text.size());
    std::size_t at = pos;
    const std::string_view segment = trimmed(text.substr(pos, semicolon - pos), at);
    pos = semicolon + 1;
    if (segment.empty()) continue;
    const std::size_t eq = segment.find('=');
    if (eq == std::string_view::npos) {
      return fail(at, "expected Key=Value, found '" + std::string(segment.substr(0, 40)) + "'");
    }
    Pair p;
    p.key_at = at;
    p.key = trimmed(segment.substr(0, eq), p.key_at);
    p.value_at = at + eq + 1;
    p.value = trimmed(segment.substr(eq + 1), p.value_at);
    if (p.key.empty()) return fail(at, "missing key before '='");
    if (p.value.find('=') != std::string_view::npos) {
      return fail(p.value_at + p.value.find('='),
                  "a second '=' in the value of " + std::string(p.key) + " (missing ';'?)");
    }
    const std::string key = lower(p.key);
    const std::string name(p.key);
    const auto twice = [&] { return fail(p.key_at, name + " given twice"); };
    if (p.value.empty()) return fail(p.value_at, "missing value for " + name);
    if (key == "ipaddress") {
      if (seen_ip) return twice();
      seen_ip = true;
      std::string v(p.value);
      if (v.front() == '[') {
        if (v.size() < 3 || v.back() != ']') {
          return fail(p.value_at, "an IPv6 address in brackets needs the closing ']'");
        }
        v = v.substr(1, v.size() - 2);
      }
      in6_addr a6{};
      if (v.find(':') != std::string::npos) {
        if (inet_pton(AF_INET6, v.c_str(), &a6) != 1) {
          return fail(p.value_at, "'" + v + "' is not a valid IPv6 address");
        }
      } else if (looks_like_ipv4(v)) {
        if (!valid_ipv4(v)) return fail(p.value_at, "'" + v + "' is not a valid IPv4 address");
      } else if (auto problem = host_name_problem(v)) {
        return fail(p.value_at, "'" + v + "' is not an IP address or host name: " + *problem);
      }
      out.ip_address = v;
    } else if (key == "accesspoint") {
      if (seen_access_point) return twice();
      seen_access_point = true;
      for (std::size_t i = 0; i < p.value.size(); ++i) {
        if (static_cast<unsigned char>(p.value[i]) < 0x20 || p.value[i] == 0x7F) {
          return fail(p.value_at + i,
                      "AccessPoint holds the control character " + describe_char(p.value[i]));
        }
      }
      out.access_point = std::string(p.value);
    } else if (key == "port") {
      if (out.port) return twice();
      auto n = decimal(p.value, 1, 65535);
      if (!n)
        return fail(p.value_at,
                    "Port must be a number 1..65535, found '" + std::string(p.value) + "'");
      out.port = std::uint16_t(*n);
    } else if (key == "rack") {
      if (out.rack) return twice();
      auto n = decimal(p.value, 0, 7);
      if (!n)
        return fail(p.value_at, "Rack must be a number 0..7, found '" + std::string(p.value) + "'");
      out.rack = std::uint8_t(*n);
      rack_at = p.key_at;
    } else if (key == "slot") {
      if (out.slot) return twice();
      auto n = decimal(p.value, 0, 31);
      if (!n)
        return fail(p.value_at,
                    "Slot must be a number 0..31, found '" + std::string(p.value) + "'");
      out.slot = std::uint8_t(*n);
      slot_at = p.key_at;
    } else if (key == "tsap") {
      if (out.tsap) return twice();
      auto n = parse_tsap(p.value);
      if (!n) {
        return fail(p.value_at,
                    "TSAP must be two hex bytes such as 03.01, 0301 or 0x0301, found '" +
                        std::string(p.value) + "'");
      }
      out.tsap = *n;
      tsap_at = p.key_at;
    } else {
      return fail(p.key_at, "unknown key '" + name +
                                "' (known: IPAddress, AccessPoint, Port, Rack, Slot, TSAP)");
    }
  }
  if (!seen_ip) return fail(text.size(), "IPAddress is missing (the alternative CPU's address)");
  if (out.rack.has_value() != out.slot.has_value()) {
    return fail(out.rack ? rack_at : slot_at, "Rack and Slot go together");
  }
  if (out.tsap && out.rack) return fail(tsap_at, "give TSAP or Rack and Slot, not both");
  return out;
}

std::string AlternativeAddress::to_string() const {
  // Compact on purpose: never longer than any text it was parsed from, so it fits the tag too.
  std::string s = "IPAddress=" + ip_address;
  if (!access_point.empty()) s += ";AccessPoint=" + access_point;
  if (port) s += ";Port=" + std::to_string(*port);
  if (rack) s += ";Rack=" + std::to_string(*rack);
  if (slot) s += ";Slot=" + std::to_string(*slot);
  if (tsap) {
    static const char kHex[] = "0123456789ABCDEF";
    s += ";TSAP=";
    for (int shift : {12, 8, 4, 0}) s += kHex[(*tsap >> shift) & 15];
  }
  return s;
}

}  // namespace scada::tags
