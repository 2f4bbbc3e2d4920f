// veer-world: the test World (tests/world/world.h) for bash scripts (demo, benchmarks).
//
//   veer-world up --name NAME --inventory PATH... [--detach] [--no-client]
//                 [--client POD]... [--outside-client POD]...
//   veer-world down --name NAME
//   veer-world exec --name NAME [--no-cgroup] POD -- CMD [ARGS...]
//   veer-world cgroup --name NAME      # parent cgroup, for `veer-agent --cgroup`
//   veer-world pods --name NAME        # "pod netns cgroup ipv4,... ipv6,..." per line
//
// Design: `up` owns the World object for its whole life and tears it down when it
// gets SIGINT, SIGTERM or SIGHUP (signals are blocked from the start and taken with
// sigwait, so a signal during setup is handled after setup, never lost). Without
// --detach it stays in the foreground; with --detach it forks, the child runs the world
// (log in /run/veer-world/NAME/log) and the parent exits 0 once everything is ready,
// or 1 with the log if setup failed. When ready, `up` writes /run/veer-world/NAME/state
// (atomically) with its pid, the name prefix and every pod; the other commands only
// read that file. `down` SIGTERMs the owner and waits for it, then runs
// World::cleanupStale(prefix), which also cleans up after an owner that was SIGKILLed.
// Every netns and cgroup of world NAME is named "vwc-NAME." + something; NAME is
// [A-Za-z0-9_]{1,16} so one world's prefix is never a prefix of another's.
//
// Pods: one per Pod object in the inventory (loader: config/loader.h), with its IPs
// (none: auto-assigned). Pods whose name occurs in several namespaces are named
// NAMESPACE.NAME. Pods with a `version` label run veer-testsrv answering that version
// on their ports: every named containerPort, plus the target ports of the Services
// selecting the pod (9080 if there are none). A port is served over UDP instead of
// TCP when a selecting Service declares it UDP, or its containerPort name starts with
// "dns" or "udp"; port 5353 is served over both. Besides the inventory pods, a pod
// "client" (auto-addressed, in the world cgroup) is created unless --no-client or the
// inventory has one; --client adds more, --outside-client adds pods whose cgroup is
// outside the world's parent cgroup (not subject to the agent). Like every World, the
// node and each pod blackhole the service ranges (world.h kServiceRanges): with no agent
// attached, traffic to a service address fails at once and never leaves the machine.

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <filesystem>
#include <thread>
#include <vector>

#include "world/world.h"
#include "config/loader.h"

namespace veer::test::cli {
namespace {

constexpr const char* kStateRoot = "/run/veer-world";

int fail(const std::string& message) {
  std::fprintf(stderr, "veer-world: %s\n", message.c_str());
  return 1;
}

int usage() {
  std::fprintf(stderr,
               "usage: veer-world up --name NAME --inventory PATH... [--detach] [--no-client]\n"
               "                     [--client POD]... [--outside-client POD]...\n"
               "       veer-world down --name NAME\n"
               "       veer-world exec --name NAME [--no-cgroup] POD -- CMD [ARGS...]\n"
               "       veer-world cgroup --name NAME\n"
               "       veer-world node-netns --name NAME\n"
               "       veer-world pods --name NAME\n");
  return 2;
}

bool validWorldName(const std::string& name) {
  if (name.empty() || name.size() > 16) {
    return false;
  }
  for (char c : name) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '_')) {
      return false;
    }
  }
  return true;
}

std::string prefixFor(const std::string& name) {
  return "vwc-" + name + ".";
}
std::string stateDir(const std::string& name) {
  return std::string(kStateRoot) + "/" + name;
}

struct PodState {
  std::string name, netns, cgroup, ipv4, ipv6;
};

struct State {
  pid_t pid = -1;
  std::string prefix;
  std::string cgroup;
  std::vector<PodState> pods;
};

Result<State> readState(const std::string& name) {
  std::string path = stateDir(name) + "/state";
  std::ifstream in(path);
  if (!in) {
    return Error{errno, "world '" + name + "' is not up (no " + path + ")"};
  }
  State st;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string key;
    f >> key;
    if (key == "pid") {
      f >> st.pid;
    } else if (key == "prefix") {
      f >> st.prefix;
    } else if (key == "cgroup") {
      f >> st.cgroup;
    } else if (key == "pod") {
      PodState p;
      f >> p.name >> p.netns >> p.cgroup >> p.ipv4 >> p.ipv6;
      st.pods.push_back(p);
    }
  }
  if (st.pid <= 0 || st.prefix.empty() || st.cgroup.empty()) {
    return Error{EINVAL, "corrupt state file " + path};
  }
  return st;
}

std::string joinComma(const std::vector<std::string>& v) {
  if (v.empty()) {
    return "-";
  }
  std::string s;
  for (const auto& x : v) {
    s += (s.empty() ? "" : ",") + x;
  }
  return s;
}

Status writeState(const std::string& name, const World& world) {
  std::string dir = stateDir(name);
  std::string tmp = dir + "/state.tmp";
  {
    std::ofstream out(tmp);
    if (!out) {
      return osError(errno, "create " + tmp);
    }
    out << "pid " << ::getpid() << "\n";
    out << "prefix " << world.prefix() << "\n";
    out << "cgroup " << world.cgroupRoot() << "\n";
    for (const auto& pod : world.podNames()) {
      out << "pod " << pod << " " << world.netnsName(pod) << " " << world.podCgroup(pod) << " "
          << joinComma(world.podIPv4(pod)) << " " << joinComma(world.podIPv6(pod)) << "\n";
    }
    out.flush();
    if (!out) {
      return Error{EIO, "write " + tmp};
    }
  }
  if (::rename(tmp.c_str(), (dir + "/state").c_str()) != 0) {
    return osError(errno, "rename " + tmp);
  }
  return {};
}

bool processAlive(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

bool labelsMatch(const Labels& selector, const Labels& labels) {
  if (selector.empty()) {
    return false;
  }
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) {
      return false;
    }
  }
  return true;
}

bool startsWith(const std::string& s, const char* p) {
  return s.rfind(p, 0) == 0;
}

/** The TCP and UDP ports veer-testsrv serves for a pod (see the comment at the top). */
void podPorts(const Config& config, const Pod& pod, std::set<uint16_t>* tcp,
              std::set<uint16_t>* udp) {
  for (const auto& [name, port] : pod.namedPorts) {
    bool isUdp = startsWith(name, "dns") || startsWith(name, "udp");
    (isUdp ? udp : tcp)->insert(port);
  }
  for (const auto& svc : config.services) {
    if (svc.meta.ns != pod.meta.ns || !labelsMatch(svc.selector, pod.meta.labels)) {
      continue;
    }
    for (const auto& sp : svc.ports) {
      uint16_t port = sp.targetPort;
      if (!sp.targetPortName.empty()) {
        auto it = pod.namedPorts.find(sp.targetPortName);
        port = it == pod.namedPorts.end() ? 0 : it->second;
      } else if (port == 0) {
        port = sp.port;
      }
      if (port == 0) {
        continue;
      }
      if (sp.proto == 17) {
        tcp->erase(port);
        udp->insert(port);
      } else if (udp->count(port) == 0) {
        tcp->insert(port);
      }
    }
  }
  if (tcp->empty() && udp->empty()) {
    tcp->insert(9080);
  }
  if (tcp->count(5353) != 0 || udp->count(5353) != 0) {
    tcp->insert(5353);
    udp->insert(5353);
  }
}

struct UpOptions {
  std::string name;
  std::vector<std::string> inventory;
  bool detach = false;
  bool client = true;
  std::vector<std::string> clients;
  std::vector<std::string> outsideClients;
};

/** Builds the world, reports readiness on readyFd (if >= 0), waits for a signal, tears down. */
int runWorld(const UpOptions& opt, int readyFd) {
  auto loaded = loadPaths(opt.inventory);
  for (const auto& d : loaded.diags) {
    std::fprintf(stderr, "%s\n", d.format().c_str());
  }
  if (hasErrors(loaded.diags)) {
    return fail("inventory has errors");
  }
  const Config& config = loaded.config;

  // Leftovers of an owner that died without cleaning up.
  if (auto s = World::cleanupStale(prefixFor(opt.name)); !s.ok()) {
    return fail("cleaning up a previous world: " + s.error().message);
  }
  auto created = World::create(WorldOptions{prefixFor(opt.name)});
  if (!created.ok()) {
    return fail(created.error().message);
  }
  std::unique_ptr<World> world = std::move(created.value());

  std::map<std::string, int> nameCount;
  for (const auto& pod : config.pods) {
    ++nameCount[pod.meta.name];
  }
  std::vector<Process> servers;
  for (const auto& pod : config.pods) {
    PodSpec spec;
    spec.name =
        nameCount[pod.meta.name] > 1 ? pod.meta.ns + "." + pod.meta.name : pod.meta.name.str();
    for (const auto& ip : pod.ips) {
      (ip.v4 ? spec.ipv4 : spec.ipv6).push_back(ip.str());
    }
    if (auto s = world->addPod(spec); !s.ok()) {
      return fail(s.error().message);
    }
    auto version = pod.meta.labels.find("version");
    if (version == pod.meta.labels.end()) {
      continue;
    }
    std::set<uint16_t> tcp, udp;
    podPorts(config, pod, &tcp, &udp);
    auto srv = world->startTestServer(spec.name, version->second,
                                      std::vector<uint16_t>(tcp.begin(), tcp.end()),
                                      std::vector<uint16_t>(udp.begin(), udp.end()));
    if (!srv.ok()) {
      return fail("testsrv in " + spec.name + ": " + srv.error().message);
    }
    std::fprintf(stderr, "veer-world: %s: veer-testsrv %s pid %d\n", spec.name.c_str(),
                 version->second.c_str(), srv->pid());
    servers.push_back(std::move(*srv));
  }
  std::vector<std::pair<std::string, bool>> extra;
  if (opt.client && !world->hasPod("client")) {
    extra.push_back({"client", false});
  }
  for (const auto& c : opt.clients) {
    extra.push_back({c, false});
  }
  for (const auto& c : opt.outsideClients) {
    extra.push_back({c, true});
  }
  for (const auto& [name, outside] : extra) {
    PodSpec spec;
    spec.name = name;
    spec.outsideCgroup = outside;
    if (auto s = world->addPod(spec); !s.ok()) {
      return fail(s.error().message);
    }
  }
  if (auto s = writeState(opt.name, *world); !s.ok()) {
    return fail(s.error().message);
  }
  std::printf("veer-world %s ready: cgroup %s\n", opt.name.c_str(), world->cgroupRoot().c_str());
  for (const auto& pod : world->podNames()) {
    std::printf("  %-24s %-16s %s\n", pod.c_str(), joinComma(world->podIPv4(pod)).c_str(),
                joinComma(world->podIPv6(pod)).c_str());
  }
  std::fflush(stdout);
  if (readyFd >= 0) {
    ssize_t n = ::write(readyFd, "R", 1);
    (void)n;
    ::close(readyFd);
  }

  sigset_t waitSet;
  sigemptyset(&waitSet);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) {
    sigaddset(&waitSet, sig);
  }
  for (;;) {
    int sig = 0;
    if (sigwait(&waitSet, &sig) != 0) {
      continue;
    }
    if (sig != SIGCHLD) {
      std::fprintf(stderr, "veer-world: %s: tearing down\n", strsignal(sig));
      break;
    }
    for (auto& srv : servers) {
      if (srv.running() && !processAlive(srv.pid())) {
        auto code = srv.wait(std::chrono::milliseconds(100));
        std::fprintf(stderr, "veer-world: veer-testsrv pid %d exited %d\n", srv.pid(),
                     code.ok() ? *code : -1);
      }
    }
  }
  for (auto& srv : servers) {
    if (srv.running()) {
      (void)srv.kill(SIGTERM);
      (void)srv.wait(std::chrono::milliseconds(2000));
    }
  }
  servers.clear();
  world.reset();
  ::unlink((stateDir(opt.name) + "/state").c_str());
  return 0;
}

int cmdUp(int argc, char** argv) {
  UpOptions opt;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (a == "--name") {
      const char* v = next();
      if (v == nullptr) {
        return usage();
      }
      opt.name = v;
    } else if (a == "--inventory") {
      const char* v = next();
      if (v == nullptr) {
        return usage();
      }
      opt.inventory.push_back(v);
      // Also accept several paths after one --inventory.
      while (i + 1 < argc && argv[i + 1][0] != '-') {
        opt.inventory.push_back(argv[++i]);
      }
    } else if (a == "--detach") {
      opt.detach = true;
    } else if (a == "--no-client") {
      opt.client = false;
    } else if (a == "--client" || a == "--outside-client") {
      const char* v = next();
      if (v == nullptr) {
        return usage();
      }
      (a == "--client" ? opt.clients : opt.outsideClients).push_back(v);
    } else {
      return usage();
    }
  }
  if (!validWorldName(opt.name) || opt.inventory.empty()) {
    std::fprintf(stderr, "veer-world up: --name [A-Za-z0-9_]{1,16} and --inventory needed\n");
    return usage();
  }
  if (auto st = readState(opt.name); st.ok() && processAlive(st->pid)) {
    return fail("world '" + opt.name + "' is already up (pid " + std::to_string(st->pid) + ")");
  }
  if (::mkdir(kStateRoot, 0755) != 0 && errno != EEXIST) {
    return fail(std::string("mkdir ") + kStateRoot + ": " + std::strerror(errno));
  }
  std::string dir = stateDir(opt.name);
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return fail("mkdir " + dir + ": " + std::strerror(errno));
  }
  ::unlink((dir + "/state").c_str());

  // Blocked before anything is built: a signal during setup tears down after setup.
  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) {
    sigaddset(&mask, sig);
  }
  if (::sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) {
    return fail(std::string("sigprocmask: ") + std::strerror(errno));
  }
  if (!opt.detach) {
    return runWorld(opt, -1);
  }

  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) {
    return fail(std::string("pipe2: ") + std::strerror(errno));
  }
  std::string logPath = dir + "/log";
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) {
    return fail(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    ::close(ready[0]);
    ::setsid();
    int log = ::open(logPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (log < 0 || null < 0 || ::dup2(null, 0) < 0 || ::dup2(log, 1) < 0 || ::dup2(log, 2) < 0) {
      ::_exit(1);
    }
    ::_exit(runWorld(opt, ready[1]));
  }
  ::close(ready[1]);
  char c = 0;
  ssize_t n;
  do {
    n = ::read(ready[0], &c, 1);
  } while (n < 0 && errno == EINTR);
  ::close(ready[0]);
  std::ifstream log(logPath);
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  if (n == 1 && c == 'R') {
    std::fputs(text.c_str(), stdout);
    return 0;
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  std::fputs(text.c_str(), stderr);
  return fail("world '" + opt.name + "' failed to come up (log: " + logPath + ")");
}

Result<std::string> nameArg(int argc, char** argv, int* consumed) {
  if (argc >= 2 && std::string(argv[0]) == "--name") {
    *consumed = 2;
    if (!validWorldName(argv[1])) {
      return Error{EINVAL, "bad world name '" + std::string(argv[1]) + "'"};
    }
    return std::string(argv[1]);
  }
  return Error{EINVAL, "--name NAME expected"};
}

int cmdDown(int argc, char** argv) {
  int used = 0;
  auto name = nameArg(argc, argv, &used);
  if (!name.ok() || used != argc) {
    return usage();
  }
  auto st = readState(*name);
  if (st.ok() && processAlive(st->pid)) {
    ::kill(st->pid, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    int backoffMs = 5;
    while (processAlive(st->pid) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(backoffMs));
      backoffMs = std::min(backoffMs * 2, 100);
    }
    if (processAlive(st->pid)) {
      std::fprintf(stderr, "veer-world: owner %d ignored SIGTERM; killing it\n", st->pid);
      ::kill(st->pid, SIGKILL);
    }
  }
  // Whatever the owner left (or everything, if it was SIGKILLed).
  auto s = World::cleanupStale(prefixFor(*name));
  std::error_code ec;
  std::filesystem::remove_all(stateDir(*name), ec); // state file and log
  if (!s.ok()) {
    return fail("down " + *name + ": " + s.error().message);
  }
  return 0;
}

/** `cgroup` (the world's cgroup) and `node-netns` (the node's netns file, where a
 * node-local daemon such as veer-proxy runs): one line from the world's state. */
int cmdShow(int argc, char** argv, bool nodeNetns) {
  int used = 0;
  auto name = nameArg(argc, argv, &used);
  if (!name.ok() || used != argc) {
    return usage();
  }
  auto st = readState(*name);
  if (!st.ok()) {
    return fail(st.error().message);
  }
  if (nodeNetns) {
    std::printf("/run/netns/%snode\n", st->prefix.c_str());
  } else {
    std::printf("%s\n", st->cgroup.c_str());
  }
  return 0;
}

int cmdPods(int argc, char** argv) {
  int used = 0;
  auto name = nameArg(argc, argv, &used);
  if (!name.ok() || used != argc) {
    return usage();
  }
  auto st = readState(*name);
  if (!st.ok()) {
    return fail(st.error().message);
  }
  for (const auto& p : st->pods) {
    std::printf("%s %s %s %s %s\n", p.name.c_str(), p.netns.c_str(), p.cgroup.c_str(),
                p.ipv4.c_str(), p.ipv6.c_str());
  }
  return 0;
}

int cmdExec(int argc, char** argv) {
  int used = 0;
  auto name = nameArg(argc, argv, &used);
  if (!name.ok()) {
    return usage();
  }
  bool joinCgroup = true;
  int i = used;
  if (i < argc && std::string(argv[i]) == "--no-cgroup") {
    joinCgroup = false;
    ++i;
  }
  if (i + 2 >= argc || std::string(argv[i + 1]) != "--") {
    return usage();
  }
  std::string podName = argv[i];
  char** cmd = argv + i + 2;
  auto st = readState(*name);
  if (!st.ok()) {
    return fail(st.error().message);
  }
  const PodState* pod = nullptr;
  for (const auto& p : st->pods) {
    if (p.name == podName) {
      pod = &p;
    }
  }
  if (pod == nullptr) {
    return fail("world '" + *name + "' has no pod '" + podName + "'");
  }
  std::string nsPath = "/run/netns/" + pod->netns;
  int nsFd = ::open(nsPath.c_str(), O_RDONLY | O_CLOEXEC);
  if (nsFd < 0) {
    return fail("open " + nsPath + ": " + std::strerror(errno));
  }
  if (::setns(nsFd, CLONE_NEWNET) != 0) {
    return fail("setns " + nsPath + ": " + std::strerror(errno));
  }
  ::close(nsFd);
  if (joinCgroup) {
    std::string procs = pod->cgroup + "/cgroup.procs";
    int fd = ::open(procs.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ::write(fd, "0", 1) != 1) {
      return fail("join " + procs + ": " + std::strerror(errno));
    }
    ::close(fd);
  }
  ::execvp(cmd[0], cmd);
  std::fprintf(stderr, "veer-world: exec %s: %s\n", cmd[0], std::strerror(errno));
  return 127;
}

} // namespace
} // namespace veer::test::cli

int main(int argc, char** argv) {
  using namespace veer::test::cli;
  if (argc < 2) {
    return usage();
  }
  std::string cmd = argv[1];
  if (cmd == "up") {
    return cmdUp(argc - 2, argv + 2);
  }
  if (cmd == "down") {
    return cmdDown(argc - 2, argv + 2);
  }
  if (cmd == "exec") {
    return cmdExec(argc - 2, argv + 2);
  }
  if (cmd == "cgroup") {
    return cmdShow(argc - 2, argv + 2, false);
  }
  if (cmd == "node-netns") {
    return cmdShow(argc - 2, argv + 2, true);
  }
  if (cmd == "pods") {
    return cmdPods(argc - 2, argv + 2);
  }
  return usage();
}
