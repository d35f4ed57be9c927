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

#include "importer/importer.h"
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

const char* state_words(std::int64_t state) {
  switch (state) {
    case 0:
      return "disabled";
    case 1:
      return "connecting";
    case 2:
      return "connected";
    case 3:
      return "error, waiting to retry";
    default:
      return "?";
  }
}

}  // namespace

int run_daemon(const DaemonOptions& options, std::ostream& log_out, std::ostream& err) {
  const auto level = parse_level(options.log_level);
  if (!level) {
    err << "scadad: --log-level must be debug, info, warning or error, not '" << options.log_level
        << "'\n";
    return 2;
  }
  if (!options.api.empty()) {
    err << "scadad: --api is not built yet (issue 7: the control API); start without it\n";
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
      log(Level::info, connection + ": " + state_words(state) + " (" + where + ")");
      record("connection-state", connection, std::string(state_words(state)) + " " + where);
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
  updates.disconnect();
  record("stop", options.project, stopped_by == SIGTERM ? "SIGTERM" : "SIGINT");
  log(Level::info, "scadad: stopped");
  store_events.disconnect();
  return 0;
}

}  // namespace scada::runtime
