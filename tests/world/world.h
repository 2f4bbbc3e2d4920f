#pragma once

/**
 * @file
 * The integration-test world: a simulated Kubernetes node built from network
 * namespaces, a bridge, veth pairs and cgroup v2 groups, owned by one RAII object.
 *
 * Layout of a World with prefix P (default "vw<pid>-<n>-"):
 *  - netns `P node` holding bridge `br0` with the gateway addresses (x.y.z.1/24,
 *    prefix::1/64 for every pod subnet) and forwarding enabled;
 *  - one netns `P<pod>` per pod with `eth0` (veth to br0), lo up, its addresses and
 *    default routes via the bridge;
 *  - in the node and in every pod, blackhole routes for kServiceRanges, made before
 *    anything else: a service address (e.g. 10.96.0.20) is reachable only once
 *    veer's connect hook has rewritten it, and without the hook (between tests,
 *    after an uninstall) connect() and sendto() fail at once with EINVAL instead of
 *    sending anything anywhere;
 *  - cgroup `<cgroup2>/P world/` (cgroupRoot(): the agent under test attaches there)
 *    with one child per pod, or a sibling `<cgroup2>/P outside-<pod>` for pods built
 *    with PodSpec::outsideCgroup.
 * Namespaces are made with unshare() and bind-mounted under /run/netns (so
 * `ip netns` lists them); links, addresses and routes go through libnl-route
 * (netlink.h). No link or route is ever created in the caller's netns. The destructor kills every
 * process in the world's cgroups, removes the cgroups and deletes the namespaces; it copes with a
 * partially built world. World::cleanupStale() removes leftovers of a crash.
 *
 * Not thread-safe; helpers fork, so call them from a single-threaded process.
 */

#include <sys/types.h>

#include <array>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"

namespace veer::test {

using std::chrono::milliseconds;

class Rtnl;

/**
 * The service address ranges of the tests and configs/ (Services' clusterIPs,
 * frontends): blackholed in every namespace of a world.
 */
inline constexpr std::array<const char*, 2> kServiceRanges = {"10.96.0.0/12", "fd00:96::/64"};

/**
 * A pod to create. Both address lists empty: 10.244.1.N and fd00:244:1::N are assigned,
 * N the first host number from 10 up that no pod of the world uses.
 */
struct PodSpec {
  std::string name;              ///< unique within the world; [A-Za-z0-9_.-]
  std::vector<std::string> ipv4; ///< e.g. "10.244.1.5"; placed in a /24
  std::vector<std::string> ipv6; ///< e.g. "fd00:244:1::5"; placed in a /64, nodad
  bool outsideCgroup = false;    ///< cgroup is a sibling of cgroupRoot(), not a child
  /**
   * kServiceRanges follow the default route to the node (which blackholes them)
   * instead of a blackhole in the pod: for a kube-proxy-style iptables DNAT in the
   * pod, whose OUTPUT rule runs only after connect() has found a route.
   */
  bool serviceRangesViaNode = false;
};

/** Exit status and output of a finished command. exitCode is 128+signal if killed. */
struct CommandResult {
  int exitCode = -1;
  std::string out;
  std::string err;
};

/** A waitpid() status as an exit code: the code, 128+signal if killed, -1 otherwise. */
int decodeStatus(int status);

/** One HTTP GET made from inside a pod. */
struct HttpResult {
  bool ok = false;       ///< connected, sent, and read a complete response
  int err = 0;           ///< errno of the failing step (ETIMEDOUT on timeouts), 0 if ok
  std::string step;      ///< failing step: "socket", "connect", "send", "recv", "parse"
  int status = 0;        ///< HTTP status code
  std::string headers;   ///< raw response head (status line + headers)
  std::string body;      ///< response body
  std::string peerAddr;  ///< getpeername() address, IPv4 dotted or IPv6 text
  uint16_t peerPort = 0; ///< getpeername() port
  std::string localAddr; ///< getsockname() address
};

/** One UDP query (fresh unconnected socket, sendto + recvfrom) made from inside a pod. */
struct UdpResult {
  bool ok = false;       ///< a reply arrived
  int err = 0;           ///< errno of the failing step (ETIMEDOUT on timeouts)
  std::string body;      ///< reply payload
  std::string fromAddr;  ///< reply source address from recvfrom()
  uint16_t fromPort = 0; ///< reply source port from recvfrom()
};

/** A process started inside a pod. Movable; the destructor SIGKILLs and reaps it if still running.
 */
class Process {
public:
  Process() = default;
  Process(pid_t pid, int stdoutFd) : pid_(pid), stdoutFd_(stdoutFd) {}
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();

  pid_t pid() const { return pid_; }
  /** True until wait() has reaped it. */
  bool running() const { return pid_ > 0 && !reaped_; }
  /** Sends a signal (SIGTERM by default). */
  Status kill(int sig = SIGTERM);
  /** Waits for exit up to timeout; returns the exit code (128+signal if killed). */
  Result<int> wait(milliseconds timeout = milliseconds(5000));
  /** Reads captured stdout until EOF or the timeout (only with SpawnOptions::captureStdout). */
  Result<std::string> readStdout(milliseconds timeout = milliseconds(5000));

private:
  void reset();
  pid_t pid_ = -1;
  int stdoutFd_ = -1;
  bool reaped_ = false;
  int exitCode_ = -1;
};

struct SpawnOptions {
  bool captureStdout = false; ///< otherwise stdout/stderr are inherited
  bool joinCgroup = true;     ///< join the pod cgroup before exec (subject to BPF)
};

struct WorldOptions {
  /** Name prefix of every netns and cgroup; default "vw<pid>-<counter>-". */
  std::string prefix;
};

/** The test node. Create with World::create(); destroy to tear everything down. */
class World {
public:
  static Result<std::unique_ptr<World>> create(const WorldOptions& options = {});
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  /**
   * Removes every netns (/run/netns) and cgroup (top level of the cgroup2 mount)
   * whose name starts with prefix, killing their processes first.
   */
  static Status cleanupStale(const std::string& prefix);
  /** The cgroup2 mount point (from /proc/mounts; mounted at /run/veer/cgroup2 if none). */
  static Result<std::string> cgroup2Mount();
  /** Path of veer-testsrv: $VEER_TESTSRV, else next to the running executable. */
  static std::string testServerPath();

  const std::string& prefix() const { return prefix_; }
  /** The world's parent cgroup; pods (except outsideCgroup ones) live below it. */
  const std::string& cgroupRoot() const { return cgroupRoot_; }
  /** Netns of the node (holds the bridge). */
  const std::string& nodeNetns() const { return nodeNetns_; }

  /** Creates a pod: netns, veth to the bridge, addresses, routes, cgroup. */
  Status addPod(const PodSpec& spec);
  bool hasPod(const std::string& pod) const { return pods_.count(pod) != 0; }
  std::vector<std::string> podNames() const;
  /** Cgroup directory of a pod; empty if the pod is unknown. */
  std::string podCgroup(const std::string& pod) const;
  /** Netns name (under /run/netns) of a pod; empty if unknown. */
  std::string netnsName(const std::string& pod) const;
  /** Addresses of a pod; empty if unknown. */
  std::vector<std::string> podIPv4(const std::string& pod) const;
  std::vector<std::string> podIPv6(const std::string& pod) const;

  /** Starts argv[0] (searched in PATH) inside the pod. */
  Result<Process> spawn(const std::string& pod, const std::vector<std::string>& argv,
                        const SpawnOptions& options = {});
  /** Runs a short command inside the pod (netns + cgroup); killed after timeout. */
  Result<CommandResult> run(const std::string& pod, const std::vector<std::string>& argv,
                            milliseconds timeout = milliseconds(30000));

  /** One TCP connect + HTTP/1.1 GET (Connection: close) + read, from inside the pod cgroup. */
  Result<HttpResult> httpGet(const std::string& pod, const std::string& addr, uint16_t port,
                             milliseconds timeout = milliseconds(2000),
                             const std::string& path = "/");
  /** n sequential GETs, one connection each, in one forked child. */
  Result<std::vector<HttpResult>> httpGetMany(const std::string& pod, const std::string& addr,
                                              uint16_t port, int n,
                                              milliseconds timeout = milliseconds(2000),
                                              const std::string& path = "/");
  /** n UDP queries (payload "q<i>"), each from a fresh unconnected socket. */
  Result<std::vector<UdpResult>> udpQuery(const std::string& pod, const std::string& addr,
                                          uint16_t port, int n,
                                          milliseconds timeout = milliseconds(2000));

  /**
   * Polls until something accepts TCP connections on port inside the pod (connects to
   * addr, default 127.0.0.1; outside the pod cgroup so BPF does not interfere).
   */
  Status waitListening(const std::string& pod, uint16_t port,
                       milliseconds deadline = milliseconds(5000),
                       const std::string& addr = "127.0.0.1");

  /**
   * Starts veer-testsrv in the pod answering version on the given ports and waits
   * until it is ready (TCP ports accept; the server binds UDP before TCP).
   */
  Result<Process> startTestServer(const std::string& pod, const std::string& version,
                                  const std::vector<uint16_t>& tcpPorts,
                                  const std::vector<uint16_t>& udpPorts = {});

private:
  struct PodState {
    std::string netns;
    std::string cgroup;
    std::vector<std::string> ipv4;
    std::vector<std::string> ipv6;
    int index = 0;
  };

  World() = default;
  Status build();
  void teardown();
  Status ensureGateway(const std::string& cidr, const std::string& gateway);
  static Status blackholeServiceRanges(Rtnl& rtnl);
  /** Forks a child inside the pod running work; returns the bytes it produced. */
  Result<std::string> runInPod(const std::string& pod, bool joinCgroup,
                               const std::function<std::string()>& work, milliseconds timeout);

  std::string prefix_;
  std::string cgroup2_;
  std::string cgroupRoot_;
  std::string nodeNetns_;
  std::map<std::string, PodState> pods_;
  std::vector<std::string> netnsCreated_;   // in creation order
  std::vector<std::string> cgroupsCreated_; // in creation order
  std::vector<std::string> gateways_;       // CIDRs on br0
  std::unique_ptr<Rtnl> node_;              // rtnetlink in the node's netns
  int nextIndex_ = 1;
};

} // namespace veer::test
