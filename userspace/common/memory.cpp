#include "common/memory.h"

#include <malloc.h>

#include "common/worker_pool.h"

// Weak: the fuzz targets link this library without mimalloc, and then glibc's malloc is the
// allocator to trim.
extern "C" void mi_collect(bool force) __attribute__((weak));

namespace veer {
namespace {

void releaseOnThisThread() {
  if (mi_collect != nullptr) {
    mi_collect(true);
  } else {
    malloc_trim(0);
  }
}

} // namespace

void releaseFreeMemory() {
  WorkerPool::shared().onEachThread(releaseOnThisThread);
  releaseOnThisThread();
}

} // namespace veer
