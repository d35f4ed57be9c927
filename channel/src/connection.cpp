// One PLC connection: the state machine of channel.h, section Connections.
//
// Everything below runs on the connection's strand. An attempt is numbered (generation_); each
// asynchronous step checks that its attempt is still the current one, so a late completion of
// an abandoned attempt changes nothing. User code (event handlers, job callbacks) is called
// under user_mutex_, which the destructor takes too: once ~Connection returns, no user code
// of that connection runs any more.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/signals2/signal.hpp>
#include <deque>
#include <map>
#include <mutex>
#include <random>

#include "channel/channel.h"

namespace scada::channel {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

const char* security_mode_name(SecurityMode mode) {
  switch (mode) {
    case SecurityMode::none:
      return "none";
    case SecurityMode::tls:
      return "tls";
    case SecurityMode::s7_secure:
      return "s7-secure";
  }
  return "?";
}

std::optional<SecurityMode> parse_security_mode(std::string_view text) {
  for (SecurityMode m : {SecurityMode::none, SecurityMode::tls, SecurityMode::s7_secure}) {
    if (text == security_mode_name(m)) return m;
  }
  return std::nullopt;
}

const char* failure_reason_name(FailureReason reason) {
  switch (reason) {
    case FailureReason::none:
      return "none";
    case FailureReason::untrusted_certificate:
      return "untrusted-certificate";
    case FailureReason::unknown_ca:
      return "unknown-ca";
    case FailureReason::expired:
      return "expired";
    case FailureReason::not_yet_valid:
      return "not-yet-valid";
    case FailureReason::revoked:
      return "revoked";
    case FailureReason::identity_mismatch:
      return "identity-mismatch";
    case FailureReason::psk_mismatch:
      return "psk-mismatch";
    case FailureReason::tls_alert:
      return "tls-alert";
    case FailureReason::timeout:
      return "timeout";
    case FailureReason::refused:
      return "refused";
    case FailureReason::protocol_error:
      return "protocol-error";
    case FailureReason::downgrade_refused:
      return "downgrade-refused";
    case FailureReason::config_error:
      return "config-error";
    case FailureReason::stopped:
      return "stopped";
  }
  return "?";
}

FailureReason failure_reason_of(certstore::Verdict verdict) {
  using certstore::Verdict;
  switch (verdict) {
    case Verdict::accepted:
      return FailureReason::none;
    case Verdict::untrusted_certificate:
      return FailureReason::untrusted_certificate;
    case Verdict::unknown_ca:
      return FailureReason::unknown_ca;
    case Verdict::expired:
      return FailureReason::expired;
    case Verdict::not_yet_valid:
      return FailureReason::not_yet_valid;
    case Verdict::revoked:
      return FailureReason::revoked;
    case Verdict::identity_mismatch:
      return FailureReason::identity_mismatch;
    // A chain that cannot be trusted for another reason (bad signature, an issuer that is no
    // CA): untrusted; the detail says what is wrong with it.
    case Verdict::bad_certificate:
      return FailureReason::untrusted_certificate;
  }
  return FailureReason::untrusted_certificate;
}

const char* connection_state_name(ConnectionState state) {
  switch (state) {
    case ConnectionState::stopped:
      return "stopped";
    case ConnectionState::connecting:
      return "connecting";
    case ConnectionState::up:
      return "up";
    case ConnectionState::waiting:
      return "waiting";
  }
  return "?";
}

namespace {

constexpr std::size_t kReadBuffer = 8192;
constexpr std::size_t kMaxQueuedJobs = 4096;
constexpr std::size_t kSecureTpdu = 1024;  // TPDU size 0A, asked for in every CR (WIRE.md §5)
// The longest TPKT a PLC may send in clear: one TPDU of the largest size a CR asks for (a CC
// may only lower it). A longer one is refused at its header, instead of waiting for (and
// buffering) up to 64 KiB that a hostile peer announced and may never send.
constexpr std::size_t kMaxWireFrame = kTpktHeaderSize + kSecureTpdu;
constexpr std::size_t kMaxInnerFrame = 8192;

std::string ms_text(milliseconds d) {
  return std::to_string(d.count()) + " ms";
}

// What a file looked like when a context was built from it: a changed file (renewed
// certificate, rotated key) gives a new context for the next handshake.
struct FileStamp {
  std::filesystem::path path;
  std::int64_t mtime_ns = 0, size = -1, inode = 0, mode = 0;  // mode: a chmod counts too
  bool operator==(const FileStamp&) const = default;
};

FileStamp stamp_of(const std::filesystem::path& path) {
  FileStamp s{path};
  struct stat st {};
  if (!path.empty() && ::stat(path.c_str(), &st) == 0) {
    s.mtime_ns = std::int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    s.size = st.st_size;
    s.inode = std::int64_t(st.st_ino);
    s.mode = std::int64_t(st.st_mode);
  }
  return s;
}

void require_private(const std::filesystem::path& key) {
  struct stat st {};
  if (::stat(key.c_str(), &st) != 0) {
    throw std::runtime_error(key.string() +
                             ": cannot read the private key: " + std::strerror(errno));
  }
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    throw std::runtime_error(key.string() +
                             ": the private key is readable by group or others; chmod 600 it");
  }
}

std::string strip_brackets(const std::string& address) {
  if (address.size() >= 2 && address.front() == '[' && address.back() == ']') {
    return address.substr(1, address.size() - 2);
  }
  return address;
}

// One attempt's socket and its write queue. Handlers hold the transport they were started on,
// so a late completion of an old attempt touches only that attempt's socket and buffers.
struct Transport {
  explicit Transport(const asio::strand<asio::any_io_executor>& strand)
      : socket(strand), close_timer(strand) {}
  void close() {
    boost::system::error_code ec;
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
    close_timer.cancel();
  }
  tcp::socket socket;
  asio::steady_timer close_timer;
  std::array<std::uint8_t, kReadBuffer> read_buffer{};
  Bytes writing;         // bytes of the async_write in progress
  Bytes pending;         // bytes waiting for it
  bool closing = false;  // close once the writes are out (orderly end)
};

}  // namespace

struct Connection::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::any_io_executor executor, certstore::CertificateStore& s, ConnectionConfig c)
      : strand(asio::make_strand(executor)),
        store(s),
        config(std::move(c)),
        resolver(strand),
        attempt_timer(strand),
        retry_timer(strand),
        tick_timer(strand),
        key_update_timer(strand),
        wire(kMaxWireFrame),
        inner(kMaxInnerFrame),
        rng(std::random_device{}()) {
    backoff = config.retry_min;
  }

  enum class Phase { idle, resolving, tcp, cotp, init_ssl, tls, setup, up };

  struct Job {
    Pdu pdu;
    JobCallback done;
    Clock::time_point sent;
  };

  asio::strand<asio::any_io_executor> strand;
  certstore::CertificateStore& store;
  const ConnectionConfig config;
  tcp::resolver resolver;
  std::shared_ptr<Transport> transport;
  asio::steady_timer attempt_timer, retry_timer, tick_timer, key_update_timer;

  // User code and the facts other threads read.
  std::recursive_mutex user_mutex;
  bool detached = false;  // ~Connection ran: no more user code
  boost::signals2::signal<void(const ConnectionEvent&)> events;
  boost::signals2::scoped_connection store_subscription;
  mutable std::mutex info_mutex;
  ConnectionInfo facts;

  // Strand state.
  bool running = false;
  ConnectionState state = ConnectionState::stopped;
  std::uint64_t generation = 0;
  Phase phase = Phase::idle;
  std::unique_ptr<TlsEngine> tls;
  bool tls_in_dt = false;       // s7-secure after InitSSL
  bool tls_bytes_seen = false;  // tls mode: the peer has sent something
  TpktReassembler wire;         // TPKT from TCP (none; s7-secure)
  TpktReassembler inner;        // TPKT inside TLS
  CotpReassembler dt_join;      // DT payloads carrying S7comm or InitSSL
  std::size_t tpdu_size = 1024;
  std::uint16_t pdu = 0, amq = 0;
  Clock::time_point tcp_up, last_received;
  std::deque<Job> queued;
  std::map<std::uint16_t, Job> in_flight;
  std::uint16_t last_ref = 0;
  std::size_t peak_in_flight = 0;  // of this session, mirrored into facts when it grows
  milliseconds backoff;
  std::mt19937_64 rng;

  // Trust of the current attempt.
  std::optional<certstore::Decision> decision;
  std::vector<Bytes> peer_chain;
  std::uint64_t decided_under = 0;  // snapshot version of the decision

  // The client context, rebuilt when one of its files changes.
  TlsContextPtr context;
  std::vector<FileStamp> context_files;
  // The last session and what it may be resumed under.
  struct Resumable {
    std::shared_ptr<TlsSession> session;
    TlsContextPtr context;
    std::uint64_t snapshot = 0;
    std::optional<certstore::CertificateInfo> peer;
    std::vector<Bytes> chain;
  };
  std::optional<Resumable> resumable;

  // ---- user code and facts

  template <class F>
  void with_facts(F&& f) {
    std::lock_guard<std::mutex> lock(info_mutex);
    f(facts);
  }

  void emit(ConnectionEvent event) {
    with_facts([&](ConnectionInfo& i) {
      i.state = event.state;
      if (event.state != ConnectionState::up && event.state != ConnectionState::connecting) {
        i.last_reason = event.reason;
        i.last_detail = event.detail;
        i.quarantined = event.quarantined;
      }
    });
    std::lock_guard<std::recursive_mutex> lock(user_mutex);
    if (!detached) events(event);
  }

  void set_state(ConnectionState s, FailureReason reason = FailureReason::none,
                 std::string detail = {}, std::optional<std::filesystem::path> quarantined = {},
                 milliseconds retry_in = milliseconds(0)) {
    state = s;
    emit(ConnectionEvent{s, reason, std::move(detail), std::move(quarantined), retry_in});
  }

  void finish(JobCallback& done, JobResult result) {
    std::lock_guard<std::recursive_mutex> lock(user_mutex);
    if (!detached && done) done(std::move(result));
  }

  // ---- attempts

  void start() {
    if (running) return;
    running = true;
    backoff = config.retry_min;
    begin_attempt();
  }

  void stop() {
    running = false;
    retry_timer.cancel();
    if (phase == Phase::idle) {
      if (state != ConnectionState::stopped) {
        set_state(ConnectionState::stopped, FailureReason::stopped, "stopped");
      }
      return;
    }
    end_attempt(FailureReason::stopped, "stopped", std::nullopt, true);
  }

  void begin_attempt() {
    ++generation;
    phase = Phase::resolving;
    decision.reset();
    peer_chain.clear();
    tls.reset();
    tls_in_dt = false;
    tls_bytes_seen = false;
    wire = TpktReassembler(kMaxWireFrame);
    inner = TpktReassembler(kMaxInnerFrame);
    dt_join = CotpReassembler();
    transport = std::make_shared<Transport>(strand);
    tpdu_size = 1024;
    pdu = amq = 0;
    with_facts([&](ConnectionInfo& i) { ++i.attempts; });
    set_state(ConnectionState::connecting);

    const std::uint64_t gen = generation;
    attempt_timer.expires_after(config.connect_timeout);
    attempt_timer.async_wait([self = shared_from_this(), gen](boost::system::error_code ec) {
      if (ec || gen != self->generation || self->phase == Phase::up) return;
      self->end_attempt(FailureReason::timeout, "no session within " +
                                                    ms_text(self->config.connect_timeout) + " (" +
                                                    self->phase_text() + ")");
    });
    resolver.async_resolve(
        strip_brackets(config.address), std::to_string(config.port),
        [self = shared_from_this(), gen](boost::system::error_code ec,
                                         tcp::resolver::results_type results) {
          if (gen != self->generation) return;
          if (ec) {
            return self->end_attempt(
                FailureReason::refused,
                "cannot resolve '" + self->config.address + "': " + ec.message());
          }
          self->phase = Phase::tcp;
          // The handler holds the transport: the composed connect operation still touches its
          // socket when it completes, also after stop() dropped the attempt.
          auto t = self->transport;
          asio::async_connect(t->socket, results,
                              [self, gen, t](boost::system::error_code ec2, const tcp::endpoint&) {
                                if (gen != self->generation) return;
                                self->on_connected(ec2);
                              });
        });
  }

  std::string phase_text() const {
    switch (phase) {
      case Phase::idle:
        return "idle";
      case Phase::resolving:
        return "resolving the address";
      case Phase::tcp:
        return "waiting for TCP connect";
      case Phase::cotp:
        return "waiting for the COTP connect confirm";
      case Phase::init_ssl:
        return "waiting for the InitSSL reply";
      case Phase::tls:
        return "in the TLS handshake";
      case Phase::setup:
        return "waiting for the setup communication reply";
      case Phase::up:
        return "session up";
    }
    return "?";
  }

  void on_connected(boost::system::error_code ec) {
    if (ec) {
      return end_attempt(FailureReason::refused, "TCP connect to " + config.address + ":" +
                                                     std::to_string(config.port) +
                                                     " failed: " + ec.message());
    }
    set_socket_options();
    tcp_up = Clock::now();
    last_received = tcp_up;
    read_more();
    switch (config.mode) {
      case SecurityMode::none:
        return send_connect_request();
      case SecurityMode::tls:
        if (!start_tls()) return;
        phase = Phase::tls;
        return;
      case SecurityMode::s7_secure:
        return send_connect_request();
    }
  }

  void set_socket_options() {
    boost::system::error_code ec;
    tcp::socket& socket = transport->socket;
    socket.set_option(tcp::no_delay(true), ec);
    socket.set_option(asio::socket_base::keep_alive(true), ec);
    // The kernel's part of dead-peer detection: keepalive probes on an idle socket and a bound
    // on unacknowledged data, both within the configured dead-peer time.
    const int fd = socket.native_handle();
    const int seconds = std::max<int>(1, int(config.dead_peer_timeout.count() / 2000));
    const int interval = 1, count = 2;
    const unsigned user_timeout = unsigned(config.dead_peer_timeout.count());
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &seconds, sizeof seconds);
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
    ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof user_timeout);
  }

  // ---- TLS

  // The context for this handshake, from the files as they are now.
  TlsContextPtr current_context() {
    std::vector<FileStamp> files = {stamp_of(config.own_certificate), stamp_of(config.own_key),
                                    stamp_of(config.psk_file)};
    if (context && files == context_files) return context;
    TlsSettings s;
    s.certificate = config.own_certificate;
    s.key = config.own_key;
    if (!config.own_key.empty()) require_private(config.own_key);
    if (!config.psk_identity.empty() || !config.psk_file.empty()) {
      if (config.psk_identity.empty() || config.psk_file.empty()) {
        throw std::runtime_error("a PSK needs both an identity and a key file");
      }
      s.psk_identity = config.psk_identity;
      s.psk_key = read_psk_file(config.psk_file);
    }
    s.allow_tls12 = config.allow_tls12;
    s.keylog = config.keylog;
    context = make_tls_client_context(s);
    context_files = std::move(files);
    return context;
  }

  certstore::PeerIdentity identity() const {
    return certstore::PeerIdentity{config.name, strip_brackets(config.address), config.plc_name,
                                   config.partner_certificates};
  }

  bool start_tls() {
    TlsContextPtr ctx;
    try {
      ctx = current_context();
    } catch (const std::exception& e) {
      end_attempt(FailureReason::config_error, e.what());
      return false;
    }
    // Resume only under the same context and trust snapshot, before the peer's expiry.
    std::shared_ptr<TlsSession> resume;
    // (An external PSK is cheap already, and offering both would blur which one was used.)
    if (config.resume_sessions && config.psk_identity.empty() && resumable &&
        resumable->context == ctx && resumable->snapshot == store.snapshot()->version() &&
        (!resumable->peer || resumable->peer->valid_at(std::chrono::system_clock::now()))) {
      resume = resumable->session;
    }
    auto verifier = [this](const std::vector<Bytes>& chain) -> std::optional<std::string> {
      peer_chain = chain;
      decided_under = store.snapshot()->version();
      decision = store.decide(chain, identity(), std::chrono::system_clock::now());
      if (decision->ok()) return std::nullopt;
      return decision->detail;
    };
    tls = std::make_unique<TlsEngine>(ctx, false, verifier, strip_brackets(config.address), resume);
    Bytes none;
    if (!tls->pump(none)) {
      end_tls_failure();
      return false;
    }
    flush_tls();
    return true;
  }

  void on_ciphertext(ByteView bytes) {
    tls->feed(bytes);
    Bytes plain;
    const bool was_up = tls->established();
    const bool ok = tls->pump(plain);
    flush_tls();
    if (!ok) return end_tls_failure();
    if (!was_up && tls->established()) on_tls_established();
    if (phase == Phase::idle) return;
    if (!plain.empty()) {
      if (auto e = inner.feed(plain)) {
        return end_attempt(FailureReason::protocol_error, "bad TPKT inside TLS: " + e->to_string());
      }
      Bytes tpdu;
      const std::uint64_t gen = generation;
      while (gen == generation && inner.next(tpdu)) on_session_tpdu(tpdu);
      if (gen != generation) return;
    }
    if (tls->peer_closed()) {
      end_attempt(phase == Phase::up ? FailureReason::protocol_error : FailureReason::refused,
                  "the PLC closed the TLS session (close_notify)");
    }
  }

  void end_tls_failure() {
    if (decision && !decision->ok()) {
      return end_attempt(failure_reason_of(decision->verdict), decision->detail,
                         decision->quarantined);
    }
    const std::string& alert = tls->peer_alert();
    if (alert.empty()) return end_attempt(FailureReason::protocol_error, tls->error());
    // In TLS 1.3 the client's handshake is complete when it sends Finished; the PLC judges the
    // client's certificate (or its absence) after that. So any alert before the session is up
    // belongs to the handshake.
    if (phase != Phase::up) {
      const bool psk = !config.psk_identity.empty();
      if (psk && peer_chain.empty()) {
        return end_attempt(FailureReason::psk_mismatch,
                           "the PLC refused the pre-shared key of identity '" +
                               config.psk_identity + "' (TLS alert: " + alert +
                               "); check that both sides hold the same key");
      }
      std::string hint;
      switch (tls->peer_alert_code()) {
        case 116:  // certificate_required
        case 40:   // handshake_failure
          if (config.own_certificate.empty()) {
            hint =
                "; the PLC requires a client certificate: configure this side's own "
                "certificate and key";
            break;
          }
          [[fallthrough]];
        case 42:  // bad_certificate
        case 43:  // unsupported_certificate
        case 44:  // certificate_revoked
        case 45:  // certificate_expired
        case 46:  // certificate_unknown
        case 48:  // unknown_ca
          if (!config.own_certificate.empty()) {
            hint = "; the PLC does not accept this side's certificate (" +
                   config.own_certificate.string() +
                   "): is it issued by a CA the PLC trusts, and valid?";
          }
          break;
        default:
          break;
      }
      return end_attempt(FailureReason::tls_alert,
                         "the PLC ended the TLS handshake with the alert '" + alert + "'" + hint);
    }
    end_attempt(FailureReason::tls_alert,
                "the PLC ended the TLS session with the alert '" + alert + "'");
  }

  void on_tls_established() {
    std::optional<certstore::CertificateInfo> peer;
    if (tls->resumed() && resumable) {
      peer = resumable->peer;
      peer_chain = resumable->chain;
      decided_under = resumable->snapshot;
    } else if (decision) {
      peer = decision->peer;
    } else {
      decided_under = store.snapshot()->version();
    }
    if (!tls->used_psk() && !decision && !tls->resumed()) {
      // A certificate handshake that never reached the verifier: impossible with our context,
      // and never acceptable (fail closed).
      return end_attempt(FailureReason::untrusted_certificate,
                         "the TLS session came up without a trust decision; refused");
    }
    const Bytes own = tls->own_certificate();
    with_facts([&](ConnectionInfo& i) {
      i.tls_version = tls->version();
      i.cipher = tls->cipher();
      i.group = tls->group();
      i.resumed = tls->resumed();
      i.used_psk = tls->used_psk() && !tls->resumed();
      i.peer_certificate = peer;
      i.own_certificate_sha256 = own.empty() ? "" : certstore::fingerprint_sha256(own);
      i.trust_snapshot = decided_under;
    });
    if (config.mode == SecurityMode::tls) {
      send_connect_request();
    } else {
      send_setup();
    }
  }

  void flush_tls() {
    if (!tls) return;
    Bytes cipher = tls->take_output();
    if (cipher.empty()) return;
    if (!tls_in_dt) return write_raw(cipher);
    for (const Bytes& dt : frame_dt(cipher, tpdu_size)) write_raw(dt);
  }

  // ---- COTP, InitSSL, setup

  void send_connect_request() {
    CotpConnect cr;
    cr.src_ref = 0x0001;
    if (config.mode == SecurityMode::s7_secure) {
      cr.tpdu_size_code = 0x0A;
      cr.calling = Tsap::from_u16(0x0600);
      cr.called = Tsap::from_text("SIMATIC-ROOT-HMI");
    } else {
      cr.tpdu_size_code = 0x0A;
      cr.calling = config.local_tsap.value_or(Tsap::from_u16(0x0100));
      cr.called = config.remote_tsap.value_or(
          Tsap::remote(config.connection_type, config.rack, config.slot));
    }
    phase = Phase::cotp;
    send_frame(tpkt_wrap(encode_cotp(cr)));
  }

  void send_setup() {
    Pdu setup{Header{Rosctr::job}, SetupCommunication{config.amq, config.amq, config.pdu_size}};
    setup.header.pdu_ref = next_ref();
    phase = Phase::setup;
    send_pdu(setup);
  }

  // ---- bytes in

  void read_more() {
    const std::uint64_t gen = generation;
    auto t = transport;
    t->socket.async_read_some(
        asio::buffer(t->read_buffer),
        [self = shared_from_this(), gen, t](boost::system::error_code ec, std::size_t n) {
          if (gen != self->generation) return;
          if (ec) return self->on_read_error(ec);
          self->on_bytes(ByteView(t->read_buffer.data(), n));
          if (gen == self->generation) self->read_more();
        });
  }

  void on_read_error(boost::system::error_code ec) {
    const bool eof = ec == asio::error::eof;
    const std::string what =
        eof ? "the PLC closed the connection" : "the connection failed: " + ec.message();
    if (phase == Phase::up) {
      return end_attempt(
          ec == asio::error::timed_out ? FailureReason::timeout : FailureReason::protocol_error,
          what);
    }
    if (config.mode == SecurityMode::tls && phase == Phase::tls && !tls_bytes_seen) {
      return end_attempt(FailureReason::refused,
                         what +
                             " during the TLS handshake without answering it: is it a TLS "
                             "endpoint? A secure connection never falls back to plaintext");
    }
    end_attempt(FailureReason::refused, what + " (" + phase_text() + ")");
  }

  void on_bytes(ByteView bytes) {
    last_received = Clock::now();
    if (config.mode == SecurityMode::tls) {
      if (!tls_bytes_seen && !bytes.empty() && bytes[0] == 0x03) {
        return end_attempt(FailureReason::downgrade_refused,
                           "the PLC answered the TLS handshake with plain ISO-on-TCP; a secure "
                           "connection never falls back to plaintext");
      }
      tls_bytes_seen = true;
      return on_ciphertext(bytes);
    }
    if (auto e = wire.feed(bytes)) {
      return end_attempt(FailureReason::protocol_error, "bad TPKT from the PLC: " + e->to_string());
    }
    Bytes tpdu;
    const std::uint64_t gen = generation;
    while (gen == generation && wire.next(tpdu)) {
      if (!tls_in_dt) {
        on_session_tpdu(tpdu);
        continue;
      }
      // s7-secure after InitSSL: every DT payload is part of the TLS byte stream.
      auto cotp = decode_cotp(tpdu);
      if (!cotp) {
        return end_attempt(FailureReason::protocol_error,
                           "bad COTP around TLS: " + cotp.error().to_string());
      }
      auto* dt = std::get_if<CotpData>(&cotp.value());
      if (!dt) return on_disconnect_tpdu(cotp.value());
      on_ciphertext(dt->payload);
    }
  }

  void on_disconnect_tpdu(const CotpTpdu& tpdu) {
    std::string what = std::string("the PLC sent COTP ") + cotp_name(tpdu);
    if (auto* dr = std::get_if<CotpDisconnect>(&tpdu); dr && !dr->confirm) {
      what += " (reason " + std::to_string(dr->reason) + ")";
    }
    end_attempt(phase == Phase::up ? FailureReason::protocol_error : FailureReason::refused,
                what + " " + (phase == Phase::up ? "and ended the session" : phase_text()));
  }

  void on_session_tpdu(const Bytes& tpdu) {
    auto cotp = decode_cotp(tpdu);
    if (!cotp) {
      return end_attempt(FailureReason::protocol_error,
                         "bad COTP from the PLC: " + cotp.error().to_string());
    }
    if (auto* cc = std::get_if<CotpConnect>(&cotp.value())) {
      if (!cc->confirm || phase != Phase::cotp) {
        return end_attempt(
            FailureReason::protocol_error,
            std::string("unexpected COTP ") + cotp_name(cotp.value()) + " (" + phase_text() + ")");
      }
      tpdu_size = std::min<std::size_t>(cc->tpdu_size(), kSecureTpdu);
      if (config.mode == SecurityMode::s7_secure) {
        phase = Phase::init_ssl;
        for (const Bytes& dt : frame_dt(encode_init_ssl_request(), tpdu_size)) send_frame(dt);
        return;
      }
      return send_setup();
    }
    auto* dt = std::get_if<CotpData>(&cotp.value());
    if (!dt) return on_disconnect_tpdu(cotp.value());
    auto joined = dt_join.add(std::move(*dt));
    if (!joined) {
      return end_attempt(FailureReason::protocol_error,
                         "bad DT sequence: " + joined.error().to_string());
    }
    if (!joined.value()) return;
    const Bytes& payload = *joined.value();
    if (phase == Phase::init_ssl) return on_init_ssl_reply(payload);
    on_s7(payload);
  }

  void on_init_ssl_reply(const Bytes& payload) {
    auto reply = decode_init_ssl(payload);
    if (!reply) {
      // A frame of the secure protocol (72 01 ...) that does not decode comes from a PLC that
      // speaks it, badly: not a downgrade. Anything else is no secure PLC at all.
      if (payload.size() >= 2 && payload[0] == 0x72 && payload[1] == 0x01) {
        return end_attempt(FailureReason::protocol_error,
                           "malformed InitSSL reply from the PLC: " + reply.error().to_string());
      }
      return end_attempt(FailureReason::downgrade_refused,
                         "the PLC did not answer InitSSL as a secure PLC does (" +
                             reply.error().to_string() +
                             "); a secure connection never falls back to plaintext");
    }
    if (!reply->accepted()) {
      char code[8];
      std::snprintf(code, sizeof code, "%04X", reply->function);
      return end_attempt(FailureReason::downgrade_refused,
                         std::string("the PLC does not offer secure communication (InitSSL "
                                     "answered with function 0x") +
                             code + ", return value " + std::to_string(reply->return_value) +
                             "); a secure connection never falls back to plaintext");
    }
    tls_in_dt = true;
    phase = Phase::tls;
    start_tls();
  }

  void on_s7(const Bytes& bytes) {
    auto decoded = decode_s7(bytes);
    if (!decoded) {
      return end_attempt(FailureReason::protocol_error,
                         "bad S7comm PDU from the PLC: " + decoded.error().to_string());
    }
    Pdu& reply = decoded.value();
    if (reply.header.rosctr == Rosctr::job) {
      return end_attempt(FailureReason::protocol_error, "the PLC sent a Job PDU to the client");
    }
    if (phase == Phase::setup) return on_setup_reply(reply);
    auto it = in_flight.find(reply.header.pdu_ref);
    if (it == in_flight.end()) {
      return end_attempt(FailureReason::protocol_error, "a reply with PDU reference " +
                                                            std::to_string(reply.header.pdu_ref) +
                                                            " that no job is waiting for");
    }
    Job job = std::move(it->second);
    in_flight.erase(it);
    const std::uint64_t gen = generation;
    finish(job.done, std::move(reply));
    if (gen == generation) send_queued();
  }

  void on_setup_reply(const Pdu& reply) {
    const auto* setup = std::get_if<SetupCommunication>(&reply.body);
    if (reply.header.rosctr != Rosctr::ack_data || !setup || reply.header.error() != 0) {
      return end_attempt(
          FailureReason::protocol_error,
          "the PLC refused setup communication" +
              (reply.header.error() ? ": " + s7_error_text(reply.header.error()) : std::string()));
    }
    if (setup->pdu_size < 64 || setup->amq_calling == 0) {
      return end_attempt(FailureReason::protocol_error,
                         "the PLC granted an unusable setup (PDU " +
                             std::to_string(setup->pdu_size) + ", AmQ " +
                             std::to_string(setup->amq_calling) + ")");
    }
    // The trust may have changed while the handshake ran (a CRL landed after the decision):
    // the session comes up only if the current snapshot accepts the PLC's certificate too.
    if (!peer_chain.empty()) {
      const auto snap = store.snapshot();
      if (snap->version() != decided_under) {
        const certstore::Decision d =
            snap->verify(peer_chain, identity(), std::chrono::system_clock::now());
        if (!d.ok()) {
          resumable.reset();
          return end_attempt(failure_reason_of(d.verdict),
                             "the trust changed during the handshake: " + d.detail, d.quarantined,
                             true);
        }
        decided_under = snap->version();
        with_facts([&](ConnectionInfo& i) { i.trust_snapshot = decided_under; });
      }
    }
    pdu = std::min(setup->pdu_size, config.pdu_size);
    amq = std::max<std::uint16_t>(1, std::min(setup->amq_calling, config.amq));
    phase = Phase::up;
    peak_in_flight = 0;
    attempt_timer.cancel();
    backoff = config.retry_min;
    const auto handshake =
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - tcp_up);
    if (tls && config.resume_sessions) {
      if (auto session = tls->resumable_session()) {
        std::optional<certstore::CertificateInfo> peer;
        with_facts([&](ConnectionInfo& i) { peer = i.peer_certificate; });
        resumable = Resumable{session, context, decided_under, peer, peer_chain};
      }
    }
    with_facts([&](ConnectionInfo& i) {
      i.pdu = pdu;
      i.amq = amq;
      i.tpdu_size = tpdu_size;
      i.handshake_time = handshake;
      i.key_updates = 0;
      i.peak_jobs_in_flight = 0;
      ++i.sessions;
    });
    schedule_tick();
    schedule_key_update();
    set_state(ConnectionState::up);
  }

  // ---- jobs

  std::uint16_t next_ref() {
    do {
      ++last_ref;
    } while (last_ref == 0 || in_flight.count(last_ref));
    return last_ref;
  }

  void submit(Pdu job, JobCallback done) {
    if (phase != Phase::up) {
      ConnectionInfo i = snapshot_facts();
      const FailureReason reason =
          i.last_reason == FailureReason::none ? FailureReason::stopped : i.last_reason;
      const std::string detail =
          state == ConnectionState::connecting
              ? "not connected: the connection is being established"
              : "not connected" + (i.last_detail.empty() ? "" : ": " + i.last_detail);
      return finish(done, JobError{reason, detail});
    }
    if (queued.size() >= kMaxQueuedJobs) {
      return finish(done, JobError{FailureReason::protocol_error,
                                   "too many jobs waiting (" + std::to_string(kMaxQueuedJobs) +
                                       "); the PLC does not keep up"});
    }
    queued.push_back(Job{std::move(job), std::move(done), {}});
    send_queued();
  }

  void send_queued() {
    while (phase == Phase::up && in_flight.size() < amq && !queued.empty()) {
      Job job = std::move(queued.front());
      queued.pop_front();
      job.pdu.header.pdu_ref = next_ref();
      Bytes bytes = encode_s7(job.pdu);
      if (bytes.size() > pdu) {
        finish(job.done,
               JobError{FailureReason::protocol_error,
                        "the job is " + std::to_string(bytes.size()) +
                            " bytes, more than the negotiated PDU of " + std::to_string(pdu)});
        continue;
      }
      job.sent = Clock::now();
      const std::uint16_t ref = job.pdu.header.pdu_ref;
      in_flight.emplace(ref, std::move(job));
      if (in_flight.size() > peak_in_flight) {
        peak_in_flight = in_flight.size();
        with_facts([&](ConnectionInfo& i) { i.peak_jobs_in_flight = peak_in_flight; });
      }
      send_s7_bytes(bytes);
    }
  }

  void send_pdu(const Pdu& p) { send_s7_bytes(encode_s7(p)); }

  void send_s7_bytes(const Bytes& bytes) {
    for (const Bytes& frame : frame_dt(bytes, tpdu_size)) send_frame(frame);
  }

  // One TPKT frame of the session layer: in clear (none; s7-secure before TLS) or into TLS.
  void send_frame(const Bytes& frame) {
    if (tls && tls->established()) {
      if (!tls->write(frame)) return end_tls_failure();
      return flush_tls();
    }
    write_raw(frame);
  }

  // ---- bytes out

  void write_raw(const Bytes& bytes) {
    if (bytes.empty() || phase == Phase::idle) return;
    Transport& t = *transport;
    t.pending.insert(t.pending.end(), bytes.begin(), bytes.end());
    if (t.writing.empty()) write_next(transport);
  }

  // Sends everything queued on t in one write (replies of several jobs, TLS records).
  void write_next(const std::shared_ptr<Transport>& t) {
    t->writing.swap(t->pending);
    t->pending.clear();
    const std::uint64_t gen = generation;
    asio::async_write(
        t->socket, asio::buffer(t->writing),
        [self = shared_from_this(), gen, t](boost::system::error_code ec, std::size_t) {
          t->writing.clear();
          if (t->closing) {
            if (!ec && !t->pending.empty()) return self->write_next(t);
            return t->close();
          }
          if (gen != self->generation) return;
          if (ec) {
            return self->end_attempt(FailureReason::protocol_error,
                                     "sending to the PLC failed: " + ec.message());
          }
          if (!t->pending.empty()) self->write_next(t);
        });
  }

  // ---- timers

  void schedule_tick() {
    const milliseconds period = std::max(milliseconds(10), config.dead_peer_timeout / 10);
    const std::uint64_t gen = generation;
    tick_timer.expires_after(period);
    tick_timer.async_wait([self = shared_from_this(), gen](boost::system::error_code ec) {
      if (ec || gen != self->generation) return;
      self->on_tick();
      if (gen == self->generation) self->schedule_tick();
    });
  }

  // Dead peer: nothing received for dead_peer_timeout while a job waits. Checked every tenth
  // of the bound against 90% of it, so the session ends within the bound of the last byte.
  void on_tick() {
    const auto now = Clock::now();
    const auto silent = now - last_received;
    const auto bound = config.dead_peer_timeout;
    if (!in_flight.empty() && silent + bound / 10 >= bound) {
      return end_attempt(FailureReason::timeout,
                         "nothing received from the PLC for " +
                             ms_text(std::chrono::duration_cast<milliseconds>(silent)) +
                             " while a job was waiting (dead peer)");
    }
    // An idle session asks the CPU's state now and then, so a silent peer is noticed too.
    if (in_flight.empty() && queued.empty() && silent >= bound / 3) {
      submit(szl_request(0, 0, SzlRequest{0x0424, 0}), {});
    }
  }

  void schedule_key_update() {
    if (!tls || config.key_update_interval.count() <= 0) return;
    const std::uint64_t gen = generation;
    key_update_timer.expires_after(config.key_update_interval);
    key_update_timer.async_wait([self = shared_from_this(), gen](boost::system::error_code ec) {
      if (ec || gen != self->generation || !self->tls) return;
      if (self->tls->key_update()) {
        self->flush_tls();
        self->with_facts([](ConnectionInfo& i) { ++i.key_updates; });
      }
      self->schedule_key_update();
    });
  }

  // ---- the end of an attempt or session

  void end_attempt(FailureReason reason, std::string detail,
                   std::optional<std::filesystem::path> quarantined = std::nullopt,
                   bool orderly = false) {
    if (phase == Phase::idle) return;
    ++generation;
    phase = Phase::idle;
    attempt_timer.cancel();
    tick_timer.cancel();
    key_update_timer.cancel();
    resolver.cancel();
    // An orderly end says so: TLS close_notify, then TCP FIN once it is out (bounded).
    std::shared_ptr<Transport> t = std::move(transport);
    if (t && orderly && tls && tls->established()) {
      tls->shutdown();
      t->closing = true;
      append_tls_output(*t);
      if (t->writing.empty()) write_next(t);
      t->close_timer.expires_after(milliseconds(1000));
      t->close_timer.async_wait([t](boost::system::error_code ec) {
        if (!ec) t->close();
      });
    } else if (t) {
      t->close();
    }
    tls.reset();
    fail_jobs(reason, detail);
    if (running && config.reconnect) {
      const milliseconds delay = jittered(backoff);
      backoff = std::min(config.retry_max, backoff * 2);
      set_state(ConnectionState::waiting, reason, std::move(detail), std::move(quarantined), delay);
      const std::uint64_t gen = generation;
      retry_timer.expires_after(delay);
      retry_timer.async_wait([self = shared_from_this(), gen](boost::system::error_code ec) {
        if (ec || gen != self->generation || !self->running) return;
        self->begin_attempt();
      });
    } else {
      running = false;
      set_state(ConnectionState::stopped, reason, std::move(detail), std::move(quarantined));
    }
  }

  // The TLS output (close_notify) queued on t, even though the attempt has ended.
  void append_tls_output(Transport& t) {
    Bytes cipher = tls->take_output();
    if (!tls_in_dt) {
      t.pending.insert(t.pending.end(), cipher.begin(), cipher.end());
      return;
    }
    for (const Bytes& dt : frame_dt(cipher, tpdu_size)) {
      t.pending.insert(t.pending.end(), dt.begin(), dt.end());
    }
  }

  void fail_jobs(FailureReason reason, const std::string& detail) {
    std::map<std::uint16_t, Job> flying;
    flying.swap(in_flight);
    std::deque<Job> waiting;
    waiting.swap(queued);
    const std::string why = "the session ended: " + detail;
    // Jobs on the wire may have been carried out by the PLC; queued ones never left.
    for (auto& [ref, job] : flying) finish(job.done, JobError{reason, why, true});
    for (auto& job : waiting) finish(job.done, JobError{reason, why});
  }

  milliseconds jittered(milliseconds base) {
    // "Equal jitter": half the delay fixed, half random, so a plant's reconnect storm spreads.
    std::uniform_int_distribution<std::int64_t> half(0,
                                                     std::max<std::int64_t>(0, base.count() / 2));
    return milliseconds(base.count() - base.count() / 2 + half(rng));
  }

  // A new trust snapshot: re-check the live session; end a wait at once.
  void on_snapshot_changed() {
    if (phase == Phase::up) {
      if (peer_chain.empty()) return;  // PSK session: no certificate to re-check
      const auto snap = store.snapshot();
      if (snap->version() == decided_under) return;
      const certstore::Decision d =
          snap->verify(peer_chain, identity(), std::chrono::system_clock::now(), true);
      if (!d.ok()) {
        resumable.reset();
        return end_attempt(failure_reason_of(d.verdict),
                           "the live session was closed after a trust change: " + d.detail,
                           std::nullopt, true);
      }
      decided_under = snap->version();
      with_facts([&](ConnectionInfo& i) { i.trust_snapshot = decided_under; });
      return;
    }
    if (running && state == ConnectionState::waiting) {
      retry_timer.cancel();
      begin_attempt();
    }
  }

  ConnectionInfo snapshot_facts() const {
    std::lock_guard<std::mutex> lock(info_mutex);
    return facts;
  }
};

// ---- Connection

Connection::Connection(asio::any_io_executor executor, certstore::CertificateStore& store,
                       ConnectionConfig config)
    : impl_(std::make_shared<Impl>(std::move(executor), store, std::move(config))) {
  std::weak_ptr<Impl> weak = impl_;
  impl_->store_subscription = store.subscribe([weak](const certstore::StoreEvent& e) {
    if (e.kind != certstore::StoreEvent::Kind::snapshot_changed) return;
    if (auto self = weak.lock()) {
      asio::post(self->strand, [self] { self->on_snapshot_changed(); });
    }
  });
}

Connection::~Connection() {
  impl_->store_subscription.disconnect();
  {
    std::lock_guard<std::recursive_mutex> lock(impl_->user_mutex);
    impl_->detached = true;
    impl_->events.disconnect_all_slots();
  }
  asio::post(impl_->strand, [self = impl_] { self->stop(); });
}

void Connection::start() {
  asio::post(impl_->strand, [self = impl_] { self->start(); });
}

void Connection::stop() {
  asio::post(impl_->strand, [self = impl_] { self->stop(); });
}

void Connection::submit(Pdu job, JobCallback done) {
  asio::post(impl_->strand, [self = impl_, job = std::move(job), done = std::move(done)]() mutable {
    self->submit(std::move(job), std::move(done));
  });
}

void Connection::read(std::vector<VarItem> items, JobCallback done) {
  submit(Pdu{Header{Rosctr::job}, ReadVarRequest{std::move(items)}}, std::move(done));
}

void Connection::write(std::vector<VarItem> items, std::vector<DataItem> data, JobCallback done) {
  submit(Pdu{Header{Rosctr::job}, WriteVarRequest{std::move(items), std::move(data)}},
         std::move(done));
}

void Connection::read_szl(SzlRequest request, std::function<void(SzlResult)> done) {
  struct Reader : std::enable_shared_from_this<Reader> {
    std::weak_ptr<Connection::Impl> weak;
    std::function<void(SzlResult)> done;
    SzlAssembler assembler;
    void on_piece(JobResult r) {
      if (auto* e = std::get_if<JobError>(&r)) return done(*e);
      const Pdu& p = std::get<Pdu>(r);
      const auto* ud = std::get_if<Userdata>(&p.body);
      if (!ud) {
        return done(JobError{FailureReason::protocol_error,
                             "the PLC answered an SZL read with something else"});
      }
      if (ud->param.error != 0 || ud->data.return_code != 0xFF) {
        return done(JobError{FailureReason::protocol_error,
                             "the PLC refused the SZL read: " +
                                 (ud->param.error ? s7_error_text(ud->param.error)
                                                  : return_code_text(ud->data.return_code))});
      }
      auto joined = assembler.add(*ud);
      if (!joined) {
        return done(JobError{FailureReason::protocol_error,
                             "bad SZL answer: " + joined.error().to_string()});
      }
      if (joined.value()) return done(std::move(*joined.value()));
      auto self = weak.lock();
      if (!self) return done(JobError{FailureReason::stopped, "the connection is gone"});
      self->submit(szl_continue(0, ud->param),
                   [me = shared_from_this()](JobResult next) { me->on_piece(std::move(next)); });
    }
  };
  auto reader = std::make_shared<Reader>();
  reader->weak = impl_;
  reader->done = std::move(done);
  submit(szl_request(0, 0, request), [reader](JobResult r) { reader->on_piece(std::move(r)); });
}

ConnectionInfo Connection::info() const {
  return impl_->snapshot_facts();
}

const ConnectionConfig& Connection::config() const {
  return impl_->config;
}

boost::signals2::connection Connection::subscribe(
    std::function<void(const ConnectionEvent&)> handler) {
  std::lock_guard<std::recursive_mutex> lock(impl_->user_mutex);
  return impl_->events.connect(std::move(handler));
}

}  // namespace scada::channel
