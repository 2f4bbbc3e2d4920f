#pragma once

// Simulated time for the Kubernetes client's tests: sleeps return at once, advance now()
// and are recorded, so a test asserts the backoff a reflector chose without waiting it out.

#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "k8s/clock.h"

namespace veer::k8s {

class FakeClock final : public Clock {
public:
  TimePoint now() override {
    std::lock_guard<std::mutex> lock(mu_);
    return now_;
  }

  bool sleepFor(Duration d, StopToken& stop) override {
    if (stop.stopped()) {
      return false;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      now_ += d;
      sleeps_.push_back(d);
    }
    cv_.notify_all();
    // A thread that backs off in a loop (a server that is down) yields here, as a real
    // sleep would let the test's thread run.
    std::this_thread::yield();
    return !stop.stopped();
  }

  void advance(Duration d) {
    std::lock_guard<std::mutex> lock(mu_);
    now_ += d;
  }

  std::vector<Duration> sleeps() {
    std::lock_guard<std::mutex> lock(mu_);
    return sleeps_;
  }

  /** Waits (really, bounded) until at least n sleeps were asked for; false on timeout. */
  bool waitForSleeps(size_t n, std::chrono::milliseconds bound = std::chrono::seconds(10)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, bound, [&] { return sleeps_.size() >= n; });
  }

private:
  std::mutex mu_;
  std::condition_variable cv_;
  TimePoint now_{std::chrono::hours(1000)};
  std::vector<Duration> sleeps_;
};

} // namespace veer::k8s
