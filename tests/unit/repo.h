#pragma once

// The repository's root, for tests that read its configs and headers. Taken
// from this file's path at compile time, so it holds for any build directory.

#include <filesystem>
#include <string>

namespace veer::test {

inline std::filesystem::path repo() {
  return std::filesystem::absolute(std::filesystem::path(__FILE__))
      .parent_path()
      .parent_path()
      .parent_path();
}

inline std::string repoFile(const std::string& rel) {
  return (repo() / rel).string();
}

} // namespace veer::test
