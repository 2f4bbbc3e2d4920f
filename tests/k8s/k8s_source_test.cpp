// The cluster as a ConfigSource (reconcile/k8s_source.h) against the test API server:
// nothing before the initial sync, then one snapshot per coalesced burst, on simulated
// time for the quiet period and the bound on a burst that never goes quiet.

#include <gtest/gtest.h>

#include <poll.h>

#include <algorithm>

#include "k8s/test_apiserver.h"
#include "proxy/time_source.h"
#include "reconcile/k8s_source.h"

namespace veer {
namespace {

using k8s::testing::json;
using k8s::testing::TestApiServer;
using k8s::testing::waitUntil;

class CapturingSink final : public ConfigSink {
public:
  void update(const std::string& source, ConfigSnapshot snapshot) override {
    sources.push_back(source);
    snapshots.push_back(std::move(snapshot));
  }
  std::vector<std::string> sources;
  std::vector<ConfigSnapshot> snapshots;
};

bool has(const ConfigSnapshot& snap, const std::string& object) {
  return std::find(snap.objects.begin(), snap.objects.end(), object) != snap.objects.end();
}

class K8sSourceTest : public ::testing::Test {
protected:
  void SetUp() override {
    server_.apply(k8s::testing::service("default", "web", "10.96.0.1", 80));
    server_.apply(k8s::testing::pod("web-1", "n1", "10.244.0.1"));
    server_.apply(k8s::testing::pod("other-1", "n2", "10.244.9.1")); // another node's
    k8s::ClusterConfig config;
    config.server = server_.url();
    k8s::ClusterSource::Options options;
    options.nodeName = "n1";
    source_ = std::make_unique<K8sSource>(config, options, clock_, sink_);
    Status s = source_->init();
    ASSERT_TRUE(s) << s.error().message;
  }

  /** Reads the eventfd if the store changed (bounded wait); true when it had. */
  bool readEvents(int waitMs) {
    pollfd p{source_->fd(), POLLIN, 0};
    if (poll(&p, 1, waitMs) <= 0) {
      return false;
    }
    source_->onReadable();
    return true;
  }

  /** Moves the clock to the source's next due time and runs it. */
  void runDue() {
    if (std::optional<uint64_t> due = source_->due(); due && *due > clock_.nowMs()) {
      ASSERT_TRUE(clock_.advance(*due - clock_.nowMs()));
    }
    source_->onTimer();
  }

  /** Until the initial sync is delivered (10 s bound). */
  void waitSynced() {
    ASSERT_TRUE(waitUntil([&] {
      readEvents(0);
      runDue();
      return source_->synced();
    })) << "not synced within 10 s";
  }

  TestApiServer server_{TestApiServer::Options{}};
  proxy::SimulatedTimeSource clock_;
  CapturingSink sink_;
  std::unique_ptr<K8sSource> source_;
};

// The first snapshot is the whole listed cluster (this node's Pods only), under "k8s",
// each text naming its object the way diagnostics do.
TEST_F(K8sSourceTest, DeliversTheListedClusterOnceSynced) {
  ASSERT_NO_FATAL_FAILURE(waitSynced());
  ASSERT_EQ(sink_.snapshots.size(), 1u);
  EXPECT_EQ(sink_.sources[0], "k8s");
  const ConfigSnapshot& snap = sink_.snapshots[0];
  ASSERT_EQ(snap.texts.size(), snap.objects.size());
  EXPECT_TRUE(has(snap, "Service default/web"));
  EXPECT_TRUE(has(snap, "Pod default/web-1"));
  EXPECT_FALSE(has(snap, "Pod default/other-1")) << "another node's Pod";
  for (size_t i = 0; i < snap.texts.size(); ++i) {
    const std::string kind = snap.objects[i].substr(0, snap.objects[i].find(' '));
    EXPECT_EQ(snap.texts[i].file, "api:" + kind);
  }
}

// A burst of changes is one snapshot, delivered once the quiet period has passed on the
// clock and not a millisecond before.
TEST_F(K8sSourceTest, CoalescesABurstUntilItIsQuiet) {
  ASSERT_NO_FATAL_FAILURE(waitSynced());
  const uint64_t base = source_->events();
  for (int i = 0; i < 20; ++i) {
    server_.apply(k8s::testing::service("default", "s" + std::to_string(i),
                                        "10.96.1." + std::to_string(i + 1), 80));
  }
  ASSERT_TRUE(waitUntil([&] { return source_->events() >= base + 20; }));
  ASSERT_TRUE(readEvents(10000)) << "no wake-up from the store";
  const uint64_t first = clock_.nowMs();
  EXPECT_EQ(source_->due(), first + K8sSource::kQuietMs);
  ASSERT_TRUE(clock_.advance(K8sSource::kQuietMs - 1));
  source_->onTimer();
  EXPECT_EQ(sink_.snapshots.size(), 1u) << "delivered inside the quiet period";
  ASSERT_TRUE(clock_.advance(1));
  source_->onTimer();
  ASSERT_EQ(sink_.snapshots.size(), 2u) << "the burst is one snapshot";
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(has(sink_.snapshots[1], "Service default/s" + std::to_string(i))) << i;
  }
  // And the next change wakes the loop again.
  server_.apply(k8s::testing::service("default", "late", "10.96.2.1", 80));
  ASSERT_TRUE(readEvents(10000)) << "no wake-up after a delivery";
}

// A store that never goes quiet is still delivered kMaxDelayMs after its burst began.
TEST_F(K8sSourceTest, BoundsTheDelayOfABurstThatNeverGoesQuiet) {
  ASSERT_NO_FATAL_FAILURE(waitSynced());
  const size_t before = sink_.snapshots.size();
  std::optional<uint64_t> first;
  for (int i = 0; sink_.snapshots.size() == before; ++i) {
    ASSERT_LT(i, 100) << "never delivered";
    const uint64_t seen = source_->events();
    server_.apply(k8s::testing::service("default", "s" + std::to_string(i),
                                        "10.96.1." + std::to_string(i + 1), 80));
    ASSERT_TRUE(waitUntil([&] { return source_->events() > seen; }));
    if (!first) {
      ASSERT_TRUE(readEvents(10000)) << "no wake-up from the store";
      first = clock_.nowMs();
    }
    ASSERT_TRUE(clock_.advance(K8sSource::kQuietMs / 2)); // an event every half quiet period
    source_->onTimer();
  }
  EXPECT_GE(clock_.nowMs(), *first + K8sSource::kMaxDelayMs);
  EXPECT_LT(clock_.nowMs(), *first + K8sSource::kMaxDelayMs + K8sSource::kQuietMs);
}

} // namespace
} // namespace veer
