#pragma once

// The reconciler's time source. Grace periods, quiet periods and resyncs are
// read from it, so tests run them on simulated time.

#include <chrono>

namespace veer {

/** A monotonic clock. */
class SteadyClock {
public:
  using TimePoint = std::chrono::steady_clock::time_point;

  virtual ~SteadyClock() = default;
  virtual TimePoint now() const = 0;
};

/** std::chrono::steady_clock. */
class SystemSteadyClock final : public SteadyClock {
public:
  TimePoint now() const override { return std::chrono::steady_clock::now(); }
};

/** Milliseconds from now until t, rounded up and clamped to [0, INT_MAX] (a poll() timeout). */
int msUntil(const SteadyClock& clock, SteadyClock::TimePoint t);

} // namespace veer
