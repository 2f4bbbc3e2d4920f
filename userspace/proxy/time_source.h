#pragma once

// The engine's clock (Envoy's TimeSource): real monotonic time in production, simulated
// time in tests, where timers fire when the test advances the clock and not before.

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>

namespace veer::proxy {

/** Milliseconds of CLOCK_MONOTONIC. */
uint64_t monotonicMs();
/** Microseconds of CLOCK_MONOTONIC. */
uint64_t monotonicUs();

/**
 * Where an event loop reads the time. A loop registers its wake eventfd while it runs;
 * a source whose time moves by itself (real time) never uses it, a simulated one writes
 * it when the test moves the time, and waits until the loop has run what fell due.
 */
class TimeSource {
public:
  virtual ~TimeSource() = default;
  virtual uint64_t nowMs() = 0;
  /** The same clock in microseconds (request durations: Istio's first bucket is 0.5 ms). */
  virtual uint64_t nowUs() = 0;
  /** How late a timer may fire: a loop sweeps its timers at most this often. */
  virtual uint32_t granularityMs() const = 0;
  /** True when time moves only by the source's own hand, which then wakes every loop:
   * a loop waits for I/O without a timeout. */
  virtual bool wakesLoops() const = 0;
  /** A loop starts or stops reading this source; wakeFd is its eventfd. */
  virtual void attach(int wakeFd) = 0;
  virtual void detach(int wakeFd) = 0;
  /** The loop of wakeFd has run every timer due at `now`. */
  virtual void caughtUp(int wakeFd, uint64_t now) = 0;
};

/** Real time: loops sleep until their next sweep (every kSweepMs, sooner when due). */
class MonotonicTimeSource final : public TimeSource {
public:
  static constexpr uint32_t kSweepMs = 100;
  uint64_t nowMs() override { return monotonicMs(); }
  uint64_t nowUs() override { return monotonicUs(); }
  uint32_t granularityMs() const override { return kSweepMs; }
  bool wakesLoops() const override { return false; }
  void attach(int) override {}
  void detach(int) override {}
  void caughtUp(int, uint64_t) override {}
  /** The one every engine shares unless told otherwise. */
  static MonotonicTimeSource& instance();
};

/**
 * Test time: starts at a fixed point and moves only by advance(), which returns once every
 * attached loop has run the timers due at the new time, so a test can assert exactly what
 * did and did not fire.
 */
class SimulatedTimeSource final : public TimeSource {
public:
  static constexpr uint64_t kStartMs = 1000000;
  uint64_t nowMs() override;
  uint64_t nowUs() override { return nowMs() * 1000; }
  uint32_t granularityMs() const override { return 0; }
  bool wakesLoops() const override { return true; }
  void attach(int wakeFd) override;
  void detach(int wakeFd) override;
  void caughtUp(int wakeFd, uint64_t now) override;
  /** Moves the time by ms and waits (at most 20 s of real time) for every loop to catch up.
   * False when a loop did not. */
  bool advance(uint64_t ms);

private:
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t now_ = kStartMs;
  std::map<int, uint64_t> loops_; // wake eventfd -> the time it last caught up with
};

} // namespace veer::proxy
