// Address: the S7 address syntax, and how data types and the wire see an address.
#include <string>

#include "tags/tags.h"
#include "text_scanner.h"

namespace scada::tags {
namespace {

using channel::Area;
using Width = Address::Width;

constexpr std::uint32_t kMaxDb = 65535;
constexpr std::uint32_t kMaxTimerCounter = 65535;
constexpr std::uint32_t kMaxBit = 7;

// After a DB's "DBX"/"DBB"/... or an I/Q/M area letter: the byte offset, and ".bit" for bits.
bool parse_offset(TextScanner& scan, Address& a) {
  auto offset = scan.number("byte offset", 0, kMaxByteOffset);
  if (!offset) return false;
  a.offset = *offset;
  if (a.width != Width::Bit) return true;
  if (!scan.expect('.', "bit number")) return false;
  auto bit = scan.number("bit number", 0, kMaxBit);
  if (!bit) return false;
  a.bit = std::uint8_t(*bit);
  return true;
}

// "X", "B", "W" or "D" (the caller has consumed what precedes it).
std::optional<Width> accept_width_letter(TextScanner& scan) {
  if (scan.accept("X")) return Width::Bit;
  if (scan.accept("B")) return Width::Byte;
  if (scan.accept("W")) return Width::Word;
  if (scan.accept("D")) return Width::DWord;
  return std::nullopt;
}

// After "DB": n.DBXo.b, n.DBBo, n.DBWo, n.DBDo, n.STRINGo.len, n.LREALo.
bool parse_data_block(TextScanner& scan, Address& a) {
  a.area = Area::data_block;
  auto db = scan.number("DB number", 1, kMaxDb);
  if (!db) return false;
  a.db = std::uint16_t(*db);
  if (!scan.expect('.', "DBX, DBB, DBW, DBD, STRING or LREAL")) return false;
  if (scan.accept("DB")) {
    auto width = accept_width_letter(scan);
    if (!width) {
      scan.fail_expected("X, B, W or D");
      return false;
    }
    a.width = *width;
    return parse_offset(scan, a);
  }
  if (scan.accept("STRING")) {
    a.width = Width::String;
    if (!parse_offset(scan, a)) return false;
    if (!scan.expect('.', "string length")) return false;
    auto length = scan.number("string length", 1, kMaxStringLength);
    if (!length) return false;
    a.string_length = std::uint16_t(*length);
    return true;
  }
  if (scan.accept("LREAL")) {
    a.width = Width::LReal;
    return parse_offset(scan, a);
  }
  scan.fail_expected("DBX, DBB, DBW, DBD, STRING or LREAL");
  return false;
}

// After an I/E, Q/A or M letter: [X]o.b, Bo, Wo, Do.
bool parse_bit_area(TextScanner& scan, Address& a) {
  auto width = accept_width_letter(scan);
  if (!width) {
    const char c = scan.peek();
    const bool starts_number = (c >= '0' && c <= '9') || c == '+' || c == '-';
    if (!scan.done() && !starts_number) {
      scan.fail_expected("X, B, W, D or a byte offset");
      return false;
    }
  }
  a.width = width.value_or(Width::Bit);
  return parse_offset(scan, a);
}

bool parse_numbered(TextScanner& scan, Address& a, Area area, Width width, const char* what) {
  a.area = area;
  a.width = width;
  auto number = scan.number(what, 0, kMaxTimerCounter);
  if (!number) return false;
  a.offset = *number;
  return true;
}

// Bytes the value at an address occupies (timers and counters: 2 per element).
std::uint32_t value_bytes(const Address& a) {
  switch (a.width) {
    case Width::Bit:
    case Width::Byte:
      return 1;
    case Width::Word:
    case Width::Timer:
    case Width::Counter:
      return 2;
    case Width::DWord:
      return 4;
    case Width::LReal:
      return 8;
    case Width::String:
      return std::uint32_t{a.string_length} + 2;
  }
  return 1;
}

const char* width_words(Width w) {
  switch (w) {
    case Width::Bit:
      return "a bit address";
    case Width::Byte:
      return "a byte address";
    case Width::Word:
      return "a word address";
    case Width::DWord:
      return "a dword address";
    case Width::String:
      return "a STRING address";
    case Width::LReal:
      return "an LREAL address";
    case Width::Timer:
      return "a timer";
    case Width::Counter:
      return "a counter";
  }
  return "an address";
}

}  // namespace

std::variant<Address, ParseError> Address::parse(std::string_view text) {
  TextScanner scan(text);
  if (scan.done()) return scan.fail(0, "empty address");

  Address a;
  bool ok = false;
  // "DB" before the one-letter areas; there is no "D" area.
  if (scan.accept("DB")) {
    ok = parse_data_block(scan, a);
  } else if (scan.accept("I") || scan.accept("E")) {
    a.area = Area::inputs;
    ok = parse_bit_area(scan, a);
  } else if (scan.accept("Q") || scan.accept("A")) {
    a.area = Area::outputs;
    ok = parse_bit_area(scan, a);
  } else if (scan.accept("M")) {
    a.area = Area::flags;
    ok = parse_bit_area(scan, a);
  } else if (scan.accept("T")) {
    ok = parse_numbered(scan, a, Area::timers, Width::Timer, "timer number");
  } else if (scan.accept("C") || scan.accept("Z")) {
    ok = parse_numbered(scan, a, Area::counters, Width::Counter, "counter number");
  } else {
    const char c = scan.peek();
    const bool letter = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    if (letter) return scan.fail(scan.position(), "unknown area " + scan.letters());
    return scan.fail(scan.position(),
                     "expected an area (DB, I, E, Q, A, M, T, C or Z), found " + describe_char(c));
  }
  if (!ok || !scan.expect_end("address")) return scan.error();
  return a;
}

std::string Address::to_string() const {
  if (width == Width::Timer) return "T" + std::to_string(offset);
  if (width == Width::Counter) return "C" + std::to_string(offset);

  const bool in_db = area == Area::data_block;
  std::string out;
  switch (area) {
    case Area::data_block:
      out = "DB" + std::to_string(db) + ".";
      break;
    case Area::inputs:
      out = "I";
      break;
    case Area::outputs:
      out = "Q";
      break;
    case Area::flags:
      out = "M";
      break;
    default:  // not produced by parse
      out = "?";
      break;
  }
  switch (width) {
    case Width::Bit:
      out += in_db ? "DBX" : "";
      break;
    case Width::Byte:
      out += in_db ? "DBB" : "B";
      break;
    case Width::Word:
      out += in_db ? "DBW" : "W";
      break;
    case Width::DWord:
      out += in_db ? "DBD" : "D";
      break;
    case Width::String:
      out += "STRING";
      break;
    case Width::LReal:
      out += "LREAL";
      break;
    case Width::Timer:
    case Width::Counter:
      break;
  }
  out += std::to_string(offset);
  if (width == Width::Bit) out += "." + std::to_string(bit);
  if (width == Width::String) out += "." + std::to_string(string_length);
  return out;
}

std::optional<std::string> check_fits(const Address& address, const TypeSpec& type) {
  Width needed = Width::Bit;
  const char* example = "";
  switch (type.type) {
    case DataType::Bool:
      needed = Width::Bit;
      example = "DB1.DBX0.0 or M10.2";
      break;
    case DataType::Byte:
    case DataType::Char:
      needed = Width::Byte;
      example = "DB1.DBB0 or MB3";
      break;
    case DataType::Word:
    case DataType::Int:
      needed = Width::Word;
      example = "DB1.DBW0 or MW4";
      break;
    case DataType::DWord:
    case DataType::DInt:
    case DataType::Real:
      needed = Width::DWord;
      example = "DB1.DBD0 or MD8";
      break;
    case DataType::LReal:
      needed = Width::LReal;
      example = "DB1.LREAL0";
      break;
    case DataType::String:
      needed = Width::String;
      example = "DB1.STRING0.n";
      break;
    case DataType::Timer:
      needed = Width::Timer;
      example = "T5";
      break;
    case DataType::Counter:
      needed = Width::Counter;
      example = "C3";
      break;
    case DataType::Text:
      return type.to_string() + " is for internal tags and has no PLC address; use String[n] " +
             "at DB1.STRING0.n for text in the PLC";
  }
  const std::string name = type.to_string();
  const std::string here = "'" + address.to_string() + "'";
  if (type.type == DataType::String) {
    const std::string n = std::to_string(type.string_length);
    if (type.string_length < 1 || type.string_length > kMaxStringLength) {
      return name + " is not a valid data type: string length " + n + " out of range 1.." +
             std::to_string(kMaxStringLength);
    }
    if (address.width != Width::String) {
      return name + " needs a STRING address of length " + n + " such as DB1.STRING0." + n + "; " +
             here + " is " + width_words(address.width);
    }
    if (address.string_length != type.string_length) {
      return name + " needs a STRING address of length " + n + "; " + here + " has length " +
             std::to_string(address.string_length);
    }
    return std::nullopt;
  }
  if (address.width != needed) {
    return name + " needs " + width_words(needed) + " such as " + example + "; " + here + " is " +
           width_words(address.width);
  }
  return std::nullopt;
}

TypeSpec default_type(const Address& address) {
  switch (address.width) {
    case Width::Bit:
      return {DataType::Bool};
    case Width::Byte:
      return {DataType::Byte};
    case Width::Word:
      return {DataType::Word};
    case Width::DWord:
      return {DataType::DWord};
    case Width::String:
      return {DataType::String, address.string_length};
    case Width::LReal:
      return {DataType::LReal};
    case Width::Timer:
      return {DataType::Timer};
    case Width::Counter:
      return {DataType::Counter};
  }
  return {DataType::Byte};
}

channel::ReadTag to_read_tag(const Address& address) {
  channel::ReadTag tag;
  tag.area = address.area;
  tag.db = address.area == Area::data_block ? address.db : 0;
  tag.offset = address.offset;
  const bool numbered = address.width == Width::Timer || address.width == Width::Counter;
  tag.size = numbered ? 1 : value_bytes(address);
  if (address.width == Width::Bit) tag.bit = address.bit;
  return tag;
}

channel::VarItem to_var_item(const Address& address) {
  channel::VarItem item;
  item.area = address.area;
  item.db = address.area == Area::data_block ? address.db : 0;
  switch (address.width) {
    case Width::Bit:
      item.transport = channel::TransportSize::bit;
      item.count = 1;
      item.address = address.offset * 8 + address.bit;
      break;
    case Width::Timer:
    case Width::Counter:
      item.transport = address.width == Width::Timer ? channel::TransportSize::timer
                                                     : channel::TransportSize::counter;
      item.count = 1;
      item.address = address.offset;
      break;
    default:
      item.transport = channel::TransportSize::byte;
      item.count = std::uint16_t(value_bytes(address));
      item.address = address.offset * 8;
      break;
  }
  return item;
}

}  // namespace scada::tags
