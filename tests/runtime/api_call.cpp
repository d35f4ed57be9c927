#include "api_call.h"

#include <gtest/gtest.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>

namespace scada::runtime::test_api {

using namespace std::chrono_literals;

Reply call(std::uint16_t port, http::verb verb, const std::string& target, const std::string& body,
           const std::string& token) {
  boost::asio::io_context io;
  boost::beast::tcp_stream stream(io);
  stream.expires_after(std::chrono::seconds(20));
  stream.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
  http::request<http::string_body> request(verb, target, 11);
  request.set(http::field::host, "127.0.0.1");
  if (!token.empty()) request.set(http::field::authorization, "Bearer " + token);
  request.body() = body;
  request.prepare_payload();
  boost::system::error_code ignored;
  http::write(stream, request, ignored);  // a refused oversize body: the answer still comes
  boost::beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(16 * 1024 * 1024);
  http::read(stream, buffer, parser);
  const auto& response = parser.get();
  return {int(response.result_int()), json::parse(response.body(), nullptr, false), response.body(),
          std::string(response[http::field::content_type])};
}

std::uint16_t api_port(test::Child& scadad) {
  const std::string marker = "api: listening on 127.0.0.1:";
  if (!scadad.wait_for_output(marker, 10s)) {
    ADD_FAILURE() << "scadad logged no API port:\n" << scadad.output();
    return 0;
  }
  const std::string out = scadad.output();
  const auto at = out.find(marker) + marker.size();
  return static_cast<std::uint16_t>(std::stoi(out.substr(at, out.find_first_of(" \n", at) - at)));
}

}  // namespace scada::runtime::test_api
