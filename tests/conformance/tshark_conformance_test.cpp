// Conformance against a third-party decoder: every kind of frame our encoder produces is written
// to a capture (Ethernet/IPv4/TCP on a non-standard port, with a real TCP handshake and
// sequence numbers) and decoded by Debian's tshark with its s7comm dissector. No frame may be
// malformed or carry an expert error, and the fields tshark reads must equal what we encoded.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "channel/channel.h"

namespace ch = scada::channel;
namespace fs = std::filesystem;

namespace {

constexpr std::uint16_t kServerPort = 10102;
constexpr std::uint16_t kClientPort = 50102;

// Minimal classic-pcap writer: Ethernet + IPv4 + TCP around each payload.
class PcapWriter {
 public:
  explicit PcapWriter(const fs::path& path) : out_(path, std::ios::binary) {
    put32(0xa1b2c3d4);
    put16(2);
    put16(4);
    put32(0);
    put32(0);
    put32(65535);
    put32(1);  // LINKTYPE_ETHERNET
  }

  // Sends payload in one TCP segment in the given direction; returns the frame number.
  int segment(bool from_client, const ch::Bytes& payload, std::uint8_t flags = 0x18) {
    Side& s = from_client ? client_ : server_;
    Side& peer = from_client ? server_ : client_;
    ch::Bytes f;
    auto b = [&f](std::initializer_list<int> v) {
      for (int x : v) f.push_back(std::uint8_t(x));
    };
    auto u16 = [&f](std::uint32_t v) {
      f.push_back(std::uint8_t(v >> 8)), f.push_back(std::uint8_t(v));
    };
    auto u32 = [&](std::uint32_t v) { u16(v >> 16), u16(v & 0xFFFF); };
    // Ethernet
    b({0x02, 0, 0, 0, 0, from_client ? 1 : 2, 0x02, 0, 0, 0, 0, from_client ? 2 : 1, 0x08, 0x00});
    // IPv4
    const std::size_t ip_len = 20 + 20 + payload.size();
    const std::size_t ip_at = f.size();
    b({0x45, 0});
    u16(std::uint32_t(ip_len));
    u16(std::uint32_t(++ip_id_));
    b({0x40, 0, 64, 6, 0, 0});
    b({127, 0, 0, from_client ? 1 : 2});
    b({127, 0, 0, from_client ? 2 : 1});
    std::uint32_t sum = 0;
    for (std::size_t i = ip_at; i < ip_at + 20; i += 2) sum += std::uint32_t(f[i] << 8 | f[i + 1]);
    while (sum >> 16) sum = (sum & 0xFFFF) + (sum >> 16);
    f[ip_at + 10] = std::uint8_t(~sum >> 8);
    f[ip_at + 11] = std::uint8_t(~sum);
    // TCP
    u16(from_client ? kClientPort : kServerPort);
    u16(from_client ? kServerPort : kClientPort);
    u32(s.seq);
    u32(flags & 0x10 ? peer.seq : 0);
    b({0x50, flags});
    u16(65535);
    b({0, 0, 0, 0});
    f.insert(f.end(), payload.begin(), payload.end());
    s.seq += std::uint32_t(payload.size()) + ((flags & 0x02) ? 1 : 0);

    put32(std::uint32_t(++frames_));
    put32(0);
    put32(std::uint32_t(f.size()));
    put32(std::uint32_t(f.size()));
    out_.write(reinterpret_cast<const char*>(f.data()), std::streamsize(f.size()));
    return frames_;
  }

  void handshake() {
    segment(true, {}, 0x02);
    segment(false, {}, 0x12);
    segment(true, {}, 0x10);
  }
  void close() { out_.close(); }

 private:
  struct Side {
    std::uint32_t seq;
  };
  void put16(std::uint16_t v) { out_.write(reinterpret_cast<const char*>(&v), 2); }
  void put32(std::uint32_t v) { out_.write(reinterpret_cast<const char*>(&v), 4); }

  std::ofstream out_;
  Side client_{1000}, server_{5000};
  int frames_ = 0;
  int ip_id_ = 0;
};

const std::vector<std::string> kFields = {
    "frame.number",
    "cotp.type",
    "cotp.tpdu_size",
    "cotp.eot",
    "s7comm.header.rosctr",
    "s7comm.header.pduref",
    "s7comm.header.errcls",
    "s7comm.header.errcod",
    "s7comm.param.func",
    "s7comm.param.itemcount",
    "s7comm.param.maxamq_calling",
    "s7comm.param.maxamq_called",
    "s7comm.param.pdu_length",
    "s7comm.param.item.transp_size",
    "s7comm.param.item.length",
    "s7comm.param.item.db",
    "s7comm.param.item.area",
    "s7comm.param.item.address.byte",
    "s7comm.data.returncode",
    "s7comm.data.transportsize",
    "s7comm.param.userdata.type",
    "s7comm.param.userdata.funcgroup",
    "s7comm.param.userdata.subfunc",
    "s7comm.param.userdata.seq_num",
    "s7comm.data.userdata.szl_id",
    "s7comm.data.userdata.szl_index",
    "_ws.malformed",
    "_ws.expert.severity",
};

// Numbers as tshark may print them (decimal or 0x hex) normalized to decimal; lists kept in
// order.
std::string normalize(const std::string& value) {
  std::stringstream in(value);
  std::string item, out;
  while (std::getline(in, item, ',')) {
    if (!out.empty()) out += ",";
    try {
      std::size_t used = 0;
      unsigned long v = std::stoul(item, &used, 0);
      out += used == item.size() ? std::to_string(v) : item;
    } catch (const std::exception&) {
      out += item;
    }
  }
  return out;
}

std::map<int, std::map<std::string, std::string>> run_tshark(const fs::path& capture) {
  std::string cmd = "tshark -n -r '" + capture.string() +
                    "' -d tcp.port==" + std::to_string(kServerPort) +
                    ",tpkt -T fields -E separator=/t -E aggregator=,";
  for (const auto& f : kFields) cmd += " -e " + f;
  const fs::path errors = capture.string() + ".stderr";
  cmd += " 2>'" + errors.string() + "'";
  std::map<int, std::map<std::string, std::string>> rows;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return rows;
  std::array<char, 8192> buf{};
  std::string text;
  while (fgets(buf.data(), int(buf.size()), p)) text += buf.data();
  const int status = pclose(p);
  if (std::getenv("SCADA_KEEP_CAPTURE")) std::fprintf(stderr, "capture: %s\n", capture.c_str());
  std::ifstream err_in(errors);
  const std::string err_text((std::istreambuf_iterator<char>(err_in)), {});
  EXPECT_EQ(status, 0) << "tshark failed (samples/setup.sh installs it):\n" << err_text;
  std::stringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::vector<std::string> cols;
    std::stringstream l(line);
    std::string c;
    while (std::getline(l, c, '\t')) cols.push_back(c);
    cols.resize(kFields.size());
    int frame = 0;
    try {
      frame = std::stoi(cols[0]);
    } catch (const std::exception&) {
      ADD_FAILURE() << "unexpected tshark output: " << line;
      continue;
    }
    for (std::size_t i = 1; i < kFields.size(); ++i) rows[frame][kFields[i]] = normalize(cols[i]);
  }
  return rows;
}

constexpr unsigned kAny = ~0u;

std::string join(const std::vector<unsigned>& v) {
  std::string s;
  for (auto x : v) s += (s.empty() ? "" : ",") + (x == kAny ? std::string("*") : std::to_string(x));
  return s;
}

// A comma-separated expected list where "*" matches any one element.
bool matches(const std::string& actual, const std::string& expected) {
  std::stringstream a(actual), e(expected);
  std::string x, y;
  while (true) {
    const bool more_a = bool(std::getline(a, x, ','));
    const bool more_e = bool(std::getline(e, y, ','));
    if (!more_a || !more_e) return more_a == more_e;
    if (y != "*" && x != y) return false;
  }
}

// What tshark must report for an S7comm PDU we encoded.
std::map<std::string, std::string> expected_fields(const ch::Pdu& pdu) {
  std::map<std::string, std::string> e;
  const auto& h = pdu.header;
  e["s7comm.header.rosctr"] = std::to_string(unsigned(h.rosctr));
  e["s7comm.header.pduref"] = std::to_string(h.pdu_ref);
  if (h.size() == 12) {
    e["s7comm.header.errcls"] = std::to_string(h.error_class);
    e["s7comm.header.errcod"] = std::to_string(h.error_code);
  }
  std::vector<unsigned> ts, len, db, area, byte, rcs, dts;
  auto items = [&](const std::vector<ch::VarItem>& list) {
    for (const auto& i : list) {
      ts.push_back(unsigned(i.transport));
      len.push_back(i.count);
      db.push_back(i.db);
      area.push_back(unsigned(i.area));
      if (i.area != ch::Area::timers && i.area != ch::Area::counters)
        byte.push_back(i.address >> 3);
    }
  };
  // tshark does not read the size byte of a reply's error item (it shows the previous item's
  // value), so an error item's transport size is compared with a wildcard.
  auto data = [&](const std::vector<ch::DataItem>& list, bool reply) {
    for (const auto& d : list) {
      rcs.push_back(d.return_code);
      dts.push_back(reply && d.return_code != 0xFF ? kAny : unsigned(d.size));
    }
  };
  std::visit(
      [&](const auto& b) {
        using T = std::decay_t<decltype(b)>;
        if constexpr (std::is_same_v<T, ch::SetupCommunication>) {
          e["s7comm.param.func"] = "240";
          e["s7comm.param.maxamq_calling"] = std::to_string(b.amq_calling);
          e["s7comm.param.maxamq_called"] = std::to_string(b.amq_called);
          e["s7comm.param.pdu_length"] = std::to_string(b.pdu_size);
        } else if constexpr (std::is_same_v<T, ch::ReadVarRequest>) {
          e["s7comm.param.func"] = "4";
          e["s7comm.param.itemcount"] = std::to_string(b.items.size());
          items(b.items);
        } else if constexpr (std::is_same_v<T, ch::ReadVarResponse>) {
          e["s7comm.param.func"] = "4";
          e["s7comm.param.itemcount"] = std::to_string(b.items.size());
          data(b.items, true);
        } else if constexpr (std::is_same_v<T, ch::WriteVarRequest>) {
          e["s7comm.param.func"] = "5";
          e["s7comm.param.itemcount"] = std::to_string(b.items.size());
          items(b.items);
          data(b.data, false);
        } else if constexpr (std::is_same_v<T, ch::WriteVarResponse>) {
          e["s7comm.param.func"] = "5";
          e["s7comm.param.itemcount"] = std::to_string(b.return_codes.size());
          for (auto c : b.return_codes) rcs.push_back(c);
        } else if constexpr (std::is_same_v<T, ch::Userdata>) {
          e["s7comm.param.userdata.type"] = std::to_string(b.param.type);
          e["s7comm.param.userdata.funcgroup"] = std::to_string(b.param.group);
          e["s7comm.param.userdata.subfunc"] = std::to_string(b.param.subfunction);
          e["s7comm.param.userdata.seq_num"] = std::to_string(b.param.sequence);
          rcs.push_back(b.data.return_code);
          dts.push_back(unsigned(b.data.size));
          if (auto szl = ch::szl_id_of(pdu)) {
            e["s7comm.data.userdata.szl_id"] = std::to_string(szl->id);
            e["s7comm.data.userdata.szl_index"] = std::to_string(szl->index);
          }
        } else if constexpr (std::is_same_v<T, ch::OtherFunction>) {
          if (!b.param.empty()) e["s7comm.param.func"] = std::to_string(b.param[0]);
        }
      },
      pdu.body);
  e["s7comm.param.item.transp_size"] = join(ts);
  e["s7comm.param.item.length"] = join(len);
  e["s7comm.param.item.db"] = join(db);
  e["s7comm.param.item.area"] = join(area);
  e["s7comm.param.item.address.byte"] = join(byte);
  e["s7comm.data.returncode"] = join(rcs);
  e["s7comm.data.transportsize"] = join(dts);
  return e;
}

ch::Bytes dt(const ch::Pdu& pdu) {
  return ch::frame_dt(ch::encode_s7(pdu), 1024).front();
}

}  // namespace

TEST(TsharkConformance, EveryFrameKindDecodesCleanlyWithTheFieldsWeEncoded) {
  const fs::path dir =
      fs::temp_directory_path() / ("scada-conformance-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const fs::path capture = dir / "encoded.pcap";
  PcapWriter w(capture);
  w.handshake();

  std::map<int, std::map<std::string, std::string>> expect;
  auto send_pdu = [&](bool from_client, const ch::Pdu& pdu) {
    expect[w.segment(from_client, dt(pdu))] = expected_fields(pdu);
  };

  // COTP connect, classic TSAPs.
  ch::CotpConnect cr;
  cr.src_ref = 0x0001;
  cr.tpdu_size_code = 0x0A;
  cr.calling = ch::Tsap::from_u16(0x0100);
  cr.called = ch::Tsap::remote(1, 0, 2);
  expect[w.segment(true, ch::tpkt_wrap(ch::encode_cotp(cr)))] = {{"cotp.type", "14"},
                                                                 {"cotp.tpdu_size", "1024"}};
  ch::CotpConnect cc = cr;
  cc.confirm = true;
  cc.dst_ref = 0x0001;
  cc.src_ref = 0x4411;
  expect[w.segment(false, ch::tpkt_wrap(ch::encode_cotp(cc)))] = {{"cotp.type", "13"},
                                                                  {"cotp.tpdu_size", "1024"}};

  using ch::Area;
  using ch::DataSize;
  using ch::Header;
  using ch::Rosctr;
  using ch::TransportSize;
  send_pdu(true, {Header{Rosctr::job, 0, 0xFFFF}, ch::SetupCommunication{1, 1, 960}});
  send_pdu(false, {Header{Rosctr::ack_data, 0, 0xFFFF}, ch::SetupCommunication{1, 1, 480}});

  ch::ReadVarRequest read;
  read.items = {{TransportSize::byte, 64, 1, Area::data_block, 0},
                {TransportSize::bit, 1, 0, Area::flags, 10 * 8 + 2},
                {TransportSize::byte, 3, 0, Area::inputs, 8},
                {TransportSize::word, 1, 0, Area::outputs, 4 * 8},
                {TransportSize::timer, 2, 0, Area::timers, 5},
                {TransportSize::counter, 1, 0, Area::counters, 3},
                {TransportSize::byte, 4, 9, Area::data_block, 100 * 8}};
  send_pdu(true, {Header{Rosctr::job, 0, 2}, read});
  ch::ReadVarResponse reply;
  reply.items = {{0xFF, DataSize::byte_word_dword, ch::Bytes(64, 0x11)},
                 {0xFF, DataSize::bit, {0x01}},
                 {0xFF, DataSize::byte_word_dword, {1, 2, 3}},
                 {0x05, DataSize::null, {}},
                 {0xFF, DataSize::octet_string, {0x12, 0x34, 0x56, 0x78}},
                 {0xFF, DataSize::octet_string, {0x00, 0x07}},
                 {0x0A, DataSize::null, {}}};
  send_pdu(false, {Header{Rosctr::ack_data, 0, 2}, reply});

  ch::WriteVarRequest write;
  write.items = {{TransportSize::byte, 3, 1, Area::data_block, 16 * 8},
                 {TransportSize::bit, 1, 0, Area::outputs, 1},
                 {TransportSize::byte, 4, 2, Area::data_block, 0}};
  write.data = {{0x00, DataSize::byte_word_dword, {7, 8, 9}},
                {0x00, DataSize::bit, {0x01}},
                {0x00, DataSize::byte_word_dword, {0x3f, 0x80, 0, 0}}};
  send_pdu(true, {Header{Rosctr::job, 0, 3}, write});
  send_pdu(false, {Header{Rosctr::ack_data, 0, 3}, ch::WriteVarResponse{{0xFF, 0x07, 0xFF}}});

  // A refused job: Ack_Data echoing the function, error class/code in the header; a plain Ack.
  send_pdu(true, {Header{Rosctr::job, 0, 4}, ch::ReadVarRequest{{read.items[0]}}});
  send_pdu(false,
           {Header{Rosctr::ack_data, 0, 4, 0, 0, 0x85, 0x00}, ch::OtherFunction{{0x04, 0x01}, {}}});
  send_pdu(false, {Header{Rosctr::ack, 0, 5, 0, 0, 0x81, 0x04}, ch::NoBody{}});

  // SZL: a request, an answer in three pieces at PDU 240 with two follow-up requests.
  send_pdu(true, ch::szl_request(6, 0, {0x001C, 0x0000}));
  ch::SzlList list{0x001C, 0x0000, 34, {}};
  for (std::uint16_t i = 1; i <= 12; ++i) {
    ch::Bytes rec(34, 0x20);
    rec[0] = 0;
    rec[1] = std::uint8_t(i);
    list.records.push_back(rec);
  }
  auto pieces = ch::szl_responses(6, 1, 7, list, 240);
  ASSERT_EQ(pieces.size(), 2u);
  {
    // tshark names the SZL id only on the reassembled (last) piece; check the rest.
    auto e = expected_fields(pieces[0]);
    e.erase("s7comm.data.userdata.szl_id");
    e.erase("s7comm.data.userdata.szl_index");
    expect[w.segment(false, dt(pieces[0]))] = e;
  }
  const auto& first = std::get<ch::Userdata>(pieces[0].body);
  ch::Pdu more = ch::szl_continue(7, first.param);
  send_pdu(true, more);
  pieces[1].header.pdu_ref = 7;
  {
    auto e = expected_fields(pieces[1]);
    e["s7comm.data.userdata.szl_id"] = "28";
    e["s7comm.data.userdata.szl_index"] = "0";
    expect[w.segment(false, dt(pieces[1]))] = e;
  }

  // A PDU split over two DTs (tshark reassembles it on the second), and a fast acknowledge.
  ch::Pdu big{Header{Rosctr::ack_data, 0, 8},
              ch::ReadVarResponse{{{0xFF, DataSize::byte_word_dword, ch::Bytes(700, 0x5A)}}}};
  auto frames = ch::frame_dt(ch::encode_s7(big), 512);
  ASSERT_EQ(frames.size(), 2u);
  send_pdu(true, {Header{Rosctr::job, 0, 8},
                  ch::ReadVarRequest{{{TransportSize::byte, 700, 1, Area::data_block, 0}}}});
  expect[w.segment(false, frames[0])] = {{"cotp.type", "15"}, {"cotp.eot", "0"}};
  auto last = expected_fields(big);
  last["cotp.eot"] = "1";
  expect[w.segment(false, frames[1])] = last;
  expect[w.segment(true, ch::tpkt_wrap(ch::encode_cotp(ch::CotpData{false, 0, {}})))] = {
      {"cotp.type", "15"}, {"cotp.eot", "0"}};

  // Disconnect request and confirm, and a COTP error TPDU.
  expect[w.segment(true, ch::tpkt_wrap(ch::encode_cotp(ch::CotpDisconnect{
                             false, 0x4411, 0x0001, 0x80})))] = {{"cotp.type", "8"}};
  expect[w.segment(false, ch::tpkt_wrap(ch::encode_cotp(ch::CotpDisconnect{
                              true, 0x0001, 0x4411, 0})))] = {{"cotp.type", "12"}};
  expect[w.segment(false, ch::tpkt_wrap(ch::encode_cotp(ch::CotpReject{0x0001, 0x02})))] = {
      {"cotp.type", "7"}};
  w.close();

  auto rows = run_tshark(capture);
  ASSERT_FALSE(rows.empty());
  for (const auto& [frame, row] : rows) {
    EXPECT_EQ(row.at("_ws.malformed"), "") << "frame " << frame << " is malformed for tshark";
    // Expert severities: 0x00800000 is error; notes and chats (TCP analysis) are fine.
    std::stringstream sev(row.at("_ws.expert.severity"));
    std::string s;
    while (std::getline(sev, s, ',')) {
      EXPECT_LT(std::stoul(s), 0x00800000ul) << "frame " << frame << " has an expert error";
    }
  }
  for (const auto& [frame, fields] : expect) {
    ASSERT_TRUE(rows.count(frame)) << "tshark printed no frame " << frame;
    for (const auto& [name, value] : fields) {
      EXPECT_PRED2(matches, rows.at(frame).at(name), value)
          << "frame " << frame << " field " << name;
    }
  }
  if (!std::getenv("SCADA_KEEP_CAPTURE")) fs::remove_all(dir);
}

// The s7-secure opening: CR with the SIMATIC-ROOT-HMI TSAP and the InitSSL exchange in DTs.
TEST(TsharkConformance, SecureModeOpeningIsWellFormedCotp) {
  const fs::path dir =
      fs::temp_directory_path() / ("scada-conformance-s-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const fs::path capture = dir / "secure.pcap";
  PcapWriter w(capture);
  w.handshake();
  ch::CotpConnect cr;
  cr.src_ref = 0x0002;
  cr.tpdu_size_code = 0x0A;
  cr.calling = ch::Tsap::from_u16(0x0600);
  cr.called = ch::Tsap::from_text("SIMATIC-ROOT-HMI");
  const int f1 = w.segment(true, ch::tpkt_wrap(ch::encode_cotp(cr)));
  const int f2 = w.segment(true, ch::frame_dt(ch::encode_init_ssl_request(), 1024).front());
  const int f3 = w.segment(false, ch::frame_dt(ch::encode_init_ssl_response(), 1024).front());
  w.close();
  auto rows = run_tshark(capture);
  ASSERT_TRUE(rows.count(f1) && rows.count(f2) && rows.count(f3));
  EXPECT_EQ(rows[f1]["cotp.type"], "14");
  EXPECT_EQ(rows[f1]["cotp.tpdu_size"], "1024");
  for (int f : {f1, f2, f3}) {
    EXPECT_EQ(rows[f]["_ws.malformed"], "") << "frame " << f;
    EXPECT_EQ(rows[f]["s7comm.header.rosctr"], "") << "InitSSL is not S7comm";
  }
  EXPECT_EQ(rows[f2]["cotp.type"], "15");
  EXPECT_EQ(rows[f3]["cotp.eot"], "1");
  if (!std::getenv("SCADA_KEEP_CAPTURE")) fs::remove_all(dir);
}
