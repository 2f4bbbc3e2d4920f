// The L7 path end to end: veer-agent runs veer-proxy in the node's netns, the
// connect hooks send L7 services to it, and curl in client pods sees each
// request routed by header, cookie, weight and lane (seeds 000-003).

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include <sstream>

#include "common/hash.h"
#include "kernel_path_fixture.h"
#include "metrics_client.h"
#include "../unit/promtool.h"
#include "pod_child.h"
#include "proxy/router.h"
#include "reconcile/proxy_metrics.h"

namespace veer::test {
namespace {

constexpr const char* kProxyPort = "15001";

/**
 * One whole request on a fresh connection from srcPort (0: any) to addr:port, with
 * Connection: close. Returns "<status> <first body line>", or "connect <errno>" /
 * "request <errno>". A fixed source port may still be held by the previous
 * connection's last packets: EADDRNOTAVAIL is retried for up to 2 s.
 */
std::string requestOnce(const char* addr, uint16_t port, uint16_t srcPort = 0) {
  const std::string req = "GET / HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n\r\n";
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(port);
  inet_pton(AF_INET, addr, &dst.sin_addr);
  int s = -1;
  for (int attempt = 0; attempt < 200; ++attempt) {
    s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    timeval tv{2, 0};
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in src{};
    src.sin_family = AF_INET;
    src.sin_port = htons(srcPort);
    if ((srcPort == 0 || bind(s, reinterpret_cast<sockaddr*>(&src), sizeof(src)) == 0) &&
        connect(s, reinterpret_cast<sockaddr*>(&dst), sizeof(dst)) == 0) {
      break;
    }
    const int err = errno;
    close(s);
    s = -1;
    if (err != EADDRNOTAVAIL && err != EADDRINUSE) {
      return "connect " + std::to_string(err);
    }
    usleep(10000);
  }
  if (s < 0) {
    return "connect " + std::to_string(EADDRNOTAVAIL);
  }
  std::string resp;
  char b[4096];
  ssize_t r = send(s, req.data(), req.size(), MSG_NOSIGNAL) == ssize_t(req.size()) ? 1 : -1;
  while (r > 0 && (r = recv(s, b, sizeof(b), 0)) > 0) {
    resp.append(b, r);
  }
  const int err = errno;
  close(s);
  const size_t head = resp.find("\r\n\r\n");
  if (r < 0 || resp.size() < 12 || head == std::string::npos) {
    return "request " + std::to_string(err);
  }
  const std::string body = resp.substr(head + 4);
  return resp.substr(9, 3) + " " + body.substr(0, body.find('\n'));
}

/** In a pod: fresh connections to addr:port one after another, one line per request. */
void requestLoop(const std::function<void(const std::string&)>& emit, const char* addr,
                 uint16_t port) {
  while (true) {
    emit(requestOnce(addr, port));
  }
}

/** Lines of a requestLoop, counted by kind. */
struct Tally {
  int ok = 0;      // a complete answer
  int refused = 0; // connect() failed
  int failed = 0;  // connected, then no complete answer (the proxy died mid-request)
  std::vector<std::string> refusals;

  /** Reads the child's lines until the deadline (so its pipe never fills meanwhile). */
  void drainUntil(PodChild& child, steady_clock::time_point until) {
    while (steady_clock::now() < until) {
      const std::string l = child.line(milliseconds(1));
      if (l.empty()) {
        continue;
      }
      if (l.rfind("connect ", 0) == 0) {
        refused++;
        refusals.push_back(l);
      } else if (l.rfind("request ", 0) == 0) {
        failed++;
      } else {
        ok++;
      }
    }
  }
};

/** One transfer of a curl run. */
struct Reply {
  int status = 0;
  std::string version; // first body line
  int connects = 0;    // new connections curl made for it (0 = reused keep-alive)
  std::string body;
};

/**
 * The proxy fixture: the kernel-path world (reviews v1/v2/v3 at 10.244.1.2x) with the
 * agent also running veer-proxy on the node's bridge address.
 */
class ProxyTest : public KernelPathTest {
protected:
  void SetUp() override {
    KernelPathTest::SetUp();
    if (HasFatalFailure()) {
      return;
    }
    startAgentWithProxy(
        {"10.244.1.1:" + std::string(kProxyPort), "[fd00:244:1::1]:" + std::string(kProxyPort)});
  }

  void startAgentWithProxy(const std::vector<std::string>& listen,
                           std::vector<std::string> args = {}) {
    args.insert(args.end(), {"--run-dir", (tmp_ / "run").string(), "--proxy-netns",
                             "/run/netns/" + world_->nodeNetns()});
    for (const std::string& l : listen) {
      args.push_back("--proxy-listen");
      args.push_back(l);
    }
    agent_ = std::make_unique<AgentProcess>(configDir_, bpffs_, world_->cgroupRoot());
    agent_->setExtraArgs(args);
  }

  veer_proxy liveProxy() {
    auto maps = PinnedMaps::open(bpffs_.string());
    EXPECT_TRUE(maps) << maps.error().message;
    auto px = maps ? maps->proxy() : Result<veer_proxy>(Error{});
    EXPECT_TRUE(px);
    return px ? *px : veer_proxy{};
  }

  /**
   * Waits until the proxy serves the route table of the config now in configDir_
   * (the kernel image alone may not change: a new pod in an L7-only subset).
   */
  void waitProxyServing() {
    BuildResult built = buildFromPaths({configDir_.string()});
    ASSERT_TRUE(built.ok());
    const std::string json =
        proxy::RouteTable::fromPlan(built.plan, *built.config, proxy::RouteOptions{})->toJson();
    const uint64_t want = fnv1a64(json.data(), json.size());
    const auto deadline = steady_clock::now() + std::chrono::seconds(10);
    while (steady_clock::now() < deadline) {
      veer_proxy px = liveProxy();
      if (px.ready && px.routes_digest == want) {
        return;
      }
      std::this_thread::sleep_for(milliseconds(5));
    }
    FAIL() << "veer-proxy does not serve the config's routes; agent log:\n";
  }

  /** applyStep for configs with L7 services: the maps and the proxy both run it. */
  void applyL7Step(const std::string& seedDir, const std::string& step) {
    applyStep(seedDir, step);
    waitProxyServing();
  }

  /** Waits (bounded) until veer_proxy.ready is want. */
  void waitProxyReady(bool want) {
    const auto deadline = steady_clock::now() + std::chrono::seconds(10);
    while (steady_clock::now() < deadline) {
      if ((liveProxy().ready == 1) == want) {
        return;
      }
      std::this_thread::sleep_for(milliseconds(5));
    }
    FAIL() << "veer_proxy.ready never became " << want << "; agent log:\n";
  }

  /**
   * n requests from pod to url in ONE curl run (so one keep-alive connection when
   * the server keeps it open), with extra curl arguments.
   */
  std::vector<Reply> curl(const std::string& pod, const std::string& url, int n,
                          const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {"curl", "-sS", "--max-time",
                                     "20",   "-w",  "\n##%{http_code} %{num_connects}\n"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back(n > 1 ? url + "?i=[1-" + std::to_string(n) + "]" : url);
    auto res = world_->run(pod, argv, milliseconds(60000));
    EXPECT_TRUE(res) << res.error().message;
    std::vector<Reply> out;
    if (!res) {
      return out;
    }
    EXPECT_EQ(res->exitCode, 0) << res->err;
    std::string rest = res->out;
    for (size_t at; (at = rest.find("\n##")) != std::string::npos;) {
      Reply r;
      r.body = rest.substr(0, at);
      r.version = r.body.substr(0, r.body.find('\n'));
      size_t eol = rest.find('\n', at + 1);
      std::istringstream(rest.substr(at + 3, eol - at - 3)) >> r.status >> r.connects;
      out.push_back(r);
      rest.erase(0, eol == std::string::npos ? rest.size() : eol + 1);
    }
    EXPECT_EQ(out.size(), static_cast<size_t>(n)) << res->out;
    return out;
  }

  static std::map<std::string, int> countVersions(const std::vector<Reply>& replies) {
    std::map<std::string, int> m;
    for (const Reply& r : replies) {
      m[r.status == 200 ? r.version : "status " + std::to_string(r.status)]++;
    }
    return m;
  }

  static int connections(const std::vector<Reply>& replies) {
    int n = 0;
    for (const Reply& r : replies) {
      n += r.connects;
    }
    return n;
  }

  /** The proxy's pid, from its pid file; -1 when there is none. */
  pid_t proxyPid() {
    Result<std::string> text = readFile((tmp_ / "run/veer-proxy.pid").string());
    return text && !text->empty() ? std::stoi(*text) : -1;
  }

  /** Whether pid has exited (gone, or a zombie nobody reaped yet). */
  static bool exited(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) {
      return true;
    }
    const size_t paren = line.rfind(')');
    return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z';
  }

  /** `veerctl status` on this test's bpffs. */
  std::string veerctlStatus() {
    auto res = world_->run("outsider",
                           {(binDir() / "veerctl").string(), "--bpffs", bpffs_.string(), "status"});
    EXPECT_TRUE(res) << res.error().message;
    return res ? res->out + res->err : "";
  }

  const std::string reviewsUrl_ = "http://" + std::string(kReviews4) + ":9080/";
};

// Seed 000 step 4: `end-user: jason` reaches v3, everyone else v2, per request.
TEST_F(ProxyTest, Seed000JasonReachesV3) {
  agent_->start();
  applyL7Step("000-asm-bookinfo", "04-jason-v3.yaml");

  auto jason = curl("productpage-v1", reviewsUrl_, 50, {"-H", "end-user: jason"});
  EXPECT_EQ(countVersions(jason), (std::map<std::string, int>{{"v3", 50}}));
  auto others = curl("productpage-v1", reviewsUrl_, 50, {"-H", "end-user: mary"});
  EXPECT_EQ(countVersions(others), (std::map<std::string, int>{{"v2", 50}}));
  auto anon = curl("productpage-v1", reviewsUrl_, 50);
  EXPECT_EQ(countVersions(anon), (std::map<std::string, int>{{"v2", 50}}));
  // One keep-alive connection per curl run: routing is per request, not per connection.
  EXPECT_EQ(connections(jason), 1);
  EXPECT_EQ(connections(anon), 1);
}

// The proxy's counts reach the agent's scrape: the real veer-proxy's stats socket in the
// run dir (as the supervisor starts it), read the way /metrics reads it.
TEST_F(ProxyTest, Seed000RequestsAndUpstreamConnectionsAreCountedPerVersion) {
  agent_->start();
  applyL7Step("000-asm-bookinfo", "04-jason-v3.yaml");
  curl("productpage-v1", reviewsUrl_, 20, {"-H", "end-user: jason"});
  curl("productpage-v1", reviewsUrl_, 30);

  const std::string socket = (tmp_ / "run" / "veer-proxy.stats.sock").string();
  struct stat st {};
  ASSERT_EQ(stat(socket.c_str(), &st), 0) << socket;
  EXPECT_EQ(st.st_mode & 07777, 0600U);
  // The last request is counted just after its last byte left: wait for it (bounded).
  std::map<std::string, uint64_t> byVersion;
  Result<proxy::ProxyStats> stats = Error{};
  const auto deadline = steady_clock::now() + std::chrono::seconds(10);
  while (steady_clock::now() < deadline) {
    stats = fetchProxyStats(socket);
    ASSERT_TRUE(stats) << stats.error().message;
    byVersion.clear();
    for (const auto& [l, n] : stats->requests) {
      if (l.name == "reviews" && l.code == 200) {
        byVersion[l.version] += n;
      }
    }
    if (byVersion["v2"] + byVersion["v3"] >= 50) {
      break;
    }
    std::this_thread::sleep_for(milliseconds(5));
  }
  EXPECT_EQ(byVersion, (std::map<std::string, uint64_t>{{"v2", 30}, {"v3", 20}}))
      << stats->toJson();
  std::map<std::string, uint64_t> connections;
  for (const auto& [l, n] : stats->connections) {
    connections[l.name + " " + l.version] += n;
  }
  // One curl run, one keep-alive connection, one upstream connection per version.
  EXPECT_EQ(connections, (std::map<std::string, uint64_t>{{"reviews v2", 1}, {"reviews v3", 1}}))
      << stats->toJson();

  metrics::TextWriter w;
  writeConnectionFamilies(w, {}, &*stats);
  writeRequestFamilies(w, &*stats);
  EXPECT_NE(w.render().find("path=\"l7\"} 1\n"), std::string::npos) << w.render();
}

// The agent's own endpoint with veer-proxy: ready once the proxy serves the config, and
// /metrics joins the proxy's requests and upstream connections (path="l7") with the
// kernel's families, through the proxy's stats socket, in a page promtool accepts.
TEST_F(ProxyTest, AgentMetricsServeTheProxysNumbers) {
  const uint16_t port = freePort();
  ASSERT_NE(port, 0);
  startAgentWithProxy(
      {"10.244.1.1:" + std::string(kProxyPort), "[fd00:244:1::1]:" + std::string(kProxyPort)},
      {"--metrics-listen", "127.0.0.1:" + std::to_string(port)});
  agent_->start();
  applyL7Step("000-asm-bookinfo", "04-jason-v3.yaml");
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  HttpAnswer ready = httpGet(base + "/readyz");
  EXPECT_EQ(ready.status, 200) << ready.body;
  curl("productpage-v1", reviewsUrl_, 20, {"-H", "end-user: jason"});

  // The last request is counted just after its last byte left: wait for it (bounded).
  const std::string requests = "veer_requests_total{destination_service_namespace=\"default\","
                               "destination_service_name=\"reviews\",destination_version="
                               "\"v3\",response_code=\"200\",route=";
  HttpAnswer page = getUntil(base + "/metrics", [&](const HttpAnswer& a) {
    const size_t at = a.body.find(requests);
    return at != std::string::npos && a.body.compare(a.body.find('\n', at) - 3, 3, " 20") == 0;
  });
  ASSERT_EQ(page.status, 200) << page.body;
  const size_t at = page.body.find(requests);
  ASSERT_NE(at, std::string::npos) << page.body;
  EXPECT_EQ(page.body.compare(page.body.find('\n', at) - 3, 3, " 20"), 0) << page.body;
  EXPECT_NE(page.body.find("veer_tcp_connections_opened_total{destination_service_namespace="
                           "\"default\",destination_service_name=\"reviews\","
                           "destination_port=\"9080\",destination_version=\"v3\",path="
                           "\"l7\"} 1\n"),
            std::string::npos)
      << page.body;
  EXPECT_NE(page.body.find("veer_request_duration_milliseconds_bucket{"), std::string::npos);
  std::optional<std::string> lint = promtool::check(page.body);
  if (!lint) { // `make deps` installs it; the QEMU suite's initramfs does not carry it
    GTEST_SKIP() << "promtool (Debian package prometheus) not installed: the lint is unchecked";
  }
  EXPECT_EQ(*lint, promtool::kIstioUnitLint) << page.body;
}

// Issue 21 M9: routes.json names services, pod addresses and header values to match. It
// was 0644 in a 0755 run directory, and stayed after --uninstall.
TEST_F(ProxyTest, RouteTableIsPrivateAndGoesWithUninstall) {
  agent_->start();
  applyL7Step("000-asm-bookinfo", "04-jason-v3.yaml");
  const fs::path run = tmp_ / "run";
  struct stat st {};
  ASSERT_EQ(stat(run.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  ASSERT_EQ(stat((run / "routes.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(WEXITSTATUS(agent_->stop()), 0);
  const std::string cmd = (binDir() / "veer-agent").string() + " --uninstall --bpffs " +
                          bpffs_.string() + " --run-dir " + run.string() + " >/dev/null 2>&1";
  ASSERT_EQ(system(cmd.c_str()), 0);
  EXPECT_FALSE(fs::exists(run / "routes.json"));
  EXPECT_FALSE(fs::exists(run / "veer-proxy.stats.sock")) << "the proxy removes it as it exits";
}

/** The proxy fixture with socket acceleration on (bpf/lib/accel.h). */
class AcceleratedProxyTest : public ProxyTest {
protected:
  void SetUp() override {
    ProxyTest::SetUp();
    if (HasFatalFailure()) {
      return;
    }
    startAgentWithProxy({"10.244.1.1:" + std::string(kProxyPort)}, {"--socket-acceleration"});
  }
};

// Seed 000 again, with client -> proxy -> backend data delivered socket to socket: the
// same routing per request, whole bodies, and the data really skipped the TCP stack.
TEST_F(AcceleratedProxyTest, Seed000OverDirectDelivery) {
  agent_->start();
  applyL7Step("000-asm-bookinfo", "04-jason-v3.yaml");

  auto jason = curl("productpage-v1", reviewsUrl_, 50, {"-H", "end-user: jason"});
  EXPECT_EQ(countVersions(jason), (std::map<std::string, int>{{"v3", 50}}));
  auto anon = curl("productpage-v1", reviewsUrl_, 50);
  EXPECT_EQ(countVersions(anon), (std::map<std::string, int>{{"v2", 50}}));
  EXPECT_EQ(connections(jason), 1);
  EXPECT_EQ(connections(anon), 1);
  // A 6 KiB header comes back whole in the echoed request head (veer-testsrv x-veer-echo).
  const std::string big(6000, 'z');
  auto echo = curl("productpage-v1", reviewsUrl_, 5,
                   {"-H", "x-veer-echo: 1", "-H", "x-big: " + big, "-H", "end-user: jason"});
  ASSERT_EQ(echo.size(), 5u);
  for (const Reply& r : echo) {
    EXPECT_EQ(r.version, "v3");
    EXPECT_NE(r.body.find("x-big: " + big + "\r\n"), std::string::npos) << r.body.size();
  }
  // Both hops' ends joined, and every response went socket to socket on both hops
  // (requests too, unless one was sent before its peer end had joined).
  veer_accel_stats st = accelStats();
  EXPECT_GE(st.sockets, 4u);
  EXPECT_GE(st.redirected, 105u * 2) << "tcp: " << st.tcp;
  // The agent ran the proxy on epoll: its io_uring loop stalled here (design.md).
  EXPECT_NE(agent_->log().find("threads, epoll)"), std::string::npos) << agent_->log();
}

// Seed 001: a header-matched test user on v2 (L7), then 80/20 (kernel).
TEST_F(ProxyTest, Seed001TestUserThenKernelSplit) {
  agent_->start();
  applyL7Step("001-istio-canary", "02-test-user-v2.yaml");
  EXPECT_EQ(countVersions(curl("productpage-v1", reviewsUrl_, 20, {"-H", "end-user: jason"})),
            (std::map<std::string, int>{{"v2", 20}}));
  EXPECT_EQ(countVersions(curl("productpage-v1", reviewsUrl_, 20)),
            (std::map<std::string, int>{{"v1", 20}}));

  // 80/20 without a match is a kernel-path split (the planner says so): per
  // connection, exact over any 100; a keep-alive connection stays where it landed.
  applyStep("001-istio-canary", "03-80-20.yaml");
  expectExactSplit(kReviews4, {{"v1", 80}, {"v2", 20}});
  auto replies = curl("productpage-v1", reviewsUrl_, 20);
  EXPECT_EQ(countVersions(replies).size(), 1u);
  EXPECT_EQ(connections(replies), 1);
}

// Seed 002: the canary's responses set a cookie; a client that got it stays on v2.
TEST_F(ProxyTest, Seed002CookieKeepsAClientOnTheCanary) {
  agent_->start();
  applyL7Step("002-sticky-canary", "01-cookie-90-10.yaml");

  // One curl run with its cookie engine on: cookies set by one response go with
  // the next requests, as a browser's would.
  auto replies = curl("productpage-v1", reviewsUrl_, 40, {"-b", ""});
  ASSERT_EQ(replies.size(), 40u);
  size_t firstV2 = 0;
  while (firstV2 < replies.size() && replies[firstV2].version == "v1") {
    ++firstV2;
  }
  EXPECT_LT(firstV2, 10u) << "at 90/10 a v2 response (with its Set-Cookie) comes within 10";
  for (size_t i = firstV2; i < replies.size(); ++i) {
    EXPECT_EQ(replies[i].version, "v2") << "request " << i << " left the canary";
  }
  // Without the cookie engine nobody sticks: exactly 90/10, per request on one
  // keep-alive connection.
  auto plain = curl("productpage-v1", reviewsUrl_, 100);
  EXPECT_EQ(countVersions(plain), (std::map<std::string, int>{{"v1", 90}, {"v2", 10}}));
  EXPECT_EQ(connections(plain), 1);

  // The canary's Set-Cookie is on v2 responses only.
  auto head = world_->run("productpage-v1", {"curl", "-sS", "-D", "-", "-o", "/dev/null", "-H",
                                             "Cookie: reviews-cookie=REVIRES-V2", reviewsUrl_});
  ASSERT_TRUE(head);
  EXPECT_NE(head->out.find("x-veer-version: v2"), std::string::npos) << head->out;

  // The last step expires the cookie on every matched response.
  applyL7Step("002-sticky-canary", "07-all-v2-clear-cookie.yaml");
  head = world_->run("productpage-v1", {"curl", "-sS", "-D", "-", "-o", "/dev/null", "-H",
                                        "Cookie: reviews-cookie=REVIRES-V2", reviewsUrl_});
  ASSERT_TRUE(head);
  EXPECT_NE(head->out.find("reviews-cookie=REVIRES-V2; Max-Age=-1"), std::string::npos)
      << head->out;
}

// The client still sees the service as its peer; kernel-path services never
// touch the proxy; a dead proxy sends L7 services back to the kernel path at once
// and is restarted.
TEST_F(ProxyTest, ProxyDeathFallsBackToTheKernelAndRecovers) {
  agent_->start();
  applyL7Step("000-asm-bookinfo", "04-jason-v3.yaml");

  auto one = world_->httpGet("productpage-v1", kReviews4, kHttpPort);
  ASSERT_TRUE(one);
  ASSERT_TRUE(one->ok) << one->step << ": " << strerror(one->err);
  EXPECT_EQ(one->peerAddr, kReviews4);
  EXPECT_EQ(one->peerPort, kHttpPort);

  // Kernel path (ratings: an unconditional rule) is counted by the hooks; the L7
  // service (reviews) is not, because the proxy picks its versions.
  auto live = PinnedMaps::open(bpffs_.string())->live(); // kept: the loop reads into it
  ASSERT_TRUE(live) << live.error().message;
  for (const LiveService& ls : live->services) {
    for (const auto& v : ls.versions) {
      if (std::string(v.ver.service).rfind("default/reviews:", 0) == 0) {
        EXPECT_EQ(v.stats.connects, 0u) << v.ver.subset;
      }
    }
  }

  // Kill the proxy: the agent stops the redirect, the kernel serves reviews.
  const pid_t pid = proxyPid();
  ASSERT_GT(pid, 0);
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  waitProxyReady(false);
  // The kernel applies the unconditional rule: v2. No header routing meanwhile.
  EXPECT_EQ(split(kReviews4, 100), (std::map<std::string, int>{{"v2", 100}}));

  // And it comes back, serving the same table.
  waitProxyServing();
  EXPECT_EQ(countVersions(curl("productpage-v1", reviewsUrl_, 10, {"-H", "end-user: jason"})),
            (std::map<std::string, int>{{"v3", 10}}));
}

// Issue 21, serious 1: with no agent alive to clear veer_proxy.ready, a proxy killed
// under load must not refuse one connection: the connect hook sees its listener gone
// and sends reviews down the kernel path; status reads the same liveness.
TEST_F(ProxyTest, ProxyKilledWithNoAgentRunningRefusesNothingAndStatusSaysSo) {
  agent_->start();
  applyL7Step("000-asm-bookinfo", "04-jason-v3.yaml");
  const pid_t pid = proxyPid();
  ASSERT_GT(pid, 0);
  agent_->stop(); // SIGTERM: the proxy, like the pinned datapath, keeps serving
  ASSERT_EQ(liveProxy().ready, 1) << "the proxy serves with no agent";
  EXPECT_NE(veerctlStatus().find("veer-proxy ready"), std::string::npos) << veerctlStatus();

  Tally tally;
  PodChild client(*world_, "productpage-v1",
                  [](const auto& emit) { requestLoop(emit, kReviews4, kHttpPort); });
  tally.drainUntil(client, steady_clock::now() + milliseconds(300));
  ASSERT_GT(tally.ok, 0) << "no request went through the proxy before the kill";
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  const auto deadline = steady_clock::now() + std::chrono::seconds(5);
  while (!exited(pid) && steady_clock::now() < deadline) {
    tally.drainUntil(client, steady_clock::now() + milliseconds(5));
  }
  ASSERT_TRUE(exited(pid));
  // The listener closes with its last file reference: at the exit, or when the
  // kernel tears down an io_uring ring that still held it, just after (a workqueue;
  // slow under the VM suite's emulation).
  while (liveProxy().ready && steady_clock::now() < deadline + std::chrono::seconds(2)) {
    tally.drainUntil(client, steady_clock::now() + milliseconds(5));
  }
  EXPECT_EQ(liveProxy().ready, 0) << "status must not call a dead proxy ready";
  EXPECT_NE(veerctlStatus().find("veer-proxy NOT READY"), std::string::npos) << veerctlStatus();
  const int okAtDeath = tally.ok;
  tally.drainUntil(client, steady_clock::now() + std::chrono::seconds(1));
  EXPECT_EQ(tally.refused, 0) << "first: " << (tally.refusals.empty() ? "" : tally.refusals[0]);
  EXPECT_GT(tally.ok - okAtDeath, 50) << "the kernel path served reviews after the death";
  EXPECT_LE(tally.failed, 5) << "only requests in flight at the kill may fail";
  // And the kernel path is the unconditional rule: v2, header or not.
  EXPECT_EQ(countVersions(curl("productpage-v1", reviewsUrl_, 5, {"-H", "end-user: jason"})),
            (std::map<std::string, int>{{"v2", 5}}));
}

// Issue 21, M1: with the agent alive, a proxy kill used to refuse connections for the
// 0-17 ms until the agent reaped it and cleared ready. 16 kills under a stream of
// fresh connections: none refused.
TEST_F(ProxyTest, ProxyKillLoopWithTheAgentAliveRefusesNothing) {
  agent_->start();
  applyL7Step("000-asm-bookinfo", "04-jason-v3.yaml");
  Tally tally;
  PodChild client(*world_, "productpage-v1",
                  [](const auto& emit) { requestLoop(emit, kReviews4, kHttpPort); });
  for (int kill_ = 0; kill_ < 16; ++kill_) {
    const pid_t pid = proxyPid();
    ASSERT_GT(pid, 0);
    tally.drainUntil(client, steady_clock::now() + milliseconds(50));
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    // Until the agent's restart serves again (backoff 250 ms, then its load).
    const auto deadline = steady_clock::now() + std::chrono::seconds(10);
    while (!(proxyPid() != pid && liveProxy().ready) && steady_clock::now() < deadline) {
      tally.drainUntil(client, steady_clock::now() + milliseconds(5));
    }
    ASSERT_TRUE(proxyPid() != pid && liveProxy().ready) << "kill " << kill_ << ": no restart\n"
                                                        << agent_->log();
  }
  tally.drainUntil(client, steady_clock::now() + milliseconds(100));
  // The hook redirects only while the listener is in the sockmap, so the 0-17 ms window
  // is gone (it refused about two connections a kill). One race is left: a connect whose
  // hook saw the listener a moment before the kill, and whose SYN arrives after the
  // listener closed. Microseconds on the host (0 refused here); under QEMU's emulation
  // it was hit once in 16 kills. Closing it needs the agent to hold the listener across
  // proxy restarts (docs/design.md).
  EXPECT_LE(tally.refused, 1) << "first: " << (tally.refusals.empty() ? "" : tally.refusals[0]);
  EXPECT_GT(tally.ok, 100);
  // Requests in flight at a kill die with the proxy; a handful per kill at most.
  EXPECT_LE(tally.failed, 16 * 5);
}

// Issue 21, serious 2: a keep-alive client that reconnected while the proxy was down
// took the kernel path and stayed there for its life. Once the restarted proxy
// serves, the agent destroys those connections (flagged at connect): the client is
// back on the header rule within one recycling pass after the proxy is ready, which
// this test bounds at 3 s after the kill (restart backoff 250 ms + load + the pass).
TEST_F(ProxyTest, KeepAliveClientFollowsTheHeaderRuleAgainAfterAProxyRestart) {
  agent_->start();
  applyL7Step("000-asm-bookinfo", "04-jason-v3.yaml");
  PodChild client(*world_, "productpage-v1", [](const auto& emit) {
    keepAliveClient(emit, kReviews4, 20000, "end-user: jason\r\n");
  });
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(client.line(), "v3 1") << "jason on one keep-alive connection, via the proxy";
  }
  const pid_t pid = proxyPid();
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  const auto killed = steady_clock::now();
  int kernelPath = 0;
  std::string l;
  std::vector<std::string> fails;
  while (steady_clock::now() < killed + std::chrono::seconds(10) && !(l = client.line()).empty()) {
    if (l.rfind("fail", 0) == 0) {
      fails.push_back(l);
    } else if (l.rfind("v2", 0) == 0) {
      kernelPath++; // the unconditional rule: no header routing while the proxy is down
    } else if (l.rfind("v3", 0) == 0 && kernelPath > 0) {
      break;
    }
  }
  const auto back = steady_clock::now();
  ASSERT_GT(kernelPath, 0) << "the client never reconnected while the proxy was down";
  ASSERT_EQ(l.rfind("v3", 0), 0u) << "stuck on the kernel path; agent log:\n" << agent_->log();
  EXPECT_LT(back - killed, std::chrono::seconds(3));
  EXPECT_TRUE(fails.empty()) << fails[0];
  const std::string conn = l.substr(l.find(' '));
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(client.line(), "v3" + conn) << "the new connection stays on the proxy";
  }
  EXPECT_NE(agent_->log().find("took the kernel path meanwhile"), std::string::npos);
}

// Issue 21, M3: a redirected connection's (client address, port) -> service entry
// outlived it, so a later direct connection to the proxy from the same source port
// was routed as that service. The entry dies with the connection.
TEST_F(ProxyTest, OriginalDestinationIsForgottenWhenItsConnectionCloses) {
  agent_->start();
  applyL7Step("000-asm-bookinfo", "04-jason-v3.yaml");
  PodChild client(*world_, "productpage-v1", [](const auto& emit) {
    constexpr uint16_t kSrcPort = 41234;
    emit(requestOnce(kReviews4, kHttpPort, kSrcPort));                // redirected to the proxy
    emit(requestOnce("10.244.1.1", std::stoi(kProxyPort), kSrcPort)); // straight to it
  });
  EXPECT_EQ(client.line(), "200 v2") << "reviews through the proxy";
  const std::string direct = client.line();
  ASSERT_FALSE(direct.empty());
  EXPECT_NE(direct.rfind("200 v", 0), 0u)
      << "a direct connection was routed as the earlier connection's service: " << direct;
}

/**
 * Seed 003 (full-link gray): productpage -> reviews -> ratings as namespace pods;
 * reviews pods call ratings and pass on the lane header. Pod and service
 * addresses are the seed's.
 */
class GrayLaneTest : public ProxyTest {
protected:
  void SetUp() override {
    KernelPathTest::SetUp();
    if (HasFatalFailure()) {
      return;
    }
    struct PodDef {
      const char* name;
      const char* v4;
      std::vector<std::string> extra; // veer-testsrv arguments after --version
    };
    const std::vector<std::string> callRatings = {"--call", "10.96.3.30:9080", "--propagate",
                                                  "x-asm-prefer-tag"};
    const PodDef pods[] = {{"gray-productpage-v1", "10.244.3.41", {}},
                           {"gray-productpage-v2", "10.244.3.42", {}},
                           {"gray-reviews-v1", "10.244.3.21", callRatings},
                           {"gray-reviews-v2", "10.244.3.22", callRatings},
                           {"gray-ratings-v1", "10.244.3.31", {}},
                           {"gray-ratings-v2", "10.244.3.32", {}}};
    for (const PodDef& p : pods) {
      Status s = world_->addPod(PodSpec{p.name, {p.v4}, {}});
      ASSERT_TRUE(s) << s.error().message;
      std::string version = std::string(p.name).substr(5); // "reviews-v2"
      if (version.rfind("productpage", 0) == 0) {
        continue; // clients only
      }
      std::vector<std::string> argv = {World::testServerPath(), "--version", version, "--tcp",
                                       "9080"};
      argv.insert(argv.end(), p.extra.begin(), p.extra.end());
      auto proc = world_->spawn(p.name, argv);
      ASSERT_TRUE(proc) << proc.error().message;
      servers_.push_back(std::move(*proc));
      Status up = world_->waitListening(p.name, 9080);
      ASSERT_TRUE(up) << up.error().message;
    }
    for (const char* f : {"inventory.yaml", "destination-rules.yaml"}) {
      fs::remove(configDir_ / f);
    }
    const fs::path seed = sourceDir() / "configs/003-asm-full-link-gray";
    for (const char* f : {"inventory.yaml", "destination-rules.yaml", "gateway.yaml"}) {
      fs::copy_file(seed / f, configDir_ / f);
    }
    startAgentWithProxy({"10.244.3.1:" + std::string(kProxyPort)});
  }

  /** The call path a request from pod takes: "reviews-v2 ratings-v1". */
  std::string path(const std::string& pod, const std::vector<std::string>& extra = {}) {
    auto replies = curl(pod, "http://10.96.3.20:9080/", 1, extra);
    if (replies.empty()) {
      return "(no reply)";
    }
    if (replies[0].status != 200) {
      return "status " + std::to_string(replies[0].status) + ": " + replies[0].body;
    }
    std::string out, line;
    std::istringstream in(replies[0].body);
    while (std::getline(in, line)) {
      out += (out.empty() ? "" : " ") + line;
    }
    return out;
  }
};

TEST_F(GrayLaneTest, Seed003LanesFollowTheTagAndFallBackToProd) {
  agent_->start();
  const std::vector<std::string> grayHeader = {"-H", "x-asm-prefer-tag: gray"};

  // Step 1: reviews has a gray lane but no gray pod: fallback to prod.
  applyL7Step("003-asm-full-link-gray", "01-trafficlabel-reviews.yaml");
  EXPECT_EQ(path("gray-productpage-v1", grayHeader), "reviews-v1 ratings-v1");
  EXPECT_EQ(path("gray-productpage-v1"), "reviews-v1 ratings-v1");

  // Step 2: reviews-v2 is ready: tagged requests reach it; ratings has no lane yet.
  applyL7Step("003-asm-full-link-gray", "02-reviews-v2-up.yaml");
  EXPECT_EQ(path("gray-productpage-v1", grayHeader), "reviews-v2 ratings-v1");
  EXPECT_EQ(path("gray-productpage-v1"), "reviews-v1 ratings-v1");

  // Step 3: ratings gets its lane and ratings-v2; productpage-v2 carries the
  // gray label itself, so its calls are gray without any header, hop after hop.
  applyL7Step("003-asm-full-link-gray", "03-ratings-lane.yaml");
  EXPECT_EQ(path("gray-productpage-v2"), "reviews-v2 ratings-v2");
  EXPECT_EQ(path("gray-productpage-v1", grayHeader), "reviews-v2 ratings-v2");
  EXPECT_EQ(path("gray-productpage-v1"), "reviews-v1 ratings-v1");
}

} // namespace
} // namespace veer::test
