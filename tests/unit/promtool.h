#pragma once

// `promtool check metrics` (Debian's prometheus package) on text the agent would serve,
// for the tests that render metrics.

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

namespace veer::promtool {

/** promtool's one lint veer accepts on purpose: Istio's name for the request duration
 * (istio_request_duration_milliseconds), kept so that dashboards and Flagger/Argo queries
 * port by prefix. */
inline constexpr const char* kIstioUnitLint =
    "veer_request_duration_milliseconds use base unit \"seconds\" instead of "
    "\"milliseconds\"\n";

/** What promtool says of text (parse errors and lints), or nullopt when it is not installed. */
inline std::optional<std::string> check(const std::string& text) {
  if (system("command -v promtool >/dev/null 2>&1") != 0) {
    return std::nullopt;
  }
  char path[] = "/tmp/veer-metrics-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) {
    return "mkstemp failed";
  }
  bool written = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  close(fd);
  std::string out = written ? "" : "could not write the text for promtool";
  if (written) {
    std::string cmd = std::string("promtool check metrics < ") + path + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    if (p == nullptr) {
      out = "popen failed";
    } else {
      char buf[256];
      while (fgets(buf, sizeof(buf), p)) {
        out += buf;
      }
      pclose(p);
    }
  }
  unlink(path);
  return out;
}

} // namespace veer::promtool
