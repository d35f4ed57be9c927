// The project-bundle reader (importer.h, BUNDLE.md): every rule with its message and line,
// certificates made while the tests run (test_pki), hostile documents and file references.
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <vector>

#include "importer/importer.h"
#include "test_pki.h"
#include "test_tls_files.h"

namespace scada::importer {
namespace {

namespace pki = certstore::test_pki;
namespace fs = std::filesystem;
using scada::test::TempDir;
using scada::test::write_file;
using Severity = Problem::Severity;

// ---------------------------------------------------------------------------------------------
// Test material

std::string base64(const pki::Bytes& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes.data(),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

// A root CA, an intermediate it issued, a PLC leaf the intermediate issued, and a self-signed
// PLC certificate; valid from an hour ago for a day.
struct Pki {
  Pki() {
    using namespace std::chrono;
    const auto now = time_point_cast<seconds>(system_clock::now());
    const auto spec = [&](const char* name, std::uint8_t serial, bool ca) {
      pki::CertificateSpec s;
      s.subject = {{"O", "Plant A"}, {"CN", name}};
      s.serial = {serial};
      s.not_before = now - hours(1);
      s.not_after = now + hours(24);
      s.ca = ca;
      return s;
    };
    root =
        pki::make_certificate(spec("Plant Root", 1, true), root_key.get(), nullptr, root_key.get());
    issuing = pki::make_certificate(spec("Plant Issuing", 2, true), issuing_key.get(), root.get(),
                                    root_key.get());
    leaf = pki::make_certificate(spec("PLC1", 3, false), leaf_key.get(), issuing.get(),
                                 issuing_key.get());
    self_signed =
        pki::make_certificate(spec("PLC2", 4, false), self_key.get(), nullptr, self_key.get());
  }
  pki::KeyPtr root_key = pki::make_key(pki::KeyKind::ec_p256);
  pki::KeyPtr issuing_key = pki::make_key(pki::KeyKind::ec_p256);
  pki::KeyPtr leaf_key = pki::make_key(pki::KeyKind::ec_p256);
  pki::KeyPtr self_key = pki::make_key(pki::KeyKind::ec_p256);
  pki::CertificatePtr root, issuing, leaf, self_signed;
};

const Pki& test_pki() {
  static const Pki pki;
  return pki;
}

// Lines joined with '\n': the n-th string is line n.
std::string join(std::initializer_list<std::string> lines) {
  std::string out;
  for (const std::string& line : lines) out += line + "\n";
  return out;
}

// One PLC: line 1 declaration, 2 <ScadaExport>, 3 <Plc>, 4 <Connection>, 5 <Symbols>,
// symbols from line 6.
std::string symbols_document(const std::vector<std::string>& symbols) {
  std::string out =
      join({R"(<?xml version="1.0" encoding="utf-8"?>)", R"(<ScadaExport formatVersion="1">)",
            R"(  <Plc name="PLC1">)", R"(    <Connection address="192.168.0.10" security="none"/>)",
            R"(    <Symbols>)"});
  for (const std::string& symbol : symbols) out += "      " + symbol + "\n";
  return out + join({"    </Symbols>", "  </Plc>", "</ScadaExport>"});
}

// One PLC with the given attributes: line 3 <Plc>, 4 <Connection>, the body from line 5.
std::string plc_document(const std::string& plc_attributes, const std::string& connection,
                         const std::vector<std::string>& body = {}) {
  std::string out =
      join({R"(<?xml version="1.0" encoding="utf-8"?>)", R"(<ScadaExport formatVersion="1">)",
            "  <Plc " + plc_attributes + ">", "    <Connection " + connection + "/>"});
  for (const std::string& line : body) out += "    " + line + "\n";
  return out + join({"  </Plc>", "</ScadaExport>"});
}

// One certificate from line 6 (line 5 <Certificates>).
std::string certificate_document(const std::string& certificate) {
  return plc_document(R"(name="PLC1")", R"(address="10.0.0.1" security="none")",
                      {"<Certificates>", certificate, "</Certificates>"});
}

std::string describe(const BundleResult& result) {
  std::string out = result.ok() ? "ok" : "refused";
  for (const Problem& p : result.problems) out += "\n  " + p.to_string();
  return out;
}

// The result has a problem of this severity on this line whose message contains `part`.
testing::AssertionResult has_problem(const BundleResult& result, std::size_t line,
                                     const std::string& part, Severity severity = Severity::error) {
  for (const Problem& p : result.problems) {
    if (p.line == line && p.severity == severity && p.message.find(part) != std::string::npos) {
      return testing::AssertionSuccess();
    }
  }
  return testing::AssertionFailure()
         << "no problem on line " << line << " with '" << part << "' in " << describe(result);
}

BundleResult parse(const std::string& document, const BundleLimits& limits = {}) {
  return parse_bundle(document, std::nullopt, limits);
}

// Refused with exactly one error, on this line, containing part.
void expect_refused(const std::string& document, std::size_t line, const std::string& part) {
  const BundleResult result = parse(document);
  EXPECT_FALSE(result.ok()) << describe(result);
  EXPECT_TRUE(has_problem(result, line, part));
}

std::size_t count(const BundleResult& result, Severity severity) {
  return static_cast<std::size_t>(
      std::count_if(result.problems.begin(), result.problems.end(),
                    [&](const Problem& p) { return p.severity == severity; }));
}

// A bundle folder in a temporary directory: <dir>/bundle/ with the document and certs/.
struct BundleFolder {
  BundleFolder() {
    fs::create_directories(folder / "certs");
    const Pki& p = test_pki();
    write_file(folder / "certs/plant-root.der", std::string(root_der.begin(), root_der.end()));
    write_file(folder / "certs/plant-issuing.pem", pki::pem_of(p.issuing.get()));
  }
  fs::path write(const std::string& document, const std::string& name = "plant.scadaexport.xml") {
    write_file(folder / name, document);
    return folder / name;
  }
  BundleResult parse(const std::string& document, const BundleLimits& limits = {}) {
    return parse_bundle(document, folder, limits);
  }
  TempDir dir;
  fs::path folder = dir.path() / "bundle";
  pki::Bytes root_der = pki::der_of(test_pki().root.get());
};

// BUNDLE.md's example: inline der-base64, a DER file and a PEM file; a second PLC with inline
// PEM and defaults.
std::string example_document() {
  const Pki& p = test_pki();
  return join({
      R"(<?xml version="1.0" encoding="utf-8"?>)",
      R"(<ScadaExport formatVersion="1" tool="TIA Portal V17" project="Plant A")",
      R"(             exportedAt="2026-11-01T10:00:00Z">)",
      R"(  <Plc name="PLC1" module="CPU 1516-3 PN/DP" firmware="V2.9.4">)",
      R"(    <Connection address="192.168.0.10" port="102" rack="0" slot="1" security="s7-secure"/>)",
      R"(    <Certificates>)",
      R"(      <Certificate role="plc" encoding="der-base64">)" +
          base64(pki::der_of(p.leaf.get())) + "</Certificate>",
      R"(      <Certificate role="ca" file="certs/plant-root.der"/>)",
      R"(      <Certificate role="ca" file="certs/plant-issuing.pem"/>)",
      R"(    </Certificates>)",
      R"(    <Symbols>)",
      R"(      <Symbol name="Line1.Motor.Speed"   address="DB10.DBD4"   type="Real" access="rw" cycle="500ms" comment="rpm"/>)",
      R"(      <Symbol name="Line1.Motor.Running" address="DB10.DBX0.0" type="Bool"/>)",
      R"(      <Symbol name="Line1.Counter"       address="MW20"        type="Int"/>)",
      R"(    </Symbols>)",
      R"(  </Plc>)",
      R"(  <!-- more <Plc> elements -->)",
      R"(  <Plc name="PLC2" firmware="V3.0">)",
      R"(    <Connection address="plc2.plant.example" localTsap="0100" remoteTsap="0301" security="tls"/>)",
      R"(    <Certificates>)",
      R"(      <Certificate role="plc" encoding="pem">)",
      pki::pem_of(p.self_signed.get()) + R"(      </Certificate>)",
      R"(    </Certificates>)",
      R"(  </Plc>)",
      R"(</ScadaExport>)",
  });
}

void expect_example(const BundleResult& result) {
  ASSERT_TRUE(result.ok()) << describe(result);
  EXPECT_TRUE(result.problems.empty()) << describe(result);
  const Pki& p = test_pki();
  const Bundle& b = *result.bundle;
  EXPECT_EQ(b.format_version, "1");
  EXPECT_EQ(b.tool, "TIA Portal V17");
  EXPECT_EQ(b.project, "Plant A");
  EXPECT_EQ(b.exported_at, "2026-11-01T10:00:00Z");
  ASSERT_EQ(b.plcs.size(), 2u);

  const BundlePlc& plc1 = b.plcs[0];
  EXPECT_EQ(plc1.name, "PLC1");
  EXPECT_EQ(plc1.module, "CPU 1516-3 PN/DP");
  EXPECT_EQ(plc1.firmware, "V2.9.4");
  EXPECT_EQ(plc1.line, 4u);
  EXPECT_EQ(plc1.address, "192.168.0.10");
  EXPECT_EQ(plc1.port, 102);
  EXPECT_EQ(plc1.rack, 0);
  EXPECT_EQ(plc1.slot, 1);
  EXPECT_FALSE(plc1.local_tsap);
  EXPECT_EQ(plc1.security, channel::SecurityMode::s7_secure);
  ASSERT_EQ(plc1.certificates.size(), 3u);
  EXPECT_EQ(plc1.certificates[0].role, CertificateRole::plc);
  EXPECT_EQ(plc1.certificates[0].source, "inline");
  EXPECT_EQ(plc1.certificates[0].line, 7u);
  EXPECT_EQ(plc1.certificates[0].info.der, pki::der_of(p.leaf.get()));
  EXPECT_EQ(plc1.certificates[0].info.subject, "CN=PLC1,O=Plant A");
  EXPECT_EQ(plc1.certificates[1].role, CertificateRole::ca);
  EXPECT_EQ(plc1.certificates[1].source, "certs/plant-root.der");
  EXPECT_EQ(plc1.certificates[1].info.sha256, pki::sha256_hex(pki::der_of(p.root.get())));
  EXPECT_TRUE(plc1.certificates[1].info.is_ca);
  EXPECT_EQ(plc1.certificates[2].source, "certs/plant-issuing.pem");
  EXPECT_EQ(plc1.certificates[2].info.der, pki::der_of(p.issuing.get()));
  EXPECT_EQ(plc1.certificates[2].line, 9u);
  ASSERT_EQ(plc1.symbols.size(), 3u);
  const BundleSymbol& speed = plc1.symbols[0];
  EXPECT_EQ(speed.name, "Line1.Motor.Speed");
  EXPECT_EQ(speed.address.to_string(), "DB10.DBD4");
  EXPECT_EQ(speed.type.type, tags::DataType::Real);
  EXPECT_EQ(speed.access, tags::Access::read_write);
  EXPECT_EQ(speed.cycle, std::chrono::milliseconds(500));
  EXPECT_EQ(speed.comment, "rpm");
  EXPECT_EQ(speed.line, 12u);
  EXPECT_EQ(plc1.symbols[1].type.type, tags::DataType::Bool);
  EXPECT_EQ(plc1.symbols[2].address.to_string(), "MW20");
  EXPECT_EQ(plc1.symbols[2].line, 14u);

  const BundlePlc& plc2 = b.plcs[1];
  EXPECT_EQ(plc2.name, "PLC2");
  EXPECT_EQ(plc2.address, "plc2.plant.example");
  EXPECT_EQ(plc2.local_tsap, 0x0100);
  EXPECT_EQ(plc2.remote_tsap, 0x0301);
  EXPECT_EQ(plc2.security, channel::SecurityMode::tls);
  ASSERT_EQ(plc2.certificates.size(), 1u);
  EXPECT_EQ(plc2.certificates[0].info.der, pki::der_of(p.self_signed.get()));
  EXPECT_TRUE(plc2.certificates[0].info.self_signed);
  EXPECT_TRUE(plc2.symbols.empty());
}

// ---------------------------------------------------------------------------------------------
// Whole bundles

TEST(Bundle, ExampleAsFolder) {
  BundleFolder bundle;
  const fs::path document = bundle.write(example_document());
  const BundleResult result = read_bundle(bundle.folder);
  expect_example(result);
  if (result.ok()) {
    EXPECT_EQ(result.bundle->document, document);
  }
}

TEST(Bundle, ExampleAsFile) {
  BundleFolder bundle;
  // Any name will do when the file is given; the certificates are resolved next to it.
  const fs::path document = bundle.write(example_document(), "export.xml");
  const BundleResult result = read_bundle(document);
  expect_example(result);
  if (result.ok()) {
    EXPECT_EQ(result.bundle->document, document);
  }
}

TEST(Bundle, ExampleFromMemoryNeedsAFolderForFiles) {
  BundleFolder bundle;
  expect_example(bundle.parse(example_document()));
  const BundleResult without = parse(example_document());
  EXPECT_FALSE(without.ok());
  EXPECT_TRUE(has_problem(without, 8, "file references need a bundle folder"));
  EXPECT_TRUE(has_problem(without, 9, "file references need a bundle folder"));
}

TEST(Bundle, Defaults) {
  const BundleResult result = parse(plc_document(
      R"(name="PLC1")", R"(address="10.0.0.1" security="none")",
      {"<Symbols>", R"(  <Symbol name="A" address="MW0" type="Int"/>)", "</Symbols>"}));
  ASSERT_TRUE(result.ok()) << describe(result);
  const BundlePlc& plc = result.bundle->plcs.at(0);
  EXPECT_EQ(plc.port, 102);
  EXPECT_EQ(plc.rack, 0);
  EXPECT_EQ(plc.slot, 1);
  EXPECT_FALSE(plc.local_tsap);
  EXPECT_FALSE(plc.remote_tsap);
  EXPECT_EQ(plc.security, channel::SecurityMode::none);
  EXPECT_TRUE(plc.module.empty());
  EXPECT_TRUE(plc.firmware.empty());
  EXPECT_TRUE(plc.certificates.empty());
  const BundleSymbol& symbol = plc.symbols.at(0);
  EXPECT_EQ(symbol.access, tags::Access::read);
  EXPECT_EQ(symbol.cycle, std::chrono::seconds(1));
  EXPECT_TRUE(symbol.comment.empty());
  EXPECT_EQ(symbol.line, 6u);
  EXPECT_TRUE(result.bundle->document.empty());
  EXPECT_TRUE(result.bundle->tool.empty());
}

TEST(Bundle, EmptyScadaExportIsABundleWithoutPlcs) {
  const BundleResult result = parse(R"(<ScadaExport formatVersion="1"/>)");
  ASSERT_TRUE(result.ok()) << describe(result);
  EXPECT_TRUE(result.bundle->plcs.empty());
}

TEST(Problem, ToString) {
  Problem p{Severity::error, 12, R"(<Symbol name="Line1.Counter">)", "type 'x' is not valid"};
  EXPECT_EQ(p.to_string(), R"(line 12, <Symbol name="Line1.Counter">: type 'x' is not valid)");
  p.severity = Severity::warning;
  EXPECT_EQ(p.to_string(),
            R"(warning: line 12, <Symbol name="Line1.Counter">: type 'x' is not valid)");
  p.element.clear();
  EXPECT_EQ(p.to_string(), "warning: line 12: type 'x' is not valid");
  p.line = 0;
  EXPECT_EQ(p.to_string(), "warning: type 'x' is not valid");
  p.element = "<Plc>";
  p.severity = Severity::error;
  EXPECT_EQ(p.to_string(), "<Plc>: type 'x' is not valid");
  EXPECT_STREQ(certificate_role_name(CertificateRole::plc), "plc");
  EXPECT_STREQ(certificate_role_name(CertificateRole::ca), "ca");
}

// ---------------------------------------------------------------------------------------------
// The root

TEST(Root, FormatVersion) {
  expect_refused("<ScadaExport/>", 1, "attribute 'formatVersion' is missing");
  expect_refused(join({"<?xml version=\"1.0\"?>", R"(<ScadaExport formatVersion="2"/>)"}), 2,
                 "formatVersion 2 is not known (this importer reads 1)");
  // Another version's content is not judged by this one's rules.
  const BundleResult result = parse(join(
      {R"(<ScadaExport formatVersion="2">)", R"(  <Plc name="bad name!"/>)", "</ScadaExport>"}));
  EXPECT_EQ(result.problems.size(), 1u) << describe(result);
}

TEST(Root, WrongRootElement) {
  expect_refused(join({"<!-- x -->", R"(<Export formatVersion="1"/>)"}), 2,
                 "the root element is <Export>, expected <ScadaExport>");
}

TEST(Root, SyntaxErrorsNameTheirLine) {
  expect_refused(
      join({R"(<ScadaExport formatVersion="1">)", R"(  <Plc name="PLC1">)",
            R"(    <Connection address="1.2.3.4" security="none">)", "  </Plc>", "</ScadaExport>"}),
      4, "XML syntax error");
  expect_refused("", 1, "XML syntax error: No document element found");
  expect_refused(join({R"(<ScadaExport formatVersion="1">)", R"(  <Plc name="A" name="B">)"}), 2,
                 "XML syntax error");
}

TEST(Root, SecondRootElement) {
  expect_refused(
      join({R"(<ScadaExport formatVersion="1"/>)", R"(<ScadaExport formatVersion="1"/>)"}), 2,
      "a second root element");
}

// ---------------------------------------------------------------------------------------------
// PLCs and connections

TEST(Plc, Names) {
  const std::string connection = R"(address="10.0.0.1" security="none")";
  expect_refused(plc_document("", connection), 3, "attribute 'name' is missing");
  expect_refused(plc_document(R"(name="")", connection), 3, "PLC name '' must be 1 to 64");
  expect_refused(plc_document(R"(name="PLC 1")", connection), 3,
                 "PLC name 'PLC 1' must be 1 to 64 of the characters A-Z a-z 0-9 _ . -");
  expect_refused(plc_document(R"(name="PLC/1")", connection), 3, "must be 1 to 64");
  expect_refused(plc_document(R"(name=")" + std::string(65, 'a') + "\"", connection), 3,
                 "must be 1 to 64");
  const BundleResult ok =
      parse(plc_document(R"(name=")" + std::string(64, 'a') + "\"", connection));
  EXPECT_TRUE(ok.ok()) << describe(ok);
  const BundleResult chars = parse(plc_document(R"(name="Plant_A.PLC-1")", connection));
  EXPECT_TRUE(chars.ok()) << describe(chars);
}

TEST(Plc, ElementTextQuotesTheNameShortened) {
  const std::string name(70, 'x');
  const BundleResult result = parse(plc_document(R"(name=")" + name + "\"", "security=\"none\""));
  ASSERT_FALSE(result.problems.empty());
  EXPECT_EQ(result.problems[0].element, "<Plc name=\"" + std::string(40, 'x') + "...\">");
  EXPECT_EQ(result.problems[0].line, 3u);
}

TEST(Plc, DuplicateNames) {
  const BundleResult result = parse(
      join({R"(<ScadaExport formatVersion="1">)", R"(  <Plc name="PLC1">)",
            R"(    <Connection address="10.0.0.1" security="none"/>)", "  </Plc>",
            R"(  <Plc name="PLC1">)", R"(    <Connection address="10.0.0.2" security="none"/>)",
            "  </Plc>", "</ScadaExport>"}));
  EXPECT_FALSE(result.ok());
  EXPECT_TRUE(has_problem(result, 5, "PLC name 'PLC1' is used twice (first on line 2)"));
  EXPECT_EQ(result.problems.at(0).element, R"(<Plc name="PLC1">)");
}

TEST(Plc, ExactlyOneConnection) {
  expect_refused(
      join({R"(<ScadaExport formatVersion="1">)", R"(  <Plc name="PLC1"/>)", "</ScadaExport>"}), 2,
      "<Connection> is missing");
  const BundleResult result =
      parse(plc_document(R"(name="PLC1")", R"(address="10.0.0.1" security="none")",
                         {R"(<Connection address="10.0.0.2" security="none"/>)"}));
  EXPECT_FALSE(result.ok());
  EXPECT_TRUE(
      has_problem(result, 5, "a second <Connection> in <Plc name=\"PLC1\"> (first on line 4)"));
  EXPECT_EQ(result.problems.at(0).element, "<Connection>");
}

BundleResult connection(const std::string& attributes) {
  return parse(plc_document(R"(name="PLC1")", attributes));
}

void expect_connection_refused(const std::string& attributes, const std::string& part) {
  const BundleResult result = connection(attributes);
  EXPECT_FALSE(result.ok()) << attributes;
  EXPECT_TRUE(has_problem(result, 4, part)) << attributes;
  for (const Problem& p : result.problems) EXPECT_EQ(p.element, "<Connection>");
}

TEST(Connection, Addresses) {
  for (const char* good : {"192.168.0.10", "fd00::a", "[fd00::a]", "plc1", "plc1.plant.example"}) {
    const BundleResult result =
        connection("address=\"" + std::string(good) + "\" security=\"none\"");
    EXPECT_TRUE(result.ok()) << good << describe(result);
  }
  EXPECT_EQ(connection(R"(address="[fd00::a]" security="none")").bundle->plcs[0].address,
            "fd00::a");
  expect_connection_refused(R"(security="none")", "attribute 'address' is missing");
  expect_connection_refused(
      R"(address="" security="none")",
      "address '' is not a valid IPv4 address, IPv6 address or host name: it is empty");
  expect_connection_refused(R"(address="192.168.0.300" security="none")",
                            "address '192.168.0.300' is not a valid IPv4 address, IPv6 "
                            "address or host name");
  expect_connection_refused(R"(address="fd00::zz" security="none")",
                            "'fd00::zz' is not a valid IPv4 address, IPv6 address or host name");
  expect_connection_refused(R"(address="plc_1" security="none")",
                            "address 'plc_1' is not a valid IPv4 address, IPv6 address or host "
                            "name: character");
  expect_connection_refused(R"(address="a;Port=1" security="none")", "';' or '='");
  expect_connection_refused(R"(address=" 10.0.0.1" security="none")", "a space");
}

TEST(Connection, Numbers) {
  const auto with = [](const std::string& extra) {
    return R"(address="10.0.0.1" security="none" )" + extra;
  };
  const BundleResult result = connection(with(R"(port="1" rack="7" slot="31")"));
  ASSERT_TRUE(result.ok()) << describe(result);
  EXPECT_EQ(result.bundle->plcs[0].port, 1);
  EXPECT_EQ(result.bundle->plcs[0].rack, 7);
  EXPECT_EQ(result.bundle->plcs[0].slot, 31);
  EXPECT_EQ(connection(with(R"(port="65535")")).bundle->plcs[0].port, 65535);
  for (const char* port : {"0", "65536", "+102", "-1", " 102", "1 02", "0x66", "", "102a"}) {
    expect_connection_refused(with("port=\"" + std::string(port) + "\""),
                              "port '" + std::string(port) + "' is not a number 1..65535");
  }
  expect_connection_refused(with(R"(rack="8")"), "rack '8' is not a number 0..7");
  expect_connection_refused(with(R"(slot="32")"), "slot '32' is not a number 0..31");
  expect_connection_refused(with(R"(slot="-1")"), "slot '-1' is not a number 0..31");
}

TEST(Connection, Tsaps) {
  const std::string base = R"(address="10.0.0.1" security="none" )";
  const BundleResult result = connection(base + R"(localTsap="10aF" remoteTsap="0301")");
  ASSERT_TRUE(result.ok()) << describe(result);
  EXPECT_EQ(result.bundle->plcs[0].local_tsap, 0x10AF);
  EXPECT_EQ(result.bundle->plcs[0].remote_tsap, 0x0301);
  expect_connection_refused(base + R"(localTsap="100" remoteTsap="0301")",
                            "localTsap '100' is not a TSAP of four hex digits such as 0100");
  expect_connection_refused(base + R"(localTsap="0100" remoteTsap="03.01")",
                            "remoteTsap '03.01' is not a TSAP");
  expect_connection_refused(base + R"(localTsap="0100" remoteTsap="0x03")", "is not a TSAP");
  expect_connection_refused(base + R"(localTsap="0100" remoteTsap="0301" rack="0")",
                            "give rack/slot or localTsap/remoteTsap, not both");
  expect_connection_refused(base + R"(remoteTsap="0301" slot="2")", "not both");
  expect_connection_refused(base + R"(localTsap="0100")", "localTsap and remoteTsap go together");
}

TEST(Connection, Security) {
  EXPECT_EQ(connection(R"(address="10.0.0.1" security="tls")").bundle->plcs[0].security,
            channel::SecurityMode::tls);
  expect_connection_refused(R"(address="10.0.0.1")", "attribute 'security' is missing");
  expect_connection_refused(R"(address="10.0.0.1" security="TLS1.3")",
                            "security 'TLS1.3' is not known (none, tls or s7-secure)");
}

TEST(Plc, Firmware) {
  const auto firmware = [](const std::string& version, const std::string& security) {
    return parse(plc_document(R"(name="PLC1" firmware=")" + version + "\"",
                              R"(address="10.0.0.1" security=")" + security + "\""));
  };
  BundleResult result = firmware("V2.8", "s7-secure");
  EXPECT_FALSE(result.ok());
  EXPECT_TRUE(has_problem(result, 3,
                          "firmware V2.8 has no secure communication (it needs V2.9 or later), "
                          "but security is s7-secure"));
  EXPECT_FALSE(firmware("V2.8.3", "tls").ok());
  EXPECT_FALSE(firmware("V1.8", "tls").ok());
  result = firmware("V2.8", "none");
  EXPECT_TRUE(result.ok() && result.problems.empty()) << describe(result);
  result = firmware("V2.9.4", "tls");
  EXPECT_TRUE(result.ok() && result.problems.empty()) << describe(result);
  EXPECT_TRUE(firmware("V2.9", "s7-secure").ok());
  EXPECT_TRUE(firmware("V3.0", "s7-secure").ok());
  EXPECT_TRUE(firmware("V10.0", "s7-secure").ok());
  // A firmware that is no version cannot be checked: an error with a secure mode, a warning
  // with none.
  result = firmware("2.9.4", "tls");
  EXPECT_FALSE(result.ok());
  EXPECT_TRUE(has_problem(result, 3, "firmware '2.9.4' is not a version such as V2.9.4"));
  EXPECT_FALSE(firmware("V3", "tls").ok());
  EXPECT_FALSE(firmware("V3.x", "tls").ok());
  result = firmware("latest", "none");
  EXPECT_TRUE(result.ok()) << describe(result);
  EXPECT_TRUE(has_problem(result, 3, "not a version", Severity::warning));
}

// ---------------------------------------------------------------------------------------------
// Certificates

std::string inline_der(const X509* certificate, const std::string& role = "plc") {
  return R"(<Certificate role=")" + role + R"(" encoding="der-base64">)" +
         base64(pki::der_of(certificate)) + "</Certificate>";
}

TEST(Certificates, InlineDerBase64WithLineBreaks) {
  std::string text = base64(pki::der_of(test_pki().leaf.get()));
  for (std::size_t at = 64; at < text.size(); at += 65) text.insert(at, "\n");
  const BundleResult result =
      parse(certificate_document(R"(<Certificate role="plc" encoding="der-base64">)"
                                 "\n" +
                                 text + "\n  </Certificate>"));
  ASSERT_TRUE(result.ok()) << describe(result);
  EXPECT_EQ(result.bundle->plcs[0].certificates.at(0).info.der, pki::der_of(test_pki().leaf.get()));
  EXPECT_EQ(result.bundle->plcs[0].certificates.at(0).line, 6u);
}

TEST(Certificates, ContentInlineOrInAFile) {
  expect_refused(certificate_document(R"(<Certificate role="plc"/>)"), 6,
                 "no certificate: give it inline");
  expect_refused(certificate_document(R"(<Certificate role="plc">MIIB</Certificate>)"), 6,
                 "the inline certificate has no encoding (der-base64 or pem)");
  expect_refused(certificate_document(R"(<Certificate role="plc" encoding="der-base64"/>)"), 6,
                 "the der-base64 certificate: empty");
  expect_refused(certificate_document(R"(<Certificate role="plc" encoding="pem">  </Certificate>)"),
                 6, "the PEM certificate: empty");
  expect_refused(
      certificate_document(R"(<Certificate role="plc" encoding="der">MIIB</Certificate>)"), 6,
      "encoding 'der' is not known (der-base64 or pem)");
  expect_refused(certificate_document(R"(<Certificate role="ca" file="a.der" encoding="pem"/>)"), 6,
                 "give the certificate inline or in a file, not both");
  expect_refused(certificate_document(R"(<Certificate role="ca" file="a.der">MIIB</Certificate>)"),
                 6, "not both");
  expect_refused(certificate_document(R"(<Certificate encoding="pem"/>)"), 6,
                 "attribute 'role' is missing");
  expect_refused(certificate_document(inline_der(test_pki().leaf.get(), "device")), 6,
                 "role 'device' is not known (plc or ca)");
}

TEST(Certificates, BadBase64) {
  const auto der = [](const std::string& text) {
    return certificate_document(R"(<Certificate role="plc" encoding="der-base64">)" + text +
                                "</Certificate>");
  };
  expect_refused(der("MIIB*AAA"), 6, "the character '*' is not base64");
  expect_refused(der("MII-"), 6, "the character '-' is not base64");
  expect_refused(der("MII\xC3\xBC"), 6, "a non-ASCII character is not base64");
  expect_refused(der("MI=B"), 6, "the character '=' is not base64");
  expect_refused(der("MIIBA"), 6, "wrong padding");
  expect_refused(der("MIIBA==="), 6, "wrong padding");
  expect_refused(der("MA="), 6, "wrong padding");
  expect_refused(der("===="), 6, "the base64 text ends in 4 '=' (wrong padding: at most two)");
  // Base64 of text, not DER.
  expect_refused(der(base64(pki::to_bytes("-----BEGIN CERTIFICATE-----\n"))), 6,
                 "the der-base64 certificate: the decoded bytes are not DER");
}

TEST(Certificates, PaddingIsHonoured) {
  // The same DER with one and two trailing bytes cut: the decoded length must follow the
  // padding, or a cut certificate would decode with zero bytes appended.
  const pki::Bytes der = pki::der_of(test_pki().leaf.get());
  for (std::size_t cut : {1u, 2u, 3u}) {
    const pki::Bytes shorter(der.begin(), der.end() - static_cast<std::ptrdiff_t>(cut));
    const BundleResult result = parse(certificate_document(
        R"(<Certificate role="plc" encoding="der-base64">)" + base64(shorter) + "</Certificate>"));
    EXPECT_FALSE(result.ok());
    EXPECT_TRUE(has_problem(result, 6, "the der-base64 certificate is not a usable certificate"));
  }
}

TEST(Certificates, GarbageDerAndPem) {
  expect_refused(certificate_document(R"(<Certificate role="plc" encoding="der-base64">)" +
                                      base64({0x30, 0x03, 0x02, 0x01, 0x05}) + "</Certificate>"),
                 6, "the der-base64 certificate is not a usable certificate: ");
  expect_refused(certificate_document(R"(<Certificate role="plc" encoding="pem">)"
                                      "-----BEGIN CERTIFICATE-----\nAAAA\n"
                                      "-----END CERTIFICATE-----\n</Certificate>"),
                 6, "the PEM certificate is not a usable certificate: ");
  expect_refused(
      certificate_document(R"(<Certificate role="plc" encoding="pem">MIIB</Certificate>)"), 6,
      "the PEM certificate: no \"-----BEGIN CERTIFICATE-----\" line");
  expect_refused(
      certificate_document(R"(<Certificate role="plc" encoding="pem">)" +
                           pki::pem_of_private_key(test_pki().leaf_key.get()) + "</Certificate>"),
      6, "expected \"CERTIFICATE\"");
}

TEST(Certificates, OnePerElement) {
  const Pki& p = test_pki();
  expect_refused(
      certificate_document(R"(<Certificate role="ca" encoding="pem">)" + pki::pem_of(p.root.get()) +
                           pki::pem_of(p.issuing.get()) + "</Certificate>"),
      6, "the PEM certificate holds 2 certificates; give one certificate per <Certificate>");
}

TEST(Certificates, RoleMustMatchBasicConstraints) {
  const Pki& p = test_pki();
  expect_refused(certificate_document(inline_der(p.leaf.get(), "ca")), 6,
                 "role is ca, but CN=PLC1,O=Plant A is not a CA certificate");
  expect_refused(certificate_document(inline_der(p.self_signed.get(), "ca")), 6,
                 "is not a CA certificate");
  expect_refused(certificate_document(inline_der(p.root.get(), "plc")), 6,
                 "role is plc, but CN=Plant Root,O=Plant A is a CA certificate");
  const BundleResult result = parse(certificate_document(inline_der(p.root.get(), "ca")));
  ASSERT_TRUE(result.ok()) << describe(result);
  EXPECT_EQ(result.bundle->plcs[0].certificates[0].role, CertificateRole::ca);
}

TEST(Certificates, ElementTextNamesRoleAndFile) {
  BundleFolder bundle;
  const BundleResult result =
      bundle.parse(certificate_document(R"(<Certificate role="ca" file="certs/missing.der"/>)"));
  ASSERT_EQ(result.problems.size(), 1u) << describe(result);
  EXPECT_EQ(result.problems[0].element, R"(<Certificate role="ca" file="certs/missing.der">)");
  EXPECT_EQ(result.problems[0].line, 6u);
  EXPECT_NE(result.problems[0].message.find("file 'certs/missing.der': cannot open"),
            std::string::npos);
}

TEST(Certificates, FilesDerAndPemDetectedByContent) {
  BundleFolder bundle;
  const Pki& p = test_pki();
  // A PEM file named .der and a DER file named .pem: the content decides.
  write_file(bundle.folder / "certs/leaf.der", pki::pem_of(p.leaf.get()));
  const pki::Bytes der = pki::der_of(p.self_signed.get());
  write_file(bundle.folder / "certs/self.pem", std::string(der.begin(), der.end()));
  const BundleResult result = bundle.parse(plc_document(
      R"(name="PLC1")", R"(address="10.0.0.1" security="none")",
      {"<Certificates>", R"(<Certificate role="plc" file="certs/leaf.der"/>)",
       R"(<Certificate role="plc" file="certs/self.pem"/>)",
       R"(<Certificate role="ca" file="./certs/plant-root.der"/>)", "</Certificates>"}));
  ASSERT_TRUE(result.ok()) << describe(result);
  const auto& certificates = result.bundle->plcs[0].certificates;
  ASSERT_EQ(certificates.size(), 3u);
  EXPECT_EQ(certificates[0].info.der, pki::der_of(p.leaf.get()));
  EXPECT_EQ(certificates[1].info.der, der);
  EXPECT_EQ(certificates[2].source, "./certs/plant-root.der");
}

TEST(Certificates, FileContentProblems) {
  BundleFolder bundle;
  write_file(bundle.folder / "certs/empty.der", "");
  write_file(bundle.folder / "certs/text.der", "hello");
  write_file(bundle.folder / "certs/garbage.der", std::string("\x30\x82\x01\x00garbage", 12));
  const auto refused = [&](const std::string& file, const std::string& part) {
    const BundleResult result =
        bundle.parse(certificate_document(R"(<Certificate role="ca" file=")" + file + R"("/>)"));
    EXPECT_FALSE(result.ok()) << file;
    EXPECT_TRUE(has_problem(result, 6, part)) << file;
  };
  refused("certs/empty.der", "file 'certs/empty.der': the file is empty");
  refused("certs/text.der", "not a certificate (neither DER nor PEM)");
  refused("certs/garbage.der", "file 'certs/garbage.der' is not a usable certificate");
  refused("certs", "not a regular file");
  refused("certs/missing.der", "cannot open");
}

// ---------------------------------------------------------------------------------------------
// File references stay inside the bundle folder

TEST(FileReferences, EscapesAreRefused) {
  BundleFolder bundle;
  write_file(bundle.dir.path() / "x.der",
             std::string(bundle.root_der.begin(), bundle.root_der.end()));
  const auto refused = [&](const std::string& file, const std::string& part) {
    const BundleResult result =
        bundle.parse(certificate_document(R"(<Certificate role="ca" file=")" + file + R"("/>)"));
    EXPECT_FALSE(result.ok()) << file;
    EXPECT_TRUE(has_problem(result, 6, part)) << file;
  };
  refused("/etc/passwd", "absolute paths are not allowed");
  refused((bundle.folder / "certs/plant-root.der").string(), "absolute paths are not allowed");
  refused("../x.der", "'..' is not allowed");
  refused("certs/../../x.der", "'..' is not allowed");
  refused("certs/..", "'..' is not allowed");
  refused("", "the file name is empty");
  refused("certs/a&#10;b.der", "control character");
  refused("certs\\plant-root.der", "use '/' between folders");
}

TEST(FileReferences, SymbolicLinks) {
  BundleFolder bundle;
  write_file(bundle.dir.path() / "outside.der",
             std::string(bundle.root_der.begin(), bundle.root_der.end()));
  fs::create_symlink(bundle.dir.path() / "outside.der", bundle.folder / "certs/out.der");
  fs::create_symlink("../../outside.der", bundle.folder / "certs/relative-out.der");
  fs::create_symlink(bundle.dir.path(), bundle.folder / "up");
  fs::create_symlink("plant-root.der", bundle.folder / "certs/in.der");
  fs::create_directories(bundle.folder / "more");
  fs::create_symlink("../certs", bundle.folder / "more/certs");
  fs::create_symlink("/etc/passwd", bundle.folder / "passwd");

  const auto result = [&](const std::string& file) {
    return bundle.parse(certificate_document(R"(<Certificate role="ca" file=")" + file + R"("/>)"));
  };
  for (const char* out : {"certs/out.der", "certs/relative-out.der", "up/outside.der", "passwd"}) {
    const BundleResult r = result(out);
    EXPECT_FALSE(r.ok()) << out;
    EXPECT_TRUE(has_problem(r, 6, "it leads out of the bundle folder")) << out;
  }
  for (const char* in : {"certs/in.der", "more/certs/plant-root.der"}) {
    const BundleResult r = result(in);
    EXPECT_TRUE(r.ok()) << in << describe(r);
  }
  // The folder itself may be reached through a link.
  fs::create_symlink(bundle.folder, bundle.dir.path() / "link-to-bundle");
  const BundleResult through =
      parse_bundle(certificate_document(R"(<Certificate role="ca" file="certs/plant-root.der"/>)"),
                   bundle.dir.path() / "link-to-bundle");
  EXPECT_TRUE(through.ok()) << describe(through);
}

TEST(FileReferences, SizeIsCheckedBeforeReading) {
  BundleFolder bundle;
  BundleLimits limits;
  limits.certificate_bytes = 100;
  const BundleResult result = bundle.parse(
      certificate_document(R"(<Certificate role="ca" file="certs/plant-root.der"/>)"), limits);
  EXPECT_FALSE(result.ok());
  EXPECT_TRUE(has_problem(result, 6,
                          "the file is " + std::to_string(bundle.root_der.size()) +
                              " bytes, more than the 100 bytes a certificate may have"));
}

// ---------------------------------------------------------------------------------------------
// Symbols

void expect_symbol_refused(const std::string& symbol, const std::string& part) {
  // The bad symbol is on line 7, between two good ones.
  const BundleResult result =
      parse(symbols_document({R"(<Symbol name="Good1" address="MW0" type="Int"/>)", symbol,
                              R"(<Symbol name="Good2" address="MW2" type="Int"/>)"}));
  EXPECT_FALSE(result.ok()) << symbol;
  EXPECT_TRUE(has_problem(result, 7, part)) << symbol;
}

TEST(Symbols, Names) {
  expect_symbol_refused(R"(<Symbol address="MW4" type="Int"/>)", "attribute 'name' is missing");
  expect_symbol_refused(R"(<Symbol name="" address="MW4" type="Int"/>)",
                        "the symbol name is empty");
  expect_symbol_refused(
      R"(<Symbol name=")" + std::string(129, 'n') + R"(" address="MW4" type="Int"/>)",
      "the symbol name is longer than 128 characters");
  expect_symbol_refused(R"(<Symbol name="a&#9;b" address="MW4" type="Int"/>)",
                        "the symbol name holds a control character");
  const BundleResult ok = parse(symbols_document(
      {R"(<Symbol name=")" + std::string(128, 'n') + R"(" address="MW4" type="Int"/>)",
       R"x(<Symbol name="Motor Drehzahl (ü)" address="MW6" type="Int"/>)x"}));
  EXPECT_TRUE(ok.ok()) << describe(ok);
}

TEST(Symbols, ElementText) {
  const BundleResult result =
      parse(symbols_document({R"(<Symbol name="Line1.Counter" address="MW20" type="Real"/>)"}));
  ASSERT_EQ(result.problems.size(), 1u) << describe(result);
  EXPECT_EQ(result.problems[0].element, R"(<Symbol name="Line1.Counter">)");
  EXPECT_EQ(result.problems[0].line, 6u);
  EXPECT_EQ(result.problems[0].to_string().substr(0, 39),
            R"(line 6, <Symbol name="Line1.Counter">: )");
}

TEST(Symbols, DuplicateNamesPerPlc) {
  BundleResult result = parse(symbols_document({R"(<Symbol name="A" address="MW0" type="Int"/>)",
                                                R"(<Symbol name="B" address="MW2" type="Int"/>)",
                                                R"(<Symbol name="A" address="MW4" type="Int"/>)"}));
  EXPECT_FALSE(result.ok());
  EXPECT_TRUE(
      has_problem(result, 8, "symbol name 'A' is used twice in this PLC (first on line 6)"));
  // The same name in two PLCs is fine.
  result = parse(
      join({R"(<ScadaExport formatVersion="1">)", R"(  <Plc name="PLC1">)",
            R"(    <Connection address="10.0.0.1" security="none"/>)",
            R"(    <Symbols><Symbol name="A" address="MW0" type="Int"/></Symbols>)", "  </Plc>",
            R"(  <Plc name="PLC2">)", R"(    <Connection address="10.0.0.2" security="none"/>)",
            R"(    <Symbols><Symbol name="A" address="MW0" type="Int"/></Symbols>)", "  </Plc>",
            "</ScadaExport>"}));
  EXPECT_TRUE(result.ok()) << describe(result);
}

TEST(Symbols, AddressesAndTypes) {
  expect_symbol_refused(R"(<Symbol name="S" type="Int"/>)", "attribute 'address' is missing");
  expect_symbol_refused(R"(<Symbol name="S" address="MW4"/>)", "attribute 'type' is missing");
  expect_symbol_refused(R"(<Symbol name="S" address="DB1.DBX0.8" type="Bool"/>)",
                        "address 'DB1.DBX0.8' is not valid: bit number 8 out of range 0..7");
  expect_symbol_refused(R"(<Symbol name="S" address="DB0.DBW0" type="Int"/>)",
                        "address 'DB0.DBW0' is not valid: ");
  expect_symbol_refused(R"(<Symbol name="S" address="MW4" type="Integer"/>)",
                        "type 'Integer' is not valid: ");
  expect_symbol_refused(R"(<Symbol name="S" address="DB1.DBX0.0" type="Int"/>)", "Int");
  expect_symbol_refused(R"(<Symbol name="S" address="DB1.DBW2" type="Real"/>)", "Real");
  expect_symbol_refused(R"(<Symbol name="S" address="DB1.STRING0.20" type="String[10]"/>)",
                        "String[10]");
  expect_symbol_refused(R"(<Symbol name="S" address="DB1.STRING0.20" type="Text[20]"/>)",
                        "is for internal tags and has no PLC address");
  expect_symbol_refused(R"(<Symbol name="S" address="MW4" type="Text"/>)", "internal tags");
  const BundleResult ok = parse(symbols_document({
      R"(<Symbol name="a" address="DB1.DBX0.0" type="Bool"/>)",
      R"(<Symbol name="b" address="DB1.DBW2" type="Int"/>)",
      R"(<Symbol name="c" address="DB1.DBD4" type="Real"/>)",
      R"(<Symbol name="d" address="DB1.STRING10.20" type="String[20]"/>)",
      R"(<Symbol name="e" address="DB1.LREAL8" type="LReal"/>)",
      R"(<Symbol name="f" address="T5" type="Timer"/>)",
      R"(<Symbol name="g" address="Z3" type="Counter"/>)",
      R"(<Symbol name="h" address="EB1" type="Byte"/>)",
  }));
  ASSERT_TRUE(ok.ok()) << describe(ok);
  EXPECT_EQ(ok.bundle->plcs[0].symbols.at(3).type.string_length, 20);
  EXPECT_EQ(ok.bundle->plcs[0].symbols.at(7).address.area, channel::Area::inputs);
}

TEST(Symbols, AccessCycleComment) {
  expect_symbol_refused(R"(<Symbol name="S" address="MW4" type="Int" access="w"/>)",
                        "access 'w' is not known (r or rw)");
  expect_symbol_refused(R"(<Symbol name="S" address="MW4" type="Int" access="RW"/>)",
                        "access 'RW' is not known");
  for (const char* bad :
       {"", "1", "ms", "1.5s", "-1s", "1 s", "1sec", "1m", "1H", "99999999999h"}) {
    expect_symbol_refused(
        R"(<Symbol name="S" address="MW4" type="Int" cycle=")" + std::string(bad) + R"("/>)",
        "cycle '" + std::string(bad) + "' is not a duration such as 500ms, 2s, 1min or 1h");
  }
  for (const char* out : {"99ms", "0s", "61min", "2h", "3601s"}) {
    expect_symbol_refused(
        R"(<Symbol name="S" address="MW4" type="Int" cycle=")" + std::string(out) + R"("/>)",
        "cycle " + std::string(out) + " is out of range 100ms..1h");
  }
  expect_symbol_refused(
      R"(<Symbol name="S" address="MW4" type="Int" comment=")" + std::string(1025, 'c') + R"("/>)",
      "the comment is longer than 1024 characters");
  const BundleResult ok = parse(symbols_document({
      R"(<Symbol name="a" address="MW0" type="Int" cycle="100ms" access="r"/>)",
      R"(<Symbol name="b" address="MW2" type="Int" cycle="2s" access="rw"/>)",
      R"(<Symbol name="c" address="MW4" type="Int" cycle="1min" comment=")" +
          std::string(1024, 'c') + R"("/>)",
      R"(<Symbol name="d" address="MW6" type="Int" cycle="1h"/>)",
      R"(<Symbol name="e" address="MW8" type="Int" cycle="3600s"/>)",
  }));
  ASSERT_TRUE(ok.ok()) << describe(ok);
  const auto& s = ok.bundle->plcs[0].symbols;
  EXPECT_EQ(s[0].cycle, std::chrono::milliseconds(100));
  EXPECT_EQ(s[0].access, tags::Access::read);
  EXPECT_EQ(s[1].cycle, std::chrono::seconds(2));
  EXPECT_EQ(s[1].access, tags::Access::read_write);
  EXPECT_EQ(s[2].cycle, std::chrono::minutes(1));
  EXPECT_EQ(s[2].comment.size(), 1024u);
  EXPECT_EQ(s[3].cycle, std::chrono::hours(1));
  EXPECT_EQ(s[4].cycle, std::chrono::hours(1));
}

TEST(Symbols, EveryProblemOfASymbolIsReported) {
  const BundleResult result = parse(
      symbols_document({R"(<Symbol name="S" address="MW4" type="Real" access="x" cycle="5ms"/>)"}));
  EXPECT_EQ(count(result, Severity::error), 3u) << describe(result);
}

// ---------------------------------------------------------------------------------------------
// Unknown content is a warning; the bundle is still good

TEST(Unknown, ElementsAndAttributesAreWarnings) {
  const BundleResult result = parse(join({
      R"(<?xml version="1.0" encoding="utf-8"?>)",
      R"(<?some-tool processing instruction?>)",
      R"(<ScadaExport formatVersion="1" xmlns:x="urn:x" schema="2">)",
      R"(  <Plc name="PLC1" colour="red">)",
      R"(    <Connection address="10.0.0.1" security="none" timeout="5"/>)",
      R"(    <Notes>free text</Notes>)",
      R"(    <Certificates origin="tia"/>)",
      R"(    <Symbols>)",
      R"(      <Symbol name="A" address="MW0" type="Int" unit="rpm"/>)",
      R"(      <Folder name="x"/>)",
      R"(      <!-- a comment -->)",
      R"(    </Symbols>)",
      R"(  </Plc>)",
      R"(  <Device name="HMI1"/>)",
      R"(</ScadaExport>)",
  }));
  ASSERT_TRUE(result.ok()) << describe(result);
  EXPECT_EQ(count(result, Severity::error), 0u);
  EXPECT_TRUE(has_problem(result, 3, "unknown attribute 'xmlns:x' ignored", Severity::warning));
  EXPECT_TRUE(has_problem(result, 3, "unknown attribute 'schema' ignored", Severity::warning));
  EXPECT_TRUE(has_problem(result, 4, "unknown attribute 'colour' ignored", Severity::warning));
  EXPECT_TRUE(has_problem(result, 5, "unknown attribute 'timeout' ignored", Severity::warning));
  EXPECT_TRUE(has_problem(result, 6, "unknown element <Notes> ignored", Severity::warning));
  EXPECT_TRUE(has_problem(result, 7, "unknown attribute 'origin' ignored", Severity::warning));
  EXPECT_TRUE(has_problem(result, 9, "unknown attribute 'unit' ignored", Severity::warning));
  EXPECT_TRUE(has_problem(result, 10, "unknown element <Folder> ignored", Severity::warning));
  EXPECT_TRUE(has_problem(result, 14, "unknown element <Device> ignored", Severity::warning));
  EXPECT_EQ(result.problems.size(), 9u) << describe(result);
  for (const Problem& p : result.problems) {
    EXPECT_EQ(p.to_string().rfind("warning: line ", 0), 0u) << p.to_string();
  }
  EXPECT_EQ(result.bundle->plcs.at(0).symbols.size(), 1u);
}

TEST(Unknown, StrayTextIsAWarning) {
  const BundleResult result =
      parse(plc_document(R"(name="PLC1")", R"(address="10.0.0.1" security="none")", {"oops"}));
  ASSERT_TRUE(result.ok()) << describe(result);
  EXPECT_TRUE(has_problem(result, 3, "text 'oops' ignored", Severity::warning));
}

TEST(Unknown, AWarningDoesNotHideAnError) {
  const BundleResult result =
      parse(symbols_document({R"(<Symbol name="A" address="MW0" type="Int" unit="rpm"/>)",
                              R"(<Symbol name="B" address="MW1" type="Real"/>)"}));
  EXPECT_FALSE(result.ok());
  EXPECT_TRUE(has_problem(result, 6, "unknown attribute", Severity::warning));
  EXPECT_TRUE(has_problem(result, 7, "Real"));
}

// ---------------------------------------------------------------------------------------------
// Hostile documents

TEST(Hostile, BillionLaughsIsRefusedWithoutExpansion) {
  std::string dtd = "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n";
  for (int i = 1; i <= 9; ++i) {
    dtd += " <!ENTITY lol" + std::to_string(i) + " \"";
    for (int j = 0; j < 10; ++j)
      dtd += "&lol" + (i == 1 ? std::string() : std::to_string(i - 1)) + ";";
    dtd += "\">\n";
  }
  dtd += "]>\n<ScadaExport formatVersion=\"1\" tool=\"&lol9;\"/>\n";
  const BundleResult result = parse(dtd);
  EXPECT_FALSE(result.ok());
  ASSERT_EQ(result.problems.size(), 1u) << describe(result);
  EXPECT_TRUE(has_problem(result, 3, "DTDs and entity declarations are not processed"));
}

TEST(Hostile, DoctypeIsRefused) {
  expect_refused(
      join({R"(<?xml version="1.0"?>)", R"(<!DOCTYPE ScadaExport SYSTEM "file:///etc/passwd">)",
            R"(<ScadaExport formatVersion="1"/>)"}),
      2, "DTDs and entity declarations are not processed");
  expect_refused(join({R"(<?xml version="1.0"?>)", R"(<!DOCTYPE ScadaExport [ ]>)",
                       R"(<ScadaExport formatVersion="1"/>)"}),
                 2, "DTDs and entity declarations are not processed");
  // An undeclared entity is no entity: pugixml keeps the text as it is.
  const BundleResult result =
      parse(R"(<ScadaExport formatVersion="1" tool="&xxe;" project="a &amp; b"/>)");
  ASSERT_TRUE(result.ok()) << describe(result);
  EXPECT_EQ(result.bundle->tool, "&xxe;");
  EXPECT_EQ(result.bundle->project, "a & b");
}

TEST(Hostile, NulBytesAndReferencesToNonCharacters) {
  expect_refused(std::string("<ScadaExport formatVersion=\"1\"/>\n\0", 34), 2, "NUL byte");
  // pugixml would decode these into a NUL that silently cuts the name short.
  for (const char* reference : {"&#0;", "&#x0;", "&#00000000000000000000000000;", "&#1;",
                                "&#xFFFE;", "&#x110000;", "&#99999999999999999999;"}) {
    expect_refused(
        symbols_document(
            {"<Symbol name=\"A" + std::string(reference) + "B\" address=\"MW0\" type=\"Int\"/>"}),
        6, "the character reference '" + std::string(reference) + "' names a character XML does");
  }
  const BundleResult ok =
      parse(symbols_document({R"(<Symbol name="A&#x41;&#66;" address="MW0" type="Int"/>)"}));
  ASSERT_TRUE(ok.ok()) << describe(ok);
  EXPECT_EQ(ok.bundle->plcs[0].symbols[0].name, "AAB");
}

TEST(Hostile, DuplicateAttribute) {
  // pugixml takes it, the bundle does not: which value would count?
  const BundleResult result =
      parse(symbols_document({R"(<Symbol name="A" address="MW0" type="Int" type="Real"/>)"}));
  EXPECT_FALSE(result.ok());
  EXPECT_TRUE(has_problem(result, 6, "attribute 'type' given twice"));
}

// ---------------------------------------------------------------------------------------------
// Limits

TEST(Limits, DocumentSizeBeforeParsing) {
  BundleLimits limits;
  limits.document_bytes = 1000;
  const std::string big = "<ScadaExport formatVersion=\"1\">" + std::string(1000, ' ') + "</broken";
  BundleResult result = parse(big, limits);
  EXPECT_FALSE(result.ok());
  ASSERT_EQ(result.problems.size(), 1u) << describe(result);
  EXPECT_EQ(result.problems[0].line, 0u);
  EXPECT_EQ(result.problems[0].message, "the document is " + std::to_string(big.size()) +
                                            " bytes, more than the 1000 bytes a bundle may have");
  // The real limit is worded in MiB.
  EXPECT_NE(parse(std::string((64u << 20) + 1, ' '))
                .problems.at(0)
                .message.find("more than the 64 MiB a bundle may have"),
            std::string::npos);
  // read_bundle checks the file's size before reading it.
  TempDir dir;
  write_file(dir.file("big.scadaexport.xml"), big);
  result = read_bundle(dir.path(), limits);
  EXPECT_FALSE(result.ok());
  EXPECT_TRUE(has_problem(result, 0, "more than the 1000 bytes a bundle may have"));
}

TEST(Limits, Plcs) {
  BundleLimits limits;
  limits.plcs = 2;
  std::string document = "<ScadaExport formatVersion=\"1\">\n";
  for (int i = 1; i <= 5; ++i) {
    document += "<Plc name=\"P" + std::to_string(i) +
                "\"><Connection address=\"10.0.0.1\" security=\"none\"/></Plc>\n";
  }
  document += "</ScadaExport>\n";
  EXPECT_TRUE(parse(document).ok());
  const BundleResult result = parse(document, limits);
  EXPECT_FALSE(result.ok());
  ASSERT_EQ(result.problems.size(), 1u) << describe(result);
  EXPECT_TRUE(has_problem(result, 4, "more than 2 PLCs; a bundle may have 2"));
}

TEST(Limits, SymbolsInTheWholeBundle) {
  BundleLimits limits;
  limits.symbols = 3;
  const std::string two = R"(<Symbols><Symbol name="A" address="MW0" type="Int"/>)"
                          R"(<Symbol name="B" address="MW2" type="Int"/></Symbols>)";
  const std::string document =
      join({R"(<ScadaExport formatVersion="1">)",
            R"(<Plc name="P1"><Connection address="10.0.0.1" security="none"/>)", two, "</Plc>",
            R"(<Plc name="P2"><Connection address="10.0.0.1" security="none"/>)", two, "</Plc>",
            R"(<Plc name="P3"><Connection address="10.0.0.1" security="none"/>)", two, "</Plc>",
            "</ScadaExport>"});
  const BundleResult result = parse(document, limits);
  EXPECT_FALSE(result.ok());
  ASSERT_EQ(result.problems.size(), 1u) << describe(result);
  EXPECT_TRUE(has_problem(result, 6, "more than 3 symbols; a bundle may have 3"));
  limits.symbols = 6;
  EXPECT_TRUE(parse(document, limits).ok());
}

TEST(Limits, CertificatesPerPlc) {
  BundleLimits limits;
  limits.certificates_per_plc = 2;
  const std::string root = inline_der(test_pki().root.get(), "ca");
  const BundleResult result =
      parse(plc_document(R"(name="PLC1")", R"(address="10.0.0.1" security="none")",
                         {"<Certificates>", root, root, root, root, "</Certificates>"}),
            limits);
  EXPECT_FALSE(result.ok());
  ASSERT_EQ(result.problems.size(), 1u) << describe(result);
  EXPECT_TRUE(has_problem(result, 8, "more than 2 certificates for one PLC; a PLC may have 2"));
}

TEST(Limits, CertificateBytes) {
  BundleLimits limits;
  limits.certificate_bytes = 100;
  const Pki& p = test_pki();
  const std::size_t der_size = pki::der_of(p.root.get()).size();
  BundleResult result = parse(certificate_document(inline_der(p.root.get(), "ca")), limits);
  EXPECT_TRUE(has_problem(result, 6,
                          "the der-base64 certificate: it is " + std::to_string(der_size) +
                              " bytes, more than the 100 bytes a certificate may have"));
  result = parse(certificate_document(R"(<Certificate role="ca" encoding="pem">)" +
                                      pki::pem_of(p.root.get()) + "</Certificate>"),
                 limits);
  EXPECT_TRUE(has_problem(result, 6, "the PEM certificate is "));
  EXPECT_TRUE(has_problem(result, 6, "bytes, more than the 100 bytes a certificate may have"));
}

TEST(Limits, ProblemsAreCapped) {
  std::vector<std::string> symbols;
  for (int i = 0; i < 500; ++i) {
    symbols.push_back("<Symbol name=\"S" + std::to_string(i) +
                      "\" address=\"MW0\" type=\"Real\"/>");
  }
  const BundleResult result = parse(symbols_document(symbols));
  EXPECT_FALSE(result.ok());
  ASSERT_EQ(result.problems.size(), 101u);
  EXPECT_EQ(result.problems.back().message, "... and 400 more problems");
  EXPECT_EQ(result.problems.back().severity, Severity::error);
  EXPECT_EQ(result.problems[99].line, 6u + 99u);
}

// ---------------------------------------------------------------------------------------------
// read_bundle: files and folders

TEST(ReadBundle, MissingPath) {
  TempDir dir;
  const BundleResult result = read_bundle(dir.file("nothing-here"));
  EXPECT_FALSE(result.ok());
  ASSERT_EQ(result.problems.size(), 1u);
  EXPECT_NE(result.problems[0].message.find(dir.file("nothing-here").string()), std::string::npos)
      << describe(result);
}

TEST(ReadBundle, FolderNeedsExactlyOneDocument) {
  BundleFolder bundle;
  write_file(bundle.folder / "notes.xml", "<x/>");
  BundleResult result = read_bundle(bundle.folder);
  EXPECT_FALSE(result.ok());
  EXPECT_TRUE(has_problem(result, 0, "holds no *.scadaexport.xml file"));

  // One in a subfolder does not count.
  fs::create_directories(bundle.folder / "old");
  write_file(bundle.folder / "old/a.scadaexport.xml", R"(<ScadaExport formatVersion="1"/>)");
  EXPECT_FALSE(read_bundle(bundle.folder).ok());

  bundle.write(R"(<ScadaExport formatVersion="1"/>)", "b.scadaexport.xml");
  result = read_bundle(bundle.folder);
  ASSERT_TRUE(result.ok()) << describe(result);
  EXPECT_EQ(result.bundle->document, bundle.folder / "b.scadaexport.xml");

  bundle.write(R"(<ScadaExport formatVersion="1"/>)", "a.scadaexport.xml");
  result = read_bundle(bundle.folder);
  EXPECT_FALSE(result.ok());
  EXPECT_TRUE(has_problem(result, 0,
                          "holds 2 *.scadaexport.xml files (a.scadaexport.xml, "
                          "b.scadaexport.xml); a bundle holds exactly one"));
}

TEST(ReadBundle, ProblemsOfTheDocument) {
  BundleFolder bundle;
  const fs::path document =
      bundle.write(symbols_document({R"(<Symbol name="A" address="DB1.DBX0.0" type="Int"/>)"}));
  const BundleResult result = read_bundle(document);
  EXPECT_FALSE(result.ok());
  EXPECT_TRUE(has_problem(result, 6, "Int"));
}

}  // namespace
}  // namespace scada::importer
