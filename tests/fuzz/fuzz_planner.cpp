// libFuzzer target: the read planner and cut_reply. The input picks the limits and a tag list
// (valid and invalid tags alike); every plan is checked against the rules of WIRE.md §3 and
// against values cut from replies built from a synthetic PLC memory. Aborts on any violation.
#include <cstdlib>
#include <variant>
#include <vector>

#include "channel/channel.h"

namespace ch = scada::channel;

namespace {

class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool empty() const { return at_ >= size_; }
  std::uint8_t byte() { return at_ < size_ ? data_[at_++] : 0; }
  std::uint16_t word() { return std::uint16_t(byte() << 8 | byte()); }

 private:
  const std::uint8_t* data_;
  std::size_t size_, at_ = 0;
};

bool numbered(ch::Area a) {
  return a == ch::Area::timers || a == ch::Area::counters;
}

// What the PLC holds at a byte of an area (timers and counters: 2 bytes per number).
std::uint8_t memory(ch::Area area, std::uint16_t db, std::uint32_t byte) {
  return std::uint8_t(byte * 31 + db * 7 + std::uint8_t(area));
}

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in(data, size);
  ch::PlannerLimits limits;
  limits.pdu = 20 + in.word() % 1000;
  limits.max_items = in.byte();  // 0 is clamped to 1
  const std::uint8_t error_items = in.byte();

  static constexpr ch::Area kAreas[] = {ch::Area::data_block, ch::Area::data_block,
                                        ch::Area::flags,      ch::Area::inputs,
                                        ch::Area::timers,     ch::Area::counters};
  std::vector<ch::ReadTag> tags;
  while (!in.empty() && tags.size() < 2000) {
    const std::uint8_t kind = in.byte();
    ch::ReadTag t;
    t.area = kAreas[kind % 6];
    t.db = t.area == ch::Area::data_block ? std::uint16_t(1 + (kind >> 3) % 3) : 0;
    t.offset = in.word() % 700;
    t.size = numbered(t.area) ? 1 + in.byte() % 12 : 1 + in.byte() % 80;
    if (kind & 0x80) t.bit = std::uint8_t(in.byte() % 8);
    if ((kind & 0x60) == 0x60) {  // now and then raw values, to reach the error paths
      t.offset = std::uint32_t(in.word()) << (in.byte() % 16);
      t.size = in.word();
      if (t.bit) t.bit = in.byte();
    }
    tags.push_back(t);
  }

  auto result = ch::plan_reads(tags, limits);
  if (auto* error = std::get_if<ch::PlanError>(&result)) {
    check(!error->reason.empty());
    check(tags.empty() || error->tag < tags.size());
    return 0;
  }
  const ch::ReadPlan& plan = std::get<ch::ReadPlan>(result);
  const std::size_t item_cap =
      std::min<std::size_t>(std::max<std::size_t>(limits.max_items, 1), 255);
  std::vector<int> covered(tags.size(), 0);
  std::size_t item_number = 0;
  for (const ch::PlannedRequest& request : plan.requests) {
    check(!request.items.empty() && request.items.size() <= item_cap);
    check(request.request_size == 12 + 12 * request.items.size() &&
          request.request_size <= limits.pdu);
    std::size_t reply_size = 14;
    ch::ReadVarResponse reply;
    for (std::size_t i = 0; i < request.items.size(); ++i) {
      const ch::PlannedItem& item = request.items[i];
      const bool odd_not_last = item.bytes % 2 == 1 && i + 1 < request.items.size();
      reply_size += 4 + item.bytes + (odd_not_last ? 1 : 0);
      const bool elements = numbered(item.item.area);
      check(item.bytes == (elements ? 2u : 1u) * item.item.count && item.bytes > 0);
      const std::uint32_t first_byte = elements ? 2 * item.item.address : item.item.address / 8;
      ch::DataItem data{
          0xFF, elements ? ch::DataSize::octet_string : ch::DataSize::byte_word_dword, {}};
      if (error_items != 0 && ++item_number % error_items == 0) {
        data = ch::DataItem{0x05, ch::DataSize::null, {}};
      } else {
        for (std::uint32_t b = 0; b < item.bytes; ++b) {
          data.data.push_back(memory(item.item.area, item.item.db, first_byte + b));
        }
      }
      reply.items.push_back(std::move(data));
      for (const ch::Slice& s : item.slices) {
        check(s.tag < tags.size());
        const ch::ReadTag& t = tags[s.tag];
        ++covered[s.tag];
        check(t.area == item.item.area && t.db == item.item.db && s.bit == t.bit);
        check(std::size_t(s.offset) + s.length <= item.bytes);
        check(first_byte + s.offset == (elements ? 2 * t.offset : t.offset));
        check(s.length == (elements ? 2 * t.size : t.bit ? 1 : t.size));
      }
    }
    check(reply_size == request.reply_size && reply_size <= limits.pdu);

    auto cut = ch::cut_reply(request, reply);
    check(cut.ok());
    for (const ch::TagBytes& value : cut.value()) {
      const ch::ReadTag& t = tags.at(value.tag);
      if (value.return_code != 0xFF) {
        check(value.data.empty());
        continue;
      }
      const std::uint32_t first = numbered(t.area) ? 2 * t.offset : t.offset;
      if (t.bit) {
        check(value.data.size() == 1 &&
              value.data[0] == ((memory(t.area, t.db, first) >> *t.bit) & 1));
        continue;
      }
      check(value.data.size() == (numbered(t.area) ? 2 * t.size : t.size));
      for (std::size_t b = 0; b < value.data.size(); ++b) {
        check(value.data[b] == memory(t.area, t.db, first + std::uint32_t(b)));
      }
    }
  }
  for (int c : covered) check(c == 1);
  return 0;
}
