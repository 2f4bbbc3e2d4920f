#pragma once

// veer-agent's side of veer-proxy: publishes the compiled route table, runs the
// proxy, and tells the connect hooks (veer_proxy.ready) whether to send L7
// services to it.
//
// The contract with the proxy: `--routes FILE` is replaced atomically (rename)
// and the proxy is sent SIGHUP; after every load attempt the proxy writes one
// line on `--ready-fd`: "loaded <fnv1a-64 hex of the file>" or "error <text>".
// The hooks redirect only while the proxy has reported loading exactly the
// table the agent last published (veer_proxy.ready) and its listening socket
// is still open: once the proxy has loaded, the agent takes a copy of one
// listener per family (pidfd_getfd), puts it in veer_proxy_listeners and
// closes its copy, so the kernel drops the entry the moment the proxy's own
// socket closes, whether or not an agent is alive to notice. A dead, stale or
// broken proxy never receives connections: the kernel path serves L7 services
// meanwhile (their unconditional weights), and those connections are
// destroyed once the proxy serves again (ProxyOptions::recycler), so that
// keep-alive clients come back to per-request routing.
//
// The proxy outlives the agent (it is part of the datapath, like the pinned
// links): a restarted agent starts a new proxy beside the old one (both
// listen with SO_REUSEPORT), and retires the old one (SIGTERM, it drains) once
// the new one is ready. Its pid is kept in <run-dir>/veer-proxy.pid.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/net.h"
#include "common/result.h"
#include "datapath/datapath.h"
#include "datapath/recycle.h"

namespace veer {

struct ProxyOptions {
  std::string binary;                              // veer-proxy executable
  std::vector<std::pair<IpAddr, uint16_t>> listen; // at most one per family; empty = no proxy
  std::string netns;  // network namespace file to run it in, "" = the agent's
  std::string cgroup; // cgroup v2 directory for it (created); SO_ORIGINAL_DST is answered there
  uint32_t mark = 0;  // SO_MARK of its upstream sockets
  std::string runDir; // routes.json and veer-proxy.pid
  int threads = 1;
  /**
   * Under socket acceleration (bpf/lib/accel.h) the proxy runs without TCP_DEFER_ACCEPT
   * (a deferred accept keeps every client connection on TCP) and on epoll: its io_uring
   * loop stalled there in connection-close traffic, cause not found (docs/design.md).
   */
  bool socketAcceleration = false;
  std::chrono::milliseconds loadTimeout{5000};
  /**
   * Destroys the connections L7 services sent down the kernel path while the proxy
   * was not serving, each time it serves again; null: they stay where they are.
   */
  Recycler* recycler = nullptr;
};

class ProxySupervisor {
public:
  ProxySupervisor(ProxyOptions options, Datapath& dp);
  ~ProxySupervisor();
  ProxySupervisor(const ProxySupervisor&) = delete;
  ProxySupervisor& operator=(const ProxySupervisor&) = delete;

  /** Creates the run dir and cgroup, attaches getsockopt there, publishes the listen addresses. */
  Status init();

  /**
   * Makes json the proxy's route table: writes it, starts the proxy if none runs
   * (or reloads it), and waits until it reports the load. On success the hooks
   * redirect L7 services to it; on failure they stop doing so (and the error says why).
   */
  Status publish(const std::string& json);

  /** veer-proxy's stats socket (GET /stats): what reconcile/proxy_metrics.h's
   * fetchProxyStats reads at scrape time. */
  std::string statsSocket() const { return opt_.runDir + "/veer-proxy.stats.sock"; }

  /** The proxy's report pipe, for the agent's poll loop; -1 when no proxy runs. */
  int reportFd() const { return report_; }
  /** Reads reports that arrived outside publish(). */
  void onReport();
  /** Reaps exited children; a dead proxy stops the redirect and is restarted. */
  void onChildExit();
  /** Milliseconds until a pending restart is due, or -1 (for poll()). */
  int restartDueMs() const;
  /** Restarts the proxy if it died and its backoff has passed. */
  void maybeRestart();

  /** Stops the proxy (SIGTERM, bounded drain), clears the redirect and removes routes.json.
   * For --uninstall. */
  static Status stopRunning(const std::string& runDir, std::chrono::milliseconds drain);

private:
  Status start();
  Status waitLoaded(uint64_t digest);
  Status setReady(bool ready, uint64_t digest);
  /** Puts one listening socket per configured family of our proxy in veer_proxy_listeners. */
  Status publishListeners();
  /** Destroys the connections that took the kernel path while the proxy was not serving. */
  void recycleFallbacks();
  void retireAdopted();

  ProxyOptions opt_;
  Datapath& dp_;
  pid_t pid_ = -1;         // the proxy this agent runs
  pid_t adopted_ = -1;     // one a previous agent left running, retired once ours is ready
  pid_t listenersOf_ = -1; // the proxy whose listeners are in veer_proxy_listeners
  int report_ = -1;        // read end of the proxy's --ready-fd pipe
  std::string pending_;    // partial report line
  uint64_t published_ = 0; // digest of the table last written
  bool ready_ = false;     // veer_proxy.ready as we last wrote it
  std::string routesPath_;
  std::chrono::milliseconds backoff_{250};
  std::chrono::steady_clock::time_point restartAt_{};
  bool restartPending_ = false;
};

} // namespace veer
