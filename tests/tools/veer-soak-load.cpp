// veer-soak-load: the traffic of the load-and-fault soak (`make soak`, tests/soak/soak.sh).
//
//   veer-soak-load --target NAME,ADDR:PORT,VERSIONS[,HEADER=VALUE]... --duration S
//                  [--keepalive N] [--close M] [--max-requests C] [--timeout-ms T]
//                  [--pause-ms P] [--events FILE] [--max-events E] [--progress S]
//
// Run inside a test-world pod (veer-world exec ... client -- veer-soak-load ...). For every
// target it keeps N keep-alive connections and M connection-per-request loops, each sending
// one HTTP/1.1 GET at a time (HEADER: VALUE added when given), P ms apart, and counts every
// request by its outcome:
//   ok               200 from an allowed version (VERSIONS: "v1+v2", or "*" for any);
//                    counted per version (x-veer-version, else the body's first line)
//   wrong-version    200 from a version not in VERSIONS (e.g. a header rule ignored)
//   refused          ECONNREFUSED at connect
//   eperm            EPERM at connect (veer refuses a version with no ready pod)
//   connect-ERRNO    any other connect error (EINVAL: the world's blackhole, no hook)
//   reset, eof       the connection was reset or closed before the whole response came
//   timeout-connect, timeout-response   no connection / no whole response within T ms
//   http-CODE        any status but 200
//   bad-response     an unparseable response
// A whole response keeps its keep-alive connection, whatever it said (as a real client
// would): a connection the datapath sent the wrong way goes on being counted.
// Like any HTTP client (RFC 9110 9.2.2), a GET that fails with reset or eof on a reused
// keep-alive connection before any response byte is retried once on a new connection: the
// server may close an idle connection at any time. Such retries are counted ("retried");
// the retry's outcome is the request's. Each failure is also written to --events as one
// line "EPOCH_MS TARGET MODE CAUSE DETAIL CONN CONN_OPENED_MS" (CONN: the connection's serial
// number; at most E lines, the rest are only counted), so the soak can match failures to
// the faults it injected at that time, and to the one during which their connection opened.
//
// Bounded: no request starts after S seconds or after C requests; requests in flight then
// finish or time out, so every request sent has an outcome. SIGINT/SIGTERM end it the same
// way. At the end it prints a table per target and mode, then one machine-readable line:
//   VEER_SOAK_LOAD seconds=.. sent=.. ok=.. failed=.. retried=.. connections=..
//                  idle_closed=.. events=.. events_dropped=..
//                  failures=CAUSE:COUNT,... (sorted; "-" when none)
// Exits 0 when it ran (whatever the outcomes; judging them is the soak's job), 2 on bad
// usage or a setup error.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/net.h"

namespace veer::test::soak {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr size_t kMaxResponse =
    64 * 1024; // testsrv answers ~150 bytes; anything this big is broken
constexpr int kMaxEvents = 256;

struct Target {
  std::string name;
  IpAddr addr;
  uint16_t port = 0;
  std::set<std::string> versions; // empty: any
  std::string header;             // "name: value\r\n" or ""
  std::string hostPort;           // for the Host header
};

/** Counts of one target and mode. */
struct Tally {
  uint64_t sent = 0;
  uint64_t ok = 0;
  uint64_t retried = 0;
  std::map<std::string, uint64_t> okByVersion;
  std::map<std::string, uint64_t> failures; // cause -> count
  uint64_t failed() const {
    uint64_t n = 0;
    for (const auto& [cause, count] : failures) {
      n += count;
    }
    return n;
  }
};

enum class State : uint8_t { kIdle, kConnecting, kSending, kReceiving };

/** One keep-alive connection or one connection-per-request loop, one request at a time. */
struct Worker {
  const Target* target = nullptr;
  bool keepAlive = false;
  Tally* tally = nullptr;
  State state = State::kIdle;
  int fd = -1;
  bool reused = false;        // this connection already carried a whole exchange
  bool retry = false;         // this request is the one retry of a stale keep-alive failure
  uint64_t connId = 0;        // serial number of the current connection (0: none yet)
  int64_t connOpenMs = 0;     // when it was opened, epoch ms
  Clock::time_point nextAt;   // kIdle: when the next request starts
  Clock::time_point deadline; // otherwise: when it times out
  std::string request;
  size_t sentBytes = 0;
  std::string in;
};

struct Options {
  std::vector<Target> targets;
  int keepAlive = 4;
  int close = 2;
  double duration = 0;
  uint64_t maxRequests = 100'000'000;
  int timeoutMs = 2000;
  int pauseMs = 10;
  std::string eventsPath;
  uint64_t maxEvents = 100'000;
  int progressS = 0;
};

std::string errnoName(int err) {
  const char* n = ::strerrorname_np(err);
  return n != nullptr ? n : "E" + std::to_string(err);
}

int64_t epochMs() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

/** "NAME,ADDR:PORT,VERSIONS[,HEADER=VALUE]". */
std::optional<Target> parseTarget(const std::string& spec) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t comma; (comma = spec.find(',', start)) != std::string::npos; start = comma + 1) {
    parts.push_back(spec.substr(start, comma - start));
  }
  parts.push_back(spec.substr(start));
  if (parts.size() < 3 || parts.size() > 4 || parts[0].empty() ||
      parts[0].find_first_of(" \t") != std::string::npos) {
    return std::nullopt;
  }
  auto hp = parseHostPort(parts[1]);
  if (!hp) {
    return std::nullopt;
  }
  Target t;
  t.name = parts[0];
  t.addr = hp->first;
  t.port = hp->second;
  t.hostPort = parts[1];
  if (parts[2] != "*") {
    size_t from = 0;
    for (size_t plus; (plus = parts[2].find('+', from)) != std::string::npos; from = plus + 1) {
      t.versions.insert(parts[2].substr(from, plus - from));
    }
    t.versions.insert(parts[2].substr(from));
    if (t.versions.count("") != 0) {
      return std::nullopt;
    }
  }
  if (parts.size() == 4) {
    size_t eq = parts[3].find('=');
    if (eq == std::string::npos || eq == 0) {
      return std::nullopt;
    }
    t.header = parts[3].substr(0, eq) + ": " + parts[3].substr(eq + 1) + "\r\n";
  }
  return t;
}

class Load {
public:
  explicit Load(Options opt) : opt_(std::move(opt)) {}

  int run() {
    if (!opt_.eventsPath.empty()) {
      events_ = std::fopen(opt_.eventsPath.c_str(), "we");
      if (events_ == nullptr) {
        std::fprintf(stderr, "veer-soak-load: %s: %s\n", opt_.eventsPath.c_str(),
                     std::strerror(errno));
        return 2;
      }
    }
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    ::sigprocmask(SIG_BLOCK, &mask, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
    sigfd_ = ::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (sigfd_ < 0 || epfd_ < 0) {
      std::fprintf(stderr, "veer-soak-load: signalfd/epoll: %s\n", std::strerror(errno));
      return 2;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr; // the signal fd
    ::epoll_ctl(epfd_, EPOLL_CTL_ADD, sigfd_, &ev);

    const auto start = Clock::now();
    end_ = start + std::chrono::duration_cast<Clock::duration>(
                       std::chrono::duration<double>(opt_.duration));
    // Tallies first (workers point into the map), then the workers, staggered over one pause so
    // they do not all fire together.
    for (const Target& t : opt_.targets) {
      tallies_[{t.name, true}];
      tallies_[{t.name, false}];
    }
    for (const Target& t : opt_.targets) {
      for (int i = 0; i < opt_.keepAlive + opt_.close; ++i) {
        auto w = std::make_unique<Worker>();
        w->target = &t;
        w->keepAlive = i < opt_.keepAlive;
        w->tally = &tallies_[{t.name, w->keepAlive}];
        w->nextAt =
            start +
            milliseconds(opt_.pauseMs * static_cast<int>(workers_.size()) /
                         std::max<size_t>(1, opt_.targets.size() * (opt_.keepAlive + opt_.close)));
        w->request = "GET / HTTP/1.1\r\nHost: " + t.hostPort +
                     "\r\nUser-Agent: veer-soak-load\r\n" + t.header +
                     (w->keepAlive ? "" : "Connection: close\r\n") + "\r\n";
        workers_.push_back(std::move(w));
      }
    }
    auto nextProgress = start + std::chrono::seconds(opt_.progressS);
    epoll_event events[kMaxEvents];
    for (;;) {
      const auto now = Clock::now();
      const bool starting = !stopping_ && now < end_ && sent_ < opt_.maxRequests;
      size_t busy = 0;
      for (auto& w : workers_) {
        if (w->state != State::kIdle) {
          if (now >= w->deadline) {
            fail(*w, w->state == State::kConnecting ? "timeout-connect" : "timeout-response", "");
          } else {
            ++busy;
          }
        }
        if (w->state == State::kIdle && starting && now >= w->nextAt && sent_ < opt_.maxRequests) {
          ++sent_;
          ++w->tally->sent;
          startRequest(*w);
          busy += w->state != State::kIdle;
        }
      }
      if (!starting && busy == 0) {
        break;
      }
      if (opt_.progressS > 0 && now >= nextProgress) {
        progress(now - start);
        nextProgress += std::chrono::seconds(opt_.progressS);
      }
      int n = ::epoll_wait(epfd_, events, kMaxEvents, 5);
      if (n < 0 && errno != EINTR) {
        std::fprintf(stderr, "veer-soak-load: epoll_wait: %s\n", std::strerror(errno));
        return 2;
      }
      for (int i = 0; i < n; ++i) {
        if (events[i].data.ptr == nullptr) {
          signalfd_siginfo si;
          while (::read(sigfd_, &si, sizeof(si)) == sizeof(si)) {
            stopping_ = true;
          }
          continue;
        }
        onEvent(*static_cast<Worker*>(events[i].data.ptr), events[i].events);
      }
    }
    for (auto& w : workers_) {
      closeFd(*w);
    }
    if (events_ != nullptr) {
      std::fclose(events_);
    }
    report(Clock::now() - start);
    return 0;
  }

private:
  /** Starts the worker's next request: on its open connection, or on a new one. */
  void startRequest(Worker& w) {
    w.deadline = Clock::now() + milliseconds(opt_.timeoutMs);
    w.sentBytes = 0;
    w.in.clear();
    if (w.fd >= 0) {
      w.state = State::kSending;
      send(w);
      return;
    }
    connect(w);
  }

  void connect(Worker& w) {
    w.reused = false;
    w.connId = ++connections_;
    w.connOpenMs = epochMs();
    sockaddr_storage ss{};
    socklen_t len;
    if (w.target->addr.v4) {
      auto* a = reinterpret_cast<sockaddr_in*>(&ss);
      a->sin_family = AF_INET;
      a->sin_port = htons(w.target->port);
      a->sin_addr.s_addr = w.target->addr.v4NetOrder();
      len = sizeof(*a);
    } else {
      auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
      a->sin6_family = AF_INET6;
      a->sin6_port = htons(w.target->port);
      std::memcpy(&a->sin6_addr, w.target->addr.bytes.data(), 16);
      len = sizeof(*a);
    }
    w.fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (w.fd < 0) {
      fail(w, "socket-" + errnoName(errno), "");
      return;
    }
    int one = 1;
    ::setsockopt(w.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    epoll_event ev{};
    ev.events = EPOLLOUT;
    ev.data.ptr = &w;
    ::epoll_ctl(epfd_, EPOLL_CTL_ADD, w.fd, &ev);
    if (::connect(w.fd, reinterpret_cast<sockaddr*>(&ss), len) == 0) {
      w.state = State::kSending;
      send(w);
      return;
    }
    if (errno != EINPROGRESS) {
      failConnect(w, errno);
      return;
    }
    w.state = State::kConnecting;
  }

  void failConnect(Worker& w, int err) {
    fail(w,
         err == ECONNREFUSED ? "refused"
         : err == EPERM      ? "eperm"
                             : "connect-" + errnoName(err),
         "");
  }

  void watch(Worker& w, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = &w;
    ::epoll_ctl(epfd_, EPOLL_CTL_MOD, w.fd, &ev);
  }

  void onEvent(Worker& w, uint32_t events) {
    switch (w.state) {
    case State::kIdle:
      // An idle keep-alive connection became readable: the server closed it (or sent
      // something unasked). Either way it is unusable; the next request opens a new one.
      ++idleClosed_;
      closeFd(w);
      return;
    case State::kConnecting: {
      int err = 0;
      socklen_t len = sizeof(err);
      ::getsockopt(w.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        failConnect(w, err);
        return;
      }
      if (!(events & EPOLLOUT)) {
        return;
      }
      w.state = State::kSending;
      send(w);
      return;
    }
    case State::kSending:
      send(w);
      return;
    case State::kReceiving:
      receive(w);
      return;
    }
  }

  void send(Worker& w) {
    while (w.sentBytes < w.request.size()) {
      ssize_t n = ::send(w.fd, w.request.data() + w.sentBytes, w.request.size() - w.sentBytes,
                         MSG_NOSIGNAL);
      if (n > 0) {
        w.sentBytes += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0 && errno == EAGAIN) {
        watch(w, EPOLLOUT);
        return;
      }
      brokenConnection(w,
                       errno == EPIPE || errno == ECONNRESET ? "reset" : "send-" + errnoName(errno),
                       errnoName(errno));
      return;
    }
    w.state = State::kReceiving;
    watch(w, EPOLLIN);
  }

  void receive(Worker& w) {
    char buf[4096];
    for (;;) {
      ssize_t n = ::recv(w.fd, buf, sizeof(buf), 0);
      if (n > 0) {
        w.in.append(buf, static_cast<size_t>(n));
        if (w.in.size() > kMaxResponse) {
          fail(w, "bad-response", "over " + std::to_string(kMaxResponse) + " bytes");
          return;
        }
        if (parse(w, false)) {
          return;
        }
        continue;
      }
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0 && errno == EAGAIN) {
        return;
      }
      if (n == 0 && parse(w, true)) {
        return;
      }
      const int err = n == 0 ? 0 : errno;
      brokenConnection(w,
                       n == 0              ? "eof"
                       : err == ECONNRESET ? "reset"
                                           : "recv-" + errnoName(err),
                       n == 0 ? "after " + std::to_string(w.in.size()) + " bytes" : errnoName(err));
      return;
    }
  }

  /**
   * Judges w.in once it holds a whole response (eof: the peer has closed, so a response
   * without Content-Length ends here). True when the request is finished.
   */
  bool parse(Worker& w, bool eof) {
    const size_t headEnd = w.in.find("\r\n\r\n");
    if (headEnd == std::string::npos) {
      return false;
    }
    const std::string_view head(w.in.data(), headEnd + 2);
    int status = 0;
    if (head.size() < 12 || head.compare(0, 7, "HTTP/1.") != 0 ||
        std::sscanf(w.in.c_str() + 9, "%3d", &status) != 1) {
      fail(w, "bad-response", "status line");
      return true;
    }
    std::optional<size_t> contentLength;
    bool close = head.compare(0, 8, "HTTP/1.0") == 0;
    std::string version;
    for (size_t p = head.find("\r\n"); p != std::string_view::npos && p + 2 < head.size();) {
      const size_t eol = head.find("\r\n", p + 2);
      std::string_view line = head.substr(p + 2, eol - p - 2);
      const size_t colon = line.find(':');
      if (colon != std::string_view::npos) {
        std::string name(line.substr(0, colon));
        for (char& c : name) {
          c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        std::string_view value = line.substr(colon + 1);
        while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
          value.remove_prefix(1);
        }
        if (name == "content-length") {
          contentLength = std::strtoul(std::string(value).c_str(), nullptr, 10);
        } else if (name == "connection") {
          close = value.find("close") != std::string_view::npos;
        } else if (name == "x-veer-version") {
          version = std::string(value);
        } else if (name == "transfer-encoding") {
          fail(w, "bad-response", "transfer-encoding");
          return true;
        }
      }
      p = eol;
    }
    const size_t bodyAt = headEnd + 4;
    if (contentLength ? w.in.size() < bodyAt + *contentLength : !eof) {
      return false;
    }
    const std::string body = w.in.substr(bodyAt, contentLength.value_or(std::string::npos));
    if (version.empty()) {
      version = body.substr(0, body.find('\n'));
    }
    // A whole response leaves the connection usable whatever it said: like a real client,
    // keep it (a connection that ignores a header rule keeps being counted as it goes on).
    if (status != 200) {
      record(w, "http-" + std::to_string(status), "version=" + (version.empty() ? "-" : version));
    } else if (!w.target->versions.empty() && w.target->versions.count(version) == 0) {
      record(w, "wrong-version", "got=" + (version.empty() ? "-" : version));
    } else {
      ++w.tally->ok;
      ++w.tally->okByVersion[version];
    }
    finish(w, !w.keepAlive || close || eof);
    return true;
  }

  /** A reset or early close: retried once if it hit a reused connection before any answer. */
  void brokenConnection(Worker& w, const std::string& cause, const std::string& detail) {
    if (w.keepAlive && w.reused && w.in.empty() && !w.retry) {
      ++w.tally->retried;
      closeFd(w);
      w.retry = true;
      w.sentBytes = 0;
      connect(w); // same request, same deadline
      return;
    }
    fail(w, cause, detail);
  }

  /** A failure that leaves no usable connection. */
  void fail(Worker& w, const std::string& cause, const std::string& detail) {
    record(w, cause, detail);
    finish(w, true);
  }

  void record(Worker& w, const std::string& cause, const std::string& detail) {
    ++w.tally->failures[cause];
    if (events_ != nullptr) {
      if (eventsWritten_ < opt_.maxEvents) {
        std::fprintf(events_, "%lld %s %s %s %s %llu %lld\n", static_cast<long long>(epochMs()),
                     w.target->name.c_str(), w.keepAlive ? "keepalive" : "close", cause.c_str(),
                     detail.empty() ? "-" : detail.c_str(),
                     static_cast<unsigned long long>(w.connId),
                     static_cast<long long>(w.connOpenMs));
        ++eventsWritten_;
      } else {
        ++eventsDropped_;
      }
    }
  }

  void finish(Worker& w, bool closeConnection) {
    if (closeConnection) {
      closeFd(w);
    } else {
      w.reused = true;
      watch(w, EPOLLIN); // notice the server closing it while idle
    }
    w.retry = false;
    w.state = State::kIdle;
    w.nextAt = Clock::now() + milliseconds(opt_.pauseMs);
  }

  void closeFd(Worker& w) {
    if (w.fd >= 0) {
      ::close(w.fd); // also leaves the epoll set
      w.fd = -1;
    }
  }

  uint64_t totalFailed() const {
    uint64_t n = 0;
    for (const auto& [key, t] : tallies_) {
      n += t.failed();
    }
    return n;
  }

  void progress(Clock::duration elapsed) {
    std::fprintf(stderr, "veer-soak-load: %5.0f s: %llu sent, %llu failed\n",
                 std::chrono::duration<double>(elapsed).count(),
                 static_cast<unsigned long long>(sent_),
                 static_cast<unsigned long long>(totalFailed()));
  }

  void report(Clock::duration elapsed) {
    std::printf("%-12s %-9s %9s %9s %7s %7s  %-26s %s\n", "target", "mode", "sent", "ok", "failed",
                "retried", "ok by version", "failures by cause");
    uint64_t ok = 0, retried = 0;
    std::map<std::string, uint64_t> causes;
    for (const Target& t : opt_.targets) {
      for (bool ka : {true, false}) {
        const Tally& tl = tallies_.at({t.name, ka});
        std::string versions, failures;
        for (const auto& [v, n] : tl.okByVersion) {
          versions += (versions.empty() ? "" : " ") + v + "=" + std::to_string(n);
        }
        for (const auto& [c, n] : tl.failures) {
          failures += (failures.empty() ? "" : " ") + c + "=" + std::to_string(n);
          causes[c] += n;
        }
        ok += tl.ok;
        retried += tl.retried;
        std::printf(
            "%-12s %-9s %9llu %9llu %7llu %7llu  %-26s %s\n", t.name.c_str(),
            ka ? "keepalive" : "close", static_cast<unsigned long long>(tl.sent),
            static_cast<unsigned long long>(tl.ok), static_cast<unsigned long long>(tl.failed()),
            static_cast<unsigned long long>(tl.retried), versions.empty() ? "-" : versions.c_str(),
            failures.empty() ? "-" : failures.c_str());
      }
    }
    std::string failures;
    for (const auto& [c, n] : causes) {
      failures += (failures.empty() ? "" : ",") + c + ":" + std::to_string(n);
    }
    std::printf(
        "VEER_SOAK_LOAD seconds=%.1f sent=%llu ok=%llu failed=%llu retried=%llu "
        "connections=%llu idle_closed=%llu events=%llu events_dropped=%llu failures=%s\n",
        std::chrono::duration<double>(elapsed).count(), static_cast<unsigned long long>(sent_),
        static_cast<unsigned long long>(ok), static_cast<unsigned long long>(totalFailed()),
        static_cast<unsigned long long>(retried), static_cast<unsigned long long>(connections_),
        static_cast<unsigned long long>(idleClosed_),
        static_cast<unsigned long long>(eventsWritten_),
        static_cast<unsigned long long>(eventsDropped_), failures.empty() ? "-" : failures.c_str());
    std::fflush(stdout);
  }

  Options opt_;
  std::map<std::pair<std::string, bool>, Tally> tallies_; // (target, keep-alive)
  std::vector<std::unique_ptr<Worker>> workers_;
  Clock::time_point end_;
  uint64_t sent_ = 0;
  uint64_t connections_ = 0;
  uint64_t idleClosed_ = 0;
  uint64_t eventsWritten_ = 0;
  uint64_t eventsDropped_ = 0;
  bool stopping_ = false;
  int epfd_ = -1;
  int sigfd_ = -1;
  FILE* events_ = nullptr;
};

int usage() {
  std::fprintf(stderr, "usage: veer-soak-load --target NAME,ADDR:PORT,VERSIONS[,HEADER=VALUE]... "
                       "--duration S\n"
                       "                      [--keepalive N] [--close M] [--max-requests C]\n"
                       "                      [--timeout-ms T] [--pause-ms P] [--events FILE]\n"
                       "                      [--max-events E] [--progress S]\n"
                       "  VERSIONS: the versions allowed to answer, \"v1+v2\", or \"*\" for any\n");
  return 2;
}

/** A non-negative integer option in [lo, hi], or nullopt. */
std::optional<long long> number(const char* text, long long lo, long long hi) {
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < lo || v > hi) {
    return std::nullopt;
  }
  return v;
}

int runMain(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) {
      return usage();
    }
    const char* v = argv[++i];
    std::optional<long long> n;
    if (a == "--target") {
      std::optional<Target> t = parseTarget(v);
      if (!t) {
        std::fprintf(stderr, "veer-soak-load: bad --target '%s'\n", v);
        return usage();
      }
      opt.targets.push_back(*t);
      continue;
    }
    if (a == "--events") {
      opt.eventsPath = v;
      continue;
    }
    if (a == "--duration") {
      char* end = nullptr;
      opt.duration = std::strtod(v, &end);
      if (end == v || *end != '\0' || !(opt.duration > 0) || opt.duration > 86400) {
        return usage();
      }
      continue;
    }
    if (a == "--keepalive" && (n = number(v, 0, 1000))) {
      opt.keepAlive = static_cast<int>(*n);
    } else if (a == "--close" && (n = number(v, 0, 1000))) {
      opt.close = static_cast<int>(*n);
    } else if (a == "--max-requests" && (n = number(v, 1, 1LL << 40))) {
      opt.maxRequests = static_cast<uint64_t>(*n);
    } else if (a == "--timeout-ms" && (n = number(v, 1, 600'000))) {
      opt.timeoutMs = static_cast<int>(*n);
    } else if (a == "--pause-ms" && (n = number(v, 0, 600'000))) {
      opt.pauseMs = static_cast<int>(*n);
    } else if (a == "--max-events" && (n = number(v, 0, 1LL << 32))) {
      opt.maxEvents = static_cast<uint64_t>(*n);
    } else if (a == "--progress" && (n = number(v, 0, 86400))) {
      opt.progressS = static_cast<int>(*n);
    } else {
      return usage();
    }
  }
  if (opt.targets.empty() || opt.duration <= 0 || opt.keepAlive + opt.close == 0) {
    return usage();
  }
  return Load(std::move(opt)).run();
}

} // namespace
} // namespace veer::test::soak

int main(int argc, char** argv) {
  return veer::test::soak::runMain(argc, argv);
}
