// api_world.h: what the control API fuzz targets (fuzz_api, fuzz_ws) drive: a project in a
// temporary folder, its certificate store, a TagServer with internal tags of several types and
// one connection kept down (no network), the ControlApi over them, and the event loop on its
// own thread. Built once per process (libFuzzer exits without teardown).
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>

#include "control_api.h"

namespace scada::fuzz {

// The internal tags: name and type.
inline constexpr std::pair<const char*, const char*> kInternalTags[] = {
    {"Int", "Int"},       {"Real", "Real"},   {"Bool", "Bool"},
    {"Text", "Text[20]"}, {"Timer", "Timer"}, {"String", "String[8]"}};

struct ApiWorld {
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

  explicit ApiWorld(const std::string& target) {
    std::string name = "/tmp/" + target + ".XXXXXX";
    if (!::mkdtemp(name.data())) stop("mkdtemp", name);
    dir = name;
    importer::Project::init(dir / "project");
    project.emplace(importer::Project::open(dir / "project"), 1000, log);
    store.emplace(project->layout());
    server.emplace(io.get_executor(), *store);
    tags::ConnectionSetup setup;
    setup.config.name = "PLC1";
    setup.force_connection_state = 0;  // never connects
    if (auto why = server->add_connection(setup)) stop("add_connection", *why);
    for (const auto& [tag_name, type] : kInternalTags) {
      tags::TagConfig t;
      t.name = tag_name;
      t.type = std::get<tags::TypeSpec>(tags::TypeSpec::parse(type));
      t.access = tags::Access::read_write;
      if (auto why = server->add_tag(t)) stop("add_tag", *why);
    }
    tags::TagConfig plc;
    plc.name = "PLC1/Speed";
    plc.connection = "PLC1";
    plc.type = std::get<tags::TypeSpec>(tags::TypeSpec::parse("Word"));
    plc.address = std::get<tags::Address>(tags::Address::parse("DB1.DBW0"));
    plc.access = tags::Access::read_write;
    if (auto why = server->add_tag(plc)) stop("add_tag", *why);
    importer::ProjectConnection c;
    c.name = "PLC1";
    project->set_running({c});
    server->start();
    api.emplace(*server, *store, *project, log);
    thread = std::thread([this] { io.run(); });
  }

  [[noreturn]] static void stop(const char* what, const std::string& detail) {
    std::fprintf(stderr, "api world: %s: %s\n", what, detail.c_str());
    std::abort();
  }
};

// The one world of this process.
inline ApiWorld& api_world(const std::string& target) {
  static ApiWorld* w = new ApiWorld(target);  // lives for the process
  return *w;
}

}  // namespace scada::fuzz
