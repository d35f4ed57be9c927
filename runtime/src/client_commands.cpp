// scadactl's commands that talk to a running scadad over its HTTP control API (runtime.h,
// runtime/SCADACTL.md), and what they share with the WebSocket ones (client_api.h).
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <ostream>
#include <thread>

#include "client_api.h"
#include "json_line.h"
#include "tags/tags.h"

namespace scada::runtime {

namespace client {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

ApiEndpoint api_endpoint(const ClientOptions& o) {
  std::string api = o.api;
  if (api.rfind("http://", 0) == 0) api = api.substr(7);
  while (!api.empty() && api.back() == '/') api.pop_back();
  const auto colon = api.rfind(':');
  const auto bad = [&] { return UsageError("--api takes http://HOST:PORT, not '" + o.api + "'"); };
  if (colon == std::string::npos || colon + 1 == api.size()) throw bad();
  std::string host = api.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string port = api.substr(colon + 1);
  if (host.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
    throw bad();
  return {host, port};
}

namespace {

std::string trimmed(std::string text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}

// A token goes into a header: visible ASCII only, so it cannot end the header or start another.
std::string checked_token(const std::string& token, const std::string& source) {
  for (unsigned char c : token) {
    if (c < 0x21 || c > 0x7E) {
      throw UsageError("the token from " + source +
                       " holds a space or a character that is not printable ASCII");
    }
  }
  return token;
}

}  // namespace

std::string api_token(const ClientOptions& o) {
  if (!o.token_file.empty()) {
    std::ifstream in(o.token_file, std::ios::binary);
    if (!in) {
      throw UsageError("cannot read --token-file " + o.token_file + ": " + std::strerror(errno));
    }
    std::string line;  // the first line, as scadad reads its --api-token-file
    std::getline(in, line);
    const std::string token = trimmed(line);
    if (token.empty()) throw UsageError("--token-file " + o.token_file + " holds no token");
    return checked_token(token, "--token-file " + o.token_file);
  }
  const char* env = std::getenv("SCADA_API_TOKEN");
  return env == nullptr ? std::string() : checked_token(trimmed(env), "SCADA_API_TOKEN");
}

std::string unauthorised_text(const ClientOptions& o, const std::string& server_words) {
  const std::string source = !o.token_file.empty() ? "the token from --token-file " + o.token_file
                             : std::getenv("SCADA_API_TOKEN") ? "the token from SCADA_API_TOKEN"
                                                              : std::string();
  if (source.empty()) {
    return "scadad at " + o.api + " wants an API token (" + server_words +
           "): pass --token-file FILE or set SCADA_API_TOKEN";
  }
  return "scadad at " + o.api + " refused " + source + " (" + server_words +
         "): token missing or wrong";
}

Reply request(const ClientOptions& o, http::verb verb, const std::string& target,
              const std::string& body) {
  const ApiEndpoint where = api_endpoint(o);
  const std::string token = api_token(o);
  http::request<http::string_body> req(verb, target, 11);
  req.set(http::field::host, where.host);
  req.set(http::field::user_agent, "scadactl");
  if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
  if (verb == http::verb::post) req.set(http::field::content_type, "application/json");
  req.body() = body;
  req.prepare_payload();

  // Asynchronous steps on a stream with a deadline: a scadad that accepts and then says nothing
  // ends the request after options.timeout instead of hanging the command.
  boost::asio::io_context io;
  beast::tcp_stream stream(io);
  tcp::resolver resolver(io);
  http::response_parser<http::string_body> parser;
  parser.body_limit(std::uint64_t(256) << 20);
  beast::flat_buffer buffer;
  beast::error_code failure;
  bool connected = false;
  resolver.async_resolve(where.host, where.port, [&](beast::error_code ec, auto endpoints) {
    if (ec) {
      failure = ec;
      return;
    }
    stream.expires_after(o.timeout);
    stream.async_connect(endpoints, [&](beast::error_code ec, const tcp::endpoint&) {
      if (ec) {
        failure = ec;
        return;
      }
      connected = true;
      http::async_write(stream, req, [&](beast::error_code ec, std::size_t) {
        if (ec) {
          failure = ec;
          return;
        }
        http::async_read(stream, buffer, parser,
                         [&](beast::error_code ec, std::size_t) { failure = ec; });
      });
    });
  });
  io.run();
  if (failure && !connected) {
    throw Unreachable("cannot reach scadad at " + o.api + ": " + failure.message() +
                      " (is it running with --api?)");
  }
  if (failure) {
    throw Unreachable("scadad at " + o.api + " did not answer " + std::string(to_string(verb)) +
                      " " + target + ": " + failure.message());
  }
  auto& res = parser.get();
  Reply reply{int(res.result_int()), json::parse(res.body(), nullptr, false)};
  if (reply.status == 401) throw UsageError(unauthorised_text(o, error_text(reply)));
  return reply;
}

std::string error_text(const Reply& r) {
  if (r.body.is_object() && r.body.contains("error")) return shown(r.body["error"]);
  return "HTTP " + std::to_string(r.status);
}

void require_ok(const Reply& r) {
  if (r.status == 200) return;
  if (r.status == 400) throw UsageError(error_text(r));
  throw OperationFailed(error_text(r));
}

std::string percent_encoded(const std::string& text) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += char(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string shown(const json& v) {
  return v.is_string() ? v.get<std::string>() : dump_leaf(v);
}

std::string tag_text(const json& t) {
  std::string line = shown(t.value("name", json())) + " = " + shown(t.value("value", json())) +
                     " (" + shown(t.value("quality", json()));
  if (t.contains("reason")) {
    line += ": " + shown(t["reason"]);
    if (t.contains("detail") && t["detail"] != "") line += ", " + shown(t["detail"]);
  }
  return line + ")";
}

json tag_summary(const json& t) {
  json line = json::object();
  for (const char* key :
       {"name", "value", "quality", "reason", "detail", "source_time", "server_time"}) {
    if (t.contains(key)) line[key] = t[key];
  }
  return line;
}

int guarded(const char* command, std::ostream& err, const std::function<int()>& f) {
  const auto say = [&](const std::string& words) {
    err << "scadactl " << command << ": " << words << std::endl;
  };
  try {
    return f();
  } catch (const UsageError& e) {
    say(e.what());
    return 2;
  } catch (const Unreachable& e) {
    say(e.what());
    return 3;
  } catch (const OperationFailed& e) {
    say(e.what());
    return 1;
  } catch (const nlohmann::json::exception& e) {
    say(std::string("scadad's answer is not what this scadactl expects: ") + e.what());
    return 1;
  } catch (const std::exception& e) {
    say(e.what());
    return 1;
  }
}

}  // namespace client

using namespace client;

namespace {

// A duration the way it is typed: "2m", "10s", "500ms".
std::string duration_text(std::chrono::milliseconds d) {
  const auto ms = d.count();
  if (ms % 60000 == 0 && ms != 0) return std::to_string(ms / 60000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

// SIGINT and SIGTERM while a command follows something: they end it the way --for does.
class StopSignals {
 public:
  StopSignals() : signals_(io_, SIGINT, SIGTERM) {
    signals_.async_wait([this](const boost::system::error_code& ec, int) {
      if (!ec) stopped_ = true;
    });
  }
  // Waits for d or a signal (one that came before counts); true when a signal came.
  bool wait(std::chrono::milliseconds d) {
    if (stopped_) return true;
    io_.restart();
    io_.run_for(d);
    return stopped_;
  }

 private:
  boost::asio::io_context io_;
  boost::asio::signal_set signals_;
  bool stopped_ = false;
};

}  // namespace

std::chrono::milliseconds parse_duration(const std::string& text) {
  const auto bad = [&] {
    return std::invalid_argument(
        "a duration is a number with ms, s, m or h (500ms, 10s, 2m), "
        "or a plain number of seconds, up to a day; not '" +
        text + "'");
  };
  const auto unit_at = text.find_first_not_of("0123456789.");
  const std::string number = text.substr(0, unit_at);
  const std::string unit = unit_at == std::string::npos ? "s" : text.substr(unit_at);
  double value = 0;
  const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (number.empty() || ec != std::errc() || end != number.data() + number.size()) throw bad();
  double scale = 0;
  if (unit == "ms") scale = 1;
  if (unit == "s") scale = 1000;
  if (unit == "m" || unit == "min") scale = 60000;
  if (unit == "h") scale = 3600000;
  const double ms = value * scale;
  if (scale == 0 || !(ms >= 0) || ms > 86400000.0) throw bad();
  return std::chrono::milliseconds(static_cast<std::int64_t>(ms + 0.5));
}

int tag_get_command(const ClientOptions& o, const std::vector<std::string>& names,
                    std::ostream& out, std::ostream& err) {
  return guarded("tag get", err, [&] {
    std::string target = "/api/tags";
    for (std::size_t i = 0; i < names.size(); ++i) {
      target += (i == 0 ? "?name=" : "&name=") + percent_encoded(names[i]);
    }
    const Reply r = request(o, http::verb::get, target);
    require_ok(r);
    bool all_good = true;
    for (const json& t : r.body.at("tags")) {
      all_good &= t.value("quality", json()) == "good";
      out << (o.json ? json_line(tag_summary(t)) : tag_text(t)) << "\n";
    }
    return all_good ? 0 : 1;
  });
}

int tag_set_command(const ClientOptions& o, const std::string& name, const std::string& value,
                    std::ostream& out, std::ostream& err) {
  return guarded("tag set", err, [&] {
    // Sent as text: scadad converts it to the tag's type as an operator's entry.
    const nlohmann::json body{{"name", name}, {"value", value}};
    const Reply r = request(o, http::verb::post, "/api/tags", body.dump());
    if (r.status == 400) throw UsageError(error_text(r));
    json result{{"name", name}, {"ok", false}, {"error", error_text(r)}};
    if (r.status == 200) result = r.body.at("results").at(0);
    if (o.json) out << json_line(result) << "\n";
    if (result.value("ok", false) != true) {
      throw OperationFailed(result.contains("error") ? shown(result["error"])
                                                     : "the write was refused");
    }
    if (!o.json) out << name << " = " << value << ": written\n";
    return 0;
  });
}

int conn_list_command(const ClientOptions& o, std::ostream& out, std::ostream& err) {
  return guarded("conn list", err, [&] {
    const Reply r = request(o, http::verb::get, "/api/connections");
    require_ok(r);
    for (const json& c : r.body.at("connections")) {
      if (o.json) {
        out << json_line(c) << "\n";
        continue;
      }
      const json state = c.value("ConnectionState", json());
      out << shown(c["name"]) << ": "
          << tags::link_state_name(state.is_number() ? state.get<std::int64_t>() : -1) << ", "
          << shown(c.value("CurrentAddress", json()));
      if (c.value("UseAlternativeAddress", json()) == 1) out << ", using the alternative";
      const json peer = c.value("PeerCertificate", json());
      if (peer.is_string() && peer != "") {
        out << "\n  certificate " << shown(peer);
        const json days = c.value("CertificateDaysLeft", json());
        if (days.is_number()) out << ", " << days << " days left";
      }
      const json error = c.value("LastError", json());
      if (error.is_string() && error != "") out << "\n  last error: " << shown(error);
      out << "\n";
    }
    return 0;
  });
}

// ---- conn switch

namespace {

json connection_named(const ClientOptions& o, const std::string& name) {
  const Reply r = request(o, http::verb::get, "/api/connections");
  require_ok(r);
  for (const json& c : r.body.at("connections")) {
    if (c.value("name", json()) == name) return c;
  }
  throw OperationFailed("no connection named '" + name + "' (scadactl conn list shows them)");
}

std::string text_of(const json& c, const char* key) {
  const json v = c.value(key, json());
  return v.is_string() ? v.get<std::string>() : std::string();
}

std::int64_t state_of(const json& c) {
  const json v = c.value("ConnectionState", json());
  return v.is_number() ? v.get<std::int64_t>() : -1;
}

bool ends_with(const std::string& text, const std::string& end) {
  return text.size() >= end.size() && text.compare(text.size() - end.size(), end.size(), end) == 0;
}

// "HOST:PORT" the way CurrentAddress starts when the connection uses that address (IPv6 in
// brackets), or "" when it cannot be told (then only the "(alternative)" / "(original)" end
// is compared).
std::string endpoint_text(const std::string& host, const json& port) {
  if (host.empty() || !port.is_number()) return "";
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port.get<std::int64_t>());
}

// The 64 hex digits of the quarantine file named in a LastError ("quarantined as
// untrusted/<sha256>.der"), or "".
std::string quarantined_fingerprint(const std::string& last_error) {
  const auto at = last_error.find("untrusted/");
  if (at == std::string::npos) return "";
  const std::string hex = last_error.substr(at + 10, 64);
  if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdef") != std::string::npos) return "";
  return hex;
}

// One switch: the steps as they happen (text) or collected for the one JSON object at the end.
class Switch {
 public:
  Switch(const ClientOptions& o, const ConnSwitchOptions& s, std::ostream& out)
      : o_(o), s_(s), out_(out), deadline_(std::chrono::steady_clock::now() + s.timeout) {}

  // Writes @<c>@<tag> = value; OperationFailed with scadad's words when refused.
  void write(std::string_view tag, const json& value) {
    const std::string name = tags::system_tag_name(s_.connection, tag);
    const Reply r =
        request(o_, http::verb::post, "/api/tags", json{{"name", name}, {"value", value}}.dump());
    std::string error;
    if (r.status != 200) {
      error = error_text(r);
    } else if (const json& result = r.body.at("results").at(0); result.value("ok", false) != true) {
      error = result.contains("error") ? shown(result["error"]) : "refused";
    }
    json step{{"step", "write"}, {"tag", name}, {"value", value}, {"ok", error.empty()}};
    if (!error.empty()) step["error"] = error;
    steps_.push_back(step);
    if (!o_.json) {
      out_ << s_.connection << ": " << name << " = " << shown(value)
           << (error.empty() ? " written" : " refused") << std::endl;
    }
    if (!error.empty()) throw OperationFailed(error);  // scadad's words name the tag
  }

  // Polls the connection every 100 ms until done(connection) or the deadline; true when done.
  bool wait(const std::string& what, const std::function<bool(const json&)>& done) {
    for (;;) {
      last_ = connection_named(o_, s_.connection);
      if (done(last_)) {
        steps_.push_back({{"step", "wait"}, {"until", what}, {"ok", true}});
        if (!o_.json) {
          out_ << s_.connection << ": " << tags::link_state_name(state_of(last_)) << ", "
               << text_of(last_, "CurrentAddress") << std::endl;
        }
        return true;
      }
      if (std::chrono::steady_clock::now() >= deadline_) {
        steps_.push_back({{"step", "wait"}, {"until", what}, {"ok", false}});
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  const json& last() const { return last_; }
  void set_last(json c) { last_ = std::move(c); }
  const json& steps() const { return steps_; }

 private:
  const ClientOptions& o_;
  const ConnSwitchOptions& s_;
  std::ostream& out_;
  std::chrono::steady_clock::time_point deadline_;
  json steps_ = json::array();
  json last_;
};

}  // namespace

int conn_switch_command(const ClientOptions& o, const ConnSwitchOptions& s, std::ostream& out,
                        std::ostream& err) {
  return guarded("conn switch", err, [&]() -> int {
    const std::string to = s.alternative ? "alternative" : "original";
    if (!s.address.empty()) {
      auto parsed = tags::AlternativeAddress::parse(s.address);
      if (const auto* why = std::get_if<tags::ParseError>(&parsed)) {
        throw UsageError("--address '" + s.address + "': " + why->to_string());
      }
    }
    Switch run(o, s, out);
    run.set_last(connection_named(o, s.connection));

    // Where the connection is when the switch is done: CurrentAddress "HOST:PORT ... (to)".
    const json& before = run.last();
    std::string where;
    if (!s.alternative) {
      where = endpoint_text(text_of(before, "address"), before.value("port", json()));
    } else {
      const std::string text =
          s.address.empty() ? text_of(before, "AlternativeAddress") : s.address;
      auto parsed = tags::AlternativeAddress::parse(text);
      if (const auto* a = std::get_if<tags::AlternativeAddress>(&parsed)) {
        const json port = a->port ? json(*a->port) : before.value("port", json());
        where = endpoint_text(a->ip_address, port);
      }
    }
    const std::string suffix = "(" + to + ")";
    const auto arrived = [&](const json& c) {
      const std::string current = text_of(c, "CurrentAddress");
      return state_of(c) == 2 && ends_with(current, suffix) &&
             (where.empty() || current.rfind(where + " ", 0) == 0);
    };
    const std::string arrived_words =
        "ConnectionState == 2 and CurrentAddress " + (where.empty() ? "" : where + " ") + suffix;

    if (s.hot && before.value("ForceConnectionState", json()) == 0) {
      throw OperationFailed(s.connection + " is forced down (" +
                            tags::system_tag_name(s.connection, tags::kForceConnectionState) +
                            " = 0): a hot switch needs it up; switch without --hot");
    }
    const std::string within = " within " + duration_text(s.timeout);
    std::string failure;
    try {
      bool ok = true;
      if (!s.hot) {
        run.write(tags::kForceConnectionState, 0);
        ok = run.wait("ConnectionState == 0", [](const json& c) { return state_of(c) == 0; });
        if (!ok) failure = "the connection did not go down" + within;
      }
      if (ok) {
        if (!s.address.empty()) run.write(tags::kAlternativeAddress, s.address);
        run.write(tags::kUseAlternativeAddress, s.alternative ? 1 : 0);
        if (!s.hot) run.write(tags::kForceConnectionState, 1);
        if (!run.wait(arrived_words, arrived)) failure = "not connected there" + within;
      }
    } catch (const OperationFailed& e) {
      failure = e.what();
    }

    const json& c = run.last();
    const std::string last_error = text_of(c, "LastError");
    if (o.json) {
      json report{{"connection", s.connection},
                  {"to", to},
                  {"ok", failure.empty()},
                  {"current_address", c.value("CurrentAddress", json())},
                  {"peer_certificate", c.value("PeerCertificate", json())},
                  {"last_error", c.value("LastError", json())},
                  {"steps", run.steps()}};
      if (!failure.empty()) report["error"] = failure;
      out << json_line(report) << std::endl;
    }
    if (failure.empty()) {
      if (!o.json) {
        out << s.connection << ": switched to the " << to << " address, "
            << text_of(c, "CurrentAddress") << "\n";
        if (const std::string peer = text_of(c, "PeerCertificate"); !peer.empty())
          out << "  certificate " << peer << "\n";
      }
      return 0;
    }
    err << "scadactl conn switch: " << s.connection << ": switch to the " << to
        << " address not done: " << failure << "; now " << tags::link_state_name(state_of(c))
        << ", " << text_of(c, "CurrentAddress") << "\n";
    if (!last_error.empty()) err << "  last error: " << last_error << "\n";
    if (const std::string fp = quarantined_fingerprint(last_error); !fp.empty()) {
      err << "  the PLC's certificate is quarantined: check it (scadactl cert list --kind "
             "quarantined) and trust it (scadactl cert trust "
          << fp.substr(0, 16) << "); the connection then comes up by itself\n";
    }
    err.flush();
    return 1;
  });
}

// ---- certificates

namespace {

// 64 hex digits or a prefix of at least 8, colons allowed: lower case without colons.
std::string normalized_fingerprint(const std::string& text) {
  std::string hex;
  for (char c : text) {
    if (c == ':') continue;
    if (!std::isxdigit(static_cast<unsigned char>(c))) hex = "!";
    if (hex == "!") break;
    hex += char(std::tolower(static_cast<unsigned char>(c)));
  }
  if (hex == "!" || hex.size() < 8 || hex.size() > 64) {
    throw UsageError(
        "FINGERPRINT takes the certificate's SHA-256 as hex digits (all 64, or a "
        "unique prefix of at least 8; colons allowed), not '" +
        text + "'");
  }
  return hex;
}

std::string cell(const json& v) {
  if (v.is_null()) return "-";
  if (v.is_array()) {
    std::string text;
    for (const json& e : v) text += (text.empty() ? "" : ", ") + shown(e);
    return text.empty() ? "-" : text;
  }
  return shown(v);
}

}  // namespace

int cert_list_command(const ClientOptions& o, const std::string& kind, std::ostream& out,
                      std::ostream& err) {
  return guarded("cert list", err, [&] {
    const Reply r = request(o, http::verb::get, "/api/certificates");
    require_ok(r);
    std::vector<std::vector<std::string>> rows{
        {"KIND", "FINGERPRINT", "DAYS", "SUBJECT", "FILE", "IN USE BY"}};
    for (const json& c : r.body.at("certificates")) {
      if (!kind.empty() && c.value("kind", json()) != kind) continue;
      if (o.json) {
        out << json_line(c) << "\n";
        continue;
      }
      const std::string fingerprint = cell(c.value("fingerprint", json())).substr(0, 16);
      std::string subject = cell(c.value("subject", json()));
      if (c.contains("problem")) {
        subject = "cannot be read: " + cell(c["problem"]);
      } else if (c.value("kind", json()) == "crl") {
        subject = "CRL of " + cell(c.value("issuer", json())) + ", " +
                  cell(c.value("revoked", json())) + " revoked, next update " +
                  cell(c.value("next_update", json()));
      }
      rows.push_back({cell(c.value("kind", json())), fingerprint,
                      cell(c.value("days_left", json())), subject, cell(c.value("file", json())),
                      cell(c.value("in_use_by", json()))});
    }
    if (o.json) return 0;
    std::vector<std::size_t> width(rows[0].size(), 0);
    for (const auto& row : rows) {
      for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
    }
    for (const auto& row : rows) {
      std::string line;
      for (std::size_t i = 0; i < row.size(); ++i) {
        line += row[i];
        if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
      }
      out << line << "\n";
    }
    return 0;
  });
}

int cert_trust_command(const ClientOptions& o, const std::string& fingerprint, bool trust,
                       std::ostream& out, std::ostream& err) {
  const char* command = trust ? "cert trust" : "cert untrust";
  return guarded(command, err, [&] {
    const std::string hex = normalized_fingerprint(fingerprint);
    const Reply r = request(o, http::verb::post,
                            trust ? "/api/certificates/trust" : "/api/certificates/untrust",
                            nlohmann::json{{"fingerprint", hex}}.dump());
    require_ok(r);
    if (o.json) {
      out << json_line(r.body) << "\n";
      return 0;
    }
    out << (trust ? "trusted: " : "untrusted: ") << cell(r.body.value("subject", json()))
        << "\n  SHA-256 " << cell(r.body.value("fingerprint", json())) << "\n  moved from "
        << (trust ? "untrusted/" : "trusted/") << " to " << cell(r.body.value("file", json()))
        << "\n";
    if (!trust) out << "  sessions presenting it are closed; it is no longer trusted\n";
    return 0;
  });
}

// ---- events

int events_command(const ClientOptions& o, const EventsOptions& e, std::ostream& out,
                   std::ostream& err) {
  return guarded("events", err, [&] {
    std::optional<StopSignals> signals;
    if (e.follow) signals.emplace();  // before the first request: a signal from now on counts
    std::int64_t last_id = 0;
    // Prints what is new (ids above last_id: a scadad that ignores ?after= repeats nothing);
    // the number of events the answer held.
    const auto show = [&](const Reply& r, bool print) {
      require_ok(r);
      const json& events = r.body.at("events");
      for (const json& event : events) {
        const std::int64_t id = event.value("id", std::int64_t(0));
        if (id <= last_id) continue;
        last_id = std::max(last_id, id);
        if (!print || (!e.kind.empty() && event.value("kind", json()) != e.kind)) continue;
        if (o.json) {
          out << json_line(event) << "\n";
        } else {
          out << shown(event.value("time", json())) << " " << shown(event.value("kind", json()))
              << " " << shown(event.value("subject", json())) << ": "
              << shown(event.value("detail", json())) << "\n";
        }
      }
      out.flush();
      return events.size();
    };
    show(request(o, http::verb::get,
                 "/api/events?last=" + std::to_string(std::max<std::size_t>(e.last, 1))),
         e.last > 0);
    if (!e.follow) return 0;

    constexpr std::size_t kPage = 1000;
    constexpr std::chrono::milliseconds kPoll{300};
    const auto end = std::chrono::steady_clock::now() + e.duration;
    for (;;) {
      auto pause = kPoll;
      if (e.duration.count() > 0) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            end - std::chrono::steady_clock::now());
        if (left.count() <= 0) return 0;
        pause = std::min(pause, left);
      }
      if (signals->wait(pause)) return 0;
      // A full page means more are waiting: fetch again at once.
      while (show(request(o, http::verb::get,
                          "/api/events?after=" + std::to_string(last_id) +
                              "&last=" + std::to_string(kPage)),
                  true) >= kPage) {
      }
    }
  });
}

}  // namespace scada::runtime
