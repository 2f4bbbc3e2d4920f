#pragma once

// HTTP to the Kubernetes API through libcurl (Debian's libcurl4-openssl-dev): TLS verified
// against the cluster's CA, bearer token or client certificate, and transfers that end at
// once when their StopToken stops.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "k8s/clock.h"
#include "k8s/config.h"

namespace veer::k8s {

struct HttpResponse {
  long status = 0;
  std::string body;                     // all of it, or for a stream only a non-200 body
  std::optional<int> retryAfterSeconds; // Retry-After of a 429 or 503
};

/** Thread-safe: every call runs on its own curl handles. */
class ApiClient {
public:
  ApiClient(ClusterConfig config, Clock& clock);
  ~ApiClient();
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  /** GET pathAndQuery ("/api/v1/pods?limit=500"). An Error only when no HTTP status came. */
  Result<HttpResponse> get(const std::string& pathAndQuery, StopToken& stop,
                           Duration timeout = std::chrono::seconds(60));

  /**
   * GET that hands a 200 response's body to onData as it arrives (a watch); onData returns
   * false to end the transfer. Ends when the server ends it, on timeout, or when stopped
   * (then an Error with code ECANCELED).
   */
  Result<HttpResponse> stream(const std::string& pathAndQuery, StopToken& stop, Duration timeout,
                              const std::function<bool(std::string_view)>& onData);

  const ClusterConfig& config() const { return config_; }
  TokenSource& tokens() { return tokens_; }

private:
  Result<HttpResponse> perform(const std::string& pathAndQuery, StopToken& stop, Duration timeout,
                               const std::function<bool(std::string_view)>* onData);

  ClusterConfig config_;
  TokenSource tokens_;
};

} // namespace veer::k8s

namespace veer::k8s {
/** Percent-encodes a query parameter's value ("spec.nodeName=n1" -> "spec.nodeName%3Dn1"). */
std::string urlEncode(std::string_view value);
} // namespace veer::k8s
