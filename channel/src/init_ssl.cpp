#include <algorithm>

#include "byte_io.h"

namespace scada::channel {

using detail::Reader;

// InitSSL travels in a COTP DT before TLS starts (WIRE.md §5). Its frame is that of the
// S7CommPlus protocol: 72 01 LEN(2) body 72 01 00 00. The body starts with an opcode
// (0x31 request, 0x32 response), two reserved bytes and the function (0x05B3 InitSSL; a PLC
// without secure communication answers 0x05A9). In the response the return value is the byte
// after the reserved word, sequence number and transport flags (body offset 10).

namespace {
const Bytes kRequestBody = {0x31, 0x00, 0x00, 0x05, 0xB3, 0x00, 0x00, 0x00, 0x00,
                            0x30, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
constexpr std::size_t kResponseBodySize = 16;
constexpr std::size_t kReturnValueOffset = 10;

Bytes frame(const Bytes& body) {
  Bytes out(body.size() + 8);
  out[0] = 0x72;
  out[1] = 0x01;
  out[2] = std::uint8_t(body.size() >> 8);
  out[3] = std::uint8_t(body.size());
  std::copy(body.begin(), body.end(), out.begin() + 4);
  out[body.size() + 4] = 0x72;
  out[body.size() + 5] = 0x01;  // the two bytes after stay 00
  return out;
}
}  // namespace

Bytes encode_init_ssl_request() {
  return frame(kRequestBody);
}

Bytes encode_init_ssl_response(std::uint16_t function, std::uint8_t return_value) {
  Bytes body(kResponseBodySize, 0x00);
  body[0] = 0x32;
  body[3] = std::uint8_t(function >> 8);
  body[4] = std::uint8_t(function);
  body[9] = 0x70;
  body[kReturnValueOffset] = return_value;
  return frame(body);
}

Result<InitSsl> decode_init_ssl(ByteView payload) {
  Reader r(payload);
  const std::uint8_t proto = r.u8("InitSSL protocol id");
  const std::uint8_t version = r.u8("InitSSL version");
  const std::uint16_t len = r.u16("InitSSL length");
  if (r.failed()) return r.error();
  if (proto != 0x72 || version != 0x01) {
    return WireError{WireErrorKind::bad_value, 0,
                     "InitSSL frame starts " + detail::hex8(proto) + " " + detail::hex8(version) +
                         ", expected 0x72 0x01"};
  }
  if (std::size_t(len) + 8 != payload.size()) {
    return WireError{WireErrorKind::bad_length, 2,
                     "InitSSL length " + std::to_string(len) + " with " +
                         std::to_string(payload.size()) +
                         " bytes in the frame (expected length + 8)"};
  }
  Reader body(payload.subspan(4, len), 4);
  InitSsl m;
  const std::uint8_t opcode = body.u8("InitSSL opcode");
  body.skip(2, "InitSSL reserved");
  m.function = body.u16("InitSSL function");
  if (body.failed()) return body.error();
  if (opcode != 0x31 && opcode != 0x32) {
    return WireError{WireErrorKind::bad_value, 4,
                     "InitSSL opcode " + detail::hex8(opcode) + ", expected 0x31 or 0x32"};
  }
  m.response = opcode == 0x32;
  if (m.response && m.function == 0x05B3) {
    if (len <= kReturnValueOffset) {
      return WireError{WireErrorKind::truncated, std::size_t(4) + len,
                       "InitSSL response too short for its return value"};
    }
    m.return_value = payload[4 + kReturnValueOffset];
  }
  const std::size_t trailer = 4 + len;
  if (payload[trailer] != 0x72 || payload[trailer + 1] != 0x01 || payload[trailer + 2] != 0 ||
      payload[trailer + 3] != 0) {
    return WireError{WireErrorKind::bad_value, trailer, "InitSSL trailer is not 72 01 00 00"};
  }
  return m;
}

}  // namespace scada::channel
