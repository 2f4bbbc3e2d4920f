// Contour IngressRoute / HTTPProxy: loading, delegation and includes, Contour weights,
// positioned errors, and host conflicts across formats.

#include <gtest/gtest.h>

#include <filesystem>

#include "config/loader.h"
#include "config/resolve.h"
#include "config/plan_text.h"
#include "unit/repo.h"

namespace veer {
namespace {

namespace fs = std::filesystem;

using test::repo;

const char* kInventory = R"(
apiVersion: v1
kind: Service
metadata: {name: green, namespace: marketing}
spec:
  clusterIP: 10.96.4.10
  ports: [{name: http, port: 80, targetPort: 8080}]
  selector: {app: green}
---
apiVersion: v1
kind: Service
metadata: {name: blue, namespace: marketing}
spec:
  clusterIP: 10.96.4.20
  ports: [{name: http, port: 80, targetPort: 8080}]
  selector: {app: blue}
---
apiVersion: v1
kind: Service
metadata: {name: red, namespace: marketing}
spec:
  clusterIP: 10.96.4.30
  ports: [{name: http, port: 80, targetPort: 8080}]
  selector: {app: red}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  clusterIP: 10.96.0.20
  ports: [{name: http, port: 9080, targetPort: 9080}]
)";

struct Outcome {
  Diagnostics diags; // load, then resolve
  Plan plan;
};

Outcome run(const std::string& yaml) {
  LoadResult l = loadString(std::string(kInventory) + "---\n" + yaml, "in.yaml");
  Outcome o;
  o.diags = l.diags;
  if (hasErrors(l.diags)) {
    return o;
  }
  ResolveResult r = resolve(l.config);
  o.diags.insert(o.diags.end(), r.diags.begin(), r.diags.end());
  o.plan = r.plan;
  return o;
}

std::string rules(const Plan& plan) {
  std::string out;
  for (const auto& v : plan.virtualHosts) {
    for (const auto& r : v.routes) {
      out += v.host + " " + renderRule(r) + "\n";
    }
  }
  return out;
}

std::string errors(const Diagnostics& diags) {
  std::string out;
  for (const auto& d : diags) {
    if (d.severity == Diagnostic::Severity::kError) {
      out += d.format() + "\n";
    }
  }
  return out;
}

TEST(Contour, SeedCanaryAsWrittenSaysPortMeantWeight) {
  fs::path old = fs::current_path();
  fs::current_path(repo());
  LoadResult l = loadPaths({"configs/004-contour-ingressroute/inventory.yaml",
                            "configs/004-contour-ingressroute/steps/03-canary-as-written.yaml"});
  fs::current_path(old);
  ASSERT_FALSE(hasErrors(l.diags)) << formatDiagnostics(l.diags);
  ResolveResult r = resolve(l.config);
  EXPECT_EQ(errors(r.diags),
            "configs/004-contour-ingressroute/steps/03-canary-as-written.yaml:30:13: error: "
            "IngressRoute marketing/blog: spec.routes[0].services[0].port: port: 5 is not a port "
            "of Service marketing/green (ports: 80); did you mean weight: 5?\n"
            "configs/004-contour-ingressroute/steps/03-canary-as-written.yaml:32:13: error: "
            "IngressRoute marketing/blog: spec.routes[0].services[1].port: port: 95 is not a "
            "port of Service marketing/blue (ports: 80); did you mean weight: 95?\n");
}

const char* kRoot = R"(
apiVersion: contour.heptio.com/v1beta1
kind: IngressRoute
metadata: {name: root, namespace: root-ir}
spec:
  virtualhost: {fqdn: blog.example.com}
  routes:
  - match: /blog
    delegate: {name: blog, namespace: marketing}
)";

TEST(Contour, DelegationInlinesTheChildAcrossNamespaces) {
  Outcome o = run(std::string(kRoot) + R"(---
apiVersion: contour.heptio.com/v1beta1
kind: IngressRoute
metadata: {name: blog, namespace: marketing}
spec:
  routes:
  - match: /blog
    services: [{name: green, port: 80}, {name: blue, port: 80}]
  - match: /blog/admin
    services: [{name: red, port: 80}]
)");
  EXPECT_EQ(errors(o.diags), "");
  // Longest prefix first; unweighted services split evenly.
  EXPECT_EQ(rules(o.plan),
            "blog.example.com spec.routes[1] [IngressRoute marketing/blog]: (uri prefix "
            "'/blog/admin') -> red.marketing:80=100\n"
            "blog.example.com spec.routes[0] [IngressRoute marketing/blog]: (uri prefix "
            "'/blog') -> green.marketing:80=50 blue.marketing:80=50\n");
}

TEST(Contour, WeightsAreRelativeAndUnweightedAmongWeightedGetNothing) {
  Outcome o = run(std::string(kRoot) + R"(---
apiVersion: contour.heptio.com/v1beta1
kind: IngressRoute
metadata: {name: blog, namespace: marketing}
spec:
  routes:
  - match: /blog/a
    services: [{name: green, port: 80, weight: 1}, {name: blue, port: 80, weight: 1}, {name: red, port: 80, weight: 1}]
  - match: /blog/b
    services: [{name: green, port: 80, weight: 20}, {name: blue, port: 80}]
)");
  EXPECT_EQ(errors(o.diags), "");
  EXPECT_NE(rules(o.plan).find("green.marketing:80=34 blue.marketing:80=33 red.marketing:80=33"),
            std::string::npos)
      << rules(o.plan);
  EXPECT_NE(rules(o.plan).find("green.marketing:80=100 blue.marketing:80=0"), std::string::npos)
      << rules(o.plan);
}

// Contour's request-routing docs, "Upstream Weighting": no weights at all is an even split
// (so is every weight 0); unweighted services among weighted ones get nothing.
TEST(Contour, HttpProxyWeightRulesAsContourDocumentsThem) {
  Outcome o = run(R"(apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: blog, namespace: marketing}
spec:
  virtualhost: {fqdn: blog.example.com}
  routes:
  - conditions: [{prefix: /none}]
    services: [{name: green, port: 80}, {name: blue, port: 80}, {name: red, port: 80}]
  - conditions: [{prefix: /zero}]
    services: [{name: green, port: 80, weight: 0}, {name: blue, port: 80, weight: 0}]
  - conditions: [{prefix: /some}]
    services: [{name: green, port: 80, weight: 3}, {name: blue, port: 80}, {name: red, port: 80, weight: 1}]
)");
  EXPECT_EQ(errors(o.diags), "");
  const std::string r = rules(o.plan);
  EXPECT_NE(r.find("'/none') -> green.marketing:80=34 blue.marketing:80=33 red.marketing:80=33"),
            std::string::npos)
      << r;
  EXPECT_NE(r.find("'/zero') -> green.marketing:80=50 blue.marketing:80=50"), std::string::npos)
      << r;
  EXPECT_NE(r.find("'/some') -> green.marketing:80=75 blue.marketing:80=0 red.marketing:80=25"),
            std::string::npos)
      << r;
}

TEST(Contour, MissingChildIsPositionedWithAHint) {
  Outcome o = run(R"(apiVersion: contour.heptio.com/v1beta1
kind: IngressRoute
metadata: {name: root, namespace: root-ir}
spec:
  virtualhost: {fqdn: blog.example.com}
  routes:
  - match: /blog
    delegate: {name: blgo, namespace: marketing}
---
apiVersion: contour.heptio.com/v1beta1
kind: IngressRoute
metadata: {name: blog, namespace: marketing}
spec:
  routes:
  - match: /blog
    services: [{name: green, port: 80}]
)");
  EXPECT_NE(errors(o.diags).find("in.yaml:40:15: error: IngressRoute root-ir/root: "
                                 "spec.routes[0].delegate: IngressRoute marketing/blgo not found; "
                                 "did you mean blog?"),
            std::string::npos)
      << errors(o.diags);
}

TEST(Contour, UnknownServiceGetsAHint) {
  Outcome o = run(std::string(kRoot) + R"(---
apiVersion: contour.heptio.com/v1beta1
kind: IngressRoute
metadata: {name: blog, namespace: marketing}
spec:
  routes:
  - match: /blog
    services: [{name: gren, port: 80}]
)");
  EXPECT_NE(errors(o.diags).find("spec.routes[0].services[0].name: Service marketing/gren not "
                                 "found; did you mean green?"),
            std::string::npos)
      << errors(o.diags);
}

TEST(Contour, ChildOutsideTheDelegatedPrefixIsAnError) {
  Outcome o = run(std::string(kRoot) + R"(---
apiVersion: contour.heptio.com/v1beta1
kind: IngressRoute
metadata: {name: blog, namespace: marketing}
spec:
  routes:
  - match: /shop
    services: [{name: green, port: 80}]
)");
  EXPECT_NE(errors(o.diags).find("path /shop is outside the delegating route's prefix /blog"),
            std::string::npos)
      << errors(o.diags);
}

TEST(Contour, MisspelledFieldWarnsWithAHint) {
  Outcome o = run(std::string(kRoot) + R"(---
apiVersion: contour.heptio.com/v1beta1
kind: IngressRoute
metadata: {name: blog, namespace: marketing}
spec:
  routes:
  - match: /blog
    services: [{name: green, port: 80, wieght: 5}]
)");
  bool found = false;
  for (const auto& d : o.diags) {
    found = found || d.message == "unknown field wieght; did you mean weight?";
  }
  EXPECT_TRUE(found) << formatDiagnostics(o.diags);
}

TEST(HttpProxy, IncludesConcatenatePrefixesAndDetectCycles) {
  Outcome o = run(R"(apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: root, namespace: root-ir}
spec:
  virtualhost: {fqdn: shop.example.com}
  routes:
  - services: [{name: reviews, port: 9080}]
  includes:
  - name: blog
    namespace: marketing
    conditions: [{prefix: /blog}]
---
apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: blog, namespace: marketing}
spec:
  routes:
  - conditions: [{prefix: /v2}, {header: {name: X-Canary, exact: "1"}}]
    services: [{name: blue, port: 80}]
  - services: [{name: green, port: 80}]
)");
  // reviews is in default, the root's namespace is root-ir.
  EXPECT_NE(errors(o.diags).find("Service root-ir/reviews not found"), std::string::npos)
      << errors(o.diags);

  o = run(R"(apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: root, namespace: marketing}
spec:
  virtualhost: {fqdn: shop.example.com}
  includes:
  - name: blog
    conditions: [{prefix: /blog}]
---
apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: blog, namespace: marketing}
spec:
  routes:
  - conditions: [{prefix: /v2}, {header: {name: X-Canary, exact: "1"}}]
    services: [{name: blue, port: 80}]
  - services: [{name: green, port: 80}]
)");
  EXPECT_EQ(errors(o.diags), "");
  EXPECT_EQ(rules(o.plan),
            "shop.example.com spec.routes[0] [HTTPProxy marketing/blog]: (uri prefix '/blog/v2' "
            "AND headers[x-canary] exact '1') -> blue.marketing:80=100\n"
            "shop.example.com spec.routes[1] [HTTPProxy marketing/blog]: (uri prefix '/blog') -> "
            "green.marketing:80=100\n");

  o = run(R"(apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: root, namespace: marketing}
spec:
  virtualhost: {fqdn: shop.example.com}
  includes: [{name: a}]
---
apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: a, namespace: marketing}
spec:
  includes: [{name: b}]
---
apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: b, namespace: marketing}
spec:
  includes: [{name: a}]
)");
  EXPECT_NE(errors(o.diags).find(
                "delegation cycle: marketing/root -> marketing/a -> marketing/b -> marketing/a"),
            std::string::npos)
      << errors(o.diags);
}

TEST(IngressConflict, TwoFormatsClaimingOneHostNameBoth) {
  Outcome o = run(R"(apiVersion: contour.heptio.com/v1beta1
kind: IngressRoute
metadata: {name: old, namespace: marketing}
spec:
  virtualhost: {fqdn: blog.example.com}
  routes:
  - match: /
    services: [{name: green, port: 80}]
---
apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: new, namespace: marketing}
spec:
  virtualhost: {fqdn: Blog.example.com}
  routes:
  - services: [{name: blue, port: 80}]
)");
  EXPECT_NE(errors(o.diags).find("in.yaml:46:23: error: HTTPProxy marketing/new: "
                                 "spec.virtualhost.fqdn: host Blog.example.com is also claimed by "
                                 "IngressRoute marketing/old at in.yaml:37:23"),
            std::string::npos)
      << errors(o.diags);

  // An Istio VirtualService for the Service FQDN and an HTTPProxy for the same name.
  o = run(R"(apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews}}]
---
apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: reviews, namespace: marketing}
spec:
  virtualhost: {fqdn: reviews.default.svc.cluster.local}
  routes:
  - services: [{name: blue, port: 80}]
)");
  EXPECT_NE(errors(o.diags).find("host reviews.default.svc.cluster.local is also claimed by "
                                 "VirtualService default/reviews at in.yaml:37:11"),
            std::string::npos)
      << errors(o.diags);
}

/** The plan of a seed 004 step (with its inventory), which must resolve cleanly. */
Plan seedPlan(const std::string& step) {
  LoadResult l =
      loadPaths({(repo() / "configs/004-contour-ingressroute/inventory.yaml").string(),
                 (repo() / "configs/004-contour-ingressroute/steps" / (step + ".yaml")).string()});
  EXPECT_FALSE(hasErrors(l.diags)) << formatDiagnostics(l.diags);
  ResolveResult r = resolve(l.config);
  EXPECT_FALSE(hasErrors(r.diags)) << formatDiagnostics(r.diags);
  return r.plan;
}

TEST(Contour, PlanDiffShowsVirtualHostsAndTheirWeights) {
  const PlanSummary green = summarize(seedPlan("01-green"));
  const PlanSummary canary = summarize(seedPlan("04-canary-5-95"));
  PlanDiff d = diffPlans(green, canary);
  EXPECT_EQ(d.text, "~ vhost yangcs.net [IngressRoute root-ingressroute/root-blog]\n"
                    "    rule spec.routes[0] [IngressRoute marketing/blog]: (uri prefix '/blog'): "
                    "green.marketing:80=100 -> green.marketing:80=5 blue.marketing:80=95\n"
                    "Plan: 0 to add, 1 to change, 0 to remove.\n");
  EXPECT_EQ(d.changed, 1u);

  PlanSummary none = green;
  none.virtualHosts.clear();
  d = diffPlans(none, green);
  EXPECT_EQ(d.added, 1u);
  EXPECT_NE(d.text.find("+ vhost yangcs.net [IngressRoute root-ingressroute/root-blog] path=l7: "
                        "1 rule(s)\n    spec.routes[0] [IngressRoute marketing/blog]: (uri prefix "
                        "'/blog') -> green.marketing:80=100\n"),
            std::string::npos)
      << d.text;
  d = diffPlans(green, none);
  EXPECT_EQ(d.removed, 1u);
  EXPECT_NE(d.text.find("- vhost yangcs.net [IngressRoute root-ingressroute/root-blog]\n"),
            std::string::npos)
      << d.text;
  EXPECT_FALSE(diffPlans(green, green).changes());

  // The live maps hold no virtual hosts: against them, virtual hosts are not a change.
  none.virtualHostsKnown = false;
  EXPECT_FALSE(diffPlans(none, green).changes());
}

TEST(Contour, PlanDiffShowsRuleOrderAndRulesAddedOrRemoved) {
  Plan a = seedPlan("01-green");
  Plan b = a;
  ASSERT_EQ(b.virtualHosts.size(), 1u);
  PlanRoute extra = b.virtualHosts[0].routes[0];
  auto moved = std::make_shared<Route>(*extra.rule);
  moved->field = "spec.routes[1]";
  extra.rule = moved;
  b.virtualHosts[0].routes.insert(b.virtualHosts[0].routes.begin(), extra);
  PlanDiff d = diffPlans(summarize(a), summarize(b));
  EXPECT_NE(d.text.find("    rule added: spec.routes[1] [IngressRoute marketing/blog]: (uri prefix "
                        "'/blog') -> green.marketing:80=100\n"),
            std::string::npos)
      << d.text;
  std::swap(b.virtualHosts[0].routes[0], b.virtualHosts[0].routes[1]);
  Plan c = b;
  std::swap(c.virtualHosts[0].routes[0], c.virtualHosts[0].routes[1]);
  d = diffPlans(summarize(b), summarize(c));
  EXPECT_NE(d.text.find("rule order changed"), std::string::npos) << d.text;
  d = diffPlans(summarize(b), summarize(a));
  EXPECT_NE(d.text.find("    rule removed: spec.routes[1] [IngressRoute marketing/blog]: (uri "
                        "prefix '/blog')\n"),
            std::string::npos)
      << d.text;
}

TEST(Contour, ExplainVirtualHostSaysWhichRuleAndWhichService) {
  const Plan p = seedPlan("04-canary-5-95");
  ExplainRequest req;
  req.host = "YangCS.net";
  req.uri = "/blog/2019/hello?x=1";
  Explanation e = explainVirtualHost(p, req);
  EXPECT_TRUE(e.ok);
  EXPECT_EQ(e.text,
            "vhost yangcs.net [IngressRoute root-ingressroute/root-blog] path=l7 (ingress proxy)\n"
            "  spec.routes[0] [IngressRoute marketing/blog]: matches spec.routes[0].match (uri "
            "prefix '/blog')\n"
            "  rule: spec.routes[0] [IngressRoute marketing/blog]: (uri prefix '/blog') -> "
            "green.marketing:80=5 blue.marketing:80=95\n"
            "-> Service green.marketing:80 5%: 10.96.4.10:80/tcp path=kernel, *=100\n"
            "-> Service blue.marketing:80 95%: 10.96.4.20:80/tcp path=kernel, *=100\n");
  req.uri = "/about";
  e = explainVirtualHost(p, req);
  EXPECT_TRUE(e.ok);
  EXPECT_NE(e.text.find("no (uri '/about' is not prefix '/blog')"), std::string::npos) << e.text;
  EXPECT_NE(e.text.find("-> no rule matches: the ingress answers 404"), std::string::npos)
      << e.text;
  req.host = "other.example.com";
  EXPECT_FALSE(explainVirtualHost(p, req).ok);
}

} // namespace
} // namespace veer
