#pragma once

// load -> validate/resolve -> compile, as the agent and veerctl both run it.

#include <memory>
#include <string>
#include <vector>

#include "compiler/compiler.h"
#include "config/loader.h"

namespace veer {

struct BuildResult {
  /** What was loaded (null when it did not load). The plan's rules point into it. */
  std::shared_ptr<const Config> config;
  Plan plan;
  MapImage image;
  Diagnostics diags; // loader, resolver and compiler findings
  /** True when there is no error: the image may be applied. */
  bool ok() const { return !hasErrors(diags); }
};

struct BuildOptions {
  /** Rings kept from earlier builds (the agent's), so unchanged versions are not recomputed. */
  MaglevCache* maglev = nullptr;
};

/** Loads, resolves and compiles the config at paths (files or directories). */
BuildResult buildFromPaths(const std::vector<std::string>& paths, const BuildOptions& options = {});

/** The same, from texts already read (the agent's config sources). */
BuildResult buildFromTexts(const std::vector<ConfigText>& texts, const BuildOptions& options = {});

} // namespace veer
