// Read planner: size formulas, hand-checked plans, errors, cutting replies, and invariants
// checked on random tag sets against simulated PLC memory.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "channel/channel.h"

namespace scada::channel {
namespace {

ReadTag db_tag(std::uint16_t db, std::uint32_t offset, std::uint32_t size) {
  return ReadTag{Area::data_block, db, offset, size, std::nullopt};
}
ReadTag db_bit(std::uint16_t db, std::uint32_t offset, std::uint8_t bit) {
  return ReadTag{Area::data_block, db, offset, 1, bit};
}
ReadTag area_tag(Area area, std::uint32_t offset, std::uint32_t size) {
  return ReadTag{area, 0, offset, size, std::nullopt};
}

bool counts_elements(Area a) {
  return a == Area::timers || a == Area::counters;
}

ReadPlan plan_ok(const std::vector<ReadTag>& tags, PlannerLimits limits) {
  auto result = plan_reads(tags, limits);
  if (auto* error = std::get_if<PlanError>(&result)) {
    ADD_FAILURE() << "plan_reads failed: tag " << error->tag << ": " << error->reason;
    return {};
  }
  return std::get<ReadPlan>(std::move(result));
}

PlanError plan_error(const std::vector<ReadTag>& tags, PlannerLimits limits) {
  auto result = plan_reads(tags, limits);
  if (auto* plan = std::get_if<ReadPlan>(&result)) {
    ADD_FAILURE() << "expected an error, got a plan of " << plan->requests.size() << " requests";
    return {};
  }
  return std::get<PlanError>(std::move(result));
}

// Reply size recomputed from the items by the rule of WIRE.md §3, in the order planned.
std::size_t reply_size_of(const PlannedRequest& request) {
  std::size_t size = 14;
  for (std::size_t i = 0; i < request.items.size(); ++i) {
    const std::size_t bytes = request.items[i].bytes;
    size += 4 + bytes + (bytes % 2 == 1 && i + 1 < request.items.size() ? 1 : 0);
  }
  return size;
}

// Every property a plan must have, checked without trusting the planner's own arithmetic.
void expect_valid_plan(const ReadPlan& plan, const std::vector<ReadTag>& tags,
                       PlannerLimits limits) {
  const std::size_t item_cap = std::min<std::size_t>(limits.max_items, 255);
  std::vector<int> covered(tags.size(), 0);
  std::size_t items = 0, payload = 0, wasted = 0;
  for (std::size_t r = 0; r < plan.requests.size(); ++r) {
    const PlannedRequest& request = plan.requests[r];
    SCOPED_TRACE("request " + std::to_string(r + 1));
    ASSERT_FALSE(request.items.empty());
    EXPECT_LE(request.items.size(), item_cap);
    EXPECT_EQ(request.request_size, 12 + 12 * request.items.size());
    EXPECT_LE(request.request_size, limits.pdu);
    EXPECT_EQ(request.reply_size, reply_size_of(request));
    EXPECT_LE(request.reply_size, limits.pdu);
    for (const PlannedItem& item : request.items) {
      const bool elements = counts_elements(item.item.area);
      ASSERT_GT(item.bytes, 0u);
      EXPECT_LE(item.bytes, limits.pdu - 18);
      if (elements) {
        EXPECT_EQ(item.item.transport,
                  item.item.area == Area::timers ? TransportSize::timer : TransportSize::counter);
        EXPECT_EQ(item.bytes, 2u * item.item.count);
      } else {
        EXPECT_EQ(item.item.transport, TransportSize::byte);
        EXPECT_EQ(item.bytes, item.item.count);
        EXPECT_EQ(item.item.address % 8, 0u);
      }
      std::vector<bool> used(item.bytes, false);
      for (const Slice& s : item.slices) {
        ASSERT_LT(s.tag, tags.size());
        const ReadTag& t = tags[s.tag];
        ++covered[s.tag];
        EXPECT_EQ(item.item.area, t.area) << "tag " << s.tag;
        EXPECT_EQ(item.item.db, t.db) << "tag " << s.tag;
        EXPECT_EQ(s.bit, t.bit) << "tag " << s.tag;
        ASSERT_LE(std::size_t(s.offset) + s.length, item.bytes) << "tag " << s.tag;
        if (elements) {
          EXPECT_EQ(s.offset % 2, 0u);
          EXPECT_EQ(item.item.address + s.offset / 2, t.offset) << "tag " << s.tag;
          EXPECT_EQ(s.length, 2 * t.size) << "tag " << s.tag;
        } else {
          EXPECT_EQ(item.item.address / 8 + s.offset, t.offset) << "tag " << s.tag;
          EXPECT_EQ(s.length, t.bit ? 1u : t.size) << "tag " << s.tag;
        }
        for (std::uint32_t b = s.offset; b < s.offset + s.length; ++b) used[b] = true;
      }
      ++items;
      payload += item.bytes;
      wasted += std::size_t(std::count(used.begin(), used.end(), false));
    }
  }
  for (std::size_t t = 0; t < tags.size(); ++t) {
    EXPECT_EQ(covered[t], 1) << "tag " << t << " must be covered by exactly one slice";
  }
  EXPECT_EQ(plan.items, items);
  EXPECT_EQ(plan.payload_bytes, payload);
  EXPECT_EQ(plan.wasted_bytes, wasted);
}

// Requests needed when every tag is its own item, packed in sorted order (the plain strategy
// the planner must never lose to).
std::size_t one_item_per_tag_requests(std::vector<ReadTag> tags, PlannerLimits limits) {
  std::sort(tags.begin(), tags.end(), [](const ReadTag& a, const ReadTag& b) {
    return std::tuple(a.area, a.db, a.offset) < std::tuple(b.area, b.db, b.offset);
  });
  const std::size_t cap = std::min<std::size_t>({limits.max_items, 255, (limits.pdu - 12) / 12});
  std::size_t requests = 0, items = 0, reply = 14;
  bool last_odd = false;
  for (const ReadTag& t : tags) {
    const std::size_t bytes = counts_elements(t.area) ? 2 * t.size : (t.bit ? 1 : t.size);
    const std::size_t grown = reply + (last_odd ? 1 : 0) + 4 + bytes;
    if (items == 0 || items == cap || grown > limits.pdu) {
      ++requests;
      items = 0;
      reply = 14;
    }
    reply += (items > 0 && last_odd ? 1 : 0) + 4 + bytes;
    last_odd = bytes % 2 == 1;
    ++items;
  }
  return requests;
}

// ---- Size formulas (WIRE.md §3)

TEST(PlannerSizes, ReadRequestItemLimits) {
  EXPECT_EQ(read_request_size(0), 12u);
  EXPECT_EQ(read_request_size(19), 240u);
  EXPECT_EQ(read_request_size(20), 252u);
  EXPECT_EQ(max_read_items(240), 19u);
  EXPECT_EQ(max_read_items(480), 39u);
  EXPECT_EQ(max_read_items(960), 79u);
  EXPECT_EQ(max_read_items(251), 19u);
  EXPECT_EQ(max_read_items(252), 20u);
  EXPECT_EQ(max_read_items(23), 0u);
  EXPECT_EQ(max_read_items(24), 1u);
  EXPECT_EQ(max_read_items(0), 0u);
  EXPECT_LE(read_request_size(max_read_items(240)), 240u);
  EXPECT_GT(read_request_size(max_read_items(240) + 1), 240u);
}

TEST(PlannerSizes, ItemByteLimits) {
  EXPECT_EQ(max_read_item_bytes(240), 222u);
  EXPECT_EQ(max_read_item_bytes(480), 462u);
  EXPECT_EQ(max_read_item_bytes(960), 942u);
  EXPECT_EQ(max_read_item_bytes(18), 0u);
  EXPECT_EQ(max_read_item_bytes(10), 0u);
  EXPECT_EQ(max_write_item_bytes(240), 212u);
  EXPECT_EQ(max_write_item_bytes(960), 932u);
  EXPECT_EQ(max_write_item_bytes(20), 0u);
}

TEST(PlannerSizes, LargestTagFillsTheReplyExactly) {
  const std::vector<ReadTag> tags{db_tag(1, 0, 222)};
  const ReadPlan plan = plan_ok(tags, {240, 20, 1});
  ASSERT_EQ(plan.requests.size(), 1u);
  EXPECT_EQ(plan.requests[0].reply_size, 240u);
  EXPECT_EQ(plan.requests[0].request_size, 24u);
  expect_valid_plan(plan, tags, {240, 20, 1});
}

TEST(PlannerSizes, NineteenTagsFillOneRequestAt240) {
  std::vector<ReadTag> tags;
  for (std::uint16_t db = 1; db <= 39; ++db) tags.push_back(db_tag(db, 0, 2));
  const PlannerLimits limits{240, 255, 1};
  const ReadPlan plan = plan_ok(tags, limits);
  ASSERT_EQ(plan.requests.size(), 3u);  // 19 + 19 + 1: separate DBs never merge
  EXPECT_EQ(plan.requests[0].items.size(), 19u);
  EXPECT_EQ(plan.requests[0].request_size, 240u);
  expect_valid_plan(plan, tags, limits);

  const ReadPlan at480 = plan_ok(tags, {480, 255, 1});
  ASSERT_EQ(at480.requests.size(), 1u);
  EXPECT_EQ(at480.requests[0].request_size, 480u);
}

// ---- Hand-checked plans

TEST(Planner, EmptyInputPlansNothing) {
  const ReadPlan plan = plan_ok({}, {240, 20, 1});
  EXPECT_TRUE(plan.requests.empty());
  EXPECT_EQ(plan.items, 0u);
}

TEST(Planner, TouchingTagsShareOneItem) {
  const std::vector<ReadTag> tags{db_tag(1, 0, 2), db_tag(1, 2, 4), db_tag(1, 6, 1)};
  const ReadPlan plan = plan_ok(tags, {240, 20, 1});
  ASSERT_EQ(plan.requests.size(), 1u);
  ASSERT_EQ(plan.requests[0].items.size(), 1u);
  const PlannedItem& item = plan.requests[0].items[0];
  EXPECT_EQ(item.item, (VarItem{TransportSize::byte, 7, 1, Area::data_block, 0}));
  EXPECT_EQ(plan.wasted_bytes, 0u);
  EXPECT_EQ(plan.requests[0].reply_size, 14u + 4 + 7);
  expect_valid_plan(plan, tags, {240, 20, 1});
}

TEST(Planner, GapIsReadWhenItCostsLessThanAnotherItem) {
  // DBW0 and DBW4: the 2-byte gap costs less than another item (12 request + 4 reply bytes)...
  const std::vector<ReadTag> tags{db_tag(1, 0, 2), db_tag(1, 4, 2)};
  const ReadPlan small_gap = plan_ok(tags, {240, 20, 1});
  ASSERT_EQ(small_gap.requests.size(), 1u);
  EXPECT_EQ(small_gap.items, 1u);
  EXPECT_EQ(small_gap.payload_bytes, 6u);
  EXPECT_EQ(small_gap.wasted_bytes, 2u);

  // ...a 20-byte gap costs more, so with room for two items it is not read...
  const std::vector<ReadTag> far{db_tag(1, 0, 2), db_tag(1, 22, 2)};
  const ReadPlan separate = plan_ok(far, {240, 20, 1});
  ASSERT_EQ(separate.requests.size(), 1u);
  EXPECT_EQ(separate.items, 2u);
  EXPECT_EQ(separate.payload_bytes, 4u);
  EXPECT_EQ(separate.wasted_bytes, 0u);
  expect_valid_plan(separate, far, {240, 20, 1});
  // ...unless reading it saves a request.
  const ReadPlan one_item = plan_ok(far, {240, 1, 1});
  ASSERT_EQ(one_item.requests.size(), 1u);
  EXPECT_EQ(one_item.wasted_bytes, 20u);

  // ...with one item per request, reading bytes 0..5 saves a request.
  const ReadPlan merged = plan_ok(tags, {240, 1, 1});
  ASSERT_EQ(merged.requests.size(), 1u);
  ASSERT_EQ(merged.items, 1u);
  const PlannedItem& item = merged.requests[0].items[0];
  EXPECT_EQ(item.item, (VarItem{TransportSize::byte, 6, 1, Area::data_block, 0}));
  ASSERT_EQ(item.slices.size(), 2u);
  EXPECT_EQ(item.slices[0].tag, 0u);
  EXPECT_EQ(item.slices[0].offset, 0u);
  EXPECT_EQ(item.slices[1].tag, 1u);
  EXPECT_EQ(item.slices[1].offset, 4u);
  EXPECT_EQ(merged.payload_bytes, 6u);
  EXPECT_EQ(merged.wasted_bytes, 2u);
  expect_valid_plan(merged, tags, {240, 1, 1});
}

TEST(Planner, NeverMergesAcrossAreasOrDataBlocks) {
  const std::vector<ReadTag> tags{db_tag(1, 0, 2), db_tag(2, 2, 2), area_tag(Area::flags, 4, 2),
                                  area_tag(Area::inputs, 6, 2)};
  const PlannerLimits limits{240, 1, 1};  // merging would save requests if it were allowed
  const ReadPlan plan = plan_ok(tags, limits);
  EXPECT_EQ(plan.requests.size(), 4u);
  EXPECT_EQ(plan.wasted_bytes, 0u);
  expect_valid_plan(plan, tags, limits);
}

TEST(Planner, BitsShareTheirByte) {
  const std::vector<ReadTag> tags{db_bit(3, 4, 0), db_bit(3, 4, 3), db_tag(3, 4, 1),
                                  db_bit(3, 4, 7)};
  const ReadPlan plan = plan_ok(tags, {240, 20, 1});
  ASSERT_EQ(plan.items, 1u);
  const PlannedItem& item = plan.requests[0].items[0];
  EXPECT_EQ(item.item, (VarItem{TransportSize::byte, 1, 3, Area::data_block, 32}));
  ASSERT_EQ(item.slices.size(), 4u);
  for (const Slice& s : item.slices) {
    EXPECT_EQ(s.offset, 0u);
    EXPECT_EQ(s.length, 1u);
    EXPECT_EQ(s.bit, tags[s.tag].bit);
  }
  expect_valid_plan(plan, tags, {240, 20, 1});
}

TEST(Planner, OverlappingTagsLandInOneItem) {
  // DBD4 covers bytes 4..7, DBW6 bytes 6..7, DBX4.1 byte 4.
  const std::vector<ReadTag> tags{db_tag(1, 4, 4), db_tag(1, 6, 2), db_bit(1, 4, 1)};
  const ReadPlan plan = plan_ok(tags, {240, 20, 1});
  ASSERT_EQ(plan.items, 1u);
  const PlannedItem& item = plan.requests[0].items[0];
  EXPECT_EQ(item.item, (VarItem{TransportSize::byte, 4, 1, Area::data_block, 32}));
  expect_valid_plan(plan, tags, {240, 20, 1});
}

TEST(Planner, SplitsOnlyWhereNoTagSpans) {
  // PDU 24: one item per request, at most 6 bytes per item. DBD0 and DBD2 overlap (bytes 0..5),
  // DBW6 follows; the only split point is byte 6.
  const std::vector<ReadTag> tags{db_tag(1, 0, 4), db_tag(1, 2, 4), db_tag(1, 6, 2)};
  const PlannerLimits limits{24, 20, 1};
  const ReadPlan plan = plan_ok(tags, limits);
  ASSERT_EQ(plan.requests.size(), 2u);
  EXPECT_EQ(plan.requests[0].items[0].item,
            (VarItem{TransportSize::byte, 6, 1, Area::data_block, 0}));
  EXPECT_EQ(plan.requests[1].items[0].item,
            (VarItem{TransportSize::byte, 2, 1, Area::data_block, 48}));
  expect_valid_plan(plan, tags, limits);
}

TEST(Planner, ChainOfOverlapsLongerThanAnItemIsReadByOverlappingItems) {
  // Each tag fits one item (222 bytes at PDU 240), together they span 350 bytes.
  const std::vector<ReadTag> tags{db_tag(1, 0, 200), db_tag(1, 150, 200)};
  const ReadPlan plan = plan_ok(tags, {240, 20, 1});
  EXPECT_EQ(plan.requests.size(), 2u);
  expect_valid_plan(plan, tags, {240, 20, 1});
}

TEST(Planner, DuplicateTagsGetTheirOwnSlices) {
  const std::vector<ReadTag> tags{db_tag(1, 10, 4), db_tag(1, 10, 4)};
  const ReadPlan plan = plan_ok(tags, {240, 20, 1});
  ASSERT_EQ(plan.items, 1u);
  const PlannedItem& item = plan.requests[0].items[0];
  ASSERT_EQ(item.slices.size(), 2u);
  EXPECT_EQ(item.slices[0].offset, item.slices[1].offset);
  EXPECT_EQ(item.bytes, 4u);
  expect_valid_plan(plan, tags, {240, 20, 1});
}

TEST(Planner, TimersAndCountersUseNumbersAndTwoBytesPerElement) {
  const std::vector<ReadTag> tags{area_tag(Area::timers, 5, 1), area_tag(Area::timers, 6, 2),
                                  area_tag(Area::counters, 3, 1)};
  const ReadPlan plan = plan_ok(tags, {240, 20, 1});
  ASSERT_EQ(plan.requests.size(), 1u);
  ASSERT_EQ(plan.items, 2u);
  const PlannedItem* timers = nullptr;
  const PlannedItem* counters = nullptr;
  for (const PlannedItem& item : plan.requests[0].items) {
    (item.item.area == Area::timers ? timers : counters) = &item;
  }
  ASSERT_TRUE(timers && counters);
  EXPECT_EQ(timers->item, (VarItem{TransportSize::timer, 3, 0, Area::timers, 5}));
  EXPECT_EQ(timers->bytes, 6u);
  EXPECT_EQ(counters->item, (VarItem{TransportSize::counter, 1, 0, Area::counters, 3}));
  EXPECT_EQ(counters->bytes, 2u);
  expect_valid_plan(plan, tags, {240, 20, 1});
}

TEST(Planner, OddItemGoesLastToSaveItsFillByte) {
  const std::vector<ReadTag> tags{db_tag(1, 0, 3), db_tag(2, 0, 2)};
  const ReadPlan plan = plan_ok(tags, {240, 20, 1});
  ASSERT_EQ(plan.items, 2u);
  EXPECT_EQ(plan.requests[0].items.back().bytes, 3u);
  EXPECT_EQ(plan.requests[0].reply_size, 14u + 4 + 2 + 4 + 3);
}

TEST(Planner, IntsEvery40BytesNeedFiveRequestsAt240) {
  // 19 items per request would need 6 requests; merging one pair per request needs 5.
  std::vector<ReadTag> tags;
  for (std::uint32_t i = 0; i < 100; ++i) tags.push_back(db_tag(1, 40 * i, 2));
  const PlannerLimits limits{240, 255, 1};
  const ReadPlan plan = plan_ok(tags, limits);
  EXPECT_EQ(plan.requests.size(), 5u);
  EXPECT_EQ(plan.wasted_bytes, 5u * 38);  // five merged pairs and not one gap more
  expect_valid_plan(plan, tags, limits);
}

// ---- Errors

TEST(PlannerErrors, TagLargerThanOneItem) {
  const PlanError e = plan_error(
      {db_tag(1, 0, 4), db_tag(1, 8, 2), db_tag(2, 0, 8), db_tag(3, 0, 256)}, {240, 20, 1});
  EXPECT_EQ(e.tag, 3u);
  EXPECT_EQ(e.reason, "tag 3 needs 256 bytes; one item carries at most 222 at PDU 240");
}

TEST(PlannerErrors, TimerRangeLargerThanOneItem) {
  const PlanError e = plan_error({area_tag(Area::timers, 0, 112)}, {240, 20, 1});
  EXPECT_EQ(e.tag, 0u);
  EXPECT_EQ(e.reason,
            "tag 0 needs 112 timers (224 bytes); one item carries at most 111 at PDU 240");
  EXPECT_TRUE(std::holds_alternative<ReadPlan>(
      plan_reads(std::vector<ReadTag>{area_tag(Area::timers, 0, 111)}, {240, 20, 1})));
}

TEST(PlannerErrors, BadTags) {
  EXPECT_EQ(plan_error({db_tag(1, 0, 0)}, {240, 20, 1}).reason, "tag 0 has size 0");
  EXPECT_EQ(plan_error({db_tag(1, 0, 2), db_bit(1, 0, 8)}, {240, 20, 1}).reason,
            "tag 1: bit 8 is not 0..7");
  EXPECT_EQ(plan_error({ReadTag{Area::counters, 0, 1, 1, 2}}, {240, 20, 1}).reason,
            "tag 0: counters have no bits");
  const PlanError far = plan_error({db_tag(1, 0x200000, 1)}, {240, 20, 1});
  EXPECT_NE(far.reason.find("24-bit"), std::string::npos) << far.reason;
  EXPECT_TRUE(std::holds_alternative<ReadPlan>(
      plan_reads(std::vector<ReadTag>{db_tag(1, 0x1FFFFF, 1)}, {240, 20, 1})));
}

TEST(PlannerErrors, PduTooSmallForAnyRequest) {
  const PlanError e = plan_error({db_tag(1, 0, 1)}, {23, 20, 1});
  EXPECT_NE(e.reason.find("PDU 23 is too small"), std::string::npos) << e.reason;
}

// ---- Cutting replies

PlannedRequest two_item_request() {
  PlannedRequest request;
  PlannedItem a;
  a.item = VarItem{TransportSize::byte, 4, 1, Area::data_block, 0};
  a.bytes = 4;
  a.slices = {Slice{0, 0, 2, std::nullopt}, Slice{1, 1, 1, std::uint8_t(2)}};
  PlannedItem b;
  b.item = VarItem{TransportSize::byte, 2, 2, Area::data_block, 0};
  b.bytes = 2;
  b.slices = {Slice{2, 0, 2, std::nullopt}, Slice{3, 0, 2, std::nullopt}};
  request.items = {a, b};
  return request;
}

TEST(CutReply, CopiesBytesAndBits) {
  ReadVarResponse reply;
  reply.items = {DataItem{0xFF, DataSize::byte_word_dword, {0x12, 0x04, 0x56, 0x78}},
                 DataItem{0xFF, DataSize::byte_word_dword, {0xAB, 0xCD}}};
  const auto cut = cut_reply(two_item_request(), reply);
  ASSERT_TRUE(cut.ok()) << cut.error().to_string();
  ASSERT_EQ(cut->size(), 4u);
  EXPECT_EQ((*cut)[0].data, (Bytes{0x12, 0x04}));
  EXPECT_EQ((*cut)[1].data, (Bytes{1}));  // bit 2 of 0x04
  EXPECT_EQ((*cut)[2].data, (Bytes{0xAB, 0xCD}));
  EXPECT_EQ((*cut)[3].data, (Bytes{0xAB, 0xCD}));
  for (const TagBytes& t : *cut) EXPECT_EQ(t.return_code, 0xFF);
}

TEST(CutReply, ErrorItemGivesEverySliceItsReturnCode) {
  ReadVarResponse reply;
  reply.items = {DataItem{0x0A, DataSize::null, {}},
                 DataItem{0xFF, DataSize::byte_word_dword, {0xAB, 0xCD}}};
  const auto cut = cut_reply(two_item_request(), reply);
  ASSERT_TRUE(cut.ok()) << cut.error().to_string();
  ASSERT_EQ(cut->size(), 4u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ((*cut)[i].tag, i);
    EXPECT_EQ((*cut)[i].return_code, 0x0A);
    EXPECT_TRUE((*cut)[i].data.empty());
  }
  EXPECT_EQ((*cut)[2].return_code, 0xFF);
  EXPECT_EQ((*cut)[2].data, (Bytes{0xAB, 0xCD}));
}

TEST(CutReply, ItemCountMustMatch) {
  ReadVarResponse reply;
  reply.items = {DataItem{0xFF, DataSize::byte_word_dword, {1, 2, 3, 4}}};
  const auto cut = cut_reply(two_item_request(), reply);
  ASSERT_FALSE(cut.ok());
  EXPECT_EQ(cut.error().kind, WireErrorKind::bad_length);
  EXPECT_NE(cut.error().reason.find("1 items"), std::string::npos) << cut.error().reason;
  EXPECT_NE(cut.error().reason.find("2"), std::string::npos) << cut.error().reason;
}

TEST(CutReply, ShortItemIsAnError) {
  ReadVarResponse reply;
  reply.items = {DataItem{0xFF, DataSize::byte_word_dword, {1, 2, 3, 4}},
                 DataItem{0xFF, DataSize::byte_word_dword, {1}}};
  const auto cut = cut_reply(two_item_request(), reply);
  ASSERT_FALSE(cut.ok());
  EXPECT_EQ(cut.error().kind, WireErrorKind::bad_length);
  EXPECT_NE(cut.error().reason.find("item 2"), std::string::npos) << cut.error().reason;
}

TEST(ReadRequestPdu, CarriesTheItemsInOrder) {
  const PlannedRequest request = two_item_request();
  const Pdu pdu = read_request_pdu(0x1234, request);
  EXPECT_EQ(pdu.header.rosctr, Rosctr::job);
  EXPECT_EQ(pdu.header.pdu_ref, 0x1234);
  const auto* body = std::get_if<ReadVarRequest>(&pdu.body);
  ASSERT_NE(body, nullptr);
  ASSERT_EQ(body->items.size(), 2u);
  EXPECT_EQ(body->items[0], request.items[0].item);
  EXPECT_EQ(body->items[1], request.items[1].item);
}

// ---- Random tag sets against simulated PLC memory

struct Memory {
  std::map<std::pair<Area, std::uint16_t>, Bytes> blocks;

  // Bytes of an item as a PLC would return them; timers/counters hold 2 bytes per number.
  Bytes read(const VarItem& item, std::size_t bytes) const {
    const Bytes& block = blocks.at({item.area, item.db});
    const std::size_t from = counts_elements(item.area) ? 2 * item.address : item.address / 8;
    return Bytes(block.begin() + long(from), block.begin() + long(from + bytes));
  }
  Bytes expected(const ReadTag& t) const {
    const Bytes& block = blocks.at({t.area, t.db});
    if (t.bit) return Bytes{std::uint8_t((block[t.offset] >> *t.bit) & 1)};
    const std::size_t from = counts_elements(t.area) ? 2 * t.offset : t.offset;
    const std::size_t bytes = counts_elements(t.area) ? 2 * t.size : t.size;
    return Bytes(block.begin() + long(from), block.begin() + long(from + bytes));
  }
};

struct RandomCase {
  std::vector<ReadTag> tags;
  PlannerLimits limits;
  Memory memory;
};

RandomCase random_case(std::mt19937& rng) {
  auto pick = [&rng](std::uint32_t lo, std::uint32_t hi) {
    return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng);
  };
  RandomCase c;
  const std::size_t pdus[] = {240, 480, 960};
  c.limits.pdu = pdus[pick(0, 2)];
  c.limits.max_items = pick(0, 3) == 0 ? pick(1, 4) : pick(1, 255);
  const std::pair<Area, std::uint16_t> blocks[] = {
      {Area::data_block, 1}, {Area::data_block, 2}, {Area::data_block, 100}, {Area::flags, 0},
      {Area::inputs, 0},     {Area::timers, 0},     {Area::counters, 0}};
  const std::uint32_t span = pick(16, 2000);  // small spans crowd tags into overlaps
  const std::size_t count = pick(1, 300);
  for (std::size_t i = 0; i < count; ++i) {
    const auto [area, db] = blocks[pick(0, 6)];
    ReadTag t{area, db, pick(0, span), 1, std::nullopt};
    if (counts_elements(area)) {
      t.size = pick(0, 9) == 0 ? pick(1, 111) : pick(1, 3);
    } else {
      switch (pick(0, 6)) {
        case 0:
          t.bit = std::uint8_t(pick(0, 7));
          break;
        case 1:
          t.size = 1;
          break;
        case 2:
          t.size = 2;
          break;
        case 3:
          t.size = 4;
          break;
        case 4:
          t.size = 8;
          break;
        case 5:
          t.size = pick(1, 40);
          break;
        default:
          t.size = pick(0, 4) == 0 ? pick(100, 222) : pick(3, 30);
          break;
      }
    }
    if (!c.tags.empty() && pick(0, 19) == 0) t = c.tags[pick(0, std::uint32_t(c.tags.size() - 1))];
    c.tags.push_back(t);
  }
  for (const auto& [area, db] : blocks) {
    Bytes& block = c.memory.blocks[{area, db}];
    block.resize(2 * (span + 256));
    for (std::uint8_t& b : block) b = std::uint8_t(pick(0, 255));
  }
  return c;
}

TEST(PlannerRandom, PlansAreValidAndCutRepliesMatchMemory) {
  std::mt19937 rng(20240611);
  for (int round = 0; round < 400; ++round) {
    RandomCase c = random_case(rng);
    SCOPED_TRACE("round " + std::to_string(round) + ", " + std::to_string(c.tags.size()) +
                 " tags, PDU " + std::to_string(c.limits.pdu) + ", max items " +
                 std::to_string(c.limits.max_items));
    const ReadPlan plan = plan_ok(c.tags, c.limits);
    expect_valid_plan(plan, c.tags, c.limits);
    EXPECT_LE(plan.requests.size(), one_item_per_tag_requests(c.tags, c.limits));

    std::vector<int> seen(c.tags.size(), 0);
    for (const PlannedRequest& request : plan.requests) {
      ReadVarResponse reply;
      for (const PlannedItem& item : request.items) {
        const DataSize size =
            counts_elements(item.item.area) ? DataSize::octet_string : DataSize::byte_word_dword;
        reply.items.push_back(DataItem{0xFF, size, c.memory.read(item.item, item.bytes)});
      }
      const auto cut = cut_reply(request, reply);
      ASSERT_TRUE(cut.ok()) << cut.error().to_string();
      for (const TagBytes& value : *cut) {
        ASSERT_LT(value.tag, c.tags.size());
        ++seen[value.tag];
        EXPECT_EQ(value.return_code, 0xFF);
        EXPECT_EQ(value.data, c.memory.expected(c.tags[value.tag])) << "tag " << value.tag;
      }
    }
    for (std::size_t t = 0; t < c.tags.size(); ++t) EXPECT_EQ(seen[t], 1) << "tag " << t;
    if (HasFailure()) break;
  }
}

TEST(PlannerRandom, PlanningIsDeterministic) {
  std::mt19937 rng(7);
  for (int round = 0; round < 20; ++round) {
    const RandomCase c = random_case(rng);
    const ReadPlan a = plan_ok(c.tags, c.limits);
    const ReadPlan b = plan_ok(c.tags, c.limits);
    ASSERT_EQ(a.requests.size(), b.requests.size());
    for (std::size_t r = 0; r < a.requests.size(); ++r) {
      ASSERT_EQ(a.requests[r].items.size(), b.requests[r].items.size());
      for (std::size_t i = 0; i < a.requests[r].items.size(); ++i) {
        EXPECT_EQ(a.requests[r].items[i].item, b.requests[r].items[i].item);
      }
    }
  }
}

}  // namespace
}  // namespace scada::channel
