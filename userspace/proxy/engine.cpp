#include "proxy/engine.h"

#include <arpa/inet.h>
#include <liburing.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <algorithm>
#include <cstring>
#include <random>
#include <unordered_map>

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
// - Two thin I/O backends under one state machine (docs/design.md, "veer-proxy:
//   io_uring"): epoll, or io_uring where readiness comes from multishot polls (the same
//   events epoll reports), reads stay synchronous recv, and sends are queued as SQEs
//   (their bytes copied, so the state machine may reuse its buffers at once) and
//   submitted together with the wait in one io_uring_enter per loop iteration. A
//   socket has at most one send in flight; the next one waits for its completion as it
//   would wait for EPOLLOUT.

namespace {

constexpr int kMaxEvents = 256;
constexpr int kAcceptBatch = 16;
constexpr uint32_t kTickMs = 100; // timeout sweep period
constexpr int kListenBacklog = 4096;
// Passive ejection: an endpoint that refused a connection (or timed out) is tried after
// every other endpoint of a Decision for this long, so one dead pod costs one failed
// connect per thread, not one per request (Envoy's outlier detection, reduced to
// connect failures).
constexpr uint64_t kEjectMs = 10000;
// Envoy's retry back-off: before retry k, a random wait in [0, (2^k - 1) * 25 ms), at most
// 250 ms.
constexpr uint64_t kBackoffBaseMs = 25;
constexpr uint64_t kBackoffMaxMs = 250;
// What makes a failure before any response retriable (Envoy counts a reset as a 5xx, and
// a connect failure as a reset).
constexpr uint32_t kOnReset = retry_on::k5xx | retry_on::kGatewayError | retry_on::kReset;
constexpr uint32_t kOnConnectFailure = kOnReset | retry_on::kConnectFailure |
                                       retry_on::kResetBeforeRequest;

uint64_t nowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

IpAddr ipOf(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) {
    return IpAddr::fromV4(reinterpret_cast<const sockaddr_in&>(ss).sin_addr.s_addr);
  }
  return IpAddr::fromBytes(&reinterpret_cast<const sockaddr_in6&>(ss).sin6_addr);
}

uint16_t portOf(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in&>(ss).sin_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in6&>(ss).sin6_port);
}

socklen_t toSockaddr(const IpAddr& ip, uint16_t port, sockaddr_storage* ss) {
  std::memset(ss, 0, sizeof(*ss));
  if (ip.v4) {
    auto* a = reinterpret_cast<sockaddr_in*>(ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    a->sin_addr.s_addr = ip.v4NetOrder();
    return sizeof(sockaddr_in);
  }
  auto* a = reinterpret_cast<sockaddr_in6*>(ss);
  a->sin6_family = AF_INET6;
  a->sin6_port = htons(port);
  std::memcpy(&a->sin6_addr, ip.bytes.data(), 16);
  return sizeof(sockaddr_in6);
}

/** A byte buffer that keeps its memory across connections. */
struct Buffer {
  std::unique_ptr<char[]> data;
  size_t cap = 0;
  size_t len = 0;

  void ensure(size_t n) {
    if (cap < n) {
      data.reset(new char[n]);
      cap = n;
    }
    len = 0;
  }
  char* at(size_t off) { return data.get() + off; }
  /** Drops [0, n), moving the rest to the front. */
  void drop(size_t n) {
    if (n > 0) {
      std::memmove(data.get(), data.get() + n, len - n);
      len -= n;
    }
  }
  /** Doubles up to max; false when already there. */
  bool grow(size_t max) {
    if (cap >= max) {
      return false;
    }
    size_t n = std::min(cap * 2, max);
    std::unique_ptr<char[]> d(new char[n]);
    std::memcpy(d.get(), data.get(), len);
    data = std::move(d);
    cap = n;
    return true;
  }
};

/**
 * Reclaims buffer space of one direction: [0, keep) is done with (sent, or before the
 * current message when a head is being read, since a head must stay contiguous).
 * Rewinds for free when everything is done; moves bytes only when the buffer is full.
 */
void reclaim(Buffer& b, size_t& msgStart, size_t& parsePos, size_t& sendPos, bool inHead) {
  size_t keep = inHead ? std::min(msgStart, sendPos) : sendPos;
  if (keep == b.len) {
    b.len = msgStart = parsePos = sendPos = 0;
  } else if (b.len == b.cap && keep > 0) {
    b.drop(keep);
    msgStart = msgStart > keep ? msgStart - keep : 0;
    parsePos -= keep;
    sendPos -= keep;
  }
}

/** The retry_on conditions (config/model.h) a final response status meets. */
uint32_t retryConditions(const Decision& d, int status) {
  uint32_t on = 0;
  if (status >= 500) {
    on |= retry_on::k5xx | (status >= 502 && status <= 504 ? retry_on::kGatewayError : 0);
  } else if (status == 409) {
    on |= retry_on::kRetriable4xx;
  }
  if (!d.retryStatuses.empty() &&
      std::binary_search(d.retryStatuses.begin(), d.retryStatuses.end(), status)) {
    on |= retry_on::kStatusCodes;
  }
  return on;
}

enum class Kind : uint8_t { kListener, kClient, kUpstream, kMirror, kWake };

struct SendBuf;

struct Handle {
  Kind kind;
  int fd = -1;
  bool watched = false; // in epoll, or a multishot poll armed (lazily for clients)
  // io_uring only:
  bool sendWaiting = false;       // a send found the one before still in flight
  bool shutdownAfterSend = false; // SHUT_WR once the send in flight completed
  uint16_t gen = 0;               // bumped at close: older completions are stale
  SendBuf* sending = nullptr;     // the send in flight (at most one per socket)
  explicit Handle(Kind k) : kind(k) {}
};

/** io_uring: the bytes of one queued send, owned by the operation until its completion
 * (the socket's owner may close and be reused before that). */
struct SendBuf {
  std::string data;
  Handle* owner = nullptr; // nullptr once the owner closed: an orphan
  uint64_t deadline = 0;   // an orphan still sending past this is cancelled
  SendBuf* prev = nullptr;
  SendBuf* next = nullptr;
};

// io_uring user_data: an object's address (8-byte aligned, below 2^48) with the operation
// in the low 3 bits and the object's generation in the top 16.
enum Op : uint64_t { kOpPoll = 0, kOpSend = 1, kOpAccept = 2, kOpNone = 3 };
constexpr unsigned kSqEntries = 1024;
constexpr unsigned kCqEntries = 8192;
constexpr size_t kAcceptSlots = 4; // accepts in flight per listener

uint64_t userData(const void* p, Op op, uint16_t gen = 0) {
  return reinterpret_cast<uintptr_t>(p) | op | (uint64_t{gen} << 48);
}

struct EndpointKey {
  std::array<uint8_t, 16> addr{};
  uint16_t port = 0;
  bool operator==(const EndpointKey&) const = default;
};

struct EndpointHash {
  size_t operator()(const EndpointKey& k) const {
    uint64_t h = 1469598103934665603ULL;
    for (uint8_t b : k.addr) {
      h = (h ^ b) * 1099511628211ULL;
    }
    return static_cast<size_t>((h ^ k.port) * 1099511628211ULL);
  }
};

struct Client;

struct Upstream : Handle {
  Upstream() : Handle(Kind::kUpstream) {}
  EndpointKey key;
  sockaddr_storage addr{};
  socklen_t addrLen = 0;
  Buffer in;
  size_t msgStart = 0, parsePos = 0, sendPos = 0;
  MessageParser resp;
  bool connecting = false, readable = false, writable = false, eof = false, reused = false;
  bool gotBytes = false; // a byte of the current response arrived
  size_t sent = 0;       // bytes of the current request written
  Client* owner = nullptr;
  uint64_t deadline = 0; // connect deadline, or idle expiry while pooled
  size_t poolIndex = 0;
};

/** An Istio mirror copy in flight: the whole request (written once), its answer read and
 * dropped until the upstream closes (the copy asks Connection: close). */
struct Mirror : Handle {
  Mirror() : Handle(Kind::kMirror) {}
  std::string out;
  size_t outOff = 0;
  bool connecting = false;
  uint64_t deadline = 0;
  Mirror* prev = nullptr;
  Mirror* next = nullptr;
};

struct Listener;

/** io_uring: one accept in flight, with the peer address it fills. */
struct AcceptSlot {
  Listener* l = nullptr;
  sockaddr_storage peer{};
  socklen_t len = 0;
  bool armed = false;
};

struct Listener : Handle {
  Listener() : Handle(Kind::kListener) {
    for (AcceptSlot& s : slots) {
      s.l = this;
    }
  }
  size_t index = 0; // into EngineOptions::listen
  sockaddr_storage bound{};
  bool wildcard = true; // bound to 0.0.0.0 or ::, so getsockname() tells the address
  AcceptSlot slots[kAcceptSlots];
};

enum class Phase : uint8_t { kHead, kExchange, kReply, kTunnel, kLinger };

// After an error reply the client may still be sending (a body we refused): closing
// with unread bytes would send a reset that can destroy the reply before the client
// reads it. So: shut down our side, discard what comes, close at EOF or after this.
constexpr uint32_t kLingerMs = 2000;

struct Client : Handle {
  Client() : Handle(Kind::kClient) {}
  Origin origin;
  Buffer in;
  size_t msgStart = 0, parsePos = 0, sendPos = 0;
  MessageParser req;
  bool readable = false, writable = true, eof = false;
  Phase phase = Phase::kHead;
  uint64_t deadline = 0;
  bool headTimer = false; // deadline is the header (slowloris) one
  // The exchange in progress.
  std::shared_ptr<const RouteTable> table; // held until the response ends (reload safety)
  Decision d;
  /** The response edits of d, plus a generated Set-Cookie (d.setCookie lives in a
   * per-thread buffer the next route() overwrites, so it is copied here). */
  std::span<const HeaderEdit> respEdits;
  std::vector<HeaderEdit> ownEdits; // storage when respEdits is not d.responseEdits
  bool reqDone = false, respHeadSent = false, respDone = false, closeAfter = false;
  bool keepAlive10 = false, http10 = false, isHead = false, idempotent = false, reqHasBody = false;
  bool upgradeReq = false, forceFresh = false, tunnelUpEof = false, tunnelClientEof = false;
  /** The request from bodyStart on is all still in `in`, so it can be sent again (a retry,
   * a mirror): false once its body outgrew --retry-buffer-bytes. */
  bool replay = false;
  bool relayed = false; // an interim response (100 Continue) went to the client
  size_t bodyStart = 0; // offset in `in` of the body (the end of the head)
  size_t tries = 0;     // the walk over endpoints: the next attempt is (first + tries) % n
  int retried = 0;      // retries spent of the route's budget
  uint64_t requestDeadlineMs = 0;
  uint64_t tryDeadline = 0; // retries.perTryTimeout of the current attempt, 0 = none
  uint64_t delayUntil = 0; // fault.delay or a retry's back-off: the upstream is picked then
  uint64_t startMs = 0;    // when the request was routed
  std::string upHead; // the upstream request head
  size_t upHeadOff = 0;
  std::string shadowHead; // the mirror copy's head, written with upHead (the head's views
                          // into `in` do not outlive the body's reads)
  std::string out; // response heads and local replies for the client
  size_t outOff = 0;
  Upstream* up = nullptr;
  Client* prev = nullptr;
  Client* next = nullptr;
};

enum class Step : uint8_t { kIdle, kProgress, kClosed };

/** Live objects (clients, mirrors) are kept on intrusive lists for the sweep and drain. */
template <class T>
void linkFront(T*& head, T* x) {
  x->prev = nullptr;
  x->next = head;
  if (head != nullptr) {
    head->prev = x;
  }
  head = x;
}

template <class T>
void unlink(T*& head, T* x) {
  if (x->prev != nullptr) {
    x->prev->next = x->next;
  } else {
    head = x->next;
  }
  if (x->next != nullptr) {
    x->next->prev = x->prev;
  }
  x->prev = x->next = nullptr;
}

} // namespace

class Worker {
public:
  Worker(Engine& engine, size_t id) : engine_(engine), opt_(engine.options()), id_(id) {}
  ~Worker() {
    for (auto& l : listeners_) {
      if (l->fd >= 0) {
        ::close(l->fd);
      }
    }
    if (epfd_ >= 0) {
      ::close(epfd_);
    }
    if (ringOpen_) {
      io_uring_queue_exit(&ring_);
    }
    if (wake_.fd >= 0) {
      ::close(wake_.fd);
    }
  }

  Status init(bool uring);
  Status setupEpoll();
  Status watchListener(Listener* l);
  Status bindListener(const ListenAddr& addr, size_t index);
  ListenAddr boundAddr(size_t i) const;
  void run();
  void requestStop(uint32_t drainMs) {
    drainMs_.store(drainMs);
    stop_.store(true, std::memory_order_release);
    uint64_t one = 1;
    (void)!::write(wake_.fd, &one, sizeof(one));
  }

  std::atomic<uint64_t> accepted{0}, requests{0}, upstreamConnects{0}, upstreamReuses{0},
      retries{0}, localReplies{0}, fallbacks{0}, mirrors{0}, mirrorsDropped{0};

private:
  // events
  void runEpoll();
  void runUring();
  void reap();
  void closeRing();
  bool afterBatch();
  void dispatch(Handle* h, uint32_t ev);
  void onAccept(Listener* l);
  void acceptedClient(Listener* l, int fd, const sockaddr_storage& peer);
  void onClientEvent(Client* c, uint32_t ev);
  void onUpstreamEvent(Upstream* u, uint32_t ev);
  void drive(Client* c);
  // phases
  Step stepHead(Client* c);
  Step stepExchange(Client* c);
  Step stepReply(Client* c);
  Step stepTunnel(Client* c);
  Step stepLinger(Client* c);
  void onRequestHead(Client* c);
  void startUpstream(Client* c);
  void connectFailed(Client* c);
  void noEndpoint(Client* c);
  bool mayRetry(const Client* c, uint32_t conditions) const;
  void retry(Client* c, bool backoff);
  void armTry(Client* c);
  void tryTimedOut(Client* c);
  bool keepForReplay(Client* c);
  void wakeAt(uint64_t t) { nextSweep_ = std::min(nextSweep_, t); }
  Step upstreamGone(Client* c);
  Step finishExchange(Client* c);
  Step nextRequest(Client* c);
  void reply(Client* c, int status, std::string_view text, std::string_view location,
             bool close, bool asIs = false);
  void startMirror(Client* c);
  void onMirrorEvent(Mirror* m, uint32_t ev);
  void closeMirror(Mirror* m);
  // io backends
  bool watch(Handle* h);
  ssize_t sendv(Handle* h, const iovec* iov, int cnt);
  void shutdownWrite(Handle* h);
  void closeFd(Handle* h);
  io_uring_sqe* sqe();
  void armAccept(AcceptSlot* s);
  void onCompletion(uint64_t data, int res, uint32_t flags);
  void onSendDone(SendBuf* sb, int res);
  void onSendFailed(Handle* h);
  void releaseSend(SendBuf* sb);
  // io
  ssize_t readSome(int fd, Buffer& b, bool& readable, bool& eof);
  Step flushClient(Client* c, const char* body, size_t bodyLen, size_t* bodySent);
  bool flushUpstream(Client* c, Upstream* u, size_t bodyLen, size_t* bodySent);
  // lifecycle
  Client* newClient();
  void closeClient(Client* c);
  Upstream* takeIdle(const EndpointKey& key);
  /** 0: healthy; else the time the endpoint's ejection started. */
  uint64_t ejectedSince(const EndpointKey& key);
  void releaseUpstream(Upstream* u, bool reusable);
  void closeUpstream(Upstream* u);
  void removeFromPool(Upstream* u);
  void sweep(uint64_t now);
  void beginDrain();
  std::shared_ptr<const RouteTable> currentTable();

  Engine& engine_;
  const EngineOptions& opt_;
  size_t id_;
  int epfd_ = -1;
  bool uring_ = false;
  bool ringOpen_ = false;
  io_uring ring_{};
  std::vector<std::unique_ptr<SendBuf>> sendStore_;
  std::vector<SendBuf*> freeSends_;
  SendBuf* orphans_ = nullptr; // sends whose socket was closed before they completed
  uint64_t inflight_ = 0;      // SQEs whose last completion has not been reaped
  bool stopping_ = false;      // closeRing(): nothing is armed again
  Handle wake_{Kind::kWake};
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<std::unique_ptr<Client>> clientStore_;
  std::vector<Client*> freeClients_, deadClients_;
  std::vector<std::unique_ptr<Upstream>> upstreamStore_;
  std::vector<Upstream*> freeUpstreams_, deadUpstreams_;
  std::vector<std::unique_ptr<Mirror>> mirrorStore_;
  std::vector<Mirror*> freeMirrors_, deadMirrors_;
  Mirror* mirrors_ = nullptr; // every mirror in flight, for timeouts and stop
  size_t liveMirrors_ = 0;
  std::unordered_map<EndpointKey, std::vector<Upstream*>, EndpointHash> pool_;
  std::unordered_map<EndpointKey, uint64_t, EndpointHash> ejectedUntil_;
  size_t pooled_ = 0;
  Client* clients_ = nullptr; // every live client, for timeouts and drain
  size_t liveClients_ = 0;
  uint64_t now_ = 0;
  uint64_t tableGen_ = ~0ULL;
  std::shared_ptr<const RouteTable> table_;
  std::vector<OutField> scratch_;
  std::atomic<bool> stop_{false};
  std::atomic<uint32_t> drainMs_{0};
  bool draining_ = false;
  uint64_t drainDeadline_ = 0;
  uint64_t nextSweep_ = 0; // the next timeout sweep: every kTickMs, sooner for a timer due
  std::minstd_rand rng_{std::random_device{}()}; // back-off jitter
};

// --- setup -------------------------------------------------------------------

Result<ListenAddr> ListenAddr::parse(std::string_view text) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return Error{EINVAL, "listen address '" + std::string(text) + "': want ADDR:PORT"};
  }
  std::string_view host = text.substr(0, colon);
  std::string_view portText = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  unsigned port = 0;
  auto [p, ec] = std::from_chars(portText.data(), portText.data() + portText.size(), port);
  if (ec != std::errc() || p != portText.data() + portText.size() || port > 65535) {
    return Error{EINVAL, "listen address '" + std::string(text) + "': bad port"};
  }
  std::optional<IpAddr> ip = IpAddr::parse(host);
  if (!ip) {
    return Error{EINVAL, "listen address '" + std::string(text) + "': bad IP address"};
  }
  ListenAddr a;
  a.len = toSockaddr(*ip, static_cast<uint16_t>(port), &a.addr);
  return a;
}

std::string ListenAddr::str() const {
  IpAddr ip = ipOf(addr);
  std::string host = ip.str();
  if (!ip.v4) {
    host = "[" + host + "]";
  }
  return host + ":" + std::to_string(portOf(addr));
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

/**
 * Whether this process may use io_uring as the workers will. Tried on a thread of its own:
 * a ring's creator is signalled when the ring is torn down (io_uring's exit work), which
 * makes a blocking call of that thread fail with EINTR; the workers own their rings, so
 * the caller's thread never is.
 */
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

Status Worker::init(bool uring) {
  wake_.fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_.fd < 0) {
    return osError(errno, "eventfd");
  }
  scratch_.reserve(opt_.limits.maxHeaders + 16);
  uring_ = uring; // the ring is opened by run(), on the worker's own thread
  return uring ? Status{} : setupEpoll();
}

Status Worker::setupEpoll() {
  uring_ = false;
  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) {
    return osError(errno, "epoll_create1");
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &wake_;
  if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, wake_.fd, &ev) != 0) {
    return osError(errno, "epoll_ctl");
  }
  for (auto& l : listeners_) {
    if (Status st = watchListener(l.get()); !st) {
      return st;
    }
  }
  return {};
}

Status Worker::watchListener(Listener* l) {
  epoll_event ev{};
  ev.events = EPOLLIN; // level-triggered: a batch per wakeup, fairly across threads
  ev.data.ptr = l;
  if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, l->fd, &ev) != 0) {
    return osError(errno, "epoll_ctl listener");
  }
  return {};
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
  if (!uring_) { // io_uring: run() queues the accepts
    if (Status st = watchListener(l.get()); !st) {
      return Error{st.error().code, st.error().message + " " + where};
    }
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

// --- event loop --------------------------------------------------------------

void Worker::run() {
  now_ = nowMs();
  nextSweep_ = now_ + kTickMs;
  if (uring_ && openRing(&ring_)) {
    ringOpen_ = true;
    runUring();
    return;
  }
  // Not expected after Engine::create's probe, but a ring can still be refused (memory):
  // this worker then serves on epoll.
  if (uring_ && !setupEpoll()) {
    return;
  }
  runEpoll();
}

/** The sweep period, sooner for a timer due; -1 (no timeout) when nothing can expire. */
static int waitMs(bool anyTimers, uint64_t now, uint64_t nextSweep) {
  if (!anyTimers) {
    return -1;
  }
  uint64_t due = nextSweep > now ? nextSweep - now : 0;
  return static_cast<int>(std::min<uint64_t>(due, kTickMs));
}

void Worker::runEpoll() {
  epoll_event events[kMaxEvents];
  for (;;) {
    int timeout = waitMs(liveClients_ > 0 || pooled_ > 0 || liveMirrors_ > 0 || draining_,
                         now_, nextSweep_);
    int n = ::epoll_wait(epfd_, events, kMaxEvents, timeout);
    if (n < 0 && errno != EINTR) {
      break;
    }
    now_ = nowMs();
    for (int i = 0; i < n; ++i) {
      auto* h = static_cast<Handle*>(events[i].data.ptr);
      if (h->fd >= 0) { // else closed earlier in this batch
        dispatch(h, events[i].events);
      }
    }
    if (afterBatch()) {
      break;
    }
  }
}

void Worker::runUring() {
  watch(&wake_);
  for (auto& l : listeners_) {
    for (AcceptSlot& slot : l->slots) {
      armAccept(&slot);
    }
  }
  for (;;) {
    // One io_uring_enter submits everything queued since the last one (sends, polls,
    // closes) and waits.
    int timeout = waitMs(liveClients_ > 0 || pooled_ > 0 || liveMirrors_ > 0 || draining_ ||
                             orphans_ != nullptr,
                         now_, nextSweep_);
    int rc;
    if (timeout < 0) {
      rc = io_uring_submit_and_wait(&ring_, 1);
    } else {
      __kernel_timespec ts{timeout / 1000, (timeout % 1000) * 1000000LL};
      io_uring_cqe* unused;
      rc = io_uring_submit_and_wait_timeout(&ring_, &unused, 1, &ts, nullptr);
    }
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
      break;
    }
    now_ = nowMs();
    reap();
    if (afterBatch()) {
      break;
    }
  }
  closeRing();
}

void Worker::reap() {
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

void Worker::closeRing() {
  // Every socket is closed (or queued to be); what is still in flight (the wake poll,
  // sends to slow peers) is cancelled, and the completions are reaped here, so no
  // operation keeps a socket open after stop() returns. The ring is torn down by its
  // issuer thread.
  io_uring_sqe* s = sqe();
  io_uring_prep_cancel64(s, 0, IORING_ASYNC_CANCEL_ANY);
  io_uring_sqe_set_data64(s, kOpNone);
  stopping_ = true;
  uint64_t until = nowMs() + 1000;
  while (inflight_ > 0 && (now_ = nowMs()) < until) {
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

void Worker::dispatch(Handle* h, uint32_t ev) {
  switch (h->kind) {
  case Kind::kListener:
    onAccept(static_cast<Listener*>(h));
    break;
  case Kind::kClient:
    onClientEvent(static_cast<Client*>(h), ev);
    break;
  case Kind::kUpstream:
    onUpstreamEvent(static_cast<Upstream*>(h), ev);
    break;
  case Kind::kMirror:
    onMirrorEvent(static_cast<Mirror*>(h), ev);
    break;
  case Kind::kWake: {
    uint64_t v;
    (void)!::read(wake_.fd, &v, sizeof(v));
    break;
  }
  }
}

/** After a batch of events: recycling, drain and timers. True when the loop ends. */
bool Worker::afterBatch() {
  // Objects closed in this batch become reusable only now: a later event of the same
  // batch may still name them.
  freeClients_.insert(freeClients_.end(), deadClients_.begin(), deadClients_.end());
  deadClients_.clear();
  freeUpstreams_.insert(freeUpstreams_.end(), deadUpstreams_.begin(), deadUpstreams_.end());
  deadUpstreams_.clear();
  freeMirrors_.insert(freeMirrors_.end(), deadMirrors_.begin(), deadMirrors_.end());
  deadMirrors_.clear();
  if (stop_.load(std::memory_order_acquire) && !draining_) {
    beginDrain();
  }
  if (now_ >= nextSweep_) {
    nextSweep_ = now_ + kTickMs;
    sweep(now_); // may move nextSweep_ sooner
  }
  if (draining_ && (liveClients_ == 0 || now_ >= drainDeadline_)) {
    while (clients_ != nullptr) {
      closeClient(clients_);
    }
    for (auto& [key, list] : pool_) {
      while (!list.empty()) {
        closeUpstream(list.back());
      }
    }
    while (mirrors_ != nullptr) {
      closeMirror(mirrors_);
    }
    return true;
  }
  return false;
}

void Worker::beginDrain() {
  draining_ = true;
  drainDeadline_ = now_ + drainMs_.load();
  for (auto& l : listeners_) {
    closeFd(l.get());
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
    Upstream* u = c->up;
    if (c->delayUntil > now) {
      wakeAt(c->delayUntil); // not due yet: the loop wakes for it, not a tick later
    }
    if (c->delayUntil != 0 && now >= c->delayUntil) {
      c->delayUntil = 0;
      startUpstream(c);
      drive(c);
    } else if (u != nullptr && u->connecting && now >= u->deadline) {
      connectFailed(c);
      drive(c);
    } else if (c->deadline != 0 && now >= c->deadline) {
      switch (c->phase) {
      case Phase::kHead:
        // Slowloris, or an idle keep-alive connection: 408 then close (RFC 9110 15.5.9).
        reply(c, 408, c->headTimer ? "request header timeout" : "idle timeout", {}, true);
        drive(c);
        break;
      case Phase::kExchange:
        if (!c->reqDone) {
          reply(c, 408, "request body timeout", {}, true);
          drive(c);
        } else if (!c->respHeadSent) {
          reply(c, 504, "upstream request timeout", {}, !c->reqDone);
          drive(c);
        } else {
          closeClient(c); // mid-response: nothing else tells the client
        }
        break;
      case Phase::kReply:
      case Phase::kTunnel:
      case Phase::kLinger:
        closeClient(c);
        break;
      }
    } else if (c->tryDeadline != 0 && now >= c->tryDeadline) {
      tryTimedOut(c);
      drive(c);
    }
    c = next;
  }
  for (Mirror* m = mirrors_; m != nullptr;) {
    Mirror* next = m->next;
    if (now >= m->deadline) {
      closeMirror(m); // a slow mirror is given up, never waited for
    }
    m = next;
  }
  for (auto& [key, list] : pool_) {
    for (size_t i = 0; i < list.size();) {
      if (now >= list[i]->deadline) {
        closeUpstream(list[i]); // swaps the last one into i
      } else {
        ++i;
      }
    }
  }
  if (!uring_) {
    return;
  }
  for (auto& l : listeners_) {
    for (AcceptSlot& slot : l->slots) {
      if (l->fd >= 0 && !slot.armed) {
        armAccept(&slot); // it failed (EMFILE and friends): try again each tick
      }
    }
  }
  // A send whose socket we closed still holds it open until the peer takes the bytes
  // (as close() after a send does); one that does not within the idle timeout is reset.
  for (SendBuf* sb = orphans_; sb != nullptr; sb = sb->next) {
    if (sb->deadline != 0 && now >= sb->deadline) {
      io_uring_sqe* q = sqe();
      io_uring_prep_cancel64(q, userData(sb, kOpSend), 0);
      io_uring_sqe_set_data64(q, kOpNone);
      sb->deadline = 0; // cancelled once; its completion frees it
    }
  }
}

std::shared_ptr<const RouteTable> Worker::currentTable() {
  uint64_t g = engine_.generation();
  if (g != tableGen_) {
    table_ = engine_.table();
    tableGen_ = g;
  }
  return table_;
}

void Worker::onAccept(Listener* l) {
  for (int i = 0; i < kAcceptBatch; ++i) {
    sockaddr_storage peer{};
    socklen_t plen = sizeof(peer);
    int fd = ::accept4(l->fd, reinterpret_cast<sockaddr*>(&peer), &plen,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) {
        continue;
      }
      return; // EAGAIN; EMFILE and friends: the listener stays ready, retry next loop
    }
    acceptedClient(l, fd, peer);
  }
}

void Worker::acceptedClient(Listener* l, int fd, const sockaddr_storage& peer) {
  accepted.fetch_add(1, std::memory_order_relaxed);
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
  drive(c);
}

void Worker::onClientEvent(Client* c, uint32_t ev) {
  if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    c->readable = true;
  }
  if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
    c->writable = true;
  }
  drive(c);
}

void Worker::onUpstreamEvent(Upstream* u, uint32_t ev) {
  if (u->owner == nullptr) {
    closeUpstream(u); // pooled and idle: the server closed it or sent unasked bytes
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
      connectFailed(c);
    } else {
      u->connecting = false;
      u->deadline = 0;
      if (!ejectedUntil_.empty()) {
        ejectedUntil_.erase(u->key); // it answers again
      }
    }
  }
  drive(c);
}

void Worker::drive(Client* c) {
  // Each step moves what it can; loop while anything moved (a response may free the
  // connection for the next pipelined request, which may complete at once).
  for (;;) {
    Step s = Step::kIdle;
    switch (c->phase) {
    case Phase::kHead:
      s = stepHead(c);
      break;
    case Phase::kExchange:
      s = stepExchange(c);
      break;
    case Phase::kReply:
      s = stepReply(c);
      break;
    case Phase::kTunnel:
      s = stepTunnel(c);
      break;
    case Phase::kLinger:
      s = stepLinger(c);
      break;
    }
    if (s == Step::kClosed) {
      return;
    }
    if (s != Step::kProgress) {
      break;
    }
  }
  // A client is watched only when it must be waited for. One that sent its whole
  // request and only waits for the upstream is not: with Connection: close it may be
  // answered and closed without ever being registered (one epoll_ctl fewer). Adding
  // reports readiness that is already there, so nothing that arrived before is missed.
  if (!c->watched &&
      !(c->phase == Phase::kExchange && c->reqDone && c->writable && c->out.empty()) &&
      !watch(c)) {
    closeClient(c);
  }
}

// --- I/O backends ------------------------------------------------------------
// The state machine above sees one model: readiness events (EPOLLIN/OUT/RDHUP/ERR),
// synchronous recv, and sends that either take bytes or say EAGAIN. epoll gives it
// directly. io_uring gives the events from multishot polls and accepts from accept
// SQEs; a send copies its bytes into a SendBuf, queues a SEND SQE and reports them all
// taken; the socket then counts as not writable until the completion, which arrives as
// EPOLLOUT (or as a failure). Closes are queued too (after the socket's poll is removed,
// which would otherwise keep it open), so they go out in the same io_uring_enter.

io_uring_sqe* Worker::sqe() {
  io_uring_sqe* s = io_uring_get_sqe(&ring_);
  while (s == nullptr) { // the SQ is full: submit it (order is kept), then there is room
    io_uring_submit(&ring_);
    s = io_uring_get_sqe(&ring_);
  }
  ++inflight_; // each SQE ends in one completion without IORING_CQE_F_MORE
  return s;
}

bool Worker::watch(Handle* h) {
  uint32_t ev = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
  if (!uring_) {
    epoll_event e{};
    e.events = ev | EPOLLET;
    e.data.ptr = h;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, h->fd, &e) != 0) {
      return false;
    }
  } else {
    if (h->kind == Kind::kClient) {
      ev &= ~EPOLLOUT; // a client's writability comes from its send completions
    } else if (h->kind == Kind::kWake) {
      ev = EPOLLIN;
    }
    io_uring_sqe* s = sqe();
    io_uring_prep_poll_multishot(s, h->fd, ev);
    io_uring_sqe_set_data64(s, userData(h, kOpPoll, h->gen));
  }
  h->watched = true;
  return true;
}

ssize_t Worker::sendv(Handle* h, const iovec* iov, int cnt) {
  if (!uring_) {
    msghdr msg{};
    msg.msg_iov = const_cast<iovec*>(iov);
    msg.msg_iovlen = cnt;
    ssize_t n;
    do {
      n = ::sendmsg(h->fd, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
  }
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

void Worker::shutdownWrite(Handle* h) {
  if (h->sending != nullptr) {
    h->shutdownAfterSend = true; // not before the bytes queued ahead of it
    return;
  }
  ::shutdown(h->fd, SHUT_WR);
}

void Worker::closeFd(Handle* h) {
  if (h->fd < 0) {
    return;
  }
  if (!uring_) {
    ::close(h->fd);
  } else {
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
      SendBuf* sb = h->sending;
      sb->owner = nullptr;
      sb->deadline = now_ + opt_.idleTimeoutMs;
      linkFront(orphans_, sb);
    }
    io_uring_sqe* s = sqe();
    io_uring_prep_close(s, h->fd); // after the send queued before it, if any
    io_uring_sqe_set_data64(s, kOpNone);
  }
  h->fd = -1;
  h->watched = h->sendWaiting = h->shutdownAfterSend = false;
  h->sending = nullptr;
  ++h->gen;
}

void Worker::armAccept(AcceptSlot* slot) {
  Listener* l = slot->l;
  slot->len = sizeof(slot->peer);
  io_uring_sqe* s = sqe();
  io_uring_prep_accept(s, l->fd, reinterpret_cast<sockaddr*>(&slot->peer), &slot->len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
  io_uring_sqe_set_data64(s, userData(slot, kOpAccept, l->gen));
  slot->armed = true;
}

void Worker::onCompletion(uint64_t data, int res, uint32_t flags) {
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
      dispatch(h, static_cast<uint32_t>(res));
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
      acceptedClient(l, res, slot->peer);
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

void Worker::onSendDone(SendBuf* sb, int res) {
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
    onSendFailed(h);
    return;
  }
  if (h->shutdownAfterSend) {
    h->shutdownAfterSend = false;
    ::shutdown(h->fd, SHUT_WR);
  }
  if (h->sendWaiting) {
    h->sendWaiting = false;
    if (h->kind != Kind::kUpstream || static_cast<Upstream*>(h)->owner != nullptr) {
      dispatch(h, EPOLLOUT); // (a pooled upstream's event would close it)
    }
  }
}

void Worker::onSendFailed(Handle* h) {
  // What a failed synchronous send does (flushClient, flushUpstream, onMirrorEvent).
  switch (h->kind) {
  case Kind::kClient:
    closeClient(static_cast<Client*>(h)); // the client went away
    break;
  case Kind::kUpstream: {
    auto* u = static_cast<Upstream*>(h);
    if (u->owner == nullptr) {
      closeUpstream(u);
      break;
    }
    u->writable = false;
    u->eof = true; // reset: the read side reports it as a failure
    u->readable = true;
    drive(u->owner);
    break;
  }
  case Kind::kMirror:
    closeMirror(static_cast<Mirror*>(h));
    break;
  case Kind::kListener:
  case Kind::kWake:
    break;
  }
}

void Worker::releaseSend(SendBuf* sb) {
  if (sb->data.capacity() > 2 * opt_.bufferBytes) {
    std::string().swap(sb->data); // a large body's copy: give the memory back
  }
  sb->data.clear();
  sb->owner = nullptr;
  freeSends_.push_back(sb);
}

// --- I/O ---------------------------------------------------------------------

ssize_t Worker::readSome(int fd, Buffer& b, bool& readable, bool& eof) {
  if (!readable || eof || b.len == b.cap) {
    return 0;
  }
  for (;;) {
    size_t room = b.cap - b.len;
    ssize_t n = ::recv(fd, b.at(b.len), room, 0);
    if (n > 0) {
      b.len += n;
      if (static_cast<size_t>(n) < room) {
        readable = false; // drained: edge-triggered epoll reports the next arrival
      }
      return n;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    readable = false;
    if (n == 0 || errno != EAGAIN) {
      eof = true; // EOF, or ECONNRESET and friends
    }
    return 0;
  }
}

Step Worker::flushClient(Client* c, const char* body, size_t bodyLen, size_t* bodySent) {
  *bodySent = 0;
  size_t headLen = c->out.size() - c->outOff;
  if (headLen + bodyLen == 0) {
    return Step::kIdle;
  }
  if (!c->writable) {
    return Step::kIdle;
  }
  iovec iov[2];
  int cnt = 0;
  if (headLen > 0) {
    iov[cnt++] = {c->out.data() + c->outOff, headLen};
  }
  if (bodyLen > 0) {
    iov[cnt++] = {const_cast<char*>(body), bodyLen};
  }
  ssize_t n = sendv(c, iov, cnt);
  if (n < 0) {
    c->writable = false;
    if (errno == EAGAIN) {
      return Step::kIdle;
    }
    closeClient(c); // the client went away
    return Step::kClosed;
  }
  size_t w = static_cast<size_t>(n);
  size_t h = std::min(w, headLen);
  c->outOff += h;
  if (c->outOff == c->out.size()) {
    c->out.clear();
    c->outOff = 0;
  }
  *bodySent = w - h;
  if (w < headLen + bodyLen) {
    c->writable = false;
  }
  return Step::kProgress;
}

bool Worker::flushUpstream(Client* c, Upstream* u, size_t bodyLen, size_t* bodySent) {
  *bodySent = 0;
  size_t headLen = c->upHead.size() - c->upHeadOff;
  if (headLen + bodyLen == 0 || !u->writable || u->connecting) {
    return false;
  }
  iovec iov[2];
  int cnt = 0;
  if (headLen > 0) {
    iov[cnt++] = {c->upHead.data() + c->upHeadOff, headLen};
  }
  if (bodyLen > 0) {
    iov[cnt++] = {c->in.at(c->sendPos), bodyLen};
  }
  ssize_t n = sendv(u, iov, cnt);
  if (n < 0) {
    u->writable = false;
    if (errno != EAGAIN) {
      u->eof = true; // reset: the read side reports it as a failure
      u->readable = true;
    }
    return false;
  }
  size_t w = static_cast<size_t>(n);
  size_t h = std::min(w, headLen);
  c->upHeadOff += h;
  *bodySent = w - h;
  u->sent += w;
  if (w < headLen + bodyLen) {
    u->writable = false;
  }
  return true;
}

// --- request head ------------------------------------------------------------

Step Worker::stepHead(Client* c) {
  bool moved = false;
  for (;;) {
    size_t used = 0;
    ParseEvent e = c->req.execute(c->in.at(c->msgStart), c->parsePos - c->msgStart,
                                  c->in.len - c->msgStart, &used);
    c->parsePos += used;
    if (e == ParseEvent::kHead) {
      onRequestHead(c);
      return Step::kProgress;
    }
    if (e == ParseEvent::kError) {
      reply(c, c->req.errorStatus(), c->req.errorText(), {}, true);
      return Step::kProgress;
    }
    if (e != ParseEvent::kNeedMore) {
      reply(c, 400, "malformed request", {}, true); // cannot happen before a head
      return Step::kProgress;
    }
    if (c->req.midMessage() && !c->headTimer) {
      c->headTimer = true;
      c->deadline = now_ + opt_.headerTimeoutMs;
    }
    // Need more bytes. Make room: drop what is before the message, then grow up to one
    // maximal head (only a head being read needs to be contiguous).
    reclaim(c->in, c->msgStart, c->parsePos, c->sendPos, true);
    if (c->in.len == c->in.cap && !c->in.grow(opt_.limits.maxHeaderBytes + 1024)) {
      reply(c, 431, "request head too large", {}, true);
      return Step::kProgress;
    }
    ssize_t n = readSome(c->fd, c->in, c->readable, c->eof);
    if (n > 0) {
      moved = true;
      continue;
    }
    if (c->eof) {
      // The client closed. Between requests that is the normal end; inside a head
      // there is nobody left to answer.
      closeClient(c);
      return Step::kClosed;
    }
    return moved ? Step::kIdle : Step::kIdle;
  }
}

void Worker::onRequestHead(Client* c) {
  requests.fetch_add(1, std::memory_order_relaxed);
  const ParsedHead& h = c->req.head();
  c->headTimer = false;
  c->reqDone = false;
  c->respHeadSent = c->respDone = false;
  c->closeAfter = !h.keepAlive || draining_;
  c->keepAlive10 = h.httpMinor == 0 && h.keepAlive;
  c->http10 = h.httpMinor == 0;
  c->isHead = h.isHead;
  c->idempotent = h.idempotent;
  c->reqHasBody = h.hasBody();
  c->upgradeReq = h.upgrade;
  c->forceFresh = false;
  c->tries = 0;
  c->retried = 0;
  c->relayed = false;
  c->replay = true;
  c->delayUntil = c->tryDeadline = 0;
  c->startMs = now_;
  c->sendPos = c->parsePos; // the raw head is not forwarded; upHead replaces it
  c->bodyStart = c->parsePos;
  if (h.isConnect) {
    reply(c, 501, "CONNECT is not supported", {}, true);
    return;
  }
  c->table = currentTable();
  if (!c->table) {
    reply(c, 503, "no route table loaded", {}, c->reqHasBody || c->closeAfter);
    return;
  }
  RequestHead rh{h.method, h.target, h.host, h.headers};
  c->d = c->table->route(rh, c->origin);
  c->respEdits = c->d.responseEdits;
  if (!c->d.setCookie.empty()) {
    // consistentHash httpCookie with a ttl and no cookie yet: hand one out, as Envoy does,
    // so the client's next requests hash to the same endpoint.
    c->ownEdits.assign(c->d.responseEdits.begin(), c->d.responseEdits.end());
    c->ownEdits.push_back(
        HeaderEdit{HeaderEdit::Op::kAdd, "set-cookie", std::string(c->d.setCookie)});
    c->respEdits = c->ownEdits;
  }
  if (c->d.kind == Decision::Kind::kRespond || c->d.endpoints.empty()) {
    bool asIs = c->d.kind == Decision::Kind::kRespond && c->d.direct;
    std::string_view why = asIs                 ? c->d.body
                           : c->d.reason.empty() ? std::string_view("no route")
                                                 : c->d.reason;
    reply(c, c->d.kind == Decision::Kind::kRespond ? c->d.status : 503, why, c->d.location,
          c->reqHasBody || c->closeAfter, asIs);
    return;
  }
  writeUpstreamRequest(h, c->d, scratch_, c->upHead);
  c->upHeadOff = 0;
  if (!c->d.mirrorEndpoints.empty()) {
    writeUpstreamRequest(h, c->d, scratch_, c->shadowHead, true);
  }
  c->phase = Phase::kExchange;
  // While the request body streams, a stall is an idle timeout; the route's timeout
  // runs from the end of the request (as Envoy's route timeout does).
  c->requestDeadlineMs = c->d.timeoutMs != 0 ? c->d.timeoutMs : opt_.requestTimeoutMs;
  c->deadline = now_ + opt_.idleTimeoutMs;
  if (c->d.delayMs > 0) {
    // fault.delay: hold the request (its body waits in the buffer), then forward it.
    // The sweep starts it, so the delay has the tick's granularity.
    c->delayUntil = now_ + c->d.delayMs;
    c->deadline = c->delayUntil + opt_.idleTimeoutMs;
    wakeAt(c->delayUntil);
    return;
  }
  startUpstream(c);
}

// --- upstream ----------------------------------------------------------------

uint64_t Worker::ejectedSince(const EndpointKey& key) {
  if (ejectedUntil_.empty()) {
    return 0;
  }
  auto it = ejectedUntil_.find(key);
  if (it == ejectedUntil_.end()) {
    return 0;
  }
  if (now_ >= it->second) {
    ejectedUntil_.erase(it);
    return 0;
  }
  return it->second - kEjectMs;
}

void Worker::startUpstream(Client* c) {
  const Decision& d = c->d;
  size_t n = d.endpoints.size();
  // Two passes over the endpoints from the walk's position: the healthy ones, then the
  // ones ejected before this request (the last chance when every endpoint looks down).
  // The walk only moves forward, so a retry goes to an endpoint not tried yet while there
  // is one (Envoy's previous_hosts predicate, which Istio configures).
  for (size_t scanned = 0; scanned < 2 * n; ++scanned) {
    bool lastChance = scanned >= n;
    const Endpoint& ep = d.endpoints[(d.first + c->tries) % n];
    EndpointKey key;
    key.addr = ep.addr.bytes;
    key.port = ep.port;
    uint64_t since = ejectedSince(key);
    if (lastChance ? (since == 0 || since >= c->startMs) : since != 0) {
      ++c->tries;
      continue;
    }
    Upstream* u = c->forceFresh ? nullptr : takeIdle(key);
    if (u != nullptr) {
      upstreamReuses.fetch_add(1, std::memory_order_relaxed);
    } else {
      if (freeUpstreams_.empty()) {
        upstreamStore_.push_back(std::make_unique<Upstream>());
        freeUpstreams_.push_back(upstreamStore_.back().get());
      }
      u = freeUpstreams_.back();
      freeUpstreams_.pop_back();
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
      // SO_MARK: the connect hooks let marked sockets through, so this connection goes
      // to the endpoint and is not redirected back to us.
      ok = ok && (opt_.mark == 0 ||
                  ::setsockopt(u->fd, SOL_SOCKET, SO_MARK, &opt_.mark, sizeof(opt_.mark)) == 0);
      int rc = ok ? ::connect(u->fd, reinterpret_cast<sockaddr*>(&u->addr), u->addrLen) : -1;
      ok = ok && (rc == 0 || errno == EINPROGRESS) && watch(u);
      if (!ok) {
        ejectedUntil_[key] = now_ + kEjectMs;
        closeFd(u);
        freeUpstreams_.push_back(u);
        ++c->tries; // refused, unreachable, no route: the next endpoint, if retries allow
        if (!mayRetry(c, kOnConnectFailure)) {
          break;
        }
        ++c->retried;
        retries.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      upstreamConnects.fetch_add(1, std::memory_order_relaxed);
      u->connecting = rc != 0;
      if (rc == 0 && !ejectedUntil_.empty()) {
        ejectedUntil_.erase(key);
      }
      u->writable = rc == 0;
      u->deadline = now_ + opt_.connectTimeoutMs;
    }
    u->owner = c;
    u->msgStart = u->parsePos = u->sendPos = 0;
    u->in.len = 0;
    u->gotBytes = false;
    u->sent = 0;
    u->resp.reset(HTTP_RESPONSE, opt_.limits);
    u->resp.setNoBody(c->isHead);
    c->up = u;
    c->forceFresh = false;
    armTry(c);
    return;
  }
  noEndpoint(c);
}

void Worker::noEndpoint(Client* c) {
  if (!c->d.fallbackEndpoints.empty()) {
    // ASM fallback case noavailabled: no endpoint of the chosen subset accepted the
    // connection (or the retries ran out on them), so the fallback subset's endpoints are
    // tried the same way, once: its first attempt is not a retry.
    c->d.endpoints = c->d.fallbackEndpoints;
    c->d.first = c->d.fallbackFirst;
    c->d.cluster = c->d.fallbackCluster;
    c->d.fallbackEndpoints = {};
    c->tries = 0;
    fallbacks.fetch_add(1, std::memory_order_relaxed);
    startUpstream(c);
    return;
  }
  c->up = nullptr;
  reply(c, 503, "upstream connect error: no endpoint accepted the connection", {},
        !c->reqDone && c->reqHasBody);
}

void Worker::connectFailed(Client* c) {
  Upstream* u = c->up;
  c->up = nullptr;
  ejectedUntil_[u->key] = now_ + kEjectMs;
  closeUpstream(u);
  ++c->tries;
  if (!mayRetry(c, kOnConnectFailure)) {
    noEndpoint(c);
    return;
  }
  ++c->retried;
  retries.fetch_add(1, std::memory_order_relaxed);
  c->tryDeadline = 0;
  startUpstream(c);
}

bool Worker::mayRetry(const Client* c, uint32_t conditions) const {
  // Never once the client saw a byte of an answer; a request sent in part only while all
  // of it is still here (a connect failure sent nothing, so it needs no replay).
  int budget = c->d.retries >= 0 ? c->d.retries : opt_.retries;
  return (c->d.retryOn & conditions) != 0 && c->retried < budget && !c->relayed &&
         !c->respHeadSent && (c->replay || conditions == kOnConnectFailure);
}

void Worker::retry(Client* c, bool backoff) {
  ++c->retried;
  ++c->tries; // another endpoint, while there is one not tried
  retries.fetch_add(1, std::memory_order_relaxed);
  c->sendPos = c->bodyStart; // the whole request again: head, then the kept body
  c->upHeadOff = 0;
  c->tryDeadline = 0;
  if (!backoff) {
    startUpstream(c);
    return;
  }
  uint64_t mult = (uint64_t{1} << std::min(c->retried, 8)) - 1;
  uint64_t cap = std::min(mult * kBackoffBaseMs, kBackoffMaxMs);
  c->delayUntil = now_ + 1 + rng_() % cap; // never 0: 0 means no delay
  wakeAt(c->delayUntil);
}

void Worker::armTry(Client* c) {
  uint32_t t = c->d.perTryTimeoutMs;
  c->tryDeadline = c->reqDone && c->up != nullptr && t != 0 && t != kNoTimeout ? now_ + t : 0;
}

void Worker::tryTimedOut(Client* c) {
  c->tryDeadline = 0;
  if (c->phase != Phase::kExchange || c->up == nullptr || c->respHeadSent || c->relayed) {
    return; // Envoy: once the response started downstream, only the route timeout counts
  }
  if (c->up->connecting) {
    connectFailed(c); // not even connected within the attempt's time: a connect failure
    return;
  }
  Upstream* u = c->up;
  c->up = nullptr;
  closeUpstream(u);
  if (mayRetry(c, kOnReset)) {
    retry(c, true);
    return;
  }
  reply(c, 504, "upstream per try timeout", {}, !c->reqDone);
}

bool Worker::keepForReplay(Client* c) {
  // Keeps the request body in `in` for a retry: compacts, then grows up to the head plus
  // --retry-buffer-bytes. A body larger than that streams on as before, unreplayable.
  if (!c->replay || c->in.len < c->in.cap) {
    return c->replay;
  }
  if (c->msgStart > 0) {
    size_t drop = c->msgStart;
    c->in.drop(drop);
    c->msgStart = 0;
    c->bodyStart -= drop;
    c->parsePos -= drop;
    c->sendPos -= drop;
    return true;
  }
  if (c->in.grow(c->bodyStart + opt_.retryBufferBytes)) {
    return true;
  }
  c->replay = false;
  return false;
}

Upstream* Worker::takeIdle(const EndpointKey& key) {
  auto it = pool_.find(key);
  if (it == pool_.end() || it->second.empty()) {
    return nullptr;
  }
  Upstream* u = it->second.back();
  it->second.pop_back();
  --pooled_;
  u->reused = true;
  u->writable = true;
  u->readable = false;
  return u;
}

void Worker::releaseUpstream(Upstream* u, bool reusable) {
  u->owner = nullptr;
  std::vector<Upstream*>& list = pool_[u->key];
  if (!reusable || draining_ || list.size() >= opt_.maxIdlePerEndpoint) {
    closeUpstream(u);
    return;
  }
  u->poolIndex = list.size();
  u->deadline = now_ + opt_.upstreamIdleTimeoutMs;
  list.push_back(u);
  ++pooled_;
}

void Worker::removeFromPool(Upstream* u) {
  auto it = pool_.find(u->key);
  if (it == pool_.end()) {
    return;
  }
  std::vector<Upstream*>& list = it->second;
  if (u->poolIndex < list.size() && list[u->poolIndex] == u) {
    list[u->poolIndex] = list.back();
    list[u->poolIndex]->poolIndex = u->poolIndex;
    list.pop_back();
    --pooled_;
  }
}

void Worker::closeUpstream(Upstream* u) {
  if (u->owner == nullptr) {
    removeFromPool(u);
  }
  closeFd(u);
  u->owner = nullptr;
  u->connecting = false;
  u->poolIndex = ~size_t{0};
  deadUpstreams_.push_back(u);
}

// --- exchange ----------------------------------------------------------------

Step Worker::upstreamGone(Client* c) {
  Upstream* u = c->up;
  // The connection ended before a response head. A pooled connection the server had
  // closed (the keep-alive race) is not the endpoint's fault: the request goes again on a
  // fresh connection to the same endpoint, outside the retry budget, when nothing of a
  // response came and it is safe (RFC 9110 9.2.2: nothing was written, or an idempotent
  // request whose bytes are all still here). Otherwise it is Envoy's reset, retried when
  // the route's retryOn says so.
  if (u->reused && !u->gotBytes && !c->relayed &&
      (u->sent == 0 || (c->idempotent && c->replay))) {
    c->up = nullptr;
    closeUpstream(u);
    c->forceFresh = true;
    if (c->replay) {
      c->sendPos = c->bodyStart;
    }
    c->upHeadOff = 0;
    retries.fetch_add(1, std::memory_order_relaxed);
    startUpstream(c);
    return Step::kProgress;
  }
  c->up = nullptr;
  closeUpstream(u);
  if (mayRetry(c, kOnReset | (u->sent == 0 ? retry_on::kResetBeforeRequest : 0))) {
    retry(c, true);
    return Step::kProgress;
  }
  if (!c->respHeadSent) {
    reply(c, 502, "upstream reset before response", {}, true);
    return Step::kProgress;
  }
  closeClient(c); // mid-response: closing is the only way to say it was cut
  return Step::kClosed;
}

Step Worker::stepExchange(Client* c) {
  Upstream* u = c->up;
  if (u == nullptr) {
    return Step::kIdle;
  }
  bool moved = false;

  // Request: parse what is buffered (to find the end of the body), send, read more.
  if (!c->reqDone) {
    size_t used = 0;
    ParseEvent e = c->req.execute(c->in.at(c->msgStart), c->parsePos - c->msgStart,
                                  c->in.len - c->msgStart, &used);
    c->parsePos += used;
    moved |= used > 0;
    if (e == ParseEvent::kComplete || e == ParseEvent::kUpgrade) {
      c->reqDone = true;
      c->deadline = now_ + c->requestDeadlineMs;
      armTry(c);
      if (!c->d.mirrorEndpoints.empty() && e == ParseEvent::kComplete) {
        startMirror(c);
      }
      moved = true;
    } else if (e == ParseEvent::kError) {
      // A bad chunk inside the body: the upstream got part of it. Stop both sides.
      c->up = nullptr;
      closeUpstream(u);
      if (!c->respHeadSent) {
        reply(c, 400, c->req.errorText(), {}, true);
        return Step::kProgress;
      }
      closeClient(c);
      return Step::kClosed;
    }
  }
  size_t sent = 0;
  if (flushUpstream(c, u, c->parsePos - c->sendPos, &sent)) {
    c->sendPos += sent;
    moved = true;
  }
  if (!c->reqDone) {
    if (!keepForReplay(c)) {
      reclaim(c->in, c->msgStart, c->parsePos, c->sendPos, false);
    }
    if (readSome(c->fd, c->in, c->readable, c->eof) > 0) {
      c->deadline = now_ + opt_.idleTimeoutMs;
      moved = true;
    } else if (c->eof && c->parsePos == c->in.len) {
      c->up = nullptr; // the client left inside its request
      closeUpstream(u);
      closeClient(c);
      return Step::kClosed;
    }
  }

  // Response: read, parse, send to the client.
  if (!u->connecting) {
    reclaim(u->in, u->msgStart, u->parsePos, u->sendPos, u->resp.inHead());
    ssize_t n = readSome(u->fd, u->in, u->readable, u->eof);
    if (n > 0) {
      u->gotBytes = true;
      moved = true;
    }
    while (!c->respDone) {
      size_t used = 0;
      ParseEvent e = u->resp.execute(u->in.at(u->msgStart), u->parsePos - u->msgStart,
                                     u->in.len - u->msgStart, &used);
      u->parsePos += used;
      if (e == ParseEvent::kNeedMore && u->eof && u->parsePos == u->in.len) {
        e = u->resp.finish();
        if (e == ParseEvent::kNeedMore || (e == ParseEvent::kError && !u->gotBytes)) {
          return upstreamGone(c);
        }
      }
      if (e == ParseEvent::kNeedMore) {
        if (u->resp.inHead() && u->in.len == u->in.cap) {
          reclaim(u->in, u->msgStart, u->parsePos, u->sendPos, true);
          if (u->in.len < u->in.cap || u->in.grow(opt_.limits.maxHeaderBytes + 1024)) {
            if (readSome(u->fd, u->in, u->readable, u->eof) > 0) {
              continue;
            }
          } else {
            e = ParseEvent::kError; // response head over the limit
          }
        }
        if (e == ParseEvent::kNeedMore) {
          break;
        }
      }
      moved = true;
      if (e == ParseEvent::kError) {
        c->up = nullptr;
        closeUpstream(u);
        if (!c->respHeadSent) {
          reply(c, 502, "upstream sent an invalid response", {}, true);
          return Step::kProgress;
        }
        closeClient(c);
        return Step::kClosed;
      }
      if (e == ParseEvent::kHead) {
        const ParsedHead& h = u->resp.head();
        u->sendPos = u->parsePos; // the raw head is replaced by ours
        if (h.status == 101) {
          if (!c->upgradeReq) {
            c->up = nullptr;
            closeUpstream(u);
            reply(c, 502, "upstream switched protocols unasked", {}, true);
            return Step::kProgress;
          }
          writeDownstreamResponse(h, c->respEdits, false, false, scratch_, c->out);
          c->respHeadSent = true;
        } else if (h.status < 200) {
          // Interim (100 Continue, 103): relayed as they come; HTTP/1.0 clients
          // cannot take them (RFC 9110 15.2).
          if (!c->http10) {
            writeDownstreamResponse(h, {}, false, false, scratch_, c->out);
            c->relayed = true; // the client may act on it: no retry from here on
          }
        } else if (mayRetry(c, retryConditions(c->d, h.status))) {
          c->up = nullptr; // the answer is dropped with its connection (Envoy resets it)
          closeUpstream(u);
          retry(c, true);
          return Step::kProgress;
        } else {
          // A body that ends at EOF cannot be followed by another response.
          bool delimited = h.chunked || h.contentLength || c->isHead || h.status == 204 ||
                           h.status == 304;
          if (!delimited) {
            c->closeAfter = true;
          }
          writeDownstreamResponse(h, c->respEdits, c->closeAfter, c->keepAlive10,
                                  scratch_, c->out);
          c->respHeadSent = true;
        }
        continue;
      }
      // kComplete or kUpgrade: the message ended at parsePos.
      const ParsedHead& h = u->resp.head();
      if (h.status < 200 && h.status != 101) {
        u->msgStart = u->sendPos = u->parsePos; // interim: the final response follows
        continue;
      }
      c->respDone = true;
      if (e == ParseEvent::kUpgrade || h.status == 101) {
        c->phase = Phase::kTunnel;
        c->deadline = now_ + opt_.tunnelIdleTimeoutMs;
        c->sendPos = c->parsePos;
        return Step::kProgress;
      }
    }
  }

  // Write the response out: head(s) in c->out, body straight from the upstream buffer.
  size_t bodyLen = u->parsePos - u->sendPos;
  size_t sentBody = 0;
  Step s = flushClient(c, u->in.at(u->sendPos), bodyLen, &sentBody);
  if (s == Step::kClosed) {
    return s;
  }
  u->sendPos += sentBody;
  moved |= s == Step::kProgress;
  if (c->respDone && c->out.empty() && u->sendPos == u->parsePos) {
    return finishExchange(c);
  }
  return moved ? Step::kProgress : Step::kIdle;
}

Step Worker::finishExchange(Client* c) {
  Upstream* u = c->up;
  c->up = nullptr;
  c->tryDeadline = 0;
  bool reusable = c->reqDone && c->sendPos == c->parsePos &&
                  c->upHeadOff == c->upHead.size() && u->resp.head().keepAlive && !u->eof &&
                  u->parsePos == u->in.len;
  releaseUpstream(u, reusable);
  if (!c->reqDone) {
    c->closeAfter = true; // answered before the request ended: its rest is unreadable
  }
  return nextRequest(c);
}

Step Worker::nextRequest(Client* c) {
  c->table.reset();
  if (c->closeAfter || draining_) {
    closeClient(c);
    return Step::kClosed;
  }
  if (c->upgradeReq) {
    c->req.reset(HTTP_REQUEST, opt_.limits); // the parser stops for good after an upgrade
  }
  c->phase = Phase::kHead;
  c->msgStart = c->sendPos = c->parsePos;
  c->headTimer = false;
  c->deadline = now_ + opt_.idleTimeoutMs;
  if (c->parsePos == c->in.len) {
    c->in.len = c->msgStart = c->sendPos = c->parsePos = 0;
    if (c->in.cap > opt_.bufferBytes) {
      c->in.data.reset(); // grown to keep a body for a retry: back to the normal size
      c->in.cap = 0;
      c->in.ensure(opt_.bufferBytes);
    }
  }
  return Step::kProgress;
}

void Worker::reply(Client* c, int status, std::string_view text, std::string_view location,
                   bool close, bool asIs) {
  localReplies.fetch_add(1, std::memory_order_relaxed);
  if (c->up != nullptr) {
    Upstream* u = c->up;
    c->up = nullptr;
    closeUpstream(u);
  }
  c->delayUntil = c->tryDeadline = 0; // no timer may start an upstream for this request now
  c->closeAfter = c->closeAfter || close || draining_;
  c->out.clear();
  c->outOff = 0;
  writeLocalResponse(status, text, location, c->closeAfter, c->out, asIs);
  c->phase = Phase::kReply;
}

Step Worker::stepReply(Client* c) {
  size_t sent = 0;
  Step s = flushClient(c, nullptr, 0, &sent);
  if (s == Step::kClosed) {
    return s;
  }
  if (!c->out.empty()) {
    return s;
  }
  if (!c->closeAfter && !c->reqDone) {
    // Answered from the head (no route, redirect, directResponse, fault abort): the end
    // of the bodiless request is still in the parser, to be taken before the next head.
    size_t used = 0;
    size_t at = c->parsePos - c->msgStart;
    if (c->req.execute(c->in.at(c->msgStart), at, at, &used) != ParseEvent::kComplete) {
      c->closeAfter = true;
    }
  }
  if (c->closeAfter) {
    shutdownWrite(c);
    c->phase = Phase::kLinger;
    c->deadline = now_ + kLingerMs;
    return Step::kProgress;
  }
  c->sendPos = c->parsePos;
  return nextRequest(c);
}

Step Worker::stepLinger(Client* c) {
  for (;;) {
    c->in.len = 0;
    if (readSome(c->fd, c->in, c->readable, c->eof) == 0) {
      break;
    }
  }
  if (c->eof) {
    closeClient(c);
    return Step::kClosed;
  }
  return Step::kIdle;
}

Step Worker::stepTunnel(Client* c) {
  Upstream* u = c->up;
  bool moved = false;
  // client -> upstream
  c->parsePos = c->in.len;
  size_t sent = 0;
  if (flushUpstream(c, u, c->parsePos - c->sendPos, &sent)) {
    c->sendPos += sent;
    moved = true;
  }
  if (c->sendPos == c->in.len) {
    c->in.len = c->msgStart = c->parsePos = c->sendPos = 0;
  }
  if (readSome(c->fd, c->in, c->readable, c->eof) > 0) {
    moved = true;
  }
  if (c->eof && c->sendPos == c->in.len && !c->tunnelClientEof) {
    c->tunnelClientEof = true;
    shutdownWrite(u);
  }
  // upstream -> client
  u->parsePos = u->in.len;
  Step s = flushClient(c, u->in.at(u->sendPos), u->parsePos - u->sendPos, &sent);
  if (s == Step::kClosed) {
    return s;
  }
  u->sendPos += sent;
  moved |= s == Step::kProgress;
  if (u->sendPos == u->in.len) {
    u->in.len = u->msgStart = u->parsePos = u->sendPos = 0;
  }
  if (readSome(u->fd, u->in, u->readable, u->eof) > 0) {
    moved = true;
  }
  if (u->eof && u->sendPos == u->in.len && c->out.empty() && !c->tunnelUpEof) {
    c->tunnelUpEof = true;
    shutdownWrite(c);
  }
  if (c->tunnelClientEof && c->tunnelUpEof) {
    closeClient(c);
    return Step::kClosed;
  }
  if (moved) {
    c->deadline = now_ + opt_.tunnelIdleTimeoutMs;
  }
  return moved ? Step::kProgress : Step::kIdle;
}

// --- mirror ------------------------------------------------------------------

void Worker::startMirror(Client* c) {
  // Fire and forget: a copy of the whole request (the kept body, so one that outgrew
  // --retry-buffer-bytes is not copied) to one endpoint of the mirror cluster. Nothing
  // of it reaches the client or delays the request; past maxMirrors copies are dropped.
  if (!c->replay || liveMirrors_ >= opt_.maxMirrors) {
    mirrorsDropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const Endpoint& ep = c->d.mirrorEndpoints[c->d.mirrorFirst];
  sockaddr_storage addr{};
  socklen_t len = toSockaddr(ep.addr, ep.port, &addr);
  int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    mirrorsDropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (freeMirrors_.empty()) {
    mirrorStore_.push_back(std::make_unique<Mirror>());
    freeMirrors_.push_back(mirrorStore_.back().get());
  }
  Mirror* m = freeMirrors_.back();
  freeMirrors_.pop_back();
  m->fd = fd;
  m->outOff = 0;
  m->out.assign(c->shadowHead);
  m->out.append(c->in.at(c->bodyStart), c->parsePos - c->bodyStart);
  m->deadline = now_ + opt_.requestTimeoutMs;
  linkFront(mirrors_, m);
  ++liveMirrors_;
  mirrors.fetch_add(1, std::memory_order_relaxed);
  int one = 1;
  bool ok = ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0 &&
            (opt_.mark == 0 ||
             ::setsockopt(fd, SOL_SOCKET, SO_MARK, &opt_.mark, sizeof(opt_.mark)) == 0);
  int rc = ok ? ::connect(fd, reinterpret_cast<sockaddr*>(&addr), len) : -1;
  if (!ok || (rc != 0 && errno != EINPROGRESS) || !watch(m)) {
    closeMirror(m);
    return;
  }
  m->connecting = rc != 0; // the first EPOLLOUT says it connected (or why not)
}

void Worker::onMirrorEvent(Mirror* m, uint32_t ev) {
  if (ev & (EPOLLERR | EPOLLHUP)) {
    closeMirror(m); // refused, reset, or done
    return;
  }
  if (ev & EPOLLOUT) {
    m->connecting = false;
  }
  while (!m->connecting && m->outOff < m->out.size()) {
    iovec iov{m->out.data() + m->outOff, m->out.size() - m->outOff};
    ssize_t n = sendv(m, &iov, 1);
    if (n < 0) {
      if (errno != EAGAIN) {
        closeMirror(m);
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
        closeMirror(m); // the answer ended (Connection: close), or the connection did
        return;
      }
      break;
    }
  }
}

void Worker::closeMirror(Mirror* m) {
  closeFd(m);
  unlink(mirrors_, m);
  --liveMirrors_;
  if (m->out.capacity() > opt_.bufferBytes) {
    std::string().swap(m->out); // a large body's copy: give the memory back
  }
  deadMirrors_.push_back(m);
}

// --- lifecycle ---------------------------------------------------------------

Client* Worker::newClient() {
  if (freeClients_.empty()) {
    clientStore_.push_back(std::make_unique<Client>());
    Client* c = clientStore_.back().get();
    c->upHead.reserve(1024);
    c->out.reserve(1024);
    freeClients_.push_back(c);
  }
  Client* c = freeClients_.back();
  freeClients_.pop_back();
  c->in.ensure(opt_.bufferBytes);
  c->msgStart = c->parsePos = c->sendPos = 0;
  c->req.reset(HTTP_REQUEST, opt_.limits);
  c->readable = c->eof = false;
  c->writable = true;
  c->phase = Phase::kHead;
  c->deadline = 0;
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
  if (c->up != nullptr) {
    Upstream* u = c->up;
    c->up = nullptr;
    closeUpstream(u);
  }
  closeFd(c);
  c->table.reset();
  unlink(clients_, c);
  --liveClients_;
  // A buffer grown for one large head goes back to the normal size.
  if (c->in.cap > opt_.bufferBytes) {
    c->in.data.reset();
    c->in.cap = 0;
  }
  deadClients_.push_back(c);
}

// --- Engine ------------------------------------------------------------------

Result<std::unique_ptr<Engine>> Engine::create(const EngineOptions& options) {
  if (options.listen.empty()) {
    return Error{EINVAL, "no listen address"};
  }
  if (options.threads < 1) {
    return Error{EINVAL, "threads must be at least 1"};
  }
  if (options.mark != 0) {
    // SO_MARK needs CAP_NET_ADMIN: say so now, not as a 503 on every request.
    int probe = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc = probe < 0 ? -1 : ::setsockopt(probe, SOL_SOCKET, SO_MARK, &options.mark,
                                           sizeof(options.mark));
    int err = errno;
    if (probe >= 0) {
      ::close(probe);
    }
    if (rc != 0) {
      return osError(err, "--mark " + std::to_string(options.mark) + ": SO_MARK");
    }
  }
  std::unique_ptr<Engine> e(new Engine());
  e->options_ = options;
  e->io_ = options.io == IoBackend::kEpoll ? IoBackend::kEpoll : IoBackend::kUring;
  if (e->io_ == IoBackend::kUring) {
    if (Status st = probeUring(); !st) {
      // No io_uring here (ENOSYS: too old or compiled out; EPERM: kernel.io_uring_disabled
      // or a seccomp filter; EINVAL: before 6.1): auto runs the same engine on epoll.
      if (options.io == IoBackend::kUring) {
        return Error{st.error().code, "--io uring: " + st.error().message};
      }
      e->ioFallback_ = st.error().message;
      e->io_ = IoBackend::kEpoll;
    }
  }
  std::vector<ListenAddr> addrs = options.listen;
  for (int t = 0; t < options.threads; ++t) {
    auto w = std::make_unique<Worker>(*e, t);
    if (Status s = w->init(e->io_ == IoBackend::kUring); !s) {
      return s.error();
    }
    for (size_t i = 0; i < addrs.size(); ++i) {
      if (Status s = w->bindListener(addrs[i], i); !s) {
        return s.error();
      }
      if (t == 0) {
        addrs[i] = w->boundAddr(i); // port 0: the other threads share the chosen port
      }
    }
    e->workers_.push_back(std::move(w));
  }
  return e;
}

Engine::~Engine() { stop(0); }

const char* ioName(IoBackend io) {
  switch (io) {
  case IoBackend::kAuto:
    return "auto";
  case IoBackend::kUring:
    return "io_uring";
  case IoBackend::kEpoll:
    return "epoll";
  }
  return "?";
}

std::vector<ListenAddr> Engine::boundAddrs() const {
  std::vector<ListenAddr> out;
  for (size_t i = 0; i < options_.listen.size(); ++i) {
    out.push_back(workers_[0]->boundAddr(i));
  }
  return out;
}

void Engine::setTable(std::shared_ptr<const RouteTable> table) {
  {
    std::lock_guard<std::mutex> lock(tableMu_);
    table_ = std::move(table);
  }
  generation_.fetch_add(1, std::memory_order_acq_rel);
}

std::shared_ptr<const RouteTable> Engine::table() const {
  std::lock_guard<std::mutex> lock(tableMu_);
  return table_;
}

void Engine::start() {
  for (auto& w : workers_) {
    threads_.emplace_back([w = w.get()] { w->run(); });
  }
}

void Engine::stop(uint32_t drainMs) {
  for (auto& w : workers_) {
    w->requestStop(drainMs);
  }
  for (std::thread& t : threads_) {
    t.join();
  }
  threads_.clear();
}

EngineStats Engine::stats() const {
  EngineStats s;
  for (const auto& w : workers_) {
    s.accepted += w->accepted.load(std::memory_order_relaxed);
    s.requests += w->requests.load(std::memory_order_relaxed);
    s.upstreamConnects += w->upstreamConnects.load(std::memory_order_relaxed);
    s.upstreamReuses += w->upstreamReuses.load(std::memory_order_relaxed);
    s.retries += w->retries.load(std::memory_order_relaxed);
    s.localReplies += w->localReplies.load(std::memory_order_relaxed);
    s.fallbacks += w->fallbacks.load(std::memory_order_relaxed);
    s.mirrors += w->mirrors.load(std::memory_order_relaxed);
    s.mirrorsDropped += w->mirrorsDropped.load(std::memory_order_relaxed);
  }
  return s;
}

} // namespace veer::proxy
