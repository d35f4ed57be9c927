#include "s7_test_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>

namespace scada::test {

namespace ch = scada::channel;

namespace {

constexpr std::size_t kMaxSzlPieces = 64;  // a long SZL answer in more pieces is broken
const ch::Tsap kSecureCalling = ch::Tsap::from_u16(0x0600);
constexpr std::uint8_t kSecureTpduSizeCode = 0x0A;
constexpr std::uint16_t kCotpSrcRef = 0x0C01;

std::string errno_text(int error) {
  return std::strerror(error);
}

// The OpenSSL error queue as text (emptied), or fallback when it is empty.
std::string openssl_errors(const std::string& fallback) {
  std::string text;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!text.empty()) text += "; ";
    text += buf;
  }
  return text.empty() ? fallback : text;
}

std::string hex16(std::uint16_t v) {
  static const char* digits = "0123456789ABCDEF";
  std::string s = "0x";
  for (int shift = 12; shift >= 0; shift -= 4) s += digits[(v >> shift) & 15];
  return s;
}

int remaining_ms(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return int(std::clamp<long long>(left.count(), 0, 1 << 30));
}

// SSL app data is the client's ClientTls: what the callbacks below need.
const ClientTls& tls_of(const SSL* ssl) {
  return *static_cast<const ClientTls*>(SSL_get_app_data(ssl));
}

void write_keylog_line(const SSL* ssl, const char* line) {
  std::ofstream(tls_of(ssl).keylog, std::ios::app) << line << '\n';
}

// TLS 1.3 external PSK: one session with the configured key for TLS_AES_128_GCM_SHA256.
int use_psk_session(SSL* ssl, const EVP_MD* md, const unsigned char** id, std::size_t* id_length,
                    SSL_SESSION** session) {
  *session = nullptr;
  const ClientTls& tls = tls_of(ssl);
  static const unsigned char kAes128GcmSha256[] = {0x13, 0x01};
  const SSL_CIPHER* cipher = SSL_CIPHER_find(ssl, kAes128GcmSha256);
  if (cipher == nullptr) return 0;
  // Asked again once the suite is chosen: the PSK only fits a SHA-256 suite.
  if (md != nullptr && EVP_MD_get_type(md) != NID_sha256) return 1;
  SSL_SESSION* s = SSL_SESSION_new();
  if (s == nullptr || SSL_SESSION_set1_master_key(s, tls.psk_key.data(), tls.psk_key.size()) != 1 ||
      SSL_SESSION_set_cipher(s, cipher) != 1 ||
      SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION) != 1) {
    SSL_SESSION_free(s);
    return 0;
  }
  *id = reinterpret_cast<const unsigned char*>(tls.psk_identity.data());
  *id_length = tls.psk_identity.size();
  *session = s;
  return 1;
}

}  // namespace

const char* client_mode_name(ClientMode mode) {
  switch (mode) {
    case ClientMode::none:
      return "none";
    case ClientMode::tls:
      return "tls";
    case ClientMode::s7_secure:
      return "s7-secure";
  }
  return "?";
}

const char* client_failure_name(ClientFailure failure) {
  switch (failure) {
    case ClientFailure::timeout:
      return "timeout";
    case ClientFailure::eof:
      return "eof";
    case ClientFailure::reset:
      return "reset";
    case ClientFailure::io:
      return "io";
    case ClientFailure::tls:
      return "tls";
    case ClientFailure::wire:
      return "wire";
    case ClientFailure::protocol:
      return "protocol";
    case ClientFailure::s7_error:
      return "s7_error";
    case ClientFailure::mismatch:
      return "mismatch";
  }
  return "?";
}

ClientError::ClientError(ClientFailure failure, const std::string& what, std::uint16_t s7_error)
    : std::runtime_error(std::string(client_failure_name(failure)) + ": " + what),
      failure_(failure),
      s7_error_(s7_error) {}

ClientError::ClientError(const ch::WireError& error, const std::string& context)
    : std::runtime_error("wire: " + context + ": " + error.to_string()),
      failure_(ClientFailure::wire),
      wire_error_(error) {}

// ---- Construction and connection

S7TestClient::S7TestClient(ClientOptions options)
    : options_(std::move(options)),
      wire_(ch::kTpktHeaderSize +
            (std::size_t{1} << (options_.mode == ClientMode::s7_secure ? kSecureTpduSizeCode
                                                                       : options_.tpdu_size_code))),
      inner_(ch::kTpktHeaderSize + (std::size_t{1} << options_.tpdu_size_code)) {}

S7TestClient::~S7TestClient() {
  try {
    close();
  } catch (const ClientError&) {
    // The peer may be gone already; nothing left to tell anyone.
  }
  SSL_free(ssl_);
  SSL_CTX_free(ctx_);
}

void S7TestClient::connect(std::uint16_t port) {
  if (fd_ >= 0) throw std::logic_error("S7TestClient::connect called twice");
  connect_tcp(port);
  switch (options_.mode) {
    case ClientMode::none:
      cotp_connect(options_.calling, options_.called, options_.tpdu_size_code);
      break;
    case ClientMode::tls:
      start_tls();
      cotp_connect(options_.calling, options_.called, options_.tpdu_size_code);
      break;
    case ClientMode::s7_secure:
      cotp_connect(kSecureCalling, ch::Tsap::from_text("SIMATIC-ROOT-HMI"), kSecureTpduSizeCode);
      init_ssl();
      start_tls();
      break;
  }
}

void S7TestClient::connect_tcp(std::uint16_t port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw ClientError(ClientFailure::io, "socket: " + errno_text(errno));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const std::string where = "127.0.0.1:" + std::to_string(port);
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    if (errno != EINPROGRESS) {
      throw ClientError(ClientFailure::io, "connect to " + where + ": " + errno_text(errno));
    }
    pollfd p{fd_, POLLOUT, 0};
    const int ready = ::poll(&p, 1, int(options_.connect_timeout.count()));
    if (ready == 0) {
      throw ClientError(ClientFailure::timeout,
                        "connect to " + where + ": no answer within " +
                            std::to_string(options_.connect_timeout.count()) + " ms");
    }
    int error = 0;
    socklen_t length = sizeof error;
    if (ready < 0 || ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
    if (error != 0) {
      throw ClientError(ClientFailure::io, "connect to " + where + ": " + errno_text(error));
    }
  }
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void S7TestClient::cotp_connect(const ch::Tsap& calling, const ch::Tsap& called,
                                std::uint8_t size_code) {
  ch::CotpConnect cr;
  cr.src_ref = kCotpSrcRef;
  cr.tpdu_size_code = size_code;
  cr.calling = calling;
  cr.called = called;
  const auto until = deadline();
  send_frames({ch::tpkt_wrap(ch::encode_cotp(cr))});
  ch::CotpTpdu reply = expect_tpdu(until, "COTP CC");
  const auto* cc = std::get_if<ch::CotpConnect>(&reply);
  if (cc == nullptr || !cc->confirm) {
    throw ClientError(ClientFailure::protocol,
                      std::string("expected COTP CC, got ") + ch::cotp_name(reply));
  }
  if (cc->dst_ref != kCotpSrcRef) {
    throw ClientError(ClientFailure::protocol, "COTP CC for reference " + hex16(cc->dst_ref) +
                                                   ", sent " + hex16(kCotpSrcRef));
  }
  if (cc->tpdu_size() > (std::size_t{1} << size_code)) {
    throw ClientError(
        ClientFailure::protocol,
        "COTP CC grants TPDU size " + std::to_string(cc->tpdu_size()) + ", more than asked");
  }
  tpdu_size_ = cc->tpdu_size();
  // From now on no frame may be longer than 4 + the granted TPDU size (WIRE.md §2). Nothing is
  // buffered behind the CC: the PLC sends nothing before the next request.
  const std::size_t max_frame = ch::kTpktHeaderSize + tpdu_size_;
  if (wire_.buffered() == 0) wire_ = ch::TpktReassembler(max_frame);
  if (inner_.buffered() == 0) inner_ = ch::TpktReassembler(max_frame);
}

void S7TestClient::init_ssl() {
  const auto until = deadline();
  send_frames(ch::frame_dt(ch::encode_init_ssl_request(), tpdu_size_));
  for (;;) {  // bounded by the deadline: expect_tpdu throws once it passes
    ch::CotpTpdu tpdu = expect_tpdu(until, "InitSSL reply");
    auto* dt = std::get_if<ch::CotpData>(&tpdu);
    if (dt == nullptr) {
      throw ClientError(
          ClientFailure::protocol,
          std::string("expected the InitSSL reply in a DT, got ") + ch::cotp_name(tpdu));
    }
    auto joined = dt_reassembler_.add(std::move(*dt));
    if (!joined) throw ClientError(joined.error(), "InitSSL reply");
    if (!joined.value()) continue;
    auto reply = ch::decode_init_ssl(*joined.value());
    if (!reply) throw ClientError(reply.error(), "InitSSL reply");
    if (!reply->accepted()) {
      throw ClientError(ClientFailure::protocol, "InitSSL refused: function " +
                                                     hex16(reply->function) + ", return value " +
                                                     std::to_string(reply->return_value));
    }
    return;
  }
}

void S7TestClient::start_tls() {
  const ClientTls& tls = options_.tls;
  if (tls.trust.empty() && tls.psk_identity.empty()) {
    throw ClientError(ClientFailure::tls,
                      "neither trust anchors nor a PSK: this client does not connect unverified");
  }
  ERR_clear_error();
  ctx_ = SSL_CTX_new(TLS_client_method());
  if (ctx_ == nullptr) throw ClientError(ClientFailure::tls, openssl_errors("SSL_CTX_new"));
  SSL_CTX_set_min_proto_version(ctx_, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx_, TLS1_3_VERSION);
  SSL_CTX_set_ciphersuites(ctx_, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384");
  // Two groups keep the ClientHello within one 1024-byte TPDU (WIRE.md §5).
  SSL_CTX_set1_groups_list(ctx_, "P-256:X25519");
  SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
  if (!tls.trust.empty()) {
    if (SSL_CTX_load_verify_locations(ctx_, tls.trust.c_str(), nullptr) != 1) {
      throw ClientError(ClientFailure::tls, tls.trust.string() + ": no usable trust anchors: " +
                                                openssl_errors("unreadable"));
    }
    // Every certificate in the trust file is an anchor, so a pinned leaf works as well as a CA.
    X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx_), X509_V_FLAG_PARTIAL_CHAIN);
  }
  if (!tls.certificate.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx_, tls.certificate.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx_, tls.key.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx_) != 1) {
      throw ClientError(ClientFailure::tls, tls.certificate.string() + " / " + tls.key.string() +
                                                ": not a usable client certificate and key: " +
                                                openssl_errors("unreadable"));
    }
  }
  if (!tls.keylog.empty()) SSL_CTX_set_keylog_callback(ctx_, write_keylog_line);

  ssl_ = SSL_new(ctx_);
  network_in_ = BIO_new(BIO_s_mem());
  network_out_ = BIO_new(BIO_s_mem());
  if (ssl_ == nullptr || network_in_ == nullptr || network_out_ == nullptr) {
    BIO_free(network_in_);
    BIO_free(network_out_);
    throw ClientError(ClientFailure::tls, openssl_errors("SSL_new"));
  }
  BIO_set_mem_eof_return(network_in_, -1);  // empty means "more to come", not end of stream
  SSL_set_bio(ssl_, network_in_, network_out_);
  SSL_set_app_data(ssl_, &options_.tls);
  if (!tls.psk_identity.empty()) SSL_set_psk_use_session_callback(ssl_, use_psk_session);
  SSL_set_connect_state(ssl_);

  const auto until = deadline();
  for (;;) {  // bounded by the deadline: pull throws once it passes
    ERR_clear_error();
    const int r = SSL_do_handshake(ssl_);
    flush_tls(until);
    if (r == 1) break;
    if (SSL_get_error(ssl_, r) != SSL_ERROR_WANT_READ) fail_tls("handshake", r);
    pull(until);
  }
  tls_up_ = true;
}

void S7TestClient::fail_tls(const std::string& step, int ssl_result) {
  std::string text = "TLS " + step + " failed: " +
                     openssl_errors("SSL error " + std::to_string(SSL_get_error(ssl_, ssl_result)));
  const long verify = SSL_get_verify_result(ssl_);
  if (verify != X509_V_OK)
    text += " (verification: " + std::string(X509_verify_cert_error_string(verify)) + ")";
  throw ClientError(ClientFailure::tls, text);
}

// ---- S7comm

ch::SetupCommunication S7TestClient::setup(std::uint16_t pdu_size, std::uint16_t amq) {
  const ch::Pdu reply = exchange(ch::Pdu{ch::Header{ch::Rosctr::job, 0, next_pdu_ref()},
                                         ch::SetupCommunication{amq, amq, pdu_size}});
  const auto* granted = std::get_if<ch::SetupCommunication>(&reply.body);
  if (granted == nullptr) {
    throw ClientError(ClientFailure::mismatch, "the reply to setup communication is no setup");
  }
  negotiated_ = *granted;
  return negotiated_;
}

ch::ReadVarResponse S7TestClient::read(const std::vector<ch::VarItem>& items) {
  const ch::Pdu reply =
      exchange(ch::Pdu{ch::Header{ch::Rosctr::job, 0, next_pdu_ref()}, ch::ReadVarRequest{items}});
  const auto* response = std::get_if<ch::ReadVarResponse>(&reply.body);
  if (response == nullptr || response->items.size() != items.size()) {
    throw ClientError(ClientFailure::mismatch, "the reply to Read Var does not answer its items");
  }
  return *response;
}

ch::WriteVarResponse S7TestClient::write(const std::vector<ch::VarItem>& items,
                                         const std::vector<ch::DataItem>& data) {
  const ch::Pdu reply = exchange(
      ch::Pdu{ch::Header{ch::Rosctr::job, 0, next_pdu_ref()}, ch::WriteVarRequest{items, data}});
  const auto* response = std::get_if<ch::WriteVarResponse>(&reply.body);
  if (response == nullptr || response->return_codes.size() != items.size()) {
    throw ClientError(ClientFailure::mismatch, "the reply to Write Var does not answer its items");
  }
  return *response;
}

SzlAnswer S7TestClient::read_szl(std::uint16_t id, std::uint16_t index) {
  ch::SzlAssembler assembler;
  ch::Pdu request = ch::szl_request(next_pdu_ref(), szl_sequence_++, ch::SzlRequest{id, index});
  for (std::size_t piece = 1; piece <= kMaxSzlPieces; ++piece) {
    const ch::Pdu reply = exchange(request);
    const auto* u = std::get_if<ch::Userdata>(&reply.body);
    if (u == nullptr) throw ClientError(ClientFailure::mismatch, "SZL reply is no userdata");
    if (u->param.error != 0) {
      throw ClientError(ClientFailure::s7_error,
                        "SZL " + hex16(id) + " refused: " + ch::s7_error_text(u->param.error),
                        u->param.error);
    }
    auto list = assembler.add(*u);
    if (!list) throw ClientError(list.error(), "SZL " + hex16(id));
    if (list.value()) return SzlAnswer{std::move(*list.value()), piece};
    request = ch::szl_continue(next_pdu_ref(), u->param);
  }
  throw ClientError(ClientFailure::protocol, "SZL " + hex16(id) + " still not complete after " +
                                                 std::to_string(kMaxSzlPieces) + " pieces");
}

ch::Pdu S7TestClient::exchange(const ch::Pdu& request) {
  send_pdu(request);
  ch::Pdu reply = receive_pdu();
  if (reply.header.pdu_ref != request.header.pdu_ref) {
    throw ClientError(ClientFailure::mismatch, "reply carries PDU reference " +
                                                   hex16(reply.header.pdu_ref) + ", request " +
                                                   hex16(request.header.pdu_ref));
  }
  const bool ack =
      reply.header.rosctr == ch::Rosctr::ack || reply.header.rosctr == ch::Rosctr::ack_data;
  if (ack && reply.header.error() != 0) {
    throw ClientError(ClientFailure::s7_error,
                      "PLC answered " + hex16(reply.header.error()) + " " +
                          ch::s7_error_text(reply.header.error()),
                      reply.header.error());
  }
  if (reply.header.rosctr == ch::Rosctr::job) {
    throw ClientError(ClientFailure::mismatch, "the PLC sent a Job instead of a reply");
  }
  return reply;
}

std::uint16_t S7TestClient::next_pdu_ref() {
  if (++pdu_ref_ == 0) pdu_ref_ = 1;
  return pdu_ref_;
}

void S7TestClient::send_pdu(const ch::Pdu& pdu) {
  send_frames(ch::frame_dt(ch::encode_s7(pdu), tpdu_size_));
}

ch::Pdu S7TestClient::receive_pdu() {
  const auto until = deadline();
  for (;;) {  // bounded by the deadline: expect_tpdu throws once it passes
    ch::CotpTpdu tpdu = expect_tpdu(until, "S7comm PDU");
    if (std::holds_alternative<ch::CotpDisconnect>(tpdu)) {
      throw ClientError(ClientFailure::protocol, "the PLC disconnected (COTP DR)");
    }
    auto* dt = std::get_if<ch::CotpData>(&tpdu);
    if (dt == nullptr) {
      throw ClientError(ClientFailure::protocol,
                        std::string("expected a COTP DT, got ") + ch::cotp_name(tpdu));
    }
    auto joined = dt_reassembler_.add(std::move(*dt));
    if (!joined) throw ClientError(joined.error(), "COTP reassembly");
    if (!joined.value()) continue;
    auto pdu = ch::decode_s7(*joined.value());
    if (!pdu) throw ClientError(pdu.error(), "S7comm PDU");
    return std::move(pdu).value();
  }
}

ch::Result<ch::CotpTpdu> S7TestClient::receive_raw_tpdu() {
  auto frame = next_frame(deadline());
  if (!frame) return frame.error();
  return ch::decode_cotp(frame.value());
}

void S7TestClient::send_raw_tpdu(const ch::CotpTpdu& tpdu) {
  send_frames({ch::tpkt_wrap(ch::encode_cotp(tpdu))});
}

void S7TestClient::close() {
  if (fd_ < 0) return;
  const int fd = fd_;
  try {
    if (tls_up_) {
      SSL_shutdown(ssl_);  // queues close_notify; the answer is not awaited
      flush_tls(Clock::now() + std::chrono::milliseconds(200));
    }
  } catch (const ClientError&) {
    // The peer is gone: closing is all that is left.
  }
  fd_ = -1;
  ::shutdown(fd, SHUT_RDWR);
  ::close(fd);
}

std::string S7TestClient::peer_certificate_sha256() const {
  if (ssl_ == nullptr) return "";
  X509* certificate = SSL_get0_peer_certificate(ssl_);
  if (certificate == nullptr) return "";
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (X509_digest(certificate, EVP_sha256(), digest, &length) != 1) return "";
  static const char* digits = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) {
    hex += digits[digest[i] >> 4];
    hex += digits[digest[i] & 15];
  }
  return hex;
}

// ---- Layers

ch::CotpTpdu S7TestClient::expect_tpdu(Clock::time_point until, const char* waiting_for) {
  auto frame = next_frame(until);
  if (!frame) throw ClientError(frame.error(), std::string("waiting for ") + waiting_for);
  auto tpdu = ch::decode_cotp(frame.value());
  if (!tpdu) throw ClientError(tpdu.error(), std::string("waiting for ") + waiting_for);
  return std::move(tpdu).value();
}

ch::Result<ch::Bytes> S7TestClient::next_frame(Clock::time_point until) {
  for (;;) {  // bounded by the deadline: pull throws once it passes
    if (tls_up_ && BIO_ctrl_pending(network_in_) > 0) drain_tls();
    ch::Bytes frame;
    if ((ssl_ != nullptr ? inner_ : wire_).next(frame)) return frame;
    if (frame_error_) return *frame_error_;
    pull(until);
  }
}

void S7TestClient::pull(Clock::time_point until) {
  if (fd_ < 0) throw ClientError(ClientFailure::io, "not connected");
  pollfd p{fd_, POLLIN, 0};
  const int ready = ::poll(&p, 1, remaining_ms(until));
  if (ready == 0) {
    throw ClientError(
        ClientFailure::timeout,
        "nothing from the PLC within " + std::to_string(options_.receive_timeout.count()) + " ms");
  }
  if (ready < 0 && errno != EINTR)
    throw ClientError(ClientFailure::io, "poll: " + errno_text(errno));
  std::array<std::uint8_t, 16384> buffer;
  const ssize_t n = ::recv(fd_, buffer.data(), buffer.size(), 0);
  if (n == 0) {
    throw ClientError(ClientFailure::eof,
                      std::string("the PLC closed the connection") +
                          (close_notify_received_ ? " after close_notify" : ""));
  }
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    if (errno == ECONNRESET)
      throw ClientError(ClientFailure::reset, "the PLC reset the connection");
    throw ClientError(ClientFailure::io, "recv: " + errno_text(errno));
  }
  const ch::ByteView bytes(buffer.data(), std::size_t(n));
  if (ssl_ == nullptr) {
    if (auto e = wire_.feed(bytes); e && !frame_error_) frame_error_ = e;
    return;
  }
  if (options_.mode == ClientMode::tls) return feed_tls(bytes);
  // s7-secure: the payloads of the DTs on the wire are the TLS byte stream.
  if (auto e = wire_.feed(bytes); e && !frame_error_) frame_error_ = e;
  ch::Bytes frame;
  while (!frame_error_ && wire_.next(frame)) {
    auto tpdu = ch::decode_cotp(frame);
    if (!tpdu) {
      frame_error_ = tpdu.error();
    } else if (auto* dt = std::get_if<ch::CotpData>(&tpdu.value())) {
      feed_tls(dt->payload);
    } else {
      frame_error_ = ch::WireError{ch::WireErrorKind::bad_value, 0,
                                   std::string("COTP ") + ch::cotp_name(tpdu.value()) +
                                       " where TLS records in DTs were expected"};
    }
  }
}

void S7TestClient::feed_tls(ch::ByteView ciphertext) {
  if (!ciphertext.empty()) BIO_write(network_in_, ciphertext.data(), int(ciphertext.size()));
  if (tls_up_) drain_tls();  // during the handshake SSL_do_handshake takes the bytes
}

void S7TestClient::drain_tls() {
  std::array<std::uint8_t, 16384> plain;
  for (;;) {  // ends when the BIO holds no complete record: each round consumes input
    ERR_clear_error();
    const int n = SSL_read(ssl_, plain.data(), int(plain.size()));
    if (n > 0) {
      if (auto e = inner_.feed(ch::ByteView(plain.data(), std::size_t(n))); e && !frame_error_) {
        frame_error_ = e;
      }
      continue;
    }
    const int e = SSL_get_error(ssl_, n);
    if (e == SSL_ERROR_WANT_READ) break;
    if (e == SSL_ERROR_ZERO_RETURN) {
      close_notify_received_ = true;
      // Whatever follows close_notify is not TLS data; the socket tells how TCP ends.
      (void)BIO_reset(network_in_);
      break;
    }
    fail_tls("read", n);
  }
}

void S7TestClient::flush_tls(Clock::time_point until) {
  while (BIO_ctrl_pending(network_out_) > 0) {  // each round empties part of the BIO
    ch::Bytes cipher(BIO_ctrl_pending(network_out_));
    const int n = BIO_read(network_out_, cipher.data(), int(cipher.size()));
    if (n <= 0) break;
    cipher.resize(std::size_t(n));
    if (options_.mode == ClientMode::s7_secure) {
      for (const auto& dt : ch::frame_dt(cipher, tpdu_size_)) send_all(dt, until);
    } else {
      send_all(cipher, until);
    }
  }
}

void S7TestClient::send_frames(const std::vector<ch::Bytes>& tpkt_frames) {
  const auto until = deadline();
  if (ssl_ == nullptr) {
    for (const auto& f : tpkt_frames) send_all(f, until);
    return;
  }
  for (const auto& f : tpkt_frames) {
    ERR_clear_error();
    const int n = SSL_write(ssl_, f.data(), int(f.size()));
    if (n <= 0) fail_tls("write", n);
  }
  flush_tls(until);
}

void S7TestClient::send_all(ch::ByteView bytes, Clock::time_point until) {
  if (fd_ < 0) throw ClientError(ClientFailure::io, "not connected");
  std::size_t done = 0;
  while (done < bytes.size()) {  // bounded by the deadline while the socket is full
    const ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += std::size_t(n);
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      pollfd p{fd_, POLLOUT, 0};
      if (::poll(&p, 1, remaining_ms(until)) == 0) {
        throw ClientError(ClientFailure::timeout, "the PLC takes no more bytes");
      }
      continue;
    }
    if (errno == ECONNRESET || errno == EPIPE) {
      throw ClientError(ClientFailure::reset, "send: " + errno_text(errno));
    }
    throw ClientError(ClientFailure::io, "send: " + errno_text(errno));
  }
}

}  // namespace scada::test
