// libFuzzer target: plcsim's server side (samples/plcsim/src/server_session.h, the sans-I/O
// session its TCP connections drive) on an arbitrary client byte stream: COTP CR, InitSSL,
// setup communication, Read/Write Var, userdata SZL reads and continuations, anything else.
//
// Input: byte 0 chooses the PLC (server_options.h: mode, max PDU, wrong_pdu_ref fault, STOP, a
// TLS handshake that never completes), the rest is what the client sends. As plcsim's Connection
// does, the bytes go through a TPKT reassembler (8192 inside TLS, 65535 otherwise) and every TPDU
// to ServerSession::on_tpdu; in s7-secure the stream after the InitSSL reply stands for the
// plaintext inside TLS (the handshake itself is not fuzzed here).
//
// Every Output is checked with the channel's own decoders, as a client would read it: frames are
// TPKT within the negotiated TPDU size, TPDUs decode and re-encode to the same bytes, DTs join
// into exactly one PDU per reply that decodes as S7comm (canonically) or InitSSL; S7comm replies
// stay within the negotiated PDU, answer the request's PDU reference (^ 0x5A5A with the fault)
// and item count, and the pieces of every SZL answer join (SzlAssembler) to exactly the list
// PlcState serves. Every complete request is answered at once or closes the session; a close
// always says why; a closed session stays closed and silent.
// Anything else aborts.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "channel/channel.h"
#include "plc_state.h"
#include "server_options.h"
#include "server_session.h"

namespace {

namespace ch = scada::channel;
namespace ps = scada::plcsim;

[[noreturn]] void fail(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "fuzz_server: %s%s%s\n", what, detail.empty() ? "" : ": ", detail.c_str());
  std::abort();
}

// The client's view of the conversation: what it sent (for references and item counts) and
// the SZL answer it is joining.
class Client {
 public:
  Client(ps::PlcState& plc, ps::ServerSession& session, bool wrong_ref)
      : plc_(plc), session_(session), wrong_ref_(wrong_ref) {}

  // Records the request a TPDU completes, if any. Called before the session sees the TPDU;
  // the session closes on anything its own reassembler refuses, so both stay in step.
  void sent(ch::ByteView tpdu) {
    request_.reset();
    auto t = ch::decode_cotp(tpdu);
    if (!t) return;
    if (auto* dt = std::get_if<ch::CotpData>(&t.value())) {
      auto joined = requests_.add(*dt);
      if (joined.ok() && joined.value()) request_ = std::move(*joined.value());
    }
    last_tpdu_ = std::move(t).value();
  }

  void check(const ps::ServerSession::Output& out, bool was_closed) {
    if (was_closed) {
      if (!out.close || !out.frames.empty()) fail("a closed session answered");
      return;
    }
    if (out.close && out.event.empty()) fail("closed without a reason");
    if (out.start_tls && session_mode() != ch::SecurityMode::s7_secure) {
      fail("start_tls outside s7-secure");
    }
    ch::CotpReassembler replies(65536, 64);
    std::optional<ch::Bytes> pdu;
    for (std::size_t i = 0; i < out.frames.size(); ++i) {
      const ch::Bytes& f = out.frames[i];
      if (f.size() < ch::kTpktHeaderSize + 3 || f[0] != 0x03 || f[1] != 0x00 ||
          std::size_t(f[2] << 8 | f[3]) != f.size()) {
        fail("reply frame is not one TPKT", std::to_string(f.size()) + " bytes");
      }
      if (f.size() > ch::kTpktHeaderSize + session_.tpdu_size()) {
        fail("reply frame exceeds the TPDU size",
             std::to_string(f.size()) + " > 4 + " + std::to_string(session_.tpdu_size()));
      }
      const ch::ByteView tpdu = ch::ByteView(f).subspan(ch::kTpktHeaderSize);
      auto t = ch::decode_cotp(tpdu);
      if (!t) fail("reply TPDU does not decode", t.error().to_string());
      if (ch::encode_cotp(t.value()) != ch::Bytes(tpdu.begin(), tpdu.end())) {
        fail("reply TPDU is not canonical");
      }
      if (auto* c = std::get_if<ch::CotpConnect>(&t.value())) {
        auto* cr = std::get_if<ch::CotpConnect>(&last_tpdu_);
        if (!c->confirm || out.frames.size() != 1 || !cr || cr->confirm) {
          fail("CC other than the one answer to the CR");
        }
        if (c->dst_ref != cr->src_ref || c->called != cr->called || c->calling != cr->calling) {
          fail("CC does not echo the CR");
        }
        continue;
      }
      if (auto* d = std::get_if<ch::CotpDisconnect>(&t.value())) {
        auto* dr = std::get_if<ch::CotpDisconnect>(&last_tpdu_);
        if (!d->confirm || !dr || dr->confirm || !out.close) fail("DC other than after a DR");
        continue;
      }
      auto* dt = std::get_if<ch::CotpData>(&t.value());
      if (!dt) fail("reply TPDU is neither CC, DC nor DT");
      if (pdu) fail("more than one PDU in one answer");
      auto joined = replies.add(*dt);
      if (!joined) fail("reply DTs do not join", joined.error().to_string());
      if (joined.value()) pdu = std::move(*joined.value());
    }
    if (!replies.idle()) fail("reply DTs end without end of TSDU");
    // Every request is answered at once, or the session closes.
    if (request_ && !pdu && !out.close) fail("a request went unanswered");
    if (pdu) check_pdu(*pdu, out);
  }

 private:
  ch::SecurityMode session_mode() const { return plc_.config().mode; }

  void check_pdu(const ch::Bytes& bytes, const ps::ServerSession::Output& out) {
    if (!request_) fail("a PDU answers no complete request");
    if (bytes[0] == 0x72) {
      auto init = ch::decode_init_ssl(bytes);
      if (!init) fail("InitSSL reply does not decode", init.error().to_string());
      if (!init->response || (*request_)[0] != 0x72) fail("InitSSL reply to something else");
      if (ch::encode_init_ssl_response(init->function, init->return_value) != bytes) {
        fail("InitSSL reply is not canonical");
      }
      const bool accepted = init->accepted();
      if (accepted != out.start_tls) fail("InitSSL accepted without start_tls or back");
      if (accepted != (session_mode() == ch::SecurityMode::s7_secure)) {
        fail("InitSSL answer does not fit the mode");
      }
      return;
    }
    auto reply = ch::decode_s7(bytes);
    if (!reply) fail("S7comm reply does not decode", reply.error().to_string());
    if (ch::encode_s7(reply.value()) != bytes) fail("S7comm reply is not canonical");
    if (out.start_tls) fail("start_tls with an S7comm reply");
    const ch::Pdu& p = reply.value();
    if (p.header.rosctr != ch::Rosctr::ack_data && p.header.rosctr != ch::Rosctr::userdata) {
      fail("S7comm reply is neither Ack_Data nor Userdata");
    }
    if (session_.negotiated_pdu() == 0) fail("S7comm reply before setup communication");
    if (bytes.size() > session_.negotiated_pdu()) {
      fail("S7comm reply exceeds the negotiated PDU",
           std::to_string(bytes.size()) + " > " + std::to_string(session_.negotiated_pdu()));
    }
    auto request = ch::decode_s7(*request_);
    if (!request) fail("S7comm reply to a request that does not decode");
    const ch::Pdu& q = request.value();
    const std::uint16_t ref =
        wrong_ref_ ? std::uint16_t(q.header.pdu_ref ^ 0x5A5A) : q.header.pdu_ref;
    if (p.header.pdu_ref != ref) {
      fail("S7comm reply carries the wrong PDU reference", std::to_string(p.header.pdu_ref));
    }
    if ((q.header.rosctr == ch::Rosctr::userdata) != (p.header.rosctr == ch::Rosctr::userdata)) {
      fail("userdata answered with a job reply or back");
    }
    if (p.header.error() == 0) {
      if (auto* read = std::get_if<ch::ReadVarRequest>(&q.body)) {
        auto* r = std::get_if<ch::ReadVarResponse>(&p.body);
        if (!r || r->items.size() != read->items.size()) fail("Read Var reply item count");
      }
      if (auto* write = std::get_if<ch::WriteVarRequest>(&q.body)) {
        auto* w = std::get_if<ch::WriteVarResponse>(&p.body);
        if (!w || w->return_codes.size() != write->items.size()) fail("Write Var reply count");
      }
      if (auto* setup = std::get_if<ch::SetupCommunication>(&q.body)) {
        auto* s = std::get_if<ch::SetupCommunication>(&p.body);
        if (!s || s->pdu_size != session_.negotiated_pdu() || s->pdu_size > setup->pdu_size ||
            s->pdu_size > plc_.config().max_pdu || s->amq_calling > setup->amq_calling) {
          fail("setup communication reply grants what was not asked or offered");
        }
      }
    }
    if (auto* u = std::get_if<ch::Userdata>(&p.body)) check_szl(*u);
  }

  // The pieces of one answer share a sequence number; a new read starts a new one.
  void check_szl(const ch::Userdata& u) {
    if (u.param.type != 8) fail("userdata reply of type", std::to_string(u.param.type));
    if (u.param.error != 0 || u.data.return_code != 0xFF) return;
    if (!szl_ || u.param.sequence != szl_sequence_) {
      szl_.emplace(65536);
      szl_sequence_ = u.param.sequence;
    }
    auto joined = szl_->add(u);
    if (!joined) fail("SZL answer does not join", joined.error().to_string());
    if (!joined.value()) return;
    szl_.reset();
    const ch::SzlList& got = *joined.value();
    auto served = plc_.szl(got.id, got.index);
    if (!served || ch::szl_serialize(*served) != ch::szl_serialize(got)) {
      fail("SZL answer differs from the served list");
    }
  }

  ps::PlcState& plc_;
  ps::ServerSession& session_;
  bool wrong_ref_;
  ch::CotpReassembler requests_{16384, 64};  // the session's bounds
  ch::CotpTpdu last_tpdu_;
  std::optional<ch::Bytes> request_;  // the PDU the last TPDU completed
  std::optional<ch::SzlAssembler> szl_;
  std::uint8_t szl_sequence_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t options = data[0];
  ps::PlcState plc(scada::fuzz::server_config(options));
  scada::fuzz::apply_server_options(plc, options);
  const bool handshake_completes = (options & scada::fuzz::kServerNoHandshake) == 0;
  ps::ServerSession session(plc, plc.config().mode);
  Client client(plc, session, (options & scada::fuzz::kServerWrongRef) != 0);

  ch::TpktReassembler wire(plc.config().mode == ch::SecurityMode::tls ? 8192 : ch::kTpktMaxFrame);
  // TCP delivers the stream in pieces; what precedes a framing error is answered, as in plcsim.
  constexpr std::size_t kPiece = 32;
  ch::Bytes tpdu;
  bool closed = false;
  for (std::size_t at = 1; at < size; at += kPiece) {
    if (wire.feed(ch::ByteView(data + at, std::min(kPiece, size - at)))) break;  // bad TPKT
    while (wire.next(tpdu)) {
      client.sent(tpdu);  // after a close too: the session must stay closed and silent
      const ps::ServerSession::Output out = session.on_tpdu(tpdu);
      client.check(out, closed);
      if (out.start_tls && handshake_completes) session.tls_established();
      closed = closed || out.close;
    }
  }
  return 0;
}
