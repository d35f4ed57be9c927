#include "tls_context.h"

#include <cctype>
#include <fstream>
#include <stdexcept>

namespace scada::plcsim {

namespace {

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

channel::TlsContextPtr TlsContextSource::build() const {
  channel::TlsSettings s;
  s.certificate = settings_.certificate;
  s.key = settings_.key;
  s.client_ca = settings_.client_ca;
  // A PLC may be asked for TLS 1.2 by a client that allows it.
  s.allow_tls12 = true;
  if (!settings_.psk_identity.empty()) {
    s.psk_identity = settings_.psk_identity;
    s.psk_key = read_psk(settings_.psk_file);
  }
  return channel::make_tls_server_context(s);
}

channel::TlsContextPtr TlsContextSource::current(std::string& problem) {
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
