#pragma once

// Kubernetes YAML -> Config (model.h), with positioned diagnostics.

#include <string>
#include <string_view>
#include <vector>

#include "config/model.h"
#include "config/plan.h"

namespace veer {

struct LoadResult {
  Config config;
  Diagnostics diags;
};

/**
 * Loads files and directories (recursively; *.yaml, *.yml, *.json; entries whose
 * name starts with ".." are skipped, so a ConfigMap mount is read once through
 * its top-level symlinks). Multi-document files, any order. Unknown kinds are
 * warnings. Diagnostics name file:line:column.
 */
LoadResult loadPaths(const std::vector<std::string>& paths);

/** Loads one YAML text as if it were the file fileName. */
LoadResult loadString(std::string_view yaml, const std::string& fileName);

} // namespace veer
