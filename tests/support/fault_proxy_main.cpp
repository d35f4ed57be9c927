// fault_proxy: the tests' TCP fault proxy (fault_proxy.h) as a program, for soak runs and by-hand
// experiments.
//   fault_proxy --target HOST:PORT [--count N] [--listen PORT] [--control SOCKET]
// Proxy i (1..N) forwards to PORT+i-1 and listens on 127.0.0.1, on consecutive ports from
// --listen (0, the default: a free port each). One line per proxy says where it listens:
//   fault_proxy 1: 127.0.0.1:40123 -> 127.0.0.1:102
// then "fault_proxy ready". Commands come one per line from standard input and, with --control,
// from clients of a Unix socket; each is answered with one line, "ok ..." or "error: ..." (a
// status of several proxies: "1 ok ...; 2 ok ..."):
//   [INDEX|all] pass | delay MS | drop | cut rst|fin | blackhole | drip [MS] | duplicate [N] |
//               reorder [N] | status
// without INDEX a command applies to every proxy. SIGINT or SIGTERM end the program (the end of
// standard input does not).
#include <CLI/CLI.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "fault_proxy.h"

namespace {

namespace asio = boost::asio;
using scada::test::FaultProxy;

std::atomic<bool> g_stop{false};
void on_signal(int) {
  g_stop = true;
}

// One command line for the proxies: an optional 1-based index or "all", then the command.
std::string run_command(std::vector<std::unique_ptr<FaultProxy>>& proxies,
                        const std::string& line) {
  std::istringstream in(line);
  std::string first;
  in >> first;
  if (first.empty()) return "error: empty command";
  std::size_t from = 0, to = proxies.size();
  std::string rest = line;
  if (first == "all" || first.find_first_not_of("0123456789") == std::string::npos) {
    if (first != "all") {
      const unsigned long index = first.size() <= 6 ? std::stoul(first) : 0;
      if (index < 1 || index > proxies.size()) {
        return "error: no proxy " + first + " (1.." + std::to_string(proxies.size()) + ")";
      }
      from = index - 1;
      to = index;
    }
    std::getline(in, rest);
  }
  std::string answer;
  for (std::size_t i = from; i < to; ++i) {
    const std::string one = proxies[i]->command(rest);
    if (one.rfind("error", 0) == 0) return one;
    if (to - from == 1) {
      answer = one;
    } else if (one != "ok") {  // "status" of several: one line, "1 ok ...; 2 ok ..."
      answer += (answer.empty() ? "" : "; ") + std::to_string(i + 1) + " " + one;
    }
  }
  return answer.empty() ? "ok" : answer;
}

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

void accept_control(asio::local::stream_protocol::acceptor& acceptor,
                    const std::function<std::string(const std::string&)>& command) {
  acceptor.async_accept(
      [&acceptor, command](boost::system::error_code ec, asio::local::stream_protocol::socket s) {
        if (ec == asio::error::operation_aborted) return;
        if (!ec) std::make_shared<ControlSession>(std::move(s), command)->read();
        accept_control(acceptor, command);
      });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"fault_proxy - TCP proxies with faults switched at runtime (tests, soak)"};
  std::string target;
  std::size_t count = 1;
  std::uint16_t listen = 0;
  std::string control;
  app.add_option("--target", target, "HOST:PORT of the first target (more on consecutive ports)")
      ->required();
  app.add_option("--count", count, "number of proxies")->check(CLI::Range(1, 10000));
  app.add_option("--listen", listen, "first listening port on 127.0.0.1 (0: a free port each)");
  app.add_option("--control", control, "Unix socket for commands (besides standard input)");
  CLI11_PARSE(app, argc, argv);

  const auto colon = target.rfind(':');
  unsigned long target_port = 0;
  if (colon != std::string::npos && colon + 1 < target.size() && colon + 6 >= target.size() &&
      target.find_first_not_of("0123456789", colon + 1) == std::string::npos) {
    target_port = std::stoul(target.substr(colon + 1));
  }
  if (target_port == 0 || target_port + count - 1 > 65535 ||
      (listen != 0 && listen + count - 1 > 65535)) {
    std::cerr << "fault_proxy: --target needs HOST:PORT with room for --count ports, got '"
              << target << "'\n";
    return 2;
  }
  const std::string host = target.substr(0, colon);

  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::thread loop([&io] { io.run(); });
  std::vector<std::unique_ptr<FaultProxy>> proxies;
  int status = 0;
  try {
    for (std::size_t i = 0; i < count; ++i) {
      proxies.push_back(std::make_unique<FaultProxy>(
          host, std::uint16_t(target_port + i), listen == 0 ? 0 : std::uint16_t(listen + i), &io));
      std::cout << "fault_proxy " << i + 1 << ": 127.0.0.1:" << proxies.back()->port() << " -> "
                << proxies.back()->target() << "\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "fault_proxy: " << e.what() << "\n";
    status = 2;
  }

  std::mutex commands;  // standard input and the control socket take turns
  auto command = [&](const std::string& line) {
    std::lock_guard<std::mutex> lock(commands);
    return run_command(proxies, line);
  };
  asio::io_context control_io;  // its own loop: a command waits for the proxies' loop
  std::optional<asio::local::stream_protocol::acceptor> acceptor;
  std::thread control_loop;
  if (status == 0 && !control.empty()) {
    try {
      std::error_code fe;
      std::filesystem::remove(control, fe);
      acceptor.emplace(control_io, asio::local::stream_protocol::endpoint(control));
      accept_control(*acceptor, command);
      control_loop = std::thread([&control_io] { control_io.run(); });
    } catch (const std::exception& e) {
      std::cerr << "fault_proxy: " << control << ": cannot serve the control socket: " << e.what()
                << "\n";
      status = 2;
    }
  }

  if (status == 0) {
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::cout << "fault_proxy ready" << std::endl;
    bool input = true;
    std::string pending;
    while (!g_stop) {
      pollfd p{0, POLLIN, 0};
      if (!input || ::poll(&p, 1, 100) <= 0) {
        if (!input) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      char buffer[4096];
      const ssize_t n = ::read(0, buffer, sizeof buffer);
      if (n <= 0) {
        input = false;  // the end of standard input: the control socket and signals remain
        continue;
      }
      pending.append(buffer, std::size_t(n));
      for (auto nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n')) {
        const std::string line = pending.substr(0, nl);
        pending.erase(0, nl + 1);
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        std::cout << command(line) << std::endl;
      }
      if (pending.size() > 4096) pending.clear();  // no line that long is a command
    }
  }

  if (acceptor) {
    asio::post(control_io, [&] { acceptor->close(); });
    control_io.stop();
    control_loop.join();
    std::error_code fe;
    std::filesystem::remove(control, fe);
  }
  proxies.clear();
  work.reset();
  io.stop();
  loop.join();
  return status;
}
