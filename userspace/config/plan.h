#pragma once

// The resolved routing plan: what each service address does. Produced from a
// Config by resolve(); consumed by the compiler. Sorted, so deterministic.

#include <cstdint>
#include <string>
#include <vector>

#include "common/net.h"

namespace veer {

struct PlanBackend {
  IpAddr addr;
  uint16_t port = 0; // host order
  std::string pod;   // "ns/name", for display
  auto operator<=>(const PlanBackend&) const = default;
};

/** One version (subset) of a service port and its share. */
struct PlanVersion {
  std::string subset; // "" = all endpoints of the service
  uint8_t weight = 0; // percent
  std::vector<PlanBackend> backends; // ready endpoints, sorted
};

/** One service address (clusterIP, port, protocol) and its version split. */
struct PlanService {
  std::string ns;
  std::string name;
  std::string portName;
  IpAddr addr;
  uint16_t port = 0; // host order
  uint8_t proto = 6; // IPPROTO_TCP or IPPROTO_UDP
  std::vector<PlanVersion> versions; // weights sum to 100, or a single version of 100

  /** "ns/name:port" */
  std::string id() const;
};

struct Plan {
  std::vector<PlanService> services; // sorted by (ns, name, addr, port, proto)
};

} // namespace veer
