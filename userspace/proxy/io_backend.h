#pragma once

// How a worker waits for and moves bytes (docs/design.md, "veer-proxy: io_uring"). The
// state machine above sees one model: readiness events (EPOLLIN/OUT/RDHUP/ERR),
// synchronous recv, and sends that either take all the bytes or say EAGAIN. epoll
// gives it directly (io_epoll.cpp). io_uring (io_uring.cpp) gives the events from
// multishot polls and accepts from accept SQEs; a send copies its bytes, queues a SEND
// and reports them all taken, and the socket counts as not writable until the
// completion, which arrives as EPOLLOUT.

#include <sys/uio.h>

#include <memory>
#include <vector>

#include "common/result.h"
#include "proxy/conn.h"

namespace veer::proxy {

class Worker;

class IoBackend {
public:
  virtual ~IoBackend() = default;
  /** On the creating thread: what can fail early (epoll_create1). */
  virtual Status prepare(Handle* wake) = 0;
  /** A bound listener: its accepts reach Worker::acceptedClient from start() on. */
  virtual Status addListener(Listener* l) = 0;
  /** On the worker's thread, before the loop (a ring belongs to its issuer thread). */
  virtual Status start() = 0;
  /** Waits up to timeoutMs (-1: for an event). False when the backend failed for good. */
  virtual bool wait(int timeoutMs) = 0;
  /** Hands what the wait collected to the worker (Worker::dispatch, acceptedClient). */
  virtual void deliver() = 0;
  /** Once the worker closed everything: after it, nothing in flight holds a socket. */
  virtual void finish() = 0;

  /** Reports h's readiness from now on (readiness already there included). */
  virtual bool watch(Handle* h) = 0;
  /** Like sendmsg: bytes taken, or -1 with errno (EAGAIN: wait for EPOLLOUT). */
  virtual ssize_t send(Handle* h, const iovec* iov, int cnt) = 0;
  /** SHUT_WR after every byte sent before it. */
  virtual void shutdownWrite(Handle* h) = 0;
  /** Closes h's socket; h->fd is -1 afterwards and h may be reused after the batch. */
  virtual void close(Handle* h) = 0;
  /** At each timer sweep: the backend's own timers and retries. */
  virtual void sweep(uint64_t now) = 0;
  /** True while the backend has timers of its own running (the loop must wake for them). */
  virtual bool hasTimers() const = 0;
};

std::unique_ptr<IoBackend> makeEpollBackend(Worker& w);
std::unique_ptr<IoBackend> makeUringBackend(Worker& w);

/**
 * Whether this process may use io_uring as the workers will. Tried on a thread of its own:
 * a ring's creator is signalled when the ring is torn down (io_uring's exit work), which
 * makes a blocking call of that thread fail with EINTR; the workers own their rings, so
 * the caller's thread never is.
 */
Status probeUring();

} // namespace veer::proxy
