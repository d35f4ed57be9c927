// libFuzzer target: scadad's control API handler (control_api.h) on arbitrary requests: the
// method and path from the first byte, then the query up to the first newline, then the body.
// A tag server with internal tags of several types and one connection kept down (no network)
// answers. Every answer must carry a status the README documents, and, except /metrics, one
// JSON object (an error with an "error" text). Anything else aborts.
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "control_api.h"

namespace {

using namespace scada;

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_api: %s: %s\n", what, detail.c_str());
  std::abort();
}

struct World {
  std::filesystem::path dir;
  std::ostringstream log_text;
  runtime::Log log{log_text, runtime::Level::error};
  std::optional<runtime::ProjectState> project;
  std::optional<certstore::CertificateStore> store;
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
  std::optional<tags::TagServer> server;
  std::optional<runtime::ControlApi> api;
  std::thread thread;

  World() {
    char name[] = "/tmp/fuzz_api.XXXXXX";
    if (!::mkdtemp(name)) fail("mkdtemp", "");
    dir = name;
    importer::Project::init(dir / "project");
    project.emplace(importer::Project::open(dir / "project"), 1000, log);
    store.emplace(project->layout());
    server.emplace(io.get_executor(), *store);
    tags::ConnectionSetup setup;
    setup.config.name = "PLC1";
    setup.force_connection_state = 0;  // never connects
    if (auto why = server->add_connection(setup)) fail("add_connection", *why);
    const std::pair<const char*, const char*> internal[] = {
        {"Int", "Int"},       {"Real", "Real"},   {"Bool", "Bool"},
        {"Text", "Text[20]"}, {"Timer", "Timer"}, {"String", "String[8]"}};
    for (const auto& [name, type] : internal) {
      tags::TagConfig t;
      t.name = name;
      t.type = std::get<tags::TypeSpec>(tags::TypeSpec::parse(type));
      t.access = tags::Access::read_write;
      if (auto why = server->add_tag(t)) fail("add_tag", *why);
    }
    tags::TagConfig plc;
    plc.name = "PLC1/Speed";
    plc.connection = "PLC1";
    plc.type = std::get<tags::TypeSpec>(tags::TypeSpec::parse("Word"));
    plc.address = std::get<tags::Address>(tags::Address::parse("DB1.DBW0"));
    plc.access = tags::Access::read_write;
    if (auto why = server->add_tag(plc)) fail("add_tag", *why);
    importer::ProjectConnection c;
    c.name = "PLC1";
    project->set_running({c});
    server->start();
    api.emplace(*server, *store, *project, log);
    thread = std::thread([this] { io.run(); });
  }
};

World& world() {
  static World* w = new World();  // lives for the process: libFuzzer exits without teardown
  return *w;
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
  const runtime::ApiResponse answer = world().api->handle(request);
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
