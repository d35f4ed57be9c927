// scadactl plan: tag file parsing, the printed plan, the JSON summary and the error cases.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "runtime/runtime.h"

namespace scada::runtime {
namespace {

// A tag file in the temp directory, removed again at the end of the test.
class TagFile {
 public:
  explicit TagFile(const std::string& content) {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = std::filesystem::temp_directory_path() /
            ("scada_plan_" + std::to_string(::getpid()) + "_" + test->name() + ".tags");
    std::ofstream(path_) << content;
  }
  ~TagFile() { std::filesystem::remove(path_); }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

struct Outcome {
  int status;
  std::string out, err;
};

Outcome run_plan(const TagFile& file, std::size_t pdu, std::size_t max_items, bool json) {
  PlanOptions options;
  options.tag_file = file.path();
  options.pdu = pdu;
  options.max_items = max_items;
  options.json = json;
  std::ostringstream out, err;
  const int status = plan_command(options, out, err);
  return Outcome{status, out.str(), err.str()};
}

std::string last_line(const std::string& text) {
  const std::size_t end = text.find_last_not_of('\n');
  const std::size_t start = text.rfind('\n', end);
  return text.substr(start == std::string::npos ? 0 : start + 1,
                     end - (start == std::string::npos ? 0 : start + 1) + 1);
}

const char* const kSample =
    "# sample plant, line 1\n"
    "DB1.DBX0.0            # a bit without a type\n"
    "DB1.DBX0.1 Bool\n"
    "DB1.DBB1 Byte\n"
    "  DB1.DBW2   Int  \n"
    "DB1.DBD4 Real\r\n"
    "\n"
    "MW10\n"
    "T5 Timer\n";

TEST(PlanCommand, PrintsRequestsItemsAndSummary) {
  const TagFile file(kSample);
  const Outcome run = run_plan(file, 240, 20, false);
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.err, "");
  // DB1 bytes 0..7 touch each other (bits in byte 0, DBB1, DBW2, DBD4): one item. Items go
  // in area order (T 0x1D, M 0x83, DB 0x84).
  EXPECT_EQ(run.out,
            "request 1: 3 items, request 48 bytes, reply 38 bytes\n"
            "  T 5..5 (1 timer, 2 bytes, 1 tag)\n"
            "  M bytes 10..11 (2 bytes, 1 tag)\n"
            "  DB1 bytes 0..7 (8 bytes, 5 tags)\n"
            "requests 1 items 3 payload_bytes 12 wasted_bytes 0\n");
}

TEST(PlanCommand, JsonSummaryIsTheLastLine) {
  const TagFile file(kSample);
  const Outcome run = run_plan(file, 240, 20, true);
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(last_line(run.out),
            R"({"requests": 1, "items": 3, "payload_bytes": 12, "wasted_bytes": 0})");
}

TEST(PlanCommand, GapIsReadWhenItSavesARequest) {
  // Two words four bytes apart; with one item per request reading the gap saves a request.
  const TagFile file("DB7.DBW0\nDB7.DBW6\n");
  const Outcome run = run_plan(file, 240, 1, false);
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out,
            "request 1: 1 item, request 24 bytes, reply 26 bytes\n"
            "  DB7 bytes 0..7 (8 bytes, 2 tags)\n"
            "requests 1 items 1 payload_bytes 8 wasted_bytes 4\n");
}

TEST(PlanCommand, ManyTagsAtTheLargestItemCap) {
  std::string content;
  for (int db = 1; db <= 300; ++db) content += "DB" + std::to_string(db) + ".DBW0 Int\n";
  const TagFile file(content);
  const Outcome run = run_plan(file, 960, 255, true);
  ASSERT_EQ(run.status, 0) << run.err;
  // 300 items of 2 bytes in different DBs, 79 per request at PDU 960.
  EXPECT_EQ(last_line(run.out),
            R"({"requests": 4, "items": 300, "payload_bytes": 600, "wasted_bytes": 0})");
  EXPECT_NE(run.out.find("request 1: 79 items, request 960 bytes"), std::string::npos);
}

TEST(PlanCommand, BadAddressNamesFileAndLine) {
  const TagFile file("DB1.DBW0\n# comment\n  DB1.DBX0.9 Bool\nMW2\n");
  const Outcome run = run_plan(file, 240, 20, true);
  EXPECT_EQ(run.status, 2);
  EXPECT_EQ(run.out, "");
  EXPECT_EQ(run.err.rfind(file.path() + ":3: bad address 'DB1.DBX0.9': ", 0), 0u) << run.err;
  EXPECT_NE(run.err.find("(column 12)"), std::string::npos) << run.err;  // the 9
}

TEST(PlanCommand, TypeThatDoesNotFitTheAddress) {
  const TagFile file("DB1.DBW0 Int\nDB1.DBW2 Real\n");
  const Outcome run = run_plan(file, 240, 20, false);
  EXPECT_EQ(run.status, 2);
  EXPECT_EQ(run.out, "");
  EXPECT_EQ(run.err.rfind(file.path() + ":2: ", 0), 0u) << run.err;
  EXPECT_NE(run.err.find("Real"), std::string::npos) << run.err;
}

TEST(PlanCommand, UnknownType) {
  const TagFile file("DB1.DBD0 Float\n");
  const Outcome run = run_plan(file, 240, 20, false);
  EXPECT_EQ(run.status, 2);
  EXPECT_EQ(run.err.rfind(file.path() + ":1: bad type 'Float'", 0), 0u) << run.err;
}

TEST(PlanCommand, TagTooLargeForThePdu) {
  const TagFile file("DB1.DBW0\n\nDB1.STRING10.254 String[254]\n");
  const Outcome run = run_plan(file, 240, 20, false);
  EXPECT_EQ(run.status, 2);
  EXPECT_EQ(run.out, "");
  EXPECT_EQ(run.err, file.path() +
                         ":3: DB1.STRING10.254 needs 256 bytes; one item carries at most 222 at "
                         "PDU 240\n");
  // The same line plans at PDU 480.
  EXPECT_EQ(run_plan(file, 480, 20, false).status, 0);
}

TEST(PlanCommand, EmptyFilePlansNothing) {
  const TagFile file("# nothing yet\n\n");
  const Outcome run = run_plan(file, 240, 20, true);
  EXPECT_EQ(run.status, 0);
  EXPECT_EQ(run.out, R"({"requests": 0, "items": 0, "payload_bytes": 0, "wasted_bytes": 0})"
                     "\n");
}

}  // namespace
}  // namespace scada::runtime
