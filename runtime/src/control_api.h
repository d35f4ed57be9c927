// scadad's control API (README "Control API"): tags, connections, certificates, events, the
// WebSocket tag stream and the Prometheus metrics, over the ApiServer transport.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "api_server.h"
#include "daemon_parts.h"
#include "tags/tags.h"

namespace scada::runtime {

class ControlApi {
 public:
  ControlApi(tags::TagServer& server, certstore::CertificateStore& store, ProjectState& project,
             Log& log);

  // Every request of the HTTP API (any thread; a tag write waits up to 15 s for the PLC).
  ApiResponse handle(const ApiRequest& request);
  // A WebSocket client of /api/ws: {"subscribe": [...]} / {"unsubscribe": [...]}.
  std::unique_ptr<WsListener> open_websocket(std::weak_ptr<WsSender> sender,
                                             const ApiRequest& request);

  // From the daemon's timer, every few seconds: tags read per second of each connection.
  void sample();
  // The certificates in use (live sessions' PLC certificates, pki/own) and the store's roots
  // and pins: expiry events at 30, 14 and 1 days and on expiry (CertificateStore::check_expiry).
  void check_expiry();

  std::string metrics_text() const;

 private:
  ApiResponse get_tags(const ApiRequest& request);
  ApiResponse post_tags(const ApiRequest& request);
  ApiResponse get_connections();
  ApiResponse get_certificates();
  ApiResponse move_certificate(const ApiRequest& request, bool trust);
  ApiResponse get_events(const ApiRequest& request);

  tags::TagServer& server_;
  certstore::CertificateStore& store_;
  ProjectState& project_;
  Log& log_;

  struct Rate {
    std::uint64_t values = 0;
    std::chrono::steady_clock::time_point at{};
    double per_second = 0;
  };
  mutable std::mutex mutex_;  // rates_, requests_
  std::map<std::string, Rate> rates_;
  std::uint64_t requests_ = 0;
};

}  // namespace scada::runtime
