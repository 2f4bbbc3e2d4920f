#pragma once

// Per-version connection counters for the agent's life. The kernel counts per
// version id and generation (veer_stats), and an apply renumbers versions and
// zeroes the generation it writes; Prometheus wants counters that only go up.
// So before each apply the agent folds the generation about to be overwritten
// (final since the previous flip) into totals keyed by what the numbers mean:
// namespace, service, port and version.

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "common/result.h"
#include "common/service_labels.h"
#include "datapath/maps.h"

namespace veer {

/** The labels veer-proxy's upstream connections carry too (common/service_labels.h). */
using ConnectionLabels = ServiceLabels;

struct ConnectionTotals {
  uint64_t opened = 0;  // connections (TCP) or datagrams (UDP) the kernel sent to the version
  uint64_t refused = 0; // connects refused: the version had no ready backend
};

/** Labels of a veer_version entry ("namespace/name:port" and its subset). */
ConnectionLabels connectionLabels(const veer_version& v);

class ConnectionCounters {
public:
  explicit ConnectionCounters(const PinnedMaps& maps) : maps_(maps) {}

  /**
   * Call right before PinnedMaps::apply: adds the inactive generation's counts
   * to the totals and leaves that generation out of read() until it is live
   * again, so no scrape sees a count twice or a total go down.
   */
  Status retireInactive();

  /** Totals per labels: what retired generations counted plus the pinned ones now. */
  Result<std::map<ConnectionLabels, ConnectionTotals>> read() const;

private:
  /** Adds generation gen's counts to out. */
  Status addGeneration(uint8_t gen, std::map<ConnectionLabels, ConnectionTotals>& out) const;

  const PinnedMaps& maps_;
  mutable std::mutex mu_; // retireInactive (agent loop) against read (status server)
  std::map<ConnectionLabels, ConnectionTotals> retired_;
  std::optional<uint8_t> folded_; // retired, not yet live again
};

} // namespace veer
