// A TLS endpoint over memory BIOs: ciphertext in and out as bytes, plaintext in and out as
// bytes, no sockets. plcsim feeds it from TCP (tls mode) or from COTP DT payloads
// (s7-secure mode), so both modes share one TLS path.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "channel/channel.h"

namespace scada::plcsim {

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using SslCtxPtr = std::shared_ptr<SSL_CTX>;

// The text of the OpenSSL error queue (emptied), or fallback when it is empty.
std::string openssl_errors(const std::string& fallback);

class TlsEngine {
 public:
  // Server side of one session on ctx (kept alive as long as the session).
  explicit TlsEngine(SslCtxPtr ctx);
  ~TlsEngine();
  TlsEngine(const TlsEngine&) = delete;
  TlsEngine& operator=(const TlsEngine&) = delete;

  // Hands ciphertext received from the peer to TLS.
  void feed(channel::ByteView ciphertext);
  // Runs the handshake and reads what plaintext is available into out (appended). Returns false
  // with error() set when the session failed (bad handshake, alert, protocol error).
  bool pump(channel::Bytes& plaintext_out);
  // Encrypts plaintext for the peer (after the handshake).
  bool write(channel::ByteView plaintext);
  // Ciphertext waiting to be sent to the peer (handshake messages, records, alerts).
  channel::Bytes take_output();
  // Queues a close_notify alert (then take_output()).
  void shutdown();

  bool established() const { return established_; }
  bool peer_closed() const { return peer_closed_; }
  const std::string& error() const { return error_; }
  std::string describe() const;  // "TLSv1.3 TLS_AES_128_GCM_SHA256 X25519" after the handshake

 private:
  SslCtxPtr ctx_;
  SSL* ssl_ = nullptr;
  BIO* network_in_ = nullptr;   // owned by ssl_
  BIO* network_out_ = nullptr;  // owned by ssl_
  bool established_ = false;
  bool peer_closed_ = false;
  std::string error_;
};

}  // namespace scada::plcsim
