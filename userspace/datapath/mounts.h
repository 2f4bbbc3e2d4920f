#pragma once

#include <string>

#include "common/result.h"

namespace veer {

/** Makes sure path is a bpffs mount (mounting one there if it is not). */
Status ensureBpffs(const std::string& path);

/** The first cgroup v2 mount in /proc/mounts, or a new one at /run/veer/cgroup2. */
Result<std::string> findOrMountCgroup2();

} // namespace veer
