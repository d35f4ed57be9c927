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

  CLI11_PARSE(app, argc, argv);

  if (decode_cmd->parsed()) return decode_command(decode, std::cout, std::cerr);
  if (plan_cmd->parsed()) return plan_command(plan, std::cout, std::cerr);
  return 2;
}
