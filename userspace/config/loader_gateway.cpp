// Gateway API HTTPRoute (gateway.networking.k8s.io/v1, also v1beta1) read into the
// VirtualService shape, so one model carries every format.
//
// Semantics kept (gateway-api.sigs.k8s.io/reference/spec, HTTPRouteRule, HTTPRouteMatch,
// HTTPBackendRef; GAMMA for mesh):
// - parentRefs: kind Service (group "" or "core") attaches the route to that Service's
//   traffic (mesh, GAMMA): a Config::virtualServices entry whose hosts are the Services
//   (one entry per parentRefs[].port; a port becomes a port condition on every match).
//   kind Gateway (the default) is ingress: a Config::ingressRoutes entry whose hosts are
//   spec.hostnames ("*" when none), resolved into a virtual host like Contour's.
// - matches[] are ORed, conditions inside one match ANDed; a rule without matches is
//   PathPrefix "/" (every request). Each match becomes its own rule here, so rules can be
//   ordered by the spec's precedence across all matches: Exact path, then
//   RegularExpression (implementation-specific; longest first), then the longest
//   PathPrefix, then a method match, then the most header matches, then the most query
//   parameter matches; ties keep file order.
// - PathPrefix matches whole path elements ("/abc" matches /abc, /abc/ and /abc/def, not
//   /abcd; a trailing "/" is ignored): written as the RE2 regex that says exactly that.
// - backendRefs weights are relative (default 1, 0 = no traffic), turned into percents
//   here (largest remainder). All weights 0: every request gets 500; no backendRefs and no
//   redirect: 503. Both are direct responses.
// - Filters: RequestHeaderModifier/ResponseHeaderModifier (rule level and per backendRef)
//   -> header operations; URLRewrite -> rewrite; RequestRedirect -> redirect;
//   RequestMirror -> mirror. CORS and ExtensionRef are warned about and ignored.

#include <algorithm>
#include <map>
#include <string_view>
#include <tuple>

#include "config/loader_internal.h"
#include "common/strings.h"

namespace veer::loading {

namespace {

constexpr const char* kGatewayGroup = "gateway.networking.k8s.io";

const std::vector<std::string> kFilterTypes = {
    "RequestHeaderModifier", "ResponseHeaderModifier", "URLRewrite",
    "RequestRedirect",       "RequestMirror",          "CORS",
    "ExtensionRef"};

/** The filter type's own field: RequestHeaderModifier -> requestHeaderModifier. */
std::string filterField(const std::string& type) {
  if (type == "URLRewrite") {
    return "urlRewrite";
  }
  if (type == "CORS") {
    return "cors";
  }
  std::string f = type;
  f[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(f[0])));
  return f;
}

/** RE2 text matching s literally; only the metacharacters are escaped, so paths stay legible. */
std::string regexLiteral(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\.+*?()|[]{}^$").find(c) != std::string_view::npos) {
      out += '\\';
    }
    out += c;
  }
  return out;
}

/**
 * Precedence of one match, higher first (see the file comment): path kind (3 Exact,
 * 2 RegularExpression, 1 PathPrefix, the default "/" included), path length, method,
 * header count, query parameter count.
 */
using Precedence = std::tuple<int, size_t, bool, size_t, size_t>;

Precedence precedence(const HttpMatch* m, int pathKind, size_t pathLen) {
  if (m == nullptr) {
    return {1, 1, false, 0, 0};
  }
  return {pathKind, pathLen, m->method.has_value(), m->headers.size(), m->queryParams.size()};
}

} // namespace

bool Loader::loadGatewayHeaderModifier(ObjectParser& p, const yaml::Node& n, const std::string& f,
                                       HeaderOps& out) {
  auto m = p.fields(n, f, {"set", "add", "remove"}, {}, true);
  if (!m) {
    return false;
  }
  const size_t before = diagCount();
  for (const char* op : {"set", "add"}) {
    const yaml::Node* v = ObjectParser::get(*m, op);
    if (v == nullptr) {
      continue;
    }
    std::string lf = f + "." + op;
    auto list = p.sequence(*v, lf);
    for (size_t i = 0; i < list.size(); ++i) {
      auto h = p.fields(list[i], idx(lf, i), {"name", "value"}, {}, true);
      if (!h) {
        continue;
      }
      const yaml::Node* name = ObjectParser::get(*h, "name");
      const yaml::Node* value = ObjectParser::get(*h, "value");
      if (name == nullptr) {
        p.error(list[i], idx(lf, i) + ".name", "missing name");
        continue;
      }
      auto nm = p.string(*name, idx(lf, i) + ".name");
      auto val = value == nullptr ? std::optional<std::string>("")
                                  : p.string(*value, idx(lf, i) + ".value");
      if (nm && val) {
        (std::string(op) == "set" ? out.set : out.add).emplace_back(*nm, *val);
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
  return !hasErrorsSince(before);
}

std::optional<RouteDestination> Loader::loadGatewayBackend(ObjectParser& p, const yaml::Node& n,
                                                           const std::string& f,
                                                           const std::string& ns, bool mirror) {
  auto m = mirror
               ? p.fields(n, f, {"group", "kind", "name", "namespace", "port"}, {}, true)
               : p.fields(n, f, {"group", "kind", "name", "namespace", "port", "weight", "filters"},
                          {}, true);
  if (!m) {
    return std::nullopt;
  }
  const size_t before = diagCount();
  RouteDestination d;
  d.pos = p.pos(n);
  d.field = f;
  std::string group;
  std::string kind = "Service";
  if (const yaml::Node* x = ObjectParser::get(*m, "group")) {
    group = p.string(*x, f + ".group").value_or("");
  }
  if (const yaml::Node* x = ObjectParser::get(*m, "kind")) {
    kind = p.string(*x, f + ".kind").value_or("Service");
  }
  if (kind != "Service" || (!group.empty() && group != "core")) {
    const yaml::Node* at = ObjectParser::get(*m, "kind");
    p.error(at != nullptr ? *at : n, f + ".kind",
            "backend kind " + kind + (group.empty() ? "" : " (group " + group + ")") +
                " is not supported; veer routes to Services (group \"\", kind Service)");
    return std::nullopt;
  }
  const yaml::Node* name = ObjectParser::get(*m, "name");
  if (name == nullptr) {
    p.error(n, f + ".name", "missing name");
    return std::nullopt;
  }
  std::string svc(p.string(*name, f + ".name").value_or(""));
  std::string svcNs = ns;
  if (const yaml::Node* x = ObjectParser::get(*m, "namespace")) {
    svcNs = p.string(*x, f + ".namespace").value_or(ns);
    if (svcNs != ns) {
      p.warning(*x, f + ".namespace",
                "a backend in namespace " + svcNs +
                    " needs a ReferenceGrant there; veer does not "
                    "read ReferenceGrants and routes to it");
    }
  }
  d.host = svc + "." + svcNs;
  if (const yaml::Node* x = ObjectParser::get(*m, "port")) {
    if (auto v = p.port(*x, f + ".port")) {
      d.port = *v;
      d.portPos = p.pos(*x);
    }
  } else {
    p.error(n, f + ".port", "missing port (Gateway API requires it when the backend is a Service)");
  }
  d.weight = 1;
  if (const yaml::Node* x = ObjectParser::get(*m, "weight")) {
    if (auto v = p.integer(*x, f + ".weight")) {
      if (*v < 0 || *v > 1000000) {
        p.error(*x, f + ".weight", "weight " + std::to_string(*v) + " out of range 0..1000000");
      } else {
        d.weight = *v;
      }
    }
  }
  if (const yaml::Node* x = ObjectParser::get(*m, "filters")) {
    auto list = p.sequence(*x, f + ".filters");
    for (size_t i = 0; i < list.size(); ++i) {
      std::string ff = idx(f + ".filters", i);
      auto filter = gatewayFilter(p, list[i], ff);
      if (!filter) {
        continue;
      }
      const std::string& type = filter->type;
      const yaml::Node* body = ObjectParser::get(filter->fields, filterField(type));
      if (type != "RequestHeaderModifier" && type != "ResponseHeaderModifier") {
        p.warning(list[i], ff + ".type",
                  "filter " + type +
                      " on a backendRef is not supported by veer; ignored (it "
                      "is supported on the rule)");
      } else if (body == nullptr) {
        p.error(list[i], ff + "." + filterField(type), "missing " + filterField(type));
      } else {
        loadGatewayHeaderModifier(p, *body, ff + "." + filterField(type),
                                  type == "RequestHeaderModifier" ? d.headers.mut().request
                                                                  : d.headers.mut().response);
      }
    }
  }
  if (hasErrorsSince(before)) {
    return std::nullopt;
  }
  return d;
}

std::optional<Loader::GatewayFilter> Loader::gatewayFilter(ObjectParser& p, const yaml::Node& n,
                                                           const std::string& f) {
  // Every filter body is a known field: the caller's warning says which types are ignored.
  auto m = p.fields(n, f,
                    {"type", "requestHeaderModifier", "responseHeaderModifier", "urlRewrite",
                     "requestRedirect", "requestMirror", "cors", "extensionRef"},
                    {}, true);
  if (!m) {
    return std::nullopt;
  }
  const yaml::Node* t = ObjectParser::get(*m, "type");
  if (t == nullptr) {
    p.error(n, f + ".type", "missing type");
    return std::nullopt;
  }
  auto type = p.string(*t, f + ".type");
  if (!type) {
    return std::nullopt;
  }
  if (std::find(kFilterTypes.begin(), kFilterTypes.end(), *type) == kFilterTypes.end()) {
    const std::string hint = closest(std::string(*type), kFilterTypes);
    p.error(*t, f + ".type",
            "unknown filter type " + *type +
                (hint.empty() ? "; expected one of RequestHeaderModifier, "
                                "ResponseHeaderModifier, URLRewrite, RequestRedirect, "
                                "RequestMirror"
                              : "; did you mean " + hint + "?"));
    return std::nullopt;
  }
  return GatewayFilter{std::move(*m), std::string(*type)};
}

void Loader::loadGatewayFilters(ObjectParser& p, const yaml::Node& n, const std::string& f,
                                const std::string& ns, Route& r) {
  auto list = p.sequence(n, f);
  for (size_t i = 0; i < list.size(); ++i) {
    std::string ff = idx(f, i);
    auto filter = gatewayFilter(p, list[i], ff);
    if (!filter) {
      continue;
    }
    const std::string& type = filter->type;
    if (type == "CORS" || type == "ExtensionRef") {
      p.warning(list[i], ff + ".type", "filter " + type + " is not supported by veer; ignored");
      continue;
    }
    const std::string bf = ff + "." + filterField(type);
    const yaml::Node* body = ObjectParser::get(filter->fields, filterField(type));
    if (body == nullptr) {
      p.error(list[i], bf, "missing " + filterField(type) + " (required by type " + type + ")");
      continue;
    }
    if (type == "RequestHeaderModifier" || type == "ResponseHeaderModifier") {
      loadGatewayHeaderModifier(p, *body, bf,
                                type == "RequestHeaderModifier" ? r.headers.mut().request
                                                                : r.headers.mut().response);
    } else if (type == "URLRewrite") {
      auto m = p.fields(*body, bf, {"hostname", "path"}, {}, true);
      if (!m) {
        continue;
      }
      if (const yaml::Node* h = ObjectParser::get(*m, "hostname")) {
        r.actions.mut().rewriteAuthority = p.string(*h, bf + ".hostname").value_or("");
      }
      if (const yaml::Node* path = ObjectParser::get(*m, "path")) {
        auto pm = p.fields(*path, bf + ".path", {"type", "replacePrefixMatch", "replaceFullPath"},
                           {}, true);
        if (!pm) {
          continue;
        }
        const yaml::Node* pt = ObjectParser::get(*pm, "type");
        std::string ptype(pt == nullptr ? "" : p.string(*pt, bf + ".path.type").value_or(""));
        if (ptype == "ReplacePrefixMatch") {
          // Istio's rewrite.uri replaces the matched prefix: the same operation.
          if (const yaml::Node* v = ObjectParser::get(*pm, "replacePrefixMatch")) {
            r.actions.mut().rewriteUri = p.string(*v, bf + ".path.replacePrefixMatch").value_or("");
          } else {
            p.error(*path, bf + ".path.replacePrefixMatch", "missing replacePrefixMatch");
          }
        } else if (ptype == "ReplaceFullPath") {
          p.warning(*path, bf + ".path",
                    "ReplaceFullPath is not supported by veer yet; the path is not rewritten");
        } else {
          p.error(pt != nullptr ? *pt : *path, bf + ".path.type",
                  "expected ReplacePrefixMatch or ReplaceFullPath, got '" + ptype + "'");
        }
      }
    } else if (type == "RequestRedirect") {
      auto m = p.fields(*body, bf, {"scheme", "hostname", "path", "port", "statusCode"}, {}, true);
      if (!m) {
        continue;
      }
      std::string out;
      for (const auto& [key, as] : {std::pair{"path", "uri"},
                                    {"hostname", "authority"},
                                    {"scheme", "scheme"},
                                    {"port", "port"}}) {
        const yaml::Node* v = ObjectParser::get(*m, key);
        if (v == nullptr) {
          continue;
        }
        std::string val;
        if (std::string(key) == "path") {
          auto pm = p.fields(*v, bf + ".path", {"type", "replacePrefixMatch", "replaceFullPath"},
                             {}, true);
          for (const char* k : {"replaceFullPath", "replacePrefixMatch"}) {
            if (const yaml::Node* x = pm ? ObjectParser::get(*pm, k) : nullptr) {
              val = p.string(*x, bf + ".path." + k).value_or("");
            }
          }
        } else {
          val = p.string(*v, bf + "." + key).value_or("");
        }
        out += (out.empty() ? "" : ",") + std::string(as) + "=" + val;
      }
      r.actions.mut().redirect = out.empty() ? "redirect" : out;
      if (const yaml::Node* v = ObjectParser::get(*m, "statusCode")) {
        auto code = p.integer(*v, bf + ".statusCode");
        if (code && *code != 301 && *code != 302 && *code != 303 && *code != 307 && *code != 308) {
          p.error(*v, bf + ".statusCode",
                  std::to_string(*code) + " is not a redirect code (301, 302, 303, 307, 308)");
        } else {
          r.actions.mut().redirectCode = code.value_or(0);
        }
      }
    } else if (type == "RequestMirror") {
      auto m = p.fields(*body, bf, {"backendRef", "percent", "fraction"}, {}, true);
      if (!m) {
        continue;
      }
      const yaml::Node* b = ObjectParser::get(*m, "backendRef");
      if (b == nullptr) {
        p.error(*body, bf + ".backendRef", "missing backendRef");
        continue;
      }
      if (auto d = loadGatewayBackend(p, *b, bf + ".backendRef", ns, true)) {
        d->weight.reset();
        r.actions.mut().mirror = *d;
      }
      if (const yaml::Node* pc = ObjectParser::get(*m, "percent")) {
        auto v = p.integer(*pc, bf + ".percent");
        if (v && (*v < 0 || *v > 100)) {
          p.error(*pc, bf + ".percent", "percent " + std::to_string(*v) + " out of range 0..100");
        } else if (v) {
          r.actions.mut().mirrorPercent = static_cast<double>(*v);
        }
      }
      if (const yaml::Node* fr = ObjectParser::get(*m, "fraction")) {
        auto fm = p.fields(*fr, bf + ".fraction", {"numerator", "denominator"}, {}, true);
        const yaml::Node* num = fm ? ObjectParser::get(*fm, "numerator") : nullptr;
        const yaml::Node* den = fm ? ObjectParser::get(*fm, "denominator") : nullptr;
        int64_t nv = -1;
        int64_t dv = 100; // the spec's default denominator
        if (num == nullptr) {
          p.error(*fr, bf + ".fraction.numerator", "missing numerator");
          continue;
        }
        nv = p.integer(*num, bf + ".fraction.numerator").value_or(-1);
        if (den != nullptr) {
          dv = p.integer(*den, bf + ".fraction.denominator").value_or(0);
        }
        if (dv <= 0 || nv < 0 || nv > dv) {
          p.error(*fr, bf + ".fraction",
                  "expected 0 <= numerator <= denominator and denominator > 0");
        } else {
          r.actions.mut().mirrorPercent = 100.0 * static_cast<double>(nv) / static_cast<double>(dv);
        }
      }
    }
  }
}

std::optional<HttpMatch> Loader::loadGatewayMatch(ObjectParser& p, const yaml::Node& n,
                                                  const std::string& f, int& pathKind,
                                                  size_t& pathLen) {
  pathKind = 1; // PathPrefix "/"
  pathLen = 1;
  auto m = p.fields(n, f, {"path", "headers", "queryParams", "method"}, {}, true);
  if (!m) {
    return std::nullopt;
  }
  const size_t before = diagCount();
  HttpMatch hm;
  hm.pos = p.pos(n);
  hm.field = f;
  if (const yaml::Node* path = ObjectParser::get(*m, "path")) {
    const std::string pf = f + ".path";
    if (auto pm = p.fields(*path, pf, {"type", "value"}, {}, true)) {
      std::string type = "PathPrefix";
      std::string value = "/";
      const yaml::Node* t = ObjectParser::get(*pm, "type");
      const yaml::Node* v = ObjectParser::get(*pm, "value");
      if (t != nullptr) {
        type = p.string(*t, pf + ".type").value_or(type);
      }
      if (v != nullptr) {
        value = p.string(*v, pf + ".value").value_or(value);
      }
      const yaml::Node& at = v != nullptr ? *v : *path;
      StringMatch sm;
      sm.pos = p.pos(at);
      if (type == "Exact" || type == "PathPrefix") {
        if (value.empty() || value[0] != '/') {
          p.error(at, pf + ".value", "a path must start with /, got '" + value + "'");
        } else if (type == "Exact") {
          sm.op = StringMatch::Op::kExact;
          sm.value = value;
          hm.uri = sm;
          pathKind = 3;
          pathLen = value.size();
        } else {
          std::string prefix = value;
          while (prefix.size() > 1 && prefix.back() == '/') {
            prefix.pop_back();
          }
          if (prefix != "/") { // "/" matches every path: no condition
            sm.op = StringMatch::Op::kRegex;
            sm.value = regexLiteral(prefix) + "(/.*)?";
            hm.uri = sm;
            pathLen = prefix.size();
          }
        }
      } else if (type == "RegularExpression") {
        if (checkRegex(p, at, pf + ".value", value)) {
          sm.op = StringMatch::Op::kRegex;
          sm.value = value;
          hm.uri = sm;
          pathKind = 2;
          pathLen = value.size();
        }
      } else {
        const std::string hint = closest(type, {"Exact", "PathPrefix", "RegularExpression"});
        p.error(t != nullptr ? *t : *path, pf + ".type",
                "expected Exact, PathPrefix or RegularExpression, got '" + type + "'" +
                    (hint.empty() ? "" : "; did you mean " + hint + "?"));
      }
    }
  }
  for (const auto& [key, lower] : {std::pair{"headers", true}, {"queryParams", false}}) {
    const yaml::Node* list = ObjectParser::get(*m, key);
    if (list == nullptr) {
      continue;
    }
    const std::string lf = f + "." + key;
    auto items = p.sequence(*list, lf);
    ThinVector<KeyMatch>& out = lower ? hm.headers : hm.queryParams;
    for (size_t i = 0; i < items.size(); ++i) {
      const std::string kf = idx(lf, i);
      auto km = p.fields(items[i], kf, {"type", "name", "value"}, {}, true);
      if (!km) {
        continue;
      }
      const yaml::Node* name = ObjectParser::get(*km, "name");
      const yaml::Node* value = ObjectParser::get(*km, "value");
      const yaml::Node* type = ObjectParser::get(*km, "type");
      if (name == nullptr || value == nullptr) {
        p.error(items[i], kf + (name == nullptr ? ".name" : ".value"),
                std::string("missing ") + (name == nullptr ? "name" : "value"));
        continue;
      }
      KeyMatch k;
      k.key = p.string(*name, kf + ".name").value_or("");
      if (lower) { // header names are case-insensitive; query parameter names are not
        k.key = asciiLower(k.key);
      }
      k.match.value = p.string(*value, kf + ".value").value_or("");
      k.match.pos = p.pos(*value);
      std::string t(type == nullptr ? "Exact" : p.string(*type, kf + ".type").value_or("Exact"));
      if (t == "Exact") {
        k.match.op = StringMatch::Op::kExact;
      } else if (t == "RegularExpression") {
        if (!checkRegex(p, *value, kf + ".value", k.match.value)) {
          continue;
        }
        k.match.op = StringMatch::Op::kRegex;
      } else {
        const std::string hint = closest(t, {"Exact", "RegularExpression"});
        p.error(*type, kf + ".type",
                "expected Exact or RegularExpression, got '" + t + "'" +
                    (hint.empty() ? "" : "; did you mean " + hint + "?"));
        continue;
      }
      bool dup =
          std::any_of(out.begin(), out.end(), [&](const KeyMatch& o) { return o.key == k.key; });
      if (dup) {
        // The spec: the first entry with a name wins, later ones are ignored.
        p.warning(*name, kf + ".name",
                  std::string(lower ? "header " : "query parameter ") + k.key +
                      " is matched by an earlier entry; this one is ignored");
        continue;
      }
      out.push_back(std::move(k));
    }
  }
  if (const yaml::Node* method = ObjectParser::get(*m, "method")) {
    static const std::vector<std::string> kMethods = {
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"};
    if (auto v = p.string(*method, f + ".method")) {
      if (std::find(kMethods.begin(), kMethods.end(), *v) == kMethods.end()) {
        const std::string hint = closest(std::string(*v), kMethods);
        p.error(*method, f + ".method",
                "unknown HTTP method '" + *v + "'" +
                    (hint.empty() ? "" : "; did you mean " + hint + "?"));
      } else {
        hm.method = StringMatch{StringMatch::Op::kExact, *v, p.pos(*method)};
      }
    }
  }
  if (hasErrorsSince(before)) {
    return std::nullopt;
  }
  return hm;
}

void Loader::loadHttpRoute(ObjectParser& p, ObjectMeta meta, const yaml::Node* spec) {
  const size_t start = diagCount();
  VirtualService vs;
  vs.meta = std::move(meta);
  if (spec == nullptr) {
    p.report(Diagnostic::Severity::kError, vs.meta.pos, "spec", "missing spec");
    return;
  }
  auto s = p.fields(*spec, "spec", {"parentRefs", "hostnames", "rules"}, {}, true);
  if (!s) {
    return;
  }
  // The parent Services, by the port the route attaches to (0 = every port).
  std::map<uint16_t, VirtualService> mesh;
  bool ingress = false;
  if (const yaml::Node* refs = ObjectParser::get(*s, "parentRefs")) {
    auto items = p.sequence(*refs, "spec.parentRefs");
    for (size_t i = 0; i < items.size(); ++i) {
      const std::string rf = idx("spec.parentRefs", i);
      auto m = p.fields(items[i], rf, {"group", "kind", "namespace", "name", "port"},
                        {"sectionName"}, true);
      if (!m) {
        continue;
      }
      std::string group = kGatewayGroup;
      std::string kind = "Gateway";
      if (const yaml::Node* x = ObjectParser::get(*m, "group")) {
        group = p.string(*x, rf + ".group").value_or(group);
      }
      if (const yaml::Node* x = ObjectParser::get(*m, "kind")) {
        kind = p.string(*x, rf + ".kind").value_or(kind);
      }
      const yaml::Node* name = ObjectParser::get(*m, "name");
      if (name == nullptr) {
        p.error(items[i], rf + ".name", "missing name");
        continue;
      }
      const std::string n(p.string(*name, rf + ".name").value_or(""));
      std::string ns = vs.meta.ns;
      if (const yaml::Node* x = ObjectParser::get(*m, "namespace")) {
        ns = p.string(*x, rf + ".namespace").value_or(ns);
      }
      if (kind == "Service" && (group.empty() || group == "core")) {
        uint16_t port = 0;
        if (const yaml::Node* x = ObjectParser::get(*m, "port")) {
          port = p.port(*x, rf + ".port").value_or(0);
        }
        VirtualService& at = mesh[port];
        at.hosts.push_back(n + "." + ns);
        at.hostPos.push_back(p.pos(*name));
        at.hostFields.push_back(rf + ".name");
      } else if (kind == "Gateway" && group == kGatewayGroup) {
        ingress = true;
        vs.gateways.push_back(ns + "/" + n);
      } else {
        const yaml::Node* at = ObjectParser::get(*m, "kind");
        p.error(at != nullptr ? *at : items[i], rf + ".kind",
                "parent kind " + kind + " (group " + (group.empty() ? "\"\"" : group) +
                    ") is not supported; expected Gateway (group " + kGatewayGroup +
                    ", ingress) or Service (group \"\", mesh)");
      }
    }
  }
  if (const yaml::Node* hn = ObjectParser::get(*s, "hostnames")) {
    auto items = p.sequence(*hn, "spec.hostnames");
    for (size_t i = 0; i < items.size(); ++i) {
      auto h = p.string(items[i], idx("spec.hostnames", i));
      if (!h) {
        continue;
      }
      std::string rest(h->rfind("*.", 0) == 0 ? h->substr(2) : *h);
      if (rest.empty() || rest.find_first_of(" /:*") != std::string::npos) {
        p.error(items[i], idx("spec.hostnames", i),
                "'" + *h + "' is not a host name (a DNS name, optionally starting with *.)");
        continue;
      }
      vs.hosts.push_back(*h);
      vs.hostPos.push_back(p.pos(items[i]));
      vs.hostFields.push_back(idx("spec.hostnames", i));
    }
  }
  std::vector<std::pair<Precedence, Route>> rules;
  if (const yaml::Node* rl = ObjectParser::get(*s, "rules")) {
    auto items = p.sequence(*rl, "spec.rules");
    for (size_t i = 0; i < items.size(); ++i) {
      const std::string rf = idx("spec.rules", i);
      auto m = p.fields(items[i], rf, {"name", "matches", "filters", "backendRefs", "timeouts"},
                        {"sessionPersistence", "retry"}, true);
      if (!m) {
        continue;
      }
      const size_t before = diagCount();
      Route r;
      r.pos = p.pos(items[i]);
      r.field = rf;
      if (const yaml::Node* x = ObjectParser::get(*m, "name")) {
        r.name = p.string(*x, rf + ".name").value_or("");
      }
      if (const yaml::Node* x = ObjectParser::get(*m, "filters")) {
        loadGatewayFilters(p, *x, rf + ".filters", vs.meta.ns, r);
      }
      if (const yaml::Node* x = ObjectParser::get(*m, "timeouts")) {
        if (auto tm = p.fields(*x, rf + ".timeouts", {"request", "backendRequest"}, {}, true)) {
          if (const yaml::Node* t = ObjectParser::get(*tm, "request")) {
            r.actions.mut().timeout = p.duration(*t, rf + ".timeouts.request").value_or("");
          }
          if (const yaml::Node* t = ObjectParser::get(*tm, "backendRequest")) {
            r.actions.mut().retryPerTryTimeout =
                p.duration(*t, rf + ".timeouts.backendRequest").value_or("");
          }
        }
      }
      int64_t sum = 0;
      if (const yaml::Node* x = ObjectParser::get(*m, "backendRefs")) {
        auto list = p.sequence(*x, rf + ".backendRefs");
        for (size_t j = 0; j < list.size(); ++j) {
          if (auto d =
                  loadGatewayBackend(p, list[j], idx(rf + ".backendRefs", j), vs.meta.ns, false)) {
            sum += *d->weight;
            r.destinations.push_back(std::move(*d));
          }
        }
      }
      std::vector<std::pair<Precedence, HttpMatch>> matches;
      if (const yaml::Node* x = ObjectParser::get(*m, "matches")) {
        auto list = p.sequence(*x, rf + ".matches");
        for (size_t j = 0; j < list.size(); ++j) {
          int kind = 1;
          size_t len = 1;
          if (auto hm = loadGatewayMatch(p, list[j], idx(rf + ".matches", j), kind, len)) {
            Precedence pr = precedence(&*hm, kind, len);
            matches.emplace_back(pr, std::move(*hm));
          }
        }
      }
      if (hasErrorsSince(before)) {
        continue;
      }
      if (r.destinations.empty() && r.actions->redirect.empty()) {
        p.warning(items[i], rf + ".backendRefs",
                  "no backendRefs and no RequestRedirect: Gateway API answers 503 to every "
                  "request this rule matches");
        r.actions.mut().directResponseStatus = 503;
      } else if (!r.destinations.empty() && sum == 0) {
        p.warning(items[i], rf + ".backendRefs",
                  "every backendRef has weight 0: Gateway API answers 500 to every request this "
                  "rule matches");
        r.destinations.clear();
        r.actions.mut().directResponseStatus = 500;
      } else if (!r.destinations.empty()) {
        std::vector<int64_t> w;
        for (const auto& d : r.destinations) {
          w.push_back(*d.weight);
        }
        std::vector<int64_t> pct = toPercent(w);
        for (size_t j = 0; j < pct.size(); ++j) {
          r.destinations[j].weight = pct[j];
        }
      }
      // One rule per match, so precedence can order matches across rules.
      bool always =
          matches.empty() || std::any_of(matches.begin(), matches.end(),
                                         [](const auto& hm) { return !hm.second.needsRequest(); });
      if (always) {
        // A match without conditions makes the rule's other matches redundant.
        rules.emplace_back(precedence(nullptr, 1, 1), std::move(r));
        continue;
      }
      for (auto& [pr, hm] : matches) {
        Route one = r;
        one.matches = {std::move(hm)};
        rules.emplace_back(pr, std::move(one));
      }
    }
  }
  std::stable_sort(rules.begin(), rules.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  if (hasErrorsSince(start)) {
    return;
  }
  if (mesh.empty() && !ingress) {
    p.report(Diagnostic::Severity::kWarning, vs.meta.pos, "spec.parentRefs",
             "no parentRefs: the route attaches to no Gateway and no Service; nothing to route");
    return;
  }
  if (rules.empty()) {
    p.report(Diagnostic::Severity::kWarning, vs.meta.pos, "spec.rules",
             "no rules; nothing to route");
    return;
  }
  for (auto& [pr, r] : rules) {
    r.precedence = {static_cast<size_t>(std::get<0>(pr)), std::get<1>(pr),
                    static_cast<size_t>(std::get<2>(pr)), std::get<3>(pr), std::get<4>(pr)};
    vs.http.push_back(std::move(r));
  }
  for (auto& [port, parents] : mesh) {
    VirtualService m = vs;
    m.hosts = std::move(parents.hosts);
    m.hostPos = std::move(parents.hostPos);
    m.hostFields = std::move(parents.hostFields);
    m.gateways.clear();
    if (port != 0) {
      // parentRefs[].port: the route applies to that port of the Service only, which is
      // what a port condition on every match says.
      for (Route& r : m.http) {
        if (r.matches.empty()) {
          HttpMatch only;
          only.pos = r.pos;
          only.field = r.field;
          r.matches.push_back(std::move(only));
        }
        for (HttpMatch& hm : r.matches) {
          hm.port = port;
        }
      }
    }
    config().virtualServices.push_back(std::move(m));
  }
  if (ingress) {
    if (vs.hosts.empty()) {
      vs.hosts.push_back("*"); // every hostname of the parent Gateways' listeners
      vs.hostPos.push_back(vs.meta.pos);
      vs.hostFields.push_back("spec.hostnames");
    }
    config().ingressRoutes.push_back(std::move(vs));
  }
}

} // namespace veer::loading
