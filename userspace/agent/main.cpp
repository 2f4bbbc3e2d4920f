// veer-agent: loads and pins the datapath, attaches it to a cgroup, applies
// the config directory and re-applies it whenever it changes.

#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <optional>
#include <set>
#include <string>

#include "agent/proxy_supervisor.h"
#include "common/version.h"
#include "compiler/pipeline.h"
#include "datapath/datapath.h"
#include "datapath/lanes.h"
#include "datapath/mounts.h"
#include "datapath/recycle.h"
#include "proxy/router.h"

namespace veer {
namespace {

namespace fs = std::filesystem;

constexpr int kQuietMs = 100; // batch a burst of file events (an editor, a ConfigMap swap)
constexpr int kResyncMs = 1000; // how soon a lane pod's new cgroup is found

constexpr uint32_t kWatchMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE |
                                IN_DELETE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;

/** Watches a config directory and its subdirectories (including ConfigMap "..data" swaps). */
class DirWatch {
public:
  explicit DirWatch(std::string dir) : dir_(std::move(dir)), fd_(inotify_init1(IN_CLOEXEC | IN_NONBLOCK)) {}

  Status init() {
    if (!fd_) {
      return osError(errno, "inotify_init1");
    }
    return rearm();
  }

  int fd() const { return fd_.get(); }

  /** Watches every directory under dir_ (following symlinks), including ones made since. */
  Status rearm() {
    std::error_code ec;
    std::set<std::string> dirs = {dir_};
    for (auto it = fs::recursive_directory_iterator(
             dir_, fs::directory_options::follow_directory_symlink, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_directory(ec)) {
        dirs.insert(it->path().string());
      }
    }
    for (const std::string& d : dirs) {
      if (inotify_add_watch(fd_.get(), d.c_str(), kWatchMask) < 0 && errno != ENOENT) {
        return osError(errno, "inotify_add_watch " + d);
      }
    }
    return {};
  }

  /** Drains pending events; true if there were any. */
  bool drain() {
    alignas(inotify_event) char buf[16384];
    bool any = false;
    while (read(fd_.get(), buf, sizeof(buf)) > 0) {
      any = true;
    }
    return any;
  }

private:
  std::string dir_;
  Fd fd_;
};

bool sameLanes(const std::vector<std::pair<veer_lane_key, veer_lane>>& a,
               const std::vector<std::pair<veer_lane_key, veer_lane>>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const auto& x, const auto& y) {
    return x.first.cgroup_id == y.first.cgroup_id && x.second.id == y.second.id;
  });
}

class Agent {
public:
  Agent(std::string configDir, std::string cgroup, Datapath& dp, Recycler* recycler,
        ProxySupervisor* proxy, proxy::RouteOptions routeOptions)
      : configDir_(std::move(configDir)), cgroup_(std::move(cgroup)), dp_(dp),
        recycler_(recycler), proxy_(proxy), routeOptions_(std::move(routeOptions)) {}

  /** Builds and applies the config; a bad config is logged and the live one kept. */
  void reload() {
    BuildResult built = buildFromPaths({configDir_}, {.maglev = &maglev_});
    for (const Diagnostic& d : built.diags) {
      if (d.severity == Diagnostic::Severity::kError) {
        spdlog::error("{}", d.format());
      } else {
        spdlog::warn("{}", d.format());
      }
    }
    if (!built.ok()) {
      spdlog::error("config in {} rejected; the last good config keeps serving", configDir_);
      reject();
      return;
    }
    if (proxy_) {
      // The proxy first: once the maps flip, L7 services may reach it with
      // the new config's routes.
      std::shared_ptr<proxy::RouteTable> table =
          proxy::RouteTable::fromPlan(built.plan, *built.config, routeOptions_);
      if (Status s = proxy_->publish(table->toJson()); !s) {
        spdlog::error("veer-proxy: {}; L7 services take the kernel path meanwhile",
                      s.error().message);
      }
    }
    std::optional<MapImage> lastGood = std::move(image_);
    image_ = std::move(built.image);
    if (!apply(true)) {
      image_ = std::move(lastGood); // what resync keeps re-applying
      return;
    }
    if (plan_) {
      schedule(planRecycling(*plan_, built.plan));
    }
    plan_ = std::move(built.plan);
  }

  /** Milliseconds until the next recycling is due (-1: none pending). */
  int nextDueMs() const {
    if (pending_.empty()) {
      return -1;
    }
    auto due = std::min_element(pending_.begin(), pending_.end(),
                                [](const auto& a, const auto& b) { return a.first < b.first; });
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
        due->first - std::chrono::steady_clock::now());
    return static_cast<int>(std::max<int64_t>(0, ms.count()));
  }

  /** Runs the recycling whose grace has passed. */
  void recycleDue() {
    const auto now = std::chrono::steady_clock::now();
    RecycleTargets due;
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->first <= now) {
        due.insert(due.end(), it->second.begin(), it->second.end());
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
    if (!due.empty()) {
      recycle(due, "after the grace period");
    }
  }

  /**
   * Re-finds the lane pods' cgroups (pods start and stop without a config
   * change: a cgroup appears after its Pod object) and re-applies the last good
   * config when they moved.
   */
  void resync() {
    if (image_ && !image_->laneClients.empty()) {
      apply(false);
    }
  }

private:
  void schedule(RecyclePlan plan) {
    if (plan.empty()) {
      return;
    }
    if (recycler_ == nullptr) {
      spdlog::warn("this change makes existing sockets stale, but socket recycling is "
                   "off or unavailable; they stay where they are");
      return;
    }
    if (!plan.now.empty()) {
      recycle(plan.now, "now (UDP peers that left their service)");
    }
    if (!plan.byClient.empty() && !recycler_->seesClients()) {
      for (const std::string& svc : plan.byClient) {
        spdlog::warn("{} has session affinity: its weight change leaves existing connections "
                     "where they are; closing those whose client's hash moved needs the "
                     "bpf_sock_destroy iterators (Linux >= 6.5), and this node recycles with "
                     "{}",
                     svc, recycler_->modeName());
      }
      for (auto& [grace, targets] : plan.later) {
        std::erase_if(targets, [](const auto& t) { return t.first.kind == VEER_RECYCLE_AFFINITY; });
      }
      std::erase_if(plan.later, [](const auto& l) { return l.second.empty(); });
    }
    for (auto& [grace, targets] : plan.later) {
      spdlog::info("recycling sockets of {} target(s) (backends, affinity services) in {}s",
                   targets.size(), grace);
      pending_.emplace_back(std::chrono::steady_clock::now() + std::chrono::seconds(grace),
                            std::move(targets));
    }
  }

  void recycle(const RecycleTargets& targets, const char* when) {
    Result<RecycleCount> n = recycler_->run(targets);
    if (!n) {
      spdlog::error("socket recycling failed: {}", n.error().message);
      return;
    }
    spdlog::info("recycled {}: destroyed {} TCP and {} UDP socket(s) for {} target(s) across {} "
                 "network namespace(s)",
                 when, n->tcp, n->udp, targets.size(), n->netns);
  }

  /** True when the datapath now runs image_ (applied, or already live). */
  bool apply(bool logUnchanged) {
    std::vector<std::string> unmatched;
    image_->lanes = laneCgroups(cgroup_, image_->laneClients, &unmatched);
    const uint64_t digest = image_->digest();
    Result<veer_state> live = dp_.maps().state();
    if (live && live->applied && live->digest == digest && lanesApplied_ &&
        sameLanes(*lanesApplied_, image_->lanes)) {
      if (logUnchanged) {
        spdlog::info("config unchanged (digest {:016x}), nothing to apply", digest);
      }
      return true;
    }
    if (Status s = dp_.maps().apply(*image_); !s) {
      spdlog::error("apply failed, the last good config keeps serving: {}", s.error().message);
      reject();
      return false;
    }
    lanesApplied_ = image_->lanes;
    spdlog::info("applied config digest {:016x}: {} service ports, {} versions, {} backends, "
                 "{} lane pods in {} cgroups",
                 digest, image_->services.size(), image_->versions.size(),
                 image_->backends.size(), image_->laneClients.size(), image_->lanes.size());
    for (const std::string& pod : unmatched) {
      spdlog::info("lane pod {} has no cgroup under {} yet; its connections get the weights",
                   pod, cgroup_);
    }
    return true;
  }

  void reject() {
    if (Status s = dp_.maps().countRejected(); !s) {
      spdlog::warn("{}", s.error().message);
    }
  }

  std::string configDir_;
  std::string cgroup_;
  Datapath& dp_;
  Recycler* recycler_; // null when the kernel cannot destroy sockets
  std::optional<MapImage> image_; // the last good config
  std::optional<Plan> plan_;      // its plan, to see what the next one makes stale
  std::vector<std::pair<std::chrono::steady_clock::time_point, RecycleTargets>> pending_;
  std::optional<std::vector<std::pair<veer_lane_key, veer_lane>>> lanesApplied_;
  ProxySupervisor* proxy_; // null without --proxy-listen
  proxy::RouteOptions routeOptions_;
  MaglevCache maglev_; // rings of the last build: an apply recomputes only changed versions'
};

/** "10.0.0.1:15001" or "[fd00::1]:15001". */
std::optional<std::pair<IpAddr, uint16_t>> parseHostPort(const std::string& text) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 == text.size()) {
    return std::nullopt;
  }
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  std::optional<IpAddr> addr = IpAddr::parse(host);
  char* end = nullptr;
  unsigned long port = strtoul(text.c_str() + colon + 1, &end, 10);
  if (!addr || *end || port == 0 || port > 65535) {
    return std::nullopt;
  }
  return std::make_pair(*addr, static_cast<uint16_t>(port));
}

/** Command-line settings of the proxy, before the cgroup is known. */
struct ProxyFlags {
  std::vector<std::string> listen;
  std::string binary;
  std::string netns;
  std::string cgroup;
  uint32_t mark = 0x7665; // "ve"
  int threads = 1;
  std::string tagHeader = proxy::RouteOptions{}.tagHeader;
};

int run(const std::string& configDir, std::string cgroup, const std::string& bpffs,
        const std::string& recycling, bool accelerate, const std::string& runDir,
        const ProxyFlags& pf) {
  FeatureReport features = probeKernelFeatures();
  for (const std::string& f : features.found) {
    spdlog::info("kernel feature: {}", f);
  }
  for (const std::string& f : features.optionalMissing) {
    spdlog::warn("kernel feature missing, continuing without it: {}", f);
  }
  if (accelerate && std::find(features.optionalMissing.begin(), features.optionalMissing.end(),
                              kSocketAccelerationFeature) != features.optionalMissing.end()) {
    spdlog::critical("--socket-acceleration: kernel feature missing: {}",
                     kSocketAccelerationFeature);
    return 1;
  }
  if (!features.missing.empty()) {
    for (const std::string& f : features.missing) {
      spdlog::critical("kernel feature missing: {}", f);
    }
    return 1;
  }
  if (cgroup.empty()) {
    Result<std::string> root = findOrMountCgroup2();
    if (!root) {
      spdlog::critical("{}", root.error().message);
      return 1;
    }
    cgroup = *root;
  }

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  Fd sigfd(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!sigfd) {
    spdlog::critical("signalfd: {}", strerror(errno));
    return 1;
  }

  Result<std::unique_ptr<Datapath>> dp = Datapath::load(bpffs, accelerate);
  if (!dp) {
    spdlog::critical("{}", dp.error().message);
    return 1;
  }
  DirWatch watch(configDir);
  if (Status s = watch.init(); !s) {
    spdlog::critical("{}", s.error().message);
    return 1;
  }
  // Attach before applying, so "applied" (what `veerctl wait` watches) implies
  // every hook is in place. A fresh datapath has no services yet and passes
  // everything through; an adopted one swaps programs over the same pinned
  // maps and keeps serving the pinned config until the flip.
  if (Status s = (*dp)->attach(cgroup); !s) {
    spdlog::critical("{}", s.error().message);
    return 1;
  }
  spdlog::info("attached to cgroup {}, pins in {}, watching {}", cgroup, veerPinDir(bpffs),
               configDir);
  for (const std::string& other : (*dp)->foreignPrograms()) {
    spdlog::warn("a program not veer's runs beside it and may override its verdict: {}", other);
  }
  if (accelerate) {
    spdlog::info("socket acceleration on: node-local TCP connections from now on skip the TCP "
                 "stack");
  }
  std::unique_ptr<Recycler> recycler;
  if (recycling != "off") {
    Result<std::unique_ptr<Recycler>> r =
        recycling == "iterator" ? Recycler::load(Recycler::Mode::kIterator, bpffs)
        : recycling == "netlink" ? Recycler::load(Recycler::Mode::kNetlink, bpffs)
                                 : Recycler::load(bpffs);
    if (r) {
      recycler = std::move(*r);
      spdlog::info("socket recycling available ({})", recycler->modeName());
    } else {
      spdlog::warn("socket recycling unavailable, continuing without it: {}", r.error().message);
    }
  } else {
    spdlog::info("socket recycling off (--socket-recycling=off)");
  }
  std::unique_ptr<ProxySupervisor> proxy;
  if (!pf.listen.empty()) {
    ProxyOptions po;
    for (const std::string& l : pf.listen) {
      auto hp = parseHostPort(l);
      if (!hp) {
        spdlog::critical("--proxy-listen {}: expected ADDR:PORT or [ADDR6]:PORT", l);
        return 2;
      }
      for (const auto& [addr, port] : po.listen) {
        if (addr.v4 == hp->first.v4) {
          spdlog::critical("--proxy-listen {}: one address per family", l);
          return 2;
        }
      }
      po.listen.push_back(*hp);
    }
    po.binary = pf.binary.empty()
                    ? (fs::read_symlink("/proc/self/exe").parent_path() / "veer-proxy").string()
                    : pf.binary;
    po.netns = pf.netns;
    po.cgroup = pf.cgroup.empty() ? cgroup + "/veer-proxy" : pf.cgroup;
    po.mark = pf.mark;
    po.runDir = runDir;
    po.threads = pf.threads;
    po.socketAcceleration = accelerate;
    po.recycler = recycler.get();
    proxy = std::make_unique<ProxySupervisor>(std::move(po), **dp);
    if (Status s = proxy->init(); !s) {
      spdlog::critical("veer-proxy: {}", s.error().message);
      return 1;
    }
  }
  proxy::RouteOptions routeOptions;
  routeOptions.tagHeader = pf.tagHeader;
  Agent agent(configDir, cgroup, **dp, recycler.get(), proxy.get(), routeOptions);
  agent.reload();

  pollfd fds[3] = {{watch.fd(), POLLIN, 0}, {sigfd.get(), POLLIN, 0}, {-1, POLLIN, 0}};
  while (true) {
    fds[2].fd = proxy ? proxy->reportFd() : -1;
    int timeout = kResyncMs;
    for (int due : {agent.nextDueMs(), proxy ? proxy->restartDueMs() : -1}) {
      if (due >= 0 && due < timeout) {
        timeout = due;
      }
    }
    int n = poll(fds, 3, timeout);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    agent.recycleDue();
    if (proxy) {
      if (n > 0 && fds[2].fd >= 0 && (fds[2].revents & (POLLIN | POLLHUP))) {
        proxy->onReport();
      }
      proxy->maybeRestart();
    }
    if (n == 0) {
      agent.resync();
      continue;
    }
    if (n < 0) {
      spdlog::critical("poll: {}", strerror(errno));
      return 1;
    }
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo si{};
      if (read(sigfd.get(), &si, sizeof(si)) != sizeof(si)) {
        continue;
      }
      if (si.ssi_signo == SIGHUP) {
        agent.reload();
        continue;
      }
      if (si.ssi_signo == SIGCHLD) {
        if (proxy) {
          proxy->onChildExit();
        }
        continue;
      }
      spdlog::info("signal {}: exiting; the pinned datapath{} keeps serving", si.ssi_signo,
                   proxy ? " and veer-proxy" : "");
      return 0;
    }
    if (fds[0].revents & POLLIN) {
      // Wait for the burst to end, then reload once.
      do {
        watch.drain();
      } while (poll(&fds[0], 1, kQuietMs) > 0);
      if (Status s = watch.rearm(); !s) {
        spdlog::warn("{}", s.error().message);
      }
      agent.reload();
    }
  }
}

} // namespace
} // namespace veer

int main(int argc, char** argv) {
  CLI::App app{"veer-agent: node-level eBPF traffic splitter"};
  app.set_version_flag("--version", std::string("veer-agent ") + veer::veerVersion());
  std::string configDir, cgroup, bpffs = "/sys/fs/bpf", runDir = "/run/veer";
  bool uninstall = false;
  std::string prepareMounts;
  veer::ProxyFlags pf;
  std::string recycling = "auto";
  bool accelerate = false;
  app.add_option("--config-dir", configDir, "directory of Kubernetes YAML to apply and watch")
      ->check(CLI::ExistingDirectory);
  app.add_option("--cgroup", cgroup, "cgroup v2 directory to attach to (default: the cgroup2 root)")
      ->check(CLI::ExistingDirectory);
  app.add_option("--bpffs", bpffs, "bpffs mount; pins go under <bpffs>/veer")->capture_default_str();
  app.add_option("--socket-recycling", recycling,
                 "how stale sockets are destroyed: auto (iterators, else netlink), iterator "
                 "(bpf_sock_destroy, Linux >= 6.5), netlink (SOCK_DESTROY), off")
      ->check(CLI::IsMember({"auto", "iterator", "netlink", "off"}))
      ->capture_default_str();
  app.add_flag("--socket-acceleration", accelerate,
               "deliver node-local TCP data straight to the peer socket (sockmap), past the TCP "
               "stack; see docs/design.md for what it bypasses");
  app.add_option("--run-dir", runDir, "the proxy's route table and pid file")->capture_default_str();
  app.add_flag("--uninstall", uninstall,
               "detach and remove everything veer pinned, stop veer-proxy, then exit");
  app.add_option("--prepare-mounts", prepareMounts,
                 "in PID 1's mount and cgroup namespaces (the host's, given hostPID), mount "
                 "bpffs at --bpffs and cgroup2 at PATH where missing, then exit (the "
                 "DaemonSet's init container)");
  app.add_option("--proxy-listen", pf.listen,
                 "run veer-proxy for L7 services, listening on ADDR:PORT ([ADDR6]:PORT); "
                 "once per family")
      ->take_all();
  app.add_option("--proxy-bin", pf.binary, "veer-proxy executable (default: beside veer-agent)")
      ->check(CLI::ExistingFile);
  app.add_option("--proxy-netns", pf.netns, "network namespace file to run veer-proxy in")
      ->check(CLI::ExistingFile);
  app.add_option("--proxy-cgroup", pf.cgroup,
                 "cgroup v2 directory for veer-proxy (default: <cgroup>/veer-proxy)");
  app.add_option("--proxy-mark", pf.mark, "SO_MARK of veer-proxy's upstream sockets")
      ->capture_default_str();
  app.add_option("--proxy-threads", pf.threads, "veer-proxy event loops")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app.add_option("--tag-header", pf.tagHeader,
                 "request header carrying the full-link gray tag to the next hop")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  if (!prepareMounts.empty()) {
    if (veer::Status s = veer::prepareHostMounts(bpffs, prepareMounts); !s) {
      spdlog::critical("{}", s.error().message);
      return 1;
    }
    spdlog::info("bpffs at {} and cgroup2 at {} in PID 1's mount namespace", bpffs, prepareMounts);
    return 0;
  }
  if (uninstall) {
    // Hooks first, so no new connection is sent to the proxy while it drains.
    if (veer::Status s = veer::Datapath::uninstall(bpffs); !s) {
      spdlog::critical("{}", s.error().message);
      return 1;
    }
    if (veer::Status s = veer::ProxySupervisor::stopRunning(runDir, std::chrono::seconds(10));
        !s) {
      spdlog::critical("{}", s.error().message);
      return 1;
    }
    spdlog::info("removed {}", veer::veerPinDir(bpffs));
    return 0;
  }
  if (configDir.empty()) {
    spdlog::critical("--config-dir is required");
    return 2;
  }
  return veer::run(configDir, cgroup, bpffs, recycling, accelerate, runDir, pf);
}
