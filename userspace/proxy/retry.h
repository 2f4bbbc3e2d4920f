#pragma once

// When and how soon a request is tried again (docs/design.md, "veer-proxy: retries,
// mirror, local answers"): Envoy's router as Istio configures it. Pure decisions over a
// Decision and a request's RetryState; the exchange (proxy/exchange.cpp) acts on them.

#include <cstdint>
#include <random>

#include "proxy/conn.h"
#include "proxy/router.h"

namespace veer::proxy {

// What makes a failure before any response retriable (Envoy counts a reset as a 5xx, and
// a connect failure as a reset).
constexpr uint32_t kOnReset = retry_on::k5xx | retry_on::kGatewayError | retry_on::kReset;
constexpr uint32_t kOnConnectFailure =
    kOnReset | retry_on::kConnectFailure | retry_on::kResetBeforeRequest;

/** The retry_on conditions (config/model.h) a final response status meets. */
uint32_t retryConditions(const Decision& d, int status);

/**
 * Whether a failure meeting `conditions` may be retried: the route asks for it, its
 * budget (defaultBudget when the route sets none) is not spent, the client saw no byte of
 * an answer, and the request is all still here (a connect failure sent nothing, so it
 * needs no replay).
 */
bool mayRetry(const Decision& d, int defaultBudget, const RetryState& r, bool respHeadSent,
              uint32_t conditions);

/** Envoy's default back-off before retry number `retried` (1-based): a random wait in
 * [1, (2^k - 1) * 25 ms], at most 250 ms; never 0, which means no delay. */
uint64_t backoffMs(int retried, std::minstd_rand& rng);

/** The per-try timeout's deadline for an attempt running from `now`, 0 for none. */
uint64_t tryDeadline(const Decision& d, uint64_t now);

} // namespace veer::proxy
