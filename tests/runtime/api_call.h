// A client of scadad's control API for the tests: one HTTP request over loopback, and the API
// port a scadad process logged. Compiled once (api_call.cpp), so the test programs that use it
// do not each instantiate Beast's HTTP client.
#pragma once

#include <boost/beast/http/verb.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

#include "child_process.h"

namespace scada::runtime::test_api {

namespace http = boost::beast::http;
using nlohmann::json;

struct Reply {
  int status = 0;
  json body;  // discarded (is_discarded()) when the answer is not JSON
  std::string text;
  std::string content_type;
};

// One request to 127.0.0.1:port, with "Authorization: Bearer TOKEN" when a token is given. A
// connection or read failure throws boost::system::system_error; the test fails with its words.
Reply call(std::uint16_t port, http::verb verb, const std::string& target,
           const std::string& body = "", const std::string& token = "");

// The API port scadad logged ("api: listening on 127.0.0.1:PORT"); a test failure (and 0) when
// it did not log one within 10 s.
std::uint16_t api_port(test::Child& scadad);

}  // namespace scada::runtime::test_api
