// What the process-level benchmarks (scale_bench, soak_bench) share: scadad's API over HTTP,
// /proc figures of a child process, plcsim on a range of consecutive ports, and a project of
// many PLCs written through the importer.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "child_process.h"
#include "test_tls_files.h"

namespace scada::bench {

// One HTTP GET of scadad's API on 127.0.0.1:port, bounded by a 30 s socket timeout; the body,
// or "" when it does not answer.
std::string http_get(std::uint16_t port, const std::string& target);

// The API port scadad logged ("api: listening on 127.0.0.1:PORT"); 0 when none within wait.
std::uint16_t api_port(const test::Child& scadad,
                       std::chrono::seconds wait = std::chrono::seconds(30));

// From /proc: CPU seconds used (user + system), resident memory in KiB (-1 when gone), and
// whether the process runs (exists and is not a zombie).
double cpu_seconds(pid_t pid);
long rss_kib(pid_t pid);
bool alive(pid_t pid);

// One plcsim process serving `count` PLCs on consecutive ports (--plcs), with the certificate
// and key of files, searching upwards from first_port in steps of 1500 for a free range. Extra
// arguments are appended (e.g. --control SOCKET). plcsim is null when no range worked.
struct PlcRange {
  std::unique_ptr<test::Child> plcsim;
  std::uint16_t base = 0;  // the first PLC's port
};
PlcRange start_plcsim(const std::string& bin_dir, std::size_t count, const std::string& mode,
                      const test::ServerTlsFiles& files, std::uint16_t first_port,
                      const std::vector<std::string>& extra = {});

// A PLC of a benchmark project: its connection and its <Symbol .../> elements.
struct BenchPlc {
  std::string name;
  std::uint16_t port = 0;
  std::string mode;
  std::string symbols;
};

// Initialises a project in dir and imports the PLCs through the importer, as one bundle whose
// first PLC carries the CA (ca_pem). The bundle limit on PLCs is raised to their number, so a
// benchmark can hold more than the 1,000 of one engineering export. Returns "" or the first
// problem in words.
std::string make_project(const std::filesystem::path& dir, const std::string& tool,
                         const std::string& ca_pem, const std::vector<BenchPlc>& plcs);

}  // namespace scada::bench
