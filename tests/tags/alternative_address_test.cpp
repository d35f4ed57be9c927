// AlternativeAddress (DESIGN.md §7): the grammar's accepted forms, the canonical text, and every
// refusal with its position and reason.
#include <gtest/gtest.h>

#include <string>
#include <variant>

#include "tags/tags.h"

namespace scada::tags {
namespace {

AlternativeAddress ok(std::string_view text) {
  auto r = AlternativeAddress::parse(text);
  if (auto* e = std::get_if<ParseError>(&r)) {
    ADD_FAILURE() << "'" << text << "' refused: " << e->to_string();
    return {};
  }
  return std::get<AlternativeAddress>(r);
}

ParseError refused(std::string_view text) {
  auto r = AlternativeAddress::parse(text);
  if (auto* e = std::get_if<ParseError>(&r)) return *e;
  ADD_FAILURE() << "'" << text << "' accepted as " << std::get<AlternativeAddress>(r).to_string();
  return {};
}

TEST(AlternativeAddress, TheDocumentedExample) {
  const AlternativeAddress a = ok("AccessPoint=abc; IPAddress=111.111.111.111;");
  EXPECT_EQ(a.ip_address, "111.111.111.111");
  EXPECT_EQ(a.access_point, "abc");
  EXPECT_FALSE(a.port);
  EXPECT_FALSE(a.rack);
  EXPECT_FALSE(a.tsap);
}

TEST(AlternativeAddress, KeysInAnyCaseAndOrderSpacesAndEmptyPairs) {
  const AlternativeAddress a =
      ok("  port = 1102 ;ipaddress=10.0.0.2;;  RACK=0; sLoT = 2 ; accesspoint = S7ONLINE plant ");
  EXPECT_EQ(a.ip_address, "10.0.0.2");
  EXPECT_EQ(a.port, 1102);
  EXPECT_EQ(a.rack, 0);
  EXPECT_EQ(a.slot, 2);
  EXPECT_EQ(a.access_point, "S7ONLINE plant");
  EXPECT_EQ(a.to_string(), "IPAddress=10.0.0.2;AccessPoint=S7ONLINE plant;Port=1102;Rack=0;Slot=2");
}

TEST(AlternativeAddress, Ipv6HostNamesAndTsapForms) {
  EXPECT_EQ(ok("IPAddress=fd00::a;").ip_address, "fd00::a");
  EXPECT_EQ(ok("IPAddress=[fd00::a]").ip_address, "fd00::a");
  EXPECT_EQ(ok("IPAddress=::ffff:10.0.0.1").ip_address, "::ffff:10.0.0.1");
  EXPECT_EQ(ok("IPAddress=plc2.plant.example").ip_address, "plc2.plant.example");
  EXPECT_EQ(ok("IPAddress=PLC-2.").ip_address, "PLC-2.");
  EXPECT_EQ(ok("IPAddress=localhost").ip_address, "localhost");
  EXPECT_EQ(ok("IPAddress=10.0.0.2; TSAP=03.01").tsap, 0x0301);
  EXPECT_EQ(ok("IPAddress=10.0.0.2; TSAP=0302").tsap, 0x0302);
  EXPECT_EQ(ok("IPAddress=10.0.0.2; TSAP=0x1fA0").tsap, 0x1FA0);
  EXPECT_EQ(ok("IPAddress=10.0.0.2; TSAP=0x1fA0").to_string(), "IPAddress=10.0.0.2;TSAP=1FA0");
  EXPECT_EQ(ok("IPAddress=10.0.0.2; Port=65535").port, 65535);
}

TEST(AlternativeAddress, CanonicalTextParsesBackToTheSameValue) {
  for (const char* text :
       {"IPAddress=fd00::1:2; Port=102; TSAP=03.01;", "AccessPoint=x y; IPAddress=[::1]",
        "ipaddress=host-1.example.; rack=7; slot=31", "IPAddress=127.0.0.1"}) {
    const AlternativeAddress a = ok(text);
    EXPECT_EQ(ok(a.to_string()), a) << text << " -> " << a.to_string();
    EXPECT_LE(a.to_string().size(), std::string_view(text).size());
  }
}

struct Bad {
  const char* text;
  std::size_t position;
  const char* reason_part;
};

TEST(AlternativeAddress, RefusalsNameThePositionAndTheReason) {
  const Bad cases[] = {
      {"", 0, "IPAddress is missing"},
      {"   ;  ; ", 8, "IPAddress is missing"},
      {"AccessPoint=abc;", 16, "IPAddress is missing"},
      {"IPAddress 10.0.0.1", 0, "expected Key=Value"},
      {"=10.0.0.1", 0, "missing key"},
      {"IPAddress=", 10, "missing value for IPAddress"},
      {"IPAddress=10.0.0.1 Port=102", 23, "a second '='"},
      {"IPAddress=10.0.0.1; IPAddress=10.0.0.2", 20, "IPAddress given twice"},
      {"IPAddress=10.0.0.1; port=1; Port=2", 28, "Port given twice"},
      {"IPAddress=300.1.1.1", 10, "not a valid IPv4 address"},
      {"IPAddress=10.0.0", 10, "not a valid IPv4 address"},
      {"IPAddress=fd00:::1", 10, "not a valid IPv6 address"},
      {"IPAddress=[fd00::1", 10, "closing ']'"},
      {"IPAddress=plc_2", 10, "'_' is not allowed"},
      {"IPAddress=-plc", 10, "starts or ends with '-'"},
      {"IPAddress=a..b", 10, "empty label"},
      {"IPAddress=10.0.0.1; Port=0", 25, "Port must be a number 1..65535"},
      {"IPAddress=10.0.0.1; Port=65536", 25, "Port must be"},
      {"IPAddress=10.0.0.1; Port=-1", 25, "Port must be"},
      {"IPAddress=10.0.0.1; Port=1e2", 25, "Port must be"},
      {"IPAddress=10.0.0.1; Rack=8; Slot=1", 25, "Rack must be a number 0..7"},
      {"IPAddress=10.0.0.1; Rack=0; Slot=32", 33, "Slot must be a number 0..31"},
      {"IPAddress=10.0.0.1; Rack=0", 20, "Rack and Slot go together"},
      {"IPAddress=10.0.0.1; Slot=2", 20, "Rack and Slot go together"},
      {"IPAddress=10.0.0.1; TSAP=3.1", 25, "TSAP must be two hex bytes"},
      {"IPAddress=10.0.0.1; TSAP=03.0g", 25, "TSAP must be"},
      {"IPAddress=10.0.0.1; TSAP=03.01; Rack=0; Slot=1", 20, "TSAP or Rack and Slot"},
      {"IPAddress=10.0.0.1; Address=10.0.0.2", 20, "unknown key 'Address'"},
      {"IPAddress=10.0.0.1; AccessPoint=a b\x01", 35, "control character"},
      {"IPAddress=10.0.0.1; AccessPoint=a\tb", 33, "control character"},
  };
  for (const Bad& b : cases) {
    SCOPED_TRACE(b.text);
    const ParseError e = refused(b.text);
    EXPECT_EQ(e.position, b.position) << e.to_string();
    EXPECT_NE(e.reason.find(b.reason_part), std::string::npos) << e.reason;
  }
}

// Found by fuzz_alternative_address: a NUL inside a value once passed the IPv6 check (the C
// API stopped at it) and was kept in the address.
TEST(AlternativeAddress, ANulByteIsRefusedWhereItStands) {
  static const char kText[] = "IPAddress=[f0::\0\t];Port=1";
  const std::string text(kText, sizeof kText - 1);
  ASSERT_EQ(text.size(), 25u);
  const ParseError e = refused(text);
  EXPECT_EQ(e.position, 15u);
  EXPECT_NE(e.reason.find("control character"), std::string::npos) << e.reason;
}

TEST(AlternativeAddress, LongerThanTheTagHoldsIsRefused) {
  const std::string text = "IPAddress=10.0.0.1; AccessPoint=" + std::string(240, 'a');
  const ParseError e = refused(text);
  EXPECT_EQ(e.position, 255u);
  EXPECT_NE(e.reason.find("longer than 255"), std::string::npos) << e.reason;
  // Exactly 255 characters are fine.
  ok("IPAddress=10.0.0.1; AccessPoint=" + std::string(255 - 32, 'a'));
}

}  // namespace
}  // namespace scada::tags
