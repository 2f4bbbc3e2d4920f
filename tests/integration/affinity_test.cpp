// Session affinity in the kernel (DestinationRule consistentHash useSourceIp):
// - 100 client pods, and 200 client cgroups in the node netns, walk the seed 001
//   canary steps; every client's version history must be monotone (v1 -> v2,
//   never back), each client sticky within a step, and each step's share of
//   clients on v2 within 3 standard deviations of the weight (a binomial: a
//   hash spreads clients, it cannot be exact). Pods: 100, not 200: the kernel's
//   ARP table is one table for all namespaces (gc_thresh2 = 512); 200 pods and
//   their backends' entries push it into forced GC and connects fail with
//   EHOSTUNREACH, and tests do not change host sysctls. Cgroups in the node
//   netns (host-network clients, keyed by cgroup id) share one neighbour entry
//   per backend, so they scale.
// - Maglev churn on a pool of N = 10 backends: removing one moves only its
//   clients (plus Maglev's own small disruption, bounded by 1 % of clients),
//   adding one moves about 1/(N+1), all of them to the new backend.
// - Pins (veer_affinity): with them, adding a backend moves nobody and removing
//   one moves exactly its clients; once a pin has been idle for the service's
//   timeout, its client falls back to the ring.

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <bpf/bpf.h>
#include <time.h>

#include <iostream>
#include <set>

#include "kernel_path_fixture.h"
#include "node_clients.h"

namespace veer::test {
namespace {

std::string stickyReviews(int v1, int v2) {
  return R"(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      consistentHash:
        useSourceIp: true
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: )" +
         std::to_string(v1) + R"(
    - destination: {host: reviews, subset: v2}
      weight: )" +
         std::to_string(v2) + "\n";
}

TEST_F(KernelPathTest, AffinityKeepsClientsOnTheCanaryAsItGrows) {
  constexpr int kClients = 100;
  std::vector<std::string> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back("c" + std::to_string(i));
    Status s = world_->addPod(PodSpec{clients.back()});
    ASSERT_TRUE(s) << s.error().message;
  }
  fs::remove(configDir_ / "destination-rules.yaml"); // routes.yaml brings its own
  agent_->start();

  std::map<std::string, std::string> last; // client -> version at the previous step
  for (int canary : {0, 5, 10, 20, 50, 100}) {
    SCOPED_TRACE("canary " + std::to_string(canary) + "%");
    ASSERT_NO_FATAL_FAILURE(applyRoutes(stickyReviews(100 - canary, canary)));
    int onCanary = 0;
    for (const std::string& c : clients) {
      auto first = world_->httpGet(c, kReviews4, kHttpPort);
      auto again = world_->httpGet(c, kReviews4, kHttpPort);
      ASSERT_TRUE(first && again);
      ASSERT_TRUE(first->ok && again->ok) << c << ": " << first->step << " " << strerror(first->err)
                                          << " / " << again->step << " " << strerror(again->err);
      EXPECT_EQ(first->body, again->body) << c << " is not sticky";
      const std::string version = first->body.substr(0, 2);
      if (last[c] == "v2") {
        EXPECT_EQ(version, "v2") << c << " moved back from the canary";
      }
      last[c] = version;
      onCanary += version == "v2";
    }
    const double p = canary / 100.0;
    const double sigma = std::sqrt(kClients * p * (1 - p));
    EXPECT_NEAR(onCanary, kClients * p, 3 * sigma + 1e-9) << onCanary << " clients on v2";
  }
}

std::string bpftoolDump(const fs::path& pin) {
  const std::string cmd = "bpftool map dump pinned " + pin.string() + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) {
    return "(popen failed)";
  }
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) {
    out.append(buf, n);
  }
  EXPECT_EQ(pclose(p), 0) << cmd << ":\n" << out.substr(0, 500);
  return out;
}

// An operator reads pins and rings with plain bpftool: BTF names every field.
TEST_F(KernelPathTest, AffinityMapsDumpWithBtfFieldNames) {
  fs::remove(configDir_ / "destination-rules.yaml");
  agent_->start();
  ASSERT_NO_FATAL_FAILURE(applyRoutes(stickyReviews(80, 20)));
  auto r = world_->httpGet("productpage-v1", kReviews4, kHttpPort);
  ASSERT_TRUE(r && r->ok);

  const fs::path maps = bpffs_ / "veer/maps";
  const std::string pins = bpftoolDump(maps / "veer_affinity");
  for (const char* field : {"\"client\"", "\"last_used_ns\"", "\"backend\"", "\"backend_port\""}) {
    EXPECT_NE(pins.find(field), std::string::npos) << field << " in " << pins.substr(0, 800);
  }
  EXPECT_NE(bpftoolDump(maps / "veer_maglev").find("\"backend_index\""), std::string::npos);
  EXPECT_NE(bpftoolDump(maps / "veer_member").find("\"version_id\""), std::string::npos);
  const std::string svc = bpftoolDump(maps / "veer_svc");
  EXPECT_NE(svc.find("\"affinity_timeout\": 10800"), std::string::npos) << svc.substr(0, 800);
  EXPECT_NE(svc.find("\"lane_version\""), std::string::npos);
}

/** Seed 001's DestinationRules with reviews under consistentHash useSourceIp. */
std::string stickySeed001Rules() {
  std::string rules = readText(sourceDir() / "configs/001-istio-canary/destination-rule.yaml");
  const std::string host = "  host: reviews\n";
  const size_t at = rules.find(host);
  EXPECT_NE(at, std::string::npos);
  rules.insert(at + host.size(), "  trafficPolicy:\n    loadBalancer:\n      consistentHash:\n"
                                 "        useSourceIp: true\n");
  return rules;
}

TEST_F(KernelPathTest, AffinityHolds200ClientCgroupsThroughTheSeed001Steps) {
  NodeClients clients(*world_, 200);
  ASSERT_TRUE(clients.create());
  writeAtomically(configDir_ / "destination-rules.yaml", stickySeed001Rules());
  agent_->setNetns("/run/netns/" + world_->nodeNetns()); // the node's netns is the host's
  agent_->start();

  std::vector<std::string> last(clients.size());
  const std::pair<const char*, int> steps[] = {{"01-all-v1.yaml", 0}, {"04-5.yaml", 5},
                                               {"05-10.yaml", 10},    {"06-20.yaml", 20},
                                               {"07-50.yaml", 50},    {"08-100.yaml", 100}};
  for (const auto& [step, canary] : steps) {
    SCOPED_TRACE(step);
    ASSERT_NO_FATAL_FAILURE(applyStep("001-istio-canary", step));
    const std::vector<std::string> first = clients.getAll(kReviews4, kHttpPort);
    const std::vector<std::string> again = clients.getAll(kReviews4, kHttpPort);
    int onCanary = 0;
    for (size_t i = 0; i < clients.size(); ++i) {
      ASSERT_EQ(first[i].rfind("error", 0), std::string::npos)
          << clients.cgroup(i) << ": " << first[i];
      EXPECT_EQ(first[i], again[i]) << clients.cgroup(i) << " is not sticky";
      if (last[i] == "v2") {
        EXPECT_EQ(first[i], "v2") << clients.cgroup(i) << " moved back from the canary";
      }
      last[i] = first[i];
      onCanary += first[i] == "v2";
    }
    const double n = clients.size(), p = canary / 100.0;
    EXPECT_NEAR(onCanary, n * p, 3 * std::sqrt(n * p * (1 - p)) + 1e-9)
        << onCanary << " of " << n << " clients on v2";
  }
}

/**
 * A pool Service (10.96.0.40:9080, app: pool) of backends pool-b<i> answering "b<i>",
 * under consistentHash useSourceIp; clients are cgroups in the node netns.
 */
class PoolAffinityTest : public KernelPathTest {
protected:
  static constexpr const char* kPool = "10.96.0.40";
  static constexpr int kBackends = 11; // b0..b9 at first, b10 joins later
  static constexpr int kClients = 500;

  void SetUp() override {
    KernelPathTest::SetUp();
    if (HasFatalFailure()) {
      return;
    }
    for (int i = 0; i < kBackends; ++i) {
      const std::string pod = "pool-b" + std::to_string(i);
      Status s = world_->addPod(PodSpec{pod, {backendIp(i)}, {}});
      ASSERT_TRUE(s) << s.error().message;
      auto srv = world_->startTestServer(pod, "b" + std::to_string(i), {kHttpPort});
      ASSERT_TRUE(srv) << srv.error().message;
      servers_.push_back(std::move(*srv));
    }
    clients_ = std::make_unique<NodeClients>(*world_, kClients);
    ASSERT_TRUE(clients_->create());
    agent_->setNetns("/run/netns/" + world_->nodeNetns());
  }

  void TearDown() override {
    clients_.reset();
    KernelPathTest::TearDown();
  }

  static std::string backendIp(int i) { return "10.244.1." + std::to_string(100 + i); }

  /** Applies the pool with these backends ready and this affinity timeout annotation. */
  void applyPool(const std::set<int>& live, const std::string& timeout) {
    std::ostringstream y;
    y << "apiVersion: v1\nkind: Service\nmetadata: {name: pool}\nspec:\n  clusterIP: " << kPool
      << "\n  ports: [{name: http, port: 9080}]\n  selector: {app: pool}\n";
    for (int i : live) {
      y << "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: pool-b" << i
        << "\n  labels: {app: pool}\nstatus:\n  podIP: " << backendIp(i)
        << "\n  conditions: [{type: Ready, status: \"True\"}]\n";
    }
    y << "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n"
         "  name: pool\n  annotations: {veer.io/affinity-timeout: \""
      << timeout
      << "\"}\nspec:\n  host: pool\n  trafficPolicy:\n    loadBalancer:\n"
         "      consistentHash: {useSourceIp: true}\n";
    writeAtomically(configDir_ / "pool.yaml", y.str());
    waitApplied();
  }

  /** The backend of every client; fails the test on any error. */
  std::vector<std::string> round() {
    std::vector<std::string> got = clients_->getAll(kPool, kHttpPort);
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].rfind("error", 0), std::string::npos)
          << clients_->cgroup(i) << ": " << got[i];
    }
    return got;
  }

  struct Moves {
    int moved = 0;     // clients whose backend changed
    int from = 0;      // clients that were on `backend` before
    int to = 0;        // clients on `backend` after
    int elsewhere = 0; // moved, but neither from nor to `backend`
  };
  /**
   * Most clients that may move between staying backends: Maglev moves at most a
   * share p of the table between them (compiler_test checks p <= 1 % per change),
   * and clients sample the table, so allow 3 standard deviations of the binomial.
   */
  static double disruptionBound(double p) {
    return kClients * p + 3 * std::sqrt(kClients * p * (1 - p));
  }

  static Moves compare(const std::vector<std::string>& before,
                       const std::vector<std::string>& after, const std::string& backend) {
    Moves m;
    for (size_t i = 0; i < before.size(); ++i) {
      m.from += before[i] == backend;
      m.to += after[i] == backend;
      if (before[i] != after[i]) {
        m.moved++;
        m.elsewhere += before[i] != backend && after[i] != backend;
      }
    }
    return m;
  }

  /** Waits until every pin in veer_affinity has been idle longer than seconds. */
  void waitPinsIdle(int seconds) {
    auto maps = PinnedMaps::open(bpffs_.string());
    ASSERT_TRUE(maps) << maps.error().message;
    const int fd = maps->fd("veer_affinity");
    const auto deadline = steady_clock::now() + std::chrono::seconds(seconds + 10);
    while (steady_clock::now() < deadline) {
      timespec now{};
      clock_gettime(CLOCK_MONOTONIC_COARSE, &now); // bpf_ktime_get_coarse_ns's clock
      const uint64_t nowNs = uint64_t(now.tv_sec) * 1000000000ULL + now.tv_nsec;
      int fresh = 0, pins = 0;
      veer_affinity_key key{}, next{};
      const veer_affinity_key* prev = nullptr;
      while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        key = next;
        prev = &key;
        veer_affinity pin{};
        if (bpf_map_lookup_elem(fd, &key, &pin) == 0) {
          pins++;
          fresh += nowNs - pin.last_used_ns <= uint64_t(seconds) * 1000000000ULL;
        }
      }
      if (pins > 0 && fresh == 0) {
        return;
      }
      std::this_thread::sleep_for(milliseconds(100));
    }
    FAIL() << "pins still fresh after " << seconds + 10 << " s";
  }

  std::unique_ptr<NodeClients> clients_;
};

TEST_F(PoolAffinityTest, MaglevChurnMovesOnlyWhatItMust) {
  agent_->start();
  const double n = kClients;
  std::set<int> live = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  ASSERT_NO_FATAL_FAILURE(applyPool(live, "0s")); // no pins: the ring alone
  const std::vector<std::string> ten = round();

  // Remove b3: its clients move; Maglev's own disruption of the others is small.
  live.erase(3);
  ASSERT_NO_FATAL_FAILURE(applyPool(live, "0s"));
  const std::vector<std::string> nine = round();
  const Moves rm = compare(ten, nine, "b3");
  EXPECT_EQ(rm.to, 0) << "a client still reaches the removed backend";
  EXPECT_EQ(rm.moved - rm.elsewhere, rm.from) << "not every client of b3 moved";
  EXPECT_LE(rm.elsewhere, disruptionBound(0.01)) << "clients of live backends moved";
  EXPECT_NEAR(rm.from, n / 10, 3 * std::sqrt(n * 0.1 * 0.9)) << "b3's share of clients";

  // Add b10: about 1/(N+1) of the clients move, all of them onto b10.
  live.insert(10);
  ASSERT_NO_FATAL_FAILURE(applyPool(live, "0s"));
  const std::vector<std::string> added = round();
  const Moves add = compare(nine, added, "b10");
  EXPECT_EQ(add.moved - add.elsewhere, add.to) << "moved clients went elsewhere than b10";
  EXPECT_LE(add.elsewhere, disruptionBound(0.01));
  EXPECT_NEAR(add.moved, n / 10, 3 * std::sqrt(n * 0.1 * 0.9)) << "share moved onto b10";

  std::cout << "[ churn ] N=10, " << kClients << " clients: removing b3 moved "
            << rm.moved / n * 100 << "% = b3's own clients " << rm.from / n * 100
            << "% (binomial around 1/N = 10%) + " << rm.elsewhere / n * 100
            << "% of the others (bound 1%); adding b10 (9 -> 10) moved " << add.moved / n * 100
            << "% (about 1/10), " << add.elsewhere / n * 100 << "% of them not onto b10"
            << std::endl;
}

TEST_F(PoolAffinityTest, PinsHoldAcrossRebuildsUntilIdleForTheTimeout) {
  agent_->start();
  std::set<int> live = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  ASSERT_NO_FATAL_FAILURE(applyPool(live, "1h"));
  const std::vector<std::string> before = round();

  // A new backend takes ~1/(N+1) of the ring, but no pinned client leaves its backend.
  live.insert(10);
  ASSERT_NO_FATAL_FAILURE(applyPool(live, "1h"));
  const std::vector<std::string> grown = round();
  EXPECT_EQ(compare(before, grown, "b10").moved, 0) << "pinned clients moved on a rebuild";

  // A removed backend's pins are void: its clients, and only they, move.
  live.erase(3);
  ASSERT_NO_FATAL_FAILURE(applyPool(live, "1h"));
  const std::vector<std::string> shrunk = round();
  const Moves rm = compare(grown, shrunk, "b3");
  EXPECT_GT(rm.from, 0);
  EXPECT_EQ(rm.moved, rm.from) << "a client of a live backend moved";
  EXPECT_EQ(rm.to, 0);

  // Shorten the timeout; once every pin has been idle that long, clients follow
  // the ring again: about 1/(N+1) of them (the share b10 took) move, onto b10.
  ASSERT_NO_FATAL_FAILURE(applyPool(live, "1s"));
  ASSERT_NO_FATAL_FAILURE(waitPinsIdle(1));
  const std::vector<std::string> expired = round();
  const Moves ex = compare(shrunk, expired, "b10");
  EXPECT_GT(ex.moved, 0) << "expired pins still held";
  EXPECT_EQ(ex.moved - ex.elsewhere, ex.to - ex.from);
  // The pins were taken on the ring of b0..b9; the ring now also lost b3 and
  // gained b10: two changes, each within Maglev's 1 % between staying backends.
  EXPECT_LE(ex.elsewhere, disruptionBound(0.02));
  const double n = kClients;
  EXPECT_NEAR(ex.to, n / 10, 3 * std::sqrt(n * 0.1 * 0.9)) << "b10's share once pins expired";
}

} // namespace
} // namespace veer::test
