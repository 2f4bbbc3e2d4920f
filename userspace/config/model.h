#pragma once

// The objects veer reads from Kubernetes YAML, as plain data with source positions.
// The loader fills them; validation and resolution turn them into a Plan (plan.h).

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "common/boxed.h"
#include "common/chunked_list.h"
#include "common/flat_map.h"
#include "common/net.h"
#include "common/result.h"
#include "common/str.h"
#include "common/thin_vector.h"

namespace veer {

/**
 * A file name, interned as a 16-bit number: every position in one file shares one string
 * for the life of the process (a config holds hundreds of thousands of positions and a
 * handful of files). Past 65,535 distinct names in one process, further names read as
 * "(too many file names)".
 */
class FileName {
public:
  FileName() = default;
  FileName(std::string_view name); // NOLINT: implicit, a name is a FileName
  FileName(const char* name) : FileName(std::string_view(name)) {}
  FileName(const std::string& name) : FileName(std::string_view(name)) {}

  const std::string& str() const;
  operator const std::string&() const { return str(); } // NOLINT: reads as the name
  bool empty() const { return id_ == 0; }
  void clear() { id_ = 0; }

  friend bool operator==(const FileName& a, const FileName& b) { return a.id_ == b.id_; }
  friend bool operator==(const FileName& a, const std::string& b) { return a.str() == b; }
  friend bool operator==(const FileName& a, const char* b) { return a.str() == b; }

private:
  uint16_t id_ = 0; // 0: no file
};

std::ostream& operator<<(std::ostream& os, const FileName& f);

/**
 * Where a YAML node came from: 8 bytes, as a config holds hundreds of thousands. line and
 * column are 1-based, 0 when unknown; a column past 65,535 (a long JSON line) is unknown.
 */
struct SourcePos {
  FileName file;
  uint16_t column = 0;
  uint32_t line = 0;

  SourcePos() = default;
  SourcePos(FileName f, uint32_t l, int c) : file(f), column(column16(c)), line(l) {}
  static constexpr uint16_t column16(int column) {
    return column > 0 && column <= 0xffff ? static_cast<uint16_t>(column) : 0;
  }
  /** "file:line:column", without the parts that are unknown. */
  std::string str() const;
  bool operator==(const SourcePos&) const = default;
};

/** One finding about the config: "file:line:col: Kind ns/name: field: message". */
struct Diagnostic {
  enum class Severity { kError, kWarning };
  Severity severity = Severity::kError;
  SourcePos pos;
  std::string object; // "VirtualService default/reviews", empty if the file itself
  std::string field;  // "spec.http[0].route[1].weight", empty if the whole object
  std::string message;

  std::string format() const;
};

using Diagnostics = std::vector<Diagnostic>;

bool hasErrors(const Diagnostics& diags);

/** Appends findings to a Diagnostics list, each distinct finding once. */
class DiagnosticSink {
public:
  explicit DiagnosticSink(Diagnostics& out) : out_(out) {}

  void error(const SourcePos& pos, std::string_view object, std::string_view field,
             const std::string& message);
  void warning(const SourcePos& pos, std::string_view object, std::string_view field,
               const std::string& message);
  /** A finding another sink collected (a part of a parallel build), unless already here. */
  void add(const Diagnostic& d) { report(d.severity, d.pos, d.object, d.field, d.message); }

private:
  void report(Diagnostic::Severity severity, const SourcePos& pos, std::string_view object,
              std::string_view field, const std::string& message);

  Diagnostics& out_;
  std::set<std::string> seen_; // formatted findings already reported
};

/** Levenshtein distance, for "did you mean" hints. */
size_t editDistance(const std::string& a, const std::string& b);

/** The candidate closest to word within 2 edits (a likely typo), or "". */
std::string closest(const std::string& word, const std::vector<std::string>& candidates);

/** Every diagnostic formatted, one per line. */
std::string formatDiagnostics(const Diagnostics& diags);

/** Label or annotation keys to values, sorted by key. */
using Labels = FlatMap<Str, Str>;

/** Kind, namespace ("default" when omitted) and name of a Kubernetes object. */
struct ObjectMeta {
  Str kind;
  Str apiVersion;
  Str ns;
  Str name;
  Labels labels;
  Labels annotations;
  Str uid; // metadata.uid; a pod's cgroup path carries it
  SourcePos pos;

  /** "Kind ns/name" */
  std::string ref() const;
};

struct ServicePort {
  Str name;
  uint16_t port = 0;
  uint8_t proto = 6;       // IPPROTO_TCP or IPPROTO_UDP
  uint16_t targetPort = 0; // 0 when targetPortName is used
  Str targetPortName;      // named container port
  SourcePos pos;
};

struct Service {
  ObjectMeta meta;
  ThinVector<IpAddr> clusterIPs; // empty for headless / none
  ThinVector<ServicePort> ports;
  Labels selector;
  bool clientIpAffinity = false;           // spec.sessionAffinity: ClientIP
  std::optional<uint32_t> affinityTimeout; // sessionAffinityConfig.clientIP.timeoutSeconds
};

struct Pod {
  ObjectMeta meta;
  ThinVector<IpAddr> ips;
  bool ready = false;
  FlatMap<Str, uint16_t> namedPorts; // containerPort name -> port (TCP and UDP alike)
};

struct EndpointSlice {
  struct Endpoint {
    ThinVector<IpAddr> addresses;
    bool ready = true; // conditions.ready, unset means ready
    Str podName;       // targetRef.name when targetRef.kind == Pod
  };
  struct Port {
    Str name;
    uint16_t port = 0;
    uint8_t proto = 6;
  };
  ObjectMeta meta;
  Str serviceName; // label kubernetes.io/service-name
  ThinVector<Endpoint> endpoints;
  ThinVector<Port> ports;
};

/** DestinationRule trafficPolicy.loadBalancer. */
struct LoadBalancer {
  enum class Hash { kNone, kCookie, kHeader, kSourceIp, kQueryParam };
  Str simple; // ROUND_ROBIN, LEAST_REQUEST, RANDOM, PASSTHROUGH; "" when consistentHash
  Hash hash = Hash::kNone;
  Str hashKey;    // cookie, header or query parameter name
  Str cookiePath; // httpCookie.path
  Str cookieTtl;  // httpCookie.ttl, as written ("0s")
  SourcePos pos;
  Str field; // "spec.trafficPolicy.loadBalancer"
};

/** Istio DestinationRule subset. */
struct Subset {
  Str name;
  Labels labels;
  Boxed<LoadBalancer> loadBalancer; // subset trafficPolicy, overrides the rule's
  SourcePos pos;
};

struct DestinationRule {
  ObjectMeta meta;
  Str host;
  SourcePos hostPos;
  ThinVector<Subset> subsets;
  Boxed<LoadBalancer> loadBalancer;        // spec.trafficPolicy.loadBalancer
  std::optional<uint32_t> affinityTimeout; // annotation veer.io/affinity-timeout, seconds
  std::optional<uint32_t> recycleGrace;    // annotation veer.io/recycle-grace, seconds
};

/** DestinationRule annotation: how long an idle affine client keeps its backend ("3h", "0s"). */
inline constexpr const char* kAffinityTimeoutAnnotation = "veer.io/affinity-timeout";
/** DestinationRule annotation: opt in to socket recycling, destroying after this grace ("10s"). */
inline constexpr const char* kRecycleGraceAnnotation = "veer.io/recycle-grace";

/** Istio StringMatch: exact, prefix or regex (RE2, full match; checked at load). */
struct StringMatch {
  enum class Op { kExact, kPrefix, kRegex };
  Op op = Op::kExact;
  Str value;
  SourcePos pos;

  /** "exact", "prefix" or "regex" */
  const char* opName() const;
};

/** A named StringMatch: a header or query parameter condition. */
struct KeyMatch {
  Str key; // header names lowercased, as Istio matches them
  StringMatch match;
  bool present = false; // Istio `{}`: the key must be present, any value
};

/** One entry of Istio HTTPRoute.match[]: all its conditions must hold (AND). */
struct HttpMatch {
  Str name;
  Boxed<StringMatch> uri; // the four are on the heap: most matches set one or none
  Boxed<StringMatch> scheme;
  Boxed<StringMatch> method;
  Boxed<StringMatch> authority;
  ThinVector<KeyMatch> headers;
  ThinVector<KeyMatch> withoutHeaders; // none of these may match
  ThinVector<KeyMatch> queryParams;
  Labels sourceLabels; // the client pod's labels
  Str sourceNamespace; // the client pod's namespace
  ThinVector<Str> gateways;
  uint16_t port = 0; // 0 = any
  bool ignoreUriCase = false;
  SourcePos pos;
  Str field; // "spec.http[0].match[1]"

  /** True when the match needs request bytes (anything but port/source/gateway conditions). */
  bool needsRequest() const;
  /** True when no condition besides port is set. */
  bool onlyPort() const;
};

/** Header manipulation: Istio Headers.HeaderOperations (kept in file order). */
struct HeaderOps {
  ThinVector<std::pair<Str, Str>> set;
  ThinVector<std::pair<Str, Str>> add;
  ThinVector<Str> remove;
  bool empty() const { return set.empty() && add.empty() && remove.empty(); }
  bool operator==(const HeaderOps&) const = default;
};

/** Istio Headers: request and response operations. */
struct HeaderActions {
  HeaderOps request;
  HeaderOps response;
  SourcePos pos;
  bool empty() const { return request.empty() && response.empty(); }
  bool operator==(const HeaderActions&) const = default;
};

/** ASM RouteDestination.fallback: where to go when the subset cannot serve. */
struct Fallback {
  ThinVector<Str> cases; // "noinstances", "noavailabled"
  Str host;
  Str subset;
  uint16_t port = 0;
  SourcePos pos;
  bool operator==(const Fallback&) const = default;
};

/** Istio HTTPRouteDestination / RouteDestination. */
struct RouteDestination {
  Str host;
  Str subset;                    // "$trafficLabel": the subset named by an ASM TrafficLabel
  uint16_t port = 0;             // destination.port.number, 0 when unset
  std::optional<int64_t> weight; // unset: 100 if the only destination
  Sparse<HeaderActions> headers; // per-destination header operations (HTTP only)
  Boxed<Fallback> fallback;
  SourcePos pos;
  Str field;         // "spec.http[0].route[1]"
  SourcePos portPos; // where the port was written (Contour services[].port), for its diagnostics
  bool operator==(const RouteDestination&) const = default;
};

/**
 * Envoy's retry conditions (x-envoy-retry-on) that Istio's retries.retryOn names, as bits
 * of RetryOn::conditions. Only what an HTTP/1.1 upstream can signal has a bit; the
 * HTTP/2 and gRPC conditions are accepted (Istio's default names some) and do nothing.
 */
namespace retry_on {
inline constexpr uint32_t k5xx = 1u << 0;            // any 5xx, or no response at all
inline constexpr uint32_t kGatewayError = 1u << 1;   // 502, 503, 504, or no response at all
inline constexpr uint32_t kReset = 1u << 2;          // no response: reset, closed, per-try timeout
inline constexpr uint32_t kConnectFailure = 1u << 3; // connect refused, unreachable, timed out
inline constexpr uint32_t kRetriable4xx = 1u << 4;   // 409
inline constexpr uint32_t kStatusCodes = 1u << 5;    // retriable-status-codes: RetryOn::statuses
inline constexpr uint32_t kResetBeforeRequest = 1u << 6; // a reset before any request byte went out
} // namespace retry_on

/** A parsed retries.retryOn. */
struct RetryOn {
  uint32_t conditions = 0;        // retry_on bits
  std::vector<uint16_t> statuses; // retriable-status-codes, sorted
  bool operator==(const RetryOn&) const = default;
};

/**
 * Reads retryOn as Istio does: comma-separated Envoy conditions, and HTTP status codes
 * (100..599), which imply retriable-status-codes. The error names the first entry that
 * is neither.
 */
Result<RetryOn> parseRetryOn(std::string_view text);

/** Istio's policy for a route without retries, and for an unset retryOn:
 * "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes" with 503. */
RetryOn defaultRetryOn();

/** Istio's default retries.attempts. */
inline constexpr int kDefaultRetryAttempts = 2;

/** Istio HTTPRedirect.redirectCode when unset. */
inline constexpr int kDefaultRedirectCode = 301;
/** The largest directResponse body veer keeps (Istio's limit for body.string). */
inline constexpr size_t kMaxDirectResponseBody = 1 << 20;

/** The L7-only actions of an HTTP rule, kept for the proxy. */
struct RouteActions {
  std::string rewriteUri;       // rewrite.uri
  std::string rewriteAuthority; // rewrite.authority
  std::string timeout;          // "5s", as written
  int64_t retryAttempts = -1;   // retries.attempts, -1 when unset
  std::string retryPerTryTimeout;
  std::string retryOn;
  Boxed<RouteDestination> mirror;
  double mirrorPercent = -1; // mirrorPercentage.value, -1 when unset (Istio: 100)
  double faultDelayPercent = -1;
  std::string faultDelay; // fault.delay.fixedDelay
  double faultAbortPercent = -1;
  int64_t faultAbortStatus = 0; // fault.abort.httpStatus
  std::string redirect;         // "uri=...,authority=..." (the rule answers itself)
  int64_t redirectCode = 0;     // redirect.redirectCode, 0 when unset (301)
  int64_t directResponseStatus = 0;
  std::string directResponseBody; // directResponse.body.string
  bool empty() const;
  bool operator==(const RouteActions&) const = default;
};

/** Istio Delegate: an http rule hands its traffic to another VirtualService's rules. */
struct Delegate {
  Str name;
  Str ns; // "" = the VirtualService's namespace
  SourcePos pos;
};

/** Istio HTTPRoute or TCPRoute. match[] entries are ORed; rules are tried in order. */
struct Route {
  Str name;
  ThinVector<HttpMatch> matches; // empty = always
  ThinVector<RouteDestination> destinations;
  Sparse<HeaderActions> headers; // rule-level header operations
  Sparse<RouteActions> actions;
  Boxed<Delegate> delegate;
  SourcePos pos;
  Str field; // "spec.http[0]"
  /**
   * Gateway API only: the precedence of the rule's (single) match, compared
   * lexicographically, higher first: path kind (3 Exact, 2 RegularExpression, 1 PathPrefix),
   * path length, method (0/1), header count, query parameter count. Orders the rules of
   * several HTTPRoutes attached to one parent. Empty for other formats.
   */
  ThinVector<size_t> precedence;

  /** True when the rule applies to every request on port (no match, or a port-only match). */
  bool unconditionalFor(uint16_t port) const;
};

struct VirtualService {
  ObjectMeta meta;
  ThinVector<Str> hosts;         // empty for a delegate VirtualService
  ThinVector<SourcePos> hostPos; // position of each hosts[] entry (same length as hosts)
  /** Field of each hosts[] entry as its format spells it ("spec.parentRefs[0].name" for an
   * HTTPRoute); empty = "spec.hosts[i]". */
  ThinVector<Str> hostFields;
  ThinVector<Str> gateways;
  ThinVector<Route> http;
  ThinVector<Route> tcp;
  Str tlsSecret; // Contour spec.virtualhost.tls.secretName ("" otherwise)
};

/** Istio Gateway: kept so VirtualServices can name it; veer routes mesh traffic only. */
struct Gateway {
  struct Server {
    uint16_t port = 0;
    Str portName;
    Str protocol;
    ThinVector<Str> hosts;
    SourcePos pos;
  };
  ObjectMeta meta;
  Labels selector;
  ThinVector<Server> servers;
};

/**
 * ASM TrafficLabel (istio.alibabacloud.com/v1beta1): where a traffic label's value
 * comes from, tried in order: "$getContext(x-request-id)" (a request header),
 * "$(localLabel)" (the client pod's ASM_TRAFFIC_TAG label), or a literal.
 */
struct TrafficLabel {
  struct Source {
    enum class Kind { kContext, kLocalLabel, kLiteral };
    Kind kind = Kind::kLiteral;
    Str value; // header name, label name (ASM_TRAFFIC_TAG) or literal value
    SourcePos pos;
  };
  struct Label {
    Str name; // "trafficLabel", used as subset: $trafficLabel
    ThinVector<Source> valueFrom;
    SourcePos pos;
    Str field;
  };
  ObjectMeta meta;
  Labels workloadSelector; // empty = every workload in the namespace (or mesh for istio-system)
  ThinVector<Label> labels;
  ThinVector<Str> attachTo;
  Str protocols;
};

/** The pod label ASM reads for $(localLabel). */
inline constexpr const char* kAsmTrafficTag = "ASM_TRAFFIC_TAG";

/**
 * Relative weights as percents summing to exactly 100 (largest remainder; ties to the
 * earlier entry). All zero (or empty) = an even split. Contour and Gateway API weights.
 */
std::vector<int64_t> toPercent(const std::vector<int64_t>& weights);

/** Everything read from a set of files. */
struct Config {
  ChunkedList<Service> services;
  ChunkedList<Pod> pods;
  ChunkedList<EndpointSlice> endpointSlices;
  ChunkedList<DestinationRule> destinationRules;
  ChunkedList<VirtualService> virtualServices;
  ChunkedList<Gateway> gateways;
  ChunkedList<TrafficLabel> trafficLabels;
  /**
   * Ingress routing objects mapped onto the VirtualService shape: Contour IngressRoute
   * (contour.heptio.com/v1beta1) and HTTPProxy (projectcontour.io/v1). meta.kind keeps the
   * source kind. hosts = [virtualhost.fqdn] for a root, empty for a delegated/included
   * child; http[] = routes (uri prefix matches, weighted destinations to Services in the
   * object's namespace, as Contour writes them: weights relative, unset = unweighted) and,
   * for HTTPProxy, includes[] as delegate rules after the routes. Also Gateway API
   * HTTPRoutes attached to a Gateway (hosts = spec.hostnames or "*"; rules already in
   * precedence order, weights already percents, destination hosts "name.ns"); an HTTPRoute
   * attached to Services (GAMMA mesh) is in virtualServices. Resolved by ingress.cpp.
   */
  ChunkedList<VirtualService> ingressRoutes;
};

} // namespace veer
