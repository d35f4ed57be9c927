// A TCP fault proxy for the robustness tests and the soak: it listens on loopback, forwards
// every accepted connection to one target (a plcsim PLC) and can be switched at runtime, from
// any thread, into a fault:
//
//   pass        forward as received
//   delay MS    hold every chunk MS milliseconds in each direction (order kept)
//   drop        close every open connection and every new one right after accept (FIN)
//   cut rst|fin close every open connection once (RST or FIN); new ones pass (a one-shot)
//   blackhole   keep TCP open and forward nothing, in both directions; what arrives meanwhile
//               waits (up to 1 MiB per direction, then the proxy stops reading) and flows on
//               when the mode changes, as after a network black hole TCP's retransmissions do
//   drip MS     forward one byte at a time with MS milliseconds between bytes
//   duplicate N send the next N chunks from the PLC side twice (0: every chunk), then pass
//   reorder N   swap the next N pairs of chunks from the PLC side (0: every pair), then pass; a
//               chunk that no second one follows within 20 ms is split in two halves and those
//               are swapped, so every chunk in this mode reaches the client out of order
//
// "Chunk" is what one read from a socket returned. The PLC side is the target; a client is
// what connects to the proxy (scadad). Counts of connections and bytes are kept.
#pragma once

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace scada::test {

enum class ProxyMode { pass, delay, drop, blackhole, drip, duplicate, reorder };
const char* proxy_mode_name(ProxyMode mode);  // "pass", "delay", ...

enum class Cut { rst, fin };

struct ProxyCounts {
  std::uint64_t accepted = 0;         // connections accepted from clients
  std::uint64_t open = 0;             // connections open now
  std::uint64_t refused = 0;          // closed at once: drop mode, or the target refused
  std::uint64_t closed_by_fault = 0;  // open connections closed by drop or cut
  std::uint64_t bytes_to_target = 0;  // forwarded client -> PLC
  std::uint64_t bytes_to_client = 0;  // forwarded PLC -> client (duplicates included)
  std::uint64_t duplicated = 0;       // PLC-side chunks sent twice
  std::uint64_t reordered = 0;        // PLC-side chunk pairs (or halves) swapped
};

class FaultProxy {
 public:
  // Listens on 127.0.0.1:listen_port (0: a free port) and forwards to target_host:target_port.
  // Without io the proxy runs its own thread; with io it runs on that context (which the caller
  // runs, from any number of threads: each proxy keeps to its own strand). Throws
  // std::runtime_error when it cannot listen.
  FaultProxy(const std::string& target_host, std::uint16_t target_port,
             std::uint16_t listen_port = 0, boost::asio::io_context* io = nullptr);
  ~FaultProxy();  // closes every connection (RST) and stops
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  std::uint16_t port() const;
  std::string target() const;  // "HOST:PORT"

  // Mode changes apply at once to open connections (held data is re-timed) and to new ones.
  void pass();
  void delay(std::chrono::milliseconds each_way);
  void drop();
  void blackhole();
  void drip(std::chrono::milliseconds between_bytes = std::chrono::milliseconds(1));
  void duplicate(std::size_t chunks = 1);
  void reorder(std::size_t pairs = 1);
  void cut(Cut how);  // the mode stays as it is

  ProxyMode mode() const;
  ProxyCounts counts() const;

  // One text command as listed above, or "status"; answers "ok ..." or "error: reason".
  std::string command(const std::string& line);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace scada::test
