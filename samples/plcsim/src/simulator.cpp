// The simulator's I/O: one Boost.Asio event loop thread serving every simulated CPU. Each
// connection moves bytes between its socket and its ServerSession (the protocol logic, no I/O),
// through a channel::TlsEngine in the secure modes, and applies the faults that belong to the
// transport.
#include <utility>  // Boost 1.74 asio/awaitable.hpp uses std::exchange without including it

#include <boost/asio.hpp>

#include <array>
#include <atomic>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "plc_state.h"
#include "plcsim/plcsim.h"
#include "server_session.h"
#include "tls_context.h"

namespace scada::plcsim {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

// Bounds for what one connection buffers, whatever the peer sends.
constexpr std::size_t kMaxInnerTpkt = 8192;
constexpr auto kStallPoll = std::chrono::milliseconds(20);
constexpr std::size_t kMaxHeldWhileStalled = 1 << 20;

std::string endpoint_text(const tcp::endpoint& e) {
  std::ostringstream s;
  s << e;
  return s.str();
}

}  // namespace

class PlcImpl;

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(PlcImpl& plc, tcp::socket socket, channel::TlsContextPtr ctx);
  void start();
  void close(bool reset, const std::string& why);
  void send_frame(channel::Bytes frame);  // through the session's framing (and TLS, if any)
  std::size_t tpdu_size() const { return session_.tpdu_size(); }
  const std::string& peer() const { return peer_; }

 private:
  void read();
  void on_bytes(channel::ByteView bytes);
  void on_outer_tpdu(channel::Bytes tpdu);
  void on_ciphertext(channel::ByteView bytes);
  void on_plaintext(channel::ByteView bytes);
  void on_session_tpdu(channel::Bytes tpdu);
  void deliver(ServerSession::Output out);
  void emit(const std::vector<channel::Bytes>& frames);
  void flush_tls();
  void write_raw(channel::Bytes bytes);
  void write_next();
  void fail(const std::string& why) { close(false, why); }

  PlcImpl& plc_;
  tcp::socket socket_;
  std::string peer_;
  ServerSession session_;
  std::unique_ptr<channel::TlsEngine> tls_;  // set in tls mode at once, in s7-secure after InitSSL
  channel::TlsContextPtr ctx_;
  bool tls_inside_dt_ = false;      // s7-secure: TLS records travel in COTP DT payloads
  channel::TpktReassembler outer_;  // TPKT frames on the wire (none, s7-secure)
  channel::TpktReassembler inner_{kMaxInnerTpkt};  // TPKT frames inside TLS
  std::array<std::uint8_t, 16384> buffer_{};
  std::deque<channel::Bytes> writes_;
  channel::Bytes held_;  // bytes received while stalled, answered when the stall ends
  std::deque<Clock::time_point> pending_replies_;  // reply times of delayed jobs, for AmQ
  bool closed_ = false;
  bool close_after_write_ = false;
};

class PlcImpl : public Plc {
 public:
  PlcImpl(asio::io_context& io, PlcConfig config, const tcp::endpoint& endpoint, LogSink log)
      : io_(io), state_(config), acceptor_(io), ticker_(io), log_(std::move(log)) {
    if (config.mode != SecurityMode::none) tls_.emplace(config.tls);
    boost::system::error_code ec;
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      throw std::runtime_error(config.name + ": cannot listen on " + endpoint_text(endpoint) +
                               ": " + ec.message());
    }
    port_ = acceptor_.local_endpoint().port();
    name_ = config.name + " " + endpoint_text(acceptor_.local_endpoint());
  }

  void start() {
    log("listening, mode " + std::string(mode_name(state_.config().mode)) + ", PDU " +
        std::to_string(state_.config().max_pdu) + ", AmQ " +
        std::to_string(state_.config().max_amq));
    accept();
    tick();
  }

  void stop() {
    boost::system::error_code ec;
    acceptor_.close(ec);
    ticker_.cancel();
    for (auto& c : std::set(connections_)) c->close(false, "simulator stopping");
  }

  // Plc
  const PlcConfig& config() const override { return state_.config(); }
  std::uint16_t port() const override { return port_; }
  std::size_t connections() const override { return count_.load(); }
  channel::Bytes read(channel::Area area, std::uint16_t db, std::uint32_t offset,
                      std::size_t length) const override {
    return state_.read_raw(area, db, offset, length);
  }
  void write(channel::Area area, std::uint16_t db, std::uint32_t offset,
             channel::ByteView bytes) override {
    state_.write_raw(area, db, offset, bytes);
  }
  void set_running(bool run) override {
    state_.set_running(run);
    log(run ? "switched to RUN" : "switched to STOP");
  }
  bool running() const override { return state_.running(); }
  void set_faults(const Faults& f) override {
    const Faults old = state_.faults();
    state_.set_faults(f);
    if (f.stall != old.stall) log(std::string("fault: stall ") + (f.stall ? "on" : "off"));
    if (f.delay != old.delay)
      log("fault: delay replies by " + std::to_string(f.delay.count()) + " ms");
    if (f.wrong_pdu_ref != old.wrong_pdu_ref)
      log(std::string("fault: wrong PDU reference ") + (f.wrong_pdu_ref ? "on" : "off"));
    if (f.refuse_connections != old.refuse_connections)
      log(std::string("fault: refuse connections ") + (f.refuse_connections ? "on" : "off"));
  }
  Faults faults() const override { return state_.faults(); }
  void close_connections() override {
    on_loop([this] {
      log("fault: close " + std::to_string(connections_.size()) + " connection(s)");
      for (auto& c : std::set(connections_)) c->close(false, "closed by fault");
    });
  }
  void reset_connections() override {
    on_loop([this] {
      log("fault: reset " + std::to_string(connections_.size()) + " connection(s)");
      for (auto& c : std::set(connections_)) c->close(true, "reset by fault");
    });
  }
  void send_garbage() override {
    on_loop([this] {
      log("fault: garbage frame on " + std::to_string(connections_.size()) + " connection(s)");
      std::mt19937 rng(std::random_device{}());
      for (auto& c : connections_) {
        // A TPKT frame whose COTP length indicator points past its end: undecodable.
        channel::Bytes junk(16);
        for (auto& b : junk) b = std::uint8_t(rng());
        junk[0] = 0xF7;
        c->send_frame(channel::tpkt_wrap(junk));
      }
    });
  }
  void send_oversize_tpkt() override {
    on_loop([this] {
      log("fault: oversize TPKT on " + std::to_string(connections_.size()) + " connection(s)");
      for (auto& c : connections_) {
        channel::CotpData dt{true, 0, channel::Bytes(c->tpdu_size() + 64, 0x00)};
        c->send_frame(channel::tpkt_wrap(channel::encode_cotp(dt)));
      }
    });
  }

  // For connections, on the loop thread.
  PlcState& state() { return state_; }
  void log(const std::string& line) const {
    if (log_) log_(name_ + " " + line);
  }
  void removed(const std::shared_ptr<Connection>& c) {
    if (connections_.erase(c)) --count_;
  }

 private:
  // Runs f on the event loop and waits for it (callers are tests and the control socket).
  template <class F>
  void on_loop(F f) {
    if (io_.get_executor().running_in_this_thread()) return f();
    std::promise<void> done;
    asio::post(io_, [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }

  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) on_accept(std::move(socket));
      accept();
    });
  }

  void on_accept(tcp::socket socket) {
    boost::system::error_code ec;
    const auto remote = socket.remote_endpoint(ec);
    if (state_.faults().refuse_connections) {
      log("refused " + endpoint_text(remote) + " (fault)");
      socket.close(ec);
      return;
    }
    channel::TlsContextPtr ctx;
    if (tls_) {
      std::string problem;
      ctx = tls_->current(problem);
      if (!problem.empty()) log(problem);
    }
    socket.set_option(tcp::no_delay(true), ec);
    auto c = std::make_shared<Connection>(*this, std::move(socket), ctx);
    connections_.insert(c);
    ++count_;
    log("accepted " + endpoint_text(remote));
    c->start();
  }

  void tick() {
    const auto period = state_.config().process_period;
    if (state_.config().process_db == 0 || period.count() <= 0) return;
    ticker_.expires_after(period);
    ticker_.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      state_.tick();
      tick();
    });
  }

  asio::io_context& io_;
  PlcState state_;
  std::optional<TlsContextSource> tls_;
  tcp::acceptor acceptor_;
  asio::steady_timer ticker_;
  LogSink log_;
  std::string name_;
  std::uint16_t port_ = 0;
  std::set<std::shared_ptr<Connection>> connections_;
  std::atomic<std::size_t> count_{0};
};

// ---- Connection

Connection::Connection(PlcImpl& plc, tcp::socket socket, channel::TlsContextPtr ctx)
    : plc_(plc),
      socket_(std::move(socket)),
      session_(plc.state(), plc.config().mode),
      ctx_(std::move(ctx)) {
  boost::system::error_code ec;
  peer_ = endpoint_text(socket_.remote_endpoint(ec));
  if (plc.config().mode == SecurityMode::tls)
    tls_ = std::make_unique<channel::TlsEngine>(ctx_, true);
}

void Connection::start() {
  read();
}

void Connection::read() {
  if (closed_) return;
  const bool stalled = plc_.state().faults().stall;
  if (!stalled && !held_.empty()) {
    // The stall ended: what arrived meanwhile is answered now, in order.
    channel::Bytes held = std::move(held_);
    held_.clear();
    on_bytes(held);
    if (closed_) return;
  }
  if (stalled) {
    // Stalled: TCP stays open, nothing is read or answered; look again shortly.
    auto timer = std::make_shared<asio::steady_timer>(socket_.get_executor(), kStallPoll);
    timer->async_wait(
        [self = shared_from_this(), timer](boost::system::error_code) { self->read(); });
    return;
  }
  socket_.async_read_some(asio::buffer(buffer_), [self = shared_from_this()](
                                                     boost::system::error_code ec, std::size_t n) {
    if (ec) {
      self->close(false, ec == asio::error::eof ? "peer closed" : "read failed: " + ec.message());
      return;
    }
    const channel::ByteView got(self->buffer_.data(), n);
    if (self->plc_.state().faults().stall) {
      // A read that was already waiting when the stall began: hold its bytes unanswered
      // (bounded) until the stall ends.
      if (self->held_.size() + n > kMaxHeldWhileStalled) {
        return self->close(false, "peer sent too much while stalled");
      }
      self->held_.insert(self->held_.end(), got.begin(), got.end());
    } else {
      self->on_bytes(got);
    }
    self->read();
  });
}

void Connection::on_bytes(channel::ByteView bytes) {
  if (closed_) return;
  if (tls_ && !tls_inside_dt_) return on_ciphertext(bytes);  // tls mode: TLS from the first byte
  if (auto e = outer_.feed(bytes)) return fail("bad TPKT from peer: " + e->to_string());
  channel::Bytes tpdu;
  while (!closed_ && outer_.next(tpdu)) on_outer_tpdu(std::move(tpdu));
}

void Connection::on_outer_tpdu(channel::Bytes tpdu) {
  if (!tls_inside_dt_) return on_session_tpdu(std::move(tpdu));
  // s7-secure after InitSSL: every DT payload is part of the TLS byte stream.
  auto cotp = channel::decode_cotp(tpdu);
  if (!cotp) return fail("bad COTP around TLS: " + cotp.error().to_string());
  auto* dt = std::get_if<channel::CotpData>(&cotp.value());
  if (!dt) return fail(std::string("COTP ") + channel::cotp_name(cotp.value()) + " during TLS");
  on_ciphertext(dt->payload);
}

void Connection::on_ciphertext(channel::ByteView bytes) {
  tls_->feed(bytes);
  channel::Bytes plain;
  const bool was_established = tls_->established();
  const bool ok = tls_->pump(plain);
  flush_tls();
  if (!ok) return fail(tls_->error());
  if (!was_established && tls_->established()) {
    session_.tls_established();  // s7-secure: S7comm now comes from inside TLS
    plc_.log(peer_ + " TLS established: " + tls_->version() + " " + tls_->cipher() +
             (tls_->used_psk() ? " psk" : " " + tls_->group()));
  }
  if (!plain.empty()) on_plaintext(plain);
  if (tls_->peer_closed()) close(false, "peer sent close_notify");
}

void Connection::on_plaintext(channel::ByteView bytes) {
  if (auto e = inner_.feed(bytes)) return fail("bad TPKT inside TLS: " + e->to_string());
  channel::Bytes tpdu;
  while (!closed_ && inner_.next(tpdu)) on_session_tpdu(std::move(tpdu));
}

void Connection::on_session_tpdu(channel::Bytes tpdu) {
  ServerSession::Output out = session_.on_tpdu(tpdu);
  const auto delay = plc_.state().faults().delay;
  if (delay.count() <= 0 || out.frames.empty()) return deliver(std::move(out));
  // Delayed replies keep their order, and at most AmQ jobs are worked on at once: a job
  // beyond AmQ waits for an earlier reply before its own delay starts (queued, as a CPU does).
  const auto now = Clock::now();
  const std::size_t amq = std::max<std::size_t>(1, session_.negotiated_amq());
  while (!pending_replies_.empty() && pending_replies_.front() <= now) pending_replies_.pop_front();
  Clock::time_point start = now;
  if (pending_replies_.size() >= amq) start = pending_replies_[pending_replies_.size() - amq];
  Clock::time_point at = std::max(start, now) + delay;
  if (!pending_replies_.empty()) at = std::max(at, pending_replies_.back());
  pending_replies_.push_back(at);
  auto timer = std::make_shared<asio::steady_timer>(socket_.get_executor(), at);
  timer->async_wait([self = shared_from_this(), timer, out = std::move(out)](
                        boost::system::error_code) mutable { self->deliver(std::move(out)); });
}

void Connection::deliver(ServerSession::Output out) {
  if (closed_) return;
  if (!out.event.empty()) plc_.log(peer_ + " " + out.event);
  emit(out.frames);
  if (out.start_tls) {
    tls_ = std::make_unique<channel::TlsEngine>(ctx_, true);
    tls_inside_dt_ = true;
  }
  if (out.close) {
    close_after_write_ = true;
    if (writes_.empty()) close(false, "session ended");
  }
}

void Connection::send_frame(channel::Bytes frame) {
  emit({std::move(frame)});
}

void Connection::emit(const std::vector<channel::Bytes>& frames) {
  for (const auto& f : frames) {
    if (tls_ && tls_->established()) {
      if (!tls_->write(f)) return fail(tls_->error());
    } else {
      write_raw(f);
    }
  }
  if (tls_) flush_tls();
}

void Connection::flush_tls() {
  channel::Bytes cipher = tls_->take_output();
  if (cipher.empty()) return;
  if (!tls_inside_dt_) return write_raw(std::move(cipher));
  for (auto& dt : channel::frame_dt(cipher, session_.tpdu_size())) write_raw(std::move(dt));
}

void Connection::write_raw(channel::Bytes bytes) {
  if (closed_ || bytes.empty()) return;
  writes_.push_back(std::move(bytes));
  if (writes_.size() == 1) write_next();
}

void Connection::write_next() {
  asio::async_write(socket_, asio::buffer(writes_.front()),
                    [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                      if (self->closed_) return;
                      if (ec) return self->close(false, "write failed: " + ec.message());
                      self->writes_.pop_front();
                      if (!self->writes_.empty()) return self->write_next();
                      if (self->close_after_write_) self->close(false, "session ended");
                    });
}

void Connection::close(bool reset, const std::string& why) {
  if (closed_) return;
  boost::system::error_code ec;
  if (reset) {
    socket_.set_option(asio::socket_base::linger(true, 0), ec);
  } else if (tls_ && tls_->established()) {
    // An orderly close of a TLS session says so (close_notify) before TCP closes.
    tls_->shutdown();
    channel::Bytes alert = tls_->take_output();
    if (tls_inside_dt_) {
      for (auto& dt : channel::frame_dt(alert, session_.tpdu_size()))
        asio::write(socket_, asio::buffer(dt), ec);
    } else if (!alert.empty()) {
      asio::write(socket_, asio::buffer(alert), ec);
    }
  }
  closed_ = true;
  if (!reset) socket_.shutdown(tcp::socket::shutdown_both, ec);
  socket_.close(ec);
  plc_.log(peer_ + (reset ? " reset: " : " closed: ") + why);
  plc_.removed(shared_from_this());
}

// ---- Simulator

struct Simulator::Impl {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::vector<std::unique_ptr<PlcImpl>> plcs;
  std::optional<asio::local::stream_protocol::acceptor> control;
  std::filesystem::path control_path;
  LogSink log;
  std::thread thread;

  std::string command(const std::string& line);
  void accept_control();
};

Simulator::Simulator(std::vector<PlcConfig> plcs, const std::string& address,
                     std::uint16_t first_port, LogSink log)
    : impl_(std::make_unique<Impl>()) {
  impl_->log = log;
  boost::system::error_code ec;
  const auto ip = asio::ip::make_address(address, ec);
  if (ec) throw std::runtime_error("bad listen address '" + address + "': " + ec.message());
  for (std::size_t i = 0; i < plcs.size(); ++i) {
    const std::uint16_t port = first_port == 0 ? 0 : std::uint16_t(first_port + i);
    if (first_port != 0 && first_port + i > 65535) {
      throw std::runtime_error(plcs[i].name + ": port " + std::to_string(first_port + i) +
                               " does not exist");
    }
    impl_->plcs.push_back(
        std::make_unique<PlcImpl>(impl_->io, std::move(plcs[i]), tcp::endpoint(ip, port), log));
  }
  for (auto& p : impl_->plcs) p->start();
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

Simulator::~Simulator() {
  asio::post(impl_->io, [this] {
    for (auto& p : impl_->plcs) p->stop();
    if (impl_->control) {
      boost::system::error_code ec;
      impl_->control->close(ec);
    }
    impl_->work.reset();
    // Delayed replies may hold timers for minutes: stop the loop instead of waiting for them.
    // Handlers still queued are destroyed with the io_context, after the PLCs.
    impl_->io.stop();
  });
  impl_->thread.join();
  if (!impl_->control_path.empty()) {
    std::error_code ec;
    std::filesystem::remove(impl_->control_path, ec);
  }
}

std::size_t Simulator::size() const {
  return impl_->plcs.size();
}
Plc& Simulator::plc(std::size_t index) {
  return *impl_->plcs.at(index);
}

void Simulator::serve_control(const std::filesystem::path& socket_path) {
  std::promise<std::string> started;
  asio::post(impl_->io, [&] {
    try {
      std::error_code fe;
      std::filesystem::remove(socket_path, fe);
      impl_->control.emplace(impl_->io,
                             asio::local::stream_protocol::endpoint(socket_path.string()));
      impl_->control_path = socket_path;
      impl_->accept_control();
      started.set_value("");
    } catch (const std::exception& e) {
      started.set_value(socket_path.string() + ": cannot serve the control socket: " + e.what());
    }
  });
  const std::string error = started.get_future().get();
  if (!error.empty()) throw std::runtime_error(error);
}

// One control client: read a line, answer it, repeat. The pending handler owns the session,
// so it is freed when the client goes away.
class ControlSession : public std::enable_shared_from_this<ControlSession> {
 public:
  ControlSession(asio::local::stream_protocol::socket socket,
                 std::function<std::string(const std::string&)> command)
      : socket_(std::move(socket)), command_(std::move(command)) {}

  void read() {
    asio::async_read_until(socket_, buffer_, '\n',
                           [self = shared_from_this()](boost::system::error_code e, std::size_t) {
                             if (!e) self->answer();
                           });
  }

 private:
  void answer() {
    std::istream in(&buffer_);
    std::string line;
    std::getline(in, line);
    reply_ = command_(line) + "\n";
    asio::async_write(socket_, asio::buffer(reply_),
                      [self = shared_from_this()](boost::system::error_code e, std::size_t) {
                        if (!e) self->read();
                      });
  }

  asio::local::stream_protocol::socket socket_;
  asio::streambuf buffer_{4096};
  std::string reply_;
  std::function<std::string(const std::string&)> command_;
};

void Simulator::Impl::accept_control() {
  control->async_accept(
      [this](boost::system::error_code ec, asio::local::stream_protocol::socket s) {
        if (ec == asio::error::operation_aborted) return;
        if (!ec) {
          std::make_shared<ControlSession>(std::move(s), [this](const std::string& line) {
            return command(line);
          })->read();
        }
        accept_control();
      });
}

std::string Simulator::Impl::command(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  if (words.empty()) return "error: empty command";
  // An optional PLC name or index first.
  std::vector<PlcImpl*> targets;
  for (std::size_t i = 0; i < plcs.size(); ++i) {
    if (plcs[i]->config().name == words[0] || std::to_string(i) == words[0])
      targets.push_back(plcs[i].get());
  }
  if (!targets.empty()) {
    words.erase(words.begin());
  } else {
    for (auto& p : plcs) targets.push_back(p.get());
  }
  if (words.empty()) return "error: a command must follow the PLC";
  const std::string& verb = words[0];
  const std::string arg = words.size() > 1 ? words[1] : "";
  auto on_off = [&](bool& flag) -> std::string {
    if (arg != "on" && arg != "off") return "error: '" + verb + "' takes on or off";
    flag = arg == "on";
    return "";
  };
  std::string status;
  for (auto* p : targets) {
    Faults f = p->faults();
    std::string problem;
    if (verb == "close")
      p->close_connections();
    else if (verb == "reset")
      p->reset_connections();
    else if (verb == "garbage")
      p->send_garbage();
    else if (verb == "oversize")
      p->send_oversize_tpkt();
    else if (verb == "stop")
      p->set_running(false);
    else if (verb == "run")
      p->set_running(true);
    else if (verb == "stall" || verb == "wrongref" || verb == "refuse") {
      problem = on_off(verb == "stall"      ? f.stall
                       : verb == "wrongref" ? f.wrong_pdu_ref
                                            : f.refuse_connections);
      if (problem.empty()) p->set_faults(f);
    } else if (verb == "delay") {
      try {
        std::size_t used = 0;
        const long ms = std::stol(arg, &used);
        if (used != arg.size() || ms < 0 || ms > 600000) throw std::invalid_argument(arg);
        f.delay = std::chrono::milliseconds(ms);
        p->set_faults(f);
      } catch (const std::exception&) {
        problem = "error: 'delay' takes milliseconds, 0 to 600000";
      }
    } else if (verb == "status") {
      status += (status.empty() ? "" : "; ") + p->config().name + " port " +
                std::to_string(p->port()) + " connections " + std::to_string(p->connections()) +
                (p->running() ? " RUN" : " STOP");
    } else {
      return "error: unknown command '" + verb +
             "' (close, reset, stall, delay, garbage, oversize, wrongref, stop, run, refuse, "
             "status)";
    }
    if (!problem.empty()) return problem;
  }
  return status.empty() ? "ok" : "ok " + status;
}

}  // namespace scada::plcsim
