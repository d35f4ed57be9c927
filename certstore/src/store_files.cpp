#include "store_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <memory>
#include <string_view>
#include <system_error>

namespace scada::certstore {

namespace {

std::string lowercase_extension(const std::filesystem::path& name) {
  std::string extension = name.extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return extension;
}

bool wanted(const std::string& name, Names names) {
  if (names == Names::all) return name != "." && name != "..";
  // Hidden files are editors' swap files and temporary files (the store's own among them): a
  // file becomes part of the store when it is renamed to its final name.
  if (name.empty() || name.front() == '.') return false;
  const std::string extension = lowercase_extension(name);
  if (extension == ".der" || extension == ".pem") return true;
  if (names == Names::certificates) return extension == ".crt" || extension == ".cer";
  return extension == ".crl";
}

FileStamp stamp_of(const struct stat& status) {
  constexpr std::int64_t kNano = 1'000'000'000;
  return FileStamp{static_cast<std::uint64_t>(status.st_dev),
                   static_cast<std::uint64_t>(status.st_ino),
                   static_cast<std::uint64_t>(status.st_size),
                   status.st_mtim.tv_sec * kNano + status.st_mtim.tv_nsec,
                   status.st_ctim.tv_sec * kNano + status.st_ctim.tv_nsec};
}

struct CloseDirectory {
  void operator()(DIR* directory) const { ::closedir(directory); }
};

}  // namespace

std::string system_error_text(int error) {
  return std::generic_category().message(error);
}

FolderListing list_folder(const std::filesystem::path& folder, Names names) {
  FolderListing listing;
  const std::unique_ptr<DIR, CloseDirectory> directory(::opendir(folder.c_str()));
  if (!directory) {
    listing.error = "cannot read folder: " + system_error_text(errno);
    return listing;
  }
  for (;;) {
    errno = 0;
    const dirent* entry = ::readdir(directory.get());
    if (entry == nullptr) {
      if (errno != 0) listing.error = "cannot read folder: " + system_error_text(errno);
      break;
    }
    const std::string name = entry->d_name;
    if (!wanted(name, names)) continue;
    const std::filesystem::path path = folder / name;
    struct stat status {};
    // Follows symbolic links (secret mounts link files into place); a dangling link or a file
    // gone since readdir is left out, as it would be a moment later.
    if (::stat(path.c_str(), &status) != 0) continue;
    if (names != Names::all && !S_ISREG(status.st_mode)) continue;
    listing.entries.push_back(FolderEntry{path, stamp_of(status)});
  }
  std::sort(listing.entries.begin(), listing.entries.end());
  return listing;
}

namespace {

// The PID in ".NAME.tmp-PID-N", or 0 when name is not such a temporary file.
pid_t temporary_owner(std::string_view name) {
  if (name.size() < 2 || name[0] != '.') return 0;
  const auto tag = name.rfind(".tmp-");
  if (tag == std::string_view::npos || tag < 2) return 0;
  const std::string_view rest = name.substr(tag + 5);
  const auto dash = rest.find('-');
  if (dash == std::string_view::npos || dash == 0 || dash > 9 || dash + 1 == rest.size()) return 0;
  const auto digits = [](std::string_view text) {
    return std::all_of(text.begin(), text.end(),
                       [](unsigned char c) { return std::isdigit(c) != 0; });
  };
  if (!digits(rest.substr(0, dash)) || !digits(rest.substr(dash + 1))) return 0;
  return static_cast<pid_t>(std::stol(std::string(rest.substr(0, dash))));
}

}  // namespace

std::vector<std::string> remove_stale_temporaries(const std::filesystem::path& folder) {
  std::vector<std::string> removed;
  for (const auto& entry : list_folder(folder, Names::all).entries) {
    const std::string name = entry.path.filename().string();
    const pid_t owner = temporary_owner(name);
    if (owner <= 0 || owner == ::getpid()) continue;
    // A running writer (another process sharing the store) renames its file in a moment.
    if (::kill(owner, 0) == 0 || errno != ESRCH) continue;
    if (::unlink(entry.path.c_str()) == 0) removed.push_back(name);
  }
  return removed;
}

std::optional<std::string> write_file_atomically(const std::filesystem::path& file, ByteView bytes,
                                                 mode_t mode) {
  static std::atomic<unsigned> counter{0};
  std::string name = ".";
  name += file.filename().string();
  name += ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
  const std::filesystem::path temporary = file.parent_path() / name;
  const auto fail = [&](const char* what, int error) {
    ::unlink(temporary.c_str());
    return "cannot write " + file.string() + ": " + what + ": " + system_error_text(error);
  };
  FileDescriptor out(
      ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode));
  if (out.get() < 0) return fail("create", errno);
  // The mode asked for, whatever the umask.
  if (::fchmod(out.get(), mode) != 0) return fail("chmod", errno);
  std::size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(out.get(), bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("write", errno);
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(out.get()) != 0) return fail("fsync", errno);
  if (out.close() != 0) return fail("close", errno);
  if (::rename(temporary.c_str(), file.c_str()) != 0) return fail("rename", errno);
  // The rename itself survives a crash once the folder is flushed too.
  const FileDescriptor folder(
      ::open(file.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (folder.get() >= 0) ::fsync(folder.get());
  return std::nullopt;
}

}  // namespace scada::certstore
