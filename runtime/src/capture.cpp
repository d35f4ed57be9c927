// Capture reader: classic pcap and pcapng, link layer -> IPv4/IPv6 -> TCP, TCP reassembled per
// direction. No pcap library: the formats are small, and a hand-written reader lets every length
// in a hostile file be checked against the bytes that are really there.
#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <compare>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <istream>
#include <map>
#include <set>
#include <span>
#include <stdexcept>
#include <utility>

#include "runtime/runtime.h"

namespace scada::runtime {
namespace {

using Bytes = std::vector<std::uint8_t>;
using Span = std::span<const std::uint8_t>;

// Bounds that keep a hostile or broken file from costing unbounded memory.
constexpr std::size_t kMaxRecord = std::size_t{64} << 20;  // one pcap record or pcapng block
constexpr std::size_t kReadStep = std::size_t{1} << 20;    // a lying length costs what is there
constexpr std::size_t kMaxPendingBytes = std::size_t{4} << 20;  // out-of-order, per direction
constexpr std::size_t kMaxPendingSegments = 4096;
constexpr std::size_t kMaxWarnings = 1000;

// Link types (https://www.tcpdump.org/linktypes.html).
constexpr std::uint32_t kLinkNull = 0, kLinkEthernet = 1, kLinkRaw = 101, kLinkLoop = 108,
                        kLinkSll = 113, kLinkIpv4 = 228, kLinkIpv6 = 229, kLinkSll2 = 276;
constexpr std::uint16_t kEtherIpv4 = 0x0800, kEtherIpv6 = 0x86DD;

std::uint16_t be16(const std::uint8_t* p) {
  return std::uint16_t(p[0] << 8 | p[1]);
}
std::uint32_t be32(const std::uint8_t* p) {
  return std::uint32_t(p[0]) << 24 | std::uint32_t(p[1]) << 16 | std::uint32_t(p[2]) << 8 | p[3];
}
std::uint32_t le32(const std::uint8_t* p) {
  return std::uint32_t(p[3]) << 24 | std::uint32_t(p[2]) << 16 | std::uint32_t(p[1]) << 8 | p[0];
}

// Byte order of the capture file's own headers (packet bytes are always network order).
struct FileOrder {
  bool big = false;
  std::uint16_t u16(const std::uint8_t* p) const {
    return big ? be16(p) : std::uint16_t(p[1] << 8 | p[0]);
  }
  std::uint32_t u32(const std::uint8_t* p) const { return big ? be32(p) : le32(p); }
};

std::string hex32(std::uint32_t v) {
  char text[11];
  std::snprintf(text, sizeof text, "0x%08x", v);
  return text;
}

class Warnings {
 public:
  explicit Warnings(std::vector<std::string>& out) : out_(out) {}
  void add(std::string text) {
    if (out_.size() < kMaxWarnings) {
      out_.push_back(std::move(text));
    } else {
      ++suppressed_;
    }
  }
  void finish() {
    if (suppressed_ > 0) out_.push_back(std::to_string(suppressed_) + " more warnings suppressed");
  }

 private:
  std::vector<std::string>& out_;
  std::size_t suppressed_ = 0;
};

// ---- TCP reassembly

struct Address {
  std::array<std::uint8_t, 16> bytes{};
  std::uint8_t length = 0;  // 4 or 16
  auto operator<=>(const Address&) const = default;

  std::string to_string() const {
    char text[INET6_ADDRSTRLEN] = {};
    inet_ntop(length == 4 ? AF_INET : AF_INET6, bytes.data(), text, sizeof text);
    return text;
  }
};

struct FlowKey {  // one direction of one TCP connection
  Address src, dst;
  std::uint16_t src_port = 0, dst_port = 0;
  auto operator<=>(const FlowKey&) const = default;
};

struct TcpSegment {
  std::uint32_t seq = 0;
  bool syn = false, rst = false;
  Span payload;
};

std::string describe(const TcpEndpoint& from, const TcpEndpoint& to) {
  return from.address + ":" + std::to_string(from.port) + " -> " + to.address + ":" +
         std::to_string(to.port);
}

// Puts the payload of each direction in sequence order. Stream offsets are 64-bit and counted
// from the first payload byte, so sequence numbers may wrap without special cases.
class TcpReassembly {
 public:
  TcpReassembly(std::vector<TcpChunk>& chunks, Warnings& warnings)
      : chunks_(chunks), warnings_(warnings) {}

  void segment(std::size_t frame, const FlowKey& key, const TcpSegment& seg) {
    auto it = directions_.find(key);
    if (seg.syn) {
      // A SYN with a new initial sequence number is a new connection on the same ports; the
      // same one again is a retransmitted SYN. SYN consumes one sequence number.
      const std::uint32_t origin = seg.seq + 1;
      if (it == directions_.end() || !it->second.syn_seen || it->second.origin != origin) {
        if (it != directions_.end()) report_undelivered(it->second);
        it = directions_.insert_or_assign(key, open(key, origin, true)).first;
      }
    } else if (it == directions_.end()) {
      if (seg.rst) return;
      // The capture started mid-connection: this segment's sequence number is offset 0.
      it = directions_.emplace(key, open(key, seg.seq, false)).first;
    }
    if (seg.rst || seg.payload.empty()) return;

    Direction& d = it->second;
    const std::uint32_t first = seg.syn ? seg.seq + 1 : seg.seq;
    const std::int64_t start =
        std::int64_t(d.next) + std::int32_t(first - std::uint32_t(d.origin + d.next));
    Bytes fresh;
    place(frame, d, start, seg.payload, fresh);
    if (!fresh.empty()) chunks_.push_back({frame, d.stream, d.from, d.to, std::move(fresh)});
  }

  void finish() {
    for (auto& [key, d] : directions_) report_undelivered(d);
  }

 private:
  struct Direction {
    std::size_t stream = 0;
    TcpEndpoint from, to;
    bool syn_seen = false;
    std::uint32_t origin = 0;                // sequence number of stream offset 0
    std::uint64_t next = 0;                  // stream offset of the next in-order byte
    std::map<std::uint64_t, Bytes> pending;  // out-of-order segments by stream offset
    std::size_t pending_bytes = 0;
  };

  Direction open(const FlowKey& key, std::uint32_t origin, bool syn) {
    Direction d;
    d.stream = next_stream_++;
    d.from = {key.src.to_string(), key.src_port};
    d.to = {key.dst.to_string(), key.dst_port};
    d.syn_seen = syn;
    d.origin = origin;
    return d;
  }

  void place(std::size_t frame, Direction& d, std::int64_t start, Span payload, Bytes& fresh) {
    // A gap that has not filled while the buffer filled up never will: give up on its bytes,
    // oldest gap first, until this segment fits or is in order.
    while (start > std::int64_t(d.next) && !d.pending.empty() &&
           (d.pending_bytes + payload.size() > kMaxPendingBytes ||
            d.pending.size() >= kMaxPendingSegments)) {
      const std::uint64_t resume = std::min(std::uint64_t(start), d.pending.begin()->first);
      warnings_.add("frame " + std::to_string(frame) + ": " + describe(d.from, d.to) + ": " +
                    std::to_string(resume - d.next) + " missing bytes never arrived, skipped");
      d.next = resume;
      drain(d, fresh);
    }
    const std::int64_t end = start + std::int64_t(payload.size());
    const auto next = std::int64_t(d.next);
    if (end <= next) return;  // retransmission of bytes already delivered
    if (start <= next) {      // in order, possibly overlapping what was delivered
      fresh.insert(fresh.end(), payload.begin() + (next - start), payload.end());
      d.next = std::uint64_t(end);
      drain(d, fresh);
      return;
    }
    auto [pos, inserted] = d.pending.try_emplace(std::uint64_t(start));
    if (!inserted && pos->second.size() >= payload.size()) return;
    d.pending_bytes = d.pending_bytes - pos->second.size() + payload.size();
    pos->second.assign(payload.begin(), payload.end());
  }

  // Delivers buffered segments that the in-order edge has reached.
  static void drain(Direction& d, Bytes& fresh) {
    while (!d.pending.empty() && d.pending.begin()->first <= d.next) {
      auto p = d.pending.begin();
      const std::uint64_t end = p->first + p->second.size();
      if (end > d.next) {
        fresh.insert(fresh.end(), p->second.begin() + std::ptrdiff_t(d.next - p->first),
                     p->second.end());
        d.next = end;
      }
      d.pending_bytes -= p->second.size();
      d.pending.erase(p);
    }
  }

  void report_undelivered(const Direction& d) {
    if (d.pending.empty()) return;
    warnings_.add(describe(d.from, d.to) + ": " + std::to_string(d.pending_bytes) +
                  " bytes after a gap at stream offset " + std::to_string(d.next) +
                  " were never delivered");
  }

  std::vector<TcpChunk>& chunks_;
  Warnings& warnings_;
  std::map<FlowKey, Direction> directions_;
  std::size_t next_stream_ = 0;
};

// ---- Frames: link layer -> IP -> TCP

class PacketDecoder {
 public:
  PacketDecoder(CaptureReadResult& out, Warnings& warnings)
      : out_(out), warnings_(warnings), tcp_(out.chunks, warnings) {}

  void frame(std::uint32_t link_type, Span d) {
    frame_ = ++out_.frames;
    switch (link_type) {
      case kLinkEthernet:
        return ethernet(d);
      case kLinkSll:
        if (d.size() < 16) return warn("too short for a Linux cooked header");
        return network(be16(&d[14]), d.subspan(16));
      case kLinkSll2:
        if (d.size() < 20) return warn("too short for a Linux cooked v2 header");
        return network(be16(&d[0]), d.subspan(20));
      case kLinkNull:
      case kLinkLoop: {
        if (d.size() < 4) return warn("too short for a loopback header");
        // NULL stores the address family in the byte order of the machine that captured,
        // LOOP always in network order.
        const bool big = link_type == kLinkLoop || (d[0] == 0 && d[1] == 0);
        const std::uint32_t family = big ? be32(&d[0]) : le32(&d[0]);
        if (family == 2) return network(kEtherIpv4, d.subspan(4));
        // AF_INET6 differs between the BSDs: 24 NetBSD/OpenBSD, 28 FreeBSD, 30 Darwin.
        if (family == 24 || family == 28 || family == 30) return network(kEtherIpv6, d.subspan(4));
        return;
      }
      case kLinkRaw:
        if (d.empty()) return warn("empty raw IP frame");
        return network(d[0] >> 4 == 6 ? kEtherIpv6 : kEtherIpv4, d);
      case kLinkIpv4:
        return network(kEtherIpv4, d);
      case kLinkIpv6:
        return network(kEtherIpv6, d);
      default:
        if (unsupported_links_.insert(link_type).second) {
          warn("link type " + std::to_string(link_type) +
               " is not supported; its frames are skipped");
        }
    }
  }

  // A packet record whose bytes cannot be trusted: counted as a frame, not decoded.
  void skip_frame(const std::string& reason) {
    frame_ = ++out_.frames;
    warn(reason);
  }

  void finish() { tcp_.finish(); }

 private:
  void warn(const std::string& text) {
    warnings_.add("frame " + std::to_string(frame_) + ": " + text);
  }

  void ethernet(Span d) {
    if (d.size() < 14) return warn("too short for an Ethernet header");
    std::uint16_t type = be16(&d[12]);
    std::size_t offset = 14;
    // 802.1Q / 802.1ad tags, possibly stacked: TCI(2) then the next type.
    while (type == 0x8100 || type == 0x88A8 || type == 0x9100) {
      if (d.size() < offset + 4) return warn("truncated VLAN tag");
      type = be16(&d[offset + 2]);
      offset += 4;
    }
    network(type, d.subspan(offset));
  }

  void network(std::uint16_t ethertype, Span d) {
    if (ethertype == kEtherIpv4) return ipv4(d);
    if (ethertype == kEtherIpv6) return ipv6(d);
  }

  void ipv4(Span d) {
    if (d.size() < 20) return warn("too short for an IPv4 header");
    if (d[0] >> 4 != 4)
      return warn("IP version " + std::to_string(d[0] >> 4) + " in an IPv4 frame");
    const std::size_t header = std::size_t(d[0] & 0x0F) * 4;
    std::size_t total = be16(&d[2]);
    // Captured on the sending host with TCP segmentation offload, the NIC fills it in later.
    if (total == 0) total = d.size();
    if (header < 20 || total < header) return warn("bad IPv4 header or total length");
    // Link layers pad short frames; the IP total length says where the packet ends.
    if (total > d.size()) {
      return warn("IPv4 packet truncated (" + std::to_string(d.size()) + " of " +
                  std::to_string(total) + " bytes captured)");
    }
    if ((be16(&d[6]) & 0x1FFF) != 0) return warn("IPv4 fragment other than the first skipped");
    if (d[9] != 6) return;
    Address src, dst;
    src.length = dst.length = 4;
    std::copy_n(&d[12], 4, src.bytes.begin());
    std::copy_n(&d[16], 4, dst.bytes.begin());
    tcp(src, dst, d.subspan(header, total - header));
  }

  void ipv6(Span d) {
    if (d.size() < 40) return warn("too short for an IPv6 header");
    if (d[0] >> 4 != 6)
      return warn("IP version " + std::to_string(d[0] >> 4) + " in an IPv6 frame");
    const std::size_t payload_length = be16(&d[4]);
    if (payload_length == 0) return warn("IPv6 jumbogram or unknown payload length skipped");
    if (40 + payload_length > d.size()) {
      return warn("IPv6 packet truncated (" + std::to_string(d.size()) + " of " +
                  std::to_string(40 + payload_length) + " bytes captured)");
    }
    Address src, dst;
    src.length = dst.length = 16;
    std::copy_n(&d[8], 16, src.bytes.begin());
    std::copy_n(&d[24], 16, dst.bytes.begin());
    Span body = d.subspan(40, payload_length);
    std::uint8_t next = d[6];
    for (int headers = 0; headers < 16; ++headers) {
      std::size_t length = 0;
      switch (next) {
        case 6:
          return tcp(src, dst, body);
        case 0:   // hop-by-hop options
        case 43:  // routing
        case 60:  // destination options
          if (body.size() < 2) return warn("truncated IPv6 extension header");
          length = (std::size_t(body[1]) + 1) * 8;
          break;
        case 44:  // fragment
          if (body.size() < 8) return warn("truncated IPv6 fragment header");
          if ((be16(&body[2]) & 0xFFF8) != 0) {
            return warn("IPv6 fragment other than the first skipped");
          }
          length = 8;
          break;
        case 51:  // authentication header
          if (body.size() < 2) return warn("truncated IPv6 authentication header");
          length = (std::size_t(body[1]) + 2) * 4;
          break;
        case 50:
          return warn("IPv6 payload encrypted (ESP) skipped");
        default:
          return;  // no next header, or a protocol other than TCP
      }
      if (body.size() < length) return warn("truncated IPv6 extension header");
      next = body[0];
      body = body.subspan(length);
    }
    warn("too many IPv6 extension headers");
  }

  void tcp(const Address& src, const Address& dst, Span d) {
    if (d.size() < 20) return warn("too short for a TCP header");
    const std::size_t header = std::size_t(d[12] >> 4) * 4;
    if (header < 20 || header > d.size()) return warn("bad TCP data offset");
    const FlowKey key{src, dst, be16(&d[0]), be16(&d[2])};
    const std::uint8_t flags = d[13];
    tcp_.segment(
        frame_, key,
        TcpSegment{be32(&d[4]), (flags & 0x02) != 0, (flags & 0x04) != 0, d.subspan(header)});
  }

  CaptureReadResult& out_;
  Warnings& warnings_;
  TcpReassembly tcp_;
  std::size_t frame_ = 0;
  std::set<std::uint32_t> unsupported_links_;
};

// ---- Files

class InputFile {
 public:
  InputFile(std::istream& in, const std::string& name) : in_(in), name_(name) {}

  // Reads n bytes into out. False when the file ends first (out then holds what was there).
  // Grows in steps, so a huge length in a short file costs only the bytes really present.
  bool read(std::size_t n, Bytes& out) {
    out.clear();
    if (!unread_.empty()) {
      const std::size_t take = std::min(n, unread_.size());
      out.assign(unread_.begin(), unread_.begin() + std::ptrdiff_t(take));
      unread_.erase(unread_.begin(), unread_.begin() + std::ptrdiff_t(take));
      offset_ += take;
    }
    while (out.size() < n) {
      const std::size_t old = out.size();
      const std::size_t step = std::min(n - old, kReadStep);
      out.resize(old + step);
      in_.read(reinterpret_cast<char*>(out.data() + old), std::streamsize(step));
      const auto got = std::size_t(in_.gcount());
      offset_ += got;
      if (got < step) {
        out.resize(old + got);
        return false;
      }
    }
    return true;
  }

  // Puts bytes just read back in front of the rest of the file.
  void unread(Bytes bytes) {
    offset_ -= bytes.size();
    unread_.insert(unread_.begin(), bytes.begin(), bytes.end());
  }

  bool at_end() { return unread_.empty() && in_.peek() == std::char_traits<char>::eof(); }
  std::uint64_t offset() const { return offset_; }

  [[noreturn]] void fail(std::uint64_t at, const std::string& problem) const {
    throw std::runtime_error(name_ + ": " + problem + " (offset " + std::to_string(at) + ")");
  }

 private:
  std::istream& in_;
  const std::string& name_;
  std::uint64_t offset_ = 0;
  Bytes unread_;
};

std::string at(std::uint64_t offset) {
  return "offset " + std::to_string(offset) + ": ";
}

// Classic pcap: 24-byte file header, then 16-byte record headers each followed by the frame.
void read_pcap(InputFile& file, Span header, PacketDecoder& decoder, Warnings& warnings) {
  FileOrder order;
  const std::uint32_t magic = le32(&header[0]);
  order.big = magic != 0xA1B2C3D4 && magic != 0xA1B23C4D;  // else be32 matched one of them
  if (header.size() < 24) file.fail(file.offset(), "truncated pcap file header");
  const std::uint16_t major = order.u16(&header[4]);
  if (major != 2) {
    file.fail(4, "unsupported pcap version " + std::to_string(major) + "." +
                     std::to_string(order.u16(&header[6])));
  }
  // The upper bits of the link type field carry FCS information, not the type.
  const std::uint32_t link_type = order.u32(&header[20]) & 0xFFFF;

  Bytes record, data;
  while (!file.at_end()) {
    const std::uint64_t start = file.offset();
    if (!file.read(16, record)) {
      warnings.add(at(start) + "truncated record header (" + std::to_string(record.size()) +
                   " of 16 bytes)");
      return;
    }
    const std::uint32_t captured = order.u32(&record[8]);
    if (captured > kMaxRecord) {
      warnings.add(at(start) + "record length " + std::to_string(captured) +
                   " exceeds the 64 MiB limit; reading stopped");
      return;
    }
    if (!file.read(captured, data)) {
      warnings.add(at(start) + "truncated record (" + std::to_string(data.size()) + " of " +
                   std::to_string(captured) + " bytes)");
      return;
    }
    decoder.frame(link_type, data);
  }
}

// pcapng: blocks of type(4) length(4) body length(4). A Section Header Block sets the byte order
// and starts a new list of interfaces; packet blocks name their interface by index.
void read_pcapng(InputFile& file, PacketDecoder& decoder, Warnings& warnings) {
  constexpr std::uint32_t kSectionHeader = 0x0A0D0D0A, kInterface = 1, kObsoletePacket = 2,
                          kSimplePacket = 3, kEnhancedPacket = 6, kByteOrderMagic = 0x1A2B3C4D;
  struct Interface {
    std::uint32_t link_type;
    std::uint32_t snap_length;
  };
  FileOrder order;
  std::vector<Interface> interfaces;
  bool first = true;
  Bytes head, body;

  // Damage in the first section header means this is not a usable file; later, a warning.
  auto damaged = [&](std::uint64_t offset, const std::string& problem) {
    if (first) file.fail(offset, problem);
    warnings.add(at(offset) + problem + "; reading stopped");
  };

  while (!file.at_end()) {
    const std::uint64_t start = file.offset();
    if (!file.read(8, head)) {
      return damaged(start,
                     "truncated block header (" + std::to_string(head.size()) + " of 8 bytes)");
    }
    const bool section = be32(&head[0]) == kSectionHeader;  // same value in both byte orders
    Bytes byte_order;
    if (section) {
      if (!file.read(4, byte_order)) return damaged(start, "truncated section header");
      if (be32(byte_order.data()) == kByteOrderMagic) {
        order.big = true;
      } else if (le32(byte_order.data()) == kByteOrderMagic) {
        order.big = false;
      } else {
        return damaged(start + 8, "bad byte-order magic " + hex32(be32(byte_order.data())));
      }
    } else if (first) {
      return damaged(start, "first block is not a section header");
    }
    const std::uint32_t type = order.u32(&head[0]);
    const std::uint32_t length = order.u32(&head[4]);
    if (length < 12 + byte_order.size() || length % 4 != 0 || length > kMaxRecord) {
      return damaged(start + 4, "bad block length " + std::to_string(length));
    }
    const std::size_t rest = length - 8 - byte_order.size();
    if (!file.read(rest, body)) {
      return damaged(start, "truncated block (" +
                                std::to_string(8 + byte_order.size() + body.size()) + " of " +
                                std::to_string(length) + " bytes)");
    }
    body.insert(body.begin(), byte_order.begin(), byte_order.end());
    if (order.u32(&body[body.size() - 4]) != length) {
      warnings.add(at(start) + "block length at its end differs from the one at its start");
    }
    const Span content = Span(body).first(body.size() - 4);

    switch (type) {
      case kSectionHeader: {
        if (content.size() < 16) return damaged(start, "section header too short");
        const std::uint16_t major = order.u16(&content[4]);
        if (major != 1) {
          return damaged(start + 12, "unsupported pcapng version " + std::to_string(major) + "." +
                                         std::to_string(order.u16(&content[6])));
        }
        interfaces.clear();
        first = false;
        break;
      }
      case kInterface:
        if (content.size() < 8) {
          warnings.add(at(start) + "interface description too short");
          interfaces.push_back({0xFFFFFFFF, 0});  // keeps later interface numbers right
        } else {
          interfaces.push_back({order.u16(&content[0]), order.u32(&content[4])});
        }
        break;
      case kEnhancedPacket:
      case kObsoletePacket: {
        if (content.size() < 20) {
          decoder.skip_frame("packet block too short");
          break;
        }
        const std::uint32_t id =
            type == kEnhancedPacket ? order.u32(&content[0]) : order.u16(&content[0]);
        const std::uint32_t captured = order.u32(&content[12]);
        if (captured > content.size() - 20) {
          decoder.skip_frame("captured length " + std::to_string(captured) + " exceeds its block");
        } else if (id >= interfaces.size()) {
          decoder.skip_frame("unknown interface " + std::to_string(id));
        } else {
          decoder.frame(interfaces[id].link_type, content.subspan(20, captured));
        }
        break;
      }
      case kSimplePacket: {
        if (content.size() < 4 || interfaces.empty()) {
          decoder.skip_frame("simple packet block too short or without interface");
          break;
        }
        // The captured length is implied: the packet length, cut by the block and snap length.
        std::size_t captured = std::min<std::size_t>(order.u32(&content[0]), content.size() - 4);
        if (interfaces[0].snap_length != 0) {
          captured = std::min<std::size_t>(captured, interfaces[0].snap_length);
        }
        decoder.frame(interfaces[0].link_type, content.subspan(4, captured));
        break;
      }
      default:
        break;  // name resolution, statistics, decryption secrets, custom: not needed
    }
  }
  if (first) file.fail(0, "empty pcapng file");
}

}  // namespace

CaptureReadResult read_capture(std::istream& in, const std::string& name) {
  CaptureReadResult result;
  Warnings warnings(result.warnings);
  PacketDecoder decoder(result, warnings);
  InputFile file(in, name);

  Bytes header;
  file.read(4, header);
  if (header.size() < 4) file.fail(0, "too short to be a capture file");
  const std::uint32_t magic = be32(header.data());
  switch (magic) {
    case 0x0A0D0D0A:
      // The section header is then read as an ordinary block, magic included.
      file.unread(std::move(header));
      read_pcapng(file, decoder, warnings);
      break;
    case 0xA1B2C3D4:
    case 0xD4C3B2A1:
    case 0xA1B23C4D:
    case 0x4D3CB2A1: {
      Bytes rest;
      file.read(20, rest);
      header.insert(header.end(), rest.begin(), rest.end());
      read_pcap(file, header, decoder, warnings);
      break;
    }
    default:
      file.fail(0, "not a pcap or pcapng file (magic " + hex32(magic) + ")");
  }
  decoder.finish();
  warnings.finish();
  return result;
}

CaptureReadResult read_capture(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open: " + std::strerror(errno));
  return read_capture(in, path);
}

}  // namespace scada::runtime
