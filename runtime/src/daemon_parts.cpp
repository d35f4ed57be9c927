// Log and ProjectState (daemon_parts.h).
#include "daemon_parts.h"

namespace scada::runtime {

std::optional<Level> parse_level(const std::string& text) {
  if (text == "debug") return Level::debug;
  if (text == "info") return Level::info;
  if (text == "warning") return Level::warning;
  if (text == "error") return Level::error;
  return std::nullopt;
}

const char* level_name(Level level) {
  switch (level) {
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

void Log::operator()(Level level, const std::string& text) {
  if (level < level_) return;
  std::lock_guard<std::mutex> lock(mutex_);
  out_ << certstore::time_text(std::chrono::system_clock::now()) << " " << level_name(level) << " "
       << text << std::endl;
}

// The event log is trimmed every kTrimEvery events, so it holds at most limit + kTrimEvery.
constexpr std::uint64_t kTrimEvery = 256;

ProjectState::ProjectState(importer::Project project, std::size_t event_limit, Log& log)
    : project_(std::move(project)),
      dir_(project_.dir()),
      layout_(project_.layout()),
      limit_(event_limit),
      log_(log) {
  std::lock_guard<std::mutex> lock(mutex_);
  try {
    if (const std::size_t gone = project_.trim_events(limit_)) {
      log_(Level::info, "event log: deleted the " + std::to_string(gone) + " oldest events (kept " +
                            std::to_string(limit_) + ")");
    }
  } catch (const importer::ProjectError& e) {
    log_(Level::error, std::string("event log: ") + e.what());
  }
}

void ProjectState::record(const std::string& kind, const std::string& subject,
                          const std::string& detail) {
  std::lock_guard<std::mutex> lock(mutex_);
  try {
    project_.log_event(kind, subject, detail);
    if (++recorded_ % kTrimEvery == 0) project_.trim_events(limit_);
  } catch (const importer::ProjectError& e) {
    log_(Level::error, std::string("event log: ") + e.what());
  }
}

std::vector<importer::ProjectEvent> ProjectState::last_events(std::size_t n) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return project_.events(n);
}

std::vector<importer::ProjectEvent> ProjectState::events_after(std::int64_t after,
                                                               std::size_t n) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return project_.events_after(after, n);
}

std::uint64_t ProjectState::recorded() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return recorded_;
}

std::vector<importer::ProjectConnection> ProjectState::read_connections() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return project_.connections();
}

std::vector<importer::ProjectTag> ProjectState::read_tags() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return project_.tags();
}

void ProjectState::set_running(std::vector<importer::ProjectConnection> connections) {
  std::lock_guard<std::mutex> lock(mutex_);
  running_ = std::move(connections);
}

std::vector<importer::ProjectConnection> ProjectState::running() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return running_;
}

}  // namespace scada::runtime
