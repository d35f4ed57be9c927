// scadactl tag watch and tag wait (runtime.h, runtime/SCADACTL.md): a WebSocket subscription to
// scadad's GET /api/ws. The first message per name is its current state, then every change in
// the order it happened: watch prints them, wait compares them.
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <csignal>
#include <optional>
#include <ostream>

#include "client_api.h"
#include "json_line.h"

namespace scada::runtime {

namespace {

using namespace client;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

std::string duration_words(std::chrono::milliseconds d) {
  return d.count() % 1000 == 0 ? std::to_string(d.count() / 1000) + " s"
                               : std::to_string(d.count()) + " ms";
}

// One subscription: connects, upgrades, subscribes to names and hands each "tag" message to a
// handler until the handler has what it wanted, the time limit passes (counted from the start,
// the connection included) or SIGINT/SIGTERM arrives. Everything runs on one thread inside
// run(): resolve -> connect -> handshake -> subscribe -> read, read, ...
// What a step throws (UsageError, OperationFailed, Unreachable) comes out of run().
class TagSubscription {
 public:
  enum class End { done, time_limit, signal };
  // Returns false when it has what it wanted.
  using Handler = std::function<bool(const json& tag)>;

  TagSubscription(const ClientOptions& options, std::vector<std::string> names, Handler handler)
      : options_(options), names_(std::move(names)), handler_(std::move(handler)) {}

  End run(std::chrono::milliseconds limit) {
    const ApiEndpoint where = api_endpoint(options_);
    token_ = api_token(options_);
    const bool v6 = where.host.find(':') != std::string::npos;
    host_ = (v6 ? "[" + where.host + "]" : where.host) + ":" + where.port;
    signals_.async_wait([this](const beast::error_code& ec, int) {
      if (!ec) finish(End::signal);
    });
    if (limit.count() > 0) {
      limit_.expires_after(limit);
      limit_.async_wait([this](const beast::error_code& ec) {
        if (!ec) finish(End::time_limit);
      });
    }
    resolver_.async_resolve(where.host, where.port,
                            [this](beast::error_code ec, tcp::resolver::results_type endpoints) {
                              on_resolve(ec, std::move(endpoints));
                            });
    io_.run();
    if (!end_) throw Unreachable("lost scadad at " + options_.api);
    return *end_;
  }

 private:
  void on_resolve(beast::error_code ec, tcp::resolver::results_type endpoints) {
    if (end_) return;
    if (ec) unreachable(ec);
    beast::get_lowest_layer(ws_).expires_after(options_.timeout);
    beast::get_lowest_layer(ws_).async_connect(
        endpoints, [this](beast::error_code ec, const tcp::endpoint&) { on_connect(ec); });
  }

  void on_connect(beast::error_code ec) {
    if (end_) return;
    if (ec) unreachable(ec);
    ws_.set_option(websocket::stream_base::decorator([this](websocket::request_type& request) {
      request.set(http::field::user_agent, "scadactl");
      if (!token_.empty()) request.set(http::field::authorization, "Bearer " + token_);
    }));
    beast::get_lowest_layer(ws_).expires_after(options_.timeout);
    ws_.async_handshake(response_, host_, "/api/ws",
                        [this](beast::error_code ec) { on_handshake(ec); });
  }

  void on_handshake(beast::error_code ec) {
    if (end_) return;
    if (ec) {
      const json body = json::parse(response_.body(), nullptr, false);
      const std::string words = body.is_object() ? body.value("error", std::string()) : "";
      if (response_.result() == http::status::unauthorized) {
        throw UsageError(unauthorised_text(options_, words.empty() ? "HTTP 401" : words));
      }
      if (response_.result_int() != 0 && response_.result() != http::status::switching_protocols) {
        throw OperationFailed(
            "scadad at " + options_.api + " refused the WebSocket /api/ws: HTTP " +
            std::to_string(response_.result_int()) + (words.empty() ? "" : ": " + words));
      }
      throw Unreachable("scadad at " + options_.api +
                        " did not complete the WebSocket handshake: " + ec.message());
    }
    // From here the WebSocket's own timeouts: none while idle (a quiet tag is fine), a short
    // bound on the closing handshake (the command is ending; a silent scadad must not hold it).
    beast::get_lowest_layer(ws_).expires_never();
    websocket::stream_base::timeout timeouts{};
    timeouts.handshake_timeout = std::chrono::seconds(2);
    timeouts.idle_timeout = websocket::stream_base::none();
    timeouts.keep_alive_pings = false;
    ws_.set_option(timeouts);
    ws_.text(true);
    subscribe_ = json_line(json{{"subscribe", names_}});
    ws_.async_write(asio::buffer(subscribe_), [this](beast::error_code ec, std::size_t) {
      if (end_) return;
      if (ec) unreachable(ec);
      open_ = true;
      read();
    });
  }

  void read() {
    ws_.async_read(buffer_, [this](beast::error_code ec, std::size_t) { on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (end_) return;
    if (ec == websocket::error::closed) {
      throw Unreachable("scadad at " + options_.api + " closed the WebSocket (" +
                        std::string(ws_.reason().reason.data(), ws_.reason().reason.size()) + ")");
    }
    if (ec) unreachable(ec);
    const json message = json::parse(beast::buffers_to_string(buffer_.data()), nullptr, false);
    buffer_.consume(buffer_.size());
    const std::string type = message.is_object() ? message.value("type", std::string()) : "";
    if (type == "error") {
      throw OperationFailed(message.value("error", std::string("scadad refused the subscription")));
    }
    if (type == "subscribed") {
      // Names scadad did not subscribe are unknown; the error message may come later or not.
      const json listed = message.value("names", json::array());
      for (const std::string& name : names_) {
        if (std::find(listed.begin(), listed.end(), json(name)) == listed.end()) {
          throw OperationFailed("no tag named '" + name + "'");
        }
      }
    }
    // The contract has the tag's fields beside "type"; scadad may also nest them in "tag".
    const bool nested = message.contains("tag") && message["tag"].is_object();
    if (type == "tag" && !handler_(nested ? message["tag"] : message)) return finish(End::done);
    read();
  }

  [[noreturn]] void unreachable(beast::error_code ec) {
    throw Unreachable((open_ ? "lost scadad at " : "cannot reach scadad at ") + options_.api +
                      ": " + ec.message() + (open_ ? "" : " (is it running with --api?)"));
  }

  void finish(End end) {
    if (end_) return;
    end_ = end;
    limit_.cancel();
    signals_.cancel();
    resolver_.cancel();
    if (open_) {
      // A proper close (bounded by the handshake timeout); the read still waiting ends with it.
      ws_.async_close(websocket::close_code::normal, [](beast::error_code) {});
    } else {
      beast::error_code ignored;
      beast::get_lowest_layer(ws_).socket().close(ignored);
    }
  }

  const ClientOptions& options_;
  std::vector<std::string> names_;
  Handler handler_;
  std::string token_, host_, subscribe_;
  asio::io_context io_;
  tcp::resolver resolver_{io_};
  websocket::stream<beast::tcp_stream> ws_{io_};
  websocket::response_type response_;
  beast::flat_buffer buffer_;
  asio::steady_timer limit_{io_};
  asio::signal_set signals_{io_, SIGINT, SIGTERM};
  bool open_ = false;
  std::optional<End> end_;
};

std::vector<std::string> unique(const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (const auto& n : names) {
    if (std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
  }
  return out;
}

std::string watch_line(const json& tag, bool as_json) {
  if (as_json) return json_line(tag_summary(tag));
  return shown(tag.value("server_time", json())) + " " + tag_text(tag);
}

// ---- the condition of tag wait

std::optional<long double> number_of(const std::string& text) {
  const char* first = text.data();
  const char* last = first + text.size();
  std::int64_t i = 0;
  if (auto [end, ec] = std::from_chars(first, last, i); ec == std::errc() && end == last) {
    return static_cast<long double>(i);
  }
  double d = 0;
  if (auto [end, ec] = std::from_chars(first, last, d); ec == std::errc() && end == last) {
    return static_cast<long double>(d);
  }
  return std::nullopt;
}

std::optional<bool> bool_of(std::string text) {
  for (char& c : text) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (text == "true" || text == "1") return true;
  if (text == "false" || text == "0") return false;
  return std::nullopt;
}

bool ordering(const std::string& op) {
  return op == "<" || op == "<=" || op == ">" || op == ">=";
}

// NAME OP VALUE: numbers compared as numbers, Bool and text for (in)equality only.
class Condition {
 public:
  explicit Condition(const TagWaitOptions& w) : w_(w) {
    static const char* ops[] = {"==", "!=", "<", "<=", ">", ">="};
    if (std::find(std::begin(ops), std::end(ops), w.op) == std::end(ops)) {
      throw UsageError("OP is one of == != < <= > >=, not '" + w.op + "'");
    }
    if (ordering(w.op) && !number_of(w.value)) {
      throw UsageError(w.op + " compares numbers; '" + w.value + "' is not one");
    }
  }

  // Whether value satisfies it; UsageError when the tag's type and the condition do not mix.
  bool holds(const json& value) const {
    if (value.is_number()) {
      const auto target = number_of(w_.value);
      if (!target) {
        throw UsageError(w_.name + " holds numbers; '" + w_.value + "' is not one");
      }
      const long double v = value.is_number_unsigned()  ? (long double)value.get<std::uint64_t>()
                            : value.is_number_integer() ? (long double)value.get<std::int64_t>()
                                                        : (long double)value.get<double>();
      return compare(v, *target);
    }
    if (ordering(w_.op)) {
      throw UsageError(w_.name + " holds " + (value.is_boolean() ? "a Bool" : "text") +
                       ": compare it with == or != only");
    }
    bool equal = false;
    if (value.is_boolean()) {
      const auto target = bool_of(w_.value);
      if (!target) {
        throw UsageError(w_.name + " holds a Bool; compare it with true or false, not '" +
                         w_.value + "'");
      }
      equal = value.get<bool>() == *target;
    } else if (value.is_string()) {
      equal = value.get<std::string>() == w_.value;
    } else {
      return false;
    }
    return w_.op == "==" ? equal : !equal;
  }

  std::string text() const { return w_.name + " " + w_.op + " " + w_.value; }

 private:
  bool compare(long double a, long double b) const {
    if (w_.op == "==") return a == b;
    if (w_.op == "!=") return a != b;
    if (w_.op == "<") return a < b;
    if (w_.op == "<=") return a <= b;
    if (w_.op == ">") return a > b;
    return a >= b;
  }

  const TagWaitOptions& w_;
};

}  // namespace

int tag_watch_command(const ClientOptions& o, const TagWatchOptions& w, std::ostream& out,
                      std::ostream& err) {
  return guarded("tag watch", err, [&] {
    std::size_t shown_lines = 0;
    TagSubscription subscription(o, unique(w.names), [&](const json& tag) {
      out << watch_line(tag, o.json) << std::endl;
      ++shown_lines;
      return w.count == 0 || shown_lines < w.count;
    });
    subscription.run(w.duration);
    return 0;
  });
}

int tag_wait_command(const ClientOptions& o, const TagWaitOptions& w, std::ostream& out,
                     std::ostream& err) {
  return guarded("tag wait", err, [&] {
    const Condition condition(w);
    json last;
    bool satisfied = false;
    TagSubscription subscription(o, {w.name}, [&](const json& tag) {
      if (tag.value("name", json()) != w.name) return true;
      last = tag;
      // Compared even when not good: a VALUE that does not fit the tag is a usage error at once.
      const bool holds = condition.holds(tag.value("value", json()));
      satisfied = holds && tag.value("quality", json()) == "good";
      return !satisfied && w.timeout.count() > 0;  // --timeout 0: the current state decides
    });
    const TagSubscription::End end = subscription.run(w.timeout);
    if (!last.is_null()) out << watch_line(last, o.json) << std::endl;
    if (satisfied) return 0;
    const std::string now =
        last.is_null() ? "no value received"
                       : "last " + shown(last.value("value", json())) + " (" +
                             shown(last.value("quality", json())) +
                             (last.contains("reason") ? ": " + shown(last["reason"]) : "") + ")";
    const std::string when = end == TagSubscription::End::signal ? " did not hold before the signal"
                             : w.timeout.count() == 0
                                 ? " does not hold"
                                 : " did not hold within " + duration_words(w.timeout);
    throw OperationFailed(condition.text() + when + "; " + now);
  });
}

}  // namespace scada::runtime
