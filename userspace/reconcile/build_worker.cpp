#include "reconcile/build_worker.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

namespace veer {

BuildWorker::BuildWorker(Fn fn) : fn_(std::move(fn)) {}

BuildWorker::~BuildWorker() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) {
    thread_.join();
  }
}

Status BuildWorker::start() {
  event_ = Fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!event_) {
    return osError(errno, "eventfd");
  }
  thread_ = std::thread([this] { run(); });
  return {};
}

void BuildWorker::submit(BuildInput input) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_ = std::move(input);
  }
  cv_.notify_one();
}

std::optional<BuildOutput> BuildWorker::take() {
  uint64_t count = 0;
  (void)!read(event_.get(), &count, sizeof(count)); // EAGAIN: nothing new, done_ says so too
  std::lock_guard<std::mutex> lock(mu_);
  return std::exchange(done_, std::nullopt);
}

void BuildWorker::run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stop_ || pending_; });
    if (stop_) {
      return;
    }
    BuildInput input = std::move(*pending_);
    pending_.reset();
    lock.unlock();
    BuildOutput output = fn_(std::move(input));
    lock.lock();
    done_ = std::move(output);
    const uint64_t one = 1;
    (void)!write(event_.get(), &one, sizeof(one)); // only fails when the counter is saturated
  }
}

} // namespace veer
