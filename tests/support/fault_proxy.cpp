// The tests' TCP fault proxy (fault_proxy.h). Every connection is a Link of two sockets and two
// Pipes (client -> target, target -> client); each Pipe reads chunks into a queue and writes them
// out as the mode allows. All of a proxy's state lives on one strand; public calls run their work
// on it and wait for it.
#include "fault_proxy.h"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>

#include <sys/socket.h>

#include <array>
#include <deque>
#include <future>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

namespace scada::test {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

const char* proxy_mode_name(ProxyMode mode) {
  switch (mode) {
    case ProxyMode::pass:
      return "pass";
    case ProxyMode::delay:
      return "delay";
    case ProxyMode::drop:
      return "drop";
    case ProxyMode::blackhole:
      return "blackhole";
    case ProxyMode::drip:
      return "drip";
    case ProxyMode::duplicate:
      return "duplicate";
    case ProxyMode::reorder:
      return "reorder";
  }
  return "?";
}

namespace {

constexpr std::size_t kReadSize = 16 * 1024;
constexpr std::size_t kHighWater = 1024 * 1024;  // queued bytes per direction before reads pause
constexpr milliseconds kReorderHold{20};

struct Settings {
  ProxyMode mode = ProxyMode::pass;
  milliseconds delay{0};
  milliseconds drip{1};
  std::size_t remaining = 0;  // duplicate, reorder: chunks / pairs left; 0: no limit
};

struct Chunk {
  std::vector<std::uint8_t> bytes;
  Clock::time_point at;    // when it arrived
  std::size_t offset = 0;  // bytes of it already written
  bool eof = false;        // the end of the stream (FIN) rather than bytes
};

using Strand = asio::strand<asio::io_context::executor_type>;

// Reads away what has arrived, then sends FIN: a socket closed with unread bytes would send an
// RST instead, and "cut fin" or "drop" must look like an orderly close.
void close_with_fin(tcp::socket& s) {
  std::array<char, 16384> discard{};
  for (int i = 0; i < 64; ++i) {
    if (::recv(s.native_handle(), discard.data(), discard.size(), MSG_DONTWAIT) <= 0) break;
  }
  boost::system::error_code ignored;
  s.shutdown(tcp::socket::shutdown_both, ignored);
}

class Link;

struct Core : std::enable_shared_from_this<Core> {
  Core(asio::io_context& io, tcp::endpoint target_endpoint, std::uint16_t listen_port)
      : strand(asio::make_strand(io)), acceptor(strand), target(std::move(target_endpoint)) {
    const tcp::endpoint at(asio::ip::make_address("127.0.0.1"), listen_port);
    acceptor.open(at.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(at);
    acceptor.listen();
    port = acceptor.local_endpoint().port();
  }

  void accept();
  void apply(const Settings& s);  // on the strand
  void used_one();                // a duplicate / reorder was spent
  void cut(Cut how);
  void stop();

  // Runs f on the strand and returns its result (directly when already on it).
  template <class F>
  auto sync(F f) -> decltype(f()) {
    if (strand.running_in_this_thread()) return f();
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    asio::dispatch(strand, [&task] { task(); });
    return result.get();
  }

  Strand strand;
  tcp::acceptor acceptor;
  tcp::endpoint target;
  std::uint16_t port = 0;
  Settings settings;
  ProxyCounts counts;
  std::set<std::shared_ptr<Link>> links;
  bool stopped = false;
  std::optional<asio::steady_timer> accept_pause;
};

class Link : public std::enable_shared_from_this<Link> {
 public:
  Link(std::shared_ptr<Core> core, tcp::socket client)
      : core_(std::move(core)),
        client_(std::move(client)),
        server_(core_->strand),
        up_(&client_, &server_, false, core_->strand),
        down_(&server_, &client_, true, core_->strand) {}

  void start() {
    boost::system::error_code ignored;
    client_.set_option(tcp::no_delay(true), ignored);
    server_.async_connect(core_->target, [self = shared_from_this()](boost::system::error_code ec) {
      if (self->closed_) return;
      if (ec) {
        ++self->core_->counts.refused;
        return self->close(Cut::rst);
      }
      boost::system::error_code ignored2;
      self->server_.set_option(tcp::no_delay(true), ignored2);
      self->read(self->up_);
      self->read(self->down_);
    });
  }

  // The settings changed: held data is re-timed, a held reorder chunk goes out as it is.
  void kick() {
    if (closed_) return;
    if (core_->settings.mode == ProxyMode::drop) {
      ++core_->counts.closed_by_fault;
      return close(Cut::fin);
    }
    for (Pipe* p : {&up_, &down_}) {
      if (core_->settings.mode != ProxyMode::reorder && p->held) {
        p->hold_timer.cancel();
        push(*p, std::move(*p->held));
        p->held.reset();
      }
      if (p->waiting) {
        p->timer.cancel();  // its handler pumps with the new settings
      } else {
        pump(*p);
      }
    }
  }

  void close(Cut how) {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ignored;
    for (tcp::socket* s : {&client_, &server_}) {
      if (!s->is_open()) continue;
      if (how == Cut::rst) {
        s->set_option(asio::socket_base::linger(true, 0), ignored);
      } else {
        close_with_fin(*s);
      }
      s->close(ignored);
    }
    for (Pipe* p : {&up_, &down_}) {
      p->timer.cancel();
      p->hold_timer.cancel();
      p->queue.clear();
      p->held.reset();
    }
    core_->links.erase(shared_from_this());
  }

 private:
  struct Pipe {
    Pipe(tcp::socket* f, tcp::socket* t, bool plc, const Strand& strand)
        : from(f), to(t), plc_side(plc), timer(strand), hold_timer(strand) {}
    tcp::socket* from;
    tcp::socket* to;
    bool plc_side;  // target -> client
    std::array<std::uint8_t, kReadSize> buffer{};
    std::deque<Chunk> queue;
    std::size_t queued = 0;  // bytes in queue
    bool reading = false, writing = false, waiting = false;
    bool read_done = false, eof_sent = false;
    asio::steady_timer timer;       // delay, drip
    asio::steady_timer hold_timer;  // reorder: a held chunk that no second one followed
    std::optional<Chunk> held;
  };

  void read(Pipe& p) {
    if (closed_ || p.reading || p.read_done || p.queued >= kHighWater) return;
    p.reading = true;
    p.from->async_read_some(
        asio::buffer(p.buffer),
        [self = shared_from_this(), &p](boost::system::error_code ec, std::size_t n) {
          p.reading = false;
          if (self->closed_) return;
          if (ec == asio::error::eof) {
            p.read_done = true;
            if (p.held) {
              self->push(p, std::move(*p.held));
              p.held.reset();
            }
            Chunk end;
            end.at = Clock::now();
            end.eof = true;
            p.queue.push_back(std::move(end));
            return self->pump(p);
          }
          // A reset (or any other failure) reaches the other side at once, abortively.
          if (ec) return self->close(Cut::rst);
          self->arrived(p, n);
          self->read(p);
        });
  }

  void push(Pipe& p, Chunk c) {
    p.queued += c.bytes.size();
    p.queue.push_back(std::move(c));
  }

  void arrived(Pipe& p, std::size_t n) {
    Chunk c;
    c.bytes.assign(p.buffer.begin(), p.buffer.begin() + std::ptrdiff_t(n));
    c.at = Clock::now();
    const ProxyMode mode = core_->settings.mode;
    if (p.plc_side && mode == ProxyMode::duplicate) {
      push(p, c);
      push(p, std::move(c));
      ++core_->counts.duplicated;
      core_->used_one();
    } else if (p.plc_side && mode == ProxyMode::reorder) {
      if (p.held) {
        p.hold_timer.cancel();
        push(p, std::move(c));
        push(p, std::move(*p.held));
        p.held.reset();
        ++core_->counts.reordered;
        core_->used_one();
      } else {
        p.held = std::move(c);
        p.hold_timer.expires_after(kReorderHold);
        p.hold_timer.async_wait([self = shared_from_this(), &p](boost::system::error_code ec) {
          if (ec || self->closed_ || !p.held) return;
          self->split_held(p);
        });
        return;
      }
    } else {
      push(p, std::move(c));
    }
    pump(p);
  }

  // No second chunk came: the held one's halves go out swapped (a single byte as it is).
  void split_held(Pipe& p) {
    Chunk c = std::move(*p.held);
    p.held.reset();
    if (c.bytes.size() < 2) {
      push(p, std::move(c));
    } else {
      const auto half = std::ptrdiff_t(c.bytes.size() / 2);
      Chunk first, second;
      first.at = second.at = c.at;
      first.bytes.assign(c.bytes.begin(), c.bytes.begin() + half);
      second.bytes.assign(c.bytes.begin() + half, c.bytes.end());
      push(p, std::move(second));
      push(p, std::move(first));
      ++core_->counts.reordered;
      core_->used_one();
    }
    pump(p);
  }

  void pump(Pipe& p) {
    if (closed_ || p.writing || p.waiting || p.queue.empty()) return;
    const Settings& s = core_->settings;
    if (s.mode == ProxyMode::blackhole) return;
    Chunk& front = p.queue.front();
    if (s.mode == ProxyMode::delay && front.at + s.delay > Clock::now()) {
      return wait(p, front.at + s.delay);
    }
    if (front.eof) {
      p.queue.pop_front();
      p.eof_sent = true;
      boost::system::error_code ignored;
      p.to->shutdown(tcp::socket::shutdown_send, ignored);
      if (up_.eof_sent && down_.eof_sent) close(Cut::fin);
      return;
    }
    const std::size_t n = s.mode == ProxyMode::drip ? 1 : front.bytes.size() - front.offset;
    p.writing = true;
    asio::async_write(
        *p.to, asio::buffer(front.bytes.data() + front.offset, n),
        [self = shared_from_this(), &p, n](boost::system::error_code ec, std::size_t) {
          p.writing = false;
          if (self->closed_) return;
          if (ec) return self->close(Cut::rst);
          auto& counts = self->core_->counts;
          (p.plc_side ? counts.bytes_to_client : counts.bytes_to_target) += n;
          Chunk& written = p.queue.front();
          written.offset += n;
          if (written.offset == written.bytes.size()) {
            p.queued -= written.bytes.size();
            p.queue.pop_front();
          }
          self->read(p);  // reads paused at the high-water mark go on
          const Settings& now = self->core_->settings;
          if (now.mode == ProxyMode::drip && !p.queue.empty()) {
            return self->wait(p, Clock::now() + now.drip);
          }
          self->pump(p);
        });
  }

  void wait(Pipe& p, Clock::time_point until) {
    p.waiting = true;
    p.timer.expires_at(until);
    p.timer.async_wait([self = shared_from_this(), &p](boost::system::error_code) {
      p.waiting = false;
      self->pump(p);
    });
  }

  std::shared_ptr<Core> core_;
  tcp::socket client_, server_;
  Pipe up_, down_;
  bool closed_ = false;
};

void Core::accept() {
  acceptor.async_accept(
      strand, [self = shared_from_this()](boost::system::error_code ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted || self->stopped) return;
        if (ec) {
          // Out of descriptors or the like: try again a little later rather than spin.
          self->accept_pause.emplace(self->strand, milliseconds(10));
          return self->accept_pause->async_wait([self](boost::system::error_code e) {
            if (!e && !self->stopped) self->accept();
          });
        }
        ++self->counts.accepted;
        if (self->settings.mode == ProxyMode::drop) {
          ++self->counts.refused;
          close_with_fin(socket);
          boost::system::error_code ignored;
          socket.close(ignored);
        } else {
          auto link = std::make_shared<Link>(self, std::move(socket));
          self->links.insert(link);
          link->start();
        }
        self->accept();
      });
}

void Core::apply(const Settings& s) {
  settings = s;
  const auto all = links;  // a copy: drop closes (and erases) links
  for (const auto& link : all) link->kick();
}

void Core::used_one() {
  if (settings.remaining == 0) return;  // no limit
  if (--settings.remaining == 0) apply(Settings{});
}

void Core::cut(Cut how) {
  const auto all = links;
  for (const auto& link : all) {
    ++counts.closed_by_fault;
    link->close(how);
  }
}

void Core::stop() {
  stopped = true;
  boost::system::error_code ignored;
  acceptor.close(ignored);
  if (accept_pause) accept_pause->cancel();
  const auto all = links;
  for (const auto& link : all) link->close(Cut::rst);
}

bool digits(const std::string& text) {
  return !text.empty() && text.size() <= 7 && text.find_first_not_of("0123456789") == text.npos;
}

}  // namespace

struct FaultProxy::Impl {
  std::unique_ptr<asio::io_context> own_io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;
  std::future<void> ran;
  std::shared_ptr<Core> core;
  std::string target_text;

  void set(const Settings& s) {
    core->sync([&] { core->apply(s); });
  }
};

FaultProxy::FaultProxy(const std::string& target_host, std::uint16_t target_port,
                       std::uint16_t listen_port, asio::io_context* io)
    : impl_(std::make_unique<Impl>()) {
  if (!io) {
    impl_->own_io = std::make_unique<asio::io_context>(1);
    io = impl_->own_io.get();
  }
  tcp::endpoint target;
  try {
    tcp::resolver resolver(*io);
    target = *resolver.resolve(target_host, std::to_string(target_port)).begin();
    impl_->core = std::make_shared<Core>(*io, target, listen_port);
  } catch (const std::exception& e) {
    throw std::runtime_error("fault proxy to " + target_host + ":" + std::to_string(target_port) +
                             ": " + e.what());
  }
  impl_->target_text = target_host + ":" + std::to_string(target_port);
  if (impl_->own_io) {
    impl_->work.emplace(impl_->own_io->get_executor());
    std::packaged_task<void()> run([ctx = impl_->own_io.get()] { ctx->run(); });
    impl_->ran = run.get_future();
    impl_->thread = std::thread(std::move(run));
  }
  impl_->core->sync([core = impl_->core] { core->accept(); });
}

FaultProxy::~FaultProxy() {
  impl_->core->sync([core = impl_->core] { core->stop(); });
  if (impl_->own_io) {
    // Everything is closed and cancelled: the loop runs out of work by itself; should a handler
    // still wait after that, the loop is stopped.
    impl_->work.reset();
    if (impl_->ran.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
      impl_->own_io->stop();
    }
    impl_->thread.join();
  }
}

std::uint16_t FaultProxy::port() const {
  return impl_->core->port;
}

std::string FaultProxy::target() const {
  return impl_->target_text;
}

void FaultProxy::pass() {
  impl_->set(Settings{});
}

void FaultProxy::delay(milliseconds each_way) {
  Settings s;
  s.mode = ProxyMode::delay;
  s.delay = each_way;
  impl_->set(s);
}

void FaultProxy::drop() {
  Settings s;
  s.mode = ProxyMode::drop;
  impl_->set(s);
}

void FaultProxy::blackhole() {
  Settings s;
  s.mode = ProxyMode::blackhole;
  impl_->set(s);
}

void FaultProxy::drip(milliseconds between_bytes) {
  Settings s;
  s.mode = ProxyMode::drip;
  s.drip = between_bytes;
  impl_->set(s);
}

void FaultProxy::duplicate(std::size_t chunks) {
  Settings s;
  s.mode = ProxyMode::duplicate;
  s.remaining = chunks;
  impl_->set(s);
}

void FaultProxy::reorder(std::size_t pairs) {
  Settings s;
  s.mode = ProxyMode::reorder;
  s.remaining = pairs;
  impl_->set(s);
}

void FaultProxy::cut(Cut how) {
  impl_->core->sync([&] { impl_->core->cut(how); });
}

ProxyMode FaultProxy::mode() const {
  return impl_->core->sync([&] { return impl_->core->settings.mode; });
}

ProxyCounts FaultProxy::counts() const {
  return impl_->core->sync([&] {
    ProxyCounts c = impl_->core->counts;
    c.open = impl_->core->links.size();
    return c;
  });
}

std::string FaultProxy::command(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> words;
  for (std::string w; in >> w && words.size() < 4;) words.push_back(w);
  if (words.empty()) return "error: empty command";
  const std::string& verb = words[0];
  const std::string arg = words.size() > 1 ? words[1] : "";
  if (words.size() > 2) return "error: too many words in '" + line + "'";
  auto number = [&](unsigned long fallback, unsigned long max) -> std::optional<unsigned long> {
    if (arg.empty()) return fallback;
    if (!digits(arg) || std::stoul(arg) > max) return std::nullopt;
    return std::stoul(arg);
  };
  if (verb == "pass" && arg.empty()) {
    pass();
  } else if (verb == "delay" && !arg.empty()) {
    const auto ms = number(0, 600000);
    if (!ms) return "error: delay takes milliseconds 0..600000";
    delay(milliseconds(*ms));
  } else if (verb == "drop" && arg.empty()) {
    drop();
  } else if (verb == "blackhole" && arg.empty()) {
    blackhole();
  } else if (verb == "drip") {
    const auto ms = number(1, 10000);
    if (!ms) return "error: drip takes milliseconds between bytes, 0..10000";
    drip(milliseconds(*ms));
  } else if (verb == "duplicate" || verb == "reorder") {
    const auto n = number(1, 1000000);
    if (!n) return "error: " + verb + " takes a count (0: every one)";
    verb == "duplicate" ? duplicate(*n) : reorder(*n);
  } else if (verb == "cut" && (arg == "rst" || arg == "fin")) {
    cut(arg == "rst" ? Cut::rst : Cut::fin);
  } else if (verb == "status" && arg.empty()) {
    const ProxyCounts c = counts();
    std::ostringstream out;
    out << "ok mode=" << proxy_mode_name(mode()) << " accepted=" << c.accepted << " open=" << c.open
        << " refused=" << c.refused << " closed_by_fault=" << c.closed_by_fault
        << " bytes_to_target=" << c.bytes_to_target << " bytes_to_client=" << c.bytes_to_client
        << " duplicated=" << c.duplicated << " reordered=" << c.reordered;
    return out.str();
  } else {
    return "error: unknown command '" + line +
           "' (pass | delay MS | drop | cut rst|fin | blackhole | drip [MS] | duplicate [N] | "
           "reorder [N] | status)";
  }
  return "ok";
}

}  // namespace scada::test
