// Pre-shared keys: parsing, the strength check and the generator (channel.h, section PSK).
#include <openssl/rand.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <stdexcept>

#include "channel/channel.h"

namespace scada::channel {

namespace {

constexpr std::size_t kMinDigits = 32;  // 128 bits
constexpr std::size_t kMaxDigits = 80;  // DESIGN.md §4: key text up to 80 characters
constexpr std::size_t kMinDistinct = 8;
constexpr std::size_t kMaxRun = 6;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = char(std::tolower(static_cast<unsigned char>(c)));
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Why digits (hex values) make a guessable key, or nothing. A random key of 32 or more digits
// fails none of these checks except with negligible probability.
std::optional<std::string> weakness(const std::vector<int>& digits) {
  const std::set<int> distinct(digits.begin(), digits.end());
  if (distinct.size() < kMinDistinct) {
    return "the key uses only " + std::to_string(distinct.size()) +
           " different hex digits (a random key uses at least " + std::to_string(kMinDistinct) +
           ")";
  }
  // A key made of one shorter pattern repeated: "0123456789abcdef0123456789abcdef".
  const std::size_t n = digits.size();
  for (std::size_t period = 1; period <= n / 2; ++period) {
    bool repeats = true;
    for (std::size_t i = period; i < n && repeats; ++i) repeats = digits[i] == digits[i - period];
    if (repeats) return "the key repeats a pattern of " + std::to_string(period) + " digits";
  }
  // Runs of one digit ("0000000") or counting up or down ("3456789", "fedcba9").
  for (int step : {0, 1, -1}) {
    std::size_t run = 1;
    for (std::size_t i = 1; i < n; ++i) {
      run = (digits[i] - digits[i - 1] + 16) % 16 == (step + 16) % 16 ? run + 1 : 1;
      if (run > kMaxRun) {
        return std::string("the key holds a run of ") + std::to_string(run) +
               (step == 0 ? " equal digits" : " counting digits");
      }
    }
  }
  return std::nullopt;
}

}  // namespace

std::variant<Bytes, std::string> parse_psk_text(std::string_view text) {
  std::size_t lead = 0;  // positions in messages count from the start of the text as given
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
    ++lead;
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  if (text.size() < kMinDigits || text.size() > kMaxDigits) {
    return "a PSK must be " + std::to_string(kMinDigits) + " to " + std::to_string(kMaxDigits) +
           " hex digits (128 to 320 bits), found " + std::to_string(text.size()) +
           " characters; `scadactl psk generate` makes a strong one";
  }
  if (text.size() % 2 != 0) return "a PSK must have an even number of hex digits";
  std::vector<int> digits;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const int v = hex_value(text[i]);
    if (v < 0) {
      return "character " + std::to_string(lead + i + 1) + " of the PSK is not a hex digit";
    }
    digits.push_back(v);
  }
  if (auto why = weakness(digits)) {
    return "weak PSK refused: " + *why + "; `scadactl psk generate` makes a strong one";
  }
  Bytes key;
  for (std::size_t i = 0; i < digits.size(); i += 2) {
    key.push_back(std::uint8_t(digits[i] << 4 | digits[i + 1]));
  }
  return key;
}

std::string generate_psk_text() {
  static const char kHex[] = "0123456789abcdef";
  while (true) {
    unsigned char bytes[32];
    if (RAND_bytes(bytes, sizeof bytes) != 1) {
      throw std::runtime_error("the system's random generator failed");
    }
    std::string text;
    for (unsigned char b : bytes) {
      text += kHex[b >> 4];
      text += kHex[b & 15];
    }
    // Vanishingly rare, but a generated key must pass the same check as any other.
    if (std::holds_alternative<Bytes>(parse_psk_text(text))) return text;
  }
}

Bytes read_psk_file(const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    throw std::runtime_error(file.string() + ": cannot read the PSK file: " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) throw std::runtime_error(file.string() + ": not a regular file");
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    throw std::runtime_error(file.string() +
                             ": the PSK file is readable by group or others; chmod 600 it");
  }
  std::ifstream in(file);
  std::string line;
  if (!in || !std::getline(in, line)) {
    throw std::runtime_error(file.string() + ": cannot read the PSK file");
  }
  auto key = parse_psk_text(line);
  if (auto* why = std::get_if<std::string>(&key)) {
    throw std::runtime_error(file.string() + ": " + *why);
  }
  return std::get<Bytes>(std::move(key));
}

}  // namespace scada::channel
