// veer-agent's /healthz, /readyz and /metrics without root: the families the agent adds to
// the kernel's and the proxy's (config, maps, socket acceleration, informers), their
// labels, promtool on the whole page, readiness around the first apply, and the heartbeat.

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "promtool.h"
#include "proxy/time_source.h"
#include "reconcile/agent_metrics.h"
#include "reconcile/proxy_metrics.h"

namespace veer {
namespace {

bool has(const std::string& text, const std::string& line) {
  return text.find(line) != std::string::npos;
}

k8s::KindStatus served(const std::string& group, const std::string& kind, uint64_t events,
                       int64_t lastSyncNs) {
  k8s::KindStatus s;
  s.kind = kind;
  s.type = k8s::ResourceType{group, "v1", "", kind, true};
  s.counts.events = events;
  s.counts.lists = 2;
  s.counts.expired = 1;
  s.counts.errors = 3;
  s.counts.synced = true;
  s.counts.lastSyncNs = lastSyncNs;
  return s;
}

/** The page the agent serves with every source present. */
std::string fullPage() {
  std::map<ConnectionLabels, ConnectionTotals> kernel;
  kernel[ConnectionLabels{"default", "reviews", "9080", "v1"}] = {.opened = 80, .refused = 0};
  kernel[ConnectionLabels{"default", "reviews", "9080", "v2"}] = {.opened = 20, .refused = 1};
  veer_state st{};
  st.gen = 1;
  st.rejected = 2;
  st.applied = 7;
  st.digest = 0x00ab0000cd0000efULL;
  veer_accel_stats accel{.sockets = 4, .redirected = 5, .redirected_bytes = 600, .tcp = 7};
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  k8s::KindStatus missing;
  missing.kind = "HTTPProxy"; // not served: no samples
  metrics::TextWriter w;
  writeConnectionFamilies(w, kernel, nullptr);
  writeRequestFamilies(w, nullptr);
  writeConfigFamilies(w, st);
  writeMapFamilies(w, {{"veer_svc", 3, 1024}, {"veer_state", 1, 1}});
  writeAccelFamilies(w, accel);
  writeInformerFamilies(w, {served("networking.istio.io", "Gateway", 11, now),
                            served("gateway.networking.k8s.io", "Gateway", 12, 0), missing});
  writeRejectedObjectsFamily(w, 5);
  return w.render();
}

TEST(AgentMetricsText, EveryFamilyWithItsLabels) {
  const std::string text = fullPage();
  EXPECT_TRUE(has(text, "veer_tcp_connections_opened_total{destination_service_namespace="
                        "\"default\",destination_service_name=\"reviews\",destination_port="
                        "\"9080\",destination_version=\"v2\",path=\"kernel\"} 20\n"))
      << text;
  EXPECT_TRUE(has(text, "veer_connections_refused_total{destination_service_namespace="
                        "\"default\",destination_service_name=\"reviews\",destination_port="
                        "\"9080\",destination_version=\"v2\",path=\"kernel\"} 1\n"))
      << text;
  EXPECT_TRUE(has(text, "# TYPE veer_config_applies_total counter\nveer_config_applies_total 7\n"))
      << text;
  EXPECT_TRUE(has(text, "veer_config_rejections_total 2\n")) << text;
  EXPECT_TRUE(has(text, "# TYPE veer_config_generation gauge\nveer_config_generation 1\n")) << text;
  EXPECT_TRUE(has(text, "veer_config_digest_info{digest=\"00ab0000cd0000ef\"} 1\n")) << text;
  EXPECT_TRUE(has(text, "veer_map_entries{map=\"veer_svc\"} 3\n")) << text;
  EXPECT_TRUE(has(text, "veer_map_capacity{map=\"veer_svc\"} 1024\n")) << text;
  EXPECT_TRUE(has(text, "veer_map_capacity{map=\"veer_state\"} 1\n")) << text;
  EXPECT_TRUE(has(text, "veer_accel_redirected_bytes_total 600\n")) << text;
  EXPECT_TRUE(has(text, "veer_accel_tcp_total 7\n")) << text;
  // Two kinds of one name stay apart by group; one never listed has no timestamp.
  EXPECT_TRUE(has(text, "veer_informer_events_total{group=\"networking.istio.io\","
                        "kind=\"Gateway\"} 11\n"))
      << text;
  EXPECT_TRUE(has(text, "veer_informer_events_total{group=\"gateway.networking.k8s.io\","
                        "kind=\"Gateway\"} 12\n"))
      << text;
  EXPECT_TRUE(has(text, "veer_informer_lists_total{group=\"networking.istio.io\","
                        "kind=\"Gateway\"} 2\n"))
      << text;
  EXPECT_TRUE(has(text, "veer_informer_expired_total{group=\"networking.istio.io\","
                        "kind=\"Gateway\"} 1\n"))
      << text;
  EXPECT_TRUE(has(text, "veer_informer_errors_total{group=\"networking.istio.io\","
                        "kind=\"Gateway\"} 3\n"))
      << text;
  EXPECT_TRUE(has(text, "veer_informer_last_sync_timestamp_seconds{group=\"networking.istio.io\""))
      << text;
  EXPECT_FALSE(has(text, "veer_informer_last_sync_timestamp_seconds{group=\"gateway.networking"))
      << text;
  EXPECT_FALSE(has(text, "HTTPProxy")) << text;
  EXPECT_TRUE(has(text, "veer_config_rejected_objects 5\n")) << text;
}

TEST(AgentMetricsText, LastSyncIsUnixTime) {
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  metrics::TextWriter w;
  writeInformerFamilies(w, {served("", "Service", 1, now - 10'000'000'000)}); // 10 s ago
  const std::string text = w.render();
  const std::string prefix =
      "veer_informer_last_sync_timestamp_seconds{group=\"\",kind=\"Service\"} ";
  const size_t at = text.find(prefix);
  ASSERT_NE(at, std::string::npos) << text;
  const double got = std::stod(text.substr(at + prefix.size()));
  const double want =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count() -
      10;
  EXPECT_NEAR(got, want, 2.0) << text;
}

TEST(AgentMetricsText, PassesPromtoolWithOnlyTheIstioUnitLint) {
  // A duration sample, so that the one accepted lint is there to be checked exactly.
  proxy::ProxyStats ps;
  proxy::DurationCounts d;
  d.buckets[0] = 1;
  d.sumUs = 300;
  ps.durations[proxy::DurationLabels{"default", "reviews", "v1", 200}] = d;
  ps.connections[ServiceLabels{"default", "reviews", "9080", "v1"}] = 2;
  metrics::TextWriter w;
  writeConnectionFamilies(w, {}, &ps);
  writeRequestFamilies(w, &ps);
  const std::string withProxy = w.render();
  const std::string page = fullPage();
  std::optional<std::string> lint = promtool::check(page);
  if (!lint) {
    GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
  }
  EXPECT_EQ(*lint, "") << page;
  EXPECT_EQ(*promtool::check(withProxy), promtool::kIstioUnitLint) << withProxy;
}

TEST(AgentMetricsText, KernelTotalsReadBackFromThePage) {
  std::map<ConnectionLabels, ConnectionTotals> kernel;
  kernel[ConnectionLabels{"default", "reviews", "9080", "v1"}] = {.opened = 80, .refused = 3};
  kernel[ConnectionLabels{"team \"a\"", "odd\\name", "53", "unknown"}] = {.opened = 9,
                                                                          .refused = 0};
  proxy::ProxyStats ps; // l7 samples are not the kernel's: left out
  ps.connections[ServiceLabels{"default", "reviews", "9080", "v1"}] = 1000;
  metrics::TextWriter w;
  writeConnectionFamilies(w, kernel, &ps);
  writeRequestFamilies(w, &ps);
  writeConfigFamilies(w, veer_state{});
  Result<std::map<ConnectionLabels, ConnectionTotals>> got = parseKernelTotals(w.render());
  ASSERT_TRUE(got) << got.error().message;
  ASSERT_EQ(got->size(), 2U) << w.render();
  const ConnectionTotals& reviews = got->at(ConnectionLabels{"default", "reviews", "9080", "v1"});
  EXPECT_EQ(reviews.opened, 80U);
  EXPECT_EQ(reviews.refused, 3U);
  EXPECT_EQ(got->at(ConnectionLabels{"team \"a\"", "odd\\name", "53", "unknown"}).opened, 9U);

  Result<std::map<ConnectionLabels, ConnectionTotals>> bad = parseKernelTotals(
      "# TYPE x counter\nx 1\nveer_tcp_connections_opened_total{path=\"kernel} 1\n");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message,
            "/metrics line 3: not a sample: veer_tcp_connections_opened_total{path=\"kernel} 1");
}

TEST(AgentReadiness, FollowsTheFirstApplyThenStaysReady) {
  veer_state fresh{};
  EXPECT_EQ(notReadyReason(false, std::nullopt, fresh, std::nullopt),
            "the initial config is not applied yet");
  veer_state rejected{};
  rejected.rejected = 1;
  EXPECT_EQ(notReadyReason(false, std::nullopt, rejected, std::nullopt),
            "the initial config was rejected; see the agent's log");
  // Handed to the maps, not live yet (or failed to apply).
  EXPECT_EQ(notReadyReason(false, 0x2a, fresh, std::nullopt),
            "the maps run config 0000000000000000, the agent applies 000000000000002a");
  veer_state live{};
  live.applied = 1;
  live.digest = 0x2a;
  EXPECT_EQ(notReadyReason(false, 0x2a, live, std::nullopt), "");
  EXPECT_EQ(notReadyReason(false, 0x2a, live, true), "");
  EXPECT_EQ(notReadyReason(false, 0x2a, live, false),
            "veer-proxy is not serving the live route table");
  // Once applied, a newer config on its way keeps the agent ready: the last good serves.
  EXPECT_EQ(notReadyReason(true, 0x2b, live, std::nullopt), "");
  EXPECT_EQ(notReadyReason(true, 0x2b, live, false),
            "veer-proxy is not serving the live route table");
}

TEST(AgentHealth, FailsWhenTheLoopStopsBeating) {
  proxy::SimulatedTimeSource clock;
  Heartbeat beat(clock, 5000);
  AgentStatusSources src;
  src.heartbeat = &beat;
  AgentStatus status(std::move(src));
  EXPECT_EQ(status.healthz().status, 200U);
  ASSERT_TRUE(clock.advance(5000));
  EXPECT_EQ(status.healthz().status, 200U) << "at the bound, still alive";
  ASSERT_TRUE(clock.advance(1));
  StatusServer::Response r = status.healthz();
  EXPECT_EQ(r.status, 503U);
  EXPECT_EQ(r.body, "the agent's loop has not run for 5001 ms\n");
  beat.beat();
  EXPECT_EQ(status.healthz().status, 200U);
}

} // namespace
} // namespace veer
