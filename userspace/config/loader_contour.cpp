// Contour IngressRoute (contour.heptio.com/v1beta1) and HTTPProxy (projectcontour.io/v1),
// read as VirtualService-shaped objects into Config::ingressRoutes.

#include <re2/re2.h>

#include <algorithm>

#include "config/loader_internal.h"
#include "common/strings.h"

namespace veer::loading {

/**
 * Contour IngressRoute (contour.heptio.com/v1beta1) or HTTPProxy (projectcontour.io/v1)
 * as a VirtualService-shaped object in Config::ingressRoutes. Weights are kept as
 * written (relative); ingress.cpp normalizes them.
 */
void Loader::loadContour(ObjectParser& p, ObjectMeta meta, const yaml::Node* spec) {
  const bool proxy = meta.kind == "HTTPProxy";
  const size_t start = diagCount();
  VirtualService vs;
  vs.meta = std::move(meta);
  if (spec == nullptr) {
    p.report(Diagnostic::Severity::kError, vs.meta.pos, "spec", "missing spec");
    return;
  }
  static const std::vector<std::string_view> kProxySpec = {"virtualhost", "routes", "includes"};
  static const std::vector<std::string_view> kRouteSpec = {"virtualhost", "routes"};
  auto s = p.fields(*spec, "spec", proxy ? kProxySpec : kRouteSpec,
                    {"tcpproxy", "ingressClassName"}, true);
  if (!s) {
    return;
  }
  if (const yaml::Node* vh = ObjectParser::get(*s, "virtualhost")) {
    auto v = p.fields(*vh, "spec.virtualhost", {"fqdn", "tls"},
                      {"corsPolicy", "rateLimitPolicy", "authorization", "jwtProviders",
                       "ipAllowPolicy", "ipDenyPolicy"},
                      true);
    if (v) {
      const yaml::Node* fqdn = ObjectParser::get(*v, "fqdn");
      if (fqdn == nullptr) {
        p.error(*vh, "spec.virtualhost.fqdn", "missing fqdn");
      } else if (auto h = p.string(*fqdn, "spec.virtualhost.fqdn")) {
        if (h->empty() || h->find_first_of(" /:*") != std::string::npos) {
          p.error(*fqdn, "spec.virtualhost.fqdn", "'" + *h + "' is not a host name");
        } else {
          vs.hosts.push_back(*h);
          vs.hostPos.push_back(p.pos(*fqdn));
        }
      }
      if (const yaml::Node* tls = ObjectParser::get(*v, "tls")) {
        if (auto t = p.fields(*tls, "spec.virtualhost.tls", {"secretName"},
                              {"minimumProtocolVersion", "passthrough", "clientValidation",
                               "enableFallbackCertificate", "maximumProtocolVersion"},
                              true)) {
          if (const yaml::Node* sn = ObjectParser::get(*t, "secretName")) {
            vs.tlsSecret = p.string(*sn, "spec.virtualhost.tls.secretName").value_or("");
          }
        }
      }
    }
  }
  if (const yaml::Node* routes = ObjectParser::get(*s, "routes")) {
    auto items = p.sequence(*routes, "spec.routes");
    for (size_t i = 0; i < items.size(); ++i) {
      if (auto r = loadContourRoute(p, items[i], idx("spec.routes", i), proxy, false)) {
        vs.http.push_back(std::move(*r));
      }
    }
  }
  if (const yaml::Node* inc = proxy ? ObjectParser::get(*s, "includes") : nullptr) {
    auto items = p.sequence(*inc, "spec.includes");
    for (size_t i = 0; i < items.size(); ++i) {
      if (auto r = loadContourRoute(p, items[i], idx("spec.includes", i), proxy, true)) {
        vs.http.push_back(std::move(*r));
      }
    }
  }
  if (vs.http.empty() && !hasErrorsSince(start)) {
    p.report(Diagnostic::Severity::kWarning, vs.meta.pos, "spec",
             proxy ? "no routes or includes; nothing to route" : "no routes; nothing to route");
  }
  config().ingressRoutes.push_back(std::move(vs));
}

/** One Contour route (or HTTPProxy include when include) as a Route. */
std::optional<Route> Loader::loadContourRoute(ObjectParser& p, const yaml::Node& n,
                                              const std::string& f, bool proxy, bool include) {
  static const std::vector<std::string_view> kIrKnown = {"match", "services", "delegate"};
  static const std::vector<std::string_view> kIrUnsupported = {"permitInsecure", "enableWebsockets",
                                                               "prefixRewrite",  "timeoutPolicy",
                                                               "retryPolicy",    "headersPolicy"};
  static const std::vector<std::string_view> kHpKnown = {"conditions", "services"};
  static const std::vector<std::string_view> kHpUnsupported = {"enableWebsockets",
                                                               "permitInsecure",
                                                               "timeoutPolicy",
                                                               "retryPolicy",
                                                               "pathRewritePolicy",
                                                               "requestHeadersPolicy",
                                                               "responseHeadersPolicy",
                                                               "cookieRewritePolicies",
                                                               "loadBalancerPolicy",
                                                               "healthCheckPolicy",
                                                               "rateLimitPolicy",
                                                               "requestRedirectPolicy",
                                                               "directResponsePolicy",
                                                               "authPolicy",
                                                               "jwtVerificationPolicy",
                                                               "ipAllowPolicy",
                                                               "ipDenyPolicy",
                                                               "internalRedirectPolicy",
                                                               "queryParameterHashOptions"};
  auto m = include ? p.fields(n, f, {"name", "namespace", "conditions"}, {}, true)
                   : p.fields(n, f, proxy ? kHpKnown : kIrKnown,
                              proxy ? kHpUnsupported : kIrUnsupported, true);
  if (!m) {
    return std::nullopt;
  }
  size_t before = diagCount();
  Route r;
  r.pos = p.pos(n);
  r.field = f;
  HttpMatch hm;
  hm.pos = r.pos;
  hm.field = f + (proxy ? ".conditions" : ".match");
  bool anyCondition = false;
  if (const yaml::Node* match = proxy ? nullptr : ObjectParser::get(*m, "match")) {
    if (auto v = p.string(*match, f + ".match")) {
      if (v->empty() || (*v)[0] != '/') {
        p.error(*match, f + ".match", "a path prefix must start with /, got '" + *v + "'");
      } else {
        hm.uri = StringMatch{StringMatch::Op::kPrefix, *v, p.pos(*match)};
        anyCondition = true;
      }
    }
  }
  if (const yaml::Node* conds = proxy ? ObjectParser::get(*m, "conditions") : nullptr) {
    auto cl = p.sequence(*conds, f + ".conditions");
    for (size_t j = 0; j < cl.size(); ++j) {
      std::string cf = idx(f + ".conditions", j);
      auto c =
          p.fields(cl[j], cf, {"prefix", "header"}, {"exact", "regex", "queryParameter"}, true);
      if (!c) {
        continue;
      }
      if (c->size() != 1) {
        p.error(cl[j], cf, "expected exactly one of prefix, header");
        continue;
      }
      if (const yaml::Node* px = ObjectParser::get(*c, "prefix")) {
        auto v = p.string(*px, cf + ".prefix");
        if (!v) {
          continue;
        }
        if (v->empty() || (*v)[0] != '/') {
          p.error(*px, cf + ".prefix", "a path prefix must start with /, got '" + *v + "'");
        } else if (hm.uri) {
          p.error(*px, cf + ".prefix", "more than one prefix condition");
        } else {
          hm.uri = StringMatch{StringMatch::Op::kPrefix, *v, p.pos(*px)};
          anyCondition = true;
        }
      } else if (const yaml::Node* hd = ObjectParser::get(*c, "header")) {
        auto h = p.fields(
            *hd, cf + ".header",
            {"name", "present", "notpresent", "exact", "notexact", "contains", "notcontains"},
            {"regex", "ignoreCase", "treatMissingAsEmpty"}, true);
        if (!h) {
          continue;
        }
        const yaml::Node* name = ObjectParser::get(*h, "name");
        if (name == nullptr) {
          p.error(*hd, cf + ".header.name", "missing name");
          continue;
        }
        KeyMatch km;
        km.key = p.string(*name, cf + ".header.name").value_or("");
        km.key = asciiLower(km.key);
        km.match.pos = p.pos(*hd);
        int ops = 0;
        bool negate = false;
        for (const char* op :
             {"present", "notpresent", "exact", "notexact", "contains", "notcontains"}) {
          const yaml::Node* v = ObjectParser::get(*h, op);
          if (v == nullptr) {
            continue;
          }
          ++ops;
          std::string o = op;
          std::string opField = cf + ".header." + o;
          if (o == "present" || o == "notpresent") {
            if (p.boolean(*v, opField).value_or(false)) {
              km.present = true;
              negate = o == "notpresent";
            }
            continue;
          }
          std::string val(p.string(*v, opField).value_or(""));
          negate = o.rfind("not", 0) == 0;
          if (o == "exact" || o == "notexact") {
            km.match.op = StringMatch::Op::kExact;
            km.match.value = val;
          } else {
            km.match.op = StringMatch::Op::kRegex;
            km.match.value = ".*" + RE2::QuoteMeta(val) + ".*";
          }
        }
        if (ops != 1) {
          p.error(*hd, cf + ".header",
                  "expected exactly one of present, notpresent, exact, notexact, contains, "
                  "notcontains");
          continue;
        }
        (negate ? hm.withoutHeaders : hm.headers).push_back(std::move(km));
        anyCondition = true;
      }
    }
  }
  if (anyCondition) {
    r.matches.push_back(std::move(hm));
  }
  if (include) {
    Delegate dg;
    dg.pos = r.pos;
    if (const yaml::Node* x = ObjectParser::get(*m, "name")) {
      dg.name = p.string(*x, f + ".name").value_or("");
      dg.pos = p.pos(*x);
    }
    if (const yaml::Node* x = ObjectParser::get(*m, "namespace")) {
      dg.ns = p.string(*x, f + ".namespace").value_or("");
    }
    if (dg.name.empty()) {
      p.error(n, f + ".name", "missing name");
    } else {
      r.delegate = dg;
    }
  } else if (const yaml::Node* d = proxy ? nullptr : ObjectParser::get(*m, "delegate")) {
    if (auto dg = loadDelegate(p, *d, f + ".delegate")) {
      r.delegate = std::move(*dg);
    }
  }
  if (const yaml::Node* svcs = include ? nullptr : ObjectParser::get(*m, "services")) {
    auto sl = p.sequence(*svcs, f + ".services");
    for (size_t j = 0; j < sl.size(); ++j) {
      std::string sf = idx(f + ".services", j);
      auto e = p.fields(sl[j], sf, {"name", "port", "weight"},
                        {"strategy", "healthCheck", "validation", "protocol", "mirror",
                         "requestHeadersPolicy", "responseHeadersPolicy", "slowStartPolicy"},
                        true);
      if (!e) {
        continue;
      }
      RouteDestination d;
      d.pos = p.pos(sl[j]);
      d.field = sf;
      const yaml::Node* name = ObjectParser::get(*e, "name");
      const yaml::Node* port = ObjectParser::get(*e, "port");
      if (name == nullptr) {
        p.error(sl[j], sf + ".name", "missing name");
      } else {
        d.host = p.string(*name, sf + ".name").value_or("");
      }
      if (port == nullptr) {
        p.error(sl[j], sf + ".port", "missing port (Contour requires the Service port)");
      } else if (auto v = p.port(*port, sf + ".port")) {
        d.port = *v;
        d.portPos = p.pos(*port);
      }
      if (const yaml::Node* w = ObjectParser::get(*e, "weight")) {
        if (auto v = p.integer(*w, sf + ".weight")) {
          if (*v < 0 || *v > 1000000) {
            p.error(*w, sf + ".weight",
                    "weight " + std::to_string(*v) + " out of range 0..1000000");
          } else {
            d.weight = *v;
          }
        }
      }
      r.destinations.push_back(std::move(d));
    }
  }
  if (!include) {
    if (r.delegate && !r.destinations.empty()) {
      p.error(n, f, "services and delegate are exclusive");
    } else if (!r.delegate && ObjectParser::get(*m, "services") == nullptr) {
      p.error(n, f + ".services", proxy ? "missing services" : "missing services or delegate");
    } else if (!r.delegate && r.destinations.empty() && !hasErrorsSince(before)) {
      p.error(n, f + ".services", "empty services");
    }
  }
  if (hasErrorsSince(before)) {
    return std::nullopt;
  }
  return r;
}

} // namespace veer::loading
