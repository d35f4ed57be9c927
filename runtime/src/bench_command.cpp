// scadactl bench read: how fast one connection reads a tag set, on the runtime's own code path
// (channel::Connection with the device certificate store, the read planner, cut_reply and
// decode_value), with every value checked. A benchmark that reports wrong values as fast ones
// would measure nothing.
#include <sys/resource.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "certstore/certstore.h"
#include "channel/channel.h"
#include "json_line.h"
#include "runtime/runtime.h"
#include "tag_file.h"
#include "tags/tags.h"

namespace scada::runtime {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Distinct error kinds (tag and reason) kept with a count and an example; more are only counted.
constexpr std::size_t kMaxErrorKinds = 1000;
constexpr std::size_t kErrorKindsShown = 10;

struct BenchTag {
  std::string address;  // canonical form, for messages
  tags::TypeSpec type;
  channel::ReadTag read;
};

// The tags of the file (tag_file.h); an empty file is an error too.
std::vector<BenchTag> read_bench_tags(const std::string& path) {
  std::vector<BenchTag> out;
  for (const TagFileLine& line : read_tag_file(path)) {
    out.push_back({line.address.to_string(), line.type, tags::to_read_tag(line.address)});
  }
  if (out.empty()) throw std::runtime_error(path + ": no tags in the file");
  return out;
}

void check_options(const BenchReadOptions& o) {
  if (o.duration < 100ms || o.duration > std::chrono::hours(1)) {
    throw std::runtime_error("--seconds must be between 0.1 and 3600");
  }
  if (o.pattern != "unchanged" && o.pattern != "counter") {
    throw std::runtime_error("--pattern must be unchanged or counter, not '" + o.pattern + "'");
  }
  if (o.max_items < 1 || o.max_items > 255) {
    throw std::runtime_error("--max-items must be between 1 and 255");
  }
  if (o.amq < 1) throw std::runtime_error("--amq must be at least 1");
}

struct ErrorKind {
  std::size_t count = 0;
  std::string example;  // the first occurrence's values, when there are any
};

// Everything the report needs.
struct Report {
  bool up = false;
  channel::ConnectionEvent failure;  // why the session did not come up, or ended early
  channel::ConnectionInfo info;
  channel::ReadPlan plan;
  std::size_t max_items = 0;  // the cap the plan was made with
  std::size_t tags = 0;       // in the file
  std::uint64_t requests = 0, loops = 0, values = 0, errors = 0;
  std::size_t peak_in_flight = 0;     // most requests the connection had in flight at once
  std::vector<std::uint32_t> rtt_us;  // one per completed request
  Clock::duration elapsed{};          // first request sent .. last reply checked
  double cpu_user_s = 0, cpu_system_s = 0;
  std::map<std::string, ErrorKind> error_kinds;  // "ADDRESS: reason"
  std::uint64_t errors_not_kept = 0;             // errors beyond kMaxErrorKinds kinds
  std::string cut_short;                         // why the run ended before its time, if it did
};

double cpu_seconds(const timeval& t) {
  return double(t.tv_sec) + double(t.tv_usec) / 1e6;
}

// The read loop on one session: the plan's requests in turn, the granted AmQ in flight all the
// time (a reply sends the next request), every reply checked. Runs on the connection's strand.
class ReadLoop {
 public:
  ReadLoop(channel::Connection& connection, const std::vector<BenchTag>& tags,
           std::size_t max_items, bool counter, Report& report, std::function<void()> finished)
      : connection_(connection),
        tags_(tags),
        max_items_(max_items),
        counter_(counter),
        report_(report),
        finished_(std::move(finished)),
        last_(tags.size()) {}

  void start(Clock::duration duration) {
    report_.info = connection_.info();
    if (!plan()) return finish();
    for (const channel::PlannedRequest& request : report_.plan.requests) {
      jobs_.push_back(channel::read_request_pdu(0, request));
    }
    report_.rtt_us.reserve(1 << 20);
    getrusage(RUSAGE_SELF, &usage_at_start_);
    started_ = Clock::now();
    deadline_ = started_ + duration;
    last_reply_ = started_;
    // AmQ jobs from the start. When the plan has fewer requests than AmQ, a request is in
    // flight more than once: the PLC is kept as busy as the session allows either way.
    for (std::size_t i = 0; i < std::max<std::size_t>(1, report_.info.amq); ++i) submit();
  }

  // The session ended under the loop: nothing more comes.
  void abandon(const std::string& why) {
    if (done_) return;
    if (report_.cut_short.empty()) report_.cut_short = why;
    stopping_ = true;
  }

 private:
  // The plan for the granted PDU, as the tag server makes it; a tag no request can carry at
  // this PDU (a long string at PDU 240) is an error of its own and left out.
  bool plan() {
    const std::size_t pdu = report_.info.pdu;
    report_.max_items = std::min(max_items_, channel::max_read_items(pdu));
    const channel::PlannerLimits limits{pdu, report_.max_items,
                                        std::max<std::size_t>(1, report_.info.amq)};
    planned_.resize(tags_.size());
    for (std::size_t t = 0; t < tags_.size(); ++t) planned_[t] = t;
    for (;;) {
      std::vector<channel::ReadTag> reads;
      reads.reserve(planned_.size());
      for (std::size_t t : planned_) reads.push_back(tags_[t].read);
      auto plan = channel::plan_reads(reads, limits);
      if (auto* ok = std::get_if<channel::ReadPlan>(&plan)) {
        report_.plan = std::move(*ok);
        return !report_.plan.requests.empty();
      }
      const auto& error = std::get<channel::PlanError>(plan);
      error_for(planned_[error.tag],
                "cannot be read at PDU " + std::to_string(pdu) + ": " + error.reason);
      planned_.erase(planned_.begin() + std::ptrdiff_t(error.tag));
    }
  }

  void submit() {
    const std::size_t r = next_;
    next_ = (next_ + 1) % jobs_.size();
    ++in_flight_;
    const std::uint64_t sequence = ++sequence_;
    const Clock::time_point sent = Clock::now();
    connection_.submit(jobs_[r], [this, r, sequence, sent](channel::JobResult result) {
      on_reply(r, sequence, sent, result);
    });
  }

  void on_reply(std::size_t r, std::uint64_t sequence, Clock::time_point sent,
                const channel::JobResult& result) {
    const Clock::time_point now = Clock::now();
    --in_flight_;
    if (const auto* error = std::get_if<channel::JobError>(&result)) {
      // The session ended (or the PLC stopped answering): the tags of this request were not
      // read, and nothing more will be.
      request_error(
          r, channel::failure_reason_name(error->reason) + std::string(": ") + error->detail);
      abandon(error->detail);
    } else {
      ++report_.requests;
      report_.rtt_us.push_back(std::uint32_t(std::min<std::int64_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(now - sent).count(),
          std::numeric_limits<std::uint32_t>::max())));
      last_reply_ = now;
      check(r, sequence, std::get<channel::Pdu>(result));
      if (next_ == 0 && !stopping_ && now >= deadline_) stopping_ = true;
    }
    // After the deadline the loop that is under way is completed, so that every tag was read
    // equally often: the run ends on a loop boundary.
    if (!stopping_) return submit();
    if (in_flight_ == 0) finish();
  }

  void check(std::size_t r, std::uint64_t sequence, const channel::Pdu& reply) {
    const channel::PlannedRequest& request = report_.plan.requests[r];
    if (reply.header.error() != 0) {
      return request_error(
          r, "the PLC refused the read: " + channel::s7_error_text(reply.header.error()));
    }
    const auto* body = std::get_if<channel::ReadVarResponse>(&reply.body);
    if (!body) return request_error(r, "the PLC answered a read with another reply");
    auto cut = channel::cut_reply(request, *body);
    if (!cut) {
      return request_error(r, "the reply does not fit the request: " + cut.error().to_string());
    }
    for (channel::TagBytes& piece : cut.value()) {
      const std::size_t t = planned_[piece.tag];
      if (piece.return_code != 0xFF) {
        char code[8];
        std::snprintf(code, sizeof code, "0x%02X", piece.return_code);
        error_for(t, std::string(channel::return_code_text(piece.return_code)) + " (" + code + ")");
        continue;
      }
      auto decoded = tags::decode_value(tags_[t].type, piece.data);
      if (const auto* why = std::get_if<std::string>(&decoded)) {
        error_for(t, "not a " + tags_[t].type.to_string() + " value: " + *why);
        continue;
      }
      ++report_.values;
      if (counter_) {
        check_counter(t, sequence, std::get<tags::Value>(std::move(decoded)));
      } else {
        check_unchanged(t, piece.data);
      }
    }
  }

  // Without a pattern: each value is the one the previous read of the tag gave.
  void check_unchanged(std::size_t t, channel::Bytes& data) {
    Last& last = last_[t];
    if (last.seen && last.bytes != data) {
      error_for(t, "changed between reads (a value that changes needs --pattern)",
                text_of(t, last.bytes) + " -> " + text_of(t, data));
    }
    last.seen = true;
    last.bytes.swap(data);
  }

  // --pattern counter: a number that never decreases. Replies are compared in the order their
  // requests were sent, whatever order they come back in.
  void check_counter(std::size_t t, std::uint64_t sequence, tags::Value value) {
    const auto number = number_of(value);
    if (!number) return error_for(t, "not a number (--pattern counter)");
    Last& last = last_[t];
    if (last.seen) {
      const bool later = sequence > last.sequence;
      const tags::Value& before = later ? last.value : value;
      const tags::Value& after = later ? value : last.value;
      if (*number_of(after) < *number_of(before)) {
        error_for(t, "a counter that went backwards",
                  tags::value_to_string(tags_[t].type, before) + " -> " +
                      tags::value_to_string(tags_[t].type, after));
      }
      if (!later) return;
    }
    last.seen = true;
    last.sequence = sequence;
    last.value = std::move(value);
  }

  static std::optional<double> number_of(const tags::Value& value) {
    if (const auto* i = std::get_if<std::int64_t>(&value)) return double(*i);
    if (const auto* d = std::get_if<double>(&value)) return *d;
    return std::nullopt;
  }

  std::string text_of(std::size_t t, const channel::Bytes& bytes) const {
    auto decoded = tags::decode_value(tags_[t].type, bytes);
    if (const auto* value = std::get_if<tags::Value>(&decoded)) {
      return tags::value_to_string(tags_[t].type, *value);
    }
    return "?";
  }

  // Every tag of request r: its value was not read.
  void request_error(std::size_t r, const std::string& reason) {
    for (const channel::PlannedItem& item : report_.plan.requests[r].items) {
      for (const channel::Slice& slice : item.slices) error_for(planned_[slice.tag], reason);
    }
  }

  void error_for(std::size_t t, const std::string& reason, const std::string& example = {}) {
    ++report_.errors;
    std::string key = tags_[t].address + ": " + reason;
    auto it = report_.error_kinds.find(key);
    if (it == report_.error_kinds.end()) {
      if (report_.error_kinds.size() >= kMaxErrorKinds) {
        ++report_.errors_not_kept;
        return;
      }
      it = report_.error_kinds.emplace(std::move(key), ErrorKind{0, example}).first;
    }
    ++it->second.count;
  }

  void finish() {
    if (done_) return;
    done_ = true;
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    report_.cpu_user_s = cpu_seconds(usage.ru_utime) - cpu_seconds(usage_at_start_.ru_utime);
    report_.cpu_system_s = cpu_seconds(usage.ru_stime) - cpu_seconds(usage_at_start_.ru_stime);
    report_.elapsed = last_reply_ - started_;
    report_.peak_in_flight = connection_.info().peak_jobs_in_flight;
    if (!report_.plan.requests.empty()) {
      report_.loops = report_.requests / report_.plan.requests.size();
    }
    finished_();
  }

  struct Last {
    bool seen = false;
    channel::Bytes bytes;        // unchanged: the previous value's bytes
    std::uint64_t sequence = 0;  // counter: the request that read the value below
    tags::Value value;
  };

  channel::Connection& connection_;
  const std::vector<BenchTag>& tags_;
  const std::size_t max_items_;
  const bool counter_;
  Report& report_;
  std::function<void()> finished_;
  std::vector<std::size_t> planned_;  // planner input index -> tag index
  std::vector<channel::Pdu> jobs_;    // one per planned request
  std::vector<Last> last_;            // per tag
  std::size_t next_ = 0, in_flight_ = 0;
  std::uint64_t sequence_ = 0;
  bool stopping_ = false, done_ = false;
  Clock::time_point started_, deadline_, last_reply_;
  rusage usage_at_start_{};
};

Report run_bench(const BenchReadOptions& o, const channel::ConnectionConfig& config,
                 certstore::CertificateStore& store, const std::vector<BenchTag>& tags) {
  Report report;
  report.tags = tags.size();
  boost::asio::io_context io;
  channel::Connection connection(io.get_executor(), store, config);
  bool ended = false, finished = false;
  ReadLoop loop(connection, tags, o.max_items, o.pattern == "counter", report, [&] {
    finished = true;
    connection.stop();
  });
  auto subscription = connection.subscribe([&](const channel::ConnectionEvent& e) {
    if (e.state == channel::ConnectionState::up && !report.up) {
      report.up = true;
      // Planning 10,000 tags takes a while: not in the event handler.
      boost::asio::post(io, [&] {
        if (!ended) loop.start(o.duration);
      });
    } else if (e.state == channel::ConnectionState::stopped) {
      if (e.reason != channel::FailureReason::stopped || !finished) report.failure = e;
      if (report.up) loop.abandon("the session ended: " + e.detail);
      ended = true;
    }
  });
  // A bound above everything the run may take, so that nothing here can hang.
  const auto bound = o.duration + 2 * o.connection.timeout + 5s;
  boost::asio::steady_timer guard(io, bound);
  guard.async_wait([&](boost::system::error_code ec) {
    if (ec) return;
    report.cut_short =
        "the run did not end within " +
        std::to_string(std::chrono::duration_cast<std::chrono::seconds>(bound).count()) + " s";
    io.stop();
  });
  connection.start();
  while (!ended && !io.stopped()) io.run_one();
  guard.cancel();
  if (!io.stopped()) io.run_for(1s);  // the close_notify and FIN go out
  subscription.disconnect();
  return report;
}

double per_second(std::uint64_t n, Clock::duration elapsed) {
  const double s = std::chrono::duration<double>(elapsed).count();
  return s > 0 ? double(n) / s : 0.0;
}

std::uint32_t percentile(std::vector<std::uint32_t> samples, double p) {
  if (samples.empty()) return 0;
  const auto rank = std::size_t(std::ceil(p * double(samples.size()))) - 1;
  const auto at = samples.begin() + std::ptrdiff_t(std::min(rank, samples.size() - 1));
  std::nth_element(samples.begin(), at, samples.end());
  return *at;
}

// v with at most `decimals` decimals, for JSON (0.144, not 0.14400000000000002).
double rounded(double v, int decimals) {
  const double scale = std::pow(10.0, decimals);
  return std::round(v * scale) / scale;
}

struct Figures {
  double requests_per_s = 0, tags_per_s = 0;
  std::uint32_t p50 = 0, p99 = 0, max = 0;
  std::uint64_t errors = 0;
  bool ok = false;
};

Figures figures_of(const Report& r) {
  Figures f;
  f.requests_per_s = per_second(r.requests, r.elapsed);
  f.tags_per_s = per_second(r.values, r.elapsed);
  f.p50 = percentile(r.rtt_us, 0.50);
  f.p99 = percentile(r.rtt_us, 0.99);
  f.max = r.rtt_us.empty() ? 0 : *std::max_element(r.rtt_us.begin(), r.rtt_us.end());
  // A session that did not come up, or ended under the run, is an error too.
  const bool session_failed =
      !r.up || r.failure.reason != channel::FailureReason::none || !r.cut_short.empty();
  f.errors = r.errors + (session_failed && r.errors == 0 ? 1 : 0);
  f.ok = f.errors == 0;
  return f;
}

std::vector<std::pair<std::string, ErrorKind>> worst_errors(const Report& r) {
  std::vector<std::pair<std::string, ErrorKind>> kinds(r.error_kinds.begin(), r.error_kinds.end());
  std::stable_sort(kinds.begin(), kinds.end(),
                   [](const auto& a, const auto& b) { return a.second.count > b.second.count; });
  if (kinds.size() > kErrorKindsShown) kinds.resize(kErrorKindsShown);
  return kinds;
}

std::string fixed(double v, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, v);
  return text;
}

void print_text(const BenchReadOptions& o, const Report& r, const Figures& f, std::ostream& out) {
  const ProbeOptions& c = o.connection;
  const std::string where = c.address + ":" + std::to_string(c.port) + " (" + c.mode + ")";
  if (!r.up) {
    out << "failed: " << where << ": " << channel::failure_reason_name(r.failure.reason) << "\n"
        << "  " << (r.failure.detail.empty() ? r.cut_short : r.failure.detail) << "\n";
    if (r.failure.quarantined) {
      out << "  quarantined: " << r.failure.quarantined->string()
          << " (move it into trusted/ to trust this certificate)\n";
    }
    out << "errors 1\n";
    return;
  }
  const channel::ConnectionInfo& i = r.info;
  out << "session: " << where << ", ";
  if (!i.tls_version.empty()) {
    out << i.tls_version << " " << i.cipher
        << (i.used_psk ? ", pre-shared key" : (i.group.empty() ? "" : ", " + i.group)) << ", ";
  }
  out << "PDU " << i.pdu << ", AmQ " << i.amq << ", up in "
      << fixed(double(i.handshake_time.count()) / 1000.0, 1) << " ms\n";
  const auto plural = [](std::size_t n, const char* one, const char* many) {
    return std::to_string(n) + " " + (n == 1 ? one : many);
  };
  out << "plan: " << plural(r.tags, "tag", "tags") << ", "
      << plural(r.plan.requests.size(), "request", "requests") << " per loop ("
      << plural(r.plan.items, "item", "items") << ", at most " << r.max_items << " per request, "
      << r.plan.payload_bytes << " payload bytes)\n";
  const double seconds = std::chrono::duration<double>(r.elapsed).count();
  out << "ran " << fixed(seconds, 2) << " s: " << r.loops << " loops, " << r.requests
      << " requests, " << r.values << " values checked (" << o.pattern << ")\n";
  out << "  requests/s  " << fixed(f.requests_per_s, 0) << "\n";
  out << "  tags/s      " << fixed(f.tags_per_s, 0) << "\n";
  out << "  round trip  p50 " << f.p50 << " us, p99 " << f.p99 << " us, max " << f.max << " us\n";
  const double cpu = r.cpu_user_s + r.cpu_system_s;
  out << "  CPU         " << fixed(cpu, 2) << " s (user " << fixed(r.cpu_user_s, 2) << ", sys "
      << fixed(r.cpu_system_s, 2) << "), " << fixed(seconds > 0 ? 100 * cpu / seconds : 0, 0)
      << "% of one core";
  if (r.values > 0) out << ", " << fixed(1e6 * cpu / double(r.values), 2) << " us per value";
  out << "\n";
  if (!r.cut_short.empty()) out << "  cut short: " << r.cut_short << "\n";
  out << "errors " << f.errors << "\n";
  for (const auto& [what, kind] : worst_errors(r)) {
    out << "  " << what << (kind.example.empty() ? "" : " (" + kind.example + ")") << ": "
        << kind.count << (kind.count == 1 ? " time" : " times") << "\n";
  }
  if (r.error_kinds.size() > kErrorKindsShown || r.errors_not_kept > 0) {
    out << "  ... " << r.error_kinds.size() - std::min(kErrorKindsShown, r.error_kinds.size())
        << (r.errors_not_kept > 0 ? "+" : "") << " more kinds of errors\n";
  }
}

void print_json(const BenchReadOptions& o, const Report& r, const Figures& f, std::ostream& out) {
  using nlohmann::ordered_json;
  const channel::ConnectionInfo& i = r.info;
  ordered_json detail;
  detail["ok"] = f.ok;
  detail["reason"] = r.up && r.failure.reason == channel::FailureReason::none
                         ? ordered_json(nullptr)
                         : ordered_json(channel::failure_reason_name(r.failure.reason));
  detail["detail"] = !r.failure.detail.empty() ? ordered_json(r.failure.detail)
                     : !r.cut_short.empty()    ? ordered_json(r.cut_short)
                                               : ordered_json(nullptr);
  detail["address"] = o.connection.address;
  detail["port"] = o.connection.port;
  detail["mode"] = o.connection.mode;
  const bool tls = r.up && !i.tls_version.empty();
  detail["tls_version"] = tls ? ordered_json(i.tls_version) : ordered_json(nullptr);
  detail["cipher"] = tls ? ordered_json(i.cipher) : ordered_json(nullptr);
  detail["pdu"] = r.up ? ordered_json(i.pdu) : ordered_json(nullptr);
  detail["amq"] = r.up ? ordered_json(i.amq) : ordered_json(nullptr);
  detail["pattern"] = o.pattern;
  detail["tags"] = r.tags;
  detail["max_items"] = r.max_items;
  detail["plan_requests"] = r.plan.requests.size();
  detail["plan_items"] = r.plan.items;
  detail["loops"] = r.loops;
  detail["requests"] = r.requests;
  detail["values"] = r.values;
  detail["seconds"] = rounded(std::chrono::duration<double>(r.elapsed).count(), 4);
  detail["rtt_max_us"] = f.max;
  detail["peak_in_flight"] = r.peak_in_flight;
  detail["cpu_user_s"] = rounded(r.cpu_user_s, 3);
  detail["cpu_sys_s"] = rounded(r.cpu_system_s, 3);
  ordered_json kinds = ordered_json::array();
  for (const auto& [what, kind] : worst_errors(r)) {
    ordered_json k;
    k["error"] = what;
    k["count"] = kind.count;
    k["example"] = kind.example.empty() ? ordered_json(nullptr) : ordered_json(kind.example);
    kinds.push_back(std::move(k));
  }
  detail["error_kinds"] = std::move(kinds);
  out << json_line(detail) << "\n";

  ordered_json summary;
  summary["requests_per_s"] = rounded(f.requests_per_s, 1);
  summary["tags_per_s"] = rounded(f.tags_per_s, 1);
  summary["rtt_p50_us"] = f.p50;
  summary["rtt_p99_us"] = f.p99;
  summary["errors"] = f.errors;
  out << json_line(summary) << "\n";
}

}  // namespace

int bench_read_command(const BenchReadOptions& options, std::ostream& out, std::ostream& err) {
  channel::ConnectionConfig config;
  std::unique_ptr<certstore::CertificateStore> store;
  std::vector<BenchTag> tags;
  std::vector<std::string> store_problems;
  try {
    check_options(options);
    config = probe_connection_config(options.connection);
    config.amq = options.amq;
    tags = read_bench_tags(options.tag_file);
    store = std::make_unique<certstore::CertificateStore>(probe_store_layout(options.connection));
    store_problems = load_store(*store);
  } catch (const std::exception& e) {
    err << "scadactl bench read: " << e.what() << "\n";
    return 2;
  }
  for (const std::string& p : store_problems) err << "warning: " << p << "\n";
  const Report report = run_bench(options, config, *store, tags);
  const Figures figures = figures_of(report);
  if (options.json) {
    print_json(options, report, figures, out);
  } else {
    print_text(options, report, figures, out);
  }
  return figures.ok ? 0 : 1;
}

}  // namespace scada::runtime
