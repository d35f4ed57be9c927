// libFuzzer target: the S7 address parser (and the data type names) on arbitrary bytes.
// Whatever parses must print back to itself, fit its default type and fit the 24-bit wire
// address; every error must point into the input. Anything else aborts.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "tags/tags.h"

namespace {

using scada::tags::Address;
using scada::tags::ParseError;
using scada::tags::TypeSpec;

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_address: %s: %s\n", what, detail.c_str());
  std::abort();
}

void check_address(std::string_view text) {
  const auto result = Address::parse(text);
  if (const auto* error = std::get_if<ParseError>(&result)) {
    if (error->position > text.size() || error->reason.empty()) {
      fail("error outside the input", error->to_string());
    }
    return;
  }
  const Address& a = std::get<Address>(result);
  const std::string printed = a.to_string();
  const auto again = Address::parse(printed);
  if (!std::holds_alternative<Address>(again)) {
    fail("canonical form does not parse", printed + ": " + std::get<ParseError>(again).to_string());
  }
  if (!(std::get<Address>(again) == a)) {
    fail("canonical form parses to another address",
         printed + " -> " + std::get<Address>(again).to_string());
  }
  if (const auto reason = scada::tags::check_fits(a, scada::tags::default_type(a))) {
    fail("default type does not fit", printed + ": " + *reason);
  }
  if (scada::tags::to_var_item(a).address > 0xFFFFFF) fail("ADDR exceeds 24 bits", printed);
}

void check_type(std::string_view text) {
  const auto result = TypeSpec::parse(text);
  if (const auto* error = std::get_if<ParseError>(&result)) {
    if (error->position > text.size() || error->reason.empty()) {
      fail("type error outside the input", error->to_string());
    }
    return;
  }
  const TypeSpec& t = std::get<TypeSpec>(result);
  const auto again = TypeSpec::parse(t.to_string());
  if (!std::holds_alternative<TypeSpec>(again) || !(std::get<TypeSpec>(again) == t)) {
    fail("type name does not round-trip", t.to_string());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  check_address(text);
  check_type(text);
  return 0;
}
