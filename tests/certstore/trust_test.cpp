// Trust decisions (DESIGN.md §5) through the store as it is used: real folders in a temporary
// project, certificates made by the test PKI at chosen dates, every row of the decision table,
// quarantine, trust on first use, snapshots and expiry. The watcher has its own tests.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/objects.h>

#include "certstore/certstore.h"
#include "store_test_support.h"

namespace scada::certstore {

void PrintTo(const Decision& d, std::ostream* os) {
  *os << "{" << verdict_name(d.verdict) << ": " << d.detail << "}";
}

namespace {

using namespace std::chrono;
using namespace std::chrono_literals;
using namespace testing;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

mode_t mode_of(const std::filesystem::path& path) {
  struct stat status {};
  EXPECT_EQ(::stat(path.c_str(), &status), 0) << path;
  return status.st_mode & 07777;
}

class TrustTest : public ::testing::Test {
 protected:
  TempDir project;
  StoreLayout layout = StoreLayout::for_project(project.path());
  Issued root = make_ca("Plant A Root CA");
  // Issued by the root for "plc1.plant.local" and 192.168.0.10.
  Issued plc = make_plc("PLC1", root, {{"plc1.plant.local"}, {"192.168.0.10"}});
  std::unique_ptr<CertificateStore> store;

  TrustTest() { ensure_layout(layout); }  // files go in before the store opens

  CertificateStore& open(StoreOptions options = {}) {
    store.reset();
    store = std::make_unique<CertificateStore>(layout, options);
    return *store;
  }
  void import_root(const Issued& ca, const std::string& name = "root.der") {
    write_file(layout.roots / name, ca.der);
  }
  void pin(const Issued& certificate, const std::string& name = "plc.der") {
    write_file(layout.trusted() / name, certificate.der);
  }
  Decision verify(const Issued& leaf, const PeerIdentity& who, TimePoint now = kNow,
                  bool live_session = false) {
    return store->snapshot()->verify({leaf.der}, who, now, live_session);
  }
  Decision decide(const Issued& leaf, const PeerIdentity& who, TimePoint now = kNow) {
    return store->decide({leaf.der}, who, now);
  }
};

// ---------------------------------------------------------------------------------------------
// Layout

TEST(StoreLayoutTest, ForProjectNamesTheFoldersOfDesignSection3) {
  const auto layout = StoreLayout::for_project("/srv/plant");
  EXPECT_EQ(layout.store, "/srv/plant/device-certificate-store");
  EXPECT_EQ(layout.roots, "/srv/plant/pki/roots");
  EXPECT_EQ(layout.own, "/srv/plant/pki/own");
  EXPECT_EQ(layout.trusted(), "/srv/plant/device-certificate-store/trusted");
  EXPECT_EQ(layout.crl(), "/srv/plant/device-certificate-store/trusted/crl");
  EXPECT_EQ(layout.untrusted(), "/srv/plant/device-certificate-store/untrusted");
}

TEST(StoreLayoutTest, EnsureLayoutCreatesMissingFoldersOwnerOnly) {
  TempDir project;
  StoreLayout layout = StoreLayout::for_project(project.path() / "new");
  layout.store = project.path() / "elsewhere" / "store";  // the path is configurable
  ensure_layout(layout);
  for (const auto& folder : {project.path() / "new", project.path() / "new" / "pki", layout.roots,
                             layout.own, project.path() / "elsewhere", layout.store,
                             layout.trusted(), layout.crl(), layout.untrusted()}) {
    EXPECT_TRUE(std::filesystem::is_directory(folder)) << folder;
    EXPECT_EQ(mode_of(folder), 0700u) << folder;
  }
  ensure_layout(layout);  // again: nothing to do
}

TEST(StoreLayoutTest, EnsureLayoutLeavesExistingFoldersAsTheyAre) {
  TempDir project;
  const auto layout = StoreLayout::for_project(project.path());
  std::filesystem::create_directories(layout.roots);
  ::chmod(layout.roots.c_str(), 0750);
  ensure_layout(layout);
  EXPECT_EQ(mode_of(layout.roots), 0750u);
}

TEST(StoreLayoutTest, EnsureLayoutNamesTheFolderItCannotCreate) {
  TempDir project;
  const auto layout = StoreLayout::for_project(project.path());
  std::filesystem::create_directories(layout.store);
  write_file(layout.trusted(), std::string("not a folder"));
  try {
    ensure_layout(layout);
    FAIL() << "no exception";
  } catch (const std::runtime_error& error) {
    EXPECT_THAT(error.what(), HasSubstr(layout.trusted().string()));
    EXPECT_THAT(error.what(), HasSubstr("not a folder"));
  }
  EXPECT_THROW(CertificateStore{layout}, std::runtime_error);
}

TEST(VerdictTest, NamesAreTheDocumentedOnes) {
  EXPECT_STREQ(verdict_name(Verdict::accepted), "accepted");
  EXPECT_STREQ(verdict_name(Verdict::untrusted_certificate), "untrusted-certificate");
  EXPECT_STREQ(verdict_name(Verdict::unknown_ca), "unknown-ca");
  EXPECT_STREQ(verdict_name(Verdict::expired), "expired");
  EXPECT_STREQ(verdict_name(Verdict::not_yet_valid), "not-yet-valid");
  EXPECT_STREQ(verdict_name(Verdict::revoked), "revoked");
  EXPECT_STREQ(verdict_name(Verdict::identity_mismatch), "identity-mismatch");
  EXPECT_STREQ(verdict_name(Verdict::bad_certificate), "bad-certificate");
  EXPECT_STREQ(event_kind_name(StoreEvent::Kind::snapshot_changed), "snapshot-changed");
  EXPECT_STREQ(event_kind_name(StoreEvent::Kind::file_problem), "file-problem");
  EXPECT_STREQ(event_kind_name(StoreEvent::Kind::quarantined), "quarantined");
  EXPECT_STREQ(event_kind_name(StoreEvent::Kind::trust_pinned), "trust-pinned");
  EXPECT_STREQ(event_kind_name(StoreEvent::Kind::expiry_warning), "expiry-warning");
  EXPECT_STREQ(event_kind_name(StoreEvent::Kind::expired), "expired");
}

// ---------------------------------------------------------------------------------------------
// Fail closed

TEST_F(TrustTest, AnEmptyStoreAcceptsNothing) {
  open();
  EXPECT_TRUE(std::filesystem::is_directory(layout.untrusted()));  // made by the store
  const auto snapshot = store->snapshot();
  ASSERT_NE(snapshot, nullptr);
  EXPECT_EQ(snapshot->version(), 1u);
  EXPECT_THAT(snapshot->roots(), IsEmpty());
  EXPECT_THAT(snapshot->trusted(), IsEmpty());
  EXPECT_EQ(verify(plc, peer("plc1.plant.local")).verdict, Verdict::unknown_ca);
  EXPECT_EQ(verify(make_self_signed("PLC9"), peer("plc9")).verdict, Verdict::untrusted_certificate);
  EXPECT_EQ(verify(root, peer("plc1.plant.local")).verdict, Verdict::untrusted_certificate);
}

TEST_F(TrustTest, RefusesWhatIsNotACertificate) {
  open();
  const auto garbage =
      store->snapshot()->verify({Bytes{0x30, 0x03, 0x02, 0x01}}, peer("plc1"), kNow);
  EXPECT_EQ(garbage.verdict, Verdict::bad_certificate);
  EXPECT_THAT(garbage.detail, HasSubstr("the PLC's certificate"));
  EXPECT_FALSE(garbage.peer);
  EXPECT_EQ(store->snapshot()->verify({}, peer("plc1"), kNow).verdict, Verdict::bad_certificate);
  EXPECT_EQ(store->snapshot()->verify({test_pki::to_bytes(plc.pem())}, peer("plc1"), kNow).verdict,
            Verdict::bad_certificate);
  EXPECT_EQ(store->snapshot()->verify(std::vector<Bytes>(11, plc.der), peer("plc1"), kNow).verdict,
            Verdict::bad_certificate);
  // A malformed certificate after a good one.
  import_root(root);
  store->reload();
  EXPECT_EQ(store->snapshot()
                ->verify({plc.der, Bytes{0x30, 0x00}}, peer("plc1.plant.local"), kNow)
                .verdict,
            Verdict::bad_certificate);
  // Nothing was quarantined for any of them.
  EXPECT_THAT(file_names(layout.untrusted()), IsEmpty());
}

// ---------------------------------------------------------------------------------------------
// Pinned certificates

TEST_F(TrustTest, AcceptsACertificatePinnedInTrustedWhateverItsNames) {
  const Issued self = make_self_signed("PLC1");
  pin(self);
  open();
  ASSERT_EQ(store->snapshot()->trusted().size(), 1u);
  EXPECT_EQ(store->snapshot()->trusted()[0].sha256, self.sha256);
  const Decision decision = verify(self, peer("10.0.0.99"));  // the pin is the identity
  EXPECT_TRUE(decision.ok()) << decision.detail;
  EXPECT_THAT(decision.detail, HasSubstr("pinned in trusted/"));
  EXPECT_THAT(decision.detail, HasSubstr(self.sha256));
  ASSERT_TRUE(decision.peer);
  EXPECT_EQ(decision.peer->sha256, self.sha256);
}

TEST_F(TrustTest, AcceptsPinsInPemFilesOfEveryExtension) {
  const Issued a = make_self_signed("PLC-A"), b = make_self_signed("PLC-B"),
               c = make_self_signed("PLC-C");
  write_file(layout.trusted() / "a.PEM", a.pem() + b.pem());  // a bundle: two pins
  write_file(layout.trusted() / "c.crt", c.pem());
  write_file(layout.trusted() / "ignored.txt", c.der);  // not a certificate's name
  open();
  EXPECT_TRUE(verify(a, peer("x")).ok());
  EXPECT_TRUE(verify(b, peer("x")).ok());
  EXPECT_TRUE(verify(c, peer("x")).ok());
  EXPECT_EQ(store->snapshot()->trusted().size(), 3u);
}

TEST_F(TrustTest, AcceptsAPartnerCertificatePinnedForTheConnection) {
  const Issued self = make_self_signed("PLC1");
  open();
  const Decision pinned = verify(self, peer("plc1", "", {self.der}));
  EXPECT_TRUE(pinned.ok()) << pinned.detail;
  EXPECT_THAT(pinned.detail, HasSubstr("partner certificate of connection PLC1"));
  // Another connection, without that partner certificate, does not trust it.
  EXPECT_EQ(verify(self, peer("plc1")).verdict, Verdict::untrusted_certificate);
  // A partner certificate in PEM counts too.
  EXPECT_TRUE(verify(self, peer("plc1", "", {test_pki::to_bytes(self.pem())})).ok());
}

TEST_F(TrustTest, ACaCertificateInTrustedPinsItselfButIssuesNothing) {
  pin(root, "ca.der");
  open();
  EXPECT_TRUE(verify(root, peer("anything")).ok());
  EXPECT_EQ(verify(plc, peer("plc1.plant.local")).verdict, Verdict::unknown_ca);
}

// ---------------------------------------------------------------------------------------------
// CA-issued certificates and identity

TEST_F(TrustTest, AcceptsACaIssuedCertificateWhoseDnsNameIsTheAddress) {
  import_root(root);
  open();
  ASSERT_EQ(store->snapshot()->roots().size(), 1u);
  for (const char* address : {"plc1.plant.local", "PLC1.Plant.Local", "plc1.plant.local."}) {
    const Decision decision = verify(plc, peer(address));
    EXPECT_TRUE(decision.ok()) << address << ": " << decision.detail;
  }
  EXPECT_THAT(verify(plc, peer("plc1.plant.local")).detail, HasSubstr("Plant A Root CA"));
}

TEST_F(TrustTest, AcceptsACaIssuedCertificateWhoseDnsNameIsThePlcName) {
  import_root(root);
  open();
  const Decision decision = verify(plc, peer("172.16.0.1", "plc1.plant.local"));
  EXPECT_TRUE(decision.ok()) << decision.detail;
}

TEST_F(TrustTest, ComparesIpAddressesAsAddresses) {
  const Issued v6 = make_plc("PLC6", root, {{}, {"fd00::a"}}, {0x20});
  import_root(root);
  open();
  EXPECT_TRUE(verify(plc, peer("192.168.0.10")).ok());
  EXPECT_TRUE(verify(plc, peer("::ffff:192.168.0.10")).ok());
  EXPECT_EQ(verify(plc, peer("192.168.0.11")).verdict, Verdict::identity_mismatch);
  for (const char* address : {"fd00::a", "FD00:0:0::A", "[fd00::a]", "fd00:0:0:0:0:0:0:a"}) {
    EXPECT_TRUE(verify(v6, peer(address)).ok()) << address;
  }
  EXPECT_EQ(verify(v6, peer("fd00::b")).verdict, Verdict::identity_mismatch);
  // An address is never compared as text with a DNS name, nor a name with an IP address.
  const Issued dns_ip = make_plc("PLC7", root, {{"10.0.0.7"}, {}}, {0x21});
  EXPECT_EQ(verify(dns_ip, peer("10.0.0.7")).verdict, Verdict::identity_mismatch);
}

TEST_F(TrustTest, RefusesACaIssuedCertificateOfAnotherPlc) {
  import_root(root);
  open();
  const Decision decision = verify(plc, peer("plc2.plant.local", "PLC2"));
  EXPECT_EQ(decision.verdict, Verdict::identity_mismatch);
  EXPECT_THAT(decision.detail, HasSubstr("DNS:plc1.plant.local"));
  EXPECT_THAT(decision.detail, HasSubstr("plc2.plant.local"));
  // Wildcards are not honoured.
  const Issued wildcard = make_plc("PLC8", root, {{"*.plant.local"}, {}}, {0x22});
  EXPECT_EQ(verify(wildcard, peer("plc8.plant.local")).verdict, Verdict::identity_mismatch);
}

TEST_F(TrustTest, ACommonNameIsNotAnIdentity) {
  const Issued cn_only = make_plc("plc3.plant.local", root, {}, {0x23});
  import_root(root);
  open();
  const Decision decision = verify(cn_only, peer("plc3.plant.local", "plc3.plant.local"));
  EXPECT_EQ(decision.verdict, Verdict::identity_mismatch);
  EXPECT_THAT(decision.detail, HasSubstr("no subjectAltName"));
}

TEST_F(TrustTest, AcceptsAChainThroughAnIntermediateThePlcSends) {
  const Issued intermediate = make_ca("Plant A Issuing CA", &root);
  const Issued leaf = make_plc("PLC4", intermediate, {{"plc4"}, {}}, {0x30});
  import_root(root);
  open();
  EXPECT_EQ(verify(leaf, peer("plc4")).verdict, Verdict::unknown_ca);
  const Decision decision =
      store->snapshot()->verify({leaf.der, intermediate.der}, peer("plc4"), kNow);
  EXPECT_TRUE(decision.ok()) << decision.detail;
}

TEST_F(TrustTest, AnImportedIntermediateIsAnAnchorByItself) {
  const Issued intermediate = make_ca("Plant A Issuing CA", &root);
  const Issued leaf = make_plc("PLC4", intermediate, {{"plc4"}, {}}, {0x30});
  import_root(intermediate, "issuing.pem");
  open();
  EXPECT_TRUE(verify(leaf, peer("plc4")).ok());
}

TEST_F(TrustTest, ACertificateNotMeantForATlsServerIsBad) {
  // extendedKeyUsage = clientAuth only: SEQUENCE { OID 1.3.6.1.5.5.7.3.2 }.
  test_pki::CertificateSpec spec;
  spec.subject = {{"CN", "Client"}};
  spec.serial = {0x55};
  spec.not_before = at(2030y / January / 1);
  spec.not_after = at(2035y / January / 1);
  spec.ca = false;
  spec.dns_names = {"client"};
  spec.raw_extensions = {
      {NID_ext_key_usage,
       {0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02}}};
  const auto key = test_pki::make_key(test_pki::KeyKind::ec_p256);
  const auto client =
      test_pki::make_certificate(spec, key.get(), root.certificate.get(), root.key.get());
  import_root(root);
  open();
  const Decision decision =
      store->snapshot()->verify({test_pki::der_of(client.get())}, peer("client"), kNow);
  EXPECT_EQ(decision.verdict, Verdict::bad_certificate);
  EXPECT_THAT(decision.detail, HasSubstr("not meant for a TLS server"));
}

TEST_F(TrustTest, AQuarantineThatCannotBeWrittenIsSaid) {
  const Issued self = make_self_signed("PLC1");
  open();
  EventRecorder recorder(*store);
  std::filesystem::remove(layout.untrusted());
  write_file(layout.untrusted(), std::string("a file where the folder should be"));
  const Decision decision = decide(self, peer("plc1"));
  EXPECT_EQ(decision.verdict, Verdict::untrusted_certificate);
  EXPECT_FALSE(decision.quarantined);
  EXPECT_THAT(decision.detail, HasSubstr("could not be quarantined"));
  EXPECT_THAT(decision.detail, HasSubstr("Not a directory"));
  const auto problems = recorder.events(StoreEvent::Kind::file_problem);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].file, layout.untrusted() / (self.sha256 + ".der"));
}

TEST_F(TrustTest, APartnerCaIssuesForItsConnectionOnly) {
  open();
  const Decision decision = verify(plc, peer("plc1.plant.local", "", {root.der}));
  EXPECT_TRUE(decision.ok()) << decision.detail;
  EXPECT_EQ(verify(plc, peer("plc1.plant.local")).verdict, Verdict::unknown_ca);
  // The identity still has to match.
  EXPECT_EQ(verify(plc, peer("plc2", "", {root.der})).verdict, Verdict::identity_mismatch);
}

TEST_F(TrustTest, ACertificateThePlcSendsIsNeverAnAnchor) {
  open();
  const Decision decision =
      store->snapshot()->verify({plc.der, root.der}, peer("plc1.plant.local"), kNow);
  EXPECT_EQ(decision.verdict, Verdict::unknown_ca);
}

TEST_F(TrustTest, ANonCaCertificateInRootsIsAProblemAndLeftOut) {
  const Issued self = make_self_signed("PLC5", {{"plc5"}, {}});
  write_file(layout.roots / "plc5.der", self.der);
  import_root(root);
  open();
  EventRecorder recorder(*store);
  store->reload();
  EXPECT_EQ(store->snapshot()->roots().size(), 1u);
  EXPECT_EQ(verify(self, peer("plc5")).verdict, Verdict::untrusted_certificate);
  const auto problems = recorder.events(StoreEvent::Kind::file_problem);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].file, layout.roots / "plc5.der");
  EXPECT_THAT(problems[0].detail, HasSubstr("not a CA certificate"));
}

// ---------------------------------------------------------------------------------------------
// Quarantine

TEST_F(TrustTest, QuarantinesAnUnknownSelfSignedCertificateByItsFingerprint) {
  const Issued self = make_self_signed("PLC1", {{}, {"192.168.0.10"}});
  open();
  EventRecorder recorder(*store);
  const Decision decision = decide(self, peer("192.168.0.10"));
  EXPECT_EQ(decision.verdict, Verdict::untrusted_certificate);
  const auto file = layout.untrusted() / (self.sha256 + ".der");
  ASSERT_TRUE(decision.quarantined);
  EXPECT_EQ(*decision.quarantined, file);
  EXPECT_EQ(read_file(file), self.der);
  EXPECT_EQ(mode_of(file), 0644u);
  EXPECT_THAT(file_names(layout.untrusted()), ElementsAre(self.sha256 + ".der"));  // no temp
  EXPECT_THAT(decision.detail, HasSubstr("self-signed and not trusted"));
  EXPECT_THAT(decision.detail, HasSubstr("untrusted/" + self.sha256 + ".der"));
  EXPECT_THAT(decision.detail, HasSubstr("move it to trusted/"));

  const auto events = recorder.events(StoreEvent::Kind::quarantined);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].file, file);
  ASSERT_TRUE(events[0].certificate);
  EXPECT_EQ(events[0].certificate->sha256, self.sha256);
  EXPECT_EQ(events[0].certificate->subject, "CN=PLC1,O=Plant A");
  EXPECT_EQ(events[0].certificate->issuer, "CN=PLC1,O=Plant A");
  EXPECT_EQ(events[0].certificate->not_after, self.info().not_after);
  for (const char* part : {"CN=PLC1,O=Plant A", "issued by CN=PLC1,O=Plant A",
                           "2030-01-01T00:00:00Z", "2035-01-01T00:00:00Z", "connection PLC1"}) {
    EXPECT_THAT(events[0].detail, HasSubstr(part));
  }
  EXPECT_THAT(events[0].detail, HasSubstr(self.sha256));
  // Quarantine is no trust change.
  EXPECT_EQ(store->snapshot()->version(), 1u);
  store->reload();
  EXPECT_EQ(store->snapshot()->version(), 1u);
  EXPECT_THAT(recorder.events(StoreEvent::Kind::snapshot_changed), IsEmpty());
}

TEST_F(TrustTest, QuarantinesACertificateOfAnUnknownCaAndSaysToImport) {
  open();
  EventRecorder recorder(*store);
  const Decision decision = decide(plc, peer("plc1.plant.local"));
  EXPECT_EQ(decision.verdict, Verdict::unknown_ca);
  EXPECT_THAT(decision.detail, HasSubstr("import the project's certificates"));
  EXPECT_THAT(decision.detail, HasSubstr("Plant A Root CA"));
  ASSERT_TRUE(decision.quarantined);
  EXPECT_EQ(read_file(*decision.quarantined), plc.der);
  EXPECT_EQ(recorder.events(StoreEvent::Kind::quarantined).size(), 1u);
}

// A process killed between writing its temporary file and renaming it (SIGKILL, power loss)
// leaves ".NAME.tmp-PID-N"; the next store to open removes it once that PID no longer runs.
TEST_F(TrustTest, TemporaryFilesOfADeadWriterAreRemovedOnOpen) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  const std::string dead = std::to_string(child);
  const auto stale_quarantine = layout.untrusted() / ("." + plc.sha256 + ".der.tmp-" + dead + "-0");
  const auto stale_pin = layout.trusted() / (".first-use-plc1.der.tmp-" + dead + "-7");
  const auto running =
      layout.untrusted() / (".other.der.tmp-" + std::to_string(::getppid()) + "-1");
  const auto operators = layout.untrusted() / ".notes.tmp-12x-1";  // not one of ours: kept
  for (const auto& file : {stale_quarantine, stale_pin, running, operators}) {
    write_file(file, std::string("half written"));
  }
  open();
  EXPECT_FALSE(std::filesystem::exists(stale_quarantine));
  EXPECT_FALSE(std::filesystem::exists(stale_pin));
  EXPECT_TRUE(std::filesystem::exists(running));
  EXPECT_TRUE(std::filesystem::exists(operators));
}

TEST_F(TrustTest, QuarantiningTheSameCertificateAgainWritesNothing) {
  const Issued self = make_self_signed("PLC1");
  open();
  EventRecorder recorder(*store);
  decide(self, peer("plc1"));
  const auto first_write =
      std::filesystem::last_write_time(layout.untrusted() / (self.sha256 + ".der"));
  const Decision again = decide(self, peer("plc1"));
  store->reload();
  const Decision after_reload = decide(self, peer("plc1"));
  EXPECT_THAT(file_names(layout.untrusted()), ElementsAre(self.sha256 + ".der"));
  EXPECT_EQ(std::filesystem::last_write_time(layout.untrusted() / (self.sha256 + ".der")),
            first_write);
  EXPECT_EQ(recorder.events(StoreEvent::Kind::quarantined).size(), 1u);
  ASSERT_TRUE(again.quarantined);
  EXPECT_THAT(again.detail, HasSubstr("is quarantined as untrusted/"));
  EXPECT_TRUE(after_reload.quarantined);
}

TEST_F(TrustTest, QuarantineKeepsTheNewestFilesUpToTheCap) {
  StoreOptions options;
  options.quarantine_cap = 3;
  const Issued operators = make_self_signed("Operator's");
  write_file(layout.untrusted() / "kept-by-operator.der", operators.der);
  open(options);
  EventRecorder recorder(*store);
  std::vector<Issued> presented;
  const auto base = std::filesystem::file_time_type::clock::now() - 1h;
  for (int i = 0; i < 5; ++i) {
    presented.push_back(make_self_signed("PLC" + std::to_string(i)));
    const Decision decision = decide(presented.back(), peer("plc"));
    ASSERT_TRUE(decision.quarantined) << decision.detail;
    // Distinct ages: file times are coarser than a loop.
    std::filesystem::last_write_time(*decision.quarantined, base + i * 1min);
  }
  EXPECT_THAT(
      file_names(layout.untrusted()),
      ::testing::UnorderedElementsAre(presented[2].sha256 + ".der", presented[3].sha256 + ".der",
                                      presented[4].sha256 + ".der", "kept-by-operator.der"));
  const auto events = recorder.events(StoreEvent::Kind::quarantined);
  ASSERT_EQ(events.size(), 5u);
  EXPECT_THAT(events[3].detail,
              HasSubstr("deleted the oldest quarantined file " + presented[0].sha256 + ".der"));
}

// ---------------------------------------------------------------------------------------------
// Revocation

TEST_F(TrustTest, RefusesACertificateRevokedByACrl) {
  import_root(root);
  write_file(layout.crl() / "root.crl", make_crl(root, {{0x10}}));  // plc's serial
  open();
  ASSERT_EQ(store->snapshot()->crls().size(), 1u);
  const Decision decision = verify(plc, peer("plc1.plant.local"));
  EXPECT_EQ(decision.verdict, Verdict::revoked);
  EXPECT_THAT(decision.detail, HasSubstr("revoked by a CRL"));
  // Another certificate of the same CA is not.
  const Issued other = make_plc("PLC2", root, {{"plc2"}, {}}, {0x11});
  EXPECT_TRUE(verify(other, peer("plc2")).ok());
  // Past the CRL's nextUpdate, what it lists stays revoked.
  EXPECT_EQ(verify(plc, peer("plc1.plant.local"), kNow + years(2)).verdict, Verdict::revoked);
  // And decide quarantines nothing for it.
  EXPECT_EQ(decide(plc, peer("plc1.plant.local")).verdict, Verdict::revoked);
  EXPECT_THAT(file_names(layout.untrusted()), IsEmpty());
}

TEST_F(TrustTest, ReadsCrlsInPem) {
  import_root(root);
  write_file(layout.crl() / "root.pem", make_crl_pem(root, {{0x10}}));
  open();
  EXPECT_EQ(verify(plc, peer("plc1.plant.local")).verdict, Verdict::revoked);
}

TEST_F(TrustTest, AnIssuerWithoutACrlIsNoError) {
  const Issued other_ca = make_ca("Plant B Root CA");
  const Issued other = make_plc("PLC-B", other_ca, {{"plcb"}, {}}, {0x10});
  import_root(root);
  import_root(other_ca, "other.der");
  write_file(layout.crl() / "root.der", make_crl(root, {{0x99}}));
  open();
  EXPECT_TRUE(verify(plc, peer("plc1.plant.local")).ok());  // its CA's CRL does not list it
  EXPECT_TRUE(verify(other, peer("plcb")).ok());            // its CA has no CRL at all
}

TEST_F(TrustTest, ACrlNotSignedByItsCaIsAProblemAndLeftOut) {
  const Issued impostor = make_ca("Plant A Root CA");  // same name, another key
  import_root(root);
  write_file(layout.crl() / "forged.der", make_crl(impostor, {{0x10}}));
  open();
  EventRecorder recorder(*store);
  store->reload();
  EXPECT_THAT(store->snapshot()->crls(), IsEmpty());
  EXPECT_TRUE(verify(plc, peer("plc1.plant.local")).ok());
  const auto problems = recorder.events(StoreEvent::Kind::file_problem);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].file, layout.crl() / "forged.der");
  EXPECT_THAT(problems[0].detail, HasSubstr("not signed by"));
}

TEST_F(TrustTest, ACrlThatCannotBeCheckedFailsClosed) {
  // A partner CA's CRL is checked when a chain is verified: one signed by another key makes
  // the revocation status unknown.
  const Issued impostor = make_ca("Plant A Root CA");
  write_file(layout.crl() / "forged.der", make_crl(impostor, {}));
  open();
  const Decision decision = verify(plc, peer("plc1.plant.local", "", {root.der}));
  EXPECT_EQ(decision.verdict, Verdict::revoked);
  EXPECT_THAT(decision.detail, HasSubstr("cannot be checked"));
}

TEST_F(TrustTest, MovingAPinnedFileToUntrustedRevokesIt) {
  const Issued self = make_self_signed("PLC1");
  pin(self, "plc1.der");
  open();
  EventRecorder recorder(*store);
  ASSERT_TRUE(verify(self, peer("plc1")).ok());
  std::filesystem::rename(layout.trusted() / "plc1.der", layout.untrusted() / "plc1.der");
  store->reload();
  const Decision decision = decide(self, peer("plc1"));
  EXPECT_EQ(decision.verdict, Verdict::revoked);
  EXPECT_THAT(decision.detail, HasSubstr("moved to untrusted/"));
  EXPECT_EQ(store->snapshot()->revoked_by_move().count(self.sha256), 1u);
  EXPECT_THAT(file_names(layout.untrusted()), ElementsAre("plc1.der"));  // not quarantined again
  // Moved back: trusted again.
  std::filesystem::rename(layout.untrusted() / "plc1.der", layout.trusted() / "plc1.der");
  store->reload();
  EXPECT_TRUE(verify(self, peer("plc1")).ok());
  EXPECT_THAT(store->snapshot()->revoked_by_move(), IsEmpty());
  ASSERT_EQ(recorder.events(StoreEvent::Kind::snapshot_changed).size(), 2u);
  EXPECT_THAT(recorder.events(StoreEvent::Kind::snapshot_changed)[0].detail,
              HasSubstr("revoked by moving to untrusted/ +plc1.der"));
}

TEST_F(TrustTest, AQuarantinedCertificateIsAcceptedOnceItsCaIsImported) {
  open();
  ASSERT_TRUE(decide(plc, peer("plc1.plant.local")).quarantined);
  import_root(root);
  store->reload();
  EXPECT_TRUE(verify(plc, peer("plc1.plant.local")).ok());
}

TEST_F(TrustTest, ManualTrustByCopyingTheQuarantinedFile) {
  const Issued self = make_self_signed("PLC1");
  open();
  const Decision refused = decide(self, peer("plc1"));
  ASSERT_TRUE(refused.quarantined);
  std::filesystem::copy_file(*refused.quarantined, layout.trusted() / "plc1.der");
  store->reload();
  EXPECT_TRUE(decide(self, peer("plc1")).ok());
  // Untrusted again by deleting the pin: the quarantine copy now marks it revoked.
  std::filesystem::remove(layout.trusted() / "plc1.der");
  store->reload();
  EXPECT_EQ(decide(self, peer("plc1")).verdict, Verdict::revoked);
}

// ---------------------------------------------------------------------------------------------
// Validity times

TEST_F(TrustTest, ExpiredAndNotYetValidAreRefusedForNewSessionsOnly) {
  const Validity past{at(2028y / January / 1), at(2031y / January / 1)};
  const Validity future{at(2031y / June / 1), at(2036y / January / 1)};
  const Issued pinned_expired = make_self_signed("PLC-E", {}, past);
  const Issued pinned_future = make_self_signed("PLC-F", {}, future);
  const Issued issued_expired = make_plc("PLC-E2", root, {{"plce2"}, {}}, {0x41}, past);
  const Issued issued_future = make_plc("PLC-F2", root, {{"plcf2"}, {}}, {0x42}, future);
  pin(pinned_expired, "e.der");
  pin(pinned_future, "f.der");
  import_root(root);
  open();

  const Decision expired = verify(pinned_expired, peer("plce"));
  EXPECT_EQ(expired.verdict, Verdict::expired);
  EXPECT_THAT(expired.detail, HasSubstr("expired on 2031-01-01T00:00:00Z"));
  const Decision future_pin = verify(pinned_future, peer("plcf"));
  EXPECT_EQ(future_pin.verdict, Verdict::not_yet_valid);
  EXPECT_THAT(future_pin.detail, HasSubstr("2031-06-01T00:00:00Z"));
  EXPECT_EQ(verify(issued_expired, peer("plce2")).verdict, Verdict::expired);
  EXPECT_EQ(verify(issued_future, peer("plcf2")).verdict, Verdict::not_yet_valid);

  for (const Issued* live : {&pinned_expired, &pinned_future}) {
    EXPECT_TRUE(verify(*live, peer("x"), kNow, true).ok());
  }
  EXPECT_TRUE(verify(issued_expired, peer("plce2"), kNow, true).ok());
  EXPECT_TRUE(verify(issued_future, peer("plcf2"), kNow, true).ok());
  // decide() quarantines none of them.
  EXPECT_EQ(decide(issued_expired, peer("plce2")).verdict, Verdict::expired);
  EXPECT_THAT(file_names(layout.untrusted()), IsEmpty());
}

TEST_F(TrustTest, AnExpiredCaRefusesWhatItIssuedForNewSessions) {
  const Issued old_root =
      make_ca("Old Root CA", nullptr, {at(2020y / January / 1), at(2031y / January / 1)});
  const Issued leaf = make_plc("PLC-O", old_root, {{"plco"}, {}}, {0x43});
  import_root(old_root);
  open();
  const Decision decision = verify(leaf, peer("plco"));
  EXPECT_EQ(decision.verdict, Verdict::expired);
  EXPECT_THAT(decision.detail, HasSubstr("the issuing CA CN=Old Root CA"));
  EXPECT_TRUE(verify(leaf, peer("plco"), kNow, true).ok());
  // Both expired: the PLC's own certificate is the one to renew first.
  const Decision both = verify(leaf, peer("plco"), kNow + years(5));
  EXPECT_EQ(both.verdict, Verdict::expired);
  EXPECT_THAT(both.detail, StartsWith("PLC certificate CN=PLC-O"));
}

TEST_F(TrustTest, LiveSessionsStillSeeRevocationAndUntrust) {
  const Issued self = make_self_signed("PLC1");
  pin(self);
  import_root(root);
  open();
  ASSERT_TRUE(verify(self, peer("plc1"), kNow, true).ok());
  ASSERT_TRUE(verify(plc, peer("plc1.plant.local"), kNow, true).ok());
  std::filesystem::remove(layout.trusted() / "plc.der");
  write_file(layout.crl() / "root.crl", make_crl(root, {{0x10}}));
  store->reload();
  EXPECT_EQ(verify(self, peer("plc1"), kNow, true).verdict, Verdict::untrusted_certificate);
  EXPECT_EQ(verify(plc, peer("plc1.plant.local"), kNow, true).verdict, Verdict::revoked);
}

// ---------------------------------------------------------------------------------------------
// Snapshots

TEST_F(TrustTest, SnapshotsAreVersionedAndOldOnesStayUsable) {
  const Issued self = make_self_signed("PLC1");
  open();
  EventRecorder recorder(*store);
  const auto first = store->snapshot();
  store->reload();  // nothing changed: the same snapshot
  EXPECT_EQ(store->snapshot(), first);

  pin(self);
  store->reload();
  const auto second = store->snapshot();
  EXPECT_EQ(second->version(), 2u);
  EXPECT_TRUE(second->verify({self.der}, peer("plc1"), kNow).ok());
  // The old one decides as it did: a connection holding it sees no half-built state.
  EXPECT_EQ(first->version(), 1u);
  EXPECT_EQ(first->verify({self.der}, peer("plc1"), kNow).verdict, Verdict::untrusted_certificate);
  EXPECT_THAT(first->trusted(), IsEmpty());

  std::filesystem::remove(layout.trusted() / "plc.der");
  store->reload();
  EXPECT_EQ(store->snapshot()->version(), 3u);
  EXPECT_TRUE(second->verify({self.der}, peer("plc1"), kNow).ok());

  const auto changes = recorder.events(StoreEvent::Kind::snapshot_changed);
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].snapshot_version, 2u);
  EXPECT_THAT(changes[0].detail, HasSubstr("pinned +CN=PLC1,O=Plant A (sha256 " + self.sha256));
  EXPECT_EQ(changes[1].snapshot_version, 3u);
  EXPECT_THAT(changes[1].detail, HasSubstr("pinned -CN=PLC1"));
}

TEST_F(TrustTest, ASnapshotCanBeMadeByHand) {
  TrustMaterial material;
  material.roots.push_back(root.info());
  const TrustSnapshot snapshot(material, 7);
  EXPECT_EQ(snapshot.version(), 7u);
  EXPECT_TRUE(snapshot.verify({plc.der}, peer("plc1.plant.local"), kNow).ok());
  material.roots[0].der = {0x30, 0x00};
  EXPECT_THROW(TrustSnapshot(material, 8), std::invalid_argument);
}

TEST_F(TrustTest, AMalformedFileIsReportedOnceAndTheRestStaysTrusted) {
  const Issued self = make_self_signed("PLC1");
  pin(self);
  write_file(layout.trusted() / "broken.der", Bytes{0x30, 0x82, 0x01});
  write_file(layout.crl() / "broken.crl", std::string("-----BEGIN X509 CRL-----\nAAAA\n"));
  open();
  EXPECT_TRUE(verify(self, peer("plc1")).ok());
  EventRecorder recorder(*store);
  store->reload();  // the constructor's problems, now that someone listens
  auto problems = recorder.events(StoreEvent::Kind::file_problem);
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_EQ(problems[0].file, layout.trusted() / "broken.der");
  EXPECT_THAT(problems[0].detail, HasSubstr((layout.trusted() / "broken.der").string()));
  EXPECT_THAT(problems[0].detail, HasSubstr("truncated or malformed"));
  EXPECT_EQ(problems[1].file, layout.crl() / "broken.crl");
  store->reload();
  EXPECT_EQ(recorder.events(StoreEvent::Kind::file_problem).size(), 2u);  // once
  EXPECT_TRUE(verify(self, peer("plc1")).ok());
  // Fixed, then broken again: reported again.
  write_file(layout.trusted() / "broken.der", make_self_signed("PLC2").der);
  store->reload();
  write_file(layout.trusted() / "broken.der", Bytes{0x30, 0x01});
  store->reload();
  problems = recorder.events(StoreEvent::Kind::file_problem);
  ASSERT_EQ(problems.size(), 3u);
  EXPECT_THAT(problems[2].detail, HasSubstr("last good content stays in use"));
}

TEST_F(TrustTest, AFileThatWasGoodKeepsItsContentWhileUnusable) {
  const Issued self = make_self_signed("PLC1");
  pin(self);
  open();
  // Half of it, as an editor or a copy leaves it for a moment.
  write_file(layout.trusted() / "plc.der", Bytes(self.der.begin(), self.der.begin() + 100));
  store->reload();
  EXPECT_TRUE(verify(self, peer("plc1")).ok());
  EXPECT_EQ(store->snapshot()->version(), 1u);
  // Removed: gone.
  std::filesystem::remove(layout.trusted() / "plc.der");
  store->reload();
  EXPECT_EQ(verify(self, peer("plc1")).verdict, Verdict::untrusted_certificate);
}

TEST_F(TrustTest, AMissingFolderCountsAsEmpty) {
  const Issued self = make_self_signed("PLC1");
  pin(self);
  open();
  EventRecorder recorder(*store);
  std::filesystem::remove_all(layout.store / "trusted");
  store->reload();
  EXPECT_EQ(verify(self, peer("plc1")).verdict, Verdict::untrusted_certificate);
  EXPECT_TRUE(recorder.wait_for(
      [&](const StoreEvent& e) {
        return e.kind == StoreEvent::Kind::file_problem && e.file == layout.trusted() &&
               e.detail.find("No such file") != std::string::npos;
      },
      0ms));
}

// ---------------------------------------------------------------------------------------------
// Trust on first use

TEST_F(TrustTest, TrustOnFirstUseIsOffByDefault) {
  EXPECT_FALSE(StoreOptions{}.trust_on_first_use);
  const Issued self = make_self_signed("PLC1");
  open();
  EXPECT_EQ(decide(self, peer("plc1")).verdict, Verdict::untrusted_certificate);
  EXPECT_THAT(file_names(layout.trusted()), IsEmpty());
}

TEST_F(TrustTest, TrustOnFirstUsePinsTheFirstCertificateOfAConnection) {
  StoreOptions options;
  options.trust_on_first_use = true;
  const Issued first = make_self_signed("PLC1"), second = make_self_signed("PLC1 swapped");
  open(options);
  EventRecorder recorder(*store);

  const Decision pinned = decide(first, peer("plc1"));
  EXPECT_TRUE(pinned.ok()) << pinned.detail;
  EXPECT_THAT(pinned.detail, HasSubstr("trusted on first use"));
  const std::string pin_name = "tofu-PLC1-" + first.sha256 + ".der";
  EXPECT_THAT(file_names(layout.trusted()), ElementsAre(pin_name));
  EXPECT_EQ(read_file(layout.trusted() / pin_name), first.der);
  EXPECT_THAT(file_names(layout.untrusted()), IsEmpty());
  const auto events = recorder.events(StoreEvent::Kind::trust_pinned);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].file, layout.trusted() / pin_name);
  ASSERT_TRUE(events[0].certificate);
  EXPECT_EQ(events[0].certificate->sha256, first.sha256);
  EXPECT_THAT(events[0].detail, HasSubstr("connection PLC1"));
  EXPECT_EQ(store->snapshot()->version(), 2u);  // in force at once

  EXPECT_TRUE(decide(first, peer("plc1")).ok());
  EXPECT_EQ(recorder.events(StoreEvent::Kind::trust_pinned).size(), 1u);

  // Another certificate on the same connection: only an operator re-pins.
  const Decision refused = decide(second, peer("plc1"));
  EXPECT_EQ(refused.verdict, Verdict::untrusted_certificate);
  EXPECT_THAT(refused.detail, HasSubstr("only an operator re-pins"));
  EXPECT_TRUE(refused.quarantined);

  // After a restart too.
  open(options);
  EXPECT_EQ(decide(second, peer("plc1")).verdict, Verdict::untrusted_certificate);
  EXPECT_TRUE(decide(first, peer("plc1")).ok());
}

TEST_F(TrustTest, TrustOnFirstUsePinsPerConnection) {
  StoreOptions options;
  options.trust_on_first_use = true;
  const Issued a = make_self_signed("PLC-A"), b = make_self_signed("PLC-B");
  open(options);
  PeerIdentity other = peer("plcb");
  other.connection = "Line 2/PLC B";
  EXPECT_TRUE(decide(a, peer("plca")).ok());
  EXPECT_TRUE(decide(b, other).ok());
  EXPECT_THAT(file_names(layout.trusted()),
              ::testing::UnorderedElementsAre("tofu-PLC1-" + a.sha256 + ".der",
                                              "tofu-Line%202%2FPLC%20B-" + b.sha256 + ".der"));
}

TEST_F(TrustTest, TrustOnFirstUseLeavesAloneWhatAnOperatorDecided) {
  StoreOptions options;
  options.trust_on_first_use = true;
  const Issued removed = make_self_signed("PLC1"), partner = make_self_signed("PLC2"),
               other = make_self_signed("PLC3"),
               expired =
                   make_self_signed("PLC4", {}, {at(2020y / January / 1), at(2021y / January / 1)});
  pin(removed);
  open(options);
  std::filesystem::remove(layout.trusted() / "plc.der");
  store->reload();
  // A pin an operator removed is not pinned again.
  const Decision again = decide(removed, peer("plc1"));
  EXPECT_EQ(again.verdict, Verdict::untrusted_certificate);
  EXPECT_THAT(again.detail, HasSubstr("only an operator trusts it again"));
  // A connection with partner certificates is pinned by its configuration.
  EXPECT_EQ(decide(other, peer("plc3", "", {partner.der})).verdict, Verdict::untrusted_certificate);
  // Nor is an expired certificate pinned.
  EXPECT_EQ(decide(expired, peer("plc4")).verdict, Verdict::untrusted_certificate);
  EXPECT_THAT(file_names(layout.trusted()), IsEmpty());
}

// ---------------------------------------------------------------------------------------------
// Expiry

TEST_F(TrustTest, ExpiryEventsFireAt30And14And1DaysAndAtExpiryOnceEach) {
  open();
  EventRecorder recorder(*store);
  const CertificateInfo leaf = plc.info();  // expires 2035-01-01T00:00:00Z
  const TimePoint end = leaf.not_after;
  for (const auto before :
       {31 * 24h, 30 * 24h, 29 * 24h, 15 * 24h, 14 * 24h, 10 * 24h, 2 * 24h, 24h, 12h, 0h}) {
    store->check_expiry({leaf}, end - before);
  }
  store->check_expiry({leaf}, end + 1s);
  store->check_expiry({leaf}, end + 48h);
  const auto events = recorder.events();
  ASSERT_EQ(events.size(), 4u);
  const std::vector<std::pair<StoreEvent::Kind, int>> expected{
      {StoreEvent::Kind::expiry_warning, 30},
      {StoreEvent::Kind::expiry_warning, 14},
      {StoreEvent::Kind::expiry_warning, 1},
      {StoreEvent::Kind::expired, -1}};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(events[i].kind, expected[i].first) << i;
    EXPECT_EQ(events[i].days_left, expected[i].second) << i;
    ASSERT_TRUE(events[i].certificate);
    EXPECT_EQ(events[i].certificate->sha256, plc.sha256);
  }
  EXPECT_THAT(events[0].detail, HasSubstr("expires in 30 days"));
  EXPECT_THAT(events[3].detail, HasSubstr("expired on 2035-01-01T00:00:00Z"));
}

TEST_F(TrustTest, ExpiryRaisesOnlyTheMostUrgentThresholdForACertificateFirstSeenLate) {
  open();
  EventRecorder recorder(*store);
  const CertificateInfo leaf = plc.info();
  store->check_expiry({leaf, leaf}, leaf.not_after - 10 * 24h);  // listed twice, raised once
  store->check_expiry({leaf}, leaf.not_after - 9 * 24h);
  auto events = recorder.events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].days_left, 14);
  EXPECT_THAT(events[0].detail, HasSubstr("in 10 days"));
  // Already expired when first seen: only `expired`.
  const CertificateInfo other = make_self_signed("Gone").info();
  store->check_expiry({other}, other.not_after + 24h);
  events = recorder.events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].kind, StoreEvent::Kind::expired);
}

TEST_F(TrustTest, ExpiryCoversTheStoresRootsAndPins) {
  const Issued short_root =
      make_ca("Short Root", nullptr, {at(2030y / January / 1), at(2031y / March / 20)});
  const Issued short_pin =
      make_self_signed("Short PLC", {}, {at(2030y / January / 1), at(2031y / March / 10)});
  import_root(short_root);
  pin(short_pin);
  open();
  EventRecorder recorder(*store);
  store->check_expiry({}, kNow);
  const auto events = recorder.events(StoreEvent::Kind::expiry_warning);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].certificate->sha256, short_root.sha256);
  EXPECT_EQ(events[0].days_left, 30);
  EXPECT_EQ(events[1].certificate->sha256, short_pin.sha256);
  EXPECT_EQ(events[1].days_left, 14);
}

// ---------------------------------------------------------------------------------------------
// Threads (for the ThreadSanitizer build)

TEST_F(TrustTest, DecisionsRunWhileSnapshotsAreSwapped) {
  const Issued self = make_self_signed("PLC1");
  import_root(root);
  open();
  std::atomic<bool> stop{false};
  std::atomic<int> decided{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      while (!stop) {
        const auto snapshot = store->snapshot();
        const Decision ca = snapshot->verify({plc.der}, peer("plc1.plant.local"), kNow);
        EXPECT_TRUE(ca.ok()) << ca.detail;
        const Decision pinned = t == 0 ? store->decide({self.der}, peer("plc1"), kNow)
                                       : snapshot->verify({self.der}, peer("plc1"), kNow);
        EXPECT_TRUE(pinned.ok() || pinned.verdict == Verdict::untrusted_certificate ||
                    pinned.verdict == Verdict::revoked)
            << pinned.detail;
        ++decided;
      }
    });
  }
  for (int i = 0; i < 20; ++i) {
    if (i % 2 == 0) {
      pin(self);
    } else {
      std::filesystem::remove(layout.trusted() / "plc.der");
    }
    store->reload();
    store->check_expiry({plc.info()}, kNow);
  }
  while (decided < 30) std::this_thread::yield();
  stop = true;
  for (auto& thread : threads) thread.join();
  EXPECT_GE(store->snapshot()->version(), 2u);
}

}  // namespace
}  // namespace scada::certstore
