// Istio networking.istio.io: DestinationRule, VirtualService (matches, routes,
// header operations, L7 actions, delegate), Gateway.

#include <re2/re2.h>

#include <algorithm>

#include "config/loader_internal.h"
#include "common/strings.h"

namespace veer::loading {

bool checkRegex(ObjectParser& p, const yaml::Node& n, const std::string& field,
                const std::string& v) {
  RE2::Options opts;
  opts.set_log_errors(false);
  RE2 re(v, opts);
  if (!re.ok()) {
    p.error(n, field, "invalid regex '" + v + "': " + re.error() + " (RE2 syntax)");
    return false;
  }
  return true;
}

void Loader::loadDr(ObjectParser& p, ObjectMeta meta, const yaml::Node* spec) {
  DestinationRule dr;
  dr.meta = std::move(meta);
  if (spec == nullptr) {
    p.report(Diagnostic::Severity::kError, dr.meta.pos, "spec", "missing spec");
    return;
  }
  auto s = p.fields(*spec, "spec", {"host", "subsets", "trafficPolicy"},
                    {"exportTo", "workloadSelector"}, true);
  if (!s) {
    return;
  }
  const yaml::Node* host = ObjectParser::get(*s, "host");
  if (host == nullptr) {
    p.error(*spec, "spec.host", "missing host");
    return;
  }
  auto h = p.string(*host, "spec.host");
  if (!h) {
    return;
  }
  dr.host = *h;
  dr.hostPos = p.pos(*host);
  auto seconds = [&](const char* annotation, std::optional<uint32_t>& out) {
    auto a = dr.meta.annotations.find(annotation);
    if (a == dr.meta.annotations.end()) {
      return;
    }
    out = parseSeconds(a->second);
    if (!out) {
      p.report(Diagnostic::Severity::kError, dr.meta.pos,
               std::string("metadata.annotations.") + annotation,
               "expected a duration like 3h, 90m, 30s or 0s, got '" + a->second + "'");
    }
  };
  seconds(kAffinityTimeoutAnnotation, dr.affinityTimeout); // 0s: no pinning
  seconds(kRecycleGraceAnnotation, dr.recycleGrace);
  if (const yaml::Node* tp = ObjectParser::get(*s, "trafficPolicy")) {
    dr.loadBalancer = loadTrafficPolicy(p, *tp, "spec.trafficPolicy");
  }
  if (const yaml::Node* subsets = ObjectParser::get(*s, "subsets")) {
    auto items = p.sequence(*subsets, "spec.subsets");
    for (size_t i = 0; i < items.size(); ++i) {
      std::string f = idx("spec.subsets", i);
      auto m = p.fields(items[i], f, {"name", "labels", "trafficPolicy"}, {}, true);
      if (!m) {
        continue;
      }
      Subset sub;
      sub.pos = p.pos(items[i]);
      const yaml::Node* name = ObjectParser::get(*m, "name");
      if (name == nullptr) {
        p.error(items[i], f + ".name", "missing subset name");
        continue;
      }
      auto n = p.string(*name, f + ".name");
      if (!n) {
        continue;
      }
      sub.name = *n;
      bool dup = std::any_of(dr.subsets.begin(), dr.subsets.end(),
                             [&](const Subset& o) { return o.name == sub.name; });
      if (dup) {
        p.error(*name, f + ".name", "subset " + sub.name + " defined twice");
        continue;
      }
      if (const yaml::Node* l = ObjectParser::get(*m, "labels")) {
        sub.labels = p.labels(*l, f + ".labels");
      }
      if (const yaml::Node* tp = ObjectParser::get(*m, "trafficPolicy")) {
        sub.loadBalancer = loadTrafficPolicy(p, *tp, f + ".trafficPolicy");
      }
      dr.subsets.push_back(std::move(sub));
    }
  }
  config().destinationRules.push_back(std::move(dr));
}

std::optional<LoadBalancer> Loader::loadTrafficPolicy(ObjectParser& p, const yaml::Node& n,
                                                      const std::string& f) {
  auto m = p.fields(
      n, f, {"loadBalancer"},
      {"connectionPool", "outlierDetection", "tls", "portLevelSettings", "tunnel", "proxyProtocol"},
      true);
  const yaml::Node* lbn = m ? ObjectParser::get(*m, "loadBalancer") : nullptr;
  if (lbn == nullptr) {
    return std::nullopt;
  }
  std::string lf = f + ".loadBalancer";
  auto lm = p.fields(*lbn, lf, {"simple", "consistentHash"},
                     {"localityLbSetting", "warmupDurationSecs", "warmup"}, true);
  if (!lm) {
    return std::nullopt;
  }
  LoadBalancer lb;
  lb.pos = p.pos(*lbn);
  lb.field = lf;
  const yaml::Node* simple = ObjectParser::get(*lm, "simple");
  const yaml::Node* ch = ObjectParser::get(*lm, "consistentHash");
  if (simple != nullptr && ch != nullptr) {
    p.error(*lbn, lf, "simple and consistentHash are exclusive");
    return std::nullopt;
  }
  if (simple != nullptr) {
    auto v = p.string(*simple, lf + ".simple");
    static const std::vector<std::string> kSimple = {"UNSPECIFIED",   "ROUND_ROBIN", "LEAST_CONN",
                                                     "LEAST_REQUEST", "RANDOM",      "PASSTHROUGH"};
    if (!v) {
      return std::nullopt;
    }
    if (std::find(kSimple.begin(), kSimple.end(), *v) == kSimple.end()) {
      std::string hint = closest(std::string(*v), kSimple);
      p.error(*simple, lf + ".simple",
              "unknown load balancer '" + *v + "'" +
                  (hint.empty() ? "; expected ROUND_ROBIN, LEAST_REQUEST, RANDOM or PASSTHROUGH"
                                : "; did you mean " + hint + "?"));
      return std::nullopt;
    }
    lb.simple = *v;
    return lb;
  }
  if (ch == nullptr) {
    return std::nullopt;
  }
  std::string cf = lf + ".consistentHash";
  auto cm =
      p.fields(*ch, cf, {"httpHeaderName", "httpCookie", "useSourceIp", "httpQueryParameterName"},
               {"ringHash", "maglev", "minimumRingSize"}, true);
  if (!cm) {
    return std::nullopt;
  }
  int keys = 0;
  if (const yaml::Node* x = ObjectParser::get(*cm, "httpHeaderName")) {
    ++keys;
    lb.hash = LoadBalancer::Hash::kHeader;
    lb.hashKey = p.string(*x, cf + ".httpHeaderName").value_or("");
  }
  if (const yaml::Node* x = ObjectParser::get(*cm, "httpQueryParameterName")) {
    ++keys;
    lb.hash = LoadBalancer::Hash::kQueryParam;
    lb.hashKey = p.string(*x, cf + ".httpQueryParameterName").value_or("");
  }
  if (const yaml::Node* x = ObjectParser::get(*cm, "useSourceIp")) {
    ++keys;
    if (p.boolean(*x, cf + ".useSourceIp").value_or(false)) {
      lb.hash = LoadBalancer::Hash::kSourceIp;
    }
  }
  if (const yaml::Node* x = ObjectParser::get(*cm, "httpCookie")) {
    ++keys;
    lb.hash = LoadBalancer::Hash::kCookie;
    if (auto km = p.fields(*x, cf + ".httpCookie", {"name", "path", "ttl"}, {"attributes"}, true)) {
      if (const yaml::Node* y = ObjectParser::get(*km, "name")) {
        lb.hashKey = p.string(*y, cf + ".httpCookie.name").value_or("");
      } else {
        p.error(*x, cf + ".httpCookie.name", "missing name");
      }
      if (const yaml::Node* y = ObjectParser::get(*km, "path")) {
        lb.cookiePath = p.string(*y, cf + ".httpCookie.path").value_or("");
      }
      if (const yaml::Node* y = ObjectParser::get(*km, "ttl")) {
        lb.cookieTtl = p.duration(*y, cf + ".httpCookie.ttl").value_or("");
      }
    }
  }
  if (keys != 1) {
    p.error(*ch, cf,
            "expected exactly one of httpHeaderName, httpCookie, useSourceIp, "
            "httpQueryParameterName");
    return std::nullopt;
  }
  return lb;
}

void Loader::loadVs(ObjectParser& p, ObjectMeta meta, const yaml::Node* spec) {
  VirtualService vs;
  vs.meta = std::move(meta);
  if (spec == nullptr) {
    p.report(Diagnostic::Severity::kError, vs.meta.pos, "spec", "missing spec");
    return;
  }
  auto s = p.fields(*spec, "spec", {"hosts", "http", "tcp", "gateways"}, {"tls", "exportTo"}, true);
  if (!s) {
    return;
  }
  // No hosts: a delegate VirtualService, reachable only through another's http[].delegate.
  if (const yaml::Node* hosts = ObjectParser::get(*s, "hosts")) {
    auto hlist = p.sequence(*hosts, "spec.hosts");
    for (size_t i = 0; i < hlist.size(); ++i) {
      if (auto h = p.string(hlist[i], idx("spec.hosts", i))) {
        vs.hosts.push_back(*h);
        vs.hostPos.push_back(p.pos(hlist[i]));
      }
    }
  }
  bool meshBound = true;
  std::string names;
  const yaml::Node* gw = ObjectParser::get(*s, "gateways");
  if (gw != nullptr) {
    // Istio applies a VirtualService bound to gateways to mesh traffic only if "mesh" is listed.
    auto list = p.sequence(*gw, "spec.gateways");
    bool mesh = false;
    for (size_t i = 0; i < list.size(); ++i) {
      if (auto g = p.string(list[i], idx("spec.gateways", i))) {
        mesh = mesh || *g == "mesh";
        names += (names.empty() ? "" : ", ") + *g;
        vs.gateways.push_back(*g);
      }
    }
    meshBound = list.empty() || mesh;
  }
  // Parse every rule even when the object is ignored below: its errors are still errors.
  loadRoutes(p, ObjectParser::get(*s, "http"), "spec.http", true, vs.http);
  loadRoutes(p, ObjectParser::get(*s, "tcp"), "spec.tcp", false, vs.tcp);
  if (!meshBound) {
    p.warning(*gw, "spec.gateways",
              "bound to gateways (" + names +
                  ") and not to mesh; veer routes mesh traffic only; VirtualService ignored");
    return;
  }
  if (vs.hosts.empty() && ObjectParser::get(*s, "hosts") != nullptr) {
    p.error(*ObjectParser::get(*s, "hosts"), "spec.hosts", "empty hosts");
    return;
  }
  config().virtualServices.push_back(std::move(vs));
}

/** StringMatch: a map with exactly one of exact, prefix, regex. RE2 checks regexes here. */
std::optional<StringMatch> Loader::loadStringMatch(ObjectParser& p, const yaml::Node& n,
                                                   const std::string& f, bool* present) {
  auto m = p.fields(n, f, {"exact", "prefix", "regex"}, {}, true);
  if (!m) {
    return std::nullopt;
  }
  if (m->empty() && present != nullptr) {
    *present = true; // `{}`: present with any value
    return StringMatch{};
  }
  std::optional<StringMatch> out;
  int n1 = 0;
  for (const char* op : {"exact", "prefix", "regex"}) {
    const Entry* e = m->find(op);
    if (e == nullptr) {
      continue;
    }
    ++n1;
    std::string v(e->value.isNull() ? "" : p.string(e->value, f + "." + op).value_or(""));
    StringMatch sm;
    sm.op = std::string(op) == "exact"    ? StringMatch::Op::kExact
            : std::string(op) == "prefix" ? StringMatch::Op::kPrefix
                                          : StringMatch::Op::kRegex;
    sm.value = v;
    sm.pos = p.pos(e->value.isDefined() ? e->value : e->key);
    if (sm.op == StringMatch::Op::kRegex && !checkRegex(p, e->value, f + ".regex", v)) {
      return std::nullopt;
    }
    out = sm;
  }
  if (n1 == 0) {
    p.error(n, f, "expected one of exact, prefix or regex");
    return std::nullopt;
  }
  if (n1 > 1) {
    p.error(n, f, "only one of exact, prefix or regex may be set");
    return std::nullopt;
  }
  return out;
}

ThinVector<KeyMatch> Loader::loadKeyMatches(ObjectParser& p, const yaml::Node& n,
                                            const std::string& f, bool lowercase) {
  ThinVector<KeyMatch> out;
  auto m = p.fields(n, f, {}, {}, false);
  if (!m) {
    return out;
  }
  for (const auto& [k, e] : *m) {
    KeyMatch km;
    km.key = k;
    if (lowercase) {
      km.key = asciiLower(km.key);
    }
    std::optional<StringMatch> sm;
    if (e.value.isNull()) {
      km.present = true;
      sm = StringMatch{};
    } else {
      sm = loadStringMatch(p, e.value, f + "." + std::string(k), &km.present);
    }
    if (!sm) {
      continue;
    }
    km.match = *sm;
    km.match.pos = p.pos(e.key);
    out.push_back(std::move(km));
  }
  return out;
}

std::optional<HttpMatch> Loader::loadMatch(ObjectParser& p, const yaml::Node& n,
                                           const std::string& f, bool http) {
  static const std::vector<std::string_view> kHttp = {
      "name",           "uri",         "scheme",       "method",          "authority", "headers",
      "withoutHeaders", "queryParams", "sourceLabels", "sourceNamespace", "port",      "gateways",
      "ignoreUriCase"};
  static const std::vector<std::string_view> kTcp = {"port", "sourceLabels", "sourceNamespace",
                                                     "gateways"};
  static const std::vector<std::string_view> kHttpUnsupported = {"statPrefix"};
  static const std::vector<std::string_view> kTcpUnsupported = {"destinationSubnets",
                                                                "sourceSubnet"};
  auto m = p.fields(n, f, http ? kHttp : kTcp, http ? kHttpUnsupported : kTcpUnsupported, true);
  if (!m) {
    return std::nullopt;
  }
  HttpMatch hm;
  hm.pos = p.pos(n);
  hm.field = f;
  bool ok = true;
  auto sm = [&](const char* key, Boxed<StringMatch>& out) {
    if (const yaml::Node* v = ObjectParser::get(*m, key)) {
      out = loadStringMatch(p, *v, f + "." + key);
      ok = ok && out.has_value();
    }
  };
  if (const yaml::Node* v = ObjectParser::get(*m, "name")) {
    hm.name = p.string(*v, f + ".name").value_or("");
  }
  sm("uri", hm.uri);
  sm("scheme", hm.scheme);
  sm("method", hm.method);
  sm("authority", hm.authority);
  size_t before = diagCount();
  if (const yaml::Node* v = ObjectParser::get(*m, "headers")) {
    hm.headers = loadKeyMatches(p, *v, f + ".headers", true);
  }
  if (const yaml::Node* v = ObjectParser::get(*m, "withoutHeaders")) {
    hm.withoutHeaders = loadKeyMatches(p, *v, f + ".withoutHeaders", true);
  }
  if (const yaml::Node* v = ObjectParser::get(*m, "queryParams")) {
    hm.queryParams = loadKeyMatches(p, *v, f + ".queryParams", false);
  }
  if (hasErrorsSince(before)) {
    ok = false;
  }
  if (const yaml::Node* v = ObjectParser::get(*m, "sourceLabels")) {
    hm.sourceLabels = p.labels(*v, f + ".sourceLabels");
  }
  if (const yaml::Node* v = ObjectParser::get(*m, "sourceNamespace")) {
    hm.sourceNamespace = p.string(*v, f + ".sourceNamespace").value_or("");
  }
  if (const yaml::Node* v = ObjectParser::get(*m, "port")) {
    auto port = p.port(*v, f + ".port");
    ok = ok && port.has_value();
    hm.port = port.value_or(0);
  }
  if (const yaml::Node* v = ObjectParser::get(*m, "gateways")) {
    auto list = p.sequence(*v, f + ".gateways");
    for (size_t i = 0; i < list.size(); ++i) {
      if (auto g = p.string(list[i], idx(f + ".gateways", i))) {
        hm.gateways.push_back(*g);
      }
    }
  }
  if (const yaml::Node* v = ObjectParser::get(*m, "ignoreUriCase")) {
    auto b = p.boolean(*v, f + ".ignoreUriCase");
    ok = ok && b.has_value();
    hm.ignoreUriCase = b.value_or(false);
  }
  if (!ok) {
    return std::nullopt;
  }
  return hm;
}

void Loader::loadHeaderOps(ObjectParser& p, const yaml::Node& n, const std::string& f,
                           HeaderOps& out) {
  auto m = p.fields(n, f, {"set", "add", "remove"}, {}, true);
  if (!m) {
    return;
  }
  for (const char* op : {"set", "add"}) {
    const yaml::Node* v = ObjectParser::get(*m, op);
    if (v == nullptr) {
      continue;
    }
    if (!v->isMap()) {
      p.error(*v, f + "." + op, "expected a map of header: value, got " + describe(*v));
      continue;
    }
    auto& dst = std::string(op) == "set" ? out.set : out.add;
    for (const auto& [first, second] : v->entries()) {
      if (!first.isScalar()) {
        p.error(first, f + "." + op, "expected a header name");
        continue;
      }
      std::string key(first.scalar());
      if (auto val = p.string(second, f + "." + op + "." + key)) {
        dst.emplace_back(key, *val);
      }
    }
  }
  if (const yaml::Node* v = ObjectParser::get(*m, "remove")) {
    auto list = p.sequence(*v, f + ".remove");
    for (size_t i = 0; i < list.size(); ++i) {
      if (auto h = p.string(list[i], idx(f + ".remove", i))) {
        out.remove.push_back(*h);
      }
    }
  }
}

HeaderActions Loader::loadHeaders(ObjectParser& p, const yaml::Node& n, const std::string& f) {
  HeaderActions h;
  h.pos = p.pos(n);
  auto m = p.fields(n, f, {"request", "response"}, {}, true);
  if (!m) {
    return h;
  }
  if (const yaml::Node* v = ObjectParser::get(*m, "request")) {
    loadHeaderOps(p, *v, f + ".request", h.request);
  }
  if (const yaml::Node* v = ObjectParser::get(*m, "response")) {
    loadHeaderOps(p, *v, f + ".response", h.response);
  }
  return h;
}

std::optional<double> Loader::percent(ObjectParser& p, const yaml::Node& n, const std::string& f) {
  // Percent{value: 50} or a plain number (older mirror_percent / fault percent).
  const yaml::Node* v = &n;
  std::optional<Fields> m;
  if (n.isMap()) {
    m = p.fields(n, f, {"value"}, {}, true);
    if (!m) {
      return std::nullopt;
    }
    v = ObjectParser::get(*m, "value");
    if (v == nullptr) {
      return 0.0;
    }
  }
  if (!v->isScalar()) {
    p.error(*v, f, "expected a percentage, got " + describe(*v));
    return std::nullopt;
  }
  char* end = nullptr;
  const std::string text(v->scalar());
  double d = std::strtod(text.c_str(), &end);
  if (v->scalar().empty() || end == nullptr || *end != '\0' || !(d >= 0 && d <= 100)) {
    p.error(*v, f, "expected a percentage 0..100, got '" + v->scalar() + "'");
    return std::nullopt;
  }
  return d;
}

void Loader::loadActions(ObjectParser& p, const Fields& m, const std::string& f, RouteActions& a) {
  if (const yaml::Node* v = ObjectParser::get(m, "rewrite")) {
    if (auto rm = p.fields(*v, f + ".rewrite", {"uri", "authority"}, {"uriRegexRewrite"}, true)) {
      if (const yaml::Node* u = ObjectParser::get(*rm, "uri")) {
        a.rewriteUri = p.string(*u, f + ".rewrite.uri").value_or("");
      }
      if (const yaml::Node* u = ObjectParser::get(*rm, "authority")) {
        a.rewriteAuthority = p.string(*u, f + ".rewrite.authority").value_or("");
      }
    }
  }
  if (const yaml::Node* v = ObjectParser::get(m, "timeout")) {
    a.timeout = p.duration(*v, f + ".timeout").value_or("");
  }
  if (const yaml::Node* v = ObjectParser::get(m, "retries")) {
    if (auto rm = p.fields(*v, f + ".retries", {"attempts", "perTryTimeout", "retryOn"},
                           {"retryRemoteLocalities"}, true)) {
      if (const yaml::Node* x = ObjectParser::get(*rm, "attempts")) {
        auto n = p.integer(*x, f + ".retries.attempts");
        if (n && *n < 0) {
          p.error(*x, f + ".retries.attempts", "cannot be negative");
        } else {
          a.retryAttempts = n.value_or(-1);
        }
      } else {
        a.retryAttempts = 0; // Istio reads the missing field as 0: no retries
      }
      if (const yaml::Node* x = ObjectParser::get(*rm, "perTryTimeout")) {
        a.retryPerTryTimeout = p.duration(*x, f + ".retries.perTryTimeout").value_or("");
      }
      if (const yaml::Node* x = ObjectParser::get(*rm, "retryOn")) {
        a.retryOn = p.string(*x, f + ".retries.retryOn").value_or("");
        if (Result<RetryOn> on = parseRetryOn(a.retryOn); !on) {
          p.error(*x, f + ".retries.retryOn", on.error().message);
        }
      }
      if (a.retryAttempts == 0 && (!a.retryOn.empty() || !a.retryPerTryTimeout.empty())) {
        p.warning(*v, f + ".retries.attempts",
                  "0 (or unset) disables retries: perTryTimeout and retryOn have no effect");
      }
    }
  }
  if (const yaml::Node* v = ObjectParser::get(m, "mirror")) {
    RouteDestination d;
    d.pos = p.pos(*v);
    d.field = f + ".mirror";
    if (loadTarget(p, *v, f + ".mirror", d.host, d.subset, d.port)) {
      a.mirror = d;
    }
  }
  for (const char* key : {"mirrorPercentage", "mirror_percent", "mirrorPercent"}) {
    if (const yaml::Node* v = ObjectParser::get(m, key)) {
      a.mirrorPercent = percent(p, *v, f + "." + key).value_or(-1);
    }
  }
  if (const yaml::Node* v = ObjectParser::get(m, "fault")) {
    if (auto fm = p.fields(*v, f + ".fault", {"delay", "abort"}, {}, true)) {
      if (const yaml::Node* d = ObjectParser::get(*fm, "delay")) {
        std::string df = f + ".fault.delay";
        if (auto dm = p.fields(*d, df, {"fixedDelay", "percentage", "percent"},
                               {"exponentialDelay"}, true)) {
          if (const yaml::Node* x = ObjectParser::get(*dm, "fixedDelay")) {
            a.faultDelay = p.duration(*x, df + ".fixedDelay").value_or("");
          }
          a.faultDelayPercent = 100;
          for (const char* pk : {"percentage", "percent"}) {
            if (const yaml::Node* x = ObjectParser::get(*dm, pk)) {
              a.faultDelayPercent = percent(p, *x, df + "." + pk).value_or(-1);
            }
          }
        }
      }
      if (const yaml::Node* ab = ObjectParser::get(*fm, "abort")) {
        std::string af = f + ".fault.abort";
        if (auto am = p.fields(*ab, af, {"httpStatus", "percentage"}, {"grpcStatus", "http2Error"},
                               true)) {
          if (const yaml::Node* x = ObjectParser::get(*am, "httpStatus")) {
            auto st = p.integer(*x, af + ".httpStatus");
            if (st && (*st < 200 || *st > 599)) {
              p.error(*x, af + ".httpStatus",
                      "HTTP status " + std::to_string(*st) + " out of range 200..599");
            } else {
              a.faultAbortStatus = st.value_or(0);
            }
          }
          a.faultAbortPercent = 100;
          if (const yaml::Node* x = ObjectParser::get(*am, "percentage")) {
            a.faultAbortPercent = percent(p, *x, af + ".percentage").value_or(-1);
          }
        }
      }
    }
  }
  if (const yaml::Node* v = ObjectParser::get(m, "redirect")) {
    if (auto rm =
            p.fields(*v, f + ".redirect", {"uri", "authority", "redirectCode", "scheme", "port"},
                     {"derivePort"}, true)) {
      std::string r;
      for (const char* k : {"uri", "authority", "scheme"}) {
        if (const yaml::Node* x = ObjectParser::get(*rm, k)) {
          r += std::string(r.empty() ? "" : ",") + k + "=" +
               p.string(*x, f + ".redirect." + k).value_or("");
        }
      }
      a.redirect = r.empty() ? "redirect" : r;
      if (const yaml::Node* x = ObjectParser::get(*rm, "redirectCode")) {
        auto code = p.integer(*x, f + ".redirect.redirectCode");
        if (code && (*code < 300 || *code > 399)) {
          p.error(*x, f + ".redirect.redirectCode",
                  std::to_string(*code) +
                      " is not a redirect code 300..399 (301, 302, 303, 307, 308)");
        } else {
          a.redirectCode = code.value_or(0);
        }
      }
    }
  }
  if (const yaml::Node* v = ObjectParser::get(m, "directResponse")) {
    if (auto dm = p.fields(*v, f + ".directResponse", {"status", "body"}, {}, true)) {
      if (const yaml::Node* x = ObjectParser::get(*dm, "status")) {
        a.directResponseStatus = p.integer(*x, f + ".directResponse.status").value_or(0);
      } else {
        p.error(*v, f + ".directResponse.status", "missing status");
      }
      if (const yaml::Node* b = ObjectParser::get(*dm, "body")) {
        const std::string bf = f + ".directResponse.body";
        if (auto bm = p.fields(*b, bf, {"string"}, {"bytes"}, true)) {
          if (const yaml::Node* x = ObjectParser::get(*bm, "string")) {
            a.directResponseBody = p.string(*x, bf + ".string").value_or("");
            if (a.directResponseBody.size() > kMaxDirectResponseBody) {
              p.error(*x, bf + ".string",
                      std::to_string(a.directResponseBody.size()) + " bytes, over the limit of " +
                          std::to_string(kMaxDirectResponseBody));
              a.directResponseBody.clear();
            }
          }
        }
      }
    }
  }
}

void Loader::loadRoutes(ObjectParser& p, const yaml::Node* list, const std::string& field,
                        bool http, ThinVector<Route>& out) {
  if (list == nullptr) {
    return;
  }
  static const std::vector<std::string_view> kHttpKnown = {
      "name",          "match",   "route",    "headers",          "rewrite",
      "timeout",       "retries", "mirror",   "mirrorPercentage", "mirror_percent",
      "mirrorPercent", "fault",   "delegate", "redirect",         "directResponse"};
  static const std::vector<std::string_view> kHttpUnsupported = {"mirrors", "corsPolicy"};
  static const std::vector<std::string_view> kTcpKnown = {"match", "route"};
  auto items = p.sequence(*list, field);
  out.reserve(out.size() + items.size()); // exact: a Route is a kilobyte
  for (size_t i = 0; i < items.size(); ++i) {
    std::string f = idx(field, i);
    size_t before = diagCount();
    auto m = p.fields(items[i], f, http ? kHttpKnown : kTcpKnown,
                      http ? Names(kHttpUnsupported) : Names{}, true);
    if (!m) {
      continue;
    }
    Route r;
    r.pos = p.pos(items[i]);
    r.field = f;
    if (const yaml::Node* n = ObjectParser::get(*m, "name")) {
      r.name = p.string(*n, f + ".name").value_or("");
    }
    if (const yaml::Node* match = ObjectParser::get(*m, "match")) {
      auto ml = p.sequence(*match, f + ".match");
      r.matches.reserve(ml.size());
      for (size_t j = 0; j < ml.size(); ++j) {
        if (auto hm = loadMatch(p, ml[j], idx(f + ".match", j), http)) {
          r.matches.push_back(std::move(*hm));
        }
      }
    }
    if (http) {
      if (const yaml::Node* h = ObjectParser::get(*m, "headers")) {
        r.headers = loadHeaders(p, *h, f + ".headers");
      }
      RouteActions actions;
      loadActions(p, *m, f, actions);
      r.actions = std::move(actions); // stays unset when the rule sets none
      if (const yaml::Node* d = ObjectParser::get(*m, "delegate")) {
        if (auto dg = loadDelegate(p, *d, f + ".delegate")) {
          r.delegate = std::move(*dg);
        }
      }
    }
    const yaml::Node* route = ObjectParser::get(*m, "route");
    if (route == nullptr) {
      if (!r.delegate && r.actions->redirect.empty() && r.actions->directResponseStatus == 0 &&
          !hasErrorsSince(before)) {
        p.error(items[i], f + ".route", "missing route");
      }
      if (r.delegate || !r.actions->redirect.empty() || r.actions->directResponseStatus != 0) {
        out.push_back(std::move(r));
      }
      continue;
    }
    if (r.delegate) {
      p.error(*route, f + ".route", "route and delegate are exclusive; delegate is set");
      continue;
    }
    auto dests = p.sequence(*route, f + ".route");
    bool anyWeight = false;
    for (const auto& d : dests) {
      for (const auto& [k, v] : d.entries()) {
        anyWeight = anyWeight || k.scalar() == "weight";
      }
    }
    r.destinations.reserve(dests.size());
    for (size_t j = 0; j < dests.size(); ++j) {
      std::string df = idx(f + ".route", j);
      if (auto d = loadDestination(p, dests[j], df, http, anyWeight)) {
        r.destinations.push_back(std::move(*d));
      }
    }
    out.push_back(std::move(r));
  }
}

std::optional<Delegate> Loader::loadDelegate(ObjectParser& p, const yaml::Node& n,
                                             const std::string& f) {
  auto m = p.fields(n, f, {"name", "namespace"}, {}, true);
  if (!m) {
    return std::nullopt;
  }
  Delegate dg;
  dg.pos = p.pos(n);
  if (const yaml::Node* x = ObjectParser::get(*m, "name")) {
    dg.name = p.string(*x, f + ".name").value_or("");
  }
  if (const yaml::Node* x = ObjectParser::get(*m, "namespace")) {
    dg.ns = p.string(*x, f + ".namespace").value_or("");
  }
  if (dg.name.empty()) {
    p.error(n, f + ".name", "missing name");
    return std::nullopt;
  }
  return dg;
}

/** host, subset, port{number} of a Destination (also mirror and fallback targets). */
bool Loader::loadTarget(ObjectParser& p, const yaml::Node& dest, const std::string& df, Str& host,
                        Str& subset, uint16_t& portOut, bool siblingsWeighted, bool hasWeight) {
  auto dm = p.fields(dest, df, {"host", "subset", "port"}, {}, true);
  if (!dm) {
    return false;
  }
  const yaml::Node* h = ObjectParser::get(*dm, "host");
  if (h == nullptr) {
    p.error(dest, df + ".host", "missing host");
    return false;
  }
  auto hs = p.string(*h, df + ".host");
  if (!hs) {
    return false;
  }
  host = *hs;
  if (const yaml::Node* sub = ObjectParser::get(*dm, "subset")) {
    auto v = p.string(*sub, df + ".subset");
    if (!v) {
      return false;
    }
    subset = *v;
  }
  if (const yaml::Node* port = ObjectParser::get(*dm, "port")) {
    if (!port->isMap()) {
      int64_t v = 0;
      bool num = port->isScalar() && parseInt(port->scalar(), v);
      std::string hint = num ? "; write port: {number: " + port->scalar() + "}" : "";
      if (num && !hasWeight && siblingsWeighted) {
        hint += ", or did you mean weight: " + port->scalar() + "?";
      }
      p.error(*port, df + ".port", "expected a map with number, got " + describe(*port) + hint);
      return false;
    }
    auto pm = p.fields(*port, df + ".port", {"number"}, {}, true);
    const yaml::Node* num = pm ? ObjectParser::get(*pm, "number") : nullptr;
    if (num == nullptr) {
      p.error(*port, df + ".port.number", "missing number");
      return false;
    }
    auto v = p.port(*num, df + ".port.number");
    if (!v) {
      return false;
    }
    portOut = *v;
  }
  return true;
}

std::optional<RouteDestination> Loader::loadDestination(ObjectParser& p, const yaml::Node& n,
                                                        const std::string& f, bool http,
                                                        bool siblingsWeighted) {
  static const std::vector<std::string_view> kHttpKnown = {"destination", "weight", "headers",
                                                           "fallback"};
  static const std::vector<std::string_view> kTcpKnown = {"destination", "weight"};
  const auto& kKnown = http ? kHttpKnown : kTcpKnown;
  if (!n.isMap()) {
    p.error(n, f, "expected a map, got " + describe(n));
    return std::nullopt;
  }
  // "port: 5" beside destination, where weight was meant (Contour's docs do this).
  std::optional<Entry> stray; // the last port, as a map of the entries kept
  bool hasWeight = false;
  for (const auto& [first, second] : n.entries()) {
    if (first.isScalar() && first.scalar() == "port") {
      stray = Entry{first, second};
    }
    hasWeight = hasWeight || (first.isScalar() && first.scalar() == "weight");
  }
  bool strayPortHint = stray && !hasWeight && siblingsWeighted;
  if (strayPortHint) {
    int64_t v = 0;
    std::string val(stray->value.isScalar() ? stray->value.scalar() : "");
    bool num = parseInt(val, v);
    p.error(
        stray->key, f + ".port",
        "unknown field port" +
            std::string(num ? "; did you mean weight: " + val + "?" : "; did you mean weight?") +
            " (the other destinations have weights)");
  }
  auto m = p.fields(n, f, kKnown, {}, !strayPortHint);
  if (!m) {
    return std::nullopt;
  }
  if (strayPortHint) {
    // Report other unknowns too, but not port again.
    for (const auto& [key, e] : *m) {
      const std::string k(key);
      if (k != "port" && std::find(kKnown.begin(), kKnown.end(), k) == kKnown.end()) {
        std::string hint = closest(k, std::vector<std::string>(kKnown.begin(), kKnown.end()));
        p.warning(e.key, f + "." + k,
                  "unknown field " + k + (hint.empty() ? "" : "; did you mean " + hint + "?"));
      }
    }
  }
  RouteDestination rd;
  rd.pos = p.pos(n);
  rd.field = f;
  if (const yaml::Node* w = ObjectParser::get(*m, "weight")) {
    auto v = p.integer(*w, f + ".weight");
    if (!v) {
      return std::nullopt;
    }
    rd.weight = *v;
  }
  const yaml::Node* dest = ObjectParser::get(*m, "destination");
  if (dest == nullptr) {
    p.error(n, f + ".destination", "missing destination");
    return std::nullopt;
  }
  if (!loadTarget(p, *dest, f + ".destination", rd.host, rd.subset, rd.port, siblingsWeighted,
                  rd.weight.has_value())) {
    return std::nullopt;
  }
  if (const yaml::Node* h = ObjectParser::get(*m, "headers")) {
    rd.headers = loadHeaders(p, *h, f + ".headers");
  }
  if (const yaml::Node* fb = ObjectParser::get(*m, "fallback")) {
    std::string ff = f + ".fallback";
    auto fm = p.fields(*fb, ff, {"case", "target"}, {}, true);
    if (!fm) {
      return std::nullopt;
    }
    Fallback out;
    out.pos = p.pos(*fb);
    if (const yaml::Node* c = ObjectParser::get(*fm, "case")) {
      auto cs = p.string(*c, ff + ".case");
      if (!cs) {
        return std::nullopt;
      }
      size_t start = 0;
      while (start <= cs->size()) {
        size_t bar = cs->find('|', start);
        std::string one(
            cs->substr(start, bar == std::string::npos ? std::string::npos : bar - start));
        if (one != "noinstances" && one != "noavailabled") {
          std::string hint = closest(one, {"noinstances", "noavailabled"});
          p.error(*c, ff + ".case",
                  "unknown fallback case '" + one + "'; expected noinstances or noavailabled" +
                      (hint.empty() ? "" : " (did you mean " + hint + "?)"));
          return std::nullopt;
        }
        out.cases.push_back(one);
        if (bar == std::string::npos) {
          break;
        }
        start = bar + 1;
      }
    } else {
      out.cases = {"noinstances", "noavailabled"};
    }
    const yaml::Node* t = ObjectParser::get(*fm, "target");
    if (t == nullptr) {
      p.error(*fb, ff + ".target", "missing target");
      return std::nullopt;
    }
    if (!loadTarget(p, *t, ff + ".target", out.host, out.subset, out.port)) {
      return std::nullopt;
    }
    rd.fallback = out;
  }
  return rd;
}

void Loader::loadGateway(ObjectParser& p, ObjectMeta meta, const yaml::Node* spec) {
  Gateway gw;
  gw.meta = std::move(meta);
  if (spec == nullptr) {
    p.report(Diagnostic::Severity::kError, gw.meta.pos, "spec", "missing spec");
    return;
  }
  auto s = p.fields(*spec, "spec", {"selector", "servers"}, {}, true);
  if (!s) {
    return;
  }
  if (const yaml::Node* sel = ObjectParser::get(*s, "selector")) {
    gw.selector = p.labels(*sel, "spec.selector");
  }
  if (const yaml::Node* servers = ObjectParser::get(*s, "servers")) {
    auto items = p.sequence(*servers, "spec.servers");
    for (size_t i = 0; i < items.size(); ++i) {
      std::string f = idx("spec.servers", i);
      auto m = p.fields(items[i], f, {"port", "hosts", "name", "bind", "tls", "defaultEndpoint"},
                        {}, true);
      if (!m) {
        continue;
      }
      Gateway::Server srv;
      srv.pos = p.pos(items[i]);
      const yaml::Node* port = ObjectParser::get(*m, "port");
      if (port == nullptr) {
        p.error(items[i], f + ".port", "missing port");
        continue;
      }
      auto pm =
          p.fields(*port, f + ".port", {"number", "name", "protocol", "targetPort"}, {}, true);
      if (!pm) {
        continue;
      }
      if (const yaml::Node* x = ObjectParser::get(*pm, "number")) {
        srv.port = p.port(*x, f + ".port.number").value_or(0);
      } else {
        p.error(*port, f + ".port.number", "missing number");
      }
      if (const yaml::Node* x = ObjectParser::get(*pm, "name")) {
        srv.portName = p.string(*x, f + ".port.name").value_or("");
      }
      if (const yaml::Node* x = ObjectParser::get(*pm, "protocol")) {
        srv.protocol = p.string(*x, f + ".port.protocol").value_or("");
        static const std::vector<std::string> kProtos = {"HTTP",  "HTTPS", "GRPC", "HTTP2",
                                                         "MONGO", "TCP",   "TLS"};
        if (std::find(kProtos.begin(), kProtos.end(), srv.protocol) == kProtos.end()) {
          std::string hint = closest(srv.protocol, kProtos);
          p.error(*x, f + ".port.protocol",
                  "unknown protocol '" + srv.protocol + "'" +
                      (hint.empty() ? "" : "; did you mean " + hint + "?"));
        }
      }
      const yaml::Node* hosts = ObjectParser::get(*m, "hosts");
      if (hosts == nullptr) {
        p.error(items[i], f + ".hosts", "missing hosts");
        continue;
      }
      auto hl = p.sequence(*hosts, f + ".hosts");
      for (size_t j = 0; j < hl.size(); ++j) {
        if (auto h = p.string(hl[j], idx(f + ".hosts", j))) {
          srv.hosts.push_back(*h);
        }
      }
      gw.servers.push_back(std::move(srv));
    }
  }
  config().gateways.push_back(std::move(gw));
}

} // namespace veer::loading
