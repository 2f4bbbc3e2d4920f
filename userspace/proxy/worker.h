#pragma once

// One engine thread (docs/design.md, "veer-proxy: the engine"): its event loop over an
// I/O backend, its listeners, clients, timers and drain. What happens to a request is the
// exchange's (exchange.h); the I/O backends (io_backend.h), the upstream pool, retries
// and mirrors are rooms of their own.

#include <atomic>
#include <memory>
#include <vector>

#include "common/result.h"
#include "proxy/conn.h"
#include "proxy/engine.h"
#include "proxy/exchange.h"
#include "proxy/io_backend.h"
#include "proxy/mirror.h"
#include "proxy/stats.h"
#include "proxy/time_source.h"
#include "proxy/upstream_pool.h"

namespace veer::proxy {

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
  WorkerStats stats; // veer-proxy's metrics (proxy/stats.h)

  // For the exchange.
  std::shared_ptr<const RouteTable> currentTable();
  void closeClient(Client* c);
  /** A timer due before the next sweep: the loop wakes for it. */
  void wakeAt(uint64_t t) { nextSweep_ = std::min(nextSweep_, t); }

private:
  // loop (worker.cpp)
  void useIo(std::unique_ptr<IoBackend> io);
  void readClock();
  bool hasTimers() const;
  int waitMs() const;
  bool afterBatch();
  void beginDrain();
  void sweep(uint64_t now);
  void sweepClient(Client* c, uint64_t now);
  Client* newClient();
  void onClientEvent(Client* c, uint32_t ev);
  void onUpstreamEvent(Upstream* u, uint32_t ev);

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
  uint64_t now_ = 0;   // milliseconds, read once per batch of events
  uint64_t nowUs_ = 0; // the same instant in microseconds
  uint64_t tableGen_ = ~0ULL;
  std::shared_ptr<const RouteTable> table_;
  std::atomic<bool> stop_{false};
  std::atomic<uint32_t> drainMs_{0};
  bool draining_ = false;
  uint64_t drainDeadline_ = 0;
  uint64_t nextSweep_ = 0; // the next timer sweep: every granularity, sooner for a timer due
  Exchange exchange_;
};

} // namespace veer::proxy
