#include "reconcile/agent_metrics.h"

#include <bpf/bpf.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <vector>

#include "reconcile/proxy_metrics.h"

namespace veer {

namespace {

std::string hex64(uint64_t v) {
  char buf[17];
  snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

/** Steady-clock nanoseconds (the reflectors' clock) as unix seconds. */
double unixSeconds(int64_t steadyNs) {
  using namespace std::chrono;
  const auto age = steady_clock::now().time_since_epoch() - nanoseconds(steadyNs);
  return duration<double>(system_clock::now().time_since_epoch() - age).count();
}

StatusServer::Response text(unsigned status, std::string body) {
  StatusServer::Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

} // namespace

Result<std::vector<MapUsage>> readMapUsage(const PinnedMaps& maps) {
  std::vector<MapUsage> out;
  for (const char* name : kMapNames) {
    const int fd = maps.fd(name);
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) {
      return osError(errno, std::string("map info of ") + name);
    }
    // A hash map whose key the walk stands on is deleted (an apply under way) restarts the
    // walk from its first key: the count is then approximate, and capped at max_entries
    // so that the walk ends.
    std::vector<uint8_t> prev(info.key_size), next(info.key_size);
    uint64_t entries = 0;
    const void* at = nullptr;
    while (entries < info.max_entries && bpf_map_get_next_key(fd, at, next.data()) == 0) {
      ++entries;
      prev.swap(next);
      at = prev.data();
    }
    out.push_back({name, entries, info.max_entries});
  }
  return out;
}

void writeConfigFamilies(metrics::TextWriter& w, const veer_state& state) {
  w.family("veer_config_applies_total", "Configs applied to the maps since they were created.",
           metrics::Type::kCounter);
  w.sample("veer_config_applies_total", {}, static_cast<double>(state.applied));
  w.family("veer_config_rejections_total",
           "Configs rejected (invalid, or failed to apply) since the maps were created; the "
           "last good one kept serving.",
           metrics::Type::kCounter);
  w.sample("veer_config_rejections_total", {}, state.rejected);
  w.family("veer_config_generation", "The live generation slot of the maps (0 or 1).",
           metrics::Type::kGauge);
  w.sample("veer_config_generation", {}, state.gen);
  w.family("veer_config_digest_info", "The live map image's FNV-1a digest, as a label.",
           metrics::Type::kGauge);
  w.sample("veer_config_digest_info", {{"digest", hex64(state.digest)}}, 1);
}

void writeMapFamilies(metrics::TextWriter& w, const std::vector<MapUsage>& maps) {
  w.family("veer_map_entries", "Entries in a pinned map (both generations).",
           metrics::Type::kGauge);
  w.family("veer_map_capacity", "max_entries of a pinned map.", metrics::Type::kGauge);
  for (const MapUsage& m : maps) {
    w.sample("veer_map_entries", {{"map", m.name}}, static_cast<double>(m.entries));
    w.sample("veer_map_capacity", {{"map", m.name}}, static_cast<double>(m.capacity));
  }
}

void writeAccelFamilies(metrics::TextWriter& w, const veer_accel_stats& accel) {
  const struct {
    const char* name;
    const char* help;
    uint64_t value;
  } families[] = {
      {"veer_accel_sockets_total", "Connection ends added to the socket acceleration map.",
       accel.sockets},
      {"veer_accel_redirected_total", "Messages delivered straight to the peer socket.",
       accel.redirected},
      {"veer_accel_redirected_bytes_total", "Bytes delivered straight to the peer socket.",
       accel.redirected_bytes},
      {"veer_accel_tcp_total", "Messages of accelerated sockets sent through the TCP stack.",
       accel.tcp},
  };
  for (const auto& f : families) {
    w.family(f.name, f.help, metrics::Type::kCounter);
    w.sample(f.name, {}, static_cast<double>(f.value));
  }
}

void writeInformerFamilies(metrics::TextWriter& w, const std::vector<k8s::KindStatus>& kinds) {
  w.family("veer_informer_events_total", "Watch events (added, modified, deleted) received.",
           metrics::Type::kCounter);
  w.family("veer_informer_lists_total", "Successful LISTs: the first and every relist.",
           metrics::Type::kCounter);
  w.family("veer_informer_expired_total",
           "410 Gone answers (a compacted resourceVersion), each followed by a relist.",
           metrics::Type::kCounter);
  w.family("veer_informer_errors_total", "Failed requests and ERROR watch events.",
           metrics::Type::kCounter);
  w.family("veer_informer_synced", "1 once the kind was listed.", metrics::Type::kGauge);
  w.family("veer_informer_last_sync_timestamp_seconds", "Unix time of the last successful LIST.",
           metrics::Type::kGauge);
  for (const k8s::KindStatus& k : kinds) {
    // A kind the server does not serve is not watched and has no group to tell it from
    // another of the same name (Istio's Gateway and Gateway API's): no samples.
    if (!k.type) {
      continue;
    }
    const metrics::Labels l = {{"group", k.type->group}, {"kind", k.kind}};
    w.sample("veer_informer_events_total", l, static_cast<double>(k.counts.events));
    w.sample("veer_informer_lists_total", l, static_cast<double>(k.counts.lists));
    w.sample("veer_informer_expired_total", l, static_cast<double>(k.counts.expired));
    w.sample("veer_informer_errors_total", l, static_cast<double>(k.counts.errors));
    w.sample("veer_informer_synced", l, k.counts.synced ? 1 : 0);
    if (k.counts.lastSyncNs != 0) {
      w.sample("veer_informer_last_sync_timestamp_seconds", l, unixSeconds(k.counts.lastSyncNs));
    }
  }
}

void writeRejectedObjectsFamily(metrics::TextWriter& w, uint64_t rejected) {
  w.family("veer_config_rejected_objects",
           "Objects the last config build left out as invalid (the rest applied).",
           metrics::Type::kGauge);
  w.sample("veer_config_rejected_objects", {}, static_cast<double>(rejected));
}

namespace {

/** One sample line: name{k="v",...} value. False when it is not one. */
bool parseSample(std::string_view line, std::string& name,
                 std::map<std::string, std::string>& labels, double& value) {
  labels.clear();
  size_t i = line.find_first_of("{ ");
  if (i == std::string_view::npos || i == 0) {
    return false;
  }
  name = line.substr(0, i);
  if (line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      const size_t eq = line.find("=\"", i);
      if (eq == std::string_view::npos) {
        return false;
      }
      std::string key(line.substr(i, eq - i)), val;
      for (i = eq + 2; i < line.size() && line[i] != '"'; ++i) {
        if (line[i] == '\\' && i + 1 < line.size()) {
          ++i;
          val += line[i] == 'n' ? '\n' : line[i];
        } else {
          val += line[i];
        }
      }
      if (i >= line.size()) {
        return false;
      }
      labels[key] = std::move(val);
      ++i; // the closing quote
      if (i < line.size() && line[i] == ',') {
        ++i;
      }
    }
    if (i >= line.size()) {
      return false;
    }
    ++i; // '}'
  }
  if (i >= line.size() || line[i] != ' ') {
    return false;
  }
  const std::string number(line.substr(i + 1));
  char* end = nullptr;
  value = strtod(number.c_str(), &end);
  return end != number.c_str() && *end == '\0';
}

} // namespace

Result<std::map<ConnectionLabels, ConnectionTotals>> parseKernelTotals(const std::string& page) {
  std::map<ConnectionLabels, ConnectionTotals> out;
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
  size_t lineNo = 0;
  for (size_t at = 0; at < page.size();) {
    size_t end = page.find('\n', at);
    end = end == std::string::npos ? page.size() : end;
    const std::string_view line(page.data() + at, end - at);
    at = end + 1;
    ++lineNo;
    if (line.empty() || line[0] == '#') {
      continue;
    }
    if (!parseSample(line, name, labels, value)) {
      return Error{EINVAL, "/metrics line " + std::to_string(lineNo) +
                               ": not a sample: " + std::string(line.substr(0, 80))};
    }
    const bool opened = name == "veer_tcp_connections_opened_total";
    if ((!opened && name != "veer_connections_refused_total") || labels["path"] != "kernel") {
      continue;
    }
    ConnectionTotals& t = out[ConnectionLabels{
        labels["destination_service_namespace"], labels["destination_service_name"],
        labels["destination_port"], labels["destination_version"]}];
    (opened ? t.opened : t.refused) = static_cast<uint64_t>(value);
  }
  return out;
}

Result<std::string> fetchAgentMetrics(const std::string& hostPort,
                                      std::chrono::milliseconds timeout) {
  const std::string url = "http://" + hostPort + "/metrics";
  Result<std::string> body = httpGet(url, "", timeout);
  if (!body) {
    return Error{body.error().code, url + ": " + body.error().message};
  }
  return body;
}

std::string notReadyReason(bool appliedBefore, std::optional<uint64_t> wanted,
                           const veer_state& live, std::optional<bool> proxyReady) {
  if (!appliedBefore && !wanted) {
    return live.rejected != 0 ? "the initial config was rejected; see the agent's log"
                              : "the initial config is not applied yet";
  }
  if (!appliedBefore && (live.applied == 0 || live.digest != *wanted)) {
    return "the maps run config " + hex64(live.digest) + ", the agent applies " + hex64(*wanted);
  }
  if (proxyReady && !*proxyReady) {
    return "veer-proxy is not serving the live route table";
  }
  return "";
}

uint64_t Heartbeat::sinceMs() const {
  const uint64_t now = clock_.nowMs();
  const uint64_t last = last_.load(std::memory_order_relaxed);
  return now > last ? now - last : 0;
}

StatusServer::Response AgentStatus::healthz() const {
  const uint64_t since = src_.heartbeat->sinceMs();
  if (since > src_.heartbeat->staleMs()) {
    return text(503, "the agent's loop has not run for " + std::to_string(since) + " ms\n");
  }
  return text(200, "ok\n");
}

StatusServer::Response AgentStatus::readyz() const {
  Result<veer_state> st = src_.maps->state();
  if (!st) {
    return text(503, "veer_state: " + st.error().message + "\n");
  }
  std::optional<bool> proxyReady;
  if (!src_.proxyStatsSocket.empty()) {
    Result<veer_proxy> px = src_.maps->proxy();
    proxyReady = px && px->ready != 0;
  }
  const std::optional<uint64_t> wanted = src_.wantedDigest();
  if (notReadyReason(false, wanted, *st, std::nullopt).empty()) {
    applied_.store(true, std::memory_order_relaxed);
  }
  std::string reason =
      notReadyReason(applied_.load(std::memory_order_relaxed), wanted, *st, proxyReady);
  return reason.empty() ? text(200, "ready\n") : text(503, reason + "\n");
}

StatusServer::Response AgentStatus::metrics() const {
  Result<veer_state> st = src_.maps->state();
  if (!st) {
    return text(500, "veer_state: " + st.error().message + "\n");
  }
  Result<std::map<ConnectionLabels, ConnectionTotals>> kernel = src_.counters->read();
  if (!kernel) {
    return text(500, "connection counters: " + kernel.error().message + "\n");
  }
  Result<std::vector<MapUsage>> usage = readMapUsage(*src_.maps);
  if (!usage) {
    return text(500, usage.error().message + "\n");
  }
  std::optional<proxy::ProxyStats> proxy;
  if (!src_.proxyStatsSocket.empty()) {
    // A proxy restarting answers nothing for a moment: its families stay declared, its
    // samples are left out of this scrape and come back (monotonic) on the next.
    if (Result<proxy::ProxyStats> ps = fetchProxyStats(src_.proxyStatsSocket)) {
      proxy = std::move(*ps);
    } else {
      spdlog::warn("/metrics without veer-proxy's numbers: {}", ps.error().message);
    }
  }
  metrics::TextWriter w;
  writeConnectionFamilies(w, *kernel, proxy ? &*proxy : nullptr);
  writeRequestFamilies(w, proxy ? &*proxy : nullptr);
  writeConfigFamilies(w, *st);
  writeMapFamilies(w, *usage);
  if (src_.socketAcceleration) {
    Result<LiveState> live = src_.maps->live();
    if (!live) {
      return text(500, live.error().message + "\n");
    }
    writeAccelFamilies(w, live->accel);
  }
  if (src_.informers) {
    writeInformerFamilies(w, src_.informers());
  }
  if (src_.rejectedObjects) {
    writeRejectedObjectsFamily(w, src_.rejectedObjects());
  }
  StatusServer::Response r = text(200, w.render());
  r.contentType = metrics::kContentType;
  return r;
}

std::map<std::string, StatusServer::Handler> AgentStatus::routes() const {
  return {{"/healthz", [this] { return healthz(); }},
          {"/readyz", [this] { return readyz(); }},
          {"/metrics", [this] { return metrics(); }}};
}

} // namespace veer
