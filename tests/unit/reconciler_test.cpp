// The agent's reconcile loop without root: a fake datapath (Katran's testing
// mode), a fake clock, real builds of real config, and the directory source on
// a temporary directory with real inotify.

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "common/files.h"
#include "reconcile/directory_source.h"
#include "reconcile/reconciler.h"
#include "unit/repo.h"
#include "config_texts.h"

namespace veer {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

using test::repo;

std::string repoText(const std::string& path) {
  Result<std::string> text = readFile((repo() / path).string());
  return text ? *text : "";
}

using test::reviewsSplit;

/** A second VirtualService, for files that grow or appear. */
constexpr const char* kRatingsRule =
    "apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\nmetadata:\n"
    "  name: ratings\nspec:\n  hosts: [ratings]\n  http:\n  - route:\n"
    "    - destination: {host: ratings, subset: v1}\n";

/** A DestinationRule for reviews that opts in to socket recycling after graceSeconds. */
std::string reviewsRule(int graceSeconds) {
  std::ostringstream y;
  y << "apiVersion: networking.istio.io/v1beta1\nkind: DestinationRule\nmetadata:\n"
       "  name: reviews\n  annotations: {veer.io/recycle-grace: "
    << graceSeconds
    << "s}\nspec:\n  host: reviews\n  subsets:\n"
       "  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n"
       "  - {name: v3, labels: {version: v3}}\n";
  return y.str();
}

/** Simulated time (the engine's), moved to a point and never back. */
class FakeClock {
public:
  uint64_t now() { return time_.nowMs(); }
  void advanceTo(uint64_t at) {
    if (at > now()) {
      advance(at - now());
    }
  }
  void advance(uint64_t ms) { ASSERT_TRUE(time_.advance(ms)); }
  proxy::TimeSource& source() { return time_; }

private:
  proxy::SimulatedTimeSource time_;
};

/** The maps as the kernel would keep them, and what was asked of them, in order. */
class FakeDatapath final : public DatapathControl {
public:
  explicit FakeDatapath(std::vector<std::string>& events) : events_(events) {}

  Result<veer_state> state() override { return state_; }
  Status apply(const MapImage& image) override {
    events_.push_back("apply");
    if (failApply) {
      return Error{ENOSPC, "map full"};
    }
    live = image;
    state_.gen ^= 1;
    state_.applied++;
    state_.digest = image.digest();
    appliedDigests.push_back(state_.digest);
    return {};
  }
  Status countRejected() override {
    state_.rejected++;
    return {};
  }
  const char* recycler() const override { return "iterator"; }
  bool recyclerSeesClients() const override { return true; }
  Result<RecycleCount> recycle(const RecycleTargets& targets) override {
    recycled.push_back(targets);
    return RecycleCount{targets.size(), 0, 1};
  }

  bool failApply = false;
  std::optional<MapImage> live;
  std::vector<uint64_t> appliedDigests;
  std::vector<RecycleTargets> recycled;
  veer_state state_{};

private:
  std::vector<std::string>& events_;
};

class FakeRoutes final : public RoutePublisher {
public:
  explicit FakeRoutes(std::vector<std::string>& events) : events_(events) {}
  Status publish(const std::string& json) override {
    events_.push_back("publish");
    tables.push_back(json);
    return {};
  }
  std::vector<std::string> tables;

private:
  std::vector<std::string>& events_;
};

/**
 * Holds each build until released (the n-th build runs once release() was called
 * n times); bounded, so a build on the caller's thread fails the test, not hangs it.
 */
class BuildGate {
public:
  BuildResult build(const std::vector<ConfigText>& texts, MaglevCache& rings) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      const int me = ++entered_;
      cv_.notify_all();
      cv_.wait_for(lock, seconds(5), [&] { return released_ >= me; });
    }
    return buildConfig(texts, rings);
  }
  bool waitEntered(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, seconds(5), [&] { return entered_ >= n; });
  }
  void release() {
    std::lock_guard<std::mutex> lock(mu_);
    released_++;
    cv_.notify_all();
  }

private:
  std::mutex mu_;
  std::condition_variable cv_;
  int entered_ = 0;
  int released_ = 0;
};

ConfigSnapshot snapshotOf(std::vector<std::pair<std::string, std::string>> files) {
  ConfigSnapshot snap;
  for (auto& [name, text] : files) {
    snap.texts.push_back({name, std::make_shared<const std::string>(std::move(text))});
  }
  return snap;
}

/** The digest the compiler gives these texts (what the datapath should end up running). */
uint64_t digestOf(const ConfigSnapshot& snap) {
  BuildResult built = buildFromTexts(snap.texts);
  EXPECT_TRUE(built.ok());
  return built.image.digest();
}

class ReconcilerTest : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/veer-reconciler-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    inventory_ = repoText("configs/bookinfo/inventory.yaml");
    rules_ = repoText("configs/000-asm-bookinfo/destination-rules.yaml");
    ASSERT_FALSE(inventory_.empty());
    ASSERT_FALSE(rules_.empty());
  }
  void TearDown() override {
    source_.reset();
    reconciler_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void start(BuildFn build = buildConfig, bool withRoutes = false) {
    ReconcilerOptions options;
    options.cgroupRoot = dir_.string();
    reconciler_ = std::make_unique<Reconciler>(options, dp_, withRoutes ? &routes_ : nullptr,
                                               clock_.source(), std::move(build));
    Status s = reconciler_->start();
    ASSERT_TRUE(s) << s.error().message;
  }

  /** The Bookinfo inventory and rules plus a reviews split, as the directory would hold them. */
  ConfigSnapshot config(const std::string& routes) {
    return snapshotOf({{"inventory.yaml", inventory_},
                       {"destination-rules.yaml", rules_},
                       {"routes.yaml", routes}});
  }

  void writeConfigDir(const std::string& routes) {
    std::ofstream(dir_ / "inventory.yaml") << inventory_;
    std::ofstream(dir_ / "destination-rules.yaml") << rules_;
    std::ofstream(dir_ / "routes.yaml") << routes;
  }

  void watchDir() {
    source_ = std::make_unique<DirectorySource>(dir_.string(), clock_.source(), *reconciler_);
    Status s = source_->init();
    ASSERT_TRUE(s) << s.error().message;
  }

  /**
   * Runs the agent's loop on the fake clock until the directory's burst has been
   * read and every build asked for is settled (applied, rejected or superseded).
   */
  void settle() {
    const auto deadline = std::chrono::steady_clock::now() + seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (source_) {
        source_->onReadable();
        if (std::optional<uint64_t> due = source_->due()) {
          clock_.advanceTo(*due);
          source_->onTimer();
          continue;
        }
      }
      if (!reconciler_->building()) {
        return;
      }
      pollfd p{reconciler_->fd(), POLLIN, 0};
      if (poll(&p, 1, 100) > 0) {
        reconciler_->onBuilt();
      }
    }
    FAIL() << "the reconciler did not settle within 10 s";
  }

  fs::path dir_;
  std::string inventory_, rules_;
  FakeClock clock_;
  std::vector<std::string> events_;
  FakeDatapath dp_{events_};
  FakeRoutes routes_{events_};
  std::unique_ptr<Reconciler> reconciler_;
  std::unique_ptr<DirectorySource> source_;
};

// A file changed in the watched directory is built and applied: the proxy's
// route table first (here the change adds a header rule, so an L7 service),
// then the maps.
TEST_F(ReconcilerTest, ReloadsOnChange) {
  ASSERT_NO_FATAL_FAILURE(start(buildConfig, /*withRoutes=*/true));
  writeConfigDir(reviewsSplit(100, 0));
  ASSERT_NO_FATAL_FAILURE(watchDir());
  ASSERT_NO_FATAL_FAILURE(settle());
  ASSERT_EQ(dp_.appliedDigests.size(), 1u);
  EXPECT_EQ(dp_.state_.digest, digestOf(config(reviewsSplit(100, 0))));

  const std::string jason =
      "apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\nmetadata: {name: reviews}\n"
      "spec:\n  hosts: [reviews]\n  http:\n  - match:\n    - headers:\n"
      "        end-user: {exact: jason}\n    route:\n"
      "    - destination: {host: reviews, subset: v3}\n"
      "  - route:\n    - destination: {host: reviews, subset: v1}\n";
  std::ofstream(dir_ / "routes.yaml", std::ios::trunc) << jason;
  ASSERT_NO_FATAL_FAILURE(settle());
  ASSERT_EQ(dp_.appliedDigests.size(), 2u);
  EXPECT_EQ(dp_.state_.digest, digestOf(config(jason)));
  EXPECT_EQ(dp_.state_.rejected, 0u);
  EXPECT_EQ(events_, (std::vector<std::string>{"publish", "apply", "publish", "apply"}));
  ASSERT_EQ(routes_.tables.size(), 2u);
  EXPECT_EQ(routes_.tables[0].find("jason"), std::string::npos);
  EXPECT_NE(routes_.tables[1].find("jason"), std::string::npos) << routes_.tables[1];
}

// An invalid config is rejected whole and counted; the datapath keeps the image
// it had, and the next valid config is applied.
TEST_F(ReconcilerTest, RejectsABadConfigAndKeepsTheLastGood) {
  ASSERT_NO_FATAL_FAILURE(start());
  const ConfigSnapshot good = config(reviewsSplit(80, 20));
  reconciler_->update("dir", good);
  ASSERT_NO_FATAL_FAILURE(settle());
  ASSERT_TRUE(dp_.live);
  const uint64_t goodDigest = dp_.live->digest();
  EXPECT_EQ(goodDigest, digestOf(good));

  reconciler_->update("dir", config(reviewsSplit(80, 10))); // weights sum to 90
  ASSERT_NO_FATAL_FAILURE(settle());
  EXPECT_EQ(dp_.state_.rejected, 1u);
  EXPECT_EQ(dp_.appliedDigests.size(), 1u);
  EXPECT_EQ(dp_.live->digest(), goodDigest);
  EXPECT_EQ(dp_.state_.digest, goodDigest);

  // A failed apply is a rejection too, and the last good image is what a resync re-applies.
  dp_.failApply = true;
  reconciler_->update("dir", config(reviewsSplit(50, 50)));
  ASSERT_NO_FATAL_FAILURE(settle());
  EXPECT_EQ(dp_.state_.rejected, 2u);
  EXPECT_EQ(dp_.live->digest(), goodDigest);

  dp_.failApply = false;
  reconciler_->update("dir", config(reviewsSplit(0, 100)));
  ASSERT_NO_FATAL_FAILURE(settle());
  EXPECT_EQ(dp_.state_.digest, digestOf(config(reviewsSplit(0, 100))));
  EXPECT_EQ(dp_.state_.rejected, 2u);
}

// veer.io/recycle-grace: 10s and v1's weight going 100 -> 0: v1's sockets are
// recycled once the grace has passed on the clock, not a millisecond before.
TEST_F(ReconcilerTest, RecyclesAfterTheGraceAndNotBefore) {
  ASSERT_NO_FATAL_FAILURE(start());
  auto cfg = [&](int v1, int v2) {
    return snapshotOf({{"inventory.yaml", inventory_},
                       {"reviews-rule.yaml", reviewsRule(10)},
                       {"routes.yaml", reviewsSplit(v1, v2)}});
  };
  reconciler_->update("dir", cfg(100, 0));
  ASSERT_NO_FATAL_FAILURE(settle());
  reconciler_->update("dir", cfg(0, 100));
  ASSERT_NO_FATAL_FAILURE(settle());
  ASSERT_EQ(dp_.appliedDigests.size(), 2u);
  const uint64_t appliedAt = clock_.now();
  EXPECT_EQ(reconciler_->due(), appliedAt + 1000) << "the lane resync comes first";

  // Resyncs come and go every second; the recycling waits for its grace.
  while (clock_.now() + 1000 < appliedAt + 10000) {
    clock_.advance(1000);
    reconciler_->onTimer();
  }
  clock_.advanceTo(appliedAt + 10000 - 1);
  reconciler_->onTimer();
  EXPECT_TRUE(dp_.recycled.empty()) << "recycled before the grace";
  EXPECT_EQ(reconciler_->due(), appliedAt + 10000);

  clock_.advance(1);
  reconciler_->onTimer();
  ASSERT_EQ(dp_.recycled.size(), 1u);
  ASSERT_FALSE(dp_.recycled[0].empty());
  for (const auto& [key, value] : dp_.recycled[0]) {
    EXPECT_EQ(value.permille, 1000u) << "all of v1's sockets: its weight went to 0";
  }
  clock_.advance(60000);
  reconciler_->onTimer();
  EXPECT_EQ(dp_.recycled.size(), 1u) << "recycled twice for one change";
}

// A change that arrives while an older one is being built supersedes it: the
// older result is dropped when it finishes, and only the newer is applied.
TEST_F(ReconcilerTest, SupersededBuildIsNeverApplied) {
  BuildGate gate;
  ASSERT_NO_FATAL_FAILURE(
      start([&](const auto& texts, MaglevCache& rings) { return gate.build(texts, rings); }));
  const ConfigSnapshot older = config(reviewsSplit(100, 0));
  const ConfigSnapshot newer = config(reviewsSplit(0, 100));
  reconciler_->update("dir", older);
  ASSERT_TRUE(gate.waitEntered(1)) << "the first build never started";
  reconciler_->update("dir", newer);
  gate.release(); // the older build finishes while the newer waits its turn
  pollfd p{reconciler_->fd(), POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 5000), 1) << "the older build never finished";
  reconciler_->onBuilt();
  EXPECT_TRUE(dp_.appliedDigests.empty()) << "applied a superseded build";
  EXPECT_TRUE(reconciler_->building());
  ASSERT_TRUE(gate.waitEntered(2)) << "the newer build never started";
  gate.release();
  ASSERT_NO_FATAL_FAILURE(settle());
  ASSERT_EQ(dp_.appliedDigests.size(), 1u);
  EXPECT_EQ(dp_.appliedDigests[0], digestOf(newer));
  EXPECT_NE(digestOf(older), digestOf(newer));
}

// M6: an editor rewriting routes.yaml in place in two writes 300 ms apart,
// without closing between them. After the first write the burst goes quiet and
// the directory is read: the file is mid-write, so its last whole version stays
// (nothing is applied, though the first half alone is a valid config). Once
// the writer closes it, the whole new version is applied.
TEST_F(ReconcilerTest, HalfWrittenFileKeepsItsLastGoodVersionUntilClosed) {
  ASSERT_NO_FATAL_FAILURE(start());
  writeConfigDir(reviewsSplit(100, 0));
  ASSERT_NO_FATAL_FAILURE(watchDir());
  ASSERT_NO_FATAL_FAILURE(settle());
  ASSERT_EQ(dp_.appliedDigests.size(), 1u);
  const uint64_t before = dp_.state_.digest;

  // The new file: reviews 0/100, then a second document. Its first half (the
  // VirtualService alone) is valid too, and is not what the writer meant.
  const std::string firstHalf = reviewsSplit(0, 100);
  const std::string secondHalf = std::string("---\n") + kRatingsRule;
  const int fd = open((dir_ / "routes.yaml").c_str(), O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, firstHalf.data(), firstHalf.size()), static_cast<ssize_t>(firstHalf.size()));
  ASSERT_NO_FATAL_FAILURE(settle()); // the quiet period passes: the directory is read
  clock_.advance(300);
  EXPECT_EQ(dp_.appliedDigests.size(), 1u) << "applied a file that was still being written";
  EXPECT_EQ(dp_.state_.digest, before);
  EXPECT_EQ(dp_.state_.rejected, 0u);

  ASSERT_EQ(write(fd, secondHalf.data(), secondHalf.size()),
            static_cast<ssize_t>(secondHalf.size()));
  ASSERT_NO_FATAL_FAILURE(settle());
  EXPECT_EQ(dp_.appliedDigests.size(), 1u) << "applied a file that was still being written";
  ASSERT_EQ(close(fd), 0);
  ASSERT_NO_FATAL_FAILURE(settle());
  ASSERT_EQ(dp_.appliedDigests.size(), 2u);
  EXPECT_EQ(dp_.state_.digest, digestOf(config(firstHalf + secondHalf)));
  EXPECT_NE(dp_.state_.digest, digestOf(config(firstHalf)));
  EXPECT_EQ(dp_.state_.rejected, 0u);
}

// M6 as `cat part1 > f; sleep 0.3; cat part2 >> f` does it: the writer closes
// between the writes, so the first half looks closed. A file written in place
// waits until it has been unchanged for kInPlaceSettleMs; only the whole is applied.
TEST_F(ReconcilerTest, InPlaceRewriteClosedBetweenWritesIsAppliedOnlyWhole) {
  ASSERT_NO_FATAL_FAILURE(start());
  writeConfigDir(reviewsSplit(100, 0));
  ASSERT_NO_FATAL_FAILURE(watchDir());
  ASSERT_NO_FATAL_FAILURE(settle());
  ASSERT_EQ(dp_.appliedDigests.size(), 1u);
  const uint64_t before = dp_.state_.digest;
  const std::string firstHalf = reviewsSplit(0, 100);
  const std::string secondHalf = std::string("---\n") + kRatingsRule;
  auto writeAndClose = [&](const std::string& text, int flags) {
    const int fd = open((dir_ / "routes.yaml").c_str(), O_WRONLY | flags);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    ASSERT_EQ(close(fd), 0);
  };
  ASSERT_NO_FATAL_FAILURE(writeAndClose(firstHalf, O_TRUNC));
  // The quiet period passes and the directory is read, 300 ms go by: the half stays out.
  for (int ms = 0; ms < 300; ms += 50) {
    source_->onReadable();
    clock_.advance(50);
    source_->onTimer();
  }
  for (int i = 0; i < 100 && reconciler_->building(); ++i) { // a delivery, if one was made
    pollfd p{reconciler_->fd(), POLLIN, 0};
    if (poll(&p, 1, 100) > 0) {
      reconciler_->onBuilt();
    }
  }
  EXPECT_EQ(dp_.appliedDigests.size(), 1u) << "applied the first half of an in-place rewrite";
  EXPECT_EQ(dp_.state_.digest, before);
  ASSERT_NO_FATAL_FAILURE(writeAndClose(secondHalf, O_APPEND));
  ASSERT_NO_FATAL_FAILURE(settle());
  ASSERT_EQ(dp_.appliedDigests.size(), 2u);
  EXPECT_EQ(dp_.state_.digest, digestOf(config(firstHalf + secondHalf)));
  EXPECT_EQ(dp_.state_.rejected, 0u);
}

// A file created and still being written is not config yet; closed, it is.
TEST_F(ReconcilerTest, NewFileMidWriteIsLeftOutUntilClosed) {
  ASSERT_NO_FATAL_FAILURE(start());
  writeConfigDir(reviewsSplit(100, 0));
  ASSERT_NO_FATAL_FAILURE(watchDir());
  ASSERT_NO_FATAL_FAILURE(settle());
  const std::string ratings = kRatingsRule;
  const int fd = open((dir_ / "ratings.yaml").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, ratings.data(), 40), 40); // cut mid-object
  ASSERT_NO_FATAL_FAILURE(settle());
  EXPECT_EQ(dp_.appliedDigests.size(), 1u);
  EXPECT_EQ(dp_.state_.rejected, 0u) << "a half-written file was read and rejected";
  ASSERT_EQ(write(fd, ratings.data() + 40, ratings.size() - 40),
            static_cast<ssize_t>(ratings.size() - 40));
  ASSERT_EQ(close(fd), 0);
  ASSERT_NO_FATAL_FAILURE(settle());
  ASSERT_EQ(dp_.appliedDigests.size(), 2u);
  ConfigSnapshot whole = config(reviewsSplit(100, 0));
  whole.texts.insert(whole.texts.begin() + 1,
                     {"ratings.yaml", std::make_shared<const std::string>(ratings)});
  EXPECT_EQ(dp_.state_.digest, digestOf(whole));
}

// While a slow build runs (a huge or hostile config), the loop that supervises
// veer-proxy keeps turning: handing over the change returns at once, and an
// event on another descriptor (here a stand-in for the proxy's report pipe) is
// handled within one poll round.
TEST_F(ReconcilerTest, SlowBuildDoesNotDelayProxySupervision) {
  BuildGate gate;
  ASSERT_NO_FATAL_FAILURE(
      start([&](const auto& texts, MaglevCache& rings) { return gate.build(texts, rings); }));
  int pipeFds[2];
  ASSERT_EQ(pipe(pipeFds), 0);

  const auto handedOver = std::chrono::steady_clock::now();
  reconciler_->update("dir", config(reviewsSplit(100, 0)));
  EXPECT_LT(std::chrono::steady_clock::now() - handedOver, milliseconds(500));
  ASSERT_TRUE(gate.waitEntered(1));

  ASSERT_EQ(write(pipeFds[1], "x", 1), 1); // the proxy reports (or dies)
  const auto loopStart = std::chrono::steady_clock::now();
  bool handled = false;
  while (!handled && std::chrono::steady_clock::now() - loopStart < seconds(1)) {
    pollfd fds[2] = {{pipeFds[0], POLLIN, 0}, {reconciler_->fd(), POLLIN, 0}};
    ASSERT_GE(poll(fds, 2, msUntil(clock_.source(), reconciler_->due())), 0);
    if (fds[0].revents & POLLIN) {
      char c;
      handled = read(pipeFds[0], &c, 1) == 1;
    }
    if (fds[1].revents & POLLIN) {
      reconciler_->onBuilt();
    }
    reconciler_->onTimer();
  }
  EXPECT_TRUE(handled);
  EXPECT_LT(std::chrono::steady_clock::now() - loopStart, milliseconds(500));
  EXPECT_TRUE(reconciler_->building());
  EXPECT_TRUE(dp_.appliedDigests.empty());

  gate.release();
  ASSERT_NO_FATAL_FAILURE(settle());
  EXPECT_EQ(dp_.appliedDigests.size(), 1u);
  close(pipeFds[0]);
  close(pipeFds[1]);
}

// Seed 003: productpage-v1 is a lane pod (ASM_TRAFFIC_TAG: prod) whose cgroup
// appears after its Pod object. The config is applied without it; the next
// resync on the clock finds the cgroup and re-applies the last good config with
// it, and not before a resync is due.
TEST_F(ReconcilerTest, LaneResyncFindsAPodsCgroupThatAppearsLater) {
  ASSERT_NO_FATAL_FAILURE(start());
  const std::string seed = "configs/003-asm-full-link-gray/";
  reconciler_->update(
      "dir", snapshotOf({{"inventory.yaml", repoText(seed + "inventory.yaml")},
                         {"destination-rules.yaml", repoText(seed + "destination-rules.yaml")},
                         {"step.yaml", repoText(seed + "steps/01-trafficlabel-reviews.yaml")}}));
  ASSERT_NO_FATAL_FAILURE(settle());
  ASSERT_EQ(dp_.appliedDigests.size(), 1u);
  ASSERT_FALSE(dp_.live->laneClients.empty());
  EXPECT_TRUE(dp_.live->lanes.empty());

  const fs::path cgroup = dir_ / "productpage-v1"; // the test world names cgroups after pods
  fs::create_directory(cgroup);
  clock_.advance(999);
  reconciler_->onTimer();
  EXPECT_EQ(dp_.appliedDigests.size(), 1u) << "resynced before the second was up";
  clock_.advance(1);
  reconciler_->onTimer();
  ASSERT_EQ(dp_.appliedDigests.size(), 2u);
  EXPECT_EQ(dp_.appliedDigests[1], dp_.appliedDigests[0]) << "cgroups are node state, not config";
  ASSERT_EQ(dp_.live->lanes.size(), 1u);
  struct stat st {};
  ASSERT_EQ(stat(cgroup.c_str(), &st), 0);
  EXPECT_EQ(dp_.live->lanes[0].first.cgroup_id, st.st_ino) << "a cgroup's id is its inode";

  clock_.advance(1000);
  reconciler_->onTimer();
  EXPECT_EQ(dp_.appliedDigests.size(), 2u) << "re-applied though nothing moved";
}

// Blast radius: the cluster source's snapshots name their objects, and the reconciler
// rejects objects, not the config. Two teams, each a service in its own namespace.

/** One object as the k8s source delivers it. */
struct ClusterObject {
  std::string object; // "Kind ns/name"
  std::string text;
};

/** A team's service ns/name at ip with pods v1 and v2 (10.244.<net>.1 and .2). */
std::vector<ClusterObject> team(const std::string& ns, const std::string& name,
                                const std::string& ip, int net) {
  std::vector<ClusterObject> objs;
  std::ostringstream svc;
  svc << "apiVersion: v1\nkind: Service\nmetadata: {name: " << name << ", namespace: " << ns
      << "}\nspec:\n  clusterIP: " << ip << "\n  ports:\n  - {name: http, port: 9080, "
      << "protocol: TCP, targetPort: 9080}\n  selector: {app: " << name << "}\n";
  objs.push_back({"Service " + ns + "/" + name, svc.str()});
  for (int v = 1; v <= 2; ++v) {
    std::ostringstream pod;
    pod << "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " << name << "-v" << v
        << "\n  namespace: " << ns << "\n  labels: {app: " << name << ", version: v" << v
        << "}\nspec:\n  containers:\n  - name: app\n    ports:\n    - {containerPort: 9080}\n"
        << "status:\n  phase: Running\n  podIP: 10.244." << net << "." << v
        << "\n  conditions:\n  - {type: Ready, status: \"True\"}\n";
    objs.push_back({"Pod " + ns + "/" + name + "-v" + std::to_string(v), pod.str()});
  }
  return objs;
}

std::string teamRule(const std::string& ns, const std::string& name, bool withV2 = true) {
  std::ostringstream y;
  y << "apiVersion: networking.istio.io/v1beta1\nkind: DestinationRule\nmetadata: {name: " << name
    << ", namespace: " << ns << "}\nspec:\n  host: " << name
    << "\n  subsets:\n  - {name: v1, labels: {version: v1}}\n";
  if (withV2) {
    y << "  - {name: v2, labels: {version: v2}}\n";
  }
  return y.str();
}

std::string teamSplit(const std::string& ns, const std::string& name, int v1, int v2,
                      const std::string& vsName = "") {
  std::ostringstream y;
  y << "apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\nmetadata: {name: "
    << (vsName.empty() ? name : vsName) << ", namespace: " << ns << "}\nspec:\n  hosts: [" << name
    << "]\n  http:\n  - route:\n"
    << "    - {destination: {host: " << name << ", subset: v1}, weight: " << v1 << "}\n"
    << "    - {destination: {host: " << name << ", subset: v2}, weight: " << v2 << "}\n";
  return y.str();
}

/** The two teams with these splits, as the k8s source would deliver them. */
class Cluster {
public:
  Cluster() {
    for (const auto& t :
         {team("shop", "cart", "10.96.1.1", 1), team("books", "reviews", "10.96.2.1", 2)}) {
      for (const ClusterObject& o : t) {
        set(o.object, o.text);
      }
    }
    set("DestinationRule shop/cart", teamRule("shop", "cart"));
    set("DestinationRule books/reviews", teamRule("books", "reviews"));
    set("VirtualService shop/cart", teamSplit("shop", "cart", 100, 0));
    set("VirtualService books/reviews", teamSplit("books", "reviews", 100, 0));
  }
  void set(const std::string& object, const std::string& text) { objects_[object] = text; }
  void erase(const std::string& object) { objects_.erase(object); }

  /** In the store's (and the reconciler's) order: by object. */
  ConfigSnapshot snapshot() const {
    ConfigSnapshot snap;
    for (const auto& [object, text] : objects_) {
      const std::string kind = object.substr(0, object.find(' '));
      snap.texts.push_back({"api:" + kind, std::make_shared<const std::string>(text)});
      snap.objects.push_back(object);
    }
    return snap;
  }

private:
  std::map<std::string, std::string> objects_;
};

std::vector<std::string> rejectedNames(const Reconciler& r) {
  std::vector<std::string> names;
  for (const RejectedObject& o : r.rejected()) {
    names.push_back(o.object + (o.keptLastGood ? " (last good)" : " (left out)"));
  }
  return names;
}

// One team's broken weight edit is rejected alone: the other team's edit in the same
// snapshot applies, the broken object serves its last good version, and the whole-config
// rejection counter does not move.
TEST_F(ReconcilerTest, ClusterObjectErrorRejectsOnlyThatObject) {
  ASSERT_NO_FATAL_FAILURE(start());
  Cluster cluster;
  reconciler_->update("k8s", cluster.snapshot());
  ASSERT_NO_FATAL_FAILURE(settle());
  ASSERT_EQ(dp_.state_.digest, digestOf(cluster.snapshot()));

  Cluster expected = cluster;
  cluster.set("VirtualService shop/cart", teamSplit("shop", "cart", 80, 10)); // sums to 90
  cluster.set("VirtualService books/reviews", teamSplit("books", "reviews", 0, 100));
  expected.set("VirtualService books/reviews", teamSplit("books", "reviews", 0, 100));
  reconciler_->update("k8s", cluster.snapshot());
  ASSERT_NO_FATAL_FAILURE(settle());
  EXPECT_EQ(dp_.state_.digest, digestOf(expected.snapshot()));
  EXPECT_EQ(dp_.state_.rejected, 0u) << "no whole config was rejected";
  EXPECT_EQ(rejectedNames(*reconciler_),
            std::vector<std::string>{"VirtualService shop/cart (last good)"});
  ASSERT_FALSE(reconciler_->rejected()[0].errors.empty());
  EXPECT_NE(reconciler_->rejected()[0].errors[0].format().find("weight"), std::string::npos)
      << reconciler_->rejected()[0].errors[0].format();

  // Fixed: accepted again, nothing rejected.
  cluster.set("VirtualService shop/cart", teamSplit("shop", "cart", 50, 50));
  reconciler_->update("k8s", cluster.snapshot());
  ASSERT_NO_FATAL_FAILURE(settle());
  EXPECT_EQ(dp_.state_.digest, digestOf(cluster.snapshot()));
  EXPECT_EQ(reconciler_->rejectedObjects(), 0u);
}

// An object that never built is left out; the rest of the config applies.
TEST_F(ReconcilerTest, ClusterObjectWithoutAGoodVersionIsLeftOut) {
  ASSERT_NO_FATAL_FAILURE(start());
  Cluster cluster;
  reconciler_->update("k8s", cluster.snapshot());
  ASSERT_NO_FATAL_FAILURE(settle());

  Cluster expected = cluster;
  cluster.set("VirtualService shop/cart-bad", teamSplit("shop", "cart", 70, 20, "cart-bad"));
  cluster.set("VirtualService books/reviews", teamSplit("books", "reviews", 20, 80));
  expected.set("VirtualService books/reviews", teamSplit("books", "reviews", 20, 80));
  reconciler_->update("k8s", cluster.snapshot());
  ASSERT_NO_FATAL_FAILURE(settle());
  EXPECT_EQ(dp_.state_.digest, digestOf(expected.snapshot()));
  EXPECT_EQ(rejectedNames(*reconciler_),
            std::vector<std::string>{"VirtualService shop/cart-bad (left out)"});

  // A newcomer that loads before the incumbent it conflicts with: the error names the
  // unchanged incumbent, whose namespace's change (the newcomer) is what gets left out.
  cluster.set("VirtualService shop/a-cart", teamSplit("shop", "cart", 70, 30, "a-cart"));
  cluster.set("VirtualService books/reviews", teamSplit("books", "reviews", 40, 60));
  expected.set("VirtualService books/reviews", teamSplit("books", "reviews", 40, 60));
  reconciler_->update("k8s", cluster.snapshot());
  ASSERT_NO_FATAL_FAILURE(settle());
  EXPECT_EQ(dp_.state_.digest, digestOf(expected.snapshot()));
  EXPECT_EQ(rejectedNames(*reconciler_),
            (std::vector<std::string>{"VirtualService shop/a-cart (left out)",
                                      "VirtualService shop/cart-bad (left out)"}));
}

// A DestinationRule edit that removes the subset an unchanged VirtualService routes to:
// the VirtualService's error is caused by a dependency, so its namespace's changes go back
// to their last good versions; the other namespace's edit applies.
TEST_F(ReconcilerTest, ClusterDependencyErrorRevertsItsNamespace) {
  ASSERT_NO_FATAL_FAILURE(start());
  Cluster cluster;
  cluster.set("VirtualService shop/cart", teamSplit("shop", "cart", 50, 50));
  reconciler_->update("k8s", cluster.snapshot());
  ASSERT_NO_FATAL_FAILURE(settle());

  Cluster expected = cluster;
  cluster.set("DestinationRule shop/cart", teamRule("shop", "cart", /*withV2=*/false));
  cluster.set("VirtualService books/reviews", teamSplit("books", "reviews", 10, 90));
  expected.set("VirtualService books/reviews", teamSplit("books", "reviews", 10, 90));
  reconciler_->update("k8s", cluster.snapshot());
  ASSERT_NO_FATAL_FAILURE(settle());
  EXPECT_EQ(dp_.state_.digest, digestOf(expected.snapshot()));
  EXPECT_EQ(rejectedNames(*reconciler_),
            std::vector<std::string>{"DestinationRule shop/cart (last good)"});
  EXPECT_EQ(dp_.state_.rejected, 0u);
}

// The directory mode is unchanged: an error in a directory's file rejects the whole config,
// the cluster's good edits included.
TEST_F(ReconcilerTest, DirectoryErrorStillRejectsTheWholeConfig) {
  ASSERT_NO_FATAL_FAILURE(start());
  Cluster cluster;
  reconciler_->update("k8s", cluster.snapshot());
  reconciler_->update("dir", snapshotOf({{"extra.yaml", teamSplit("shop", "cart", 1, 1, "x")}}));
  ASSERT_NO_FATAL_FAILURE(settle());
  EXPECT_EQ(dp_.state_.rejected, 1u);
  const uint64_t before = dp_.state_.digest;
  cluster.set("VirtualService books/reviews", teamSplit("books", "reviews", 0, 100));
  reconciler_->update("k8s", cluster.snapshot());
  ASSERT_NO_FATAL_FAILURE(settle());
  EXPECT_EQ(dp_.state_.rejected, 2u);
  EXPECT_EQ(dp_.state_.digest, before);
}

// An expected source holds every build until it delivered: the directory's objects never
// apply alone while the cluster is still being listed.
TEST_F(ReconcilerTest, NothingIsBuiltBeforeAnExpectedSourceDelivers) {
  ASSERT_NO_FATAL_FAILURE(start());
  reconciler_->expect("k8s");
  reconciler_->update("dir", config(reviewsSplit(100, 0)));
  ASSERT_NO_FATAL_FAILURE(settle());
  EXPECT_TRUE(dp_.appliedDigests.empty());
  Cluster cluster;
  reconciler_->update("k8s", cluster.snapshot());
  ASSERT_NO_FATAL_FAILURE(settle());
  EXPECT_EQ(dp_.appliedDigests.size(), 1u);
}

// The rejected objects are written for veerctl (0600), and emptied once accepted.
TEST_F(ReconcilerTest, RejectedObjectsAreWrittenForVeerctl) {
  ReconcilerOptions options;
  options.cgroupRoot = dir_.string();
  options.rejectedFile = (dir_ / "rejected.json").string();
  reconciler_ = std::make_unique<Reconciler>(options, dp_, nullptr, clock_.source());
  ASSERT_TRUE(reconciler_->start());
  Cluster cluster;
  reconciler_->update("k8s", cluster.snapshot());
  ASSERT_NO_FATAL_FAILURE(settle());
  cluster.set("VirtualService shop/cart", teamSplit("shop", "cart", 80, 10));
  reconciler_->update("k8s", cluster.snapshot());
  ASSERT_NO_FATAL_FAILURE(settle());
  struct stat st {};
  ASSERT_EQ(stat(options.rejectedFile.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string text = repoText(options.rejectedFile);
  EXPECT_NE(text.find("\"VirtualService shop/cart\""), std::string::npos) << text;
  EXPECT_NE(text.find("last good version"), std::string::npos) << text;

  cluster.set("VirtualService shop/cart", teamSplit("shop", "cart", 80, 20));
  reconciler_->update("k8s", cluster.snapshot());
  ASSERT_NO_FATAL_FAILURE(settle());
  EXPECT_EQ(repoText(options.rejectedFile).find("shop/cart"), std::string::npos);
}

/** Captures what spdlog's default logger writes while it lives. */
class CapturedLog {
public:
  CapturedLog() : previous_(spdlog::default_logger()) {
    spdlog::set_default_logger(std::make_shared<spdlog::logger>(
        "captured", std::make_shared<spdlog::sinks::ostream_sink_mt>(out_)));
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  size_t count(const std::string& needle) const {
    const std::string text = out_.str();
    size_t n = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
      ++n;
    }
    return n;
  }

private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> previous_;
};

// A rejected object is logged once per version, not on every rebuild while it stays
// rejected: other teams' changes keep rebuilding the config.
TEST_F(ReconcilerTest, RejectedObjectIsLoggedOncePerVersion) {
  ASSERT_NO_FATAL_FAILURE(start());
  Cluster cluster;
  reconciler_->update("k8s", cluster.snapshot());
  ASSERT_NO_FATAL_FAILURE(settle());
  CapturedLog log;
  cluster.set("VirtualService shop/cart", teamSplit("shop", "cart", 80, 10));
  for (int w : {10, 20, 30}) {
    cluster.set("VirtualService books/reviews", teamSplit("books", "reviews", w, 100 - w));
    reconciler_->update("k8s", cluster.snapshot());
    ASSERT_NO_FATAL_FAILURE(settle());
  }
  EXPECT_EQ(log.count("VirtualService shop/cart rejected"), 1u);
  EXPECT_EQ(log.count("weights sum to 90"), 1u);
  cluster.set("VirtualService shop/cart", teamSplit("shop", "cart", 80, 30)); // a new version
  reconciler_->update("k8s", cluster.snapshot());
  ASSERT_NO_FATAL_FAILURE(settle());
  EXPECT_EQ(log.count("VirtualService shop/cart rejected"), 2u);
  EXPECT_EQ(log.count("weights sum to 110"), 1u);
}

} // namespace
} // namespace veer
