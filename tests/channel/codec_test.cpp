// Byte-exact vectors for every PDU kind of the codec, from WIRE.md and from the real captures in
// ../shared/testdata/pcaps, plus round trips and malformed input.
#include <gtest/gtest.h>

#include <random>

#include "../support/hex.h"
#include "channel/channel.h"

namespace ch = scada::channel;
using scada::test::hex;
using scada::test::to_hex;

namespace {

ch::Pdu decode_ok(const std::string& h) {
  auto r = ch::decode_s7(hex(h));
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().to_string());
  return r.ok() ? r.value() : ch::Pdu{};
}

ch::CotpTpdu cotp_ok(const std::string& h) {
  auto r = ch::decode_cotp(hex(h));
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().to_string());
  return r.ok() ? r.value() : ch::CotpTpdu{};
}

// Every proper prefix of a valid PDU is an error, never a crash or an over-read.
void expect_prefixes_rejected(const std::vector<std::uint8_t>& bytes) {
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    std::vector<std::uint8_t> prefix(bytes.begin(), bytes.begin() + std::ptrdiff_t(n));
    auto r = ch::decode_s7(prefix);
    EXPECT_FALSE(r.ok()) << "prefix of " << n << " bytes decoded";
    if (!r.ok()) {
      EXPECT_LE(r.error().offset, n);
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// TPKT

TEST(Tpkt, WrapsWithLengthIncludingHeader) {
  EXPECT_EQ(to_hex(ch::tpkt_wrap(hex("02f000"))), "0300000702f000");
}

TEST(Tpkt, ReassemblesFramesFedOneByteAtATime) {
  auto stream = hex("0300000702f000 0300000902f080aabb 0300000702f000");
  ch::TpktReassembler r;
  std::vector<std::string> frames;
  ch::Bytes f;
  for (auto b : stream) {
    ASSERT_FALSE(r.feed(ch::ByteView(&b, 1)));
    while (r.next(f)) frames.push_back(to_hex(f));
  }
  EXPECT_EQ(frames, (std::vector<std::string>{"02f000", "02f080aabb", "02f000"}));
  EXPECT_EQ(r.buffered(), 0u);
}

TEST(Tpkt, SeveralFramesInOneChunkAndOneSplitOverChunks) {
  ch::TpktReassembler r;
  ch::Bytes f;
  ASSERT_FALSE(r.feed(hex("0300000702f000 0300000902f080")));
  ASSERT_TRUE(r.next(f));
  EXPECT_EQ(to_hex(f), "02f000");
  EXPECT_FALSE(r.next(f));
  EXPECT_EQ(r.buffered(), 7u);
  ASSERT_FALSE(r.feed(hex("aabb")));
  ASSERT_TRUE(r.next(f));
  EXPECT_EQ(to_hex(f), "02f080aabb");
}

TEST(Tpkt, RejectsBadVersionWithStreamOffset) {
  ch::TpktReassembler r;
  auto e = r.feed(hex("0300000702f000 0400000702f000"));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind, ch::WireErrorKind::bad_value);
  EXPECT_EQ(e->offset, 7u);
  EXPECT_NE(e->reason.find("version"), std::string::npos);
  EXPECT_TRUE(r.feed(hex("00")));  // the stream stays failed
}

TEST(Tpkt, RejectsShortAndOversizeLengths) {
  ch::TpktReassembler a;
  auto e = a.feed(hex("03000006"));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind, ch::WireErrorKind::bad_length);
  ch::TpktReassembler b(1024);
  e = b.feed(hex("03000405"));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind, ch::WireErrorKind::too_large);
  EXPECT_NE(e->reason.find("1029"), std::string::npos);
}

TEST(Tpkt, OffsetsStayCorrectAfterFramesWereConsumed) {
  ch::TpktReassembler r;
  ch::Bytes f;
  ASSERT_FALSE(r.feed(hex("0300000702f000")));
  ASSERT_TRUE(r.next(f));
  auto e = r.feed(hex("0300000702f000 ff"));
  EXPECT_FALSE(e);
  e = r.feed(hex("000007"));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->offset, 14u);
}

// ---------------------------------------------------------------------------------------------
// COTP

TEST(Cotp, SecureConnectRequestOfWireMd) {
  ch::CotpConnect cr;
  cr.src_ref = 0x0001;
  cr.tpdu_size_code = 0x0A;
  cr.calling = ch::Tsap::from_u16(0x0600);
  cr.called = ch::Tsap::from_text("SIMATIC-ROOT-HMI");
  const std::string expected =
      "1fe0 0000 0001 00 c0010a c1020600 c21053494d415449432d524f4f542d484d49";
  EXPECT_EQ(to_hex(ch::encode_cotp(cr)), to_hex(hex(expected)));
  auto back = std::get<ch::CotpConnect>(cotp_ok(expected));
  EXPECT_EQ(back, cr);
  EXPECT_EQ(back.tpdu_size(), 1024u);
  EXPECT_EQ(back.called->to_string(), "\"SIMATIC-ROOT-HMI\"");
  EXPECT_EQ(back.calling->to_string(), "0x0600");
}

TEST(Cotp, ConnectParametersInAnyOrderUnknownSkipped) {
  // CC with called, an unknown parameter 0xC6 (2 bytes), calling, TPDU size 512.
  auto c =
      std::get<ch::CotpConnect>(cotp_ok("15 d0 0001 4411 00 c2020102 c602abcd c1020100 c00109"));
  EXPECT_TRUE(c.confirm);
  EXPECT_EQ(c.dst_ref, 0x0001);
  EXPECT_EQ(c.src_ref, 0x4411);
  EXPECT_EQ(c.calling->as_u16(), 0x0100);
  EXPECT_EQ(c.called->as_u16(), 0x0102);
  EXPECT_EQ(c.tpdu_size(), 512u);
}

TEST(Cotp, ConnectRequestFromLibnodaveCapture) {
  // s7comm_varservice_libnodavedemo.pcap, frame 4 (TPDU 512, TSAPs 0x0100 -> 0x0102).
  auto c = std::get<ch::CotpConnect>(cotp_ok("11e00000000100c1020100c2020102c0010a"));
  EXPECT_FALSE(c.confirm);
  EXPECT_EQ(c.tpdu_size(), 1024u);
  EXPECT_EQ(ch::Tsap::remote(1, 0, 2), *c.called);
  EXPECT_EQ(to_hex(ch::encode_cotp(c)), "11e00000000100c0010ac1020100c2020102");
}

TEST(Cotp, DataDisconnectAndError) {
  auto dt = std::get<ch::CotpData>(cotp_ok("02f080 3201"));
  EXPECT_TRUE(dt.eot);
  EXPECT_EQ(to_hex(dt.payload), "3201");
  auto ack = std::get<ch::CotpData>(cotp_ok("02f000"));
  EXPECT_FALSE(ack.eot);
  EXPECT_TRUE(ack.payload.empty());

  auto dr = std::get<ch::CotpDisconnect>(cotp_ok("06 80 0001 0002 80"));
  EXPECT_FALSE(dr.confirm);
  EXPECT_EQ(dr.reason, 0x80);
  EXPECT_EQ(to_hex(ch::encode_cotp(dr)),
            "068000010002"
            "80");
  auto dc = std::get<ch::CotpDisconnect>(cotp_ok("05 c0 0001 0002"));
  EXPECT_TRUE(dc.confirm);
  EXPECT_EQ(to_hex(ch::encode_cotp(dc)), "05c000010002");
  auto er = std::get<ch::CotpReject>(cotp_ok("04 70 0001 03"));
  EXPECT_EQ(er.cause, 3);
  EXPECT_EQ(to_hex(ch::encode_cotp(er)), "0470000103");
  EXPECT_STREQ(ch::cotp_name(er), "ER");
}

TEST(Cotp, MalformedTpdusNameTheProblem) {
  struct Case {
    const char* bytes;
    ch::WireErrorKind kind;
    std::size_t offset;
    const char* words;
  };
  const Case cases[] = {
      {"", ch::WireErrorKind::truncated, 0, "length indicator"},
      {"00f0", ch::WireErrorKind::bad_value, 0, "length indicator 0"},
      {"09f080", ch::WireErrorKind::bad_length, 0, "exceeds"},
      {"02e000", ch::WireErrorKind::bad_length, 0, "at least 6"},
      {"03f08000", ch::WireErrorKind::bad_value, 0, "DT length indicator 3"},
      {"021000", ch::WireErrorKind::bad_value, 1, "not one of"},
      {"09e00000000100c10501", ch::WireErrorKind::bad_length, 7, "runs past"},
      {"09e00000000100c00101", ch::WireErrorKind::bad_value, 9, "TPDU size code"},
      {"08e00000000100c100", ch::WireErrorKind::bad_length, 7, "TSAP length 0"},
      {"05c000010002ff", ch::WireErrorKind::bad_length, 6, "unexpected bytes"},
  };
  for (const auto& c : cases) {
    auto r = ch::decode_cotp(hex(c.bytes));
    ASSERT_FALSE(r.ok()) << c.bytes;
    EXPECT_EQ(r.error().kind, c.kind) << c.bytes;
    EXPECT_EQ(r.error().offset, c.offset) << c.bytes << ": " << r.error().to_string();
    EXPECT_NE(r.error().reason.find(c.words), std::string::npos) << r.error().reason;
  }
}

TEST(CotpReassembler, JoinsDtsAndDropsFastAcknowledge) {
  ch::CotpReassembler r;
  auto a = r.add(ch::CotpData{false, 0, hex("3207")});
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(a.value());
  auto ack = r.add(ch::CotpData{false, 0, {}});
  ASSERT_TRUE(ack.ok());
  EXPECT_FALSE(ack.value());
  auto b = r.add(ch::CotpData{true, 0, hex("0000")});
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(b.value());
  EXPECT_EQ(to_hex(*b.value()), "32070000");
  EXPECT_TRUE(r.idle());
  // A lone fast acknowledge is simply dropped.
  auto lone = r.add(ch::CotpData{false, 0, {}});
  ASSERT_TRUE(lone.ok());
  EXPECT_FALSE(lone.value());
}

TEST(CotpReassembler, BoundsSizeAndFragmentCount) {
  ch::CotpReassembler bysize(8, 64);
  ASSERT_TRUE(bysize.add(ch::CotpData{false, 0, ch::Bytes(6, 1)}).ok());
  auto e = bysize.add(ch::CotpData{true, 0, ch::Bytes(3, 1)});
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().kind, ch::WireErrorKind::too_large);
  ch::CotpReassembler bycount(1000, 3);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(bycount.add(ch::CotpData{false, 0, {1}}).ok());
  EXPECT_FALSE(bycount.add(ch::CotpData{true, 0, {1}}).ok());
  ch::CotpReassembler empty;
  EXPECT_FALSE(empty.add(ch::CotpData{true, 0, {}}).ok());
}

TEST(Cotp, FrameDtKeepsEveryTpktWithinTheTpduSize) {
  ch::Bytes pdu(2500);
  for (std::size_t i = 0; i < pdu.size(); ++i) pdu[i] = std::uint8_t(i);
  auto frames = ch::frame_dt(pdu, 1024);
  ASSERT_EQ(frames.size(), 3u);
  ch::TpktReassembler tpkt;
  ch::CotpReassembler cotp;
  std::optional<ch::Bytes> joined;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    EXPECT_LE(frames[i].size(), 4u + 1024u);
    ASSERT_FALSE(tpkt.feed(frames[i]));
    ch::Bytes tpdu;
    ASSERT_TRUE(tpkt.next(tpdu));
    auto dt = std::get<ch::CotpData>(cotp_ok(to_hex(tpdu)));
    EXPECT_EQ(dt.eot, i + 1 == frames.size());
    auto r = cotp.add(dt);
    ASSERT_TRUE(r.ok());
    if (r.value()) joined = r.value();
  }
  ASSERT_TRUE(joined);
  EXPECT_EQ(*joined, pdu);
}

// ---------------------------------------------------------------------------------------------
// S7comm: vectors from s7comm_varservice_libnodavedemo.pcap (frame numbers in the names)

TEST(S7comm, SetupCommunicationRequestFrame9) {
  const std::string bytes = "320100 00ffff 0008 0000 f000 0001 0001 0780";
  ch::Pdu p = decode_ok(bytes);
  EXPECT_EQ(p.header.rosctr, ch::Rosctr::job);
  EXPECT_EQ(p.header.pdu_ref, 0xFFFF);
  EXPECT_EQ(std::get<ch::SetupCommunication>(p.body), (ch::SetupCommunication{1, 1, 1920}));
  EXPECT_EQ(to_hex(ch::encode_s7(p)), to_hex(hex(bytes)));
  EXPECT_EQ(ch::function_of(p), 0xF0);
}

TEST(S7comm, SetupCommunicationReplyFrame10) {
  const std::string bytes = "320300 00ffff 0008 0000 0000 f000 0001 0001 00f0";
  ch::Pdu p = decode_ok(bytes);
  EXPECT_EQ(p.header.rosctr, ch::Rosctr::ack_data);
  EXPECT_EQ(p.header.size(), 12u);
  EXPECT_EQ(std::get<ch::SetupCommunication>(p.body).pdu_size, 240);
  EXPECT_EQ(to_hex(ch::encode_s7(p)), to_hex(hex(bytes)));
}

TEST(S7comm, ReadVarRequestAndReplyFrames13And14) {
  const std::string req = "320100 000001 000e 0000 0401 120a10 02 0010 0000 83 000000";
  ch::Pdu p = decode_ok(req);
  const auto& items = std::get<ch::ReadVarRequest>(p.body).items;
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0], (ch::VarItem{ch::TransportSize::byte, 16, 0, ch::Area::flags, 0}));
  EXPECT_EQ(to_hex(ch::encode_s7(p)), to_hex(hex(req)));

  const std::string reply =
      "320300 000001 0002 0014 0000 0401 ff 04 0080 a9100000000001010000000000000000";
  ch::Pdu r = decode_ok(reply);
  const auto& data = std::get<ch::ReadVarResponse>(r.body).items;
  ASSERT_EQ(data.size(), 1u);
  EXPECT_EQ(data[0].return_code, 0xFF);
  EXPECT_EQ(data[0].data.size(), 16u);  // LEN 0x80 is in bits
  EXPECT_EQ(to_hex(ch::encode_s7(r)), to_hex(hex(reply)));
  expect_prefixes_rejected(hex(reply));
}

TEST(S7comm, WriteVarRequestAndReplyFrames15And16) {
  const std::string req =
      "320100 000002 000e 0008 0501 120a10 02 0004 0000 83 000000 | 00 04 0020 a9100001";
  ch::Pdu p = decode_ok(req);
  const auto& w = std::get<ch::WriteVarRequest>(p.body);
  ASSERT_EQ(w.items.size(), 1u);
  ASSERT_EQ(w.data.size(), 1u);
  EXPECT_EQ(to_hex(w.data[0].data), "a9100001");
  EXPECT_EQ(to_hex(ch::encode_s7(p)), to_hex(hex(req)));
  const std::string reply = "320300 000002 0002 0001 0000 0501 ff";
  ch::Pdu r = decode_ok(reply);
  EXPECT_EQ(std::get<ch::WriteVarResponse>(r.body).return_codes, (ch::Bytes{0xFF}));
  EXPECT_EQ(to_hex(ch::encode_s7(r)), to_hex(hex(reply)));
  expect_prefixes_rejected(hex(req));
}

TEST(S7comm, ReadReplyWithFillBytesErrorItemsAndEveryDataSize) {
  ch::ReadVarResponse resp;
  resp.items = {
      {0xFF, ch::DataSize::bit, {0x01}},                 // bit: LEN 1 (bits), then fill
      {0x0A, ch::DataSize::null, {}},                    // object does not exist, no data
      {0xFF, ch::DataSize::byte_word_dword, {1, 2, 3}},  // odd: fill follows
      {0x05, ch::DataSize::null, {}},                    // out of range
      {0xFF, ch::DataSize::integer, {0x12, 0x34}},
      {0xFF, ch::DataSize::real, {0x3f, 0x8c, 0xcc, 0xcd}},  // LEN in bytes
      {0x03, ch::DataSize::null, {}},
      {0x06, ch::DataSize::null, {}},
      {0x07, ch::DataSize::null, {}},
      {0x01, ch::DataSize::null, {}},
      {0xFF, ch::DataSize::octet_string, {9, 8, 7}},  // last item: no fill
  };
  ch::Pdu pdu{ch::Header{ch::Rosctr::ack_data, 0, 7}, resp};
  auto bytes = ch::encode_s7(pdu);
  EXPECT_EQ(to_hex(bytes), to_hex(hex("320300000007 0002 003b 0000 040b"
                                      "ff030001 01 00"
                                      "0a000000"
                                      "ff040018 010203 00"
                                      "05000000"
                                      "ff050010 1234"
                                      "ff070004 3f8ccccd"
                                      "03000000 06000000 07000000 01000000"
                                      "ff090003 090807")));
  ch::Pdu back = decode_ok(to_hex(bytes));
  EXPECT_EQ(back.header.data_length, 0x3b);
  back.header.param_length = back.header.data_length = 0;
  EXPECT_EQ(back, pdu);
  expect_prefixes_rejected(bytes);
}

TEST(S7comm, ErrorItemsCarryNoDataWhateverLenSays) {
  // A PLC answering "object does not exist" with LEN 0x0010 still sends no data bytes.
  ch::Pdu p = decode_ok("320300000001 0002 0009 0000 0402 0a000010 ff040008 2a");
  const auto& items = std::get<ch::ReadVarResponse>(p.body).items;
  ASSERT_EQ(items.size(), 2u);
  EXPECT_TRUE(items[0].data.empty());
  EXPECT_EQ(items[1].data, (ch::Bytes{0x2a}));
}

TEST(S7comm, AckWithErrorClassAndCode) {
  const std::string bytes = "320200 000005 0000 0000 8104";
  ch::Pdu p = decode_ok(bytes);
  EXPECT_EQ(p.header.rosctr, ch::Rosctr::ack);
  EXPECT_EQ(p.header.error(), 0x8104);
  EXPECT_TRUE(std::holds_alternative<ch::NoBody>(p.body));
  EXPECT_EQ(to_hex(ch::encode_s7(p)), to_hex(hex(bytes)));
  EXPECT_EQ(ch::s7_error_text(0x8500), "wrong PDU size (PDU too large)");
  EXPECT_EQ(ch::s7_error_text(0xD209), "block not found");
}

TEST(S7comm, RefusedReadEchoesItsFunction) {
  const std::string bytes = "320300 000006 0002 0000 8500 0401";
  ch::Pdu p = decode_ok(bytes);
  EXPECT_EQ(p.header.error(), 0x8500);
  EXPECT_EQ(ch::function_of(p), 0x04);
  EXPECT_EQ(to_hex(ch::encode_s7(p)), to_hex(hex(bytes)));
}

TEST(S7comm, MalformedPdusNameTheProblem) {
  struct Case {
    const char* bytes;
    std::size_t offset;
    const char* words;
  };
  const Case cases[] = {
      {"72", 0, "protocol id 0x72"},
      {"3204000000010000 0000", 1, "ROSCTR 0x04"},
      {"320100000001 0002 0000 04", 6, "announces"},
      {"320100000001 0003 0000 040100", 11, "need a 14-byte parameter"},
      {"320100000001 000e 0000 0401 130a10020001000084000000", 12, "expected 0x12 0x0A"},
      {"320100000001 000e 0000 0401 120ab0020001000084000000", 14, "not S7ANY"},
      {"320300000001 0002 0006 0000 0401 ff04000801 00", 19, "bytes after"},
      {"320300000001 0002 0004 0000 0401 ff040009", 16, "whole number"},
      {"320300000001 0002 0004 0000 0401 ff0e0008", 15, "transport size 0x0E"},
      {"320300000001 0002 0001 0000 0502 ff", 14, "return codes"},
      {"320100000001 0008 0002 f000000100010780 0000", 18, "data bytes"},
      {"320700000001 0008 0000 0001120511440100", 13, "userdata parameter length"},
      {"320700000001 0008 0004 0001120411440100 ff090005", 20, "userdata data length 5"},
      {"320700000001 000c 0000 000112081284010100020000", 19, "last-data-unit"},
  };
  for (const auto& c : cases) {
    auto r = ch::decode_s7(hex(c.bytes));
    ASSERT_FALSE(r.ok()) << c.bytes;
    EXPECT_EQ(r.error().offset, c.offset) << c.bytes << ": " << r.error().to_string();
    EXPECT_NE(r.error().reason.find(c.words), std::string::npos) << r.error().to_string();
  }
}

// ---------------------------------------------------------------------------------------------
// Userdata / SZL: vectors from s7comm_reading_plc_status.pcap

TEST(Szl, RequestFrame13AndResponseFrame14) {
  const std::string req = "320700000300 0008 0008 0001120411440100 ff0900040132 0004";
  ch::Pdu p = decode_ok(req);
  EXPECT_EQ(ch::szl_id_of(p)->id, 0x0132);
  EXPECT_EQ(ch::szl_id_of(p)->index, 0x0004);
  EXPECT_EQ(to_hex(ch::encode_s7(ch::szl_request(0x0300, 0, {0x0132, 0x0004}))), to_hex(hex(req)));

  const std::string resp =
      "320700000300000c0034000112081284010100000000ff090030013200040028000100040001000000010002"
      "000000005656bc04a3d58401d6b202000000000000000000000000000000";
  ch::Pdu r = decode_ok(resp);
  EXPECT_EQ(to_hex(ch::encode_s7(r)), resp);
  const auto& u = std::get<ch::Userdata>(r.body);
  EXPECT_EQ(u.param.type, 8);
  EXPECT_TRUE(u.param.long_form);
  EXPECT_FALSE(u.param.more_follows);
  ch::SzlAssembler a;
  auto list = a.add(u);
  ASSERT_TRUE(list.ok());
  ASSERT_TRUE(list.value());
  EXPECT_EQ(list.value()->id, 0x0132);
  EXPECT_EQ(list.value()->record_length, 40);
  EXPECT_EQ(list.value()->records.size(), 1u);
}

TEST(Szl, ContinuationFrames17To20) {
  const std::string first =
      "320700000400000c00da000112081284010105010000ff0900d6000000000002007000000f000002001101110f"
      "11001201120f120013011300140f1400150115001701170f17001801180f1800190f19001a0f1a001b0f1b001c"
      "011c0f1c00210a210f21022200230f2300240124042405240025012502250f25013101320232003601360f3600"
      "3701370f370038013802380f380139003a0f3a007401740f7405910a910c910d910092029206920f9200940194"
      "0294069407940f94009501950f9506960c960c970d97019a029a0f9a0c9b009c019c029c039c0f9c00a001a00f"
      "a000b100b200b300b401b502b503b5";
  const std::string ask = "320700000500000c00040001120812440101000000000a000000";
  const std::string rest =
      "320700000500000c0016000112081284010105000000ff09001204b505b506b507b508b501b602b603b604b6";
  ch::Pdu p1 = decode_ok(first);
  const auto& u1 = std::get<ch::Userdata>(p1.body);
  EXPECT_TRUE(u1.param.more_follows);
  EXPECT_EQ(u1.param.sequence, 1);
  EXPECT_EQ(u1.param.data_unit_ref, 5);
  ch::Pdu p2 = decode_ok(ask);
  EXPECT_EQ(to_hex(ch::encode_s7(p2)), ask);
  EXPECT_EQ(std::get<ch::Userdata>(p2.body).data.return_code, 0x0A);
  // Our follow-up request carries the response's sequence number and data unit reference.
  EXPECT_EQ(to_hex(ch::encode_s7(ch::szl_continue(0x0500, u1.param))),
            "320700000500000c00040001120812440101050000000a000000");

  ch::SzlAssembler a;
  auto partial = a.add(u1);
  ASSERT_TRUE(partial.ok());
  EXPECT_FALSE(partial.value());
  auto done = a.add(std::get<ch::Userdata>(decode_ok(rest).body));
  ASSERT_TRUE(done.ok());
  ASSERT_TRUE(done.value());
  const ch::SzlList& list = *done.value();
  EXPECT_EQ(list.id, 0x0000);
  EXPECT_EQ(list.records.size(), 0x70u);
  EXPECT_EQ(to_hex(list.records.back()), "04b6");
}

// A hostile PLC cannot keep a reader asking for continuations forever: a piece announcing more
// with no data, or more pieces than the limit, ends the answer with an error.
TEST(Szl, AnAnswerThatNeverEndsIsRefused) {
  ch::Userdata piece;
  piece.param.type = 8;
  piece.param.group = 4;
  piece.param.subfunction = 1;
  piece.param.more_follows = true;
  piece.data.return_code = 0xFF;
  {
    ch::SzlAssembler a;
    auto empty = a.add(piece);
    ASSERT_FALSE(empty.ok());
    EXPECT_NE(empty.error().to_string().find("announces more but carries no data"),
              std::string::npos)
        << empty.error().to_string();
  }
  piece.data.payload = {0x00};
  ch::SzlAssembler a(65536, 8);
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(a.add(piece).ok()) << i;
  auto ninth = a.add(piece);
  ASSERT_FALSE(ninth.ok());
  EXPECT_NE(ninth.error().to_string().find("more than 8 pieces"), std::string::npos)
      << ninth.error().to_string();
}

TEST(Szl, ModuleIdentification0011Frame59ByIndex) {
  const std::string resp =
      "320700001100000c007c000112081284010200000000ff09007800110000001c0004000136455337203135312d"
      "38414230312d304142302000c000030001000636455337203135312d38414230312d304142302000c000030001"
      "0007202020202020202020202020202020202020202000c0560302060081426f6f74204c6f6164657220202020"
      "2020202020000041200909";
  ch::SzlAssembler a;
  auto list = a.add(std::get<ch::Userdata>(decode_ok(resp).body));
  ASSERT_TRUE(list.ok());
  ASSERT_TRUE(list.value());
  auto m = ch::parse_szl_0011(*list.value());
  ASSERT_TRUE(m.ok()) << m.error().to_string();
  EXPECT_EQ(m->order_number, "6ES7 151-8AB01-0AB0");
  EXPECT_EQ(m->firmware, "V3.2.6");
  // Records are found by index, not by position: reversed order gives the same answer.
  ch::SzlList reversed = *list.value();
  std::reverse(reversed.records.begin(), reversed.records.end());
  auto m2 = ch::parse_szl_0011(reversed);
  ASSERT_TRUE(m2.ok());
  EXPECT_EQ(m2->order_number, m->order_number);
  EXPECT_EQ(m2->firmware, m->firmware);
}

TEST(Szl, CpuMode0424) {
  const std::string resp =
      "320700000700000c0020000112081284010100000000ff09001c04240000001400015142ff080000000000000000"
      "1408201200495484";
  ch::SzlAssembler a;
  auto list = a.add(std::get<ch::Userdata>(decode_ok(resp).body));
  ASSERT_TRUE(list.ok() && list.value());
  EXPECT_EQ(*ch::parse_szl_0424(*list.value()), ch::CpuMode::run);
  ch::SzlList stop = *list.value();
  stop.records[0][3] = 0x04;
  EXPECT_EQ(*ch::parse_szl_0424(stop), ch::CpuMode::stop);
  EXPECT_FALSE(ch::parse_szl_0011(stop).ok());  // wrong list id
}

TEST(Szl, ComponentIdentification001CRoundTripsThroughPiecesAtEveryPduSize) {
  ch::SzlList list{0x001C, 0x0000, 34, {}};
  auto record = [](std::uint16_t index, const std::string& text) {
    ch::Bytes r(34, 0x00);
    r[0] = std::uint8_t(index >> 8);
    r[1] = std::uint8_t(index);
    std::copy(text.begin(), text.end(), r.begin() + 2);
    return r;
  };
  list.records = {record(7, "CPU 1516-3 PN/DP"),
                  record(1, "Station A"),
                  record(5, "S C-X4U421302019"),
                  record(2, "PLC_1"),
                  record(3, ""),
                  record(4, "")};
  for (std::size_t pdu : {64u, 100u, 240u, 480u, 960u}) {
    auto pieces = ch::szl_responses(0x0100, 3, 9, list, pdu);
    ch::SzlAssembler a;
    std::optional<ch::SzlList> got;
    for (std::size_t i = 0; i < pieces.size(); ++i) {
      auto bytes = ch::encode_s7(pieces[i]);
      EXPECT_LE(bytes.size(), pdu);
      auto decoded = ch::decode_s7(bytes);
      ASSERT_TRUE(decoded.ok()) << decoded.error().to_string();
      auto r = a.add(std::get<ch::Userdata>(decoded->body));
      ASSERT_TRUE(r.ok()) << r.error().to_string();
      EXPECT_EQ(r.value().has_value(), i + 1 == pieces.size());
      if (r.value()) got = r.value();
    }
    ASSERT_TRUE(got);
    EXPECT_EQ(got->records, list.records);
    auto c = ch::parse_szl_001c(*got);
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->station_name, "Station A");
    EXPECT_EQ(c->plc_name, "PLC_1");
    EXPECT_EQ(c->serial_number, "S C-X4U421302019");
    EXPECT_EQ(c->module_type, "CPU 1516-3 PN/DP");
    if (pdu <= 100) {
      EXPECT_GT(pieces.size(), 1u);
    }
  }
}

TEST(Szl, RefusalsAndBadListsAreErrors) {
  ch::Userdata u = std::get<ch::Userdata>(ch::szl_request(1, 0, {0x0011, 0}).body);
  ch::SzlAssembler a;
  EXPECT_FALSE(a.add(u).ok());  // a request, not a response
  u.param.type = 8;
  u.param.long_form = true;
  u.param.error = 0xD401;
  auto r = a.add(u);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().reason.find("invalid SZL id"), std::string::npos);
  u.param.error = 0;
  u.data.payload = ch::Bytes{0x00, 0x11, 0x00, 0x00, 0x00, 0x1c, 0x00, 0x05, 0x01};
  r = a.add(u);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().reason.find("need 140 bytes"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// InitSSL (WIRE.md §5)

TEST(InitSsl, RequestAndReplyVectorsOfWireMd) {
  EXPECT_EQ(to_hex(ch::encode_init_ssl_request()),
            to_hex(hex("72010012 310000 05b3 00000000 30 0000000000000000 72010000")));
  EXPECT_EQ(to_hex(ch::encode_init_ssl_response()),
            to_hex(hex("72010010 320000 05b3 00000000 70 000000000000 72010000")));
  auto req = ch::decode_init_ssl(ch::encode_init_ssl_request());
  ASSERT_TRUE(req.ok());
  EXPECT_FALSE(req->response);
  auto rep = ch::decode_init_ssl(ch::encode_init_ssl_response());
  ASSERT_TRUE(rep.ok());
  EXPECT_TRUE(rep->accepted());
  auto refused = ch::decode_init_ssl(ch::encode_init_ssl_response(0x05A9));
  ASSERT_TRUE(refused.ok());
  EXPECT_FALSE(refused->accepted());
  EXPECT_EQ(refused->function, 0x05A9);
  auto failed = ch::decode_init_ssl(ch::encode_init_ssl_response(0x05B3, 0x11));
  ASSERT_TRUE(failed.ok());
  EXPECT_FALSE(failed->accepted());
}

TEST(InitSsl, MalformedFrames) {
  EXPECT_FALSE(ch::decode_init_ssl(hex("320100")).ok());
  auto len = ch::decode_init_ssl(hex("72010020 320000 05b3 00000000 70 000000000000 72010000"));
  ASSERT_FALSE(len.ok());
  EXPECT_EQ(len.error().offset, 2u);
  auto trailer = ch::decode_init_ssl(hex("72010010 320000 05b3 00000000 70 000000000000 72020000"));
  ASSERT_FALSE(trailer.ok());
  EXPECT_NE(trailer.error().reason.find("trailer"), std::string::npos);
  auto op = ch::decode_init_ssl(hex("72010005 3300 0005b3 72010000"));
  ASSERT_FALSE(op.ok());
  EXPECT_NE(op.error().reason.find("opcode"), std::string::npos);
  auto request = ch::encode_init_ssl_request();
  for (std::size_t n = 0; n < request.size(); ++n) {
    EXPECT_FALSE(ch::decode_init_ssl(ch::ByteView(request.data(), n)).ok());
  }
}

// ---------------------------------------------------------------------------------------------
// Round trips and random mutation

TEST(S7comm, RandomPdusRoundTrip) {
  std::mt19937 rng(20261122);
  auto pick = [&](int n) { return int(rng() % unsigned(n)); };
  const ch::Area areas[] = {ch::Area::inputs,     ch::Area::outputs, ch::Area::flags,
                            ch::Area::data_block, ch::Area::timers,  ch::Area::counters};
  for (int round = 0; round < 500; ++round) {
    ch::Pdu pdu;
    pdu.header.pdu_ref = std::uint16_t(rng());
    const int n = 1 + pick(20);
    switch (pick(4)) {
      case 0: {
        ch::ReadVarRequest r;
        for (int i = 0; i < n; ++i) {
          r.items.push_back({ch::TransportSize::byte, std::uint16_t(1 + pick(200)),
                             std::uint16_t(pick(100)), areas[pick(6)],
                             std::uint32_t(rng() & 0xFFFFFF)});
        }
        pdu.body = r;
        break;
      }
      case 1: {
        pdu.header.rosctr = ch::Rosctr::ack_data;
        ch::ReadVarResponse r;
        for (int i = 0; i < n; ++i) {
          if (pick(4) == 0) {
            r.items.push_back({0x0A, ch::DataSize::null, {}});
          } else {
            r.items.push_back({0xFF,
                               pick(2) ? ch::DataSize::byte_word_dword : ch::DataSize::octet_string,
                               ch::Bytes(std::size_t(1 + pick(9)), std::uint8_t(rng()))});
          }
        }
        pdu.body = r;
        break;
      }
      case 2: {
        ch::WriteVarRequest w;
        for (int i = 0; i < n; ++i) {
          const std::size_t len = std::size_t(1 + pick(7));
          w.items.push_back({ch::TransportSize::byte, std::uint16_t(len), 1, ch::Area::data_block,
                             std::uint32_t(8 * pick(1000))});
          w.data.push_back(
              {0x00, ch::DataSize::byte_word_dword, ch::Bytes(len, std::uint8_t(rng()))});
        }
        pdu.body = w;
        break;
      }
      default: {
        pdu.header.rosctr = ch::Rosctr::ack_data;
        ch::WriteVarResponse w;
        for (int i = 0; i < n; ++i) w.return_codes.push_back(pick(2) ? 0xFF : 0x05);
        pdu.body = w;
        break;
      }
    }
    auto bytes = ch::encode_s7(pdu);
    auto back = ch::decode_s7(bytes);
    ASSERT_TRUE(back.ok()) << back.error().to_string() << " " << to_hex(bytes);
    EXPECT_EQ(ch::encode_s7(back.value()), bytes);
    ch::Pdu normalized = back.value();
    normalized.header.param_length = normalized.header.data_length = 0;
    EXPECT_EQ(normalized, pdu);
  }
}

TEST(S7comm, RandomMutationsNeverCrash) {
  std::mt19937 rng(7);
  const std::vector<std::string> seeds = {
      "320100000001000e00000401120a10020010000083000000",
      "320300000001000200140000 0401ff040080a9100000000001010000000000000000",
      "320700000400000c00da000112081284010105010000ff0900d6000000000002007000000f00",
      "320100000002000e00080501120a10020004000083000000 00040020a9100001"};
  for (const auto& s : seeds) {
    const auto base = hex(s);
    for (int i = 0; i < 2000; ++i) {
      auto m = base;
      const int edits = 1 + int(rng() % 4);
      for (int e = 0; e < edits; ++e) m[rng() % m.size()] = std::uint8_t(rng());
      if (rng() % 3 == 0) m.resize(rng() % (m.size() + 1));
      auto r = ch::decode_s7(m);
      if (!r.ok()) {
        EXPECT_LE(r.error().offset, m.size());
      }
    }
  }
}
