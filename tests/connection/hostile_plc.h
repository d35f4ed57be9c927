// A hostile PLC of the tests' own: a TCP listener on 127.0.0.1 whose every accepted connection
// runs a script in a thread of its own. Scripts work on raw sockets and raw OpenSSL, so they can
// do what no well-behaved peer does: garbage after the handshake, huge announced lengths,
// handshakes that never finish, absurd certificate chains, renegotiation, KeyUpdate floods.
// When a script wants to behave, plcsim's own session logic (ServerSession on a PlcState)
// answers behind the script's TLS endpoint, so the connection can come up as against plcsim.
//
// Every wait is bounded and checks the server's stop flag: the destructor ends every script
// within a fraction of a second.
#pragma once

#include <openssl/ssl.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "channel/channel.h"
#include "plc_state.h"
#include "server_session.h"

namespace scada::test {

using std::chrono::milliseconds;

// One accepted connection, seen from the PLC's side.
class PlcSocket {
 public:
  PlcSocket(int fd, const std::atomic<bool>& stopping);
  PlcSocket(const PlcSocket&) = delete;
  PlcSocket& operator=(const PlcSocket&) = delete;

  // Sends every byte (bounded by a send timeout); false when the client is gone.
  bool send(channel::ByteView bytes);
  enum class Read { data, closed, timeout };
  // Appends what arrives within timeout to out (bytes read ahead by read_tpkt first).
  Read receive(channel::Bytes& out, milliseconds timeout);
  // The payload of the next TPKT frame (the COTP TPDU), or nothing on close or timeout.
  std::optional<channel::Bytes> read_tpkt(milliseconds timeout);
  // Keeps the connection open, reading and dropping what arrives, until the client closes it
  // (true), the server stops or `limit` passed (false).
  bool hold(milliseconds limit);
  bool closed() const { return closed_; }
  bool stopping() const { return stopping_.load(); }

 private:
  int fd_;
  const std::atomic<bool>& stopping_;
  channel::Bytes ahead_;  // received, not handed out yet
  bool closed_ = false;
};

// The listener. script(socket, n) runs for the n-th accepted connection (0, 1, ...); when it
// returns, the connection is closed (FIN).
class HostilePlc {
 public:
  using Script = std::function<void(PlcSocket& socket, std::size_t connection)>;
  explicit HostilePlc(Script script);
  ~HostilePlc();
  HostilePlc(const HostilePlc&) = delete;
  HostilePlc& operator=(const HostilePlc&) = delete;

  std::uint16_t port() const { return port_; }
  std::size_t connections() const;
  std::vector<std::chrono::steady_clock::time_point> accepted_at() const;
  // What scripts threw, for assertion messages (a script's failure is not the client's).
  std::vector<std::string> problems() const;

 private:
  void run();
  Script script_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mutex_;
  std::vector<std::chrono::steady_clock::time_point> accepted_;
  std::vector<std::string> problems_;
  std::list<std::thread> scripts_;
  std::thread acceptor_;
};

template <auto free_function>
struct OpenSslFree {
  template <class T>
  void operator()(T* p) const {
    free_function(p);
  }
};
using SslContextPtr = std::unique_ptr<SSL_CTX, OpenSslFree<SSL_CTX_free>>;

// A PLC's server context: the chain (leaf first) and key, AES-GCM, P-256/X25519, TLS 1.2 up to
// max_version. Unlike every context of the product it allows renegotiation (a script may ask
// for one). Throws std::runtime_error with OpenSSL's words.
SslContextPtr plc_context(X509* leaf, const std::vector<X509*>& chain, EVP_PKEY* key,
                          int max_version = TLS1_3_VERSION);
// The same from PEM files (the chain file leaf first).
SslContextPtr plc_context(const std::filesystem::path& chain_pem, const std::filesystem::path& key,
                          int max_version = TLS1_3_VERSION);

// The PLC's TLS endpoint over memory BIOs: TLS from the first byte on the socket (tls), or
// inside COTP DT TPDUs of at most 1024 bytes (s7-secure, once the clear preamble is done). In
// mode none there is no TLS: the handshake is done at once, write and read_inner are the socket's
// TPKT frames, and the context may be null.
class PlcTls {
 public:
  PlcTls(PlcSocket& socket, channel::SecurityMode mode, SSL_CTX* context);
  ~PlcTls();
  PlcTls(const PlcTls&) = delete;
  PlcTls& operator=(const PlcTls&) = delete;

  // Until established (true), failed, closed or timeout (false).
  bool handshake(milliseconds timeout);
  // One step of the handshake: reads what the client sent within timeout and lets OpenSSL
  // answer, but keeps the answer (take_ciphertext); for scripts that cut a flight short.
  bool handshake_step(milliseconds timeout);
  channel::Bytes take_ciphertext();  // what OpenSSL produced and was not sent yet
  bool flush();                      // sends what OpenSSL produced (framed for the mode)
  bool send_carrier(channel::ByteView ciphertext);  // raw bytes where TLS records go
  bool write(channel::ByteView plaintext);          // SSL_write, then flush
  // The payload of the next TPKT frame from inside TLS, or nothing (timeout, close, failure).
  std::optional<channel::Bytes> read_inner(milliseconds timeout);
  bool failed() const { return failed_; }
  SSL* ssl() const { return ssl_; }
  // ClientHellos received: 1 after the handshake; more only when the client renegotiated.
  int client_hellos() const { return received_.client_hellos.load(); }
  int key_updates() const { return received_.key_updates.load(); }  // KeyUpdates received

 private:
  bool receive(milliseconds timeout);  // ciphertext from the client into OpenSSL
  static void count_received(int write, int version, int content_type, const void* message,
                             std::size_t length, SSL* ssl, void* received);
  PlcSocket& socket_;
  channel::SecurityMode mode_;
  SSL* ssl_ = nullptr;
  BIO* in_ = nullptr;   // owned by ssl_
  BIO* out_ = nullptr;  // owned by ssl_
  channel::TpktReassembler inner_{8192};
  bool failed_ = false;
  struct Received {  // handshake messages from the client (OpenSSL's message callback)
    std::atomic<int> client_hellos{0}, key_updates{0};
  } received_;
};

// plcsim's session logic behind a PlcTls: a script that wants the connection up uses this.
class PlcService {
 public:
  PlcService(PlcSocket& socket, channel::SecurityMode mode, SSL_CTX* context);
  // s7-secure: COTP CR/CC and InitSSL in clear; tls: nothing. Then the TLS handshake.
  bool handshake(milliseconds timeout);
  // Answers from inside TLS until setup communication was answered: the client is up then.
  bool until_up(milliseconds timeout);
  // Answers the next TPDU from the client: once up, its next job (at the latest the CPU-state
  // read an idle connection sends), so the client is known to be up when this returns true.
  bool answer_next(milliseconds timeout);
  // Answers until the client closes (true), the server stops or `limit` passed (false).
  bool serve(milliseconds limit);
  PlcTls& tls() { return tls_; }
  PlcSocket& socket() { return socket_; }

 private:
  bool answer(const channel::Bytes& tpdu);  // false when the session says close
  PlcSocket& socket_;
  channel::SecurityMode mode_;
  plcsim::PlcState state_;
  plcsim::ServerSession session_;
  PlcTls tls_;
};

// s7-secure's clear preamble done by hand, for scripts that break it: reads the CR and answers
// the CC (TPDU 1024). Then the InitSSL request is next.
bool confirm_connect(PlcSocket& socket, milliseconds timeout);

// Peak resident memory of this process (VmHWM, kB), and its reset (clear_refs 5); 0 / false
// where the kernel does not offer them.
std::size_t peak_rss_kb();
bool reset_peak_rss();

}  // namespace scada::test
