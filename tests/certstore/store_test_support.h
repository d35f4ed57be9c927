// What the store's tests share: a temporary project folder, a small PKI made while the tests
// run (certificates at chosen dates, nothing stored in the repository), files written the way
// an operator or a tool would, and a recorder of the store's events that can wait for one.
#pragma once

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "certstore/certstore.h"
#include "test_pki.h"

namespace scada::certstore::testing {

using namespace std::chrono_literals;

constexpr std::chrono::sys_seconds at(std::chrono::year_month_day date,
                                      std::chrono::seconds time_of_day = std::chrono::seconds{0}) {
  return std::chrono::sys_days{date} + time_of_day;
}

// "Today" in every test: certificates are made around it.
inline const TimePoint kNow = at(std::chrono::year{2031} / std::chrono::March / 1, 12h);

// A folder under the system's temporary folder, removed with everything in it.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A certificate with its key, as the test PKI made it.
struct Issued {
  test_pki::KeyPtr key;
  test_pki::CertificatePtr certificate;
  Bytes der;
  std::string sha256;
  CertificateInfo info() const;  // as the library reads it
  std::string pem() const;
};

struct Names {
  std::vector<std::string> dns;
  std::vector<std::string> ip;
};

struct Validity {
  std::chrono::sys_seconds not_before = at(std::chrono::year{2030} / std::chrono::January / 1);
  std::chrono::sys_seconds not_after = at(std::chrono::year{2035} / std::chrono::January / 1);
};

// A CA: self-signed when issuer is null, else an intermediate the issuer signed.
Issued make_ca(const std::string& common_name, const Issued* issuer = nullptr,
               Validity validity = {});
// A PLC certificate (CA:FALSE) the issuer signed.
Issued make_plc(const std::string& common_name, const Issued& issuer, Names names,
                Bytes serial = {0x10}, Validity validity = {});
// A self-signed PLC certificate (CA:FALSE), as a PLC makes for itself.
Issued make_self_signed(const std::string& common_name, Names names = {}, Validity validity = {});
// A CRL of the issuer listing the serials.
Bytes make_crl(const Issued& issuer, std::vector<Bytes> revoked);
std::string make_crl_pem(const Issued& issuer, std::vector<Bytes> revoked);

// Writes the file at once (not atomically: as cp does).
void write_file(const std::filesystem::path& file, const Bytes& bytes);
void write_file(const std::filesystem::path& file, const std::string& text);
Bytes read_file(const std::filesystem::path& file);
// File names in the folder, sorted; hidden ones too.
std::vector<std::string> file_names(const std::filesystem::path& folder);

// Records the store's events; safe to outlive the store or be destroyed before it. `also` sees
// each event first, on the thread that raised it.
class EventRecorder {
 public:
  explicit EventRecorder(CertificateStore& store,
                         std::function<void(const StoreEvent&)> also = nullptr);
  ~EventRecorder();
  std::vector<StoreEvent> events() const;
  std::vector<StoreEvent> events(StoreEvent::Kind kind) const;
  // Waits until an event matches (true) or 10 s pass (false). Events seen before count too.
  bool wait_for(const std::function<bool(const StoreEvent&)>& match,
                std::chrono::milliseconds timeout = 10s) const;
  // Waits until the condition holds, checking it at each event and every 20 ms.
  bool wait_until(const std::function<bool()>& condition,
                  std::chrono::milliseconds timeout = 10s) const;
  void clear();

 private:
  struct Shared {
    mutable std::mutex mutex;
    std::condition_variable changed;
    std::vector<StoreEvent> events;
  };
  std::shared_ptr<Shared> shared_;
  boost::signals2::scoped_connection connection_;
};

PeerIdentity peer(std::string address, std::string plc_name = {}, std::vector<Bytes> partners = {});

}  // namespace scada::certstore::testing
