// certstore: the device certificate store (DESIGN.md §3, §5): certificate and CRL files, the
// store's folders, immutable trust snapshots and the decisions they make, quarantine, trust on
// first use, expiry warnings and the folder watcher.
//
// Every file is hostile input (DESIGN.md §10): sizes are bounded, nothing is read past the
// input, and what cannot be used comes back as a FileError naming the file and what is wrong
// with it. All functions are safe to call from several threads at once; the parse and read
// functions leave the calling thread's OpenSSL error queue empty.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <boost/signals2/signal.hpp>

namespace scada::certstore {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;
using TimePoint = std::chrono::system_clock::time_point;

// Why a file (or bytes from elsewhere, e.g. a bundle's inline certificate) cannot be used.
struct FileError {
  std::string source;             // the file's path, or the name the caller gave the bytes
  std::string reason;             // e.g. "64 trailing bytes after the DER certificate"
  std::string to_string() const;  // "<source>: <reason>"
  bool operator==(const FileError&) const = default;
};

template <class T>
using FileResult = std::variant<T, FileError>;

// ---------------------------------------------------------------------------------------------
// Certificate and CRL files
//
// The encoding is detected by content: input starting with a DER SEQUENCE (0x30) is DER and must
// hold exactly one object, with no byte after it; otherwise text with "-----BEGIN " lines is PEM
// (text around the blocks is ignored; a leading UTF-8 byte order mark too). Objects must be
// canonical DER (re-encoding gives the same bytes), so the fingerprint of a file is the
// fingerprint of the certificate, whoever computes it. Nothing is verified here: a CRL's
// signature and a certificate's chain are checked when a trust snapshot is built.
//
// Times are clamped to TimePoint's range (1677-09-21 .. 2262-04-11): RFC 5280's "no expiry"
// notAfter 99991231235959Z becomes TimePoint::max().
//
// The read_*_file functions read regular files only (no directory, FIFO or device) of at most
// the limit; errors carry the system's text: "cannot open: No such file or directory".

inline constexpr std::size_t kMaxCertificateFileSize = 64 * 1024;  // BUNDLE.md: per certificate
inline constexpr std::size_t kMaxCrlFileSize = 1024 * 1024;

struct CertificateInfo {
  std::string subject;     // RFC 2253, most specific first, UTF-8: "CN=PLC1,O=Plant Süd"
  std::string issuer;      // same form
  std::string serial_hex;  // lowercase hex, two digits a byte: "01f3", "00"; "-" when negative
  std::string sha256;      // fingerprint: lowercase hex SHA-256 of der, 64 characters
  TimePoint not_before, not_after;
  bool is_ca = false;        // basicConstraints CA:TRUE
  bool self_signed = false;  // issuer == subject and the signature verifies with its own key
  std::vector<std::string> dns_names;     // subjectAltName dNSName entries, in order
  std::vector<std::string> ip_addresses;  // subjectAltName iPAddress: "192.168.0.10", "fd00::a"
  std::string key_type;  // "EC P-256", "RSA 2048", "RSA-PSS 3072", "Ed25519", "EC brainpoolP256r1"
  Bytes der;

  // Whole days from now until not_after, rounded down: 0 on the last day, negative once expired.
  int days_until_expiry(TimePoint now) const;
  bool valid_at(TimePoint t) const;  // not_before <= t <= not_after
  bool operator==(const CertificateInfo&) const = default;
};

// One or more certificates (PEM CERTIFICATE blocks, in file order); other PEM blocks (keys,
// CRLs) are errors. source names the bytes in errors. Up to kMaxCertificateFileSize bytes.
FileResult<std::vector<CertificateInfo>> parse_certificates(ByteView bytes,
                                                            std::string_view source);
FileResult<std::vector<CertificateInfo>> read_certificate_file(const std::filesystem::path& path);

struct CrlInfo {
  std::string issuer;  // as CertificateInfo::subject
  TimePoint this_update;
  std::optional<TimePoint> next_update;          // absent when the CRL announces none
  std::vector<std::string> revoked_serials_hex;  // as CertificateInfo::serial_hex, in CRL order
  std::string sha256;                            // as CertificateInfo::sha256
  Bytes der;
  bool operator==(const CrlInfo&) const = default;
};

// Exactly one CRL (a PEM file holds one X509 CRL block). Up to kMaxCrlFileSize bytes.
FileResult<CrlInfo> parse_crl(ByteView bytes, std::string_view source);
FileResult<CrlInfo> read_crl_file(const std::filesystem::path& path);

// Lowercase hex SHA-256 of the bytes; a quarantined certificate's file is "<sha256>.der".
std::string fingerprint_sha256(ByteView der);

// A time as details and events show it, in UTC: "2032-06-01T08:00:00Z".
std::string time_text(TimePoint t);

// ---------------------------------------------------------------------------------------------
// Store layout (DESIGN.md §3)
//
// The store reads certificates from files named *.der, *.pem, *.crt or *.cer, and CRLs from
// *.der, *.pem or *.crl, in either encoding. Other names and hidden files (editor backups,
// temporary files, the store's own among them) are ignored; folders are not searched
// recursively.

struct StoreLayout {
  std::filesystem::path store;  // device-certificate-store: trusted/, trusted/crl/, untrusted/
  std::filesystem::path roots;  // imported root and intermediate CA certificates (pki/roots)
  std::filesystem::path own;    // this runtime's certificate and key (pki/own)

  // <project>/device-certificate-store, <project>/pki/roots, <project>/pki/own
  static StoreLayout for_project(const std::filesystem::path& project);
  std::filesystem::path trusted() const;    // store/trusted: pinned PLC certificates
  std::filesystem::path crl() const;        // store/trusted/crl: revocation lists
  std::filesystem::path untrusted() const;  // store/untrusted: quarantine
};

// Creates every missing folder of the layout, and missing parents, with mode 0700; existing
// folders are left as they are. Throws std::runtime_error naming the folder and the reason.
void ensure_layout(const StoreLayout& layout);

// ---------------------------------------------------------------------------------------------
// Trust decisions (DESIGN.md §4 identity, §5 decision table)
//
// For the chain a PLC presents (leaf first, DER), in this order:
//  1. An empty chain, more than 10 certificates or one that does not parse: bad_certificate.
//  2. Pinned: the leaf's SHA-256 is that of a certificate in trusted/ or of a partner
//     certificate of the connection that is not a CA. Accepted when valid at `now` (else expired
//     or not_yet_valid); the pin is the identity. CRLs do not apply to pins: an operator revokes
//     a pin by moving its file out of trusted/. A CA certificate in trusted/ pins itself only,
//     it issues nothing: issuers belong in pki/roots or in the partner certificates.
//  3. Revoked by move: the leaf was pinned by a trusted/ file in an earlier snapshot of this
//     store and now lies in untrusted/. (Being in untrusted/ alone means nothing: quarantined
//     certificates become acceptable once their CA is imported.)
//  4. A chain to an anchor: the CA certificates of pki/roots and the connection's CA partner
//     certificates (an intermediate is an anchor by itself), with the intermediates the PLC sent.
//     No anchor: untrusted_certificate for a self-signed leaf, else unknown_ca. Each certificate
//     whose issuer has a CRL in trusted/crl/ is checked against it; an issuer without a CRL is
//     no error (most plant CAs publish none) and a CRL past its nextUpdate still counts; a CRL
//     that cannot be used (bad signature, unsupported critical extension) gives revoked: the
//     status is unknown, so fail closed. A certificate outside its validity: expired or
//     not_yet_valid. Other faults (bad signature, an issuer without CA:TRUE, an extended key
//     usage without TLS server): bad_certificate.
//  5. Identity of a CA-issued leaf: a subjectAltName matches the dialled address or the PLC
//     name. DNS names compare case-insensitively (a final dot ignored, no wildcards), IP
//     addresses as addresses ("fd00::a" = "FD00:0::A"; an IPv4-mapped IPv6 address = its IPv4).
//     The subject's CN never counts. Else identity_mismatch.
// Nothing configured, nothing accepted (fail closed). live_session re-checks an established
// session after a trust change: validity times are ignored (a session survives expiry,
// DESIGN.md §4); revocation and untrust apply.

struct PeerIdentity {
  std::string connection;  // connection name: for details, events and trust-on-first-use pins
  std::string address;     // the dialled address: IPv4, IPv6 (brackets allowed) or host name
  std::string plc_name;    // the configured PLC name; may be empty
  std::vector<Bytes> partner_certificates;  // DER: pinned PLC certificates, or extra CAs
};

enum class Verdict {
  accepted,
  untrusted_certificate,  // self-signed and not trusted: quarantine, waits for manual trust
  unknown_ca,             // issued by a CA that was not imported: quarantine
  expired,
  not_yet_valid,
  revoked,            // listed in a CRL, pin moved to untrusted/, or a CRL that cannot be used
  identity_mismatch,  // CA-issued, but for another PLC
  bad_certificate,    // unparsable, or a fault in the chain
};
// "accepted", "untrusted-certificate", "unknown-ca", "expired", "not-yet-valid", "revoked",
// "identity-mismatch", "bad-certificate"
const char* verdict_name(Verdict verdict);

struct Decision {
  Verdict verdict = Verdict::bad_certificate;
  std::string detail;                                // one line an operator can act on
  std::optional<CertificateInfo> peer;               // the leaf, when it parsed
  std::optional<std::filesystem::path> quarantined;  // by CertificateStore::decide: its file
  bool ok() const { return verdict == Verdict::accepted; }
};

// What a snapshot is made of. CertificateStore reads it from its folders; tests and tools may
// make one by hand.
struct TrustMaterial {
  std::vector<CertificateInfo> roots;    // CA certificates: the anchors
  std::vector<CertificateInfo> trusted;  // pinned certificates
  std::vector<CrlInfo> crls;
  std::map<std::string, std::filesystem::path> revoked_by_move;  // sha256 -> file in untrusted/
};

// Immutable: connections share one through std::shared_ptr<const TrustSnapshot> and keep it
// while the store swaps in newer ones. verify is a pure function, safe from any thread.
class TrustSnapshot {
 public:
  // Throws std::invalid_argument when a certificate's or CRL's der does not decode.
  TrustSnapshot(TrustMaterial material, std::uint64_t version);
  ~TrustSnapshot();
  TrustSnapshot(const TrustSnapshot&) = delete;
  TrustSnapshot& operator=(const TrustSnapshot&) = delete;

  Decision verify(const std::vector<Bytes>& chain, const PeerIdentity& who, TimePoint now,
                  bool live_session = false) const;
  std::uint64_t version() const;
  const std::vector<CertificateInfo>& trusted() const;
  const std::vector<CertificateInfo>& roots() const;
  const std::vector<CrlInfo>& crls() const;
  const std::map<std::string, std::filesystem::path>& revoked_by_move() const;

 private:
  struct Impl;  // the material, and the same as OpenSSL objects
  std::unique_ptr<const Impl> impl_;
};

// ---------------------------------------------------------------------------------------------
// The certificate store: snapshots of the folders, quarantine, trust on first use, expiry, the
// watcher
//
// Snapshots: each rebuild reads every folder and swaps in a new snapshot (version + 1, event
// snapshot_changed) when what decides trust changed; a quarantine write changes nothing. A
// file that cannot be used raises file_problem once per state of the file and is left out,
// except that a file that was good keeps its last good content while it is unusable: a
// rewrite in progress never drops trust. A removed file is gone; a missing folder is empty.
//
// Quarantine: on untrusted_certificate and unknown_ca, decide() writes the leaf's DER to
// untrusted/<sha256>.der (temporary file + rename, mode 0644) unless untrusted/ holds it
// already, and raises `quarantined` when it wrote it. The cap counts the store's own files
// (<sha256>.der); beyond it the oldest by modification time are deleted. Files put there under
// other names and pins revoked by moving are never deleted.
//
// Trust on first use (off by default): a connection without pinned partner certificates whose
// PLC presents an untrusted or unknown-CA certificate that is valid now gets it pinned as
// trusted/tofu-<connection>-<sha256>.der (bytes other than A-Z a-z 0-9 . _ - written %XX),
// trust_pinned is raised and the snapshot rebuilt at once. Once the connection has such a
// file, other certificates are quarantined as usual: only an operator re-pins (moves a file
// into trusted/, or deletes the old pin). A certificate once pinned and then removed from
// trusted/ is never pinned again by first use. A pin in trusted/ holds for every connection.
//
// Revocation by moving is remembered while the store object lives: after a restart a pin
// moved to untrusted/ is refused as any unknown certificate (a CA-issued one needs a CRL).
//
// Threads: all members may be called from any thread, but stop_watching() and the destructor
// not from an event handler. Events are raised on the thread that caused them: the caller's
// for decide(), reload() and check_expiry(), the watcher's for what it sees. Handlers must be
// thread-safe and quick, and must not throw (on the watcher's thread, what they throw is lost).

struct StoreEvent {
  enum class Kind {
    snapshot_changed,  // detail says what changed
    file_problem,      // file (a file or a folder) cannot be used, detail says why
    quarantined,       // file is untrusted/<sha256>.der, certificate the PLC's
    trust_pinned,      // trust on first use: file is the new pin, certificate the PLC's
    expiry_warning,    // certificate has days_left (30, 14 or 1) days or fewer left
    expired,           // certificate has expired; days_left < 0
  } kind = Kind::file_problem;
  std::string detail;  // one line for the event log
  std::filesystem::path file;
  std::optional<CertificateInfo> certificate;
  std::uint64_t snapshot_version = 0;  // the store's snapshot when the event was raised
  int days_left = 0;                   // expiry events: 30, 14, 1, or days since expiry (< 0)
};
// "snapshot-changed", "file-problem", "quarantined", "trust-pinned", "expiry-warning", "expired"
const char* event_kind_name(StoreEvent::Kind kind);

struct StoreOptions {
  std::size_t quarantine_cap = 100;  // the store's own files in untrusted/; 0: quarantine off
  bool trust_on_first_use = false;
  std::chrono::milliseconds debounce{200};        // quiet time after a change before a rebuild
  std::chrono::milliseconds poll_interval{2000};  // compare listings: when inotify misses one
  bool use_inotify = true;                        // false: polling alone
};

class CertificateStore {
 public:
  // ensure_layout, then snapshot 1. Its file problems are raised by the first reload() or
  // start_watching(), once handlers are connected. Throws as ensure_layout does.
  explicit CertificateStore(StoreLayout layout, StoreOptions options = {});
  ~CertificateStore();  // stops the watcher
  CertificateStore(const CertificateStore&) = delete;
  CertificateStore& operator=(const CertificateStore&) = delete;

  const StoreLayout& layout() const;
  std::shared_ptr<const TrustSnapshot> snapshot() const;  // the current one; never null

  // The current snapshot's verify, then quarantine or trust on first use as described above.
  Decision decide(const std::vector<Bytes>& chain, const PeerIdentity& who, TimePoint now);

  void reload();  // rebuilds now, on the calling thread
  // Watches every folder with inotify (it does not recurse) and compares listings every
  // poll_interval; a burst of changes gives one rebuild after `debounce` of quiet (at the
  // latest 5 x debounce after the first change). Rebuilds once at the start. Does nothing when
  // watching already. When inotify fails, file_problem says so and polling carries on.
  void start_watching();
  void stop_watching();

  // Raises expiry_warning once per certificate and threshold (30, 14, 1 days; a certificate
  // first seen past a threshold gets only the most urgent one) and `expired` once, for in_use
  // (live sessions' PLC certificates, own certificates) and the snapshot's roots and pins.
  void check_expiry(const std::vector<CertificateInfo>& in_use, TimePoint now);

  boost::signals2::signal<void(const StoreEvent&)> events;
  // events.connect, compiled here once. Prefer it: GCC 12 with sanitizers warns
  // maybe-uninitialized (a false positive inside Boost.Signals2) wherever connect is expanded.
  boost::signals2::connection subscribe(std::function<void(const StoreEvent&)> handler);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;  // declared after events: the watcher stops before they go
};

}  // namespace scada::certstore
