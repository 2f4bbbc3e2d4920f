#include "reconcile/clock.h"

#include <algorithm>
#include <climits>

namespace veer {

int msUntil(const SteadyClock& clock, SteadyClock::TimePoint t) {
  const auto left = t - clock.now();
  if (left <= SteadyClock::TimePoint::duration::zero()) {
    return 0;
  }
  // Rounded up: a timer woken early would find nothing due and poll again at once.
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return static_cast<int>(std::min<int64_t>(ms, INT_MAX));
}

} // namespace veer
