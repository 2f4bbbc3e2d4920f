// veer-agent with the Kubernetes API as its config source (--kubeconfig), on real traffic
// in the namespace world: the objects live in tests/tools/veer-test-apiserver.py (127.0.0.1,
// a port of its own per run), converted from the seeds' YAML, and every check is the split
// measured on real connections to the service address.

#include "kernel_path_fixture.h"
#include "k8s/test_apiserver.h"

#include <cstdio>

namespace veer::test {
namespace {

using k8s::testing::json;
using k8s::testing::TestApiServer;

constexpr const char* kNode = "node-1";

/** The objects of a YAML file as JSON (python3-yaml: the seeds are the source of truth). */
std::vector<json> yamlObjects(const fs::path& file) {
  const std::string cmd = "python3 -c 'import sys, json, yaml\n"
                          "for d in yaml.safe_load_all(open(sys.argv[1])):\n"
                          "    d and print(json.dumps(d))' " +
                          file.string();
  std::vector<json> out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) {
    ADD_FAILURE() << "popen: " << strerror(errno);
    return out;
  }
  std::string text;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), p)) > 0;) {
    text.append(buf, n);
  }
  EXPECT_EQ(pclose(p), 0) << cmd;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    json obj = json::parse(line);
    if (!obj["metadata"].contains("namespace")) {
      obj["metadata"]["namespace"] = "default";
    }
    if (obj["kind"] == "Pod") {
      obj["spec"]["nodeName"] = kNode; // the agent watches its own node's Pods
    }
    out.push_back(std::move(obj));
  }
  return out;
}

/** The reviews VirtualService with these weights on v1 and v2, in namespace ns for host. */
json weightedVs(int v1, int v2, const std::string& ns = "default",
                const std::string& host = "reviews", const std::string& name = "reviews") {
  auto dest = [&](const char* subset, int w) {
    return json{{"destination", {{"host", host}, {"subset", subset}}}, {"weight", w}};
  };
  return {{"apiVersion", "networking.istio.io/v1alpha3"},
          {"kind", "VirtualService"},
          {"metadata", {{"name", name}, {"namespace", ns}}},
          {"spec",
           {{"hosts", json::array({host})},
            {"http", json::array({{{"route", json::array({dest("v1", v1), dest("v2", v2)})}}})}}}};
}

class ClusterModeTest : public KernelPathTest {
protected:
  void SetUp() override {
    // The test API server is Python (`make deps` installs python3 and python3-yaml); the
    // QEMU suite's initramfs carries neither.
    if (system("python3 -c 'import yaml' >/dev/null 2>&1") != 0) {
      GTEST_SKIP() << "python3 with PyYAML not installed: no test API server";
    }
    KernelPathTest::SetUp();
    if (HasFatalFailure()) {
      return;
    }
    // The directory stays (both sources may be given) but holds nothing: the cluster is
    // the only config.
    for (const auto& e : fs::directory_iterator(configDir_)) {
      fs::remove(e.path());
    }
  }

  /** Starts the test API server (down: not listening yet) with Istio's CRDs at v1alpha3. */
  void startServer(bool down = false) {
    // Plain http and so no token (a kubeconfig's credentials never go out in clear text).
    server_ = std::make_unique<TestApiServer>(TestApiServer::Options{.down = down});
    ASSERT_GT(server_->port(), 0);
    for (const char* r : {"virtualservices", "destinationrules"}) {
      const std::string kind =
          std::string(r) == "virtualservices" ? "VirtualService" : "DestinationRule";
      server_->control({{"op", "install"},
                        {"group", "networking.istio.io"},
                        {"version", "v1alpha3"},
                        {"resource", r},
                        {"kind", kind},
                        {"namespaced", true}});
    }
    agent_->setExtraArgs(
        {"--kubeconfig", server_->writeKubeconfig(tmp_.string()), "--node-name", kNode});
  }

  /** Bookinfo's inventory, seed 001's DestinationRules and its step 1 (all v1). */
  void applySeed() {
    for (const char* f :
         {"configs/bookinfo/inventory.yaml", "configs/001-istio-canary/destination-rule.yaml",
          "configs/001-istio-canary/steps/01-all-v1.yaml"}) {
      for (const json& obj : yamlObjects(sourceDir() / f)) {
        server_->apply(obj);
      }
    }
  }

  uint64_t applies() {
    auto maps = PinnedMaps::open(bpffs_.string());
    if (!maps) {
      return 0;
    }
    auto st = maps->state();
    return st ? st->applied : 0;
  }

  /** Waits until the agent applied more than `than` times (a change reached the maps). */
  void waitApplies(uint64_t than, std::chrono::milliseconds bound = std::chrono::seconds(10)) {
    if (!k8s::testing::waitUntil([&] { return applies() > than; }, bound)) {
      FAIL() << "no apply after " << than << " within " << bound.count() << " ms; agent log:\n"
             << agent_->log();
    }
  }

  /** Applies obj through the API and waits until the agent applied it. */
  void change(const json& obj) {
    const uint64_t before = applies();
    server_->apply(obj);
    waitApplies(before);
  }

  std::unique_ptr<TestApiServer> server_;
};

// Seed 001 through the API: all v1, then the VirtualService edited to 80/20 and 50/50; the
// split of real connections to the reviews address follows each edit exactly.
TEST_F(ClusterModeTest, CanaryFollowsTheVirtualServiceThroughTheApi) {
  ASSERT_NO_FATAL_FAILURE(startServer());
  ASSERT_NO_FATAL_FAILURE(applySeed());
  ASSERT_NO_FATAL_FAILURE(agent_->start());
  ASSERT_NO_FATAL_FAILURE(waitApplies(0));
  expectExactSplit(kReviews4, {{"v1", 100}});
  ASSERT_NO_FATAL_FAILURE(change(weightedVs(80, 20)));
  expectExactSplit(kReviews4, {{"v1", 80}, {"v2", 20}});
  ASSERT_NO_FATAL_FAILURE(change(weightedVs(50, 50)));
  expectExactSplit(kReviews4, {{"v1", 50}, {"v2", 50}});
}

// Every watch cut mid-stream, then history compacted so that resuming gets 410 Gone: the
// agent relists and converges on the edits made meanwhile, and between the cut and the
// convergence the last good state keeps serving.
TEST_F(ClusterModeTest, WatchCutAnd410Converge) {
  ASSERT_NO_FATAL_FAILURE(startServer());
  ASSERT_NO_FATAL_FAILURE(applySeed());
  ASSERT_NO_FATAL_FAILURE(agent_->start());
  ASSERT_NO_FATAL_FAILURE(waitApplies(0));
  ASSERT_NO_FATAL_FAILURE(change(weightedVs(80, 20)));

  server_->control({{"op", "cut"}});
  expectExactSplit(kReviews4, {{"v1", 80}, {"v2", 20}}); // serving while disconnected
  ASSERT_NO_FATAL_FAILURE(change(weightedVs(30, 70)));
  expectExactSplit(kReviews4, {{"v1", 30}, {"v2", 70}});

  // 410: the server goes away, the change is made and history forgotten while the agent
  // cannot see it, so its watches resume from a compacted resourceVersion.
  const uint64_t before = applies();
  server_->control({{"op", "down"}});
  server_->apply(weightedVs(60, 40));
  server_->control({{"op", "compact"}});
  expectExactSplit(kReviews4, {{"v1", 30}, {"v2", 70}}); // the last good while it is away
  server_->control({{"op", "up"}});
  // Reflectors back off (0.8 s doubling) while the server is away: a wider bound.
  ASSERT_NO_FATAL_FAILURE(waitApplies(before, std::chrono::seconds(40)));
  expectExactSplit(kReviews4, {{"v1", 60}, {"v2", 40}});
  EXPECT_NE(agent_->log().find("listing again"), std::string::npos) << "no 410 relist:\n"
                                                                    << agent_->log();
}

// The API server is down when the agent starts: nothing is applied while the cluster
// cannot be listed (not even the empty config), and once it is up the agent syncs and
// applies the cluster's config.
TEST_F(ClusterModeTest, ApiServerDownAtStartAppliesOnceSynced) {
  ASSERT_NO_FATAL_FAILURE(startServer(/*down=*/true));
  ASSERT_NO_FATAL_FAILURE(agent_->start());
  ASSERT_TRUE(k8s::testing::waitUntil([&] {
    return agent_->log().find("discovery failed") != std::string::npos;
  })) << agent_->log();
  EXPECT_EQ(applies(), 0u) << "applied before the cluster was listed";
  server_->control({{"op", "up"}});
  ASSERT_NO_FATAL_FAILURE(applySeed());
  // Discovery retries with the reflectors' backoff (0.8 s doubling): a wider bound.
  ASSERT_NO_FATAL_FAILURE(waitApplies(0, std::chrono::seconds(40)));
  expectExactSplit(kReviews4, {{"v1", 100}});
}

// Two teams: reviews in default, and shop's "cart" Service over the same pods (Pod objects
// of its own in namespace shop). shop's VirtualService turns invalid; default's weight
// change in the same moment still reaches the datapath, and shop's last good split serves.
TEST_F(ClusterModeTest, OneTeamsInvalidVirtualServiceDoesNotStopAnothersChange) {
  ASSERT_NO_FATAL_FAILURE(startServer());
  ASSERT_NO_FATAL_FAILURE(applySeed());
  constexpr const char* kCart = "10.96.0.40";
  json svc = {{"apiVersion", "v1"},
              {"kind", "Service"},
              {"metadata", {{"name", "cart"}, {"namespace", "shop"}}},
              {"spec",
               {{"clusterIP", kCart},
                {"ports", json::array({{{"name", "http"},
                                        {"port", kHttpPort},
                                        {"protocol", "TCP"},
                                        {"targetPort", kHttpPort}}})},
                {"selector", {{"app", "cart"}}}}}};
  server_->apply(svc);
  for (const json& obj : yamlObjects(sourceDir() / "configs/bookinfo/inventory.yaml")) {
    if (obj["kind"] == "Pod" && obj["metadata"]["labels"].value("app", "") == "reviews") {
      json p = obj;
      p["metadata"]["namespace"] = "shop";
      p["metadata"]["labels"]["app"] = "cart";
      server_->apply(p);
    }
  }
  json rule = {{"apiVersion", "networking.istio.io/v1alpha3"},
               {"kind", "DestinationRule"},
               {"metadata", {{"name", "cart"}, {"namespace", "shop"}}},
               {"spec",
                {{"host", "cart"},
                 {"subsets", json::array({{{"name", "v1"}, {"labels", {{"version", "v1"}}}},
                                          {{"name", "v2"}, {"labels", {{"version", "v2"}}}}})}}}};
  server_->apply(rule);
  server_->apply(weightedVs(50, 50, "shop", "cart", "cart"));
  ASSERT_NO_FATAL_FAILURE(agent_->start());
  ASSERT_NO_FATAL_FAILURE(waitApplies(0));
  expectExactSplit(kCart, {{"v1", 50}, {"v2", 50}});

  // Both edits at once: the invalid one alone would change nothing, so no apply to wait for.
  server_->apply(weightedVs(90, 20, "shop", "cart", "cart")); // sums to 110
  ASSERT_NO_FATAL_FAILURE(change(weightedVs(20, 80)));
  expectExactSplit(kReviews4, {{"v1", 20}, {"v2", 80}});
  expectExactSplit(kCart, {{"v1", 50}, {"v2", 50}});
  const std::string log = agent_->log();
  EXPECT_NE(log.find("VirtualService shop/cart rejected; its last good version keeps serving"),
            std::string::npos)
      << log;

  // veerctl status names it too, with the error, from the agent's run dir.
  const std::string cmd = (binDir() / "veerctl").string() + " --bpffs " + bpffs_.string() +
                          " status --json --agent off --run-dir " + agent_->runDir().string();
  const auto [rc, out] = commandOutput(cmd);
  EXPECT_EQ(rc, 0) << out;
  const json status = json::parse(out, nullptr, false);
  ASSERT_FALSE(status.is_discarded()) << out;
  ASSERT_EQ(status["rejected_objects"].size(), 1u) << out;
  EXPECT_EQ(status["rejected_objects"][0]["object"], "VirtualService shop/cart") << out;
  EXPECT_EQ(status["rejected_objects"][0]["serving"], "last good version") << out;
  EXPECT_NE(status["rejected_objects"][0]["errors"].dump().find("110"), std::string::npos) << out;
}

} // namespace
} // namespace veer::test
