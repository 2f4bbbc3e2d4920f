#pragma once

// A worker's connections to endpoints (docs/design.md, "Upstreams"): opening them (with
// SO_MARK, so the connect hooks let them through), the idle pool per endpoint (LIFO,
// expiring), and passive ejection of endpoints that refuse or time out (Envoy's outlier
// detection, reduced to connect failures).

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "proxy/conn.h"
#include "proxy/engine.h"

namespace veer::proxy {

class IoBackend;

class UpstreamPool {
public:
  explicit UpstreamPool(const EngineOptions& opt) : opt_(opt) {}
  void setIo(IoBackend* io) { io_ = io; }

  /** 0: healthy; else the time the endpoint's ejection started. */
  uint64_t ejectedSince(const EndpointKey& key, uint64_t now);
  /** The endpoint refused or timed out: tried after every other one for kEjectMs. */
  void eject(const EndpointKey& key, uint64_t now);
  /** The endpoint accepted a connection: no longer ejected. */
  void healthy(const EndpointKey& key) {
    if (!ejectedUntil_.empty()) {
      ejectedUntil_.erase(key);
    }
  }

  /** The most recently pooled idle connection to key, or nullptr. */
  Upstream* takeIdle(const EndpointKey& key);
  /** A new connection to ep, connecting (its first EPOLLOUT tells how it went), or nullptr
   * when the socket could not even start (the endpoint is then ejected). */
  Upstream* connect(const EndpointKey& key, const Endpoint& ep, uint64_t now);
  /** The exchange is done with u: pooled when reusable and there is room, else closed. */
  void release(Upstream* u, bool reusable, bool draining, uint64_t now);
  void close(Upstream* u);
  /** Closes idle connections past their expiry. */
  void sweep(uint64_t now);
  void closeIdle();
  void recycle() { store_.recycle(); }
  size_t idle() const { return idle_; }

private:
  void removeFromPool(Upstream* u);

  const EngineOptions& opt_;
  IoBackend* io_ = nullptr;
  ObjectStore<Upstream> store_;
  std::unordered_map<EndpointKey, std::vector<Upstream*>, EndpointHash> pool_;
  std::unordered_map<EndpointKey, uint64_t, EndpointHash> ejectedUntil_;
  size_t idle_ = 0;
};

} // namespace veer::proxy
