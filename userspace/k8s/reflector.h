#pragma once

// A Reflector as client-go's: LIST, then WATCH from the list's resourceVersion with
// bookmarks, resuming from the last version seen; 410 Gone -> relist; exponential backoff
// with jitter on errors; 429 honours Retry-After. Keeps an ObjectStore in step.

#include <atomic>
#include <cstdint>
#include <mutex>
#include <random>
#include <string>

#include "k8s/client.h"
#include "k8s/clock.h"
#include "k8s/store.h"

namespace veer::k8s {

/** One kind of object at one group version, as discovery names it. */
struct ResourceType {
  std::string group; // "" = core
  std::string version;
  std::string resource; // plural, as in the URL: "pods"
  std::string kind;     // "Pod"
  bool namespaced = true;

  std::string apiVersion() const { return group.empty() ? version : group + "/" + version; }
  /** "/api/v1/pods", "/apis/networking.istio.io/v1/virtualservices": all namespaces. */
  std::string collectionPath() const;
  /** "pods", "virtualservices.networking.istio.io/v1": for logs and metrics. */
  std::string name() const;
};

/** client-go's reflector backoff: 800 ms doubling to 30 s, plus up to 100% jitter. */
struct BackoffPolicy {
  Duration initial = std::chrono::milliseconds(800);
  Duration max = std::chrono::seconds(30);
  double factor = 2.0;
  double jitter = 1.0; // a wait is d + random[0, jitter) * d, capped at max
};

class Backoff {
public:
  Backoff(BackoffPolicy policy, uint64_t seed) : policy_(policy), rng_(seed) {}
  /** The next wait; each one longer until max. */
  Duration next();
  /** After a success the next failure waits `initial` again. */
  void reset() { step_ = policy_.initial; }

private:
  BackoffPolicy policy_;
  std::mt19937_64 rng_;
  Duration step_ = policy_.initial;
};

struct ReflectorOptions {
  std::string fieldSelector; // "spec.nodeName=NODE" for the node's pods
  int64_t pageSize = 500;    // LIST limit, except resourceVersion=0 (served from cache whole)
  /** Each watch asks the server to end it after [min, 2*min) seconds, as client-go does, so
   * load spreads and a silently dead connection is replaced. */
  std::chrono::seconds minWatchTimeout{300};
  BackoffPolicy backoff;
  uint64_t seed = std::random_device{}();
};

/** A copy of ReflectorStats at one moment. */
struct ReflectorCounts {
  uint64_t lists = 0, listPages = 0, watches = 0, events = 0, bookmarks = 0, errors = 0,
           expired = 0, throttled = 0;
  int64_t backoffMs = 0, lastSyncNs = 0;
  bool synced = false;
};

/** Counters for metrics and tests; read any time. */
struct ReflectorStats {
  ReflectorCounts snapshot() const;

  std::atomic<uint64_t> lists{0};     // successful LISTs (every page counts once per LIST)
  std::atomic<uint64_t> listPages{0}; // GETs for LIST pages
  std::atomic<uint64_t> watches{0};   // watch requests made
  std::atomic<uint64_t> events{0};    // ADDED/MODIFIED/DELETED received
  std::atomic<uint64_t> bookmarks{0};
  std::atomic<uint64_t> errors{0};    // failed requests and ERROR events
  std::atomic<uint64_t> expired{0};   // 410s (status or event) and too-large versions
  std::atomic<uint64_t> throttled{0}; // 429s
  std::atomic<int64_t> backoffMs{0};  // total time waited after errors, in ms
  std::atomic<int64_t> lastSyncNs{0}; // Clock time of the last successful LIST
  std::atomic<bool> synced{false};    // a LIST succeeded at least once
};

class Reflector {
public:
  Reflector(ApiClient& client, ObjectStore& store, ResourceType type, ReflectorOptions options,
            Clock& clock = systemClock());
  Reflector(const Reflector&) = delete;
  Reflector& operator=(const Reflector&) = delete;

  /** Lists and watches until stop; returns promptly once stopped. */
  void run(StopToken& stop);

  const ResourceType& type() const { return type_; }
  const ReflectorStats& stats() const { return stats_; }
  /** The last resourceVersion seen (list, event or bookmark). */
  std::string resourceVersion() const;

private:
  enum class Outcome { kOk, kExpired, kThrottled, kError };
  struct Step {
    Outcome outcome = Outcome::kOk;
    std::optional<int> retryAfter;
  };

  Step list(StopToken& stop);
  Step listOnce(StopToken& stop, const std::string& rv);
  /** One watch request; kOk when it ended normally (timeout, closed) after some progress. */
  Step watch(StopToken& stop);
  /** Classifies a non-200 response (or an ERROR event's Status). */
  Step failed(const HttpResponse& r, const char* what);
  bool handleEvent(std::string_view line, Step& step);
  bool wait(StopToken& stop, const Step& step);
  void setVersion(std::string rv);

  ApiClient& client_;
  ObjectStore& store_;
  ResourceType type_;
  ReflectorOptions options_;
  Clock& clock_;
  Backoff backoff_;
  std::mt19937_64 rng_;
  ReflectorStats stats_;
  mutable std::mutex mu_;
  std::string rv_;
  /** The last version is gone (410 on a list) or unknown to the server: list at "". */
  bool rvUnavailable_ = false;
};

} // namespace veer::k8s
