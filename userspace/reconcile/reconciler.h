#pragma once

// veer-agent's reconcile loop, without the loop: config snapshots in, builds
// off the caller's thread, then publish the proxy's route table -> apply the
// map image -> schedule socket recycling. A rejected config leaves the last
// good one serving. Driven by the caller's event loop (fd(), due()), on an
// injected clock, against an injected datapath: unit tests run it without root.

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
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
  /** Where the rejected objects are written as JSON (mode 0600) for veerctl; "" = nowhere. */
  std::string rejectedFile;
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

  /**
   * Nothing is built until source delivered its first snapshot: a cluster that is still
   * being listed never becomes the datapath, not even beside a directory's objects.
   */
  void expect(const std::string& source);

  /**
   * A source's new content: builds the union of every source's latest (never blocks).
   *
   * Blast radius: texts of a source that names their objects (ConfigSnapshot::objects) are
   * rejected per object. When a build has errors and every error names such an object, the
   * build is retried with each named object at its last good version (or without it when
   * it never had one); an object that fails unchanged fails because of what it depends on,
   * so its namespace's changes are reverted to their last good versions, and if it still
   * fails it is left out. At most kMaxIsolationRounds builds; any error that names no such
   * object (a directory's file) rejects the whole config, as the directory mode always does.
   */
  void update(const std::string& source, ConfigSnapshot snapshot) override;

  static constexpr int kMaxIsolationRounds = 8;

  /** The objects the config in force was built without (or with at their last good). */
  const std::vector<RejectedObject>& rejected() const { return rejected_; }
  /** How many objects are rejected now (the metric). */
  /** Thread-safe: the status server reads it while the loop applies. */
  size_t rejectedObjects() const { return rejectedCount_.load(std::memory_order_relaxed); }

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
  /** Object name -> its texts (two when Istio's and Gateway API's Gateway share a name). */
  using ObjectTexts = std::map<std::string, std::vector<ConfigText>>;

  BuildOutput runBuild(BuildInput input);
  /** Takes the rejected objects of an applied build: logs each version once, writes the file. */
  void takeRejected(std::vector<RejectedObject> rejected);
  void writeRejectedFile() const;
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
  std::set<std::string> awaiting_;                // expected sources not delivered yet
  ObjectTexts lastGood_; // the build thread's only: per-object texts of the last good build
  std::vector<RejectedObject> rejected_; // of the config in force
  std::atomic<size_t> rejectedCount_{0}; // rejected_.size(), for other threads
  std::map<std::string, std::shared_ptr<const std::string>> rejectedLogged_; // object -> version
  uint64_t submitted_ = 0;        // seq of the newest build asked for
  uint64_t settled_ = 0;          // seq of the newest build applied, rejected or superseded
  std::optional<MapImage> image_; // the last good config
  std::optional<Plan> plan_;      // its plan, to see what the next one makes stale
  std::vector<std::pair<uint64_t, RecycleTargets>> pending_; // (due ms, targets)
  std::optional<std::vector<std::pair<veer_lane_key, veer_lane>>> lanesApplied_;
  uint64_t nextResync_;
  BuildWorker worker_; // last: its thread stops before what it uses goes
};

} // namespace veer
