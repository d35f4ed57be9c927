// Shared parts of the connection tests: an event loop thread, a device certificate store in a
// temporary project, an event recorder with bounded waits, and blocking wrappers around the
// connection's asynchronous jobs. Every wait is bounded so a broken connection fails a test
// instead of hanging it.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "certstore/certstore.h"
#include "channel/channel.h"
#include "plcsim/plcsim.h"
#include "test_tls_files.h"

// The channel's enums by name in gtest's messages and parameter names ("tls", "s7-secure")
// instead of their bytes.
namespace scada::channel {
inline void PrintTo(SecurityMode mode, std::ostream* out) {
  *out << security_mode_name(mode);
}
inline void PrintTo(FailureReason reason, std::ostream* out) {
  *out << failure_reason_name(reason);
}
inline void PrintTo(ConnectionState state, std::ostream* out) {
  *out << connection_state_name(state);
}
}  // namespace scada::channel

namespace scada::test {

// An io_context run by one thread until destruction.
class EventLoop {
 public:
  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;
  boost::asio::any_io_executor executor() { return io_.get_executor(); }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::thread thread_;
};

// A project folder with the store layout and a watching CertificateStore (short debounce).
class TestStore {
 public:
  explicit TestStore(certstore::StoreOptions options = quick_options());
  static certstore::StoreOptions quick_options();
  certstore::CertificateStore& store() { return *store_; }
  const certstore::StoreLayout& layout() const { return layout_; }
  const TempDir& dir() const { return dir_; }

 private:
  TempDir dir_;
  certstore::StoreLayout layout_;
  std::unique_ptr<certstore::CertificateStore> store_;
};

// One plcsim PLC in a mode, presenting a certificate that a test CA issued (SAN 127.0.0.1),
// with that CA imported into the store's pki/roots: the plain "trusted PLC" of most tests.
// name keeps the files of several PLCs in one store apart (<name>.crt, roots/<name>-root.pem).
class TrustedPlc {
 public:
  TrustedPlc(TestStore& store, channel::SecurityMode mode, plcsim::PlcConfig config = {},
             const std::string& name = "plc");
  plcsim::Plc& plc() { return simulator_->plc(0); }
  // A connection config for this PLC: its port and mode, the rest default.
  channel::ConnectionConfig connection_config() const;
  const ServerTlsFiles& files() const { return files_; }

 private:
  ServerTlsFiles files_;
  channel::SecurityMode mode_;
  std::unique_ptr<plcsim::Simulator> simulator_;
};

// Records a connection's events; waits for one that matches.
class EventRecorder {
 public:
  explicit EventRecorder(channel::Connection& connection);
  ~EventRecorder();
  using Match = std::function<bool(const channel::ConnectionEvent&)>;
  // The first event at or after index `from` that matches, waiting up to timeout.
  std::optional<channel::ConnectionEvent> wait(const Match& match,
                                               std::chrono::milliseconds timeout,
                                               std::size_t from = 0);
  std::optional<channel::ConnectionEvent> wait_state(channel::ConnectionState state,
                                                     std::chrono::milliseconds timeout,
                                                     std::size_t from = 0);
  std::vector<channel::ConnectionEvent> events() const;
  std::size_t size() const;

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<channel::ConnectionEvent> events_;
  boost::signals2::connection subscription_;
};

// plcsim's log lines (its LogSink), to see what the PLC side saw. The sink shares the lines with
// this object, so a simulator that outlives it logs into nothing harmful.
class PlcLog {
 public:
  PlcLog();
  std::function<void(const std::string&)> sink();
  // Whether a line containing part appeared (at or after line index `from`) within timeout.
  bool wait_for(const std::string& part, std::chrono::milliseconds timeout, std::size_t from = 0);
  std::size_t count(const std::string& part) const;  // lines containing part
  std::size_t size() const;
  std::string text() const;  // every line, for assertion messages

 private:
  struct Lines;
  std::shared_ptr<Lines> lines_;
};

// A started connection and its recorded events. The connection goes first: once ~Connection
// returned no handler of it runs, so the recorder can go safely after it.
class StartedConnection {
 public:
  StartedConnection(boost::asio::any_io_executor executor, certstore::CertificateStore& store,
                    channel::ConnectionConfig config)
      : connection_(
            std::make_unique<channel::Connection>(std::move(executor), store, std::move(config))),
        events_(std::make_unique<EventRecorder>(*connection_)) {
    connection_->start();
  }
  ~StartedConnection() {
    connection_.reset();
    events_.reset();
  }
  StartedConnection(const StartedConnection&) = delete;
  StartedConnection& operator=(const StartedConnection&) = delete;
  channel::Connection& connection() { return *connection_; }
  EventRecorder& events() { return *events_; }

 private:
  std::unique_ptr<channel::Connection> connection_;
  std::unique_ptr<EventRecorder> events_;
};

// Blocking wrappers (bounded by timeout; a timeout is a JobError with reason timeout).
channel::JobResult run_job(channel::Connection& c, channel::Pdu job,
                           std::chrono::milliseconds timeout = std::chrono::seconds(10));
channel::JobResult read_bytes(channel::Connection& c, std::uint16_t db, std::uint32_t offset,
                              std::uint16_t length,
                              std::chrono::milliseconds timeout = std::chrono::seconds(10));
channel::SzlResult read_szl(channel::Connection& c, channel::SzlRequest request,
                            std::chrono::milliseconds timeout = std::chrono::seconds(10));
// The data of a one-item read reply, or a message saying why there is none.
std::variant<channel::Bytes, std::string> read_data(channel::Connection& c, std::uint16_t db,
                                                    std::uint32_t offset, std::uint16_t length);

// "reason: detail" of a JobError, for assertion messages.
std::string describe(const channel::JobResult& result);

}  // namespace scada::test
