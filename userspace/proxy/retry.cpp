#include "proxy/retry.h"

#include <algorithm>

namespace veer::proxy {

namespace {
constexpr uint64_t kBackoffBaseMs = 25;
constexpr uint64_t kBackoffMaxMs = 250;
} // namespace

uint32_t retryConditions(const Decision& d, int status) {
  uint32_t on = 0;
  if (status >= 500) {
    on |= retry_on::k5xx | (status >= 502 && status <= 504 ? retry_on::kGatewayError : 0);
  } else if (status == 409) {
    on |= retry_on::kRetriable4xx;
  }
  if (!d.retryStatuses.empty() &&
      std::binary_search(d.retryStatuses.begin(), d.retryStatuses.end(), status)) {
    on |= retry_on::kStatusCodes;
  }
  return on;
}

bool mayRetry(const Decision& d, int defaultBudget, const RetryState& r, bool respHeadSent,
              uint32_t conditions) {
  int budget = d.retries >= 0 ? d.retries : defaultBudget;
  return (d.retryOn & conditions) != 0 && r.retried < budget && !r.relayed && !respHeadSent &&
         (r.replay || conditions == kOnConnectFailure);
}

uint64_t backoffMs(int retried, std::minstd_rand& rng) {
  uint64_t mult = (uint64_t{1} << std::min(retried, 8)) - 1;
  uint64_t cap = std::min(mult * kBackoffBaseMs, kBackoffMaxMs);
  return 1 + rng() % cap;
}

uint64_t tryDeadline(const Decision& d, uint64_t now) {
  uint32_t t = d.perTryTimeoutMs;
  return t != 0 && t != kNoTimeout ? now + t : 0;
}

} // namespace veer::proxy
