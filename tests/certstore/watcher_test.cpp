// The watcher: real folders, real inotify, real threads. Every wait is for an event or a state,
// bounded by a generous timeout (10 s); no test asserts how fast the store notices.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "certstore/certstore.h"
#include "store_test_support.h"

namespace scada::certstore {
namespace {

using namespace std::chrono_literals;
using namespace testing;
using ::testing::HasSubstr;

class WatcherTest : public ::testing::Test {
 protected:
  TempDir project;
  StoreLayout layout = StoreLayout::for_project(project.path());
  std::unique_ptr<CertificateStore> store;
  std::unique_ptr<EventRecorder> recorder;

  WatcherTest() { ensure_layout(layout); }

  CertificateStore& watch(StoreOptions options = {},
                          std::function<void(const StoreEvent&)> also = nullptr) {
    store = std::make_unique<CertificateStore>(layout, options);
    recorder = std::make_unique<EventRecorder>(*store, std::move(also));
    store->start_watching();
    return *store;
  }
  bool accepted(const Issued& certificate, const std::string& address = "plc1") const {
    return store->snapshot()->verify({certificate.der}, peer(address), kNow).ok();
  }
  Verdict verdict(const Issued& certificate, const std::string& address = "plc1") const {
    return store->snapshot()->verify({certificate.der}, peer(address), kNow).verdict;
  }
  bool problem_with(const std::filesystem::path& file) const {
    return recorder->wait_for([&](const StoreEvent& event) {
      return event.kind == StoreEvent::Kind::file_problem && event.file == file;
    });
  }
};

// Writes the file as a slow writer would: half, a pause the test decides, the rest.
class SlowWriter {
 public:
  SlowWriter(const std::filesystem::path& file, const Bytes& bytes)
      : fd_(::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)), bytes_(bytes) {
    EXPECT_GE(fd_, 0) << file;
    write(0, bytes_.size() / 2);
  }
  void finish() {
    write(bytes_.size() / 2, bytes_.size());
    ::close(fd_);
    fd_ = -1;
  }
  ~SlowWriter() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  void write(std::size_t from, std::size_t to) {
    EXPECT_EQ(::write(fd_, bytes_.data() + from, to - from), static_cast<ssize_t>(to - from));
  }
  int fd_;
  Bytes bytes_;
};

TEST_F(WatcherTest, MovingAQuarantinedFileIntoTrustedTrustsIt) {
  const Issued self = make_self_signed("PLC1");
  watch();
  const Decision refused = store->decide({self.der}, peer("plc1"), kNow);
  ASSERT_TRUE(refused.quarantined) << refused.detail;
  std::filesystem::rename(*refused.quarantined, layout.trusted() / refused.quarantined->filename());
  EXPECT_TRUE(recorder->wait_for([&](const StoreEvent& event) {
    return event.kind == StoreEvent::Kind::snapshot_changed &&
           event.detail.find("pinned +CN=PLC1") != std::string::npos;
  }));
  EXPECT_TRUE(accepted(self));
  // And moving it back revokes it.
  std::filesystem::rename(layout.trusted() / refused.quarantined->filename(), *refused.quarantined);
  EXPECT_TRUE(recorder->wait_until([&] { return verdict(self) == Verdict::revoked; }));
}

TEST_F(WatcherTest, ACrlDroppedInRevokes) {
  const Issued root = make_ca("Plant A Root CA");
  const Issued plc = make_plc("PLC1", root, {{"plc1"}, {}}, {0x10});
  write_file(layout.roots / "root.der", root.der);
  watch();
  ASSERT_TRUE(accepted(plc));
  write_file(layout.crl() / "root.crl", make_crl(root, {{0x10}}));
  EXPECT_TRUE(recorder->wait_for([&](const StoreEvent& event) {
    return event.kind == StoreEvent::Kind::snapshot_changed &&
           event.detail.find("CRLs +CRL of CN=Plant A Root CA") != std::string::npos;
  }));
  EXPECT_EQ(verdict(plc), Verdict::revoked);
}

TEST_F(WatcherTest, AHalfWrittenRewriteNeverDropsTrustAndEndsInTheNewContent) {
  const Issued old_pin = make_self_signed("PLC1"), new_pin = make_self_signed("PLC1 renewed");
  write_file(layout.trusted() / "plc1.der", old_pin.der);
  StoreOptions options;
  options.poll_interval = 50ms;  // so that a rebuild sees the half-written file
  options.debounce = 50ms;
  std::atomic<int> untrusted_moments{0};
  // Every snapshot ever published trusts one of the two.
  watch(options, [&](const StoreEvent& event) {
    const auto snapshot = store->snapshot();
    if (event.kind == StoreEvent::Kind::snapshot_changed &&
        !snapshot->verify({old_pin.der}, peer("plc1"), kNow).ok() &&
        !snapshot->verify({new_pin.der}, peer("plc1"), kNow).ok()) {
      ++untrusted_moments;
    }
  });
  ASSERT_TRUE(accepted(old_pin));

  SlowWriter writer(layout.trusted() / "plc1.der", new_pin.der);
  ASSERT_TRUE(problem_with(layout.trusted() / "plc1.der"));  // a rebuild saw it half written
  EXPECT_TRUE(accepted(old_pin));
  EXPECT_FALSE(accepted(new_pin));
  writer.finish();
  EXPECT_TRUE(recorder->wait_until([&] { return accepted(new_pin); }));
  EXPECT_FALSE(accepted(old_pin));
  EXPECT_EQ(untrusted_moments, 0);
}

TEST_F(WatcherTest, ANewFileWrittenInTwoStepsEndsTrusted) {
  const Issued self = make_self_signed("PLC1");
  StoreOptions options;
  options.poll_interval = 50ms;
  options.debounce = 50ms;
  watch(options);
  SlowWriter writer(layout.trusted() / "plc1.der", self.der);
  ASSERT_TRUE(problem_with(layout.trusted() / "plc1.der"));
  EXPECT_FALSE(accepted(self));
  writer.finish();
  EXPECT_TRUE(recorder->wait_until([&] { return accepted(self); }));
}

TEST_F(WatcherTest, AMalformedFileRaisesAProblemNamingItAndTheRestStaysTrusted) {
  const Issued self = make_self_signed("PLC1");
  write_file(layout.trusted() / "plc1.der", self.der);
  watch();
  write_file(layout.trusted() / "garbage.pem", std::string("-----BEGIN CERTIFICATE-----\n!!\n"));
  ASSERT_TRUE(problem_with(layout.trusted() / "garbage.pem"));
  const auto problems = recorder->events(StoreEvent::Kind::file_problem);
  EXPECT_THAT(problems.front().detail, HasSubstr((layout.trusted() / "garbage.pem").string()));
  EXPECT_TRUE(accepted(self));
  EXPECT_EQ(store->snapshot()->trusted().size(), 1u);
}

TEST_F(WatcherTest, ABurstOfFilesGivesFewRebuilds) {
  constexpr int kFiles = 50;
  std::vector<Issued> pins;
  for (int i = 0; i < kFiles; ++i) pins.push_back(make_self_signed("PLC" + std::to_string(i)));
  watch();
  for (int i = 0; i < kFiles; ++i) {
    write_file(layout.trusted() / ("plc" + std::to_string(i) + ".der"), pins[i].der);
  }
  ASSERT_TRUE(recorder->wait_until([&] { return store->snapshot()->trusted().size() == kFiles; }));
  const auto rebuilds = recorder->events(StoreEvent::Kind::snapshot_changed).size();
  EXPECT_GE(rebuilds, 1u);
  EXPECT_LT(rebuilds, static_cast<std::size_t>(kFiles));
  EXPECT_LE(rebuilds, 5u) << "debounce: a burst should give one or two rebuilds";
  for (const auto& pin : pins) EXPECT_TRUE(accepted(pin));
}

TEST_F(WatcherTest, PollingCatchesChangesWithoutInotify) {
  const Issued self = make_self_signed("PLC1");
  StoreOptions options;
  options.use_inotify = false;
  options.poll_interval = 100ms;
  watch(options);
  write_file(layout.trusted() / "plc1.der", self.der);
  EXPECT_TRUE(recorder->wait_until([&] { return accepted(self); }));
  std::filesystem::remove(layout.trusted() / "plc1.der");
  EXPECT_TRUE(recorder->wait_until([&] { return !accepted(self); }));
}

TEST_F(WatcherTest, InotifyAloneCatchesChanges) {
  const Issued self = make_self_signed("PLC1");
  StoreOptions options;
  options.poll_interval = std::chrono::hours(1);  // no safety net here
  watch(options);
  write_file(layout.roots / "x.der", make_ca("Root").der);
  write_file(layout.trusted() / "plc1.der", self.der);
  EXPECT_TRUE(recorder->wait_until([&] { return accepted(self); }));
  EXPECT_TRUE(recorder->wait_until([&] { return store->snapshot()->roots().size() == 1; }));
}

TEST_F(WatcherTest, AFolderMadeAnewIsWatchedAgain) {
  const Issued before = make_self_signed("PLC1"), after = make_self_signed("PLC2");
  write_file(layout.trusted() / "plc1.der", before.der);
  StoreOptions options;
  options.poll_interval = std::chrono::hours(1);  // inotify must follow the new folder
  watch(options);
  std::filesystem::rename(layout.trusted(), layout.store / "trusted-backup");
  std::filesystem::create_directory(layout.trusted());
  ASSERT_TRUE(recorder->wait_until([&] { return !accepted(before); }));
  write_file(layout.trusted() / "plc2.der", after.der);
  EXPECT_TRUE(recorder->wait_until([&] { return accepted(after); }));
}

TEST_F(WatcherTest, StartingReportsTheProblemsFoundBefore) {
  write_file(layout.store / "trusted" / "broken.der", Bytes{0x30, 0x05});
  watch();
  EXPECT_TRUE(problem_with(layout.trusted() / "broken.der"));
}

TEST_F(WatcherTest, StartingTwiceAndStoppingAreHarmless) {
  const Issued self = make_self_signed("PLC1");
  watch();
  store->start_watching();
  store->stop_watching();
  store->stop_watching();
  write_file(layout.trusted() / "plc1.der", self.der);
  store->start_watching();  // a change made while not watching is seen at the start
  EXPECT_TRUE(accepted(self));
  store.reset();  // the destructor stops the watcher
}

}  // namespace
}  // namespace scada::certstore
