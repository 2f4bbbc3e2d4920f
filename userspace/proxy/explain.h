#pragma once

// `veerctl explain` for a mesh service: the request asked of the route table veer-proxy
// would load for that service (RouteTable::trace), rendered as text. It lives beside the
// router, not in config/, because it is a reading of the router: config/ stays below
// proxy/ (see docs/design.md, "explain is the router's reading").

#include "config/model.h"
#include "config/plan.h"
#include "config/plan_text.h"

namespace veer {

/**
 * Which rule a request matches, why each earlier rule does not, and where each of the
 * matching rule's destinations goes (lane, ASM fallback, ready pods): exactly as
 * veer-proxy routes it. A kernel-path service is explained as the proxy would route it.
 */
Explanation explain(const Plan& plan, const Config& config, const ExplainRequest& req);

} // namespace veer
