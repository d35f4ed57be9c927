// The connection state machine in each security mode against plcsim: up, a read, a whole SZL
// list, and the session's facts (TLS version, the PLC's certificate, the granted PDU).
#include <gtest/gtest.h>

#include "connection_fixture.h"
#include "plcsim/plcsim.h"

namespace ch = scada::channel;
namespace ps = scada::plcsim;
using namespace scada::test;
using namespace std::chrono_literals;

TEST(ConnectionModes, EachModeComesUpAndServesJobs) {
  for (ch::SecurityMode mode :
       {ch::SecurityMode::none, ch::SecurityMode::tls, ch::SecurityMode::s7_secure}) {
    SCOPED_TRACE(ch::security_mode_name(mode));
    TestStore ts;
    TrustedPlc plc(ts, mode);
    EventLoop loop;
    ch::Connection c(loop.executor(), ts.store(), plc.connection_config());
    EventRecorder rec(c);
    c.start();
    auto up = rec.wait_state(ch::ConnectionState::up, 5s);
    ASSERT_TRUE(up) << (rec.events().empty() ? "" : rec.events().back().detail);
    auto data = read_data(c, 1, 0, 4);
    ASSERT_TRUE(std::holds_alternative<ch::Bytes>(data)) << std::get<std::string>(data);
    auto szl = read_szl(c, {0x0011, 0});
    ASSERT_TRUE(std::holds_alternative<ch::SzlList>(szl));
    auto info = c.info();
    EXPECT_GT(info.pdu, 0);
    if (mode != ch::SecurityMode::none) {
      EXPECT_EQ(info.tls_version, "TLSv1.3");
      ASSERT_TRUE(info.peer_certificate);
      EXPECT_EQ(info.peer_certificate->sha256, plc.files().server.sha256);
    }
  }
}

// WIRE.md §5: in s7-secure the ClientHello must fit one 1024-byte TPDU (real PLCs reset on a
// longer one, such as a post-quantum hybrid key share makes). Checked for the client contexts
// the connection builds: certificates only, with an own certificate, with a PSK offered.
TEST(ConnectionModes, ClientHelloFitsOneSecureTpdu) {
  TempDir dir;
  TestCa ca("client CA");
  const IssuedCertificate own = ca.issue("HMI");
  write_file(dir.file("own.crt"), own.certificate_pem);
  write_file(dir.file("own.key"), own.key_pem);
  ch::TlsSettings plain, mutual, psk;
  mutual.certificate = dir.file("own.crt");
  mutual.key = dir.file("own.key");
  psk.psk_identity = "an-identity-of-some-length-hmi-station-01";
  psk.psk_key = random_key(40);
  for (const ch::TlsSettings* s : {&plain, &mutual, &psk}) {
    ch::TlsEngine engine(ch::make_tls_client_context(*s), false, {}, "plc1.plant.example");
    ch::Bytes none;
    ASSERT_TRUE(engine.pump(none)) << engine.error();
    const ch::Bytes hello = engine.take_output();
    ASSERT_FALSE(hello.empty());
    EXPECT_EQ(hello[0], 0x16);  // a TLS handshake record
    EXPECT_EQ(ch::frame_dt(hello, 1024).size(), 1u) << hello.size() << " bytes";
  }
}
