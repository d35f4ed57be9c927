// scadactl plan: reads a tag file, plans the Read Var requests for one PDU size and prints them.
#include <algorithm>
#include <fstream>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "json_line.h"
#include "runtime/runtime.h"
#include "tag_file.h"
#include "tags/tags.h"

namespace scada::runtime {
namespace {

using channel::Area;

std::string plural(std::size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string describe(const channel::PlannedItem& item) {
  const channel::VarItem& v = item.item;
  std::string where = channel::area_name(v.area);
  if (v.area == Area::data_block || v.area == Area::instance_db) where += std::to_string(v.db);
  const std::string tags = plural(item.slices.size(), "tag", "tags");
  if (v.area == Area::timers || v.area == Area::counters) {
    const bool timers = v.area == Area::timers;
    return where + " " + std::to_string(v.address) + ".." +
           std::to_string(v.address + v.count - 1) + " (" +
           plural(v.count, timers ? "timer" : "counter", timers ? "timers" : "counters") + ", " +
           plural(item.bytes, "byte", "bytes") + ", " + tags + ")";
  }
  const std::uint32_t first = v.address / 8;
  return where + " bytes " + std::to_string(first) + ".." + std::to_string(first + item.bytes - 1) +
         " (" + plural(item.bytes, "byte", "bytes") + ", " + tags + ")";
}

// {"requests": N, "items": N, "payload_bytes": N, "wasted_bytes": N}
std::string summary_json(const channel::ReadPlan& plan) {
  nlohmann::ordered_json summary;
  summary["requests"] = plan.requests.size();
  summary["items"] = plan.items;
  summary["payload_bytes"] = plan.payload_bytes;
  summary["wasted_bytes"] = plan.wasted_bytes;
  return json_line(summary);
}

}  // namespace

int plan_command(const PlanOptions& options, std::ostream& out, std::ostream& err) {
  std::vector<TagFileLine> lines;
  try {
    lines = read_tag_file(options.tag_file);
  } catch (const std::runtime_error& e) {
    err << e.what() << "\n";
    return 2;
  }

  std::vector<channel::ReadTag> read_tags;
  for (const TagFileLine& line : lines) read_tags.push_back(tags::to_read_tag(line.address));
  auto result = channel::plan_reads(read_tags, {options.pdu, options.max_items, 1});
  if (auto* error = std::get_if<channel::PlanError>(&result)) {
    // The planner names tags by index; the operator knows them by line and address.
    const std::string index = "tag " + std::to_string(error->tag);
    if (error->tag < lines.size() && error->reason.rfind(index, 0) == 0) {
      const TagFileLine& line = lines[error->tag];
      err << options.tag_file << ":" << line.line << ": " << line.address.to_string()
          << error->reason.substr(index.size()) << "\n";
    } else {
      err << options.tag_file << ": " << error->reason << "\n";
    }
    return 2;
  }
  const channel::ReadPlan& plan = std::get<channel::ReadPlan>(result);

  for (std::size_t r = 0; r < plan.requests.size(); ++r) {
    const channel::PlannedRequest& request = plan.requests[r];
    out << "request " << r + 1 << ": " << plural(request.items.size(), "item", "items")
        << ", request " << request.request_size << " bytes, reply " << request.reply_size
        << " bytes\n";
    for (const channel::PlannedItem& item : request.items) out << "  " << describe(item) << "\n";
  }
  if (options.json) {
    out << summary_json(plan) << "\n";
  } else {
    out << "requests " << plan.requests.size() << " items " << plan.items << " payload_bytes "
        << plan.payload_bytes << " wasted_bytes " << plan.wasted_bytes << "\n";
  }
  return 0;
}

}  // namespace scada::runtime
