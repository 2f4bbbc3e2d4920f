// The router proper: one request against a compiled route table (route()), and the same
// reading spelled out for `veerctl explain` (trace()). The table is built in
// router_compile.cpp and read from JSON in route_table_json.cpp.

#include "proxy/router.h"

#include <algorithm>
#include <cstdio>

#include "common/hash.h"
#include "common/strings.h"
#include "proxy/router_table.h"

namespace veer::proxy {
namespace {

using Cluster = CompiledTable::Cluster;
using Dest = CompiledTable::Dest;
using Rule = CompiledTable::Rule;
using Service = CompiledTable::Service;
using Pod = CompiledTable::Pod;

/** Whether the n-th request (0-based) is in a share of ppm: exactly ppm of every 10^6. */
bool inShare(std::atomic<uint64_t>& counter, uint32_t share) {
  if (share >= 1000000) {
    return true;
  }
  if (share == 0) {
    return false;
  }
  uint64_t n = counter.fetch_add(1, std::memory_order_relaxed) % 1000000;
  return (n + 1) * share / 1000000 > n * share / 1000000;
}

/** What Istio matching reads of req; client is filled when the table knows the peer. */
RequestView requestView(const CompiledTable& t, const RequestHead& req, const Origin& origin,
                        ClientView& client) {
  RequestView rv;
  rv.method = req.method;
  splitTarget(req.target, rv);
  rv.authority = req.host;
  rv.port = origin.servicePort;
  rv.headers = req.headers;
  if (auto pit = t.pods.find(origin.client); pit != t.pods.end()) {
    client.ns = pit->second.ns;
    client.name = pit->second.name;
    client.labels = &pit->second.labels;
    rv.client = &client;
  }
  return rv;
}

/**
 * The first rule with a matching entry (entries ORed; no entries = always) and the entry
 * that held (null for no entries). With whyNot, each rule passed over appends one line of
 * why (for explain); without, nothing is allocated.
 */
const Rule* firstMatch(const Service& svc, const RequestView& rv, const CompiledMatch** hit,
                       std::vector<std::string>* whyNot = nullptr) {
  *hit = nullptr;
  for (const auto& r : svc.rules) {
    if (r->matches.empty()) {
      return r.get();
    }
    std::string why;
    for (const CompiledMatch& m : r->matches) {
      std::string reason;
      if (m.matches(rv, whyNot != nullptr ? &reason : nullptr)) {
        *hit = &m;
        return r.get();
      }
      if (whyNot != nullptr) {
        why += (why.empty() ? "" : "; ") + m.source().field + ": " + reason;
      }
    }
    if (whyNot != nullptr) {
      whyNot->push_back(std::move(why));
    }
  }
  return nullptr;
}

/** Where one destination of a rule sends a request: lane, then ASM fallback. */
struct Resolved {
  LaneValue lane;   // a $label destination's lane (value "" when none)
  int chosen = -1;  // the destination's cluster before any fallback; -1: the lane names none
  int cluster = -1; // the cluster that serves (fallback applied); -1: none
  int standby = -1; // noavailabled: the fallback cluster to try when cluster refuses
};

Resolved resolveDest(const CompiledTable& t, const Service& svc, const Dest& dest,
                     const RequestView& rv) {
  Resolved r;
  r.chosen = dest.cluster;
  if (dest.label >= 0) {
    r.lane = laneValue(svc.labels[dest.label], rv, t.tagHeader, t.lanes);
    // No lane and no fallback: the whole service, as the kernel path does.
    r.chosen = r.lane.value.empty()
                   ? (dest.fallback >= 0 ? -1 : findCluster(svc, dest.service, "", dest.port))
                   : findCluster(svc, dest.service, r.lane.value, dest.port);
  }
  r.cluster = r.chosen;
  bool noInstances = r.chosen < 0 || svc.clusters[r.chosen]->endpoints.empty();
  if (noInstances && dest.fallback >= 0 && (dest.fallbackNoInstances || r.chosen < 0)) {
    r.cluster = dest.fallback; // ASM noinstances; a lane this service lacks always falls back
  } else if (!noInstances && dest.fallback >= 0 && dest.fallbackNoAvailable &&
             r.chosen != dest.fallback && !svc.clusters[dest.fallback]->endpoints.empty()) {
    r.standby = dest.fallback;
  }
  return r;
}

} // namespace

Decision RouteTable::route(const RequestHead& req, const Origin& origin) const {
  Decision d;
  d.kind = Decision::Kind::kRespond;
  d.status = 404;
  d.reason = "no route";
  auto sit = impl_->services.find(std::make_pair(origin.service, origin.servicePort));
  if (sit == impl_->services.end()) {
    return d;
  }
  const Service& svc = sit->second;
  d.cluster = svc.id;

  ClientView client;
  RequestView rv = requestView(*impl_, req, origin, client);
  const CompiledMatch* hit = nullptr;
  const Rule* rule = firstMatch(svc, rv, &hit);
  if (rule == nullptr) {
    return d; // Envoy's NR: 404
  }
  d.rule = rule->name;
  if (rule->abortStatus != 0 && inShare(rule->abortCount, rule->abortPpm)) {
    d.status = rule->abortStatus;
    d.reason = "fault abort";
    return d;
  }
  if (rule->delayMs != 0 && inShare(rule->delayCount, rule->delayPpm)) {
    d.delayMs = rule->delayMs;
  }
  if (rule->redirect) {
    thread_local std::string location;
    location.clear();
    if (!rule->redirectAuthority.empty() || !rule->redirectScheme.empty()) {
      location.append(rule->redirectScheme.empty() ? rv.scheme : rule->redirectScheme)
          .append("://")
          .append(rule->redirectAuthority.empty() ? rv.authority : rule->redirectAuthority);
    }
    if (!rule->redirectUri.empty()) {
      location.append(rule->redirectUri);
    } else {
      location.append(rv.path);
      if (!rv.query.empty()) {
        location.append("?").append(rv.query);
      }
    }
    d.status = rule->redirectCode;
    d.reason = "redirect";
    d.location = location;
    return d;
  }
  if (rule->directStatus != 0) {
    d.status = rule->directStatus;
    d.reason = "direct response";
    d.direct = true;
    d.body = rule->directBody;
    return d;
  }

  uint8_t slot =
      rule->slots[rule->next.fetch_add(1, std::memory_order_relaxed) % rule->slots.size()];
  if (slot >= rule->dests.size()) {
    d.status = 503;
    d.reason = "no healthy upstream"; // every destination has weight 0
    return d;
  }
  const Dest& dest = rule->dests[slot];

  // The lane: the request's tag header, else (for a $label destination) its sources.
  std::string_view tag;
  if (auto t = rv.firstHeader(impl_->tagHeader); t && !t->empty()) {
    tag = *t;
  }
  Resolved to = resolveDest(*impl_, svc, dest, rv);
  if (dest.label >= 0) {
    tag = to.lane.value;
  }
  int ci = to.cluster;
  bool noInstances = ci < 0 || svc.clusters[ci]->endpoints.empty();
  if (to.standby >= 0) {
    const Cluster& fb = *svc.clusters[to.standby];
    d.fallbackEndpoints = fb.endpoints;
    d.fallbackFirst = fb.next.fetch_add(1, std::memory_order_relaxed) % fb.endpoints.size();
    d.fallbackCluster = fb.name;
  }
  if (!tag.empty()) {
    d.tagHeader = impl_->tagHeader;
    d.tagValue = tag;
  }
  if (noInstances) {
    if (ci >= 0) {
      d.cluster = svc.clusters[ci]->name;
    }
    d.status = 503;
    d.reason = "no healthy upstream";
    return d;
  }
  const Cluster& c = *svc.clusters[ci];
  d.kind = Decision::Kind::kForward;
  d.status = 0;
  d.reason = "";
  d.cluster = c.name;
  d.endpoints = c.endpoints;
  std::optional<std::string_view> hashKey;
  switch (c.hash) {
  case LoadBalancer::Hash::kHeader:
    hashKey = rv.header(c.hashKey);
    break;
  case LoadBalancer::Hash::kCookie:
    hashKey = rv.cookie(c.hashKey);
    if (!hashKey && c.cookieAttrs) {
      // No cookie yet: generate one as Envoy does, a hash of the client and the service
      // address, and hash this request by it so the next ones (carrying it) stay put.
      thread_local std::string cookie;
      uint64_t h = fnv1a64(origin.client.bytes.data(), origin.client.bytes.size());
      h = fnv1a64(origin.service.bytes.data(), origin.service.bytes.size(), h);
      h = fnv1a64(&origin.servicePort, sizeof(origin.servicePort), h);
      char hex[17];
      std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(h));
      cookie.assign(c.hashKey).append("=").append(hex).append(*c.cookieAttrs);
      hashKey = std::string_view(cookie).substr(c.hashKey.size() + 1, 16);
      d.setCookie = cookie;
    }
    break;
  case LoadBalancer::Hash::kQueryParam:
    hashKey = rv.queryParam(c.hashKey);
    break;
  case LoadBalancer::Hash::kSourceIp:
    hashKey = std::string_view(reinterpret_cast<const char*>(origin.client.bytes.data()),
                               origin.client.bytes.size());
    break;
  case LoadBalancer::Hash::kNone:
    break;
  }
  if (hashKey && !c.ring.empty()) {
    d.first = c.ring[fnv1a64(hashKey->data(), hashKey->size()) % c.ring.size()];
  } else {
    d.first = c.next.fetch_add(1, std::memory_order_relaxed) % c.endpoints.size();
  }
  d.requestEdits = dest.requestEdits;
  d.responseEdits = dest.responseEdits;
  if (!rule->rewritePath.empty()) {
    // Istio rewrite.uri: a prefix match's matched prefix is replaced; an exact or regex
    // match replaces the whole path; no uri condition is Envoy's prefix "/".
    // The path is a view into the target, except for an absolute-form target without one
    // ("http://shop"), where it is the literal "/": then everything after is kept (nothing).
    auto at = reinterpret_cast<uintptr_t>(rv.path.data());
    auto begin = reinterpret_cast<uintptr_t>(req.target.data());
    bool inTarget = at >= begin && at + rv.path.size() <= begin + req.target.size();
    size_t pathAt = inTarget ? static_cast<size_t>(at - begin) : req.target.size();
    size_t replaced = 1;
    const CompiledStringMatch* uri = hit != nullptr ? hit->uri() : nullptr;
    if (uri != nullptr) {
      replaced = uri->source().op == StringMatch::Op::kPrefix ? uri->source().value.size()
                                                              : rv.path.size();
    }
    d.rewritePath = rule->rewritePath;
    d.rewriteFrom = inTarget ? pathAt + std::min(replaced, rv.path.size()) : pathAt;
  }
  d.rewriteAuthority = rule->rewriteAuthority;
  d.timeoutMs = rule->timeoutMs;
  d.retries = rule->retries;
  d.perTryTimeoutMs = rule->perTryTimeoutMs;
  d.retryOn = rule->retryOn.conditions;
  d.retryStatuses = rule->retryOn.statuses;
  if (rule->mirror >= 0) {
    const Cluster& m = *svc.clusters[rule->mirror];
    if (!m.endpoints.empty() && inShare(rule->mirrorCount, rule->mirrorPpm)) {
      d.mirrorEndpoints = m.endpoints;
      d.mirrorFirst = m.next.fetch_add(1, std::memory_order_relaxed) % m.endpoints.size();
      d.mirrorCluster = m.name;
    }
  }
  return d;
}

Trace RouteTable::trace(const RequestHead& req, const Origin& origin) const {
  Trace t;
  auto sit = impl_->services.find(std::make_pair(origin.service, origin.servicePort));
  if (sit == impl_->services.end()) {
    return t;
  }
  t.service = true;
  const Service& svc = sit->second;
  ClientView client;
  RequestView rv = requestView(*impl_, req, origin, client);
  const CompiledMatch* hit = nullptr;
  const Rule* rule = firstMatch(svc, rv, &hit, &t.whyNot);
  if (rule == nullptr) {
    return t;
  }
  t.rule = static_cast<int>(t.whyNot.size()); // every rule before it was passed over
  t.hit = hit != nullptr ? &hit->source() : nullptr;
  const Route& written = *impl_->spec.services[svc.specIndex].routes[t.rule].rule;
  for (size_t i = 0; i < rule->dests.size(); ++i) {
    const Dest& dest = rule->dests[i];
    Resolved to = resolveDest(*impl_, svc, dest, rv);
    Trace::Destination out;
    out.subset = written.destinations[i].subset;
    out.weight = dest.weight;
    out.lane = to.lane;
    out.defined = to.chosen >= 0;
    out.fellBack = to.cluster >= 0 && to.cluster != to.chosen;
    if (to.cluster >= 0) {
      out.serving = svc.clusters[to.cluster]->subset;
      out.cluster = svc.clusters[to.cluster]->name;
      out.endpoints = svc.clusters[to.cluster]->endpoints;
    }
    if (to.standby >= 0) {
      out.standby = svc.clusters[to.standby]->name;
    }
    t.destinations.push_back(out);
  }
  return t;
}

} // namespace veer::proxy
