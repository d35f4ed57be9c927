// Certificate and CRL files: DER and PEM decoding, the fields the store and the importer use,
// every error reason, hostile input (every truncation, random mutations) and file access.
// All certificates are made by test_pki at fixed instants, so the tests never depend on today.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include <gtest/gtest.h>
#include <openssl/err.h>

#include "certstore/certstore.h"
#include "test_pki.h"

namespace scada::certstore {

// Readable failure messages: who the certificate is, not its bytes.
void PrintTo(const CertificateInfo& c, std::ostream* os) {
  *os << "{" << c.subject << ", issuer " << c.issuer << ", serial " << c.serial_hex << ", sha256 "
      << c.sha256 << "}";
}
void PrintTo(const CrlInfo& c, std::ostream* os) {
  *os << "{CRL of " << c.issuer << ", " << c.revoked_serials_hex.size() << " revoked, sha256 "
      << c.sha256 << "}";
}

namespace {

using namespace std::chrono;
using namespace std::chrono_literals;
using test_pki::CertificatePtr;
using test_pki::CertificateSpec;
using test_pki::CrlPtr;
using test_pki::CrlSpec;
using test_pki::der_of;
using test_pki::KeyKind;
using test_pki::KeyPtr;
using test_pki::pem_of;
using test_pki::RawExtension;
using test_pki::to_bytes;

constexpr sys_seconds at(year_month_day date, seconds time_of_day = 0s) {
  return sys_days{date} + time_of_day;
}

// "Today" for every test that needs one.
const TimePoint kNow = at(2031y / March / 1, 12h);

// One test PKI for the whole suite: a P-256 root CA, a PLC certificate it issued, and a few
// certificates that differ in one respect each. RSA key generation is slow, so it runs once.
struct Pki {
  KeyPtr ca_key = test_pki::make_key(KeyKind::ec_p256);
  KeyPtr plc_key = test_pki::make_key(KeyKind::ec_p256);
  KeyPtr rsa_key = test_pki::make_key(KeyKind::rsa2048);
  CertificatePtr ca, plc, rsa, future, expired;
  CrlPtr crl;

  Pki() {
    CertificateSpec ca_spec;
    ca_spec.subject = {{"C", "DE"}, {"O", "Plant A"}, {"CN", "Plant A Root CA"}};
    ca_spec.serial = {0x01};
    ca_spec.not_before = at(2030y / January / 1);
    ca_spec.not_after = at(2040y / January / 1);
    ca_spec.ca = true;
    ca = test_pki::make_certificate(ca_spec, ca_key.get(), nullptr, ca_key.get());

    CertificateSpec plc_spec;
    plc_spec.subject = {{"O", "Plant A"}, {"CN", "PLC1"}};
    plc_spec.serial = {0x12, 0x34};
    plc_spec.not_before = at(2030y / June / 1, 8h);
    plc_spec.not_after = at(2032y / June / 1, 8h);
    plc_spec.ca = false;
    plc_spec.dns_names = {"plc1.plant-a.local", "plc1"};
    plc_spec.ip_addresses = {"192.168.0.10", "fd00::10"};
    plc = test_pki::make_certificate(plc_spec, plc_key.get(), ca.get(), ca_key.get());

    CertificateSpec rsa_spec;
    rsa_spec.subject = {{"CN", "RSA device"}};
    rsa_spec.serial = {0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    rsa_spec.not_before = at(2029y / December / 31);
    rsa_spec.not_after = at(2039y / December / 31);
    rsa = test_pki::make_certificate(rsa_spec, rsa_key.get(), nullptr, rsa_key.get());

    CertificateSpec future_spec = plc_spec;
    future_spec.serial = {0x02};
    future_spec.not_before = at(2100y / January / 1);  // GeneralizedTime from 2050 on
    future_spec.not_after = at(2101y / January / 1);
    future = test_pki::make_certificate(future_spec, plc_key.get(), ca.get(), ca_key.get());

    CertificateSpec expired_spec = plc_spec;
    expired_spec.serial = {0x03};
    expired_spec.not_before = at(2001y / January / 1);
    expired_spec.not_after = at(2002y / January / 1);
    expired = test_pki::make_certificate(expired_spec, plc_key.get(), ca.get(), ca_key.get());

    CrlSpec crl_spec;
    crl_spec.this_update = at(2031y / January / 1);
    crl_spec.next_update = at(2031y / February / 1);
    crl_spec.revoked_serials = {{0x12, 0x34}, {0x05}};
    crl = test_pki::make_crl(crl_spec, ca.get(), ca_key.get());
  }
};

const Pki& pki() {
  static const Pki instance;
  return instance;
}

std::vector<CertificateInfo> parse_ok(const Bytes& bytes) {
  auto result = parse_certificates(bytes, "test");
  if (const auto* error = std::get_if<FileError>(&result)) {
    ADD_FAILURE() << "did not parse: " << error->to_string();
    return {};
  }
  return std::get<std::vector<CertificateInfo>>(result);
}

CertificateInfo parse_one(const Bytes& bytes) {
  auto all = parse_ok(bytes);
  if (all.size() != 1) {
    ADD_FAILURE() << all.size() << " certificates instead of one";
    return {};
  }
  return all.front();
}

CrlInfo parse_crl_ok(const Bytes& bytes) {
  auto result = parse_crl(bytes, "test");
  if (const auto* error = std::get_if<FileError>(&result)) {
    ADD_FAILURE() << "did not parse: " << error->to_string();
    return {};
  }
  return std::get<CrlInfo>(result);
}

// The reason of the error, or "(parsed)" when the input was accepted.
template <class T>
std::string reason_of(const FileResult<T>& result) {
  const auto* error = std::get_if<FileError>(&result);
  return error != nullptr ? error->reason : "(parsed)";
}
std::string certificate_error(const Bytes& bytes) {
  return reason_of(parse_certificates(bytes, "test"));
}
std::string crl_error(const Bytes& bytes) {
  return reason_of(parse_crl(bytes, "test"));
}

Bytes concat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

CertificateInfo make_and_parse(const CertificateSpec& spec, KeyKind kind = KeyKind::ec_p256) {
  const KeyPtr key = test_pki::make_key(kind);
  const CertificatePtr certificate =
      test_pki::make_certificate(spec, key.get(), nullptr, key.get());
  return parse_one(der_of(certificate.get()));
}

CertificateSpec valid_2030s() {
  CertificateSpec spec;
  spec.not_before = at(2030y / January / 1);
  spec.not_after = at(2035y / January / 1);
  return spec;
}

// ---------------------------------------------------------------------------------------------
// Fields

TEST(CertificateFields, SelfSignedRootCa) {
  const Bytes der = der_of(pki().ca.get());
  const CertificateInfo info = parse_one(der);
  EXPECT_EQ(info.subject, "CN=Plant A Root CA,O=Plant A,C=DE");
  EXPECT_EQ(info.issuer, info.subject);
  EXPECT_EQ(info.serial_hex, "01");
  EXPECT_TRUE(info.is_ca);
  EXPECT_TRUE(info.self_signed);
  EXPECT_EQ(info.key_type, "EC P-256");
  EXPECT_EQ(info.not_before, TimePoint(at(2030y / January / 1)));
  EXPECT_EQ(info.not_after, TimePoint(at(2040y / January / 1)));
  EXPECT_TRUE(info.dns_names.empty());
  EXPECT_TRUE(info.ip_addresses.empty());
  EXPECT_EQ(info.der, der);
  EXPECT_EQ(info.sha256, test_pki::sha256_hex(der));
}

TEST(CertificateFields, PlcCertificateIssuedByTheCa) {
  const CertificateInfo info = parse_one(der_of(pki().plc.get()));
  EXPECT_EQ(info.subject, "CN=PLC1,O=Plant A");
  EXPECT_EQ(info.issuer, "CN=Plant A Root CA,O=Plant A,C=DE");
  EXPECT_EQ(info.serial_hex, "1234");
  EXPECT_FALSE(info.is_ca);
  EXPECT_FALSE(info.self_signed);
  EXPECT_EQ(info.dns_names, (std::vector<std::string>{"plc1.plant-a.local", "plc1"}));
  EXPECT_EQ(info.ip_addresses, (std::vector<std::string>{"192.168.0.10", "fd00::10"}));
  EXPECT_EQ(info.not_before, TimePoint(at(2030y / June / 1, 8h)));
  EXPECT_EQ(info.not_after, TimePoint(at(2032y / June / 1, 8h)));
}

TEST(CertificateFields, DerAndPemGiveTheSameInfo) {
  for (const X509* certificate : {pki().ca.get(), pki().plc.get(), pki().rsa.get(),
                                  pki().future.get(), pki().expired.get()}) {
    const CertificateInfo from_der = parse_one(der_of(certificate));
    const CertificateInfo from_pem = parse_one(to_bytes(pem_of(certificate)));
    EXPECT_EQ(from_der, from_pem) << from_der.subject;
    EXPECT_EQ(from_pem.der, der_of(certificate));
  }
}

TEST(CertificateFields, FingerprintIsTheSha256OfTheDer) {
  for (const X509* certificate : {pki().ca.get(), pki().plc.get(), pki().rsa.get()}) {
    const Bytes der = der_of(certificate);
    const CertificateInfo info = parse_one(to_bytes(pem_of(certificate)));
    EXPECT_EQ(info.sha256, test_pki::sha256_hex(der));
    EXPECT_EQ(info.sha256.size(), 64u);
    EXPECT_EQ(info.sha256.find_first_not_of("0123456789abcdef"), std::string::npos);
    EXPECT_EQ(fingerprint_sha256(der), info.sha256);
  }
}

TEST(CertificateFields, FingerprintKnownAnswers) {
  EXPECT_EQ(fingerprint_sha256({}),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(fingerprint_sha256(to_bytes("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(CertificateFields, KeyTypes) {
  EXPECT_EQ(make_and_parse(valid_2030s(), KeyKind::ec_p256).key_type, "EC P-256");
  EXPECT_EQ(make_and_parse(valid_2030s(), KeyKind::ec_p384).key_type, "EC P-384");
  EXPECT_EQ(make_and_parse(valid_2030s(), KeyKind::ed25519).key_type, "Ed25519");
  EXPECT_EQ(parse_one(der_of(pki().rsa.get())).key_type, "RSA 2048");
}

TEST(CertificateFields, SelfSignedNeedsTheOwnKeysSignature) {
  EXPECT_TRUE(make_and_parse(valid_2030s(), KeyKind::ed25519).self_signed);
  EXPECT_TRUE(parse_one(der_of(pki().rsa.get())).self_signed);

  // Same name as its issuer, but signed by another key (a CA with the same name).
  CertificateSpec spec = valid_2030s();
  spec.subject = {{"CN", "Twin"}};
  const KeyPtr issuer_key = test_pki::make_key(KeyKind::ec_p256);
  const KeyPtr own_key = test_pki::make_key(KeyKind::ec_p256);
  const CertificatePtr issuer =
      test_pki::make_certificate(spec, issuer_key.get(), nullptr, issuer_key.get());
  const CertificatePtr twin =
      test_pki::make_certificate(spec, own_key.get(), issuer.get(), issuer_key.get());
  const CertificateInfo info = parse_one(der_of(twin.get()));
  EXPECT_EQ(info.subject, info.issuer);
  EXPECT_FALSE(info.self_signed);
}

TEST(CertificateFields, IsCaOnlyWithBasicConstraintsCaTrue) {
  CertificateSpec spec = valid_2030s();
  EXPECT_FALSE(make_and_parse(spec).is_ca) << "no basicConstraints";
  spec.ca = false;
  EXPECT_FALSE(make_and_parse(spec).is_ca) << "CA:FALSE";
  spec.ca = true;
  EXPECT_TRUE(make_and_parse(spec).is_ca) << "CA:TRUE";
}

TEST(CertificateFields, SerialNumbersInHex) {
  struct Case {
    Bytes serial;
    bool negative;
    std::string hex;
  };
  const std::vector<Case> cases = {
      {{0x00}, false, "00"},
      {{0x01}, false, "01"},
      {{0x0a, 0xbc}, false, "0abc"},
      {{0x80}, false, "80"},  // DER needs a leading 00 byte; the value does not
      {Bytes(20, 0xff), false, std::string(40, 'f')},
      {{0x05}, true, "-05"},
  };
  for (const Case& c : cases) {
    CertificateSpec spec = valid_2030s();
    spec.serial = c.serial;
    spec.negative_serial = c.negative;
    EXPECT_EQ(make_and_parse(spec).serial_hex, c.hex);
  }
}

TEST(CertificateFields, NamesAreOneLineRfc2253WithUtf8) {
  CertificateSpec spec = valid_2030s();
  spec.subject = {{"O", "Anlage Süd"}, {"OU", "Halle 2, Linie 3"}, {"CN", "+PLC=1"}};
  EXPECT_EQ(make_and_parse(spec).subject, "CN=\\+PLC=1,OU=Halle 2\\, Linie 3,O=Anlage Süd");

  spec.subject = {{"CN", "line\nbreak"}};
  EXPECT_EQ(make_and_parse(spec).subject, "CN=line\\0Abreak") << "control characters escaped";
}

// ---------------------------------------------------------------------------------------------
// Validity and expiry

TEST(CertificateExpiry, TimesAcrossTheWholeRange) {
  CertificateSpec spec;
  spec.not_before = at(1960y / July / 1, 6h);                     // before 1970: negative time_t
  spec.not_after = at(2049y / December / 31, 23h + 59min + 59s);  // last UTCTime
  CertificateInfo info = make_and_parse(spec);
  EXPECT_EQ(info.not_before, TimePoint(at(1960y / July / 1, 6h)));
  EXPECT_EQ(info.not_after, TimePoint(at(2049y / December / 31, 23h + 59min + 59s)));

  spec.not_before = at(2050y / January / 1);  // GeneralizedTime
  spec.not_after = at(2200y / February / 29);
  info = make_and_parse(spec);
  EXPECT_EQ(info.not_before, TimePoint(at(2050y / January / 1)));
  EXPECT_EQ(info.not_after, TimePoint(at(2200y / February / 28) + days{1}));
}

TEST(CertificateExpiry, TimesBeforeTimePointsRangeAreClampedToItsStart) {
  CertificateSpec spec;
  spec.not_before = at(1601y / January / 1);
  spec.not_after = at(2030y / January / 1);
  const CertificateInfo info = make_and_parse(spec);
  EXPECT_EQ(info.not_before, TimePoint::min());
  EXPECT_TRUE(info.valid_at(kNow - days{365 * 10}));
}

TEST(CertificateExpiry, NoExpiryDateIsClampedToTheEndOfTime) {
  // RFC 5280 4.1.2.5: 99991231235959Z means "no well-defined expiration date".
  CertificateSpec spec;
  spec.not_before = at(2030y / January / 1);
  spec.not_after = at(9999y / December / 31, 23h + 59min + 59s);
  const CertificateInfo info = make_and_parse(spec);
  EXPECT_EQ(info.not_after, TimePoint::max());
  EXPECT_TRUE(info.valid_at(kNow));
  EXPECT_GT(info.days_until_expiry(kNow), 365 * 200);
  EXPECT_GT(info.days_until_expiry(TimePoint::min()), 365 * 500) << "no overflow";
  EXPECT_EQ(info.days_until_expiry(TimePoint::max()), 0);

  CertificateInfo ancient;  // and the other end of the range
  ancient.not_after = TimePoint::min();
  EXPECT_LT(ancient.days_until_expiry(TimePoint::max()), -365 * 580);
  EXPECT_EQ(ancient.days_until_expiry(TimePoint::min()), 0);
}

TEST(CertificateExpiry, DaysUntilExpiryRoundDown) {
  CertificateInfo info;
  info.not_before = at(2030y / January / 1);
  info.not_after = at(2031y / June / 30, 12h);
  const TimePoint end = info.not_after;
  struct Case {
    TimePoint now;
    int days;
  };
  const std::vector<Case> cases = {
      {end - days{30}, 30},
      {end - days{30} + 1s, 29},
      {end - days{14}, 14},
      {end - days{1} - 1ns, 1},
      {end - days{1}, 1},
      {end - days{1} + 1ns, 0},
      {end, 0},
      {end + 1ns, -1},  // expired: valid_at is false from here on
      {end + 1s, -1},
      {end + days{1}, -1},
      {end + days{1} + 1s, -2},
      {end + days{400}, -400},
      {end - days{3650}, 3650},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(info.days_until_expiry(c.now), c.days)
        << duration_cast<seconds>(c.now - end).count() << " s from notAfter";
  }
}

TEST(CertificateExpiry, ValidAtIncludesBothEnds) {
  CertificateInfo info;
  info.not_before = at(2030y / January / 1);
  info.not_after = at(2031y / January / 1);
  EXPECT_FALSE(info.valid_at(info.not_before - 1ns));
  EXPECT_TRUE(info.valid_at(info.not_before));
  EXPECT_TRUE(info.valid_at(info.not_after));
  EXPECT_FALSE(info.valid_at(info.not_after + 1ns));
}

TEST(CertificateExpiry, ExpiredAndNotYetValidCertificates) {
  const CertificateInfo expired = parse_one(der_of(pki().expired.get()));
  EXPECT_FALSE(expired.valid_at(kNow));
  EXPECT_LT(expired.days_until_expiry(kNow), 0);
  EXPECT_EQ(expired.days_until_expiry(kNow),
            floor<days>(at(2002y / January / 1) - at(2031y / March / 1, 12h)).count());

  const CertificateInfo future = parse_one(der_of(pki().future.get()));
  EXPECT_FALSE(future.valid_at(kNow));
  EXPECT_GT(future.days_until_expiry(kNow), 365 * 69);

  const CertificateInfo plc = parse_one(der_of(pki().plc.get()));
  EXPECT_TRUE(plc.valid_at(kNow));
  EXPECT_EQ(plc.days_until_expiry(kNow), 457);  // 2031-03-01 12:00 .. 2032-06-01 08:00
}

// ---------------------------------------------------------------------------------------------
// PEM

TEST(CertificatePem, SeveralCertificatesComeBackInOrder) {
  const std::string chain = "subject=CN=PLC1\n" + pem_of(pki().plc.get()) + "\nthe root:\n" +
                            pem_of(pki().ca.get()) + pem_of(pki().rsa.get()) + "\n";
  const auto all = parse_ok(to_bytes(chain));
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].subject, "CN=PLC1,O=Plant A");
  EXPECT_EQ(all[1].subject, "CN=Plant A Root CA,O=Plant A,C=DE");
  EXPECT_EQ(all[2].subject, "CN=RSA device");
  EXPECT_EQ(all[1].der, der_of(pki().ca.get()));
}

TEST(CertificatePem, WindowsLineEndsAndByteOrderMark) {
  std::string pem = pem_of(pki().plc.get()) + pem_of(pki().ca.get());
  std::string crlf;
  for (char c : pem) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  const auto all = parse_ok(to_bytes("\xEF\xBB\xBF" + crlf));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0], parse_one(der_of(pki().plc.get())));
}

TEST(CertificatePem, OldCertificateLabelIsAccepted) {
  const std::string pem = test_pki::pem_block("X509 CERTIFICATE", der_of(pki().plc.get()));
  EXPECT_EQ(parse_one(to_bytes(pem)), parse_one(der_of(pki().plc.get())));
}

// ---------------------------------------------------------------------------------------------
// Errors, with the exact words an operator reads

TEST(CertificateErrors, EmptyAndOversizeInput) {
  EXPECT_EQ(certificate_error({}), "empty input");
  EXPECT_EQ(certificate_error(Bytes(70000, '-')), "input is 70000 bytes, the limit is 65536");
  EXPECT_EQ(certificate_error(Bytes(kMaxCertificateFileSize + 1, 'A')),
            "input is 65537 bytes, the limit is 65536");
}

TEST(CertificateErrors, NeitherDerNorPem) {
  EXPECT_EQ(certificate_error(to_bytes("hello, world\n")),
            "not a certificate (neither DER nor PEM)");
  EXPECT_EQ(certificate_error(Bytes{0x02, 0x01, 0x00}), "not a certificate (neither DER nor PEM)");
  EXPECT_EQ(certificate_error(to_bytes("-----END CERTIFICATE-----\n")),
            "not a certificate (neither DER nor PEM)");
}

TEST(CertificateErrors, FileErrorNamesTheSource) {
  const auto result = parse_certificates({}, "bundle.scadaexport.xml:12");
  ASSERT_TRUE(std::holds_alternative<FileError>(result));
  EXPECT_EQ(std::get<FileError>(result).to_string(), "bundle.scadaexport.xml:12: empty input");
}

TEST(CertificateErrors, TrailingBytesAfterDer) {
  const Bytes der = der_of(pki().plc.get());
  EXPECT_EQ(certificate_error(concat(der, Bytes(64, 0))),
            "64 trailing bytes after the DER certificate");
  EXPECT_EQ(certificate_error(concat(der, {'\n'})), "1 trailing byte after the DER certificate");
  EXPECT_EQ(certificate_error(concat(der, der)),
            std::to_string(der.size()) + " trailing bytes after the DER certificate");
}

TEST(CertificateErrors, TruncatedDerAtEveryLength) {
  const Bytes der = der_of(pki().plc.get());
  for (std::size_t length = 1; length < der.size(); ++length) {
    const std::string reason = certificate_error(Bytes(der.begin(), der.begin() + length));
    EXPECT_TRUE(reason.starts_with("DER certificate truncated or malformed: ") &&
                reason.size() > 40)
        << length << " bytes: " << reason;
  }
}

TEST(CertificateErrors, LeaveTheOpenSslErrorQueueEmpty) {
  // A failure must not become the reason of the caller's next OpenSSL call (e.g. SSL_get_error).
  const Bytes der = der_of(pki().plc.get());
  EXPECT_NE(certificate_error(Bytes(der.begin(), der.begin() + 100)), "(parsed)");
  EXPECT_EQ(ERR_peek_error(), 0u);
  EXPECT_NE(certificate_error(to_bytes("-----BEGIN CERTIFICATE-----\n**\n")), "(parsed)");
  EXPECT_EQ(ERR_peek_error(), 0u);
  EXPECT_NE(crl_error(der), "(parsed)");
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(CertificateErrors, DerThatIsNotACertificate) {
  EXPECT_EQ(certificate_error(Bytes{0x30, 0x03, 0x02, 0x01, 0x00}),
            "DER certificate truncated or malformed: wrong tag");
  EXPECT_EQ(certificate_error(der_of(pki().crl.get())), "DER data is a CRL, not a certificate");
}

TEST(CertificateErrors, NonCanonicalDer) {
  // The outer length in four bytes instead of two: valid BER, not DER. Its SHA-256 would not be
  // the fingerprint anyone else computes, so the file is refused.
  const Bytes der = der_of(pki().plc.get());
  ASSERT_EQ(der[1], 0x82);
  Bytes stretched = {0x30, 0x84, 0x00, 0x00, der[2], der[3]};
  stretched.insert(stretched.end(), der.begin() + 4, der.end());
  EXPECT_EQ(certificate_error(stretched),
            "DER certificate is not canonical DER (re-encoding it gives other bytes)");
  EXPECT_EQ(certificate_error(to_bytes(test_pki::pem_block("CERTIFICATE", stretched))),
            "PEM block 1 is malformed: certificate is not canonical DER (re-encoding it gives "
            "other bytes)");
}

TEST(CertificateErrors, MalformedPemBlocks) {
  const std::string plc = pem_of(pki().plc.get());
  const std::string ca = pem_of(pki().ca.get());

  std::string bad_base64 = ca;
  bad_base64[40] = '*';
  EXPECT_EQ(certificate_error(to_bytes(plc + bad_base64)),
            "PEM block 2 is malformed: bad base64 decode");

  const std::string no_end = plc + ca.substr(0, ca.find("-----END"));
  EXPECT_EQ(certificate_error(to_bytes(no_end)), "PEM block 2 is malformed: bad end line");
  EXPECT_EQ(certificate_error(to_bytes("-----BEGIN CERTIFICATE-----\n")),
            "PEM block 1 is malformed: bad end line");
  EXPECT_EQ(certificate_error(to_bytes("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")),
            "PEM block 1 is malformed: it holds no data");

  const std::string not_der =
      test_pki::pem_block("CERTIFICATE", Bytes{0x30, 0x03, 0x02, 0x01, 0x00});
  EXPECT_EQ(certificate_error(to_bytes(not_der)), "PEM block 1 is malformed: wrong tag");

  Bytes with_tail = der_of(pki().plc.get());
  with_tail.insert(with_tail.end(), {1, 2, 3});
  EXPECT_EQ(certificate_error(to_bytes(test_pki::pem_block("CERTIFICATE", with_tail))),
            "PEM block 1 is malformed: 3 trailing bytes after the certificate");
}

TEST(CertificateErrors, PemBeginLineOpenSslWouldSkip) {
  const std::string plc = pem_of(pki().plc.get());
  const std::string ca = pem_of(pki().ca.get());
  const std::string rsa = pem_of(pki().rsa.get());
  const std::string broken_begin = "-----BEGIN CERTIFICATE----\n";  // one dash short
  const std::string middle = broken_begin + ca.substr(ca.find('\n') + 1);
  const std::string expected = "is malformed: its BEGIN line is not \"-----BEGIN <TYPE>-----\"";
  EXPECT_EQ(certificate_error(to_bytes(plc + middle + rsa)), "PEM block 2 " + expected);
  EXPECT_EQ(certificate_error(to_bytes(plc + rsa + middle)), "PEM block 3 " + expected);
  EXPECT_EQ(certificate_error(to_bytes(middle)), "PEM block 1 " + expected);
}

TEST(CertificateErrors, PemBlocksOfAnotherType) {
  const std::string plc = pem_of(pki().plc.get());
  EXPECT_EQ(certificate_error(to_bytes(plc + test_pki::pem_of_private_key(pki().plc_key.get()))),
            "PEM block 2 is \"PRIVATE KEY\", expected \"CERTIFICATE\"");
  EXPECT_EQ(certificate_error(to_bytes(pem_of(pki().crl.get()))),
            "PEM block 1 is \"X509 CRL\", expected \"CERTIFICATE\"");
}

TEST(CertificateErrors, UnusableSubjectAltNames) {
  struct Case {
    std::vector<RawExtension> extensions;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {{{NID_subject_alt_name, {0x30, 0x07, 0x82, 0x05, 'p', 'l', 'c', 0x00, 'x'}}},
       "subjectAltName DNS name holds a non-printable byte"},
      {{{NID_subject_alt_name, {0x30, 0x07, 0x87, 0x05, 10, 0, 0, 1, 2}}},
       "subjectAltName IP address of 5 bytes (4 or 16 expected)"},
      {{{NID_subject_alt_name, {0x30, 0x06, 0x82, 0x04, 'p', 'l', 'c', '1'}},
        {NID_subject_alt_name, {0x30, 0x06, 0x82, 0x04, 'p', 'l', 'c', '2'}}},
       "more than one subjectAltName extension"},
      {{{NID_subject_alt_name, {0x04, 0x00}}}, "subjectAltName extension is malformed"},
      {{{NID_basic_constraints, {0x30, 0x03, 0x01, 0x01, 0xff}},
        {NID_basic_constraints, {0x30, 0x00}}},
       "more than one basicConstraints extension"},
  };
  for (const Case& c : cases) {
    CertificateSpec spec = valid_2030s();
    spec.raw_extensions = c.extensions;
    const KeyPtr key = test_pki::make_key(KeyKind::ec_p256);
    const CertificatePtr certificate =
        test_pki::make_certificate(spec, key.get(), nullptr, key.get());
    EXPECT_EQ(certificate_error(der_of(certificate.get())),
              "DER certificate is malformed: " + c.reason);
    EXPECT_EQ(certificate_error(to_bytes(pem_of(certificate.get()))),
              "PEM block 1 is malformed: " + c.reason);
  }
}

// ---------------------------------------------------------------------------------------------
// Hostile input: nothing crashes, and whatever parses is consistent

void expect_consistent(const std::vector<CertificateInfo>& certificates) {
  for (const CertificateInfo& info : certificates) {
    EXPECT_EQ(info.sha256, fingerprint_sha256(info.der));
    EXPECT_EQ(info.sha256.size(), 64u);
  }
}

TEST(CertificateHostileInput, EveryPrefixOfAPemChain) {
  const std::string chain = pem_of(pki().plc.get()) + pem_of(pki().ca.get());
  const auto full = parse_ok(to_bytes(chain));
  ASSERT_EQ(full.size(), 2u);
  for (std::size_t length = 0; length < chain.size(); ++length) {
    const auto result = parse_certificates(to_bytes(chain.substr(0, length)), "prefix");
    if (const auto* certificates = std::get_if<std::vector<CertificateInfo>>(&result)) {
      // Only a cut within the final END line or after it can still hold whole blocks.
      ASSERT_LE(certificates->size(), 2u);
      for (std::size_t i = 0; i < certificates->size(); ++i) EXPECT_EQ((*certificates)[i], full[i]);
    }
  }
}

TEST(CertificateHostileInput, RandomMutationsOfDerAndPem) {
  std::mt19937 random(20311);
  const Bytes der = der_of(pki().plc.get());
  const Bytes pem = to_bytes(pem_of(pki().plc.get()) + pem_of(pki().ca.get()));
  int parsed = 0;
  for (int round = 0; round < 4000; ++round) {
    Bytes input = round % 2 == 0 ? der : pem;
    const int edits = 1 + static_cast<int>(random() % 4);
    for (int e = 0; e < edits && !input.empty(); ++e) {
      const std::size_t at = random() % input.size();
      switch (random() % 4) {
        case 0:
          input[at] ^= static_cast<std::uint8_t>(1u << (random() % 8));
          break;
        case 1:
          input[at] = static_cast<std::uint8_t>(random());
          break;
        case 2:
          input.insert(input.begin() + at, static_cast<std::uint8_t>(random()));
          break;
        case 3:
          input.erase(input.begin() + at);
          break;
      }
    }
    const auto result = parse_certificates(input, "mutant");
    if (const auto* certificates = std::get_if<std::vector<CertificateInfo>>(&result)) {
      ++parsed;
      expect_consistent(*certificates);
    } else {
      EXPECT_FALSE(std::get<FileError>(result).reason.empty());
    }
    const auto crl = parse_crl(input, "mutant");
    EXPECT_TRUE(std::holds_alternative<FileError>(crl));
  }
  // Flipped bits in a signature or in base64 line breaks still parse: some must have.
  EXPECT_GT(parsed, 0);
}

// ---------------------------------------------------------------------------------------------
// Files

class CertificateFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("certstore_test_" + std::to_string(::getpid()) + "_" + test->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path write(const std::string& name, const Bytes& bytes) {
    const auto path = dir_ / name;
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    return path;
  }

  std::filesystem::path dir_;
};

TEST_F(CertificateFiles, DerAndPemFiles) {
  const auto der_path = write("plc1.der", der_of(pki().plc.get()));
  const auto pem_path =
      write("chain.pem", to_bytes(pem_of(pki().plc.get()) + pem_of(pki().ca.get())));
  const auto from_der = read_certificate_file(der_path);
  const auto from_pem = read_certificate_file(pem_path);
  ASSERT_TRUE(std::holds_alternative<std::vector<CertificateInfo>>(from_der))
      << reason_of(from_der);
  ASSERT_TRUE(std::holds_alternative<std::vector<CertificateInfo>>(from_pem))
      << reason_of(from_pem);
  const auto& chain = std::get<std::vector<CertificateInfo>>(from_pem);
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(std::get<std::vector<CertificateInfo>>(from_der).front(), chain.front());
}

TEST_F(CertificateFiles, ErrorsNameThePath) {
  const auto path = write("broken.der", Bytes{0x30, 0x82, 0x01});
  const auto result = read_certificate_file(path);
  ASSERT_TRUE(std::holds_alternative<FileError>(result));
  EXPECT_EQ(std::get<FileError>(result).source, path.string());
  EXPECT_EQ(std::get<FileError>(result).to_string(),
            path.string() + ": DER certificate truncated or malformed: header too long");
}

TEST_F(CertificateFiles, MissingFile) {
  const auto path = dir_ / "missing.der";
  const auto result = read_certificate_file(path);
  ASSERT_TRUE(std::holds_alternative<FileError>(result));
  EXPECT_EQ(std::get<FileError>(result).to_string(),
            path.string() + ": cannot open: No such file or directory");
}

TEST_F(CertificateFiles, DirectoryInsteadOfFile) {
  std::filesystem::create_directory(dir_ / "trusted.der");
  EXPECT_EQ(reason_of(read_certificate_file(dir_ / "trusted.der")), "cannot read: Is a directory");
  EXPECT_EQ(reason_of(read_crl_file(dir_)), "cannot read: Is a directory");
}

TEST_F(CertificateFiles, FifoIsRefusedWithoutWaitingForAWriter) {
  const auto path = dir_ / "pipe.der";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  EXPECT_EQ(reason_of(read_certificate_file(path)), "not a regular file");
}

TEST_F(CertificateFiles, EmptyFile) {
  EXPECT_EQ(reason_of(read_certificate_file(write("empty.der", {}))), "empty file");
  EXPECT_EQ(reason_of(read_crl_file(write("empty.crl", {}))), "empty file");
}

TEST_F(CertificateFiles, OversizeFiles) {
  EXPECT_EQ(reason_of(read_certificate_file(write("big.pem", Bytes(70000, 'A')))),
            "file is 70000 bytes, the limit is 65536");
  EXPECT_EQ(reason_of(read_certificate_file(write("limit.pem", Bytes(65536, 'A')))),
            "not a certificate (neither DER nor PEM)")
      << "exactly the limit is read";
  EXPECT_EQ(reason_of(read_crl_file(write("big.crl", Bytes(kMaxCrlFileSize + 1, 'A')))),
            "file is 1048577 bytes, the limit is 1048576");
}

TEST_F(CertificateFiles, CrlFiles) {
  const auto der_path = write("plant-a.crl", der_of(pki().crl.get()));
  const auto pem_path = write("plant-a.crl.pem", to_bytes(pem_of(pki().crl.get())));
  const auto from_der = read_crl_file(der_path);
  const auto from_pem = read_crl_file(pem_path);
  ASSERT_TRUE(std::holds_alternative<CrlInfo>(from_der)) << reason_of(from_der);
  ASSERT_TRUE(std::holds_alternative<CrlInfo>(from_pem)) << reason_of(from_pem);
  EXPECT_EQ(std::get<CrlInfo>(from_der), std::get<CrlInfo>(from_pem));
  EXPECT_EQ(reason_of(read_crl_file(write("plc.der", der_of(pki().plc.get())))),
            "DER data is a certificate, not a CRL");
}

// ---------------------------------------------------------------------------------------------
// CRLs

TEST(Crl, Fields) {
  const Bytes der = der_of(pki().crl.get());
  const CrlInfo crl = parse_crl_ok(der);
  EXPECT_EQ(crl.issuer, "CN=Plant A Root CA,O=Plant A,C=DE");
  EXPECT_EQ(crl.this_update, TimePoint(at(2031y / January / 1)));
  ASSERT_TRUE(crl.next_update.has_value());
  EXPECT_EQ(*crl.next_update, TimePoint(at(2031y / February / 1)));
  EXPECT_EQ(crl.revoked_serials_hex, (std::vector<std::string>{"1234", "05"}));
  EXPECT_EQ(crl.der, der);
  EXPECT_EQ(crl.sha256, test_pki::sha256_hex(der));
  // A revoked serial compares equal to the certificate's own serial text.
  EXPECT_EQ(crl.revoked_serials_hex.front(), parse_one(der_of(pki().plc.get())).serial_hex);
  EXPECT_EQ(parse_crl_ok(to_bytes(pem_of(pki().crl.get()))), crl);
}

TEST(Crl, WithoutNextUpdateAndWithoutEntries) {
  CrlSpec spec;
  spec.this_update = at(2031y / January / 1);
  const CrlPtr empty = test_pki::make_crl(spec, pki().ca.get(), pki().ca_key.get());
  const CrlInfo crl = parse_crl_ok(der_of(empty.get()));
  EXPECT_FALSE(crl.next_update.has_value());
  EXPECT_TRUE(crl.revoked_serials_hex.empty());
}

TEST(Crl, Errors) {
  const Bytes der = der_of(pki().crl.get());
  const std::string pem = pem_of(pki().crl.get());
  EXPECT_EQ(crl_error({}), "empty input");
  EXPECT_EQ(crl_error(to_bytes("revoked: 1234\n")), "not a CRL (neither DER nor PEM)");
  EXPECT_EQ(crl_error(concat(der, Bytes(64, 0))), "64 trailing bytes after the DER CRL");
  EXPECT_EQ(crl_error(der_of(pki().ca.get())), "DER data is a certificate, not a CRL");
  EXPECT_EQ(crl_error(to_bytes(pem_of(pki().ca.get()))),
            "PEM block 1 is \"CERTIFICATE\", expected \"X509 CRL\"");
  EXPECT_EQ(crl_error(to_bytes(pem + pem)), "PEM block 2 is a second CRL; a CRL file holds one");
  EXPECT_EQ(crl_error(to_bytes(pem + pem_of(pki().ca.get()))),
            "PEM block 2 is \"CERTIFICATE\", expected \"X509 CRL\"");
  EXPECT_EQ(crl_error(Bytes(kMaxCrlFileSize + 1, '-')),
            "input is 1048577 bytes, the limit is 1048576");
  for (std::size_t length = 1; length < der.size(); ++length) {
    const std::string reason = crl_error(Bytes(der.begin(), der.begin() + length));
    EXPECT_TRUE(reason.starts_with("DER CRL truncated or malformed: ")) << length << ": " << reason;
  }
}

}  // namespace
}  // namespace scada::certstore
