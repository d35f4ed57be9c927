// Reads the store's folders into trust material, remembering what it saw: a file unchanged
// since the last read is not read again, a file that was good keeps its last good content while
// it is unusable (half written), and each problem is reported once.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "certstore/certstore.h"
#include "store_files.h"

namespace scada::certstore {

class StoreReader {
 public:
  explicit StoreReader(StoreLayout layout);

  struct Problem {
    std::filesystem::path file;  // a file, or a folder that cannot be read
    std::string reason;
  };
  struct Result {
    TrustMaterial material;
    std::vector<Problem> new_problems;  // those not reported by an earlier read
    std::map<std::string, std::filesystem::path> untrusted;  // sha256 -> file, all of untrusted/
  };
  // Not thread-safe: one read at a time.
  Result read();
  // Problems count as new again at the next read (when nobody could hear of them yet).
  void forget_reported_problems();
  // Whether a trusted/ file pinned the certificate in any read so far.
  bool was_pinned(const std::string& sha256) const;

 private:
  template <class T>
  struct Cached {
    FileStamp stamp;
    std::optional<T> content;  // as read at stamp
    std::string error;         // when content is empty
    std::optional<T> last_good;
  };
  template <class T, class Read>
  std::optional<T> load(std::map<std::filesystem::path, Cached<T>>& cache, const FolderEntry& entry,
                        Read read_file, std::map<std::filesystem::path, std::string>& problems);

  StoreLayout layout_;
  std::map<std::filesystem::path, Cached<std::vector<CertificateInfo>>> certificates_;
  std::map<std::filesystem::path, Cached<CrlInfo>> crls_;
  std::map<std::filesystem::path, std::string> reported_;  // file -> reason
  std::set<std::string> ever_pinned_;                      // sha256
};

}  // namespace scada::certstore
