#include "compiler/pipeline.h"

namespace veer {

BuildResult buildFromPaths(const std::vector<std::string>& paths, const BuildOptions& options) {
  BuildResult out;
  {
    // Unless asked to keep it (the proxy's route table needs the pods), the Config is
    // freed once resolved: that keeps the peak memory of a large config down (the
    // compiled image is the biggest allocation).
    LoadResult loaded = loadPaths(paths);
    out.diags = std::move(loaded.diags);
    if (hasErrors(out.diags)) {
      return out;
    }
    ResolveResult resolved = resolve(loaded.config);
    out.diags.insert(out.diags.end(), resolved.diags.begin(), resolved.diags.end());
    if (hasErrors(out.diags)) {
      return out;
    }
    out.plan = std::move(resolved.plan);
    if (options.keepConfig) {
      out.config = std::move(loaded.config);
    }
  }
  CompileResult compiled = compile(out.plan, options.maglev);
  for (const std::string& e : compiled.errors) {
    Diagnostic d;
    d.message = e;
    out.diags.push_back(std::move(d));
  }
  out.image = std::move(compiled.image);
  return out;
}

} // namespace veer
