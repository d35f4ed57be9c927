// OpenSSL at the certstore's edge: owning pointers for its objects, its error queue as text,
// and the conversions of names, times and serial numbers every certstore source shares.
#pragma once

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certstore/certstore.h"
#include "input.h"

namespace scada::certstore {

template <auto free_function>
struct OpenSslDeleter {
  template <class T>
  void operator()(T* p) const {
    free_function(p);
  }
};
inline void openssl_free(void* p) {
  OPENSSL_free(p);
}

using X509Ptr = std::unique_ptr<X509, OpenSslDeleter<X509_free>>;
using X509CrlPtr = std::unique_ptr<X509_CRL, OpenSslDeleter<X509_CRL_free>>;
using BioPtr = std::unique_ptr<BIO, OpenSslDeleter<BIO_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, OpenSslDeleter<GENERAL_NAMES_free>>;
using BasicConstraintsPtr =
    std::unique_ptr<BASIC_CONSTRAINTS, OpenSslDeleter<BASIC_CONSTRAINTS_free>>;
template <class T>
using OpenSslBuffer = std::unique_ptr<T, OpenSslDeleter<openssl_free>>;

// The reason of the oldest error in this thread's OpenSSL error queue (the root cause, e.g.
// "header too long"), or "unknown error"; empties the queue.
std::string take_openssl_error();

// Empties this thread's OpenSSL error queue when the scope starts and when it ends, so one
// call's failures never show up as the reason of the next, and callers doing TLS I/O find the
// queue empty as OpenSSL requires. (OpenSSL 3.0 has no way to take the oldest error above an
// ERR_set_mark, which a reason needs: the root cause is the oldest.)
class OpenSslErrorScope {
 public:
  OpenSslErrorScope();
  ~OpenSslErrorScope();
  OpenSslErrorScope(const OpenSslErrorScope&) = delete;
  OpenSslErrorScope& operator=(const OpenSslErrorScope&) = delete;
};

// RFC 2253 text, UTF-8 kept, control characters escaped; nothing when the name holds a string
// OpenSSL cannot convert (e.g. invalid UTF-8).
std::optional<std::string> name_to_text(const X509_NAME* name);

// The time, clamped to TimePoint's range; nothing when it is not a valid ASN.1 time.
std::optional<TimePoint> to_time_point(const ASN1_TIME* time);

// Two lowercase hex digits per byte of the magnitude ("00" for zero), "-" first when negative.
std::string integer_to_hex(const ASN1_INTEGER* integer);

// Decodes one object with OpenSSL's d2i function, requiring that it spans the input exactly and
// that i2d gives the input back.
template <class Ptr, class T = typename Ptr::element_type>
std::variant<Ptr, DecodeProblem> decode_der(ByteView der,
                                            T* (*d2i)(T**, const unsigned char**, long),
                                            int (*i2d)(const T*, unsigned char**)) {
  const unsigned char* p = der.data();
  Ptr object(d2i(nullptr, &p, static_cast<long>(der.size())));
  if (!object) return DecodeProblem{DecodeProblem::Kind::malformed, take_openssl_error()};
  const auto consumed = static_cast<std::size_t>(p - der.data());
  if (consumed != der.size()) {
    return DecodeProblem{DecodeProblem::Kind::trailing_bytes, {}, der.size() - consumed};
  }
  const int length = i2d(object.get(), nullptr);
  if (length < 0 || static_cast<std::size_t>(length) != der.size()) {
    return DecodeProblem{DecodeProblem::Kind::not_canonical, {}};
  }
  Bytes again(der.size());
  unsigned char* out = again.data();
  if (i2d(object.get(), &out) != length || !std::equal(again.begin(), again.end(), der.begin())) {
    return DecodeProblem{DecodeProblem::Kind::not_canonical, {}};
  }
  return object;
}

}  // namespace scada::certstore
