#pragma once

// The pure rule compiler: Plan in, map image out. No syscalls; same input,
// same bytes.

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "compiler/maglev.h"
#include "common/str.h"
#include "config/plan.h"
#include "veer/maps.h"

namespace veer {

/**
 * A veer_version as a MapImage holds it. The map value is 264 bytes whatever the version
 * holds (room for 40 backend ids and two names), and 10,000 services have 30,000 versions;
 * this is 32 bytes, with its backend ids in MapImage::versionBackends.
 */
struct ImageVersion {
  uint32_t svcId = 0;
  uint16_t nBackends = 0;
  uint8_t weight = 0;        // percent
  uint32_t firstBackend = 0; // where its backend ids start in MapImage::versionBackends
  Str service;               // "namespace/name:port"
  Str subset;                // the version's name (versionName)
};

/** Every entry of one generation of the config-derived maps. Keys carry gen 0. */
struct MapImage {
  std::vector<std::pair<veer_svc_key, veer_service>> services;
  std::vector<std::pair<veer_version_key, ImageVersion>> versions;
  /** The backend ids (veer_backend keys) of every version, one version after another. */
  std::vector<uint32_t> versionBackends;
  /** Versions of two or more backends; a ring is shared with the MaglevCache that made it. */
  std::vector<std::pair<veer_version_key, std::shared_ptr<const veer_maglev_ring>>> rings;
  std::vector<std::pair<veer_backend_key, veer_backend>> backends;
  std::vector<std::pair<veer_member_key, veer_backend>> members;
  /** Pods in a lane and their lane id (1..VEER_MAX_LANES-1), sorted. */
  std::vector<std::pair<PlanLaneClient, uint32_t>> laneClients;
  /**
   * veer_lane_of entries: the lane clients' cgroups. Node state, not config: compile()
   * leaves it empty and the agent fills it (laneCgroups()) before each apply.
   */
  std::vector<std::pair<veer_lane_key, veer_lane>> lanes;

  /** The veer_version map value of one of versions. */
  veer_version versionValue(const ImageVersion& v) const;

  /** FNV-1a over every config-derived entry (not lanes): equal configs, equal digests. */
  uint64_t digest() const;
};

/** The map value of a MapImage entry: the value itself, or the ring a shared_ptr holds. */
template <class V> const V& mapValue(const V& v) {
  return v;
}
template <class V> const V& mapValue(const std::shared_ptr<const V>& v) {
  return *v;
}

/**
 * Smooth weighted round-robin over VEER_WEIGHT_SLOTS slots: version i gets
 * exactly weights[i] slots, interleaved so any window of consecutive slots is
 * as close to the weights as a sequence can be. Weights must sum to
 * VEER_WEIGHT_SLOTS; all-zero weights give VEER_NO_VERSION everywhere.
 */
std::vector<uint8_t> weightSlots(const std::vector<uint8_t>& weights);

/**
 * Cumulative layout for session affinity: version i owns one contiguous run of
 * weights[i] slots, runs in the order given. A client hashed to slot h keeps
 * its version while the weights stay; when weight moves from earlier runs to
 * the last one, clients only move into the last version, never out of it.
 */
std::vector<uint8_t> cumulativeSlots(const std::vector<uint8_t>& weights,
                                     const std::vector<size_t>& order);

/**
 * Compiles a plan. errors is non-empty only when a limit of maps.h is exceeded. Rings come
 * from maglev when given (the agent keeps one across applies; it is swept to this plan's
 * rings), else from a cache of this call alone.
 */
struct CompileResult {
  MapImage image;
  std::vector<std::string> errors;
};
CompileResult compile(const Plan& plan, MaglevCache* maglev = nullptr);

} // namespace veer
