#pragma once

// Resolution of ingress routing objects (Config::ingressRoutes: Contour IngressRoute and
// HTTPProxy, Gateway API HTTPRoutes attached to a Gateway) into Plan::virtualHosts.
// Called by resolve().

#include "config/model.h"
#include "config/plan.h"

namespace veer {

/**
 * Validates and resolves every root ingress object (one with a virtualhost) into a
 * PlanVirtualHost: delegates/includes inlined (cycles and missing children are positioned
 * errors), services checked against the inventory, Contour weights normalized to percent.
 * A host claimed twice, by objects of the same or of different formats (including an Istio
 * VirtualService host), is an error naming both.
 */
void resolveIngress(const Config& config, Plan& plan, Diagnostics& diags);

} // namespace veer
