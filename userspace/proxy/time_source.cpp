#include "proxy/time_source.h"

#include <time.h>
#include <unistd.h>

#include <chrono>

namespace veer::proxy {

uint64_t monotonicMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

uint64_t monotonicUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

MonotonicTimeSource& MonotonicTimeSource::instance() {
  static MonotonicTimeSource source;
  return source;
}

uint64_t SimulatedTimeSource::nowMs() {
  std::lock_guard<std::mutex> lock(mu_);
  return now_;
}

void SimulatedTimeSource::attach(int wakeFd) {
  std::lock_guard<std::mutex> lock(mu_);
  loops_[wakeFd] = 0;
}

void SimulatedTimeSource::detach(int wakeFd) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    loops_.erase(wakeFd);
  }
  cv_.notify_all();
}

void SimulatedTimeSource::caughtUp(int wakeFd, uint64_t now) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = loops_.find(wakeFd);
    if (it == loops_.end() || it->second >= now) {
      return;
    }
    it->second = now;
  }
  cv_.notify_all();
}

bool SimulatedTimeSource::advance(uint64_t ms) {
  std::unique_lock<std::mutex> lock(mu_);
  now_ += ms;
  uint64_t target = now_;
  for (const auto& [fd, seen] : loops_) {
    uint64_t one = 1;
    (void)!::write(fd, &one, sizeof(one));
  }
  return cv_.wait_for(lock, std::chrono::seconds(20), [&] {
    for (const auto& [fd, seen] : loops_) {
      if (seen < target) {
        return false;
      }
    }
    return true;
  });
}

} // namespace veer::proxy
