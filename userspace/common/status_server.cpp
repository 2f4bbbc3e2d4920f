#include "common/status_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "common/net.h"

namespace veer {
namespace {

// A probe or a scrape is one short request: a few connections, each given
// little time, so a stuck or hostile client cannot pile them up.
constexpr unsigned kMaxConnections = 32;
constexpr unsigned kConnectionTimeoutS = 10;

MHD_Result queue(MHD_Connection* c, const StatusServer::Response& r, bool head) {
  MHD_Response* resp = MHD_create_response_from_buffer(
      head ? 0 : r.body.size(), const_cast<char*>(r.body.data()), MHD_RESPMEM_MUST_COPY);
  if (resp == nullptr) {
    return MHD_NO;
  }
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r.contentType.c_str());
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  MHD_Result ret = MHD_queue_response(c, r.status, resp);
  MHD_destroy_response(resp);
  return ret;
}

} // namespace

struct StatusServerAccess {
  static MHD_Result answer(void* self, MHD_Connection* c, const char* url, const char* method,
                           const char*, const char*, size_t* uploadSize, void** state);
};

MHD_Result StatusServerAccess::answer(void* self, MHD_Connection* c, const char* url,
                                      const char* method, const char*, const char*,
                                      size_t* uploadSize, void** state) {
  auto* server = static_cast<StatusServer*>(self);
  // The first call for a request only announces it; answer on the second, once
  // any (ignored) body has been read.
  if (*state == nullptr) {
    *state = server;
    return MHD_YES;
  }
  if (*uploadSize != 0) {
    *uploadSize = 0;
    return MHD_YES;
  }
  const bool head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
  if (!head && strcmp(method, MHD_HTTP_METHOD_GET) != 0) {
    return queue(c, {.status = MHD_HTTP_METHOD_NOT_ALLOWED, .body = "GET or HEAD only\n"}, false);
  }
  auto it = server->routes_.find(url);
  if (it == server->routes_.end()) {
    return queue(c, {.status = MHD_HTTP_NOT_FOUND, .body = "not found\n"}, head);
  }
  return queue(c, it->second(), head);
}

Result<std::unique_ptr<StatusServer>> StatusServer::start(const std::string& listen,
                                                          std::map<std::string, Handler> routes) {
  auto hp = parseHostPort(listen, true);
  if (!hp) {
    return Error{EINVAL,
                 "metrics listen address " + listen + ": expected ADDR:PORT or [ADDR6]:PORT"};
  }
  sockaddr_storage ss{};
  unsigned flags = 0;
  if (hp->first.v4) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(hp->second);
    sin->sin_addr.s_addr = hp->first.v4NetOrder();
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(hp->second);
    memcpy(&sin6->sin6_addr, hp->first.bytes.data(), 16);
    flags |= MHD_USE_IPv6;
  }
  auto s = startDaemon(listen, flags, hp->second, &ss, -1, std::move(routes));
  if (!s) {
    return s.error();
  }
  const MHD_DaemonInfo* info = MHD_get_daemon_info((*s)->daemon_, MHD_DAEMON_INFO_LISTEN_FD);
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  if (info == nullptr ||
      getsockname(info->listen_fd, reinterpret_cast<sockaddr*>(&bound), &len) != 0) {
    return osError(errno, "metrics: getsockname");
  }
  (*s)->port_ =
      ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                       : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  return s;
}

Result<std::unique_ptr<StatusServer>>
StatusServer::startUnix(const std::string& path, std::map<std::string, Handler> routes) {
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  // Bound under a name of its own first, so the rename below is the only moment the
  // public name changes hands.
  const std::string tmp = path + ".new." + std::to_string(getpid());
  if (tmp.size() >= sizeof(sun.sun_path)) {
    return Error{ENAMETOOLONG, "stats socket " + path + ": longer than a unix socket path may be"};
  }
  memcpy(sun.sun_path, tmp.c_str(), tmp.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return osError(errno, "stats socket " + path + ": socket");
  }
  unlink(tmp.c_str()); // left by a process of this pid that died here
  // Mode 0600 before listen(): until then a connect is refused, so nobody outside the
  // owner ever reaches it.
  struct stat st {};
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) != 0 ||
      chmod(tmp.c_str(), 0600) != 0 || ::listen(fd, 16) != 0 || stat(tmp.c_str(), &st) != 0 ||
      rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::close(fd);
    unlink(tmp.c_str());
    return osError(err, "stats socket " + path);
  }
  // MHD takes the socket and closes it when stopped. Whether a failed start closed it is
  // not documented: it is left then, rather than close a number another thread reused.
  auto s = startDaemon(path, 0, 0, nullptr, fd, std::move(routes));
  if (!s) {
    unlink(path.c_str());
    return s.error();
  }
  (*s)->unixPath_ = path;
  (*s)->unixDev_ = st.st_dev;
  (*s)->unixIno_ = st.st_ino;
  return s;
}

Result<std::unique_ptr<StatusServer>>
StatusServer::startDaemon(const std::string& where, unsigned flags, uint16_t port, const void* addr,
                          int listenFd, std::map<std::string, Handler> routes) {
  std::unique_ptr<StatusServer> s(new StatusServer());
  s->routes_ = std::move(routes);
  MHD_OptionItem options[] = {
      listenFd >= 0 ? MHD_OptionItem{MHD_OPTION_LISTEN_SOCKET, listenFd, nullptr}
                    : MHD_OptionItem{MHD_OPTION_SOCK_ADDR, 0, const_cast<void*>(addr)},
      {MHD_OPTION_CONNECTION_LIMIT, kMaxConnections, nullptr},
      {MHD_OPTION_CONNECTION_TIMEOUT, kConnectionTimeoutS, nullptr},
      {MHD_OPTION_END, 0, nullptr},
  };
  s->daemon_ = MHD_start_daemon(flags | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, port,
                                nullptr, nullptr, &StatusServerAccess::answer, s.get(),
                                MHD_OPTION_ARRAY, options, MHD_OPTION_END);
  if (s->daemon_ == nullptr) {
    return Error{EADDRINUSE, "metrics: cannot listen on " + where +
                                 (listenFd >= 0 ? "" : " (address in use, or not on this node)")};
  }
  return s;
}

StatusServer::~StatusServer() {
  if (daemon_ != nullptr) {
    MHD_stop_daemon(daemon_);
  }
  // A newer process may have renamed its own socket over the name: that one stays.
  struct stat st {};
  if (!unixPath_.empty() && stat(unixPath_.c_str(), &st) == 0 && st.st_dev == unixDev_ &&
      st.st_ino == unixIno_) {
    unlink(unixPath_.c_str());
  }
}

} // namespace veer
