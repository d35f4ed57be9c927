// scadactl: the command line for operators, engineers and scripts.
#include <CLI/CLI.hpp>

#include <cmath>
#include <iostream>

#include "runtime/runtime.h"

int main(int argc, char** argv) {
  using namespace scada::runtime;
  CLI::App app{"scadactl - command line of the SCADA runtime connection manager"};
  app.require_subcommand(1);

  DecodeOptions decode;
  auto* decode_cmd = app.add_subcommand(
      "decode", "Decode every TPKT/COTP/S7comm PDU of a pcap or pcapng capture, one line per PDU");
  decode_cmd->add_option("CAPTURE", decode.capture, "capture file (pcap or pcapng)")
      ->required()
      ->check(CLI::ExistingFile);
  decode_cmd->add_flag("--json", decode.json, "one JSON object per line, summary last");

  PlanOptions plan;
  auto* plan_cmd = app.add_subcommand(
      "plan", "Show the read requests the planner builds for a tag file at a PDU size");
  plan_cmd->add_option("TAGFILE", plan.tag_file, "one tag per line: ADDRESS [TYPE]; # comments")
      ->required()
      ->check(CLI::ExistingFile);
  plan_cmd->add_option("--pdu", plan.pdu, "negotiated PDU size (bytes)")
      ->required()
      ->check(CLI::Range(64, 65535));
  plan_cmd->add_option("--max-items", plan.max_items, "items per request (default 20, up to 255)")
      ->check(CLI::Range(1, 255));
  plan_cmd->add_flag("--json", plan.json, "print the summary line as JSON");

  // The connection options of probe and bench read: the same connection, made the same way.
  struct ConnectionFlags {
    int timeout_ms = 5000;
    unsigned rack = 0, slot = 1;
    void apply(ProbeOptions& o) const {
      o.timeout = std::chrono::milliseconds(timeout_ms);
      o.rack = static_cast<std::uint8_t>(rack);
      o.slot = static_cast<std::uint8_t>(slot);
    }
  };
  const auto connection_flags = [](CLI::App* cmd, ProbeOptions& o, ConnectionFlags& f) {
    cmd->add_option("--address", o.address, "PLC address: IPv4, IPv6 or host name")->required();
    cmd->add_option("--port", o.port, "TCP port (default 102)");
    cmd->add_option("--mode", o.mode, "security mode: none, tls or s7-secure")
        ->required()
        ->check(CLI::IsMember({"none", "tls", "s7-secure"}));
    cmd->add_option("--store", o.store,
                    "device certificate store folder (trusted/, trusted/crl/, untrusted/)")
        ->required();
    cmd->add_option("--roots", o.roots, "imported CA certificates (default: <store>/../pki/roots)");
    auto* cert_opt = cmd->add_option("--cert", o.certificate, "own certificate (mutual TLS)");
    auto* key_opt = cmd->add_option("--key", o.key, "own private key (mode 0600)");
    cert_opt->needs(key_opt);
    key_opt->needs(cert_opt);
    auto* psk_id_opt =
        cmd->add_option("--psk-identity", o.psk_identity, "TLS 1.3 external PSK identity");
    auto* psk_file_opt = cmd->add_option("--psk-file", o.psk_file,
                                         "file holding the PSK as 32-80 hex digits (mode 0600)");
    psk_id_opt->needs(psk_file_opt);
    psk_file_opt->needs(psk_id_opt);
    cmd->add_option("--partner-cert", o.partner_certificates,
                    "pinned PLC certificate or extra CA for this connection (repeatable)");
    cmd->add_option("--plc-name", o.plc_name,
                    "PLC name a CA-issued certificate may carry instead of the address");
    cmd->add_option("--rack", f.rack, "rack (modes none and tls; default 0)")
        ->check(CLI::Range(0, 7));
    cmd->add_option("--slot", f.slot, "slot (modes none and tls; default 1)")
        ->check(CLI::Range(0, 31));
    cmd->add_option("--timeout", f.timeout_ms, "bound for the attempt in ms (default 5000)")
        ->check(CLI::Range(100, 600000));
  };

  ProbeOptions probe;
  ConnectionFlags probe_flags;
  auto* probe_cmd =
      app.add_subcommand("probe",
                         "Connect once to a PLC with the runtime's code path and print the outcome "
                         "(exit 0 connected, 1 failed, 2 bad options)");
  connection_flags(probe_cmd, probe, probe_flags);
  probe_cmd->add_flag("--json", probe.json, "print one JSON object as the last line");

  BenchReadOptions bench;
  bench.connection.name = "bench";
  ConnectionFlags bench_flags;
  double bench_seconds = 10;
  auto* bench_cmd = app.add_subcommand("bench", "Measure what one PLC connection delivers");
  bench_cmd->require_subcommand(1);
  auto* bench_read_cmd = bench_cmd->add_subcommand(
      "read",
      "Connect as probe does, then read a tag file back to back for --seconds with the granted "
      "AmQ requests in flight, checking every value; print requests/s, tags/s, round trip "
      "p50/p99, CPU time and the session's facts (exit 0 no errors, 1 errors or no session, 2 "
      "bad options)");
  connection_flags(bench_read_cmd, bench.connection, bench_flags);
  bench_read_cmd
      ->add_option("--tags", bench.tag_file, "tag file: one ADDRESS [TYPE] per line; # comments")
      ->required();
  bench_read_cmd->add_option("--seconds", bench_seconds, "how long to read (0.1 to 3600)")
      ->required()
      ->check(CLI::Range(0.1, 3600.0));
  bench_read_cmd
      ->add_option("--pattern", bench.pattern,
                   "unchanged (default): every value equals the previous read of its tag; "
                   "counter: numbers that never decrease")
      ->check(CLI::IsMember({"unchanged", "counter"}));
  bench_read_cmd
      ->add_option("--max-items", bench.max_items,
                   "items per request (default 20, up to 255; the PDU may allow fewer)")
      ->check(CLI::Range(1, 255));
  bench_read_cmd
      ->add_option("--amq", bench.amq,
                   "jobs in flight asked for in setup (default 8; the PLC may grant fewer)")
      ->check(CLI::Range(1, 255));
  bench_read_cmd->add_flag("--json", bench.json,
                           "JSON lines; the last one {\"requests_per_s\": X, \"tags_per_s\": X, "
                           "\"rtt_p50_us\": X, \"rtt_p99_us\": X, \"errors\": N}");

  auto* psk_cmd = app.add_subcommand("psk", "Pre-shared keys for TLS 1.3 connections");
  psk_cmd->require_subcommand(1);
  PskGenerateOptions psk_generate;
  auto* psk_generate_cmd =
      psk_cmd->add_subcommand("generate", "Make a strong key (256 bits, 64 hex digits)");
  psk_generate_cmd->add_option("FILE", psk_generate.file,
                               "write the key here with mode 0600 instead of printing it");
  psk_generate_cmd->add_flag("--force", psk_generate.force, "replace an existing FILE");
  psk_generate_cmd->add_flag("--json", psk_generate.json, "print one JSON object");
  std::string psk_check_file;
  auto* psk_check_cmd =
      psk_cmd->add_subcommand("check", "Check a PSK file: format, strength, permissions");
  psk_check_cmd->add_option("FILE", psk_check_file, "the PSK file")->required();
  bool psk_check_json = false;
  psk_check_cmd->add_flag("--json", psk_check_json, "print one JSON object");

  ImportOptions import;
  auto* import_cmd = app.add_subcommand(
      "import", "Import a project bundle (*.scadaexport.xml, or a folder holding one)");
  import_cmd->add_option("--project", import.project, "the runtime project folder")->required();
  import_cmd->add_option("BUNDLE", import.bundle, "the bundle file or folder")->required();
  import_cmd->add_flag("--dry-run", import.dry_run, "validate and show the plan; change nothing");
  import_cmd->add_flag("--yes", import.yes, "trust the bundle's new certificates without asking");
  import_cmd->add_flag("--json", import.json, "print one JSON object with the plan and outcome");

  auto* project_cmd = app.add_subcommand("project", "Runtime projects");
  project_cmd->require_subcommand(1);
  std::string project_dir;
  auto* project_init_cmd = project_cmd->add_subcommand("init", "Create an empty project");
  project_init_cmd->add_option("DIR", project_dir, "the project folder")->required();
  bool project_init_json = false;
  project_init_cmd->add_flag("--json", project_init_json, "print one JSON object");

  // Commands for a running scadad (runtime/SCADACTL.md).
  ClientOptions client;
  const auto client_flags = [&client](CLI::App* cmd) {
    cmd->add_option("--api", client.api, "scadad's control API (default http://127.0.0.1:8700)");
    cmd->add_option("--token-file", client.token_file,
                    "file holding the API token (default: the environment variable "
                    "SCADA_API_TOKEN)");
    cmd->add_flag("--json", client.json, "one JSON object per line");
  };
  const CLI::Validator duration(
      [](std::string& text) -> std::string {
        try {
          parse_duration(text);
          return "";
        } catch (const std::invalid_argument& e) {
          return e.what();
        }
      },
      "DURATION");
  const auto to_duration = [](const std::string& text) {
    return text.empty() ? std::chrono::milliseconds(0) : parse_duration(text);
  };
  const char* exit_codes =
      "Exit 0 done, 1 failed or not in time, 2 bad usage (a refused token included), 3 scadad "
      "not reachable.";

  auto* tag_cmd = app.add_subcommand("tag", "Tags of a running scadad");
  tag_cmd->require_subcommand(1);
  std::vector<std::string> tag_names;
  auto* tag_get_cmd = tag_cmd->add_subcommand(
      "get", "Read tags: value, quality, time stamps (exit 1 when one is not good or unknown)");
  tag_get_cmd->add_option("NAME", tag_names, "tag names, e.g. PLC1/Speed @PLC1@ConnectionState")
      ->required();
  client_flags(tag_get_cmd);
  std::string set_name, set_value;
  auto* tag_set_cmd = tag_cmd->add_subcommand(
      "set",
      "Write a tag; the text is converted to the tag's type (exit 1 with scadad's reason when "
      "refused: unknown, read-only, does not fit, the PLC refused or is not connected)");
  tag_set_cmd->add_option("NAME", set_name, "tag name")->required();
  tag_set_cmd->add_option("VALUE", set_value, "value: 42, 16#FF, 1.5s, true, text")->required();
  client_flags(tag_set_cmd);
  TagWatchOptions watch;
  std::string watch_for;
  auto* tag_watch_cmd = tag_cmd->add_subcommand(
      "watch",
      "Print each tag's current state, then every change, one line each: SERVER_TIME NAME = "
      "VALUE (QUALITY[: REASON, DETAIL]). Ends after --count lines, after --for, or on "
      "SIGINT/SIGTERM (exit 0); exit 1 for an unknown name.");
  tag_watch_cmd->add_option("NAME", watch.names, "tag names")->required();
  tag_watch_cmd->add_option("--count", watch.count, "stop after N lines")
      ->check(CLI::PositiveNumber);
  tag_watch_cmd->add_option("--for", watch_for, "stop after this long: 500ms, 10s, 2m")
      ->check(duration);
  client_flags(tag_watch_cmd);
  TagWaitOptions wait;
  std::string wait_timeout = "30s";
  auto* tag_wait_cmd = tag_cmd->add_subcommand(
      "wait",
      "Wait until a tag is good and NAME OP VALUE holds (numbers compared as numbers, Bool and "
      "text with == and != only); prints the value. Exit 0 when it holds (at once if it already "
      "does), 1 when --timeout passes first (the last value is printed), 2 bad OP or VALUE, 3 "
      "scadad not reachable.");
  tag_wait_cmd->add_option("NAME", wait.name, "tag name")->required();
  tag_wait_cmd->add_option("OP", wait.op, "== != < <= > >=")
      ->required()
      ->check(CLI::IsMember({"==", "!=", "<", "<=", ">", ">="}));
  tag_wait_cmd->add_option("VALUE", wait.value, "a number, true/false or text")->required();
  tag_wait_cmd->add_option("--timeout", wait_timeout, "give up after this long (default 30s)")
      ->check(duration);
  client_flags(tag_wait_cmd);

  auto* conn_cmd = app.add_subcommand("conn", "Connections of a running scadad");
  conn_cmd->require_subcommand(1);
  auto* conn_list_cmd = conn_cmd->add_subcommand("list", "Connections with their system tags");
  client_flags(conn_list_cmd);
  ConnSwitchOptions change;
  std::string switch_to, switch_timeout = "30s";
  auto* conn_switch_cmd = conn_cmd->add_subcommand(
      "switch",
      "Switch a connection to its alternative or original address through the system tags: "
      "ForceConnectionState 0, (AlternativeAddress), UseAlternativeAddress, ForceConnectionState "
      "1, then wait until it is connected there; with --hot make-before-break while it stays up. "
      "Exit 1 with LastError when it is not connected there in time (e.g. an untrusted "
      "certificate: trust it with scadactl cert trust).");
  conn_switch_cmd->add_option("NAME", change.connection, "connection name")->required();
  conn_switch_cmd->add_option("--to", switch_to, "alternative or original")
      ->required()
      ->check(CLI::IsMember({"alternative", "original"}));
  conn_switch_cmd->add_option("--address", change.address,
                              "write this AlternativeAddress first: \"IPAddress=...;Port=...;\"");
  conn_switch_cmd->add_flag("--hot", change.hot,
                            "make-before-break: the connection stays up, the new session is up "
                            "before the old one closes");
  conn_switch_cmd->add_option("--timeout", switch_timeout, "give up after this long (default 30s)")
      ->check(duration);
  client_flags(conn_switch_cmd);

  auto* cert_cmd = app.add_subcommand("cert", "Certificates of a running scadad's project");
  cert_cmd->require_subcommand(1);
  std::string cert_kind, fingerprint;
  auto* cert_list_cmd = cert_cmd->add_subcommand(
      "list", "Certificates: kind, fingerprint, days left, subject, file, connections using it");
  cert_list_cmd->add_option("--kind", cert_kind, "only this kind")
      ->check(CLI::IsMember({"trusted", "quarantined", "root", "crl", "own"}));
  client_flags(cert_list_cmd);
  auto* cert_trust_cmd = cert_cmd->add_subcommand(
      "trust", "Trust a quarantined certificate: move its file from untrusted/ into trusted/");
  auto* cert_untrust_cmd = cert_cmd->add_subcommand(
      "untrust",
      "Stop trusting a certificate: move its file from trusted/ into untrusted/; sessions "
      "presenting it close");
  for (auto* cmd : {cert_trust_cmd, cert_untrust_cmd}) {
    cmd->add_option("FINGERPRINT", fingerprint,
                    "SHA-256: 64 hex digits or a unique prefix of at least 8 (colons allowed)")
        ->required();
    client_flags(cmd);
  }

  EventsOptions events;
  std::string events_for;
  auto* events_cmd = app.add_subcommand(
      "events", "The event log of a running scadad; --follow prints new events as they come");
  events_cmd->add_option("--last", events.last, "how many, newest last (default 50, up to 10000)")
      ->check(CLI::Range(0, 10000));
  events_cmd->add_option("--kind", events.kind, "only events of this kind (e.g. connection-state)");
  auto* follow = events_cmd->add_flag(
      "--follow", events.follow, "then print new events until SIGINT/SIGTERM or --for (exit 0)");
  events_cmd->add_option("--for", events_for, "with --follow: stop after this long")
      ->check(duration)
      ->needs(follow);
  client_flags(events_cmd);
  for (auto* cmd : {tag_get_cmd, tag_set_cmd, tag_watch_cmd, tag_wait_cmd, conn_list_cmd,
                    conn_switch_cmd, cert_list_cmd, cert_trust_cmd, cert_untrust_cmd, events_cmd}) {
    cmd->footer(exit_codes);
  }

  // Bad usage is exit 2 for every command (CLI11's own codes are above 100).
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  if (decode_cmd->parsed()) return decode_command(decode, std::cout, std::cerr);
  if (plan_cmd->parsed()) return plan_command(plan, std::cout, std::cerr);
  if (probe_cmd->parsed()) {
    probe_flags.apply(probe);
    return probe_command(probe, std::cout, std::cerr);
  }
  if (bench_read_cmd->parsed()) {
    bench_flags.apply(bench.connection);
    bench.duration = std::chrono::milliseconds(std::llround(bench_seconds * 1000));
    return bench_read_command(bench, std::cout, std::cerr);
  }
  if (psk_generate_cmd->parsed()) return psk_generate_command(psk_generate, std::cout, std::cerr);
  if (psk_check_cmd->parsed())
    return psk_check_command(psk_check_file, std::cout, std::cerr, psk_check_json);
  if (import_cmd->parsed()) return import_command(import, std::cin, std::cout, std::cerr);
  if (project_init_cmd->parsed())
    return project_init_command(project_dir, std::cout, std::cerr, project_init_json);
  if (tag_get_cmd->parsed()) return tag_get_command(client, tag_names, std::cout, std::cerr);
  if (tag_set_cmd->parsed())
    return tag_set_command(client, set_name, set_value, std::cout, std::cerr);
  if (tag_watch_cmd->parsed()) {
    watch.duration = to_duration(watch_for);
    return tag_watch_command(client, watch, std::cout, std::cerr);
  }
  if (tag_wait_cmd->parsed()) {
    wait.timeout = to_duration(wait_timeout);
    return tag_wait_command(client, wait, std::cout, std::cerr);
  }
  if (conn_list_cmd->parsed()) return conn_list_command(client, std::cout, std::cerr);
  if (conn_switch_cmd->parsed()) {
    change.alternative = switch_to == "alternative";
    change.timeout = to_duration(switch_timeout);
    return conn_switch_command(client, change, std::cout, std::cerr);
  }
  if (cert_list_cmd->parsed()) return cert_list_command(client, cert_kind, std::cout, std::cerr);
  if (cert_trust_cmd->parsed())
    return cert_trust_command(client, fingerprint, true, std::cout, std::cerr);
  if (cert_untrust_cmd->parsed())
    return cert_trust_command(client, fingerprint, false, std::cout, std::cerr);
  if (events_cmd->parsed()) {
    events.duration = to_duration(events_for);
    return events_command(client, events, std::cout, std::cerr);
  }
  return 2;
}
