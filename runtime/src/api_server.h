// The control API's HTTP and WebSocket server (Boost.Beast): one thread of its own, keep-alive,
// requests of at most 1 MiB, answers from one handler, WebSocket clients on GET /api/ws. The
// handler runs on the server's thread and may block for a bounded time (a tag write waits for the
// PLC's answer); it never runs on the thread that drives the connections.
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

// One WebSocket client (GET /api/ws with Upgrade: websocket). send() may be called from any
// thread; messages go out in the order of the calls. A client that lets more than
// kMaxQueuedMessages wait is closed (it does not read).
class WsSender {
 public:
  static constexpr std::size_t kMaxQueuedMessages = 10000;
  virtual ~WsSender() = default;
  virtual void send(std::string text) = 0;
};
// What a WebSocket client's text messages go to, on the server's thread. Destroyed when the
// client is gone.
class WsListener {
 public:
  virtual ~WsListener() = default;
  virtual void on_message(const std::string& text) = 0;
};
using WsFactory =
    std::function<std::unique_ptr<WsListener>(std::weak_ptr<WsSender>, const ApiRequest&)>;

struct ApiServerOptions {
  std::string listen = "127.0.0.1:8700";  // ADDRESS:PORT, IPv6 in brackets, port 0: any free
  // When set, every request (the WebSocket upgrade and /metrics too) must carry
  // "Authorization: Bearer <token>"; required for a non-loopback address.
  std::string token;
};

class ApiServer {
 public:
  // Listens (see ApiServerOptions). Throws std::runtime_error with the reason (bad address, a
  // non-loopback address without a token, the port in use).
  ApiServer(const ApiServerOptions& options, ApiHandler handler, WsFactory websocket);
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
