// The store's files and folders: listings that tell whether a file changed, atomic writes.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <compare>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "certstore/certstore.h"

namespace scada::certstore {

// The system's text for an errno value: "No such file or directory".
std::string system_error_text(int error);

// Owns a file descriptor; close() reports what close(2) said.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() { close(); }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }
  int close() {
    const int result = fd_ >= 0 ? ::close(fd_) : 0;
    fd_ = -1;
    return result;
  }

 private:
  int fd_;
};

// What tells one state of a file from another without reading it: a rewrite changes the size
// or the times, a rename into place the inode.
struct FileStamp {
  std::uint64_t device = 0, inode = 0, size = 0;
  std::int64_t modified_ns = 0, changed_ns = 0;
  auto operator<=>(const FileStamp&) const = default;
};

struct FolderEntry {
  std::filesystem::path path;
  FileStamp stamp;
  auto operator<=>(const FolderEntry&) const = default;
};

// Which names a listing keeps: those the store reads as certificates (*.der, *.pem, *.crt,
// *.cer) or as CRLs (*.der, *.pem, *.crl), in any case, never hidden ones; or every entry.
enum class Names { certificates, crls, all };

struct FolderListing {
  std::vector<FolderEntry> entries;  // regular files (symbolic links followed), sorted by path;
                                     // with Names::all every entry, folders too
  std::optional<std::string> error;  // "cannot read folder: No such file or directory"
  auto operator<=>(const FolderListing&) const = default;
};
FolderListing list_folder(const std::filesystem::path& folder, Names names);

// Writes the file through a hidden temporary file in the same folder, flushed to disk, renamed
// over `file`; the file gets exactly `mode`. Returns the reason it failed, naming the file.
std::optional<std::string> write_file_atomically(const std::filesystem::path& file, ByteView bytes,
                                                 mode_t mode);

// Removes the temporary files write_file_atomically left in folder when its process died
// between create and rename (".NAME.tmp-PID-N" whose PID no longer runs). Returns their names.
std::vector<std::string> remove_stale_temporaries(const std::filesystem::path& folder);

}  // namespace scada::certstore
