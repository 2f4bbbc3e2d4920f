#pragma once

// veer-proxy's request and connection metrics (issue 16, "Health and metrics"), with
// Istio's label meanings: requests by destination, response code and route, their
// durations in Istio's buckets, and the upstream connections opened per version.
//
// Counting is per worker thread and lock-free: a request's destination and route are
// interned to small ids once per route table (a hash lookup on the table string's address
// per request), and each thread counts into its own append-only slots with single-writer
// relaxed atomics. A reader (the stats endpoint's thread) merges the threads' slots when
// asked. Nothing here allocates per request once a label combination has been seen.
// Counts only grow, for the proxy's life, across table reloads.

#include <array>
#include <atomic>
#include <bit>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "common/service_labels.h"

namespace veer::proxy {

class RouteTable;

/** Istio's default request duration buckets (upper bounds, milliseconds). */
inline constexpr std::array<double, 19> kDurationBoundsMs = {
    0.5,  1,    5,     10,    25,    50,     100,    250,     500,    1000,
    2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000};
/** Buckets of a duration histogram: one per bound, then +Inf. */
inline constexpr size_t kDurationBuckets = kDurationBoundsMs.size() + 1;

/** Labels of veer_requests_total. */
struct RequestLabels {
  std::string ns, name, version;
  int code = 0; // the status the client got; 0: none (it left before a response head)
  std::string route;
  auto operator<=>(const RequestLabels&) const = default;
};

/** Labels of veer_request_duration_milliseconds: the requests' without route, whose
 * cardinality (every rule of every service) times 22 series a histogram would multiply. */
struct DurationLabels {
  std::string ns, name, version;
  int code = 0;
  auto operator<=>(const DurationLabels&) const = default;
};

struct DurationCounts {
  std::array<uint64_t, kDurationBuckets> buckets{}; // per bucket (not cumulative); last +Inf
  uint64_t sumUs = 0;                               // microseconds, so sums add exactly
  uint64_t count() const;
};

/** What veer-proxy counted, merged over its threads: its GET /stats answer. */
struct ProxyStats {
  std::map<RequestLabels, uint64_t> requests;
  std::map<DurationLabels, DurationCounts> durations;
  std::map<ServiceLabels, uint64_t> connections; // upstream connections opened

  std::string toJson() const;
  /** Parses toJson's output; errors name the JSON path of what is wrong. */
  static Result<ProxyStats> fromJson(std::string_view json);
};

/** Engine-wide ids of label values, so the threads' counts merge by id. Id 0 is unknown. */
class StatsLabels {
public:
  StatsLabels();
  /** The id of a route table cluster name ("ns/name:port subset"). */
  uint32_t destination(std::string_view cluster);
  /** The id of a rule name ("VirtualService ns/name spec.http[0]"); "" is unknown. */
  uint32_t route(std::string_view rule);

  struct Snapshot {
    std::vector<ServiceLabels> destinations;
    std::vector<std::string> routes;
  };
  /** Every label value so far, indexed by id (ids only ever grow). */
  Snapshot snapshot() const;

private:
  mutable std::mutex mu_; // taken on a thread's first sight of a name per table, and reads
  std::vector<ServiceLabels> destinations_;
  std::unordered_map<std::string, uint32_t> destinationIds_;
  std::vector<std::string> routes_;
  std::unordered_map<std::string, uint32_t> routeIds_;
};

/** One worker's counts: written by its thread only, read by any. */
class WorkerStats {
public:
  explicit WorkerStats(StatsLabels& labels) : labels_(labels) {}

  /** The ids of a decision's cluster and rule, views into table (see Decision). */
  uint32_t destinationId(const std::shared_ptr<const RouteTable>& table, std::string_view cluster);
  uint32_t routeId(const std::shared_ptr<const RouteTable>& table, std::string_view rule);

  void request(uint32_t destination, uint32_t route, int code, uint64_t durationUs);
  void connectionOpened(uint32_t destination);

  /** Adds what this thread counted to out (any thread). */
  void addTo(ProxyStats& out) const;

private:
  /**
   * An array that grows without moving what it holds, so a reader can walk the first
   * size() slots while the one writer appends: segment s holds kFirst << s slots.
   */
  template <class T> class Slots {
  public:
    Slots() = default;
    Slots(const Slots&) = delete;
    Slots& operator=(const Slots&) = delete;
    ~Slots() {
      for (auto& s : segments_) {
        delete[] s.load(std::memory_order_relaxed);
      }
    }
    size_t size() const { return size_.load(std::memory_order_acquire); }
    T& operator[](size_t i) const {
      auto [s, off] = place(i);
      return segments_[s].load(std::memory_order_acquire)[off];
    }
    /** The writer's next slot, filled by init before readers can see it. */
    template <class Init> uint32_t append(Init init) {
      size_t i = size_.load(std::memory_order_relaxed);
      auto [s, off] = place(i);
      T* seg = segments_[s].load(std::memory_order_relaxed);
      if (seg == nullptr) {
        seg = new T[kFirst << s];
        segments_[s].store(seg, std::memory_order_release);
      }
      init(seg[off]);
      size_.store(i + 1, std::memory_order_release);
      return static_cast<uint32_t>(i);
    }

  private:
    static constexpr size_t kFirst = 16;
    static constexpr size_t kSegments = 28; // 16 * (2^28 - 1) slots: more than ids allow
    static std::pair<size_t, size_t> place(size_t i) {
      size_t s = std::bit_width(i / kFirst + 1) - 1;
      return {s, i - kFirst * ((size_t{1} << s) - 1)};
    }
    mutable std::array<std::atomic<T*>, kSegments> segments_{};
    std::atomic<size_t> size_{0};
  };

  /** Only this thread writes a counter: a plain add, published without a locked op. */
  static void add(std::atomic<uint64_t>& c, uint64_t n) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }

  struct RequestSlot {
    uint32_t destination = 0, route = 0;
    int code = 0;
    std::atomic<uint64_t> count{0};
  };
  struct DurationSlot {
    uint32_t destination = 0;
    int code = 0;
    std::array<std::atomic<uint64_t>, kDurationBuckets> buckets{};
    std::atomic<uint64_t> sumUs{0};
  };
  struct ConnectionSlot {
    uint32_t destination = 0;
    std::atomic<uint64_t> count{0};
  };

  /** A table's strings by address; dropped when another table is routed with. */
  void useTable(const std::shared_ptr<const RouteTable>& table);

  StatsLabels& labels_;
  std::shared_ptr<const RouteTable> cachedTable_; // held so its addresses stay its own
  std::unordered_map<const char*, uint32_t> destinationCache_, routeCache_;
  Slots<RequestSlot> requests_;
  Slots<DurationSlot> durations_;
  Slots<ConnectionSlot> connections_;
  // Slot index by packed ids (this thread only).
  std::unordered_map<uint64_t, uint32_t> requestIndex_, durationIndex_, connectionIndex_;
};

} // namespace veer::proxy
