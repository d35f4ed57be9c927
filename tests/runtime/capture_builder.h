// Test helper: builds TCP frames and wraps them into pcap / pcapng files, byte by byte, so the
// capture reader can be tested on every link type, byte order and damage we can think of.
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace scada::test {

using Bytes = std::vector<std::uint8_t>;

inline void put_be16(Bytes& b, std::uint32_t v) {
  b.push_back(std::uint8_t(v >> 8));
  b.push_back(std::uint8_t(v));
}
inline void put_be32(Bytes& b, std::uint32_t v) {
  put_be16(b, v >> 16);
  put_be16(b, v & 0xFFFF);
}
inline void put16(Bytes& b, std::uint32_t v, bool big) {
  if (big) return put_be16(b, v);
  b.push_back(std::uint8_t(v));
  b.push_back(std::uint8_t(v >> 8));
}
inline void put32(Bytes& b, std::uint32_t v, bool big) {
  if (big) return put_be32(b, v);
  put16(b, v & 0xFFFF, false);
  put16(b, v >> 16, false);
}
inline void append(Bytes& b, const Bytes& more) {
  b.insert(b.end(), more.begin(), more.end());
}
inline Bytes text_bytes(const std::string& s) {
  return Bytes(s.begin(), s.end());
}

namespace tcp_flags {
inline constexpr std::uint8_t fin = 0x01, syn = 0x02, rst = 0x04, psh = 0x08, ack = 0x10;
}

struct TcpSpec {
  std::string src = "10.0.0.1";
  std::uint16_t src_port = 40000;
  std::string dst = "10.0.0.2";
  std::uint16_t dst_port = 102;
  std::uint32_t seq = 1000;
  std::uint8_t flags = tcp_flags::ack | tcp_flags::psh;
  Bytes payload;
};

// TCP header (20 bytes, or 24 with one MSS option when with_option) + payload; checksums 0.
inline Bytes tcp_segment(const TcpSpec& s, bool with_option = false) {
  Bytes b;
  put_be16(b, s.src_port);
  put_be16(b, s.dst_port);
  put_be32(b, s.seq);
  put_be32(b, 0);  // ack
  b.push_back(std::uint8_t((with_option ? 6 : 5) << 4));
  b.push_back(s.flags);
  put_be16(b, 8192);
  put_be32(b, 0);  // checksum, urgent pointer
  if (with_option) put_be32(b, 0x020405B4);
  append(b, s.payload);
  return b;
}

inline Bytes address_bytes(int family, const std::string& text) {
  Bytes b(family == AF_INET ? 4 : 16);
  if (inet_pton(family, text.c_str(), b.data()) != 1) throw std::invalid_argument(text);
  return b;
}

// IPv4 packet carrying tcp; options_words extra 4-byte option words (NOPs) in the header.
inline Bytes ipv4_packet(const TcpSpec& s, std::size_t options_words = 0,
                         std::uint16_t fragment = 0, std::uint8_t protocol = 6) {
  const Bytes tcp = tcp_segment(s);
  Bytes b;
  b.push_back(std::uint8_t(0x40 | (5 + options_words)));
  b.push_back(0);
  put_be16(b, std::uint32_t(20 + 4 * options_words + tcp.size()));
  put_be32(b, 0x12340000 | fragment);  // id, flags + fragment offset
  b.push_back(64);
  b.push_back(protocol);
  put_be16(b, 0);
  append(b, address_bytes(AF_INET, s.src));
  append(b, address_bytes(AF_INET, s.dst));
  b.insert(b.end(), 4 * options_words, 0x01);
  append(b, tcp);
  return b;
}

// IPv6 packet; extension is inserted as-is after the fixed header (its first byte must be 6,
// the next header TCP) and first_next names it.
inline Bytes ipv6_packet(const TcpSpec& s, std::uint8_t first_next = 6,
                         const Bytes& extension = {}) {
  const Bytes tcp = tcp_segment(s);
  Bytes b;
  put_be32(b, 0x60000000);
  put_be16(b, std::uint32_t(extension.size() + tcp.size()));
  b.push_back(first_next);
  b.push_back(64);
  append(b, address_bytes(AF_INET6, s.src));
  append(b, address_bytes(AF_INET6, s.dst));
  append(b, extension);
  append(b, tcp);
  return b;
}

inline Bytes ethernet_frame(const Bytes& ip, std::uint16_t ethertype,
                            const std::vector<std::uint16_t>& vlan_tpids = {}) {
  Bytes b = {0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 6};
  for (auto tpid : vlan_tpids) {
    put_be16(b, tpid);
    put_be16(b, 0x0064);  // VLAN 100
  }
  put_be16(b, ethertype);
  append(b, ip);
  return b;
}

inline Bytes sll_frame(const Bytes& ip, std::uint16_t protocol) {
  Bytes b;
  put_be16(b, 0);  // packet type: to us
  put_be16(b, 1);  // ARPHRD_ETHER
  put_be16(b, 6);
  b.insert(b.end(), {0, 1, 2, 3, 4, 5, 0, 0});
  put_be16(b, protocol);
  append(b, ip);
  return b;
}

inline Bytes sll2_frame(const Bytes& ip, std::uint16_t protocol) {
  Bytes b;
  put_be16(b, protocol);
  put_be16(b, 0);
  put_be32(b, 2);  // interface index
  put_be16(b, 1);  // ARPHRD_ETHER
  b.push_back(0);
  b.push_back(6);
  b.insert(b.end(), {0, 1, 2, 3, 4, 5, 0, 0});
  append(b, ip);
  return b;
}

inline Bytes loopback_frame(const Bytes& ip, std::uint32_t family, bool big) {
  Bytes b;
  put32(b, family, big);
  append(b, ip);
  return b;
}

class PcapWriter {
 public:
  explicit PcapWriter(std::uint32_t link_type, bool big = false, bool nanoseconds = false)
      : big_(big) {
    put32(bytes_, nanoseconds ? 0xA1B23C4D : 0xA1B2C3D4, big);
    put16(bytes_, 2, big);
    put16(bytes_, 4, big);
    put32(bytes_, 0, big);
    put32(bytes_, 0, big);
    put32(bytes_, 262144, big);
    put32(bytes_, link_type, big);
  }
  PcapWriter& add(const Bytes& frame) {
    put32(bytes_, 1700000000, big_);
    put32(bytes_, ++usec_, big_);
    put32(bytes_, std::uint32_t(frame.size()), big_);
    put32(bytes_, std::uint32_t(frame.size()), big_);
    append(bytes_, frame);
    return *this;
  }
  const Bytes& bytes() const { return bytes_; }

 private:
  bool big_;
  std::uint32_t usec_ = 0;
  Bytes bytes_;
};

class PcapngWriter {
 public:
  explicit PcapngWriter(bool big = false) { section(big); }

  PcapngWriter& section(bool big) {
    big_ = big;
    Bytes body;
    put32(body, 0x1A2B3C4D, big);
    put16(body, 1, big);
    put16(body, 0, big);
    put32(body, 0xFFFFFFFF, big);  // section length unknown
    put32(body, 0xFFFFFFFF, big);
    return block(0x0A0D0D0A, body);
  }
  PcapngWriter& interface(std::uint32_t link_type, std::uint32_t snap_length = 0) {
    Bytes body;
    put16(body, link_type, big_);
    put16(body, 0, big_);
    put32(body, snap_length, big_);
    return block(1, body);
  }
  PcapngWriter& enhanced(std::uint32_t interface_id, const Bytes& frame) {
    Bytes body;
    put32(body, interface_id, big_);
    put32(body, 0, big_);
    put32(body, ++ticks_, big_);
    put32(body, std::uint32_t(frame.size()), big_);
    put32(body, std::uint32_t(frame.size()), big_);
    append(body, frame);
    return block(6, body);
  }
  PcapngWriter& simple(const Bytes& frame) {
    Bytes body;
    put32(body, std::uint32_t(frame.size()), big_);
    append(body, frame);
    return block(3, body);
  }
  // Any block; the body is padded to 32 bits.
  PcapngWriter& block(std::uint32_t type, Bytes body) {
    body.resize((body.size() + 3) / 4 * 4, 0);
    const auto length = std::uint32_t(body.size() + 12);
    put32(bytes_, type, big_);
    put32(bytes_, length, big_);
    append(bytes_, body);
    put32(bytes_, length, big_);
    return *this;
  }
  const Bytes& bytes() const { return bytes_; }

 private:
  bool big_ = false;
  std::uint32_t ticks_ = 0;
  Bytes bytes_;
};

}  // namespace scada::test
