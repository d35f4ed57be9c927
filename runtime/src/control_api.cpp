// ControlApi (control_api.h).
#include "control_api.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <future>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "json_line.h"

namespace scada::runtime {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace {

constexpr std::array<std::string_view, 8> kSystemTags{
    tags::kForceConnectionState, tags::kAlternativeAddress, tags::kUseAlternativeAddress,
    tags::kConnectionStateTag,   tags::kCurrentAddress,     tags::kLastError,
    tags::kPeerCertificate,      tags::kCertificateDaysLeft};

ordered_json value_json(const tags::TypeSpec& type, const tags::Value& value) {
  switch (value.index()) {
    case 0:
      return std::get<bool>(value);
    case 1:
      return std::get<std::int64_t>(value);
    case 2:
      // A Real as the float it is: the shortest text that reads back as that float.
      if (type.type == tags::DataType::Real) {
        return std::stod(tags::value_to_string(type, value));
      }
      return std::get<double>(value);
    default:
      return std::get<std::string>(value);
  }
}

// A tag's time stamp in UTC with milliseconds: "2026-11-22T08:00:00.123Z".
std::string stamp_text(tags::SystemTime t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch());
  const auto seconds = std::chrono::floor<std::chrono::seconds>(t);
  std::string text = certstore::time_text(seconds);
  char fraction[8];
  std::snprintf(fraction, sizeof fraction, ".%03d", int(ms.count() % 1000));
  return text.substr(0, text.size() - 1) + fraction + "Z";
}

// A tag as the API shows it.
ordered_json tag_json(const tags::TagConfig& config, const tags::TagState& state) {
  ordered_json j;
  j["name"] = config.name;
  j["value"] = value_json(config.type, state.value);
  j["quality"] = tags::quality_name(state.quality);
  if (state.quality != tags::Quality::good) {
    j["reason"] = tags::quality_reason_name(state.reason);
    j["detail"] = state.detail;
  }
  j["source_time"] = state.source_time == tags::SystemTime{}
                         ? ordered_json(nullptr)
                         : ordered_json(stamp_text(state.source_time));
  j["server_time"] = stamp_text(state.server_time);
  j["type"] = config.type.to_string();
  j["access"] = config.access == tags::Access::read_write ? "rw" : "r";
  return j;
}

ApiResponse json_response(int status, const ordered_json& body) {
  return {status, "application/json", json_line(body) + "\n"};
}

ApiResponse error_response(int status, const std::string& message) {
  return json_response(status, ordered_json{{"error", message}});
}

std::string project_relative(const fs::path& file, const fs::path& project) {
  return file.lexically_relative(project).generic_string();
}

bool certificate_name(const fs::path& file) {
  const std::string name = file.filename().string();
  if (name.empty() || name.front() == '.') return false;
  const std::string ext = file.extension().string();
  return ext == ".der" || ext == ".pem" || ext == ".crt" || ext == ".cer";
}

std::vector<fs::path> files_in(const fs::path& folder) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    if (entry.is_regular_file(ec) && certificate_name(entry.path())) out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The certificates in pki/own (the first of each file: its leaf); keys and PSK files there
// are not certificates and are skipped.
std::vector<certstore::CertificateInfo> own_certificates(const fs::path& folder) {
  std::vector<certstore::CertificateInfo> out;
  for (const fs::path& file : files_in(folder)) {
    auto read = certstore::read_certificate_file(file);
    if (auto* list = std::get_if<std::vector<certstore::CertificateInfo>>(&read)) {
      if (!list->empty()) out.push_back(list->front());
    }
  }
  return out;
}

// A fingerprint as typed: 8 to 64 hex digits, colons and spaces ignored, any case.
std::optional<std::string> fingerprint_prefix(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == ':' || c == ' ') continue;
    if (!std::isxdigit(static_cast<unsigned char>(c))) return std::nullopt;
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (out.size() < 8 || out.size() > 64) return std::nullopt;
  return out;
}

std::string label_value(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// "PLC1" -> "@PLC1@ConnectionState" read as an integer, if good.
std::optional<std::int64_t> system_integer(const tags::TagServer& server,
                                           const std::string& connection, std::string_view tag) {
  auto state = server.read(tags::system_tag_name(connection, tag));
  if (!state || state->quality != tags::Quality::good) return std::nullopt;
  if (auto* i = std::get_if<std::int64_t>(&state->value)) return *i;
  return std::nullopt;
}

// The WebSocket tag stream of one client. Subscribing sends the current state, then every
// change in order: updates that arrive while the current state is read are held back and
// only those newer than it follow it.
class TagStream : public WsListener {
 public:
  TagStream(tags::TagServer& server, std::weak_ptr<WsSender> sender)
      : server_(server), state_(std::make_shared<State>()) {
    state_->sender = std::move(sender);
    connection_ = server_.subscribe([state = state_](const tags::TagUpdate& u) {
      if (!u.changed) return;
      std::lock_guard<std::mutex> lock(state->mutex);
      auto it = state->subscribed.find(u.name);
      if (it == state->subscribed.end()) return;
      if (it->second.pending) {
        it->second.held.push_back(u.state);
      } else {
        state->send(tag_message(it->second.config, u.state));
      }
    });
  }
  ~TagStream() override { connection_.disconnect(); }

  void on_message(const std::string& text) override {
    const auto message = nlohmann::json::parse(text, nullptr, false);
    const bool subscribe = message.is_object() && message.contains("subscribe");
    const bool unsubscribe = message.is_object() && message.contains("unsubscribe");
    // One of the two: a message naming both is neither documented form (and its names would
    // be taken from one key for the action of the other).
    const auto* names = subscribe == unsubscribe ? nullptr
                        : subscribe              ? &message["subscribe"]
                                                 : &message["unsubscribe"];
    if (!names || !names->is_array() ||
        !std::all_of(names->begin(), names->end(), [](const auto& n) { return n.is_string(); })) {
      return error(
          "send {\"subscribe\": [\"NAME\", ...]} or {\"unsubscribe\": [\"NAME\", ...]} as text");
    }
    if (unsubscribe) {
      std::lock_guard<std::mutex> lock(state_->mutex);
      for (const auto& n : *names) state_->subscribed.erase(n.get<std::string>());
      return;
    }
    std::vector<std::pair<std::string, tags::TagConfig>> known;
    for (const auto& n : *names) {
      const std::string name = n.get<std::string>();
      if (auto config = server_.tag_config(name)) {
        known.emplace_back(name, std::move(*config));
      } else {
        error("no tag named '" + name + "'");
      }
    }
    ordered_json list = ordered_json::array();
    {
      std::lock_guard<std::mutex> lock(state_->mutex);
      for (const auto& [name, config] : known) {
        state_->subscribed[name] = Subscription{config, true, {}};
        list.push_back(name);
      }
      state_->send(json_line(ordered_json{{"type", "subscribed"}, {"names", list}}));
    }
    for (const auto& [name, config] : known) {
      const auto now = server_.read(name);
      std::lock_guard<std::mutex> lock(state_->mutex);
      auto it = state_->subscribed.find(name);
      if (it == state_->subscribed.end() || !it->second.pending) continue;
      if (now) state_->send(tag_message(config, *now));
      for (const tags::TagState& held : it->second.held) {
        if (!now || held.server_time > now->server_time) state_->send(tag_message(config, held));
      }
      it->second.held.clear();
      it->second.pending = false;
    }
  }

 private:
  struct Subscription {
    tags::TagConfig config;
    bool pending = true;  // the current state is being read
    std::vector<tags::TagState> held;
  };
  struct State {
    std::mutex mutex;
    std::weak_ptr<WsSender> sender;
    std::map<std::string, Subscription, std::less<>> subscribed;
    void send(std::string text) {
      if (auto s = sender.lock()) s->send(std::move(text));
    }
  };

  static std::string tag_message(const tags::TagConfig& config, const tags::TagState& state) {
    return json_line(ordered_json{{"type", "tag"}, {"tag", tag_json(config, state)}});
  }

  void error(const std::string& text) {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->send(json_line(ordered_json{{"type", "error"}, {"error", text}}));
  }

  tags::TagServer& server_;
  std::shared_ptr<State> state_;
  boost::signals2::connection connection_;
};

}  // namespace

ControlApi::ControlApi(tags::TagServer& server, certstore::CertificateStore& store,
                       ProjectState& project, Log& log)
    : server_(server), store_(store), project_(project), log_(log) {}

ApiResponse ControlApi::handle(const ApiRequest& r) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++requests_;
  }
  if (r.path == "/metrics") {
    if (r.method != "GET") return error_response(405, "/metrics takes GET");
    return {200, "text/plain; version=0.0.4; charset=utf-8", metrics_text()};
  }
  if (r.path == "/api/tags") {
    if (r.method == "GET") return get_tags(r);
    if (r.method == "POST") return post_tags(r);
    return error_response(405, "/api/tags takes GET or POST");
  }
  if (r.path == "/api/connections") {
    if (r.method == "GET") return get_connections();
    return error_response(405, "/api/connections takes GET");
  }
  if (r.path == "/api/certificates") {
    if (r.method == "GET") return get_certificates();
    return error_response(405, "/api/certificates takes GET");
  }
  if (r.path == "/api/certificates/trust" || r.path == "/api/certificates/untrust") {
    if (r.method == "POST") return move_certificate(r, r.path == "/api/certificates/trust");
    return error_response(405, r.path + " takes POST");
  }
  if (r.path == "/api/events") {
    if (r.method == "GET") return get_events(r);
    return error_response(405, "/api/events takes GET");
  }
  return error_response(404, "no such API: " + r.method + " " + r.path +
                                 " (see the README: /api/tags, /api/connections, "
                                 "/api/certificates, /api/events, /api/ws, /metrics)");
}

ApiResponse ControlApi::get_tags(const ApiRequest& r) {
  std::vector<std::string> names = query_values(r.query, "name");
  if (names.empty()) names = server_.tag_names();
  ordered_json list = ordered_json::array();
  for (const std::string& name : names) {
    auto config = server_.tag_config(name);
    auto state = server_.read(name);
    if (!config || !state) return error_response(404, "no tag named '" + name + "'");
    list.push_back(tag_json(*config, *state));
  }
  return json_response(200, ordered_json{{"tags", list}});
}

ApiResponse ControlApi::post_tags(const ApiRequest& r) {
  const auto body = nlohmann::json::parse(r.body, nullptr, false);
  const char* usage =
      "the body must be a JSON object: {\"name\": ..., \"value\": ...} or {\"writes\": "
      "[{\"name\": ..., \"value\": ...}, ...]}";
  if (body.is_discarded()) return error_response(400, std::string("malformed JSON; ") + usage);
  if (!body.is_object()) return error_response(400, usage);
  const bool batch = body.contains("writes");
  if (batch && !body["writes"].is_array()) return error_response(400, "\"writes\" must be a list");
  std::vector<nlohmann::json> writes;
  if (batch) {
    for (const auto& w : body["writes"]) writes.push_back(w);
  } else {
    writes.push_back(body);
  }
  ordered_json results = ordered_json::array();
  for (const auto& w : writes) {
    // status 200 and nothing, or an error status and why.
    const auto write_one = [&](std::string& name) -> std::pair<int, std::string> {
      if (!w.is_object() || !w.contains("name") || !w["name"].is_string() || !w.contains("value")) {
        return {400, "each write needs \"name\" (text) and \"value\""};
      }
      name = w["name"].get<std::string>();
      const auto& v = w["value"];
      const auto config = server_.tag_config(name);
      if (!config) return {404, "no tag named '" + name + "'"};
      if (config->access != tags::Access::read_write) return {403, name + " is read-only"};
      std::optional<tags::Value> value;
      if (v.is_boolean()) {
        value = v.get<bool>();
      } else if (v.is_number_integer()) {
        value = v.get<std::int64_t>();
      } else if (v.is_number()) {
        value = v.get<double>();
      } else if (!v.is_string()) {
        return {400, "value must be a number, true/false or text"};
      }
      if (value) {
        tags::Value checked = *value;
        const auto t = config->type.type;
        if (auto* i = std::get_if<std::int64_t>(&checked);
            i && (t == tags::DataType::Real || t == tags::DataType::LReal)) {
          checked = double(*i);
        }
        if (auto encoded = tags::encode_value(config->type, checked);
            auto* why = std::get_if<std::string>(&encoded)) {
          return {422, name + ": " + *why};
        }
      } else if (auto parsed = tags::parse_value(config->type, v.get<std::string>());
                 auto* why = std::get_if<std::string>(&parsed)) {
        return {422, name + ": " + *why};
      }
      auto promise = std::make_shared<std::promise<tags::WriteResult>>();
      auto future = promise->get_future();
      const auto done = [promise](tags::WriteResult result) { promise->set_value(result); };
      if (value) {
        server_.write(name, *value, done);
      } else {
        server_.write_text(name, v.get<std::string>(), done);
      }
      tags::WriteResult result =
          name + ": not confirmed within 15 s, the value may or may not be written";
      if (future.wait_for(std::chrono::seconds(15)) == std::future_status::ready)
        result = future.get();
      const std::string shown = v.is_string() ? v.get<std::string>() : v.dump();
      log_(result ? Level::warning : Level::info, "api: " + r.origin + " wrote " + name + " = " +
                                                      shown + ": " + (result ? *result : "ok"));
      project_.record("tag-write", name,
                      shown + " by " + r.origin + ": " + (result ? *result : "ok"));
      if (result) return {502, *result};
      return {200, ""};
    };
    std::string name;
    const auto [status, error] = write_one(name);
    if (!batch && status != 200) return error_response(status, error);
    ordered_json entry{{"name", name}, {"ok", status == 200}};
    if (status != 200) entry["error"] = error;
    results.push_back(entry);
  }
  return json_response(200, ordered_json{{"results", results}});
}

ApiResponse ControlApi::get_connections() {
  ordered_json list = ordered_json::array();
  for (const importer::ProjectConnection& c : project_.running()) {
    ordered_json entry{{"name", c.name},
                       {"mode", channel::security_mode_name(c.security)},
                       {"address", c.address},
                       {"port", c.port}};
    for (std::string_view tag : kSystemTags) {
      const std::string name = tags::system_tag_name(c.name, tag);
      auto state = server_.read(name);
      auto config = server_.tag_config(name);
      if (!state || !config) continue;
      entry[std::string(tag)] = state->quality == tags::Quality::good
                                    ? value_json(config->type, state->value)
                                    : ordered_json(nullptr);
    }
    list.push_back(entry);
  }
  return json_response(200, ordered_json{{"connections", list}});
}

ApiResponse ControlApi::get_certificates() {
  const certstore::StoreLayout layout = store_.layout();
  const fs::path& project = project_.dir();
  const auto now = std::chrono::system_clock::now();
  // Which live session presents which certificate.
  std::map<std::string, std::vector<std::string>> in_use;
  for (const importer::ProjectConnection& c : project_.running()) {
    if (system_integer(server_, c.name, tags::kConnectionStateTag) != 2) continue;
    auto info = server_.connection_info(c.name);
    if (info && info->peer_certificate) in_use[info->peer_certificate->sha256].push_back(c.name);
    if (info && !info->own_certificate_sha256.empty())
      in_use[info->own_certificate_sha256].push_back(c.name);
  }
  ordered_json list = ordered_json::array();
  const auto certificates = [&](const char* kind, const fs::path& folder, bool skip_problems) {
    for (const fs::path& file : files_in(folder)) {
      auto read = certstore::read_certificate_file(file);
      if (auto* error = std::get_if<certstore::FileError>(&read)) {
        if (!skip_problems) {
          list.push_back({{"kind", kind},
                          {"file", project_relative(file, project)},
                          {"problem", error->reason}});
        }
        continue;
      }
      for (const certstore::CertificateInfo& c :
           std::get<std::vector<certstore::CertificateInfo>>(read)) {
        ordered_json users = ordered_json::array();
        if (auto it = in_use.find(c.sha256); it != in_use.end()) {
          for (const auto& name : it->second) users.push_back(name);
        }
        list.push_back({{"kind", kind},
                        {"file", project_relative(file, project)},
                        {"fingerprint", c.sha256},
                        {"subject", c.subject},
                        {"issuer", c.issuer},
                        {"serial", c.serial_hex},
                        {"not_before", certstore::time_text(c.not_before)},
                        {"not_after", certstore::time_text(c.not_after)},
                        {"days_left", c.days_until_expiry(now)},
                        {"self_signed", c.self_signed},
                        {"is_ca", c.is_ca},
                        {"in_use_by", users}});
      }
    }
  };
  certificates("trusted", layout.trusted(), false);
  certificates("quarantined", layout.untrusted(), false);
  certificates("root", layout.roots, false);
  // pki/own also holds private keys and PSK files: only certificates are listed.
  certificates("own", layout.own, true);
  for (const fs::path& file : files_in(layout.crl())) {
    auto read = certstore::read_crl_file(file);
    if (auto* error = std::get_if<certstore::FileError>(&read)) {
      list.push_back(
          {{"kind", "crl"}, {"file", project_relative(file, project)}, {"problem", error->reason}});
      continue;
    }
    const auto& crl = std::get<certstore::CrlInfo>(read);
    list.push_back(
        {{"kind", "crl"},
         {"file", project_relative(file, project)},
         {"fingerprint", crl.sha256},
         {"issuer", crl.issuer},
         {"this_update", certstore::time_text(crl.this_update)},
         {"next_update", crl.next_update ? ordered_json(certstore::time_text(*crl.next_update))
                                         : ordered_json(nullptr)},
         {"revoked", crl.revoked_serials_hex.size()}});
  }
  return json_response(200, ordered_json{{"certificates", list}});
}

ApiResponse ControlApi::move_certificate(const ApiRequest& r, bool trust) {
  const auto body = nlohmann::json::parse(r.body, nullptr, false);
  if (body.is_discarded() || !body.is_object() || !body.contains("fingerprint") ||
      !body["fingerprint"].is_string()) {
    return error_response(400, "the body must be {\"fingerprint\": \"<SHA-256 hex>\"}");
  }
  const auto prefix = fingerprint_prefix(body["fingerprint"].get<std::string>());
  if (!prefix) {
    return error_response(400,
                          "fingerprint must be 8 to 64 hex digits of the SHA-256 "
                          "(colons allowed), as `scadactl cert list` shows it");
  }
  const certstore::StoreLayout layout = store_.layout();
  const fs::path from = trust ? layout.untrusted() : layout.trusted();
  const fs::path to = trust ? layout.trusted() : layout.untrusted();
  const char* where = trust ? "quarantined (untrusted/)" : "trusted (trusted/)";
  std::map<std::string, std::pair<fs::path, std::string>> matches;  // sha256 -> file, subject
  for (const fs::path& file : files_in(from)) {
    auto read = certstore::read_certificate_file(file);
    auto* list = std::get_if<std::vector<certstore::CertificateInfo>>(&read);
    if (!list || list->empty()) continue;
    const auto& leaf = list->front();
    if (leaf.sha256.rfind(*prefix, 0) == 0) matches.try_emplace(leaf.sha256, file, leaf.subject);
  }
  if (matches.empty()) {
    return error_response(404, "no " + std::string(where) + " certificate with fingerprint " +
                                   *prefix + (trust ? "" : "..."));
  }
  if (matches.size() > 1) {
    return error_response(409, "fingerprint " + *prefix + " matches " +
                                   std::to_string(matches.size()) +
                                   " certificates; give more digits");
  }
  const auto& [sha256, found] = *matches.begin();
  const fs::path target = to / found.first.filename();
  std::error_code ec;
  if (fs::exists(target, ec)) {
    return error_response(409, project_relative(target, project_.dir()) + " exists already");
  }
  fs::rename(found.first, target, ec);
  if (ec) {
    return error_response(500, "cannot move " + project_relative(found.first, project_.dir()) +
                                   " to " + project_relative(target, project_.dir()) + ": " +
                                   ec.message());
  }
  const std::string what = std::string(trust ? "trusted" : "untrusted") + " " + found.second +
                           " (SHA-256 " + sha256 + "): moved " +
                           project_relative(found.first, project_.dir()) + " to " +
                           project_relative(target, project_.dir()) + " by " + r.origin;
  log_(Level::info, "api: " + what);
  project_.record(trust ? "trust" : "untrust", found.second, what);
  return json_response(200, ordered_json{{"fingerprint", sha256},
                                         {"subject", found.second},
                                         {"file", project_relative(target, project_.dir())}});
}

ApiResponse ControlApi::get_events(const ApiRequest& r) {
  const auto number = [&](const char* key, std::int64_t fallback,
                          std::int64_t most) -> std::optional<std::int64_t> {
    auto v = query_values(r.query, key);
    if (v.empty()) return fallback;
    if (v[0].empty() || v[0].size() > 18 ||
        v[0].find_first_not_of("0123456789") != std::string::npos)
      return std::nullopt;
    return std::min<std::int64_t>(std::stoll(v[0]), most);
  };
  const auto last = number("last", 100, 10000);
  const auto after = number("after", -1, std::numeric_limits<std::int64_t>::max());
  if (!last || !after) return error_response(400, "last and after must be whole numbers");
  const auto events = query_values(r.query, "after").empty()
                          ? project_.last_events(std::size_t(*last))
                          : project_.events_after(*after, std::size_t(*last));
  ordered_json list = ordered_json::array();
  for (const auto& e : events) {
    list.push_back({{"id", e.id},
                    {"time", e.time},
                    {"kind", e.kind},
                    {"subject", e.subject},
                    {"detail", e.detail}});
  }
  return json_response(200, ordered_json{{"events", list}});
}

std::unique_ptr<WsListener> ControlApi::open_websocket(std::weak_ptr<WsSender> sender,
                                                       const ApiRequest& r) {
  log_(Level::debug, "api: WebSocket from " + r.origin);
  return std::make_unique<TagStream>(server_, std::move(sender));
}

void ControlApi::sample() {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mutex_);
  for (const importer::ProjectConnection& c : project_.running()) {
    auto stats = server_.statistics(c.name);
    if (!stats) continue;
    Rate& rate = rates_[c.name];
    if (rate.at != std::chrono::steady_clock::time_point{} && stats->values >= rate.values) {
      const double seconds = std::chrono::duration<double>(now - rate.at).count();
      if (seconds > 0) rate.per_second = double(stats->values - rate.values) / seconds;
    }
    rate.values = stats->values;
    rate.at = now;
  }
}

void ControlApi::check_expiry() {
  std::vector<certstore::CertificateInfo> in_use;
  for (const importer::ProjectConnection& c : project_.running()) {
    auto info = server_.connection_info(c.name);
    if (info && info->peer_certificate &&
        system_integer(server_, c.name, tags::kConnectionStateTag) == 2) {
      in_use.push_back(*info->peer_certificate);
    }
  }
  for (auto& c : own_certificates(store_.layout().own)) in_use.push_back(std::move(c));
  store_.check_expiry(in_use, std::chrono::system_clock::now());
}

std::string ControlApi::metrics_text() const {
  std::ostringstream out;
  out.imbue(std::locale::classic());
  const auto family = [&](const char* name, const char* type, const char* help) {
    out << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
  };
  const auto connections = project_.running();
  std::map<std::string, tags::LinkStatistics> stats;
  for (const auto& c : connections) {
    if (auto s = server_.statistics(c.name)) stats.emplace(c.name, std::move(*s));
  }
  const auto labels = [](const std::string& connection) {
    return "{connection=\"" + label_value(connection) + "\"}";
  };

  family("scada_connection_state", "gauge",
         "Connection state: 0 disabled, 1 connecting, 2 connected, 3 error (waiting to retry).");
  for (const auto& c : connections) {
    if (auto s = system_integer(server_, c.name, tags::kConnectionStateTag))
      out << "scada_connection_state" << labels(c.name) << " " << *s << "\n";
  }
  family("scada_connection_sessions_total", "counter",
         "Sessions that came up: the first connect, every reconnect and switch.");
  for (const auto& [name, s] : stats)
    out << "scada_connection_sessions_total" << labels(name) << " " << s.sessions_up << "\n";
  family("scada_connection_switches_total", "counter", "Make-before-break switches completed.");
  for (const auto& [name, s] : stats)
    out << "scada_connection_switches_total" << labels(name) << " " << s.switches << "\n";
  family("scada_handshake_failures_total", "counter",
         "Failed connection attempts and ended sessions, by reason.");
  for (const auto& [name, s] : stats) {
    for (const auto& [reason, count] : s.failures) {
      out << "scada_handshake_failures_total{connection=\"" << label_value(name) << "\",reason=\""
          << label_value(reason) << "\"} " << count << "\n";
    }
  }
  const auto histogram = [&](const char* name, const char* help,
                             tags::LinkStatistics::Histogram tags::LinkStatistics::*member) {
    family(name, "histogram", help);
    for (const auto& [connection, s] : stats) {
      const auto& h = s.*member;
      std::uint64_t cumulative = 0;
      const std::string l = "connection=\"" + label_value(connection) + "\"";
      for (std::size_t i = 0; i < h.buckets.size(); ++i) {
        cumulative += h.buckets[i];
        out << name << "_bucket{" << l << ",le=\"" << tags::LinkStatistics::Histogram::bounds[i]
            << "\"} " << cumulative << "\n";
      }
      out << name << "_bucket{" << l << ",le=\"+Inf\"} " << h.count << "\n";
      out << name << "_sum{" << l << "} " << h.sum_seconds << "\n";
      out << name << "_count{" << l << "} " << h.count << "\n";
    }
  };
  histogram("scada_request_rtt_seconds",
            "Round-trip time of Read Var and Write Var requests, sent to answered.",
            &tags::LinkStatistics::rtt);
  histogram("scada_cycle_lateness_seconds",
            "How late acquisition cycles began after they were due (while connected).",
            &tags::LinkStatistics::lateness);
  family("scada_tags_read_total", "counter", "Fresh tag values read from the PLC.");
  for (const auto& [name, s] : stats)
    out << "scada_tags_read_total" << labels(name) << " " << s.values << "\n";
  family("scada_read_requests_total", "counter", "Read Var requests sent by acquisition cycles.");
  for (const auto& [name, s] : stats)
    out << "scada_read_requests_total" << labels(name) << " " << s.requests << "\n";
  family("scada_read_failures_total", "counter",
         "Acquisition Read Var requests that brought no values, by reason (the job's failure "
         "reason, plc-refused or bad-reply).");
  for (const auto& [name, s] : stats) {
    for (const auto& [reason, count] : s.failed_reads) {
      out << "scada_read_failures_total{connection=\"" << label_value(name) << "\",reason=\""
          << label_value(reason) << "\"} " << count << "\n";
    }
  }
  family("scada_tag_read_errors_total", "counter",
         "Tag values in answered reads that the PLC refused or that did not decode.");
  for (const auto& [name, s] : stats)
    out << "scada_tag_read_errors_total" << labels(name) << " " << s.tag_errors << "\n";
  family("scada_acquisition_overruns_total", "counter",
         "Acquisition cycles skipped because the previous one still ran.");
  for (const auto& [name, s] : stats)
    out << "scada_acquisition_overruns_total" << labels(name) << " " << s.overruns << "\n";
  {
    std::lock_guard<std::mutex> lock(mutex_);
    family("scada_tags_read_per_second", "gauge",
           "Fresh tag values per second over the last few seconds.");
    for (const auto& [name, rate] : rates_) {
      if (stats.count(name)) {
        out << "scada_tags_read_per_second" << labels(name) << " " << rate.per_second << "\n";
      }
    }
  }

  // Days to expiry of every certificate in use: the PLCs' (live sessions), the own ones, the
  // imported roots and the pinned PLC certificates.
  family("scada_certificate_days_left", "gauge",
         "Whole days until the certificate expires (negative once expired).");
  const auto now = std::chrono::system_clock::now();
  const auto days = [&](const char* kind, const certstore::CertificateInfo& c,
                        const std::string& connection) {
    out << "scada_certificate_days_left{kind=\"" << kind << "\",fingerprint=\"" << c.sha256
        << "\",subject=\"" << label_value(c.subject) << "\"";
    if (!connection.empty()) out << ",connection=\"" << label_value(connection) << "\"";
    out << "} " << c.days_until_expiry(now) << "\n";
  };
  for (const auto& c : connections) {
    auto info = server_.connection_info(c.name);
    if (info && info->peer_certificate &&
        system_integer(server_, c.name, tags::kConnectionStateTag) == 2) {
      days("peer", *info->peer_certificate, c.name);
    }
  }
  const certstore::StoreLayout layout = store_.layout();
  std::set<std::string> seen;
  const auto each = [&](const char* kind, const std::vector<certstore::CertificateInfo>& list) {
    for (const auto& c : list) {
      if (seen.insert(std::string(kind) + c.sha256).second) days(kind, c, "");
    }
  };
  // Roots and pins as the store parsed them (its snapshot); pki/own is not the store's.
  const auto snapshot = store_.snapshot();
  each("own", own_certificates(layout.own));
  each("root", snapshot->roots());
  each("trusted", snapshot->trusted());
  family("scada_quarantined_certificates", "gauge",
         "Certificates in the quarantine folder (untrusted/), waiting for an operator.");
  out << "scada_quarantined_certificates " << files_in(layout.untrusted()).size() << "\n";
  family("scada_events_recorded_total", "counter", "Events this process wrote to the event log.");
  out << "scada_events_recorded_total " << project_.recorded() << "\n";
  family("scada_api_requests_total", "counter", "Control API requests answered.");
  {
    std::lock_guard<std::mutex> lock(mutex_);
    out << "scada_api_requests_total " << requests_ << "\n";
  }
  return out.str();
}

}  // namespace scada::runtime
