// scadad as a real process: a project imported from a bundle, a plcsim PLC in tls mode whose CA
// the bundle carries; connected, logged, and stopped by SIGTERM with close_notify.
#include <gtest/gtest.h>

#include <csignal>

#include "child_process.h"
#include "connection_fixture.h"
#include "importer/importer.h"

namespace scada::runtime {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

const std::string kScadad = SCADA_BIN_DIR "/scadad";

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
        "    <Symbols><Symbol name=\"Speed\" address=\"DB1.DBW0\" type=\"Word\"/></Symbols>\n"
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
  test::Child scadad(kScadad, {"--project", project_dir().string()});
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
  test::Child scadad(kScadad, {"--project", project_dir().string()});
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

TEST(ScadadOptions, BadOptionsExitTwoWithTheReason) {
  test::TempDir dir;
  auto r = test::run_child(kScadad, {"--project", (dir.path() / "none").string()});
  EXPECT_EQ(r.exit, 2);
  EXPECT_NE(r.out.find("is not a project"), std::string::npos) << r.out;
  importer::Project::init(dir.path() / "p");
  r = test::run_child(kScadad, {"--project", (dir.path() / "p").string(), "--log-level", "loud"});
  EXPECT_EQ(r.exit, 2);
  EXPECT_NE(r.out.find("--log-level must be debug, info, warning or error"), std::string::npos);
  r = test::run_child(kScadad,
                      {"--project", (dir.path() / "p").string(), "--api", "127.0.0.1:8080"});
  EXPECT_EQ(r.exit, 2);
  EXPECT_NE(r.out.find("not built yet"), std::string::npos) << r.out;
  r = test::run_child(kScadad, {"--help"});
  EXPECT_EQ(r.exit, 0);
  EXPECT_NE(r.out.find("--project"), std::string::npos);
}

}  // namespace
}  // namespace scada::runtime
