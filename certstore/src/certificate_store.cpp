// The certificate store (DESIGN.md §5): snapshots rebuilt from the folders and swapped
// atomically, quarantine, trust on first use, expiry warnings and the watcher.
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>

#include "certstore/certstore.h"
#include "describe.h"
#include "folder_watcher.h"
#include "input.h"
#include "store_files.h"
#include "store_reader.h"

namespace scada::certstore {

namespace {

constexpr mode_t kCertificateFileMode = 0644;  // certificates are public; their keys are not here
constexpr std::string_view kFirstUsePrefix = "tofu-";
constexpr std::size_t kMaxEncodedConnection = 150;  // a file name holds 255 bytes
constexpr std::size_t kMaxChangesListed = 8;        // in a snapshot_changed detail

bool is_lower_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

// "<64 lowercase hex digits>.der": a file the store's quarantine wrote.
bool is_quarantine_name(const std::string& name) {
  return name.size() == 68 && name.ends_with(".der") &&
         std::all_of(name.begin(), name.begin() + 64, is_lower_hex);
}

// A connection name as part of a file name: A-Z a-z 0-9 . _ - as they are, other bytes %XX.
std::string encode_connection(const std::string& connection) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string encoded;
  for (const unsigned char c : connection) {
    const bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                       c == '.' || c == '_' || c == '-';
    if (plain) {
      encoded += static_cast<char>(c);
    } else {
      encoded += '%';
      encoded += kDigits[c >> 4];
      encoded += kDigits[c & 0x0F];
    }
  }
  return encoded;
}

bool has_partner_pin(const PeerIdentity& who) {
  for (const Bytes& der : who.partner_certificates) {
    const auto parsed = parse_certificates(der, "partner certificate");
    if (const auto* all = std::get_if<std::vector<CertificateInfo>>(&parsed)) {
      if (std::any_of(all->begin(), all->end(), [](const auto& c) { return !c.is_ca; })) {
        return true;
      }
    }
  }
  return false;
}

std::string connection_text(const PeerIdentity& who) {
  return "connection " + shortened(who.connection) + " (" + shortened(who.address) + ")";
}

// What changed between two snapshots, for the event log:
// "pinned +CN=PLC1 (sha256 …); CRLs +CRL of CN=Root CA (sha256 …)".
using Labels = std::map<std::string, std::string>;  // sha256 -> how to show it

Labels labels(const std::vector<CertificateInfo>& certificates) {
  Labels all;
  for (const auto& c : certificates) all.emplace(c.sha256, certificate_text(c));
  return all;
}

Labels labels(const std::vector<CrlInfo>& crls) {
  Labels all;
  for (const auto& c : crls) {
    all.emplace(c.sha256, "CRL of " + shortened(c.issuer) + " (sha256 " + c.sha256 + ")");
  }
  return all;
}

Labels labels(const std::map<std::string, std::filesystem::path>& moved) {
  Labels all;
  for (const auto& [sha256, file] : moved) {
    all.emplace(sha256, file.filename().string() + " (sha256 " + sha256 + ")");
  }
  return all;
}

void describe_difference(std::string& text, const char* what, const Labels& before,
                         const Labels& after) {
  std::vector<std::string> changes;
  for (const auto& [sha256, label] : after) {
    if (before.count(sha256) == 0) changes.push_back("+" + label);
  }
  for (const auto& [sha256, label] : before) {
    if (after.count(sha256) == 0) changes.push_back("-" + label);
  }
  if (changes.empty()) return;
  text += text.empty() ? "" : "; ";
  text += what;
  for (std::size_t i = 0; i < changes.size() && i < kMaxChangesListed; ++i) {
    text += (i == 0 ? " " : ", ") + changes[i];
  }
  if (changes.size() > kMaxChangesListed) {
    text += " and " + std::to_string(changes.size() - kMaxChangesListed) + " more";
  }
}

// Empty when the two decide alike.
std::string difference(const TrustSnapshot& before, const TrustMaterial& after) {
  std::string text;
  describe_difference(text, "roots", labels(before.roots()), labels(after.roots));
  describe_difference(text, "pinned", labels(before.trusted()), labels(after.trusted));
  describe_difference(text, "CRLs", labels(before.crls()), labels(after.crls));
  describe_difference(text, "revoked by moving to untrusted/", labels(before.revoked_by_move()),
                      labels(after.revoked_by_move));
  return text;
}

StoreEvent make_event(StoreEvent::Kind kind, std::string detail, std::filesystem::path file = {},
                      std::optional<CertificateInfo> certificate = std::nullopt) {
  StoreEvent event;
  event.kind = kind;
  event.detail = std::move(detail);
  event.file = std::move(file);
  event.certificate = std::move(certificate);
  return event;
}

}  // namespace

struct CertificateStore::Impl {
  Impl(CertificateStore& owner, StoreLayout layout, StoreOptions options)
      : owner(owner), layout(std::move(layout)), options(options), reader(this->layout) {}

  CertificateStore& owner;
  const StoreLayout layout;
  const StoreOptions options;
  std::atomic<std::shared_ptr<const TrustSnapshot>> current;

  std::mutex build_mutex;  // guards reader and untrusted
  StoreReader reader;
  std::map<std::string, std::filesystem::path> untrusted;  // sha256 -> file, at the last rebuild

  std::mutex write_mutex;  // one quarantine or pin write at a time (taken before build_mutex)

  std::mutex expiry_mutex;
  std::map<std::string, int> expiry_raised;  // sha256 -> the most urgent Urgency raised

  std::mutex watch_mutex;
  std::unique_ptr<FolderWatcher> watcher;

  std::vector<StoreEvent> rebuild();
  void emit(std::vector<StoreEvent> events);
  std::string in_store(const std::filesystem::path& file) const;

  // The decision after pinning the leaf, or nothing and why not (when it is worth saying).
  std::optional<Decision> pin_on_first_use(const Decision& refused, const std::vector<Bytes>& chain,
                                           const PeerIdentity& who, TimePoint now,
                                           std::string& why_not, std::vector<StoreEvent>& events);
  void quarantine(Decision& decision, const PeerIdentity& who, std::vector<StoreEvent>& events);
  std::vector<std::string> evict_beyond_cap(const std::string& keep);
  std::optional<std::filesystem::path> first_use_pin_of(const PeerIdentity& who) const;
};

std::string CertificateStore::Impl::in_store(const std::filesystem::path& file) const {
  return file.lexically_relative(layout.store).string();
}

std::vector<StoreEvent> CertificateStore::Impl::rebuild() {
  const std::lock_guard lock(build_mutex);
  StoreReader::Result result = reader.read();
  untrusted = std::move(result.untrusted);
  std::vector<StoreEvent> events;
  auto snapshot = current.load();
  const std::string changes = difference(*snapshot, result.material);
  if (!changes.empty()) {
    snapshot =
        std::make_shared<const TrustSnapshot>(std::move(result.material), snapshot->version() + 1);
    current.store(snapshot);
    events.push_back(
        make_event(StoreEvent::Kind::snapshot_changed,
                   "trust snapshot " + std::to_string(snapshot->version()) + ": " + changes));
  }
  for (const auto& problem : result.new_problems) {
    events.push_back(make_event(StoreEvent::Kind::file_problem,
                                problem.file.string() + ": " + problem.reason, problem.file));
  }
  for (auto& event : events) event.snapshot_version = snapshot->version();
  return events;
}

void CertificateStore::Impl::emit(std::vector<StoreEvent> events) {
  const std::uint64_t version = current.load()->version();
  for (auto& event : events) {
    if (event.snapshot_version == 0) event.snapshot_version = version;
    owner.events(event);
  }
}

std::optional<std::filesystem::path> CertificateStore::Impl::first_use_pin_of(
    const PeerIdentity& who) const {
  const std::string prefix = std::string(kFirstUsePrefix) + encode_connection(who.connection) + "-";
  for (const auto& entry : list_folder(layout.trusted(), Names::certificates).entries) {
    const std::string name = entry.path.filename().string();
    if (name.size() == prefix.size() + 68 && name.starts_with(prefix) &&
        is_quarantine_name(name.substr(prefix.size()))) {
      return entry.path;
    }
  }
  return std::nullopt;
}

std::optional<Decision> CertificateStore::Impl::pin_on_first_use(
    const Decision& refused, const std::vector<Bytes>& chain, const PeerIdentity& who,
    TimePoint now, std::string& why_not, std::vector<StoreEvent>& events) {
  const CertificateInfo& leaf = *refused.peer;
  // Partner certificates are the operator's pins for the connection already.
  if (who.connection.empty() || has_partner_pin(who)) return std::nullopt;
  if (!leaf.valid_at(now)) {
    why_not = "; trust on first use pins only a certificate valid now";
    return std::nullopt;
  }
  const std::string encoded = encode_connection(who.connection);
  if (encoded.size() > kMaxEncodedConnection) {
    why_not = "; trust on first use needs a connection name of at most " +
              std::to_string(kMaxEncodedConnection) + " bytes in a file name";
    return std::nullopt;
  }
  {
    const std::lock_guard lock(build_mutex);
    if (reader.was_pinned(leaf.sha256)) {
      why_not =
          "; it was trusted before and removed from trusted/, so only an operator trusts "
          "it again";
      return std::nullopt;
    }
  }
  if (const auto pin = first_use_pin_of(who)) {
    why_not = "; the connection's first certificate is pinned as " + in_store(*pin) +
              ", only an operator re-pins";
    return std::nullopt;
  }

  const std::filesystem::path file =
      layout.trusted() / (std::string(kFirstUsePrefix) + encoded + "-" + leaf.sha256 + ".der");
  if (const auto error = write_file_atomically(file, leaf.der, kCertificateFileMode)) {
    events.push_back(make_event(StoreEvent::Kind::file_problem,
                                *error + " (trust on first use for " + connection_text(who) + ")",
                                file, leaf));
    return std::nullopt;
  }
  events.push_back(make_event(StoreEvent::Kind::trust_pinned,
                              "trusted on first use for " + connection_text(who) +
                                  ": pinned PLC certificate " + certificate_facts(leaf) + " as " +
                                  in_store(file) + "; only an operator can re-pin",
                              file, leaf));
  auto rebuilt = rebuild();
  events.insert(events.end(), rebuilt.begin(), rebuilt.end());
  Decision decision = current.load()->verify(chain, who, now);
  decision.detail = "trusted on first use: " + decision.detail + " (" + in_store(file) + ")";
  return decision;
}

void CertificateStore::Impl::quarantine(Decision& decision, const PeerIdentity& who,
                                        std::vector<StoreEvent>& events) {
  const CertificateInfo& leaf = *decision.peer;
  const std::filesystem::path file = layout.untrusted() / (leaf.sha256 + ".der");
  std::optional<std::filesystem::path> held;
  {
    const std::lock_guard lock(build_mutex);
    if (const auto known = untrusted.find(leaf.sha256); known != untrusted.end()) {
      std::error_code error;
      if (std::filesystem::exists(known->second, error)) held = known->second;
    }
  }
  if (!held) {
    // Written since the last rebuild, or an older copy: the name says what it must hold.
    const auto bytes = read_small_file(file, kMaxCertificateFileSize);
    if (const auto* existing = std::get_if<Bytes>(&bytes); existing && *existing == leaf.der) {
      held = file;
    }
  }
  const std::string action = decision.verdict == Verdict::unknown_ca
                                 ? "import the project's certificates (its CA into pki/roots), "
                                   "or move the file to trusted/ to trust this certificate alone"
                                 : "move it to trusted/ to trust it";
  if (held) {
    decision.quarantined = held;
    decision.detail += "; it is quarantined as " + in_store(*held) + " — " + action;
    return;
  }
  if (options.quarantine_cap == 0) {
    decision.detail += "; quarantine is off (cap 0): add it to trusted/ to trust it";
    return;
  }
  if (const auto error = write_file_atomically(file, leaf.der, kCertificateFileMode)) {
    decision.detail += "; it could not be quarantined: " + *error;
    events.push_back(make_event(StoreEvent::Kind::file_problem, *error, file, leaf));
    return;
  }
  decision.quarantined = file;
  decision.detail += "; it was quarantined as " + in_store(file) + " — " + action;
  std::string detail = "quarantined PLC certificate " + certificate_facts(leaf) +
                       "; presented on " + connection_text(who) + " (" +
                       verdict_name(decision.verdict) + "); file " + in_store(file);
  const auto evicted = evict_beyond_cap(leaf.sha256);
  if (!evicted.empty()) {
    detail += "; deleted the oldest quarantined file" + std::string(evicted.size() > 1 ? "s" : "");
    for (const auto& name : evicted) detail += " " + name;
  }
  events.push_back(make_event(StoreEvent::Kind::quarantined, detail, file, leaf));
}

std::vector<std::string> CertificateStore::Impl::evict_beyond_cap(const std::string& keep) {
  std::vector<FolderEntry> own;
  {
    const std::lock_guard lock(build_mutex);
    for (auto& entry : list_folder(layout.untrusted(), Names::certificates).entries) {
      const std::string name = entry.path.filename().string();
      if (!is_quarantine_name(name)) continue;  // an operator's file
      const std::string sha256 = name.substr(0, 64);
      // A pin moved here is a revocation; deleting it would end that.
      if (sha256 == keep || reader.was_pinned(sha256)) continue;
      own.push_back(std::move(entry));
    }
  }
  std::sort(own.begin(), own.end(), [](const FolderEntry& a, const FolderEntry& b) {
    return std::tie(a.stamp.modified_ns, a.path) < std::tie(b.stamp.modified_ns, b.path);
  });
  std::vector<std::string> evicted;
  for (std::size_t count = own.size() + 1, i = 0; count > options.quarantine_cap && i < own.size();
       ++i) {
    std::error_code error;
    if (std::filesystem::remove(own[i].path, error)) {
      evicted.push_back(own[i].path.filename().string());
      --count;
    }
  }
  return evicted;
}

// ---------------------------------------------------------------------------------------------

CertificateStore::CertificateStore(StoreLayout layout, StoreOptions options)
    : impl_(std::make_unique<Impl>(*this, std::move(layout), options)) {
  ensure_layout(impl_->layout);
  // What a writer killed between create and rename left behind (the store's own writes go to
  // trusted/ and untrusted/; hidden files are never read as certificates anyway).
  for (const auto& folder : {impl_->layout.trusted(), impl_->layout.untrusted()}) {
    remove_stale_temporaries(folder);
  }
  const std::lock_guard lock(impl_->build_mutex);
  StoreReader::Result first = impl_->reader.read();
  impl_->untrusted = std::move(first.untrusted);
  impl_->current.store(std::make_shared<const TrustSnapshot>(std::move(first.material), 1));
  // Nobody could connect a handler yet: the next rebuild raises these problems.
  impl_->reader.forget_reported_problems();
}

CertificateStore::~CertificateStore() {
  stop_watching();
}

const StoreLayout& CertificateStore::layout() const {
  return impl_->layout;
}

std::shared_ptr<const TrustSnapshot> CertificateStore::snapshot() const {
  return impl_->current.load();
}

Decision CertificateStore::decide(const std::vector<Bytes>& chain, const PeerIdentity& who,
                                  TimePoint now) {
  Decision decision = snapshot()->verify(chain, who, now);
  const bool unknown =
      decision.verdict == Verdict::untrusted_certificate || decision.verdict == Verdict::unknown_ca;
  if (!unknown || !decision.peer) return decision;
  std::vector<StoreEvent> events;
  {
    const std::lock_guard lock(impl_->write_mutex);
    if (impl_->options.trust_on_first_use) {
      std::string why_not;
      if (auto pinned = impl_->pin_on_first_use(decision, chain, who, now, why_not, events)) {
        decision = std::move(*pinned);
      } else {
        decision.detail += why_not;
      }
    }
    if (!decision.ok()) impl_->quarantine(decision, who, events);
  }
  impl_->emit(events);
  return decision;
}

void CertificateStore::reload() {
  impl_->emit(impl_->rebuild());
}

void CertificateStore::start_watching() {
  const std::lock_guard lock(impl_->watch_mutex);
  if (impl_->watcher) return;
  const FolderWatcher::Options options{impl_->options.use_inotify, impl_->options.debounce,
                                       impl_->options.poll_interval};
  Impl& impl = *impl_;
  const auto problem = [&impl](const std::filesystem::path& folder, const std::string& reason) {
    impl.emit({make_event(
        StoreEvent::Kind::file_problem,
        (folder.empty() ? std::string("watcher") : folder.string()) + ": " + reason, folder)});
  };
  const auto changed = [&impl] {
    std::vector<StoreEvent> events;
    try {
      events = impl.rebuild();
    } catch (const std::exception& error) {
      events = {make_event(StoreEvent::Kind::file_problem,
                           std::string("rebuilding the trust snapshot failed: ") + error.what())};
    }
    // On the watcher's thread no one could catch what a handler throws: it is dropped.
    try {
      impl.emit(events);
    } catch (...) {
    }
  };
  std::vector<std::filesystem::path> folders{impl.layout.trusted(), impl.layout.crl(),
                                             impl.layout.untrusted(), impl.layout.roots};
  impl.watcher = std::make_unique<FolderWatcher>(std::move(folders), options, changed, problem);
  // What changed before the watches existed, and the constructor's problems.
  reload();
}

void CertificateStore::stop_watching() {
  const std::lock_guard lock(impl_->watch_mutex);
  impl_->watcher.reset();
}

// ---------------------------------------------------------------------------------------------
// Expiry

namespace {

enum Urgency { kNone = 0, kDays30, kDays14, kDays1, kExpired };

Urgency urgency(const CertificateInfo& certificate, TimePoint now) {
  if (now > certificate.not_after) return kExpired;
  const int days = certificate.days_until_expiry(now);
  if (days <= 1) return kDays1;
  if (days <= 14) return kDays14;
  if (days <= 30) return kDays30;
  return kNone;
}

StoreEvent expiry_event(const CertificateInfo& certificate, Urgency level, TimePoint now) {
  const int days = certificate.days_until_expiry(now);
  const std::string which = "certificate " + certificate_text(certificate) + ", issued by " +
                            shortened(certificate.issuer) + ",";
  if (level == kExpired) {
    StoreEvent event =
        make_event(StoreEvent::Kind::expired,
                   which + " expired on " + time_text(certificate.not_after), {}, certificate);
    event.days_left = days;
    return event;
  }
  const std::string when = days == 0   ? "today"
                           : days == 1 ? "in 1 day"
                                       : "in " + std::to_string(days) + " days";
  StoreEvent event = make_event(
      StoreEvent::Kind::expiry_warning,
      which + " expires " + when + ", on " + time_text(certificate.not_after), {}, certificate);
  event.days_left = level == kDays1 ? 1 : level == kDays14 ? 14 : 30;
  return event;
}

}  // namespace

void CertificateStore::check_expiry(const std::vector<CertificateInfo>& in_use, TimePoint now) {
  const auto snapshot = this->snapshot();
  std::vector<const CertificateInfo*> all;
  for (const auto* group : {&in_use, &snapshot->roots(), &snapshot->trusted()}) {
    for (const auto& certificate : *group) all.push_back(&certificate);
  }
  std::vector<StoreEvent> events;
  {
    const std::lock_guard lock(impl_->expiry_mutex);
    for (const CertificateInfo* certificate : all) {
      const Urgency due = urgency(*certificate, now);
      int& raised = impl_->expiry_raised[certificate->sha256];
      if (due <= raised) continue;  // also a certificate listed twice
      raised = due;
      events.push_back(expiry_event(*certificate, due, now));
    }
  }
  impl_->emit(events);
}

// The one expansion of Boost.Signals2's connect in the project (see the header): GCC 12 with
// sanitizers takes boost::optional's storage in its group key for uninitialized.
// clang has no such warning group (and no false positive here): the pragma is GCC's only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
boost::signals2::connection CertificateStore::subscribe(
    std::function<void(const StoreEvent&)> handler) {
  return events.connect(std::move(handler));
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

const char* event_kind_name(StoreEvent::Kind kind) {
  switch (kind) {
    case StoreEvent::Kind::snapshot_changed:
      return "snapshot-changed";
    case StoreEvent::Kind::file_problem:
      return "file-problem";
    case StoreEvent::Kind::quarantined:
      return "quarantined";
    case StoreEvent::Kind::trust_pinned:
      return "trust-pinned";
    case StoreEvent::Kind::expiry_warning:
      return "expiry-warning";
    case StoreEvent::Kind::expired:
      return "expired";
  }
  return "unknown";
}

}  // namespace scada::certstore
