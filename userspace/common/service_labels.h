#pragma once

// The labels a service version carries in metrics, with Istio's meanings: the kernel's
// counters (veer_version.service and .subset) and veer-proxy's (a route table cluster,
// "ns/name:port subset") name versions the same way, so both split here and the agent
// can put their numbers in one family.

#include <compare>
#include <string>
#include <string_view>

namespace veer {

struct ServiceLabels {
  std::string ns;
  std::string name;
  std::string port;
  std::string version; // the subset; "unknown" for a service without subsets (as Istio says)
  auto operator<=>(const ServiceLabels&) const = default;
};

/** Istio's value for a label nothing tells: a request no service matched, a whole service. */
inline constexpr const char* kUnknownLabel = "unknown";

/** Labels of "namespace/name:port" and a subset ("" = every endpoint). An id without the
 * namespace and port gives them empty, and the whole id as the name. */
inline ServiceLabels serviceLabels(std::string_view serviceId, std::string_view subset) {
  ServiceLabels l;
  const size_t slash = serviceId.find('/');
  const size_t colon = serviceId.rfind(':');
  if (slash != std::string_view::npos && colon != std::string_view::npos && colon > slash) {
    l.ns = serviceId.substr(0, slash);
    l.name = serviceId.substr(slash + 1, colon - slash - 1);
    l.port = serviceId.substr(colon + 1);
  } else {
    l.name = serviceId;
  }
  l.version = subset.empty() ? std::string_view(kUnknownLabel) : subset;
  return l;
}

} // namespace veer
