// scadactl bench read: the command function against plcsim on loopback (every mode, a 240-byte
// PDU with AmQ 1, values that change, addresses that do not exist, a session that does not come
// up, bad options) and the scadactl binary for its exit status and JSON last line. No test
// asserts a speed: the machine running them may be busy.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "plcsim/plcsim.h"
#include "runtime/runtime.h"
#include "test_tls_files.h"

namespace scada::runtime {
namespace {

namespace fs = std::filesystem;
namespace ps = plcsim;
using namespace std::chrono_literals;
using test::ServerTlsFiles;
using test::TempDir;
using test::write_file;

struct Outcome {
  int status;
  std::string out, err;
  // The last line (plan and bench print other lines before it).
  nlohmann::json last() const {
    const auto end = out.find_last_not_of('\n');
    const auto start = out.rfind('\n', end);
    return nlohmann::json::parse(out.substr(start == std::string::npos ? 0 : start + 1));
  }
  // The first line: bench read --json's details.
  nlohmann::json detail() const { return nlohmann::json::parse(out.substr(0, out.find('\n'))); }
};

// The last line has exactly the keys scripts rely on.
void expect_summary_keys(const nlohmann::json& j) {
  EXPECT_EQ(j.size(), 5u) << j.dump();
  for (const char* key : {"requests_per_s", "tags_per_s", "rtt_p50_us", "rtt_p99_us"}) {
    EXPECT_TRUE(j.contains(key) && j[key].is_number()) << key << " in " << j.dump();
  }
  EXPECT_TRUE(j.contains("errors") && j["errors"].is_number_unsigned()) << j.dump();
}

// "DB1.DBW0 Word", "DB1.DBD2 DInt", ... count tags packed in data block db from offset 0.
std::string words_and_dints(std::uint16_t db, std::size_t count) {
  std::string text = "# generated: Words and DInts, packed\n";
  std::uint32_t offset = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const bool word = i % 2 == 0;
    text += "DB" + std::to_string(db) + (word ? ".DBW" : ".DBD") + std::to_string(offset) +
            (word ? " Word\n" : " DInt\n");
    offset += word ? 2 : 4;
  }
  return text;
}

class BenchReadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = dir_.path() / "device-certificate-store";
    fs::create_directories(store_);
    fs::create_directories(dir_.path() / "pki" / "roots");
    write_file(dir_.path() / "pki" / "roots" / "ca.pem", files_.ca.certificate_pem());
  }
  std::uint16_t start_plc(ps::SecurityMode mode, std::uint16_t pdu = 480, std::uint16_t amq = 2) {
    ps::PlcConfig config;
    config.name = "PLC7";
    config.mode = mode;
    config.max_pdu = pdu;
    config.max_amq = amq;
    config.data_blocks = {{1, 4096}, {2, 4096}};
    config.tls.certificate = files_.certificate_file;
    config.tls.key = files_.key_file;
    sim_ = std::make_unique<ps::Simulator>(std::vector<ps::PlcConfig>{config}, "127.0.0.1", 0);
    return sim_->plc(0).port();
  }
  std::string tag_file(const std::string& content) {
    const fs::path file = dir_.file("tags" + std::to_string(++files_made_) + ".txt");
    write_file(file, content);
    return file.string();
  }
  BenchReadOptions options(std::uint16_t port, const std::string& mode, const std::string& tags) {
    BenchReadOptions o;
    o.connection.address = "127.0.0.1";
    o.connection.port = port;
    o.connection.mode = mode;
    o.connection.store = store_.string();
    o.connection.timeout = 3000ms;
    o.tag_file = tags;
    o.duration = 1s;
    o.json = true;
    return o;
  }
  Outcome bench(const BenchReadOptions& o) {
    std::ostringstream out, err;
    const int status = bench_read_command(o, out, err);
    return {status, out.str(), err.str()};
  }

  TempDir dir_;
  fs::path store_;
  ServerTlsFiles files_{dir_, "plc7"};
  std::unique_ptr<ps::Simulator> sim_;
  int files_made_ = 0;
};

TEST_F(BenchReadTest, EveryModeReadsForOneSecondWithoutErrors) {
  const std::string tags = tag_file(words_and_dints(1, 300) + words_and_dints(2, 300));
  for (auto [mode, name] :
       {std::pair{ps::SecurityMode::none, "none"}, std::pair{ps::SecurityMode::tls, "tls"},
        std::pair{ps::SecurityMode::s7_secure, "s7-secure"}}) {
    SCOPED_TRACE(name);
    const std::uint16_t port = start_plc(mode);
    const Outcome r = bench(options(port, name, tags));
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    const auto last = r.last();
    expect_summary_keys(last);
    EXPECT_GT(last["tags_per_s"].get<double>(), 0.0);
    EXPECT_GT(last["requests_per_s"].get<double>(), 0.0);
    EXPECT_EQ(last["errors"], 0);
    EXPECT_LE(last["rtt_p50_us"].get<double>(), last["rtt_p99_us"].get<double>());
    const auto detail = r.detail();
    EXPECT_EQ(detail["ok"], true);
    EXPECT_EQ(detail["mode"], name);
    if (mode == ps::SecurityMode::none) {
      EXPECT_TRUE(detail["tls_version"].is_null());
    } else {
      EXPECT_EQ(detail["tls_version"], "TLSv1.3");
    }
    EXPECT_EQ(detail["pdu"], 480);
    EXPECT_EQ(detail["amq"], 2);
    EXPECT_EQ(detail["tags"], 600);
    // The granted AmQ was used: two requests in flight, all the time.
    EXPECT_EQ(detail["peak_in_flight"], 2);
    // The run lasted about its second and ended on a loop boundary: every tag read equally.
    EXPECT_GE(detail["seconds"].get<double>(), 0.9);
    EXPECT_LT(detail["seconds"].get<double>(), 5.0);
    EXPECT_GT(detail["loops"].get<std::uint64_t>(), 0u);
    EXPECT_EQ(detail["requests"].get<std::uint64_t>(),
              detail["loops"].get<std::uint64_t>() * detail["plan_requests"].get<std::uint64_t>());
    EXPECT_EQ(detail["values"].get<std::uint64_t>(), detail["loops"].get<std::uint64_t>() * 600);
    sim_.reset();
  }
}

TEST_F(BenchReadTest, SmallPduAndAmqOneFollowTheSamePlanAsScadactlPlan) {
  // 100 Words 40 bytes apart: the item cap and the reply size of a 240-byte PDU shape the plan.
  std::string text;
  for (int i = 0; i < 100; ++i) text += "DB1.DBW" + std::to_string(i * 40) + "\n";
  const std::string tags = tag_file(text);
  const std::uint16_t port = start_plc(ps::SecurityMode::tls, 240, 1);
  BenchReadOptions o = options(port, "tls", tags);
  o.amq = 16;  // asked for; plcsim grants 1
  const Outcome r = bench(o);
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  const auto detail = r.detail();
  EXPECT_EQ(detail["pdu"], 240);
  EXPECT_EQ(detail["amq"], 1);
  EXPECT_EQ(detail["peak_in_flight"], 1);
  EXPECT_EQ(detail["max_items"], 19);  // 12 + 12 * 19 = 240: the PDU allows fewer than 20

  PlanOptions plan;
  plan.tag_file = tags;
  plan.pdu = 240;
  plan.max_items = 20;
  plan.json = true;
  std::ostringstream plan_out, plan_err;
  ASSERT_EQ(plan_command(plan, plan_out, plan_err), 0) << plan_err.str();
  const Outcome planned{0, plan_out.str(), ""};
  const auto requests_per_loop = planned.last()["requests"].get<std::uint64_t>();
  EXPECT_GT(requests_per_loop, 1u);
  EXPECT_EQ(detail["plan_requests"], requests_per_loop);
  EXPECT_EQ(detail["plan_items"], planned.last()["items"]);
  EXPECT_GT(detail["loops"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(detail["requests"].get<std::uint64_t>(),
            detail["loops"].get<std::uint64_t>() * requests_per_loop);
  EXPECT_EQ(r.last()["errors"], 0);
}

TEST_F(BenchReadTest, AValueThatChangesWithoutAPatternIsAnError) {
  const std::uint16_t port = start_plc(ps::SecurityMode::none);
  const std::string tags = tag_file(words_and_dints(1, 50));
  std::thread writer([this] {
    std::this_thread::sleep_for(300ms);
    const channel::Bytes value{0x04, 0xD2};                       // 1234
    sim_->plc(0).write(channel::Area::data_block, 1, 12, value);  // DB1.DBW12
  });
  const Outcome r = bench(options(port, "none", tags));
  writer.join();
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  const auto last = r.last();
  expect_summary_keys(last);
  EXPECT_GE(last["errors"].get<std::uint64_t>(), 1u);
  const auto kinds = r.detail()["error_kinds"];
  ASSERT_FALSE(kinds.empty()) << r.out;
  EXPECT_EQ(kinds[0]["error"].get<std::string>().rfind("DB1.DBW12: changed between reads", 0), 0u)
      << kinds[0];
  EXPECT_EQ(kinds[0]["example"], "0 -> 1234");
}

TEST_F(BenchReadTest, ProcessValuesChangeButACounterPatternHolds) {
  const std::uint16_t port = start_plc(ps::SecurityMode::none);
  const std::string counter = tag_file("DB100.DBD0 DInt  # plcsim's counter, +1 per 100 ms\n");
  BenchReadOptions o = options(port, "none", counter);
  o.duration = 500ms;
  o.pattern = "counter";
  Outcome r = bench(o);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(r.last()["errors"], 0);
  o.pattern = "unchanged";
  r = bench(o);
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_GE(r.last()["errors"].get<std::uint64_t>(), 1u);
  // A value that is not a number has no counter pattern.
  o.tag_file = tag_file("DB1.DBB0 Char\n");
  o.pattern = "counter";
  r = bench(o);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("not a number"), std::string::npos) << r.out;
}

TEST_F(BenchReadTest, AnAddressThatDoesNotExistIsAnErrorWithItsReason) {
  const std::uint16_t port = start_plc(ps::SecurityMode::tls);
  const std::string tags = tag_file("DB1.DBW0\nDB99.DBW0 Int\nDB1.DBW2\n");
  BenchReadOptions o = options(port, "tls", tags);
  o.duration = 300ms;
  Outcome r = bench(o);
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  const auto detail = r.detail();
  ASSERT_EQ(detail["error_kinds"].size(), 1u) << r.out;
  EXPECT_EQ(detail["error_kinds"][0]["error"], "DB99.DBW0: object does not exist (0x0A)");
  EXPECT_EQ(detail["error_kinds"][0]["count"], detail["loops"]);  // once per loop
  EXPECT_EQ(r.last()["errors"], detail["loops"]);
  // The readable tags were still read and checked.
  EXPECT_EQ(detail["values"].get<std::uint64_t>(), 2 * detail["loops"].get<std::uint64_t>());

  o.json = false;
  r = bench(o);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("DB99.DBW0: object does not exist (0x0A): "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tags/s"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("PDU 480, AmQ 2"), std::string::npos) << r.out;
}

TEST_F(BenchReadTest, ASessionThatDoesNotComeUpIsExitOne) {
  const std::uint16_t port = start_plc(ps::SecurityMode::none);
  sim_.reset();  // nothing listens any more
  BenchReadOptions o = options(port, "none", tag_file("DB1.DBW0\n"));
  const Outcome r = bench(o);
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_EQ(r.detail()["reason"], "refused");
  expect_summary_keys(r.last());
  EXPECT_EQ(r.last()["errors"], 1);
  EXPECT_EQ(r.last()["tags_per_s"], 0.0);
}

TEST_F(BenchReadTest, BadOptionsAndFilesExitTwoAndSayWhy) {
  const std::string good = tag_file("DB1.DBW0\n");
  const auto expect_refused = [&](const BenchReadOptions& o, const std::string& words) {
    const Outcome r = bench(o);
    EXPECT_EQ(r.status, 2) << r.out << r.err;
    EXPECT_NE(r.err.find(words), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  };
  expect_refused(options(102, "tls", (dir_.path() / "missing.txt").string()),
                 "missing.txt: cannot open the tag file");
  expect_refused(options(102, "ssl", good), "--mode must be none, tls or s7-secure, not 'ssl'");
  BenchReadOptions o = options(102, "tls", good);
  o.pattern = "random";
  expect_refused(o, "--pattern must be unchanged or counter");
  o = options(102, "tls", good);
  o.duration = 0ms;
  expect_refused(o, "--seconds");
  o = options(102, "tls", good);
  o.connection.store = (dir_.path() / "nowhere").string();
  expect_refused(o, "no such folder");
  const std::string bad = tag_file("DB1.DBW0\nDB1.DBQ4\n");
  expect_refused(options(102, "tls", bad), bad + ":2: bad address 'DB1.DBQ4'");
  expect_refused(options(102, "tls", tag_file("DB1.DBW0 Real\n")), ":1: ");
  expect_refused(options(102, "tls", tag_file("# nothing\n\n")), "no tags");
}

// The binary, as a script runs it: stdout and stderr together in out.
Outcome scadactl(const std::string& args) {
  const std::string command = std::string(SCADA_BIN_DIR) + "/scadactl " + args + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return {-1, "popen failed", ""};
  std::string output;
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output, ""};
}

TEST_F(BenchReadTest, BinaryExitStatusMessagesAndJsonLastLine) {
  const std::uint16_t port = start_plc(ps::SecurityMode::tls);
  const std::string tags = tag_file(words_and_dints(1, 100));
  const std::string common = "bench read --address 127.0.0.1 --port " + std::to_string(port) +
                             " --store " + store_.string();
  Outcome r = scadactl(common + " --mode tls --tags " + tags + " --seconds 0.5 --json");
  ASSERT_EQ(r.status, 0) << r.out;
  expect_summary_keys(r.last());
  EXPECT_EQ(r.last()["errors"], 0);

  r = scadactl(common + " --mode ssl --tags " + tags + " --seconds 1");
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find("--mode"), std::string::npos) << r.out;
  r = scadactl(common + " --mode tls --tags " + tags + ".missing --seconds 1");
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find("cannot open the tag file"), std::string::npos) << r.out;
  r = scadactl(common + " --mode tls --tags " + tags + " --seconds 0");
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find("--seconds"), std::string::npos) << r.out;
  r = scadactl(common + " --mode tls --tags " + tags);
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find("--seconds is required"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace scada::runtime
