#pragma once

// Pods -> cgroups for lanes: the kernel knows a connecting process by its
// cgroup, the config knows a client by its Pod object.

#include <string>
#include <utility>
#include <vector>

#include "compiler/compiler.h"

namespace veer {

/**
 * veer_lane_of entries (generation 0) for the lane clients: every cgroup directory
 * under root that belongs to one of the pods. A directory belongs to a pod when
 * its name carries the pod's metadata.uid (kubelet's cgroupfs driver writes
 * "pod<uid>", the systemd driver "kubepods-...-pod<uid_with_underscores>.slice"),
 * or, for a pod without a uid, when its name is the pod's name (runtimes that
 * name cgroups after pods; the test world). Only the pod's own directory: the
 * BPF lookup walks up from a container's cgroup to it. unmatched gets the
 * clients with no cgroup yet (a pod still starting), "ns/name" each.
 */
std::vector<std::pair<veer_lane_key, veer_lane>>
laneCgroups(const std::string& root,
            const std::vector<std::pair<PlanLaneClient, uint32_t>>& clients,
            std::vector<std::string>* unmatched = nullptr);

} // namespace veer
