// libFuzzer target: scadad's control API handler (control_api.h) on arbitrary requests: the
// method and path from the first byte, then the query up to the first newline, then the body.
// A tag server with internal tags of several types and one connection kept down (no network)
// answers. Every answer must carry a status the README documents, and, except /metrics, one
// JSON object (an error with an "error" text). Anything else aborts.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "api_world.h"

namespace {

using namespace scada;

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_api: %s: %s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static const std::pair<const char*, const char*> routes[] = {
      {"GET", "/api/tags"},
      {"POST", "/api/tags"},
      {"GET", "/api/connections"},
      {"GET", "/api/certificates"},
      {"POST", "/api/certificates/trust"},
      {"POST", "/api/certificates/untrust"},
      {"GET", "/api/events"},
      {"GET", "/metrics"},
      {"PUT", "/api/tags"},
      {"GET", "/nothing"}};
  const auto& [method, path] = routes[data[0] % std::size(routes)];
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto newline = rest.find('\n');
  runtime::ApiRequest request;
  request.method = method;
  request.path = path;
  request.query = rest.substr(0, newline);
  if (newline != std::string::npos) request.body = rest.substr(newline + 1);
  request.origin = "fuzz";
  const runtime::ApiResponse answer = fuzz::api_world("fuzz_api").api->handle(request);
  static const std::set<int> documented{200, 400, 401, 403, 404, 405, 409, 413, 422, 502};
  if (!documented.count(answer.status)) fail("undocumented status", std::to_string(answer.status));
  if (request.path == "/metrics" && answer.status == 200) return 0;
  const auto body = nlohmann::json::parse(answer.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) fail("answer is not a JSON object", answer.body);
  if (answer.status != 200 && !(body.contains("error") && body["error"].is_string())) {
    fail("error without words", answer.body);
  }
  return 0;
}
