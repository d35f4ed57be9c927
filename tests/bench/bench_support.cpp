#include "bench_support.h"

#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <sstream>

#include "importer/importer.h"

namespace scada::bench {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string http_get(std::uint16_t port, const std::string& target) {
  namespace http = boost::beast::http;
  try {
    boost::asio::io_context io;
    boost::beast::tcp_stream stream(io);
    stream.expires_after(30s);
    stream.connect(
        boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
    http::request<http::empty_body> request(http::verb::get, target, 11);
    request.set(http::field::host, "127.0.0.1");
    http::write(stream, request);
    boost::beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(256 << 20);
    http::read(stream, buffer, parser);
    return parser.get().body();
  } catch (const std::exception&) {
    return "";
  }
}

std::uint16_t api_port(const test::Child& scadad, std::chrono::seconds wait) {
  const std::string marker = "api: listening on 127.0.0.1:";
  if (!scadad.wait_for_output(marker, wait)) return 0;
  const std::string out = scadad.output();
  return static_cast<std::uint16_t>(std::stoi(out.substr(out.find(marker) + marker.size())));
}

namespace {
// The fields of /proc/PID/stat after the command's closing parenthesis (state first).
std::vector<std::string> stat_fields(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  std::vector<std::string> fields;
  const auto paren = text.rfind(')');
  if (paren == std::string::npos) return fields;
  std::istringstream rest(text.substr(paren + 1));
  for (std::string f; rest >> f;) fields.push_back(f);
  return fields;
}
}  // namespace

double cpu_seconds(pid_t pid) {
  // utime and stime are fields 14 and 15 of stat; the state (field 3) is index 0 here.
  const auto f = stat_fields(pid);
  if (f.size() < 13) return 0;
  return (std::stod(f[11]) + std::stod(f[12])) / double(sysconf(_SC_CLK_TCK));
}

long rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

bool alive(pid_t pid) {
  const auto f = stat_fields(pid);
  return !f.empty() && f[0] != "Z";
}

PlcRange start_plcsim(const std::string& bin_dir, std::size_t count, const std::string& mode,
                      const test::ServerTlsFiles& files, std::uint16_t first_port,
                      const std::vector<std::string>& extra) {
  PlcRange range;
  ::chmod(files.key_file.c_str(), 0600);  // a private key is for its owner only
  for (unsigned candidate = first_port; candidate + count < 61000 && !range.plcsim;
       candidate += 1500) {
    std::vector<std::string> args{"--listen", "127.0.0.1:" + std::to_string(candidate),
                                  "--plcs",   std::to_string(count),
                                  "--mode",   mode,
                                  "--cert",   files.certificate_file.string(),
                                  "--key",    files.key_file.string(),
                                  "--name",   "PLC"};
    args.insert(args.end(), extra.begin(), extra.end());
    range.plcsim = std::make_unique<test::Child>(bin_dir + "/plcsim", args);
    // Ready, or gone (a port of the range in use): bounded either way.
    const auto until = Clock::now() + 60s;
    while (Clock::now() < until && alive(range.plcsim->pid()) &&
           !range.plcsim->wait_for_output("plcsim ready", 100ms)) {
    }
    if (range.plcsim->output().find("plcsim ready") != std::string::npos) {
      range.base = static_cast<std::uint16_t>(candidate);
    } else {
      range.plcsim.reset();
    }
  }
  return range;
}

std::string make_project(const std::filesystem::path& dir, const std::string& tool,
                         const std::string& ca_pem, const std::vector<BenchPlc>& plcs) {
  std::ostringstream xml;
  xml << "<ScadaExport formatVersion=\"1\" tool=\"" << tool << "\" project=\"" << tool
      << "\" exportedAt=\"2026-11-22T00:00:00Z\">\n";
  for (std::size_t i = 0; i < plcs.size(); ++i) {
    xml << "<Plc name=\"" << plcs[i].name << "\" firmware=\"V2.9.4\">"
        << "<Connection address=\"127.0.0.1\" port=\"" << plcs[i].port << "\" security=\""
        << plcs[i].mode << "\"/>";
    if (i == 0) {
      xml << "<Certificates><Certificate role=\"ca\" encoding=\"pem\">" << ca_pem
          << "</Certificate></Certificates>";
    }
    xml << "<Symbols>" << plcs[i].symbols << "</Symbols></Plc>\n";
  }
  xml << "</ScadaExport>\n";
  importer::BundleLimits limits;
  limits.plcs = std::max(limits.plcs, plcs.size());
  auto bundle = importer::parse_bundle(xml.str(), std::nullopt, limits);
  if (!bundle.ok()) {
    for (const auto& problem : bundle.problems) {
      if (problem.severity == importer::Problem::Severity::error) {
        return "bundle: " + problem.to_string();
      }
    }
    return "bundle: refused";
  }
  importer::Project::init(dir);
  auto project = importer::Project::open(dir);
  importer::apply_import(project, *bundle.bundle, importer::plan_import(*bundle.bundle, project));
  return "";
}

}  // namespace scada::bench
