#pragma once

// The agent's health and metrics endpoint (/healthz, /readyz, /metrics), on
// libmicrohttpd: a few GETs a minute from the kubelet and Prometheus, served
// on the library's own thread so a slow scrape never holds the agent's loop.

#include <sys/types.h>

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
  /**
   * Listens on a unix socket at path, mode 0600 (only its owner may connect), which
   * replaces whatever socket was there in one rename: a new process takes the name from
   * an old one still serving without a moment where it is missing. The file is removed
   * at destruction while it is still this server's.
   */
  static Result<std::unique_ptr<StatusServer>> startUnix(const std::string& path,
                                                         std::map<std::string, Handler> routes);
  ~StatusServer();
  StatusServer(const StatusServer&) = delete;
  StatusServer& operator=(const StatusServer&) = delete;

  /** The bound port (0 on a unix socket). */
  uint16_t port() const { return port_; }

private:
  StatusServer() = default;
  friend struct StatusServerAccess;

  /** Starts the daemon on listenFd (taken), or on addr when listenFd is -1. */
  static Result<std::unique_ptr<StatusServer>> startDaemon(const std::string& where, unsigned flags,
                                                           uint16_t port, const void* addr,
                                                           int listenFd,
                                                           std::map<std::string, Handler> routes);

  MHD_Daemon* daemon_ = nullptr;
  std::map<std::string, Handler> routes_;
  uint16_t port_ = 0;
  std::string unixPath_; // the socket file, "" on TCP
  dev_t unixDev_ = 0;    // and its identity: removed at the end only while still ours
  ino_t unixIno_ = 0;
};

} // namespace veer
