#include <algorithm>

#include "byte_io.h"

namespace scada::channel {

using detail::put_u16;
using detail::Reader;

namespace {

constexpr std::uint8_t kGroupCpu = 4;
constexpr std::uint8_t kSubfunctionReadSzl = 1;

bool is_szl(const Userdata& u) {
  return u.param.group == kGroupCpu && u.param.subfunction == kSubfunctionReadSzl;
}

// Fixed-width text fields in SZL records are padded with spaces or NULs.
std::string trimmed_text(ByteView v) {
  std::string s(v.begin(), v.end());
  const auto end = s.find_last_not_of(std::string(" \0", 2));
  s.erase(end == std::string::npos ? 0 : end + 1);
  return s;
}

const Bytes* record_by_index(const SzlList& list, std::uint16_t index) {
  for (const auto& r : list.records) {
    if (r.size() >= 2 && std::uint16_t(r[0] << 8 | r[1]) == index) return &r;
  }
  return nullptr;
}

std::optional<WireError> expect_list(const SzlList& list, std::uint16_t id, std::size_t min_len) {
  if (list.id != id) {
    return WireError{
        WireErrorKind::bad_value, 0,
        "SZL list " + detail::hex16(list.id) + " where " + detail::hex16(id) + " was expected"};
  }
  if (list.record_length < min_len) {
    return WireError{WireErrorKind::bad_length, 4,
                     "SZL " + detail::hex16(id) + " records are " +
                         std::to_string(list.record_length) + " bytes, expected at least " +
                         std::to_string(min_len)};
  }
  return std::nullopt;
}

}  // namespace

Pdu szl_request(std::uint16_t pdu_ref, std::uint8_t sequence, SzlRequest req) {
  Userdata u;
  u.param = UserdataParam{0x11, 4, kGroupCpu, kSubfunctionReadSzl, sequence, false, 0, false, 0};
  u.data.return_code = 0xFF;
  u.data.size = DataSize::octet_string;
  put_u16(u.data.payload, req.id);
  put_u16(u.data.payload, req.index);
  return Pdu{Header{Rosctr::userdata, 0, pdu_ref}, std::move(u)};
}

Pdu szl_continue(std::uint16_t pdu_ref, const UserdataParam& previous) {
  Userdata u;
  u.param = UserdataParam{
      0x12,  4, kGroupCpu, kSubfunctionReadSzl, previous.sequence, true, previous.data_unit_ref,
      false, 0};
  u.data.return_code = 0x0A;
  u.data.size = DataSize::null;
  return Pdu{Header{Rosctr::userdata, 0, pdu_ref}, std::move(u)};
}

std::optional<SzlRequest> szl_id_of(const Pdu& pdu) {
  const auto* u = std::get_if<Userdata>(&pdu.body);
  if (!u || !is_szl(*u) || u->data.return_code != 0xFF || u->data.payload.size() < 4) {
    return std::nullopt;
  }
  const auto& p = u->data.payload;
  return SzlRequest{std::uint16_t(p[0] << 8 | p[1]), std::uint16_t(p[2] << 8 | p[3])};
}

Result<std::optional<SzlList>> SzlAssembler::add(const Userdata& response) {
  if (!is_szl(response) || response.param.type != 8) {
    return WireError{WireErrorKind::bad_value, 0, "userdata PDU is not an SZL read response"};
  }
  if (response.param.error != 0) {
    return WireError{WireErrorKind::bad_value, 0,
                     "SZL read refused: " + s7_error_text(response.param.error)};
  }
  if (response.data.return_code != 0xFF) {
    return WireError{
        WireErrorKind::bad_value, 0,
        std::string("SZL read refused: ") + return_code_text(response.data.return_code)};
  }
  if (joined_.size() + response.data.payload.size() > max_bytes_) {
    return WireError{WireErrorKind::too_large, 0,
                     "SZL answer grows beyond " + std::to_string(max_bytes_) + " bytes"};
  }
  if (response.param.more_follows && response.data.payload.empty()) {
    return WireError{
        WireErrorKind::bad_value, 0,
        "SZL answer piece " + std::to_string(pieces_ + 1) + " announces more but carries no data"};
  }
  if (++pieces_ > max_pieces_) {
    return WireError{WireErrorKind::too_large, 0,
                     "SZL answer comes in more than " + std::to_string(max_pieces_) + " pieces"};
  }
  joined_.insert(joined_.end(), response.data.payload.begin(), response.data.payload.end());
  started_ = true;
  if (response.param.more_follows) return std::optional<SzlList>{};

  Bytes joined = std::move(joined_);
  joined_.clear();
  pieces_ = 0;
  started_ = false;
  Reader r(joined);
  SzlList list;
  list.id = r.u16("SZL id");
  list.index = r.u16("SZL index");
  list.record_length = r.u16("SZL record length");
  const std::uint16_t count = r.u16("SZL record count");
  if (r.failed()) return r.error();
  if (list.record_length == 0 && count != 0) {
    return WireError{WireErrorKind::bad_length, 4, "SZL records of length 0"};
  }
  if (std::size_t(list.record_length) * count > r.remaining()) {
    return WireError{WireErrorKind::bad_length, 6,
                     std::to_string(count) + " SZL records of " +
                         std::to_string(list.record_length) + " bytes need " +
                         std::to_string(std::size_t(list.record_length) * count) + " bytes, " +
                         std::to_string(r.remaining()) + " present"};
  }
  list.records.reserve(count);
  for (std::size_t i = 0; i < count; ++i)
    list.records.push_back(r.bytes(list.record_length, "SZL record"));
  return std::optional<SzlList>{std::move(list)};
}

Bytes szl_serialize(const SzlList& list) {
  Bytes out;
  put_u16(out, list.id);
  put_u16(out, list.index);
  put_u16(out, list.record_length);
  put_u16(out, std::uint16_t(list.records.size()));
  for (const auto& rec : list.records) {
    Bytes padded = rec;
    padded.resize(list.record_length, 0x00);
    detail::put_bytes(out, padded);
  }
  return out;
}

std::vector<Pdu> szl_responses(std::uint16_t pdu_ref, std::uint8_t sequence, std::uint8_t unit_ref,
                               const SzlList& list, std::size_t pdu_size) {
  // Userdata response: 10-byte header, 12-byte parameter, 4-byte data header, then the piece.
  constexpr std::size_t kOverhead = 10 + 12 + 4;
  const std::size_t piece = std::max<std::size_t>(pdu_size, kOverhead + 2) - kOverhead;
  const Bytes all = szl_serialize(list);
  std::vector<Pdu> out;
  std::size_t pos = 0;
  do {
    const std::size_t n = std::min(piece, all.size() - pos);
    Userdata u;
    u.param = UserdataParam{
        0x12, 8, kGroupCpu, kSubfunctionReadSzl, sequence, true, unit_ref, pos + n < all.size(), 0};
    u.data.return_code = 0xFF;
    u.data.size = DataSize::octet_string;
    u.data.payload.assign(all.begin() + std::ptrdiff_t(pos), all.begin() + std::ptrdiff_t(pos + n));
    out.push_back(Pdu{Header{Rosctr::userdata, 0, pdu_ref}, std::move(u)});
    pos += n;
  } while (pos < all.size());
  return out;
}

Result<ModuleIdentification> parse_szl_0011(const SzlList& list) {
  if (auto e = expect_list(list, 0x0011, 28)) return *e;
  ModuleIdentification m;
  const Bytes* order = record_by_index(list, 0x0001);
  if (!order) {
    return WireError{WireErrorKind::bad_value, 0, "SZL 0x0011 has no record with index 0x0001"};
  }
  m.order_number = trimmed_text(ByteView(*order).subspan(2, 20));
  if (const Bytes* fw = record_by_index(list, 0x0007)) {
    // 'V' major minor patch in the record's last four bytes.
    if ((*fw)[24] == 'V') {
      m.firmware = "V" + std::to_string((*fw)[25]) + "." + std::to_string((*fw)[26]) + "." +
                   std::to_string((*fw)[27]);
    }
  }
  return m;
}

Result<ComponentIdentification> parse_szl_001c(const SzlList& list) {
  if (auto e = expect_list(list, 0x001C, 34)) return *e;
  ComponentIdentification c;
  auto text = [&](std::uint16_t index) -> std::string {
    const Bytes* r = record_by_index(list, index);
    return r ? trimmed_text(ByteView(*r).subspan(2, 32)) : std::string();
  };
  c.station_name = text(1);
  c.plc_name = text(2);
  c.serial_number = text(5);
  c.module_type = text(7);
  return c;
}

Result<CpuMode> parse_szl_0424(const SzlList& list) {
  if (auto e = expect_list(list, 0x0424, 4)) return *e;
  if (list.records.empty()) {
    return WireError{WireErrorKind::bad_length, 6, "SZL 0x0424 has no record"};
  }
  switch (list.records.front()[3]) {
    case 0x08:
      return CpuMode::run;
    case 0x04:
      return CpuMode::stop;
    default:
      return CpuMode::unknown;
  }
}

}  // namespace scada::channel
