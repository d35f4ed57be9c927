#include "store_test_support.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <variant>

namespace scada::certstore::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/certstore-test-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

CertificateInfo Issued::info() const {
  auto parsed = parse_certificates(der, "test certificate");
  if (const auto* error = std::get_if<FileError>(&parsed)) {
    throw std::runtime_error(error->to_string());
  }
  return std::get<std::vector<CertificateInfo>>(parsed).front();
}

std::string Issued::pem() const {
  return test_pki::pem_of(certificate.get());
}

namespace {

Issued finish(test_pki::KeyPtr key, test_pki::CertificatePtr certificate) {
  Issued issued{std::move(key), std::move(certificate), {}, {}};
  issued.der = test_pki::der_of(issued.certificate.get());
  issued.sha256 = test_pki::sha256_hex(issued.der);
  return issued;
}

Bytes serial_of(const std::string& name) {
  // Distinct names give distinct serials, as a CA would.
  Bytes serial{0x01};
  for (const char c : name) serial.push_back(static_cast<std::uint8_t>(c));
  return serial;
}

}  // namespace

Issued make_ca(const std::string& common_name, const Issued* issuer, Validity validity) {
  test_pki::CertificateSpec spec;
  spec.subject = {{"O", "Plant A"}, {"CN", common_name}};
  spec.serial = serial_of(common_name);
  spec.not_before = validity.not_before;
  spec.not_after = validity.not_after;
  spec.ca = true;
  auto key = test_pki::make_key(test_pki::KeyKind::ec_p256);
  auto certificate = issuer != nullptr
                         ? test_pki::make_certificate(spec, key.get(), issuer->certificate.get(),
                                                      issuer->key.get())
                         : test_pki::make_certificate(spec, key.get(), nullptr, key.get());
  return finish(std::move(key), std::move(certificate));
}

Issued make_plc(const std::string& common_name, const Issued& issuer, Names names, Bytes serial,
                Validity validity) {
  test_pki::CertificateSpec spec;
  spec.subject = {{"O", "Plant A"}, {"CN", common_name}};
  spec.serial = std::move(serial);
  spec.not_before = validity.not_before;
  spec.not_after = validity.not_after;
  spec.ca = false;
  spec.dns_names = std::move(names.dns);
  spec.ip_addresses = std::move(names.ip);
  auto key = test_pki::make_key(test_pki::KeyKind::ec_p256);
  auto certificate =
      test_pki::make_certificate(spec, key.get(), issuer.certificate.get(), issuer.key.get());
  return finish(std::move(key), std::move(certificate));
}

Issued make_self_signed(const std::string& common_name, Names names, Validity validity) {
  test_pki::CertificateSpec spec;
  spec.subject = {{"O", "Plant A"}, {"CN", common_name}};
  spec.serial = serial_of(common_name);
  spec.not_before = validity.not_before;
  spec.not_after = validity.not_after;
  spec.ca = false;
  spec.dns_names = std::move(names.dns);
  spec.ip_addresses = std::move(names.ip);
  auto key = test_pki::make_key(test_pki::KeyKind::ec_p256);
  auto certificate = test_pki::make_certificate(spec, key.get(), nullptr, key.get());
  return finish(std::move(key), std::move(certificate));
}

namespace {
test_pki::CrlPtr crl_of(const Issued& issuer, std::vector<Bytes> revoked) {
  test_pki::CrlSpec spec;
  spec.this_update = at(std::chrono::year{2031} / std::chrono::February / 1);
  spec.next_update = at(std::chrono::year{2031} / std::chrono::April / 1);
  spec.revoked_serials = std::move(revoked);
  return test_pki::make_crl(spec, issuer.certificate.get(), issuer.key.get());
}
}  // namespace

Bytes make_crl(const Issued& issuer, std::vector<Bytes> revoked) {
  return test_pki::der_of(crl_of(issuer, std::move(revoked)).get());
}

std::string make_crl_pem(const Issued& issuer, std::vector<Bytes> revoked) {
  return test_pki::pem_of(crl_of(issuer, std::move(revoked)).get());
}

void write_file(const std::filesystem::path& file, const Bytes& bytes) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + file.string());
}

void write_file(const std::filesystem::path& file, const std::string& text) {
  write_file(file, Bytes(text.begin(), text.end()));
}

Bytes read_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::vector<std::string> file_names(const std::filesystem::path& folder) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    if (entry.is_regular_file()) names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

EventRecorder::EventRecorder(CertificateStore& store, std::function<void(const StoreEvent&)> also)
    : shared_(std::make_shared<Shared>()) {
  connection_ = store.subscribe([shared = shared_, also](const StoreEvent& event) {
    if (also) also(event);
    const std::lock_guard lock(shared->mutex);
    shared->events.push_back(event);
    shared->changed.notify_all();
  });
}

EventRecorder::~EventRecorder() = default;

std::vector<StoreEvent> EventRecorder::events() const {
  const std::lock_guard lock(shared_->mutex);
  return shared_->events;
}

std::vector<StoreEvent> EventRecorder::events(StoreEvent::Kind kind) const {
  std::vector<StoreEvent> some;
  for (auto& event : events()) {
    if (event.kind == kind) some.push_back(std::move(event));
  }
  return some;
}

bool EventRecorder::wait_for(const std::function<bool(const StoreEvent&)>& match,
                             std::chrono::milliseconds timeout) const {
  std::unique_lock lock(shared_->mutex);
  return shared_->changed.wait_for(lock, timeout, [&] {
    return std::any_of(shared_->events.begin(), shared_->events.end(), match);
  });
}

bool EventRecorder::wait_until(const std::function<bool()>& condition,
                               std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::unique_lock lock(shared_->mutex);
    shared_->changed.wait_for(lock, 20ms);
  }
}

void EventRecorder::clear() {
  const std::lock_guard lock(shared_->mutex);
  shared_->events.clear();
}

PeerIdentity peer(std::string address, std::string plc_name, std::vector<Bytes> partners) {
  return PeerIdentity{"PLC1", std::move(address), std::move(plc_name), std::move(partners)};
}

}  // namespace scada::certstore::testing
