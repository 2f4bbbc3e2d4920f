#include "proxy/worker.h"

#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

namespace veer::proxy {

// How the engine moves bytes (docs/design.md, "veer-proxy: the engine"):
// - Every socket is registered once, edge-triggered, for IN|OUT|RDHUP. `readable` and
//   `writable` remember readiness; a read shorter than the free space means the socket
//   is drained, so no read ends in EAGAIN on the hot path and no epoll_ctl is needed
//   per request.
// - A connection handles one request at a time: pipelined requests wait in the input
//   buffer, so responses go out in order without a queue.
// - Heads are rewritten into a small per-connection string; bodies are forwarded from
//   the input buffer where they were read, with the head in the same sendmsg (two
//   iovecs). Buffers are bounded: when the other side does not drain, reading stops.
// - Connection objects and their buffers are pooled per thread; no allocation per
//   request once warm.
// - Timers are deadlines on the objects, checked by one sweep at the time source's
//   granularity (100 ms of real time; exactly when a test moves simulated time).

namespace {
constexpr int kListenBacklog = 4096;
} // namespace

Worker::Worker(Engine& engine, TimeSource& time)
    : stats(engine.statsLabels()), engine_(engine), opt_(engine.options()), time_(time),
      pool_(opt_), mirrors_(opt_, counters, stats),
      exchange_(*this, opt_, now_, nowUs_, draining_, io_, pool_, mirrors_, counters, stats) {}

Worker::~Worker() {
  for (auto& l : listeners_) {
    if (l->fd >= 0) {
      ::close(l->fd);
    }
  }
  io_.reset(); // before the wake eventfd, which a backend may watch
  if (wake_.fd >= 0) {
    ::close(wake_.fd);
  }
}

void Worker::useIo(std::unique_ptr<IoBackend> io) {
  io_ = std::move(io);
  pool_.setIo(io_.get());
  mirrors_.setIo(io_.get());
}

Status Worker::init(IoMode io) {
  wake_.fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_.fd < 0) {
    return osError(errno, "eventfd");
  }
  useIo(io == IoMode::kUring ? makeUringBackend(*this) : makeEpollBackend(*this));
  return io_->prepare(&wake_);
}

Status Worker::bindListener(const ListenAddr& addr, size_t index) {
  auto l = std::make_unique<Listener>();
  l->index = index;
  std::string where = addr.str();
  l->fd = ::socket(addr.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (l->fd < 0) {
    return osError(errno, "socket for " + where);
  }
  int one = 1;
  // Data before accept: the first read after accept finds the request (nginx
  // `deferred`, HAProxy `defer-accept`); the timeout is the kernel's SYN-ACK retries.
  int deferSec = opt_.deferAccept ? 1 : 0;
  // TCP_NODELAY is inherited by accepted sockets: one setsockopt per listener, not
  // per connection.
  if (::setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      ::setsockopt(l->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
      ::setsockopt(l->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
      ::setsockopt(l->fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &deferSec, sizeof(deferSec)) != 0 ||
      (addr.addr.ss_family == AF_INET6 &&
       ::setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)) {
    return osError(errno, "setsockopt on listener " + where);
  }
  // IP_TRANSPARENT is not needed: the connect hook rewrites the destination to our
  // own address, and the original one comes back through SO_ORIGINAL_DST.
  if (::bind(l->fd, reinterpret_cast<const sockaddr*>(&addr.addr), addr.len) != 0) {
    return osError(errno, "bind " + where);
  }
  if (::listen(l->fd, kListenBacklog) != 0) {
    return osError(errno, "listen " + where);
  }
  socklen_t blen = sizeof(l->bound);
  ::getsockname(l->fd, reinterpret_cast<sockaddr*>(&l->bound), &blen);
  IpAddr ip = ipOf(l->bound);
  l->wildcard = ip == (ip.v4 ? IpAddr::fromV4(0) : IpAddr{});
  if (Status st = io_->addListener(l.get()); !st) {
    return Error{st.error().code, st.error().message + " " + where};
  }
  listeners_.push_back(std::move(l));
  return {};
}

ListenAddr Worker::boundAddr(size_t i) const {
  ListenAddr a;
  a.len = sizeof(a.addr);
  ::getsockname(listeners_[i]->fd, reinterpret_cast<sockaddr*>(&a.addr), &a.len);
  return a;
}

void Worker::requestStop(uint32_t drainMs) {
  drainMs_.store(drainMs);
  stop_.store(true, std::memory_order_release);
  uint64_t one = 1;
  (void)!::write(wake_.fd, &one, sizeof(one));
}

// --- event loop --------------------------------------------------------------

void Worker::run() {
  time_.attach(wake_.fd);
  readClock();
  nextSweep_ = now_ + time_.granularityMs();
  if (Status st = io_->start(); !st) {
    // Not expected after Engine::create's probe, but a ring can still be refused
    // (memory): this worker then serves on epoll.
    auto epoll = makeEpollBackend(*this);
    bool ok = static_cast<bool>(epoll->prepare(&wake_));
    for (size_t i = 0; ok && i < listeners_.size(); ++i) {
      ok = static_cast<bool>(epoll->addListener(listeners_[i].get()));
    }
    if (!ok || !epoll->start()) {
      time_.detach(wake_.fd);
      return;
    }
    useIo(std::move(epoll));
  }
  for (;;) {
    if (!io_->wait(waitMs())) {
      break;
    }
    readClock();
    io_->deliver();
    if (afterBatch()) {
      break;
    }
    time_.caughtUp(wake_.fd, now_);
  }
  io_->finish();
  time_.detach(wake_.fd);
}

void Worker::readClock() {
  nowUs_ = time_.nowUs();
  now_ = nowUs_ / 1000;
}

bool Worker::hasTimers() const {
  return liveClients_ > 0 || pool_.idle() > 0 || !mirrors_.empty() || draining_ || io_->hasTimers();
}

int Worker::waitMs() const {
  // Simulated time moves only when the test says, which wakes the loop: until then there
  // is nothing to wake for but I/O.
  if (time_.wakesLoops() || !hasTimers()) {
    return -1;
  }
  uint64_t due = nextSweep_ > now_ ? nextSweep_ - now_ : 0;
  return static_cast<int>(std::min<uint64_t>(due, time_.granularityMs()));
}

void Worker::dispatch(Handle* h, uint32_t ev) {
  switch (h->kind) {
  case Kind::kClient:
    onClientEvent(static_cast<Client*>(h), ev);
    break;
  case Kind::kUpstream:
    onUpstreamEvent(static_cast<Upstream*>(h), ev);
    break;
  case Kind::kMirror:
    mirrors_.onEvent(static_cast<Mirror*>(h), ev);
    break;
  case Kind::kWake: {
    uint64_t v;
    (void)!::read(wake_.fd, &v, sizeof(v));
    break;
  }
  case Kind::kListener:
    break; // the backends accept themselves
  }
}

/** After a batch of events: recycling, drain and timers. True when the loop ends. */
bool Worker::afterBatch() {
  clientStore_.recycle();
  pool_.recycle();
  mirrors_.recycle();
  if (stop_.load(std::memory_order_acquire) && !draining_) {
    beginDrain();
  }
  if (now_ >= nextSweep_) {
    nextSweep_ = now_ + time_.granularityMs();
    sweep(now_); // may move nextSweep_ sooner
  }
  if (draining_ && (liveClients_ == 0 || now_ >= drainDeadline_)) {
    while (clients_ != nullptr) {
      closeClient(clients_);
    }
    pool_.closeIdle();
    mirrors_.closeAll();
    return true;
  }
  return false;
}

void Worker::beginDrain() {
  draining_ = true;
  drainDeadline_ = now_ + drainMs_.load();
  for (auto& l : listeners_) {
    io_->close(l.get());
  }
  // Idle keep-alive connections close now; busy ones after their current response.
  for (Client* c = clients_; c != nullptr;) {
    Client* next = c->next;
    if (c->phase == Phase::kHead && !c->req.midMessage() && c->parsePos == c->in.len) {
      closeClient(c);
    } else {
      c->closeAfter = true;
    }
    c = next;
  }
}

void Worker::sweep(uint64_t now) {
  for (Client* c = clients_; c != nullptr;) {
    Client* next = c->next;
    sweepClient(c, now);
    c = next;
  }
  mirrors_.sweep(now);
  pool_.sweep(now);
  io_->sweep(now);
}

void Worker::sweepClient(Client* c, uint64_t now) {
  Upstream* u = c->up;
  if (c->delayUntil > now) {
    wakeAt(c->delayUntil); // not due yet: the loop wakes for it, not a sweep later
  }
  if (c->delayUntil != 0 && now >= c->delayUntil) {
    exchange_.delayEnded(c);
  } else if (u != nullptr && u->connecting && now >= u->deadline) {
    exchange_.connectFailed(c);
  } else if (c->deadline != 0 && now >= c->deadline) {
    exchange_.timedOut(c);
    return; // driven or closed
  } else if (c->phase == Phase::kExchange && c->receiveDeadline != 0 && !c->respHeadSent &&
             now >= c->receiveDeadline) {
    exchange_.receiveTimedOut(c);
  } else if (c->phase == Phase::kExchange && c->streamIdleDeadline != 0 &&
             now >= c->streamIdleDeadline) {
    if (!exchange_.streamIdleTimedOut(c)) {
      return;
    }
  } else if (c->tryDeadline != 0 && now >= c->tryDeadline) {
    exchange_.tryTimedOut(c);
  } else {
    return;
  }
  exchange_.drive(c);
}

std::shared_ptr<const RouteTable> Worker::currentTable() {
  uint64_t g = engine_.generation();
  if (g != tableGen_) {
    table_ = engine_.table();
    tableGen_ = g;
  }
  return table_;
}

void Worker::acceptedClient(Listener* l, int fd, const sockaddr_storage& peer) {
  Counters::bump(counters.accepted);
  Client* c = newClient();
  c->fd = fd;
  c->origin.client = ipOf(peer);
  // The service the client meant: SO_ORIGINAL_DST (answered by our cgroup/getsockopt
  // program after a connect-hook redirect); without a redirect, our own address,
  // which only a wildcard listener needs a syscall to learn.
  sockaddr_storage dst{};
  socklen_t dlen = sizeof(dst);
  int rc = peer.ss_family == AF_INET
               ? ::getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &dlen)
               : ::getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &dst, &dlen);
  if (rc != 0 && !l->wildcard) {
    dst = l->bound;
  } else if (rc != 0) {
    dlen = sizeof(dst);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&dst), &dlen);
  }
  c->origin.service = ipOf(dst);
  c->origin.servicePort = portOf(dst);
  c->readable = true; // deferred accept: the request is (usually) already here
  c->deadline = now_ + opt_.headerTimeoutMs;
  c->headTimer = true;
  c->headStartUs = nowUs_;
  exchange_.drive(c);
}

void Worker::onClientEvent(Client* c, uint32_t ev) {
  if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    c->readable = true;
  }
  if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
    c->writable = true;
  }
  exchange_.drive(c);
}

void Worker::onUpstreamEvent(Upstream* u, uint32_t ev) {
  if (u->owner == nullptr) {
    pool_.close(u); // pooled and idle: the server closed it or sent unasked bytes
    return;
  }
  if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    u->readable = true;
  }
  if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
    u->writable = true;
  }
  Client* c = u->owner;
  if (u->connecting && (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))) {
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      exchange_.connectFailed(c);
    } else {
      u->connecting = false;
      u->deadline = 0;
      pool_.healthy(u->key); // it answers again
    }
  }
  exchange_.drive(c);
}

void Worker::onSendFailed(Handle* h) {
  // What a failed synchronous send does (flushClient, flushUpstream, MirrorSet::onEvent).
  switch (h->kind) {
  case Kind::kClient:
    closeClient(static_cast<Client*>(h)); // the client went away
    break;
  case Kind::kUpstream: {
    auto* u = static_cast<Upstream*>(h);
    if (u->owner == nullptr) {
      pool_.close(u);
      break;
    }
    u->writable = false;
    u->eof = true; // reset: the read side reports it as a failure
    u->readable = true;
    exchange_.drive(u->owner);
    break;
  }
  case Kind::kMirror:
    mirrors_.close(static_cast<Mirror*>(h));
    break;
  case Kind::kListener:
  case Kind::kWake:
    break;
  }
}

// --- lifecycle ---------------------------------------------------------------

Client* Worker::newClient() {
  Client* c = clientStore_.take();
  if (c->upHead.capacity() < 1024) { // first use
    c->upHead.reserve(1024);
    c->out.reserve(1024);
  }
  c->in.ensure(opt_.bufferBytes);
  c->msgStart = c->parsePos = c->sendPos = 0;
  c->req.reset(HTTP_REQUEST, opt_.limits);
  c->readable = c->eof = false;
  c->writable = true;
  c->phase = Phase::kHead;
  c->deadline = c->receiveDeadline = c->streamIdleDeadline = 0;
  c->headTimer = false;
  c->closeAfter = draining_;
  c->tunnelClientEof = c->tunnelUpEof = false;
  c->upgradeReq = false;
  c->out.clear();
  c->outOff = 0;
  c->upHead.clear();
  c->upHeadOff = 0;
  c->up = nullptr;
  linkFront(clients_, c);
  ++liveClients_;
  return c;
}

void Worker::closeClient(Client* c) {
  exchange_.countUnfinished(c);
  exchange_.dropUpstream(c);
  io_->close(c);
  c->table.reset();
  unlink(clients_, c);
  --liveClients_;
  // A buffer grown for one large head goes back to the normal size.
  if (c->in.cap > opt_.bufferBytes) {
    c->in.data.reset();
    c->in.cap = 0;
  }
  clientStore_.retire(c);
}

} // namespace veer::proxy
