#pragma once

#include <string>
#include <string_view>

namespace veer {

/** ASCII lowercase (header names, host names): locale-independent. */
inline std::string asciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

} // namespace veer
