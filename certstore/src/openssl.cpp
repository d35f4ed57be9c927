#include "openssl.h"

#include <chrono>
#include <ctime>

#include <openssl/err.h>

namespace scada::certstore {

std::string take_openssl_error() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  const char* reason = code != 0 ? ERR_reason_error_string(code) : nullptr;
  return reason != nullptr ? reason : "unknown error";
}

OpenSslErrorScope::OpenSslErrorScope() {
  ERR_clear_error();
}
OpenSslErrorScope::~OpenSslErrorScope() {
  ERR_clear_error();
}

std::optional<std::string> name_to_text(const X509_NAME* name) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio) return std::nullopt;
  // RFC 2253 escapes every byte above 0x7F; plant and device names are often not English, so
  // UTF-8 stays as it is (control characters and RFC 2253 specials are still escaped).
  constexpr unsigned long kFlags = XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB;
  if (X509_NAME_print_ex(bio.get(), name, 0, kFlags) < 0) return std::nullopt;
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio.get(), &data);
  if (length < 0) return std::nullopt;
  return std::string(data, static_cast<std::size_t>(length));
}

std::optional<TimePoint> to_time_point(const ASN1_TIME* time) {
  std::tm tm{};
  if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) return std::nullopt;
  using namespace std::chrono;
  const year_month_day date{year{tm.tm_year + 1900}, month{static_cast<unsigned>(tm.tm_mon + 1)},
                            day{static_cast<unsigned>(tm.tm_mday)}};
  if (!date.ok()) return std::nullopt;
  // In seconds first: years 0..9999 fit, while TimePoint (nanoseconds) ends in 2262.
  const sys_seconds at =
      sys_days{date} + hours{tm.tm_hour} + minutes{tm.tm_min} + seconds{tm.tm_sec};
  // The whole seconds within TimePoint's range (truncating toward zero never leaves it).
  const sys_seconds latest{duration_cast<seconds>(TimePoint::max().time_since_epoch())};
  const sys_seconds earliest{duration_cast<seconds>(TimePoint::min().time_since_epoch())};
  if (at > latest) return TimePoint::max();
  if (at < earliest) return TimePoint::min();
  return time_point_cast<TimePoint::duration>(at);
}

std::string integer_to_hex(const ASN1_INTEGER* integer) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string text;
  if (ASN1_STRING_type(integer) == V_ASN1_NEG_INTEGER) text += '-';
  const unsigned char* data = ASN1_STRING_get0_data(integer);
  const int length = ASN1_STRING_length(integer);
  if (length <= 0) return text + "00";
  for (int i = 0; i < length; ++i) {
    text += kDigits[data[i] >> 4];
    text += kDigits[data[i] & 0x0F];
  }
  return text;
}

}  // namespace scada::certstore
