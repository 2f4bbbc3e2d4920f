#pragma once

// Time and cancellation for the Kubernetes client: every wait goes through a Clock, so the
// backoff, Retry-After and token re-reading are testable on simulated time, and every wait
// ends at once when its StopToken stops (agent shutdown must not sit out a 30 s backoff).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>

namespace veer::k8s {

using Duration = std::chrono::milliseconds;
using TimePoint = std::chrono::steady_clock::time_point;

/** A stop request shared by the threads of one client; also wakes their blocked transfers. */
class StopToken {
public:
  StopToken() = default;
  StopToken(const StopToken&) = delete;
  StopToken& operator=(const StopToken&) = delete;

  void stop();
  bool stopped() const { return stopped_.load(std::memory_order_acquire); }
  /** Waits up to d; true when stopped (now or during the wait). */
  bool waitFor(Duration d);
  /** Calls wake when stop() is called, until removed (an in-flight HTTP transfer's poll). */
  int addWaker(std::function<void()> wake);
  void removeWaker(int id);

private:
  std::atomic<bool> stopped_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int, std::function<void()>> wakers_;
  int nextWaker_ = 0;
};

class Clock {
public:
  virtual ~Clock() = default;
  virtual TimePoint now() = 0;
  /** Waits d unless stopped first; false when stopped. */
  virtual bool sleepFor(Duration d, StopToken& stop) = 0;
};

/** steady_clock and real waits. */
Clock& systemClock();

} // namespace veer::k8s
