#pragma once

#include <string>

#include "common/result.h"

namespace veer {

/** The whole content of a file. */
Result<std::string> readFile(const std::string& path);

} // namespace veer
