// TagServer against two plcsim PLCs on loopback with different memory: acquisition and quality,
// writes of every data type, the system tags and the connection change of DESIGN.md §7
// (issue 5, tests 1-7), connections and tags added and removed while running, and the statistics
// for the metrics. Certificates are made while the tests run.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>

#include "connection_fixture.h"
#include "tags/tags.h"
#include "test_pki.h"

namespace scada::tags {
namespace {

using namespace std::chrono_literals;
using channel::Area;
using channel::SecurityMode;
using test::EventLoop;
using test::TestStore;
using test::TrustedPlc;
namespace pki = certstore::test_pki;
namespace fs = std::filesystem;

constexpr auto kWait = 15s;  // bound of every wait for something that should happen

// Waits until pred() holds, polling; false when it did not within timeout.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout = kWait) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

// Every update the server publishes, kept in order.
class Updates {
 public:
  explicit Updates(TagServer& server) {
    subscription_ = server.subscribe([this](const TagUpdate& u) {
      std::lock_guard<std::mutex> lock(mutex_);
      all_.push_back(u);
    });
  }
  ~Updates() { subscription_.disconnect(); }
  std::vector<TagUpdate> of(const std::string& name, std::size_t from = 0) const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<TagUpdate> out;
    for (std::size_t i = from; i < all_.size(); ++i) {
      if (all_[i].name == name) out.push_back(all_[i]);
    }
    return out;
  }
  std::size_t size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return all_.size();
  }

 private:
  mutable std::mutex mutex_;
  std::vector<TagUpdate> all_;
  boost::signals2::scoped_connection subscription_;
};

WriteResult write(TagServer& server, const std::string& name, Value value) {
  auto promise = std::make_shared<std::promise<WriteResult>>();
  auto future = promise->get_future();
  server.write(name, std::move(value), [promise](WriteResult r) { promise->set_value(r); });
  if (future.wait_for(kWait) != std::future_status::ready) return std::string("no answer");
  return future.get();
}

WriteResult write_text(TagServer& server, const std::string& name, const std::string& text) {
  auto promise = std::make_shared<std::promise<WriteResult>>();
  auto future = promise->get_future();
  server.write_text(name, text, [promise](WriteResult r) { promise->set_value(r); });
  if (future.wait_for(kWait) != std::future_status::ready) return std::string("no answer");
  return future.get();
}

TagState state_of(const TagServer& server, const std::string& name) {
  auto s = server.read(name);
  if (!s) ADD_FAILURE() << "no tag " << name;
  return s.value_or(TagState{});
}

std::string text_of(const TagServer& server, const std::string& name) {
  const Value v = state_of(server, name).value;
  if (auto* s = std::get_if<std::string>(&v)) return *s;
  return value_to_string(v);
}

std::int64_t int_of(const TagServer& server, const std::string& name) {
  const Value v = state_of(server, name).value;
  if (auto* i = std::get_if<std::int64_t>(&v)) return *i;
  ADD_FAILURE() << name << " holds " << value_to_string(v);
  return -999;
}

bool good_with(const TagServer& server, const std::string& name, const Value& value) {
  auto s = server.read(name);
  return s && s->quality == Quality::good && s->value == value;
}

std::string describe(const TagServer& server, const std::string& name) {
  const TagState s = state_of(server, name);
  return name + " = " + value_to_string(s.value) + " " + quality_name(s.quality) + " " +
         quality_reason_name(s.reason) + " " + s.detail;
}

void put_word(plcsim::Plc& plc, std::uint32_t offset, std::uint16_t value) {
  plc.write(Area::data_block, 1, offset,
            channel::Bytes{std::uint8_t(value >> 8), std::uint8_t(value)});
}

// A port on 127.0.0.1 where nothing listens.
std::uint16_t closed_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor acceptor(
      io, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  return acceptor.local_endpoint().port();
}

std::string alternative_to(std::uint16_t port) {
  return "IPAddress=127.0.0.1; Port=" + std::to_string(port) + ";";
}

// A tag of a connection (empty address: an internal tag).
TagConfig tag(const std::string& name, const std::string& type, const std::string& connection = "",
              const std::string& address = "", std::chrono::milliseconds cycle = 100ms) {
  TagConfig t;
  t.name = name;
  t.type = std::get<TypeSpec>(TypeSpec::parse(type));
  t.connection = connection;
  if (!address.empty()) t.address = std::get<Address>(Address::parse(address));
  t.cycle = cycle;
  return t;
}

const std::string kSpeed = "Speed";
const std::string kForce = "@PLC1@ForceConnectionState";
const std::string kUse = "@PLC1@UseAlternativeAddress";
const std::string kAlt = "@PLC1@AlternativeAddress";
const std::string kState = "@PLC1@ConnectionState";
const std::string kCurrent = "@PLC1@CurrentAddress";
const std::string kError = "@PLC1@LastError";
const std::string kPeer = "@PLC1@PeerCertificate";
const std::string kDays = "@PLC1@CertificateDaysLeft";

// A server with one connection PLC1 (quick retries unless retry_max says otherwise) and the tag
// Speed (DB1.DBW0, 10 Hz).
std::unique_ptr<TagServer> speed_server(EventLoop& loop, TestStore& ts, ConnectionSetup setup,
                                        std::chrono::milliseconds retry_max = 200ms) {
  auto server = std::make_unique<TagServer>(loop.executor(), ts.store());
  setup.config.name = "PLC1";
  setup.config.retry_min = 50ms;
  setup.config.retry_max = retry_max;
  EXPECT_EQ(server->add_connection(std::move(setup)), std::nullopt);
  EXPECT_EQ(server->add_tag(tag(kSpeed, "Word", "PLC1", "DB1.DBW0")), std::nullopt);
  return server;
}

ConnectionSetup setup_with_alternative(const channel::ConnectionConfig& config,
                                       std::uint16_t port) {
  ConnectionSetup s;
  s.config = config;
  s.alternative_address = alternative_to(port);
  return s;
}

// Two PLCs in one mode, each with a certificate of its own CA (both CAs imported), and
// different memory: DB1.DBW0 is 1111 on PLC1 and 2222 on PLC2.
class TwoPlcs : public ::testing::TestWithParam<SecurityMode> {
 protected:
  void SetUp() override {
    plc1_ = std::make_unique<TrustedPlc>(ts_, GetParam(), plcsim::PlcConfig{}, "plc1");
    plc2_ = std::make_unique<TrustedPlc>(ts_, GetParam(), plcsim::PlcConfig{}, "plc2");
    put_word(plc1(), 0, 1111);
    put_word(plc2(), 0, 2222);
  }

  plcsim::Plc& plc1() { return plc1_->plc(); }
  plcsim::Plc& plc2() { return plc2_->plc(); }

  ConnectionSetup setup(std::uint32_t force = 1, std::uint32_t use = 0, std::string alt = "") {
    ConnectionSetup s;
    s.config = plc1_->connection_config();
    s.config.name = "PLC1";
    s.config.retry_min = 50ms;
    s.config.retry_max = 200ms;
    s.force_connection_state = force;
    s.use_alternative_address = use;
    s.alternative_address = std::move(alt);
    return s;
  }

  // PLC1's connection and the tag Speed (DB1.DBW0, 10 Hz).
  std::unique_ptr<TagServer> make_server(ConnectionSetup s) {
    return speed_server(loop_, ts_, std::move(s));
  }

  std::string port_text(plcsim::Plc& plc) { return ":" + std::to_string(plc.port()) + " "; }

  TestStore ts_;
  EventLoop loop_;
  std::unique_ptr<TrustedPlc> plc1_, plc2_;
};

// ---------------------------------------------------------------------------------------------
// Test 1: the documented three-write sequence, there and back.

TEST_P(TwoPlcs, DocumentedSequenceMovesToPlc2AndBack) {
  auto server = make_server(setup());
  server->start();
  ASSERT_TRUE(eventually([&] { return good_with(*server, kSpeed, std::int64_t(1111)); }))
      << describe(*server, kSpeed);
  EXPECT_EQ(int_of(*server, kState), 2);
  EXPECT_NE(text_of(*server, kCurrent).find(port_text(plc1())), std::string::npos)
      << text_of(*server, kCurrent);
  EXPECT_NE(text_of(*server, kCurrent).find("(original)"), std::string::npos);
  EXPECT_NE(text_of(*server, kPeer).find(plc1_->files().server.sha256), std::string::npos)
      << text_of(*server, kPeer);
  EXPECT_EQ(state_of(*server, kDays).quality, Quality::good);
  EXPECT_EQ(int_of(*server, kDays), 0);  // the test CA's certificates are valid for a day

  ASSERT_EQ(write(*server, kAlt, std::string(alternative_to(plc2().port()))), std::nullopt);
  EXPECT_EQ(text_of(*server, kAlt), "IPAddress=127.0.0.1;Port=" + std::to_string(plc2().port()));
  EXPECT_EQ(int_of(*server, kState), 2) << "writing the alternative alone changes nothing";
  EXPECT_EQ(plc2().connections(), 0u);

  // Force 0: the connection closes and stays down.
  ASSERT_EQ(write(*server, kForce, std::int64_t(0)), std::nullopt);
  EXPECT_EQ(int_of(*server, kForce), 0);
  EXPECT_EQ(int_of(*server, kState), 0);
  EXPECT_EQ(state_of(*server, kSpeed).quality, Quality::bad);
  EXPECT_EQ(state_of(*server, kSpeed).reason, QualityReason::not_connected);
  EXPECT_EQ(text_of(*server, kPeer), "");
  EXPECT_EQ(state_of(*server, kDays).quality, Quality::bad);
  EXPECT_TRUE(eventually([&] { return plc1().connections() == 0; }));

  // Use 1: the alternative parameters are selected, nothing connects.
  ASSERT_EQ(write(*server, kUse, std::int64_t(1)), std::nullopt);
  EXPECT_EQ(int_of(*server, kUse), 1);
  EXPECT_EQ(int_of(*server, kState), 0);
  EXPECT_NE(text_of(*server, kCurrent).find(port_text(plc2())), std::string::npos)
      << text_of(*server, kCurrent);
  EXPECT_NE(text_of(*server, kCurrent).find("(alternative)"), std::string::npos);
  EXPECT_EQ(plc2().connections(), 0u);

  // Force 1: connected to PLC2, reads come from PLC2.
  ASSERT_EQ(write(*server, kForce, std::int64_t(1)), std::nullopt);
  ASSERT_TRUE(eventually([&] { return good_with(*server, kSpeed, std::int64_t(2222)); }))
      << describe(*server, kSpeed);
  EXPECT_EQ(int_of(*server, kState), 2);
  EXPECT_EQ(plc1().connections(), 0u);
  EXPECT_EQ(plc2().connections(), 1u);
  EXPECT_NE(text_of(*server, kPeer).find(plc2_->files().server.sha256), std::string::npos);

  // And back the same way.
  ASSERT_EQ(write(*server, kForce, std::int64_t(0)), std::nullopt);
  EXPECT_EQ(int_of(*server, kState), 0);
  ASSERT_EQ(write(*server, kUse, std::int64_t(0)), std::nullopt);
  EXPECT_NE(text_of(*server, kCurrent).find(port_text(plc1())), std::string::npos);
  ASSERT_EQ(write(*server, kForce, std::int64_t(1)), std::nullopt);
  ASSERT_TRUE(eventually([&] { return good_with(*server, kSpeed, std::int64_t(1111)); }))
      << describe(*server, kSpeed);
  EXPECT_EQ(int_of(*server, kState), 2);
  EXPECT_TRUE(eventually([&] { return plc2().connections() == 0; }));
  EXPECT_EQ(text_of(*server, kError), "") << "nothing failed on the way";
}

// Every step is visible in ConnectionState's own updates, in order.
TEST_P(TwoPlcs, ConnectionStateTellsEachStep) {
  auto server = make_server(setup(1, 0, alternative_to(plc2().port())));
  Updates updates(*server);
  server->start();
  ASSERT_TRUE(eventually([&] { return good_with(*server, kSpeed, std::int64_t(1111)); }));
  ASSERT_EQ(write(*server, kForce, std::int64_t(0)), std::nullopt);
  ASSERT_EQ(write(*server, kUse, std::int64_t(1)), std::nullopt);
  ASSERT_EQ(write(*server, kForce, std::int64_t(1)), std::nullopt);
  ASSERT_TRUE(eventually([&] { return good_with(*server, kSpeed, std::int64_t(2222)); }));
  std::vector<std::int64_t> states;
  for (const TagUpdate& u : updates.of(kState))
    states.push_back(std::get<std::int64_t>(u.state.value));
  EXPECT_EQ(states, (std::vector<std::int64_t>{1, 2, 0, 1, 2}));
}

// ---------------------------------------------------------------------------------------------
// Test 2: start values of ForceConnectionState.

TEST_P(TwoPlcs, ForceStartValueZeroKeepsTheConnectionDown) {
  auto server = make_server(setup(0));
  server->start();
  ASSERT_TRUE(eventually([&] {
    return state_of(*server, kSpeed).detail.find("forced down") != std::string::npos;
  })) << describe(*server, kSpeed);
  EXPECT_EQ(int_of(*server, kForce), 0);
  EXPECT_EQ(int_of(*server, kState), 0);
  EXPECT_EQ(state_of(*server, kSpeed).quality, Quality::bad);
  EXPECT_EQ(state_of(*server, kSpeed).reason, QualityReason::not_connected);
  // Several cycles later, still nothing has reached the PLC.
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(plc1().connections(), 0u);
  EXPECT_EQ(int_of(*server, kState), 0);
  EXPECT_EQ(server->connection_info("PLC1"), std::nullopt) << "no session was ever made";
  // A write to the PLC fails at once with a clear error.
  const WriteResult refused = write(*server, kSpeed, std::int64_t(5));
  ASSERT_TRUE(refused.has_value());
  EXPECT_NE(refused->find("not connected (forced down)"), std::string::npos) << *refused;

  ASSERT_EQ(write(*server, kForce, std::int64_t(1)), std::nullopt);
  ASSERT_TRUE(eventually([&] { return good_with(*server, kSpeed, std::int64_t(1111)); }))
      << describe(*server, kSpeed);
  EXPECT_EQ(int_of(*server, kState), 2);
}

TEST_P(TwoPlcs, ForceStartValueOneConnectsAtStart) {
  auto server = make_server(setup(1));
  EXPECT_EQ(int_of(*server, kForce), 1);
  EXPECT_EQ(int_of(*server, kState), 0) << "nothing runs before start()";
  server->start();
  ASSERT_TRUE(eventually([&] { return good_with(*server, kSpeed, std::int64_t(1111)); }))
      << describe(*server, kSpeed);
  EXPECT_EQ(int_of(*server, kState), 2);
  EXPECT_EQ(plc1().connections(), 1u);
}

TEST_P(TwoPlcs, UseStartValueOneConnectsToTheAlternative) {
  auto server = make_server(setup(1, 1, alternative_to(plc2().port())));
  server->start();
  ASSERT_TRUE(eventually([&] { return good_with(*server, kSpeed, std::int64_t(2222)); }))
      << describe(*server, kSpeed);
  EXPECT_EQ(plc1().connections(), 0u);
  EXPECT_NE(text_of(*server, kCurrent).find("(alternative)"), std::string::npos);
}

TEST_P(TwoPlcs, BadStartValuesAreRefused) {
  TagServer server(loop_.executor(), ts_.store());
  auto bad_force = setup(2);
  auto why = server.add_connection(bad_force);
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(*why, "start value of @PLC1@ForceConnectionState must be 0 or 1, not 2");
  why = server.add_connection(setup(1, 1, ""));
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("needs a start value of @PLC1@AlternativeAddress"), std::string::npos);
  why = server.add_connection(setup(1, 0, "IPAddress=;"));
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("start value of @PLC1@AlternativeAddress: AlternativeAddress refused"),
            std::string::npos)
      << *why;
  EXPECT_TRUE(server.tag_names().empty()) << "a refused connection adds no system tags";
}

// ---------------------------------------------------------------------------------------------
// Test 3: make-before-break under 10 Hz acquisition.

TEST_P(TwoPlcs, MakeBeforeBreakHasNoBadCycle) {
  auto server = make_server(setup(1, 0, alternative_to(plc2().port())));
  Updates updates(*server);
  server->start();
  ASSERT_TRUE(eventually([&] { return good_with(*server, kSpeed, std::int64_t(1111)); }));
  const std::size_t mark = updates.size();

  ASSERT_EQ(write(*server, kUse, std::int64_t(1)), std::nullopt);
  ASSERT_TRUE(eventually([&] { return good_with(*server, kSpeed, std::int64_t(2222)); }))
      << describe(*server, kSpeed) << " / " << text_of(*server, kError);
  // A few more cycles from PLC2.
  const std::size_t switched = updates.of(kSpeed, mark).size();
  ASSERT_TRUE(eventually([&] { return updates.of(kSpeed, mark).size() >= switched + 5; }));

  const auto speed = updates.of(kSpeed, mark);
  std::size_t from_plc1 = 0, from_plc2 = 0;
  for (const TagUpdate& u : speed) {
    EXPECT_EQ(u.state.quality, Quality::good)
        << quality_reason_name(u.state.reason) << " " << u.state.detail;
    const auto v = std::get<std::int64_t>(u.state.value);
    if (v == 1111) {
      EXPECT_EQ(from_plc2, 0u) << "a value of PLC1 after one of PLC2";
      ++from_plc1;
    } else {
      EXPECT_EQ(v, 2222);
      ++from_plc2;
    }
  }
  EXPECT_GE(from_plc2, 5u);
  for (const TagUpdate& u : updates.of(kState, mark)) {
    ADD_FAILURE() << "ConnectionState changed to " << value_to_string(u.state.value);
  }
  EXPECT_TRUE(eventually([&] { return plc1().connections() == 0; })) << "the old session closes";
  EXPECT_EQ(server->statistics("PLC1")->switches, 1u);
  EXPECT_EQ(server->statistics("PLC1")->sessions_up, 2u) << "the first and the new one";
  EXPECT_NE(text_of(*server, kCurrent).find(port_text(plc2())), std::string::npos);
  EXPECT_NE(text_of(*server, kPeer).find(plc2_->files().server.sha256), std::string::npos);
  EXPECT_EQ(text_of(*server, kError), "");

  // Changing the alternative in use switches the same way (here: to PLC1's port).
  const std::size_t mark2 = updates.size();
  ASSERT_EQ(write(*server, kAlt, alternative_to(plc1().port())), std::nullopt);
  ASSERT_TRUE(eventually([&] { return good_with(*server, kSpeed, std::int64_t(1111)); }));
  for (const TagUpdate& u : updates.of(kSpeed, mark2)) EXPECT_EQ(u.state.quality, Quality::good);
  EXPECT_EQ(server->statistics("PLC1")->switches, 2u);
  EXPECT_EQ(server->statistics("PLC1")->sessions_up, 3u);
}

TEST_P(TwoPlcs, UnreachableAlternativeLeavesTheOldSessionServing) {
  const std::uint16_t nowhere = closed_port();
  auto server = make_server(setup(1, 0, alternative_to(nowhere)));
  Updates updates(*server);
  server->start();
  ASSERT_TRUE(eventually([&] { return good_with(*server, kSpeed, std::int64_t(1111)); }));
  const std::size_t mark = updates.size();

  ASSERT_EQ(write(*server, kUse, std::int64_t(1)), std::nullopt);
  ASSERT_TRUE(eventually([&] { return text_of(*server, kError) != ""; }));
  const std::string error = text_of(*server, kError);
  EXPECT_NE(error.find("switch to 127.0.0.1:" + std::to_string(nowhere)), std::string::npos)
      << error;
  EXPECT_NE(error.find("refused"), std::string::npos) << error;
  EXPECT_NE(error.find("still on 127.0.0.1:" + std::to_string(plc1().port())), std::string::npos)
      << error;
  // PLC1 keeps serving: fresh good values keep coming.
  const std::size_t seen = updates.of(kSpeed, mark).size();
  ASSERT_TRUE(eventually([&] { return updates.of(kSpeed, mark).size() >= seen + 5; }));
  for (const TagUpdate& u : updates.of(kSpeed, mark)) {
    EXPECT_EQ(u.state.quality, Quality::good);
    EXPECT_EQ(u.state.value, Value(std::int64_t(1111)));
  }
  EXPECT_EQ(int_of(*server, kState), 2);
  EXPECT_NE(text_of(*server, kCurrent).find(port_text(plc1())), std::string::npos);
  EXPECT_EQ(server->statistics("PLC1")->switches, 0u);

  // Back to the original: the attempt is dropped, nothing else changes.
  ASSERT_EQ(write(*server, kUse, std::int64_t(0)), std::nullopt);
  const std::size_t before = updates.of(kSpeed, mark).size();
  ASSERT_TRUE(eventually([&] { return updates.of(kSpeed, mark).size() >= before + 3; }));
  EXPECT_EQ(server->statistics("PLC1")->switches, 0u);
  EXPECT_EQ(int_of(*server, kState), 2);
}

// A write that is on its way when the connection changes is still answered: by the PLC when a
// switch replaces the session (the old one closes after the answer), and at once when Force 0
// closes it (nobody can know then whether the PLC took it).
TEST_P(TwoPlcs, WritesInFlightAreAnsweredAcrossSwitchAndForce) {
  auto server = make_server(setup(1, 0, alternative_to(plc2().port())));
  server->start();
  ASSERT_TRUE(eventually([&] { return good_with(*server, kSpeed, std::int64_t(1111)); }));

  plc1().set_faults({.delay = 400ms});
  auto promise = std::make_shared<std::promise<WriteResult>>();
  auto in_flight = promise->get_future();
  server->write(kSpeed, std::int64_t(1234), [promise](WriteResult r) { promise->set_value(r); });
  ASSERT_EQ(write(*server, kUse, std::int64_t(1)), std::nullopt);
  ASSERT_EQ(in_flight.wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(in_flight.get(), std::nullopt) << "the PLC's answer, after the switch";
  EXPECT_EQ(plc1().read(Area::data_block, 1, 0, 2), (channel::Bytes{0x04, 0xD2}));
  EXPECT_TRUE(eventually([&] { return plc1().connections() == 0; })) << "then PLC1 closes";
  ASSERT_TRUE(eventually([&] { return good_with(*server, kSpeed, std::int64_t(2222)); }));

  plc2().set_faults({.delay = 400ms});
  auto promise2 = std::make_shared<std::promise<WriteResult>>();
  auto in_flight2 = promise2->get_future();
  server->write(kSpeed, std::int64_t(4321), [promise2](WriteResult r) { promise2->set_value(r); });
  std::this_thread::sleep_for(50ms);  // on the wire
  ASSERT_EQ(write(*server, kForce, std::int64_t(0)), std::nullopt);
  ASSERT_EQ(in_flight2.wait_for(kWait), std::future_status::ready);
  const WriteResult r = in_flight2.get();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r,
            "Speed: not confirmed: the connection was forced down before the PLC answered; the "
            "value may or may not be written");
}

// ---------------------------------------------------------------------------------------------
// Test 4: a PLC2 with an unknown self-signed certificate.

// A tls PLC with a self-signed certificate of its own that nobody imported.
class SelfSignedPlc {
 public:
  SelfSignedPlc() {
    pki::KeyPtr key = pki::make_key(pki::KeyKind::ec_p256);
    pki::CertificateSpec spec;
    spec.subject = {{"O", "tag tests"}, {"CN", "PLC2 replacement CPU"}};
    spec.not_before =
        std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()) - 1h;
    spec.not_after = spec.not_before + 48h;
    spec.ca = false;
    spec.ip_addresses = {"127.0.0.1"};
    auto certificate = pki::make_certificate(spec, key.get(), nullptr, key.get());
    sha256_ = pki::sha256_hex(pki::der_of(certificate.get()));
    test::write_file(dir_.file("plc.crt"), pki::pem_of(certificate.get()));
    test::write_file(dir_.file("plc.key"), pki::pem_of_private_key(key.get()));
    plcsim::PlcConfig config;
    config.mode = SecurityMode::tls;
    config.tls.certificate = dir_.file("plc.crt");
    config.tls.key = dir_.file("plc.key");
    simulator_ = std::make_unique<plcsim::Simulator>(std::vector{config}, "127.0.0.1", 0);
  }
  plcsim::Plc& plc() { return simulator_->plc(0); }
  const std::string& sha256() const { return sha256_; }

 private:
  test::TempDir dir_;
  std::string sha256_;
  std::unique_ptr<plcsim::Simulator> simulator_;
};

TEST(TagServerTrust, SwitchToUnknownCertificateCompletesAfterManualTrust) {
  TestStore ts;
  EventLoop loop;
  TrustedPlc plc1(ts, SecurityMode::tls, {}, "plc1");
  put_word(plc1.plc(), 0, 1111);

  // PLC2 made its own certificate; nobody imported it.
  SelfSignedPlc plc2;
  const std::string sha256 = plc2.sha256();
  put_word(plc2.plc(), 0, 2222);

  // A long retry wait: only the trust change may end it early.
  auto owner = speed_server(
      loop, ts, setup_with_alternative(plc1.connection_config(), plc2.plc().port()), 5s);
  TagServer& server = *owner;
  Updates updates(server);
  server.start();
  ASSERT_TRUE(eventually([&] { return good_with(server, kSpeed, std::int64_t(1111)); }));
  const std::size_t mark = updates.size();

  ASSERT_EQ(write(server, kUse, std::int64_t(1)), std::nullopt);
  const fs::path quarantined = ts.layout().untrusted() / (sha256 + ".der");
  ASSERT_TRUE(eventually([&] { return fs::exists(quarantined); }));
  ASSERT_TRUE(eventually([&] {
    return text_of(server, kError).find("quarantined") != std::string::npos;
  })) << text_of(server, kError);
  const std::string error = text_of(server, kError);
  EXPECT_NE(error.find("untrusted-certificate"), std::string::npos) << error;
  EXPECT_NE(error.find(sha256 + ".der"), std::string::npos) << error;
  EXPECT_TRUE(good_with(server, kSpeed, std::int64_t(1111))) << "PLC1 still serves";
  EXPECT_EQ(int_of(server, kState), 2);

  // The operator trusts it by moving the file; the switch completes with no other action.
  fs::rename(quarantined, ts.layout().trusted() / (sha256 + ".der"));
  ASSERT_TRUE(eventually([&] { return good_with(server, kSpeed, std::int64_t(2222)); }, 4s))
      << describe(server, kSpeed) << " / " << text_of(server, kError);
  EXPECT_NE(text_of(server, kPeer).find(sha256), std::string::npos);
  EXPECT_NE(text_of(server, kPeer).find("CN=PLC2 replacement CPU"), std::string::npos);
  EXPECT_EQ(int_of(server, kDays), 1);
  for (const TagUpdate& u : updates.of(kSpeed, mark)) EXPECT_EQ(u.state.quality, Quality::good);
}

// ---------------------------------------------------------------------------------------------
// Test 5: a secure connection never switches to plaintext.

class SecureToPlaintext : public ::testing::TestWithParam<SecurityMode> {};

TEST_P(SecureToPlaintext, PlaintextAlternativeIsRefused) {
  TestStore ts;
  EventLoop loop;
  TrustedPlc plc1(ts, GetParam(), {}, "plc1");
  TrustedPlc plain(ts, SecurityMode::none, {}, "plain");
  put_word(plc1.plc(), 0, 1111);
  put_word(plain.plc(), 0, 2222);

  auto owner =
      speed_server(loop, ts, setup_with_alternative(plc1.connection_config(), plain.plc().port()));
  TagServer& server = *owner;
  Updates updates(server);
  server.start();
  ASSERT_TRUE(eventually([&] { return good_with(server, kSpeed, std::int64_t(1111)); }));
  const std::size_t mark = updates.size();

  // Hot switch: refused, PLC1 keeps serving.
  ASSERT_EQ(write(server, kUse, std::int64_t(1)), std::nullopt);
  // s7-secure sees the plaintext PLC's answer to InitSSL (downgrade-refused); tls sees a PLC
  // that closes on the ClientHello (refused, "is it a TLS endpoint?").
  const std::string expected =
      GetParam() == SecurityMode::tls ? "is it a TLS endpoint?" : "downgrade-refused";
  ASSERT_TRUE(eventually([&] {
    return text_of(server, kError).find(expected) != std::string::npos;
  })) << text_of(server, kError);
  const std::size_t seen = updates.of(kSpeed, mark).size();
  ASSERT_TRUE(eventually([&] { return updates.of(kSpeed, mark).size() >= seen + 3; }));
  for (const TagUpdate& u : updates.of(kSpeed, mark)) {
    EXPECT_EQ(u.state.value, Value(std::int64_t(1111)));
    EXPECT_EQ(u.state.quality, Quality::good);
  }

  // The documented sequence: the connection stays in error, no value of the plaintext PLC.
  ASSERT_EQ(write(server, kForce, std::int64_t(0)), std::nullopt);
  ASSERT_EQ(write(server, kForce, std::int64_t(1)), std::nullopt);
  ASSERT_TRUE(eventually([&] { return int_of(server, kState) == 3; }));
  EXPECT_NE(text_of(server, kError).find(expected), std::string::npos) << text_of(server, kError);
  EXPECT_EQ(state_of(server, kSpeed).quality, Quality::bad);
  for (const TagUpdate& u : updates.of(kSpeed, mark)) {
    EXPECT_NE(u.state.value, Value(std::int64_t(2222))) << "a value came from the plaintext PLC";
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, SecureToPlaintext,
                         ::testing::Values(SecurityMode::tls, SecurityMode::s7_secure),
                         [](const auto& info) {
                           return info.param == SecurityMode::tls ? "tls" : "s7_secure";
                         });

// A server with one connection PLC1 in a mode, forced down (no PLC needed), started.
struct OfflineServer {
  explicit OfflineServer(SecurityMode mode) {
    ConnectionSetup setup;
    setup.config.mode = mode;
    setup.force_connection_state = 0;
    EXPECT_EQ(server.add_connection(setup), std::nullopt);
    server.start();
  }
  TestStore ts;
  EventLoop loop;
  TagServer server{loop.executor(), ts.store()};
};

TEST(TagServerAlternative, S7SecureRefusesAlternativesThatSelectPlaintextTsaps) {
  OfflineServer offline(SecurityMode::s7_secure);
  TagServer& server = offline.server;
  ASSERT_EQ(write(server, kAlt, std::string("IPAddress=10.0.0.2;")), std::nullopt);
  for (const std::string text :
       {"IPAddress=10.0.0.3; TSAP=03.01", "IPAddress=10.0.0.3;Rack=0;Slot=1"}) {
    const WriteResult r = write(server, kAlt, text);
    ASSERT_TRUE(r.has_value()) << text;
    EXPECT_NE(r->find("never falls back to plaintext"), std::string::npos) << *r;
    EXPECT_EQ(text_of(server, kError), *r);
    EXPECT_EQ(text_of(server, kAlt), "IPAddress=10.0.0.2") << "nothing changed";
  }
}

// ---------------------------------------------------------------------------------------------
// Test 6, through the system tag: what AlternativeAddress takes and refuses (the parser's own
// table of more than 25 strings is in alternative_address_test.cpp).

TEST(TagServerAlternative, WritesOfTheSystemTag) {
  OfflineServer offline(SecurityMode::tls);
  TagServer& server = offline.server;

  struct Case {
    std::string text;
    std::optional<std::string> stored;  // nothing: refused
    std::string reason_part;
  };
  const std::vector<Case> cases = {
      {"AccessPoint=abc; IPAddress=111.111.111.111;", "IPAddress=111.111.111.111;AccessPoint=abc",
       ""},
      {"  ipaddress = 10.0.0.2 ; PORT = 1102 ", "IPAddress=10.0.0.2;Port=1102", ""},
      {"IPAddress=[fd00::2];", "IPAddress=fd00::2", ""},
      {"IPAddress=fd00::2;Rack=0;Slot=2", "IPAddress=fd00::2;Rack=0;Slot=2", ""},
      {"IPAddress=plc2.plant.example;TSAP=03.02", "IPAddress=plc2.plant.example;TSAP=0302", ""},
      {"IPAddress=10.0.0.2 Port=102", std::nullopt, "AlternativeAddress refused"},
      {"Host=10.0.0.2;", std::nullopt, "unknown key"},
      {"Port=102;", std::nullopt, "IPAddress"},
      {"IPAddress=300.1.1.1;", std::nullopt, "AlternativeAddress refused"},
      {"IPAddress=10.0.0.2;Rack=0", std::nullopt, "AlternativeAddress refused"},
      {"IPAddress=" + std::string(240, 'a') + ";", std::nullopt, "AlternativeAddress refused"},
  };
  std::string last = "";
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    const WriteResult r = write(server, kAlt, c.text);
    if (c.stored) {
      EXPECT_EQ(r, std::nullopt);
      EXPECT_EQ(text_of(server, kAlt), *c.stored);
      last = *c.stored;
    } else {
      ASSERT_TRUE(r.has_value());
      EXPECT_NE(r->find(c.reason_part), std::string::npos) << *r;
      EXPECT_EQ(text_of(server, kError).substr(0, 200), r->substr(0, 200));
      EXPECT_EQ(text_of(server, kAlt), last) << "a refused value changes nothing";
    }
  }
  // A text longer than the tag holds is refused by its type before the parser sees it.
  const WriteResult overlong = write(server, kAlt, "IPAddress=" + std::string(300, 'b'));
  ASSERT_TRUE(overlong.has_value());
  EXPECT_NE(overlong->find("more than Text[255] holds"), std::string::npos) << *overlong;

  // Use 1 without an alternative is refused; clearing the one in use too.
  ASSERT_EQ(write(server, kAlt, std::string("")), std::nullopt);
  WriteResult r = write(server, kUse, std::int64_t(1));
  ASSERT_TRUE(r.has_value());
  EXPECT_NE(r->find("write the alternative address first"), std::string::npos) << *r;
  EXPECT_EQ(int_of(server, kUse), 0);
  ASSERT_EQ(write(server, kAlt, std::string("IPAddress=10.0.0.9")), std::nullopt);
  ASSERT_EQ(write(server, kUse, std::int64_t(1)), std::nullopt);
  r = write(server, kAlt, std::string(" "));
  ASSERT_TRUE(r.has_value());
  EXPECT_NE(r->find("cannot be cleared"), std::string::npos);
  EXPECT_EQ(text_of(server, kAlt), "IPAddress=10.0.0.9");

  // Force and Use take 0 and 1 only; the read-only tags refuse writes.
  r = write(server, kForce, std::int64_t(2));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, "@PLC1@ForceConnectionState takes 0 (terminate) or 1 (establish), not 2");
  EXPECT_EQ(int_of(server, kForce), 0);
  for (const std::string& name : {kState, kCurrent, kError, kPeer, kDays}) {
    r = write_text(server, name, "1");
    ASSERT_TRUE(r.has_value()) << name;
    EXPECT_EQ(*r, name + " is read-only");
  }
  r = write_text(server, kForce, "-1");
  ASSERT_TRUE(r.has_value());
  EXPECT_NE(r->find("does not fit DWord"), std::string::npos) << *r;
}

TEST(TagServerAlternative, SystemTagsHaveTheTypesAndAccessOfDesign) {
  TestStore ts;
  EventLoop loop;
  TagServer server(loop.executor(), ts.store());
  ConnectionSetup setup;
  setup.config.name = "Press 7";
  ASSERT_EQ(server.add_connection(setup), std::nullopt);
  const std::vector<std::tuple<std::string, std::string, Access>> expected = {
      {"ForceConnectionState", "DWord", Access::read_write},
      {"AlternativeAddress", "Text[255]", Access::read_write},
      {"UseAlternativeAddress", "DWord", Access::read_write},
      {"ConnectionState", "DWord", Access::read},
      {"CurrentAddress", "Text[255]", Access::read},
      {"LastError", "Text[255]", Access::read},
      {"PeerCertificate", "Text[255]", Access::read},
      {"CertificateDaysLeft", "DInt", Access::read},
  };
  EXPECT_EQ(server.tag_names().size(), expected.size());
  for (const auto& [tag, type, access] : expected) {
    auto config = server.tag_config("@Press 7@" + tag);
    ASSERT_TRUE(config.has_value()) << tag;
    EXPECT_EQ(config->type.to_string(), type) << tag;
    EXPECT_EQ(config->access, access) << tag;
  }
  EXPECT_EQ(server.add_connection(setup), "connection 'Press 7' exists already");
  setup.config.name = "A@B";
  EXPECT_NE(server.add_connection(setup), std::nullopt);
}

INSTANTIATE_TEST_SUITE_P(Modes, TwoPlcs,
                         ::testing::Values(SecurityMode::tls, SecurityMode::s7_secure),
                         [](const auto& info) {
                           return info.param == SecurityMode::tls ? "tls" : "s7_secure";
                         });

// ---------------------------------------------------------------------------------------------
// Test 7: every data type read and written, bit writes, per-tag quality.

class DataTypes : public ::testing::Test {
 protected:
  void SetUp() override {
    plc_ = std::make_unique<TrustedPlc>(ts_, SecurityMode::tls, plcsim::PlcConfig{}, "plc");
    server_ = std::make_unique<TagServer>(loop_.executor(), ts_.store());
    ConnectionSetup setup;
    setup.config = plc_->connection_config();
    setup.config.retry_min = 50ms;
    setup.config.retry_max = 200ms;
    ASSERT_EQ(server_->add_connection(setup), std::nullopt);
  }

  void add(const std::string& name, const std::string& type, const std::string& address,
           Access access = Access::read_write) {
    TagConfig t;
    t.name = name;
    t.type = std::get<TypeSpec>(TypeSpec::parse(type));
    t.connection = "PLC1";
    auto a = Address::parse(address);
    ASSERT_TRUE(std::holds_alternative<Address>(a)) << address;
    t.address = std::get<Address>(a);
    t.cycle = 50ms;
    t.access = access;
    ASSERT_EQ(server_->add_tag(t), std::nullopt) << name;
  }

  channel::Bytes memory(Area area, std::uint16_t db, std::uint32_t offset, std::size_t n) {
    return plc().read(area, db, offset, n);
  }

  plcsim::Plc& plc() { return plc_->plc(); }
  TagServer& server() { return *server_; }

  TestStore ts_;
  EventLoop loop_;
  std::unique_ptr<TrustedPlc> plc_;
  std::unique_ptr<TagServer> server_;
};

TEST_F(DataTypes, EveryTypeReadAndWritten) {
  struct Case {
    std::string name, type, address;
    Area area;
    std::uint16_t db;
    std::uint32_t offset;
    channel::Bytes initial;  // in the PLC before start
    Value initial_value;
    Value written;
    channel::Bytes after;  // in the PLC after the write
  };
  using B = channel::Bytes;
  const std::vector<Case> cases = {
      {"Byte", "Byte", "DB1.DBB11", Area::data_block, 1, 11, B{0xAB}, std::int64_t(0xAB),
       std::int64_t(7), B{7}},
      {"Char", "Char", "DB1.DBB12", Area::data_block, 1, 12, B{'Q'}, std::string("Q"),
       std::string("\xC3\xA9"), B{0xE9}},
      {"Word", "Word", "DB1.DBW14", Area::data_block, 1, 14, B{0xFF, 0xFE}, std::int64_t(65534),
       std::int64_t(4660), B{0x12, 0x34}},
      {"Int", "Int", "DB1.DBW16", Area::data_block, 1, 16, B{0xFF, 0xFE}, std::int64_t(-2),
       std::int64_t(-300), B{0xFE, 0xD4}},
      {"DWord", "DWord", "DB1.DBD18", Area::data_block, 1, 18, B{0xFF, 0, 0, 1},
       std::int64_t(4278190081), std::int64_t(1), B{0, 0, 0, 1}},
      {"DInt", "DInt", "DB1.DBD22", Area::data_block, 1, 22, B{0xFF, 0xFF, 0xFF, 0xFE},
       std::int64_t(-2), std::int64_t(100000), B{0, 0x01, 0x86, 0xA0}},
      {"Real", "Real", "DB1.DBD26", Area::data_block, 1, 26, B{0x40, 0x49, 0x0F, 0xDB},
       double(3.14159274f), 5.2, B{0x40, 0xA6, 0x66, 0x66}},
      {"LReal", "LReal", "DB1.LREAL30", Area::data_block, 1, 30,
       B{0x40, 0x09, 0x21, 0xFB, 0x54, 0x44, 0x2D, 0x18}, 3.141592653589793, -1.5,
       B{0xBF, 0xF8, 0, 0, 0, 0, 0, 0}},
      {"Text", "String[6]", "DB1.STRING40.6", Area::data_block, 1, 40,
       B{6, 3, 'a', 'b', 'c', 0, 0, 0}, std::string("abc"), std::string("Größe"),
       B{6, 5, 'G', 'r', 0xF6, 0xDF, 'e', 0}},
      {"Timer", "Timer", "T5", Area::timers, 0, 5, B{0x21, 0x50}, std::int64_t(150000),
       std::int64_t(2500), B{0x02, 0x50}},
      {"Counter", "Counter", "C3", Area::counters, 0, 3, B{0x01, 0x23}, std::int64_t(123),
       std::int64_t(999), B{0x09, 0x99}},
      {"Flags", "Word", "MW4", Area::flags, 0, 4, B{0, 42}, std::int64_t(42), std::int64_t(43),
       B{0, 43}},
      {"Output", "Byte", "QB1", Area::outputs, 0, 1, B{5}, std::int64_t(5), std::int64_t(6), B{6}},
      {"Input", "Byte", "EB2", Area::inputs, 0, 2, B{9}, std::int64_t(9), std::int64_t(10), B{10}},
  };
  for (const Case& c : cases) {
    plc().write(c.area, c.db, c.offset, c.initial);
    add(c.name, c.type, c.address);
  }
  server().start();
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ASSERT_TRUE(eventually([&] { return good_with(server(), c.name, c.initial_value); }))
        << describe(server(), c.name);
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ASSERT_EQ(write(server(), c.name, c.written), std::nullopt);
    EXPECT_EQ(memory(c.area, c.db, c.offset, c.after.size()), c.after);
    const Value expected = c.type == "Real" ? Value(double(float(5.2))) : c.written;
    EXPECT_TRUE(eventually([&] { return good_with(server(), c.name, expected); }))
        << describe(server(), c.name);
  }
  // The Real shows as the float the PLC holds.
  EXPECT_EQ(value_to_string(server().tag_config("Real")->type, state_of(server(), "Real").value),
            "5.2");
  // Text from an operator, converted to the tag's type.
  EXPECT_EQ(write_text(server(), "Word", "16#BEEF"), std::nullopt);
  EXPECT_EQ(memory(Area::data_block, 1, 14, 2), (B{0xBE, 0xEF}));
  EXPECT_EQ(write_text(server(), "Timer", "1.5s"), std::nullopt);
  EXPECT_EQ(memory(Area::timers, 0, 5, 2), (B{0x01, 0x50}));
}

TEST_F(DataTypes, BitWritesLeaveNeighbouringBitsAlone) {
  plc().write(Area::data_block, 1, 10, channel::Bytes{0b1010'0101});
  plc().write(Area::flags, 0, 10, channel::Bytes{0b0000'0000});
  add("Bit3", "Bool", "DB1.DBX10.3");
  add("Bit0", "Bool", "DB1.DBX10.0");
  add("M10.2", "Bool", "M10.2");
  server().start();
  ASSERT_TRUE(eventually([&] { return good_with(server(), "Bit0", true); }));
  ASSERT_TRUE(eventually([&] { return good_with(server(), "Bit3", false); }));

  ASSERT_EQ(write(server(), "Bit3", true), std::nullopt);
  EXPECT_EQ(memory(Area::data_block, 1, 10, 1), channel::Bytes{0b1010'1101});
  ASSERT_EQ(write(server(), "Bit0", false), std::nullopt);
  EXPECT_EQ(memory(Area::data_block, 1, 10, 1), channel::Bytes{0b1010'1100});
  // The PLC changes a neighbour between our read and our write: the write still only
  // touches its own bit.
  plc().write(Area::data_block, 1, 10, channel::Bytes{0b0101'0100});
  ASSERT_EQ(write(server(), "Bit3", true), std::nullopt);
  EXPECT_EQ(memory(Area::data_block, 1, 10, 1), channel::Bytes{0b0101'1100});
  ASSERT_EQ(write_text(server(), "M10.2", "on"), std::nullopt);
  EXPECT_EQ(memory(Area::flags, 0, 10, 1), channel::Bytes{0b0000'0100});
  EXPECT_TRUE(eventually([&] { return good_with(server(), "M10.2", true); }));
  EXPECT_TRUE(eventually([&] { return good_with(server(), "Bit3", true); }));
}

TEST_F(DataTypes, ItemErrorsGivePerTagQuality) {
  put_word(plc(), 0, 77);
  add("Good", "Word", "DB1.DBW0");
  add("NoSuchBlock", "Word", "DB99.DBW0");
  add("PastTheEnd", "Word", "DB1.DBW2000");  // DB1 has 1024 bytes
  add("AlsoGood", "Byte", "DB1.DBB1");
  server().start();
  ASSERT_TRUE(eventually([&] { return good_with(server(), "Good", std::int64_t(77)); }));
  ASSERT_TRUE(eventually([&] {
    return state_of(server(), "NoSuchBlock").reason == QualityReason::plc_refused;
  })) << describe(server(), "NoSuchBlock");
  ASSERT_TRUE(eventually(
      [&] { return state_of(server(), "PastTheEnd").reason == QualityReason::plc_refused; }));
  EXPECT_EQ(state_of(server(), "NoSuchBlock").quality, Quality::bad);
  EXPECT_EQ(state_of(server(), "NoSuchBlock").detail, "object does not exist (0x0A)");
  EXPECT_EQ(state_of(server(), "PastTheEnd").detail, "address out of range (0x05)");
  EXPECT_EQ(state_of(server(), "AlsoGood").quality, Quality::good);

  // A write the PLC refuses reports the PLC's reason.
  const WriteResult r = write(server(), "NoSuchBlock", std::int64_t(1));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, "NoSuchBlock: the PLC refused the write: object does not exist (0x0A)");
}

TEST_F(DataTypes, LostConnectionMakesTagsBadAtOnceAndTheFirstReadGoodAgain) {
  put_word(plc(), 0, 77);
  add("Good", "Word", "DB1.DBW0");
  Updates updates(server());
  server().start();
  ASSERT_TRUE(eventually([&] { return good_with(server(), "Good", std::int64_t(77)); }));
  const std::size_t mark = updates.size();
  plc().reset_connections();
  ASSERT_TRUE(eventually([&] { return state_of(server(), "Good").quality == Quality::bad; }));
  EXPECT_EQ(state_of(server(), "Good").reason, QualityReason::not_connected);
  EXPECT_EQ(state_of(server(), "Good").value, Value(std::int64_t(77))) << "the last value stays";
  const SystemTime last_read = state_of(server(), "Good").source_time;
  EXPECT_GT(state_of(server(), "Good").server_time, last_read);
  put_word(plc(), 0, 78);
  ASSERT_TRUE(eventually([&] { return good_with(server(), "Good", std::int64_t(78)); }));
  // The sequence: good 77 ... bad (not connected) ... good 78, and nothing in between.
  const auto seq = updates.of("Good", mark);
  ASSERT_GE(seq.size(), 2u);
  EXPECT_EQ(seq.front().state.quality, Quality::bad);
  EXPECT_TRUE(seq.front().changed);
  std::size_t bad = 0;
  for (const TagUpdate& u : seq) bad += u.state.quality == Quality::bad;
  EXPECT_EQ(bad, 1u);
  EXPECT_EQ(seq.back().state.value, Value(std::int64_t(78)));
  EXPECT_GT(seq.back().state.source_time, last_read);
}

// 300 tags 40 bytes apart at PDU 480: 300 items, several Read Var requests per cycle, all
// handed to the connection, which keeps the granted AmQ (2) in flight.
TEST_F(DataTypes, AcquisitionKeepsAmqRequestsInFlight) {
  for (int i = 0; i < 300; ++i) {
    add("T" + std::to_string(i), "Word", "DB1.DBW" + std::to_string(i * 3 % 1000 / 2 * 2));
  }
  plc().set_faults({.delay = 20ms});
  server().start();
  ASSERT_TRUE(eventually([&] { return server().statistics("PLC1")->cycles >= 2; }));
  const auto info = server().connection_info("PLC1");
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->amq, 2);
  EXPECT_EQ(info->peak_jobs_in_flight, 2u);
  const auto stats = *server().statistics("PLC1");
  EXPECT_GE(stats.requests / stats.cycles, 2u) << "more than one request per cycle";
  for (int i = 0; i < 300; i += 37) {
    EXPECT_EQ(state_of(server(), "T" + std::to_string(i)).quality, Quality::good);
  }
}

TEST_F(DataTypes, WritesAreRefusedClearly) {
  add("Word", "Word", "DB1.DBW0");
  add("ReadOnly", "Word", "DB1.DBW2", Access::read);
  server().start();
  ASSERT_TRUE(eventually([&] { return state_of(server(), "Word").quality == Quality::good; }));
  EXPECT_EQ(write(server(), "ReadOnly", std::int64_t(1)), "ReadOnly is read-only");
  EXPECT_EQ(write(server(), "Word", std::int64_t(70000)),
            "Word: 70000 does not fit Word (0..65535)");
  EXPECT_EQ(write(server(), "Word", std::string("x")), "Word: text does not fit Word");
  EXPECT_EQ(write_text(server(), "Word", "12abc"), "Word: '12abc' is not a whole number for Word");
  EXPECT_EQ(write(server(), "Nope", std::int64_t(1)), "no tag named 'Nope'");
  EXPECT_EQ(memory(Area::data_block, 1, 0, 4), (channel::Bytes{0, 0, 0, 0})) << "nothing written";

  // Not connected: at once, not queued for later.
  plc().set_faults({.refuse_connections = true});
  plc().reset_connections();
  ASSERT_TRUE(eventually([&] { return state_of(server(), "Word").quality == Quality::bad; }));
  const WriteResult r = write(server(), "Word", std::int64_t(5));
  ASSERT_TRUE(r.has_value());
  EXPECT_NE(r->find("Word: not written, connection PLC1 is not connected"), std::string::npos)
      << *r;
  plc().set_faults({});
  ASSERT_TRUE(eventually([&] { return state_of(server(), "Word").quality == Quality::good; }));
  EXPECT_EQ(memory(Area::data_block, 1, 0, 2), (channel::Bytes{0, 0}))
      << "the refused write never arrives";
}

TEST_F(DataTypes, ConfigurationErrorsNameTheProblem) {
  TagConfig t;
  t.name = "Bad";
  t.type = {DataType::Real};
  t.connection = "PLC1";
  t.address = std::get<Address>(Address::parse("DB1.DBW0"));
  EXPECT_EQ(server().add_tag(t),
            "tag 'Bad': Real needs a dword address such as DB1.DBD0 or MD8; 'DB1.DBW0' is a word "
            "address");
  t.type = {DataType::Word};
  t.connection = "PLC9";
  EXPECT_EQ(server().add_tag(t), "tag 'Bad': unknown connection 'PLC9'");
  t.connection = "PLC1";
  t.cycle = 1ms;
  EXPECT_EQ(server().add_tag(t), "tag 'Bad': acquisition cycle 1 ms out of range 10 ms..24 h");
  t.cycle = 100ms;
  t.start_value = std::string("x");
  EXPECT_EQ(server().add_tag(t), "tag 'Bad': start value: text does not fit Word");
  t.start_value.reset();
  t.name = "@PLC1@Mine";
  EXPECT_EQ(server().add_tag(t), "tag '@PLC1@Mine': names starting with '@' are system tags");
  t.name = "Ok";
  EXPECT_EQ(server().add_tag(t), std::nullopt);
  EXPECT_EQ(server().add_tag(t), "tag 'Ok': exists already");
  TagConfig internal = tag("Internal", "Int");
  internal.address = t.address;
  EXPECT_EQ(server().add_tag(internal),
            "tag 'Internal': an internal tag has no address (or name its connection)");
}

TEST_F(DataTypes, InternalTagsAndStartValues) {
  put_word(plc(), 0, 77);
  TagConfig setpoint = tag("Setpoint", "Real");
  setpoint.start_value = 21.5;
  TagConfig note = tag("Note", "Text[20]");
  TagConfig plc_tag = tag("Level", "Word", "PLC1", "DB1.DBW0");
  plc_tag.start_value = std::int64_t(5);
  ASSERT_EQ(server().add_tag(setpoint), std::nullopt);
  ASSERT_EQ(server().add_tag(note), std::nullopt);
  ASSERT_EQ(server().add_tag(plc_tag), std::nullopt);

  // Before any read: the start value, uncertain (last known); internal tags good at once.
  EXPECT_TRUE(good_with(server(), "Setpoint", 21.5));
  EXPECT_TRUE(good_with(server(), "Note", std::string()));
  const TagState level = state_of(server(), "Level");
  EXPECT_EQ(level.quality, Quality::uncertain);
  EXPECT_EQ(level.reason, QualityReason::last_known);
  EXPECT_EQ(level.value, Value(std::int64_t(5)));

  Updates updates(server());
  server().start();
  ASSERT_TRUE(eventually([&] { return good_with(server(), "Level", std::int64_t(77)); }));
  EXPECT_EQ(plc().read(Area::data_block, 1, 0, 2), (channel::Bytes{0, 77}))
      << "a start value is never written to the PLC";

  ASSERT_EQ(write(server(), "Note", std::string("Schichtwechsel")), std::nullopt);
  EXPECT_TRUE(good_with(server(), "Note", std::string("Schichtwechsel")));
  ASSERT_EQ(write_text(server(), "Setpoint", "22.25"), std::nullopt);
  EXPECT_TRUE(good_with(server(), "Setpoint", 22.25));
  EXPECT_EQ(write(server(), "Note", std::string(21, 'x')),
            "Note: the text has 21 characters, more than Text[20] holds");
  const auto notes = updates.of("Note");
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_TRUE(notes[0].changed);
  EXPECT_EQ(notes[0].state.value, Value(std::string("Schichtwechsel")));
}

TEST_F(DataTypes, ATagTooLargeForThePduIsAConfigError) {
  plcsim::PlcConfig small;
  small.max_pdu = 240;
  TrustedPlc plc240(ts_, SecurityMode::tls, small, "small");
  TagServer server(loop_.executor(), ts_.store());
  ConnectionSetup setup;
  setup.config = plc240.connection_config();
  setup.config.name = "Small";
  ASSERT_EQ(server.add_connection(setup), std::nullopt);
  ASSERT_EQ(server.add_tag(tag("Long", "String[254]", "Small", "DB1.STRING0.254")), std::nullopt);
  ASSERT_EQ(server.add_tag(tag("Short", "Byte", "Small", "DB1.DBB300")), std::nullopt);
  server.start();
  ASSERT_TRUE(eventually([&] {
    return state_of(server, "Long").reason == QualityReason::config_error;
  })) << describe(server, "Long");
  EXPECT_TRUE(eventually([&] { return state_of(server, "Short").quality == Quality::good; }));
}

// ---------------------------------------------------------------------------------------------
// Changes while running (scadad's SIGHUP): connections and tags added and removed after start().

std::vector<std::string> system_tags_of(const std::string& connection) {
  return {system_tag_name(connection, kForceConnectionState),
          system_tag_name(connection, kAlternativeAddress),
          system_tag_name(connection, kUseAlternativeAddress),
          system_tag_name(connection, kConnectionStateTag),
          system_tag_name(connection, kCurrentAddress),
          system_tag_name(connection, kLastError),
          system_tag_name(connection, kPeerCertificate),
          system_tag_name(connection, kCertificateDaysLeft)};
}

// Starts a write and hands back its answer when it comes.
std::future<WriteResult> start_write(TagServer& server, const std::string& name, Value value) {
  auto promise = std::make_shared<std::promise<WriteResult>>();
  auto future = promise->get_future();
  server.write(name, std::move(value), [promise](WriteResult r) { promise->set_value(r); });
  return future;
}

// Two tls PLCs with different memory (DB1.DBW0 1111 / 2222, DB1.DBW2 1112 / 2223) and a server
// that already runs: connection PLC1 to the first, the tag Speed (DB1.DBW0, 10 Hz) read.
class RunningServer : public ::testing::Test {
 protected:
  void SetUp() override {
    a_ = std::make_unique<TrustedPlc>(ts_, SecurityMode::tls, plcsim::PlcConfig{}, "a");
    b_ = std::make_unique<TrustedPlc>(ts_, SecurityMode::tls, plcsim::PlcConfig{}, "b");
    put_word(a(), 0, 1111);
    put_word(a(), 2, 1112);
    put_word(b(), 0, 2222);
    put_word(b(), 2, 2223);
    server_ = speed_server(loop_, ts_, setup_for(*a_, "PLC1"));
    server_->start();
    ASSERT_TRUE(eventually([&] { return good_with(server(), kSpeed, std::int64_t(1111)); }))
        << describe(server(), kSpeed);
  }

  // A connection to a PLC, quick retries.
  static ConnectionSetup setup_for(const TrustedPlc& plc, const std::string& name) {
    ConnectionSetup s;
    s.config = plc.connection_config();
    s.config.name = name;
    s.config.retry_min = 50ms;
    s.config.retry_max = 200ms;
    return s;
  }

  LinkStatistics stats(const std::string& connection) {
    auto s = server().statistics(connection);
    if (!s) ADD_FAILURE() << "no connection " << connection;
    return s.value_or(LinkStatistics{});
  }

  plcsim::Plc& a() { return a_->plc(); }
  plcsim::Plc& b() { return b_->plc(); }
  TagServer& server() { return *server_; }

  TestStore ts_;
  EventLoop loop_;
  std::unique_ptr<TrustedPlc> a_, b_;
  std::unique_ptr<TagServer> server_;
};

TEST_F(RunningServer, ConnectionAndTagsAddedAfterStartAreAcquired) {
  ASSERT_EQ(server().add_connection(setup_for(*b_, "PLC2")), std::nullopt);
  ASSERT_EQ(server().add_tag(tag("Level", "Word", "PLC2", "DB1.DBW2")), std::nullopt);
  TagConfig note = tag("Note", "Text[20]");
  note.start_value = std::string("shift 2");
  ASSERT_EQ(server().add_tag(note), std::nullopt);
  EXPECT_TRUE(good_with(server(), "Note", std::string("shift 2"))) << describe(server(), "Note");

  ASSERT_TRUE(eventually([&] { return good_with(server(), "Level", std::int64_t(2223)); }))
      << describe(server(), "Level");
  EXPECT_EQ(int_of(server(), "@PLC2@ConnectionState"), 2);
  EXPECT_EQ(b().connections(), 1u);
  EXPECT_EQ(stats("PLC2").sessions_up, 1u);
  EXPECT_TRUE(good_with(server(), kSpeed, std::int64_t(1111))) << "PLC1 runs on";
  EXPECT_EQ(stats("PLC1").sessions_up, 1u) << "PLC1 was not touched";

  // The same refusals as before start().
  EXPECT_EQ(server().add_connection(setup_for(*b_, "PLC2")), "connection 'PLC2' exists already");
  EXPECT_EQ(server().add_tag(tag("Level", "Word", "PLC2", "DB1.DBW4")),
            "tag 'Level': exists already");
  EXPECT_EQ(server().add_tag(tag("X", "Word", "PLC9", "DB1.DBW0")),
            "tag 'X': unknown connection 'PLC9'");
  EXPECT_EQ(server().add_tag(tag("X", "Real", "PLC2", "DB1.DBW0")),
            "tag 'X': Real needs a dword address such as DB1.DBD0 or MD8; 'DB1.DBW0' is a word "
            "address");
}

TEST_F(RunningServer, StartValuesOfAConnectionAddedAfterStartApply) {
  // Force 0: down from the start, and it stays down until Force 1.
  ConnectionSetup down = setup_for(*b_, "PLC2");
  down.force_connection_state = 0;
  ASSERT_EQ(server().add_connection(down), std::nullopt);
  ASSERT_EQ(server().add_tag(tag("Level", "Word", "PLC2", "DB1.DBW2")), std::nullopt);
  EXPECT_EQ(int_of(server(), "@PLC2@ForceConnectionState"), 0);
  EXPECT_EQ(int_of(server(), "@PLC2@ConnectionState"), 0);
  EXPECT_EQ(state_of(server(), "Level").quality, Quality::bad);
  EXPECT_EQ(state_of(server(), "Level").reason, QualityReason::not_connected);
  EXPECT_NE(state_of(server(), "Level").detail.find("forced down"), std::string::npos)
      << describe(server(), "Level");
  const WriteResult refused = write(server(), "Level", std::int64_t(5));
  ASSERT_TRUE(refused.has_value());
  EXPECT_NE(refused->find("not connected (forced down)"), std::string::npos) << *refused;
  EXPECT_EQ(b().connections(), 0u);
  ASSERT_EQ(write(server(), "@PLC2@ForceConnectionState", std::int64_t(1)), std::nullopt);
  ASSERT_TRUE(eventually([&] { return good_with(server(), "Level", std::int64_t(2223)); }))
      << describe(server(), "Level");

  // Use 1 with an alternative: straight to the alternative.
  ConnectionSetup alternative = setup_for(*a_, "PLC3");
  alternative.alternative_address = alternative_to(b().port());
  alternative.use_alternative_address = 1;
  ASSERT_EQ(server().add_connection(alternative), std::nullopt);
  ASSERT_EQ(server().add_tag(tag("Other", "Word", "PLC3", "DB1.DBW0")), std::nullopt);
  ASSERT_TRUE(eventually([&] { return good_with(server(), "Other", std::int64_t(2222)); }))
      << describe(server(), "Other");
  EXPECT_NE(text_of(server(), "@PLC3@CurrentAddress").find("(alternative)"), std::string::npos);
  EXPECT_EQ(a().connections(), 1u) << "only PLC1's";
}

TEST_F(RunningServer, TagAddedToARunningConnectionIsReadAtOnce) {
  // Same cycle as Speed: it joins that plan.
  ASSERT_EQ(server().add_tag(tag("Level", "Word", "PLC1", "DB1.DBW2")), std::nullopt);
  // Before its first read it says so (the read may be back already on a loaded machine).
  const auto first = state_of(server(), "Level");
  EXPECT_TRUE(first.detail == "not read from the PLC yet" ||
              good_with(server(), "Level", std::int64_t(1112)))
      << describe(server(), "Level");
  ASSERT_TRUE(eventually([&] { return good_with(server(), "Level", std::int64_t(1112)); }))
      << describe(server(), "Level");

  // A cycle of an hour, in a new group and then in that group: neither waits a cycle.
  put_word(a(), 4, 4444);
  put_word(a(), 6, 6666);
  ASSERT_EQ(server().add_tag(tag("Slow", "Word", "PLC1", "DB1.DBW4", 1h)), std::nullopt);
  ASSERT_TRUE(eventually([&] { return good_with(server(), "Slow", std::int64_t(4444)); }))
      << describe(server(), "Slow");
  ASSERT_EQ(server().add_tag(tag("Slower", "Word", "PLC1", "DB1.DBW6", 1h)), std::nullopt);
  ASSERT_TRUE(eventually([&] { return good_with(server(), "Slower", std::int64_t(6666)); }))
      << describe(server(), "Slower");
  EXPECT_TRUE(good_with(server(), "Slow", std::int64_t(4444)));
}

TEST_F(RunningServer, RemovedTagIsGoneAndTheOthersKeepUpdating) {
  ASSERT_EQ(server().add_tag(tag("Level", "Word", "PLC1", "DB1.DBW2")), std::nullopt);
  ASSERT_TRUE(eventually([&] { return good_with(server(), "Level", std::int64_t(1112)); }));
  Updates updates(server());

  // A write on its way when the tag goes still gets the PLC's answer.
  a().set_faults({.delay = 300ms});
  auto in_flight = start_write(server(), "Level", std::int64_t(7));
  ASSERT_TRUE(eventually([&] {
    return a().read(Area::data_block, 1, 2, 2) == channel::Bytes{0, 7};
  })) << "the write reached the PLC";
  ASSERT_EQ(server().remove_tag("Level"), std::nullopt);
  const std::size_t mark = updates.size();
  EXPECT_EQ(server().read("Level"), std::nullopt);
  EXPECT_EQ(server().tag_config("Level"), std::nullopt);
  const auto names = server().tag_names();
  EXPECT_EQ(std::count(names.begin(), names.end(), "Level"), 0);
  EXPECT_EQ(std::count(names.begin(), names.end(), kSpeed), 1);
  ASSERT_EQ(in_flight.wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(in_flight.get(), std::nullopt) << "the PLC's answer";
  a().set_faults({});

  // Speed keeps coming; Level never again.
  ASSERT_TRUE(eventually([&] { return updates.of(kSpeed, mark).size() >= 5; }));
  EXPECT_TRUE(updates.of("Level", mark).empty());
  EXPECT_EQ(write(server(), "Level", std::int64_t(1)), "no tag named 'Level'");

  // Added again, at another address: read from there.
  put_word(a(), 4, 4444);
  ASSERT_EQ(server().add_tag(tag("Level", "Word", "PLC1", "DB1.DBW4")), std::nullopt);
  ASSERT_TRUE(eventually([&] { return good_with(server(), "Level", std::int64_t(4444)); }))
      << describe(server(), "Level");
  EXPECT_EQ(server().tag_config("Level")->address->to_string(), "DB1.DBW4");
}

// Two strings too long to share one reply at PDU 480 make two requests per cycle; once one of
// them is removed, the plan needs one.
TEST_F(RunningServer, RemovedTagLeavesThePlan) {
  ASSERT_EQ(server().add_tag(tag("Text1", "String[254]", "PLC1", "DB1.STRING100.254")),
            std::nullopt);
  ASSERT_EQ(server().add_tag(tag("Text2", "String[254]", "PLC1", "DB1.STRING600.254")),
            std::nullopt);
  ASSERT_TRUE(eventually([&] { return state_of(server(), "Text2").quality == Quality::good; }))
      << describe(server(), "Text2");
  // Requests and cycles over at least five cycles (one cycle may be running at either end).
  const auto over_five_cycles = [&] {
    const LinkStatistics from = stats("PLC1");
    EXPECT_TRUE(eventually([&] { return stats("PLC1").cycles >= from.cycles + 5; }));
    const LinkStatistics to = stats("PLC1");
    return std::make_pair(to.requests - from.requests, to.cycles - from.cycles);
  };
  const auto [requests, cycles] = over_five_cycles();
  EXPECT_GE(requests + 2, 2 * cycles) << "two requests per cycle";

  ASSERT_EQ(server().remove_tag("Text2"), std::nullopt);
  const std::uint64_t removed_at = stats("PLC1").cycles;
  ASSERT_TRUE(eventually([&] { return stats("PLC1").cycles >= removed_at + 2; }));
  const auto [requests_after, cycles_after] = over_five_cycles();
  EXPECT_LE(requests_after, cycles_after + 1) << "one request per cycle";
  EXPECT_EQ(state_of(server(), "Text1").quality, Quality::good);
}

TEST_F(RunningServer, RemovedConnectionClosesAndItsTagsGo) {
  ASSERT_EQ(server().add_connection(setup_for(*b_, "PLC2")), std::nullopt);
  ASSERT_EQ(server().add_tag(tag("Level", "Word", "PLC2", "DB1.DBW2")), std::nullopt);
  ASSERT_TRUE(eventually([&] { return good_with(server(), "Level", std::int64_t(2223)); }));
  ASSERT_EQ(b().connections(), 1u);
  Updates updates(server());

  // A write waiting for the PLC's answer is answered when the connection goes.
  b().set_faults({.delay = 400ms});
  auto in_flight = start_write(server(), "Level", std::int64_t(9));
  ASSERT_TRUE(eventually([&] {
    return b().read(Area::data_block, 1, 2, 2) == channel::Bytes{0, 9};
  })) << "the write reached the PLC";
  ASSERT_EQ(server().remove_connection("PLC2"), std::nullopt);
  const std::size_t mark = updates.size();
  ASSERT_EQ(in_flight.wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(in_flight.get(),
            "Level: not confirmed: connection PLC2 was removed before the PLC answered; the value "
            "may or may not be written");
  EXPECT_TRUE(eventually([&] { return b().connections() == 0; })) << "the PLC sees it closed";

  std::vector<std::string> gone = system_tags_of("PLC2");
  gone.push_back("Level");
  for (const std::string& name : gone) {
    EXPECT_EQ(server().read(name), std::nullopt) << name;
    EXPECT_EQ(server().tag_config(name), std::nullopt) << name;
  }
  for (const std::string& name : server().tag_names()) {
    EXPECT_EQ(std::count(gone.begin(), gone.end(), name), 0) << name;
  }
  EXPECT_EQ(server().statistics("PLC2"), std::nullopt);
  EXPECT_EQ(server().connection_info("PLC2"), std::nullopt);

  // PLC1 runs on; nothing more of PLC2.
  ASSERT_TRUE(eventually([&] { return updates.of(kSpeed, mark).size() >= 5; }));
  EXPECT_TRUE(good_with(server(), kSpeed, std::int64_t(1111)));
  for (const std::string& name : gone) EXPECT_TRUE(updates.of(name, mark).empty()) << name;

  // Added again, to another PLC.
  b().set_faults({});
  ASSERT_EQ(server().add_connection(setup_for(*a_, "PLC2")), std::nullopt);
  ASSERT_EQ(server().add_tag(tag("Level", "Word", "PLC2", "DB1.DBW2")), std::nullopt);
  ASSERT_TRUE(eventually([&] { return good_with(server(), "Level", std::int64_t(1112)); }))
      << describe(server(), "Level");
  EXPECT_EQ(int_of(server(), "@PLC2@ConnectionState"), 2);
  EXPECT_NE(text_of(server(), "@PLC2@CurrentAddress").find(":" + std::to_string(a().port())),
            std::string::npos);
  EXPECT_EQ(b().connections(), 0u);
  EXPECT_EQ(stats("PLC2").sessions_up, 1u) << "statistics start over";
}

TEST_F(RunningServer, RemovalsAreRefusedWithAReason) {
  EXPECT_EQ(server().remove_tag("Nope"), "no tag named 'Nope'");
  const auto system = server().remove_tag(kError);
  ASSERT_TRUE(system.has_value());
  EXPECT_EQ(*system,
            "@PLC1@LastError is a system tag: it goes with connection 'PLC1' (remove the "
            "connection)");
  EXPECT_TRUE(server().read(kError).has_value());
  EXPECT_EQ(server().remove_connection("PLC9"), "no connection named 'PLC9'");

  // Internal tags go too.
  ASSERT_EQ(server().add_tag(tag("Note", "Text[20]")), std::nullopt);
  ASSERT_EQ(server().remove_tag("Note"), std::nullopt);
  EXPECT_EQ(server().read("Note"), std::nullopt);
  EXPECT_EQ(write(server(), "Note", std::string("x")), "no tag named 'Note'");

  // A connection goes once, its tags with it.
  ASSERT_EQ(server().remove_connection("PLC1"), std::nullopt);
  EXPECT_EQ(server().remove_connection("PLC1"), "no connection named 'PLC1'");
  EXPECT_EQ(server().remove_tag(kSpeed), "no tag named 'Speed'");
  EXPECT_EQ(server().add_tag(tag("Level", "Word", "PLC1", "DB1.DBW2")),
            "tag 'Level': unknown connection 'PLC1'");
  EXPECT_TRUE(server().tag_names().empty());
  EXPECT_TRUE(eventually([&] { return a().connections() == 0; }));
}

TEST(TagServerChanges, RemovalsBeforeStart) {
  TestStore ts;
  EventLoop loop;
  TagServer server(loop.executor(), ts.store());
  ConnectionSetup setup;
  setup.config.name = "PLC1";
  ASSERT_EQ(server.add_connection(setup), std::nullopt);
  ASSERT_EQ(server.add_tag(tag(kSpeed, "Word", "PLC1", "DB1.DBW0")), std::nullopt);
  ASSERT_EQ(server.add_tag(tag("Note", "Text[20]")), std::nullopt);
  ASSERT_EQ(server.remove_tag(kSpeed), std::nullopt);
  ASSERT_EQ(server.remove_connection("PLC1"), std::nullopt);
  EXPECT_EQ(server.tag_names(), std::vector<std::string>{"Note"});
  ASSERT_EQ(server.add_connection(setup), std::nullopt) << "the name is free again";
  EXPECT_EQ(server.tag_names().size(), 9u);
}

// ---------------------------------------------------------------------------------------------
// Statistics for the metrics: sessions, failures by reason, request round trips.

std::uint64_t in_buckets(const LinkStatistics::Histogram& h) {
  std::uint64_t n = 0;
  for (std::uint64_t b : h.buckets) n += b;
  return n;
}

std::uint64_t failures(const LinkStatistics& s, const std::string& reason) {
  auto it = s.failures.find(reason);
  return it == s.failures.end() ? 0 : it->second;
}

TEST_F(RunningServer, StatisticsCountSessionsAndRoundTrips) {
  ASSERT_TRUE(eventually([&] { return stats("PLC1").rtt.count >= 3; }));
  LinkStatistics s = stats("PLC1");
  EXPECT_EQ(s.sessions_up, 1u);
  EXPECT_TRUE(s.failures.empty());
  EXPECT_LE(in_buckets(s.rtt), s.rtt.count) << "the rest is above the last bound";
  EXPECT_GT(s.rtt.sum_seconds, 0.0);
  EXPECT_LE(s.rtt.count, s.requests) << "only reads so far";

  // A lost session counts as ended (by its reason); the next one as up.
  a().reset_connections();
  ASSERT_TRUE(eventually([&] { return stats("PLC1").sessions_up == 2; }));
  s = stats("PLC1");
  std::uint64_t ended = 0;
  for (const auto& [reason, n] : s.failures) ended += n;
  EXPECT_GE(ended, 1u);
  EXPECT_EQ(failures(s, "stopped"), 0u);
}

// Every reply of a PLC that delays them by 600 ms took at least that long: all in the buckets
// from 1 s up (or above 2 s).
TEST_F(RunningServer, RoundTripsOfASlowPlcLandInTheirBuckets) {
  b().set_faults({.delay = 600ms});
  ASSERT_EQ(server().add_connection(setup_for(*b_, "PLC2")), std::nullopt);
  ASSERT_EQ(server().add_tag(tag("Level", "Word", "PLC2", "DB1.DBW2")), std::nullopt);
  ASSERT_TRUE(eventually([&] { return stats("PLC2").rtt.count >= 2; }));
  const LinkStatistics s = stats("PLC2");
  for (std::size_t i = 0; i < LinkStatistics::Histogram::bounds.size(); ++i) {
    if (LinkStatistics::Histogram::bounds[i] < 0.6) {
      EXPECT_EQ(s.rtt.buckets[i], 0u) << "bucket le " << LinkStatistics::Histogram::bounds[i];
    }
  }
  EXPECT_GE(s.rtt.sum_seconds, 0.6 * double(s.rtt.count));
}

TEST_F(RunningServer, FailedAttemptsAreCountedByReason) {
  ConnectionSetup nowhere = setup_for(*a_, "Nowhere");
  nowhere.config.port = closed_port();
  ASSERT_EQ(server().add_connection(nowhere), std::nullopt);
  ASSERT_TRUE(eventually([&] { return failures(stats("Nowhere"), "refused") >= 2; }));
  EXPECT_EQ(stats("Nowhere").sessions_up, 0u);
  EXPECT_EQ(stats("Nowhere").rtt.count, 0u);

  SelfSignedPlc untrusted;
  ConnectionSetup setup;
  setup.config.name = "Untrusted";
  setup.config.port = untrusted.plc().port();
  setup.config.mode = SecurityMode::tls;
  setup.config.retry_min = 50ms;
  setup.config.retry_max = 200ms;
  ASSERT_EQ(server().add_connection(setup), std::nullopt);
  ASSERT_TRUE(eventually([&] {
    return failures(stats("Untrusted"), "untrusted-certificate") >= 1;
  })) << text_of(server(), "@Untrusted@LastError");
  EXPECT_EQ(stats("Untrusted").sessions_up, 0u);
  EXPECT_EQ(failures(stats("Untrusted"), "refused"), 0u);
}

std::uint64_t failed_reads(const LinkStatistics& s) {
  std::uint64_t n = 0;
  for (const auto& [reason, count] : s.failed_reads) n += count;
  return n;
}

// Tag errors (an item the PLC refuses) are counted apart from requests that bring nothing: a
// dead peer's requests count as failed reads ("timeout"), a session this side stops does not.
TEST_F(RunningServer, FailedReadsAndTagErrorsAreCountedApart) {
  EXPECT_TRUE(stats("PLC1").failed_reads.empty());
  EXPECT_EQ(stats("PLC1").tag_errors, 0u);
  ASSERT_EQ(server().add_tag(tag("Missing", "Word", "PLC1", "DB99.DBW0")), std::nullopt);
  ASSERT_TRUE(eventually([&] { return stats("PLC1").tag_errors >= 2; }));
  EXPECT_TRUE(stats("PLC1").failed_reads.empty()) << "the request itself was answered";
  EXPECT_EQ(state_of(server(), "Missing").reason, QualityReason::plc_refused);

  ConnectionSetup setup = setup_for(*b_, "PLC2");
  setup.config.dead_peer_timeout = 300ms;
  ASSERT_EQ(server().add_connection(setup), std::nullopt);
  ASSERT_EQ(server().add_tag(tag("Level", "Word", "PLC2", "DB1.DBW2")), std::nullopt);
  ASSERT_TRUE(eventually([&] { return good_with(server(), "Level", std::int64_t(2223)); }));
  b().set_faults({.stall = true});
  ASSERT_TRUE(eventually([&] { return stats("PLC2").failed_reads.count("timeout") == 1; }))
      << failed_reads(stats("PLC2"));
  EXPECT_EQ(stats("PLC2").tag_errors, 0u);
  b().set_faults({});
  ASSERT_TRUE(eventually([&] { return good_with(server(), "Level", std::int64_t(2223)); }));

  // Replies held back 600 ms: a cycle skipped (an overrun) means a request is in flight when
  // the connection is forced down right after.
  b().set_faults({.delay = 600ms});
  const std::uint64_t before = failed_reads(stats("PLC2"));
  const std::uint64_t overruns = stats("PLC2").overruns;
  ASSERT_TRUE(eventually([&] { return stats("PLC2").overruns > overruns; }));
  ASSERT_EQ(write(server(), "@PLC2@ForceConnectionState", std::int64_t(0)), std::nullopt);
  ASSERT_TRUE(eventually([&] { return int_of(server(), "@PLC2@ConnectionState") == 0; }));
  std::this_thread::sleep_for(700ms);
  EXPECT_EQ(failed_reads(stats("PLC2")), before) << "stopped on purpose: not a failed read";
  EXPECT_TRUE(stats("PLC1").failed_reads.empty());
}

}  // namespace
}  // namespace scada::tags
