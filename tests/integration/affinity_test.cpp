// Session affinity in the kernel (DestinationRule consistentHash useSourceIp):
// 100 client pods walk the seed 001 canary steps; every client's version
// history must be monotone (v1 -> v2, never back), each client sticky within a
// step, and each step's share of clients on v2 within 3 standard deviations of
// the weight (a binomial: a hash spreads clients, it cannot be exact).
// 100, not 200: the kernel's ARP table is one table for all namespaces
// (gc_thresh2 = 512); 200 pods and their backends' entries push it into forced
// GC and connects fail with EHOSTUNREACH, and tests do not change host sysctls.

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "kernel_path_fixture.h"

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
      weight: )" + std::to_string(v1) + R"(
    - destination: {host: reviews, subset: v2}
      weight: )" + std::to_string(v2) + "\n";
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
      ASSERT_TRUE(first->ok && again->ok)
          << c << ": " << first->step << " " << strerror(first->err) << " / " << again->step << " "
          << strerror(again->err);
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

} // namespace
} // namespace veer::test
