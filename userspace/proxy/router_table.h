#pragma once

// A route table's routing form: a RouteSpec compiled for per-request decisions (regexes
// compiled, weight slots laid out, header edits precomputed), so route() only reads,
// counts and points into it. Shared by the compile (router_compile.cpp) and the
// per-request router (router.cpp); nothing outside proxy/ includes it.

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "config/match.h"
#include "proxy/router_spec.h"

namespace veer::proxy {

/** A RouteSpec compiled: per (service address, port) its rules and clusters; the client
 * pods by IP. Immutable once built but for the atomic counters (round robin, shares). */
struct CompiledTable {
  struct Cluster {
    std::string service; // as RouteSpecCluster::service
    std::string subset;
    uint16_t port = 0;
    std::string name; // "default/reviews:9080 v2"
    std::vector<Endpoint> endpoints;
    LoadBalancer::Hash hash = LoadBalancer::Hash::kNone;
    std::string hashKey;
    std::vector<uint32_t> ring; // Maglev over endpoints, for consistent hashing
    /** httpCookie with a ttl: "; Max-Age=N; Path=p; HttpOnly" of the cookie generated when
     * a request has none; nullopt when no cookie is generated. */
    std::optional<std::string> cookieAttrs;
    mutable std::atomic<uint64_t> next{0}; // round robin
  };

  struct Dest {
    std::string service; // "" = the routed service, else "ns/name" (a route to another host)
    int cluster = -1;    // fixed subset; -1 for a lane ($label)
    int label = -1;      // index into Service::labels for a lane
    uint16_t port = 0;
    uint8_t weight = 0;
    int fallback = -1;                // the ASM fallback target's cluster
    bool fallbackNoInstances = false; // case noinstances: the chosen subset has no endpoint
    bool fallbackNoAvailable = false; // case noavailabled: none of its endpoints connects
    std::vector<HeaderEdit> requestEdits;
    std::vector<HeaderEdit> responseEdits;
  };

  struct Rule {
    std::string name; // "VirtualService default/reviews spec.http[0]"
    std::vector<CompiledMatch> matches;
    std::vector<Dest> dests;
    std::vector<uint8_t> slots; // smooth weighted round robin over dests (compiler's layout)
    mutable std::atomic<uint64_t> next{0};
    std::string rewritePath;
    std::string rewriteAuthority;
    uint32_t timeoutMs = 0;
    int retries = -1;
    uint32_t perTryTimeoutMs = 0;
    RetryOn retryOn;
    uint32_t abortPpm = 0; // fault.abort share in parts per million
    int abortStatus = 0;
    mutable std::atomic<uint64_t> abortCount{0};
    uint32_t delayPpm = 0;
    uint32_t delayMs = 0;
    mutable std::atomic<uint64_t> delayCount{0};
    bool redirect = false;
    std::string redirectUri, redirectAuthority, redirectScheme;
    int redirectCode = kDefaultRedirectCode;
    int mirror = -1;        // Istio mirror: the cluster a copy of each request goes to
    uint32_t mirrorPpm = 0; // mirrorPercentage in parts per million
    mutable std::atomic<uint64_t> mirrorCount{0};
    int directStatus = 0;
    std::string directBody;
  };

  struct Service {
    std::string id; // "default/reviews:9080"
    uint16_t port = 0;
    size_t specIndex = 0; // RouteSpec::services[specIndex] is what this was compiled from
    std::vector<std::unique_ptr<Rule>> rules;
    std::vector<std::unique_ptr<Cluster>> clusters;
    std::vector<ThinVector<TrafficLabel::Source>> labels;
  };

  struct Pod {
    std::string ns;
    std::string name;
    Labels labels;
  };

  RouteSpec spec; // what it was compiled from: toJson writes it, trace() reads the rules
  std::string tagHeader;
  std::map<std::pair<IpAddr, uint16_t>, Service> services;
  std::map<IpAddr, Pod> pods;
  std::vector<std::string> lanes; // every subset name, sorted: what a $getContext value may be
};

/** Compiles spec into out (empty); errors name the JSON path of the offending element. */
Status compileRouteTable(RouteSpec spec, CompiledTable* out);

/** The index of the cluster (service, subset, port) in s.clusters; -1 when none. */
int findCluster(const CompiledTable::Service& s, std::string_view service, std::string_view subset,
                uint16_t port);

struct RouteTable::Impl : CompiledTable {};

} // namespace veer::proxy
