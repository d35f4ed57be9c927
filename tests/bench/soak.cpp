// soak_bench: a bounded soak of one scadad process under random faults (issue 9). N connections
// (default 200) to one plcsim process (--plcs N), each through its own TCP fault proxy
// (tests/support/fault_proxy.h, in this process), tags polled every 500 ms. Faults are injected at
// random from a seeded generator, on the network (proxy: delay below and above the dead-peer
// bound, drop, cut with RST or FIN, black hole, drip, a duplicated or reordered chunk) and in the
// PLC (plcsim's control socket: stall, garbage, oversize, wrong PDU reference, close, reset,
// refuse, STOP), a few connections at a time, each for a random while.
//
// Every minute one line: elapsed time, scadad's resident memory, sessions and reconnects (from
// scada_connection_sessions_total), failed attempts and ended sessions
// (scada_handshake_failures_total), poll requests that brought no values
// (scada_read_failures_total), skipped poll cycles (scada_acquisition_overruns_total), PLC
// tags not good at that moment, connections up, faults injected and active. After --minutes the
// faults stop and every connection must come back (connected, every tag good) within
// --recover-seconds; the summary follows. Exit 0 when everything recovered and scadad is still
// running, 1 when not, 2 for bad options.
//   ./build/bin/soak_bench [--connections N] [--minutes M] [--seed S] [--mode tls|s7-secure]
//                          [--concurrent K] [--recover-seconds R]
#include <CLI/CLI.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.h"
#include "child_process.h"
#include "fault_proxy.h"
#include "test_tls_files.h"

namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using scada::test::Child;
using scada::test::FaultProxy;
using namespace scada::bench;

const std::string kBin = SCADA_BIN_DIR;
constexpr int kTagsPerConnection = 5;

struct Options {
  std::size_t connections = 200;
  double minutes = 30;
  std::uint64_t seed = 0;
  bool seed_given = false;
  std::string mode = "tls";
  std::size_t concurrent = 0;  // connections faulted at once; 0: a tenth of them (at least 1)
  int recover_seconds = 180;
};

// One command line to plcsim's control socket; its answer ("ok", "error: ...").
std::string plcsim_command(const fs::path& socket, const std::string& line) {
  try {
    asio::io_context io;
    asio::local::stream_protocol::socket s(io);
    s.connect(asio::local::stream_protocol::endpoint(socket.string()));
    asio::write(s, asio::buffer(line + "\n"));
    asio::streambuf in;
    asio::read_until(s, in, '\n');
    std::istream text(&in);
    std::string answer;
    std::getline(text, answer);
    return answer;
  } catch (const std::exception& e) {
    return std::string("error: ") + e.what();
  }
}

struct Sample {
  double sessions = 0, failures = 0, failed_reads = 0, overruns = 0;
  std::size_t up = 0;
  bool answered = false;
  std::map<std::string, double> failures_by_reason, failed_reads_by_reason;
};

std::string reason_of(const std::string& line) {
  const auto at = line.find("reason=\"") + 8;
  return line.substr(at, line.find('"', at) - at);
}

Sample sample(std::uint16_t port) {
  Sample s;
  const std::string text = http_get(port, "/metrics");
  s.answered = !text.empty();
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.rfind(' ');
    if (space == std::string::npos) continue;
    const double v = std::stod(line.substr(space + 1));
    if (line.rfind("scada_connection_state{", 0) == 0) {
      if (v == 2) ++s.up;
    } else if (line.rfind("scada_connection_sessions_total{", 0) == 0) {
      s.sessions += v;
    } else if (line.rfind("scada_handshake_failures_total{", 0) == 0) {
      s.failures += v;
      s.failures_by_reason[reason_of(line)] += v;
    } else if (line.rfind("scada_read_failures_total{", 0) == 0) {
      s.failed_reads += v;
      s.failed_reads_by_reason[reason_of(line)] += v;
    } else if (line.rfind("scada_acquisition_overruns_total{", 0) == 0) {
      s.overruns += v;
    }
  }
  return s;
}

// PLC tags (not system tags) whose quality is not good; -1 when the API does not answer.
long bad_tags(std::uint16_t port) {
  const auto body = nlohmann::json::parse(http_get(port, "/api/tags"), nullptr, false);
  if (!body.is_object() || !body.contains("tags")) return -1;
  long bad = 0;
  for (const auto& t : body["tags"]) {
    const std::string name = t.value("name", "");
    if (!name.empty() && name[0] != '@' && t.value("quality", "") != "good") ++bad;
  }
  return bad;
}

// The faults, and what ends each one that lasts.
enum class Fault {
  delay_short,
  delay_long,
  drop,
  cut_rst,
  cut_fin,
  blackhole,
  drip,
  duplicate,
  reorder,
  stall,
  garbage,
  oversize,
  wrongref,
  plc_close,
  plc_reset,
  refuse,
  cpu_stop,
};
constexpr int kFaultKinds = 17;
const char* fault_name(Fault f) {
  static const char* names[kFaultKinds] = {
      "delay-300ms", "delay-2500ms", "drop",      "cut-rst", "cut-fin", "blackhole",
      "drip",        "duplicate",    "reorder",   "stall",   "garbage", "oversize",
      "wrongref",    "plc-close",    "plc-reset", "refuse",  "cpu-stop"};
  return names[int(f)];
}

struct Active {
  std::size_t connection;
  Fault fault;
  Clock::time_point until;
};

class Injector {
 public:
  Injector(std::vector<std::unique_ptr<FaultProxy>>& proxies, fs::path control, std::uint64_t seed)
      : proxies_(proxies), control_(std::move(control)), random_(seed) {}

  // Starts a random fault on a connection that has none.
  void start_one(const std::vector<bool>& busy, std::vector<Active>& active) {
    std::vector<std::size_t> free;
    for (std::size_t i = 0; i < busy.size(); ++i) {
      if (!busy[i]) free.push_back(i);
    }
    if (free.empty()) return;
    const std::size_t c =
        free[std::uniform_int_distribution<std::size_t>(0, free.size() - 1)(random_)];
    const auto f = Fault(std::uniform_int_distribution<int>(0, kFaultKinds - 1)(random_));
    const auto lasts =
        std::chrono::milliseconds(std::uniform_int_distribution<int>(1000, 12000)(random_));
    FaultProxy& p = *proxies_[c];
    const std::string plc = "PLC" + std::to_string(c + 1);
    std::string answer = "ok";
    switch (f) {
      case Fault::delay_short:
        p.delay(300ms);
        break;
      case Fault::delay_long:
        p.delay(2500ms);
        break;
      case Fault::drop:
        p.drop();
        break;
      case Fault::cut_rst:
        p.cut(scada::test::Cut::rst);
        break;
      case Fault::cut_fin:
        p.cut(scada::test::Cut::fin);
        break;
      case Fault::blackhole:
        p.blackhole();
        break;
      case Fault::drip:
        p.drip(2ms);
        break;
      case Fault::duplicate:
        p.duplicate(1);
        break;
      case Fault::reorder:
        p.reorder(1);
        break;
      case Fault::stall:
        answer = plcsim_command(control_, plc + " stall on");
        break;
      case Fault::garbage:
        answer = plcsim_command(control_, plc + " garbage");
        break;
      case Fault::oversize:
        answer = plcsim_command(control_, plc + " oversize");
        break;
      case Fault::wrongref:
        answer = plcsim_command(control_, plc + " wrongref on");
        break;
      case Fault::plc_close:
        answer = plcsim_command(control_, plc + " close");
        break;
      case Fault::plc_reset:
        answer = plcsim_command(control_, plc + " reset");
        break;
      case Fault::refuse:
        answer = plcsim_command(control_, plc + " refuse on");
        if (answer == "ok") answer = plcsim_command(control_, plc + " reset");
        break;
      case Fault::cpu_stop:
        answer = plcsim_command(control_, plc + " stop");
        break;
    }
    if (answer != "ok") ++command_errors;
    ++injected;
    ++by_kind[fault_name(f)];
    active.push_back({c, f, Clock::now() + lasts});
  }

  // Ends a fault: the proxy passes again, plcsim's switch goes off.
  void end(const Active& a) {
    proxies_[a.connection]->pass();
    const std::string plc = "PLC" + std::to_string(a.connection + 1);
    std::string answer = "ok";
    switch (a.fault) {
      case Fault::stall:
        answer = plcsim_command(control_, plc + " stall off");
        break;
      case Fault::wrongref:
        answer = plcsim_command(control_, plc + " wrongref off");
        break;
      case Fault::refuse:
        answer = plcsim_command(control_, plc + " refuse off");
        break;
      case Fault::cpu_stop:
        answer = plcsim_command(control_, plc + " run");
        break;
      default:
        break;
    }
    if (answer != "ok") ++command_errors;
  }

  std::uint64_t injected = 0, command_errors = 0;
  std::map<std::string, std::uint64_t> by_kind;

 private:
  std::vector<std::unique_ptr<FaultProxy>>& proxies_;
  fs::path control_;
  std::mt19937_64 random_;
};

std::string minutes_text(Clock::duration d) {
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  char text[32];
  std::snprintf(text, sizeof text, "%3lld:%02lld", static_cast<long long>(s / 60),
                static_cast<long long>(s % 60));
  return text;
}

// An event loop thread for the proxies, stopped and joined however run() returns.
struct ProxyLoop {
  ProxyLoop() : work(asio::make_work_guard(io)), thread([this] { io.run(); }) {}
  ~ProxyLoop() {
    work.reset();
    io.stop();
    thread.join();
  }
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work;
  std::thread thread;
};

int run(const Options& o) {
  scada::test::TempDir dir;
  scada::test::ServerTlsFiles files(dir, "plc");
  const fs::path control = dir.path() / "plcsim.sock";

  // plcsim on consecutive ports: a range nobody listens on.
  PlcRange sim =
      start_plcsim(kBin, o.connections, o.mode, files, 31000, {"--control", control.string()});
  if (!sim.plcsim) {
    std::cerr << "soak_bench: plcsim did not start\n";
    return 1;
  }
  const std::uint16_t base = sim.base;
  Child* plcsim = sim.plcsim.get();

  // The proxies, on one event loop thread of this process (declared first, so it outlives them).
  ProxyLoop loop;
  std::vector<std::unique_ptr<FaultProxy>> proxies;
  for (std::size_t i = 0; i < o.connections; ++i) {
    proxies.push_back(std::make_unique<FaultProxy>("127.0.0.1", std::uint16_t(base + i),
                                                   std::uint16_t(0), &loop.io));
  }

  // The project: N connections through the proxies, a DInt counter and Word tags at 500 ms.
  std::string symbols =
      R"(<Symbol name="Counter" address="DB100.DBD0" type="DInt" cycle="500ms"/>)";
  for (int t = 1; t < kTagsPerConnection; ++t) {
    symbols += "<Symbol name=\"T" + std::to_string(t) + "\" address=\"DB1.DBW" +
               std::to_string(2 * t) + "\" type=\"Word\" cycle=\"500ms\"/>";
  }
  std::vector<BenchPlc> plcs;
  for (std::size_t i = 0; i < o.connections; ++i) {
    plcs.push_back({"PLC" + std::to_string(i + 1), proxies[i]->port(), o.mode, symbols});
  }
  const fs::path project_dir = dir.path() / "project";
  if (const auto problem =
          make_project(project_dir, "soak_bench", files.ca.certificate_pem(), plcs);
      !problem.empty()) {
    std::cerr << "soak_bench: " << problem << "\n";
    return 1;
  }

  Child scadad(kBin + "/scadad", {"--project", project_dir.string(), "--api", "127.0.0.1:0"});
  const auto port = api_port(scadad);
  if (port == 0) {
    std::cerr << "soak_bench: scadad did not start:\n" << scadad.output();
    return 1;
  }
  const auto start = Clock::now();
  Sample s;
  while (Clock::now() - start < 180s) {
    s = sample(port);
    if (s.up == o.connections) break;
    std::this_thread::sleep_for(200ms);
  }
  if (s.up != o.connections) {
    std::cerr << "soak_bench: only " << s.up << " of " << o.connections
              << " connections came up within 180 s\n";
    return 1;
  }
  std::this_thread::sleep_for(3s);  // past the first cycles
  const Sample first = sample(port);
  const long rss_start = rss_kib(scadad.pid());
  std::printf(
      "soak_bench: %zu connections (%s) through fault proxies, %d tags each at 500 ms, "
      "%g min of faults, seed %llu (--seed %llu repeats the fault sequence)\n",
      o.connections, o.mode.c_str(), kTagsPerConnection, o.minutes,
      static_cast<unsigned long long>(o.seed), static_cast<unsigned long long>(o.seed));
  std::printf("all up after %.1f s; scadad VmRSS %.1f MiB\n",
              std::chrono::duration<double>(Clock::now() - start).count(), rss_start / 1024.0);
  std::printf("%7s %9s %9s %10s %9s %12s %9s %8s %9s %8s %7s\n", "time", "rss MiB", "sessions",
              "reconnects", "failures", "failed reads", "overruns", "bad tags", "up", "faults",
              "active");
  std::fflush(stdout);

  const std::size_t concurrent =
      o.concurrent != 0 ? o.concurrent : std::max<std::size_t>(1, o.connections / 10);
  Injector injector(proxies, control, o.seed);
  std::vector<Active> active;
  std::vector<bool> busy(o.connections, false);
  const auto soak_start = Clock::now();
  const auto soak_end = soak_start + std::chrono::milliseconds(long(o.minutes * 60000));
  auto next_report = soak_start + 60s;
  std::mt19937_64 pace(o.seed ^ 0x5eed);
  bool died = false;
  auto report = [&](Clock::time_point now, const char* note = "") {
    const Sample m = sample(port);
    std::printf("%7s %9.1f %9.0f %10.0f %9.0f %12.0f %9.0f %8ld %4zu/%-4zu %8llu %7zu%s\n",
                minutes_text(now - soak_start).c_str(), rss_kib(scadad.pid()) / 1024.0, m.sessions,
                m.sessions - first.sessions, m.failures - first.failures,
                m.failed_reads - first.failed_reads, m.overruns - first.overruns, bad_tags(port),
                m.up, o.connections, static_cast<unsigned long long>(injector.injected),
                active.size(), note);
    std::fflush(stdout);
  };
  while (Clock::now() < soak_end) {
    const auto now = Clock::now();
    for (auto it = active.begin(); it != active.end();) {
      if (it->until <= now) {
        injector.end(*it);
        busy[it->connection] = false;
        it = active.erase(it);
      } else {
        ++it;
      }
    }
    if (active.size() < concurrent) {
      injector.start_one(busy, active);
      if (!active.empty()) busy[active.back().connection] = true;
    }
    if (now >= next_report) {
      report(now);
      next_report += 60s;
    }
    if (!alive(scadad.pid())) {
      died = true;
      break;
    }
    // The next fault in 100..600 ms: with 10 % of the connections at once and faults of 1..12 s,
    // each connection sees a fault every minute or so.
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(100, 600)(pace)));
  }

  if (!died && Clock::now() >= next_report) report(Clock::now());

  // The faults stop; everything must come back.
  for (const auto& a : active) injector.end(a);
  active.clear();
  const auto faults_ended = Clock::now();
  bool recovered = false;
  long bad = -1;
  Sample last;
  while (!died && Clock::now() - faults_ended < std::chrono::seconds(o.recover_seconds)) {
    last = sample(port);
    bad = last.up == o.connections ? bad_tags(port) : -1;
    if (last.up == o.connections && bad == 0) {
      recovered = true;
      break;
    }
    if (!alive(scadad.pid())) died = true;
    std::this_thread::sleep_for(500ms);
  }
  const double recovery_s = std::chrono::duration<double>(Clock::now() - faults_ended).count();
  if (!died) report(Clock::now(), "  (faults stopped)");
  died = died || !alive(scadad.pid());
  const long rss_end = died ? -1 : rss_kib(scadad.pid());

  std::printf("summary: %.1f min of faults, %llu injected (", o.minutes,
              static_cast<unsigned long long>(injector.injected));
  bool comma = false;
  for (const auto& [kind, n] : injector.by_kind) {
    std::printf("%s%s %llu", comma ? ", " : "", kind.c_str(), static_cast<unsigned long long>(n));
    comma = true;
  }
  std::printf(")%s\n", injector.command_errors ? "; some plcsim commands failed" : "");
  if (!died) {
    // "reason n, reason n" of what a by-reason counter gained during the soak.
    const auto by_reason = [](const std::map<std::string, double>& before,
                              const std::map<std::string, double>& after) {
      std::string text;
      for (const auto& [reason, n] : after) {
        const auto it = before.find(reason);
        const double gained = n - (it == before.end() ? 0 : it->second);
        if (gained == 0) continue;
        if (!text.empty()) text += ", ";
        text += reason + " " + std::to_string(static_cast<long long>(gained));
      }
      return text;
    };
    std::printf(
        "summary: reconnects %.0f, failures %.0f (%s), failed reads %.0f (%s), "
        "overruns %.0f\n",
        last.sessions - first.sessions, last.failures - first.failures,
        by_reason(first.failures_by_reason, last.failures_by_reason).c_str(),
        last.failed_reads - first.failed_reads,
        by_reason(first.failed_reads_by_reason, last.failed_reads_by_reason).c_str(),
        last.overruns - first.overruns);
    std::printf("summary: scadad VmRSS %.1f MiB at the start, %.1f MiB at the end (%+.1f MiB)\n",
                rss_start / 1024.0, rss_end / 1024.0, (rss_end - rss_start) / 1024.0);
  }
  if (died) {
    std::printf("summary: FAIL scadad is not running any more\n%s\n", scadad.output().c_str());
  } else if (!recovered) {
    std::printf(
        "summary: FAIL after the faults stopped, %zu of %zu connections up and %ld tags not good "
        "after %d s\n",
        last.up, o.connections, bad, o.recover_seconds);
  } else {
    std::printf(
        "summary: OK all %zu connections up with every tag good %.1f s after the faults "
        "stopped; scadad running\n",
        o.connections, recovery_s);
  }
  std::fflush(stdout);

  const bool ok = !died && recovered && alive(plcsim->pid());
  if (!died) scadad.finish(SIGTERM, 30s);
  proxies.clear();
  plcsim->finish(SIGTERM, 30s);
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"soak_bench - one scadad under random network and PLC faults, bounded in time"};
  app.add_option("--connections", o.connections, "connections (one plcsim PLC and proxy each)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--minutes", o.minutes, "minutes of faults, then the recovery check")
      ->check(CLI::Range(0.1, 1440.0))
      ->capture_default_str();
  auto* seed = app.add_option("--seed", o.seed, "seed of the fault sequence (default: random)");
  app.add_option("--mode", o.mode, "security mode")
      ->check(CLI::IsMember({"tls", "s7-secure"}))
      ->capture_default_str();
  app.add_option("--concurrent", o.concurrent,
                 "connections faulted at once (default: a tenth of them)");
  app.add_option("--recover-seconds", o.recover_seconds,
                 "bound for every connection to come back after the faults stop")
      ->check(CLI::Range(10, 3600))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (seed->count() == 0) o.seed = std::random_device{}();
  return run(o);
}
