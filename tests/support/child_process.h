// Real child processes for the command-line tests (scadactl, scadad): started with fork/execve,
// output (stdout and stderr together) in a temporary file, every wait bounded.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace scada::test {

struct ChildOutcome {
  int exit = -1;   // exit status, -1 when killed by a signal
  int signal = 0;  // the signal that ended it, 0 when it exited
  std::string out;
};

class Child {
 public:
  // Starts bin with args; stdin from /dev/null; the environment plus env ("K=V", optional).
  Child(const std::string& bin, const std::vector<std::string>& args, const std::string& env = "");
  ~Child();  // SIGKILL if still running
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  std::string output() const;
  // Whether the output holds part within timeout.
  bool wait_for_output(const std::string& part, std::chrono::milliseconds timeout) const;
  // Sends signal (0: none) and waits up to timeout for the end; SIGKILL after that (reported).
  ChildOutcome finish(int signal, std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
  std::filesystem::path out_;
  bool done_ = false;
};

// Runs bin to its end (bounded: SIGKILL after timeout).
ChildOutcome run_child(const std::string& bin, const std::vector<std::string>& args,
                       const std::string& env = "",
                       std::chrono::milliseconds timeout = std::chrono::seconds(60));

}  // namespace scada::test
