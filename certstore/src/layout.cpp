// The store's folders (DESIGN.md §3).
#include <sys/stat.h>

#include <cerrno>
#include <stdexcept>

#include "certstore/certstore.h"
#include "store_files.h"

namespace scada::certstore {

namespace {

// mkdir of each missing folder on the way, so that every folder made, parents included, gets
// 0700 (create_directories would leave them to the umask).
void make_folder(const std::filesystem::path& folder) {
  std::filesystem::path path;
  for (const auto& part : folder) {
    path /= part;
    if (::mkdir(path.c_str(), 0700) == 0) continue;
    const int error = errno;
    struct stat status {};
    if (error == EEXIST && ::stat(path.c_str(), &status) == 0 && S_ISDIR(status.st_mode)) continue;
    const std::string reason =
        error == EEXIST ? "it exists and is not a folder" : system_error_text(error);
    throw std::runtime_error("cannot create folder " + path.string() + ": " + reason);
  }
}

}  // namespace

StoreLayout StoreLayout::for_project(const std::filesystem::path& project) {
  return StoreLayout{project / "device-certificate-store", project / "pki" / "roots",
                     project / "pki" / "own"};
}

std::filesystem::path StoreLayout::trusted() const {
  return store / "trusted";
}

std::filesystem::path StoreLayout::crl() const {
  return store / "trusted" / "crl";
}

std::filesystem::path StoreLayout::untrusted() const {
  return store / "untrusted";
}

void ensure_layout(const StoreLayout& layout) {
  for (const auto& folder :
       {layout.trusted(), layout.crl(), layout.untrusted(), layout.roots, layout.own}) {
    make_folder(folder);
  }
}

}  // namespace scada::certstore
