// Hostile peers (DESIGN.md §10, issue 9): a real channel::Connection, the certificate store of a
// temporary project deciding trust, against PLCs of the test's own (hostile_plc.h) that
// misbehave after, during or instead of the TLS handshake, in both secure modes (the first two
// kinds in mode none too, in clear):
//   - garbage after a valid handshake (random bytes, a TPKT with garbage COTP, a DT with a
//     garbage S7 header)
//   - huge announced lengths (a TPKT of 65535 bytes, an S7 header announcing 64 KiB of
//     parameter and data, a TLS record of 65535 bytes, a PDU in endless DT fragments; in
//     s7-secure also in clear: an oversize TPKT and a huge InitSSL reply)
//   - handshakes that never finish (silence, half a ServerHello, one byte a second)
//   - absurd certificates (a chain of 100, a certificate of 1 MiB, one over the store's limit)
//   - renegotiation requested by the PLC (TLS 1.2) and a KeyUpdate flood (TLS 1.3)
// Each case asserts the state and reason the connection reports, that it keeps retrying no
// faster than the 0.5 s minimum backoff allows, and that it comes up against the same PLC once
// that behaves again. Waits are bounds on an outcome, never measurements.
#include <openssl/objects.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "connection_fixture.h"
#include "hostile_plc.h"
#include "test_pki.h"

namespace {

namespace ch = scada::channel;
namespace cs = scada::certstore;
namespace pki = scada::certstore::test_pki;
namespace fs = std::filesystem;
using namespace scada::test;
using namespace std::chrono_literals;
using Bytes = std::vector<std::uint8_t>;
using Clock = std::chrono::steady_clock;

// The documented minimum backoff (README "Reconnect") and the bounds the connections here use.
constexpr auto kRetryMin = 500ms;
constexpr auto kRetryMax = 2s;
constexpr auto kConnectTimeout = 2s;
// With "equal jitter" no wait is shorter than half the minimum.
constexpr auto kShortestWait = kRetryMin / 2;

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif

std::string name(ch::FailureReason reason) {
  return ch::failure_reason_name(reason);
}
std::string name(ch::ConnectionState state) {
  return ch::connection_state_name(state);
}
bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

Bytes operator+(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Bytes random_bytes(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  Bytes out(n);
  for (auto& b : out) b = std::uint8_t(rng());
  return out;
}

// ---------------------------------------------------------------------------------------------
// The connection under test

ch::ConnectionConfig hostile_config(ch::SecurityMode mode, std::uint16_t port) {
  ch::ConnectionConfig cc;
  cc.name = "PLC1";
  cc.address = "127.0.0.1";
  cc.port = port;
  cc.mode = mode;
  cc.connect_timeout = kConnectTimeout;
  cc.retry_min = kRetryMin;
  cc.retry_max = kRetryMax;
  // The idle CPU-state read (a third of this) is what a PLC misbehaving after "up" answers
  // wrongly; half the default keeps the waits for it short.
  cc.dead_peer_timeout = 1500ms;
  return cc;
}

using Client = StartedConnection;

std::string event_text(const ch::ConnectionEvent& e) {
  return name(e.state) + " " + name(e.reason) + ": " + e.detail;
}

std::string history(EventRecorder& rec) {
  std::string text;
  for (const auto& e : rec.events()) text += "\n  " + event_text(e);
  return text.empty() ? " (no event)" : text;
}

bool is_up(const ch::ConnectionEvent& e) {
  return e.state == ch::ConnectionState::up;
}
bool is_waiting(const ch::ConnectionEvent& e) {
  return e.state == ch::ConnectionState::waiting;
}

// The index of the first event at or after `from` that matches (bounded wait).
std::optional<std::size_t> wait_index(EventRecorder& rec, const EventRecorder::Match& match,
                                      std::chrono::milliseconds timeout, std::size_t from) {
  if (!rec.wait(match, timeout, from)) return std::nullopt;
  const auto all = rec.events();
  for (std::size_t i = from; i < all.size(); ++i) {
    if (match(all[i])) return i;
  }
  return std::nullopt;
}

// Reconnects are paced by the backoff: every announced wait is at least half the minimum and
// at most the maximum, and the PLC never saw connections faster than that allows (a slow
// machine only lowers the count; a tight reconnect loop would show hundreds).
void expect_paced(const HostilePlc& plc, EventRecorder& rec) {
  for (const auto& e : rec.events()) {
    if (!is_waiting(e)) continue;
    EXPECT_GE(e.retry_in, kShortestWait) << event_text(e);
    EXPECT_LE(e.retry_in, kRetryMax) << event_text(e);
  }
  const auto accepted = plc.accepted_at();
  if (accepted.size() < 2) return;
  const auto window = accepted.back() - accepted.front();
  const std::size_t allowed = 2 + std::size_t(window / kShortestWait);
  EXPECT_LE(accepted.size(), allowed)
      << accepted.size() << " connections in "
      << std::chrono::duration_cast<std::chrono::milliseconds>(window).count() << " ms";
}

// The connection is up (at or after event `from`) and serves a read.
void expect_serves(Client& c, std::size_t from) {
  const auto up = wait_index(c.events(), is_up, 20s, from);
  ASSERT_TRUE(up) << "never up again:" << history(c.events());
  const auto data = read_data(c.connection(), 1, 0, 4);
  EXPECT_TRUE(std::holds_alternative<Bytes>(data)) << std::get<std::string>(data);
  EXPECT_EQ(name(c.connection().info().state), "up");
}

struct Outcome {
  ch::FailureReason reason;
  std::vector<std::string> words;  // each must be in the detail
  bool after_up = false;           // the session comes up before the PLC misbehaves
};

// `failures` connections to the PLC end as `expected` says (each session or attempt with the
// reason, and no session up where none may be), the connection keeps retrying with backoff,
// and once the PLC behaves it comes up and serves.
void expect_failures_then_recovery(Client& c, const HostilePlc& plc, const Outcome& expected,
                                   std::size_t failures) {
  EventRecorder& rec = c.events();
  std::size_t from = 0;
  for (std::size_t i = 0; i < failures; ++i) {
    SCOPED_TRACE("hostile connection " + std::to_string(i));
    if (expected.after_up) {
      const auto up = wait_index(rec, is_up, 15s, from);
      if (!up) {
        ADD_FAILURE() << "not up before the PLC misbehaves:" << history(rec);
        return;
      }
      from = *up + 1;
    }
    const auto failed = wait_index(rec, is_waiting, 15s, from);
    if (!failed) {
      ADD_FAILURE() << "no failure reported:" << history(rec);
      return;
    }
    const auto all = rec.events();
    const ch::ConnectionEvent& e = all[*failed];
    if (i == 0) std::cout << "[ info     ] " << event_text(e) << "\n";
    EXPECT_EQ(name(e.reason), name(expected.reason)) << e.detail;
    for (const std::string& word : expected.words) {
      EXPECT_TRUE(contains(e.detail, word)) << "'" << word << "' missing in: " << e.detail;
    }
    EXPECT_FALSE(e.quarantined) << e.quarantined->string();
    if (!expected.after_up) {
      EXPECT_TRUE(std::none_of(all.begin() + std::ptrdiff_t(from),
                               all.begin() + std::ptrdiff_t(*failed), is_up))
          << "a session came up with the hostile PLC:" << history(rec);
    }
    from = *failed + 1;
  }
  expect_serves(c, from);
  EXPECT_GE(c.connection().info().attempts, failures + 1);
  expect_paced(plc, rec);
  EXPECT_TRUE(plc.problems().empty()) << plc.problems().front();
}

// ---------------------------------------------------------------------------------------------
// PLC scripts

using Misbehaviour = std::function<void(PlcSocket&)>;

// Connections [0, hostile) misbehave; later ones answer as plcsim does, with `context`.
HostilePlc::Script hostile_then_behave(std::size_t hostile, Misbehaviour misbehave,
                                       ch::SecurityMode mode, SSL_CTX* context) {
  return [=](PlcSocket& socket, std::size_t connection) {
    if (connection < hostile) return misbehave(socket);
    PlcService plc(socket, mode, context);
    if (plc.handshake(10s) && plc.until_up(10s)) plc.serve(60s);
  };
}

// Up as plcsim would be and a first job answered (so the client is up), then `hostile(plc)`;
// then holds the connection until the client goes.
Misbehaviour once_up(ch::SecurityMode mode, SSL_CTX* context,
                     std::function<void(PlcService&)> hostile) {
  return [=](PlcSocket& socket) {
    PlcService plc(socket, mode, context);
    if (!plc.handshake(10s) || !plc.until_up(10s) || !plc.answer_next(10s)) return;
    hostile(plc);
    socket.hold(20s);
  };
}

// s7-secure's clear part done right: CR/CC, then the InitSSL request answered "accepted".
bool s7_secure_preamble(PlcSocket& socket) {
  if (!confirm_connect(socket, 10s) || !socket.read_tpkt(10s)) return false;
  const auto reply = ch::frame_dt(ch::encode_init_ssl_response(), 1024);
  return std::all_of(reply.begin(), reply.end(), [&](const Bytes& f) { return socket.send(f); });
}

// A PLC whose certificate a test CA issued (SAN 127.0.0.1), that CA imported into pki/roots.
struct TrustedPlcFiles {
  explicit TrustedPlcFiles(TestStore& ts, int max_version = TLS1_3_VERSION)
      : files(ts.dir(), "hostile") {
    write_file(ts.layout().roots / "hostile-root.pem", files.ca.certificate_pem());
    ts.store().reload();
    context = plc_context(files.certificate_file, files.key_file, max_version);
  }
  ServerTlsFiles files;
  SslContextPtr context;
};

// Peak memory of a test against its start (the hostile PLC runs in this process too, so the
// margin is generous: what must not happen is an allocation of an announced size).
class MemoryBound {
 public:
  MemoryBound() : baseline_kb_(reset_peak_rss() ? peak_rss_kb() : 0) {}
  void expect_within(std::size_t margin_kb) const {
    if (kAddressSanitizer || baseline_kb_ == 0) return;  // ASan's own memory; ASan checks
    const std::size_t peak = peak_rss_kb();
    std::cout << "[ info     ] peak RSS " << baseline_kb_ << " kB -> " << peak << " kB\n";
    EXPECT_LE(peak, baseline_kb_ + margin_kb)
        << "peak RSS grew from " << baseline_kb_ << " kB to " << peak << " kB";
  }

 private:
  std::size_t baseline_kb_;
};

class HostilePeer : public ::testing::TestWithParam<ch::SecurityMode> {
 protected:
  ch::SecurityMode mode() const { return GetParam(); }
};

// The cases that apply to mode none too: the same bytes in clear instead of inside TLS.
class HostilePeerAnyMode : public HostilePeer {
 protected:
  bool plain() const { return mode() == ch::SecurityMode::none; }
};

// ---------------------------------------------------------------------------------------------
// 1. Garbage after a valid handshake with a trusted certificate: the live session ends with
// protocol-error, and the connection reconnects with backoff.

TEST_P(HostilePeerAnyMode, GarbageAfterTheHandshakeEndsTheSessionWithProtocolError) {
  Bytes random = random_bytes(200, 7);
  random[0] = 0xA5;  // never a TPKT version
  Bytes junk_cotp = random_bytes(16, 8);
  junk_cotp[0] = 0xF7;  // a length indicator past the TPDU's end
  Bytes junk_s7 = random_bytes(40, 9);
  junk_s7[0] = 0x32;  // S7comm, but ROSCTR 0xEE and lengths that do not add up
  junk_s7[1] = 0xEE;
  const struct {
    const char* what;
    Bytes plaintext;
    std::vector<std::string> words;
  } cases[] = {
      {"random bytes", random, {plain() ? "bad TPKT from the PLC" : "bad TPKT inside TLS"}},
      {"a TPKT with garbage COTP", ch::tpkt_wrap(junk_cotp), {"bad COTP"}},
      {"a DT with a garbage S7 header", ch::frame_dt(junk_s7, 1024).front(), {"bad S7comm PDU"}},
  };
  for (const auto& k : cases) {
    SCOPED_TRACE(k.what);
    TestStore ts;
    TrustedPlcFiles trusted(ts);
    SSL_CTX* ctx = trusted.context.get();
    const Bytes plaintext = k.plaintext;
    HostilePlc plc(hostile_then_behave(
        3, once_up(mode(), ctx, [plaintext](PlcService& p) { p.tls().write(plaintext); }), mode(),
        ctx));
    EventLoop loop;
    Client c(loop.executor(), ts.store(), hostile_config(mode(), plc.port()));
    expect_failures_then_recovery(c, plc, {ch::FailureReason::protocol_error, k.words, true}, 3);
  }
}

// ---------------------------------------------------------------------------------------------
// 2. Huge announced lengths: cut off at once with protocol-error, nothing of the announced size
// is buffered.

TEST_P(HostilePeerAnyMode, HugeAnnouncedLengthsAreCutOffWithProtocolError) {
  const MemoryBound memory;
  const Bytes oversize_tpkt = Bytes{0x03, 0x00, 0xFF, 0xFF, 0x02, 0xF0, 0x80} + Bytes(1000, 0);
  const Bytes huge_s7 =
      ch::frame_dt(Bytes{0x32, 0x03, 0x00, 0x00, 0x00, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00} +
                       Bytes(8, 0),
                   1024)
          .front();
  const Bytes huge_record = Bytes{0x17, 0x03, 0x03, 0xFF, 0xFF} + Bytes(1000, 0x42);
  // One DT fragment (no EOT) of a PDU that never ends.
  const Bytes fragment = ch::tpkt_wrap(ch::encode_cotp(ch::CotpData{false, 0, Bytes(1000, 0x32)}));

  struct Case {
    const char* what;
    std::function<void(PlcService&)> hostile;
    std::vector<std::string> words;
  };
  std::vector<Case> cases = {
      {plain() ? "a TPKT of 65535 bytes" : "a TPKT of 65535 bytes inside TLS",
       [&](PlcService& p) { p.tls().write(oversize_tpkt); },
       plain() ? std::vector<std::string>{"bad TPKT from the PLC", "65535", "limit of 1028"}
               : std::vector<std::string>{"bad TPKT inside TLS", "65535"}},
      {"an S7 header announcing 64 KiB of parameter and data",
       [&](PlcService& p) { p.tls().write(huge_s7); },
       {"bad S7comm PDU"}},
      {"a PDU in endless DT fragments",
       [&](PlcService& p) {
         for (int i = 0; i < 1000 && p.tls().write(fragment); ++i) {
         }
       },
       {"bad DT sequence"}},
  };
  if (!plain()) {
    cases.push_back({"a TLS record of 65535 bytes",
                     [&](PlcService& p) { p.tls().send_carrier(huge_record); },
                     {"TLS session failed"}});
  }
  if (mode() == ch::SecurityMode::s7_secure) {
    cases.push_back({"a TPKT of 65535 bytes around the TLS records",
                     [&](PlcService& p) { p.socket().send(oversize_tpkt); },
                     {"TPKT", "65535"}});
  }
  for (const Case& k : cases) {
    SCOPED_TRACE(k.what);
    TestStore ts;
    TrustedPlcFiles trusted(ts);
    SSL_CTX* ctx = trusted.context.get();
    HostilePlc plc(hostile_then_behave(3, once_up(mode(), ctx, k.hostile), mode(), ctx));
    EventLoop loop;
    Client c(loop.executor(), ts.store(), hostile_config(mode(), plc.port()));
    expect_failures_then_recovery(c, plc, {ch::FailureReason::protocol_error, k.words, true}, 3);
  }
  memory.expect_within(64 * 1024);
}

// s7-secure's clear part: an oversize TPKT, a huge InitSSL reply, an InitSSL reply that never
// ends. Cut off with protocol-error: the PLC speaks the secure protocol, badly (it is not a
// plaintext PLC, so not downgrade-refused).
TEST(HostileS7SecurePeer, HugeLengthsBeforeTlsAreCutOffWithProtocolError) {
  const MemoryBound memory;
  const Bytes oversize_tpkt = Bytes{0x03, 0x00, 0xFF, 0xFF, 0x02, 0xF0, 0x80} + Bytes(1000, 0);
  Bytes huge_init_ssl = ch::encode_init_ssl_response();
  huge_init_ssl[2] = 0xFF;  // announces 65535 bytes of body
  huge_init_ssl[3] = 0xFF;
  const Bytes fragment =
      ch::tpkt_wrap(ch::encode_cotp(ch::CotpData{false, 0, Bytes{0x72, 0x01} + Bytes(998, 0)}));
  const struct {
    const char* what;
    std::function<void(PlcSocket&)> reply;  // instead of the InitSSL reply
    std::vector<std::string> words;
  } cases[] = {
      {"a TPKT of 65535 bytes", [&](PlcSocket& s) { s.send(oversize_tpkt); }, {"TPKT", "65535"}},
      {"an InitSSL reply announcing 65535 bytes",
       [&](PlcSocket& s) { s.send(ch::frame_dt(huge_init_ssl, 1024).front()); },
       {"InitSSL", "65535"}},
      {"an InitSSL reply in endless DT fragments",
       [&](PlcSocket& s) {
         for (int i = 0; i < 1000 && s.send(fragment); ++i) {
         }
       },
       {"bad DT sequence"}},
  };
  for (const auto& k : cases) {
    SCOPED_TRACE(k.what);
    TestStore ts;
    TrustedPlcFiles trusted(ts);
    const auto reply = k.reply;
    HostilePlc plc(hostile_then_behave(
        3,
        [reply](PlcSocket& s) {
          if (!confirm_connect(s, 10s) || !s.read_tpkt(10s)) return;
          reply(s);
          s.hold(20s);
        },
        ch::SecurityMode::s7_secure, trusted.context.get()));
    EventLoop loop;
    Client c(loop.executor(), ts.store(), hostile_config(ch::SecurityMode::s7_secure, plc.port()));
    expect_failures_then_recovery(c, plc, {ch::FailureReason::protocol_error, k.words, false}, 3);
  }
  memory.expect_within(64 * 1024);
}

// ---------------------------------------------------------------------------------------------
// 3. Handshakes that never finish: the attempt ends with timeout within connect_timeout
// (TCP + handshakes + setup), whatever trickles in.

TEST_P(HostilePeer, HandshakeThatNeverFinishesTimesOutWithinTheConnectTimeout) {
  const bool secure = mode() == ch::SecurityMode::s7_secure;
  // The server's first flight, cut short or dripped, after the clear part in s7-secure.
  const auto server_flight = [secure](PlcSocket& s, SSL_CTX* ctx) -> std::optional<Bytes> {
    if (secure && !s7_secure_preamble(s)) return std::nullopt;
    PlcTls tls(s, secure ? ch::SecurityMode::s7_secure : ch::SecurityMode::tls, ctx);
    if (!tls.handshake_step(10s)) return std::nullopt;
    const Bytes flight = tls.take_ciphertext();
    if (!secure) return flight;
    Bytes framed;
    for (const Bytes& dt : ch::frame_dt(flight, 1024)) framed = framed + dt;
    return framed;
  };
  const struct {
    const char* what;
    std::function<void(PlcSocket&, SSL_CTX*)> script;
    std::string phase;
  } cases[] = {
      {"silence after accept", [](PlcSocket& s, SSL_CTX*) { s.hold(30s); },
       secure ? "waiting for the COTP connect confirm" : "in the TLS handshake"},
      {"half a ServerHello",
       [&](PlcSocket& s, SSL_CTX* ctx) {
         const auto flight = server_flight(s, ctx);
         if (!flight) return;
         // The record header and part of the ServerHello (inside a DT in s7-secure).
         const std::size_t part = secure ? 7 + 40 : 40;
         s.send(ch::ByteView(flight->data(), std::min(part, flight->size())));
         s.hold(30s);
       },
       "in the TLS handshake"},
      {"one byte a second",
       [&](PlcSocket& s, SSL_CTX* ctx) {
         const auto flight = server_flight(s, ctx);
         if (!flight) return;
         for (std::size_t i = 0; i < flight->size(); ++i) {
           if (!s.send(ch::ByteView(flight->data() + i, 1)) || s.hold(1s)) return;
         }
       },
       "in the TLS handshake"},
  };
  for (const auto& k : cases) {
    SCOPED_TRACE(k.what);
    TestStore ts;
    TrustedPlcFiles trusted(ts);
    SSL_CTX* ctx = trusted.context.get();
    const auto script = k.script;
    // One hostile attempt per case: each waits out the whole connect timeout, and the other
    // cases here show that repeated failures keep their reason and pacing.
    HostilePlc plc(hostile_then_behave(
        1, [script, ctx](PlcSocket& s) { script(s, ctx); }, mode(), ctx));
    EventLoop loop;
    Client c(loop.executor(), ts.store(), hostile_config(mode(), plc.port()));
    expect_failures_then_recovery(
        c, plc, {ch::FailureReason::timeout, {"no session within 2000 ms", k.phase}, false}, 1);
  }
}

// ---------------------------------------------------------------------------------------------
// 4. Absurd certificates: refused with a reason; nothing unbounded lands in untrusted/.

std::chrono::sys_seconds now_seconds() {
  return std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
}

pki::CertificateSpec spec_for(const std::string& common_name, bool ca, std::uint16_t serial) {
  pki::CertificateSpec spec;
  spec.subject = {{"O", "hostile peers"}, {"CN", common_name}};
  spec.serial = {std::uint8_t(0x10 | serial >> 8), std::uint8_t(serial)};
  spec.not_before = now_seconds() - 1h;
  spec.not_after = now_seconds() + 24h;
  spec.ca = ca;
  if (!ca) spec.ip_addresses = {"127.0.0.1"};
  return spec;
}

// DER of an IA5String of n bytes: the value of a huge (non-critical) extension.
Bytes ia5_string(std::size_t n) {
  Bytes der{0x16};
  if (n < 0x80) {
    der.push_back(std::uint8_t(n));
  } else {
    Bytes length;
    for (std::size_t v = n; v; v >>= 8) length.insert(length.begin(), std::uint8_t(v));
    der.push_back(std::uint8_t(0x80 | length.size()));
    der = der + length;
  }
  return der + Bytes(n, 'A');
}

// What a PLC presents: its leaf and key, the certificates it sends after the leaf, and the root
// to import (none for a self-signed leaf).
struct Presented {
  pki::KeyPtr key;
  pki::CertificatePtr leaf;
  std::vector<pki::CertificatePtr> chain;
  std::string root_pem;
  SslContextPtr context() const {
    std::vector<X509*> sent;
    for (const auto& c : chain) sent.push_back(c.get());
    return plc_context(leaf.get(), sent, key.get());
  }
};

// A chain of `certificates` (leaf and intermediates) under a root.
Presented long_chain(std::size_t certificates) {
  Presented p;
  pki::KeyPtr issuer_key = pki::make_key(pki::KeyKind::ec_p256);
  pki::CertificatePtr issuer = pki::make_certificate(spec_for("hostile root", true, 1),
                                                     issuer_key.get(), nullptr, issuer_key.get());
  p.root_pem = pki::pem_of(issuer.get());
  std::vector<pki::CertificatePtr> intermediates;
  for (std::size_t i = 1; i < certificates; ++i) {
    pki::KeyPtr key = pki::make_key(pki::KeyKind::ec_p256);
    auto c = pki::make_certificate(
        spec_for("hostile intermediate " + std::to_string(i), true, std::uint16_t(i + 1)),
        key.get(), issuer.get(), issuer_key.get());
    intermediates.push_back(std::move(issuer));
    issuer = std::move(c);
    issuer_key = std::move(key);
  }
  intermediates.push_back(std::move(issuer));
  p.key = pki::make_key(pki::KeyKind::ec_p256);
  p.leaf = pki::make_certificate(spec_for("PLC1", false, 0xFFF), p.key.get(),
                                 intermediates.back().get(), issuer_key.get());
  // Sent nearest the leaf first; the root (intermediates[0]) stays home.
  for (std::size_t i = intermediates.size(); i-- > 1;)
    p.chain.push_back(std::move(intermediates[i]));
  return p;
}

// A self-signed leaf carrying an extension of `extension_bytes`.
Presented huge_self_signed(std::size_t extension_bytes) {
  Presented p;
  p.key = pki::make_key(pki::KeyKind::ec_p256);
  pki::CertificateSpec spec = spec_for("PLC1", false, 0x0BB);
  spec.raw_extensions.push_back({NID_netscape_comment, ia5_string(extension_bytes)});
  p.leaf = pki::make_certificate(spec, p.key.get(), nullptr, p.key.get());
  return p;
}

TEST_P(HostilePeer, AbsurdCertificatesAreRefusedAndNothingUnboundedIsQuarantined) {
  const MemoryBound memory;
  const struct {
    const char* what;
    std::function<Presented()> make;
    std::size_t certificates;  // sent, leaf included
    std::size_t der_size;      // of the leaf, at least
    ch::FailureReason reason;
    std::vector<std::string> words;
  } cases[] = {
      {"a chain of 100 certificates",
       [] { return long_chain(100); },
       100,
       0,
       ch::FailureReason::untrusted_certificate,
       {"100 certificates"}},
      {"a certificate of 1 MiB",
       [] { return huge_self_signed(1024 * 1024); },
       1,
       1024 * 1024,
       ch::FailureReason::protocol_error,
       {"excessive message size"}},
      {"a certificate over the store's 64 KiB",
       [] { return huge_self_signed(70 * 1024); },
       1,
       70 * 1024,
       ch::FailureReason::untrusted_certificate,
       {"the limit is 65536"}},
  };
  for (const auto& k : cases) {
    SCOPED_TRACE(k.what);
    TestStore ts;
    TrustedPlcFiles trusted(ts);
    const Presented presented = k.make();
    ASSERT_GE(std::size_t(i2d_X509(presented.leaf.get(), nullptr)), k.der_size);
    ASSERT_EQ(presented.chain.size() + 1, k.certificates);
    if (!presented.root_pem.empty()) {
      write_file(ts.layout().roots / "long-chain-root.pem", presented.root_pem);
      ts.store().reload();
    }
    const SslContextPtr hostile = presented.context();
    SSL_CTX* hostile_ctx = hostile.get();
    const ch::SecurityMode m = mode();
    HostilePlc plc(hostile_then_behave(
        2,
        [hostile_ctx, m](PlcSocket& s) {
          PlcService p(s, m, hostile_ctx);
          if (p.handshake(10s)) p.until_up(10s);
          s.hold(20s);
        },
        m, trusted.context.get()));
    EventLoop loop;
    Client c(loop.executor(), ts.store(), hostile_config(mode(), plc.port()));
    expect_failures_then_recovery(c, plc, {k.reason, k.words, false}, 2);

    // Whatever is in untrusted/ is bounded: nothing of these certificates, nothing over the
    // store's certificate size limit.
    std::size_t files = 0;
    for (const auto& entry : fs::directory_iterator(ts.layout().untrusted())) {
      ++files;
      EXPECT_LE(entry.file_size(), cs::kMaxCertificateFileSize) << entry.path();
    }
    EXPECT_EQ(files, 0u);
  }
  memory.expect_within(96 * 1024);
}

// ---------------------------------------------------------------------------------------------
// 5. Renegotiation and KeyUpdate floods: refused or absorbed at bounded cost; either way the
// connection is usable afterwards.

// After the first session came up: either it ended with a reason from `allowed` and the
// connection came up again, or it is still up; either way it serves a read.
void expect_survived_or_reconnected(Client& c, std::initializer_list<ch::FailureReason> allowed,
                                    const char* what) {
  EventRecorder& rec = c.events();
  const auto up = wait_index(rec, is_up, 15s, 0);
  ASSERT_TRUE(up) << history(rec);
  const auto ended = wait_index(rec, is_waiting, 5s, *up + 1);
  if (ended) {
    const ch::ConnectionEvent e = rec.events()[*ended];
    EXPECT_TRUE(std::find(allowed.begin(), allowed.end(), e.reason) != allowed.end())
        << event_text(e);
    EXPECT_FALSE(e.detail.empty());
    std::cout << "[ info     ] " << what << ": the session ended: " << event_text(e) << "\n";
    expect_serves(c, *ended + 1);
  } else {
    std::cout << "[ info     ] " << what << ": the session continued\n";
    expect_serves(c, *up);
    EXPECT_EQ(c.connection().info().sessions, 1u);
  }
}

TEST_P(HostilePeer, RenegotiationRequestedByThePlcIsRefused) {
  TestStore ts;
  TrustedPlcFiles trusted(ts, TLS1_2_VERSION);
  SSL_CTX* ctx = trusted.context.get();
  std::atomic<int> requested{0}, client_hellos{0};
  {
    HostilePlc plc(hostile_then_behave(
        1,
        [&, m = mode()](PlcSocket& s) {
          PlcService p(s, m, ctx);
          if (!p.handshake(10s) || !p.until_up(10s)) return;
          // A HelloRequest: the client may answer with a ClientHello, or refuse.
          if (SSL_renegotiate(p.tls().ssl()) == 1 && SSL_do_handshake(p.tls().ssl()) >= 0) {
            ++requested;
          }
          p.tls().flush();
          p.serve(20s);
          client_hellos += p.tls().client_hellos();
        },
        mode(), ctx));
    EventLoop loop;
    ch::ConnectionConfig config = hostile_config(mode(), plc.port());
    config.allow_tls12 = true;
    Client c(loop.executor(), ts.store(), config);
    ASSERT_TRUE(c.events().wait_state(ch::ConnectionState::up, 15s)) << history(c.events());
    EXPECT_EQ(c.connection().info().tls_version, "TLSv1.2");
    expect_survived_or_reconnected(
        c, {ch::FailureReason::tls_alert, ch::FailureReason::protocol_error}, "renegotiation");
    expect_paced(plc, c.events());
    EXPECT_TRUE(plc.problems().empty()) << plc.problems().front();
  }  // every script has ended
  EXPECT_EQ(requested.load(), 1) << "the PLC could not ask for a renegotiation";
  EXPECT_EQ(client_hellos.load(), 1) << "the connection renegotiated";
}

// A KeyUpdate flood (each asking for one back, no data between them) ends the session with
// protocol-error once the PLC sent more than 16 in a row; a few KeyUpdates between jobs are
// normal and never end one.
TEST_P(HostilePeer, KeyUpdateFloodIsCutOffWithProtocolError) {
  TestStore ts;
  TrustedPlcFiles trusted(ts);
  SSL_CTX* ctx = trusted.context.get();
  constexpr int kFlood = 1000;
  std::atomic<int> sent{0}, answered{0};
  {
    HostilePlc plc(hostile_then_behave(
        2,
        [&, m = mode()](PlcSocket& s) {
          PlcService p(s, m, ctx);
          if (!p.handshake(10s) || !p.until_up(10s) || !p.answer_next(10s)) return;
          for (int i = 0; i < kFlood; ++i) {
            if (SSL_key_update(p.tls().ssl(), SSL_KEY_UPDATE_REQUESTED) != 1 ||
                SSL_do_handshake(p.tls().ssl()) != 1 || !p.tls().flush()) {
              break;
            }
            ++sent;
          }
          s.hold(20s);
          answered += p.tls().key_updates();
        },
        mode(), ctx));
    EventLoop loop;
    Client c(loop.executor(), ts.store(), hostile_config(mode(), plc.port()));
    expect_failures_then_recovery(
        c, plc, {ch::FailureReason::protocol_error, {"KeyUpdate flood"}, true}, 2);
  }  // every script has ended
  std::cout << "[ info     ] the PLC sent " << sent.load()
            << " KeyUpdates, the connection answered " << answered.load() << "\n";
  EXPECT_GT(sent.load(), 16);
  // Cut off: it answered at most the 16 it takes, per hostile session.
  EXPECT_LE(answered.load(), 2 * 17);
}

// KeyUpdates between jobs (a PLC updating its keys now and then) are answered and the session
// goes on.
TEST_P(HostilePeer, KeyUpdatesBetweenJobsAreAnswered) {
  TestStore ts;
  TrustedPlcFiles trusted(ts);
  SSL_CTX* ctx = trusted.context.get();
  std::atomic<int> answered{0};
  {
    HostilePlc plc([&, m = mode()](PlcSocket& s, std::size_t) {
      PlcService p(s, m, ctx);
      if (!p.handshake(10s) || !p.until_up(10s)) return;
      for (int i = 0; i < 40; ++i) {
        if (!p.answer_next(10s)) return;
        if (SSL_key_update(p.tls().ssl(), SSL_KEY_UPDATE_REQUESTED) != 1 ||
            SSL_do_handshake(p.tls().ssl()) != 1 || !p.tls().flush()) {
          return;
        }
      }
      p.serve(20s);
      answered += p.tls().key_updates();
    });
    EventLoop loop;
    Client c(loop.executor(), ts.store(), hostile_config(mode(), plc.port()));
    const auto up = wait_index(c.events(), is_up, 15s, 0);
    ASSERT_TRUE(up) << history(c.events());
    for (int i = 0; i < 45; ++i) expect_serves(c, *up);
    EXPECT_FALSE(wait_index(c.events(), is_waiting, 100ms, *up + 1)) << history(c.events());
    EXPECT_EQ(c.connection().info().sessions, 1u);
  }
  EXPECT_GE(answered.load(), 40);
}

INSTANTIATE_TEST_SUITE_P(SecureModes, HostilePeer,
                         ::testing::Values(ch::SecurityMode::tls, ch::SecurityMode::s7_secure),
                         [](const ::testing::TestParamInfo<ch::SecurityMode>& info) {
                           return std::string(info.param == ch::SecurityMode::tls ? "tls"
                                                                                  : "s7_secure");
                         });
INSTANTIATE_TEST_SUITE_P(AllModes, HostilePeerAnyMode,
                         ::testing::Values(ch::SecurityMode::none, ch::SecurityMode::tls,
                                           ch::SecurityMode::s7_secure),
                         [](const ::testing::TestParamInfo<ch::SecurityMode>& info) {
                           std::string name = ch::security_mode_name(info.param);
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

}  // namespace
