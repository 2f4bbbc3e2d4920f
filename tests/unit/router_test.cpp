// The L7 router (proxy/router.h): seeds loaded through the real pipeline (load, resolve,
// RouteTable::fromPlan) and routed request by request; the JSON form round-tripped and
// attacked.

#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "config/loader.h"
#include "proxy/router.h"

namespace veer::proxy {
namespace {

namespace fs = std::filesystem;

fs::path repo() {
  return fs::absolute(fs::path(__FILE__)).parent_path().parent_path().parent_path();
}

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
    c.pods.insert(c.pods.end(), x.config.pods.begin(), x.config.pods.end());
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

Decision route(const RouteTable& t, Req req, const Origin& o) { return t.route(req.head(), o); }

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

} // namespace
} // namespace veer::proxy
