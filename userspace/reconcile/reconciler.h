#pragma once

// veer-agent's reconcile loop, without the loop: config snapshots in, builds
// off the caller's thread, then publish the proxy's route table -> apply the
// map image -> schedule socket recycling. A rejected config leaves the last
// good one serving. Driven by the caller's event loop (fd(), due()), on an
// injected clock, against an injected datapath: unit tests run it without root.

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "compiler/maglev.h"
#include "compiler/pipeline.h"
#include "proxy/router.h"
#include "reconcile/build_worker.h"
#include "reconcile/clock.h"
#include "reconcile/config_source.h"
#include "reconcile/datapath_control.h"

namespace veer {

struct ReconcilerOptions {
  /** The cgroup the datapath is attached to: lane pods' cgroups are found under it. */
  std::string cgroupRoot;
  proxy::RouteOptions routeOptions;
  /** How often lane pods' cgroups are looked for again (a pod's cgroup appears after its Pod). */
  uint64_t resyncEveryMs = 1000;
};

/** A config build: texts in, load -> resolve -> compile, reusing the caller's Maglev rings. */
using BuildFn =
    std::function<BuildResult(const std::vector<ConfigText>& texts, MaglevCache& rings)>;

/** buildFromTexts. */
BuildResult buildConfig(const std::vector<ConfigText>& texts, MaglevCache& rings);

class Reconciler final : public ConfigSink {
public:
  /** routes: null when no veer-proxy runs. build runs on the build thread. */
  Reconciler(ReconcilerOptions options, DatapathControl& dp, RoutePublisher* routes,
             proxy::TimeSource& clock, BuildFn build = buildConfig);
  Reconciler(const Reconciler&) = delete;
  Reconciler& operator=(const Reconciler&) = delete;

  /** Starts the build thread. */
  Status start();

  /** A source's new content: builds the union of every source's latest (never blocks). */
  void update(const std::string& source, ConfigSnapshot snapshot) override;

  /** Readable (POLLIN) when a build finished: call onBuilt(). */
  int fd() const { return worker_.fd(); }
  /** Applies the newest build, unless a newer one was asked for since. */
  void onBuilt();

  /** When onTimer() is next needed (ms on the clock): a recycling's grace ends, or a resync. */
  uint64_t due() const;
  /** Runs the recycling whose grace has passed, and the lane resync when due. */
  void onTimer();

  /** Builds asked for and not yet applied or rejected (the newest included). */
  bool building() const { return submitted_ != settled_; }

private:
  BuildOutput runBuild(BuildInput input);
  void applyBuilt(BuildOutput& out);
  /** Re-finds the lane pods' cgroups and re-applies the last good config when they moved. */
  void resync();
  void schedule(RecyclePlan plan);
  void recycle(const RecycleTargets& targets, const char* when);
  /** True when the datapath now runs image_ (applied, or already live). */
  bool apply(bool logUnchanged);
  void reject();
  std::string sourceNames() const;

  ReconcilerOptions options_;
  DatapathControl& dp_;
  RoutePublisher* routes_;
  proxy::TimeSource& clock_;
  BuildFn build_;
  MaglevCache rings_; // the build thread's only: an apply recomputes only changed versions'
  std::map<std::string, ConfigSnapshot> sources_; // by source name, each one's latest
  uint64_t submitted_ = 0; // seq of the newest build asked for
  uint64_t settled_ = 0;   // seq of the newest build applied, rejected or superseded
  std::optional<MapImage> image_; // the last good config
  std::optional<Plan> plan_;      // its plan, to see what the next one makes stale
  std::vector<std::pair<uint64_t, RecycleTargets>> pending_; // (due ms, targets)
  std::optional<std::vector<std::pair<veer_lane_key, veer_lane>>> lanesApplied_;
  uint64_t nextResync_;
  BuildWorker worker_; // last: its thread stops before what it uses goes
};

} // namespace veer
