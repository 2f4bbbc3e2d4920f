#include "common/status_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>

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
    return Error{EINVAL, "metrics listen address " + listen +
                             ": expected ADDR:PORT or [ADDR6]:PORT"};
  }
  sockaddr_storage ss{};
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
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
  std::unique_ptr<StatusServer> s(new StatusServer());
  s->routes_ = std::move(routes);
  s->daemon_ = MHD_start_daemon(
      flags, hp->second, nullptr, nullptr,
      &StatusServerAccess::answer, s.get(),
      MHD_OPTION_SOCK_ADDR, reinterpret_cast<sockaddr*>(&ss), MHD_OPTION_CONNECTION_LIMIT,
      kMaxConnections, MHD_OPTION_CONNECTION_TIMEOUT, kConnectionTimeoutS, MHD_OPTION_END);
  if (s->daemon_ == nullptr) {
    return Error{EADDRINUSE, "metrics: cannot listen on " + listen +
                                 " (address in use, or not on this node)"};
  }
  const MHD_DaemonInfo* info = MHD_get_daemon_info(s->daemon_, MHD_DAEMON_INFO_LISTEN_FD);
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  if (info == nullptr || getsockname(info->listen_fd, reinterpret_cast<sockaddr*>(&bound), &len) != 0) {
    return osError(errno, "metrics: getsockname");
  }
  s->port_ = ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                              : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  return s;
}

StatusServer::~StatusServer() {
  if (daemon_ != nullptr) {
    MHD_stop_daemon(daemon_);
  }
}

} // namespace veer
