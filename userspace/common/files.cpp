#include "common/files.h"

#include <cerrno>
#include <fstream>
#include <sstream>

namespace veer {

Result<std::string> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return osError(errno, "open " + path);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) {
    return osError(errno, "read " + path);
  }
  return ss.str();
}

} // namespace veer
