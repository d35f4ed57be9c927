// Certificate replacement while plcsim serves, in both TLS modes: new handshakes present the
// new certificate, established sessions keep theirs and never drop, and a certificate file that
// cannot be used (half written, garbage, not matching its key) leaves the last good one in use.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../support/s7_test_client.h"
#include "plcsim/plcsim.h"
#include "test_modes.h"
#include "test_tls_files.h"

namespace ch = scada::channel;
namespace ps = scada::plcsim;

using scada::test::ClientError;
using scada::test::ClientMode;
using scada::test::ClientOptions;
using scada::test::mode_label;
using scada::test::S7TestClient;
using scada::test::ServerTlsFiles;
using scada::test::TempDir;
using namespace std::chrono_literals;

namespace {

constexpr std::uint8_t kOk = 0xFF;
constexpr std::size_t kPollers = 4;
constexpr std::uint64_t kMaxPolls = 1'000'000;  // a bound; the test stops them much earlier

const ch::VarItem kDbByte{ch::TransportSize::byte, 1, 1, ch::Area::data_block, 0};

// Connections that read in their own threads until stopped (or a bound is reached), counting
// reads and keeping the first failure. Stops and joins on destruction, so a failed assertion
// in the test cannot leave a thread behind.
class Pollers {
 public:
  explicit Pollers(std::vector<std::unique_ptr<S7TestClient>>& clients)
      : counts_(clients.size()), failures_(clients.size()) {
    for (std::size_t i = 0; i < clients.size(); ++i) {
      threads_.emplace_back([this, i, client = clients[i].get()] { poll(i, *client); });
    }
  }
  ~Pollers() { stop(); }
  Pollers(const Pollers&) = delete;
  Pollers& operator=(const Pollers&) = delete;

  void stop() {
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  std::uint64_t count(std::size_t i) const { return counts_[i].load(); }
  // Waits (bounded) until every poller has read at least `more` times since `since`.
  bool advance(const std::vector<std::uint64_t>& since, std::uint64_t more) const {
    for (int round = 0; round < 1000; ++round) {
      bool all = true;
      for (std::size_t i = 0; i < counts_.size(); ++i) all = all && count(i) >= since[i] + more;
      if (all) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }
  std::vector<std::uint64_t> counts() const {
    std::vector<std::uint64_t> out;
    for (std::size_t i = 0; i < counts_.size(); ++i) out.push_back(count(i));
    return out;
  }
  std::vector<std::string> failures() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (const auto& f : failures_) {
      if (!f.empty()) out.push_back(f);
    }
    return out;
  }

 private:
  void poll(std::size_t i, S7TestClient& client) {
    for (std::uint64_t n = 0; n < kMaxPolls && !stop_; ++n) {
      std::string failure;
      try {
        const auto reply = client.read({kDbByte});
        if (reply.items.at(0).return_code != kOk) failure = "read answered an error item";
      } catch (const ClientError& e) {
        failure = e.what();
      }
      if (!failure.empty()) {
        std::lock_guard lock(mutex_);
        failures_[i] = "connection " + std::to_string(i) + ": " + failure;
        return;
      }
      ++counts_[i];
    }
  }

  std::vector<std::atomic<std::uint64_t>> counts_;
  mutable std::mutex mutex_;
  std::vector<std::string> failures_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

class PlcsimCertificatesTest : public testing::TestWithParam<ClientMode> {
 protected:
  PlcsimCertificatesTest() : tls_(dir_, "PLC1") {
    ps::PlcConfig c;
    c.mode = GetParam() == ClientMode::tls ? ps::SecurityMode::tls : ps::SecurityMode::s7_secure;
    c.tls.certificate = tls_.certificate_file;
    c.tls.key = tls_.key_file;
    sim_ = std::make_unique<ps::Simulator>(std::vector<ps::PlcConfig>{c}, "127.0.0.1", 0);
  }

  std::unique_ptr<S7TestClient> connected() {
    ClientOptions o;
    o.mode = GetParam();
    o.tls.trust = tls_.ca_file;
    auto client = std::make_unique<S7TestClient>(o);
    client->connect(sim_->plc(0).port());
    client->setup();
    return client;
  }
  // The certificate a new connection is served, after checking that the connection works.
  std::string fingerprint_of_new_connection() {
    auto client = connected();
    EXPECT_EQ(client->read({kDbByte}).items.at(0).return_code, kOk);
    return client->peer_certificate_sha256();
  }
  void replace_pair(const scada::test::IssuedCertificate& pair) {
    // Key first, then certificate: in between, a handshake finds a pair that does not match and
    // must keep the old one.
    scada::test::replace_file_atomically(tls_.key_file, pair.key_pem);
    scada::test::replace_file_atomically(tls_.certificate_file, pair.certificate_pem);
  }

  TempDir dir_;
  ServerTlsFiles tls_;
  std::unique_ptr<ps::Simulator> sim_;
};

TEST_P(PlcsimCertificatesTest, ReplacementUnderLoadReachesNewHandshakesOnly) {
  std::vector<std::unique_ptr<S7TestClient>> clients;
  for (std::size_t i = 0; i < kPollers; ++i) {
    clients.push_back(connected());
    EXPECT_EQ(clients.back()->peer_certificate_sha256(), tls_.server.sha256);
  }
  Pollers pollers(clients);
  ASSERT_TRUE(pollers.advance(std::vector<std::uint64_t>(kPollers, 0), 10))
      << "the connections do not poll";

  const auto renewed = tls_.ca.issue("PLC1");
  ASSERT_NE(renewed.sha256, tls_.server.sha256);
  replace_pair(renewed);
  const auto at_replacement = pollers.counts();

  // A handshake made now presents the new certificate...
  EXPECT_EQ(fingerprint_of_new_connection(), renewed.sha256);
  // ...while the sessions born before keep polling on theirs, without a single failed read.
  EXPECT_TRUE(pollers.advance(at_replacement, 20)) << "polling stalled after the replacement";
  pollers.stop();
  EXPECT_EQ(pollers.failures(), std::vector<std::string>{});
  for (const auto& client : clients) {
    EXPECT_EQ(client->peer_certificate_sha256(), tls_.server.sha256);
    EXPECT_EQ(client->read({kDbByte}).items.at(0).return_code, kOk);
  }
  EXPECT_EQ(sim_->plc(0).connections(), kPollers);
}

TEST_P(PlcsimCertificatesTest, UnusableCertificateFileKeepsTheLastGoodOne) {
  auto established = connected();
  const auto renewed = tls_.ca.issue("PLC1");

  // Half written (a writer that does not rename), garbage, and a certificate without its key.
  const std::string& pem = renewed.certificate_pem;
  scada::test::write_file(tls_.certificate_file, pem.substr(0, pem.size() / 2));
  EXPECT_EQ(fingerprint_of_new_connection(), tls_.server.sha256) << "half-written certificate";
  scada::test::write_file(tls_.certificate_file, "not a certificate\n");
  EXPECT_EQ(fingerprint_of_new_connection(), tls_.server.sha256) << "garbage certificate";
  scada::test::replace_file_atomically(tls_.certificate_file, renewed.certificate_pem);
  EXPECT_EQ(fingerprint_of_new_connection(), tls_.server.sha256) << "certificate without its key";

  // The matching key completes the pair.
  scada::test::replace_file_atomically(tls_.key_file, renewed.key_pem);
  EXPECT_EQ(fingerprint_of_new_connection(), renewed.sha256);

  // Garbage now keeps the renewed certificate: the last good one, not the first.
  scada::test::write_file(tls_.certificate_file, "-----BEGIN CERTIFICATE-----\nAAAA\n");
  EXPECT_EQ(fingerprint_of_new_connection(), renewed.sha256);
  scada::test::write_file(tls_.key_file, "");
  EXPECT_EQ(fingerprint_of_new_connection(), renewed.sha256) << "empty key file";

  // The session from the start never noticed.
  EXPECT_EQ(established->read({kDbByte}).items.at(0).return_code, kOk);
  EXPECT_EQ(established->peer_certificate_sha256(), tls_.server.sha256);
}

INSTANTIATE_TEST_SUITE_P(SecureModes, PlcsimCertificatesTest,
                         testing::Values(ClientMode::tls, ClientMode::s7_secure), mode_label);

}  // namespace
