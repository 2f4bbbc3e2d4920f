#pragma once

// A route table as plain data (the spec): what the agent derives from a Plan and writes,
// and what veer-proxy reads back (route_table_json.h) and compiles for routing
// (router_table.h). Per service address: the ordered rules as Istio wrote them, every
// subset's endpoints, the traffic-label sources and the client pods the rules look at.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/net.h"
#include "config/model.h"
#include "config/plan.h"
#include "proxy/router.h"

namespace veer::proxy {

/** The endpoints of one subset of one Service port, and how to balance over them. */
struct RouteSpecCluster {
  std::string service; // "ns/name" of another Service a route sends to; "" = the routed one
  std::string subset;  // "" = every endpoint of the service
  uint16_t port = 0;   // service port
  std::vector<Endpoint> endpoints;
  Boxed<LoadBalancer> loadBalancer;
};

/** One L7 service address and port: its rules as written, and every cluster they reach. */
struct RouteSpecService {
  std::string ns;
  std::string name;
  IpAddr addr;
  uint16_t port = 0;
  ThinVector<PlanRoute> routes;
  std::vector<RouteSpecCluster> clusters;
  /** Traffic labels the routes name ($name), with their sources in order. */
  std::map<std::string, ThinVector<TrafficLabel::Source>> labels;
};

/** A client pod the rules look at (sourceLabels, sourceNamespace, a lane's pod label). */
struct RouteSpecPod {
  IpAddr ip;
  std::string ns;
  std::string name;
  Labels labels; // only the keys the routes read (sourceLabels, localLabel)
};

/** A whole route table as data: what toJson writes and fromJson reads. */
struct RouteSpec {
  std::string tagHeader;
  std::vector<RouteSpecService> services;
  std::vector<RouteSpecPod> pods;
};

} // namespace veer::proxy
