#include "proxy/upstream_pool.h"

#include <netinet/tcp.h>

#include <cerrno>

#include "proxy/io_backend.h"

namespace veer::proxy {

namespace {
// An endpoint that refused a connection (or timed out) is tried after every other
// endpoint of a Decision for this long, so one dead pod costs one failed connect per
// thread, not one per request.
constexpr uint64_t kEjectMs = 10000;
} // namespace

uint64_t UpstreamPool::ejectedSince(const EndpointKey& key, uint64_t now) {
  if (ejectedUntil_.empty()) {
    return 0;
  }
  auto it = ejectedUntil_.find(key);
  if (it == ejectedUntil_.end()) {
    return 0;
  }
  if (now >= it->second) {
    ejectedUntil_.erase(it);
    return 0;
  }
  return it->second - kEjectMs;
}

void UpstreamPool::eject(const EndpointKey& key, uint64_t now) {
  ejectedUntil_[key] = now + kEjectMs;
}

Upstream* UpstreamPool::takeIdle(const EndpointKey& key) {
  auto it = pool_.find(key);
  if (it == pool_.end() || it->second.empty()) {
    return nullptr;
  }
  Upstream* u = it->second.back();
  it->second.pop_back();
  --idle_;
  u->reused = true;
  u->writable = true;
  u->readable = false;
  return u;
}

Upstream* UpstreamPool::connect(const EndpointKey& key, const Endpoint& ep, uint64_t now) {
  Upstream* u = store_.take();
  u->key = key;
  u->addrLen = toSockaddr(ep.addr, ep.port, &u->addr);
  u->in.ensure(opt_.bufferBytes);
  u->reused = false;
  u->eof = false;
  u->readable = false;
  u->writable = false;
  u->fd = ::socket(u->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  bool ok = u->fd >= 0;
  ok = ok && ::setsockopt(u->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0;
  // SO_MARK: the connect hooks let marked sockets through, so this connection goes to
  // the endpoint and is not redirected back to us.
  ok = ok && (opt_.mark == 0 ||
              ::setsockopt(u->fd, SOL_SOCKET, SO_MARK, &opt_.mark, sizeof(opt_.mark)) == 0);
  int rc = ok ? ::connect(u->fd, reinterpret_cast<sockaddr*>(&u->addr), u->addrLen) : -1;
  ok = ok && (rc == 0 || errno == EINPROGRESS) && io_->watch(u);
  if (!ok) {
    eject(key, now); // refused, unreachable, no route
    io_->close(u);
    store_.giveBack(u);
    return nullptr;
  }
  u->connecting = rc != 0;
  if (rc == 0) {
    healthy(key);
  }
  u->writable = rc == 0;
  u->deadline = now + opt_.connectTimeoutMs;
  return u;
}

void UpstreamPool::release(Upstream* u, bool reusable, bool draining, uint64_t now) {
  u->owner = nullptr;
  std::vector<Upstream*>& list = pool_[u->key];
  if (!reusable || draining || list.size() >= opt_.maxIdlePerEndpoint) {
    close(u);
    return;
  }
  u->poolIndex = list.size();
  u->deadline = now + opt_.upstreamIdleTimeoutMs;
  list.push_back(u);
  ++idle_;
}

void UpstreamPool::removeFromPool(Upstream* u) {
  auto it = pool_.find(u->key);
  if (it == pool_.end()) {
    return;
  }
  std::vector<Upstream*>& list = it->second;
  if (u->poolIndex < list.size() && list[u->poolIndex] == u) {
    list[u->poolIndex] = list.back();
    list[u->poolIndex]->poolIndex = u->poolIndex;
    list.pop_back();
    --idle_;
  }
}

void UpstreamPool::close(Upstream* u) {
  if (u->owner == nullptr) {
    removeFromPool(u);
  }
  io_->close(u);
  u->owner = nullptr;
  u->connecting = false;
  u->poolIndex = ~size_t{0};
  store_.retire(u);
}

void UpstreamPool::sweep(uint64_t now) {
  for (auto& [key, list] : pool_) {
    for (size_t i = 0; i < list.size();) {
      if (now >= list[i]->deadline) {
        close(list[i]); // swaps the last one into i
      } else {
        ++i;
      }
    }
  }
}

void UpstreamPool::closeIdle() {
  for (auto& [key, list] : pool_) {
    while (!list.empty()) {
      close(list.back());
    }
  }
}

} // namespace veer::proxy
