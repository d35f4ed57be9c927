#include "folder_watcher.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <system_error>

#include "store_files.h"

namespace scada::certstore {

namespace {

using Clock = std::chrono::steady_clock;

// What can change a folder's content: files written and closed, created, moved in or out,
// deleted; and the folder itself deleted or moved away (its watch then ends: IN_IGNORED).
constexpr std::uint32_t kWatchMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
                                     IN_CREATE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;

std::vector<FolderListing> list_all(const std::vector<std::filesystem::path>& folders) {
  std::vector<FolderListing> listings;
  for (const auto& folder : folders) listings.push_back(list_folder(folder, Names::all));
  return listings;
}

}  // namespace

FolderWatcher::FolderWatcher(std::vector<std::filesystem::path> folders, Options options,
                             Changed changed, Problem problem)
    : folders_(std::move(folders)),
      options_(options),
      changed_(std::move(changed)),
      problem_(std::move(problem)) {
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  if (options_.use_inotify) {
    inotify_fd_ = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (inotify_fd_ < 0) {
      report("", "inotify cannot be used (" + system_error_text(errno) + "); polling every " +
                     std::to_string(options_.poll_interval.count()) + " ms instead");
    }
  }
  watch_folders();
  // Listed here, not on the thread: a change right after the constructor returns must differ
  // from it, however late the thread starts.
  auto listing = list_all(folders_);
  try {
    thread_ =
        std::thread([this, listing = std::move(listing)]() mutable { run(std::move(listing)); });
  } catch (...) {
    if (inotify_fd_ >= 0) ::close(inotify_fd_);
    ::close(stop_fd_);
    throw;
  }
}

FolderWatcher::~FolderWatcher() {
  const std::uint64_t one = 1;
  // eventfd writes of 8 bytes do not fail short; a failure would leave the thread running,
  // which join() would then wait for, so there is nothing better to do than try.
  [[maybe_unused]] const auto written = ::write(stop_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  if (inotify_fd_ >= 0) ::close(inotify_fd_);
  ::close(stop_fd_);
}

void FolderWatcher::report(const std::filesystem::path& folder, const std::string& reason) {
  auto& last = reported_[folder];
  if (last == reason) return;
  last = reason;
  if (!reason.empty()) problem_(folder, reason);
}

// Adding a watch for a folder already watched returns its watch again, so this runs after
// every burst: a folder deleted and made anew (a restore from a backup) is watched again.
void FolderWatcher::watch_folders() {
  if (inotify_fd_ < 0) return;
  for (const auto& folder : folders_) {
    if (::inotify_add_watch(inotify_fd_, folder.c_str(), kWatchMask) >= 0) {
      report(folder, "");
    } else {
      report(folder, "cannot watch folder with inotify: " + system_error_text(errno) +
                         "; polling every " + std::to_string(options_.poll_interval.count()) +
                         " ms");
    }
  }
}

// Drains the queue; true if it said anything (what exactly does not matter: any change means a
// rebuild, and a full queue, IN_Q_OVERFLOW, means one too).
bool FolderWatcher::read_inotify_events() {
  alignas(inotify_event) char buffer[16 * 1024];
  bool any = false;
  for (;;) {
    const ssize_t n = ::read(inotify_fd_, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return any;
    any = true;
  }
}

void FolderWatcher::run(std::vector<FolderListing> listing) {
  Clock::time_point next_poll = Clock::now() + options_.poll_interval;
  bool pending = false;  // a change waits for its rebuild
  Clock::time_point first_change, last_change;
  const auto longest_wait = options_.debounce * 5;

  for (;;) {
    Clock::time_point wake = next_poll;
    if (pending) {
      wake = std::min({wake, last_change + options_.debounce, first_change + longest_wait});
    }
    const auto timeout = std::chrono::ceil<std::chrono::milliseconds>(
        std::max(wake - Clock::now(), Clock::duration::zero()));
    pollfd fds[2] = {{stop_fd_, POLLIN, 0}, {inotify_fd_, POLLIN, 0}};
    const int ready = ::poll(fds, inotify_fd_ >= 0 ? 2 : 1, static_cast<int>(timeout.count()));
    if (ready < 0 && errno != EINTR) {
      report("", "poll failed: " + system_error_text(errno));
      std::this_thread::sleep_for(options_.debounce);  // no busy loop while it keeps failing
    }
    if (ready > 0 && (fds[0].revents & POLLIN) != 0) return;

    const auto now = Clock::now();
    const auto note_change = [&] {
      if (!pending) first_change = now;
      pending = true;
      last_change = now;
    };
    if (ready > 0 && inotify_fd_ >= 0 && (fds[1].revents & POLLIN) != 0 && read_inotify_events()) {
      note_change();
    }
    if (now >= next_poll) {
      next_poll = now + options_.poll_interval;
      if (auto again = list_all(folders_); again != listing) {
        listing = std::move(again);
        note_change();
      }
    }
    if (pending && (now >= last_change + options_.debounce || now >= first_change + longest_wait)) {
      pending = false;
      watch_folders();
      // Listed before the rebuild reads: a change while it reads shows at the next poll.
      listing = list_all(folders_);
      changed_();
    }
  }
}

}  // namespace scada::certstore
