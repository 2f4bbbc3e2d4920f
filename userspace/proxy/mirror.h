#pragma once

// Istio mirror copies (docs/design.md, "mirror / mirrorPercentage"): fire and forget. A
// copy of a finished request goes to one endpoint of the mirror cluster on a connection
// of its own; its answer is read and dropped. Bounded by --max-mirrors per thread and
// timed out, so a slow mirror costs memory, never the primary's time.

#include <cstddef>
#include <cstdint>

#include "proxy/conn.h"
#include "proxy/engine.h"
#include "proxy/stats.h"

namespace veer::proxy {

class IoBackend;

class MirrorSet {
public:
  MirrorSet(const EngineOptions& opt, Counters& counters, WorkerStats& stats)
      : opt_(opt), counters_(counters), stats_(stats) {}
  void setIo(IoBackend* io) { io_ = io; }

  /** Sends a copy of c's request, just ended (its head in c.shadowHead, its body kept in
   * c.in), or counts it dropped. */
  void start(const Client& c, uint64_t now);
  void onEvent(Mirror* m, uint32_t ev);
  void close(Mirror* m);
  /** Gives up copies past their deadline. */
  void sweep(uint64_t now);
  void closeAll();
  void recycle() { store_.recycle(); }
  bool empty() const { return live_ == 0; }

private:
  const EngineOptions& opt_;
  Counters& counters_;
  WorkerStats& stats_; // a copy's connection counts as one opened to the mirror's version
  IoBackend* io_ = nullptr;
  ObjectStore<Mirror> store_;
  Mirror* list_ = nullptr; // every copy in flight
  size_t live_ = 0;
};

} // namespace veer::proxy
