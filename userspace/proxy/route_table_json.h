#pragma once

// The route table as JSON: the file the agent writes next to veer-proxy and the proxy
// reads on every change. It is an interface between two programs that may run different
// builds during a rollout, so it carries a schema version, checked before anything else
// is read: a proxy refuses a table of another version with a message that says so, and
// keeps the table it has.
//
// Schema version 1 (every object refuses unknown fields; "?" marks an optional field):
//
//   { "version": 1,
//     "tagHeader": "x-asm-prefer-tag",           // the full-link gray tag header
//     "pods": [ {"ip", "ns", "name", "labels"?: {key: value}} ],  // clients the rules read
//     "services": [ {
//       "ns", "name", "addr": "10.96.0.10", "port": 9080,
//       "clusters": [ {"service"?: "ns/name" (another Service), "subset": "v2" ("" = all),
//                      "port", "endpoints": [ {"addr", "port", "pod"?} ],
//                      "loadBalancer"?: {"simple"?, "hash"?: none|cookie|header|sourceIp|
//                                        queryParam, "key"?, "ttl"?, "path"?}} ],
//       "labels"?: { "lane": [ {"kind": context|localLabel|literal, "value"} ] },
//       "routes": [ {"source": "VirtualService ns/name", "field": "spec.http[0]", "name"?,
//                    "match"?: [HttpMatch], "route"?: [ {"field"?, "host"?, "subset"?,
//                    "port"?, "weight"?: 0..100, "headers"?, "fallback"?: {"host"?,
//                    "subset", "port"?, "cases"?: [noinstances|noavailabled]}} ],
//                    "headers"?: {"request"?|"response"?: {"set"?|"add"?: [[name, value]],
//                                 "remove"?: [name]}},
//                    "rewriteUri"?, "rewriteAuthority"?, "timeout"?: "5s", "retries"?,
//                    "perTryTimeout"?, "retryOn"?, "abort"?: {"status", "percent"?},
//                    "delay"?: {"fixed", "percent"?}, "mirror"?: {"host", "subset"?,
//                    "port"?, "percent"?}, "redirect"?, "redirectCode"?,
//                    "directResponse"?: status, "directResponseBody"?} ] } ] }
//
//   HttpMatch: {"field", "name"?, "uri"?|"scheme"?|"method"?|"authority"?: StringMatch,
//               "headers"?|"withoutHeaders"?|"queryParams"?: [{"key", "present"?: true |
//               StringMatch's one field}], "sourceLabels"?, "sourceNamespace"?,
//               "gateways"?, "port"?, "ignoreUriCase"?}
//   StringMatch: exactly one of {"exact"}, {"prefix"}, {"regex"}.
//
// Change the schema only with kRouteTableSchemaVersion; fuzz/route_table_fuzz.cpp holds
// the reader to "refuse with a message, or read back to the same JSON and route alike".

#include <string>
#include <string_view>

#include "common/result.h"
#include "proxy/router_spec.h"

namespace veer::proxy {

/** The version this build writes and the only one it reads. */
inline constexpr int kRouteTableSchemaVersion = 1;

/** The spec as JSON, "version" first. */
std::string writeRouteTableJson(const RouteSpec& spec);

/** Parses what writeRouteTableJson wrote. Errors name the JSON path
 * ("route table: services[2].routes[0].timeout: expected a string"). */
Result<RouteSpec> readRouteTableJson(std::string_view json);

} // namespace veer::proxy
