#pragma once

// Many affinity clients without many pods: processes in the node's network
// namespace, each in its own cgroup below the attached one. veer keys a
// host-network client by its cgroup id (a pod by its netns cookie), so each
// cgroup is one client, and they share one neighbour entry per backend
// instead of one per pod (the kernel's ARP table is global, gc_thresh2 512).
// The agent must run in the node netns too (AgentProcess::setNetns), as a hostNetwork
// DaemonSet does, so that this netns is its "host" one.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/result.h"
#include "world/world.h"

namespace veer::test {

/**
 * A socket of type (SOCK_STREAM or SOCK_DGRAM) connected to addr:port (IPv4) from the
 * calling thread's netns and cgroup, with 2 s send and receive timeouts; -1 on failure
 * (errno says why).
 */
inline int connectTo(const char* addr, uint16_t port, int type) {
  int s = socket(AF_INET, type | SOCK_CLOEXEC, 0);
  if (s < 0) {
    return -1;
  }
  timeval tv{2, 0};
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  inet_pton(AF_INET, addr, &sa.sin_addr);
  if (connect(s, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    const int err = errno;
    close(s);
    errno = err;
    return -1;
  }
  return s;
}

class NodeClients {
public:
  /** n cgroups "<prefix><i>" under the world's attached cgroup; removed on destruction. */
  NodeClients(const World& world, int n, const std::string& prefix = "nc")
      : netns_("/run/netns/" + world.nodeNetns()) {
    for (int i = 0; i < n; ++i) {
      cgroups_.push_back(world.cgroupRoot() + "/" + prefix + std::to_string(i));
    }
  }

  /** Clients in any netns (a /run/netns path) and cgroups (created, removed on destruction). */
  NodeClients(std::string netnsPath, std::vector<std::string> cgroups)
      : netns_(std::move(netnsPath)), cgroups_(std::move(cgroups)) {}

  Status create() {
    for (const std::string& cg : cgroups_) {
      if (mkdir(cg.c_str(), 0755) != 0 && errno != EEXIST) {
        return osError(errno, "mkdir " + cg);
      }
    }
    return {};
  }

  ~NodeClients() {
    for (auto it = cgroups_.rbegin(); it != cgroups_.rend(); ++it) {
      rmdir(it->c_str()); // children first; every client has exited, so each is empty
    }
  }

  size_t size() const { return cgroups_.size(); }
  const std::string& cgroup(size_t i) const { return cgroups_[i]; }

  /**
   * One HTTP GET (fresh connection) from client i to addr:port; returns the first
   * line of the body (veer-testsrv's version), or "error: <step> <errno text>".
   */
  std::string get(size_t i, const std::string& addr, uint16_t port) const {
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) {
      return std::string("error: pipe ") + strerror(errno);
    }
    pid_t pid = fork();
    if (pid < 0) {
      close(pipefd[0]);
      close(pipefd[1]);
      return std::string("error: fork ") + strerror(errno);
    }
    if (pid == 0) {
      close(pipefd[0]);
      std::string out = child(cgroups_[i], addr, port);
      (void)!write(pipefd[1], out.data(), out.size());
      _exit(0);
    }
    close(pipefd[1]);
    std::string out;
    char buf[512];
    ssize_t r;
    while ((r = read(pipefd[0], buf, sizeof(buf))) > 0 || (r < 0 && errno == EINTR)) {
      if (r > 0) {
        out.append(buf, r);
      }
    }
    close(pipefd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return out.empty() ? "error: child died" : out;
  }

  /** get() from every client, in order. */
  std::vector<std::string> getAll(const std::string& addr, uint16_t port) const {
    std::vector<std::string> out;
    for (size_t i = 0; i < cgroups_.size(); ++i) {
      out.push_back(get(i, addr, port));
    }
    return out;
  }

private:
  std::string child(const std::string& cgroup, const std::string& addr, uint16_t port) const {
    auto fail = [](const char* step) {
      return std::string("error: ") + step + " " + strerror(errno);
    };
    {
      std::ofstream procs(cgroup + "/cgroup.procs");
      procs << getpid() << std::flush;
      if (!procs) {
        return fail("join cgroup");
      }
    }
    int ns = open(netns_.c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0 || setns(ns, CLONE_NEWNET) != 0) {
      return fail("setns");
    }
    int s = connectTo(addr.c_str(), port, SOCK_STREAM);
    if (s < 0) {
      return fail("connect");
    }
    const std::string req = "GET / HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n";
    if (send(s, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
      return fail("send");
    }
    std::string resp;
    char buf[4096];
    ssize_t r;
    while ((r = recv(s, buf, sizeof(buf), 0)) > 0) {
      resp.append(buf, r);
    }
    if (r < 0) {
      return fail("recv");
    }
    const size_t body = resp.find("\r\n\r\n");
    if (resp.compare(0, 12, "HTTP/1.1 200") != 0 || body == std::string::npos) {
      errno = EPROTO;
      return fail("parse");
    }
    std::string line = resp.substr(body + 4);
    return line.substr(0, line.find('\n'));
  }

  std::string netns_;
  std::vector<std::string> cgroups_;
};

} // namespace veer::test
