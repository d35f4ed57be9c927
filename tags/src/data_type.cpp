// TypeSpec: S7 data type names and sizes.
#include <array>
#include <string_view>

#include "tags/tags.h"
#include "text_scanner.h"

namespace scada::tags {
namespace {

struct TypeName {
  DataType type;
  std::string_view upper;  // for matching
  std::string_view name;   // for printing
};

// String is not listed: it carries a length and is parsed on its own.
constexpr std::array<TypeName, 11> kTypeNames{{
    {DataType::Bool, "BOOL", "Bool"},
    {DataType::Byte, "BYTE", "Byte"},
    {DataType::Char, "CHAR", "Char"},
    {DataType::Word, "WORD", "Word"},
    {DataType::Int, "INT", "Int"},
    {DataType::DWord, "DWORD", "DWord"},
    {DataType::DInt, "DINT", "DInt"},
    {DataType::Real, "REAL", "Real"},
    {DataType::LReal, "LREAL", "LReal"},
    {DataType::Timer, "TIMER", "Timer"},
    {DataType::Counter, "COUNTER", "Counter"},
}};

}  // namespace

std::variant<TypeSpec, ParseError> TypeSpec::parse(std::string_view text) {
  TextScanner scan(text);
  if (scan.done()) return scan.fail(0, "empty data type");

  if (scan.accept("STRING")) {
    if (!scan.expect('[', "string length")) return scan.error();
    auto length = scan.number("string length", 1, kMaxStringLength);
    if (!length) return scan.error();
    if (!scan.expect(']')) return scan.error();
    if (!scan.expect_end("data type")) return scan.error();
    return TypeSpec{DataType::String, std::uint16_t(*length)};
  }
  if (scan.accept("TEXT")) {
    if (scan.done()) return TypeSpec{DataType::Text, kMaxTextLength};
    if (!scan.expect('[', "text length")) return scan.error();
    auto length = scan.number("text length", 1, kMaxTextLength);
    if (!length) return scan.error();
    if (!scan.expect(']')) return scan.error();
    if (!scan.expect_end("data type")) return scan.error();
    return TypeSpec{DataType::Text, std::uint16_t(*length)};
  }
  const std::size_t start = scan.position();
  for (const TypeName& t : kTypeNames) {
    if (scan.accept_rest(t.upper)) return TypeSpec{t.type, 0};
  }
  if (scan.accept_rest("UINT32")) return TypeSpec{DataType::DWord, 0};
  if (scan.accept_rest("INT32")) return TypeSpec{DataType::DInt, 0};
  return scan.fail(start, "unknown data type " + scan.whole() +
                              " (expected Bool, Byte, Char, Word, Int, DWord, DInt, Real, LReal, "
                              "String[n], Timer, Counter or Text[n])");
}

std::string TypeSpec::to_string() const {
  if (type == DataType::String) return "String[" + std::to_string(string_length) + "]";
  if (type == DataType::Text) return "Text[" + std::to_string(string_length) + "]";
  for (const TypeName& t : kTypeNames) {
    if (t.type == type) return std::string(t.name);
  }
  return "?";
}

std::size_t TypeSpec::byte_size() const {
  switch (type) {
    case DataType::Bool:
    case DataType::Byte:
    case DataType::Char:
      return 1;
    case DataType::Word:
    case DataType::Int:
    case DataType::Timer:
    case DataType::Counter:
      return 2;
    case DataType::DWord:
    case DataType::DInt:
    case DataType::Real:
      return 4;
    case DataType::LReal:
      return 8;
    case DataType::String:
      return std::size_t{string_length} + 2;
    case DataType::Text:
      return string_length;
  }
  return 0;
}

}  // namespace scada::tags
