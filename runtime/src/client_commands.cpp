// scadactl's commands that talk to a running scadad over its control API (runtime.h).
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <ostream>

#include "json_line.h"
#include "runtime/runtime.h"
#include "tags/tags.h"

namespace scada::runtime {

namespace {

namespace http = boost::beast::http;
using json = nlohmann::ordered_json;

struct Reply {
  int status = 0;
  json body;
};

// "http://127.0.0.1:8700", "127.0.0.1:8700" or "[::1]:8700" -> host, port; nothing if not.
std::optional<std::pair<std::string, std::string>> split_api(std::string api) {
  if (api.rfind("http://", 0) == 0) api = api.substr(7);
  while (!api.empty() && api.back() == '/') api.pop_back();
  const auto colon = api.rfind(':');
  if (colon == std::string::npos || colon + 1 == api.size()) return std::nullopt;
  std::string host = api.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string port = api.substr(colon + 1);
  if (host.empty() || port.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  return std::make_pair(host, port);
}

// One request; throws std::runtime_error with words when scadad cannot be reached.
Reply request(const ClientOptions& o, http::verb verb, const std::string& target,
              const std::string& body = "") {
  const auto where = split_api(o.api);
  if (!where) throw std::invalid_argument("--api takes http://HOST:PORT, not '" + o.api + "'");
  boost::asio::io_context io;
  boost::beast::tcp_stream stream(io);
  stream.expires_after(o.timeout);
  boost::system::error_code ec;
  boost::asio::ip::tcp::resolver resolver(io);
  const auto endpoints = resolver.resolve(where->first, where->second, ec);
  if (!ec) stream.connect(endpoints, ec);
  if (ec) {
    throw std::runtime_error("cannot reach scadad at " + o.api + ": " + ec.message() +
                             " (is it running with --api?)");
  }
  http::request<http::string_body> req(verb, target, 11);
  req.set(http::field::host, where->first);
  req.set(http::field::content_type, "application/json");
  req.body() = body;
  req.prepare_payload();
  http::write(stream, req, ec);
  boost::beast::flat_buffer buffer;
  http::response<http::string_body> res;
  if (!ec) http::read(stream, buffer, res, ec);
  if (ec) throw std::runtime_error("scadad at " + o.api + " did not answer: " + ec.message());
  return {int(res.result_int()), json::parse(res.body(), nullptr, false)};
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
  return v.is_string() ? v.get<std::string>() : v.dump();
}

// Runs f, mapping failures to the documented exit codes: 2 usage, 3 scadad not reachable.
template <class F>
int guarded(const char* command, std::ostream& err, F f) {
  try {
    return f();
  } catch (const std::invalid_argument& e) {
    err << "scadactl " << command << ": " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    err << "scadactl " << command << ": " << e.what() << "\n";
    return 3;
  }
}

int api_error(const char* command, const Reply& r, std::ostream& err) {
  const std::string message = r.body.is_object() && r.body.contains("error")
                                  ? shown(r.body["error"])
                                  : "HTTP " + std::to_string(r.status);
  err << "scadactl " << command << ": " << message << "\n";
  return 1;
}

}  // namespace

int tag_get_command(const ClientOptions& o, const std::vector<std::string>& names,
                    std::ostream& out, std::ostream& err) {
  return guarded("tag get", err, [&] {
    std::string target = "/api/tags";
    for (std::size_t i = 0; i < names.size(); ++i) {
      target += (i == 0 ? "?name=" : "&name=") + percent_encoded(names[i]);
    }
    const Reply r = request(o, http::verb::get, target);
    if (r.status != 200) return api_error("tag get", r, err);
    bool all_good = true;
    for (const json& t : r.body["tags"]) {
      all_good &= t["quality"] == "good";
      if (o.json) {
        nlohmann::ordered_json line;
        for (const char* key :
             {"name", "value", "quality", "reason", "detail", "source_time", "server_time"}) {
          if (t.contains(key)) line[key] = t[key];
        }
        out << json_line(line) << "\n";
      } else {
        out << shown(t["name"]) << " = " << shown(t["value"]) << " (" << shown(t["quality"]);
        if (t.contains("reason")) out << ": " << shown(t["reason"]) << ", " << shown(t["detail"]);
        out << ")\n";
      }
    }
    return all_good ? 0 : 1;
  });
}

int tag_set_command(const ClientOptions& o, const std::string& name, const std::string& value,
                    std::ostream& out, std::ostream& err) {
  return guarded("tag set", err, [&] {
    const nlohmann::json body{{"name", name},
                              {"value", value}};  // converted by scadad to the tag's type
    const Reply r = request(o, http::verb::post, "/api/tags", body.dump());
    if (r.status != 200) return api_error("tag set", r, err);
    const json& result = r.body["results"][0];
    if (o.json) out << json_line(result) << "\n";
    if (result["ok"] != true) {
      err << "scadactl tag set: " << shown(result["error"]) << "\n";
      return 1;
    }
    if (!o.json) out << name << " = " << value << ": written\n";
    return 0;
  });
}

int conn_list_command(const ClientOptions& o, std::ostream& out, std::ostream& err) {
  return guarded("conn list", err, [&] {
    const Reply r = request(o, http::verb::get, "/api/connections");
    if (r.status != 200) return api_error("conn list", r, err);
    for (const json& c : r.body["connections"]) {
      if (o.json) {
        out << json_line(c) << "\n";
        continue;
      }
      const std::int64_t state =
          c["ConnectionState"].is_number() ? c["ConnectionState"].get<std::int64_t>() : -1;
      out << shown(c["name"]) << ": " << tags::link_state_name(state) << ", "
          << shown(c["CurrentAddress"]);
      if (c["UseAlternativeAddress"] == 1) out << ", using the alternative";
      if (!c["PeerCertificate"].is_null() && c["PeerCertificate"] != "") {
        out << "\n  certificate " << shown(c["PeerCertificate"]);
        if (c["CertificateDaysLeft"].is_number())
          out << ", " << c["CertificateDaysLeft"] << " days left";
      }
      if (c["LastError"] != "") out << "\n  last error: " << shown(c["LastError"]);
      out << "\n";
    }
    return 0;
  });
}

int events_command(const ClientOptions& o, std::size_t last, std::ostream& out, std::ostream& err) {
  return guarded("events", err, [&] {
    const Reply r = request(o, http::verb::get, "/api/events?last=" + std::to_string(last));
    if (r.status != 200) return api_error("events", r, err);
    for (const json& e : r.body["events"]) {
      if (o.json) {
        out << json_line(e) << "\n";
      } else {
        out << shown(e["time"]) << " " << shown(e["kind"]) << " " << shown(e["subject"]) << ": "
            << shown(e["detail"]) << "\n";
      }
    }
    return 0;
  });
}

}  // namespace scada::runtime
