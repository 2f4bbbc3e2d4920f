#include "k8s/clock.h"

namespace veer::k8s {

void StopToken::stop() {
  // Wakers run under the lock: removeWaker() then cannot return (and its transfer's handle
  // be freed) while one is being woken.
  std::lock_guard<std::mutex> lock(mu_);
  stopped_.store(true, std::memory_order_release);
  cv_.notify_all();
  for (auto& [id, wake] : wakers_) {
    wake();
  }
}

bool StopToken::waitFor(Duration d) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, d, [&] { return stopped(); });
}

int StopToken::addWaker(std::function<void()> wake) {
  std::lock_guard<std::mutex> lock(mu_);
  wakers_.emplace(nextWaker_, std::move(wake));
  return nextWaker_++;
}

void StopToken::removeWaker(int id) {
  std::lock_guard<std::mutex> lock(mu_);
  wakers_.erase(id);
}

namespace {

class SystemClock final : public Clock {
public:
  TimePoint now() override { return std::chrono::steady_clock::now(); }
  bool sleepFor(Duration d, StopToken& stop) override { return !stop.waitFor(d); }
};

} // namespace

Clock& systemClock() {
  static SystemClock clock;
  return clock;
}

} // namespace veer::k8s
