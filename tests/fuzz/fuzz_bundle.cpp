// libFuzzer target: the project-bundle reader (importer.h, BUNDLE.md) on arbitrary documents,
// without a folder (every file reference is refused) and with small limits, so that the count
// limits are reached too. The result must be consistent: a bundle exactly when no problem is an
// error, every problem with a message and a line inside the document, a bundle within the
// limits. Anything else aborts.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "importer/importer.h"

namespace {

using scada::importer::BundleLimits;
using scada::importer::BundleResult;
using scada::importer::Problem;

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_bundle: %s: %s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view document(reinterpret_cast<const char*>(data), size);
  BundleLimits limits;
  limits.document_bytes = 64 * 1024;
  limits.plcs = 4;
  limits.symbols = 16;
  limits.certificates_per_plc = 2;
  limits.certificate_bytes = 4096;
  const BundleResult result = scada::importer::parse_bundle(document, std::nullopt, limits);

  const std::size_t lines =
      static_cast<std::size_t>(std::count(document.begin(), document.end(), '\n')) + 1;
  bool any_error = false;
  for (const Problem& p : result.problems) {
    if (p.message.empty()) fail("problem without a message", p.to_string());
    if (p.line > lines + 1) fail("line past the document", p.to_string());
    if (p.to_string().empty()) fail("empty problem text", p.element);
    any_error = any_error || p.severity == Problem::Severity::error;
  }
  if (result.problems.size() > 101)
    fail("problems not capped", std::to_string(result.problems.size()));
  if (result.ok() == any_error) {
    fail("ok() disagrees with the errors",
         result.problems.empty() ? "no problems" : result.problems[0].to_string());
  }
  if (result.bundle) {
    if (result.bundle->plcs.size() > limits.plcs) fail("too many PLCs", "");
    std::size_t symbols = 0;
    for (const auto& plc : result.bundle->plcs) {
      if (plc.name.empty()) fail("PLC without a name", "");
      if (plc.certificates.size() > limits.certificates_per_plc)
        fail("too many certificates", plc.name);
      for (const auto& certificate : plc.certificates) {
        if (certificate.info.der.empty() ||
            certificate.info.der.size() > limits.certificate_bytes) {
          fail("certificate size", plc.name);
        }
      }
      for (const auto& symbol : plc.symbols) {
        if (symbol.name.empty()) fail("symbol without a name", plc.name);
        if (scada::tags::check_fits(symbol.address, symbol.type))
          fail("type does not fit", symbol.name);
      }
      symbols += plc.symbols.size();
    }
    if (symbols > limits.symbols) fail("too many symbols", std::to_string(symbols));
  }
  return 0;
}
