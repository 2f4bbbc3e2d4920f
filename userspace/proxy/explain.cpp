// `veerctl explain` for a mesh service: a rendering of RouteTable::trace. Pure: no I/O.

#include "proxy/explain.h"

#include <algorithm>

#include "proxy/router.h"

namespace veer {
namespace {

std::string quote(std::string_view s) {
  return "'" + std::string(s) + "'";
}

/** " ($lane = 'v2' from header x-request-id)": where a $label destination's lane came from. */
std::string laneNote(std::string_view subset, const LaneValue& lane) {
  std::string from;
  switch (lane.from) {
  case LaneValue::From::kTagHeader:
  case LaneValue::From::kHeader:
    from = " from header " + std::string(lane.what);
    break;
  case LaneValue::From::kPodLabel:
    from = " from pod label " + std::string(lane.what);
    break;
  case LaneValue::From::kLiteral:
    return " (" + std::string(subset) + " = literal " + quote(lane.value) + ")";
  case LaneValue::From::kNone:
    break;
  }
  if (lane.value.empty()) {
    return " (" + std::string(subset) + ": no value from the request or the client pod)";
  }
  return " (" + std::string(subset) + " = " + quote(lane.value) + from + ")";
}

} // namespace

Explanation explain(const Plan& plan, const Config& config, const ExplainRequest& req) {
  Explanation ex;
  const PlanService* s = findService(plan, req.host, req.ns, req.port);
  if (s == nullptr) {
    ex.text = "no service for host " + req.host +
              (req.port ? " port " + std::to_string(req.port) : std::string()) + " in the plan\n";
    return ex;
  }
  proxy::Origin origin{IpAddr{}, s->addr, s->port};
  std::string clientNote;
  if (!req.fromPod.empty()) {
    std::string pns = req.ns;
    std::string pname = req.fromPod;
    if (size_t sl = pname.find('/'); sl != std::string::npos) {
      pns = pname.substr(0, sl);
      pname = pname.substr(sl + 1);
    }
    auto pod = std::find_if(config.pods.begin(), config.pods.end(),
                            [&](const Pod& p) { return p.meta.ns == pns && p.meta.name == pname; });
    if (pod == config.pods.end()) {
      ex.text = "no pod " + pns + "/" + pname + " in the config\n";
      return ex;
    }
    // The proxy knows its client by the peer address: the pod's address in the service's family.
    auto ip = std::find_if(pod->ips.begin(), pod->ips.end(),
                           [&](const IpAddr& a) { return a.v4 == s->addr.v4; });
    if (ip != pod->ips.end()) {
      origin.client = *ip;
    } else {
      clientNote = "  note: pod " + pns + "/" + pname + " has no " +
                   (s->addr.v4 ? "IPv4" : "IPv6") +
                   " address, so the proxy cannot tell it is the client\n";
    }
  }
  // The table veer-proxy would load (every L7 service: their subsets are the lanes a
  // $getContext value may name), with this service on the L7 path if it is not already.
  Plan asProxy = plan;
  asProxy.services[s - plan.services.data()].path = PlanPath::kL7;
  auto table = proxy::RouteTable::compilePlan(asProxy, config, {});
  if (!table) {
    ex.text = "service " + s->id() + ": " + table.error().message + "\n";
    return ex;
  }
  ex.ok = true;

  std::vector<proxy::HeaderField> headers;
  for (const auto& [k, v] : req.headers) {
    headers.push_back({k, v});
  }
  std::string cookie;
  for (const auto& [k, v] : req.cookies) {
    cookie += (cookie.empty() ? "" : "; ") + k + "=" + v;
  }
  if (!cookie.empty()) {
    headers.push_back({"cookie", cookie});
  }
  std::string authority = req.authority.empty() ? req.host : req.authority;
  // The proxy reads plain HTTP; another scheme can only come as an absolute-form target.
  std::string target = req.scheme == "http" ? req.uri : req.scheme + "://" + authority + req.uri;
  proxy::RequestHead head{req.method, target, authority, headers};
  proxy::Trace trace = (*table)->trace(head, origin);

  std::string out = "service " + s->id() + " " + serviceKey(*s) + " path=" + pathName(s->path) +
                    "\n" + clientNote;
  for (size_t i = 0; i < trace.whyNot.size(); ++i) {
    out += "  " + s->routes[i].rule->field + ": no (" + trace.whyNot[i] + ")\n";
  }
  if (s->routes.empty()) {
    out += "  no VirtualService rules\n";
  }
  if (trace.rule < 0) {
    out += "-> ";
    if (!s->routes.empty()) {
      out += "no rule matches: Istio answers 404; ";
    }
    out += "the service's endpoints, split as the kernel does:";
    for (const auto& v : s->versions) {
      out += " " + (v.subset.empty() ? std::string("*") : v.subset.str()) + "=" +
             std::to_string(v.weight);
    }
    ex.text = out + "\n";
    return ex;
  }
  const PlanRoute& hit = s->routes[trace.rule];
  out += "  " + hit.rule->field + ": matches " +
         (trace.hit == nullptr ? std::string("(no conditions)")
                               : trace.hit->field + " (" + renderMatch(*trace.hit) + ")") +
         "\n";
  out += "  rule: " + renderRule(hit) + "\n";
  if (trace.destinations.empty()) {
    ex.text = out + "-> answered by the rule itself\n";
    return ex;
  }
  for (size_t i = 0; i < trace.destinations.size(); ++i) {
    const proxy::Trace::Destination& d = trace.destinations[i];
    const RouteDestination& written = hit.rule->destinations[i];
    bool lane = !d.subset.empty() && d.subset[0] == '$';
    std::string note = lane ? laneNote(d.subset, d.lane) : "";
    std::string_view named = lane ? d.lane.value : d.subset;
    if (d.fellBack) {
      note += " -> fallback " + std::string(d.serving) + " (" +
              (d.defined ? "no ready pods" : "noinstances: subset undefined") + ")";
    }
    std::string_view shown = d.cluster.empty() ? named : d.serving;
    out += "-> " + (shown.empty() ? written.host.str() : std::string(shown)) + " " +
           std::to_string(d.weight) + "%" + note + ":";
    std::vector<std::string> pods;
    for (const proxy::Endpoint& e : d.endpoints) {
      pods.push_back(e.pod);
    }
    std::sort(pods.begin(), pods.end());
    pods.erase(std::unique(pods.begin(), pods.end()), pods.end());
    if (d.cluster.empty()) {
      out += " no such subset (503 no healthy upstream)";
    } else if (pods.empty()) {
      out += " no ready pods (503 no healthy upstream)";
    }
    for (const auto& p : pods) {
      out += " " + p;
    }
    if (!d.standby.empty()) {
      out += " (noavailabled: then " + std::string(d.standby) + ")";
    }
    if (!written.headers->empty()) {
      out += " {" + renderHeaderOps(*written.headers) + " }";
    }
    out += "\n";
  }
  if (s->path == PlanPath::kL7) {
    out += "note: path=l7; until the L7 proxy runs, the kernel applies " +
           (s->kernelRule.empty() ? std::string("all endpoints") : s->kernelRule.text()) +
           " to every connection\n";
  }
  ex.text = out;
  return ex;
}

} // namespace veer
