// veer-stream: a byte-stream integrity check over TCP, for socket acceleration tests.
//
//   veer-stream serve PORT             echo every connection's bytes back until it ends
//                                      (IPv4 and IPv6)
//   veer-stream send ADDR PORT BYTES [CONNS]
//                                      CONNS connections at once (default 1; a refused
//                                      connect is retried for 10 s), each sending
//                                      BYTES of a seeded pseudo-random stream in writes of
//                                      varying size while reading the echo, checking every
//                                      byte in order; prints "ok" and exits 0, or names the
//                                      first wrong offset and exits 1
//
// Reads and writes interleave on one poll loop, so both directions carry many messages
// of many sizes: what reordering or loss between the TCP stack and a direct delivery
// would break.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "veer-stream: %s: %s\n", what, std::strerror(errno));
  std::exit(2);
}

/** Byte i of connection c's stream: xorshift of (c, i / 8), so a shifted stream differs. */
uint8_t streamByte(uint64_t c, uint64_t i) {
  uint64_t x = (c + 1) * 0x9e3779b97f4a7c15ULL ^ (i / 8) * 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 31;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 29;
  return static_cast<uint8_t>(x >> (8 * (i % 8)));
}

void serveOne(int fd) {
  std::vector<char> buf(64 * 1024);
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n <= 0) {
      break;
    }
    for (ssize_t off = 0; off < n;) {
      ssize_t w = ::write(fd, buf.data() + off, static_cast<size_t>(n - off));
      if (w <= 0) {
        ::close(fd);
        return;
      }
      off += w;
    }
  }
  ::close(fd);
}

int serve(uint16_t port) {
  int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    die("socket");
  }
  int zero = 0, one = 1;
  ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)); // IPv4 too, mapped
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(port);
  a.sin6_addr = in6addr_any;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(fd, 128) != 0) {
    die("bind/listen");
  }
  for (;;) {
    int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR) {
        continue;
      }
      die("accept");
    }
    std::thread(serveOne, c).detach();
  }
}

/** One connection: 0 when every echoed byte matched, else 1 (with a message). */
int sendOne(const sockaddr_storage& to, socklen_t len, uint64_t id, uint64_t bytes) {
  // The server may still be starting: a refused connect is retried for up to 10 s.
  int fd = -1;
  for (int attempt = 0;; ++attempt) {
    fd = ::socket(to.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      die("socket");
    }
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&to), len) == 0) {
      break;
    }
    if (errno != ECONNREFUSED || attempt == 1000) {
      die("connect");
    }
    ::close(fd);
    ::usleep(10000);
  }
  ::fcntl(fd, F_SETFL, O_NONBLOCK);
  std::vector<uint8_t> out(64 * 1024), in(64 * 1024);
  uint64_t sent = 0, got = 0, step = id;
  bool shut = false;
  while (got < bytes) {
    pollfd p{fd, static_cast<short>(POLLIN | (sent < bytes ? POLLOUT : 0)), 0};
    if (::poll(&p, 1, 10000) <= 0) {
      std::fprintf(stderr, "veer-stream: conn %llu stalled at %llu sent, %llu echoed\n",
                   static_cast<unsigned long long>(id), static_cast<unsigned long long>(sent),
                   static_cast<unsigned long long>(got));
      return 1;
    }
    if ((p.revents & POLLOUT) && sent < bytes) {
      // 1 byte to 64 KiB, varying: many messages, small and large.
      step = step * 6364136223846793005ULL + 1442695040888963407ULL;
      uint64_t n = std::min<uint64_t>(bytes - sent, 1 + (step >> 33) % out.size());
      for (uint64_t i = 0; i < n; ++i) {
        out[i] = streamByte(id, sent + i);
      }
      ssize_t w = ::send(fd, out.data(), n, MSG_NOSIGNAL);
      if (w < 0 && errno != EAGAIN) {
        die("send");
      }
      sent += w > 0 ? static_cast<uint64_t>(w) : 0;
    }
    if (sent == bytes && !shut) {
      ::shutdown(fd, SHUT_WR);
      shut = true;
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t r = ::recv(fd, in.data(), in.size(), 0);
      if (r < 0 && errno != EAGAIN) {
        die("recv");
      }
      if (r == 0) {
        std::fprintf(stderr, "veer-stream: conn %llu: echo ended at %llu of %llu bytes\n",
                     static_cast<unsigned long long>(id), static_cast<unsigned long long>(got),
                     static_cast<unsigned long long>(bytes));
        return 1;
      }
      for (ssize_t i = 0; i < r; ++i, ++got) {
        if (in[static_cast<size_t>(i)] != streamByte(id, got)) {
          std::fprintf(stderr, "veer-stream: conn %llu: wrong byte at offset %llu\n",
                       static_cast<unsigned long long>(id), static_cast<unsigned long long>(got));
          return 1;
        }
      }
    }
  }
  ::close(fd);
  return 0;
}

int send(const char* addr, uint16_t port, uint64_t bytes, int conns) {
  sockaddr_storage to{};
  socklen_t len = 0;
  auto* a4 = reinterpret_cast<sockaddr_in*>(&to);
  auto* a6 = reinterpret_cast<sockaddr_in6*>(&to);
  if (::inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    len = sizeof(*a4);
  } else if (::inet_pton(AF_INET6, addr, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    len = sizeof(*a6);
  } else {
    std::fprintf(stderr, "veer-stream: not an address: %s\n", addr);
    return 2;
  }
  std::vector<int> rc(static_cast<size_t>(conns));
  std::vector<std::thread> threads;
  for (int c = 0; c < conns; ++c) {
    threads.emplace_back([&, c] { rc[static_cast<size_t>(c)] = sendOne(to, len, c, bytes); });
  }
  int failed = 0;
  for (int c = 0; c < conns; ++c) {
    threads[static_cast<size_t>(c)].join();
    failed += rc[static_cast<size_t>(c)] != 0;
  }
  if (failed != 0) {
    return 1;
  }
  std::printf("ok %d x %llu bytes\n", conns, static_cast<unsigned long long>(bytes));
  return 0;
}

int usage() {
  std::fprintf(stderr, "usage: veer-stream serve PORT\n"
                       "       veer-stream send ADDR PORT BYTES [CONNS]\n");
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "serve") == 0) {
    return serve(static_cast<uint16_t>(std::atoi(argv[2])));
  }
  if ((argc == 5 || argc == 6) && std::strcmp(argv[1], "send") == 0) {
    const int conns = argc == 6 ? std::atoi(argv[5]) : 1;
    const long long bytes = std::atoll(argv[4]);
    if (conns < 1 || conns > 256 || bytes < 1) {
      return usage();
    }
    return send(argv[2], static_cast<uint16_t>(std::atoi(argv[3])), static_cast<uint64_t>(bytes),
                conns);
  }
  return usage();
}
