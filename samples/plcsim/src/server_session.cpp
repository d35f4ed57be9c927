#include "server_session.h"

#include <optional>

#include <algorithm>
#include <utility>

namespace scada::plcsim {

using channel::Bytes;
using channel::CotpConnect;
using channel::CotpData;
using channel::CotpDisconnect;
using channel::Pdu;
using channel::Rosctr;

namespace {

constexpr std::uint8_t kMaxTpduSizeCode = 0x0A;  // 1024 bytes
constexpr std::uint16_t kLocalRef = 0x0001;      // our COTP src-ref
// A PDU may span DTs; a client announcing more than this is not an S7 client.
constexpr std::size_t kMaxReassembledPdu = 16384;
constexpr std::size_t kMaxFragments = 64;
// Below this a PDU cannot carry a Read Var reply with a single word; such a setup request is
// a protocol violation rather than a negotiation.
constexpr std::uint16_t kMinPdu = 64;
constexpr std::uint16_t kWrongRefMask = 0x5A5A;

constexpr std::uint16_t kErrFunction = 0x8104;  // service unsupported / frame error (WIRE.md §3)
constexpr std::uint16_t kErrPduTooLarge = 0x8500;  // wrong frame (PDU too large)
constexpr std::uint16_t kErrSzlId = 0xD401;        // invalid SZL id
constexpr std::uint16_t kErrSzlNotNow = 0xD404;    // information not available now
constexpr std::uint8_t kRcNoObject = 0x0A;

constexpr std::uint8_t kGroupCpu = 4;
constexpr std::uint8_t kSubfunctionReadSzl = 1;
constexpr std::uint8_t kUserdataRequest = 4;

const channel::Tsap& secure_tsap() {
  static const channel::Tsap tsap = channel::Tsap::from_text("SIMATIC-ROOT-HMI");
  return tsap;
}

std::string tsap_text(const std::optional<channel::Tsap>& t) {
  return t ? t->to_string() : std::string("(none)");
}

std::string hex(std::uint32_t v, int digits) {
  static const char* d = "0123456789ABCDEF";
  std::string s = "0x";
  for (int i = digits - 1; i >= 0; --i) s += d[(v >> (4 * i)) & 15];
  return s;
}

std::string function_text(std::uint8_t f) {
  return hex(f, 2) + " (" + channel::function_name(f) + ")";
}

}  // namespace

ServerSession::ServerSession(PlcState& plc, SecurityMode mode)
    : plc_(plc), mode_(mode), reassembler_(kMaxReassembledPdu, kMaxFragments) {}

void ServerSession::tls_established() {
  if (mode_ == SecurityMode::s7_secure && phase_ == Phase::await_tls) phase_ = Phase::await_setup;
}

ServerSession::Output ServerSession::close(std::string event) {
  phase_ = Phase::closed;
  szl_pending_.clear();
  Output out;
  out.close = true;
  out.event = std::move(event);
  return out;
}

std::uint16_t ServerSession::reply_ref(std::uint16_t request_ref) const {
  return plc_.faults().wrong_pdu_ref ? std::uint16_t(request_ref ^ kWrongRefMask) : request_ref;
}

ServerSession::Output ServerSession::reply(Pdu pdu, std::string event) {
  pdu.header.pdu_ref = reply_ref(pdu.header.pdu_ref);
  Output out;
  out.frames = channel::frame_dt(channel::encode_s7(pdu), tpdu_size_);
  out.event = std::move(event);
  return out;
}

ServerSession::Output ServerSession::on_tpdu(channel::ByteView tpdu) {
  if (phase_ == Phase::closed) return Output{{}, false, true, {}};
  auto decoded = channel::decode_cotp(tpdu);
  if (!decoded) return close("malformed COTP TPDU: " + decoded.error().to_string());
  channel::CotpTpdu& t = decoded.value();
  const std::string name = channel::cotp_name(t);

  if (phase_ == Phase::await_cr) {
    if (auto* cr = std::get_if<CotpConnect>(&t); cr && !cr->confirm) {
      return on_connect_request(*cr);
    }
    return close("expected COTP CR as the first TPDU, got " + name);
  }
  if (auto* d = std::get_if<CotpDisconnect>(&t)) {
    if (d->confirm) return close("unexpected COTP DC from the client");
    Output out = close("client disconnected (DR, reason " + hex(d->reason, 2) + ")");
    out.frames.push_back(
        channel::tpkt_wrap(channel::encode_cotp(CotpDisconnect{true, d->src_ref, kLocalRef, 0})));
    return out;
  }
  if (auto* er = std::get_if<channel::CotpReject>(&t)) {
    return close("client rejected a TPDU (ER, cause " + hex(er->cause, 2) + ")");
  }
  auto* dt = std::get_if<CotpData>(&t);
  if (!dt) return close("unexpected COTP " + name + " on an open connection");
  if (phase_ == Phase::await_tls) {
    return close("COTP DT in clear while the TLS handshake should run");
  }
  auto joined = reassembler_.add(std::move(*dt));
  if (!joined) return close("COTP reassembly failed: " + joined.error().to_string());
  if (!joined.value()) return {};  // more DTs to come, or a fast acknowledge
  return on_pdu(*joined.value());
}

ServerSession::Output ServerSession::on_connect_request(const CotpConnect& cr) {
  if (mode_ == SecurityMode::s7_secure && cr.called != secure_tsap()) {
    return close("refused CR: called TSAP " + tsap_text(cr.called) + ", s7-secure expects " +
                 secure_tsap().to_string());
  }
  CotpConnect cc;
  cc.confirm = true;
  cc.dst_ref = cr.src_ref;
  cc.src_ref = kLocalRef;
  cc.protocol_class = 0;
  if (cr.tpdu_size_code) cc.tpdu_size_code = std::min(*cr.tpdu_size_code, kMaxTpduSizeCode);
  cc.calling = cr.calling;
  cc.called = cr.called;
  tpdu_size_ = cc.tpdu_size();
  phase_ = mode_ == SecurityMode::s7_secure ? Phase::await_init_ssl : Phase::await_setup;

  Output out;
  out.frames.push_back(channel::tpkt_wrap(channel::encode_cotp(cc)));
  out.event = std::string("connected (") + mode_name(mode_) + "): calling TSAP " +
              tsap_text(cr.calling) + ", called TSAP " + tsap_text(cr.called) + ", TPDU size " +
              std::to_string(tpdu_size_);
  return out;
}

ServerSession::Output ServerSession::on_pdu(const Bytes& pdu) {
  if (phase_ == Phase::await_init_ssl) return on_init_ssl(pdu);
  if (mode_ != SecurityMode::s7_secure && phase_ == Phase::await_setup && !pdu.empty() &&
      pdu[0] == 0x72) {
    // A client configured for s7-secure talking to a PLC without it.
    auto init = channel::decode_init_ssl(pdu);
    if (!init) return close("malformed InitSSL request: " + init.error().to_string());
    Output out;
    out.frames = channel::frame_dt(channel::encode_init_ssl_response(0x05A9), tpdu_size_);
    out.event = std::string("InitSSL refused: mode ") + mode_name(mode_) +
                " has no secure communication (answered 0x05A9)";
    return out;
  }
  return on_s7(pdu);
}

ServerSession::Output ServerSession::on_init_ssl(const Bytes& pdu) {
  auto init = channel::decode_init_ssl(pdu);
  if (!init) return close("expected the InitSSL request: " + init.error().to_string());
  if (init->response || init->function != 0x05B3) {
    return close("expected the InitSSL request, got an InitSSL " +
                 std::string(init->response ? "response" : "request") + " for function " +
                 hex(init->function, 4));
  }
  phase_ = Phase::await_tls;
  Output out;
  out.frames = channel::frame_dt(channel::encode_init_ssl_response(), tpdu_size_);
  out.start_tls = true;
  out.event = "InitSSL accepted, starting TLS";
  return out;
}

ServerSession::Output ServerSession::on_s7(const Bytes& bytes) {
  auto decoded = channel::decode_s7(bytes);
  if (!decoded) return close("malformed S7comm PDU: " + decoded.error().to_string());
  const Pdu& pdu = decoded.value();
  const Rosctr rosctr = pdu.header.rosctr;
  if (rosctr != Rosctr::job && rosctr != Rosctr::userdata) {
    return close(std::string("unexpected ") + channel::rosctr_name(rosctr) +
                 " PDU from the client");
  }
  const auto func = channel::function_of(pdu);
  const bool setup =
      rosctr == Rosctr::job && std::holds_alternative<channel::SetupCommunication>(pdu.body);
  if (phase_ == Phase::await_setup && !setup) {
    return close(std::string(channel::rosctr_name(rosctr)) + " " +
                 (func ? function_text(*func) : std::string("PDU")) +
                 " before setup communication");
  }
  if (setup) return on_setup(pdu);
  if (rosctr == Rosctr::userdata) return on_userdata(pdu);
  return on_job(pdu, bytes.size());
}

ServerSession::Output ServerSession::on_setup(const Pdu& request) {
  const auto& asked = std::get<channel::SetupCommunication>(request.body);
  if (asked.amq_calling == 0 || asked.amq_called == 0 || asked.pdu_size < kMinPdu) {
    return close("setup communication asks for AmQ " + std::to_string(asked.amq_calling) + "/" +
                 std::to_string(asked.amq_called) + " and PDU " + std::to_string(asked.pdu_size) +
                 ": not a usable connection");
  }
  const PlcConfig& config = plc_.config();
  channel::SetupCommunication granted;
  granted.amq_calling = std::min(asked.amq_calling, config.max_amq);
  granted.amq_called = std::min(asked.amq_called, config.max_amq);
  granted.pdu_size = std::min(asked.pdu_size, config.max_pdu);
  pdu_ = granted.pdu_size;
  amq_ = granted.amq_calling;
  phase_ = Phase::ready;
  // The pieces of an SZL answer in progress were cut for the old PDU: abandoned.
  szl_pending_.clear();
  Pdu answer{channel::Header{Rosctr::ack_data, 0, request.header.pdu_ref}, granted};
  return reply(std::move(answer), "setup communication: PDU " + std::to_string(granted.pdu_size) +
                                      " (asked " + std::to_string(asked.pdu_size) + "), AmQ " +
                                      std::to_string(granted.amq_calling) + "/" +
                                      std::to_string(granted.amq_called) + " (asked " +
                                      std::to_string(asked.amq_calling) + "/" +
                                      std::to_string(asked.amq_called) + ")");
}

ServerSession::Output ServerSession::refuse_job(const Pdu& request, std::uint16_t error,
                                                std::string event) {
  // The refusal echoes the function and its second parameter byte (the item count of Read
  // and Write Var), as a CPU does.
  // Built in one go: g++ 12 with -fsanitize=thread warns (stringop-overflow) on push_back here.
  const auto func = channel::function_of(request);
  std::optional<std::uint8_t> second;
  if (const auto* read = std::get_if<channel::ReadVarRequest>(&request.body)) {
    second = std::uint8_t(read->items.size());
  } else if (const auto* write = std::get_if<channel::WriteVarRequest>(&request.body)) {
    second = std::uint8_t(write->items.size());
  } else if (const auto* other = std::get_if<channel::OtherFunction>(&request.body);
             other && other->param.size() > 1) {
    second = other->param[1];
  }
  Bytes param;
  if (func && second)
    param = Bytes{*func, *second};
  else if (func)
    param = Bytes{*func};
  channel::Header h{Rosctr::ack_data, 0, request.header.pdu_ref};
  h.error_class = std::uint8_t(error >> 8);
  h.error_code = std::uint8_t(error);
  Pdu answer{h, param.empty() ? channel::Body{channel::NoBody{}}
                              : channel::Body{channel::OtherFunction{std::move(param), {}}}};
  return reply(std::move(answer), std::move(event));
}

ServerSession::Output ServerSession::on_job(const Pdu& request, std::size_t size) {
  const auto func = channel::function_of(request);
  const std::string what = func ? function_text(*func) : std::string("job without parameter");
  if (size > pdu_) {
    return refuse_job(request, kErrPduTooLarge,
                      what + " refused: request of " + std::to_string(size) +
                          " bytes exceeds the negotiated PDU " + std::to_string(pdu_));
  }
  channel::Header ok{Rosctr::ack_data, 0, request.header.pdu_ref};
  if (const auto* read = std::get_if<channel::ReadVarRequest>(&request.body)) {
    Pdu answer{ok, channel::ReadVarResponse{plc_.read(std::span(read->items))}};
    // One encoding decides: the size formula of WIRE.md is what encode_s7 produces.
    const std::size_t reply_size = channel::encode_s7(answer).size();
    if (reply_size > pdu_) {
      return refuse_job(request, kErrPduTooLarge,
                        what + " refused: reply of " + std::to_string(reply_size) +
                            " bytes would exceed the negotiated PDU " + std::to_string(pdu_));
    }
    return reply(std::move(answer));
  }
  if (const auto* write = std::get_if<channel::WriteVarRequest>(&request.body)) {
    if (write->data.size() != write->items.size()) {  // the codec decodes one per item
      return close("Write Var with " + std::to_string(write->items.size()) + " items and " +
                   std::to_string(write->data.size()) + " data items");
    }
    Pdu answer{
        ok, channel::WriteVarResponse{plc_.write(std::span(write->items), std::span(write->data))}};
    return reply(std::move(answer));
  }
  return refuse_job(request, kErrFunction, what + " not supported: answered 0x8104");
}

ServerSession::Output ServerSession::userdata_error(const Pdu& request, std::uint16_t error,
                                                    std::string event) {
  const auto& asked = std::get<channel::Userdata>(request.body);
  channel::Userdata u;
  u.param = asked.param;
  u.param.method = 0x12;
  u.param.type = 8;
  u.param.long_form = true;
  u.param.data_unit_ref = 0;
  u.param.more_follows = false;
  u.param.error = error;
  u.data = channel::UserdataData{kRcNoObject, channel::DataSize::null, {}};
  return reply(Pdu{channel::Header{Rosctr::userdata, 0, request.header.pdu_ref}, std::move(u)},
               std::move(event));
}

ServerSession::Output ServerSession::on_userdata(const Pdu& request) {
  const auto& u = std::get<channel::Userdata>(request.body);
  if (u.param.type != kUserdataRequest) {
    return close("userdata of type " + std::to_string(u.param.type) +
                 " from the client (only requests, type 4, are expected)");
  }
  if (u.param.group != kGroupCpu || u.param.subfunction != kSubfunctionReadSzl) {
    return userdata_error(request, kErrFunction,
                          "userdata group " + std::to_string(u.param.group) + " subfunction " +
                              std::to_string(u.param.subfunction) + " not supported");
  }
  if (u.param.long_form && u.data.return_code == kRcNoObject) {
    // Continuation: the next piece of the answer in progress, echoing this request's ref.
    if (szl_pending_.empty() || u.param.sequence != szl_sequence_ ||
        u.param.data_unit_ref != szl_unit_ref_) {
      return userdata_error(request, kErrSzlNotNow,
                            "SZL continuation without a matching answer in progress");
    }
    Pdu piece = std::move(szl_pending_.front());
    szl_pending_.pop_front();
    piece.header.pdu_ref = request.header.pdu_ref;
    return reply(std::move(piece));
  }
  const auto asked = channel::szl_id_of(request);
  if (!asked) {
    return userdata_error(request, kErrSzlId, "SZL read request without an SZL id and index");
  }
  auto list = plc_.szl(asked->id, asked->index);
  const std::string id_text = hex(asked->id, 4) + " index " + hex(asked->index, 4);
  if (!list) {
    return userdata_error(request, kErrSzlId, "SZL " + id_text + " not available: answered 0xD401");
  }
  // A new SZL read abandons an answer still in progress, as on a CPU.
  szl_sequence_ = next_sequence_;
  next_sequence_ = std::uint8_t(next_sequence_ == 0xFF ? 1 : next_sequence_ + 1);
  szl_unit_ref_ = szl_sequence_;
  auto pieces =
      channel::szl_responses(request.header.pdu_ref, szl_sequence_, szl_unit_ref_, *list, pdu_);
  szl_pending_.assign(std::make_move_iterator(pieces.begin() + 1),
                      std::make_move_iterator(pieces.end()));
  return reply(std::move(pieces.front()));
}

}  // namespace scada::plcsim
