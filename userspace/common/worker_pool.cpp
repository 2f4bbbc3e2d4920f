#include "common/worker_pool.h"

#include <algorithm>
#include <latch>
#include <memory>

namespace veer {

WorkerPool& WorkerPool::shared() {
  // Never destroyed: its threads wait on it until the process exits.
  static auto* pool = new WorkerPool(std::max(1u, std::thread::hardware_concurrency()));
  return *pool;
}

WorkerPool::WorkerPool(size_t threads) : max_(std::max<size_t>(1, threads)) {}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  ready_.notify_all();
  for (std::thread& t : workers_) {
    t.join();
  }
}

void WorkerPool::push(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(task));
    if (queue_.size() > idle_ && workers_.size() < max_) {
      workers_.emplace_back([this] { work(); });
    }
  }
  ready_.notify_one();
}

namespace {
// The pool whose worker this thread is, if any.
thread_local const WorkerPool* currentPool = nullptr;
} // namespace

void WorkerPool::onEachThread(const std::function<void()>& f) {
  std::unique_lock<std::mutex> lock(mu_);
  // Called on one of the workers, that one does its part here: the others cannot wait
  // for it to take a task.
  const bool self = currentPool == this;
  const auto n = static_cast<std::ptrdiff_t>(workers_.size()) - (self ? 1 : 0);
  if (n <= 0) {
    lock.unlock();
    if (self) {
      f();
    }
    return;
  }
  // Each task holds its worker until all n are held, so no worker takes two.
  auto started = std::make_shared<std::latch>(n);
  auto done = std::make_shared<std::latch>(n);
  for (std::ptrdiff_t i = 0; i < n; ++i) {
    queue_.push_back([started, done, &f] {
      started->arrive_and_wait();
      f();
      done->count_down();
    });
  }
  lock.unlock();
  ready_.notify_all();
  if (self) {
    f();
  }
  done->wait();
}

void WorkerPool::work() {
  currentPool = this;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    ++idle_;
    ready_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    --idle_;
    if (queue_.empty()) {
      return; // stopping
    }
    std::function<void()> task = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    task();
    lock.lock();
  }
}

} // namespace veer
