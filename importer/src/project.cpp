// The runtime project: project.db, the import plan and its crash-safe application
// (importer.h, section "The runtime project on disk").
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>

#include "importer/importer.h"

namespace scada::importer {

namespace fs = std::filesystem;

namespace {

constexpr int kSchemaVersion = 1;
constexpr const char* kTempSuffix = ".import-tmp";

const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS connections (
  name TEXT PRIMARY KEY,
  address TEXT NOT NULL,
  port INTEGER NOT NULL,
  rack INTEGER NOT NULL,
  slot INTEGER NOT NULL,
  local_tsap INTEGER,
  remote_tsap INTEGER,
  security TEXT NOT NULL,
  module TEXT NOT NULL DEFAULT '',
  firmware TEXT NOT NULL DEFAULT '',
  force_connection_state INTEGER NOT NULL DEFAULT 1,
  use_alternative_address INTEGER NOT NULL DEFAULT 0,
  alternative_address TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS tags (
  name TEXT PRIMARY KEY,
  connection TEXT NOT NULL REFERENCES connections(name),
  symbol TEXT NOT NULL,
  address TEXT NOT NULL,
  type TEXT NOT NULL,
  access TEXT NOT NULL,
  cycle_ms INTEGER NOT NULL,
  comment TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  time TEXT NOT NULL,
  kind TEXT NOT NULL,
  subject TEXT NOT NULL DEFAULT '',
  detail TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS pending_files (temp TEXT PRIMARY KEY, target TEXT NOT NULL);
)sql";

std::string now_text() {
  return certstore::time_text(std::chrono::system_clock::now());
}

// SIGKILL at a named step when SCADA_IMPORT_KILL_AT says so (crash-safety tests).
void maybe_die(const char* step) {
  const char* at = std::getenv("SCADA_IMPORT_KILL_AT");
  if (at && std::string_view(at) == step) std::raise(SIGKILL);
}

class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) {
      throw ProjectError(std::string("project.db: ") + sqlite3_errmsg(db) + " in: " + sql);
    }
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), int(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& bind(int i, std::int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Statement& bind(int i, std::optional<std::uint16_t> v) {
    if (v) {
      sqlite3_bind_int64(stmt_, i, *v);
    } else {
      sqlite3_bind_null(stmt_, i);
    }
    return *this;
  }
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw ProjectError(std::string("project.db: ") + sqlite3_errmsg(db_));
  }
  std::string text(int i) const {
    const auto* p = sqlite3_column_text(stmt_, i);
    return p ? std::string(reinterpret_cast<const char*>(p)) : std::string();
  }
  std::int64_t integer(int i) const { return sqlite3_column_int64(stmt_, i); }
  bool null(int i) const { return sqlite3_column_type(stmt_, i) == SQLITE_NULL; }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

void exec(sqlite3* db, const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = error ? error : "unknown error";
    sqlite3_free(error);
    throw ProjectError("project.db: " + message);
  }
}

void fsync_path(const fs::path& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// Writes bytes to file with mode 0644 (certificates are public) and flushes them to disk.
void write_durably(const fs::path& file, const channel::Bytes& bytes) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw ProjectError("cannot write " + file.string() + ": " + std::strerror(errno));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      throw ProjectError("cannot write " + file.string() + ": " + std::strerror(e));
    }
    done += std::size_t(n);
  }
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!synced) throw ProjectError("cannot flush " + file.string() + " to disk");
}

bool same_bytes(const fs::path& file, const channel::Bytes& bytes) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec) || fs::file_size(file, ec) != bytes.size()) return false;
  std::ifstream in(file, std::ios::binary);
  channel::Bytes have(bytes.size());
  in.read(reinterpret_cast<char*>(have.data()), std::streamsize(have.size()));
  return in && have == bytes;
}

fs::path temp_for(const fs::path& target) {
  return target.parent_path() / ("." + target.filename().string() + kTempSuffix);
}

const char* access_text(tags::Access a) {
  return a == tags::Access::read_write ? "rw" : "r";
}

ProjectConnection connection_of(const BundlePlc& plc) {
  ProjectConnection c;
  c.name = plc.name;
  c.address = plc.address;
  c.port = plc.port;
  c.rack = plc.rack;
  c.slot = plc.slot;
  c.local_tsap = plc.local_tsap;
  c.remote_tsap = plc.remote_tsap;
  c.security = plc.security;
  c.module = plc.module;
  c.firmware = plc.firmware;
  return c;
}

std::vector<std::string> differing(const ProjectConnection& a, const ProjectConnection& b) {
  std::vector<std::string> f;
  if (a.address != b.address) f.push_back("address");
  if (a.port != b.port) f.push_back("port");
  if (a.rack != b.rack || a.slot != b.slot) f.push_back("rack/slot");
  if (a.local_tsap != b.local_tsap || a.remote_tsap != b.remote_tsap) f.push_back("TSAPs");
  if (a.security != b.security) f.push_back("security");
  if (a.module != b.module) f.push_back("module");
  if (a.firmware != b.firmware) f.push_back("firmware");
  return f;
}

std::vector<std::string> differing(const ProjectTag& a, const ProjectTag& b) {
  std::vector<std::string> f;
  if (a.address != b.address) f.push_back("address");
  if (a.type != b.type) f.push_back("type");
  if (a.access != b.access) f.push_back("access");
  if (a.cycle != b.cycle) f.push_back("cycle");
  if (a.comment != b.comment) f.push_back("comment");
  return f;
}

}  // namespace

std::string tag_name(std::string_view connection, std::string_view symbol) {
  std::string name(connection);
  name += '/';
  name += symbol;
  return name;
}

const char* change_kind_name(ChangeKind kind) {
  switch (kind) {
    case ChangeKind::add:
      return "add";
    case ChangeKind::change:
      return "change";
    case ChangeKind::remove:
      return "remove";
  }
  return "?";
}

std::size_t ImportPlan::new_certificates() const {
  return std::size_t(std::count_if(certificates.begin(), certificates.end(),
                                   [](const CertificatePlacement& c) { return c.is_new; }));
}

bool ImportPlan::changes_anything() const {
  return !connections.empty() || !tags.empty() || new_certificates() > 0;
}

// ---------------------------------------------------------------------------------------------

// <project>/.import.lock, held (flock) by an import from its first temporary file to its last
// rename, so that opening the project meanwhile (scadad starting) neither deletes that import's
// temporary files nor renames them under it. The kernel drops the lock of a killed process.
class ImportLock {
 public:
  // wait: block until no other import runs; else held() tells whether the lock was free.
  ImportLock(const fs::path& dir, bool wait) {
    const fs::path file = dir / ".import.lock";
    fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) {
      throw ProjectError("cannot open " + file.string() + ": " + std::strerror(errno));
    }
    while (::flock(fd_, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0) {
      if (errno == EINTR) continue;
      if (!wait && errno == EWOULDBLOCK) return;
      const int error = errno;
      ::close(fd_);
      fd_ = -1;
      throw ProjectError("cannot lock " + file.string() + ": " + std::strerror(error));
    }
    held_ = true;
  }
  ~ImportLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock
  }
  ImportLock(const ImportLock&) = delete;
  ImportLock& operator=(const ImportLock&) = delete;
  bool held() const { return held_; }

 private:
  int fd_ = -1;
  bool held_ = false;
};

struct Project::Impl {
  fs::path dir;
  sqlite3* db = nullptr;
  ~Impl() {
    if (db) sqlite3_close(db);
  }

  void open_database(bool create) {
    const fs::path file = dir / "project.db";
    const int flags =
        SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(file.c_str(), &db, flags, nullptr) != SQLITE_OK) {
      throw ProjectError("cannot open " + file.string() + ": " +
                         (db ? sqlite3_errmsg(db) : "out of memory"));
    }
    sqlite3_busy_timeout(db, 5000);
    exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
    if (create) {
      exec(db, "BEGIN IMMEDIATE");
      exec(db, kSchema);
      Statement(db, "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema', ?)")
          .bind(1, std::to_string(kSchemaVersion))
          .step();
      exec(db, "COMMIT");
      ::chmod(file.c_str(), 0600);
    }
    Statement version(db, "SELECT value FROM meta WHERE key = 'schema'");
    if (!version.step()) throw ProjectError(file.string() + " is not a project database");
    if (version.text(0) != std::to_string(kSchemaVersion)) {
      throw ProjectError(file.string() + " has schema version " + version.text(0) +
                         "; this program knows " + std::to_string(kSchemaVersion));
    }
  }

  // Completes the renames of an import that committed, and removes temporary files of one
  // that did not.
  void recover() {
    // An import running now (another process) finishes its own files.
    const ImportLock lock(dir, false);
    if (!lock.held()) return;
    std::vector<std::pair<fs::path, fs::path>> pending;
    {
      Statement s(db, "SELECT temp, target FROM pending_files");
      while (s.step()) pending.emplace_back(s.text(0), s.text(1));
    }
    std::set<fs::path> keep;
    for (const auto& [temp, target] : pending) {
      std::error_code ec;
      if (fs::exists(temp, ec)) {
        fs::rename(temp, target, ec);
        if (ec)
          throw ProjectError("cannot complete the interrupted import: rename " + temp.string() +
                             ": " + ec.message());
        fsync_path(target.parent_path(), true);
      }
    }
    if (!pending.empty()) exec(db, "DELETE FROM pending_files");
    const certstore::StoreLayout l = certstore::StoreLayout::for_project(dir);
    for (const fs::path& folder : {l.roots, l.trusted()}) {
      std::error_code ec;
      for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (name.size() > std::strlen(kTempSuffix) && name.front() == '.' &&
            name.ends_with(kTempSuffix)) {
          std::error_code ignored;
          fs::remove(it->path(), ignored);
        }
      }
    }
  }
};

Project::Project(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Project::Project(Project&&) noexcept = default;
Project& Project::operator=(Project&&) noexcept = default;
Project::~Project() = default;

Project Project::init(const fs::path& dir) {
  std::error_code ec;
  if (fs::exists(dir / "project.db", ec)) {
    throw ProjectError(dir.string() + " holds a project already (project.db exists)");
  }
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec)) {
    throw ProjectError(dir.string() + " exists and is not a folder");
  }
  fs::create_directories(dir, ec);
  if (ec) throw ProjectError("cannot create " + dir.string() + ": " + ec.message());
  try {
    certstore::ensure_layout(certstore::StoreLayout::for_project(dir));
  } catch (const std::exception& e) {
    throw ProjectError(e.what());
  }
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->open_database(true);
  Project project(std::move(impl));
  project.log_event("project-init", dir.string(), "empty project created");
  return project;
}

Project Project::open(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir / "project.db", ec)) {
    throw ProjectError(dir.string() +
                       " is not a project (no project.db; create one with "
                       "'scadactl project init " +
                       dir.string() + "')");
  }
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->open_database(false);
  try {
    certstore::ensure_layout(certstore::StoreLayout::for_project(dir));
  } catch (const std::exception& e) {
    throw ProjectError(e.what());
  }
  impl->recover();
  return Project(std::move(impl));
}

const fs::path& Project::dir() const {
  return impl_->dir;
}

certstore::StoreLayout Project::layout() const {
  return certstore::StoreLayout::for_project(impl_->dir);
}

std::vector<ProjectConnection> Project::connections() const {
  std::vector<ProjectConnection> out;
  Statement s(impl_->db,
              "SELECT name, address, port, rack, slot, local_tsap, remote_tsap, security, module, "
              "firmware, force_connection_state, use_alternative_address, alternative_address "
              "FROM connections ORDER BY name");
  while (s.step()) {
    ProjectConnection c;
    c.name = s.text(0);
    c.address = s.text(1);
    c.port = std::uint16_t(s.integer(2));
    c.rack = std::uint8_t(s.integer(3));
    c.slot = std::uint8_t(s.integer(4));
    if (!s.null(5)) c.local_tsap = std::uint16_t(s.integer(5));
    if (!s.null(6)) c.remote_tsap = std::uint16_t(s.integer(6));
    auto mode = channel::parse_security_mode(s.text(7));
    if (!mode)
      throw ProjectError("project.db: connection " + c.name + " has security '" + s.text(7) + "'");
    c.security = *mode;
    c.module = s.text(8);
    c.firmware = s.text(9);
    c.force_connection_state = std::uint32_t(s.integer(10));
    c.use_alternative_address = std::uint32_t(s.integer(11));
    c.alternative_address = s.text(12);
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<ProjectTag> Project::tags() const {
  std::vector<ProjectTag> out;
  Statement s(impl_->db,
              "SELECT name, connection, symbol, address, type, access, cycle_ms, comment FROM tags "
              "ORDER BY name");
  while (s.step()) {
    ProjectTag t;
    t.name = s.text(0);
    t.connection = s.text(1);
    t.symbol = s.text(2);
    t.address = s.text(3);
    t.type = s.text(4);
    t.access = s.text(5) == "rw" ? tags::Access::read_write : tags::Access::read;
    t.cycle = std::chrono::milliseconds(s.integer(6));
    t.comment = s.text(7);
    out.push_back(std::move(t));
  }
  return out;
}

std::vector<ProjectEvent> Project::events(std::size_t last) const {
  std::vector<ProjectEvent> out;
  Statement s(impl_->db,
              "SELECT id, time, kind, subject, detail FROM "
              "(SELECT * FROM events ORDER BY id DESC LIMIT ?) ORDER BY id");
  s.bind(1, std::int64_t(last));
  while (s.step()) out.push_back({s.integer(0), s.text(1), s.text(2), s.text(3), s.text(4)});
  return out;
}

std::vector<ProjectEvent> Project::events_after(std::int64_t after, std::size_t limit) const {
  std::vector<ProjectEvent> out;
  Statement s(
      impl_->db,
      "SELECT id, time, kind, subject, detail FROM events WHERE id > ? ORDER BY id LIMIT ?");
  s.bind(1, after);
  s.bind(2, std::int64_t(limit));
  while (s.step()) out.push_back({s.integer(0), s.text(1), s.text(2), s.text(3), s.text(4)});
  return out;
}

std::int64_t Project::log_event(const std::string& kind, const std::string& subject,
                                const std::string& detail) {
  Statement(impl_->db, "INSERT INTO events(time, kind, subject, detail) VALUES (?, ?, ?, ?)")
      .bind(1, now_text())
      .bind(2, kind)
      .bind(3, subject)
      .bind(4, detail)
      .step();
  return sqlite3_last_insert_rowid(impl_->db);
}

std::size_t Project::trim_events(std::size_t keep) {
  Statement s(impl_->db,
              "DELETE FROM events WHERE id <= (SELECT id FROM events ORDER BY id DESC LIMIT 1 "
              "OFFSET ?)");
  s.bind(1, std::int64_t(keep));
  s.step();
  return static_cast<std::size_t>(sqlite3_changes(impl_->db));
}

// ---------------------------------------------------------------------------------------------

ImportPlan plan_import(const Bundle& bundle, const Project& project) {
  ImportPlan plan;
  std::map<std::string, ProjectConnection> have_connections;
  for (auto& c : project.connections()) have_connections.emplace(c.name, c);
  std::map<std::string, ProjectTag> have_tags;
  for (auto& t : project.tags()) have_tags.emplace(t.name, t);
  const certstore::StoreLayout layout = project.layout();

  std::set<std::string> bundle_connections, bundle_tags;
  for (const BundlePlc& plc : bundle.plcs) {
    ProjectConnection want = connection_of(plc);
    bundle_connections.insert(plc.name);
    auto it = have_connections.find(plc.name);
    if (it == have_connections.end()) {
      plan.connections.push_back({ChangeKind::add, plc.name, {}, want});
    } else {
      // The system tags' start values are the project's, not engineering's.
      want.force_connection_state = it->second.force_connection_state;
      want.use_alternative_address = it->second.use_alternative_address;
      want.alternative_address = it->second.alternative_address;
      auto fields = differing(it->second, want);
      if (!fields.empty()) plan.connections.push_back({ChangeKind::change, plc.name, fields, want});
    }
    for (const BundleSymbol& symbol : plc.symbols) {
      ProjectTag t;
      t.name = tag_name(plc.name, symbol.name);
      t.connection = plc.name;
      t.symbol = symbol.name;
      t.address = symbol.address.to_string();
      t.type = symbol.type.to_string();
      t.access = symbol.access;
      t.cycle = symbol.cycle;
      t.comment = symbol.comment;
      bundle_tags.insert(t.name);
      auto have = have_tags.find(t.name);
      if (have == have_tags.end()) {
        plan.tags.push_back({ChangeKind::add, t.name, {}, t});
      } else if (auto fields = differing(have->second, t); !fields.empty()) {
        plan.tags.push_back({ChangeKind::change, t.name, fields, t});
      }
    }
    for (const BundleCertificate& certificate : plc.certificates) {
      CertificatePlacement p;
      p.certificate = certificate;
      p.plc = plc.name;
      p.target = (certificate.role == CertificateRole::ca ? layout.roots : layout.trusted()) /
                 (certificate.info.sha256 + ".der");
      p.is_new = !same_bytes(p.target, certificate.info.der);
      const bool duplicate =
          std::any_of(plan.certificates.begin(), plan.certificates.end(),
                      [&](const CertificatePlacement& q) { return q.target == p.target; });
      if (duplicate) p.is_new = false;  // the same certificate named by two PLCs: placed once
      plan.certificates.push_back(std::move(p));
    }
  }
  for (const auto& [name, t] : have_tags) {
    if (!bundle_tags.count(name)) plan.tags.push_back({ChangeKind::remove, name, {}, t});
  }
  for (const auto& [name, c] : have_connections) {
    if (!bundle_connections.count(name))
      plan.connections.push_back({ChangeKind::remove, name, {}, c});
  }
  return plan;
}

void apply_import(Project& project, const Bundle& bundle, const ImportPlan& plan) {
  sqlite3* db = project.impl_->db;
  const ImportLock lock(project.dir(), true);  // one import at a time; opens keep off its files
  // 1. New certificate files, as hidden temporary files beside their targets (the store
  //    ignores hidden files), flushed to disk.
  std::vector<std::pair<fs::path, fs::path>> files;
  for (const CertificatePlacement& p : plan.certificates) {
    if (!p.is_new) continue;
    const fs::path temp = temp_for(p.target);
    write_durably(temp, p.certificate.info.der);
    files.emplace_back(temp, p.target);
  }
  for (const fs::path& folder : {project.layout().roots, project.layout().trusted()}) {
    fsync_path(folder, true);
  }
  maybe_die("files-written");

  // 2. The database and the list of renames, in one transaction.
  std::size_t counts[3] = {0, 0, 0};
  exec(db, "BEGIN IMMEDIATE");
  try {
    for (const TagChange& t : plan.tags) {
      if (t.kind != ChangeKind::remove) continue;
      Statement(db, "DELETE FROM tags WHERE name = ?").bind(1, t.name).step();
    }
    for (const ConnectionChange& c : plan.connections) {
      const ProjectConnection& v = c.after;
      if (c.kind == ChangeKind::remove) {
        Statement(db, "DELETE FROM tags WHERE connection = ?").bind(1, v.name).step();
        Statement(db, "DELETE FROM connections WHERE name = ?").bind(1, v.name).step();
        continue;
      }
      Statement(db,
                "INSERT INTO connections(name, address, port, rack, slot, local_tsap, remote_tsap, "
                "security, module, firmware, force_connection_state, use_alternative_address, "
                "alternative_address) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
                "?13) ON CONFLICT(name) DO UPDATE SET address = ?2, port = ?3, rack = ?4, "
                "slot = ?5, local_tsap = ?6, remote_tsap = ?7, security = ?8, module = ?9, "
                "firmware = ?10")
          .bind(1, v.name)
          .bind(2, v.address)
          .bind(3, std::int64_t(v.port))
          .bind(4, std::int64_t(v.rack))
          .bind(5, std::int64_t(v.slot))
          .bind(6, v.local_tsap)
          .bind(7, v.remote_tsap)
          .bind(8, std::string(channel::security_mode_name(v.security)))
          .bind(9, v.module)
          .bind(10, v.firmware)
          .bind(11, std::int64_t(v.force_connection_state))
          .bind(12, std::int64_t(v.use_alternative_address))
          .bind(13, v.alternative_address)
          .step();
    }
    for (const TagChange& t : plan.tags) {
      ++counts[int(t.kind)];
      if (t.kind == ChangeKind::remove) continue;
      const ProjectTag& v = t.after;
      Statement(db,
                "INSERT INTO tags(name, connection, symbol, address, type, access, cycle_ms, "
                "comment) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(name) DO UPDATE SET "
                "connection = ?2, symbol = ?3, address = ?4, type = ?5, access = ?6, "
                "cycle_ms = ?7, comment = ?8")
          .bind(1, v.name)
          .bind(2, v.connection)
          .bind(3, v.symbol)
          .bind(4, v.address)
          .bind(5, v.type)
          .bind(6, std::string(access_text(v.access)))
          .bind(7, std::int64_t(v.cycle.count()))
          .bind(8, v.comment)
          .step();
    }
    for (const auto& [temp, target] : files) {
      Statement(db, "INSERT OR REPLACE INTO pending_files(temp, target) VALUES (?, ?)")
          .bind(1, temp.string())
          .bind(2, target.string())
          .step();
    }
    std::size_t connection_counts[3] = {0, 0, 0};
    for (const ConnectionChange& c : plan.connections) ++connection_counts[int(c.kind)];
    const std::string detail =
        "tool '" + bundle.tool + "', project '" + bundle.project + "', exported " +
        bundle.exported_at + "; connections +" + std::to_string(connection_counts[0]) + " ~" +
        std::to_string(connection_counts[1]) + " -" + std::to_string(connection_counts[2]) +
        ", tags +" + std::to_string(counts[0]) + " ~" + std::to_string(counts[1]) + " -" +
        std::to_string(counts[2]) + ", new certificates " + std::to_string(files.size());
    Statement(db, "INSERT INTO events(time, kind, subject, detail) VALUES (?, 'import', ?, ?)")
        .bind(1, now_text())
        .bind(2, bundle.document.string())
        .bind(3, detail)
        .step();
    maybe_die("before-commit");
    exec(db, "COMMIT");
  } catch (...) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    for (const auto& [temp, target] : files) {
      std::error_code ignored;
      fs::remove(temp, ignored);
    }
    throw;
  }
  maybe_die("after-commit");

  // 3. The files into place; then the list is done.
  bool first = true;
  for (const auto& [temp, target] : files) {
    std::error_code ec;
    fs::rename(temp, target, ec);
    if (ec) {
      throw ProjectError("imported, but " + target.string() + " could not be put in place (" +
                         ec.message() + "); opening the project again completes it");
    }
    if (first) maybe_die("renamed-one");
    first = false;
  }
  for (const fs::path& folder : {project.layout().roots, project.layout().trusted()}) {
    fsync_path(folder, true);
  }
  if (!files.empty()) exec(db, "DELETE FROM pending_files");
}

}  // namespace scada::importer
