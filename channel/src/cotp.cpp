#include <algorithm>

#include "byte_io.h"

namespace scada::channel {

using detail::put_u16;
using detail::put_u8;
using detail::Reader;

namespace {

constexpr std::uint8_t kParamTpduSize = 0xC0;
constexpr std::uint8_t kParamCallingTsap = 0xC1;
constexpr std::uint8_t kParamCalledTsap = 0xC2;
constexpr std::size_t kMaxTsapLength = 32;

// Reads CR/CC parameters (code, length, value) in any order, skipping unknown ones.
void read_connect_params(Reader& r, std::size_t end, CotpConnect& c) {
  while (!r.failed() && r.pos() < end) {
    const std::size_t at = r.pos();
    const std::uint8_t code = r.u8("COTP parameter code");
    const std::uint8_t len = r.u8("COTP parameter length");
    if (r.failed()) return;
    if (r.pos() + len > end) {
      r.fail_at(at, WireErrorKind::bad_length,
                "COTP parameter " + detail::hex8(code) + " length " + std::to_string(len) +
                    " runs past the header (LI)");
      return;
    }
    switch (code) {
      case kParamTpduSize: {
        if (len != 1) {
          r.fail_at(at, WireErrorKind::bad_length,
                    "TPDU size parameter has length " + std::to_string(len) + ", expected 1");
          return;
        }
        const std::uint8_t v = r.u8("TPDU size");
        if (v < 7 || v > 13) {
          r.fail_at(at + 2, WireErrorKind::bad_value,
                    "TPDU size code " + detail::hex8(v) + " outside 0x07..0x0D (128..8192 bytes)");
          return;
        }
        c.tpdu_size_code = v;
        break;
      }
      case kParamCallingTsap:
      case kParamCalledTsap: {
        if (len == 0 || len > kMaxTsapLength) {
          r.fail_at(at, WireErrorKind::bad_length,
                    "TSAP length " + std::to_string(len) + " outside 1.." +
                        std::to_string(kMaxTsapLength));
          return;
        }
        Tsap t{r.bytes(len, "TSAP")};
        (code == kParamCallingTsap ? c.calling : c.called) = std::move(t);
        break;
      }
      default:
        r.skip(len, "COTP parameter");  // unknown parameters are skipped by their length
        break;
    }
  }
}

void put_param(Bytes& out, std::uint8_t code, ByteView value) {
  put_u8(out, code);
  put_u8(out, std::uint8_t(value.size()));
  detail::put_bytes(out, value);
}

}  // namespace

Tsap Tsap::from_u16(std::uint16_t v) {
  return Tsap{Bytes{std::uint8_t(v >> 8), std::uint8_t(v)}};
}

Tsap Tsap::from_text(const std::string& text) {
  return Tsap{Bytes(text.begin(), text.end())};
}

Tsap Tsap::remote(std::uint8_t type, std::uint8_t rack, std::uint8_t slot) {
  return from_u16(std::uint16_t(type << 8 | (rack & 0x07) << 5 | (slot & 0x1F)));
}

std::optional<std::uint16_t> Tsap::as_u16() const {
  if (bytes.size() != 2) return std::nullopt;
  return std::uint16_t(bytes[0] << 8 | bytes[1]);
}

std::string Tsap::to_string() const {
  if (auto v = as_u16()) return detail::hex16(*v);
  const bool printable = !bytes.empty() && std::all_of(bytes.begin(), bytes.end(), [](auto b) {
    return b >= 0x20 && b < 0x7F && b != '"';
  });
  if (printable) return "\"" + std::string(bytes.begin(), bytes.end()) + "\"";
  std::string s = "0x";
  for (auto b : bytes) s += detail::hex8(b).substr(2);
  return s;
}

Result<CotpTpdu> decode_cotp(ByteView tpdu) {
  Reader r(tpdu);
  const std::uint8_t li = r.u8("COTP length indicator");
  if (r.failed()) return r.error();
  if (li == 0 || li == 0xFF) {
    return WireError{WireErrorKind::bad_value, 0,
                     "COTP length indicator " + std::to_string(li) + " is not allowed"};
  }
  if (std::size_t(li) + 1 > tpdu.size()) {
    return WireError{WireErrorKind::bad_length, 0,
                     "COTP length indicator " + std::to_string(li) + " exceeds the " +
                         std::to_string(tpdu.size() - 1) + " bytes that follow it"};
  }
  const std::size_t header_end = std::size_t(li) + 1;
  const std::uint8_t code = r.u8("COTP TPDU code");
  auto expect_li = [&](std::size_t min) -> std::optional<WireError> {
    if (li < min) {
      return WireError{WireErrorKind::bad_length, 0,
                       std::string("COTP ") + detail::hex8(code) +
                           " needs a length indicator of at least " + std::to_string(min) +
                           ", got " + std::to_string(li)};
    }
    return std::nullopt;
  };
  auto no_trailing = [&](const char* name) -> std::optional<WireError> {
    if (tpdu.size() != header_end) {
      return WireError{WireErrorKind::bad_length, header_end,
                       std::string("COTP ") + name + " followed by " +
                           std::to_string(tpdu.size() - header_end) + " unexpected bytes"};
    }
    return std::nullopt;
  };

  switch (code & 0xF0) {
    case 0xE0:
    case 0xD0: {
      if (auto e = expect_li(6)) return *e;
      CotpConnect c;
      c.confirm = (code & 0xF0) == 0xD0;
      c.dst_ref = r.u16("COTP destination reference");
      c.src_ref = r.u16("COTP source reference");
      c.protocol_class = r.u8("COTP class");
      read_connect_params(r, header_end, c);
      if (r.failed()) return r.error();
      if (auto e = no_trailing(c.confirm ? "CC" : "CR")) return *e;
      return CotpTpdu{std::move(c)};
    }
    case 0xF0: {
      if (code != 0xF0) break;
      if (li != 2) {
        return WireError{
            WireErrorKind::bad_value, 0,
            "COTP DT length indicator " + std::to_string(li) + ", expected 2 (class 0)"};
      }
      const std::uint8_t nr = r.u8("COTP DT number");
      CotpData d;
      d.eot = (nr & 0x80) != 0;
      d.number = nr & 0x7F;
      d.payload.assign(tpdu.begin() + std::ptrdiff_t(header_end), tpdu.end());
      return CotpTpdu{std::move(d)};
    }
    case 0x80: {
      if (code != 0x80) break;
      if (auto e = expect_li(6)) return *e;
      CotpDisconnect d;
      d.dst_ref = r.u16("COTP destination reference");
      d.src_ref = r.u16("COTP source reference");
      d.reason = r.u8("COTP DR reason");
      if (r.failed()) return r.error();
      // DR may carry parameters (additional information) inside LI and user data after it.
      return CotpTpdu{d};
    }
    case 0xC0: {
      if (code != 0xC0) break;
      if (auto e = expect_li(5)) return *e;
      CotpDisconnect d;
      d.confirm = true;
      d.dst_ref = r.u16("COTP destination reference");
      d.src_ref = r.u16("COTP source reference");
      if (r.failed()) return r.error();
      if (auto e = no_trailing("DC")) return *e;
      return CotpTpdu{d};
    }
    case 0x70: {
      if (code != 0x70) break;
      if (auto e = expect_li(4)) return *e;
      CotpReject e;
      e.dst_ref = r.u16("COTP destination reference");
      e.cause = r.u8("COTP ER cause");
      if (r.failed()) return r.error();
      return CotpTpdu{e};  // parameters after the cause (the invalid TPDU) are informational
    }
    default:
      break;
  }
  return WireError{
      WireErrorKind::bad_value, 1,
      "COTP TPDU code " + detail::hex8(code) + " is not one of CR, CC, DT, DR, DC, ER"};
}

Bytes encode_cotp(const CotpTpdu& tpdu) {
  Bytes out;
  std::visit(
      [&out](const auto& t) {
        using T = std::decay_t<decltype(t)>;
        if constexpr (std::is_same_v<T, CotpConnect>) {
          Bytes params;
          if (t.tpdu_size_code) put_param(params, kParamTpduSize, Bytes{*t.tpdu_size_code});
          if (t.calling) put_param(params, kParamCallingTsap, t.calling->bytes);
          if (t.called) put_param(params, kParamCalledTsap, t.called->bytes);
          put_u8(out, std::uint8_t(6 + params.size()));
          put_u8(out, t.confirm ? 0xD0 : 0xE0);
          put_u16(out, t.dst_ref);
          put_u16(out, t.src_ref);
          put_u8(out, t.protocol_class);
          detail::put_bytes(out, params);
        } else if constexpr (std::is_same_v<T, CotpData>) {
          put_u8(out, 2);
          put_u8(out, 0xF0);
          put_u8(out, std::uint8_t((t.eot ? 0x80 : 0x00) | (t.number & 0x7F)));
          detail::put_bytes(out, t.payload);
        } else if constexpr (std::is_same_v<T, CotpDisconnect>) {
          put_u8(out, t.confirm ? 5 : 6);
          put_u8(out, t.confirm ? 0xC0 : 0x80);
          put_u16(out, t.dst_ref);
          put_u16(out, t.src_ref);
          if (!t.confirm) put_u8(out, t.reason);
        } else {
          put_u8(out, 4);
          put_u8(out, 0x70);
          put_u16(out, t.dst_ref);
          put_u8(out, t.cause);
        }
      },
      tpdu);
  return out;
}

const char* cotp_name(const CotpTpdu& tpdu) {
  if (auto c = std::get_if<CotpConnect>(&tpdu)) return c->confirm ? "CC" : "CR";
  if (std::holds_alternative<CotpData>(tpdu)) return "DT";
  if (auto d = std::get_if<CotpDisconnect>(&tpdu)) return d->confirm ? "DC" : "DR";
  return "ER";
}

CotpReassembler::CotpReassembler(std::size_t max_pdu, std::size_t max_fragments)
    : max_pdu_(max_pdu), max_fragments_(max_fragments) {}

Result<std::optional<Bytes>> CotpReassembler::add(CotpData dt) {
  if (dt.payload.empty() && !dt.eot) {
    return std::optional<Bytes>{};  // "fast acknowledge": carries nothing, dropped
  }
  if (pending_.size() + dt.payload.size() > max_pdu_) {
    const std::size_t total = pending_.size() + dt.payload.size();
    pending_.clear();
    fragments_ = 0;
    return WireError{WireErrorKind::too_large, 0,
                     "PDU split over DT TPDUs grows to " + std::to_string(total) +
                         " bytes, above the limit of " + std::to_string(max_pdu_)};
  }
  if (++fragments_ > max_fragments_) {
    pending_.clear();
    fragments_ = 0;
    return WireError{WireErrorKind::too_large, 0,
                     "PDU split over more than " + std::to_string(max_fragments_) + " DT TPDUs"};
  }
  if (!dt.eot) {
    pending_.insert(pending_.end(), dt.payload.begin(), dt.payload.end());
    return std::optional<Bytes>{};
  }
  Bytes pdu;
  if (pending_.empty()) {
    pdu = std::move(dt.payload);
  } else {
    pdu = std::move(pending_);
    pdu.insert(pdu.end(), dt.payload.begin(), dt.payload.end());
  }
  pending_.clear();
  fragments_ = 0;
  if (pdu.empty()) {
    return WireError{WireErrorKind::bad_length, 0, "DT with end of TSDU completes an empty PDU"};
  }
  return std::optional<Bytes>{std::move(pdu)};
}

std::vector<Bytes> frame_dt(ByteView pdu, std::size_t tpdu_size) {
  constexpr std::size_t kDtHeader = 3;
  const std::size_t chunk = std::max<std::size_t>(tpdu_size, kDtHeader + 1) - kDtHeader;
  std::vector<Bytes> frames;
  std::size_t pos = 0;
  do {
    const std::size_t n = std::min(chunk, pdu.size() - pos);
    CotpData dt;
    dt.eot = pos + n == pdu.size();
    dt.payload.assign(pdu.begin() + std::ptrdiff_t(pos), pdu.begin() + std::ptrdiff_t(pos + n));
    frames.push_back(tpkt_wrap(encode_cotp(dt)));
    pos += n;
  } while (pos < pdu.size());
  return frames;
}

}  // namespace scada::channel
