// veer-routes: compiles config paths (YAML files or directories) into veer-proxy's route
// table JSON, the file the agent writes for the proxy (RouteTable::fromPlan -> toJson).
// For benchmarks and demos that run the proxy without an agent.
//
//   veer-routes PATH... > routes.json
//
// Diagnostics go to stderr; exit 1 (and no output) when any is an error.

#include <cstdio>
#include <string>
#include <vector>

#include "config/loader.h"
#include "config/resolve.h"
#include "proxy/router.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: veer-routes PATH... > routes.json\n");
    return 2;
  }
  std::vector<std::string> paths(argv + 1, argv + argc);
  veer::LoadResult l = veer::loadPaths(paths);
  veer::ResolveResult r = veer::resolve(l.config);
  veer::Diagnostics diags = l.diags;
  diags.insert(diags.end(), r.diags.begin(), r.diags.end());
  for (const veer::Diagnostic& d : diags) {
    std::fprintf(stderr, "%s\n", d.format().c_str());
  }
  if (veer::hasErrors(diags)) {
    return 1;
  }
  auto table = veer::proxy::RouteTable::fromPlan(r.plan, l.config, {});
  std::fprintf(stdout, "%s\n", table->toJson().c_str());
  return 0;
}
