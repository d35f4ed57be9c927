// plcsim's sans-I/O core: PlcState (memory, return codes, SZL, process values) and
// ServerSession (COTP, InitSSL, S7comm), driven with TPDUs built by the project's codec and
// checked by decoding the replies with it.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "plc_state.h"
#include "server_session.h"

namespace ch = scada::channel;
namespace ps = scada::plcsim;

using ch::Area;
using ch::DataSize;
using ch::TransportSize;

namespace {

constexpr std::uint8_t kOk = 0xFF, kOutOfRange = 0x05, kNotSupported = 0x06, kInconsistent = 0x07,
                       kNoObject = 0x0A;

ps::PlcConfig small_config() {
  ps::PlcConfig c;
  c.data_blocks = {{1, 1024}, {2, 64}};
  c.flags_bytes = 128;
  c.inputs_bytes = 32;
  c.outputs_bytes = 32;
  c.timers = 16;
  c.counters = 16;
  return c;
}

ch::VarItem item(TransportSize ts, std::uint16_t count, Area area, std::uint16_t db,
                 std::uint32_t address) {
  return ch::VarItem{ts, count, db, area, address};
}

ch::Bytes dt(const ch::Bytes& payload, bool eot = true) {
  return ch::encode_cotp(ch::CotpData{eot, 0, payload});
}

ch::Bytes cr(std::optional<std::uint8_t> size_code = 0x0A,
             std::optional<ch::Tsap> called = ch::Tsap::from_u16(0x0102),
             std::optional<ch::Tsap> calling = ch::Tsap::from_u16(0x0100)) {
  ch::CotpConnect c;
  c.src_ref = 0x1234;
  c.tpdu_size_code = size_code;
  c.calling = std::move(calling);
  c.called = std::move(called);
  return ch::encode_cotp(c);
}

// The TPDUs inside the frames of an Output; every frame must be a TPKT within the TPDU size.
std::vector<ch::CotpTpdu> tpdus(const ps::ServerSession::Output& out, std::size_t tpdu_size) {
  std::vector<ch::CotpTpdu> result;
  for (const auto& f : out.frames) {
    EXPECT_GE(f.size(), 7u);
    EXPECT_LE(f.size(), 4 + tpdu_size);
    EXPECT_EQ(f[0], 0x03);
    EXPECT_EQ(f[1], 0x00);
    EXPECT_EQ(std::size_t(f[2] << 8 | f[3]), f.size());
    auto t = ch::decode_cotp(ch::ByteView(f).subspan(4));
    EXPECT_TRUE(t.ok()) << (t.ok() ? "" : t.error().to_string());
    if (t.ok()) result.push_back(t.value());
  }
  return result;
}

// Joins the DT payloads of an Output into one PDU (exactly one per Output here).
ch::Bytes joined_payload(const ps::ServerSession::Output& out, std::size_t tpdu_size) {
  ch::CotpReassembler r;
  std::optional<ch::Bytes> pdu;
  for (auto& t : tpdus(out, tpdu_size)) {
    auto* d = std::get_if<ch::CotpData>(&t);
    EXPECT_NE(d, nullptr) << "expected DT, got " << ch::cotp_name(t);
    if (!d) return {};
    EXPECT_FALSE(pdu) << "more than one PDU in one Output";
    auto got = r.add(*d);
    EXPECT_TRUE(got.ok());
    if (got.ok() && got.value()) pdu = *got.value();
  }
  EXPECT_TRUE(pdu) << "no complete PDU in the Output";
  return pdu.value_or(ch::Bytes{});
}

ch::Pdu reply_pdu(const ps::ServerSession::Output& out, std::size_t tpdu_size) {
  EXPECT_FALSE(out.close) << out.event;
  auto decoded = ch::decode_s7(joined_payload(out, tpdu_size));
  EXPECT_TRUE(decoded.ok()) << (decoded.ok() ? "" : decoded.error().to_string());
  return decoded.ok() ? decoded.value() : ch::Pdu{};
}

// One client connection to a session.
struct Client {
  ps::PlcState& plc;
  ps::ServerSession session;
  std::uint16_t ref = 0x0100;

  explicit Client(ps::PlcState& p, ps::SecurityMode mode = ps::SecurityMode::none)
      : plc(p), session(p, mode) {}

  ps::ServerSession::Output send_pdu(const ch::Bytes& pdu) {
    ps::ServerSession::Output last;
    for (const auto& frame : ch::frame_dt(pdu, session.tpdu_size())) {
      last = session.on_tpdu(ch::ByteView(frame).subspan(4));
    }
    return last;
  }
  ps::ServerSession::Output send(ch::Pdu pdu) { return send_pdu(ch::encode_s7(pdu)); }
  ch::Pdu call(ch::Pdu pdu) { return reply_pdu(send(std::move(pdu)), session.tpdu_size()); }

  void connect(std::uint8_t size_code = 0x0A) {
    auto out = session.on_tpdu(cr(size_code));
    ASSERT_FALSE(out.close) << out.event;
    ASSERT_EQ(out.frames.size(), 1u);
  }
  ch::SetupCommunication setup(std::uint16_t pdu, std::uint16_t amq = 2) {
    ch::Pdu reply =
        call(ch::Pdu{{ch::Rosctr::job, 0, ++ref}, ch::SetupCommunication{amq, amq, pdu}});
    EXPECT_EQ(reply.header.rosctr, ch::Rosctr::ack_data);
    EXPECT_EQ(reply.header.pdu_ref, ref);
    auto* s = std::get_if<ch::SetupCommunication>(&reply.body);
    EXPECT_NE(s, nullptr);
    return s ? *s : ch::SetupCommunication{};
  }
  void open(std::uint16_t pdu = 480) {
    connect();
    setup(pdu);
  }

  ch::Pdu read(std::vector<ch::VarItem> items) {
    return call(ch::Pdu{{ch::Rosctr::job, 0, ++ref}, ch::ReadVarRequest{std::move(items)}});
  }
  std::vector<ch::DataItem> read_items(std::vector<ch::VarItem> items) {
    ch::Pdu reply = read(std::move(items));
    EXPECT_EQ(reply.header.error(), 0) << ch::s7_error_text(reply.header.error());
    auto* r = std::get_if<ch::ReadVarResponse>(&reply.body);
    EXPECT_NE(r, nullptr);
    return r ? r->items : std::vector<ch::DataItem>{};
  }
  std::vector<std::uint8_t> write_items(std::vector<ch::VarItem> items,
                                        std::vector<ch::DataItem> data) {
    ch::Pdu reply = call(ch::Pdu{{ch::Rosctr::job, 0, ++ref},
                                 ch::WriteVarRequest{std::move(items), std::move(data)}});
    EXPECT_EQ(reply.header.error(), 0) << ch::s7_error_text(reply.header.error());
    auto* w = std::get_if<ch::WriteVarResponse>(&reply.body);
    EXPECT_NE(w, nullptr);
    return w ? w->return_codes : std::vector<std::uint8_t>{};
  }

  // Reads a whole SZL list through the session, following continuations.
  ch::SzlList szl(std::uint16_t id, std::uint16_t index, std::size_t* pieces = nullptr) {
    ch::SzlAssembler assembler;
    ch::Pdu request = ch::szl_request(++ref, 0, {id, index});
    for (std::size_t n = 1; n < 100; ++n) {
      ch::Pdu reply = call(request);
      EXPECT_EQ(reply.header.rosctr, ch::Rosctr::userdata);
      EXPECT_EQ(reply.header.pdu_ref, ref);
      EXPECT_LE(ch::encode_s7(reply).size(), session.negotiated_pdu());
      auto* u = std::get_if<ch::Userdata>(&reply.body);
      EXPECT_NE(u, nullptr);
      if (!u) break;
      auto got = assembler.add(*u);
      EXPECT_TRUE(got.ok()) << (got.ok() ? "" : got.error().to_string());
      if (!got.ok()) break;
      if (got.value()) {
        if (pieces) *pieces = n;
        return *got.value();
      }
      request = ch::szl_continue(++ref, u->param);
    }
    ADD_FAILURE() << "SZL answer did not complete";
    return {};
  }
};

ch::DataItem write_data(TransportSize ts, ch::Bytes bytes) {
  DataSize size = DataSize::byte_word_dword;
  switch (ts) {
    case TransportSize::bit:
      size = DataSize::bit;
      break;
    case TransportSize::integer:
    case TransportSize::dinteger:
      size = DataSize::integer;
      break;
    case TransportSize::real:
      size = DataSize::real;
      break;
    case TransportSize::timer:
    case TransportSize::counter:
      size = DataSize::octet_string;
      break;
    default:
      break;
  }
  return ch::DataItem{0x00, size, std::move(bytes)};
}

float real_at(const ps::PlcState& plc, std::uint16_t db, std::uint32_t offset) {
  auto b = plc.read_raw(Area::data_block, db, offset, 4);
  return std::bit_cast<float>(std::uint32_t(b[0]) << 24 | std::uint32_t(b[1]) << 16 |
                              std::uint32_t(b[2]) << 8 | b[3]);
}

std::int32_t dint_at(const ps::PlcState& plc, std::uint16_t db, std::uint32_t offset) {
  auto b = plc.read_raw(Area::data_block, db, offset, 4);
  return std::int32_t(std::uint32_t(b[0]) << 24 | std::uint32_t(b[1]) << 16 |
                      std::uint32_t(b[2]) << 8 | b[3]);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// PlcState: configuration, raw memory

TEST(PlcState, RejectsBadConfigurationsNamingTheProblem) {
  struct Case {
    const char* needle;
    void (*edit)(ps::PlcConfig&);
  };
  const Case cases[] = {
      {"max_pdu", [](ps::PlcConfig& c) { c.max_pdu = 100; }},
      {"max_pdu", [](ps::PlcConfig& c) { c.max_pdu = 1920; }},
      {"max_amq", [](ps::PlcConfig& c) { c.max_amq = 0; }},
      {"number 0", [](ps::PlcConfig& c) { c.data_blocks[0] = 10; }},
      {"DB5 has 0 bytes", [](ps::PlcConfig& c) { c.data_blocks[5] = 0; }},
      {"DB7", [](ps::PlcConfig& c) { c.data_blocks[7] = std::size_t{4} << 20; }},
      {"flags", [](ps::PlcConfig& c) { c.flags_bytes = std::size_t{3} << 20; }},
      {"process_db DB100", [](ps::PlcConfig& c) { c.data_blocks[100] = 8; }},
      {"firmware", [](ps::PlcConfig& c) { c.firmware = "2.9.4"; }},
      {"firmware", [](ps::PlcConfig& c) { c.firmware = "V2.9"; }},
      {"firmware", [](ps::PlcConfig& c) { c.firmware = "V2.9.400"; }},
      {"order_number", [](ps::PlcConfig& c) { c.order_number = std::string(21, 'X'); }},
      {"serial_number", [](ps::PlcConfig& c) { c.serial_number = std::string(33, 'X'); }},
  };
  for (const auto& c : cases) {
    ps::PlcConfig config;
    c.edit(config);
    try {
      ps::PlcState plc(config);
      ADD_FAILURE() << "accepted; expected an error naming " << c.needle;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(c.needle), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(ps::PlcState{ps::PlcConfig{}});
}

TEST(PlcState, AddsTheProcessBlockWithItsPeriod) {
  ps::PlcConfig config = small_config();
  config.process_period = std::chrono::milliseconds(250);
  ps::PlcState plc(config);
  ASSERT_EQ(plc.config().data_blocks.count(100), 1u);
  EXPECT_EQ(plc.config().data_blocks.at(100), 16u);
  EXPECT_EQ(plc.read_raw(Area::data_block, 100, 12, 2), (ch::Bytes{0x00, 0xFA}));

  config.process_db = 0;
  ps::PlcState without(config);
  EXPECT_EQ(without.config().data_blocks.count(100), 0u);
}

TEST(PlcState, RawAccessByAreaAndTimerNumber) {
  ps::PlcState plc(small_config());
  plc.write_raw(Area::data_block, 2, 62, ch::Bytes{1, 2});
  EXPECT_EQ(plc.read_raw(Area::data_block, 2, 62, 2), (ch::Bytes{1, 2}));
  EXPECT_EQ(plc.read_raw(Area::instance_db, 2, 62, 2), (ch::Bytes{1, 2}));  // DI is DB
  plc.write_raw(Area::timers, 0, 15, ch::Bytes{0xAB, 0xCD});                // the last timer
  EXPECT_EQ(plc.read_raw(Area::timers, 0, 15, 2), (ch::Bytes{0xAB, 0xCD}));
  EXPECT_EQ(plc.read_raw(Area::timers, 0, 0, 32).at(30), 0xAB);
  plc.write_raw(Area::flags, 0, 127, ch::Bytes{7});
  EXPECT_EQ(plc.read_raw(Area::flags, 0, 127, 1), (ch::Bytes{7}));

  auto message = [&](auto f) {
    try {
      f();
    } catch (const std::out_of_range& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  EXPECT_NE(message([&] { plc.read_raw(Area::data_block, 7, 0, 1); }).find("DB7"),
            std::string::npos);
  EXPECT_NE(message([&] { plc.read_raw(Area::data_block, 2, 63, 2); }).find("DB2"),
            std::string::npos);
  EXPECT_NE(message([&] { plc.write_raw(Area::flags, 0, 128, ch::Bytes{1}); }).find("M"),
            std::string::npos);
  EXPECT_NE(message([&] { plc.read_raw(Area::counters, 0, 16, 2); }).find("C"), std::string::npos);
  EXPECT_NE(message([&] { plc.read_raw(Area::peripheral, 0, 0, 1); }).find("P"), std::string::npos);
  EXPECT_NE(message([&] { plc.read_raw(Area::inputs, 0, 0xFFFFFFFF, 2); }), "no exception");
}

// ---------------------------------------------------------------------------------------------
// PlcState: the return-code rules, one row per rule

TEST(PlcState, ReadReturnCodes) {
  ps::PlcState plc(small_config());
  struct Row {
    ch::VarItem item;
    std::uint8_t rc;
    const char* why;
  };
  const Row rows[] = {
      {item(TransportSize::byte, 1024, Area::data_block, 1, 0), kOk, "whole DB1"},
      {item(TransportSize::byte, 1, Area::data_block, 9, 0), kNoObject, "missing DB"},
      {item(TransportSize::byte, 1, Area::instance_db, 9, 0), kNoObject, "missing DI"},
      {item(TransportSize::byte, 1, Area::data_block, 0, 0), kNoObject, "DB 0"},
      {item(TransportSize::byte, 1, Area::peripheral, 0, 0), kNoObject, "P not simulated"},
      {item(TransportSize::byte, 1, Area(0x99), 0, 0), kNoObject, "no such area"},
      {item(TransportSize(0x0C), 1, Area::flags, 0, 0), kNotSupported, "S5TIME"},
      {item(TransportSize(0x00), 1, Area::flags, 0, 0), kNotSupported, "size 0"},
      {item(TransportSize::timer, 1, Area::data_block, 1, 0), kInconsistent, "TIMER in DB"},
      {item(TransportSize::counter, 1, Area::flags, 0, 0), kInconsistent, "COUNTER in M"},
      {item(TransportSize::counter, 1, Area::timers, 0, 0), kInconsistent, "COUNTER in T"},
      {item(TransportSize::byte, 2, Area::timers, 0, 0), kInconsistent, "BYTE in T"},
      {item(TransportSize::word, 1, Area::counters, 0, 0), kInconsistent, "WORD in C"},
      {item(TransportSize::bit, 2, Area::flags, 0, 0), kInconsistent, "BIT count 2"},
      {item(TransportSize::byte, 0, Area::flags, 0, 0), kInconsistent, "count 0"},
      {item(TransportSize::byte, 1, Area::flags, 0, 8 * 128), kOutOfRange, "past M"},
      {item(TransportSize::word, 1, Area::flags, 0, 8 * 127), kOutOfRange, "word over M end"},
      {item(TransportSize::byte, 1, Area::flags, 0, 8 * 127), kOk, "last M byte"},
      {item(TransportSize::bit, 1, Area::flags, 0, 8 * 127 + 7), kOk, "last M bit"},
      {item(TransportSize::bit, 1, Area::flags, 0, 8 * 128), kOutOfRange, "bit past M"},
      {item(TransportSize::byte, 1, Area::flags, 0, 8 * 3 + 1), kOutOfRange, "byte at a bit"},
      {item(TransportSize::real, 16, Area::data_block, 2, 0), kOk, "DB2 as reals"},
      {item(TransportSize::real, 17, Area::data_block, 2, 0), kOutOfRange, "past DB2"},
      {item(TransportSize::dword, 0xFFFF, Area::data_block, 1, 0xFFFFFF & ~7u), kOutOfRange,
       "huge"},
      {item(TransportSize::timer, 16, Area::timers, 0, 0), kOk, "all timers"},
      {item(TransportSize::timer, 1, Area::timers, 0, 16), kOutOfRange, "timer 16 of 16"},
      {item(TransportSize::counter, 2, Area::counters, 0, 15), kOutOfRange, "counters 15..16"},
      {item(TransportSize::counter, 1, Area::counters, 0, 15), kOk, "counter 15"},
      {item(TransportSize::byte, 32, Area::inputs, 0, 0), kOk, "all inputs"},
      {item(TransportSize::byte, 33, Area::outputs, 0, 0), kOutOfRange, "past Q"},
  };
  for (const auto& row : rows) {
    const ch::DataItem d = plc.read(row.item);
    EXPECT_EQ(int(d.return_code), int(row.rc)) << row.why;
    if (row.rc != kOk) {
      EXPECT_EQ(d.size, DataSize::null) << row.why;
      EXPECT_TRUE(d.data.empty()) << row.why;
    }
  }
}

TEST(PlcState, WriteReturnCodes) {
  ps::PlcState plc(small_config());
  struct Row {
    ch::VarItem item;
    ch::DataItem data;
    std::uint8_t rc;
    const char* why;
  };
  const auto bytes = [](std::size_t n) { return write_data(TransportSize::byte, ch::Bytes(n)); };
  const Row rows[] = {
      {item(TransportSize::word, 2, Area::data_block, 1, 0), bytes(4), kOk, "2 words"},
      {item(TransportSize::word, 2, Area::data_block, 1, 0), bytes(3), kInconsistent, "short"},
      {item(TransportSize::word, 2, Area::data_block, 1, 0), bytes(5), kInconsistent, "long"},
      {item(TransportSize::bit, 1, Area::data_block, 1, 3), bytes(2), kInconsistent, "2-byte bit"},
      {item(TransportSize::bit, 1, Area::data_block, 1, 3), bytes(0), kInconsistent, "empty bit"},
      {item(TransportSize::byte, 1, Area::data_block, 9, 0), bytes(1), kNoObject, "missing DB"},
      {item(TransportSize::byte, 1, Area::data_block, 2, 8 * 64), bytes(1), kOutOfRange, "past"},
      {item(TransportSize(0x0B), 1, Area::data_block, 1, 0), bytes(4), kNotSupported, "TIME"},
      {item(TransportSize::timer, 1, Area::data_block, 1, 0), bytes(2), kInconsistent, "T in DB"},
      {item(TransportSize::timer, 1, Area::timers, 0, 3), bytes(2), kOk, "timer 3"},
      {item(TransportSize::counter, 1, Area::counters, 0, 16), bytes(2), kOutOfRange, "C16"},
  };
  for (const auto& row : rows) {
    EXPECT_EQ(int(plc.write(row.item, row.data)), int(row.rc)) << row.why;
  }
  // Failed writes change nothing.
  EXPECT_EQ(plc.read_raw(Area::data_block, 2, 0, 64), ch::Bytes(64, 0));
}

// ---------------------------------------------------------------------------------------------
// Process values

TEST(PlcState, ProcessValuesTickInRunOnly) {
  ps::PlcState plc(small_config());
  float lowest_sine = 2, highest_sine = -2, highest_saw = -1;
  for (int i = 1; i <= 250; ++i) {
    plc.tick();
    ASSERT_EQ(dint_at(plc, 100, 0), i);
    const float saw = real_at(plc, 100, 4), sine = real_at(plc, 100, 8);
    ASSERT_GE(saw, 0.0f);
    ASSERT_LE(saw, 100.0f);
    ASSERT_GE(sine, -1.0f);
    ASSERT_LE(sine, 1.0f);
    lowest_sine = std::min(lowest_sine, sine);
    highest_sine = std::max(highest_sine, sine);
    highest_saw = std::max(highest_saw, saw);
  }
  EXPECT_LT(lowest_sine, -0.99f);  // the values really move over their range
  EXPECT_GT(highest_sine, 0.99f);
  EXPECT_GE(highest_saw, 99.0f);

  const ch::Bytes before = plc.read_raw(Area::data_block, 100, 0, 16);
  plc.set_running(false);
  EXPECT_FALSE(plc.running());
  for (int i = 0; i < 5; ++i) plc.tick();
  EXPECT_EQ(plc.read_raw(Area::data_block, 100, 0, 16), before);
  plc.set_running(true);
  plc.tick();
  EXPECT_EQ(dint_at(plc, 100, 0), 251);
}

TEST(PlcState, ProcessCounterFollowsClientWritesAndWraps) {
  ps::PlcState plc(small_config());
  plc.write_raw(Area::data_block, 100, 0, ch::Bytes{0x7F, 0xFF, 0xFF, 0xFF});
  plc.tick();
  EXPECT_EQ(dint_at(plc, 100, 0), std::numeric_limits<std::int32_t>::min());
  const float saw = real_at(plc, 100, 4);
  EXPECT_GE(saw, 0.0f);
  EXPECT_LT(saw, 100.0f);

  ps::PlcConfig config = small_config();
  config.process_db = 0;
  ps::PlcState quiet(config);
  quiet.tick();  // nothing to do, nothing thrown
}

// ---------------------------------------------------------------------------------------------
// COTP connection phase

TEST(ServerSession, ConnectConfirmEchoesTsapsAndCapsTpduSize) {
  struct Row {
    std::optional<std::uint8_t> asked;
    std::optional<std::uint8_t> confirmed;
    std::size_t tpdu_size;
  };
  const Row rows[] = {{0x0A, 0x0A, 1024},
                      {0x0D, 0x0A, 1024},
                      {0x09, 0x09, 512},
                      {0x07, 0x07, 128},
                      {std::nullopt, std::nullopt, 128}};
  for (const auto& row : rows) {
    ps::PlcState plc(small_config());
    ps::ServerSession s(plc, ps::SecurityMode::none);
    EXPECT_EQ(s.tpdu_size(), 1024u);
    auto out = s.on_tpdu(cr(row.asked));
    ASSERT_FALSE(out.close) << out.event;
    auto t = tpdus(out, 1024);
    ASSERT_EQ(t.size(), 1u);
    auto* cc = std::get_if<ch::CotpConnect>(&t[0]);
    ASSERT_NE(cc, nullptr);
    EXPECT_TRUE(cc->confirm);
    EXPECT_EQ(cc->dst_ref, 0x1234);
    EXPECT_NE(cc->src_ref, 0);
    EXPECT_EQ(cc->protocol_class, 0);
    EXPECT_EQ(cc->tpdu_size_code, row.confirmed);
    EXPECT_EQ(cc->calling, ch::Tsap::from_u16(0x0100));
    EXPECT_EQ(cc->called, ch::Tsap::from_u16(0x0102));
    EXPECT_EQ(s.tpdu_size(), row.tpdu_size);
    EXPECT_NE(out.event.find("0x0102"), std::string::npos) << out.event;
    EXPECT_EQ(s.negotiated_pdu(), 0);
    EXPECT_EQ(s.negotiated_amq(), 0);
  }
}

TEST(ServerSession, FirstTpduMustBeConnectRequest) {
  ps::PlcState plc(small_config());
  const ch::Bytes firsts[] = {
      dt(ch::encode_s7(ch::Pdu{{ch::Rosctr::job, 0, 1}, ch::SetupCommunication{}})),
      ch::encode_cotp(ch::CotpDisconnect{false, 0, 1, 0}),
      ch::encode_cotp(ch::CotpConnect{true, 1, 2, 0, 0x0A, {}, {}}),
  };
  for (const auto& first : firsts) {
    ps::ServerSession s(plc, ps::SecurityMode::none);
    auto out = s.on_tpdu(first);
    EXPECT_TRUE(out.close);
    EXPECT_TRUE(out.frames.empty());
    EXPECT_NE(out.event.find("expected COTP CR"), std::string::npos) << out.event;
    // A closed session stays closed.
    EXPECT_TRUE(s.on_tpdu(cr()).close);
  }
}

TEST(ServerSession, SecondConnectRequestCloses) {
  ps::PlcState plc(small_config());
  Client c(plc);
  c.connect();
  auto out = c.session.on_tpdu(cr());
  EXPECT_TRUE(out.close);
  EXPECT_NE(out.event.find("CR"), std::string::npos) << out.event;
}

TEST(ServerSession, NoneAndTlsModesAcceptAnyTsap) {
  for (auto mode : {ps::SecurityMode::none, ps::SecurityMode::tls}) {
    for (auto called : {ch::Tsap::from_u16(0x0301), ch::Tsap::from_text("SIMATIC-ROOT-HMI")}) {
      ps::PlcState plc(small_config());
      ps::ServerSession s(plc, mode);
      auto out = s.on_tpdu(cr(0x0A, called));
      EXPECT_FALSE(out.close) << out.event;
      EXPECT_NE(out.event.find(called.to_string()), std::string::npos) << out.event;
    }
    ps::PlcState plc(small_config());
    ps::ServerSession s(plc, mode);
    EXPECT_FALSE(s.on_tpdu(cr(0x0A, std::nullopt, std::nullopt)).close);
  }
}

TEST(ServerSession, S7SecureRequiresTheSecureTsap) {
  const std::optional<ch::Tsap> wrong[] = {ch::Tsap::from_u16(0x0102), std::nullopt,
                                           ch::Tsap::from_text("SIMATIC-ROOT-ES")};
  for (const auto& called : wrong) {
    ps::PlcState plc(small_config());
    ps::ServerSession s(plc, ps::SecurityMode::s7_secure);
    auto out = s.on_tpdu(cr(0x0A, called, ch::Tsap::from_u16(0x0600)));
    EXPECT_TRUE(out.close);
    EXPECT_TRUE(out.frames.empty());
    EXPECT_NE(out.event.find("SIMATIC-ROOT-HMI"), std::string::npos) << out.event;
  }
}

TEST(ServerSession, S7SecureHandshakeThenS7commInsideTls) {
  ps::PlcState plc(small_config());
  Client c(plc, ps::SecurityMode::s7_secure);
  auto out = c.session.on_tpdu(
      cr(0x0A, ch::Tsap::from_text("SIMATIC-ROOT-HMI"), ch::Tsap::from_u16(0x0600)));
  ASSERT_FALSE(out.close) << out.event;
  EXPECT_FALSE(out.start_tls);
  auto t = tpdus(out, 1024);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(std::get<ch::CotpConnect>(t[0]).called, ch::Tsap::from_text("SIMATIC-ROOT-HMI"));

  out = c.session.on_tpdu(dt(ch::encode_init_ssl_request()));
  ASSERT_FALSE(out.close) << out.event;
  EXPECT_TRUE(out.start_tls);
  auto init = ch::decode_init_ssl(joined_payload(out, 1024));
  ASSERT_TRUE(init.ok());
  EXPECT_TRUE(init->accepted());

  c.session.tls_established();
  auto granted = c.setup(480);
  EXPECT_EQ(granted.pdu_size, 480);
  auto items = c.read_items({item(TransportSize::byte, 4, Area::data_block, 1, 0)});
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].return_code, kOk);
}

TEST(ServerSession, S7SecureWithoutInitSslCloses) {
  ps::PlcState plc(small_config());
  ps::ServerSession s(plc, ps::SecurityMode::s7_secure);
  ASSERT_FALSE(s.on_tpdu(cr(0x0A, ch::Tsap::from_text("SIMATIC-ROOT-HMI"))).close);
  auto out =
      s.on_tpdu(dt(ch::encode_s7(ch::Pdu{{ch::Rosctr::job, 0, 1}, ch::SetupCommunication{}})));
  EXPECT_TRUE(out.close);
  EXPECT_NE(out.event.find("InitSSL"), std::string::npos) << out.event;

  ps::ServerSession response(plc, ps::SecurityMode::s7_secure);
  ASSERT_FALSE(response.on_tpdu(cr(0x0A, ch::Tsap::from_text("SIMATIC-ROOT-HMI"))).close);
  out = response.on_tpdu(dt(ch::encode_init_ssl_response()));  // a response is no request
  EXPECT_TRUE(out.close);
  EXPECT_NE(out.event.find("InitSSL"), std::string::npos) << out.event;
}

TEST(ServerSession, S7SecureClearDtDuringTlsHandshakeCloses) {
  ps::PlcState plc(small_config());
  ps::ServerSession s(plc, ps::SecurityMode::s7_secure);
  ASSERT_FALSE(s.on_tpdu(cr(0x0A, ch::Tsap::from_text("SIMATIC-ROOT-HMI"))).close);
  ASSERT_TRUE(s.on_tpdu(dt(ch::encode_init_ssl_request())).start_tls);
  auto out = s.on_tpdu(dt(ch::Bytes{0x16, 0x03, 0x01}));
  EXPECT_TRUE(out.close);
  EXPECT_NE(out.event.find("TLS"), std::string::npos) << out.event;
}

TEST(ServerSession, PlainModesAnswerInitSslAsAPlcWithoutSecureCommunication) {
  for (auto mode : {ps::SecurityMode::none, ps::SecurityMode::tls}) {
    ps::PlcState plc(small_config());
    Client c(plc, mode);
    c.connect();
    auto out = c.session.on_tpdu(dt(ch::encode_init_ssl_request()));
    ASSERT_FALSE(out.close) << out.event;
    EXPECT_FALSE(out.start_tls);
    auto init = ch::decode_init_ssl(joined_payload(out, 1024));
    ASSERT_TRUE(init.ok());
    EXPECT_FALSE(init->accepted());
    EXPECT_EQ(init->function, 0x05A9);
    EXPECT_EQ(c.setup(240).pdu_size, 240);  // the connection carries on in clear
  }
}

TEST(ServerSession, DisconnectRequestIsConfirmed) {
  ps::PlcState plc(small_config());
  Client c(plc);
  c.open();
  auto out = c.session.on_tpdu(ch::encode_cotp(ch::CotpDisconnect{false, 0x0001, 0x1234, 0x80}));
  EXPECT_TRUE(out.close);
  auto t = tpdus(out, 1024);
  ASSERT_EQ(t.size(), 1u);
  auto* dc = std::get_if<ch::CotpDisconnect>(&t[0]);
  ASSERT_NE(dc, nullptr);
  EXPECT_TRUE(dc->confirm);
  EXPECT_EQ(dc->dst_ref, 0x1234);
  EXPECT_NE(out.event.find("DR"), std::string::npos) << out.event;
}

TEST(ServerSession, OtherConnectionTpdusClose) {
  const ch::Bytes tpdus_[] = {ch::encode_cotp(ch::CotpDisconnect{true, 1, 0x1234, 0}),
                              ch::encode_cotp(ch::CotpReject{1, 2}),
                              ch::encode_cotp(ch::CotpConnect{true, 1, 2, 0, {}, {}, {}})};
  for (const auto& t : tpdus_) {
    ps::PlcState plc(small_config());
    Client c(plc);
    c.open();
    auto out = c.session.on_tpdu(t);
    EXPECT_TRUE(out.close);
    EXPECT_TRUE(out.frames.empty());
    EXPECT_FALSE(out.event.empty());
  }
}

TEST(ServerSession, FastAcknowledgeIsDropped) {
  ps::PlcState plc(small_config());
  Client c(plc);
  c.connect();
  auto out = c.session.on_tpdu(dt({}, false));
  EXPECT_FALSE(out.close);
  EXPECT_TRUE(out.frames.empty());
  EXPECT_TRUE(out.event.empty());
  c.setup(480);
  out = c.session.on_tpdu(dt({}, false));
  EXPECT_FALSE(out.close);
  EXPECT_TRUE(out.frames.empty());
}

TEST(ServerSession, PduSpanningDtsIsReassembledAndRepliesFitTheTpdu) {
  ps::PlcState plc(small_config());
  Client c(plc);
  c.connect(0x07);  // 128-byte TPDUs
  ASSERT_EQ(c.session.tpdu_size(), 128u);
  c.setup(480);
  std::vector<ch::VarItem> items;
  for (std::uint32_t i = 0; i < 19; ++i) {
    items.push_back(item(TransportSize::dword, 1, Area::data_block, 1, i * 32 * 8));
  }
  plc.write_raw(Area::data_block, 1, 18 * 32, ch::Bytes{1, 2, 3, 4});
  const ch::Bytes request =
      ch::encode_s7(ch::Pdu{{ch::Rosctr::job, 0, 77}, ch::ReadVarRequest{items}});
  ASSERT_GT(ch::frame_dt(request, 128).size(), 1u);
  auto out = c.send_pdu(request);
  ASSERT_GT(out.frames.size(), 1u);  // the reply spans DTs too, each within 4 + 128
  ch::Pdu reply = reply_pdu(out, 128);
  EXPECT_EQ(reply.header.pdu_ref, 77);
  auto& r = std::get<ch::ReadVarResponse>(reply.body);
  ASSERT_EQ(r.items.size(), 19u);
  EXPECT_EQ(r.items[18].data, (ch::Bytes{1, 2, 3, 4}));
  EXPECT_EQ(r.items[17].data, ch::Bytes(4, 0));
}

// ---------------------------------------------------------------------------------------------
// Setup communication

TEST(ServerSession, SetupGrantsTheMinimumOfBothSides) {
  struct Row {
    std::uint16_t asked_pdu, asked_amq, plc_pdu, plc_amq, pdu, amq;
  };
  const Row rows[] = {{960, 8, 480, 2, 480, 2},
                      {240, 1, 480, 2, 240, 1},
                      {480, 3, 960, 3, 480, 3},
                      {1920, 10, 960, 4, 960, 4},
                      {300, 2, 240, 2, 240, 2}};
  for (const auto& row : rows) {
    ps::PlcConfig config = small_config();
    config.max_pdu = row.plc_pdu;
    config.max_amq = row.plc_amq;
    ps::PlcState plc(config);
    Client c(plc);
    c.connect();
    ch::Pdu reply =
        c.call(ch::Pdu{{ch::Rosctr::job, 0, 0x4242},
                       ch::SetupCommunication{row.asked_amq, row.asked_amq, row.asked_pdu}});
    EXPECT_EQ(reply.header.pdu_ref, 0x4242);
    EXPECT_EQ(reply.header.error(), 0);
    EXPECT_EQ(std::get<ch::SetupCommunication>(reply.body),
              (ch::SetupCommunication{row.amq, row.amq, row.pdu}));
    EXPECT_EQ(c.session.negotiated_pdu(), row.pdu);
    EXPECT_EQ(c.session.negotiated_amq(), row.amq);
  }
}

TEST(ServerSession, SetupEventTellsTheNegotiatedValues) {
  ps::PlcState plc(small_config());
  Client c(plc);
  c.connect();
  auto out = c.send(ch::Pdu{{ch::Rosctr::job, 0, 1}, ch::SetupCommunication{8, 8, 960}});
  EXPECT_NE(out.event.find("PDU 480 (asked 960)"), std::string::npos) << out.event;
  EXPECT_NE(out.event.find("AmQ 2/2"), std::string::npos) << out.event;
}

TEST(ServerSession, UnusableSetupCloses) {
  const ch::SetupCommunication asks[] = {{0, 1, 480}, {1, 0, 480}, {1, 1, 32}};
  for (const auto& ask : asks) {
    ps::PlcState plc(small_config());
    Client c(plc);
    c.connect();
    auto out = c.send(ch::Pdu{{ch::Rosctr::job, 0, 1}, ask});
    EXPECT_TRUE(out.close);
    EXPECT_TRUE(out.frames.empty());
    EXPECT_NE(out.event.find("setup communication"), std::string::npos) << out.event;
  }
}

TEST(ServerSession, JobOrUserdataBeforeSetupCloses) {
  const ch::Pdu firsts[] = {
      ch::Pdu{{ch::Rosctr::job, 0, 1},
              ch::ReadVarRequest{{item(TransportSize::byte, 1, Area::flags, 0, 0)}}},
      ch::szl_request(1, 0, {0x0011, 0}),
      ch::Pdu{{ch::Rosctr::job, 0, 1}, ch::OtherFunction{{0x28, 0x00}, {}}},
  };
  for (const auto& first : firsts) {
    ps::PlcState plc(small_config());
    Client c(plc);
    c.connect();
    auto out = c.send(first);
    EXPECT_TRUE(out.close);
    EXPECT_TRUE(out.frames.empty());
    EXPECT_NE(out.event.find("before setup communication"), std::string::npos) << out.event;
  }
}

TEST(ServerSession, SetupAgainRenegotiates) {
  ps::PlcState plc(small_config());
  Client c(plc);
  c.open(480);
  EXPECT_EQ(c.setup(240, 1).pdu_size, 240);
  EXPECT_EQ(c.session.negotiated_pdu(), 240);
  EXPECT_EQ(c.session.negotiated_amq(), 1);
}

// ---------------------------------------------------------------------------------------------
// Read Var / Write Var through the session

TEST(ServerSession, ReadsAndWritesEveryTypeInEveryArea) {
  struct Type {
    TransportSize ts;
    DataSize reply;
    std::size_t bytes;
  };
  const Type byte_types[] = {
      {TransportSize::bit, DataSize::bit, 1},
      {TransportSize::byte, DataSize::byte_word_dword, 1},
      {TransportSize::character, DataSize::byte_word_dword, 1},
      {TransportSize::word, DataSize::byte_word_dword, 2},
      {TransportSize::integer, DataSize::integer, 2},
      {TransportSize::dword, DataSize::byte_word_dword, 4},
      {TransportSize::dinteger, DataSize::integer, 4},
      {TransportSize::real, DataSize::real, 4},
  };
  const Area byte_areas[] = {Area::inputs, Area::outputs, Area::flags, Area::data_block,
                             Area::instance_db};
  ps::PlcState plc(small_config());
  Client c(plc);
  c.open();
  std::uint8_t seed = 1;
  for (Area area : byte_areas) {
    const std::uint16_t db = (area == Area::data_block || area == Area::instance_db) ? 2 : 0;
    for (const auto& type : byte_types) {
      const std::uint32_t byte = 8 + seed % 8;
      const std::uint32_t address = type.ts == TransportSize::bit ? byte * 8 + seed % 8 : byte * 8;
      const std::uint16_t count = type.ts == TransportSize::bit ? 1 : 3;
      SCOPED_TRACE(std::string(ch::area_name(area)) + " transport " + std::to_string(int(type.ts)));
      ch::Bytes value(count * type.bytes);
      for (auto& b : value) b = seed++;
      if (type.ts == TransportSize::bit) value = {1};

      ASSERT_EQ(
          c.write_items({item(type.ts, count, area, db, address)}, {write_data(type.ts, value)}),
          (std::vector<std::uint8_t>{kOk}));
      auto items = c.read_items({item(type.ts, count, area, db, address)});
      ASSERT_EQ(items.size(), 1u);
      EXPECT_EQ(items[0].return_code, kOk);
      EXPECT_EQ(items[0].size, type.reply);
      EXPECT_EQ(items[0].data, value);
      if (type.ts == TransportSize::bit) {
        EXPECT_EQ(plc.read_raw(area, db, byte, 1)[0] >> (address % 8) & 1, 1);
      } else {
        EXPECT_EQ(plc.read_raw(area, db, byte, value.size()), value);
      }
    }
  }
  // DB and DI address the same block.
  EXPECT_EQ(plc.read_raw(Area::instance_db, 2, 0, 64), plc.read_raw(Area::data_block, 2, 0, 64));

  const std::pair<Area, TransportSize> numbered[] = {{Area::timers, TransportSize::timer},
                                                     {Area::counters, TransportSize::counter}};
  for (auto [area, ts] : numbered) {
    const ch::Bytes value = {0x12, 0x34, 0x56, 0x78};
    ASSERT_EQ(c.write_items({item(ts, 2, area, 0, 14)}, {write_data(ts, value)}),
              (std::vector<std::uint8_t>{kOk}));
    auto items = c.read_items({item(ts, 2, area, 0, 14)});
    ASSERT_EQ(items.size(), 1u);
    EXPECT_EQ(items[0].return_code, kOk);
    EXPECT_EQ(items[0].size, DataSize::octet_string);
    EXPECT_EQ(items[0].data, value);
    EXPECT_EQ(plc.read_raw(area, 0, 14, 4), value);
  }
}

TEST(ServerSession, BitWriteTouchesOneBitOnly) {
  ps::PlcState plc(small_config());
  Client c(plc);
  c.open();
  plc.write_raw(Area::data_block, 1, 9, ch::Bytes{0xFF, 0xA5, 0xFF});
  auto write_bit = [&](std::uint32_t bit, std::uint8_t value) {
    return c.write_items({item(TransportSize::bit, 1, Area::data_block, 1, 10 * 8 + bit)},
                         {write_data(TransportSize::bit, {value})});
  };
  EXPECT_EQ(write_bit(1, 1), (std::vector<std::uint8_t>{kOk}));
  EXPECT_EQ(plc.read_raw(Area::data_block, 1, 9, 3), (ch::Bytes{0xFF, 0xA7, 0xFF}));
  EXPECT_EQ(write_bit(0, 0), (std::vector<std::uint8_t>{kOk}));
  EXPECT_EQ(plc.read_raw(Area::data_block, 1, 9, 3), (ch::Bytes{0xFF, 0xA6, 0xFF}));
  EXPECT_EQ(write_bit(7, 0), (std::vector<std::uint8_t>{kOk}));
  EXPECT_EQ(plc.read_raw(Area::data_block, 1, 9, 3), (ch::Bytes{0xFF, 0x26, 0xFF}));
  EXPECT_EQ(write_bit(6, 0x80), (std::vector<std::uint8_t>{kOk}));  // any non-zero byte sets
  EXPECT_EQ(plc.read_raw(Area::data_block, 1, 9, 3), (ch::Bytes{0xFF, 0x66, 0xFF}));

  auto items = c.read_items({item(TransportSize::bit, 1, Area::data_block, 1, 10 * 8 + 6),
                             item(TransportSize::bit, 1, Area::data_block, 1, 10 * 8 + 7)});
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].data, ch::Bytes{1});
  EXPECT_EQ(items[1].data, ch::Bytes{0});
}

TEST(ServerSession, EveryReturnCodeInOneRequest) {
  ps::PlcState plc(small_config());
  Client c(plc);
  c.open();
  plc.write_raw(Area::data_block, 1, 0, ch::Bytes{0xDE, 0xAD});
  auto items = c.read_items({
      item(TransportSize::word, 1, Area::data_block, 1, 0),
      item(TransportSize::byte, 1, Area::data_block, 42, 0),
      item(TransportSize::byte, 2, Area::data_block, 2, 63 * 8),
      item(TransportSize::timer, 1, Area::data_block, 1, 0),
      item(TransportSize(0x0F), 1, Area::flags, 0, 0),
      item(TransportSize::byte, 1, Area::data_block, 1, 1 * 8),
  });
  ASSERT_EQ(items.size(), 6u);
  const std::uint8_t expected[] = {kOk, kNoObject, kOutOfRange, kInconsistent, kNotSupported, kOk};
  for (std::size_t i = 0; i < items.size(); ++i) {
    EXPECT_EQ(int(items[i].return_code), int(expected[i])) << "item " << i;
  }
  EXPECT_EQ(items[0].data, (ch::Bytes{0xDE, 0xAD}));
  EXPECT_TRUE(items[1].data.empty());
  EXPECT_EQ(items[5].data, ch::Bytes{0xAD});

  auto codes = c.write_items(
      {item(TransportSize::byte, 1, Area::data_block, 42, 0),
       item(TransportSize::byte, 1, Area::data_block, 2, 64 * 8),
       item(TransportSize::word, 1, Area::data_block, 1, 4 * 8),
       item(TransportSize::byte, 1, Area::data_block, 1, 6 * 8)},
      {write_data(TransportSize::byte, {1}), write_data(TransportSize::byte, {1}),
       write_data(TransportSize::word, {1, 2, 3}), write_data(TransportSize::byte, {9})});
  EXPECT_EQ(codes, (std::vector<std::uint8_t>{kNoObject, kOutOfRange, kInconsistent, kOk}));
  EXPECT_EQ(plc.read_raw(Area::data_block, 1, 4, 3), (ch::Bytes{0, 0, 9}));
}

TEST(ServerSession, RequestLargerThanThePduIsRefused) {
  ps::PlcState plc(small_config());
  Client c(plc);
  c.open(240);
  std::vector<ch::VarItem> items;
  for (std::uint32_t i = 0; i < 20; ++i)
    items.push_back(item(TransportSize::byte, 1, Area::flags, 0, i * 8));
  ASSERT_EQ(ch::read_request_size(20), 252u);
  auto out = c.send(ch::Pdu{{ch::Rosctr::job, 0, 0x0707}, ch::ReadVarRequest{items}});
  EXPECT_NE(out.event.find("exceeds the negotiated PDU 240"), std::string::npos) << out.event;
  ch::Pdu reply = reply_pdu(out, 1024);
  EXPECT_EQ(reply.header.rosctr, ch::Rosctr::ack_data);
  EXPECT_EQ(reply.header.pdu_ref, 0x0707);
  EXPECT_EQ(reply.header.error(), 0x8500);
  EXPECT_EQ(std::get<ch::OtherFunction>(reply.body), (ch::OtherFunction{{0x04, 20}, {}}));

  items.pop_back();  // 19 items: 240 bytes exactly
  EXPECT_EQ(c.read_items(items).size(), 19u);

  // A write whose data pushes it over: 12 + 12 + 4 + 213 = 241.
  plc.write_raw(Area::data_block, 1, 0, ch::Bytes(213, 0x11));
  out =
      c.send(ch::Pdu{{ch::Rosctr::job, 0, 0x0708},
                     ch::WriteVarRequest{{item(TransportSize::byte, 213, Area::data_block, 1, 0)},
                                         {write_data(TransportSize::byte, ch::Bytes(213, 0x22))}}});
  reply = reply_pdu(out, 1024);
  EXPECT_EQ(reply.header.error(), 0x8500);
  EXPECT_EQ(std::get<ch::OtherFunction>(reply.body), (ch::OtherFunction{{0x05, 1}, {}}));
  EXPECT_EQ(plc.read_raw(Area::data_block, 1, 0, 213), ch::Bytes(213, 0x11));  // not written
  EXPECT_EQ(c.write_items({item(TransportSize::byte, 212, Area::data_block, 1, 0)},
                          {write_data(TransportSize::byte, ch::Bytes(212, 0x22))}),
            (std::vector<std::uint8_t>{kOk}));
}

TEST(ServerSession, ReadWhoseReplyExceedsThePduIsRefused) {
  ps::PlcState plc(small_config());
  Client c(plc);
  c.open(240);
  ASSERT_EQ(ch::max_read_item_bytes(240), 222u);
  auto items = c.read_items({item(TransportSize::byte, 222, Area::data_block, 1, 0)});
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].data.size(), 222u);

  auto out =
      c.send(ch::Pdu{{ch::Rosctr::job, 0, 9},
                     ch::ReadVarRequest{{item(TransportSize::byte, 223, Area::data_block, 1, 0)}}});
  EXPECT_NE(out.event.find("reply of 241 bytes"), std::string::npos) << out.event;
  ch::Pdu reply = reply_pdu(out, 1024);
  EXPECT_EQ(reply.header.error(), 0x8500);
  EXPECT_EQ(std::get<ch::OtherFunction>(reply.body), (ch::OtherFunction{{0x04, 1}, {}}));

  // Two odd items: the fill byte after the first counts (14 + 4+111+1 + 4+107 = 241).
  out =
      c.send(ch::Pdu{{ch::Rosctr::job, 0, 10},
                     ch::ReadVarRequest{{item(TransportSize::byte, 111, Area::data_block, 1, 0),
                                         item(TransportSize::byte, 107, Area::data_block, 1, 0)}}});
  EXPECT_EQ(reply_pdu(out, 1024).header.error(), 0x8500);
  EXPECT_EQ(c.read_items({item(TransportSize::byte, 111, Area::data_block, 1, 0),
                          item(TransportSize::byte, 106, Area::data_block, 1, 0)})
                .size(),
            2u);
}

TEST(ServerSession, UnknownFunctionIsNotSupported) {
  ps::PlcState plc(small_config());
  Client c(plc);
  c.open();
  const ch::Bytes params[] = {{0x28, 0x00, 0x00, 0x00}, {0x1D, 0x00}, {0x00}, {0x99, 0x07}};
  for (const auto& param : params) {
    auto out = c.send(ch::Pdu{{ch::Rosctr::job, 0, 0x3333}, ch::OtherFunction{param, {}}});
    EXPECT_NE(out.event.find("not supported"), std::string::npos) << out.event;
    ch::Pdu reply = reply_pdu(out, 1024);
    EXPECT_EQ(reply.header.rosctr, ch::Rosctr::ack_data);
    EXPECT_EQ(reply.header.pdu_ref, 0x3333);
    EXPECT_EQ(reply.header.error(), 0x8104);
    EXPECT_EQ(ch::function_of(reply), param[0]);
  }
  // The connection still works.
  EXPECT_EQ(c.read_items({item(TransportSize::byte, 1, Area::flags, 0, 0)}).size(), 1u);
}

TEST(ServerSession, RepliesFromTheClientClose) {
  const ch::Pdu pdus[] = {
      ch::Pdu{{ch::Rosctr::ack_data, 0, 5},
              ch::ReadVarResponse{{ch::DataItem{0xFF, DataSize::byte_word_dword, {1}}}}},
      ch::Pdu{{ch::Rosctr::ack, 0, 5}, ch::NoBody{}},
  };
  for (const auto& pdu : pdus) {
    ps::PlcState plc(small_config());
    Client c(plc);
    c.open();
    auto out = c.send(pdu);
    EXPECT_TRUE(out.close);
    EXPECT_NE(out.event.find("unexpected"), std::string::npos) << out.event;
  }
}

TEST(ServerSession, WrongPduRefFault) {
  ps::PlcState plc(small_config());
  Client c(plc);
  c.open();
  plc.set_faults(ps::Faults{.wrong_pdu_ref = true});
  for (std::uint16_t ref : {0x0000, 0x0001, 0x5A5A, 0xFFFF}) {
    ch::Pdu reply = reply_pdu(
        c.send(ch::Pdu{{ch::Rosctr::job, 0, ref},
                       ch::ReadVarRequest{{item(TransportSize::byte, 1, Area::flags, 0, 0)}}}),
        1024);
    EXPECT_NE(reply.header.pdu_ref, ref);
    EXPECT_EQ(std::get<ch::ReadVarResponse>(reply.body).items.size(), 1u);
  }
  ch::Pdu szl = reply_pdu(c.send(ch::szl_request(0x0101, 0, {0x0424, 0})), 1024);
  EXPECT_NE(szl.header.pdu_ref, 0x0101);
  plc.set_faults({});
  ch::Pdu ok = c.read(std::vector<ch::VarItem>{item(TransportSize::byte, 1, Area::flags, 0, 0)});
  EXPECT_EQ(ok.header.pdu_ref, c.ref);
}

// ---------------------------------------------------------------------------------------------
// SZL

TEST(ServerSession, SzlModuleIdentification) {
  ps::PlcState plc(small_config());
  Client c(plc);
  c.open(240);
  std::size_t pieces = 0;
  ch::SzlList list = c.szl(0x0011, 0x0000, &pieces);
  EXPECT_EQ(pieces, 1u);
  EXPECT_EQ(list.id, 0x0011);
  EXPECT_EQ(list.record_length, 28);
  auto m = ch::parse_szl_0011(list);
  ASSERT_TRUE(m.ok()) << m.error().to_string();
  EXPECT_EQ(m->order_number, "6ES7 516-3AN02-0AB0");
  EXPECT_EQ(m->firmware, "V2.9.4");
}

TEST(ServerSession, SzlComponentIdentificationContinuesAtPdu240) {
  ps::PlcConfig config = small_config();
  config.name = "Press line 3";
  config.serial_number = "S C-X4U12345";
  config.module_type = "CPU 1511-1 PN";
  ps::PlcState plc(config);
  Client c(plc);
  c.open(240);
  std::size_t pieces = 0;
  ch::SzlList list = c.szl(0x001C, 0x0000, &pieces);
  EXPECT_EQ(pieces, 2u);  // 8 + 10 * 34 bytes do not fit 240 - 26
  EXPECT_EQ(list.records.size(), 10u);
  auto id = ch::parse_szl_001c(list);
  ASSERT_TRUE(id.ok()) << id.error().to_string();
  EXPECT_EQ(id->station_name, "Press line 3");
  EXPECT_EQ(id->plc_name, "Press line 3");
  EXPECT_EQ(id->serial_number, "S C-X4U12345");
  EXPECT_EQ(id->module_type, "CPU 1511-1 PN");

  // At PDU 480 the same list is one piece.
  Client big(plc);
  big.open(480);
  big.szl(0x001C, 0, &pieces);
  EXPECT_EQ(pieces, 1u);
}

TEST(ServerSession, SzlContinuationRules) {
  ps::PlcState plc(small_config());
  Client c(plc);
  c.open(240);
  // A continuation with nothing in progress.
  ch::UserdataParam fake{0x12, 8, 4, 1, 0x33, true, 0x33, true, 0};
  ch::Pdu reply = c.call(ch::szl_continue(0x0909, fake));
  EXPECT_EQ(reply.header.pdu_ref, 0x0909);
  auto& u = std::get<ch::Userdata>(reply.body);
  EXPECT_EQ(u.param.error, 0xD404);
  EXPECT_EQ(u.data.return_code, kNoObject);

  // First piece, then a continuation with the wrong sequence number, then the right one.
  ch::Pdu first = c.call(ch::szl_request(0x0A00, 0, {0x001C, 0}));
  const auto& p1 = std::get<ch::Userdata>(first.body).param;
  ASSERT_TRUE(p1.more_follows);
  ch::UserdataParam wrong = p1;
  wrong.sequence = std::uint8_t(p1.sequence + 1);
  EXPECT_EQ(std::get<ch::Userdata>(c.call(ch::szl_continue(0x0A01, wrong)).body).param.error,
            0xD404);
  ch::Pdu second = c.call(ch::szl_continue(0x0A02, p1));
  EXPECT_EQ(second.header.pdu_ref, 0x0A02);
  EXPECT_FALSE(std::get<ch::Userdata>(second.body).param.more_follows);
  EXPECT_EQ(std::get<ch::Userdata>(second.body).param.error, 0);
  // Nothing left.
  EXPECT_EQ(std::get<ch::Userdata>(c.call(ch::szl_continue(0x0A03, p1)).body).param.error, 0xD404);
}

// Found by fuzz_server: setup communication again with a smaller PDU while an SZL answer was
// in progress kept its pieces cut for the old PDU, and the continuation answered 160 bytes at
// PDU 64. Renegotiating abandons the answer; a new read is cut for the new PDU.
TEST(ServerSession, SetupAgainAbandonsAnSzlAnswerInProgress) {
  ps::PlcState plc(small_config());
  Client c(plc);
  c.open(240);
  ch::Pdu first = c.call(ch::szl_request(0x0B00, 0, {0x001C, 0}));
  const ch::UserdataParam p1 = std::get<ch::Userdata>(first.body).param;
  ASSERT_TRUE(p1.more_follows);
  EXPECT_EQ(c.setup(64).pdu_size, 64);
  ch::Pdu next = c.call(ch::szl_continue(0x0B01, p1));
  EXPECT_LE(ch::encode_s7(next).size(), 64u);
  EXPECT_EQ(std::get<ch::Userdata>(next.body).param.error, 0xD404);
  std::size_t pieces = 0;
  ch::SzlList list = c.szl(0x001C, 0, &pieces);  // checks every piece against the PDU
  EXPECT_EQ(list.records.size(), 10u);
  EXPECT_EQ(pieces, 10u);  // 8 + 10 * 34 bytes in pieces of 64 - 26
}

TEST(ServerSession, SzlCpuModeFollowsRunAndStop) {
  ps::PlcState plc(small_config());
  Client c(plc);
  c.open(240);
  auto mode = ch::parse_szl_0424(c.szl(0x0424, 0));
  ASSERT_TRUE(mode.ok());
  EXPECT_EQ(*mode, ch::CpuMode::run);

  plc.tick();
  const ch::Bytes before = plc.read_raw(Area::data_block, 100, 0, 12);
  plc.set_running(false);
  mode = ch::parse_szl_0424(c.szl(0x0424, 0));
  ASSERT_TRUE(mode.ok());
  EXPECT_EQ(*mode, ch::CpuMode::stop);
  plc.tick();
  plc.tick();
  EXPECT_EQ(c.read_items({item(TransportSize::byte, 12, Area::data_block, 100, 0)})[0].data,
            before);  // process values stand still in STOP, memory still answers
}

TEST(ServerSession, SzlListOfLists) {
  ps::PlcState plc(small_config());
  Client c(plc);
  c.open(240);
  ch::SzlList list = c.szl(0x0000, 0);
  EXPECT_EQ(list.record_length, 2);
  std::vector<std::uint16_t> ids;
  for (const auto& r : list.records) ids.push_back(std::uint16_t(r[0] << 8 | r[1]));
  EXPECT_EQ(ids, (std::vector<std::uint16_t>{0x0000, 0x0011, 0x001C, 0x0424}));
}

TEST(ServerSession, UnknownSzlIdIsRefused) {
  ps::PlcState plc(small_config());
  Client c(plc);
  c.open(240);
  auto out = c.send(ch::szl_request(0x0C0C, 3, {0x0132, 0x0004}));
  EXPECT_NE(out.event.find("0x0132"), std::string::npos) << out.event;
  ch::Pdu reply = reply_pdu(out, 1024);
  EXPECT_EQ(reply.header.rosctr, ch::Rosctr::userdata);
  EXPECT_EQ(reply.header.pdu_ref, 0x0C0C);
  auto& u = std::get<ch::Userdata>(reply.body);
  EXPECT_EQ(u.param.type, 8);
  EXPECT_EQ(u.param.group, 4);
  EXPECT_EQ(u.param.subfunction, 1);
  EXPECT_EQ(u.param.error, 0xD401);
  EXPECT_EQ(u.data.return_code, kNoObject);
  EXPECT_TRUE(u.data.payload.empty());
  ch::SzlAssembler a;
  EXPECT_FALSE(a.add(u).ok());

  // Other userdata functions: 0x8104.
  ch::Pdu clock = ch::szl_request(0x0C0D, 0, {0, 0});
  std::get<ch::Userdata>(clock.body).param.group = 7;
  EXPECT_EQ(std::get<ch::Userdata>(c.call(clock).body).param.error, 0x8104);
}

// ---------------------------------------------------------------------------------------------
// Malformed input

TEST(ServerSession, MalformedInputClosesNamingTheError) {
  struct Case {
    ch::Bytes tpdu;
    const char* needle;
  };
  auto s7 = [](ch::Bytes b) { return dt(b); };
  const Case cases[] = {
      {{0x00, 0xF0}, "malformed COTP"},
      {{0x02, 0xF0}, "malformed COTP"},
      {{0x05, 0x20, 0, 0, 0, 0}, "malformed COTP"},
      {s7({0x33, 0x01, 0, 0, 0, 1, 0, 0, 0, 0}), "malformed S7comm PDU"},
      {s7({0x32, 0x01, 0, 0, 0, 1, 0, 2, 0, 0}), "malformed S7comm PDU"},
      {s7({0x32, 0x01, 0, 0, 0, 1, 0, 2, 0, 0, 0x04, 0x01}), "malformed S7comm PDU"},
      {s7({0x32}), "malformed S7comm PDU"},
      {dt({}, true), "reassembly"},
  };
  for (const auto& k : cases) {
    ps::PlcState plc(small_config());
    Client c(plc);
    c.open();
    auto out = c.session.on_tpdu(k.tpdu);
    EXPECT_TRUE(out.close);
    EXPECT_TRUE(out.frames.empty());
    EXPECT_NE(out.event.find(k.needle), std::string::npos) << out.event;
    EXPECT_TRUE(c.session.on_tpdu(dt(ch::Bytes{0x32})).close);
  }
}

TEST(ServerSession, OversizedReassemblyCloses) {
  ps::PlcState plc(small_config());
  Client c(plc);
  c.open();
  ps::ServerSession::Output out;
  for (int i = 0; i < 40 && !out.close; ++i)
    out = c.session.on_tpdu(dt(ch::Bytes(1000, 0x32), false));
  EXPECT_TRUE(out.close);
  EXPECT_NE(out.event.find("reassembly"), std::string::npos) << out.event;
}

TEST(ServerSession, RandomInputNeverCrashes) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> byte(0, 255);
  const ch::Bytes valid[] = {
      ch::encode_s7(
          ch::Pdu{{ch::Rosctr::job, 0, 1},
                  ch::ReadVarRequest{{item(TransportSize::word, 4, Area::data_block, 1, 0)}}}),
      ch::encode_s7(ch::Pdu{{ch::Rosctr::job, 0, 2},
                            ch::WriteVarRequest{{item(TransportSize::bit, 1, Area::flags, 0, 3)},
                                                {write_data(TransportSize::bit, {1})}}}),
      ch::encode_s7(ch::szl_request(3, 0, {0x001C, 0})),
      ch::encode_s7(ch::Pdu{{ch::Rosctr::job, 0, 4}, ch::SetupCommunication{1, 1, 240}}),
  };
  for (int round = 0; round < 3000; ++round) {
    ps::PlcState plc(small_config());
    const auto mode = ps::SecurityMode(round % 3);
    Client c(plc, mode);
    if (mode == ps::SecurityMode::s7_secure) {
      ASSERT_FALSE(c.session.on_tpdu(cr(0x0A, ch::Tsap::from_text("SIMATIC-ROOT-HMI"))).close);
      ASSERT_TRUE(c.session.on_tpdu(dt(ch::encode_init_ssl_request())).start_tls);
      c.session.tls_established();
    } else {
      c.connect();
    }
    if (round % 2) c.setup(240);
    for (int n = 0; n < 4; ++n) {
      ch::Bytes payload = valid[std::size_t(byte(rng)) % std::size(valid)];
      const int flips = 1 + byte(rng) % 4;
      for (int f = 0; f < flips; ++f)
        payload[std::size_t(byte(rng)) % payload.size()] = std::uint8_t(byte(rng));
      if (byte(rng) % 4 == 0) payload.resize(std::size_t(byte(rng)) % payload.size());
      ch::Bytes tpdu = byte(rng) % 8 == 0 ? payload : dt(payload, byte(rng) % 8 != 0);
      auto out = c.session.on_tpdu(tpdu);
      for (const auto& f : out.frames) ASSERT_LE(f.size(), 4 + c.session.tpdu_size());
      if (out.close) {
        EXPECT_FALSE(out.event.empty());
        break;
      }
    }
  }
}
