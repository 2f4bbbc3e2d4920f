#pragma once

// The reconciler's interfaces over the real node: the loaded datapath, the
// socket recycler and veer-proxy's supervisor.

#include <atomic>
#include <cerrno>
#include <optional>

#include <spdlog/spdlog.h>

#include "agent/proxy_supervisor.h"
#include "datapath/counters.h"
#include "datapath/datapath.h"
#include "datapath/recycle.h"
#include "reconcile/datapath_control.h"

namespace veer {

class KernelDatapathControl final : public DatapathControl {
public:
  /** recycler: null when socket recycling is off or unavailable. */
  KernelDatapathControl(Datapath& dp, Recycler* recycler)
      : dp_(dp), recycler_(recycler), counters_(dp.maps()) {}

  Result<veer_state> state() override { return dp_.maps().state(); }
  Status apply(const MapImage& image) override {
    // The apply overwrites the inactive generation's counters: fold them first, so the
    // per-version totals /metrics serves never go down. A failed fold costs those counts
    // (a counter reset to Prometheus), never the config.
    if (Status s = counters_.retireInactive(); !s) {
      spdlog::warn("connection counters: {}; this apply loses the retiring generation's counts",
                   s.error().message);
    }
    wanted_.store(image.digest(), std::memory_order_relaxed);
    hasWanted_.store(true, std::memory_order_release);
    return dp_.maps().apply(image);
  }
  Status countRejected() override { return dp_.maps().countRejected(); }
  const char* recycler() const override { return recycler_ ? recycler_->modeName() : nullptr; }
  bool recyclerSeesClients() const override { return recycler_ && recycler_->seesClients(); }
  Result<RecycleCount> recycle(const RecycleTargets& targets) override {
    if (recycler_ == nullptr) {
      return Error{EOPNOTSUPP, "socket recycling is off or unavailable"};
    }
    return recycler_->run(targets);
  }

  /** Per-version totals for the agent's life (read from the status server's thread). */
  const ConnectionCounters& counters() const { return counters_; }
  /** The digest of the image last handed to apply; nullopt before the first. Thread-safe. */
  std::optional<uint64_t> wantedDigest() const {
    if (!hasWanted_.load(std::memory_order_acquire)) {
      return std::nullopt;
    }
    return wanted_.load(std::memory_order_relaxed);
  }

private:
  Datapath& dp_;
  Recycler* recycler_;
  ConnectionCounters counters_;
  std::atomic<uint64_t> wanted_{0};
  std::atomic<bool> hasWanted_{false};
};

class ProxyRoutePublisher final : public RoutePublisher {
public:
  explicit ProxyRoutePublisher(ProxySupervisor& proxy) : proxy_(proxy) {}
  Status publish(const std::string& json) override { return proxy_.publish(json); }

private:
  ProxySupervisor& proxy_;
};

} // namespace veer
