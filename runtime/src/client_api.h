// What scadactl's client commands (runtime.h) share: the way to scadad's control API (address,
// token, one HTTP request), the failures by the exit status they end in, and how a tag is
// shown. The HTTP commands are in client_commands.cpp, the WebSocket ones (tag watch, tag wait)
// in client_subscription.cpp.
#pragma once

#include <boost/beast/http/verb.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <iosfwd>
#include <stdexcept>
#include <string>

#include "runtime/runtime.h"

namespace scada::runtime::client {

using json = nlohmann::ordered_json;

// The failures, by exit status. Everything else a command throws (an answer of an unexpected
// shape included) is exit 1.
struct UsageError : std::invalid_argument {  // 2: the arguments (or the token) must change
  using std::invalid_argument::invalid_argument;
};
struct OperationFailed : std::runtime_error {  // 1: scadad answered "no"
  using std::runtime_error::runtime_error;
};
struct Unreachable : std::runtime_error {  // 3: no answer from scadad at all
  using std::runtime_error::runtime_error;
};

struct ApiEndpoint {
  std::string host, port;
};
// --api "http://HOST:PORT", "HOST:PORT" or "[::1]:PORT"; UsageError when not.
ApiEndpoint api_endpoint(const ClientOptions& options);
// The token from --token-file (its first line, spaces trimmed) or SCADA_API_TOKEN; "" for none.
// UsageError when the file cannot be read or holds no token.
std::string api_token(const ClientOptions& options);
// The words for a 401, naming where the token comes from.
std::string unauthorised_text(const ClientOptions& options, const std::string& server_words);

struct Reply {
  int status = 0;
  json body;  // discarded (is_discarded()) when the body is not JSON
};
// One request with the token. Unreachable when scadad cannot be reached or does not answer;
// UsageError on 401 (a missing or wrong token: the command line must change).
Reply request(const ClientOptions& options, boost::beast::http::verb verb,
              const std::string& target, const std::string& body = "");
// The {"error"} text of an answer, or "HTTP <status>".
std::string error_text(const Reply& reply);
// Throws what a status other than 200 means: 400 UsageError (the arguments made a request scadad
// calls malformed), every other status OperationFailed, both with scadad's words.
void require_ok(const Reply& reply);

std::string percent_encoded(const std::string& text);
// A JSON value as an operator reads it: text without quotes, everything else as JSON.
std::string shown(const json& value);

// One tag of the API (GET /api/tags, WebSocket "tag" messages) as one line:
// text "NAME = VALUE (quality[: reason, detail])", or the JSON object with name, value,
// quality, reason and detail (when not good), source_time, server_time.
std::string tag_text(const json& tag);
json tag_summary(const json& tag);

// Runs f and maps what it throws to the exit status (UsageError 2, Unreachable 3, anything else
// 1), writing "scadactl COMMAND: words" to err.
int guarded(const char* command, std::ostream& err, const std::function<int()>& f);

}  // namespace scada::runtime::client
