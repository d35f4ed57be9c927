// libFuzzer target: the frame decoder as the runtime and plcsim use it. The input is a TCP
// byte stream: TPKT reassembly, COTP decoding, DT reassembly, then S7comm (with SZL assembly and
// a re-encode check) or InitSSL decoding of every completed PDU. SZL answers that come in several
// pieces are joined (SzlAssembler); a joined list must survive being cut into pieces again
// (szl_responses, at a PDU size from the first byte) and joined.
#include <cstdlib>
#include <optional>

#include "channel/channel.h"

namespace ch = scada::channel;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ch::TpktReassembler tpkt(4096);
  ch::CotpReassembler dts(8192, 16);
  ch::SzlAssembler szl(8192);
  // Feed in two pieces so that reassembly across chunks is exercised.
  const std::size_t cut = size == 0 ? 0 : data[0] % (size + 1);
  for (auto piece : {ch::ByteView(data, cut), ch::ByteView(data + cut, size - cut)}) {
    if (auto e = tpkt.feed(piece)) {
      if (e->reason.empty()) std::abort();
      return 0;
    }
    ch::Bytes tpdu;
    while (tpkt.next(tpdu)) {
      auto cotp = ch::decode_cotp(tpdu);
      if (!cotp.ok()) {
        if (cotp.error().offset > tpdu.size()) std::abort();
        continue;
      }
      if (!std::holds_alternative<ch::CotpData>(cotp.value())) {
        // Connect/disconnect TPDUs re-encode to something that decodes to the same value.
        auto again = ch::decode_cotp(ch::encode_cotp(cotp.value()));
        if (!again.ok() ||
            std::string(ch::cotp_name(again.value())) != ch::cotp_name(cotp.value())) {
          std::abort();
        }
        continue;
      }
      auto joined = dts.add(std::get<ch::CotpData>(std::move(cotp).value()));
      if (!joined.ok() || !joined.value()) continue;
      const ch::Bytes& pdu = *joined.value();
      if (pdu[0] == 0x72) {
        (void)ch::decode_init_ssl(pdu);
        continue;
      }
      auto s7 = ch::decode_s7(pdu);
      if (!s7.ok()) {
        if (s7.error().offset > pdu.size()) std::abort();
        continue;
      }
      // What decodes re-encodes to a PDU that decodes to the same value.
      auto again = ch::decode_s7(ch::encode_s7(s7.value()));
      if (!again.ok() || !(again->body == s7->body)) std::abort();
      if (auto* u = std::get_if<ch::Userdata>(&s7->body); u && u->param.type == 8) {
        auto list = szl.add(*u);
        if (list.ok() && list.value()) {
          const ch::SzlList& got = *list.value();
          (void)ch::parse_szl_0011(got);
          (void)ch::parse_szl_001c(got);
          (void)ch::parse_szl_0424(got);
          // A joined list cut again into pieces (as plcsim does) joins to the same list.
          ch::SzlAssembler again(8192);
          std::optional<ch::SzlList> back;
          for (const auto& piece : ch::szl_responses(1, 1, 1, got, 64 + data[0])) {
            auto r = again.add(std::get<ch::Userdata>(piece.body));
            if (!r.ok() || back) std::abort();
            if (r.value()) back = *r.value();
          }
          if (!back || ch::szl_serialize(*back) != ch::szl_serialize(got)) std::abort();
        }
      }
    }
  }
  return 0;
}
