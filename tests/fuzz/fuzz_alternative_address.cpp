// libFuzzer target: the AlternativeAddress parser (DESIGN.md §7) on arbitrary bytes. A refusal
// must point into the input and carry a reason; an accepted value must have an address and its
// canonical text must parse back to the same value. Anything else aborts.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "tags/tags.h"

namespace {

using scada::tags::AlternativeAddress;
using scada::tags::ParseError;

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_alternative_address: %s: %s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto result = AlternativeAddress::parse(text);
  if (const auto* error = std::get_if<ParseError>(&result)) {
    if (error->position > text.size() || error->reason.empty()) {
      fail("error outside the input", error->to_string());
    }
    return 0;
  }
  const auto& a = std::get<AlternativeAddress>(result);
  if (a.ip_address.empty()) fail("accepted without an address", std::string(text));
  const std::string canonical = a.to_string();
  const auto again = AlternativeAddress::parse(canonical);
  if (const auto* error = std::get_if<ParseError>(&again)) {
    fail("canonical text refused", canonical + ": " + error->to_string());
  }
  if (!(std::get<AlternativeAddress>(again) == a)) fail("canonical text differs", canonical);
  return 0;
}
