#include "reconcile/proxy_metrics.h"

#include <curl/curl.h>

#include <memory>
#include <vector>

namespace veer {

namespace {

// An answer is a few lines per label combination; past this the proxy is not answering
// what it should, and the scrape is not the place to take it all in.
constexpr size_t kMaxAnswerBytes = 64 << 20;

size_t collect(char* data, size_t size, size_t n, void* out) {
  auto* body = static_cast<std::string*>(out);
  if (body->size() + size * n > kMaxAnswerBytes) {
    return 0; // curl stops with CURLE_WRITE_ERROR
  }
  body->append(data, size * n);
  return size * n;
}

metrics::Labels connectionLabels(const ServiceLabels& l, const char* path) {
  return {{"destination_service_namespace", l.ns},
          {"destination_service_name", l.name},
          {"destination_port", l.port},
          {"destination_version", l.version},
          {"path", path}};
}

constexpr const char* kOpened = "veer_tcp_connections_opened_total";
constexpr const char* kRefused = "veer_connections_refused_total";
constexpr const char* kRequests = "veer_requests_total";
constexpr const char* kDuration = "veer_request_duration_milliseconds";

} // namespace

Result<std::string> httpGet(const std::string& url, const std::string& unixSocket,
                            std::chrono::milliseconds timeout) {
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> c(curl_easy_init(), curl_easy_cleanup);
  if (!c) {
    return Error{ENOMEM, "curl_easy_init failed"};
  }
  std::string body;
  char err[CURL_ERROR_SIZE] = "";
  if (!unixSocket.empty()) {
    curl_easy_setopt(c.get(), CURLOPT_UNIX_SOCKET_PATH, unixSocket.c_str());
  }
  curl_easy_setopt(c.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(c.get(), CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(c.get(), CURLOPT_NOSIGNAL, 1L); // called from a server thread
  curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(c.get(), CURLOPT_ERRORBUFFER, err);
  if (CURLcode rc = curl_easy_perform(c.get()); rc != CURLE_OK) {
    return Error{EIO, err[0] != '\0' ? std::string(err) : curl_easy_strerror(rc)};
  }
  long status = 0;
  curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &status);
  if (status != 200) {
    return Error{EIO, "HTTP " + std::to_string(status) + ": " + body};
  }
  return body;
}

Result<proxy::ProxyStats> fetchProxyStats(const std::string& socketPath,
                                          std::chrono::milliseconds timeout) {
  Result<std::string> body = httpGet("http://veer-proxy/stats", socketPath, timeout);
  if (!body) {
    return Error{body.error().code, "proxy stats " + socketPath + ": " + body.error().message};
  }
  Result<proxy::ProxyStats> stats = proxy::ProxyStats::fromJson(*body);
  if (!stats) {
    return Error{stats.error().code, socketPath + ": " + stats.error().message};
  }
  return stats;
}

void writeConnectionFamilies(metrics::TextWriter& w,
                             const std::map<ConnectionLabels, ConnectionTotals>& kernel,
                             const proxy::ProxyStats* proxy) {
  w.family(kOpened,
           "Connections opened to a service version: by the kernel's connect hooks "
           "(path=kernel; datagrams for UDP) or by veer-proxy to an endpoint (path=l7).",
           metrics::Type::kCounter);
  w.family(kRefused, "Connects the kernel refused because the chosen version had no ready backend.",
           metrics::Type::kCounter);
  for (const auto& [labels, totals] : kernel) {
    metrics::Labels l = connectionLabels(labels, "kernel");
    w.sample(kOpened, l, static_cast<double>(totals.opened));
    w.sample(kRefused, l, static_cast<double>(totals.refused));
  }
  if (proxy != nullptr) {
    for (const auto& [labels, n] : proxy->connections) {
      w.sample(kOpened, connectionLabels(labels, "l7"), static_cast<double>(n));
    }
  }
}

void writeRequestFamilies(metrics::TextWriter& w, const proxy::ProxyStats* proxy) {
  w.family(kRequests,
           "HTTP requests veer-proxy answered, by destination, response code (0: the client "
           "left before a response) and route; local answers too, to destination unknown "
           "when no service matched.",
           metrics::Type::kCounter);
  w.family(kDuration,
           "veer-proxy's request durations, from the request's first byte to its response's "
           "last, in milliseconds (Istio's buckets).",
           metrics::Type::kHistogram);
  if (proxy == nullptr) {
    return;
  }
  for (const auto& [l, n] : proxy->requests) {
    w.sample(kRequests,
             {{"destination_service_namespace", l.ns},
              {"destination_service_name", l.name},
              {"destination_version", l.version},
              {"response_code", std::to_string(l.code)},
              {"route", l.route}},
             static_cast<double>(n));
  }
  const std::vector<double> bounds(proxy::kDurationBoundsMs.begin(),
                                   proxy::kDurationBoundsMs.end());
  for (const auto& [l, c] : proxy->durations) {
    metrics::Histogram h(bounds, std::vector<uint64_t>(c.buckets.begin(), c.buckets.end()),
                         static_cast<double>(c.sumUs) / 1000);
    w.histogram(kDuration,
                {{"destination_service_namespace", l.ns},
                 {"destination_service_name", l.name},
                 {"destination_version", l.version},
                 {"response_code", std::to_string(l.code)}},
                h);
  }
}

} // namespace veer
