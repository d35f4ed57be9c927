#include "connection_fixture.h"

#include <boost/asio/post.hpp>
#include <future>

namespace scada::test {

namespace ch = channel;
using namespace std::chrono_literals;

EventLoop::EventLoop() : work_(io_.get_executor()), thread_([this] { io_.run(); }) {}

EventLoop::~EventLoop() {
  // Connections destroyed before the loop post their orderly close: let those run first
  // (twice: a strand's handlers reach the loop through one more post).
  for (int round = 0; round < 2; ++round) {
    std::promise<void> drained;
    boost::asio::post(io_, [&drained] { drained.set_value(); });
    drained.get_future().wait_for(2s);
  }
  work_.reset();
  io_.stop();
  thread_.join();
}

certstore::StoreOptions TestStore::quick_options() {
  certstore::StoreOptions o;
  o.debounce = 50ms;
  o.poll_interval = 500ms;
  return o;
}

TestStore::TestStore(certstore::StoreOptions options)
    : layout_(certstore::StoreLayout::for_project(dir_.path())),
      store_(std::make_unique<certstore::CertificateStore>(layout_, options)) {
  store_->start_watching();
}

TrustedPlc::TrustedPlc(TestStore& store, ch::SecurityMode mode, plcsim::PlcConfig config,
                       const std::string& name)
    : files_(store.dir(), name), mode_(mode) {
  write_file(store.layout().roots / (name + "-root.pem"), files_.ca.certificate_pem());
  store.store().reload();
  config.mode = mode;
  config.tls.certificate = files_.certificate_file;
  config.tls.key = files_.key_file;
  simulator_ =
      std::make_unique<plcsim::Simulator>(std::vector<plcsim::PlcConfig>{config}, "127.0.0.1", 0);
}

ch::ConnectionConfig TrustedPlc::connection_config() const {
  ch::ConnectionConfig cc;
  cc.port = simulator_->plc(0).port();
  cc.mode = mode_;
  return cc;
}

EventRecorder::EventRecorder(ch::Connection& connection) {
  subscription_ = connection.subscribe([this](const ch::ConnectionEvent& e) {
    std::lock_guard<std::mutex> lock(mutex_);
    events_.push_back(e);
    changed_.notify_all();
  });
}

EventRecorder::~EventRecorder() {
  subscription_.disconnect();
}

std::optional<ch::ConnectionEvent> EventRecorder::wait(const Match& match,
                                                       std::chrono::milliseconds timeout,
                                                       std::size_t from) {
  std::unique_lock<std::mutex> lock(mutex_);
  std::optional<ch::ConnectionEvent> found;
  changed_.wait_for(lock, timeout, [&] {
    for (std::size_t i = from; i < events_.size(); ++i) {
      if (match(events_[i])) {
        found = events_[i];
        return true;
      }
    }
    return false;
  });
  return found;
}

std::optional<ch::ConnectionEvent> EventRecorder::wait_state(ch::ConnectionState state,
                                                             std::chrono::milliseconds timeout,
                                                             std::size_t from) {
  return wait([state](const ch::ConnectionEvent& e) { return e.state == state; }, timeout, from);
}

std::vector<ch::ConnectionEvent> EventRecorder::events() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return events_;
}

std::size_t EventRecorder::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return events_.size();
}

struct PlcLog::Lines {
  mutable std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::string> lines;
  std::size_t count_from(const std::string& part, std::size_t from) const {
    std::size_t n = 0;
    for (std::size_t i = from; i < lines.size(); ++i) {
      if (lines[i].find(part) != std::string::npos) ++n;
    }
    return n;
  }
};

PlcLog::PlcLog() : lines_(std::make_shared<Lines>()) {}

std::function<void(const std::string&)> PlcLog::sink() {
  return [lines = lines_](const std::string& line) {
    std::lock_guard<std::mutex> lock(lines->mutex);
    lines->lines.push_back(line);
    lines->changed.notify_all();
  };
}

bool PlcLog::wait_for(const std::string& part, std::chrono::milliseconds timeout,
                      std::size_t from) {
  std::unique_lock<std::mutex> lock(lines_->mutex);
  return lines_->changed.wait_for(lock, timeout,
                                  [&] { return lines_->count_from(part, from) > 0; });
}

std::size_t PlcLog::count(const std::string& part) const {
  std::lock_guard<std::mutex> lock(lines_->mutex);
  return lines_->count_from(part, 0);
}

std::size_t PlcLog::size() const {
  std::lock_guard<std::mutex> lock(lines_->mutex);
  return lines_->lines.size();
}

std::string PlcLog::text() const {
  std::lock_guard<std::mutex> lock(lines_->mutex);
  std::string all;
  for (const auto& l : lines_->lines) all += l + "\n";
  return all;
}

ch::JobResult run_job(ch::Connection& c, ch::Pdu job, std::chrono::milliseconds timeout) {
  auto promise = std::make_shared<std::promise<ch::JobResult>>();
  auto future = promise->get_future();
  c.submit(std::move(job), [promise](ch::JobResult r) { promise->set_value(std::move(r)); });
  if (future.wait_for(timeout) != std::future_status::ready) {
    return ch::JobError{ch::FailureReason::timeout, "the test waited too long for the job"};
  }
  return future.get();
}

ch::JobResult read_bytes(ch::Connection& c, std::uint16_t db, std::uint32_t offset,
                         std::uint16_t length, std::chrono::milliseconds timeout) {
  ch::VarItem item{ch::TransportSize::byte, length, db, ch::Area::data_block, offset * 8};
  return run_job(c, ch::Pdu{ch::Header{ch::Rosctr::job}, ch::ReadVarRequest{{item}}}, timeout);
}

ch::SzlResult read_szl(ch::Connection& c, ch::SzlRequest request,
                       std::chrono::milliseconds timeout) {
  auto promise = std::make_shared<std::promise<ch::SzlResult>>();
  auto future = promise->get_future();
  c.read_szl(request, [promise](ch::SzlResult r) { promise->set_value(std::move(r)); });
  if (future.wait_for(timeout) != std::future_status::ready) {
    return ch::JobError{ch::FailureReason::timeout, "the test waited too long for the SZL"};
  }
  return future.get();
}

std::variant<ch::Bytes, std::string> read_data(ch::Connection& c, std::uint16_t db,
                                               std::uint32_t offset, std::uint16_t length) {
  ch::JobResult r = read_bytes(c, db, offset, length);
  if (std::holds_alternative<ch::JobError>(r)) return describe(r);
  const ch::Pdu& p = std::get<ch::Pdu>(r);
  const auto* reply = std::get_if<ch::ReadVarResponse>(&p.body);
  if (p.header.error() != 0) return "S7 error " + ch::s7_error_text(p.header.error());
  if (!reply || reply->items.size() != 1) return std::string("not a one-item read reply");
  if (reply->items[0].return_code != 0xFF) {
    return std::string("item error: ") + ch::return_code_text(reply->items[0].return_code);
  }
  return reply->items[0].data;
}

std::string describe(const ch::JobResult& result) {
  if (const auto* e = std::get_if<ch::JobError>(&result)) {
    return std::string(ch::failure_reason_name(e->reason)) + ": " + e->detail;
  }
  return "a reply";
}

}  // namespace scada::test
