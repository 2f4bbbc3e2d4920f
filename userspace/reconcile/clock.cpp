#include "reconcile/clock.h"

#include <algorithm>
#include <climits>

namespace veer {

int msUntil(proxy::TimeSource& clock, uint64_t at) {
  const uint64_t now = clock.nowMs();
  return at <= now ? 0 : static_cast<int>(std::min<uint64_t>(at - now, INT_MAX));
}

} // namespace veer
