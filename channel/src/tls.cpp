// TLS contexts and the memory-buffer TLS endpoint (channel.h, section TLS).
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <fstream>
#include <mutex>
#include <stdexcept>

#include "channel/channel.h"

namespace scada::channel {

class TlsContext {
 public:
  SSL_CTX* ctx = nullptr;
  std::string psk_identity;
  Bytes psk_key;
  std::filesystem::path keylog;
  ~TlsContext() { SSL_CTX_free(ctx); }
};

namespace {
// What the client's certificate callback needs of its engine (reached through SSL ex_data).
struct VerifyHook {
  TlsVerifier verifier;
  std::string failure;               // the verifier's reason, reported instead of OpenSSL's words
  std::string alert;                 // the last fatal alert the peer sent, in words
  int alert_code = 0;                // and its code (RFC 8446 §6)
  int key_updates_without_data = 0;  // KeyUpdates the peer sent since its last application data
};

// More KeyUpdates than this from the peer with no data between them is a flood: a PLC updates
// its keys once in a long while (this side every hour), and each one asking for an answer costs
// this side a key derivation and a record.
constexpr int kMaxKeyUpdatesWithoutData = 16;
}  // namespace

class TlsSession {
 public:
  explicit TlsSession(SSL_SESSION* s) : session(s) {}
  ~TlsSession() { SSL_SESSION_free(session); }
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;
  SSL_SESSION* session;
};

struct TlsEngine::Impl {
  TlsContextPtr context;
  SSL* ssl = nullptr;
  BIO* network_in = nullptr;   // owned by ssl
  BIO* network_out = nullptr;  // owned by ssl
  VerifyHook hook;
  bool offered_session = false;
  bool established = false;
  bool peer_closed = false;
  std::string error;
};

namespace {

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

int context_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}
int engine_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// Remembers the last fatal alert the peer sent, for a reason an operator can act on.
// OpenSSL 3.0 names some TLS 1.3 alerts "unknown"; those are named here. Both bits must be set:
// SSL_CB_READ_ALERT shares SSL_CB_ALERT with SSL_CB_WRITE_ALERT, and an alert this side sends
// (its own verdict on bytes the peer sent) is not the peer's.
// Counts the peer's TLS 1.3 KeyUpdate messages (handshake type 24) for the flood limit.
void note_message(int write_p, int /*version*/, int content_type, const void* buf, std::size_t len,
                  SSL* ssl, void* /*arg*/) {
  if (write_p != 0 || content_type != SSL3_RT_HANDSHAKE || len < 1) return;
  if (static_cast<const std::uint8_t*>(buf)[0] != SSL3_MT_KEY_UPDATE) return;
  if (auto* hook = static_cast<VerifyHook*>(SSL_get_ex_data(ssl, engine_index()))) {
    ++hook->key_updates_without_data;
  }
}

void note_alert(const SSL* ssl, int where, int value) {
  if ((where & SSL_CB_READ_ALERT) != SSL_CB_READ_ALERT || (value >> 8) != SSL3_AL_FATAL) return;
  auto* hook = static_cast<VerifyHook*>(SSL_get_ex_data(ssl, engine_index()));
  if (!hook) return;
  hook->alert_code = value & 0xFF;
  switch (hook->alert_code) {
    case 109:
      hook->alert = "missing extension";
      break;
    case 115:
      hook->alert = "unknown PSK identity";
      break;
    case 116:
      hook->alert = "certificate required";
      break;
    case 120:
      hook->alert = "no application protocol";
      break;
    default:
      hook->alert = SSL_alert_desc_string_long(value);
  }
}

const TlsContext* context_of(const SSL* ssl) {
  return static_cast<const TlsContext*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), context_index()));
}

SSL_SESSION* psk_session(SSL* ssl, const TlsContext& c) {
  static const unsigned char kAes128GcmSha256[] = {0x13, 0x01};
  const SSL_CIPHER* cipher = SSL_CIPHER_find(ssl, kAes128GcmSha256);
  SSL_SESSION* s = SSL_SESSION_new();
  if (!s || !cipher || !SSL_SESSION_set1_master_key(s, c.psk_key.data(), c.psk_key.size()) ||
      !SSL_SESSION_set_cipher(s, cipher) || !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION)) {
    SSL_SESSION_free(s);
    return nullptr;
  }
  return s;
}

// Server: the session the client's PSK identity selects, or none (then certificates decide).
int find_psk(SSL* ssl, const unsigned char* identity, std::size_t length, SSL_SESSION** session) {
  *session = nullptr;
  const TlsContext* c = context_of(ssl);
  if (!c || std::string(reinterpret_cast<const char*>(identity), length) != c->psk_identity)
    return 1;
  *session = psk_session(ssl, *c);
  return *session ? 1 : 0;
}

// Client: offers the configured PSK.
int use_psk(SSL* ssl, const EVP_MD*, const unsigned char** id, std::size_t* idlen,
            SSL_SESSION** session) {
  const TlsContext* c = context_of(ssl);
  *session = c ? psk_session(ssl, *c) : nullptr;
  if (!*session) return 0;
  *id = reinterpret_cast<const unsigned char*>(c->psk_identity.data());
  *idlen = c->psk_identity.size();
  return 1;
}

void write_keylog(const SSL* ssl, const char* line) {
  static std::mutex mutex;
  const TlsContext* c = context_of(ssl);
  if (!c || c->keylog.empty()) return;
  std::lock_guard<std::mutex> lock(mutex);
  std::ofstream(c->keylog, std::ios::app) << line << "\n";
}

// Client: the peer chain goes to the engine's verifier; without one, nothing is trusted.
int verify_chain(X509_STORE_CTX* store, void*) {
  SSL* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* hook = ssl ? static_cast<VerifyHook*>(SSL_get_ex_data(ssl, engine_index())) : nullptr;
  std::vector<Bytes> chain;
  if (STACK_OF(X509)* untrusted = X509_STORE_CTX_get0_untrusted(store)) {
    for (int i = 0; i < sk_X509_num(untrusted); ++i) {
      X509* x = sk_X509_value(untrusted, i);
      const int n = i2d_X509(x, nullptr);
      if (n <= 0) continue;
      Bytes der(static_cast<std::size_t>(n));
      unsigned char* p = der.data();
      i2d_X509(x, &p);
      chain.push_back(std::move(der));
    }
  }
  std::optional<std::string> reason;
  if (!hook || !hook->verifier) {
    reason = "no trust decision configured for this connection (fail closed)";
  } else if (chain.empty()) {
    reason = "the PLC presented no certificate";
  } else {
    reason = hook->verifier(chain);
  }
  if (!reason) return 1;
  if (hook) hook->failure = *reason;
  X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
  return 0;
}

void load_certificate(SSL_CTX* ctx, const std::filesystem::path& file) {
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

std::shared_ptr<TlsContext> make_context(const TlsSettings& s, bool server) {
  ERR_clear_error();
  auto c = std::make_shared<TlsContext>();
  c->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (!c->ctx) throw std::runtime_error(openssl_errors("cannot create an SSL context"));
  SSL_CTX* ctx = c->ctx;
  SSL_CTX_set_ex_data(ctx, context_index(), c.get());
  SSL_CTX_set_min_proto_version(ctx, s.allow_tls12 ? TLS1_2_VERSION : TLS1_3_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  // AES-GCM only; P-256 and X25519 only, which also keeps a ClientHello within one 1024-byte
  // TPDU (a default post-quantum hybrid key share would not fit, WIRE.md §5).
  SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384");
  SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM");
  SSL_CTX_set1_groups_list(ctx, "P-256:X25519");
  // An idle session gives its record buffers back (about 34 KiB each way): a plant's
  // thousand mostly idle sessions then cost little memory.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (!s.certificate.empty() || !s.key.empty()) {
    if (s.certificate.empty() || s.key.empty()) {
      throw std::runtime_error("a certificate needs its key and a key its certificate");
    }
    load_certificate(ctx, s.certificate);
    load_key(ctx, s.key);
    if (SSL_CTX_check_private_key(ctx) != 1) {
      throw std::runtime_error(s.key.string() + ": the key does not match " +
                               s.certificate.string());
    }
  }
  if (!s.psk_identity.empty() || !s.psk_key.empty()) {
    if (s.psk_identity.empty() || s.psk_key.size() < 16) {
      throw std::runtime_error("a PSK needs an identity and at least 16 key bytes");
    }
    c->psk_identity = s.psk_identity;
    c->psk_key = s.psk_key;
    if (server)
      SSL_CTX_set_psk_find_session_callback(ctx, find_psk);
    else
      SSL_CTX_set_psk_use_session_callback(ctx, use_psk);
  }
  if (!s.keylog.empty()) {
    c->keylog = s.keylog;
    SSL_CTX_set_keylog_callback(ctx, write_keylog);
  }
  if (server) {
    if (s.certificate.empty() && s.psk_identity.empty()) {
      throw std::runtime_error("a TLS server needs a certificate and key, or a PSK");
    }
    if (!s.client_ca.empty()) {
      if (SSL_CTX_load_verify_locations(ctx, s.client_ca.c_str(), nullptr) != 1) {
        throw std::runtime_error(s.client_ca.string() +
                                 ": not a usable CA file: " + openssl_errors("unreadable"));
      }
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
  } else {
    // The client always verifies, through the engine's verifier (certstore's decision).
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_cert_verify_callback(ctx, verify_chain, nullptr);
    // Sessions are kept by the caller (resumable_session), not in a cache of the context.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  }
  SSL_CTX_set_info_callback(ctx, note_alert);
  SSL_CTX_set_msg_callback(ctx, note_message);
  return c;
}

}  // namespace

TlsContextPtr make_tls_server_context(const TlsSettings& settings) {
  return make_context(settings, true);
}
TlsContextPtr make_tls_client_context(const TlsSettings& settings) {
  return make_context(settings, false);
}

TlsEngine::TlsEngine(TlsContextPtr context, bool server, TlsVerifier verifier,
                     const std::string& server_name, std::shared_ptr<TlsSession> resume)
    : impl_(std::make_unique<Impl>()) {
  impl_->context = std::move(context);
  impl_->hook.verifier = std::move(verifier);
  impl_->ssl = SSL_new(impl_->context->ctx);
  impl_->network_in = BIO_new(BIO_s_mem());
  impl_->network_out = BIO_new(BIO_s_mem());
  BIO_set_mem_eof_return(impl_->network_in, -1);  // empty means "later", not end of file
  SSL_set_bio(impl_->ssl, impl_->network_in, impl_->network_out);
  SSL_set_ex_data(impl_->ssl, engine_index(), &impl_->hook);
  if (server) {
    SSL_set_accept_state(impl_->ssl);
  } else {
    SSL_set_connect_state(impl_->ssl);
    const bool host_name = !server_name.empty() &&
                           server_name.find_first_not_of("0123456789.") != std::string::npos &&
                           server_name.find(':') == std::string::npos;
    if (host_name) SSL_set_tlsext_host_name(impl_->ssl, server_name.c_str());
    if (resume && SSL_SESSION_is_resumable(resume->session) &&
        SSL_set_session(impl_->ssl, resume->session) == 1) {
      impl_->offered_session = true;
    }
  }
}

TlsEngine::~TlsEngine() {
  SSL_free(impl_->ssl);
}

void TlsEngine::feed(ByteView ciphertext) {
  if (!ciphertext.empty()) BIO_write(impl_->network_in, ciphertext.data(), int(ciphertext.size()));
}

bool TlsEngine::pump(Bytes& plaintext) {
  Impl& m = *impl_;
  if (!m.error.empty()) return false;
  ERR_clear_error();
  if (!m.established) {
    const int r = SSL_do_handshake(m.ssl);
    if (r != 1) {
      const int e = SSL_get_error(m.ssl, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return true;
      m.error = !m.hook.failure.empty()
                    ? m.hook.failure
                    : "TLS handshake failed: " + openssl_errors("error " + std::to_string(e));
      return false;
    }
    m.established = true;
  }
  std::uint8_t buf[16384];
  while (true) {
    const int n = SSL_read(m.ssl, buf, sizeof buf);
    if (m.hook.key_updates_without_data > kMaxKeyUpdatesWithoutData) {
      m.error = "TLS session failed: the peer sent " +
                std::to_string(m.hook.key_updates_without_data) +
                " KeyUpdates without data between them (a KeyUpdate flood; at most " +
                std::to_string(kMaxKeyUpdatesWithoutData) + " are taken)";
      return false;
    }
    if (n > 0) {
      m.hook.key_updates_without_data = 0;
      plaintext.insert(plaintext.end(), buf, buf + n);
      continue;
    }
    const int e = SSL_get_error(m.ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return true;
    if (e == SSL_ERROR_ZERO_RETURN) {
      m.peer_closed = true;
      return true;
    }
    m.error = "TLS session failed: " + openssl_errors("error " + std::to_string(e));
    return false;
  }
}

bool TlsEngine::write(ByteView plaintext) {
  Impl& m = *impl_;
  if (!m.error.empty()) return false;
  std::size_t done = 0;
  while (done < plaintext.size()) {
    const int n = SSL_write(m.ssl, plaintext.data() + done, int(plaintext.size() - done));
    if (n <= 0) {
      m.error =
          "TLS write failed: " + openssl_errors("error " + std::to_string(SSL_get_error(m.ssl, n)));
      return false;
    }
    done += std::size_t(n);
  }
  return true;
}

Bytes TlsEngine::take_output() {
  Bytes out(std::size_t(BIO_ctrl_pending(impl_->network_out)));
  if (!out.empty()) {
    const int n = BIO_read(impl_->network_out, out.data(), int(out.size()));
    out.resize(std::size_t(std::max(0, n)));
  }
  return out;
}

void TlsEngine::shutdown() {
  if (impl_->established) SSL_shutdown(impl_->ssl);
}

bool TlsEngine::key_update() {
  return impl_->established && SSL_version(impl_->ssl) == TLS1_3_VERSION &&
         SSL_key_update(impl_->ssl, SSL_KEY_UPDATE_REQUESTED) == 1 &&
         SSL_do_handshake(impl_->ssl) == 1;
}

bool TlsEngine::established() const {
  return impl_->established;
}
bool TlsEngine::peer_closed() const {
  return impl_->peer_closed;
}
const std::string& TlsEngine::error() const {
  return impl_->error;
}
std::string TlsEngine::version() const {
  return impl_->established ? SSL_get_version(impl_->ssl) : "";
}
std::string TlsEngine::cipher() const {
  const SSL_CIPHER* c = impl_->established ? SSL_get_current_cipher(impl_->ssl) : nullptr;
  return c ? SSL_CIPHER_get_name(c) : "";
}
std::string TlsEngine::group() const {
  if (!impl_->established) return "";
  const int nid = SSL_get_negotiated_group(impl_->ssl);
  const char* name = nid ? OBJ_nid2sn(nid & ~TLSEXT_nid_unknown) : nullptr;
  return name ? name : "";
}
bool TlsEngine::used_psk() const {
  return impl_->established && SSL_session_reused(impl_->ssl);
}
bool TlsEngine::resumed() const {
  return impl_->offered_session && used_psk();
}
const std::string& TlsEngine::peer_alert() const {
  return impl_->hook.alert;
}
int TlsEngine::peer_alert_code() const {
  return impl_->hook.alert_code;
}

Bytes TlsEngine::own_certificate() const {
  X509* x = SSL_get_certificate(impl_->ssl);
  const int n = x ? i2d_X509(x, nullptr) : 0;
  if (n <= 0) return {};
  Bytes der(static_cast<std::size_t>(n));
  unsigned char* p = der.data();
  i2d_X509(x, &p);
  return der;
}

std::shared_ptr<TlsSession> TlsEngine::resumable_session() const {
  if (!impl_->established) return nullptr;
  // A copy: OpenSSL marks the live session's own object not resumable when the connection ends
  // without close_notify (a PLC that closed, a dead peer), and those are the reconnects that
  // resumption is for.
  SSL_SESSION* live = SSL_get0_session(impl_->ssl);
  SSL_SESSION* s = live ? SSL_SESSION_dup(live) : nullptr;
  if (!s) return nullptr;
  if (!SSL_SESSION_is_resumable(s)) {
    SSL_SESSION_free(s);
    return nullptr;
  }
  return std::make_shared<TlsSession>(s);
}

std::vector<Bytes> TlsEngine::peer_chain() const {
  std::vector<Bytes> out;
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(impl_->ssl);
  for (int i = 0; chain && i < sk_X509_num(chain); ++i) {
    const int n = i2d_X509(sk_X509_value(chain, i), nullptr);
    if (n <= 0) continue;
    Bytes der(static_cast<std::size_t>(n));
    unsigned char* p = der.data();
    i2d_X509(sk_X509_value(chain, i), &p);
    out.push_back(std::move(der));
  }
  return out;
}

}  // namespace scada::channel
