#include "agent/proxy_supervisor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/files.h"
#include "common/hash.h"

namespace veer {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr milliseconds kMaxBackoff{30000};

std::string pidPath(const std::string& runDir) {
  return runDir + "/veer-proxy.pid";
}

std::string listenArg(const IpAddr& addr, uint16_t port) {
  return addr.v4 ? addr.str() + ":" + std::to_string(port)
                 : "[" + addr.str() + "]:" + std::to_string(port);
}

/** The pid in a pid file if that process still runs veer-proxy, else -1. */
pid_t livePidFrom(const std::string& path) {
  Result<std::string> text = readFile(path);
  if (!text) {
    return -1;
  }
  char* end = nullptr;
  long pid = strtol(text->c_str(), &end, 10);
  if (pid <= 0 || kill(static_cast<pid_t>(pid), 0) != 0) {
    return -1;
  }
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec);
  if (ec || exe.filename().string().rfind("veer-proxy", 0) != 0) {
    return -1; // the pid was reused by something else
  }
  return static_cast<pid_t>(pid);
}

/** Waits for pid to exit (it is not our child: poll kill(0)). True if it did. */
bool waitGone(pid_t pid, milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while (kill(pid, 0) == 0 && Clock::now() < deadline) {
    // Not our child, so no waitpid: a pidfd would block, but the old proxy is
    // usually gone within a few ms of its drain.
    poll(nullptr, 0, 10);
  }
  return kill(pid, 0) != 0;
}

} // namespace

ProxySupervisor::ProxySupervisor(ProxyOptions options, Datapath& dp)
    : opt_(std::move(options)), dp_(dp), routesPath_(opt_.runDir + "/routes.json") {}

ProxySupervisor::~ProxySupervisor() {
  if (report_ >= 0) {
    close(report_);
  }
}

Status ProxySupervisor::init() {
  std::error_code ec;
  // routes.json names services, pod addresses and header values to match (secrets, some):
  // root's eyes only.
  if (Status s = ensurePrivateDir(opt_.runDir); !s) {
    return s;
  }
  fs::create_directories(opt_.cgroup, ec);
  if (ec) {
    return osError(ec.value(), "mkdir " + opt_.cgroup);
  }
  if (Status s = dp_.attachProxy(opt_.cgroup); !s) {
    return s;
  }
  adopted_ = livePidFrom(pidPath(opt_.runDir));
  if (adopted_ > 0) {
    spdlog::info("veer-proxy pid {} from a previous agent keeps serving until ours is ready",
                 adopted_);
  }
  // Listen addresses change only while the redirect is off (see veer_proxy):
  // keep an adopted proxy's redirect if it listens where we will.
  Result<veer_proxy> cur = dp_.maps().proxy();
  if (!cur) {
    return cur.error();
  }
  veer_proxy px{};
  for (const auto& [addr, port] : opt_.listen) {
    veer_backend& be = addr.v4 ? px.listen4 : px.listen6;
    std::memcpy(be.addr, addr.bytes.data(), sizeof(be.addr));
    be.port = htons(port);
    be.family = addr.v4 ? VEER_FAMILY_V4 : VEER_FAMILY_V6;
  }
  px.mark = opt_.mark;
  const bool same = std::memcmp(&px.listen4, &cur->listen4, sizeof(px.listen4)) == 0 &&
                    std::memcmp(&px.listen6, &cur->listen6, sizeof(px.listen6)) == 0 &&
                    px.mark == cur->mark;
  if (!same || adopted_ < 0) {
    if (cur->ready) {
      veer_proxy off = *cur;
      off.ready = 0;
      if (Status s = dp_.maps().setProxy(off); !s) {
        return s;
      }
    }
    // Not ours to vouch for: a listener left by an earlier agent's proxy may listen
    // elsewhere. Ours goes in once it has loaded the table.
    if (Status s = dp_.maps().clearProxyListeners(); !s) {
      return s;
    }
    return dp_.maps().setProxy(px);
  }
  return {};
}

Status ProxySupervisor::publishListeners() {
  if (listenersOf_ == pid_) {
    return {};
  }
  // pidfd_getfd (Linux >= 5.6) instead of the proxy writing the map itself: the
  // proxy needs no bpffs access and the agent stays the one writer of the maps.
  Fd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid_, 0)));
  if (!pidfd) {
    return osError(errno, "pidfd_open veer-proxy pid " + std::to_string(pid_));
  }
  bool found[VEER_PROXY_LISTENERS] = {};
  const std::string dir = "/proc/" + std::to_string(pid_) + "/fd";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string link = fs::read_symlink(e.path(), ec).string();
    if (ec || link.rfind("socket:", 0) != 0) {
      continue;
    }
    const long target = strtol(e.path().filename().c_str(), nullptr, 10);
    Fd sock(static_cast<int>(syscall(SYS_pidfd_getfd, pidfd.get(), target, 0)));
    if (!sock) {
      continue; // closed meanwhile: a client connection, not a listener
    }
    int listening = 0, proto = 0;
    socklen_t len = sizeof(int);
    sockaddr_storage local{};
    socklen_t llen = sizeof(local);
    if (getsockopt(sock.get(), SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening ||
        getsockopt(sock.get(), SOL_SOCKET, SO_PROTOCOL, &proto, &len) != 0 ||
        proto != IPPROTO_TCP ||
        getsockname(sock.get(), reinterpret_cast<sockaddr*>(&local), &llen) != 0) {
      continue;
    }
    IpAddr addr;
    uint16_t port = 0;
    if (local.ss_family == AF_INET) {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(&local);
      addr = IpAddr::fromV4(sin->sin_addr.s_addr);
      port = ntohs(sin->sin_port);
    } else {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&local);
      addr = IpAddr::fromBytes(&sin6->sin6_addr);
      port = ntohs(sin6->sin6_port);
    }
    const uint32_t slot = addr.v4 ? VEER_PROXY_LISTENER_V4 : VEER_PROXY_LISTENER_V6;
    if (found[slot] || std::find(opt_.listen.begin(), opt_.listen.end(),
                                 std::make_pair(addr, port)) == opt_.listen.end()) {
      continue;
    }
    // Any one of its listeners (one per thread, SO_REUSEPORT) will do: they close together.
    if (Status s = dp_.maps().setProxyListener(slot, sock.get()); !s) {
      return s;
    }
    found[slot] = true;
  }
  for (const auto& [addr, port] : opt_.listen) {
    if (!found[addr.v4 ? VEER_PROXY_LISTENER_V4 : VEER_PROXY_LISTENER_V6]) {
      return Error{ENOENT, "veer-proxy pid " + std::to_string(pid_) + " has no listener on " +
                               listenArg(addr, port)};
    }
  }
  listenersOf_ = pid_;
  return {};
}

void ProxySupervisor::recycleFallbacks() {
  if (opt_.recycler == nullptr) {
    return;
  }
  Result<LiveState> live = dp_.maps().live();
  if (!live) {
    spdlog::error("recycle kernel-path connections of L7 services: {}", live.error().message);
    return;
  }
  const RecycleTargets targets = proxyFallbackTargets(*live);
  if (targets.empty()) {
    return;
  }
  Result<RecycleCount> n = opt_.recycler->run(targets);
  if (!n) {
    spdlog::error("recycle kernel-path connections of L7 services: {}", n.error().message);
    return;
  }
  spdlog::info("veer-proxy serves again: destroyed {} connection(s) of {} L7 service(s) that "
               "took the kernel path meanwhile, across {} network namespace(s)",
               n->tcp, targets.size(), n->netns);
}

Status ProxySupervisor::setReady(bool ready, uint64_t digest) {
  Result<veer_proxy> px = dp_.maps().proxy();
  if (!px) {
    return px.error();
  }
  px->ready = ready ? 1 : 0;
  if (ready) {
    px->routes_digest = digest;
  }
  Status s = dp_.maps().setProxy(*px);
  ready_ = ready && s.ok();
  return s;
}

Status ProxySupervisor::publish(const std::string& json) {
  const uint64_t digest = fnv1a64(json.data(), json.size());
  if (ready_ && pid_ > 0 && digest == published_) {
    return {}; // it already serves exactly this table
  }
  if (Status s = writeFileAtomically(routesPath_, json, 0600); !s) {
    return s;
  }
  published_ = digest;
  if (pid_ < 0) {
    restartPending_ = false;
    if (Status s = start(); !s) {
      (void)setReady(false, 0);
      return s;
    }
  } else if (kill(pid_, SIGHUP) != 0) {
    return osError(errno, "signal veer-proxy");
  }
  Status loaded = waitLoaded(published_);
  if (loaded) {
    loaded = publishListeners();
  }
  if (!loaded) {
    (void)setReady(false, 0);
    return loaded;
  }
  const bool wasReady = ready_;
  if (Status s = setReady(true, published_); !s) {
    return s;
  }
  backoff_ = milliseconds(250);
  retireAdopted();
  if (!wasReady) {
    recycleFallbacks();
  }
  return {};
}

Status ProxySupervisor::start() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return osError(errno, "pipe");
  }
  const std::string procs = opt_.cgroup + "/cgroup.procs";
  int procsFd = open(procs.c_str(), O_WRONLY | O_CLOEXEC);
  int netnsFd = opt_.netns.empty() ? -1 : open(opt_.netns.c_str(), O_RDONLY | O_CLOEXEC);
  if (procsFd < 0 || (!opt_.netns.empty() && netnsFd < 0)) {
    int err = errno;
    close(fds[0]);
    close(fds[1]);
    if (procsFd >= 0) {
      close(procsFd);
    }
    return osError(err, "open " + (procsFd < 0 ? procs : opt_.netns));
  }
  std::vector<std::string> args = {opt_.binary,
                                   "--routes",
                                   routesPath_,
                                   "--ready-fd",
                                   "3",
                                   "--mark",
                                   std::to_string(opt_.mark),
                                   "--threads",
                                   std::to_string(opt_.threads),
                                   "--stats-socket",
                                   statsSocket()};
  if (opt_.socketAcceleration) {
    args.insert(args.end(), {"--no-defer-accept", "--io", "epoll"});
  }
  for (const auto& [addr, port] : opt_.listen) {
    args.push_back("--listen");
    args.push_back(listenArg(addr, port));
  }
  std::vector<char*> argv;
  for (std::string& a : args) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);

  pid_t pid = fork();
  if (pid < 0) {
    int err = errno;
    close(fds[0]);
    close(fds[1]);
    close(procsFd);
    if (netnsFd >= 0) {
      close(netnsFd);
    }
    return osError(err, "fork");
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls from here to exec.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr); // the agent blocks signals for its signalfd
    if (write(procsFd, "0", 1) != 1 || (netnsFd >= 0 && setns(netnsFd, CLONE_NEWNET) != 0) ||
        dup2(fds[1], 3) != 3) {
      _exit(127);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(fds[1]);
  close(procsFd);
  if (netnsFd >= 0) {
    close(netnsFd);
  }
  if (report_ >= 0) {
    close(report_);
  }
  report_ = fds[0];
  pending_.clear();
  pid_ = pid;
  if (Status s = writeFileAtomically(pidPath(opt_.runDir), std::to_string(pid) + "\n", 0644); !s) {
    spdlog::warn("{}", s.error().message);
  }
  spdlog::info("started veer-proxy pid {} in {}{}", pid, opt_.cgroup,
               opt_.netns.empty() ? "" : " (netns " + opt_.netns + ")");
  return {};
}

Status ProxySupervisor::waitLoaded(uint64_t digest) {
  const auto deadline = Clock::now() + opt_.loadTimeout;
  while (report_ >= 0) {
    // Consume complete lines already buffered.
    for (size_t nl; (nl = pending_.find('\n')) != std::string::npos;) {
      std::string line = pending_.substr(0, nl);
      pending_.erase(0, nl + 1);
      if (line.rfind("loaded ", 0) == 0) {
        if (strtoull(line.c_str() + 7, nullptr, 16) == digest) {
          return {};
        }
        continue; // an earlier table, or a reload of its own
      }
      if (line.rfind("error ", 0) == 0) {
        return Error{EINVAL, "veer-proxy rejected the route table: " + line.substr(6)};
      }
      spdlog::warn("veer-proxy: unexpected report '{}'", line);
    }
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      return Error{ETIMEDOUT, "veer-proxy did not report loading the route table within " +
                                  std::to_string(opt_.loadTimeout.count()) + " ms"};
    }
    pollfd p{report_, POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno != EINTR) {
      return osError(errno, "poll veer-proxy reports");
    }
    if (n > 0) {
      char buf[4096];
      ssize_t r = read(report_, buf, sizeof(buf));
      if (r > 0) {
        pending_.append(buf, static_cast<size_t>(r));
      } else if (r == 0) {
        return Error{EPIPE, "veer-proxy exited before loading the route table"};
      }
    }
  }
  return Error{ESRCH, "veer-proxy is not running"};
}

void ProxySupervisor::onReport() {
  char buf[4096];
  ssize_t r = read(report_, buf, sizeof(buf));
  if (r <= 0) {
    // EOF: the proxy is exiting; onChildExit() handles the rest.
    close(report_);
    report_ = -1;
    return;
  }
  pending_.append(buf, static_cast<size_t>(r));
  for (size_t nl; (nl = pending_.find('\n')) != std::string::npos;) {
    std::string line = pending_.substr(0, nl);
    pending_.erase(0, nl + 1);
    // A reload the proxy did by itself (it also watches the file): the digest
    // must still be the one published, else stop redirecting to it.
    if (line.rfind("loaded ", 0) == 0 && strtoull(line.c_str() + 7, nullptr, 16) == published_) {
      continue;
    }
    spdlog::warn("veer-proxy: '{}'; L7 services take the kernel path until it loads the table",
                 line);
    (void)setReady(false, 0);
  }
}

void ProxySupervisor::onChildExit() {
  int status = 0;
  for (pid_t pid; (pid = waitpid(-1, &status, WNOHANG)) > 0;) {
    if (pid != pid_) {
      continue;
    }
    (void)setReady(false, 0);
    spdlog::error(
        "veer-proxy pid {} exited ({}); L7 services take the kernel path; restart in {} ms", pid,
        WIFSIGNALED(status) ? "signal " + std::to_string(WTERMSIG(status))
                            : "status " + std::to_string(WEXITSTATUS(status)),
        backoff_.count());
    pid_ = -1;
    if (report_ >= 0) {
      close(report_);
      report_ = -1;
    }
    restartPending_ = true;
    restartAt_ = Clock::now() + backoff_;
    backoff_ = std::min(backoff_ * 2, kMaxBackoff);
  }
}

int ProxySupervisor::restartDueMs() const {
  if (!restartPending_) {
    return -1;
  }
  auto left = std::chrono::duration_cast<milliseconds>(restartAt_ - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

void ProxySupervisor::maybeRestart() {
  if (!restartPending_ || Clock::now() < restartAt_) {
    return;
  }
  restartPending_ = false;
  Result<std::string> json = readFile(routesPath_);
  if (!json) {
    spdlog::error("restart veer-proxy: {}", json.error().message);
    return;
  }
  if (Status s = publish(*json); !s) {
    spdlog::error("restart veer-proxy: {}", s.error().message);
  }
}

void ProxySupervisor::retireAdopted() {
  if (adopted_ <= 0 || adopted_ == pid_) {
    return;
  }
  spdlog::info("retiring veer-proxy pid {} of a previous agent (it drains)", adopted_);
  kill(adopted_, SIGTERM);
  adopted_ = -1;
}

Status ProxySupervisor::stopRunning(const std::string& runDir, milliseconds drain) {
  // The route table outlives no install; the proxy has it loaded already.
  unlink((runDir + "/routes.json").c_str());
  pid_t pid = livePidFrom(pidPath(runDir));
  if (pid < 0) {
    return {};
  }
  if (kill(pid, SIGTERM) != 0 && errno != ESRCH) {
    return osError(errno, "signal veer-proxy pid " + std::to_string(pid));
  }
  if (!waitGone(pid, drain)) {
    kill(pid, SIGKILL);
  }
  unlink(pidPath(runDir).c_str());
  return {};
}

} // namespace veer
