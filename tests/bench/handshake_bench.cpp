// handshake_bench: what a secure connection costs to set up and how fast trust changes reach
// connections (issue 4's benchmark; README.md beside this file explains the figures).
//
//  1. Full vs resumed handshakes in the tls and s7-secure modes: the session's set-up time
//     (TCP connected -> setup communication answered; ConnectionInfo::handshake_time) and the
//     client's CPU time per handshake (the event loop thread's CPU clock).
//  2. Trust reaction: time from moving a quarantined certificate into trusted/ to the waiting
//     connection being up; time from a CRL landing in trusted/crl/ to the revoked live session
//     being closed. The store runs with its default options (inotify, 200 ms debounce).
//
// Everything runs in this process on loopback: plcsim on its own thread, the connections on an
// event loop thread. Bounded: a fixed number of rounds, every wait with a timeout.
#include <pthread.h>
#include <time.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>
#include <string>
#include <vector>

#include "../connection/connection_fixture.h"
#include "plcsim/plcsim.h"
#include "test_pki.h"

namespace ch = scada::channel;
namespace cs = scada::certstore;
namespace ps = scada::plcsim;
namespace pki = scada::certstore::test_pki;
namespace fs = std::filesystem;
using namespace scada::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kHandshakes = 200;
constexpr int kTrustRounds = 10;

struct Stats {
  double p50 = 0, p99 = 0, mean = 0;
};

Stats stats(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.p50 = v[v.size() / 2];
  s.p99 = v[std::min(v.size() - 1, v.size() * 99 / 100)];
  for (double x : v) s.mean += x;
  s.mean /= double(v.size());
  return s;
}

// CPU time of the event loop thread, read on that thread.
double loop_cpu_ms(EventLoop& loop) {
  std::promise<double> p;
  boost::asio::post(loop.executor(), [&p] {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    p.set_value(double(ts.tv_sec) * 1e3 + double(ts.tv_nsec) / 1e6);
  });
  return p.get_future().get();
}

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "handshake_bench: %s\n", what.c_str());
  std::exit(1);
}

struct HandshakeRow {
  std::string mode, kind;
  Stats wall_ms;
  double cpu_ms = 0;
  int resumed = 0;
};

HandshakeRow measure_handshakes(ch::SecurityMode mode, bool resume) {
  TestStore ts;
  TrustedPlc plc(ts, mode);
  EventLoop loop;
  ch::ConnectionConfig cc = plc.connection_config();
  cc.resume_sessions = resume;
  ch::Connection c(loop.executor(), ts.store(), cc);
  EventRecorder events(c);

  HandshakeRow row;
  row.mode = ch::security_mode_name(mode);
  row.kind = resume ? "resumed" : "full";
  std::vector<double> wall;
  double cpu = 0;
  // With resumption the first handshake is a full one that yields the session: not counted.
  const int warmup = resume ? 1 : 0;
  for (int i = 0; i < kHandshakes + warmup; ++i) {
    const std::size_t from = events.size();
    const double cpu0 = loop_cpu_ms(loop);
    c.start();
    if (!events.wait_state(ch::ConnectionState::up, 5s, from)) {
      fail(std::string("no session in mode ") + row.mode + ": " +
           (events.events().empty() ? "" : events.events().back().detail));
    }
    const double cpu1 = loop_cpu_ms(loop);
    const ch::ConnectionInfo info = c.info();
    const std::size_t up_at = events.size();
    c.stop();
    if (!events.wait_state(ch::ConnectionState::stopped, 5s, up_at)) fail("stop did not finish");
    if (i < warmup) continue;
    wall.push_back(double(info.handshake_time.count()) / 1000.0);
    cpu += cpu1 - cpu0;
    row.resumed += info.resumed ? 1 : 0;
  }
  row.wall_ms = stats(wall);
  row.cpu_ms = cpu / kHandshakes;
  return row;
}

cs::TimePoint now() {
  return std::chrono::system_clock::now();
}

std::chrono::sys_seconds seconds_from_now(std::chrono::seconds d) {
  return std::chrono::time_point_cast<std::chrono::seconds>(now() + d);
}

// Self-signed PLC certificate with SAN 127.0.0.1, written as PEM files.
void write_self_signed(const fs::path& cert, const fs::path& key, int serial) {
  pki::KeyPtr k = pki::make_key(pki::KeyKind::ec_p256);
  pki::CertificateSpec spec;
  spec.subject = {{"CN", "PLC bench " + std::to_string(serial)}};
  spec.serial = {std::uint8_t(serial)};
  spec.not_before = seconds_from_now(-1h);
  spec.not_after = seconds_from_now(24h);
  spec.ip_addresses = {"127.0.0.1"};
  pki::CertificatePtr c = pki::make_certificate(spec, k.get(), nullptr, k.get());
  write_file(cert, pki::pem_of(c.get()));
  write_file(key, pki::pem_of_private_key(k.get()));
}

// Moving a quarantined certificate into trusted/ -> the waiting connection is up.
std::vector<double> measure_manual_trust(ch::SecurityMode mode) {
  std::vector<double> ms;
  for (int round = 0; round < kTrustRounds; ++round) {
    TestStore ts(cs::StoreOptions{});  // production defaults
    const fs::path cert = ts.dir().file("plc.crt"), key = ts.dir().file("plc.key");
    write_self_signed(cert, key, round + 1);
    ps::PlcConfig pc;
    pc.mode = mode;
    pc.tls.certificate = cert;
    pc.tls.key = key;
    ps::Simulator sim({pc}, "127.0.0.1", 0);
    EventLoop loop;
    ch::ConnectionConfig cc;
    cc.port = sim.plc(0).port();
    cc.mode = mode;
    cc.retry_min = 60s;  // only the trust change may end the wait
    cc.retry_max = 60s;
    ch::Connection c(loop.executor(), ts.store(), cc);
    EventRecorder events(c);
    c.start();
    auto waiting =
        events.wait([](const ch::ConnectionEvent& e) { return e.quarantined.has_value(); }, 5s);
    if (!waiting) fail("the certificate was not quarantined");
    const fs::path target = ts.layout().trusted() / waiting->quarantined->filename();
    const std::size_t from = events.size();
    const auto t0 = Clock::now();
    fs::rename(*waiting->quarantined, target);
    if (!events.wait_state(ch::ConnectionState::up, 10s, from)) fail("manual trust: not up");
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  return ms;
}

// A CRL listing the PLC's certificate lands in trusted/crl/ -> the live session is closed.
std::vector<double> measure_revocation(ch::SecurityMode mode) {
  std::vector<double> ms;
  for (int round = 0; round < kTrustRounds; ++round) {
    TestStore ts(cs::StoreOptions{});
    pki::KeyPtr ca_key = pki::make_key(pki::KeyKind::ec_p256);
    pki::CertificateSpec ca_spec;
    ca_spec.subject = {{"CN", "Bench CA"}};
    ca_spec.not_before = seconds_from_now(-1h);
    ca_spec.not_after = seconds_from_now(24h);
    ca_spec.ca = true;
    pki::CertificatePtr ca = pki::make_certificate(ca_spec, ca_key.get(), nullptr, ca_key.get());
    pki::KeyPtr leaf_key = pki::make_key(pki::KeyKind::ec_p256);
    pki::CertificateSpec leaf_spec;
    leaf_spec.subject = {{"CN", "PLC"}};
    leaf_spec.serial = {0x10, std::uint8_t(round)};
    leaf_spec.not_before = ca_spec.not_before;
    leaf_spec.not_after = ca_spec.not_after;
    leaf_spec.ca = false;
    leaf_spec.ip_addresses = {"127.0.0.1"};
    pki::CertificatePtr leaf =
        pki::make_certificate(leaf_spec, leaf_key.get(), ca.get(), ca_key.get());
    write_file(ts.layout().roots / "ca.pem", pki::pem_of(ca.get()));
    const fs::path cert = ts.dir().file("plc.crt"), key = ts.dir().file("plc.key");
    write_file(cert, pki::pem_of(leaf.get()));
    write_file(key, pki::pem_of_private_key(leaf_key.get()));
    ts.store().reload();

    ps::PlcConfig pc;
    pc.mode = mode;
    pc.tls.certificate = cert;
    pc.tls.key = key;
    ps::Simulator sim({pc}, "127.0.0.1", 0);
    EventLoop loop;
    ch::ConnectionConfig cc;
    cc.port = sim.plc(0).port();
    cc.mode = mode;
    ch::Connection c(loop.executor(), ts.store(), cc);
    EventRecorder events(c);
    c.start();
    if (!events.wait_state(ch::ConnectionState::up, 5s)) fail("revocation: not up");
    pki::CrlSpec crl_spec;
    crl_spec.this_update = seconds_from_now(-1min);
    crl_spec.next_update = seconds_from_now(24h);
    crl_spec.revoked_serials = {leaf_spec.serial};
    pki::CrlPtr crl = pki::make_crl(crl_spec, ca.get(), ca_key.get());
    const fs::path staged = ts.layout().crl() / ".bench.crl.tmp";
    write_file(staged, pki::pem_of(crl.get()));
    const std::size_t from = events.size();
    const auto t0 = Clock::now();
    fs::rename(staged, ts.layout().crl() / "bench.crl");
    auto closed = events.wait(
        [](const ch::ConnectionEvent& e) { return e.reason == ch::FailureReason::revoked; }, 10s,
        from);
    if (!closed) fail("revocation: the session was not closed");
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  return ms;
}

// A PLC that stalls (TCP open, nothing answered) -> the idle connection declares it dead.
// dead_peer_timeout is 1 s; the heartbeat starts after a third of it without traffic.
std::vector<double> measure_dead_peer(ch::SecurityMode mode) {
  std::vector<double> ms;
  TestStore ts;
  TrustedPlc plc(ts, mode);
  EventLoop loop;
  ch::ConnectionConfig cc = plc.connection_config();
  cc.dead_peer_timeout = 1000ms;
  cc.retry_min = 50ms;
  ch::Connection c(loop.executor(), ts.store(), cc);
  EventRecorder events(c);
  c.start();
  std::size_t recovered_from = 0;  // events from here on include the next "up"
  for (int round = 0; round < kTrustRounds; ++round) {
    if (!events.wait_state(ch::ConnectionState::up, 5s, recovered_from)) {
      fail("dead peer: not up");
    }
    const std::size_t from = events.size();
    recovered_from = from;
    ps::Faults f;
    f.stall = true;
    const auto t0 = Clock::now();
    plc.plc().set_faults(f);
    if (!events.wait(
            [](const ch::ConnectionEvent& e) { return e.reason == ch::FailureReason::timeout; },
            10s, from)) {
      fail("dead peer: the stalled PLC was not declared dead");
    }
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    plc.plc().set_faults(ps::Faults{});
  }
  return ms;
}

}  // namespace

int main() {
  std::printf("handshake_bench: %d handshakes per row, %d rounds per trust reaction\n\n",
              kHandshakes, kTrustRounds);
  std::printf("%-10s %-8s %10s %10s %10s %12s %8s\n", "mode", "kind", "p50 ms", "p99 ms", "mean ms",
              "client CPU ms", "resumed");
  for (ch::SecurityMode mode : {ch::SecurityMode::tls, ch::SecurityMode::s7_secure}) {
    for (bool resume : {false, true}) {
      const HandshakeRow r = measure_handshakes(mode, resume);
      std::printf("%-10s %-8s %10.2f %10.2f %10.2f %12.3f %5d/%d\n", r.mode.c_str(), r.kind.c_str(),
                  r.wall_ms.p50, r.wall_ms.p99, r.wall_ms.mean, r.cpu_ms, r.resumed, kHandshakes);
    }
  }
  std::printf("\n%-10s %-34s %10s %10s %10s\n", "mode", "trust reaction", "p50 ms", "max ms",
              "mean ms");
  for (ch::SecurityMode mode : {ch::SecurityMode::tls, ch::SecurityMode::s7_secure}) {
    const auto print = [&](const char* what, const std::vector<double>& v) {
      const Stats s = stats(v);
      std::printf("%-10s %-34s %10.1f %10.1f %10.1f\n", ch::security_mode_name(mode), what, s.p50,
                  *std::max_element(v.begin(), v.end()), s.mean);
    };
    print("quarantined -> trusted/ -> up", measure_manual_trust(mode));
    print("CRL in trusted/crl/ -> closed", measure_revocation(mode));
    print("PLC stalls -> dead (bound 1000 ms)", measure_dead_peer(mode));
  }
  return 0;
}
