// Plan -> route table: the L7 services of a Plan and the pods they need, as a RouteSpec
// (compilePlan), and a RouteSpec compiled into the routing form (compileRouteTable).

#include <algorithm>
#include <cmath>
#include <set>

#include "common/strings.h"
#include "compiler/compiler.h"
#include "compiler/maglev.h"
#include "config/plan_text.h"
#include "config/resolve.h"
#include "proxy/router_table.h"
#include "veer/maps.h"

namespace veer::proxy {
namespace {

using Cluster = CompiledTable::Cluster;
using Dest = CompiledTable::Dest;
using Rule = CompiledTable::Rule;
using Service = CompiledTable::Service;
using Pod = CompiledTable::Pod;

/** "5s", "100ms", "1.5s", "1m", "1h" -> milliseconds; nullopt when not a duration. */
std::optional<uint32_t> durationMs(const std::string& s) {
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) {
    ++i;
  }
  if (i == 0) {
    return std::nullopt;
  }
  char* end = nullptr;
  std::string num = s.substr(0, i);
  double v = std::strtod(num.c_str(), &end);
  if (end != num.c_str() + num.size()) {
    return std::nullopt;
  }
  std::string unit = s.substr(i);
  double ms = 0;
  if (unit == "h") {
    ms = v * 3600e3;
  } else if (unit == "m") {
    ms = v * 60e3;
  } else if (unit == "s") {
    ms = v * 1e3;
  } else if (unit == "ms") {
    ms = v;
  } else if (unit == "us" || unit == "µs") {
    ms = v / 1e3;
  } else if (unit == "ns") {
    ms = v / 1e6;
  } else {
    return std::nullopt;
  }
  if (!(ms >= 0) || ms > 4294967295.0) {
    return std::nullopt;
  }
  return static_cast<uint32_t>(std::ceil(ms));
}

uint32_t ppm(double percent) {
  if (percent < 0) {
    return 1000000; // unset: Istio's default is every request
  }
  return static_cast<uint32_t>(std::llround(std::min(percent, 100.0) * 10000));
}

/** Istio header operations as Envoy applies them: removals first, then set, then add. */
void appendEdits(const HeaderOps& ops, std::vector<HeaderEdit>& out) {
  for (const auto& k : ops.remove) {
    out.push_back(HeaderEdit{HeaderEdit::Op::kRemove, asciiLower(k), ""});
  }
  for (const auto& [k, v] : ops.set) {
    out.push_back(HeaderEdit{HeaderEdit::Op::kSet, asciiLower(k), v});
  }
  for (const auto& [k, v] : ops.add) {
    out.push_back(HeaderEdit{HeaderEdit::Op::kAdd, asciiLower(k), v});
  }
}

/** Splits RouteActions.redirect ("uri=/x,authority=h,scheme=https") into its parts. */
void parseRedirect(const std::string& r, Rule& out) {
  out.redirect = true;
  std::vector<std::pair<std::string, std::string*>> keys = {{"uri=", &out.redirectUri},
                                                            {"authority=", &out.redirectAuthority},
                                                            {"scheme=", &out.redirectScheme}};
  size_t pos = 0;
  while (pos < r.size()) {
    std::string* target = nullptr;
    size_t start = pos;
    for (auto& [k, t] : keys) {
      if (r.compare(pos, k.size(), k) == 0) {
        target = t;
        start = pos + k.size();
      }
    }
    // A value runs to the next ",key=" (a uri may itself hold commas).
    size_t end = r.size();
    for (auto& [k, t] : keys) {
      size_t at = r.find("," + k, start);
      end = std::min(end, at);
    }
    if (target != nullptr) {
      *target = r.substr(start, end - start);
    }
    pos = end == r.size() ? end : end + 1;
  }
}

/**
 * "ns/name" of the Service a destination host names, as seen from namespace ns ("name",
 * "name.ns", "name.ns.svc.cluster.local"), or "" when that is the routed service itself
 * (or the host is unset).
 */
std::string hostRef(const std::string& host, const std::string& ns, const std::string& selfNs,
                    const std::string& selfName) {
  if (host.empty()) {
    return "";
  }
  const size_t dot = host.find('.');
  const std::string name = host.substr(0, dot);
  std::string hns = ns;
  if (dot != std::string::npos) {
    const size_t end = host.find('.', dot + 1);
    hns = host.substr(dot + 1, end == std::string::npos ? std::string::npos : end - dot - 1);
  }
  return hns == selfNs && name == selfName ? "" : hns + "/" + name;
}

std::string addrPort(const IpAddr& a, uint16_t port) {
  return (a.v4 ? a.str() : "[" + a.str() + "]") + ":" + std::to_string(port);
}

} // namespace

int findCluster(const Service& s, std::string_view service, std::string_view subset,
                uint16_t port) {
  for (size_t i = 0; i < s.clusters.size(); ++i) {
    if (s.clusters[i]->port == port && s.clusters[i]->subset == subset &&
        s.clusters[i]->service == service) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

Status compileRouteTable(RouteSpec spec, CompiledTable* impl) {
  impl->tagHeader = asciiLower(spec.tagHeader);
  std::set<std::string> lanes;
  for (const RouteSpecPod& p : spec.pods) {
    impl->pods[p.ip] = Pod{p.ns, p.name, p.labels};
  }
  for (size_t si = 0; si < spec.services.size(); ++si) {
    const RouteSpecService& ss = spec.services[si];
    const std::string sp = "services[" + std::to_string(si) + "]";
    Service svc;
    svc.id = ss.ns + "/" + ss.name + ":" + std::to_string(ss.port);
    svc.port = ss.port;
    svc.specIndex = si;
    for (size_t ci = 0; ci < ss.clusters.size(); ++ci) {
      const RouteSpecCluster& sc = ss.clusters[ci];
      auto c = std::make_unique<Cluster>();
      c->service = sc.service;
      c->subset = sc.subset;
      c->port = sc.port;
      c->name = (sc.service.empty() ? ss.ns + "/" + ss.name : sc.service) + ":" +
                std::to_string(sc.port) + (sc.subset.empty() ? "" : " " + sc.subset);
      c->endpoints = sc.endpoints;
      if (sc.loadBalancer && sc.loadBalancer->hash != LoadBalancer::Hash::kNone) {
        c->hash = sc.loadBalancer->hash;
        c->hashKey = c->hash == LoadBalancer::Hash::kHeader ? asciiLower(sc.loadBalancer->hashKey)
                                                            : sc.loadBalancer->hashKey.str();
        std::vector<std::string> names;
        for (const auto& e : c->endpoints) {
          names.push_back(addrPort(e.addr, e.port));
        }
        c->ring = maglevTable(names, VEER_MAGLEV_SIZE);
        if (c->hash == LoadBalancer::Hash::kCookie && !sc.loadBalancer->cookieTtl.empty()) {
          auto ttl = durationMs(sc.loadBalancer->cookieTtl);
          if (!ttl) {
            return Error{0, sp + ".clusters[" + std::to_string(ci) + "].loadBalancer.ttl: '" +
                                sc.loadBalancer->cookieTtl + "' is not a duration like 10s"};
          }
          // Envoy: a zero ttl makes a session cookie (no Max-Age).
          c->cookieAttrs =
              (*ttl == 0 ? std::string() : "; Max-Age=" + std::to_string(*ttl / 1000)) +
              (sc.loadBalancer->cookiePath.empty() ? std::string()
                                                   : "; Path=" + sc.loadBalancer->cookiePath) +
              "; HttpOnly";
        }
      }
      if (findCluster(svc, sc.service, sc.subset, sc.port) >= 0) {
        return Error{0, sp + ".clusters[" + std::to_string(ci) + "]: service '" + sc.service +
                            "' subset '" + sc.subset + "' port " + std::to_string(sc.port) +
                            " listed twice"};
      }
      if (!sc.subset.empty() && sc.service.empty()) {
        lanes.insert(sc.subset);
      }
      svc.clusters.push_back(std::move(c));
    }
    std::map<std::string, int> labelIndex;
    for (const auto& [name, sources] : ss.labels) {
      labelIndex[name] = static_cast<int>(svc.labels.size());
      svc.labels.push_back(sources);
    }
    for (size_t ri = 0; ri < ss.routes.size(); ++ri) {
      const Route& r = *ss.routes[ri].rule;
      const std::string rp = sp + ".routes[" + std::to_string(ri) + "]";
      auto rule = std::make_unique<Rule>();
      rule->name = ss.routes[ri].source + " " + r.field;
      for (size_t mi = 0; mi < r.matches.size(); ++mi) {
        auto m = CompiledMatch::compile(r.matches[mi]);
        if (!m) {
          return Error{0, rp + ".match[" + std::to_string(mi) + "]: " + m.error().message};
        }
        rule->matches.push_back(std::move(m.value()));
      }
      const RouteActions& a = *r.actions;
      rule->rewritePath = a.rewriteUri;
      rule->rewriteAuthority = a.rewriteAuthority;
      // Istio: a zero timeout turns the timeout off (Envoy's 0), while an unset one keeps
      // the proxy's default; a zero fault delay is simply no delay.
      for (const auto& [what, text, out, zero] :
           {std::tuple{"timeout", &a.timeout, &rule->timeoutMs, kNoTimeout},
            {"perTryTimeout", &a.retryPerTryTimeout, &rule->perTryTimeoutMs, kNoTimeout},
            {"fault.delay", &a.faultDelay, &rule->delayMs, uint32_t{0}}}) {
        if (!text->empty()) {
          auto ms = durationMs(*text);
          if (!ms) {
            return Error{0, rp + "." + what + ": '" + *text + "' is not a duration like 5s"};
          }
          *out = *ms == 0 ? zero : *ms;
        }
      }
      // Istio: an unset retryOn keeps the default policy's conditions and codes.
      rule->retryOn = defaultRetryOn();
      if (!a.retryOn.empty()) {
        Result<RetryOn> on = parseRetryOn(a.retryOn);
        if (!on) {
          return Error{0, rp + ".retryOn: " + on.error().message};
        }
        rule->retryOn = std::move(*on);
      }
      rule->retries =
          a.retryAttempts < 0 ? -1 : static_cast<int>(std::min<int64_t>(a.retryAttempts, 1000));
      if (rule->retries == 0) {
        rule->perTryTimeoutMs = 0; // Istio: attempts 0 drops the whole retry policy
      }
      if (a.faultAbortStatus != 0) {
        if (a.faultAbortStatus < 200 || a.faultAbortStatus > 599) {
          return Error{0, rp + ".fault.abort.status: " + std::to_string(a.faultAbortStatus) +
                              " out of range 200..599"};
        }
        rule->abortStatus = static_cast<int>(a.faultAbortStatus);
        rule->abortPpm = ppm(a.faultAbortPercent);
      }
      if (!a.faultDelay.empty()) {
        rule->delayPpm = ppm(a.faultDelayPercent);
      }
      if (a.mirror) {
        uint16_t mport = a.mirror->port != 0 ? a.mirror->port : ss.port;
        rule->mirror = findCluster(svc, hostRef(a.mirror->host, ss.ns, ss.ns, ss.name),
                                   a.mirror->subset, mport);
        if (rule->mirror < 0) {
          return Error{0, rp + ".mirror: no cluster for host '" + a.mirror->host + "' subset '" +
                              a.mirror->subset + "' port " + std::to_string(mport)};
        }
        rule->mirrorPpm = ppm(a.mirrorPercent);
      }
      if (!a.redirect.empty()) {
        parseRedirect(a.redirect, *rule);
        if (a.redirectCode != 0) {
          if (a.redirectCode < 300 || a.redirectCode > 399) {
            return Error{0, rp + ".redirectCode: " + std::to_string(a.redirectCode) +
                                " out of range 300..399"};
          }
          rule->redirectCode = static_cast<int>(a.redirectCode);
        }
      }
      if (a.directResponseStatus != 0) {
        if (a.directResponseStatus < 200 || a.directResponseStatus > 599) {
          return Error{0, rp + ".directResponse: status " + std::to_string(a.directResponseStatus) +
                              " out of range 200..599"};
        }
        rule->directStatus = static_cast<int>(a.directResponseStatus);
        if (a.directResponseBody.size() > kMaxDirectResponseBody) {
          return Error{0,
                       rp + ".directResponse.body: " + std::to_string(a.directResponseBody.size()) +
                           " bytes, over " + std::to_string(kMaxDirectResponseBody)};
        }
        rule->directBody = a.directResponseBody;
      }
      std::vector<uint8_t> weights;
      int sum = 0;
      if (r.destinations.size() >= VEER_NO_VERSION) {
        return Error{0, rp + ".route: " + std::to_string(r.destinations.size()) +
                            " destinations (limit " + std::to_string(VEER_NO_VERSION - 1) + ")"};
      }
      for (size_t di = 0; di < r.destinations.size(); ++di) {
        const RouteDestination& d = r.destinations[di];
        const std::string dp = rp + ".route[" + std::to_string(di) + "]";
        Dest dest;
        dest.service = hostRef(d.host, ss.ns, ss.ns, ss.name);
        dest.port = d.port != 0 ? d.port : ss.port;
        if (!d.subset.empty() && d.subset[0] == '$') {
          auto it = labelIndex.find(d.subset.substr(1));
          if (it == labelIndex.end()) {
            return Error{0,
                         dp + ".subset: traffic label " + d.subset + " has no sources in labels"};
          }
          dest.label = it->second;
        } else {
          dest.cluster = findCluster(svc, dest.service, d.subset, dest.port);
          if (dest.cluster < 0) {
            return Error{0, dp + ".subset: no cluster for " +
                                (dest.service.empty() ? "" : "service '" + dest.service + "' ") +
                                "subset '" + d.subset + "' port " + std::to_string(dest.port)};
          }
        }
        if (d.fallback) {
          uint16_t fport = d.fallback->port != 0 ? d.fallback->port : dest.port;
          dest.fallback = findCluster(
              svc,
              hostRef(d.fallback->host.empty() ? d.host : d.fallback->host, ss.ns, ss.ns, ss.name),
              d.fallback->subset, fport);
          for (const auto& c : d.fallback->cases) {
            if (c == "noinstances") {
              dest.fallbackNoInstances = true;
            } else if (c == "noavailabled") {
              dest.fallbackNoAvailable = true;
            } else {
              return Error{0,
                           dp + ".fallback.cases: '" + c + "' is not noinstances or noavailabled"};
            }
          }
          if (dest.fallback < 0) {
            return Error{0, dp + ".fallback.subset: no cluster for subset '" + d.fallback->subset +
                                "' port " + std::to_string(fport)};
          }
        }
        appendEdits(r.headers->request, dest.requestEdits);
        appendEdits(d.headers->request, dest.requestEdits);
        appendEdits(r.headers->response, dest.responseEdits);
        appendEdits(d.headers->response, dest.responseEdits);
        int64_t w = d.weight.value_or(r.destinations.size() == 1 ? 100 : -1);
        if (w < 0 || w > 100) {
          return Error{0,
                       dp + ".weight: " + (d.weight ? std::to_string(w) : std::string("missing")) +
                           " (0..100, required with several destinations)"};
        }
        dest.weight = static_cast<uint8_t>(w);
        weights.push_back(dest.weight);
        sum += static_cast<int>(w);
        rule->dests.push_back(std::move(dest));
      }
      if (!r.destinations.empty() && sum != VEER_WEIGHT_SLOTS) {
        return Error{0, rp + ".route: weights sum to " + std::to_string(sum) + ", expected 100"};
      }
      if (r.destinations.empty() && !rule->redirect && rule->directStatus == 0) {
        return Error{0, rp + ": no destinations, redirect or directResponse"};
      }
      rule->slots = weightSlots(weights);
      svc.rules.push_back(std::move(rule));
    }
    auto key = std::make_pair(ss.addr, ss.port);
    if (impl->services.count(key) != 0) {
      return Error{0, sp + ": service address " + addrPort(ss.addr, ss.port) + " listed twice"};
    }
    impl->services.emplace(key, std::move(svc));
  }
  impl->lanes.assign(lanes.begin(), lanes.end());
  impl->spec = std::move(spec);
  return {};
}

RouteTable::RouteTable() = default;
RouteTable::~RouteTable() = default;

size_t RouteTable::serviceCount() const {
  return impl_->services.size();
}

std::shared_ptr<RouteTable> RouteTable::fromPlan(const Plan& plan, const Config& config,
                                                 const RouteOptions& options) {
  auto t = compilePlan(plan, config, options);
  if (t) {
    return *t;
  }
  // Nothing half-applied: an empty table answers 404 (compilePlan says why).
  return *fromSpec(RouteSpec{options.tagHeader, {}, {}}); // nothing in it to refuse
}

Result<std::shared_ptr<RouteTable>> RouteTable::compilePlan(const Plan& plan, const Config& config,
                                                            const RouteOptions& options) {
  RouteSpec spec;
  spec.tagHeader = options.tagHeader;
  std::set<std::string> podKeys; // pod labels the routes read
  bool needPods = false;
  SubsetIndex subsets(config);
  for (const PlanService& ps : plan.services) {
    if (ps.path != PlanPath::kL7) {
      continue;
    }
    RouteSpecService ss;
    ss.ns = ps.ns;
    ss.name = ps.name;
    ss.addr = ps.addr;
    ss.port = ps.port;
    ss.routes = ps.routes;
    // (Service, port) pairs whose clusters the routes need: "" = this service; a route
    // to another host (Gateway API backendRefs, Istio destination.host) needs that one's.
    std::set<std::pair<std::string, uint16_t>> ports = {{"", ps.port}};
    for (const PlanRoute& pr : ps.routes) {
      for (const HttpMatch& m : pr.rule->matches) {
        for (const auto& [k, v] : m.sourceLabels) {
          podKeys.insert(k);
        }
        needPods = needPods || !m.sourceLabels.empty() || !m.sourceNamespace.empty();
      }
      if (const auto& m = pr.rule->actions->mirror) {
        ports.insert({hostRef(m->host, ps.ns, ps.ns, ps.name), m->port != 0 ? m->port : ps.port});
      }
      for (const RouteDestination& d : pr.rule->destinations) {
        uint16_t port = d.port != 0 ? d.port : ps.port;
        ports.insert({hostRef(d.host, ps.ns, ps.ns, ps.name), port});
        if (d.fallback) {
          ports.insert(
              {hostRef(d.fallback->host.empty() ? d.host : d.fallback->host, ps.ns, ps.ns, ps.name),
               d.fallback->port != 0 ? d.fallback->port : port});
        }
        if (!d.subset.empty() && d.subset[0] == '$') {
          const TrafficLabel::Label* l = findTrafficLabel(config, d.subset.substr(1), ps.ns);
          ThinVector<TrafficLabel::Source> sources =
              l ? l->valueFrom : ThinVector<TrafficLabel::Source>{};
          for (const auto& src : sources) {
            if (src.kind == TrafficLabel::Source::Kind::kLocalLabel) {
              podKeys.insert(src.value);
              needPods = true;
            }
          }
          ss.labels[d.subset.substr(1)] = std::move(sources);
        }
      }
    }
    for (const auto& [ref, port] : ports) {
      const PlanService* of = &ps;
      if (!ref.empty()) {
        of = findService(plan, ref.substr(ref.find('/') + 1), ref.substr(0, ref.find('/')), 0);
        if (of == nullptr) {
          continue; // not a service of the plan: the resolver reported it
        }
      }
      for (SubsetEndpoints& se : subsets.of(*of, port)) {
        RouteSpecCluster sc{ref, se.subset, port, {}, std::move(se.loadBalancer)};
        for (const PlanBackend& b : se.backends) {
          sc.endpoints.push_back(Endpoint{b.addr, b.port, b.pod()});
        }
        ss.clusters.push_back(std::move(sc));
      }
    }
    // A mirror to a host or subset the plan does not know cannot be served: the copy is
    // dropped (Envoy's shadow to an unknown cluster), the routing stays.
    for (PlanRoute& pr : ss.routes) {
      if (const auto& m = pr.rule->actions->mirror) {
        std::string ref = hostRef(m->host, ps.ns, ps.ns, ps.name);
        uint16_t port = m->port != 0 ? m->port : ps.port;
        if (std::none_of(ss.clusters.begin(), ss.clusters.end(), [&](const RouteSpecCluster& c) {
              return c.service == ref && c.subset == m->subset && c.port == port;
            })) {
          auto without = std::make_shared<Route>(*pr.rule); // the plan's rule stays as written
          without->actions.mut().mirror.reset();
          pr.rule = std::move(without);
        }
      }
    }
    spec.services.push_back(std::move(ss));
  }
  if (needPods) {
    for (const auto& p : config.pods) {
      for (const IpAddr& ip : p.ips) {
        RouteSpecPod sp;
        sp.ip = ip;
        sp.ns = p.meta.ns;
        sp.name = p.meta.name;
        for (const auto& k : podKeys) {
          if (auto it = p.meta.labels.find(k); it != p.meta.labels.end()) {
            sp.labels[k] = it->second;
          }
        }
        spec.pods.push_back(std::move(sp));
      }
    }
  }
  return fromSpec(std::move(spec));
}

Result<std::shared_ptr<RouteTable>> RouteTable::fromSpec(RouteSpec spec) {
  std::shared_ptr<RouteTable> t(new RouteTable());
  t->impl_ = std::make_unique<Impl>();
  if (Status st = compileRouteTable(std::move(spec), t->impl_.get()); !st) {
    return Error{0, "route table: " + st.error().message};
  }
  return t;
}

} // namespace veer::proxy
