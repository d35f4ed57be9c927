// importer: project bundles exported by engineering (../shared/docs/BUNDLE.md) into the runtime
// project (DESIGN.md §3, §8).
//
// Reading a bundle is a pure function of its bytes and the files it names: everything is
// validated before anything changes, and every problem names its line and element. The input
// is hostile (DESIGN.md §10): size and count limits come first, no DTD or entity is processed,
// file references never leave the bundle folder.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "certstore/certstore.h"
#include "channel/channel.h"
#include "tags/tags.h"

namespace scada::importer {

// ---------------------------------------------------------------------------------------------
// Bundles (BUNDLE.md)

struct Problem {
  enum class Severity { error, warning };
  Severity severity = Severity::error;
  std::size_t line = 0;  // 1-based line of the element; 0 when it concerns the whole bundle
  std::string element;   // e.g. <Symbol name="Line1.Counter">, <Plc name="PLC1">; "" for none
  std::string message;   // what is wrong, in words an engineer can act on
  // "line 12, <Symbol name="Line1.Counter">: ..." ("warning: " first for warnings; without
  // the line and element parts when they are 0 / empty)
  std::string to_string() const;
};

enum class CertificateRole { plc, ca };
const char* certificate_role_name(CertificateRole role);  // "plc", "ca"

struct BundleCertificate {
  CertificateRole role = CertificateRole::plc;
  std::string source;               // "inline" or the file name as the bundle gives it
  certstore::CertificateInfo info;  // info.der: the certificate's DER
  std::size_t line = 0;
};

struct BundleSymbol {
  std::string name;
  tags::TypeSpec type;
  tags::Address address;
  tags::Access access = tags::Access::read;
  std::chrono::milliseconds cycle{1000};
  std::string comment;
  std::size_t line = 0;
};

struct BundlePlc {
  std::string name, module, firmware;
  std::string address;  // IPv4, IPv6 or host name
  std::uint16_t port = 102;
  std::uint8_t rack = 0, slot = 1;
  std::optional<std::uint16_t> local_tsap, remote_tsap;  // instead of rack/slot
  channel::SecurityMode security = channel::SecurityMode::none;
  std::vector<BundleCertificate> certificates;
  std::vector<BundleSymbol> symbols;
  std::size_t line = 0;
};

struct Bundle {
  std::filesystem::path document;  // the *.scadaexport.xml that was read ("" from memory)
  std::string format_version, tool, project, exported_at;  // root attributes ("" if absent)
  std::vector<BundlePlc> plcs;
};

struct BundleLimits {
  std::size_t document_bytes = 64u << 20;
  std::size_t plcs = 1000;
  std::size_t symbols = 200'000;  // in the whole bundle
  std::size_t certificates_per_plc = 64;
  std::size_t certificate_bytes = 64u << 10;  // per certificate (inline decoded, or file)
};

struct BundleResult {
  std::optional<Bundle> bundle;   // present only when there is no error
  std::vector<Problem> problems;  // errors and warnings, in document order
  bool ok() const { return bundle.has_value(); }
};

// A bundle: a *.scadaexport.xml file, or a folder holding exactly one such file (at its top)
// plus the certificate files it names.
BundleResult read_bundle(const std::filesystem::path& path, const BundleLimits& limits = {});

// The same for a document in memory. File references are resolved inside folder; without a
// folder every file reference is an error.
BundleResult parse_bundle(std::string_view document,
                          const std::optional<std::filesystem::path>& folder,
                          const BundleLimits& limits = {});

// ---------------------------------------------------------------------------------------------
// The runtime project on disk (DESIGN.md §3): project.db (SQLite, WAL) with connections, tags
// and the event log, pki/roots, pki/own and the device certificate store.

struct ImportPlan;

struct ProjectError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct ProjectConnection {
  std::string name, address;
  std::uint16_t port = 102;
  std::uint8_t rack = 0, slot = 1;
  std::optional<std::uint16_t> local_tsap, remote_tsap;
  channel::SecurityMode security = channel::SecurityMode::none;
  std::string module, firmware;
  // Start values of the writable system tags (DESIGN.md §7); an import keeps them.
  std::uint32_t force_connection_state = 1, use_alternative_address = 0;
  std::string alternative_address;
  bool operator==(const ProjectConnection&) const = default;
};

struct ProjectTag {
  std::string name;           // "<connection>/<symbol>"
  std::string connection;     // the PLC
  std::string symbol;         // the name the bundle gives it
  std::string address, type;  // canonical text (tags::Address / tags::TypeSpec)
  tags::Access access = tags::Access::read;
  std::chrono::milliseconds cycle{1000};
  std::string comment;
  bool operator==(const ProjectTag&) const = default;
};
std::string tag_name(std::string_view connection, std::string_view symbol);  // "PLC1/Motor.Speed"

struct ProjectEvent {
  std::int64_t id = 0;
  std::string time;  // UTC, "2026-11-22T08:00:00Z"
  std::string kind;  // "import", "project-init", ...
  std::string subject, detail;
};

class Project {
 public:
  // Creates the folders (mode 0700) and an empty project.db; refuses a folder that holds a
  // project already.
  static Project init(const std::filesystem::path& dir);
  // Opens a project, first finishing an import a crash interrupted after its commit (and
  // removing the temporary files of one interrupted before it).
  static Project open(const std::filesystem::path& dir);
  Project(Project&&) noexcept;
  Project& operator=(Project&&) noexcept;
  ~Project();

  const std::filesystem::path& dir() const;
  certstore::StoreLayout layout() const;
  std::vector<ProjectConnection> connections() const;              // by name
  std::vector<ProjectTag> tags() const;                            // by name
  std::vector<ProjectEvent> events(std::size_t last = 100) const;  // oldest first
  // The events with id > after, oldest first, at most limit of them (a follower that asks
  // again with the last id it saw misses nothing).
  std::vector<ProjectEvent> events_after(std::int64_t after, std::size_t limit) const;
  // Returns the new event's id.
  std::int64_t log_event(const std::string& kind, const std::string& subject,
                         const std::string& detail);
  // Deletes the oldest events beyond the newest keep; returns how many went.
  std::size_t trim_events(std::size_t keep);

  struct Impl;

 private:
  friend void apply_import(Project&, const Bundle&, const ImportPlan&);
  explicit Project(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// What an import changes.
enum class ChangeKind { add, change, remove };
const char* change_kind_name(ChangeKind kind);  // "add", "change", "remove"

struct ConnectionChange {
  ChangeKind kind = ChangeKind::add;
  std::string name;
  std::vector<std::string> fields;  // for change: which fields differ ("address", "port", ...)
  ProjectConnection after;          // the connection as it will be (as it was, for remove)
};

struct TagChange {
  ChangeKind kind = ChangeKind::add;
  std::string name;
  std::vector<std::string> fields;
  ProjectTag after;
};

struct CertificatePlacement {
  BundleCertificate certificate;
  std::string plc;               // the <Plc> it came with
  std::filesystem::path target;  // pki/roots/<sha256>.der or trusted/<sha256>.der
  bool is_new = false;           // false: the file is there with the same bytes
};

struct ImportPlan {
  std::vector<ConnectionChange> connections;
  std::vector<TagChange> tags;
  std::vector<CertificatePlacement> certificates;  // every certificate of the bundle
  std::size_t new_certificates() const;
  bool changes_anything() const;  // a connection or tag change, or a new certificate
};

// The difference between the bundle and the project: connections and tags of the bundle that
// are new or differ, those of the project the bundle no longer has (removed), and where every
// certificate goes. Certificates are never removed by an import.
ImportPlan plan_import(const Bundle& bundle, const Project& project);

// Applies a plan in one step: the certificate files are written as hidden temporary files
// beside their targets, then the database changes and the list of pending renames commit in one
// transaction, then the files are renamed into place. A crash before the commit leaves the
// project as it was; after it, Project::open completes the renames. Records the import (tool,
// project, export time, counts) in the event log. Throws ProjectError.
//
// Test hook: the environment variable SCADA_IMPORT_KILL_AT=<step> makes the process kill
// itself (SIGKILL) at a step: files-written, before-commit, after-commit, renamed-one.
void apply_import(Project& project, const Bundle& bundle, const ImportPlan& plan);

}  // namespace scada::importer
