#include "hostile_plc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "../support/loopback_listener.h"

namespace scada::test {

namespace ch = channel;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

// Waits are cut into slices so that a stopping server ends every script quickly.
constexpr milliseconds kSlice{20};

milliseconds left_until(Clock::time_point deadline) {
  return std::max(0ms, std::chrono::duration_cast<milliseconds>(deadline - Clock::now()));
}

std::string openssl_error_text() {
  std::string text;
  while (const unsigned long e = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(e, buffer, sizeof buffer);
    if (!text.empty()) text += "; ";
    text += buffer;
  }
  return text.empty() ? "unknown OpenSSL error" : text;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// PlcSocket

PlcSocket::PlcSocket(int fd, const std::atomic<bool>& stopping) : fd_(fd), stopping_(stopping) {}

bool PlcSocket::send(ch::ByteView bytes) {
  // The socket has a short send timeout: a client that stops reading cannot block a script
  // beyond this bound, nor past the server's stop.
  const auto deadline = Clock::now() + 10s;
  std::size_t done = 0;
  while (done < bytes.size()) {
    if (closed_ || stopping() || Clock::now() > deadline) return false;
    const ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += std::size_t(n);
      continue;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    closed_ = true;
    return false;
  }
  return true;
}

PlcSocket::Read PlcSocket::receive(ch::Bytes& out, milliseconds timeout) {
  if (!ahead_.empty()) {
    out.insert(out.end(), ahead_.begin(), ahead_.end());
    ahead_.clear();
    return Read::data;
  }
  if (closed_) return Read::closed;
  const auto deadline = Clock::now() + timeout;
  while (!stopping()) {
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, int(std::min(kSlice, left_until(deadline)).count()));
    if (ready > 0) {
      std::uint8_t buffer[16384];
      const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n > 0) {
        out.insert(out.end(), buffer, buffer + n);
        return Read::data;
      }
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      closed_ = true;
      return Read::closed;
    }
    if (Clock::now() >= deadline) return Read::timeout;
  }
  return Read::timeout;
}

std::optional<ch::Bytes> PlcSocket::read_tpkt(milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  ch::Bytes buffer = std::move(ahead_);
  ahead_.clear();
  for (;;) {
    if (buffer.size() >= ch::kTpktHeaderSize) {
      const std::size_t length = std::size_t(buffer[2]) << 8 | buffer[3];
      if (length < ch::kTpktHeaderSize) {  // not TPKT: nothing a script can use
        closed_ = true;
        return std::nullopt;
      }
      if (buffer.size() >= length) {
        ch::Bytes tpdu(buffer.begin() + ch::kTpktHeaderSize,
                       buffer.begin() + std::ptrdiff_t(length));
        ahead_.assign(buffer.begin() + std::ptrdiff_t(length), buffer.end());
        return tpdu;
      }
    }
    if (receive(buffer, left_until(deadline)) != Read::data) {
      ahead_ = std::move(buffer);
      return std::nullopt;
    }
  }
}

bool PlcSocket::hold(milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  ch::Bytes dropped;
  while (!stopping() && Clock::now() < deadline) {
    dropped.clear();
    if (receive(dropped, left_until(deadline)) == Read::closed) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// HostilePlc

HostilePlc::HostilePlc(Script script) : script_(std::move(script)) {
  listen_fd_ = listen_on_loopback(port_, "hostile PLC");
  acceptor_ = std::thread([this] { run(); });
}

HostilePlc::~HostilePlc() {
  stopping_ = true;
  acceptor_.join();
  for (std::thread& t : scripts_) t.join();
  ::close(listen_fd_);
}

void HostilePlc::run() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, int(kSlice.count())) <= 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    const timeval send_timeout{0, 200 * 1000};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::size_t index = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      index = accepted_.size();
      accepted_.push_back(Clock::now());
    }
    scripts_.emplace_back([this, fd, index] {
      try {
        PlcSocket socket(fd, stopping_);
        script_(socket, index);
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(mutex_);
        problems_.push_back("connection " + std::to_string(index) + ": " + e.what());
      }
      ::close(fd);
    });
  }
}

std::size_t HostilePlc::connections() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return accepted_.size();
}

std::vector<Clock::time_point> HostilePlc::accepted_at() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return accepted_;
}

std::vector<std::string> HostilePlc::problems() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return problems_;
}

// ---------------------------------------------------------------------------------------------
// Server contexts

namespace {

SslContextPtr base_context(int max_version) {
  ERR_clear_error();
  SslContextPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) throw std::runtime_error("SSL_CTX_new: " + openssl_error_text());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(ctx.get(), max_version);
  SSL_CTX_set_ciphersuites(ctx.get(), "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384");
  SSL_CTX_set_cipher_list(ctx.get(), "ECDHE+AESGCM");
  SSL_CTX_set1_groups_list(ctx.get(), "P-256:X25519");
  // Every attempt is a full handshake with a trust decision: no tickets to resume with.
  SSL_CTX_set_num_tickets(ctx.get(), 0);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  return ctx;
}

void check_key(SSL_CTX* ctx) {
  if (SSL_CTX_check_private_key(ctx) != 1) {
    throw std::runtime_error("the PLC's key does not match its certificate: " +
                             openssl_error_text());
  }
}

}  // namespace

SslContextPtr plc_context(X509* leaf, const std::vector<X509*>& chain, EVP_PKEY* key,
                          int max_version) {
  SslContextPtr ctx = base_context(max_version);
  if (SSL_CTX_use_certificate(ctx.get(), leaf) != 1) {
    throw std::runtime_error("SSL_CTX_use_certificate: " + openssl_error_text());
  }
  for (X509* c : chain) {
    if (SSL_CTX_add1_chain_cert(ctx.get(), c) != 1) {
      throw std::runtime_error("SSL_CTX_add1_chain_cert: " + openssl_error_text());
    }
  }
  if (SSL_CTX_use_PrivateKey(ctx.get(), key) != 1) {
    throw std::runtime_error("SSL_CTX_use_PrivateKey: " + openssl_error_text());
  }
  check_key(ctx.get());
  return ctx;
}

SslContextPtr plc_context(const std::filesystem::path& chain_pem, const std::filesystem::path& key,
                          int max_version) {
  SslContextPtr ctx = base_context(max_version);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), chain_pem.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx.get(), key.c_str(), SSL_FILETYPE_PEM) != 1) {
    throw std::runtime_error(chain_pem.string() + ": " + openssl_error_text());
  }
  check_key(ctx.get());
  return ctx;
}

// ---------------------------------------------------------------------------------------------
// PlcTls

void PlcTls::count_received(int write, int, int content_type, const void* message,
                            std::size_t length, SSL*, void* received) {
  if (write || content_type != SSL3_RT_HANDSHAKE || length == 0) return;
  auto& r = *static_cast<Received*>(received);
  switch (static_cast<const std::uint8_t*>(message)[0]) {
    case SSL3_MT_CLIENT_HELLO:
      ++r.client_hellos;
      break;
    case SSL3_MT_KEY_UPDATE:
      ++r.key_updates;
      break;
    default:
      break;
  }
}

PlcTls::PlcTls(PlcSocket& socket, ch::SecurityMode mode, SSL_CTX* context)
    : socket_(socket), mode_(mode) {
  if (mode_ == ch::SecurityMode::none) return;
  ssl_ = SSL_new(context);
  in_ = BIO_new(BIO_s_mem());
  out_ = BIO_new(BIO_s_mem());
  if (!ssl_ || !in_ || !out_) throw std::runtime_error("SSL_new: " + openssl_error_text());
  BIO_set_mem_eof_return(in_, -1);  // empty means "later", not end of file
  SSL_set_bio(ssl_, in_, out_);
  SSL_set_accept_state(ssl_);
  SSL_set_msg_callback(ssl_, count_received);
  SSL_set_msg_callback_arg(ssl_, &received_);
}

PlcTls::~PlcTls() {
  SSL_free(ssl_);
}

bool PlcTls::receive(milliseconds timeout) {
  if (mode_ == ch::SecurityMode::tls) {
    ch::Bytes bytes;
    if (socket_.receive(bytes, timeout) != PlcSocket::Read::data) return false;
    BIO_write(in_, bytes.data(), int(bytes.size()));
    return true;
  }
  const auto tpdu = socket_.read_tpkt(timeout);
  if (!tpdu) return false;
  const auto cotp = ch::decode_cotp(*tpdu);
  const auto* dt = cotp ? std::get_if<ch::CotpData>(&cotp.value()) : nullptr;
  if (!dt) return false;  // a DR or something undecodable: the client is leaving
  if (!dt->payload.empty()) BIO_write(in_, dt->payload.data(), int(dt->payload.size()));
  return true;
}

ch::Bytes PlcTls::take_ciphertext() {
  ch::Bytes out(std::size_t(BIO_ctrl_pending(out_)));
  if (!out.empty()) {
    const int n = BIO_read(out_, out.data(), int(out.size()));
    out.resize(std::size_t(std::max(0, n)));
  }
  return out;
}

bool PlcTls::send_carrier(ch::ByteView ciphertext) {
  if (ciphertext.empty()) return true;
  if (mode_ == ch::SecurityMode::tls) return socket_.send(ciphertext);
  for (const ch::Bytes& dt : ch::frame_dt(ciphertext, 1024)) {
    if (!socket_.send(dt)) return false;
  }
  return true;
}

bool PlcTls::flush() {
  if (!ssl_) return true;
  const ch::Bytes ciphertext = take_ciphertext();
  return send_carrier(ciphertext);
}

bool PlcTls::handshake(milliseconds timeout) {
  if (!ssl_) return true;
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    ERR_clear_error();
    const int r = SSL_do_handshake(ssl_);
    if (!flush()) return false;
    if (r == 1) return true;
    const int e = SSL_get_error(ssl_, r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
      failed_ = true;
      return false;
    }
    if (!receive(left_until(deadline))) return false;
  }
}

bool PlcTls::handshake_step(milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (BIO_ctrl_pending(out_) == 0) {
    ERR_clear_error();
    const int r = SSL_do_handshake(ssl_);
    if (r == 1 || BIO_ctrl_pending(out_) > 0) return true;
    if (SSL_get_error(ssl_, r) != SSL_ERROR_WANT_READ) {
      failed_ = true;
      return false;
    }
    if (!receive(left_until(deadline))) return false;
  }
  return true;
}

bool PlcTls::write(ch::ByteView plaintext) {
  if (!ssl_) return socket_.send(plaintext);
  std::size_t done = 0;
  while (done < plaintext.size()) {
    ERR_clear_error();
    const int n = SSL_write(ssl_, plaintext.data() + done, int(plaintext.size() - done));
    if (n <= 0) {
      failed_ = true;
      return false;
    }
    done += std::size_t(n);
  }
  return flush();
}

std::optional<ch::Bytes> PlcTls::read_inner(milliseconds timeout) {
  if (!ssl_) return socket_.read_tpkt(timeout);
  const auto deadline = Clock::now() + timeout;
  ch::Bytes tpdu;
  for (;;) {
    if (inner_.next(tpdu)) return tpdu;
    if (failed_) return std::nullopt;
    std::uint8_t buffer[16384];
    ERR_clear_error();
    const int n = SSL_read(ssl_, buffer, sizeof buffer);
    if (!flush()) return std::nullopt;  // KeyUpdate answers, alerts
    if (n > 0) {
      if (inner_.feed(ch::ByteView(buffer, std::size_t(n)))) failed_ = true;
      continue;
    }
    const int e = SSL_get_error(ssl_, n);
    if (e != SSL_ERROR_WANT_READ) {
      failed_ = true;  // close_notify, an alert, a protocol error
      return std::nullopt;
    }
    const milliseconds left = left_until(deadline);
    if (left <= 0ms || !receive(left)) return std::nullopt;
  }
}

// ---------------------------------------------------------------------------------------------
// PlcService

PlcService::PlcService(PlcSocket& socket, ch::SecurityMode mode, SSL_CTX* context)
    : socket_(socket),
      mode_(mode),
      state_([mode] {
        plcsim::PlcConfig config;
        config.mode = mode;
        return config;
      }()),
      session_(state_, mode),
      tls_(socket, mode, context) {}

bool PlcService::handshake(milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  if (mode_ == ch::SecurityMode::s7_secure) {
    for (bool start_tls = false; !start_tls;) {
      const auto tpdu = socket_.read_tpkt(left_until(deadline));
      if (!tpdu) return false;
      const auto out = session_.on_tpdu(*tpdu);
      for (const ch::Bytes& frame : out.frames) {
        if (!socket_.send(frame)) return false;
      }
      if (out.close) return false;
      start_tls = out.start_tls;
    }
  }
  if (!tls_.handshake(left_until(deadline))) return false;
  if (mode_ != ch::SecurityMode::none) session_.tls_established();
  return true;
}

bool PlcService::answer(const ch::Bytes& tpdu) {
  const auto out = session_.on_tpdu(tpdu);
  for (const ch::Bytes& frame : out.frames) {
    if (!tls_.write(frame)) return false;
  }
  return !out.close;
}

bool PlcService::until_up(milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (session_.negotiated_pdu() == 0) {
    const auto tpdu = tls_.read_inner(left_until(deadline));
    if (!tpdu || !answer(*tpdu)) return false;
  }
  return true;
}

bool PlcService::answer_next(milliseconds timeout) {
  const auto tpdu = tls_.read_inner(timeout);
  return tpdu && answer(*tpdu);
}

bool PlcService::serve(milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while (!socket_.stopping() && Clock::now() < deadline) {
    const auto tpdu = tls_.read_inner(std::min(milliseconds(100), left_until(deadline)));
    if (tpdu) {
      if (!answer(*tpdu)) return true;
      continue;
    }
    if (tls_.failed() || socket_.closed()) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------

bool confirm_connect(PlcSocket& socket, milliseconds timeout) {
  const auto tpdu = socket.read_tpkt(timeout);
  if (!tpdu) return false;
  const auto cotp = ch::decode_cotp(*tpdu);
  const auto* cr = cotp ? std::get_if<ch::CotpConnect>(&cotp.value()) : nullptr;
  if (!cr || cr->confirm) return false;
  ch::CotpConnect cc;
  cc.confirm = true;
  cc.dst_ref = cr->src_ref;
  cc.src_ref = 0x0044;
  cc.tpdu_size_code = 0x0A;
  cc.calling = cr->calling;
  cc.called = cr->called;
  return socket.send(ch::tpkt_wrap(ch::encode_cotp(cc)));
}

std::size_t peak_rss_kb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0)
      return std::size_t(std::strtoull(line.c_str() + 6, nullptr, 10));
  }
  return 0;
}

bool reset_peak_rss() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  clear.flush();
  return bool(clear);
}

}  // namespace scada::test
