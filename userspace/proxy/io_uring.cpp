// The io_uring backend (docs/design.md, "veer-proxy: io_uring"). Readiness comes from
// multishot POLL_ADDs with the bits epoll reports; accepts are ACCEPT SQEs, a few in
// flight per listener. A send copies its bytes into a pooled SendBuf and queues a SEND
// with MSG_WAITALL, so a completion means all or a failure; the socket counts as not
// writable until then, so at most one send is in flight per socket and bytes never
// reorder. Closes are queued too, after a POLL_REMOVE (a pending poll holds a file
// reference). One io_uring_submit_and_wait_timeout per loop iteration submits every SQE
// of the iteration and waits.

#include <liburing.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "proxy/io_backend.h"
#include "proxy/time_source.h"
#include "proxy/worker.h"

namespace veer::proxy {

/** The bytes of one queued send, owned by the operation until its completion (the
 * socket's owner may close and be reused before that). */
struct SendBuf {
  std::string data;
  Handle* owner = nullptr; // nullptr once the owner closed: an orphan
  uint64_t deadline = 0;   // an orphan still sending past this is cancelled
  SendBuf* prev = nullptr;
  SendBuf* next = nullptr;
};

namespace {

// user_data: an object's address (8-byte aligned, below 2^48) with the operation in the
// low 3 bits and the object's generation in the top 16.
enum Op : uint64_t { kOpPoll = 0, kOpSend = 1, kOpAccept = 2, kOpNone = 3 };
constexpr unsigned kSqEntries = 1024;
constexpr unsigned kCqEntries = 8192;

uint64_t userData(const void* p, Op op, uint16_t gen = 0) {
  return reinterpret_cast<uintptr_t>(p) | op | (uint64_t{gen} << 48);
}

// The ring's flags. DEFER_TASKRUN (Linux 6.1): completions are made only when the worker
// waits for them, never by interrupting it; it needs SINGLE_ISSUER. Requiring 6.1 also
// brings every operation used here (multishot poll, send MSG_WAITALL, cancel ANY).
constexpr unsigned kRingFlags =
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;

Status openRing(io_uring* ring) {
  io_uring_params p{};
  p.flags = kRingFlags;
  p.cq_entries = kCqEntries;
  int rc = io_uring_queue_init_params(kSqEntries, ring, &p);
  if (rc < 0) {
    return osError(-rc, "io_uring_setup (single issuer, deferred task work: Linux 6.1+)");
  }
  return {};
}

class UringBackend final : public IoBackend {
public:
  explicit UringBackend(Worker& w) : w_(w) {}
  ~UringBackend() override {
    if (ringOpen_) {
      io_uring_queue_exit(&ring_);
    }
  }

  Status prepare(Handle* wake) override {
    wake_ = wake;
    return {};
  }
  Status addListener(Listener*) override { return {}; } // start() queues the accepts

  Status start() override {
    if (Status st = openRing(&ring_); !st) {
      return st;
    }
    ringOpen_ = true;
    watch(wake_);
    for (const auto& l : w_.listeners()) {
      for (AcceptSlot& slot : l->slots) {
        armAccept(&slot);
      }
    }
    return {};
  }

  bool wait(int timeoutMs) override {
    // One io_uring_enter submits everything queued since the last one (sends, polls,
    // closes) and waits.
    int rc;
    if (timeoutMs < 0) {
      rc = io_uring_submit_and_wait(&ring_, 1);
    } else {
      __kernel_timespec ts{timeoutMs / 1000, (timeoutMs % 1000) * 1000000LL};
      io_uring_cqe* unused;
      rc = io_uring_submit_and_wait_timeout(&ring_, &unused, 1, &ts, nullptr);
    }
    return rc >= 0 || rc == -ETIME || rc == -EINTR || rc == -EAGAIN || rc == -EBUSY;
  }

  void deliver() override { reap(); }

  void finish() override {
    // Every socket is closed (or queued to be); what is still in flight (the wake poll,
    // sends to slow peers) is cancelled, and the completions are reaped here, so no
    // operation keeps a socket open after stop() returns. The ring is torn down by its
    // issuer thread. The bound is real time: it waits for the kernel, not for a timer.
    io_uring_sqe* s = sqe();
    io_uring_prep_cancel64(s, 0, IORING_ASYNC_CANCEL_ANY);
    io_uring_sqe_set_data64(s, kOpNone);
    stopping_ = true;
    uint64_t until = monotonicMs() + 1000;
    while (inflight_ > 0 && monotonicMs() < until) {
      __kernel_timespec ts{0, 100 * 1000000LL};
      io_uring_cqe* unused;
      int rc = io_uring_submit_and_wait_timeout(&ring_, &unused, 1, &ts, nullptr);
      if (rc < 0 && rc != -ETIME && rc != -EINTR) {
        break;
      }
      reap();
    }
    io_uring_queue_exit(&ring_);
    ringOpen_ = false;
  }

  bool watch(Handle* h) override {
    uint32_t ev = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    if (h->kind == Kind::kClient) {
      ev &= ~EPOLLOUT; // a client's writability comes from its send completions
    } else if (h->kind == Kind::kWake) {
      ev = EPOLLIN;
    }
    io_uring_sqe* s = sqe();
    io_uring_prep_poll_multishot(s, h->fd, ev);
    io_uring_sqe_set_data64(s, userData(h, kOpPoll, h->gen));
    h->watched = true;
    return true;
  }

  ssize_t send(Handle* h, const iovec* iov, int cnt) override {
    if (h->sending != nullptr) {
      h->sendWaiting = true; // its completion reports EPOLLOUT
      errno = EAGAIN;
      return -1;
    }
    if (freeSends_.empty()) {
      sendStore_.push_back(std::make_unique<SendBuf>());
      freeSends_.push_back(sendStore_.back().get());
    }
    SendBuf* sb = freeSends_.back();
    freeSends_.pop_back();
    for (int i = 0; i < cnt; ++i) {
      sb->data.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
    }
    sb->owner = h;
    h->sending = sb;
    io_uring_sqe* s = sqe();
    // MSG_WAITALL: the kernel retries a short send on a stream socket until all is sent,
    // so a completion is all or a failure.
    io_uring_prep_send(s, h->fd, sb->data.data(), sb->data.size(), MSG_NOSIGNAL | MSG_WAITALL);
    io_uring_sqe_set_data64(s, userData(sb, kOpSend));
    return static_cast<ssize_t>(sb->data.size());
  }

  void shutdownWrite(Handle* h) override {
    if (h->sending != nullptr) {
      h->shutdownAfterSend = true; // not before the bytes queued ahead of it
      return;
    }
    ::shutdown(h->fd, SHUT_WR);
  }

  void close(Handle* h) override {
    if (h->fd < 0) {
      return;
    }
    if (h->watched) {
      io_uring_sqe* s = sqe();
      io_uring_prep_poll_remove(s, userData(h, kOpPoll, h->gen));
      io_uring_sqe_set_data64(s, kOpNone);
    }
    if (h->kind == Kind::kListener) {
      for (AcceptSlot& slot : static_cast<Listener*>(h)->slots) {
        if (slot.armed) {
          io_uring_sqe* s = sqe();
          io_uring_prep_cancel64(s, userData(&slot, kOpAccept, h->gen), 0);
          io_uring_sqe_set_data64(s, kOpNone);
        }
      }
    }
    if (h->sending != nullptr) {
      // The send holds the socket open until the peer takes the bytes (as close() after
      // a send does); one the peer does not take within the idle timeout is cancelled.
      SendBuf* sb = h->sending;
      sb->owner = nullptr;
      sb->deadline = w_.now() + w_.options().idleTimeoutMs;
      linkFront(orphans_, sb);
    }
    io_uring_sqe* s = sqe();
    io_uring_prep_close(s, h->fd); // after the send queued before it, if any
    io_uring_sqe_set_data64(s, kOpNone);
    h->fd = -1;
    h->watched = h->sendWaiting = h->shutdownAfterSend = false;
    h->sending = nullptr;
    ++h->gen;
  }

  void sweep(uint64_t now) override {
    for (const auto& l : w_.listeners()) {
      for (AcceptSlot& slot : l->slots) {
        if (l->fd >= 0 && !slot.armed) {
          armAccept(&slot); // it failed (EMFILE and friends): try again each sweep
        }
      }
    }
    for (SendBuf* sb = orphans_; sb != nullptr; sb = sb->next) {
      if (sb->deadline != 0 && now >= sb->deadline) {
        io_uring_sqe* q = sqe();
        io_uring_prep_cancel64(q, userData(sb, kOpSend), 0);
        io_uring_sqe_set_data64(q, kOpNone);
        sb->deadline = 0; // cancelled once; its completion frees it
      }
    }
  }

  bool hasTimers() const override { return orphans_ != nullptr; }

private:
  io_uring_sqe* sqe() {
    io_uring_sqe* s = io_uring_get_sqe(&ring_);
    while (s == nullptr) { // the SQ is full: submit it (order is kept), then there is room
      io_uring_submit(&ring_);
      s = io_uring_get_sqe(&ring_);
    }
    ++inflight_; // each SQE ends in one completion without IORING_CQE_F_MORE
    return s;
  }

  void armAccept(AcceptSlot* slot) {
    Listener* l = slot->l;
    slot->len = sizeof(slot->peer);
    io_uring_sqe* s = sqe();
    io_uring_prep_accept(s, l->fd, reinterpret_cast<sockaddr*>(&slot->peer), &slot->len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
    io_uring_sqe_set_data64(s, userData(slot, kOpAccept, l->gen));
    slot->armed = true;
  }

  void reap() {
    io_uring_cqe* cqe;
    while (io_uring_peek_cqe(&ring_, &cqe) == 0) {
      uint64_t data = cqe->user_data;
      int res = cqe->res;
      uint32_t flags = cqe->flags;
      io_uring_cqe_seen(&ring_, cqe); // before handling: handling may submit
      if ((flags & IORING_CQE_F_MORE) == 0) {
        --inflight_;
      }
      onCompletion(data, res, flags);
    }
  }

  void onCompletion(uint64_t data, int res, uint32_t flags) {
    auto op = static_cast<Op>(data & 7);
    void* p = reinterpret_cast<void*>(data & ((uint64_t{1} << 48) - 8));
    auto gen = static_cast<uint16_t>(data >> 48);
    switch (op) {
    case kOpPoll: {
      auto* h = static_cast<Handle*>(p);
      if (h->gen != gen || h->fd < 0) {
        return; // closed since
      }
      bool more = (flags & IORING_CQE_F_MORE) != 0;
      if (!more) {
        h->watched = false;
      }
      if (res > 0) {
        w_.dispatch(h, static_cast<uint32_t>(res));
      }
      if (!more && !stopping_ && h->gen == gen && h->fd >= 0 && !h->watched) {
        watch(h); // the multishot poll ended (a CQ overflow): arm it again
      }
      return;
    }
    case kOpSend:
      onSendDone(static_cast<SendBuf*>(p), res);
      return;
    case kOpAccept: {
      auto* slot = static_cast<AcceptSlot*>(p);
      Listener* l = slot->l;
      if (l->gen != gen || l->fd < 0) {
        if (res >= 0) {
          ::close(res); // accepted just before the listener closed (drain)
        }
        return;
      }
      slot->armed = false;
      if (res >= 0) {
        w_.acceptedClient(l, res, slot->peer);
      }
      if (res >= 0 || res == -ECONNABORTED || res == -EINTR || res == -EAGAIN) {
        armAccept(slot); // else EMFILE and friends: the sweep tries again
      }
      return;
    }
    case kOpNone:
      return;
    }
  }

  void onSendDone(SendBuf* sb, int res) {
    Handle* h = sb->owner;
    bool complete = res >= 0 && static_cast<size_t>(res) == sb->data.size();
    if (h == nullptr) {
      unlink(orphans_, sb);
      releaseSend(sb);
      return;
    }
    h->sending = nullptr;
    releaseSend(sb);
    if (!complete) {
      w_.onSendFailed(h);
      return;
    }
    if (h->shutdownAfterSend) {
      h->shutdownAfterSend = false;
      ::shutdown(h->fd, SHUT_WR);
    }
    if (h->sendWaiting) {
      h->sendWaiting = false;
      if (h->kind != Kind::kUpstream || static_cast<Upstream*>(h)->owner != nullptr) {
        w_.dispatch(h, EPOLLOUT); // (a pooled upstream's event would close it)
      }
    }
  }

  void releaseSend(SendBuf* sb) {
    if (sb->data.capacity() > 2 * w_.options().bufferBytes) {
      std::string().swap(sb->data); // a large body's copy: give the memory back
    }
    sb->data.clear();
    sb->owner = nullptr;
    freeSends_.push_back(sb);
  }

  Worker& w_;
  Handle* wake_ = nullptr;
  bool ringOpen_ = false;
  io_uring ring_{};
  std::vector<std::unique_ptr<SendBuf>> sendStore_;
  std::vector<SendBuf*> freeSends_;
  SendBuf* orphans_ = nullptr; // sends whose socket was closed before they completed
  uint64_t inflight_ = 0;      // SQEs whose last completion has not been reaped
  bool stopping_ = false;      // finish(): nothing is armed again
};

} // namespace

std::unique_ptr<IoBackend> makeUringBackend(Worker& w) {
  return std::make_unique<UringBackend>(w);
}

Status probeUring() {
  Status st;
  std::thread([&st] {
    io_uring ring{};
    st = openRing(&ring);
    if (st) {
      io_uring_queue_exit(&ring);
    }
  }).join();
  return st;
}

} // namespace veer::proxy
