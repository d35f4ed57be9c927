// scadad's control API as a client sees it: a real scadad process, real plcsim PLCs on loopback,
// HTTP and WebSocket over real sockets. Every endpoint with good and bad requests, certificates
// trusted and untrusted through the API, the WebSocket stream, metrics, the token, the event
// log bound, and SIGHUP with added, changed and removed connections.
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <nlohmann/json.hpp>

#include <sys/stat.h>

#include <csignal>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "api_call.h"
#include "child_process.h"
#include "connection_fixture.h"
#include "importer/importer.h"

namespace scada::runtime {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace http = boost::beast::http;
using nlohmann::json;
using test_api::api_port;
using test_api::call;

const std::string kScadad = SCADA_BIN_DIR "/scadad";

// A bundle with one <Plc> per entry: name, port, the CA to import (may be empty), symbols.
struct BundlePlc {
  std::string name;
  std::uint16_t port = 0;
  std::string ca_pem;
  std::string symbols =
      R"(<Symbol name="Speed" address="DB1.DBW0" type="Word" access="rw" cycle="100ms"/>)";
};

void import(const fs::path& project_dir, const std::vector<BundlePlc>& plcs) {
  std::string document =
      "<ScadaExport formatVersion=\"1\" tool=\"test\" project=\"api\" "
      "exportedAt=\"2026-11-22T00:00:00Z\">\n";
  for (const BundlePlc& p : plcs) {
    document += "  <Plc name=\"" + p.name +
                "\" firmware=\"V2.9.4\">\n    <Connection address=\"127.0.0.1\" port=\"" +
                std::to_string(p.port) + "\" security=\"tls\"/>\n";
    if (!p.ca_pem.empty()) {
      document += "    <Certificates><Certificate role=\"ca\" encoding=\"pem\">" + p.ca_pem +
                  "</Certificate></Certificates>\n";
    }
    document += "    <Symbols>" + p.symbols + "</Symbols>\n  </Plc>\n";
  }
  document += "</ScadaExport>\n";
  auto bundle = importer::parse_bundle(document, std::nullopt);
  for (const auto& p : bundle.problems) ADD_FAILURE() << p.to_string();
  ASSERT_TRUE(bundle.ok());
  auto project = importer::Project::open(project_dir);
  importer::apply_import(project, *bundle.bundle, importer::plan_import(*bundle.bundle, project));
}

// Polls until pred holds for the JSON of GET target (bounded).
json wait_json(std::uint16_t port, const std::string& target,
               const std::function<bool(const json&)>& pred,
               std::chrono::milliseconds bound = 15s) {
  const auto end = std::chrono::steady_clock::now() + bound;
  json body;
  while (std::chrono::steady_clock::now() < end) {
    body = call(port, http::verb::get, target).body;
    if (pred(body)) return body;
    std::this_thread::sleep_for(20ms);
  }
  ADD_FAILURE() << "condition not met for " << target << ": " << body.dump();
  return body;
}

json connection(const json& connections, const std::string& name) {
  for (const auto& c : connections["connections"]) {
    if (c["name"] == name) return c;
  }
  return json();
}

// PLC1: certificate from a CA the project imports. PLC2: a CA the project does not know
// (quarantined as unknown-ca until trusted through the API).
class ScadadApi : public ::testing::Test {
 protected:
  void SetUp() override {
    importer::Project::init(project_dir());
    std::vector<plcsim::PlcConfig> configs(2);
    for (int i = 0; i < 2; ++i) {
      configs[i].name = "PLC" + std::to_string(i + 1);
      configs[i].mode = channel::SecurityMode::tls;
      configs[i].tls.certificate = files_[i].certificate_file;
      configs[i].tls.key = files_[i].key_file;
    }
    sim_ = std::make_unique<plcsim::Simulator>(configs, "127.0.0.1", 0, plc_log_.sink());
    sim_->plc(0).write(channel::Area::data_block, 1, 0, channel::Bytes{0x04, 0x57});  // 1111
    sim_->plc(1).write(channel::Area::data_block, 1, 0, channel::Bytes{0x08, 0xAE});  // 2222
    import(project_dir(), {{"PLC1", sim_->plc(0).port(), files_[0].ca.certificate_pem()},
                           { "PLC2",
                             sim_->plc(1).port(),
                             "" }});
  }

  fs::path project_dir() const { return dir_.path() / "project"; }
  fs::path store() const { return project_dir() / "device-certificate-store"; }

  std::unique_ptr<test::Child> start(std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"--project", project_dir().string(), "--api", "127.0.0.1:0"};
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<test::Child>(kScadad, args);
  }

  test::TempDir dir_;
  test::ServerTlsFiles files_[2]{{dir_, "plc1"}, {dir_, "plc2"}};
  test::PlcLog plc_log_;
  std::unique_ptr<plcsim::Simulator> sim_;
};

TEST_F(ScadadApi, TagsEndpointsAnswerGoodAndBadRequestsWithClearStatuses) {
  auto scadad = start();
  const auto port = api_port(*scadad);
  wait_json(port, "/api/tags?name=PLC1%2FSpeed",
            [](const json& b) { return b["tags"][0]["quality"] == "good"; });

  auto all = call(port, http::verb::get, "/api/tags");
  ASSERT_EQ(all.status, 200);
  std::set<std::string> names;
  for (const auto& t : all.body["tags"]) names.insert(t["name"]);
  EXPECT_TRUE(names.count("PLC1/Speed") && names.count("PLC2/Speed") &&
              names.count("@PLC1@ConnectionState") && names.count("@PLC2@LastError"))
      << all.text;

  // One write: 200; each kind of refusal: its status and words.
  auto ok = call(port, http::verb::post, "/api/tags", R"({"name": "PLC1/Speed", "value": 1234})");
  EXPECT_EQ(ok.status, 200) << ok.text;
  EXPECT_EQ(ok.body["results"][0]["ok"], true);
  EXPECT_EQ(sim_->plc(0).read(channel::Area::data_block, 1, 0, 2), (channel::Bytes{0x04, 0xD2}));
  const std::vector<std::tuple<std::string, int, std::string>> refused{
      {"not json", 400, "malformed JSON"},
      {"[1, 2]", 400, "must be a JSON object"},
      {R"({"name": "PLC1/Speed"})", 400, "needs \"name\" (text) and \"value\""},
      {R"({"name": 5, "value": 1})", 400, "needs \"name\" (text)"},
      {R"({"name": "PLC1/Speed", "value": [1]})", 400,
       "value must be a number, true/false or text"},
      {R"({"writes": 3})", 400, "\"writes\" must be a list"},
      {R"({"name": "Nope", "value": 1})", 404, "no tag named 'Nope'"},
      {R"({"name": "@PLC1@ConnectionState", "value": 0})", 403,
       "@PLC1@ConnectionState is read-only"},
      {R"({"name": "PLC1/Speed", "value": 70000})", 422, "70000 does not fit Word (0..65535)"},
      {R"({"name": "PLC1/Speed", "value": "fast"})", 422, "PLC1/Speed: "},
      {R"({"name": "PLC1/Speed", "value": 1.5})", 422, "PLC1/Speed: "},
      // PLC2 is not connected (its CA is unknown): the write reaches no PLC.
      {R"({"name": "PLC2/Speed", "value": 1})", 502, "not"},
  };
  for (const auto& [body, status, words] : refused) {
    auto r = call(port, http::verb::post, "/api/tags", body);
    EXPECT_EQ(r.status, status) << body << " -> " << r.text;
    ASSERT_TRUE(r.body.is_object() && r.body["error"].is_string()) << body << " -> " << r.text;
    EXPECT_NE(r.body["error"].get<std::string>().find(words), std::string::npos)
        << body << " -> " << r.text;
  }
  EXPECT_EQ(sim_->plc(0).read(channel::Area::data_block, 1, 0, 2), (channel::Bytes{0x04, 0xD2}));

  // Many writes: one result each, in order.
  auto batch = call(port, http::verb::post, "/api/tags",
                    R"({"writes": [{"name": "PLC1/Speed", "value": "16#10"},
                                   {"name": "Nope", "value": 1},
                                   {"name": "PLC1/Speed", "value": 17}]})");
  ASSERT_EQ(batch.status, 200) << batch.text;
  ASSERT_EQ(batch.body["results"].size(), 3u);
  EXPECT_EQ(batch.body["results"][0]["ok"], true);
  EXPECT_EQ(batch.body["results"][1]["error"], "no tag named 'Nope'");
  EXPECT_EQ(batch.body["results"][2]["ok"], true);
  EXPECT_EQ(sim_->plc(0).read(channel::Area::data_block, 1, 0, 2), (channel::Bytes{0x00, 0x11}));

  // Oversize body, unknown path, wrong method, bad query.
  auto big = call(port, http::verb::post, "/api/tags", std::string(2 * 1024 * 1024, ' '));
  EXPECT_EQ(big.status, 413);
  EXPECT_EQ(big.body["error"], "request body over 1 MiB");
  auto unknown = call(port, http::verb::get, "/api/nothing");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_NE(unknown.body["error"].get<std::string>().find("no such API: GET /api/nothing"),
            std::string::npos);
  EXPECT_EQ(call(port, http::verb::delete_, "/api/tags").status, 405);
  EXPECT_EQ(call(port, http::verb::post, "/api/connections").status, 405);
  EXPECT_EQ(call(port, http::verb::get, "/api/events?last=x").status, 400);
  EXPECT_EQ(call(port, http::verb::get, "/api/tags?name=Nope").status, 404);

  // Every change is in the event log with who asked.
  auto events = call(port, http::verb::get, "/api/events?last=1000");
  int writes = 0;
  for (const auto& e : events.body["events"]) {
    if (e["kind"] == "tag-write" &&
        e["detail"].get<std::string>().find(" by 127.0.0.1:") != std::string::npos)
      ++writes;
  }
  EXPECT_EQ(writes, 4) << events.text;  // 1234, PLC2's failed one, 16#10, 17
  EXPECT_EQ(scadad->finish(SIGTERM, 10s).exit, 0);
}

TEST_F(ScadadApi, CertificatesAreListedTrustedAndUntrustedThroughTheApi) {
  auto scadad = start();
  const auto port = api_port(*scadad);
  // PLC2's certificate lands in quarantine.
  auto listed = wait_json(port, "/api/certificates", [](const json& b) {
    for (const auto& c : b["certificates"])
      if (c["kind"] == "quarantined") return true;
    return false;
  });
  std::string quarantined, root;
  for (const auto& c : listed["certificates"]) {
    if (c["kind"] == "quarantined") quarantined = c["fingerprint"];
    if (c["kind"] == "root") root = c["subject"];
    if (c["kind"] != "crl") {
      EXPECT_TRUE(c["days_left"].is_number()) << c.dump();
      EXPECT_TRUE(c["not_after"].is_string()) << c.dump();
    }
  }
  EXPECT_EQ(quarantined, files_[1].server.sha256) << listed.dump();
  EXPECT_NE(root.find("plc1"), std::string::npos) << listed.dump();

  // Bad requests.
  EXPECT_EQ(call(port, http::verb::post, "/api/certificates/trust", "{}").status, 400);
  EXPECT_EQ(
      call(port, http::verb::post, "/api/certificates/trust", R"({"fingerprint": "xyz"})").status,
      400);
  auto none = call(port, http::verb::post, "/api/certificates/trust",
                   R"({"fingerprint": "0000000000000000"})");
  EXPECT_EQ(none.status, 404);
  EXPECT_NE(none.body["error"].get<std::string>().find("no quarantined (untrusted/) certificate"),
            std::string::npos)
      << none.text;
  EXPECT_EQ(call(port, http::verb::get, "/api/certificates/trust").status, 405);

  // Trust with a prefix written as an operator copies it (colons, upper case).
  std::string typed;
  for (std::size_t i = 0; i < 16; i += 2) {
    typed += (i ? ":" : "") + quarantined.substr(i, 2);
  }
  for (char& c : typed) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  auto trusted =
      call(port, http::verb::post, "/api/certificates/trust", json{{"fingerprint", typed}}.dump());
  ASSERT_EQ(trusted.status, 200) << trusted.text;
  EXPECT_EQ(trusted.body["fingerprint"], quarantined);
  EXPECT_EQ(trusted.body["file"], "device-certificate-store/trusted/" + quarantined + ".der");
  EXPECT_TRUE(fs::exists(store() / "trusted" / (quarantined + ".der")));
  EXPECT_FALSE(fs::exists(store() / "untrusted" / (quarantined + ".der")));
  // The store sees the file and PLC2 connects by itself.
  wait_json(port, "/api/connections",
            [](const json& b) { return connection(b, "PLC2")["ConnectionState"] == 2; });
  auto tags = wait_json(port, "/api/tags?name=PLC2%2FSpeed",
                        [](const json& b) { return b["tags"][0]["quality"] == "good"; });
  EXPECT_EQ(tags["tags"][0]["value"], 2222);
  auto c2 = connection(call(port, http::verb::get, "/api/connections").body, "PLC2");
  EXPECT_NE(c2["PeerCertificate"].get<std::string>().find(quarantined), std::string::npos);
  EXPECT_EQ(c2["mode"], "tls");
  // The pinned file is in use by PLC2's live session.
  wait_json(port, "/api/certificates", [&](const json& b) {
    for (const auto& c : b["certificates"]) {
      if (c["kind"] == "trusted" && c["fingerprint"] == quarantined)
        return c["in_use_by"] == json::array({"PLC2"});
    }
    return false;
  });
  EXPECT_EQ(c2["port"], sim_->plc(1).port());

  // Untrust: the file goes back to untrusted/, and the live session to PLC2 closes.
  auto untrusted = call(port, http::verb::post, "/api/certificates/untrust",
                        json{{"fingerprint", quarantined}}.dump());
  ASSERT_EQ(untrusted.status, 200) << untrusted.text;
  EXPECT_TRUE(fs::exists(store() / "untrusted" / (quarantined + ".der")));
  wait_json(port, "/api/connections",
            [](const json& b) { return connection(b, "PLC2")["ConnectionState"] != 2; });
  EXPECT_EQ(call(port, http::verb::post, "/api/certificates/untrust",
                 json{{"fingerprint", quarantined}}.dump())
                .status,
            404);

  auto events = call(port, http::verb::get, "/api/events?last=200");
  std::set<std::string> kinds;
  for (const auto& e : events.body["events"]) kinds.insert(e["kind"]);
  for (const char* kind : {"quarantined", "trust", "untrust", "snapshot-changed"}) {
    EXPECT_TRUE(kinds.count(kind)) << kind << " missing in " << events.text;
  }
  EXPECT_EQ(scadad->finish(SIGTERM, 10s).exit, 0);
}

// A WebSocket client of /api/ws.
class WsClient {
 public:
  explicit WsClient(std::uint16_t port, const std::string& token = "") : ws_(io_) {
    boost::beast::get_lowest_layer(ws_).connect(
        boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
    boost::beast::get_lowest_layer(ws_).expires_never();
    if (!token.empty()) {
      ws_.set_option(boost::beast::websocket::stream_base::decorator(
          [token](boost::beast::websocket::request_type& r) {
            r.set(http::field::authorization, "Bearer " + token);
          }));
    }
    ws_.handshake("127.0.0.1", "/api/ws");
  }
  void send(const json& message) { ws_.write(boost::asio::buffer(message.dump())); }
  // The next message, or nothing within the bound (then the client is closed).
  std::optional<json> next(std::chrono::milliseconds bound = 10s) {
    if (closed_) return std::nullopt;
    boost::beast::flat_buffer buffer;
    std::optional<boost::beast::error_code> result;
    ws_.async_read(buffer, [&](boost::beast::error_code ec, std::size_t) { result = ec; });
    io_.restart();
    io_.run_for(bound);
    if (!result) {
      closed_ = true;
      boost::beast::get_lowest_layer(ws_).close();
      io_.restart();
      io_.run_for(1s);
      return std::nullopt;
    }
    if (*result) return std::nullopt;
    return json::parse(boost::beast::buffers_to_string(buffer.data()), nullptr, false);
  }

 private:
  boost::asio::io_context io_;
  boost::beast::websocket::stream<boost::beast::tcp_stream> ws_;
  bool closed_ = false;
};

TEST_F(ScadadApi, WebSocketStreamsChangesOfSubscribedTagsInOrder) {
  auto scadad = start();
  const auto port = api_port(*scadad);
  wait_json(port, "/api/tags?name=PLC1%2FSpeed",
            [](const json& b) { return b["tags"][0]["quality"] == "good"; });
  WsClient ws(port);
  ws.send({{"subscribe", {"PLC1/Speed", "Nope"}}});
  auto m = ws.next();
  ASSERT_TRUE(m);
  EXPECT_EQ((*m)["type"], "error");
  EXPECT_EQ((*m)["error"], "no tag named 'Nope'");
  m = ws.next();
  ASSERT_TRUE(m);
  EXPECT_EQ((*m)["type"], "subscribed");
  EXPECT_EQ((*m)["names"], json::array({"PLC1/Speed"}));
  m = ws.next();  // the current state
  ASSERT_TRUE(m);
  EXPECT_EQ((*m)["type"], "tag");
  EXPECT_EQ((*m)["tag"]["name"], "PLC1/Speed");
  EXPECT_EQ((*m)["tag"]["value"], 1111);
  EXPECT_EQ((*m)["tag"]["quality"], "good");
  EXPECT_EQ((*m)["tag"]["type"], "Word");

  // The PLC's value changes 1..30 while the client reads: values arrive in order (a cycle may
  // see a value skipped), the last one arrives, nothing else is sent.
  std::thread changer([&] {
    for (std::uint16_t v = 1; v <= 30; ++v) {
      sim_->plc(0).write(channel::Area::data_block, 1, 0,
                         channel::Bytes{std::uint8_t(v >> 8), std::uint8_t(v)});
      std::this_thread::sleep_for(40ms);
    }
  });
  std::vector<std::int64_t> seen;
  while (seen.empty() || seen.back() != 30) {
    m = ws.next();
    if (!m) break;
    ASSERT_EQ((*m)["type"], "tag") << m->dump();
    ASSERT_EQ((*m)["tag"]["name"], "PLC1/Speed");
    seen.push_back((*m)["tag"]["value"]);
  }
  changer.join();
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back(), 30) << ::testing::PrintToString(seen);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end())) << ::testing::PrintToString(seen);
  EXPECT_EQ(std::set<std::int64_t>(seen.begin(), seen.end()).size(), seen.size())
      << "a change is sent once: " << ::testing::PrintToString(seen);

  // Unsubscribed: no more messages; a bad message gets an error.
  ws.send({{"unsubscribe", {"PLC1/Speed"}}});
  ws.send({{"hello", 1}});
  m = ws.next();
  ASSERT_TRUE(m);
  EXPECT_EQ((*m)["type"], "error") << m->dump();
  sim_->plc(0).write(channel::Area::data_block, 1, 0, channel::Bytes{0, 99});
  EXPECT_FALSE(ws.next(500ms)) << "a message after unsubscribe";
  EXPECT_EQ(scadad->finish(SIGTERM, 10s).exit, 0);
}

// Found by fuzz_ws: a message with both keys took its names from "subscribe" and unsubscribed
// them, silently. It is neither documented form: an error, and the subscriptions stay.
TEST_F(ScadadApi, WebSocketMessageWithBothSubscribeAndUnsubscribeIsAnError) {
  auto scadad = start();
  const auto port = api_port(*scadad);
  wait_json(port, "/api/tags?name=PLC1%2FSpeed",
            [](const json& b) { return b["tags"][0]["quality"] == "good"; });
  WsClient ws(port);
  ws.send({{"subscribe", {"PLC1/Speed"}}});
  auto m = ws.next();
  ASSERT_TRUE(m);
  EXPECT_EQ((*m)["type"], "subscribed");
  m = ws.next();  // the current state
  ASSERT_TRUE(m);
  EXPECT_EQ((*m)["type"], "tag");

  ws.send({{"subscribe", {"PLC1/Speed"}}, {"unsubscribe", {"PLC1/Speed"}}});
  m = ws.next();
  ASSERT_TRUE(m);
  EXPECT_EQ((*m)["type"], "error") << m->dump();
  EXPECT_NE((*m)["error"].get<std::string>().find("{\"subscribe\": [\"NAME\", ...]}"),
            std::string::npos)
      << m->dump();

  // Still subscribed: the next change arrives.
  sim_->plc(0).write(channel::Area::data_block, 1, 0, channel::Bytes{0, 77});
  bool changed = false;
  while (!changed) {
    m = ws.next();
    if (!m) break;
    ASSERT_EQ((*m)["type"], "tag") << m->dump();
    changed = (*m)["tag"]["value"] == 77;
  }
  EXPECT_TRUE(changed) << "no change after the refused message: unsubscribed";
  EXPECT_EQ(scadad->finish(SIGTERM, 10s).exit, 0);
}

// Checks Prometheus text exposition format (version 0.0.4): every family has HELP and TYPE
// before its samples, every sample line is NAME{LABELS} VALUE with valid names, quoted label
// values and a number; histogram buckets are cumulative with +Inf equal to _count. Returns the
// samples by their line's name and labels.
std::map<std::string, double> parse_prometheus(const std::string& text) {
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;
  std::istringstream in(text);
  std::string line;
  const auto name_ok = [](const std::string& n) {
    if (n.empty() || std::isdigit(static_cast<unsigned char>(n[0]))) return false;
    return std::all_of(n.begin(), n.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':';
    });
  };
  while (std::getline(in, line)) {
    if (line.rfind("# HELP ", 0) == 0) continue;
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream t(line.substr(7));
      std::string name, type;
      t >> name >> type;
      EXPECT_TRUE(name_ok(name)) << line;
      EXPECT_TRUE(type == "gauge" || type == "counter" || type == "histogram") << line;
      EXPECT_FALSE(types.count(name)) << "family twice: " << line;
      types[name] = type;
      continue;
    }
    EXPECT_FALSE(line.empty() || line[0] == '#') << "unexpected line: '" << line << "'";
    const auto brace = line.find('{');
    const auto space = line.rfind(' ');
    const std::string name = line.substr(0, std::min(brace, space));
    EXPECT_TRUE(name_ok(name)) << line;
    std::string family = name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string s = suffix;
      if (!types.count(family) && family.size() > s.size() &&
          family.compare(family.size() - s.size(), s.size(), s) == 0) {
        family = family.substr(0, family.size() - s.size());
      }
    }
    EXPECT_TRUE(types.count(family)) << "sample before its TYPE: " << line;
    if (brace != std::string::npos) {
      const auto close = line.rfind('}');
      EXPECT_TRUE(close != std::string::npos && close < space) << line;
      // label="value",... with escapes only \\ \" \n.
      const std::string labels = line.substr(brace + 1, close - brace - 1);
      std::size_t i = 0;
      while (i < labels.size()) {
        const auto eq = labels.find('=', i);
        EXPECT_NE(eq, std::string::npos) << line;
        if (eq == std::string::npos) break;
        EXPECT_TRUE(name_ok(labels.substr(i, eq - i))) << line;
        EXPECT_EQ(labels[eq + 1], '"') << line;
        std::size_t j = eq + 2;
        while (j < labels.size() && labels[j] != '"') j += labels[j] == '\\' ? 2 : 1;
        EXPECT_LT(j, labels.size()) << "unterminated label value: " << line;
        i = j + 1;
        if (i < labels.size()) {
          EXPECT_EQ(labels[i], ',') << line;
          ++i;
        }
      }
    }
    const std::string value = line.substr(space + 1);
    std::size_t used = 0;
    double v = 0;
    try {
      v = std::stod(value, &used);
    } catch (const std::exception&) {
    }
    EXPECT_EQ(used, value.size()) << "not a number: " << line;
    samples[line.substr(0, space)] = v;
  }
  return samples;
}

TEST_F(ScadadApi, MetricsAreValidPrometheusTextWithTheDocumentedSeries) {
  auto scadad = start();
  const auto port = api_port(*scadad);
  wait_json(port, "/api/tags?name=PLC1%2FSpeed",
            [](const json& b) { return b["tags"][0]["quality"] == "good"; });
  wait_json(port, "/api/certificates", [](const json& b) {
    for (const auto& c : b["certificates"])
      if (c["kind"] == "quarantined") return true;
    return false;
  });
  std::this_thread::sleep_for(6s);  // one sample of the tags-per-second rate (every 5 s)
  auto r = call(port, http::verb::get, "/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
  const auto samples = parse_prometheus(r.text);
  const auto has = [&](const std::string& key) { return samples.count(key) != 0; };
  EXPECT_EQ(samples.at("scada_connection_state{connection=\"PLC1\"}"), 2) << r.text;
  const double plc2 = samples.at("scada_connection_state{connection=\"PLC2\"}");
  EXPECT_TRUE(plc2 == 1 || plc2 == 3) << r.text;  // connecting, or waiting to retry
  EXPECT_GE(samples.at("scada_connection_sessions_total{connection=\"PLC1\"}"), 1);
  EXPECT_GE(samples.at("scada_handshake_failures_total{connection=\"PLC2\",reason=\"unknown-ca\"}"),
            1)
      << r.text;
  EXPECT_GT(samples.at("scada_request_rtt_seconds_count{connection=\"PLC1\"}"), 0);
  EXPECT_EQ(samples.at("scada_request_rtt_seconds_bucket{connection=\"PLC1\",le=\"+Inf\"}"),
            samples.at("scada_request_rtt_seconds_count{connection=\"PLC1\"}"));
  double previous = 0;
  for (const char* le : {"0.0005", "0.001", "0.002", "0.005", "0.01", "0.02", "0.05", "0.1", "0.2",
                         "0.5", "1", "2", "+Inf"}) {
    const std::string key =
        std::string("scada_request_rtt_seconds_bucket{connection=\"PLC1\",le=\"") + le + "\"}";
    ASSERT_TRUE(has(key)) << key << "\n" << r.text;
    EXPECT_GE(samples.at(key), previous) << key;
    previous = samples.at(key);
  }
  EXPECT_GT(samples.at("scada_cycle_lateness_seconds_count{connection=\"PLC1\"}"), 0);
  EXPECT_EQ(samples.at("scada_cycle_lateness_seconds_bucket{connection=\"PLC1\",le=\"+Inf\"}"),
            samples.at("scada_cycle_lateness_seconds_count{connection=\"PLC1\"}"));
  EXPECT_GT(samples.at("scada_tags_read_total{connection=\"PLC1\"}"), 0);
  EXPECT_GT(samples.at("scada_read_requests_total{connection=\"PLC1\"}"), 0);
  EXPECT_EQ(samples.at("scada_tag_read_errors_total{connection=\"PLC1\"}"), 0);
  EXPECT_NE(r.text.find("# TYPE scada_read_failures_total counter\n"), std::string::npos);
  for (const auto& [key, value] : samples) {
    EXPECT_NE(key.rfind("scada_read_failures_total{connection=\"PLC1\"", 0), 0u)
        << "PLC1 answers every read: " << key << " " << value;
  }
  EXPECT_GT(samples.at("scada_tags_read_per_second{connection=\"PLC1\"}"), 0) << r.text;
  EXPECT_EQ(samples.at("scada_quarantined_certificates"), 1);
  bool peer = false, root = false;
  for (const auto& [key, value] : samples) {
    if (key.rfind(
            "scada_certificate_days_left{kind=\"peer\",fingerprint=\"" + files_[0].server.sha256,
            0) == 0) {
      peer = true;
      EXPECT_EQ(value, 0) << "the test CA's certificates are valid for a day";
    }
    root |= key.rfind("scada_certificate_days_left{kind=\"root\"", 0) == 0;
  }
  EXPECT_TRUE(peer && root) << r.text;
  EXPECT_EQ(scadad->finish(SIGTERM, 10s).exit, 0);
}

TEST_F(ScadadApi, ATokenGuardsEveryRequestWhenConfigured) {
  const fs::path token_file = dir_.path() / "token";
  const std::string token = "0123456789abcdef0123456789abcdef";
  test::write_file(token_file, token + "\n");
  ::chmod(token_file.c_str(), 0644);
  auto r = test::run_child(kScadad, {"--project", project_dir().string(), "--api", "127.0.0.1:0",
                                     "--api-token-file", token_file.string()});
  EXPECT_EQ(r.exit, 2);
  EXPECT_NE(r.out.find("readable by group or others; chmod 600 it"), std::string::npos) << r.out;
  ::chmod(token_file.c_str(), 0600);
  r = test::run_child(kScadad, {"--project", project_dir().string(), "--api", "0.0.0.0:0"});
  EXPECT_EQ(r.exit, 2);
  EXPECT_NE(r.out.find("a non-loopback address needs a token (--api-token-file FILE)"),
            std::string::npos)
      << r.out;

  auto scadad = start({"--api-token-file", token_file.string()});
  const auto port = api_port(*scadad);
  EXPECT_EQ(call(port, http::verb::get, "/api/tags").status, 401);
  EXPECT_EQ(call(port, http::verb::get, "/metrics").status, 401);
  EXPECT_EQ(call(port, http::verb::get, "/api/tags", "", token + "x").status, 401);
  auto no = call(port, http::verb::post, "/api/tags", R"({"name": "PLC1/Speed", "value": 5})");
  EXPECT_EQ(no.status, 401);
  EXPECT_NE(no.body["error"].get<std::string>().find("token missing or wrong"), std::string::npos);
  EXPECT_EQ(call(port, http::verb::get, "/api/tags", "", token).status, 200);
  EXPECT_EQ(call(port, http::verb::get, "/metrics", "", token).status, 200);
  EXPECT_THROW(WsClient ws(port), std::exception);
  WsClient ws(port, token);
  ws.send({{"subscribe", {"@PLC1@ConnectionState"}}});
  auto m = ws.next();
  ASSERT_TRUE(m);
  EXPECT_EQ((*m)["type"], "subscribed");
  EXPECT_EQ(scadad->finish(SIGTERM, 10s).exit, 0);
}

TEST_F(ScadadApi, TheEventLogStaysWithinItsLimit) {
  {
    auto scadad = start({"--event-log-limit", "100"});
    const auto port = api_port(*scadad);
    wait_json(port, "/api/connections",
              [](const json& b) { return connection(b, "PLC1")["ConnectionState"] == 2; });
    json writes = json::array();
    for (int i = 0; i < 400; ++i) writes.push_back({{"name", "PLC1/Speed"}, {"value", i}});
    auto r = call(port, http::verb::post, "/api/tags", json{{"writes", writes}}.dump());
    ASSERT_EQ(r.status, 200);
    auto events = call(port, http::verb::get, "/api/events?last=10000");
    EXPECT_LE(events.body["events"].size(), 100u + 256u);
    EXPECT_GE(events.body["events"].size(), 100u);
    // The newest write is there (PLC2, whose CA is unknown, logs its retries meanwhile).
    std::string last_write;
    for (const auto& e : events.body["events"]) {
      if (e["kind"] == "tag-write") last_write = e["detail"];
    }
    EXPECT_EQ(last_write.rfind("399 by ", 0), 0u) << last_write;
    // ?after= gives what came after an id, oldest first.
    const std::int64_t id = events.body["events"][0]["id"];
    auto after = call(port, http::verb::get, "/api/events?after=" + std::to_string(id) + "&last=3");
    ASSERT_EQ(after.body["events"].size(), 3u);
    EXPECT_EQ(after.body["events"][0]["id"], id + 1);
    EXPECT_EQ(after.body["events"][2]["id"], id + 3);
    EXPECT_EQ(scadad->finish(SIGTERM, 10s).exit, 0);
  }
  // At the next start the log is cut to the limit at once.
  auto scadad = start({"--event-log-limit", "100"});
  const auto port = api_port(*scadad);
  auto events = call(port, http::verb::get, "/api/events?last=10000");
  EXPECT_LE(events.body["events"].size(), 110u);
  EXPECT_EQ(scadad->finish(SIGTERM, 10s).exit, 0);
  auto r =
      test::run_child(kScadad, {"--project", project_dir().string(), "--event-log-limit", "5"});
  EXPECT_EQ(r.exit, 2);
  EXPECT_NE(r.out.find("--event-log-limit must be at least 100"), std::string::npos);
}

TEST_F(ScadadApi, SighupAddsChangesAndRemovesConnectionsLeavingTheOthersAlone) {
  // A third PLC for the changed connection and a fourth for the added one.
  std::vector<plcsim::PlcConfig> more(2);
  for (int i = 0; i < 2; ++i) {
    more[i].name = "PLC" + std::to_string(i + 3);
    more[i].mode = channel::SecurityMode::tls;
    more[i].tls.certificate = files_[0].certificate_file;  // issued by the imported CA
    more[i].tls.key = files_[0].key_file;
  }
  plcsim::Simulator extra(more, "127.0.0.1", 0, plc_log_.sink());
  extra.plc(0).write(channel::Area::data_block, 1, 0, channel::Bytes{0, 33});
  extra.plc(1).write(channel::Area::data_block, 1, 0, channel::Bytes{0, 44});
  // PLC2 is trusted from the start here.
  fs::create_directories(store() / "trusted");
  test::write_file(store() / "trusted" / "plc2.crt", files_[1].server.certificate_pem);

  auto scadad = start();
  const auto port = api_port(*scadad);
  wait_json(port, "/api/connections", [](const json& b) {
    return connection(b, "PLC1")["ConnectionState"] == 2 &&
           connection(b, "PLC2")["ConnectionState"] == 2;
  });
  const std::string plc1_accepted =
      "PLC1 127.0.0.1:" + std::to_string(sim_->plc(0).port()) + " accepted";
  const std::size_t plc1_sessions = plc_log_.count(plc1_accepted);
  EXPECT_EQ(plc1_sessions, 1u) << plc_log_.text();

  // New project content: PLC1's connection unchanged but one more tag, PLC2 moved to another
  // PLC (changed), PLCX added.
  import(project_dir(),
         {{"PLC1", sim_->plc(0).port(), files_[0].ca.certificate_pem(),
           R"(<Symbol name="Speed" address="DB1.DBW0" type="Word" access="rw" cycle="100ms"/>
              <Symbol name="Extra" address="DB1.DBB2" type="Byte" access="r" cycle="100ms"/>)"},
          {"PLC2", extra.plc(0).port(), ""},
          { "PLCX",
            extra.plc(1).port(),
            "" }});
  ::kill(scadad->pid(), SIGHUP);
  ASSERT_TRUE(scadad->wait_for_output("scadad: project re-read: ", 10s)) << scadad->output();
  EXPECT_TRUE(scadad->wait_for_output("1 connection added, 1 connection changed, 2 tags added", 1s))
      << scadad->output();
  auto connections = wait_json(port, "/api/connections", [](const json& b) {
    return connection(b, "PLC2")["ConnectionState"] == 2 &&
           connection(b, "PLCX")["ConnectionState"] == 2;
  });
  EXPECT_EQ(connection(connections, "PLC2")["port"], extra.plc(0).port());
  auto values = wait_json(port, "/api/tags?name=PLC2%2FSpeed&name=PLCX%2FSpeed&name=PLC1%2FExtra",
                          [](const json& b) {
                            return b["tags"][0]["value"] == 33 && b["tags"][1]["value"] == 44 &&
                                   b["tags"][2]["quality"] == "good";
                          });
  // The unchanged connection kept its session.
  EXPECT_EQ(plc_log_.count(plc1_accepted), plc1_sessions) << plc_log_.text();
  EXPECT_EQ(connection(connections, "PLC1")["ConnectionState"], 2);
  // PLC2's old session was closed in order.
  EXPECT_TRUE(plc_log_.wait_for("close_notify", 5s)) << plc_log_.text();

  // Remove PLCX again: its tags and system tags go.
  import(project_dir(),
         {{"PLC1", sim_->plc(0).port(), files_[0].ca.certificate_pem(),
           R"(<Symbol name="Speed" address="DB1.DBW0" type="Word" access="rw" cycle="100ms"/>
              <Symbol name="Extra" address="DB1.DBB2" type="Byte" access="r" cycle="100ms"/>)"},
          { "PLC2",
            extra.plc(0).port(),
            "" }});
  ::kill(scadad->pid(), SIGHUP);
  ASSERT_TRUE(scadad->wait_for_output("1 connection removed, 1 tag removed", 10s))
      << scadad->output();
  EXPECT_EQ(call(port, http::verb::get, "/api/tags?name=PLCX%2FSpeed").status, 404);
  EXPECT_EQ(call(port, http::verb::get, "/api/tags?name=%40PLCX%40ConnectionState").status, 404);
  EXPECT_TRUE(connection(call(port, http::verb::get, "/api/connections").body, "PLCX").is_null());
  ::kill(scadad->pid(), SIGHUP);
  EXPECT_TRUE(scadad->wait_for_output("scadad: project re-read: nothing changed", 10s));
  EXPECT_EQ(plc_log_.count(plc1_accepted), plc1_sessions) << plc_log_.text();

  auto events = call(port, http::verb::get, "/api/events?last=200");
  int reloads = 0;
  for (const auto& e : events.body["events"]) reloads += e["kind"] == "reload";
  EXPECT_EQ(reloads, 3);
  const test::ChildOutcome end = scadad->finish(SIGTERM, 10s);
  EXPECT_EQ(end.exit, 0);
}

}  // namespace
}  // namespace scada::runtime
