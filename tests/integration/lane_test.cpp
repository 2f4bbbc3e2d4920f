// Lanes in the kernel (ASM full-link gray without a proxy): three tiers,
// productpage -> reviews -> ratings, in namespace "lanes". A pod labelled
// ASM_TRAFFIC_TAG=gray reaches the gray subset of every service it calls; a
// service without a ready gray endpoint serves it from the fallback subset
// (prod); once a gray pod of that service is ready, gray clients go there.
// Prod pods never reach gray. Every hop is a real connect from the calling
// tier's own pod.

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>
#include <string>

#include "kernel_path_fixture.h"
#include "node_clients.h"

namespace veer::test {
namespace {

constexpr const char* kLaneReviews = "10.96.5.20";
constexpr const char* kLaneRatings = "10.96.5.30";

struct LanePod {
  const char* name;
  const char* ip;
  const char* app;
  const char* version;
  const char* tag; // ASM_TRAFFIC_TAG, "" for none
};

const LanePod kPods[] = {
    {"pp-prod", "10.244.1.150", "productpage", "v1", "prod"},
    {"pp-gray", "10.244.1.151", "productpage", "v2", "gray"},
    {"rv-v1", "10.244.1.152", "reviews", "v1", "prod"},
    {"rv-v2", "10.244.1.153", "reviews", "v2", "gray"},
    {"rt-v1", "10.244.1.154", "ratings", "v1", ""},
    {"rt-v2", "10.244.1.155", "ratings", "v2", "gray"},
};

std::string laneConfig(const std::set<std::string>& ready) {
  std::ostringstream y;
  for (const auto& [svc, ip] : {std::pair{"reviews", kLaneReviews}, {"ratings", kLaneRatings}}) {
    y << "apiVersion: v1\nkind: Service\nmetadata: {name: " << svc
      << ", namespace: lanes}\nspec:\n  clusterIP: " << ip
      << "\n  ports: [{name: http, port: 9080}]\n  selector: {app: " << svc << "}\n---\n"
      << "apiVersion: networking.istio.io/v1alpha3\nkind: DestinationRule\nmetadata: {name: " << svc
      << ", namespace: lanes}\nspec:\n  host: " << svc
      << "\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: "
         "v2}}\n"
         "  - {name: gray, labels: {version: v2}}\n  - {name: prod, labels: {version: v1}}\n---\n"
      << "apiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\nmetadata: {name: " << svc
      << ", namespace: lanes}\nspec:\n  hosts: [" << svc
      << "]\n  http:\n  - route:\n    - destination: {host: " << svc
      << ", subset: $trafficLabel}\n      weight: 100\n      fallback:\n"
         "        case: noinstances|noavailabled\n        target: {host: "
      << svc << ", subset: prod}\n---\n";
  }
  // The seed's TrafficLabel: the request header first (the proxy's), then the pod label.
  y << "apiVersion: istio.alibabacloud.com/v1beta1\nkind: TrafficLabel\nmetadata: {name: default, "
       "namespace: lanes}\nspec:\n  rules:\n  - labels:\n    - name: trafficLabel\n"
       "      valueFrom:\n      - $getContext(x-request-id)\n      - $(localLabel)\n"
       "    attachTo: [opentracing]\n    protocols: \"*\"\n";
  for (const LanePod& p : kPods) {
    y << "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: " << p.name
      << "\n  namespace: lanes\n  labels: {app: " << p.app << ", version: " << p.version;
    if (*p.tag) {
      y << ", ASM_TRAFFIC_TAG: " << p.tag;
    }
    y << "}\nstatus:\n  podIP: " << p.ip << "\n  conditions: [{type: Ready, status: \""
      << (ready.count(p.name) ? "True" : "False") << "\"}]\n";
  }
  return y.str();
}

class LaneTest : public KernelPathTest {
protected:
  void SetUp() override {
    KernelPathTest::SetUp();
    if (HasFatalFailure()) {
      return;
    }
    for (const LanePod& p : kPods) {
      Status s = world_->addPod(PodSpec{p.name, {p.ip}, {}});
      ASSERT_TRUE(s) << s.error().message;
      if (std::string(p.app) != "productpage") {
        auto srv =
            world_->startTestServer(p.name, std::string(p.app) + "-" + p.version, {kHttpPort});
        ASSERT_TRUE(srv) << srv.error().message;
        servers_.push_back(std::move(*srv));
      }
    }
  }

  void applyLanes(const std::set<std::string>& ready) {
    writeAtomically(configDir_ / "lanes.yaml", laneConfig(ready));
    waitApplied();
  }

  /** What 20 fresh connections from pod to addr reach: "<version>" if all agree, else a list. */
  std::string reach(const std::string& pod, const std::string& addr) {
    auto results = world_->httpGetMany(pod, addr, kHttpPort, 20);
    EXPECT_TRUE(results) << results.error().message;
    if (!results) {
      return "error";
    }
    std::set<std::string> seen;
    for (const HttpResult& r : *results) {
      seen.insert(r.ok ? r.body.substr(0, r.body.find('\n'))
                       : "error(" + r.step + ": " + strerror(r.err) + ")");
    }
    std::string out;
    for (const std::string& s : seen) {
      out += (out.empty() ? "" : ",") + s;
    }
    return out;
  }
};

TEST_F(LaneTest, GrayPodsReachGrayOnEveryHopAndFallBackWhereTheLaneIsEmpty) {
  agent_->start();
  // ratings has no ready gray pod yet.
  const std::set<std::string> live = {"pp-prod", "pp-gray", "rv-v1", "rv-v2", "rt-v1"};
  ASSERT_NO_FATAL_FAILURE(applyLanes(live));

  EXPECT_EQ(reach("pp-gray", kLaneReviews), "reviews-v2") << "productpage gray -> reviews";
  EXPECT_EQ(reach("pp-prod", kLaneReviews), "reviews-v1") << "productpage prod -> reviews";
  EXPECT_EQ(reach("rv-v2", kLaneRatings), "ratings-v1") << "reviews gray -> ratings (fallback)";
  EXPECT_EQ(reach("rv-v1", kLaneRatings), "ratings-v1") << "reviews prod -> ratings";
  // A pod in no lane (the bookinfo client) gets the weights: prod.
  EXPECT_EQ(reach("productpage-v1", kLaneReviews), "reviews-v1") << "unlabelled -> reviews";

  // A gray ratings pod becomes ready: gray clients go there at once, prod ones do not.
  std::set<std::string> grown = live;
  grown.insert("rt-v2");
  const uint64_t before = liveState().applied;
  ASSERT_NO_FATAL_FAILURE(applyLanes(grown));
  EXPECT_GT(liveState().applied, before);
  EXPECT_EQ(reach("rv-v2", kLaneRatings), "ratings-v2") << "reviews gray -> ratings gray";
  EXPECT_EQ(reach("rv-v1", kLaneRatings), "ratings-v1") << "reviews prod -> ratings";
  EXPECT_EQ(reach("pp-gray", kLaneReviews), "reviews-v2");

  // The gray reviews pod stops being ready: gray productpage falls back to prod.
  std::set<std::string> shrunk = grown;
  shrunk.erase("rv-v2");
  ASSERT_NO_FATAL_FAILURE(applyLanes(shrunk));
  EXPECT_EQ(reach("pp-gray", kLaneReviews), "reviews-v1") << "gray lane of reviews is empty";
}

// The lane lookup walks up the client's cgroups: a process in a child cgroup of
// the pod's (a container under kubelet's pod cgroup) is in the pod's lane.
TEST_F(LaneTest, ContainerCgroupsInheritTheirPodsLane) {
  agent_->start();
  ASSERT_NO_FATAL_FAILURE(applyLanes({"pp-gray", "pp-prod", "rv-v1", "rv-v2", "rt-v1"}));
  const std::string netns = "/run/netns/" + world_->netnsName("pp-gray");
  NodeClients containers(
      netns, {world_->podCgroup("pp-gray") + "/app", world_->podCgroup("pp-gray") + "/app/worker"});
  ASSERT_TRUE(containers.create());
  for (size_t i = 0; i < containers.size(); ++i) {
    for (int n = 0; n < 5; ++n) {
      EXPECT_EQ(containers.get(i, kLaneReviews, kHttpPort), "reviews-v2") << containers.cgroup(i);
    }
  }
  // The same depth under a prod pod stays prod: the walk finds the nearest pod.
  NodeClients prod("/run/netns/" + world_->netnsName("pp-prod"),
                   {world_->podCgroup("pp-prod") + "/app"});
  ASSERT_TRUE(prod.create());
  EXPECT_EQ(prod.get(0, kLaneReviews, kHttpPort), "reviews-v1");
}

} // namespace
} // namespace veer::test
