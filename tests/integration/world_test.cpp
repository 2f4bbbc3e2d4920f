// Tests of the test world itself (root): pods talk over IPv4 and IPv6, service
// ranges are blackholed everywhere, spawned processes live in the pod cgroup,
// teardown leaves nothing behind.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "common/files.h"
#include "world/world.h"

namespace veer::test {
namespace {

bool pathExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

std::string readAll(const std::string& path) {
  Result<std::string> text = readFile(path);
  return text ? *text : "";
}

/** True while pid exists and is not a zombie. */
bool alive(pid_t pid) {
  std::string stat = readAll("/proc/" + std::to_string(pid) + "/stat");
  auto paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

class WorldTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (::geteuid() != 0) {
      GTEST_SKIP() << "needs root";
    }
    auto w = World::create();
    ASSERT_TRUE(w.ok()) << w.error().message;
    world_ = std::move(w.value());
  }

  void addPod(const PodSpec& spec) {
    auto s = world_->addPod(spec);
    ASSERT_TRUE(s.ok()) << s.error().message;
  }

  std::unique_ptr<World> world_;
};

TEST_F(WorldTest, PodsTalkOverIPv4AndIPv6) {
  addPod({"client", {"10.244.1.2"}, {"fd00:244:1::2"}});
  addPod({"backend", {"10.244.1.3"}, {"fd00:244:1::3"}});
  auto srv = world_->startTestServer("backend", "v2", {9080}, {5353});
  ASSERT_TRUE(srv.ok()) << srv.error().message;

  for (const std::string addr : {"10.244.1.3", "fd00:244:1::3"}) {
    auto r = world_->httpGet("client", addr, 9080);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_TRUE(r->ok) << addr << ": " << r->step << ": " << strerror(r->err);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "v2\n");
    EXPECT_NE(r->headers.find("x-veer-version: v2"), std::string::npos) << r->headers;
    EXPECT_EQ(r->peerAddr, addr);
    EXPECT_EQ(r->peerPort, 9080);

    auto u = world_->udpQuery("client", addr, 5353, 3);
    ASSERT_TRUE(u.ok()) << u.error().message;
    for (const auto& q : *u) {
      EXPECT_TRUE(q.ok) << addr << ": " << strerror(q.err);
      EXPECT_EQ(q.body, "v2\n");
      EXPECT_EQ(q.fromAddr, addr);
      EXPECT_EQ(q.fromPort, 5353);
    }
  }

  // The same through a real client.
  auto curl = world_->run("client", {"curl", "-s", "-m", "5", "http://10.244.1.3:9080/"});
  ASSERT_TRUE(curl.ok()) << curl.error().message;
  EXPECT_EQ(curl->exitCode, 0) << curl->err;
  EXPECT_EQ(curl->out, "v2\n");
}

TEST_F(WorldTest, PodsInDifferentSubnetsTalkThroughTheNode) {
  addPod({"a", {"10.244.1.20"}, {"fd00:244:1::20"}});
  addPod({"b", {"10.244.2.20"}, {"fd00:244:2::20"}});
  auto srv = world_->startTestServer("b", "v1", {8080});
  ASSERT_TRUE(srv.ok()) << srv.error().message;
  for (const std::string addr : {"10.244.2.20", "fd00:244:2::20"}) {
    // Under the 1 s SYN retransmit: a first packet lost to neighbor discovery fails this.
    auto r = world_->httpGet("a", addr, 8080, std::chrono::milliseconds(700));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_TRUE(r->ok) << addr << ": " << r->step << ": " << strerror(r->err);
    EXPECT_EQ(r->body, "v1\n");
  }
}

TEST_F(WorldTest, ManyConnectionsInOneBatch) {
  addPod({"client", {}, {}});
  addPod({"backend", {}, {}});
  auto srv = world_->startTestServer("backend", "v3", {9080});
  ASSERT_TRUE(srv.ok()) << srv.error().message;
  auto rs = world_->httpGetMany("client", world_->podIPv6("backend").at(0), 9080, 1000);
  ASSERT_TRUE(rs.ok()) << rs.error().message;
  ASSERT_EQ(rs->size(), 1000u);
  int good = 0;
  for (const auto& r : *rs) {
    good += r.ok && r.body == "v3\n" ? 1 : 0;
  }
  EXPECT_EQ(good, 1000);
}

/** errno of a non-blocking connect() to addr:port from inside a netns file (0: in progress or
 * done). */
int connectErrnoIn(const std::string& netnsPath, const std::string& addr, uint16_t port) {
  int result = -1;
  // setns on a thread of its own: the test's thread keeps its netns.
  std::thread t([&] {
    int ns = ::open(netnsPath.c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0 || ::setns(ns, CLONE_NEWNET) != 0) {
      result = -errno;
      return;
    }
    ::close(ns);
    sockaddr_storage ss{};
    socklen_t len = 0;
    auto* in4 = reinterpret_cast<sockaddr_in*>(&ss);
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (::inet_pton(AF_INET, addr.c_str(), &in4->sin_addr) == 1) {
      in4->sin_family = AF_INET;
      in4->sin_port = htons(port);
      len = sizeof(*in4);
    } else if (::inet_pton(AF_INET6, addr.c_str(), &in6->sin6_addr) == 1) {
      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons(port);
      len = sizeof(*in6);
    }
    int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      result = -errno;
      return;
    }
    result = ::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0 ? 0 : errno;
    result = result == EINPROGRESS ? 0 : result;
    ::close(fd);
  });
  t.join();
  return result;
}

// With no connect hook attached (nothing attaches to a fresh world's cgroup), a
// service address must never be routed anywhere: in a pod and in the node, TCP
// connect() and UDP sendto() fail at once with the blackhole route's EINVAL,
// over IPv4 and IPv6 and at both ends of the ranges. A default route would
// instead send a SYN and fail with EHOSTUNREACH/ENETUNREACH, or time out.
TEST_F(WorldTest, ServiceRangesAreBlackholedInEveryNamespaceWithNoHook) {
  addPod({"client", {}, {}});
  const std::chrono::milliseconds timeout(2000);
  for (const std::string addr : {"10.96.0.20", "10.96.0.0", "10.111.255.254", "fd00:96::20",
                                 "fd00:96::ffff:ffff:ffff:fffe"}) {
    SCOPED_TRACE(addr);
    const auto start = std::chrono::steady_clock::now();
    auto r = world_->httpGet("client", addr, 9080, timeout);
    const auto took = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_FALSE(r->ok);
    EXPECT_EQ(r->step, "connect");
    EXPECT_EQ(r->err, EINVAL) << strerror(r->err);
    EXPECT_LT(took, timeout / 2) << "a blackholed connect fails at once";

    auto u = world_->udpQuery("client", addr, 5353, 1, timeout);
    ASSERT_TRUE(u.ok()) << u.error().message;
    EXPECT_FALSE(u->front().ok);
    EXPECT_EQ(u->front().err, EINVAL) << strerror(u->front().err);

    EXPECT_EQ(connectErrnoIn("/run/netns/" + world_->nodeNetns(), addr, 9080), EINVAL)
        << "in the node's netns";
  }
  // Just outside the ranges the pod's default route applies (nothing answers there).
  EXPECT_NE(connectErrnoIn("/run/netns/" + world_->netnsName("client"), "10.112.0.1", 9080),
            EINVAL);
  EXPECT_NE(connectErrnoIn("/run/netns/" + world_->netnsName("client"), "fd00:97::1", 9080),
            EINVAL);
}

// A pod built for an iptables DNAT baseline (veer-bench-connect's) routes the
// ranges to the node, whose blackhole drops the packets: connect() finds a
// route, so the pod's own DNAT rule can take the connection to a backend, and
// without one the SYN goes no further than the node.
TEST_F(WorldTest, ServiceRangesViaNodeLetThePodsDnatWorkAndStopAtTheNode) {
  // `make deps` installs iptables; the QEMU suite's initramfs does not carry it.
  if (system("command -v iptables >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "iptables not installed";
  }
  PodSpec spec{"dnat", {}, {}};
  spec.serviceRangesViaNode = true;
  addPod(spec);
  addPod({"backend", {"10.244.1.30"}, {}});
  auto srv = world_->startTestServer("backend", "v1", {9080});
  ASSERT_TRUE(srv.ok()) << srv.error().message;

  auto r = world_->httpGet("dnat", "10.96.0.20", 9080, std::chrono::milliseconds(300));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_FALSE(r->ok);
  EXPECT_EQ(r->step, "connect");
  EXPECT_EQ(r->err, ETIMEDOUT) << strerror(r->err) << ": the node drops it silently";

  auto rule = world_->run("dnat", {"iptables", "-w", "-t", "nat", "-A", "OUTPUT", "-d",
                                   "10.96.0.20", "-p", "tcp", "--dport", "9080", "-j", "DNAT",
                                   "--to-destination", "10.244.1.30:9080"});
  ASSERT_TRUE(rule.ok()) << rule.error().message;
  ASSERT_EQ(rule->exitCode, 0) << rule->err;
  r = world_->httpGet("dnat", "10.96.0.20", 9080);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->ok) << r->step << ": " << strerror(r->err);
  EXPECT_EQ(r->body, "v1\n");
}

TEST_F(WorldTest, SpawnedProcessIsInThePodCgroup) {
  addPod({"inside", {}, {}});
  addPod({.name = "outside", .outsideCgroup = true});
  const std::string mount = World::cgroup2Mount().value();

  for (const std::string pod : {"inside", "outside"}) {
    auto p = world_->spawn(pod, {"sleep", "30"});
    ASSERT_TRUE(p.ok()) << p.error().message;
    std::string expected = world_->podCgroup(pod).substr(mount.size());
    std::string cg = readAll("/proc/" + std::to_string(p->pid()) + "/cgroup");
    EXPECT_NE(cg.find("0::" + expected + "\n"), std::string::npos) << cg;
    bool underRoot = world_->podCgroup(pod).rfind(world_->cgroupRoot() + "/", 0) == 0;
    EXPECT_EQ(underRoot, pod == "inside");
    ASSERT_TRUE(p->kill().ok());
    auto code = p->wait();
    ASSERT_TRUE(code.ok()) << code.error().message;
    EXPECT_EQ(*code, 128 + SIGTERM);
  }

  // run() also joins the cgroup, and the netns.
  auto r = world_->run("inside", {"cat", "/proc/self/cgroup"});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_NE(r->out.find(world_->podCgroup("inside").substr(mount.size())), std::string::npos);
  auto addr = world_->run("inside", {"ip", "-4", "-o", "addr", "show", "dev", "eth0"});
  ASSERT_TRUE(addr.ok()) << addr.error().message;
  EXPECT_NE(addr->out.find(world_->podIPv4("inside").at(0) + "/24"), std::string::npos);
}

TEST_F(WorldTest, CapturesStdoutAndReportsExecFailure) {
  addPod({"p", {}, {}});
  auto p = world_->spawn("p", {"echo", "hello"}, {.captureStdout = true});
  ASSERT_TRUE(p.ok()) << p.error().message;
  auto out = p->readStdout();
  ASSERT_TRUE(out.ok()) << out.error().message;
  EXPECT_EQ(*out, "hello\n");
  EXPECT_EQ(p->wait().value(), 0);

  auto bad = world_->spawn("p", {"/nonexistent/binary"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ENOENT);
  EXPECT_FALSE(world_->spawn("nosuchpod", {"true"}).ok());
  EXPECT_FALSE(world_->addPod({"p", {}, {}}).ok()) << "duplicate pod name accepted";
}

TEST_F(WorldTest, WaitListeningGivesUpAtTheDeadline) {
  addPod({"p", {}, {}});
  auto start = std::chrono::steady_clock::now();
  auto s = world_->waitListening("p", 1234, std::chrono::milliseconds(200));
  EXPECT_FALSE(s.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

// Teardown removes every netns, cgroup and process, including what an aborted test leaves.
TEST(WorldTeardown, RemovesEverything) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root";
  }
  std::string prefix, root, outsideCg, podNs, nodeNs;
  pid_t pid = -1;
  {
    auto w = World::create();
    ASSERT_TRUE(w.ok()) << w.error().message;
    World& world = **w;
    ASSERT_TRUE(world.addPod({"a", {}, {}}).ok());
    ASSERT_TRUE(world.addPod({.name = "b", .outsideCgroup = true}).ok());
    prefix = world.prefix();
    root = world.cgroupRoot();
    outsideCg = world.podCgroup("b");
    podNs = world.netnsName("a");
    nodeNs = world.nodeNetns();
    // A process the test lost track of: a background child of a shell that exited.
    auto p =
        world.spawn("a", {"sh", "-c", "sleep 60 >/dev/null & echo $!"}, {.captureStdout = true});
    ASSERT_TRUE(p.ok()) << p.error().message;
    auto out = p->readStdout();
    ASSERT_TRUE(out.ok()) << out.error().message;
    pid = std::stoi(*out);
    ASSERT_EQ(p->wait().value(), 0);
    ASSERT_TRUE(alive(pid));
    ASSERT_TRUE(pathExists("/run/netns/" + podNs));
    ASSERT_TRUE(pathExists(root + "/a"));
    ASSERT_TRUE(pathExists(outsideCg));
  }
  EXPECT_FALSE(pathExists("/run/netns/" + podNs));
  EXPECT_FALSE(pathExists("/run/netns/" + nodeNs));
  EXPECT_FALSE(pathExists(root));
  EXPECT_FALSE(pathExists(outsideCg));
  EXPECT_FALSE(alive(pid)) << "process " << pid << " survived teardown";
  // No link named after the world leaked into our own netns (links live in the world's netns).
  std::string links = readAll("/proc/net/dev");
  EXPECT_EQ(links.find(prefix), std::string::npos);
  EXPECT_TRUE(World::cleanupStale(prefix).ok());
}

TEST(WorldTeardown, FailingTestStillTearsDown) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root";
  }
  std::string podNs, root;
  // A fatal assertion inside a helper returns early; the World destructor still runs.
  auto body = [&]() {
    auto w = World::create();
    ASSERT_TRUE(w.ok()) << w.error().message;
    ASSERT_TRUE((*w)->addPod({"a", {}, {}}).ok());
    podNs = (*w)->netnsName("a");
    root = (*w)->cgroupRoot();
    auto srv = (*w)->startTestServer("a", "v1", {9080});
    ASSERT_TRUE(srv.ok()) << srv.error().message;
    // A bad pod spec fails in the middle of addPod; the world is partly built.
    EXPECT_FALSE((*w)->addPod({"bad", {"not-an-ip"}, {}}).ok());
    return; // like a failed ASSERT
  };
  body();
  EXPECT_FALSE(podNs.empty());
  EXPECT_FALSE(pathExists("/run/netns/" + podNs));
  EXPECT_FALSE(pathExists(root));
}

TEST(WorldTeardown, CleanupStaleRemovesLeftovers) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root";
  }
  std::string prefix = "vwstale" + std::to_string(::getpid()) + "-";
  std::string mount = World::cgroup2Mount().value();
  ASSERT_EQ(::mkdir((mount + "/" + prefix + "world").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((mount + "/" + prefix + "world/pod").c_str(), 0755), 0);
  ASSERT_EQ(std::system(("ip netns add " + prefix + "node").c_str()), 0);
  EXPECT_TRUE(World::cleanupStale(prefix).ok());
  EXPECT_FALSE(pathExists(mount + "/" + prefix + "world"));
  EXPECT_FALSE(pathExists("/run/netns/" + prefix + "node"));
  EXPECT_FALSE(World::cleanupStale("").ok());
}

} // namespace
} // namespace veer::test
