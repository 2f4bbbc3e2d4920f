// The reflector against the test API server (real HTTP on 127.0.0.1): list, watch, resume,
// relist, authentication, throttling, backoff, pagination, discovery and TLS.

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <thread>

#include "k8s/informers.h"
#include "k8s/k8s_fake_clock.h"
#include "k8s/reflector.h"
#include "k8s/test_apiserver.h"

namespace veer::k8s {
namespace {

using namespace std::chrono_literals;
using testing::json;
using testing::TestApiServer;

const ResourceType kServices{"", "v1", "services", "Service", true};
const ResourceType kPods{"", "v1", "pods", "Pod", true};

ReflectorOptions fastOptions() {
  ReflectorOptions o;
  o.backoff.initial = 5ms;
  o.backoff.max = 50ms;
  o.seed = 1;
  return o;
}

/** Counts what the store tells its listener. */
class Counter final : public StoreListener {
public:
  void onUpsert(const ApiObject&) override { ++upserts; }
  void onDelete(const ApiObject&) override { ++deletes; }
  std::atomic<int> upserts{0};
  std::atomic<int> deletes{0};
};

/** A server, a client from a kubeconfig written for it, and a reflector thread. */
class ReflectorTest : public ::testing::Test {
protected:
  void connect(TestApiServer& server, const std::string& caFile = "",
               const std::string& tokenFile = "") {
    auto cfg = loadKubeconfig(server.writeKubeconfig(dir_.path, caFile, tokenFile));
    ASSERT_TRUE(cfg) << cfg.error().message;
    client_ = std::make_unique<ApiClient>(*cfg, *clock_);
  }

  void run(const ResourceType& type, ReflectorOptions options = fastOptions()) {
    reflector_ = std::make_unique<Reflector>(*client_, store_, type, options, *clock_);
    thread_ = std::thread([this] { reflector_->run(stop_); });
  }

  void TearDown() override {
    stop_.stop();
    if (thread_.joinable()) {
      thread_.join();
    }
  }

  bool has(const std::string& kind, const std::string& name, std::string* jsonOut = nullptr) {
    ApiObject o;
    bool found = store_.get(ObjectKey{"", kind, "default", name}, o);
    if (found && jsonOut != nullptr) {
      *jsonOut = o.json;
    }
    return found;
  }

  std::string stored(const std::string& kind, const std::string& name) {
    std::string j;
    has(kind, name, &j);
    return j;
  }

  /** The queries of the server's requests of one verb ("list", "watch"). */
  static std::vector<json> requests(TestApiServer& server, const std::string& verb) {
    std::vector<json> out;
    json stats = server.stats();
    for (const auto& r : stats["requests"]) {
      if (r[0] == verb) {
        out.push_back(r[2]);
      }
    }
    return out;
  }

  testing::TempDir dir_;
  std::unique_ptr<Clock> ownClock_;
  Clock* clock_ = &systemClock();
  std::unique_ptr<ApiClient> client_;
  Counter counter_;
  ObjectStore store_{&counter_};
  StopToken stop_;
  std::unique_ptr<Reflector> reflector_;
  std::thread thread_;
};

TEST_F(ReflectorTest, ListsFromCacheThenWatchesFromTheListsVersionWithBookmarks) {
  TestApiServer server({});
  server.apply(testing::service("default", "a", "10.96.0.1", 80));
  server.apply(testing::service("default", "b", "10.96.0.2", 80));
  connect(server);
  run(kServices);
  ASSERT_TRUE(
      testing::waitUntil([&] { return reflector_->stats().synced && has("Service", "b"); }));
  // Items of a list carry no kind: the slim object has it from the list's kind.
  json a = json::parse(stored("Service", "a"));
  EXPECT_EQ(a["kind"], "Service");
  EXPECT_EQ(a["apiVersion"], "v1");
  EXPECT_FALSE(a["metadata"].contains("managedFields"));
  EXPECT_FALSE(a["metadata"].contains("annotations")); // kubectl's copy dropped
  EXPECT_EQ(a["spec"]["clusterIP"], "10.96.0.1");

  ASSERT_TRUE(testing::waitUntil([&] { return server.stats()["watches"] == 1; }));
  auto lists = requests(server, "list");
  ASSERT_EQ(lists.size(), 1u);
  EXPECT_EQ(lists[0]["resourceVersion"], "0");
  EXPECT_FALSE(lists[0].contains("limit")); // the cache serves rv=0 whole
  auto watches = requests(server, "watch");
  ASSERT_EQ(watches.size(), 1u);
  EXPECT_EQ(watches[0]["allowWatchBookmarks"], "true");
  EXPECT_EQ(watches[0]["resourceVersion"], "3"); // the list's version
  int timeout = std::stoi(watches[0]["timeoutSeconds"].get<std::string>());
  EXPECT_GE(timeout, 300);
  EXPECT_LT(timeout, 600);

  // Events: added, modified, deleted.
  server.apply(testing::service("default", "c", "10.96.0.3", 80));
  ASSERT_TRUE(testing::waitUntil([&] { return has("Service", "c"); }));
  server.apply(testing::service("default", "a", "10.96.0.9", 80));
  ASSERT_TRUE(testing::waitUntil(
      [&] { return stored("Service", "a").find("10.96.0.9") != std::string::npos; }));
  server.control({{"op", "delete"}, {"apiVersion", "v1"}, {"kind", "Service"}, {"name", "b"}});
  ASSERT_TRUE(testing::waitUntil([&] { return !has("Service", "b"); }));
  EXPECT_EQ(counter_.deletes, 1);

  // A bookmark moves the version forward without an object.
  server.apply(testing::pod("p", "n1", "10.0.0.1")); // another resource: no event for services
  std::string rv = server.control({{"op", "bookmark"}})["rv"];
  ASSERT_TRUE(testing::waitUntil([&] { return reflector_->resourceVersion() == rv; }));
  EXPECT_EQ(reflector_->stats().bookmarks, 1u);
  // A cut after the bookmark resumes from the bookmark's version, without a relist.
  server.control({{"op", "cut"}});
  ASSERT_TRUE(testing::waitUntil([&] { return requests(server, "watch").size() == 2; }));
  EXPECT_EQ(requests(server, "watch")[1]["resourceVersion"], rv);
  EXPECT_EQ(reflector_->stats().lists, 1u);
}

TEST_F(ReflectorTest, WatchCutMidStreamResumesFromTheLastVersionWithoutRelisting) {
  TestApiServer server({});
  server.apply(testing::service("default", "a", "10.96.0.1", 80));
  connect(server);
  run(kServices);
  ASSERT_TRUE(testing::waitUntil([&] { return server.stats()["watches"] == 1; }));
  server.apply(testing::service("default", "b", "10.96.0.2", 80));
  ASSERT_TRUE(testing::waitUntil([&] { return has("Service", "b"); }));
  std::string seen = reflector_->resourceVersion();
  server.control({{"op", "cut"}});
  server.apply(testing::service("default", "c", "10.96.0.3", 80)); // while it reconnects
  ASSERT_TRUE(testing::waitUntil([&] { return has("Service", "c"); }));
  EXPECT_EQ(reflector_->stats().lists, 1u);
  auto watches = requests(server, "watch");
  ASSERT_GE(watches.size(), 2u);
  EXPECT_EQ(watches[1]["resourceVersion"], seen);
}

TEST_F(ReflectorTest, GoneAsAnErrorEventRelistsAndDropsWhatWasDeletedMeanwhile) {
  TestApiServer server({});
  server.apply(testing::service("default", "a", "10.96.0.1", 80));
  server.apply(testing::service("default", "b", "10.96.0.2", 80));
  connect(server);
  run(kServices);
  ASSERT_TRUE(testing::waitUntil([&] { return server.stats()["watches"] == 1; }));
  // The server goes away, b is deleted and history compacted: the old version is gone.
  server.control({{"op", "down"}});
  server.control({{"op", "delete"}, {"apiVersion", "v1"}, {"kind", "Service"}, {"name", "b"}});
  server.control({{"op", "compact"}});
  server.control({{"op", "up"}});
  ASSERT_TRUE(testing::waitUntil([&] { return !has("Service", "b"); }));
  EXPECT_TRUE(has("Service", "a"));
  EXPECT_GE(reflector_->stats().expired, 1u);
  EXPECT_EQ(reflector_->stats().lists, 2u);
  EXPECT_EQ(counter_.deletes, 1);
  // client-go relists at least as new as what it saw (not from scratch) after a watch 410.
  auto lists = requests(server, "list");
  ASSERT_EQ(lists.size(), 2u);
  EXPECT_EQ(lists[1]["resourceVersion"], "3");
  EXPECT_EQ(lists[1]["limit"], "500");
}

TEST_F(ReflectorTest, GoneAsAStatusRelists) {
  TestApiServer server({});
  server.apply(testing::service("default", "a", "10.96.0.1", 80));
  server.control({{"op", "gone-as-status"}, {"value", true}});
  connect(server);
  run(kServices);
  ASSERT_TRUE(testing::waitUntil([&] { return server.stats()["watches"] == 1; }));
  server.control({{"op", "down"}});
  server.apply(testing::service("default", "b", "10.96.0.2", 80));
  server.control({{"op", "compact"}});
  server.control({{"op", "up"}});
  ASSERT_TRUE(testing::waitUntil([&] { return has("Service", "b"); }));
  EXPECT_EQ(reflector_->stats().lists, 2u);
  EXPECT_GE(server.stats()["stats"]["410"].get<int>(), 1);
}

TEST_F(ReflectorTest, ServerRestartedWithNewerVersionsRelists) {
  TestApiServer server({});
  server.apply(testing::service("default", "a", "10.96.0.1", 80));
  connect(server);
  run(kServices);
  ASSERT_TRUE(testing::waitUntil([&] { return server.stats()["watches"] == 1; }));
  server.control({{"op", "restart"}, {"rv", 1000}});
  server.apply(testing::service("default", "a", "10.96.7.7", 80));
  ASSERT_TRUE(testing::waitUntil(
      [&] { return stored("Service", "a").find("10.96.7.7") != std::string::npos; }));
  ASSERT_TRUE(testing::waitUntil([&] { return reflector_->resourceVersion() == "1001"; }));
  EXPECT_EQ(reflector_->stats().lists, 2u);
}

TEST_F(ReflectorTest, ServerRestartedWithOlderVersionsRelistsFromScratch) {
  TestApiServer server({});
  server.control({{"op", "restart"}, {"rv", 500}});
  server.apply(testing::service("default", "a", "10.96.0.1", 80));
  connect(server);
  run(kServices);
  ASSERT_TRUE(testing::waitUntil([&] { return server.stats()["watches"] == 1; }));
  // Restored from an older backup: the client's version is ahead of the server's.
  server.control({{"op", "restart"}, {"rv", 10}});
  server.apply(testing::service("default", "b", "10.96.0.2", 80));
  ASSERT_TRUE(testing::waitUntil([&] { return has("Service", "b"); }));
  auto lists = requests(server, "list");
  ASSERT_GE(lists.size(), 2u);
  EXPECT_EQ(lists.back().value("resourceVersion", ""), ""); // the newest, from etcd
  EXPECT_EQ(reflector_->resourceVersion(), "11");
}

TEST_F(ReflectorTest, PaginatesWithLimitAndContinueAndFiltersByNode) {
  TestApiServer server({});
  for (int i = 0; i < 7; ++i) {
    server.apply(testing::pod("on-" + std::to_string(i), "n1", "10.0.0." + std::to_string(i + 1)));
  }
  server.apply(testing::pod("elsewhere", "n2", "10.0.1.1"));
  connect(server);
  ReflectorOptions o = fastOptions();
  o.pageSize = 3;
  o.fieldSelector = "spec.nodeName=n1";
  run(kPods, o);
  ASSERT_TRUE(testing::waitUntil([&] { return server.stats()["watches"] == 1; }));
  EXPECT_EQ(store_.size(), 7u);
  EXPECT_FALSE(has("Pod", "elsewhere"));
  // Force a relist below the cache: paginated.
  server.control({{"op", "down"}});
  server.apply(testing::pod("elsewhere", "n2", "10.0.1.2")); // history moves past what it saw
  server.control({{"op", "compact"}});
  server.control({{"op", "up"}});
  ASSERT_TRUE(testing::waitUntil([&] { return reflector_->stats().lists == 2; }));
  auto lists = requests(server, "list");
  ASSERT_EQ(lists.size(), 4u); // one whole, then three pages of 3, 3, 1
  EXPECT_EQ(lists[1]["limit"], "3");
  EXPECT_FALSE(lists[1].contains("continue"));
  EXPECT_TRUE(lists[2].contains("continue"));
  EXPECT_TRUE(lists[3].contains("continue"));
  for (const auto& l : lists) {
    EXPECT_EQ(l["fieldSelector"], "spec.nodeName=n1");
  }
  EXPECT_EQ(store_.size(), 7u);
  // A pod moving to another node leaves this node's watch as a deletion.
  server.apply(testing::pod("on-0", "n2", "10.0.0.1"));
  ASSERT_TRUE(testing::waitUntil([&] { return !has("Pod", "on-0"); }));
  // Only what veer reads is kept: the image is not.
  EXPECT_EQ(stored("Pod", "on-1").find("registry/web"), std::string::npos);
  EXPECT_NE(stored("Pod", "on-1").find("\"containerPort\": 8080"), std::string::npos);
}

TEST_F(ReflectorTest, ThrottledListWaitsRetryAfter) {
  auto fake = std::make_unique<FakeClock>();
  FakeClock& clock = *fake;
  ownClock_ = std::move(fake);
  clock_ = ownClock_.get();
  TestApiServer server({});
  server.apply(testing::service("default", "a", "10.96.0.1", 80));
  server.control({{"op", "throttle"}, {"count", 1}, {"retryAfter", 7}});
  connect(server);
  run(kServices);
  ASSERT_TRUE(testing::waitUntil([&] { return has("Service", "a"); }));
  auto sleeps = clock.sleeps();
  ASSERT_GE(sleeps.size(), 1u);
  EXPECT_EQ(sleeps[0], 7s);
  EXPECT_EQ(reflector_->stats().throttled, 1u);
  // A throttled watch waits too, then watches again from where it was: no relist.
  ASSERT_TRUE(testing::waitUntil([&] { return server.stats()["watches"] == 1; }));
  server.control({{"op", "throttle"}, {"count", 1}, {"retryAfter", 3}});
  server.control({{"op", "cut"}});
  server.apply(testing::service("default", "b", "10.96.0.2", 80));
  ASSERT_TRUE(testing::waitUntil([&] { return has("Service", "b"); }));
  EXPECT_EQ(reflector_->stats().throttled, 2u);
  EXPECT_EQ(reflector_->stats().lists, 1u);
  sleeps = clock.sleeps();
  EXPECT_NE(std::find(sleeps.begin() + 1, sleeps.end(), Duration(3s)), sleeps.end());
}

TEST_F(ReflectorTest, ServerDownAtStartBacksOffExponentiallyWithJitterThenSyncs) {
  auto fake = std::make_unique<FakeClock>();
  FakeClock& clock = *fake;
  ownClock_ = std::move(fake);
  clock_ = ownClock_.get();
  TestApiServer server({.down = true});
  server.apply(testing::service("default", "a", "10.96.0.1", 80));
  connect(server);
  run(kServices, [] {
    ReflectorOptions o; // client-go's policy: 0.8 s doubling to 30 s, up to 100% jitter
    o.seed = 42;
    return o;
  }());
  ASSERT_TRUE(clock.waitForSleeps(8));
  server.control({{"op", "up"}});
  ASSERT_TRUE(testing::waitUntil([&] { return has("Service", "a"); }));
  auto sleeps = clock.sleeps();
  Duration base = 800ms;
  for (size_t i = 0; i < 8; ++i) {
    Duration lo = std::min<Duration>(base, 30s);
    EXPECT_GE(sleeps[i], lo) << "sleep " << i;
    EXPECT_LE(sleeps[i], std::min<Duration>(2 * base, 30s)) << "sleep " << i;
    base *= 2;
  }
  EXPECT_EQ(sleeps[7], 30s); // capped
  // After a success the next failure starts from the bottom again.
  size_t before = clock.sleeps().size();
  ASSERT_TRUE(testing::waitUntil([&] { return server.stats()["watches"] == 1; }));
  server.control({{"op", "down"}});
  ASSERT_TRUE(clock.waitForSleeps(before + 1));
  Duration first = clock.sleeps()[before];
  EXPECT_GE(first, 800ms);
  EXPECT_LE(first, 1600ms);
}

TEST_F(ReflectorTest, StopEndsAQuietWatchAndABackoffPromptly) {
  TestApiServer server({});
  connect(server);
  run(kServices);
  ASSERT_TRUE(testing::waitUntil([&] { return server.stats()["watches"] == 1; }));
  auto t0 = std::chrono::steady_clock::now();
  stop_.stop();
  thread_.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 500ms);

  // Sitting in a 30 s backoff: still prompt.
  StopToken stop2;
  TestApiServer down({.down = true});
  connect(down);
  ReflectorOptions o;
  o.backoff.initial = 30s;
  Reflector r(*client_, store_, kServices, o);
  std::thread t([&] { r.run(stop2); });
  ASSERT_TRUE(testing::waitUntil([&] { return r.stats().errors >= 1; }));
  t0 = std::chrono::steady_clock::now();
  stop2.stop();
  t.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 500ms);
}

TEST_F(ReflectorTest, RotatedTokenIsReReadAfter401) {
  TestApiServer server({.token = "first", .tls = true});
  server.apply(testing::service("default", "a", "10.96.0.1", 80));
  std::string tokenFile = dir_.path + "/token";
  std::ofstream(tokenFile) << "first\n";
  connect(server, testing::TestPki::get().caCert, tokenFile);
  run(kServices);
  ASSERT_TRUE(testing::waitUntil([&] { return server.stats()["watches"] == 1; }));
  int reads = client_->tokens().reads();
  // The kubelet writes the new token; the server stops accepting the old one.
  std::ofstream(tokenFile) << "second\n";
  server.control({{"op", "token"}, {"token", "second"}});
  server.control({{"op", "cut"}});
  server.apply(testing::service("default", "b", "10.96.0.2", 80));
  ASSERT_TRUE(testing::waitUntil([&] { return has("Service", "b"); }));
  EXPECT_GE(server.stats()["stats"]["401"].get<int>(), 1);
  EXPECT_GT(client_->tokens().reads(), reads);
}

TEST_F(ReflectorTest, HttpsVerifiesTheServerAgainstTheCa) {
  TestApiServer server({.tls = true});
  server.apply(testing::service("default", "a", "10.96.0.1", 80));
  connect(server, testing::TestPki::get().otherCaCert);
  run(kServices);
  ASSERT_TRUE(testing::waitUntil([&] { return reflector_->stats().errors >= 2; }));
  EXPECT_FALSE(reflector_->stats().synced);
  EXPECT_EQ(store_.size(), 0u);
  EXPECT_EQ(server.stats()["stats"].value("list", 0), 0); // no request got through
  TearDown();

  StopToken stop2;
  connect(server, testing::TestPki::get().caCert);
  Reflector r(*client_, store_, kServices, fastOptions());
  std::thread t([&] { r.run(stop2); });
  EXPECT_TRUE(testing::waitUntil([&] { return has("Service", "a"); }));
  stop2.stop();
  t.join();
}

TEST_F(ReflectorTest, ClientCertificateAuthenticates) {
  TestApiServer server({.tls = true, .requireClientCert = true});
  server.apply(testing::service("default", "a", "10.96.0.1", 80));
  connect(server, testing::TestPki::get().caCert);
  run(kServices);
  EXPECT_TRUE(testing::waitUntil([&] { return has("Service", "a"); }));
}

// ---------------------------------------------------------------------------
// Discovery and the set of reflectors

json crd(const std::string& group, const std::string& version, const std::string& resource,
         const std::string& kind) {
  return {{"op", "install"},
          {"group", group},
          {"version", version},
          {"resource", resource},
          {"kind", kind}};
}

TEST(ClusterSourceTest, MissingCrdIsSkippedThenWatchedWhenItAppearsAtTheNewestVersion) {
  TestApiServer server({});
  testing::TempDir dir;
  auto cfg = loadKubeconfig(server.writeKubeconfig(dir.path));
  ASSERT_TRUE(cfg) << cfg.error().message;
  ApiClient client(*cfg, systemClock());
  ObjectStore store;
  server.apply(testing::service("default", "a", "10.96.0.1", 80));
  server.apply(testing::pod("mine", "n1", "10.0.0.1"));
  server.apply(testing::pod("other", "n2", "10.0.0.2"));
  ClusterSource::Options o;
  o.nodeName = "n1";
  o.rediscoverEvery = 20ms;
  o.reflector = fastOptions();
  ClusterSource source(client, store, o);
  source.start();
  ASSERT_TRUE(testing::waitUntil([&] { return source.synced(); }));
  EXPECT_EQ(store.size(), 2u); // the service and this node's pod
  for (const auto& s : source.status()) {
    if (s.kind == "VirtualService") {
      EXPECT_FALSE(s.type);
    }
  }
  // Istio appears, serving v1alpha3 and v1: veer watches v1.
  server.control(crd("networking.istio.io", "v1alpha3", "virtualservices", "VirtualService"));
  server.control(crd("networking.istio.io", "v1", "virtualservices", "VirtualService"));
  server.apply({{"apiVersion", "networking.istio.io/v1"},
                {"kind", "VirtualService"},
                {"metadata", {{"name", "vs"}, {"namespace", "default"}}},
                {"spec", {{"hosts", json::array({"a"})}}},
                {"status", {{"observedGeneration", 1}}}});
  ApiObject vs;
  ASSERT_TRUE(testing::waitUntil([&] {
    return store.get(ObjectKey{"networking.istio.io", "VirtualService", "default", "vs"}, vs);
  }));
  EXPECT_EQ(vs.apiVersion, "networking.istio.io/v1");
  EXPECT_EQ(vs.sourceName(), "api:VirtualService");
  EXPECT_EQ(vs.json.find("observedGeneration"), std::string::npos);
  for (const auto& s : source.status()) {
    if (s.kind == "VirtualService") {
      ASSERT_TRUE(s.type);
      EXPECT_EQ(s.type->resource, "virtualservices");
      EXPECT_TRUE(s.counts.synced);
      EXPECT_GE(s.counts.lists + s.counts.events, 1u);
    }
  }
  // Uninstalled: its objects go.
  server.control({{"op", "uninstall"},
                  {"group", "networking.istio.io"},
                  {"version", "v1"},
                  {"resource", "virtualservices"}});
  server.control({{"op", "uninstall"},
                  {"group", "networking.istio.io"},
                  {"version", "v1alpha3"},
                  {"resource", "virtualservices"}});
  EXPECT_TRUE(testing::waitUntil([&] { return store.size() == 2u; }));
  source.stop();
}

TEST(ClusterSourceTest, DiscoveryPicksTheNewestServedVersionOfEachKind) {
  TestApiServer server({});
  testing::TempDir dir;
  auto cfg = loadKubeconfig(server.writeKubeconfig(dir.path));
  ASSERT_TRUE(cfg);
  ApiClient client(*cfg, systemClock());
  server.control(crd("networking.istio.io", "v1beta1", "destinationrules", "DestinationRule"));
  server.control(crd("networking.istio.io", "v1alpha3", "destinationrules", "DestinationRule"));
  server.control(crd("gateway.networking.k8s.io", "v1beta1", "httproutes", "HTTPRoute"));
  server.control(crd("istio.alibabacloud.com", "v1beta1", "trafficlabels", "TrafficLabel"));
  StopToken stop;
  auto found = discover(client, watchedKinds(), stop);
  ASSERT_TRUE(found) << found.error().message;
  std::map<std::string, std::string> byKind;
  for (size_t i = 0; i < watchedKinds().size(); ++i) {
    if ((*found)[i]) {
      byKind[watchedKinds()[i].kind] = (*found)[i]->apiVersion() + " " + (*found)[i]->resource;
    }
  }
  EXPECT_EQ(byKind["Service"], "v1 services");
  EXPECT_EQ(byKind["Pod"], "v1 pods");
  EXPECT_EQ(byKind["EndpointSlice"], "discovery.k8s.io/v1 endpointslices");
  EXPECT_EQ(byKind["DestinationRule"], "networking.istio.io/v1beta1 destinationrules");
  EXPECT_EQ(byKind["HTTPRoute"], "gateway.networking.k8s.io/v1beta1 httproutes");
  EXPECT_EQ(byKind["TrafficLabel"], "istio.alibabacloud.com/v1beta1 trafficlabels");
  EXPECT_EQ(byKind.count("VirtualService"), 0u);
  EXPECT_EQ(byKind.count("HTTPProxy"), 0u);
}

} // namespace
} // namespace veer::k8s
