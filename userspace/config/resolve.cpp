// Config -> Plan: hosts to services, subsets to endpoints, routes to weights.
// Validation lives here, so a Config built in code is checked like a loaded one.

#include <algorithm>
#include <memory>
#include <map>
#include <set>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "common/worker_pool.h"
#include "config/ingress.h"
#include "config/loader.h"

namespace veer {
namespace {

using Key = std::pair<Str, Str>; // (namespace, name)

/**
 * Hashes and compares any pair or tuple of strings, string_views included, so an index
 * keyed by strings is searched with views of the caller's strings (no copies).
 */
struct StringsHash {
  using is_transparent = void;
  // A Str's hash is std::hash of its text, computed once: the same for a view of it.
  static size_t hashOf(const Str& s) { return s.hash(); }
  static size_t hashOf(std::string_view s) { return std::hash<std::string_view>()(s); }
  template <class Tuple>
  size_t operator()(const Tuple& t) const {
    return std::apply(
        [](const auto&... s) {
          size_t h = 0;
          ((h = h * 1000003 ^ hashOf(s)), ...);
          return h;
        },
        t);
  }
};
struct StringsEqual {
  using is_transparent = void;
  template <class A, class B>
  bool operator()(const A& a, const B& b) const {
    return [&]<size_t... I>(std::index_sequence<I...>) {
      return ((std::string_view(std::get<I>(a)) == std::string_view(std::get<I>(b))) && ...);
    }(std::make_index_sequence<std::tuple_size_v<A>>());
  }
};
template <class K, class V>
using Index = std::unordered_map<K, V, StringsHash, StringsEqual>;
using KeyView = std::pair<std::string_view, std::string_view>; // a Key to look up
using LabelKey = std::tuple<Str, Str, Str>; // ns, label, value
using LabelKeyView = std::tuple<std::string_view, std::string_view, std::string_view>;

std::string keyStr(const Key& k) { return k.first + "/" + k.second; }

/**
 * name, name.ns, name.ns.svc, name.ns.svc.cluster.local -> (ns, name), as views of host
 * and ns (a lookup per destination: no allocation).
 */
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

std::string family(bool v4) { return v4 ? "IPv4" : "IPv6"; }

/**
 * A destination's field as the object's format spells it: Istio's suffix
 * (".destination.host", ".destination.port.number", ".weight") or, for a Gateway API
 * backendRef, ".name" / ".port" / ".weight".
 */
std::string destField(const VirtualService& vs, const std::string& field, const std::string& istio) {
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

/** A ready endpoint of one service port in one address family. */
struct Candidate {
  PlanBackend backend;
  const Pod* pod = nullptr; // for subset labels; null for slice endpoints without a Pod
};

/** The rules of one service, after validation, and what they need. */
struct Decision {
  const VirtualService* vs = nullptr;
  ThinVector<PlanRoute> routes; // delegates inlined
  std::vector<PlanWhy> l7;     // findings that need request bytes
  std::vector<PlanWhy> kernel; // conditions decidable per client pod
};

class Resolver {
public:
  /** owner, when set, is c: the plan's rules then point into it rather than copy it. */
  Resolver(const Config& c, std::shared_ptr<const Config> owner) : c_(c), owner_(std::move(owner)) {}

  ResolveResult run() {
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

private:

  void index() {
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
      if (vs.meta.kind == "VirtualService") { // delegates are Istio VirtualServices
        vsByKey_.emplace(Key{vs.meta.ns, vs.meta.name}, &vs);
      }
    }
  }

  /** Pods of namespace ns whose labels include selector (non-empty), in config order. */
  std::vector<const Pod*> selected(const std::string& ns, const Labels& selector) {
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
  std::string unknownHost(const std::string& host, const std::string& ns) {
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

  const Service* lookup(const std::string& host, const std::string& ns, Key* key = nullptr) {
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

  void indexDestinationRules() {
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

  const TrafficLabel::Label* trafficLabel(const std::string& name, const std::string& ns,
                                          const TrafficLabel** owner) {
    return findTrafficLabel(c_, name, ns, owner);
  }

  static HttpMatch mergeMatch(const HttpMatch& parent, const HttpMatch& child) {
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
  bool expand(const VirtualService& vs, ThinVector<PlanRoute>& out) {
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

  static std::string matchWhat(const KeyMatch& k) {
    return k.key + (k.present ? " present" : std::string(" ") + k.match.opName());
  }

  /** Path findings of one rule (and whether any needs L7). */
  void classify(const PlanRoute& pr, const std::string& ns, std::vector<PlanWhy>& l7,
                std::vector<PlanWhy>& kernel) {
    const Route& r = *pr.rule;
    const std::string& at = r.field;
    for (const HttpMatch& m : r.matches) {
      const std::string& mf = m.field;
      for (const auto& [name, opt] :
           {std::pair{"uri", &m.uri}, {"scheme", &m.scheme}, {"method", &m.method},
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
        kernel.push_back({pr.source, mf + (m.sourceLabels.empty()
                                               ? ".sourceNamespace: " + m.sourceNamespace
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
              gatewayApi ? f + ".filters: " + (std::string(dir) == "request" ? "Request" : "Response") +
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

  void indexVirtualServices() {
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
            Decision more;
            const bool ok = decide(vs, k, hp, field, more);
            auto it = decisions_.find(k);
            if (!ok || it == decisions_.end()) {
              failed_.insert(k);
              decisions_.erase(k);
              continue;
            }
            Decision& dec = it->second;
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
        Decision dec;
        if (decide(vs, k, hp, field, dec)) {
          decisions_[k] = std::move(dec);
        } else {
          failed_.insert(k);
        }
      }
    }
  }

  /** The rules of vs for service k, validated and classified. False on any error. */
  bool decide(const VirtualService& vs, const Key& k, const SourcePos& hp,
              const std::string& field, Decision& dec) {
    dec.vs = &vs;
    bool ok = expand(vs, dec.routes);
    bool sawCatchAll = false;
    for (const PlanRoute& pr : dec.routes) {
      if (sawCatchAll) {
        diag_.warning(pr.rule->pos, pr.source, pr.rule->field,
                "unreachable: an earlier rule matches every request");
      }
      sawCatchAll = sawCatchAll || pr.rule->matches.empty();
      if (pr.rule->destinations.empty() && (pr.rule->actions->redirect.size() != 0 ||
                                           pr.rule->actions->directResponseStatus != 0)) {
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
  static const ServicePort* destPort(const Service& dsvc, uint16_t port, uint16_t fromPort) {
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
  bool validateRoute(const VirtualService& vs, const Route& r, const Key& k) {
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
                "subset " + subset + " names a traffic label, but no TrafficLabel in namespace " +
                    vs.meta.ns + " or istio-system defines label " + subset.substr(1));
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
              "subset " + subset + " used but no DestinationRule defines subsets for " + keyStr(sk));
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
              "Service " + keyStr(dk) + " has no port " + std::to_string(d.port) + " (ports: " +
                  portList(*dsvc) + ")");
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

  /**
   * What building a range of services gives, merged in service order: the build runs on
   * every core for a large config (each service is built from read-only indexes; only its
   * own Decision is moved from).
   */
  struct BuildOut {
    std::vector<PlanService> services;
    Diagnostics diags;
    DiagnosticSink diag{diags};
    std::vector<PlanLaneClient> laneClients; // sorted, each once
  };

  static void addLaneClient(std::vector<PlanLaneClient>& all, PlanLaneClient client) {
    if (auto at = std::lower_bound(all.begin(), all.end(), client);
        at == all.end() || *at != client) {
      all.insert(at, std::move(client));
    }
  }

  /** Fewer services than this build on the calling thread alone (every test, every seed). */
  static constexpr size_t kParallelBuild = 2048;

  std::optional<uint16_t> podTarget(const ServicePort& sp, const Pod& pod, const Service& svc,
                                    DiagnosticSink& diag) {
    if (sp.targetPortName.empty()) {
      return sp.targetPort;
    }
    auto it = pod.namedPorts.find(sp.targetPortName);
    if (it == pod.namedPorts.end()) {
      diag.warning(pod.meta.pos, pod.meta.ref(), "spec.containers",
              "no container port named " + sp.targetPortName + " (Service " + svc.meta.ns + "/" +
                  svc.meta.name + " port " + std::to_string(sp.port) + "); pod skipped");
      return std::nullopt;
    }
    return it->second;
  }

  /** Ready endpoints of one service port in one family, deduplicated, sorted. */
  std::vector<Candidate> endpoints(const Service& svc, const ServicePort& sp, bool v4,
                                   DiagnosticSink& diag) {
    std::map<std::pair<IpAddr, uint16_t>, Candidate> out;
    auto add = [&](const IpAddr& a, uint16_t port, const Pod* pod) {
      if (a.v4 != v4 || port == 0) {
        return;
      }
      Candidate c;
      c.backend.addr = a;
      c.backend.port = port;
      c.pod = pod;
      if (pod != nullptr) {
        c.backend.podNs = pod->meta.ns;
        c.backend.podName = pod->meta.name;
      }
      auto [it, inserted] = out.emplace(std::make_pair(a, port), c);
      if (!inserted && it->second.pod == nullptr && pod != nullptr) {
        it->second = c;
      }
    };
    if (!svc.selector.empty()) {
      for (const Pod* pp : selected(svc.meta.ns, svc.selector)) {
        const Pod& pod = *pp;
        if (!pod.ready) {
          continue;
        }
        bool hasFamily = std::any_of(pod.ips.begin(), pod.ips.end(),
                                     [&](const IpAddr& a) { return a.v4 == v4; });
        if (!hasFamily) {
          continue;
        }
        auto port = podTarget(sp, pod, svc, diag);
        if (!port) {
          continue;
        }
        for (const auto& a : pod.ips) {
          add(a, *port, &pod);
        }
      }
    }
    static const std::vector<const EndpointSlice*> kNoSlices;
    auto sl = slices_.find(KeyView{svc.meta.ns, svc.meta.name});
    for (const EndpointSlice* esp : sl == slices_.end() ? kNoSlices : sl->second) {
      const EndpointSlice& es = *esp;
      std::optional<uint16_t> slicePort;
      if (!es.ports.empty()) {
        for (const auto& p : es.ports) {
          if (p.name == sp.name && p.proto == sp.proto) {
            slicePort = p.port;
          }
        }
        if (!slicePort) {
          continue; // this slice does not serve this port
        }
      }
      for (const auto& ep : es.endpoints) {
        if (!ep.ready) {
          continue;
        }
        const Pod* pod = nullptr;
        if (!ep.podName.empty()) {
          if (auto it = pods_.find(KeyView{es.meta.ns, ep.podName}); it != pods_.end()) {
            pod = it->second;
          }
        }
        std::optional<uint16_t> port = slicePort;
        if (!port) {
          if (pod != nullptr) {
            port = podTarget(sp, *pod, svc, diag);
          } else if (sp.targetPortName.empty()) {
            port = sp.targetPort;
          }
        }
        if (!port) {
          continue;
        }
        for (const auto& a : ep.addresses) {
          add(a, *port, pod);
        }
      }
    }
    std::vector<Candidate> v;
    for (auto& [k, c] : out) {
      v.push_back(std::move(c));
    }
    return v;
  }

  std::vector<PlanBackend> pick(const std::vector<Candidate>& cands, const Labels& want) {
    std::vector<PlanBackend> out;
    for (const auto& c : cands) {
      if (want.empty() || (c.pod != nullptr && matches(c.pod->meta.labels, want))) {
        out.push_back(c.backend);
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  /** The pod labels of subset name: the Service's selector plus the subset's labels. */
  static Labels labelsOf(const Service& svc, const DestinationRule* dr, const std::string& name) {
    Labels want = svc.selector;
    if (dr != nullptr) {
      for (const auto& s : dr->subsets) {
        if (s.name == name) {
          for (const auto& [lk, lv] : s.labels) {
            want[lk] = lv;
          }
        }
      }
    }
    return want;
  }

  /**
   * path, why, routes and load balancer of a service port. lastUse: no other port or
   * address of the service follows, so dec's routes and findings move rather than copy.
   */
  void describe(PlanService& ps, Decision* dec, bool lastUse, const DestinationRule* dr) {
    std::vector<PlanWhy> l7;
    std::vector<PlanWhy> kernel;
    if (dec != nullptr) {
      if (lastUse) { // the service's last address and port: nothing reads dec after this
        ps.routes = std::move(dec->routes);
        l7 = std::move(dec->l7);
        kernel = std::move(dec->kernel);
      } else {
        ps.routes = dec->routes;
        l7 = dec->l7;
        kernel = dec->kernel;
      }
    }
    if (dr != nullptr) {
      ps.loadBalancer = dr->loadBalancer;
      auto lbWhy = [&](const LoadBalancer& lb) {
        const Str source = dr->meta.ref();
        const std::string at = lb.field + ": consistentHash ";
        switch (lb.hash) {
        case LoadBalancer::Hash::kCookie:
          l7.push_back({source, at + "httpCookie " + lb.hashKey});
          break;
        case LoadBalancer::Hash::kHeader:
          l7.push_back({source, at + "httpHeaderName " + lb.hashKey});
          break;
        case LoadBalancer::Hash::kQueryParam:
          l7.push_back({source, at + "httpQueryParameterName " + lb.hashKey});
          break;
        case LoadBalancer::Hash::kSourceIp:
          kernel.push_back({source, at + "useSourceIp (client affinity in the kernel)"});
          break;
        case LoadBalancer::Hash::kNone:
          break;
        }
      };
      if (dr->loadBalancer) {
        lbWhy(*dr->loadBalancer);
      }
      for (const auto& sub : dr->subsets) {
        if (sub.loadBalancer) {
          lbWhy(*sub.loadBalancer);
        }
      }
    }
    ps.path = l7.empty() ? PlanPath::kKernel : PlanPath::kL7;
    ps.why = l7.empty() ? kernel : l7;
  }

  /** The pod label a traffic label reads for $(localLabel), or "" if it reads none. */
  std::string laneLabel(const std::string& subset, const std::string& ns,
                        const TrafficLabel** owner) {
    const TrafficLabel::Label* l = trafficLabel(subset.substr(1), ns, owner);
    if (l == nullptr) {
      return "";
    }
    for (const auto& src : l->valueFrom) {
      if (src.kind == TrafficLabel::Source::Kind::kLocalLabel) {
        return src.value;
      }
    }
    return "";
  }

  /**
   * The lanes of a service whose kernel rule sends to subset $label: every value the
   * client pods carry in the TrafficLabel's $(localLabel) pod label is a lane, and it
   * reaches the subset of that name while that subset has a ready endpoint, else the
   * rule's fallback. Records the lane's client pods for the agent.
   */
  template <class SubsetLabels>
  void compileLanes(PlanService& ps, const RouteDestination& d, size_t destinations,
                    const std::string& source, const Key& k, const std::vector<Candidate>& cands,
                    const SubsetLabels& subsetLabels, BuildOut& out) {
    const TrafficLabel* owner = nullptr;
    const std::string label = laneLabel(d.subset, ps.ns, &owner);
    if (label.empty()) {
      return; // a header-only traffic label: the proxy's (routes keep it)
    }
    if (destinations != 1) {
      out.diag.warning(d.pos, source, d.field + ".destination.subset",
                    "lane " + d.subset + " shares its rule with other destinations; the kernel "
                    "compiles lanes only for a rule whose one destination is the lane, so client "
                    "pods in a lane get the weights here");
      return;
    }
    std::set<std::string> values;
    for (const auto& pod : c_.pods) {
      const bool inScope = owner->meta.ns == "istio-system" || pod.meta.ns == owner->meta.ns;
      auto v = pod.meta.labels.find(label);
      if (!inScope || v == pod.meta.labels.end() || v->second.empty() ||
          !matches(pod.meta.labels, owner->workloadSelector)) {
        continue;
      }
      values.insert(v->second);
      addLaneClient(out.laneClients,
                    PlanLaneClient{pod.meta.ns, pod.meta.name, pod.meta.uid, v->second});
    }
    const DestinationRule* dr = nullptr;
    if (auto it = drs_.find(k); it != drs_.end()) {
      dr = it->second;
    }
    const std::string base = ps.versions.empty() ? "" : ps.versions[0].subset;
    for (const std::string& value : values) {
      const bool declared =
          dr != nullptr && std::any_of(dr->subsets.begin(), dr->subsets.end(),
                                       [&](const Subset& s) { return s.name == value; });
      std::vector<PlanBackend> backends;
      if (declared) {
        backends = pick(cands, subsetLabels(value));
      }
      // ASM fallback cases noinstances|noavailabled: no such subset, or none of it ready.
      const std::string subset = backends.empty() ? base : value;
      ps.lanes.push_back(PlanLane{value, subset});
      auto has = [&](const PlanVersion& v) { return v.subset == subset; };
      if (std::none_of(ps.versions.begin(), ps.versions.end(), has)) {
        PlanVersion v;
        v.subset = subset;
        v.weight = 0; // reached through its lane only
        v.backends = std::move(backends);
        ps.versions.push_back(std::move(v));
      }
    }
  }

  void build() {
    const size_t n = ordered_.size();
    WorkerPool& pool = WorkerPool::shared();
    const size_t parts = n < kParallelBuild ? 1 : pool.threads();
    std::vector<std::unique_ptr<BuildOut>> outs;
    for (size_t i = 0; i < parts; ++i) {
      outs.push_back(std::make_unique<BuildOut>());
    }
    pool.parallelFor(parts, [&](size_t i, size_t of) {
      buildRange(n * i / of, n * (i + 1) / of, *outs[i]);
    });
    size_t total = 0;
    for (const auto& out : outs) {
      total += out->services.size();
    }
    result_.plan.services.reserve(result_.plan.services.size() + total);
    for (auto& out : outs) {
      for (PlanService& ps : out->services) {
        result_.plan.services.push_back(std::move(ps));
      }
      out->services = {}; // its moved-from shells go now, not with the last part
      for (const Diagnostic& d : out->diags) {
        diag_.add(d); // in service order, each finding once, as a serial build reports
      }
      for (PlanLaneClient& c : out->laneClients) {
        addLaneClient(result_.plan.laneClients, std::move(c));
      }
    }
  }

  void buildRange(size_t begin, size_t end, BuildOut& out) {
    size_t ports = 0; // at most one PlanService each: sized once, not grown by doubling
    for (size_t si = begin; si < end; ++si) {
      ports += ordered_[si]->clusterIPs.size() * ordered_[si]->ports.size();
    }
    out.services.reserve(ports);
    for (size_t si = begin; si < end; ++si) {
      const Service* svc = ordered_[si];
      Key k{svc->meta.ns, svc->meta.name};
      if (failed_.count(k) != 0) {
        continue; // errors already reported; the plan is partial
      }
      Decision* dec = nullptr;
      if (auto it = decisions_.find(k); it != decisions_.end()) {
        dec = &it->second;
      }
      const DestinationRule* dr = nullptr;
      if (auto it = drs_.find(k); it != drs_.end()) {
        dr = it->second;
      }
      for (const auto& addr : svc->clusterIPs) {
        for (const auto& sp : svc->ports) {
          PlanService ps;
          ps.ns = svc->meta.ns;
          ps.name = svc->meta.name;
          ps.portName = sp.name;
          ps.addr = addr;
          ps.port = sp.port;
          ps.proto = sp.proto;
          auto cands = endpoints(*svc, sp, addr.v4, out.diag);
          describe(ps, dec, &addr == &svc->clusterIPs.back() && &sp == &svc->ports.back(), dr);
          ps.affinity = svc->clientIpAffinity ||
                        (ps.loadBalancer && ps.loadBalancer->hash == LoadBalancer::Hash::kSourceIp);
          if (ps.affinity) {
            // The DestinationRule is the mesh's word on this host; the Service's own
            // ClientIP timeout comes next, then kube-proxy's default.
            ps.affinityTimeout = dr != nullptr && dr->affinityTimeout
                                     ? *dr->affinityTimeout
                                     : svc->affinityTimeout.value_or(kDefaultAffinityTimeout);
          }
          if (dr != nullptr) {
            ps.recycleGrace = dr->recycleGrace;
          }
          const PlanRoute* kr = nullptr;
          if (dec != nullptr) {
            for (const PlanRoute& pr : ps.routes) {
              if (pr.rule->unconditionalFor(sp.port)) {
                kr = &pr;
                break;
              }
            }
          }
          std::vector<const RouteDestination*> applicable;
          const RouteDestination* lanes = nullptr; // the destination whose subset is a lane
          if (kr != nullptr) {
            ps.kernelRule = {kr->source, kr->rule->field};
            for (const auto& d : kr->rule->destinations) {
              Key dk = k;
              lookup(d.host, svc->meta.ns, &dk);
              // A destination port names a port of the destination Service: for the routed
              // service itself it selects this port; another Service's applies to every port.
              if (d.port == 0 || d.port == sp.port || dk != k) {
                applicable.push_back(&d);
              }
            }
          }
          auto subsetLabelsOf = [&](const Service& s, const Key& sk, const std::string& name) {
            auto dit = drs_.find(sk);
            return labelsOf(s, dit != drs_.end() ? dit->second : nullptr, name);
          };
          auto subsetLabels = [&](const std::string& name) { return subsetLabelsOf(*svc, k, name); };
          if (applicable.empty()) {
            PlanVersion v;
            v.weight = 100;
            v.backends = pick(cands, {});
            ps.versions.push_back(std::move(v));
            out.services.push_back(std::move(ps));
            continue;
          }
          int64_t sum = 0;
          for (const RouteDestination* d : applicable) {
            int64_t w = d->weight.value_or(100);
            sum += w;
            std::string subset = d->subset;
            if (!subset.empty() && subset[0] == '$') {
              // A traffic-label lane. Clients outside every lane (and requests whose tag
              // only a header carries, until the proxy reads it) go to the fallback (or
              // the whole service); client pods in a lane get their lane's subset below.
              lanes = d;
              subset = d->fallback ? d->fallback->subset : "";
              if (!d->fallback) {
                out.diag.warning(d->pos, kr->source, d->field + ".destination.subset",
                        "subset " + d->subset +
                            " has no fallback; clients in no lane (and lanes without ready "
                            "endpoints) go to every endpoint of " + keyStr(k));
              }
            }
            Key dk = k;
            const Service* dsvc = lookup(d->host, svc->meta.ns, &dk);
            const std::string other = dk != k ? keyStr(dk) : "";
            auto same = std::find_if(ps.versions.begin(), ps.versions.end(), [&](const PlanVersion& v) {
              return v.subset == subset && v.service == other;
            });
            if (same != ps.versions.end()) {
              same->weight = static_cast<uint8_t>(same->weight + w);
              continue;
            }
            PlanVersion v;
            v.subset = subset;
            v.service = other;
            v.weight = static_cast<uint8_t>(w);
            if (dk != k) {
              // Another Service's endpoints serve this address (validated: the port exists).
              const ServicePort* dsp = destPort(*dsvc, d->port, sp.port);
              auto dc = endpoints(*dsvc, *dsp, addr.v4, out.diag);
              v.backends = pick(dc, subset.empty() ? Labels{} : subsetLabelsOf(*dsvc, dk, subset));
            } else {
              v.backends = subset.empty() ? pick(cands, {}) : pick(cands, subsetLabels(subset));
            }
            if (v.backends.empty() && d->fallback && !d->fallback->subset.empty() &&
                d->fallback->subset != subset && dk == k) {
              v.backends = pick(cands, subsetLabels(d->fallback->subset));
              v.fallback = d->fallback->subset;
            }
            if (v.backends.empty() && w > 0) {
              out.diag.warning(d->pos, kr->source, d->field + ".destination.subset",
                      (subset.empty() ? std::string("Service ") + keyStr(dk)
                                      : "subset " + subset + " of Service " + keyStr(dk)) +
                          " has no ready " + family(addr.v4) +
                          " endpoints; connections sent there fail");
            }
            ps.versions.push_back(std::move(v));
          }
          if (sum != 100) {
            out.diag.error(kr->rule->pos, kr->source, kr->rule->field + ".route",
                  "weights of destinations for port " + std::to_string(sp.port) + " sum to " +
                      std::to_string(sum) + ", expected 100");
            continue;
          }
          if (lanes != nullptr) {
            compileLanes(ps, *lanes, applicable.size(), kr->source, k, cands, subsetLabels, out);
          }
          out.services.push_back(std::move(ps));
        }
      }
    }
  }

public:
  /** The indexes subsets() reads (run() builds its own). */
  void indexEndpoints() {
    index();
    indexDestinationRules();
  }

  /** After indexEndpoints(); findings go to this Resolver's own (unread) list: resolve()
   * reported them when it built the plan. */
  std::vector<SubsetEndpoints> subsets(const PlanService& ps, uint16_t port) {
    std::vector<SubsetEndpoints> out;
    auto it = services_.find(Key{ps.ns, ps.name});
    if (it == services_.end()) {
      return out;
    }
    const Service& svc = *it->second;
    auto sp = std::find_if(svc.ports.begin(), svc.ports.end(),
                           [&](const ServicePort& p) { return p.port == port; });
    if (sp == svc.ports.end()) {
      return out;
    }
    const DestinationRule* dr = nullptr;
    if (auto d = drs_.find(Key{ps.ns, ps.name}); d != drs_.end()) {
      dr = d->second;
    }
    auto cands = endpoints(svc, *sp, ps.addr.v4, diag_);
    SubsetEndpoints all;
    all.loadBalancer = dr != nullptr ? dr->loadBalancer : Boxed<LoadBalancer>();
    all.backends = pick(cands, {});
    out.push_back(std::move(all));
    if (dr != nullptr) {
      for (const auto& sub : dr->subsets) {
        SubsetEndpoints se;
        se.subset = sub.name;
        se.loadBalancer = sub.loadBalancer ? sub.loadBalancer : dr->loadBalancer;
        se.backends = pick(cands, labelsOf(svc, dr, sub.name));
        out.push_back(std::move(se));
      }
    }
    return out;
  }

private:
  /** A rule of c_ for a PlanRoute: shared with the Config when it is owned, else a copy. */
  std::shared_ptr<const Route> share(const Route& r) const {
    return owner_ ? std::shared_ptr<const Route>(owner_, &r) : std::make_shared<const Route>(r);
  }

  const Config& c_;
  std::shared_ptr<const Config> owner_;
  ResolveResult result_;
  DiagnosticSink diag_{result_.diags}; // the same finding can come from several ports or families
  // Indexes, so resolution stays linear in the size of the config. They are only looked
  // up; ordered_ is what is walked (diagnostics and the plan follow its order).
  Index<Key, const Service*> services_;
  std::vector<const Service*> ordered_; // each (namespace, name) once, sorted by it
  // The largest are keyed by views of the Config's own strings (it outlives the Resolver).
  Index<Key, const Pod*> pods_;
  Index<LabelKey, ThinVector<const Pod*>> podsByLabel_; // -> pods, config order
  Index<Key, ThinVector<const EndpointSlice*>> slices_; // (namespace, service) -> slices
  std::unordered_map<Str, const VirtualService*> vsByRef_; // "VirtualService ns/name"
  Index<Key, const VirtualService*> vsByKey_;
  Index<Key, const DestinationRule*> drs_;
  Index<Key, std::pair<const VirtualService*, SourcePos>> claims_;
  Index<Key, Decision> decisions_;
  std::unordered_set<Key, StringsHash, StringsEqual> failed_;
};

} // namespace

ResolveResult resolve(const Config& config) { return Resolver(config, nullptr).run(); }

ResolveResult resolve(std::shared_ptr<const Config> config) {
  const Config& c = *config;
  return Resolver(c, std::move(config)).run();
}

struct SubsetIndex::Impl {
  explicit Impl(const Config& config) : resolver(config, nullptr) { resolver.indexEndpoints(); }
  Resolver resolver;
};

SubsetIndex::SubsetIndex(const Config& config) : impl_(std::make_unique<Impl>(config)) {}

SubsetIndex::~SubsetIndex() = default;

std::vector<SubsetEndpoints> SubsetIndex::of(const PlanService& ps, uint16_t port) {
  return impl_->resolver.subsets(ps, port);
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
