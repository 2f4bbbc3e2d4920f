#pragma once

// The Kubernetes API as a ConfigSource: a ClusterSource keeps an ObjectStore in step with
// the cluster on its reflector threads; this adapts it to the agent's loop. Store callbacks
// (run under the store's lock, on a reflector thread) only count the change and, for the
// first one since the last delivery, wake the loop through an eventfd; the loop coalesces
// the burst and delivers the store's snapshot.

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/files.h"
#include "common/result.h"
#include "k8s/client.h"
#include "k8s/informers.h"
#include "k8s/store.h"
#include "reconcile/config_source.h"

namespace veer {

/** The name this source delivers under (to the sink, in logs). */
inline constexpr const char* kK8sSourceName = "k8s";

class K8sSource final : public ConfigSource, private k8s::StoreListener {
public:
  /** A burst ends after this many ms without an event (a rollout's EndpointSlice churn). */
  static constexpr uint64_t kQuietMs = 20;
  /** A store that never goes quiet is delivered at least this often. */
  static constexpr uint64_t kMaxDelayMs = 250;
  /** How often the initial sync is looked at until it is done. */
  static constexpr uint64_t kSyncPollMs = 50;

  K8sSource(k8s::ClusterConfig config, k8s::ClusterSource::Options options,
            proxy::TimeSource& clock, ConfigSink& sink);
  /** Stops the reflectors. */
  ~K8sSource() override;

  /** Makes the eventfd and starts listing and watching; delivers nothing before synced(). */
  Status init();

  const std::string& name() const override { return name_; }
  int fd() const override { return event_.get(); }
  void onReadable() override;
  std::optional<uint64_t> due() const override;
  void onTimer() override;
  void refresh() override;

  /** Store changes seen since the start (tests, metrics). */
  uint64_t events() const { return events_.load(std::memory_order_acquire); }
  /** Every discovered kind was listed once (and so the first snapshot was delivered). */
  bool synced() const { return delivered_; }
  const k8s::ClusterSource& cluster() const { return *cluster_; }

private:
  void onUpsert(const k8s::ApiObject& obj) override;
  void onDelete(const k8s::ApiObject& obj) override;
  void wake();
  void deliver();

  std::string name_ = kK8sSourceName;
  proxy::TimeSource& clock_;
  ConfigSink& sink_;
  Fd event_;
  std::atomic<bool> dirty_{false};  // changed since the last delivery (one wake-up)
  std::atomic<uint64_t> events_{0}; // every change, counted
  uint64_t seenEvents_ = 0;         // events_ when the loop last looked
  k8s::ApiClient client_;
  k8s::ObjectStore store_;
  std::unique_ptr<k8s::ClusterSource> cluster_; // last: its threads stop before the rest goes
  bool delivered_ = false;
  std::optional<uint64_t> firstEvent_, lastEvent_; // of the pending burst (ms on the clock)
  uint64_t nextSyncCheck_ = 0;
};

} // namespace veer
