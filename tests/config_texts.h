#pragma once

// Config texts the unit and integration tests both write.

#include <sstream>
#include <string>
#include <utility>

namespace veer::test {

/** A VirtualService for reviews with these weights on subsets v1, v2, v3. */
inline std::string reviewsSplit(int v1, int v2, int v3 = 0) {
  std::ostringstream y;
  y << "apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\nmetadata:\n"
       "  name: reviews\nspec:\n  hosts:\n  - reviews\n  http:\n  - route:\n";
  const std::pair<const char*, int> split[] = {{"v1", v1}, {"v2", v2}, {"v3", v3}};
  for (const auto& [subset, w] : split) {
    y << "    - destination:\n        host: reviews\n        subset: " << subset
      << "\n      weight: " << w << "\n";
  }
  return y.str();
}

} // namespace veer::test
