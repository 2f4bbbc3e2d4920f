#pragma once

// One engine thread (docs/design.md, "veer-proxy: the engine"): its event loop over an
// I/O backend, its listeners, clients, upstream pool and mirrors. worker.cpp is the loop,
// accepts, timers and drain; exchange.cpp is the per-request state machine; the I/O
// backends (io_backend.h), the upstream pool, retries and mirrors are rooms of their own.

#include <atomic>
#include <memory>
#include <random>
#include <vector>

#include "common/result.h"
#include "proxy/conn.h"
#include "proxy/engine.h"
#include "proxy/io_backend.h"
#include "proxy/mirror.h"
#include "proxy/time_source.h"
#include "proxy/upstream_pool.h"

namespace veer::proxy {

/** What a state-machine step did. */
enum class Step : uint8_t { kIdle, kProgress, kClosed };

class Worker {
public:
  Worker(Engine& engine, TimeSource& time);
  ~Worker();

  Status init(IoMode io);
  Status bindListener(const ListenAddr& addr, size_t index);
  ListenAddr boundAddr(size_t i) const;
  void run();
  void requestStop(uint32_t drainMs);

  // For the I/O backends.
  /** A readiness event of a client, upstream, mirror or the wake eventfd. */
  void dispatch(Handle* h, uint32_t ev);
  void acceptedClient(Listener* l, int fd, const sockaddr_storage& peer);
  /** A send the backend queued failed after it reported the bytes taken. */
  void onSendFailed(Handle* h);
  uint64_t now() const { return now_; }
  const EngineOptions& options() const { return opt_; }
  const std::vector<std::unique_ptr<Listener>>& listeners() const { return listeners_; }

  Counters counters;

private:
  // loop (worker.cpp)
  void useIo(std::unique_ptr<IoBackend> io);
  bool hasTimers() const;
  int waitMs() const;
  bool afterBatch();
  void beginDrain();
  void sweep(uint64_t now);
  void sweepClient(Client* c, uint64_t now);
  void wakeAt(uint64_t t) { nextSweep_ = std::min(nextSweep_, t); }
  std::shared_ptr<const RouteTable> currentTable();
  Client* newClient();
  void closeClient(Client* c);
  void onClientEvent(Client* c, uint32_t ev);
  void onUpstreamEvent(Upstream* u, uint32_t ev);

  // the exchange: one request at a time per client (exchange.cpp)
  void drive(Client* c);
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
  void timedOut(Client* c);
  bool keepForReplay(Client* c);
  Step upstreamGone(Client* c);
  Step finishExchange(Client* c);
  Step nextRequest(Client* c);
  void reply(Client* c, int status, std::string_view text, std::string_view location,
             bool close, bool asIs = false);
  void dropUpstream(Client* c);
  ssize_t readSome(int fd, Buffer& b, bool& readable, bool& eof);
  Step flushClient(Client* c, const char* body, size_t bodyLen, size_t* bodySent);
  bool flushUpstream(Client* c, Upstream* u, size_t bodyLen, size_t* bodySent);

  Engine& engine_;
  const EngineOptions& opt_;
  TimeSource& time_;
  std::unique_ptr<IoBackend> io_;
  Handle wake_{Kind::kWake};
  std::vector<std::unique_ptr<Listener>> listeners_;
  ObjectStore<Client> clientStore_;
  Client* clients_ = nullptr; // every live client, for timeouts and drain
  size_t liveClients_ = 0;
  UpstreamPool pool_;
  MirrorSet mirrors_;
  uint64_t now_ = 0;
  uint64_t tableGen_ = ~0ULL;
  std::shared_ptr<const RouteTable> table_;
  std::vector<OutField> scratch_;
  std::atomic<bool> stop_{false};
  std::atomic<uint32_t> drainMs_{0};
  bool draining_ = false;
  uint64_t drainDeadline_ = 0;
  uint64_t nextSweep_ = 0; // the next timer sweep: every granularity, sooner for a timer due
  std::minstd_rand rng_{std::random_device{}()}; // back-off jitter
};

} // namespace veer::proxy
