// The project-bundle reader (importer.h, BUNDLE.md): read_bundle, parse_bundle.
//
// The document is hostile input (DESIGN.md §10). In this order: its size is checked before
// anything else; NUL bytes, character references to non-characters and any "<!ENTITY" are
// refused before pugixml sees it; pugixml parses without expanding anything but the five
// predefined entities and never fetches anything; a DOCTYPE node is refused. Then every element
// is checked and every problem collected (capped), so one run shows an engineer all of them.
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <initializer_list>
#include <map>
#include <pugixml.hpp>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "importer/importer.h"

namespace scada::importer {

std::string Problem::to_string() const {
  std::string out = severity == Severity::warning ? "warning: " : "";
  if (line != 0) out += "line " + std::to_string(line);
  if (!element.empty()) out += (line != 0 ? ", " : "") + element;
  if (line != 0 || !element.empty()) out += ": ";
  return out + message;
}

const char* certificate_role_name(CertificateRole role) {
  switch (role) {
    case CertificateRole::plc:
      return "plc";
    case CertificateRole::ca:
      return "ca";
  }
  return "?";
}

namespace {

// Enough to act on; beyond it one entry says how many more there were.
constexpr std::size_t kMaxProblems = 100;
constexpr std::size_t kMaxShownValue = 40;  // characters of an attribute value in element text
constexpr std::size_t kMaxPlcName = 64;
constexpr std::size_t kMaxSymbolName = 128;
constexpr std::size_t kMaxComment = 1024;
constexpr std::string_view kBundleSuffix = ".scadaexport.xml";
constexpr const char* kSecurityModes = "none, tls or s7-secure";

using Severity = Problem::Severity;

// "64 MiB", "64 KiB" or "1000 bytes".
std::string size_text(std::size_t bytes) {
  if (bytes != 0 && bytes % (1u << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  if (bytes != 0 && bytes % (1u << 10) == 0) return std::to_string(bytes >> 10) + " KiB";
  return std::to_string(bytes) + " bytes";
}

bool is_control(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u < 0x20 || u == 0x7F;
}

bool has_control(std::string_view s) {
  return std::any_of(s.begin(), s.end(), is_control);
}

// Characters, not bytes: UTF-8 continuation bytes do not count.
std::size_t character_count(std::string_view s) {
  return static_cast<std::size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// A value as problems quote it: at most kMaxShownValue bytes (cut before a UTF-8 character, not
// inside one), control characters as '?', so one problem stays one line.
std::string shown(std::string_view value) {
  std::string out;
  std::size_t end = value.size();
  bool cut = false;
  if (end > kMaxShownValue) {
    end = kMaxShownValue;
    while (end > 0 && (static_cast<unsigned char>(value[end]) & 0xC0) == 0x80) --end;
    cut = true;
  }
  for (char c : value.substr(0, end)) out += is_control(c) ? '?' : c;
  if (cut) out += "...";
  return out;
}

std::string_view trimmed(std::string_view s) {
  const std::size_t first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t\r\n") + 1 - first);
}

std::string in_quotes(std::string_view value) {
  return "'" + shown(value) + "'";
}

// Plain decimal digits (no sign, no space, no hex) within min..max.
std::optional<std::uint32_t> decimal(std::string_view text, std::uint32_t min, std::uint32_t max) {
  if (text.empty() || text.size() > 9) return std::nullopt;
  if (text.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
  std::uint32_t n = 0;
  std::from_chars(text.data(), text.data() + text.size(), n);
  if (n < min || n > max) return std::nullopt;
  return n;
}

// Exactly four hex digits: "0100".
std::optional<std::uint16_t> tsap(std::string_view text) {
  if (text.size() != 4) return std::nullopt;
  if (text.find_first_not_of("0123456789abcdefABCDEF") != std::string_view::npos) {
    return std::nullopt;
  }
  std::uint16_t n = 0;
  std::from_chars(text.data(), text.data() + text.size(), n, 16);
  return n;
}

// "500ms", "2s", "1min", "1h": a whole number and a unit.
std::optional<std::chrono::milliseconds> duration(std::string_view text) {
  const std::size_t digits = text.find_first_not_of("0123456789");
  if (digits == 0 || digits == std::string_view::npos || digits > 9) return std::nullopt;
  std::uint64_t n = 0;
  std::from_chars(text.data(), text.data() + digits, n);
  const std::string_view unit = text.substr(digits);
  if (unit == "ms") return std::chrono::milliseconds(n);
  if (unit == "s") return std::chrono::milliseconds(n * 1000);
  if (unit == "min") return std::chrono::milliseconds(n * 60'000);
  if (unit == "h") return std::chrono::milliseconds(n * 3'600'000);
  return std::nullopt;
}

// "V2.9.4", "V3.0": major and minor (further parts are not needed for any decision).
std::optional<std::pair<unsigned, unsigned>> firmware_version(std::string_view text) {
  if (text.size() < 2 || (text[0] != 'V' && text[0] != 'v')) return std::nullopt;
  text.remove_prefix(1);
  std::vector<unsigned> parts;
  while (true) {
    const std::size_t dot = std::min(text.find('.'), text.size());
    const auto n = decimal(text.substr(0, dot), 0, 99'999);
    if (!n || parts.size() == 4) return std::nullopt;
    parts.push_back(*n);
    if (dot == text.size()) break;
    text.remove_prefix(dot + 1);
  }
  if (parts.size() < 2) return std::nullopt;
  return std::pair{parts[0], parts[1]};
}

bool is_xml_char(std::uint32_t c) {
  return c == 0x9 || c == 0xA || c == 0xD || (c >= 0x20 && c <= 0xD7FF) ||
         (c >= 0xE000 && c <= 0xFFFD) || (c >= 0x10000 && c <= 0x10FFFF);
}

// The reference "&#...;" at text[at], when it names something XML does not allow as a character
// (pugixml would decode "&#0;" into a NUL that silently cuts the value short). References that
// are not well formed are left to pugixml.
std::optional<std::string_view> bad_character_reference(std::string_view text, std::size_t at) {
  std::size_t p = at + 2;
  std::uint32_t base = 10;
  if (p < text.size() && text[p] == 'x') {
    base = 16;
    ++p;
  }
  const std::size_t first_digit = p;
  std::uint32_t value = 0;  // saturates above the largest code point
  for (; p < text.size(); ++p) {
    const char c = text[p];
    std::uint32_t digit = 0;
    if (c >= '0' && c <= '9') {
      digit = std::uint32_t(c - '0');
    } else if (base == 16 && c >= 'a' && c <= 'f') {
      digit = std::uint32_t(c - 'a' + 10);
    } else if (base == 16 && c >= 'A' && c <= 'F') {
      digit = std::uint32_t(c - 'A' + 10);
    } else {
      break;
    }
    value = std::min<std::uint32_t>(value * base + digit, 0x110000);
  }
  if (p == first_digit || p == text.size() || text[p] != ';') return std::nullopt;
  if (is_xml_char(value)) return std::nullopt;
  return text.substr(at, p + 1 - at);
}

// The problems of one bundle, in document order, capped at kMaxProblems.
class ProblemList {
 public:
  void add(Severity severity, std::size_t line, std::string element, std::string message) {
    if (severity == Severity::error) ++errors_;
    if (problems_.size() < kMaxProblems) {
      problems_.push_back({severity, line, std::move(element), std::move(message)});
      return;
    }
    ++dropped_;
    if (severity == Severity::error) dropped_error_ = true;
  }
  bool has_errors() const { return errors_ != 0; }
  std::vector<Problem> take() {
    if (dropped_ != 0) {
      problems_.push_back({dropped_error_ ? Severity::error : Severity::warning, 0, "",
                           "... and " + std::to_string(dropped_) + " more problems"});
    }
    return std::move(problems_);
  }

 private:
  std::vector<Problem> problems_;
  std::size_t errors_ = 0, dropped_ = 0;
  bool dropped_error_ = false;
};

// Line numbers from byte offsets: the offsets where lines start, built once.
class LineTable {
 public:
  explicit LineTable(std::string_view text) {
    starts_.push_back(0);
    for (std::size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '\n') starts_.push_back(i + 1);
    }
  }
  std::size_t line_of(std::size_t offset) const {
    return static_cast<std::size_t>(std::upper_bound(starts_.begin(), starts_.end(), offset) -
                                    starts_.begin());
  }

 private:
  std::vector<std::size_t> starts_;
};

std::string system_error_text(int error) {
  return std::strerror(error);
}

// A file the bundle names, opened without following a final symbolic link (the path given is
// already canonical), a regular file of 1..limit bytes.
std::variant<certstore::Bytes, std::string> read_limited_file(const std::filesystem::path& path,
                                                              std::size_t limit) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW);
  if (fd < 0) return "cannot open: " + system_error_text(errno);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat status {};
  if (::fstat(fd, &status) != 0) return "cannot read: " + system_error_text(errno);
  if (!S_ISREG(status.st_mode)) return std::string("not a regular file");
  const auto size = static_cast<std::uintmax_t>(status.st_size);
  if (size > limit) {
    return "the file is " + std::to_string(size) + " bytes, more than the " + size_text(limit) +
           " a certificate may have";
  }
  if (size == 0) return std::string("the file is empty");
  // One byte more than allowed: a file still being written may have grown since fstat.
  certstore::Bytes bytes(limit + 1);
  std::size_t filled = 0;
  while (filled < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + filled, bytes.size() - filled);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return "cannot read: " + system_error_text(errno);
    if (n == 0) break;
    filled += static_cast<std::size_t>(n);
  }
  if (filled > limit) return "the file grew past " + size_text(limit) + " while being read";
  if (filled == 0) return std::string("the file is empty");
  bytes.resize(filled);
  return bytes;
}

bool is_inside(const std::filesystem::path& folder, const std::filesystem::path& path) {
  auto f = folder.begin();
  auto p = path.begin();
  for (; f != folder.end(); ++f, ++p) {
    if (p == path.end() || *f != *p) return false;
  }
  return p != path.end();
}

bool is_base64_character(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

// The reader of one document: walks the tree once, collecting problems and the bundle.
class BundleParser {
 public:
  BundleParser(std::string_view document, const std::optional<std::filesystem::path>& folder,
               const BundleLimits& limits)
      : document_(document), folder_(folder), limits_(limits), lines_(document) {}

  BundleResult parse() {
    Bundle bundle;
    if (refuse_before_parsing()) return finish(std::move(bundle));
    pugi::xml_document xml;
    const pugi::xml_parse_result parsed =
        xml.load_buffer(document_.data(), document_.size(),
                        pugi::parse_default | pugi::parse_doctype, pugi::encoding_utf8);
    if (!parsed) {
      error(lines_.line_of(static_cast<std::size_t>(std::max<std::ptrdiff_t>(parsed.offset, 0))),
            "", std::string("XML syntax error: ") + parsed.description());
      return finish(std::move(bundle));
    }
    pugi::xml_node root;
    for (pugi::xml_node node : xml.children()) {
      if (node.type() == pugi::node_doctype) {
        error(line(node), "<!DOCTYPE>", "DTDs and entity declarations are not processed");
        return finish(std::move(bundle));
      }
      if (node.type() != pugi::node_element) continue;
      if (root) {
        error(line(node), element_text(node), "a second root element; a bundle has one");
        continue;
      }
      root = node;
    }
    read_root(root, bundle);
    return finish(std::move(bundle));
  }

 private:
  BundleResult finish(Bundle bundle) {
    BundleResult result;
    if (!problems_.has_errors()) result.bundle = std::move(bundle);
    result.problems = problems_.take();
    return result;
  }

  void error(std::size_t line, std::string element, std::string message) {
    problems_.add(Severity::error, line, std::move(element), std::move(message));
  }
  void warning(std::size_t line, std::string element, std::string message) {
    problems_.add(Severity::warning, line, std::move(element), std::move(message));
  }

  std::size_t line(pugi::xml_node node) const {
    const std::ptrdiff_t offset = node.offset_debug();
    return offset < 0 ? 0 : lines_.line_of(static_cast<std::size_t>(offset));
  }

  // <Plc name="PLC1">, <Symbol name="Line1.Counter">, <Certificate role="ca" file="...">,
  // <Connection>: the attributes that identify the element, when it has them.
  static std::string element_text(pugi::xml_node node) {
    const std::string_view name = node.name();
    std::vector<const char*> identifying;
    if (name == "Plc" || name == "Symbol") identifying = {"name"};
    if (name == "Certificate") identifying = {"role", "file", "encoding"};
    std::string out = "<" + shown(name);
    for (const char* attribute : identifying) {
      if (const pugi::xml_attribute a = node.attribute(attribute)) {
        out += std::string(" ") + attribute + "=\"" + shown(a.value()) + "\"";
      }
    }
    return out + ">";
  }

  // What pugixml must never see, or need not: a document over the limit, NUL bytes, entity
  // declarations (refused here, so no parser ever expands one), references to non-characters.
  bool refuse_before_parsing() {
    if (document_.size() > limits_.document_bytes) {
      error(0, "",
            "the document is " + std::to_string(document_.size()) + " bytes, more than the " +
                size_text(limits_.document_bytes) + " a bundle may have");
      return true;
    }
    if (const std::size_t nul = document_.find('\0'); nul != std::string_view::npos) {
      error(lines_.line_of(nul), "", "the document holds a NUL byte; a bundle is UTF-8 text");
      return true;
    }
    if (const std::size_t entity = document_.find("<!ENTITY"); entity != std::string_view::npos) {
      error(lines_.line_of(entity), "<!ENTITY>", "DTDs and entity declarations are not processed");
      return true;
    }
    bool refused = false;
    for (std::size_t at = document_.find("&#"); at != std::string_view::npos;
         at = document_.find("&#", at + 2)) {
      if (const auto reference = bad_character_reference(document_, at)) {
        error(lines_.line_of(at), "",
              "the character reference '" + shown(*reference) +
                  "' names a character XML does not allow");
        refused = true;
      }
    }
    return refused;
  }

  // Warns about attributes other than `known` and refuses an attribute given twice.
  void check_attributes(pugi::xml_node node, std::initializer_list<std::string_view> known) {
    std::set<std::string_view> seen;
    for (pugi::xml_attribute a : node.attributes()) {
      const std::string_view name = a.name();
      if (!seen.insert(name).second) {
        error(line(node), element_text(node), "attribute '" + shown(name) + "' given twice");
      } else if (std::find(known.begin(), known.end(), name) == known.end()) {
        warning(line(node), element_text(node), "unknown attribute '" + shown(name) + "' ignored");
      }
    }
  }

  // Text in an element that holds none.
  void check_no_text(pugi::xml_node node) {
    for (pugi::xml_node child : node.children()) {
      if (child.type() == pugi::node_pcdata || child.type() == pugi::node_cdata) {
        warning(line(node), element_text(node),
                "text " + in_quotes(trimmed(child.value())) + " ignored");
        return;
      }
    }
  }

  void unknown_element(pugi::xml_node node) {
    warning(line(node), element_text(node), "unknown element <" + shown(node.name()) + "> ignored");
  }

  // An attribute that must be present: its value, or nothing after an error.
  std::optional<std::string_view> required(pugi::xml_node node, const char* name) {
    const pugi::xml_attribute a = node.attribute(name);
    if (!a) {
      error(line(node), element_text(node), std::string("attribute '") + name + "' is missing");
      return std::nullopt;
    }
    return std::string_view(a.value());
  }

  void read_root(pugi::xml_node root, Bundle& bundle) {
    if (!root) return;  // pugixml refuses a document without an element
    if (std::string_view(root.name()) != "ScadaExport") {
      error(line(root), element_text(root),
            "the root element is <" + shown(root.name()) + ">, expected <ScadaExport>");
      return;
    }
    check_attributes(root, {"formatVersion", "tool", "project", "exportedAt"});
    check_no_text(root);
    bundle.tool = root.attribute("tool").value();
    bundle.project = root.attribute("project").value();
    bundle.exported_at = root.attribute("exportedAt").value();
    if (const auto version = required(root, "formatVersion")) {
      bundle.format_version = std::string(*version);
      if (*version != "1") {
        // Another format may mean anything: nothing below is checked against this one.
        error(line(root), element_text(root),
              "formatVersion " + shown(*version) + " is not known (this importer reads 1)");
        return;
      }
    }
    std::map<std::string, std::size_t, std::less<>> names;  // PLC name -> line
    std::size_t plcs = 0;
    for (pugi::xml_node node : root.children()) {
      if (node.type() != pugi::node_element) continue;
      if (std::string_view(node.name()) != "Plc") {
        unknown_element(node);
        continue;
      }
      if (++plcs > limits_.plcs) {
        error(line(node), element_text(node),
              "more than " + std::to_string(limits_.plcs) + " PLCs; a bundle may have " +
                  std::to_string(limits_.plcs));
        break;
      }
      BundlePlc plc = read_plc(node);
      if (!plc.name.empty()) {
        if (const auto first = names.find(plc.name); first != names.end()) {
          error(plc.line, element_text(node),
                "PLC name " + in_quotes(plc.name) + " is used twice (first on line " +
                    std::to_string(first->second) + ")");
        } else {
          names.emplace(plc.name, plc.line);
        }
      }
      bundle.plcs.push_back(std::move(plc));
    }
  }

  BundlePlc read_plc(pugi::xml_node node) {
    BundlePlc plc;
    plc.line = line(node);
    const std::string element = element_text(node);
    check_attributes(node, {"name", "module", "firmware"});
    check_no_text(node);
    if (const auto name = required(node, "name")) {
      if (name->empty() || name->size() > kMaxPlcName ||
          name->find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                  "0123456789_.-") != std::string_view::npos) {
        error(plc.line, element,
              "PLC name " + in_quotes(*name) +
                  " must be 1 to 64 of the characters A-Z a-z 0-9 _ . -");
      } else {
        plc.name = std::string(*name);
      }
    }
    plc.module = node.attribute("module").value();
    plc.firmware = node.attribute("firmware").value();

    pugi::xml_node connection, certificates, symbols;
    for (pugi::xml_node child : node.children()) {
      if (child.type() != pugi::node_element) continue;
      const std::string_view name = child.name();
      pugi::xml_node* slot = name == "Connection"     ? &connection
                             : name == "Certificates" ? &certificates
                             : name == "Symbols"      ? &symbols
                                                      : nullptr;
      if (slot == nullptr) {
        unknown_element(child);
      } else if (*slot) {
        error(line(child), element_text(child),
              "a second <" + std::string(name) + "> in " + element + " (first on line " +
                  std::to_string(line(*slot)) + ")");
      } else {
        *slot = child;
      }
    }
    if (connection) {
      read_connection(connection, plc);
      check_firmware(node, plc);
    } else {
      error(plc.line, element, "<Connection> is missing");
    }
    if (certificates) read_certificates(certificates, plc);
    if (symbols) read_symbols(symbols, plc);
    return plc;
  }

  void read_connection(pugi::xml_node node, BundlePlc& plc) {
    const std::size_t at = line(node);
    const std::string element = element_text(node);
    check_attributes(node,
                     {"address", "port", "rack", "slot", "localTsap", "remoteTsap", "security"});
    check_no_text(node);
    for (pugi::xml_node child : node.children()) {
      if (child.type() == pugi::node_element) unknown_element(child);
    }
    if (const auto address = required(node, "address")) {
      if (auto why = address_problem(*address)) {
        error(at, element,
              "address " + in_quotes(*address) +
                  " is not a valid IPv4 address, IPv6 address or host name" + *why);
      } else {
        plc.address = std::get<tags::AlternativeAddress>(
                          tags::AlternativeAddress::parse("IPAddress=" + std::string(*address)))
                          .ip_address;
      }
    }
    const auto number = [&](const char* name, std::uint32_t min, std::uint32_t max,
                            std::uint32_t fallback) -> std::uint32_t {
      const pugi::xml_attribute a = node.attribute(name);
      if (!a) return fallback;
      if (const auto n = decimal(a.value(), min, max)) return *n;
      error(at, element,
            std::string(name) + " " + in_quotes(a.value()) + " is not a number " +
                std::to_string(min) + ".." + std::to_string(max));
      return fallback;
    };
    plc.port = static_cast<std::uint16_t>(number("port", 1, 65535, 102));
    plc.rack = static_cast<std::uint8_t>(number("rack", 0, 7, 0));
    plc.slot = static_cast<std::uint8_t>(number("slot", 0, 31, 1));
    const auto hex = [&](const char* name) -> std::optional<std::uint16_t> {
      const pugi::xml_attribute a = node.attribute(name);
      if (!a) return std::nullopt;
      if (const auto n = tsap(a.value())) return n;
      error(at, element,
            std::string(name) + " " + in_quotes(a.value()) +
                " is not a TSAP of four hex digits such as 0100");
      return std::nullopt;
    };
    plc.local_tsap = hex("localTsap");
    plc.remote_tsap = hex("remoteTsap");
    const bool has_rack_slot = node.attribute("rack") || node.attribute("slot");
    const bool has_local = node.attribute("localTsap"), has_remote = node.attribute("remoteTsap");
    if (has_rack_slot && (has_local || has_remote)) {
      error(at, element, "give rack/slot or localTsap/remoteTsap, not both");
    } else if (has_local != has_remote) {
      error(at, element, "localTsap and remoteTsap go together");
    }
    if (const auto security = required(node, "security")) {
      if (const auto mode = channel::parse_security_mode(*security)) {
        plc.security = *mode;
      } else {
        error(at, element,
              "security " + in_quotes(*security) + " is not known (" + kSecurityModes + ")");
      }
    }
  }

  // Nothing when the address is an IPv4 or IPv6 address or a host name, else ": why" (or ""
  // when the address alone says it). The one host-name grammar of the project is
  // AlternativeAddress's; its other syntax (';', '=') must not reach it.
  static std::optional<std::string> address_problem(std::string_view address) {
    if (address.empty()) return ": it is empty";
    if (has_control(address) || address.find_first_of(" ;=") != std::string_view::npos) {
      return ": it holds a space, a control character, ';' or '='";
    }
    const auto parsed = tags::AlternativeAddress::parse("IPAddress=" + std::string(address));
    const auto* problem = std::get_if<tags::ParseError>(&parsed);
    if (problem == nullptr) return std::nullopt;
    // Its reasons quote the value first ("'x' is not an IP address or host name: why"); keep
    // the why.
    const std::string& reason = problem->reason;
    if (const std::size_t colon = reason.find(": "); colon != std::string::npos) {
      return reason.substr(colon);
    }
    if (reason.starts_with("'")) return std::string();
    return ": " + reason;
  }

  void check_firmware(pugi::xml_node node, const BundlePlc& plc) {
    if (plc.firmware.empty()) return;
    const char* security = channel::security_mode_name(plc.security);
    const auto version = firmware_version(plc.firmware);
    if (!version) {
      if (plc.security != channel::SecurityMode::none) {
        error(plc.line, element_text(node),
              "firmware " + in_quotes(plc.firmware) +
                  " is not a version such as V2.9.4, so security " + security +
                  " cannot be checked against it");
      } else {
        warning(plc.line, element_text(node),
                "firmware " + in_quotes(plc.firmware) + " is not a version such as V2.9.4");
      }
      return;
    }
    if (*version < std::pair{2u, 9u} && plc.security != channel::SecurityMode::none) {
      error(plc.line, element_text(node),
            "firmware " + shown(plc.firmware) +
                " has no secure communication (it needs V2.9 or later), but security is " +
                security);
    }
  }

  void read_certificates(pugi::xml_node node, BundlePlc& plc) {
    check_attributes(node, {});
    check_no_text(node);
    std::size_t count = 0;
    for (pugi::xml_node child : node.children()) {
      if (child.type() != pugi::node_element) continue;
      if (std::string_view(child.name()) != "Certificate") {
        unknown_element(child);
        continue;
      }
      if (++count > limits_.certificates_per_plc) {
        error(line(child), element_text(child),
              "more than " + std::to_string(limits_.certificates_per_plc) +
                  " certificates for one PLC; a PLC may have " +
                  std::to_string(limits_.certificates_per_plc));
        return;
      }
      if (auto certificate = read_certificate(child)) {
        plc.certificates.push_back(std::move(*certificate));
      }
    }
  }

  std::optional<BundleCertificate> read_certificate(pugi::xml_node node) {
    BundleCertificate certificate;
    certificate.line = line(node);
    const std::string element = element_text(node);
    const auto fail = [&](std::string message) -> std::optional<BundleCertificate> {
      error(certificate.line, element, std::move(message));
      return std::nullopt;
    };
    check_attributes(node, {"role", "encoding", "file"});
    std::string text;
    for (pugi::xml_node child : node.children()) {
      if (child.type() == pugi::node_pcdata || child.type() == pugi::node_cdata) {
        text += child.value();
      } else if (child.type() == pugi::node_element) {
        unknown_element(child);
      }
    }
    text = std::string(trimmed(text));

    const auto role = required(node, "role");
    if (!role) return std::nullopt;
    if (*role == "plc") {
      certificate.role = CertificateRole::plc;
    } else if (*role == "ca") {
      certificate.role = CertificateRole::ca;
    } else {
      return fail("role " + in_quotes(*role) + " is not known (plc or ca)");
    }

    const pugi::xml_attribute encoding = node.attribute("encoding");
    const pugi::xml_attribute file = node.attribute("file");
    std::variant<certstore::Bytes, std::string> bytes;
    std::string what;  // names the content in messages
    if (file) {
      if (encoding || !text.empty()) {
        return fail("give the certificate inline or in a file, not both");
      }
      certificate.source = file.value();
      what = "file " + in_quotes(file.value());
      bytes = read_referenced_file(file.value());
    } else if (!encoding) {
      return fail(text.empty() ? "no certificate: give it inline (encoding=\"der-base64\" or "
                                 "\"pem\") or in a file (file=\"...\")"
                               : "the inline certificate has no encoding (der-base64 or pem)");
    } else {
      certificate.source = "inline";
      const std::string_view name = encoding.value();
      if (name == "der-base64") {
        what = "the der-base64 certificate";
        bytes = decode_base64(text);
      } else if (name == "pem") {
        what = "the PEM certificate";
        bytes = pem_text(text);
      } else {
        return fail("encoding " + in_quotes(name) + " is not known (der-base64 or pem)");
      }
    }
    if (const auto* why = std::get_if<std::string>(&bytes)) return fail(what + ": " + *why);
    const auto& content = std::get<certstore::Bytes>(bytes);
    if (content.size() > limits_.certificate_bytes) {
      return fail(what + " is " + std::to_string(content.size()) + " bytes, more than the " +
                  size_text(limits_.certificate_bytes) + " a certificate may have");
    }
    auto parsed = certstore::parse_certificates(content, certificate.source);
    if (const auto* why = std::get_if<certstore::FileError>(&parsed)) {
      return fail(what + " is not a usable certificate: " + why->reason);
    }
    auto& infos = std::get<std::vector<certstore::CertificateInfo>>(parsed);
    if (infos.size() != 1) {
      return fail(what + " holds " + std::to_string(infos.size()) +
                  " certificates; give one certificate per <Certificate>");
    }
    certificate.info = std::move(infos.front());
    if (certificate.role == CertificateRole::ca && !certificate.info.is_ca) {
      return fail("role is ca, but " + certificate.info.subject +
                  " is not a CA certificate (no basicConstraints CA:TRUE)");
    }
    if (certificate.role == CertificateRole::plc && certificate.info.is_ca) {
      return fail("role is plc, but " + certificate.info.subject +
                  " is a CA certificate (basicConstraints CA:TRUE); give it role=\"ca\"");
    }
    return certificate;
  }

  // The DER inside base64 text; line breaks and spaces are allowed anywhere.
  std::variant<certstore::Bytes, std::string> decode_base64(std::string_view text) const {
    std::string compact;
    compact.reserve(text.size());
    for (char c : text) {
      if (c != ' ' && c != '\t' && c != '\r' && c != '\n') compact += c;
    }
    if (compact.empty()) return std::string("empty");
    std::size_t padding = 0;
    while (padding < compact.size() && compact[compact.size() - 1 - padding] == '=') ++padding;
    if (padding > 2) {
      return "the base64 text ends in " + std::to_string(padding) +
             " '=' (wrong padding: at most two)";
    }
    for (std::size_t i = 0; i < compact.size() - padding; ++i) {
      if (!is_base64_character(compact[i])) {
        const std::string character = static_cast<unsigned char>(compact[i]) >= 0x80
                                          ? std::string("a non-ASCII character")
                                          : "the character " + in_quotes(compact.substr(i, 1));
        return character + " is not base64 (A-Z a-z 0-9 + / and = at the end)";
      }
    }
    if (compact.size() % 4 != 0) {
      return "the base64 text is " + std::to_string(compact.size()) +
             " characters long with wrong padding (base64 comes in groups of four, padded "
             "with '=')";
    }
    const std::size_t decoded_size = compact.size() / 4 * 3 - padding;
    if (decoded_size > limits_.certificate_bytes) {
      return "it is " + std::to_string(decoded_size) + " bytes, more than the " +
             size_text(limits_.certificate_bytes) + " a certificate may have";
    }
    certstore::Bytes out(compact.size() / 4 * 3);
    const int n =
        EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(compact.data()),
                        static_cast<int>(compact.size()));
    if (n < 0 || static_cast<std::size_t>(n) != out.size()) {
      return std::string("the base64 text does not decode");
    }
    // EVP_DecodeBlock counts the zeros the padding stands for: drop them.
    out.resize(decoded_size);
    if (out.empty()) return std::string("empty");
    // parse_certificates would take PEM text too; der-base64 must hold DER.
    if (out[0] != 0x30) return std::string("the decoded bytes are not DER (no SEQUENCE, 0x30)");
    return out;
  }

  static std::variant<certstore::Bytes, std::string> pem_text(std::string_view text) {
    if (text.empty()) return std::string("empty");
    if (text.find("-----BEGIN ") == std::string_view::npos) {
      return std::string("no \"-----BEGIN CERTIFICATE-----\" line");
    }
    return certstore::Bytes(text.begin(), text.end());
  }

  // The content of a file the bundle names. The name must stay inside the bundle folder as
  // written (relative, no "..") and once every symbolic link is followed.
  std::variant<certstore::Bytes, std::string> read_referenced_file(std::string_view name) {
    if (name.empty()) return std::string("the file name is empty");
    if (has_control(name)) return std::string("the file name holds a control character");
    if (name.find('\\') != std::string_view::npos) {
      return std::string("the file name holds '\\'; use '/' between folders");
    }
    const std::filesystem::path relative(name);
    if (relative.is_absolute()) {
      return std::string(
          "absolute paths are not allowed; name files relative to the bundle folder");
    }
    for (const auto& part : relative) {
      if (part == "..") {
        return std::string("'..' is not allowed; files stay inside the bundle folder");
      }
    }
    if (!folder_) {
      return std::string(
          "file references need a bundle folder (this document was not read from one)");
    }
    std::error_code ec;
    if (canonical_folder_.empty()) {
      canonical_folder_ = std::filesystem::canonical(*folder_, ec);
      if (ec) {
        canonical_folder_.clear();
        return "the bundle folder " + folder_->string() + " cannot be resolved: " + ec.message();
      }
    }
    const std::filesystem::path resolved = std::filesystem::canonical(*folder_ / relative, ec);
    if (ec) return "cannot open: " + ec.message();
    if (!is_inside(canonical_folder_, resolved)) {
      return "it leads out of the bundle folder (to " + shown(resolved.string()) +
             "); files stay inside it";
    }
    return read_limited_file(resolved, limits_.certificate_bytes);
  }

  void read_symbols(pugi::xml_node node, BundlePlc& plc) {
    check_attributes(node, {});
    check_no_text(node);
    std::map<std::string, std::size_t, std::less<>> names;  // symbol name -> line
    for (pugi::xml_node child : node.children()) {
      if (child.type() != pugi::node_element) continue;
      if (std::string_view(child.name()) != "Symbol") {
        unknown_element(child);
        continue;
      }
      if (symbols_over_limit_) return;
      if (++symbols_ > limits_.symbols) {
        error(line(child), element_text(child),
              "more than " + std::to_string(limits_.symbols) + " symbols; a bundle may have " +
                  std::to_string(limits_.symbols));
        symbols_over_limit_ = true;
        return;
      }
      auto symbol = read_symbol(child);
      if (!symbol) continue;
      if (const auto first = names.find(symbol->name); first != names.end()) {
        error(symbol->line, element_text(child),
              "symbol name " + in_quotes(symbol->name) +
                  " is used twice in this PLC (first on line " + std::to_string(first->second) +
                  ")");
        continue;
      }
      names.emplace(symbol->name, symbol->line);
      plc.symbols.push_back(std::move(*symbol));
    }
  }

  std::optional<BundleSymbol> read_symbol(pugi::xml_node node) {
    const std::size_t at = line(node);
    const std::string element = element_text(node);
    check_attributes(node, {"name", "address", "type", "access", "cycle", "comment"});
    check_no_text(node);
    for (pugi::xml_node child : node.children()) {
      if (child.type() == pugi::node_element) unknown_element(child);
    }
    bool ok = true;
    const auto fail = [&](std::string message) {
      error(at, element, std::move(message));
      ok = false;
    };
    BundleSymbol symbol;
    symbol.line = at;
    if (const auto name = required(node, "name")) {
      if (name->empty()) {
        fail("the symbol name is empty");
      } else if (character_count(*name) > kMaxSymbolName) {
        fail("the symbol name is longer than " + std::to_string(kMaxSymbolName) + " characters");
      } else if (has_control(*name)) {
        fail("the symbol name holds a control character");
      } else {
        symbol.name = std::string(*name);
      }
    } else {
      ok = false;
    }
    std::optional<tags::Address> address;
    if (const auto text = required(node, "address")) {
      auto parsed = tags::Address::parse(*text);
      if (const auto* why = std::get_if<tags::ParseError>(&parsed)) {
        fail("address " + in_quotes(*text) + " is not valid: " + why->to_string());
      } else {
        address = std::get<tags::Address>(parsed);
      }
    } else {
      ok = false;
    }
    std::optional<tags::TypeSpec> type;
    if (const auto text = required(node, "type")) {
      auto parsed = tags::TypeSpec::parse(*text);
      if (const auto* why = std::get_if<tags::ParseError>(&parsed)) {
        fail("type " + in_quotes(*text) + " is not valid: " + why->to_string());
      } else {
        type = std::get<tags::TypeSpec>(parsed);
      }
    } else {
      ok = false;
    }
    if (address && type) {
      if (const auto why = tags::check_fits(*address, *type)) {
        fail(*why);
      } else {
        symbol.address = *address;
        symbol.type = *type;
      }
    }
    if (const pugi::xml_attribute access = node.attribute("access")) {
      const std::string_view value = access.value();
      if (value == "r") {
        symbol.access = tags::Access::read;
      } else if (value == "rw") {
        symbol.access = tags::Access::read_write;
      } else {
        fail("access " + in_quotes(value) + " is not known (r or rw)");
      }
    }
    if (const pugi::xml_attribute cycle = node.attribute("cycle")) {
      const auto value = duration(cycle.value());
      if (!value) {
        fail("cycle " + in_quotes(cycle.value()) +
             " is not a duration such as 500ms, 2s, 1min or 1h");
      } else if (*value < std::chrono::milliseconds(100) || *value > std::chrono::hours(1)) {
        fail("cycle " + shown(cycle.value()) + " is out of range 100ms..1h");
      } else {
        symbol.cycle = *value;
      }
    }
    const std::string_view comment = node.attribute("comment").value();
    if (character_count(comment) > kMaxComment) {
      fail("the comment is longer than " + std::to_string(kMaxComment) + " characters");
    } else {
      symbol.comment = std::string(comment);
    }
    if (!ok) return std::nullopt;
    return symbol;
  }

  std::string_view document_;
  const std::optional<std::filesystem::path>& folder_;
  const BundleLimits& limits_;
  LineTable lines_;
  ProblemList problems_;
  std::filesystem::path canonical_folder_;  // of folder_, once a file reference needs it
  std::size_t symbols_ = 0;                 // in the whole bundle so far
  bool symbols_over_limit_ = false;
};

BundleResult failed(std::string message) {
  BundleResult result;
  result.problems.push_back({Severity::error, 0, "", std::move(message)});
  return result;
}

}  // namespace

BundleResult parse_bundle(std::string_view document,
                          const std::optional<std::filesystem::path>& folder,
                          const BundleLimits& limits) {
  return BundleParser(document, folder, limits).parse();
}

BundleResult read_bundle(const std::filesystem::path& path, const BundleLimits& limits) {
  std::error_code ec;
  const std::filesystem::file_status status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) {
    return failed("cannot read the bundle " + path.string() + ": " +
                  (ec ? ec.message() : std::string("no such file or folder")));
  }
  std::filesystem::path document = path;
  if (std::filesystem::is_directory(status)) {
    std::vector<std::string> found;
    for (std::filesystem::directory_iterator it(path, ec), end; !ec && it != end;
         it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.size() > kBundleSuffix.size() && name.ends_with(kBundleSuffix)) {
        found.push_back(name);
      }
    }
    if (ec) return failed("cannot list the bundle folder " + path.string() + ": " + ec.message());
    std::sort(found.begin(), found.end());
    if (found.empty()) {
      return failed("the folder " + path.string() + " holds no *.scadaexport.xml file");
    }
    if (found.size() > 1) {
      std::string names;
      for (const std::string& name : found) names += (names.empty() ? "" : ", ") + name;
      return failed("the folder " + path.string() + " holds " + std::to_string(found.size()) +
                    " *.scadaexport.xml files (" + names + "); a bundle holds exactly one");
    }
    document = path / found.front();
  } else if (!std::filesystem::is_regular_file(status)) {
    return failed("the bundle " + path.string() + " is neither a file nor a folder");
  }

  // Bounded before reading: the size limit is checked with fstat, and at most one byte more
  // than fstat said is read (to see that the file grew).
  const int fd = ::open(document.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return failed("cannot open " + document.string() + ": " + system_error_text(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat file_status {};
  if (::fstat(fd, &file_status) != 0) {
    return failed("cannot read " + document.string() + ": " + system_error_text(errno));
  }
  if (!S_ISREG(file_status.st_mode)) return failed(document.string() + " is not a regular file");
  const auto size = static_cast<std::uintmax_t>(file_status.st_size);
  if (size > limits.document_bytes) {
    return failed("the document is " + std::to_string(size) + " bytes, more than the " +
                  size_text(limits.document_bytes) + " a bundle may have");
  }
  std::string text(static_cast<std::size_t>(size) + 1, '\0');
  std::size_t filled = 0;
  while (filled < text.size()) {
    const ssize_t n = ::read(fd, text.data() + filled, text.size() - filled);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return failed("cannot read " + document.string() + ": " + system_error_text(errno));
    if (n == 0) break;
    filled += static_cast<std::size_t>(n);
  }
  if (filled != size) return failed(document.string() + " changed while being read");
  text.resize(filled);

  std::filesystem::path folder = document.parent_path();
  if (folder.empty()) folder = ".";
  BundleResult result = parse_bundle(text, folder, limits);
  if (result.bundle) result.bundle->document = document;
  return result;
}

}  // namespace scada::importer
