// runtime: the processes and their commands (scadactl now; scadad later).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace scada::runtime {

// ---- Capture files: pcap / pcapng (format by magic number), Ethernet (802.1Q), Linux cooked
// (v1, v2), BSD loopback and raw IP link types; IPv4 / IPv6; TCP reassembled per direction.

struct TcpEndpoint {
  std::string address;  // printable IPv4 / IPv6
  std::uint16_t port = 0;
  bool operator==(const TcpEndpoint&) const = default;
};

// A run of in-order TCP payload bytes of one direction, with the capture frame it ended in.
struct TcpChunk {
  std::size_t frame = 0;   // 1-based frame number in the capture
  std::size_t stream = 0;  // one id per TCP direction; a new SYN on the same ports starts another
  TcpEndpoint from, to;
  std::vector<std::uint8_t> bytes;
};

struct CaptureReadResult {
  std::vector<TcpChunk> chunks;  // in capture order, reassembled per direction
  std::size_t frames = 0;
  std::vector<std::string> warnings;  // frames that could not be parsed, with the reason
};

// Reads a capture file. Throws std::runtime_error naming the file, the problem and the byte
// offset when the file cannot be read as a capture at all; damage after a valid file header
// (truncated records, absurd lengths, unparseable frames) becomes warnings instead.
CaptureReadResult read_capture(const std::string& path);
// The same from an open stream; name is what the messages call it.
CaptureReadResult read_capture(std::istream& in, const std::string& name);

// ---- scadactl commands. Each returns the process exit status.

struct DecodeOptions {
  std::string capture;
  bool json = false;
};
int decode_command(const DecodeOptions& options, std::ostream& out, std::ostream& err);

struct PlanOptions {
  std::string tag_file;
  std::size_t pdu = 240;
  std::size_t max_items = 20;
  bool json = false;
};
int plan_command(const PlanOptions& options, std::ostream& out, std::ostream& err);

// scadactl probe: one attempt with the runtime's connection code and the device certificate
// store (quarantine included), then the session's facts or the reason it failed. Exit 0 when
// the session came up, 1 when it did not, 2 when the options or files cannot be used.
struct ProbeOptions {
  std::string address = "127.0.0.1";
  std::uint16_t port = 102;
  std::string mode = "tls";      // none, tls, s7-secure
  std::string store;             // the device certificate store folder
  std::string roots;             // CA certificates; default: <store>/../pki/roots
  std::string certificate, key;  // own certificate (mutual TLS)
  std::string psk_identity, psk_file;
  std::vector<std::string> partner_certificates;  // pinned PLC certificates or extra CAs
  std::string plc_name;                           // identity for CA-issued certificates
  std::string name = "probe";                     // connection name (events, pins)
  std::uint8_t rack = 0, slot = 1;
  std::chrono::milliseconds timeout{5000};
  bool json = false;
};
int probe_command(const ProbeOptions& options, std::ostream& out, std::ostream& err);

// scadactl psk generate [FILE]: a strong pre-shared key (256 bits as 64 hex digits), printed
// or written to FILE with mode 0600. scadactl psk check FILE: the strength check. With json,
// one JSON object on out: {"file", "written"} or {"key"}; {"file", "ok", "bits"|"error"}.
struct PskGenerateOptions {
  std::string file;
  bool force = false;
  bool json = false;
};
int psk_generate_command(const PskGenerateOptions& options, std::ostream& out, std::ostream& err);
int psk_check_command(const std::string& file, std::ostream& out, std::ostream& err,
                      bool json = false);

// scadactl import --project DIR [--dry-run] [--yes] [--json] BUNDLE: validates the bundle,
// shows the plan (connections, tags, every certificate with subject, issuer, fingerprint and
// validity), asks before trusting new certificates (--yes answers for scripts) and applies it
// in one step. Exit 0 imported, valid with --dry-run, or nothing to change; 1 the bundle is
// not valid (the problems are listed with line and element); 2 the project cannot be used;
// 3 the confirmation was refused.
struct ImportOptions {
  std::string project, bundle;
  bool dry_run = false, yes = false, json = false;
};
int import_command(const ImportOptions& options, std::istream& in, std::ostream& out,
                   std::ostream& err);
// scadactl project init DIR: an empty project. Exit 0, or 2 with the reason. With json, one
// JSON object on out: {"project", "created", "error" (when not)}.
int project_init_command(const std::string& dir, std::ostream& out, std::ostream& err,
                         bool json = false);

// scadad --project DIR [--api ADDR:PORT|off] [--api-token-file F] [--log-level L]
// [--event-log-limit N]: opens the project (finishing an interrupted import), builds its
// connections and tags (with the start values of the system tags), starts acquisition and the
// store watcher, serves the control API (README "Control API") and logs one line per event to
// log (no secrets) and into the project's event log (kept to event_log_limit rows, oldest
// deleted first). SIGHUP re-reads the project: unchanged connections and tags are not touched,
// new ones start, removed ones stop, changed ones restart. SIGTERM or SIGINT closes every
// session in order (TLS close_notify) and returns 0 within about half a second. Exit 2 when
// the options or the project cannot be used.
struct DaemonOptions {
  std::string project;
  std::string api = "127.0.0.1:8700";  // "off": no API
  std::string api_token_file;          // required for a non-loopback listener
  std::string log_level = "info";      // debug, info, warning, error
  std::size_t event_log_limit = 100000;
  // Timing of every connection, as parse_duration reads it: how long requests may wait on a
  // silent PLC before the session counts as dead (100ms..1h), how long one attempt (TCP, TLS,
  // setup) may take (500ms..1h), and the longest wait between attempts (500ms..1h).
  std::string dead_peer_timeout = "3s";
  std::string connect_timeout = "5s";
  std::string retry_max = "30s";
};
int run_daemon(const DaemonOptions& options, std::ostream& log, std::ostream& err);

// scadactl commands that talk to a running scadad (its control API; runtime/SCADACTL.md). The
// token for a scadad started with --api-token-file comes from token_file or the environment
// variable SCADA_API_TOKEN and goes out as "Authorization: Bearer <token>". Exit codes of all of
// them: 0 done (tag get: every tag good; tag wait: the condition holds); 1 the operation failed
// or the condition did not hold in time (a write refused, an unknown tag, connection or
// certificate, a tag not good, a switch not done); 2 bad usage, a token scadad refuses (401)
// included; 3 scadad cannot be reached (or stopped answering).
struct ClientOptions {
  std::string api = "http://127.0.0.1:8700";  // scadad's default --api
  std::string token_file;                     // "": SCADA_API_TOKEN when set
  bool json = false;
  std::chrono::milliseconds timeout{20000};  // bound of one request
};

// "500ms", "10s", "2m", "1h", or a plain number of seconds ("1.5"). Throws
// std::invalid_argument naming the text for anything else (negative or above a day included).
std::chrono::milliseconds parse_duration(const std::string& text);

int tag_get_command(const ClientOptions& options, const std::vector<std::string>& names,
                    std::ostream& out, std::ostream& err);
int tag_set_command(const ClientOptions& options, const std::string& name, const std::string& value,
                    std::ostream& out, std::ostream& err);

// scadactl tag watch: the current state of each name, then every change, one line each, until
// count lines (0: no limit), the duration (0: none), or SIGINT/SIGTERM (all exit 0).
struct TagWatchOptions {
  std::vector<std::string> names;
  std::size_t count = 0;
  std::chrono::milliseconds duration{0};
};
int tag_watch_command(const ClientOptions& options, const TagWatchOptions& watch, std::ostream& out,
                      std::ostream& err);

// scadactl tag wait NAME OP VALUE: exit 0 once the tag is good and its value satisfies
// OP (== != < <= > >=) VALUE, 1 when timeout passes first (or SIGINT/SIGTERM); timeout 0: the
// current state decides.
struct TagWaitOptions {
  std::string name, op, value;
  std::chrono::milliseconds timeout{30000};
};
int tag_wait_command(const ClientOptions& options, const TagWaitOptions& wait, std::ostream& out,
                     std::ostream& err);

int conn_list_command(const ClientOptions& options, std::ostream& out, std::ostream& err);

// scadactl conn switch: the system-tag sequence of DESIGN.md section 7 to the alternative or
// the original address (break-before-make, or make-before-break with hot), then waiting until
// the connection is up there; exit 1 with LastError when it is not within timeout.
struct ConnSwitchOptions {
  std::string connection;
  bool alternative = true;  // false: back to the original address
  std::string address;      // written to @<c>@AlternativeAddress first when not empty
  bool hot = false;
  std::chrono::milliseconds timeout{30000};
};
int conn_switch_command(const ClientOptions& options, const ConnSwitchOptions& change,
                        std::ostream& out, std::ostream& err);

// scadactl cert list [--kind K]; cert trust|untrust FINGERPRINT (64 hex digits or a unique
// prefix of at least 8; colons allowed).
int cert_list_command(const ClientOptions& options, const std::string& kind, std::ostream& out,
                      std::ostream& err);
int cert_trust_command(const ClientOptions& options, const std::string& fingerprint, bool trust,
                       std::ostream& out, std::ostream& err);

// scadactl events: the newest `last` events (of kind, when not empty); with follow, then every
// new one until the duration (0: none) or SIGINT/SIGTERM (exit 0).
struct EventsOptions {
  std::size_t last = 50;
  std::string kind;
  bool follow = false;
  std::chrono::milliseconds duration{0};
};
int events_command(const ClientOptions& options, const EventsOptions& events, std::ostream& out,
                   std::ostream& err);

// ---- scadactl probe and scadactl bench connect alike (this header does not include channel/ and
// certstore/: their types are only named here).
}  // namespace scada::runtime
namespace scada::channel {
struct ConnectionConfig;
}
namespace scada::certstore {
struct StoreLayout;
class CertificateStore;
}  // namespace scada::certstore
namespace scada::runtime {

// ProbeOptions made into the runtime's connection settings (one attempt, no reconnect, no
// session resumption) and its device certificate store (probe_command.cpp). The first two
// throw std::runtime_error with a message for the operator when an option or file cannot be
// used; load_store reloads the store now and returns the problems of the files it skipped.
channel::ConnectionConfig probe_connection_config(const ProbeOptions& options);
certstore::StoreLayout probe_store_layout(const ProbeOptions& options);
std::vector<std::string> load_store(certstore::CertificateStore& store);

// scadactl bench read: reads the tags of tag_file (the format of scadactl plan) over one
// connection made as scadactl probe makes it, back to back for `duration`: the plan for the
// granted PDU (at most max_items items per request, fewer when the PDU allows fewer), the
// granted AmQ requests in flight all the time. Every value is checked: an item error, a value
// that does not decode, or a value that breaks the pattern is an error. Patterns: "unchanged"
// (each value equals the previous read of the same tag: PLC memory that nothing writes; not
// plcsim's process block DB100) and "counter" (integer values that never decrease, such as
// plcsim's DB100.DBD0). Prints requests/s, tags/s, round trips p50/p99, the process's CPU time
// and the session's facts; with json, JSON lines, the last one {"requests_per_s": X,
// "tags_per_s": X, "rtt_p50_us": X, "rtt_p99_us": X, "errors": N}. Exit 0 ran without errors,
// 1 errors or no session, 2 the options or files cannot be used.
struct BenchReadOptions {
  ProbeOptions connection;  // address, mode, credentials, timeout (its json is not used)
  std::string tag_file;
  std::chrono::milliseconds duration{10000};  // 100 ms .. 1 h
  std::string pattern = "unchanged";          // or "counter"
  std::size_t max_items = 20;                 // items per request, 1..255
  std::uint16_t amq = 8;                      // asked for in setup (the runtime's default)
  bool json = false;
};
int bench_read_command(const BenchReadOptions& options, std::ostream& out, std::ostream& err);

}  // namespace scada::runtime
