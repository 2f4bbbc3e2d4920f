#include "proxy/mirror.h"

#include <netinet/tcp.h>
#include <sys/epoll.h>

#include <cerrno>

#include "proxy/io_backend.h"

namespace veer::proxy {

void MirrorSet::start(const Client& c, uint64_t now) {
  // The kept body only: one that outgrew --retry-buffer-bytes is not copied.
  if (!c.retry.replay || live_ >= opt_.maxMirrors) {
    Counters::bump(counters_.mirrorsDropped);
    return;
  }
  const Endpoint& ep = c.d.mirrorEndpoints[c.d.mirrorFirst];
  sockaddr_storage addr{};
  socklen_t len = toSockaddr(ep.addr, ep.port, &addr);
  int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    Counters::bump(counters_.mirrorsDropped);
    return;
  }
  Mirror* m = store_.take();
  m->fd = fd;
  m->outOff = 0;
  m->out.assign(c.shadowHead);
  m->out.append(c.in.at(c.bodyStart), c.parsePos - c.bodyStart);
  m->deadline = now + opt_.requestTimeoutMs;
  linkFront(list_, m);
  ++live_;
  Counters::bump(counters_.mirrors);
  stats_.connectionOpened(stats_.destinationId(c.table, c.d.mirrorCluster));
  int one = 1;
  bool ok =
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0 &&
      (opt_.mark == 0 || ::setsockopt(fd, SOL_SOCKET, SO_MARK, &opt_.mark, sizeof(opt_.mark)) == 0);
  int rc = ok ? ::connect(fd, reinterpret_cast<sockaddr*>(&addr), len) : -1;
  if (!ok || (rc != 0 && errno != EINPROGRESS) || !io_->watch(m)) {
    close(m);
    return;
  }
  m->connecting = rc != 0; // the first EPOLLOUT says it connected (or why not)
}

void MirrorSet::onEvent(Mirror* m, uint32_t ev) {
  if (ev & (EPOLLERR | EPOLLHUP)) {
    close(m); // refused, reset, or done
    return;
  }
  if (ev & EPOLLOUT) {
    m->connecting = false;
  }
  while (!m->connecting && m->outOff < m->out.size()) {
    iovec iov{m->out.data() + m->outOff, m->out.size() - m->outOff};
    ssize_t n = io_->send(m, &iov, 1);
    if (n < 0) {
      if (errno != EAGAIN) {
        close(m);
        return;
      }
      break;
    }
    m->outOff += static_cast<size_t>(n);
  }
  if (ev & (EPOLLIN | EPOLLRDHUP)) {
    char sink[16384];
    for (;;) {
      ssize_t n = ::recv(m->fd, sink, sizeof(sink), 0);
      if (n > 0) {
        continue; // the answer is not wanted
      }
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n == 0 || errno != EAGAIN) {
        close(m); // the answer ended (Connection: close), or the connection did
        return;
      }
      break;
    }
  }
}

void MirrorSet::close(Mirror* m) {
  io_->close(m);
  unlink(list_, m);
  --live_;
  if (m->out.capacity() > opt_.bufferBytes) {
    std::string().swap(m->out); // a large body's copy: give the memory back
  }
  store_.retire(m);
}

void MirrorSet::sweep(uint64_t now) {
  for (Mirror* m = list_; m != nullptr;) {
    Mirror* next = m->next;
    if (now >= m->deadline) {
      close(m); // a slow mirror is given up, never waited for
    }
    m = next;
  }
}

void MirrorSet::closeAll() {
  while (list_ != nullptr) {
    close(list_);
  }
}

} // namespace veer::proxy
