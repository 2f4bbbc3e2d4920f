#pragma once

// What veer watches and how it finds it: discovery of the group versions the server serves
// (a routing CRD may be missing, or served at v1 in one cluster and v1alpha3 in another),
// and one Reflector per kind found, re-discovering so a CRD installed later is picked up.

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "k8s/reflector.h"

namespace veer::k8s {

/** A kind veer's loader reads, and the versions it accepts, preferred (newest) first. */
struct WatchedKind {
  std::string group;
  std::vector<std::string> versions;
  std::string kind;
  bool ownNodeOnly = false; // Pods: only the node's own (fieldSelector=spec.nodeName=NODE)
};

/** Services, EndpointSlices, the node's Pods, Istio, ASM, Gateway API and Contour routing. */
const std::vector<WatchedKind>& watchedKinds();

/** What discovery found for each of some kinds, in their order (nullopt = not served). */
using DiscoveryResult = std::vector<std::optional<ResourceType>>;

/**
 * Asks /api/v1, /apis and /apis/GROUP/VERSION which of `kinds` the server serves, each at
 * the first of its versions that serves it. An Error when the server cannot be asked.
 */
Result<DiscoveryResult> discover(ApiClient& client, const std::vector<WatchedKind>& kinds,
                                 StopToken& stop);

/** Per kind: what a status page or a metric shows. */
struct KindStatus {
  std::string kind;
  std::optional<ResourceType> type; // nullopt: not served (CRD not installed)
  ReflectorCounts counts;           // zero when not watched
};

/**
 * Keeps an ObjectStore in step with the cluster: discovers, runs a Reflector thread per
 * served kind, re-discovers every rediscoverEvery (a CRD that appears is watched, one that
 * goes away has its objects deleted from the store).
 */
class ClusterSource {
public:
  struct Options {
    std::string nodeName; // "" = no Pods watched
    std::vector<WatchedKind> kinds = watchedKinds();
    Duration rediscoverEvery = std::chrono::seconds(30);
    ReflectorOptions reflector;
  };

  ClusterSource(ApiClient& client, ObjectStore& store, Options options,
                Clock& clock = systemClock());
  ~ClusterSource();
  ClusterSource(const ClusterSource&) = delete;
  ClusterSource& operator=(const ClusterSource&) = delete;

  void start();
  /** Stops every watch and joins the threads; prompt (no backoff is sat out). */
  void stop();
  /** Discovery answered and every served kind was listed once: the initial sync is done. */
  bool synced() const;
  std::vector<KindStatus> status() const;
  /** How many discovery rounds succeeded (tests). */
  uint64_t discoveries() const { return discoveries_; }

private:
  struct Running {
    std::unique_ptr<Reflector> reflector;
    std::unique_ptr<StopToken> stop;
    std::thread thread;
  };

  void loop();
  void reconcile(const DiscoveryResult& found);
  void stopOne(Running& r);

  ApiClient& client_;
  ObjectStore& store_;
  Options options_;
  Clock& clock_;
  StopToken stop_;
  std::thread thread_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Running>> running_; // per options_.kinds; null = not watched
  std::vector<bool> announcedMissing_;
  bool discovered_ = false;
  std::atomic<uint64_t> discoveries_{0};
};

} // namespace veer::k8s
