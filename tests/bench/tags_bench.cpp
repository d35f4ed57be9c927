// tags_bench: what a connection change costs the values, and how many tags per second one
// connection acquires (issue 5). Real TLS on loopback against plcsim; see README.md.
//
// Prints:
//   - the gap (time with no fresh value of a 10 Hz tag) for the documented three-write sequence
//     (Force 0, Use 1, Force 1) and for a make-before-break switch (Use 1 while connected);
//   - tags per second for 1,000 tags on one connection at PDU 960, with AmQ 1 and larger, with
//     the PLC answering at once and with 2 ms of simulated CPU time per reply.
// Exits 1 only when something does not work at all (no value, a bad-quality update during a
// make-before-break switch); the figures themselves are never judged here.
#include <boost/asio/post.hpp>

#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <future>
#include <mutex>
#include <thread>

#include "connection_fixture.h"
#include "tags/tags.h"

namespace {

using namespace std::chrono_literals;
using namespace scada;
using Clock = std::chrono::steady_clock;

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 15s) {
  const auto end = Clock::now() + timeout;
  while (Clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return pred();
}

tags::WriteResult write(tags::TagServer& server, const std::string& name, tags::Value value) {
  auto promise = std::make_shared<std::promise<tags::WriteResult>>();
  auto future = promise->get_future();
  server.write(name, std::move(value), [promise](tags::WriteResult r) { promise->set_value(r); });
  if (future.wait_for(15s) != std::future_status::ready) return std::string("no answer");
  return future.get();
}

void check(const tags::WriteResult& r, const std::string& what) {
  if (r) {
    std::fprintf(stderr, "FAIL: %s: %s\n", what.c_str(), r->c_str());
    std::exit(1);
  }
}

// Fresh values of one tag with their arrival times.
class Arrivals {
 public:
  Arrivals(tags::TagServer& server, std::string name) : name_(std::move(name)) {
    sub_ = server.subscribe([this](const tags::TagUpdate& u) {
      if (u.name != name_) return;
      std::lock_guard<std::mutex> lock(mutex_);
      list_.push_back({Clock::now(), u.state.quality, u.state.value});
    });
  }
  struct Arrival {
    Clock::time_point at;
    tags::Quality quality;
    tags::Value value;
  };
  std::vector<Arrival> since(Clock::time_point t) const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<Arrival> out;
    for (const Arrival& a : list_) {
      if (a.at >= t) out.push_back(a);
    }
    return out;
  }
  std::optional<Arrival> last_good_before(Clock::time_point t) const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::optional<Arrival> found;
    for (const Arrival& a : list_) {
      if (a.at < t && a.quality == tags::Quality::good) found = a;
    }
    return found;
  }

 private:
  std::string name_;
  mutable std::mutex mutex_;
  std::vector<Arrival> list_;
  boost::signals2::scoped_connection sub_;
};

double ms(Clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

struct Stats {
  double p50 = 0, max = 0, mean = 0;
};
Stats stats_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  Stats s;
  if (v.empty()) return s;
  s.p50 = v[v.size() / 2];
  s.max = v.back();
  for (double x : v) s.mean += x;
  s.mean /= double(v.size());
  return s;
}

void put_word(plcsim::Plc& plc, std::uint16_t value) {
  plc.write(channel::Area::data_block, 1, 0,
            channel::Bytes{std::uint8_t(value >> 8), std::uint8_t(value)});
}

bool good_with(const tags::TagServer& server, const std::string& name, std::int64_t v) {
  auto s = server.read(name);
  return s && s->quality == tags::Quality::good && s->value == tags::Value(v);
}

// The two switching figures, in one mode, over `rounds` switches each way.
void switching(channel::SecurityMode mode, int rounds) {
  test::TestStore ts;
  test::EventLoop loop;
  test::TrustedPlc plc1(ts, mode, {}, "plc1"), plc2(ts, mode, {}, "plc2");
  put_word(plc1.plc(), 1111);
  put_word(plc2.plc(), 2222);
  tags::TagServer server(loop.executor(), ts.store());
  tags::ConnectionSetup setup;
  setup.config = plc1.connection_config();
  setup.config.retry_min = 50ms;
  setup.alternative_address = "IPAddress=127.0.0.1;Port=" + std::to_string(plc2.plc().port());
  if (auto why = server.add_connection(setup))
    std::exit((std::fprintf(stderr, "%s\n", why->c_str()), 1));
  tags::TagConfig speed;
  speed.name = "Speed";
  speed.type = {tags::DataType::Word};
  speed.connection = "PLC1";
  speed.address = std::get<tags::Address>(tags::Address::parse("DB1.DBW0"));
  speed.cycle = 100ms;
  server.add_tag(speed);
  Arrivals arrivals(server, "Speed");
  server.start();
  if (!eventually([&] { return good_with(server, "Speed", 1111); })) {
    std::fprintf(stderr, "FAIL: no value from PLC1\n");
    std::exit(1);
  }
  std::vector<double> sequence_gaps, hot_gaps, hot_durations;
  std::int64_t target = 2222;
  for (int i = 0; i < rounds; ++i) {
    // Three writes.
    const std::int64_t use = target == 2222 ? 1 : 0;
    const auto begin = Clock::now();
    check(write(server, "@PLC1@ForceConnectionState", std::int64_t(0)), "Force 0");
    check(write(server, "@PLC1@UseAlternativeAddress", use), "Use");
    check(write(server, "@PLC1@ForceConnectionState", std::int64_t(1)), "Force 1");
    if (!eventually([&] { return good_with(server, "Speed", target); })) {
      std::fprintf(stderr, "FAIL: the sequence did not reach %lld\n", (long long)target);
      std::exit(1);
    }
    const auto before = arrivals.last_good_before(begin);
    for (const auto& a : arrivals.since(begin)) {
      if (a.quality == tags::Quality::good && a.value == tags::Value(target)) {
        sequence_gaps.push_back(ms(a.at - before->at));
        break;
      }
    }
    target = target == 2222 ? 1111 : 2222;
    std::this_thread::sleep_for(300ms);

    // Make-before-break: the largest interval between fresh values around the switch.
    const auto hot = Clock::now();
    check(write(server, "@PLC1@UseAlternativeAddress", std::int64_t(target == 2222 ? 1 : 0)),
          "Use (hot)");
    if (!eventually([&] { return good_with(server, "Speed", target); })) {
      std::fprintf(stderr, "FAIL: the hot switch did not reach %lld\n", (long long)target);
      std::exit(1);
    }
    hot_durations.push_back(ms(Clock::now() - hot));
    std::this_thread::sleep_for(300ms);
    auto seen = arrivals.since(hot);
    auto previous = arrivals.last_good_before(hot);
    double worst = 0;
    for (const auto& a : seen) {
      if (a.quality != tags::Quality::good) {
        std::fprintf(stderr, "FAIL: a %s value during make-before-break\n",
                     tags::quality_name(a.quality));
        std::exit(1);
      }
      worst = std::max(worst, ms(a.at - previous->at));
      previous = a;
    }
    hot_gaps.push_back(worst);
    target = target == 2222 ? 1111 : 2222;
  }
  const Stats seq = stats_of(sequence_gaps), hotg = stats_of(hot_gaps),
              hotd = stats_of(hot_durations);
  std::printf("%-10s %-36s %8.1f %8.1f %8.1f\n", channel::security_mode_name(mode),
              "three-write sequence: gap", seq.p50, seq.max, seq.mean);
  std::printf("%-10s %-36s %8.1f %8.1f %8.1f\n", channel::security_mode_name(mode),
              "make-before-break: largest interval", hotg.p50, hotg.max, hotg.mean);
  std::printf("%-10s %-36s %8.1f %8.1f %8.1f\n", channel::security_mode_name(mode),
              "make-before-break: Use 1 -> new value", hotd.p50, hotd.max, hotd.mean);
}

// Tags per second: 1,000 Word tags spread over 50 data blocks (40 bytes apart, so the planner
// cannot merge them: 1,000 items, 79 to a request at PDU 960), cycle 10 ms (every cycle starts
// as soon as the previous one ends), measured over `seconds`.
// CPU seconds of the event loop's thread so far. It runs the connection and the tag server:
// TLS, S7 decoding, the tag records and publishing to subscribers (plcsim has its own threads).
double loop_cpu_seconds(test::EventLoop& loop) {
  std::promise<double> cpu;
  boost::asio::post(loop.executor(), [&cpu] {
    timespec t{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    cpu.set_value(double(t.tv_sec) + double(t.tv_nsec) / 1e9);
  });
  return cpu.get_future().get();
}

void throughput(std::uint16_t amq, std::chrono::milliseconds delay, double seconds) {
  test::TestStore ts;
  test::EventLoop loop;
  plcsim::PlcConfig config;
  config.max_pdu = 960;
  config.max_amq = amq;
  config.data_blocks.clear();
  for (std::uint16_t db = 1; db <= 50; ++db) config.data_blocks[db] = 1024;
  test::TrustedPlc plc(ts, channel::SecurityMode::tls, config, "plc");
  plc.plc().set_faults({.delay = delay});
  tags::TagServer server(loop.executor(), ts.store());
  tags::ConnectionSetup setup;
  setup.config = plc.connection_config();
  setup.config.amq = amq;
  setup.config.pdu_size = 960;
  server.add_connection(setup);
  for (int i = 0; i < 1000; ++i) {
    tags::TagConfig t;
    t.name = "T" + std::to_string(i);
    t.type = {tags::DataType::Word};
    t.connection = "PLC1";
    t.address = tags::Address{channel::Area::data_block, std::uint16_t(1 + i % 50),
                              tags::Address::Width::Word, std::uint32_t(i / 50 * 40)};
    t.cycle = 10ms;
    if (auto why = server.add_tag(t)) std::exit((std::fprintf(stderr, "%s\n", why->c_str()), 1));
  }
  std::atomic<std::uint64_t> published{0};  // one subscriber, as scadad has
  auto counting = server.subscribe([&published](const tags::TagUpdate&) { ++published; });
  server.start();
  if (!eventually([&] { return server.statistics("PLC1")->cycles >= 3; })) {
    std::fprintf(stderr, "FAIL: no acquisition cycle completed\n");
    std::exit(1);
  }
  const auto info = server.connection_info("PLC1");
  const auto s0 = *server.statistics("PLC1");
  const double cpu0 = loop_cpu_seconds(loop);
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  const auto s1 = *server.statistics("PLC1");
  const double cpu1 = loop_cpu_seconds(loop);
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  const double cycles = double(s1.cycles - s0.cycles);
  const double busy = std::chrono::duration<double>(s1.busy - s0.busy).count();
  const double values = double(s1.values - s0.values);
  std::printf("%5u %5u %9lld %10.0f %10.0f %10.2f %9llu %9.2f\n", unsigned(info->amq),
              unsigned(info->pdu), (long long)delay.count(), values / elapsed,
              1000.0 /* tags */ * cycles / std::max(busy, 1e-9),
              cycles > 0 ? busy * 1000 / cycles : 0.0,
              (unsigned long long)((s1.requests - s0.requests) / std::max(1.0, cycles)),
              values > 0 ? (cpu1 - cpu0) * 1e6 / values : 0.0);
  counting.disconnect();
  if (published.load() == 0) {
    std::fprintf(stderr, "FAIL: no update published\n");
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 10;
  double seconds = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      rounds = 3;
      seconds = 1;
    } else {
      std::printf("usage: tags_bench [--quick]\n");
      return a == "--help" ? 0 : 2;
    }
  }
  std::printf("Connection change, tag Speed at 10 Hz (ms; %d switches each way per row)\n", rounds);
  std::printf("%-10s %-36s %8s %8s %8s\n", "mode", "figure", "p50", "max", "mean");
  switching(channel::SecurityMode::tls, rounds);
  switching(channel::SecurityMode::s7_secure, rounds);
  std::printf(
      "(gap: last fresh value before Force 0 -> first fresh value from the other PLC;\n"
      " largest interval: between consecutive fresh values around the switch, the cycle is "
      "100)\n\n");

  std::printf("Acquisition, 1,000 Word tags (1,000 items) on one tls connection, PDU 960\n");
  std::printf("%5s %5s %9s %10s %10s %10s %9s %9s\n", "AmQ", "PDU", "delay ms", "at 10 ms",
              "capacity", "cycle ms", "requests", "cpu us/tag");
  for (std::chrono::milliseconds delay : {0ms, 2ms}) {
    for (std::uint16_t amq : {1, 2, 4, 8, 16}) throughput(amq, delay, seconds);
  }
  std::printf(
      "(tags/s: at 10 ms = values received per second with a 10 ms cycle, the shortest allowed;\n"
      " capacity = 1,000 tags / mean cycle time, first request -> last reply; delay = simulated\n"
      " CPU time per reply; requests = Read Var requests per cycle; cpu us/tag = CPU of the\n"
      " runtime's thread per fresh value: TLS, decoding, the tag record, publishing to one\n"
      " subscriber)\n");
  return 0;
}
