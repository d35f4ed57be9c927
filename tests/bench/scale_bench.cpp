// scale_bench: one scadad process with 1,000 connections to 1,000 simulated PLCs (one plcsim
// process, --plcs 1000), each with 20 tags polled every second, in mode tls and then s7-secure.
// Prints per mode: time to bring all connections up from a cold start (handshakes per second),
// scadad's steady-state CPU (share of one core), resident memory and memory per connection
// (against an idle scadad with an empty project), and how late poll cycles began (p50/p99 from
// scadad's own histogram, scada_cycle_lateness_seconds). See README.md.
//   ./build/bin/scale_bench [--connections N] [--seconds S] [--modes tls,s7-secure]
// Every wait is bounded; a run that does not come up prints why and exits 1.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "child_process.h"
#include "importer/importer.h"
#include "test_tls_files.h"

namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using scada::test::Child;

const std::string kBin = SCADA_BIN_DIR;

std::string get(std::uint16_t port, const std::string& target) {
  namespace http = boost::beast::http;
  boost::asio::io_context io;
  boost::beast::tcp_stream stream(io);
  stream.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
  http::request<http::empty_body> request(http::verb::get, target, 11);
  request.set(http::field::host, "127.0.0.1");
  http::write(stream, request);
  boost::beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 << 20);
  http::read(stream, buffer, parser);
  return parser.get().body();
}

std::uint16_t api_port(const Child& scadad) {
  if (!scadad.wait_for_output("api: listening on 127.0.0.1:", 30s)) return 0;
  const std::string out = scadad.output();
  const auto at = out.find("api: listening on 127.0.0.1:") + 28;
  return static_cast<std::uint16_t>(std::stoi(out.substr(at)));
}

// From /proc: CPU seconds (user + system) and resident memory in KiB.
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string f;
  std::vector<std::string> v;
  while (fields >> f) v.push_back(f);
  // Fields after the command: state is field 3; utime 14, stime 15 -> indexes 11, 12.
  return (std::stod(v.at(11)) + std::stod(v.at(12))) / double(sysconf(_SC_CLK_TCK));
}
long rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

struct Metrics {
  std::size_t connected = 0;
  std::map<double, double> lateness;  // le -> cumulative count, summed over connections
  double lateness_count = 0;
};
Metrics metrics(std::uint16_t port) {
  Metrics m;
  std::istringstream in(get(port, "/metrics"));
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
  std::vector<std::string> modes{"tls", "s7-secure"};
};

int run(const Options& o, const std::string& mode, long idle_rss) {
  scada::test::TempDir dir;
  scada::test::ServerTlsFiles files(dir, "plc");
  ::chmod(files.key_file.c_str(), 0600);
  // Consecutive ports for the PLCs: a range nobody listens on.
  std::uint16_t base = 0;
  std::unique_ptr<Child> plcsim;
  for (std::uint16_t candidate = 42000; candidate < 60000 && !plcsim; candidate += 1500) {
    plcsim = std::make_unique<Child>(
        kBin + "/plcsim",
        std::vector<std::string>{"--listen", "127.0.0.1:" + std::to_string(candidate), "--plcs",
                                 std::to_string(o.connections), "--mode", mode, "--cert",
                                 files.certificate_file.string(), "--key", files.key_file.string(),
                                 "--name", "PLC"});
    if (plcsim->wait_for_output("plcsim ready", 60s)) {
      base = candidate;
    } else {
      plcsim.reset();
    }
  }
  if (!plcsim) {
    std::cerr << "scale_bench: plcsim did not start\n";
    return 1;
  }

  // The project: N connections of 20 Word tags each at 1 s; the first PLC carries the CA.
  std::ostringstream xml;
  xml << "<ScadaExport formatVersion=\"1\" tool=\"scale_bench\" project=\"scale\" "
         "exportedAt=\"2026-11-22T00:00:00Z\">\n";
  for (std::size_t i = 0; i < o.connections; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "PLC%04zu", i + 1);
    xml << "<Plc name=\"" << name << "\"><Connection address=\"127.0.0.1\" port=\"" << base + i
        << "\" security=\"" << mode << "\"/>";
    if (i == 0) {
      xml << "<Certificates><Certificate role=\"ca\" encoding=\"pem\">"
          << files.ca.certificate_pem() << "</Certificate></Certificates>";
    }
    xml << "<Symbols>";
    for (int t = 0; t < 20; ++t) {
      xml << "<Symbol name=\"T" << t << "\" address=\"DB1.DBW" << 2 * t
          << "\" type=\"Word\" cycle=\"1s\"/>";
    }
    xml << "</Symbols></Plc>\n";
  }
  xml << "</ScadaExport>\n";
  auto bundle = scada::importer::parse_bundle(xml.str(), std::nullopt);
  if (!bundle.ok()) {
    std::cerr << "scale_bench: bundle: " << bundle.problems.front().to_string() << "\n";
    return 1;
  }
  const fs::path project_dir = dir.path() / "project";
  {
    scada::importer::Project::init(project_dir);
    auto project = scada::importer::Project::open(project_dir);
    scada::importer::apply_import(project, *bundle.bundle,
                                  scada::importer::plan_import(*bundle.bundle, project));
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
    if (m.connected == o.connections) break;
    std::this_thread::sleep_for(50ms);
  }
  const double up_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (m.connected != o.connections) {
    std::cerr << "scale_bench: only " << m.connected << " of " << o.connections
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

  std::printf("%-10s %6zu %9.1f %9.0f %9.1f %9.1f %10.1f %12s %12s %10.0f\n", mode.c_str(),
              o.connections, up_seconds, double(o.connections) / up_seconds,
              100.0 * (cpu_b - cpu_a) / window, double(rss) / 1024.0,
              double(rss - idle_rss) / double(o.connections), quantile(a, b, 0.5).c_str(),
              quantile(a, b, 0.99).c_str(), (b.lateness_count - a.lateness_count) / window);
  scadad.finish(SIGTERM, 30s);
  plcsim->finish(SIGTERM, 30s);
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
                   "[--modes tls,s7-secure,none]\n";
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
      "(--plcs N) on loopback; steady state over %d s; idle scadad %.1f MiB\n",
      o.seconds, double(idle_rss) / 1024.0);
  std::printf("%-10s %6s %9s %9s %9s %9s %10s %12s %12s %10s\n", "mode", "conns", "up s", "hs/s",
              "cpu %", "rss MiB", "KiB/conn", "late p50", "late p99", "cycles/s");
  int status = 0;
  for (const std::string& mode : o.modes) status |= run(o, mode, idle_rss);
  return status;
}
