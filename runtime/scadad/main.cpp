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
  CLI11_PARSE(app, argc, argv);
  return scada::runtime::run_daemon(options, std::cout, std::cerr);
}
