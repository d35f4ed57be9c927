// channel: the S7 wire codec (TPKT / COTP / S7comm / InitSSL) and the read planner.
//
// Everything here is sans-I/O: pure functions and small state machines over bytes, used by the
// runtime's connections and by plcsim alike (one codec for both directions). Decoders never
// read past their input and report malformed input as a WireError with the byte offset.
// Wire facts: ../shared/docs/WIRE.md.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/signals2/connection.hpp>

#include "certstore/certstore.h"

namespace scada::channel {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

// ---------------------------------------------------------------------------------------------
// Errors and results

enum class WireErrorKind {
  truncated,   // input ends before the structure does
  bad_value,   // a field holds a value the protocol does not allow
  bad_length,  // a length field disagrees with the bytes present
  too_large,   // a configured bound (frame size, fragment count, item count) was exceeded
};

struct WireError {
  WireErrorKind kind;
  std::size_t offset;  // byte offset into the decoder's input where the problem was found
  std::string reason;  // what was wrong, in words
  std::string to_string() const;
};

template <class T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}          // NOLINT(google-explicit-constructor)
  Result(WireError error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  const T& value() const& { return std::get<0>(v_); }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const T* operator->() const { return &std::get<0>(v_); }
  const T& operator*() const { return std::get<0>(v_); }
  const WireError& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, WireError> v_;
};

// ---------------------------------------------------------------------------------------------
// TPKT (RFC 1006)

inline constexpr std::size_t kTpktHeaderSize = 4;
inline constexpr std::size_t kTpktMaxFrame = 65535;

// Wraps a COTP TPDU into one TPKT frame. The caller keeps it within 65531 bytes.
Bytes tpkt_wrap(ByteView tpdu);

// Reassembles TPKT frames from a TCP byte stream cut at arbitrary points.
// After an error the stream is unusable (the caller closes the connection).
class TpktReassembler {
 public:
  explicit TpktReassembler(std::size_t max_frame = kTpktMaxFrame);
  // Appends bytes received from TCP. Returns the first framing error found, if any.
  std::optional<WireError> feed(ByteView chunk);
  // Moves the next complete frame's payload (the COTP TPDU, without the TPKT header) into out.
  bool next(Bytes& out);
  std::size_t buffered() const { return buffer_.size() - consumed_; }

 private:
  std::size_t max_frame_;
  Bytes buffer_;
  std::size_t consumed_ = 0;         // bytes of buffer_ already handed out
  std::size_t scanned_ = 0;          // bytes of buffer_ whose headers were validated
  std::uint64_t stream_offset_ = 0;  // stream position of buffer_[0], for error offsets
  std::optional<WireError> failed_;
};

// ---------------------------------------------------------------------------------------------
// COTP (ISO 8073 class 0)

enum class CotpCode : std::uint8_t {
  cr = 0xE0,
  cc = 0xD0,
  dr = 0x80,
  dc = 0xC0,
  dt = 0xF0,
  er = 0x70
};

// A transport selector: two bytes for classic PLC connections, text such as SIMATIC-ROOT-HMI in
// s7-secure mode.
struct Tsap {
  Bytes bytes;
  static Tsap from_u16(std::uint16_t v);
  static Tsap from_text(const std::string& text);
  // Classic remote TSAP: (type << 8) | (rack << 5) | slot; type 1 PG, 2 OP, 3 basic.
  static Tsap remote(std::uint8_t type, std::uint8_t rack, std::uint8_t slot);
  std::optional<std::uint16_t> as_u16() const;
  std::string to_string() const;  // "0x0102", or the text in quotes when printable
  bool operator==(const Tsap&) const = default;
};

struct CotpConnect {  // CR (request) or CC (confirm)
  bool confirm = false;
  std::uint16_t dst_ref = 0;
  std::uint16_t src_ref = 0;
  std::uint8_t protocol_class = 0;
  std::optional<std::uint8_t> tpdu_size_code;  // size = 1 << code; 0x0A = 1024
  std::optional<Tsap> calling;
  std::optional<Tsap> called;
  std::size_t tpdu_size() const { return tpdu_size_code ? std::size_t{1} << *tpdu_size_code : 128; }
  bool operator==(const CotpConnect&) const = default;
};

struct CotpData {  // DT
  bool eot = true;
  std::uint8_t number = 0;
  Bytes payload;
  bool operator==(const CotpData&) const = default;
};

struct CotpDisconnect {  // DR (request, with reason) or DC (confirm)
  bool confirm = false;
  std::uint16_t dst_ref = 0;
  std::uint16_t src_ref = 0;
  std::uint8_t reason = 0;  // DR only
  bool operator==(const CotpDisconnect&) const = default;
};

struct CotpReject {  // ER
  std::uint16_t dst_ref = 0;
  std::uint8_t cause = 0;
  bool operator==(const CotpReject&) const = default;
};

using CotpTpdu = std::variant<CotpConnect, CotpData, CotpDisconnect, CotpReject>;

Result<CotpTpdu> decode_cotp(ByteView tpdu);
Bytes encode_cotp(const CotpTpdu& tpdu);
const char* cotp_name(const CotpTpdu& tpdu);  // "CR", "CC", "DT", "DR", "DC", "ER"

// Joins DT payloads until EOT into one PDU. Empty DTs without EOT ("fast acknowledge") are
// dropped. Bounds the number of fragments and the size of the joined PDU.
class CotpReassembler {
 public:
  explicit CotpReassembler(std::size_t max_pdu = 65536, std::size_t max_fragments = 64);
  // Returns the joined PDU when dt completes one, nothing while more are expected.
  Result<std::optional<Bytes>> add(CotpData dt);
  bool idle() const { return fragments_ == 0; }

 private:
  std::size_t max_pdu_;
  std::size_t max_fragments_;
  std::size_t fragments_ = 0;
  Bytes pending_;
};

// Cuts a PDU into DT TPDUs (each already TPKT-framed) whose TPKT length stays within
// 4 + tpdu_size, EOT on the last.
std::vector<Bytes> frame_dt(ByteView pdu, std::size_t tpdu_size);

// ---------------------------------------------------------------------------------------------
// S7comm (protocol id 0x32)

enum class Rosctr : std::uint8_t { job = 1, ack = 2, ack_data = 3, userdata = 7 };
const char* rosctr_name(Rosctr r);

enum class Function : std::uint8_t {
  cpu_services = 0x00,
  setup_communication = 0xF0,
  read_var = 0x04,
  write_var = 0x05,
  request_download = 0x1A,
  download_block = 0x1B,
  download_ended = 0x1C,
  start_upload = 0x1D,
  upload = 0x1E,
  end_upload = 0x1F,
  plc_control = 0x28,
  plc_stop = 0x29,
};
const char* function_name(std::uint8_t f);

enum class Area : std::uint8_t {
  peripheral = 0x80,
  inputs = 0x81,
  outputs = 0x82,
  flags = 0x83,
  data_block = 0x84,
  instance_db = 0x85,
  counters = 0x1C,
  timers = 0x1D,
};
const char* area_name(Area a);

// Element transport size of a request item.
enum class TransportSize : std::uint8_t {
  bit = 0x01,
  byte = 0x02,
  character = 0x03,
  word = 0x04,
  integer = 0x05,
  dword = 0x06,
  dinteger = 0x07,
  real = 0x08,
  counter = 0x1C,
  timer = 0x1D,
};

// Transport size of a data item (replies and write data).
enum class DataSize : std::uint8_t {
  null = 0x00,
  bit = 0x03,
  byte_word_dword = 0x04,
  integer = 0x05,
  dinteger = 0x06,
  real = 0x07,
  octet_string = 0x09,
};

enum class ReturnCode : std::uint8_t {
  reserved = 0x00,
  hardware_fault = 0x01,
  access_denied = 0x03,
  address_out_of_range = 0x05,
  type_not_supported = 0x06,
  type_inconsistent = 0x07,
  object_does_not_exist = 0x0A,
  success = 0xFF,
};
const char* return_code_text(std::uint8_t rc);  // words for any byte value

// Error class/code as one word (0x8104, 0xD209, ...) and in words.
std::string s7_error_text(std::uint16_t error);

struct Header {
  Rosctr rosctr = Rosctr::job;
  std::uint16_t redundancy = 0;
  std::uint16_t pdu_ref = 0;
  std::uint16_t param_length = 0;  // filled in by the encoder
  std::uint16_t data_length = 0;   // filled in by the encoder
  std::uint8_t error_class = 0;    // Ack and Ack_Data only
  std::uint8_t error_code = 0;
  std::uint16_t error() const { return std::uint16_t(error_class << 8 | error_code); }
  std::size_t size() const { return rosctr == Rosctr::ack || rosctr == Rosctr::ack_data ? 12 : 10; }
  bool operator==(const Header&) const = default;
};

struct SetupCommunication {
  std::uint16_t amq_calling = 1;
  std::uint16_t amq_called = 1;
  std::uint16_t pdu_size = 480;
  bool operator==(const SetupCommunication&) const = default;
};

// One 12-byte "any pointer" item: what to read or write.
struct VarItem {
  TransportSize transport = TransportSize::byte;
  std::uint16_t count = 1;
  std::uint16_t db = 0;
  Area area = Area::data_block;
  std::uint32_t address = 0;  // byte * 8 + bit; the number itself for timers and counters
  bool operator==(const VarItem&) const = default;
};

// One data item: in a Read Var reply (with a return code) or Write Var request (code 0).
struct DataItem {
  std::uint8_t return_code = 0xFF;
  DataSize size = DataSize::byte_word_dword;
  Bytes data;  // no data for error items
  bool operator==(const DataItem&) const = default;
};

struct ReadVarRequest {
  std::vector<VarItem> items;
  bool operator==(const ReadVarRequest&) const = default;
};
struct ReadVarResponse {
  std::vector<DataItem> items;
  bool operator==(const ReadVarResponse&) const = default;
};
struct WriteVarRequest {
  std::vector<VarItem> items;
  std::vector<DataItem> data;  // one per item
  bool operator==(const WriteVarRequest&) const = default;
};
struct WriteVarResponse {
  std::vector<std::uint8_t> return_codes;
  bool operator==(const WriteVarResponse&) const = default;
};

// Userdata parameter (8 bytes for a first request, 12 for responses and follow-up requests).
struct UserdataParam {
  std::uint8_t method = 0x11;    // 0x11 request, 0x12 response / follow-up
  std::uint8_t type = 4;         // 4 request, 8 response, 0 push
  std::uint8_t group = 4;        // 4 CPU functions, 7 time functions, ...
  std::uint8_t subfunction = 1;  // 1 read SZL in group 4
  std::uint8_t sequence = 0;
  // Present in the 12-byte form only.
  bool long_form = false;
  std::uint8_t data_unit_ref = 0;
  bool more_follows = false;  // "last data unit" byte: 0x00 last, 0x01 more
  std::uint16_t error = 0;
  bool operator==(const UserdataParam&) const = default;
};

struct UserdataData {
  std::uint8_t return_code = 0xFF;
  DataSize size = DataSize::octet_string;
  Bytes payload;
  bool operator==(const UserdataData&) const = default;
};

struct Userdata {
  UserdataParam param;
  UserdataData data;
  bool operator==(const Userdata&) const = default;
};

// Parameter and data of a function this codec does not model (block up/download, PLC control).
struct OtherFunction {
  Bytes param;
  Bytes data;
  bool operator==(const OtherFunction&) const = default;
};

// An Ack, or an Ack_Data that carries no parameter (errors reported in the header only).
struct NoBody {
  bool operator==(const NoBody&) const = default;
};

using Body = std::variant<NoBody, SetupCommunication, ReadVarRequest, ReadVarResponse,
                          WriteVarRequest, WriteVarResponse, Userdata, OtherFunction>;

struct Pdu {
  Header header;
  Body body;
  bool operator==(const Pdu&) const = default;
};

// Decodes one S7comm PDU (starting at the 0x32 byte). Read Var replies are decoded against
// the item count in their parameter; Write Var data against the request items.
Result<Pdu> decode_s7(ByteView pdu);
Bytes encode_s7(const Pdu& pdu);

// The function byte of a PDU's parameter, if it has one.
std::optional<std::uint8_t> function_of(const Pdu& pdu);

// ---- SZL (system status list) reads over userdata group 4 subfunction 1

struct SzlRequest {
  std::uint16_t id = 0;
  std::uint16_t index = 0;
};
Pdu szl_request(std::uint16_t pdu_ref, std::uint8_t sequence, SzlRequest req);
// Asks for the next piece of a long answer (carries the response's sequence and unit ref).
Pdu szl_continue(std::uint16_t pdu_ref, const UserdataParam& previous_response);
// The SZL id and index a userdata request or the first piece of a response names. A later
// piece of a long answer starts with records, not with the id: callers that see a response
// after one with more_follows set must not ask this (scadactl decode tracks that per stream).
std::optional<SzlRequest> szl_id_of(const Pdu& pdu);

struct SzlList {
  std::uint16_t id = 0;
  std::uint16_t index = 0;
  std::uint16_t record_length = 0;
  std::vector<Bytes> records;
};

// Joins the pieces of one SZL answer (first response, then continuation responses).
class SzlAssembler {
 public:
  // At most max_bytes joined, in at most max_pieces pieces; a piece that announces more but
  // carries no data is an error (a PLC could otherwise keep a reader asking forever).
  explicit SzlAssembler(std::size_t max_bytes = 65536, std::size_t max_pieces = 2048)
      : max_bytes_(max_bytes), max_pieces_(max_pieces) {}
  // Adds one userdata response. Returns the list when the last piece arrived.
  Result<std::optional<SzlList>> add(const Userdata& response);

 private:
  std::size_t max_bytes_, max_pieces_;
  Bytes joined_;
  std::size_t pieces_ = 0;
  bool started_ = false;
};

// Server side: cuts an SZL list into userdata response pieces that fit the PDU size.
std::vector<Pdu> szl_responses(std::uint16_t pdu_ref, std::uint8_t sequence, std::uint8_t unit_ref,
                               const SzlList& list, std::size_t pdu_size);
Bytes szl_serialize(const SzlList& list);

struct ModuleIdentification {           // SZL 0x0011
  std::string order_number;             // index 0x0001
  std::optional<std::string> firmware;  // index 0x0007, "V2.9.3"
};
struct ComponentIdentification {  // SZL 0x001C
  std::string station_name, plc_name, serial_number, module_type;
};
enum class CpuMode { run, stop, unknown };

Result<ModuleIdentification> parse_szl_0011(const SzlList& list);
Result<ComponentIdentification> parse_szl_001c(const SzlList& list);
Result<CpuMode> parse_szl_0424(const SzlList& list);

// ---- InitSSL (s7-secure mode; WIRE.md §5). Framed as 72 01 LEN(2) body 72 01 00 00.

struct InitSsl {
  bool response = false;
  std::uint16_t function = 0x05B3;  // 0x05B3 InitSSL; 0x05A9 from a PLC without secure comm
  std::uint8_t return_value = 0;    // response only
  bool accepted() const { return response && function == 0x05B3 && return_value == 0; }
};
Bytes encode_init_ssl_request();
Bytes encode_init_ssl_response(std::uint16_t function = 0x05B3, std::uint8_t return_value = 0);
Result<InitSsl> decode_init_ssl(ByteView payload);

// ---- Size formulas of WIRE.md §3 (PDU = negotiated length counted from the 0x32 byte).

inline constexpr std::size_t kReadRequestBase = 12, kItemSpec = 12, kReadReplyBase = 14,
                             kDataItemHeader = 4;
std::size_t read_request_size(std::size_t items);
std::size_t max_read_items(std::size_t pdu);        // (PDU - 12) / 12
std::size_t max_read_item_bytes(std::size_t pdu);   // PDU - 18
std::size_t max_write_item_bytes(std::size_t pdu);  // PDU - 28

// ---------------------------------------------------------------------------------------------
// TLS for the tls and s7-secure modes (WIRE.md §5, DESIGN.md §4): the one place that builds SSL
// contexts, and a TLS endpoint over memory buffers. The endpoint moves ciphertext as bytes, so
// the same code serves TLS from the first TCP byte (tls) and TLS inside COTP DT payloads
// (s7-secure), on the client (runtime) and on the server (plcsim) side.

struct TlsSettings {
  // Own certificate chain (leaf first) and private key, PEM or DER files. A server needs them
  // unless it uses a PSK; a client presents them when the PLC asks (mutual TLS).
  std::filesystem::path certificate, key;
  // Server only: require client certificates issued by this CA (PEM file).
  std::filesystem::path client_ca;
  // TLS 1.3 external PSK: identity and key bytes (instead of, or besides, certificates).
  std::string psk_identity;
  Bytes psk_key;
  // TLS 1.3 only unless a connection asks for 1.2 explicitly.
  bool allow_tls12 = false;
  // Tests only: append NSS key log lines here so that tshark can decrypt a capture.
  std::filesystem::path keylog;
};

// An immutable SSL_CTX. Sessions keep the context they were born with; a new context (renewed
// certificate, changed trust) applies to new handshakes only.
class TlsContext;
using TlsContextPtr = std::shared_ptr<const TlsContext>;

// Throw std::runtime_error naming the file and the reason when a file cannot be used.
TlsContextPtr make_tls_server_context(const TlsSettings& settings);
TlsContextPtr make_tls_client_context(const TlsSettings& settings);

// A client's trust decision on the PLC's chain (leaf first, DER), made during the handshake:
// nothing when trusted, else the reason (the handshake then fails with a bad_certificate alert).
using TlsVerifier = std::function<std::optional<std::string>(const std::vector<Bytes>& chain)>;

// A TLS session a client may offer to resume (opaque; holds an SSL_SESSION).
class TlsSession;

class TlsEngine {
 public:
  // A client engine without a verifier rejects every certificate (fail closed); server_name is
  // sent as SNI when it is a host name. resume: a session from resumable_session() of an engine
  // of the same context; the caller decides whether resuming is still allowed (a resumed
  // handshake does not call the verifier).
  TlsEngine(TlsContextPtr context, bool server, TlsVerifier verifier = {},
            const std::string& server_name = {}, std::shared_ptr<TlsSession> resume = {});
  ~TlsEngine();
  TlsEngine(const TlsEngine&) = delete;
  TlsEngine& operator=(const TlsEngine&) = delete;

  void feed(ByteView ciphertext);  // bytes received from the peer
  // Advances the handshake and appends available plaintext; false once the session failed
  // (error() says why: the verifier's reason, an alert, a protocol error).
  bool pump(Bytes& plaintext);
  bool write(ByteView plaintext);  // after the handshake
  Bytes take_output();             // ciphertext to send (handshake, records, alerts)
  void shutdown();                 // queues close_notify
  bool key_update();               // TLS 1.3 KeyUpdate, asking the peer to update too

  bool established() const;
  bool peer_closed() const;
  const std::string& error() const;
  std::string version() const;            // "TLSv1.3"
  std::string cipher() const;             // "TLS_AES_128_GCM_SHA256"
  std::string group() const;              // "X25519", "prime256v1"; empty with a PSK-only handshake
  bool used_psk() const;                  // an external PSK or a resumed session
  bool resumed() const;                   // the session offered at construction was accepted
  std::vector<Bytes> peer_chain() const;  // leaf first; empty when the peer sent none
  Bytes own_certificate() const;  // DER of this side's certificate (sent when the peer asks)
  // The last fatal alert the peer sent, in words ("handshake failure", "certificate required")
  // and as its code (40, 116); else "" and 0.
  const std::string& peer_alert() const;
  int peer_alert_code() const;
  // Client: a session that a later engine of the same context may resume (TLS 1.3 ticket), or
  // null when the server sent none (yet).
  std::shared_ptr<TlsSession> resumable_session() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---------------------------------------------------------------------------------------------
// Read planner (WIRE.md §3–4)

// One value to read: area + DB + byte offset + size. Bits are planned as their byte and cut
// out afterwards; timers and counters use their number as offset and 2 bytes per element.
struct ReadTag {
  Area area = Area::data_block;
  std::uint16_t db = 0;
  std::uint32_t offset = 0;  // byte offset; timer/counter number for those areas
  std::uint32_t size = 1;    // bytes; elements for timers/counters
  std::optional<std::uint8_t> bit;
};

struct PlannerLimits {
  std::size_t pdu = 240;
  std::size_t max_items = 20;  // per request; up to 255 (then only the PDU limits)
  std::size_t amq = 1;         // requests the engine may keep in flight
};

// Where one tag's bytes are inside one item of a reply.
struct Slice {
  std::size_t tag = 0;       // index into the planner's input
  std::uint32_t offset = 0;  // byte offset within the item's data
  std::uint32_t length = 0;  // bytes
  std::optional<std::uint8_t> bit;
};

struct PlannedItem {
  VarItem item;
  std::uint32_t bytes = 0;  // data bytes the reply carries for this item
  std::vector<Slice> slices;
};

struct PlannedRequest {
  std::vector<PlannedItem> items;
  std::size_t request_size = 0;  // bytes, from 0x32
  std::size_t reply_size = 0;    // bytes, from 0x32, when every item succeeds
};

struct ReadPlan {
  std::vector<PlannedRequest> requests;
  std::size_t items = 0;
  std::size_t payload_bytes = 0;  // data bytes the PLC sends back
  std::size_t wasted_bytes = 0;   // of those, bytes read only because of merging
};

struct PlanError {
  std::size_t tag;
  std::string reason;
};

// Plans the fewest requests it can find for the tags under the limits. Fails only when a tag
// cannot be read at all under them (a value larger than one item can carry).
std::variant<ReadPlan, PlanError> plan_reads(std::span<const ReadTag> tags, PlannerLimits limits);

// The bytes of one tag cut from a reply, or the PLC's return code when its item failed.
struct TagBytes {
  std::size_t tag = 0;
  std::uint8_t return_code = 0xFF;
  Bytes data;  // for bit tags: one byte, 0 or 1
};

// Cuts a Read Var reply to one planned request back into tag values.
Result<std::vector<TagBytes>> cut_reply(const PlannedRequest& request,
                                        const ReadVarResponse& reply);

// The request PDU for a planned request.
Pdu read_request_pdu(std::uint16_t pdu_ref, const PlannedRequest& request);

// ---------------------------------------------------------------------------------------------
// Pre-shared keys (DESIGN.md §4): TLS 1.3 external PSK, written as hex text of 32 to 80 digits
// (16 to 40 key bytes). Weak keys are refused: fewer than 32 digits (128 bits), few distinct
// digits, a repeated pattern, or long runs of one digit or of counting digits.

// The key bytes of a PSK text (surrounding white space ignored), or why it is refused.
std::variant<Bytes, std::string> parse_psk_text(std::string_view text);
// A strong key: 64 hex digits (256 bits) from the system's random generator.
std::string generate_psk_text();
// Reads a PSK file (its first line) with parse_psk_text. Throws std::runtime_error naming the
// file: unreadable, group or world readable (keys are private: mode 0600), or a weak key.
Bytes read_psk_file(const std::filesystem::path& file);

// ---------------------------------------------------------------------------------------------
// Connections (DESIGN.md §4, WIRE.md §5): one PLC connection as a state machine on a strand.
//
// A started connection keeps trying to be up: TCP (with keepalive), then per mode
//   none       COTP CR/CC, setup communication
//   tls        TLS from the first byte, then COTP CR/CC and setup inside it
//   s7-secure  COTP CR/CC (calling 06 00, called SIMATIC-ROOT-HMI, TPDU 1024) and InitSSL in
//              clear, then TLS inside DT payloads, then setup inside TLS
// then serves requests with up to the negotiated AmQ jobs in flight, matched by PDU reference.
// A failed attempt waits (exponential backoff with jitter) and tries again; a new trust
// snapshot (a file moved into trusted/, a new root) ends the wait at once. A secure connection
// never falls back to plaintext.
//
// Trust: every full handshake asks the store (CertificateStore::decide: quarantine, trust on
// first use) during the handshake; nothing is accepted without its decision. A new snapshot
// re-checks the live session (TrustSnapshot::verify with live_session): a revoked or untrusted
// peer certificate closes it; expiry does not. Each handshake builds its client context from
// the files as they are then (own certificate, key, PSK), so renewed files need no restart.
// A session may be resumed only under the same snapshot and context and before the peer
// certificate expires.
//
// Dead peers: nothing received for dead_peer_timeout while a job waits closes the session
// (reason timeout); an idle session sends a small job (SZL 0x0424, the CPU's state) after a
// third of that time without traffic, so a silent peer is noticed within the bound too. TCP
// keepalive and TCP_USER_TIMEOUT, set from the same bound, back this up.

enum class SecurityMode { none, tls, s7_secure };
const char* security_mode_name(SecurityMode mode);  // "none", "tls", "s7-secure"
std::optional<SecurityMode> parse_security_mode(std::string_view text);

// Why a connection attempt or a session ended. Names as in `scadactl probe --json`.
enum class FailureReason {
  none,
  untrusted_certificate,  // self-signed and not trusted (quarantined), or a faulty chain
  unknown_ca,             // issued by a CA that was not imported (quarantined)
  expired,
  not_yet_valid,
  revoked,
  identity_mismatch,
  psk_mismatch,       // the PLC refused our PSK (or has another one)
  tls_alert,          // the PLC ended the handshake or session with a TLS alert
  timeout,            // connect, handshake or a job took longer than its bound (dead peer)
  refused,            // TCP refused, or the PLC closed / disconnected before the session was up
  protocol_error,     // bytes the protocol does not allow, or a closed session
  downgrade_refused,  // a secure connection found a plaintext endpoint
  config_error,       // this side's files or settings cannot be used (detail names them)
  stopped,            // stop() was called
};
// "untrusted-certificate", "unknown-ca", ..., "downgrade-refused", "config-error", "stopped"
const char* failure_reason_name(FailureReason reason);
FailureReason failure_reason_of(certstore::Verdict verdict);

struct ConnectionConfig {
  std::string name = "PLC1";
  std::string address = "127.0.0.1";  // IPv4, IPv6 or host name
  std::uint16_t port = 102;
  SecurityMode mode = SecurityMode::none;
  // COTP in modes none and tls: local TSAP 0x0100, remote TSAP from type/rack/slot unless set.
  std::uint8_t rack = 0, slot = 1, connection_type = 1;  // type 1 PG, 2 OP, 3 basic
  std::optional<Tsap> local_tsap, remote_tsap;
  std::uint16_t pdu_size = 960;  // asked for in setup; the PLC may grant less
  std::uint16_t amq = 8;         // jobs in flight asked for; the PLC may grant less

  // Identity and credentials.
  std::string plc_name;                            // matched against a CA-issued certificate's SAN
  std::vector<Bytes> partner_certificates;         // DER: pinned PLC certificates or extra CAs
  std::filesystem::path own_certificate, own_key;  // mutual TLS (key: mode 0600)
  std::string psk_identity;                        // external PSK ...
  std::filesystem::path psk_file;                  // ... and its key file (mode 0600)
  bool allow_tls12 = false;                        // TLS 1.2 only when asked for
  bool resume_sessions = true;

  // Timing.
  std::chrono::milliseconds connect_timeout{5000};  // TCP + handshakes + setup
  std::chrono::milliseconds dead_peer_timeout{3000};
  std::chrono::milliseconds retry_min{500}, retry_max{30000};            // backoff, before jitter
  std::chrono::milliseconds key_update_interval{std::chrono::hours(1)};  // 0: never
  bool reconnect = true;  // false: one attempt (scadactl probe)

  std::filesystem::path keylog;  // tests only: NSS key log for tshark
};

enum class ConnectionState {
  stopped,     // not started, or stop() called
  connecting,  // an attempt is under way
  up,          // session established, setup done: requests are served
  waiting,     // the last attempt or session failed; the next attempt is scheduled
};
const char* connection_state_name(ConnectionState state);  // "stopped", ..., "waiting"

// What the layer above learns on every state change, on the connection's strand.
struct ConnectionEvent {
  ConnectionState state = ConnectionState::stopped;
  FailureReason reason = FailureReason::none;        // why the last attempt or session ended
  std::string detail;                                // words for an operator; empty when up
  std::optional<std::filesystem::path> quarantined;  // the file the store wrote, if any
  std::chrono::milliseconds retry_in{0};             // state waiting: until the next attempt
};

// A consistent copy of a connection's current facts (any thread).
struct ConnectionInfo {
  ConnectionState state = ConnectionState::stopped;
  FailureReason last_reason = FailureReason::none;
  std::string last_detail;
  std::optional<std::filesystem::path> quarantined;
  std::uint64_t attempts = 0, sessions = 0;  // attempts begun; sessions that came up
  std::uint64_t key_updates = 0;             // scheduled KeyUpdates sent in this session
  // Of the current (or last) session:
  std::string tls_version, cipher, group;
  bool resumed = false, used_psk = false;
  std::optional<certstore::CertificateInfo> peer_certificate;
  std::string own_certificate_sha256;   // this side's certificate in the session; "" if none
  std::uint16_t pdu = 0, amq = 0;       // granted in setup communication
  std::size_t peak_jobs_in_flight = 0;  // most jobs this session had in flight at once
  std::size_t tpdu_size = 0;
  std::chrono::microseconds handshake_time{0};  // TCP connected -> setup done
  std::uint64_t trust_snapshot = 0;             // snapshot version the session was trusted under
};

// The outcome of one job: the PLC's reply PDU (S7 errors in its header are the caller's to
// judge), or why there is none.
struct JobError {
  FailureReason reason = FailureReason::protocol_error;  // not connected: stopped or the last one
  std::string detail;
  // The job had gone to the PLC when the session ended without its answer: the PLC may have
  // carried it out (a write may be in its memory). False: it never left this side.
  bool sent = false;
};
using JobResult = std::variant<Pdu, JobError>;
using JobCallback = std::function<void(JobResult)>;
using SzlResult = std::variant<SzlList, JobError>;

class Connection {
 public:
  // store: trust decisions and quarantine; it must outlive the connection. Nothing happens
  // before start().
  Connection(boost::asio::any_io_executor executor, certstore::CertificateStore& store,
             ConnectionConfig config);
  ~Connection();  // stops (closing the session in order) and detaches from the store
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void start();  // begin the first attempt; idempotent
  // Close the session in order (TLS close_notify, COTP DR) and stay down; pending jobs fail.
  void stop();

  // Any thread; callbacks run on the connection's strand. A job is refused at once (JobError)
  // when the session is not up or the job is larger than the granted PDU. Jobs beyond AmQ wait
  // in order; the engine assigns PDU references.
  void submit(Pdu job, JobCallback done);
  void read(std::vector<VarItem> items, JobCallback done);
  void write(std::vector<VarItem> items, std::vector<DataItem> data, JobCallback done);
  // A whole SZL list, continuation pieces included.
  void read_szl(SzlRequest request, std::function<void(SzlResult)> done);

  ConnectionInfo info() const;
  const ConnectionConfig& config() const;
  // State changes; handlers run on the strand, must be quick and must not throw.
  boost::signals2::connection subscribe(std::function<void(const ConnectionEvent&)> handler);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace scada::channel
