#pragma once

// Istio HTTP request matching, the one implementation: veer-proxy's router and
// `veerctl explain` both match through CompiledMatch over a neutral RequestView.
//
// Semantics (Istio HTTPMatchRequest as Envoy applies it):
// - conditions inside one match entry are ANDed; entries of match[] are ORed; the
//   first rule with a matching entry wins (the caller walks the rules).
// - uri matches the path without the query string; ignoreUriCase makes exact and
//   prefix (and regex) case-insensitive.
// - headers: names case-insensitive; several fields of one name are matched as their
//   values joined by "," ("; " for cookie, as HTTP/2 and Envoy join cookies). A cookie
//   is matched as Istio users write it: a headers.cookie condition, usually a regex.
// - `{}` (present) needs the header or query parameter present with any value.
// - withoutHeaders: the entry fails if any of its conditions matches (present: if the
//   header is there at all).
// - queryParams: the first parameter of that name, value as sent (not decoded).
// - port: the service port the client connected to. sourceLabels/sourceNamespace: the
//   client pod; unknown client = no match. gateways without "mesh": never mesh traffic.
// - regex is RE2, full match, compiled once.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "config/model.h"

namespace re2 {
class RE2;
}

namespace veer {

/** One request or response header as received. Names in any case. */
struct HeaderField {
  std::string_view name;
  std::string_view value;
};

/** The client pod of a request, when known. */
struct ClientView {
  std::string_view ns;
  std::string_view name;
  const Labels* labels = nullptr;
};

/** What Istio matching reads of a request. Views, valid during the call. */
struct RequestView {
  std::string_view method;
  std::string_view path;  // without the query string
  std::string_view query; // after '?', "" when none
  std::string_view authority;
  std::string_view scheme = "http";
  uint16_t port = 0; // the service port the client connected to
  std::span<const HeaderField> headers;
  const ClientView* client = nullptr; // null: the client pod is unknown

  /** The value of header name (lowercase), joined as described above; nullopt if absent. */
  std::optional<std::string_view> header(std::string_view name) const;
  /** The first field named name (a view into the request, never a joined copy). */
  std::optional<std::string_view> firstHeader(std::string_view name) const;
  /** The first query parameter named key; nullopt if absent. */
  std::optional<std::string_view> queryParam(std::string_view key) const;
  /** The value of cookie name in the cookie header(s); nullopt if absent. */
  std::optional<std::string_view> cookie(std::string_view name) const;
};

/** Splits a request-target (origin or absolute form) into scheme, path and query. */
void splitTarget(std::string_view target, RequestView& out);

/** An Istio StringMatch ready to run: lowered for ignoreCase, regex compiled. */
class CompiledStringMatch {
public:
  static Result<CompiledStringMatch> compile(const StringMatch& m, bool ignoreCase = false);
  bool matches(std::string_view value) const;
  const StringMatch& source() const { return src_; }

private:
  StringMatch src_;
  bool ignoreCase_ = false;
  std::string want_; // lowered for ignoreCase (exact, prefix)
  std::shared_ptr<const re2::RE2> re_;
};

/** One Istio HTTPMatchRequest, compiled. */
class CompiledMatch {
public:
  /** Errors name the field ("spec.http[0].match[1].headers[cookie]: bad regex ..."). */
  static Result<CompiledMatch> compile(const HttpMatch& m);
  /**
   * Whether every condition holds. When why is given and the entry fails, *why says
   * which condition failed and how ("header end-user is absent"), for explain.
   */
  bool matches(const RequestView& req, std::string* why = nullptr) const;
  const HttpMatch& source() const { return src_; }
  /** The uri condition, when there is one. */
  const CompiledStringMatch* uri() const { return uri_ ? &*uri_ : nullptr; }

private:
  struct Key {
    std::string key;
    bool present = false;
    std::optional<CompiledStringMatch> match;
  };
  HttpMatch src_;
  std::optional<CompiledStringMatch> uri_, scheme_, method_, authority_;
  std::vector<Key> headers_, withoutHeaders_, queryParams_;
};

/** "exact 'jason'": a StringMatch for explanations and plans. */
std::string describe(const StringMatch& m);

/** Whether one Istio StringMatch accepts value (regex: RE2 full match, compiled per call). */
bool stringMatches(const StringMatch& m, const std::string& value, bool ignoreCase = false);

/** The header that carries the ASM lane from hop to hop (ASM's lane header). */
inline constexpr const char* kDefaultTagHeader = "x-asm-prefer-tag";

/** Where a traffic-label value came from. */
struct LaneValue {
  enum class From { kNone, kTagHeader, kHeader, kPodLabel, kLiteral };
  std::string_view value; // a view into the request, the client's labels or the sources
  From from = From::kNone;
  std::string_view what; // the header or label name, or the literal
};

/**
 * The ASM traffic label (lane) of a request, for a `$label` subset whose TrafficLabel
 * lists sources (valueFrom, in order). Consulted in this order, first non-empty wins:
 *  1. the tag header (x-asm-prefer-tag): the lane an earlier hop chose (veer-proxy sets
 *     it upstream) or the client asked for (ASM's lane header); taken as is;
 *  2. each source in order:
 *     - $getContext(h): veer keeps no per-trace store, so the request's own header h;
 *       its value counts only if it names a lane (isLane), so a random x-request-id is
 *       not a lane and the next source is tried;
 *     - $(localLabel) L: the client pod's label L (ASM_TRAFFIC_TAG);
 *     - a literal.
 */
LaneValue laneValue(const ThinVector<TrafficLabel::Source>& sources, const RequestView& req,
                    std::string_view tagHeader, const std::vector<std::string>& lanes);

} // namespace veer
