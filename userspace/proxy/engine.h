#pragma once

// veer-proxy's engine: per-thread event loops (io_uring, or edge-triggered epoll where
// io_uring is unavailable; one SO_REUSEPORT listener set per thread) that accept
// redirected connections, parse HTTP/1 requests, route each one with the current
// RouteTable and forward it over pooled upstream connections. Threads share nothing but
// the table pointer (and the time source).
//
// The rooms: worker.{h,cpp} (a thread's loop, accepts, timers, drain), exchange.cpp (the
// per-request state machine), io_backend.h with io_epoll.cpp and io_uring.cpp (how bytes
// move), upstream_pool.* (endpoint connections, pooling, ejection), retry.* (retry
// decisions), mirror.* (Istio mirror copies), time_source.* (the clock).

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "proxy/http.h"
#include "proxy/router.h"
#include "proxy/stats.h"

namespace veer::proxy {

/** A listen address: "1.2.3.4:80", "[::1]:80", "0.0.0.0:15001". */
struct ListenAddr {
  sockaddr_storage addr{};
  socklen_t len = 0;
  static Result<ListenAddr> parse(std::string_view text);
  std::string str() const;
};

class TimeSource;

/** Which I/O backend a worker runs (docs/design.md, "veer-proxy: io_uring"). */
enum class IoMode : uint8_t {
  kAuto,  // io_uring when the kernel allows it (Linux 6.1+, not disabled), else epoll
  kUring, // io_uring or an error
  kEpoll,
};
const char* ioName(IoMode io);

struct EngineOptions {
  std::vector<ListenAddr> listen;
  IoMode io = IoMode::kAuto;
  int threads = 1;
  uint32_t mark = 0; // SO_MARK on upstream sockets (0: none)
  Limits limits;
  size_t bufferBytes = 16 * 1024;    // per socket direction; grows only to fit one head
  uint32_t headerTimeoutMs = 10000;  // first byte of a head to its end (slowloris)
  uint32_t idleTimeoutMs = 60000;    // keep-alive between requests
  uint32_t connectTimeoutMs = 2000;  // per upstream connect attempt
  uint32_t requestTimeoutMs = 15000; // request end to response end, unless the route says
  /** Envoy's request_timeout: the whole request, head and body, from its first byte; past
   * it (before any response) 408. 0: none. Bounds a body trickled a byte at a time. */
  uint32_t requestReceiveTimeoutMs = 300000;
  /** Envoy's stream_idle_timeout: an exchange with no byte moved either way; 408 before
   * the response started, else the connection closes. 0: none. */
  uint32_t streamIdleTimeoutMs = 300000;
  uint32_t upstreamIdleTimeoutMs = 30000; // pooled idle upstream connection
  uint32_t tunnelIdleTimeoutMs = 3600000; // upgraded (WebSocket) connections
  int retries = kDefaultRetryAttempts;    // retries when the route sets none (Istio: 2)
  /** A request body is kept for a retry while it fits in this many bytes (Envoy's request
   * buffer limit); a larger one streams and is never retried (past a connect failure). */
  size_t retryBufferBytes = 64 * 1024;
  size_t maxIdlePerEndpoint = 64; // pooled idle connections per endpoint and thread
  /** TCP_DEFER_ACCEPT on listeners. Off under socket acceleration (bpf/lib/accel.h): a
   * client's first request would have to go through TCP, and so the rest of its
   * connection. */
  bool deferAccept = true;
  /** Istio mirror copies in flight per thread; more are dropped (and counted), so a slow
   * mirror costs at most this many requests' bytes, never the primary's time. */
  size_t maxMirrors = 256;
  /** The clock of every timer; nullptr: real monotonic time. Tests pass a
   * SimulatedTimeSource (proxy/time_source.h), which must outlive the engine. */
  TimeSource* time = nullptr;
};

/** Counters summed over threads (approximate while running). */
struct EngineStats {
  uint64_t accepted = 0, requests = 0, upstreamConnects = 0, upstreamReuses = 0, retries = 0;
  uint64_t localReplies = 0;
  uint64_t fallbacks = 0;          // requests sent to an ASM noavailabled fallback subset
  uint64_t mirrors = 0;            // Istio mirror copies sent
  uint64_t mirrorsDropped = 0;     // copies not sent: over maxMirrors, or a body not kept
  uint64_t requestTimeouts = 0;    // requests not received within requestReceiveTimeoutMs
  uint64_t streamIdleTimeouts = 0; // exchanges idle past streamIdleTimeoutMs
};

class Worker;

class Engine {
public:
  /** Binds every listener (SO_REUSEPORT, one set per thread); nothing runs yet. */
  static Result<std::unique_ptr<Engine>> create(const EngineOptions& options);
  ~Engine();

  /** Bound addresses of thread 0's listeners (port 0 resolved), in --listen order. */
  std::vector<ListenAddr> boundAddrs() const;
  /** Publishes a table: new requests use it; requests in flight keep theirs. */
  void setTable(std::shared_ptr<const RouteTable> table);
  std::shared_ptr<const RouteTable> table() const;
  /** Starts the worker threads. */
  void start();
  /**
   * Stops accepting, lets in-flight requests finish (keep-alive connections close after
   * their current response) and joins the threads; at most drainMs, then closes the rest.
   */
  void stop(uint32_t drainMs);
  EngineStats stats() const;
  /** Requests, durations and upstream connections by labels, merged over threads (any
   * thread may ask, while the engine runs). */
  ProxyStats proxyStats() const;
  /** The backend the workers run (never kAuto). */
  IoMode io() const { return io_; }
  /** Why kAuto fell back to epoll ("" when it did not). */
  const std::string& ioFallbackReason() const { return ioFallback_; }

  // Used by workers.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  const EngineOptions& options() const { return options_; }
  StatsLabels& statsLabels() { return statsLabels_; }

private:
  Engine() = default;
  EngineOptions options_;
  IoMode io_ = IoMode::kEpoll;
  std::string ioFallback_;
  mutable std::mutex tableMu_;
  std::shared_ptr<const RouteTable> table_;
  std::atomic<uint64_t> generation_{0};
  StatsLabels statsLabels_; // before workers_, whose stats name it
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;
};

} // namespace veer::proxy
