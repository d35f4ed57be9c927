// TagServer: the tag table, acquisition, writes, system tags and make-before-break switching
// (tags.h, section "The tag model").
//
// One recursive mutex guards everything: the tag records, the links and their sessions. Work
// runs on a strand; every handler takes the mutex, so the destructor (which takes it too) can
// detach safely: after it, no handler touches a session and no update is published.
//
// Tags, links, acquisition groups and sessions are known by ids that are never used again, so a
// handler that arrives late for one that was removed finds nothing instead of its successor.
// Records live in maps, so adding never moves one that a caller up the stack still refers to
// (an update handler may add a tag). For the same reason a removal only takes the record out of
// every lookup at once and erases it on the strand, after the handler that may be running.
#include <algorithm>
#include <array>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/signals2/signal.hpp>
#include <deque>
#include <map>
#include <mutex>
#include <set>

#include "tags/tags.h"

namespace scada::tags {

namespace asio = boost::asio;
using channel::ConnectionState;
using Steady = std::chrono::steady_clock;

const char* quality_name(Quality quality) {
  switch (quality) {
    case Quality::good:
      return "good";
    case Quality::bad:
      return "bad";
    case Quality::uncertain:
      return "uncertain";
  }
  return "?";
}

const char* quality_reason_name(QualityReason reason) {
  switch (reason) {
    case QualityReason::none:
      return "";
    case QualityReason::not_connected:
      return "not-connected";
    case QualityReason::config_error:
      return "config-error";
    case QualityReason::plc_refused:
      return "plc-refused";
    case QualityReason::last_known:
      return "last-known";
  }
  return "?";
}

const char* link_state_name(std::int64_t state) {
  switch (state) {
    case std::int64_t(LinkState::disabled):
      return "disabled";
    case std::int64_t(LinkState::connecting):
      return "connecting";
    case std::int64_t(LinkState::connected):
      return "connected";
    case std::int64_t(LinkState::error):
      return "error, waiting to retry";
  }
  return "?";
}

std::string system_tag_name(std::string_view connection, std::string_view tag) {
  std::string name = "@";
  name += connection;
  name += '@';
  name += tag;
  return name;
}

namespace {

using Id = std::uint64_t;
constexpr Id kNone = 0;  // no link: an internal tag
constexpr std::chrono::milliseconds kMinCycle{10};
constexpr std::chrono::milliseconds kMaxCycle{std::chrono::hours(24)};
// Certificate days left change once a day; they are recomputed this often.
constexpr std::chrono::minutes kHousekeeping{1};

enum class Sys : std::size_t {
  force,
  alternative,
  use,
  state,
  current,
  last_error,
  peer_certificate,
  days_left,
};
constexpr std::size_t kSysCount = 8;

struct SysSpec {
  Sys which;
  std::string_view name;
  TypeSpec type;
  Access access;
};
const std::array<SysSpec, kSysCount> kSysSpecs{{
    {Sys::force, kForceConnectionState, {DataType::DWord}, Access::read_write},
    {Sys::alternative, kAlternativeAddress, {DataType::Text, kMaxTextLength}, Access::read_write},
    {Sys::use, kUseAlternativeAddress, {DataType::DWord}, Access::read_write},
    {Sys::state, kConnectionStateTag, {DataType::DWord}, Access::read},
    {Sys::current, kCurrentAddress, {DataType::Text, kMaxTextLength}, Access::read},
    {Sys::last_error, kLastError, {DataType::Text, kMaxTextLength}, Access::read},
    {Sys::peer_certificate, kPeerCertificate, {DataType::Text, kMaxTextLength}, Access::read},
    {Sys::days_left, kCertificateDaysLeft, {DataType::DInt}, Access::read},
}};

struct Tag {
  TagConfig config;
  Id link = kNone;  // the connection's id; kNone for internal tags
  std::optional<Sys> system;
  TagState state;
  bool removed = false;  // out of every lookup and silent; the record goes on the strand
};

// Where a session goes: the original settings, or them with the alternative's overrides.
struct Endpoint {
  bool alternative = false;
  channel::ConnectionConfig config;

  std::string text() const {
    const bool v6 = config.address.find(':') != std::string::npos;
    std::string t = v6 ? "[" + config.address + "]" : config.address;
    t += ":" + std::to_string(config.port);
    if (config.remote_tsap) {
      t += " TSAP " + config.remote_tsap->to_string();
    } else if (config.mode != channel::SecurityMode::s7_secure &&
               (config.rack != 0 || config.slot != 1)) {
      t += " rack " + std::to_string(config.rack) + " slot " + std::to_string(config.slot);
    }
    return t + (alternative ? " (alternative)" : " (original)");
  }
  bool same_as(const Endpoint& other) const { return text() == other.text(); }
};

// When a session's requests went on the wire, as far as the server can tell: the connection
// sends up to the granted AmQ at once and the rest in order as replies free places
// (channel::Connection::submit), so a request queued behind others starts its round trip when
// an earlier one is answered, not when it was handed over.
class RequestClock {
 public:
  // The session came up with this AmQ: requests of its earlier sessions are forgotten.
  void restart(std::size_t amq) {
    places_ = std::max<std::size_t>(1, amq);
    on_wire_.clear();
    queued_.clear();
  }

  // A request handed to the connection; the ticket names it when it is answered.
  std::uint64_t handed_over(Steady::time_point now) {
    const std::uint64_t ticket = next_ticket_++;
    if (on_wire_.size() < places_) {
      on_wire_.emplace(ticket, now);
    } else {
      queued_.push_back(ticket);
    }
    return ticket;
  }

  // The round trip of an answered request; nothing for one that never had a place (refused at
  // once) or that an earlier session sent.
  std::optional<Steady::duration> answered(std::uint64_t ticket, Steady::time_point now) {
    std::optional<Steady::duration> round_trip;
    if (auto it = on_wire_.find(ticket); it != on_wire_.end()) {
      round_trip = now - it->second;
      on_wire_.erase(it);
    } else if (auto q = std::find(queued_.begin(), queued_.end(), ticket); q != queued_.end()) {
      queued_.erase(q);
      return std::nullopt;
    } else {
      return std::nullopt;
    }
    while (on_wire_.size() < places_ && !queued_.empty()) {
      on_wire_.emplace(queued_.front(), now);
      queued_.pop_front();
    }
    return round_trip;
  }

 private:
  std::size_t places_ = 1;
  std::uint64_t next_ticket_ = 1;
  std::map<std::uint64_t, Steady::time_point> on_wire_;
  std::deque<std::uint64_t> queued_;
};

void observe(LinkStatistics::Histogram& histogram, Steady::duration duration) {
  const double seconds = std::chrono::duration<double>(duration).count();
  const auto& bounds = LinkStatistics::Histogram::bounds;
  const auto bucket = std::lower_bound(bounds.begin(), bounds.end(), seconds);  // first >= it
  if (bucket != bounds.end()) ++histogram.buckets[std::size_t(bucket - bounds.begin())];
  ++histogram.count;
  histogram.sum_seconds += seconds;
}

struct Session {
  Id id = 0;
  Endpoint endpoint;
  ConnectionState state = ConnectionState::stopped;
  std::unique_ptr<channel::Connection> connection;
  // Writes sent and not answered yet: their callbacks, by a number of this session's.
  std::map<std::uint64_t, std::pair<std::string, WriteCallback>> writes;
  std::uint64_t next_write = 1;
  RequestClock clock;
};

// One read of a group's tags: the plan and the tags behind its input indices.
struct GroupPlan {
  std::uint16_t pdu = 0, amq = 0;
  std::vector<Id> tags;  // plan input index -> tag id
  channel::ReadPlan plan;
  std::vector<std::pair<Id, std::string>> unreadable;  // tag id, why
};

struct Group {
  std::chrono::milliseconds cycle{0};
  std::vector<Id> tags;
  std::unique_ptr<asio::steady_timer> timer;
  Steady::time_point next;
  std::optional<GroupPlan> plan;  // for the serving session's PDU and AmQ
  bool replan = false;            // tags came or went: plan again before the next cycle
  bool read_added = false;        // tags came while a cycle ran: the next begins when it ends
  std::size_t outstanding = 0;    // requests of the running cycle not answered yet
  std::uint64_t round = 0;        // which cycle replies belong to
  Steady::time_point started;
};

// The first read a new session must complete before it replaces the serving one.
struct FirstRead {
  Id session = 0;  // 0: none running
  std::size_t outstanding = 0;
  std::string failure;
  std::vector<std::pair<Id, TagState>> results;
};

struct Link {
  Id id = kNone;
  bool removed = false;  // out of every lookup; closed and erased on the strand
  ConnectionSetup setup;
  std::uint32_t force = 1, use = 0;
  std::optional<AlternativeAddress> alternative;
  std::unique_ptr<Session> active, pending;
  // Sessions replaced by a switch that still wait for the PLC's answer to a write.
  std::vector<std::unique_ptr<Session>> retired;
  std::map<Id, Group> groups;  // by id
  std::array<Id, kSysCount> system{};
  std::string down_detail;  // why its tags are not connected (for tags added while it is down)
  FirstRead first_read;
  LinkStatistics stats;
  std::unique_ptr<asio::steady_timer> housekeeping;
  std::optional<channel::ConnectionInfo> last_info;  // of the session serving last
};

// A reply's effect on one tag.
struct Outcome {
  Id tag = 0;
  std::optional<Value> value;
  QualityReason reason = QualityReason::none;
  std::string detail;
};

std::string reason_words(channel::FailureReason reason, const std::string& detail) {
  std::string text = channel::failure_reason_name(reason);
  if (!detail.empty()) text += ": " + detail;
  return text;
}

// A failed attempt for LastError: the reason and where the certificate was quarantined first
// (what the operator acts on), then the details, which may be cut to fit the tag.
std::string failure_words(const channel::ConnectionEvent& event) {
  std::string text = channel::failure_reason_name(event.reason);
  if (event.quarantined) {
    text += "; quarantined as untrusted/" + event.quarantined->filename().string();
  }
  if (!event.detail.empty()) text += ": " + event.detail;
  return text;
}

// The outcomes of one planned request's reply, for the tags behind `tags` (plan input order).
// Tags removed since the plan was made have none.
// The outcome of every tag of an answered (or failed) Read Var request. When the request
// brought no values at all, *failure (if given) says why, as a LinkStatistics::failed_reads key.
std::vector<Outcome> outcomes_of(const channel::PlannedRequest& request,
                                 const std::vector<Id>& tags, const std::map<Id, Tag>& table,
                                 const channel::JobResult& result, const char** failure = nullptr) {
  std::vector<Outcome> out;
  std::vector<std::size_t> inputs;
  for (const auto& item : request.items) {
    for (const auto& slice : item.slices) inputs.push_back(slice.tag);
  }
  const auto all = [&](const char* why, QualityReason reason, const std::string& detail) {
    if (failure) *failure = why;
    for (std::size_t input : inputs) out.push_back({tags[input], std::nullopt, reason, detail});
    return out;
  };
  if (const auto* error = std::get_if<channel::JobError>(&result)) {
    return all(channel::failure_reason_name(error->reason), QualityReason::not_connected,
               reason_words(error->reason, error->detail));
  }
  const channel::Pdu& reply = std::get<channel::Pdu>(result);
  if (reply.header.error() != 0) {
    return all("plc-refused", QualityReason::plc_refused,
               "the PLC refused the read: " + channel::s7_error_text(reply.header.error()));
  }
  const auto* body = std::get_if<channel::ReadVarResponse>(&reply.body);
  if (!body) {
    return all("bad-reply", QualityReason::plc_refused,
               "the PLC answered a read with another reply");
  }
  auto cut = channel::cut_reply(request, *body);
  if (!cut) {
    return all("bad-reply", QualityReason::plc_refused,
               "the PLC's reply does not fit the request: " + cut.error().to_string());
  }
  for (const channel::TagBytes& piece : *cut) {
    const Id tag = tags[piece.tag];
    const auto record = table.find(tag);
    if (record == table.end() || record->second.removed) continue;
    if (piece.return_code != 0xFF) {
      char code[8];
      std::snprintf(code, sizeof code, "0x%02X", piece.return_code);
      out.push_back(
          {tag, std::nullopt, QualityReason::plc_refused,
           std::string(channel::return_code_text(piece.return_code)) + " (" + code + ")"});
      continue;
    }
    auto decoded = decode_value(record->second.config.type, piece.data);
    if (auto* why = std::get_if<std::string>(&decoded)) {
      out.push_back({tag, std::nullopt, QualityReason::config_error, *why});
    } else {
      out.push_back({tag, std::get<Value>(std::move(decoded)), QualityReason::none, {}});
    }
  }
  return out;
}

// A value as a tag of this type holds it (integers for Real and LReal become doubles, a Real is
// rounded to the float the PLC holds), or why it does not fit the type.
std::variant<Value, std::string> normalized(const TypeSpec& type, Value value) {
  const bool real = type.type == DataType::Real, lreal = type.type == DataType::LReal;
  if (const std::int64_t* i = std::get_if<std::int64_t>(&value); i && (real || lreal)) {
    value = double(*i);
  }
  auto encoded = encode_value(type, value);
  if (auto* why = std::get_if<std::string>(&encoded)) return *why;
  if (real) value = double(float(std::get<double>(value)));
  return value;
}

GroupPlan make_plan(const std::vector<Id>& group_tags, const std::map<Id, Tag>& table,
                    std::uint16_t pdu, std::uint16_t amq) {
  GroupPlan result;
  result.pdu = pdu;
  result.amq = amq;
  std::vector<Id> candidates = group_tags;
  const channel::PlannerLimits limits{pdu, std::min<std::size_t>(255, channel::max_read_items(pdu)),
                                      std::max<std::size_t>(1, amq)};
  for (;;) {
    std::vector<channel::ReadTag> reads;
    reads.reserve(candidates.size());
    for (Id t : candidates) reads.push_back(to_read_tag(*table.at(t).config.address));
    auto plan = channel::plan_reads(reads, limits);
    if (auto* ok = std::get_if<channel::ReadPlan>(&plan)) {
      result.tags = std::move(candidates);
      result.plan = std::move(*ok);
      return result;
    }
    const auto& error = std::get<channel::PlanError>(plan);
    result.unreadable.emplace_back(candidates[error.tag], error.reason);
    candidates.erase(candidates.begin() + std::ptrdiff_t(error.tag));
  }
}

}  // namespace

struct TagServer::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::any_io_executor executor, certstore::CertificateStore& store)
      : executor(executor), strand(asio::make_strand(executor)), store(store) {}

  asio::any_io_executor executor;
  asio::strand<asio::any_io_executor> strand;
  certstore::CertificateStore& store;

  mutable std::recursive_mutex mutex;
  bool started = false, detached = false;
  std::map<Id, Tag> tags;  // by id, removed ones until the strand erases them
  std::map<std::string, Id, std::less<>> by_name;  // tags not removed
  std::map<Id, Link> links;
  std::map<std::string, Id, std::less<>> link_by_name;  // links not removed
  Id next_id = 1;                                       // of tags, links, groups and sessions alike
  boost::signals2::signal<void(const TagUpdate&)> updates;

  using Lock = std::lock_guard<std::recursive_mutex>;

  template <class F>
  void run(F f) {
    asio::post(strand, [self = shared_from_this(), f = std::move(f)]() mutable {
      Lock lock(self->mutex);
      if (!self->detached) f();
    });
  }

  // A callback for a connection's thread: hands its argument to f on the strand, under the
  // mutex; nothing once the server is detached or gone. f may use `this` (run keeps it alive).
  template <class Arg, class F>
  std::function<void(Arg)> on_strand(F f) {
    return [weak = weak_from_this(), f = std::move(f)](Arg arg) {
      if (auto self = weak.lock()) self->run([f, arg = std::move(arg)] { f(arg); });
    };
  }

  // A timer handler (timers run on the strand): f under the mutex unless cancelled or detached.
  template <class F>
  auto after_timer(F f) {
    return [weak = weak_from_this(), f = std::move(f)](boost::system::error_code ec) {
      if (ec) return;
      if (auto self = weak.lock()) {
        Lock lock(self->mutex);
        if (!self->detached) f();
      }
    };
  }

  // The callback of a job handed to a session's connection now: its reply is timed for
  // LinkStatistics::rtt, then f handles the result on the strand.
  template <class F>
  channel::JobCallback timed(Link& link, Session& session, F f) {
    const std::uint64_t ticket = session.clock.handed_over(Steady::now());
    return on_strand<channel::JobResult>(
        [this, l = link.id, id = session.id, ticket, f = std::move(f)](const auto& result) {
          time_reply(l, id, ticket, result);
          f(result);
        });
  }

  void time_reply(Id l, Id id, std::uint64_t ticket, const channel::JobResult& result) {
    auto it = links.find(l);
    if (it == links.end()) return;
    Session* session = session_of(it->second, id);
    if (!session) return;
    const auto round_trip = session->clock.answered(ticket, Steady::now());
    if (round_trip && std::holds_alternative<channel::Pdu>(result)) {
      observe(it->second.stats.rtt, *round_trip);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Lookups by id: nothing for what was removed

  Tag* live_tag(Id id) {
    auto it = tags.find(id);
    return it == tags.end() || it->second.removed ? nullptr : &it->second;
  }

  Link* live_link(Id id) {
    auto it = links.find(id);
    return it == links.end() || it->second.removed ? nullptr : &it->second;
  }

  static Group* group_of(Link& link, Id g) {
    auto it = link.groups.find(g);
    return it == link.groups.end() ? nullptr : &it->second;
  }

  // Any session of the link: serving, pending or retired.
  static Session* session_of(Link& link, Id id) {
    if (link.active && link.active->id == id) return link.active.get();
    if (link.pending && link.pending->id == id) return link.pending.get();
    for (auto& retired : link.retired) {
      if (retired->id == id) return retired.get();
    }
    return nullptr;
  }

  // -------------------------------------------------------------------------------------------
  // Records

  void set_state(Id id, TagState next, bool fresh) {
    Tag* tag = live_tag(id);
    if (!tag) return;
    const bool changed = !(next.value == tag->state.value) || next.quality != tag->state.quality ||
                         next.reason != tag->state.reason || next.detail != tag->state.detail;
    if (!changed && !fresh) return;
    next.server_time = std::chrono::system_clock::now();
    tag->state = std::move(next);
    if (!detached) updates(TagUpdate{tag->config.name, tag->state, changed});
  }

  void set_good(Id id, Value value, SystemTime when) {
    const Tag* tag = live_tag(id);
    if (!tag) return;
    TagState next = tag->state;
    next.value = std::move(value);
    next.quality = Quality::good;
    next.reason = QualityReason::none;
    next.detail.clear();
    next.source_time = when;
    set_state(id, std::move(next), true);
  }

  void set_bad(Id id, QualityReason reason, std::string detail) {
    const Tag* tag = live_tag(id);
    if (!tag) return;
    TagState next = tag->state;
    next.quality = Quality::bad;
    next.reason = reason;
    next.detail = std::move(detail);
    set_state(id, std::move(next), false);
  }

  void apply(const Outcome& o, SystemTime when) {
    if (o.value) {
      set_good(o.tag, *o.value, when);
    } else {
      set_bad(o.tag, o.reason, o.detail);
    }
  }

  // A system tag's value (always good, except the days left without a certificate).
  void set_system(Link& link, Sys which, Value value) {
    const Id id = link.system[std::size_t(which)];
    const Tag* tag = live_tag(id);
    if (!tag || (tag->state.quality == Quality::good && tag->state.value == value)) return;
    set_good(id, std::move(value), std::chrono::system_clock::now());
  }

  void set_last_error(Link& link, std::string text) {
    set_system(link, Sys::last_error, fit_text(std::move(text)));
  }

  // Text for a Text[255] system tag: longer text keeps its first 252 characters and "...".
  static std::string fit_text(std::string text) {
    std::size_t chars = 0, cut = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
      if ((static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) continue;  // continuation byte
      if (chars == kMaxTextLength - 3) cut = i;
      if (++chars > kMaxTextLength) return text.substr(0, cut) + "...";
    }
    return text;
  }

  // -------------------------------------------------------------------------------------------
  // Configuration

  std::optional<std::string> add_connection(ConnectionSetup setup) {
    const std::string name = setup.config.name;
    if (name.empty()) return std::string("a connection needs a name");
    for (char c : name) {
      if (c == '@' || static_cast<unsigned char>(c) < 0x20) {
        return "connection name '" + name + "' must not contain '@' or control characters";
      }
    }
    if (link_by_name.count(name)) return "connection '" + name + "' exists already";
    if (setup.force_connection_state > 1) {
      return "start value of " + system_tag_name(name, kForceConnectionState) +
             " must be 0 or 1, not " + std::to_string(setup.force_connection_state);
    }
    if (setup.use_alternative_address > 1) {
      return "start value of " + system_tag_name(name, kUseAlternativeAddress) +
             " must be 0 or 1, not " + std::to_string(setup.use_alternative_address);
    }
    Link link;
    link.force = setup.force_connection_state;
    link.use = setup.use_alternative_address;
    if (!setup.alternative_address.empty()) {
      auto parsed = check_alternative(setup.config, setup.alternative_address);
      if (auto* why = std::get_if<std::string>(&parsed)) {
        return "start value of " + system_tag_name(name, kAlternativeAddress) + ": " + *why;
      }
      link.alternative = std::get<AlternativeAddress>(std::move(parsed));
    }
    if (link.use == 1 && !link.alternative) {
      return "start value 1 of " + system_tag_name(name, kUseAlternativeAddress) +
             " needs a start value of " + system_tag_name(name, kAlternativeAddress);
    }
    for (const SysSpec& spec : kSysSpecs) {
      if (by_name.count(system_tag_name(name, spec.name))) {
        return "tag " + system_tag_name(name, spec.name) + " exists already";
      }
    }
    link.id = next_id++;
    for (const SysSpec& spec : kSysSpecs) {
      Tag tag;
      tag.config.name = system_tag_name(name, spec.name);
      tag.config.type = spec.type;
      tag.config.access = spec.access;
      tag.link = link.id;
      tag.system = spec.which;
      tag.state.value = zero_value(spec.type);
      tag.state.quality = Quality::good;
      tag.state.reason = QualityReason::none;
      tag.state.server_time = std::chrono::system_clock::now();
      const Id id = next_id++;
      link.system[std::size_t(spec.which)] = id;
      by_name.emplace(tag.config.name, id);
      tags.emplace(id, std::move(tag));
    }
    link.setup = std::move(setup);
    const auto system = [&](Sys which) -> TagState& {
      return tags.at(link.system[std::size_t(which)]).state;
    };
    system(Sys::force).value = std::int64_t(link.force);
    system(Sys::use).value = std::int64_t(link.use);
    system(Sys::alternative).value =
        link.alternative ? link.alternative->to_string() : std::string();
    system(Sys::current).value = fit_text(selected(link).text());
    system(Sys::days_left) = no_certificate_state();
    link_by_name.emplace(name, link.id);
    Link& stored = links.emplace(link.id, std::move(link)).first->second;
    if (started) start_link(stored);
    return std::nullopt;
  }

  static TagState no_certificate_state() {
    TagState s;
    s.value = std::int64_t{0};
    s.quality = Quality::bad;
    s.reason = QualityReason::not_connected;
    s.detail = "no PLC certificate in use";
    s.server_time = std::chrono::system_clock::now();
    return s;
  }

  std::optional<std::string> add_tag(TagConfig config) {
    const std::string who = "tag '" + config.name + "': ";
    if (config.name.empty()) return std::string("a tag needs a name");
    if (config.name.front() == '@') return who + "names starting with '@' are system tags";
    for (char c : config.name) {
      if (static_cast<unsigned char>(c) < 0x20) return who + "control characters in the name";
    }
    if (by_name.count(config.name)) return who + "exists already";
    if (config.type.type == DataType::String &&
        (config.type.string_length < 1 || config.type.string_length > kMaxStringLength)) {
      return who + "String length " + std::to_string(config.type.string_length) +
             " out of range 1..254";
    }
    if (config.type.type == DataType::Text &&
        (config.type.string_length < 1 || config.type.string_length > kMaxTextLength)) {
      return who + "Text length " + std::to_string(config.type.string_length) +
             " out of range 1..255";
    }
    Tag tag;
    if (config.connection.empty()) {
      if (config.address) return who + "an internal tag has no address (or name its connection)";
    } else {
      auto l = link_by_name.find(config.connection);
      if (l == link_by_name.end()) return who + "unknown connection '" + config.connection + "'";
      if (!config.address)
        return who + "a tag of connection '" + config.connection + "' needs an address";
      if (auto why = check_fits(*config.address, config.type)) return who + *why;
      if (config.cycle < kMinCycle || config.cycle > kMaxCycle) {
        return who + "acquisition cycle " + std::to_string(config.cycle.count()) +
               " ms out of range 10 ms..24 h";
      }
      tag.link = l->second;
    }
    if (config.start_value) {
      auto value = normalized(config.type, *config.start_value);
      if (auto* why = std::get_if<std::string>(&value)) return who + "start value: " + *why;
      config.start_value = std::get<Value>(std::move(value));
    }
    tag.state.value = config.start_value ? *config.start_value : zero_value(config.type);
    tag.state.server_time = std::chrono::system_clock::now();
    if (tag.link == kNone) {
      tag.state.quality = Quality::good;
      tag.state.reason = QualityReason::none;
      tag.state.source_time = tag.state.server_time;
    } else if (config.start_value) {
      tag.state.quality = Quality::uncertain;
      tag.state.reason = QualityReason::last_known;
      tag.state.detail = "start value, not read from the PLC yet";
    } else {
      tag.state.detail = "not read from the PLC yet";
    }
    tag.config = std::move(config);
    const Id id = next_id++;
    by_name.emplace(tag.config.name, id);
    if (tag.link == kNone) {
      tags.emplace(id, std::move(tag));
      return std::nullopt;
    }
    Link& link = links.at(tag.link);
    if (started && !link_up(link) && !link.down_detail.empty()) {
      // Down like the connection's other tags, for the same reason.
      tag.state.quality = Quality::bad;
      tag.state.reason = QualityReason::not_connected;
      tag.state.detail = link.down_detail;
    }
    const auto cycle = tag.config.cycle;
    tags.emplace(id, std::move(tag));
    auto g = std::find_if(link.groups.begin(), link.groups.end(),
                          [&](const auto& entry) { return entry.second.cycle == cycle; });
    const bool new_group = g == link.groups.end();
    if (new_group) {
      g = link.groups.emplace(next_id++, Group{}).first;
      g->second.cycle = cycle;
    }
    Group& group = g->second;
    group.tags.push_back(id);
    group.replan = true;
    if (started && new_group) {
      start_group(link, g->first, group, Steady::now());  // its first cycle at once
    } else if (started) {
      read_soon(link, g->first, group);
    }
    return std::nullopt;
  }

  // Takes the tag out of every lookup and out of its connection's plan at once; its record goes
  // on the strand (a caller up the stack may still refer to it).
  std::optional<std::string> remove_tag(std::string_view name) {
    auto it = by_name.find(name);
    if (it == by_name.end()) return "no tag named '" + std::string(name) + "'";
    const Id id = it->second;
    Tag& tag = tags.at(id);
    if (tag.system) {
      return tag.config.name + " is a system tag: it goes with connection '" +
             links.at(tag.link).setup.config.name + "' (remove the connection)";
    }
    tag.removed = true;
    by_name.erase(it);
    if (tag.link != kNone) {
      for (auto& [g, group] : links.at(tag.link).groups) {
        if (std::erase(group.tags, id) > 0) group.replan = true;
      }
    }
    run([this, id] { erase_tag(id); });
    return std::nullopt;
  }

  void erase_tag(Id id) {
    auto it = tags.find(id);
    if (it == tags.end()) return;
    const Id l = it->second.link;
    tags.erase(it);
    if (Link* link = live_link(l)) {
      std::erase_if(link->groups, [](const auto& entry) { return entry.second.tags.empty(); });
    }
  }

  // Takes the connection and its tags out of every lookup at once; the sessions close and the
  // records go on the strand.
  std::optional<std::string> remove_connection(std::string_view name) {
    auto it = link_by_name.find(name);
    if (it == link_by_name.end()) return "no connection named '" + std::string(name) + "'";
    const Id l = it->second;
    link_by_name.erase(it);
    links.at(l).removed = true;
    for (auto& [id, tag] : tags) {
      if (tag.link != l || tag.removed) continue;
      tag.removed = true;
      by_name.erase(tag.config.name);
    }
    run([this, l] { erase_link(l); });
    return std::nullopt;
  }

  void erase_link(Id l) {
    auto it = links.find(l);
    if (it == links.end()) return;
    Link& link = it->second;
    const std::string why = "connection " + link.setup.config.name + " was removed";
    drop(link.pending, why);
    drop(link.active, why);
    for (auto& retired : link.retired) drop(retired, why);
    std::erase_if(tags, [l](const auto& entry) { return entry.second.link == l; });
    links.erase(l);  // by key: a write callback above may have added links
  }

  // The AlternativeAddress as text -> its value, or why it is refused for this connection.
  static std::variant<AlternativeAddress, std::string> check_alternative(
      const channel::ConnectionConfig& config, std::string_view text) {
    auto parsed = AlternativeAddress::parse(text);
    if (auto* error = std::get_if<ParseError>(&parsed)) {
      return "AlternativeAddress refused: " + error->to_string();
    }
    AlternativeAddress alt = std::get<AlternativeAddress>(std::move(parsed));
    if (config.mode == channel::SecurityMode::s7_secure && (alt.tsap || alt.rack || alt.slot)) {
      return std::string(
          "AlternativeAddress refused: Rack, Slot and TSAP select a plaintext S7 connection; "
          "this connection is s7-secure and never falls back to plaintext");
    }
    return alt;
  }

  Endpoint original(const Link& link) const { return Endpoint{false, link.setup.config}; }

  Endpoint alternative_endpoint(const Link& link) const {
    Endpoint e{true, link.setup.config};
    const AlternativeAddress& alt = *link.alternative;
    e.config.address = alt.ip_address;
    if (alt.port) e.config.port = *alt.port;
    if (alt.rack && alt.slot) {
      e.config.rack = *alt.rack;
      e.config.slot = *alt.slot;
      e.config.remote_tsap.reset();
    }
    if (alt.tsap) e.config.remote_tsap = channel::Tsap::from_u16(*alt.tsap);
    return e;
  }

  Endpoint selected(const Link& link) const {
    return link.use == 1 && link.alternative ? alternative_endpoint(link) : original(link);
  }

  static bool link_up(const Link& link) {
    return link.active && link.active->state == ConnectionState::up;
  }

  // -------------------------------------------------------------------------------------------
  // Start and stop

  void start() {
    if (started) return;
    started = true;
    // By id: an update handler may add a connection meanwhile, which then starts by itself.
    std::vector<Id> ids;
    for (const auto& [l, link] : links) ids.push_back(l);
    for (Id l : ids) {
      if (Link* link = live_link(l)) start_link(*link);
    }
  }

  // Acquisition timers, and the connection as its start values say (or as they were set since).
  void start_link(Link& link) {
    for (auto& [g, group] : link.groups) {
      start_group(link, g, group, Steady::now() + group.cycle);
    }
    link.housekeeping = std::make_unique<asio::steady_timer>(strand);
    arm_housekeeping(link);
    if (link.force == 1) {
      link.active = open_session(link, selected(link));
    } else {
      mark_link_down(link, "forced down by " +
                               system_tag_name(link.setup.config.name, kForceConnectionState) +
                               " = 0");
    }
    refresh_system(link);
  }

  void start_group(Link& link, Id g, Group& group, Steady::time_point first) {
    group.timer = std::make_unique<asio::steady_timer>(strand);
    group.next = first;
    arm(link, g, group);
  }

  void stop() {
    for (auto& [l, link] : links) {
      drop(link.active, "the tag server stopped");
      drop(link.pending, "the tag server stopped");
      for (auto& retired : link.retired) drop(retired, "the tag server stopped");
      link.retired.clear();
      link.first_read = {};
      for (auto& [g, group] : link.groups) {
        if (group.timer) group.timer->cancel();
        group.outstanding = 0;
        ++group.round;
      }
      if (link.housekeeping) link.housekeeping->cancel();
      mark_link_down(link, "the tag server is stopped");
      set_system(link, Sys::state, std::int64_t(LinkState::disabled));
    }
  }

  void detach() {
    detached = true;
    updates.disconnect_all_slots();
    stop();
  }

  // Closes a session (close_notify, in the connection's own time). Writes it still waits for
  // get their answer now: nobody can tell any more whether the PLC took them.
  void drop(std::unique_ptr<Session>& session, const std::string& why) {
    if (!session) return;
    auto writes = std::move(session->writes);
    session.reset();
    for (auto& [number, write] : writes) {
      write.second(write.first + ": not confirmed: " + why +
                   " before the PLC answered; the value may or may not be written");
    }
  }

  // A session a switch replaced: closed once the PLC has answered its writes.
  void retire(Link& link, std::unique_ptr<Session> session) {
    if (session && !session->writes.empty()) link.retired.push_back(std::move(session));
  }

  std::unique_ptr<Session> open_session(Link& link, Endpoint endpoint) {
    auto session = std::make_unique<Session>();
    session->id = next_id++;
    session->endpoint = std::move(endpoint);
    session->connection =
        std::make_unique<channel::Connection>(executor, store, session->endpoint.config);
    session->connection->subscribe(on_strand<const channel::ConnectionEvent&>(
        [this, l = link.id, id = session->id](const channel::ConnectionEvent& event) {
          on_event(l, id, event);
        }));
    session->state = ConnectionState::connecting;
    session->connection->start();
    return session;
  }

  // -------------------------------------------------------------------------------------------
  // Connection events

  void on_event(Id l, Id id, const channel::ConnectionEvent& event) {
    Link* link = live_link(l);
    if (!link) return;
    if (link->active && link->active->id == id) {
      on_active_event(*link, event);
    } else if (link->pending && link->pending->id == id) {
      on_pending_event(*link, event);
    }
  }

  // A session came up: counted, and its request clock starts over.
  void count_up(Link& link, Session& session) {
    ++link.stats.sessions_up;
    session.clock.restart(session.connection->info().amq);
  }

  // Whether the event is a failed attempt or an ended session (not one stopped on purpose);
  // if so, it is counted by its reason.
  static bool count_failure(Link& link, const channel::ConnectionEvent& event) {
    if (event.state != ConnectionState::waiting && event.state != ConnectionState::stopped) {
      return false;
    }
    if (event.reason == channel::FailureReason::none ||
        event.reason == channel::FailureReason::stopped) {
      return false;
    }
    ++link.stats.failures[channel::failure_reason_name(event.reason)];
    return true;
  }

  void on_active_event(Link& link, const channel::ConnectionEvent& event) {
    Session& session = *link.active;
    const bool was_up = session.state == ConnectionState::up;
    session.state = event.state;
    if (event.state == ConnectionState::up) {
      count_up(link, session);
      link.last_info = session.connection->info();
      for (auto& [g, group] : link.groups) {
        group.plan.reset();
        group.outstanding = 0;
        ++group.round;
      }
      for (auto& [g, group] : link.groups) begin_cycle(link, g, group);
    } else {
      if (count_failure(link, event)) {
        set_last_error(
            link, "connection to " + session.endpoint.text() + " failed: " + failure_words(event));
      }
      if (was_up || event.state != ConnectionState::connecting) {
        std::string detail = link.setup.config.name + " is not connected";
        if (event.reason != channel::FailureReason::none) {
          detail += " (" + reason_words(event.reason, event.detail) + ")";
        }
        mark_link_down(link, detail);
      }
      for (auto& [g, group] : link.groups) {
        group.outstanding = 0;
        ++group.round;
      }
    }
    refresh_system(link);
  }

  void on_pending_event(Link& link, const channel::ConnectionEvent& event) {
    Session& pending = *link.pending;
    pending.state = event.state;
    if (event.state == ConnectionState::up) {
      count_up(link, pending);
      start_first_read(link);
      return;
    }
    link.first_read = {};
    if (count_failure(link, event)) {
      set_last_error(link, "switch to " + pending.endpoint.text() + " not done, still on " +
                               link.active->endpoint.text() + ": " + failure_words(event));
    }
  }

  // Every PLC tag of the link bad (not connected).
  void mark_link_down(Link& link, const std::string& detail) {
    link.down_detail = detail;
    for (auto& [id, tag] : tags) {
      if (tag.link == link.id && !tag.system) set_bad(id, QualityReason::not_connected, detail);
    }
  }

  // The read-only system tags from the facts now.
  void refresh_system(Link& link) {
    LinkState state = LinkState::disabled;
    if (link.force == 1 && link.active) {
      switch (link.active->state) {
        case ConnectionState::up:
          state = LinkState::connected;
          break;
        case ConnectionState::waiting:
          state = LinkState::error;
          break;
        case ConnectionState::connecting:
        case ConnectionState::stopped:
          state = LinkState::connecting;
          break;
      }
    }
    set_system(link, Sys::state, std::int64_t(state));
    const bool up = state == LinkState::connected;
    set_system(link, Sys::current,
               fit_text(up ? link.active->endpoint.text() : selected(link).text()));
    std::optional<certstore::CertificateInfo> peer;
    if (up && link.last_info) peer = link.last_info->peer_certificate;
    set_system(link, Sys::peer_certificate,
               fit_text(peer ? "SHA-256 " + peer->sha256 + " " + peer->subject : std::string()));
    const Id days = link.system[std::size_t(Sys::days_left)];
    if (peer) {
      set_system(link, Sys::days_left,
                 std::int64_t(peer->days_until_expiry(std::chrono::system_clock::now())));
    } else if (const Tag* tag = live_tag(days); tag && tag->state.quality == Quality::good) {
      TagState s = no_certificate_state();
      s.detail = up ? "the session uses no PLC certificate (plaintext or PSK)"
                    : "no PLC certificate in use: not connected";
      set_state(days, std::move(s), false);
    }
  }

  void arm_housekeeping(Link& link) {
    link.housekeeping->expires_after(kHousekeeping);
    link.housekeeping->async_wait(after_timer([this, l = link.id] {
      if (Link* link = live_link(l)) {
        refresh_system(*link);
        arm_housekeeping(*link);
      }
    }));
  }

  // -------------------------------------------------------------------------------------------
  // Acquisition

  void arm(Link& link, Id g, Group& group) {
    group.timer->expires_at(group.next);
    group.timer->async_wait(after_timer([this, l = link.id, g] {
      Link* link = live_link(l);
      Group* group = link ? group_of(*link, g) : nullptr;
      if (started && group) on_tick(*link, g, *group);
    }));
  }

  // Tags joined the group of a running server: their first read comes at once, or as soon as
  // the group's cycle in progress ends, rather than a whole cycle later.
  void read_soon(Link& link, Id g, Group& group) {
    if (group.outstanding > 0) {
      group.read_added = true;
      return;
    }
    group.next = Steady::now();
    arm(link, g, group);
  }

  void on_tick(Link& link, Id g, Group& group) {
    const auto now = Steady::now();
    if (link_up(link)) observe(link.stats.lateness, now - group.next);
    group.next += group.cycle;
    if (group.next <= now) {
      // Late (a busy machine, a long cycle): the next tick on the grid after now.
      const auto behind = (now - group.next) / group.cycle + 1;
      group.next += behind * group.cycle;
    }
    arm(link, g, group);
    if (link.pending && link.pending->state == ConnectionState::up &&
        link.first_read.session == 0) {
      start_first_read(link);
    }
    begin_cycle(link, g, group);
  }

  void begin_cycle(Link& link, Id g, Group& group) {
    if (!link_up(link)) return;
    if (group.outstanding > 0) {
      ++link.stats.overruns;
      return;
    }
    if (!group.plan || group.replan) {
      const auto info = link.active->connection->info();
      group.plan = make_plan(group.tags, tags, info.pdu, info.amq);
      group.replan = false;
      for (const auto& [tag, why] : group.plan->unreadable) {
        set_bad(tag, QualityReason::config_error, why);
      }
    }
    group.read_added = false;
    if (group.plan->plan.requests.empty()) return;
    ++group.round;
    group.outstanding = group.plan->plan.requests.size();
    group.started = Steady::now();
    Session& session = *link.active;
    const std::uint64_t round = group.round;
    for (std::size_t r = 0; r < group.plan->plan.requests.size(); ++r) {
      ++link.stats.requests;
      session.connection->submit(
          channel::read_request_pdu(0, group.plan->plan.requests[r]),
          timed(link, session,
                [this, l = link.id, g, r, round, id = session.id](const auto& result) {
                  on_cycle_reply(l, g, r, round, id, result);
                }));
    }
  }

  void on_cycle_reply(Id l, Id g, std::size_t r, std::uint64_t round, Id session,
                      const channel::JobResult& result) {
    Link* link = live_link(l);
    Group* group = link ? group_of(*link, g) : nullptr;
    if (!group || !link->active || link->active->id != session || group->round != round ||
        !group->plan) {
      return;
    }
    const auto when = std::chrono::system_clock::now();
    const char* failure = nullptr;
    const auto outcomes =
        outcomes_of(group->plan->plan.requests[r], group->plan->tags, tags, result, &failure);
    // (The jobs of a session this side ended, by ForceConnectionState 0 or a switch, do not
    // come this far: that session is no longer the link's active one.)
    if (failure) {
      ++link->stats.failed_reads[failure];
    } else {
      for (const Outcome& o : outcomes) link->stats.tag_errors += !o.value;
    }
    for (const Outcome& o : outcomes) {
      if (o.value) ++link->stats.values;
      // A job that failed because the session ended: the connection event marks the tags.
      if (!o.value && o.reason == QualityReason::not_connected) continue;
      apply(o, when);
    }
    if (group->outstanding > 0 && --group->outstanding == 0) {
      ++link->stats.cycles;
      link->stats.last_cycle =
          std::chrono::duration_cast<std::chrono::microseconds>(Steady::now() - group->started);
      link->stats.busy += link->stats.last_cycle;
      if (group->read_added) read_soon(*link, g, *group);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Make-before-break

  // The pending session is up: read every tag of the link through it.
  void start_first_read(Link& link) {
    Session& pending = *link.pending;
    const auto info = pending.connection->info();
    auto plans = std::make_shared<std::vector<GroupPlan>>();
    std::size_t requests = 0;
    for (const auto& [g, group] : link.groups) {
      plans->push_back(make_plan(group.tags, tags, info.pdu, info.amq));
      requests += plans->back().plan.requests.size();
    }
    link.first_read = FirstRead{pending.id, requests, {}, {}};
    for (const GroupPlan& plan : *plans) {
      for (const auto& [tag, why] : plan.unreadable) {
        TagState s = tags.at(tag).state;
        s.quality = Quality::bad;
        s.reason = QualityReason::config_error;
        s.detail = why;
        link.first_read.results.emplace_back(tag, std::move(s));
      }
    }
    if (requests == 0) return complete_switch(link);
    for (std::size_t p = 0; p < plans->size(); ++p) {
      for (std::size_t r = 0; r < (*plans)[p].plan.requests.size(); ++r) {
        pending.connection->submit(
            channel::read_request_pdu(0, (*plans)[p].plan.requests[r]),
            timed(link, pending,
                  [this, l = link.id, p, r, id = pending.id, plans](const auto& result) {
                    on_first_read_reply(l, (*plans)[p], r, id, result);
                  }));
      }
    }
  }

  void on_first_read_reply(Id l, const GroupPlan& plan, std::size_t r, Id id,
                           const channel::JobResult& result) {
    Link* link = live_link(l);
    if (!link || !link->pending || link->pending->id != id || link->first_read.session != id) {
      return;
    }
    FirstRead& fr = link->first_read;
    const auto when = std::chrono::system_clock::now();
    for (const Outcome& o : outcomes_of(plan.plan.requests[r], plan.tags, tags, result)) {
      if (!o.value && o.reason == QualityReason::not_connected) {
        fr.failure = o.detail;
        continue;
      }
      const Tag* tag = live_tag(o.tag);
      if (!tag) continue;
      TagState s = tag->state;
      if (o.value) {
        s.value = *o.value;
        s.quality = Quality::good;
        s.reason = QualityReason::none;
        s.detail.clear();
        s.source_time = when;
      } else {
        s.quality = Quality::bad;
        s.reason = o.reason;
        s.detail = o.detail;
      }
      fr.results.emplace_back(o.tag, std::move(s));
    }
    if (--fr.outstanding > 0) return;
    if (!fr.failure.empty()) {
      set_last_error(*link, "switch to " + link->pending->endpoint.text() +
                                " not done: its first read failed: " + fr.failure);
      fr = {};  // tried again at the next cycle while the new session stays up
      return;
    }
    complete_switch(*link);
  }

  // The pending session has read every tag: it serves from now on; the old one closes.
  void complete_switch(Link& link) {
    FirstRead fr = std::move(link.first_read);
    link.first_read = {};
    std::unique_ptr<Session> old = std::move(link.active);
    link.active = std::move(link.pending);
    link.last_info = link.active->connection->info();
    for (auto& [g, group] : link.groups) {
      group.plan.reset();
      group.outstanding = 0;
      ++group.round;
    }
    for (auto& [tag, state] : fr.results) {
      const bool fresh = state.quality == Quality::good;
      set_state(tag, std::move(state), fresh);  // nothing for a tag removed meanwhile
    }
    ++link.stats.switches;
    retire(link, std::move(old));  // close_notify and COTP DR once its writes are answered
    refresh_system(link);
  }

  // The selection (Use, or the alternative in use) changed: act on it.
  void reselect(Link& link) {
    if (link.force != 1 || !started) return refresh_system(link);
    const Endpoint target = selected(link);
    if (link.active && link.active->endpoint.same_as(target)) {
      drop(link.pending, "switched back");  // before the new one was ready
      link.first_read = {};
      return refresh_system(link);
    }
    if (link_up(link)) {
      if (link.pending && link.pending->endpoint.same_as(target)) return;
      link.first_read = {};
      link.pending = open_session(link, target);  // make-before-break
    } else {
      drop(link.pending, "the selection changed");
      link.first_read = {};
      drop(link.active, "the selection changed");
      link.active = open_session(link, target);  // nothing serves: go straight there
    }
    refresh_system(link);
  }

  // -------------------------------------------------------------------------------------------
  // Writes

  void write(const std::string& name, Value value, const WriteCallback& done) {
    auto it = by_name.find(name);
    if (it == by_name.end()) return done("no tag named '" + name + "'");
    const Id id = it->second;
    Tag& tag = tags.at(id);
    if (tag.config.access != Access::read_write) return done(name + " is read-only");
    auto checked = normalized(tag.config.type, std::move(value));
    if (auto* why = std::get_if<std::string>(&checked)) return done(name + ": " + *why);
    value = std::get<Value>(std::move(checked));
    if (tag.system) return write_system(id, std::move(value), done);
    if (tag.link == kNone) {
      set_good(id, std::move(value), std::chrono::system_clock::now());
      return done(std::nullopt);
    }
    Link& link = links.at(tag.link);
    if (!link_up(link)) {
      std::string why =
          name + ": not written, connection " + link.setup.config.name + " is not connected";
      if (link.force == 0) why += " (forced down)";
      return done(why);
    }
    const Address& address = *tag.config.address;
    channel::VarItem item = to_var_item(address);
    channel::DataItem data;
    data.return_code = 0;
    data.data = std::get<channel::Bytes>(encode_value(tag.config.type, value));  // fits: checked
    if (address.width == Address::Width::Bit) {
      data.size = channel::DataSize::bit;
    } else if (address.width == Address::Width::Timer || address.width == Address::Width::Counter) {
      data.size = channel::DataSize::octet_string;
    } else {
      data.size = channel::DataSize::byte_word_dword;
    }
    Session& session = *link.active;
    const std::uint64_t number = session.next_write++;
    session.writes.emplace(number, std::make_pair(name, done));
    session.connection->write(
        {item}, {std::move(data)},
        timed(link, session, [this, l = link.id, id = session.id, number](const auto& result) {
          on_write_reply(l, id, number, result);
        }));
  }

  // Also for a removed connection whose sessions are not closed yet: the PLC's answer is better
  // than "not confirmed".
  void on_write_reply(Id l, Id id, std::uint64_t number, const channel::JobResult& result) {
    auto found = links.find(l);
    if (found == links.end()) return;
    Link& link = found->second;
    Session* session = session_of(link, id);
    if (!session) return;  // dropped: its writes were answered then
    auto it = session->writes.find(number);
    if (it == session->writes.end()) return;
    auto [name, done] = std::move(it->second);
    session->writes.erase(it);
    if (session->writes.empty()) {
      std::erase_if(link.retired, [&](const auto& r) { return r->id == id; });
    }
    done(write_result(name, result));
  }

  static WriteResult write_result(const std::string& name, const channel::JobResult& result) {
    if (const auto* error = std::get_if<channel::JobError>(&result)) {
      // Sent, and the session ended before the answer: nobody can tell whether the PLC took it
      // (as for a session closed on purpose, drop()).
      if (error->sent) {
        return name + ": not confirmed, the value may or may not be written: " +
               reason_words(error->reason, error->detail);
      }
      return name + ": write failed: " + reason_words(error->reason, error->detail);
    }
    const channel::Pdu& reply = std::get<channel::Pdu>(result);
    if (reply.header.error() != 0) {
      return name + ": the PLC refused the write: " + channel::s7_error_text(reply.header.error());
    }
    const auto* body = std::get_if<channel::WriteVarResponse>(&reply.body);
    if (!body || body->return_codes.size() != 1) {
      return name + ": the PLC answered the write with a reply that does not fit it";
    }
    const std::uint8_t rc = body->return_codes[0];
    if (rc != 0xFF) {
      char code[8];
      std::snprintf(code, sizeof code, "0x%02X", rc);
      return name + ": the PLC refused the write: " + channel::return_code_text(rc) + " (" + code +
             ")";
    }
    return std::nullopt;
  }

  void write_system(Id index, Value value, const WriteCallback& done) {
    Tag& tag = tags.at(index);
    Link& link = links.at(tag.link);
    const std::string& name = tag.config.name;
    const auto refuse = [&](std::string why) {
      set_last_error(link, why);
      done(why);
    };
    switch (*tag.system) {
      case Sys::force: {
        const std::int64_t v = std::get<std::int64_t>(value);
        if (v != 0 && v != 1) {
          return refuse(name + " takes 0 (terminate) or 1 (establish), not " + std::to_string(v));
        }
        set_system(link, Sys::force, v);
        if (std::uint32_t(v) == link.force) {
          refresh_system(link);
          return done(std::nullopt);
        }
        link.force = std::uint32_t(v);
        if (v == 0) {
          drop(link.pending, "forced down");
          link.first_read = {};
          drop(link.active, "the connection was forced down");
          link.last_info.reset();
          for (auto& [g, group] : link.groups) {
            group.outstanding = 0;
            ++group.round;
          }
          mark_link_down(link, "forced down by " + name + " = 0");
        } else if (started) {
          link.active = open_session(link, selected(link));
        }
        refresh_system(link);
        return done(std::nullopt);
      }
      case Sys::use: {
        const std::int64_t v = std::get<std::int64_t>(value);
        if (v != 0 && v != 1) {
          return refuse(name + " takes 0 (original address) or 1 (alternative), not " +
                        std::to_string(v));
        }
        if (v == 1 && !link.alternative) {
          return refuse(name + " = 1 refused: " +
                        system_tag_name(link.setup.config.name, kAlternativeAddress) +
                        " is empty; write the alternative address first");
        }
        set_system(link, Sys::use, v);
        if (std::uint32_t(v) != link.use) {
          link.use = std::uint32_t(v);
          reselect(link);
        }
        return done(std::nullopt);
      }
      case Sys::alternative: {
        const std::string& text = std::get<std::string>(value);
        const bool blank = text.find_first_not_of(" \t") == std::string::npos;
        if (blank) {
          if (link.use == 1) {
            return refuse(name + " cannot be cleared while " +
                          system_tag_name(link.setup.config.name, kUseAlternativeAddress) +
                          " is 1");
          }
          link.alternative.reset();
          set_system(link, Sys::alternative, std::string());
          return done(std::nullopt);
        }
        auto parsed = check_alternative(link.setup.config, text);
        if (auto* why = std::get_if<std::string>(&parsed)) return refuse(name + ": " + *why);
        link.alternative = std::get<AlternativeAddress>(std::move(parsed));
        set_system(link, Sys::alternative, link.alternative->to_string());
        if (link.use == 1) reselect(link);
        return done(std::nullopt);
      }
      default:
        return done(name + " is read-only");
    }
  }
};

// ---------------------------------------------------------------------------------------------

TagServer::TagServer(asio::any_io_executor executor, certstore::CertificateStore& store)
    : impl_(std::make_shared<Impl>(std::move(executor), store)) {}

TagServer::~TagServer() {
  Impl::Lock lock(impl_->mutex);
  impl_->detach();
}

std::optional<std::string> TagServer::add_connection(ConnectionSetup setup) {
  Impl::Lock lock(impl_->mutex);
  return impl_->add_connection(std::move(setup));
}

std::optional<std::string> TagServer::add_tag(TagConfig tag) {
  Impl::Lock lock(impl_->mutex);
  return impl_->add_tag(std::move(tag));
}

std::optional<std::string> TagServer::remove_tag(std::string_view name) {
  Impl::Lock lock(impl_->mutex);
  return impl_->remove_tag(name);
}

std::optional<std::string> TagServer::remove_connection(std::string_view name) {
  Impl::Lock lock(impl_->mutex);
  return impl_->remove_connection(name);
}

void TagServer::start() {
  impl_->run([impl = impl_.get()] { impl->start(); });
}

void TagServer::stop() {
  impl_->run([impl = impl_.get()] {
    impl->stop();
    impl->started = false;
  });
}

std::vector<std::string> TagServer::tag_names() const {
  Impl::Lock lock(impl_->mutex);
  std::vector<std::string> names;
  for (const auto& [name, index] : impl_->by_name) names.push_back(name);
  return names;
}

std::optional<TagConfig> TagServer::tag_config(std::string_view name) const {
  Impl::Lock lock(impl_->mutex);
  auto it = impl_->by_name.find(name);
  if (it == impl_->by_name.end()) return std::nullopt;
  return impl_->tags.at(it->second).config;
}

std::optional<TagState> TagServer::read(std::string_view name) const {
  Impl::Lock lock(impl_->mutex);
  auto it = impl_->by_name.find(name);
  if (it == impl_->by_name.end()) return std::nullopt;
  return impl_->tags.at(it->second).state;
}

void TagServer::write(std::string_view name, Value value, WriteCallback done) {
  impl_->run([impl = impl_.get(), name = std::string(name), value = std::move(value),
              done = std::move(done)]() mutable { impl->write(name, std::move(value), done); });
}

void TagServer::write_text(std::string_view name, std::string_view text, WriteCallback done) {
  impl_->run([impl = impl_.get(), name = std::string(name), text = std::string(text),
              done = std::move(done)] {
    auto it = impl->by_name.find(name);
    if (it == impl->by_name.end()) return done("no tag named '" + name + "'");
    auto parsed = parse_value(impl->tags.at(it->second).config.type, text);
    if (auto* why = std::get_if<std::string>(&parsed)) return done(name + ": " + *why);
    impl->write(name, std::get<Value>(std::move(parsed)), done);
  });
}

boost::signals2::connection TagServer::subscribe(std::function<void(const TagUpdate&)> handler) {
  Impl::Lock lock(impl_->mutex);
  return impl_->updates.connect(std::move(handler));
}

std::optional<LinkStatistics> TagServer::statistics(std::string_view connection) const {
  Impl::Lock lock(impl_->mutex);
  auto it = impl_->link_by_name.find(connection);
  if (it == impl_->link_by_name.end()) return std::nullopt;
  return impl_->links.at(it->second).stats;
}

std::optional<channel::ConnectionInfo> TagServer::connection_info(
    std::string_view connection) const {
  Impl::Lock lock(impl_->mutex);
  auto it = impl_->link_by_name.find(connection);
  if (it == impl_->link_by_name.end()) return std::nullopt;
  const Link& link = impl_->links.at(it->second);
  if (link.active) return link.active->connection->info();
  return link.last_info;
}

}  // namespace scada::tags
