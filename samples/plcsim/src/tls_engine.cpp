#include "tls_engine.h"

#include <openssl/err.h>

namespace scada::plcsim {

std::string openssl_errors(const std::string& fallback) {
  std::string text;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!text.empty()) text += "; ";
    text += buf;
  }
  return text.empty() ? fallback : text;
}

TlsEngine::TlsEngine(SslCtxPtr ctx) : ctx_(std::move(ctx)) {
  ssl_ = SSL_new(ctx_.get());
  network_in_ = BIO_new(BIO_s_mem());
  network_out_ = BIO_new(BIO_s_mem());
  // An empty input BIO means "try again later", not end of file.
  BIO_set_mem_eof_return(network_in_, -1);
  SSL_set_bio(ssl_, network_in_, network_out_);
  SSL_set_accept_state(ssl_);
}

TlsEngine::~TlsEngine() {
  SSL_free(ssl_);
}

void TlsEngine::feed(channel::ByteView ciphertext) {
  if (!ciphertext.empty()) BIO_write(network_in_, ciphertext.data(), int(ciphertext.size()));
}

bool TlsEngine::pump(channel::Bytes& plaintext_out) {
  if (!error_.empty()) return false;
  ERR_clear_error();
  if (!established_) {
    const int r = SSL_do_handshake(ssl_);
    if (r == 1) {
      established_ = true;
    } else {
      const int e = SSL_get_error(ssl_, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return true;
      error_ = "TLS handshake failed: " + openssl_errors("error " + std::to_string(e));
      return false;
    }
  }
  std::uint8_t buf[16384];
  while (true) {
    const int n = SSL_read(ssl_, buf, sizeof buf);
    if (n > 0) {
      plaintext_out.insert(plaintext_out.end(), buf, buf + n);
      continue;
    }
    const int e = SSL_get_error(ssl_, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return true;
    if (e == SSL_ERROR_ZERO_RETURN) {
      peer_closed_ = true;
      return true;
    }
    error_ = "TLS session failed: " + openssl_errors("error " + std::to_string(e));
    return false;
  }
}

bool TlsEngine::write(channel::ByteView plaintext) {
  if (!error_.empty()) return false;
  std::size_t done = 0;
  while (done < plaintext.size()) {
    const int n = SSL_write(ssl_, plaintext.data() + done, int(plaintext.size() - done));
    if (n <= 0) {
      error_ =
          "TLS write failed: " + openssl_errors("error " + std::to_string(SSL_get_error(ssl_, n)));
      return false;
    }
    done += std::size_t(n);
  }
  return true;
}

channel::Bytes TlsEngine::take_output() {
  channel::Bytes out(std::size_t(BIO_ctrl_pending(network_out_)));
  if (!out.empty())
    out.resize(std::size_t(std::max(0, BIO_read(network_out_, out.data(), int(out.size())))));
  return out;
}

void TlsEngine::shutdown() {
  if (established_) SSL_shutdown(ssl_);
}

std::string TlsEngine::describe() const {
  if (!established_) return "handshake not finished";
  std::string s = SSL_get_version(ssl_);
  if (const SSL_CIPHER* c = SSL_get_current_cipher(ssl_))
    s += std::string(" ") + SSL_CIPHER_get_name(c);
  const int group = SSL_get_negotiated_group(ssl_);
  if (group != 0) {
    if (const char* name = OBJ_nid2sn(group & ~TLSEXT_nid_unknown)) s += std::string(" ") + name;
  }
  if (SSL_session_reused(ssl_)) s += " (psk)";
  return s;
}

}  // namespace scada::plcsim
