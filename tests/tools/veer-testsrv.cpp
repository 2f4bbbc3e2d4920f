// veer-testsrv: the backend run inside a test pod.
//
//   veer-testsrv --version v2 --tcp 9080 [--tcp PORT...] [--udp 5353...]
//
// TCP: HTTP/1.1, every request gets "200 OK", Content-Type: text/plain,
// x-veer-version: <version>, body "<version>\n"; keep-alive unless the request says
// "Connection: close" (or is HTTP/1.0 without keep-alive). Pipelined requests are
// answered in order. A request with header "x-veer-echo: 1" gets its own request head
// appended to the body (what a proxy changed is visible). With --call HOST:PORT (a
// middle tier of a call chain), each request first makes one GET to HOST:PORT,
// copying the request headers named by --propagate NAME, and the body is
// "<version>\n" followed by that response's body (502 if the call fails). UDP: each datagram is
// answered with "<version>\n" from the address it was sent to (IP_PKTINFO / IPV6_RECVPKTINFO). One
// IPv4 and one IPv6-only socket per port; UDP sockets are bound before any TCP socket listens, so
// "TCP accepts" means "all ports are ready". Single-threaded epoll, level-triggered; connection
// objects are pooled. Exits 0 on SIGTERM/SIGINT.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace veer::test {
namespace {

constexpr int kBacklog = 4096;
constexpr size_t kInBufSize = 16384;
constexpr int kMaxEvents = 256;

enum class FdKind : uint8_t { kNone, kListen, kUdp, kConn, kSignal };

struct Conn {
  int fd = -1;
  size_t inLen = 0;
  bool closeAfterWrite = false;
  std::string out; // pending output; capacity kept across reuse
  size_t outOff = 0;
  char in[kInBufSize];
};

struct Server {
  std::string version;
  std::string callHost; // --call: numeric address
  uint16_t callPort = 0;
  std::vector<std::string> propagate; // lowercase header names
  std::string respKeepAlive;
  std::string respClose;
  int epfd = -1;
  std::vector<FdKind> kinds;               // by fd
  std::vector<Conn*> conns;                // by fd
  std::vector<std::unique_ptr<Conn>> pool; // all Conn objects ever made
  std::vector<Conn*> freeList;
};

void die(const char* what) {
  std::fprintf(stderr, "veer-testsrv: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

void setKind(Server& s, int fd, FdKind kind) {
  if (static_cast<size_t>(fd) >= s.kinds.size()) {
    s.kinds.resize(fd + 1024, FdKind::kNone);
    s.conns.resize(fd + 1024, nullptr);
  }
  s.kinds[fd] = kind;
}

void addEpoll(Server& s, int fd, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (::epoll_ctl(s.epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
    die("epoll_ctl add");
  }
}

int makeSocket(int family, int type, uint16_t port) {
  int fd = ::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -1;
  }
  int one = 1;
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
    die("SO_REUSEADDR");
  }
  int rc;
  if (family == AF_INET6) {
    if (::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) {
      die("IPV6_V6ONLY");
    }
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(port);
    a.sin6_addr = in6addr_any;
    rc = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  } else {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    rc = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  }
  if (rc != 0) {
    std::fprintf(stderr, "veer-testsrv: bind %s port %u: %s\n",
                 family == AF_INET6 ? "[::]" : "0.0.0.0", port, std::strerror(errno));
    std::exit(1);
  }
  if (type == SOCK_DGRAM) {
    if (family == AF_INET6) {
      rc = ::setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
    } else {
      rc = ::setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
    }
    if (rc != 0) {
      die("pktinfo");
    }
  }
  return fd;
}

void closeConn(Server& s, Conn* c) {
  ::close(c->fd); // also removes it from epoll
  s.kinds[c->fd] = FdKind::kNone;
  s.conns[c->fd] = nullptr;
  c->fd = -1;
  c->inLen = 0;
  c->out.clear();
  c->outOff = 0;
  c->closeAfterWrite = false;
  s.freeList.push_back(c);
}

bool iequalsPrefix(const char* p, const char* end, const char* lit) {
  size_t n = std::strlen(lit);
  if (static_cast<size_t>(end - p) < n) {
    return false;
  }
  return ::strncasecmp(p, lit, n) == 0;
}

bool containsToken(const char* p, const char* end, const char* tok) {
  size_t n = std::strlen(tok);
  for (; p + n <= end; ++p) {
    if (::strncasecmp(p, tok, n) == 0) {
      return true;
    }
  }
  return false;
}

/** The value of header name (lowercase) in a request head, trimmed; "" if absent. */
std::string headerValue(std::string_view head, std::string_view name) {
  for (size_t p = head.find("\r\n"); p != std::string_view::npos && p + 2 < head.size();) {
    size_t eol = head.find("\r\n", p + 2);
    std::string_view line = head.substr(p + 2, eol == std::string_view::npos ? eol : eol - p - 2);
    if (line.size() > name.size() && line[name.size()] == ':' &&
        ::strncasecmp(line.data(), name.data(), name.size()) == 0) {
      std::string_view v = line.substr(name.size() + 1);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) {
        v.remove_prefix(1);
      }
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) {
        v.remove_suffix(1);
      }
      return std::string(v);
    }
    p = eol;
  }
  return "";
}

/** One blocking GET to the --call address; the response body, or an error text. */
bool callNext(const Server& s, std::string_view head, std::string* body) {
  sockaddr_storage ss{};
  socklen_t len;
  in6_addr a6{};
  in_addr a4{};
  if (::inet_pton(AF_INET, s.callHost.c_str(), &a4) == 1) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(s.callPort);
    sin->sin_addr = a4;
    len = sizeof(*sin);
  } else if (::inet_pton(AF_INET6, s.callHost.c_str(), &a6) == 1) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(s.callPort);
    sin6->sin6_addr = a6;
    len = sizeof(*sin6);
  } else {
    *body = "bad --call address\n";
    return false;
  }
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *body = std::string("socket: ") + std::strerror(errno) + "\n";
    return false;
  }
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  std::string req = "GET / HTTP/1.1\r\nHost: " + s.callHost + "\r\nConnection: close\r\n";
  for (const std::string& name : s.propagate) {
    std::string v = headerValue(head, name);
    if (!v.empty()) {
      req += name + ": " + v + "\r\n";
    }
  }
  req += "\r\n";
  std::string resp;
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0 &&
            ::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size());
  char buf[4096];
  for (ssize_t n; ok && (n = ::recv(fd, buf, sizeof(buf), 0)) != 0;) {
    if (n < 0) {
      ok = errno == EINTR;
      continue;
    }
    resp.append(buf, n);
  }
  const int err = errno;
  ::close(fd);
  size_t bodyAt = resp.find("\r\n\r\n");
  if (!ok || bodyAt == std::string::npos || resp.compare(0, 12, "HTTP/1.1 200") != 0) {
    *body = "call " + s.callHost + ":" + std::to_string(s.callPort) + " failed: " +
            (ok ? resp.substr(0, resp.find("\r\n")) : std::string(std::strerror(err))) + "\n";
    return false;
  }
  *body = resp.substr(bodyAt + 4);
  return true;
}

/** The response to one request that is echoed or calls the next tier. */
std::string dynamicResponse(const Server& s, std::string_view head, bool close) {
  std::string body = s.version + "\n";
  bool ok = true;
  if (s.callPort != 0) {
    std::string next;
    ok = callNext(s, head, &next);
    body += next;
  }
  if (headerValue(head, "x-veer-echo") == "1") {
    body += head;
  }
  return std::string(ok ? "HTTP/1.1 200 OK" : "HTTP/1.1 502 Bad Gateway") +
         "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nx-veer-version: " + s.version + (close ? "\r\nConnection: close" : "") + "\r\n\r\n" +
         body;
}

/** Parses complete requests in c->in, appends responses. Returns false on a bad request. */
bool handleInput(Server& s, Conn* c) {
  size_t pos = 0;
  while (!c->closeAfterWrite) {
    const char* start = c->in + pos;
    const char* end = c->in + c->inLen;
    const char* headEnd = static_cast<const char*>(::memmem(start, end - start, "\r\n\r\n", 4));
    if (headEnd == nullptr) {
      break;
    }
    const char* lineEnd = static_cast<const char*>(::memchr(start, '\r', headEnd - start + 1));
    bool http10 =
        lineEnd != nullptr && lineEnd - start >= 8 && std::memcmp(lineEnd - 8, "HTTP/1.0", 8) == 0;
    bool close = http10;
    size_t bodyLen = 0;
    for (const char* h = lineEnd + 2; h < headEnd;) {
      const char* eol = static_cast<const char*>(::memmem(h, headEnd + 2 - h, "\r\n", 2));
      if (eol == nullptr) {
        break;
      }
      if (iequalsPrefix(h, eol, "connection:")) {
        if (containsToken(h + 11, eol, "close")) {
          close = true;
        } else if (containsToken(h + 11, eol, "keep-alive")) {
          close = false;
        }
      } else if (iequalsPrefix(h, eol, "content-length:")) {
        bodyLen = std::strtoul(h + 15, nullptr, 10);
      } else if (iequalsPrefix(h, eol, "transfer-encoding:")) {
        return false; // chunked request bodies are not needed by any test
      }
      h = eol + 2;
    }
    size_t reqLen = static_cast<size_t>(headEnd + 4 - start) + bodyLen;
    if (reqLen > c->inLen - pos) {
      if (reqLen > kInBufSize) {
        return false;
      }
      break;
    }
    pos += reqLen;
    const std::string_view head(start, headEnd + 2 - start);
    if (s.callPort != 0 || headerValue(head, "x-veer-echo") == "1") {
      c->out += dynamicResponse(s, head, close);
    } else {
      c->out += close ? s.respClose : s.respKeepAlive;
    }
    c->closeAfterWrite = close;
  }
  if (pos > 0) {
    std::memmove(c->in, c->in + pos, c->inLen - pos);
    c->inLen -= pos;
  }
  return c->inLen < kInBufSize;
}

/** Writes pending output. Returns false when the connection should be closed. */
bool flush(Server& s, Conn* c) {
  while (c->outOff < c->out.size()) {
    ssize_t n = ::send(c->fd, c->out.data() + c->outOff, c->out.size() - c->outOff, MSG_NOSIGNAL);
    if (n > 0) {
      c->outOff += n;
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && errno == EAGAIN) {
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLOUT;
      ev.data.fd = c->fd;
      ::epoll_ctl(s.epfd, EPOLL_CTL_MOD, c->fd, &ev);
      return true;
    }
    return false;
  }
  bool hadPending = c->outOff > 0;
  c->out.clear();
  c->outOff = 0;
  if (c->closeAfterWrite) {
    return false;
  }
  if (hadPending) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = c->fd;
    ::epoll_ctl(s.epfd, EPOLL_CTL_MOD, c->fd, &ev);
  }
  return true;
}

void onAccept(Server& s, int lfd) {
  for (;;) {
    int fd = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) {
        continue;
      }
      return; // EAGAIN, or EMFILE etc.: try again on the next event
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    Conn* c;
    if (s.freeList.empty()) {
      s.pool.push_back(std::make_unique<Conn>());
      c = s.pool.back().get();
      c->out.reserve(1024);
    } else {
      c = s.freeList.back();
      s.freeList.pop_back();
    }
    c->fd = fd;
    setKind(s, fd, FdKind::kConn);
    s.conns[fd] = c;
    addEpoll(s, fd, EPOLLIN);
  }
}

void onConn(Server& s, Conn* c, uint32_t events) {
  if (events & EPOLLOUT) {
    if (!flush(s, c)) {
      closeConn(s, c);
      return;
    }
    if (c->outOff < c->out.size()) {
      return;
    }
  }
  if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
    return;
  }
  for (;;) {
    ssize_t n = ::recv(c->fd, c->in + c->inLen, kInBufSize - c->inLen, 0);
    if (n > 0) {
      c->inLen += n;
      if (!handleInput(s, c)) {
        closeConn(s, c);
        return;
      }
      if (c->closeAfterWrite || c->inLen == kInBufSize) {
        break;
      }
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && errno == EAGAIN) {
      break;
    }
    // EOF or error: answer what was complete, then close.
    flush(s, c);
    closeConn(s, c);
    return;
  }
  if (!flush(s, c)) {
    closeConn(s, c);
  }
}

void onUdp(Server& s, int fd) {
  char buf[2048];
  char ctrl[256];
  for (;;) {
    sockaddr_storage from{};
    iovec iov{buf, sizeof(buf)};
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof(from);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctrl;
    msg.msg_controllen = sizeof(ctrl);
    ssize_t n = ::recvmsg(fd, &msg, 0);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return;
    }
    // Reply from the address the datagram was sent to.
    char outCtrl[256];
    size_t outCtrlLen = 0;
    for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
      if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
        in_pktinfo pi;
        std::memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
        in_pktinfo reply{};
        reply.ipi_spec_dst = pi.ipi_addr;
        cmsghdr* o = reinterpret_cast<cmsghdr*>(outCtrl);
        o->cmsg_level = IPPROTO_IP;
        o->cmsg_type = IP_PKTINFO;
        o->cmsg_len = CMSG_LEN(sizeof(reply));
        std::memcpy(CMSG_DATA(o), &reply, sizeof(reply));
        outCtrlLen = CMSG_SPACE(sizeof(reply));
      } else if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
        in6_pktinfo pi;
        std::memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
        in6_pktinfo reply{};
        reply.ipi6_addr = pi.ipi6_addr;
        cmsghdr* o = reinterpret_cast<cmsghdr*>(outCtrl);
        o->cmsg_level = IPPROTO_IPV6;
        o->cmsg_type = IPV6_PKTINFO;
        o->cmsg_len = CMSG_LEN(sizeof(reply));
        std::memcpy(CMSG_DATA(o), &reply, sizeof(reply));
        outCtrlLen = CMSG_SPACE(sizeof(reply));
      }
    }
    std::string body = s.version + "\n";
    iovec oiov{body.data(), body.size()};
    msghdr out{};
    out.msg_name = &from;
    out.msg_namelen = msg.msg_namelen;
    out.msg_iov = &oiov;
    out.msg_iovlen = 1;
    out.msg_control = outCtrlLen > 0 ? outCtrl : nullptr;
    out.msg_controllen = outCtrlLen;
    if (::sendmsg(fd, &out, 0) < 0) {
      std::fprintf(stderr, "veer-testsrv: udp sendmsg: %s\n", std::strerror(errno));
    }
  }
}

int usage() {
  std::fprintf(stderr, "usage: veer-testsrv --version NAME [--tcp PORT]... [--udp PORT]...\n"
                       "                    [--call ADDR:PORT [--propagate HEADER]...]\n");
  return 2;
}

bool parsePort(const char* text, uint16_t* port) {
  char* end = nullptr;
  long v = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || v <= 0 || v > 65535) {
    return false;
  }
  *port = static_cast<uint16_t>(v);
  return true;
}

int serve(int argc, char** argv) {
  Server s;
  std::vector<uint16_t> tcp, udp;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) {
      return usage();
    }
    if (a == "--version") {
      s.version = argv[++i];
    } else if (a == "--call") {
      std::string hp = argv[++i];
      size_t colon = hp.rfind(':');
      if (colon == std::string::npos || !parsePort(hp.c_str() + colon + 1, &s.callPort)) {
        std::fprintf(stderr, "veer-testsrv: bad --call '%s' (ADDR:PORT)\n", hp.c_str());
        return 2;
      }
      s.callHost = hp.substr(0, colon);
      if (s.callHost.size() > 2 && s.callHost.front() == '[') {
        s.callHost = s.callHost.substr(1, s.callHost.size() - 2);
      }
    } else if (a == "--propagate") {
      std::string h = argv[++i];
      for (char& ch : h) {
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      }
      s.propagate.push_back(h);
    } else if (a == "--tcp" || a == "--udp") {
      uint16_t port;
      if (!parsePort(argv[++i], &port)) {
        std::fprintf(stderr, "veer-testsrv: bad port '%s'\n", argv[i]);
        return 2;
      }
      (a == "--tcp" ? tcp : udp).push_back(port);
    } else {
      return usage();
    }
  }
  if (s.version.empty() || (tcp.empty() && udp.empty())) {
    return usage();
  }
  std::string body = s.version + "\n";
  std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\nx-veer-version: " + s.version + "\r\n";
  s.respKeepAlive = head + "\r\n" + body;
  s.respClose = head + "Connection: close\r\n\r\n" + body;

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  if (::sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) {
    die("sigprocmask");
  }
  ::signal(SIGPIPE, SIG_IGN);
  int sfd = ::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd < 0) {
    die("signalfd");
  }
  s.epfd = ::epoll_create1(EPOLL_CLOEXEC);
  if (s.epfd < 0) {
    die("epoll_create1");
  }
  setKind(s, sfd, FdKind::kSignal);
  addEpoll(s, sfd, EPOLLIN);

  std::vector<int> owned{sfd};
  for (uint16_t port : udp) {
    for (int family : {AF_INET, AF_INET6}) {
      int fd = makeSocket(family, SOCK_DGRAM, port);
      if (fd < 0) {
        if (family == AF_INET6 && errno == EAFNOSUPPORT) {
          continue;
        }
        die("udp socket");
      }
      setKind(s, fd, FdKind::kUdp);
      addEpoll(s, fd, EPOLLIN);
      owned.push_back(fd);
    }
  }
  for (uint16_t port : tcp) {
    for (int family : {AF_INET, AF_INET6}) {
      int fd = makeSocket(family, SOCK_STREAM, port);
      if (fd < 0) {
        if (family == AF_INET6 && errno == EAFNOSUPPORT) {
          continue;
        }
        die("tcp socket");
      }
      if (::listen(fd, kBacklog) != 0) {
        die("listen");
      }
      setKind(s, fd, FdKind::kListen);
      addEpoll(s, fd, EPOLLIN);
      owned.push_back(fd);
    }
  }

  epoll_event events[kMaxEvents];
  for (;;) {
    int n = ::epoll_wait(s.epfd, events, kMaxEvents, -1);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      die("epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (static_cast<size_t>(fd) >= s.kinds.size()) {
        continue;
      }
      switch (s.kinds[fd]) {
      case FdKind::kListen:
        onAccept(s, fd);
        break;
      case FdKind::kUdp:
        onUdp(s, fd);
        break;
      case FdKind::kConn:
        onConn(s, s.conns[fd], events[i].events);
        break;
      case FdKind::kSignal:
        for (Conn* c : s.conns) {
          if (c != nullptr) {
            ::close(c->fd);
          }
        }
        for (int o : owned) {
          ::close(o);
        }
        ::close(s.epfd);
        return 0;
      case FdKind::kNone:
        break;
      }
    }
  }
}

} // namespace
} // namespace veer::test

int main(int argc, char** argv) {
  return veer::test::serve(argc, argv);
}
