// scadactl: the command line for operators, engineers and scripts.
#include <CLI/CLI.hpp>

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

  ProbeOptions probe;
  int probe_timeout_ms = 5000;
  unsigned rack = 0, slot = 1;
  auto* probe_cmd =
      app.add_subcommand("probe",
                         "Connect once to a PLC with the runtime's code path and print the outcome "
                         "(exit 0 connected, 1 failed, 2 bad options)");
  probe_cmd->add_option("--address", probe.address, "PLC address: IPv4, IPv6 or host name")
      ->required();
  probe_cmd->add_option("--port", probe.port, "TCP port (default 102)");
  probe_cmd->add_option("--mode", probe.mode, "security mode: none, tls or s7-secure")
      ->required()
      ->check(CLI::IsMember({"none", "tls", "s7-secure"}));
  probe_cmd
      ->add_option("--store", probe.store,
                   "device certificate store folder (trusted/, trusted/crl/, untrusted/)")
      ->required();
  probe_cmd->add_option("--roots", probe.roots,
                        "imported CA certificates (default: <store>/../pki/roots)");
  auto* cert_opt =
      probe_cmd->add_option("--cert", probe.certificate, "own certificate (mutual TLS)");
  auto* key_opt = probe_cmd->add_option("--key", probe.key, "own private key (mode 0600)");
  cert_opt->needs(key_opt);
  key_opt->needs(cert_opt);
  auto* psk_id_opt =
      probe_cmd->add_option("--psk-identity", probe.psk_identity, "TLS 1.3 external PSK identity");
  auto* psk_file_opt = probe_cmd->add_option(
      "--psk-file", probe.psk_file, "file holding the PSK as 32-80 hex digits (mode 0600)");
  psk_id_opt->needs(psk_file_opt);
  psk_file_opt->needs(psk_id_opt);
  probe_cmd->add_option("--partner-cert", probe.partner_certificates,
                        "pinned PLC certificate or extra CA for this connection (repeatable)");
  probe_cmd->add_option("--plc-name", probe.plc_name,
                        "PLC name a CA-issued certificate may carry instead of the address");
  probe_cmd->add_option("--rack", rack, "rack (modes none and tls; default 0)")
      ->check(CLI::Range(0, 7));
  probe_cmd->add_option("--slot", slot, "slot (modes none and tls; default 1)")
      ->check(CLI::Range(0, 31));
  probe_cmd->add_option("--timeout", probe_timeout_ms, "bound for the attempt in ms (default 5000)")
      ->check(CLI::Range(100, 600000));
  probe_cmd->add_flag("--json", probe.json, "print one JSON object as the last line");

  auto* psk_cmd = app.add_subcommand("psk", "Pre-shared keys for TLS 1.3 connections");
  psk_cmd->require_subcommand(1);
  PskGenerateOptions psk_generate;
  auto* psk_generate_cmd =
      psk_cmd->add_subcommand("generate", "Make a strong key (256 bits, 64 hex digits)");
  psk_generate_cmd->add_option("FILE", psk_generate.file,
                               "write the key here with mode 0600 instead of printing it");
  psk_generate_cmd->add_flag("--force", psk_generate.force, "replace an existing FILE");
  std::string psk_check_file;
  auto* psk_check_cmd =
      psk_cmd->add_subcommand("check", "Check a PSK file: format, strength, permissions");
  psk_check_cmd->add_option("FILE", psk_check_file, "the PSK file")->required();

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

  // Commands for a running scadad.
  ClientOptions client;
  const auto client_flags = [&client](CLI::App* cmd) {
    cmd->add_option("--api", client.api, "scadad's control API (default http://127.0.0.1:8700)");
    cmd->add_flag("--json", client.json, "one JSON object per line");
  };
  auto* tag_cmd = app.add_subcommand("tag", "Tags of a running scadad");
  tag_cmd->require_subcommand(1);
  std::vector<std::string> tag_names;
  auto* tag_get_cmd = tag_cmd->add_subcommand(
      "get", "Read tags: value, quality, time stamps (exit 1 when one is not good)");
  tag_get_cmd->add_option("NAME", tag_names, "tag names, e.g. PLC1/Speed @PLC1@ConnectionState")
      ->required();
  client_flags(tag_get_cmd);
  std::string set_name, set_value;
  auto* tag_set_cmd =
      tag_cmd->add_subcommand("set", "Write a tag; the text is converted to the tag's type");
  tag_set_cmd->add_option("NAME", set_name, "tag name")->required();
  tag_set_cmd->add_option("VALUE", set_value, "value: 42, 16#FF, 1.5s, true, text")->required();
  client_flags(tag_set_cmd);
  auto* conn_cmd = app.add_subcommand("conn", "Connections of a running scadad");
  conn_cmd->require_subcommand(1);
  auto* conn_list_cmd = conn_cmd->add_subcommand("list", "Connections with their system tags");
  client_flags(conn_list_cmd);
  std::size_t events_last = 50;
  auto* events_cmd = app.add_subcommand("events", "The event log of a running scadad");
  events_cmd->add_option("--last", events_last, "how many, newest last (default 50)");
  client_flags(events_cmd);

  CLI11_PARSE(app, argc, argv);

  if (decode_cmd->parsed()) return decode_command(decode, std::cout, std::cerr);
  if (plan_cmd->parsed()) return plan_command(plan, std::cout, std::cerr);
  if (probe_cmd->parsed()) {
    probe.timeout = std::chrono::milliseconds(probe_timeout_ms);
    probe.rack = static_cast<std::uint8_t>(rack);
    probe.slot = static_cast<std::uint8_t>(slot);
    return probe_command(probe, std::cout, std::cerr);
  }
  if (psk_generate_cmd->parsed()) return psk_generate_command(psk_generate, std::cout, std::cerr);
  if (psk_check_cmd->parsed()) return psk_check_command(psk_check_file, std::cout, std::cerr);
  if (import_cmd->parsed()) return import_command(import, std::cin, std::cout, std::cerr);
  if (project_init_cmd->parsed()) return project_init_command(project_dir, std::cout, std::cerr);
  if (tag_get_cmd->parsed()) return tag_get_command(client, tag_names, std::cout, std::cerr);
  if (tag_set_cmd->parsed())
    return tag_set_command(client, set_name, set_value, std::cout, std::cerr);
  if (conn_list_cmd->parsed()) return conn_list_command(client, std::cout, std::cerr);
  if (events_cmd->parsed()) return events_command(client, events_last, std::cout, std::cerr);
  return 2;
}
