// scadad's core (runtime.h, run_daemon): the project's connections and tags in a TagServer,
// the store watcher, the control API, one log line per event, the event log in project.db,
// SIGHUP (re-read the project) and a clean stop.
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <sys/stat.h>

#include <csignal>
#include <fstream>
#include <map>
#include <ostream>
#include <set>
#include <thread>
#include <tuple>

#include "api_server.h"
#include "control_api.h"
#include "daemon_parts.h"
#include "importer/importer.h"
#include "runtime/runtime.h"

namespace scada::runtime {

namespace {

namespace asio = boost::asio;

// The operator's timing for every connection (scadad's options).
struct Timing {
  std::chrono::milliseconds dead_peer, connect, retry_max;
};

tags::ConnectionSetup setup_of(const importer::ProjectConnection& c, const Timing& timing) {
  tags::ConnectionSetup setup;
  setup.config.dead_peer_timeout = timing.dead_peer;
  setup.config.connect_timeout = timing.connect;
  setup.config.retry_max = timing.retry_max;
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
  return setup;
}

// The tag's configuration, or why project.db's row cannot be one.
std::variant<tags::TagConfig, std::string> config_of(const importer::ProjectTag& t) {
  tags::TagConfig config;
  config.name = t.name;
  config.connection = t.connection;
  auto type = tags::TypeSpec::parse(t.type);
  auto address = tags::Address::parse(t.address);
  if (std::holds_alternative<tags::ParseError>(type) ||
      std::holds_alternative<tags::ParseError>(address)) {
    return "project.db holds type '" + t.type + "' and address '" + t.address + "'";
  }
  config.type = std::get<tags::TypeSpec>(type);
  config.address = std::get<tags::Address>(address);
  config.cycle = t.cycle;
  config.access = t.access;
  return config;
}

// The API token: one line of at least 16 characters in a file only its owner may read.
std::string read_token(const std::string& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    throw std::runtime_error("--api-token-file " + file + ": cannot read it");
  }
  if (!S_ISREG(st.st_mode)) throw std::runtime_error("--api-token-file " + file + ": not a file");
  if ((st.st_mode & 077) != 0) {
    throw std::runtime_error("--api-token-file " + file +
                             ": readable by group or others; chmod 600 it (it is a secret)");
  }
  std::ifstream in(file);
  std::string token;
  std::getline(in, token);
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
  if (token.size() < 16 || token.size() > 256 || token.find_first_of(" \t") != std::string::npos) {
    throw std::runtime_error("--api-token-file " + file +
                             ": the first line must be a token of 16 to 256 characters without "
                             "spaces (e.g. openssl rand -hex 32)");
  }
  return token;
}

// The connections and tags the tag server runs, and how to bring it to what project.db says.
class Loader {
 public:
  Loader(tags::TagServer& server, ProjectState& project, Log& log, Timing timing)
      : server_(server), project_(project), log_(log), timing_(timing) {}

  // Brings the tag server to the project's connections and tags. Connections and tags that
  // did not change are not touched; a changed connection restarts with its tags. Returns a
  // summary ("1 connection added, 2 tags removed"), empty when nothing changed.
  std::string apply() {
    std::map<std::string, importer::ProjectConnection> want_connections;
    for (auto& c : project_.read_connections()) want_connections.emplace(c.name, c);
    std::map<std::string, importer::ProjectTag> want_tags;
    for (auto& t : project_.read_tags()) want_tags.emplace(t.name, t);

    Counts counts;
    const auto before = tags_;
    std::set<std::string> restarted;
    for (auto it = connections_.begin(); it != connections_.end();) {
      auto want = want_connections.find(it->first);
      if (want != want_connections.end() && want->second == it->second) {
        ++it;
        continue;
      }
      if (auto why = server_.remove_connection(it->first)) {
        log_(Level::error, "connection " + it->first + " not removed: " + *why);
      }
      std::erase_if(tags_, [&](const auto& t) { return t.second.connection == it->first; });
      if (want == want_connections.end()) {
        log_(Level::info, "connection " + it->first + " removed");
        ++counts.connections_removed;
      } else {
        restarted.insert(it->first);
      }
      it = connections_.erase(it);
    }
    for (const auto& [name, c] : want_connections) {
      if (connections_.count(name)) continue;
      if (auto why = server_.add_connection(setup_of(c, timing_))) {
        log_(Level::error, "connection " + name + " not started: " + *why);
        continue;
      }
      connections_.emplace(name, c);
      if (restarted.count(name)) {
        log_(Level::info, "connection " + name + " changed: restarted");
        ++counts.connections_changed;
      } else {
        ++counts.connections_added;
      }
    }
    for (auto it = tags_.begin(); it != tags_.end();) {
      auto want = want_tags.find(it->first);
      if (want != want_tags.end() && want->second == it->second) {
        ++it;
        continue;
      }
      if (auto why = server_.remove_tag(it->first)) {
        log_(Level::error, "tag " + it->first + " not removed: " + *why);
      }
      it = tags_.erase(it);
    }
    for (const auto& [name, t] : want_tags) {
      if (tags_.count(name)) continue;
      auto config = config_of(t);
      if (auto* why = std::get_if<std::string>(&config)) {
        log_(Level::error, "tag " + name + " not loaded: " + *why);
        continue;
      }
      if (auto why = server_.add_tag(std::get<tags::TagConfig>(std::move(config)))) {
        log_(Level::error, "tag not loaded: " + *why);
        continue;
      }
      tags_.emplace(name, t);
    }
    for (const auto& [name, t] : tags_) {
      auto old = before.find(name);
      if (old == before.end()) {
        ++counts.tags_added;
      } else if (!(old->second == t)) {
        ++counts.tags_changed;
      }
    }
    for (const auto& [name, t] : before) counts.tags_removed += tags_.count(name) == 0;
    std::vector<importer::ProjectConnection> running;
    for (const auto& [name, c] : connections_) running.push_back(c);
    project_.set_running(std::move(running));
    return counts.text();
  }

  std::size_t connections() const { return connections_.size(); }
  std::size_t tags() const { return tags_.size(); }

 private:
  struct Counts {
    std::size_t connections_added = 0, connections_changed = 0, connections_removed = 0;
    std::size_t tags_added = 0, tags_changed = 0, tags_removed = 0;
    std::string text() const {
      std::string out;
      const auto part = [&](std::size_t n, const char* what, const char* done) {
        if (n == 0) return;
        if (!out.empty()) out += ", ";
        out += std::to_string(n) + " " + what + (n == 1 ? "" : "s") + " " + done;
      };
      part(connections_added, "connection", "added");
      part(connections_changed, "connection", "changed");
      part(connections_removed, "connection", "removed");
      part(tags_added, "tag", "added");
      part(tags_changed, "tag", "changed");
      part(tags_removed, "tag", "removed");
      return out;
    }
  };

  tags::TagServer& server_;
  ProjectState& project_;
  Log& log_;
  Timing timing_;
  std::map<std::string, importer::ProjectConnection> connections_;
  std::map<std::string, importer::ProjectTag> tags_;
};

}  // namespace

int run_daemon(const DaemonOptions& options, std::ostream& log_out, std::ostream& err) {
  const auto level = parse_level(options.log_level);
  if (!level) {
    err << "scadad: --log-level must be debug, info, warning or error, not '" << options.log_level
        << "'\n";
    return 2;
  }
  if (options.event_log_limit < 100) {
    err << "scadad: --event-log-limit must be at least 100\n";
    return 2;
  }
  Timing timing{};
  for (const auto& [option, text, lowest, target] :
       {std::tuple{"--dead-peer-timeout", &options.dead_peer_timeout, 100, &timing.dead_peer},
        std::tuple{"--connect-timeout", &options.connect_timeout, 500, &timing.connect},
        std::tuple{"--retry-max", &options.retry_max, 500, &timing.retry_max}}) {
    try {
      *target = parse_duration(*text);
    } catch (const std::invalid_argument& e) {
      err << "scadad: " << option << ": " << e.what() << "\n";
      return 2;
    }
    if (*target < std::chrono::milliseconds(lowest) || *target > std::chrono::hours(1)) {
      err << "scadad: " << option << " must be between " << lowest << "ms and 1h, not '" << *text
          << "'\n";
      return 2;
    }
  }
  ApiServerOptions api_options;
  api_options.listen = options.api;
  if (!options.api_token_file.empty()) {
    try {
      api_options.token = read_token(options.api_token_file);
    } catch (const std::exception& e) {
      err << "scadad: " << e.what() << "\n";
      return 2;
    }
  }
  Log log(log_out, *level);
  std::optional<ProjectState> project;
  try {
    project.emplace(importer::Project::open(options.project), options.event_log_limit, log);
  } catch (const importer::ProjectError& e) {
    err << "scadad: " << e.what() << "\n";
    return 2;
  }

  certstore::CertificateStore store(project->layout());
  auto store_events = store.subscribe([&](const certstore::StoreEvent& e) {
    const bool problem = e.kind == certstore::StoreEvent::Kind::file_problem;
    log(problem ? Level::warning : Level::info, "store: " + e.detail);
    if (!problem) project->record(certstore::event_kind_name(e.kind), e.file.string(), e.detail);
  });
  store.start_watching();

  asio::io_context io;
  tags::TagServer server(io.get_executor(), store);
  Loader loader(server, *project, log, timing);
  loader.apply();

  // Connection state changes, failures and switches, from the system tags.
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
      project->record("connection-state", connection,
                      std::string(tags::link_state_name(state)) + " " + where);
    } else if (tag == tags::kLastError) {
      const auto& text = std::get<std::string>(u.state.value);
      if (text.empty()) return;
      log(Level::warning, connection + ": " + text);
      project->record("connection-error", connection, text);
    } else if (tag == tags::kCurrentAddress) {
      const auto& text = std::get<std::string>(u.state.value);
      log(Level::info, connection + ": address now " + text);
      project->record("switch", connection, "address now " + text);
    }
  });

  log(Level::info, "scadad: project " + options.project + ", " +
                       std::to_string(loader.connections()) + " connections, " +
                       std::to_string(loader.tags()) + " tags");
  project->record("start", options.project,
                  std::to_string(loader.connections()) + " connections, " +
                      std::to_string(loader.tags()) + " tags");
  log(Level::info, "scadad: connections: dead peer after " + options.dead_peer_timeout +
                       ", attempts bounded by " + options.connect_timeout + ", retries up to " +
                       options.retry_max + " apart");
  server.start();

  ControlApi control(server, store, *project, log);
  control.sample();  // the baseline of the tags-per-second rates
  std::unique_ptr<ApiServer> api;
  if (options.api != "off") {
    try {
      api = std::make_unique<ApiServer>(
          api_options, [&](const ApiRequest& r) { return control.handle(r); },
          [&](std::weak_ptr<WsSender> sender, const ApiRequest& r) {
            return control.open_websocket(std::move(sender), r);
          });
    } catch (const std::exception& e) {
      err << "scadad: " << e.what() << "\n";
      server.stop();
      return 2;
    }
    const auto colon = options.api.rfind(':');
    log(Level::info, "api: listening on " + options.api.substr(0, colon) + ":" +
                         std::to_string(api->port()) +
                         (api_options.token.empty() ? "" : " (token required)"));
  }

  // Every 5 s: tags read per second; every 10 min (the first after 5 s): certificate expiry.
  asio::steady_timer sampler(io);
  std::uint64_t ticks = 0;
  std::function<void()> sample = [&] {
    sampler.expires_after(std::chrono::seconds(5));
    sampler.async_wait([&](boost::system::error_code ec) {
      if (ec) return;
      control.sample();
      if (ticks++ % 120 == 0) control.check_expiry();
      sample();
    });
  };
  sample();

  // SIGHUP: re-read the project.
  asio::signal_set reload(io, SIGHUP);
  std::function<void()> wait_reload = [&] {
    reload.async_wait([&](boost::system::error_code ec, int) {
      if (ec) return;
      log(Level::info, "scadad: SIGHUP, reading the project again");
      std::string summary;
      try {
        summary = loader.apply();
      } catch (const importer::ProjectError& e) {
        log(Level::error, std::string("scadad: project not re-read: ") + e.what());
        project->record("reload", options.project, std::string("failed: ") + e.what());
        return wait_reload();
      }
      if (summary.empty()) summary = "nothing changed";
      log(Level::info, "scadad: project re-read: " + summary);
      project->record("reload", options.project, summary);
      wait_reload();
    });
  };
  wait_reload();

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
    sampler.cancel();
    reload.cancel();
    auto timer = std::make_shared<asio::steady_timer>(io, std::chrono::milliseconds(500));
    timer->async_wait([&io, timer](boost::system::error_code) { io.stop(); });
  });
  std::thread worker([&io] { io.run(); });
  io.run();
  worker.join();
  api.reset();
  updates.disconnect();
  project->record("stop", options.project, stopped_by == SIGTERM ? "SIGTERM" : "SIGINT");
  log(Level::info, "scadad: stopped");
  store_events.disconnect();
  return 0;
}

}  // namespace scada::runtime
