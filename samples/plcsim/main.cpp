// plcsim: serves simulated S7-style PLCs for the demo, the tests and the benchmarks.
#include <CLI/CLI.hpp>

#include <csignal>
#include <iostream>
#include <mutex>
#include <thread>

#include "plcsim/plcsim.h"

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) {
  g_stop = true;
}

// "{n}" in a file name becomes the PLC's 1-based number, so --plcs N can give each PLC its own
// certificate: --cert certs/plc{n}.pem.
std::filesystem::path numbered(const std::filesystem::path& p, std::size_t n) {
  std::string s = p.string();
  for (auto at = s.find("{n}"); at != std::string::npos; at = s.find("{n}"))
    s.replace(at, 3, std::to_string(n));
  return s;
}

std::string timestamp() {
  const auto now = std::chrono::system_clock::now();
  const auto t = std::chrono::system_clock::to_time_t(now);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, int(ms));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace scada::plcsim;
  CLI::App app{"plcsim - simulated S7-style PLCs (modes none, tls, s7-secure)"};
  std::string listen = "127.0.0.1:10102";
  std::string mode = "none";
  std::string cert, key, client_ca, psk_identity, psk_file, name = "PLC", control;
  std::uint16_t pdu = 480, amq = 2;
  std::size_t plcs = 1;
  std::vector<std::string> dbs;
  app.add_option("--listen", listen, "ADDRESS:PORT of the first PLC (more on consecutive ports)")
      ->capture_default_str();
  app.add_option("--mode", mode, "security mode")
      ->check(CLI::IsMember({"none", "tls", "s7-secure"}))
      ->capture_default_str();
  app.add_option("--cert", cert, "certificate chain file (PEM, or DER); {n} = PLC number");
  app.add_option("--key", key, "private key file (PEM or DER); {n} = PLC number");
  app.add_option("--client-ca", client_ca, "require client certificates issued by this CA (PEM)");
  app.add_option("--psk-identity", psk_identity, "TLS 1.3 external PSK identity");
  app.add_option("--psk-file", psk_file, "file with the PSK as 32 to 128 hex digits");
  app.add_option("--pdu", pdu, "largest PDU offered in setup communication")
      ->check(CLI::IsMember({240, 480, 960}))
      ->capture_default_str();
  app.add_option("--amq", amq, "jobs worked on in parallel (more are queued)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--db", dbs, "data block NUMBER:SIZE (repeatable; default 1:1024)");
  app.add_option("--plcs", plcs, "number of PLCs, each with its own memory and certificate")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  app.add_option("--name", name, "PLC name (with --plcs N: NAME1..NAMEN)")->capture_default_str();
  app.add_option("--control", control, "Unix socket for fault commands (see README)");
  CLI11_PARSE(app, argc, argv);

  const auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    std::cerr << "plcsim: --listen needs ADDRESS:PORT, got '" << listen << "'\n";
    return 2;
  }
  std::string address = listen.substr(0, colon);
  if (address.size() > 2 && address.front() == '[' && address.back() == ']')
    address = address.substr(1, address.size() - 2);
  std::uint16_t port = 0;
  try {
    const unsigned long p = std::stoul(listen.substr(colon + 1));
    if (p > 65535) throw std::out_of_range("port");
    port = std::uint16_t(p);
  } catch (const std::exception&) {
    std::cerr << "plcsim: bad port in --listen '" << listen << "'\n";
    return 2;
  }

  std::map<std::uint16_t, std::size_t> blocks;
  for (const auto& d : dbs) {
    // NUMBER:SIZE, both plain decimal.
    const auto number = [](const std::string& text, unsigned long max) -> unsigned long {
      if (text.empty() || text.size() > 7 ||
          text.find_first_not_of("0123456789") != std::string::npos)
        return 0;
      const unsigned long v = std::stoul(text);
      return v <= max ? v : 0;
    };
    const auto colon_at = d.find(':');
    const unsigned long db =
        colon_at == std::string::npos ? 0 : number(d.substr(0, colon_at), 65535);
    const unsigned long size =
        colon_at == std::string::npos ? 0 : number(d.substr(colon_at + 1), 65536);
    if (db == 0 || size == 0) {
      std::cerr << "plcsim: --db takes NUMBER:SIZE with NUMBER 1..65535 and SIZE 1..65536, got '"
                << d << "'\n";
      return 2;
    }
    blocks[std::uint16_t(db)] = size;
  }
  if (blocks.empty()) blocks = {{1, 1024}};

  std::vector<PlcConfig> configs;
  for (std::size_t i = 1; i <= plcs; ++i) {
    PlcConfig c;
    c.name = plcs == 1 ? name : name + std::to_string(i);
    c.mode = scada::channel::parse_security_mode(mode).value_or(SecurityMode::none);
    c.max_pdu = pdu;
    c.max_amq = amq;
    c.data_blocks = blocks;
    if (c.process_db != 0 && blocks.count(c.process_db) == 0) c.data_blocks[c.process_db] = 16;
    if (!cert.empty()) c.tls.certificate = numbered(cert, i);
    if (!key.empty()) c.tls.key = numbered(key, i);
    c.tls.client_ca = client_ca;
    c.tls.psk_identity = psk_identity;
    c.tls.psk_file = psk_file;
    c.serial_number = "S V-PLCSIM" + std::to_string(100000 + i);
    configs.push_back(std::move(c));
  }
  if (mode != "none" && cert.empty() && psk_identity.empty()) {
    std::cerr << "plcsim: mode " << mode
              << " needs --cert and --key, or --psk-identity and --psk-file\n";
    return 2;
  }

  std::mutex out;
  auto log = [&out](const std::string& line) {
    std::lock_guard<std::mutex> lock(out);
    std::cout << timestamp() << " " << line << std::endl;
  };
  try {
    Simulator sim(std::move(configs), address, port, log);
    if (!control.empty()) sim.serve_control(control);
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    log("plcsim ready: " + std::to_string(sim.size()) + " PLC(s), first on port " +
        std::to_string(sim.plc(0).port()));
    while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    log("plcsim stopping");
  } catch (const std::exception& e) {
    std::cerr << "plcsim: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
