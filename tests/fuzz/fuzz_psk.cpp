// libFuzzer target: the PSK text parser and its strength check on arbitrary bytes. An accepted
// key has 16 to 40 bytes that spell the hex digits of the trimmed input; a refusal has a reason.
// Anything else aborts.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "channel/channel.h"

namespace {

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_psk: %s: %s\n", what, detail.c_str());
  std::abort();
}

std::string hex_of(const scada::channel::Bytes& key) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (std::uint8_t b : key) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto result = scada::channel::parse_psk_text(text);
  if (const auto* reason = std::get_if<std::string>(&result)) {
    if (reason->empty()) fail("refusal without a reason", std::string(text));
    return 0;
  }
  const auto& key = std::get<scada::channel::Bytes>(result);
  if (key.size() < 16 || key.size() > 40) fail("accepted key of odd size", hex_of(key));
  std::string digits;
  for (char c : text) {
    if (!std::isspace(static_cast<unsigned char>(c))) {
      digits += char(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  if (digits != hex_of(key)) fail("key bytes differ from the text", std::string(text));
  return 0;
}
