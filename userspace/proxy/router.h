#pragma once

// The L7 routing decision for one request: veer-proxy's only view of the routing
// model. The agent compiles its Plan into a RouteTable (fromPlan), writes it as JSON
// next to the proxy (toJson, atomically renamed), and the proxy loads it (fromJson).
// The proxy never reads YAML. Three rooms behind this header: router_compile.cpp
// (plan -> table), router.cpp (route() and trace()), route_table_json.cpp (the JSON
// schema, versioned: route_table_json.h).
//
// A RouteTable is immutable once built, except for its per-route counters (atomics).
// The proxy holds a shared_ptr to the table a request was routed with until that
// request finishes, so a reload never changes an in-flight request: new requests see
// the new table, in-flight ones finish on the old.
//
// Everything a Decision points to lives in the table that produced it.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/net.h"
#include "common/result.h"
#include "config/match.h"
#include "config/plan.h"

namespace veer::proxy {

struct RouteSpec; // the table as data (router_spec.h)

/** One request or response header as the engine parsed it ({name, value}, names in any
 * case): the matcher's type (config/match.h), so the router matches the engine's headers
 * without copying them. */
using HeaderField = veer::HeaderField;

/** What the router reads of a request. Views into the engine's buffers, valid during route(). */
struct RequestHead {
  std::string_view method; // "GET"
  std::string_view target; // request-target as sent: origin-form "/p?q" (or absolute-form)
  std::string_view host;   // Host header value (":authority"), "" when absent
  std::span<const HeaderField> headers; // every header, in order, as received
};

/** Who sent a request and where it was going. */
struct Origin {
  IpAddr client;            // peer address of the accepted connection (the client pod)
  IpAddr service;           // SO_ORIGINAL_DST: the service address the client connected to
  uint16_t servicePort = 0; // host order
};

struct Endpoint {
  IpAddr addr;
  uint16_t port = 0; // host order
  std::string pod;   // "ns/name", for logs
};

/** A header edit. Applied in order: kSet replaces every value, kAdd appends, kRemove drops. */
struct HeaderEdit {
  enum class Op : uint8_t { kSet, kAdd, kRemove };
  Op op = Op::kSet;
  std::string name; // lowercase
  std::string value;
};

/** A Decision timeout that Istio wrote as 0s: no timeout. As a deadline in milliseconds it
 * is ~49 days away, so an engine that adds it to a 64-bit clock needs no special case. */
inline constexpr uint32_t kNoTimeout = UINT32_MAX;

/** What to do with one request. */
struct Decision {
  enum class Kind : uint8_t {
    kForward, // send to one of endpoints
    kRespond, // answer locally with status (no route, no endpoint, fault abort, redirect)
  };
  Kind kind = Kind::kRespond;

  // kRespond
  int status = 404;
  std::string_view reason;   // short text for the body and logs: "no route", "no healthy upstream"
  std::string_view location; // Location header of a redirect, "" otherwise (see route())
  /** Istio directResponse: body (body.string, maybe empty) is the whole answer, as is. */
  bool direct = false;
  std::string_view body;

  // kForward
  std::span<const Endpoint>
      endpoints;    // the chosen subset's endpoints (after fallback), never empty
  size_t first = 0; // index into endpoints to try first; a connect failure moves on (first+1)%n...
  /** ASM fallback case noavailabled: when no endpoint above accepts a connection, try these
   * (the fallback subset's, in order from fallbackFirst); empty when there is no such fallback. */
  std::span<const Endpoint> fallbackEndpoints;
  size_t fallbackFirst = 0;
  std::string_view fallbackCluster; // "default/reviews:9080 prod", for logs and stats
  /** Istio mirror (this request is in mirrorPercentage): a copy goes to mirrorEndpoints
   * [mirrorFirst], its answer discarded; empty = no copy. */
  std::span<const Endpoint> mirrorEndpoints;
  size_t mirrorFirst = 0;
  std::string_view mirrorCluster;
  std::span<const HeaderEdit> requestEdits;  // rule-level then destination-level, in order
  std::span<const HeaderEdit> responseEdits; // rule-level then destination-level, in order
  /** Full-link gray: set this header to tagValue on the upstream request when tagValue != "". */
  std::string_view tagHeader;
  std::string_view tagValue; // a view into the request (a header value) or the table (a pod label)
  /** Istio rewrite.uri: target becomes rewritePath + target.substr(rewriteFrom) when set. */
  std::string_view rewritePath;
  size_t rewriteFrom = 0;
  std::string_view rewriteAuthority; // Host of the upstream request when non-empty
  /** Whole-request timeout: 0 = unset (the proxy's default), kNoTimeout = Istio's
   * `timeout: 0s`, which turns the route's timeout off. */
  uint32_t timeoutMs = 0;
  /** retries.attempts: retries after the first attempt; -1 = unset, the proxy's default
   * (Istio's 2); 0 = none (Istio: `attempts: 0`, or a retries block without attempts). */
  int retries = -1;
  /** retries.perTryTimeout: 0 = unset (none), kNoTimeout = `0s` (none). Runs from the later
   * of the request's end and the attempt's start, until the response head. */
  uint32_t perTryTimeoutMs = 0;
  uint32_t delayMs = 0; // fault.delay: hold the request this long first, 0 = none
  /** retries.retryOn as retry_on bits (config/model.h); Istio's default when unset. */
  uint32_t retryOn = 0;
  std::span<const uint16_t> retryStatuses; // retriable-status-codes (sorted)
  /** Add as a Set-Cookie response header when non-empty: the cookie a consistentHash
   * httpCookie with a ttl generates when the request has none (as Envoy does), so the
   * client's next requests hash to the same endpoint. Per-thread buffer, like location. */
  std::string_view setCookie;

  // both
  std::string_view cluster; // "default/reviews:9080 v2" (service and subset), for logs and stats
  std::string_view rule;    // "VirtualService default/reviews spec.http[0]", for logs and explain
};

/**
 * How route() reads one request, in full, for `veerctl explain`: every rule passed over
 * and why, the rule that matches, and where each of its destinations resolves (lane,
 * ASM fallback, endpoints). The same code as route(), so the two cannot disagree; it
 * moves no counter (route() picks among destinations by weight, trace lists them all).
 * Views into the request and the table.
 */
struct Trace {
  bool service = false;            // the origin's service address is in the table
  std::vector<std::string> whyNot; // per rule passed over, in order: why no entry held
  int rule = -1;                   // the matching rule's index in the service's routes; -1 none
  const HttpMatch* hit = nullptr;  // the entry that held; null for a rule without entries
  struct Destination {
    std::string_view subset; // as written: "v2", "" (every endpoint), "$trafficLabel"
    uint8_t weight = 0;
    LaneValue lane;           // a $label destination's lane (value "" when none)
    bool defined = false;     // the service has the subset named (the lane's, for $label)
    bool fellBack = false;    // ASM noinstances: the fallback subset serves instead
    std::string_view serving; // the subset that serves, "" = every endpoint (when cluster != "")
    std::string_view cluster; // its name as Decision.cluster has it; "" = none (503)
    std::span<const Endpoint> endpoints; // of cluster (empty: 503 no healthy upstream)
    std::string_view standby; // noavailabled: the cluster tried when endpoints all refuse
  };
  std::vector<Destination> destinations; // of the matched rule, in order
};

/** Options the agent compiles into the table. */
struct RouteOptions {
  /** Header carrying the full-link gray tag to the next hop (read first, then set upstream). */
  std::string tagHeader = kDefaultTagHeader; // x-asm-prefer-tag
};

class RouteTable {
public:
  /** Compile the L7 services of a plan (path == kL7) and the pods they need (labels by IP).
   * A plan the table cannot take (see compilePlan) gives an empty table: every request 404. */
  static std::shared_ptr<RouteTable> fromPlan(const Plan& plan, const Config& config,
                                              const RouteOptions& options);
  /** fromPlan, but say why a resolved plan cannot be compiled (a value the loader let
   * through that the router cannot read), so the agent keeps the last good table. */
  static Result<std::shared_ptr<RouteTable>> compilePlan(const Plan& plan, const Config& config,
                                                         const RouteOptions& options);
  /** Parse what toJson wrote. Errors name the JSON path ("services[2].routes[0]..."). */
  static Result<std::shared_ptr<RouteTable>> fromJson(std::string_view json);
  std::string toJson() const;

  /**
   * Route one request. Thread-safe (counters are atomics); allocates nothing in the steady
   * state. A redirect's location and a generated setCookie are built in per-thread buffers:
   * they stay valid until the next route() on the same thread.
   */
  Decision route(const RequestHead& req, const Origin& origin) const;
  /** route()'s reading of a request, every rule and destination spelled out (see Trace). */
  Trace trace(const RequestHead& req, const Origin& origin) const;

  /** Number of L7 service addresses (for logs and readiness). */
  size_t serviceCount() const;

  ~RouteTable();

private:
  RouteTable();
  /** The table a spec compiles to (router_compile.cpp), as fromPlan and fromJson build. */
  static Result<std::shared_ptr<RouteTable>> fromSpec(RouteSpec spec);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace veer::proxy
