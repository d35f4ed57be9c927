// Crash safety (issue 9): a real scadad killed with SIGKILL at random moments during acquisition
// with tag writes, make-before-break switches, trust changes through the API and imports, then
// started again on the same project. After every kill, with no scadad running: project.db passes
// PRAGMA integrity_check (read with the SQLite C API) and opens as a project, the store folders
// hold no partial or temporary file, and every event seen before the kill (and every acknowledged
// write and trust change) is in the event log. The scadad started next brings every connection
// back to the state the project configures (start values, trust on disk).
//
// The kill moments come from a seeded generator: each test prints its seed, and
// SCADA_CRASH_SEED=<seed> repeats a run.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "api_call.h"
#include "child_process.h"
#include "connection_fixture.h"
#include "importer/importer.h"

namespace scada::runtime {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace http = boost::beast::http;
using nlohmann::json;
using test_api::api_port;
using test_api::call;

const std::string kScadad = SCADA_BIN_DIR "/scadad";
const std::string kScadactl = SCADA_BIN_DIR "/scadactl";
const std::string kSpeed =
    R"(<Symbol name="Speed" address="DB1.DBW0" type="Word" access="rw" cycle="100ms"/>)";
const std::string kExtra =
    R"(<Symbol name="Extra" address="DB1.DBB2" type="Byte" access="r" cycle="100ms"/>)";

std::string sha256_of_pem(const std::string& pem) {
  const auto bytes = reinterpret_cast<const std::uint8_t*>(pem.data());
  auto parsed = certstore::parse_certificates({bytes, pem.size()}, "pem");
  const auto* list = std::get_if<std::vector<certstore::CertificateInfo>>(&parsed);
  return list && !list->empty() ? list->front().sha256 : std::string();
}

// project.db through the SQLite C API itself, not through the importer.
class RawDb {
 public:
  explicit RawDb(const fs::path& file) {
    if (sqlite3_open_v2(file.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << "cannot open " << file << ": " << (db_ ? sqlite3_errmsg(db_) : "no memory");
    }
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  // Every row of the statement, its columns as text (NULL as "").
  std::vector<std::vector<std::string>> rows(const std::string& sql) {
    std::vector<std::vector<std::string>> out;
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
      return out;
    }
    int rc = 0;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
        const auto* text = sqlite3_column_text(stmt, i);
        row.emplace_back(text ? reinterpret_cast<const char*>(text) : "");
      }
      out.push_back(std::move(row));
    }
    if (rc != SQLITE_DONE) ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
    sqlite3_finalize(stmt);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
};

json connection(const json& connections, const std::string& name) {
  if (!connections.contains("connections")) return json();
  for (const auto& c : connections["connections"]) {
    if (c["name"] == name) return c;
  }
  return json();
}

// Polls until pred holds for the JSON of GET target (bounded; a refused call counts as not yet).
json wait_json(std::uint16_t port, const std::string& target,
               const std::function<bool(const json&)>& pred,
               std::chrono::milliseconds bound = 20s) {
  const auto end = std::chrono::steady_clock::now() + bound;
  json body;
  while (std::chrono::steady_clock::now() < end) {
    try {
      body = call(port, http::verb::get, target).body;
      if (pred(body)) return body;
    } catch (const std::exception& e) {
      body = e.what();
    }
    std::this_thread::sleep_for(20ms);
  }
  ADD_FAILURE() << "condition not met for " << target << ": " << body.dump();
  return body;
}

std::uint16_t port_in(const std::string& alternative_address) {
  const auto at = alternative_address.find("Port=");
  return at == std::string::npos
             ? 0
             : static_cast<std::uint16_t>(std::stoi(alternative_address.substr(at + 5)));
}

struct BundleCertificate {
  std::string role;  // "ca" or "plc"
  std::string pem;
};

struct BundlePlc {
  std::string name;
  std::uint16_t port = 0;
  std::vector<BundleCertificate> certificates;
  std::string symbols = kSpeed;
};

std::string bundle_document(const std::vector<BundlePlc>& plcs) {
  std::string document =
      "<ScadaExport formatVersion=\"1\" tool=\"test\" project=\"crash\" "
      "exportedAt=\"2026-11-22T00:00:00Z\">\n";
  for (const BundlePlc& p : plcs) {
    document += "  <Plc name=\"" + p.name +
                "\" firmware=\"V2.9.4\">\n    <Connection address=\"127.0.0.1\" port=\"" +
                std::to_string(p.port) + "\" security=\"tls\"/>\n";
    if (!p.certificates.empty()) {
      document += "    <Certificates>";
      for (const auto& c : p.certificates) {
        document +=
            "<Certificate role=\"" + c.role + "\" encoding=\"pem\">" + c.pem + "</Certificate>";
      }
      document += "</Certificates>\n";
    }
    document += "    <Symbols>" + p.symbols + "</Symbols>\n  </Plc>\n";
  }
  return document + "</ScadaExport>\n";
}

// What the project says a connection comes back to after a start.
struct Want {
  std::string name;
  int state = 2;        // ConnectionState; -1: refused (not connected, LastError unknown-ca)
  std::string address;  // CurrentAddress
};

// The PLCs (plcsim, in-process): PLC1 and its alternative CPU present certificates of CA1 (which
// every bundle imports); PLC2 presents one of CA2, which no bundle carries (trusted by pinning
// its certificate, or quarantined); PLC3, only in the import test's new bundle, one of CA3.
class CrashSafety : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* fixed = std::getenv("SCADA_CRASH_SEED");
    seed_ = fixed ? std::strtoull(fixed, nullptr, 10) : std::random_device{}();
    random_.seed(seed_);
    std::cout << "[ seed     ] " << seed_ << " (SCADA_CRASH_SEED=" << seed_ << " repeats this run)"
              << std::endl;
    RecordProperty("seed", std::to_string(seed_));

    importer::Project::init(project_dir());
    std::vector<plcsim::PlcConfig> configs(4);
    const test::ServerTlsFiles* tls[4] = {&files_[0], &files_[0], &files_[1], &files_[2]};
    const char* names[4] = {"PLC1", "PLC1B", "PLC2", "PLC3"};
    for (int i = 0; i < 4; ++i) {
      configs[i].name = names[i];
      configs[i].mode = channel::SecurityMode::tls;
      configs[i].tls.certificate = tls[i]->certificate_file;
      configs[i].tls.key = tls[i]->key_file;
    }
    sim_ = std::make_unique<plcsim::Simulator>(configs, "127.0.0.1", 0, plc_log_.sink());
    for (std::size_t i = 0; i < 4; ++i) {
      const auto v = static_cast<std::uint16_t>(1111 * (i + 1));
      sim_->plc(i).write(channel::Area::data_block, 1, 0,
                         channel::Bytes{std::uint8_t(v >> 8), std::uint8_t(v & 0xFF)});
    }
    for (std::size_t i = 0; i < 4; ++i) cpu_of_port_[sim_->plc(i).port()] = i;
    for (int i = 0; i < 3; ++i) {
      leaf_sha_["PLC" + std::to_string(i + 1)] = files_[i].server.sha256;
      ca_sha_["PLC" + std::to_string(i + 1)] = sha256_of_pem(files_[i].ca.certificate_pem());
    }
    old_bundle_ =
        bundle_document({{"PLC1", sim_->plc(0).port(), {{"ca", files_[0].ca.certificate_pem()}}},
                         {"PLC2", sim_->plc(2).port(), {}}});
    import_in_process(old_bundle_);
  }

  fs::path project_dir() const { return dir_.path() / "project"; }
  certstore::StoreLayout layout() const {
    return certstore::StoreLayout::for_project(project_dir());
  }
  fs::path plc2_pin() const { return layout().trusted() / (files_[1].server.sha256 + ".der"); }
  fs::path plc2_quarantined() const {
    return layout().untrusted() / (files_[1].server.sha256 + ".der");
  }
  std::string alternative_address() const {
    return "IPAddress=127.0.0.1;Port=" + std::to_string(sim_->plc(1).port()) + ";";
  }
  std::chrono::milliseconds random_delay(int most) {
    return std::chrono::milliseconds(std::uniform_int_distribution<int>(0, most)(random_));
  }

  void import_in_process(const std::string& document) {
    auto bundle = importer::parse_bundle(document, std::nullopt);
    for (const auto& p : bundle.problems) ADD_FAILURE() << p.to_string();
    ASSERT_TRUE(bundle.ok());
    auto project = importer::Project::open(project_dir());
    importer::apply_import(project, *bundle.bundle, importer::plan_import(*bundle.bundle, project));
  }

  // PLC2's certificate pinned by an operator's file (as the SIGHUP test does).
  void trust_plc2_by_file() {
    test::write_file(layout().trusted() / "plc2.crt", files_[1].server.certificate_pem);
  }

  struct Scadad {
    std::unique_ptr<test::Child> child;
    std::uint16_t port = 0;
  };
  Scadad start_scadad() {
    Scadad s;
    s.child = std::make_unique<test::Child>(
        kScadad,
        std::vector<std::string>{"--project", project_dir().string(), "--api", "127.0.0.1:0"});
    s.port = api_port(*s.child);
    return s;
  }

  // The events scadad shows now: each must survive the kill that follows.
  void remember_events(std::uint16_t port) {
    try {
      const auto r = call(port, http::verb::get, "/api/events?last=10000");
      for (const auto& e : r.body["events"]) {
        const auto id = e["id"].get<std::int64_t>();
        seen_[id] = {id, e["time"].get<std::string>(), e["kind"].get<std::string>(),
                     e["subject"].get<std::string>(), e["detail"].get<std::string>()};
      }
    } catch (const std::exception& e) {
      ADD_FAILURE() << "scadad did not answer before the kill: " << e.what();
    }
  }

  static void kill_hard(test::Child& scadad) {
    const test::ChildOutcome end = scadad.finish(SIGKILL, 10s);
    EXPECT_EQ(end.signal, SIGKILL) << end.exit << "\n" << end.out;
  }

  // The events in project.db as they lie in the table.
  std::vector<importer::ProjectEvent> raw_events() {
    RawDb db(project_dir() / "project.db");
    std::vector<importer::ProjectEvent> out;
    for (auto& row : db.rows("SELECT id, time, kind, subject, detail FROM events")) {
      out.push_back({std::stoll(row[0]), row[1], row[2], row[3], row[4]});
    }
    return out;
  }

  // Checks 1 to 3 of a round, with no scadad running.
  void check_project_after_crash() {
    const fs::path file = project_dir() / "project.db";
    {
      // 1. The database, as SQLite finds it after the kill (before anything of ours opens it).
      RawDb db(file);
      const auto check = db.rows("PRAGMA integrity_check");
      ASSERT_EQ(check.size(), 1u);
      EXPECT_EQ(check[0][0], "ok");
      EXPECT_TRUE(db.rows("PRAGMA foreign_key_check").empty()) << "a tag without its connection";
    }
    // 3. The event log: ids strictly increasing and never beyond the AUTOINCREMENT counter, every
    // row complete, and every event seen before a kill still there as it was.
    const auto events = raw_events();
    std::map<std::int64_t, const importer::ProjectEvent*> by_id;
    std::int64_t previous = 0;
    for (const auto& e : events) {
      EXPECT_GT(e.id, previous) << "event ids out of order";
      previous = e.id;
      by_id[e.id] = &e;
      EXPECT_FALSE(e.kind.empty()) << "event " << e.id << " has no kind";
      EXPECT_TRUE(e.time.size() == 20 && e.time[4] == '-' && e.time[10] == 'T' &&
                  e.time.back() == 'Z')
          << "event " << e.id << " has time '" << e.time << "'";
    }
    {
      RawDb db(file);
      const auto sequence = db.rows("SELECT seq FROM sqlite_sequence WHERE name = 'events'");
      ASSERT_EQ(sequence.size(), 1u);
      EXPECT_GE(std::stoll(sequence[0][0]), previous);
    }
    for (const auto& [id, e] : seen_) {
      const auto it = by_id.find(id);
      ASSERT_NE(it, by_id.end()) << "event " << id << " (" << e.kind << " " << e.detail
                                 << ") seen before the kill is gone";
      EXPECT_EQ(it->second->kind, e.kind) << id;
      EXPECT_EQ(it->second->time, e.time) << id;
      EXPECT_EQ(it->second->subject, e.subject) << id;
      EXPECT_EQ(it->second->detail, e.detail) << id;
    }
    last_id_before_start_ = previous;

    // The way in of scadad and scadactl: completes or rolls back an interrupted import.
    try {
      importer::Project project = importer::Project::open(project_dir());
    } catch (const std::exception& e) {
      FAIL() << "Project::open after the kill: " << e.what();
    }
    {
      RawDb db(file);
      EXPECT_TRUE(db.rows("SELECT temp FROM pending_files").empty());
    }
    check_store();
  }

  // 2. No partial or temporary file in the store folders; every file parses.
  void check_store() {
    const certstore::StoreLayout l = layout();
    for (const fs::path& folder : {l.trusted(), l.crl(), l.untrusted(), l.roots}) {
      for (const auto& entry : fs::directory_iterator(folder)) {
        if (entry.is_directory()) continue;  // trusted/crl
        const std::string name = entry.path().filename().string();
        EXPECT_NE(name.front(), '.') << "temporary file left behind: " << entry.path();
        if (name.front() == '.') continue;
        EXPECT_GT(entry.file_size(), 0u) << "empty file: " << entry.path();
        if (folder == l.crl()) {
          EXPECT_TRUE(
              std::holds_alternative<certstore::CrlInfo>(certstore::read_crl_file(entry.path())))
              << entry.path();
          continue;
        }
        auto read = certstore::read_certificate_file(entry.path());
        const auto* list = std::get_if<std::vector<certstore::CertificateInfo>>(&read);
        ASSERT_TRUE(list && !list->empty()) << "not a certificate file: " << entry.path();
        // Files named by fingerprint (imports, quarantine, API moves) hold that certificate.
        if (name.size() == 68 && name.ends_with(".der")) {
          EXPECT_EQ(list->front().sha256, name.substr(0, 64)) << entry.path();
        }
      }
    }
  }

  std::set<std::string> fingerprints_in(const fs::path& folder) {
    std::set<std::string> out;
    for (const auto& entry : fs::directory_iterator(folder)) {
      if (!entry.is_regular_file() || entry.path().filename().string().front() == '.') continue;
      auto read = certstore::read_certificate_file(entry.path());
      if (const auto* list = std::get_if<std::vector<certstore::CertificateInfo>>(&read)) {
        for (const auto& c : *list) out.insert(c.sha256);
      }
    }
    return out;
  }

  // What every connection of the project comes back to: its start values, and connected when its
  // certificate is pinned in trusted/ or its CA is in pki/roots.
  std::vector<Want> wants_from_project() {
    const auto trusted = fingerprints_in(layout().trusted());
    const auto roots = fingerprints_in(layout().roots);
    std::vector<Want> wants;
    for (const auto& c : importer::Project::open(project_dir()).connections()) {
      Want w;
      w.name = c.name;
      const bool accepted = trusted.count(leaf_sha_[c.name]) || roots.count(ca_sha_[c.name]);
      w.state = c.force_connection_state == 0 ? 0 : accepted ? 2 : -1;
      w.address =
          c.use_alternative_address
              ? "127.0.0.1:" + std::to_string(port_in(c.alternative_address)) + " (alternative)"
              : c.address + ":" + std::to_string(c.port) + " (original)";
      wants.push_back(w);
    }
    return wants;
  }

  // 4. The started scadad comes back to what the project configures; its tags read the CPU in
  // use; its first event comes after every event of before.
  void expect_comes_back(std::uint16_t port) {
    const std::vector<Want> wants = wants_from_project();
    const json body = wait_json(port, "/api/connections", [&](const json& b) {
      if (!b.contains("connections") || b["connections"].size() != wants.size()) return false;
      for (const Want& w : wants) {
        const json c = connection(b, w.name);
        if (c.is_null() || c["CurrentAddress"] != w.address) return false;
        if (w.state >= 0 && c["ConnectionState"] != w.state) return false;
        if (w.state < 0 &&
            (c["ConnectionState"] == 2 || !c["LastError"].is_string() ||
             c["LastError"].get<std::string>().find("unknown-ca") == std::string::npos)) {
          return false;
        }
      }
      return true;
    });
    for (const Want& w : wants) {
      if (w.state != 2) continue;
      const std::size_t cpu = cpu_of_port_.at(
          static_cast<std::uint16_t>(std::stoi(w.address.substr(w.address.find(':') + 1))));
      const channel::Bytes b = sim_->plc(cpu).read(channel::Area::data_block, 1, 0, 2);
      const int value = b[0] << 8 | b[1];
      wait_json(port, "/api/tags?name=" + w.name + "%2FSpeed", [&](const json& t) {
        return t.contains("tags") && t["tags"][0]["quality"] == "good" &&
               t["tags"][0]["value"] == value;
      });
    }
    const json events = wait_json(port, "/api/events?last=10000", [](const json& e) {
      for (const auto& x : e["events"]) {
        if (x["kind"] == "start") return true;
      }
      return false;
    });
    std::int64_t start_id = 0;
    for (const auto& x : events["events"]) {
      if (x["kind"] == "start") start_id = x["id"];
    }
    EXPECT_GT(start_id, last_id_before_start_) << "an event id was used again: " << body.dump();
  }

  test::TempDir dir_;
  test::ServerTlsFiles files_[3]{{dir_, "plc1"}, {dir_, "plc2"}, {dir_, "plc3"}};
  test::PlcLog plc_log_;
  std::unique_ptr<plcsim::Simulator> sim_;
  std::map<std::uint16_t, std::size_t> cpu_of_port_;
  std::map<std::string, std::string> leaf_sha_, ca_sha_;
  std::string old_bundle_;
  std::uint64_t seed_ = 0;
  std::mt19937_64 random_;
  std::map<std::int64_t, importer::ProjectEvent> seen_;
  std::int64_t last_id_before_start_ = 0;
};

constexpr int kRounds = 8;

// (a) Acquisition with a stream of tag writes: every acknowledged write is in the event log and
// the CPU holds the last acknowledged value (or the one in flight at the kill).
TEST_F(CrashSafety, KilledDuringAcquisitionAndTagWrites) {
  trust_plc2_by_file();
  Scadad scadad = start_scadad();
  int next_value = 1;
  std::vector<int> acked_all;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round) + ", seed " + std::to_string(seed_));
    expect_comes_back(scadad.port);

    std::mutex mutex;
    std::vector<int> acked;
    std::optional<int> in_flight;
    std::atomic<bool> stop{false};
    std::thread writer([&] {
      while (!stop) {
        int value = 0;
        {
          std::lock_guard lock(mutex);
          value = next_value++;
          in_flight = value;
        }
        bool ok = false;
        try {
          const auto r = call(scadad.port, http::verb::post, "/api/tags",
                              json{{"name", "PLC1/Speed"}, {"value", value}}.dump());
          ok = r.status == 200;
          EXPECT_TRUE(ok) << r.text;
          const auto read = call(scadad.port, http::verb::get, "/api/tags?name=PLC1%2FSpeed");
          EXPECT_EQ(read.status, 200) << read.text;
        } catch (const std::exception&) {
          std::this_thread::sleep_for(5ms);  // scadad is gone
        }
        std::lock_guard lock(mutex);
        if (ok) acked.push_back(value);
        if (ok) in_flight.reset();
      }
    });
    std::this_thread::sleep_for(random_delay(300));
    remember_events(scadad.port);
    std::optional<int> in_flight_at_kill;
    {
      std::lock_guard lock(mutex);
      in_flight_at_kill = in_flight;
      ::kill(scadad.child->pid(), SIGKILL);
    }
    stop = true;
    writer.join();
    kill_hard(*scadad.child);

    check_project_after_crash();
    std::set<std::string> logged;
    for (const auto& e : raw_events()) {
      if (e.kind == "tag-write" && e.subject == "PLC1/Speed" && e.detail.ends_with(": ok")) {
        logged.insert(e.detail.substr(0, e.detail.find(" by 127.0.0.1:")));
      }
    }
    acked_all.insert(acked_all.end(), acked.begin(), acked.end());
    for (int v : acked_all) EXPECT_TRUE(logged.count(std::to_string(v))) << "write " << v;
    if (!acked.empty()) {
      const channel::Bytes b = sim_->plc(0).read(channel::Area::data_block, 1, 0, 2);
      const int in_cpu = b[0] << 8 | b[1];
      EXPECT_TRUE(in_cpu == acked.back() || (in_flight_at_kill && in_cpu == *in_flight_at_kill))
          << in_cpu << " in the CPU, last acknowledged " << acked.back();
    }
    scadad = start_scadad();
  }
  expect_comes_back(scadad.port);
  EXPECT_EQ(scadad.child->finish(SIGTERM, 10s).exit, 0);
}

// (b) Make-before-break switches of PLC1 between its two CPUs, back and forth. A switch through
// the system tags is not kept: after the restart PLC1 is where the project's start values put
// it, which this test changes between rounds (as does PLC2's ForceConnectionState).
TEST_F(CrashSafety, KilledDuringMakeBeforeBreakSwitches) {
  trust_plc2_by_file();
  const auto set_start_values = [&](int use_alternative, int plc2_force) {
    RawDb db(project_dir() / "project.db");
    db.rows("UPDATE connections SET alternative_address = '" + alternative_address() +
            "', use_alternative_address = " + std::to_string(use_alternative) +
            " WHERE name = 'PLC1'");
    db.rows("UPDATE connections SET force_connection_state = " + std::to_string(plc2_force) +
            " WHERE name = 'PLC2'");
  };
  set_start_values(0, 1);
  const std::string addresses[2] = {
      "127.0.0.1:" + std::to_string(sim_->plc(0).port()) + " (original)",
      "127.0.0.1:" + std::to_string(sim_->plc(1).port()) + " (alternative)"};
  Scadad scadad = start_scadad();
  int switches = 0;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round) + ", seed " + std::to_string(seed_));
    expect_comes_back(scadad.port);

    std::atomic<bool> stop{false};
    std::atomic<int> done{0};
    std::thread switcher([&] {
      while (!stop) {
        try {
          const json c =
              connection(call(scadad.port, http::verb::get, "/api/connections").body, "PLC1");
          const int target = c["UseAlternativeAddress"] == 1 ? 0 : 1;
          const auto r =
              call(scadad.port, http::verb::post, "/api/tags",
                   json{{"name", "@PLC1@UseAlternativeAddress"}, {"value", target}}.dump());
          EXPECT_EQ(r.status, 200) << r.text;
          // Make-before-break: done when the new session serves.
          const auto end = std::chrono::steady_clock::now() + 10s;
          while (!stop && std::chrono::steady_clock::now() < end) {
            const json now =
                connection(call(scadad.port, http::verb::get, "/api/connections").body, "PLC1");
            if (now["CurrentAddress"] == addresses[target] && now["ConnectionState"] == 2) {
              ++done;
              break;
            }
            std::this_thread::sleep_for(5ms);
          }
        } catch (const std::exception&) {
          std::this_thread::sleep_for(5ms);  // scadad is gone
        }
      }
    });
    std::this_thread::sleep_for(random_delay(300));
    remember_events(scadad.port);
    ::kill(scadad.child->pid(), SIGKILL);
    stop = true;
    switcher.join();
    kill_hard(*scadad.child);
    switches += done;

    check_project_after_crash();
    // The next start follows changed start values.
    std::uniform_int_distribution<int> coin(0, 2);
    set_start_values(round % 2 == 0, coin(random_) != 0);
    scadad = start_scadad();
  }
  expect_comes_back(scadad.port);
  int logged = 0;
  for (const auto& e : raw_events()) logged += e.kind == "switch";
  EXPECT_GE(logged, switches);
  std::cout << "[ switches ] " << switches << " completed before the kills" << std::endl;
  EXPECT_EQ(scadad.child->finish(SIGTERM, 10s).exit, 0);
}

// (c) PLC2's quarantined certificate trusted and untrusted through the API, again and again. A
// change acknowledged before the kill (and none in flight) is what the store holds after it; the
// certificate file is never lost; the restarted scadad connects PLC2 exactly when it is trusted.
TEST_F(CrashSafety, KilledDuringTrustChanges) {
  Scadad scadad = start_scadad();
  // PLC2's certificate lands in quarantine.
  wait_json(scadad.port, "/api/connections", [&](const json&) {
    std::error_code ec;
    return fs::exists(plc2_quarantined(), ec);
  });
  enum class Op { trust, untrust };
  std::map<Op, int> acked_total;
  const std::string fingerprint = files_[1].server.sha256;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round) + ", seed " + std::to_string(seed_));
    expect_comes_back(scadad.port);

    std::mutex mutex;
    std::optional<Op> last_acked, in_flight;
    std::atomic<bool> stop{false};
    std::thread operator_thread([&] {
      while (!stop) {
        std::error_code ec;
        const Op op = fs::exists(plc2_pin(), ec) ? Op::untrust : Op::trust;
        {
          std::lock_guard lock(mutex);
          in_flight = op;
        }
        try {
          const auto r =
              call(scadad.port, http::verb::post,
                   op == Op::trust ? "/api/certificates/trust" : "/api/certificates/untrust",
                   json{{"fingerprint", fingerprint}}.dump());
          {
            std::lock_guard lock(mutex);
            in_flight.reset();
            if (r.status == 200) {
              last_acked = op;
              ++acked_total[op];
            }
          }
          EXPECT_TRUE(r.status == 200 || r.status == 404 || r.status == 409) << r.text;
          // PLC2 follows: up after a trust, down after an untrust.
          const auto end = std::chrono::steady_clock::now() + 10s;
          while (r.status == 200 && !stop && std::chrono::steady_clock::now() < end) {
            const json c =
                connection(call(scadad.port, http::verb::get, "/api/connections").body, "PLC2");
            if ((c["ConnectionState"] == 2) == (op == Op::trust)) break;
            std::this_thread::sleep_for(5ms);
          }
        } catch (const std::exception&) {
          std::this_thread::sleep_for(5ms);  // scadad is gone
        }
      }
    });
    std::this_thread::sleep_for(random_delay(300));
    remember_events(scadad.port);
    std::optional<Op> acked_at_kill, in_flight_at_kill;
    {
      std::lock_guard lock(mutex);
      acked_at_kill = last_acked;
      in_flight_at_kill = in_flight;
      ::kill(scadad.child->pid(), SIGKILL);
    }
    stop = true;
    operator_thread.join();
    kill_hard(*scadad.child);

    check_project_after_crash();
    std::error_code ec;
    const bool pinned = fs::exists(plc2_pin(), ec);
    const bool quarantined = fs::exists(plc2_quarantined(), ec);
    EXPECT_TRUE(pinned || quarantined) << "PLC2's certificate file is gone";
    if (acked_at_kill && !in_flight_at_kill) {
      EXPECT_EQ(pinned, *acked_at_kill == Op::trust) << "the acknowledged trust change is lost";
      if (*acked_at_kill == Op::untrust) {
        EXPECT_TRUE(quarantined);
      }
    }
    std::map<std::string, int> logged;
    for (const auto& e : raw_events()) {
      if (e.kind == "trust" || e.kind == "untrust") ++logged[e.kind];
    }
    EXPECT_GE(logged["trust"], acked_total[Op::trust]);
    EXPECT_GE(logged["untrust"], acked_total[Op::untrust]);
    scadad = start_scadad();
  }
  expect_comes_back(scadad.port);
  std::cout << "[ trust    ] " << acked_total[Op::trust] << " trusts, " << acked_total[Op::untrust]
            << " untrusts acknowledged before the kills" << std::endl;
  EXPECT_EQ(scadad.child->finish(SIGTERM, 10s).exit, 0);
}

// (d) `scadactl import --yes` of a changed bundle while scadad runs: scadad killed at a random
// moment, the import process killed at a random moment too, or at each of the importer's kill
// points once. Afterwards the project holds the old connection set or the new one, never a mix,
// and the new bundle's certificate files are in place exactly when its connections are.
TEST_F(CrashSafety, KilledDuringImports) {
  trust_plc2_by_file();
  const std::set<std::string> old_connections{"PLC1", "PLC2"}, new_connections{"PLC1", "PLC3"};
  const std::set<std::string> old_tags{"PLC1/Speed", "PLC2/Speed"},
      new_tags{"PLC1/Extra", "PLC1/Speed", "PLC3/Speed"};
  const std::vector<std::string> kill_points{"files-written", "before-commit", "after-commit",
                                             "renamed-one"};
  constexpr int kImportRounds = 8;
  for (int round = 0; round < kImportRounds; ++round) {
    const std::string kill_at = round < 4 ? kill_points[std::size_t(round)] : "";
    SCOPED_TRACE("round " + std::to_string(round) + " (" +
                 (kill_at.empty() ? "random kills" : kill_at) + "), seed " + std::to_string(seed_));
    // Fresh certificates every round, so that every import has files to put in place: a CA for
    // pki/roots and a PLC certificate it issued for trusted/.
    test::TestCa round_ca("round" + std::to_string(round));
    const test::IssuedCertificate round_plc = round_ca.issue("round-plc" + std::to_string(round));
    const fs::path new_root = layout().roots / (sha256_of_pem(round_ca.certificate_pem()) + ".der");
    const fs::path new_pin = layout().trusted() / (round_plc.sha256 + ".der");
    const fs::path bundle = dir_.path() / ("round" + std::to_string(round) + ".scadaexport.xml");
    test::write_file(bundle, bundle_document({{"PLC1",
                                               sim_->plc(0).port(),
                                               {{"ca", files_[0].ca.certificate_pem()}},
                                               kSpeed + kExtra},
                                              {"PLC3",
                                               sim_->plc(3).port(),
                                               {{"ca", files_[2].ca.certificate_pem()},
                                                {"ca", round_ca.certificate_pem()},
                                                {"plc", round_plc.certificate_pem}}}}));
    const auto imports_logged = [&] {
      int n = 0;
      for (const auto& e : raw_events()) n += e.kind == "import";
      return n;
    };
    const int imports_before = imports_logged();

    Scadad scadad = start_scadad();
    expect_comes_back(scadad.port);
    std::uniform_int_distribution<int> coin(0, 2);
    const bool kill_import = kill_at.empty() && coin(random_) != 0;
    const auto scadad_delay = random_delay(300);
    const auto import_delay = random_delay(150);
    test::Child import(kScadactl,
                       {"import", "--project", project_dir().string(), "--yes", bundle.string()},
                       kill_at.empty() ? "" : "SCADA_IMPORT_KILL_AT=" + kill_at);
    const auto started = std::chrono::steady_clock::now();
    if (kill_import && import_delay < scadad_delay) {
      std::this_thread::sleep_until(started + import_delay);
      ::kill(import.pid(), SIGKILL);
    }
    std::this_thread::sleep_until(started + scadad_delay);
    remember_events(scadad.port);
    kill_hard(*scadad.child);
    if (kill_import && import_delay >= scadad_delay) {
      std::this_thread::sleep_until(started + import_delay);
      ::kill(import.pid(), SIGKILL);
    }
    const test::ChildOutcome imported = import.finish(0, 60s);

    check_project_after_crash();
    std::set<std::string> connections, tags;
    {
      const importer::Project project = importer::Project::open(project_dir());
      for (const auto& c : project.connections()) connections.insert(c.name);
      for (const auto& t : project.tags()) tags.insert(t.name);
    }
    const bool is_new = connections == new_connections;
    if (!is_new) {
      EXPECT_EQ(connections, old_connections) << "a mix of two imports";
    }
    EXPECT_EQ(tags, is_new ? new_tags : old_tags) << "a mix of two imports";
    EXPECT_EQ(fs::exists(new_root), is_new) << new_root;
    EXPECT_EQ(fs::exists(new_pin), is_new) << new_pin;
    EXPECT_EQ(imports_logged(), imports_before + (is_new ? 1 : 0));
    if (!kill_at.empty()) {
      EXPECT_EQ(imported.signal, SIGKILL) << imported.exit << " " << imported.out;
      EXPECT_EQ(is_new, kill_at == "after-commit" || kill_at == "renamed-one");
    }
    if (imported.exit == 0) {
      EXPECT_TRUE(is_new) << imported.out;
    }
    if (!kill_import && kill_at.empty()) {
      EXPECT_EQ(imported.exit, 0) << imported.out;
    }

    // The runtime comes back to the project as it is now, then the next round starts from the
    // old bundle again.
    scadad = start_scadad();
    expect_comes_back(scadad.port);
    EXPECT_EQ(scadad.child->finish(SIGTERM, 10s).exit, 0);
    if (is_new) import_in_process(old_bundle_);
  }
}

// scadad started (e.g. restarted after a crash) while `scadactl import` has written its
// temporary certificate files and waits for the database lock (held here by another writer, as
// scadad holds it while it records an event). Found by this test: scadad's Project::open used to
// delete those files as leftovers of a dead import, the import's renames then failed and the
// project kept the new connections without the certificate their import brought. Now an import
// holds <project>/.import.lock and an open that finds it held leaves the import's files alone.
TEST_F(CrashSafety, ScadadStartingDuringAnImportKeepsTheImportsCertificates) {
  test::TestCa ca("race");
  const fs::path new_root = layout().roots / (sha256_of_pem(ca.certificate_pem()) + ".der");
  const fs::path bundle = dir_.path() / "race.scadaexport.xml";
  test::write_file(
      bundle,
      bundle_document(
          {{"PLC1", sim_->plc(0).port(), {{"ca", files_[0].ca.certificate_pem()}}, kSpeed + kExtra},
           {"PLC3", sim_->plc(3).port(), {{"ca", ca.certificate_pem()}}}}));
  sqlite3* holder = nullptr;
  ASSERT_EQ(sqlite3_open((project_dir() / "project.db").c_str(), &holder), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(holder, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  test::Child import(kScadactl,
                     {"import", "--project", project_dir().string(), "--yes", bundle.string()});
  const fs::path temp =
      new_root.parent_path() / ("." + new_root.filename().string() + ".import-tmp");
  // Bounded below the import's 5 s wait for the lock.
  const auto wait_for = [](const std::function<bool()>& done) {
    const auto end = std::chrono::steady_clock::now() + 2s;
    while (!done() && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(1ms);
    return done();
  };
  // The import waits for the lock with its temporary file written; scadad starts meanwhile.
  ASSERT_TRUE(wait_for([&] { return fs::exists(temp); })) << import.output();
  auto scadad = std::make_unique<test::Child>(
      kScadad,
      std::vector<std::string>{"--project", project_dir().string(), "--api", "127.0.0.1:0"});
  const bool removed = wait_for([&] { return !fs::exists(temp); });
  ASSERT_EQ(sqlite3_exec(holder, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(holder);
  const test::ChildOutcome imported = import.finish(0, 30s);
  EXPECT_FALSE(removed) << "scadad deleted the running import's " << temp;
  api_port(*scadad);
  EXPECT_EQ(scadad->finish(SIGTERM, 10s).exit, 0);

  const importer::Project project = importer::Project::open(project_dir());
  const auto connections = project.connections();
  const bool is_new = connections.size() == 2 && connections[1].name == "PLC3";
  EXPECT_EQ(fs::exists(new_root), is_new)
      << "scadactl exit " << imported.exit << ": " << imported.out;
}

}  // namespace
}  // namespace scada::runtime
