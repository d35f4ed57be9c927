// Trust decisions of a connection against plcsim on loopback (DESIGN.md §4 identity, §5 trust):
// every row of the decision table in both secure modes, manual trust by moving a quarantined
// file, revocation of live sessions, malformed and half-written store files, and downgrade
// refusal proven with a recording proxy. Certificates are made while the tests run; the store
// is a real folder watched with inotify.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iostream>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "../support/loopback_listener.h"
#include "connection_fixture.h"
#include "plcsim/plcsim.h"
#include "test_pki.h"

namespace {

namespace ch = scada::channel;
namespace cs = scada::certstore;
namespace ps = scada::plcsim;
namespace pki = scada::certstore::test_pki;
namespace fs = std::filesystem;
using namespace scada::test;
using namespace std::chrono_literals;
using Bytes = std::vector<std::uint8_t>;

// ---------------------------------------------------------------------------------------------
// Certificates made at test time

struct Validity {
  std::chrono::sys_seconds from, to;
};

std::chrono::sys_seconds now_seconds() {
  return std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
}
Validity valid_now() {
  return {now_seconds() - 1h, now_seconds() + 24h};
}
Validity expired() {
  return {now_seconds() - 48h, now_seconds() - 24h};
}
Validity not_yet_valid() {
  return {now_seconds() + 24h, now_seconds() + 48h};
}

// A PLC's certificate and key, as plcsim reads them and as the store holds them.
struct Leaf {
  std::string pem, key_pem;
  Bytes der;
  std::string sha256;
  Bytes serial;
};

Leaf make_leaf(const pki::CertificatePtr& certificate, EVP_PKEY* key, Bytes serial) {
  Leaf leaf;
  leaf.pem = pki::pem_of(certificate.get());
  leaf.key_pem = pki::pem_of_private_key(key);
  leaf.der = pki::der_of(certificate.get());
  leaf.sha256 = pki::sha256_hex(leaf.der);
  leaf.serial = std::move(serial);
  return leaf;
}

pki::CertificateSpec leaf_spec(const std::string& common_name, Bytes serial, Validity validity,
                               std::vector<std::string> ips, std::vector<std::string> dns) {
  pki::CertificateSpec spec;
  spec.subject = {{"O", "trust tests"}, {"CN", common_name}};
  spec.serial = std::move(serial);
  spec.not_before = validity.from;
  spec.not_after = validity.to;
  spec.ca = false;
  spec.ip_addresses = std::move(ips);
  spec.dns_names = std::move(dns);
  return spec;
}

// A self-signed PLC certificate (what a PLC makes for itself), SAN IP 127.0.0.1.
Leaf self_signed(const std::string& common_name, Validity validity = valid_now()) {
  pki::KeyPtr key = pki::make_key(pki::KeyKind::ec_p256);
  const Bytes serial{0x5E, 0x1F};
  auto certificate = pki::make_certificate(
      leaf_spec(common_name, serial, validity, {"127.0.0.1"}, {}), key.get(), nullptr, key.get());
  return make_leaf(certificate, key.get(), serial);
}

// A CA that issues PLC certificates and CRLs.
class Ca {
 public:
  explicit Ca(const std::string& name) : key_(pki::make_key(pki::KeyKind::ec_p256)) {
    pki::CertificateSpec spec;
    spec.subject = {{"O", "trust tests"}, {"CN", name}};
    spec.serial = {0x01};
    spec.not_before = now_seconds() - 1h;
    spec.not_after = now_seconds() + 24h;
    spec.ca = true;
    certificate_ = pki::make_certificate(spec, key_.get(), nullptr, key_.get());
  }
  std::string pem() const { return pki::pem_of(certificate_.get()); }

  Leaf issue(const std::string& common_name, Validity validity = valid_now(),
             std::vector<std::string> ips = {"127.0.0.1"}, std::vector<std::string> dns = {}) {
    pki::KeyPtr key = pki::make_key(pki::KeyKind::ec_p256);
    const Bytes serial{0x10, next_serial_++};
    auto certificate = pki::make_certificate(
        leaf_spec(common_name, serial, validity, std::move(ips), std::move(dns)), key.get(),
        certificate_.get(), key_.get());
    return make_leaf(certificate, key.get(), serial);
  }

  // A CRL of this CA listing the serials (DER).
  Bytes crl(const std::vector<Bytes>& revoked) const {
    pki::CrlSpec spec;
    spec.this_update = now_seconds() - 1h;
    spec.next_update = now_seconds() + 24h;
    spec.revoked_serials = revoked;
    return pki::der_of(pki::make_crl(spec, certificate_.get(), key_.get()).get());
  }

 private:
  pki::KeyPtr key_;
  pki::CertificatePtr certificate_;
  std::uint8_t next_serial_ = 2;
};

std::string text_of(const Bytes& bytes) {
  return std::string(bytes.begin(), bytes.end());
}

Bytes read_all(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Puts a file into the store the way deployments do: written beside it, renamed into place.
void put(const fs::path& file, const std::string& content) {
  replace_file_atomically(file, content);
}

// Overwrites a file in place (open, truncate, write, close): what an editor or a careless copy
// does; a watcher may see it empty or half-written.
void overwrite_in_place(const fs::path& file, const std::string& content) {
  write_file(file, content);
}

std::string first_half(const std::string& content) {
  return content.substr(0, content.size() / 2);
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string name(ch::FailureReason reason) {
  return ch::failure_reason_name(reason);
}

std::string name(ch::ConnectionState state) {
  return ch::connection_state_name(state);
}

// ---------------------------------------------------------------------------------------------
// plcsim and connections

// One simulated PLC presenting a certificate chain (PEM, leaf first) with its key.
class SimPlc {
 public:
  SimPlc(ps::SecurityMode mode, const std::string& chain_pem, const std::string& key_pem,
         ps::LogSink log = {}) {
    ps::PlcConfig pc;
    pc.mode = mode;
    if (mode != ps::SecurityMode::none) {
      pc.tls.certificate = dir_.file("plc.crt");
      pc.tls.key = dir_.file("plc.key");
      write_file(pc.tls.certificate, chain_pem);
      write_file(pc.tls.key, key_pem);
      fs::permissions(pc.tls.key, fs::perms::owner_read | fs::perms::owner_write);
    }
    sim_ = std::make_unique<ps::Simulator>(std::vector<ps::PlcConfig>{pc}, "127.0.0.1", 0,
                                           std::move(log));
  }
  ps::Plc& plc() { return sim_->plc(0); }
  std::uint16_t port() { return plc().port(); }

 private:
  TempDir dir_;
  std::unique_ptr<ps::Simulator> sim_;
};

ch::ConnectionConfig config_for(ch::SecurityMode mode, std::uint16_t port) {
  ch::ConnectionConfig cc;
  cc.name = "PLC1";
  cc.address = "127.0.0.1";
  cc.port = port;
  cc.mode = mode;
  cc.connect_timeout = 2s;
  cc.retry_min = 50ms;
  cc.retry_max = 500ms;
  return cc;
}

using Client = StartedConnection;

std::string last_event_text(EventRecorder& rec) {
  const auto all = rec.events();
  if (all.empty()) return "(no event)";
  return name(all.back().state) + " " + name(all.back().reason) + ": " + all.back().detail;
}

// Waits until the recorder holds at least `count` events that match (bounded, no polling).
bool wait_for_count(EventRecorder& rec, const EventRecorder::Match& match, std::size_t count,
                    std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto all = rec.events();
    if (std::size_t(std::count_if(all.begin(), all.end(), match)) >= count) return true;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left <= 0ms) return false;
    rec.wait(match, left, all.size());
  }
}

// The index of the first event at or after `from` that matches, waiting up to timeout.
std::optional<std::size_t> wait_index(EventRecorder& rec, const EventRecorder::Match& match,
                                      std::chrono::milliseconds timeout, std::size_t from = 0) {
  if (!rec.wait(match, timeout, from)) return std::nullopt;
  const auto all = rec.events();
  for (std::size_t i = from; i < all.size(); ++i) {
    if (match(all[i])) return i;
  }
  return std::nullopt;
}

bool any_up(const std::vector<ch::ConnectionEvent>& events, std::size_t from = 0) {
  for (std::size_t i = from; i < events.size(); ++i) {
    if (events[i].state == ch::ConnectionState::up) return true;
  }
  return false;
}

// The connection came up trusting the PLC certificate `sha256`, and serves a read.
void expect_up(Client& c, const std::string& sha256) {
  const auto up = c.events().wait_state(ch::ConnectionState::up, 10s);
  ASSERT_TRUE(up) << "never up; last event: " << last_event_text(c.events());
  EXPECT_EQ(name(up->reason), "none");
  EXPECT_TRUE(up->detail.empty()) << up->detail;
  const auto data = read_data(c.connection(), 1, 0, 4);
  EXPECT_TRUE(std::holds_alternative<Bytes>(data)) << std::get<std::string>(data);
  const ch::ConnectionInfo info = c.connection().info();
  EXPECT_EQ(name(info.state), "up");
  EXPECT_EQ(info.tls_version, "TLSv1.3");
  EXPECT_GE(info.sessions, 1u);
  EXPECT_GE(info.trust_snapshot, 1u);
  ASSERT_TRUE(info.peer_certificate);
  EXPECT_EQ(info.peer_certificate->sha256, sha256);
}

// The connection refuses the PLC for `reason`: the event says so in actionable words, names
// the certificate's fingerprint, no job can be submitted, and the connection keeps retrying
// without ever coming up. Returns the first refusal.
std::optional<ch::ConnectionEvent> expect_refused(Client& c, ch::FailureReason reason,
                                                  const std::string& sha256,
                                                  std::initializer_list<std::string> words) {
  EventRecorder& rec = c.events();
  const auto first = rec.wait_state(ch::ConnectionState::waiting, 10s);
  if (!first) {
    ADD_FAILURE() << "no refusal; last event: " << last_event_text(rec);
    return std::nullopt;
  }
  EXPECT_EQ(name(first->reason), name(reason)) << first->detail;
  EXPECT_GT(first->retry_in, 0ms);
  if (!sha256.empty()) {
    EXPECT_TRUE(contains(first->detail, sha256)) << first->detail;
  }
  for (const std::string& word : words) {
    EXPECT_TRUE(contains(first->detail, word)) << "'" << word << "' missing in: " << first->detail;
  }

  // No job while refused: a JobError carrying the reason.
  const ch::JobResult job = read_bytes(c.connection(), 1, 0, 4, 5s);
  const auto* error = std::get_if<ch::JobError>(&job);
  EXPECT_TRUE(error != nullptr) << "a job was answered while the PLC is refused";
  if (error) {
    EXPECT_EQ(name(error->reason), name(reason)) << error->detail;
  }

  // It keeps trying (and keeps refusing).
  const auto refused_again = [reason](const ch::ConnectionEvent& e) {
    return e.state == ch::ConnectionState::waiting && e.reason == reason && e.retry_in > 0ms;
  };
  EXPECT_TRUE(wait_for_count(rec, refused_again, 2, 10s))
      << "no second refused attempt; last event: " << last_event_text(rec);

  const ch::ConnectionInfo info = c.connection().info();
  EXPECT_NE(name(info.state), "up");
  EXPECT_EQ(name(info.last_reason), name(reason)) << info.last_detail;
  for (const std::string& word : words) {
    EXPECT_TRUE(contains(info.last_detail, word)) << info.last_detail;
  }
  EXPECT_GE(info.attempts, 2u);
  EXPECT_EQ(info.sessions, 0u);
  EXPECT_FALSE(info.peer_certificate) << "a refused PLC's certificate shown as in use";
  EXPECT_FALSE(any_up(rec.events()));
  return first;
}

// Store events, kept by shared state: the watcher's thread may still be raising one while the
// recorder goes away.
class StoreEvents {
 public:
  explicit StoreEvents(cs::CertificateStore& store) : state_(std::make_shared<State>()) {
    subscription_ = store.subscribe([state = state_](const cs::StoreEvent& e) {
      std::lock_guard<std::mutex> lock(state->mutex);
      state->events.push_back(e);
      state->changed.notify_all();
    });
  }
  ~StoreEvents() { subscription_.disconnect(); }
  StoreEvents(const StoreEvents&) = delete;
  StoreEvents& operator=(const StoreEvents&) = delete;

  std::optional<cs::StoreEvent> wait(const std::function<bool(const cs::StoreEvent&)>& match,
                                     std::chrono::milliseconds timeout, std::size_t from = 0) {
    std::unique_lock<std::mutex> lock(state_->mutex);
    std::optional<cs::StoreEvent> found;
    state_->changed.wait_for(lock, timeout, [&] {
      for (std::size_t i = from; i < state_->events.size(); ++i) {
        if (match(state_->events[i])) {
          found = state_->events[i];
          return true;
        }
      }
      return false;
    });
    return found;
  }
  std::optional<cs::StoreEvent> wait_problem(const fs::path& file,
                                             std::chrono::milliseconds timeout,
                                             std::size_t from = 0) {
    return wait(
        [file](const cs::StoreEvent& e) {
          return e.kind == cs::StoreEvent::Kind::file_problem &&
                 e.file.lexically_normal() == file.lexically_normal();
        },
        timeout, from);
  }
  std::size_t size() const {
    std::lock_guard<std::mutex> lock(state_->mutex);
    return state_->events.size();
  }
  std::vector<cs::StoreEvent> events() const {
    std::lock_guard<std::mutex> lock(state_->mutex);
    return state_->events;
  }

 private:
  struct State {
    std::mutex mutex;
    std::condition_variable changed;
    std::vector<cs::StoreEvent> events;
  };
  std::shared_ptr<State> state_;
  boost::signals2::connection subscription_;
};

// Reads from a connection every 20 ms until stopped: a session in use.
class Poller {
 public:
  explicit Poller(ch::Connection& c) : thread_([this, &c] { run(c); }) {}
  ~Poller() { stop(); }
  Poller(const Poller&) = delete;
  Poller& operator=(const Poller&) = delete;
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    changed_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  // Waits until at least n reads succeeded.
  bool wait_ok(int n, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return ok_ >= n; });
  }
  // Waits until at least n reads failed.
  bool wait_failed(int n, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return failed_ >= n; });
  }
  int ok() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return ok_;
  }
  int failed() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return failed_;
  }

 private:
  void run(ch::Connection& c) {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stop_) {
      lock.unlock();
      const bool good = std::holds_alternative<Bytes>(read_data(c, 1, 0, 4));
      lock.lock();
      ++(good ? ok_ : failed_);
      changed_.notify_all();
      changed_.wait_for(lock, 20ms, [this] { return stop_; });
    }
  }

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool stop_ = false;
  int ok_ = 0, failed_ = 0;
  std::thread thread_;
};

// The fixture of the decision table: a fresh store, PLCs, an event loop and connections, torn
// down in that reverse order.
class TrustTest : public ::testing::TestWithParam<ch::SecurityMode> {
 protected:
  ch::SecurityMode mode() const { return GetParam(); }
  const cs::StoreLayout& layout() const { return ts_.layout(); }
  cs::CertificateStore& store() { return ts_.store(); }

  SimPlc& add_plc(const std::string& chain_pem, const std::string& key_pem, ps::LogSink log = {}) {
    plcs_.push_back(std::make_unique<SimPlc>(mode(), chain_pem, key_pem, std::move(log)));
    return *plcs_.back();
  }
  std::uint16_t serve(const std::string& chain_pem, const std::string& key_pem) {
    return add_plc(chain_pem, key_pem).port();
  }
  std::uint16_t serve(const Leaf& leaf) { return serve(leaf.pem, leaf.key_pem); }

  Client& connect(std::uint16_t port,
                  const std::function<void(ch::ConnectionConfig&)>& adjust = {}) {
    ch::ConnectionConfig cc = config_for(mode(), port);
    if (adjust) adjust(cc);
    clients_.push_back(std::make_unique<Client>(loop_.executor(), store(), cc));
    return *clients_.back();
  }
  void drop(Client& c) {
    std::erase_if(clients_, [&](const auto& p) { return p.get() == &c; });
  }

  TestStore ts_;
  std::vector<std::unique_ptr<SimPlc>> plcs_;
  EventLoop loop_;
  std::vector<std::unique_ptr<Client>> clients_;
};

std::string mode_param_name(const ::testing::TestParamInfo<ch::SecurityMode>& info) {
  return info.param == ch::SecurityMode::tls ? "tls" : "s7_secure";
}

// =============================================================================================
// 1. The decision table of DESIGN.md §5, row by row, in each secure mode.

using DecisionTable = TrustTest;

TEST_P(DecisionTable, SelfSignedCertificateInTrustedIsAccepted) {
  const Leaf plc = self_signed("PLC pinned");
  put(layout().trusted() / "plc1.der", text_of(plc.der));
  store().reload();
  Client& c = connect(serve(plc));
  expect_up(c, plc.sha256);
}

TEST_P(DecisionTable, PartnerCertificatesOfTheConnectionAreTrusted) {
  // The store is empty: the connection's own partner certificates (DER) are the trust.
  {
    SCOPED_TRACE("the PLC's self-signed certificate as partner certificate");
    const Leaf plc = self_signed("PLC partner");
    Client& c =
        connect(serve(plc), [&](ch::ConnectionConfig& cc) { cc.partner_certificates = {plc.der}; });
    expect_up(c, plc.sha256);
  }
  {
    SCOPED_TRACE("the PLC's CA as partner certificate");
    Ca ca("Partner CA");
    const Leaf plc = ca.issue("PLC of the partner CA");
    Client& c = connect(serve(plc), [&](ch::ConnectionConfig& cc) {
      cc.partner_certificates = {pki::to_bytes(ca.pem())};
    });
    expect_up(c, plc.sha256);
  }
  EXPECT_TRUE(store().snapshot()->trusted().empty());
  EXPECT_TRUE(store().snapshot()->roots().empty());
}

TEST_P(DecisionTable, CertificateOfAnImportedCaIsAccepted) {
  Ca ca("Plant CA");
  const Leaf plc = ca.issue("PLC CA-issued");
  put(layout().roots / "plant-ca.pem", ca.pem());
  store().reload();
  Client& c = connect(serve(plc));
  expect_up(c, plc.sha256);
  const auto info = c.connection().info();
  ASSERT_TRUE(info.peer_certificate);
  EXPECT_EQ(info.peer_certificate->der, plc.der);
  EXPECT_FALSE(info.peer_certificate->self_signed);
  EXPECT_LE(info.trust_snapshot, store().snapshot()->version());
}

TEST_P(DecisionTable, UnknownSelfSignedCertificateIsQuarantined) {
  const Leaf plc = self_signed("PLC unknown");
  Client& c = connect(serve(plc));
  const auto refused = expect_refused(c, ch::FailureReason::untrusted_certificate, plc.sha256,
                                      {"self-signed", "trusted/"});
  ASSERT_TRUE(refused);
  const fs::path file = layout().untrusted() / (plc.sha256 + ".der");
  ASSERT_TRUE(fs::exists(file));
  EXPECT_EQ(read_all(file), plc.der);
  ASSERT_TRUE(refused->quarantined);
  EXPECT_EQ(refused->quarantined->lexically_normal(), file.lexically_normal());
  EXPECT_TRUE(contains(refused->detail, "untrusted/" + plc.sha256 + ".der")) << refused->detail;
  const auto info = c.connection().info();
  ASSERT_TRUE(info.quarantined);
  EXPECT_TRUE(fs::equivalent(*info.quarantined, file));
}

TEST_P(DecisionTable, CertificateOfAnUnknownCaIsQuarantined) {
  Ca imported("Imported CA"), unknown("Unknown CA");
  put(layout().roots / "imported.pem", imported.pem());
  store().reload();
  const Leaf plc = unknown.issue("PLC of an unknown CA");
  Client& c = connect(serve(plc));
  // The store's words: "... a CA that is neither imported (pki/roots) nor a partner certificate
  // ...; it was quarantined as untrusted/<sha256>.der — import the project's certificates (its
  // CA into pki/roots), or move the file to trusted/ ...".
  const auto refused = expect_refused(c, ch::FailureReason::unknown_ca, plc.sha256,
                                      {"import", "pki/roots", "Unknown CA"});
  ASSERT_TRUE(refused);
  const fs::path file = layout().untrusted() / (plc.sha256 + ".der");
  ASSERT_TRUE(fs::exists(file));
  EXPECT_EQ(read_all(file), plc.der);
  ASSERT_TRUE(refused->quarantined);
  EXPECT_EQ(refused->quarantined->lexically_normal(), file.lexically_normal());
  const auto info = c.connection().info();
  ASSERT_TRUE(info.quarantined);
  EXPECT_TRUE(fs::equivalent(*info.quarantined, file));
}

TEST_P(DecisionTable, CertificateRevokedByCrlIsRefused) {
  Ca ca("Plant CA");
  const Leaf revoked = ca.issue("PLC revoked");
  const Leaf other = ca.issue("PLC other");
  put(layout().roots / "plant-ca.pem", ca.pem());
  put(layout().crl() / "plant-ca.crl", text_of(ca.crl({revoked.serial})));
  store().reload();
  ASSERT_EQ(store().snapshot()->crls().size(), 1u);
  Client& c = connect(serve(revoked));
  const auto refused =
      expect_refused(c, ch::FailureReason::revoked, revoked.sha256, {"revoked", "trusted/crl/"});
  ASSERT_TRUE(refused);
  EXPECT_FALSE(refused->quarantined);
  EXPECT_FALSE(fs::exists(layout().untrusted() / (revoked.sha256 + ".der")));
  // The CRL names one serial: the CA's other certificates stay good.
  Client& good = connect(serve(other));
  expect_up(good, other.sha256);
}

TEST_P(DecisionTable, PinMovedToUntrustedIsRevokedOnTheNextHandshake) {
  const Leaf plc = self_signed("PLC pinned then revoked");
  const fs::path pin = layout().trusted() / "plc1.der";
  put(pin, text_of(plc.der));
  store().reload();
  const std::uint16_t port = serve(plc);
  {
    Client& before = connect(port);
    expect_up(before, plc.sha256);
    drop(before);
  }
  fs::rename(pin, layout().untrusted() / "plc1.der");
  store().reload();
  ASSERT_EQ(store().snapshot()->revoked_by_move().count(plc.sha256), 1u);
  Client& after = connect(port);
  const auto refused = expect_refused(after, ch::FailureReason::revoked, plc.sha256,
                                      {"untrusted/", "move it back to trusted/"});
  ASSERT_TRUE(refused);
  EXPECT_FALSE(refused->quarantined);
}

TEST_P(DecisionTable, ExpiredCertificatesAreRefused) {
  Ca ca("Plant CA");
  put(layout().roots / "plant-ca.pem", ca.pem());
  const Leaf issued = ca.issue("PLC expired CA-issued", expired());
  const Leaf pinned = self_signed("PLC expired pinned", expired());
  put(layout().trusted() / "expired.der", text_of(pinned.der));
  store().reload();
  {
    SCOPED_TRACE("CA-issued");
    Client& c = connect(serve(issued));
    const auto refused =
        expect_refused(c, ch::FailureReason::expired, issued.sha256, {"expired", "renew"});
    ASSERT_TRUE(refused);
    EXPECT_FALSE(refused->quarantined);
  }
  {
    SCOPED_TRACE("pinned in trusted/");
    Client& c = connect(serve(pinned));
    const auto refused =
        expect_refused(c, ch::FailureReason::expired, pinned.sha256, {"expired", "renew"});
    ASSERT_TRUE(refused);
    EXPECT_FALSE(refused->quarantined);
  }
}

TEST_P(DecisionTable, NotYetValidCertificatesAreRefused) {
  Ca ca("Plant CA");
  put(layout().roots / "plant-ca.pem", ca.pem());
  const Leaf issued = ca.issue("PLC future CA-issued", not_yet_valid());
  const Leaf pinned = self_signed("PLC future pinned", not_yet_valid());
  put(layout().trusted() / "future.der", text_of(pinned.der));
  store().reload();
  {
    SCOPED_TRACE("CA-issued");
    Client& c = connect(serve(issued));
    const auto refused = expect_refused(c, ch::FailureReason::not_yet_valid, issued.sha256,
                                        {"not valid before", "clock"});
    ASSERT_TRUE(refused);
    EXPECT_FALSE(refused->quarantined);
  }
  {
    SCOPED_TRACE("pinned in trusted/");
    Client& c = connect(serve(pinned));
    const auto refused = expect_refused(c, ch::FailureReason::not_yet_valid, pinned.sha256,
                                        {"not valid before", "clock"});
    ASSERT_TRUE(refused);
    EXPECT_FALSE(refused->quarantined);
  }
}

TEST_P(DecisionTable, CertificateForAnotherAddressIsAnIdentityMismatchUnlessThePlcNameMatches) {
  Ca ca("Plant CA");
  put(layout().roots / "plant-ca.pem", ca.pem());
  store().reload();
  const Leaf plc = ca.issue("PLC elsewhere", valid_now(), {"10.9.9.9"}, {"plc-a.plant.example"});
  const std::uint16_t port = serve(plc);
  {
    SCOPED_TRACE("dialled by address only");
    Client& c = connect(port);
    const auto refused = expect_refused(c, ch::FailureReason::identity_mismatch, plc.sha256,
                                        {"10.9.9.9", "127.0.0.1"});
    ASSERT_TRUE(refused);
    EXPECT_FALSE(refused->quarantined);
    EXPECT_FALSE(fs::exists(layout().untrusted() / (plc.sha256 + ".der")));
  }
  {
    SCOPED_TRACE("with the PLC name of its DNS SAN");
    Client& c =
        connect(port, [](ch::ConnectionConfig& cc) { cc.plc_name = "PLC-A.plant.example"; });
    expect_up(c, plc.sha256);
  }
}

TEST_P(DecisionTable, NothingConfiguredAcceptsNothing) {
  Ca ca("Plant CA");
  const Leaf plc = ca.issue("PLC with its chain");
  // The PLC sends its CA along: what a PLC presents never anchors trust by itself.
  const std::uint16_t port = serve(plc.pem + ca.pem(), plc.key_pem);
  {
    SCOPED_TRACE("empty store");
    ASSERT_TRUE(store().snapshot()->roots().empty());
    ASSERT_TRUE(store().snapshot()->trusted().empty());
    Client& c = connect(port);
    const auto refused = expect_refused(c, ch::FailureReason::unknown_ca, plc.sha256, {"import"});
    ASSERT_TRUE(refused);
    drop(c);
  }
  {
    SCOPED_TRACE("store folders missing");
    for (const fs::path& folder : {layout().store, layout().roots}) fs::remove_all(folder);
    store().reload();
    Client& c = connect(port);
    const auto first = c.events().wait_state(ch::ConnectionState::waiting, 10s);
    ASSERT_TRUE(first) << last_event_text(c.events());
    EXPECT_EQ(name(first->reason), name(ch::FailureReason::unknown_ca)) << first->detail;
    EXPECT_GT(first->retry_in, 0ms);
    const ch::JobResult job = read_bytes(c.connection(), 1, 0, 4, 5s);
    EXPECT_TRUE(std::holds_alternative<ch::JobError>(job));
    EXPECT_TRUE(wait_for_count(
        c.events(),
        [](const ch::ConnectionEvent& e) { return e.state == ch::ConnectionState::waiting; }, 2,
        10s));
    EXPECT_FALSE(any_up(c.events().events()));
    EXPECT_EQ(c.connection().info().sessions, 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(SecureModes, DecisionTable,
                         ::testing::Values(ch::SecurityMode::tls, ch::SecurityMode::s7_secure),
                         mode_param_name);

// =============================================================================================
// 2. Manual trust: the operator moves the quarantined file into trusted/; the waiting
// connection comes up by itself.

TEST(ManualTrust, MovingTheQuarantinedFileToTrustedBringsTheWaitingConnectionUp) {
  TestStore ts;
  StoreEvents store_events(ts.store());
  const Leaf plc = self_signed("PLC manual trust");
  SimPlc sim(ps::SecurityMode::s7_secure, plc.pem, plc.key_pem);
  EventLoop loop;
  ch::ConnectionConfig cc = config_for(ch::SecurityMode::s7_secure, sim.port());
  // A backoff far longer than the wait below: coming up in time proves that the trust change
  // (the watcher's new snapshot) ended the wait, not the retry timer.
  cc.retry_min = cc.retry_max = 30s;
  Client c(loop.executor(), ts.store(), cc);

  const auto refused = c.events().wait_state(ch::ConnectionState::waiting, 10s);
  ASSERT_TRUE(refused) << last_event_text(c.events());
  ASSERT_EQ(name(refused->reason), name(ch::FailureReason::untrusted_certificate))
      << refused->detail;
  ASSERT_GT(refused->retry_in, 10s);
  const fs::path quarantined = ts.layout().untrusted() / (plc.sha256 + ".der");
  ASSERT_TRUE(refused->quarantined);
  ASSERT_TRUE(fs::exists(quarantined));
  EXPECT_EQ(read_all(quarantined), plc.der);
  const std::uint64_t version = ts.store().snapshot()->version();

  // The operator's move; nothing else is called.
  fs::rename(quarantined, ts.layout().trusted() / quarantined.filename());

  const auto up = c.events().wait_state(ch::ConnectionState::up, 8s);
  ASSERT_TRUE(up) << "not up after the move; last event: " << last_event_text(c.events());
  const auto data = read_data(c.connection(), 1, 0, 4);
  EXPECT_TRUE(std::holds_alternative<Bytes>(data)) << std::get<std::string>(data);
  const auto info = c.connection().info();
  ASSERT_TRUE(info.peer_certificate);
  EXPECT_EQ(info.peer_certificate->sha256, plc.sha256);
  EXPECT_GT(info.trust_snapshot, version);
  EXPECT_EQ(info.sessions, 1u);
  EXPECT_EQ(info.attempts, 2u) << "the trust change should end the wait with one new attempt";
  EXPECT_TRUE(store_events.wait(
      [](const cs::StoreEvent& e) { return e.kind == cs::StoreEvent::Kind::snapshot_changed; },
      1s));
}

// =============================================================================================
// 5. Revocation applies to live sessions.

using LiveRevocation = TrustTest;

TEST_P(LiveRevocation, CrlDroppedIntoTrustedCrlClosesTheLiveSession) {
  Ca ca("Plant CA");
  const Leaf plc = ca.issue("PLC live CRL");
  put(layout().roots / "plant-ca.pem", ca.pem());
  store().reload();
  Client& c = connect(serve(plc));
  expect_up(c, plc.sha256);
  Poller poller(c.connection());
  ASSERT_TRUE(poller.wait_ok(3, 5s));
  const std::size_t before = c.events().size();

  // Dropped in as deployments do: a hidden temporary name (ignored by the store), then renamed.
  const fs::path hidden = layout().crl() / ".plant-ca.crl.tmp";
  write_file(hidden, text_of(ca.crl({plc.serial})));
  fs::rename(hidden, layout().crl() / "plant-ca.crl");

  const auto is_revoked = [](const ch::ConnectionEvent& e) {
    return e.state == ch::ConnectionState::waiting && e.reason == ch::FailureReason::revoked;
  };
  const auto closed = wait_index(c.events(), is_revoked, 5s, before);
  ASSERT_TRUE(closed) << "the live session was not closed; last event: "
                      << last_event_text(c.events());
  const auto events = c.events().events();
  const ch::ConnectionEvent& end = events[*closed];
  EXPECT_TRUE(contains(end.detail, "live session")) << end.detail;
  EXPECT_TRUE(contains(end.detail, "trusted/crl/")) << end.detail;
  EXPECT_TRUE(contains(end.detail, plc.sha256)) << end.detail;
  // Between up and the closing event nothing else ended the session.
  for (std::size_t i = before; i < *closed; ++i) {
    EXPECT_EQ(name(events[i].state), "up") << events[i].detail;
  }

  // Later handshakes fail as revoked, and the connection never comes up again.
  const auto later = wait_index(c.events(), is_revoked, 10s, *closed + 1);
  ASSERT_TRUE(later) << last_event_text(c.events());
  const auto after = c.events().events();
  EXPECT_FALSE(contains(after[*later].detail, "live session")) << after[*later].detail;
  EXPECT_TRUE(contains(after[*later].detail, "revoked by a CRL")) << after[*later].detail;
  EXPECT_FALSE(any_up(after, *closed));
  const ch::JobResult job = read_bytes(c.connection(), 1, 0, 4, 5s);
  const auto* error = std::get_if<ch::JobError>(&job);
  ASSERT_TRUE(error);
  EXPECT_EQ(name(error->reason), "revoked");
  EXPECT_TRUE(poller.wait_failed(1, 5s));  // the poller's reads fail too, from then on
  poller.stop();
  EXPECT_GE(poller.ok(), 3);
  EXPECT_EQ(c.connection().info().sessions, 1u);
}

TEST_P(LiveRevocation, PinMovedToUntrustedClosesTheLiveSession) {
  const Leaf plc = self_signed("PLC live pin");
  const fs::path pin = layout().trusted() / "plc1.der";
  put(pin, text_of(plc.der));
  store().reload();
  Client& c = connect(serve(plc));
  expect_up(c, plc.sha256);
  Poller poller(c.connection());
  ASSERT_TRUE(poller.wait_ok(3, 5s));
  const std::size_t before = c.events().size();

  fs::rename(pin, layout().untrusted() / "plc1.der");

  const auto is_revoked = [](const ch::ConnectionEvent& e) {
    return e.state == ch::ConnectionState::waiting && e.reason == ch::FailureReason::revoked;
  };
  const auto closed = wait_index(c.events(), is_revoked, 5s, before);
  ASSERT_TRUE(closed) << "the live session was not closed; last event: "
                      << last_event_text(c.events());
  const auto events = c.events().events();
  EXPECT_TRUE(contains(events[*closed].detail, "live session")) << events[*closed].detail;
  EXPECT_TRUE(contains(events[*closed].detail, "untrusted/")) << events[*closed].detail;
  for (std::size_t i = before; i < *closed; ++i) {
    EXPECT_EQ(name(events[i].state), "up") << events[i].detail;
  }

  const auto later = wait_index(c.events(), is_revoked, 10s, *closed + 1);
  ASSERT_TRUE(later) << last_event_text(c.events());
  const auto after = c.events().events();
  EXPECT_FALSE(contains(after[*later].detail, "live session")) << after[*later].detail;
  EXPECT_TRUE(contains(after[*later].detail, "move it back to trusted/")) << after[*later].detail;
  EXPECT_FALSE(any_up(after, *closed));
  EXPECT_TRUE(poller.wait_failed(1, 5s));  // the poller's reads fail too, from then on
  poller.stop();
  EXPECT_EQ(c.connection().info().sessions, 1u);
}

// A CRL that arrives after the verifier accepted the PLC but before the session is up (the
// setup communication reply is slow) must still end that session: the snapshot it was trusted
// under is no longer the store's.
TEST_P(LiveRevocation, CrlArrivingDuringTheHandshakeStillApplies) {
  Ca ca("Plant CA");
  const Leaf plc = ca.issue("PLC slow setup");
  put(layout().roots / "plant-ca.pem", ca.pem());
  store().reload();
  StoreEvents store_events(store());
  PlcLog log;
  SimPlc& sim = add_plc(plc.pem, plc.key_pem, log.sink());
  ps::Faults slow;
  slow.delay = 1200ms;  // every COTP / InitSSL / S7 reply of the PLC
  sim.plc().set_faults(slow);
  Client& c = connect(sim.port(), [](ch::ConnectionConfig& cc) { cc.connect_timeout = 10s; });

  // The PLC's TLS handshake completes only after the client verified its certificate.
  ASSERT_TRUE(log.wait_for("TLS established", 10s)) << last_event_text(c.events());
  ASSERT_FALSE(any_up(c.events().events())) << "the session is up already: no window to test";
  const std::size_t from = store_events.size();
  const fs::path hidden = layout().crl() / ".plant-ca.crl.tmp";
  write_file(hidden, text_of(ca.crl({plc.serial})));
  fs::rename(hidden, layout().crl() / "plant-ca.crl");
  ASSERT_TRUE(store_events.wait(
      [](const cs::StoreEvent& e) { return e.kind == cs::StoreEvent::Kind::snapshot_changed; }, 5s,
      from));
  ASSERT_FALSE(any_up(c.events().events()))
      << "the session came up before the new snapshot: the window was missed";
  sim.plc().set_faults(ps::Faults{});  // later attempts at full speed

  const auto is_revoked = [](const ch::ConnectionEvent& e) {
    return e.state == ch::ConnectionState::waiting && e.reason == ch::FailureReason::revoked;
  };
  // The delayed replies arrive within 2 x 1.2 s; a session checked at once ends right after.
  const auto ended = c.events().wait(is_revoked, 5s);
  EXPECT_TRUE(ended) << "a session trusted under an older snapshot was not checked against the "
                        "new one (a CRL revoking its certificate): last event "
                     << last_event_text(c.events()) << "; sessions "
                     << c.connection().info().sessions << ", trusted under snapshot "
                     << c.connection().info().trust_snapshot << ", the store's is "
                     << store().snapshot()->version();
  const ch::JobResult job = read_bytes(c.connection(), 1, 0, 4, 5s);
  EXPECT_TRUE(std::holds_alternative<ch::JobError>(job))
      << "a job was served over a session whose certificate is revoked";
}

INSTANTIATE_TEST_SUITE_P(SecureModes, LiveRevocation,
                         ::testing::Values(ch::SecurityMode::tls, ch::SecurityMode::s7_secure),
                         mode_param_name);

// =============================================================================================
// Expiry (DESIGN.md §4, §5): a session never ends because its certificate expires, not even
// when a trust change re-checks it; new sessions are refused, and a reconnect is not resumed
// past the expiry. Both secure modes at once, to wait for the clock only once.

TEST(Expiry, LiveSessionsOutliveTheCertificateNewSessionsAreRefused) {
  TestStore ts;
  StoreEvents store_events(ts.store());
  Ca ca("Plant CA");
  put(ts.layout().roots / "plant-ca.pem", ca.pem());
  ts.store().reload();
  const auto not_after = now_seconds() + 4s;
  const Validity short_lived{now_seconds() - 1h, not_after};
  struct Plc {
    ch::SecurityMode mode;
    Leaf leaf;
    std::unique_ptr<SimPlc> sim;
  };
  std::vector<Plc> plcs;
  for (ch::SecurityMode mode : {ch::SecurityMode::tls, ch::SecurityMode::s7_secure}) {
    Leaf leaf =
        ca.issue(std::string("PLC short-lived ") + ch::security_mode_name(mode), short_lived);
    auto sim = std::make_unique<SimPlc>(mode, leaf.pem, leaf.key_pem);
    plcs.push_back(Plc{mode, std::move(leaf), std::move(sim)});
  }
  EventLoop loop;
  std::vector<std::unique_ptr<Client>> clients;
  for (Plc& p : plcs) {
    clients.push_back(
        std::make_unique<Client>(loop.executor(), ts.store(), config_for(p.mode, p.sim->port())));
  }
  for (std::size_t i = 0; i < plcs.size(); ++i) {
    SCOPED_TRACE(ch::security_mode_name(plcs[i].mode));
    expect_up(*clients[i], plcs[i].leaf.sha256);
  }
  ASSERT_LT(std::chrono::system_clock::now(), not_after) << "the certificates expired too early";
  std::vector<std::size_t> marks;
  for (auto& c : clients) marks.push_back(c->events().size());

  // No event marks the moment a certificate expires: wait for the clock (bounded, ~4 s).
  std::this_thread::sleep_until(not_after + 1500ms);

  // A trust change re-checks live sessions; expiry must not end them.
  const std::size_t from = store_events.size();
  put(ts.layout().trusted() / "unrelated.der", text_of(self_signed("PLC unrelated").der));
  ASSERT_TRUE(store_events.wait(
      [](const cs::StoreEvent& e) { return e.kind == cs::StoreEvent::Kind::snapshot_changed; }, 5s,
      from));
  for (std::size_t i = 0; i < plcs.size(); ++i) {
    SCOPED_TRACE(ch::security_mode_name(plcs[i].mode));
    Client& c = *clients[i];
    const auto data = read_data(c.connection(), 1, 0, 4);
    EXPECT_TRUE(std::holds_alternative<Bytes>(data)) << std::get<std::string>(data);
    const auto events = c.events().events();
    for (std::size_t k = marks[i]; k < events.size(); ++k) {
      EXPECT_EQ(name(events[k].state), "up") << events[k].detail;
    }
  }

  // The PLC ends the sessions; the reconnects are refused as expired (no resumption).
  for (std::size_t i = 0; i < plcs.size(); ++i) {
    SCOPED_TRACE(ch::security_mode_name(plcs[i].mode));
    Client& c = *clients[i];
    const std::size_t mark = c.events().size();
    plcs[i].sim->plc().close_connections();
    const auto refused = c.events().wait(
        [](const ch::ConnectionEvent& e) {
          return e.state == ch::ConnectionState::waiting && e.reason == ch::FailureReason::expired;
        },
        10s, mark);
    ASSERT_TRUE(refused) << last_event_text(c.events());
    EXPECT_TRUE(contains(refused->detail, plcs[i].leaf.sha256)) << refused->detail;
    EXPECT_FALSE(any_up(c.events().events(), mark));
    EXPECT_EQ(c.connection().info().sessions, 1u);
  }
  clients.clear();
}

// =============================================================================================
// 6. Malformed and half-written store files: a file_problem event names the file, and the last
// good snapshot stays in force for live and new sessions.

class StoreFileProblems : public TrustTest {};

TEST_P(StoreFileProblems, LastGoodSnapshotStaysInForce) {
  StoreEvents store_events(store());
  Ca ca("Plant CA");
  const Leaf pinned = self_signed("PLC pinned");
  const Leaf issued = ca.issue("PLC issued");
  const Leaf revoked = ca.issue("PLC revoked");
  const Leaf unknown = self_signed("PLC unknown");
  const fs::path pin_file = layout().trusted() / "pinned.der";
  const fs::path root_file = layout().roots / "plant-ca.pem";
  const fs::path crl_file = layout().crl() / "plant-ca.crl";
  const std::string crl = text_of(ca.crl({revoked.serial}));
  put(pin_file, text_of(pinned.der));
  put(root_file, ca.pem());
  put(crl_file, crl);
  store().reload();
  const std::uint64_t version = store().snapshot()->version();

  const std::uint16_t pinned_port = serve(pinned);
  const std::uint16_t issued_port = serve(issued);
  const std::uint16_t revoked_port = serve(revoked);
  const std::uint16_t unknown_port = serve(unknown);
  Client& live_pinned = connect(pinned_port);
  Client& live_issued = connect(issued_port);
  expect_up(live_pinned, pinned.sha256);
  expect_up(live_issued, issued.sha256);
  const std::size_t pinned_events = live_pinned.events().size();
  const std::size_t issued_events = live_issued.events().size();

  // What a fresh connection (a new Connection object) makes of each PLC now.
  const auto fresh_trust_holds = [&](const std::string& when) {
    SCOPED_TRACE(when);
    {
      Client& c = connect(pinned_port);
      expect_up(c, pinned.sha256);
      drop(c);
    }
    {
      Client& c = connect(issued_port);
      expect_up(c, issued.sha256);
      drop(c);
    }
    {
      Client& c = connect(revoked_port);
      const auto first = c.events().wait_state(ch::ConnectionState::waiting, 10s);
      ASSERT_TRUE(first) << last_event_text(c.events());
      EXPECT_EQ(name(first->reason), "revoked") << first->detail;
      drop(c);
    }
  };
  {
    SCOPED_TRACE("baseline");
    fresh_trust_holds("baseline");
  }

  // -- Malformed files in every folder.
  std::size_t from = store_events.size();
  const fs::path bad_pin = layout().trusted() / "garbage.der";
  const fs::path bad_crl = layout().crl() / "garbage.crl";
  const fs::path bad_root = layout().roots / "garbage.pem";
  const fs::path bad_quarantine = layout().untrusted() / "garbage.der";
  const char not_der[] = "\x30\x82\x01\x00 not DER at all";
  put(bad_pin, std::string(not_der, sizeof not_der - 1));
  put(bad_crl, "this is no revocation list\n");
  put(bad_root, "-----BEGIN CERTIFICATE-----\n!!!! not base64 !!!!\n-----END CERTIFICATE-----\n");
  put(bad_quarantine, std::string("\x30\x03\x02\x01", 4));
  for (const fs::path& file : {bad_pin, bad_crl, bad_root}) {
    const auto problem = store_events.wait_problem(file, 5s, from);
    EXPECT_TRUE(problem) << "no file_problem for " << file;
    if (problem) {
      EXPECT_TRUE(contains(problem->detail, file.filename().string())) << problem->detail;
    }
  }
  // untrusted/ does not decide trust; whether its garbage is reported is informational.
  const auto quarantine_problem = store_events.wait_problem(bad_quarantine, 2s, from);
  std::cout << "[ info     ] garbage in untrusted/: "
            << (quarantine_problem ? "file_problem: " + quarantine_problem->detail
                                   : std::string("no file_problem event"))
            << "\n";
  EXPECT_EQ(store().snapshot()->version(), version);
  fresh_trust_holds("after malformed files");
  // Quarantine still works beside the garbage in untrusted/.
  Client& waiting_unknown = connect(unknown_port);
  {
    const auto refused = waiting_unknown.events().wait_state(ch::ConnectionState::waiting, 10s);
    ASSERT_TRUE(refused) << last_event_text(waiting_unknown.events());
    EXPECT_EQ(name(refused->reason), "untrusted-certificate") << refused->detail;
    EXPECT_EQ(read_all(layout().untrusted() / (unknown.sha256 + ".der")), unknown.der);
  }

  // -- A good file overwritten in place with its first half, then completed.
  struct HalfWritten {
    fs::path file;
    std::string content;
  };
  for (const HalfWritten& h : {HalfWritten{pin_file, text_of(pinned.der)},
                               HalfWritten{root_file, ca.pem()}, HalfWritten{crl_file, crl}}) {
    SCOPED_TRACE(h.file.string());
    from = store_events.size();
    overwrite_in_place(h.file, first_half(h.content));
    const auto problem = store_events.wait_problem(h.file, 5s, from);
    EXPECT_TRUE(problem) << "no file_problem for the half-written " << h.file;
    EXPECT_EQ(store().snapshot()->version(), version);
    fresh_trust_holds("half-written");
    overwrite_in_place(h.file, h.content);
    store().reload();  // the completed file has been read before the next checks
    EXPECT_EQ(store().snapshot()->version(), version);
    fresh_trust_holds("completed");
  }

  // -- A new pin written in place, half first: nothing trusted until it is complete; then the
  // watcher alone brings the waiting connection up.
  const fs::path new_pin = layout().trusted() / "unknown.der";
  from = store_events.size();
  overwrite_in_place(new_pin, first_half(text_of(unknown.der)));
  EXPECT_TRUE(store_events.wait_problem(new_pin, 5s, from)) << "no file_problem for " << new_pin;
  {
    // Still refused after the half file was seen.
    const std::size_t seen = waiting_unknown.events().size();
    const auto again = waiting_unknown.events().wait_state(ch::ConnectionState::waiting, 5s, seen);
    ASSERT_TRUE(again);
    EXPECT_EQ(name(again->reason), "untrusted-certificate") << again->detail;
    EXPECT_FALSE(any_up(waiting_unknown.events().events()));
  }
  overwrite_in_place(new_pin, text_of(unknown.der));
  EXPECT_TRUE(store_events.wait(
      [](const cs::StoreEvent& e) { return e.kind == cs::StoreEvent::Kind::snapshot_changed; }, 5s,
      from));
  expect_up(waiting_unknown, unknown.sha256);

  // The established sessions never went down, and still serve.
  const auto pinned_after = live_pinned.events().events();
  const auto issued_after = live_issued.events().events();
  for (std::size_t i = pinned_events; i < pinned_after.size(); ++i) {
    EXPECT_EQ(name(pinned_after[i].state), "up") << pinned_after[i].detail;
  }
  for (std::size_t i = issued_events; i < issued_after.size(); ++i) {
    EXPECT_EQ(name(issued_after[i].state), "up") << issued_after[i].detail;
  }
  EXPECT_EQ(live_pinned.connection().info().sessions, 1u);
  EXPECT_EQ(live_issued.connection().info().sessions, 1u);
  for (Client* c : {&live_pinned, &live_issued}) {
    const auto data = read_data(c->connection(), 1, 0, 4);
    EXPECT_TRUE(std::holds_alternative<Bytes>(data)) << std::get<std::string>(data);
  }
}

INSTANTIATE_TEST_SUITE_P(SecureModes, StoreFileProblems, ::testing::Values(ch::SecurityMode::tls),
                         mode_param_name);

// =============================================================================================
// 10. Downgrade: a secure connection facing a plaintext PLC never comes up and never sends S7
// data in clear. A recording proxy between them keeps every byte the client sent.

// A TCP proxy on 127.0.0.1 that relays to an upstream port and records what clients send,
// one byte string per accepted connection. One thread, poll() with a short timeout.
class RecordingProxy {
 public:
  explicit RecordingProxy(std::uint16_t upstream) : upstream_(upstream) {
    listen_fd_ = listen_on_loopback(port_, "recording proxy");
    thread_ = std::thread([this] { run(); });
  }
  ~RecordingProxy() {
    stop_ = true;
    thread_.join();
    ::close(listen_fd_);
  }
  RecordingProxy(const RecordingProxy&) = delete;
  RecordingProxy& operator=(const RecordingProxy&) = delete;

  std::uint16_t port() const { return port_; }
  std::vector<Bytes> client_bytes() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return streams_;
  }

 private:
  struct Pair {
    int client = -1, server = -1;
    std::size_t stream = 0;
  };

  static sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    return a;
  }

  static bool send_all(int fd, const std::uint8_t* data, std::size_t size) {
    while (size > 0) {
      const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      data += n;
      size -= std::size_t(n);
    }
    return true;
  }

  // Relays what `from` has; false when that side is closed or failed.
  bool relay(int from, int to, std::optional<std::size_t> record) {
    std::array<std::uint8_t, 16384> buffer{};
    const ssize_t n = ::recv(from, buffer.data(), buffer.size(), 0);
    if (n <= 0) return false;
    if (record) {
      std::lock_guard<std::mutex> lock(mutex_);
      Bytes& stream = streams_[*record];
      stream.insert(stream.end(), buffer.begin(), buffer.begin() + n);
    }
    return send_all(to, buffer.data(), std::size_t(n));
  }

  void accept_one(std::vector<Pair>& pairs) {
    const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) return;
    const int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const sockaddr_in up = loopback(upstream_);
    if (server < 0 || ::connect(server, reinterpret_cast<const sockaddr*>(&up), sizeof up) != 0) {
      if (server >= 0) ::close(server);
      ::close(client);
      return;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    streams_.emplace_back();
    pairs.push_back(Pair{client, server, streams_.size() - 1});
  }

  void run() {
    std::vector<Pair> pairs;
    while (!stop_) {
      std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
      for (const Pair& p : pairs) {
        fds.push_back({p.client, POLLIN, 0});
        fds.push_back({p.server, POLLIN, 0});
      }
      if (::poll(fds.data(), fds.size(), 20) <= 0) continue;
      for (std::size_t i = 0; i < pairs.size(); ++i) {
        Pair& p = pairs[i];
        bool open = true;
        if (fds[1 + 2 * i].revents != 0) open = relay(p.client, p.server, p.stream);
        if (open && fds[2 + 2 * i].revents != 0) open = relay(p.server, p.client, std::nullopt);
        if (!open) {
          ::close(p.client);
          ::close(p.server);
          p.client = p.server = -1;
        }
      }
      std::erase_if(pairs, [](const Pair& p) { return p.client < 0; });
      if (fds[0].revents & POLLIN) accept_one(pairs);
    }
    for (const Pair& p : pairs) {
      ::close(p.client);
      ::close(p.server);
    }
  }

  std::uint16_t upstream_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::vector<Bytes> streams_;
  std::thread thread_;
};

// Offsets in a byte stream where an S7comm PDU travels in clear: a TPKT header (03 00 LEN)
// whose COTP TPDU is a DT (02 F0 80, or 02 F0 00 for the first piece of a longer PDU) with
// protocol id 0x32 after it. Searched at every offset, not only at frame boundaries.
std::vector<std::size_t> clear_s7_pdus(const Bytes& s) {
  std::vector<std::size_t> found;
  for (std::size_t i = 0; i + 8 <= s.size(); ++i) {
    const std::size_t length = std::size_t(s[i + 2]) << 8 | s[i + 3];
    if (s[i] == 0x03 && s[i + 1] == 0x00 && length >= 8 && s[i + 4] == 0x02 && s[i + 5] == 0xF0 &&
        (s[i + 6] & 0x7F) == 0 && s[i + 7] == 0x32) {
      found.push_back(i);
    }
  }
  return found;
}

bool holds(const Bytes& haystack, const Bytes& needle) {
  return std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end()) !=
         haystack.end();
}

TEST(Downgrade, SecureConnectionsNeverSpeakPlaintextToAPlaintextPlc) {
  TestStore ts;
  // Trust is not what fails here: the PLC's certificate would be accepted if it spoke TLS.
  Ca ca("Plant CA");
  put(ts.layout().roots / "plant-ca.pem", ca.pem());
  ts.store().reload();
  SimPlc plaintext(ps::SecurityMode::none, "", "");
  EventLoop loop;

  {
    SCOPED_TRACE("control: a plaintext connection through the proxy is seen");
    RecordingProxy proxy(plaintext.port());
    Client c(loop.executor(), ts.store(), config_for(ch::SecurityMode::none, proxy.port()));
    ASSERT_TRUE(c.events().wait_state(ch::ConnectionState::up, 10s)) << last_event_text(c.events());
    const auto data = read_data(c.connection(), 1, 0, 4);
    ASSERT_TRUE(std::holds_alternative<Bytes>(data)) << std::get<std::string>(data);
    const auto streams = proxy.client_bytes();
    ASSERT_EQ(streams.size(), 1u);
    EXPECT_GE(clear_s7_pdus(streams[0]).size(), 2u) << "setup and read in clear";
  }

  struct Case {
    ch::SecurityMode mode;
    std::vector<ch::FailureReason> allowed;
  };
  for (const Case& k :
       // tls: the plaintext PLC closes at the ClientHello without a byte of TLS; the client
       // cannot tell that from any other early close (refused since 0db2616, protocol_error
       // before); only a plaintext answer would be downgrade_refused.
       {Case{ch::SecurityMode::tls,
             {ch::FailureReason::refused, ch::FailureReason::protocol_error,
              ch::FailureReason::downgrade_refused}},
        Case{ch::SecurityMode::s7_secure, {ch::FailureReason::downgrade_refused}}}) {
    SCOPED_TRACE(ch::security_mode_name(k.mode));
    RecordingProxy proxy(plaintext.port());
    std::optional<ch::ConnectionEvent> first;
    std::uint64_t attempts = 0, sessions = 0;
    std::vector<ch::ConnectionEvent> events;
    {
      Client c(loop.executor(), ts.store(), config_for(k.mode, proxy.port()));
      first = c.events().wait_state(ch::ConnectionState::waiting, 10s);
      ASSERT_TRUE(first) << last_event_text(c.events());
      // A few attempts, each refused the same way.
      const auto refused = [&](const ch::ConnectionEvent& e) {
        return e.state == ch::ConnectionState::waiting && e.reason == first->reason;
      };
      EXPECT_TRUE(wait_for_count(c.events(), refused, 3, 10s)) << last_event_text(c.events());
      const ch::JobResult job = read_bytes(c.connection(), 1, 0, 4, 5s);
      EXPECT_TRUE(std::holds_alternative<ch::JobError>(job)) << "a job answered in clear";
      const auto info = c.connection().info();
      attempts = info.attempts;
      sessions = info.sessions;
      EXPECT_TRUE(info.tls_version.empty());
      EXPECT_FALSE(info.peer_certificate);
      events = c.events().events();
    }  // the connection is gone: every byte it sent has reached the proxy or never will
    std::cout << "[ info     ] " << ch::security_mode_name(k.mode)
              << " against a plaintext PLC: " << name(first->reason) << ": " << first->detail
              << "\n";
    EXPECT_TRUE(std::find(k.allowed.begin(), k.allowed.end(), first->reason) != k.allowed.end())
        << name(first->reason) << ": " << first->detail;
    EXPECT_TRUE(contains(first->detail, "never falls back to plaintext")) << first->detail;
    if (k.mode == ch::SecurityMode::s7_secure) {
      EXPECT_TRUE(contains(first->detail, "05A9")) << first->detail;
    }
    EXPECT_FALSE(any_up(events));
    EXPECT_EQ(sessions, 0u);
    EXPECT_GE(attempts, 3u);

    const auto streams = proxy.client_bytes();
    // Each refused attempt went through the proxy; one more may have begun before the end.
    EXPECT_GE(std::count_if(streams.begin(), streams.end(),
                            [](const Bytes& sent) { return !sent.empty(); }),
              3)
        << "the proxy saw fewer connections than refused attempts";
    for (std::size_t i = 0; i < streams.size(); ++i) {
      SCOPED_TRACE("connection " + std::to_string(i + 1));
      const Bytes& sent = streams[i];
      if (sent.empty()) continue;
      EXPECT_TRUE(clear_s7_pdus(sent).empty())
          << "S7comm in clear at offset " << clear_s7_pdus(sent).front();
      if (k.mode == ch::SecurityMode::tls) {
        EXPECT_EQ(sent[0], 0x16) << "not a TLS handshake record from the first byte";
      } else {
        EXPECT_EQ(sent[0], 0x03) << "not a TPKT (COTP CR) first";
        EXPECT_TRUE(holds(sent, ch::encode_init_ssl_request())) << "no InitSSL request";
      }
    }
  }
}

}  // namespace
