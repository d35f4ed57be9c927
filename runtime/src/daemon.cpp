// scadad's core (runtime.h, run_daemon): the project's connections and tags in a TagServer,
// the store watcher, one log line per event, the event log in project.db, and a clean stop.
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <csignal>
#include <map>
#include <mutex>
#include <ostream>
#include <thread>

#include <nlohmann/json.hpp>

#include <future>

#include "api_server.h"
#include "importer/importer.h"
#include "json_line.h"
#include "runtime/runtime.h"

namespace scada::runtime {

namespace {

namespace asio = boost::asio;

enum class Level { debug = 0, info = 1, warning = 2, error = 3 };

std::optional<Level> parse_level(const std::string& text) {
  if (text == "debug") return Level::debug;
  if (text == "info") return Level::info;
  if (text == "warning") return Level::warning;
  if (text == "error") return Level::error;
  return std::nullopt;
}

const char* level_name(Level l) {
  switch (l) {
    case Level::debug:
      return "debug";
    case Level::info:
      return "info";
    case Level::warning:
      return "warning";
    case Level::error:
      return "error";
  }
  return "?";
}

// One line per event: "2026-11-22T06:40:00Z info PLC1: connected ...". Thread-safe.
class Log {
 public:
  Log(std::ostream& out, Level level) : out_(out), level_(level) {}
  void operator()(Level level, const std::string& text) {
    if (level < level_) return;
    std::lock_guard<std::mutex> lock(mutex_);
    out_ << certstore::time_text(std::chrono::system_clock::now()) << " " << level_name(level)
         << " " << text << std::endl;
  }

 private:
  std::ostream& out_;
  Level level_;
  std::mutex mutex_;
};

using nlohmann::ordered_json;

ordered_json value_json(const tags::TypeSpec& type, const tags::Value& value) {
  switch (value.index()) {
    case 0:
      return std::get<bool>(value);
    case 1:
      return std::get<std::int64_t>(value);
    case 2:
      // A Real as the float it is: the shortest text that reads back as that float.
      if (type.type == tags::DataType::Real) {
        return std::stod(tags::value_to_string(type, value));
      }
      return std::get<double>(value);
    default:
      return std::get<std::string>(value);
  }
}

ordered_json tag_json(const std::string& name, const tags::TagConfig& config,
                      const tags::TagState& state) {
  ordered_json j;
  j["name"] = name;
  j["value"] = value_json(config.type, state.value);
  j["quality"] = tags::quality_name(state.quality);
  if (state.quality != tags::Quality::good) {
    j["reason"] = tags::quality_reason_name(state.reason);
    j["detail"] = state.detail;
  }
  j["source_time"] = state.source_time == tags::SystemTime{}
                         ? ordered_json(nullptr)
                         : ordered_json(certstore::time_text(state.source_time));
  j["server_time"] = certstore::time_text(state.server_time);
  j["type"] = config.type.to_string();
  j["access"] = config.access == tags::Access::read_write ? "rw" : "r";
  return j;
}

ApiResponse json_response(int status, const ordered_json& body) {
  return {status, "application/json", json_line(body) + "\n"};
}

ApiResponse error_response(int status, const std::string& message) {
  return json_response(status, ordered_json{{"error", message}});
}

}  // namespace

int run_daemon(const DaemonOptions& options, std::ostream& log_out, std::ostream& err) {
  const auto level = parse_level(options.log_level);
  if (!level) {
    err << "scadad: --log-level must be debug, info, warning or error, not '" << options.log_level
        << "'\n";
    return 2;
  }
  Log log(log_out, *level);
  std::optional<importer::Project> project;
  try {
    project = importer::Project::open(options.project);
  } catch (const importer::ProjectError& e) {
    err << "scadad: " << e.what() << "\n";
    return 2;
  }
  std::mutex project_mutex;  // project.db is written from the event loop and this thread
  const auto record = [&](const std::string& kind, const std::string& subject,
                          const std::string& detail) {
    std::lock_guard<std::mutex> lock(project_mutex);
    try {
      project->log_event(kind, subject, detail);
    } catch (const importer::ProjectError& e) {
      log(Level::error, std::string("event log: ") + e.what());
    }
  };

  certstore::CertificateStore store(project->layout());
  auto store_events = store.subscribe([&](const certstore::StoreEvent& e) {
    const bool problem = e.kind == certstore::StoreEvent::Kind::file_problem;
    log(problem ? Level::warning : Level::info, "store: " + e.detail);
    if (e.kind != certstore::StoreEvent::Kind::file_problem) {
      record(certstore::event_kind_name(e.kind), e.file.string(), e.detail);
    }
  });
  store.start_watching();

  asio::io_context io;
  tags::TagServer server(io.get_executor(), store);
  std::size_t connections = 0, tag_count = 0;
  for (const importer::ProjectConnection& c : project->connections()) {
    tags::ConnectionSetup setup;
    setup.config.name = c.name;
    setup.config.address = c.address;
    setup.config.port = c.port;
    setup.config.rack = c.rack;
    setup.config.slot = c.slot;
    if (c.local_tsap) setup.config.local_tsap = channel::Tsap::from_u16(*c.local_tsap);
    if (c.remote_tsap) setup.config.remote_tsap = channel::Tsap::from_u16(*c.remote_tsap);
    setup.config.mode = c.security;
    setup.force_connection_state = c.force_connection_state;
    setup.use_alternative_address = c.use_alternative_address;
    setup.alternative_address = c.alternative_address;
    if (auto why = server.add_connection(setup)) {
      log(Level::error, "connection " + c.name + " not started: " + *why);
      continue;
    }
    ++connections;
  }
  for (const importer::ProjectTag& t : project->tags()) {
    tags::TagConfig config;
    config.name = t.name;
    config.connection = t.connection;
    auto type = tags::TypeSpec::parse(t.type);
    auto address = tags::Address::parse(t.address);
    if (std::holds_alternative<tags::ParseError>(type) ||
        std::holds_alternative<tags::ParseError>(address)) {
      log(Level::error, "tag " + t.name + " not loaded: project.db holds type '" + t.type +
                            "' and address '" + t.address + "'");
      continue;
    }
    config.type = std::get<tags::TypeSpec>(type);
    config.address = std::get<tags::Address>(address);
    config.cycle = t.cycle;
    config.access = t.access;
    if (auto why = server.add_tag(config)) {
      log(Level::error, "tag not loaded: " + *why);
      continue;
    }
    ++tag_count;
  }

  // Connection state changes and failures, from the system tags.
  auto updates = server.subscribe([&](const tags::TagUpdate& u) {
    if (!u.changed || u.name.empty() || u.name.front() != '@') return;
    const auto second = u.name.find('@', 1);
    if (second == std::string::npos) return;
    const std::string connection = u.name.substr(1, second - 1);
    const std::string tag = u.name.substr(second + 1);
    if (tag == tags::kConnectionStateTag) {
      const auto state = std::get<std::int64_t>(u.state.value);
      const auto current = server.read(tags::system_tag_name(connection, tags::kCurrentAddress));
      const std::string where = current ? std::get<std::string>(current->value) : std::string("?");
      log(Level::info, connection + ": " + tags::link_state_name(state) + " (" + where + ")");
      record("connection-state", connection,
             std::string(tags::link_state_name(state)) + " " + where);
    } else if (tag == tags::kLastError) {
      const auto& text = std::get<std::string>(u.state.value);
      if (text.empty()) return;
      log(Level::warning, connection + ": " + text);
      record("connection-error", connection, text);
    }
  });

  log(Level::info, "scadad: project " + options.project + ", " + std::to_string(connections) +
                       " connections, " + std::to_string(tag_count) + " tags");
  record("start", options.project,
         std::to_string(connections) + " connections, " + std::to_string(tag_count) + " tags");
  server.start();

  // The control API (HTTP + JSON on loopback).
  std::vector<std::string> connection_names;
  for (const auto& c : project->connections()) connection_names.push_back(c.name);
  const auto handle = [&](const ApiRequest& r) -> ApiResponse {
    if (r.method == "GET" && r.path == "/api/tags") {
      std::vector<std::string> names = query_values(r.query, "name");
      if (names.empty()) names = server.tag_names();
      ordered_json list = ordered_json::array();
      for (const std::string& name : names) {
        auto config = server.tag_config(name);
        auto state = server.read(name);
        if (!config || !state) return error_response(404, "no tag named '" + name + "'");
        list.push_back(tag_json(name, *config, *state));
      }
      return json_response(200, ordered_json{{"tags", list}});
    }
    if (r.method == "POST" && r.path == "/api/tags") {
      const auto body = nlohmann::json::parse(r.body, nullptr, false);
      if (body.is_discarded() || !body.is_object()) {
        return error_response(400,
                              "the body must be a JSON object: {\"name\": ..., \"value\": ...} "
                              "or {\"writes\": [{\"name\": ..., \"value\": ...}, ...]}");
      }
      std::vector<nlohmann::json> writes;
      if (body.contains("writes") && body["writes"].is_array()) {
        for (const auto& w : body["writes"]) writes.push_back(w);
      } else {
        writes.push_back(body);
      }
      ordered_json results = ordered_json::array();
      for (const auto& w : writes) {
        if (!w.is_object() || !w.contains("name") || !w["name"].is_string() ||
            !w.contains("value")) {
          results.push_back(
              {{"ok", false}, {"error", "each write needs \"name\" (text) and \"value\""}});
          continue;
        }
        const std::string name = w["name"];
        const auto& v = w["value"];
        auto promise = std::make_shared<std::promise<tags::WriteResult>>();
        auto future = promise->get_future();
        const auto done = [promise](tags::WriteResult result) { promise->set_value(result); };
        if (v.is_boolean()) {
          server.write(name, tags::Value(v.get<bool>()), done);
        } else if (v.is_number_integer()) {
          server.write(name, tags::Value(v.get<std::int64_t>()), done);
        } else if (v.is_number()) {
          server.write(name, tags::Value(v.get<double>()), done);
        } else if (v.is_string()) {
          server.write_text(name, v.get<std::string>(), done);
        } else {
          results.push_back({{"name", name},
                             {"ok", false},
                             {"error", "value must be a number, true/false or text"}});
          continue;
        }
        tags::WriteResult result = std::string("no answer within 15 s");
        if (future.wait_for(std::chrono::seconds(15)) == std::future_status::ready)
          result = future.get();
        const std::string shown = v.is_string() ? v.get<std::string>() : v.dump();
        log(result ? Level::warning : Level::info, "api: " + r.origin + " wrote " + name + " = " +
                                                       shown + ": " + (result ? *result : "ok"));
        record("tag-write", name, shown + " by " + r.origin + ": " + (result ? *result : "ok"));
        ordered_json entry{{"name", name}, {"ok", !result}};
        if (result) entry["error"] = *result;
        results.push_back(entry);
      }
      return json_response(200, ordered_json{{"results", results}});
    }
    if (r.method == "GET" && r.path == "/api/connections") {
      ordered_json list = ordered_json::array();
      for (const std::string& c : connection_names) {
        ordered_json entry{{"name", c}};
        for (std::string_view tag :
             {tags::kForceConnectionState, tags::kAlternativeAddress, tags::kUseAlternativeAddress,
              tags::kConnectionStateTag, tags::kCurrentAddress, tags::kLastError,
              tags::kPeerCertificate, tags::kCertificateDaysLeft}) {
          const std::string name = tags::system_tag_name(c, tag);
          auto state = server.read(name);
          auto config = server.tag_config(name);
          if (!state || !config) continue;
          entry[std::string(tag)] = state->quality == tags::Quality::good
                                        ? value_json(config->type, state->value)
                                        : ordered_json(nullptr);
        }
        list.push_back(entry);
      }
      return json_response(200, ordered_json{{"connections", list}});
    }
    if (r.method == "GET" && r.path == "/api/events") {
      std::size_t last = 100;
      if (auto v = query_values(r.query, "last"); !v.empty()) {
        try {
          last = std::min<std::size_t>(std::stoul(v[0]), 10000);
        } catch (const std::exception&) {
          return error_response(400, "last must be a number");
        }
      }
      std::vector<importer::ProjectEvent> events;
      {
        std::lock_guard<std::mutex> lock(project_mutex);
        events = project->events(last);
      }
      ordered_json list = ordered_json::array();
      for (const auto& e : events) {
        list.push_back({{"id", e.id},
                        {"time", e.time},
                        {"kind", e.kind},
                        {"subject", e.subject},
                        {"detail", e.detail}});
      }
      return json_response(200, ordered_json{{"events", list}});
    }
    return error_response(404, "no such API: " + r.method + " " + r.path +
                                   " (GET /api/tags, POST /api/tags, GET /api/connections, GET "
                                   "/api/events)");
  };
  std::unique_ptr<ApiServer> api;
  if (options.api != "off") {
    try {
      api = std::make_unique<ApiServer>(options.api, handle);
    } catch (const std::exception& e) {
      err << "scadad: " << e.what() << "\n";
      server.stop();
      return 2;
    }
    const auto colon = options.api.rfind(':');
    log(Level::info,
        "api: listening on " + options.api.substr(0, colon) + ":" + std::to_string(api->port()));
  }

  // SIGTERM / SIGINT: stop the tag server (close_notify on every session), give the sessions a
  // bounded moment to close in order, then leave the loop.
  asio::signal_set signals(io, SIGTERM, SIGINT);
  int stopped_by = 0;
  signals.async_wait([&](boost::system::error_code ec, int signal) {
    if (ec) return;
    stopped_by = signal;
    log(Level::info, std::string("scadad: ") + (signal == SIGTERM ? "SIGTERM" : "SIGINT") +
                         ", closing sessions");
    server.stop();
    auto timer = std::make_shared<asio::steady_timer>(io, std::chrono::milliseconds(500));
    timer->async_wait([&io, timer](boost::system::error_code) { io.stop(); });
  });
  std::thread worker([&io] { io.run(); });
  io.run();
  worker.join();
  api.reset();
  updates.disconnect();
  record("stop", options.project, stopped_by == SIGTERM ? "SIGTERM" : "SIGINT");
  log(Level::info, "scadad: stopped");
  store_events.disconnect();
  return 0;
}

}  // namespace scada::runtime
