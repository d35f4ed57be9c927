// scale_bench: one scadad process with 1,000 connections to 1,000 simulated PLCs (one plcsim
// process, --plcs 1000), each with 20 tags polled every second, in mode tls, then s7-secure, then
// both at once (1,000 tls and 1,000 s7-secure connections in the same scadad, two plcsims).
// Prints per mode: time to bring all connections up from a cold start (handshakes per second),
// scadad's steady-state CPU (share of one core), resident memory and memory per connection
// (against an idle scadad with an empty project), and how late poll cycles began (p50/p99 from
// scadad's own histogram, scada_cycle_lateness_seconds). See README.md.
//   ./build/bin/scale_bench [--connections N] [--seconds S] [--modes tls,s7-secure,both]
// Every wait is bounded; a run that does not come up prints why and exits 1.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.h"
#include "child_process.h"
#include "importer/importer.h"
#include "test_tls_files.h"

namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using scada::test::Child;
using namespace scada::bench;

const std::string kBin = SCADA_BIN_DIR;

struct Metrics {
  std::size_t connected = 0;
  std::map<double, double> lateness;  // le -> cumulative count, summed over connections
  double lateness_count = 0;
};
Metrics metrics(std::uint16_t port) {
  Metrics m;
  std::istringstream in(http_get(port, "/metrics"));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("scada_connection_state{", 0) == 0 && line.back() == '2' &&
        line[line.size() - 2] == ' ') {
      ++m.connected;
    } else if (line.rfind("scada_cycle_lateness_seconds_bucket{", 0) == 0) {
      const auto le = line.find("le=\"") + 4;
      const std::string bound = line.substr(le, line.find('"', le) - le);
      if (bound == "+Inf") continue;
      m.lateness[std::stod(bound)] += std::stod(line.substr(line.rfind(' ') + 1));
    } else if (line.rfind("scada_cycle_lateness_seconds_count{", 0) == 0) {
      m.lateness_count += std::stod(line.substr(line.rfind(' ') + 1));
    }
  }
  return m;
}

// The bucket bound below which fraction q of the cycles between two scrapes began ("<= X ms").
std::string quantile(const Metrics& a, const Metrics& b, double q) {
  const double total = b.lateness_count - a.lateness_count;
  if (total <= 0) return "-";
  for (const auto& [bound, cumulative] : b.lateness) {
    const double before = a.lateness.count(bound) ? a.lateness.at(bound) : 0;
    if (cumulative - before >= q * total) {
      char text[32];
      std::snprintf(text, sizeof text, "<= %g ms", bound * 1000);
      return text;
    }
  }
  return "> 2000 ms";
}

struct Options {
  std::size_t connections = 1000;
  int seconds = 20;
  std::vector<std::string> modes{"tls", "s7-secure", "both"};
};

// One row: N connections in `mode`, or with mode "both" N tls and N s7-secure connections (two
// plcsim processes) in the same scadad.
int run(const Options& o, const std::string& mode, long idle_rss) {
  scada::test::TempDir dir;
  scada::test::ServerTlsFiles files(dir, "plc");
  const std::vector<std::string> modes = mode == "both"
                                             ? std::vector<std::string>{"tls", "s7-secure"}
                                             : std::vector<std::string>{mode};
  std::vector<PlcRange> sims;
  std::vector<BenchPlc> plcs;
  std::ostringstream symbols;  // 20 Word tags at 1 s
  for (int t = 0; t < 20; ++t) {
    symbols << "<Symbol name=\"T" << t << "\" address=\"DB1.DBW" << 2 * t
            << "\" type=\"Word\" cycle=\"1s\"/>";
  }
  for (const std::string& m : modes) {
    // Consecutive ports for the PLCs, each plcsim in its own range.
    sims.push_back(start_plcsim(kBin, o.connections, m, files,
                                std::uint16_t(sims.empty() ? 42000 : sims.back().base + 1500)));
    if (!sims.back().plcsim) {
      std::cerr << "scale_bench: plcsim (" << m << ") did not start\n";
      return 1;
    }
    for (std::size_t i = 0; i < o.connections; ++i) {
      char name[48];
      std::snprintf(name, sizeof name, "PLC%s%04zu", m == "s7-secure" ? "S" : "", i + 1);
      plcs.push_back({name, std::uint16_t(sims.back().base + i), m, symbols.str()});
    }
  }
  const std::size_t total = plcs.size();
  const fs::path project_dir = dir.path() / "project";
  if (const auto problem =
          make_project(project_dir, "scale_bench", files.ca.certificate_pem(), plcs);
      !problem.empty()) {
    std::cerr << "scale_bench: " << problem << "\n";
    return 1;
  }

  const auto start = Clock::now();
  Child scadad(kBin + "/scadad", {"--project", project_dir.string(), "--api", "127.0.0.1:0"});
  const auto port = api_port(scadad);
  if (port == 0) {
    std::cerr << "scale_bench: scadad did not start:\n" << scadad.output();
    return 1;
  }
  Metrics m;
  while (Clock::now() - start < 120s) {
    m = metrics(port);
    if (m.connected == total) break;
    std::this_thread::sleep_for(50ms);
  }
  const double up_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (m.connected != total) {
    std::cerr << "scale_bench: only " << m.connected << " of " << total
              << " connections came up within 120 s\n";
    return 1;
  }
  std::this_thread::sleep_for(5s);  // past the first cycles
  const Metrics a = metrics(port);
  const double cpu_a = cpu_seconds(scadad.pid());
  const auto t_a = Clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(o.seconds));
  const Metrics b = metrics(port);
  const double cpu_b = cpu_seconds(scadad.pid());
  const double window = std::chrono::duration<double>(Clock::now() - t_a).count();
  const long rss = rss_kib(scadad.pid());

  std::printf("%-10s %6zu %9.1f %9.0f %9.1f %9.1f %10.1f %12s %12s %10.0f\n", mode.c_str(), total,
              up_seconds, double(total) / up_seconds, 100.0 * (cpu_b - cpu_a) / window,
              double(rss) / 1024.0, double(rss - idle_rss) / double(total),
              quantile(a, b, 0.5).c_str(), quantile(a, b, 0.99).c_str(),
              (b.lateness_count - a.lateness_count) / window);
  scadad.finish(SIGTERM, 30s);
  for (auto& sim : sims) sim.plcsim->finish(SIGTERM, 30s);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--connections" && i + 1 < argc) {
      o.connections = std::stoul(argv[++i]);
    } else if (arg == "--seconds" && i + 1 < argc) {
      o.seconds = std::stoi(argv[++i]);
    } else if (arg == "--modes" && i + 1 < argc) {
      o.modes.clear();
      std::istringstream in(argv[++i]);
      for (std::string m; std::getline(in, m, ',');) o.modes.push_back(m);
    } else {
      std::cerr << "usage: scale_bench [--connections N (1..1000)] [--seconds S] "
                   "[--modes tls,s7-secure,both,none]\n";
      return 2;
    }
  }
  for (const auto& mode : o.modes) {
    if (mode != "tls" && mode != "s7-secure" && mode != "both" && mode != "none") {
      std::cerr << "scale_bench: unknown mode '" << mode << "' (tls, s7-secure, both, none)\n";
      return 2;
    }
  }
  if (o.connections < 1 || o.connections > 1000 || o.seconds < 1 || o.seconds > 600) {
    std::cerr << "scale_bench: --connections 1..1000, --seconds 1..600\n";
    return 2;
  }
  // An idle scadad (empty project) as the memory baseline.
  long idle_rss = 0;
  {
    scada::test::TempDir dir;
    scada::importer::Project::init(dir.path() / "p");
    Child idle(kBin + "/scadad",
               {"--project", (dir.path() / "p").string(), "--api", "127.0.0.1:0"});
    if (api_port(idle) == 0) {
      std::cerr << "scale_bench: scadad did not start:\n" << idle.output();
      return 1;
    }
    std::this_thread::sleep_for(1s);
    idle_rss = rss_kib(idle.pid());
    idle.finish(SIGTERM, 10s);
  }
  std::printf(
      "scale_bench: one scadad, N connections x 20 Word tags at 1 s, one plcsim process "
      "(--plcs N) per mode on loopback (both: N tls + N s7-secure in one scadad); steady state "
      "over %d s; idle scadad %.1f MiB\n",
      o.seconds, double(idle_rss) / 1024.0);
  std::printf("%-10s %6s %9s %9s %9s %9s %10s %12s %12s %10s\n", "mode", "conns", "up s", "hs/s",
              "cpu %", "rss MiB", "KiB/conn", "late p50", "late p99", "cycles/s");
  int status = 0;
  for (const std::string& mode : o.modes) status |= run(o, mode, idle_rss);
  return status;
}
