#include "store_reader.h"

#include <algorithm>
#include <utility>
#include <variant>

#include <openssl/x509.h>

#include "describe.h"
#include "openssl.h"

namespace scada::certstore {

namespace {

// Whether the CRL's signature verifies with the certificate's key.
bool signed_by(const CrlInfo& crl, const CertificateInfo& issuer) {
  const OpenSslErrorScope errors;
  const unsigned char* p = crl.der.data();
  const X509CrlPtr x509_crl(d2i_X509_CRL(nullptr, &p, static_cast<long>(crl.der.size())));
  p = issuer.der.data();
  const X509Ptr x509(d2i_X509(nullptr, &p, static_cast<long>(issuer.der.size())));
  EVP_PKEY* key = x509 ? X509_get0_pubkey(x509.get()) : nullptr;
  return x509_crl && key != nullptr && X509_CRL_verify(x509_crl.get(), key) == 1;
}

template <class T>
void add_once(std::vector<T>& all, std::set<std::string>& seen, const T& item) {
  if (seen.insert(item.sha256).second) all.push_back(item);
}

}  // namespace

StoreReader::StoreReader(StoreLayout layout) : layout_(std::move(layout)) {}

template <class T, class Read>
std::optional<T> StoreReader::load(std::map<std::filesystem::path, Cached<T>>& cache,
                                   const FolderEntry& entry, Read read_file,
                                   std::map<std::filesystem::path, std::string>& problems) {
  auto [at, fresh] = cache.try_emplace(entry.path);
  Cached<T>& cached = at->second;
  if (fresh || cached.stamp != entry.stamp) {
    cached.stamp = entry.stamp;
    auto result = read_file(entry.path);
    if (auto* error = std::get_if<FileError>(&result)) {
      cached.content.reset();
      cached.error = error->reason;
    } else {
      cached.content = std::get<T>(std::move(result));
      cached.last_good = cached.content;
    }
  }
  if (cached.content) return cached.content;
  // A file being rewritten in place is unusable for a moment: what it held stays trusted, and
  // the next change of the file (its close) brings the new content.
  problems[entry.path] =
      cached.error +
      (cached.last_good ? "; its last good content stays in use until the file is fixed or removed"
                        : "");
  return cached.last_good;
}

StoreReader::Result StoreReader::read() {
  Result result;
  std::map<std::filesystem::path, std::string> problems;
  std::set<std::filesystem::path> present;
  const auto listing = [&](const std::filesystem::path& folder, Names names) {
    FolderListing found = list_folder(folder, names);
    if (found.error) problems[folder] = *found.error;
    for (const auto& entry : found.entries) present.insert(entry.path);
    return found.entries;
  };
  const auto certificates_in = [&](const FolderEntry& entry) {
    return load(certificates_, entry, read_certificate_file, problems)
        .value_or(std::vector<CertificateInfo>{});
  };

  std::set<std::string> seen_roots, seen_pins, seen_crls;
  for (const FolderEntry& entry : listing(layout_.roots, Names::certificates)) {
    for (const CertificateInfo& certificate : certificates_in(entry)) {
      if (certificate.is_ca) {
        add_once(result.material.roots, seen_roots, certificate);
      } else {
        problems[entry.path] = "holds " + certificate_text(certificate) +
                               ", which is not a CA certificate (no basicConstraints CA:TRUE); "
                               "PLC certificates belong in trusted/";
      }
    }
  }
  for (const FolderEntry& entry : listing(layout_.trusted(), Names::certificates)) {
    for (const CertificateInfo& certificate : certificates_in(entry)) {
      add_once(result.material.trusted, seen_pins, certificate);
      ever_pinned_.insert(certificate.sha256);
    }
  }
  for (const FolderEntry& entry : listing(layout_.crl(), Names::crls)) {
    const auto crl = load(crls_, entry, read_crl_file, problems);
    if (!crl) continue;
    // A CRL of an imported CA must carry its signature; one of another CA (a partner
    // certificate, an intermediate the PLC sends) is checked when a chain is verified.
    std::vector<const CertificateInfo*> issuers;
    for (const CertificateInfo& root : result.material.roots) {
      if (root.subject == crl->issuer) issuers.push_back(&root);
    }
    if (!issuers.empty() && std::none_of(issuers.begin(), issuers.end(), [&](const auto* issuer) {
          return signed_by(*crl, *issuer);
        })) {
      problems[entry.path] = "CRL of " + shortened(crl->issuer) +
                             " is not signed by that CA's key in pki/roots; it is left out";
      continue;
    }
    add_once(result.material.crls, seen_crls, *crl);
  }
  for (const FolderEntry& entry : listing(layout_.untrusted(), Names::certificates)) {
    for (const CertificateInfo& certificate : certificates_in(entry)) {
      result.untrusted.try_emplace(certificate.sha256, entry.path);
    }
  }
  // Only a certificate that was pinned and is pinned no more counts as revoked by moving:
  // untrusted/ also holds quarantined certificates that their CA's import makes acceptable.
  for (const auto& [sha256, file] : result.untrusted) {
    if (ever_pinned_.count(sha256) != 0 && seen_pins.count(sha256) == 0) {
      result.material.revoked_by_move.emplace(sha256, file);
    }
  }

  std::erase_if(certificates_, [&](const auto& item) { return present.count(item.first) == 0; });
  std::erase_if(crls_, [&](const auto& item) { return present.count(item.first) == 0; });
  for (const auto& [file, reason] : problems) {
    const auto before = reported_.find(file);
    if (before == reported_.end() || before->second != reason) {
      result.new_problems.push_back(Problem{file, reason});
    }
  }
  reported_ = std::move(problems);
  return result;
}

void StoreReader::forget_reported_problems() {
  reported_.clear();
}

bool StoreReader::was_pinned(const std::string& sha256) const {
  return ever_pinned_.count(sha256) != 0;
}

}  // namespace scada::certstore
