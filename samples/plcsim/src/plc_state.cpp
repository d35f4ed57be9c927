#include "plc_state.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>
#include <utility>

namespace scada::plcsim {

using channel::Area;
using channel::Bytes;
using channel::DataItem;
using channel::DataSize;
using channel::TransportSize;
using channel::VarItem;

namespace {

constexpr std::uint8_t kOk = 0xFF;
constexpr std::uint8_t kOutOfRange = 0x05;
constexpr std::uint8_t kTypeNotSupported = 0x06;
constexpr std::uint8_t kTypeInconsistent = 0x07;
constexpr std::uint8_t kNoObject = 0x0A;

// A byte address is 24 bits of byte * 8 + bit, so no byte area can be addressed beyond 2 MiB.
constexpr std::size_t kMaxAreaBytes = std::size_t{1} << 21;
constexpr std::size_t kProcessBlockMin = 14;   // DInt, Real, Real, Int
constexpr std::size_t kProcessBlockSize = 16;  // when plcsim adds the block itself
constexpr std::uint32_t kSawtoothTicks = 100;  // ticks per sawtooth ramp and per sine period

constexpr std::size_t kSzl0011Record = 28, kSzl001cRecord = 34, kSzl0424Record = 20;

bool byte_area(Area a) {
  switch (a) {
    case Area::inputs:
    case Area::outputs:
    case Area::flags:
    case Area::data_block:
    case Area::instance_db:
      return true;
    default:
      return false;
  }
}

bool block_area(Area a) {
  return a == Area::data_block || a == Area::instance_db;
}

DataSize reply_size(TransportSize t) {
  switch (t) {
    case TransportSize::bit:
      return DataSize::bit;
    case TransportSize::integer:
    case TransportSize::dinteger:
      return DataSize::integer;
    case TransportSize::real:
      return DataSize::real;
    case TransportSize::counter:
    case TransportSize::timer:
      return DataSize::octet_string;
    default:
      return DataSize::byte_word_dword;
  }
}

std::string area_text(Area area, std::uint16_t db) {
  if (block_area(area)) return std::string(channel::area_name(area)) + std::to_string(db);
  return channel::area_name(area);
}

void put_u32(Bytes& mem, std::size_t at, std::uint32_t v) {
  mem[at] = std::uint8_t(v >> 24);
  mem[at + 1] = std::uint8_t(v >> 16);
  mem[at + 2] = std::uint8_t(v >> 8);
  mem[at + 3] = std::uint8_t(v);
}

std::uint32_t get_u32(const Bytes& mem, std::size_t at) {
  return std::uint32_t(mem[at]) << 24 | std::uint32_t(mem[at + 1]) << 16 |
         std::uint32_t(mem[at + 2]) << 8 | mem[at + 3];
}

// "V2.9.4" -> {2, 9, 4}; throws std::invalid_argument.
std::array<std::uint8_t, 3> parse_firmware(const std::string& text) {
  std::array<std::uint8_t, 3> v{};
  std::size_t pos = 1, part = 0;
  const auto bad = [&] {
    return std::invalid_argument("firmware \"" + text +
                                 "\" is not V<major>.<minor>.<patch> with parts 0..255");
  };
  if (text.size() < 6 || text[0] != 'V') throw bad();
  for (; part < 3; ++part) {
    unsigned value = 0;
    std::size_t digits = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9' && digits < 4) {
      value = value * 10 + unsigned(text[pos] - '0');
      ++pos;
      ++digits;
    }
    if (digits == 0 || value > 255) throw bad();
    v[part] = std::uint8_t(value);
    if (part < 2) {
      if (pos >= text.size() || text[pos] != '.') throw bad();
      ++pos;
    }
  }
  if (pos != text.size()) throw bad();
  return v;
}

void check_text(const char* what, const std::string& text, std::size_t max) {
  if (text.size() > max) {
    throw std::invalid_argument(std::string(what) + " \"" + text + "\" is longer than " +
                                std::to_string(max) + " characters");
  }
}

void check_area_size(const std::string& what, std::size_t bytes) {
  if (bytes > kMaxAreaBytes) {
    throw std::invalid_argument(what + " has " + std::to_string(bytes) +
                                " bytes, more than the 24-bit S7 address reaches (" +
                                std::to_string(kMaxAreaBytes) + ")");
  }
}

// An SZL record: its 2-byte index, then text padded with NULs to the record length.
Bytes text_record(std::uint16_t index, const std::string& text, std::size_t length) {
  Bytes r(length, 0x00);
  r[0] = std::uint8_t(index >> 8);
  r[1] = std::uint8_t(index);
  std::copy_n(text.begin(), std::min(text.size(), length - 2), r.begin() + 2);
  return r;
}

}  // namespace

std::size_t element_size(TransportSize transport) {
  switch (transport) {
    case TransportSize::bit:
    case TransportSize::byte:
    case TransportSize::character:
      return 1;
    case TransportSize::word:
    case TransportSize::integer:
    case TransportSize::counter:
    case TransportSize::timer:
      return 2;
    case TransportSize::dword:
    case TransportSize::dinteger:
    case TransportSize::real:
      return 4;
  }
  return 0;
}

PlcState::PlcState(const PlcConfig& config) : config_(config) {
  if (config_.max_pdu < 240 || config_.max_pdu > 960) {
    throw std::invalid_argument("max_pdu " + std::to_string(config_.max_pdu) + " outside 240..960");
  }
  if (config_.max_amq == 0) throw std::invalid_argument("max_amq must be at least 1");
  check_area_size("inputs", config_.inputs_bytes);
  check_area_size("outputs", config_.outputs_bytes);
  check_area_size("flags", config_.flags_bytes);
  if (config_.process_db != 0) {
    auto [it, added] = config_.data_blocks.try_emplace(config_.process_db, kProcessBlockSize);
    if (!added && it->second < kProcessBlockMin) {
      throw std::invalid_argument("process_db DB" + std::to_string(config_.process_db) + " has " +
                                  std::to_string(it->second) + " bytes, process values need " +
                                  std::to_string(kProcessBlockMin));
    }
  }
  for (const auto& [number, size] : config_.data_blocks) {
    if (number == 0) throw std::invalid_argument("data block number 0 does not exist in S7");
    if (size == 0) throw std::invalid_argument("DB" + std::to_string(number) + " has 0 bytes");
    check_area_size("DB" + std::to_string(number), size);
  }
  check_text("name", config_.name, 32);
  check_text("order_number", config_.order_number, 20);
  check_text("serial_number", config_.serial_number, 32);
  check_text("module_type", config_.module_type, 32);
  parse_firmware(config_.firmware);

  inputs_.assign(config_.inputs_bytes, 0);
  outputs_.assign(config_.outputs_bytes, 0);
  flags_.assign(config_.flags_bytes, 0);
  timers_.assign(std::size_t{config_.timers} * 2, 0);
  counters_.assign(std::size_t{config_.counters} * 2, 0);
  for (const auto& [number, size] : config_.data_blocks) data_blocks_[number].assign(size, 0);
  if (config_.process_db != 0) {
    // Int tick period in ms at byte 12, saturated to the Int range.
    const auto ms = std::clamp<long long>(config_.process_period.count(), 0, 32767);
    Bytes& db = data_blocks_[config_.process_db];
    db[12] = std::uint8_t(ms >> 8);
    db[13] = std::uint8_t(ms);
  }
}

const Bytes* PlcState::memory(Area area, std::uint16_t db) const {
  switch (area) {
    case Area::inputs:
      return &inputs_;
    case Area::outputs:
      return &outputs_;
    case Area::flags:
      return &flags_;
    case Area::timers:
      return &timers_;
    case Area::counters:
      return &counters_;
    case Area::data_block:
    case Area::instance_db: {
      auto it = data_blocks_.find(db);
      return it == data_blocks_.end() ? nullptr : &it->second;
    }
    default:
      return nullptr;  // P is not simulated; other bytes are no area at all
  }
}

Bytes* PlcState::memory(Area area, std::uint16_t db) {
  return const_cast<Bytes*>(std::as_const(*this).memory(area, db));
}

PlcState::Location PlcState::locate(const VarItem& item) const {
  const Bytes* mem = memory(item.area, item.db);
  if (!mem) return {0, 0, kNoObject};
  const std::size_t element = element_size(item.transport);
  if (element == 0) return {0, 0, kTypeNotSupported};
  const bool timer = item.transport == TransportSize::timer;
  const bool counter = item.transport == TransportSize::counter;
  if (timer != (item.area == Area::timers) || counter != (item.area == Area::counters)) {
    return {0, 0, kTypeInconsistent};
  }
  if (item.count == 0) return {0, 0, kTypeInconsistent};
  const bool bit = item.transport == TransportSize::bit;
  if (bit && item.count != 1) return {0, 0, kTypeInconsistent};
  std::size_t start;
  if (byte_area(item.area)) {
    if (!bit && item.address % 8 != 0) return {0, 0, kOutOfRange};
    start = item.address / 8;
  } else {
    start = std::size_t{item.address} * 2;  // timers and counters: the address is the number
  }
  const std::size_t length = std::size_t{item.count} * element;
  if (start > mem->size() || length > mem->size() - start) return {0, 0, kOutOfRange};
  return {start, length, kOk};
}

DataItem PlcState::read_locked(const VarItem& item) const {
  const Location at = locate(item);
  if (at.return_code != kOk) return DataItem{at.return_code, DataSize::null, {}};
  const Bytes& mem = *memory(item.area, item.db);
  DataItem out{kOk, reply_size(item.transport), {}};
  if (item.transport == TransportSize::bit) {
    out.data.push_back(std::uint8_t((mem[at.offset] >> (item.address % 8)) & 1));
  } else {
    const auto first = mem.begin() + std::ptrdiff_t(at.offset);
    out.data.assign(first, first + std::ptrdiff_t(at.length));
  }
  return out;
}

std::uint8_t PlcState::write_locked(const VarItem& item, const DataItem& data) {
  const Location at = locate(item);
  if (at.return_code != kOk) return at.return_code;
  if (data.data.size() != at.length) return kTypeInconsistent;
  Bytes& mem = *memory(item.area, item.db);
  if (item.transport == TransportSize::bit) {
    const auto mask = std::uint8_t(1u << (item.address % 8));
    mem[at.offset] = data.data[0] != 0 ? std::uint8_t(mem[at.offset] | mask)
                                       : std::uint8_t(mem[at.offset] & ~mask);
  } else {
    std::copy(data.data.begin(), data.data.end(), mem.begin() + std::ptrdiff_t(at.offset));
  }
  return kOk;
}

DataItem PlcState::read(const VarItem& item) const {
  std::lock_guard lock(mutex_);
  return read_locked(item);
}

std::vector<DataItem> PlcState::read(std::span<const VarItem> items) const {
  std::lock_guard lock(mutex_);
  std::vector<DataItem> out;
  out.reserve(items.size());
  for (const auto& item : items) out.push_back(read_locked(item));
  return out;
}

std::uint8_t PlcState::write(const VarItem& item, const DataItem& data) {
  std::lock_guard lock(mutex_);
  return write_locked(item, data);
}

std::vector<std::uint8_t> PlcState::write(std::span<const VarItem> items,
                                          std::span<const DataItem> data) {
  if (items.size() != data.size()) {
    throw std::invalid_argument("Write Var with " + std::to_string(items.size()) + " items and " +
                                std::to_string(data.size()) + " data items");
  }
  std::lock_guard lock(mutex_);
  std::vector<std::uint8_t> out;
  out.reserve(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) out.push_back(write_locked(items[i], data[i]));
  return out;
}

std::size_t PlcState::raw_start(Area area, std::uint16_t db, std::uint32_t offset,
                                std::size_t length) const {
  const Bytes* mem = memory(area, db);
  if (!mem) {
    throw std::out_of_range(area_text(area, db) + " does not exist in " + config_.name);
  }
  const bool numbered = area == Area::timers || area == Area::counters;
  const std::size_t start = numbered ? std::size_t{offset} * 2 : offset;
  if (start > mem->size() || length > mem->size() - start) {
    throw std::out_of_range(area_text(area, db) + " " + std::to_string(offset) + "+" +
                            std::to_string(length) + " bytes is outside " + area_text(area, db) +
                            " of " + config_.name + " (" + std::to_string(mem->size()) + " bytes)");
  }
  return start;
}

Bytes PlcState::read_raw(Area area, std::uint16_t db, std::uint32_t offset,
                         std::size_t length) const {
  std::lock_guard lock(mutex_);
  const std::size_t start = raw_start(area, db, offset, length);
  const auto first = memory(area, db)->begin() + std::ptrdiff_t(start);
  return Bytes(first, first + std::ptrdiff_t(length));
}

void PlcState::write_raw(Area area, std::uint16_t db, std::uint32_t offset,
                         channel::ByteView bytes) {
  std::lock_guard lock(mutex_);
  const std::size_t start = raw_start(area, db, offset, bytes.size());
  std::copy(bytes.begin(), bytes.end(), memory(area, db)->begin() + std::ptrdiff_t(start));
}

void PlcState::set_running(bool run) {
  std::lock_guard lock(mutex_);
  running_ = run;
}

bool PlcState::running() const {
  std::lock_guard lock(mutex_);
  return running_;
}

void PlcState::set_faults(const Faults& faults) {
  std::lock_guard lock(mutex_);
  faults_ = faults;
}

Faults PlcState::faults() const {
  std::lock_guard lock(mutex_);
  return faults_;
}

std::optional<channel::SzlList> PlcState::szl(std::uint16_t id, std::uint16_t index) const {
  channel::SzlList list;
  list.id = id;
  list.index = index;
  switch (id) {
    case 0x0000:
      list.record_length = 2;
      for (std::uint16_t known : {0x0000, 0x0011, 0x001C, 0x0424}) {
        list.records.push_back(Bytes{std::uint8_t(known >> 8), std::uint8_t(known)});
      }
      return list;
    case 0x0011: {
      // Records: index, 20 characters of order number, module type id (2), version (4).
      list.record_length = kSzl0011Record;
      list.records.push_back(text_record(0x0001, config_.order_number, kSzl0011Record));
      list.records.push_back(text_record(0x0006, config_.order_number, kSzl0011Record));
      Bytes firmware = text_record(0x0007, std::string(20, ' '), kSzl0011Record);
      const auto v = parse_firmware(config_.firmware);  // validated by the constructor
      firmware[24] = 'V';
      std::copy(v.begin(), v.end(), firmware.begin() + 25);
      list.records.push_back(std::move(firmware));
      return list;
    }
    case 0x001C:
      list.record_length = kSzl001cRecord;
      list.records.push_back(text_record(1, config_.name, kSzl001cRecord));  // station
      list.records.push_back(text_record(2, config_.name, kSzl001cRecord));  // PLC name
      list.records.push_back(text_record(3, "", kSzl001cRecord));            // plant id
      list.records.push_back(text_record(4, "plcsim simulated CPU", kSzl001cRecord));
      list.records.push_back(text_record(5, config_.serial_number, kSzl001cRecord));
      list.records.push_back(text_record(7, config_.module_type, kSzl001cRecord));
      list.records.push_back(text_record(8, "", kSzl001cRecord));     // memory card serial
      list.records.push_back(text_record(9, "", kSzl001cRecord));     // manufacturer, profile
      list.records.push_back(text_record(0x0A, "", kSzl001cRecord));  // OEM id
      list.records.push_back(text_record(0x0B, "", kSzl001cRecord));  // location
      return list;
    case 0x0424: {
      // Byte 3 of the record is the mode the CPU is in: 08 RUN, 04 STOP.
      list.record_length = kSzl0424Record;
      Bytes record(kSzl0424Record, 0x00);
      record[0] = 0x51;
      record[1] = 0x44;
      record[2] = 0xFF;
      record[3] = running() ? 0x08 : 0x04;
      list.records.push_back(std::move(record));
      return list;
    }
    default:
      return std::nullopt;
  }
}

void PlcState::tick() {
  if (config_.process_db == 0) return;
  std::lock_guard lock(mutex_);
  if (!running_) return;
  Bytes& db = data_blocks_.at(config_.process_db);
  const std::uint32_t counter = get_u32(db, 0) + 1;  // DInt, two's complement, wraps
  put_u32(db, 0, counter);
  const auto phase = std::uint32_t(std::int32_t(counter) % std::int32_t(kSawtoothTicks) +
                                   std::int32_t(kSawtoothTicks)) %
                     kSawtoothTicks;
  const float sawtooth = float(phase);
  const float sine = float(std::sin(2 * std::numbers::pi * phase / kSawtoothTicks));
  put_u32(db, 4, std::bit_cast<std::uint32_t>(sawtooth));
  put_u32(db, 8, std::bit_cast<std::uint32_t>(sine));
}

}  // namespace scada::plcsim
