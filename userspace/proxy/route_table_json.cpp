// The route table's JSON (route_table_json.h): writer and reader of the versioned schema.

#include "proxy/route_table_json.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <limits>
#include <type_traits>

#include "proxy/router_table.h"

namespace veer::proxy {
namespace {

using Json = nlohmann::ordered_json;

Json stringMatchJson(const StringMatch& m) {
  return Json{{m.opName(), m.value}};
}

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

template <class T>
constexpr bool kIsText = std::is_same_v<T, std::string> || std::is_same_v<T, Str>;

/** How get() takes a field: whether it must be present, and an integer's range. */
struct Want {
  bool required = false;
  int64_t lo = INT64_MIN;
  int64_t hi = INT64_MAX;
};
constexpr Want kRequired{true};
constexpr Want kPort{false, 0, 65535}; // 0 = unset
constexpr Want kRequiredPort{true, 1, 65535};

/**
 * Reads a JSON document into a RouteSpec, naming the path of the first problem. Every
 * field goes through get(), and every value through the read() overload of its C++ type,
 * so a type's checks are written once. Every access checks the type first: nothing here
 * throws on hostile input.
 */
class Reader {
public:
  std::string error; // "services[0].port: expected an integer"

  /** The one getter: obj[key] into out when present; absent is fine unless required. */
  template <class T>
  bool get(const Json& obj, const std::string& path, const char* key, T& out, Want want = {}) {
    auto it = obj.find(key);
    if (it == obj.end()) {
      return want.required ? fail(at(path, key), "missing") : true;
    }
    return read(*it, at(path, key), out, want);
  }

  /** An object of the schema that has no C++ type of its own (abort, delay, mirror):
   * checked, then handed to fields(json, path) when present. */
  template <class F>
  bool nested(const Json& obj, const std::string& path, const char* key,
              std::initializer_list<const char*> allowed, F&& fields) {
    auto it = obj.find(key);
    if (it == obj.end()) {
      return true;
    }
    std::string p = at(path, key);
    return object(*it, p, allowed) && fields(*it, p);
  }

  bool document(const Json& j, RouteSpec& s) {
    if (!object(j, "", {"version", "tagHeader", "services", "pods"})) {
      return false;
    }
    int version = 0;
    if (!get(j, "", "version", version, {true, 0, INT32_MAX})) {
      return false;
    }
    if (version != kRouteTableSchemaVersion) {
      return fail("version", std::to_string(version) +
                                 " is not supported: this veer-proxy reads route table schema " +
                                 std::to_string(kRouteTableSchemaVersion) +
                                 " (run the agent and the proxy of one release)");
    }
    return get(j, "", "tagHeader", s.tagHeader, kRequired) && get(j, "", "pods", s.pods) &&
           get(j, "", "services", s.services);
  }

private:
  bool fail(const std::string& path, const std::string& msg) {
    if (error.empty()) {
      error = (path.empty() ? std::string("$") : path) + ": " + msg;
    }
    return false;
  }

  static std::string at(const std::string& path, const char* key) {
    return path.empty() ? key : path + "." + key;
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

  // ---- scalars --------------------------------------------------------------------------

  template <class S>
  requires kIsText<S>
  bool read(const Json& j, const std::string& path, S& out, Want) {
    if (!j.is_string()) {
      return fail(path, "expected a string");
    }
    out = j.get<std::string>();
    return true;
  }

  bool read(const Json& j, const std::string& path, bool& out, Want) {
    if (!j.is_boolean()) {
      return fail(path, "expected true or false");
    }
    out = j.get<bool>();
    return true;
  }

  template <std::integral T> bool read(const Json& j, const std::string& path, T& out, Want want) {
    if (!j.is_number_integer()) {
      return fail(path, "expected an integer");
    }
    int64_t v =
        j.is_number_unsigned() && j.get<uint64_t>() > INT64_MAX ? INT64_MAX : j.get<int64_t>();
    // Never wider than T can hold, whatever the caller asked.
    const int64_t lo = std::max<int64_t>(want.lo, std::numeric_limits<T>::min());
    const int64_t hi = std::min<int64_t>(want.hi, std::numeric_limits<T>::max());
    if (v < lo || v > hi) {
      return fail(path, std::to_string(v) + " out of range " + std::to_string(lo) + ".." +
                            std::to_string(hi));
    }
    out = static_cast<T>(v);
    return true;
  }

  /** The schema's only non-integer numbers are percentages. */
  bool read(const Json& j, const std::string& path, double& out, Want) {
    if (!j.is_number()) {
      return fail(path, "expected a number");
    }
    out = j.get<double>();
    if (!std::isfinite(out) || out > 100 || (out < 0 && out != -1)) {
      return fail(path, "expected a percentage 0..100 (or -1 for unset)");
    }
    return true;
  }

  bool read(const Json& j, const std::string& path, IpAddr& out, Want want) {
    std::string s;
    if (!read(j, path, s, want)) {
      return false;
    }
    auto a = IpAddr::parse(s);
    if (!a) {
      return fail(path, "'" + s + "' is not an IP address");
    }
    out = *a;
    return true;
  }

  // ---- containers: each element through its own read() ---------------------------------

  template <class List>
  requires(!kIsText<List> && requires(List l) {
    l.push_back(typename List::value_type{});
  }) bool read(const Json& j, const std::string& path, List& out, Want) {
    if (!j.is_array()) {
      return fail(path, "expected an array");
    }
    for (size_t i = 0; i < j.size(); ++i) {
      typename List::value_type v;
      if (!read(j[i], path + "[" + std::to_string(i) + "]", v, {})) {
        return false;
      }
      out.push_back(std::move(v));
    }
    return true;
  }

  /** An object of name -> value: pod labels (strings), traffic labels (source lists). */
  template <class Map>
  requires requires(Map m) { m[std::string()] = typename Map::mapped_type{}; }
  bool read(const Json& j, const std::string& path, Map& out, Want) {
    if (!j.is_object()) {
      return fail(path, "expected an object");
    }
    for (const auto& [k, v] : j.items()) {
      typename Map::mapped_type value;
      if (!read(v, path + "." + k, value, {})) {
        return false;
      }
      out[k] = std::move(value);
    }
    return true;
  }

  template <class T>
  bool read(const Json& j, const std::string& path, std::optional<T>& out, Want want) {
    T v{};
    if (!read(j, path, v, want)) {
      return false;
    }
    out = std::move(v);
    return true;
  }

  template <class T> bool read(const Json& j, const std::string& path, Boxed<T>& out, Want want) {
    T v{};
    if (!read(j, path, v, want)) {
      return false;
    }
    out = std::move(v);
    return true;
  }

  template <class T> bool read(const Json& j, const std::string& path, Sparse<T>& out, Want want) {
    return read(j, path, out.mut(), want);
  }

  /** A header to set or add: a [name, value] pair of strings. */
  bool read(const Json& j, const std::string& path, std::pair<Str, Str>& out, Want) {
    if (!j.is_array() || j.size() != 2 || !j[0].is_string() || !j[1].is_string()) {
      return fail(path, "expected a [name, value] pair of strings");
    }
    out = {j[0].get<std::string>(), j[1].get<std::string>()};
    return true;
  }

  // ---- the schema's objects -------------------------------------------------------------

  /** {"exact": "..."} / {"prefix": ...} / {"regex": ...} */
  bool read(const Json& j, const std::string& path, StringMatch& out, Want) {
    if (!object(j, path, {"exact", "prefix", "regex"})) {
      return false;
    }
    if (j.size() != 1) {
      return fail(path, "expected exactly one of exact, prefix, regex");
    }
    auto it = j.begin();
    out.op = it.key() == "exact"    ? StringMatch::Op::kExact
             : it.key() == "prefix" ? StringMatch::Op::kPrefix
                                    : StringMatch::Op::kRegex;
    return read(*it, path + "." + it.key(), out.value, {});
  }

  bool read(const Json& j, const std::string& path, KeyMatch& out, Want) {
    if (!object(j, path, {"key", "present", "exact", "prefix", "regex"}) ||
        !get(j, path, "key", out.key, kRequired) || !get(j, path, "present", out.present)) {
      return false;
    }
    Json rest = j;
    rest.erase("key");
    rest.erase("present");
    if (out.present != rest.empty()) {
      return fail(path, "expected present: true or one of exact, prefix, regex");
    }
    return out.present || read(rest, path, out.match, {});
  }

  bool read(const Json& j, const std::string& path, HeaderOps& out, Want) {
    return object(j, path, {"set", "add", "remove"}) && get(j, path, "set", out.set) &&
           get(j, path, "add", out.add) && get(j, path, "remove", out.remove);
  }

  bool read(const Json& j, const std::string& path, HeaderActions& out, Want) {
    return object(j, path, {"request", "response"}) && get(j, path, "request", out.request) &&
           get(j, path, "response", out.response);
  }

  bool read(const Json& j, const std::string& path, HttpMatch& m, Want) {
    return object(j, path,
                  {"field", "name", "uri", "scheme", "method", "authority", "headers",
                   "withoutHeaders", "queryParams", "sourceLabels", "sourceNamespace", "gateways",
                   "port", "ignoreUriCase"}) &&
           get(j, path, "field", m.field) && get(j, path, "name", m.name) &&
           get(j, path, "uri", m.uri) && get(j, path, "scheme", m.scheme) &&
           get(j, path, "method", m.method) && get(j, path, "authority", m.authority) &&
           get(j, path, "headers", m.headers) && get(j, path, "withoutHeaders", m.withoutHeaders) &&
           get(j, path, "queryParams", m.queryParams) &&
           get(j, path, "sourceLabels", m.sourceLabels) &&
           get(j, path, "sourceNamespace", m.sourceNamespace) &&
           get(j, path, "gateways", m.gateways) && get(j, path, "port", m.port, kPort) &&
           get(j, path, "ignoreUriCase", m.ignoreUriCase);
  }

  bool read(const Json& j, const std::string& path, Fallback& f, Want) {
    if (!object(j, path, {"host", "subset", "port", "cases"}) || !get(j, path, "host", f.host) ||
        !get(j, path, "subset", f.subset, kRequired) || !get(j, path, "port", f.port, kPort) ||
        !get(j, path, "cases", f.cases)) {
      return false;
    }
    if (!j.contains("cases")) {
      f.cases = {"noinstances", "noavailabled"}; // the loader's default for an omitted case
    }
    return true;
  }

  bool read(const Json& j, const std::string& path, RouteDestination& d, Want) {
    return object(j, path, {"field", "host", "subset", "port", "weight", "headers", "fallback"}) &&
           get(j, path, "field", d.field) && get(j, path, "host", d.host) &&
           get(j, path, "subset", d.subset) && get(j, path, "port", d.port, kPort) &&
           get(j, path, "weight", d.weight, {false, 0, 100}) &&
           get(j, path, "headers", d.headers) && get(j, path, "fallback", d.fallback);
  }

  bool read(const Json& j, const std::string& path, PlanRoute& pr, Want) {
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
    return get(j, path, "source", pr.source, kRequired) && get(j, path, "field", r.field) &&
           get(j, path, "name", r.name) && get(j, path, "headers", r.headers) &&
           get(j, path, "rewriteUri", a.rewriteUri) &&
           get(j, path, "rewriteAuthority", a.rewriteAuthority) &&
           get(j, path, "timeout", a.timeout) &&
           get(j, path, "retries", a.retryAttempts, {false, 0, 1000}) &&
           get(j, path, "perTryTimeout", a.retryPerTryTimeout) &&
           get(j, path, "retryOn", a.retryOn) && get(j, path, "redirect", a.redirect) &&
           get(j, path, "redirectCode", a.redirectCode, {false, 300, 399}) &&
           get(j, path, "directResponse", a.directResponseStatus, {false, 200, 599}) &&
           get(j, path, "directResponseBody", a.directResponseBody) &&
           nested(j, path, "abort", {"status", "percent"},
                  [&](const Json& o, const std::string& p) {
                    return get(o, p, "status", a.faultAbortStatus, {true, 200, 599}) &&
                           get(o, p, "percent", a.faultAbortPercent);
                  }) &&
           nested(j, path, "mirror", {"host", "subset", "port", "percent"},
                  [&](const Json& o, const std::string& p) {
                    RouteDestination m;
                    if (!get(o, p, "host", m.host, kRequired) || !get(o, p, "subset", m.subset) ||
                        !get(o, p, "port", m.port, kPort) ||
                        !get(o, p, "percent", a.mirrorPercent)) {
                      return false;
                    }
                    a.mirror = std::move(m);
                    return true;
                  }) &&
           nested(j, path, "delay", {"fixed", "percent"},
                  [&](const Json& o, const std::string& p) {
                    return get(o, p, "fixed", a.faultDelay, kRequired) &&
                           get(o, p, "percent", a.faultDelayPercent);
                  }) &&
           get(j, path, "match", r.matches) && get(j, path, "route", r.destinations);
  }

  bool read(const Json& j, const std::string& path, LoadBalancer& lb, Want) {
    std::string hash;
    if (!object(j, path, {"simple", "hash", "key", "ttl", "path"}) ||
        !get(j, path, "simple", lb.simple) || !get(j, path, "hash", hash) ||
        !get(j, path, "key", lb.hashKey) || !get(j, path, "ttl", lb.cookieTtl) ||
        !get(j, path, "path", lb.cookiePath)) {
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
      return fail(at(path, "hash"),
                  "'" + hash + "' is not none, cookie, header, sourceIp or queryParam");
    }
    lb.hash = k->second;
    return true;
  }

  bool read(const Json& j, const std::string& path, Endpoint& e, Want) {
    return object(j, path, {"addr", "port", "pod"}) && get(j, path, "addr", e.addr, kRequired) &&
           get(j, path, "port", e.port, kRequiredPort) && get(j, path, "pod", e.pod);
  }

  bool read(const Json& j, const std::string& path, RouteSpecCluster& c, Want) {
    return object(j, path, {"service", "subset", "port", "endpoints", "loadBalancer"}) &&
           get(j, path, "service", c.service) && get(j, path, "subset", c.subset) &&
           get(j, path, "port", c.port, kRequiredPort) &&
           get(j, path, "loadBalancer", c.loadBalancer) && get(j, path, "endpoints", c.endpoints);
  }

  bool read(const Json& j, const std::string& path, TrafficLabel::Source& src, Want) {
    std::string kind;
    if (!object(j, path, {"kind", "value"}) || !get(j, path, "kind", kind, kRequired) ||
        !get(j, path, "value", src.value, kRequired)) {
      return false;
    }
    if (kind == "context") {
      src.kind = TrafficLabel::Source::Kind::kContext;
    } else if (kind == "localLabel") {
      src.kind = TrafficLabel::Source::Kind::kLocalLabel;
    } else if (kind == "literal") {
      src.kind = TrafficLabel::Source::Kind::kLiteral;
    } else {
      return fail(at(path, "kind"), "'" + kind + "' is not context, localLabel or literal");
    }
    return true;
  }

  bool read(const Json& j, const std::string& path, RouteSpecService& s, Want) {
    return object(j, path, {"ns", "name", "addr", "port", "clusters", "labels", "routes"}) &&
           get(j, path, "ns", s.ns, kRequired) && get(j, path, "name", s.name, kRequired) &&
           get(j, path, "addr", s.addr, kRequired) && get(j, path, "port", s.port, kRequiredPort) &&
           get(j, path, "clusters", s.clusters) && get(j, path, "labels", s.labels) &&
           get(j, path, "routes", s.routes);
  }

  bool read(const Json& j, const std::string& path, RouteSpecPod& p, Want) {
    return object(j, path, {"ip", "ns", "name", "labels"}) && get(j, path, "ip", p.ip, kRequired) &&
           get(j, path, "ns", p.ns, kRequired) && get(j, path, "name", p.name, kRequired) &&
           get(j, path, "labels", p.labels);
  }
};

} // namespace

std::string writeRouteTableJson(const RouteSpec& s) {
  Json pods = Json::array();
  for (const RouteSpecPod& p : s.pods) {
    Json pj = {{"ip", p.ip.str()}, {"ns", p.ns}, {"name", p.name}};
    if (!p.labels.empty()) {
      pj["labels"] = p.labels;
    }
    pods.push_back(std::move(pj));
  }
  Json services = Json::array();
  for (const RouteSpecService& ss : s.services) {
    Json clusters = Json::array();
    for (const RouteSpecCluster& c : ss.clusters) {
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
  Json j = {{"version", kRouteTableSchemaVersion},
            {"tagHeader", s.tagHeader},
            {"pods", std::move(pods)},
            {"services", std::move(services)}};
  return j.dump(1) + "\n";
}

Result<RouteSpec> readRouteTableJson(std::string_view json) {
  Json j = Json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return Error{0, "route table: not valid JSON"};
  }
  RouteSpec spec;
  Reader r;
  try {
    if (!r.document(j, spec)) {
      return Error{0, "route table: " + r.error};
    }
  } catch (const Json::exception& e) {
    // Every access is type-checked first; this is a last line, not the plan.
    return Error{0, "route table: " + std::string(e.what())};
  }
  return spec;
}

std::string RouteTable::toJson() const {
  return writeRouteTableJson(impl_->spec);
}

Result<std::shared_ptr<RouteTable>> RouteTable::fromJson(std::string_view json) {
  Result<RouteSpec> spec = readRouteTableJson(json);
  if (!spec) {
    return spec.error();
  }
  return fromSpec(std::move(*spec));
}

} // namespace veer::proxy
