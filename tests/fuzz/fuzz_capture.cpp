// libFuzzer target: the capture reader (pcap / pcapng, link layers, IP, TCP reassembly) on
// arbitrary bytes. It may reject the file (std::runtime_error naming it) or warn; it must never
// over-read, and what it returns must be consistent: chunks in frame order, every chunk in a
// frame that exists, no empty chunk, warnings capped. Anything else aborts.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <string>

#include "runtime/runtime.h"

namespace {

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_capture: %s: %s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  scada::runtime::CaptureReadResult result;
  try {
    result = scada::runtime::read_capture(in, "fuzz.pcap");
  } catch (const std::runtime_error& e) {
    if (std::string(e.what()).rfind("fuzz.pcap: ", 0) != 0)
      fail("error without the name", e.what());
    return 0;
  }
  std::size_t previous = 0;
  for (const auto& chunk : result.chunks) {
    if (chunk.bytes.empty()) fail("empty chunk", std::to_string(chunk.frame));
    if (chunk.frame < previous || chunk.frame == 0 || chunk.frame > result.frames) {
      fail("chunk frame out of order or range", std::to_string(chunk.frame));
    }
    previous = chunk.frame;
  }
  if (result.warnings.size() > 1001)
    fail("too many warnings", std::to_string(result.warnings.size()));
  return 0;
}
