// scadad as a real process: a project imported from a bundle, a plcsim PLC in tls mode whose CA
// the bundle carries; connected, logged, and stopped by SIGTERM with close_notify.
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <nlohmann/json.hpp>

#include <csignal>
#include <thread>

#include "api_call.h"
#include "child_process.h"
#include "connection_fixture.h"
#include "importer/importer.h"

namespace scada::runtime {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

const std::string kScadad = SCADA_BIN_DIR "/scadad";

// One HTTP request to the API: the status and the JSON answer.
std::pair<int, nlohmann::json> call(std::uint16_t port, boost::beast::http::verb verb,
                                    const std::string& target, const std::string& body = "") {
  auto reply = test_api::call(port, verb, target, body);
  return {reply.status, std::move(reply.body)};
}

class Scadad : public ::testing::Test {
 protected:
  void SetUp() override {
    importer::Project::init(project_dir());
    plcsim::PlcConfig config;
    config.mode = channel::SecurityMode::tls;
    config.tls.certificate = files_.certificate_file;
    config.tls.key = files_.key_file;
    sim_ = std::make_unique<plcsim::Simulator>(std::vector<plcsim::PlcConfig>{config}, "127.0.0.1",
                                               0, plc_log_.sink());
    const std::string document =
        "<ScadaExport formatVersion=\"1\" tool=\"test\" project=\"scadad\" "
        "exportedAt=\"2026-11-22T00:00:00Z\">\n"
        "  <Plc name=\"PLC1\" firmware=\"V2.9.4\">\n"
        "    <Connection address=\"127.0.0.1\" port=\"" +
        std::to_string(sim_->plc(0).port()) +
        "\" security=\"tls\"/>\n"
        "    <Certificates><Certificate role=\"ca\" encoding=\"pem\">" +
        files_.ca.certificate_pem() +
        "</Certificate></Certificates>\n"
        "    <Symbols><Symbol name=\"Speed\" address=\"DB1.DBW0\" type=\"Word\" access=\"rw\" "
        "cycle=\"100ms\"/></Symbols>\n"
        "  </Plc>\n</ScadaExport>\n";
    auto bundle = importer::parse_bundle(document, std::nullopt);
    for (const auto& p : bundle.problems) ADD_FAILURE() << p.to_string();
    ASSERT_TRUE(bundle.ok());
    auto project = importer::Project::open(project_dir());
    importer::apply_import(project, *bundle.bundle, importer::plan_import(*bundle.bundle, project));
  }

  fs::path project_dir() const { return dir_.path() / "project"; }

  test::TempDir dir_;
  test::ServerTlsFiles files_{dir_, "plc1"};
  test::PlcLog plc_log_;
  std::unique_ptr<plcsim::Simulator> sim_;
};

TEST_F(Scadad, ConnectsLogsAndStopsCleanlyOnSigterm) {
  test::Child scadad(kScadad, {"--project", project_dir().string(), "--api", "off"});
  ASSERT_TRUE(scadad.wait_for_output(
      "PLC1: connected (127.0.0.1:" + std::to_string(sim_->plc(0).port()) + " (original))", 15s))
      << scadad.output();
  EXPECT_NE(
      scadad.output().find("scadad: project " + project_dir().string() + ", 1 connections, 1 tags"),
      std::string::npos)
      << scadad.output();
  EXPECT_EQ(sim_->plc(0).connections(), 1u);

  const test::ChildOutcome end = scadad.finish(SIGTERM, 10s);
  EXPECT_EQ(end.exit, 0) << end.out;
  EXPECT_NE(end.out.find("scadad: SIGTERM, closing sessions"), std::string::npos) << end.out;
  EXPECT_NE(end.out.find("scadad: stopped"), std::string::npos) << end.out;
  EXPECT_TRUE(plc_log_.wait_for("close_notify", 5s)) << plc_log_.text();

  // The event log in project.db.
  auto project = importer::Project::open(project_dir());
  std::vector<std::string> kinds;
  for (const auto& e : project.events()) kinds.push_back(e.kind + " " + e.detail.substr(0, 9));
  const auto has = [&](const std::string& prefix) {
    return std::any_of(kinds.begin(), kinds.end(),
                       [&](const std::string& k) { return k.rfind(prefix, 0) == 0; });
  };
  EXPECT_TRUE(has("start ")) << ::testing::PrintToString(kinds);
  EXPECT_TRUE(has("connection-state connected")) << ::testing::PrintToString(kinds);
  EXPECT_TRUE(has("stop SIGTERM")) << ::testing::PrintToString(kinds);
}

TEST_F(Scadad, AConnectionFailureIsLoggedWithItsReason) {
  // The CA goes: the PLC's certificate is from an unknown CA now (quarantined).
  for (const auto& e : fs::directory_iterator(project_dir() / "pki" / "roots"))
    fs::remove(e.path());
  test::Child scadad(kScadad, {"--project", project_dir().string(), "--api", "off"});
  ASSERT_TRUE(scadad.wait_for_output("PLC1: connection to 127.0.0.1:", 15s)) << scadad.output();
  EXPECT_TRUE(scadad.wait_for_output("failed: unknown-ca; quarantined as untrusted/", 5s))
      << scadad.output();
  EXPECT_TRUE(scadad.wait_for_output("PLC1: error, waiting to retry", 5s)) << scadad.output();
  const test::ChildOutcome end = scadad.finish(SIGINT, 10s);
  EXPECT_EQ(end.exit, 0) << end.out;
  auto project = importer::Project::open(project_dir());
  bool logged = false;
  for (const auto& e : project.events()) {
    logged |= e.kind == "connection-error" && e.detail.find("unknown-ca") != std::string::npos;
  }
  EXPECT_TRUE(logged);
}

// --dead-peer-timeout reaches every connection: a PLC that stops answering is given up after
// about 1 s, not the default 3 s (the session ends once nothing came for 90 % of the bound).
TEST_F(Scadad, TheDeadPeerBoundIsAnOption) {
  test::Child scadad(kScadad, {"--project", project_dir().string(), "--api", "off",
                               "--dead-peer-timeout", "1s", "--retry-max", "2s"});
  ASSERT_TRUE(scadad.wait_for_output("PLC1: connected", 15s)) << scadad.output();
  EXPECT_NE(scadad.output().find("scadad: connections: dead peer after 1s, attempts bounded by "
                                 "5s, retries up to 2s apart"),
            std::string::npos)
      << scadad.output();
  sim_->plc(0).set_faults({.stall = true});
  const std::string words = "nothing received from the PLC for ";
  ASSERT_TRUE(scadad.wait_for_output(words, 15s)) << scadad.output();
  const std::string out = scadad.output();
  const long silent = std::stol(out.substr(out.find(words) + words.size()));
  EXPECT_GE(silent, 900) << out;
  EXPECT_LT(silent, 2700) << "the default bound (3 s) ends a session after 2700 ms\n" << out;
  sim_->plc(0).set_faults({});
  const auto connected_twice = [&] {
    const std::string text = scadad.output();
    const auto first = text.find("PLC1: connected");
    return first != std::string::npos &&
           text.find("PLC1: connected", first + 1) != std::string::npos;
  };
  for (int i = 0; i < 300 && !connected_twice(); ++i) std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(connected_twice()) << "not back once the PLC answers:\n" << scadad.output();
  EXPECT_EQ(scadad.finish(SIGTERM, 10s).exit, 0);
}

TEST_F(Scadad, ControlApiReadsWritesAndSwitches) {
  sim_->plc(0).write(channel::Area::data_block, 1, 0, channel::Bytes{0x04, 0x57});  // 1111
  test::Child scadad(kScadad, {"--project", project_dir().string(), "--api", "127.0.0.1:0"});
  ASSERT_TRUE(scadad.wait_for_output("PLC1: connected", 15s)) << scadad.output();
  ASSERT_TRUE(scadad.wait_for_output("api: listening on 127.0.0.1:", 5s)) << scadad.output();
  const std::string out = scadad.output();
  const auto at = out.find("api: listening on 127.0.0.1:") + 28;
  const auto port = static_cast<std::uint16_t>(std::stoi(out.substr(at, out.find('\n', at) - at)));
  namespace http = boost::beast::http;

  nlohmann::json tags;
  for (int i = 0; i < 200; ++i) {  // the first read comes with the first cycle
    auto [status, body] = call(port, http::verb::get, "/api/tags?name=PLC1%2FSpeed");
    ASSERT_EQ(status, 200);
    tags = body;
    if (body["tags"][0]["quality"] == "good") break;
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(tags["tags"].size(), 1u) << tags.dump();
  EXPECT_EQ(tags["tags"][0]["value"], 1111) << tags.dump();
  EXPECT_EQ(tags["tags"][0]["quality"], "good");
  EXPECT_EQ(tags["tags"][0]["type"], "Word");
  EXPECT_TRUE(tags["tags"][0]["source_time"].is_string());

  auto [status, written] = call(port, http::verb::post, "/api/tags",
                                R"({"writes": [{"name": "PLC1/Speed", "value": 1234},
                                               {"name": "PLC1/Speed", "value": "70000"},
                                               {"name": "@PLC1@ConnectionState", "value": 0}]})");
  ASSERT_EQ(status, 200);
  ASSERT_EQ(written["results"].size(), 3u) << written.dump();
  EXPECT_EQ(written["results"][0]["ok"], true) << written.dump();
  EXPECT_EQ(written["results"][1]["error"], "PLC1/Speed: 70000 does not fit Word (0..65535)");
  EXPECT_EQ(written["results"][2]["error"], "@PLC1@ConnectionState is read-only");
  EXPECT_EQ(sim_->plc(0).read(channel::Area::data_block, 1, 0, 2), (channel::Bytes{0x04, 0xD2}));

  auto [cs, connections] = call(port, http::verb::get, "/api/connections");
  ASSERT_EQ(cs, 200);
  EXPECT_EQ(connections["connections"][0]["name"], "PLC1");
  EXPECT_EQ(connections["connections"][0]["ConnectionState"], 2) << connections.dump();

  // The hardware-swap procedure's first step through the API: Force 0.
  auto [fs_status, forced] = call(port, http::verb::post, "/api/tags",
                                  R"({"name": "@PLC1@ForceConnectionState", "value": 0})");
  EXPECT_EQ(forced["results"][0]["ok"], true) << forced.dump();
  auto [cs2, after] = call(port, http::verb::get, "/api/connections");
  EXPECT_EQ(after["connections"][0]["ConnectionState"], 0) << after.dump();
  EXPECT_TRUE(plc_log_.wait_for("close_notify", 5s));

  auto [es, events] = call(port, http::verb::get, "/api/events?last=20");
  ASSERT_EQ(es, 200);
  bool audited = false;
  for (const auto& e : events["events"]) {
    audited |= e["kind"] == "tag-write" && e["subject"] == "PLC1/Speed" &&
               e["detail"].get<std::string>().find("1234 by 127.0.0.1:") == 0;
  }
  EXPECT_TRUE(audited) << events.dump();

  // scadactl against the same scadad.
  const std::string api = "http://127.0.0.1:" + std::to_string(port);
  const std::string scadactl = SCADA_BIN_DIR "/scadactl";
  ASSERT_EQ(call(port, http::verb::post, "/api/tags",
                 R"({"name": "@PLC1@ForceConnectionState", "value": 1})")
                .first,
            200);
  ASSERT_TRUE(scadad.wait_for_output("PLC1: connected", 15s));
  test::ChildOutcome got;
  for (int i = 0; i < 200; ++i) {
    got = test::run_child(scadactl, {"tag", "get", "PLC1/Speed", "--api", api, "--json"});
    if (got.exit == 0) break;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(got.exit, 0) << got.out;
  EXPECT_EQ(got.out.rfind("{\"name\": \"PLC1/Speed\", \"value\": 1234, \"quality\": \"good\", "
                          "\"source_time\": \"",
                          0),
            0u)
      << got.out;
  auto set = test::run_child(scadactl, {"tag", "set", "PLC1/Speed", "16#10", "--api", api});
  EXPECT_EQ(set.exit, 0) << set.out;
  EXPECT_EQ(sim_->plc(0).read(channel::Area::data_block, 1, 0, 2), (channel::Bytes{0x00, 0x10}));
  set = test::run_child(scadactl, {"tag", "set", "PLC1/Speed", "-1", "--api", api});
  EXPECT_EQ(set.exit, 1);
  EXPECT_NE(set.out.find("-1 does not fit Word (0..65535)"), std::string::npos) << set.out;
  auto list = test::run_child(scadactl, {"conn", "list", "--api", api});
  EXPECT_EQ(list.exit, 0);
  EXPECT_NE(list.out.find("PLC1: connected, 127.0.0.1:"), std::string::npos) << list.out;
  auto log = test::run_child(scadactl, {"events", "--last", "5", "--api", api});
  EXPECT_EQ(log.exit, 0);
  EXPECT_NE(log.out.find("tag-write PLC1/Speed: 16#10 by 127.0.0.1:"), std::string::npos)
      << log.out;
  auto missing_tag = test::run_child(scadactl, {"tag", "get", "Nope", "--api", api});
  EXPECT_EQ(missing_tag.exit, 1);
  EXPECT_NE(missing_tag.out.find("no tag named 'Nope'"), std::string::npos);

  auto [bad, refused] = call(port, http::verb::post, "/api/tags", "not json");
  EXPECT_EQ(bad, 400);
  auto [missing, nothing] = call(port, http::verb::get, "/api/tags?name=Nope");
  EXPECT_EQ(missing, 404);
  EXPECT_EQ(nothing["error"], "no tag named 'Nope'");
  const test::ChildOutcome end = scadad.finish(SIGTERM, 10s);
  EXPECT_EQ(end.exit, 0) << end.out;
}

TEST(ScadactlClient, UnreachableScadadIsExitThree) {
  // A port where nothing listens.
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor acceptor(
      io, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  const std::string api = "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port());
  acceptor.close();
  auto r = test::run_child(SCADA_BIN_DIR "/scadactl", {"tag", "get", "X", "--api", api});
  EXPECT_EQ(r.exit, 3);
  EXPECT_NE(r.out.find("cannot reach scadad at " + api), std::string::npos) << r.out;
  r = test::run_child(SCADA_BIN_DIR "/scadactl", {"conn", "list", "--api", "nonsense"});
  EXPECT_EQ(r.exit, 2);
  EXPECT_NE(r.out.find("--api takes http://HOST:PORT"), std::string::npos) << r.out;
}

TEST(ScadadOptions, BadOptionsExitTwoWithTheReason) {
  test::TempDir dir;
  auto r = test::run_child(kScadad, {"--project", (dir.path() / "none").string()});
  EXPECT_EQ(r.exit, 2);
  EXPECT_NE(r.out.find("is not a project"), std::string::npos) << r.out;
  importer::Project::init(dir.path() / "p");
  r = test::run_child(kScadad, {"--project", (dir.path() / "p").string(), "--log-level", "loud"});
  EXPECT_EQ(r.exit, 2);
  EXPECT_NE(r.out.find("--log-level must be debug, info, warning or error"), std::string::npos);
  r = test::run_child(kScadad, {"--project", (dir.path() / "p").string(), "--api", "0.0.0.0:0"}, "",
                      20s);
  EXPECT_EQ(r.exit, 2);
  EXPECT_NE(r.out.find("a non-loopback address needs a token"), std::string::npos) << r.out;
  r = test::run_child(kScadad, {"--project", (dir.path() / "p").string(), "--api", "localhost"}, "",
                      20s);
  EXPECT_EQ(r.exit, 2);
  EXPECT_NE(r.out.find("ADDRESS:PORT"), std::string::npos) << r.out;
  for (const auto& [option, value, words] :
       {std::tuple{"--dead-peer-timeout", "50ms",
                   "--dead-peer-timeout must be between 100ms and 1h"},
        std::tuple{"--connect-timeout", "2h", "--connect-timeout must be between 500ms and 1h"},
        std::tuple{"--retry-max", "soon",
                   "--retry-max: a duration is a number with ms, s, m or h"}}) {
    r = test::run_child(kScadad, {"--project", (dir.path() / "p").string(), option, value});
    EXPECT_EQ(r.exit, 2) << option;
    EXPECT_NE(r.out.find(words), std::string::npos) << r.out;
  }
  r = test::run_child(kScadad, {"--help"});
  EXPECT_EQ(r.exit, 0);
  EXPECT_NE(r.out.find("--project"), std::string::npos);
}

}  // namespace
}  // namespace scada::runtime
