// The resolver's indexes: Services, Pods by label, EndpointSlices, VirtualServices and
// DestinationRules by (namespace, name), built once so resolution stays linear in the
// size of the Config.

#include <algorithm>

#include "config/resolve_internal.h"

namespace veer::resolver {

std::optional<KeyView> parseHost(std::string_view host, std::string_view ns) {
  std::string_view parts[6];
  size_t n = 0;
  for (size_t start = 0;;) {
    const size_t dot = host.find('.', start);
    std::string_view part = host.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (part.empty() || part == "*" || n == 6) {
      return std::nullopt;
    }
    parts[n++] = part;
    if (dot == std::string_view::npos) {
      break;
    }
    start = dot + 1;
  }
  switch (n) {
  case 1:
    return std::pair{ns, parts[0]};
  case 2:
    return std::pair{parts[1], parts[0]};
  case 3:
    if (parts[2] == "svc") {
      return std::pair{parts[1], parts[0]};
    }
    return std::nullopt;
  case 5:
    if (parts[2] == "svc" && parts[3] == "cluster" && parts[4] == "local") {
      return std::pair{parts[1], parts[0]};
    }
    return std::nullopt;
  default:
    return std::nullopt;
  }
}

bool matches(const Labels& have, const Labels& want) {
  for (const auto& [k, v] : want) {
    auto it = have.find(k);
    if (it == have.end() || it->second != v) {
      return false;
    }
  }
  return true;
}

void Resolver::index() {
  for (const auto& s : c_.services) {
    if (services_.emplace(Key{s.meta.ns, s.meta.name}, &s).second) {
      ordered_.push_back(&s);
    }
  }
  std::sort(ordered_.begin(), ordered_.end(), [](const Service* a, const Service* b) {
    return std::tie(a->meta.ns, a->meta.name) < std::tie(b->meta.ns, b->meta.name);
  });
  for (const auto& p : c_.pods) {
    pods_.emplace(Key{p.meta.ns, p.meta.name}, &p);
    for (const auto& [k, v] : p.meta.labels) {
      podsByLabel_[LabelKey{p.meta.ns, k, v}].push_back(&p);
    }
  }
  for (const auto& es : c_.endpointSlices) {
    slices_[Key{es.meta.ns, es.serviceName}].push_back(&es);
  }
  for (const auto& vs : c_.virtualServices) {
    vsByRef_.emplace(Str(vs.meta.ref()), &vs); // the plan's PlanRoute::source, shared
    if (vs.meta.kind == "VirtualService") {    // delegates are Istio VirtualServices
      vsByKey_.emplace(Key{vs.meta.ns, vs.meta.name}, &vs);
    }
  }
}

/** Pods of namespace ns whose labels include selector (non-empty), in config order. */
std::vector<const Pod*> Resolver::selected(const std::string& ns, const Labels& selector) {
  // Start from the selector label with the fewest pods, then check the others.
  const ThinVector<const Pod*>* fewest = nullptr;
  for (const auto& [k, v] : selector) {
    auto it = podsByLabel_.find(LabelKeyView{ns, k, v});
    if (it == podsByLabel_.end()) {
      return {};
    }
    if (fewest == nullptr || it->second.size() < fewest->size()) {
      fewest = &it->second;
    }
  }
  std::vector<const Pod*> out;
  for (const Pod* p : *fewest) {
    if (matches(p->meta.labels, selector)) {
      out.push_back(p);
    }
  }
  return out;
}

/** "host X is not a known Service", with a "did you mean" among the namespace's Services. */
std::string Resolver::unknownHost(const std::string& host, const std::string& ns) {
  std::string msg = "host " + host + " is not a known Service";
  auto k = parseHost(host, ns);
  if (!k) {
    return msg;
  }
  const std::string name(k->second);
  std::vector<std::string> names;
  for (const Service* s : ordered_) {
    if (s->meta.ns == k->first) {
      names.push_back(s->meta.name);
    }
  }
  const std::string best = closest(name, names);
  return best.empty() ? msg + " in namespace " + std::string(k->first)
                      : msg + "; did you mean " + best + "?";
}

const Service* Resolver::lookup(const std::string& host, const std::string& ns, Key* key) {
  auto k = parseHost(host, ns);
  if (!k) {
    return nullptr;
  }
  auto it = services_.find(*k);
  if (it == services_.end()) {
    return nullptr;
  }
  if (key != nullptr) {
    *key = it->first;
  }
  return it->second;
}

void Resolver::indexDestinationRules() {
  for (const auto& dr : c_.destinationRules) {
    Key k;
    if (lookup(dr.host, dr.meta.ns, &k) == nullptr) {
      diag_.error(dr.hostPos, dr.meta.ref(), "spec.host", unknownHost(dr.host, dr.meta.ns));
      continue;
    }
    auto [it, inserted] = drs_.emplace(k, &dr);
    if (!inserted) {
      diag_.error(dr.hostPos, dr.meta.ref(), "spec.host",
                  "Service " + keyStr(k) + " already has subsets from " + it->second->meta.ref() +
                      " at " + it->second->hostPos.str());
    }
  }
}

const TrafficLabel::Label* Resolver::trafficLabel(const std::string& name, const std::string& ns,
                                                  const TrafficLabel** owner) {
  return findTrafficLabel(c_, name, ns, owner);
}

/** The indexes subsets() reads (run() builds its own). */
void Resolver::indexEndpoints() {
  index();
  indexDestinationRules();
}

} // namespace veer::resolver
