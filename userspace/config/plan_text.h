#pragma once

// Plan as text: the stable rendering used by golden tests and `veerctl plan`, the
// diff between two plans (or a plan and the live maps), and the pieces `veerctl explain`
// (proxy/explain.h, a reading of the router) renders with.

#include <map>
#include <string>
#include <vector>

#include "config/match.h"
#include "config/model.h"
#include "config/plan.h"

namespace veer {

/** Stable, line-oriented text of a plan: every service port, its path, why, versions and rules. */
std::string renderPlan(const Plan& plan);

/** One line per rule: "spec.http[0]: headers[end-user] exact 'jason' -> v3=100". */
std::string renderRule(const PlanRoute& route);

/** One match entry's conditions: "uri prefix '/api' AND headers[end-user] exact 'jason'". */
std::string renderMatch(const HttpMatch& m);

/** Header operations: "request set x-a: '1'; response remove server". */
std::string renderHeaderOps(const HeaderActions& h);

/** "10.96.0.10:9080/tcp": a service address as plans and diffs key it. */
std::string serviceKey(const PlanService& s);

/** The service port a host names: "reviews" (in ns), "reviews.ns", "reviews.ns.svc...";
 * port 0 = the first. Null when the plan has none. */
const PlanService* findService(const Plan& plan, const std::string& host, const std::string& ns,
                               uint16_t port);

/** What a diff compares: per service address, the path and the version split. */
struct PlanSummary {
  struct Version {
    std::string subset;
    unsigned weight = 0;
    std::vector<std::string> backends; // "addr:port", sorted
  };
  struct Service {
    std::string id;   // "ns/name:port"
    std::string path; // "kernel", "l7", or "" when unknown (live maps)
    std::string why;  // first finding, for display
    std::vector<Version> versions;
  };
  std::map<std::string, Service> services; // by "addr:port/proto"

  /** An ingress virtual host: its rules in match order, split as renderRule writes them. */
  struct VirtualHost {
    std::string source; // "HTTPRoute shop/storefront"
    /** (the rule and its conditions, "-> destinations {header ops}"), in match order. */
    std::vector<std::pair<std::string, std::string>> rules;
  };
  std::map<std::string, VirtualHost> virtualHosts; // by host
  /** False for the live maps, which hold no virtual hosts: a diff then leaves them out. */
  bool virtualHostsKnown = true;
};

PlanSummary summarize(const Plan& plan);

struct PlanDiff {
  std::string text; // "+ added", "- removed", "~ changed" blocks, then a summary line
  size_t added = 0;
  size_t removed = 0;
  size_t changed = 0;
  bool changes() const { return added + removed + changed != 0; }
};

/**
 * before -> after. Stable: services in address order, versions in subset order, then
 * virtual hosts in host order (rules added, removed, re-weighted or reordered).
 */
PlanDiff diffPlans(const PlanSummary& before, const PlanSummary& after);

/** A request to explain (proxy/explain.h). Header names are matched case-insensitively. */
struct ExplainRequest {
  std::string host; // "reviews", "reviews.default.svc.cluster.local", ...
  std::string ns = "default";
  uint16_t port = 0; // 0 = the service's first port
  std::string method = "GET";
  std::string uri = "/";
  std::string authority; // "" = host
  std::string scheme = "http";
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::pair<std::string, std::string>> cookies;
  std::string fromPod; // "name" or "ns/name": source labels and ASM_TRAFFIC_TAG
};

struct Explanation {
  bool ok = false;  // false: the service was not found (text says why)
  std::string text; // which rule matched, why, and where the request goes
};

/**
 * The ingress virtual host (Contour, Gateway API) a request for req.host reaches (exact
 * host, then "*.domain" wildcards, then "*"), which of its rules matches (uri, method,
 * headers, query parameters) and which Service ports and weights it goes to. ok is false
 * when no virtual host serves req.host.
 */
Explanation explainVirtualHost(const Plan& plan, const ExplainRequest& req);

} // namespace veer
