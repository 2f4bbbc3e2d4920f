// veer-agent: loads and pins the datapath, attaches it to a cgroup, runs
// veer-proxy, and wires the config directory to the reconciler
// (userspace/reconcile/), which applies it and re-applies it whenever it changes.

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/net.h"
#include "agent/node_control.h"
#include "agent/proxy_supervisor.h"
#include "common/version.h"
#include "datapath/datapath.h"
#include "datapath/mounts.h"
#include "datapath/recycle.h"
#include "proxy/router.h"
#include "reconcile/agent_metrics.h"
#include "reconcile/clock.h"
#include "reconcile/directory_source.h"
#include "reconcile/k8s_source.h"
#include "reconcile/reconciler.h"

namespace veer {
namespace {

namespace fs = std::filesystem;

// The loop beats at least this often; /healthz fails after kHeartbeatStaleMs without a
// beat (a few rounds: one round may recycle sockets in every network namespace).
constexpr int kHeartbeatMs = 2000;
constexpr uint64_t kHeartbeatStaleMs = 5 * kHeartbeatMs;

/**
 * /healthz, /readyz and /metrics on listen ("off": none). Returns null and logs when
 * off; an error when the address cannot be served.
 */
Result<std::unique_ptr<StatusServer>> startStatusServer(const std::string& listen,
                                                        const AgentStatus& status) {
  if (listen == "off") {
    spdlog::info("metrics and health endpoint off (--metrics-listen=off)");
    return std::unique_ptr<StatusServer>();
  }
  Result<std::unique_ptr<StatusServer>> server = StatusServer::start(listen, status.routes());
  if (!server) {
    return Error{server.error().code, "--metrics-listen " + listen + ": " + server.error().message};
  }
  spdlog::info("serving /healthz, /readyz and /metrics on {}", listen);
  return server;
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

/** Where config comes from: the Kubernetes API, a directory, or both. */
struct ClusterFlags {
  std::string kubeconfig;
  std::string nodeName;
};

/**
 * The cluster's config, when the agent reads one: from --kubeconfig, or in-cluster when
 * neither --kubeconfig nor --config-dir is given. nullopt: directory only.
 */
Result<std::optional<k8s::ClusterConfig>> clusterConfig(const ClusterFlags& cf,
                                                        const std::string& configDir) {
  if (!cf.kubeconfig.empty()) {
    Result<k8s::ClusterConfig> c = k8s::loadKubeconfig(cf.kubeconfig);
    if (!c) {
      return c.error();
    }
    return std::optional<k8s::ClusterConfig>(std::move(*c));
  }
  if (!configDir.empty()) {
    return std::optional<k8s::ClusterConfig>();
  }
  Result<k8s::ClusterConfig> c = k8s::inClusterConfig();
  if (!c) {
    return c.error();
  }
  return std::optional<k8s::ClusterConfig>(std::move(*c));
}

/** The Kubernetes source, expected by the reconciler: nothing applies before it synced. */
Result<std::unique_ptr<K8sSource>> startClusterSource(k8s::ClusterConfig config,
                                                      const ClusterFlags& cf,
                                                      proxy::TimeSource& clock,
                                                      Reconciler& reconciler) {
  if (cf.nodeName.empty()) {
    spdlog::warn("no --node-name and no $K8S_NODE_NAME: no Pods are watched, so no lanes or "
                 "pod-label subsets of this node");
  }
  k8s::ClusterSource::Options options;
  options.nodeName = cf.nodeName;
  reconciler.expect(kK8sSourceName);
  auto source =
      std::make_unique<K8sSource>(std::move(config), std::move(options), clock, reconciler);
  if (Status s = source->init(); !s) {
    return s.error();
  }
  return source;
}

int run(const std::string& configDir, const ClusterFlags& cf, std::string cgroup,
        const std::string& bpffs, const std::string& recycling, bool accelerate,
        const std::string& runDir, const ProxyFlags& pf, const std::string& metricsListen) {
  // The cluster's config first: a bad kubeconfig fails before anything is attached.
  Result<std::optional<k8s::ClusterConfig>> clusterCfg = clusterConfig(cf, configDir);
  if (!clusterCfg) {
    spdlog::critical("{}", clusterCfg.error().message);
    return 2;
  }
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
  // Attach before applying, so "applied" (what `veerctl wait` watches) implies
  // every hook is in place. A fresh datapath has no services yet and passes
  // everything through; an adopted one swaps programs over the same pinned
  // maps and keeps serving the pinned config until the flip.
  if (Status s = (*dp)->attach(cgroup); !s) {
    spdlog::critical("{}", s.error().message);
    return 1;
  }
  spdlog::info("attached to cgroup {}, pins in {}", cgroup, veerPinDir(bpffs));
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
        recycling == "iterator"  ? Recycler::load(Recycler::Mode::kIterator, bpffs)
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
  proxy::TimeSource& clock = proxy::MonotonicTimeSource::instance();
  KernelDatapathControl control(**dp, recycler.get());
  std::optional<ProxyRoutePublisher> routes;
  if (proxy) {
    routes.emplace(*proxy);
  }
  ReconcilerOptions options;
  options.cgroupRoot = cgroup;
  options.routeOptions.tagHeader = pf.tagHeader;
  if (std::error_code ec; !fs::create_directories(runDir, ec) && ec) {
    spdlog::warn("--run-dir {}: {}; rejected objects are only logged", runDir, ec.message());
  }
  options.rejectedFile = runDir + "/rejected.json"; // what `veerctl status` shows
  Reconciler reconciler(std::move(options), control, routes ? &*routes : nullptr, clock);
  if (Status s = reconciler.start(); !s) {
    spdlog::critical("{}", s.error().message);
    return 1;
  }
  // Every source feeds the same reconciler; the cluster's first, so that a directory's
  // objects never apply alone while the cluster is still being listed.
  std::vector<ConfigSource*> sources;
  std::unique_ptr<K8sSource> cluster;
  if (*clusterCfg) {
    Result<std::unique_ptr<K8sSource>> c =
        startClusterSource(std::move(**clusterCfg), cf, clock, reconciler);
    if (!c) {
      spdlog::critical("{}", c.error().message);
      return 1;
    }
    cluster = std::move(*c);
    sources.push_back(cluster.get());
  }
  std::optional<DirectorySource> directory;
  if (!configDir.empty()) {
    spdlog::info("watching {}", configDir);
    directory.emplace(configDir, clock, reconciler);
    if (Status s = directory->init(); !s) {
      spdlog::critical("{}", s.error().message);
      return 1;
    }
    sources.push_back(&*directory);
  }

  Heartbeat heartbeat(clock, kHeartbeatStaleMs);
  AgentStatusSources statusSources;
  statusSources.maps = &(*dp)->maps();
  statusSources.counters = &control.counters();
  statusSources.heartbeat = &heartbeat;
  statusSources.wantedDigest = [&control] { return control.wantedDigest(); };
  statusSources.proxyStatsSocket = proxy ? proxy->statsSocket() : "";
  statusSources.socketAcceleration = accelerate;
  if (cluster) {
    const K8sSource* k = cluster.get();
    statusSources.informers = [k] { return k->cluster().status(); };
    statusSources.rejectedObjects = [&reconciler] { return reconciler.rejectedObjects(); };
  }
  const AgentStatus status(std::move(statusSources));
  Result<std::unique_ptr<StatusServer>> statusServer = startStatusServer(metricsListen, status);
  if (!statusServer) {
    spdlog::critical("{}", statusServer.error().message);
    return 2;
  }

  // Nothing here waits on a config build (it runs on the reconciler's thread), so
  // a proxy death or report is handled within one poll round whatever the config.
  enum { kSignal, kProxy, kBuilt, kSources };
  std::vector<pollfd> fds = {
      {sigfd.get(), POLLIN, 0}, {-1, POLLIN, 0}, {reconciler.fd(), POLLIN, 0}};
  for (ConfigSource* src : sources) {
    fds.push_back({src->fd(), POLLIN, 0});
  }
  while (true) {
    heartbeat.beat();
    fds[kProxy].fd = proxy ? proxy->reportFd() : -1;
    int timeout = msUntil(clock, reconciler.due());
    timeout = std::min(timeout, kHeartbeatMs);
    for (ConfigSource* src : sources) {
      if (std::optional<uint64_t> due = src->due()) {
        timeout = std::min(timeout, msUntil(clock, *due));
      }
    }
    if (int due = proxy ? proxy->restartDueMs() : -1; due >= 0) {
      timeout = std::min(timeout, due);
    }
    if (poll(fds.data(), fds.size(), timeout) < 0) {
      if (errno == EINTR) {
        continue;
      }
      spdlog::critical("poll: {}", strerror(errno));
      return 1;
    }
    if (proxy) {
      if (fds[kProxy].fd >= 0 && (fds[kProxy].revents & (POLLIN | POLLHUP))) {
        proxy->onReport();
      }
      proxy->maybeRestart();
    }
    if (fds[kSignal].revents & POLLIN) {
      signalfd_siginfo si{};
      if (read(sigfd.get(), &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGCHLD) {
          if (proxy) {
            proxy->onChildExit();
          }
        } else if (si.ssi_signo == SIGHUP) {
          for (ConfigSource* src : sources) {
            src->refresh();
          }
        } else {
          spdlog::info("signal {}: exiting; the pinned datapath{} keeps serving", si.ssi_signo,
                       proxy ? " and veer-proxy" : "");
          return 0;
        }
      }
    }
    for (size_t i = 0; i < sources.size(); ++i) {
      if (fds[kSources + i].revents & POLLIN) {
        sources[i]->onReadable();
      }
      sources[i]->onTimer();
    }
    if (fds[kBuilt].revents & POLLIN) {
      reconciler.onBuilt();
    }
    reconciler.onTimer();
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
  std::string metricsListen = "0.0.0.0:9967";
  veer::ClusterFlags cf;
  if (const char* node = getenv("K8S_NODE_NAME")) {
    cf.nodeName = node;
  }
  app.add_option("--config-dir", configDir,
                 "directory of Kubernetes YAML to apply and watch (beside the cluster's objects "
                 "when --kubeconfig is given too)")
      ->check(CLI::ExistingDirectory);
  app.add_option("--kubeconfig", cf.kubeconfig,
                 "read config from the Kubernetes API this kubeconfig names (default: "
                 "in-cluster config, unless only --config-dir is given)")
      ->check(CLI::ExistingFile);
  app.add_option("--node-name", cf.nodeName,
                 "this node's name: its Pods are watched (default: $K8S_NODE_NAME)");
  app.add_option("--cgroup", cgroup, "cgroup v2 directory to attach to (default: the cgroup2 root)")
      ->check(CLI::ExistingDirectory);
  app.add_option("--bpffs", bpffs, "bpffs mount; pins go under <bpffs>/veer")
      ->capture_default_str();
  app.add_option("--socket-recycling", recycling,
                 "how stale sockets are destroyed: auto (iterators, else netlink), iterator "
                 "(bpf_sock_destroy, Linux >= 6.5), netlink (SOCK_DESTROY), off")
      ->check(CLI::IsMember({"auto", "iterator", "netlink", "off"}))
      ->capture_default_str();
  app.add_flag("--socket-acceleration", accelerate,
               "deliver node-local TCP data straight to the peer socket (sockmap), past the TCP "
               "stack; see docs/design.md for what it bypasses");
  app.add_option("--run-dir", runDir, "the proxy's route table and pid file")
      ->capture_default_str();
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
  app.add_option("--metrics-listen", metricsListen,
                 "serve /healthz, /readyz and /metrics (Prometheus) on ADDR:PORT "
                 "([ADDR6]:PORT), or off")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  // Once, before any thread: the status server's scrapes fetch veer-proxy's stats with curl.
  if (CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT); rc != CURLE_OK) {
    spdlog::critical("curl_global_init: {}", curl_easy_strerror(rc));
    return 1;
  }

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
    if (veer::Status s = veer::ProxySupervisor::stopRunning(runDir, std::chrono::seconds(10)); !s) {
      spdlog::critical("{}", s.error().message);
      return 1;
    }
    spdlog::info("removed {}", veer::veerPinDir(bpffs));
    return 0;
  }
  return veer::run(configDir, cf, cgroup, bpffs, recycling, accelerate, runDir, pf, metricsListen);
}
