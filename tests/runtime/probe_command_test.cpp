// scadactl probe and scadactl psk: the command functions against plcsim on loopback (success
// with the session's facts, each failure with its reason and exit status, the quarantine file)
// and the scadactl binary itself for the exit status and the JSON last line.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "plcsim/plcsim.h"
#include "runtime/runtime.h"
#include "test_tls_files.h"

namespace scada::runtime {
namespace {

namespace fs = std::filesystem;
namespace ps = plcsim;
using test::ServerTlsFiles;
using test::TempDir;
using test::write_file;

struct Outcome {
  int status;
  std::string out, err;
  nlohmann::json last_json() const {
    const auto end = out.find_last_not_of('\n');
    const auto start = out.rfind('\n', end);
    return nlohmann::json::parse(out.substr(start == std::string::npos ? 0 : start + 1));
  }
};

// A project folder (store and pki/roots) and one plcsim PLC whose certificate a test CA issued.
class ProbeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = dir_.path() / "device-certificate-store";
    fs::create_directories(store_);
    fs::create_directories(dir_.path() / "pki" / "roots");
  }
  std::uint16_t start_plc(ps::SecurityMode mode) {
    ps::PlcConfig config;
    config.name = "PLC7";
    config.mode = mode;
    config.tls.certificate = files_.certificate_file;
    config.tls.key = files_.key_file;
    sim_ = std::make_unique<ps::Simulator>(std::vector<ps::PlcConfig>{config}, "127.0.0.1", 0);
    return sim_->plc(0).port();
  }
  void trust_ca() {
    write_file(dir_.path() / "pki" / "roots" / "ca.pem", files_.ca.certificate_pem());
  }
  ProbeOptions options(std::uint16_t port, const std::string& mode) {
    ProbeOptions o;
    o.address = "127.0.0.1";
    o.port = port;
    o.mode = mode;
    o.store = store_.string();
    o.timeout = std::chrono::milliseconds(3000);
    o.json = true;
    return o;
  }
  Outcome probe(const ProbeOptions& o) {
    std::ostringstream out, err;
    const int status = probe_command(o, out, err);
    return {status, out.str(), err.str()};
  }

  TempDir dir_;
  fs::path store_;
  ServerTlsFiles files_{dir_, "plc7"};
  std::unique_ptr<ps::Simulator> sim_;
};

TEST_F(ProbeTest, SecureModesReportTheSessionsFacts) {
  trust_ca();
  for (auto [mode, name] : {std::pair{ps::SecurityMode::tls, "tls"},
                            std::pair{ps::SecurityMode::s7_secure, "s7-secure"}}) {
    SCOPED_TRACE(name);
    const std::uint16_t port = start_plc(mode);
    const Outcome r = probe(options(port, name));
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    const auto j = r.last_json();
    EXPECT_EQ(j["ok"], true);
    EXPECT_TRUE(j["reason"].is_null());
    EXPECT_EQ(j["tls_version"], "TLSv1.3");
    EXPECT_EQ(j["cipher"].get<std::string>().rfind("TLS_AES_", 0), 0u) << j["cipher"];
    EXPECT_EQ(j["peer_sha256"], files_.server.sha256);
    EXPECT_NE(j["peer_subject"].get<std::string>().find("CN=plc7"), std::string::npos)
        << j["peer_subject"];
    EXPECT_EQ(j["peer_not_after"].get<std::string>().size(), 20u);  // 2026-11-23T10:00:00Z
    EXPECT_EQ(j["pdu"], 480);  // plcsim's default offer; the probe asks for 960
    EXPECT_EQ(j["amq"], 2);
    EXPECT_GT(j["handshake_ms"].get<double>(), 0.0);
    EXPECT_EQ(j["cpu_order_number"], "6ES7 516-3AN02-0AB0");
    EXPECT_EQ(j["cpu_firmware"], "V2.9.4");
    EXPECT_EQ(j["cpu_plc_name"], "PLC7");
  }
}

TEST_F(ProbeTest, PlainModeConnectsWithoutTls) {
  const std::uint16_t port = start_plc(ps::SecurityMode::none);
  const Outcome r = probe(options(port, "none"));
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  const auto j = r.last_json();
  EXPECT_TRUE(j["tls_version"].is_null());
  EXPECT_TRUE(j["peer_sha256"].is_null());
  EXPECT_EQ(j["pdu"], 480);
}

TEST_F(ProbeTest, UnknownCaIsQuarantinedAndReported) {
  const std::uint16_t port = start_plc(ps::SecurityMode::tls);  // CA not imported
  const Outcome r = probe(options(port, "tls"));
  EXPECT_EQ(r.status, 1);
  const auto j = r.last_json();
  EXPECT_EQ(j["ok"], false);
  EXPECT_EQ(j["reason"], "unknown-ca");
  ASSERT_TRUE(j["quarantined"].is_string()) << j.dump();
  const fs::path file = j["quarantined"].get<std::string>();
  EXPECT_EQ(file.filename(), files_.server.sha256 + ".der");
  EXPECT_TRUE(fs::exists(file));
  EXPECT_EQ(file.parent_path(), store_ / "untrusted");
  EXPECT_FALSE(j["detail"].get<std::string>().empty());
  EXPECT_TRUE(j["tls_version"].is_null());
}

TEST_F(ProbeTest, TextOutputNamesTheReasonAndTheQuarantineFile) {
  const std::uint16_t port = start_plc(ps::SecurityMode::s7_secure);
  ProbeOptions o = options(port, "s7-secure");
  o.json = false;
  const Outcome r = probe(o);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("failed: 127.0.0.1:" + std::to_string(port) + " (s7-secure): unknown-ca"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("quarantined: "), std::string::npos) << r.out;
}

TEST_F(ProbeTest, SecureProbeOfAPlaintextPlcIsADowngradeRefusal) {
  const std::uint16_t port = start_plc(ps::SecurityMode::none);
  const Outcome r = probe(options(port, "s7-secure"));
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.last_json()["reason"], "downgrade-refused");
}

TEST_F(ProbeTest, NothingListeningIsRefused) {
  const std::uint16_t port = start_plc(ps::SecurityMode::none);
  sim_.reset();  // the port is free again
  const Outcome r = probe(options(port, "none"));
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.last_json()["reason"], "refused");
}

TEST_F(ProbeTest, UnusableOptionsExitWithTwoAndSayWhy) {
  ProbeOptions o = options(102, "tls");
  o.store = (dir_.path() / "missing").string();
  Outcome r = probe(o);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("no such folder"), std::string::npos) << r.err;

  o = options(102, "none");
  o.psk_identity = "hmi";
  o.psk_file = (dir_.path() / "key").string();
  r = probe(o);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("plaintext"), std::string::npos) << r.err;

  o = options(102, "tls");
  o.mode = "ssl";
  r = probe(o);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--mode"), std::string::npos) << r.err;
}

TEST(PskCommand, GeneratesAPrivateStrongKeyFile) {
  TempDir dir;
  const fs::path file = dir.file("plc1.psk");
  std::ostringstream out, err;
  ASSERT_EQ(psk_generate_command({file.string(), false}, out, err), 0) << err.str();
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string key;
  std::ifstream(file) >> key;
  EXPECT_EQ(key.size(), 64u);
  EXPECT_EQ(psk_check_command(file.string(), out, err), 0) << err.str();
  // An existing file is not replaced without --force.
  EXPECT_EQ(psk_generate_command({file.string(), false}, out, err), 2);
  EXPECT_EQ(psk_generate_command({file.string(), true}, out, err), 0);
  std::string second;
  std::ifstream(file) >> second;
  EXPECT_NE(second, key);
}

TEST(PskCommand, CheckRefusesWeakKeysAndOpenPermissions) {
  TempDir dir;
  const fs::path weak = dir.file("weak.psk");
  write_file(weak, "00000000000000000000000000000000\n");
  fs::permissions(weak, fs::perms::owner_read | fs::perms::owner_write);
  std::ostringstream out, err;
  EXPECT_EQ(psk_check_command(weak.string(), out, err), 1);
  EXPECT_NE(err.str().find("weak PSK"), std::string::npos) << err.str();

  const fs::path open = dir.file("open.psk");
  write_file(open, channel::generate_psk_text() + "\n");
  fs::permissions(open, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  std::ostringstream err2;
  EXPECT_EQ(psk_check_command(open.string(), out, err2), 1);
  EXPECT_NE(err2.str().find("chmod 600"), std::string::npos) << err2.str();
}

TEST(PskCommand, JsonForScripts) {
  TempDir dir;
  const fs::path file = dir.file("plc1.psk");
  std::ostringstream out, err;
  ASSERT_EQ(psk_generate_command({file.string(), false, true}, out, err), 0) << err.str();
  EXPECT_EQ(out.str(), "{\"file\": \"" + file.string() + "\", \"written\": true}\n");
  std::ostringstream checked;
  EXPECT_EQ(psk_check_command(file.string(), checked, err, true), 0);
  EXPECT_EQ(checked.str(), "{\"file\": \"" + file.string() + "\", \"ok\": true, \"bits\": 256}\n");
  std::ostringstream printed;
  ASSERT_EQ(psk_generate_command({"", false, true}, printed, err), 0);
  const auto key = nlohmann::json::parse(printed.str());
  EXPECT_EQ(key["key"].get<std::string>().size(), 64u);
  std::ostringstream missing, missing_err;
  EXPECT_EQ(psk_check_command(dir.file("none").string(), missing, missing_err, true), 1);
  const auto refused = nlohmann::json::parse(missing.str());
  EXPECT_EQ(refused["ok"], false);
  EXPECT_TRUE(refused["error"].is_string()) << missing.str();
}

TEST(ProjectInitCommand, JsonForScripts) {
  TempDir dir;
  const std::string project = dir.file("p").string();
  std::ostringstream out, err;
  EXPECT_EQ(project_init_command(project, out, err, true), 0) << err.str();
  EXPECT_EQ(out.str(), "{\"project\": \"" + project + "\", \"created\": true}\n");
  std::ostringstream again, again_err;
  EXPECT_EQ(project_init_command(project, again, again_err, true), 2);
  const auto refused = nlohmann::json::parse(again.str());
  EXPECT_EQ(refused["created"], false);
  EXPECT_NE(refused["error"].get<std::string>().find(project), std::string::npos) << again.str();
}

// The binary: exit status and the JSON last line, as a script sees them.
TEST_F(ProbeTest, BinaryExitStatusAndJsonLastLine) {
  trust_ca();
  const std::uint16_t port = start_plc(ps::SecurityMode::tls);
  const std::string command = std::string(SCADA_BIN_DIR) +
                              "/scadactl probe --address 127.0.0.1 --port " + std::to_string(port) +
                              " --mode tls --store " + store_.string() + " --json 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  const int status = ::pclose(pipe);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << output;
  Outcome parsed{0, output, ""};
  EXPECT_EQ(parsed.last_json()["peer_sha256"], files_.server.sha256);
}

}  // namespace
}  // namespace scada::runtime
