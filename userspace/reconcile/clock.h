#pragma once

// The reconciler reads the time from the engine's TimeSource (real monotonic time
// in the agent, simulated in tests), so grace periods, quiet periods and resyncs
// run on simulated time in unit tests.

#include <cstdint>

#include "proxy/time_source.h"

namespace veer {

/** Milliseconds from now until at, clamped to [0, INT_MAX] (a poll() timeout). */
int msUntil(proxy::TimeSource& clock, uint64_t at);

} // namespace veer
