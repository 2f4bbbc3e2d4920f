#include "compiler/pipeline.h"

namespace veer {

BuildResult buildFromPaths(const std::vector<std::string>& paths) {
  BuildResult out;
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
  out.config = std::move(loaded.config);
  CompileResult compiled = compile(out.plan);
  for (const std::string& e : compiled.errors) {
    Diagnostic d;
    d.message = e;
    out.diags.push_back(std::move(d));
  }
  out.image = std::move(compiled.image);
  return out;
}

} // namespace veer
