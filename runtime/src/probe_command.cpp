// scadactl probe: one connection attempt with the runtime's own code path (channel::Connection
// and the device certificate store), then the outcome: the session's facts or why it failed.
// The "test connection" button of the product.
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <ostream>
#include <string>
#include <variant>

#include <nlohmann/json.hpp>

#include "certstore/certstore.h"
#include "channel/channel.h"
#include "json_line.h"
#include "runtime/runtime.h"

namespace scada::runtime {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct CpuIdentity {
  std::optional<channel::ModuleIdentification> module;
  std::optional<channel::ComponentIdentification> component;
  std::string problem;  // why the identity could not be read, if it could not
};

struct Outcome {
  bool ok = false;
  channel::ConnectionEvent failure;
  channel::ConnectionInfo info;
  CpuIdentity cpu;
  std::vector<std::string> store_problems;
};

channel::Bytes read_der_or_pem(const fs::path& file) {
  auto parsed = certstore::read_certificate_file(file);
  if (auto* e = std::get_if<certstore::FileError>(&parsed))
    throw std::runtime_error(e->to_string());
  return std::get<std::vector<certstore::CertificateInfo>>(parsed).front().der;
}

}  // namespace

channel::ConnectionConfig probe_connection_config(const ProbeOptions& o) {
  channel::ConnectionConfig c;
  c.name = o.name;
  c.address = o.address;
  c.port = o.port;
  auto mode = channel::parse_security_mode(o.mode);
  if (!mode)
    throw std::runtime_error("--mode must be none, tls or s7-secure, not '" + o.mode + "'");
  c.mode = *mode;
  c.rack = o.rack;
  c.slot = o.slot;
  c.plc_name = o.plc_name;
  for (const std::string& file : o.partner_certificates) {
    c.partner_certificates.push_back(read_der_or_pem(file));
  }
  if (o.certificate.empty() != o.key.empty()) {
    throw std::runtime_error("--cert and --key go together (own certificate for mutual TLS)");
  }
  c.own_certificate = o.certificate;
  c.own_key = o.key;
  if (o.psk_identity.empty() != o.psk_file.empty()) {
    throw std::runtime_error("--psk-identity and --psk-file go together");
  }
  c.psk_identity = o.psk_identity;
  c.psk_file = o.psk_file;
  if (c.mode == channel::SecurityMode::none &&
      (!o.certificate.empty() || !o.psk_identity.empty() || !o.partner_certificates.empty())) {
    throw std::runtime_error(
        "credentials were given for mode none, which is plaintext; use --mode tls or s7-secure");
  }
  c.connect_timeout = o.timeout;
  c.dead_peer_timeout = o.timeout;
  c.reconnect = false;
  c.resume_sessions = false;
  return c;
}

certstore::StoreLayout probe_store_layout(const ProbeOptions& o) {
  if (!fs::is_directory(o.store)) {
    throw std::runtime_error("--store " + o.store +
                             ": no such folder (the device certificate store of a project)");
  }
  // A project's store lies beside pki/: <project>/device-certificate-store, <project>/pki/roots.
  const fs::path project = fs::absolute(o.store).lexically_normal().parent_path();
  certstore::StoreLayout layout;
  layout.store = o.store;
  layout.roots = o.roots.empty() ? project / "pki" / "roots" : fs::path(o.roots);
  layout.own = project / "pki" / "own";
  if (!o.roots.empty() && !fs::is_directory(layout.roots)) {
    throw std::runtime_error("--roots " + o.roots + ": no such folder");
  }
  return layout;
}

std::vector<std::string> load_store(certstore::CertificateStore& store) {
  std::vector<std::string> problems;
  auto subscription = store.subscribe([&](const certstore::StoreEvent& e) {
    if (e.kind == certstore::StoreEvent::Kind::file_problem) problems.push_back(e.detail);
  });
  store.reload();
  subscription.disconnect();
  return problems;
}

namespace {

Outcome run_probe(const ProbeOptions& o, const channel::ConnectionConfig& config,
                  certstore::CertificateStore& store) {
  Outcome outcome;
  boost::asio::io_context io;
  channel::Connection connection(io.get_executor(), store, config);
  bool up = false;
  auto finished = [&] {
    outcome.info = connection.info();
    connection.stop();
  };
  auto subscription = connection.subscribe([&](const channel::ConnectionEvent& e) {
    if (e.state == channel::ConnectionState::up && !up) {
      up = true;
      outcome.ok = true;
      // The CPU's identity: SZL 0x0011 (order number, firmware), then 0x001C (names).
      connection.read_szl({0x0011, 0}, [&](channel::SzlResult r) {
        if (auto* list = std::get_if<channel::SzlList>(&r)) {
          auto m = channel::parse_szl_0011(*list);
          if (m) outcome.cpu.module = m.value();
        } else {
          outcome.cpu.problem = "SZL 0x0011: " + std::get<channel::JobError>(r).detail;
        }
        connection.read_szl({0x001C, 0}, [&](channel::SzlResult r2) {
          if (auto* list = std::get_if<channel::SzlList>(&r2)) {
            auto c = channel::parse_szl_001c(*list);
            if (c) outcome.cpu.component = c.value();
          } else if (outcome.cpu.problem.empty()) {
            outcome.cpu.problem = "SZL 0x001C: " + std::get<channel::JobError>(r2).detail;
          }
          finished();
        });
      });
    } else if (e.state == channel::ConnectionState::stopped && !up) {
      outcome.failure = e;
      outcome.info = connection.info();
    }
  });
  // A bound above the connection's own, so that nothing here can hang.
  boost::asio::steady_timer guard(io, o.timeout * 2 + 5s);
  guard.async_wait([&](boost::system::error_code ec) {
    if (!ec) io.stop();
  });
  connection.start();
  // Runs until the attempt ended and the session (if any) was closed in order.
  while (!io.stopped()) {
    io.run_one();
    if (outcome.ok ? connection.info().state == channel::ConnectionState::stopped
                   : outcome.failure.state == channel::ConnectionState::stopped &&
                         outcome.failure.reason != channel::FailureReason::none) {
      guard.cancel();
      io.run_for(1s);  // the close_notify and FIN go out
      break;
    }
  }
  if (!outcome.ok && outcome.failure.reason == channel::FailureReason::none) {
    outcome.failure.reason = channel::FailureReason::timeout;
    outcome.failure.detail =
        "no outcome within " + std::to_string((o.timeout * 2 + 5s).count()) + " ms";
  }
  subscription.disconnect();
  return outcome;
}

nlohmann::ordered_json to_json(const ProbeOptions& o, const Outcome& r) {
  using nlohmann::ordered_json;
  const channel::ConnectionInfo& i = r.info;
  ordered_json j;
  j["ok"] = r.ok;
  j["reason"] =
      r.ok ? ordered_json(nullptr) : ordered_json(channel::failure_reason_name(r.failure.reason));
  j["detail"] = r.ok ? ordered_json(nullptr) : ordered_json(r.failure.detail);
  j["quarantined"] =
      r.failure.quarantined ? ordered_json(r.failure.quarantined->string()) : ordered_json(nullptr);
  j["address"] = o.address;
  j["port"] = o.port;
  j["mode"] = o.mode;
  const bool tls = r.ok && !i.tls_version.empty();
  j["tls_version"] = tls ? ordered_json(i.tls_version) : ordered_json(nullptr);
  j["cipher"] = tls ? ordered_json(i.cipher) : ordered_json(nullptr);
  j["group"] = tls && !i.group.empty() ? ordered_json(i.group) : ordered_json(nullptr);
  j["psk"] = tls ? ordered_json(i.used_psk) : ordered_json(nullptr);
  const auto& peer = r.ok ? i.peer_certificate : std::optional<certstore::CertificateInfo>{};
  j["peer_sha256"] = peer ? ordered_json(peer->sha256) : ordered_json(nullptr);
  j["peer_subject"] = peer ? ordered_json(peer->subject) : ordered_json(nullptr);
  j["peer_issuer"] = peer ? ordered_json(peer->issuer) : ordered_json(nullptr);
  j["peer_not_after"] =
      peer ? ordered_json(certstore::time_text(peer->not_after)) : ordered_json(nullptr);
  j["peer_days_to_expiry"] =
      peer ? ordered_json(peer->days_until_expiry(std::chrono::system_clock::now()))
           : ordered_json(nullptr);
  j["own_sha256"] = r.ok && !i.own_certificate_sha256.empty()
                        ? ordered_json(i.own_certificate_sha256)
                        : ordered_json(nullptr);
  j["pdu"] = r.ok ? ordered_json(i.pdu) : ordered_json(nullptr);
  j["amq"] = r.ok ? ordered_json(i.amq) : ordered_json(nullptr);
  j["handshake_ms"] =
      r.ok ? ordered_json(double(i.handshake_time.count()) / 1000.0) : ordered_json(nullptr);
  const auto& m = r.cpu.module;
  const auto& c = r.cpu.component;
  j["cpu_order_number"] = m ? ordered_json(m->order_number) : ordered_json(nullptr);
  j["cpu_firmware"] = m && m->firmware ? ordered_json(*m->firmware) : ordered_json(nullptr);
  j["cpu_module_type"] = c ? ordered_json(c->module_type) : ordered_json(nullptr);
  j["cpu_plc_name"] = c ? ordered_json(c->plc_name) : ordered_json(nullptr);
  j["cpu_serial_number"] = c ? ordered_json(c->serial_number) : ordered_json(nullptr);
  return j;
}

void print_text(const ProbeOptions& o, const Outcome& r, std::ostream& out) {
  const channel::ConnectionInfo& i = r.info;
  const std::string where = o.address + ":" + std::to_string(o.port) + " (" + o.mode + ")";
  if (!r.ok) {
    out << "failed: " << where << ": " << channel::failure_reason_name(r.failure.reason) << "\n"
        << "  " << r.failure.detail << "\n";
    if (r.failure.quarantined) {
      out << "  quarantined: " << r.failure.quarantined->string()
          << " (move it into trusted/ to trust this certificate)\n";
    }
    return;
  }
  char ms[32];
  std::snprintf(ms, sizeof ms, "%.1f", double(i.handshake_time.count()) / 1000.0);
  out << "ok: " << where << ", session up in " << ms << " ms\n";
  if (!i.tls_version.empty()) {
    out << "  TLS:      " << i.tls_version << " " << i.cipher
        << (i.used_psk ? ", pre-shared key" : (i.group.empty() ? "" : ", " + i.group)) << "\n";
  }
  if (const auto& p = i.peer_certificate) {
    out << "  PLC:      " << p->subject << ", issued by " << p->issuer << "\n"
        << "            sha256 " << p->sha256 << "\n"
        << "            valid until " << certstore::time_text(p->not_after) << " ("
        << p->days_until_expiry(std::chrono::system_clock::now()) << " days)\n";
  }
  if (!i.own_certificate_sha256.empty()) {
    out << "  own:      sha256 " << i.own_certificate_sha256 << "\n";
  }
  out << "  S7:       PDU " << i.pdu << ", AmQ " << i.amq << "\n";
  if (r.cpu.module || r.cpu.component) {
    out << "  CPU:     ";
    if (r.cpu.module) {
      out << " " << r.cpu.module->order_number;
      if (r.cpu.module->firmware) out << ", firmware " << *r.cpu.module->firmware;
    }
    if (r.cpu.component) {
      out << (r.cpu.module ? ", " : " ") << r.cpu.component->module_type << " '"
          << r.cpu.component->plc_name << "'";
    }
    out << "\n";
  }
  if (!r.cpu.problem.empty()) out << "  CPU identity not read: " << r.cpu.problem << "\n";
}

}  // namespace

int probe_command(const ProbeOptions& options, std::ostream& out, std::ostream& err) {
  channel::ConnectionConfig config;
  std::unique_ptr<certstore::CertificateStore> store;
  std::vector<std::string> store_problems;
  try {
    config = probe_connection_config(options);
    store = std::make_unique<certstore::CertificateStore>(probe_store_layout(options));
    store_problems = load_store(*store);
  } catch (const std::exception& e) {
    err << "scadactl probe: " << e.what() << "\n";
    return 2;
  }
  for (const std::string& p : store_problems) err << "warning: " << p << "\n";
  const Outcome outcome = run_probe(options, config, *store);
  if (options.json) {
    out << json_line(to_json(options, outcome)) << "\n";
  } else {
    print_text(options, outcome, out);
  }
  return outcome.ok ? 0 : 1;
}

int psk_generate_command(const PskGenerateOptions& options, std::ostream& out, std::ostream& err) {
  const std::string key = channel::generate_psk_text();
  if (options.file.empty()) {
    if (options.json) {
      out << json_line(nlohmann::ordered_json{{"key", key}}) << "\n";
    } else {
      out << key << "\n";
    }
    return 0;
  }
  const fs::path file = options.file;
  if (fs::exists(file) && !options.force) {
    err << "scadactl psk generate: " << file.string()
        << " exists; --force replaces it (both sides need the new key)\n";
    return 2;
  }
  // Written as a private file (0600) beside the target, then renamed over it.
  const fs::path temporary = file.parent_path() / ("." + file.filename().string() + ".tmp");
  {
    std::error_code ec;
    fs::remove(temporary, ec);
    std::ofstream f(temporary, std::ios::trunc);
    fs::permissions(temporary, fs::perms::owner_read | fs::perms::owner_write, ec);
    if (!f || ec || !(f << key << "\n") || !f.flush()) {
      err << "scadactl psk generate: cannot write " << temporary.string() << "\n";
      fs::remove(temporary, ec);
      return 2;
    }
  }
  std::error_code ec;
  fs::rename(temporary, file, ec);
  if (ec) {
    err << "scadactl psk generate: cannot rename onto " << file.string() << ": " << ec.message()
        << "\n";
    fs::remove(temporary, ec);
    return 2;
  }
  if (options.json) {
    out << json_line(nlohmann::ordered_json{{"file", file.string()}, {"written", true}}) << "\n";
  } else {
    out << "wrote a 256-bit key to " << file.string() << " (mode 0600)\n";
  }
  return 0;
}

int psk_check_command(const std::string& file, std::ostream& out, std::ostream& err, bool json) {
  nlohmann::ordered_json result{{"file", file}, {"ok", false}};
  try {
    const channel::Bytes key = channel::read_psk_file(file);
    result["ok"] = true;
    result["bits"] = key.size() * 8;
    if (json) {
      out << json_line(result) << "\n";
    } else {
      out << file << ": ok, " << key.size() * 8 << "-bit key\n";
    }
    return 0;
  } catch (const std::exception& e) {
    err << "scadactl psk check: " << e.what() << "\n";
    result["error"] = e.what();
    if (json) out << json_line(result) << "\n";
    return 1;
  }
}

}  // namespace scada::runtime
