// resolve() tests: hosts, endpoints, subsets, weights, validation, determinism,
// and the seed scenarios in configs/.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "config/loader.h"
#include "config/resolve.h"
#include "unit/repo.h"

namespace veer {
namespace {

namespace fs = std::filesystem;

/** One line per plan service: "ns/name addr:port/proto: subset=w[backends] ...". */
std::string formatDiagnostics(const PlanService& s) {
  std::string out = s.ns + "/" + s.name + " " + s.addr.str() + ":" + std::to_string(s.port) + "/" +
                    std::to_string(s.proto) + ":";
  for (const auto& v : s.versions) {
    out += " " + (v.subset.empty() ? std::string("*") : v.subset.str()) + "=" +
           std::to_string(v.weight) + "[";
    for (size_t i = 0; i < v.backends.size(); ++i) {
      out += (i ? " " : "") + v.backends[i].addr.str() + ":" + std::to_string(v.backends[i].port);
    }
    out += "]";
  }
  return out;
}

std::string formatDiagnostics(const Plan& p) {
  std::string out;
  for (const auto& s : p.services) {
    out += formatDiagnostics(s) + "\n";
  }
  return out;
}

using test::repo;

using test::repoFile;

/** Loads all texts as separate "files" into one Config, like loadPaths would. */
LoadResult loadAll(const std::vector<std::pair<std::string, std::string>>& files) {
  LoadResult all;
  for (const auto& [name, text] : files) {
    auto r = loadString(text, name);
    auto& c = all.config;
    auto append = [](auto& to, auto& from) { to.append(from.begin(), from.end()); };
    append(c.services, r.config.services);
    append(c.pods, r.config.pods);
    append(c.endpointSlices, r.config.endpointSlices);
    append(c.destinationRules, r.config.destinationRules);
    append(c.virtualServices, r.config.virtualServices);
    all.diags.insert(all.diags.end(), r.diags.begin(), r.diags.end());
  }
  return all;
}

const PlanService* find(const Plan& p, const std::string& name, const std::string& addr,
                        uint16_t port = 9080) {
  for (const auto& s : p.services) {
    if (s.name == name && s.addr == *IpAddr::parse(addr) && s.port == port) {
      return &s;
    }
  }
  return nullptr;
}

/** reviews (dual-stack, port http 9080 -> named port), three versions; ratings v4 only. */
const std::string kInventory = R"(apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  clusterIPs: [10.96.0.20, "fd00:96::20"]
  ports: [{name: http, port: 9080, targetPort: http}]
  selector: {app: reviews}
---
apiVersion: v1
kind: Service
metadata: {name: ratings}
spec:
  clusterIP: 10.96.0.30
  ports: [{name: http, port: 9080, targetPort: 8080}]
  selector: {app: ratings}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1, labels: {app: reviews, version: v1}}
spec: {containers: [{ports: [{name: http, containerPort: 9081}]}]}
status: {podIPs: [{ip: 10.244.1.21}, {ip: "fd00:244:1::21"}], conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v2, labels: {app: reviews, version: v2}}
spec: {containers: [{ports: [{name: http, containerPort: 9082}]}]}
status: {podIPs: [{ip: 10.244.1.22}, {ip: "fd00:244:1::22"}], conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v3, labels: {app: reviews, version: v3}}
spec: {containers: [{ports: [{name: http, containerPort: 9083}]}]}
status: {podIPs: [{ip: 10.244.1.23}, {ip: "fd00:244:1::23"}], conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v3-notready, labels: {app: reviews, version: v3}}
spec: {containers: [{ports: [{name: http, containerPort: 9083}]}]}
status: {podIPs: [{ip: 10.244.1.24}], conditions: [{type: Ready, status: "False"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-other-ns, namespace: other, labels: {app: reviews, version: v1}}
status: {podIPs: [{ip: 10.244.9.9}], conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: ratings-v1, labels: {app: ratings, version: v1}}
status: {podIP: 10.244.1.31, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
)";

ResolveResult resolveWith(const std::string& vs, Diagnostics* loadDiags = nullptr) {
  auto l = loadAll({{"inv.yaml", kInventory}, {"vs.yaml", vs}});
  if (loadDiags != nullptr) {
    *loadDiags = l.diags;
  } else {
    EXPECT_TRUE(l.diags.empty()) << formatDiagnostics(l.diags);
  }
  return resolve(l.config);
}

std::string reviewsVs(const std::string& routes, const std::string& host = "reviews",
                      const std::string& ns = "default") {
  return "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\n"
         "  namespace: " +
         ns + "\nspec:\n  hosts:\n  - " + host + "\n  http:\n  - route:\n" + routes;
}

std::string dest(const std::string& host, const std::string& subset, int weight = -1) {
  std::string s = "    - destination:\n        host: " + host + "\n";
  if (!subset.empty()) {
    s += "        subset: " + subset + "\n";
  }
  if (weight >= 0) {
    s += "      weight: " + std::to_string(weight) + "\n";
  }
  return s;
}

// ---------------------------------------------------------------------------

TEST(Resolve, ServicesWithoutVirtualServiceGetAllReadyEndpoints) {
  auto r = resolveWith("");
  ASSERT_TRUE(r.diags.empty()) << formatDiagnostics(r.diags);
  EXPECT_EQ(formatDiagnostics(r.plan),
            "default/ratings 10.96.0.30:9080/6: *=100[10.244.1.31:8080]\n"
            "default/reviews 10.96.0.20:9080/6: *=100[10.244.1.21:9081 10.244.1.22:9082 "
            "10.244.1.23:9083]\n"
            "default/reviews fd00:96::20:9080/6: *=100[fd00:244:1::21:9081 fd00:244:1::22:9082 "
            "fd00:244:1::23:9083]\n");
  const PlanService* s = find(r.plan, "reviews", "10.96.0.20");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->portName, "http");
  EXPECT_EQ(s->versions[0].backends[0].pod(), "default/reviews-v1");
}

class HostForms : public ::testing::TestWithParam<std::pair<const char*, const char*>> {};

TEST_P(HostForms, ResolveToTheService) {
  auto [host, ns] = GetParam();
  auto r = resolveWith(reviewsVs(dest(host, "v2"), host, ns));
  ASSERT_TRUE(r.diags.empty()) << formatDiagnostics(r.diags);
  const PlanService* s = find(r.plan, "reviews", "10.96.0.20");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(formatDiagnostics(*s), "default/reviews 10.96.0.20:9080/6: v2=100[10.244.1.22:9082]");
}

INSTANTIATE_TEST_SUITE_P(
    All, HostForms,
    ::testing::Values(std::make_pair("reviews", "default"),
                      std::make_pair("reviews.default", "default"),
                      std::make_pair("reviews.default.svc", "default"),
                      std::make_pair("reviews.default.svc.cluster.local", "default"),
                      std::make_pair("reviews.default", "other"),
                      std::make_pair("reviews.default.svc.cluster.local", "other")));

TEST(Resolve, SubsetsPickPodsByLabelsAndSelector) {
  auto r = resolveWith(reviewsVs(dest("reviews", "v1", 10) + dest("reviews", "v3", 90)));
  ASSERT_TRUE(r.diags.empty()) << formatDiagnostics(r.diags);
  // v3: the not-ready pod and the other namespace's pod are left out.
  EXPECT_EQ(formatDiagnostics(*find(r.plan, "reviews", "10.96.0.20")),
            "default/reviews 10.96.0.20:9080/6: v1=10[10.244.1.21:9081] v3=90[10.244.1.23:9083]");
  EXPECT_EQ(formatDiagnostics(*find(r.plan, "reviews", "fd00:96::20")),
            "default/reviews fd00:96::20:9080/6: v1=10[fd00:244:1::21:9081] "
            "v3=90[fd00:244:1::23:9083]");
  EXPECT_EQ(formatDiagnostics(*find(r.plan, "ratings", "10.96.0.30")),
            "default/ratings 10.96.0.30:9080/6: *=100[10.244.1.31:8080]");
}

TEST(Resolve, SameSubsetTwiceMergesWeights) {
  auto r = resolveWith(
      reviewsVs(dest("reviews", "v2", 30) + dest("reviews", "v1", 50) + dest("reviews", "v2", 20)));
  ASSERT_TRUE(r.diags.empty()) << formatDiagnostics(r.diags);
  EXPECT_EQ(formatDiagnostics(*find(r.plan, "reviews", "10.96.0.20")),
            "default/reviews 10.96.0.20:9080/6: v2=50[10.244.1.22:9082] v1=50[10.244.1.21:9081]");
}

TEST(Resolve, ZeroWeightVersionKeptAndNoSubsetMeansAllEndpoints) {
  auto r = resolveWith(reviewsVs(dest("reviews", "v1", 100) + dest("reviews", "", 0)));
  ASSERT_TRUE(r.diags.empty()) << formatDiagnostics(r.diags);
  EXPECT_EQ(formatDiagnostics(*find(r.plan, "reviews", "10.96.0.20")),
            "default/reviews 10.96.0.20:9080/6: v1=100[10.244.1.21:9081] "
            "*=0[10.244.1.21:9081 10.244.1.22:9082 10.244.1.23:9083]");
}

TEST(Resolve, SubsetWithoutReadyPodsWarnsAndStays) {
  std::string extraDr = R"(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: ratings
  subsets:
  - name: v2
    labels: {version: v2}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  tcp:
  - route:
    - destination: {host: ratings, subset: v2}
)";
  auto r = resolveWith(extraDr);
  ASSERT_FALSE(hasErrors(r.diags)) << formatDiagnostics(r.diags);
  ASSERT_EQ(r.diags.size(), 1u) << formatDiagnostics(r.diags);
  EXPECT_EQ(r.diags[0].format(),
            "vs.yaml:17:7: warning: VirtualService default/ratings: "
            "spec.tcp[0].route[0].destination.subset: subset v2 of Service default/ratings has "
            "no ready IPv4 endpoints; connections sent there fail");
  EXPECT_EQ(formatDiagnostics(*find(r.plan, "ratings", "10.96.0.30")),
            "default/ratings 10.96.0.30:9080/6: v2=100[]");
}

TEST(Resolve, DestinationPortSelectsServicePort) {
  std::string yaml = R"(apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  clusterIP: 10.96.1.1
  ports: [{name: http, port: 80, targetPort: 8080}, {name: grpc, port: 90, targetPort: 9090}]
  selector: {app: api}
---
apiVersion: v1
kind: Pod
metadata: {name: api-a, labels: {app: api, version: a}}
status: {podIP: 10.244.3.1, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: api-b, labels: {app: api, version: b}}
status: {podIP: 10.244.3.2, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api}
spec:
  host: api
  subsets: [{name: a, labels: {version: a}}, {name: b, labels: {version: b}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api}
spec:
  hosts: [api]
  http:
  - route:
    - destination: {host: api, subset: b, port: {number: 90}}
)";
  auto l = loadString(yaml, "api.yaml");
  ASSERT_TRUE(l.diags.empty()) << formatDiagnostics(l.diags);
  auto r = resolve(l.config);
  ASSERT_TRUE(r.diags.empty()) << formatDiagnostics(r.diags);
  EXPECT_EQ(formatDiagnostics(r.plan),
            "default/api 10.96.1.1:80/6: *=100[10.244.3.1:8080 10.244.3.2:8080]\n"
            "default/api 10.96.1.1:90/6: b=100[10.244.3.2:9090]\n");
}

TEST(Resolve, UdpPortsAndHeadlessServices) {
  std::string yaml = R"(apiVersion: v1
kind: Service
metadata: {name: dns}
spec:
  clusterIP: 10.96.0.21
  ports: [{name: dns, port: 5353, protocol: UDP}, {name: dns-tcp, port: 5353}]
  selector: {app: dns}
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  ports: [{port: 5432}]
  selector: {app: dns}
---
apiVersion: v1
kind: Pod
metadata: {name: dns-1, labels: {app: dns}}
status: {podIP: 10.244.4.1, conditions: [{type: Ready, status: "True"}]}
)";
  auto l = loadString(yaml, "udp.yaml");
  ASSERT_TRUE(l.diags.empty()) << formatDiagnostics(l.diags);
  auto r = resolve(l.config);
  ASSERT_TRUE(r.diags.empty()) << formatDiagnostics(r.diags);
  // Sorted by (ns, name, addr, port, proto): TCP (6) before UDP (17); db is headless.
  EXPECT_EQ(formatDiagnostics(r.plan), "default/dns 10.96.0.21:5353/6: *=100[10.244.4.1:5353]\n"
                                       "default/dns 10.96.0.21:5353/17: *=100[10.244.4.1:5353]\n");
}

TEST(Resolve, EndpointSlicesGiveEndpointsAndLabelsViaTargetRef) {
  std::string yaml = R"(apiVersion: v1
kind: Service
metadata: {name: legacy}
spec:
  clusterIP: 10.96.2.1
  ports: [{name: web, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: legacy-a, labels: {version: v1}}
status: {podIP: 10.244.5.1, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: legacy-1
  labels: {kubernetes.io/service-name: legacy}
addressType: IPv4
endpoints:
- addresses: [10.244.5.1]
  targetRef: {kind: Pod, name: legacy-a}
- addresses: [10.244.5.2]
  conditions: {ready: false}
- addresses: [10.244.5.3]
ports: [{name: web, port: 8081, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: legacy-2
  labels: {kubernetes.io/service-name: legacy}
addressType: IPv4
endpoints:
- addresses: [10.244.5.3]
ports: [{name: web, port: 8081, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: other-port
  labels: {kubernetes.io/service-name: legacy}
endpoints:
- addresses: [10.244.5.9]
ports: [{name: metrics, port: 9100}]
)";
  auto l = loadString(yaml, "es.yaml");
  ASSERT_TRUE(l.diags.empty()) << formatDiagnostics(l.diags);
  auto r = resolve(l.config);
  ASSERT_TRUE(r.diags.empty()) << formatDiagnostics(r.diags);
  EXPECT_EQ(formatDiagnostics(r.plan),
            "default/legacy 10.96.2.1:80/6: *=100[10.244.5.1:8081 10.244.5.3:8081]\n");
  EXPECT_EQ(r.plan.services[0].versions[0].backends[0].pod(), "default/legacy-a");
  EXPECT_EQ(r.plan.services[0].versions[0].backends[1].pod(), "");

  std::string subsets = yaml + R"(---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: legacy}
spec:
  host: legacy.default.svc.cluster.local
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: legacy}
spec:
  hosts: [legacy]
  http:
  - route:
    - destination: {host: legacy, subset: v1}
)";
  auto l2 = loadString(subsets, "es.yaml");
  ASSERT_TRUE(l2.diags.empty()) << formatDiagnostics(l2.diags);
  auto r2 = resolve(l2.config);
  ASSERT_TRUE(r2.diags.empty()) << formatDiagnostics(r2.diags);
  EXPECT_EQ(formatDiagnostics(r2.plan), "default/legacy 10.96.2.1:80/6: v1=100[10.244.5.1:8081]\n");
}

TEST(Resolve, PodsAndSlicesDeduplicated) {
  std::string slice = R"(apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: reviews-x
  labels: {kubernetes.io/service-name: reviews}
endpoints:
- addresses: [10.244.1.21]
  targetRef: {kind: Pod, name: reviews-v1}
- addresses: ["fd00:244:1::21"]
  targetRef: {kind: Pod, name: reviews-v1}
ports: [{name: http, port: 9081}]
)";
  auto r = resolveWith(slice);
  ASSERT_TRUE(r.diags.empty()) << formatDiagnostics(r.diags);
  EXPECT_EQ(find(r.plan, "reviews", "10.96.0.20")->versions[0].backends.size(), 3u);
  EXPECT_EQ(find(r.plan, "reviews", "fd00:96::20")->versions[0].backends.size(), 3u);
}

TEST(Resolve, PodWithoutNamedPortIsSkippedWithWarning) {
  std::string pod = R"(apiVersion: v1
kind: Pod
metadata: {name: reviews-v4, labels: {app: reviews, version: v4}}
spec: {containers: [{ports: [{name: web, containerPort: 80}]}]}
status: {podIP: 10.244.1.25, conditions: [{type: Ready, status: "True"}]}
)";
  auto r = resolveWith(pod);
  ASSERT_FALSE(hasErrors(r.diags));
  ASSERT_EQ(r.diags.size(), 1u) << formatDiagnostics(r.diags);
  EXPECT_EQ(r.diags[0].format(),
            "vs.yaml:1:1: warning: Pod default/reviews-v4: spec.containers: no container port "
            "named http (Service default/reviews port 9080); pod skipped");
  EXPECT_EQ(find(r.plan, "reviews", "10.96.0.20")->versions[0].backends.size(), 3u);
}

// ---------------------------------------------------------------------------
// Validation errors, each with position, field and message.

struct ResolveErrorCase {
  const char* name;
  std::string vs;
  std::string expected;
};

const std::string kVsRef = "VirtualService default/reviews: ";

std::vector<ResolveErrorCase> resolveErrorCases() {
  return {
      {"WeightsSumTo90", reviewsVs(dest("reviews", "v1", 40) + dest("reviews", "v2", 50)),
       "vs.yaml:10:5: error: " + kVsRef + "spec.http[0].route: weights sum to 90, expected 100"},
      {"NegativeWeight",
       reviewsVs(dest("reviews", "v1", 110) +
                 "    - destination: {host: reviews, subset: v2}\n      weight: -10\n"),
       "vs.yaml:15:7: error: " + kVsRef +
           "spec.http[0].route[1].weight: weight -10 out of range 0..100"},
      {"WeightOver100", reviewsVs(dest("reviews", "v1", 150)),
       "vs.yaml:11:7: error: " + kVsRef +
           "spec.http[0].route[0].weight: weight 150 out of range 0..100"},
      {"MissingWeightAmongSeveral", reviewsVs(dest("reviews", "v1", 100) + dest("reviews", "v2")),
       "vs.yaml:15:7: error: " + kVsRef +
           "spec.http[0].route[1].weight: missing weight; every destination needs one when a "
           "route has several"},
      {"UnknownSubset", reviewsVs(dest("reviews", "v4")),
       "vs.yaml:11:7: error: " + kVsRef +
           "spec.http[0].route[0].destination.subset: subset v4 not defined in DestinationRule "
           "default/reviews; known: v1, v2, v3"},
      {"SubsetWithoutDestinationRule",
       "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ratings}\n"
       "spec:\n  hosts: [ratings]\n  http:\n  - route:\n    - destination: {host: ratings, subset: "
       "v1}\n",
       "vs.yaml:8:7: error: VirtualService default/ratings: "
       "spec.http[0].route[0].destination.subset: "
       "subset v1 used but no DestinationRule defines subsets for default/ratings"},
      {"UnknownVsHost", reviewsVs(dest("reviews", "v1"), "reveiws"),
       "vs.yaml:8:5: error: " + kVsRef +
           "spec.hosts[0]: host reveiws is not a known Service; did you mean reviews?"},
      {"ShortHostInOtherNamespace", reviewsVs(dest("reviews", "v1"), "reviews", "other"),
       "vs.yaml:8:5: error: VirtualService other/reviews: spec.hosts[0]: host reviews is not a "
       "known "
       "Service in namespace other"},
      {"UnknownDestinationHost",
       reviewsVs(dest("reviews", "v1", 50) + dest("reviews.nope", "v2", 50)),
       "vs.yaml:15:7: error: " + kVsRef +
           "spec.http[0].route[1].destination.host: host reviews.nope is not a known Service in "
           "namespace nope"},
      {"DestinationSubsetOfAnotherService", reviewsVs(dest("ratings", "v1")),
       "vs.yaml:11:7: error: " + kVsRef +
           "spec.http[0].route[0].destination.subset: subset v1 used but no DestinationRule "
           "defines subsets for default/ratings"},
      {"DestinationPortNotOnService",
       reviewsVs("    - destination:\n        host: reviews\n        port: {number: 1234}\n"),
       "vs.yaml:11:7: error: " + kVsRef +
           "spec.http[0].route[0].destination.port.number: Service default/reviews has no port "
           "1234 "
           "(ports: 9080)"},
      {"SecondVirtualServiceForHost",
       reviewsVs(dest("reviews", "v1")) +
           "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: "
           "reviews-b}\n"
           "spec:\n  hosts: [reviews.default.svc.cluster.local]\n  http:\n  - route:\n"
           "    - destination: {host: reviews, subset: v2}\n",
       "vs.yaml:19:11: error: VirtualService default/reviews-b: spec.hosts[0]: Service "
       "default/reviews is already routed by VirtualService default/reviews at vs.yaml:8:5"},
      {"DestinationRuleUnknownHost",
       "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: x}\nspec:\n"
       "  host: nothere.default.svc.cluster.local\n",
       "vs.yaml:5:9: error: DestinationRule default/x: spec.host: host "
       "nothere.default.svc.cluster.local is not a known Service in namespace default"},
  };
}

void PrintTo(const ResolveErrorCase& c, std::ostream* os) {
  *os << c.name;
}

class ResolveErrors : public ::testing::TestWithParam<ResolveErrorCase> {};

TEST_P(ResolveErrors, PositionedMessage) {
  const auto& c = GetParam();
  auto r = resolveWith(c.vs);
  bool found = false;
  for (const auto& d : r.diags) {
    if (d.format() == c.expected) {
      found = true;
    }
  }
  EXPECT_TRUE(hasErrors(r.diags));
  EXPECT_TRUE(found) << "expected: " << c.expected << "\ngot:\n" << formatDiagnostics(r.diags);
}

INSTANTIATE_TEST_SUITE_P(Cases, ResolveErrors, ::testing::ValuesIn(resolveErrorCases()),
                         [](const auto& info) { return std::string(info.param.name); });

// Istio routes a host's traffic to another host's endpoints when a destination names it.
TEST(Resolve, DestinationIsAnotherService) {
  auto r = resolveWith(reviewsVs(dest("reviews", "v1", 70) + dest("ratings", "", 30)));
  EXPECT_FALSE(hasErrors(r.diags)) << formatDiagnostics(r.diags);
  const PlanService* s = find(r.plan, "reviews", "10.96.0.20");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(formatDiagnostics(*s),
            "default/reviews 10.96.0.20:9080/6: v1=70[10.244.1.21:9081] *=30[10.244.1.31:8080]");
  ASSERT_EQ(s->versions.size(), 2u);
  EXPECT_EQ(s->versions[1].service, "default/ratings");
  EXPECT_EQ(versionName(s->versions[1]), "default/ratings");
  // ratings has no IPv6 endpoints: the v6 address gets a warning, not an error.
  const PlanService* v6 = find(r.plan, "reviews", "fd00:96::20");
  ASSERT_NE(v6, nullptr);
  EXPECT_TRUE(v6->versions[1].backends.empty());
}

TEST(Resolve, WeightErrorLeavesServiceOutOfPlan) {
  auto r = resolveWith(reviewsVs(dest("reviews", "v1", 40) + dest("reviews", "v2", 50)));
  EXPECT_EQ(find(r.plan, "reviews", "10.96.0.20"), nullptr);
  EXPECT_NE(find(r.plan, "ratings", "10.96.0.30"), nullptr);
}

// ---------------------------------------------------------------------------
// Real files: determinism and the seed scenarios.

TEST(Resolve, FileOrderDoesNotChangeThePlan) {
  std::string inv = repoFile("configs/bookinfo/inventory.yaml");
  std::string dr = repoFile("configs/000-asm-bookinfo/destination-rules.yaml");
  std::string step = repoFile("configs/000-asm-bookinfo/steps/03-reviews-v2-v3-50.yaml");
  auto a = loadPaths({inv, dr, step});
  auto b = loadPaths({step, dr, inv});
  ASSERT_TRUE(a.diags.empty()) << formatDiagnostics(a.diags);
  ASSERT_TRUE(b.diags.empty()) << formatDiagnostics(b.diags);
  auto ra = resolve(a.config);
  auto rb = resolve(b.config);
  ASSERT_TRUE(ra.diags.empty()) << formatDiagnostics(ra.diags);
  EXPECT_EQ(formatDiagnostics(ra.plan), formatDiagnostics(rb.plan));
  EXPECT_EQ(ra.plan.services.size(), 6u);
  for (size_t i = 0; i < ra.plan.services.size(); ++i) {
    EXPECT_EQ(ra.plan.services[i].versions.size(), rb.plan.services[i].versions.size());
    for (size_t j = 0; j < ra.plan.services[i].versions.size(); ++j) {
      EXPECT_EQ(ra.plan.services[i].versions[j].backends, rb.plan.services[i].versions[j].backends);
    }
  }
}

TEST(Resolve, BookinfoInventoryAlone) {
  auto l = loadPaths({repoFile("configs/bookinfo/inventory.yaml")});
  ASSERT_TRUE(l.diags.empty()) << formatDiagnostics(l.diags);
  EXPECT_EQ(l.config.services.size(), 5u);
  EXPECT_EQ(l.config.pods.size(), 6u);
  auto r = resolve(l.config);
  ASSERT_TRUE(r.diags.empty()) << formatDiagnostics(r.diags);
  EXPECT_EQ(formatDiagnostics(r.plan),
            "default/details 10.96.0.40:9080/6: *=100[10.244.1.41:9080]\n"
            "default/productpage 10.96.0.10:9080/6: *=100[10.244.1.10:9080]\n"
            "default/ratings 10.96.0.30:9080/6: *=100[10.244.1.31:9080]\n"
            "default/reviews 10.96.0.20:9080/6: *=100[10.244.1.21:9080 10.244.1.22:9080 "
            "10.244.1.23:9080]\n"
            "default/reviews fd00:96::20:9080/6: *=100[fd00:244:1::21:9080 fd00:244:1::22:9080 "
            "fd00:244:1::23:9080]\n"
            "default/reviews-udp 10.96.0.21:5353/17: *=100[10.244.1.21:5353 10.244.1.22:5353 "
            "10.244.1.23:5353]\n");
}

struct SeedStep {
  const char* dir;
  const char* drFile;
  const char* step;
  const char* reviews; // expected versions of reviews (both families), "subset=weight ..."
  bool matchWarning;   // a header match: reviews goes to the L7 path
};

void PrintTo(const SeedStep& c, std::ostream* os) {
  *os << c.dir << "/" << c.step;
}

class SeedSteps : public ::testing::TestWithParam<SeedStep> {};

std::string weights(const PlanService& s) {
  std::string out;
  for (const auto& v : s.versions) {
    out += (out.empty() ? "" : " ") + v.subset + "=" + std::to_string(v.weight);
  }
  return out;
}

TEST_P(SeedSteps, ResolvedWeights) {
  const auto& c = GetParam();
  std::string dir = std::string("configs/") + c.dir;
  auto l = loadPaths({repoFile("configs/bookinfo/inventory.yaml"), repoFile(dir + "/" + c.drFile),
                      repoFile(dir + "/steps/" + c.step)});
  ASSERT_FALSE(hasErrors(l.diags)) << formatDiagnostics(l.diags);
  EXPECT_TRUE(l.diags.empty()) << formatDiagnostics(l.diags);
  auto r = resolve(l.config);
  ASSERT_TRUE(r.diags.empty()) << formatDiagnostics(r.diags);
  ASSERT_EQ(r.plan.services.size(), 6u) << formatDiagnostics(r.plan);
  for (const char* addr : {"10.96.0.20", "fd00:96::20"}) {
    const PlanService* s = find(r.plan, "reviews", addr);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(weights(*s), c.reviews) << addr;
    // A header match puts reviews on the L7 path; the kernel keeps the default rule.
    EXPECT_EQ(s->path, c.matchWarning ? PlanPath::kL7 : PlanPath::kKernel);
    if (c.matchWarning) {
      ASSERT_EQ(s->why.size(), 1u);
      EXPECT_EQ(s->why[0].text(), "VirtualService default/reviews spec.http[0].match[0].headers: "
                                  "end-user exact");
      EXPECT_EQ(s->kernelRule.text(), "VirtualService default/reviews spec.http[1]");
      EXPECT_EQ(s->routes.size(), 2u);
    }
    for (const auto& v : s->versions) {
      ASSERT_FALSE(v.backends.empty()) << v.subset;
      for (const auto& b : v.backends) {
        EXPECT_EQ(b.addr.v4, s->addr.v4);
        EXPECT_EQ(b.pod(), "default/reviews-" + v.subset);
      }
    }
  }
  for (const char* name : {"productpage", "ratings", "details"}) {
    const PlanService* s = nullptr;
    for (const auto& ps : r.plan.services) {
      if (ps.name == name) {
        s = &ps;
      }
    }
    ASSERT_NE(s, nullptr) << name;
    EXPECT_EQ(weights(*s), "v1=100") << name;
    ASSERT_EQ(s->versions[0].backends.size(), 1u);
  }
  EXPECT_EQ(weights(*find(r.plan, "reviews-udp", "10.96.0.21", 5353)), "=100");
}

const SeedStep kSeedSteps[] = {
    SeedStep{"000-asm-bookinfo", "destination-rules.yaml", "01-all-v1.yaml", "v1=100", false},
    SeedStep{"000-asm-bookinfo", "destination-rules.yaml", "02-reviews-v2.yaml", "v2=100", false},
    SeedStep{"000-asm-bookinfo", "destination-rules.yaml", "03-reviews-v2-v3-50.yaml",
             "v2=50 v3=50", false},
    SeedStep{"000-asm-bookinfo", "destination-rules.yaml", "04-jason-v3.yaml", "v2=100", true},
    SeedStep{"001-istio-canary", "destination-rule.yaml", "01-all-v1.yaml", "v1=100", false},
    SeedStep{"001-istio-canary", "destination-rule.yaml", "02-test-user-v2.yaml", "v1=100", true},
    SeedStep{"001-istio-canary", "destination-rule.yaml", "03-80-20.yaml", "v1=80 v2=20", false},
    SeedStep{"001-istio-canary", "destination-rule.yaml", "04-5.yaml", "v1=95 v2=5", false},
    SeedStep{"001-istio-canary", "destination-rule.yaml", "05-10.yaml", "v1=90 v2=10", false},
    SeedStep{"001-istio-canary", "destination-rule.yaml", "06-20.yaml", "v1=80 v2=20", false},
    SeedStep{"001-istio-canary", "destination-rule.yaml", "07-50.yaml", "v1=50 v2=50", false},
    SeedStep{"001-istio-canary", "destination-rule.yaml", "08-100.yaml", "v2=100", false},
    SeedStep{"001-istio-canary", "destination-rule.yaml", "09-rollback.yaml", "v1=100", false}};

INSTANTIATE_TEST_SUITE_P(Seeds, SeedSteps, ::testing::ValuesIn(kSeedSteps), [](const auto& info) {
  std::string n = std::string(info.param.dir).substr(0, 3) + "_" + info.param.step;
  std::replace_if(
      n.begin(), n.end(), [](char ch) { return !std::isalnum(ch); }, '_');
  return n;
});

// Every step file of the two seeds has a row above, and every row names a step file.
TEST(SeedSteps, EveryStepFileIsCovered) {
  std::set<std::string> onDisk, covered;
  for (const char* d : {"000-asm-bookinfo", "001-istio-canary"}) {
    for (const auto& e : fs::directory_iterator(repo() / "configs" / d / "steps")) {
      onDisk.insert(std::string(d) + "/" + e.path().filename().string());
    }
  }
  for (const SeedStep& s : kSeedSteps) {
    covered.insert(std::string(s.dir) + "/" + s.step);
  }
  EXPECT_EQ(onDisk, covered);
}

} // namespace
} // namespace veer

namespace veer {
namespace {

// Given the Config as a shared_ptr, resolve() does not copy the rules into the plan: a
// rule as written is the Config's own object, and the plan keeps the Config alive. A
// delegate's rules merged with their parent's conditions are new objects.
TEST(Resolve, PlanSharesTheConfigsRulesAndOwnsMergedOnes) {
  auto loaded = loadString(R"Y(apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  clusterIP: 10.96.0.9
  ports: [{name: http, port: 9080}]
  selector: {app: reviews}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    delegate: {name: jason-rules}
  - route:
    - destination: {host: reviews}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: jason-rules}
spec:
  http:
  - match: [{uri: {prefix: /api}}]
    route:
    - destination: {host: reviews}
)Y",
                           "r.yaml");
  ASSERT_FALSE(hasErrors(loaded.diags)) << formatDiagnostics(loaded.diags);
  auto config = std::make_shared<const Config>(loaded.config);
  const Route* written = &config->virtualServices[0].http[1];
  const Route* child = &config->virtualServices[1].http[0];
  std::weak_ptr<const Config> alive = config;

  ResolveResult r = resolve(std::move(config));
  ASSERT_FALSE(hasErrors(r.diags)) << formatDiagnostics(r.diags);
  ASSERT_EQ(r.plan.services.size(), 1u);
  const ThinVector<PlanRoute>& routes = r.plan.services[0].routes;
  ASSERT_EQ(routes.size(), 2u);
  EXPECT_NE(routes[0].rule.get(), child); // merged: the parent's header and the child's uri
  EXPECT_EQ(routes[0].rule->matches.size(), 1u);
  EXPECT_EQ(routes[0].rule->matches[0].headers.size(), 1u);
  EXPECT_TRUE(routes[0].rule->matches[0].uri.has_value());
  EXPECT_EQ(routes[1].rule.get(), written);
  EXPECT_FALSE(alive.expired());
  r.plan = Plan();
  EXPECT_TRUE(alive.expired());

  // Given a plain reference, the plan owns copies: the caller's Config may go.
  ResolveResult copied = resolve(loaded.config);
  ASSERT_EQ(copied.plan.services.size(), 1u);
  EXPECT_NE(copied.plan.services[0].routes.at(1).rule.get(),
            &loaded.config.virtualServices[0].http[1]);
}

} // namespace
} // namespace veer

namespace veer {
namespace {

// A config past kParallelBuild services is built on every core, in ranges of services
// merged in order: the plan and the findings must read as a serial build's. Each service
// here names a container port its one pod does not have, so each gives one warning.
TEST(Resolve, LargeConfigBuildsInParallelAndReportsInServiceOrder) {
  constexpr int kServices = 3000;
  std::string text;
  std::vector<std::string> names;
  for (int i = 0; i < kServices; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "svc-%04d", (i * 7919) % kServices); // not in file order
    names.push_back(name);
    const std::string n = name;
    text += "---\napiVersion: v1\nkind: Service\nmetadata: {name: " + n +
            "}\nspec:\n  clusterIP: 10.96." + std::to_string(i / 250) + "." +
            std::to_string(i % 250) +
            "\n  ports: [{port: 80, targetPort: web}]\n  selector: {app: " + n +
            "}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: " + n +
            "-pod, labels: {app: " + n + "}}\nstatus:\n  podIP: 10.244." + std::to_string(i / 250) +
            "." + std::to_string(i % 250) + "\n  conditions: [{type: Ready, status: \"True\"}]\n";
  }
  LoadResult l = loadString(text, "big.yaml");
  ASSERT_FALSE(hasErrors(l.diags)) << formatDiagnostics(l.diags);
  ResolveResult r = resolve(std::make_shared<const Config>(std::move(l.config)));
  ASSERT_EQ(r.plan.services.size(), size_t(kServices));
  ASSERT_EQ(r.diags.size(), size_t(kServices)) << formatDiagnostics(r.diags);
  std::sort(names.begin(), names.end());
  for (int i = 0; i < kServices; ++i) {
    EXPECT_EQ(r.diags[i].object, "Pod default/" + names[i] + "-pod");
    EXPECT_NE(r.diags[i].message.find("(Service default/" + names[i] + " port 80)"),
              std::string::npos)
        << r.diags[i].format();
    EXPECT_EQ(r.plan.services[i].name, names[i]);
    EXPECT_TRUE(r.plan.services[i].versions.at(0).backends.empty());
  }
}

} // namespace
} // namespace veer
