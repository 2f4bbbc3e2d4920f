// One row per distinct diagnostic the loader, the resolver and the ingress resolver can
// emit: a minimal YAML input (v.yaml, loaded beside a small fixed inventory, inv.yaml) and
// the exact line it must produce, "file:line:col: error|warning: Kind ns/name: field:
// message". Gateway API diagnostics not listed here are in gateway_test.cpp's table.
// A new message gets a new row here.

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "config/loader.h"
#include "config/resolve.h"

namespace veer {
namespace {

const char* kInventory = R"Y(apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  clusterIP: 10.96.0.20
  ports: [{name: http, port: 9080, targetPort: 9080}]
  selector: {app: reviews}
---
apiVersion: v1
kind: Service
metadata: {name: ratings}
spec:
  clusterIP: 10.96.0.30
  ports: [{name: http, port: 9080, targetPort: 9080}]
  selector: {app: ratings}
---
apiVersion: v1
kind: Service
metadata: {name: multi}
spec:
  clusterIP: 10.96.0.40
  ports: [{name: a, port: 80, targetPort: 80}, {name: b, port: 81, targetPort: 81}]
  selector: {app: multi}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1, labels: {app: reviews, version: v1}}
status: {podIP: 10.244.0.21, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v2, labels: {app: reviews, version: v2}}
status: {podIP: 10.244.0.22, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: ratings-v1, labels: {app: ratings, version: v1}}
status: {podIP: 10.244.0.31, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-subsets}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
)Y";

/** Loads the inventory and yaml as two files, then resolves when loading found no error. */
Diagnostics diagnose(const std::string& yaml) {
  LoadResult inv = loadString(kInventory, "inv.yaml");
  EXPECT_TRUE(inv.diags.empty()) << formatDiagnostics(inv.diags);
  LoadResult l = loadString(yaml, "v.yaml");
  Diagnostics out = l.diags;
  if (hasErrors(l.diags)) {
    return out;
  }
  Config c = inv.config;
  auto append = [](auto& to, const auto& from) { to.append(from.begin(), from.end()); };
  append(c.services, l.config.services);
  append(c.pods, l.config.pods);
  append(c.endpointSlices, l.config.endpointSlices);
  append(c.destinationRules, l.config.destinationRules);
  append(c.virtualServices, l.config.virtualServices);
  append(c.gateways, l.config.gateways);
  append(c.trafficLabels, l.config.trafficLabels);
  append(c.ingressRoutes, l.config.ingressRoutes);
  ResolveResult r = resolve(c);
  out.insert(out.end(), r.diags.begin(), r.diags.end());
  return out;
}

struct Row {
  const char* name;
  const char* yaml;
  const char* expected; // one formatted diagnostic
};

void PrintTo(const Row& r, std::ostream* os) {
  *os << r.name;
}

const std::vector<Row>& rows() {
  static const std::vector<Row> all = {
      {"YamlSyntaxError",
       R"Y(a: [1, 2
)Y",
       "v.yaml:2:1: error: YAML syntax error: did not find expected ',' or ']' while parsing a "
       "flow sequence that starts at line 1, column 4"},
      {"NotAnObject",
       R"Y(just: a map
)Y",
       "v.yaml:1:1: error: not a Kubernetes object: missing kind or apiVersion"},
      {"KindNotUsed",
       R"Y(apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
)Y",
       "v.yaml:2:7: warning: kind Deployment (apiVersion apps/v1) is not used by veer; ignored"},
      {"MissingMetadata",
       R"Y(apiVersion: v1
kind: Service
spec: {}
)Y",
       "v.yaml:1:1: error: Service (no name): metadata: missing metadata.name"},
      {"MissingMetadataName",
       R"Y(apiVersion: v1
kind: Service
metadata: {namespace: x}
)Y",
       "v.yaml:3:11: error: Service (no name): metadata: missing metadata.name"},
      {"DuplicateObject",
       R"Y(apiVersion: v1
kind: Service
metadata: {name: s}
---
apiVersion: v1
kind: Service
metadata: {name: s}
)Y",
       "v.yaml:5:1: error: Service default/s: duplicate object; first defined at v.yaml:1:1"},
      {"ExpectedAMap",
       R"Y(apiVersion: v1
kind: Service
metadata: {name: s}
spec: [1]
)Y",
       "v.yaml:4:7: error: Service default/s: spec: expected a map, got a sequence"},
      {"DuplicateKey",
       R"Y(apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  selector: {app: a}
  selector: {app: b}
)Y",
       "v.yaml:6:3: error: Service default/s: spec.selector: duplicate key selector (first at line "
       "5)"},
      {"KeyNotAString",
       R"Y(apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  ? [a]
  : b
)Y",
       "v.yaml:5:5: error: Service default/s: spec: expected a string key, got a sequence"},
      {"UnknownFieldHint",
       R"Y(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reveiws
  subset: [{name: v1}]
)Y",
       "v.yaml:6:3: warning: DestinationRule default/reviews: spec.subset: unknown field subset; "
       "did you mean subsets?"},
      {"FieldNotSupported",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
  - corsPolicy: {}
    route:
    - destination: {host: reviews, subset: v2}
)Y",
       "v.yaml:9:5: warning: VirtualService default/reviews: spec.http[1].corsPolicy: field "
       "corsPolicy is not supported by veer yet; ignored"},
      {"ExpectedAString",
       R"Y(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: [reviews]
)Y",
       "v.yaml:5:9: error: DestinationRule default/reviews: spec.host: expected a string, got a "
       "sequence"},
      {"ExpectedAnInteger",
       R"Y(apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  ports: [{port: eighty}]
)Y",
       "v.yaml:5:18: error: Service default/s: spec.ports[0].port: expected an integer, got "
       "'eighty'"},
      {"ExpectedABoolean",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{ignoreUriCase: maybe, uri: {prefix: /}}]
    route:
    - destination: {host: reviews}
)Y",
       "v.yaml:7:29: error: VirtualService default/reviews: spec.http[0].match[0].ignoreUriCase: "
       "expected true or false, got 'maybe'"},
      {"ExpectedADuration",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - timeout: soon
    route:
    - destination: {host: reviews}
)Y",
       "v.yaml:7:14: error: VirtualService default/reviews: spec.http[0].timeout: expected a "
       "duration like 5s or 100ms, got 'soon'"},
      {"RetryOnUnknownPolicy",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - retries: {attempts: 2, retryOn: "5xx,gatway-error"}
    route:
    - destination: {host: reviews}
)Y",
       "v.yaml:7:37: error: VirtualService default/reviews: spec.http[0].retries.retryOn: "
       "'gatway-error' is not a valid retryOn policy (did you mean gateway-error?)"},
      {"RetriesWithoutAttemptsAreOff",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - retries: {perTryTimeout: 2s}
    route:
    - destination: {host: reviews}
)Y",
       "v.yaml:7:14: warning: VirtualService default/reviews: spec.http[0].retries.attempts: 0 (or "
       "unset) disables retries: perTryTimeout and retryOn have no effect"},
      {"RedirectCodeNot3xx",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - redirect: {uri: /new, redirectCode: 200}
)Y",
       "v.yaml:7:41: error: VirtualService default/reviews: spec.http[0].redirect.redirectCode: "
       "200 is not a redirect code 300..399 (301, 302, 303, 307, 308)"},
      {"MirrorToUnknownHost",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
    mirror: {host: reveiws-shadow}
)Y",
       "v.yaml:9:13: warning: VirtualService default/reviews: spec.http[0].mirror.host: host "
       "reveiws-shadow is not a known Service in namespace default; nothing is mirrored"},
      {"MirrorToUndefinedSubset",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
    mirror: {host: reviews, subset: v9}
)Y",
       "v.yaml:9:13: warning: VirtualService default/reviews: spec.http[0].mirror.subset: subset "
       "v9 is not defined for default/reviews; nothing is mirrored"},
      {"PortOutOfRange",
       R"Y(apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  ports: [{port: 70000}]
)Y",
       "v.yaml:5:18: error: Service default/s: spec.ports[0].port: port 70000 out of range "
       "1..65535"},
      {"ExpectedAnIp",
       R"Y(apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  clusterIP: 10.96.0.300
)Y",
       "v.yaml:5:14: error: Service default/s: spec.clusterIP: expected an IP address, got "
       "'10.96.0.300'"},
      {"SctpIgnored",
       R"Y(apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  ports: [{port: 80, protocol: SCTP}]
)Y",
       "v.yaml:5:32: warning: Service default/s: spec.ports[0].protocol: protocol SCTP is not "
       "supported; port ignored"},
      {"UnknownProtocol",
       R"Y(apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  ports: [{port: 80, protocol: ICMP}]
)Y",
       "v.yaml:5:32: error: Service default/s: spec.ports[0].protocol: expected protocol TCP or "
       "UDP, got 'ICMP'"},
      {"ExpectedAList",
       R"Y(apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  ports: {port: 80}
)Y",
       "v.yaml:5:10: error: Service default/s: spec.ports: expected a list, got a map"},
      {"TwoClusterIpsSameFamily",
       R"Y(apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  clusterIPs: [10.96.0.1, 10.96.0.2]
)Y",
       "v.yaml:5:15: error: Service default/s: spec.clusterIPs: two clusterIPs of the same address "
       "family"},
      {"ServicePortMissing",
       R"Y(apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  ports: [{name: http}]
)Y",
       "v.yaml:5:11: error: Service default/s: spec.ports[0].port: missing port"},
      {"BadTargetPort",
       R"Y(apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  ports: [{port: 80, targetPort: [1]}]
)Y",
       "v.yaml:5:34: error: Service default/s: spec.ports[0].targetPort: expected a port number or "
       "name, got a sequence"},
      {"ContainerPortMissing",
       R"Y(apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers: [{ports: [{name: http}]}]
)Y",
       "v.yaml:5:25: error: Pod default/p: spec.containers[0].ports[0].containerPort: missing "
       "containerPort"},
      {"SliceWithoutServiceLabel",
       R"Y(apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: e}
endpoints: []
)Y",
       "v.yaml:1:1: warning: EndpointSlice default/e: metadata.labels: no "
       "kubernetes.io/service-name label; EndpointSlice ignored"},
      {"SliceReadyNotBoolean",
       R"Y(apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: e, labels: {kubernetes.io/service-name: reviews}}
endpoints: [{addresses: [10.244.0.9], conditions: {ready: maybe}}]
)Y",
       "v.yaml:4:59: error: EndpointSlice default/e: endpoints[0].conditions.ready: expected true "
       "or false, got 'maybe'"},
      {"TrafficLabelMissingSpec",
       R"Y(apiVersion: istio.alibabacloud.com/v1beta1
kind: TrafficLabel
metadata: {name: tl}
)Y",
       "v.yaml:1:1: error: TrafficLabel default/tl: spec: missing spec"},
      {"TrafficLabelMissingRules",
       R"Y(apiVersion: istio.alibabacloud.com/v1beta1
kind: TrafficLabel
metadata: {name: tl}
spec:
  workloadSelector: {labels: {app: a}}
)Y",
       "v.yaml:5:3: error: TrafficLabel default/tl: spec.rules: missing rules"},
      {"TrafficLabelMissingLabels",
       R"Y(apiVersion: istio.alibabacloud.com/v1beta1
kind: TrafficLabel
metadata: {name: tl}
spec:
  rules: [{}]
)Y",
       "v.yaml:5:11: error: TrafficLabel default/tl: spec.rules[0].labels: missing labels"},
      {"TrafficLabelMissingName",
       R"Y(apiVersion: istio.alibabacloud.com/v1beta1
kind: TrafficLabel
metadata: {name: tl}
spec:
  rules: [{labels: [{valueFrom: [x]}]}]
)Y",
       "v.yaml:5:21: error: TrafficLabel default/tl: spec.rules[0].labels[0].name: missing name"},
      {"TrafficLabelMissingValueFrom",
       R"Y(apiVersion: istio.alibabacloud.com/v1beta1
kind: TrafficLabel
metadata: {name: tl}
spec:
  rules: [{labels: [{name: trafficLabel}]}]
)Y",
       "v.yaml:5:21: error: TrafficLabel default/tl: spec.rules[0].labels[0].valueFrom: missing "
       "valueFrom"},
      {"TrafficLabelSlashComment",
       R"Y(apiVersion: istio.alibabacloud.com/v1beta1
kind: TrafficLabel
metadata: {name: tl}
spec:
  rules:
  - labels:
    - name: trafficLabel
      valueFrom:
      - $getContext(x-request-id) //from the request
)Y",
       "v.yaml:9:9: warning: TrafficLabel default/tl: spec.rules[0].labels[0].valueFrom[0]: text "
       "after '$getContext(x-request-id)' starts with //, which YAML does not treat as a comment "
       "(use #); ignored"},
      {"TrafficLabelGetContextEmpty",
       R"Y(apiVersion: istio.alibabacloud.com/v1beta1
kind: TrafficLabel
metadata: {name: tl}
spec:
  rules: [{labels: [{name: trafficLabel, valueFrom: [$getContext()]}]}]
)Y",
       "v.yaml:5:54: error: TrafficLabel default/tl: spec.rules[0].labels[0].valueFrom[0]: "
       "$getContext() needs a header name"},
      {"TrafficLabelUnknownSource",
       R"Y(apiVersion: istio.alibabacloud.com/v1beta1
kind: TrafficLabel
metadata: {name: tl}
spec:
  rules: [{labels: [{name: trafficLabel, valueFrom: [$getCtx(x)]}]}]
)Y",
       "v.yaml:5:54: error: TrafficLabel default/tl: spec.rules[0].labels[0].valueFrom[0]: unknown "
       "value source '$getCtx(x)'; expected $getContext(header), $(localLabel) or a literal"},
      {"InvalidRegex",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {regex: "("}}]
    route:
    - destination: {host: reviews}
)Y",
       "v.yaml:7:27: error: VirtualService default/reviews: spec.http[0].match[0].uri.regex: "
       "invalid regex '(': missing ): ( (RE2 syntax)"},
      {"DestinationRuleMissingSpec",
       R"Y(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: r}
)Y",
       "v.yaml:1:1: error: DestinationRule default/r: spec: missing spec"},
      {"DestinationRuleMissingHost",
       R"Y(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  subsets: []
)Y",
       "v.yaml:5:3: error: DestinationRule default/reviews: spec.host: missing host"},
      {"SubsetMissingName",
       R"Y(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{labels: {version: v1}}]
)Y",
       "v.yaml:6:13: error: DestinationRule default/reviews: spec.subsets[0].name: missing subset "
       "name"},
      {"SubsetDefinedTwice",
       R"Y(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1}, {name: v1}]
)Y",
       "v.yaml:6:32: error: DestinationRule default/reviews: spec.subsets[1].name: subset v1 "
       "defined twice"},
      {"SimpleAndConsistentHash",
       R"Y(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: RANDOM, consistentHash: {useSourceIp: true}}
)Y",
       "v.yaml:7:19: error: DestinationRule default/reviews: spec.trafficPolicy.loadBalancer: "
       "simple and consistentHash are exclusive"},
      {"UnknownLoadBalancer",
       R"Y(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBN}
)Y",
       "v.yaml:7:28: error: DestinationRule default/reviews: "
       "spec.trafficPolicy.loadBalancer.simple: unknown load balancer 'ROUND_ROBN'; did you mean "
       "ROUND_ROBIN?"},
      {"CookieMissingName",
       R"Y(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpCookie: {ttl: 0s}}
)Y",
       "v.yaml:8:36: error: DestinationRule default/reviews: "
       "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name: missing name"},
      {"ConsistentHashNeedsOneKey",
       R"Y(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      consistentHash: {}
)Y",
       "v.yaml:8:23: error: DestinationRule default/reviews: "
       "spec.trafficPolicy.loadBalancer.consistentHash: expected exactly one of httpHeaderName, "
       "httpCookie, useSourceIp, httpQueryParameterName"},
      {"VirtualServiceMissingSpec",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: v}
)Y",
       "v.yaml:1:1: error: VirtualService default/v: spec: missing spec"},
      {"GatewayBoundVirtualService",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  gateways: [bookinfo-gateway]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
)Y",
       "v.yaml:6:13: warning: VirtualService default/reviews: spec.gateways: bound to gateways "
       "(bookinfo-gateway) and not to mesh; veer routes mesh traffic only; VirtualService ignored"},
      {"EmptyHosts",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: v}
spec:
  hosts: []
  http:
  - route:
    - destination: {host: reviews, subset: v1}
)Y",
       "v.yaml:5:10: error: VirtualService default/v: spec.hosts: empty hosts"},
      {"StringMatchEmpty",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {}}]
    route:
    - destination: {host: reviews}
)Y",
       "v.yaml:7:19: error: VirtualService default/reviews: spec.http[0].match[0].uri: expected "
       "one of exact, prefix or regex"},
      {"StringMatchTwoOps",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {exact: /a, prefix: /b}}]
    route:
    - destination: {host: reviews}
)Y",
       "v.yaml:7:19: error: VirtualService default/reviews: spec.http[0].match[0].uri: only one of "
       "exact, prefix or regex may be set"},
      {"HeaderOpsNotAMap",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - headers: {request: {set: [x]}}
    route:
    - destination: {host: reviews}
)Y",
       "v.yaml:7:30: error: VirtualService default/reviews: spec.http[0].headers.request.set: "
       "expected a map of header: value, got a sequence"},
      {"HeaderOpsKeyNotAString",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - headers:
      request:
        set: {[a]: b}
    route:
    - destination: {host: reviews}
)Y",
       "v.yaml:9:15: error: VirtualService default/reviews: spec.http[0].headers.request.set: "
       "expected a header name"},
      {"PercentNotANumber",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - mirror: {host: reviews}
    mirrorPercentage: {value: lots}
    route:
    - destination: {host: reviews}
)Y",
       "v.yaml:8:31: error: VirtualService default/reviews: spec.http[0].mirrorPercentage: "
       "expected a percentage 0..100, got 'lots'"},
      {"PercentOutOfRange",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - mirror: {host: reviews}
    mirrorPercentage: {value: 150}
    route:
    - destination: {host: reviews}
)Y",
       "v.yaml:8:31: error: VirtualService default/reviews: spec.http[0].mirrorPercentage: "
       "expected a percentage 0..100, got '150'"},
      {"PercentNotAScalar",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - mirror: {host: reviews}
    mirrorPercentage: [50]
    route:
    - destination: {host: reviews}
)Y",
       "v.yaml:8:23: error: VirtualService default/reviews: spec.http[0].mirrorPercentage: "
       "expected a percentage, got a sequence"},
      {"AbortStatusOutOfRange",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - fault: {abort: {httpStatus: 700}}
    route:
    - destination: {host: reviews}
)Y",
       "v.yaml:7:33: error: VirtualService default/reviews: spec.http[0].fault.abort.httpStatus: "
       "HTTP status 700 out of range 200..599"},
      {"DirectResponseMissingStatus",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - directResponse: {body: {string: hi}}
)Y",
       "v.yaml:7:21: error: VirtualService default/reviews: spec.http[0].directResponse.status: "
       "missing status"},
      {"DelegateMissingName",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - delegate: {namespace: x}
)Y",
       "v.yaml:7:15: error: VirtualService default/reviews: spec.http[0].delegate.name: missing "
       "name"},
      {"RouteMissing",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /}}]
)Y",
       "v.yaml:7:5: error: VirtualService default/reviews: spec.http[0].route: missing route"},
      {"RouteAndDelegate",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - delegate: {name: d}
    route:
    - destination: {host: reviews}
)Y",
       "v.yaml:9:5: error: VirtualService default/reviews: spec.http[0].route: route and delegate "
       "are exclusive; delegate is set"},
      {"DestinationMissingHost",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {subset: v1}
)Y",
       "v.yaml:8:20: error: VirtualService default/reviews: "
       "spec.http[0].route[0].destination.host: missing host"},
      {"DestinationPortNotAMap",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, port: 9080}
)Y",
       "v.yaml:8:42: error: VirtualService default/reviews: "
       "spec.http[0].route[0].destination.port: expected a map with number, got '9080'; write "
       "port: {number: 9080}"},
      {"DestinationPortMissingNumber",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, port: {}}
)Y",
       "v.yaml:8:42: error: VirtualService default/reviews: "
       "spec.http[0].route[0].destination.port.number: missing number"},
      {"DestinationNotAMap",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - reviews
)Y",
       "v.yaml:8:7: error: VirtualService default/reviews: spec.http[0].route[0]: expected a map, "
       "got 'reviews'"},
      {"StrayPortMeantWeight",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 90
    - destination: {host: reviews, subset: v2}
      port: 10
)Y",
       "v.yaml:11:7: error: VirtualService default/reviews: spec.http[0].route[1].port: unknown "
       "field port; did you mean weight: 10? (the other destinations have weights)"},
      {"UnknownDestinationField",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      wieght: 100
)Y",
       "v.yaml:9:7: warning: VirtualService default/reviews: spec.http[0].route[0].wieght: unknown "
       "field wieght; did you mean weight?"},
      {"DestinationMissing",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - weight: 100
)Y",
       "v.yaml:8:7: error: VirtualService default/reviews: spec.http[0].route[0].destination: "
       "missing destination"},
      {"UnknownFallbackCase",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      fallback: {case: nothing, target: {host: reviews, subset: v2}}
)Y",
       "v.yaml:9:24: error: VirtualService default/reviews: spec.http[0].route[0].fallback.case: "
       "unknown fallback case 'nothing'; expected noinstances or noavailabled"},
      {"FallbackMissingTarget",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      fallback: {case: noinstances}
)Y",
       "v.yaml:9:17: error: VirtualService default/reviews: spec.http[0].route[0].fallback.target: "
       "missing target"},
      {"GatewayMissingSpec",
       R"Y(apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: g}
)Y",
       "v.yaml:1:1: error: Gateway default/g: spec: missing spec"},
      {"GatewayServerMissingPort",
       R"Y(apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  selector: {istio: ingressgateway}
  servers:
  - hosts: ['*']
)Y",
       "v.yaml:7:5: error: Gateway default/gw: spec.servers[0].port: missing port"},
      {"GatewayPortMissingNumber",
       R"Y(apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {name: http, protocol: HTTP}
    hosts: ['*']
)Y",
       "v.yaml:7:11: error: Gateway default/gw: spec.servers[0].port.number: missing number"},
      {"GatewayUnknownProtocol",
       R"Y(apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP3}
    hosts: ['*']
)Y",
       "v.yaml:7:46: error: Gateway default/gw: spec.servers[0].port.protocol: unknown protocol "
       "'HTTP3'; did you mean HTTP?"},
      {"GatewayServerMissingHosts",
       R"Y(apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
)Y",
       "v.yaml:7:5: error: Gateway default/gw: spec.servers[0].hosts: missing hosts"},
      {"ContourMissingSpec",
       R"Y(apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: p}
)Y",
       "v.yaml:1:1: error: HTTPProxy default/p: spec: missing spec"},
      {"ContourMissingFqdn",
       R"Y(apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: p}
spec:
  virtualhost: {tls: {secretName: s}}
  routes: [{services: [{name: reviews, port: 9080}]}]
)Y",
       "v.yaml:5:16: error: HTTPProxy default/p: spec.virtualhost.fqdn: missing fqdn"},
      {"ContourBadFqdn",
       R"Y(apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: p}
spec:
  virtualhost: {fqdn: "blog.example.com/x"}
  routes: [{services: [{name: reviews, port: 9080}]}]
)Y",
       "v.yaml:5:23: error: HTTPProxy default/p: spec.virtualhost.fqdn: 'blog.example.com/x' is "
       "not a host name"},
      {"ContourNoRoutes",
       R"Y(apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: p}
spec:
  virtualhost: {fqdn: blog.example.com}
)Y",
       "v.yaml:1:1: warning: HTTPProxy default/p: spec: no routes or includes; nothing to route"},
      {"ContourPrefixNotAbsolute",
       R"Y(apiVersion: contour.heptio.com/v1beta1
kind: IngressRoute
metadata: {name: root}
spec:
  virtualhost: {fqdn: blog.example.com}
  routes:
  - match: blog
    services: [{name: reviews, port: 9080}]
)Y",
       "v.yaml:7:12: error: IngressRoute default/root: spec.routes[0].match: a path prefix must "
       "start with /, got 'blog'"},
      {"ContourConditionTwoKinds",
       R"Y(apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: root}
spec:
  virtualhost: {fqdn: blog.example.com}
  routes:
  - conditions: [{prefix: /a, header: {name: x, present: true}}]
    services: [{name: reviews, port: 9080}]
)Y",
       "v.yaml:7:18: error: HTTPProxy default/root: spec.routes[0].conditions[0]: expected exactly "
       "one of prefix, header"},
      {"ContourConditionPrefixNotAbsolute",
       R"Y(apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: root}
spec:
  virtualhost: {fqdn: blog.example.com}
  routes:
  - conditions: [{prefix: a}]
    services: [{name: reviews, port: 9080}]
)Y",
       "v.yaml:7:27: error: HTTPProxy default/root: spec.routes[0].conditions[0].prefix: a path "
       "prefix must start with /, got 'a'"},
      {"ContourTwoPrefixes",
       R"Y(apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: root}
spec:
  virtualhost: {fqdn: blog.example.com}
  routes:
  - conditions: [{prefix: /a}, {prefix: /b}]
    services: [{name: reviews, port: 9080}]
)Y",
       "v.yaml:7:41: error: HTTPProxy default/root: spec.routes[0].conditions[1].prefix: more than "
       "one prefix condition"},
      {"ContourHeaderMissingName",
       R"Y(apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: root}
spec:
  virtualhost: {fqdn: blog.example.com}
  routes:
  - conditions: [{header: {present: true}}]
    services: [{name: reviews, port: 9080}]
)Y",
       "v.yaml:7:27: error: HTTPProxy default/root: spec.routes[0].conditions[0].header.name: "
       "missing name"},
      {"ContourHeaderTwoOps",
       R"Y(apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: root}
spec:
  virtualhost: {fqdn: blog.example.com}
  routes:
  - conditions: [{header: {name: x, exact: a, contains: b}}]
    services: [{name: reviews, port: 9080}]
)Y",
       "v.yaml:7:27: error: HTTPProxy default/root: spec.routes[0].conditions[0].header: expected "
       "exactly one of present, notpresent, exact, notexact, contains, notcontains"},
      {"ContourIncludeMissingName",
       R"Y(apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: root}
spec:
  virtualhost: {fqdn: blog.example.com}
  includes:
  - namespace: x
)Y",
       "v.yaml:7:5: error: HTTPProxy default/root: spec.includes[0].name: missing name"},
      {"ContourDelegateMissingName",
       R"Y(apiVersion: contour.heptio.com/v1beta1
kind: IngressRoute
metadata: {name: root}
spec:
  virtualhost: {fqdn: blog.example.com}
  routes:
  - match: /
    delegate: {namespace: x}
)Y",
       "v.yaml:8:15: error: IngressRoute default/root: spec.routes[0].delegate.name: missing name"},
      {"ContourServiceMissingName",
       R"Y(apiVersion: contour.heptio.com/v1beta1
kind: IngressRoute
metadata: {name: root}
spec:
  virtualhost: {fqdn: blog.example.com}
  routes:
  - match: /
    services: [{port: 9080}]
)Y",
       "v.yaml:8:16: error: IngressRoute default/root: spec.routes[0].services[0].name: missing "
       "name"},
      {"ContourServiceMissingPort",
       R"Y(apiVersion: contour.heptio.com/v1beta1
kind: IngressRoute
metadata: {name: root}
spec:
  virtualhost: {fqdn: blog.example.com}
  routes:
  - match: /
    services: [{name: reviews}]
)Y",
       "v.yaml:8:16: error: IngressRoute default/root: spec.routes[0].services[0].port: missing "
       "port (Contour requires the Service port)"},
      {"ContourWeightOutOfRange",
       R"Y(apiVersion: contour.heptio.com/v1beta1
kind: IngressRoute
metadata: {name: root}
spec:
  virtualhost: {fqdn: blog.example.com}
  routes:
  - match: /
    services: [{name: reviews, port: 9080, weight: -1}]
)Y",
       "v.yaml:8:52: error: IngressRoute default/root: spec.routes[0].services[0].weight: weight "
       "-1 out of range 0..1000000"},
      {"ContourServicesAndDelegate",
       R"Y(apiVersion: contour.heptio.com/v1beta1
kind: IngressRoute
metadata: {name: root}
spec:
  virtualhost: {fqdn: blog.example.com}
  routes:
  - match: /
    services: [{name: reviews, port: 9080}]
    delegate: {name: x}
)Y",
       "v.yaml:7:5: error: IngressRoute default/root: spec.routes[0]: services and delegate are "
       "exclusive"},
      {"ContourMissingServicesOrDelegate",
       R"Y(apiVersion: contour.heptio.com/v1beta1
kind: IngressRoute
metadata: {name: root}
spec:
  virtualhost: {fqdn: blog.example.com}
  routes:
  - match: /
)Y",
       "v.yaml:7:5: error: IngressRoute default/root: spec.routes[0].services: missing services or "
       "delegate"},
      {"ContourMissingServices",
       R"Y(apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: root}
spec:
  virtualhost: {fqdn: blog.example.com}
  routes:
  - conditions: [{prefix: /}]
)Y",
       "v.yaml:7:5: error: HTTPProxy default/root: spec.routes[0].services: missing services"},
      {"ContourEmptyServices",
       R"Y(apiVersion: contour.heptio.com/v1beta1
kind: IngressRoute
metadata: {name: root}
spec:
  virtualhost: {fqdn: blog.example.com}
  routes:
  - match: /
    services: []
)Y",
       "v.yaml:7:5: error: IngressRoute default/root: spec.routes[0].services: empty services"},
      {"HttpRouteMissingSpec",
       R"Y(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
)Y",
       "v.yaml:1:1: error: HTTPRoute default/r: spec: missing spec"},
      {"HttpRouteNoParentRefs",
       R"Y(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  rules: [{backendRefs: [{name: reviews, port: 9080}]}]
)Y",
       "v.yaml:1:1: warning: HTTPRoute default/r: spec.parentRefs: no parentRefs: the route "
       "attaches to no Gateway and no Service; nothing to route"},
      {"HttpRouteNoRules",
       R"Y(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
)Y",
       "v.yaml:1:1: warning: HTTPRoute default/r: spec.rules: no rules; nothing to route"},
      {"HttpRouteParentMissingName",
       R"Y(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{kind: Service, group: ""}]
  rules: [{backendRefs: [{name: reviews, port: 9080}]}]
)Y",
       "v.yaml:5:16: error: HTTPRoute default/r: spec.parentRefs[0].name: missing name"},
      {"HttpRouteBackendMissingName",
       R"Y(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules:
  - backendRefs: [{port: 9080}]
)Y",
       "v.yaml:7:19: error: HTTPRoute default/r: spec.rules[0].backendRefs[0].name: missing name"},
      {"HttpRouteCrossNamespaceBackend",
       R"Y(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules:
  - backendRefs: [{name: reviews, namespace: other, port: 9080}]
)Y",
       "v.yaml:7:46: warning: HTTPRoute default/r: spec.rules[0].backendRefs[0].namespace: a "
       "backend in namespace other needs a ReferenceGrant there; veer does not read "
       "ReferenceGrants and routes to it"},
      {"HttpRouteBackendFilterUnsupported",
       R"Y(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules:
  - backendRefs:
    - name: reviews
      port: 9080
      filters: [{type: URLRewrite, urlRewrite: {hostname: x}}]
)Y",
       "v.yaml:10:17: warning: HTTPRoute default/r: spec.rules[0].backendRefs[0].filters[0].type: "
       "filter URLRewrite on a backendRef is not supported by veer; ignored (it is supported on "
       "the rule)"},
      {"HttpRouteBackendFilterBodyMissing",
       R"Y(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules:
  - backendRefs:
    - name: reviews
      port: 9080
      filters: [{type: RequestHeaderModifier}]
)Y",
       "v.yaml:10:17: error: HTTPRoute default/r: "
       "spec.rules[0].backendRefs[0].filters[0].requestHeaderModifier: missing "
       "requestHeaderModifier"},
      {"HttpRouteFilterMissingType",
       R"Y(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules:
  - filters: [{requestHeaderModifier: {remove: [x]}}]
    backendRefs: [{name: reviews, port: 9080}]
)Y",
       "v.yaml:7:15: error: HTTPRoute default/r: spec.rules[0].filters[0].type: missing type"},
      {"HttpRouteFilterUnknownTypeNoHint",
       R"Y(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules:
  - filters: [{type: Compress}]
    backendRefs: [{name: reviews, port: 9080}]
)Y",
       "v.yaml:7:22: error: HTTPRoute default/r: spec.rules[0].filters[0].type: unknown filter "
       "type Compress; expected one of RequestHeaderModifier, ResponseHeaderModifier, URLRewrite, "
       "RequestRedirect, RequestMirror"},
      {"HttpRouteFilterIgnored",
       R"Y(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules:
  - filters: [{type: CORS, cors: {allowOrigins: ['*']}}]
    backendRefs: [{name: reviews, port: 9080}]
)Y",
       "v.yaml:7:15: warning: HTTPRoute default/r: spec.rules[0].filters[0].type: filter CORS is "
       "not supported by veer; ignored"},
      {"HttpRouteHeaderModifierMissingName",
       R"Y(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules:
  - filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{value: x}]}}]
    backendRefs: [{name: reviews, port: 9080}]
)Y",
       "v.yaml:7:75: error: HTTPRoute default/r: "
       "spec.rules[0].filters[0].requestHeaderModifier.set[0].name: missing name"},
      {"HttpRouteRewritePrefixMissing",
       R"Y(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules:
  - filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch}}}]
    backendRefs: [{name: reviews, port: 9080}]
)Y",
       "v.yaml:7:53: error: HTTPRoute default/r: "
       "spec.rules[0].filters[0].urlRewrite.path.replacePrefixMatch: missing replacePrefixMatch"},
      {"HttpRouteRewriteFullPath",
       R"Y(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules:
  - filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /x}}}]
    backendRefs: [{name: reviews, port: 9080}]
)Y",
       "v.yaml:7:53: warning: HTTPRoute default/r: spec.rules[0].filters[0].urlRewrite.path: "
       "ReplaceFullPath is not supported by veer yet; the path is not rewritten"},
      {"HttpRouteRewriteBadType",
       R"Y(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules:
  - filters: [{type: URLRewrite, urlRewrite: {path: {type: Replace}}}]
    backendRefs: [{name: reviews, port: 9080}]
)Y",
       "v.yaml:7:60: error: HTTPRoute default/r: spec.rules[0].filters[0].urlRewrite.path.type: "
       "expected ReplacePrefixMatch or ReplaceFullPath, got 'Replace'"},
      {"HttpRouteMirrorMissingBackend",
       R"Y(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules:
  - filters: [{type: RequestMirror, requestMirror: {percent: 10}}]
    backendRefs: [{name: reviews, port: 9080}]
)Y",
       "v.yaml:7:52: error: HTTPRoute default/r: "
       "spec.rules[0].filters[0].requestMirror.backendRef: missing backendRef"},
      {"HttpRouteMirrorPercentOutOfRange",
       R"Y(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules:
  - filters: [{type: RequestMirror, requestMirror: {backendRef: {name: ratings, port: 9080}, percent: 101}}]
    backendRefs: [{name: reviews, port: 9080}]
)Y",
       "v.yaml:7:103: error: HTTPRoute default/r: spec.rules[0].filters[0].requestMirror.percent: "
       "percent 101 out of range 0..100"},
      {"HttpRouteMirrorFractionMissingNumerator",
       R"Y(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules:
  - filters: [{type: RequestMirror, requestMirror: {backendRef: {name: ratings, port: 9080}, fraction: {denominator: 10}}}]
    backendRefs: [{name: reviews, port: 9080}]
)Y",
       "v.yaml:7:104: error: HTTPRoute default/r: "
       "spec.rules[0].filters[0].requestMirror.fraction.numerator: missing numerator"},
      {"HttpRouteMirrorFractionInvalid",
       R"Y(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules:
  - filters: [{type: RequestMirror, requestMirror: {backendRef: {name: ratings, port: 9080}, fraction: {numerator: 5, denominator: 2}}}]
    backendRefs: [{name: reviews, port: 9080}]
)Y",
       "v.yaml:7:104: error: HTTPRoute default/r: spec.rules[0].filters[0].requestMirror.fraction: "
       "expected 0 <= numerator <= denominator and denominator > 0"},
      {"HttpRouteHeaderMatchMissingValue",
       R"Y(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules:
  - matches: [{headers: [{name: x}]}]
    backendRefs: [{name: reviews, port: 9080}]
)Y",
       "v.yaml:7:26: error: HTTPRoute default/r: spec.rules[0].matches[0].headers[0].value: "
       "missing value"},
      {"HttpRouteHeaderMatchBadType",
       R"Y(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules:
  - matches: [{headers: [{type: Prefix, name: x, value: y}]}]
    backendRefs: [{name: reviews, port: 9080}]
)Y",
       "v.yaml:7:33: error: HTTPRoute default/r: spec.rules[0].matches[0].headers[0].type: "
       "expected Exact or RegularExpression, got 'Prefix'"},
      {"HttpRouteHeaderMatchDuplicate",
       R"Y(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules:
  - matches: [{headers: [{name: X, value: a}, {name: x, value: b}]}]
    backendRefs: [{name: reviews, port: 9080}]
)Y",
       "v.yaml:7:54: warning: HTTPRoute default/r: spec.rules[0].matches[0].headers[1].name: "
       "header x is matched by an earlier entry; this one is ignored"},
      {"DestinationRuleUnknownHost",
       R"Y(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reveiws
)Y",
       "v.yaml:5:9: error: DestinationRule default/reviews: spec.host: host reveiws is not a known "
       "Service; did you mean reviews?"},
      {"DestinationRuleSecondForService",
       R"Y(apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
)Y",
       "v.yaml:5:9: error: DestinationRule default/reviews: spec.host: Service default/reviews "
       "already has subsets from DestinationRule default/reviews-subsets at inv.yaml:44:9"},
      {"VirtualServiceUnknownHost",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reveiws]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
)Y",
       "v.yaml:5:11: error: VirtualService default/reviews: spec.hosts[0]: host reveiws is not a "
       "known Service; did you mean reviews?"},
      {"VirtualServiceSecondForService",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-b}
spec:
  hosts: [reviews.default.svc.cluster.local]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
)Y",
       "v.yaml:14:11: error: VirtualService default/reviews-b: spec.hosts[0]: Service "
       "default/reviews is already routed by VirtualService default/reviews at v.yaml:5:11"},
      {"DelegateNotFound",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - delegate: {name: nothere}
)Y",
       "v.yaml:7:15: error: VirtualService default/reviews: spec.http[0].delegate: VirtualService "
       "default/nothere not found"},
      {"DelegateHasHosts",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - delegate: {name: other}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: other}
spec:
  hosts: [ratings]
  http:
  - route:
    - destination: {host: ratings}
)Y",
       "v.yaml:7:15: error: VirtualService default/reviews: spec.http[0].delegate: VirtualService "
       "default/other has hosts; a delegate VirtualService must not set hosts"},
      {"DelegateDelegatesAgain",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - delegate: {name: child}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: child}
spec:
  http:
  - delegate: {name: grandchild}
)Y",
       "v.yaml:14:15: error: VirtualService default/child: spec.http[0].delegate: a delegate "
       "VirtualService cannot delegate again"},
      {"UnreachableRule",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
  - route:
    - destination: {host: reviews, subset: v1}
)Y",
       "v.yaml:9:5: warning: VirtualService default/reviews: spec.http[1]: unreachable: an earlier "
       "rule matches every request"},
      {"NoRoutesForHost",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
)Y",
       "v.yaml:5:11: warning: VirtualService default/reviews: spec.hosts[0]: no route without "
       "match conditions for this host; all endpoints get the traffic"},
      {"RouteHasNoDestinations",
       R"Y(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules:
  - filters: [{type: RequestHeaderModifier, requestHeaderModifier: {remove: [x]}}]
    backendRefs: []
)Y",
       "v.yaml:7:5: warning: HTTPRoute default/r: spec.rules[0].backendRefs: no backendRefs and no "
       "RequestRedirect: Gateway API answers 503 to every request this rule matches"},
      {"TrafficLabelSubsetUndefined",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: $trafficLabel}
)Y",
       "v.yaml:8:7: error: VirtualService default/reviews: "
       "spec.http[0].route[0].destination.subset: subset $trafficLabel names a traffic label, but "
       "no TrafficLabel in namespace default or istio-system defines label trafficLabel"},
      {"SubsetWithoutDestinationRule",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - route:
    - destination: {host: ratings, subset: v1}
)Y",
       "v.yaml:8:7: error: VirtualService default/ratings: "
       "spec.http[0].route[0].destination.subset: subset v1 used but no DestinationRule defines "
       "subsets for default/ratings"},
      {"SubsetNotDefined",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v9}
)Y",
       "v.yaml:8:7: error: VirtualService default/reviews: "
       "spec.http[0].route[0].destination.subset: subset v9 not defined in DestinationRule "
       "default/reviews-subsets; known: v1, v2, v3"},
      {"DestinationUnknownHost",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reveiws, subset: v1}
)Y",
       "v.yaml:8:7: error: VirtualService default/reviews: spec.http[0].route[0].destination.host: "
       "host reveiws is not a known Service; did you mean reviews?"},
      {"WeightOutOfRange",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 150
    - destination: {host: reviews, subset: v2}
      weight: -50
)Y",
       "v.yaml:8:7: error: VirtualService default/reviews: spec.http[0].route[0].weight: weight "
       "150 out of range 0..100"},
      {"MissingWeightAmongSeveral",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 100
    - destination: {host: reviews, subset: v2}
)Y",
       "v.yaml:10:7: error: VirtualService default/reviews: spec.http[0].route[1].weight: missing "
       "weight; every destination needs one when a route has several"},
      {"FallbackUnknownHost",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      fallback: {target: {host: nothere, subset: v2}}
)Y",
       "v.yaml:9:17: error: VirtualService default/reviews: "
       "spec.http[0].route[0].fallback.target.host: host nothere is not a known Service in "
       "namespace default"},
      {"FallbackOtherService",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      fallback: {target: {host: ratings}}
)Y",
       "v.yaml:9:17: error: VirtualService default/reviews: "
       "spec.http[0].route[0].fallback.target.host: fallback to another service (default/ratings) "
       "than the destination's (default/reviews) is not supported yet"},
      {"FallbackToTrafficLabel",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      fallback: {target: {host: reviews, subset: $trafficLabel}}
)Y",
       "v.yaml:9:17: error: VirtualService default/reviews: "
       "spec.http[0].route[0].fallback.target.subset: a fallback target must name a subset, not a "
       "traffic label"},
      {"DestinationPortNotOnService",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1, port: {number: 1234}}
)Y",
       "v.yaml:8:7: error: VirtualService default/reviews: "
       "spec.http[0].route[0].destination.port.number: Service default/reviews has no port 1234 "
       "(ports: 9080)"},
      {"OtherServiceNeedsAPort",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: multi}
)Y",
       "v.yaml:8:7: error: VirtualService default/reviews: "
       "spec.http[0].route[0].destination.port.number: Service default/multi has no port 9080 and "
       "several ports (80, 81); name the port to send default/reviews traffic to"},
      {"WeightsDoNotSumTo100",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 40
    - destination: {host: reviews, subset: v2}
      weight: 50
)Y",
       "v.yaml:7:5: error: VirtualService default/reviews: spec.http[0].route: weights sum to 90, "
       "expected 100"},
      {"NamedTargetPortMissingOnPod",
       R"Y(apiVersion: v1
kind: Service
metadata: {name: named}
spec:
  clusterIP: 10.96.0.77
  ports: [{name: http, port: 80, targetPort: web}]
  selector: {app: named}
---
apiVersion: v1
kind: Pod
metadata: {name: named-1, labels: {app: named}}
spec: {containers: [{ports: [{name: http, containerPort: 8080}]}]}
status: {podIP: 10.244.7.7, conditions: [{type: Ready, status: "True"}]}
)Y",
       "v.yaml:9:1: warning: Pod default/named-1: spec.containers: no container port named web "
       "(Service default/named port 80); pod skipped"},
      {"TrafficLabelWithoutFallback",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: $trafficLabel}
---
apiVersion: istio.alibabacloud.com/v1beta1
kind: TrafficLabel
metadata: {name: tl}
spec:
  rules: [{labels: [{name: trafficLabel, valueFrom: [$getContext(x-asm-prefer-tag)]}]}]
)Y",
       "v.yaml:8:7: warning: VirtualService default/reviews: "
       "spec.http[0].route[0].destination.subset: subset $trafficLabel has no fallback; clients in "
       "no lane (and lanes without ready endpoints) go to every endpoint of default/reviews"},
      {"SubsetWithoutEndpoints",
       R"Y(apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v3}
)Y",
       "v.yaml:8:7: warning: VirtualService default/reviews: "
       "spec.http[0].route[0].destination.subset: subset v3 of Service default/reviews has no "
       "ready IPv4 endpoints; connections sent there fail"},
      {"IngressHostClaimedTwice",
       R"Y(apiVersion: contour.heptio.com/v1beta1
kind: IngressRoute
metadata: {name: root}
spec:
  virtualhost: {fqdn: blog.example.com}
  routes:
  - match: /
    services: [{name: reviews, port: 9080}]
---
apiVersion: projectcontour.io/v1
kind: HTTPProxy
metadata: {name: root2}
spec:
  virtualhost: {fqdn: blog.example.com}
  routes:
  - services: [{name: reviews, port: 9080}]
)Y",
       "v.yaml:14:23: error: HTTPProxy default/root2: spec.virtualhost.fqdn: host blog.example.com "
       "is also claimed by IngressRoute default/root at v.yaml:5:23; one host must have one "
       "routing object"},
      {"IngressDelegatePathOutside",
       R"Y(apiVersion: contour.heptio.com/v1beta1
kind: IngressRoute
metadata: {name: root}
spec:
  virtualhost: {fqdn: blog.example.com}
  routes:
  - match: /blog
    delegate: {name: child}
---
apiVersion: contour.heptio.com/v1beta1
kind: IngressRoute
metadata: {name: child}
spec:
  routes:
  - match: /admin
    services: [{name: reviews, port: 9080}]
)Y",
       "v.yaml:15:12: error: IngressRoute default/child: spec.routes[0].match: path /admin is "
       "outside the delegating route's prefix /blog (v.yaml:7:5); Contour requires a delegated "
       "route to match inside it"},
      {"IngressDelegateNotFound",
       R"Y(apiVersion: contour.heptio.com/v1beta1
kind: IngressRoute
metadata: {name: root}
spec:
  virtualhost: {fqdn: blog.example.com}
  routes:
  - match: /
    delegate: {name: chidl}
---
apiVersion: contour.heptio.com/v1beta1
kind: IngressRoute
metadata: {name: child}
spec:
  routes:
  - match: /
    services: [{name: reviews, port: 9080}]
)Y",
       "v.yaml:8:15: error: IngressRoute default/root: spec.routes[0].delegate: IngressRoute "
       "default/chidl not found; did you mean child?"},
      {"IngressDelegationCycle",
       R"Y(apiVersion: contour.heptio.com/v1beta1
kind: IngressRoute
metadata: {name: root}
spec:
  virtualhost: {fqdn: blog.example.com}
  routes:
  - match: /
    delegate: {name: a}
---
apiVersion: contour.heptio.com/v1beta1
kind: IngressRoute
metadata: {name: a}
spec:
  routes:
  - match: /
    delegate: {name: a}
)Y",
       "v.yaml:16:15: error: IngressRoute default/a: spec.routes[0].delegate: delegation cycle: "
       "default/root -> default/a -> default/a"},
      {"IngressDelegateHasVirtualHost",
       R"Y(apiVersion: contour.heptio.com/v1beta1
kind: IngressRoute
metadata: {name: root}
spec:
  virtualhost: {fqdn: blog.example.com}
  routes:
  - match: /
    delegate: {name: other}
---
apiVersion: contour.heptio.com/v1beta1
kind: IngressRoute
metadata: {name: other}
spec:
  virtualhost: {fqdn: other.example.com}
  routes:
  - match: /
    services: [{name: reviews, port: 9080}]
)Y",
       "v.yaml:8:15: error: IngressRoute default/root: spec.routes[0].delegate: IngressRoute "
       "default/other has a virtualhost (other.example.com); only an object without one can be the "
       "target of delegate"},
      {"IngressServiceNotFound",
       R"Y(apiVersion: contour.heptio.com/v1beta1
kind: IngressRoute
metadata: {name: root}
spec:
  virtualhost: {fqdn: blog.example.com}
  routes:
  - match: /
    services: [{name: reveiws, port: 9080}]
)Y",
       "v.yaml:8:16: error: IngressRoute default/root: spec.routes[0].services[0].name: Service "
       "default/reveiws not found; did you mean reviews?"},
      {"IngressPortNotOnService",
       R"Y(apiVersion: contour.heptio.com/v1beta1
kind: IngressRoute
metadata: {name: root}
spec:
  virtualhost: {fqdn: blog.example.com}
  routes:
  - match: /
    services: [{name: reviews, port: 5}]
)Y",
       "v.yaml:8:38: error: IngressRoute default/root: spec.routes[0].services[0].port: port: 5 is "
       "not a port of Service default/reviews (ports: 9080); did you mean weight: 5?"},
      {"IngressOrphan",
       R"Y(apiVersion: contour.heptio.com/v1beta1
kind: IngressRoute
metadata: {name: orphan}
spec:
  routes:
  - match: /
    services: [{name: reviews, port: 9080}]
)Y",
       "v.yaml:1:1: warning: IngressRoute default/orphan: no root IngressRoute delegates to it "
       "(orphaned); ignored"},
  };
  return all;
}

class Validation : public ::testing::TestWithParam<Row> {};

TEST_P(Validation, ExactDiagnostic) {
  const Row& r = GetParam();
  Diagnostics diags = diagnose(r.yaml);
  bool found = false;
  for (const auto& d : diags) {
    found = found || d.format() == r.expected;
  }
  EXPECT_TRUE(found) << "expected: " << r.expected << "\ngot:\n" << formatDiagnostics(diags);
}

INSTANTIATE_TEST_SUITE_P(Rows, Validation, ::testing::ValuesIn(rows()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Validation, EveryRowIsADistinctDiagnostic) {
  std::set<std::string> seen;
  for (const Row& r : rows()) {
    EXPECT_TRUE(seen.insert(r.expected).second) << r.name << " repeats " << r.expected;
  }
}

// The inventory alone is clean: every row's finding comes from its own input.
TEST(Validation, InventoryAloneIsClean) {
  EXPECT_EQ(formatDiagnostics(diagnose("")), "");
}

// File-level findings: no object, no field, the path in place of a position.
TEST(Validation, FileLevelDiagnostics) {
  namespace fs = std::filesystem;
  std::string tmpl = (fs::temp_directory_path() / "veer-validation.XXXXXX").string();
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
  const fs::path dir = tmpl;
  fs::create_symlink(dir / "gone.yaml", dir / "dangling.yaml");
  LoadResult l = loadPaths({(dir / "missing.yaml").string(), dir.string()});
  EXPECT_EQ(formatDiagnostics(l.diags),
            (dir / "missing.yaml").string() + ": error: no such file or directory\n" +
                (dir / "dangling.yaml").string() + ": error: broken symlink\n");
  fs::remove_all(dir);
}

} // namespace
} // namespace veer
