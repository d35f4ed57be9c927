// planner_bench: requests per poll of the read planner against two reference strategies, planning
// time, and Read Var reply decode throughput. Prints a table and OK/FAIL checks; exits 1 on FAIL.
// What each figure means: tests/bench/README.md.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "channel/channel.h"

namespace {

using namespace scada::channel;
using Clock = std::chrono::steady_clock;

bool counts_elements(Area a) {
  return a == Area::timers || a == Area::counters;
}

std::size_t tag_bytes(const ReadTag& t) {
  return counts_elements(t.area) ? 2 * t.size : (t.bit ? 1 : t.size);
}

// ---- Tag sets

// Portable across standard libraries (uniform_int_distribution is not): mt19937's output is.
class Dice {
 public:
  explicit Dice(std::uint32_t seed) : rng_(seed) {}
  std::uint32_t below(std::uint32_t n) { return rng_() % n; }
  bool chance(std::uint32_t percent) { return below(100) < percent; }

 private:
  std::mt19937 rng_;
};

// Lays out S7 data like a PLC program would: structs of mixed fields (Bool packed eight to a
// byte, everything else on even addresses), some read field by field (an HMI faceplate), some
// read sparsely (a few status words out of a large struct), reserves between them.
class DataBlockWriter {
 public:
  DataBlockWriter(Area area, std::uint16_t db, Dice& dice, std::vector<ReadTag>& out)
      : area_(area), db_(db), dice_(dice), out_(out) {}

  void write_struct(std::size_t max_tags) {
    const std::uint32_t kind = dice_.below(10);
    const bool dense = kind < 4, array = kind >= 8;
    const std::uint32_t fields = array ? 4 + dice_.below(12) : 3 + dice_.below(14);
    const std::uint32_t read_percent = dense || array ? 90 : 25;
    const std::uint32_t array_type = 1 + dice_.below(5);
    align_even();
    for (std::uint32_t f = 0; f < fields && max_tags > 0; ++f) {
      const std::uint32_t type = array ? array_type : pick_type();
      if (place(type, dice_.chance(read_percent))) --max_tags;
    }
    align_even();
    // Reserve after the struct: often none, sometimes a few bytes, sometimes a lot.
    const std::uint32_t r = dice_.below(10);
    offset_ += r < 4   ? 0
               : r < 7 ? 2 * (1 + dice_.below(6))
               : r < 9 ? 2 * (6 + dice_.below(20))
                       : 2 * (30 + dice_.below(60));
  }

 private:
  // 0 Bool, 1 Byte, 2 Int, 3 DInt, 4 Real, 5 LReal, 6 String[n]
  std::uint32_t pick_type() {
    const std::uint32_t r = dice_.below(100);
    return r < 30 ? 0 : r < 35 ? 1 : r < 55 ? 2 : r < 65 ? 3 : r < 88 ? 4 : r < 94 ? 5 : 6;
  }
  void align_even() {
    if (bit_ > 0) {
      ++offset_;
      bit_ = 0;
    }
    offset_ += offset_ % 2;
  }
  // Lays out one field; returns whether it became a tag.
  bool place(std::uint32_t type, bool read) {
    if (type == 0) {
      if (read) out_.push_back(ReadTag{area_, db_, offset_, 1, std::uint8_t(bit_)});
      if (++bit_ == 8) {
        bit_ = 0;
        ++offset_;
      }
      return read;
    }
    if (bit_ > 0) {
      ++offset_;
      bit_ = 0;
    }
    static constexpr std::uint32_t kStringLengths[] = {10, 16, 20, 32, 40, 64};
    const std::uint32_t size = type == 1   ? 1
                               : type == 2 ? 2
                               : type == 5 ? 8
                               : type == 6 ? kStringLengths[dice_.below(6)] + 2
                                           : 4;
    if (type != 1) offset_ += offset_ % 2;
    if (read) out_.push_back(ReadTag{area_, db_, offset_, size, std::nullopt});
    offset_ += size;
    return read;
  }

  Area area_;
  std::uint16_t db_;
  Dice& dice_;
  std::vector<ReadTag>& out_;
  std::uint32_t offset_ = 0, bit_ = 0;
};

// 1,000 tags per `scale`: five data blocks and the M area (flags mostly bits, a few words).
std::vector<ReadTag> mixed_tags(std::size_t scale) {
  Dice dice(20240611);
  std::vector<ReadTag> tags;
  const std::uint16_t dbs[] = {1, 2, 10, 20, 100};
  for (std::size_t s = 0; s < scale; ++s) {
    for (std::uint16_t db : dbs) {
      DataBlockWriter writer(Area::data_block, std::uint16_t(db + 1000 * s), dice, tags);
      const std::size_t goal = tags.size() + 180;
      while (tags.size() < goal) writer.write_struct(goal - tags.size());
    }
    // Flags: bits in clusters with holes, some MW / MD counters further up.
    std::uint32_t byte = 1000 * std::uint32_t(s);
    for (std::size_t n = 0; n < 100; ++n) {
      if (dice.chance(70)) {
        tags.push_back(ReadTag{Area::flags, 0, byte, 1, std::uint8_t(dice.below(8))});
        byte += dice.chance(60) ? 0 : 1 + dice.below(dice.chance(80) ? 3 : 40);
      } else {
        byte += byte % 2;
        const std::uint32_t size = dice.chance(50) ? 2 : 4;
        tags.push_back(ReadTag{Area::flags, 0, byte, size, std::nullopt});
        byte += size + 2 * dice.below(dice.chance(70) ? 2 : 30);
      }
    }
  }
  // Callers list tags in whatever order their screens do.
  for (std::size_t i = tags.size(); i > 1; --i)
    std::swap(tags[i - 1], tags[dice.below(std::uint32_t(i))]);
  return tags;
}

std::vector<ReadTag> int40_tags() {
  std::vector<ReadTag> tags;
  for (std::uint32_t i = 0; i < 100; ++i)
    tags.push_back(ReadTag{Area::data_block, 1, 40 * i, 2, std::nullopt});
  return tags;
}

// ---- Reference strategies, counted by the size formulas of WIRE.md §3

struct Count {
  std::size_t requests = 0, items = 0, payload = 0;
};

// Adds items (data bytes each) in the order given, opening a request when the next one does
// not fit the item cap, the request size or the reply size (fill after odd items but the last).
class GreedyPacker {
 public:
  GreedyPacker(std::size_t pdu, std::size_t item_cap) : pdu_(pdu), cap_(item_cap) {}
  void add(std::size_t bytes) {
    const std::size_t fill = items_ > 0 && last_odd_ ? 1 : 0;
    if (items_ == 0 || items_ == cap_ || read_request_size(items_ + 1) > pdu_ ||
        reply_ + fill + kDataItemHeader + bytes > pdu_) {
      ++count_.requests;
      items_ = 0;
      reply_ = kReadReplyBase;
    }
    reply_ += (items_ > 0 && last_odd_ ? 1 : 0) + kDataItemHeader + bytes;
    last_odd_ = bytes % 2 == 1;
    ++items_;
    ++count_.items;
    count_.payload += bytes;
  }
  Count count() const { return count_; }

 private:
  std::size_t pdu_, cap_;
  std::size_t items_ = 0, reply_ = kReadReplyBase;
  bool last_odd_ = false;
  Count count_;
};

std::vector<ReadTag> sorted(std::vector<ReadTag> tags) {
  std::stable_sort(tags.begin(), tags.end(), [](const ReadTag& a, const ReadTag& b) {
    return std::tuple(a.area, a.db, a.offset) < std::tuple(b.area, b.db, b.offset);
  });
  return tags;
}

// R1: one item per tag, at most 20 per request, greedy in sorted order.
Count reference_one_item_per_tag(const std::vector<ReadTag>& tags, std::size_t pdu) {
  GreedyPacker packer(pdu, 20);
  for (const ReadTag& t : sorted(tags)) packer.add(tag_bytes(t));
  return packer.count();
}

// R2: merge within area+DB when the gap is at most 5 bytes, cut blocks longer than
// 4·⌊(PDU-18)/4⌋ bytes, pack greedily by the request and reply sizes. The client it describes
// has no item cap (item_cap 255); with 20 it is compared with the planner's default.
Count reference_merge_gap5(const std::vector<ReadTag>& tags, std::size_t pdu,
                           std::size_t item_cap) {
  const std::size_t longest = 4 * (max_read_item_bytes(pdu) / 4);
  GreedyPacker packer(pdu, item_cap);
  struct Block {
    Area area;
    std::uint16_t db;
    std::int64_t start, end;
  };
  std::vector<Block> blocks;
  for (const ReadTag& t : sorted(tags)) {
    const std::int64_t start = counts_elements(t.area) ? 2 * std::int64_t(t.offset) : t.offset;
    const std::int64_t end = start + std::int64_t(tag_bytes(t));
    Block* last = blocks.empty() ? nullptr : &blocks.back();
    if (last && last->area == t.area && last->db == t.db && !counts_elements(t.area) &&
        start - last->end <= 5) {
      last->end = std::max(last->end, end);
    } else {
      blocks.push_back(Block{t.area, t.db, start, end});
    }
  }
  for (const Block& b : blocks) {
    for (std::int64_t at = b.start; at < b.end; at += std::int64_t(longest)) {
      packer.add(std::size_t(std::min<std::int64_t>(b.end - at, std::int64_t(longest))));
    }
  }
  return packer.count();
}

// ---- A lower bound on the requests of any plan

// Every plan spends Σ(4 + bytes) of reply room on its items and uses one of N item slots per
// item. Pricing a slot at λ bytes, each request holds at most PDU - 14 + λ·N "priced bytes",
// and every plan costs at least Σ unit bytes + Σ over gaps min(gap, 4 + λ) + (4 + λ) per area+DB
// (each gap is either read, or paid for with one more item). Ignoring the item size cap and the
// fill bytes only lowers that cost, so for every λ ≥ 0:
//   requests ≥ ⌈cost(λ) / (PDU - 14 + λ·N)⌉.
// The best λ is found by trying them all. When the planner meets this bound, no plan is better.
// The byte ranges the tags cover, overlapping tags joined, in (area, DB, offset) order.
struct Span {
  Area area;
  std::uint16_t db;
  std::int64_t start, end;  // bytes (timers and counters: 2 per number)
};

std::vector<Span> covered_spans(const std::vector<ReadTag>& tags) {
  std::vector<Span> spans;
  for (const ReadTag& t : sorted(tags)) {
    const std::int64_t start = counts_elements(t.area) ? 2 * std::int64_t(t.offset) : t.offset;
    const std::int64_t end = start + std::int64_t(tag_bytes(t));
    if (!spans.empty() && spans.back().area == t.area && spans.back().db == t.db &&
        start < spans.back().end) {
      spans.back().end = std::max(spans.back().end, end);
    } else {
      spans.push_back(Span{t.area, t.db, start, end});
    }
  }
  return spans;
}

std::size_t covered_bytes(const std::vector<ReadTag>& tags) {
  std::size_t bytes = 0;
  for (const Span& s : covered_spans(tags)) bytes += std::size_t(s.end - s.start);
  return bytes;
}

std::size_t request_lower_bound(const std::vector<ReadTag>& tags, std::size_t pdu,
                                std::size_t max_items) {
  const std::vector<Span> units = covered_spans(tags);
  const std::size_t n = std::min(max_items, max_read_items(pdu));
  std::size_t bound = 0;
  for (std::int64_t lambda = 0; lambda <= std::int64_t(pdu); ++lambda) {
    std::int64_t cost = 0;
    for (std::size_t i = 0; i < units.size(); ++i) {
      cost += units[i].end - units[i].start;
      const bool same =
          i > 0 && units[i].area == units[i - 1].area && units[i].db == units[i - 1].db;
      const std::int64_t item = std::int64_t(kDataItemHeader) + lambda;
      cost += same ? std::min(units[i].start - units[i - 1].end, item) : item;
    }
    const std::int64_t per_request = std::int64_t(pdu - kReadReplyBase) + lambda * std::int64_t(n);
    bound = std::max(bound, std::size_t((cost + per_request - 1) / per_request));
  }
  return bound;
}

// ---- Measuring the planner

struct Measured {
  Count count;
  double micros = 0;  // best of several runs
  std::size_t wasted = 0;
  ReadPlan plan;
};

Measured measure_planner(const std::vector<ReadTag>& tags, std::size_t pdu, std::size_t max_items,
                         int runs) {
  Measured m;
  m.micros = 1e300;
  for (int r = 0; r < runs; ++r) {
    const auto t0 = Clock::now();
    auto result = plan_reads(tags, PlannerLimits{pdu, max_items, 1});
    const auto t1 = Clock::now();
    m.micros = std::min(m.micros, std::chrono::duration<double, std::micro>(t1 - t0).count());
    if (auto* error = std::get_if<PlanError>(&result)) {
      std::fprintf(stderr, "plan_reads failed: tag %zu: %s\n", error->tag, error->reason.c_str());
      std::exit(1);
    }
    m.plan = std::get<ReadPlan>(std::move(result));
  }
  m.count = Count{m.plan.requests.size(), m.plan.items, m.plan.payload_bytes};
  m.wasted = m.plan.wasted_bytes;
  return m;
}

// Collects OK/FAIL lines to print after the tables.
struct Checks {
  bool all_ok = true;
  std::vector<std::string> lines;
  void check(bool ok, const std::string& what) {
    lines.push_back(std::string(ok ? "OK   " : "FAIL ") + what);
    all_ok = all_ok && ok;
  }
  void print() const {
    for (const std::string& line : lines) std::printf("%s\n", line.c_str());
  }
};

std::string str(std::size_t v) {
  return std::to_string(v);
}

// Decodes the Read Var replies of a plan (every item successful, data from a fixed pattern)
// over and over; returns MB/s of PDU bytes, or a negative value if decoding failed.
double decode_throughput(const ReadPlan& plan, std::string* error) {
  std::vector<Bytes> replies;
  std::size_t bytes_per_pass = 0;
  for (std::size_t r = 0; r < plan.requests.size(); ++r) {
    ReadVarResponse body;
    for (const PlannedItem& item : plan.requests[r].items) {
      Bytes data(item.bytes);
      for (std::size_t i = 0; i < data.size(); ++i) data[i] = std::uint8_t(i * 7 + r);
      const DataSize size =
          counts_elements(item.item.area) ? DataSize::octet_string : DataSize::byte_word_dword;
      body.items.push_back(DataItem{0xFF, size, std::move(data)});
    }
    Header header;
    header.rosctr = Rosctr::ack_data;
    header.pdu_ref = std::uint16_t(r + 1);
    replies.push_back(encode_s7(Pdu{header, std::move(body)}));
    bytes_per_pass += replies.back().size();
    if (replies.back().size() != plan.requests[r].reply_size) {
      *error = "encoded reply " + str(r + 1) + " has " + str(replies.back().size()) +
               " bytes, the plan says " + str(plan.requests[r].reply_size);
      return -1;
    }
  }
  std::size_t decoded = 0, passes = 0;
  const auto t0 = Clock::now();
  auto elapsed = [&t0] { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  while (passes < 5 || elapsed() < 0.5) {
    for (const Bytes& reply : replies) {
      const Result<Pdu> pdu = decode_s7(reply);
      if (!pdu.ok()) {
        *error = pdu.error().to_string();
        return -1;
      }
      decoded += reply.size();
    }
    ++passes;
  }
  return double(decoded) / elapsed() / 1e6;
}

void print_row(const char* set, std::size_t pdu, const char* strategy, const Count& c,
               const std::string& wasted, const std::string& millis, const std::string& bound) {
  std::printf("%-6s %4zu  %-13s %8zu %6s %6zu %8zu %7s %8s\n", set, pdu, strategy, c.requests,
              bound.c_str(), c.items, c.payload, wasted.c_str(), millis.c_str());
}

std::string millis(double micros) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f", micros / 1000);
  return text;
}

}  // namespace

int main() {
  const std::vector<ReadTag> mixed = mixed_tags(1);
  const std::vector<ReadTag> int40 = int40_tags();
  const std::size_t pdus[] = {240, 480, 960};
  Checks checks;

  std::printf("Requests per poll (fewer is better), items and payload bytes per poll\n");
  std::printf("  planner(20), planner(255): this planner with max_items 20 / 255\n");
  std::printf("  R1: one item per tag, 20 per request; R2: merge gaps <= 5, no item cap;\n");
  std::printf("  R2(20): R2 with 20 items per request; bound: no plan needs fewer requests\n\n");
  std::printf("%-6s %4s  %-13s %8s %6s %6s %8s %7s %8s\n", "set", "PDU", "strategy", "requests",
              "bound", "items", "payload", "wasted", "plan ms");
  ReadPlan decode_plan;
  for (const auto& [name, tags] : {std::pair{"mixed", &mixed}, std::pair{"int40", &int40}}) {
    for (std::size_t pdu : pdus) {
      const Measured p20 = measure_planner(*tags, pdu, 20, 5);
      const Measured p255 = measure_planner(*tags, pdu, 255, 5);
      const Count r1 = reference_one_item_per_tag(*tags, pdu);
      const Count r2_20 = reference_merge_gap5(*tags, pdu, 20);
      const Count r2 = reference_merge_gap5(*tags, pdu, 255);
      const std::size_t bound20 = request_lower_bound(*tags, pdu, 20);
      const std::size_t bound255 = request_lower_bound(*tags, pdu, 255);
      print_row(name, pdu, "planner(20)", p20.count, str(p20.wasted), millis(p20.micros),
                str(bound20));
      const std::size_t covered = covered_bytes(*tags);
      print_row(name, pdu, "R1", r1, "0", "", "");
      print_row(name, pdu, "R2(20)", r2_20, str(r2_20.payload - covered), "", "");
      print_row(name, pdu, "planner(255)", p255.count, str(p255.wasted), millis(p255.micros),
                str(bound255));
      print_row(name, pdu, "R2", r2, str(r2.payload - covered), "", "");
      std::printf("\n");

      const std::string where = std::string(name) + " PDU " + str(pdu) + ": ";
      const std::size_t mine = p20.count.requests, theirs = std::min(r1.requests, r2_20.requests);
      checks.check(mine <= theirs, where + "max_items 20, no more than min(R1, R2(20)): " +
                                       str(mine) + " <= " + str(theirs));
      checks.check(p255.count.requests <= r2.requests,
                   where + "max_items 255, no more than R2: " + str(p255.count.requests) +
                       " <= " + str(r2.requests));
      if (std::string(name) == "mixed") {
        // Strictly fewer, unless the reference already meets the lower bound (then nobody can).
        auto beats = [&checks, &where](std::size_t planner, std::size_t reference,
                                       std::size_t bound, const std::string& what) {
          if (planner >= reference && planner == bound) {
            checks.check(true, where + what + ": planner " + str(planner) + " = lower bound " +
                                   str(bound) + ", the reference " + str(reference) +
                                   " is optimal too");
          } else {
            checks.check(planner < reference,
                         where + what + ": planner " + str(planner) + " < " + str(reference));
          }
        };
        beats(mine, theirs, bound20, "max_items 20, fewer than min(R1, R2(20))");
        beats(p255.count.requests, r2.requests, bound255, "max_items 255, fewer than R2");
      }
      if (std::string(name) == "mixed" && pdu == 960) decode_plan = p255.plan;
    }
  }

  std::printf("\nPlanning time for 10,000 mixed tags (best of 3)\n");
  const std::vector<ReadTag> big = mixed_tags(10);
  for (std::size_t pdu : pdus) {
    for (std::size_t max_items : {std::size_t{20}, std::size_t{255}}) {
      const Measured m = measure_planner(big, pdu, max_items, 3);
      std::printf("  PDU %4zu max_items %3zu: %5zu requests, %6.1f ms\n", pdu, max_items,
                  m.count.requests, m.micros / 1000);
    }
  }

  std::printf("\nRead Var reply decoding (decode_s7 on the replies of mixed at PDU 960)\n");
  std::string error;
  const double mbps = decode_throughput(decode_plan, &error);
  if (mbps < 0) {
    checks.check(false, "decode_s7 decodes the encoded replies: " + error);
  } else {
    std::printf("  %zu replies, %.1f MB/s\n", decode_plan.requests.size(), mbps);
  }

  std::printf("\n");
  checks.print();
  return checks.all_ok ? 0 : 1;
}
