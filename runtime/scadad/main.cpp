// scadad: the runtime service (see runtime.h, run_daemon).
#include <CLI/CLI.hpp>

#include <iostream>

#include "runtime/runtime.h"

int main(int argc, char** argv) {
  scada::runtime::DaemonOptions options;
  CLI::App app{"scadad - the SCADA runtime: connections, tags and trust of one project"};
  app.add_option("--project", options.project, "the runtime project folder")->required();
  app.add_option("--api", options.api,
                 "control API on ADDRESS:PORT (default 127.0.0.1:8700; off: none); a non-loopback "
                 "address needs --api-token-file");
  app.add_option("--api-token-file", options.api_token_file,
                 "file (mode 0600) whose first line is the API token; every request must then "
                 "send Authorization: Bearer <token>");
  app.add_option("--event-log-limit", options.event_log_limit,
                 "events kept in project.db, the oldest deleted first (default 100000)");
  app.add_option("--log-level", options.log_level, "debug, info (default), warning or error");
  app.add_option("--dead-peer-timeout", options.dead_peer_timeout,
                 "how long requests may wait on a silent PLC before its session counts as dead "
                 "and is reconnected (default 3s; 100ms to 1h; e.g. 500ms, 10s)");
  app.add_option(
      "--connect-timeout", options.connect_timeout,
      "bound of one connection attempt: TCP, TLS and S7 setup (default 5s; 500ms to 1h)");
  app.add_option("--retry-max", options.retry_max,
                 "longest wait between connection attempts; the backoff starts at 500ms and "
                 "doubles up to this, with jitter (default 30s; 500ms to 1h)");
  CLI11_PARSE(app, argc, argv);
  return scada::runtime::run_daemon(options, std::cout, std::cerr);
}
