#include "describe.h"

#include <chrono>
#include <ctime>

namespace scada::certstore {

namespace {
constexpr std::size_t kMaxNameLength = 160;
}

std::string shortened(const std::string& text) {
  if (text.size() <= kMaxNameLength) return text;
  std::size_t cut = kMaxNameLength;
  // Not inside a UTF-8 sequence: continuation bytes are 10xxxxxx.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return text.substr(0, cut) + "…";
}

std::string time_text(TimePoint t) {
  const std::time_t seconds =
      std::chrono::system_clock::to_time_t(std::chrono::time_point_cast<std::chrono::seconds>(t));
  std::tm tm{};
  char text[32] = "?";
  if (::gmtime_r(&seconds, &tm) != nullptr) std::strftime(text, sizeof text, "%FT%TZ", &tm);
  return text;
}

std::string certificate_text(const CertificateInfo& certificate) {
  const std::string subject = certificate.subject.empty() ? "(empty subject)" : certificate.subject;
  return shortened(subject) + " (sha256 " + certificate.sha256 + ")";
}

std::string certificate_facts(const CertificateInfo& certificate) {
  return certificate_text(certificate) + ", issued by " + shortened(certificate.issuer) +
         ", valid " + time_text(certificate.not_before) + " to " + time_text(certificate.not_after);
}

}  // namespace scada::certstore
