// Capture reader: the real captures, then hand-built files for every link type, byte order,
// TCP reassembly case and kind of damage.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>

#include "capture_builder.h"
#include "runtime/runtime.h"

namespace scada::runtime {
namespace {

using test::Bytes;
using test::TcpSpec;
namespace flags = test::tcp_flags;

const std::string kPcaps = std::string(SCADA_TESTDATA_DIR) + "/pcaps/";

CaptureReadResult read_bytes(const Bytes& bytes, const std::string& name = "test.pcap") {
  std::istringstream in(std::string(bytes.begin(), bytes.end()));
  return read_capture(in, name);
}

Bytes text(const std::string& s) {
  return test::text_bytes(s);
}

std::string joined(const CaptureReadResult& r) {
  std::string all;
  for (const auto& c : r.chunks) all.append(c.bytes.begin(), c.bytes.end());
  return all;
}

std::string warnings_of(const CaptureReadResult& r) {
  std::string all;
  for (const auto& w : r.warnings) all += w + "\n";
  return all;
}

// The message of the runtime_error that f throws, or "" when it throws none.
template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

// ---- Real captures (frame counts: README table, from tshark 4.0)

struct RealCapture {
  const char* file;
  std::size_t frames;
  std::size_t chunks;  // one per TPKT-carrying segment here (= tshark's COTP frame count)
};

class RealCaptureTest : public testing::TestWithParam<RealCapture> {};

TEST_P(RealCaptureTest, ReadsEveryFrameWithoutWarnings) {
  const auto r = read_capture(kPcaps + GetParam().file);
  EXPECT_EQ(r.frames, GetParam().frames);
  EXPECT_EQ(r.chunks.size(), GetParam().chunks);
  EXPECT_TRUE(r.warnings.empty()) << warnings_of(r);
  for (std::size_t i = 1; i < r.chunks.size(); ++i) {
    EXPECT_LT(r.chunks[i - 1].frame, r.chunks[i].frame);
  }
  for (const auto& c : r.chunks) {
    ASSERT_GE(c.bytes.size(), 4u);
    EXPECT_EQ(c.bytes[0], 0x03);  // each segment starts with a TPKT header in these captures
    EXPECT_TRUE(c.from.port == 102 || c.to.port == 102);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Pcaps, RealCaptureTest,
    testing::Values(RealCapture{"s7comm_varservice_libnodavedemo.pcap", 31, 18},
                    RealCapture{"s7comm_reading_plc_status.pcap", 240, 218},
                    RealCapture{"s7comm_reading_setting_plc_time.pcap", 55, 41},
                    RealCapture{"s7comm_downloading_block_db1.pcap", 93, 78},
                    RealCapture{"s7comm_program_blocklist_onlineview.pcap", 140, 115}));

TEST(RealCapture, FirstChunkIsTheConnectRequest) {
  const auto r = read_capture(kPcaps + "s7comm_varservice_libnodavedemo.pcap");
  ASSERT_FALSE(r.chunks.empty());
  const auto& cr = r.chunks[0];
  EXPECT_EQ(cr.frame, 7u);
  EXPECT_EQ(cr.from, (TcpEndpoint{"192.168.1.10", 4258}));
  EXPECT_EQ(cr.to, (TcpEndpoint{"192.168.1.40", 102}));
  const Bytes expected = {0x03, 0x00, 0x00, 0x16, 0x11, 0xE0, 0x00, 0x00, 0x00, 0x01, 0x00,
                          0xC1, 0x02, 0x01, 0x00, 0xC2, 0x02, 0x01, 0x02, 0xC0, 0x01, 0x09};
  EXPECT_EQ(cr.bytes, expected);
  EXPECT_EQ(r.chunks[1].frame, 8u);  // the CC, the other direction
  EXPECT_EQ(r.chunks[1].from, cr.to);
  EXPECT_NE(r.chunks[1].stream, cr.stream);
}

TEST(RealCapture, EveryTruncationIsAWarningNeverACrash) {
  std::ifstream in(kPcaps + "s7comm_varservice_libnodavedemo.pcap", std::ios::binary);
  const Bytes whole((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_EQ(whole.size(), 2846u);
  std::set<std::size_t> record_ends;  // a cut there is a shorter, undamaged file
  for (std::size_t at = 24; at + 16 <= whole.size();) {
    at += 16 + (whole[at + 8] | whole[at + 9] << 8);
    record_ends.insert(at);
  }
  for (std::size_t size = 24; size < whole.size(); ++size) {
    const auto r = read_bytes(Bytes(whole.begin(), whole.begin() + std::ptrdiff_t(size)));
    EXPECT_LT(r.frames, 31u);
    EXPECT_EQ(r.warnings.empty(), size == 24 || record_ends.count(size) == 1) << size;
  }
}

// ---- One connection's worth of frames, on any link layer

// SYN, then "hello " and "world" from client to server.
std::vector<TcpSpec> greeting(const std::string& src = "10.0.0.1",
                              const std::string& dst = "10.0.0.2") {
  TcpSpec syn{src, 40000, dst, 102, 999, flags::syn, {}};
  TcpSpec first{src, 40000, dst, 102, 1000, flags::ack | flags::psh, text("hello ")};
  TcpSpec second{src, 40000, dst, 102, 1006, flags::ack | flags::psh, text("world")};
  return {syn, first, second};
}

void expect_greeting(const CaptureReadResult& r, const std::string& src = "10.0.0.1",
                     const std::string& dst = "10.0.0.2") {
  EXPECT_EQ(r.frames, 3u);
  EXPECT_TRUE(r.warnings.empty()) << warnings_of(r);
  ASSERT_EQ(r.chunks.size(), 2u);
  EXPECT_EQ(r.chunks[0].frame, 2u);
  EXPECT_EQ(r.chunks[1].frame, 3u);
  EXPECT_EQ(r.chunks[0].from, (TcpEndpoint{src, 40000}));
  EXPECT_EQ(r.chunks[0].to, (TcpEndpoint{dst, 102}));
  EXPECT_EQ(joined(r), "hello world");
}

struct LinkCase {
  const char* name;
  std::uint32_t link_type;
  Bytes (*frame)(const TcpSpec&);
};

const LinkCase kLinks[] = {
    {"ethernet", 1,
     [](const TcpSpec& s) { return test::ethernet_frame(test::ipv4_packet(s), 0x0800); }},
    {"ethernet_vlan", 1,
     [](const TcpSpec& s) { return test::ethernet_frame(test::ipv4_packet(s), 0x0800, {0x8100}); }},
    {"ethernet_qinq", 1,
     [](const TcpSpec& s) {
       return test::ethernet_frame(test::ipv4_packet(s), 0x0800, {0x88A8, 0x8100});
     }},
    {"sll", 113, [](const TcpSpec& s) { return test::sll_frame(test::ipv4_packet(s), 0x0800); }},
    {"sll2", 276, [](const TcpSpec& s) { return test::sll2_frame(test::ipv4_packet(s), 0x0800); }},
    {"null_little_endian", 0,
     [](const TcpSpec& s) { return test::loopback_frame(test::ipv4_packet(s), 2, false); }},
    {"null_big_endian", 0,
     [](const TcpSpec& s) { return test::loopback_frame(test::ipv4_packet(s), 2, true); }},
    {"loop", 108,
     [](const TcpSpec& s) { return test::loopback_frame(test::ipv4_packet(s), 2, true); }},
    {"raw", 101, [](const TcpSpec& s) { return test::ipv4_packet(s); }},
    {"ipv4", 228, [](const TcpSpec& s) { return test::ipv4_packet(s); }},
};

TEST(LinkTypes, EachCarriesIpv4Tcp) {
  for (const auto& link : kLinks) {
    SCOPED_TRACE(link.name);
    test::PcapWriter pcap(link.link_type);
    for (const auto& seg : greeting()) pcap.add(link.frame(seg));
    expect_greeting(read_bytes(pcap.bytes()));
  }
}

TEST(LinkTypes, Ipv6OnEveryLinkThatCarriesIt) {
  using Wrap = Bytes (*)(const Bytes&);
  const std::pair<std::uint32_t, Wrap> links[] = {
      {1, [](const Bytes& ip) { return test::ethernet_frame(ip, 0x86DD); }},
      {1, [](const Bytes& ip) { return test::ethernet_frame(ip, 0x86DD, {0x8100}); }},
      {113, [](const Bytes& ip) { return test::sll_frame(ip, 0x86DD); }},
      {276, [](const Bytes& ip) { return test::sll2_frame(ip, 0x86DD); }},
      {0, [](const Bytes& ip) { return test::loopback_frame(ip, 30, false); }},   // Darwin
      {0, [](const Bytes& ip) { return test::loopback_frame(ip, 28, false); }},   // FreeBSD
      {108, [](const Bytes& ip) { return test::loopback_frame(ip, 24, true); }},  // OpenBSD
      {101, [](const Bytes& ip) { return ip; }},
      {229, [](const Bytes& ip) { return ip; }},
  };
  for (const auto& [link_type, wrap] : links) {
    SCOPED_TRACE(link_type);
    test::PcapWriter pcap(link_type);
    for (const auto& seg : greeting("fe80::1", "2001:db8::2"))
      pcap.add(wrap(test::ipv6_packet(seg)));
    expect_greeting(read_bytes(pcap.bytes()), "fe80::1", "2001:db8::2");
  }
}

TEST(LinkTypes, NonIpFramesAreSkippedSilently) {
  test::PcapWriter pcap(1);
  const Bytes arp(28, 0);
  pcap.add(test::ethernet_frame(arp, 0x0806));
  TcpSpec udp_like{};
  pcap.add(test::ethernet_frame(test::ipv4_packet(udp_like, 0, 0, 17), 0x0800));
  const auto r = read_bytes(pcap.bytes());
  EXPECT_EQ(r.frames, 2u);
  EXPECT_TRUE(r.chunks.empty());
  EXPECT_TRUE(r.warnings.empty()) << warnings_of(r);
}

TEST(LinkTypes, UnsupportedLinkTypeWarnsOnce) {
  test::PcapWriter pcap(147);  // a user link type
  for (const auto& seg : greeting()) pcap.add(test::ipv4_packet(seg));
  const auto r = read_bytes(pcap.bytes());
  EXPECT_EQ(r.frames, 3u);
  EXPECT_TRUE(r.chunks.empty());
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("link type 147"), std::string::npos);
}

TEST(LinkTypes, ShortLinkHeadersWarn) {
  const std::pair<std::uint32_t, Bytes> cases[] = {
      {1, Bytes(13, 0)},  {113, Bytes(15, 0)}, {276, Bytes(19, 0)},    {0, Bytes(3, 0)},
      {108, Bytes(2, 0)}, {101, Bytes{}},      {228, Bytes(19, 0x45)}, {229, Bytes(39, 0x60)},
  };
  for (const auto& [link_type, frame] : cases) {
    SCOPED_TRACE(link_type);
    test::PcapWriter pcap(link_type);
    pcap.add(frame);
    const auto r = read_bytes(pcap.bytes());
    EXPECT_EQ(r.frames, 1u);
    EXPECT_EQ(r.warnings.size(), 1u);
  }
}

// ---- File formats and byte orders

TEST(Pcap, BothByteOrdersAndTimestampResolutions) {
  for (bool big : {false, true}) {
    for (bool nanos : {false, true}) {
      SCOPED_TRACE(std::to_string(big) + std::to_string(nanos));
      test::PcapWriter pcap(1, big, nanos);
      for (const auto& seg : greeting()) pcap.add(kLinks[0].frame(seg));
      expect_greeting(read_bytes(pcap.bytes()));
    }
  }
}

TEST(Pcap, LinkTypeFieldUpperBitsAreNotTheType) {
  test::PcapWriter pcap(0x14000000 | 1);  // FCS-length bits set, Ethernet
  for (const auto& seg : greeting()) pcap.add(kLinks[0].frame(seg));
  expect_greeting(read_bytes(pcap.bytes()));
}

TEST(Pcapng, BothByteOrdersWithEnhancedPackets) {
  for (bool big : {false, true}) {
    SCOPED_TRACE(big);
    test::PcapngWriter ng(big);
    ng.interface(1);
    for (const auto& seg : greeting()) ng.enhanced(0, kLinks[0].frame(seg));
    expect_greeting(read_bytes(ng.bytes(), "test.pcapng"));
  }
}

TEST(Pcapng, InterfacesHaveTheirOwnLinkTypes) {
  test::PcapngWriter ng;
  ng.interface(1).interface(113).interface(101);
  const auto segs = greeting();
  ng.enhanced(2, test::ipv4_packet(segs[0]));
  ng.block(4, Bytes(16, 0));  // name resolution block: skipped
  ng.enhanced(1, kLinks[3].frame(segs[1]));
  ng.block(5, Bytes(24, 0));             // interface statistics: skipped
  ng.block(0x00000BAD, Bytes(7, 0xEE));  // custom block: skipped
  ng.enhanced(0, kLinks[0].frame(segs[2]));
  expect_greeting(read_bytes(ng.bytes()));
}

TEST(Pcapng, SimplePacketsUseInterfaceZeroAndItsSnapLength) {
  test::PcapngWriter ng;
  ng.interface(1);
  for (const auto& seg : greeting()) ng.simple(kLinks[0].frame(seg));
  expect_greeting(read_bytes(ng.bytes()));

  // Snap length 58 keeps the SYN (54 bytes) and cuts both data frames (60 and 59 bytes).
  test::PcapngWriter cut;
  cut.interface(1, 58);
  for (const auto& seg : greeting()) cut.simple(kLinks[0].frame(seg));
  const auto r = read_bytes(cut.bytes());
  EXPECT_EQ(r.frames, 3u);
  EXPECT_TRUE(r.chunks.empty());
  EXPECT_EQ(r.warnings.size(), 2u) << warnings_of(r);  // two truncated IPv4 packets
}

TEST(Pcapng, SectionsMayChangeByteOrderAndResetInterfaces) {
  const auto segs = greeting();
  test::PcapngWriter ng(false);
  ng.interface(101).enhanced(0, test::ipv4_packet(segs[0]));
  ng.section(true).interface(1).enhanced(0, kLinks[0].frame(segs[1]));
  ng.section(false).interface(228).enhanced(0, test::ipv4_packet(segs[2]));
  expect_greeting(read_bytes(ng.bytes()));
}

TEST(Pcapng, PacketBlockProblemsSkipTheFrameOnly) {
  const auto segs = greeting();
  test::PcapngWriter ng;
  ng.interface(1);
  ng.enhanced(0, kLinks[0].frame(segs[0]));
  ng.enhanced(5, kLinks[0].frame(segs[1]));  // no interface 5
  // An EPB whose captured length is larger than the block.
  Bytes body;
  test::put32(body, 0, false);
  test::put32(body, 0, false);
  test::put32(body, 0, false);
  test::put32(body, 1000, false);
  test::put32(body, 1000, false);
  body.resize(40, 0);
  ng.block(6, body);
  ng.block(6, Bytes(8, 0));  // too short for an EPB
  const auto r = read_bytes(ng.bytes());
  EXPECT_EQ(r.frames, 4u);
  EXPECT_TRUE(r.chunks.empty());
  ASSERT_EQ(r.warnings.size(), 3u) << warnings_of(r);
  EXPECT_NE(r.warnings[0].find("frame 2: unknown interface 5"), std::string::npos);
  EXPECT_NE(r.warnings[1].find("frame 3: captured length 1000"), std::string::npos);
}

// ---- Damaged files

TEST(DamagedFile, BadMagicThrowsNamingFileAndOffset) {
  const std::string message = error_of([] { read_bytes(text("GET / HTTP/1.1\r\n"), "x.cap"); });
  EXPECT_NE(message.find("x.cap"), std::string::npos) << message;
  EXPECT_NE(message.find("not a pcap or pcapng file"), std::string::npos) << message;
  EXPECT_NE(message.find("offset 0"), std::string::npos) << message;
}

TEST(DamagedFile, HeaderProblemsThrow) {
  EXPECT_NE(error_of([] { read_bytes({}); }), "");
  EXPECT_NE(error_of([] { read_bytes({0xD4, 0xC3, 0xB2}); }), "");
  Bytes short_header = test::PcapWriter(1).bytes();
  short_header.resize(20);
  EXPECT_NE(error_of([&] { read_bytes(short_header); }).find("truncated pcap file header"),
            std::string::npos);
  Bytes version = test::PcapWriter(1).bytes();
  version[4] = 3;
  EXPECT_NE(error_of([&] { read_bytes(version); }).find("unsupported pcap version 3.4"),
            std::string::npos);

  Bytes bad_order = test::PcapngWriter().bytes();
  bad_order[8] = 0x99;
  EXPECT_NE(error_of([&] { read_bytes(bad_order); }).find("bad byte-order magic"),
            std::string::npos);
  Bytes bad_length = test::PcapngWriter().bytes();
  bad_length[4] = 13;  // not a multiple of 4
  EXPECT_NE(error_of([&] { read_bytes(bad_length); }).find("bad block length 13"),
            std::string::npos);
  Bytes cut_section = test::PcapngWriter().bytes();
  cut_section.resize(20);
  EXPECT_NE(error_of([&] { read_bytes(cut_section); }).find("truncated block"), std::string::npos);
  Bytes ng_version = test::PcapngWriter().bytes();
  ng_version[12] = 2;
  EXPECT_NE(error_of([&] { read_bytes(ng_version); }).find("unsupported pcapng version 2.0"),
            std::string::npos);
}

TEST(DamagedFile, MissingFileThrowsNamingIt) {
  const std::string message = error_of([] { read_capture("/nonexistent/dir/x.pcap"); });
  EXPECT_NE(message.find("/nonexistent/dir/x.pcap"), std::string::npos);
  EXPECT_NE(message.find("cannot open"), std::string::npos);
}

TEST(DamagedFile, TruncatedPcapRecordKeepsEarlierFrames) {
  test::PcapWriter pcap(1);
  for (const auto& seg : greeting()) pcap.add(kLinks[0].frame(seg));
  Bytes cut = pcap.bytes();
  cut.resize(cut.size() - 3);
  auto r = read_bytes(cut);
  EXPECT_EQ(r.frames, 2u);
  EXPECT_EQ(joined(r), "hello ");
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("truncated record"), std::string::npos) << r.warnings[0];

  cut.resize(pcap.bytes().size() - (14 + 20 + 20 + 5) - 6);  // inside the record header
  r = read_bytes(cut);
  EXPECT_EQ(r.frames, 2u);
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("truncated record header"), std::string::npos) << r.warnings[0];
}

TEST(DamagedFile, HugePcapRecordLengthStopsReading) {
  test::PcapWriter pcap(1);
  pcap.add(kLinks[0].frame(greeting()[0]));
  Bytes bytes = pcap.bytes();
  Bytes record;
  for (std::uint32_t v : {0u, 0u, 0x7FFFFFFFu, 0x7FFFFFFFu}) test::put32(record, v, false);
  test::append(bytes, record);
  const auto r = read_bytes(bytes);
  EXPECT_EQ(r.frames, 1u);
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("exceeds the 64 MiB limit"), std::string::npos);
}

TEST(DamagedFile, PcapngDamageAfterTheFirstSectionIsAWarning) {
  test::PcapngWriter ng;
  ng.interface(1).enhanced(0, kLinks[0].frame(greeting()[1]));
  const Bytes good = ng.bytes();

  Bytes huge = good;
  for (std::uint32_t v : {6u, 0x7FFFFFF0u}) test::put32(huge, v, false);
  auto r = read_bytes(huge);
  EXPECT_EQ(joined(r), "hello ");
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("bad block length"), std::string::npos);

  Bytes tiny = good;
  for (std::uint32_t v : {6u, 8u}) test::put32(tiny, v, false);
  EXPECT_EQ(read_bytes(tiny).warnings.size(), 1u);

  Bytes truncated = good;
  truncated.resize(good.size() - 10);
  r = read_bytes(truncated);
  EXPECT_EQ(r.frames, 0u);
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("truncated block"), std::string::npos);

  Bytes trailer = good;
  trailer[trailer.size() - 1] ^= 0x01;  // trailing length differs: warned, block still used
  r = read_bytes(trailer);
  EXPECT_EQ(joined(r), "hello ");
  EXPECT_EQ(r.warnings.size(), 1u);
}

TEST(DamagedFile, WarningsAreCapped) {
  test::PcapWriter pcap(1);
  for (int i = 0; i < 3000; ++i) pcap.add(Bytes(5, 0));
  const auto r = read_bytes(pcap.bytes());
  EXPECT_EQ(r.frames, 3000u);
  ASSERT_EQ(r.warnings.size(), 1001u);
  EXPECT_EQ(r.warnings.back(), "2000 more warnings suppressed");
}

// ---- IP

CaptureReadResult read_ethernet(const std::vector<Bytes>& ip_packets, std::uint16_t type = 0x0800) {
  test::PcapWriter pcap(1);
  for (const auto& ip : ip_packets) pcap.add(test::ethernet_frame(ip, type));
  return read_bytes(pcap.bytes());
}

TEST(Ip, Ipv4OptionsAndEthernetPaddingAreHonoured) {
  const auto segs = greeting();
  test::PcapWriter pcap(1);
  pcap.add(kLinks[0].frame(segs[0]));
  pcap.add(test::ethernet_frame(test::ipv4_packet(segs[1], 3), 0x0800));
  Bytes padded = kLinks[0].frame(segs[2]);
  padded.insert(padded.end(), {0xAA, 0xBB, 0xCC, 0xDD});  // padding / FCS after the IP packet
  pcap.add(padded);
  expect_greeting(read_bytes(pcap.bytes()));
}

TEST(Ip, ZeroIpv4TotalLengthMeansSegmentationOffload) {
  TcpSpec s{};
  s.payload = text("offloaded");
  Bytes ip = test::ipv4_packet(s);
  ip[2] = ip[3] = 0;
  EXPECT_EQ(joined(read_ethernet({ip})), "offloaded");
}

TEST(Ip, TcpOptionsAreSkipped) {
  TcpSpec s{};
  s.payload = text("data");
  Bytes ip = test::ipv4_packet(s);
  // Rebuild with a TCP header carrying one option word.
  const Bytes tcp = test::tcp_segment(s, true);
  ip.resize(20);
  ip[2] = 0;
  ip[3] = std::uint8_t(20 + tcp.size());
  test::append(ip, tcp);
  EXPECT_EQ(joined(read_ethernet({ip})), "data");
}

TEST(Ip, Ipv4FragmentsOtherThanTheFirstAreSkippedWithAWarning) {
  const auto segs = greeting();
  const auto r = read_ethernet({test::ipv4_packet(segs[0]), test::ipv4_packet(segs[1], 0, 0x2000),
                                test::ipv4_packet(segs[2], 0, 0x0010)});
  EXPECT_EQ(joined(r), "hello ");  // the first fragment (MF set, offset 0) is used
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("frame 3: IPv4 fragment"), std::string::npos);
}

TEST(Ip, BadIpv4HeadersWarn) {
  Bytes version = test::ipv4_packet(greeting()[1]);
  version[0] = 0x55;
  Bytes header_length = test::ipv4_packet(greeting()[1]);
  header_length[0] = 0x44;
  Bytes total_short = test::ipv4_packet(greeting()[1]);
  total_short[3] = 10;
  Bytes total_long = test::ipv4_packet(greeting()[1]);
  total_long[2] = 0x10;
  Bytes tcp_offset = test::ipv4_packet(greeting()[1]);
  tcp_offset[20 + 12] = 0xF0;
  Bytes tcp_short = test::ipv4_packet(greeting()[1]);
  tcp_short.resize(30);
  tcp_short[3] = 30;
  const auto r =
      read_ethernet({version, header_length, total_short, total_long, tcp_offset, tcp_short});
  EXPECT_TRUE(r.chunks.empty());
  EXPECT_EQ(r.warnings.size(), 6u) << warnings_of(r);
}

TEST(Ip, Ipv6ExtensionHeadersAreSkipped) {
  const auto segs = greeting("2001:db8::1", "2001:db8::2");
  // Hop-by-hop (8 bytes) -> fragment (8 bytes, offset 0, M set) -> TCP.
  const Bytes chain = {44, 0, 1, 4, 0, 0, 0, 0, 6, 0, 0x00, 0x01, 0, 0, 0, 7};
  const Bytes destination = {6, 0, 1, 4, 0, 0, 0, 0};       // destination options -> TCP
  const Bytes auth = {6, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0};  // AH, 12 bytes -> TCP
  const auto r = read_ethernet(
      {test::ipv6_packet(segs[0], 0, chain), test::ipv6_packet(segs[1], 60, destination),
       test::ipv6_packet(segs[2], 51, auth)},
      0x86DD);
  expect_greeting(r, "2001:db8::1", "2001:db8::2");
}

TEST(Ip, Ipv6PacketsThatCannotBeReadWarn) {
  const auto segs = greeting("2001:db8::1", "2001:db8::2");
  const Bytes later_fragment = {6, 0, 0x00, 0x08, 0, 0, 0, 7};
  const Bytes esp = {0, 0, 0, 1, 0, 0, 0, 1};
  Bytes truncated_extension = {6, 4, 0, 0};  // says 40 bytes
  Bytes cut = test::ipv6_packet(segs[1]);
  cut[5] = 200;  // payload length beyond the frame
  const auto r = read_ethernet(
      {test::ipv6_packet(segs[1], 44, later_fragment), test::ipv6_packet(segs[1], 50, esp),
       test::ipv6_packet(segs[1], 60, truncated_extension), cut},
      0x86DD);
  EXPECT_TRUE(r.chunks.empty());
  ASSERT_EQ(r.warnings.size(), 4u) << warnings_of(r);
  EXPECT_NE(r.warnings[0].find("IPv6 fragment"), std::string::npos);
  EXPECT_NE(r.warnings[1].find("ESP"), std::string::npos);
}

// ---- TCP reassembly

CaptureReadResult read_segments(const std::vector<TcpSpec>& segs) {
  test::PcapWriter pcap(101);
  for (const auto& s : segs) pcap.add(test::ipv4_packet(s));
  return read_bytes(pcap.bytes());
}

TcpSpec data(std::uint32_t seq, const std::string& payload, std::uint16_t src_port = 40000) {
  return TcpSpec{"10.0.0.1",   src_port, "10.0.0.2", 102, seq, flags::ack | flags::psh,
                 text(payload)};
}

std::string chunk_text(const TcpChunk& c) {
  return std::string(c.bytes.begin(), c.bytes.end());
}

const TcpSpec kSyn{"10.0.0.1", 40000, "10.0.0.2", 102, 99, flags::syn, {}};  // payload from 100

TEST(Tcp, OutOfOrderSegmentsWaitForTheGap) {
  const auto r =
      read_segments({kSyn, data(104, "EF"), data(100, "A"), data(102, "CD"), data(101, "B")});
  EXPECT_TRUE(r.warnings.empty()) << warnings_of(r);
  ASSERT_EQ(r.chunks.size(), 2u);
  EXPECT_EQ(r.chunks[0].frame, 3u);
  EXPECT_EQ(chunk_text(r.chunks[0]), "A");
  EXPECT_EQ(r.chunks[1].frame, 5u);  // the frame that filled the gap
  EXPECT_EQ(chunk_text(r.chunks[1]), "BCDEF");
}

TEST(Tcp, RetransmissionsAndOverlapsDeliverEachByteOnce) {
  const auto r = read_segments(
      {kSyn, data(100, "AB"), data(100, "AB"), data(101, "BCD"), data(103, "D"), data(102, "x")});
  EXPECT_TRUE(r.warnings.empty()) << warnings_of(r);
  ASSERT_EQ(r.chunks.size(), 2u);
  EXPECT_EQ(r.chunks[0].frame, 2u);
  EXPECT_EQ(chunk_text(r.chunks[0]), "AB");
  EXPECT_EQ(r.chunks[1].frame, 4u);
  EXPECT_EQ(chunk_text(r.chunks[1]), "CD");
}

TEST(Tcp, BufferedSegmentsOverlappingEachOther) {
  // Same start twice: the longer one is kept; an in-order segment overlapping buffered data.
  const auto r =
      read_segments({kSyn, data(103, "D"), data(103, "DEF"), data(104, "E"), data(100, "ABCDE")});
  ASSERT_EQ(r.chunks.size(), 1u);
  EXPECT_EQ(chunk_text(r.chunks[0]), "ABCDEF");
  EXPECT_EQ(r.chunks[0].frame, 5u);
}

TEST(Tcp, SequenceNumbersWrapAround) {
  TcpSpec syn = kSyn;
  syn.seq = 0xFFFFFFFC;  // payload starts at 0xFFFFFFFD
  const auto r = read_segments({syn, data(1, "EF"), data(0xFFFFFFFD, "ABCD"), data(3, "G")});
  EXPECT_TRUE(r.warnings.empty()) << warnings_of(r);
  EXPECT_EQ(joined(r), "ABCDEFG");
}

TEST(Tcp, SynWithDataAndFinWithData) {
  TcpSpec syn = kSyn;
  syn.payload = text("A");
  TcpSpec fin = data(101, "B");
  fin.flags = flags::fin | flags::ack;
  const auto r = read_segments({syn, syn, fin});  // a retransmitted SYN changes nothing
  EXPECT_EQ(joined(r), "AB");
}

TEST(Tcp, CaptureStartingMidConnection) {
  const auto r = read_segments({data(5000, "xy"), data(5002, "z"), data(4999, "wx")});
  EXPECT_TRUE(r.warnings.empty()) << warnings_of(r);
  EXPECT_EQ(joined(r), "xyz");
}

TEST(Tcp, ResetsCarryNoData) {
  TcpSpec rst = data(100, "junk");
  rst.flags = flags::rst | flags::ack;
  const auto r = read_segments({rst, kSyn, rst, data(100, "A")});
  EXPECT_EQ(joined(r), "A");
}

TEST(Tcp, DirectionsAndConnectionsAreSeparateStreams) {
  TcpSpec reply{"10.0.0.2", 102, "10.0.0.1", 40000, 7000, flags::ack | flags::psh, text("r")};
  TcpSpec again = kSyn;
  again.seq = 5000;
  const auto r = read_segments({kSyn, data(100, "A"), reply, data(101, "B"), data(103, "lost"),
                                again, data(5001, "C"), data(102, "old")});
  ASSERT_EQ(r.chunks.size(), 4u);
  EXPECT_EQ(r.chunks[0].stream, r.chunks[2].stream);  // A, B
  EXPECT_NE(r.chunks[0].stream, r.chunks[1].stream);  // the reply direction
  EXPECT_EQ(r.chunks[1].from, (TcpEndpoint{"10.0.0.2", 102}));
  EXPECT_NE(r.chunks[3].stream, r.chunks[0].stream);  // a new SYN: a new connection
  EXPECT_EQ(chunk_text(r.chunks[3]), "C");
  // The bytes buffered behind the gap of the first connection are reported, not delivered;
  // "old" lies before the new connection's first byte and is dropped like a retransmission.
  ASSERT_EQ(r.warnings.size(), 1u) << warnings_of(r);
  EXPECT_NE(r.warnings[0].find("4 bytes after a gap at stream offset 2 were never delivered"),
            std::string::npos)
      << r.warnings[0];
}

TEST(Tcp, AGapThatNeverFillsIsSkippedWhenTheBufferIsFull) {
  std::vector<TcpSpec> segs = {kSyn};
  for (std::uint32_t i = 0; i <= 4096; ++i) segs.push_back(data(102 + i, "x"));
  const auto r = read_segments(segs);
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("2 missing bytes never arrived, skipped"), std::string::npos)
      << r.warnings[0];
  ASSERT_EQ(r.chunks.size(), 1u);
  EXPECT_EQ(r.chunks[0].bytes.size(), 4097u);
  EXPECT_EQ(r.chunks[0].frame, segs.size());
}

}  // namespace
}  // namespace scada::runtime
