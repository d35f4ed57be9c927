// Importing bundles into a project: plan, apply, re-import, bad input, crash safety (a child
// scadactl killed at each step), and a running connection that comes up once the import
// brings the CA it needs (issue 6). Certificates are made while the tests run.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <map>
#include <thread>

#include "child_process.h"
#include "connection_fixture.h"
#include "importer/importer.h"
#include "test_pki.h"

namespace scada::importer {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace pki = certstore::test_pki;
using test::TempDir;

std::string base64(const channel::Bytes& der) {
  std::string out(4 * ((der.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), der.data(),
                                static_cast<int>(der.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

channel::Bytes der_of_pem(const std::string& pem) {
  auto parsed = certstore::parse_certificates(pki::to_bytes(pem), "test");
  return std::get<std::vector<certstore::CertificateInfo>>(parsed).at(0).der;
}

// A plant CA with a PLC certificate it issued (SAN 127.0.0.1), as PEM.
struct Plant {
  test::TestCa ca{"Import Test Root"};
  test::IssuedCertificate plc = ca.issue("PLC1");
  channel::Bytes ca_der = der_of_pem(ca.certificate_pem());
  channel::Bytes plc_der = der_of_pem(plc.certificate_pem);
};

std::string symbols_xml(const std::vector<std::string>& lines) {
  std::string out = "    <Symbols>\n";
  for (const auto& l : lines) out += "      " + l + "\n";
  return out + "    </Symbols>\n";
}

std::string document(const std::string& plcs) {
  return "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
         "<ScadaExport formatVersion=\"1\" tool=\"TIA Portal V17\" project=\"Plant A\"\n"
         "             exportedAt=\"2026-11-01T10:00:00Z\">\n" +
         plcs + "</ScadaExport>\n";
}

std::string plc_xml(const std::string& name, const std::string& connection,
                    const std::string& certificates, const std::string& symbols) {
  return "  <Plc name=\"" + name + "\" module=\"CPU 1516-3 PN/DP\" firmware=\"V2.9.4\">\n    " +
         connection + "\n    <Certificates>\n" + certificates + "    </Certificates>\n" + symbols +
         "  </Plc>\n";
}

class Import : public ::testing::Test {
 protected:
  void SetUp() override { Project::init(project_dir()); }
  fs::path project_dir() const { return dir_.path() / "project"; }
  Project project() const { return Project::open(project_dir()); }

  // The inline form: a CA as der-base64, the PLC certificate as PEM.
  std::string inline_bundle(const std::vector<std::string>& symbols) const {
    const std::string certificates =
        "      <Certificate role=\"ca\" encoding=\"der-base64\">" + base64(plant_.ca_der) +
        "</Certificate>\n      <Certificate role=\"plc\" encoding=\"pem\">" +
        plant_.plc.certificate_pem + "</Certificate>\n";
    return document(
        plc_xml("PLC1",
                "<Connection address=\"192.168.0.10\" port=\"102\" rack=\"0\" slot=\"1\" "
                "security=\"s7-secure\"/>",
                certificates, symbols_xml(symbols)));
  }

  fs::path write_bundle(const std::string& name, const std::string& text) const {
    const fs::path file = dir_.path() / name;
    fs::create_directories(file.parent_path());
    test::write_file(file, text);
    return file;
  }

  BundleResult read(const fs::path& path) const {
    BundleResult r = read_bundle(path);
    for (const auto& p : r.problems) ADD_FAILURE() << p.to_string();
    return r;
  }

  void import(const fs::path& path) {
    BundleResult r = read(path);
    ASSERT_TRUE(r.ok());
    Project p = project();
    apply_import(p, *r.bundle, plan_import(*r.bundle, p));
  }

  TempDir dir_;
  Plant plant_;
};

const std::vector<std::string> kSymbols = {
    R"(<Symbol name="Line1.Motor.Speed" address="DB10.DBD4" type="Real" access="rw" cycle="500ms" comment="rpm"/>)",
    R"(<Symbol name="Line1.Motor.Running" address="DB10.DBX0.0" type="Bool"/>)",
    R"(<Symbol name="Line1.Counter" address="MW20" type="Int"/>)",
};

TEST_F(Import, InitCreatesAnEmptyProjectAndRefusesASecond) {
  Project p = project();
  EXPECT_TRUE(p.connections().empty());
  EXPECT_TRUE(p.tags().empty());
  EXPECT_TRUE(fs::is_directory(p.layout().roots));
  EXPECT_TRUE(fs::is_directory(p.layout().trusted()));
  EXPECT_EQ(fs::status(project_dir() / "project.db").permissions() & fs::perms::others_read,
            fs::perms::none);
  ASSERT_EQ(p.events().size(), 1u);
  EXPECT_EQ(p.events()[0].kind, "project-init");
  EXPECT_THROW(Project::init(project_dir()), ProjectError);
  try {
    Project::open(dir_.path() / "nothing");
    ADD_FAILURE() << "opened a folder without a project";
  } catch (const ProjectError& e) {
    EXPECT_NE(std::string(e.what()).find("is not a project"), std::string::npos) << e.what();
  }
}

TEST_F(Import, InlineBundleLandsExactlyInDatabaseAndStore) {
  import(write_bundle("plant.scadaexport.xml", inline_bundle(kSymbols)));
  Project p = project();
  const auto connections = p.connections();
  ASSERT_EQ(connections.size(), 1u);
  EXPECT_EQ(connections[0].name, "PLC1");
  EXPECT_EQ(connections[0].address, "192.168.0.10");
  EXPECT_EQ(connections[0].port, 102);
  EXPECT_EQ(connections[0].security, channel::SecurityMode::s7_secure);
  EXPECT_EQ(connections[0].firmware, "V2.9.4");
  EXPECT_EQ(connections[0].force_connection_state, 1u);

  const auto tags = p.tags();
  ASSERT_EQ(tags.size(), 3u);
  EXPECT_EQ(tags[0].name, "PLC1/Line1.Counter");
  EXPECT_EQ(tags[0].address, "MW20");
  EXPECT_EQ(tags[0].type, "Int");
  EXPECT_EQ(tags[0].access, tags::Access::read);
  EXPECT_EQ(tags[0].cycle, 1000ms);
  EXPECT_EQ(tags[2].name, "PLC1/Line1.Motor.Speed");
  EXPECT_EQ(tags[2].address, "DB10.DBD4");
  EXPECT_EQ(tags[2].type, "Real");
  EXPECT_EQ(tags[2].access, tags::Access::read_write);
  EXPECT_EQ(tags[2].cycle, 500ms);
  EXPECT_EQ(tags[2].comment, "rpm");

  const fs::path root = p.layout().roots / (certstore::fingerprint_sha256(plant_.ca_der) + ".der");
  const fs::path pin =
      p.layout().trusted() / (certstore::fingerprint_sha256(plant_.plc_der) + ".der");
  std::ifstream in(root, std::ios::binary);
  const channel::Bytes stored{std::istreambuf_iterator<char>(in), {}};
  EXPECT_EQ(stored, plant_.ca_der);
  EXPECT_TRUE(fs::exists(pin));
  std::size_t files = 0;
  for (const auto& folder : {p.layout().roots, p.layout().trusted()}) {
    for (const auto& e : fs::directory_iterator(folder)) files += e.is_regular_file();
  }
  EXPECT_EQ(files, 2u) << "exactly the two certificates, no temporary files";

  const auto events = p.events();
  ASSERT_EQ(events.back().kind, "import");
  EXPECT_NE(events.back().detail.find("tool 'TIA Portal V17', project 'Plant A', exported "
                                      "2026-11-01T10:00:00Z"),
            std::string::npos)
      << events.back().detail;
}

TEST_F(Import, FolderBundleWithDerAndPemFiles) {
  const fs::path folder = dir_.path() / "bundle";
  fs::create_directories(folder / "certs");
  test::write_file(folder / "certs" / "root.der",
                   std::string(plant_.ca_der.begin(), plant_.ca_der.end()));
  test::write_file(folder / "certs" / "plc1.pem", plant_.plc.certificate_pem);
  const std::string certificates =
      "      <Certificate role=\"ca\" file=\"certs/root.der\"/>\n"
      "      <Certificate role=\"plc\" file=\"certs/plc1.pem\"/>\n";
  test::write_file(folder / "plant.scadaexport.xml",
                   document(plc_xml("PLC1", "<Connection address=\"plc1.plant\" security=\"tls\"/>",
                                    certificates, symbols_xml(kSymbols))));
  import(folder);
  Project p = project();
  ASSERT_EQ(p.connections().size(), 1u);
  EXPECT_EQ(p.connections()[0].address, "plc1.plant");
  EXPECT_EQ(p.connections()[0].security, channel::SecurityMode::tls);
  EXPECT_EQ(p.tags().size(), 3u);
  EXPECT_TRUE(
      fs::exists(p.layout().roots / (certstore::fingerprint_sha256(plant_.ca_der) + ".der")));
  EXPECT_TRUE(
      fs::exists(p.layout().trusted() / (certstore::fingerprint_sha256(plant_.plc_der) + ".der")));
}

TEST_F(Import, ReimportChangesNothingAndAChangedBundleExactlyTheDifferences) {
  const fs::path first = write_bundle("a/plant.scadaexport.xml", inline_bundle(kSymbols));
  import(first);
  {
    Project p = project();
    BundleResult again = read(first);
    const ImportPlan plan = plan_import(*again.bundle, p);
    EXPECT_FALSE(plan.changes_anything());
    EXPECT_EQ(plan.new_certificates(), 0u);
    EXPECT_EQ(plan.certificates.size(), 2u);
  }
  // Speed changes its type, Running goes, Valve comes.
  const std::vector<std::string> changed = {
      R"(<Symbol name="Line1.Motor.Speed" address="DB10.DBD4" type="DInt" access="rw" cycle="500ms" comment="rpm"/>)",
      R"(<Symbol name="Line1.Counter" address="MW20" type="Int"/>)",
      R"(<Symbol name="Line1.Valve" address="Q0.1" type="Bool" access="rw"/>)",
  };
  const fs::path second = write_bundle("b/plant.scadaexport.xml", inline_bundle(changed));
  Project p = project();
  BundleResult r = read(second);
  const ImportPlan plan = plan_import(*r.bundle, p);
  EXPECT_TRUE(plan.connections.empty());
  ASSERT_EQ(plan.tags.size(), 3u);
  std::map<std::string, TagChange> by_name;
  for (const auto& t : plan.tags) by_name.emplace(t.name, t);
  EXPECT_EQ(by_name.at("PLC1/Line1.Motor.Speed").kind, ChangeKind::change);
  EXPECT_EQ(by_name.at("PLC1/Line1.Motor.Speed").fields, std::vector<std::string>{"type"});
  EXPECT_EQ(by_name.at("PLC1/Line1.Motor.Running").kind, ChangeKind::remove);
  EXPECT_EQ(by_name.at("PLC1/Line1.Valve").kind, ChangeKind::add);
  apply_import(p, *r.bundle, plan);
  const auto tags = p.tags();
  ASSERT_EQ(tags.size(), 3u);
  EXPECT_EQ(tags[1].name, "PLC1/Line1.Motor.Speed");
  EXPECT_EQ(tags[1].type, "DInt");
  EXPECT_EQ(tags[2].name, "PLC1/Line1.Valve");
  EXPECT_FALSE(plan_import(*r.bundle, p).changes_anything());

  // A bundle without PLC1 but with PLC2: PLC1 and its tags go, PLC2 comes; certificates stay.
  const fs::path third = write_bundle(
      "c/plant.scadaexport.xml",
      document(plc_xml("PLC2", "<Connection address=\"10.0.0.2\" port=\"1102\" security=\"none\"/>",
                       "",
                       symbols_xml({R"(<Symbol name="Level" address="DB1.DBW0" type="Word"/>)"}))));
  BundleResult r3 = read(third);
  const ImportPlan plan3 = plan_import(*r3.bundle, p);
  ASSERT_EQ(plan3.connections.size(), 2u);
  apply_import(p, *r3.bundle, plan3);
  ASSERT_EQ(p.connections().size(), 1u);
  EXPECT_EQ(p.connections()[0].name, "PLC2");
  EXPECT_EQ(p.connections()[0].port, 1102);
  ASSERT_EQ(p.tags().size(), 1u);
  EXPECT_EQ(p.tags()[0].name, "PLC2/Level");
  EXPECT_TRUE(
      fs::exists(p.layout().roots / (certstore::fingerprint_sha256(plant_.ca_der) + ".der")));
}

// ---------------------------------------------------------------------------------------------
// scadactl import as a process.

using Outcome = test::ChildOutcome;

Outcome scadactl(const std::vector<std::string>& args, const std::string& env = "") {
  return test::run_child(SCADA_BIN_DIR "/scadactl", args, env);
}

TEST_F(Import, CommandLineDryRunConfirmationAndJson) {
  const fs::path bundle = write_bundle("plant.scadaexport.xml", inline_bundle(kSymbols));
  Outcome dry =
      scadactl({"import", "--project", project_dir().string(), "--dry-run", bundle.string()});
  EXPECT_EQ(dry.exit, 0) << dry.out;
  EXPECT_NE(dry.out.find("Connections: 1 to add"), std::string::npos) << dry.out;
  EXPECT_NE(dry.out.find("Tags: 3 to add"), std::string::npos) << dry.out;
  EXPECT_NE(dry.out.find("SHA-256  " + certstore::fingerprint_sha256(plant_.ca_der)),
            std::string::npos)
      << dry.out;
  EXPECT_NE(dry.out.find("subject  CN=Import Test Root"), std::string::npos) << dry.out;
  EXPECT_NE(dry.out.find("Dry run: nothing was changed."), std::string::npos);
  EXPECT_TRUE(project().connections().empty());

  // New certificates need a confirmation; stdin says nothing.
  Outcome refused = scadactl({"import", "--project", project_dir().string(), bundle.string()});
  EXPECT_EQ(refused.exit, 3) << refused.out;
  EXPECT_NE(refused.out.find("--yes"), std::string::npos);
  EXPECT_TRUE(project().connections().empty());

  Outcome yes =
      scadactl({"import", "--project", project_dir().string(), "--yes", "--json", bundle.string()});
  EXPECT_EQ(yes.exit, 0) << yes.out;
  EXPECT_NE(yes.out.find("\"imported\": true"), std::string::npos) << yes.out;
  EXPECT_EQ(project().tags().size(), 3u);

  Outcome again = scadactl({"import", "--project", project_dir().string(), bundle.string()});
  EXPECT_EQ(again.exit, 0) << again.out;
  EXPECT_NE(again.out.find("Nothing to change"), std::string::npos) << again.out;
}

TEST_F(Import, AnInvalidBundleChangesNothing) {
  import(write_bundle("good.scadaexport.xml", inline_bundle(kSymbols)));
  const auto before_tags = project().tags();
  const auto before_events = project().events().size();
  std::vector<std::string> bad = kSymbols;
  bad.push_back(R"(<Symbol name="Broken" address="DB10.DBW6" type="Real"/>)");
  bad.push_back(R"(<Symbol name="New" address="DB10.DBW8" type="Int"/>)");
  const fs::path bundle = write_bundle("bad.scadaexport.xml", inline_bundle(bad));
  Outcome r = scadactl({"import", "--project", project_dir().string(), "--yes", bundle.string()});
  EXPECT_EQ(r.exit, 1) << r.out;
  EXPECT_NE(r.out.find("Broken"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("nothing was changed"), std::string::npos) << r.out;
  EXPECT_EQ(project().tags(), before_tags);
  EXPECT_EQ(project().events().size(), before_events);
}

// Every class of bad input of BUNDLE.md through the real command: exit 1, a message naming the
// problem, and the project exactly as before (database and certificate folders).
TEST_F(Import, EveryClassOfBadInputIsRefusedAndChangesNothing) {
  import(write_bundle("good.scadaexport.xml", inline_bundle(kSymbols)));
  const auto files_now = [&] {
    std::vector<std::string> names;
    for (const auto& folder : {project().layout().roots, project().layout().trusted()}) {
      for (const auto& e : fs::directory_iterator(folder)) names.push_back(e.path().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  };
  const auto connections = project().connections();
  const auto tags = project().tags();
  const auto events = project().events().size();
  const auto files = files_now();

  pki::KeyPtr key = pki::make_key(pki::KeyKind::ec_p256);
  pki::CertificateSpec leaf_spec;
  leaf_spec.subject = {{"CN", "not a CA"}};
  leaf_spec.not_before =
      std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()) - 1h;
  leaf_spec.not_after = leaf_spec.not_before + 48h;
  leaf_spec.ca = false;
  const std::string leaf_pem =
      pki::pem_of(pki::make_certificate(leaf_spec, key.get(), nullptr, key.get()).get());
  const auto plc_with = [&](const std::string& certificates, const std::string& extra = "",
                            const std::string& firmware = "V2.9.4",
                            const std::string& security = "tls") {
    return document("  <Plc name=\"PLC1\" firmware=\"" + firmware +
                    "\">\n    <Connection address=\"10.0.0.1\" security=\"" + security +
                    "\"/>\n    <Certificates>\n" + certificates + "    </Certificates>\n" + extra +
                    "  </Plc>\n");
  };
  const std::string ok_symbol =
      symbols_xml({R"(<Symbol name="A" address="DB1.DBW0" type="Int"/>)"});
  struct Case {
    std::string name, text, message_part;
  };
  const std::vector<Case> cases = {
      {"absolute path",
       plc_with(R"(      <Certificate role="ca" file="/etc/ssl/certs/ca-certificates.crt"/>
)"),
       "absolute"},
      {"dot-dot", plc_with(R"(      <Certificate role="ca" file="../outside.der"/>
)"),
       ".."},
      {"DTD",
       "<?xml version=\"1.0\"?>\n<!DOCTYPE ScadaExport [<!ENTITY a \"aaaa\">]>\n" +
           document("").substr(std::string("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n").size()),
       "DTD"},
      {"entity bomb",
       "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 "
       "\"&lol;&lol;&lol;&lol;\">]>\n<ScadaExport formatVersion=\"1\">&lol2;</ScadaExport>\n",
       "DTD"},
      {"external entity",
       "<?xml version=\"1.0\"?>\n<!DOCTYPE ScadaExport SYSTEM "
       "\"file:///etc/passwd\">\n<ScadaExport formatVersion=\"1\"/>\n",
       "DTD"},
      {"bad base64",
       plc_with(R"(      <Certificate role="ca" encoding="der-base64">MIIB*not/base64!</Certificate>
)"),
       "base64"},
      {"DER garbage",
       plc_with(R"(      <Certificate role="ca" encoding="der-base64">AAECAwQFBgcICQ==</Certificate>
)"),
       "Certificate"},
      {"PEM garbage",
       plc_with("      <Certificate role=\"ca\" encoding=\"pem\">-----BEGIN "
                "CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----</Certificate>\n"),
       "Certificate"},
      {"ca that is no CA",
       plc_with("      <Certificate role=\"ca\" encoding=\"pem\">" + leaf_pem + "</Certificate>\n"),
       "CA"},
      {"plc that is a CA",
       plc_with("      <Certificate role=\"plc\" encoding=\"pem\">" + plant_.ca.certificate_pem() +
                "</Certificate>\n"),
       "CA"},
      {"old firmware, secure", plc_with("", ok_symbol, "V2.8.3", "s7-secure"), "V2.8"},
      {"duplicate PLC",
       document("  <Plc name=\"P\"><Connection address=\"10.0.0.1\" security=\"none\"/></Plc>\n  "
                "<Plc name=\"P\"><Connection address=\"10.0.0.2\" security=\"none\"/></Plc>\n"),
       "twice"},
      {"duplicate symbol",
       plc_with("", symbols_xml({R"(<Symbol name="A" address="DB1.DBW0" type="Int"/>)",
                                 R"(<Symbol name="A" address="DB1.DBW2" type="Int"/>)"})),
       "twice"},
      {"address does not fit",
       plc_with("", symbols_xml({R"(<Symbol name="A" address="DB1.DBW0" type="Real"/>)"})), "Real"},
      {"broken XML", document("  <Plc name=\"P\">\n"), "line"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const fs::path bundle =
        write_bundle("bad/" + std::to_string(&c - cases.data()) + ".scadaexport.xml", c.text);
    Outcome r = scadactl({"import", "--project", project_dir().string(), "--yes", bundle.string()});
    EXPECT_EQ(r.exit, 1) << r.out;
    EXPECT_NE(r.out.find(c.message_part), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("nothing was changed"), std::string::npos) << r.out;
  }
  // Too many PLCs (BUNDLE.md: at most 1,000), and a document over 64 MiB (sparse: only its
  // size is read before it is refused).
  std::string many;
  for (int i = 0; i < 1001; ++i) {
    many += "  <Plc name=\"P" + std::to_string(i) +
            "\"><Connection address=\"10.0.0.1\" security=\"none\"/></Plc>\n";
  }
  Outcome too_many = scadactl({"import", "--project", project_dir().string(), "--yes",
                               write_bundle("many.scadaexport.xml", document(many)).string()});
  EXPECT_EQ(too_many.exit, 1) << too_many.out;
  EXPECT_NE(too_many.out.find("1000"), std::string::npos) << too_many.out.substr(0, 2000);
  const fs::path huge = write_bundle("huge.scadaexport.xml", document(""));
  fs::resize_file(huge, (64u << 20) + 1);
  Outcome too_big =
      scadactl({"import", "--project", project_dir().string(), "--yes", huge.string()});
  EXPECT_EQ(too_big.exit, 1) << too_big.out;
  EXPECT_NE(too_big.out.find("64 MiB"), std::string::npos) << too_big.out;
  // A symbolic link in the bundle folder that leads out of it.
  const fs::path folder = dir_.path() / "linked";
  fs::create_directories(folder);
  test::write_file(dir_.path() / "outside.der",
                   std::string(plant_.ca_der.begin(), plant_.ca_der.end()));
  fs::create_symlink(dir_.path() / "outside.der", folder / "root.der");
  test::write_file(folder / "plant.scadaexport.xml",
                   plc_with(R"(      <Certificate role="ca" file="root.der"/>
)"));
  Outcome linked =
      scadactl({"import", "--project", project_dir().string(), "--yes", folder.string()});
  EXPECT_EQ(linked.exit, 1) << linked.out;

  EXPECT_EQ(project().connections(), connections);
  EXPECT_EQ(project().tags(), tags);
  EXPECT_EQ(project().events().size(), events);
  EXPECT_EQ(files_now(), files);
}

// The import killed at each step leaves the project unchanged or complete, never between.
TEST_F(Import, KilledAtAnyStepLeavesTheProjectUnchangedOrComplete) {
  const fs::path bundle = write_bundle("plant.scadaexport.xml", inline_bundle(kSymbols));
  const fs::path root =
      project().layout().roots / (certstore::fingerprint_sha256(plant_.ca_der) + ".der");
  const fs::path pin =
      project().layout().trusted() / (certstore::fingerprint_sha256(plant_.plc_der) + ".der");
  struct Step {
    std::string name;
    bool complete;  // after the kill and the next open
  };
  for (const Step& step : {Step{"files-written", false}, Step{"before-commit", false},
                           Step{"after-commit", true}, Step{"renamed-one", true}}) {
    SCOPED_TRACE(step.name);
    TempDir fresh;
    const fs::path dir = fresh.path() / "p";
    Project::init(dir);
    Outcome r = scadactl({"import", "--project", dir.string(), "--yes", bundle.string()},
                         "SCADA_IMPORT_KILL_AT=" + step.name);
    EXPECT_EQ(r.signal, SIGKILL) << r.exit << " " << r.out;
    Project p = Project::open(dir);  // recovery
    const fs::path my_root = p.layout().roots / root.filename();
    const fs::path my_pin = p.layout().trusted() / pin.filename();
    if (step.complete) {
      EXPECT_EQ(p.connections().size(), 1u);
      EXPECT_EQ(p.tags().size(), 3u);
      EXPECT_TRUE(fs::exists(my_root));
      EXPECT_TRUE(fs::exists(my_pin));
    } else {
      EXPECT_TRUE(p.connections().empty());
      EXPECT_TRUE(p.tags().empty());
      EXPECT_FALSE(fs::exists(my_root));
      EXPECT_FALSE(fs::exists(my_pin));
    }
    for (const auto& folder : {p.layout().roots, p.layout().trusted()}) {
      for (const auto& e : fs::directory_iterator(folder)) {
        EXPECT_EQ(e.path().filename().string().find(".import-tmp"), std::string::npos)
            << "left behind: " << e.path();
      }
    }
    // And the import, run again, completes it.
    Outcome again = scadactl({"import", "--project", dir.string(), "--yes", bundle.string()});
    EXPECT_EQ(again.exit, 0) << again.out;
    Project q = Project::open(dir);
    EXPECT_EQ(q.tags().size(), 3u);
    EXPECT_TRUE(fs::exists(my_root));
  }
}

// A running connection to a PLC whose CA only the bundle carries: unknown CA before the import,
// up after it, with the connection (the runtime) running throughout.
TEST_F(Import, RunningConnectionComesUpAfterTheImportBringsItsCa) {
  const certstore::StoreLayout layout = project().layout();
  test::ServerTlsFiles files(dir_, "plant-plc");
  plcsim::PlcConfig config;
  config.mode = channel::SecurityMode::tls;
  config.tls.certificate = files.certificate_file;
  config.tls.key = files.key_file;
  plcsim::Simulator sim({config}, "127.0.0.1", 0);

  certstore::StoreOptions options;  // the runtime's defaults: inotify, 200 ms debounce
  certstore::CertificateStore store(layout, options);
  store.start_watching();  // as the runtime does
  test::EventLoop loop;
  channel::ConnectionConfig cc;
  cc.port = sim.plc(0).port();
  cc.mode = channel::SecurityMode::tls;
  cc.retry_min = 100ms;
  cc.retry_max = 60s;  // only the trust change may end the wait early
  channel::Connection connection(loop.executor(), store, cc);
  test::EventRecorder events(connection);
  connection.start();
  auto failed = events.wait(
      [](const channel::ConnectionEvent& e) {
        return e.state == channel::ConnectionState::waiting &&
               e.reason == channel::FailureReason::unknown_ca;
      },
      10s);
  ASSERT_TRUE(failed.has_value()) << "no unknown-ca failure before the import";
  // Two more failed attempts at most, then the backoff grows.
  std::this_thread::sleep_for(1500ms);
  ASSERT_NE(connection.info().state, channel::ConnectionState::up);

  const std::string certificates = "      <Certificate role=\"ca\" encoding=\"pem\">" +
                                   files.ca.certificate_pem() + "</Certificate>\n";
  const fs::path bundle =
      write_bundle("plant.scadaexport.xml",
                   document(plc_xml("PLC1",
                                    "<Connection address=\"127.0.0.1\" port=\"" +
                                        std::to_string(cc.port) + "\" security=\"tls\"/>",
                                    certificates, "")));
  Outcome r = scadactl({"import", "--project", project_dir().string(), "--yes", bundle.string()});
  ASSERT_EQ(r.exit, 0) << r.out;
  const std::size_t mark = events.size();
  const bool up = events.wait_state(channel::ConnectionState::up, 10s).has_value();
  std::string seen;
  for (std::size_t i = mark; i < events.size(); ++i) {
    const auto e = events.events()[i];
    seen += std::string(channel::connection_state_name(e.state)) + " " +
            channel::failure_reason_name(e.reason) + " " + e.detail + "\n";
  }
  EXPECT_TRUE(up) << "the connection did not come up after the import; events:\n" << seen << r.out;
}

}  // namespace
}  // namespace scada::importer
