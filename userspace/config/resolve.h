#pragma once

// Config -> Plan: the resolver (config/resolve*.cpp). It indexes a Config once
// (resolve_index.cpp), validates each Service's rules against the indexes
// (resolve_validate.cpp) and builds a PlanService per address and port from what held
// (resolve_build.cpp). Validation lives here, not in the loader, so a Config built in
// code is checked like a loaded one.

#include <memory>
#include <string>
#include <vector>

#include "config/model.h"
#include "config/plan.h"

namespace veer {

struct ResolveResult {
  Plan plan;
  Diagnostics diags;
};

/**
 * Validates a Config and resolves it: hosts -> services, subsets -> endpoints,
 * routes -> per service-port version weights. Any error-severity diagnostic
 * means the plan must not be applied.
 */
ResolveResult resolve(const Config& config);
/**
 * The same, sharing the Config's rules with the plan instead of copying them (a large
 * config's rules are most of its memory): the plan keeps the Config alive.
 */
ResolveResult resolve(std::shared_ptr<const Config> config);

/** One subset of a service port and its ready endpoints, computed as resolve() does. */
struct SubsetEndpoints {
  std::string subset;                // "" = every endpoint of the service
  Boxed<LoadBalancer> loadBalancer;  // the subset's trafficPolicy, else the rule's
  std::vector<PlanBackend> backends; // sorted
};

/**
 * "" and every DestinationRule subset of a Service port with its ready endpoints: what the
 * L7 proxy needs beyond the plan's versions (every lane and fallback candidate). Indexes
 * the Config once: a route table asks for every L7 service, and indexing per question
 * made building one quadratic in the size of the config.
 */
class SubsetIndex {
public:
  explicit SubsetIndex(const Config& config);
  ~SubsetIndex();
  SubsetIndex(const SubsetIndex&) = delete;
  SubsetIndex& operator=(const SubsetIndex&) = delete;

  /** For the Service of ps on its port `port`, in the address family of ps.addr. Empty
   * when the service or port is unknown. */
  std::vector<SubsetEndpoints> of(const PlanService& ps, uint16_t port);

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/** The TrafficLabel label `name` that applies in namespace ns (own namespace first, then
 * istio-system, mesh-wide); null when none does. */
const TrafficLabel::Label* findTrafficLabel(const Config& config, const std::string& name,
                                            const std::string& ns,
                                            const TrafficLabel** owner = nullptr);

} // namespace veer
