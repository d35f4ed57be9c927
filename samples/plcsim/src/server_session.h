// server_session.h: one client connection's S7 server logic over COTP TPDUs (TPKT payloads).
// No I/O: the transport feeds TPDUs and sends the frames it gets back (WIRE.md §2-§5).
//
// Phases
//   CR      the first TPDU must be a CR. The CC echoes the TSAPs, answers dst-ref = the client's
//           src-ref, class 0, and TPDU size min(requested, 1024) when the CR asks for one; a CR
//           without the parameter gets the ISO 8073 default of 128 bytes. s7-secure requires the
//           called TSAP "SIMATIC-ROOT-HMI"; none and tls accept any TSAP.
//   InitSSL s7-secure only: the next PDU must be the InitSSL request; the reply sets start_tls,
//           and the transport calls tls_established() when the handshake is done. In none and
//           tls mode an InitSSL request is answered with function 0x05A9, as a PLC without
//           secure communication does, and the connection carries on in clear.
//   setup   the first S7comm PDU must be a setup communication Job (anything else closes).
//           Granted: AmQ calling/called = min(requested, max_amq), PDU = min(requested, max_pdu).
//           A request for AmQ 0 or a PDU below 64 bytes closes the connection.
//   jobs    answered at once, in order:
//           - a Job longer than the negotiated PDU -> Ack_Data 0x8500 echoing {function, count}
//           - Read Var -> PlcState::read; a reply longer than the PDU -> 0x8500 as well
//           - Write Var -> PlcState::write
//           - setup communication again -> renegotiated the same way; an SZL answer in
//             progress is abandoned (its pieces were cut for the old PDU)
//           - any other function -> Ack_Data 0x8104 echoing {function, second parameter byte}
//           - userdata group 4 subfunction 1 (read SZL) -> PlcState::szl cut to the PDU; the
//             rest is kept for continuation requests (data 0A 00 00 00) carrying the sequence
//             number and data unit reference of the previous piece. Unknown SZL id: param error
//             0xD401, data return code 0x0A. Continuation with nothing (or something else)
//             pending: 0xD404. Other userdata groups/subfunctions: 0x8104.
//           - Ack, Ack_Data or a userdata response from the client -> close
// Anywhere: DR -> DC and close; CC, DC, ER from the client -> close; an empty DT without EOT
// (fast acknowledge) is dropped; decode errors close with the WireError in the event. With the
// wrong_pdu_ref fault every S7comm reply carries the request's PDU reference ^ 0x5A5A.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "channel/channel.h"
#include "plc_state.h"
#include "plcsim/plcsim.h"

namespace scada::plcsim {

class ServerSession {
 public:
  ServerSession(PlcState& plc, SecurityMode mode);

  struct Output {
    std::vector<channel::Bytes> frames;  // complete TPKT frames to send, in order
    // s7-secure: the InitSSL reply is in frames; after sending it the transport starts TLS
    // (server side) inside DT payloads.
    bool start_tls = false;
    bool close = false;  // close the connection after sending frames
    std::string event;   // one log line when something notable happened, else empty
  };

  // One TPDU received in clear (none, and s7-secure before TLS) or from inside TLS (tls: all of
  // them; s7-secure: after tls_established()).
  Output on_tpdu(channel::ByteView tpdu);

  // s7-secure: the TLS handshake finished; from now on TPDUs come from inside TLS and are DTs
  // carrying S7comm. Ignored in other modes and phases.
  void tls_established();

  // Negotiated in CR/CC; 1024 until then.
  std::size_t tpdu_size() const { return tpdu_size_; }
  // Granted in setup communication, else 0. negotiated_amq() is AmQ calling: how many jobs the
  // client may have outstanding at once.
  std::uint16_t negotiated_pdu() const { return pdu_; }
  std::uint16_t negotiated_amq() const { return amq_; }

 private:
  enum class Phase { await_cr, await_init_ssl, await_tls, await_setup, ready, closed };

  Output on_connect_request(const channel::CotpConnect& cr);
  Output on_pdu(const channel::Bytes& pdu);
  Output on_init_ssl(const channel::Bytes& pdu);
  Output on_s7(const channel::Bytes& bytes);
  Output on_setup(const channel::Pdu& request);
  Output on_job(const channel::Pdu& request, std::size_t size);
  Output on_userdata(const channel::Pdu& request);
  Output reply(channel::Pdu pdu, std::string event = {});
  Output refuse_job(const channel::Pdu& request, std::uint16_t error, std::string event);
  Output userdata_error(const channel::Pdu& request, std::uint16_t error, std::string event);
  Output close(std::string event);
  std::uint16_t reply_ref(std::uint16_t request_ref) const;

  PlcState& plc_;
  SecurityMode mode_;
  Phase phase_ = Phase::await_cr;
  std::size_t tpdu_size_ = 1024;
  std::uint16_t pdu_ = 0;
  std::uint16_t amq_ = 0;
  channel::CotpReassembler reassembler_;
  // The pieces of a long SZL answer not sent yet, and what continuations must carry.
  std::deque<channel::Pdu> szl_pending_;
  std::uint8_t szl_sequence_ = 0;
  std::uint8_t szl_unit_ref_ = 0;
  std::uint8_t next_sequence_ = 1;
};

}  // namespace scada::plcsim
