#pragma once

// veer-agent's /healthz, /readyz and /metrics: what each answers, read at request time on
// the status server's thread from the pinned maps, ConnectionCounters, veer-proxy's stats
// socket and (when one runs) the Kubernetes source. The family writers are pure so unit
// tests render them without root; AgentStatus joins them over the live sources.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/metrics.h"
#include "common/result.h"
#include "common/status_server.h"
#include "datapath/counters.h"
#include "datapath/maps.h"
#include "k8s/informers.h"
#include "proxy/time_source.h"

namespace veer {

/** Entries of one pinned map against its max_entries. */
struct MapUsage {
  std::string name;
  uint64_t entries = 0;  // keys a walk found (an array map has all of its slots)
  uint64_t capacity = 0; // max_entries
};

/** Walks each of kMapNames' keys and reads its max_entries. */
Result<std::vector<MapUsage>> readMapUsage(const PinnedMaps& maps);

/**
 * veer_config_applies_total, veer_config_rejections_total, veer_config_generation (the
 * live generation slot, 0 or 1) and veer_config_digest_info{digest} 1 (the live image's
 * FNV-1a in hex: a 64-bit digest does not fit a sample's double).
 */
void writeConfigFamilies(metrics::TextWriter& w, const veer_state& state);

/** veer_map_entries{map} and veer_map_capacity{map}. */
void writeMapFamilies(metrics::TextWriter& w, const std::vector<MapUsage>& maps);

/** Socket acceleration's counters (veer_accel_stats), when --socket-acceleration is on. */
void writeAccelFamilies(metrics::TextWriter& w, const veer_accel_stats& accel);

/**
 * The Kubernetes informers, per served kind {group, kind}: veer_informer_events_total,
 * veer_informer_lists_total (the first LIST and every relist), veer_informer_expired_total
 * (410s, each followed by a relist), veer_informer_errors_total, veer_informer_synced and
 * veer_informer_last_sync_timestamp_seconds (unix time of the last successful LIST).
 */
void writeInformerFamilies(metrics::TextWriter& w, const std::vector<k8s::KindStatus>& kinds);

/** veer_config_rejected_objects: objects the last build left out as invalid. */
void writeRejectedObjectsFamily(metrics::TextWriter& w, uint64_t rejected);

/**
 * Why the agent is not ready, or "" when it is: the initial config is applied (once the
 * maps ran the config the agent handed them, appliedBefore; until then wanted, nullopt
 * before the first apply, must be the live one), and the proxy, when configured
 * (proxyReady not nullopt), serves the live route table. A later apply does not make
 * the agent unready: the last good config serves meanwhile.
 */
std::string notReadyReason(bool appliedBefore, std::optional<uint64_t> wanted,
                           const veer_state& live, std::optional<bool> proxyReady);

/**
 * The kernel path's totals (path="kernel" samples of veer_tcp_connections_opened_total and
 * veer_connections_refused_total) read back from a /metrics page: what `veerctl status`
 * shows beside the pinned per-generation counters. An error names the line that does not
 * parse.
 */
Result<std::map<ConnectionLabels, ConnectionTotals>> parseKernelTotals(const std::string& page);

/** GET http://<hostPort>/metrics (the agent's --metrics-listen); an error says why not. */
Result<std::string> fetchAgentMetrics(const std::string& hostPort,
                                      std::chrono::milliseconds timeout);

/** The agent loop's liveness: the loop beats every round; stale past staleMs = dead. */
class Heartbeat {
public:
  Heartbeat(proxy::TimeSource& clock, uint64_t staleMs) : clock_(clock), staleMs_(staleMs) {
    beat();
  }
  void beat() { last_.store(clock_.nowMs(), std::memory_order_relaxed); }
  /** ms since the last beat. */
  uint64_t sinceMs() const;
  bool alive() const { return sinceMs() <= staleMs_; }
  uint64_t staleMs() const { return staleMs_; }

private:
  proxy::TimeSource& clock_;
  const uint64_t staleMs_;
  std::atomic<uint64_t> last_{0};
};

/** Where AgentStatus reads; every function is called on the status server's thread. */
struct AgentStatusSources {
  const PinnedMaps* maps = nullptr;
  const ConnectionCounters* counters = nullptr;
  const Heartbeat* heartbeat = nullptr;
  /** The digest of the image last handed to the maps; nullopt before the first apply. */
  std::function<std::optional<uint64_t>()> wantedDigest;
  /** veer-proxy's stats socket; "" when no proxy is configured. */
  std::string proxyStatsSocket;
  bool socketAcceleration = false;
  /** The Kubernetes source's informers; null without one. */
  std::function<std::vector<k8s::KindStatus>()> informers;
  /** Objects the cluster source rejected; null until a source reports them. */
  std::function<uint64_t()> rejectedObjects;
};

class AgentStatus {
public:
  explicit AgentStatus(AgentStatusSources sources) : src_(std::move(sources)) {}

  StatusServer::Response healthz() const;
  StatusServer::Response readyz() const;
  StatusServer::Response metrics() const;
  /** /healthz, /readyz and /metrics for StatusServer::start; this must outlive the server. */
  std::map<std::string, StatusServer::Handler> routes() const;

private:
  AgentStatusSources src_;
  mutable std::atomic<bool> applied_{false}; // the initial config was seen live
};

} // namespace veer
