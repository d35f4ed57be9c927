#include <array>

#include "byte_io.h"

namespace scada::channel {

using detail::put_bytes;
using detail::put_u16;
using detail::put_u24;
using detail::put_u8;
using detail::Reader;

namespace {

constexpr std::uint8_t kProtocolId = 0x32;
constexpr std::uint8_t kItemSpecType = 0x12;
constexpr std::uint8_t kItemSpecLength = 0x0A;
constexpr std::uint8_t kSyntaxS7Any = 0x10;

bool length_in_bits(DataSize s) {
  return s == DataSize::bit || s == DataSize::byte_word_dword || s == DataSize::integer;
}

bool known_data_size(std::uint8_t v) {
  switch (v) {
    case 0x00:
    case 0x03:
    case 0x04:
    case 0x05:
    case 0x06:
    case 0x07:
    case 0x09:
      return true;
    default:
      return false;
  }
}

std::uint16_t length_field(const DataItem& d) {
  if (d.size == DataSize::bit) return std::uint16_t(d.data.size());
  if (length_in_bits(d.size)) return std::uint16_t(d.data.size() * 8);
  return std::uint16_t(d.data.size());
}

void put_item_spec(Bytes& out, const VarItem& item) {
  put_u8(out, kItemSpecType);
  put_u8(out, kItemSpecLength);
  put_u8(out, kSyntaxS7Any);
  put_u8(out, std::uint8_t(item.transport));
  put_u16(out, item.count);
  put_u16(out, item.db);
  put_u8(out, std::uint8_t(item.area));
  put_u24(out, item.address);
}

// Data items of Read Var replies and Write Var requests: RC DTS LEN(2) data [fill].
void put_data_items(Bytes& out, const std::vector<DataItem>& items) {
  for (std::size_t i = 0; i < items.size(); ++i) {
    const DataItem& d = items[i];
    put_u8(out, d.return_code);
    put_u8(out, std::uint8_t(d.size));
    put_u16(out, length_field(d));
    put_bytes(out, d.data);
    if (d.data.size() % 2 == 1 && i + 1 < items.size()) put_u8(out, 0x00);
  }
}

void read_item_specs(Reader& r, std::size_t count, std::vector<VarItem>& items) {
  items.reserve(count);
  for (std::size_t i = 0; i < count && !r.failed(); ++i) {
    const std::size_t at = r.pos();
    const std::uint8_t spec = r.u8("item specification type");
    const std::uint8_t len = r.u8("item specification length");
    const std::uint8_t syntax = r.u8("item syntax id");
    if (r.failed()) return;
    if (spec != kItemSpecType || len != kItemSpecLength) {
      r.fail_at(at, WireErrorKind::bad_value,
                "item " + std::to_string(i + 1) + " starts " + detail::hex8(spec) + " " +
                    detail::hex8(len) + ", expected 0x12 0x0A");
      return;
    }
    if (syntax != kSyntaxS7Any) {
      r.fail_at(at + 2, WireErrorKind::bad_value,
                "item " + std::to_string(i + 1) + " syntax id " + detail::hex8(syntax) +
                    " is not S7ANY (0x10)");
      return;
    }
    VarItem item;
    item.transport = TransportSize(r.u8("item transport size"));
    item.count = r.u16("item count");
    item.db = r.u16("item DB number");
    item.area = Area(r.u8("item area"));
    item.address = r.u24("item address");
    items.push_back(item);
  }
}

// replies: an item with a return code other than 0xFF carries no data, whatever LEN says.
void read_data_items(Reader& r, std::size_t count, bool reply, std::vector<DataItem>& items) {
  items.reserve(count);
  for (std::size_t i = 0; i < count && !r.failed(); ++i) {
    DataItem d;
    d.return_code = r.u8("data item return code");
    const std::size_t size_at = r.pos();
    const std::uint8_t size = r.u8("data item transport size");
    const std::uint16_t len = r.u16("data item length");
    if (r.failed()) return;
    if (reply && d.return_code != 0xFF) {
      d.size = DataSize(size);
      items.push_back(std::move(d));
      continue;
    }
    if (!known_data_size(size)) {
      r.fail_at(size_at, WireErrorKind::bad_value,
                "data item " + std::to_string(i + 1) + " transport size " + detail::hex8(size) +
                    " is unknown");
      return;
    }
    d.size = DataSize(size);
    std::size_t bytes = len;
    if (d.size == DataSize::bit) {
      // BIT items carry exactly one bit (COUNT 1), sent as one byte.
      if (len != 1) {
        r.fail_at(size_at + 1, WireErrorKind::bad_value,
                  "data item " + std::to_string(i + 1) + " is a BIT item of length " +
                      std::to_string(len) + ", expected 1");
        return;
      }
      bytes = 1;
    } else if (length_in_bits(d.size)) {
      if (len % 8 != 0) {
        r.fail_at(size_at + 1, WireErrorKind::bad_length,
                  "data item " + std::to_string(i + 1) + " length " + std::to_string(len) +
                      " bits is not a whole number of bytes");
        return;
      }
      bytes = len / 8;
    }
    d.data = r.bytes(bytes, "data item value");
    if (bytes % 2 == 1 && i + 1 < count) r.skip(1, "fill byte");
    items.push_back(std::move(d));
  }
}

Result<Body> decode_userdata(ByteView param, ByteView data, std::size_t param_at) {
  Reader r(param, param_at);
  Userdata u;
  const std::uint8_t head0 = r.u8("userdata parameter head");
  const std::uint8_t head1 = r.u8("userdata parameter head");
  const std::uint8_t head2 = r.u8("userdata parameter head");
  const std::uint8_t len = r.u8("userdata parameter length");
  if (r.failed()) return r.error();
  if (head0 != 0x00 || head1 != 0x01 || head2 != 0x12) {
    return WireError{WireErrorKind::bad_value, param_at,
                     "userdata parameter head " + detail::hex8(head0) + " " + detail::hex8(head1) +
                         " " + detail::hex8(head2) + ", expected 0x00 0x01 0x12"};
  }
  if ((len != 4 && len != 8) || std::size_t(len) + 4 != param.size()) {
    return WireError{WireErrorKind::bad_length, param_at + 3,
                     "userdata parameter length " + std::to_string(len) + " with " +
                         std::to_string(param.size()) +
                         " parameter bytes (expected 4 or 8, plus 4)"};
  }
  u.param.method = r.u8("userdata method");
  const std::uint8_t type_group = r.u8("userdata type and group");
  u.param.type = type_group >> 4;
  u.param.group = type_group & 0x0F;
  u.param.subfunction = r.u8("userdata subfunction");
  u.param.sequence = r.u8("userdata sequence number");
  if (len == 8) {
    u.param.long_form = true;
    u.param.data_unit_ref = r.u8("userdata data unit reference");
    const std::size_t last_at = r.pos();
    const std::uint8_t last = r.u8("userdata last data unit");
    if (last > 1) {
      r.fail_at(last_at, WireErrorKind::bad_value,
                "userdata last-data-unit byte " + detail::hex8(last) + ", expected 0x00 or 0x01");
    }
    u.param.more_follows = last == 1;
    u.param.error = r.u16("userdata error code");
  }
  if (r.failed()) return r.error();

  if (!data.empty()) {
    const std::size_t data_at = param_at + param.size();
    Reader d(data, data_at);
    u.data.return_code = d.u8("userdata return code");
    u.data.size = DataSize(d.u8("userdata transport size"));
    const std::uint16_t n = d.u16("userdata data length");
    if (d.failed()) return d.error();
    if (n != d.remaining()) {
      return WireError{WireErrorKind::bad_length, data_at + 2,
                       "userdata data length " + std::to_string(n) + " but " +
                           std::to_string(d.remaining()) + " bytes follow"};
    }
    u.data.payload = d.bytes(n, "userdata payload");
  } else {
    u.data.return_code = 0;
    u.data.size = DataSize::null;
  }
  return Body{std::move(u)};
}

Result<Body> decode_body(const Header& h, ByteView param, ByteView data, std::size_t param_at) {
  if (h.rosctr == Rosctr::userdata) return decode_userdata(param, data, param_at);
  if (param.empty()) {
    if (!data.empty()) {
      return WireError{WireErrorKind::bad_length, param_at,
                       std::to_string(data.size()) + " data bytes without a parameter"};
    }
    return Body{NoBody{}};
  }
  const std::uint8_t func = param[0];
  const bool job = h.rosctr == Rosctr::job;
  const bool reply = h.rosctr == Rosctr::ack_data;
  if (h.rosctr == Rosctr::ack || (reply && h.error() != 0 && data.empty())) {
    // An Ack, or a refused job echoing only its function: nothing more to model.
    return Body{OtherFunction{Bytes(param.begin(), param.end()), Bytes(data.begin(), data.end())}};
  }
  Reader p(param, param_at);
  const std::size_t data_at = param_at + param.size();
  Reader d(data, data_at);
  switch (func) {
    case std::uint8_t(Function::setup_communication): {
      if (param.size() != 8) {
        return WireError{WireErrorKind::bad_length, param_at,
                         "setup communication parameter has " + std::to_string(param.size()) +
                             " bytes, expected 8"};
      }
      p.skip(2, "setup communication function and reserved byte");
      SetupCommunication s;
      s.amq_calling = p.u16("AmQ calling");
      s.amq_called = p.u16("AmQ called");
      s.pdu_size = p.u16("PDU size");
      if (!data.empty()) {
        return WireError{WireErrorKind::bad_length, data_at,
                         "setup communication carries " + std::to_string(data.size()) +
                             " data bytes, expected none"};
      }
      return Body{s};
    }
    case std::uint8_t(Function::read_var):
    case std::uint8_t(Function::write_var): {
      const bool read = func == std::uint8_t(Function::read_var);
      p.skip(1, "function");
      const std::uint8_t count = p.u8("item count");
      if (p.failed()) return p.error();
      if (job) {
        const std::size_t expected = 2 + 12 * std::size_t(count);
        if (param.size() != expected) {
          return WireError{WireErrorKind::bad_length, param_at + 1,
                           std::to_string(count) + " items need a " + std::to_string(expected) +
                               "-byte parameter, the header says " + std::to_string(param.size())};
        }
        std::vector<VarItem> items;
        read_item_specs(p, count, items);
        if (p.failed()) return p.error();
        if (read) {
          if (!data.empty()) {
            return WireError{WireErrorKind::bad_length, data_at,
                             "Read Var request carries " + std::to_string(data.size()) +
                                 " data bytes, expected none"};
          }
          return Body{ReadVarRequest{std::move(items)}};
        }
        WriteVarRequest w{std::move(items), {}};
        read_data_items(d, count, false, w.data);
        if (d.failed()) return d.error();
        if (!d.at_end()) {
          return WireError{WireErrorKind::bad_length, d.offset(),
                           std::to_string(d.remaining()) + " bytes after the last write data item"};
        }
        return Body{std::move(w)};
      }
      if (!reply) break;
      if (param.size() != 2) {
        return WireError{WireErrorKind::bad_length, param_at,
                         std::string(read ? "Read" : "Write") + " Var reply parameter has " +
                             std::to_string(param.size()) + " bytes, expected 2"};
      }
      if (read) {
        ReadVarResponse resp;
        read_data_items(d, count, true, resp.items);
        if (d.failed()) return d.error();
        if (!d.at_end()) {
          return WireError{WireErrorKind::bad_length, d.offset(),
                           std::to_string(d.remaining()) + " bytes after the last read data item"};
        }
        return Body{std::move(resp)};
      }
      if (data.size() != count) {
        return WireError{WireErrorKind::bad_length, data_at,
                         "Write Var reply for " + std::to_string(count) + " items carries " +
                             std::to_string(data.size()) + " return codes"};
      }
      return Body{WriteVarResponse{Bytes(data.begin(), data.end())}};
    }
    default:
      break;
  }
  return Body{OtherFunction{Bytes(param.begin(), param.end()), Bytes(data.begin(), data.end())}};
}

}  // namespace

const char* rosctr_name(Rosctr r) {
  switch (r) {
    case Rosctr::job:
      return "Job";
    case Rosctr::ack:
      return "Ack";
    case Rosctr::ack_data:
      return "Ack_Data";
    case Rosctr::userdata:
      return "Userdata";
  }
  return "?";
}

const char* function_name(std::uint8_t f) {
  switch (f) {
    case 0x00:
      return "CPU services";
    case 0xF0:
      return "Setup communication";
    case 0x04:
      return "Read Var";
    case 0x05:
      return "Write Var";
    case 0x1A:
      return "Request download";
    case 0x1B:
      return "Download block";
    case 0x1C:
      return "Download ended";
    case 0x1D:
      return "Start upload";
    case 0x1E:
      return "Upload";
    case 0x1F:
      return "End upload";
    case 0x28:
      return "PLC control";
    case 0x29:
      return "PLC stop";
    default:
      return "Unknown function";
  }
}

const char* area_name(Area a) {
  switch (a) {
    case Area::peripheral:
      return "P";
    case Area::inputs:
      return "I";
    case Area::outputs:
      return "Q";
    case Area::flags:
      return "M";
    case Area::data_block:
      return "DB";
    case Area::instance_db:
      return "DI";
    case Area::counters:
      return "C";
    case Area::timers:
      return "T";
  }
  return "?";
}

const char* return_code_text(std::uint8_t rc) {
  switch (rc) {
    case 0x00:
      return "reserved";
    case 0x01:
      return "hardware fault";
    case 0x03:
      return "access denied";
    case 0x05:
      return "address out of range";
    case 0x06:
      return "data type not supported";
    case 0x07:
      return "data type inconsistent";
    case 0x0A:
      return "object does not exist";
    case 0xFF:
      return "success";
    default:
      return "unknown return code";
  }
}

std::string s7_error_text(std::uint16_t error) {
  switch (error) {
    case 0x0000:
      return "no error";
    case 0x8104:
      return "service unsupported or frame error";
    case 0x8500:
      return "wrong PDU size (PDU too large)";
    case 0x8701:
      return "addressing error";
    case 0x8702:
      return "not supported";
    case 0x8703:
      return "access refused";
    case 0xD209:
      return "block not found";
    case 0xD401:
      return "invalid SZL id";
    case 0xD402:
      return "information function unavailable";
    case 0xD404:
      return "information function not available now";
    case 0xD602:
      return "wrong password";
    default:
      return "error " + detail::hex16(error);
  }
}

Result<Pdu> decode_s7(ByteView bytes) {
  Reader r(bytes);
  Pdu pdu;
  const std::uint8_t id = r.u8("S7comm protocol id");
  if (r.failed()) return r.error();
  if (id != kProtocolId) {
    return WireError{WireErrorKind::bad_value, 0,
                     "protocol id " + detail::hex8(id) + ", expected 0x32 (S7comm)"};
  }
  const std::uint8_t rosctr = r.u8("ROSCTR");
  if (r.failed()) return r.error();
  if (rosctr != 1 && rosctr != 2 && rosctr != 3 && rosctr != 7) {
    return WireError{WireErrorKind::bad_value, 1,
                     "ROSCTR " + detail::hex8(rosctr) + " is not Job, Ack, Ack_Data or Userdata"};
  }
  Header& h = pdu.header;
  h.rosctr = Rosctr(rosctr);
  h.redundancy = r.u16("redundancy identification");
  h.pdu_ref = r.u16("PDU reference");
  h.param_length = r.u16("parameter length");
  h.data_length = r.u16("data length");
  if (h.size() == 12) {
    h.error_class = r.u8("error class");
    h.error_code = r.u8("error code");
  }
  if (r.failed()) return r.error();
  const std::size_t body = std::size_t(h.param_length) + h.data_length;
  if (r.remaining() != body) {
    return WireError{WireErrorKind::bad_length, 6,
                     "header announces " + std::to_string(h.param_length) + " parameter + " +
                         std::to_string(h.data_length) + " data bytes, " +
                         std::to_string(r.remaining()) + " follow the header"};
  }
  const std::size_t param_at = r.pos();
  ByteView param = r.take(h.param_length, "parameter");
  ByteView data = r.take(h.data_length, "data");
  auto decoded = decode_body(h, param, data, param_at);
  if (!decoded) return decoded.error();
  pdu.body = std::move(decoded).value();
  return pdu;
}

Bytes encode_s7(const Pdu& pdu) {
  Bytes param, data;
  std::visit(
      [&](const auto& b) {
        using T = std::decay_t<decltype(b)>;
        if constexpr (std::is_same_v<T, SetupCommunication>) {
          put_u8(param, 0xF0);
          put_u8(param, 0x00);
          put_u16(param, b.amq_calling);
          put_u16(param, b.amq_called);
          put_u16(param, b.pdu_size);
        } else if constexpr (std::is_same_v<T, ReadVarRequest>) {
          put_u8(param, 0x04);
          put_u8(param, std::uint8_t(b.items.size()));
          for (const auto& item : b.items) put_item_spec(param, item);
        } else if constexpr (std::is_same_v<T, ReadVarResponse>) {
          put_u8(param, 0x04);
          put_u8(param, std::uint8_t(b.items.size()));
          put_data_items(data, b.items);
        } else if constexpr (std::is_same_v<T, WriteVarRequest>) {
          put_u8(param, 0x05);
          put_u8(param, std::uint8_t(b.items.size()));
          for (const auto& item : b.items) put_item_spec(param, item);
          put_data_items(data, b.data);
        } else if constexpr (std::is_same_v<T, WriteVarResponse>) {
          put_u8(param, 0x05);
          put_u8(param, std::uint8_t(b.return_codes.size()));
          put_bytes(data, b.return_codes);
        } else if constexpr (std::is_same_v<T, Userdata>) {
          const UserdataParam& u = b.param;
          put_u8(param, 0x00);
          put_u8(param, 0x01);
          put_u8(param, 0x12);
          put_u8(param, u.long_form ? 8 : 4);
          put_u8(param, u.method);
          put_u8(param, std::uint8_t(u.type << 4 | (u.group & 0x0F)));
          put_u8(param, u.subfunction);
          put_u8(param, u.sequence);
          if (u.long_form) {
            put_u8(param, u.data_unit_ref);
            put_u8(param, u.more_follows ? 1 : 0);
            put_u16(param, u.error);
          }
          if (b.data.return_code != 0 || b.data.size != DataSize::null || !b.data.payload.empty()) {
            put_u8(data, b.data.return_code);
            put_u8(data, std::uint8_t(b.data.size));
            put_u16(data, std::uint16_t(b.data.payload.size()));
            put_bytes(data, b.data.payload);
          }
        } else if constexpr (std::is_same_v<T, OtherFunction>) {
          param = b.param;
          data = b.data;
        }
      },
      pdu.body);

  const Header& h = pdu.header;
  Bytes out;
  out.reserve(h.size() + param.size() + data.size());
  put_u8(out, kProtocolId);
  put_u8(out, std::uint8_t(h.rosctr));
  put_u16(out, h.redundancy);
  put_u16(out, h.pdu_ref);
  put_u16(out, std::uint16_t(param.size()));
  put_u16(out, std::uint16_t(data.size()));
  if (h.size() == 12) {
    put_u8(out, h.error_class);
    put_u8(out, h.error_code);
  }
  put_bytes(out, param);
  put_bytes(out, data);
  return out;
}

std::optional<std::uint8_t> function_of(const Pdu& pdu) {
  return std::visit(
      [](const auto& b) -> std::optional<std::uint8_t> {
        using T = std::decay_t<decltype(b)>;
        if constexpr (std::is_same_v<T, SetupCommunication>)
          return 0xF0;
        else if constexpr (std::is_same_v<T, ReadVarRequest> || std::is_same_v<T, ReadVarResponse>)
          return 0x04;
        else if constexpr (std::is_same_v<T, WriteVarRequest> ||
                           std::is_same_v<T, WriteVarResponse>)
          return 0x05;
        else if constexpr (std::is_same_v<T, OtherFunction>) {
          if (b.param.empty()) return std::nullopt;
          return b.param[0];
        } else
          return std::nullopt;
      },
      pdu.body);
}

}  // namespace scada::channel
