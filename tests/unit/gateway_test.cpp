// Gateway API HTTPRoute: mesh (GAMMA, parentRef to a Service) and ingress (parentRef to
// a Gateway), weights, precedence, PathPrefix semantics, filters, positioned errors with
// hints, and conflicts with other formats.

#include <gtest/gtest.h>

#include <cstring>

#include "compiler/compiler.h"
#include "config/loader.h"
#include "config/resolve.h"
#include "config/plan_text.h"
#include "proxy/explain.h"

namespace veer {
namespace {

const char* kInventory = R"(apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec:
  clusterIP: 10.96.5.10
  ports: [{name: http, port: 9080, targetPort: 9080}]
  selector: {app: cart}
---
apiVersion: v1
kind: Service
metadata: {name: cart-v1, namespace: shop}
spec:
  clusterIP: 10.96.5.11
  ports: [{name: http, port: 9080, targetPort: 9080}]
  selector: {app: cart, version: v1}
---
apiVersion: v1
kind: Service
metadata: {name: cart-v2, namespace: shop}
spec:
  clusterIP: 10.96.5.12
  ports: [{name: http, port: 9080, targetPort: 9080}]
  selector: {app: cart, version: v2}
---
apiVersion: v1
kind: Service
metadata: {name: cart-v3, namespace: shop}
spec:
  clusterIP: 10.96.5.13
  ports: [{name: http, port: 9080, targetPort: 9080}]
  selector: {app: cart, version: v3}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.5.20
  ports: [{name: http, port: 80, targetPort: 8080}, {name: admin, port: 81, targetPort: 8081}]
  selector: {app: web}
---
apiVersion: v1
kind: Pod
metadata: {name: cart-v1-a, namespace: shop, labels: {app: cart, version: v1}}
status: {podIP: 10.244.5.11, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: cart-v2-a, namespace: shop, labels: {app: cart, version: v2}}
status: {podIP: 10.244.5.21, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: cart-v3-a, namespace: shop, labels: {app: cart, version: v3}}
status: {podIP: 10.244.5.31, conditions: [{type: Ready, status: "True"}]}
)";

struct Outcome {
  Diagnostics diags; // load, then resolve
  Plan plan;
  Config config;
};

/** The inventory as inv.yaml and yaml as route.yaml, so positions count from route.yaml. */
Outcome run(const std::string& yaml) {
  LoadResult inv = loadString(kInventory, "inv.yaml");
  LoadResult l = loadString(yaml, "route.yaml");
  EXPECT_TRUE(inv.diags.empty()) << formatDiagnostics(inv.diags);
  Config c = inv.config;
  auto append = [](auto& to, const auto& from) { to.append(from.begin(), from.end()); };
  append(c.virtualServices, l.config.virtualServices);
  append(c.ingressRoutes, l.config.ingressRoutes);
  append(c.destinationRules, l.config.destinationRules);
  Outcome o;
  o.diags = l.diags;
  o.config = c;
  if (hasErrors(l.diags)) {
    return o;
  }
  ResolveResult r = resolve(c);
  o.diags.insert(o.diags.end(), r.diags.begin(), r.diags.end());
  o.plan = r.plan;
  return o;
}

const PlanService* service(const Plan& p, const std::string& name, uint16_t port = 9080) {
  for (const auto& s : p.services) {
    if (s.name == name && s.port == port) {
      return &s;
    }
  }
  return nullptr;
}

/** "name=weight ..." of a plan service's versions. */
std::string split(const PlanService& s) {
  std::string out;
  for (const auto& v : s.versions) {
    out += (out.empty() ? "" : " ") + (versionName(v).empty() ? "*" : versionName(v)) + "=" +
           std::to_string(v.weight);
  }
  return out;
}

std::string meshRoute(const std::string& rules, const std::string& api = "v1") {
  return "apiVersion: gateway.networking.k8s.io/" + api +
         "\nkind: HTTPRoute\nmetadata: {name: cart, namespace: shop}\nspec:\n"
         "  parentRefs:\n  - {group: \"\", kind: Service, name: cart}\n  rules:\n" +
         rules;
}

TEST(GatewayApi, MeshCanaryIsKernelPathWithRelativeWeights) {
  for (const char* api : {"v1", "v1beta1"}) {
    Outcome o = run(meshRoute("  - backendRefs:\n"
                              "    - {name: cart-v1, port: 9080, weight: 3}\n"
                              "    - {name: cart-v2, port: 9080, weight: 1}\n",
                              api));
    ASSERT_FALSE(hasErrors(o.diags)) << formatDiagnostics(o.diags);
    const PlanService* s = service(o.plan, "cart");
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->path, PlanPath::kKernel);
    EXPECT_EQ(split(*s), "shop/cart-v1=75 shop/cart-v2=25") << api;
    ASSERT_EQ(s->versions.size(), 2u);
    ASSERT_EQ(s->versions[1].backends.size(), 1u);
    EXPECT_EQ(s->versions[1].backends[0].addr.str(), "10.244.5.21");
    EXPECT_EQ(s->kernelRule.text(), "HTTPRoute shop/cart spec.rules[0]");
  }
}

TEST(GatewayApi, DefaultWeightIsOneAndPercentsSumTo100) {
  Outcome o = run(meshRoute("  - backendRefs:\n"
                            "    - {name: cart-v1, port: 9080}\n"
                            "    - {name: cart-v2, port: 9080}\n"
                            "    - {name: cart-v3, port: 9080}\n"));
  ASSERT_FALSE(hasErrors(o.diags)) << formatDiagnostics(o.diags);
  EXPECT_EQ(split(*service(o.plan, "cart")), "shop/cart-v1=34 shop/cart-v2=33 shop/cart-v3=33");
}

TEST(GatewayApi, VersionNamesReachTheMaps) {
  Outcome o = run(meshRoute("  - backendRefs:\n"
                            "    - {name: cart-v1, port: 9080, weight: 9}\n"
                            "    - {name: cart-v2, port: 9080, weight: 1}\n"));
  ASSERT_FALSE(hasErrors(o.diags)) << formatDiagnostics(o.diags);
  CompileResult c = compile(o.plan);
  ASSERT_TRUE(c.errors.empty());
  std::vector<std::string> names;
  for (const auto& [k, v] : c.image.versions) {
    if (v.service == "shop/cart:9080") {
      names.push_back(std::string(v.subset) + "=" + std::to_string(v.weight));
    }
  }
  EXPECT_EQ(names, (std::vector<std::string>{"shop/cart-v1=90", "shop/cart-v2=10"}));
}

TEST(GatewayApi, HeaderMatchAndHeaderModifiersAreL7) {
  Outcome o =
      run(meshRoute("  - backendRefs:\n"
                    "    - {name: cart-v1, port: 9080}\n"
                    "  - matches:\n"
                    "    - headers:\n"
                    "      - {name: X-Canary, value: always}\n"
                    "    filters:\n"
                    "    - type: ResponseHeaderModifier\n"
                    "      responseHeaderModifier:\n"
                    "        set: [{name: x-served-by, value: cart-v2}]\n"
                    "        add: [{name: x-hop, value: \"1\"}]\n"
                    "        remove: [x-debug]\n"
                    "    backendRefs:\n"
                    "    - name: cart-v2\n"
                    "      port: 9080\n"
                    "      filters:\n"
                    "      - type: RequestHeaderModifier\n"
                    "        requestHeaderModifier: {set: [{name: x-version, value: v2}]}\n"));
  ASSERT_FALSE(hasErrors(o.diags)) << formatDiagnostics(o.diags);
  const PlanService* s = service(o.plan, "cart");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->path, PlanPath::kL7);
  // The kernel keeps the unconditional rule; the header rule is first for the proxy.
  EXPECT_EQ(split(*s), "shop/cart-v1=100");
  ASSERT_EQ(s->routes.size(), 2u);
  const Route& r = *s->routes[0].rule;
  EXPECT_EQ(r.field, "spec.rules[1]");
  ASSERT_EQ(r.matches.size(), 1u);
  ASSERT_EQ(r.matches[0].headers.size(), 1u);
  EXPECT_EQ(r.matches[0].headers[0].key, "x-canary"); // header names are case-insensitive
  EXPECT_EQ(r.headers->response.set,
            (std::vector<std::pair<Str, Str>>{{"x-served-by", "cart-v2"}}));
  EXPECT_EQ(r.headers->response.add, (std::vector<std::pair<Str, Str>>{{"x-hop", "1"}}));
  EXPECT_EQ(r.headers->response.remove, (std::vector<Str>{"x-debug"}));
  ASSERT_EQ(r.destinations.size(), 1u);
  EXPECT_EQ(r.destinations[0].headers->request.set,
            (std::vector<std::pair<Str, Str>>{{"x-version", "v2"}}));

  ExplainRequest req;
  req.host = "cart.shop";
  req.headers = {{"x-canary", "always"}};
  Explanation e = explain(o.plan, o.config, req);
  EXPECT_TRUE(e.ok);
  EXPECT_NE(e.text.find("spec.rules[1]"), std::string::npos) << e.text;
  // The backend is another Service: its pods, not the parent's.
  EXPECT_NE(e.text.find("-> cart-v2.shop 100%: shop/cart-v2-a {"), std::string::npos) << e.text;
}

// The spec's precedence, whatever the file order: Exact path, then (implementation-
// specific) RegularExpression, then the longest PathPrefix, then method, then the most
// headers, then the most query parameters. A match without a path is PathPrefix "/", so
// /a outranks a method match without a path.
TEST(GatewayApi, MatchesAreOrderedByPrecedence) {
  Outcome o = run(meshRoute(
      "  - backendRefs: [{name: cart-v1, port: 9080}]\n"       // 0
      "  - matches: [{path: {type: PathPrefix, value: /a}}]\n" // 1
      "    backendRefs: [{name: cart-v1, port: 9080}]\n"
      "  - matches: [{path: {type: PathPrefix, value: /a/b}}]\n" // 2
      "    backendRefs: [{name: cart-v1, port: 9080}]\n"
      "  - matches: [{path: {type: Exact, value: /a}}]\n" // 3
      "    backendRefs: [{name: cart-v1, port: 9080}]\n"
      "  - matches: [{path: {type: RegularExpression, value: /r.*}}]\n" // 4
      "    backendRefs: [{name: cart-v1, port: 9080}]\n"
      "  - matches: [{method: POST}]\n" // 5
      "    backendRefs: [{name: cart-v1, port: 9080}]\n"
      "  - matches: [{headers: [{name: a, value: x}, {name: b, value: y}]}]\n" // 6
      "    backendRefs: [{name: cart-v1, port: 9080}]\n"
      "  - matches: [{headers: [{name: a, value: x}]}, {queryParams: [{name: q, value: " // 7
      "z}]}]\n"
      "    backendRefs: [{name: cart-v1, port: 9080}]\n"));
  ASSERT_FALSE(hasErrors(o.diags)) << formatDiagnostics(o.diags);
  const PlanService* s = service(o.plan, "cart");
  ASSERT_NE(s, nullptr);
  std::vector<std::string> order;
  for (const auto& pr : s->routes) {
    order.push_back(pr.rule->matches.empty() ? pr.rule->field : pr.rule->matches[0].field);
  }
  EXPECT_EQ(order, (std::vector<std::string>{"spec.rules[3].matches[0]", "spec.rules[4].matches[0]",
                                             "spec.rules[2].matches[0]", "spec.rules[1].matches[0]",
                                             "spec.rules[5].matches[0]", "spec.rules[6].matches[0]",
                                             "spec.rules[7].matches[0]", "spec.rules[7].matches[1]",
                                             "spec.rules[0]"}));
}

TEST(GatewayApi, PathPrefixMatchesWholePathElements) {
  Outcome o = run(meshRoute("  - matches: [{path: {type: PathPrefix, value: /abc/}}]\n"
                            "    backendRefs: [{name: cart-v2, port: 9080}]\n"));
  ASSERT_FALSE(hasErrors(o.diags)) << formatDiagnostics(o.diags);
  const PlanService* s = service(o.plan, "cart");
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(s->routes.size(), 1u);
  const StringMatch& uri = *s->routes[0].rule->matches[0].uri;
  for (const char* yes : {"/abc", "/abc/", "/abc/def"}) {
    EXPECT_TRUE(stringMatches(uri, yes)) << yes;
  }
  for (const char* no : {"/abcd", "/ab", "/", "/x/abc"}) {
    EXPECT_FALSE(stringMatches(uri, no)) << no;
  }
}

TEST(GatewayApi, PrefixSlashIsUnconditional) {
  Outcome o = run(meshRoute("  - matches: [{path: {type: PathPrefix, value: /}}]\n"
                            "    backendRefs: [{name: cart-v2, port: 9080}]\n"));
  ASSERT_FALSE(hasErrors(o.diags)) << formatDiagnostics(o.diags);
  const PlanService* s = service(o.plan, "cart");
  EXPECT_EQ(s->path, PlanPath::kKernel);
  EXPECT_EQ(split(*s), "shop/cart-v2=100");
}

TEST(GatewayApi, AllWeightsZeroIs500AndNoBackendsIs503) {
  Outcome o = run(meshRoute("  - matches: [{headers: [{name: a, value: x}]}]\n"
                            "    backendRefs:\n"
                            "    - {name: cart-v1, port: 9080, weight: 0}\n"
                            "  - matches: [{headers: [{name: b, value: x}]}]\n"
                            "  - backendRefs: [{name: cart-v1, port: 9080}]\n"));
  ASSERT_FALSE(hasErrors(o.diags)) << formatDiagnostics(o.diags);
  std::string all = formatDiagnostics(o.diags);
  EXPECT_NE(
      all.find("route.yaml:8:5: warning: HTTPRoute shop/cart: spec.rules[0].backendRefs: every "
               "backendRef has weight 0: Gateway API answers 500"),
      std::string::npos)
      << all;
  EXPECT_NE(all.find("route.yaml:11:5: warning: HTTPRoute shop/cart: spec.rules[1].backendRefs: no "
                     "backendRefs and no RequestRedirect: Gateway API answers 503"),
            std::string::npos)
      << all;
  const PlanService* s = service(o.plan, "cart");
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(s->routes.size(), 3u);
  EXPECT_EQ(s->routes[0].rule->actions->directResponseStatus, 500);
  EXPECT_EQ(s->routes[1].rule->actions->directResponseStatus, 503);
}

TEST(GatewayApi, RewriteRedirectAndMirrorFilters) {
  Outcome o = run(meshRoute(
      "  - matches: [{path: {value: /old}}]\n"
      "    filters:\n"
      "    - type: RequestRedirect\n"
      "      requestRedirect: {scheme: https, hostname: new.example.com, statusCode: 301}\n"
      "  - filters:\n"
      "    - type: URLRewrite\n"
      "      urlRewrite: {hostname: cart.internal, path: {type: ReplacePrefixMatch, "
      "replacePrefixMatch: /v2}}\n"
      "    - type: RequestMirror\n"
      "      requestMirror: {backendRef: {name: cart-v3, port: 9080}, percent: 25}\n"
      "    backendRefs: [{name: cart-v1, port: 9080}]\n"));
  ASSERT_FALSE(hasErrors(o.diags)) << formatDiagnostics(o.diags);
  const PlanService* s = service(o.plan, "cart");
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(s->routes.size(), 2u);
  EXPECT_EQ(s->routes[0].rule->actions->redirect, "authority=new.example.com,scheme=https");
  EXPECT_EQ(s->routes[0].rule->actions->redirectCode, 301);
  const RouteActions& a = *s->routes[1].rule->actions;
  EXPECT_EQ(a.rewriteAuthority, "cart.internal");
  EXPECT_EQ(a.rewriteUri, "/v2");
  ASSERT_TRUE(a.mirror.has_value());
  EXPECT_EQ(a.mirror->host, "cart-v3.shop");
  EXPECT_EQ(a.mirrorPercent, 25);
  EXPECT_EQ(s->path, PlanPath::kL7);
}

TEST(GatewayApi, ParentPortLimitsTheRouteToThatPort) {
  Outcome o = run("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
                  "metadata: {name: web, namespace: shop}\nspec:\n"
                  "  parentRefs: [{kind: Service, group: \"\", name: web, port: 80}]\n"
                  "  rules:\n  - backendRefs: [{name: cart-v2, port: 9080}]\n");
  ASSERT_FALSE(hasErrors(o.diags)) << formatDiagnostics(o.diags);
  EXPECT_EQ(split(*service(o.plan, "web", 80)), "shop/cart-v2=100");
  EXPECT_EQ(split(*service(o.plan, "web", 81)), "*=100"); // untouched
}

TEST(GatewayApi, GatewayParentIsAnIngressVirtualHost) {
  Outcome o = run("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
                  "metadata: {name: shop, namespace: shop}\nspec:\n"
                  "  parentRefs: [{name: public, namespace: infra}, {kind: Service, group: core, "
                  "name: cart}]\n"
                  "  hostnames: [shop.example.com, \"*.shop.example.com\"]\n"
                  "  rules:\n"
                  "  - matches: [{path: {type: PathPrefix, value: /cart}}]\n"
                  "    backendRefs: [{name: cart-v1, port: 9080, weight: 1}, {name: cart-v2, "
                  "port: 9080, weight: 3}]\n");
  ASSERT_FALSE(hasErrors(o.diags)) << formatDiagnostics(o.diags);
  ASSERT_EQ(o.plan.virtualHosts.size(), 2u);
  EXPECT_EQ(o.plan.virtualHosts[0].host, "*.shop.example.com");
  EXPECT_EQ(o.plan.virtualHosts[1].host, "shop.example.com");
  EXPECT_EQ(o.plan.virtualHosts[1].source, "HTTPRoute shop/shop");
  EXPECT_EQ(
      renderRule(o.plan.virtualHosts[1].routes[0]),
      "spec.rules[0] [HTTPRoute shop/shop]: (uri regex '/cart(/.*)?') -> cart-v1.shop:9080=25 "
      "cart-v2.shop:9080=75");
  // The Service parent in the same object: the mesh route of cart (L7: a path match).
  const PlanService* s = service(o.plan, "cart");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->path, PlanPath::kL7);
  EXPECT_EQ(s->routes.size(), 1u);
}

TEST(GatewayApi, SameHostInContourAndHttpRouteIsAConflictNamingBoth) {
  Outcome o = run("apiVersion: projectcontour.io/v1\nkind: HTTPProxy\n"
                  "metadata: {name: shop, namespace: shop}\nspec:\n"
                  "  virtualhost: {fqdn: shop.example.com}\n"
                  "  routes: [{services: [{name: cart-v1, port: 9080}]}]\n"
                  "---\n"
                  "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
                  "metadata: {name: shop, namespace: shop}\nspec:\n"
                  "  parentRefs: [{name: public}]\n"
                  "  hostnames: [SHOP.example.com]\n"
                  "  rules: [{backendRefs: [{name: cart-v2, port: 9080}]}]\n");
  EXPECT_TRUE(hasErrors(o.diags));
  EXPECT_NE(formatDiagnostics(o.diags).find(
                "route.yaml:13:15: error: HTTPRoute shop/shop: spec.hostnames[0]: host "
                "SHOP.example.com is also claimed by HTTPProxy shop/shop at "
                "route.yaml:5:23; one host must have one routing object"),
            std::string::npos)
      << formatDiagnostics(o.diags);
}

TEST(GatewayApi, SameServiceInIstioAndHttpRouteIsAConflictNamingBoth) {
  Outcome o = run(meshRoute("  - backendRefs: [{name: cart-v1, port: 9080}]\n") +
                  "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                  "metadata: {name: cart, namespace: shop}\n"
                  "spec:\n  hosts: [cart]\n  http:\n  - route:\n    - destination: {host: cart}\n");
  EXPECT_TRUE(hasErrors(o.diags));
  EXPECT_NE(formatDiagnostics(o.diags).find(
                "route.yaml:14:11: error: VirtualService shop/cart: spec.hosts[0]: Service "
                "shop/cart is already routed by HTTPRoute shop/cart at route.yaml:6:38"),
            std::string::npos)
      << formatDiagnostics(o.diags);
}

TEST(GatewayApi, ExplainVirtualHostPicksTheMostSpecificHostAndRule) {
  Outcome o = run("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
                  "metadata: {name: any, namespace: shop}\nspec:\n"
                  "  parentRefs: [{name: public}]\n"
                  "  rules: [{backendRefs: [{name: web, port: 80}]}]\n"
                  "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
                  "metadata: {name: shop, namespace: shop}\nspec:\n"
                  "  parentRefs: [{name: public}]\n"
                  "  hostnames: [\"*.example.com\"]\n"
                  "  rules:\n"
                  "  - matches: [{headers: [{name: x-canary, value: always}], queryParams: "
                  "[{name: v, value: \"2\"}]}]\n"
                  "    backendRefs: [{name: cart-v2, port: 9080}]\n"
                  "  - backendRefs: [{name: cart-v1, port: 9080, weight: 3}, {name: cart-v2, "
                  "port: 9080}]\n");
  ASSERT_FALSE(hasErrors(o.diags)) << formatDiagnostics(o.diags);
  ExplainRequest req;
  req.host = "shop.example.com";
  req.uri = "/?v=2";
  req.headers = {{"X-Canary", "always"}};
  Explanation e = explainVirtualHost(o.plan, req);
  ASSERT_TRUE(e.ok);
  EXPECT_EQ(e.text,
            "vhost *.example.com [HTTPRoute shop/shop] path=l7 (ingress proxy)\n"
            "  spec.rules[0] [HTTPRoute shop/shop]: matches spec.rules[0].matches[0] "
            "(headers[x-canary] exact 'always' AND queryParams[v] exact '2')\n"
            "  rule: spec.rules[0] [HTTPRoute shop/shop]: (headers[x-canary] exact 'always' AND "
            "queryParams[v] exact '2') -> cart-v2.shop:9080=100\n"
            "-> Service cart-v2.shop:9080 100%: 10.96.5.12:9080/tcp path=kernel, *=100\n");
  req.uri = "/";
  e = explainVirtualHost(o.plan, req);
  EXPECT_NE(e.text.find("no (query parameter v is absent)"), std::string::npos) << e.text;
  EXPECT_NE(e.text.find("-> Service cart-v1.shop:9080 75%"), std::string::npos) << e.text;
  // Another domain falls to the catch-all "*" host.
  req.host = "shop.example.org";
  e = explainVirtualHost(o.plan, req);
  EXPECT_NE(e.text.find("vhost * [HTTPRoute shop/any]"), std::string::npos) << e.text;
  EXPECT_NE(e.text.find("-> Service web.shop:80 100%: 10.96.5.20:80/tcp"), std::string::npos)
      << e.text;
}

// Several HTTPRoutes may attach to one parent: their rules merge, ordered by precedence
// across the routes, ties by route name.
TEST(GatewayApi, RoutesOnOneParentMerge) {
  Outcome o = run("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
                  "metadata: {name: b-canary, namespace: shop}\nspec:\n"
                  "  parentRefs: [{group: \"\", kind: Service, name: cart}, {name: public}]\n"
                  "  hostnames: [shop.example.com]\n"
                  "  rules:\n"
                  "  - matches: [{headers: [{name: x-canary, value: always}]}]\n"
                  "    backendRefs: [{name: cart-v2, port: 9080}]\n"
                  "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
                  "metadata: {name: a-default, namespace: shop}\nspec:\n"
                  "  parentRefs: [{group: \"\", kind: Service, name: cart}, {name: public}]\n"
                  "  hostnames: [shop.example.com]\n"
                  "  rules:\n"
                  "  - backendRefs: [{name: cart-v1, port: 9080}]\n"
                  "  - matches: [{headers: [{name: x-canary, value: never}]}]\n"
                  "    backendRefs: [{name: cart-v1, port: 9080}]\n");
  ASSERT_FALSE(hasErrors(o.diags)) << formatDiagnostics(o.diags);
  const PlanService* s = service(o.plan, "cart");
  ASSERT_NE(s, nullptr);
  std::vector<std::string> order;
  for (const auto& pr : s->routes) {
    order.push_back(pr.source + " " + pr.rule->field);
  }
  EXPECT_EQ(order, (std::vector<std::string>{"HTTPRoute shop/a-default spec.rules[1]",
                                             "HTTPRoute shop/b-canary spec.rules[0]",
                                             "HTTPRoute shop/a-default spec.rules[0]"}));
  EXPECT_EQ(s->path, PlanPath::kL7);
  EXPECT_EQ(s->kernelRule.text(), "HTTPRoute shop/a-default spec.rules[0]");
  EXPECT_EQ(split(*s), "shop/cart-v1=100");

  ASSERT_EQ(o.plan.virtualHosts.size(), 1u);
  const PlanVirtualHost& vh = o.plan.virtualHosts[0];
  EXPECT_EQ(vh.source, "HTTPRoute shop/b-canary, HTTPRoute shop/a-default");
  ASSERT_EQ(vh.routes.size(), 3u);
  EXPECT_EQ(vh.routes[0].source, "HTTPRoute shop/a-default");
  EXPECT_EQ(vh.routes[1].source, "HTTPRoute shop/b-canary");
  EXPECT_TRUE(vh.routes[2].rule->matches.empty());
}

struct ErrorCase {
  const char* name;
  std::string yaml;
  std::string expected; // one formatted diagnostic
};

void PrintTo(const ErrorCase& c, std::ostream* os) {
  *os << c.name;
}

std::vector<ErrorCase> errorCases() {
  const std::string head = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
                           "metadata: {name: cart, namespace: shop}\nspec:\n";
  const std::string parent = "  parentRefs: [{group: \"\", kind: Service, name: cart}]\n";
  const std::string obj = "HTTPRoute shop/cart: ";
  return {
      {"UnknownFilterType",
       head + parent +
           "  rules:\n  - filters:\n    - type: RequestHeaderModifer\n"
           "    backendRefs: [{name: cart-v1, port: 9080}]\n",
       "route.yaml:8:13: error: " + obj +
           "spec.rules[0].filters[0].type: unknown filter type RequestHeaderModifer; did you mean "
           "RequestHeaderModifier?"},
      {"FilterBodyMissing", head + parent + "  rules:\n  - filters:\n    - type: URLRewrite\n",
       "route.yaml:8:7: error: " + obj +
           "spec.rules[0].filters[0].urlRewrite: missing urlRewrite (required by type URLRewrite)"},
      {"BadWeight",
       head + parent + "  rules:\n  - backendRefs: [{name: cart-v1, port: 9080, weight: -5}]\n",
       "route.yaml:7:55: error: " + obj +
           "spec.rules[0].backendRefs[0].weight: weight -5 out of range 0..1000000"},
      {"BackendPortMissing", head + parent + "  rules:\n  - backendRefs: [{name: cart-v1}]\n",
       "route.yaml:7:19: error: " + obj +
           "spec.rules[0].backendRefs[0].port: missing port (Gateway API requires it when the "
           "backend is a Service)"},
      {"BackendKindUnsupported",
       head + parent +
           "  rules:\n  - backendRefs: [{kind: ServiceImport, group: multicluster.x-k8s.io, name: "
           "cart-v1, port: 9080}]\n",
       "route.yaml:7:26: error: " + obj +
           "spec.rules[0].backendRefs[0].kind: backend kind ServiceImport (group "
           "multicluster.x-k8s.io) is not supported; veer routes to Services (group \"\", kind "
           "Service)"},
      {"ParentKindUnsupported",
       head + "  parentRefs: [{kind: Deployment, group: apps, name: cart}]\n"
              "  rules: [{backendRefs: [{name: cart-v1, port: 9080}]}]\n",
       "route.yaml:5:23: error: " + obj +
           "spec.parentRefs[0].kind: parent kind Deployment (group apps) is not supported; "
           "expected Gateway (group gateway.networking.k8s.io, ingress) or Service (group \"\", "
           "mesh)"},
      {"PathTypeTypo",
       head + parent +
           "  rules:\n  - matches: [{path: {type: PathPrefx, value: /a}}]\n"
           "    backendRefs: [{name: cart-v1, port: 9080}]\n",
       "route.yaml:7:29: error: " + obj +
           "spec.rules[0].matches[0].path.type: expected Exact, PathPrefix or RegularExpression, "
           "got 'PathPrefx'; did you mean PathPrefix?"},
      {"PathNotAbsolute",
       head + parent +
           "  rules:\n  - matches: [{path: {type: Exact, value: cart}}]\n"
           "    backendRefs: [{name: cart-v1, port: 9080}]\n",
       "route.yaml:7:43: error: " + obj +
           "spec.rules[0].matches[0].path.value: a path must start with /, got 'cart'"},
      {"BadRegex",
       head + parent +
           "  rules:\n  - matches: [{headers: [{type: RegularExpression, name: a, value: "
           "\"(\"}]}]\n    backendRefs: [{name: cart-v1, port: 9080}]\n",
       "route.yaml:7:68: error: " + obj +
           "spec.rules[0].matches[0].headers[0].value: invalid regex '(': missing ): ( (RE2 "
           "syntax)"},
      {"MethodTypo",
       head + parent +
           "  rules:\n  - matches: [{method: GTE}]\n    backendRefs: [{name: cart-v1, port: "
           "9080}]\n",
       "route.yaml:7:24: error: " + obj +
           "spec.rules[0].matches[0].method: unknown HTTP method 'GTE'; did you mean GET?"},
      {"FieldTypoIsAWarningWithAHint",
       head + parent + "  rules:\n  - backendRef: [{name: cart-v1, port: 9080}]\n",
       "route.yaml:7:5: warning: " + obj +
           "spec.rules[0].backendRef: unknown field backendRef; did you mean backendRefs?"},
      {"UnknownBackendService",
       head + parent + "  rules:\n  - backendRefs: [{name: cart-v4, port: 9080}]\n",
       "route.yaml:7:19: error: " + obj +
           "spec.rules[0].backendRefs[0].name: host cart-v4.shop is not a known Service; did you "
           "mean cart-v1?"},
      {"BackendPortNotOnService",
       head + parent + "  rules:\n  - backendRefs: [{name: cart-v1, port: 8080}]\n",
       "route.yaml:7:41: error: " + obj +
           "spec.rules[0].backendRefs[0].port: Service shop/cart-v1 has no port 8080 (ports: "
           "9080)"},
      {"UnknownParentService",
       head + "  parentRefs: [{group: \"\", kind: Service, name: kart}]\n"
              "  rules: [{backendRefs: [{name: cart-v1, port: 9080}]}]\n",
       "route.yaml:5:49: error: " + obj +
           "spec.parentRefs[0].name: host kart.shop is not a known Service; did you mean cart?"},
      {"IngressUnknownBackendService",
       head + "  parentRefs: [{name: public}]\n  hostnames: [shop.example.com]\n"
              "  rules: [{backendRefs: [{name: cart-v4, port: 9080}]}]\n",
       "route.yaml:7:26: error: " + obj +
           "spec.rules[0].backendRefs[0].name: Service shop/cart-v4 not found; did you mean "
           "cart-v1?"},
      {"IngressBackendPortNotOnService",
       head + "  parentRefs: [{name: public}]\n  hostnames: [shop.example.com]\n"
              "  rules: [{backendRefs: [{name: cart-v1, port: 80}]}]\n",
       "route.yaml:7:48: error: " + obj +
           "spec.rules[0].backendRefs[0].port: port: 80 is not a port of Service shop/cart-v1 "
           "(ports: 9080)"},
      {"BadHostname",
       head + "  parentRefs: [{name: public}]\n  hostnames: [\"shop.example.com:8080\"]\n"
              "  rules: [{backendRefs: [{name: cart-v1, port: 9080}]}]\n",
       "route.yaml:6:15: error: " + obj +
           "spec.hostnames[0]: 'shop.example.com:8080' is not a host name (a DNS name, optionally "
           "starting with *.)"},
  };
}

class GatewayErrors : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(GatewayErrors, PositionedMessage) {
  const ErrorCase& c = GetParam();
  Outcome o = run(c.yaml);
  bool found = false;
  for (const auto& d : o.diags) {
    found = found || d.format() == c.expected;
  }
  EXPECT_TRUE(found) << "expected: " << c.expected << "\ngot:\n" << formatDiagnostics(o.diags);
}

INSTANTIATE_TEST_SUITE_P(Cases, GatewayErrors, ::testing::ValuesIn(errorCases()),
                         [](const auto& info) { return std::string(info.param.name); });

} // namespace
} // namespace veer
