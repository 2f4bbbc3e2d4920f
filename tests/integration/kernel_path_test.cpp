// The kernel path end to end: YAML in a watched directory -> veer-agent (a real
// process) -> pinned BPF maps -> a client pod's connections land on the
// weighted version. Every test builds its own node (namespaces, veths,
// cgroups) and its own bpffs mount, and tears them down even when it fails.

#include "kernel_path_fixture.h"

#include <linux/magic.h>
#include <sys/statfs.h>

namespace veer::test {
namespace {

// Seed 000 (ASM Bookinfo): all to v1, blue/green to v2, 50/50 v2/v3.
TEST_F(KernelPathTest, Seed000StepsSplitExactly) {
  agent_->start();
  applyStep("000-asm-bookinfo", "01-all-v1.yaml");
  struct statfs st {};
  ASSERT_EQ(statfs(bpffs_.c_str(), &st), 0);
  EXPECT_EQ(st.f_type, BPF_FS_MAGIC) << "the agent mounts bpffs where there is none";
  expectExactSplit(kReviews4, {{"v1", 100}});
  applyStep("000-asm-bookinfo", "02-reviews-v2.yaml");
  expectExactSplit(kReviews4, {{"v2", 100}});
  applyStep("000-asm-bookinfo", "03-reviews-v2-v3-50.yaml");
  expectExactSplit(kReviews4, {{"v2", 50}, {"v3", 50}});
}

// Seed 001 (Istio canary): all v1, test users (L7 rule ignored here: the
// default route is v1), 80/20, then 5/10/20/50/100 % and a rollback.
TEST_F(KernelPathTest, Seed001CanaryStepsSplitExactly) {
  agent_->start();
  const std::pair<const char*, std::map<std::string, int>> steps[] = {
      {"01-all-v1.yaml", {{"v1", 100}}},           {"02-test-user-v2.yaml", {{"v1", 100}}},
      {"03-80-20.yaml", {{"v1", 80}, {"v2", 20}}}, {"04-5.yaml", {{"v1", 95}, {"v2", 5}}},
      {"05-10.yaml", {{"v1", 90}, {"v2", 10}}},    {"06-20.yaml", {{"v1", 80}, {"v2", 20}}},
      {"07-50.yaml", {{"v1", 50}, {"v2", 50}}},    {"08-100.yaml", {{"v2", 100}}},
      {"09-rollback.yaml", {{"v1", 100}}}};
  for (const auto& [step, weights] : steps) {
    SCOPED_TRACE(step);
    applyStep("001-istio-canary", step);
    expectExactSplit(kReviews4, weights);
  }
}

TEST_F(KernelPathTest, Ipv6ServiceSplitsExactly) {
  agent_->start();
  applyRoutes(reviewsSplit(80, 20));
  expectExactSplit(kReviews6, {{"v1", 80}, {"v2", 20}});
  auto r = world_->httpGet("productpage-v1", kReviews6, kHttpPort);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->ok) << r->step << ": " << strerror(r->err);
  EXPECT_EQ(r->peerAddr, kReviews6);
}

TEST_F(KernelPathTest, GetpeernameShowsTheServiceAddress) {
  agent_->start();
  applyRoutes(reviewsSplit(0, 100));
  auto r = world_->httpGet("productpage-v1", kReviews4, kHttpPort);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_TRUE(r->ok) << r->step << ": " << strerror(r->err);
  EXPECT_EQ(r->body, "v2\n");
  EXPECT_EQ(r->peerAddr, kReviews4);
  EXPECT_EQ(r->peerPort, kHttpPort);
}

TEST_F(KernelPathTest, UdpServiceSplitsAndRepliesComeFromTheServiceAddress) {
  agent_->start();
  applyRoutes(R"(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews-udp
spec:
  host: reviews-udp
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v3
    labels: {version: v3}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-udp
spec:
  hosts: [reviews-udp]
  tcp:
  - route:
    - destination: {host: reviews-udp, subset: v1}
      weight: 70
    - destination: {host: reviews-udp, subset: v3}
      weight: 30
)");
  const int n = 500;
  auto results = world_->udpQuery("productpage-v1", kReviewsUdp, kUdpPort, n);
  ASSERT_TRUE(results) << results.error().message;
  std::map<std::string, int> counts;
  for (const UdpResult& r : *results) {
    ASSERT_TRUE(r.ok) << strerror(r.err);
    EXPECT_EQ(r.fromAddr, kReviewsUdp);
    EXPECT_EQ(r.fromPort, kUdpPort);
    counts[r.body.substr(0, r.body.find('\n'))]++;
  }
  // One weight slot per datagram (a fresh socket each): 5 whole rounds of 100.
  EXPECT_EQ(counts, (std::map<std::string, int>{{"v1", n * 70 / 100}, {"v3", n * 30 / 100}}));
}

TEST_F(KernelPathTest, PodOutsideTheCgroupIsNotAffected) {
  agent_->start();
  applyRoutes(reviewsSplit(100, 0));
  const uint64_t before = liveState().applied;
  auto r = world_->httpGet("outsider", kReviews4, kHttpPort, milliseconds(1000));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(r->ok) << "an unattached pod reached a backend through a service address";
  EXPECT_EQ(r->err, EINVAL) << strerror(r->err) << ": the world's blackhole route, no hook";
  // Its direct traffic to a backend works, so the failure above is veer's absence.
  auto direct = world_->httpGet("outsider", "10.244.1.21", kHttpPort);
  ASSERT_TRUE(direct);
  EXPECT_TRUE(direct->ok) << direct->step << ": " << strerror(direct->err);
  auto maps = PinnedMaps::open(bpffs_.string());
  ASSERT_TRUE(maps);
  auto live = maps->live();
  ASSERT_TRUE(live);
  for (const LiveService& s : live->services) {
    for (const auto& v : s.versions) {
      EXPECT_EQ(v.stats.connects, 0u) << v.ver.service << " " << v.ver.subset;
    }
  }
  EXPECT_EQ(liveState().applied, before);
}

// A subset without ready pods: connections the weights send there fail at
// connect() at once (EPERM from the hook), never hang; the rest are served.
TEST_F(KernelPathTest, SubsetWithoutPodsFailsFastAtConnect) {
  fs::remove(configDir_ / "destination-rules.yaml"); // routes.yaml brings its own
  agent_->start();
  applyRoutes(R"(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v4
    labels: {version: v4}
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
      weight: 50
    - destination: {host: reviews, subset: v4}
      weight: 50
)");
  ASSERT_FALSE(HasFatalFailure());
  auto results = world_->httpGetMany("productpage-v1", kReviews4, kHttpPort, 200);
  ASSERT_TRUE(results);
  int served = 0, refused = 0;
  for (const HttpResult& r : *results) {
    if (r.ok) {
      EXPECT_EQ(r.body, "v1\n");
      served++;
    } else {
      EXPECT_EQ(r.step, "connect");
      EXPECT_EQ(r.err, EPERM) << strerror(r.err);
      refused++;
    }
  }
  EXPECT_EQ(served, 100);
  EXPECT_EQ(refused, 100);
}

// The destination-rules.yaml of this fixture is replaced by an invalid one: the
// agent rejects it whole and the last good config keeps serving.
TEST_F(KernelPathTest, BadConfigIsRejectedAndTheLastGoodKeepsServing) {
  agent_->start();
  applyRoutes(reviewsSplit(80, 20));
  const veer_state good = liveState();
  writeAtomically(configDir_ / "routes.yaml", reviewsSplit(80, 10));
  const auto deadline = steady_clock::now() + std::chrono::seconds(10);
  while (liveState().rejected == good.rejected && steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  const veer_state after = liveState();
  ASSERT_EQ(after.rejected, good.rejected + 1) << agent_->log();
  EXPECT_EQ(after.digest, good.digest);
  EXPECT_EQ(after.gen, good.gen);
  EXPECT_NE(agent_->log().find("weights sum to 90, expected 100"), std::string::npos)
      << agent_->log();
  expectExactSplit(kReviews4, {{"v1", 80}, {"v2", 20}});
}

// An editor that rewrites the file in place (truncate + write + close).
TEST_F(KernelPathTest, InPlaceEditIsApplied) {
  agent_->start();
  applyRoutes(reviewsSplit(100, 0));
  std::ofstream(configDir_ / "routes.yaml", std::ios::trunc) << reviewsSplit(30, 70);
  waitApplied();
  expectExactSplit(kReviews4, {{"v1", 30}, {"v2", 70}});
}

// A ConfigMap volume: files are symlinks through "..data", which kubelet swaps
// atomically to a new timestamped directory.
TEST_F(KernelPathTest, ConfigMapDataSwapIsApplied) {
  const fs::path cm = configDir_;
  auto writeGeneration = [&](const std::string& name, int v1, int v2) {
    const fs::path dir = cm / name;
    fs::create_directories(dir);
    fs::copy_file(sourceDir() / "configs/bookinfo/inventory.yaml", dir / "inventory.yaml");
    fs::copy_file(sourceDir() / "configs/000-asm-bookinfo/destination-rules.yaml",
                  dir / "destination-rules.yaml");
    std::ofstream(dir / "routes.yaml") << reviewsSplit(v1, v2);
  };
  fs::remove(cm / "inventory.yaml");
  fs::remove(cm / "destination-rules.yaml");
  writeGeneration("..2026_11_23_01", 100, 0);
  fs::create_directory_symlink("..2026_11_23_01", cm / "..data");
  for (const char* f : {"inventory.yaml", "destination-rules.yaml", "routes.yaml"}) {
    fs::create_symlink(fs::path("..data") / f, cm / f);
  }
  agent_->start();
  waitApplied();
  expectExactSplit(kReviews4, {{"v1", 100}});

  writeGeneration("..2026_11_23_02", 0, 100);
  fs::create_directory_symlink("..2026_11_23_02", cm / "..data_tmp");
  fs::rename(cm / "..data_tmp", cm / "..data");
  fs::remove_all(cm / "..2026_11_23_01");
  waitApplied();
  expectExactSplit(kReviews4, {{"v2", 100}});
}

// Continuous client load while the weights flip 100 times and the agent is
// restarted: not one connection fails. Each flip waits for the client to finish
// one more request, so the load overlaps every flip however slow the machine
// (a QEMU guest without KVM runs curl a few times a second).
TEST_F(KernelPathTest, NoFailedConnectionWhileWeightsFlipAndAgentRestarts) {
  agent_->start();
  ASSERT_NO_FATAL_FAILURE(applyRoutes(reviewsSplit(100, 0)));
  const fs::path stop = tmp_ / "stop";
  const fs::path results = tmp_ / "results";
  std::ofstream(results).flush();
  auto load = world_->spawn(
      "productpage-v1",
      {"sh", "-c",
       "while [ ! -e " + stop.string() +
           " ]; do curl -s -o /dev/null -w '%{http_code}\\n' --max-time 3 http://" + kReviews4 +
           ":9080/ >> " + results.string() + " || echo failed >> " + results.string() + "; done"});
  ASSERT_TRUE(load) << load.error().message;
  auto lines = [&] {
    std::ifstream in(results);
    return std::count(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>(), '\n');
  };
  auto oneMoreRequest = [&] {
    const auto before = lines();
    const auto deadline = steady_clock::now() + std::chrono::seconds(10);
    while (lines() == before) {
      ASSERT_LT(steady_clock::now(), deadline) << "the load generator stopped";
      std::this_thread::sleep_for(milliseconds(2));
    }
  };
  for (int i = 0; i < 100; ++i) {
    ASSERT_NO_FATAL_FAILURE(applyRoutes(i % 2 ? reviewsSplit(100, 0) : reviewsSplit(0, 100)));
    if (i == 50) {
      agent_->stop(); // the pinned datapath keeps serving
      writeAtomically(configDir_ / "routes.yaml", reviewsSplit(100, 0)); // nobody watches yet
      ASSERT_NO_FATAL_FAILURE(oneMoreRequest()); // served by the pinned datapath alone
      agent_->start();                           // adopts the pinned maps and links, then applies
      waitApplied();
    }
    ASSERT_NO_FATAL_FAILURE(oneMoreRequest());
  }
  std::ofstream(stop).put('\n');
  ASSERT_TRUE(load->wait(milliseconds(20000)));
  std::ifstream in(results);
  int ok = 0, failed = 0;
  std::string all;
  for (std::string line; std::getline(in, line);) {
    (line == "200" ? ok : failed)++;
    all += line + " ";
  }
  EXPECT_EQ(failed, 0) << all;
  EXPECT_GE(ok, 101) << all; // at least one per flip, one with no agent
}

TEST_F(KernelPathTest, MapsDumpWithBtfFieldNames) {
  agent_->start();
  applyRoutes(reviewsSplit(80, 20));
  for (const char* map : {"veer_svc", "veer_version", "veer_backend", "veer_state"}) {
    const std::string cmd = "bpftool map dump pinned " + (bpffs_ / "veer/maps" / map).string();
    FILE* p = popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0) {
      out.append(buf, n);
    }
    ASSERT_EQ(pclose(p), 0) << cmd;
    SCOPED_TRACE(map);
    if (std::string(map) == "veer_svc") {
      EXPECT_NE(out.find("\"version_id\""), std::string::npos) << out.substr(0, 500);
      EXPECT_NE(out.find("\"svc_id\""), std::string::npos);
    } else if (std::string(map) == "veer_version") {
      EXPECT_NE(out.find("\"subset\": \"v2\""), std::string::npos) << out.substr(0, 500);
      EXPECT_NE(out.find("default/reviews:9080"), std::string::npos);
    } else if (std::string(map) == "veer_state") {
      EXPECT_NE(out.find("\"digest\""), std::string::npos);
    } else {
      EXPECT_NE(out.find("\"family\""), std::string::npos);
    }
  }
}

TEST_F(KernelPathTest, UninstallDetachesEverything) {
  agent_->start();
  applyRoutes(reviewsSplit(100, 0));
  ASSERT_EQ(WEXITSTATUS(agent_->stop()), 0);
  EXPECT_TRUE(world_->httpGet("productpage-v1", kReviews4, kHttpPort)->ok)
      << "the datapath must outlive the agent";
  const std::string cmd = (binDir() / "veer-agent").string() + " --uninstall --bpffs " +
                          bpffs_.string() + " >/dev/null 2>&1";
  ASSERT_EQ(system(cmd.c_str()), 0);
  EXPECT_FALSE(fs::exists(bpffs_ / "veer"));
  auto r = world_->httpGet("productpage-v1", kReviews4, kHttpPort, milliseconds(500));
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->ok) << "still redirected after uninstall";
}

} // namespace
} // namespace veer::test
