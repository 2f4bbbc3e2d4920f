#pragma once

// load -> validate/resolve -> compile, as the agent and veerctl both run it.

#include <string>
#include <vector>

#include "compiler/compiler.h"
#include "config/loader.h"

namespace veer {

struct BuildResult {
  Config config; // what was loaded, when BuildOptions::keepConfig
  Plan plan;
  MapImage image;
  Diagnostics diags; // loader, resolver and compiler findings
  /** True when there is no error: the image may be applied. */
  bool ok() const { return !hasErrors(diags); }
};

struct BuildOptions {
  /** Keep BuildResult::config (for RouteTable::fromPlan); otherwise it is freed early. */
  bool keepConfig = false;
  /** Rings kept from earlier builds (the agent's), so unchanged versions are not recomputed. */
  MaglevCache* maglev = nullptr;
};

/** Loads, resolves and compiles the config at paths (files or directories). */
BuildResult buildFromPaths(const std::vector<std::string>& paths, const BuildOptions& options = {});

} // namespace veer
