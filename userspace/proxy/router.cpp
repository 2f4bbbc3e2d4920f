// The L7 route table: a Plan's L7 services compiled for per-request decisions.
//
// A table has two forms. The spec (Spec below) is plain data: per service address the
// ordered rules as Istio wrote them, every subset's endpoints, the traffic-label sources
// and the client pods the rules look at. toJson writes the spec; fromJson reads it back;
// fromPlan builds it from a Plan and its Config. compile() turns a spec into the routing
// form (Impl): regexes compiled, weight slots laid out, header edits precomputed, so
// route() only reads, counts and points into the table.

#include "proxy/router.h"

#include "config/plan_text.h"
#include "common/strings.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <map>

#include "compiler/compiler.h"
#include "compiler/maglev.h"
#include "config/loader.h"
#include "veer/maps.h"

namespace veer::proxy {
namespace {

using Json = nlohmann::ordered_json;

constexpr int kSchemaVersion = 1;

// ---- spec: the table as data --------------------------------------------------------

struct SpecCluster {
  std::string service; // "ns/name" of another Service a route sends to; "" = the routed one
  std::string subset;  // "" = every endpoint of the service
  uint16_t port = 0;  // service port
  std::vector<Endpoint> endpoints;
  Boxed<LoadBalancer> loadBalancer;
};

struct SpecService {
  std::string ns;
  std::string name;
  IpAddr addr;
  uint16_t port = 0;
  ThinVector<PlanRoute> routes;
  std::vector<SpecCluster> clusters;
  /** Traffic labels the routes name ($name), with their sources in order. */
  std::map<std::string, ThinVector<TrafficLabel::Source>> labels;
};

struct SpecPod {
  IpAddr ip;
  std::string ns;
  std::string name;
  Labels labels; // only the keys the routes read (sourceLabels, localLabel)
};

struct Spec {
  std::string tagHeader;
  std::vector<SpecService> services;
  std::vector<SpecPod> pods;
};

// ---- compiled form ------------------------------------------------------------------

struct Cluster {
  std::string service; // as SpecCluster::service
  std::string subset;
  uint16_t port = 0;
  std::string name; // "default/reviews:9080 v2"
  std::vector<Endpoint> endpoints;
  LoadBalancer::Hash hash = LoadBalancer::Hash::kNone;
  std::string hashKey;
  std::vector<uint32_t> ring; // Maglev over endpoints, for consistent hashing
  /** httpCookie with a ttl: "; Max-Age=N; Path=p; HttpOnly" of the cookie generated when
   * a request has none; nullopt when no cookie is generated. */
  std::optional<std::string> cookieAttrs;
  mutable std::atomic<uint64_t> next{0}; // round robin
};

struct Dest {
  std::string service; // "" = the routed service, else "ns/name" (a route to another host)
  int cluster = -1; // fixed subset; -1 for a lane ($label)
  int label = -1;   // index into Service::labels for a lane
  uint16_t port = 0;
  uint8_t weight = 0;
  int fallback = -1;                // the ASM fallback target's cluster
  bool fallbackNoInstances = false; // case noinstances: the chosen subset has no endpoint
  bool fallbackNoAvailable = false; // case noavailabled: none of its endpoints connects
  std::vector<HeaderEdit> requestEdits;
  std::vector<HeaderEdit> responseEdits;
};

struct Rule {
  std::string name; // "VirtualService default/reviews spec.http[0]"
  std::vector<CompiledMatch> matches;
  std::vector<Dest> dests;
  std::vector<uint8_t> slots; // smooth weighted round robin over dests (compiler's layout)
  mutable std::atomic<uint64_t> next{0};
  std::string rewritePath;
  std::string rewriteAuthority;
  uint32_t timeoutMs = 0;
  int retries = -1;
  uint32_t perTryTimeoutMs = 0;
  RetryOn retryOn;
  uint32_t abortPpm = 0; // fault.abort share in parts per million
  int abortStatus = 0;
  mutable std::atomic<uint64_t> abortCount{0};
  uint32_t delayPpm = 0;
  uint32_t delayMs = 0;
  mutable std::atomic<uint64_t> delayCount{0};
  bool redirect = false;
  std::string redirectUri, redirectAuthority, redirectScheme;
  int redirectCode = kDefaultRedirectCode;
  int mirror = -1;        // Istio mirror: the cluster a copy of each request goes to
  uint32_t mirrorPpm = 0; // mirrorPercentage in parts per million
  mutable std::atomic<uint64_t> mirrorCount{0};
  int directStatus = 0;
  std::string directBody;
};

struct Service {
  std::string id; // "default/reviews:9080"
  uint16_t port = 0;
  size_t specIndex = 0; // Spec::services[specIndex] is what this was compiled from
  std::vector<std::unique_ptr<Rule>> rules;
  std::vector<std::unique_ptr<Cluster>> clusters;
  std::vector<ThinVector<TrafficLabel::Source>> labels;
};

struct Pod {
  std::string ns;
  std::string name;
  Labels labels;
};

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

/** Whether the n-th request (0-based) is in a share of ppm: exactly ppm of every 10^6. */
bool inShare(std::atomic<uint64_t>& counter, uint32_t share) {
  if (share >= 1000000) {
    return true;
  }
  if (share == 0) {
    return false;
  }
  uint64_t n = counter.fetch_add(1, std::memory_order_relaxed) % 1000000;
  return (n + 1) * share / 1000000 > n * share / 1000000;
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

std::string addrPort(const IpAddr& a, uint16_t port) {
  return (a.v4 ? a.str() : "[" + a.str() + "]") + ":" + std::to_string(port);
}

struct Table {
  Spec spec; // kept for toJson
  std::string tagHeader;
  std::map<std::pair<IpAddr, uint16_t>, Service> services;
  std::map<IpAddr, Pod> pods;
  std::vector<std::string> lanes; // every subset name, sorted: what a $getContext value may be
};

/** Compiles a spec into impl (empty); errors name the JSON path of the offending element. */
Status compile(Spec spec, Table* impl) {
  impl->tagHeader = asciiLower(spec.tagHeader);
  std::set<std::string> lanes;
  for (const SpecPod& p : spec.pods) {
    impl->pods[p.ip] = Pod{p.ns, p.name, p.labels};
  }
  for (size_t si = 0; si < spec.services.size(); ++si) {
    const SpecService& ss = spec.services[si];
    const std::string sp = "services[" + std::to_string(si) + "]";
    Service svc;
    svc.id = ss.ns + "/" + ss.name + ":" + std::to_string(ss.port);
    svc.port = ss.port;
    svc.specIndex = si;
    for (size_t ci = 0; ci < ss.clusters.size(); ++ci) {
      const SpecCluster& sc = ss.clusters[ci];
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
          return Error{0, rp + ".directResponse.body: " +
                              std::to_string(a.directResponseBody.size()) + " bytes, over " +
                              std::to_string(kMaxDirectResponseBody)};
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
          dest.fallback =
              findCluster(svc, hostRef(d.fallback->host.empty() ? d.host : d.fallback->host,
                                       ss.ns, ss.ns, ss.name),
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

} // namespace

struct RouteTable::Impl : Table {};

RouteTable::RouteTable() = default;
RouteTable::~RouteTable() = default;

size_t RouteTable::serviceCount() const { return impl_->services.size(); }

std::shared_ptr<RouteTable> RouteTable::fromPlan(const Plan& plan, const Config& config,
                                                 const RouteOptions& options) {
  auto t = compilePlan(plan, config, options);
  if (t) {
    return *t;
  }
  // Nothing half-applied: an empty table answers 404 (compilePlan says why).
  std::shared_ptr<RouteTable> empty(new RouteTable());
  empty->impl_ = std::make_unique<Impl>();
  (void)compile(Spec{options.tagHeader, {}, {}}, empty->impl_.get());
  return empty;
}

Result<std::shared_ptr<RouteTable>> RouteTable::compilePlan(const Plan& plan, const Config& config,
                                                            const RouteOptions& options) {
  Spec spec;
  spec.tagHeader = options.tagHeader;
  std::set<std::string> podKeys; // pod labels the routes read
  bool needPods = false;
  SubsetIndex subsets(config);
  for (const PlanService& ps : plan.services) {
    if (ps.path != PlanPath::kL7) {
      continue;
    }
    SpecService ss;
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
          ports.insert({hostRef(d.fallback->host.empty() ? d.host : d.fallback->host, ps.ns,
                                ps.ns, ps.name),
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
        SpecCluster sc{ref, se.subset, port, {}, std::move(se.loadBalancer)};
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
        if (std::none_of(ss.clusters.begin(), ss.clusters.end(), [&](const SpecCluster& c) {
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
        SpecPod sp;
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
  std::shared_ptr<RouteTable> t(new RouteTable());
  t->impl_ = std::make_unique<Impl>();
  if (Status st = compile(std::move(spec), t->impl_.get()); !st) {
    return Error{0, "route table: " + st.error().message};
  }
  return t;
}

namespace {

/** What Istio matching reads of req; client is filled when the table knows the peer. */
RequestView requestView(const Table& t, const RequestHead& req, const Origin& origin,
                        ClientView& client) {
  RequestView rv;
  rv.method = req.method;
  splitTarget(req.target, rv);
  rv.authority = req.host;
  rv.port = origin.servicePort;
  rv.headers = req.headers;
  if (auto pit = t.pods.find(origin.client); pit != t.pods.end()) {
    client.ns = pit->second.ns;
    client.name = pit->second.name;
    client.labels = &pit->second.labels;
    rv.client = &client;
  }
  return rv;
}

/**
 * The first rule with a matching entry (entries ORed; no entries = always) and the entry
 * that held (null for no entries). With whyNot, each rule passed over appends one line of
 * why (for explain); without, nothing is allocated.
 */
const Rule* firstMatch(const Service& svc, const RequestView& rv, const CompiledMatch** hit,
                       std::vector<std::string>* whyNot = nullptr) {
  *hit = nullptr;
  for (const auto& r : svc.rules) {
    if (r->matches.empty()) {
      return r.get();
    }
    std::string why;
    for (const CompiledMatch& m : r->matches) {
      std::string reason;
      if (m.matches(rv, whyNot != nullptr ? &reason : nullptr)) {
        *hit = &m;
        return r.get();
      }
      if (whyNot != nullptr) {
        why += (why.empty() ? "" : "; ") + m.source().field + ": " + reason;
      }
    }
    if (whyNot != nullptr) {
      whyNot->push_back(std::move(why));
    }
  }
  return nullptr;
}

/** Where one destination of a rule sends a request: lane, then ASM fallback. */
struct Resolved {
  LaneValue lane;   // a $label destination's lane (value "" when none)
  int chosen = -1;  // the destination's cluster before any fallback; -1: the lane names none
  int cluster = -1; // the cluster that serves (fallback applied); -1: none
  int standby = -1; // noavailabled: the fallback cluster to try when cluster refuses
};

Resolved resolveDest(const Table& t, const Service& svc, const Dest& dest,
                     const RequestView& rv) {
  Resolved r;
  r.chosen = dest.cluster;
  if (dest.label >= 0) {
    r.lane = laneValue(svc.labels[dest.label], rv, t.tagHeader, t.lanes);
    // No lane and no fallback: the whole service, as the kernel path does.
    r.chosen = r.lane.value.empty()
                   ? (dest.fallback >= 0 ? -1 : findCluster(svc, dest.service, "", dest.port))
                   : findCluster(svc, dest.service, r.lane.value, dest.port);
  }
  r.cluster = r.chosen;
  bool noInstances = r.chosen < 0 || svc.clusters[r.chosen]->endpoints.empty();
  if (noInstances && dest.fallback >= 0 && (dest.fallbackNoInstances || r.chosen < 0)) {
    r.cluster = dest.fallback; // ASM noinstances; a lane this service lacks always falls back
  } else if (!noInstances && dest.fallback >= 0 && dest.fallbackNoAvailable &&
             r.chosen != dest.fallback && !svc.clusters[dest.fallback]->endpoints.empty()) {
    r.standby = dest.fallback;
  }
  return r;
}

} // namespace

Decision RouteTable::route(const RequestHead& req, const Origin& origin) const {
  Decision d;
  d.kind = Decision::Kind::kRespond;
  d.status = 404;
  d.reason = "no route";
  auto sit = impl_->services.find(std::make_pair(origin.service, origin.servicePort));
  if (sit == impl_->services.end()) {
    return d;
  }
  const Service& svc = sit->second;
  d.cluster = svc.id;

  ClientView client;
  RequestView rv = requestView(*impl_, req, origin, client);
  const CompiledMatch* hit = nullptr;
  const Rule* rule = firstMatch(svc, rv, &hit);
  if (rule == nullptr) {
    return d; // Envoy's NR: 404
  }
  d.rule = rule->name;
  if (rule->abortStatus != 0 && inShare(rule->abortCount, rule->abortPpm)) {
    d.status = rule->abortStatus;
    d.reason = "fault abort";
    return d;
  }
  if (rule->delayMs != 0 && inShare(rule->delayCount, rule->delayPpm)) {
    d.delayMs = rule->delayMs;
  }
  if (rule->redirect) {
    thread_local std::string location;
    location.clear();
    if (!rule->redirectAuthority.empty() || !rule->redirectScheme.empty()) {
      location.append(rule->redirectScheme.empty() ? rv.scheme : rule->redirectScheme)
          .append("://")
          .append(rule->redirectAuthority.empty() ? rv.authority : rule->redirectAuthority);
    }
    if (!rule->redirectUri.empty()) {
      location.append(rule->redirectUri);
    } else {
      location.append(rv.path);
      if (!rv.query.empty()) {
        location.append("?").append(rv.query);
      }
    }
    d.status = rule->redirectCode;
    d.reason = "redirect";
    d.location = location;
    return d;
  }
  if (rule->directStatus != 0) {
    d.status = rule->directStatus;
    d.reason = "direct response";
    d.direct = true;
    d.body = rule->directBody;
    return d;
  }

  uint8_t slot =
      rule->slots[rule->next.fetch_add(1, std::memory_order_relaxed) % rule->slots.size()];
  if (slot >= rule->dests.size()) {
    d.status = 503;
    d.reason = "no healthy upstream"; // every destination has weight 0
    return d;
  }
  const Dest& dest = rule->dests[slot];

  // The lane: the request's tag header, else (for a $label destination) its sources.
  std::string_view tag;
  if (auto t = rv.firstHeader(impl_->tagHeader); t && !t->empty()) {
    tag = *t;
  }
  Resolved to = resolveDest(*impl_, svc, dest, rv);
  if (dest.label >= 0) {
    tag = to.lane.value;
  }
  int ci = to.cluster;
  bool noInstances = ci < 0 || svc.clusters[ci]->endpoints.empty();
  if (to.standby >= 0) {
    const Cluster& fb = *svc.clusters[to.standby];
    d.fallbackEndpoints = fb.endpoints;
    d.fallbackFirst = fb.next.fetch_add(1, std::memory_order_relaxed) % fb.endpoints.size();
    d.fallbackCluster = fb.name;
  }
  if (!tag.empty()) {
    d.tagHeader = impl_->tagHeader;
    d.tagValue = tag;
  }
  if (noInstances) {
    if (ci >= 0) {
      d.cluster = svc.clusters[ci]->name;
    }
    d.status = 503;
    d.reason = "no healthy upstream";
    return d;
  }
  const Cluster& c = *svc.clusters[ci];
  d.kind = Decision::Kind::kForward;
  d.status = 0;
  d.reason = "";
  d.cluster = c.name;
  d.endpoints = c.endpoints;
  std::optional<std::string_view> hashKey;
  switch (c.hash) {
  case LoadBalancer::Hash::kHeader:
    hashKey = rv.header(c.hashKey);
    break;
  case LoadBalancer::Hash::kCookie:
    hashKey = rv.cookie(c.hashKey);
    if (!hashKey && c.cookieAttrs) {
      // No cookie yet: generate one as Envoy does, a hash of the client and the service
      // address, and hash this request by it so the next ones (carrying it) stay put.
      thread_local std::string cookie;
      uint64_t h = fnv1a64(origin.client.bytes.data(), origin.client.bytes.size());
      h = fnv1a64(origin.service.bytes.data(), origin.service.bytes.size(), h);
      h = fnv1a64(&origin.servicePort, sizeof(origin.servicePort), h);
      char hex[17];
      std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(h));
      cookie.assign(c.hashKey).append("=").append(hex).append(*c.cookieAttrs);
      hashKey = std::string_view(cookie).substr(c.hashKey.size() + 1, 16);
      d.setCookie = cookie;
    }
    break;
  case LoadBalancer::Hash::kQueryParam:
    hashKey = rv.queryParam(c.hashKey);
    break;
  case LoadBalancer::Hash::kSourceIp:
    hashKey = std::string_view(reinterpret_cast<const char*>(origin.client.bytes.data()),
                               origin.client.bytes.size());
    break;
  case LoadBalancer::Hash::kNone:
    break;
  }
  if (hashKey && !c.ring.empty()) {
    d.first = c.ring[fnv1a64(hashKey->data(), hashKey->size()) % c.ring.size()];
  } else {
    d.first = c.next.fetch_add(1, std::memory_order_relaxed) % c.endpoints.size();
  }
  d.requestEdits = dest.requestEdits;
  d.responseEdits = dest.responseEdits;
  if (!rule->rewritePath.empty()) {
    // Istio rewrite.uri: a prefix match's matched prefix is replaced; an exact or regex
    // match replaces the whole path; no uri condition is Envoy's prefix "/".
    // The path is a view into the target, except for an absolute-form target without one
    // ("http://shop"), where it is the literal "/": then everything after is kept (nothing).
    auto at = reinterpret_cast<uintptr_t>(rv.path.data());
    auto begin = reinterpret_cast<uintptr_t>(req.target.data());
    bool inTarget = at >= begin && at + rv.path.size() <= begin + req.target.size();
    size_t pathAt = inTarget ? static_cast<size_t>(at - begin) : req.target.size();
    size_t replaced = 1;
    const CompiledStringMatch* uri = hit != nullptr ? hit->uri() : nullptr;
    if (uri != nullptr) {
      replaced = uri->source().op == StringMatch::Op::kPrefix ? uri->source().value.size()
                                                              : rv.path.size();
    }
    d.rewritePath = rule->rewritePath;
    d.rewriteFrom = inTarget ? pathAt + std::min(replaced, rv.path.size()) : pathAt;
  }
  d.rewriteAuthority = rule->rewriteAuthority;
  d.timeoutMs = rule->timeoutMs;
  d.retries = rule->retries;
  d.perTryTimeoutMs = rule->perTryTimeoutMs;
  d.retryOn = rule->retryOn.conditions;
  d.retryStatuses = rule->retryOn.statuses;
  if (rule->mirror >= 0) {
    const Cluster& m = *svc.clusters[rule->mirror];
    if (!m.endpoints.empty() && inShare(rule->mirrorCount, rule->mirrorPpm)) {
      d.mirrorEndpoints = m.endpoints;
      d.mirrorFirst = m.next.fetch_add(1, std::memory_order_relaxed) % m.endpoints.size();
      d.mirrorCluster = m.name;
    }
  }
  return d;
}

Trace RouteTable::trace(const RequestHead& req, const Origin& origin) const {
  Trace t;
  auto sit = impl_->services.find(std::make_pair(origin.service, origin.servicePort));
  if (sit == impl_->services.end()) {
    return t;
  }
  t.service = true;
  const Service& svc = sit->second;
  ClientView client;
  RequestView rv = requestView(*impl_, req, origin, client);
  const CompiledMatch* hit = nullptr;
  const Rule* rule = firstMatch(svc, rv, &hit, &t.whyNot);
  if (rule == nullptr) {
    return t;
  }
  t.rule = static_cast<int>(t.whyNot.size()); // every rule before it was passed over
  t.hit = hit != nullptr ? &hit->source() : nullptr;
  const Route& written = *impl_->spec.services[svc.specIndex].routes[t.rule].rule;
  for (size_t i = 0; i < rule->dests.size(); ++i) {
    const Dest& dest = rule->dests[i];
    Resolved to = resolveDest(*impl_, svc, dest, rv);
    Trace::Destination out;
    out.subset = written.destinations[i].subset;
    out.weight = dest.weight;
    out.lane = to.lane;
    out.defined = to.chosen >= 0;
    out.fellBack = to.cluster >= 0 && to.cluster != to.chosen;
    if (to.cluster >= 0) {
      out.serving = svc.clusters[to.cluster]->subset;
      out.cluster = svc.clusters[to.cluster]->name;
      out.endpoints = svc.clusters[to.cluster]->endpoints;
    }
    if (to.standby >= 0) {
      out.standby = svc.clusters[to.standby]->name;
    }
    t.destinations.push_back(out);
  }
  return t;
}

// ---- JSON -----------------------------------------------------------------------------

namespace {

Json stringMatchJson(const StringMatch& m) { return Json{{m.opName(), m.value}}; }

Json keyMatchesJson(const ThinVector<KeyMatch>& ks) {
  Json out = Json::array();
  for (const KeyMatch& k : ks) {
    Json j = {{"key", k.key}};
    if (k.present) {
      j["present"] = true;
    } else {
      j[k.match.opName()] = k.match.value;
    }
    out.push_back(std::move(j));
  }
  return out;
}

Json headerOpsJson(const HeaderOps& ops) {
  Json j = Json::object();
  if (!ops.set.empty()) {
    j["set"] = ops.set;
  }
  if (!ops.add.empty()) {
    j["add"] = ops.add;
  }
  if (!ops.remove.empty()) {
    j["remove"] = ops.remove;
  }
  return j;
}

Json headerActionsJson(const HeaderActions& h) {
  Json j = Json::object();
  if (!h.request.empty()) {
    j["request"] = headerOpsJson(h.request);
  }
  if (!h.response.empty()) {
    j["response"] = headerOpsJson(h.response);
  }
  return j;
}

const char* hashName(LoadBalancer::Hash h) {
  switch (h) {
  case LoadBalancer::Hash::kCookie:
    return "cookie";
  case LoadBalancer::Hash::kHeader:
    return "header";
  case LoadBalancer::Hash::kSourceIp:
    return "sourceIp";
  case LoadBalancer::Hash::kQueryParam:
    return "queryParam";
  case LoadBalancer::Hash::kNone:
    break;
  }
  return "none";
}

const char* sourceKindName(TrafficLabel::Source::Kind k) {
  switch (k) {
  case TrafficLabel::Source::Kind::kContext:
    return "context";
  case TrafficLabel::Source::Kind::kLocalLabel:
    return "localLabel";
  case TrafficLabel::Source::Kind::kLiteral:
    break;
  }
  return "literal";
}

Json routeJson(const PlanRoute& pr) {
  const Route& r = *pr.rule;
  Json j = {{"source", pr.source}, {"field", r.field}};
  if (!r.name.empty()) {
    j["name"] = r.name;
  }
  Json matches = Json::array();
  for (const HttpMatch& m : r.matches) {
    Json mj = {{"field", m.field}};
    if (!m.name.empty()) {
      mj["name"] = m.name;
    }
    for (const auto& [name, opt] : {std::pair{"uri", &m.uri},
                                    {"scheme", &m.scheme},
                                    {"method", &m.method},
                                    {"authority", &m.authority}}) {
      if (*opt) {
        mj[name] = stringMatchJson(**opt);
      }
    }
    for (const auto& [name, list] : {std::pair{"headers", &m.headers},
                                     {"withoutHeaders", &m.withoutHeaders},
                                     {"queryParams", &m.queryParams}}) {
      if (!list->empty()) {
        mj[name] = keyMatchesJson(*list);
      }
    }
    if (!m.sourceLabels.empty()) {
      mj["sourceLabels"] = m.sourceLabels;
    }
    if (!m.sourceNamespace.empty()) {
      mj["sourceNamespace"] = m.sourceNamespace;
    }
    if (!m.gateways.empty()) {
      mj["gateways"] = m.gateways;
    }
    if (m.port != 0) {
      mj["port"] = m.port;
    }
    if (m.ignoreUriCase) {
      mj["ignoreUriCase"] = true;
    }
    matches.push_back(std::move(mj));
  }
  j["match"] = std::move(matches);
  Json dests = Json::array();
  for (const RouteDestination& d : r.destinations) {
    Json dj = {{"field", d.field}, {"subset", d.subset}};
    if (!d.host.empty()) {
      dj["host"] = d.host;
    }
    if (d.port != 0) {
      dj["port"] = d.port;
    }
    if (d.weight) {
      dj["weight"] = *d.weight;
    }
    if (!d.headers->empty()) {
      dj["headers"] = headerActionsJson(*d.headers);
    }
    if (d.fallback) {
      dj["fallback"] = {{"subset", d.fallback->subset}, {"cases", d.fallback->cases}};
      if (!d.fallback->host.empty()) {
        dj["fallback"]["host"] = d.fallback->host;
      }
      if (d.fallback->port != 0) {
        dj["fallback"]["port"] = d.fallback->port;
      }
    }
    dests.push_back(std::move(dj));
  }
  j["route"] = std::move(dests);
  if (!r.headers->empty()) {
    j["headers"] = headerActionsJson(*r.headers);
  }
  const RouteActions& a = *r.actions;
  if (!a.rewriteUri.empty()) {
    j["rewriteUri"] = a.rewriteUri;
  }
  if (!a.rewriteAuthority.empty()) {
    j["rewriteAuthority"] = a.rewriteAuthority;
  }
  if (!a.timeout.empty()) {
    j["timeout"] = a.timeout;
  }
  if (a.retryAttempts >= 0) {
    j["retries"] = a.retryAttempts;
  }
  if (!a.retryPerTryTimeout.empty()) {
    j["perTryTimeout"] = a.retryPerTryTimeout;
  }
  if (!a.retryOn.empty()) {
    j["retryOn"] = a.retryOn;
  }
  if (a.faultAbortStatus != 0) {
    j["abort"] = {{"status", a.faultAbortStatus}, {"percent", a.faultAbortPercent}};
  }
  if (!a.faultDelay.empty()) {
    j["delay"] = {{"fixed", a.faultDelay}, {"percent", a.faultDelayPercent}};
  }
  if (a.mirror) {
    j["mirror"] = {{"host", a.mirror->host}, {"subset", a.mirror->subset}};
    if (a.mirror->port != 0) {
      j["mirror"]["port"] = a.mirror->port;
    }
    if (a.mirrorPercent >= 0) {
      j["mirror"]["percent"] = a.mirrorPercent;
    }
  }
  if (!a.redirect.empty()) {
    j["redirect"] = a.redirect;
  }
  if (a.redirectCode != 0) {
    j["redirectCode"] = a.redirectCode;
  }
  if (a.directResponseStatus != 0) {
    j["directResponse"] = a.directResponseStatus;
  }
  if (!a.directResponseBody.empty()) {
    j["directResponseBody"] = a.directResponseBody;
  }
  return j;
}

/**
 * Reads a JSON document into a Spec, naming the path of the first problem. Every
 * access checks the type first: nothing here throws on hostile input.
 */
class Reader {
public:
  std::string error; // "services[0].port: expected an integer 0..65535"

  bool fail(const std::string& path, const std::string& msg) {
    if (error.empty()) {
      error = (path.empty() ? std::string("$") : path) + ": " + msg;
    }
    return false;
  }

  /** j must be an object whose keys are all in allowed. */
  bool object(const Json& j, const std::string& path, std::initializer_list<const char*> allowed) {
    if (!j.is_object()) {
      return fail(path, "expected an object");
    }
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& k = it.key();
      if (std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return k == a; })) {
        return fail(path, "unknown field '" + k + "'");
      }
    }
    return true;
  }

  static std::string at(const std::string& path, const char* key) {
    return path.empty() ? key : path + "." + key;
  }

  template <class S> // std::string or Str
  bool string(const Json& obj, const std::string& path, const char* key, S& out,
              bool required = false) {
    auto it = obj.find(key);
    if (it == obj.end()) {
      return required ? fail(at(path, key), "missing") : true;
    }
    if (!it->is_string()) {
      return fail(at(path, key), "expected a string");
    }
    out = it->get<std::string>();
    return true;
  }

  template <class T>
  bool integer(const Json& obj, const std::string& path, const char* key, T& out, int64_t lo,
               int64_t hi, bool required = false) {
    auto it = obj.find(key);
    if (it == obj.end()) {
      return required ? fail(at(path, key), "missing") : true;
    }
    if (!it->is_number_integer()) {
      return fail(at(path, key), "expected an integer");
    }
    int64_t v = it->is_number_unsigned() && it->get<uint64_t>() > INT64_MAX ? INT64_MAX
                                                                            : it->get<int64_t>();
    if (v < lo || v > hi) {
      return fail(at(path, key), std::to_string(v) + " out of range " + std::to_string(lo) + ".." +
                                     std::to_string(hi));
    }
    out = static_cast<T>(v);
    return true;
  }

  bool number(const Json& obj, const std::string& path, const char* key, double& out) {
    auto it = obj.find(key);
    if (it == obj.end()) {
      return true;
    }
    if (!it->is_number()) {
      return fail(at(path, key), "expected a number");
    }
    out = it->get<double>();
    if (!std::isfinite(out) || out > 100 || (out < 0 && out != -1)) {
      return fail(at(path, key), "expected a percentage 0..100 (or -1 for unset)");
    }
    return true;
  }

  bool boolean(const Json& obj, const std::string& path, const char* key, bool& out) {
    auto it = obj.find(key);
    if (it == obj.end()) {
      return true;
    }
    if (!it->is_boolean()) {
      return fail(at(path, key), "expected true or false");
    }
    out = it->get<bool>();
    return true;
  }

  bool addr(const Json& obj, const std::string& path, const char* key, IpAddr& out) {
    std::string s;
    if (!string(obj, path, key, s, true)) {
      return false;
    }
    auto a = IpAddr::parse(s);
    if (!a) {
      return fail(at(path, key), "'" + s + "' is not an IP address");
    }
    out = *a;
    return true;
  }

  const Json* array(const Json& obj, const std::string& path, const char* key) {
    auto it = obj.find(key);
    if (it == obj.end()) {
      return &empty_;
    }
    if (!it->is_array()) {
      fail(at(path, key), "expected an array");
      return nullptr;
    }
    return &*it;
  }

  bool stringMap(const Json& obj, const std::string& path, const char* key,
                 Labels& out) {
    auto it = obj.find(key);
    if (it == obj.end()) {
      return true;
    }
    if (!it->is_object()) {
      return fail(at(path, key), "expected an object of strings");
    }
    for (const auto& [k, v] : it->items()) {
      if (!v.is_string()) {
        return fail(at(path, key) + "." + k, "expected a string");
      }
      out[k] = v.get<std::string>();
    }
    return true;
  }

  template <class List> // of std::string or Str
  bool stringList(const Json& obj, const std::string& path, const char* key, List& out) {
    const Json* a = array(obj, path, key);
    if (a == nullptr) {
      return false;
    }
    for (size_t i = 0; i < a->size(); ++i) {
      if (!(*a)[i].is_string()) {
        return fail(at(path, key) + "[" + std::to_string(i) + "]", "expected a string");
      }
      out.push_back((*a)[i].get<std::string>());
    }
    return true;
  }

  /** {"exact": "..."} / {"prefix": ...} / {"regex": ...} */
  bool stringMatch(const Json& j, const std::string& path, StringMatch& out) {
    if (!object(j, path, {"exact", "prefix", "regex"})) {
      return false;
    }
    if (j.size() != 1) {
      return fail(path, "expected exactly one of exact, prefix, regex");
    }
    auto it = j.begin();
    if (!it->is_string()) {
      return fail(path + "." + it.key(), "expected a string");
    }
    out.op = it.key() == "exact"    ? StringMatch::Op::kExact
             : it.key() == "prefix" ? StringMatch::Op::kPrefix
                                    : StringMatch::Op::kRegex;
    out.value = it->get<std::string>();
    return true;
  }

  bool keyMatches(const Json& obj, const std::string& path, const char* key,
                  ThinVector<KeyMatch>& out) {
    const Json* a = array(obj, path, key);
    if (a == nullptr) {
      return false;
    }
    for (size_t i = 0; i < a->size(); ++i) {
      const Json& kj = (*a)[i];
      std::string kp = at(path, key) + "[" + std::to_string(i) + "]";
      if (!object(kj, kp, {"key", "present", "exact", "prefix", "regex"})) {
        return false;
      }
      KeyMatch k;
      if (!string(kj, kp, "key", k.key, true) || !boolean(kj, kp, "present", k.present)) {
        return false;
      }
      Json rest = kj;
      rest.erase("key");
      rest.erase("present");
      if (k.present != rest.empty()) {
        return fail(kp, "expected present: true or one of exact, prefix, regex");
      }
      if (!k.present && !stringMatch(rest, kp, k.match)) {
        return false;
      }
      out.push_back(std::move(k));
    }
    return true;
  }

  bool headerOps(const Json& obj, const std::string& path, const char* key, HeaderOps& out) {
    auto it = obj.find(key);
    if (it == obj.end()) {
      return true;
    }
    std::string p = at(path, key);
    if (!object(*it, p, {"set", "add", "remove"})) {
      return false;
    }
    for (const auto& [name, list] : {std::pair{"set", &out.set}, {"add", &out.add}}) {
      const Json* a = array(*it, p, name);
      if (a == nullptr) {
        return false;
      }
      for (size_t i = 0; i < a->size(); ++i) {
        const Json& e = (*a)[i];
        if (!e.is_array() || e.size() != 2 || !e[0].is_string() || !e[1].is_string()) {
          return fail(at(p, name) + "[" + std::to_string(i) + "]",
                      "expected a [name, value] pair of strings");
        }
        list->emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
      }
    }
    return stringList(*it, p, "remove", out.remove);
  }

  bool headerActions(const Json& obj, const std::string& path, HeaderActions& out) {
    auto it = obj.find("headers");
    if (it == obj.end()) {
      return true;
    }
    std::string p = at(path, "headers");
    return object(*it, p, {"request", "response"}) && headerOps(*it, p, "request", out.request) &&
           headerOps(*it, p, "response", out.response);
  }

  bool match(const Json& j, const std::string& path, HttpMatch& m) {
    if (!object(j, path,
                {"field", "name", "uri", "scheme", "method", "authority", "headers",
                 "withoutHeaders", "queryParams", "sourceLabels", "sourceNamespace", "gateways",
                 "port", "ignoreUriCase"})) {
      return false;
    }
    if (!string(j, path, "field", m.field) || !string(j, path, "name", m.name)) {
      return false;
    }
    for (const auto& [name, opt] : {std::pair{"uri", &m.uri},
                                    {"scheme", &m.scheme},
                                    {"method", &m.method},
                                    {"authority", &m.authority}}) {
      if (auto it = j.find(name); it != j.end()) {
        StringMatch sm;
        if (!stringMatch(*it, at(path, name), sm)) {
          return false;
        }
        *opt = sm;
      }
    }
    return keyMatches(j, path, "headers", m.headers) &&
           keyMatches(j, path, "withoutHeaders", m.withoutHeaders) &&
           keyMatches(j, path, "queryParams", m.queryParams) &&
           stringMap(j, path, "sourceLabels", m.sourceLabels) &&
           string(j, path, "sourceNamespace", m.sourceNamespace) &&
           stringList(j, path, "gateways", m.gateways) &&
           integer(j, path, "port", m.port, 0, 65535) &&
           boolean(j, path, "ignoreUriCase", m.ignoreUriCase);
  }

  bool route(const Json& j, const std::string& path, PlanRoute& pr) {
    if (!object(j, path,
                {"source", "field", "name", "match", "route", "headers", "rewriteUri",
                 "rewriteAuthority", "timeout", "retries", "perTryTimeout", "retryOn", "abort",
                 "delay", "mirror", "redirect", "redirectCode", "directResponse",
                 "directResponseBody"})) {
      return false;
    }
    auto rule = std::make_shared<Route>();
    pr.rule = rule;
    Route& r = *rule;
    RouteActions& a = r.actions.mut(); // a route table is small: no need to keep these unset
    if (!string(j, path, "source", pr.source, true) || !string(j, path, "field", r.field) ||
        !string(j, path, "name", r.name) || !headerActions(j, path, r.headers.mut()) ||
        !string(j, path, "rewriteUri", a.rewriteUri) ||
        !string(j, path, "rewriteAuthority", a.rewriteAuthority) ||
        !string(j, path, "timeout", a.timeout) ||
        !integer(j, path, "retries", a.retryAttempts, 0, 1000) ||
        !string(j, path, "perTryTimeout", a.retryPerTryTimeout) ||
        !string(j, path, "retryOn", a.retryOn) || !string(j, path, "redirect", a.redirect) ||
        !integer(j, path, "redirectCode", a.redirectCode, 300, 399) ||
        !integer(j, path, "directResponse", a.directResponseStatus, 200, 599) ||
        !string(j, path, "directResponseBody", a.directResponseBody)) {
      return false;
    }
    if (auto it = j.find("abort"); it != j.end()) {
      std::string p = at(path, "abort");
      if (!object(*it, p, {"status", "percent"}) ||
          !integer(*it, p, "status", a.faultAbortStatus, 200, 599, true) ||
          !number(*it, p, "percent", a.faultAbortPercent)) {
        return false;
      }
    }
    if (auto it = j.find("mirror"); it != j.end()) {
      std::string p = at(path, "mirror");
      RouteDestination m;
      if (!object(*it, p, {"host", "subset", "port", "percent"}) ||
          !string(*it, p, "host", m.host, true) || !string(*it, p, "subset", m.subset) ||
          !integer(*it, p, "port", m.port, 0, 65535) ||
          !number(*it, p, "percent", a.mirrorPercent)) {
        return false;
      }
      a.mirror = std::move(m);
    }
    if (auto it = j.find("delay"); it != j.end()) {
      std::string p = at(path, "delay");
      if (!object(*it, p, {"fixed", "percent"}) || !string(*it, p, "fixed", a.faultDelay, true) ||
          !number(*it, p, "percent", a.faultDelayPercent)) {
        return false;
      }
    }
    const Json* ms = array(j, path, "match");
    if (ms == nullptr) {
      return false;
    }
    for (size_t i = 0; i < ms->size(); ++i) {
      HttpMatch m;
      if (!match((*ms)[i], path + ".match[" + std::to_string(i) + "]", m)) {
        return false;
      }
      r.matches.push_back(std::move(m));
    }
    const Json* ds = array(j, path, "route");
    if (ds == nullptr) {
      return false;
    }
    for (size_t i = 0; i < ds->size(); ++i) {
      const Json& dj = (*ds)[i];
      std::string dp = path + ".route[" + std::to_string(i) + "]";
      if (!object(dj, dp, {"field", "host", "subset", "port", "weight", "headers", "fallback"})) {
        return false;
      }
      RouteDestination d;
      if (!string(dj, dp, "field", d.field) || !string(dj, dp, "host", d.host) ||
          !string(dj, dp, "subset", d.subset) ||
          !integer(dj, dp, "port", d.port, 0, 65535) || !headerActions(dj, dp, d.headers.mut())) {
        return false;
      }
      if (dj.contains("weight")) {
        int64_t w = 0;
        if (!integer(dj, dp, "weight", w, 0, 100)) {
          return false;
        }
        d.weight = w;
      }
      if (auto it = dj.find("fallback"); it != dj.end()) {
        std::string fp = at(dp, "fallback");
        Fallback f;
        if (!object(*it, fp, {"host", "subset", "port", "cases"}) ||
            !string(*it, fp, "host", f.host) || !string(*it, fp, "subset", f.subset, true) ||
            !integer(*it, fp, "port", f.port, 0, 65535) || !stringList(*it, fp, "cases", f.cases)) {
          return false;
        }
        if (!it->contains("cases")) {
          f.cases = {"noinstances", "noavailabled"}; // the loader's default for an omitted case
        }
        d.fallback = f;
      }
      r.destinations.push_back(std::move(d));
    }
    return true;
  }

  bool loadBalancer(const Json& obj, const std::string& path, Boxed<LoadBalancer>& out) {
    auto it = obj.find("loadBalancer");
    if (it == obj.end()) {
      return true;
    }
    std::string p = at(path, "loadBalancer");
    LoadBalancer lb;
    std::string hash;
    if (!object(*it, p, {"simple", "hash", "key", "ttl", "path"}) ||
        !string(*it, p, "simple", lb.simple) || !string(*it, p, "hash", hash) ||
        !string(*it, p, "key", lb.hashKey) || !string(*it, p, "ttl", lb.cookieTtl) ||
        !string(*it, p, "path", lb.cookiePath)) {
      return false;
    }
    static const std::pair<const char*, LoadBalancer::Hash> kinds[] = {
        {"none", LoadBalancer::Hash::kNone},
        {"cookie", LoadBalancer::Hash::kCookie},
        {"header", LoadBalancer::Hash::kHeader},
        {"sourceIp", LoadBalancer::Hash::kSourceIp},
        {"queryParam", LoadBalancer::Hash::kQueryParam}};
    auto k = std::find_if(std::begin(kinds), std::end(kinds), [&](const auto& e) {
      return hash == e.first || (hash.empty() && e.second == LoadBalancer::Hash::kNone);
    });
    if (k == std::end(kinds)) {
      return fail(at(p, "hash"),
                  "'" + hash + "' is not none, cookie, header, sourceIp or queryParam");
    }
    lb.hash = k->second;
    out = lb;
    return true;
  }

  bool service(const Json& j, const std::string& path, SpecService& s) {
    if (!object(j, path, {"ns", "name", "addr", "port", "clusters", "labels", "routes"}) ||
        !string(j, path, "ns", s.ns, true) || !string(j, path, "name", s.name, true) ||
        !addr(j, path, "addr", s.addr) || !integer(j, path, "port", s.port, 1, 65535, true)) {
      return false;
    }
    const Json* cs = array(j, path, "clusters");
    if (cs == nullptr) {
      return false;
    }
    for (size_t i = 0; i < cs->size(); ++i) {
      const Json& cj = (*cs)[i];
      std::string cp = path + ".clusters[" + std::to_string(i) + "]";
      SpecCluster c;
      if (!object(cj, cp, {"service", "subset", "port", "endpoints", "loadBalancer"}) ||
          (cj.contains("service") && !string(cj, cp, "service", c.service)) ||
          !string(cj, cp, "subset", c.subset) || !integer(cj, cp, "port", c.port, 1, 65535, true) ||
          !loadBalancer(cj, cp, c.loadBalancer)) {
        return false;
      }
      const Json* es = array(cj, cp, "endpoints");
      if (es == nullptr) {
        return false;
      }
      for (size_t e = 0; e < es->size(); ++e) {
        const Json& ej = (*es)[e];
        std::string ep = cp + ".endpoints[" + std::to_string(e) + "]";
        Endpoint ept;
        if (!object(ej, ep, {"addr", "port", "pod"}) || !addr(ej, ep, "addr", ept.addr) ||
            !integer(ej, ep, "port", ept.port, 1, 65535, true) || !string(ej, ep, "pod", ept.pod)) {
          return false;
        }
        c.endpoints.push_back(std::move(ept));
      }
      s.clusters.push_back(std::move(c));
    }
    if (auto it = j.find("labels"); it != j.end()) {
      std::string lp = at(path, "labels");
      if (!it->is_object()) {
        return fail(lp, "expected an object");
      }
      for (const auto& [name, list] : it->items()) {
        std::string np = lp + "." + name;
        if (!list.is_array()) {
          return fail(np, "expected an array");
        }
        ThinVector<TrafficLabel::Source> sources;
        for (size_t i = 0; i < list.size(); ++i) {
          std::string sp = np + "[" + std::to_string(i) + "]";
          std::string kind;
          TrafficLabel::Source src;
          if (!object(list[i], sp, {"kind", "value"}) || !string(list[i], sp, "kind", kind, true) ||
              !string(list[i], sp, "value", src.value, true)) {
            return false;
          }
          if (kind == "context") {
            src.kind = TrafficLabel::Source::Kind::kContext;
          } else if (kind == "localLabel") {
            src.kind = TrafficLabel::Source::Kind::kLocalLabel;
          } else if (kind == "literal") {
            src.kind = TrafficLabel::Source::Kind::kLiteral;
          } else {
            return fail(sp + ".kind", "'" + kind + "' is not context, localLabel or literal");
          }
          sources.push_back(std::move(src));
        }
        s.labels[name] = std::move(sources);
      }
    }
    const Json* rs = array(j, path, "routes");
    if (rs == nullptr) {
      return false;
    }
    for (size_t i = 0; i < rs->size(); ++i) {
      PlanRoute pr;
      if (!route((*rs)[i], path + ".routes[" + std::to_string(i) + "]", pr)) {
        return false;
      }
      s.routes.push_back(std::move(pr));
    }
    return true;
  }

  bool spec(const Json& j, Spec& s) {
    if (!object(j, "", {"version", "tagHeader", "services", "pods"})) {
      return false;
    }
    int version = 0;
    if (!integer(j, "", "version", version, 0, INT32_MAX, true)) {
      return false;
    }
    if (version != kSchemaVersion) {
      return fail("version", std::to_string(version) + " is not supported (expected " +
                                 std::to_string(kSchemaVersion) + ")");
    }
    if (!string(j, "", "tagHeader", s.tagHeader, true)) {
      return false;
    }
    const Json* ps = array(j, "", "pods");
    if (ps == nullptr) {
      return false;
    }
    for (size_t i = 0; i < ps->size(); ++i) {
      const Json& pj = (*ps)[i];
      std::string pp = "pods[" + std::to_string(i) + "]";
      SpecPod p;
      if (!object(pj, pp, {"ip", "ns", "name", "labels"}) || !addr(pj, pp, "ip", p.ip) ||
          !string(pj, pp, "ns", p.ns, true) || !string(pj, pp, "name", p.name, true) ||
          !stringMap(pj, pp, "labels", p.labels)) {
        return false;
      }
      s.pods.push_back(std::move(p));
    }
    const Json* ss = array(j, "", "services");
    if (ss == nullptr) {
      return false;
    }
    for (size_t i = 0; i < ss->size(); ++i) {
      SpecService svc;
      if (!service((*ss)[i], "services[" + std::to_string(i) + "]", svc)) {
        return false;
      }
      s.services.push_back(std::move(svc));
    }
    return true;
  }

private:
  const Json empty_ = Json::array();
};

} // namespace

std::string RouteTable::toJson() const {
  const Spec& s = impl_->spec;
  Json pods = Json::array();
  for (const SpecPod& p : s.pods) {
    Json pj = {{"ip", p.ip.str()}, {"ns", p.ns}, {"name", p.name}};
    if (!p.labels.empty()) {
      pj["labels"] = p.labels;
    }
    pods.push_back(std::move(pj));
  }
  Json services = Json::array();
  for (const SpecService& ss : s.services) {
    Json clusters = Json::array();
    for (const SpecCluster& c : ss.clusters) {
      Json eps = Json::array();
      for (const Endpoint& e : c.endpoints) {
        eps.push_back({{"addr", e.addr.str()}, {"port", e.port}, {"pod", e.pod}});
      }
      Json cj = {{"subset", c.subset}, {"port", c.port}, {"endpoints", std::move(eps)}};
      if (!c.service.empty()) {
        cj["service"] = c.service;
      }
      if (c.loadBalancer) {
        cj["loadBalancer"] = {{"simple", c.loadBalancer->simple},
                              {"hash", hashName(c.loadBalancer->hash)},
                              {"key", c.loadBalancer->hashKey}};
        if (!c.loadBalancer->cookieTtl.empty()) {
          cj["loadBalancer"]["ttl"] = c.loadBalancer->cookieTtl;
        }
        if (!c.loadBalancer->cookiePath.empty()) {
          cj["loadBalancer"]["path"] = c.loadBalancer->cookiePath;
        }
      }
      clusters.push_back(std::move(cj));
    }
    Json labels = Json::object();
    for (const auto& [name, sources] : ss.labels) {
      Json list = Json::array();
      for (const auto& src : sources) {
        list.push_back({{"kind", sourceKindName(src.kind)}, {"value", src.value}});
      }
      labels[name] = std::move(list);
    }
    Json routes = Json::array();
    for (const PlanRoute& pr : ss.routes) {
      routes.push_back(routeJson(pr));
    }
    services.push_back({{"ns", ss.ns},
                        {"name", ss.name},
                        {"addr", ss.addr.str()},
                        {"port", ss.port},
                        {"clusters", std::move(clusters)},
                        {"labels", std::move(labels)},
                        {"routes", std::move(routes)}});
  }
  Json j = {{"version", kSchemaVersion},
            {"tagHeader", s.tagHeader},
            {"pods", std::move(pods)},
            {"services", std::move(services)}};
  return j.dump(1) + "\n";
}

Result<std::shared_ptr<RouteTable>> RouteTable::fromJson(std::string_view json) {
  Json j = Json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return Error{0, "route table: not valid JSON"};
  }
  Spec spec;
  Reader r;
  try {
    if (!r.spec(j, spec)) {
      return Error{0, "route table: " + r.error};
    }
  } catch (const Json::exception& e) {
    // Every access is type-checked first; this is a last line, not the plan.
    return Error{0, "route table: " + std::string(e.what())};
  }
  std::shared_ptr<RouteTable> t(new RouteTable());
  t->impl_ = std::make_unique<Impl>();
  if (Status st = compile(std::move(spec), t->impl_.get()); !st) {
    return Error{0, "route table: " + st.error().message};
  }
  return t;
}

} // namespace veer::proxy
