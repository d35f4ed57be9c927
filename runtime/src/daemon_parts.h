// scadad's parts shared by the daemon loop (daemon.cpp) and the control API (control_api.cpp):
// the log, the event log in project.db, and the project's connections as configured now.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "importer/importer.h"

namespace scada::runtime {

enum class Level { debug = 0, info = 1, warning = 2, error = 3 };
std::optional<Level> parse_level(const std::string& text);
const char* level_name(Level level);

// One line per event: "2026-11-22T06:40:00Z info PLC1: connected ...". Thread-safe.
class Log {
 public:
  Log(std::ostream& out, Level level) : out_(out), level_(level) {}
  void operator()(Level level, const std::string& text);

 private:
  std::ostream& out_;
  Level level_;
  std::mutex mutex_;
};

// The event log in project.db, kept to `limit` rows (the oldest go first), and the project's
// configuration as last read. Thread-safe: one mutex guards the database.
class ProjectState {
 public:
  ProjectState(importer::Project project, std::size_t event_limit, Log& log);

  // Records an event; a database error is logged, never thrown.
  void record(const std::string& kind, const std::string& subject, const std::string& detail);
  std::vector<importer::ProjectEvent> last_events(std::size_t n) const;
  std::vector<importer::ProjectEvent> events_after(std::int64_t after, std::size_t n) const;
  std::uint64_t recorded() const;  // events recorded by this process

  // The connections and tags in project.db now (SIGHUP reads them again).
  std::vector<importer::ProjectConnection> read_connections() const;
  std::vector<importer::ProjectTag> read_tags() const;

  // The connections as the tag server runs them (set by the daemon at start and on SIGHUP).
  void set_running(std::vector<importer::ProjectConnection> connections);
  std::vector<importer::ProjectConnection> running() const;

  const std::filesystem::path& dir() const { return dir_; }
  certstore::StoreLayout layout() const { return layout_; }

 private:
  mutable std::mutex mutex_;
  importer::Project project_;
  std::filesystem::path dir_;
  certstore::StoreLayout layout_;
  std::size_t limit_;
  Log& log_;
  std::uint64_t recorded_ = 0;
  std::vector<importer::ProjectConnection> running_;
};

}  // namespace scada::runtime
