#pragma once

// The objects veer reads from Kubernetes YAML, as plain data with source positions.
// The loader fills them; validation and resolution turn them into a Plan (plan.h).

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/net.h"

namespace veer {

/** Where a YAML node came from. line and column are 1-based. */
struct SourcePos {
  std::string file;
  int line = 0;
  int column = 0;
};

/** One finding about the config: "file:line:col: Kind ns/name: field: message". */
struct Diagnostic {
  enum class Severity { kError, kWarning };
  Severity severity = Severity::kError;
  SourcePos pos;
  std::string object; // "VirtualService default/reviews", empty if the file itself
  std::string field;  // "spec.http[0].route[1].weight", empty if the whole object
  std::string message;

  std::string format() const;
};

using Diagnostics = std::vector<Diagnostic>;

bool hasErrors(const Diagnostics& diags);

/** Kind, namespace ("default" when omitted) and name of a Kubernetes object. */
struct ObjectMeta {
  std::string kind;
  std::string apiVersion;
  std::string ns;
  std::string name;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  SourcePos pos;

  /** "Kind ns/name" */
  std::string ref() const;
};

using Labels = std::map<std::string, std::string>;

struct ServicePort {
  std::string name;
  uint16_t port = 0;
  uint8_t proto = 6; // IPPROTO_TCP or IPPROTO_UDP
  uint16_t targetPort = 0;     // 0 when targetPortName is used
  std::string targetPortName;  // named container port
  SourcePos pos;
};

struct Service {
  ObjectMeta meta;
  std::vector<IpAddr> clusterIPs; // empty for headless / none
  std::vector<ServicePort> ports;
  Labels selector;
};

struct Pod {
  ObjectMeta meta;
  std::vector<IpAddr> ips;
  bool ready = false;
  std::map<std::string, uint16_t> namedPorts; // containerPort name -> port (TCP and UDP alike)
};

struct EndpointSlice {
  struct Endpoint {
    std::vector<IpAddr> addresses;
    bool ready = true; // conditions.ready, unset means ready
    std::string podName; // targetRef.name when targetRef.kind == Pod
  };
  struct Port {
    std::string name;
    uint16_t port = 0;
    uint8_t proto = 6;
  };
  ObjectMeta meta;
  std::string serviceName; // label kubernetes.io/service-name
  std::vector<Endpoint> endpoints;
  std::vector<Port> ports;
};

/** Istio DestinationRule subset. */
struct Subset {
  std::string name;
  Labels labels;
  SourcePos pos;
};

struct DestinationRule {
  ObjectMeta meta;
  std::string host;
  SourcePos hostPos;
  std::vector<Subset> subsets;
};

/** Istio HTTPRouteDestination / RouteDestination. */
struct RouteDestination {
  std::string host;
  std::string subset;
  uint16_t port = 0;             // destination.port.number, 0 when unset
  std::optional<int64_t> weight; // unset: 100 if the only destination
  SourcePos pos;
  std::string field; // "spec.http[0].route[1]"
};

/** Istio HTTPRoute or TCPRoute (issue 2: without match conditions). */
struct Route {
  std::string name;
  std::vector<RouteDestination> destinations;
  SourcePos pos;
  std::string field; // "spec.http[0]"
};

struct VirtualService {
  ObjectMeta meta;
  std::vector<std::string> hosts;
  std::vector<SourcePos> hostPos; // position of each hosts[] entry (same length as hosts)
  std::vector<Route> http;
  std::vector<Route> tcp;
};

/** Everything read from a set of files. */
struct Config {
  std::vector<Service> services;
  std::vector<Pod> pods;
  std::vector<EndpointSlice> endpointSlices;
  std::vector<DestinationRule> destinationRules;
  std::vector<VirtualService> virtualServices;
};

} // namespace veer
