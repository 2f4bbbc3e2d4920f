// The resolver's validation: each Service's rules (delegates inlined) checked against
// the indexes, and classified by the path that can serve them (kernel or L7).

#include <algorithm>

#include "config/resolve_internal.h"

namespace veer::resolver {
namespace {

/**
 * A destination's field as the object's format spells it: Istio's suffix
 * (".destination.host", ".destination.port.number", ".weight") or, for a Gateway API
 * backendRef, ".name" / ".port" / ".weight".
 */
std::string destField(const VirtualService& vs, const std::string& field,
                      const std::string& istio) {
  if (vs.meta.kind != "HTTPRoute") {
    return field + istio;
  }
  if (istio == ".destination.host") {
    return field + ".name";
  }
  if (istio == ".destination.port.number") {
    return field + ".port";
  }
  if (istio == ".route") {
    return field + ".backendRefs";
  }
  return field + istio;
}

std::string portList(const Service& svc) {
  std::string out;
  for (const auto& p : svc.ports) {
    out += (out.empty() ? "" : ", ") + std::to_string(p.port);
  }
  return out.empty() ? "none" : out;
}

} // namespace

HttpMatch Resolver::mergeMatch(const HttpMatch& parent, const HttpMatch& child) {
  HttpMatch m = parent;
  m.field = child.field.empty() ? parent.field : child.field;
  m.pos = child.pos;
  if (!child.name.empty()) {
    m.name = parent.name.empty() ? child.name : Str(parent.name + "." + child.name);
  }
  for (auto f : {&HttpMatch::uri, &HttpMatch::scheme, &HttpMatch::method, &HttpMatch::authority}) {
    if (child.*f) {
      m.*f = child.*f;
    }
  }
  m.headers.insert(m.headers.end(), child.headers.begin(), child.headers.end());
  m.withoutHeaders.insert(m.withoutHeaders.end(), child.withoutHeaders.begin(),
                          child.withoutHeaders.end());
  m.queryParams.insert(m.queryParams.end(), child.queryParams.begin(), child.queryParams.end());
  for (const auto& [k, v] : child.sourceLabels) {
    m.sourceLabels[k] = v;
  }
  if (!child.sourceNamespace.empty()) {
    m.sourceNamespace = child.sourceNamespace;
  }
  if (child.port != 0) {
    m.port = child.port;
  }
  m.ignoreUriCase = m.ignoreUriCase || child.ignoreUriCase;
  return m;
}

/** The ordered rule list of vs, delegates inlined. False on a delegation error. */
bool Resolver::expand(const VirtualService& vs, ThinVector<PlanRoute>& out) {
  const ThinVector<Route>& rules = vs.http.empty() ? vs.tcp : vs.http;
  bool ok = true;
  for (const Route& r : rules) {
    if (!r.delegate) {
      out.push_back(PlanRoute{vs.meta.ref(), share(r)});
      continue;
    }
    std::string ns = r.delegate->ns.empty() ? vs.meta.ns : r.delegate->ns;
    const VirtualService* child = nullptr;
    if (auto it = vsByKey_.find(Key{ns, r.delegate->name}); it != vsByKey_.end()) {
      child = it->second;
    }
    if (child == nullptr) {
      diag_.error(r.delegate->pos, vs.meta.ref(), r.field + ".delegate",
                  "VirtualService " + ns + "/" + r.delegate->name + " not found");
      ok = false;
      continue;
    }
    if (!child->hosts.empty()) {
      diag_.error(r.delegate->pos, vs.meta.ref(), r.field + ".delegate",
                  "VirtualService " + ns + "/" + r.delegate->name +
                      " has hosts; a delegate VirtualService must not set hosts");
      ok = false;
      continue;
    }
    for (const Route& cr : child->http) {
      if (cr.delegate) {
        diag_.error(cr.delegate->pos, child->meta.ref(), cr.field + ".delegate",
                    "a delegate VirtualService cannot delegate again");
        ok = false;
        continue;
      }
      Route merged = cr;
      if (!r.matches.empty() && !cr.matches.empty()) {
        merged.matches.clear();
        for (const auto& pm : r.matches) {
          for (const auto& cm : cr.matches) {
            merged.matches.push_back(mergeMatch(pm, cm));
          }
        }
      } else if (!r.matches.empty()) {
        merged.matches = r.matches;
      }
      out.push_back(PlanRoute{child->meta.ref(), std::make_shared<const Route>(std::move(merged))});
    }
  }
  return ok;
}

std::string Resolver::matchWhat(const KeyMatch& k) {
  return k.key + (k.present ? " present" : std::string(" ") + k.match.opName());
}

/** Path findings of one rule (and whether any needs L7). */
void Resolver::classify(const PlanRoute& pr, const std::string& ns, std::vector<PlanWhy>& l7,
                        std::vector<PlanWhy>& kernel) {
  const Route& r = *pr.rule;
  const std::string& at = r.field;
  for (const HttpMatch& m : r.matches) {
    const std::string& mf = m.field;
    for (const auto& [name, opt] : {std::pair{"uri", &m.uri},
                                    {"scheme", &m.scheme},
                                    {"method", &m.method},
                                    {"authority", &m.authority}}) {
      if (*opt) {
        l7.push_back({pr.source, mf + "." + name + ": " + (*opt)->opName() + " " + (*opt)->value});
      }
    }
    for (const auto& [name, list] : {std::pair{"headers", &m.headers},
                                     {"withoutHeaders", &m.withoutHeaders},
                                     {"queryParams", &m.queryParams}}) {
      for (const KeyMatch& k : *list) {
        l7.push_back({pr.source, mf + "." + name + ": " + matchWhat(k)});
      }
    }
    if (!m.sourceLabels.empty() || !m.sourceNamespace.empty()) {
      std::string what;
      for (const auto& [k, v] : m.sourceLabels) {
        what += (what.empty() ? "" : ",") + k + "=" + v;
      }
      kernel.push_back(
          {pr.source, mf +
                          (m.sourceLabels.empty() ? ".sourceNamespace: " + m.sourceNamespace
                                                  : ".sourceLabels: " + what) +
                          " (decided per client pod)"});
    }
  }
  auto headerWhy = [&](const HeaderActions& h, const std::string& f) {
    for (const auto& [dir, ops] : {std::pair{"request", &h.request}, {"response", &h.response}}) {
      std::string what;
      for (const auto& [k, v] : ops->set) {
        what += (what.empty() ? "" : ", ") + std::string("set ") + k;
      }
      for (const auto& [k, v] : ops->add) {
        what += (what.empty() ? "" : ", ") + std::string("add ") + k;
      }
      for (const auto& k : ops->remove) {
        what += (what.empty() ? "" : ", ") + std::string("remove ") + k;
      }
      if (!what.empty()) {
        // Said as the source format says it: Istio headers.request/response, Gateway API
        // Request/ResponseHeaderModifier filters.
        const bool gatewayApi = pr.source.starts_with("HTTPRoute ");
        const std::string where =
            gatewayApi
                ? f + ".filters: " + (std::string(dir) == "request" ? "Request" : "Response") +
                      "HeaderModifier "
                : f + ".headers." + dir + ": ";
        l7.push_back({pr.source, where + what});
      }
    }
  };
  headerWhy(*r.headers, r.field);
  const RouteActions& a = *r.actions;
  if (!a.rewriteUri.empty() || !a.rewriteAuthority.empty()) {
    l7.push_back({pr.source, at + ".rewrite"});
  }
  if (!a.timeout.empty()) {
    l7.push_back({pr.source, at + ".timeout: " + a.timeout});
  }
  if (a.retryAttempts >= 0 || !a.retryOn.empty() || !a.retryPerTryTimeout.empty()) {
    l7.push_back({pr.source, at + ".retries"});
  }
  if (a.mirror) {
    l7.push_back({pr.source, at + ".mirror: " + a.mirror->host});
  }
  if (!a.faultDelay.empty() || a.faultAbortStatus != 0) {
    l7.push_back({pr.source, at + ".fault"});
  }
  if (!a.redirect.empty()) {
    l7.push_back({pr.source, at + ".redirect"});
  }
  if (a.directResponseStatus != 0) {
    l7.push_back({pr.source, at + ".directResponse"});
  }
  for (const RouteDestination& d : r.destinations) {
    headerWhy(*d.headers, d.field);
    if (!d.subset.empty() && d.subset[0] == '$') {
      const TrafficLabel* owner = nullptr;
      const TrafficLabel::Label* l = trafficLabel(d.subset.substr(1), ns, &owner);
      if (l == nullptr) {
        continue; // reported by validation
      }
      for (const auto& src : l->valueFrom) {
        if (src.kind == TrafficLabel::Source::Kind::kContext) {
          l7.push_back({pr.source, d.field + ".destination.subset: " + d.subset +
                                       " from request header " + src.value + " (" +
                                       owner->meta.ref() + ")"});
        } else if (src.kind == TrafficLabel::Source::Kind::kLocalLabel) {
          kernel.push_back({pr.source, d.field + ".destination.subset: " + d.subset +
                                           " from the client pod's label " + src.value + " (" +
                                           owner->meta.ref() + ")"});
        }
      }
    }
  }
}

void Resolver::indexVirtualServices() {
  for (const auto& vs : c_.virtualServices) {
    for (size_t i = 0; i < vs.hosts.size(); ++i) {
      const std::string& host = vs.hosts[i];
      SourcePos hp = i < vs.hostPos.size() ? vs.hostPos[i] : vs.meta.pos;
      std::string field = i < vs.hostFields.size() ? vs.hostFields[i].str()
                                                   : "spec.hosts[" + std::to_string(i) + "]";
      Key k;
      if (lookup(host, vs.meta.ns, &k) == nullptr) {
        diag_.error(hp, vs.meta.ref(), field, unknownHost(host, vs.meta.ns));
        continue;
      }
      auto claimed = claims_.find(k);
      if (claimed != claims_.end()) {
        if (claimed->second.first == &vs) {
          continue; // two spellings of one host in the same VirtualService
        }
        if (vs.meta.kind == "HTTPRoute" && claimed->second.first->meta.kind == "HTTPRoute") {
          // Gateway API: several HTTPRoutes may attach to one Service; their rules merge,
          // ordered by precedence across all of them.
          ServiceRules more;
          const bool ok = decide(vs, k, hp, field, more);
          auto it = serviceRules_.find(k);
          if (!ok || it == serviceRules_.end()) {
            failed_.insert(k);
            serviceRules_.erase(k);
            continue;
          }
          ServiceRules& dec = it->second;
          dec.routes.insert(dec.routes.end(), more.routes.begin(), more.routes.end());
          dec.l7.insert(dec.l7.end(), more.l7.begin(), more.l7.end());
          dec.kernel.insert(dec.kernel.end(), more.kernel.begin(), more.kernel.end());
          orderHttpRouteRules(dec.routes);
          continue;
        }
        diag_.error(hp, vs.meta.ref(), field,
                    "Service " + keyStr(k) + " is already routed by " +
                        claimed->second.first->meta.ref() + " at " + claimed->second.second.str());
        continue;
      }
      claims_.emplace(k, std::make_pair(&vs, hp));
      ServiceRules dec;
      if (decide(vs, k, hp, field, dec)) {
        serviceRules_[k] = std::move(dec);
      } else {
        failed_.insert(k);
      }
    }
  }
}

/** The rules of vs for service k, validated and classified. False on any error. */
bool Resolver::decide(const VirtualService& vs, const Key& k, const SourcePos& hp,
                      const std::string& field, ServiceRules& dec) {
  dec.vs = &vs;
  bool ok = expand(vs, dec.routes);
  bool sawCatchAll = false;
  for (const PlanRoute& pr : dec.routes) {
    if (sawCatchAll) {
      diag_.warning(pr.rule->pos, pr.source, pr.rule->field,
                    "unreachable: an earlier rule matches every request");
    }
    sawCatchAll = sawCatchAll || pr.rule->matches.empty();
    if (pr.rule->destinations.empty() &&
        (pr.rule->actions->redirect.size() != 0 || pr.rule->actions->directResponseStatus != 0)) {
      continue;
    }
    const VirtualService* owner = &vs;
    if (auto it = vsByRef_.find(pr.source); it != vsByRef_.end()) {
      owner = it->second;
    }
    ok = validateRoute(*owner, *pr.rule, k) && ok;
  }
  for (const PlanRoute& pr : dec.routes) {
    classify(pr, vs.meta.ns, dec.l7, dec.kernel);
  }
  if (dec.routes.empty()) {
    diag_.warning(hp, vs.meta.ref(), field,
                  "no route without match conditions for this host; all endpoints get the traffic");
  }
  return ok;
}

/** The port of dsvc a destination reaches: its port, or the only one, or sp's number. */
const ServicePort* Resolver::destPort(const Service& dsvc, uint16_t port, uint16_t fromPort) {
  for (const auto& p : dsvc.ports) {
    if (p.port == (port != 0 ? port : fromPort)) {
      return &p;
    }
  }
  return port == 0 && dsvc.ports.size() == 1 ? &dsvc.ports[0] : nullptr;
}

/**
 * Checks hosts, weights, subsets and ports of a route for service k. A destination may
 * be another Service (its endpoints serve k's address), with that Service's subsets.
 */
bool Resolver::validateRoute(const VirtualService& vs, const Route& r, const Key& k) {
  const std::string obj = vs.meta.ref();
  bool ok = true;
  if (r.destinations.empty()) {
    diag_.error(r.pos, obj, destField(vs, r.field, ".route"), "route has no destinations");
    return false;
  }
  const Service* svc = services_.at(k);
  auto checkSubset = [&](const Key& sk, const std::string& subset, const SourcePos& pos,
                         const std::string& f) {
    if (subset.empty()) {
      return;
    }
    if (subset[0] == '$') {
      const TrafficLabel* owner = nullptr;
      if (trafficLabel(subset.substr(1), vs.meta.ns, &owner) == nullptr) {
        diag_.error(pos, obj, f,
                    "subset " + subset +
                        " names a traffic label, but no TrafficLabel in namespace " + vs.meta.ns +
                        " or istio-system defines label " + subset.substr(1));
        ok = false;
      }
      return;
    }
    const DestinationRule* dr = nullptr;
    if (auto it = drs_.find(sk); it != drs_.end()) {
      dr = it->second;
    }
    if (dr == nullptr) {
      diag_.error(pos, obj, f,
                  "subset " + subset + " used but no DestinationRule defines subsets for " +
                      keyStr(sk));
      ok = false;
    } else if (std::none_of(dr->subsets.begin(), dr->subsets.end(),
                            [&](const Subset& s) { return s.name == subset; })) {
      std::string known;
      for (const auto& s : dr->subsets) {
        known += (known.empty() ? "" : ", ") + s.name;
      }
      diag_.error(pos, obj, f,
                  "subset " + subset + " not defined in DestinationRule " + dr->meta.ns + "/" +
                      dr->meta.name + "; known: " + (known.empty() ? "(none)" : known));
      ok = false;
    }
  };
  bool anyMissing = false;
  int64_t sum = 0;
  for (const auto& d : r.destinations) {
    Key dk = k;
    const Service* dsvc = lookup(d.host, vs.meta.ns, &dk);
    if (dsvc == nullptr) {
      diag_.error(d.pos, obj, destField(vs, d.field, ".destination.host"),
                  unknownHost(d.host, vs.meta.ns));
      ok = false;
    }
    if (d.weight) {
      if (*d.weight < 0 || *d.weight > 100) {
        diag_.error(d.pos, obj, d.field + ".weight",
                    "weight " + std::to_string(*d.weight) + " out of range 0..100");
        ok = false;
      }
      sum += *d.weight;
    } else {
      anyMissing = true;
      if (r.destinations.size() > 1) {
        diag_.error(d.pos, obj, d.field + ".weight",
                    "missing weight; every destination needs one when a route has several");
        ok = false;
      }
    }
    checkSubset(dk, d.subset, d.pos, d.field + ".destination.subset");
    if (d.fallback) {
      Key fk;
      if (lookup(d.fallback->host, vs.meta.ns, &fk) == nullptr) {
        diag_.error(d.fallback->pos, obj, d.field + ".fallback.target.host",
                    unknownHost(d.fallback->host, vs.meta.ns));
        ok = false;
      } else if (fk != dk) {
        diag_.error(d.fallback->pos, obj, d.field + ".fallback.target.host",
                    "fallback to another service (" + keyStr(fk) + ") than the destination's (" +
                        keyStr(dk) + ") is not supported yet");
        ok = false;
      } else if (!d.fallback->subset.empty() && d.fallback->subset[0] == '$') {
        diag_.error(d.fallback->pos, obj, d.field + ".fallback.target.subset",
                    "a fallback target must name a subset, not a traffic label");
        ok = false;
      } else {
        checkSubset(fk, d.fallback->subset, d.fallback->pos, d.field + ".fallback.target.subset");
      }
    }
    if (dsvc == nullptr) {
      continue;
    }
    const std::string pf = destField(vs, d.field, ".destination.port.number");
    const SourcePos& pp = d.portPos.line != 0 ? d.portPos : d.pos;
    if (d.port != 0 && std::none_of(dsvc->ports.begin(), dsvc->ports.end(),
                                    [&](const ServicePort& p) { return p.port == d.port; })) {
      diag_.error(pp, obj, pf,
                  "Service " + keyStr(dk) + " has no port " + std::to_string(d.port) +
                      " (ports: " + portList(*dsvc) + ")");
      ok = false;
    } else if (dk != k && d.port == 0) {
      for (const auto& sp : svc->ports) {
        if (destPort(*dsvc, 0, sp.port) == nullptr) {
          diag_.error(d.pos, obj, pf,
                      "Service " + keyStr(dk) + " has no port " + std::to_string(sp.port) +
                          " and several ports (" + portList(*dsvc) + "); name the port to send " +
                          keyStr(k) + " traffic to");
          ok = false;
          break;
        }
      }
    }
  }
  if (const auto& m = r.actions->mirror) {
    // A copy Envoy cannot send (no such cluster) is simply not sent: a warning, and the
    // route table leaves the mirror out.
    Key mk = k;
    if (lookup(m->host, vs.meta.ns, &mk) == nullptr) {
      diag_.warning(m->pos, obj, m->field + ".host",
                    unknownHost(m->host, vs.meta.ns) + "; nothing is mirrored");
    } else if (!m->subset.empty()) {
      auto dr = drs_.find(mk);
      bool defined = m->subset[0] != '$' && dr != drs_.end() &&
                     std::any_of(dr->second->subsets.begin(), dr->second->subsets.end(),
                                 [&](const Subset& s) { return s.name == m->subset; });
      if (!defined) {
        diag_.warning(m->pos, obj, m->field + ".subset",
                      "subset " + m->subset + " is not defined for " + keyStr(mk) +
                          "; nothing is mirrored");
      }
    }
  }
  bool single = r.destinations.size() == 1 && anyMissing;
  if (ok && !single && !anyMissing && sum != 100) {
    diag_.error(r.pos, obj, destField(vs, r.field, ".route"),
                "weights sum to " + std::to_string(sum) + ", expected 100");
    ok = false;
  }
  return ok;
}

} // namespace veer::resolver
