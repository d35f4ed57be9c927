// Builds plcsim's server SSL_CTX from its files and rebuilds it when they change, so that new
// handshakes present a renewed certificate while established sessions keep theirs (each
// session holds the context it was born with).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "channel/channel.h"
#include "plcsim/plcsim.h"

namespace scada::plcsim {

class TlsContextSource {
 public:
  // Throws std::runtime_error naming the file and the reason when the first build fails.
  explicit TlsContextSource(TlsSettings settings);
  // The context for a new handshake. When a file changed since the last build, builds a new
  // one; if that fails (a file half written, a key that does not match), keeps the last good
  // context and says why in problem.
  channel::TlsContextPtr current(std::string& problem);

 private:
  struct Stamp {
    std::filesystem::file_time_type time{};
    std::uintmax_t size = 0;
    bool operator==(const Stamp&) const = default;
  };
  std::vector<Stamp> stamps() const;
  channel::TlsContextPtr build() const;

  TlsSettings settings_;
  std::vector<Stamp> built_from_;
  channel::TlsContextPtr ctx_;
};

}  // namespace scada::plcsim
