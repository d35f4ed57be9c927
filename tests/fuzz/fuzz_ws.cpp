// libFuzzer target: the WebSocket tag stream of scadad's control API (GET /api/ws, README
// "WebSocket"): ControlApi::open_websocket and the listener's on_message on arbitrary text
// messages, against the tag server of api_world.h (internal tags, a connection kept down).
//
// Input: messages separated by newlines (a trailing empty one is ignored), all to one client.
// A line "=N TEXT" is not sent: it writes TEXT to internal tag N % 6 (tags::TagServer::write_text,
// waited for), so that changes reach the subscribers in between.
//
// Every reply must be one JSON object whose "type" the README documents:
//   {"type": "subscribed", "names": [...]}, {"type": "tag", "tag": TAG} (the fields of TAG as in
//   GET /api/tags), {"type": "error", "error": TEXT}.
// And the replies must be the documented ones: a message that is not {"subscribe": [NAME, ...]}
// or {"unsubscribe": [NAME, ...]} (both keys in one message: neither) gets one error; a subscribe
// gets one error "no tag named 'X'" per unknown name, one "subscribed" listing the known names,
// then one "tag" with the current state of each of them; an unsubscribe gets nothing; a write gets
// at most one "tag" message, of the written tag, and only while it is subscribed. Anything else
// aborts.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "api_world.h"

namespace {

using namespace scada;
using nlohmann::json;

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_ws: %s: %s\n", what, detail.c_str());
  std::abort();
}

// The client's end: what the stream sent, in order (send() may run on the loop's thread).
class Sink : public runtime::WsSender {
 public:
  void send(std::string text) override {
    std::lock_guard<std::mutex> lock(mutex_);
    messages_.push_back(std::move(text));
  }
  std::vector<json> take() {
    std::vector<std::string> texts;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      texts.swap(messages_);
    }
    std::vector<json> out;
    for (const auto& text : texts) out.push_back(checked(text));
    return out;
  }

 private:
  // One reply: a JSON object of a documented type with that type's fields.
  static json checked(const std::string& text) {
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) fail("reply is not a JSON object", text);
    if (!j.contains("type") || !j["type"].is_string()) fail("reply without a type", text);
    const std::string type = j["type"];
    if (type == "subscribed") {
      if (!j.contains("names") || !j["names"].is_array()) fail("subscribed without names", text);
      for (const auto& n : j["names"]) {
        if (!n.is_string()) fail("subscribed names a non-text", text);
      }
    } else if (type == "tag") {
      if (!j.contains("tag") || !j["tag"].is_object()) fail("tag message without a tag", text);
      const json& t = j["tag"];
      static const std::set<std::string> qualities{"good", "bad", "uncertain"};
      if (!t.contains("name") || !t["name"].is_string() || !t.contains("value") ||
          !t.contains("quality") || !t["quality"].is_string() ||
          !qualities.count(t["quality"].get<std::string>()) || !t.contains("server_time") ||
          !t["server_time"].is_string() || !t.contains("source_time") || !t.contains("type") ||
          !t.contains("access")) {
        fail("tag message lacks documented fields", text);
      }
      if (t["quality"] != "good" && !(t.contains("reason") && t.contains("detail"))) {
        fail("tag not good without reason and detail", text);
      }
    } else if (type == "error") {
      if (!j.contains("error") || !j["error"].is_string() || j["error"].get<std::string>().empty())
        fail("error without words", text);
    } else {
      fail("reply of an undocumented type", text);
    }
    return j;
  }

  std::mutex mutex_;
  std::vector<std::string> messages_;
};

// What the README promises for one client message, given the names subscribed so far.
void expect_replies(const std::string& text, const std::vector<json>& replies,
                    std::set<std::string>& subscribed) {
  const tags::TagServer& server = *fuzz::api_world("fuzz_ws").server;
  const json message = json::parse(text, nullptr, false);
  // Exactly one of the two keys (a message with both is neither documented form).
  const bool sub = message.is_object() && message.contains("subscribe");
  const bool unsub = message.is_object() && message.contains("unsubscribe");
  const char* key = sub == unsub ? nullptr : sub ? "subscribe" : "unsubscribe";
  bool valid = key && message[key].is_array();
  if (valid) {
    for (const auto& n : message[key]) valid = valid && n.is_string();
  }
  if (!valid) {
    if (replies.size() != 1 || replies[0]["type"] != "error") {
      fail("a malformed message is not answered with one error", text);
    }
    return;
  }
  if (std::string_view(key) == "unsubscribe") {
    if (!replies.empty()) fail("unsubscribe answered", text);
    for (const auto& n : message[key]) subscribed.erase(n.get<std::string>());
    return;
  }
  std::vector<std::string> known, errors, fresh;
  for (const auto& n : message[key]) {
    const std::string name = n;
    if (server.tag_config(name)) {
      known.push_back(name);
      if (std::find(fresh.begin(), fresh.end(), name) == fresh.end()) fresh.push_back(name);
    } else {
      errors.push_back("no tag named '" + name + "'");
    }
  }
  std::vector<std::string> got_errors, got_tags;
  std::size_t subscribed_replies = 0;
  for (const json& r : replies) {
    if (r["type"] == "error") {
      got_errors.push_back(r["error"]);
    } else if (r["type"] == "subscribed") {
      if (subscribed_replies++ || r["names"].get<std::vector<std::string>>() != known) {
        fail("subscribed does not list the known names once", text);
      }
    } else {
      if (!subscribed_replies) fail("tag before subscribed", text);
      got_tags.push_back(r["tag"]["name"]);
    }
  }
  if (subscribed_replies != 1) fail("subscribe not answered with subscribed", text);
  if (got_errors != errors) fail("errors do not name the unknown tags", text);
  if (got_tags != fresh) fail("not one current state per subscribed tag", text);
  subscribed.insert(known.begin(), known.end());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::ApiWorld& world = fuzz::api_world("fuzz_ws");
  auto sink = std::make_shared<Sink>();
  runtime::ApiRequest upgrade;
  upgrade.method = "GET";
  upgrade.path = "/api/ws";
  upgrade.origin = "fuzz";
  auto stream = world.api->open_websocket(sink, upgrade);
  if (!stream) fail("open_websocket refused", "");
  std::set<std::string> subscribed;

  const std::string input(reinterpret_cast<const char*>(data), size);
  std::size_t at = 0;
  while (at < input.size()) {
    const std::size_t end = std::min(input.find('\n', at), input.size());
    const std::string line = input.substr(at, end - at);
    at = end + 1;
    if (!line.empty() && line[0] == '=') {
      const std::size_t space = line.find(' ');
      const char* tag = fuzz::kInternalTags[std::size_t(line.size() > 1 ? line[1] : 0) %
                                            std::size(fuzz::kInternalTags)]
                            .first;
      const std::string value = space == std::string::npos ? "" : line.substr(space + 1);
      std::promise<void> written;
      world.server->write_text(
          tag, value, [&written](const std::optional<std::string>&) { written.set_value(); });
      if (written.get_future().wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
        fail("write not answered", tag);
      }
      const auto replies = sink->take();
      if (replies.size() > 1) fail("one write, several tag messages", tag);
      for (const json& r : replies) {
        if (r["type"] != "tag" || r["tag"]["name"] != tag || !subscribed.count(tag)) {
          fail("a write sent something other than the written, subscribed tag", r.dump());
        }
      }
      continue;
    }
    stream->on_message(line);
    expect_replies(line, sink->take(), subscribed);
  }
  stream.reset();
  return 0;
}
