#include "tls_context.h"

#include <openssl/err.h>

#include <cctype>
#include <fstream>
#include <stdexcept>

namespace scada::plcsim {

namespace {

struct PskKey {
  std::string identity;
  channel::Bytes key;
};

int psk_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// TLS 1.3 external PSK: the session the client's identity selects, or none.
int find_psk_session(SSL* ssl, const unsigned char* identity, std::size_t length,
                     SSL_SESSION** session) {
  *session = nullptr;
  const auto* psk =
      static_cast<const PskKey*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), psk_index()));
  if (!psk || std::string(reinterpret_cast<const char*>(identity), length) != psk->identity) {
    return 1;  // unknown identity: no PSK, the handshake falls back to certificates (or fails)
  }
  static const unsigned char kAes128GcmSha256[] = {0x13, 0x01};
  const SSL_CIPHER* cipher = SSL_CIPHER_find(ssl, kAes128GcmSha256);
  SSL_SESSION* s = SSL_SESSION_new();
  if (!s || !cipher || !SSL_SESSION_set1_master_key(s, psk->key.data(), psk->key.size()) ||
      !SSL_SESSION_set_cipher(s, cipher) || !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION)) {
    SSL_SESSION_free(s);
    return 0;
  }
  *session = s;
  return 1;
}

channel::Bytes read_psk(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error(file.string() + ": cannot open the PSK file");
  std::string text;
  std::getline(in, text);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  if (text.size() % 2 != 0 || text.size() < 32 || text.size() > 128) {
    throw std::runtime_error(file.string() +
                             ": the PSK must be 32 to 128 hex digits (16 to 64 bytes), found " +
                             std::to_string(text.size()) + " characters");
  }
  channel::Bytes key;
  for (std::size_t i = 0; i < text.size(); i += 2) {
    const auto hex = [&](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      c = char(std::tolower(static_cast<unsigned char>(c)));
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      throw std::runtime_error(file.string() +
                               ": the PSK holds a character that is not a hex digit");
    };
    key.push_back(std::uint8_t(hex(text[i]) << 4 | hex(text[i + 1])));
  }
  return key;
}

void load_certificate(SSL_CTX* ctx, const std::filesystem::path& file) {
  // A PEM chain (leaf first), or a single DER certificate.
  if (SSL_CTX_use_certificate_chain_file(ctx, file.c_str()) == 1) return;
  ERR_clear_error();
  if (SSL_CTX_use_certificate_file(ctx, file.c_str(), SSL_FILETYPE_ASN1) == 1) return;
  throw std::runtime_error(file.string() + ": not a usable certificate (PEM chain or DER): " +
                           openssl_errors("unreadable"));
}

void load_key(SSL_CTX* ctx, const std::filesystem::path& file) {
  if (SSL_CTX_use_PrivateKey_file(ctx, file.c_str(), SSL_FILETYPE_PEM) == 1) return;
  ERR_clear_error();
  if (SSL_CTX_use_PrivateKey_file(ctx, file.c_str(), SSL_FILETYPE_ASN1) == 1) return;
  throw std::runtime_error(
      file.string() + ": not a usable private key (PEM or DER): " + openssl_errors("unreadable"));
}

}  // namespace

TlsContextSource::TlsContextSource(TlsSettings settings) : settings_(std::move(settings)) {
  if (settings_.certificate.empty() != settings_.key.empty()) {
    throw std::runtime_error("a certificate needs its key and a key its certificate");
  }
  if (settings_.certificate.empty() && settings_.psk_identity.empty()) {
    throw std::runtime_error("a secure mode needs a certificate and key, or a PSK");
  }
  if (settings_.psk_identity.empty() != settings_.psk_file.empty()) {
    throw std::runtime_error("a PSK needs both an identity and a key file");
  }
  built_from_ = stamps();
  ctx_ = build();
}

std::vector<TlsContextSource::Stamp> TlsContextSource::stamps() const {
  std::vector<Stamp> out;
  for (const auto* p :
       {&settings_.certificate, &settings_.key, &settings_.client_ca, &settings_.psk_file}) {
    Stamp s;
    std::error_code ec;
    if (!p->empty()) {
      s.time = std::filesystem::last_write_time(*p, ec);
      s.size = std::filesystem::file_size(*p, ec);
    }
    out.push_back(s);
  }
  return out;
}

SslCtxPtr TlsContextSource::build() const {
  ERR_clear_error();
  SSL_CTX* raw = SSL_CTX_new(TLS_server_method());
  if (!raw) throw std::runtime_error(openssl_errors("cannot create an SSL context"));
  auto psk = std::make_shared<PskKey>();
  // The PSK lives as long as the context that points at it.
  SslCtxPtr ctx(raw, [psk](SSL_CTX* c) { SSL_CTX_free(c); });
  SSL_CTX_set_min_proto_version(raw, TLS1_2_VERSION);
  SSL_CTX_set_options(
      raw, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_ciphersuites(raw, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384");
  SSL_CTX_set_cipher_list(raw, "ECDHE+AESGCM");
  SSL_CTX_set1_groups_list(raw, "P-256:X25519");
  if (!settings_.certificate.empty()) {
    load_certificate(raw, settings_.certificate);
    load_key(raw, settings_.key);
    if (SSL_CTX_check_private_key(raw) != 1) {
      throw std::runtime_error(settings_.key.string() + ": the key does not match " +
                               settings_.certificate.string());
    }
  }
  if (!settings_.client_ca.empty()) {
    if (SSL_CTX_load_verify_locations(raw, settings_.client_ca.c_str(), nullptr) != 1) {
      throw std::runtime_error(settings_.client_ca.string() +
                               ": not a usable CA file: " + openssl_errors("unreadable"));
    }
    SSL_CTX_set_verify(raw, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  if (!settings_.psk_identity.empty()) {
    psk->identity = settings_.psk_identity;
    psk->key = read_psk(settings_.psk_file);
    SSL_CTX_set_ex_data(raw, psk_index(), psk.get());
    SSL_CTX_set_psk_find_session_callback(raw, find_psk_session);
  }
  return ctx;
}

SslCtxPtr TlsContextSource::current(std::string& problem) {
  problem.clear();
  auto now = stamps();
  if (now != built_from_) {
    try {
      ctx_ = build();
      built_from_ = now;
      problem = "certificate files changed: new handshakes use them";
    } catch (const std::exception& e) {
      // Keep serving with the last good context; try again at the next handshake.
      problem =
          std::string("certificate files changed but cannot be used, keeping the previous ones: ") +
          e.what();
    }
  }
  return ctx_;
}

}  // namespace scada::plcsim
