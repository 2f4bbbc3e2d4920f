#pragma once

// The agent's /metrics families that join the kernel's counters and veer-proxy's: read
// at scrape time, the proxy's over its stats socket (ProxySupervisor::statsSocket(),
// GET /stats, JSON of proxy::ProxyStats), the kernel's from ConnectionCounters::read().
// Here, above both datapath and proxy, because one family holds both.

#include <chrono>
#include <map>
#include <string>

#include "common/metrics.h"
#include "common/result.h"
#include "datapath/counters.h"
#include "proxy/stats.h"

namespace veer {

/**
 * The body of a 200 answer to GET url (over unixSocket when it is not empty), at most
 * 64 MiB, within timeout. An error's message is curl's, or "HTTP <status>: <body>";
 * callers prefix what they asked. Blocking, and safe on any thread once
 * curl_global_init has run.
 */
Result<std::string> httpGet(const std::string& url, const std::string& unixSocket,
                            std::chrono::milliseconds timeout);

/**
 * veer-proxy's counts, from GET /stats on its unix socket; an error (no proxy, a proxy
 * that did not answer within timeout, an answer that does not decode) says which.
 * Blocking: call it from the status server's thread, not the agent's loop.
 */
Result<proxy::ProxyStats>
fetchProxyStats(const std::string& socketPath,
                std::chrono::milliseconds timeout = std::chrono::seconds(2));

/**
 * veer_tcp_connections_opened_total{destination_service_namespace,
 * destination_service_name, destination_port, destination_version, path}: the kernel's
 * totals as path="kernel", the proxy's upstream connections as path="l7"; and
 * veer_connections_refused_total (connects to a version without a ready backend, the
 * kernel's) with the same labels. proxy null: no proxy, or it did not answer; the
 * families are declared all the same.
 */
void writeConnectionFamilies(metrics::TextWriter& w,
                             const std::map<ConnectionLabels, ConnectionTotals>& kernel,
                             const proxy::ProxyStats* proxy);

/**
 * veer_requests_total{destination_service_namespace, destination_service_name,
 * destination_version, response_code, route} and veer_request_duration_milliseconds
 * (Istio's buckets; the same labels but route) from the proxy; declared without
 * samples when proxy is null.
 */
void writeRequestFamilies(metrics::TextWriter& w, const proxy::ProxyStats* proxy);

} // namespace veer
