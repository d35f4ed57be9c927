// plcsim's faults, as a client on the wire sees them, in each security mode: each must look
// like what a real CPU (or the network in front of it) does: an orderly close (with
// close_notify in the TLS modes), a reset, a stall, delayed replies that keep their order,
// undecodable and oversize frames, a wrong PDU reference, STOP, refused connections. Then the
// control socket that switches them from the command line.
// Assertions are about behaviour, never about how long something took.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../support/s7_test_client.h"
#include "plcsim/plcsim.h"
#include "test_modes.h"
#include "test_tls_files.h"

namespace ch = scada::channel;
namespace ps = scada::plcsim;

using ch::Area;
using ch::TransportSize;
using scada::test::ClientError;
using scada::test::ClientFailure;
using scada::test::ClientMode;
using scada::test::ClientOptions;
using scada::test::mode_label;
using scada::test::S7TestClient;
using scada::test::server_mode;
using scada::test::ServerTlsFiles;
using scada::test::TempDir;
using namespace std::chrono_literals;

namespace {

constexpr std::uint8_t kOk = 0xFF;
constexpr auto kProcessPeriod = 10ms;

ch::VarItem db_byte(std::uint16_t db, std::uint32_t offset, std::uint16_t count = 1) {
  return ch::VarItem{TransportSize::byte, count, db, Area::data_block, offset * 8};
}

ch::Pdu read_job(std::uint16_t ref, std::vector<ch::VarItem> items) {
  return ch::Pdu{ch::Header{ch::Rosctr::job, 0, ref}, ch::ReadVarRequest{std::move(items)}};
}

// The failure a call ends with; fails the test when it does not throw.
template <class F>
std::optional<ClientError> failure_of(F&& f) {
  try {
    f();
  } catch (const ClientError& e) {
    return e;
  }
  ADD_FAILURE() << "expected a ClientError";
  return std::nullopt;
}

class PlcsimFaultsTest : public testing::TestWithParam<ClientMode> {
 protected:
  PlcsimFaultsTest() : tls_(dir_, "PLC1") {
    ps::PlcConfig c;
    c.mode = server_mode(GetParam());
    c.max_amq = 3;
    c.process_period = kProcessPeriod;
    if (GetParam() != ClientMode::none) {
      c.tls.certificate = tls_.certificate_file;
      c.tls.key = tls_.key_file;
    }
    sim_ = std::make_unique<ps::Simulator>(std::vector<ps::PlcConfig>{c}, "127.0.0.1", 0);
  }

  ps::Plc& plc() { return sim_->plc(0); }

  std::unique_ptr<S7TestClient> client() {
    ClientOptions o;
    o.mode = GetParam();
    o.tls.trust = tls_.ca_file;
    return std::make_unique<S7TestClient>(o);
  }
  std::unique_ptr<S7TestClient> connected(std::uint16_t amq = 1) {
    auto c = client();
    c->connect(plc().port());
    c->setup(480, amq);
    return c;
  }
  std::uint8_t read_byte(S7TestClient& c, std::uint32_t offset) {
    const auto reply = c.read({db_byte(1, offset)});
    EXPECT_EQ(reply.items.at(0).return_code, kOk);
    return reply.items.at(0).data.empty() ? 0 : reply.items.at(0).data[0];
  }

  TempDir dir_;
  ServerTlsFiles tls_;
  std::unique_ptr<ps::Simulator> sim_;
};

TEST_P(PlcsimFaultsTest, CloseEndsTheConnectionInOrder) {
  auto c = connected();
  plc().close_connections();
  const auto e = failure_of([&] { c->receive_raw_tpdu(); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->failure(), ClientFailure::eof) << e->what();
  // In TLS an orderly close says so before TCP ends.
  EXPECT_EQ(c->close_notify_received(), GetParam() != ClientMode::none);
}

TEST_P(PlcsimFaultsTest, ResetIsAbortive) {
  auto c = connected();
  plc().reset_connections();
  const auto e = failure_of([&] { c->receive_raw_tpdu(); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->failure(), ClientFailure::reset) << e->what();
  EXPECT_FALSE(c->close_notify_received());
}

TEST_P(PlcsimFaultsTest, StallKeepsTcpOpenWithoutAnswersUntilSwitchedOff) {
  auto c = connected();
  plc().write(Area::data_block, 1, 0, ch::Bytes{0x33});
  plc().set_faults(ps::Faults{.stall = true});
  c->set_receive_timeout(300ms);
  const std::uint16_t ref = c->next_pdu_ref();
  c->send_pdu(read_job(ref, {db_byte(1, 0)}));
  const auto e = failure_of([&] { c->receive_pdu(); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->failure(), ClientFailure::timeout) << e->what();
  EXPECT_EQ(plc().connections(), 1u);  // TCP is still open

  plc().set_faults(ps::Faults{});
  c->set_receive_timeout(5s);
  const ch::Pdu reply = c->receive_pdu();  // the job sent during the stall is answered now
  EXPECT_EQ(reply.header.pdu_ref, ref);
  const auto* data = std::get_if<ch::ReadVarResponse>(&reply.body);
  ASSERT_NE(data, nullptr);
  EXPECT_EQ(data->items.at(0).data, ch::Bytes{0x33});
  EXPECT_EQ(read_byte(*c, 0), 0x33);
}

TEST_P(PlcsimFaultsTest, DelayedReplyArrives) {
  auto c = connected();
  plc().write(Area::data_block, 1, 5, ch::Bytes{0x44});
  plc().set_faults(ps::Faults{.delay = 100ms});
  EXPECT_EQ(read_byte(*c, 5), 0x44);
  const auto w = c->write({db_byte(1, 6)}, {ch::DataItem{0, ch::DataSize::byte_word_dword, {7}}});
  EXPECT_EQ(w.return_codes, std::vector<std::uint8_t>{kOk});
  EXPECT_EQ(plc().read(Area::data_block, 1, 6, 1), ch::Bytes{7});
}

TEST_P(PlcsimFaultsTest, DelayedPipelinedJobsAreAnsweredInOrder) {
  auto c = connected(1);  // AmQ 1: the PLC works on one job at a time
  ASSERT_EQ(c->negotiated().amq_calling, 1);
  plc().set_faults(ps::Faults{.delay = 30ms});
  // Three jobs at once: write 1, read it back, write 2.
  const std::uint16_t r1 = c->next_pdu_ref(), r2 = c->next_pdu_ref(), r3 = c->next_pdu_ref();
  const ch::VarItem x = db_byte(1, 10);
  auto write_job = [&](std::uint16_t ref, std::uint8_t v) {
    return ch::Pdu{ch::Header{ch::Rosctr::job, 0, ref},
                   ch::WriteVarRequest{{x}, {ch::DataItem{0, ch::DataSize::byte_word_dword, {v}}}}};
  };
  c->send_pdu(write_job(r1, 1));
  c->send_pdu(read_job(r2, {x}));
  c->send_pdu(write_job(r3, 2));
  std::vector<std::uint16_t> order;
  std::vector<ch::Pdu> replies;
  for (int i = 0; i < 3; ++i) {
    replies.push_back(c->receive_pdu());
    order.push_back(replies.back().header.pdu_ref);
  }
  EXPECT_EQ(order, (std::vector<std::uint16_t>{r1, r2, r3}));
  const auto* read = std::get_if<ch::ReadVarResponse>(&replies.at(1).body);
  ASSERT_NE(read, nullptr);
  EXPECT_EQ(read->items.at(0).data, ch::Bytes{1});  // executed in order, too
  EXPECT_EQ(plc().read(Area::data_block, 1, 10, 1), ch::Bytes{2});
}

TEST_P(PlcsimFaultsTest, GarbageFrameIsAWireError) {
  auto c = connected();
  plc().send_garbage();
  const auto frame = c->receive_raw_tpdu();
  ASSERT_FALSE(frame.ok()) << "the garbage decoded as COTP " << ch::cotp_name(frame.value());
  EXPECT_FALSE(frame.error().reason.empty());
  // Through the PDU path the same frame is a ClientError carrying the WireError.
  auto other = connected();
  plc().send_garbage();
  const auto e = failure_of([&] { other->receive_pdu(); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->failure(), ClientFailure::wire) << e->what();
  EXPECT_TRUE(e->wire_error().has_value());
}

TEST_P(PlcsimFaultsTest, OversizeTpktIsDetected) {
  auto c = connected();
  ASSERT_EQ(c->tpdu_size(), 1024u);
  plc().send_oversize_tpkt();
  const auto frame = c->receive_raw_tpdu();
  ASSERT_FALSE(frame.ok()) << "a frame longer than 4 + the TPDU size was accepted";
  EXPECT_EQ(frame.error().kind, ch::WireErrorKind::too_large) << frame.error().to_string();
}

TEST_P(PlcsimFaultsTest, WrongPduReference) {
  auto c = connected();
  plc().set_faults(ps::Faults{.wrong_pdu_ref = true});
  const std::uint16_t ref = c->next_pdu_ref();
  c->send_pdu(read_job(ref, {db_byte(1, 0)}));
  EXPECT_NE(c->receive_pdu().header.pdu_ref, ref);
  const auto e = failure_of([&] { c->read({db_byte(1, 0)}); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->failure(), ClientFailure::mismatch) << e->what();
  plc().set_faults(ps::Faults{});
  read_byte(*c, 0);  // matches again
}

TEST_P(PlcsimFaultsTest, StopReportsStopAndFreezesProcessValues) {
  auto c = connected();
  const ch::VarItem counter_item{TransportSize::dinteger, 1, 100, Area::data_block, 0};
  auto counter = [&] {
    const auto reply = c->read({counter_item});
    EXPECT_EQ(reply.items.at(0).return_code, kOk);
    return reply.items.at(0).data;
  };
  auto moves = [&] {  // bounded: a few hundred ticks at most
    const ch::Bytes first = counter();
    for (int i = 0; i < 300; ++i) {
      std::this_thread::sleep_for(kProcessPeriod);
      if (counter() != first) return true;
    }
    return false;
  };
  auto mode = [&] { return ch::parse_szl_0424(c->read_szl(0x0424, 0).list).value(); };

  EXPECT_EQ(mode(), ch::CpuMode::run);
  EXPECT_TRUE(moves()) << "the process values do not move in RUN";
  plc().set_running(false);
  EXPECT_EQ(mode(), ch::CpuMode::stop);
  const ch::Bytes stopped = counter();
  std::this_thread::sleep_for(kProcessPeriod * 10);
  EXPECT_EQ(counter(), stopped);
  // Memory stays reachable in STOP, as on a CPU.
  EXPECT_EQ(
      c->write({db_byte(1, 0)}, {ch::DataItem{0, ch::DataSize::byte_word_dword, {9}}}).return_codes,
      std::vector<std::uint8_t>{kOk});
  EXPECT_EQ(read_byte(*c, 0), 9);
  plc().set_running(true);
  EXPECT_EQ(mode(), ch::CpuMode::run);
  EXPECT_TRUE(moves()) << "the process values do not move after RUN again";
}

TEST_P(PlcsimFaultsTest, RefusedConnectionsEndBeforeTheHandshake) {
  auto established = connected();
  plc().set_faults(ps::Faults{.refuse_connections = true});
  auto refused = client();
  const auto e = failure_of([&] { refused->connect(plc().port()); });
  ASSERT_TRUE(e);
  // plcsim accepts and closes at once: TCP connects, then the handshake meets EOF, or a reset
  // when the first bytes arrive after the close.
  EXPECT_TRUE(e->failure() == ClientFailure::eof || e->failure() == ClientFailure::reset)
      << e->what();
  EXPECT_EQ(read_byte(*established, 0), 0);  // connections made before are not touched
  plc().set_faults(ps::Faults{});
  auto again = connected();
  EXPECT_EQ(read_byte(*again, 0), 0);
}

TEST_P(PlcsimFaultsTest, ClientDisconnectRequestIsConfirmed) {
  auto c = connected();
  c->send_raw_tpdu(ch::CotpDisconnect{false, 0x0001, 0x0C01, 0x80});
  const auto reply = c->receive_raw_tpdu();
  ASSERT_TRUE(reply.ok()) << reply.error().to_string();
  const auto* dc = std::get_if<ch::CotpDisconnect>(&reply.value());
  ASSERT_NE(dc, nullptr) << "expected DC, got " << ch::cotp_name(reply.value());
  EXPECT_TRUE(dc->confirm);
  EXPECT_EQ(dc->dst_ref, 0x0C01);
  const auto e = failure_of([&] { c->receive_raw_tpdu(); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->failure(), ClientFailure::eof) << e->what();
}

INSTANTIATE_TEST_SUITE_P(Modes, PlcsimFaultsTest,
                         testing::Values(ClientMode::none, ClientMode::tls, ClientMode::s7_secure),
                         mode_label);

// ---- The control socket

// One connection to the control socket; ask() sends a command line and returns the reply line.
class ControlClient {
 public:
  explicit ControlClient(const std::filesystem::path& socket_path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, socket_path.c_str(), sizeof address.sun_path - 1);
    if (fd_ < 0 ||
        ::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
      throw std::runtime_error(socket_path.string() + ": " + std::strerror(errno));
    }
  }
  ~ControlClient() { ::close(fd_); }
  ControlClient(const ControlClient&) = delete;
  ControlClient& operator=(const ControlClient&) = delete;

  std::string ask(const std::string& command) {
    const std::string line = command + "\n";
    if (::send(fd_, line.data(), line.size(), MSG_NOSIGNAL) != ssize_t(line.size())) {
      return "(send failed)";
    }
    std::string reply;
    for (int i = 0; i < 1000 && reply.find('\n') == std::string::npos; ++i) {  // bounded
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 5000) <= 0) return reply + "(no reply)";
      char buf[512];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return reply + "(closed)";
      reply.append(buf, std::size_t(n));
    }
    return reply.substr(0, reply.find('\n'));
  }

 private:
  int fd_ = -1;
};

TEST(PlcsimControlSocketTest, CommandsSwitchFaultsPerPlcOrForAll) {
  TempDir dir;
  ps::PlcConfig plc1, plc2;
  plc1.name = "PLC1";
  plc2.name = "PLC2";
  ps::Simulator sim({plc1, plc2}, "127.0.0.1", 0);
  const auto socket_path = dir.file("control.sock");
  sim.serve_control(socket_path);
  ControlClient control(socket_path);

  EXPECT_EQ(control.ask("status"), "ok PLC1 port " + std::to_string(sim.plc(0).port()) +
                                       " connections 0 RUN; PLC2 port " +
                                       std::to_string(sim.plc(1).port()) + " connections 0 RUN");
  EXPECT_EQ(control.ask("stall on"), "ok");
  EXPECT_TRUE(sim.plc(0).faults().stall);
  EXPECT_TRUE(sim.plc(1).faults().stall);
  EXPECT_EQ(control.ask("stall off"), "ok");
  EXPECT_FALSE(sim.plc(0).faults().stall);

  EXPECT_EQ(control.ask("PLC1 delay 50"), "ok");
  EXPECT_EQ(sim.plc(0).faults().delay, 50ms);
  EXPECT_EQ(sim.plc(1).faults().delay, 0ms);
  EXPECT_EQ(control.ask("1 refuse on"), "ok");  // by index
  EXPECT_TRUE(sim.plc(1).faults().refuse_connections);
  EXPECT_FALSE(sim.plc(0).faults().refuse_connections);
  EXPECT_EQ(control.ask("PLC2 wrongref on"), "ok");
  EXPECT_TRUE(sim.plc(1).faults().wrong_pdu_ref);

  EXPECT_EQ(control.ask("stop"), "ok");
  EXPECT_FALSE(sim.plc(0).running());
  EXPECT_FALSE(sim.plc(1).running());
  EXPECT_EQ(control.ask("PLC2 run"), "ok");
  EXPECT_TRUE(sim.plc(1).running());
  EXPECT_EQ(control.ask("PLC2 status"),
            "ok PLC2 port " + std::to_string(sim.plc(1).port()) + " connections 0 RUN");

  // A client sees what the commands do.
  ClientOptions o;
  S7TestClient client(o);
  client.connect(sim.plc(0).port());
  client.setup();
  EXPECT_EQ(control.ask("PLC1 close"), "ok");
  const auto e = failure_of([&] { client.receive_raw_tpdu(); });
  ASSERT_TRUE(e);
  EXPECT_EQ(e->failure(), ClientFailure::eof) << e->what();

  // Bad commands are answered with the reason and change nothing.
  const std::vector<std::string> bad = {"frobnicate", "stall maybe", "PLC1 delay soon",
                                        "delay -5",   "PLC1",        ""};
  for (const auto& command : bad) {
    SCOPED_TRACE("'" + command + "'");
    EXPECT_EQ(control.ask(command).rfind("error: ", 0), 0u);
  }
  EXPECT_EQ(sim.plc(0).faults().delay, 50ms);
  EXPECT_FALSE(sim.plc(0).faults().stall);
}

}  // namespace
