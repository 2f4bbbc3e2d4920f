#include "compiler/pipeline.h"

#include <malloc.h>

namespace veer {

BuildResult buildFromPaths(const std::vector<std::string>& paths) {
  BuildResult out;
  {
    // The Config is not needed once resolved: freeing it before compiling keeps the peak
    // memory of a large config down (the compiled image is the biggest allocation).
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
  }
  malloc_trim(0); // hand the Config's many small blocks back before the image's large ones
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
