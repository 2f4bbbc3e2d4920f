// The resolver's build: a PlanService per Service address and port from the rules that
// validated, their endpoints, subsets, lanes and fallbacks; in parallel for a large Config.

#include <algorithm>

#include "common/worker_pool.h"
#include "config/resolve_internal.h"

namespace veer::resolver {
namespace {

std::string family(bool v4) {
  return v4 ? "IPv4" : "IPv6";
}

} // namespace

void Resolver::addLaneClient(std::vector<PlanLaneClient>& all, PlanLaneClient client) {
  if (auto at = std::lower_bound(all.begin(), all.end(), client);
      at == all.end() || *at != client) {
    all.insert(at, std::move(client));
  }
}

std::optional<uint16_t> Resolver::podTarget(const ServicePort& sp, const Pod& pod,
                                            const Service& svc, DiagnosticSink& diag) {
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
std::vector<Candidate> Resolver::endpoints(const Service& svc, const ServicePort& sp, bool v4,
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
      bool hasFamily =
          std::any_of(pod.ips.begin(), pod.ips.end(), [&](const IpAddr& a) { return a.v4 == v4; });
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

std::vector<PlanBackend> Resolver::pick(const std::vector<Candidate>& cands, const Labels& want) {
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
Labels Resolver::labelsOf(const Service& svc, const DestinationRule* dr, const std::string& name) {
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
void Resolver::describe(PlanService& ps, ServiceRules* dec, bool lastUse,
                        const DestinationRule* dr) {
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
std::string Resolver::laneLabel(const std::string& subset, const std::string& ns,
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
void Resolver::compileLanes(PlanService& ps, const RouteDestination& d, size_t destinations,
                            const std::string& source, const Key& k,
                            const std::vector<Candidate>& cands, const SubsetLabels& subsetLabels,
                            BuildOut& out) {
  const TrafficLabel* owner = nullptr;
  const std::string label = laneLabel(d.subset, ps.ns, &owner);
  if (label.empty()) {
    return; // a header-only traffic label: the proxy's (routes keep it)
  }
  if (destinations != 1) {
    out.diag.warning(
        d.pos, source, d.field + ".destination.subset",
        "lane " + d.subset +
            " shares its rule with other destinations; the kernel "
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

void Resolver::build() {
  const size_t n = ordered_.size();
  WorkerPool& pool = WorkerPool::shared();
  const size_t parts = n < kParallelBuild ? 1 : pool.threads();
  std::vector<std::unique_ptr<BuildOut>> outs;
  for (size_t i = 0; i < parts; ++i) {
    outs.push_back(std::make_unique<BuildOut>());
  }
  pool.parallelFor(
      parts, [&](size_t i, size_t of) { buildRange(n * i / of, n * (i + 1) / of, *outs[i]); });
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

void Resolver::buildRange(size_t begin, size_t end, BuildOut& out) {
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
    ServiceRules* dec = nullptr;
    if (auto it = serviceRules_.find(k); it != serviceRules_.end()) {
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
                                   "endpoints) go to every endpoint of " +
                                   keyStr(k));
            }
          }
          Key dk = k;
          const Service* dsvc = lookup(d->host, svc->meta.ns, &dk);
          const std::string other = dk != k ? keyStr(dk) : "";
          auto same =
              std::find_if(ps.versions.begin(), ps.versions.end(), [&](const PlanVersion& v) {
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
                         "weights of destinations for port " + std::to_string(sp.port) +
                             " sum to " + std::to_string(sum) + ", expected 100");
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

/** After indexEndpoints(); findings go to this Resolver's own (unread) list: resolve()
 * reported them when it built the plan. */
std::vector<SubsetEndpoints> Resolver::subsets(const PlanService& ps, uint16_t port) {
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

/** A rule of c_ for a PlanRoute: shared with the Config when it is owned, else a copy. */
std::shared_ptr<const Route> Resolver::share(const Route& r) const {
  return owner_ ? std::shared_ptr<const Route>(owner_, &r) : std::make_shared<const Route>(r);
}

} // namespace veer::resolver
