// runtime: the processes and their commands (scadactl now; scadad later).
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace scada::runtime {

// ---- Capture files: pcap / pcapng (format by magic number), Ethernet (802.1Q), Linux cooked
// (v1, v2), BSD loopback and raw IP link types; IPv4 / IPv6; TCP reassembled per direction.

struct TcpEndpoint {
  std::string address;  // printable IPv4 / IPv6
  std::uint16_t port = 0;
  bool operator==(const TcpEndpoint&) const = default;
};

// A run of in-order TCP payload bytes of one direction, with the capture frame it ended in.
struct TcpChunk {
  std::size_t frame = 0;   // 1-based frame number in the capture
  std::size_t stream = 0;  // one id per TCP direction; a new SYN on the same ports starts another
  TcpEndpoint from, to;
  std::vector<std::uint8_t> bytes;
};

struct CaptureReadResult {
  std::vector<TcpChunk> chunks;  // in capture order, reassembled per direction
  std::size_t frames = 0;
  std::vector<std::string> warnings;  // frames that could not be parsed, with the reason
};

// Reads a capture file. Throws std::runtime_error naming the file, the problem and the byte
// offset when the file cannot be read as a capture at all; damage after a valid file header
// (truncated records, absurd lengths, unparseable frames) becomes warnings instead.
CaptureReadResult read_capture(const std::string& path);
// The same from an open stream; name is what the messages call it.
CaptureReadResult read_capture(std::istream& in, const std::string& name);

// ---- scadactl commands. Each returns the process exit status.

struct DecodeOptions {
  std::string capture;
  bool json = false;
};
int decode_command(const DecodeOptions& options, std::ostream& out, std::ostream& err);

struct PlanOptions {
  std::string tag_file;
  std::size_t pdu = 240;
  std::size_t max_items = 20;
  bool json = false;
};
int plan_command(const PlanOptions& options, std::ostream& out, std::ostream& err);

}  // namespace scada::runtime
