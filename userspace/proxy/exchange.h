#pragma once

// The exchange: the per-request state machine of a worker's clients (docs/design.md,
// "veer-proxy: the engine"). One request at a time per client: its head is parsed and
// routed, an upstream is picked (through the upstream pool) and the request forwarded,
// the response relayed, a retry, a mirror copy or a local answer made as the route says.
// Sockets are reached only through the I/O backend, endpoints only through the pool,
// retry decisions only through proxy/retry.h; the worker owns the loop and the timers
// and calls in here when a socket is ready or a timer is due.

#include <memory>
#include <random>
#include <string_view>
#include <vector>

#include "proxy/conn.h"
#include "proxy/engine.h"
#include "proxy/io_backend.h"
#include "proxy/mirror.h"
#include "proxy/stats.h"
#include "proxy/upstream_pool.h"

namespace veer::proxy {

class Worker;

/** What a state-machine step did. */
enum class Step : uint8_t { kIdle, kProgress, kClosed };

class Exchange {
public:
  /** Everything the state machine reads or moves, owned by the worker (io is a reference
   * to its pointer: a worker may change backends before its loop starts). */
  Exchange(Worker& worker, const EngineOptions& opt, const uint64_t& now, const uint64_t& nowUs,
           const bool& draining, const std::unique_ptr<IoBackend>& io, UpstreamPool& pool,
           MirrorSet& mirrors, Counters& counters, WorkerStats& stats);

  /** Moves c as far as it goes: after an event on it or on its upstream, or a timer. */
  void drive(Client* c);
  // Timers the worker found due; each leaves c to be driven.
  void delayEnded(Client* c);
  void connectFailed(Client* c);
  void tryTimedOut(Client* c);
  /** The request did not all arrive in time (Envoy's request_timeout). */
  void receiveTimedOut(Client* c);
  /** Nothing moved either way (Envoy's stream_idle_timeout). False when c was closed. */
  bool streamIdleTimedOut(Client* c);
  /** The phase's own timer (Client::deadline); c is driven or closed. */
  void timedOut(Client* c);
  /** c is closing: its upstream connection goes too. */
  void dropUpstream(Client* c);
  /** c is closing: a request it had not finished is counted, with the status its client
   * got the head of (0: none, as Istio counts a client that left before an answer). */
  void countUnfinished(Client* c) { endRequest(c, c->metrics.code); }

private:
  Step stepHead(Client* c);
  Step stepExchange(Client* c);
  Step stepReply(Client* c);
  Step stepTunnel(Client* c);
  Step stepLinger(Client* c);
  void onRequestHead(Client* c);
  /** A request began at c->headStartUs: counted once, when endRequest says how it ended. */
  void beginRequest(Client* c) { c->metrics = RequestMetrics{.open = true}; }
  void endRequest(Client* c, int code);
  void startUpstream(Client* c);
  void noEndpoint(Client* c);
  bool mayRetry(const Client* c, uint32_t conditions) const;
  void retry(Client* c, bool backoff);
  void armTry(Client* c);
  bool keepForReplay(Client* c);
  Step upstreamGone(Client* c);
  Step finishExchange(Client* c);
  Step nextRequest(Client* c);
  void reply(Client* c, int status, std::string_view text, std::string_view location, bool close,
             bool asIs = false);
  void closeClient(Client* c);
  /** The stream idle deadline for a byte moved at t (0: the timer is off). */
  uint64_t streamIdleFrom(uint64_t t) const;
  ssize_t readSome(int fd, Buffer& b, bool& readable, bool& eof);
  Step flushClient(Client* c, const char* body, size_t bodyLen, size_t* bodySent);
  bool flushUpstream(Client* c, Upstream* u, size_t bodyLen, size_t* bodySent);

  Worker& worker_;
  const EngineOptions& opt_;
  const uint64_t& now_;
  const bool& draining_;
  const std::unique_ptr<IoBackend>& io_;
  UpstreamPool& pool_;
  MirrorSet& mirrors_;
  Counters& counters_;
  WorkerStats& stats_;
  const uint64_t& nowUs_;
  std::vector<OutField> scratch_;                // head rewriting
  std::minstd_rand rng_{std::random_device{}()}; // back-off jitter
};

} // namespace veer::proxy
