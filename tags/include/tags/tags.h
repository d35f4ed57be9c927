// tags: tag model, S7 address syntax, acquisition and system tags.
//
// The parsers here are pure functions over text; they treat their input as hostile (DESIGN.md
// §10): they never read past it and report what was wrong, and where, as a ParseError.
#pragma once

#include <array>
#include <boost/asio/any_io_executor.hpp>
#include <boost/signals2/connection.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "certstore/certstore.h"
#include "channel/channel.h"

namespace scada::tags {

// What was wrong with a piece of text, and where: position is the 0-based index of the
// offending character in the text as given (leading spaces included).
struct ParseError {
  std::size_t position = 0;
  std::string reason;             // e.g. "bit number 8 out of range 0..7"
  std::string to_string() const;  // "bit number 8 out of range 0..7 (at position 4)"
  bool operator==(const ParseError&) const = default;
};

// ---------------------------------------------------------------------------------------------
// Data types and S7 addresses (DESIGN.md §6, WIRE.md §3)

// The S7 data types a tag can have, with the bytes each occupies in the PLC.
enum class DataType {
  Bool,     // 1 bit (moves as its byte)
  Byte,     // 1
  Char,     // 1
  Word,     // 2
  Int,      // 2
  DWord,    // 4
  DInt,     // 4
  Real,     // 4
  LReal,    // 8
  String,   // String[n]: n + 2 (max length byte, current length byte, n characters)
  Timer,    // 2
  Counter,  // 2
  Text,     // Text[n]: internal tags only (no PLC form): UTF-8 text of at most n characters
};

inline constexpr std::uint16_t kMaxStringLength = 254;
inline constexpr std::uint16_t kMaxTextLength = 255;

// A tag's data type. string_length is the n of String[n] (1..254) or Text[n] (1..255) and 0 for
// every other type.
struct TypeSpec {
  DataType type = DataType::Bool;
  std::uint16_t string_length = 0;

  // "Bool", "Byte", "Char", "Word", "Int", "DWord", "DInt", "Real", "LReal", "String[n]",
  // "Timer", "Counter", "Text[n]"; case-insensitive, surrounding spaces ignored. The names of
  // DESIGN.md §7 are accepted too: "UInt32" (= DWord), "Int32" (= DInt), "Text" (= Text[255]).
  static std::variant<TypeSpec, ParseError> parse(std::string_view text);
  std::string to_string() const;  // the spelling above (DWord, DInt, Text[n])
  std::size_t byte_size() const;  // as listed at DataType; 1 for Bool; n for Text[n]
  bool operator==(const TypeSpec&) const = default;
};

// The largest byte offset: an item's start address is byte·8 + bit in 24 bits.
inline constexpr std::uint32_t kMaxByteOffset = 2'097'151;

// An S7 address. Address::parse accepts, case-insensitively and with surrounding spaces:
//   DB1.DBX0.0  DB1.DBB1  DB1.DBW2  DB1.DBD4  DB1.STRING10.20 (String[20] at byte 10)  DB1.LREAL8
//   M10.2 (or MX10.2)  MB3  MW4  MD8
//   I0.0 IB1 IW2 ID4, German E0.0 EB1 EW2 ED4 (also IX/EX)
//   Q0.1 QB1 QW2 QD4, German A0.1 AB1 AW2 AD4 (also QX/AX)
//   T5 (timer), C3 or German Z3 (counter)
// Bounds: DB 1..65535, byte offset 0..kMaxByteOffset, bit 0..7, string length 1..254,
// timer/counter number 0..65535. to_string() prints the canonical English form, and
// parse(a.to_string()) == a for every address parse returns.
struct Address {
  enum class Width { Bit, Byte, Word, DWord, String, LReal, Timer, Counter };

  channel::Area area = channel::Area::flags;  // only the areas above
  std::uint16_t db = 0;                       // 1..65535 for data blocks, 0 elsewhere
  Width width = Width::Byte;
  std::uint32_t offset = 0;         // byte offset; the number for timers and counters
  std::uint8_t bit = 0;             // 0..7 for Width::Bit, 0 otherwise
  std::uint16_t string_length = 0;  // n of DBx.STRINGy.n, 0 otherwise

  static std::variant<Address, ParseError> parse(std::string_view text);
  std::string to_string() const;
  bool operator==(const Address&) const = default;
};

// Why a data type cannot live at an address (e.g. a Real at a word address), or nothing when
// it fits: Bool needs a bit; Byte/Char a byte; Word/Int a word; DWord/DInt/Real a dword;
// LReal the LREAL form; String[n] the STRING form with the same n; Timer T; Counter C.
// Text[n] fits no address: it is for internal tags.
std::optional<std::string> check_fits(const Address& address, const TypeSpec& type);

// The data type a tag gets when only its address is known: bit → Bool, byte → Byte,
// word → Word, dword → DWord, STRING n → String[n], LREAL → LReal, T → Timer, C → Counter.
TypeSpec default_type(const Address& address);

// The address as the read planner's input: size in bytes (1 for bits, which carry their bit
// number), or 1 element for timers and counters.
channel::ReadTag to_read_tag(const Address& address);

// The Read/Write Var item that reads or writes exactly this address: BIT with byte·8 + bit,
// BYTE with the value's size as count, TIMER/COUNTER with the number as address.
channel::VarItem to_var_item(const Address& address);

// ---------------------------------------------------------------------------------------------
// Values (DESIGN.md §6): what a tag holds, the bytes the PLC holds for it, and text from people
//
// A Value is bool (Bool), a signed 64-bit integer (Byte, Word, DWord, Int, DInt, Timer in
// milliseconds, Counter), a double (Real, LReal) or UTF-8 text (String[n], Char). The PLC's
// forms, all big-endian: Int/DInt two's complement, Real/LReal IEEE 754, String[n] as
// max-length byte, current-length byte and n characters, Char one byte; characters are
// single bytes (Latin-1: U+0000..U+00FF); Text[n] (internal tags) is valid UTF-8 of at most
// n characters, its "bytes" the UTF-8 bytes; Timer is S5TIME (time base in bits 12-13: 10 ms,
// 100 ms, 1 s, 10 s; three BCD digits), Counter three BCD digits.
using Value = std::variant<bool, std::int64_t, double, std::string>;

// The value of the PLC's bytes for a tag (byte_size() bytes; for Bool one byte 0 or 1, as
// channel::cut_reply gives a bit), or why the bytes are not a value of the type (a string
// whose current length exceeds its maximum, BCD digits above 9, a wrong byte count).
std::variant<Value, std::string> decode_value(const TypeSpec& type, channel::ByteView bytes);

// The PLC's bytes for a value (Bool: one byte 0 or 1, written as a bit), or why the value does
// not fit the type: out of range ("70000 does not fit Word (0..65535)"), a string longer than
// n or with a character outside Latin-1, a Char that is not one character, a Timer that S5TIME
// cannot hold exactly, a value of another kind (text for an Int). Integers for Real and LReal
// are accepted; Real must be within float's range.
std::variant<channel::Bytes, std::string> encode_value(const TypeSpec& type, const Value& value);

// A value from text an operator or a script typed: Bool true/false/1/0/on/off; integers in
// decimal or as 16#FF / 0xFF; Real and LReal in decimal or exponent notation; String and Char
// as the text itself; Timer as milliseconds or with a unit (1500ms, 1.5s, 2min). Then checked
// as encode_value does, so that what parses also fits. A Real comes back rounded to float, as
// the PLC will hold it.
std::variant<Value, std::string> parse_value(const TypeSpec& type, std::string_view text);

// A value as text: true/false, integers in decimal, doubles with the shortest round-trip form,
// text as is.
std::string value_to_string(const Value& value);
// The same, with a Real shown as the float it is (5.2, not 5.199999809265137).
std::string value_to_string(const TypeSpec& type, const Value& value);

// The value a tag of this type holds before anything else is known: false, 0, 0.0 or "".
Value zero_value(const TypeSpec& type);

// ---------------------------------------------------------------------------------------------
// The alternative address of a connection (DESIGN.md §7, system tag @<c>@AlternativeAddress)
//
// Grammar: `Key=Value;` pairs, the last ';' optional, keys in any case and order, spaces
// around keys, '=' and values ignored, empty pairs (";;") skipped. Keys:
//   IPAddress    required: IPv4 (dotted decimal), IPv6 (optionally in brackets) or a host name
//                (RFC 1123 labels; one that looks like IPv4 must be a valid IPv4 address)
//   AccessPoint  kept, informational (any text without ';' and '=')
//   Port         1..65535 (default: the connection's)
//   Rack, Slot   0..7 and 0..31, together (remote TSAP from them, as for the original)
//   TSAP         the remote TSAP as two hex bytes: "03.01", "0301" or "0x0301"; not with
//                Rack/Slot
// At most 255 characters (the tag is Text, 255). A key may appear once. Any error names the
// position and refuses the whole text: nothing of it is applied.
struct AlternativeAddress {
  std::string ip_address;  // as given, brackets of an IPv6 address removed
  std::string access_point;
  std::optional<std::uint16_t> port;
  std::optional<std::uint8_t> rack, slot;
  std::optional<std::uint16_t> tsap;

  static std::variant<AlternativeAddress, ParseError> parse(std::string_view text);
  // Canonical text that parses back to the same value: "IPAddress=10.0.0.2;Port=102;TSAP=0301"
  // (keys in the order above, only those present). Never longer than the text it came from.
  std::string to_string() const;
  bool operator==(const AlternativeAddress&) const = default;
};

inline constexpr std::size_t kMaxAlternativeAddressLength = 255;

// ---------------------------------------------------------------------------------------------
// The tag model (DESIGN.md §6) and the system tags of every connection (§7)

enum class Quality { good, bad, uncertain };
const char* quality_name(Quality quality);  // "good", "bad", "uncertain"

// Why a value is not good.
enum class QualityReason {
  none,
  not_connected,  // bad: the connection is not up (forced down, connecting, waiting to retry)
  config_error,   // bad: the tag cannot be read as configured (too large for the PDU, bytes
                  // that are no value of its type)
  plc_refused,    // bad: the PLC answered the item with an error (address out of range, ...)
  last_known,     // uncertain: a start value or the last value, not (yet) confirmed by a read
};
const char* quality_reason_name(QualityReason reason);  // "", "not-connected", ...

using SystemTime = std::chrono::system_clock::time_point;

// What a tag holds now.
struct TagState {
  Value value;  // the type's zero value until there is a start value, a read or a write
  Quality quality = Quality::bad;
  QualityReason reason = QualityReason::not_connected;
  std::string detail;        // words for an operator when not good; "" when good
  SystemTime source_time{};  // when the value was read from the PLC (internal tags: written);
                             // the epoch while it never was
  SystemTime server_time{};  // when this record last changed (value, quality or reason)
};

enum class Access { read, read_write };

struct TagConfig {
  std::string name;
  TypeSpec type;
  std::string connection;                 // "" for an internal tag
  std::optional<Address> address;         // required with a connection, absent for internal tags
  std::chrono::milliseconds cycle{1000};  // acquisition cycle (10 ms .. 24 h)
  Access access = Access::read_write;
  // Internal tags hold it from the start (quality good). PLC tags show it as uncertain
  // (last-known) until the first read; it is never written to the PLC.
  std::optional<Value> start_value;
};

// One fresh value or change of a tag, published after the record changed.
struct TagUpdate {
  std::string name;
  TagState state;
  bool changed = false;  // value, quality or reason differ from before; false: a fresh read of
                         // the same value (source_time moved)
};

// A connection and the start values of its writable system tags (DESIGN.md §7).
struct ConnectionSetup {
  channel::ConnectionConfig config;          // the original address and all other settings
  std::uint32_t force_connection_state = 1;  // 0: stays down from the start
  std::uint32_t use_alternative_address = 0;
  std::string alternative_address;  // empty: none
};

// The system tags of a connection, by the name after "@<connection>@".
inline constexpr std::string_view kForceConnectionState = "ForceConnectionState";
inline constexpr std::string_view kAlternativeAddress = "AlternativeAddress";
inline constexpr std::string_view kUseAlternativeAddress = "UseAlternativeAddress";
inline constexpr std::string_view kConnectionStateTag = "ConnectionState";
inline constexpr std::string_view kCurrentAddress = "CurrentAddress";
inline constexpr std::string_view kLastError = "LastError";
inline constexpr std::string_view kPeerCertificate = "PeerCertificate";
inline constexpr std::string_view kCertificateDaysLeft = "CertificateDaysLeft";
std::string system_tag_name(std::string_view connection, std::string_view tag);  // "@PLC1@..."

// Values of @<c>@ConnectionState.
enum class LinkState : std::uint32_t { disabled = 0, connecting = 1, connected = 2, error = 3 };
// "disabled", "connecting", "connected", "error, waiting to retry"; "?" for other numbers.
const char* link_state_name(std::int64_t state);

// The outcome of a write: nothing when the PLC (or the tag table) took the value, else why not.
using WriteResult = std::optional<std::string>;
using WriteCallback = std::function<void(WriteResult)>;

// Counters of one connection's acquisition (for operators, tests and benchmarks).
struct LinkStatistics {
  std::uint64_t cycles = 0;    // acquisition cycles completed (every request answered)
  std::uint64_t overruns = 0;  // cycles skipped because the previous one was still running
  std::uint64_t requests = 0;  // Read Var requests sent
  std::uint64_t values = 0;    // fresh tag values received
  std::uint64_t switches = 0;  // make-before-break switches completed
  std::chrono::microseconds last_cycle{0};  // first request sent -> last reply, last cycle
  std::chrono::microseconds busy{0};        // the same, summed over all completed cycles
  std::uint64_t sessions_up = 0;  // sessions that came up: first connect, every reconnect, switches
  std::map<std::string, std::uint64_t> failures;  // failed attempts and ended sessions, by
                                                  // channel::failure_reason_name (not "stopped")
  // Acquisition Read Var requests that brought no values, by reason: the job's
  // channel::failure_reason_name ("timeout", "protocol-error", ...; a session this side ended on
  // purpose does not count), "plc-refused"
  // (the PLC refused the whole request) or "bad-reply" (a reply that does not answer it).
  std::map<std::string, std::uint64_t> failed_reads;
  std::uint64_t tag_errors = 0;  // tag values of answered requests the PLC refused (item return
                                 // code) or that did not decode as the tag's type
  struct Histogram {
    // Upper bounds in seconds of the request round-trip buckets (Prometheus "le").
    static constexpr std::array<double, 12> bounds{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
                                                   0.05,   0.1,   0.2,   0.5,   1.0,  2.0};
    std::array<std::uint64_t, 12> buckets{};  // observations <= bounds[i] and > bounds[i-1]
    std::uint64_t count = 0;                  // all observations (also those > 2 s)
    double sum_seconds = 0;
  } rtt;  // Read Var and Write Var requests: sent -> answered (errors and timeouts not counted)
  // How late each acquisition cycle began (its timer fired) after it was due, while the
  // connection was up: a loaded event loop shows here first.
  Histogram lateness;
};

// The tags of a runtime: PLC tags acquired through their connections, internal tags, and the
// system tags of every connection, with the connection-change procedure of DESIGN.md §7.
//
// Acquisition: the tags of one connection and cycle are planned into as few Read Var requests
// as the granted PDU allows (channel::plan_reads) and all of them are handed to the connection,
// which keeps up to the granted AmQ in flight. A cycle that is due while the previous one still
// runs is skipped (counted as an overrun). An item error makes that tag bad (plc-refused, with
// the PLC's return code in words); a connection that leaves "up" makes all its tags bad
// (not-connected) at once; the first fresh read makes each good again.
//
// Writes go one by one as Write Var jobs (a Bool as a BIT item, so neighbouring bits stay as
// they are), never merged and never queued for later: a write to a connection that is not up
// fails at once.
//
// System tags (@<c>@...): ForceConnectionState 0 closes the connection and keeps it down, 1
// brings it up; UseAlternativeAddress selects the AlternativeAddress (1) or the original (0);
// an AlternativeAddress that does not parse, or that would make a secure connection plaintext
// (Rack/Slot/TSAP with s7-secure, whose TLS is reached through its own TSAP), is refused and
// LastError says why. Changing the selection while the connection is up switches
// make-before-break: a second connection to the new address must complete TLS, setup and a
// first read of every tag before it replaces the old one; until then the old one serves, and
// a failure of the new one (unreachable, quarantined certificate, plaintext endpoint) leaves
// it serving with LastError saying why. The new connection keeps trying (a certificate trusted
// later completes the switch by itself) until the selection changes again or Force is 0.
//
// Changes while running (scadad's SIGHUP): connections and tags may be added and removed before
// and after start(). A connection added after start() starts at once, its start values applied
// as for one added before (Force 0 keeps it down). A PLC tag added to a running connection joins
// the plan of its cycle and is read at once, or right after that cycle's read in progress; an
// internal tag holds its start value. A removal takes effect at once for every lookup by name
// (read, tag_config, tag_names, write) and for updates: none is published for a removed tag any
// more, and its connection's plan no longer reads it. A write in flight to a removed tag still
// gets the PLC's answer; remove_connection closes that connection in order (close_notify, as
// stop() does) and answers its writes in flight "not confirmed". A removed name may be added
// again, with another configuration.
//
// Statistics: a request's round trip runs from when it went on the wire to the PLC's reply (also
// one refusing it); the connection sends up to the granted AmQ at once and the rest in order as
// replies free places, so a request waiting behind others starts its clock when a place frees.
//
// Threading: every method may be called from any thread; update handlers and write callbacks
// may read, write, add and remove too. Work runs on a strand of the executor; updates are
// published there, after the record changed, to handlers that must be quick and must not throw.
class TagServer {
 public:
  // store: trust decisions for every connection; it must outlive the server.
  TagServer(boost::asio::any_io_executor executor, certstore::CertificateStore& store);
  ~TagServer();  // stops every connection (close_notify); no update is published after it
  TagServer(const TagServer&) = delete;
  TagServer& operator=(const TagServer&) = delete;

  // Configuration, before or after start(). Each returns why the item was refused (duplicate
  // name, unknown connection, an address that does not fit the type, a bad start value, ...).
  std::optional<std::string> add_connection(ConnectionSetup setup);
  std::optional<std::string> add_tag(TagConfig tag);
  // Removes a PLC or internal tag; why not: an unknown name, or a system tag (those go with
  // their connection).
  std::optional<std::string> remove_tag(std::string_view name);
  // Stops the connection and removes it with its system tags and all its tags; why not: an
  // unknown name.
  std::optional<std::string> remove_connection(std::string_view name);

  void start();  // applies start values and starts acquisition; idempotent
  void stop();   // closes every connection; tags go bad (not-connected)

  std::vector<std::string> tag_names() const;  // sorted, system tags included
  std::optional<TagConfig> tag_config(std::string_view name) const;
  std::optional<TagState> read(std::string_view name) const;

  // Converts the value to the tag's type (refusing what does not fit) and writes it.
  void write(std::string_view name, Value value, WriteCallback done);
  // The same from text an operator or a script typed (parse_value).
  void write_text(std::string_view name, std::string_view text, WriteCallback done);

  boost::signals2::connection subscribe(std::function<void(const TagUpdate&)> handler);

  std::optional<LinkStatistics> statistics(std::string_view connection) const;
  // The facts of the session now serving the connection (nothing before the first one).
  std::optional<channel::ConnectionInfo> connection_info(std::string_view connection) const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace scada::tags
