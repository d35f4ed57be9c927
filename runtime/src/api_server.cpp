// ApiServer (api_server.h).
#include "api_server.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <openssl/crypto.h>

#include <cctype>
#include <deque>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

namespace scada::runtime {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {

constexpr std::size_t kMaxRequestBytes = 1 << 20;
constexpr auto kIdleTimeout = std::chrono::seconds(60);

std::string origin_of(const tcp::socket& socket) {
  boost::system::error_code ec;
  const auto peer = socket.remote_endpoint(ec);
  if (ec) return "?";
  const auto a = peer.address();
  return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" +
         std::to_string(peer.port());
}

struct Handlers {
  ApiHandler http;
  WsFactory websocket;
  std::string token;
};

// "Authorization: Bearer <token>", compared in constant time.
bool authorized(const http::request<http::string_body>& request, const std::string& token) {
  if (token.empty()) return true;
  const auto field = request[http::field::authorization];
  const std::string_view given(field.data(), field.size());
  const std::string_view prefix = "Bearer ";
  if (given.size() != prefix.size() + token.size() || given.substr(0, prefix.size()) != prefix) {
    return false;
  }
  return CRYPTO_memcmp(given.data() + prefix.size(), token.data(), token.size()) == 0;
}

// A WebSocket client: reads its text messages (to the listener), writes what send() queued,
// in order, one write at a time.
class WsSession : public WsSender, public std::enable_shared_from_this<WsSession> {
 public:
  WsSession(tcp::socket socket, const Handlers& handlers, ApiRequest request)
      : ws_(std::move(socket)), handlers_(handlers), request_(std::move(request)) {}

  void accept(http::request<http::string_body> upgrade) {
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.read_message_max(64 * 1024);
    ws_.async_accept(upgrade, [self = shared_from_this()](beast::error_code ec) {
      if (ec) return;
      self->listener_ = self->handlers_.websocket(self->weak_from_this(), self->request_);
      self->read();
    });
  }

  void send(std::string text) override {
    asio::post(ws_.get_executor(), [self = shared_from_this(), text = std::move(text)]() mutable {
      self->queue(std::move(text));
    });
  }

 private:
  void read() {
    ws_.async_read(buffer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->gone();
      const std::string text = beast::buffers_to_string(self->buffer_.data());
      self->buffer_.consume(self->buffer_.size());
      if (self->listener_) self->listener_->on_message(text);
      self->read();
    });
  }

  void queue(std::string text) {
    if (closing_) return;
    if (queue_.size() >= kMaxQueuedMessages) {
      closing_ = true;
      queue_.clear();
      ws_.async_close(
          websocket::close_reason(websocket::close_code::policy_error,
                                  "too many messages waiting: the client does not read"),
          [self = shared_from_this()](beast::error_code) { self->gone(); });
      return;
    }
    queue_.push_back(std::move(text));
    if (queue_.size() == 1) write();
  }

  void write() {
    ws_.text(true);
    ws_.async_write(asio::buffer(queue_.front()),
                    [self = shared_from_this()](beast::error_code ec, std::size_t) {
                      if (ec) return self->gone();
                      self->queue_.pop_front();
                      if (!self->queue_.empty()) self->write();
                    });
  }

  void gone() {
    closing_ = true;
    queue_.clear();
    listener_.reset();  // unsubscribes
  }

  websocket::stream<beast::tcp_stream> ws_;
  const Handlers& handlers_;
  ApiRequest request_;
  beast::flat_buffer buffer_;
  std::deque<std::string> queue_;
  bool closing_ = false;
  std::unique_ptr<WsListener> listener_;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const Handlers& handlers)
      : stream_(std::move(socket)), handlers_(handlers) {
    origin_ = origin_of(stream_.socket());
  }

  void read() {
    parser_.emplace();
    parser_->body_limit(kMaxRequestBytes);
    stream_.expires_after(kIdleTimeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

 private:
  void on_read(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      return respond({413, "application/json", R"({"error": "request body over 1 MiB"})"}, false);
    }
    if (ec) return close();
    auto request = parser_->release();
    ApiRequest r;
    r.method = std::string(request.method_string());
    const std::string target(request.target());
    const auto q = target.find('?');
    r.path = target.substr(0, q);
    if (q != std::string::npos) r.query = target.substr(q + 1);
    r.body = request.body();
    r.origin = origin_;
    if (!authorized(request, handlers_.token)) {
      return respond({401, "application/json",
                      R"({"error": "token missing or wrong: send Authorization: Bearer <token>"})"},
                     request.keep_alive());
    }
    if (websocket::is_upgrade(request)) {
      if (r.path != "/api/ws") {
        return respond({404, "application/json", R"({"error": "WebSocket only on /api/ws"})"},
                       false);
      }
      stream_.expires_never();
      std::make_shared<WsSession>(stream_.release_socket(), handlers_, std::move(r))
          ->accept(std::move(request));
      return;
    }
    ApiResponse answer;
    try {
      answer = handlers_.http(r);
    } catch (const std::exception& e) {
      answer = {500, "application/json", std::string(R"({"error": "internal error"})")};
    }
    respond(std::move(answer), request.keep_alive());
  }

  void respond(ApiResponse answer, bool keep_alive) {
    auto response = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(answer.status), 11);
    response->set(http::field::server, "scadad");
    response->set(http::field::content_type, answer.content_type);
    response->keep_alive(keep_alive);
    response->body() = std::move(answer.body);
    response->prepare_payload();
    http::async_write(
        stream_, *response,
        [self = shared_from_this(), response, keep_alive](beast::error_code ec, std::size_t) {
          if (ec || !keep_alive) return self->close();
          self->read();
        });
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  const Handlers& handlers_;
  std::string origin_;
};

}  // namespace

struct ApiServer::Impl {
  asio::io_context io;
  tcp::acceptor acceptor{io};
  Handlers handlers;
  std::thread thread;

  void accept() {
    acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec) return;  // closed
      std::make_shared<Session>(std::move(socket), handlers)->read();
      accept();
    });
  }
};

ApiServer::ApiServer(const ApiServerOptions& options, ApiHandler handler, WsFactory websocket)
    : impl_(std::make_unique<Impl>()) {
  impl_->handlers = {std::move(handler), std::move(websocket), options.token};
  const std::string& listen = options.listen;
  const auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    throw std::runtime_error("--api takes ADDRESS:PORT, e.g. 127.0.0.1:8700, not '" + listen + "'");
  }
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec) throw std::runtime_error("--api address '" + host + "' is not an IP address");
  if (!address.is_loopback() && options.token.empty()) {
    throw std::runtime_error("--api " + listen +
                             ": a non-loopback address needs a token (--api-token-file FILE)");
  }
  unsigned long port = 0;
  try {
    std::size_t used = 0;
    port = std::stoul(listen.substr(colon + 1), &used);
    if (used != listen.size() - colon - 1 || port > 65535) throw std::out_of_range("port");
  } catch (const std::exception&) {
    throw std::runtime_error("--api port in '" + listen + "' must be 0..65535");
  }
  const tcp::endpoint endpoint(address, static_cast<std::uint16_t>(port));
  impl_->acceptor.open(endpoint.protocol());
  impl_->acceptor.set_option(asio::socket_base::reuse_address(true));
  impl_->acceptor.bind(endpoint, ec);
  if (ec) throw std::runtime_error("--api " + listen + ": " + ec.message());
  impl_->acceptor.listen();
  impl_->accept();
  impl_->thread = std::thread([impl = impl_.get()] { impl->io.run(); });
}

ApiServer::~ApiServer() {
  asio::post(impl_->io, [impl = impl_.get()] {
    boost::system::error_code ignored;
    impl->acceptor.close(ignored);
    impl->io.stop();
  });
  impl_->thread.join();
}

std::uint16_t ApiServer::port() const {
  return impl_->acceptor.local_endpoint().port();
}

std::vector<std::string> query_values(const std::string& query, const std::string& key) {
  std::vector<std::string> values;
  std::size_t start = 0;
  while (start <= query.size()) {
    const auto end = std::min(query.find('&', start), query.size());
    const std::string pair = query.substr(start, end - start);
    const auto eq = pair.find('=');
    if (eq != std::string::npos && pair.substr(0, eq) == key) {
      std::string value;
      for (std::size_t i = eq + 1; i < pair.size(); ++i) {
        const char c = pair[i];
        if (c == '+') {
          value += ' ';
        } else if (c == '%' && i + 2 < pair.size() + 0 &&
                   std::isxdigit(static_cast<unsigned char>(pair[i + 1])) &&
                   std::isxdigit(static_cast<unsigned char>(pair[i + 2]))) {
          value += static_cast<char>(std::stoi(pair.substr(i + 1, 2), nullptr, 16));
          i += 2;
        } else {
          value += c;
        }
      }
      values.push_back(std::move(value));
    }
    start = end + 1;
  }
  return values;
}

}  // namespace scada::runtime
