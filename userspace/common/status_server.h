#pragma once

// The agent's health and metrics endpoint (/healthz, /readyz, /metrics), on
// libmicrohttpd: a few GETs a minute from the kubelet and Prometheus, served
// on the library's own thread so a slow scrape never holds the agent's loop.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/result.h"

struct MHD_Daemon;

namespace veer {

class StatusServer {
public:
  struct Response {
    unsigned status = 200;
    std::string contentType = "text/plain; charset=utf-8";
    std::string body;
  };
  /** Called on the server's thread: must be thread-safe against the agent. */
  using Handler = std::function<Response()>;

  /**
   * Listens on "ADDR:PORT" or "[ADDR6]:PORT" (port 0: any free port, for
   * tests) and answers GET and HEAD for the given paths; 404 for other paths,
   * 405 for other methods.
   */
  static Result<std::unique_ptr<StatusServer>> start(const std::string& listen,
                                                     std::map<std::string, Handler> routes);
  ~StatusServer();
  StatusServer(const StatusServer&) = delete;
  StatusServer& operator=(const StatusServer&) = delete;

  /** The bound port. */
  uint16_t port() const { return port_; }

private:
  StatusServer() = default;
  friend struct StatusServerAccess;

  MHD_Daemon* daemon_ = nullptr;
  std::map<std::string, Handler> routes_;
  uint16_t port_ = 0;
};

} // namespace veer
