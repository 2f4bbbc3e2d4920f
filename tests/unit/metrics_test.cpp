// The Prometheus text format writer and the status endpoint. promtool (Debian's
// prometheus package) checks the writer's output when it is installed.

#include <curl/curl.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "common/metrics.h"
#include "common/status_server.h"
#include "promtool.h"

namespace veer {
namespace {

using metrics::Histogram;
using metrics::TextWriter;
using metrics::Type;

TEST(MetricsText, FamiliesGroupTheirSamplesWhateverTheOrderAdded) {
  TextWriter w;
  w.family("veer_a_total", "A things.", Type::kCounter);
  w.family("veer_b", "B level.", Type::kGauge);
  w.sample("veer_a_total", {{"x", "1"}}, 1);
  w.sample("veer_b", {}, 2.5);
  w.sample("veer_a_total", {{"x", "2"}}, 3);
  EXPECT_EQ(w.render(), "# HELP veer_a_total A things.\n"
                        "# TYPE veer_a_total counter\n"
                        "veer_a_total{x=\"1\"} 1\n"
                        "veer_a_total{x=\"2\"} 3\n"
                        "# HELP veer_b B level.\n"
                        "# TYPE veer_b gauge\n"
                        "veer_b 2.5\n");
}

TEST(MetricsText, LabelValuesAndHelpAreEscaped) {
  TextWriter w;
  w.family("veer_x", "back\\slash\nnewline \"quoted\"", Type::kGauge);
  w.sample("veer_x", {{"route", "a\"b\\c\nd"}}, 1);
  EXPECT_EQ(w.render(), "# HELP veer_x back\\\\slash\\nnewline \"quoted\"\n"
                        "# TYPE veer_x gauge\n"
                        "veer_x{route=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST(MetricsText, HistogramBucketsAreCumulativeWithInf) {
  Histogram h({1, 5, 10});
  for (double v : {0.5, 1.0, 3.0, 7.0, 100.0}) {
    h.observe(v);
  }
  Histogram other({1, 5, 10});
  other.observe(2);
  h.merge(other);
  TextWriter w;
  w.family("veer_d_milliseconds", "Durations.", Type::kHistogram);
  w.histogram("veer_d_milliseconds", {{"v", "v1"}}, h);
  EXPECT_EQ(w.render(), "# HELP veer_d_milliseconds Durations.\n"
                        "# TYPE veer_d_milliseconds histogram\n"
                        "veer_d_milliseconds_bucket{v=\"v1\",le=\"1\"} 2\n"
                        "veer_d_milliseconds_bucket{v=\"v1\",le=\"5\"} 4\n"
                        "veer_d_milliseconds_bucket{v=\"v1\",le=\"10\"} 5\n"
                        "veer_d_milliseconds_bucket{v=\"v1\",le=\"+Inf\"} 6\n"
                        "veer_d_milliseconds_sum{v=\"v1\"} 113.5\n"
                        "veer_d_milliseconds_count{v=\"v1\"} 6\n");
}

TEST(MetricsText, PromtoolFindsNothingButIstiosUnit) {
  if (!promtool::check("")) {
    GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
  }
  TextWriter w;
  w.family("veer_tcp_connections_opened_total", "Connections.", Type::kCounter);
  w.sample("veer_tcp_connections_opened_total",
           {{"destination_service_name", "reviews"}, {"destination_version", "v\"2"}}, 7);
  Histogram h({0.5, 1, 2.5});
  h.observe(0.7);
  w.family("veer_request_duration_milliseconds", "Request durations.", Type::kHistogram);
  w.histogram("veer_request_duration_milliseconds", {{"destination_version", "v1"}}, h);
  std::optional<std::string> out = promtool::check(w.render());
  ASSERT_TRUE(out);
  // Anything but Istio's unit, including a parse error, fails.
  EXPECT_EQ(*out, promtool::kIstioUnitLint) << "promtool found problems";
}

size_t collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

/** GET (or another method) through libcurl: status and body. */
std::pair<long, std::string> fetch(uint16_t port, const std::string& path,
                                   const char* method = "GET") {
  CURL* c = curl_easy_init();
  std::string body;
  std::string url = "http://127.0.0.1:" + std::to_string(port) + path;
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
  long status = 0;
  if (curl_easy_perform(c) == CURLE_OK) {
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  }
  curl_easy_cleanup(c);
  return {status, body};
}

TEST(StatusServer, ServesRoutesAndRefusesOthers) {
  int calls = 0;
  auto server = StatusServer::start(
      "127.0.0.1:0", {{"/readyz",
                       [&] {
                         ++calls;
                         return StatusServer::Response{.status = 503, .body = "not synced\n"};
                       }},
                      {"/metrics", [] {
                         return StatusServer::Response{.contentType = metrics::kContentType,
                                                       .body = "veer_up 1\n"};
                       }}});
  ASSERT_TRUE(server) << server.error().message;
  const uint16_t port = (*server)->port();
  ASSERT_NE(port, 0);
  EXPECT_EQ(fetch(port, "/readyz"), std::make_pair(503L, std::string("not synced\n")));
  EXPECT_EQ(fetch(port, "/metrics"), std::make_pair(200L, std::string("veer_up 1\n")));
  EXPECT_EQ(fetch(port, "/nope").first, 404);
  EXPECT_EQ(fetch(port, "/metrics", "POST").first, 405);
  EXPECT_EQ(calls, 1);
}

TEST(StatusServer, RejectsABadAddressWithItsText) {
  auto server = StatusServer::start("localhost:99999", {});
  ASSERT_FALSE(server);
  EXPECT_NE(server.error().message.find("localhost:99999"), std::string::npos);
}

} // namespace
} // namespace veer
