#pragma once

// Socket recycling: destroys the sockets veer translated for a service, in
// every network namespace of the node, that a change made stale: those sent to
// a given backend (all of them, or a stable share), those whose affine client
// would now be sent to another version, and those an L7 service sent down the
// kernel path while veer-proxy was not serving.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"
#include "config/plan.h"
#include "datapath/maps.h"
#include "veer/maps.h"

struct veer_recycle_bpf;
struct bpf_link;

namespace veer {

struct RecycleCount {
  uint64_t tcp = 0;
  uint64_t udp = 0;
  size_t netns = 0; // namespaces visited
};

using RecycleTargets = std::vector<std::pair<veer_recycle_key, veer_recycle>>;

/** Which sockets a config change makes stale, and when to destroy them. */
struct RecyclePlan {
  RecycleTargets now;                                     // UDP peers that left their service
  std::vector<std::pair<uint32_t, RecycleTargets>> later; // (grace seconds, targets)
  /** Ids ("ns/name:port") of the services with VEER_RECYCLE_AFFINITY targets in later. */
  std::vector<std::string> byClient;
  bool empty() const { return now.empty() && later.empty(); }
};

/**
 * Compares two plans service by service (address, port, protocol); every target
 * is scoped to the service (a backend IP:port reused by another service keeps
 * that service's connections):
 *  - a backend that left a service: its UDP sockets at once, always (nothing else
 *    ever moves a connected UDP socket; Cilium #25169); its TCP sockets after the
 *    grace when the service opted in (veer.io/recycle-grace), else never (a
 *    removed pod drains its connections itself);
 *  - a version whose weight shrank from w to w' (opted-in services without
 *    affinity): the share (w - w') / w of its sockets, by socket-cookie hash,
 *    after the grace; their clients reconnect and the weights place them;
 *  - an opted-in affinity service whose split (weights or lanes) changed: a
 *    VEER_RECYCLE_AFFINITY target, after the grace. The iterator destroys
 *    exactly the sockets whose client's hash now picks a version their backend
 *    is not in (the counter of a non-affinity service has no such answer,
 *    hence the share above).
 */
RecyclePlan planRecycling(const Plan& before, const Plan& after);

/**
 * The VEER_RECYCLE_FALLBACK targets once veer-proxy serves again: the live
 * config's L7 TCP services, whose sockets flagged VEER_NAT_F_FALLBACK at
 * connect() took the kernel path while it did not.
 */
RecycleTargets proxyFallbackTargets(const LiveState& live);

/** Whether a socket with this cookie is in a share of permille (as the BPF iterator decides). */
inline bool recyclePicks(uint64_t cookie, uint32_t permille) {
  return ((cookie * 0x9e3779b97f4a7c15ULL) >> 32) % 1000 < permille;
}

/**
 * Destroys sockets by one of two mechanisms:
 *  - kIterator: the veer_recycle iterators (iter/tcp, iter/udp calling the
 *    bpf_sock_destroy kfunc, Linux >= 6.5);
 *  - kNetlink: a sock_diag dump per protocol and family, each socket with its
 *    veer_sock_nat (TCP; udp_diag gives no socket storage, so UDP matches by peer),
 *    then SOCK_DESTROY for each match (CONFIG_INET_DIAG_DESTROY; Debian's kernels
 *    have it).
 * Both pick the same sockets for a share (recyclePicks()).
 */
class Recycler {
public:
  enum class Mode { kIterator, kNetlink };

  ~Recycler();
  Recycler(const Recycler&) = delete;
  Recycler& operator=(const Recycler&) = delete;

  /**
   * The iterator when the kernel has bpf_sock_destroy, else netlink after a probe.
   * Both read the datapath's maps pinned under bpffs (Datapath::load first).
   */
  static Result<std::unique_ptr<Recycler>> load(const std::string& bpffs);
  /** A given mechanism; fails when the kernel does not offer it. */
  static Result<std::unique_ptr<Recycler>> load(Mode mode, const std::string& bpffs);

  Mode mode() const { return mode_; }
  const char* modeName() const;
  /**
   * Whether VEER_RECYCLE_AFFINITY targets work: only the iterators see a socket's
   * netns and cgroup, and so its client; netlink ignores those targets.
   */
  bool seesClients() const { return mode_ == Mode::kIterator; }

  /**
   * Destroys, in every network namespace some process of the node is in (each
   * pod's, the node's), the sockets matching targets. An iterator only sees the
   * namespace it was created in, so a helper thread enters each in turn.
   */
  Result<RecycleCount> run(const RecycleTargets& targets);

private:
  /** Netlink, once probed; dumps read the sockets' veer_sock_nat pinned under bpffs. */
  static Result<std::unique_ptr<Recycler>> loadNetlink(const std::string& bpffs);
  /** The iterators, once the kernel is known to have the kfunc. */
  static Result<std::unique_ptr<Recycler>> loadIterator(const std::string& bpffs);

  Recycler() = default;
  Status runNetlink(const RecycleTargets& targets, RecycleCount& count);

  Mode mode_ = Mode::kIterator;
  veer_recycle_bpf* skel_ = nullptr;
  bpf_link* tcp_ = nullptr;
  bpf_link* udp_ = nullptr;
  Fd natMap_; // netlink: veer_sock_nat, whose values the dumps carry
};

} // namespace veer
