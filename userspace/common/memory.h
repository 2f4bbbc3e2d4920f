#pragma once

namespace veer {

/**
 * Gives the allocator's free memory back to the system, on the calling thread and on every
 * thread of WorkerPool::shared(). mimalloc (linked into every veer binary, Makefile
 * ALLOC_LIBS) returns freed pages only when the thread that owns them next allocates: after
 * a large config load, idle workers and a waiting agent kept 70-125 MB this way. For after
 * a large build, not per request: it walks every thread's heap.
 */
void releaseFreeMemory();

} // namespace veer
