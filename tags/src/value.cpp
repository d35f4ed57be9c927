// Values: decode_value, encode_value, parse_value, value_to_string (tags.h, section Values).
#include <bit>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "tags/tags.h"

namespace scada::tags {

namespace {

using channel::Bytes;
using channel::ByteView;
using Decoded = std::variant<Value, std::string>;
using Encoded = std::variant<Bytes, std::string>;

std::uint64_t big_endian(ByteView b) {
  std::uint64_t v = 0;
  for (std::uint8_t x : b) v = v << 8 | x;
  return v;
}

Bytes to_big_endian(std::uint64_t v, std::size_t n) {
  Bytes out(n);
  for (std::size_t i = 0; i < n; ++i) out[n - 1 - i] = std::uint8_t(v >> (8 * i));
  return out;
}

// Latin-1 bytes -> UTF-8.
std::string latin1_to_utf8(ByteView bytes) {
  std::string out;
  for (std::uint8_t c : bytes) {
    if (c < 0x80) {
      out += char(c);
    } else {
      out += char(0xC0 | (c >> 6));
      out += char(0x80 | (c & 0x3F));
    }
  }
  return out;
}

// UTF-8 -> Latin-1 bytes, or why not.
std::variant<Bytes, std::string> utf8_to_latin1(std::string_view text) {
  Bytes out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      out.push_back(c);
    } else if ((c == 0xC2 || c == 0xC3) && i + 1 < text.size() &&
               (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80) {
      out.push_back(
          std::uint8_t((c & 0x03) << 6 | (static_cast<unsigned char>(text[i + 1]) & 0x3F)));
      ++i;
    } else {
      return "character " + std::to_string(out.size() + 1) +
             " is outside Latin-1 (U+0000..U+00FF), which PLC strings hold";
    }
  }
  return out;
}

// Characters in valid UTF-8 (no overlongs, no surrogates), or why the text is not UTF-8.
std::variant<std::size_t, std::string> utf8_length(std::string_view text) {
  std::size_t count = 0;
  for (std::size_t i = 0; i < text.size(); ++count) {
    const auto c = static_cast<unsigned char>(text[i]);
    std::size_t n = c < 0x80             ? 1
                    : (c & 0xE0) == 0xC0 ? 2
                    : (c & 0xF0) == 0xE0 ? 3
                    : (c & 0xF8) == 0xF0 ? 4
                                         : 0;
    const auto bad = [&] { return "byte " + std::to_string(i + 1) + " is not valid UTF-8"; };
    if (n == 0 || i + n > text.size()) return bad();
    std::uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
    for (std::size_t k = 1; k < n; ++k) {
      const auto d = static_cast<unsigned char>(text[i + k]);
      if ((d & 0xC0) != 0x80) return bad();
      cp = cp << 6 | (d & 0x3F);
    }
    static const std::uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return bad();
    i += n;
  }
  return count;
}

struct IntRange {
  std::int64_t min, max;
};

std::optional<IntRange> int_range(DataType t) {
  switch (t) {
    case DataType::Byte:
      return IntRange{0, 255};
    case DataType::Word:
      return IntRange{0, 65535};
    case DataType::DWord:
      return IntRange{0, 4294967295LL};
    case DataType::Int:
      return IntRange{-32768, 32767};
    case DataType::DInt:
      return IntRange{-2147483648LL, 2147483647LL};
    case DataType::Counter:
      return IntRange{0, 999};
    case DataType::Timer:
      return IntRange{0, 9'990'000};  // 999 x 10 s, in ms
    default:
      return std::nullopt;
  }
}

std::string kind_of(const Value& v) {
  switch (v.index()) {
    case 0:
      return "a Bool";
    case 1:
      return "an integer";
    case 2:
      return "a number with a fraction";
    default:
      return "text";
  }
}

int bcd_digit(unsigned nibble) {
  return nibble <= 9 ? int(nibble) : -1;
}

}  // namespace

Decoded decode_value(const TypeSpec& type, ByteView b) {
  const std::size_t need = type.byte_size();
  if (type.type != DataType::Text && b.size() != need) {
    return type.to_string() + " takes " + std::to_string(need) + " bytes, got " +
           std::to_string(b.size());
  }
  switch (type.type) {
    case DataType::Bool:
      if (b[0] > 1) return "a Bool must arrive as 0 or 1, got " + std::to_string(b[0]);
      return Value(b[0] == 1);
    case DataType::Byte:
    case DataType::Word:
    case DataType::DWord:
      return Value(std::int64_t(big_endian(b)));
    case DataType::Int:
      return Value(std::int64_t(std::int16_t(big_endian(b))));
    case DataType::DInt:
      return Value(std::int64_t(std::int32_t(big_endian(b))));
    case DataType::Real:
      return Value(double(std::bit_cast<float>(std::uint32_t(big_endian(b)))));
    case DataType::LReal:
      return Value(std::bit_cast<double>(big_endian(b)));
    case DataType::Char:
      return Value(latin1_to_utf8(b));
    case DataType::String: {
      const std::size_t max = b[0], current = b[1];
      if (current > max || current > type.string_length) {
        return "the PLC's string holds " + std::to_string(current) +
               " characters, more than its maximum " +
               std::to_string(std::min<std::size_t>(max, type.string_length));
      }
      return Value(latin1_to_utf8(b.subspan(2, current)));
    }
    case DataType::Timer: {
      const unsigned w = unsigned(big_endian(b));
      const int d2 = bcd_digit((w >> 8) & 15), d1 = bcd_digit((w >> 4) & 15),
                d0 = bcd_digit(w & 15);
      if (d2 < 0 || d1 < 0 || d0 < 0) return std::string("the timer value is not BCD (S5TIME)");
      static const std::int64_t kBaseMs[] = {10, 100, 1000, 10000};
      return Value(std::int64_t(d2 * 100 + d1 * 10 + d0) * kBaseMs[(w >> 12) & 3]);
    }
    case DataType::Counter: {
      const unsigned w = unsigned(big_endian(b));
      const int d2 = bcd_digit((w >> 8) & 15), d1 = bcd_digit((w >> 4) & 15),
                d0 = bcd_digit(w & 15);
      if (d2 < 0 || d1 < 0 || d0 < 0 || (w >> 12) != 0)
        return std::string("the counter value is not BCD");
      return Value(std::int64_t(d2 * 100 + d1 * 10 + d0));
    }
    case DataType::Text:
      break;  // any length up to n characters, below
  }
  if (type.type == DataType::Text) {
    std::string text(b.begin(), b.end());
    auto encoded = encode_value(type, Value(text));
    if (auto* why = std::get_if<std::string>(&encoded)) return *why;
    return Value(std::move(text));
  }
  return std::string("unknown data type");
}

Encoded encode_value(const TypeSpec& type, const Value& value) {
  const std::string name = type.to_string();
  const auto wrong_kind = [&] { return kind_of(value) + " does not fit " + name; };
  switch (type.type) {
    case DataType::Bool:
      if (const bool* v = std::get_if<bool>(&value)) return Bytes{std::uint8_t(*v ? 1 : 0)};
      return wrong_kind();
    case DataType::Real:
    case DataType::LReal: {
      double d = 0;
      if (const double* v = std::get_if<double>(&value)) {
        d = *v;
      } else if (const std::int64_t* i = std::get_if<std::int64_t>(&value)) {
        d = double(*i);
      } else {
        return wrong_kind();
      }
      if (type.type == DataType::LReal) return to_big_endian(std::bit_cast<std::uint64_t>(d), 8);
      if (std::isfinite(d) && std::fabs(d) > double(std::numeric_limits<float>::max())) {
        return "the value is outside the range of Real (about ±3.4e38)";
      }
      return to_big_endian(std::bit_cast<std::uint32_t>(float(d)), 4);
    }
    case DataType::Text: {
      const std::string* text = std::get_if<std::string>(&value);
      if (!text) return wrong_kind();
      auto length = utf8_length(*text);
      if (auto* why = std::get_if<std::string>(&length)) return "the text is not UTF-8: " + *why;
      if (std::get<std::size_t>(length) > type.string_length) {
        return "the text has " + std::to_string(std::get<std::size_t>(length)) +
               " characters, more than " + name + " holds";
      }
      return Bytes(text->begin(), text->end());
    }
    case DataType::Char:
    case DataType::String: {
      const std::string* text = std::get_if<std::string>(&value);
      if (!text) return wrong_kind();
      auto latin1 = utf8_to_latin1(*text);
      if (auto* why = std::get_if<std::string>(&latin1)) return *why;
      Bytes chars = std::get<Bytes>(std::move(latin1));
      if (type.type == DataType::Char) {
        if (chars.size() != 1) {
          return "a Char holds exactly one character, got " + std::to_string(chars.size());
        }
        return chars;
      }
      if (chars.size() > type.string_length) {
        return "the text has " + std::to_string(chars.size()) + " characters, more than " + name +
               " holds";
      }
      Bytes out(type.string_length + 2u, 0);
      out[0] = std::uint8_t(type.string_length);
      out[1] = std::uint8_t(chars.size());
      for (std::size_t k = 0; k < chars.size(); ++k) out[2 + k] = chars[k];
      return out;
    }
    default:
      break;
  }
  // The integer types.
  const std::int64_t* i = std::get_if<std::int64_t>(&value);
  if (!i) return wrong_kind();
  const IntRange r = *int_range(type.type);
  if (*i < r.min || *i > r.max) {
    return std::to_string(*i) + " does not fit " + name + " (" + std::to_string(r.min) + ".." +
           std::to_string(r.max) + ")";
  }
  const auto bcd = [](std::int64_t n) {
    return unsigned((n / 100) << 8 | (n / 10 % 10) << 4 | n % 10);
  };
  switch (type.type) {
    case DataType::Counter:
      return to_big_endian(bcd(*i), 2);
    case DataType::Timer: {
      // The finest time base that holds the value in three digits, exactly.
      static const std::int64_t kBaseMs[] = {10, 100, 1000, 10000};
      for (unsigned base = 0; base < 4; ++base) {
        if (*i % kBaseMs[base] == 0 && *i / kBaseMs[base] <= 999) {
          return to_big_endian(base << 12 | bcd(*i / kBaseMs[base]), 2);
        }
      }
      return std::to_string(*i) +
             " ms cannot be held exactly by S5TIME (3 digits of 10 ms, 100 ms, 1 s or 10 s)";
    }
    default:
      return to_big_endian(std::uint64_t(*i), type.byte_size());
  }
}

std::variant<Value, std::string> parse_value(const TypeSpec& type, std::string_view text) {
  const auto check = [&](Value v) -> std::variant<Value, std::string> {
    auto encoded = encode_value(type, v);
    if (auto* why = std::get_if<std::string>(&encoded)) return *why;
    return v;
  };
  // Text types take the text as it is, spaces included.
  if (type.type == DataType::String || type.type == DataType::Char || type.type == DataType::Text) {
    return check(Value(std::string(text)));
  }
  std::string t(text);
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.front()))) t.erase(0, 1);
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
  if (t.empty()) return "no value given for " + type.to_string();
  std::string low = t;
  for (char& c : low) c = char(std::tolower(static_cast<unsigned char>(c)));
  const std::string quoted = "'" + t.substr(0, 40) + "'";

  if (type.type == DataType::Bool) {
    if (low == "true" || low == "1" || low == "on") return Value(true);
    if (low == "false" || low == "0" || low == "off") return Value(false);
    return quoted + " is not a Bool (true/false, 1/0, on/off)";
  }
  if (type.type == DataType::Real || type.type == DataType::LReal) {
    double d = 0;
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), d);
    if (ec != std::errc() || end != t.data() + t.size()) {
      return quoted + " is not a number for " + type.to_string();
    }
    // A Real holds what a float holds: the value is the one the PLC will have.
    if (type.type == DataType::Real && std::fabs(d) <= double(std::numeric_limits<float>::max())) {
      d = double(float(d));
    }
    return check(Value(d));
  }
  if (type.type == DataType::Timer) {
    // Milliseconds, or a number with a unit: ms, s, min.
    std::size_t unit = t.find_first_not_of("0123456789.");
    const std::string number = t.substr(0, unit == std::string::npos ? t.size() : unit);
    const std::string suffix = unit == std::string::npos ? "" : low.substr(unit);
    double n = 0;
    const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), n);
    if (ec != std::errc() || end != number.data() + number.size()) {
      return quoted + " is not a time (1500, 1500ms, 1.5s, 2min)";
    }
    double scale = 1;
    if (suffix == "s") {
      scale = 1000;
    } else if (suffix == "min") {
      scale = 60000;
    } else if (!suffix.empty() && suffix != "ms") {
      return quoted + " has an unknown time unit (ms, s, min)";
    }
    const double ms = n * scale;
    if (ms > 1e12 || ms != std::floor(ms)) return quoted + " is not a whole number of ms";
    return check(Value(std::int64_t(ms)));
  }
  // Integers: decimal, 16#hex or 0xhex.
  int base = 10;
  std::string digits = t;
  bool negative = false;
  if (low.rfind("16#", 0) == 0 || low.rfind("0x", 0) == 0) {
    base = 16;
    digits = t.substr(low[0] == '1' ? 3 : 2);
  } else if (!digits.empty() && (digits[0] == '-' || digits[0] == '+')) {
    negative = digits[0] == '-';
    digits.erase(0, 1);
  }
  std::uint64_t magnitude = 0;
  const auto [end, ec] =
      std::from_chars(digits.data(), digits.data() + digits.size(), magnitude, base);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() ||
      magnitude > std::uint64_t(std::numeric_limits<std::int64_t>::max())) {
    return quoted + " is not a whole number for " + type.to_string();
  }
  const std::int64_t n = negative ? -std::int64_t(magnitude) : std::int64_t(magnitude);
  return check(Value(n));
}

std::string value_to_string(const Value& value) {
  switch (value.index()) {
    case 0:
      return std::get<bool>(value) ? "true" : "false";
    case 1:
      return std::to_string(std::get<std::int64_t>(value));
    case 2: {
      char buf[64];
      const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, std::get<double>(value));
      return ec == std::errc() ? std::string(buf, end) : "?";
    }
    default:
      return std::get<std::string>(value);
  }
}

std::string value_to_string(const TypeSpec& type, const Value& value) {
  if (const double* d = std::get_if<double>(&value); d && type.type == DataType::Real) {
    char buf[64];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, float(*d));
    if (ec == std::errc()) return std::string(buf, end);
  }
  return value_to_string(value);
}

Value zero_value(const TypeSpec& type) {
  switch (type.type) {
    case DataType::Bool:
      return false;
    case DataType::Real:
    case DataType::LReal:
      return 0.0;
    case DataType::Char:
    case DataType::String:
    case DataType::Text:
      return std::string();
    default:
      return std::int64_t{0};
  }
}

}  // namespace scada::tags
