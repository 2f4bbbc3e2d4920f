#include "proxy/stats.h"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace veer::proxy {

namespace {

using Json = nlohmann::json;

/** The bounds in microseconds: a duration goes in the first bucket whose bound it does not
 * pass (Prometheus' le), compared in integers. */
constexpr std::array<uint64_t, kDurationBoundsMs.size()> boundsUs() {
  std::array<uint64_t, kDurationBoundsMs.size()> out{};
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<uint64_t>(kDurationBoundsMs[i] * 1000);
  }
  return out;
}
constexpr std::array<uint64_t, kDurationBoundsMs.size()> kBoundsUs = boundsUs();

// Ids pack into one 64-bit key: 24 bits each is 16 million names, codes fit in 16.
constexpr uint32_t kIdBits = 24;
constexpr uint32_t kMaxId = (1u << kIdBits) - 1;

uint64_t pack(uint32_t destination, uint32_t route, int code) {
  return (static_cast<uint64_t>(destination) << 40) | (static_cast<uint64_t>(route) << 16) |
         static_cast<uint16_t>(code);
}

const ServiceLabels& unknownDestination() {
  static const ServiceLabels kUnknown{kUnknownLabel, kUnknownLabel, kUnknownLabel, kUnknownLabel};
  return kUnknown;
}

} // namespace

uint64_t DurationCounts::count() const {
  uint64_t n = 0;
  for (uint64_t b : buckets) {
    n += b;
  }
  return n;
}

// --- labels ------------------------------------------------------------------

StatsLabels::StatsLabels() : destinations_{unknownDestination()}, routes_{kUnknownLabel} {}

uint32_t StatsLabels::destination(std::string_view cluster) {
  if (cluster.empty()) {
    return 0;
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, added] = destinationIds_.try_emplace(std::string(cluster),
                                                 static_cast<uint32_t>(destinations_.size()));
  if (added) {
    if (destinations_.size() > kMaxId) {
      destinationIds_.erase(it);
      return 0; // more names than a key holds: counted as unknown, never as another's
    }
    // A cluster is "ns/name:port" and, when it is a subset, " subset" after.
    size_t space = cluster.find(' ');
    destinations_.push_back(serviceLabels(
        cluster.substr(0, space),
        space == std::string_view::npos ? std::string_view() : cluster.substr(space + 1)));
  }
  return it->second;
}

uint32_t StatsLabels::route(std::string_view rule) {
  if (rule.empty()) {
    return 0;
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, added] =
      routeIds_.try_emplace(std::string(rule), static_cast<uint32_t>(routes_.size()));
  if (added) {
    if (routes_.size() > kMaxId) {
      routeIds_.erase(it);
      return 0;
    }
    routes_.emplace_back(rule);
  }
  return it->second;
}

StatsLabels::Snapshot StatsLabels::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return Snapshot{destinations_, routes_};
}

// --- a worker's counts -------------------------------------------------------

void WorkerStats::useTable(const std::shared_ptr<const RouteTable>& table) {
  if (table != cachedTable_) {
    // Another table's strings may sit at the addresses the cache knows.
    destinationCache_.clear();
    routeCache_.clear();
    cachedTable_ = table;
  }
}

uint32_t WorkerStats::destinationId(const std::shared_ptr<const RouteTable>& table,
                                    std::string_view cluster) {
  if (cluster.empty()) {
    return 0;
  }
  useTable(table);
  auto it = destinationCache_.find(cluster.data());
  if (it != destinationCache_.end()) {
    return it->second;
  }
  uint32_t id = labels_.destination(cluster);
  destinationCache_.emplace(cluster.data(), id);
  return id;
}

uint32_t WorkerStats::routeId(const std::shared_ptr<const RouteTable>& table,
                              std::string_view rule) {
  if (rule.empty()) {
    return 0;
  }
  useTable(table);
  auto it = routeCache_.find(rule.data());
  if (it != routeCache_.end()) {
    return it->second;
  }
  uint32_t id = labels_.route(rule);
  routeCache_.emplace(rule.data(), id);
  return id;
}

void WorkerStats::request(uint32_t destination, uint32_t route, int code, uint64_t durationUs) {
  const uint64_t rkey = pack(destination, route, code);
  auto r = requestIndex_.find(rkey);
  if (r == requestIndex_.end()) {
    r = requestIndex_
            .emplace(rkey, requests_.append([&](RequestSlot& s) {
              s.destination = destination;
              s.route = route;
              s.code = code;
            }))
            .first;
  }
  add(requests_[r->second].count, 1);

  const uint64_t dkey = pack(destination, 0, code);
  auto d = durationIndex_.find(dkey);
  if (d == durationIndex_.end()) {
    d = durationIndex_
            .emplace(dkey, durations_.append([&](DurationSlot& s) {
              s.destination = destination;
              s.code = code;
            }))
            .first;
  }
  DurationSlot& slot = durations_[d->second];
  size_t b = std::lower_bound(kBoundsUs.begin(), kBoundsUs.end(), durationUs) - kBoundsUs.begin();
  add(slot.buckets[b], 1);
  add(slot.sumUs, durationUs);
}

void WorkerStats::connectionOpened(uint32_t destination) {
  auto c = connectionIndex_.find(destination);
  if (c == connectionIndex_.end()) {
    c = connectionIndex_
            .emplace(destination,
                     connections_.append([&](ConnectionSlot& s) { s.destination = destination; }))
            .first;
  }
  add(connections_[c->second].count, 1);
}

void WorkerStats::addTo(ProxyStats& out) const {
  // The slots first, then the labels: a slot's ids were interned before it was published,
  // so every id of the slots read is in the snapshot.
  const size_t requests = requests_.size(), durations = durations_.size(),
               connections = connections_.size();
  const StatsLabels::Snapshot labels = labels_.snapshot();
  auto dest = [&](uint32_t id) -> const ServiceLabels& { return labels.destinations[id]; };
  auto route = [&](uint32_t id) -> const std::string& { return labels.routes[id]; };
  for (size_t i = 0; i < requests; ++i) {
    const RequestSlot& s = requests_[i];
    const ServiceLabels& d = dest(s.destination);
    out.requests[RequestLabels{d.ns, d.name, d.version, s.code, route(s.route)}] +=
        s.count.load(std::memory_order_relaxed);
  }
  for (size_t i = 0; i < durations; ++i) {
    const DurationSlot& s = durations_[i];
    const ServiceLabels& d = dest(s.destination);
    DurationCounts& c = out.durations[DurationLabels{d.ns, d.name, d.version, s.code}];
    for (size_t b = 0; b < kDurationBuckets; ++b) {
      c.buckets[b] += s.buckets[b].load(std::memory_order_relaxed);
    }
    c.sumUs += s.sumUs.load(std::memory_order_relaxed);
  }
  for (size_t i = 0; i < connections; ++i) {
    const ConnectionSlot& s = connections_[i];
    out.connections[dest(s.destination)] += s.count.load(std::memory_order_relaxed);
  }
}

// --- JSON --------------------------------------------------------------------

std::string ProxyStats::toJson() const {
  Json j = Json::object();
  j["durationBoundsMs"] = kDurationBoundsMs;
  Json& reqs = j["requests"] = Json::array();
  for (const auto& [l, n] : requests) {
    reqs.push_back({{"namespace", l.ns},
                    {"service", l.name},
                    {"version", l.version},
                    {"code", l.code},
                    {"route", l.route},
                    {"count", n}});
  }
  Json& durs = j["durations"] = Json::array();
  for (const auto& [l, c] : durations) {
    durs.push_back({{"namespace", l.ns},
                    {"service", l.name},
                    {"version", l.version},
                    {"code", l.code},
                    {"buckets", c.buckets},
                    {"sumUs", c.sumUs}});
  }
  Json& conns = j["connections"] = Json::array();
  for (const auto& [l, n] : connections) {
    conns.push_back({{"namespace", l.ns},
                     {"service", l.name},
                     {"port", l.port},
                     {"version", l.version},
                     {"count", n}});
  }
  return j.dump();
}

namespace {

/** Reads one field of an entry: its type is checked, errors name its path. */
class Reader {
public:
  Reader(const Json& j, std::string path) : j_(j), path_(std::move(path)) {}

  Status string(const char* key, std::string& out) const {
    const Json* v = field(key);
    if (v == nullptr || !v->is_string()) {
      return Error{EINVAL, where(key) + ": want a string"};
    }
    out = v->get<std::string>();
    return {};
  }
  Status count(const char* key, uint64_t& out) const {
    const Json* v = field(key);
    if (v == nullptr || !v->is_number_unsigned()) {
      return Error{EINVAL, where(key) + ": want a count (an unsigned integer)"};
    }
    out = v->get<uint64_t>();
    return {};
  }
  Status code(int& out) const {
    uint64_t c = 0;
    if (Status s = count("code", c); !s) {
      return s;
    }
    if (c > 999) {
      return Error{EINVAL, where("code") + ": " + std::to_string(c) + " is not an HTTP status"};
    }
    out = static_cast<int>(c);
    return {};
  }
  Status buckets(DurationCounts& out) const {
    const Json* v = field("buckets");
    if (v == nullptr || !v->is_array() || v->size() != kDurationBuckets) {
      return Error{EINVAL, where("buckets") + ": want an array of " +
                               std::to_string(kDurationBuckets) + " counts"};
    }
    for (size_t i = 0; i < kDurationBuckets; ++i) {
      if (!(*v)[i].is_number_unsigned()) {
        return Error{EINVAL, where("buckets") + "[" + std::to_string(i) + "]: want a count"};
      }
      out.buckets[i] = (*v)[i].get<uint64_t>();
    }
    return {};
  }

private:
  const Json* field(const char* key) const {
    auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }
  std::string where(const char* key) const { return path_ + "." + key; }

  const Json& j_;
  std::string path_;
};

/** Each entry of array key, as a Reader, to read. */
template <class Read> Status eachEntry(const Json& j, const char* key, Read read) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) {
    return Error{EINVAL, std::string(key) + ": want an array"};
  }
  for (size_t i = 0; i < it->size(); ++i) {
    std::string path = std::string(key) + "[" + std::to_string(i) + "]";
    if (!(*it)[i].is_object()) {
      return Error{EINVAL, path + ": want an object"};
    }
    if (Status s = read(Reader((*it)[i], path)); !s) {
      return s;
    }
  }
  return {};
}

} // namespace

Result<ProxyStats> ProxyStats::fromJson(std::string_view json) {
  Json j = Json::parse(json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Error{EINVAL, "proxy stats: not a JSON object"};
  }
  // The buckets are positional: a proxy counting in other bounds cannot be read as ours.
  auto bounds = j.find("durationBoundsMs");
  if (bounds == j.end() || !bounds->is_array() || *bounds != Json(kDurationBoundsMs)) {
    return Error{EINVAL, "proxy stats: durationBoundsMs: not this agent's buckets"};
  }
  ProxyStats out;
  Status s = eachEntry(j, "requests", [&](const Reader& r) -> Status {
    RequestLabels l;
    uint64_t n = 0;
    for (Status st :
         {r.string("namespace", l.ns), r.string("service", l.name), r.string("version", l.version),
          r.code(l.code), r.string("route", l.route), r.count("count", n)}) {
      if (!st) {
        return st;
      }
    }
    out.requests[l] += n;
    return {};
  });
  if (s) {
    s = eachEntry(j, "durations", [&](const Reader& r) -> Status {
      DurationLabels l;
      DurationCounts c;
      for (Status st : {r.string("namespace", l.ns), r.string("service", l.name),
                        r.string("version", l.version), r.code(l.code), r.buckets(c),
                        r.count("sumUs", c.sumUs)}) {
        if (!st) {
          return st;
        }
      }
      DurationCounts& to = out.durations[l];
      for (size_t i = 0; i < kDurationBuckets; ++i) {
        to.buckets[i] += c.buckets[i];
      }
      to.sumUs += c.sumUs;
      return {};
    });
  }
  if (s) {
    s = eachEntry(j, "connections", [&](const Reader& r) -> Status {
      ServiceLabels l;
      uint64_t n = 0;
      for (Status st :
           {r.string("namespace", l.ns), r.string("service", l.name), r.string("port", l.port),
            r.string("version", l.version), r.count("count", n)}) {
        if (!st) {
          return st;
        }
      }
      out.connections[l] += n;
      return {};
    });
  }
  if (!s) {
    return Error{s.error().code, "proxy stats: " + s.error().message};
  }
  return out;
}

} // namespace veer::proxy
