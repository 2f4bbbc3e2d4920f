#pragma once

// The objects an engine worker moves bytes between (docs/design.md, "veer-proxy: the
// engine"): byte buffers that keep their memory, and the handles of listeners, clients,
// upstream and mirror connections. Shared by the state machine, the upstream pool, the
// mirror and the I/O backends; plain data, no behaviour beyond buffer arithmetic.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "proxy/http.h"
#include "proxy/router.h"

namespace veer::proxy {

IpAddr ipOf(const sockaddr_storage& ss);
uint16_t portOf(const sockaddr_storage& ss);
socklen_t toSockaddr(const IpAddr& ip, uint16_t port, sockaddr_storage* ss);

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
  const char* at(size_t off) const { return data.get() + off; }
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
  /** Back to `normal` bytes when a head or a kept body made it grow. */
  void shrinkTo(size_t normal) {
    if (cap > normal) {
      data.reset();
      cap = 0;
      ensure(normal);
    }
  }
};

/**
 * Reclaims buffer space of one direction: [0, keep) is done with (sent, or before the
 * current message when a head is being read, since a head must stay contiguous).
 * Rewinds for free when everything is done; moves bytes only when the buffer is full.
 */
inline void reclaim(Buffer& b, size_t& msgStart, size_t& parsePos, size_t& sendPos, bool inHead) {
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

enum class Kind : uint8_t { kListener, kClient, kUpstream, kMirror, kWake };

struct SendBuf;

/** A socket the event loop watches. */
struct Handle {
  Kind kind;
  int fd = -1;
  bool watched = false; // in epoll, or a multishot poll armed (lazily for clients)
  // The io_uring backend's per-socket state:
  bool sendWaiting = false;       // a send found the one before still in flight
  bool shutdownAfterSend = false; // SHUT_WR once the send in flight completed
  uint16_t gen = 0;               // bumped at close: older completions are stale
  SendBuf* sending = nullptr;     // the send in flight (at most one per socket)
  explicit Handle(Kind k) : kind(k) {}
};

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

/** A connection to an endpoint: owned by one client's exchange, or idle in the pool. */
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

constexpr size_t kAcceptSlots = 4; // io_uring accepts in flight per listener

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

/** The retry state of one request (proxy/retry.h decides with it). */
struct RetryState {
  size_t tries = 0; // the walk over endpoints: the next attempt is (first + tries) % n
  int retried = 0;  // retries spent of the route's budget
  /** The request from bodyStart on is all still in `in`, so it can be sent again (a retry,
   * a mirror): false once its body outgrew --retry-buffer-bytes. */
  bool replay = false;
  bool relayed = false; // an interim response (100 Continue) went to the client
};

/** What veer-proxy's metrics (proxy/stats.h) count of the request in progress, once. */
struct RequestMetrics {
  bool open = false;        // a request began and is not counted yet
  uint32_t destination = 0; // StatsLabels ids; 0: unknown
  uint32_t route = 0;
  int code = 0; // the final status whose head went to the client; 0: none yet
};

struct Client : Handle {
  Client() : Handle(Kind::kClient) {}
  Origin origin;
  Buffer in;
  size_t msgStart = 0, parsePos = 0, sendPos = 0;
  MessageParser req;
  bool readable = false, writable = true, eof = false;
  Phase phase = Phase::kHead;
  /** The phase's timer: the head (slowloris), keep-alive idle, the route timeout once the
   * request ended, the tunnel's idle, the linger. */
  uint64_t deadline = 0;
  bool headTimer = false;   // deadline is the header (slowloris) one
  uint64_t headStartUs = 0; // when the current head began (the request timeout and the
                            // request's duration count from it)
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
  RetryState retry;
  RequestMetrics metrics;
  size_t bodyStart = 0;           // offset in `in` of the body (the end of the head)
  uint64_t requestDeadlineMs = 0; // the route timeout's length, armed at the request's end
  /** Envoy's request_timeout: the whole request (head and body) must arrive by then; 0
   * once it did, or once the response started. */
  uint64_t receiveDeadline = 0;
  /** Envoy's stream_idle_timeout: no byte moved either way in the exchange until then. */
  uint64_t streamIdleDeadline = 0;
  uint64_t tryDeadline = 0; // retries.perTryTimeout of the current attempt, 0 = none
  uint64_t delayUntil = 0;  // fault.delay or a retry's back-off: the upstream is picked then
  uint64_t startMs = 0;     // when the request was routed
  std::string upHead;       // the upstream request head
  size_t upHeadOff = 0;
  std::string shadowHead; // the mirror copy's head, written with upHead (the head's views
                          // into `in` do not outlive the body's reads)
  std::string out;        // response heads and local replies for the client
  size_t outOff = 0;
  Upstream* up = nullptr;
  Client* prev = nullptr;
  Client* next = nullptr;
};

/** A worker's counters (EngineStats sums them), written by its thread only. */
struct Counters {
  std::atomic<uint64_t> accepted{0}, requests{0}, upstreamConnects{0}, upstreamReuses{0},
      retries{0}, localReplies{0}, fallbacks{0}, mirrors{0}, mirrorsDropped{0}, requestTimeouts{0},
      streamIdleTimeouts{0};
  static void bump(std::atomic<uint64_t>& c) { c.fetch_add(1, std::memory_order_relaxed); }
};

/** Live objects (clients, mirrors, orphaned sends) are kept on intrusive lists for the
 * sweep and the drain. */
template <class T> void linkFront(T*& head, T* x) {
  x->prev = nullptr;
  x->next = head;
  if (head != nullptr) {
    head->prev = x;
  }
  head = x;
}

template <class T> void unlink(T*& head, T* x) {
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

/**
 * Objects of one kind, recycled per thread so a warm proxy allocates nothing per request.
 * An object closed during a batch of events becomes reusable only after it (recycle()):
 * a later event of the same batch may still name it.
 */
template <class T> class ObjectStore {
public:
  T* take() {
    if (free_.empty()) {
      store_.push_back(std::make_unique<T>());
      free_.push_back(store_.back().get());
    }
    T* x = free_.back();
    free_.pop_back();
    return x;
  }
  /** Never handed to the loop: reusable at once. */
  void giveBack(T* x) { free_.push_back(x); }
  void retire(T* x) { dead_.push_back(x); }
  void recycle() {
    free_.insert(free_.end(), dead_.begin(), dead_.end());
    dead_.clear();
  }

private:
  std::vector<std::unique_ptr<T>> store_;
  std::vector<T*> free_, dead_;
};

} // namespace veer::proxy
