#pragma once

// The resolved routing plan: what each service address does. Produced from a
// Config by resolve(); consumed by the compiler. Sorted, so deterministic.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/net.h"
#include "config/model.h"

namespace veer {

struct PlanBackend {
  IpAddr addr;
  uint16_t port = 0; // host order
  Str podNs;         // the endpoint's pod, when known (the Config's own strings, not a copy)
  Str podName;
  /** "ns/name" of the pod, "" when none is known. */
  std::string pod() const { return podName.empty() ? std::string() : podNs + "/" + podName; }
  auto operator<=>(const PlanBackend&) const = default;
};

/** One version (subset) of a service port and its share. */
struct PlanVersion {
  Str subset;                       // "" = all endpoints of the service
  uint8_t weight = 0;               // percent
  ThinVector<PlanBackend> backends; // ready endpoints, sorted
  /** ASM fallback: the subset whose backends serve because this one has none ("" = none). */
  Str fallback;
  /**
   * "ns/name" when the version is another Service's endpoints (a destination host other
   * than the routed service: Gateway API backendRefs, Istio route to another host); "" =
   * the routed service's own.
   */
  Str service;
};

/** The version's display and map name: subset, or "ns/name[.subset]" of another Service. */
std::string versionName(const PlanVersion& v);

/** Seconds an idle affine client keeps its backend by default: kube-proxy's and Cilium's 3 h. */
inline constexpr uint32_t kDefaultAffinityTimeout = 10800;

/** A lane of a service: a client pod whose lane label is value goes to subset. */
struct PlanLane {
  Str value;  // the client pod's label value, e.g. "gray"
  Str subset; // the version it reaches: the lane's own subset, or the fallback when
              // the lane's subset has no ready endpoint
  auto operator<=>(const PlanLane&) const = default;
};

/** A pod whose lane label puts it in a lane (the agent finds its cgroup). */
struct PlanLaneClient {
  Str ns;
  Str name;
  Str uid;  // metadata.uid, "" when the inventory has none
  Str lane; // label value
  auto operator<=>(const PlanLaneClient&) const = default;
};

/** Where a service's connections are decided. */
enum class PlanPath : uint8_t {
  kKernel, // the cgroup hooks pick the version: weights (and later per-client-pod lanes)
  kL7,     // a request must be read: header/URI/cookie matches, header actions, retries...
};

const char* pathName(PlanPath p);

/**
 * One rule of a service's ordered rule list, as the L7 proxy applies it: the first
 * rule with a matching match[] entry wins (entries ORed, conditions in an entry
 * ANDed; no entries = always). Delegated rules are inlined with the parent's
 * conditions merged in. Destination subsets are as written ("$trafficLabel" stays).
 */
struct PlanRoute {
  Str source; // "VirtualService default/reviews"
  /**
   * The rule. Shared, not copied: when resolve() is given the Config as a shared_ptr,
   * a rule as written points into that Config (and keeps it alive); a rule resolve built
   * (a delegate merged with its parent's conditions) is its own.
   */
  std::shared_ptr<const Route> rule;
};

/**
 * Orders the rules of several Gateway API HTTPRoutes attached to one parent as the spec
 * merges them: by Route::precedence (higher first), then by route ("HTTPRoute ns/name",
 * alphabetical; veer does not read creationTimestamp, the spec's first tie-breaker), then
 * in file order.
 */
void orderHttpRouteRules(ThinVector<PlanRoute>& routes);

/**
 * One finding behind a service's path, "<source> <detail>": "VirtualService default/reviews"
 * and "spec.http[0].match[0].headers: end-user exact". Two interned parts, because the
 * parts repeat across services where whole lines do not.
 */
struct PlanWhy {
  Str source;
  Str detail;
  std::string text() const { return source + " " + detail; }
  bool empty() const { return source.empty(); }
  bool operator==(const PlanWhy&) const = default;
};

/** One service address (clusterIP, port, protocol) and its version split. */
struct PlanService {
  Str ns;
  Str name;
  Str portName;
  IpAddr addr;
  uint16_t port = 0;                // host order
  uint8_t proto = 6;                // IPPROTO_TCP or IPPROTO_UDP
  ThinVector<PlanVersion> versions; // weights sum to 100, or a single version of 100

  /**
   * kernel or l7. An l7 service keeps the kernel behaviour (versions above, from
   * kernelRule) until the proxy runs; the proxy takes routes.
   */
  PlanPath path = PlanPath::kKernel;
  /** Why the path was chosen, one finding each. Empty for a plain service. */
  ThinVector<PlanWhy> why;
  /** The rule compiled into versions, as its source and field ("VirtualService
   * default/reviews", "spec.http[1]"); empty if none. */
  PlanWhy kernelRule;
  ThinVector<PlanRoute> routes;     // the full ordered rule list, for the proxy and explain
  Boxed<LoadBalancer> loadBalancer; // DestinationRule trafficPolicy (service level)
  /** Session affinity in the kernel: consistentHash useSourceIp, or sessionAffinity: ClientIP. */
  bool affinity = false;
  /** Seconds an idle affine client keeps its exact backend; 0 = Maglev alone. */
  uint32_t affinityTimeout = 0;
  /** Socket recycling opted in (veer.io/recycle-grace): seconds to wait before destroying. */
  std::optional<uint32_t> recycleGrace;
  /** Lanes by client pod label (ASM TrafficLabel $(localLabel)), sorted by value. */
  ThinVector<PlanLane> lanes;

  /** "ns/name:port" */
  std::string id() const;
};

/**
 * An ingress virtual host (Contour IngressRoute / HTTPProxy): HTTP host and path routing
 * in front of Services, decided by the ingress proxy (always L7). Not compiled into maps;
 * kept for validation, `veerctl plan` and golden tests.
 */
struct PlanVirtualHost {
  Str host;      // virtualhost.fqdn
  Str source;    // "IngressRoute root-ingressroute/root-blog"
  Str tlsSecret; // "" = plain HTTP
  /**
   * Contour's order (longest prefix first, then more header conditions), delegates and
   * includes inlined; destination host "name.ns", weights normalized to percent.
   */
  ThinVector<PlanRoute> routes;
};

struct Plan {
  std::vector<PlanService> services;         // sorted by (ns, name, addr, port, proto)
  std::vector<PlanLaneClient> laneClients;   // pods in a lane, sorted
  std::vector<PlanVirtualHost> virtualHosts; // sorted by host
};

} // namespace veer
