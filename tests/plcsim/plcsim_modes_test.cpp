// plcsim over TCP, as a client sees it, in each security mode of WIRE.md §5: setup
// negotiation, every data type in every area, every item return code, SZL identity and mode
// (with continuation), the PDU size limit, several connections and several PLCs; then the TLS
// variants: mutual TLS, PSK only, a pinned certificate, and verification that really fails.
// The simulator runs in-process on ephemeral ports; certificates are made at test time.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../support/hex.h"
#include "../support/s7_test_client.h"
#include "plcsim/plcsim.h"
#include "test_modes.h"
#include "test_tls_files.h"

namespace ch = scada::channel;
namespace ps = scada::plcsim;

using ch::Area;
using ch::DataSize;
using ch::TransportSize;
using scada::test::ClientError;
using scada::test::ClientFailure;
using scada::test::ClientMode;
using scada::test::ClientOptions;
using scada::test::mode_label;
using scada::test::S7TestClient;
using scada::test::server_mode;
using scada::test::ServerTlsFiles;
using scada::test::TempDir;

namespace {

constexpr std::uint8_t kOk = 0xFF, kOutOfRange = 0x05, kInconsistent = 0x07, kNoObject = 0x0A;

ch::VarItem item(TransportSize transport, std::uint16_t count, Area area, std::uint16_t db,
                 std::uint32_t address) {
  return ch::VarItem{transport, count, db, area, address};
}

// The data transport size a write carries and a read reply has for an element type
// (plc_state.h: BIT -> bit, BYTE/CHAR/WORD/DWORD -> byte/word/dword, INT/DINT -> integer,
// REAL -> real, TIMER/COUNTER -> octet string).
DataSize data_size(TransportSize transport) {
  switch (transport) {
    case TransportSize::bit:
      return DataSize::bit;
    case TransportSize::integer:
    case TransportSize::dinteger:
      return DataSize::integer;
    case TransportSize::real:
      return DataSize::real;
    case TransportSize::timer:
    case TransportSize::counter:
      return DataSize::octet_string;
    default:
      return DataSize::byte_word_dword;
  }
}

ch::DataItem data(TransportSize transport, ch::Bytes bytes) {
  return ch::DataItem{0x00, data_size(transport), std::move(bytes)};
}

ch::Bytes inverted(ch::Bytes bytes) {
  for (auto& b : bytes) b = std::uint8_t(~b);
  return bytes;
}

// Connecting and setting up must fail: the server refuses what the client brings.
void expect_connect_fails(const ClientOptions& options, std::uint16_t port,
                          const std::string& why) {
  SCOPED_TRACE(why);
  S7TestClient client(options);
  try {
    client.connect(port);
    client.setup();
    ADD_FAILURE() << "the connection was established";
  } catch (const ClientError& e) {
    // The server decides after the client's Finished in TLS 1.3: the client sees its alert, or
    // TCP ending, depending on what arrives first.
    EXPECT_TRUE(e.failure() == ClientFailure::tls || e.failure() == ClientFailure::eof ||
                e.failure() == ClientFailure::reset)
        << e.what();
  }
}

// Waits (bounded) until the PLC counts this many connections.
bool wait_for_connections(const ps::Plc& plc, std::size_t count) {
  for (int i = 0; i < 500; ++i) {
    if (plc.connections() == count) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return plc.connections() == count;
}

class PlcsimModesTest : public testing::TestWithParam<ClientMode> {
 protected:
  PlcsimModesTest() : tls_(dir_, "PLC1") {}

  ClientMode mode() const { return GetParam(); }

  ps::PlcConfig plc_config(const std::string& name = "PLC1") const {
    ps::PlcConfig c;
    c.name = name;
    c.mode = server_mode(mode());
    c.max_pdu = 480;
    c.max_amq = 3;
    c.data_blocks = {{1, 1024}, {2, 64}};
    c.flags_bytes = 256;
    c.inputs_bytes = 256;
    c.outputs_bytes = 256;
    c.timers = 64;
    c.counters = 64;
    if (mode() != ClientMode::none) {
      c.tls.certificate = tls_.certificate_file;
      c.tls.key = tls_.key_file;
    }
    return c;
  }

  void start(std::vector<ps::PlcConfig> plcs) {
    sim_ = std::make_unique<ps::Simulator>(std::move(plcs), "127.0.0.1", 0);
  }
  void start() { start({plc_config()}); }
  ps::Plc& plc(std::size_t index = 0) { return sim_->plc(index); }

  ClientOptions client_options() const {
    ClientOptions o;
    o.mode = mode();
    o.tls.trust = tls_.ca_file;
    return o;
  }

  std::unique_ptr<S7TestClient> connected(std::size_t plc_index = 0, std::uint16_t pdu = 480,
                                          std::uint16_t amq = 1) {
    auto client = std::make_unique<S7TestClient>(client_options());
    client->connect(plc(plc_index).port());
    client->setup(pdu, amq);
    return client;
  }

  TempDir dir_;
  ServerTlsFiles tls_;
  std::unique_ptr<ps::Simulator> sim_;
};

TEST_P(PlcsimModesTest, ConnectsInTheModeAndPresentsTheServerCertificate) {
  start();
  auto client = connected();
  EXPECT_EQ(plc().connections(), 1u);
  EXPECT_EQ(client->tpdu_size(), 1024u);
  if (mode() == ClientMode::none) {
    EXPECT_EQ(client->peer_certificate_sha256(), "");
  } else {
    EXPECT_EQ(client->peer_certificate_sha256(), tls_.server.sha256);
  }
}

TEST_P(PlcsimModesTest, SetupGrantsTheMinimumOfAskedAndOffered) {
  start();  // offers PDU 480, AmQ 3
  S7TestClient client(client_options());
  client.connect(plc().port());
  EXPECT_EQ(client.setup(960, 8), (ch::SetupCommunication{3, 3, 480}));
  EXPECT_EQ(client.setup(240, 1), (ch::SetupCommunication{1, 1, 240}));
  EXPECT_EQ(client.setup(300, 2), (ch::SetupCommunication{2, 2, 300}));
  EXPECT_EQ(client.negotiated(), (ch::SetupCommunication{2, 2, 300}));
  // The granted size holds: a reply of exactly 300 bytes goes through.
  const auto reply = client.read({item(TransportSize::byte, 300 - 18, Area::data_block, 1, 0)});
  EXPECT_EQ(reply.items.at(0).return_code, kOk);
}

struct TypeCase {
  const char* name;
  TransportSize transport;
  std::uint16_t count;
  ch::Bytes value;  // big-endian, as the PLC stores it
};

// One value of each type (bits are tested on their own below).
const std::vector<TypeCase>& byte_area_types() {
  static const std::vector<TypeCase> cases = {
      {"Byte", TransportSize::byte, 1, {0xA5}},
      {"Char", TransportSize::character, 1, {'S'}},
      {"Word", TransportSize::word, 1, {0xBE, 0xEF}},
      {"Int -12345", TransportSize::integer, 1, {0xCF, 0xC7}},
      {"DWord", TransportSize::dword, 1, {0xDE, 0xAD, 0xBE, 0xEF}},
      {"DInt -100000", TransportSize::dinteger, 1, {0xFF, 0xFE, 0x79, 0x60}},
      {"Real 3.14159", TransportSize::real, 1, {0x40, 0x49, 0x0F, 0xD0}},
      {"LReal e as 8 bytes",
       TransportSize::byte,
       8,
       {0x40, 0x05, 0xBF, 0x0A, 0x8B, 0x14, 0x57, 0x69}},
      {"String[10] 'plcsim'",
       TransportSize::byte,
       12,
       {10, 6, 'p', 'l', 'c', 's', 'i', 'm', 0, 0, 0, 0}},
      {"Int array of 3", TransportSize::integer, 3, {0x00, 0x01, 0x80, 0x00, 0x7F, 0xFF}},
  };
  return cases;
}

struct AreaCase {
  const char* name;
  Area area;
  std::uint16_t db;
};

const std::vector<AreaCase>& byte_areas() {
  static const std::vector<AreaCase> areas = {{"DB1", Area::data_block, 1},
                                              {"M", Area::flags, 0},
                                              {"I", Area::inputs, 0},
                                              {"Q", Area::outputs, 0}};
  return areas;
}

TEST_P(PlcsimModesTest, EveryDataTypeReadsAndWritesInEveryArea) {
  start();
  auto client = connected();
  for (const auto& area : byte_areas()) {
    std::uint32_t offset = 0;
    for (const auto& type : byte_area_types()) {
      SCOPED_TRACE(std::string(area.name) + " " + type.name);
      const ch::VarItem it = item(type.transport, type.count, area.area, area.db, offset * 8);
      // A write over S7 lands in the PLC's memory...
      const auto written = client->write({it}, {data(type.transport, type.value)});
      EXPECT_EQ(written.return_codes, std::vector<std::uint8_t>{kOk});
      EXPECT_EQ(plc().read(area.area, area.db, offset, type.value.size()), type.value);
      // ...and what the PLC holds comes back over S7 with the reply's transport size.
      const ch::Bytes other = inverted(type.value);
      plc().write(area.area, area.db, offset, other);
      const auto reply = client->read({it});
      ASSERT_EQ(reply.items.size(), 1u);
      EXPECT_EQ(reply.items[0].return_code, kOk);
      EXPECT_EQ(reply.items[0].size, data_size(type.transport));
      EXPECT_EQ(reply.items[0].data, other);
      offset += 16;
    }
    // Bool: bit 5 of the byte after the values.
    SCOPED_TRACE(std::string(area.name) + " Bool");
    const ch::VarItem bit = item(TransportSize::bit, 1, area.area, area.db, offset * 8 + 5);
    EXPECT_EQ(client->write({bit}, {data(TransportSize::bit, {1})}).return_codes,
              std::vector<std::uint8_t>{kOk});
    EXPECT_EQ(plc().read(area.area, area.db, offset, 1), ch::Bytes{0x20});
    plc().write(area.area, area.db, offset, ch::Bytes{0xDF});
    auto reply = client->read({bit});
    EXPECT_EQ(reply.items.at(0).size, DataSize::bit);
    EXPECT_EQ(reply.items.at(0).data, ch::Bytes{0x00});
    plc().write(area.area, area.db, offset, ch::Bytes{0x20});
    EXPECT_EQ(client->read({bit}).items.at(0).data, ch::Bytes{0x01});
  }
}

TEST_P(PlcsimModesTest, TimersAndCountersByNumber) {
  start();
  auto client = connected();
  struct Case {
    const char* name;
    Area area;
    TransportSize transport;
    std::uint16_t number;
    ch::Bytes value;
  };
  const std::vector<Case> cases = {
      {"T5", Area::timers, TransportSize::timer, 5, {0x12, 0x34}},
      {"C7", Area::counters, TransportSize::counter, 7, {0x09, 0x99}},
      {"T60..T62", Area::timers, TransportSize::timer, 60, {0x01, 0x02, 0x03, 0x04, 0x05, 0x06}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto count = std::uint16_t(c.value.size() / 2);
    const ch::VarItem it = item(c.transport, count, c.area, 0, c.number);
    EXPECT_EQ(client->write({it}, {data(c.transport, c.value)}).return_codes,
              std::vector<std::uint8_t>{kOk});
    EXPECT_EQ(plc().read(c.area, 0, c.number, c.value.size()), c.value);
    plc().write(c.area, 0, c.number, inverted(c.value));
    const auto reply = client->read({it});
    EXPECT_EQ(reply.items.at(0).return_code, kOk);
    EXPECT_EQ(reply.items.at(0).size, DataSize::octet_string);
    EXPECT_EQ(reply.items.at(0).data, inverted(c.value));
  }
}

TEST_P(PlcsimModesTest, BitWriteLeavesNeighboursUntouched) {
  start();
  auto client = connected();
  for (const auto& area : byte_areas()) {
    SCOPED_TRACE(area.name);
    plc().write(area.area, area.db, 19, ch::Bytes{0x5A, 0b1010'0101, 0x5A});
    auto set_bit = [&](std::uint32_t bit, std::uint8_t value) {
      const auto r = client->write({item(TransportSize::bit, 1, area.area, area.db, 20 * 8 + bit)},
                                   {data(TransportSize::bit, {value})});
      EXPECT_EQ(r.return_codes, std::vector<std::uint8_t>{kOk});
    };
    set_bit(1, 1);
    EXPECT_EQ(plc().read(area.area, area.db, 19, 3), (ch::Bytes{0x5A, 0b1010'0111, 0x5A}));
    set_bit(7, 0);
    EXPECT_EQ(plc().read(area.area, area.db, 19, 3), (ch::Bytes{0x5A, 0b0010'0111, 0x5A}));
    set_bit(0, 0);
    set_bit(3, 1);
    EXPECT_EQ(plc().read(area.area, area.db, 19, 3), (ch::Bytes{0x5A, 0b0010'1110, 0x5A}));
    // Setting a bit that is already set, and a non-zero data byte other than 1, set it.
    set_bit(2, 0x80);
    EXPECT_EQ(plc().read(area.area, area.db, 19, 3), (ch::Bytes{0x5A, 0b0010'1110, 0x5A}));
    const auto reply = client->read({item(TransportSize::bit, 1, area.area, area.db, 20 * 8 + 3),
                                     item(TransportSize::bit, 1, area.area, area.db, 20 * 8 + 4)});
    EXPECT_EQ(reply.items.at(0).data, ch::Bytes{1});
    EXPECT_EQ(reply.items.at(1).data, ch::Bytes{0});
  }
}

TEST_P(PlcsimModesTest, EveryReadReturnCode) {
  start();
  auto client = connected();
  plc().write(Area::data_block, 1, 0, ch::Bytes{0x42});
  struct Case {
    const char* name;
    ch::VarItem item;
    std::uint8_t code;
  };
  const std::vector<Case> cases = {
      {"DB1.DBB0", item(TransportSize::byte, 1, Area::data_block, 1, 0), kOk},
      {"missing DB99", item(TransportSize::byte, 1, Area::data_block, 99, 0), kNoObject},
      {"DB2 has 64 bytes", item(TransportSize::byte, 10, Area::data_block, 2, 60 * 8), kOutOfRange},
      {"Word with a bit address", item(TransportSize::word, 1, Area::data_block, 1, 4 * 8 + 3),
       kOutOfRange},
      {"past the inputs", item(TransportSize::dword, 1, Area::inputs, 0, 254 * 8), kOutOfRange},
      {"timer past T63", item(TransportSize::timer, 1, Area::timers, 0, 64), kOutOfRange},
      {"Timer in a DB", item(TransportSize::timer, 1, Area::data_block, 1, 0), kInconsistent},
      {"Byte in the timers", item(TransportSize::byte, 1, Area::timers, 0, 1), kInconsistent},
      {"Counter in M", item(TransportSize::counter, 1, Area::flags, 0, 0), kInconsistent},
      {"Bit with count 2", item(TransportSize::bit, 2, Area::flags, 0, 0), kInconsistent},
      {"count 0", item(TransportSize::byte, 0, Area::data_block, 1, 0), kInconsistent},
      {"last byte of DB2", item(TransportSize::byte, 1, Area::data_block, 2, 63 * 8), kOk},
  };
  std::vector<ch::VarItem> items;
  for (const auto& c : cases) items.push_back(c.item);
  const auto reply = client->read(items);  // one request: every item answered on its own
  ASSERT_EQ(reply.items.size(), cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].name);
    EXPECT_EQ(reply.items[i].return_code, cases[i].code)
        << ch::return_code_text(reply.items[i].return_code);
    if (cases[i].code != kOk) {
      EXPECT_EQ(reply.items[i].size, DataSize::null);
      EXPECT_TRUE(reply.items[i].data.empty());
    }
  }
  EXPECT_EQ(reply.items[0].data, ch::Bytes{0x42});
}

TEST_P(PlcsimModesTest, EveryWriteReturnCode) {
  start();
  auto client = connected();
  plc().write(Area::data_block, 2, 60, ch::Bytes{1, 2, 3, 4});
  struct Case {
    const char* name;
    ch::VarItem item;
    ch::DataItem data;
    std::uint8_t code;
  };
  const std::vector<Case> cases = {
      {"DB1.DBW0", item(TransportSize::word, 1, Area::data_block, 1, 0),
       data(TransportSize::word, {0x12, 0x34}), kOk},
      {"missing DB99", item(TransportSize::byte, 1, Area::data_block, 99, 0),
       data(TransportSize::byte, {1}), kNoObject},
      {"DB2 ends at 64", item(TransportSize::dword, 1, Area::data_block, 2, 62 * 8),
       data(TransportSize::dword, {9, 9, 9, 9}), kOutOfRange},
      {"3 bytes for a Word", item(TransportSize::word, 1, Area::data_block, 2, 60 * 8),
       data(TransportSize::word, {9, 9, 9}), kInconsistent},
      {"Counter in a DB", item(TransportSize::counter, 1, Area::data_block, 2, 60 * 8),
       data(TransportSize::counter, {9, 9}), kInconsistent},
  };
  std::vector<ch::VarItem> items;
  std::vector<ch::DataItem> values;
  for (const auto& c : cases) {
    items.push_back(c.item);
    values.push_back(c.data);
  }
  const auto reply = client->write(items, values);
  ASSERT_EQ(reply.return_codes.size(), cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].name);
    EXPECT_EQ(reply.return_codes[i], cases[i].code);
  }
  EXPECT_EQ(plc().read(Area::data_block, 1, 0, 2), (ch::Bytes{0x12, 0x34}));
  EXPECT_EQ(plc().read(Area::data_block, 2, 60, 4), (ch::Bytes{1, 2, 3, 4}));  // untouched
}

TEST_P(PlcsimModesTest, SzlIdentityAndOperatingMode) {
  start();
  const ps::PlcConfig config = plc_config();
  auto client = connected();

  const auto identity = ch::parse_szl_0011(client->read_szl(0x0011, 0x0000).list);
  ASSERT_TRUE(identity.ok()) << identity.error().to_string();
  EXPECT_EQ(identity->order_number, config.order_number);
  EXPECT_EQ(identity->firmware, config.firmware);

  const auto component = ch::parse_szl_001c(client->read_szl(0x001C, 0x0000).list);
  ASSERT_TRUE(component.ok()) << component.error().to_string();
  EXPECT_EQ(component->module_type, config.module_type);
  EXPECT_EQ(component->serial_number, config.serial_number);
  EXPECT_EQ(component->plc_name, config.name);

  auto cpu_mode = [&] {
    const auto m = ch::parse_szl_0424(client->read_szl(0x0424, 0x0000).list);
    EXPECT_TRUE(m.ok()) << m.error().to_string();
    return m.ok() ? m.value() : ch::CpuMode::unknown;
  };
  EXPECT_EQ(cpu_mode(), ch::CpuMode::run);
  plc().set_running(false);
  EXPECT_EQ(cpu_mode(), ch::CpuMode::stop);
  plc().set_running(true);
  EXPECT_EQ(cpu_mode(), ch::CpuMode::run);

  try {
    client->read_szl(0x0123, 0x0000);
    ADD_FAILURE() << "an unknown SZL id was answered";
  } catch (const ClientError& e) {
    EXPECT_EQ(e.failure(), ClientFailure::s7_error) << e.what();
    EXPECT_EQ(e.s7_error(), 0xD401);
  }
  EXPECT_EQ(cpu_mode(), ch::CpuMode::run);  // the connection carries on
}

TEST_P(PlcsimModesTest, LongSzlAnswerComesInPiecesAtPdu240) {
  start();
  auto small = connected(0, 240);
  auto large = connected(0, 480);
  const auto pieces = small->read_szl(0x001C, 0x0000);
  const auto whole = large->read_szl(0x001C, 0x0000);
  EXPECT_GE(pieces.pieces, 2u);  // 10 records of 34 bytes do not fit in 240
  EXPECT_EQ(whole.pieces, 1u);
  EXPECT_EQ(pieces.list.records, whole.list.records);
  EXPECT_EQ(pieces.list.record_length, 34);
  const auto component = ch::parse_szl_001c(pieces.list);
  ASSERT_TRUE(component.ok()) << component.error().to_string();
  EXPECT_EQ(component->serial_number, plc_config().serial_number);
  // A short list right after a long one is whole again.
  EXPECT_EQ(small->read_szl(0x0424, 0x0000).pieces, 1u);
}

TEST_P(PlcsimModesTest, PduTooLargeIsRefusedWith8500) {
  start();
  auto client = connected(0, 240);
  // A request longer than the PDU: 20 items make 12 + 20 * 12 = 252 bytes.
  std::vector<ch::VarItem> items(20, item(TransportSize::byte, 1, Area::data_block, 1, 0));
  const std::uint16_t ref = client->next_pdu_ref();
  client->send_pdu(ch::Pdu{ch::Header{ch::Rosctr::job, 0, ref}, ch::ReadVarRequest{items}});
  const ch::Pdu refusal = client->receive_pdu();
  EXPECT_EQ(refusal.header.pdu_ref, ref);
  EXPECT_EQ(refusal.header.rosctr, ch::Rosctr::ack_data);
  EXPECT_EQ(refusal.header.error(), 0x8500);
  // 19 items (240 bytes) are fine.
  items.pop_back();
  EXPECT_EQ(client->read(items).items.size(), 19u);

  // A reply longer than the PDU: one item carries at most 240 - 18 = 222 bytes.
  EXPECT_EQ(client->read({item(TransportSize::byte, 222, Area::data_block, 1, 0)})
                .items.at(0)
                .data.size(),
            222u);
  try {
    client->read({item(TransportSize::byte, 223, Area::data_block, 1, 0)});
    ADD_FAILURE() << "a reply larger than the PDU was sent";
  } catch (const ClientError& e) {
    EXPECT_EQ(e.failure(), ClientFailure::s7_error) << e.what();
    EXPECT_EQ(e.s7_error(), 0x8500);
  }
  // The connection carries on.
  EXPECT_EQ(
      client->read({item(TransportSize::byte, 1, Area::data_block, 1, 0)}).items.at(0).return_code,
      kOk);
}

TEST_P(PlcsimModesTest, SeveralConnectionsAtOnce) {
  start();
  std::vector<std::unique_ptr<S7TestClient>> clients;
  for (int i = 0; i < 4; ++i) clients.push_back(connected());
  EXPECT_EQ(plc().connections(), 4u);
  for (std::size_t i = 0; i < clients.size(); ++i) {
    const auto v = std::uint8_t(0x10 + i);
    const auto r = clients[i]->write(
        {item(TransportSize::dword, 1, Area::data_block, 1, 200 * 8 + 32 * std::uint32_t(i))},
        {data(TransportSize::dword, {v, v, v, v})});
    EXPECT_EQ(r.return_codes, std::vector<std::uint8_t>{kOk});
  }
  // Each connection sees what every other wrote: one memory behind them all.
  for (const auto& client : clients) {
    for (std::size_t i = 0; i < clients.size(); ++i) {
      const auto v = std::uint8_t(0x10 + i);
      const auto reply = client->read(
          {item(TransportSize::dword, 1, Area::data_block, 1, 200 * 8 + 32 * std::uint32_t(i))});
      EXPECT_EQ(reply.items.at(0).data, (ch::Bytes{v, v, v, v}));
    }
  }
  for (auto& client : clients) client->close();
  EXPECT_TRUE(wait_for_connections(plc(), 0)) << plc().connections() << " still open";
}

TEST_P(PlcsimModesTest, SeveralPlcsEachWithItsOwnMemory) {
  start({plc_config("PLC1"), plc_config("PLC2"), plc_config("PLC3")});
  ASSERT_EQ(sim_->size(), 3u);
  EXPECT_NE(plc(0).port(), plc(1).port());
  EXPECT_NE(plc(1).port(), plc(2).port());
  std::vector<std::unique_ptr<S7TestClient>> clients;
  for (std::size_t i = 0; i < 3; ++i) {
    clients.push_back(connected(i));
    const auto v = std::uint8_t(i + 1);
    clients[i]->write({item(TransportSize::byte, 1, Area::data_block, 1, 0)},
                      {data(TransportSize::byte, {v})});
  }
  for (std::size_t i = 0; i < 3; ++i) {
    SCOPED_TRACE("PLC" + std::to_string(i + 1));
    EXPECT_EQ(plc(i).read(Area::data_block, 1, 0, 1), ch::Bytes{std::uint8_t(i + 1)});
    EXPECT_EQ(
        clients[i]->read({item(TransportSize::byte, 1, Area::data_block, 1, 0)}).items.at(0).data,
        ch::Bytes{std::uint8_t(i + 1)});
    const auto component = ch::parse_szl_001c(clients[i]->read_szl(0x001C, 0).list);
    ASSERT_TRUE(component.ok());
    EXPECT_EQ(component->plc_name, "PLC" + std::to_string(i + 1));
    EXPECT_EQ(plc(i).connections(), 1u);
  }
  // STOP on one PLC is its own.
  plc(1).set_running(false);
  EXPECT_EQ(ch::parse_szl_0424(clients[0]->read_szl(0x0424, 0).list).value(), ch::CpuMode::run);
  EXPECT_EQ(ch::parse_szl_0424(clients[1]->read_szl(0x0424, 0).list).value(), ch::CpuMode::stop);
}

INSTANTIATE_TEST_SUITE_P(Modes, PlcsimModesTest,
                         testing::Values(ClientMode::none, ClientMode::tls, ClientMode::s7_secure),
                         mode_label);

// ---- TLS: who is trusted

class PlcsimTlsTest : public testing::Test {
 protected:
  PlcsimTlsTest() : tls_(dir_, "PLC1") {}

  ps::PlcConfig config(ps::SecurityMode mode) const {
    ps::PlcConfig c;
    c.mode = mode;
    c.tls.certificate = tls_.certificate_file;
    c.tls.key = tls_.key_file;
    return c;
  }
  std::uint16_t start(ps::PlcConfig config) {
    sim_ = std::make_unique<ps::Simulator>(std::vector<ps::PlcConfig>{std::move(config)},
                                           "127.0.0.1", 0);
    return sim_->plc(0).port();
  }
  static ClientOptions options(ClientMode mode, const std::filesystem::path& trust) {
    ClientOptions o;
    o.mode = mode;
    o.tls.trust = trust;
    return o;
  }
  // Reads DB1.DBB0 over a fresh connection; throws ClientError when anything fails.
  static std::uint8_t read_one(const ClientOptions& options, std::uint16_t port) {
    S7TestClient client(options);
    client.connect(port);
    client.setup();
    return client.read({item(TransportSize::byte, 1, Area::data_block, 1, 0)})
        .items.at(0)
        .return_code;
  }

  TempDir dir_;
  ServerTlsFiles tls_;
  std::unique_ptr<ps::Simulator> sim_;
};

TEST_F(PlcsimTlsTest, MutualTlsNeedsACertificateFromTheClientCa) {
  scada::test::TestCa client_ca("client CA");
  scada::test::TestCa stranger_ca("stranger CA");
  const auto client_ca_file = dir_.file("client-ca.pem");
  scada::test::write_file(client_ca_file, client_ca.certificate_pem());
  ps::PlcConfig c = config(ps::SecurityMode::tls);
  c.tls.client_ca = client_ca_file;
  const std::uint16_t port = start(c);

  ClientOptions o = options(ClientMode::tls, tls_.ca_file);
  expect_connect_fails(o, port, "no client certificate");

  const auto stranger = stranger_ca.issue("HMI stranger");
  o.tls.certificate = dir_.file("stranger.crt");
  o.tls.key = dir_.file("stranger.key");
  scada::test::write_file(o.tls.certificate, stranger.certificate_pem);
  scada::test::write_file(o.tls.key, stranger.key_pem);
  expect_connect_fails(o, port, "a certificate from another CA");

  const auto hmi = client_ca.issue("HMI 1");
  o.tls.certificate = dir_.file("hmi.crt");
  o.tls.key = dir_.file("hmi.key");
  scada::test::write_file(o.tls.certificate, hmi.certificate_pem);
  scada::test::write_file(o.tls.key, hmi.key_pem);
  EXPECT_EQ(read_one(o, port), kOk);
}

TEST_F(PlcsimTlsTest, PskOnly) {
  const auto key = scada::test::random_key(32);
  ps::PlcConfig c;
  c.mode = ps::SecurityMode::tls;
  c.tls.psk_identity = "hmi-1";
  c.tls.psk_file = dir_.file("psk.txt");
  scada::test::write_file(c.tls.psk_file, scada::test::to_hex(key) + "\n");
  const std::uint16_t port = start(c);

  ClientOptions o;
  o.mode = ClientMode::tls;
  o.tls.psk_identity = "hmi-1";
  o.tls.psk_key = key;
  {
    S7TestClient client(o);
    client.connect(port);
    client.setup();
    EXPECT_EQ(
        client.read({item(TransportSize::byte, 1, Area::data_block, 1, 0)}).items.at(0).return_code,
        kOk);
    EXPECT_EQ(client.peer_certificate_sha256(), "");  // no certificate in a PSK handshake
  }
  ClientOptions wrong_key = o;
  wrong_key.tls.psk_key = scada::test::random_key(32);
  expect_connect_fails(wrong_key, port, "wrong PSK");
  ClientOptions wrong_identity = o;
  wrong_identity.tls.psk_identity = "hmi-2";
  expect_connect_fails(wrong_identity, port, "unknown PSK identity");
  expect_connect_fails(options(ClientMode::tls, tls_.ca_file), port, "certificates only");
}

TEST_F(PlcsimTlsTest, WrongCaFailsTheHandshake) {
  scada::test::TestCa other_ca("other CA");
  const auto other_ca_file = dir_.file("other-ca.pem");
  scada::test::write_file(other_ca_file, other_ca.certificate_pem());
  for (const auto mode : {ClientMode::tls, ClientMode::s7_secure}) {
    SCOPED_TRACE(scada::test::client_mode_name(mode));
    const std::uint16_t port = start(config(server_mode(mode)));
    S7TestClient client(options(mode, other_ca_file));
    try {
      client.connect(port);
      ADD_FAILURE() << "the handshake succeeded against the wrong CA";
    } catch (const ClientError& e) {
      EXPECT_EQ(e.failure(), ClientFailure::tls) << e.what();
      EXPECT_NE(std::string(e.what()).find("verif"), std::string::npos) << e.what();
    }
    // The same server with the right CA works: the failure was verification.
    EXPECT_EQ(read_one(options(mode, tls_.ca_file), port), kOk);
  }
}

TEST_F(PlcsimTlsTest, PinnedServerCertificate) {
  const std::uint16_t port = start(config(ps::SecurityMode::tls));
  EXPECT_EQ(read_one(options(ClientMode::tls, tls_.certificate_file), port), kOk);
  // A pin of another certificate from the same CA does not match.
  const auto other = tls_.ca.issue("PLC2");
  const auto other_file = dir_.file("PLC2.crt");
  scada::test::write_file(other_file, other.certificate_pem);
  try {
    read_one(options(ClientMode::tls, other_file), port);
    ADD_FAILURE() << "the handshake succeeded with the wrong pin";
  } catch (const ClientError& e) {
    EXPECT_EQ(e.failure(), ClientFailure::tls) << e.what();
  }
}

TEST_F(PlcsimTlsTest, ClientNeverConnectsUnverified) {
  const std::uint16_t port = start(config(ps::SecurityMode::tls));
  try {
    read_one(options(ClientMode::tls, {}), port);
    ADD_FAILURE() << "connected without trust anchors or PSK";
  } catch (const ClientError& e) {
    EXPECT_EQ(e.failure(), ClientFailure::tls) << e.what();
  }
}

TEST_F(PlcsimTlsTest, KeyLogFileForTshark) {
  const std::uint16_t port = start(config(ps::SecurityMode::tls));
  ClientOptions o = options(ClientMode::tls, tls_.ca_file);
  o.tls.keylog = dir_.file("keys.log");
  EXPECT_EQ(read_one(o, port), kOk);
  std::ifstream in(o.tls.keylog);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_NE(text.str().find("CLIENT_HANDSHAKE_TRAFFIC_SECRET "), std::string::npos) << text.str();
  EXPECT_NE(text.str().find("CLIENT_TRAFFIC_SECRET_0 "), std::string::npos) << text.str();
}

TEST_F(PlcsimTlsTest, S7SecureClientMeetsAPlcWithoutSecureCommunication) {
  ps::PlcConfig c;
  c.mode = ps::SecurityMode::none;
  const std::uint16_t port = start(c);
  S7TestClient client(options(ClientMode::s7_secure, tls_.ca_file));
  try {
    client.connect(port);
    ADD_FAILURE() << "InitSSL was accepted by a PLC in mode none";
  } catch (const ClientError& e) {
    EXPECT_EQ(e.failure(), ClientFailure::protocol) << e.what();
    EXPECT_NE(std::string(e.what()).find("0x05A9"), std::string::npos) << e.what();
  }
}

}  // namespace
