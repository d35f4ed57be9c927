// A blocking S7 client for tests, built from the project's codec (channel/): it connects to a
// PLC (plcsim, in tests) in any of the three security modes of WIRE.md §5 and speaks S7comm one
// PDU at a time, with every step bounded by a timeout so that a silent peer fails a test
// instead of hanging it.
//
// It is deliberately a test tool: raw access to TPDUs and PDU references, so fault tests can
// see exactly what a client on the wire would see (a WireError, EOF, RST, a wrong reference).
// TLS always verifies the peer (SSL_VERIFY_PEER against a given CA or pinned certificate, or a
// TLS 1.3 external PSK); there is no way to accept whatever certificate is presented.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <openssl/types.h>

#include "channel/channel.h"

namespace scada::test {

enum class ClientMode { none, tls, s7_secure };
const char* client_mode_name(ClientMode mode);  // "none", "tls", "s7-secure"

struct ClientTls {
  // PEM file of the certificates to trust: a CA, or the server's own certificate (a pin; any
  // certificate in the file is a trust anchor, so a pinned leaf need not be self-signed).
  std::filesystem::path trust;
  // Client certificate (PEM chain, leaf first) and key, for servers that ask for one.
  std::filesystem::path certificate, key;
  // TLS 1.3 external PSK (TLS_AES_128_GCM_SHA256). Without trust, only a PSK handshake can
  // succeed: a server that presents a certificate instead fails verification.
  std::string psk_identity;
  channel::Bytes psk_key;
  // Appends NSS key log lines (for tshark -o tls.keylog_file:...) when set.
  std::filesystem::path keylog;
};

struct ClientOptions {
  ClientMode mode = ClientMode::none;
  std::chrono::milliseconds connect_timeout{3000};
  // Bounds every wait for bytes from the PLC (handshakes and replies alike).
  std::chrono::milliseconds receive_timeout{5000};
  // COTP CR in modes none and tls. s7-secure always sends calling 06 00, called
  // SIMATIC-ROOT-HMI and TPDU size 1024, as WIRE.md §5 prescribes.
  channel::Tsap calling = channel::Tsap::from_u16(0x0100);
  channel::Tsap called = channel::Tsap::from_u16(0x0102);
  std::uint8_t tpdu_size_code = 0x0A;  // 1024
  ClientTls tls;
};

// Why a client operation failed.
enum class ClientFailure {
  timeout,   // nothing arrived within the receive (or connect) timeout
  eof,       // the peer closed TCP in order (FIN)
  reset,     // the peer reset TCP (ECONNRESET, or EPIPE on send after a reset)
  io,        // another socket error (connect refused, ...)
  tls,       // TLS handshake or record layer failed (verification, alert, bad PSK)
  wire,      // the PLC's bytes do not decode (wire_error() says where)
  protocol,  // well-formed but not what the protocol allows here (DR, a CC missing, ...)
  s7_error,  // the PLC answered with an S7 error (s7_error() holds class/code)
  mismatch,  // a reply that does not belong to the request (PDU reference, function)
};
const char* client_failure_name(ClientFailure failure);

class ClientError : public std::runtime_error {
 public:
  ClientError(ClientFailure failure, const std::string& what, std::uint16_t s7_error = 0);
  ClientError(const channel::WireError& error, const std::string& context);
  ClientFailure failure() const { return failure_; }
  std::uint16_t s7_error() const { return s7_error_; }
  const std::optional<channel::WireError>& wire_error() const { return wire_error_; }

 private:
  ClientFailure failure_;
  std::uint16_t s7_error_ = 0;
  std::optional<channel::WireError> wire_error_;
};

// An SZL answer and how many userdata responses it took (more than one: continuation).
struct SzlAnswer {
  channel::SzlList list;
  std::size_t pieces = 0;
};

class S7TestClient {
 public:
  explicit S7TestClient(ClientOptions options);
  ~S7TestClient();  // closes like close(), without throwing
  S7TestClient(const S7TestClient&) = delete;
  S7TestClient& operator=(const S7TestClient&) = delete;

  // TCP to 127.0.0.1:port, then the mode's handshake: none: CR/CC; tls: TLS, then CR/CC inside;
  // s7-secure: CR/CC and InitSSL in clear, then TLS inside DT payloads. Throws ClientError.
  void connect(std::uint16_t port);
  // Setup communication; returns (and from then on uses) what the PLC granted.
  channel::SetupCommunication setup(std::uint16_t pdu_size = 480, std::uint16_t amq = 1);

  // One job each, waiting for its reply. An S7 error in the reply header throws
  // ClientError(s7_error); a reply with another PDU reference throws ClientError(mismatch).
  channel::ReadVarResponse read(const std::vector<channel::VarItem>& items);
  channel::WriteVarResponse write(const std::vector<channel::VarItem>& items,
                                  const std::vector<channel::DataItem>& data);
  // Reads a whole SZL list, asking for the continuation pieces of a long answer.
  SzlAnswer read_szl(std::uint16_t id, std::uint16_t index);

  // Raw PDU access: references are the caller's business (next_pdu_ref() hands out fresh ones).
  std::uint16_t next_pdu_ref();
  void send_pdu(const channel::Pdu& pdu);  // cut into DTs of the negotiated TPDU size
  channel::Pdu receive_pdu();              // joins DTs; throws on anything but a PDU
  // Raw TPDU access, below DT reassembly. A frame that does not decode (or breaks the TPKT
  // rules, e.g. longer than 4 + the negotiated TPDU size) is returned as its WireError; the
  // stream ends (timeout, EOF, reset, TLS failure) are thrown as ClientError.
  channel::Result<channel::CotpTpdu> receive_raw_tpdu();
  void send_raw_tpdu(const channel::CotpTpdu& tpdu);

  // Orderly close: close_notify first in the TLS modes, then FIN. Idempotent.
  void close();

  // The SHA-256 of the certificate the server presented (lowercase hex of its DER), "" when
  // none (PSK handshake, mode none).
  std::string peer_certificate_sha256() const;
  bool close_notify_received() const { return close_notify_received_; }
  std::size_t tpdu_size() const { return tpdu_size_; }
  const channel::SetupCommunication& negotiated() const { return negotiated_; }
  void set_receive_timeout(std::chrono::milliseconds timeout) {
    options_.receive_timeout = timeout;
  }

 private:
  using Clock = std::chrono::steady_clock;

  void connect_tcp(std::uint16_t port);
  void start_tls();
  void cotp_connect(const channel::Tsap& calling, const channel::Tsap& called,
                    std::uint8_t size_code);
  void init_ssl();
  channel::Pdu exchange(const channel::Pdu& request);

  // Frames of the layer S7 travels in (TPKT payloads, i.e. COTP TPDUs).
  void send_frames(const std::vector<channel::Bytes>& tpkt_frames);
  channel::Result<channel::Bytes> next_frame(Clock::time_point deadline);
  channel::CotpTpdu expect_tpdu(Clock::time_point deadline, const char* waiting_for);
  // Reads once from the socket (waiting up to deadline) and moves the bytes up the layers.
  void pull(Clock::time_point deadline);
  void feed_tls(channel::ByteView ciphertext);
  void drain_tls();  // decrypts what the input BIO holds into inner_
  void flush_tls(Clock::time_point deadline);
  void send_all(channel::ByteView bytes, Clock::time_point deadline);
  Clock::time_point deadline() const { return Clock::now() + options_.receive_timeout; }
  [[noreturn]] void fail_tls(const std::string& step, int ssl_result);

  ClientOptions options_;
  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  BIO* network_in_ = nullptr;   // owned by ssl_
  BIO* network_out_ = nullptr;  // owned by ssl_
  bool tls_up_ = false;
  bool close_notify_received_ = false;
  std::size_t tpdu_size_ = 1024;
  channel::SetupCommunication negotiated_{1, 1, 240};
  // TPKT frames straight from TCP (none; s7-secure, where they carry TLS after InitSSL) and
  // from the TLS plaintext (tls; s7-secure after InitSSL).
  channel::TpktReassembler wire_;
  channel::TpktReassembler inner_;
  std::optional<channel::WireError> frame_error_;  // the first framing error, sticky
  channel::CotpReassembler dt_reassembler_;
  std::uint16_t pdu_ref_ = 0;
  std::uint8_t szl_sequence_ = 0;
};

}  // namespace scada::test
