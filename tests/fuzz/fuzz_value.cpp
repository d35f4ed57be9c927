// libFuzzer target: tag values (tags.h, Values). The first byte picks a data type; the rest is
// read both as the PLC's bytes (decode_value) and as text from a person (parse_value). Whatever
// decodes must encode and decode back to the same value; whatever parses must encode, and its
// text must parse back to it. Anything else aborts.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "tags/tags.h"

namespace {

using scada::tags::DataType;
using scada::tags::TypeSpec;
using scada::tags::Value;

[[noreturn]] void fail(const char* what, const TypeSpec& type, const std::string& detail) {
  std::fprintf(stderr, "fuzz_value: %s: %s: %s\n", what, type.to_string().c_str(), detail.c_str());
  std::abort();
}

bool same(const Value& a, const Value& b) {
  if (a.index() == 2 && b.index() == 2 && std::isnan(std::get<double>(a))) {
    return std::isnan(std::get<double>(b));
  }
  return a == b;
}

void round_trip(const TypeSpec& type, const Value& v, const char* what) {
  auto bytes = scada::tags::encode_value(type, v);
  if (auto* why = std::get_if<std::string>(&bytes)) fail(what, type, "does not encode: " + *why);
  auto back = scada::tags::decode_value(type, std::get<scada::channel::Bytes>(bytes));
  if (auto* why = std::get_if<std::string>(&back)) fail(what, type, "does not decode: " + *why);
  if (!same(std::get<Value>(back), v)) fail(what, type, scada::tags::value_to_string(v));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static const DataType kTypes[] = {
      DataType::Bool,  DataType::Byte,    DataType::Char, DataType::Word,  DataType::Int,
      DataType::DWord, DataType::DInt,    DataType::Real, DataType::LReal, DataType::String,
      DataType::Timer, DataType::Counter, DataType::Text};
  constexpr std::size_t kCount = sizeof kTypes / sizeof kTypes[0];
  TypeSpec type;
  type.type = kTypes[data[0] % kCount];
  if (type.type == DataType::String || type.type == DataType::Text) {
    type.string_length = std::uint16_t(1 + data[0] / kCount % 16);
  }
  const std::uint8_t* rest = data + 1;
  const std::size_t n = size - 1;

  // As the PLC's bytes (exactly the type's size, from the start of the rest).
  if (n >= type.byte_size()) {
    auto v = scada::tags::decode_value(type, scada::channel::ByteView(rest, type.byte_size()));
    if (auto* value = std::get_if<Value>(&v)) round_trip(type, *value, "decoded value");
  }
  // As text.
  const std::string_view text(reinterpret_cast<const char*>(rest), n);
  auto parsed = scada::tags::parse_value(type, text);
  if (auto* value = std::get_if<Value>(&parsed)) {
    round_trip(type, *value, "parsed value");
    const std::string shown = scada::tags::value_to_string(type, *value);
    auto again = scada::tags::parse_value(type, shown);
    if (auto* why = std::get_if<std::string>(&again)) fail("shown text refused", type, *why);
    if (!same(std::get<Value>(again), *value)) fail("shown text differs", type, shown);
  }
  return 0;
}
