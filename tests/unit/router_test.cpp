// The L7 router (proxy/router.h): seeds loaded through the real pipeline (load, resolve,
// RouteTable::fromPlan) and routed request by request; the JSON form round-tripped and
// attacked.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <numeric>
#include <set>
#include <thread>

#include "config/loader.h"
#include "config/resolve.h"
#include "proxy/explain.h"
#include "proxy/router.h"
#include "unit/repo.h"

// Counts heap allocations on this thread while enabled: route() must make none.
namespace {
thread_local bool gCountAllocs = false;
thread_local size_t gAllocs = 0;
} // namespace

void* operator new(size_t n) {
  if (gCountAllocs) {
    ++gAllocs;
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) {
    return p;
  }
  throw std::bad_alloc();
}
// GCC pairs the library's operator new with free() at inlined call sites and warns; here
// new is malloc, so free is its match.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, size_t) noexcept {
  std::free(p);
}
#pragma GCC diagnostic pop

namespace veer::proxy {
namespace {

namespace fs = std::filesystem;

using test::repo;

/** A seed step as golden_test loads it: inventory, the seed's top-level files, the step. */
struct Loaded {
  Config config;
  Plan plan;
};

Loaded load(const std::string& seed, const std::string& step,
            const std::vector<std::string>& extraYaml = {}) {
  fs::path dir = repo() / "configs" / seed;
  std::vector<std::string> files;
  files.push_back(fs::exists(dir / "inventory.yaml")
                      ? (dir / "inventory.yaml").string()
                      : (repo() / "configs/bookinfo/inventory.yaml").string());
  std::vector<std::string> top;
  for (const auto& f : fs::directory_iterator(dir)) {
    if (f.is_regular_file() && f.path().extension() == ".yaml" &&
        f.path().filename() != "inventory.yaml") {
      top.push_back(f.path().string());
    }
  }
  std::sort(top.begin(), top.end());
  files.insert(files.end(), top.begin(), top.end());
  files.push_back((dir / "steps" / (step + ".yaml")).string());
  LoadResult l = loadPaths(files);
  EXPECT_FALSE(hasErrors(l.diags)) << formatDiagnostics(l.diags);
  for (size_t i = 0; i < extraYaml.size(); ++i) {
    LoadResult x = loadString(extraYaml[i], "extra" + std::to_string(i) + ".yaml");
    EXPECT_FALSE(hasErrors(x.diags)) << formatDiagnostics(x.diags);
    auto& c = l.config;
    c.pods.append(x.config.pods.begin(), x.config.pods.end());
  }
  ResolveResult r = resolve(l.config);
  EXPECT_FALSE(hasErrors(r.diags)) << formatDiagnostics(r.diags);
  return Loaded{std::move(l.config), std::move(r.plan)};
}

/** The service address of ns/name (first IPv4 port). */
Origin to(const Plan& plan, const std::string& name, const std::string& client = "10.244.9.9") {
  for (const auto& s : plan.services) {
    if (s.name == name && s.addr.v4) {
      return Origin{*IpAddr::parse(client), s.addr, s.port};
    }
  }
  ADD_FAILURE() << "no service " << name;
  return {};
}

/** A request with owned storage for its headers. */
struct Req {
  std::string method = "GET";
  std::string target = "/";
  std::string host = "reviews";
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<HeaderField> fields;

  RequestHead head() {
    fields.clear();
    for (const auto& [k, v] : headers) {
      fields.push_back(HeaderField{k, v});
    }
    return RequestHead{method, target, host, fields};
  }
};

/** Routes req. A Decision views its request (a tag taken from a header), so the request
 * is kept until the next call, as the proxy keeps a request while its Decision is used. */
Decision route(const RouteTable& t, Req req, const Origin& o) {
  static Req held;
  held = std::move(req);
  return t.route(held.head(), o);
}

std::string subsetOf(const Decision& d) {
  std::string_view c = d.cluster;
  size_t sp = c.rfind(' ');
  return sp == std::string_view::npos ? "" : std::string(c.substr(sp + 1));
}

std::string podOf(const Decision& d) {
  return d.kind == Decision::Kind::kForward ? d.endpoints[d.first].pod : "";
}

TEST(RouterSeeds, JasonGoesToV3OthersToV2) {
  Loaded l = load("000-asm-bookinfo", "04-jason-v3");
  auto t = RouteTable::fromPlan(l.plan, l.config, {});
  Origin o = to(l.plan, "reviews");
  Decision jason = route(*t, Req{.headers = {{"end-user", "jason"}}}, o);
  ASSERT_EQ(jason.kind, Decision::Kind::kForward);
  EXPECT_EQ(subsetOf(jason), "v3");
  EXPECT_EQ(podOf(jason), "default/reviews-v3");
  EXPECT_EQ(jason.rule, "VirtualService default/reviews spec.http[0]");
  Decision header = route(*t, Req{.headers = {{"End-User", "jason"}}}, o);
  EXPECT_EQ(subsetOf(header), "v3") << "header names are case-insensitive";
  Decision bob = route(*t, Req{.headers = {{"end-user", "Jason"}}}, o);
  EXPECT_EQ(subsetOf(bob), "v2") << "values are case-sensitive";
  EXPECT_EQ(subsetOf(route(*t, Req{}, o)), "v2");
}

TEST(RouterSeeds, EightyTwentyIsExactOverAThousandRequests) {
  // 80/20 alone is decided in the kernel; the proxy takes the same split when the
  // agent hands it the service (here: marked l7 by hand).
  Loaded l = load("001-istio-canary", "03-80-20");
  for (auto& s : l.plan.services) {
    if (s.name == "reviews") {
      s.path = PlanPath::kL7;
    }
  }
  auto t = RouteTable::fromPlan(l.plan, l.config, {});
  Origin o = to(l.plan, "reviews");
  std::map<std::string, int> n;
  for (int i = 0; i < 1000; ++i) {
    Decision d = route(*t, Req{}, o);
    ASSERT_EQ(d.kind, Decision::Kind::kForward);
    ++n[subsetOf(d)];
    if (i >= 99 && (i + 1) % 100 == 0) {
      EXPECT_EQ(n["v1"], (i + 1) * 8 / 10) << "after " << i + 1 << " requests";
    }
  }
  EXPECT_EQ(n["v1"], 800);
  EXPECT_EQ(n["v2"], 200);
}

// ---- behaviours on a small inline config ------------------------------------------

std::string pod(const std::string& name, const std::string& ns, const std::string& ip,
                const std::string& labels) {
  return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name + "\n  namespace: " + ns +
         "\n  labels: {" + labels +
         "}\nspec:\n  containers:\n  - name: c\n    ports:\n    - containerPort: 8080\n"
         "status:\n  podIP: " +
         ip + "\n  conditions:\n  - type: Ready\n    status: \"True\"\n---\n";
}

/** shop (10.96.5.10:8080): v1 three pods, v2 one, v3 none; clients frontend and qa/tester. */
std::string shopInventory() {
  return "apiVersion: v1\nkind: Service\nmetadata:\n  name: shop\nspec:\n  clusterIP: 10.96.5.10\n"
         "  ports:\n  - name: http\n    port: 8080\n    targetPort: 8080\n  selector:\n"
         "    app: shop\n---\n" +
         pod("shop-v1-a", "default", "10.244.5.11", "app: shop, version: v1") +
         pod("shop-v1-b", "default", "10.244.5.12", "app: shop, version: v1") +
         pod("shop-v1-c", "default", "10.244.5.13", "app: shop, version: v1") +
         pod("shop-v2-a", "default", "10.244.5.21", "app: shop, version: v2") +
         pod("frontend", "default", "10.244.5.100", "app: frontend, version: v1") +
         pod("tester", "qa", "10.244.5.200", "app: tester");
}

std::string shopRule(const std::string& trafficPolicy = "") {
  return "apiVersion: networking.istio.io/v1beta1\nkind: DestinationRule\nmetadata:\n"
         "  name: shop\nspec:\n  host: shop\n" +
         trafficPolicy +
         "  subsets:\n  - name: v1\n    labels: {version: v1}\n  - name: v2\n"
         "    labels: {version: v2}\n  - name: v3\n    labels: {version: v3}\n---\n";
}

Loaded loadShop(const std::string& virtualService, const std::string& trafficPolicy = "") {
  LoadResult l = loadString(shopInventory() + shopRule(trafficPolicy) +
                                "apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\n"
                                "metadata:\n  name: shop\nspec:\n  hosts: [shop]\n" +
                                virtualService,
                            "shop.yaml");
  EXPECT_FALSE(hasErrors(l.diags)) << formatDiagnostics(l.diags);
  ResolveResult r = resolve(l.config);
  EXPECT_FALSE(hasErrors(r.diags)) << formatDiagnostics(r.diags);
  // Some of these rules alone are decided in the kernel (weights, source pods); the router
  // must decide them the same way when the agent hands it the service.
  for (auto& s : r.plan.services) {
    s.path = PlanPath::kL7;
  }
  return Loaded{std::move(l.config), std::move(r.plan)};
}

const Origin kShop{*IpAddr::parse("10.244.5.100"), *IpAddr::parse("10.96.5.10"), 8080};
const Origin kShopFromQa{*IpAddr::parse("10.244.5.200"), *IpAddr::parse("10.96.5.10"), 8080};

TEST(Router, NoMatchingRuleIs404NoRoute) {
  Loaded l = loadShop("  http:\n  - match:\n    - uri: {prefix: /api}\n"
                      "    route:\n    - destination: {host: shop, subset: v2}\n");
  auto t = RouteTable::fromPlan(l.plan, l.config, {});
  EXPECT_EQ(t->serviceCount(), 1u);
  Decision d = route(*t, Req{.target = "/web"}, kShop);
  EXPECT_EQ(d.kind, Decision::Kind::kRespond);
  EXPECT_EQ(d.status, 404);
  EXPECT_EQ(d.reason, "no route");
  EXPECT_EQ(subsetOf(route(*t, Req{.target = "/api/x"}, kShop)), "v2");
  Origin other = kShop;
  other.servicePort = 9999;
  EXPECT_EQ(route(*t, Req{.target = "/api/x"}, other).status, 404) << "unknown service address";
}

TEST(Router, APlanItCannotReadIsRefusedWhole) {
  Loaded l = loadShop("  http:\n  - match:\n    - uri: {prefix: /a}\n    timeout: 1s\n"
                      "    route:\n    - destination: {host: shop, subset: v1}\n");
  ASSERT_TRUE(RouteTable::compilePlan(l.plan, l.config, {}));
  auto bad = std::make_shared<Route>(*l.plan.services[0].routes[0].rule);
  bad->actions.mut().timeout = "1..5s"; // digits and dots, as the loader checks
  l.plan.services[0].routes[0].rule = bad;
  auto t = RouteTable::compilePlan(l.plan, l.config, {});
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().message,
            "route table: services[0].routes[0].timeout: '1..5s' is not a duration like 5s");
  auto empty = RouteTable::fromPlan(l.plan, l.config, {});
  EXPECT_EQ(empty->serviceCount(), 0u);
  EXPECT_EQ(route(*empty, Req{.target = "/a"}, kShop).status, 404);
}

TEST(Router, SourceLabelsAndNamespaceUseTheClientPod) {
  Loaded l = loadShop("  http:\n  - match:\n    - sourceLabels: {app: frontend}\n"
                      "    route:\n    - destination: {host: shop, subset: v2}\n"
                      "  - match:\n    - sourceNamespace: qa\n    route:\n"
                      "    - destination: {host: shop, subset: v1}\n");
  auto t = RouteTable::fromPlan(l.plan, l.config, {});
  EXPECT_EQ(podOf(route(*t, Req{}, kShop)), "default/shop-v2-a");
  EXPECT_EQ(subsetOf(route(*t, Req{}, kShopFromQa)), "v1");
  Origin stranger = kShop;
  stranger.client = *IpAddr::parse("10.244.9.9");
  EXPECT_EQ(route(*t, Req{}, stranger).status, 404)
      << "an unknown client matches no source condition";
}

TEST(Router, WeightZeroIsNeverChosenAndWindowsAreExact) {
  Loaded l =
      loadShop("  http:\n  - route:\n    - destination: {host: shop, subset: v1}\n"
               "      weight: 0\n    - destination: {host: shop, subset: v2}\n"
               "      weight: 30\n    - destination: {host: shop, subset: v3}\n"
               "      weight: 70\n      fallback:\n        target: {host: shop, subset: v1}\n");
  auto t = RouteTable::fromPlan(l.plan, l.config, {});
  // Every window of 100 consecutive decisions holds exactly 30 v2; v3 has no pod and
  // falls back to v1 (70); v1's own weight 0 is never drawn.
  std::vector<std::string> subsets;
  for (int i = 0; i < 300; ++i) {
    subsets.push_back(subsetOf(route(*t, Req{}, kShop)));
  }
  for (size_t start = 0; start + 100 <= subsets.size(); ++start) {
    int v2 =
        static_cast<int>(std::count(subsets.begin() + start, subsets.begin() + start + 100, "v2"));
    ASSERT_EQ(v2, 30) << "window at " << start;
  }
  EXPECT_EQ(std::count(subsets.begin(), subsets.end(), "v1"), 210) << "v3 falls back to v1";
  EXPECT_EQ(std::count(subsets.begin(), subsets.end(), "v3"), 0);
}

TEST(Router, FallbackEmptyToo503) {
  Loaded l = loadShop("  http:\n  - route:\n    - destination: {host: shop, subset: v3}\n");
  auto t = RouteTable::fromPlan(l.plan, l.config, {});
  Decision d = route(*t, Req{}, kShop);
  EXPECT_EQ(d.kind, Decision::Kind::kRespond);
  EXPECT_EQ(d.status, 503);
  EXPECT_EQ(d.reason, "no healthy upstream");
  EXPECT_EQ(d.cluster, "default/shop:8080 v3");
}

TEST(Router, FallbackCasesAreHonoured) {
  const std::string route2 = "  http:\n  - route:\n    - destination: {host: shop, subset: v3}\n"
                             "      weight: 50\n      fallback:\n        case: CASE\n"
                             "        target: {host: shop, subset: v1}\n"
                             "    - destination: {host: shop, subset: v2}\n      weight: 50\n"
                             "      fallback:\n        case: CASE\n"
                             "        target: {host: shop, subset: v1}\n";
  auto with = [&](const std::string& c) {
    std::string vs = route2;
    for (size_t at; (at = vs.find("CASE")) != std::string::npos;) {
      vs.replace(at, 4, c);
    }
    Loaded l = loadShop(vs);
    return RouteTable::fromPlan(l.plan, l.config, {});
  };
  // v3 (no pods) first, then v2 (one pod), alternating.
  auto onlyAvailable = with("noavailabled");
  Decision v3 = route(*onlyAvailable, Req{}, kShop);
  EXPECT_EQ(v3.status, 503) << "noinstances not listed: an empty subset does not fall back";
  Decision v2 = route(*onlyAvailable, Req{}, kShop);
  EXPECT_EQ(podOf(v2), "default/shop-v2-a");
  EXPECT_EQ(v2.fallbackEndpoints.size(), 3u);
  auto onlyInstances = with("noinstances");
  EXPECT_EQ(subsetOf(route(*onlyInstances, Req{}, kShop)), "v1");
  v2 = route(*onlyInstances, Req{}, kShop);
  EXPECT_EQ(podOf(v2), "default/shop-v2-a");
  EXPECT_TRUE(v2.fallbackEndpoints.empty()) << "noavailabled not listed";
}

TEST(Router, FaultAbortHonoursItsPercentageExactly) {
  Loaded l = loadShop("  http:\n  - fault:\n      abort:\n        httpStatus: 418\n"
                      "        percentage: {value: 25}\n    route:\n"
                      "    - destination: {host: shop, subset: v1}\n");
  auto t = RouteTable::fromPlan(l.plan, l.config, {});
  int aborted = 0;
  for (int i = 0; i < 400; ++i) {
    Decision d = route(*t, Req{}, kShop);
    if (d.kind == Decision::Kind::kRespond) {
      EXPECT_EQ(d.status, 418);
      EXPECT_EQ(d.reason, "fault abort");
      ++aborted;
    }
  }
  EXPECT_EQ(aborted, 100);
}

TEST(Router, RedirectAndDirectResponse) {
  Loaded l = loadShop("  http:\n  - match:\n    - uri: {exact: /old}\n"
                      "    redirect: {uri: /new, authority: shop.example}\n"
                      "  - match:\n    - uri: {prefix: /keep}\n    redirect: {authority: other, "
                      "redirectCode: 307}\n"
                      "  - match:\n    - uri: {exact: /gone}\n    directResponse: {status: 410}\n"
                      "  - match:\n    - uri: {exact: /tea}\n    directResponse: {status: 418, "
                      "body: {string: \"short and stout\"}}\n"
                      "  - route:\n    - destination: {host: shop}\n");
  auto planned = RouteTable::fromPlan(l.plan, l.config, {});
  auto reread = RouteTable::fromJson(planned->toJson());
  ASSERT_TRUE(reread) << reread.error().message;
  for (const RouteTable* t : {planned.get(), reread->get()}) {
    Decision d = route(*t, Req{.target = "/old"}, kShop);
    EXPECT_EQ(d.status, 301) << "redirectCode unset: 301";
    EXPECT_EQ(d.location, "http://shop.example/new");
    d = route(*t, Req{.target = "/keep/a?b=1"}, kShop);
    EXPECT_EQ(d.status, 307);
    EXPECT_EQ(d.location, "http://other/keep/a?b=1");
    EXPECT_FALSE(d.direct);
    d = route(*t, Req{.target = "/gone"}, kShop);
    EXPECT_EQ(d.kind, Decision::Kind::kRespond);
    EXPECT_EQ(d.status, 410);
    EXPECT_TRUE(d.direct);
    EXPECT_EQ(d.body, "") << "no body: an empty one";
    d = route(*t, Req{.target = "/tea"}, kShop);
    EXPECT_EQ(d.status, 418);
    EXPECT_TRUE(d.direct);
    EXPECT_EQ(d.body, "short and stout");
    d = route(*t, Req{.target = "/x"}, kShop);
    ASSERT_EQ(d.kind, Decision::Kind::kForward);
    EXPECT_EQ(d.endpoints.size(), 4u) << "no subset: every endpoint";
  }
}

// A route and a mirror to another Service (shop-canary) go to that Service's pods, and
// both survive the agent's JSON hop (the destination host is part of the table).
TEST(Router, MirrorAndAnotherServiceSurviveTheJsonHop) {
  Loaded l = loadShop(
      "  http:\n  - match:\n    - uri: {prefix: /canary}\n    route:\n"
      "    - destination: {host: shop-canary}\n"
      "  - route:\n    - destination: {host: shop, subset: v1}\n"
      "    mirror: {host: shop-canary}\n    mirrorPercentage: {value: 25}\n"
      "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: shop-canary\nspec:\n"
      "  clusterIP: 10.96.5.11\n  ports:\n  - name: http\n    port: 8080\n    targetPort: 8080\n"
      "  selector:\n    app: shop-canary\n---\n" +
      pod("shop-canary-a", "default", "10.244.5.31", "app: shop-canary"));
  auto planned = RouteTable::fromPlan(l.plan, l.config, {});
  auto reread = RouteTable::fromJson(planned->toJson());
  ASSERT_TRUE(reread) << reread.error().message;
  EXPECT_EQ((*reread)->toJson(), planned->toJson());
  for (const RouteTable* t : {planned.get(), reread->get()}) {
    Decision c = route(*t, Req{.target = "/canary/x"}, kShop);
    ASSERT_EQ(c.kind, Decision::Kind::kForward);
    ASSERT_EQ(c.endpoints.size(), 1u);
    EXPECT_EQ(c.endpoints[0].pod, "default/shop-canary-a");
    EXPECT_TRUE(c.mirrorEndpoints.empty()) << "that rule has no mirror";
    int mirrored = 0;
    for (int i = 0; i < 100; ++i) {
      Decision d = route(*t, Req{.target = "/x"}, kShop);
      ASSERT_EQ(d.kind, Decision::Kind::kForward);
      EXPECT_EQ(subsetOf(d), "v1");
      if (!d.mirrorEndpoints.empty()) {
        ++mirrored;
        ASSERT_EQ(d.mirrorEndpoints.size(), 1u);
        EXPECT_EQ(d.mirrorEndpoints[d.mirrorFirst].pod, "default/shop-canary-a");
        EXPECT_EQ(d.mirrorCluster, "default/shop-canary:8080");
      }
    }
    EXPECT_EQ(mirrored, 25) << "mirrorPercentage is exact over every 100 requests";
  }
}

TEST(Router, RetryOnIsReadAsIstioDoes) {
  Result<RetryOn> on = parseRetryOn(" 5xx, 503 ,retriable-4xx,,unavailable,429,503");
  ASSERT_TRUE(on) << on.error().message;
  EXPECT_EQ(on->conditions, retry_on::k5xx | retry_on::kRetriable4xx | retry_on::kStatusCodes)
      << "codes imply retriable-status-codes; gRPC names are accepted and do nothing";
  EXPECT_EQ(on->statuses, (std::vector<uint16_t>{429, 503}));
  EXPECT_FALSE(parseRetryOn("5xx,600"));
  EXPECT_FALSE(parseRetryOn("5xxx"));
  EXPECT_EQ(parseRetryOn("5xxx").error().message,
            "'5xxx' is not a valid retryOn policy (did you mean 5xx?)");
  EXPECT_EQ(parseRetryOn("")->conditions, 0u);
  // A table whose JSON says something else is refused, naming the field.
  Loaded l = loadShop("  http:\n  - retries: {attempts: 1, retryOn: reset}\n"
                      "    route:\n    - destination: {host: shop}\n");
  std::string json = RouteTable::fromPlan(l.plan, l.config, {})->toJson();
  size_t at = json.find("\"reset\"");
  ASSERT_NE(at, std::string::npos) << json;
  json.replace(at, 7, "\"resets\"");
  auto bad = RouteTable::fromJson(json);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find(".retryOn: 'resets' is not a valid retryOn policy"),
            std::string::npos)
      << bad.error().message;
}

std::string rewritten(const Decision& d, const std::string& target) {
  return d.rewritePath.empty() ? target : std::string(d.rewritePath) + target.substr(d.rewriteFrom);
}

TEST(Router, RewriteTimeoutRetriesAndHeaderEdits) {
  Loaded l = loadShop(
      "  http:\n  - match:\n    - uri: {prefix: /api/v1}\n    rewrite: {uri: /v2, authority: "
      "shop-v2}\n"
      "    timeout: 1.5s\n    retries: {attempts: 3, perTryTimeout: 2s, retryOn: "
      "\"5xx,connect-failure\"}\n"
      "    headers:\n      request:\n        set: {x-rule: r}\n        remove: [x-debug]\n"
      "    route:\n    - destination: {host: shop, subset: v2}\n      headers:\n"
      "        request:\n          add: {x-dest: d}\n        response:\n          set: "
      "{x-served-by: v2}\n"
      "  - match:\n    - uri: {exact: /login}\n    - uri: {regex: '/u/[0-9]+'}\n    rewrite: {uri: "
      "/auth}\n"
      "    route:\n    - destination: {host: shop, subset: v1}\n"
      "  - rewrite: {uri: /root/}\n    route:\n    - destination: {host: shop, subset: v1}\n");
  auto t = RouteTable::fromPlan(l.plan, l.config, {});
  Decision d = route(*t, Req{.target = "/api/v1/items?q=1"}, kShop);
  ASSERT_EQ(d.kind, Decision::Kind::kForward);
  EXPECT_EQ(rewritten(d, "/api/v1/items?q=1"), "/v2/items?q=1");
  EXPECT_EQ(d.rewriteAuthority, "shop-v2");
  EXPECT_EQ(d.timeoutMs, 1500u);
  EXPECT_EQ(d.retries, 3);
  EXPECT_EQ(d.perTryTimeoutMs, 2000u);
  EXPECT_EQ(d.retryOn, retry_on::k5xx | retry_on::kConnectFailure);
  EXPECT_TRUE(d.retryStatuses.empty()) << "a retryOn without codes has none (not Istio's 503)";
  ASSERT_EQ(d.requestEdits.size(), 3u);
  EXPECT_EQ(d.requestEdits[0].op, HeaderEdit::Op::kRemove); // rule: remove, then set
  EXPECT_EQ(d.requestEdits[0].name, "x-debug");
  EXPECT_EQ(d.requestEdits[1].op, HeaderEdit::Op::kSet);
  EXPECT_EQ(d.requestEdits[1].name, "x-rule");
  EXPECT_EQ(d.requestEdits[2].op, HeaderEdit::Op::kAdd); // then the destination's
  EXPECT_EQ(d.requestEdits[2].value, "d");
  ASSERT_EQ(d.responseEdits.size(), 1u);
  EXPECT_EQ(d.responseEdits[0].name, "x-served-by");
  EXPECT_EQ(rewritten(route(*t, Req{.target = "/login?next=/"}, kShop), "/login?next=/"),
            "/auth?next=/")
      << "exact: the whole path";
  EXPECT_EQ(rewritten(route(*t, Req{.target = "/u/42"}, kShop), "/u/42"), "/auth") << "regex";
  Decision any = route(*t, Req{.target = "/x/y"}, kShop);
  EXPECT_EQ(rewritten(any, "/x/y"), "/root/x/y") << "no uri condition: Envoy's prefix /";
  EXPECT_EQ(rewritten(route(*t, Req{.target = "http://shop:8080/x?y=1"}, kShop),
                      "http://shop:8080/x?y=1"),
            "/root/x?y=1")
      << "absolute-form: the upstream gets origin-form";
  Decision bare = route(*t, Req{.target = "http://shop:8080"}, kShop);
  EXPECT_EQ(bare.rewriteFrom, std::string("http://shop:8080").size()) << "no path: '/' implied";
  EXPECT_EQ(any.timeoutMs, 0u);
  EXPECT_EQ(any.retries, -1);
  // No retries block: Istio's default policy (connect-failure, and 503 by status code).
  EXPECT_EQ(any.retryOn, retry_on::kConnectFailure | retry_on::kStatusCodes);
  EXPECT_EQ(std::vector<uint16_t>(any.retryStatuses.begin(), any.retryStatuses.end()),
            std::vector<uint16_t>{503});
  EXPECT_TRUE(any.requestEdits.empty());
}

TEST(Router, ZeroTimeoutMeansNoneAndUnsetMeansTheProxyDefault) {
  // Istio: `timeout: 0s` (and perTryTimeout: 0s) disables the timeout; leaving it out
  // keeps the proxy's default. The Decision keeps the two apart, also after a round trip.
  Loaded l = loadShop("  http:\n  - match:\n    - uri: {prefix: /stream}\n    timeout: 0s\n"
                      "    retries: {attempts: 1, perTryTimeout: 0s}\n"
                      "    route:\n    - destination: {host: shop, subset: v1}\n"
                      "  - route:\n    - destination: {host: shop, subset: v1}\n");
  auto planned = RouteTable::fromPlan(l.plan, l.config, {});
  auto reread = RouteTable::fromJson(planned->toJson());
  ASSERT_TRUE(reread) << reread.error().message;
  for (const RouteTable* t : {planned.get(), reread->get()}) {
    Decision none = route(*t, Req{.target = "/stream/1"}, kShop);
    ASSERT_EQ(none.kind, Decision::Kind::kForward);
    EXPECT_EQ(none.timeoutMs, kNoTimeout);
    EXPECT_EQ(none.perTryTimeoutMs, kNoTimeout);
    Decision unset = route(*t, Req{.target = "/other"}, kShop);
    EXPECT_EQ(unset.timeoutMs, 0u);
    EXPECT_EQ(unset.perTryTimeoutMs, 0u);
  }
}

TEST(Router, ConsistentHashByCookieIsStablePerValue) {
  Loaded l = loadShop("  http:\n  - match:\n    - headers:\n        x-canary: {exact: \"1\"}\n"
                      "    route:\n    - destination: {host: shop, subset: v2}\n"
                      "  - route:\n    - destination: {host: shop, subset: v1}\n",
                      "  trafficPolicy:\n    loadBalancer:\n      consistentHash:\n"
                      "        httpCookie: {name: session, ttl: 0s}\n");
  auto t = RouteTable::fromPlan(l.plan, l.config, {});
  std::map<std::string, std::set<std::string>> podsBySession;
  for (int round = 0; round < 5; ++round) {
    for (int s = 0; s < 40; ++s) {
      std::string cookie = "a=1; session=user-" + std::to_string(s);
      podsBySession[cookie].insert(podOf(route(*t, Req{.headers = {{"cookie", cookie}}}, kShop)));
    }
  }
  std::set<std::string> used;
  for (const auto& [cookie, pods] : podsBySession) {
    EXPECT_EQ(pods.size(), 1u) << cookie << " moved between endpoints";
    used.insert(*pods.begin());
  }
  EXPECT_EQ(used.size(), 3u) << "40 sessions spread over the three v1 endpoints";
  // The same sessions land on the same endpoints in a freshly built table (and in the
  // proxy after a reload): the choice depends on the value and the endpoints only.
  auto again = RouteTable::fromPlan(l.plan, l.config, {});
  for (const auto& [cookie, pods] : podsBySession) {
    EXPECT_EQ(podOf(route(*again, Req{.headers = {{"cookie", cookie}}}, kShop)), *pods.begin());
  }
  // Without the cookie (ttl set): Envoy's generated cookie, a session cookie for ttl 0s;
  // the request is hashed by it, so sending it back keeps the endpoint.
  Decision first = route(*t, Req{}, kShop);
  std::string setCookie(first.setCookie);
  ASSERT_EQ(setCookie.rfind("session=", 0), 0u) << setCookie;
  EXPECT_EQ(setCookie.substr(setCookie.size() - 10), "; HttpOnly");
  EXPECT_EQ(setCookie.find("Max-Age"), std::string::npos) << "ttl 0s: a session cookie";
  std::string cookie = setCookie.substr(0, setCookie.find(';'));
  for (int i = 0; i < 10; ++i) {
    Decision d = route(*t, Req{.headers = {{"cookie", cookie}}}, kShop);
    EXPECT_EQ(podOf(d), podOf(first));
    EXPECT_EQ(d.setCookie, "") << "the client has the cookie";
  }
}

TEST(Router, GeneratedCookieCarriesTtlAndPathAndNoTtlMeansRoundRobin) {
  Loaded withTtl = loadShop("  http:\n  - route:\n    - destination: {host: shop, subset: v1}\n",
                            "  trafficPolicy:\n    loadBalancer:\n      consistentHash:\n"
                            "        httpCookie: {name: s, ttl: 60s, path: /}\n");
  auto t = RouteTable::fromPlan(withTtl.plan, withTtl.config, {});
  std::string c(route(*t, Req{}, kShop).setCookie);
  EXPECT_NE(c.find("; Max-Age=60; Path=/; HttpOnly"), std::string::npos) << c;
  Origin other = kShopFromQa;
  EXPECT_NE(std::string(route(*t, Req{}, other).setCookie), c) << "a cookie per client";

  Loaded noTtl = loadShop("  http:\n  - route:\n    - destination: {host: shop, subset: v1}\n",
                          "  trafficPolicy:\n    loadBalancer:\n      consistentHash:\n"
                          "        httpCookie: {name: s}\n");
  auto rr = RouteTable::fromPlan(noTtl.plan, noTtl.config, {});
  std::set<std::string> pods;
  for (int i = 0; i < 3; ++i) {
    Decision d = route(*rr, Req{}, kShop);
    EXPECT_EQ(d.setCookie, "");
    pods.insert(podOf(d));
  }
  EXPECT_EQ(pods.size(), 3u) << "no cookie and no ttl: round robin over the subset";
}

// Each client (source IP, or header value) stays on one pod of the version, and
// different clients spread over its three pods: a constant hash fails the second
// half, a per-request one the first. The header match still routes to v2.
void expectStickyAndSpread(const std::vector<std::pair<Req, Origin>>& clients,
                           const RouteTable& t) {
  std::set<std::string> pods;
  for (const auto& [req, origin] : clients) {
    const std::string first = podOf(route(t, req, origin));
    ASSERT_EQ(first.rfind("default/shop-v1-", 0), 0u) << first;
    for (int i = 0; i < 10; ++i) {
      EXPECT_EQ(podOf(route(t, req, origin)), first) << "a client moved between pods";
    }
    pods.insert(first);
  }
  EXPECT_GE(pods.size(), 2u) << "every client hashed to one pod";
}

const std::string kCanaryByHeader =
    "  http:\n  - match:\n    - headers:\n        x-canary: {exact: \"1\"}\n"
    "    route:\n    - destination: {host: shop, subset: v2}\n"
    "  - route:\n    - destination: {host: shop, subset: v1}\n";

TEST(Router, ConsistentHashBySourceIpKeepsEachClientAndSpreadsClients) {
  Loaded l = loadShop(kCanaryByHeader, "  trafficPolicy:\n    loadBalancer:\n"
                                       "      consistentHash:\n        useSourceIp: true\n");
  auto t = RouteTable::fromPlan(l.plan, l.config, {});
  std::vector<std::pair<Req, Origin>> clients;
  for (int i = 1; i <= 32; ++i) {
    Origin o = kShop;
    o.client = *IpAddr::parse("10.244.9." + std::to_string(i));
    clients.emplace_back(Req{.host = "shop"}, o);
  }
  expectStickyAndSpread(clients, *t);
  EXPECT_EQ(podOf(route(*t, Req{.host = "shop", .headers = {{"x-canary", "1"}}}, kShop)),
            "default/shop-v2-a");
}

TEST(Router, ConsistentHashByHeaderKeepsEachValueAndSpreadsValues) {
  Loaded l = loadShop(kCanaryByHeader, "  trafficPolicy:\n    loadBalancer:\n"
                                       "      consistentHash:\n        httpHeaderName: x-user\n");
  auto t = RouteTable::fromPlan(l.plan, l.config, {});
  std::vector<std::pair<Req, Origin>> clients;
  for (int i = 1; i <= 32; ++i) { // one client address, 32 users
    clients.emplace_back(Req{.host = "shop", .headers = {{"x-user", "u" + std::to_string(i)}}},
                         kShop);
  }
  expectStickyAndSpread(clients, *t);
  EXPECT_EQ(podOf(route(*t, Req{.host = "shop", .headers = {{"x-canary", "1"}, {"x-user", "u1"}}},
                        kShop)),
            "default/shop-v2-a");
}

// ---- seeds 002 and 003 --------------------------------------------------------------

bool setsCookie(const Decision& d, const std::string& maxAge) {
  return std::any_of(d.responseEdits.begin(), d.responseEdits.end(), [&](const HeaderEdit& e) {
    return e.op == HeaderEdit::Op::kAdd && e.name == "set-cookie" &&
           e.value == "reviews-cookie=REVIRES-V2; Max-Age=" + maxAge;
  });
}

TEST(Router, ConcurrentRequestsKeepTheSplitExact) {
  // The counters are shared atomics: however threads interleave, every 100 decisions of a
  // rule hold its weights exactly, so the totals are exact too.
  Loaded l = loadShop("  http:\n  - route:\n    - destination: {host: shop, subset: v1}\n"
                      "      weight: 70\n    - destination: {host: shop, subset: v2}\n"
                      "      weight: 30\n");
  auto t = RouteTable::fromPlan(l.plan, l.config, {});
  constexpr int kThreads = 4;
  constexpr int kEach = 2500;
  std::vector<int> v2(kThreads, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      RequestHead head{"GET", "/", "shop", {}};
      for (int n = 0; n < kEach; ++n) {
        Decision d = t->route(head, kShop);
        v2[i] += d.cluster == "default/shop:8080 v2";
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(std::accumulate(v2.begin(), v2.end(), 0), kThreads * kEach * 30 / 100);
}

TEST(RouterSeeds, StickyCookieGoesToV2AndOnlyV2SetsTheCookie) {
  Loaded l = load("002-sticky-canary", "01-cookie-90-10");
  auto t = RouteTable::fromPlan(l.plan, l.config, {});
  Origin o = to(l.plan, "reviews");
  for (int i = 0; i < 200; ++i) {
    Decision d = route(*t, Req{.headers = {{"Cookie", "x=1; reviews-cookie=REVIRES-V2"}}}, o);
    ASSERT_EQ(subsetOf(d), "v2") << "request " << i << ": weight 0 of v1 is never drawn";
    EXPECT_EQ(d.rule, "VirtualService default/reviews spec.http[0]");
    EXPECT_FALSE(setsCookie(d, "21600")) << "the cookie rule's destinations set no cookie";
  }
  std::map<std::string, int> n;
  for (int i = 0; i < 100; ++i) {
    Decision d = route(*t, Req{.headers = {{"Cookie", "reviews-cookie=V1"}}}, o);
    ++n[subsetOf(d)];
    EXPECT_EQ(setsCookie(d, "21600"), subsetOf(d) == "v2") << "Set-Cookie only on v2 decisions";
  }
  EXPECT_EQ(n["v1"], 90);
  EXPECT_EQ(n["v2"], 10);

  Loaded last = load("002-sticky-canary", "07-all-v2-clear-cookie");
  auto t7 = RouteTable::fromPlan(last.plan, last.config, {});
  Decision sticky = route(*t7, Req{.headers = {{"Cookie", "reviews-cookie=REVIRES-V2"}}}, o);
  EXPECT_EQ(subsetOf(sticky), "v2");
  EXPECT_TRUE(setsCookie(sticky, "-1")) << "the last step clears the cookie";
  Decision plain = route(*t7, Req{}, o);
  EXPECT_EQ(subsetOf(plain), "v2");
  EXPECT_FALSE(setsCookie(plain, "-1"));
}

// A gray client pod for the steps before productpage-v2 exists.
const char* kGrayClient =
    "apiVersion: v1\nkind: Pod\nmetadata:\n  name: gray-client\n  labels:\n"
    "    app: client\n    ASM_TRAFFIC_TAG: gray\nstatus:\n  podIP: 10.244.3.99\n"
    "  conditions:\n  - type: Ready\n    status: \"True\"\n";

TEST(RouterSeeds, FullLinkGrayFallsBackToProdThenFollowsGrayInstances) {
  const std::string gray = "10.244.3.99";
  // Step 1: reviews has no gray instance: gray falls back to prod, the tag travels on.
  Loaded s1 = load("003-asm-full-link-gray", "01-trafficlabel-reviews", {kGrayClient});
  auto t1 = RouteTable::fromPlan(s1.plan, s1.config, {});
  Decision d = route(*t1, Req{}, to(s1.plan, "reviews", gray));
  ASSERT_EQ(d.kind, Decision::Kind::kForward);
  EXPECT_EQ(podOf(d), "default/reviews-v1");
  EXPECT_EQ(subsetOf(d), "prod");
  EXPECT_EQ(d.tagHeader, "x-asm-prefer-tag");
  EXPECT_TRUE(d.fallbackEndpoints.empty()) << "already on the fallback";
  EXPECT_EQ(d.tagValue, "gray") << "the lane stays gray for the next hop";

  // Step 2: reviews-v2 is up: the same gray client now reaches it.
  Loaded s2 = load("003-asm-full-link-gray", "02-reviews-v2-up", {kGrayClient});
  auto t2 = RouteTable::fromPlan(s2.plan, s2.config, {});
  d = route(*t2, Req{}, to(s2.plan, "reviews", gray));
  EXPECT_EQ(podOf(d), "default/reviews-v2");
  EXPECT_EQ(d.tagValue, "gray");
  // noavailabled: should reviews-v2 refuse connections, the engine tries prod.
  ASSERT_EQ(d.fallbackEndpoints.size(), 1u);
  EXPECT_EQ(d.fallbackEndpoints[0].pod, "default/reviews-v1");
  EXPECT_EQ(d.fallbackCluster, "default/reviews:9080 prod");
  // An untagged client has no lane: the fallback (prod), no tag.
  d = route(*t2, Req{}, to(s2.plan, "reviews"));
  EXPECT_EQ(podOf(d), "default/reviews-v1");
  EXPECT_EQ(d.tagValue, "");
  // The lane header from an earlier hop (or the client) puts any client in the lane.
  d = route(*t2, Req{.headers = {{"x-asm-prefer-tag", "gray"}}}, to(s2.plan, "reviews"));
  EXPECT_EQ(podOf(d), "default/reviews-v2");
  EXPECT_EQ(d.tagValue, "gray");
  // $getContext(x-request-id): a request id is not a lane; the prod pod stays prod.
  d = route(*t2, Req{.headers = {{"x-request-id", "2f1e0c3a-77aa-4d0e-9d5e-1f2a3b4c5d6e"}}},
            to(s2.plan, "reviews", "10.244.3.41"));
  EXPECT_EQ(podOf(d), "default/reviews-v1");
  EXPECT_EQ(d.tagValue, "prod");

  // Step 3: productpage-v2 (gray) -> reviews (gray) -> ratings (gray, now with an instance).
  Loaded s3 = load("003-asm-full-link-gray", "03-ratings-lane");
  auto t3 = RouteTable::fromPlan(s3.plan, s3.config, {});
  EXPECT_EQ(t3->serviceCount(), 2u);
  const std::string productpageV2 = "10.244.3.42";
  d = route(*t3, Req{}, to(s3.plan, "reviews", productpageV2));
  EXPECT_EQ(podOf(d), "default/reviews-v2");
  ASSERT_EQ(d.tagValue, "gray");
  // reviews-v2 calls ratings with the tag the proxy set upstream.
  d = route(*t3, Req{.headers = {{std::string(d.tagHeader), std::string(d.tagValue)}}},
            to(s3.plan, "ratings", "10.244.3.22"));
  EXPECT_EQ(podOf(d), "default/ratings-v2");
  // productpage-v1 (prod) stays prod end to end.
  d = route(*t3, Req{}, to(s3.plan, "ratings", "10.244.3.41"));
  EXPECT_EQ(podOf(d), "default/ratings-v1");
  EXPECT_EQ(d.tagValue, "prod");
}

// ---- JSON ---------------------------------------------------------------------------

std::vector<Req> probeRequests() {
  std::vector<Req> out;
  for (const char* target : {"/", "/api/v1/x?q=1", "/login"}) {
    for (auto headers : std::vector<std::vector<std::pair<std::string, std::string>>>{
             {},
             {{"end-user", "jason"}},
             {{"cookie", "reviews-cookie=REVIRES-V2; session=s1"}},
             {{"x-asm-prefer-tag", "gray"}},
             {{"x-canary", "1"}}}) {
      out.push_back(Req{.target = target, .headers = headers});
    }
  }
  return out;
}

std::string describeDecision(const Decision& d) {
  std::string s = std::to_string(static_cast<int>(d.kind)) + " " + std::to_string(d.status) + " " +
                  std::string(d.reason) + " " + std::string(d.cluster) + " " + std::string(d.rule) +
                  " first=" + std::to_string(d.first) + " tag=" + std::string(d.tagValue) +
                  " rw=" + std::string(d.rewritePath) + "@" + std::to_string(d.rewriteFrom) +
                  " t=" + std::to_string(d.timeoutMs) + " r=" + std::to_string(d.retries) + "/" +
                  std::to_string(d.perTryTimeoutMs) + "/" + std::to_string(d.retryOn) + "/" +
                  std::to_string(d.retryStatuses.size()) + " direct=" + std::to_string(d.direct) +
                  ":" + std::string(d.body) + " loc=" + std::string(d.location) +
                  " cookie=" + std::string(d.setCookie) + " delay=" + std::to_string(d.delayMs) +
                  " fb=" + std::string(d.fallbackCluster) + "@" + std::to_string(d.fallbackFirst);
  for (const auto& e : d.endpoints) {
    s += " " + e.addr.str() + ":" + std::to_string(e.port) + "/" + e.pod;
  }
  for (const auto* edits : {&d.requestEdits, &d.responseEdits}) {
    s += " |";
    for (const auto& e : *edits) {
      s += " " + std::to_string(static_cast<int>(e.op)) + e.name + "=" + e.value;
    }
  }
  return s;
}

std::vector<Loaded> everyL7Seed() {
  std::vector<Loaded> out;
  out.push_back(load("000-asm-bookinfo", "04-jason-v3"));
  out.push_back(load("001-istio-canary", "02-test-user-v2"));
  out.push_back(load("002-sticky-canary", "01-cookie-90-10"));
  out.push_back(load("002-sticky-canary", "07-all-v2-clear-cookie"));
  out.push_back(load("003-asm-full-link-gray", "03-ratings-lane"));
  out.push_back(loadShop(
      "  http:\n  - match:\n    - uri: {prefix: /api/v1}\n      ignoreUriCase: true\n"
      "      queryParams: {q: {exact: \"1\"}}\n    rewrite: {uri: /v2}\n    timeout: 2s\n"
      "    retries: {attempts: 2, perTryTimeout: 500ms, retryOn: reset}\n    route:\n    - "
      "destination: {host: shop, subset: v2}\n"
      "      headers: {response: {add: {x-v: \"2\"}}}\n  - match:\n    - uri: {exact: /login}\n"
      "    redirect: {uri: /auth}\n  - match:\n    - withoutHeaders: {x-canary: {}}\n"
      "      sourceLabels: {app: frontend}\n    route:\n    - destination: {host: shop, subset: "
      "v1}\n"
      "      weight: 60\n    - destination: {host: shop, subset: v3}\n      weight: 40\n"
      "      fallback: {target: {host: shop, subset: v2}}\n",
      "  trafficPolicy:\n    loadBalancer:\n      consistentHash:\n        httpCookie: {name: "
      "session, ttl: 30s, path: /shop}\n"));
  return out;
}

TEST(RouterJson, RoundTripRoutesIdentically) {
  for (const Loaded& l : everyL7Seed()) {
    auto a = RouteTable::fromPlan(l.plan, l.config, {});
    std::string json = a->toJson();
    auto b = RouteTable::fromJson(json);
    ASSERT_TRUE(b) << b.error().message << "\n" << json;
    EXPECT_EQ((*b)->toJson(), json);
    EXPECT_EQ((*b)->serviceCount(), a->serviceCount());
    std::vector<std::string> clients = {"10.244.5.100", "10.244.3.42", "10.244.3.41", "10.9.9.9"};
    for (const auto& s : l.plan.services) {
      if (s.path != PlanPath::kL7) {
        continue;
      }
      for (int round = 0; round < 3; ++round) {
        for (const auto& client : clients) {
          for (Req r : probeRequests()) {
            Origin o{*IpAddr::parse(client), s.addr, s.port};
            EXPECT_EQ(describeDecision(route(**b, r, o)), describeDecision(route(*a, r, o)))
                << s.id() << " " << r.target;
          }
        }
      }
    }
  }
}

struct BadJson {
  const char* description;
  std::function<void(nlohmann::json&)> mutate;
  const char* error; // expected in the message
};

void PrintTo(const BadJson& c, std::ostream* os) {
  *os << c.description;
}

class RouterJsonErrors : public ::testing::TestWithParam<BadJson> {};

TEST_P(RouterJsonErrors, NamesThePath) {
  Loaded l = everyL7Seed().back();
  nlohmann::json j = nlohmann::json::parse(RouteTable::fromPlan(l.plan, l.config, {})->toJson());
  GetParam().mutate(j);
  auto t = RouteTable::fromJson(j.dump());
  ASSERT_FALSE(t) << GetParam().description;
  EXPECT_NE(t.error().message.find(GetParam().error), std::string::npos) << t.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Schema, RouterJsonErrors,
    ::testing::Values(
        BadJson{"wrong version", [](auto& j) { j["version"] = 2; },
                "version: 2 is not supported: this veer-proxy reads route table schema 1"},
        BadJson{"missing version", [](auto& j) { j.erase("version"); }, "version: missing"},
        BadJson{"not an object", [](auto& j) { j = nlohmann::json::array(); },
                "$: expected an object"},
        BadJson{"unknown field", [](auto& j) { j["service"] = 1; }, "$: unknown field 'service'"},
        BadJson{"bad address", [](auto& j) { j["services"][0]["addr"] = "10.96.5"; },
                "services[0].addr: '10.96.5' is not an IP address"},
        BadJson{"port out of range", [](auto& j) { j["services"][0]["port"] = 70000; },
                "services[0].port: 70000 out of range 1..65535"},
        BadJson{"port of the wrong type", [](auto& j) { j["services"][0]["port"] = "8080"; },
                "services[0].port: expected an integer"},
        BadJson{"bad regex",
                [](auto& j) {
                  j["services"][0]["routes"][0]["match"][0]["uri"] = {{"regex", "("}};
                },
                "services[0].routes[0].match[0]: spec.http[0].match[0].uri: bad regex '('"},
        BadJson{
            "two operators",
            [](auto& j) {
              j["services"][0]["routes"][0]["match"][0]["uri"] = {{"exact", "/"}, {"prefix", "/"}};
            },
            "services[0].routes[0].match[0].uri: expected exactly one of exact, prefix, regex"},
        BadJson{"weights not 100",
                [](auto& j) { j["services"][0]["routes"][2]["route"][0]["weight"] = 10; },
                "services[0].routes[2].route: weights sum to 50, expected 100"},
        BadJson{"subset without endpoints listed",
                [](auto& j) { j["services"][0]["routes"][0]["route"][0]["subset"] = "v9"; },
                "services[0].routes[0].route[0].subset: no cluster for subset 'v9' port 8080"},
        BadJson{"header pair malformed",
                [](auto& j) {
                  j["services"][0]["routes"][0]["route"][0]["headers"]["response"]["add"][0] = "x";
                },
                "services[0].routes[0].route[0].headers.response.add[0]: expected a [name, value] "
                "pair"},
        BadJson{"bad timeout", [](auto& j) { j["services"][0]["routes"][0]["timeout"] = "soon"; },
                "services[0].routes[0].timeout: 'soon' is not a duration"},
        BadJson{"bad hash kind",
                [](auto& j) { j["services"][0]["clusters"][0]["loadBalancer"]["hash"] = "ring"; },
                "services[0].clusters[0].loadBalancer.hash: 'ring' is not"},
        BadJson{"endpoint without port",
                [](auto& j) { j["services"][0]["clusters"][0]["endpoints"][0].erase("port"); },
                "services[0].clusters[0].endpoints[0].port: missing"},
        BadJson{"lane without sources",
                [](auto& j) { j["services"][0]["routes"][0]["route"][0]["subset"] = "$lane"; },
                "services[0].routes[0].route[0].subset: traffic label $lane has no sources"},
        BadJson{"duplicate service", [](auto& j) { j["services"].push_back(j["services"][0]); },
                "services[1]: service address 10.96.5.10:8080 listed twice"},
        // One row per read() overload of the reader's one getter, each at its full path.
        BadJson{"flag of the wrong type",
                [](auto& j) { j["services"][0]["routes"][0]["match"][0]["ignoreUriCase"] = "yes"; },
                "services[0].routes[0].match[0].ignoreUriCase: expected true or false"},
        BadJson{"percentage over 100",
                [](auto& j) {
                  j["services"][0]["routes"][0]["abort"] = {{"status", 503}, {"percent", 101}};
                },
                "services[0].routes[0].abort.percent: expected a percentage 0..100"},
        BadJson{"abort without status",
                [](auto& j) {
                  j["services"][0]["routes"][0]["abort"] = {{"percent", 50}};
                },
                "services[0].routes[0].abort.status: missing"},
        BadJson{"label value not a string", [](auto& j) { j["pods"][0]["labels"]["app"] = 1; },
                "pods[0].labels.app: expected a string"},
        BadJson{"list element not a string",
                [](auto& j) { j["services"][0]["routes"][0]["match"][0]["gateways"] = {1}; },
                "services[0].routes[0].match[0].gateways[0]: expected a string"},
        BadJson{"routes not a list", [](auto& j) { j["services"][0]["routes"] = "all"; },
                "services[0].routes: expected an array"},
        BadJson{"weight out of range",
                [](auto& j) { j["services"][0]["routes"][2]["route"][0]["weight"] = 101; },
                "services[0].routes[2].route[0].weight: 101 out of range 0..100"}));

TEST(RouterJson, RejectsGarbageWithoutCrashing) {
  EXPECT_FALSE(RouteTable::fromJson(""));
  EXPECT_FALSE(RouteTable::fromJson("{"));
  EXPECT_FALSE(RouteTable::fromJson("null"));
  EXPECT_FALSE(RouteTable::fromJson(std::string("{\"version\":1\0}", 14)));
  // Every prefix of a valid document, and a byte flipped at every position: an error or a
  // table, never a crash (the fuzzer does this at scale).
  Loaded l = everyL7Seed().back();
  std::string json = RouteTable::fromPlan(l.plan, l.config, {})->toJson();
  size_t accepted = 0;
  for (size_t n = 0; n < json.size(); n += 7) {
    accepted += RouteTable::fromJson(json.substr(0, n)).ok();
    std::string flipped = json;
    flipped[n] = static_cast<char>(flipped[n] ^ 0x21);
    auto t = RouteTable::fromJson(flipped);
    if (t) {
      ++accepted;
      Req r;
      (void)route(**t, r, kShop);
    }
  }
  EXPECT_EQ(accepted > 0, true) << "some flips only change a string value";
}

TEST(Router, RouteAllocatesNothing) {
  // Every kind of decision, after one warm-up pass (per-thread buffers, RE2's lazy DFA).
  Loaded l002 = load("002-sticky-canary", "01-cookie-90-10");
  Origin o002 = to(l002.plan, "reviews");
  Loaded l003 = load("003-asm-full-link-gray", "03-ratings-lane");
  Origin o003 = to(l003.plan, "reviews", "10.244.3.42");
  std::vector<std::pair<std::shared_ptr<RouteTable>, Origin>> tables = {
      {RouteTable::fromPlan(l002.plan, l002.config, {}), o002},
      {RouteTable::fromPlan(l003.plan, l003.config, {}), o003}};
  for (const Loaded& l : everyL7Seed()) {
    if (l.plan.services.size() == 1) { // the shop
      tables.emplace_back(RouteTable::fromPlan(l.plan, l.config, {}), kShop);
    }
  }
  std::vector<Req> reqs = probeRequests();
  reqs.push_back(Req{.headers = {{"cookie", "a=1"}, {"cookie", "reviews-cookie=REVIRES-V2"}}});
  std::vector<RequestHead> heads;
  for (Req& r : reqs) {
    heads.push_back(r.head());
  }
  size_t forwarded = 0;
  for (int pass = 0; pass < 2; ++pass) {
    gAllocs = 0;
    gCountAllocs = pass == 1;
    for (int i = 0; i < 50; ++i) {
      for (const auto& [t, o] : tables) {
        for (const RequestHead& h : heads) {
          forwarded += t->route(h, o).kind == Decision::Kind::kForward;
        }
      }
    }
    gCountAllocs = false;
  }
  EXPECT_EQ(gAllocs, 0u);
  EXPECT_GT(forwarded, 0u);
}

// ---- trace and explain: the router's reading, spelled out ----------------------------

// trace() must say what route() does, for every seed step, L7 service and a spread of
// requests (rule hit or not, lanes from headers and pods, fallbacks, undefined lanes).
TEST(RouterTrace, AgreesWithRouteOnEverySeed) {
  const std::vector<std::pair<std::string, std::string>> steps = {
      {"000-asm-bookinfo", "04-jason-v3"},
      {"001-istio-canary", "02-test-user-v2"},
      {"002-sticky-canary", "01-cookie-90-10"},
      {"002-sticky-canary", "04-v2-60"},
      {"003-asm-full-link-gray", "01-trafficlabel-reviews"},
      {"003-asm-full-link-gray", "02-reviews-v2-up"},
      {"003-asm-full-link-gray", "03-ratings-lane"}};
  const std::vector<std::vector<std::pair<std::string, std::string>>> headerSets = {
      {},
      {{"end-user", "jason"}},
      {{"x-canary", "true"}},
      {{"cookie", "canary=v2"}},
      {{"x-request-id", "gray"}},
      {{"x-asm-prefer-tag", "gray"}},
      {{"x-asm-prefer-tag", "nosuch"}}};
  size_t checked = 0;
  for (const auto& [seed, step] : steps) {
    Loaded l = load(seed, step);
    auto t = RouteTable::fromPlan(l.plan, l.config, {});
    std::vector<std::string> clients = {"10.244.9.9"}; // unknown, then every pod
    for (const auto& p : l.config.pods) {
      for (const IpAddr& ip : p.ips) {
        clients.push_back(ip.str());
      }
    }
    for (const PlanService& ps : l.plan.services) {
      if (ps.path != PlanPath::kL7) {
        continue;
      }
      for (const auto& headers : headerSets) {
        for (const auto& client : clients) {
          SCOPED_TRACE(seed + "/" + step + " " + ps.id() + " from " + client);
          Origin o{*IpAddr::parse(client), ps.addr, ps.port};
          Req req{.host = ps.name, .headers = headers};
          Trace tr = t->trace(req.head(), o);
          ASSERT_TRUE(tr.service);
          // route() draws among the destinations by weight: 100 draws see each one.
          std::set<std::string> drawn;
          for (int i = 0; i < 100; ++i) {
            Decision d = route(*t, req, o);
            if (tr.rule < 0) {
              EXPECT_EQ(d.reason, "no route");
              continue;
            }
            EXPECT_EQ(d.rule, ps.routes[tr.rule].source + " " + ps.routes[tr.rule].rule->field);
            drawn.insert(std::string(d.cluster) + " " + std::to_string(d.endpoints.size()) + " " +
                         std::string(d.fallbackCluster));
          }
          std::set<std::string> traced;
          for (const Trace::Destination& td : tr.destinations) {
            if (td.weight != 0) {
              traced.insert(std::string(td.cluster.empty() ? ps.id() : td.cluster) + " " +
                            std::to_string(td.endpoints.size()) + " " + std::string(td.standby));
            }
          }
          if (tr.rule >= 0) {
            EXPECT_EQ(drawn, traced);
          }
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 100u);
}

std::string explainText(const Loaded& l, ExplainRequest req) {
  Explanation ex = explain(l.plan, l.config, req);
  EXPECT_TRUE(ex.ok) << ex.text;
  return ex.text;
}

TEST(Explain, LanesAndFallbacksAsTheProxyRoutesThem) {
  Loaded l = load("003-asm-full-link-gray", "03-ratings-lane");
  EXPECT_EQ(explainText(l, {.host = "reviews", .headers = {{"x-request-id", "gray"}}}),
            "service default/reviews:9080 10.96.3.20:9080/tcp path=l7\n"
            "  spec.http[0]: matches (no conditions)\n"
            "  rule: spec.http[0] [VirtualService default/reviews]: always -> "
            "$trafficLabel=100 (fallback prod)\n"
            "-> gray 100% ($trafficLabel = 'gray' from header x-request-id): default/reviews-v2"
            " (noavailabled: then default/reviews:9080 prod)\n"
            "note: path=l7; until the L7 proxy runs, the kernel applies VirtualService "
            "default/reviews spec.http[0] to every connection\n");
  std::string ratings =
      explainText(l, {.host = "ratings", .headers = {{"x-asm-prefer-tag", "nosuch"}}});
  EXPECT_NE(ratings.find("-> prod 100% ($trafficLabel = 'nosuch' from header x-asm-prefer-tag) "
                         "-> fallback prod (noinstances: subset undefined): default/ratings-v1\n"),
            std::string::npos)
      << ratings;
  std::string fromPod = explainText(l, {.host = "reviews", .fromPod = "productpage-v1"});
  EXPECT_NE(fromPod.find("-> prod 100% ($trafficLabel = 'prod' from pod label ASM_TRAFFIC_TAG): "
                         "default/reviews-v1\n"),
            std::string::npos)
      << fromPod;

  // A gray lane whose subset has no pods yet (step 1): the fallback serves.
  Loaded before = load("003-asm-full-link-gray", "01-trafficlabel-reviews");
  std::string empty =
      explainText(before, {.host = "reviews", .headers = {{"x-request-id", "gray"}}});
  EXPECT_NE(empty.find("-> prod 100% ($trafficLabel = 'gray' from header x-request-id) -> "
                       "fallback prod (no ready pods): default/reviews-v1\n"),
            std::string::npos)
      << empty;
}

TEST(Explain, RulesPassedOverSayWhy) {
  Loaded l = load("000-asm-bookinfo", "04-jason-v3");
  std::string other = explainText(l, {.host = "reviews", .headers = {{"End-User", "bob"}}});
  EXPECT_NE(other.find("  spec.http[0]: no (spec.http[0].match[0]: header end-user 'bob' is "
                       "not exact 'jason')\n"),
            std::string::npos)
      << other;
  EXPECT_NE(other.find("-> v2 100%: default/reviews-v2\n"), std::string::npos) << other;
  std::string jason = explainText(l, {.host = "reviews", .headers = {{"end-user", "jason"}}});
  EXPECT_NE(jason.find("  spec.http[0]: matches spec.http[0].match[0] (headers[end-user] exact "
                       "'jason')\n"),
            std::string::npos)
      << jason;
  Explanation none = explain(l.plan, l.config, {.host = "nosuch"});
  EXPECT_FALSE(none.ok);
  EXPECT_EQ(none.text, "no service for host nosuch in the plan\n");
  Explanation nopod = explain(l.plan, l.config, {.host = "reviews", .fromPod = "ghost"});
  EXPECT_FALSE(nopod.ok);
  EXPECT_EQ(nopod.text, "no pod default/ghost in the config\n");
}

} // namespace
} // namespace veer::proxy
