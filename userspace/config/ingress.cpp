// Contour IngressRoute / HTTPProxy and Gateway API HTTPRoutes attached to a Gateway ->
// Plan::virtualHosts. (An HTTPRoute arrives ordered and weighted by loader_gateway.cpp;
// here its backends are checked and each of its hostnames becomes a virtual host.)
//
// Contour semantics kept here (projectcontour.io/docs/<version>/config/request-routing,
// "Upstream Weighting", and .../config/inclusion-delegation):
// - "Weights are relative and do not need to add up to 100": a service gets weight/sum.
//   "If no weights are specified for a given route, it's assumed even distribution across
//   the Services" (Contour's weightedClusters does the same when every weight is 0).
//   "If some weights are specified but others are not, then it's assumed that upstreams
//   without weights have an implicit weight of zero, and thus will not receive traffic."
//   The plan shows percents (largest remainder, so they sum to exactly 100).
// - IngressRoute delegation: a child's route prefixes must lie inside the delegating
//   route's prefix. HTTPProxy includes: the include's conditions are prepended to the
//   child's (prefixes concatenated, headers ANDed).
// - Routes are matched by specificity, not file order: longest prefix first, then the
//   route with more header conditions.
// - A delegated/included object must not have a virtualhost; cycles are errors.

#include "config/ingress.h"
#include "common/strings.h"

#include <algorithm>
#include <map>
#include <set>

namespace veer {
namespace {

using Key = std::pair<Str, Str>; // (namespace, name)

/** "; did you mean X?" for the closest candidate within 2 edits, else "". */
std::string didYouMean(const std::string& word, const std::vector<std::string>& candidates) {
  const std::string best = closest(word, candidates);
  return best.empty() ? "" : "; did you mean " + best + "?";
}

/** Joins an include's prefix and a child's: "/blog" + "/v2" = "/blog/v2", "/" + "/x" = "/x". */
std::string joinPrefix(const std::string& parent, const std::string& child) {
  if (parent.empty() || parent == "/") {
    return child;
  }
  if (child.empty() || child == "/") {
    return parent;
  }
  std::string p = parent.back() == '/' ? parent.substr(0, parent.size() - 1) : parent;
  return p + child;
}

class IngressResolver {
public:
  IngressResolver(const Config& c, Plan& plan, Diagnostics& diags)
      : c_(c), plan_(plan), diag_(diags) {}

  void run() {
    for (const auto& s : c_.services) {
      services_.emplace(Key{s.meta.ns, s.meta.name}, &s);
    }
    for (const auto& o : c_.ingressRoutes) {
      objects_[o.meta.kind].emplace(Key{o.meta.ns, o.meta.name}, &o);
    }
    // Istio VirtualService hosts, as written and as the Service FQDN of a short name.
    for (const auto& vs : c_.virtualServices) {
      for (size_t i = 0; i < vs.hosts.size(); ++i) {
        SourcePos hp = i < vs.hostPos.size() ? vs.hostPos[i] : vs.meta.pos;
        claims_.emplace(asciiLower(vs.hosts[i]), Claim{&vs, hp});
        if (vs.hosts[i].find('.') == std::string::npos) {
          claims_.emplace(asciiLower(vs.hosts[i]) + "." + vs.meta.ns + ".svc.cluster.local",
                          Claim{&vs, hp});
        }
      }
    }
    for (const auto& o : c_.ingressRoutes) {
      if (!o.hosts.empty()) {
        root(o);
      }
    }
    for (const auto& o : c_.ingressRoutes) {
      if (o.hosts.empty() && reached_.count(&o) == 0) {
        diag_.warning(o.meta.pos, o.meta.ref(), "",
                      "no root " + o.meta.kind + " delegates to it (orphaned); ignored");
      }
    }
    std::sort(plan_.virtualHosts.begin(), plan_.virtualHosts.end(),
              [](const PlanVirtualHost& a, const PlanVirtualHost& b) { return a.host < b.host; });
  }

private:
  struct Claim {
    const VirtualService* by;
    SourcePos pos;
  };

  /** Every host of a root object: Contour has one (virtualhost.fqdn), an HTTPRoute its hostnames.
   */
  void root(const VirtualService& o) {
    reached_.insert(&o);
    for (size_t i = 0; i < o.hosts.size(); ++i) {
      rootHost(o, i);
    }
  }

  void rootHost(const VirtualService& o, size_t i) {
    const std::string& host = o.hosts[i];
    const SourcePos hp = i < o.hostPos.size() ? o.hostPos[i] : o.meta.pos;
    const std::string field = i < o.hostFields.size() ? o.hostFields[i] : "spec.virtualhost.fqdn";
    auto [it, inserted] = claims_.emplace(asciiLower(host), Claim{&o, hp});
    if (!inserted && o.meta.kind == "HTTPRoute" && it->second.by->meta.kind == "HTTPRoute") {
      // Gateway API: several HTTPRoutes may serve one hostname; their rules merge, ordered
      // by precedence across all of them.
      auto at = vhostAt_.find(asciiLower(host));
      ThinVector<PlanRoute> more;
      std::vector<const VirtualService*> stack{&o};
      if (expand(o, nullptr, stack, more) && at != vhostAt_.end()) {
        PlanVirtualHost& vh = plan_.virtualHosts[at->second];
        vh.source = vh.source + ", " + o.meta.ref();
        vh.routes.insert(vh.routes.end(), more.begin(), more.end());
        orderHttpRouteRules(vh.routes);
      }
      return;
    }
    if (!inserted) {
      diag_.error(hp, o.meta.ref(), field,
                  "host " + host + " is also claimed by " + it->second.by->meta.ref() + " at " +
                      it->second.pos.str() + "; one host must have one routing object");
      return;
    }
    PlanVirtualHost vh;
    vh.host = host;
    vh.source = o.meta.ref();
    vh.tlsSecret = o.tlsSecret;
    std::vector<const VirtualService*> stack{&o};
    bool ok = expand(o, nullptr, stack, vh.routes);
    if (!ok) {
      return;
    }
    if (o.meta.kind != "HTTPRoute") { // an HTTPRoute's rules are in Gateway API precedence already
      std::stable_sort(vh.routes.begin(), vh.routes.end(),
                       [](const PlanRoute& a, const PlanRoute& b) {
                         auto rank = [](const PlanRoute& r) {
                           if (r.rule->matches.empty()) {
                             return std::make_pair(size_t{0}, size_t{0});
                           }
                           const HttpMatch& m = r.rule->matches[0];
                           return std::make_pair(m.uri ? m.uri->value.size() : 0,
                                                 m.headers.size() + m.withoutHeaders.size());
                         };
                         return rank(a) > rank(b);
                       });
    }
    vhostAt_[asciiLower(host)] = plan_.virtualHosts.size();
    plan_.virtualHosts.push_back(std::move(vh));
  }

  /**
   * Appends o's rules to out, children inlined. parent is the delegating rule (null for
   * the root). False on any error.
   */
  bool expand(const VirtualService& o, const Route* parent,
              std::vector<const VirtualService*>& stack, ThinVector<PlanRoute>& out) {
    const bool proxy = o.meta.kind == "HTTPProxy";
    bool ok = true;
    for (const Route& r : o.http) {
      Route merged = r;
      if (parent != nullptr && !parent->matches.empty()) {
        const HttpMatch& pm = parent->matches[0];
        HttpMatch m = r.matches.empty() ? HttpMatch{} : r.matches[0];
        if (r.matches.empty()) {
          m.pos = r.pos;
          m.field = r.field;
        }
        const std::string pp = pm.uri ? pm.uri->value : "";
        const std::string cp = m.uri ? m.uri->value : "";
        if (proxy) {
          if (!pp.empty()) {
            StringMatch sm = pm.uri ? *pm.uri : StringMatch{};
            sm.op = StringMatch::Op::kPrefix;
            sm.value = joinPrefix(pp, cp);
            m.uri = sm;
          }
          m.headers.insert(m.headers.begin(), pm.headers.begin(), pm.headers.end());
          m.withoutHeaders.insert(m.withoutHeaders.begin(), pm.withoutHeaders.begin(),
                                  pm.withoutHeaders.end());
        } else if (!pp.empty() && cp.rfind(pp, 0) != 0) {
          diag_.error(m.uri ? m.uri->pos : r.pos, o.meta.ref(), r.field + ".match",
                      "path " + (cp.empty() ? std::string("(none)") : cp) +
                          " is outside the delegating route's prefix " + pp + " (" + pm.pos.str() +
                          "); Contour requires a delegated route to match inside it");
          ok = false;
          continue;
        }
        merged.matches = {m};
      }
      if (!r.delegate) {
        ok = destinations(o, merged) && ok;
        out.push_back(PlanRoute{o.meta.ref(), std::make_shared<const Route>(std::move(merged))});
        continue;
      }
      const std::string what = proxy ? "includes" : "delegate";
      const std::string ns = r.delegate->ns.empty() ? o.meta.ns : r.delegate->ns;
      const auto& byKey = objects_[o.meta.kind];
      auto it = byKey.find(Key{ns, r.delegate->name});
      if (it == byKey.end()) {
        std::vector<std::string> names;
        for (const auto& [k, v] : byKey) {
          if (k.first == ns) {
            names.push_back(k.second);
          }
        }
        diag_.error(r.delegate->pos, o.meta.ref(), r.field + (proxy ? ".name" : ".delegate"),
                    o.meta.kind + " " + ns + "/" + r.delegate->name + " not found" +
                        didYouMean(r.delegate->name, names));
        ok = false;
        continue;
      }
      const VirtualService* child = it->second;
      reached_.insert(child);
      if (std::find(stack.begin(), stack.end(), child) != stack.end()) {
        std::string chain;
        for (const VirtualService* s : stack) {
          chain += s->meta.ns + "/" + s->meta.name + " -> ";
        }
        diag_.error(r.delegate->pos, o.meta.ref(), r.field + (proxy ? ".name" : ".delegate"),
                    "delegation cycle: " + chain + child->meta.ns + "/" + child->meta.name);
        ok = false;
        continue;
      }
      if (!child->hosts.empty()) {
        diag_.error(r.delegate->pos, o.meta.ref(), r.field + (proxy ? ".name" : ".delegate"),
                    child->meta.ref() + " has a virtualhost (" + child->hosts[0] +
                        "); only an object without one can be the target of " + what);
        ok = false;
        continue;
      }
      stack.push_back(child);
      ok = expand(*child, &merged, stack, out) && ok;
      stack.pop_back();
    }
    return ok;
  }

  /** Checks the services of r (in o's namespace) and turns weights into percents. */
  bool destinations(const VirtualService& o, Route& r) {
    bool ok = true;
    for (RouteDestination& d : r.destinations) {
      // Contour names a Service of the object's namespace; an HTTPRoute backendRef arrives
      // as "name.ns" (Service names have no dots).
      std::string ns = o.meta.ns;
      if (size_t dot = d.host.find('.'); dot != std::string::npos) {
        ns = d.host.substr(dot + 1);
        d.host = d.host.substr(0, dot);
      }
      auto it = services_.find(Key{ns, d.host});
      if (it == services_.end()) {
        std::vector<std::string> inNs;
        for (const auto& [k, sv] : services_) {
          if (k.first == ns) {
            inNs.push_back(k.second);
          }
        }
        diag_.error(d.pos, o.meta.ref(), d.field + ".name",
                    "Service " + ns + "/" + d.host + " not found" + didYouMean(d.host, inNs));
        d.host = d.host + "." + ns;
        ok = false;
        continue;
      }
      const Service& svc = *it->second;
      if (d.port != 0 && std::none_of(svc.ports.begin(), svc.ports.end(),
                                      [&](const ServicePort& p) { return p.port == d.port; })) {
        std::string ports;
        for (const auto& p : svc.ports) {
          ports += (ports.empty() ? "" : ", ") + std::to_string(p.port);
        }
        std::string msg = "port: " + std::to_string(d.port) + " is not a port of Service " + ns +
                          "/" + d.host + " (ports: " + (ports.empty() ? "none" : ports) + ")";
        // The classic slip (seed 004): a weight written under the key port.
        if (!d.weight && d.port <= 100) {
          msg += "; did you mean weight: " + std::to_string(d.port) + "?";
        }
        diag_.error(d.portPos.line != 0 ? d.portPos : d.pos, o.meta.ref(), d.field + ".port", msg);
        ok = false;
      }
      d.host = d.host + "." + ns;
    }
    if (!ok) {
      return false;
    }
    // Contour weighting: relative; none set (or all 0) = even split; unset among set = 0.
    // (HTTPRoute weights arrive as percents already: every one is set.)
    std::vector<int64_t> w;
    for (const auto& d : r.destinations) {
      w.push_back(d.weight.value_or(0));
    }
    std::vector<int64_t> pct = toPercent(w);
    for (size_t i = 0; i < w.size(); ++i) {
      r.destinations[i].weight = pct[i];
    }
    return true;
  }

  const Config& c_;
  Plan& plan_;
  DiagnosticSink diag_;
  std::map<Key, const Service*> services_;
  std::map<std::string, std::map<Key, const VirtualService*>> objects_; // by kind
  std::map<std::string, Claim> claims_; // lowercased host -> first claim
  std::set<const VirtualService*> reached_;
  std::map<std::string, size_t> vhostAt_; // lowercased host -> index in plan_.virtualHosts
};

} // namespace

void resolveIngress(const Config& config, Plan& plan, Diagnostics& diags) {
  IngressResolver(config, plan, diags).run();
}

} // namespace veer
