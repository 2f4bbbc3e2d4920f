#pragma once

// The loaded socket datapath: the veer_sock skeleton, its pinned maps and its
// pinned cgroup links.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "datapath/maps.h"

struct veer_sock_bpf;
struct bpf_link;
struct bpf_program;

namespace veer {

/** Kernel features veer needs, probed through libbpf. */
struct FeatureReport {
  std::vector<std::string> found;
  std::vector<std::string> missing;         // veer cannot run without these
  std::vector<std::string> optionalMissing; // veer runs, without the feature named
};
FeatureReport probeKernelFeatures();

/** Whether vmlinux BTF has the bpf_sock_destroy kfunc (Linux >= 6.5): socket recycling
 * by iterator. */
bool kernelHasSockDestroyKfunc();

/** The FeatureReport entry --socket-acceleration needs (bpf/lib/accel.h). */
inline constexpr const char* kSocketAccelerationFeature =
    "prog type sk_msg, map type sockhash, helpers msg_redirect_hash and sk_storage_get in "
    "sk_msg (socket acceleration)";

/**
 * Cookie of the network namespace this process runs in (the node's, for the
 * agent). The BPF programs that key session affinity by client tell processes
 * in it apart by cgroup (veer_host_netns_cookie, set before load).
 */
Result<uint64_t> ownNetnsCookie();

/**
 * Owns the loaded veer_sock skeleton (non-copyable, RAII). Maps are pinned
 * under <bpffs>/veer/maps and reused when already pinned, links under
 * <bpffs>/veer/links (the tree root's and 0700, else load() refuses it): a restarted agent replaces
 * the programs in the pinned links atomically, so traffic never stops because the agent did.
 * Destroying a Datapath leaves the pins (and so the datapath) in place.
 */
class Datapath {
public:
  ~Datapath();
  Datapath(const Datapath&) = delete;
  Datapath& operator=(const Datapath&) = delete;

  /**
   * Mounts bpffs at bpffs if needed, opens and loads the programs, pins or reuses maps.
   * accelerate: node-local TCP connections made from now on skip the TCP stack
   * (bpf/lib/accel.h). Off, connections accelerated by an earlier agent stay so until
   * they close.
   */
  static Result<std::unique_ptr<Datapath>> load(const std::string& bpffs, bool accelerate);

  /**
   * Attaches every client-side program to the cgroup, or swaps them into the
   * existing pinned links.
   */
  Status attach(const std::string& cgroupPath);

  /** Attaches the SO_ORIGINAL_DST answer (cgroup/getsockopt) to veer-proxy's cgroup. */
  Status attachProxy(const std::string& cgroupPath);

  PinnedMaps& maps() { return maps_; }

  /**
   * Programs not veer's found on the hooks attach() and attachProxy() used ("name (prog id
   * N) on cgroup_inet4_connect of /sys/fs/cgroup"), for the agent to log: they run beside
   * veer's and may override its verdict. One of veer's own programs there that is not in
   * veer's pinned links (a second program set) makes attach fail instead.
   */
  const std::vector<std::string>& foreignPrograms() const { return foreign_; }

  /** Detaches the pinned links and removes every pin under <bpffs>/veer. */
  static Status uninstall(const std::string& bpffs);

private:
  Datapath() = default;
  Status attachWhere(const std::string& cgroupPath, bool proxyCgroup);
  /** Checks the hooks of the programs ours() selects on a cgroup (foreignPrograms()). */
  Status checkHooks(int cgroupFd, const std::string& cgroupPath,
                    const std::function<bool(bpf_program*)>& ours);

  std::string bpffs_;
  veer_sock_bpf* skel_ = nullptr;
  std::vector<bpf_link*> links_;
  PinnedMaps maps_;
  std::vector<std::string> foreign_;
};

} // namespace veer
