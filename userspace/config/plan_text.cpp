// Plan rendering and diffs. Pure: no I/O.

#include "config/plan_text.h"

#include "common/strings.h"
#include "config/match.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <tuple>

namespace veer {
namespace {

std::string quote(const std::string& s) {
  return "'" + s + "'";
}

std::string addrPort(const IpAddr& a, uint16_t port) {
  std::string s = a.str();
  if (!a.v4) {
    s = "[" + s + "]";
  }
  return s + ":" + std::to_string(port);
}

std::string protoName(uint8_t p) {
  return p == 17 ? "udp" : "tcp";
}

} // namespace

std::string serviceKey(const PlanService& s) {
  return addrPort(s.addr, s.port) + "/" + protoName(s.proto);
}

const PlanService* findService(const Plan& plan, const std::string& host, const std::string& ns,
                               uint16_t port) {
  size_t dot = host.find('.');
  std::string name = host.substr(0, dot);
  std::string sns = ns;
  if (dot != std::string::npos) {
    size_t end = host.find('.', dot + 1);
    sns = host.substr(dot + 1, end == std::string::npos ? std::string::npos : end - dot - 1);
  }
  for (const auto& s : plan.services) {
    if (s.name == name && s.ns == sns && (port == 0 || s.port == port)) {
      return &s;
    }
  }
  return nullptr;
}

std::string renderMatch(const HttpMatch& m) {
  std::vector<std::string> parts;
  for (const auto& [name, opt] : {std::pair{"uri", &m.uri},
                                  {"scheme", &m.scheme},
                                  {"method", &m.method},
                                  {"authority", &m.authority}}) {
    if (*opt) {
      parts.push_back(std::string(name) + " " + describe(**opt) +
                      (m.ignoreUriCase && std::string(name) == "uri" ? " (ignore case)" : ""));
    }
  }
  for (const auto& [name, list] : {std::pair{"headers", &m.headers},
                                   {"withoutHeaders", &m.withoutHeaders},
                                   {"queryParams", &m.queryParams}}) {
    for (const KeyMatch& k : *list) {
      parts.push_back(std::string(name) + "[" + k.key + "] " +
                      (k.present ? std::string("present") : describe(k.match)));
    }
  }
  for (const auto& [k, v] : m.sourceLabels) {
    parts.push_back("sourceLabels[" + k + "]=" + v);
  }
  if (!m.sourceNamespace.empty()) {
    parts.push_back("sourceNamespace " + m.sourceNamespace);
  }
  if (m.port != 0) {
    parts.push_back("port " + std::to_string(m.port));
  }
  for (const auto& g : m.gateways) {
    parts.push_back("gateway " + g);
  }
  std::string out;
  for (const auto& p : parts) {
    out += (out.empty() ? "" : " AND ") + p;
  }
  return out.empty() ? "any" : out;
}

std::string renderHeaderOps(const HeaderActions& h) {
  std::string out;
  for (const auto& [dir, ops] : {std::pair{"request", &h.request}, {"response", &h.response}}) {
    for (const auto& [k, v] : ops->set) {
      out += std::string(" ") + dir + " set " + k + ": " + quote(v) + ";";
    }
    for (const auto& [k, v] : ops->add) {
      out += std::string(" ") + dir + " add " + k + ": " + quote(v) + ";";
    }
    for (const auto& k : ops->remove) {
      out += std::string(" ") + dir + " remove " + k + ";";
    }
  }
  if (!out.empty()) {
    out.pop_back();
  }
  return out;
}

namespace {

std::string renderDest(const RouteDestination& d) {
  std::string out = d.subset.empty() ? d.host : d.subset;
  if (d.port != 0) {
    out += ":" + std::to_string(d.port);
  }
  out += "=" + std::to_string(d.weight.value_or(100));
  if (d.fallback) {
    out += " (fallback " + d.fallback->subset + ")";
  }
  if (!d.headers->empty()) {
    out += " {" + renderHeaderOps(*d.headers) + " }";
  }
  return out;
}

} // namespace

std::string renderRule(const PlanRoute& pr) {
  const Route& r = *pr.rule;
  std::string out = r.field + " [" + pr.source + "]";
  if (!r.name.empty()) {
    out += " '" + r.name + "'";
  }
  out += ": ";
  if (r.matches.empty()) {
    out += "always";
  } else {
    for (size_t i = 0; i < r.matches.size(); ++i) {
      out += (i ? " OR " : "") + std::string("(") + renderMatch(r.matches[i]) + ")";
    }
  }
  out += " ->";
  if (r.delegate) {
    out += " delegate " + r.delegate->ns + "/" + r.delegate->name;
  }
  for (const auto& d : r.destinations) {
    out += " " + renderDest(d);
  }
  const RouteActions& a = *r.actions;
  if (!a.redirect.empty()) {
    out += " redirect(" + a.redirect + ")";
    if (a.redirectCode != 0) {
      out += " " + std::to_string(a.redirectCode);
    }
  }
  if (a.directResponseStatus != 0) {
    out += " respond " + std::to_string(a.directResponseStatus);
    if (!a.directResponseBody.empty()) {
      out += " body " + std::to_string(a.directResponseBody.size()) + " bytes";
    }
  }
  std::string extra = renderHeaderOps(*r.headers);
  if (!a.rewriteUri.empty()) {
    extra += " rewrite uri " + quote(a.rewriteUri) + ";";
  }
  if (!a.rewriteAuthority.empty()) {
    extra += " rewrite authority " + quote(a.rewriteAuthority) + ";";
  }
  if (!a.timeout.empty()) {
    extra += " timeout " + a.timeout + ";";
  }
  if (a.retryAttempts >= 0) {
    extra += " retries " + std::to_string(a.retryAttempts) +
             (a.retryPerTryTimeout.empty() ? "" : " per try " + a.retryPerTryTimeout) +
             (a.retryOn.empty() ? "" : " on " + a.retryOn) + ";";
  }
  if (a.mirror) {
    extra += " mirror " + a.mirror->host + (a.mirror->subset.empty() ? "" : "/" + a.mirror->subset);
    if (a.mirrorPercent >= 0) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), " %g%%", a.mirrorPercent);
      extra += buf;
    }
    extra += ";";
  }
  if (!a.faultDelay.empty()) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), " delay %s %g%%;", a.faultDelay.c_str(), a.faultDelayPercent);
    extra += buf;
  }
  if (a.faultAbortStatus != 0) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), " abort %lld %g%%;", static_cast<long long>(a.faultAbortStatus),
                  a.faultAbortPercent);
    extra += buf;
  }
  if (!extra.empty()) {
    if (extra.back() == ';') {
      extra.pop_back();
    }
    out += " {" + extra + " }";
  }
  return out;
}

std::string renderPlan(const Plan& plan) {
  std::string out;
  for (const auto& s : plan.services) {
    out += s.id() + " " + serviceKey(s) + (s.portName.empty() ? "" : " (" + s.portName + ")") +
           " path=" + pathName(s.path) + "\n";
    for (const auto& w : s.why) {
      out += "  why: " + w.text() + "\n";
    }
    if (s.loadBalancer) {
      const LoadBalancer& lb = *s.loadBalancer;
      out += "  loadBalancer: " +
             (lb.simple.empty() ? std::string("consistentHash") : lb.simple.str());
      switch (lb.hash) {
      case LoadBalancer::Hash::kCookie:
        out += " httpCookie " + lb.hashKey + (lb.cookieTtl.empty() ? "" : " ttl " + lb.cookieTtl);
        break;
      case LoadBalancer::Hash::kHeader:
        out += " httpHeaderName " + lb.hashKey;
        break;
      case LoadBalancer::Hash::kQueryParam:
        out += " httpQueryParameterName " + lb.hashKey;
        break;
      case LoadBalancer::Hash::kSourceIp:
        out += " useSourceIp";
        break;
      case LoadBalancer::Hash::kNone:
        break;
      }
      out += "\n";
    }
    out += "  kernel: " +
           (s.kernelRule.empty() ? std::string("no rule, all endpoints") : s.kernelRule.text()) +
           "\n";
    for (const auto& v : s.versions) {
      out += "    " + (versionName(v).empty() ? std::string("*") : versionName(v)) + " " +
             std::to_string(v.weight) + "%";
      if (!v.fallback.empty()) {
        out += " (no endpoints; fallback " + v.fallback + ")";
      }
      out += ":";
      if (v.backends.empty()) {
        out += " no endpoints";
      }
      for (const auto& b : v.backends) {
        out += " " + addrPort(b.addr, b.port);
      }
      out += "\n";
    }
    for (const auto& l : s.lanes) {
      out +=
          "    lane " + l.value + " -> " + (l.subset.empty() ? std::string("*") : l.subset.str()) +
          (l.subset == l.value ? "" : " (fallback: " + l.value + " has no ready endpoint)") + "\n";
    }
    if (s.affinity) {
      out += "  affinity: client pod hash, pinned to its backend for " +
             std::to_string(s.affinityTimeout) + "s idle" +
             (s.affinityTimeout == 0 ? " (no pinning, Maglev only)" : "") + "\n";
    }
    if (!s.routes.empty()) {
      out += "  rules:\n";
      for (const auto& r : s.routes) {
        out += "    " + renderRule(r) + "\n";
      }
    }
  }
  for (const auto& v : plan.virtualHosts) {
    out += "vhost " + v.host + " [" + v.source + "]" +
           (v.tlsSecret.empty() ? "" : " tls=" + v.tlsSecret) + " path=l7 (ingress proxy)\n";
    out += "  rules:\n";
    for (const auto& r : v.routes) {
      out += "    " + renderRule(r) + "\n";
    }
  }
  return out;
}

PlanSummary summarize(const Plan& plan) {
  PlanSummary out;
  for (const auto& s : plan.services) {
    PlanSummary::Service ps;
    ps.id = s.id();
    ps.path = pathName(s.path);
    ps.why = s.why.empty() ? "" : s.why.front().text();
    for (const auto& v : s.versions) {
      PlanSummary::Version pv;
      pv.subset = versionName(v);
      pv.weight = v.weight;
      for (const auto& b : v.backends) {
        pv.backends.push_back(addrPort(b.addr, b.port));
      }
      std::sort(pv.backends.begin(), pv.backends.end());
      ps.versions.push_back(std::move(pv));
    }
    out.services[serviceKey(s)] = std::move(ps);
  }
  for (const auto& v : plan.virtualHosts) {
    PlanSummary::VirtualHost vh;
    vh.source = v.source;
    for (const auto& r : v.routes) {
      const std::string line = renderRule(r);
      const size_t arrow = line.find(" -> ");
      vh.rules.emplace_back(line.substr(0, arrow),
                            arrow == std::string::npos ? "" : line.substr(arrow + 4));
    }
    out.virtualHosts[v.host] = std::move(vh);
  }
  return out;
}

namespace {

std::string versionsLine(const PlanSummary::Service& s) {
  std::string out;
  for (const auto& v : s.versions) {
    out += (out.empty() ? "" : " ") + (v.subset.empty() ? std::string("*") : v.subset) + "=" +
           std::to_string(v.weight);
  }
  return out;
}

/** The virtual host part of a diff: hosts added and removed, rules changed within a host. */
void diffVirtualHosts(const PlanSummary& before, const PlanSummary& after, PlanDiff& d) {
  std::set<std::string> hosts;
  for (const auto& [h, v] : before.virtualHosts) {
    hosts.insert(h);
  }
  for (const auto& [h, v] : after.virtualHosts) {
    hosts.insert(h);
  }
  for (const auto& h : hosts) {
    auto b = before.virtualHosts.find(h);
    auto a = after.virtualHosts.find(h);
    if (b == before.virtualHosts.end()) {
      ++d.added;
      d.text += "+ vhost " + h + " [" + a->second.source +
                "] path=l7: " + std::to_string(a->second.rules.size()) + " rule(s)\n";
      for (const auto& [rule, dests] : a->second.rules) {
        d.text += "    " + rule + " -> " + dests + "\n";
      }
      continue;
    }
    if (a == after.virtualHosts.end()) {
      ++d.removed;
      d.text += "- vhost " + h + " [" + b->second.source + "]\n";
      continue;
    }
    std::vector<std::string> lines;
    if (b->second.source != a->second.source) {
      lines.push_back("source: " + b->second.source + " -> " + a->second.source);
    }
    std::map<std::string, std::string> bm(b->second.rules.begin(), b->second.rules.end());
    std::map<std::string, std::string> am(a->second.rules.begin(), a->second.rules.end());
    std::vector<std::string> bOrder;
    std::vector<std::string> aOrder;
    for (const auto& [rule, dests] : b->second.rules) {
      if (am.count(rule) == 0) {
        lines.push_back("rule removed: " + rule);
      } else {
        bOrder.push_back(rule);
      }
    }
    for (const auto& [rule, dests] : a->second.rules) {
      auto x = bm.find(rule);
      if (x == bm.end()) {
        lines.push_back("rule added: " + rule + " -> " + dests);
        continue;
      }
      aOrder.push_back(rule);
      if (x->second != dests) {
        lines.push_back("rule " + rule + ": " + x->second + " -> " + dests);
      }
    }
    if (bOrder != aOrder) {
      lines.push_back("rule order changed (the first matching rule wins)");
    }
    if (lines.empty()) {
      continue;
    }
    ++d.changed;
    d.text += "~ vhost " + h + " [" + a->second.source + "]\n";
    for (const auto& l : lines) {
      d.text += "    " + l + "\n";
    }
  }
}

} // namespace

PlanDiff diffPlans(const PlanSummary& before, const PlanSummary& after) {
  PlanDiff d;
  std::set<std::string> keys;
  for (const auto& [k, v] : before.services) {
    keys.insert(k);
  }
  for (const auto& [k, v] : after.services) {
    keys.insert(k);
  }
  for (const auto& k : keys) {
    auto b = before.services.find(k);
    auto a = after.services.find(k);
    if (b == before.services.end()) {
      ++d.added;
      d.text += "+ " + a->second.id + " " + k + " path=" + a->second.path + ": " +
                versionsLine(a->second) + "\n";
      continue;
    }
    if (a == after.services.end()) {
      ++d.removed;
      d.text += "- " + b->second.id + " " + k + ": " + versionsLine(b->second) + "\n";
      continue;
    }
    std::vector<std::string> lines;
    if (!b->second.path.empty() && !a->second.path.empty() && b->second.path != a->second.path) {
      lines.push_back("path: " + b->second.path + " -> " + a->second.path +
                      (a->second.why.empty() ? "" : " (" + a->second.why + ")"));
    }
    std::map<std::string, const PlanSummary::Version*> bv;
    std::map<std::string, const PlanSummary::Version*> av;
    for (const auto& v : b->second.versions) {
      bv[v.subset] = &v;
    }
    for (const auto& v : a->second.versions) {
      av[v.subset] = &v;
    }
    std::set<std::string> subsets;
    for (const auto& [s, v] : bv) {
      subsets.insert(s);
    }
    for (const auto& [s, v] : av) {
      subsets.insert(s);
    }
    for (const auto& s : subsets) {
      std::string name = s.empty() ? "*" : s;
      auto x = bv.find(s);
      auto y = av.find(s);
      unsigned wb = x == bv.end() ? 0 : x->second->weight;
      unsigned wa = y == av.end() ? 0 : y->second->weight;
      if (x == bv.end()) {
        lines.push_back("version " + name + " added: weight " + std::to_string(wa) + ", " +
                        std::to_string(y->second->backends.size()) + " backends");
        continue;
      }
      if (y == av.end()) {
        lines.push_back("version " + name + " removed (was weight " + std::to_string(wb) + ")");
        continue;
      }
      if (wb != wa) {
        lines.push_back("weight " + name + ": " + std::to_string(wb) + " -> " + std::to_string(wa));
      }
      if (x->second->backends != y->second->backends) {
        std::string what;
        for (const auto& e : y->second->backends) {
          if (std::find(x->second->backends.begin(), x->second->backends.end(), e) ==
              x->second->backends.end()) {
            what += " +" + e;
          }
        }
        for (const auto& e : x->second->backends) {
          if (std::find(y->second->backends.begin(), y->second->backends.end(), e) ==
              y->second->backends.end()) {
            what += " -" + e;
          }
        }
        lines.push_back("backends " + name + ":" + what);
      }
    }
    if (lines.empty()) {
      continue;
    }
    ++d.changed;
    d.text += "~ " + a->second.id + " " + k + "\n";
    for (const auto& l : lines) {
      d.text += "    " + l + "\n";
    }
  }
  if (before.virtualHostsKnown && after.virtualHostsKnown) {
    diffVirtualHosts(before, after, d);
  }
  d.text += "Plan: " + std::to_string(d.added) + " to add, " + std::to_string(d.changed) +
            " to change, " + std::to_string(d.removed) + " to remove.\n";
  if (!d.changes()) {
    d.text = "No changes. The datapath matches the config.\n";
  }
  return d;
}

namespace {

/** Whether a virtual host name serves host: exact, "*.domain" (one or more labels), "*". */
bool hostServes(const std::string& pattern, const std::string& host) {
  const std::string p = asciiLower(pattern);
  const std::string h = asciiLower(host);
  if (p == "*" || p == h) {
    return true;
  }
  return p.rfind("*.", 0) == 0 && h.size() > p.size() - 1 &&
         h.compare(h.size() - (p.size() - 1), p.size() - 1, p.substr(1)) == 0;
}

/** Why an ingress match entry fails for req ("" when it matches), by the one matcher. */
std::string vhostMismatch(const HttpMatch& m, const RequestView& view) {
  Result<CompiledMatch> cm = CompiledMatch::compile(m);
  if (!cm) {
    return cm.error().message;
  }
  std::string why;
  return cm->matches(view, &why) ? "" : why;
}

} // namespace

Explanation explainVirtualHost(const Plan& plan, const ExplainRequest& req) {
  Explanation ex;
  const PlanVirtualHost* vh = nullptr;
  // The most specific name wins: exact, then the longest wildcard, then "*".
  for (const auto& v : plan.virtualHosts) {
    if (hostServes(v.host, req.host) &&
        (vh == nullptr || (v.host[0] != '*' ? 1000 : v.host.size()) >
                              (vh->host[0] != '*' ? 1000 : vh->host.size()))) {
      vh = &v;
    }
  }
  if (vh == nullptr) {
    ex.text = "no virtual host for " + req.host + " in the plan\n";
    return ex;
  }
  ex.ok = true;
  std::vector<HeaderField> fields;
  for (const auto& [k, v] : req.headers) {
    fields.push_back(HeaderField{k, v});
  }
  RequestView view;
  splitTarget(req.uri, view);
  view.method = req.method;
  view.authority = req.authority.empty() ? req.host : req.authority;
  view.scheme = req.scheme;
  view.headers = fields;
  std::string out = "vhost " + vh->host + " [" + vh->source + "] path=l7 (ingress proxy)\n";
  const PlanRoute* hit = nullptr;
  for (const auto& pr : vh->routes) {
    if (pr.rule->matches.empty()) {
      out += "  " + pr.rule->field + " [" + pr.source + "]: matches (no conditions)\n";
      hit = &pr;
      break;
    }
    std::string why;
    for (const auto& m : pr.rule->matches) {
      std::string r = vhostMismatch(m, view);
      if (r.empty()) {
        out += "  " + pr.rule->field + " [" + pr.source + "]: matches " + m.field + " (" +
               renderMatch(m) + ")\n";
        hit = &pr;
        break;
      }
      why += (why.empty() ? "" : "; ") + r;
    }
    if (hit != nullptr) {
      break;
    }
    out += "  " + pr.rule->field + " [" + pr.source + "]: no (" + why + ")\n";
  }
  if (hit == nullptr) {
    ex.text = out + "-> no rule matches: the ingress answers 404\n";
    return ex;
  }
  out += "  rule: " + renderRule(*hit) + "\n";
  if (hit->rule->destinations.empty()) {
    ex.text = out + "-> answered by the rule itself" +
              (hit->rule->actions->directResponseStatus != 0
                   ? " (" + std::to_string(hit->rule->actions->directResponseStatus) + ")"
                   : std::string()) +
              "\n";
    return ex;
  }
  for (const auto& d : hit->rule->destinations) {
    // d.host is "name.ns"; the Service's port d.port (0: its first port).
    const PlanService* s = findService(plan, d.host, "", d.port);
    out += "-> Service " + d.host + (d.port != 0 ? ":" + std::to_string(d.port) : "") + " " +
           std::to_string(d.weight.value_or(100)) + "%";
    if (s == nullptr) {
      out += ": not in the plan\n";
      continue;
    }
    out += ": " + serviceKey(*s) + " path=" + pathName(s->path) + ",";
    for (const auto& v : s->versions) {
      out += " " + (versionName(v).empty() ? std::string("*") : versionName(v)) + "=" +
             std::to_string(v.weight);
    }
    if (!d.headers->empty()) {
      out += " {" + renderHeaderOps(*d.headers) + " }";
    }
    out += "\n";
  }
  ex.text = out;
  return ex;
}

} // namespace veer
