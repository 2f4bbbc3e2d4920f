#pragma once

#include <cstdio>
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

/**
 * Text from an untrusted file, fit for a log line: at most max bytes of it, control and
 * non-ASCII bytes escaped (\n, \t, \xNN), and when cut, "..." and the full length. A
 * message that quotes a file never carries more of it than this. Idempotent on its own
 * output when that is within max (a backslash is kept as is), so a message that quotes an
 * excerpt can pass through it again.
 */
inline std::string excerpt(std::string_view s, size_t max) {
  std::string out;
  const size_t n = s.size() < max ? s.size() : max;
  for (size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c >= 0x7f) {
      char hex[5];
      std::snprintf(hex, sizeof(hex), "\\x%02x", c);
      out += hex;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (n < s.size()) {
    out += "... (" + std::to_string(s.size()) + " bytes)";
  }
  return out;
}

} // namespace veer
