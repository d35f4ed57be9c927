// Trust decisions (DESIGN.md §5): pins, revocation by moving, chains to anchors with OpenSSL,
// identity. Pure: a snapshot and a chain in, a decision out.
#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <ctime>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "certstore/certstore.h"
#include "describe.h"
#include "openssl.h"

namespace scada::certstore {

namespace {

using X509StorePtr = std::unique_ptr<X509_STORE, OpenSslDeleter<X509_STORE_free>>;
using X509StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, OpenSslDeleter<X509_STORE_CTX_free>>;
struct X509StackFree {  // sk_X509_free is a macro
  void operator()(STACK_OF(X509) * stack) const { sk_X509_free(stack); }
};
using X509StackPtr = std::unique_ptr<STACK_OF(X509), X509StackFree>;

constexpr std::size_t kMaxChainLength = 10;  // a PLC sends its certificate and a CA or two

X509Ptr to_x509(const Bytes& der) {
  const unsigned char* p = der.data();
  return X509Ptr(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
}

X509CrlPtr to_x509_crl(const Bytes& der) {
  const unsigned char* p = der.data();
  return X509CrlPtr(d2i_X509_CRL(nullptr, &p, static_cast<long>(der.size())));
}

std::optional<TimePoint> not_after_of(const X509* certificate) {
  return certificate != nullptr ? to_time_point(X509_get0_notAfter(certificate)) : std::nullopt;
}

std::optional<TimePoint> not_before_of(const X509* certificate) {
  return certificate != nullptr ? to_time_point(X509_get0_notBefore(certificate)) : std::nullopt;
}

std::string subject_of(const X509* certificate) {
  if (certificate == nullptr) return "(unknown certificate)";
  return shortened(name_to_text(X509_get_subject_name(certificate)).value_or("(unprintable name)"));
}

Decision make(Verdict verdict, std::string detail, const CertificateInfo& leaf) {
  return Decision{verdict, std::move(detail), leaf, std::nullopt};
}

Decision bad_certificate(std::string detail) {
  return Decision{Verdict::bad_certificate, std::move(detail), std::nullopt, std::nullopt};
}

// ---------------------------------------------------------------------------------------------
// Identity (DESIGN.md §4)

using IpAddress = std::array<unsigned char, 16>;  // IPv4 as IPv4-mapped IPv6

std::optional<IpAddress> parse_ip(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
  }
  // A zone ("fe80::1%eth0") names the local interface, not the PLC.
  if (const auto zone = text.find('%'); zone != std::string_view::npos) text = text.substr(0, zone);
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  const std::string terminated(text);
  IpAddress address{};
  unsigned char v4[4];
  if (inet_pton(AF_INET, terminated.c_str(), v4) == 1) {
    address[10] = address[11] = 0xFF;
    std::copy(std::begin(v4), std::end(v4), address.begin() + 12);
    return address;
  }
  if (inet_pton(AF_INET6, terminated.c_str(), address.data()) == 1) return address;
  return std::nullopt;
}

std::string_view without_final_dot(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return name;
}

bool same_host_name(std::string_view a, std::string_view b) {
  a = without_final_dot(a);
  b = without_final_dot(b);
  return !a.empty() && a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](unsigned char x, unsigned char y) {
           return std::tolower(x) == std::tolower(y);
         });
}

// Whether a subjectAltName of the leaf names this address or PLC name.
bool names(const CertificateInfo& leaf, const std::string& wanted) {
  if (wanted.empty()) return false;
  if (const auto ip = parse_ip(wanted)) {
    return std::any_of(leaf.ip_addresses.begin(), leaf.ip_addresses.end(),
                       [&](const std::string& san) { return parse_ip(san) == ip; });
  }
  return std::any_of(leaf.dns_names.begin(), leaf.dns_names.end(),
                     [&](const std::string& san) { return same_host_name(san, wanted); });
}

std::string subject_alt_names_text(const CertificateInfo& leaf) {
  std::string text;
  for (const auto& dns : leaf.dns_names) text += (text.empty() ? "DNS:" : ", DNS:") + dns;
  for (const auto& ip : leaf.ip_addresses) text += (text.empty() ? "IP:" : ", IP:") + ip;
  return shortened(text);
}

Decision check_identity(const CertificateInfo& leaf, const PeerIdentity& who) {
  const std::string plc = "PLC certificate " + certificate_text(leaf);
  for (const std::string* wanted : {&who.address, &who.plc_name}) {
    if (names(leaf, *wanted)) {
      return make(Verdict::accepted,
                  plc + " is issued by " + shortened(leaf.issuer) + " for " + *wanted, leaf);
    }
  }
  std::string expected = "address \"" + who.address + "\"";
  if (!who.plc_name.empty()) expected += " or PLC name \"" + who.plc_name + "\"";
  if (leaf.dns_names.empty() && leaf.ip_addresses.empty()) {
    return make(Verdict::identity_mismatch,
                plc + " has no subjectAltName, so it cannot show it belongs to " + expected +
                    " (a CN does not count): the PLC needs a certificate naming its address",
                leaf);
  }
  return make(Verdict::identity_mismatch,
              plc + " names " + subject_alt_names_text(leaf) + ", not " + expected +
                  ": it belongs to another PLC, or the connection's address or PLC name is wrong",
              leaf);
}

// ---------------------------------------------------------------------------------------------
// The connection's partner certificates: pins (not CA) and anchors (CA)

struct Partners {
  std::set<std::string> pins;  // sha256
  std::vector<X509Ptr> authorities;
  std::vector<std::string> problems;
};

Partners sort_partners(const PeerIdentity& who) {
  Partners partners;
  for (std::size_t i = 0; i < who.partner_certificates.size(); ++i) {
    const std::string name =
        "partner certificate " + std::to_string(i + 1) + " of connection " + who.connection;
    auto parsed = parse_certificates(who.partner_certificates[i], name);
    if (const auto* error = std::get_if<FileError>(&parsed)) {
      partners.problems.push_back(error->to_string());
      continue;
    }
    for (const CertificateInfo& certificate : std::get<std::vector<CertificateInfo>>(parsed)) {
      if (!certificate.is_ca) {
        partners.pins.insert(certificate.sha256);
      } else if (auto x509 = to_x509(certificate.der)) {
        partners.authorities.push_back(std::move(x509));
      }
    }
  }
  return partners;
}

// ---------------------------------------------------------------------------------------------
// Chains

// An issuer without a CRL is not an error (most plant CAs publish none), and a CRL's own times
// do not matter: a serial it lists stays revoked after its nextUpdate. Everything else fails.
int tolerate_missing_crl(int ok, X509_STORE_CTX* context) {
  if (ok == 1) return 1;
  switch (X509_STORE_CTX_get_error(context)) {
    case X509_V_ERR_UNABLE_TO_GET_CRL:
    case X509_V_ERR_CRL_HAS_EXPIRED:
    case X509_V_ERR_CRL_NOT_YET_VALID:
      return 1;
    default:
      return 0;
  }
}

bool is_crl_error(int error) {
  switch (error) {
    case X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER:
    case X509_V_ERR_CRL_SIGNATURE_FAILURE:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE:
    case X509_V_ERR_ERROR_IN_CRL_LAST_UPDATE_FIELD:
    case X509_V_ERR_ERROR_IN_CRL_NEXT_UPDATE_FIELD:
    case X509_V_ERR_UNHANDLED_CRITICAL_CRL_EXTENSION:
    case X509_V_ERR_KEYUSAGE_NO_CRL_SIGN:
    case X509_V_ERR_DIFFERENT_CRL_SCOPE:
    case X509_V_ERR_CRL_PATH_VALIDATION_ERROR:
      return true;
    default:
      return false;
  }
}

bool is_missing_issuer(int error) {
  switch (error) {
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
      return true;
    default:
      return false;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------

struct TrustSnapshot::Impl {
  TrustMaterial material;
  std::uint64_t version = 0;
  std::set<std::string> pinned;  // sha256 of material.trusted
  std::vector<X509Ptr> roots;
  std::vector<X509CrlPtr> crls;

  Decision verify_chain(const CertificateInfo& leaf, const std::vector<Bytes>& chain,
                        const Partners& partners, TimePoint now, bool live_session) const;
};

TrustSnapshot::TrustSnapshot(TrustMaterial material, std::uint64_t version) {
  auto impl = std::make_unique<Impl>();
  impl->version = version;
  const OpenSslErrorScope errors;
  for (const CertificateInfo& root : material.roots) {
    auto x509 = to_x509(root.der);
    if (!x509) throw std::invalid_argument("root certificate " + root.subject + " does not decode");
    // Computes the cached extension flags now, while this thread alone sees the object.
    X509_check_purpose(x509.get(), -1, 0);
    impl->roots.push_back(std::move(x509));
  }
  for (const CrlInfo& crl : material.crls) {
    auto x509_crl = to_x509_crl(crl.der);
    if (!x509_crl) throw std::invalid_argument("CRL of " + crl.issuer + " does not decode");
    impl->crls.push_back(std::move(x509_crl));
  }
  for (const CertificateInfo& pin : material.trusted) impl->pinned.insert(pin.sha256);
  impl->material = std::move(material);
  impl_ = std::move(impl);
}

TrustSnapshot::~TrustSnapshot() = default;

std::uint64_t TrustSnapshot::version() const {
  return impl_->version;
}
const std::vector<CertificateInfo>& TrustSnapshot::trusted() const {
  return impl_->material.trusted;
}
const std::vector<CertificateInfo>& TrustSnapshot::roots() const {
  return impl_->material.roots;
}
const std::vector<CrlInfo>& TrustSnapshot::crls() const {
  return impl_->material.crls;
}
const std::map<std::string, std::filesystem::path>& TrustSnapshot::revoked_by_move() const {
  return impl_->material.revoked_by_move;
}

Decision TrustSnapshot::verify(const std::vector<Bytes>& chain, const PeerIdentity& who,
                               TimePoint now, bool live_session) const {
  const OpenSslErrorScope errors;
  if (chain.empty()) return bad_certificate("the PLC presented no certificate");
  if (chain.size() > kMaxChainLength) {
    return bad_certificate("the PLC presented " + std::to_string(chain.size()) +
                           " certificates; at most " + std::to_string(kMaxChainLength) +
                           " are taken");
  }
  // TLS carries DER; parse_certificates would take PEM text too.
  if (chain.front().empty() || chain.front()[0] != 0x30) {
    return bad_certificate("the PLC's certificate is not DER-encoded");
  }
  auto parsed = parse_certificates(chain.front(), "the PLC's certificate");
  if (const auto* error = std::get_if<FileError>(&parsed)) {
    return bad_certificate(error->to_string() + ": the PLC must present a well-formed certificate");
  }
  const CertificateInfo leaf = std::get<std::vector<CertificateInfo>>(parsed).front();
  const std::string plc = "PLC certificate " + certificate_text(leaf);
  const Partners partners = sort_partners(who);

  // Pinned: the pin is the identity; validity times still apply to new sessions.
  const bool pinned_here = impl_->pinned.count(leaf.sha256) != 0;
  if (pinned_here || partners.pins.count(leaf.sha256) != 0) {
    const std::string how = pinned_here
                                ? " is pinned in trusted/"
                                : " is a partner certificate of connection " + who.connection;
    if (!live_session && now < leaf.not_before) {
      return make(Verdict::not_yet_valid,
                  plc + how + " but is not valid before " + time_text(leaf.not_before) +
                      " (check the clocks of the PLC and of this computer)",
                  leaf);
    }
    if (!live_session && now > leaf.not_after) {
      return make(Verdict::expired,
                  plc + how + " but expired on " + time_text(leaf.not_after) +
                      ": renew the PLC's certificate and trust the new one",
                  leaf);
    }
    return make(Verdict::accepted, plc + how, leaf);
  }

  if (const auto moved = impl_->material.revoked_by_move.find(leaf.sha256);
      moved != impl_->material.revoked_by_move.end()) {
    return make(Verdict::revoked,
                plc + " was trusted and has been moved to untrusted/ (" + moved->second.string() +
                    "): revoked; move it back to trusted/ to trust it again",
                leaf);
  }

  Decision decision = impl_->verify_chain(leaf, chain, partners, now, live_session);
  if (decision.verdict == Verdict::accepted) decision = check_identity(leaf, who);
  if (!decision.ok()) {
    for (const std::string& problem : partners.problems) decision.detail += "; " + problem;
  }
  return decision;
}

Decision TrustSnapshot::Impl::verify_chain(const CertificateInfo& leaf,
                                           const std::vector<Bytes>& chain,
                                           const Partners& partners, TimePoint now,
                                           bool live_session) const {
  const std::string plc = "PLC certificate " + certificate_text(leaf);
  const auto failed = [&](const std::string& what) {
    return make(Verdict::bad_certificate, plc + " cannot be checked: " + what, leaf);
  };

  // A store for this call alone: the snapshot's anchors and CRLs and the connection's CAs.
  X509StorePtr store(X509_STORE_new());
  if (!store) return failed("out of memory");
  for (const auto& root : roots) X509_STORE_add_cert(store.get(), root.get());
  for (const auto& authority : partners.authorities) {
    X509_STORE_add_cert(store.get(), authority.get());
  }
  for (const auto& crl : crls) X509_STORE_add_crl(store.get(), crl.get());

  // What the PLC sent after its certificate may help to build the chain, never to anchor it.
  std::vector<X509Ptr> sent;
  X509StackPtr intermediates(sk_X509_new_null());
  if (!intermediates) return failed("out of memory");
  for (std::size_t i = 1; i < chain.size(); ++i) {
    auto parsed = parse_certificates(chain[i], "certificate " + std::to_string(i + 1));
    if (chain[i].empty() || chain[i][0] != 0x30) {
      parsed = FileError{"certificate " + std::to_string(i + 1), "not DER-encoded"};
    }
    if (const auto* error = std::get_if<FileError>(&parsed)) {
      return make(Verdict::bad_certificate, "the PLC's chain cannot be used: " + error->to_string(),
                  leaf);
    }
    sent.push_back(to_x509(chain[i]));
    if (!sent.back() || sk_X509_push(intermediates.get(), sent.back().get()) <= 0) {
      return failed("out of memory");
    }
  }
  const X509Ptr peer = to_x509(leaf.der);
  X509StoreCtxPtr context(X509_STORE_CTX_new());
  if (!peer || !context ||
      X509_STORE_CTX_init(context.get(), store.get(), peer.get(), intermediates.get()) != 1) {
    return failed(take_openssl_error());
  }
  X509_VERIFY_PARAM* parameters = X509_STORE_CTX_get0_param(context.get());
  // PARTIAL_CHAIN: an imported intermediate is an anchor by itself (pki/roots holds "root and
  // intermediate CA certificates", DESIGN.md §3). The store holds CA certificates only.
  unsigned long flags = X509_V_FLAG_PARTIAL_CHAIN;
  if (!crls.empty()) flags |= X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL;
  if (live_session) {
    flags |= X509_V_FLAG_NO_CHECK_TIME;
  } else {
    const auto seconds = std::chrono::floor<std::chrono::seconds>(now.time_since_epoch());
    X509_VERIFY_PARAM_set_time(parameters, static_cast<std::time_t>(seconds.count()));
  }
  X509_VERIFY_PARAM_set_flags(parameters, flags);
  X509_VERIFY_PARAM_set_depth(parameters, static_cast<int>(kMaxChainLength));
  // The PLC is the TLS server: an extended key usage, when present, must allow that.
  X509_STORE_CTX_set_purpose(context.get(), X509_PURPOSE_SSL_SERVER);
  X509_STORE_CTX_set_verify_cb(context.get(), tolerate_missing_crl);

  if (X509_verify_cert(context.get()) == 1) return make(Verdict::accepted, {}, leaf);

  const int error = X509_STORE_CTX_get_error(context.get());
  const int depth = X509_STORE_CTX_get_error_depth(context.get());
  const X509* at = X509_STORE_CTX_get_current_cert(context.get());
  const std::string reason = X509_verify_cert_error_string(error);
  // Which certificate a fault is in: the PLC's, or one of its issuers.
  const std::string whose = depth <= 0 ? plc : "the issuing CA " + subject_of(at) + " of " + plc;

  if (is_missing_issuer(error)) {
    if (leaf.self_signed) {
      return make(Verdict::untrusted_certificate, plc + " is self-signed and not trusted", leaf);
    }
    return make(Verdict::unknown_ca,
                plc + " was issued by " + shortened(leaf.issuer) +
                    ", a CA that is neither imported (pki/roots) nor a partner certificate of the "
                    "connection",
                leaf);
  }
  switch (error) {
    // OpenSSL checks times from the anchor down; when the PLC's own certificate is out of its
    // validity too, that is the one to renew, so the detail names it.
    case X509_V_ERR_CERT_HAS_EXPIRED: {
      const bool own = now > leaf.not_after;
      const auto until = own ? leaf.not_after : not_after_of(at);
      return make(Verdict::expired,
                  (own ? plc : whose) + " expired" +
                      (until ? " on " + time_text(*until) : std::string()) +
                      ": new sessions are refused until it is renewed",
                  leaf);
    }
    case X509_V_ERR_CERT_NOT_YET_VALID: {
      const bool own = now < leaf.not_before;
      const auto from = own ? leaf.not_before : not_before_of(at);
      return make(Verdict::not_yet_valid,
                  (own ? plc : whose) + " is not valid before " +
                      (from ? time_text(*from) : "its notBefore") +
                      " (check the clocks of the PLC and of this computer)",
                  leaf);
    }
    case X509_V_ERR_CERT_REVOKED:
      return make(Verdict::revoked, whose + " is revoked by a CRL in trusted/crl/", leaf);
    case X509_V_ERR_INVALID_PURPOSE:
      return make(Verdict::bad_certificate,
                  whose + " is not meant for a TLS server: its extended key usage lacks serverAuth",
                  leaf);
    default:
      break;
  }
  if (is_crl_error(error)) {
    return make(Verdict::revoked,
                "the revocation of " + whose + " cannot be checked (" + reason +
                    "), so it is refused: fix or remove the CRL of its issuer in trusted/crl/",
                leaf);
  }
  return make(Verdict::bad_certificate, whose + " fails verification: " + reason, leaf);
}

const char* verdict_name(Verdict verdict) {
  switch (verdict) {
    case Verdict::accepted:
      return "accepted";
    case Verdict::untrusted_certificate:
      return "untrusted-certificate";
    case Verdict::unknown_ca:
      return "unknown-ca";
    case Verdict::expired:
      return "expired";
    case Verdict::not_yet_valid:
      return "not-yet-valid";
    case Verdict::revoked:
      return "revoked";
    case Verdict::identity_mismatch:
      return "identity-mismatch";
    case Verdict::bad_certificate:
      return "bad-certificate";
  }
  return "unknown";
}

}  // namespace scada::certstore
