#include "common/version.h"

// The Makefile defines VEER_VERSION for this file alone, so that a new commit rebuilds
// one object; builds that do not (the fuzz targets) say so instead of guessing.
#ifndef VEER_VERSION
#define VEER_VERSION "unknown"
#endif

namespace veer {

const char* veerVersion() {
  return VEER_VERSION;
}

} // namespace veer
