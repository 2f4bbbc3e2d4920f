// veer-agent's /healthz, /readyz and /metrics on a real node: readiness around the first
// apply, a real Prometheus server (Debian's prometheus) scraping the agent and answering a
// PromQL query whose per-version split is exactly the kernel's weights, counters that do
// not go down across an apply, and promtool on the live page.

#include "kernel_path_fixture.h"
#include "metrics_client.h"

#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include "../unit/promtool.h"

namespace veer::test {
namespace {

/** veer_tcp_connections_opened_total of reviews:9080 on the kernel path, per version (not 0). */
std::map<std::string, uint64_t> openedPerVersion(const std::string& metricsText) {
  std::map<std::string, uint64_t> out;
  const std::string prefix = "veer_tcp_connections_opened_total{destination_service_namespace="
                             "\"default\",destination_service_name=\"reviews\","
                             "destination_port=\"9080\",destination_version=\"";
  std::istringstream in(metricsText);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) != 0) {
      continue;
    }
    const size_t quote = line.find('"', prefix.size());
    const uint64_t n = std::stoull(line.substr(line.rfind(' ') + 1));
    // Versions at weight 0 may or may not have a kernel entry: compare what counted.
    if (line.find("path=\"kernel\"}", quote) != std::string::npos && n != 0) {
      out[line.substr(prefix.size(), quote - prefix.size())] = n;
    }
  }
  return out;
}

/** Debian's prometheus as a child, scraping one target every second; killed at the end. */
class PrometheusServer {
public:
  PrometheusServer(const fs::path& dir, uint16_t target) : dir_(dir), port_(freePort()) {
    fs::create_directories(dir_ / "data");
    std::ofstream(dir_ / "prometheus.yml")
        << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
           "scrape_configs:\n- job_name: veer-agent\n  static_configs:\n"
           "  - targets: ['127.0.0.1:"
        << target << "']\n";
    const std::string config = "--config.file=" + (dir_ / "prometheus.yml").string();
    const std::string data = "--storage.tsdb.path=" + (dir_ / "data").string();
    const std::string listen = "--web.listen-address=127.0.0.1:" + std::to_string(port_);
    const std::string log = (dir_ / "prometheus.log").string();
    pid_t pid = fork();
    if (pid == 0) {
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      execlp("prometheus", "prometheus", config.c_str(), data.c_str(), listen.c_str(),
             static_cast<char*>(nullptr));
      _exit(127);
    }
    process_ = Process(pid, -1); // SIGKILLed and reaped whatever way the test ends
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string log() const { return readText(dir_ / "prometheus.log"); }

  /** An instant PromQL query's vector as label value of `by` -> sample value. */
  std::map<std::string, double> query(const std::string& promql, const std::string& by) {
    std::map<std::string, double> out;
    std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> c(curl_easy_init(), curl_easy_cleanup);
    char* q = curl_easy_escape(c.get(), promql.c_str(), static_cast<int>(promql.size()));
    HttpAnswer a = httpGet(url() + "/api/v1/query?query=" + q);
    curl_free(q);
    if (a.status != 200) {
      return out;
    }
    const nlohmann::json j = nlohmann::json::parse(a.body, nullptr, false);
    if (j.is_discarded() || j.value("status", "") != "success") {
      return out;
    }
    for (const auto& r : j["data"]["result"]) {
      out[r["metric"].value(by, "")] = std::stod(r["value"][1].get<std::string>());
    }
    return out;
  }

private:
  fs::path dir_;
  uint16_t port_;
  Process process_;
};

class MetricsTest : public KernelPathTest {
protected:
  void SetUp() override {
    KernelPathTest::SetUp();
    port_ = freePort();
    ASSERT_NE(port_, 0);
    agent_->setExtraArgs({"--metrics-listen", "127.0.0.1:" + std::to_string(port_)});
  }

  std::string endpoint(const char* path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  /** Waits until veer_state counts n rejected configs. */
  void waitRejected(uint32_t n) {
    const auto deadline = steady_clock::now() + std::chrono::seconds(10);
    while (liveState().rejected < n && steady_clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(5));
    }
    ASSERT_EQ(liveState().rejected, n) << agent_->log();
  }

  uint16_t port_ = 0;
};

TEST_F(MetricsTest, ReadyOnlyOnceTheInitialConfigIsApplied) {
  // The initial config is rejected: alive, serving nothing of it, not ready.
  writeAtomically(configDir_ / "routes.yaml", reviewsSplit(80, 10));
  agent_->start();
  HttpAnswer health =
      getUntil(endpoint("/healthz"), [](const HttpAnswer& a) { return a.status != 0; });
  ASSERT_EQ(health.status, 200) << health.body << agent_->log();
  waitRejected(1);
  HttpAnswer ready = httpGet(endpoint("/readyz"));
  EXPECT_EQ(ready.status, 503);
  EXPECT_EQ(ready.body, "the initial config was rejected; see the agent's log\n");

  applyRoutes(reviewsSplit(80, 20));
  ready = httpGet(endpoint("/readyz"));
  EXPECT_EQ(ready.status, 200) << ready.body;
  // A later rejected config leaves the last good one serving, and the agent ready.
  writeAtomically(configDir_ / "routes.yaml", reviewsSplit(80, 10));
  waitRejected(2);
  EXPECT_EQ(httpGet(endpoint("/readyz")).status, 200);
  EXPECT_EQ(httpGet(endpoint("/healthz")).status, 200);
  EXPECT_EQ(httpGet(endpoint("/nothing")).status, 404);
}

TEST_F(MetricsTest, PrometheusSeesTheKernelSplitAndCountersSurviveAnApply) {
  // `make deps` installs Prometheus; the QEMU suite's initramfs does not carry it.
  if (system("command -v prometheus >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "prometheus (Debian package prometheus) not installed";
  }
  agent_->start();
  applyRoutes(reviewsSplit(80, 20));
  ASSERT_EQ(httpGet(endpoint("/readyz")).status, 200);

  // The round robin over 100 weight slots is exact in every 100 consecutive connections.
  constexpr int kSent = 500;
  std::map<std::string, int> answered = split(kReviews4, kSent);
  ASSERT_EQ(answered, (std::map<std::string, int>{{"v1", 400}, {"v2", 100}}));

  PrometheusServer prom(tmp_ / "prometheus", port_);
  const std::string promql = "sum by (destination_version) "
                             "(veer_tcp_connections_opened_total{destination_service_name="
                             "\"reviews\"})";
  std::map<std::string, double> seen;
  const auto deadline = steady_clock::now() + std::chrono::seconds(60);
  while (steady_clock::now() < deadline) {
    seen = prom.query(promql, "destination_version");
    if (seen["v1"] + seen["v2"] + seen["v3"] == kSent) {
      break;
    }
    std::this_thread::sleep_for(milliseconds(200));
  }
  ASSERT_EQ(seen["v1"] + seen["v2"] + seen["v3"], kSent) << prom.log();
  EXPECT_EQ(seen["v1"], 400);
  EXPECT_EQ(seen["v2"], 100);
  EXPECT_EQ(seen["v3"], 0);

  // A weight change writes the other generation (zeroing its counters) and flips: the
  // totals must carry on from where they were, across two applies so that each generation
  // has been overwritten once.
  const std::map<std::string, uint64_t> before =
      openedPerVersion(httpGet(endpoint("/metrics")).body);
  ASSERT_EQ(before, (std::map<std::string, uint64_t>{{"v1", 400}, {"v2", 100}}));
  applyRoutes(reviewsSplit(50, 50));
  const std::map<std::string, uint64_t> afterApply =
      openedPerVersion(httpGet(endpoint("/metrics")).body);
  EXPECT_EQ(afterApply, before) << "an apply alone neither adds nor loses connections";
  answered = split(kReviews4, 200);
  ASSERT_EQ(answered, (std::map<std::string, int>{{"v1", 100}, {"v2", 100}}));
  HttpAnswer page = httpGet(endpoint("/metrics"));
  ASSERT_EQ(page.status, 200);
  EXPECT_EQ(openedPerVersion(page.body),
            (std::map<std::string, uint64_t>{{"v1", 500}, {"v2", 200}}))
      << page.body;
  // The next apply overwrites the generation that counted the first 500: still there.
  applyRoutes(reviewsSplit(20, 80));
  page = httpGet(endpoint("/metrics"));
  ASSERT_EQ(page.status, 200);
  EXPECT_EQ(openedPerVersion(page.body),
            (std::map<std::string, uint64_t>{{"v1", 500}, {"v2", 200}}))
      << page.body;
  EXPECT_NE(page.body.find("veer_config_applies_total 3\n"), std::string::npos) << page.body;
  EXPECT_NE(page.body.find("veer_map_capacity{map=\"veer_svc\"}"), std::string::npos);

  // veerctl shows both: the pinned generation's counters (nothing since the last apply)
  // and the agent's totals for its life.
  const std::string cmd = (binDir() / "veerctl").string() + " --bpffs " + bpffs_.string() +
                          " status --json --agent 127.0.0.1:" + std::to_string(port_);
  const auto [rc, out] = commandOutput(cmd);
  EXPECT_EQ(rc, 0) << out;
  const nlohmann::json status = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(status.is_discarded()) << out;
  EXPECT_FALSE(status["agent"].contains("error")) << out;
  std::map<std::string, uint64_t> totals, sinceApply;
  for (const auto& svc : status["services"]) {
    if (svc.value("address", "") != std::string(kReviews4) + ":9080") {
      continue;
    }
    for (const auto& v : svc["versions"]) {
      totals[v["subset"]] = v["connects_total"];
      sinceApply[v["subset"]] += v["connects"].get<uint64_t>();
    }
  }
  EXPECT_EQ(totals["v1"], 500U) << out;
  EXPECT_EQ(totals["v2"], 200U) << out;
  EXPECT_EQ(sinceApply["v1"] + sinceApply["v2"] + sinceApply["v3"], 0U) << out;

  std::optional<std::string> lint = promtool::check(page.body);
  ASSERT_TRUE(lint) << "promtool (Debian package prometheus) is needed, as prometheus was";
  EXPECT_EQ(*lint, "") << page.body;
}

} // namespace
} // namespace veer::test
