// veer-proxy's metrics on their way to the agent's /metrics: the JSON of GET /stats both
// ways, the stats socket (mode, handover, answers), what the agent's scrape fetches over
// it, and the families that join the kernel's counts and the proxy's, checked by promtool.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "common/status_server.h"
#include "promtool.h"
#include "proxy/engine.h"
#include "proxy/stats.h"
#include "reconcile/proxy_metrics.h"

namespace veer {
namespace {

namespace fs = std::filesystem;
using proxy::DurationCounts;
using proxy::DurationLabels;
using proxy::ProxyStats;
using proxy::RequestLabels;

ProxyStats sample() {
  ProxyStats st;
  st.requests[RequestLabels{"default", "reviews", "v2", 200,
                            "VirtualService default/reviews spec.http[1]"}] = 41;
  st.requests[RequestLabels{"default", "reviews", "v3", 503, "route \"quoted\"\n"}] = 2;
  st.requests[RequestLabels{"unknown", "unknown", "unknown", 400, "unknown"}] = 1;
  DurationCounts d;
  d.buckets[0] = 40;
  d.buckets[5] = 1;
  d.buckets[proxy::kDurationBuckets - 1] = 3; // past an hour: +Inf only
  d.sumUs = 12345678;
  st.durations[DurationLabels{"default", "reviews", "v2", 200}] = d;
  st.connections[ServiceLabels{"default", "reviews", "9080", "v2"}] = 3;
  st.connections[ServiceLabels{"default", "reviews", "9080", "v3"}] = 1;
  return st;
}

void expectSame(const ProxyStats& a, const ProxyStats& b) {
  EXPECT_EQ(a.requests, b.requests);
  EXPECT_EQ(a.connections, b.connections);
  ASSERT_EQ(a.durations.size(), b.durations.size());
  for (const auto& [labels, counts] : a.durations) {
    auto it = b.durations.find(labels);
    ASSERT_NE(it, b.durations.end());
    EXPECT_EQ(counts.buckets, it->second.buckets);
    EXPECT_EQ(counts.sumUs, it->second.sumUs);
  }
}

TEST(ProxyStatsJson, RoundTrips) {
  const ProxyStats st = sample();
  Result<ProxyStats> back = ProxyStats::fromJson(st.toJson());
  ASSERT_TRUE(back) << back.error().message;
  expectSame(st, *back);
  Result<ProxyStats> empty = ProxyStats::fromJson(ProxyStats{}.toJson());
  ASSERT_TRUE(empty) << empty.error().message;
  EXPECT_TRUE(empty->requests.empty() && empty->durations.empty() && empty->connections.empty());
}

TEST(ProxyStatsJson, ErrorsNameWhatIsWrong) {
  const std::string good = sample().toJson();
  auto error = [](const std::string& json) {
    Result<ProxyStats> r = ProxyStats::fromJson(json);
    return r ? std::string("parsed") : r.error().message;
  };
  EXPECT_NE(error("{not json").find("not a JSON object"), std::string::npos);
  auto replaced = [&](const std::string& from, const std::string& to) {
    std::string j = good;
    size_t at = j.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return j.replace(at, from.size(), to);
  };
  // Another proxy's buckets cannot be read as ours.
  EXPECT_NE(error(replaced("[0.5,", "[0.25,")).find("durationBoundsMs"), std::string::npos);
  // (Keys come out sorted: connections, durationBoundsMs, durations, requests.)
  EXPECT_NE(error(replaced("\"code\":200", "\"code\":\"200\"")).find("durations[0].code"),
            std::string::npos);
  EXPECT_NE(error(replaced("\"code\":200", "\"code\":1000")).find("not an HTTP status"),
            std::string::npos);
  EXPECT_NE(error(replaced("\"count\":3", "\"count\":-3")).find("connections[0].count"),
            std::string::npos);
  EXPECT_NE(error(replaced("\"buckets\":[40,", "\"buckets\":[")).find("durations[0].buckets"),
            std::string::npos);
}

/** A directory of its own under /tmp, removed at the end. */
class TempDir {
public:
  TempDir() {
    char tmpl[] = "/tmp/veer-stats-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

private:
  std::string path_;
};

StatusServer::Handler answering(std::string json) {
  return [json] { return StatusServer::Response{.contentType = "application/json", .body = json}; };
}

TEST(ProxyStatsSocket, IsOwnerOnlyAndAnswersTheFetch) {
  TempDir dir;
  const std::string path = dir / "veer-proxy.stats.sock";
  auto server = StatusServer::startUnix(path, {{"/stats", answering(sample().toJson())}});
  ASSERT_TRUE(server) << server.error().message;
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600U);
  EXPECT_EQ(
      std::distance(fs::directory_iterator(fs::path(path).parent_path()), fs::directory_iterator()),
      1)
      << "the name it was bound under is gone";

  Result<ProxyStats> got = fetchProxyStats(path);
  ASSERT_TRUE(got) << got.error().message;
  expectSame(sample(), *got);
  server->reset();
  EXPECT_FALSE(fs::exists(path)) << "removed with its server";
  Result<ProxyStats> none = fetchProxyStats(path);
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find(path), std::string::npos) << none.error().message;
}

TEST(ProxyStatsSocket, ANewProxyTakesTheNameAndTheOldOneLeavesIt) {
  TempDir dir;
  const std::string path = dir / "veer-proxy.stats.sock";
  ProxyStats first, second;
  first.connections[ServiceLabels{"a", "b", "1", "v1"}] = 1;
  second.connections[ServiceLabels{"a", "b", "1", "v1"}] = 2;
  auto old = StatusServer::startUnix(path, {{"/stats", answering(first.toJson())}});
  ASSERT_TRUE(old) << old.error().message;
  auto fresh = StatusServer::startUnix(path, {{"/stats", answering(second.toJson())}});
  ASSERT_TRUE(fresh) << fresh.error().message;
  Result<ProxyStats> got = fetchProxyStats(path);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->connections, second.connections);
  old->reset(); // the old proxy exits: the name is the new one's, and stays
  got = fetchProxyStats(path);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->connections, second.connections);
}

TEST(ProxyStatsSocket, AnAnswerThatIsNotStatsIsAnError) {
  TempDir dir;
  const std::string path = dir / "s.sock";
  auto server = StatusServer::startUnix(path, {{"/stats", answering("{\"requests\": 1}")}});
  ASSERT_TRUE(server) << server.error().message;
  Result<ProxyStats> got = fetchProxyStats(path);
  ASSERT_FALSE(got);
  EXPECT_NE(got.error().message.find("durationBoundsMs"), std::string::npos) << got.error().message;
}

// veer-proxy's wiring: the engine's counts, served on the socket, fetched by the agent.
TEST(ProxyStatsSocket, ServesWhatTheEngineCounted) {
  proxy::EngineOptions o;
  o.listen = {*proxy::ListenAddr::parse("127.0.0.1:0")};
  o.io = proxy::IoMode::kEpoll;
  Result<std::unique_ptr<proxy::Engine>> e = proxy::Engine::create(o);
  ASSERT_TRUE(e) << e.error().message;
  proxy::Engine* engine = e->get();
  engine->start();
  TempDir dir;
  const std::string path = dir / "veer-proxy.stats.sock";
  auto server = StatusServer::startUnix(path, {{"/stats", [engine] {
                                                  return StatusServer::Response{
                                                      .contentType = "application/json",
                                                      .body = engine->proxyStats().toJson()};
                                                }}});
  ASSERT_TRUE(server) << server.error().message;

  // No table: 503, to no destination.
  proxy::ListenAddr bound = engine->boundAddrs()[0];
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&bound.addr), bound.len), 0);
  const std::string req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
  char buf[512];
  ASSERT_GT(::recv(fd, buf, sizeof(buf), 0), 0);
  ::close(fd);

  const RequestLabels unknown{"unknown", "unknown", "unknown", 503, "unknown"};
  Result<ProxyStats> got = fetchProxyStats(path);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->requests[unknown], 1U) << got->toJson();
  engine->stop(0);
}

TEST(ProxyMetricsText, KernelAndProxyConnectionsShareAFamilyAndPassPromtool) {
  std::map<ConnectionLabels, ConnectionTotals> kernel;
  kernel[ConnectionLabels{"default", "reviews", "9080", "v2"}] = {.opened = 10, .refused = 0};
  kernel[ConnectionLabels{"default", "ratings", "9080", "unknown"}] = {.opened = 4, .refused = 2};
  const ProxyStats proxyStats = sample();
  metrics::TextWriter w;
  writeConnectionFamilies(w, kernel, &proxyStats);
  writeRequestFamilies(w, &proxyStats);
  const std::string text = w.render();

  const std::string opened = "veer_tcp_connections_opened_total{destination_service_namespace="
                             "\"default\",destination_service_name=\"reviews\",destination_port="
                             "\"9080\",destination_version=\"v2\",path=";
  EXPECT_NE(text.find(opened + "\"kernel\"} 10\n"), std::string::npos) << text;
  EXPECT_NE(text.find(opened + "\"l7\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("veer_connections_refused_total{destination_service_namespace=\"default\","
                      "destination_service_name=\"ratings\",destination_port=\"9080\","
                      "destination_version=\"unknown\",path=\"kernel\"} 2\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("veer_requests_total{destination_service_namespace=\"default\","
                      "destination_service_name=\"reviews\",destination_version=\"v2\","
                      "response_code=\"200\",route=\"VirtualService default/reviews "
                      "spec.http[1]\"} 41\n"),
            std::string::npos)
      << text;
  // Cumulative buckets: 40 at 0.5 ms, 41 from 50 ms on, 44 with +Inf; the sum in ms.
  const std::string h = "veer_request_duration_milliseconds_bucket{destination_service_namespace="
                        "\"default\",destination_service_name=\"reviews\",destination_version="
                        "\"v2\",response_code=\"200\",le=";
  EXPECT_NE(text.find(h + "\"0.5\"} 40\n"), std::string::npos) << text;
  EXPECT_NE(text.find(h + "\"25\"} 40\n"), std::string::npos) << text;
  EXPECT_NE(text.find(h + "\"50\"} 41\n"), std::string::npos) << text;
  EXPECT_NE(text.find(h + "\"3600000\"} 41\n"), std::string::npos) << text;
  EXPECT_NE(text.find(h + "\"+Inf\"} 44\n"), std::string::npos) << text;
  EXPECT_NE(text.find("_sum{destination_service_namespace=\"default\",destination_service_name="
                      "\"reviews\",destination_version=\"v2\",response_code=\"200\"} "
                      "12345.678\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("# TYPE veer_tcp_connections_opened_total"),
            text.rfind("# TYPE veer_tcp_connections_opened_total"))
      << "one family";

  std::optional<std::string> lint = promtool::check(text);
  if (!lint) {
    GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
  }
  EXPECT_EQ(*lint, promtool::kIstioUnitLint) << text;
}

TEST(ProxyMetricsText, WithoutAProxyTheFamiliesAreDeclaredAndKernelSamplesWritten) {
  std::map<ConnectionLabels, ConnectionTotals> kernel;
  kernel[ConnectionLabels{"default", "reviews", "9080", "v1"}] = {.opened = 1, .refused = 0};
  metrics::TextWriter w;
  writeConnectionFamilies(w, kernel, nullptr);
  writeRequestFamilies(w, nullptr);
  const std::string text = w.render();
  EXPECT_NE(text.find("# TYPE veer_requests_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE veer_request_duration_milliseconds histogram\n"), std::string::npos);
  EXPECT_EQ(text.find("path=\"l7\""), std::string::npos);
  EXPECT_NE(text.find("path=\"kernel\"} 1\n"), std::string::npos) << text;
  std::optional<std::string> lint = promtool::check(text);
  if (lint) {
    EXPECT_EQ(*lint, "") << "(the unit lint needs a duration sample) " << text;
  }
}

} // namespace
} // namespace veer
