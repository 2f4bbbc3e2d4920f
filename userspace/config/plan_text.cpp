// Plan rendering, diffs and request explanation. Pure: no I/O.

#include "config/plan_text.h"

#include <re2/re2.h>

#include <algorithm>
#include <set>

namespace veer {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string quote(const std::string& s) { return "'" + s + "'"; }

std::string addrPort(const IpAddr& a, uint16_t port) {
  std::string s = a.str();
  if (!a.v4) {
    s = "[" + s + "]";
  }
  return s + ":" + std::to_string(port);
}

std::string protoName(uint8_t p) { return p == 17 ? "udp" : "tcp"; }

std::string key(const PlanService& s) { return addrPort(s.addr, s.port) + "/" + protoName(s.proto); }

std::string renderSm(const StringMatch& m) { return std::string(m.opName()) + " " + quote(m.value); }

std::string renderMatch(const HttpMatch& m) {
  std::vector<std::string> parts;
  for (const auto& [name, opt] : {std::pair{"uri", &m.uri}, {"scheme", &m.scheme},
                                  {"method", &m.method}, {"authority", &m.authority}}) {
    if (*opt) {
      parts.push_back(std::string(name) + " " + renderSm(**opt) +
                      (m.ignoreUriCase && std::string(name) == "uri" ? " (ignore case)" : ""));
    }
  }
  for (const auto& [name, list] : {std::pair{"headers", &m.headers},
                                   {"withoutHeaders", &m.withoutHeaders},
                                   {"queryParams", &m.queryParams}}) {
    for (const KeyMatch& k : *list) {
      parts.push_back(std::string(name) + "[" + k.key + "] " +
                      (k.present ? std::string("present") : renderSm(k.match)));
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

std::string renderDest(const RouteDestination& d) {
  std::string out = d.subset.empty() ? d.host : d.subset;
  if (d.port != 0) {
    out += ":" + std::to_string(d.port);
  }
  out += "=" + std::to_string(d.weight.value_or(100));
  if (d.fallback) {
    out += " (fallback " + d.fallback->subset + ")";
  }
  if (!d.headers.empty()) {
    out += " {" + renderHeaderOps(d.headers) + " }";
  }
  return out;
}

const PlanService* findService(const Plan& plan, const std::string& host, const std::string& ns,
                               uint16_t port) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t dot = host.find('.', start);
    parts.push_back(host.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) {
      break;
    }
    start = dot + 1;
  }
  std::string name = parts[0];
  std::string sns = parts.size() >= 2 ? parts[1] : ns;
  for (const auto& s : plan.services) {
    if (s.name == name && s.ns == sns && (port == 0 || s.port == port)) {
      return &s;
    }
  }
  return nullptr;
}

bool labelsMatch(const Labels& have, const Labels& want) {
  for (const auto& [k, v] : want) {
    auto it = have.find(k);
    if (it == have.end() || it->second != v) {
      return false;
    }
  }
  return true;
}

} // namespace

bool stringMatches(const StringMatch& m, const std::string& value, bool ignoreCase) {
  std::string v = ignoreCase ? lower(value) : value;
  std::string want = ignoreCase && m.op != StringMatch::Op::kRegex ? lower(m.value) : m.value;
  switch (m.op) {
  case StringMatch::Op::kExact:
    return v == want;
  case StringMatch::Op::kPrefix:
    return v.compare(0, want.size(), want) == 0;
  case StringMatch::Op::kRegex: {
    RE2::Options opts;
    opts.set_log_errors(false);
    opts.set_case_sensitive(!ignoreCase);
    RE2 re(want, opts);
    return re.ok() && RE2::FullMatch(value, re);
  }
  }
  return false;
}

std::string renderRule(const PlanRoute& pr) {
  const Route& r = pr.rule;
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
  const RouteActions& a = r.actions;
  if (!a.redirect.empty()) {
    out += " redirect(" + a.redirect + ")";
  }
  if (a.directResponseStatus != 0) {
    out += " respond " + std::to_string(a.directResponseStatus);
  }
  std::string extra = renderHeaderOps(r.headers);
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
    out += s.id() + " " + key(s) + (s.portName.empty() ? "" : " (" + s.portName + ")") +
           " path=" + pathName(s.path) + "\n";
    for (const auto& w : s.why) {
      out += "  why: " + w + "\n";
    }
    if (s.loadBalancer) {
      const LoadBalancer& lb = *s.loadBalancer;
      out += "  loadBalancer: " + (lb.simple.empty() ? std::string("consistentHash") : lb.simple);
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
    out += "  kernel: " + (s.kernelRule.empty() ? std::string("no rule, all endpoints") : s.kernelRule) +
           "\n";
    for (const auto& v : s.versions) {
      out += "    " + (v.subset.empty() ? std::string("*") : v.subset) + " " +
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
      out += "    lane " + l.value + " -> " + (l.subset.empty() ? std::string("*") : l.subset) +
             (l.subset == l.value ? "" : " (fallback: " + l.value + " has no ready endpoint)") +
             "\n";
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
    ps.why = s.why.empty() ? "" : s.why.front();
    for (const auto& v : s.versions) {
      PlanSummary::Version pv;
      pv.subset = v.subset;
      pv.weight = v.weight;
      for (const auto& b : v.backends) {
        pv.backends.push_back(addrPort(b.addr, b.port));
      }
      std::sort(pv.backends.begin(), pv.backends.end());
      ps.versions.push_back(std::move(pv));
    }
    out.services[key(s)] = std::move(ps);
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
  d.text += "Plan: " + std::to_string(d.added) + " to add, " + std::to_string(d.changed) +
            " to change, " + std::to_string(d.removed) + " to remove.\n";
  if (!d.changes()) {
    d.text = "No changes. The datapath matches the config.\n";
  }
  return d;
}

namespace {

/** Why a match entry fails for req, or "" when it matches. */
std::string mismatch(const HttpMatch& m, const ExplainRequest& req, const PlanService& s,
                     const std::map<std::string, std::string>& headers,
                     const std::map<std::string, std::string>& query, const Pod* pod) {
  std::string path = req.uri.substr(0, req.uri.find('?'));
  auto check = [&](const char* what, const std::optional<StringMatch>& sm, const std::string& v,
                   bool ic) -> std::string {
    if (sm && !stringMatches(*sm, v, ic)) {
      return std::string(what) + " " + quote(v) + " is not " + renderSm(*sm);
    }
    return "";
  };
  std::string r;
  if (!(r = check("uri", m.uri, path, m.ignoreUriCase)).empty() ||
      !(r = check("scheme", m.scheme, req.scheme, false)).empty() ||
      !(r = check("method", m.method, req.method, false)).empty() ||
      !(r = check("authority", m.authority, req.authority.empty() ? req.host : req.authority,
                  false))
           .empty()) {
    return r;
  }
  for (const auto& k : m.headers) {
    auto it = headers.find(k.key);
    if (it == headers.end()) {
      return "header " + k.key + " is absent";
    }
    if (!k.present && !stringMatches(k.match, it->second)) {
      return "header " + k.key + " " + quote(it->second) + " is not " + renderSm(k.match);
    }
  }
  for (const auto& k : m.withoutHeaders) {
    auto it = headers.find(k.key);
    if (it != headers.end() && (k.present || stringMatches(k.match, it->second))) {
      return "header " + k.key + " " + quote(it->second) + " must not be " +
             (k.present ? std::string("present") : renderSm(k.match));
    }
  }
  for (const auto& k : m.queryParams) {
    auto it = query.find(k.key);
    if (it == query.end()) {
      return "query parameter " + k.key + " is absent";
    }
    if (!k.present && !stringMatches(k.match, it->second)) {
      return "query parameter " + k.key + " " + quote(it->second) + " is not " + renderSm(k.match);
    }
  }
  if (!m.sourceLabels.empty()) {
    if (pod == nullptr) {
      return "sourceLabels need the client pod (--from-pod)";
    }
    if (!labelsMatch(pod->meta.labels, m.sourceLabels)) {
      return "pod " + pod->meta.ns + "/" + pod->meta.name + " lacks the sourceLabels";
    }
  }
  if (!m.sourceNamespace.empty() && (pod == nullptr || pod->meta.ns != m.sourceNamespace)) {
    return "client is not in namespace " + m.sourceNamespace;
  }
  if (m.port != 0 && m.port != s.port) {
    return "port " + std::to_string(s.port) + " is not " + std::to_string(m.port);
  }
  if (!m.gateways.empty() &&
      std::find(m.gateways.begin(), m.gateways.end(), "mesh") == m.gateways.end()) {
    return "applies to gateways only, not mesh traffic";
  }
  return "";
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
  ex.ok = true;
  std::map<std::string, std::string> headers;
  for (const auto& [k, v] : req.headers) {
    headers[lower(k)] = v;
  }
  if (!req.cookies.empty()) {
    std::string c = headers.count("cookie") ? headers["cookie"] : "";
    for (const auto& [k, v] : req.cookies) {
      c += (c.empty() ? "" : "; ") + k + "=" + v;
    }
    headers["cookie"] = c;
  }
  std::map<std::string, std::string> query;
  if (size_t q = req.uri.find('?'); q != std::string::npos) {
    std::string qs = req.uri.substr(q + 1);
    size_t start = 0;
    while (start < qs.size()) {
      size_t amp = qs.find('&', start);
      std::string kv = qs.substr(start, amp == std::string::npos ? std::string::npos : amp - start);
      size_t eq = kv.find('=');
      query[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
      if (amp == std::string::npos) {
        break;
      }
      start = amp + 1;
    }
  }
  const Pod* pod = nullptr;
  if (!req.fromPod.empty()) {
    std::string pns = req.ns;
    std::string pname = req.fromPod;
    if (size_t sl = pname.find('/'); sl != std::string::npos) {
      pns = pname.substr(0, sl);
      pname = pname.substr(sl + 1);
    }
    for (const auto& p : config.pods) {
      if (p.meta.ns == pns && p.meta.name == pname) {
        pod = &p;
      }
    }
    if (pod == nullptr) {
      ex.ok = false;
      ex.text = "no pod " + pns + "/" + pname + " in the config\n";
      return ex;
    }
  }
  std::string out = "service " + s->id() + " " + key(*s) + " path=" + pathName(s->path) + "\n";
  const PlanRoute* hit = nullptr;
  for (const auto& pr : s->routes) {
    if (pr.rule.matches.empty()) {
      out += "  " + pr.rule.field + ": matches (no conditions)\n";
      hit = &pr;
      break;
    }
    std::string why;
    for (const auto& m : pr.rule.matches) {
      std::string r = mismatch(m, req, *s, headers, query, pod);
      if (r.empty()) {
        out += "  " + pr.rule.field + ": matches " + m.field + " (" + renderMatch(m) + ")\n";
        hit = &pr;
        break;
      }
      why += (why.empty() ? "" : "; ") + m.field + ": " + r;
    }
    if (hit != nullptr) {
      break;
    }
    out += "  " + pr.rule.field + ": no (" + why + ")\n";
  }
  if (s->routes.empty()) {
    out += "  no VirtualService rules\n";
  }
  if (hit == nullptr) {
    out += "-> ";
    if (!s->routes.empty()) {
      out += "no rule matches: Istio answers 404; ";
    }
    out += "the service's endpoints, split as the kernel does:";
    for (const auto& v : s->versions) {
      out += " " + (v.subset.empty() ? std::string("*") : v.subset) + "=" + std::to_string(v.weight);
    }
    ex.text = out + "\n";
    return ex;
  }
  out += "  rule: " + renderRule(*hit) + "\n";
  if (hit->rule.destinations.empty()) {
    ex.text = out + "-> answered by the rule itself\n";
    return ex;
  }
  // Subset -> backends, from the config's pods (the plan only has the kernel rule's).
  const Service* svc = nullptr;
  for (const auto& sv : config.services) {
    if (sv.meta.ns == s->ns && sv.meta.name == s->name) {
      svc = &sv;
    }
  }
  const DestinationRule* dr = nullptr;
  for (const auto& d : config.destinationRules) {
    std::string first = d.host.substr(0, d.host.find('.'));
    std::string rest = d.host.find('.') == std::string::npos ? d.meta.ns
                                                             : d.host.substr(d.host.find('.') + 1);
    rest = rest.substr(0, rest.find('.'));
    if (first == s->name && rest == s->ns) {
      dr = &d;
    }
  }
  auto backends = [&](const std::string& subset, bool* defined) {
    std::vector<std::string> names;
    Labels want = svc ? svc->selector : Labels{};
    *defined = subset.empty();
    if (dr != nullptr) {
      for (const auto& sub : dr->subsets) {
        if (sub.name == subset) {
          *defined = true;
          for (const auto& [k, v] : sub.labels) {
            want[k] = v;
          }
        }
      }
    }
    if (!*defined || svc == nullptr) {
      return names;
    }
    for (const auto& p : config.pods) {
      if (p.meta.ns == s->ns && p.ready && !want.empty() && labelsMatch(p.meta.labels, want)) {
        names.push_back(p.meta.ns + "/" + p.meta.name);
      }
    }
    std::sort(names.begin(), names.end());
    return names;
  };
  for (const auto& d : hit->rule.destinations) {
    std::string subset = d.subset;
    std::string note;
    if (!subset.empty() && subset[0] == '$') {
      std::string label = subset.substr(1);
      std::string value;
      for (const auto& tl : config.trafficLabels) {
        for (const auto& l : tl.labels) {
          if (l.name != label || !value.empty()) {
            continue;
          }
          for (const auto& src : l.valueFrom) {
            if (!value.empty()) {
              break;
            }
            if (src.kind == TrafficLabel::Source::Kind::kContext && headers.count(src.value)) {
              value = headers[src.value];
              note = " (" + subset + " = " + quote(value) + " from header " + src.value + ")";
            } else if (src.kind == TrafficLabel::Source::Kind::kLocalLabel && pod != nullptr &&
                       pod->meta.labels.count(src.value)) {
              value = pod->meta.labels.at(src.value);
              note = " (" + subset + " = " + quote(value) + " from pod label " + src.value + ")";
            } else if (src.kind == TrafficLabel::Source::Kind::kLiteral) {
              value = src.value;
              note = " (" + subset + " = literal " + quote(value) + ")";
            }
          }
        }
      }
      if (value.empty()) {
        note = " (" + subset + ": no value from the request or the client pod)";
      }
      subset = value;
    }
    bool defined = false;
    auto names = backends(subset, &defined);
    if ((subset.empty() && !d.subset.empty()) || !defined || names.empty()) {
      if (d.fallback) {
        note += std::string(" -> fallback ") + d.fallback->subset + " (" +
                (subset.empty() || !defined ? "noinstances: subset undefined" : "no ready pods") + ")";
        subset = d.fallback->subset;
        names = backends(subset, &defined);
      }
    }
    out += "-> " + (subset.empty() ? d.host : subset) + " " +
           std::to_string(d.weight.value_or(100)) + "%" + note + ":";
    if (names.empty()) {
      out += " no ready pods";
    }
    for (const auto& n : names) {
      out += " " + n;
    }
    if (!d.headers.empty()) {
      out += " {" + renderHeaderOps(d.headers) + " }";
    }
    out += "\n";
  }
  if (s->path == PlanPath::kL7) {
    out += "note: path=l7; until the L7 proxy runs, the kernel applies " +
           (s->kernelRule.empty() ? std::string("all endpoints") : s->kernelRule) + " to every connection\n";
  }
  ex.text = out;
  return ex;
}

} // namespace veer
