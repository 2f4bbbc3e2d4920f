#include "common/result.h"

#include <cstring>

namespace veer {

Error osError(int err, const std::string& context) {
  return Error{err, context + ": " + std::strerror(err)};
}

} // namespace veer
