// Child processes for tests (child_process.h).
#include "child_process.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace scada::test {

namespace {
std::atomic<unsigned> counter{0};
}

Child::Child(const std::string& bin, const std::vector<std::string>& args, const std::string& env) {
  out_ = std::filesystem::temp_directory_path() /
         ("child-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + ".out");
  // Everything the child needs is prepared before fork(): other threads may hold locks.
  std::string path = bin;
  std::vector<std::string> copy = args;
  std::vector<char*> argv{path.data()};
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string extra = env;
  std::vector<char*> envp;
  for (char** e = environ; *e; ++e) envp.push_back(*e);
  if (!extra.empty()) envp.push_back(extra.data());
  envp.push_back(nullptr);
  const int fd = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd < 0 || null < 0) throw std::runtime_error("cannot open the child's files");
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::dup2(null, 0);
    ::execve(path.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(fd);
  ::close(null);
  if (pid_ < 0) throw std::runtime_error("fork failed");
}

Child::~Child() {
  if (!done_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  std::error_code ignored;
  std::filesystem::remove(out_, ignored);
}

std::string Child::output() const {
  std::ifstream in(out_);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

bool Child::wait_for_output(const std::string& part, std::chrono::milliseconds timeout) const {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (output().find(part) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return output().find(part) != std::string::npos;
}

ChildOutcome Child::finish(int signal, std::chrono::milliseconds timeout) {
  ChildOutcome r;
  if (done_) return r;
  if (signal != 0) ::kill(pid_, signal);
  const auto end = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  pid_t got = 0;
  while ((got = ::waitpid(pid_, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (got == 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
    r.out = "(still running after the bound: killed)\n";
  }
  done_ = true;
  if (WIFEXITED(status)) r.exit = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  r.out += output();
  return r;
}

ChildOutcome run_child(const std::string& bin, const std::vector<std::string>& args,
                       const std::string& env, std::chrono::milliseconds timeout) {
  Child child(bin, args, env);
  return child.finish(0, timeout);
}

}  // namespace scada::test
