// make_seeds: writes the generated seeds of tests/fuzz/corpus/ (not a fuzz target; built with
// them, run by hand when the codec or plcsim changes):
//   fuzz_server/  client streams: conversations with plcsim's ServerSession in every mode (CR,
//                 InitSSL, setup, Read/Write Var split over DTs, SZL reads followed by their
//                 continuations, refused functions, DR), and the client side of every TCP
//                 connection of the real captures;
//   fuzz_frame/   PLC streams whose SZL answers come in several pieces: the PLC side of those
//                 conversations, szl_responses of a long list at small PDUs, and the PLC side of
//                 the real captures (their multi-part SZL answers) in windows of whole frames.
// Usage: fuzz_make_seeds CORPUS_DIR PCAP_DIR, e.g. (from the project)
//   ninja -C build-fuzz fuzz_make_seeds &&
//   build-fuzz/bin/fuzz_make_seeds tests/fuzz/corpus ../shared/testdata/pcaps
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "channel/channel.h"
#include "plc_state.h"
#include "runtime/runtime.h"
#include "server_options.h"
#include "server_session.h"

namespace {

namespace ch = scada::channel;
namespace ps = scada::plcsim;
namespace fs = std::filesystem;
namespace fz = scada::fuzz;

constexpr std::size_t kMaxSeed = 8192;  // run.sh: -max_len=8192

void write_file(const fs::path& file, const ch::Bytes& bytes) {
  fs::create_directories(file.parent_path());
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + file.string());
  std::printf("%s (%zu bytes)\n", file.string().c_str(), bytes.size());
}

void append(ch::Bytes& to, const ch::Bytes& bytes) {
  to.insert(to.end(), bytes.begin(), bytes.end());
}

// One client talking to a ServerSession of fuzz_server's PLC: both directions recorded.
class Conversation {
 public:
  explicit Conversation(std::uint8_t options)
      : options_(options), plc_(fz::server_config(options)), session_(plc_, plc_.config().mode) {
    fz::apply_server_options(plc_, options);
  }

  ps::ServerSession::Output send_tpdu(const ch::Bytes& tpdu) {
    append(client_, ch::tpkt_wrap(tpdu));
    ps::ServerSession::Output out = session_.on_tpdu(tpdu);
    for (const auto& f : out.frames) append(server_, f);
    if (out.start_tls && !(options_ & fz::kServerNoHandshake)) session_.tls_established();
    return out;
  }

  // Sends a PDU cut into DTs of the negotiated TPDU size; the reply PDU, if any.
  std::optional<ch::Bytes> send_pdu(const ch::Bytes& pdu) {
    ps::ServerSession::Output out;
    for (const auto& frame : ch::frame_dt(pdu, session_.tpdu_size())) {
      out = send_tpdu(ch::Bytes(frame.begin() + 4, frame.end()));
    }
    ch::CotpReassembler join;
    for (const auto& f : out.frames) {
      auto t = ch::decode_cotp(ch::ByteView(f).subspan(4));
      if (!t) continue;
      if (auto* dt = std::get_if<ch::CotpData>(&t.value())) {
        auto joined = join.add(*dt);
        if (joined.ok() && joined.value()) return *joined.value();
      }
    }
    return std::nullopt;
  }

  std::optional<ch::Pdu> call(ch::Pdu pdu) {
    pdu.header.pdu_ref = ++ref_;
    auto reply = send_pdu(ch::encode_s7(pdu));
    if (!reply) return std::nullopt;
    auto decoded = ch::decode_s7(*reply);
    if (!decoded) return std::nullopt;
    return decoded.value();
  }

  void connect(std::uint8_t size_code = 0x0A) {
    ch::CotpConnect cr;
    cr.src_ref = 0x0005;
    cr.tpdu_size_code = size_code;
    cr.calling = ch::Tsap::from_u16(0x0100);
    cr.called = ch::Tsap::remote(1, 0, 1);
    if (plc_.config().mode == ch::SecurityMode::s7_secure) {
      cr.calling = ch::Tsap::from_u16(0x0600);
      cr.called = ch::Tsap::from_text("SIMATIC-ROOT-HMI");
    }
    send_tpdu(ch::encode_cotp(cr));
  }
  void init_ssl() { send_pdu(ch::encode_init_ssl_request()); }
  void setup(std::uint16_t pdu, std::uint16_t amq = 4) {
    call(ch::Pdu{{ch::Rosctr::job}, ch::SetupCommunication{amq, amq, pdu}});
  }
  void read(std::vector<ch::VarItem> items) {
    call(ch::Pdu{{ch::Rosctr::job}, ch::ReadVarRequest{std::move(items)}});
  }
  void write(std::vector<ch::VarItem> items, std::vector<ch::DataItem> data) {
    call(ch::Pdu{{ch::Rosctr::job}, ch::WriteVarRequest{std::move(items), std::move(data)}});
  }
  // A whole SZL list: the request, then a continuation per piece the PLC says follows.
  void szl(std::uint16_t id, std::uint16_t index, std::size_t max_pieces = 100) {
    auto reply = call(ch::szl_request(0, 0, {id, index}));
    for (std::size_t n = 1; reply && n < max_pieces; ++n) {
      auto* u = std::get_if<ch::Userdata>(&reply->body);
      if (!u || !u->param.more_follows) return;
      reply = call(ch::szl_continue(0, u->param));
    }
  }
  void disconnect() { send_tpdu(ch::encode_cotp(ch::CotpDisconnect{false, 1, 5, 0})); }

  ch::Bytes client_seed() const {
    ch::Bytes seed{options_};
    append(seed, client_);
    return seed;
  }
  const ch::Bytes& server_stream() const { return server_; }

 private:
  std::uint8_t options_;
  ps::PlcState plc_;
  ps::ServerSession session_;
  ch::Bytes client_, server_;
  std::uint16_t ref_ = 0x0100;
};

ch::VarItem item(ch::TransportSize ts, std::uint16_t count, ch::Area area, std::uint16_t db,
                 std::uint32_t address) {
  return ch::VarItem{ts, count, db, area, address};
}

ch::DataItem data(ch::DataSize size, ch::Bytes bytes) {
  return ch::DataItem{0, size, std::move(bytes)};
}

using ch::Area;
using ch::DataSize;
using ch::TransportSize;

// The usual jobs of an HMI: reads of every area and type, writes, refused functions.
void jobs(Conversation& c) {
  c.read({item(TransportSize::byte, 4, Area::data_block, 1, 0)});
  c.read({item(TransportSize::word, 1, Area::data_block, 1, 16),
          item(TransportSize::real, 1, Area::data_block, 100, 4 * 8),
          item(TransportSize::bit, 1, Area::flags, 0, 3 * 8 + 5),
          item(TransportSize::timer, 2, Area::timers, 0, 1),
          item(TransportSize::counter, 1, Area::counters, 0, 2),
          item(TransportSize::dword, 1, Area::inputs, 0, 0),
          item(TransportSize::integer, 1, Area::outputs, 0, 8)});
  c.read({item(TransportSize::byte, 200, Area::data_block, 1, 0)});     // longer than PDU 240
  c.read({item(TransportSize::byte, 8, Area::data_block, 7, 0),         // no DB 7
          item(TransportSize::byte, 8, Area::data_block, 2, 60 * 8)});  // past the end
  c.write({item(TransportSize::byte, 4, Area::data_block, 1, 8)},
          {data(DataSize::byte_word_dword, {1, 2, 3, 4})});
  c.write({item(TransportSize::bit, 1, Area::flags, 0, 1),
           item(TransportSize::word, 1, Area::data_block, 1, 2)},
          {data(DataSize::bit, {1}), data(DataSize::byte_word_dword, {0x12, 0x34})});
  c.write({item(TransportSize::byte, 150, Area::data_block, 1, 100)},
          {data(DataSize::byte_word_dword, ch::Bytes(150, 0xA5))});  // split over DTs at TPDU 128
  c.call(ch::Pdu{{ch::Rosctr::job},
                 ch::OtherFunction{{0x29, 0,   0,   0,   0,   0,   0,   0xFD, 0,   0,
                                    9,    'P', '_', 'P', 'R', 'O', 'G', 'R',  'A', 'M'},
                                   {}}});
}

void szl_reads(Conversation& c) {
  c.szl(0x0011, 0x0000);
  c.szl(0x001C, 0x0000);
  c.szl(0x0424, 0x0000);
  c.szl(0x0000, 0x0000);
  c.szl(0x0132, 0x0004);  // unknown to plcsim: 0xD401
  // A continuation nobody asked for, an answer abandoned half-way, a clock read (group 7).
  ch::UserdataParam stale{0x12, 8, 4, 1, 0x33, true, 0x33, true, 0};
  c.call(ch::szl_continue(0, stale));
  c.szl(0x001C, 0x0000, 2);
  c.szl(0x0011, 0x0001);
  // Setup communication again with a smaller PDU while an answer is in progress.
  if (auto first = c.call(ch::szl_request(0, 0, {0x001C, 0}))) {
    if (auto* u = std::get_if<ch::Userdata>(&first->body); u && u->param.more_follows) {
      c.setup(64);
      c.call(ch::szl_continue(0, u->param));
    }
  }
  ch::Userdata clock;
  clock.param = ch::UserdataParam{0x11, 4, 7, 1, 0, false, 0, false, 0};
  clock.data = ch::UserdataData{0x0A, DataSize::null, {}};
  c.call(ch::Pdu{{ch::Rosctr::userdata}, clock});
}

struct Generated {
  std::map<std::string, ch::Bytes> server_seeds, frame_seeds;
};

void conversation(Generated& g, const std::string& name, std::uint8_t options,
                  std::uint8_t size_code, std::uint16_t pdu, bool with_jobs = true,
                  bool plc_side = true) {
  Conversation c(options);
  c.connect(size_code);
  if (options & fz::kServerS7Secure) c.init_ssl();
  if (options & fz::kServerTls) c.init_ssl();  // refused (0x05A9): the PLC has no s7-secure
  c.setup(pdu);
  if (with_jobs) jobs(c);
  szl_reads(c);
  c.disconnect();
  if (c.client_seed().size() > kMaxSeed) throw std::runtime_error(name + ": seed too long");
  g.server_seeds[name] = c.client_seed();
  if (plc_side) g.frame_seeds["szl_conversation_" + name] = c.server_stream();
}

// The stream of one long SZL answer at a given PDU and TPDU size, as the PLC sends it.
ch::Bytes long_szl_answer(std::uint16_t pdu, std::size_t tpdu, std::size_t records) {
  ch::SzlList list;
  list.id = 0x0131;
  list.index = 0x0001;
  list.record_length = 40;
  for (std::size_t i = 0; i < records; ++i) {
    ch::Bytes r(40, std::uint8_t(i));
    r[0] = 0;
    r[1] = std::uint8_t(i + 1);
    list.records.push_back(r);
  }
  ch::Bytes stream;
  for (const auto& piece : ch::szl_responses(0x0200, 7, 9, list, pdu)) {
    for (const auto& f : ch::frame_dt(ch::encode_s7(piece), tpdu)) append(stream, f);
  }
  return stream;
}

// Cuts a stream of TPKT frames into windows of whole frames of at most kMaxSeed bytes.
std::vector<ch::Bytes> windows(const ch::Bytes& stream, std::size_t limit = kMaxSeed) {
  std::vector<ch::Bytes> out;
  ch::Bytes current;
  std::size_t at = 0;
  while (at + 4 <= stream.size()) {
    const std::size_t len = std::size_t(stream[at + 2] << 8 | stream[at + 3]);
    if (len < 4 || at + len > stream.size()) break;
    if (!current.empty() && current.size() + len > limit) {
      out.push_back(std::move(current));
      current.clear();
    }
    current.insert(current.end(), stream.begin() + std::ptrdiff_t(at),
                   stream.begin() + std::ptrdiff_t(at + len));
    at += len;
  }
  if (!current.empty()) out.push_back(std::move(current));
  return out;
}

// Both directions of every TCP connection of a capture, by direction: to port 102 or from it.
void capture_streams(Generated& g, const fs::path& pcap) {
  const auto result = scada::runtime::read_capture(pcap.string());
  std::map<std::size_t, ch::Bytes> to_plc, from_plc;
  for (const auto& chunk : result.chunks) {
    auto& into = chunk.to.port == 102 ? to_plc[chunk.stream] : from_plc[chunk.stream];
    into.insert(into.end(), chunk.bytes.begin(), chunk.bytes.end());
  }
  const std::string stem = "pcap_" + pcap.stem().string();
  std::size_t n = 0;
  for (const auto& [stream, bytes] : to_plc) {
    std::size_t w = 0;
    for (const auto& window : windows(bytes, kMaxSeed - 1)) {
      ch::Bytes seed{0x00};  // mode none, PDU 240
      append(seed, window);
      g.server_seeds[stem + "_" + std::to_string(n) + "_" + std::to_string(w++)] = seed;
    }
    ++n;
  }
  n = 0;
  for (const auto& [stream, bytes] : from_plc) {
    std::size_t w = 0;
    for (const auto& window : windows(bytes, 4096)) {
      g.frame_seeds[stem + "_plc_" + std::to_string(n) + "_" + std::to_string(w++)] = window;
    }
    ++n;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR PCAP_DIR\n", argv[0]);
    return 2;
  }
  try {
    const fs::path corpus = argv[1];
    Generated g;
    conversation(g, "none_pdu240", 0x00, 0x0A, 480);
    conversation(g, "none_tpdu128_pdu960", fz::kServerPdu960, 0x07, 960);
    conversation(g, "none_pdu64_wrongref", fz::kServerWrongRef, 0x0A, 64, false);
    conversation(g, "none_stop_pdu480", fz::kServerPdu480 | fz::kServerStop, 0x09, 480);
    conversation(g, "tls_pdu480", fz::kServerTls | fz::kServerPdu480, 0x0A, 480);
    conversation(g, "s7secure_pdu960", fz::kServerS7Secure | fz::kServerPdu960, 0x0A, 960);
    conversation(g, "s7secure_no_handshake", fz::kServerS7Secure | fz::kServerNoHandshake, 0x0A,
                 240, false, false);
    g.frame_seeds["szl_long_pdu240_tpdu1024"] = long_szl_answer(240, 1024, 20);
    g.frame_seeds["szl_long_pdu64_tpdu128"] = long_szl_answer(64, 128, 6);
    g.frame_seeds["szl_long_pdu480_tpdu128"] = long_szl_answer(480, 128, 30);
    for (const auto& entry : fs::directory_iterator(argv[2])) {
      if (entry.path().extension() == ".pcap" || entry.path().extension() == ".pcapng") {
        capture_streams(g, entry.path());
      }
    }
    for (const auto& [name, bytes] : g.server_seeds)
      write_file(corpus / "fuzz_server" / name, bytes);
    for (const auto& [name, bytes] : g.frame_seeds) write_file(corpus / "fuzz_frame" / name, bytes);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
