// Socket recycling (veer.io/recycle-grace; bpf_sock_destroy iterators run in
// every network namespace of the node):
// - a keep-alive HTTP client on v1 moves to v2 after a 100/0 -> 0/100 weight
//   change once the grace period has passed, with no failed request (it
//   reconnects when its idle connection is closed, as keep-alive clients do);
// - a connected UDP socket to an endpoint that leaves its service is destroyed at
//   once (its blocked recv fails with ECONNABORTED), recycling opted in or not;
// - under session affinity, exactly the keep-alive clients (pods and node-netns
//   cgroups) whose hash picks another version after a weight change reconnect
//   there, the others keep their connection, and a growing canary only moves
//   clients v1 -> v2; a lane client follows its lane when the gray subset
//   becomes ready. With netlink the agent says it cannot.
// Once per mechanism (bpf_sock_destroy iterators, netlink SOCK_DESTROY); each is
// skipped, with the agent's reason, on a kernel that lacks it.

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <thread>

#include "kernel_path_fixture.h"
#include "node_clients.h"
#include "pod_child.h"

namespace veer::test {
namespace {

constexpr const char* kKa = "10.96.7.10";
constexpr const char* kKu = "10.96.7.20";

/** Runs with each mechanism: --socket-recycling=iterator and =netlink. */
class RecycleTest : public KernelPathTest, public ::testing::WithParamInterface<const char*> {
protected:
  void SetUp() override {
    KernelPathTest::SetUp();
    if (HasFatalFailure()) {
      return;
    }
    agent_->setExtraArgs({std::string("--socket-recycling=") + GetParam()});
    const std::pair<const char*, const char*> pods[] = {{"ka-v1", "10.244.1.160"},
                                                        {"ka-v2", "10.244.1.161"},
                                                        {"ku-1", "10.244.1.162"},
                                                        {"ku-2", "10.244.1.163"},
                                                        {"ka-client", "10.244.1.164"}};
    for (const auto& [pod, ip] : pods) {
      Status s = world_->addPod(PodSpec{pod, {ip}, {}});
      ASSERT_TRUE(s) << s.error().message;
      if (std::string(pod) != "ka-client") {
        const std::string name(pod);
        auto srv =
            world_->startTestServer(pod, name.substr(name.find('-') + 1), {kHttpPort}, {kUdpPort});
        ASSERT_TRUE(srv) << srv.error().message;
        servers_.push_back(std::move(*srv));
      }
    }
  }

  /**
   * ka (TCP, v1/v2 at these weights, recycling after 1 s, session affinity when
   * asked) and ku (UDP, these pods ready).
   */
  void applyConfig(int v1, int v2, const std::set<std::string>& udpReady, bool affinity = false) {
    std::ostringstream y;
    y << "apiVersion: v1\nkind: Service\nmetadata: {name: ka}\nspec:\n  clusterIP: " << kKa
      << "\n  ports: [{name: http, port: 9080}]\n  selector: {app: ka}\n---\n"
      << "apiVersion: v1\nkind: Service\nmetadata: {name: ku}\nspec:\n  clusterIP: " << kKu
      << "\n  ports: [{name: dns, port: 5353, protocol: UDP}]\n  selector: {app: ku}\n";
    const std::tuple<const char*, const char*, const char*, bool> pods[] = {
        {"ka-v1", "10.244.1.160", "app: ka, version: v1", true},
        {"ka-v2", "10.244.1.161", "app: ka, version: v2", true},
        {"ku-1", "10.244.1.162", "app: ku", udpReady.count("ku-1") > 0},
        {"ku-2", "10.244.1.163", "app: ku", udpReady.count("ku-2") > 0}};
    for (const auto& [name, ip, labels, ready] : pods) {
      y << "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: " << name << "\n  labels: {"
        << labels << "}\nstatus:\n  podIP: " << ip << "\n  conditions: [{type: Ready, status: \""
        << (ready ? "True" : "False") << "\"}]\n";
    }
    y << "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: ka\n"
         "  annotations: {veer.io/recycle-grace: 1s}\nspec:\n  host: ka\n"
      << (affinity ? "  trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true}}}\n"
                   : "")
      << "  subsets:\n  - {name: v1, labels: {version: v1}}\n"
         "  - {name: v2, labels: {version: v2}}\n---\n"
         "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ka}\nspec:\n"
         "  hosts: [ka]\n  http:\n  - route:\n    - destination: {host: ka, subset: v1}\n"
         "      weight: "
      << v1 << "\n    - destination: {host: ka, subset: v2}\n      weight: " << v2 << "\n";
    writeAtomically(configDir_ / "recycle.yaml", y.str());
    waitApplied();
  }

  /** Skips the test when the agent found no way to destroy sockets. */
  bool recyclingUnavailable() {
    const std::string log = agent_->log();
    const size_t at = log.find("socket recycling unavailable");
    if (at == std::string::npos) {
      EXPECT_NE(log.find("socket recycling available"), std::string::npos) << log;
      return false;
    }
    reason_ = log.substr(at, log.find('\n', at) - at);
    // Missing iterators are a skip only where the kernel lacks their kfunc
    // (the VM suite's 6.1); elsewhere they are a bug (say, a verifier reject).
    if (std::string(GetParam()) == "iterator") {
      const std::vector<std::string> missing = probeKernelFeatures().optionalMissing;
      EXPECT_TRUE(std::any_of(
          missing.begin(), missing.end(),
          [](const std::string& f) { return f.find("bpf_sock_destroy") != std::string::npos; }))
          << "the kernel has bpf_sock_destroy, yet: " << reason_;
    }
    return true;
  }

  std::string reason_;
};

TEST_P(RecycleTest, KeepAliveClientFollowsTheWeightsAfterTheGracePeriod) {
  agent_->start();
  ASSERT_NO_FATAL_FAILURE(applyConfig(100, 0, {"ku-1", "ku-2"}));
  if (recyclingUnavailable()) {
    GTEST_SKIP() << reason_;
  }
  PodChild client(*world_, "ka-client", [](const auto& emit) { keepAliveClient(emit, kKa); });
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(client.line(), "v1 1") << "a keep-alive client on one connection to v1";
  }

  const auto changed = steady_clock::now();
  ASSERT_NO_FATAL_FAILURE(applyConfig(0, 100, {"ku-1", "ku-2"}));
  int v1After = 0;
  std::string l;
  const auto deadline = changed + std::chrono::seconds(10);
  while (steady_clock::now() < deadline && !(l = client.line()).empty() && l.rfind("v2", 0) != 0) {
    ASSERT_EQ(l, "v1 1") << "failed request or an early reconnect";
    v1After++;
  }
  ASSERT_EQ(l, "v2 2") << "the client never reached v2; agent log:\n" << agent_->log();
  EXPECT_GE(steady_clock::now() - changed, std::chrono::seconds(1)) << "moved before the grace";
  EXPECT_GT(v1After, 0) << "the connection stayed on v1 during the grace period";
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(client.line(), "v2 2") << "the new connection is kept alive on v2";
  }
}

TEST_P(RecycleTest, UdpSocketsToARemovedEndpointAreDestroyedAtOnce) {
  agent_->start();
  ASSERT_NO_FATAL_FAILURE(applyConfig(100, 0, {"ku-1", "ku-2"}));
  if (recyclingUnavailable()) {
    GTEST_SKIP() << reason_;
  }
  PodChild client(*world_, "ka-client", [](const std::function<void(const std::string&)>& emit) {
    int s = connectTo(kKu, kUdpPort, SOCK_DGRAM);
    char b[64];
    ssize_t r = s < 0 ? -1 : (send(s, "q", 1, 0), recv(s, b, sizeof(b), 0));
    if (r <= 0) {
      emit("fail " + std::to_string(errno));
      return;
    }
    emit(std::string(b, r - 1));
    timeval tv{20, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    r = recv(s, b, sizeof(b), 0); // nothing comes: only a destroy ends this early
    emit("recv " + std::to_string(r) + " " + strerror(errno));
  });
  const std::string first = client.line();
  ASSERT_TRUE(first == "1" || first == "2") << first;
  const std::string other = first == "1" ? "ku-2" : "ku-1";

  ASSERT_NO_FATAL_FAILURE(applyConfig(100, 0, {other})); // the socket's endpoint leaves
  EXPECT_EQ(client.line(), std::string("recv -1 ") + strerror(ECONNABORTED));
}

// Issue 21, M2: recycling is scoped to the service a socket was translated for. Pod
// ka-v1 backs both ka and kb on the same IP:port; it leaves ka (relabelled) and stays
// in kb. ka's keep-alive client moves to ka's remaining pod after the grace; kb's
// client, on the very same backend IP:port, keeps its connection.
TEST_P(RecycleTest, RemovedBackendRecyclesOnlyTheServiceItLeft) {
  constexpr const char* kKb = "10.96.7.40";
  auto config = [this](bool leftKa) {
    std::ostringstream y;
    for (const char* name : {"ka", "kb"}) {
      y << "apiVersion: v1\nkind: Service\nmetadata: {name: " << name
        << "}\nspec:\n  clusterIP: " << (std::string(name) == "ka" ? kKa : kKb)
        << "\n  ports: [{name: http, port: 9080}]\n"
        << "  selector: {" << (std::string(name) == "ka" ? "app: ka" : "shared: x") << "}\n---\n"
        << "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: " << name
        << "\n  annotations: {veer.io/recycle-grace: 1s}\nspec:\n  host: " << name << "\n---\n";
    }
    const std::tuple<const char*, const char*, const char*> pods[] = {
        {"ka-v1", "10.244.1.160", leftKa ? "app: gone, shared: x" : "app: ka, shared: x"},
        {"ka-v2", "10.244.1.161", leftKa ? "app: ka" : "app: waiting"}};
    for (const auto& [name, ip, labels] : pods) {
      y << "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " << name << "\n  labels: {" << labels
        << "}\nstatus:\n  podIP: " << ip << "\n  conditions: [{type: Ready, status: \"True\"}]\n"
        << "---\n";
    }
    writeAtomically(configDir_ / "recycle.yaml", y.str());
    waitApplied();
  };
  agent_->start();
  ASSERT_NO_FATAL_FAILURE(config(false));
  if (recyclingUnavailable()) {
    GTEST_SKIP() << reason_;
  }
  PodChild left(*world_, "ka-client", [](const auto& emit) { keepAliveClient(emit, kKa); });
  PodChild stays(*world_, "ka-client", [kKb](const auto& emit) { keepAliveClient(emit, kKb); });
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(left.line(), "v1 1");
    ASSERT_EQ(stays.line(), "v1 1");
  }

  ASSERT_NO_FATAL_FAILURE(config(true));
  const auto deadline = steady_clock::now() + std::chrono::seconds(10);
  std::string l;
  while (steady_clock::now() < deadline && (l = left.line()) == "v1 1") {
    stays.line(milliseconds(1)); // keep its pipe drained
  }
  ASSERT_EQ(l, "v2 2") << "ka's client never left the removed backend; agent log:\n"
                       << agent_->log();
  // kb's client: same backend IP:port, still in kb, so never recycled.
  const auto watch = steady_clock::now() + std::chrono::seconds(2);
  int lines = 0;
  while (steady_clock::now() < watch) {
    const std::string s = stays.line(milliseconds(500));
    ASSERT_EQ(s, "v1 1") << "kb's connection was destroyed for ka's change";
    lines++;
  }
  EXPECT_GT(lines, 10);
}

/** A keep-alive client (a pod, or a cgroup in the node's netns) and what its lines said so far. */
struct StickyClient {
  std::string pod; // or cgroup
  std::unique_ptr<PodChild> child;
  std::function<std::string()> probe; // version of a fresh connection from the same client
  std::string version;                // of its current connection
  int conn = 0;                       // its connection number
  std::vector<std::string> fails;

  /** Applies one line; false when there was none within the timeout. */
  bool next(milliseconds timeout) {
    const std::string l = child->line(timeout);
    if (l.empty()) {
      return false;
    }
    if (l.rfind("fail", 0) == 0) {
      fails.push_back(l);
      return true;
    }
    version = l.substr(0, l.find(' '));
    conn = std::stoi(l.substr(l.find(' ') + 1));
    return true;
  }
  void drain() {
    while (next(milliseconds(1))) {
    }
  }
  /** Reads lines until the client is on connection number want; false at the deadline. */
  bool reachConn(int want, milliseconds timeout = milliseconds(10000)) {
    const auto deadline = steady_clock::now() + timeout;
    while (conn < want && steady_clock::now() < deadline && next(milliseconds(1000))) {
    }
    return conn >= want;
  }
};

/** "destroyed N TCP" of the agent's n-th "recycled after the grace period" line, -1 if none. */
int destroyedByRecycle(const std::string& log, int n) {
  const std::string mark = "recycled after the grace period: destroyed ";
  size_t at = std::string::npos;
  for (int i = 0; i < n; ++i) {
    at = log.find(mark, at == std::string::npos ? 0 : at + 1);
    if (at == std::string::npos) {
      return -1;
    }
  }
  return std::stoi(log.substr(at + mark.size()));
}

// Session affinity + recycle-grace: a weight change closes, after the grace,
// exactly the keep-alive connections whose client's hash now picks the other
// version; those clients reconnect there with no failed request, the others
// keep their connection. Through a growing canary (80/20 -> 50/50 -> 20/80)
// every move is v1 -> v2, never back. The iterator computes the client from
// the socket's netns; a sock_diag dump cannot, so with netlink the agent says
// so and leaves the connections.
TEST_P(RecycleTest, AffinityWeightChangeRecyclesExactlyTheClientsWhoseHashMoved) {
  agent_->setNetns("/run/netns/" + world_->nodeNetns()); // the node's netns is the host's
  agent_->start();
  ASSERT_NO_FATAL_FAILURE(applyConfig(80, 20, {"ku-1", "ku-2"}, /*affinity=*/true));
  if (recyclingUnavailable()) {
    GTEST_SKIP() << reason_;
  }
  if (std::string(GetParam()) == "netlink") {
    ASSERT_NO_FATAL_FAILURE(applyConfig(50, 50, {"ku-1", "ku-2"}, true));
    const std::string want = "default/ka:9080 has session affinity: its weight change leaves "
                             "existing connections where they are";
    const auto deadline = steady_clock::now() + std::chrono::seconds(10);
    while (agent_->log().find(want) == std::string::npos && steady_clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(20));
    }
    EXPECT_NE(agent_->log().find(want), std::string::npos) << agent_->log();
    EXPECT_NE(agent_->log().find("Linux >= 6.5"), std::string::npos);
    return;
  }

  // 12 client pods (keyed by netns) and 12 cgroups in the node's netns (keyed
  // by cgroup: the agent runs there, as a hostNetwork DaemonSet does): at each
  // step about 30 % of them move, so both kinds are all but certain to be present.
  constexpr int kPods = 12, kNodeClients = 12;
  NodeClients node(*world_, kNodeClients, "kn-");
  ASSERT_TRUE(node.create());
  const std::string nodeNetns = "/run/netns/" + world_->nodeNetns();
  std::vector<StickyClient> clients(kPods + kNodeClients);
  auto keepAlive = [](const auto& emit) { keepAliveClient(emit, kKa, 50000); };
  for (int i = 0; i < kPods; ++i) {
    StickyClient& c = clients[i];
    c.pod = "kc-" + std::to_string(i);
    Status st = world_->addPod(PodSpec{c.pod, {"10.244.1." + std::to_string(170 + i)}, {}});
    ASSERT_TRUE(st) << st.error().message;
    c.child = std::make_unique<PodChild>(*world_, c.pod, keepAlive);
    c.probe = [this, pod = c.pod] {
      auto r = world_->httpGet(pod, kKa, kHttpPort);
      return r && r->ok ? r->body.substr(0, 2) : std::string("error");
    };
  }
  for (int i = 0; i < kNodeClients; ++i) {
    StickyClient& c = clients[kPods + i];
    c.pod = node.cgroup(i);
    c.child = std::make_unique<PodChild>(node.cgroup(i), nodeNetns, keepAlive);
    c.probe = [&node, i] { return node.get(i, kKa, kHttpPort); };
  }
  for (StickyClient& c : clients) {
    ASSERT_TRUE(c.next(milliseconds(10000)) && c.conn == 1) << c.pod << " never answered";
  }

  int movedTotal = 0, recycles = 0;
  for (const auto& [v1, v2] : {std::pair{50, 50}, std::pair{20, 80}}) {
    SCOPED_TRACE("weights " + std::to_string(v1) + "/" + std::to_string(v2));
    for (StickyClient& c : clients) {
      c.drain();
    }
    std::map<std::string, std::pair<std::string, int>> before; // pod -> (version, conn)
    for (const StickyClient& c : clients) {
      before[c.pod] = {c.version, c.conn};
    }
    ASSERT_NO_FATAL_FAILURE(applyConfig(v1, v2, {"ku-1", "ku-2"}, true));

    // Where each client's hash sends it now: a fresh connection from it.
    std::set<std::string> moving;
    std::map<std::string, std::string> now;
    for (const StickyClient& c : clients) {
      now[c.pod] = c.probe();
      ASSERT_TRUE(now[c.pod] == "v1" || now[c.pod] == "v2") << c.pod << ": " << now[c.pod];
      if (now[c.pod] != before[c.pod].first) {
        moving.insert(c.pod);
        EXPECT_EQ(now[c.pod], "v2") << c.pod << ": a growing canary moved a client back to v1";
      }
    }

    // The agent runs the recycle once the grace has passed.
    recycles++;
    const auto deadline = steady_clock::now() + std::chrono::seconds(15);
    int destroyed = -1;
    while ((destroyed = destroyedByRecycle(agent_->log(), recycles)) < 0 &&
           steady_clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(20));
    }
    ASSERT_GE(destroyed, 0) << "no recycle after the grace; agent log:\n" << agent_->log();
    EXPECT_EQ(destroyed, static_cast<int>(moving.size()))
        << "destroyed sockets vs clients whose hash moved";

    for (StickyClient& c : clients) {
      const auto& [was, conn] = before[c.pod];
      if (moving.count(c.pod)) {
        // Reconnects once, to the version its hash picks now.
        c.reachConn(conn + 1);
        EXPECT_EQ(c.conn, conn + 1) << c.pod << " was not moved";
        EXPECT_EQ(c.version, now[c.pod]) << c.pod;
      } else {
        // Keeps its connection: the next answers come over it, from its version.
        for (int i = 0; i < 3; ++i) {
          ASSERT_TRUE(c.next(milliseconds(10000))) << c.pod;
          EXPECT_EQ(c.conn, conn) << c.pod << " lost its connection but its hash did not move";
          EXPECT_EQ(c.version, was) << c.pod;
        }
      }
      EXPECT_TRUE(c.fails.empty()) << c.pod << ": " << c.fails.front();
    }
    movedTotal += static_cast<int>(moving.size());
  }
  EXPECT_GT(movedTotal, 0) << "no client's hash moved: the test proved nothing";
}

// Lanes under affinity: a client's lane picks its version before its hash
// does, and the iterator replays that too. kl (app: ka) sends the gray lane to
// subset gray (ka-v2) while it has a ready pod, else to prod (ka-v1), and
// everyone else to prod. When ka-v2 becomes ready, the gray client's
// keep-alive connection moves to it after the grace; the client in no lane,
// whose hash is no reason to move, keeps its connection to prod.
TEST_P(RecycleTest, AffinityLaneClientFollowsItsLaneWhenTheGraySubsetBecomesReady) {
  constexpr const char* kKl = "10.96.7.30";
  auto config = [&](bool grayReady) {
    std::ostringstream y;
    y << "apiVersion: v1\nkind: Service\nmetadata: {name: kl}\nspec:\n  clusterIP: " << kKl
      << "\n  ports: [{name: http, port: 9080}]\n  selector: {app: ka}\n---\n"
         "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: kl\n"
         "  annotations: {veer.io/recycle-grace: 1s}\nspec:\n  host: kl\n"
         "  trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true}}}\n"
         "  subsets:\n  - {name: gray, labels: {version: v2}}\n"
         "  - {name: prod, labels: {version: v1}}\n---\n"
         "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: kl}\n"
         "spec:\n  hosts: [kl]\n  http:\n  - route:\n"
         "    - destination: {host: kl, subset: $trafficLabel}\n      weight: 100\n"
         "      fallback:\n        case: noinstances|noavailabled\n"
         "        target: {host: kl, subset: prod}\n---\n"
         "apiVersion: istio.alibabacloud.com/v1beta1\nkind: TrafficLabel\n"
         "metadata: {name: default}\nspec:\n  rules:\n  - labels:\n"
         "    - name: trafficLabel\n      valueFrom:\n      - $(localLabel)\n"
         "    attachTo: [opentracing]\n    protocols: \"*\"\n";
    const std::tuple<const char*, const char*, const char*, bool> pods[] = {
        {"ka-v1", "10.244.1.160", "app: ka, version: v1", true},
        {"ka-v2", "10.244.1.161", "app: ka, version: v2", grayReady},
        {"kl-gray", "10.244.1.195", "app: kl-client, ASM_TRAFFIC_TAG: gray", true}};
    for (const auto& [name, ip, labels, ready] : pods) {
      y << "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: " << name << "\n  labels: {"
        << labels << "}\nstatus:\n  podIP: " << ip << "\n  conditions: [{type: Ready, status: \""
        << (ready ? "True" : "False") << "\"}]\n";
    }
    writeAtomically(configDir_ / "recycle.yaml", y.str());
    waitApplied();
  };
  Status st = world_->addPod(PodSpec{"kl-gray", {"10.244.1.195"}, {}});
  ASSERT_TRUE(st) << st.error().message;
  agent_->start();
  ASSERT_NO_FATAL_FAILURE(config(false));
  if (recyclingUnavailable()) {
    GTEST_SKIP() << reason_;
  }
  auto keepAlive = [kKl](const std::function<void(const std::string&)>& emit) {
    keepAliveClient(emit, kKl, 20000);
  };
  StickyClient gray{"kl-gray", std::make_unique<PodChild>(*world_, "kl-gray", keepAlive), {}};
  StickyClient none{"ka-client", std::make_unique<PodChild>(*world_, "ka-client", keepAlive), {}};
  for (StickyClient* c : {&gray, &none}) {
    ASSERT_TRUE(c->next(milliseconds(10000))) << c->pod;
    ASSERT_EQ(c->version + " " + std::to_string(c->conn), "v1 1")
        << c->pod << ": no ready gray pod, so prod";
  }

  ASSERT_NO_FATAL_FAILURE(config(true));
  if (std::string(GetParam()) == "netlink") {
    // A sock_diag dump cannot tell a socket's client: the agent says so and
    // leaves both connections, while new connections follow the lane at once.
    const std::string want = "default/kl:9080 has session affinity";
    const auto deadline = steady_clock::now() + std::chrono::seconds(10);
    while (agent_->log().find(want) == std::string::npos && steady_clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(20));
    }
    EXPECT_NE(agent_->log().find(want), std::string::npos) << agent_->log();
    for (StickyClient* c : {&gray, &none}) {
      c->drain();
      for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(c->next(milliseconds(10000))) << c->pod;
        EXPECT_EQ(c->version + " " + std::to_string(c->conn), "v1 1")
            << c->pod << " keeps its connection";
      }
    }
    auto fresh = world_->httpGet("kl-gray", kKl, kHttpPort);
    ASSERT_TRUE(fresh) << fresh.error().message;
    EXPECT_EQ(fresh->body, "v2\n") << "a new connection of the gray client takes its lane";
    EXPECT_TRUE(gray.fails.empty() && none.fails.empty());
    return;
  }
  const auto deadline = steady_clock::now() + std::chrono::seconds(15);
  int destroyed = -1;
  while ((destroyed = destroyedByRecycle(agent_->log(), 1)) < 0 && steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_EQ(destroyed, 1) << agent_->log();
  gray.reachConn(2);
  EXPECT_EQ(gray.version + " " + std::to_string(gray.conn), "v2 2")
      << "the gray client moved to gray";
  none.drain();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(none.next(milliseconds(10000)));
    EXPECT_EQ(none.version + " " + std::to_string(none.conn), "v1 1")
        << "the client in no lane keeps its connection";
  }
  EXPECT_TRUE(gray.fails.empty() && none.fails.empty());
}

INSTANTIATE_TEST_SUITE_P(Mechanisms, RecycleTest, ::testing::Values("iterator", "netlink"),
                         [](const auto& info) { return std::string(info.param); });

} // namespace
} // namespace veer::test
