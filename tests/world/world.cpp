#include "world.h"

#include "common/files.h"
#include "netlink.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

namespace veer::test {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kFallbackCgroup2 = "/run/veer/cgroup2";
constexpr const char* kBridge = "br0";

std::atomic<int> gWorldCounter{0};

int remainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

std::string joinArgs(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) {
    if (!s.empty()) {
      s += ' ';
    }
    s += a;
  }
  return s;
}

Status writeFile(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    return osError(errno, "open " + path);
  }
  ssize_t n = ::write(fd, data.data(), data.size());
  int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(data.size())) {
    return osError(n < 0 ? err : EIO, "write '" + data + "' to " + path);
  }
  return {};
}

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

bool validName(const std::string& name) {
  if (name.empty() || name.size() > 40) {
    return false;
  }
  for (char c : name) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) {
      return false;
    }
  }
  return true;
}

/** What a forked child does before exec/work: enter a netns, join a cgroup. */
struct ChildSetup {
  int netnsFd = -1;
  int cgroupProcsFd = -1;
  int stdinFd = -1;
  int stdoutFd = -1;
  int stderrFd = -1;
};

void closeSetup(ChildSetup& s) {
  for (int* fd : {&s.netnsFd, &s.cgroupProcsFd}) {
    if (*fd >= 0) {
      ::close(*fd);
      *fd = -1;
    }
  }
}

/** Opens the netns and cgroup.procs files the child will use (in the parent, before fork). */
Result<ChildSetup> prepareSetup(const std::string& netns, const std::string& cgroup) {
  ChildSetup s;
  if (!netns.empty()) {
    std::string path = std::string(kNetnsDir) + "/" + netns;
    s.netnsFd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (s.netnsFd < 0) {
      return osError(errno, "open netns " + path);
    }
  }
  if (!cgroup.empty()) {
    std::string path = cgroup + "/cgroup.procs";
    s.cgroupProcsFd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (s.cgroupProcsFd < 0) {
      int err = errno;
      closeSetup(s);
      return osError(err, "open " + path);
    }
  }
  return s;
}

/** In the child: only async-signal-safe calls. Returns 0 or the failing stage (1 netns, 2 cgroup).
 */
int applySetupInChild(const ChildSetup& s) {
  if (s.netnsFd >= 0 && ::setns(s.netnsFd, CLONE_NEWNET) != 0) {
    return 1;
  }
  if (s.cgroupProcsFd >= 0 && ::write(s.cgroupProcsFd, "0", 1) != 1) {
    return 2;
  }
  return 0;
}

const char* stageName(int stage) {
  switch (stage) {
  case 1:
    return "setns";
  case 2:
    return "join cgroup";
  case 3:
    return "dup2";
  default:
    return "exec";
  }
}

std::vector<char*> cArgv(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  out.reserve(argv.size() + 1);
  for (const auto& a : argv) {
    out.push_back(const_cast<char*>(a.c_str()));
  }
  out.push_back(nullptr);
  return out;
}

/**
 * Forks and execs argv with the setup applied. An O_CLOEXEC error pipe reports a
 * failure before exec (stage, errno) to the parent.
 */
Result<pid_t> forkExec(const std::vector<std::string>& argv, const ChildSetup& setup) {
  if (argv.empty()) {
    return Error{EINVAL, "forkExec: empty argv"};
  }
  int errPipe[2];
  if (::pipe2(errPipe, O_CLOEXEC) != 0) {
    return osError(errno, "pipe2");
  }
  auto args = cArgv(argv);
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(errPipe[0]);
    ::close(errPipe[1]);
    return osError(err, "fork for " + argv[0]);
  }
  if (pid == 0) {
    ::close(errPipe[0]);
    int report[2] = {0, 0};
    int stage = applySetupInChild(setup);
    if (stage == 0) {
      const int fds[3] = {setup.stdinFd, setup.stdoutFd, setup.stderrFd};
      for (int i = 0; i < 3 && stage == 0; ++i) {
        if (fds[i] >= 0 && ::dup2(fds[i], i) < 0) {
          stage = 3;
        }
      }
    }
    if (stage == 0) {
      // The parent may block or ignore signals (veer-world waits in sigwait); exec'd
      // programs start with the defaults.
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::signal(SIGPIPE, SIG_DFL);
      ::execvp(args[0], args.data());
      stage = 4;
    }
    report[0] = stage;
    report[1] = errno;
    ssize_t ignored = ::write(errPipe[1], report, sizeof(report));
    (void)ignored;
    ::_exit(127);
  }
  ::close(errPipe[1]);
  int report[2] = {0, 0};
  ssize_t n;
  do {
    n = ::read(errPipe[0], report, sizeof(report));
  } while (n < 0 && errno == EINTR);
  ::close(errPipe[0]);
  if (n == sizeof(report)) {
    int status;
    ::waitpid(pid, &status, 0);
    return osError(report[1], std::string(stageName(report[0])) + " for '" + joinArgs(argv) + "'");
  }
  return pid;
}

/** Waits for pid with a deadline; SIGKILLs it when the deadline passes. */
Result<int> waitWithDeadline(pid_t pid, Clock::time_point deadline, bool* timedOut) {
  int backoffMs = 1;
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      return decodeStatus(status);
    }
    if (r < 0 && errno != EINTR) {
      return osError(errno, "waitpid " + std::to_string(pid));
    }
    if (Clock::now() >= deadline) {
      if (timedOut != nullptr) {
        *timedOut = true;
      }
      ::kill(pid, SIGKILL);
      if (::waitpid(pid, &status, 0) == pid) {
        return decodeStatus(status);
      }
      return osError(errno, "waitpid after kill " + std::to_string(pid));
    }
    std::this_thread::sleep_for(milliseconds(backoffMs));
    backoffMs = std::min(backoffMs * 2, 20);
  }
}

/** Reads fds until all hit EOF or the deadline passes. Returns false on timeout. */
bool drainFds(std::vector<std::pair<int, std::string*>> fds, Clock::time_point deadline) {
  char buf[16384];
  while (!fds.empty()) {
    std::vector<pollfd> pfds;
    for (auto& [fd, out] : fds) {
      pfds.push_back(pollfd{fd, POLLIN, 0});
    }
    int left = remainingMs(deadline);
    if (left == 0) {
      return false;
    }
    int r = ::poll(pfds.data(), pfds.size(), left);
    if (r < 0 && errno == EINTR) {
      continue;
    }
    if (r <= 0) {
      return r < 0 ? false : Clock::now() < deadline;
    }
    for (size_t i = pfds.size(); i-- > 0;) {
      if (pfds[i].revents == 0) {
        continue;
      }
      ssize_t n = ::read(pfds[i].fd, buf, sizeof(buf));
      if (n > 0) {
        fds[i].second->append(buf, n);
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        fds.erase(fds.begin() + i);
      }
    }
  }
  return true;
}

/** Runs argv to completion capturing stdout and stderr. */
Result<CommandResult> runCapture(const std::vector<std::string>& argv, ChildSetup setup,
                                 milliseconds timeout) {
  int outPipe[2], errPipe[2];
  if (::pipe2(outPipe, O_CLOEXEC) != 0) {
    return osError(errno, "pipe2");
  }
  if (::pipe2(errPipe, O_CLOEXEC) != 0) {
    int err = errno;
    ::close(outPipe[0]);
    ::close(outPipe[1]);
    return osError(err, "pipe2");
  }
  int devNull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  setup.stdinFd = devNull;
  setup.stdoutFd = outPipe[1];
  setup.stderrFd = errPipe[1];
  auto pid = forkExec(argv, setup);
  ::close(outPipe[1]);
  ::close(errPipe[1]);
  if (devNull >= 0) {
    ::close(devNull);
  }
  if (!pid.ok()) {
    ::close(outPipe[0]);
    ::close(errPipe[0]);
    return pid.error();
  }
  auto deadline = Clock::now() + timeout;
  CommandResult result;
  bool complete = drainFds({{outPipe[0], &result.out}, {errPipe[0], &result.err}}, deadline);
  ::close(outPipe[0]);
  ::close(errPipe[0]);
  bool timedOut = !complete;
  auto code =
      waitWithDeadline(*pid, complete ? deadline + milliseconds(2000) : Clock::now(), &timedOut);
  if (!code.ok()) {
    return code.error();
  }
  if (timedOut) {
    return Error{ETIMEDOUT, "'" + joinArgs(argv) + "' timed out after " +
                                std::to_string(timeout.count()) + " ms; stderr: " + result.err};
  }
  result.exitCode = *code;
  return result;
}

/**
 * Link-local addresses would stay tentative (DAD) for about a second after a link
 * comes up, and until then neighbor discovery through the node loses the first
 * packets of a connection. Set in every netns before its links exist.
 */
const std::vector<std::string> kNoDad{"net.ipv6.conf.all.accept_dad=0",
                                      "net.ipv6.conf.default.accept_dad=0"};

std::vector<pid_t> readPids(const std::string& file) {
  std::vector<pid_t> pids;
  auto text = readFile(file);
  if (!text.ok()) {
    return pids;
  }
  std::istringstream in(*text);
  long pid;
  while (in >> pid) {
    pids.push_back(static_cast<pid_t>(pid));
  }
  return pids;
}

/** Kills everything in a cgroup subtree and removes it, children first. */
Status removeCgroupTree(const std::string& path) {
  if (!exists(path)) {
    return {};
  }
  Status firstError;
  if (DIR* dir = ::opendir(path.c_str())) {
    std::vector<std::string> children;
    while (dirent* e = ::readdir(dir)) {
      if (e->d_type == DT_DIR && std::strcmp(e->d_name, ".") != 0 &&
          std::strcmp(e->d_name, "..") != 0) {
        children.push_back(path + "/" + e->d_name);
      }
    }
    ::closedir(dir);
    for (const auto& child : children) {
      auto s = removeCgroupTree(child);
      if (!s.ok() && firstError.ok()) {
        firstError = s;
      }
    }
  }
  std::string killFile = path + "/cgroup.kill";
  auto deadline = Clock::now() + milliseconds(5000);
  int backoffMs = 1;
  for (;;) {
    auto pids = readPids(path + "/cgroup.procs");
    if (pids.empty()) {
      break;
    }
    if (exists(killFile)) {
      (void)writeFile(killFile, "1");
    } else {
      for (pid_t pid : pids) {
        ::kill(pid, SIGKILL);
      }
    }
    if (Clock::now() >= deadline) {
      return Error{EBUSY, "cgroup " + path + " still has processes after SIGKILL"};
    }
    std::this_thread::sleep_for(milliseconds(backoffMs));
    backoffMs = std::min(backoffMs * 2, 50);
  }
  // The kernel may report EBUSY briefly while exiting tasks leave the cgroup.
  for (;;) {
    if (::rmdir(path.c_str()) == 0 || errno == ENOENT) {
      break;
    }
    if (errno != EBUSY || Clock::now() >= deadline) {
      return osError(errno, "rmdir " + path);
    }
    std::this_thread::sleep_for(milliseconds(backoffMs));
    backoffMs = std::min(backoffMs * 2, 50);
  }
  return firstError;
}

// --- addresses -----------------------------------------------------------------

struct SockAddr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_UNSPEC;
};

std::optional<SockAddr> makeSockAddr(const std::string& addr, uint16_t port) {
  SockAddr sa;
  auto* in4 = reinterpret_cast<sockaddr_in*>(&sa.ss);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&sa.ss);
  if (::inet_pton(AF_INET, addr.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(port);
    sa.len = sizeof(sockaddr_in);
    sa.family = AF_INET;
    return sa;
  }
  if (::inet_pton(AF_INET6, addr.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    sa.len = sizeof(sockaddr_in6);
    sa.family = AF_INET6;
    return sa;
  }
  return std::nullopt;
}

std::pair<std::string, uint16_t> fromSockAddr(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (ss.ss_family == AF_INET) {
    const auto* in4 = reinterpret_cast<const sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &in4->sin_addr, buf, sizeof(buf));
    return {buf, ntohs(in4->sin_port)};
  }
  if (ss.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof(buf));
    return {buf, ntohs(in6->sin6_port)};
  }
  return {"", 0};
}

/** "10.244.1.7" -> {"10.244.1.0/24", "10.244.1.1"} (".254" if the pod itself is .1). */
std::optional<std::pair<std::string, std::string>> gatewayV4(const std::string& addr) {
  in_addr a;
  if (::inet_pton(AF_INET, addr.c_str(), &a) != 1) {
    return std::nullopt;
  }
  uint32_t host = ntohl(a.s_addr);
  uint32_t net = host & 0xffffff00u;
  uint32_t gw = net | ((host & 0xff) == 1 ? 254 : 1);
  char netBuf[INET_ADDRSTRLEN], gwBuf[INET_ADDRSTRLEN];
  in_addr n{htonl(net)}, g{htonl(gw)};
  ::inet_ntop(AF_INET, &n, netBuf, sizeof(netBuf));
  ::inet_ntop(AF_INET, &g, gwBuf, sizeof(gwBuf));
  return std::make_pair(std::string(netBuf) + "/24", std::string(gwBuf));
}

/** "fd00:244:1::7" -> {"fd00:244:1::/64", "fd00:244:1::1"} ("::fffe" if the pod is ::1). */
std::optional<std::pair<std::string, std::string>> gatewayV6(const std::string& addr) {
  in6_addr a;
  if (::inet_pton(AF_INET6, addr.c_str(), &a) != 1) {
    return std::nullopt;
  }
  in6_addr net = a;
  std::memset(&net.s6_addr[8], 0, 8);
  in6_addr gw = net;
  bool podIsOne = std::memcmp(&a, &gw, 15) == 0 && a.s6_addr[15] == 1;
  gw.s6_addr[14] = podIsOne ? 0xff : 0;
  gw.s6_addr[15] = podIsOne ? 0xfe : 1;
  char netBuf[INET6_ADDRSTRLEN], gwBuf[INET6_ADDRSTRLEN];
  ::inet_ntop(AF_INET6, &net, netBuf, sizeof(netBuf));
  ::inet_ntop(AF_INET6, &gw, gwBuf, sizeof(gwBuf));
  return std::make_pair(std::string(netBuf) + "/64", std::string(gwBuf));
}

// --- in-pod socket work (runs in the forked child) ---------------------------------

void putU32(std::string& out, uint32_t v) {
  out.append(reinterpret_cast<const char*>(&v), 4);
}
void putStr(std::string& out, const std::string& s) {
  putU32(out, static_cast<uint32_t>(s.size()));
  out += s;
}

struct Reader {
  const std::string& data;
  size_t pos = 0;
  bool failed = false;
  uint32_t u32() {
    if (pos + 4 > data.size()) {
      failed = true;
      return 0;
    }
    uint32_t v;
    std::memcpy(&v, data.data() + pos, 4);
    pos += 4;
    return v;
  }
  std::string str() {
    uint32_t n = u32();
    if (failed || pos + n > data.size()) {
      failed = true;
      return {};
    }
    std::string s = data.substr(pos, n);
    pos += n;
    return s;
  }
};

void encodeHttp(std::string& out, const HttpResult& r) {
  putU32(out, r.ok ? 1 : 0);
  putU32(out, static_cast<uint32_t>(r.err));
  putStr(out, r.step);
  putU32(out, static_cast<uint32_t>(r.status));
  putStr(out, r.headers);
  putStr(out, r.body);
  putStr(out, r.peerAddr);
  putU32(out, r.peerPort);
  putStr(out, r.localAddr);
}

HttpResult decodeHttp(Reader& in) {
  HttpResult r;
  r.ok = in.u32() != 0;
  r.err = static_cast<int>(in.u32());
  r.step = in.str();
  r.status = static_cast<int>(in.u32());
  r.headers = in.str();
  r.body = in.str();
  r.peerAddr = in.str();
  r.peerPort = static_cast<uint16_t>(in.u32());
  r.localAddr = in.str();
  return r;
}

void encodeUdp(std::string& out, const UdpResult& r) {
  putU32(out, r.ok ? 1 : 0);
  putU32(out, static_cast<uint32_t>(r.err));
  putStr(out, r.body);
  putStr(out, r.fromAddr);
  putU32(out, r.fromPort);
}

UdpResult decodeUdp(Reader& in) {
  UdpResult r;
  r.ok = in.u32() != 0;
  r.err = static_cast<int>(in.u32());
  r.body = in.str();
  r.fromAddr = in.str();
  r.fromPort = static_cast<uint16_t>(in.u32());
  return r;
}

/** Waits for events on fd; returns 0, or ETIMEDOUT / errno. */
int waitFd(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int left = remainingMs(deadline);
    if (left == 0) {
      return ETIMEDOUT;
    }
    int r = ::poll(&p, 1, left);
    if (r > 0) {
      return 0;
    }
    if (r == 0) {
      return ETIMEDOUT;
    }
    if (errno != EINTR) {
      return errno;
    }
  }
}

/** Non-blocking connect bounded by the deadline. Returns 0 or errno. */
int connectWithDeadline(int fd, const SockAddr& sa, Clock::time_point deadline) {
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&sa.ss), sa.len) == 0) {
    return 0;
  }
  if (errno != EINPROGRESS) {
    return errno;
  }
  int w = waitFd(fd, POLLOUT, deadline);
  if (w != 0) {
    return w;
  }
  int soErr = 0;
  socklen_t len = sizeof(soErr);
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soErr, &len) != 0) {
    return errno;
  }
  return soErr;
}

size_t contentLength(const std::string& head) {
  std::string lower = head;
  for (auto& c : lower) {
    c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  }
  auto pos = lower.find("\r\ncontent-length:");
  if (pos == std::string::npos) {
    return std::string::npos;
  }
  return std::strtoul(lower.c_str() + pos + 17, nullptr, 10);
}

HttpResult doHttpGet(const SockAddr& sa, const std::string& host, const std::string& path,
                     milliseconds timeout) {
  HttpResult r;
  auto deadline = Clock::now() + timeout;
  auto fail = [&r](const char* step, int err) {
    r.ok = false;
    r.step = step;
    r.err = err;
    return r;
  };
  int fd = ::socket(sa.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return fail("socket", errno);
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  int err = connectWithDeadline(fd, sa, deadline);
  if (err != 0) {
    return fail("connect", err);
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    std::tie(r.peerAddr, r.peerPort) = fromSockAddr(ss);
  }
  len = sizeof(ss);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    r.localAddr = fromSockAddr(ss).first;
  }
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: " + host +
                    "\r\nUser-Agent: veer-world\r\nConnection: close\r\n\r\n";
  size_t sent = 0;
  while (sent < req.size()) {
    ssize_t n = ::send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += n;
      continue;
    }
    if (n < 0 && errno == EAGAIN) {
      int w = waitFd(fd, POLLOUT, deadline);
      if (w != 0) {
        return fail("send", w);
      }
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    return fail("send", errno);
  }
  std::string resp;
  size_t headEnd = std::string::npos;
  size_t want = std::string::npos;
  char buf[8192];
  for (;;) {
    if (headEnd != std::string::npos && want != std::string::npos &&
        resp.size() >= headEnd + 4 + want) {
      break;
    }
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      resp.append(buf, n);
      if (headEnd == std::string::npos) {
        headEnd = resp.find("\r\n\r\n");
        if (headEnd != std::string::npos) {
          want = contentLength(resp.substr(0, headEnd + 2));
        }
      }
      continue;
    }
    if (n == 0) {
      break;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN) {
      int w = waitFd(fd, POLLIN, deadline);
      if (w != 0) {
        return fail("recv", w);
      }
      continue;
    }
    return fail("recv", errno);
  }
  if (headEnd == std::string::npos || resp.compare(0, 5, "HTTP/") != 0) {
    r.body = resp;
    return fail("parse", EPROTO);
  }
  r.headers = resp.substr(0, headEnd);
  r.body = resp.substr(headEnd + 4);
  if (want != std::string::npos && r.body.size() > want) {
    r.body.resize(want);
  }
  auto sp = r.headers.find(' ');
  r.status = sp == std::string::npos ? 0 : std::atoi(r.headers.c_str() + sp + 1);
  r.ok = true;
  return r;
}

UdpResult doUdpQuery(const SockAddr& sa, const std::string& payload, milliseconds timeout) {
  UdpResult r;
  auto deadline = Clock::now() + timeout;
  int fd = ::socket(sa.family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    r.err = errno;
    return r;
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (::sendto(fd, payload.data(), payload.size(), 0, reinterpret_cast<const sockaddr*>(&sa.ss),
               sa.len) < 0) {
    r.err = errno;
    return r;
  }
  char buf[2048];
  for (;;) {
    sockaddr_storage from{};
    socklen_t len = sizeof(from);
    ssize_t n = ::recvfrom(fd, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &len);
    if (n >= 0) {
      r.ok = true;
      r.body.assign(buf, n);
      std::tie(r.fromAddr, r.fromPort) = fromSockAddr(from);
      return r;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno != EAGAIN) {
      r.err = errno;
      return r;
    }
    int w = waitFd(fd, POLLIN, deadline);
    if (w != 0) {
      r.err = w;
      return r;
    }
  }
}

std::string hostHeader(const std::string& addr, uint16_t port) {
  bool v6 = addr.find(':') != std::string::npos;
  return (v6 ? "[" + addr + "]" : addr) + ":" + std::to_string(port);
}

} // namespace

// --- Process -----------------------------------------------------------------------

Process::Process(Process&& other) noexcept
    : pid_(other.pid_), stdoutFd_(other.stdoutFd_), reaped_(other.reaped_),
      exitCode_(other.exitCode_) {
  other.pid_ = -1;
  other.stdoutFd_ = -1;
}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    reset();
    pid_ = other.pid_;
    stdoutFd_ = other.stdoutFd_;
    reaped_ = other.reaped_;
    exitCode_ = other.exitCode_;
    other.pid_ = -1;
    other.stdoutFd_ = -1;
  }
  return *this;
}

Process::~Process() {
  reset();
}

void Process::reset() {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    int status;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (stdoutFd_ >= 0) {
    ::close(stdoutFd_);
  }
  pid_ = -1;
  stdoutFd_ = -1;
  reaped_ = false;
}

Status Process::kill(int sig) {
  if (!running()) {
    return Error{ESRCH, "kill: process not running"};
  }
  if (::kill(pid_, sig) != 0) {
    return osError(errno, "kill " + std::to_string(pid_));
  }
  return {};
}

Result<int> Process::wait(milliseconds timeout) {
  if (pid_ <= 0) {
    return Error{ECHILD, "wait: no process"};
  }
  if (reaped_) {
    return exitCode_;
  }
  auto deadline = Clock::now() + timeout;
  int backoffMs = 1;
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      exitCode_ = decodeStatus(status);
      return exitCode_;
    }
    if (r < 0 && errno != EINTR) {
      return osError(errno, "waitpid " + std::to_string(pid_));
    }
    if (Clock::now() >= deadline) {
      return Error{ETIMEDOUT, "process " + std::to_string(pid_) + " still running after " +
                                  std::to_string(timeout.count()) + " ms"};
    }
    std::this_thread::sleep_for(milliseconds(backoffMs));
    backoffMs = std::min(backoffMs * 2, 20);
  }
}

Result<std::string> Process::readStdout(milliseconds timeout) {
  if (stdoutFd_ < 0) {
    return Error{EBADF, "readStdout: stdout not captured"};
  }
  std::string out;
  if (!drainFds({{stdoutFd_, &out}}, Clock::now() + timeout)) {
    return Error{ETIMEDOUT, "readStdout: no EOF within " + std::to_string(timeout.count()) +
                                " ms; got: " + out};
  }
  return out;
}

// --- World -------------------------------------------------------------------------

Result<std::string> World::cgroup2Mount() {
  auto mounts = readFile("/proc/mounts");
  if (!mounts.ok()) {
    return mounts.error();
  }
  std::istringstream in(*mounts);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string dev, dir, type;
    fields >> dev >> dir >> type;
    if (type == "cgroup2") {
      return dir;
    }
  }
  if (::mkdir("/run/veer", 0755) != 0 && errno != EEXIST) {
    return osError(errno, "mkdir /run/veer");
  }
  if (::mkdir(kFallbackCgroup2, 0755) != 0 && errno != EEXIST) {
    return osError(errno, std::string("mkdir ") + kFallbackCgroup2);
  }
  if (::mount("cgroup2", kFallbackCgroup2, "cgroup2", 0, nullptr) != 0) {
    return osError(errno, std::string("mount cgroup2 at ") + kFallbackCgroup2);
  }
  return std::string(kFallbackCgroup2);
}

std::string World::testServerPath() {
  if (const char* env = std::getenv("VEER_TESTSRV"); env != nullptr && *env != '\0') {
    return env;
  }
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) {
    return "veer-testsrv";
  }
  std::string self(buf, n);
  auto slash = self.rfind('/');
  return self.substr(0, slash + 1) + "veer-testsrv";
}

Status World::cleanupStale(const std::string& prefix) {
  if (prefix.empty()) {
    return Error{EINVAL, "cleanupStale: empty prefix would match everything"};
  }
  Status firstError;
  auto note = [&firstError](Status s) {
    if (!s.ok() && firstError.ok()) {
      firstError = s;
    }
  };
  auto cg = cgroup2Mount();
  if (cg.ok()) {
    if (DIR* dir = ::opendir(cg->c_str())) {
      std::vector<std::string> victims;
      while (dirent* e = ::readdir(dir)) {
        if (e->d_type == DT_DIR && std::strncmp(e->d_name, prefix.c_str(), prefix.size()) == 0) {
          victims.push_back(*cg + "/" + e->d_name);
        }
      }
      ::closedir(dir);
      for (const auto& v : victims) {
        note(removeCgroupTree(v));
      }
    }
  } else {
    note(cg.error());
  }
  if (DIR* dir = ::opendir(kNetnsDir)) {
    std::vector<std::string> victims;
    while (dirent* e = ::readdir(dir)) {
      if (std::strncmp(e->d_name, prefix.c_str(), prefix.size()) == 0) {
        victims.push_back(e->d_name);
      }
    }
    ::closedir(dir);
    // Pods before the node: deleting a pod netns removes its veth from the bridge.
    std::sort(victims.begin(), victims.end(), [&prefix](const auto& a, const auto& b) {
      bool an = a == prefix + "node", bn = b == prefix + "node";
      return an != bn ? bn : a < b;
    });
    for (const auto& v : victims) {
      note(deleteNetns(v));
    }
  }
  return firstError;
}

Result<std::unique_ptr<World>> World::create(const WorldOptions& options) {
  std::unique_ptr<World> world(new World());
  world->prefix_ = options.prefix.empty() ? "vw" + std::to_string(::getpid()) + "-" +
                                                std::to_string(gWorldCounter.fetch_add(1)) + "-"
                                          : options.prefix;
  auto s = world->build();
  if (!s.ok()) {
    // The destructor removes whatever build() made.
    return Error{s.error().code, "create world " + world->prefix_ + ": " + s.error().message};
  }
  return world;
}

Status World::build() {
  if (prefix_.size() > 24) {
    return Error{EINVAL, "prefix '" + prefix_ + "' too long (max 24)"};
  }
  auto cg = cgroup2Mount();
  if (!cg.ok()) {
    return cg.error();
  }
  cgroup2_ = *cg;
  cgroupRoot_ = cgroup2_ + "/" + prefix_ + "world";
  if (::mkdir(cgroupRoot_.c_str(), 0755) != 0) {
    return osError(errno, "mkdir " + cgroupRoot_);
  }
  cgroupsCreated_.push_back(cgroupRoot_);

  nodeNetns_ = prefix_ + "node";
  if (auto s = createNetns(nodeNetns_); !s.ok()) {
    return s;
  }
  netnsCreated_.push_back(nodeNetns_);
  // Forwarding lets pods in different /24s (or /64s) reach each other via the node.
  std::vector<std::string> sysctls = kNoDad;
  sysctls.insert(sysctls.end(), {"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"});
  if (auto s = sysctlIn(nodeNetns_, sysctls); !s.ok()) {
    return s;
  }
  auto rtnl = Rtnl::open(nodeNetns_);
  if (!rtnl.ok()) {
    return rtnl.error();
  }
  node_ = std::make_unique<Rtnl>(std::move(*rtnl));
  if (auto s = blackholeServiceRanges(*node_); !s.ok()) {
    return s;
  }
  if (auto s = node_->up("lo"); !s.ok()) {
    return s;
  }
  return node_->addBridge(kBridge);
}

World::~World() {
  teardown();
}

Status World::blackholeServiceRanges(Rtnl& rtnl) {
  for (const char* range : kServiceRanges) {
    if (auto s = rtnl.addBlackhole(range); !s.ok()) {
      return s;
    }
  }
  return {};
}

void World::teardown() {
  // Cgroups first: kills every process the world started (spawned or forked helpers).
  for (auto it = cgroupsCreated_.rbegin(); it != cgroupsCreated_.rend(); ++it) {
    auto s = removeCgroupTree(*it);
    if (!s.ok()) {
      std::fprintf(stderr, "veer world teardown: %s\n", s.error().message.c_str());
    }
  }
  cgroupsCreated_.clear();
  node_.reset(); // its socket would keep the node's netns alive
  for (auto it = netnsCreated_.rbegin(); it != netnsCreated_.rend(); ++it) {
    auto s = deleteNetns(*it);
    if (!s.ok()) {
      std::fprintf(stderr, "veer world teardown: %s\n", s.error().message.c_str());
    }
  }
  netnsCreated_.clear();
}

Status World::ensureGateway(const std::string& cidr, const std::string& gateway) {
  for (const auto& g : gateways_) {
    if (g == cidr) {
      return {};
    }
  }
  if (auto s = node_->addAddress(kBridge, gateway + cidr.substr(cidr.find('/'))); !s.ok()) {
    return s;
  }
  gateways_.push_back(cidr);
  return {};
}

Status World::addPod(const PodSpec& spec) {
  if (!validName(spec.name)) {
    return Error{EINVAL, "addPod: invalid pod name '" + spec.name + "'"};
  }
  if (spec.name == "node" || spec.name == "world" || pods_.count(spec.name) != 0) {
    return Error{EEXIST, "addPod: pod name '" + spec.name + "' taken"};
  }
  PodState pod;
  pod.index = nextIndex_++;
  pod.netns = prefix_ + spec.name;
  pod.ipv4 = spec.ipv4;
  pod.ipv6 = spec.ipv6;
  if (pod.ipv4.empty() && pod.ipv6.empty()) {
    // First host number from 10 up free in both 10.244.1.0/24 and fd00:244:1::/64.
    auto used = [this](const std::string& a) {
      for (const auto& [n, p] : pods_) {
        for (const auto* list : {&p.ipv4, &p.ipv6}) {
          if (std::find(list->begin(), list->end(), a) != list->end()) {
            return true;
          }
        }
      }
      return false;
    };
    int host = 10;
    while (host < 250 && (used("10.244.1." + std::to_string(host)) ||
                          used("fd00:244:1::" + std::to_string(host)))) {
      ++host;
    }
    if (host >= 250) {
      return Error{ENOSPC, "addPod " + spec.name + ": no free auto address in 10.244.1.0/24"};
    }
    pod.ipv4.push_back("10.244.1." + std::to_string(host));
    pod.ipv6.push_back("fd00:244:1::" + std::to_string(host));
  }
  auto ctx = [&spec](const Error& e) {
    return Error{e.code, "addPod " + spec.name + ": " + e.message};
  };

  // Cgroup.
  pod.cgroup = spec.outsideCgroup ? cgroup2_ + "/" + prefix_ + "outside-" + spec.name
                                  : cgroupRoot_ + "/" + spec.name;
  if (::mkdir(pod.cgroup.c_str(), 0755) != 0) {
    return ctx(osError(errno, "mkdir " + pod.cgroup));
  }
  cgroupsCreated_.push_back(pod.cgroup);

  // Gateways and default routes first: a bad address fails before anything is made.
  std::vector<std::pair<std::string, std::string>> gateways; // {cidr, gateway}
  std::vector<std::string> local;                            // the pod's addresses with prefix
  for (const auto& a : pod.ipv4) {
    auto gw = gatewayV4(a);
    if (!gw) {
      return ctx(Error{EINVAL, "bad IPv4 address '" + a + "'"});
    }
    gateways.push_back(*gw);
    local.push_back(a + "/24");
  }
  for (const auto& a : pod.ipv6) {
    auto gw = gatewayV6(a);
    if (!gw) {
      return ctx(Error{EINVAL, "bad IPv6 address '" + a + "'"});
    }
    gateways.push_back(*gw);
    local.push_back(a + "/64");
  }

  // Netns and veth: created directly inside the node and pod namespaces.
  if (auto s = createNetns(pod.netns); !s.ok()) {
    return ctx(s.error());
  }
  netnsCreated_.push_back(pod.netns);
  if (auto s = sysctlIn(pod.netns, kNoDad); !s.ok()) {
    return ctx(s.error());
  }
  auto rtnl = Rtnl::open(pod.netns);
  if (!rtnl.ok()) {
    return ctx(rtnl.error());
  }
  // Before any route exists that could carry a service address off the pod.
  if (!spec.serviceRangesViaNode) {
    if (auto s = blackholeServiceRanges(*rtnl); !s.ok()) {
      return ctx(s.error());
    }
  }
  if (auto s = node_->addVethToNetns("vp" + std::to_string(pod.index), kBridge, "eth0", pod.netns);
      !s.ok()) {
    return ctx(s.error());
  }
  for (const char* link : {"lo", "eth0"}) {
    if (auto s = rtnl->up(link); !s.ok()) {
      return ctx(s.error());
    }
  }
  for (const auto& [cidr, gateway] : gateways) {
    if (auto s = ensureGateway(cidr, gateway); !s.ok()) {
      return ctx(s.error());
    }
  }
  for (const auto& a : local) {
    if (auto s = rtnl->addAddress("eth0", a); !s.ok()) {
      return ctx(s.error());
    }
  }
  // The first address of each family names the default route's gateway.
  bool haveV4 = false, haveV6 = false;
  for (const auto& [cidr, gateway] : gateways) {
    bool& have = gateway.find(':') == std::string::npos ? haveV4 : haveV6;
    if (!have) {
      have = true;
      if (auto s = rtnl->addDefaultRoute("eth0", gateway); !s.ok()) {
        return ctx(s.error());
      }
    }
  }
  pods_.emplace(spec.name, std::move(pod));
  return {};
}

std::vector<std::string> World::podNames() const {
  std::vector<std::string> names;
  for (const auto& [name, pod] : pods_) {
    names.push_back(name);
  }
  return names;
}

std::string World::podCgroup(const std::string& pod) const {
  auto it = pods_.find(pod);
  return it == pods_.end() ? std::string() : it->second.cgroup;
}

std::string World::netnsName(const std::string& pod) const {
  auto it = pods_.find(pod);
  return it == pods_.end() ? std::string() : it->second.netns;
}

std::vector<std::string> World::podIPv4(const std::string& pod) const {
  auto it = pods_.find(pod);
  return it == pods_.end() ? std::vector<std::string>() : it->second.ipv4;
}

std::vector<std::string> World::podIPv6(const std::string& pod) const {
  auto it = pods_.find(pod);
  return it == pods_.end() ? std::vector<std::string>() : it->second.ipv6;
}

Result<Process> World::spawn(const std::string& pod, const std::vector<std::string>& argv,
                             const SpawnOptions& options) {
  auto it = pods_.find(pod);
  if (it == pods_.end()) {
    return Error{ENOENT, "spawn: unknown pod '" + pod + "'"};
  }
  auto setup = prepareSetup(it->second.netns, options.joinCgroup ? it->second.cgroup : "");
  if (!setup.ok()) {
    return Error{setup.error().code, "spawn in " + pod + ": " + setup.error().message};
  }
  int outPipe[2] = {-1, -1};
  if (options.captureStdout) {
    if (::pipe2(outPipe, O_CLOEXEC) != 0) {
      int err = errno;
      closeSetup(*setup);
      return osError(err, "spawn: pipe2");
    }
    setup->stdoutFd = outPipe[1];
  }
  auto pid = forkExec(argv, *setup);
  closeSetup(*setup);
  if (outPipe[1] >= 0) {
    ::close(outPipe[1]);
  }
  if (!pid.ok()) {
    if (outPipe[0] >= 0) {
      ::close(outPipe[0]);
    }
    return Error{pid.error().code, "spawn in " + pod + ": " + pid.error().message};
  }
  return Process(*pid, outPipe[0]);
}

Result<CommandResult> World::run(const std::string& pod, const std::vector<std::string>& argv,
                                 milliseconds timeout) {
  auto it = pods_.find(pod);
  if (it == pods_.end()) {
    return Error{ENOENT, "run: unknown pod '" + pod + "'"};
  }
  auto setup = prepareSetup(it->second.netns, it->second.cgroup);
  if (!setup.ok()) {
    return Error{setup.error().code, "run in " + pod + ": " + setup.error().message};
  }
  auto r = runCapture(argv, *setup, timeout);
  closeSetup(*setup);
  if (!r.ok()) {
    return Error{r.error().code, "run in " + pod + ": " + r.error().message};
  }
  return r;
}

Result<std::string> World::runInPod(const std::string& pod, bool joinCgroup,
                                    const std::function<std::string()>& work,
                                    milliseconds timeout) {
  auto it = pods_.find(pod);
  if (it == pods_.end()) {
    return Error{ENOENT, "unknown pod '" + pod + "'"};
  }
  auto setup = prepareSetup(it->second.netns, joinCgroup ? it->second.cgroup : "");
  if (!setup.ok()) {
    return setup.error();
  }
  int pipeFds[2];
  if (::pipe2(pipeFds, O_CLOEXEC) != 0) {
    int err = errno;
    closeSetup(*setup);
    return osError(err, "pipe2");
  }
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    closeSetup(*setup);
    ::close(pipeFds[0]);
    ::close(pipeFds[1]);
    return osError(err, "fork");
  }
  if (pid == 0) {
    ::close(pipeFds[0]);
    int stage = applySetupInChild(*setup);
    std::string out;
    if (stage != 0) {
      out = "E";
      putU32(out, static_cast<uint32_t>(errno));
      putStr(out, stageName(stage));
    } else {
      out = "K" + work();
    }
    size_t off = 0;
    while (off < out.size()) {
      ssize_t n = ::write(pipeFds[1], out.data() + off, out.size() - off);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        ::_exit(1);
      }
      off += n;
    }
    ::_exit(0);
  }
  closeSetup(*setup);
  ::close(pipeFds[1]);
  std::string data;
  auto deadline = Clock::now() + timeout;
  bool complete = drainFds({{pipeFds[0], &data}}, deadline);
  ::close(pipeFds[0]);
  bool timedOut = !complete;
  auto code =
      waitWithDeadline(pid, complete ? deadline + milliseconds(2000) : Clock::now(), &timedOut);
  if (timedOut) {
    return Error{ETIMEDOUT, "helper in " + pod + " timed out"};
  }
  if (!code.ok()) {
    return code.error();
  }
  if (data.empty() || *code != 0) {
    return Error{EIO, "helper in " + pod + " exited " + std::to_string(*code)};
  }
  if (data[0] == 'E') {
    std::string rest = data.substr(1);
    Reader in{rest};
    int err = static_cast<int>(in.u32());
    return osError(err, "helper " + in.str() + " in " + pod);
  }
  return data.substr(1);
}

Result<HttpResult> World::httpGet(const std::string& pod, const std::string& addr, uint16_t port,
                                  milliseconds timeout, const std::string& path) {
  auto many = httpGetMany(pod, addr, port, 1, timeout, path);
  if (!many.ok()) {
    return many.error();
  }
  return std::move(many->front());
}

Result<std::vector<HttpResult>> World::httpGetMany(const std::string& pod, const std::string& addr,
                                                   uint16_t port, int n, milliseconds timeout,
                                                   const std::string& path) {
  auto sa = makeSockAddr(addr, port);
  if (!sa) {
    return Error{EINVAL, "httpGet: bad address '" + addr + "'"};
  }
  if (n <= 0) {
    return Error{EINVAL, "httpGetMany: n must be positive"};
  }
  std::string host = hostHeader(addr, port);
  auto work = [&]() {
    std::string out;
    putU32(out, static_cast<uint32_t>(n));
    for (int i = 0; i < n; ++i) {
      encodeHttp(out, doHttpGet(*sa, host, path, timeout));
    }
    return out;
  };
  // Each request is bounded by timeout; leave room for all of them in the worst case.
  auto data = runInPod(pod, true, work, timeout * (n + 1) + milliseconds(5000));
  if (!data.ok()) {
    return Error{data.error().code,
                 "httpGet " + host + " from " + pod + ": " + data.error().message};
  }
  Reader in{*data};
  uint32_t count = in.u32();
  std::vector<HttpResult> results;
  results.reserve(count);
  for (uint32_t i = 0; i < count && !in.failed; ++i) {
    results.push_back(decodeHttp(in));
  }
  if (in.failed || results.size() != static_cast<size_t>(n)) {
    return Error{EPROTO, "httpGet " + host + " from " + pod + ": truncated helper output"};
  }
  return results;
}

Result<std::vector<UdpResult>> World::udpQuery(const std::string& pod, const std::string& addr,
                                               uint16_t port, int n, milliseconds timeout) {
  auto sa = makeSockAddr(addr, port);
  if (!sa) {
    return Error{EINVAL, "udpQuery: bad address '" + addr + "'"};
  }
  if (n <= 0) {
    return Error{EINVAL, "udpQuery: n must be positive"};
  }
  auto work = [&]() {
    std::string out;
    putU32(out, static_cast<uint32_t>(n));
    for (int i = 0; i < n; ++i) {
      encodeUdp(out, doUdpQuery(*sa, "q" + std::to_string(i), timeout));
    }
    return out;
  };
  auto data = runInPod(pod, true, work, timeout * (n + 1) + milliseconds(5000));
  if (!data.ok()) {
    return Error{data.error().code, "udpQuery " + hostHeader(addr, port) + " from " + pod + ": " +
                                        data.error().message};
  }
  Reader in{*data};
  uint32_t count = in.u32();
  std::vector<UdpResult> results;
  results.reserve(count);
  for (uint32_t i = 0; i < count && !in.failed; ++i) {
    results.push_back(decodeUdp(in));
  }
  if (in.failed || results.size() != static_cast<size_t>(n)) {
    return Error{EPROTO, "udpQuery from " + pod + ": truncated helper output"};
  }
  return results;
}

Status World::waitListening(const std::string& pod, uint16_t port, milliseconds deadline,
                            const std::string& addr) {
  auto sa = makeSockAddr(addr, port);
  if (!sa) {
    return Error{EINVAL, "waitListening: bad address '" + addr + "'"};
  }
  auto work = [&]() {
    auto end = Clock::now() + deadline;
    int backoffMs = 1;
    int lastErr = ETIMEDOUT;
    for (;;) {
      int fd = ::socket(sa->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        lastErr = errno;
        break;
      }
      auto attemptEnd = std::min(end, Clock::now() + milliseconds(500));
      lastErr = connectWithDeadline(fd, *sa, attemptEnd);
      ::close(fd);
      if (lastErr == 0 || Clock::now() >= end) {
        break;
      }
      std::this_thread::sleep_for(milliseconds(backoffMs));
      backoffMs = std::min(backoffMs * 2, 50);
    }
    std::string out;
    putU32(out, static_cast<uint32_t>(lastErr));
    return out;
  };
  auto data = runInPod(pod, false, work, deadline + milliseconds(5000));
  std::string what = "waitListening " + hostHeader(addr, port) + " in " + pod;
  if (!data.ok()) {
    return Error{data.error().code, what + ": " + data.error().message};
  }
  Reader in{*data};
  int err = static_cast<int>(in.u32());
  if (in.failed) {
    return Error{EPROTO, what + ": truncated helper output"};
  }
  if (err != 0) {
    return osError(err, what + " (gave up after " + std::to_string(deadline.count()) + " ms)");
  }
  return {};
}

Result<Process> World::startTestServer(const std::string& pod, const std::string& version,
                                       const std::vector<uint16_t>& tcpPorts,
                                       const std::vector<uint16_t>& udpPorts) {
  std::vector<std::string> argv{testServerPath(), "--version", version};
  for (auto p : tcpPorts) {
    argv.push_back("--tcp");
    argv.push_back(std::to_string(p));
  }
  for (auto p : udpPorts) {
    argv.push_back("--udp");
    argv.push_back(std::to_string(p));
  }
  auto proc = spawn(pod, argv);
  if (!proc.ok()) {
    return proc.error();
  }
  for (auto p : tcpPorts) {
    if (auto s = waitListening(pod, p); !s.ok()) {
      return s.error();
    }
  }
  if (tcpPorts.empty()) {
    // UDP only: poll with queries until one is answered.
    auto addrs = podIPv4(pod);
    std::string target = addrs.empty() ? "::1" : "127.0.0.1";
    for (auto p : udpPorts) {
      auto deadline = Clock::now() + milliseconds(5000);
      for (;;) {
        auto r = udpQuery(pod, target, p, 1, milliseconds(100));
        if (r.ok() && r->front().ok) {
          break;
        }
        if (Clock::now() >= deadline) {
          return Error{ETIMEDOUT,
                       "testsrv in " + pod + ": UDP port " + std::to_string(p) + " never answered"};
        }
      }
    }
  }
  return proc;
}

int decodeStatus(int status) {
  if (WIFEXITED(status)) {
    return WEXITSTATUS(status);
  }
  if (WIFSIGNALED(status)) {
    return 128 + WTERMSIG(status);
  }
  return -1;
}

} // namespace veer::test
