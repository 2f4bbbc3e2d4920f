#include "compiler/pipeline.h"

#include "config/resolve.h"

namespace veer {

namespace {

BuildResult buildFromLoaded(LoadResult loaded, const BuildOptions& options) {
  BuildResult out;
  out.diags = std::move(loaded.diags);
  if (hasErrors(out.diags)) {
    return out;
  }
  // Shared, so the plan's rules are the Config's, not copies of them.
  out.config = std::make_shared<const Config>(std::move(loaded.config));
  ResolveResult resolved = resolve(out.config);
  out.diags.insert(out.diags.end(), resolved.diags.begin(), resolved.diags.end());
  if (hasErrors(out.diags)) {
    return out;
  }
  out.plan = std::move(resolved.plan);
  CompileResult compiled = compile(out.plan, options.maglev);
  for (const std::string& e : compiled.errors) {
    Diagnostic d;
    d.message = e;
    out.diags.push_back(std::move(d));
  }
  out.image = std::move(compiled.image);
  return out;
}

} // namespace

BuildResult buildFromPaths(const std::vector<std::string>& paths, const BuildOptions& options) {
  return buildFromLoaded(loadPaths(paths), options);
}

BuildResult buildFromTexts(const std::vector<ConfigText>& texts, const BuildOptions& options) {
  return buildFromLoaded(loadTexts(texts), options);
}

} // namespace veer
