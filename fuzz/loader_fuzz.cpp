// libFuzzer target: any bytes as a YAML file through load -> resolve -> render.
// Nothing may crash, leak an exception or trip ASan/UBSan; errors are diagnostics.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/loader.h"
#include "config/resolve.h"
#include "config/plan_text.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  veer::LoadResult l = veer::loadString(text, "fuzz.yaml");
  veer::ResolveResult r = veer::resolve(l.config);
  (void)veer::renderPlan(r.plan);
  for (const auto& d : l.diags) {
    (void)d.format();
  }
  return 0;
}
