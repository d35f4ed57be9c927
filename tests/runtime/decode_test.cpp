// scadactl decode: the real captures against tshark's counts, then hand-built captures for the
// cases they do not contain (malformed PDUs, framing errors, S7CommPlus, non-TPKT streams).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "../support/hex.h"
#include "capture_builder.h"
#include "runtime/runtime.h"

namespace scada::runtime {
namespace {

using nlohmann::json;
using test::Bytes;
using test::hex;
using test::TcpSpec;

const std::string kPcaps = std::string(SCADA_TESTDATA_DIR) + "/pcaps/";

struct Decoded {
  int status = -1;
  std::vector<std::string> lines;
  std::string err;
  json summary() const { return json::parse(lines.back())["summary"]; }
  std::vector<json> pdus() const {  // every line but the summary
    std::vector<json> out;
    for (std::size_t i = 0; i + 1 < lines.size(); ++i) out.push_back(json::parse(lines[i]));
    return out;
  }
};

Decoded decode(const std::string& path, bool as_json = true) {
  std::ostringstream out, err;
  Decoded d;
  d.status = decode_command(DecodeOptions{path, as_json}, out, err);
  std::istringstream lines(out.str());
  for (std::string line; std::getline(lines, line);) d.lines.push_back(line);
  d.err = err.str();
  return d;
}

// ---- Real captures

// Expected counts per capture. s7comm is the README table. The others were obtained once with
// tshark 4.0 (Debian 12):
//   tshark -r FILE -Y s7comm -T fields -e s7comm.header.rosctr -e s7comm.param.func
// counting each comma-separated occurrence as one PDU (no frame of these captures holds more
// than one), ROSCTR 1/2/3/7 for job/ack/ack_data/userdata and functions 0x04/0x05 for
// read_var/write_var (requests and replies); and cotp from
//   tshark -r FILE -Y cotp -T fields -e cotp.type
// (one COTP TPDU per frame here, the empty EOT=0 "fast acknowledge" DTs included).
struct Expected {
  const char* file;
  std::size_t cotp, s7comm, job, ack, ack_data, userdata, read_var, write_var;
};

class RealCaptureDecode : public testing::TestWithParam<Expected> {};

TEST_P(RealCaptureDecode, CountsMatchTshark) {
  const Expected& e = GetParam();
  const auto d = decode(kPcaps + e.file);
  EXPECT_EQ(d.status, 0) << d.err;
  EXPECT_EQ(d.err, "");
  ASSERT_FALSE(d.lines.empty());
  const json s = d.summary();
  EXPECT_EQ(s["malformed"], 0);
  EXPECT_EQ(s["other_protocol"], 0);
  EXPECT_EQ(s["s7comm"], e.s7comm);
  EXPECT_EQ(s["cotp"], e.cotp);
  EXPECT_EQ(s["job"], e.job);
  EXPECT_EQ(s["ack"], e.ack);
  EXPECT_EQ(s["ack_data"], e.ack_data);
  EXPECT_EQ(s["userdata"], e.userdata);
  EXPECT_EQ(s["read_var"], e.read_var);
  EXPECT_EQ(s["write_var"], e.write_var);
  // One line per S7comm PDU plus the CR and CC of every connection.
  std::size_t s7_lines = 0;
  for (const auto& line : d.pdus()) s7_lines += line.contains("rosctr");
  EXPECT_EQ(s7_lines, e.s7comm);
}

INSTANTIATE_TEST_SUITE_P(
    Pcaps, RealCaptureDecode,
    testing::Values(Expected{"s7comm_varservice_libnodavedemo.pcap", 18, 16, 8, 0, 8, 0, 6, 8},
                    Expected{"s7comm_reading_plc_status.pcap", 218, 144, 1, 0, 1, 142, 0, 0},
                    Expected{"s7comm_reading_setting_plc_time.pcap", 41, 26, 1, 0, 1, 24, 0, 0},
                    Expected{"s7comm_downloading_block_db1.pcap", 78, 48, 9, 0, 9, 30, 0, 0},
                    Expected{"s7comm_program_blocklist_onlineview.pcap", 115, 70, 5, 0, 5, 60, 0,
                             0}));

TEST(RealCaptureDecode, SummaryLineIsExactlyTheAgreedObject) {
  const auto d = decode(kPcaps + "s7comm_varservice_libnodavedemo.pcap");
  EXPECT_EQ(
      d.lines.back(),
      R"({"summary": {"cotp": 18, "s7comm": 16, "job": 8, "ack": 0, "ack_data": 8, )"
      R"("userdata": 0, "read_var": 6, "write_var": 8, "other_protocol": 0, "malformed": 0}})");
}

TEST(RealCaptureDecode, LibnodaveLinesCarryTheFields) {
  const auto lines = decode(kPcaps + "s7comm_varservice_libnodavedemo.pcap").pdus();
  ASSERT_GE(lines.size(), 6u);
  EXPECT_EQ(lines[0], json::parse(R"({"frame":7,"src":"192.168.1.10:4258",)"
                                  R"("dst":"192.168.1.40:102","cotp":"CR",)"
                                  R"("calling_tsap":"0x0100","called_tsap":"0x0102",)"
                                  R"("tpdu_size":512})"));
  EXPECT_EQ(lines[1]["cotp"], "CC");
  EXPECT_EQ(lines[2]["rosctr"], "Job");
  EXPECT_EQ(lines[2]["function"], "Setup communication");
  EXPECT_EQ(lines[2]["pdu_size"], 1920);
  EXPECT_EQ(lines[3]["rosctr"], "Ack_Data");
  EXPECT_EQ(lines[3]["pdu_size"], 240);
  EXPECT_EQ(lines[3]["pdu_ref"], lines[2]["pdu_ref"]);
  EXPECT_EQ(lines[4]["function"], "Read Var");
  EXPECT_EQ(lines[4]["items"], 1);
  EXPECT_EQ(lines[5]["function"], "Read Var");
  EXPECT_EQ(lines[5]["return_codes"], "ff");
  EXPECT_FALSE(lines[5].contains("error_class"));
}

TEST(RealCaptureDecode, SzlIdsOnRequestsAndFirstPiecesOnly) {
  std::vector<json> szl;
  for (const auto& line : decode(kPcaps + "s7comm_reading_plc_status.pcap").pdus()) {
    if (line.contains("szl_id")) szl.push_back(line);
  }
  ASSERT_FALSE(szl.empty());
  // The first request asks for SZL 0x0132 index 0x0004, and its answer names the same list.
  EXPECT_EQ(szl[0]["szl_id"], 0x0132);
  EXPECT_EQ(szl[0]["szl_index"], 0x0004);
  EXPECT_EQ(szl[1]["szl_id"], 0x0132);
  EXPECT_EQ(szl[1]["src"], szl[0]["dst"]);
  // The SZL 0x0000 answer comes in two pieces; the second starts with records
  // (04 B5 05 B5 ...) and must not be read as SZL id 0x04B5.
  for (const auto& line : szl) EXPECT_NE(line["szl_id"], 0x04B5) << line.dump();
}

TEST(RealCaptureDecode, TextOutput) {
  const auto d = decode(kPcaps + "s7comm_varservice_libnodavedemo.pcap", false);
  ASSERT_EQ(d.lines.size(), 19u);  // CR, CC, 16 PDUs, summary
  EXPECT_EQ(d.lines[0],
            "frame 7  192.168.1.10:4258 -> 192.168.1.40:102  CR  calling_tsap=0x0100  "
            "called_tsap=0x0102  tpdu_size=512");
  EXPECT_EQ(d.lines.back(),
            "summary: cotp=18 s7comm=16 job=8 ack=0 ack_data=8 userdata=0 read_var=6 "
            "write_var=8 other_protocol=0 malformed=0");
}

// ---- Hand-built captures

Bytes tpkt(const Bytes& tpdu) {
  Bytes b = {0x03, 0x00};
  test::put_be16(b, std::uint32_t(tpdu.size() + 4));
  test::append(b, tpdu);
  return b;
}

Bytes dt(const Bytes& pdu, bool eot = true) {
  Bytes b = {0x02, 0xF0, std::uint8_t(eot ? 0x80 : 0x00)};
  test::append(b, pdu);
  return tpkt(b);
}

const Bytes kConnectRequest = hex("11 E0 00 00 00 01 00 C1 02 01 00 C2 02 01 02 C0 01 0A");
const Bytes kSetupJob = hex("32 01 0000 0001 0008 0000 | F0 00 0001 0001 01E0");
// Read Var reply, two items: 0x2A with a fill byte, then "object does not exist".
const Bytes kReadReply =
    hex("32 03 0000 0002 0002 000A 0000 | 04 02 | FF 04 0008 2A 00 | 0A 00 0000");
// Write Var reply, two items, with a header error.
const Bytes kWriteReplyWithError = hex("32 03 0000 0003 0002 0002 8104 | 05 02 | FF 05");

// Writes a capture of client (10.0.0.1:40000) to server segments, one payload each.
std::string write_capture(const std::string& name, const std::vector<Bytes>& payloads,
                          std::uint16_t server_port = 102) {
  test::PcapWriter pcap(101);
  std::uint32_t seq = 1000;
  pcap.add(test::ipv4_packet(
      TcpSpec{"10.0.0.1", 40000, "10.0.0.2", server_port, seq - 1, test::tcp_flags::syn, {}}));
  for (const auto& p : payloads) {
    pcap.add(test::ipv4_packet(TcpSpec{"10.0.0.1", 40000, "10.0.0.2", server_port, seq,
                                       test::tcp_flags::ack | test::tcp_flags::psh, p}));
    seq += std::uint32_t(p.size());
  }
  const std::string path = testing::TempDir() + "decode_test_" + name + ".pcap";
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(pcap.bytes().data()),
             std::streamsize(pcap.bytes().size()));
  return path;
}

TEST(HandBuiltDecode, ItemsReturnCodesAndHeaderErrors) {
  const auto d = decode(
      write_capture("items", {tpkt(kConnectRequest), dt(kReadReply), dt(kWriteReplyWithError)}));
  EXPECT_EQ(d.status, 0) << d.err;
  const auto lines = d.pdus();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["tpdu_size"], 1024);
  EXPECT_EQ(lines[1]["return_codes"], "ff,0a");
  EXPECT_EQ(lines[1]["items"], 2);
  EXPECT_EQ(lines[2]["return_codes"], "ff,05");  // 05: address out of range
  EXPECT_EQ(lines[2]["error_class"], 0x81);
  EXPECT_EQ(lines[2]["error_code"], 0x04);
  EXPECT_FALSE(lines[2]["error_text"].get<std::string>().empty());
  EXPECT_EQ(d.summary()["read_var"], 1);
  EXPECT_EQ(d.summary()["write_var"], 1);
  EXPECT_EQ(d.summary()["ack_data"], 2);
}

TEST(HandBuiltDecode, PduSplitOverDtsAndSegmentsWithFastAcknowledges) {
  const Bytes first(kSetupJob.begin(), kSetupJob.begin() + 7);
  const Bytes second(kSetupJob.begin() + 7, kSetupJob.end());
  Bytes stream = dt(first, false);
  test::append(stream, dt({}, false));  // fast acknowledge between the fragments
  test::append(stream, dt(second));
  const Bytes a(stream.begin(), stream.begin() + 5), b(stream.begin() + 5, stream.end() - 2),
      c(stream.end() - 2, stream.end());
  const auto d = decode(write_capture("split", {a, b, c, dt({}, false)}));
  EXPECT_EQ(d.status, 0) << d.err;
  const auto lines = d.pdus();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["frame"], 4);  // the frame that completed the PDU
  EXPECT_EQ(lines[0]["function"], "Setup communication");
  EXPECT_EQ(d.summary()["cotp"], 4);
  EXPECT_EQ(d.summary()["s7comm"], 1);
}

TEST(HandBuiltDecode, MalformedPdusAreCountedAndTheStreamGoesOn) {
  Bytes truncated(kReadReply.begin(), kReadReply.end() - 3);
  truncated[9] = std::uint8_t(truncated[9] - 3);  // data length agrees, the item does not
  const auto d = decode(write_capture(
      "malformed", {dt(truncated), dt(hex("99 01 02")), tpkt(hex("05 F0 80")), dt(kSetupJob)}));
  EXPECT_EQ(d.status, 1);
  const auto lines = d.pdus();
  ASSERT_EQ(lines.size(), 4u);
  for (std::size_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(lines[i].contains("malformed")) << lines[i].dump();
    EXPECT_NE(lines[i]["malformed"].get<std::string>().find(" at byte "), std::string::npos);
  }
  EXPECT_NE(lines[1]["malformed"].get<std::string>().find("0x99"), std::string::npos);
  EXPECT_EQ(lines[3]["function"], "Setup communication");
  EXPECT_EQ(d.summary()["malformed"], 3);
  EXPECT_EQ(d.summary()["s7comm"], 1);
}

TEST(HandBuiltDecode, TpktFramingErrorStopsTheStream) {
  const auto d =
      decode(write_capture("framing", {dt(kSetupJob), hex("04 00 00 07 02 F0 00"), dt(kSetupJob)}));
  EXPECT_EQ(d.status, 1);
  const auto lines = d.pdus();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["function"], "Setup communication");
  EXPECT_EQ(lines[1]["frame"], 3);
  EXPECT_NE(lines[1]["malformed"].get<std::string>().find("TPKT"), std::string::npos);
  EXPECT_EQ(d.summary()["malformed"], 1);
  EXPECT_EQ(d.summary()["s7comm"], 1);
}

TEST(HandBuiltDecode, S7CommPlusIsAnotherProtocolNotAnError) {
  const Bytes init_ssl =
      hex("72 01 00 12 31 00 00 05 B3 00 00 00 00 00 00 00 00 30 00 00 00 00 72 01 00 00");
  const auto d = decode(write_capture("plus", {dt(init_ssl)}));
  EXPECT_EQ(d.status, 0);
  const auto lines = d.pdus();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["other_protocol"], "S7CommPlus");
  EXPECT_EQ(d.summary()["other_protocol"], 1);
}

TEST(HandBuiltDecode, OnlyTpktStreamsAreDecoded) {
  const auto http = decode(write_capture("http", {test::text_bytes("GET / HTTP/1.1\r\n\r\n")}, 80));
  EXPECT_EQ(http.status, 0);
  EXPECT_EQ(http.lines.size(), 1u);
  EXPECT_EQ(http.summary()["malformed"], 0);

  const auto other_port = decode(write_capture("port", {dt(kSetupJob)}, 1102));
  EXPECT_EQ(other_port.status, 0);
  EXPECT_EQ(other_port.summary()["s7comm"], 1);
}

TEST(HandBuiltDecode, UnreadableFileExitsTwoNamingIt) {
  const std::string path = testing::TempDir() + "decode_test_not_a_capture.txt";
  std::ofstream(path) << "hello";
  const auto d = decode(path);
  EXPECT_EQ(d.status, 2);
  EXPECT_TRUE(d.lines.empty());
  EXPECT_NE(d.err.find(path), std::string::npos) << d.err;
  EXPECT_NE(d.err.find("not a pcap or pcapng file"), std::string::npos) << d.err;
  EXPECT_EQ(decode("/nonexistent/x.pcap").status, 2);
}

TEST(HandBuiltDecode, CaptureWarningsGoToErr) {
  const std::string path = write_capture("cut", {dt(kSetupJob), dt(kSetupJob)});
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  bytes.resize(bytes.size() - 5);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  const auto d = decode(path);
  EXPECT_EQ(d.status, 0);
  EXPECT_EQ(d.summary()["s7comm"], 1);
  EXPECT_NE(d.err.find("warning: " + path + ": offset"), std::string::npos) << d.err;
}

}  // namespace
}  // namespace scada::runtime
