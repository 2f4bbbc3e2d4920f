#pragma once

// Socket recycling: destroys the sockets, in every network namespace of the
// node, whose peer is a given backend (all of them, or a stable share).

#include <memory>
#include <utility>
#include <vector>

#include "common/result.h"
#include "config/plan.h"
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
  RecycleTargets now;                          // UDP peers that left their service
  std::vector<std::pair<uint32_t, RecycleTargets>> later; // (grace seconds, targets)
  bool empty() const { return now.empty() && later.empty(); }
};

/**
 * Compares two plans service by service (address, port, protocol):
 *  - a backend that left a service: its UDP sockets at once, always (nothing else
 *    ever moves a connected UDP socket; Cilium #25169); its TCP sockets after the
 *    grace when the service opted in (veer.io/recycle-grace), else never (a
 *    removed pod drains its connections itself);
 *  - a version whose weight shrank from w to w' (opted-in services without
 *    affinity): the share (w - w') / w of its sockets, by socket-cookie hash,
 *    after the grace; their clients reconnect and the weights place them.
 */
RecyclePlan planRecycling(const Plan& before, const Plan& after);

/**
 * The veer_recycle iterators (iter/tcp, iter/udp with the bpf_sock_destroy
 * kfunc, Linux >= 6.5). load() fails on kernels without them; the agent then
 * runs without recycling and says so.
 */
class Recycler {
public:
  ~Recycler();
  Recycler(const Recycler&) = delete;
  Recycler& operator=(const Recycler&) = delete;

  static Result<std::unique_ptr<Recycler>> load();

  /**
   * Destroys, in every network namespace some process of the node is in (each
   * pod's, the node's), the sockets matching targets. An iterator only sees the
   * namespace it was created in, so a helper thread enters each in turn.
   */
  Result<RecycleCount> run(const RecycleTargets& targets);

private:
  Recycler() = default;

  veer_recycle_bpf* skel_ = nullptr;
  bpf_link* tcp_ = nullptr;
  bpf_link* udp_ = nullptr;
};

} // namespace veer
