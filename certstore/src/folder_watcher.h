// Tells when files in some folders changed. inotify watches each folder itself (it does not
// recurse, so a subfolder is watched in its own right); a comparison of listings every
// poll_interval catches what inotify misses (a network file system, a full event queue, a file
// rewritten in place without being closed yet). A burst of changes, such as an editor saving
// in steps or a copy of many files, gives one call after `debounce` of quiet.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "store_files.h"

namespace scada::certstore {

class FolderWatcher {
 public:
  struct Options {
    bool use_inotify = true;
    std::chrono::milliseconds debounce{200};
    std::chrono::milliseconds poll_interval{2000};
  };
  using Changed = std::function<void()>;
  // A folder that cannot be watched, or inotify that cannot be used: said once per reason.
  using Problem = std::function<void(const std::filesystem::path& folder, const std::string&)>;

  // Starts watching before it returns; calls changed and problem on its own thread (problem also
  // from the constructor, on the caller's).
  FolderWatcher(std::vector<std::filesystem::path> folders, Options options, Changed changed,
                Problem problem);
  ~FolderWatcher();  // stops and joins; never call from changed or problem
  FolderWatcher(const FolderWatcher&) = delete;
  FolderWatcher& operator=(const FolderWatcher&) = delete;

 private:
  void run(std::vector<FolderListing> listing);
  void watch_folders();
  bool read_inotify_events();
  void report(const std::filesystem::path& folder, const std::string& reason);

  const std::vector<std::filesystem::path> folders_;
  const Options options_;
  const Changed changed_;
  const Problem problem_;
  int inotify_fd_ = -1;
  int stop_fd_ = -1;  // eventfd: the destructor's wake-up
  std::map<std::filesystem::path, std::string> reported_;
  std::thread thread_;
};

}  // namespace scada::certstore
