// Pre-shared keys (channel.h, section Pre-shared keys; DESIGN.md §4): parse_psk_text accepts
// strong hex keys of 32 to 80 digits and refuses weak or malformed ones with a message that says
// what is wrong; generate_psk_text makes strong keys; read_psk_file reads a private (mode 0600)
// key file and names the file in every refusal.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <stdexcept>
#include <string>

#include "../support/hex.h"
#include "channel/channel.h"

namespace ch = scada::channel;
namespace fs = std::filesystem;
using scada::test::hex;

namespace {

const char kLowerHex[] = "0123456789abcdef";

// A key that passes every check: 32 digits without a run, a pattern or few distinct digits.
const std::string kStrong = "8f3a1c9e27d4b6050e1d7a3c94f2b8e6";

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
std::string upper(std::string s) {
  for (char& c : s) c = char(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// The refusal message for text; fails the test (and returns "") when the text is accepted.
std::string refusal(const std::string& text) {
  auto r = ch::parse_psk_text(text);
  if (auto* why = std::get_if<std::string>(&r)) return *why;
  ADD_FAILURE() << "accepted: '" << text << "'";
  return "";
}

::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << part << "' not in: " << text;
}

// A fresh directory, removed with its contents.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "psk-test-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw std::runtime_error("mkdtemp: " + std::string(std::strerror(errno)));
    }
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  fs::path file(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

fs::path write_key_file(const fs::path& file, const std::string& content, fs::perms mode) {
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << content;
  }
  fs::permissions(file, mode, fs::perm_options::replace);
  return file;
}

constexpr fs::perms kPrivate = fs::perms::owner_read | fs::perms::owner_write;

std::string read_psk_file_error(const fs::path& file) {
  try {
    ch::read_psk_file(file);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  ADD_FAILURE() << file << " was accepted";
  return "";
}

}  // namespace

// ---- parse_psk_text: accepted keys

TEST(PskText, AcceptsGeneratedKeys) {
  for (int i = 0; i < 50; ++i) {
    const std::string text = ch::generate_psk_text();
    auto r = ch::parse_psk_text(text);
    ASSERT_TRUE(std::holds_alternative<ch::Bytes>(r)) << text << ": " << std::get<std::string>(r);
    EXPECT_EQ(std::get<ch::Bytes>(r), hex(text)) << text;
    EXPECT_EQ(std::get<ch::Bytes>(r).size(), 32u);
  }
}

// Random keys of every allowed length (32 to 80 digits, even), in lower, upper and mixed case,
// with white space around them, give exactly the bytes the digits spell. The generator is
// seeded: the keys differ from one another but are the same on every run.
TEST(PskText, AcceptsRandomKeysOfEveryLengthAndCase) {
  std::mt19937 rng(20240611);
  std::uniform_int_distribution<int> digit(0, 15);
  std::bernoulli_distribution coin;
  const std::string spaces[] = {"", " ", "\t", "  \t ", "\n", "\r\n", " \r\n"};
  std::size_t checked = 0;
  for (std::size_t length = 32; length <= 80; length += 2) {
    for (int round = 0; round < 4; ++round) {
      std::string key;
      for (std::size_t i = 0; i < length; ++i) key += kLowerHex[digit(rng)];
      std::string mixed = key;
      for (char& c : mixed) {
        if (coin(rng)) c = char(std::toupper(static_cast<unsigned char>(c)));
      }
      const ch::Bytes expected = hex(key);
      ASSERT_EQ(expected.size(), length / 2);
      for (const std::string& text : {key, upper(key), mixed}) {
        const std::string& before = spaces[rng() % std::size(spaces)];
        const std::string& after = spaces[rng() % std::size(spaces)];
        const std::string written = before + text + after;
        auto r = ch::parse_psk_text(written);
        ASSERT_TRUE(std::holds_alternative<ch::Bytes>(r))
            << "'" << written << "': " << std::get<std::string>(r);
        EXPECT_EQ(std::get<ch::Bytes>(r), expected) << written;
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 25u * 4 * 3);
}

TEST(PskText, AcceptsTheShortestAndLongestKeys) {
  // 32 digits (128 bits) and 80 digits (the text limit of DESIGN.md §4) are both fine.
  const std::string shortest = kStrong;
  const std::string longest =
      kStrong + "3b7e05c9a1d48f26" + "c4a19e3f70b2d658" + "5e2b90d7a6f1c384";
  ASSERT_EQ(shortest.size(), 32u);
  ASSERT_EQ(longest.size(), 80u);
  for (const std::string& text : {shortest, longest}) {
    auto r = ch::parse_psk_text(text);
    ASSERT_TRUE(std::holds_alternative<ch::Bytes>(r)) << std::get<std::string>(r);
    EXPECT_EQ(std::get<ch::Bytes>(r), hex(text));
  }
}

TEST(PskText, ShortRunsAreNoWeakness) {
  // A run of four equal digits and a short counting run happen in random keys: accepted.
  const std::string text = "8f3a1c9e2777704b6050e1d7a3c9f2b8e6123a";
  auto r = ch::parse_psk_text(text);
  ASSERT_TRUE(std::holds_alternative<ch::Bytes>(r)) << std::get<std::string>(r);
  EXPECT_EQ(std::get<ch::Bytes>(r), hex(text));
}

// ---- parse_psk_text: refusals, each with words for the problem

TEST(PskText, RefusesTooShortKeys) {
  for (const std::string& text :
       {std::string(), std::string("   \t\n"), kStrong.substr(0, 30), kStrong.substr(0, 2),
        std::string("  ") + kStrong.substr(0, 30)}) {
    SCOPED_TRACE("'" + text + "'");
    const std::string why = refusal(text);
    EXPECT_TRUE(contains(why, "32 to 80 hex digits"));
    EXPECT_TRUE(contains(why, "scadactl psk generate"));  // the way to a strong key
  }
  EXPECT_TRUE(contains(refusal(kStrong.substr(0, 30)), "found 30 characters"));
}

TEST(PskText, RefusesTooLongKeys) {
  const std::string text = kStrong + kStrong.substr(0, 16) + "3b7e05c9a1d48f26c4a19e3f70b2d658";
  ASSERT_EQ(text.size(), 80u);
  for (const std::string& digits : {text + "a1", text + "a1b2c3d4", text + text}) {
    SCOPED_TRACE(digits.size());
    const std::string why = refusal(digits);
    EXPECT_TRUE(contains(why, "32 to 80 hex digits"));
    EXPECT_TRUE(contains(why, "found " + std::to_string(digits.size()) + " characters"));
  }
}

TEST(PskText, RefusesAnOddNumberOfDigits) {
  for (const std::string& text : {kStrong + "5", kStrong + "5a1", " " + kStrong + "5\n"}) {
    SCOPED_TRACE(text);
    EXPECT_TRUE(contains(refusal(text), "even number of hex digits"));
  }
}

TEST(PskText, RefusesNonHexAndNamesThePosition) {
  std::string text = kStrong;
  text[9] = 'g';
  EXPECT_TRUE(contains(refusal(text), "character 10 of the PSK is not a hex digit"));
  text = kStrong;
  text[0] = 'x';
  EXPECT_TRUE(contains(refusal(text), "character 1 of the PSK"));
  text = kStrong;
  text[31] = 'Z';
  EXPECT_TRUE(contains(refusal(text), "character 32 of the PSK"));
  // White space inside the key is no separator.
  text = kStrong.substr(0, 16) + " " + kStrong.substr(16, 15);
  ASSERT_EQ(text.size(), 32u);
  EXPECT_TRUE(contains(refusal(text), "character 17 of the PSK is not a hex digit"));
  // A "0x" prefix is not hex text either.
  EXPECT_TRUE(contains(refusal("0x" + kStrong.substr(0, 30)), "character 2 of the PSK"));
  // Positions count from the start of the text as given, white space around the key included.
  text = kStrong;
  text[9] = 'g';
  EXPECT_TRUE(contains(refusal(" \t" + text), "character 12 of the PSK is not a hex digit"));
}

namespace {

// Digits drawn (seeded) from alphabet, never the same twice in a row: no runs, and with
// alphabets whose neighbours differ by more than one, no counting either.
std::string from_alphabet(const std::string& alphabet, std::size_t length, unsigned seed) {
  std::mt19937 rng(seed);
  std::string text;
  while (text.size() < length) {
    const char c = alphabet[rng() % alphabet.size()];
    if (text.empty() || text.back() != c) text += c;
  }
  return text;
}

}  // namespace

TEST(PskText, RefusesFewDistinctDigits) {
  for (const auto& [alphabet, length] :
       {std::pair{std::string("159d"), 32u}, std::pair{std::string("02468ac"), 64u},
        std::pair{std::string("0369cf"), 80u}}) {
    const std::string text = from_alphabet(alphabet, length, 7);
    SCOPED_TRACE(text);
    const std::string why = refusal(text);
    EXPECT_TRUE(contains(why, "weak PSK refused"));
    EXPECT_TRUE(
        contains(why, "uses only " + std::to_string(alphabet.size()) + " different hex digits"));
    EXPECT_TRUE(contains(why, "scadactl psk generate"));
  }
  // All one digit: few distinct digits (or a run), refused in any case.
  EXPECT_TRUE(contains(refusal(std::string(64, '0')), "weak PSK refused"));
  EXPECT_TRUE(contains(refusal(std::string(32, 'F')), "weak PSK refused"));
}

TEST(PskText, RefusesRepeatedPatterns) {
  const std::string counting = "0123456789abcdef";
  EXPECT_TRUE(contains(refusal(counting + counting), "repeats a pattern of 16 digits"));
  EXPECT_TRUE(contains(refusal(upper(counting + counting)), "repeats a pattern of 16 digits"));
  // A random-looking block twice, or four times, is no stronger than the block.
  const std::string block = kStrong.substr(0, 16);
  EXPECT_TRUE(contains(refusal(block + block), "repeats a pattern of 16 digits"));
  const std::string block10 = "7c1e94a3f0";
  EXPECT_TRUE(contains(refusal(block10 + block10 + block10 + block10), "repeats a pattern of 10"));
  // A pattern that does not fill the key a whole number of times: 12 digits, 3.5 times.
  const std::string block12 = "9e27d4b6a3c1";
  const std::string partial = block12 + block12 + block12 + block12.substr(0, 6);
  ASSERT_EQ(partial.size(), 42u);
  const std::string why = refusal(partial);
  EXPECT_TRUE(contains(why, "weak PSK refused"));
  EXPECT_TRUE(contains(why, "repeats a pattern of 12 digits"));
}

TEST(PskText, RefusesLongRunsOfEqualOrCountingDigits) {
  const std::string head = "8f3a1c9e27d4b605";
  const std::string tail = "e1d7a3c94f2b8e6";
  struct Case {
    std::string run;
    std::string words;
  };
  for (const Case& c :
       {Case{"0000000", "run of 7 equal digits"}, Case{"AAAAAAAAA", "run of 7 equal digits"},
        Case{"3456789", "run of 7 counting digits"}, Case{"fedcba9", "run of 7 counting digits"},
        Case{"CDEF012", "run of 7 counting digits"}}) {
    SCOPED_TRACE(c.run);
    std::string text = head + c.run + tail;
    if (text.size() % 2) text += "5";
    const std::string why = refusal(text);
    EXPECT_TRUE(contains(why, "weak PSK refused"));
    EXPECT_TRUE(contains(why, c.words));
    EXPECT_TRUE(contains(why, "scadactl psk generate"));
  }
}

// ---- generate_psk_text

TEST(PskGenerate, SixtyFourHexDigitsDifferentEachTimeAllAccepted) {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    const std::string text = ch::generate_psk_text();
    ASSERT_EQ(text.size(), 64u) << text;
    EXPECT_EQ(text.find_first_not_of(kLowerHex), std::string::npos) << text;
    EXPECT_EQ(lower(text), text);
    auto r = ch::parse_psk_text(text);
    ASSERT_TRUE(std::holds_alternative<ch::Bytes>(r)) << text << ": " << std::get<std::string>(r);
    EXPECT_TRUE(seen.insert(text).second) << "generated twice: " << text;
  }
  EXPECT_EQ(seen.size(), 200u);
}

// ---- read_psk_file

TEST(PskFile, ReadsThePrivateFilesFirstLine) {
  TempDir dir;
  const std::string key = ch::generate_psk_text();
  const fs::path file =
      write_key_file(dir.file("plc1.psk"), "  " + upper(key) + " \r\nsecond line\n", kPrivate);
  EXPECT_EQ(ch::read_psk_file(file), hex(key));
  // Without a final newline too.
  const fs::path bare = write_key_file(dir.file("bare.psk"), key, kPrivate);
  EXPECT_EQ(ch::read_psk_file(bare), hex(key));
  // Owner read-only is private too.
  const fs::path read_only = write_key_file(dir.file("ro.psk"), key + "\n", fs::perms::owner_read);
  EXPECT_EQ(ch::read_psk_file(read_only), hex(key));
}

TEST(PskFile, RefusesAMissingFile) {
  TempDir dir;
  const fs::path file = dir.file("missing.psk");
  const std::string why = read_psk_file_error(file);
  EXPECT_TRUE(contains(why, file.string()));
  EXPECT_TRUE(contains(why, std::strerror(ENOENT)));
}

TEST(PskFile, RefusesGroupOrWorldReadableFiles) {
  TempDir dir;
  const std::string key = ch::generate_psk_text() + "\n";
  using P = fs::perms;
  for (const P mode : {P::owner_read | P::owner_write | P::group_read,
                       P::owner_read | P::owner_write | P::others_read,
                       P::owner_read | P::owner_write | P::group_read | P::others_read,
                       P::owner_read | P::owner_write | P::group_write}) {
    SCOPED_TRACE(int(mode));
    const fs::path file = write_key_file(dir.file("open.psk"), key, mode);
    const std::string why = read_psk_file_error(file);
    EXPECT_TRUE(contains(why, file.string()));
    EXPECT_TRUE(contains(why, "chmod 600"));
  }
}

TEST(PskFile, RefusesAWeakKeyNamingTheFile) {
  TempDir dir;
  struct Case {
    std::string content, words;
  };
  for (const Case& c : {Case{"0123456789abcdef0123456789abcdef\n", "repeats a pattern"},
                        Case{from_alphabet("159d", 32, 3) + "\n", "different hex digits"},
                        Case{"8f3a1c9e27d4b6050000000e1d7a3c94\n", "run of"},
                        Case{"8f3a1c9e\n", "32 to 80 hex digits"},
                        Case{"\n" + ch::generate_psk_text() + "\n", "32 to 80 hex digits"}}) {
    SCOPED_TRACE(c.content);
    const fs::path file = write_key_file(dir.file("weak.psk"), c.content, kPrivate);
    const std::string why = read_psk_file_error(file);
    EXPECT_TRUE(contains(why, file.string()));
    EXPECT_TRUE(contains(why, c.words));
  }
}

TEST(PskFile, RefusesAnEmptyFileAndADirectory) {
  TempDir dir;
  const fs::path empty = write_key_file(dir.file("empty.psk"), "", kPrivate);
  EXPECT_TRUE(contains(read_psk_file_error(empty), empty.string()));
  const fs::path folder = dir.file("folder.psk");
  fs::create_directory(folder);
  fs::permissions(folder, fs::perms::owner_all, fs::perm_options::replace);
  EXPECT_TRUE(contains(read_psk_file_error(folder), folder.string()));
}
