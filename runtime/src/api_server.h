// The control API's HTTP server (Boost.Beast): one thread of its own, keep-alive, requests of
// at most 1 MiB, answers from one handler. The handler runs on the server's thread and may
// block for a bounded time (a tag write waits for the PLC's answer); it never runs on the
// thread that drives the connections.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace scada::runtime {

struct ApiRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // without the query: "/api/tags"
  std::string query;   // after '?', raw: "name=PLC1%2FSpeed&name=..."
  std::string body;
  std::string origin;  // the peer, "127.0.0.1:53122"
};

struct ApiResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

using ApiHandler = std::function<ApiResponse(const ApiRequest&)>;

class ApiServer {
 public:
  // Listens on "ADDRESS:PORT" (IPv6 in brackets; port 0 picks a free one). Only loopback
  // addresses are accepted (a non-loopback listener needs a token, not built yet). Throws
  // std::runtime_error with the reason.
  ApiServer(const std::string& listen, ApiHandler handler);
  ~ApiServer();  // stops accepting, closes connections, joins the thread
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;
  std::uint16_t port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The values of one key in a query string, percent-decoded ("+" is a space).
std::vector<std::string> query_values(const std::string& query, const std::string& key);

}  // namespace scada::runtime
