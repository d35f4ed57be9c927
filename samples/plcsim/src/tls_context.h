// Builds plcsim's server SSL_CTX from its files and rebuilds it when they change, so that new
// handshakes present a renewed certificate while established sessions keep theirs (each
// session holds the context it was born with).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "plcsim/plcsim.h"
#include "tls_engine.h"

namespace scada::plcsim {

class TlsContextSource {
 public:
  // Throws std::runtime_error naming the file and the reason when the first build fails.
  explicit TlsContextSource(TlsSettings settings);
  // The context for a new handshake. When a file changed since the last build, builds a new
  // one; if that fails (a file half written, a key that does not match), keeps the last good
  // context and says why in problem.
  SslCtxPtr current(std::string& problem);

 private:
  struct Stamp {
    std::filesystem::file_time_type time{};
    std::uintmax_t size = 0;
    bool operator==(const Stamp&) const = default;
  };
  std::vector<Stamp> stamps() const;
  SslCtxPtr build() const;

  TlsSettings settings_;
  std::vector<Stamp> built_from_;
  SslCtxPtr ctx_;
};

}  // namespace scada::plcsim
