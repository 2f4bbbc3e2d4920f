#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

namespace veer {

/**
 * The process's worker threads for the parallel parts of a build: loading YAML batches,
 * resolving ranges of services, computing Maglev rings. One pool for all of them, kept
 * for the life of the process, so a reload starts no threads, and what a build keeps is
 * allocated by a few threads rather than a new set per file and per phase (every thread
 * holds partly used pages of its own in the allocator: with a thread per file and phase,
 * that was 11 threads and several MiB at 10,000 services). Tasks run in submission order.
 * A task must not wait for another task of the pool.
 */
class WorkerPool {
public:
  /** The shared pool: one thread per core. */
  static WorkerPool& shared();

  explicit WorkerPool(size_t threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  size_t threads() const { return max_; }

  /** Runs f on a worker; the future has its result. */
  template <class F> auto submit(F f) -> std::future<decltype(f())> {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    push([t = std::make_shared<decltype(task)>(std::move(task))] { (*t)(); });
    return result;
  }

  /** Calls f(i, parts) for i in [0, parts): part 0 on the calling thread, the rest on
   * workers; returns when all are done. */
  template <class F> void parallelFor(size_t parts, F&& f) {
    std::vector<std::future<void>> done;
    for (size_t i = 1; i < parts; ++i) {
      done.push_back(submit([&f, i, parts] { f(i, parts); }));
    }
    f(size_t{0}, parts);
    for (auto& d : done) {
      d.get();
    }
  }

  /**
   * Runs f once on each worker thread started so far, and returns when all have: for
   * per-thread state such as an allocator's caches. Called on a worker, that worker runs
   * its f itself.
   */
  void onEachThread(const std::function<void()>& f);

private:
  void push(std::function<void()> task);
  void work();

  const size_t max_;
  std::mutex mu_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> queue_; // guarded by mu_
  size_t idle_ = 0;                         // guarded by mu_
  bool stop_ = false;                       // guarded by mu_
  std::vector<std::thread> workers_;        // guarded by mu_; started on demand
};

} // namespace veer
