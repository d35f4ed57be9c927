// The read planner (WIRE.md §3-4): packs tags into as few Read Var requests as the PDU allows.
//
// Words used below:
//   unit     a stretch of addresses no item boundary may cut: one tag, or several tags that
//            overlap (DBD4, DBW6 and DBX4.1 form one unit). Units of one area+DB are sorted and
//            disjoint; between two neighbours lies a gap of bytes nobody asked for.
//   run      consecutive units of one area+DB read as one item, gaps included.
//   room     what a request's reply may spend on its items: PDU - 14 bytes for Σ(4 + bytes + fill).
//
// The search builds complete plans with a few strategies and keeps the best by (requests,
// payload bytes, items). No single strategy wins everywhere: filling each request as far as it
// reaches in address order is best when the item cap binds (many small tags), first-fit
// decreasing is best when leftovers of different DBs can share requests.
#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <utility>

#include "channel/channel.h"

namespace scada::channel {

std::size_t read_request_size(std::size_t items) {
  return kReadRequestBase + kItemSpec * items;
}

std::size_t max_read_items(std::size_t pdu) {
  return pdu < kReadRequestBase ? 0 : (pdu - kReadRequestBase) / kItemSpec;
}

std::size_t max_read_item_bytes(std::size_t pdu) {
  constexpr std::size_t overhead = kReadReplyBase + kDataItemHeader;  // 18
  return pdu < overhead ? 0 : pdu - overhead;
}

std::size_t max_write_item_bytes(std::size_t pdu) {
  constexpr std::size_t overhead = kReadRequestBase + kItemSpec + kDataItemHeader;  // 28
  return pdu < overhead ? 0 : pdu - overhead;
}

namespace {

constexpr std::int64_t kNoMerge = -1;                  // gap between units that never share an item
constexpr std::uint64_t kMaxByteOffset = 0x1FFFFF;     // byte * 8 + bit fills the 24-bit ADDR field
constexpr std::uint64_t kMaxElementNumber = 0xFFFFFF;  // timers/counters put the number in ADDR
// Byte items come back with DTS 04, whose LEN(2) counts bits: 65535 bits hold 8191 bytes.
constexpr std::size_t kMaxBitCountedBytes = 8191;
constexpr std::size_t kMaxItemsField = 255;  // the item count is one byte
constexpr std::size_t kMaxPduField = 65535;  // the PDU size is a 16-bit field
// Threshold plans beyond this many distinct gap values sample them instead (keeps 10,000 tags
// well under a second; the reach strategy needs no thresholds at all).
constexpr std::size_t kMaxThresholds = 48;

bool counts_elements(Area a) {
  return a == Area::timers || a == Area::counters;
}

std::size_t fills(std::size_t odd_items) {
  return odd_items > 0 ? odd_items - 1 : 0;
}

struct Limits {
  std::size_t pdu = 0;
  std::size_t items = 0;          // per request
  std::size_t room = 0;           // PDU - 14
  std::size_t item_bytes = 0;     // largest byte-addressed item
  std::size_t item_elements = 0;  // largest timer/counter item, in elements
};

struct Group {
  Area area;
  std::uint16_t db;
  std::uint32_t unit_bytes;  // reply bytes per address step: 1, or 2 for timers/counters
  std::size_t cap_bytes;     // largest item of this group
};

struct Run {
  std::uint32_t first = 0, last = 0;  // units first..last, inclusive
};

using RequestRuns = std::vector<Run>;

// What one more item costs on the wire per poll: its 12-byte specification in the request and
// its 4-byte header in the reply. A gap shorter than this is cheaper to read than to skip.
constexpr std::size_t kItemWireCost = kItemSpec + kDataItemHeader;

struct Plan {
  std::vector<RequestRuns> requests;
  std::size_t payload = 0;
  std::size_t items = 0;
  // Fewest requests first; then fewest bytes on the wire per poll (reading a gap is worth it
  // when it costs less than another item); then fewest items.
  auto score() const { return std::tuple(requests.size(), payload + kItemWireCost * items, items); }
};

// The planner's input, normalized: groups, units in address order, which tags each unit holds.
struct Problem {
  Limits limits;
  std::vector<Group> groups;
  std::vector<std::uint32_t> start, end;  // per unit, in address steps (bytes or numbers)
  std::vector<std::uint32_t> group;       // per unit
  std::vector<std::int64_t> gap;          // per unit: bytes after the previous unit, or kNoMerge
  std::vector<std::size_t> bytes_before;  // Σ unit bytes of units [0, i); size units + 1
  std::vector<std::size_t> member_begin;  // tags of unit i: members[member_begin[i] ..]
  std::vector<std::size_t> members;
  std::vector<std::uint32_t> tag_start, tag_end;  // per input tag, in address steps

  std::uint32_t units() const { return std::uint32_t(start.size()); }
  const Group& group_of(std::uint32_t u) const { return groups[group[u]]; }
  std::size_t unit_bytes(std::uint32_t u) const {
    return std::size_t(end[u] - start[u]) * group_of(u).unit_bytes;
  }
  // Bytes of one item reading units first..last (the caller keeps them in one group).
  std::size_t run_bytes(std::uint32_t first, std::uint32_t last) const {
    return std::size_t(end[last] - start[first]) * group_of(first).unit_bytes;
  }
  std::size_t run_bytes(Run r) const { return run_bytes(r.first, r.last); }
  std::size_t cap(std::uint32_t u) const { return group_of(u).cap_bytes; }
};

// What one request has spent so far. The fill byte goes after every odd item but the last, and
// the planner puts an odd item last, so a request pays one fill less than it has odd items.
struct RequestFill {
  std::size_t items = 0;
  std::size_t spent = 0;  // Σ(4 + bytes)
  std::size_t odd = 0;
  std::size_t used() const { return spent + fills(odd); }
  std::size_t used_with(std::size_t bytes) const {
    return spent + kDataItemHeader + bytes + fills(odd + (bytes & 1));
  }
  bool fits(std::size_t bytes, std::size_t max_items, std::size_t room) const {
    return items < max_items && used_with(bytes) <= room;
  }
  void add(std::size_t bytes) {
    ++items;
    spent += kDataItemHeader + bytes;
    odd += bytes & 1;
  }
};

std::string error_prefix(std::size_t tag) {
  return "tag " + std::to_string(tag);
}

// ---- Normalizing the input

struct TagSpan {
  std::size_t tag;
  std::uint32_t group;
  std::uint32_t start, end;
};

std::variant<Problem, PlanError> make_problem(std::span<const ReadTag> tags, const Limits& limits) {
  Problem p;
  p.limits = limits;
  p.tag_start.resize(tags.size());
  p.tag_end.resize(tags.size());

  // Groups by (area, DB), numbered in address order.
  std::vector<std::pair<std::uint32_t, std::size_t>> keys;  // (area << 16 | db, tag)
  keys.reserve(tags.size());
  for (std::size_t i = 0; i < tags.size(); ++i) {
    keys.emplace_back(std::uint32_t(tags[i].area) << 16 | tags[i].db, i);
  }
  std::sort(keys.begin(), keys.end());
  std::vector<TagSpan> spans;
  spans.reserve(tags.size());
  for (std::size_t k = 0; k < keys.size(); ++k) {
    const std::size_t i = keys[k].second;
    const ReadTag& t = tags[i];
    const bool elements = counts_elements(t.area);
    if (k == 0 || keys[k].first != keys[k - 1].first) {
      p.groups.push_back(Group{t.area, t.db, elements ? 2u : 1u,
                               elements ? limits.item_elements * 2 : limits.item_bytes});
    }
    const char* numbered = t.area == Area::timers ? "timers" : "counters";
    if (t.size == 0) return PlanError{i, error_prefix(i) + " has size 0"};
    if (t.bit && elements) {
      return PlanError{i, error_prefix(i) + ": " + numbered + " have no bits"};
    }
    if (t.bit && *t.bit > 7) {
      return PlanError{i, error_prefix(i) + ": bit " + std::to_string(*t.bit) + " is not 0..7"};
    }
    const std::uint64_t size = t.bit ? 1 : t.size;
    if (elements) {
      if (t.offset > kMaxElementNumber) {
        return PlanError{i, error_prefix(i) + ": number " + std::to_string(t.offset) +
                                " does not fit the 24-bit address field"};
      }
      if (size > limits.item_elements) {
        return PlanError{
            i, error_prefix(i) + " needs " + std::to_string(size) + " " + numbered + " (" +
                   std::to_string(size * 2) + " bytes); one item carries at most " +
                   std::to_string(limits.item_elements) + " at PDU " + std::to_string(limits.pdu)};
      }
    } else {
      if (t.offset > kMaxByteOffset) {
        return PlanError{i, error_prefix(i) + ": byte offset " + std::to_string(t.offset) +
                                " is beyond the 24-bit address field (at most " +
                                std::to_string(kMaxByteOffset) + ")"};
      }
      if (size > limits.item_bytes) {
        return PlanError{i, error_prefix(i) + " needs " + std::to_string(size) +
                                " bytes; one item carries at most " +
                                std::to_string(limits.item_bytes) + " at PDU " +
                                std::to_string(limits.pdu)};
      }
    }
    // Both bounds above keep start + size within 32 bits.
    spans.push_back(
        TagSpan{i, std::uint32_t(p.groups.size() - 1), t.offset, std::uint32_t(t.offset + size)});
    p.tag_start[i] = t.offset;
    p.tag_end[i] = std::uint32_t(t.offset + size);
  }
  std::sort(spans.begin(), spans.end(), [](const TagSpan& a, const TagSpan& b) {
    return std::tie(a.group, a.start, a.end, a.tag) < std::tie(b.group, b.start, b.end, b.tag);
  });

  auto add_unit = [&p](std::uint32_t group, std::uint32_t start, std::uint32_t end, bool joined) {
    std::int64_t gap = kNoMerge;
    if (!joined && !p.start.empty() && p.group.back() == group) {
      gap = std::int64_t(start - p.end.back()) * p.groups[group].unit_bytes;
    }
    p.start.push_back(start);
    p.end.push_back(end);
    p.group.push_back(group);
    p.gap.push_back(gap);
    p.member_begin.push_back(p.members.size());
  };

  // Overlapping tags form one unit. A unit too large for one item (tags that each fit but chain
  // into something longer) becomes overlapping pieces, each read by its own item: the bytes
  // they share are read twice, but no tag is cut.
  for (std::size_t a = 0; a < spans.size();) {
    std::size_t b = a + 1;
    std::uint32_t atom_end = spans[a].end;
    while (b < spans.size() && spans[b].group == spans[a].group && spans[b].start < atom_end) {
      atom_end = std::max(atom_end, spans[b].end);
      ++b;
    }
    const Group& g = p.groups[spans[a].group];
    const std::size_t cap_steps = g.cap_bytes / g.unit_bytes;
    if (atom_end - spans[a].start <= cap_steps) {
      add_unit(spans[a].group, spans[a].start, atom_end, false);
      for (std::size_t k = a; k < b; ++k) p.members.push_back(spans[k].tag);
    } else {
      bool first_piece = true;
      for (std::size_t k = a; k < b;) {
        std::uint32_t piece_end = spans[k].end;
        std::size_t m = k + 1;
        while (m < b && std::max(piece_end, spans[m].end) - spans[k].start <= cap_steps) {
          piece_end = std::max(piece_end, spans[m].end);
          ++m;
        }
        add_unit(spans[k].group, spans[k].start, piece_end, !first_piece);
        for (std::size_t n = k; n < m; ++n) p.members.push_back(spans[n].tag);
        first_piece = false;
        k = m;
      }
    }
    a = b;
  }
  p.member_begin.push_back(p.members.size());

  p.bytes_before.assign(p.units() + 1, 0);
  for (std::uint32_t u = 0; u < p.units(); ++u) {
    p.bytes_before[u + 1] = p.bytes_before[u] + p.unit_bytes(u);
  }
  return p;
}

// ---- Strategy 1: reach. Each request takes the longest stretch of units (in address order) it
// can hold; inside the stretch only the cheapest gaps are merged, just enough to meet the item
// cap and the reply size. Any part of a stretch that fits also fits, so if the packing inside a
// stretch were exact, taking the longest stretch first would never cost a request among plans
// that keep address order. Cheapest gaps first is exact but for fill bytes and the item size cap.

class StretchPacker {
 public:
  explicit StretchPacker(const Problem& p) : p_(p) {}

  // Packs units [first, last) into one request within room. Fills *runs when given.
  bool pack(std::uint32_t first, std::uint32_t last, std::size_t room, RequestRuns* runs) {
    const Limits& lim = p_.limits;
    const std::uint32_t n = last - first;
    if (p_.bytes_before[last] - p_.bytes_before[first] + kDataItemHeader > room) return false;

    run_end_.resize(n);
    run_begin_.resize(n);
    order_.clear();
    std::size_t items = n, spent = 0, odd = 0;
    for (std::uint32_t k = 0; k < n; ++k) {
      run_end_[k] = run_begin_[k] = k;
      const std::size_t b = p_.unit_bytes(first + k);
      spent += kDataItemHeader + b;
      odd += b & 1;
      if (k > 0 && p_.gap[first + k] != kNoMerge) order_.push_back(k);
    }
    std::sort(order_.begin(), order_.end(), [this, first](std::uint32_t a, std::uint32_t b) {
      return std::pair(p_.gap[first + a], a) < std::pair(p_.gap[first + b], b);
    });

    // Merges the run ending at k-1 with the run starting at k, if the item stays small enough.
    auto merge = [&](std::uint32_t k) {
      const std::uint32_t a = run_begin_[k - 1], b = run_end_[k];
      const std::size_t merged = p_.run_bytes(first + a, first + b);
      if (merged > p_.cap(first + k)) return;
      const std::size_t left = p_.run_bytes(first + a, first + k - 1);
      const std::size_t right = p_.run_bytes(first + k, first + b);
      spent = spent - left - right - kDataItemHeader + merged;
      odd = odd - (left & 1) - (right & 1) + (merged & 1);
      --items;
      run_end_[a] = b;
      run_begin_[b] = a;
    };
    auto fits = [&] { return items <= lim.items && spent + fills(odd) <= room; };

    std::size_t next = 0;
    for (; next < order_.size() && !fits(); ++next) {
      // With the item count met, a merge only helps while the gap is no longer than the item
      // header it saves; the rest of the list is longer still.
      if (items <= lim.items && p_.gap[first + order_[next]] > std::int64_t(kDataItemHeader)) break;
      merge(order_[next]);
    }
    if (!fits()) return false;
    // Touching units cost no payload to merge and save an item: always worth it.
    for (; next < order_.size() && p_.gap[first + order_[next]] == 0; ++next) merge(order_[next]);

    if (runs) {
      runs->clear();
      for (std::uint32_t k = 0; k < n; k = run_end_[k] + 1) {
        runs->push_back(Run{first + k, first + run_end_[k]});
      }
    }
    return true;
  }

 private:
  const Problem& p_;
  std::vector<std::uint32_t> run_end_, run_begin_;  // valid at run starts / run ends
  std::vector<std::uint32_t> order_;                // mergeable gaps, cheapest first
};

void add_request(Plan& plan, const Problem& p, RequestRuns runs) {
  for (const Run& r : runs) plan.payload += p.run_bytes(r);
  plan.items += runs.size();
  plan.requests.push_back(std::move(runs));
}

// room may be less than the limit: a request that stops early merges fewer gaps, which is how
// the search trades spare room for payload once the request count is known.
Plan plan_by_reach(const Problem& p, std::size_t room) {
  StretchPacker packer(p);
  Plan plan;
  RequestRuns runs;
  const std::uint32_t units = p.units();
  for (std::uint32_t first = 0; first < units;) {
    std::uint32_t good = first + 1, bad = units + 1;  // one unit always fits the real limits
    for (std::uint32_t step = 1; good < units; step *= 2) {
      const std::uint32_t probe = std::min(units, good + step);
      if (!packer.pack(first, probe, room, nullptr)) {
        bad = probe;
        break;
      }
      good = probe;
    }
    while (bad - good > 1) {
      const std::uint32_t mid = good + (bad - good) / 2;
      (packer.pack(first, mid, room, nullptr) ? good : bad) = mid;
    }
    if (!packer.pack(first, good, room, &runs)) packer.pack(first, good, p.limits.room, &runs);
    add_request(plan, p, std::move(runs));
    runs = {};
    first = good;
  }
  return plan;
}

// ---- Strategy 2: merge every gap up to a threshold, then pack the runs.

// Greedy merging from the low addresses up, or from the high addresses down: where the item
// size cap cuts a long stretch differs, and either cut may be the one that packs better.
std::vector<Run> runs_at_threshold(const Problem& p, std::int64_t threshold, bool downwards) {
  auto mergeable = [&p, threshold](std::uint32_t u) {
    return p.gap[u] != kNoMerge && p.gap[u] <= threshold;
  };
  std::vector<Run> runs;
  if (!downwards) {
    for (std::uint32_t u = 0; u < p.units(); ++u) {
      if (!runs.empty() && mergeable(u) && p.run_bytes(runs.back().first, u) <= p.cap(u)) {
        runs.back().last = u;
      } else {
        runs.push_back(Run{u, u});
      }
    }
    return runs;
  }
  for (std::uint32_t u = p.units(); u-- > 0;) {
    if (!runs.empty() && mergeable(u + 1) && p.run_bytes(u, runs.back().last) <= p.cap(u)) {
      runs.back().first = u;
    } else {
      runs.push_back(Run{u, u});
    }
  }
  std::reverse(runs.begin(), runs.end());
  return runs;
}

// Next fit in address order; a run that does not fit is cut at the last unit boundary that
// lets its front still fill the current request.
Plan pack_next_fit(const Problem& p, const std::vector<Run>& runs) {
  const Limits& lim = p.limits;
  Plan plan;
  RequestRuns current;
  RequestFill fill;
  for (Run r : runs) {
    while (!fill.fits(p.run_bytes(r), lim.items, lim.room)) {
      if (fill.items < lim.items && fill.fits(p.unit_bytes(r.first), lim.items, lim.room)) {
        std::uint32_t lo = r.first, hi = r.last;  // front r.first..lo fits, ..hi does not
        while (hi - lo > 1) {
          const std::uint32_t mid = lo + (hi - lo) / 2;
          (fill.fits(p.run_bytes(r.first, mid), lim.items, lim.room) ? lo : hi) = mid;
        }
        current.push_back(Run{r.first, lo});
        r.first = lo + 1;
      }
      add_request(plan, p, std::move(current));
      current = {};
      fill = {};
    }
    fill.add(p.run_bytes(r));
    current.push_back(r);
  }
  if (!current.empty()) add_request(plan, p, std::move(current));
  return plan;
}

// Spare room of the requests opened so far (-1 once a request has no item slot left) in a max
// segment tree, so first fit finds its request in O(log n) instead of scanning them all.
class SpareRoomTree {
 public:
  SpareRoomTree(std::size_t requests, std::size_t room) {
    while (leaves_ < requests) leaves_ *= 2;
    spare_.assign(2 * leaves_, std::int64_t(room));
  }
  void set(std::size_t request, std::int64_t spare) {
    std::size_t node = leaves_ + request;
    spare_[node] = spare;
    for (node /= 2; node > 0; node /= 2) {
      spare_[node] = std::max(spare_[2 * node], spare_[2 * node + 1]);
    }
  }
  // The first request with at least need spare bytes (one always has: leaves_ >= runs).
  std::size_t first(std::int64_t need) const {
    std::size_t node = 1;
    while (node < leaves_) node = spare_[2 * node] >= need ? 2 * node : 2 * node + 1;
    return node - leaves_;
  }
  // The first request after request `after` with at least need spare bytes.
  std::size_t next(std::size_t after, std::int64_t need) const {
    std::size_t node = leaves_ + after;
    // Climb until a right sibling holds a candidate, then descend to its leftmost one.
    while (node > 1 && (node % 2 == 1 || spare_[node + 1] < need)) node /= 2;
    for (++node; node < leaves_;) node = spare_[2 * node] >= need ? 2 * node : 2 * node + 1;
    return node - leaves_;
  }

 private:
  std::size_t leaves_ = 1;
  std::vector<std::int64_t> spare_;
};

// First fit decreasing by reply bytes: big runs first, small ones fill the holes they leave.
Plan pack_first_fit_decreasing(const Problem& p, const std::vector<Run>& runs) {
  const Limits& lim = p.limits;
  std::vector<std::pair<std::size_t, Run>> by_size;
  by_size.reserve(runs.size());
  for (const Run& r : runs) by_size.emplace_back(p.run_bytes(r), r);
  std::stable_sort(by_size.begin(), by_size.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  // Every run fits an empty request, so runs.size() requests always suffice.
  SpareRoomTree tree(runs.size(), lim.room);
  std::vector<RequestFill> fill;
  std::vector<RequestRuns> requests;
  for (const auto& [bytes, run] : by_size) {
    const auto need = std::int64_t(kDataItemHeader + bytes);
    std::size_t at = tree.first(need);
    // The tree ignores the fill byte; the exact check may send the run one request further.
    while (at < fill.size() && !fill[at].fits(bytes, lim.items, lim.room)) at = tree.next(at, need);
    if (at == fill.size()) {
      fill.emplace_back();
      requests.emplace_back();
    }
    fill[at].add(bytes);
    requests[at].push_back(run);
    tree.set(at, fill[at].items < lim.items ? std::int64_t(lim.room - fill[at].used()) : -1);
  }
  Plan plan;
  for (RequestRuns& r : requests) add_request(plan, p, std::move(r));
  return plan;
}

std::vector<std::int64_t> thresholds(const Problem& p) {
  std::vector<std::int64_t> gaps{0};  // 0: merge only what touches, never read a gap
  std::size_t largest_cap = 0;
  for (const Group& g : p.groups) largest_cap = std::max(largest_cap, g.cap_bytes);
  for (std::int64_t g : p.gap) {
    if (g != kNoMerge && std::size_t(g) <= largest_cap) gaps.push_back(g);
  }
  std::sort(gaps.begin(), gaps.end());
  gaps.erase(std::unique(gaps.begin(), gaps.end()), gaps.end());
  if (gaps.size() <= kMaxThresholds) return gaps;
  // Keep every small gap (where merging is nearly free) and sample the rest evenly.
  std::vector<std::int64_t> picked;
  for (std::size_t i = 0; i < kMaxThresholds; ++i) {
    picked.push_back(gaps[i * (gaps.size() - 1) / (kMaxThresholds - 1)]);
  }
  for (std::int64_t g : gaps) {
    if (g > std::int64_t(2 * kDataItemHeader + kItemSpec)) break;
    picked.push_back(g);
  }
  std::sort(picked.begin(), picked.end());
  picked.erase(std::unique(picked.begin(), picked.end()), picked.end());
  return picked;
}

// Splits merged runs at their widest gaps while their request still has an item slot and room
// and the gap costs more than the item the split adds: the request count stays, the bytes on
// the wire shrink. Every strategy merges a little more than it
// needs somewhere (a threshold is one number for all gaps); this takes the excess back.
void split_spare_gaps(const Problem& p, Plan& plan) {
  const Limits& lim = p.limits;
  std::vector<std::pair<std::int64_t, std::uint32_t>> cuts;  // (gap, first unit after it)
  std::map<std::uint32_t, std::uint32_t> runs_by_first;      // first unit -> last unit
  plan.payload = plan.items = 0;
  for (RequestRuns& runs : plan.requests) {
    RequestFill fill;
    cuts.clear();
    for (const Run& r : runs) {
      fill.add(p.run_bytes(r));
      for (std::uint32_t u = r.first + 1; u <= r.last; ++u) {
        if (p.gap[u] > 0) cuts.emplace_back(p.gap[u], u);
      }
    }
    if (fill.items < lim.items && !cuts.empty()) {
      std::sort(cuts.begin(), cuts.end(), [](auto a, auto b) {
        return a.first != b.first ? a.first > b.first : a.second < b.second;
      });
      runs_by_first.clear();
      for (const Run& r : runs) runs_by_first.emplace(r.first, r.last);
      for (const auto& [gap, u] : cuts) {
        if (fill.items >= lim.items || std::size_t(gap) <= kItemWireCost) break;
        const auto at = std::prev(runs_by_first.upper_bound(u));  // the run holding u
        const std::size_t whole = p.run_bytes(at->first, at->second);
        const std::size_t left = p.run_bytes(at->first, u - 1);
        const std::size_t right = p.run_bytes(u, at->second);
        RequestFill split = fill;
        split.spent = split.spent - whole + left + right + kDataItemHeader;
        split.odd = split.odd - (whole & 1) + (left & 1) + (right & 1);
        ++split.items;
        if (split.used() > lim.room) continue;
        fill = split;
        runs_by_first.emplace_hint(std::next(at), u, at->second);
        at->second = u - 1;
      }
      runs.clear();
      for (const auto& [first, last] : runs_by_first) runs.push_back(Run{first, last});
    }
    for (const Run& r : runs) plan.payload += p.run_bytes(r);
    plan.items += runs.size();
  }
}

Plan search(const Problem& p) {
  Plan best = plan_by_reach(p, p.limits.room);
  split_spare_gaps(p, best);
  auto consider = [&p, &best](Plan candidate) {
    // Splitting never changes the request count, so a plan with more requests cannot win.
    if (candidate.requests.size() > best.requests.size()) return;
    split_spare_gaps(p, candidate);
    if (candidate.score() < best.score()) best = std::move(candidate);
  };

  // Same request count with less spare room per request: fewer merges, less payload.
  const std::size_t requests = best.requests.size();
  std::size_t lo = kDataItemHeader + 1, hi = p.limits.room;
  while (lo < hi) {
    const std::size_t mid = lo + (hi - lo) / 2;
    Plan candidate = plan_by_reach(p, mid);
    if (candidate.requests.size() <= requests) {
      hi = mid;
      consider(std::move(candidate));
    } else {
      lo = mid + 1;
    }
  }

  std::vector<Run> reach_runs;
  for (const RequestRuns& r : best.requests)
    reach_runs.insert(reach_runs.end(), r.begin(), r.end());
  consider(pack_first_fit_decreasing(p, reach_runs));

  for (std::int64_t t : thresholds(p)) {
    for (bool downwards : {false, true}) {
      std::vector<Run> runs = runs_at_threshold(p, t, downwards);
      consider(pack_next_fit(p, runs));
      consider(pack_first_fit_decreasing(p, runs));
    }
  }
  return best;
}

// ---- Turning runs into the public plan

PlannedItem planned_item(const Problem& p, Run r) {
  const Group& g = p.group_of(r.first);
  PlannedItem out;
  out.bytes = std::uint32_t(p.run_bytes(r));
  const std::uint32_t steps = p.end[r.last] - p.start[r.first];
  out.item.area = g.area;
  out.item.db = g.db;
  if (counts_elements(g.area)) {
    out.item.transport = g.area == Area::timers ? TransportSize::timer : TransportSize::counter;
    out.item.count = std::uint16_t(steps);
    out.item.address = p.start[r.first];
  } else {
    out.item.transport = TransportSize::byte;
    out.item.count = std::uint16_t(steps);
    out.item.address = p.start[r.first] * 8;
  }
  for (std::uint32_t u = r.first; u <= r.last; ++u) {
    for (std::size_t m = p.member_begin[u]; m < p.member_begin[u + 1]; ++m) {
      const std::size_t tag = p.members[m];
      Slice s;
      s.tag = tag;
      s.offset = (p.tag_start[tag] - p.start[r.first]) * g.unit_bytes;
      s.length = (p.tag_end[tag] - p.tag_start[tag]) * g.unit_bytes;
      out.slices.push_back(s);
    }
  }
  return out;
}

ReadPlan to_read_plan(const Problem& p, std::span<const ReadTag> tags, Plan plan) {
  ReadPlan out;
  for (RequestRuns& runs : plan.requests) {
    std::sort(runs.begin(), runs.end(), [](Run a, Run b) { return a.first < b.first; });
    // An odd item pays a fill byte unless it is last: put the last odd item at the end.
    auto last_odd =
        std::find_if(runs.rbegin(), runs.rend(), [&p](Run r) { return p.run_bytes(r) % 2 == 1; });
    if (last_odd != runs.rend()) std::rotate(last_odd.base() - 1, last_odd.base(), runs.end());

    PlannedRequest request;
    request.reply_size = kReadReplyBase;
    for (std::size_t i = 0; i < runs.size(); ++i) {
      PlannedItem item = planned_item(p, runs[i]);
      for (Slice& s : item.slices) s.bit = tags[s.tag].bit;
      std::size_t covered = 0;
      for (std::uint32_t u = runs[i].first; u <= runs[i].last; ++u) covered += p.unit_bytes(u);
      const bool fill = item.bytes % 2 == 1 && i + 1 < runs.size();
      request.reply_size += kDataItemHeader + item.bytes + (fill ? 1 : 0);
      out.payload_bytes += item.bytes;
      out.wasted_bytes += item.bytes - covered;
      request.items.push_back(std::move(item));
    }
    request.request_size = read_request_size(request.items.size());
    out.items += request.items.size();
    out.requests.push_back(std::move(request));
  }
  return out;
}

}  // namespace

std::variant<ReadPlan, PlanError> plan_reads(std::span<const ReadTag> tags, PlannerLimits limits) {
  if (tags.empty()) return ReadPlan{};
  Limits lim;
  lim.pdu = std::min(limits.pdu, kMaxPduField);
  // 0 items would plan nothing; more than 255 cannot be said in the count byte.
  lim.items = std::min(
      {std::max<std::size_t>(limits.max_items, 1), kMaxItemsField, max_read_items(lim.pdu)});
  if (lim.items == 0) {
    return PlanError{0, "PDU " + std::to_string(limits.pdu) +
                            " is too small: a read request with one item needs " +
                            std::to_string(read_request_size(1)) + " bytes"};
  }
  lim.room = lim.pdu - kReadReplyBase;
  lim.item_bytes = std::min(max_read_item_bytes(lim.pdu), kMaxBitCountedBytes);
  lim.item_elements = max_read_item_bytes(lim.pdu) / 2;

  auto problem = make_problem(tags, lim);
  if (auto* error = std::get_if<PlanError>(&problem)) return std::move(*error);
  const Problem& p = std::get<Problem>(problem);
  return to_read_plan(p, tags, search(p));
}

Result<std::vector<TagBytes>> cut_reply(const PlannedRequest& request,
                                        const ReadVarResponse& reply) {
  if (reply.items.size() != request.items.size()) {
    return WireError{WireErrorKind::bad_length, 0,
                     "reply has " + std::to_string(reply.items.size()) + " items, request had " +
                         std::to_string(request.items.size())};
  }
  std::vector<TagBytes> out;
  for (std::size_t i = 0; i < request.items.size(); ++i) {
    const PlannedItem& planned = request.items[i];
    const DataItem& data = reply.items[i];
    if (data.return_code != std::uint8_t(ReturnCode::success)) {
      for (const Slice& s : planned.slices) out.push_back(TagBytes{s.tag, data.return_code, {}});
      continue;
    }
    if (data.data.size() < planned.bytes) {
      return WireError{WireErrorKind::bad_length, 0,
                       "item " + std::to_string(i + 1) + " carries " +
                           std::to_string(data.data.size()) + " bytes, the request asked for " +
                           std::to_string(planned.bytes)};
    }
    for (const Slice& s : planned.slices) {
      if (std::size_t(s.offset) + std::max<std::uint32_t>(s.length, 1) > data.data.size()) {
        return WireError{WireErrorKind::bad_length, 0,
                         "item " + std::to_string(i + 1) + ": the slice of tag " +
                             std::to_string(s.tag) + " lies outside its data"};
      }
      TagBytes value{s.tag, data.return_code, {}};
      if (s.bit) {
        value.data.push_back(std::uint8_t((data.data[s.offset] >> *s.bit) & 1));
      } else {
        const auto from = data.data.begin() + s.offset;
        value.data.assign(from, from + s.length);
      }
      out.push_back(std::move(value));
    }
  }
  return out;
}

Pdu read_request_pdu(std::uint16_t pdu_ref, const PlannedRequest& request) {
  ReadVarRequest body;
  for (const PlannedItem& item : request.items) body.items.push_back(item.item);
  return Pdu{Header{Rosctr::job, 0, pdu_ref}, std::move(body)};
}

}  // namespace scada::channel
