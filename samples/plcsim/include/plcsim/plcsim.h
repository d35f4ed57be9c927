// plcsim: an S7-style PLC simulator, as a library for tests and as the `plcsim` program.
//
// One Simulator serves one or more simulated CPUs, each on its own TCP port with its own memory,
// identity and certificate, all on one Boost.Asio event loop. Every CPU speaks one of the
// three security modes of WIRE.md §5 and serves with the project's own codec (channel/).
// Faults can be switched on while it runs, from tests through this API and from the command
// line through the control socket.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "channel/channel.h"

namespace scada::plcsim {

// The modes of WIRE.md §5, the same enum the runtime's connections use.
using SecurityMode = channel::SecurityMode;
inline const char* mode_name(SecurityMode mode) {  // "none", "tls", "s7-secure"
  return channel::security_mode_name(mode);
}

struct TlsSettings {
  // PEM or DER certificate chain (leaf first) and private key. Re-read when the files change:
  // new handshakes use the new pair, established sessions keep theirs.
  std::filesystem::path certificate, key;
  // When set, clients must present a certificate issued by this CA (PEM).
  std::filesystem::path client_ca;
  // TLS 1.3 external PSK instead of (or besides) certificates: identity and a file holding the
  // key as text (hex, at least 32 bytes of key).
  std::string psk_identity;
  std::filesystem::path psk_file;
};

struct PlcConfig {
  std::string name = "PLC1";
  SecurityMode mode = SecurityMode::none;
  std::uint16_t max_pdu = 480;  // offered in setup communication: 240, 480 or 960
  std::uint16_t max_amq = 2;    // jobs in parallel; more are queued (answered in order)
  std::map<std::uint16_t, std::size_t> data_blocks = {{1, 1024}};  // DB number -> bytes
  std::size_t flags_bytes = 1024, inputs_bytes = 256, outputs_bytes = 256;
  std::uint16_t timers = 256, counters = 256;
  // Process values that move while the CPU is in RUN, in their own data block:
  // DInt counter at byte 0 (+1 per tick), Real sawtooth 0..100 at byte 4, Real sine at byte 8,
  // Int tick period in ms at byte 12. 0 disables them.
  std::uint16_t process_db = 100;
  std::chrono::milliseconds process_period{100};
  // Identity answered in SZL 0x0011 / 0x001C.
  std::string order_number = "6ES7 516-3AN02-0AB0";
  std::string firmware = "V2.9.4";
  std::string serial_number = "S V-PLCSIM000001";
  std::string module_type = "CPU 1516-3 PN/DP";
  TlsSettings tls;
};

// Faults, switched while running. Each applies to the PLC's current connections (close, reset,
// garbage, oversize) or from now on (stall, delay, wrong reference, refuse).
struct Faults {
  bool stall = false;                  // keep TCP open, stop reading and answering
  std::chrono::milliseconds delay{0};  // delay every reply by this much
  bool wrong_pdu_ref = false;          // answer with a PDU reference the client did not send
  bool refuse_connections = false;     // close new connections right after accept
};

class Plc {
 public:
  virtual ~Plc() = default;
  virtual const PlcConfig& config() const = 0;
  virtual std::uint16_t port() const = 0;
  virtual std::size_t connections() const = 0;

  // Memory as the CPU sees it (thread-safe). Offsets in bytes; timers and counters by number,
  // 2 bytes each. Throws std::out_of_range naming the area when the range does not exist.
  virtual channel::Bytes read(channel::Area area, std::uint16_t db, std::uint32_t offset,
                              std::size_t length) const = 0;
  virtual void write(channel::Area area, std::uint16_t db, std::uint32_t offset,
                     channel::ByteView bytes) = 0;

  virtual void set_running(bool run) = 0;  // RUN / STOP (SZL 0x0424, process values)
  virtual bool running() const = 0;

  virtual void set_faults(const Faults& faults) = 0;
  virtual Faults faults() const = 0;
  virtual void close_connections() = 0;   // orderly TCP close (FIN)
  virtual void reset_connections() = 0;   // abortive close (RST)
  virtual void send_garbage() = 0;        // a frame of random bytes on every connection
  virtual void send_oversize_tpkt() = 0;  // a TPKT longer than the negotiated TPDU size
};

// One line per connection event and per fault, e.g. "PLC1 127.0.0.1:40102 accepted 127.0.0.1:5512".
using LogSink = std::function<void(const std::string& line)>;

class Simulator {
 public:
  // Starts every PLC listening on address, on consecutive ports from first_port (0: each PLC
  // gets an ephemeral port). Throws std::runtime_error naming the PLC and the reason when a PLC
  // cannot start (port in use, unreadable certificate or key, weak or missing PSK).
  Simulator(std::vector<PlcConfig> plcs, const std::string& address, std::uint16_t first_port,
            LogSink log = {});
  ~Simulator();  // stops listening and closes every connection
  Simulator(const Simulator&) = delete;
  Simulator& operator=(const Simulator&) = delete;

  std::size_t size() const;
  Plc& plc(std::size_t index);

  // Serves text commands on a Unix socket, one per line, answered "ok" or "error: reason":
  //   [PLC] close | reset | stall on|off | delay MS | garbage | oversize | wrongref on|off |
  //         stop | run | refuse on|off | status
  // PLC is a name or index; without it the command applies to every PLC.
  void serve_control(const std::filesystem::path& socket_path);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace scada::plcsim
