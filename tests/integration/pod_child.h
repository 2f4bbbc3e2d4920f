#pragma once

// Processes that act as a pod's client in integration tests: a child in the
// pod's cgroup and netns (so the connect hooks see it as that pod) reporting
// one line per event, and a keep-alive HTTP client to run in it.

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <string>

#include "kernel_path_fixture.h"
#include "node_clients.h"

namespace veer::test {

/** A child process in a pod (or a cgroup and netns) that writes one line per event to a pipe. */
class PodChild {
public:
  template <class F>
  PodChild(World& world, const std::string& pod, F body)
      : PodChild(world.podCgroup(pod), "/run/netns/" + world.netnsName(pod), body) {}

  template <class F> PodChild(const std::string& cgroup, const std::string& netns, F body) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
      return;
    }
    pid_ = fork();
    if (pid_ == 0) {
      close(fds[0]);
      std::ofstream(cgroup + "/cgroup.procs") << getpid() << std::flush;
      int ns = open(netns.c_str(), O_RDONLY | O_CLOEXEC);
      if (ns < 0 || setns(ns, CLONE_NEWNET) != 0) {
        _exit(1);
      }
      auto emit = [fd = fds[1]](const std::string& line) {
        std::string l = line + "\n";
        (void)!write(fd, l.data(), l.size());
      };
      body(emit);
      _exit(0);
    }
    close(fds[1]);
    fd_ = fds[0];
  }

  ~PodChild() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (fd_ >= 0) {
      close(fd_);
    }
  }

  /** The next line, or "" after timeout. */
  std::string line(milliseconds timeout = milliseconds(10000)) {
    const auto deadline = steady_clock::now() + timeout;
    while (true) {
      if (size_t nl = buf_.find('\n'); nl != std::string::npos) {
        std::string l = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return l;
      }
      const auto left =
          std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now()).count();
      pollfd p{fd_, POLLIN, 0};
      // At least one look, however short the timeout: what already arrived counts.
      if (poll(&p, 1, static_cast<int>(std::max<int64_t>(left, 0))) <= 0) {
        return "";
      }
      char b[512];
      ssize_t r = read(fd_, b, sizeof(b));
      if (r <= 0) {
        return "";
      }
      buf_.append(b, r);
    }
  }

private:
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string buf_;
};

/**
 * A keep-alive HTTP client: one request every interval on its connection; when
 * the connection is closed under it before an answer starts, it reconnects and
 * sends the request again (what HTTP clients do on a reused connection).
 * headers: more header lines, each ending in CRLF.
 * Lines: "<version> <connection number>", or "fail <step> <errno>".
 */
inline void keepAliveClient(const std::function<void(const std::string&)>& emit,
                            const char* service, useconds_t interval = 20000,
                            const std::string& headers = "") {
  int conn = -1, conns = 0;
  const std::string req = "GET / HTTP/1.1\r\nHost: ka\r\n" + headers + "\r\n";
  while (true) {
    bool fresh = false;
    if (conn < 0) {
      conn = connectTo(service, kHttpPort, SOCK_STREAM);
      if (conn < 0) {
        emit("fail connect " + std::to_string(errno));
        usleep(100000);
        continue;
      }
      conns++;
      fresh = true;
    }
    std::string resp;
    bool sent = send(conn, req.data(), req.size(), MSG_NOSIGNAL) == ssize_t(req.size());
    size_t want = std::string::npos;
    while (sent) {
      const size_t head = resp.find("\r\n\r\n");
      if (head != std::string::npos && want == std::string::npos) {
        const size_t cl = resp.find("Content-Length: ");
        want = head + 4 + (cl < head ? std::stoul(resp.substr(cl + 16)) : 0);
      }
      if (resp.size() >= want) {
        break;
      }
      char b[1024];
      ssize_t r = recv(conn, b, sizeof(b), 0);
      if (r <= 0) {
        break;
      }
      resp.append(b, r);
    }
    if (want == std::string::npos || resp.size() < want) {
      const int err = errno;
      close(conn);
      conn = -1;
      if (fresh || !resp.empty()) {
        emit("fail request " + std::to_string(err)); // a fresh connection failed, or mid-answer
      }
      continue; // an idle reused connection was closed: retry on a new one
    }
    const std::string body = resp.substr(resp.find("\r\n\r\n") + 4);
    emit(body.substr(0, body.find('\n')) + " " + std::to_string(conns));
    usleep(interval);
  }
}

} // namespace veer::test
