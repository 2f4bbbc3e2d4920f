#pragma once

// Typed access to veer's pinned maps under <bpffs>/veer/maps/, shared by the
// agent (apply) and veerctl (status, dump).

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/files.h"
#include "common/result.h"
#include "compiler/compiler.h"
#include "veer/maps.h"

namespace veer {

/** Names of the pinned maps, as in bpf/lib/maps.h. */
inline constexpr std::array<const char*, 15> kMapNames = {
    "veer_state",   "veer_svc",   "veer_version",  "veer_maglev",      "veer_backend",
    "veer_revnat",  "veer_rr",    "veer_stats",    "veer_member",      "veer_affinity",
    "veer_lane_of", "veer_proxy", "veer_orig_dst", "veer_accel_stats", "veer_proxy_listeners"};

/** Directory of veer's pins under a bpffs mount. */
std::string veerPinDir(const std::string& bpffs);
std::string mapPinDir(const std::string& bpffs);
std::string linkPinDir(const std::string& bpffs);

/** Per-version numbers, summed over CPUs. */
struct VersionStats {
  uint64_t connects = 0;
  uint64_t noBackend = 0;
};

/** The live content of the maps, decoded. */
struct LiveService {
  veer_svc_key key{};
  veer_service svc{};
  struct Version {
    uint32_t id = 0;
    veer_version ver{};
    VersionStats stats;
    std::vector<veer_backend> backends; // distinct backends of the ring
  };
  std::vector<Version> versions;
};

struct LiveState {
  veer_state state{};
  veer_proxy proxy{};
  veer_accel_stats accel{};          // summed over CPUs, since the maps were created
  std::vector<LiveService> services; // in plan order (svc_id)
};

/** The pinned maps, by fd. Open with PinnedMaps::open(bpffs). */
class PinnedMaps {
public:
  static Result<PinnedMaps> open(const std::string& bpffs);
  /** Adopts fds of maps a loader already has (in kMapNames order). */
  static PinnedMaps fromFds(std::vector<int> fds);

  int fd(const char* name) const;

  Result<veer_state> state() const;

  /**
   * Writes image as the inactive generation, then flips veer_state.gen to it
   * with one update. On failure the live generation is untouched. Entries of
   * the generation before are deleted at the start of the next apply, never
   * under a reader.
   */
  Status apply(const MapImage& image);

  /** Counts a rejected config in veer_state (tests and status watch it). */
  Status countRejected();

  /**
   * veer_proxy, with ready as the connect hooks see it: 1 only while the agent's
   * flag is set AND the proxy's listener of every configured family is still
   * open (veer_proxy_listeners). So status and wait tell the truth about a proxy
   * that died with no agent alive to clear the flag.
   */
  Result<veer_proxy> proxy() const;
  /** Replaces veer_proxy in one update (see its comment for the ordering rule). */
  Status setProxy(const veer_proxy& proxy);
  /** Whether veer_proxy_listeners holds an open socket at slot (VEER_PROXY_LISTENER_*). */
  bool proxyListening(uint32_t slot) const;
  /** Puts the listening socket fd at slot (the map keeps the socket, not the fd). */
  Status setProxyListener(uint32_t slot, int fd);
  /** Empties veer_proxy_listeners: no redirect until a listener is put back. */
  Status clearProxyListeners();

  Result<LiveState> live() const;

private:
  std::vector<Fd> fds_;
};

} // namespace veer
