// Config -> Plan (resolve.h): the resolver's three steps run in order.

#include "config/resolve.h"

#include <algorithm>

#include "config/ingress.h"
#include "config/resolve_internal.h"

namespace veer {
namespace resolver {

ResolveResult Resolver::run() {
  index();
  indexDestinationRules();
  indexVirtualServices();
  build();
  resolveIngress(c_, result_.plan, result_.diags);
  std::sort(result_.plan.services.begin(), result_.plan.services.end(),
            [](const PlanService& a, const PlanService& b) {
              return std::tie(a.ns, a.name, a.addr, a.port, a.proto) <
                     std::tie(b.ns, b.name, b.addr, b.port, b.proto);
            });
  return std::move(result_);
}

} // namespace resolver

ResolveResult resolve(const Config& config) {
  return resolver::Resolver(config, nullptr).run();
}

ResolveResult resolve(std::shared_ptr<const Config> config) {
  const Config& c = *config;
  return resolver::Resolver(c, std::move(config)).run();
}

struct SubsetIndex::Impl {
  explicit Impl(const Config& config) : index(config, nullptr) { index.indexEndpoints(); }
  resolver::Resolver index;
};

SubsetIndex::SubsetIndex(const Config& config) : impl_(std::make_unique<Impl>(config)) {}

SubsetIndex::~SubsetIndex() = default;

std::vector<SubsetEndpoints> SubsetIndex::of(const PlanService& ps, uint16_t port) {
  return impl_->index.subsets(ps, port);
}

const TrafficLabel::Label* findTrafficLabel(const Config& config, const std::string& name,
                                            const std::string& ns, const TrafficLabel** owner) {
  const TrafficLabel::Label* found = nullptr;
  for (const auto& tl : config.trafficLabels) {
    if (tl.meta.ns != ns && tl.meta.ns != "istio-system") {
      continue;
    }
    for (const auto& l : tl.labels) {
      if (l.name == name && (found == nullptr || tl.meta.ns == ns)) {
        found = &l;
        if (owner != nullptr) {
          *owner = &tl;
        }
      }
    }
  }
  return found;
}

} // namespace veer
