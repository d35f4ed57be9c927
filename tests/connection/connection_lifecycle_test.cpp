// The life of a connection against plcsim on loopback: certificate expiry and renewal under a
// live session, dead peers, the job engine (AmQ, PDU references, the PDU bound), refusals and
// the reconnect backoff, stop and start, scheduled KeyUpdates and session resumption.
//
// Certificates are made while the tests run (a CA in pki/roots issuing leaves for 127.0.0.1 with
// the validity a test asks for); plcsim re-reads its certificate and key files when they change.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "../support/hex.h"
#include "connection_fixture.h"
#include "plcsim/plcsim.h"
#include "test_pki.h"

namespace ch = scada::channel;
namespace ps = scada::plcsim;
namespace pki = scada::certstore::test_pki;
namespace fs = std::filesystem;
using namespace scada::test;
using namespace std::chrono_literals;
using std::chrono::milliseconds;
using std::chrono::steady_clock;
using std::chrono::system_clock;

namespace {

// ---- certificates

struct Leaf {
  std::string certificate_pem, key_pem, sha256;
  std::chrono::sys_seconds not_after{};
};

std::chrono::sys_seconds now_seconds() {
  return std::chrono::floor<std::chrono::seconds>(system_clock::now());
}

// A CA (EC P-256, valid from an hour ago for a day) issuing leaves for 127.0.0.1 with any
// validity.
class Ca {
 public:
  explicit Ca(const std::string& name) : key_(pki::make_key(pki::KeyKind::ec_p256)) {
    pki::CertificateSpec spec;
    spec.subject = {{"O", "lifecycle tests"}, {"CN", name}};
    spec.serial = {0x01};
    spec.not_before = now_seconds() - std::chrono::hours(1);
    spec.not_after = now_seconds() + std::chrono::hours(24);
    spec.ca = true;
    certificate_ = pki::make_certificate(spec, key_.get(), nullptr, key_.get());
    pem_ = pki::pem_of(certificate_.get());
  }
  const std::string& pem() const { return pem_; }

  Leaf issue(const std::string& common_name, std::chrono::sys_seconds not_before,
             std::chrono::sys_seconds not_after) {
    pki::KeyPtr key = pki::make_key(pki::KeyKind::ec_p256);
    pki::CertificateSpec spec;
    spec.subject = {{"O", "lifecycle tests"}, {"CN", common_name}};
    ++serial_;
    spec.serial = {std::uint8_t(serial_ >> 8), std::uint8_t(serial_)};
    spec.not_before = not_before;
    spec.not_after = not_after;
    spec.ca = false;
    spec.ip_addresses = {"127.0.0.1"};
    pki::CertificatePtr c = pki::make_certificate(spec, key.get(), certificate_.get(), key_.get());
    return Leaf{pki::pem_of(c.get()), pki::pem_of_private_key(key.get()),
                pki::sha256_hex(pki::der_of(c.get())), not_after};
  }
  // Valid from an hour ago for a day.
  Leaf issue(const std::string& common_name) {
    return issue(common_name, now_seconds() - std::chrono::hours(1),
                 now_seconds() + std::chrono::hours(24));
  }

 private:
  pki::KeyPtr key_;
  pki::CertificatePtr certificate_;
  std::string pem_;
  std::uint16_t serial_ = 1;
};

// ---- plcsim's log

// ---- the bench: a store with the CA in pki/roots, one PLC serving a CA-issued certificate from
// files, and an event loop for the connections (declared after the bench, so they go first).

class Bench {
 public:
  // not_after: of the PLC's first certificate; default a day from now.
  explicit Bench(ch::SecurityMode mode, ps::PlcConfig pc = {},
                 std::optional<std::chrono::sys_seconds> not_after = std::nullopt)
      : mode_(mode), ca_("PLC CA") {
    fs::create_directories(ts_.dir().file("plc"));
    certificate_file_ = ts_.dir().file("plc") / "plc.crt";
    key_file_ = ts_.dir().file("plc") / "plc.key";
    leaf_ = not_after ? ca_.issue("PLC1", now_seconds() - std::chrono::hours(1), *not_after)
                      : ca_.issue("PLC1");
    write_file(certificate_file_, leaf_.certificate_pem);
    write_file(key_file_, leaf_.key_pem);
    write_file(ts_.layout().roots / "plc-ca.pem", ca_.pem());
    ts_.store().reload();
    pc.mode = mode;
    pc.tls.certificate = certificate_file_;
    pc.tls.key = key_file_;
    sim_ = std::make_unique<ps::Simulator>(std::vector<ps::PlcConfig>{pc}, "127.0.0.1", 0,
                                           log_.sink());
  }

  ch::ConnectionConfig config() const {
    ch::ConnectionConfig cc;
    cc.port = sim_->plc(0).port();
    cc.mode = mode_;
    cc.retry_min = 50ms;
    cc.retry_max = 400ms;
    cc.connect_timeout = 2s;
    return cc;
  }

  // A renewed certificate: key and certificate files replaced as deployments do (plcsim keeps
  // its previous pair while the two do not match).
  void renew(const Leaf& leaf) {
    replace_file_atomically(key_file_, leaf.key_pem);
    replace_file_atomically(certificate_file_, leaf.certificate_pem);
  }

  scada::certstore::CertificateStore& store() { return ts_.store(); }
  const TestStore& test_store() const { return ts_; }
  Ca& ca() { return ca_; }
  const Leaf& leaf() const { return leaf_; }
  ps::Plc& plc() { return sim_->plc(0); }
  PlcLog& log() { return log_; }
  boost::asio::any_io_executor executor() { return loop_.executor(); }

  void set_faults(const std::function<void(ps::Faults&)>& change) {
    ps::Faults f = plc().faults();
    change(f);
    plc().set_faults(f);
  }

 private:
  ch::SecurityMode mode_;
  TestStore ts_;
  Ca ca_;
  Leaf leaf_;
  fs::path certificate_file_, key_file_;
  PlcLog log_;
  std::unique_ptr<ps::Simulator> sim_;
  EventLoop loop_;
};

// ---- events

std::string history(const EventRecorder& rec) {
  std::string h;
  for (const auto& e : rec.events()) {
    h += std::string(h.empty() ? "" : "; ") + ch::connection_state_name(e.state);
    if (e.reason != ch::FailureReason::none) {
      h += std::string(" (") + ch::failure_reason_name(e.reason) + ": " + e.detail + ")";
    }
  }
  return h.empty() ? "no events" : h;
}

// The index of the first event at or after `from` that matches, waiting up to timeout.
std::optional<std::size_t> wait_index(EventRecorder& rec, const EventRecorder::Match& match,
                                      milliseconds timeout, std::size_t from = 0) {
  if (!rec.wait(match, timeout, from)) return std::nullopt;
  const auto events = rec.events();
  for (std::size_t i = from; i < events.size(); ++i) {
    if (match(events[i])) return i;
  }
  return std::nullopt;
}

EventRecorder::Match state_is(ch::ConnectionState state) {
  return [state](const ch::ConnectionEvent& e) { return e.state == state; };
}

EventRecorder::Match waiting_because(ch::FailureReason reason) {
  return [reason](const ch::ConnectionEvent& e) {
    return e.state == ch::ConnectionState::waiting && e.reason == reason;
  };
}

// ---- jobs

ch::VarItem db_bytes(std::uint16_t db, std::uint32_t offset, std::uint16_t length) {
  return ch::VarItem{ch::TransportSize::byte, length, db, ch::Area::data_block, offset * 8};
}

ch::JobResult write_bytes(ch::Connection& c, std::uint16_t db, std::uint32_t offset,
                          const ch::Bytes& data) {
  ch::Pdu job{ch::Header{ch::Rosctr::job},
              ch::WriteVarRequest{{db_bytes(db, offset, std::uint16_t(data.size()))},
                                  {ch::DataItem{0, ch::DataSize::byte_word_dword, data}}}};
  return run_job(c, std::move(job));
}

// Submits a read; its result arrives through the future (the promise is shared with the
// callback, so a test that gives up early leaves nothing dangling).
std::future<ch::JobResult> submit_read(ch::Connection& c, ch::VarItem item) {
  auto promise = std::make_shared<std::promise<ch::JobResult>>();
  auto future = promise->get_future();
  c.read({item}, [promise](ch::JobResult r) { promise->set_value(std::move(r)); });
  return future;
}

ch::Bytes pattern(std::size_t length, std::uint8_t seed) {
  ch::Bytes b(length);
  for (std::size_t i = 0; i < length; ++i) b[i] = std::uint8_t(seed * 31 + i * 7 + 1);
  return b;
}

// A port on 127.0.0.1 that is bound but not listening: connects to it are refused, and no
// other program can take it meanwhile.
class ClosedPort {
 public:
  ClosedPort() : acceptor_(io_) {
    namespace ip = boost::asio::ip;
    acceptor_.open(ip::tcp::v4());
    acceptor_.bind(ip::tcp::endpoint(ip::make_address("127.0.0.1"), 0));
  }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

 private:
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
};

std::string mode_name(const testing::TestParamInfo<ch::SecurityMode>& info) {
  switch (info.param) {
    case ch::SecurityMode::none:
      return "none";
    case ch::SecurityMode::tls:
      return "tls";
    case ch::SecurityMode::s7_secure:
      return "s7_secure";
  }
  return "unknown";
}

const auto kSecureModes = testing::Values(ch::SecurityMode::tls, ch::SecurityMode::s7_secure);
const auto kAllModes =
    testing::Values(ch::SecurityMode::none, ch::SecurityMode::tls, ch::SecurityMode::s7_secure);

class ConnectionExpiry : public testing::TestWithParam<ch::SecurityMode> {};
class ConnectionRenewal : public testing::TestWithParam<ch::SecurityMode> {};
class ConnectionDeadPeer : public testing::TestWithParam<ch::SecurityMode> {};
class ConnectionEngine : public testing::TestWithParam<ch::SecurityMode> {};
class ConnectionRefusedByPlc : public testing::TestWithParam<ch::SecurityMode> {};
class ConnectionStop : public testing::TestWithParam<ch::SecurityMode> {};
class ConnectionKeyUpdate : public testing::TestWithParam<ch::SecurityMode> {};
class ConnectionResumption : public testing::TestWithParam<ch::SecurityMode> {};

}  // namespace

// ---------------------------------------------------------------------------------------------
// 3. Expiry: a session survives its PLC certificate's expiry; a new handshake does not; a
// renewed certificate brings the connection back by itself.

TEST_P(ConnectionExpiry, SessionOutlivesTheCertificateAndRenewalReconnects) {
  const ch::SecurityMode mode = GetParam();
  // tls keeps polling 10 s past the expiry; s7-secure (same session logic, other framing) a
  // shorter while, to keep the program's time reasonable.
  const auto past_expiry = mode == ch::SecurityMode::tls ? 10s : 2s;
  const auto not_after = now_seconds() + 3s;
  Bench b(mode, {}, not_after);
  const ch::Bytes known = pattern(8, 3);
  b.plc().write(ch::Area::data_block, 1, 0, known);

  ch::Connection c(b.executor(), b.store(), b.config());
  EventRecorder rec(c);
  c.start();
  ASSERT_TRUE(rec.wait_state(ch::ConnectionState::up, 5s)) << history(rec);
  {
    const auto info = c.info();
    ASSERT_TRUE(info.peer_certificate);
    EXPECT_EQ(info.peer_certificate->sha256, b.leaf().sha256);
    EXPECT_EQ(info.peer_certificate->not_after, system_clock::time_point(not_after));
  }
  const std::size_t events_when_up = rec.size();

  // Poll (a SCADA poll cycle of 50 ms) until well past the expiry.
  const auto poll_until = not_after + 1s + past_expiry;
  int polls = 0, polls_after_expiry = 0;
  while (system_clock::now() < poll_until) {
    auto data = read_data(c, 1, 0, 8);
    ASSERT_TRUE(std::holds_alternative<ch::Bytes>(data))
        << "poll " << polls << ": " << std::get<std::string>(data) << "; " << history(rec);
    ASSERT_EQ(std::get<ch::Bytes>(data), known);
    ++polls;
    if (system_clock::now() > not_after + 1s) ++polls_after_expiry;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_GT(polls_after_expiry, 0);
  EXPECT_EQ(rec.size(), events_when_up) << "the state changed while polling: " << history(rec);
  {
    const auto info = c.info();
    EXPECT_EQ(info.state, ch::ConnectionState::up);
    EXPECT_EQ(info.sessions, 1u);
    ASSERT_TRUE(info.peer_certificate);
    EXPECT_EQ(info.peer_certificate->sha256, b.leaf().sha256);
    EXPECT_FALSE(info.peer_certificate->valid_at(system_clock::now()))
        << "the session's certificate should have expired by now";
  }

  // A new handshake meets the expired certificate.
  const std::size_t before_close = rec.size();
  b.plc().close_connections();
  auto expired = wait_index(rec, waiting_because(ch::FailureReason::expired), 5s, before_close);
  ASSERT_TRUE(expired) << history(rec);
  {
    const auto events = rec.events();
    for (std::size_t i = before_close; i <= *expired; ++i) {
      EXPECT_NE(events[i].state, ch::ConnectionState::up)
          << "a session came up with the expired certificate: " << history(rec);
    }
  }

  // Renewal: the PLC's files are replaced; the connection comes back by itself.
  const Leaf renewed = b.ca().issue("PLC1");
  const std::size_t before_renewal = rec.size();
  b.renew(renewed);
  ASSERT_TRUE(rec.wait_state(ch::ConnectionState::up, 5s, before_renewal)) << history(rec);
  const auto info = c.info();
  ASSERT_TRUE(info.peer_certificate);
  EXPECT_EQ(info.peer_certificate->sha256, renewed.sha256);
  EXPECT_FALSE(info.resumed);
  EXPECT_EQ(info.sessions, 2u);
  auto data = read_data(c, 1, 0, 8);
  ASSERT_TRUE(std::holds_alternative<ch::Bytes>(data)) << std::get<std::string>(data);
  EXPECT_EQ(std::get<ch::Bytes>(data), known);
}

INSTANTIATE_TEST_SUITE_P(Modes, ConnectionExpiry, kSecureModes, mode_name);

// ---------------------------------------------------------------------------------------------
// 4. Renewal without downtime: connections polling all the time while the PLC's certificate is
// replaced, several times. Established sessions keep theirs; new ones get the new one.

namespace {

// Threads, each polling one connection back to back until stopped.
class Pollers {
 public:
  Pollers(const std::vector<ch::Connection*>& connections, ch::Bytes expected)
      : expected_(std::move(expected)), counts_(connections.size(), 0) {
    for (std::size_t i = 0; i < connections.size(); ++i) {
      threads_.emplace_back([this, i, c = connections[i]] { run(i, *c); });
    }
  }
  ~Pollers() { stop(); }

  void stop() {
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  std::vector<std::uint64_t> counts() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return counts_;
  }
  std::vector<std::string> failures() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return failures_;
  }
  // Waits until every poller has done `more` successful polls beyond `base`.
  bool wait_progress(const std::vector<std::uint64_t>& base, std::uint64_t more,
                     milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] {
      for (std::size_t i = 0; i < counts_.size(); ++i) {
        if (counts_[i] < base[i] + more) return false;
      }
      return true;
    });
  }

 private:
  void run(std::size_t index, ch::Connection& c) {
    while (!stop_) {
      auto data = read_data(c, 1, 0, std::uint16_t(expected_.size()));
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!std::holds_alternative<ch::Bytes>(data)) {
          failures_.push_back("poller " + std::to_string(index) + ": " +
                              std::get<std::string>(data));
        } else if (std::get<ch::Bytes>(data) != expected_) {
          failures_.push_back("poller " + std::to_string(index) + ": wrong data");
        } else {
          ++counts_[index];
        }
      }
      changed_.notify_all();
      std::this_thread::sleep_for(2ms);
    }
  }

  const ch::Bytes expected_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::uint64_t> counts_;
  std::vector<std::string> failures_;
  std::vector<std::thread> threads_;
};

}  // namespace

TEST_P(ConnectionRenewal, CertificateReplacedWhilePollingWithoutAFailedPoll) {
  Bench b(GetParam());
  const ch::Bytes known = pattern(8, 4);
  b.plc().write(ch::Area::data_block, 1, 0, known);

  constexpr std::size_t kConnections = 4;
  std::vector<std::unique_ptr<ch::Connection>> connections;
  std::vector<std::unique_ptr<EventRecorder>> recorders;
  for (std::size_t i = 0; i < kConnections; ++i) {
    ch::ConnectionConfig cc = b.config();
    cc.name = "PLC1-" + std::to_string(i);
    connections.push_back(std::make_unique<ch::Connection>(b.executor(), b.store(), cc));
    recorders.push_back(std::make_unique<EventRecorder>(*connections.back()));
    connections.back()->start();
  }
  for (std::size_t i = 0; i < kConnections; ++i) {
    ASSERT_TRUE(recorders[i]->wait_state(ch::ConnectionState::up, 5s)) << history(*recorders[i]);
  }
  std::vector<ch::Connection*> raw;
  for (auto& c : connections) raw.push_back(c.get());
  std::vector<std::size_t> events_when_up;
  for (auto& r : recorders) events_when_up.push_back(r->size());

  Pollers pollers(raw, known);
  ASSERT_TRUE(pollers.wait_progress(std::vector<std::uint64_t>(kConnections, 0), 3, 10s));
  std::string last_sha = b.leaf().sha256;
  for (int round = 1; round <= 4; ++round) {
    SCOPED_TRACE("renewal " + std::to_string(round));
    const Leaf renewed = b.ca().issue("PLC1");
    const auto before = pollers.counts();
    b.renew(renewed);
    // A new connection gets the new certificate ...
    {
      ch::ConnectionConfig cc = b.config();
      cc.name = "probe";
      ch::Connection probe(b.executor(), b.store(), cc);
      EventRecorder probe_rec(probe);
      probe.start();
      ASSERT_TRUE(probe_rec.wait_state(ch::ConnectionState::up, 5s)) << history(probe_rec);
      const auto info = probe.info();
      ASSERT_TRUE(info.peer_certificate);
      EXPECT_EQ(info.peer_certificate->sha256, renewed.sha256);
    }
    // ... while the polling ones go on with theirs.
    ASSERT_TRUE(pollers.wait_progress(before, 20, 10s));
    last_sha = renewed.sha256;
  }
  pollers.stop();

  const auto failures = pollers.failures();
  EXPECT_TRUE(failures.empty()) << failures.size() << " failed polls, the first: "
                                << (failures.empty() ? "" : failures.front());
  for (std::size_t i = 0; i < kConnections; ++i) {
    SCOPED_TRACE("connection " + std::to_string(i));
    EXPECT_EQ(recorders[i]->size(), events_when_up[i]) << history(*recorders[i]);
    const auto info = connections[i]->info();
    EXPECT_EQ(info.state, ch::ConnectionState::up);
    EXPECT_EQ(info.sessions, 1u);
    ASSERT_TRUE(info.peer_certificate);
    EXPECT_EQ(info.peer_certificate->sha256, b.leaf().sha256);
  }

  // Afterwards a new connection sees the last certificate.
  ch::Connection late(b.executor(), b.store(), b.config());
  EventRecorder late_rec(late);
  late.start();
  ASSERT_TRUE(late_rec.wait_state(ch::ConnectionState::up, 5s)) << history(late_rec);
  ASSERT_TRUE(late.info().peer_certificate);
  EXPECT_EQ(late.info().peer_certificate->sha256, last_sha);
}

INSTANTIATE_TEST_SUITE_P(Modes, ConnectionRenewal, kSecureModes, mode_name);

// ---------------------------------------------------------------------------------------------
// 9. Dead peer: a stalled PLC (TCP open, nothing answered) is declared dead within
// dead_peer_timeout, idle (heartbeat) and with a job in flight; the connection recovers by
// itself once the PLC answers again.

// The silence a dead-peer detail reports: "nothing received from the PLC for 912 ms while ...".
std::optional<milliseconds> reported_silence(const std::string& detail) {
  const std::string marker = "nothing received from the PLC for ";
  const auto at = detail.find(marker);
  if (at == std::string::npos) return std::nullopt;
  std::size_t used = 0;
  const long ms = std::stol(detail.substr(at + marker.size()), &used);
  if (detail.compare(at + marker.size() + used, 3, " ms") != 0) return std::nullopt;
  return milliseconds(ms);
}

TEST_P(ConnectionDeadPeer, StalledPlcIsDeclaredDeadIdleAndWithAJobInFlightThenRecovers) {
  Bench b(GetParam());
  const ch::Bytes known = pattern(4, 9);
  b.plc().write(ch::Area::data_block, 1, 0, known);
  ch::ConnectionConfig cc = b.config();
  cc.dead_peer_timeout = 1000ms;
  // Generous slack for the bound (the check runs every tenth of it; sanitizers, loaded CI).
  const auto limit = 3 * cc.dead_peer_timeout;
  ch::Connection c(b.executor(), b.store(), cc);
  EventRecorder rec(c);
  c.start();
  ASSERT_TRUE(rec.wait_state(ch::ConnectionState::up, 5s)) << history(rec);

  auto expect_dead_peer_event = [&](std::size_t from, steady_clock::time_point stalled) {
    auto index = wait_index(
        rec, [](const ch::ConnectionEvent& e) { return e.state != ch::ConnectionState::up; },
        limit + 5s, from);
    const auto elapsed = steady_clock::now() - stalled;
    ASSERT_TRUE(index) << history(rec);
    const auto event = rec.events()[*index];
    EXPECT_EQ(event.state, ch::ConnectionState::waiting) << history(rec);
    EXPECT_EQ(event.reason, ch::FailureReason::timeout) << history(rec);
    EXPECT_NE(event.detail.find("dead peer"), std::string::npos) << event.detail;
    // Never early: the silence the connection measured before giving up is at least 90% of the
    // bound (its rule; how soon after the bound it notices is handshake_bench's figure).
    const auto silent = reported_silence(event.detail);
    ASSERT_TRUE(silent) << event.detail;
    EXPECT_GE(*silent * 10, cc.dead_peer_timeout * 9)
        << event.detail << " (the test saw it after "
        << std::chrono::duration_cast<milliseconds>(elapsed).count() << " ms)";
  };
  auto expect_recovery = [&](std::size_t from) {
    b.set_faults([](ps::Faults& f) { f.stall = false; });
    ASSERT_TRUE(rec.wait_state(ch::ConnectionState::up, 10s, from)) << history(rec);
    auto data = read_data(c, 1, 0, 4);
    ASSERT_TRUE(std::holds_alternative<ch::Bytes>(data)) << std::get<std::string>(data);
    EXPECT_EQ(std::get<ch::Bytes>(data), known);
  };

  {
    SCOPED_TRACE("idle");
    const std::size_t mark = rec.size();
    const auto stalled = steady_clock::now();
    b.set_faults([](ps::Faults& f) { f.stall = true; });
    expect_dead_peer_event(mark, stalled);
    expect_recovery(mark);
  }
  {
    SCOPED_TRACE("a read in flight");
    const std::size_t mark = rec.size();
    const auto stalled = steady_clock::now();
    b.set_faults([](ps::Faults& f) { f.stall = true; });
    const ch::JobResult r = read_bytes(c, 1, 0, 4, limit + 5s);
    const auto elapsed = steady_clock::now() - stalled;
    const auto* error = std::get_if<ch::JobError>(&r);
    ASSERT_TRUE(error) << "the read got a reply from a stalled PLC";
    EXPECT_EQ(error->reason, ch::FailureReason::timeout) << describe(r);
    EXPECT_NE(error->detail.find("dead peer"), std::string::npos) << error->detail;
    const auto silent = reported_silence(error->detail);
    ASSERT_TRUE(silent) << error->detail;
    EXPECT_GE(*silent * 10, cc.dead_peer_timeout * 9)
        << error->detail << " (the test saw it after "
        << std::chrono::duration_cast<milliseconds>(elapsed).count() << " ms)";
    expect_dead_peer_event(mark, stalled);
    expect_recovery(mark);
  }
  EXPECT_GE(c.info().sessions, 3u);
}

INSTANTIATE_TEST_SUITE_P(Modes, ConnectionDeadPeer, kSecureModes, mode_name);

// ---------------------------------------------------------------------------------------------
// The job engine.

// AmQ: 12 reads at once against a PLC granting AmQ 3 with slow replies: all answered with their
// own data (replies matched by PDU reference), several in flight at a time.
TEST_P(ConnectionEngine, KeepsAmqJobsInFlightAndMatchesEachReplyToItsJob) {
  ps::PlcConfig pc;
  pc.max_amq = 3;
  Bench b(GetParam(), pc);
  constexpr std::size_t kJobs = 12;
  std::vector<ch::Bytes> expected;
  for (std::size_t i = 0; i < kJobs; ++i) {
    expected.push_back(pattern(8, std::uint8_t(i + 40)));
    b.plc().write(ch::Area::data_block, 1, std::uint32_t(i * 16), expected.back());
  }
  ch::Connection c(b.executor(), b.store(), b.config());
  EventRecorder rec(c);
  c.start();
  ASSERT_TRUE(rec.wait_state(ch::ConnectionState::up, 5s)) << history(rec);
  EXPECT_EQ(c.info().amq, 3);
  const std::size_t events_when_up = rec.size();

  const auto delay = 150ms;
  b.set_faults([&](ps::Faults& f) { f.delay = delay; });
  std::vector<std::future<ch::JobResult>> futures;
  const auto t0 = steady_clock::now();
  for (std::size_t i = 0; i < kJobs; ++i) {
    futures.push_back(submit_read(c, db_bytes(1, std::uint32_t(i * 16), 8)));
  }
  for (std::size_t i = 0; i < kJobs; ++i) {
    ASSERT_EQ(futures[i].wait_for(15s), std::future_status::ready) << "job " << i;
  }
  const auto elapsed = steady_clock::now() - t0;
  b.set_faults([](ps::Faults& f) { f.delay = 0ms; });
  for (std::size_t i = 0; i < kJobs; ++i) {
    SCOPED_TRACE("job " + std::to_string(i));
    const ch::JobResult r = futures[i].get();
    ASSERT_TRUE(std::holds_alternative<ch::Pdu>(r)) << describe(r);
    const auto* reply = std::get_if<ch::ReadVarResponse>(&std::get<ch::Pdu>(r).body);
    ASSERT_TRUE(reply);
    ASSERT_EQ(reply->items.size(), 1u);
    EXPECT_EQ(reply->items[0].return_code, 0xFF);
    EXPECT_EQ(to_hex(reply->items[0].data), to_hex(expected[i]));
  }
  // The engine kept as many jobs in flight as the PLC granted, never more (it counts them; how
  // much time that saves is handshake_bench's business, not a test's).
  EXPECT_EQ(c.info().peak_jobs_in_flight, 3u)
      << std::chrono::duration_cast<milliseconds>(elapsed).count() << " ms for " << kJobs
      << " jobs of " << delay.count() << " ms each";
  EXPECT_EQ(rec.size(), events_when_up) << history(rec);
  EXPECT_EQ(c.info().sessions, 1u);
}

// A reply with a PDU reference no job waits for ends the session (protocol error); every
// pending job fails; the connection reconnects by itself.
TEST_P(ConnectionEngine, AReplyNoJobWaitsForEndsTheSessionAndItReconnects) {
  Bench b(GetParam());
  const ch::Bytes known = pattern(4, 5);
  b.plc().write(ch::Area::data_block, 1, 0, known);
  ch::ConnectionConfig cc = b.config();
  cc.dead_peer_timeout = 30s;  // no heartbeat meanwhile
  ch::Connection c(b.executor(), b.store(), cc);
  EventRecorder rec(c);
  c.start();
  ASSERT_TRUE(rec.wait_state(ch::ConnectionState::up, 5s)) << history(rec);

  const std::size_t mark = rec.size();
  b.set_faults([](ps::Faults& f) { f.wrong_pdu_ref = true; });
  constexpr std::size_t kJobs = 4;  // plcsim grants AmQ 2: two in flight, two queued
  std::vector<std::future<ch::JobResult>> futures;
  for (std::size_t i = 0; i < kJobs; ++i) futures.push_back(submit_read(c, db_bytes(1, 0, 4)));
  for (std::size_t i = 0; i < kJobs; ++i) {
    SCOPED_TRACE("job " + std::to_string(i));
    ASSERT_EQ(futures[i].wait_for(10s), std::future_status::ready);
    const ch::JobResult r = futures[i].get();
    const auto* error = std::get_if<ch::JobError>(&r);
    ASSERT_TRUE(error) << "a job got a reply";
    EXPECT_EQ(error->reason, ch::FailureReason::protocol_error) << describe(r);
  }
  auto ended = wait_index(rec, state_is(ch::ConnectionState::waiting), 5s, mark);
  ASSERT_TRUE(ended) << history(rec);
  const auto event = rec.events()[*ended];
  EXPECT_EQ(event.reason, ch::FailureReason::protocol_error);
  EXPECT_NE(event.detail.find("PDU reference"), std::string::npos) << event.detail;

  b.set_faults([](ps::Faults& f) { f.wrong_pdu_ref = false; });
  ASSERT_TRUE(rec.wait_state(ch::ConnectionState::up, 5s, *ended)) << history(rec);
  auto data = read_data(c, 1, 0, 4);
  ASSERT_TRUE(std::holds_alternative<ch::Bytes>(data)) << std::get<std::string>(data);
  EXPECT_EQ(std::get<ch::Bytes>(data), known);
  EXPECT_EQ(c.info().sessions, 2u);
}

// A job larger than the negotiated PDU fails at once on this side (a JobError, not the PLC's
// refusal); a job of exactly the PDU goes through; the session stays up.
TEST_P(ConnectionEngine, AJobLargerThanTheNegotiatedPduFailsAtOnceAndTheSessionStaysUp) {
  ps::PlcConfig pc;
  pc.max_pdu = 240;
  Bench b(GetParam(), pc);
  ch::Connection c(b.executor(), b.store(), b.config());
  EventRecorder rec(c);
  c.start();
  ASSERT_TRUE(rec.wait_state(ch::ConnectionState::up, 5s)) << history(rec);
  ASSERT_EQ(c.info().pdu, 240);
  const std::size_t events_when_up = rec.size();

  // Write Var of n bytes: 10 header + 2 + 12 parameter + 4 + n data = 28 + n.
  const ch::Bytes fits = pattern(212, 6);
  {
    const ch::JobResult r = write_bytes(c, 1, 100, fits);
    ASSERT_TRUE(std::holds_alternative<ch::Pdu>(r)) << describe(r);
    const ch::Pdu& p = std::get<ch::Pdu>(r);
    EXPECT_EQ(p.header.error(), 0) << ch::s7_error_text(p.header.error());
    const auto* w = std::get_if<ch::WriteVarResponse>(&p.body);
    ASSERT_TRUE(w);
    EXPECT_EQ(w->return_codes, std::vector<std::uint8_t>{0xFF});
    EXPECT_EQ(b.plc().read(ch::Area::data_block, 1, 100, 212), fits);
  }
  {
    const ch::JobResult r = write_bytes(c, 1, 100, pattern(213, 7));
    const auto* error = std::get_if<ch::JobError>(&r);
    ASSERT_TRUE(error) << "a job over the PDU was sent (the PLC answered it)";
    EXPECT_NE(error->detail.find("PDU"), std::string::npos) << error->detail;
    EXPECT_EQ(b.plc().read(ch::Area::data_block, 1, 100, 212), fits);
  }
  {
    // Read Var of n items: 12 + 12 n bytes; 19 fit into 240, 20 do not.
    std::vector<ch::VarItem> items;
    for (std::uint32_t i = 0; i < 19; ++i) items.push_back(db_bytes(1, i, 1));
    ch::JobResult r = run_job(c, ch::Pdu{ch::Header{ch::Rosctr::job}, ch::ReadVarRequest{items}});
    ASSERT_TRUE(std::holds_alternative<ch::Pdu>(r)) << describe(r);
    EXPECT_EQ(std::get<ch::Pdu>(r).header.error(), 0);
    items.push_back(db_bytes(1, 19, 1));
    r = run_job(c, ch::Pdu{ch::Header{ch::Rosctr::job}, ch::ReadVarRequest{items}});
    ASSERT_TRUE(std::holds_alternative<ch::JobError>(r)) << "20 items went out";
  }
  auto data = read_data(c, 1, 100, 4);
  ASSERT_TRUE(std::holds_alternative<ch::Bytes>(data)) << std::get<std::string>(data);
  EXPECT_EQ(std::get<ch::Bytes>(data), ch::Bytes(fits.begin(), fits.begin() + 4));
  EXPECT_EQ(rec.size(), events_when_up) << history(rec);
  EXPECT_EQ(c.info().sessions, 1u);
}

INSTANTIATE_TEST_SUITE_P(Modes, ConnectionEngine, kAllModes, mode_name);

// ---------------------------------------------------------------------------------------------
// Refusals and the backoff.

TEST(ConnectionRefused, NothingListeningIsRefusedAndJobsFailAtOnce) {
  TestStore ts;
  EventLoop loop;
  ClosedPort closed;
  ch::ConnectionConfig cc;
  cc.port = closed.port();
  cc.retry_min = 50ms;
  cc.retry_max = 400ms;
  cc.connect_timeout = 2s;
  ch::Connection c(loop.executor(), ts.store(), cc);
  EventRecorder rec(c);

  // Not started: a job fails at once.
  ch::JobResult r = read_bytes(c, 1, 0, 4, 5s);
  ASSERT_TRUE(std::holds_alternative<ch::JobError>(r));
  EXPECT_EQ(std::get<ch::JobError>(r).reason, ch::FailureReason::stopped) << describe(r);

  c.start();
  auto refused = wait_index(rec, state_is(ch::ConnectionState::waiting), 5s);
  ASSERT_TRUE(refused) << history(rec);
  const auto event = rec.events()[*refused];
  EXPECT_EQ(event.reason, ch::FailureReason::refused) << event.detail;
  EXPECT_NE(event.detail.find(std::to_string(cc.port)), std::string::npos) << event.detail;

  // While it keeps trying, jobs fail at once with the last reason.
  r = read_bytes(c, 1, 0, 4, 5s);
  ASSERT_TRUE(std::holds_alternative<ch::JobError>(r));
  EXPECT_EQ(std::get<ch::JobError>(r).reason, ch::FailureReason::refused) << describe(r);
  EXPECT_EQ(c.info().sessions, 0u);
  EXPECT_EQ(c.info().last_reason, ch::FailureReason::refused);
}

// A PLC that closes every connection right after accepting it: refused, in every mode (before
// the session is up, "the PLC closed / disconnected" is a refusal, channel.h); up once it stops.
TEST_P(ConnectionRefusedByPlc, ClosedRightAfterAcceptIsRefusedThenComesUp) {
  Bench b(GetParam());
  b.set_faults([](ps::Faults& f) { f.refuse_connections = true; });
  ch::Connection c(b.executor(), b.store(), b.config());
  EventRecorder rec(c);
  c.start();
  auto ended = wait_index(rec, state_is(ch::ConnectionState::waiting), 5s);
  ASSERT_TRUE(ended) << history(rec);
  const auto event = rec.events()[*ended];
  EXPECT_EQ(event.reason, ch::FailureReason::refused)
      << ch::failure_reason_name(event.reason) << ": " << event.detail;
  ch::JobResult r = read_bytes(c, 1, 0, 4, 5s);
  ASSERT_TRUE(std::holds_alternative<ch::JobError>(r)) << "a job was served while not up";

  const std::size_t mark = rec.size();
  b.set_faults([](ps::Faults& f) { f.refuse_connections = false; });
  ASSERT_TRUE(rec.wait_state(ch::ConnectionState::up, 5s, mark)) << history(rec);
  auto data = read_data(c, 1, 0, 4);
  EXPECT_TRUE(std::holds_alternative<ch::Bytes>(data)) << std::get<std::string>(data);
}

INSTANTIATE_TEST_SUITE_P(Modes, ConnectionRefusedByPlc, kAllModes, mode_name);

TEST(ConnectionBackoff, RetryDelaysDoubleFromRetryMinUpToRetryMaxWithJitter) {
  TestStore ts;
  EventLoop loop;
  ClosedPort closed;
  ch::ConnectionConfig cc;
  cc.port = closed.port();
  cc.retry_min = 50ms;
  cc.retry_max = 400ms;
  cc.connect_timeout = 2s;
  ch::Connection c(loop.executor(), ts.store(), cc);
  EventRecorder rec(c);
  c.start();
  // Bases 50, 100, 200, 400, 400, 400, 400 ms; each delay within [base / 2, base].
  const std::vector<milliseconds> bases = {50ms, 100ms, 200ms, 400ms, 400ms, 400ms, 400ms};
  std::size_t from = 0;
  for (std::size_t i = 0; i < bases.size(); ++i) {
    SCOPED_TRACE("wait " + std::to_string(i + 1));
    auto index = wait_index(rec, state_is(ch::ConnectionState::waiting), 5s, from);
    ASSERT_TRUE(index) << history(rec);
    const auto event = rec.events()[*index];
    EXPECT_EQ(event.reason, ch::FailureReason::refused) << event.detail;
    EXPECT_GE(event.retry_in, bases[i] / 2);
    EXPECT_LE(event.retry_in, bases[i]);
    from = *index + 1;
  }
  c.stop();
  ASSERT_TRUE(rec.wait_state(ch::ConnectionState::stopped, 5s, from)) << history(rec);
}

// ---------------------------------------------------------------------------------------------
// stop() ends the session in order and start() brings it back.

TEST_P(ConnectionStop, StopEndsTheSessionInOrderAndStartBringsItBack) {
  const ch::SecurityMode mode = GetParam();
  Bench b(mode);
  const ch::Bytes known = pattern(4, 8);
  b.plc().write(ch::Area::data_block, 1, 0, known);
  ch::Connection c(b.executor(), b.store(), b.config());
  EventRecorder rec(c);
  c.start();
  ASSERT_TRUE(rec.wait_state(ch::ConnectionState::up, 5s)) << history(rec);

  // A job in flight when stop() comes (the PLC answers slowly) fails with reason stopped.
  b.set_faults([](ps::Faults& f) { f.delay = 2s; });
  auto pending_result = submit_read(c, db_bytes(1, 0, 4));
  const std::size_t mark = rec.size();
  const std::size_t log_mark = b.log().size();
  c.stop();
  ASSERT_EQ(pending_result.wait_for(5s), std::future_status::ready);
  const ch::JobResult r = pending_result.get();
  ASSERT_TRUE(std::holds_alternative<ch::JobError>(r)) << "the job got a reply";
  EXPECT_EQ(std::get<ch::JobError>(r).reason, ch::FailureReason::stopped) << describe(r);

  ASSERT_TRUE(rec.wait_state(ch::ConnectionState::stopped, 5s, mark)) << history(rec);
  {
    const auto events = rec.events();
    ASSERT_EQ(events.size(), mark + 1) << history(rec);
    EXPECT_EQ(events[mark].reason, ch::FailureReason::stopped);
  }
  EXPECT_EQ(c.info().state, ch::ConnectionState::stopped);
  EXPECT_EQ(c.info().last_reason, ch::FailureReason::stopped);
  // The PLC saw an orderly end: close_notify in the secure modes, a TCP close otherwise.
  const std::string orderly =
      mode == ch::SecurityMode::none ? "closed: peer closed" : "closed: peer sent close_notify";
  EXPECT_TRUE(b.log().wait_for(orderly, 5s, log_mark)) << b.log().text();

  const ch::JobResult after = read_bytes(c, 1, 0, 4, 5s);
  ASSERT_TRUE(std::holds_alternative<ch::JobError>(after));
  EXPECT_EQ(std::get<ch::JobError>(after).reason, ch::FailureReason::stopped) << describe(after);
  // Stopped means stopped: no attempt follows by itself.
  EXPECT_EQ(rec.size(), mark + 1) << history(rec);

  b.set_faults([](ps::Faults& f) { f.delay = 0ms; });
  const std::size_t before_start = rec.size();
  c.start();
  ASSERT_TRUE(rec.wait_state(ch::ConnectionState::up, 5s, before_start)) << history(rec);
  auto data = read_data(c, 1, 0, 4);
  ASSERT_TRUE(std::holds_alternative<ch::Bytes>(data)) << std::get<std::string>(data);
  EXPECT_EQ(std::get<ch::Bytes>(data), known);
  EXPECT_EQ(c.info().sessions, 2u);
}

INSTANTIATE_TEST_SUITE_P(Modes, ConnectionStop, kAllModes, mode_name);

// ---------------------------------------------------------------------------------------------
// Scheduled KeyUpdate: traffic keys rotate while polling, and no poll fails.

TEST_P(ConnectionKeyUpdate, ScheduledKeyUpdatesWhilePollingFailNoPoll) {
  Bench b(GetParam());
  const ch::Bytes known = pattern(8, 11);
  b.plc().write(ch::Area::data_block, 1, 0, known);
  ch::ConnectionConfig cc = b.config();
  cc.key_update_interval = 200ms;
  ch::Connection c(b.executor(), b.store(), cc);
  EventRecorder rec(c);
  c.start();
  ASSERT_TRUE(rec.wait_state(ch::ConnectionState::up, 5s)) << history(rec);
  const std::size_t events_when_up = rec.size();

  // Poll for 1.5 s, and on (bounded) until three KeyUpdates went out.
  const auto t0 = steady_clock::now();
  int polls = 0;
  while (steady_clock::now() - t0 < 1500ms ||
         (c.info().key_updates < 3 && steady_clock::now() - t0 < 10s)) {
    auto data = read_data(c, 1, 0, 8);
    ASSERT_TRUE(std::holds_alternative<ch::Bytes>(data))
        << "poll " << polls << ": " << std::get<std::string>(data) << "; " << history(rec);
    ASSERT_EQ(std::get<ch::Bytes>(data), known);
    ++polls;
    std::this_thread::sleep_for(10ms);
  }
  const auto info = c.info();
  EXPECT_GE(info.key_updates, 3u);
  EXPECT_EQ(info.state, ch::ConnectionState::up);
  EXPECT_EQ(info.sessions, 1u);
  EXPECT_EQ(rec.size(), events_when_up) << history(rec);
}

INSTANTIATE_TEST_SUITE_P(Modes, ConnectionKeyUpdate, kSecureModes, mode_name);

// ---------------------------------------------------------------------------------------------
// Session resumption: a reconnect resumes when nothing changed; after a trust snapshot change
// the next handshake is a full one.

namespace {

// The store's snapshot versions as its events announce them.
class SnapshotWatch {
 public:
  explicit SnapshotWatch(scada::certstore::CertificateStore& store) {
    subscription_ = store.subscribe([this](const scada::certstore::StoreEvent& e) {
      if (e.kind != scada::certstore::StoreEvent::Kind::snapshot_changed) return;
      std::lock_guard<std::mutex> lock(mutex_);
      latest_ = std::max(latest_, e.snapshot_version);
      changed_.notify_all();
    });
  }
  ~SnapshotWatch() { subscription_.disconnect(); }
  std::optional<std::uint64_t> wait_beyond(std::uint64_t version, milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!changed_.wait_for(lock, timeout, [&] { return latest_ > version; })) return std::nullopt;
    return latest_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::uint64_t latest_ = 0;
  boost::signals2::connection subscription_;
};

}  // namespace

// Reconnects the connection and checks the new session serves reads with the PLC's
// certificate. by_plc: the PLC closes the session (close_notify, FIN); else stop() and
// start() (this side closes in order).
namespace {

void reconnect(Bench& b, ch::Connection& c, EventRecorder& rec, bool by_plc,
               const ch::Bytes& known) {
  const std::size_t mark = rec.size();
  const auto sessions = c.info().sessions;
  if (by_plc) {
    b.plc().close_connections();
  } else {
    c.stop();
    ASSERT_TRUE(rec.wait_state(ch::ConnectionState::stopped, 5s, mark)) << history(rec);
    c.start();
  }
  ASSERT_TRUE(rec.wait_state(ch::ConnectionState::up, 5s, mark)) << history(rec);
  EXPECT_EQ(c.info().sessions, sessions + 1);
  auto data = read_data(c, 1, 0, 4);
  ASSERT_TRUE(std::holds_alternative<ch::Bytes>(data)) << std::get<std::string>(data);
  EXPECT_EQ(std::get<ch::Bytes>(data), known);
  ASSERT_TRUE(c.info().peer_certificate);
  EXPECT_EQ(c.info().peer_certificate->sha256, b.leaf().sha256);
}

}  // namespace

// The PLC ends a session (a PLC restart, a gateway closing idle connections): nothing changed,
// so the reconnect is cheap (resumed).
TEST_P(ConnectionResumption, ReconnectAfterThePlcClosedTheSessionIsResumed) {
  Bench b(GetParam());
  const ch::Bytes known = pattern(4, 12);
  b.plc().write(ch::Area::data_block, 1, 0, known);
  ch::Connection c(b.executor(), b.store(), b.config());
  EventRecorder rec(c);
  c.start();
  ASSERT_TRUE(rec.wait_state(ch::ConnectionState::up, 5s)) << history(rec);
  EXPECT_FALSE(c.info().resumed);
  for (int round = 1; round <= 2; ++round) {
    SCOPED_TRACE("PLC closed the session, " + std::to_string(round));
    reconnect(b, c, rec, true, known);
    EXPECT_TRUE(c.info().resumed) << "a full handshake although nothing changed";
  }
}

// A trust snapshot change (here a root that does not concern this PLC) makes the next
// handshake a full one; under the new snapshot, sessions resume again. The reconnects are
// stop() and start() here, so that this side closes each session in order.
TEST_P(ConnectionResumption, NotResumedAfterATrustSnapshotChange) {
  Bench b(GetParam());
  const ch::Bytes known = pattern(4, 13);
  b.plc().write(ch::Area::data_block, 1, 0, known);
  ch::Connection c(b.executor(), b.store(), b.config());
  EventRecorder rec(c);
  c.start();
  ASSERT_TRUE(rec.wait_state(ch::ConnectionState::up, 5s)) << history(rec);
  EXPECT_FALSE(c.info().resumed);
  {
    SCOPED_TRACE("nothing changed");
    reconnect(b, c, rec, false, known);
    EXPECT_TRUE(c.info().resumed);
  }

  SnapshotWatch watch(b.store());
  const std::uint64_t before = b.store().snapshot()->version();
  Ca other("Unrelated CA");
  replace_file_atomically(b.test_store().layout().roots / "unrelated-ca.pem", other.pem());
  ASSERT_TRUE(watch.wait_beyond(before, 10s)) << "the store did not notice the new root";
  const std::uint64_t after = b.store().snapshot()->version();
  EXPECT_GT(after, before);
  {
    SCOPED_TRACE("after the trust change");
    reconnect(b, c, rec, false, known);
    EXPECT_FALSE(c.info().resumed) << "resumed a session trusted under an older snapshot";
    EXPECT_EQ(c.info().trust_snapshot, after);
  }
  {
    SCOPED_TRACE("nothing changed since");
    reconnect(b, c, rec, false, known);
    EXPECT_TRUE(c.info().resumed);
    EXPECT_EQ(c.info().trust_snapshot, after);
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, ConnectionResumption, kSecureModes, mode_name);

// Never past the peer certificate's expiry: a session that could otherwise be resumed (this
// side closed it in order) is not, once the PLC's certificate has expired.
TEST(ConnectionResumptionExpiry, NotResumedPastThePeerCertificateExpiry) {
  const auto not_after = now_seconds() + 2s;
  Bench b(ch::SecurityMode::tls, {}, not_after);
  const ch::Bytes known = pattern(4, 14);
  b.plc().write(ch::Area::data_block, 1, 0, known);
  ch::Connection c(b.executor(), b.store(), b.config());
  EventRecorder rec(c);
  c.start();
  ASSERT_TRUE(rec.wait_state(ch::ConnectionState::up, 5s)) << history(rec);
  {
    SCOPED_TRACE("before the expiry");
    reconnect(b, c, rec, false, known);
    EXPECT_TRUE(c.info().resumed);
  }
  // Wall-clock time must pass here; there is no event to wait for.
  std::this_thread::sleep_until(system_clock::time_point(not_after) + 1100ms);
  const std::size_t mark = rec.size();
  c.stop();
  ASSERT_TRUE(rec.wait_state(ch::ConnectionState::stopped, 5s, mark)) << history(rec);
  c.start();
  auto ended = wait_index(rec, state_is(ch::ConnectionState::waiting), 5s, mark);
  ASSERT_TRUE(ended) << history(rec);
  EXPECT_EQ(rec.events()[*ended].reason, ch::FailureReason::expired) << history(rec);
  const auto events = rec.events();
  for (std::size_t i = mark; i < events.size(); ++i) {
    EXPECT_NE(events[i].state, ch::ConnectionState::up) << history(rec);
  }
}
