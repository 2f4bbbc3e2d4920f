// The epoll backend: edge-triggered readiness for every socket, registered once;
// level-triggered listeners, drained in batches of accept4.

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>

#include "proxy/io_backend.h"
#include "proxy/worker.h"

namespace veer::proxy {

namespace {

constexpr int kMaxEvents = 256;
constexpr int kAcceptBatch = 16;

class EpollBackend final : public IoBackend {
public:
  explicit EpollBackend(Worker& w) : w_(w) {}
  ~EpollBackend() override {
    if (epfd_ >= 0) {
      ::close(epfd_);
    }
  }

  Status prepare(Handle* wake) override {
    epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) {
      return osError(errno, "epoll_create1");
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = wake;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, wake->fd, &ev) != 0) {
      return osError(errno, "epoll_ctl");
    }
    return {};
  }

  Status addListener(Listener* l) override {
    epoll_event ev{};
    ev.events = EPOLLIN; // level-triggered: a batch per wakeup, fairly across threads
    ev.data.ptr = l;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, l->fd, &ev) != 0) {
      return osError(errno, "epoll_ctl listener");
    }
    return {};
  }

  Status start() override { return {}; }

  bool wait(int timeoutMs) override {
    n_ = ::epoll_wait(epfd_, events_, kMaxEvents, timeoutMs);
    if (n_ < 0) {
      n_ = 0;
      return errno == EINTR;
    }
    return true;
  }

  void deliver() override {
    for (int i = 0; i < n_; ++i) {
      auto* h = static_cast<Handle*>(events_[i].data.ptr);
      if (h->fd < 0) {
        continue; // closed earlier in this batch
      }
      if (h->kind == Kind::kListener) {
        accept(static_cast<Listener*>(h));
      } else {
        w_.dispatch(h, events_[i].events);
      }
    }
  }

  void finish() override {}

  bool watch(Handle* h) override {
    epoll_event e{};
    e.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    e.data.ptr = h;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, h->fd, &e) != 0) {
      return false;
    }
    h->watched = true;
    return true;
  }

  ssize_t send(Handle* h, const iovec* iov, int cnt) override {
    msghdr msg{};
    msg.msg_iov = const_cast<iovec*>(iov);
    msg.msg_iovlen = cnt;
    ssize_t n;
    do {
      n = ::sendmsg(h->fd, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
  }

  void shutdownWrite(Handle* h) override { ::shutdown(h->fd, SHUT_WR); }

  void close(Handle* h) override {
    if (h->fd < 0) {
      return;
    }
    ::close(h->fd); // leaves the epoll set with its last reference
    h->fd = -1;
    h->watched = false;
  }

  void sweep(uint64_t) override {}
  bool hasTimers() const override { return false; }

private:
  void accept(Listener* l) {
    for (int i = 0; i < kAcceptBatch; ++i) {
      sockaddr_storage peer{};
      socklen_t plen = sizeof(peer);
      int fd =
          ::accept4(l->fd, reinterpret_cast<sockaddr*>(&peer), &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) {
          continue;
        }
        return; // EAGAIN; EMFILE and friends: the listener stays ready, retry next loop
      }
      w_.acceptedClient(l, fd, peer);
    }
  }

  Worker& w_;
  int epfd_ = -1;
  epoll_event events_[kMaxEvents];
  int n_ = 0;
};

} // namespace

std::unique_ptr<IoBackend> makeEpollBackend(Worker& w) {
  return std::make_unique<EpollBackend>(w);
}

} // namespace veer::proxy
