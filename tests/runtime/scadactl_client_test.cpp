// scadactl's client commands as an operator's script uses them: real scadad, scadactl and plcsim
// processes on loopback, every step checked through scadactl's output and exit status only
// (runtime/SCADACTL.md). The key test is the hardware swap of DESIGN.md section 7: to a
// replacement CPU with an unknown certificate, trusting it, and back, with nothing but scadactl.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "child_process.h"
#include "test_pki.h"
#include "test_tls_files.h"

namespace scada::runtime {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace pki = certstore::test_pki;
using nlohmann::json;

const std::string kScadactl = SCADA_BIN_DIR "/scadactl";
const std::string kScadad = SCADA_BIN_DIR "/scadad";
const std::string kPlcsim = SCADA_BIN_DIR "/plcsim";

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The JSON objects among the lines (stderr's words are mixed into the same output).
std::vector<json> json_lines(const std::string& text) {
  std::vector<json> out;
  for (const auto& line : lines_of(text)) {
    if (line.empty() || line.front() != '{') continue;
    json j = json::parse(line, nullptr, false);
    if (!j.is_discarded()) out.push_back(std::move(j));
  }
  return out;
}

// The number after `marker` in a process's output ("first on port 40123").
std::uint16_t port_after(const std::string& output, const std::string& marker) {
  const auto at = output.find(marker);
  if (at == std::string::npos) return 0;
  return static_cast<std::uint16_t>(std::stoul(output.substr(at + marker.size())));
}

// A self-signed PLC certificate (what a PLC makes for itself; SAN 127.0.0.1) as PEM files.
struct SelfSigned {
  std::string pem, sha256;
  fs::path certificate, key;
};

SelfSigned self_signed(const test::TempDir& dir, const std::string& name) {
  const auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  pki::KeyPtr key = pki::make_key(pki::KeyKind::ec_p256);
  pki::CertificateSpec spec;
  spec.subject = {{"O", "scadactl tests"}, {"CN", name}};
  spec.serial = {0x5E, 0x1F};
  spec.not_before = now - 1h;
  spec.not_after = now + 24h;
  spec.ca = false;
  spec.ip_addresses = {"127.0.0.1"};
  auto certificate = pki::make_certificate(spec, key.get(), nullptr, key.get());
  SelfSigned s{pki::pem_of(certificate.get()), pki::sha256_hex(pki::der_of(certificate.get())),
               dir.file(name + ".crt"), dir.file(name + ".key")};
  test::write_file(s.certificate, s.pem);
  test::write_file(s.key, pki::pem_of_private_key(key.get()));
  ::chmod(s.key.c_str(), 0600);
  return s;
}

// A plcsim process serving one PLC in tls mode on a port it picked.
class PlcProcess {
 public:
  PlcProcess(const std::string& name, const fs::path& certificate, const fs::path& key)
      : child_(kPlcsim, {"--listen", "127.0.0.1:0", "--mode", "tls", "--cert", certificate.string(),
                         "--key", key.string(), "--name", name}) {
    if (child_.wait_for_output("first on port ", 10s)) {
      port_ = port_after(child_.output(), "first on port ");
    }
  }
  ~PlcProcess() { child_.finish(SIGTERM, 5s); }
  std::uint16_t port() const { return port_; }
  std::string output() const { return child_.output(); }

 private:
  test::Child child_;
  std::uint16_t port_ = 0;
};

// PLC1 (a plcsim process) and a project for it imported with `scadactl import`, served by a
// scadad process with the control API on a port it picked; scadactl runs against it.
class ScadactlClient : public ::testing::Test {
 protected:
  // self_signed_plc1: the bundle carries PLC1's own certificate (into trusted/), not its CA.
  // token: scadad runs with --api-token-file holding it.
  void start(bool self_signed_plc1 = false, const std::string& token = "") {
    fs::path certificate = plc1_files_.certificate_file, key = plc1_files_.key_file;
    std::string certificates = "<Certificate role=\"ca\" encoding=\"pem\">" +
                               plc1_files_.ca.certificate_pem() + "</Certificate>";
    if (self_signed_plc1) {
      plc1_self_ = self_signed(dir_, "plc1-self");
      certificate = plc1_self_.certificate;
      key = plc1_self_.key;
      certificates =
          "<Certificate role=\"plc\" encoding=\"pem\">" + plc1_self_.pem + "</Certificate>";
    }
    plc1_ = std::make_unique<PlcProcess>("PLC1", certificate, key);
    ASSERT_NE(plc1_->port(), 0) << plc1_->output();

    const fs::path bundle = dir_.file("plant.scadaexport.xml");
    test::write_file(bundle,
                     "<ScadaExport formatVersion=\"1\" tool=\"test\" project=\"scadactl\" "
                     "exportedAt=\"2026-11-22T00:00:00Z\">\n"
                     "  <Plc name=\"PLC1\" firmware=\"V2.9.4\">\n"
                     "    <Connection address=\"127.0.0.1\" port=\"" +
                         std::to_string(plc1_->port()) +
                         "\" security=\"tls\"/>\n"
                         "    <Certificates>" +
                         certificates +
                         "</Certificates>\n"
                         "    <Symbols>\n"
                         "      <Symbol name=\"Speed\" address=\"DB1.DBW0\" type=\"Word\" "
                         "access=\"rw\" cycle=\"100ms\"/>\n"
                         "      <Symbol name=\"Run\" address=\"DB1.DBX2.0\" type=\"Bool\" "
                         "access=\"rw\" cycle=\"100ms\"/>\n"
                         "      <Symbol name=\"Limit\" address=\"DB1.DBW4\" type=\"Int\" "
                         "cycle=\"100ms\"/>\n"
                         "    </Symbols>\n"
                         "  </Plc>\n</ScadaExport>\n");
    auto init = test::run_child(kScadactl, {"project", "init", project_.string()});
    ASSERT_EQ(init.exit, 0) << init.out;
    auto imported = test::run_child(
        kScadactl, {"import", "--project", project_.string(), "--yes", bundle.string()});
    ASSERT_EQ(imported.exit, 0) << imported.out;

    std::vector<std::string> args{"--project", project_.string(), "--api", "127.0.0.1:0"};
    if (!token.empty()) {
      token_file_ = dir_.file("api.token");
      test::write_file(token_file_, token + "\n");
      ::chmod(token_file_.c_str(), 0600);
      args.insert(args.end(), {"--api-token-file", token_file_.string()});
    }
    scadad_ = std::make_unique<test::Child>(kScadad, args);
    ASSERT_TRUE(scadad_->wait_for_output("api: listening on 127.0.0.1:", 15s)) << scadad_->output();
    api_ = "http://127.0.0.1:" +
           std::to_string(port_after(scadad_->output(), "api: listening on 127.0.0.1:"));
  }

  void TearDown() override {
    if (scadad_) {
      const auto end = scadad_->finish(SIGTERM, 10s);
      EXPECT_EQ(end.exit, 0) << end.out;
    }
  }

  // scadactl ARGS --api <scadad> (env: one more "K=V" in its environment).
  test::ChildOutcome ctl(std::vector<std::string> args, const std::string& env = "",
                         std::chrono::milliseconds bound = 40s) {
    args.insert(args.end(), {"--api", api_});
    return test::run_child(kScadactl, args, env, bound);
  }
  std::unique_ptr<test::Child> ctl_started(std::vector<std::string> args) {
    args.insert(args.end(), {"--api", api_});
    return std::make_unique<test::Child>(kScadactl, args);
  }

  // PLC1 connected and its Speed good with value.
  void connected_with_speed(const std::string& value) {
    auto up = ctl({"tag", "wait", "@PLC1@ConnectionState", "==", "2", "--timeout", "15s"});
    ASSERT_EQ(up.exit, 0) << up.out << scadad_->output();
    auto set = ctl({"tag", "set", "PLC1/Speed", value});
    ASSERT_EQ(set.exit, 0) << set.out;
    auto good = ctl({"tag", "wait", "PLC1/Speed", "==", value, "--timeout", "10s"});
    ASSERT_EQ(good.exit, 0) << good.out;
  }

  test::TempDir dir_;
  test::ServerTlsFiles plc1_files_{dir_, "plc1"};
  SelfSigned plc1_self_;
  fs::path project_ = dir_.path() / "project";
  fs::path token_file_;
  std::unique_ptr<PlcProcess> plc1_;
  std::unique_ptr<test::Child> scadad_;
  std::string api_;
};

// The hardware swap: PLC1's CPU is replaced by another one (PLC2, another port, a self-signed
// certificate nobody trusted yet, its own memory), and back.
TEST_F(ScadactlClient, HardwareSwapToAnUntrustedCpuAndBackWithScadactlOnly) {
  start();
  const SelfSigned plc2_certificate = self_signed(dir_, "plc2");
  PlcProcess plc2("PLC2", plc2_certificate.certificate, plc2_certificate.key);
  ASSERT_NE(plc2.port(), 0) << plc2.output();
  const std::string original = "127.0.0.1:" + std::to_string(plc1_->port()) + " (original)";
  const std::string alternative = "127.0.0.1:" + std::to_string(plc2.port()) + " (alternative)";

  // PLC1 answers: connected on the original address, Speed = 1111 read back from it.
  connected_with_speed("1111");
  auto list = ctl({"conn", "list"});
  EXPECT_EQ(list.exit, 0) << list.out;
  EXPECT_TRUE(has(list.out, "PLC1: connected, " + original)) << list.out;
  auto got = ctl({"tag", "get", "PLC1/Speed"});
  EXPECT_EQ(got.exit, 0) << got.out;
  EXPECT_EQ(got.out, "PLC1/Speed = 1111 (good)\n");

  // The swap to PLC2 stops at its certificate: exit 1, naming the reason and the quarantine file.
  const std::string address = "IPAddress=127.0.0.1;Port=" + std::to_string(plc2.port()) + ";";
  auto refused = ctl(
      {"conn", "switch", "PLC1", "--to", "alternative", "--address", address, "--timeout", "3s"});
  EXPECT_EQ(refused.exit, 1) << refused.out;
  EXPECT_TRUE(has(refused.out, "@PLC1@ForceConnectionState = 0 written")) << refused.out;
  EXPECT_TRUE(has(refused.out, "@PLC1@UseAlternativeAddress = 1 written")) << refused.out;
  EXPECT_TRUE(has(refused.out, "untrusted-certificate")) << refused.out;
  EXPECT_TRUE(has(refused.out, "untrusted/" + plc2_certificate.sha256 + ".der")) << refused.out;
  EXPECT_TRUE(has(refused.out, "scadactl cert trust " + plc2_certificate.sha256.substr(0, 16)))
      << refused.out;

  // The operator checks the quarantined certificate and trusts it.
  auto quarantined = ctl({"cert", "list", "--kind", "quarantined", "--json"});
  EXPECT_EQ(quarantined.exit, 0) << quarantined.out;
  bool listed = false;
  for (const json& c : json_lines(quarantined.out)) {
    EXPECT_EQ(c["kind"], "quarantined") << c.dump();
    if (c["fingerprint"] == plc2_certificate.sha256) {
      listed = true;
      EXPECT_TRUE(has(c["subject"].get<std::string>(), "plc2")) << c.dump();
      EXPECT_EQ(c["file"],
                "device-certificate-store/untrusted/" + plc2_certificate.sha256 + ".der");
    }
  }
  EXPECT_TRUE(listed) << quarantined.out;
  auto table = ctl({"cert", "list"});
  EXPECT_EQ(table.exit, 0) << table.out;
  EXPECT_TRUE(has(table.out, plc2_certificate.sha256.substr(0, 16))) << table.out;
  auto trusted = ctl({"cert", "trust", plc2_certificate.sha256.substr(0, 16)});
  EXPECT_EQ(trusted.exit, 0) << trusted.out;
  EXPECT_TRUE(has(trusted.out, "trusted/" + plc2_certificate.sha256 + ".der")) << trusted.out;

  // Now the switch goes through, and PLC2's memory answers (its Speed was never written).
  auto switched = ctl({"conn", "switch", "PLC1", "--to", "alternative", "--timeout", "15s"});
  EXPECT_EQ(switched.exit, 0) << switched.out << scadad_->output();
  EXPECT_TRUE(has(switched.out, "switched to the alternative address, " + alternative))
      << switched.out;
  auto plc2_value = ctl({"tag", "wait", "PLC1/Speed", "==", "0", "--timeout", "10s"});
  EXPECT_EQ(plc2_value.exit, 0) << plc2_value.out;
  auto set2 = ctl({"tag", "set", "PLC1/Speed", "2222"});
  EXPECT_EQ(set2.exit, 0) << set2.out;
  auto wait2 = ctl({"tag", "wait", "PLC1/Speed", "==", "2222", "--timeout", "10s"});
  EXPECT_EQ(wait2.exit, 0) << wait2.out;
  EXPECT_TRUE(has(wait2.out, "PLC1/Speed = 2222 (good)")) << wait2.out;

  auto system = ctl({"tag", "get", "--json", "@PLC1@CurrentAddress", "@PLC1@PeerCertificate",
                     "@PLC1@ConnectionState"});
  EXPECT_EQ(system.exit, 0) << system.out;
  const auto tags = json_lines(system.out);
  ASSERT_EQ(tags.size(), 3u) << system.out;
  EXPECT_EQ(tags[0]["value"], alternative);
  EXPECT_TRUE(has(tags[1]["value"].get<std::string>(), "SHA-256 " + plc2_certificate.sha256))
      << tags[1].dump();
  EXPECT_EQ(tags[2]["value"], 2);

  // Back to PLC1 make-before-break: its memory still says 1111.
  auto back =
      ctl({"conn", "switch", "PLC1", "--to", "original", "--hot", "--timeout", "15s", "--json"});
  EXPECT_EQ(back.exit, 0) << back.out;
  const auto report = json_lines(back.out);
  ASSERT_EQ(report.size(), 1u) << back.out;
  EXPECT_EQ(report[0]["connection"], "PLC1");
  EXPECT_EQ(report[0]["to"], "original");
  EXPECT_EQ(report[0]["ok"], true);
  EXPECT_EQ(report[0]["current_address"], original);
  EXPECT_FALSE(has(report[0]["steps"].dump(), "ForceConnectionState")) << report[0].dump();
  auto plc1_again = ctl({"tag", "wait", "PLC1/Speed", "==", "1111", "--timeout", "10s"});
  EXPECT_EQ(plc1_again.exit, 0) << plc1_again.out;

  // The event log tells the story.
  auto events = ctl({"events", "--json", "--last", "1000"});
  EXPECT_EQ(events.exit, 0) << events.out;
  const auto logged = [&](const std::string& kind, const std::string& detail_part) {
    for (const json& e : json_lines(events.out)) {
      if (e["kind"] == kind && has(e["detail"].dump() + e["subject"].dump(), detail_part))
        return true;
    }
    return false;
  };
  EXPECT_TRUE(logged("quarantined", plc2_certificate.sha256)) << events.out;
  EXPECT_TRUE(logged("trust", "")) << events.out;
  EXPECT_TRUE(logged("connection-error", "untrusted-certificate")) << events.out;
  EXPECT_TRUE(logged("connection-state", "connected " + alternative)) << events.out;
  EXPECT_TRUE(logged("connection-state", "disabled")) << events.out;
  EXPECT_TRUE(logged("tag-write", "@PLC1@UseAlternativeAddress")) << events.out;
}

TEST_F(ScadactlClient, TagWatchPrintsTheCurrentStateThenEachChange) {
  start();
  connected_with_speed("7");

  auto watch = ctl_started({"tag", "watch", "PLC1/Speed", "--count", "2"});
  ASSERT_TRUE(watch->wait_for_output("PLC1/Speed = 7 (good)", 10s)) << watch->output();
  auto set = ctl({"tag", "set", "PLC1/Speed", "42"});
  ASSERT_EQ(set.exit, 0) << set.out;
  const auto end = watch->finish(0, 15s);
  EXPECT_EQ(end.exit, 0) << end.out;
  const auto lines = lines_of(end.out);
  ASSERT_EQ(lines.size(), 2u) << end.out;
  EXPECT_TRUE(has(lines[0], " PLC1/Speed = 7 (good)")) << end.out;
  EXPECT_TRUE(has(lines[1], " PLC1/Speed = 42 (good)")) << end.out;
  EXPECT_EQ(lines[0].find("20"), 0u) << "starts with the server time: " << end.out;

  // JSON lines, two names, ended by SIGINT (exit 0).
  auto json_watch = ctl_started({"tag", "watch", "PLC1/Speed", "@PLC1@ConnectionState", "--json"});
  ASSERT_TRUE(json_watch->wait_for_output("@PLC1@ConnectionState", 10s)) << json_watch->output();
  ASSERT_EQ(ctl({"tag", "set", "PLC1/Speed", "43"}).exit, 0);
  ASSERT_TRUE(json_watch->wait_for_output("\"value\": 43,", 10s)) << json_watch->output();
  const auto stopped = json_watch->finish(SIGINT, 10s);
  EXPECT_EQ(stopped.exit, 0) << stopped.out;
  const auto objects = json_lines(stopped.out);
  ASSERT_GE(objects.size(), 3u) << stopped.out;
  EXPECT_EQ(objects[0]["name"], "PLC1/Speed");
  EXPECT_EQ(objects[0]["value"], 42);
  EXPECT_EQ(objects[1]["name"], "@PLC1@ConnectionState");
  EXPECT_EQ(objects[1]["value"], 2);
  EXPECT_EQ(objects.back()["value"], 43);
  for (const json& o : objects) {
    EXPECT_EQ(o["quality"], "good") << o.dump();
    EXPECT_FALSE(o.contains("reason")) << o.dump();
    EXPECT_TRUE(o["server_time"].is_string()) << o.dump();
    EXPECT_TRUE(o.contains("source_time")) << o.dump();
  }

  // --for ends it (exit 0); a bad quality shows its reason.
  auto forced = ctl({"tag", "set", "@PLC1@ForceConnectionState", "0"});
  ASSERT_EQ(forced.exit, 0) << forced.out;
  auto timed = ctl({"tag", "watch", "PLC1/Speed", "--for", "2s"});
  EXPECT_EQ(timed.exit, 0) << timed.out;
  EXPECT_TRUE(has(timed.out, "PLC1/Speed = 43 (bad: not-connected, ")) << timed.out;

  auto unknown = ctl({"tag", "watch", "PLC1/Speed", "Nope", "--for", "10s"});
  EXPECT_EQ(unknown.exit, 1) << unknown.out;
  EXPECT_TRUE(has(unknown.out, "no tag named 'Nope'")) << unknown.out;
}

TEST_F(ScadactlClient, TagWaitHoldsAtOnceTimesOutOrRefusesTheCondition) {
  start();
  connected_with_speed("7");

  auto already = ctl({"tag", "wait", "PLC1/Speed", ">=", "7", "--timeout", "20s"});
  EXPECT_EQ(already.exit, 0) << already.out;
  EXPECT_TRUE(has(already.out, "PLC1/Speed = 7 (good)")) << already.out;
  auto json_form = ctl({"tag", "wait", "PLC1/Speed", "!=", "8", "--json"});
  EXPECT_EQ(json_form.exit, 0) << json_form.out;
  ASSERT_EQ(json_lines(json_form.out).size(), 1u) << json_form.out;
  EXPECT_EQ(json_lines(json_form.out)[0]["value"], 7);
  auto boolean = ctl({"tag", "wait", "PLC1/Run", "==", "false", "--timeout", "10s"});
  EXPECT_EQ(boolean.exit, 0) << boolean.out;
  auto text =
      ctl({"tag", "wait", "@PLC1@CurrentAddress",
           "==", "127.0.0.1:" + std::to_string(plc1_->port()) + " (original)", "--timeout", "10s"});
  EXPECT_EQ(text.exit, 0) << text.out;

  auto never = ctl({"tag", "wait", "PLC1/Speed", ">", "60000", "--timeout", "2000ms"});
  EXPECT_EQ(never.exit, 1) << never.out;
  EXPECT_TRUE(has(never.out, "PLC1/Speed > 60000 did not hold within 2 s; last 7 (good)"))
      << never.out;

  auto now_true = ctl({"tag", "wait", "PLC1/Speed", "==", "7", "--timeout", "0"});
  EXPECT_EQ(now_true.exit, 0) << now_true.out;
  auto now_false = ctl({"tag", "wait", "PLC1/Speed", "==", "8", "--timeout", "0"});
  EXPECT_EQ(now_false.exit, 1) << now_false.out;
  EXPECT_TRUE(has(now_false.out, "PLC1/Speed == 8 does not hold; last 7 (good)")) << now_false.out;

  auto unknown = ctl({"tag", "wait", "Nope", "==", "1", "--timeout", "10s"});
  EXPECT_EQ(unknown.exit, 1) << unknown.out;
  EXPECT_TRUE(has(unknown.out, "no tag named 'Nope'")) << unknown.out;

  for (const std::vector<std::string>& bad : std::vector<std::vector<std::string>>{
           {"tag", "wait", "PLC1/Speed", "=~", "7"},
           {"tag", "wait", "PLC1/Speed", "<", "seven"},
           {"tag", "wait", "PLC1/Speed", "==", "seven"},
           {"tag", "wait", "PLC1/Run", ">", "0"},
           {"tag", "wait", "PLC1/Run", "==", "maybe"},
           {"tag", "wait", "@PLC1@CurrentAddress", "<=", "5"},
           {"tag", "wait", "PLC1/Speed", "==", "7", "--timeout", "5x"},
       }) {
    auto r = ctl(bad);
    EXPECT_EQ(r.exit, 2) << ::testing::PrintToString(bad) << "\n" << r.out;
  }
}

TEST_F(ScadactlClient, CertUntrustMovesTheFileBackAndClosesTheLiveSession) {
  start(true);
  connected_with_speed("5");
  const std::string fp = plc1_self_.sha256;

  auto listed = ctl({"cert", "list", "--kind", "trusted", "--json"});
  EXPECT_EQ(listed.exit, 0) << listed.out;
  bool in_use = false;
  for (const json& c : json_lines(listed.out)) {
    if (c["fingerprint"] == fp) in_use = c["in_use_by"] == json::array({"PLC1"});
  }
  EXPECT_TRUE(in_use) << listed.out;

  auto untrusted = ctl({"cert", "untrust", fp});
  EXPECT_EQ(untrusted.exit, 0) << untrusted.out;
  EXPECT_TRUE(has(untrusted.out, "device-certificate-store/untrusted/")) << untrusted.out;

  auto closed = ctl({"tag", "wait", "@PLC1@ConnectionState", "!=", "2", "--timeout", "10s"});
  EXPECT_EQ(closed.exit, 0) << closed.out;
  auto why = ctl({"events", "--kind", "connection-error"});
  EXPECT_EQ(why.exit, 0) << why.out;
  EXPECT_TRUE(has(why.out, "failed: revoked: the live session was closed")) << why.out;
  auto now = ctl({"cert", "list", "--json"});
  bool quarantined = false;
  for (const json& c : json_lines(now.out)) {
    if (c["fingerprint"] == fp) quarantined = c["kind"] == "quarantined";
  }
  EXPECT_TRUE(quarantined) << now.out;

  // Unknown and malformed fingerprints.
  auto again = ctl({"cert", "untrust", fp});
  EXPECT_EQ(again.exit, 1) << again.out;
  auto missing = ctl({"cert", "trust", "0123456789abcdef"});
  EXPECT_EQ(missing.exit, 1) << missing.out;
  auto short_one = ctl({"cert", "trust", "abc"});
  EXPECT_EQ(short_one.exit, 2) << short_one.out;
  auto not_hex = ctl({"cert", "trust", "xyzxyzxyzxyz"});
  EXPECT_EQ(not_hex.exit, 2) << not_hex.out;

  // Trusted again (with colons, upper case): the connection comes back by itself.
  std::string colons;
  for (std::size_t i = 0; i < 16; i += 2) colons += (i ? ":" : "") + fp.substr(i, 2);
  for (char& c : colons) c = char(std::toupper(static_cast<unsigned char>(c)));
  auto back = ctl({"cert", "trust", colons});
  EXPECT_EQ(back.exit, 0) << back.out;
  auto up = ctl({"tag", "wait", "@PLC1@ConnectionState", "==", "2", "--timeout", "15s"});
  EXPECT_EQ(up.exit, 0) << up.out;
}

TEST_F(ScadactlClient, EventsFollowPrintsWhatHappensWhileFollowing) {
  start();
  connected_with_speed("1");

  // The write happens once the follower printed the last event (its first request is done).
  auto follow = ctl_started({"events", "--follow", "--last", "1", "--for", "4s"});
  ASSERT_TRUE(follow->wait_for_output("\n", 10s)) << follow->output();
  auto set = ctl({"tag", "set", "PLC1/Speed", "99"});
  ASSERT_EQ(set.exit, 0) << set.out;
  const auto end = follow->finish(0, 15s);
  EXPECT_EQ(end.exit, 0) << end.out;
  const auto lines = lines_of(end.out);
  EXPECT_EQ(std::count_if(lines.begin(), lines.end(),
                          [](const std::string& line) {
                            return has(line, " tag-write PLC1/Speed: 99 by 127.0.0.1:");
                          }),
            1)
      << end.out;

  // --kind and --json, ended by SIGTERM; the earlier write of 1 is among the last 5 events.
  auto kind = ctl_started({"events", "--follow", "--last", "5", "--kind", "tag-write", "--json"});
  ASSERT_TRUE(kind->wait_for_output("PLC1/Speed", 10s)) << kind->output();
  auto forced = ctl({"tag", "set", "@PLC1@ForceConnectionState", "0"});
  ASSERT_EQ(forced.exit, 0) << forced.out;
  ASSERT_TRUE(kind->wait_for_output("@PLC1@ForceConnectionState", 10s)) << kind->output();
  const auto stopped = kind->finish(SIGTERM, 10s);
  EXPECT_EQ(stopped.exit, 0) << stopped.out;
  const auto objects = json_lines(stopped.out);
  ASSERT_FALSE(objects.empty()) << stopped.out;
  for (const json& e : objects) {
    EXPECT_EQ(e["kind"], "tag-write") << stopped.out;
    EXPECT_TRUE(e["id"].is_number()) << stopped.out;
  }

  auto lonely_for = ctl({"events", "--for", "1s"});
  EXPECT_EQ(lonely_for.exit, 2) << lonely_for.out;
}

TEST_F(ScadactlClient, TagSetNamesWhyAWriteWasRefused) {
  start();
  connected_with_speed("3");
  auto wrong_type = ctl({"tag", "set", "PLC1/Speed", "abc"});
  EXPECT_EQ(wrong_type.exit, 1) << wrong_type.out;
  EXPECT_TRUE(has(wrong_type.out, "scadactl tag set: ")) << wrong_type.out;
  EXPECT_TRUE(has(wrong_type.out, "abc")) << wrong_type.out;
  auto too_big = ctl({"tag", "set", "PLC1/Speed", "70000"});
  EXPECT_EQ(too_big.exit, 1) << too_big.out;
  EXPECT_TRUE(has(too_big.out, "70000 does not fit Word (0..65535)")) << too_big.out;
  auto read_only = ctl({"tag", "set", "PLC1/Limit", "5"});
  EXPECT_EQ(read_only.exit, 1) << read_only.out;
  EXPECT_TRUE(has(read_only.out, "PLC1/Limit is read-only")) << read_only.out;
  auto unknown = ctl({"tag", "set", "Nope", "5", "--json"});
  EXPECT_EQ(unknown.exit, 1) << unknown.out;
  EXPECT_TRUE(has(unknown.out, "no tag named 'Nope'")) << unknown.out;
  ASSERT_EQ(json_lines(unknown.out).size(), 1u) << unknown.out;
  EXPECT_EQ(json_lines(unknown.out)[0]["ok"], false);

  // Not connected: the write reaches the connection and fails there.
  ASSERT_EQ(ctl({"tag", "set", "@PLC1@ForceConnectionState", "0"}).exit, 0);
  auto down = ctl({"tag", "set", "PLC1/Speed", "4"});
  EXPECT_EQ(down.exit, 1) << down.out;
  EXPECT_TRUE(has(down.out, "scadactl tag set: ")) << down.out;

  // A refused system-tag write stops a switch: exit 1 with scadad's words.
  auto no_alternative = ctl({"conn", "switch", "PLC1", "--to", "alternative", "--timeout", "2s"});
  EXPECT_EQ(no_alternative.exit, 1) << no_alternative.out;
  EXPECT_TRUE(has(no_alternative.out, "write the alternative address first")) << no_alternative.out;
  auto no_connection = ctl({"conn", "switch", "PLC9", "--to", "original"});
  EXPECT_EQ(no_connection.exit, 1) << no_connection.out;
  EXPECT_TRUE(has(no_connection.out, "no connection named 'PLC9'")) << no_connection.out;
  auto bad_address = ctl({"conn", "switch", "PLC1", "--to", "alternative", "--address", "Port=1"});
  EXPECT_EQ(bad_address.exit, 2) << bad_address.out;
}

TEST_F(ScadactlClient, TokenFromFileOrEnvironment) {
  const std::string token = "0123456789abcdef0123456789abcdef";
  start(false, token);
  const fs::path wrong = dir_.file("wrong.token");
  test::write_file(wrong, "not-the-token-at-all\n");

  auto without = ctl({"tag", "get", "PLC1/Speed"});
  EXPECT_EQ(without.exit, 2) << without.out;
  EXPECT_TRUE(has(without.out, "wants an API token")) << without.out;
  auto wrong_file = ctl({"conn", "list", "--token-file", wrong.string()});
  EXPECT_EQ(wrong_file.exit, 2) << wrong_file.out;
  EXPECT_TRUE(has(wrong_file.out, "token missing or wrong")) << wrong_file.out;
  auto wrong_env = ctl({"events", "--last", "1"}, "SCADA_API_TOKEN=not-the-token-at-all");
  EXPECT_EQ(wrong_env.exit, 2) << wrong_env.out;
  auto no_file = ctl({"conn", "list", "--token-file", dir_.file("none").string()});
  EXPECT_EQ(no_file.exit, 2) << no_file.out;

  auto with_file = ctl({"tag", "wait", "@PLC1@ConnectionState", "==", "2", "--timeout", "15s",
                        "--token-file", token_file_.string()});
  EXPECT_EQ(with_file.exit, 0) << with_file.out;
  auto with_env = ctl({"conn", "list"}, "SCADA_API_TOKEN=" + token);
  EXPECT_EQ(with_env.exit, 0) << with_env.out;
  auto watch_without = ctl({"tag", "watch", "PLC1/Speed", "--count", "1"});
  EXPECT_EQ(watch_without.exit, 2) << watch_without.out;
  auto watch_with = ctl({"tag", "watch", "PLC1/Speed", "--count", "1"}, "SCADA_API_TOKEN=" + token);
  EXPECT_EQ(watch_with.exit, 0) << watch_with.out;
}

// Without a scadad: usage errors are 2 before anything is sent, an unreachable API is 3.
TEST(ScadactlClientAlone, UsageIsTwoAndNoScadadIsThree) {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor acceptor(
      io, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  const std::string api = "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port());
  acceptor.close();
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"tag", "watch", "PLC1/Speed"},
           {"tag", "wait", "PLC1/Speed", "==", "1"},
           {"tag", "set", "PLC1/Speed", "1"},
           {"conn", "switch", "PLC1", "--to", "original"},
           {"cert", "list"},
           {"cert", "trust", "0123456789abcdef"},
           {"events", "--follow", "--for", "5s"},
       }) {
    std::vector<std::string> full = args;
    full.insert(full.end(), {"--api", api});
    auto r = test::run_child(kScadactl, full);
    EXPECT_EQ(r.exit, 3) << ::testing::PrintToString(args) << "\n" << r.out;
    EXPECT_TRUE(has(r.out, "cannot reach scadad at " + api)) << r.out;
  }
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"tag", "wait", "X", "=~", "1", "--api", api},
           {"tag", "watch", "X", "--for", "soon", "--api", api},
           {"tag", "watch", "--api", api},
           {"conn", "switch", "PLC1", "--to", "sideways", "--api", api},
           {"conn", "switch", "PLC1", "--to", "original", "--timeout", "-1s", "--api", api},
           {"cert", "list", "--kind", "mine", "--api", api},
           {"cert", "untrust", "12:34", "--api", api},
           {"events", "--last", "x", "--api", api},
           {"tag", "get", "X", "--api", "nonsense"},
       }) {
    auto r = test::run_child(kScadactl, args);
    EXPECT_EQ(r.exit, 2) << ::testing::PrintToString(args) << "\n" << r.out;
  }
  auto help = test::run_child(kScadactl, {"tag", "wait", "--help"});
  EXPECT_EQ(help.exit, 0) << help.out;
  EXPECT_TRUE(has(help.out, "Exit 0 when it holds")) << help.out;
}

}  // namespace
}  // namespace scada::runtime
