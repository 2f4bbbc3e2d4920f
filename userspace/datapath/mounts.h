#pragma once

#include <string>

#include "common/result.h"

namespace veer {

/** Makes sure path is a bpffs mount (mounting one there if it is not). */
Status ensureBpffs(const std::string& path);

/** The first cgroup v2 mount in /proc/mounts, or a new one at /run/veer/cgroup2. */
Result<std::string> findOrMountCgroup2();

/**
 * Enters the mount and cgroup namespaces of PID 1 (the host's, in a pod with hostPID),
 * then makes sure bpffs is mounted at bpffs and cgroup2 (of the host's whole tree) at
 * cgroup2, so that both outlive a container and are seen by every one that mounts
 * those host paths. For a single-threaded process only, which it leaves in those
 * namespaces: the DaemonSet's init container, which exits right after.
 */
Status prepareHostMounts(const std::string& bpffs, const std::string& cgroup2);

} // namespace veer
