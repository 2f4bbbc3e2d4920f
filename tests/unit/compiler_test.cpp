#include <gtest/gtest.h>

#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include "compiler/compiler.h"
#include "compiler/maglev.h"
#include "config/loader.h"
#include "config/resolve.h"
#include "datapath/recycle.h"

namespace veer {
namespace {

std::vector<std::string> backendNames(int n, int from = 0) {
  std::vector<std::string> names;
  for (int i = from; i < from + n; ++i) {
    names.push_back("10.244.1." + std::to_string(i) + ":9080");
  }
  return names;
}

struct SlotCase {
  const char* description;
  std::vector<uint8_t> weights;
};

class WeightSlotsTest : public ::testing::TestWithParam<SlotCase> {};

// Any 100 consecutive picks (the cycle repeats) hold each version exactly its
// weight; so over 1000 consecutive connections each share is exact.
TEST_P(WeightSlotsTest, EveryWindowIsExact) {
  const auto& weights = GetParam().weights;
  const std::vector<uint8_t> slots = weightSlots(weights);
  ASSERT_EQ(slots.size(), size_t(VEER_WEIGHT_SLOTS));
  for (int start = 0; start < VEER_WEIGHT_SLOTS; ++start) {
    std::vector<int> count(weights.size(), 0);
    for (int i = 0; i < 1000; ++i) {
      uint8_t v = slots[(start + i) % VEER_WEIGHT_SLOTS];
      ASSERT_LT(v, weights.size());
      count[v]++;
    }
    for (size_t v = 0; v < weights.size(); ++v) {
      EXPECT_EQ(count[v], weights[v] * 10) << "version " << v << " window start " << start;
    }
  }
}

// Smooth: in any window of 10 picks a version of weight w appears within one of
// w/10 (a plain cumulative table would put all of v1 first).
TEST_P(WeightSlotsTest, ShortWindowsAreSmooth) {
  const auto& weights = GetParam().weights;
  const std::vector<uint8_t> slots = weightSlots(weights);
  for (int start = 0; start < VEER_WEIGHT_SLOTS; ++start) {
    std::vector<int> count(weights.size(), 0);
    for (int i = 0; i < 10; ++i) {
      count[slots[(start + i) % VEER_WEIGHT_SLOTS]]++;
    }
    for (size_t v = 0; v < weights.size(); ++v) {
      EXPECT_LE(std::abs(count[v] - weights[v] / 10.0), 2.0) << "version " << v;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, WeightSlotsTest,
                         ::testing::Values(SlotCase{"all v1", {100}},
                                           SlotCase{"blue/green", {0, 100}},
                                           SlotCase{"50/50", {50, 50}}, SlotCase{"80/20", {80, 20}},
                                           SlotCase{"95/5", {95, 5}}, SlotCase{"90/10", {90, 10}},
                                           SlotCase{"three ways", {33, 33, 34}},
                                           SlotCase{"1/99", {1, 99}},
                                           SlotCase{"zero in the middle", {40, 0, 60}}));

TEST(WeightSlots, AllZeroMeansNoVersion) {
  const std::vector<uint8_t> slots = weightSlots({0, 0});
  EXPECT_TRUE(
      std::all_of(slots.begin(), slots.end(), [](uint8_t s) { return s == VEER_NO_VERSION; }));
}

TEST(Maglev, EveryBackendGetsAFairShare) {
  const auto names = backendNames(10);
  const auto table = maglevTable(names, VEER_MAGLEV_SIZE);
  ASSERT_EQ(table.size(), size_t(VEER_MAGLEV_SIZE));
  std::map<uint32_t, int> share;
  for (uint32_t b : table) {
    ASSERT_LT(b, names.size());
    share[b]++;
  }
  ASSERT_EQ(share.size(), names.size());
  for (const auto& [b, n] : share) {
    EXPECT_NEAR(n, VEER_MAGLEV_SIZE / 10.0, VEER_MAGLEV_SIZE * 0.01) << names[b];
  }
}

TEST(Maglev, RemovingOneBackendMovesOnlyItsEntriesMostly) {
  const auto before = backendNames(10);
  auto after = before;
  after.erase(after.begin() + 3);
  const auto t1 = maglevTable(before, VEER_MAGLEV_SIZE);
  const auto t2 = maglevTable(after, VEER_MAGLEV_SIZE);
  int moved = 0;
  for (size_t i = 0; i < t1.size(); ++i) {
    if (before[t1[i]] != after[t2[i]]) {
      moved++;
    }
  }
  // Maglev's bound: about 1/N, plus a little disruption.
  EXPECT_LE(moved, VEER_MAGLEV_SIZE * (1.0 / 10 + 0.01));
  EXPECT_GE(moved, VEER_MAGLEV_SIZE * (1.0 / 10 - 0.02));
}

// Maglev's disruption: entries that move between backends that both stay.
// The issue's bound is 1 % of the table, for removing and for adding one of 10.
TEST(Maglev, ChurnMovesFewEntriesBetweenStayingBackends) {
  const auto ten = backendNames(11);
  std::vector<std::string> base(ten.begin(), ten.begin() + 10);
  auto removed = base;
  removed.erase(removed.begin() + 3);
  const auto t10 = maglevTable(base, VEER_MAGLEV_SIZE);
  const auto t9 = maglevTable(removed, VEER_MAGLEV_SIZE);
  const auto t11 = maglevTable(ten, VEER_MAGLEV_SIZE);
  int removeOthers = 0, addOthers = 0, addMoved = 0;
  for (size_t i = 0; i < t10.size(); ++i) {
    removeOthers += base[t10[i]] != base[3] && base[t10[i]] != removed[t9[i]];
    if (base[t10[i]] != ten[t11[i]]) {
      addMoved++;
      addOthers += ten[t11[i]] != ten[10];
    }
  }
  EXPECT_LE(removeOthers, VEER_MAGLEV_SIZE * 0.01);
  EXPECT_LE(addOthers, VEER_MAGLEV_SIZE * 0.01);
  EXPECT_NEAR(addMoved, VEER_MAGLEV_SIZE / 11.0, VEER_MAGLEV_SIZE * 0.01); // ~1/(N+1)
}

TEST(Maglev, OrderOfNamesDoesNotMatter) {
  auto names = backendNames(7);
  const auto t1 = maglevTable(names, VEER_MAGLEV_SIZE);
  std::reverse(names.begin(), names.end());
  const auto t2 = maglevTable(names, VEER_MAGLEV_SIZE);
  for (size_t i = 0; i < t1.size(); ++i) {
    ASSERT_EQ(names[names.size() - 1 - t1[i]], names[t2[i]]);
  }
}

PlanService reviews(std::vector<std::pair<std::string, uint8_t>> split) {
  PlanService s;
  s.ns = "default";
  s.name = "reviews";
  s.addr = *IpAddr::parse("10.96.0.20");
  s.port = 9080;
  int host = 21;
  for (const auto& [subset, w] : split) {
    PlanVersion v;
    v.subset = subset;
    v.weight = w;
    v.backends.push_back({*IpAddr::parse("10.244.1." + std::to_string(host++)), 9080, ""});
    s.versions.push_back(v);
  }
  return s;
}

TEST(Compile, ImageHoldsServiceVersionsBackends) {
  Plan plan;
  plan.services.push_back(reviews({{"v1", 80}, {"v2", 20}}));
  CompileResult r = compile(plan);
  ASSERT_TRUE(r.errors.empty());
  const MapImage& img = r.image;
  ASSERT_EQ(img.services.size(), 1u);
  const auto& [key, svc] = img.services[0];
  EXPECT_EQ(key.port, htons(9080));
  EXPECT_EQ(key.proto, IPPROTO_TCP);
  EXPECT_EQ(key.gen, 0);
  EXPECT_EQ(IpAddr::fromBytes(key.addr).str(), "10.96.0.20");
  EXPECT_EQ(svc.n_versions, 2);
  ASSERT_EQ(img.versions.size(), 2u);
  const veer_version v1 = img.versionValue(img.versions[0].second); // as the map holds it
  EXPECT_STREQ(v1.subset, "v1");
  EXPECT_STREQ(v1.service, "default/reviews:9080");
  EXPECT_EQ(img.versionValue(img.versions[1].second).weight, 20);
  ASSERT_EQ(img.backends.size(), 2u);
  EXPECT_EQ(img.backends[1].second.family, VEER_FAMILY_V4);
  EXPECT_EQ(IpAddr::fromBytes(img.backends[1].second.addr).str(), "10.244.1.22");
  EXPECT_EQ(img.backends[1].second.port, htons(9080));
  int v2slots = std::count(std::begin(svc.slot), std::end(svc.slot), 1);
  EXPECT_EQ(v2slots, 20);
}

TEST(Compile, SameInputSameBytes) {
  Plan plan;
  PlanService s = reviews({{"v1", 50}, {"v2", 50}});
  s.versions[0].backends.push_back({*IpAddr::parse("10.244.1.40"), 9080, ""});
  plan.services.push_back(s);
  CompileResult a = compile(plan), b = compile(plan);
  EXPECT_EQ(a.image.digest(), b.image.digest());
  ASSERT_EQ(a.image.rings.size(), 1u);
  ASSERT_EQ(b.image.rings.size(), 1u);
  EXPECT_EQ(std::memcmp(a.image.rings[0].second.get(), b.image.rings[0].second.get(),
                        sizeof(veer_maglev_ring)),
            0);
}

// The agent keeps one MaglevCache across applies: a ring is computed again only when its
// version's backends change, and the cache holds only the live config's rings.
TEST(Compile, MaglevCacheRecomputesOnlyChangedRings) {
  auto twoEach = [](const std::string& lastV2Host) {
    Plan plan;
    PlanService s = reviews({{"v1", 50}, {"v2", 50}});
    s.versions[0].backends.push_back({*IpAddr::parse("10.244.1.40"), 9080, ""});
    s.versions[1].backends.push_back({*IpAddr::parse(lastV2Host), 9080, ""});
    plan.services.push_back(s);
    return plan;
  };
  MaglevCache cache;
  CompileResult a = compile(twoEach("10.244.1.41"), &cache);
  ASSERT_EQ(a.image.rings.size(), 2u);
  EXPECT_EQ(cache.computed(), 2u);
  CompileResult same = compile(twoEach("10.244.1.41"), &cache);
  EXPECT_EQ(cache.computed(), 2u); // nothing changed, nothing computed
  EXPECT_EQ(same.image.digest(), a.image.digest());
  CompileResult b = compile(twoEach("10.244.1.42"), &cache); // one v2 pod replaced
  EXPECT_EQ(cache.computed(), 3u);
  EXPECT_EQ(cache.size(), 2u);                                 // v2's old ring is gone
  EXPECT_EQ(b.image.rings[0].second, a.image.rings[0].second); // v1's ring, shared
  EXPECT_NE(b.image.digest(), a.image.digest());
  // And the same bytes as a compile without a cache.
  EXPECT_EQ(compile(twoEach("10.244.1.42")).image.digest(), b.image.digest());
}

TEST(Compile, WeightChangeChangesDigest) {
  Plan p1, p2;
  p1.services.push_back(reviews({{"v1", 80}, {"v2", 20}}));
  p2.services.push_back(reviews({{"v1", 90}, {"v2", 10}}));
  EXPECT_NE(compile(p1).image.digest(), compile(p2).image.digest());
}

// A ring only where there is a choice: one backend is named by the version itself, none
// refuses the connect.
TEST(Compile, RingOnlyForTwoOrMoreBackends) {
  Plan plan;
  PlanService s = reviews({{"v1", 50}, {"v3", 50}});
  s.versions[1].backends.push_back({*IpAddr::parse("10.244.1.40"), 9080, ""});
  s.versions.push_back(PlanVersion{"v2", 0, {}});
  plan.services.push_back(s);
  CompileResult r = compile(plan);
  ASSERT_TRUE(r.errors.empty());
  std::vector<veer_version> versions; // the map values
  for (const auto& [k, v] : r.image.versions) {
    versions.push_back(r.image.versionValue(v));
  }
  ASSERT_EQ(versions.size(), 3u);
  EXPECT_EQ(versions[0].n_backends, 1);
  EXPECT_EQ(versions[1].n_backends, 2);
  EXPECT_EQ(versions[2].n_backends, 0);
  ASSERT_EQ(r.image.rings.size(), 1u);
  EXPECT_EQ(r.image.rings[0].first.id, r.image.versions[1].first.id);
  ASSERT_EQ(r.image.backends.size(), 3u);
  auto addrOf = [&](uint32_t id) {
    auto be = std::find_if(r.image.backends.begin(), r.image.backends.end(),
                           [&](const auto& b) { return b.first.id == id; });
    return be == r.image.backends.end() ? std::string("?")
                                        : IpAddr::fromBytes(be->second.addr).str();
  };
  // v1's only backend, named by the version.
  EXPECT_EQ(addrOf(versions[0].backend_id[0]), "10.244.1.21");
  // v3's two: the ring indexes its list, and both own part of it.
  EXPECT_EQ(addrOf(versions[1].backend_id[0]), "10.244.1.22");
  EXPECT_EQ(addrOf(versions[1].backend_id[1]), "10.244.1.40");
  std::map<uint8_t, int> owners;
  for (uint8_t i : r.image.rings[0].second->backend_index) {
    owners[i]++;
  }
  ASSERT_EQ(owners.size(), 2u);
  EXPECT_GT(owners[0], VEER_MAGLEV_SIZE / 3);
  EXPECT_GT(owners[1], VEER_MAGLEV_SIZE / 3);
}

TEST(Compile, TooManyVersionsIsAnError) {
  Plan plan;
  std::vector<std::pair<std::string, uint8_t>> split;
  for (int i = 0; i < VEER_MAX_VERSIONS + 1; ++i) {
    split.emplace_back("v" + std::to_string(i), i == 0 ? 100 : 0);
  }
  plan.services.push_back(reviews(split));
  CompileResult r = compile(plan);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].find("versions (limit 16)"), std::string::npos) << r.errors[0];
}

} // namespace
} // namespace veer

namespace veer {
namespace {

// Affinity layout: as weight moves to the last version, a slot only ever
// changes from an earlier version to the last one (seed 001: 5 -> 100 %).
TEST(CumulativeSlots, CanaryGrowthNeverMovesAClientBack) {
  const int steps[] = {0, 5, 10, 20, 50, 100};
  std::vector<uint8_t> prev;
  for (int canary : steps) {
    std::vector<uint8_t> slots = cumulativeSlots({uint8_t(100 - canary), uint8_t(canary)}, {0, 1});
    EXPECT_EQ(std::count(slots.begin(), slots.end(), 1), canary);
    EXPECT_EQ(std::count(slots.begin(), slots.end(), 0), 100 - canary);
    for (size_t s = 0; s < prev.size(); ++s) {
      if (prev[s] == 1) {
        EXPECT_EQ(slots[s], 1) << "slot " << s << " left the canary at " << canary << "%";
      }
    }
    prev = slots;
  }
}

TEST(Compile, UseSourceIpMeansAffinityInSubsetOrder) {
  Plan plan;
  PlanService s = reviews({{"v2", 30}, {"v1", 70}}); // route order differs from name order
  s.affinity = true; // what the resolver makes of consistentHash useSourceIp
  s.affinityTimeout = 60;
  plan.services.push_back(s);
  CompileResult r = compile(plan);
  ASSERT_TRUE(r.errors.empty());
  const veer_service& svc = r.image.services[0].second;
  EXPECT_EQ(svc.flags & VEER_SVC_F_AFFINITY, VEER_SVC_F_AFFINITY);
  EXPECT_EQ(svc.affinity_timeout, 60u);
  // v1 (index 1) owns slots 0..69, v2 (index 0) the last 30.
  EXPECT_EQ(svc.slot[0], 1);
  EXPECT_EQ(svc.slot[69], 1);
  EXPECT_EQ(svc.slot[70], 0);
  EXPECT_EQ(svc.slot[99], 0);
}

// Socket recycling plans: what a config change makes stale.
Plan onePlan(PlanService s) {
  Plan p;
  p.services.push_back(std::move(s));
  return p;
}

/** The share of reviews' (10.96.0.20:9080) sockets to the backend addr:9080 a target names. */
uint32_t permilleFor(const RecycleTargets& t, const std::string& addr) {
  const IpAddr a = *IpAddr::parse(addr);
  const IpAddr svc = *IpAddr::parse("10.96.0.20");
  for (const auto& [k, v] : t) {
    if (k.kind == VEER_RECYCLE_PEER && std::memcmp(k.backend, a.bytes.data(), 16) == 0 &&
        k.backend_port == htons(9080) && std::memcmp(k.addr, svc.bytes.data(), 16) == 0 &&
        k.port == htons(9080)) {
      return v.permille;
    }
  }
  return 0;
}

TEST(Recycle, ShrunkVersionsLoseTheirShareAfterTheGrace) {
  PlanService before = reviews({{"v1", 80}, {"v2", 20}});
  PlanService after = reviews({{"v1", 50}, {"v2", 50}});
  after.recycleGrace = 10;
  RecyclePlan r = planRecycling(onePlan(before), onePlan(after));
  EXPECT_TRUE(r.now.empty());
  ASSERT_EQ(r.later.size(), 1u);
  EXPECT_EQ(r.later[0].first, 10u);
  EXPECT_EQ(permilleFor(r.later[0].second, "10.244.1.21"), 375u); // (80-50)/80 of v1
  EXPECT_EQ(permilleFor(r.later[0].second, "10.244.1.22"), 0u);   // v2 grew
}

TEST(Recycle, NothingWithoutOptIn) {
  PlanService before = reviews({{"v1", 100}, {"v2", 0}});
  PlanService after = reviews({{"v1", 0}, {"v2", 100}});
  EXPECT_TRUE(planRecycling(onePlan(before), onePlan(after)).empty());
  before.affinity = after.affinity = true;
  EXPECT_TRUE(planRecycling(onePlan(before), onePlan(after)).empty());
}

// Affinity: one target for the service (the iterator decides per client), no
// share of any backend's sockets.
TEST(Recycle, AffinityWeightChangeTargetsTheServiceByClient) {
  PlanService before = reviews({{"v1", 80}, {"v2", 20}});
  PlanService after = reviews({{"v1", 20}, {"v2", 80}});
  before.affinity = after.affinity = true;
  after.recycleGrace = 3;
  RecyclePlan r = planRecycling(onePlan(before), onePlan(after));
  EXPECT_TRUE(r.now.empty());
  ASSERT_EQ(r.later.size(), 1u);
  EXPECT_EQ(r.later[0].first, 3u);
  ASSERT_EQ(r.later[0].second.size(), 1u);
  const veer_recycle_key& k = r.later[0].second[0].first;
  EXPECT_EQ(k.kind, VEER_RECYCLE_AFFINITY);
  EXPECT_EQ(std::memcmp(k.addr, after.addr.bytes.data(), 16), 0);
  EXPECT_EQ(k.port, htons(after.port));
  EXPECT_EQ(k.proto, after.proto);
  EXPECT_EQ(r.byClient, std::vector<std::string>{after.id()});

  // Same weights: nothing moves, nothing to do; a lane that changes subset does.
  before = after;
  EXPECT_TRUE(planRecycling(onePlan(before), onePlan(after)).empty());
  before.lanes = {{"gray", "v1"}};
  after.lanes = {{"gray", "v2"}};
  EXPECT_EQ(planRecycling(onePlan(before), onePlan(after)).byClient.size(), 1u);
  // A pod joining the lane moves too.
  Plan b = onePlan(after), a = onePlan(after);
  a.laneClients.push_back({"default", "p", "", "gray"});
  EXPECT_EQ(planRecycling(b, a).byClient.size(), 1u);
}

TEST(Recycle, RemovedUdpEndpointsAtOnceTcpOnlyWhenOptedIn) {
  PlanService before = reviews({{"v1", 100}});
  before.versions[0].backends.push_back({*IpAddr::parse("10.244.1.99"), 9080, ""});
  PlanService after = reviews({{"v1", 100}});
  EXPECT_TRUE(planRecycling(onePlan(before), onePlan(after)).empty()); // TCP drains itself
  before.proto = after.proto = IPPROTO_UDP;
  RecyclePlan udp = planRecycling(onePlan(before), onePlan(after));
  ASSERT_EQ(udp.now.size(), 1u);
  EXPECT_EQ(permilleFor(udp.now, "10.244.1.99"), 1000u);
  EXPECT_EQ(udp.now[0].first.proto, IPPROTO_UDP);
}

// From YAML to the service map entry: where affinity and its timeout come from.
struct Built {
  Diagnostics diags;
  Plan plan;
  MapImage image;
};

Built buildYaml(const std::string& yaml) {
  Built b;
  LoadResult l = loadString(yaml, "t.yaml");
  b.diags = l.diags;
  ResolveResult r = resolve(l.config);
  b.diags.insert(b.diags.end(), r.diags.begin(), r.diags.end());
  b.plan = r.plan;
  b.image = compile(r.plan).image;
  return b;
}

const char* kStickyService = R"(apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: 10.96.9.1
  ports: [{name: http, port: 80}]
  selector: {app: web}
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, labels: {app: web}}
status: {podIP: 10.244.9.1, conditions: [{type: Ready, status: "True"}]}
)";

TEST(Affinity, ServiceClientIpMeansKernelAffinityWithItsTimeout) {
  Built b = buildYaml(kStickyService);
  ASSERT_FALSE(hasErrors(b.diags)) << formatDiagnostics(b.diags);
  ASSERT_EQ(b.image.services.size(), 1u);
  const veer_service& svc = b.image.services[0].second;
  EXPECT_EQ(svc.flags & VEER_SVC_F_AFFINITY, VEER_SVC_F_AFFINITY);
  EXPECT_EQ(svc.affinity_timeout, 600u);
  ASSERT_EQ(b.image.members.size(), 1u); // what a pin is checked against
}

TEST(Affinity, DestinationRuleAnnotationOverridesTheServiceTimeout) {
  for (const auto& [text, secs] : {std::pair{"90m", 5400u}, {"1h30m15s", 5415u}, {"0s", 0u}}) {
    Built b = buildYaml(std::string(kStickyService) +
                        "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
                        "metadata:\n  name: web\n  annotations: {veer.io/affinity-timeout: \"" +
                        text + "\"}\nspec: {host: web}\n");
    ASSERT_FALSE(hasErrors(b.diags)) << formatDiagnostics(b.diags);
    EXPECT_EQ(b.image.services[0].second.affinity_timeout, secs) << text;
  }
}

TEST(Affinity, DefaultTimeoutIsThreeHours) {
  std::string yaml = kStickyService;
  yaml.replace(yaml.find("  sessionAffinityConfig"),
               yaml.find("---") - yaml.find("  sessionAffinityConfig"), "");
  Built b = buildYaml(yaml);
  ASSERT_FALSE(hasErrors(b.diags)) << formatDiagnostics(b.diags);
  EXPECT_EQ(b.image.services[0].second.affinity_timeout, 10800u);
}

TEST(Affinity, BadTimeoutsAreErrorsNamingTheField) {
  std::string badSeconds = kStickyService;
  badSeconds.replace(badSeconds.find("600"), 3, "0");
  Built b = buildYaml(badSeconds);
  ASSERT_TRUE(hasErrors(b.diags));
  EXPECT_NE(formatDiagnostics(b.diags).find("spec.sessionAffinityConfig.clientIP.timeoutSeconds"),
            std::string::npos)
      << formatDiagnostics(b.diags);

  b = buildYaml(std::string(kStickyService) +
                "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
                "metadata:\n  name: web\n  annotations: {veer.io/affinity-timeout: 3 hours}\n"
                "spec: {host: web}\n");
  ASSERT_TRUE(hasErrors(b.diags));
  const std::string text = formatDiagnostics(b.diags);
  EXPECT_NE(text.find("t.yaml:"), std::string::npos) << text;
  EXPECT_NE(text.find("metadata.annotations.veer.io/affinity-timeout"), std::string::npos) << text;
}

// Lanes: ASM $trafficLabel with a fallback, lane from the client pod's label.
std::string laneYaml(bool grayReady) {
  return std::string(R"(apiVersion: v1
kind: Service
metadata: {name: ratings}
spec:
  clusterIP: 10.96.9.30
  ports: [{name: http, port: 9080}]
  selector: {app: ratings}
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: ratings
  subsets:
  - {name: gray, labels: {version: v2}}
  - {name: prod, labels: {version: v1}}
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - route:
    - destination: {host: ratings, subset: $trafficLabel}
      weight: 100
      fallback: {case: noinstances, target: {host: ratings, subset: prod}}
---
apiVersion: istio.alibabacloud.com/v1beta1
kind: TrafficLabel
metadata: {name: default}
spec:
  rules:
  - labels:
    - name: trafficLabel
      valueFrom: [$(localLabel)]
---
apiVersion: v1
kind: Pod
metadata: {name: client-gray, uid: 0f1e2d3c-aaaa-bbbb-cccc-000000000001, labels: {app: pp, ASM_TRAFFIC_TAG: gray}}
status: {podIP: 10.244.9.10, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: ratings-v1, labels: {app: ratings, version: v1}}
status: {podIP: 10.244.9.31, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: ratings-v2, labels: {app: ratings, version: v2}}
status: {podIP: 10.244.9.32, conditions: [{type: Ready, status: ")") +
         (grayReady ? "True" : "False") + "\"}]}\n";
}

TEST(Lanes, GrayLaneReachesGrayWhileItHasAReadyEndpointElseTheFallback) {
  for (bool ready : {true, false}) {
    SCOPED_TRACE(ready ? "gray ready" : "gray not ready");
    Built b = buildYaml(laneYaml(ready));
    ASSERT_FALSE(hasErrors(b.diags)) << formatDiagnostics(b.diags);
    ASSERT_EQ(b.image.laneClients.size(), 1u);
    EXPECT_EQ(b.image.laneClients[0].first.name, "client-gray");
    EXPECT_EQ(b.image.laneClients[0].first.uid, "0f1e2d3c-aaaa-bbbb-cccc-000000000001");
    const uint32_t lane = b.image.laneClients[0].second;
    ASSERT_GE(lane, 1u);
    const veer_service& svc = b.image.services[0].second;
    EXPECT_EQ(svc.flags & VEER_SVC_F_LANES, VEER_SVC_F_LANES);
    const uint8_t idx = svc.lane_version[lane];
    ASSERT_LT(idx, svc.n_versions);
    std::string subset;
    for (const auto& [k, v] : b.image.versions) {
      if (k.id == svc.version_id[idx]) {
        subset = v.subset;
      }
    }
    EXPECT_EQ(subset, ready ? "gray" : "prod");
    // Everyone else: the weights, all on the fallback.
    for (uint8_t slot : svc.slot) {
      ASSERT_LT(slot, svc.n_versions);
      EXPECT_EQ(b.image.versions[svc.version_id[slot]].second.subset, std::string("prod"));
    }
  }
}

} // namespace
} // namespace veer
