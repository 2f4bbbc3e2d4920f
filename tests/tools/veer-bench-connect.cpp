// veer-bench-connect: the connect-path benchmark (issue 2), run by `make bench`.
//
// Connection-per-request HTTP (wrk -H 'Connection: close') from client pods of one
// World, six cases interleaved round by round, the order rotated each round so
// no case always runs right after the same other one (a,b,c,d  b,c,d,a  ...):
//
//   a  direct     pod "bench-direct" (cgroup OUTSIDE the attached one, no iptables)
//                 -> reviews-v1 10.244.1.21:9080. The baseline: no veer, no conntrack.
//   b  veer       pod "productpage-v1" (inside the attached cgroup) -> 10.96.0.20:9080,
//                 split 80/20 v1/v2 by veer (inventory + DestinationRule + 03-80-20).
//   c  iptables   pod "bench-iptables" (cgroup OUTSIDE the attached one, so veer never
//                 sees its connects) -> 10.96.0.20:9080, split 80/20 by iptables
//                 `-m statistic` DNAT in that pod's netns (the kube-proxy way).
//   d  direct+hook  productpage-v1 -> 10.244.1.21:9080: veer's connect4 runs and
//                 finds no service (what every other connection on the node pays).
//   e  affinity   productpage-v1 -> 10.96.0.25:9080 (reviews-sticky): v1/v2 at 100/0
//                 under consistentHash useSourceIp, pins on: the affinity path (client
//                 hash, cumulative slots, pin lookup and refresh) to reviews-v1.
//   f  no affinity  productpage-v1 -> 10.96.0.26:9080 (reviews-plain): the same service
//                 shape and split without affinity (sequence counter) to reviews-v1.
//                 e and f differ only in the affinity flag: one client pod, one backend
//                 reached in both, so e/f is the datapath cost alone (goal >= 0.98; the
//                 80/20 of case b would have e on one backend and b on two). The ratio
//                 is reported of the medians and as the median of per-round ratios.
//
// Case (a) runs from its own pod because iptables nat rules turn conntrack on for
// every connection of their netns, and because the baseline should carry no BPF.
// Reports per-case medians of requests/s, p50 and p99 and the ratios to (a); prints
// whether the goals (b/a rps >= 0.98, b/a p99 <= 1.05) were met but exits non-zero
// only on errors: setup failures, wrk failures, socket errors or non-2xx responses,
// or a veer split (from `veerctl status --json` counters) that is not 80/20.
//
// Environment: BENCH_ROUNDS (5), BENCH_SECONDS (5), BENCH_CONNECTIONS (8),
// BENCH_WARMUP_SECONDS (1; 0 disables the discarded warm-up round).
// Needs root. Never touches the caller's netns or cgroup: everything lives in the
// World, a private bpffs mount and a temporary directory, all removed at exit.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/files.h"
#include "datapath/maps.h"
#include "world/world.h"

extern char** environ;

namespace veer::test::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kServiceAddr = "10.96.0.20";
constexpr const char* kStickyAddr = "10.96.0.25";
constexpr uint16_t kPort = 9080;
constexpr const char* kV1Addr = "10.244.1.21";
constexpr const char* kV2Addr = "10.244.1.22";
constexpr double kV1Share = 0.8;
constexpr double kSplitTolerance = 0.03;
constexpr double kGoalRpsRatio = 0.98;
constexpr double kGoalP99Ratio = 1.05;
constexpr int kAgentReadySeconds = 30;

constexpr const char* kPlainAddr = "10.96.0.26";

/** Cases e and f: reviews' pods as one more service, v1/v2 at 100/0, affinity on or off. */
std::string oneBackendYaml(const std::string& name, const std::string& addr, bool affinity) {
  return "apiVersion: v1\nkind: Service\nmetadata: {name: " + name +
         ", namespace: default}\nspec:\n  clusterIP: " + addr +
         "\n  ports: [{name: http, port: 9080, protocol: TCP, targetPort: http}]\n"
         "  selector: {app: reviews}\n---\napiVersion: networking.istio.io/v1\n"
         "kind: DestinationRule\nmetadata: {name: " +
         name +
         ", namespace: default}\nspec:\n"
         "  host: " +
         name + "\n" +
         (affinity ? "  trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true}}}\n"
                   : "") +
         "  subsets:\n  - {name: v1, labels: {version: v1}}\n"
         "  - {name: v2, labels: {version: v2}}\n---\napiVersion: networking.istio.io/v1\n"
         "kind: VirtualService\nmetadata: {name: " +
         name +
         ", namespace: default}\nspec:\n"
         "  hosts: [" +
         name +
         "]\n  http:\n  - route:\n"
         "    - {destination: {host: " +
         name +
         ", subset: v1}, weight: 100}\n"
         "    - {destination: {host: " +
         name + ", subset: v2}, weight: 0}\n";
}

constexpr const char* kVeerClient = "productpage-v1"; // inventory client, inside the cgroup
constexpr const char* kDirectClient = "bench-direct";
constexpr const char* kIptablesClient = "bench-iptables";

// wrk's done() hook prints exact values (latency in microseconds) on one line.
constexpr const char* kWrkScript = R"lua(
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "VEER_BENCH requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
)lua";

volatile sig_atomic_t gStop = 0;

void onStopSignal(int) {
  gStop = 1;
}

struct Settings {
  int rounds = 5;
  int seconds = 5;
  int connections = 8;
  int warmupSeconds = 1;
  std::string binDir;     // veer-agent, veerctl, veer-testsrv
  std::string configsDir; // the repository's configs/
};

struct Case {
  char id;
  std::string label;
  std::string pod;
  std::string target;
};

struct Sample {
  double rps = 0;
  double p50Us = 0;
  double p99Us = 0;
  uint64_t requests = 0;
};

Result<int> envInt(const char* name, int fallback, int min) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    return fallback;
  }
  char* end = nullptr;
  errno = 0;
  long n = std::strtol(v, &end, 10);
  if (errno != 0 || *end != '\0' || n < min || n > 100000) {
    return Error{EINVAL,
                 std::string(name) + "='" + v + "': expected an integer >= " + std::to_string(min)};
  }
  return static_cast<int>(n);
}

Result<Settings> loadSettings() {
  Settings s;
  auto rounds = envInt("BENCH_ROUNDS", s.rounds, 1);
  auto seconds = envInt("BENCH_SECONDS", s.seconds, 1);
  auto conns = envInt("BENCH_CONNECTIONS", s.connections, 1);
  auto warmup = envInt("BENCH_WARMUP_SECONDS", s.warmupSeconds, 0);
  for (const Result<int>* r : {&rounds, &seconds, &conns, &warmup}) {
    if (!r->ok()) {
      return r->error();
    }
  }
  s.rounds = *rounds;
  s.seconds = *seconds;
  s.connections = *conns;
  s.warmupSeconds = *warmup;
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) {
    return Error{ec.value(), "readlink /proc/self/exe: " + ec.message()};
  }
  s.binDir = exe.parent_path().string();
  // build/bin/veer-bench-connect -> <repo>/configs
  s.configsDir = (exe.parent_path().parent_path().parent_path() / "configs").string();
  if (const char* c = std::getenv("VEER_CONFIGS"); c != nullptr && *c != '\0') {
    s.configsDir = c;
  }
  return s;
}

Status writeText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  if (!out) {
    return osError(errno, "create " + path);
  }
  out << text;
  out.close();
  if (!out) {
    return Error{EIO, "write " + path};
  }
  return {};
}

std::string joinArgv(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) {
    s += (s.empty() ? "" : " ") + a;
  }
  return s;
}

/** Starts argv in the caller's namespaces with stdout+stderr appended to logPath. */
Result<pid_t> spawnHost(const std::vector<std::string>& argv, const std::string& logPath) {
  posix_spawn_file_actions_t actions;
  if (int rc = posix_spawn_file_actions_init(&actions); rc != 0) {
    return osError(rc, "posix_spawn_file_actions_init");
  }
  int rc = posix_spawn_file_actions_addopen(&actions, 1, logPath.c_str(),
                                            O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (rc == 0) {
    rc = posix_spawn_file_actions_adddup2(&actions, 1, 2);
  }
  if (rc == 0) {
    rc = posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  }
  if (rc != 0) {
    posix_spawn_file_actions_destroy(&actions);
    return osError(rc, "posix_spawn_file_actions for " + argv[0]);
  }
  // Children start with default signal handling whatever the bench installed.
  posix_spawnattr_t attr;
  if (rc = posix_spawnattr_init(&attr); rc != 0) {
    posix_spawn_file_actions_destroy(&actions);
    return osError(rc, "posix_spawnattr_init");
  }
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  rc = posix_spawnattr_setsigdefault(&attr, &defaults);
  if (rc == 0) {
    rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
  }
  if (rc != 0) {
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
    return osError(rc, "posix_spawnattr for " + argv[0]);
  }
  std::vector<char*> args;
  for (const auto& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  pid_t pid = -1;
  rc = posix_spawn(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    return osError(rc, "spawn " + argv[0]);
  }
  return pid;
}

/** Runs argv to completion on the host; returns its exit code and combined output. */
Result<CommandResult> runHost(const std::vector<std::string>& argv, const std::string& logPath) {
  std::error_code ec;
  fs::remove(logPath, ec);
  auto pid = spawnHost(argv, logPath);
  if (!pid.ok()) {
    return pid.error();
  }
  int status = 0;
  while (::waitpid(*pid, &status, 0) < 0) {
    if (errno != EINTR) {
      return osError(errno, "waitpid for '" + joinArgv(argv) + "'");
    }
  }
  CommandResult r;
  r.exitCode = decodeStatus(status);
  auto out = readFile(logPath);
  if (!out.ok()) {
    return out.error();
  }
  r.out = *out;
  return r;
}

/** A scratch directory removed (recursively) at the end. */
class TempDir {
public:
  static Result<std::unique_ptr<TempDir>> create() {
    char tmpl[] = "/tmp/veer-bench-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
      return osError(errno, "mkdtemp /tmp/veer-bench-XXXXXX");
    }
    return std::unique_ptr<TempDir>(new TempDir(tmpl));
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
    if (ec) {
      std::fprintf(stderr, "veer-bench-connect: cleanup: remove %s: %s\n", path_.c_str(),
                   ec.message().c_str());
    }
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

/** A private bpffs mount, unmounted at the end. */
class BpffsMount {
public:
  static Result<std::unique_ptr<BpffsMount>> create(const std::string& dir) {
    if (::mkdir(dir.c_str(), 0700) != 0) {
      return osError(errno, "mkdir " + dir);
    }
    if (::mount("bpf", dir.c_str(), "bpf", 0, nullptr) != 0) {
      return osError(errno, "mount -t bpf bpf " + dir);
    }
    return std::unique_ptr<BpffsMount>(new BpffsMount(dir));
  }
  ~BpffsMount() {
    if (::umount2(dir_.c_str(), 0) != 0) {
      std::fprintf(stderr, "veer-bench-connect: cleanup: umount %s: %s; detaching\n", dir_.c_str(),
                   std::strerror(errno));
      (void)::umount2(dir_.c_str(), MNT_DETACH);
    }
  }
  BpffsMount(const BpffsMount&) = delete;
  BpffsMount& operator=(const BpffsMount&) = delete;
  const std::string& dir() const { return dir_; }

private:
  explicit BpffsMount(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

/** veer-agent attached to the world's cgroup; stopped and uninstalled at the end. */
class AgentProcess {
public:
  static Result<std::unique_ptr<AgentProcess>>
  start(const Settings& settings, const std::string& bpffs, const std::string& configDir,
        const std::string& cgroup, const std::string& workDir) {
    std::unique_ptr<AgentProcess> agent(new AgentProcess(settings.binDir, bpffs, workDir));
    auto pid = spawnHost({settings.binDir + "/veer-agent", "--config-dir", configDir, "--cgroup",
                          cgroup, "--bpffs", bpffs, "--metrics-listen", "off"},
                         agent->logPath());
    if (!pid.ok()) {
      return pid.error();
    }
    agent->pid_ = *pid;
    auto waited = runHost({settings.binDir + "/veerctl", "--bpffs", bpffs, "wait", configDir,
                           "--timeout", std::to_string(kAgentReadySeconds)},
                          workDir + "/veerctl-wait.log");
    if (!waited.ok()) {
      return waited.error();
    }
    if (waited->exitCode != 0) {
      auto log = readFile(agent->logPath());
      return Error{0, "veerctl wait " + configDir + " exited " + std::to_string(waited->exitCode) +
                          ": " + waited->out + "agent log:\n" +
                          (log.ok() ? *log : log.error().message)};
    }
    return agent;
  }

  ~AgentProcess() {
    if (pid_ > 0) {
      stop();
    }
    auto r = runHost({binDir_ + "/veer-agent", "--uninstall", "--bpffs", bpffs_},
                     workDir_ + "/uninstall.log");
    if (!r.ok()) {
      std::fprintf(stderr, "veer-bench-connect: cleanup: uninstall: %s\n",
                   r.error().message.c_str());
    } else if (r->exitCode != 0) {
      std::fprintf(stderr, "veer-bench-connect: cleanup: veer-agent --uninstall exited %d: %s\n",
                   r->exitCode, r->out.c_str());
    }
  }
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;

  std::string logPath() const { return workDir_ + "/agent.log"; }

  /** True while the agent process has not exited. */
  bool alive() {
    if (pid_ <= 0) {
      return false;
    }
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return false;
    }
    return true;
  }

  /** `veerctl status --json`. */
  Result<nlohmann::json> status() const {
    auto r = runHost({binDir_ + "/veerctl", "--bpffs", bpffs_, "status", "--json"},
                     workDir_ + "/veerctl-status.log");
    if (!r.ok()) {
      return r.error();
    }
    if (r->exitCode != 0) {
      return Error{0,
                   "veerctl status --json exited " + std::to_string(r->exitCode) + ": " + r->out};
    }
    try {
      return nlohmann::json::parse(r->out);
    } catch (const nlohmann::json::exception& e) {
      return Error{EPROTO, std::string("veerctl status --json: ") + e.what()};
    }
  }

private:
  AgentProcess(std::string binDir, std::string bpffs, std::string workDir)
      : binDir_(std::move(binDir)), bpffs_(std::move(bpffs)), workDir_(std::move(workDir)) {}

  void stop() {
    if (::kill(pid_, SIGTERM) != 0) {
      std::fprintf(stderr, "veer-bench-connect: cleanup: kill agent %d: %s\n", pid_,
                   std::strerror(errno));
    }
    auto deadline = Clock::now() + std::chrono::seconds(5);
    int status = 0;
    for (;;) {
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_ || (r < 0 && errno != EINTR)) {
        break;
      }
      if (Clock::now() >= deadline) {
        std::fprintf(stderr, "veer-bench-connect: cleanup: agent ignored SIGTERM; SIGKILL\n");
        ::kill(pid_, SIGKILL);
        (void)::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = -1;
  }

  std::string binDir_;
  std::string bpffs_;
  std::string workDir_;
  pid_t pid_ = -1;
};

/** Per-subset connect counters of the service at address (e.g. "10.96.0.20:9080", tcp). */
Result<std::map<std::string, uint64_t>> serviceConnects(const nlohmann::json& status,
                                                        const std::string& address) {
  try {
    for (const auto& svc : status.at("services")) {
      if (svc.at("address").get<std::string>() != address ||
          svc.at("protocol").get<std::string>() != "tcp") {
        continue;
      }
      std::map<std::string, uint64_t> out;
      for (const auto& v : svc.at("versions")) {
        out[v.at("subset").get<std::string>()] += v.at("connects").get<uint64_t>();
      }
      return out;
    }
  } catch (const nlohmann::json::exception& e) {
    return Error{EPROTO, std::string("veerctl status --json: unexpected shape: ") + e.what()};
  }
  return Error{ENOENT, "veerctl status: no tcp service " + address + " is live"};
}

/** Parses "key=value" fields of wrk's VEER_BENCH line. */
Result<std::map<std::string, double>> parseWrk(const std::string& out) {
  auto pos = out.find("VEER_BENCH ");
  if (pos == std::string::npos) {
    return Error{EPROTO, "no VEER_BENCH line in wrk output"};
  }
  auto end = out.find('\n', pos);
  std::istringstream line(out.substr(pos, end == std::string::npos ? end : end - pos));
  std::string field;
  line >> field; // VEER_BENCH
  std::map<std::string, double> kv;
  while (line >> field) {
    auto eq = field.find('=');
    if (eq == std::string::npos) {
      return Error{EPROTO, "bad wrk field '" + field + "'"};
    }
    char* numEnd = nullptr;
    double v = std::strtod(field.c_str() + eq + 1, &numEnd);
    if (numEnd == field.c_str() + eq + 1 || *numEnd != '\0') {
      return Error{EPROTO, "bad wrk field '" + field + "'"};
    }
    kv[field.substr(0, eq)] = v;
  }
  for (const char* key : {"requests", "duration_us", "connect", "read", "write", "status",
                          "timeout", "p50_us", "p99_us"}) {
    if (kv.count(key) == 0) {
      return Error{EPROTO, std::string("wrk output lacks ") + key};
    }
  }
  return kv;
}

/** One wrk run; any socket error, timeout or non-2xx response is an error. */
Result<Sample> runWrk(World& world, const Settings& settings, const Case& c, int seconds,
                      const std::string& scriptPath) {
  std::vector<std::string> argv{"wrk",
                                "-t1",
                                "-c" + std::to_string(settings.connections),
                                "-d" + std::to_string(seconds) + "s",
                                "--timeout",
                                "2s",
                                "-H",
                                "Connection: close",
                                "-s",
                                scriptPath,
                                "http://" + c.target + "/"};
  std::string what = "case " + std::string(1, c.id) + " (" + joinArgv(argv) + " in " + c.pod + ")";
  auto r = world.run(c.pod, argv, std::chrono::milliseconds((seconds + 30) * 1000));
  if (!r.ok()) {
    return Error{r.error().code, what + ": " + r.error().message};
  }
  if (r->exitCode != 0) {
    return Error{0, what + ": exited " + std::to_string(r->exitCode) + ": " + r->err + r->out};
  }
  auto kv = parseWrk(r->out);
  if (!kv.ok()) {
    return Error{kv.error().code, what + ": " + kv.error().message + "; output: " + r->out};
  }
  auto& m = *kv;
  double errors = m["connect"] + m["read"] + m["write"] + m["timeout"];
  if (errors > 0 || m["status"] > 0) {
    return Error{EIO, what + ": wrk reported errors: connect " + std::to_string(int(m["connect"])) +
                          ", read " + std::to_string(int(m["read"])) + ", write " +
                          std::to_string(int(m["write"])) + ", timeout " +
                          std::to_string(int(m["timeout"])) + ", non-2xx " +
                          std::to_string(int(m["status"]))};
  }
  if (m["requests"] <= 0 || m["duration_us"] <= 0) {
    return Error{EIO, what + ": no requests completed"};
  }
  Sample s;
  s.requests = static_cast<uint64_t>(m["requests"]);
  s.rps = m["requests"] / (m["duration_us"] / 1e6);
  s.p50Us = m["p50_us"];
  s.p99Us = m["p99_us"];
  return s;
}

/** Run time and count of the attached veer_connect4 (bpf_stats; both 0 while stats are off). */
struct ProgStats {
  uint64_t runTimeNs = 0;
  uint64_t runCnt = 0;
};

Result<ProgStats> connect4Stats(const std::string& bpffs) {
  const std::string pin = linkPinDir(bpffs) + "/veer_connect4";
  Fd link(bpf_obj_get(pin.c_str()));
  if (!link) {
    return osError(errno, "open link " + pin);
  }
  bpf_link_info li{};
  uint32_t len = sizeof(li);
  if (bpf_obj_get_info_by_fd(link.get(), &li, &len) != 0) {
    return osError(errno, "link info " + pin);
  }
  Fd prog(bpf_prog_get_fd_by_id(li.prog_id));
  if (!prog) {
    return osError(errno, "open prog of " + pin);
  }
  bpf_prog_info pi{};
  len = sizeof(pi);
  if (bpf_obj_get_info_by_fd(prog.get(), &pi, &len) != 0) {
    return osError(errno, "prog info of " + pin);
  }
  return ProgStats{pi.run_time_ns, pi.run_cnt};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/** Checks that the service answers from the expected versions before measuring. */
Status smokeTest(World& world, const std::string& pod, const std::string& addr,
                 const std::string& what) {
  constexpr int kProbes = 20;
  auto r = world.httpGetMany(pod, addr, kPort, kProbes);
  if (!r.ok()) {
    return Error{r.error().code, what + ": " + r.error().message};
  }
  std::map<std::string, int> seen;
  for (const auto& h : *r) {
    if (!h.ok || h.status != 200) {
      return Error{h.err, what + ": GET http://" + addr + ":" + std::to_string(kPort) + "/ from " +
                              pod + " failed at " + h.step + " (status " +
                              std::to_string(h.status) + ")"};
    }
    seen[h.body]++;
  }
  for (const auto& [body, n] : seen) {
    if (body != "v1\n" && body != "v2\n") {
      return Error{EPROTO, what + ": unexpected answer '" + body + "'"};
    }
  }
  return {};
}

Status installIptablesSplit(World& world, const std::string& pod) {
  const std::string dport = std::to_string(kPort);
  const std::string v1 = std::string(kV1Addr) + ":" + dport;
  const std::string v2 = std::string(kV2Addr) + ":" + dport;
  // kube-proxy style: the first rule takes 80% of new connections, the rest fall through.
  const std::vector<std::vector<std::string>> rules = {
      {"iptables",
       "-w",
       "-t",
       "nat",
       "-A",
       "OUTPUT",
       "-d",
       kServiceAddr,
       "-p",
       "tcp",
       "--dport",
       dport,
       "-m",
       "statistic",
       "--mode",
       "random",
       "--probability",
       "0.8",
       "-j",
       "DNAT",
       "--to-destination",
       v1},
      {"iptables", "-w", "-t", "nat", "-A", "OUTPUT", "-d", kServiceAddr, "-p", "tcp", "--dport",
       dport, "-j", "DNAT", "--to-destination", v2},
  };
  for (const auto& rule : rules) {
    auto r = world.run(pod, rule);
    if (!r.ok()) {
      return Error{r.error().code, "iptables in " + pod + ": " + r.error().message};
    }
    if (r->exitCode != 0) {
      return Error{0, "'" + joinArgv(rule) + "' in " + pod + " exited " +
                          std::to_string(r->exitCode) + ": " + r->err};
    }
  }
  return {};
}

std::string ratioText(double num, double den) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3f", den > 0 ? num / den : 0.0);
  return buf;
}

int fail(const std::string& message) {
  std::fprintf(stderr, "veer-bench-connect: error: %s\n", message.c_str());
  return 1;
}

int runBench() {
  auto settings = loadSettings();
  if (!settings.ok()) {
    return fail(settings.error().message);
  }
  const Settings& cfg = *settings;
  ::setenv("VEER_TESTSRV", (cfg.binDir + "/veer-testsrv").c_str(), 0);

  auto tmp = TempDir::create();
  if (!tmp.ok()) {
    return fail(tmp.error().message);
  }
  const std::string work = (*tmp)->path();
  const std::string configDir = work + "/config";
  if (::mkdir(configDir.c_str(), 0755) != 0) {
    return fail(osError(errno, "mkdir " + configDir).message);
  }
  for (const char* rel : {"bookinfo/inventory.yaml", "001-istio-canary/destination-rule.yaml",
                          "001-istio-canary/steps/03-80-20.yaml"}) {
    fs::path from = fs::path(cfg.configsDir) / rel;
    std::error_code ec;
    fs::copy_file(from, fs::path(configDir) / from.filename(), ec);
    if (ec) {
      return fail("copy " + from.string() + " to " + configDir + ": " + ec.message());
    }
  }
  if (auto s = writeText(configDir + "/sticky.yaml",
                         oneBackendYaml("reviews-sticky", kStickyAddr, true) + "---\n" +
                             oneBackendYaml("reviews-plain", kPlainAddr, false));
      !s.ok()) {
    return fail(s.error().message);
  }
  const std::string scriptPath = work + "/report.lua";
  if (auto s = writeText(scriptPath, kWrkScript); !s.ok()) {
    return fail(s.error().message);
  }

  auto world = World::create();
  if (!world.ok()) {
    return fail("world: " + world.error().message);
  }
  World& w = **world;
  const std::vector<PodSpec> pods = {
      {"reviews-v1", {kV1Addr}, {}, false},
      {"reviews-v2", {kV2Addr}, {}, false},
      {kVeerClient, {"10.244.1.10"}, {}, false},
      {kDirectClient, {"10.244.1.11"}, {}, true},
      {kIptablesClient, {"10.244.1.12"}, {}, true, /*serviceRangesViaNode=*/true},
  };
  for (const auto& pod : pods) {
    if (auto s = w.addPod(pod); !s.ok()) {
      return fail("add pod " + pod.name + ": " + s.error().message);
    }
  }
  // Each case opens ~100k connections from a client pod in 5 s, and four cases share the
  // veer client's ports: without reuse, its TIME_WAIT sockets exhausted the ephemeral
  // range and later cases slowed to a crawl (616 req/s rounds), biasing every ratio
  // against the cases that ran from that pod. Set in each client pod's own netns only.
  for (const char* pod : {kVeerClient, kDirectClient, kIptablesClient}) {
    auto r = w.run(pod, {"sysctl", "-q", "-w", "net.ipv4.tcp_tw_reuse=1",
                         "net.ipv4.ip_local_port_range=1024 65535"});
    if (!r.ok() || r->exitCode != 0) {
      return fail(std::string("sysctl in ") + pod + ": " + (r.ok() ? r->err : r.error().message));
    }
  }
  std::vector<Process> servers;
  for (const auto& [pod, version] : {std::pair{"reviews-v1", "v1"}, {"reviews-v2", "v2"}}) {
    auto srv = w.startTestServer(pod, version, {kPort});
    if (!srv.ok()) {
      return fail("testsrv in " + std::string(pod) + ": " + srv.error().message);
    }
    servers.push_back(std::move(*srv));
  }
  if (auto s = installIptablesSplit(w, kIptablesClient); !s.ok()) {
    return fail(s.error().message);
  }

  auto bpffs = BpffsMount::create(work + "/bpffs");
  if (!bpffs.ok()) {
    return fail(bpffs.error().message);
  }
  auto agent = AgentProcess::start(cfg, (*bpffs)->dir(), configDir, w.cgroupRoot(), work);
  if (!agent.ok()) {
    return fail("agent: " + agent.error().message);
  }

  const std::string service = std::string(kServiceAddr) + ":" + std::to_string(kPort);
  const std::string direct = std::string(kV1Addr) + ":" + std::to_string(kPort);
  const std::string sticky = std::string(kStickyAddr) + ":" + std::to_string(kPort);
  const std::string plain = std::string(kPlainAddr) + ":" + std::to_string(kPort);
  const std::vector<Case> cases = {
      {'a', "direct (no veer)", kDirectClient, direct},
      {'b', "veer 80/20", kVeerClient, service},
      {'c', "iptables 80/20", kIptablesClient, service},
      {'d', "direct, veer hook", kVeerClient, direct},
      {'e', "veer v1, affinity", kVeerClient, sticky},
      {'f', "veer v1, no affinity", kVeerClient, plain},
  };
  if (auto s = smokeTest(w, kVeerClient, kServiceAddr, "veer smoke test"); !s.ok()) {
    return fail(s.error().message);
  }
  if (auto s = smokeTest(w, kIptablesClient, kServiceAddr, "iptables smoke test"); !s.ok()) {
    return fail(s.error().message);
  }
  for (const auto& [addr, what] : {std::pair{kStickyAddr, "affinity smoke test"},
                                   std::pair{kPlainAddr, "v1-only smoke test"}}) {
    if (auto s = smokeTest(w, kVeerClient, addr, what); !s.ok()) {
      return fail(s.error().message);
    }
  }

  std::printf("veer connect-path benchmark: wrk -t1 -c%d -d%ds -H 'Connection: close', "
              "%d rounds, cases interleaved, order rotated each round\n",
              cfg.connections, cfg.seconds, cfg.rounds);
  for (const auto& c : cases) {
    std::printf("  %c  %-18s %-15s -> %s\n", c.id, c.label.c_str(), c.pod.c_str(),
                c.target.c_str());
  }
  std::printf("  (a, c: pods outside the attached cgroup; c has the iptables DNAT rules)\n\n");
  std::fflush(stdout);

  if (cfg.warmupSeconds > 0) {
    for (const auto& c : cases) {
      auto s = runWrk(w, cfg, c, cfg.warmupSeconds, scriptPath);
      if (gStop) {
        return fail("interrupted");
      }
      if (!s.ok()) {
        return fail("warm-up: " + s.error().message);
      }
    }
  }

  auto before = (*agent)->status();
  if (!before.ok()) {
    return fail(before.error().message);
  }
  auto connectsBefore = serviceConnects(*before, service);
  if (!connectsBefore.ok()) {
    return fail(connectsBefore.error().message);
  }
  auto stickyBefore = serviceConnects(*before, sticky);
  if (!stickyBefore.ok()) {
    return fail(stickyBefore.error().message);
  }
  auto plainBefore = serviceConnects(*before, plain);
  if (!plainBefore.ok()) {
    return fail(plainBefore.error().message);
  }

  std::map<char, std::vector<Sample>> samples;
  std::map<char, std::vector<double>> nsPerRun; // veer_connect4 ns per run, while bpf_stats are on
  std::printf("%-5s %-4s %10s %10s %10s\n", "round", "case", "req/s", "p50 (us)", "p99 (us)");
  for (int round = 1; round <= cfg.rounds; ++round) {
    for (size_t k = 0; k < cases.size(); ++k) {
      const auto& c = cases[(k + round - 1) % cases.size()];
      auto stats0 = connect4Stats((*bpffs)->dir());
      auto s = runWrk(w, cfg, c, cfg.seconds, scriptPath);
      auto stats1 = connect4Stats((*bpffs)->dir());
      if (!stats0.ok() || !stats1.ok()) {
        return fail((stats0.ok() ? stats1 : stats0).error().message);
      }
      if (const uint64_t runs = stats1->runCnt - stats0->runCnt; runs > 0) {
        nsPerRun[c.id].push_back(static_cast<double>(stats1->runTimeNs - stats0->runTimeNs) /
                                 static_cast<double>(runs));
      }
      if (gStop) {
        return fail("interrupted");
      }
      if (!s.ok()) {
        return fail(s.error().message);
      }
      if (!(*agent)->alive()) {
        auto log = readFile((*agent)->logPath());
        return fail("veer-agent exited during the run; its log:\n" +
                    (log.ok() ? *log : log.error().message));
      }
      std::printf("%-5d %-4c %10.0f %10.0f %10.0f\n", round, c.id, s->rps, s->p50Us, s->p99Us);
      std::fflush(stdout);
      samples[c.id].push_back(*s);
    }
  }

  auto after = (*agent)->status();
  if (!after.ok()) {
    return fail(after.error().message);
  }
  auto connectsAfter = serviceConnects(*after, service);
  if (!connectsAfter.ok()) {
    return fail(connectsAfter.error().message);
  }
  auto stickyAfter = serviceConnects(*after, sticky);
  if (!stickyAfter.ok()) {
    return fail(stickyAfter.error().message);
  }
  auto plainAfter = serviceConnects(*after, plain);
  if (!plainAfter.ok()) {
    return fail(plainAfter.error().message);
  }

  std::map<char, Sample> med;
  for (const auto& c : cases) {
    std::vector<double> rps, p50, p99;
    for (const auto& s : samples[c.id]) {
      rps.push_back(s.rps);
      p50.push_back(s.p50Us);
      p99.push_back(s.p99Us);
    }
    med[c.id] = Sample{median(rps), median(p50), median(p99), 0};
  }
  const Sample& base = med['a'];
  std::printf("\nMedians over %d rounds (ratios to case a)\n", cfg.rounds);
  std::printf("%-24s %10s %10s %10s %9s %9s\n", "case", "req/s", "p50 (us)", "p99 (us)", "rps/a",
              "p99/a");
  for (const auto& c : cases) {
    const Sample& m = med[c.id];
    std::printf("%c %-22s %10.0f %10.0f %10.0f %9s %9s\n", c.id, c.label.c_str(), m.rps, m.p50Us,
                m.p99Us, ratioText(m.rps, base.rps).c_str(),
                ratioText(m.p99Us, base.p99Us).c_str());
  }

  double rpsRatio = base.rps > 0 ? med['b'].rps / base.rps : 0;
  double p99Ratio = base.p99Us > 0 ? med['b'].p99Us / base.p99Us : 0;
  std::printf("\nGoal b/a rps >= %.2f: %.3f %s\n", kGoalRpsRatio, rpsRatio,
              rpsRatio >= kGoalRpsRatio ? "met" : "MISSED");
  std::printf("Goal b/a p99 <= %.2f: %.3f %s\n", kGoalP99Ratio, p99Ratio,
              p99Ratio <= kGoalP99Ratio ? "met" : "MISSED");
  std::printf("(c/a rps %s, p99 %s: the iptables way, for comparison)\n",
              ratioText(med['c'].rps, base.rps).c_str(),
              ratioText(med['c'].p99Us, base.p99Us).c_str());
  // Affinity on vs off: the ratio of the medians, and the median of the
  // per-round ratios (e and f of one round ran minutes apart at most, so
  // pairing them cancels load that drifts between rounds).
  std::vector<double> perRound;
  for (size_t i = 0; i < samples['e'].size() && i < samples['f'].size(); ++i) {
    perRound.push_back(samples['e'][i].rps / samples['f'][i].rps);
  }
  const double affinityRatio = med['f'].rps > 0 ? med['e'].rps / med['f'].rps : 0;
  std::printf("Goal e/f rps >= %.2f (affinity on vs off, one backend): %.3f %s; median of "
              "per-round e/f %.3f; e/f p50 %s, p99 %s\n",
              kGoalRpsRatio, affinityRatio, affinityRatio >= kGoalRpsRatio ? "met" : "MISSED",
              median(perRound), ratioText(med['e'].p50Us, med['f'].p50Us).c_str(),
              ratioText(med['e'].p99Us, med['f'].p99Us).c_str());

  // The datapath alone: veer_connect4's own run time per connect (kernel
  // bpf_stats, which the bench reads but never switches on).
  if (nsPerRun['e'].empty() || nsPerRun['f'].empty()) {
    std::printf("veer_connect4 ns per run: bpf_stats off (sysctl kernel.bpf_stats_enabled=1 "
                "during the run shows the program's own cost per case)\n");
  } else {
    std::printf("veer_connect4 ns per run (median over rounds):");
    for (char id : {'b', 'd', 'e', 'f'}) {
      std::printf(" %c %.0f", id, median(nsPerRun[id]));
    }
    std::printf("; e/f %.3f\n", median(nsPerRun['e']) / median(nsPerRun['f']));
  }

  // The split is real: veer counted the measured connections, about 80/20.
  uint64_t v1 = (*connectsAfter)["v1"] - (*connectsBefore)["v1"];
  uint64_t v2 = (*connectsAfter)["v2"] - (*connectsBefore)["v2"];
  uint64_t requestsB = 0;
  for (const auto& s : samples['b']) {
    requestsB += s.requests;
  }
  double share = v1 + v2 > 0 ? static_cast<double>(v1) / static_cast<double>(v1 + v2) : 0;
  std::printf("\nveer split during case b: v1 %llu, v2 %llu connects (v1 %.1f%%), wrk requests "
              "%llu\n",
              static_cast<unsigned long long>(v1), static_cast<unsigned long long>(v2), share * 100,
              static_cast<unsigned long long>(requestsB));
  if (v1 + v2 < requestsB) {
    return fail("veer counted fewer connects (" + std::to_string(v1 + v2) +
                ") than case b made requests (" + std::to_string(requestsB) +
                "): connections bypassed veer");
  }
  if (std::fabs(share - kV1Share) > kSplitTolerance) {
    return fail("veer split is not 80/20: v1 got " + std::to_string(share * 100) + "%");
  }
  std::printf("split ok (80/20 within %.0f points)\n", kSplitTolerance * 100);

  // Cases e and f reached the same one version (v1, one backend), every
  // connection through veer.
  for (const auto& [id, before, after, what] :
       {std::tuple{'e', &*stickyBefore, &*stickyAfter, "affinity"},
        std::tuple{'f', &*plainBefore, &*plainAfter, "no affinity"}}) {
    uint64_t connects = 0, requests = 0;
    for (const auto& [subset, n] : *after) {
      const uint64_t d = n - (*before)[subset];
      connects += d;
      if (d > 0 && subset != "v1") {
        return fail(std::string("case ") + id + ": " + std::to_string(d) + " connects on " +
                    subset + "; expected v1 only");
      }
    }
    for (const auto& s : samples[id]) {
      requests += s.requests;
    }
    if (connects < requests) {
      return fail(std::string("case ") + id + ": veer counted " + std::to_string(connects) +
                  " connects for " + std::to_string(requests) + " requests");
    }
    std::printf("case %c ok (%s: %llu connects, all on v1)\n", id, what,
                static_cast<unsigned long long>(connects));
  }
  return 0;
}

} // namespace
} // namespace veer::test::bench

int main() {
  struct sigaction sa {};
  sa.sa_handler = veer::test::bench::onStopSignal;
  sigemptyset(&sa.sa_mask);
  if (::sigaction(SIGINT, &sa, nullptr) != 0 || ::sigaction(SIGTERM, &sa, nullptr) != 0) {
    std::perror("veer-bench-connect: sigaction");
    return 1;
  }
  if (::geteuid() != 0) {
    std::fprintf(stderr, "veer-bench-connect: needs root (netns, cgroups, BPF)\n");
    return 1;
  }
  return veer::test::bench::runBench();
}
