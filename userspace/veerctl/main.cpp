// veerctl: validate configs, show and dump the live datapath, wait for an
// apply, uninstall.

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <thread>

#include "common/hash.h"
#include "common/version.h"
#include "compiler/pipeline.h"
#include "config/plan_text.h"
#include "config/resolve.h"
#include "datapath/datapath.h"
#include "datapath/maps.h"
#include "proxy/explain.h"
#include "proxy/router.h"
#include "reconcile/agent_metrics.h"

namespace veer {
namespace {

using nlohmann::json;

std::string endpoint(const __be32 addr[4], __be16 port) {
  std::string a = IpAddr::fromBytes(addr).str();
  if (a.find(':') != std::string::npos) {
    a = "[" + a + "]";
  }
  return a + ":" + std::to_string(ntohs(port));
}

const char* protoName(uint8_t proto) {
  return proto == IPPROTO_UDP ? "udp" : proto == IPPROTO_TCP ? "tcp" : "?";
}

void printDiagnostics(const Diagnostics& diags) {
  std::cerr << formatDiagnostics(diags);
}

int cmdValidate(const std::vector<std::string>& paths) {
  BuildResult built = buildFromPaths(paths);
  printDiagnostics(built.diags);
  if (!built.ok()) {
    std::cerr << "invalid: the config would be rejected whole\n";
    return 1;
  }
  std::cout << "valid: " << built.plan.services.size() << " service ports, "
            << built.image.versions.size() << " versions, " << built.image.backends.size()
            << " backends (digest " << std::hex << built.image.digest() << std::dec << ")\n";
  return 0;
}

json proxyJson(const veer_proxy& px) {
  json listen = json::array();
  for (const veer_backend* be : {&px.listen4, &px.listen6}) {
    if (be->family) {
      listen.push_back(endpoint(be->addr, be->port));
    }
  }
  return {{"ready", px.ready != 0},
          {"listen", listen},
          {"mark", px.mark},
          {"routes_digest", fmt::format("{:016x}", px.routes_digest)}};
}

/** Who picks a service's versions right now: the kernel, or veer-proxy per request. */
const char* pathOf(const veer_service& svc, const veer_proxy& px) {
  if (!(svc.flags & VEER_SVC_F_L7)) {
    return "kernel";
  }
  return px.ready ? "l7" : "l7 (proxy down: kernel)";
}

/**
 * The agent's totals for its life (its /metrics, kernel path), beside the pinned counters
 * that restart at each apply: veerctl cannot fold generations itself, the agent does it
 * before each apply. An error when the agent does not answer ("off": not asked).
 */
using AgentTotals = Result<std::map<ConnectionLabels, ConnectionTotals>>;

AgentTotals agentTotals(const std::string& agent) {
  if (agent == "off") {
    return Error{0, "not asked (--agent off)"};
  }
  Result<std::string> page = fetchAgentMetrics(agent, std::chrono::seconds(2));
  if (!page) {
    return page.error();
  }
  return parseKernelTotals(*page);
}

json statusJson(const LiveState& live, const std::string& agent, const AgentTotals& totals) {
  json out = {{"generation", live.state.gen},
              {"applied", live.state.applied},
              {"rejected", live.state.rejected},
              {"digest", fmt::format("{:016x}", live.state.digest)},
              {"proxy", proxyJson(live.proxy)},
              {"acceleration",
               {{"sockets", live.accel.sockets},
                {"redirected", live.accel.redirected},
                {"redirected_bytes", live.accel.redirected_bytes},
                {"tcp", live.accel.tcp}}},
              {"agent", {{"metrics", agent}}},
              {"services", json::array()}};
  if (!totals) {
    out["agent"]["error"] = totals.error().message;
  }
  for (const LiveService& s : live.services) {
    json svc = {{"address", endpoint(s.key.addr, s.key.port)},
                {"protocol", protoName(s.key.proto)},
                {"path", pathOf(s.svc, live.proxy)},
                {"versions", json::array()}};
    for (const LiveService::Version& v : s.versions) {
      svc["service"] = v.ver.service;
      json backends = json::array();
      for (const veer_backend& b : v.backends) {
        backends.push_back(endpoint(b.addr, b.port));
      }
      json version = {{"subset", v.ver.subset},
                      {"weight", v.ver.weight},
                      {"backends", backends},
                      {"connects", v.stats.connects},
                      {"refused", v.stats.noBackend}};
      if (totals) {
        auto it = totals->find(connectionLabels(v.ver));
        const ConnectionTotals t = it != totals->end() ? it->second : ConnectionTotals{};
        version["connects_total"] = t.opened;
        version["refused_total"] = t.refused;
      }
      svc["versions"].push_back(version);
    }
    out["services"].push_back(svc);
  }
  return out;
}

/**
 * The objects the agent rejected in cluster mode (<run-dir>/rejected.json, which
 * it rewrites at each apply); empty when there is none or no such file.
 */
json rejectedObjects(const std::string& runDir) {
  std::ifstream in(runDir + "/rejected.json");
  if (!in) {
    return json::array();
  }
  json doc = json::parse(in, nullptr, false);
  if (doc.is_discarded() || !doc.contains("rejected") || !doc["rejected"].is_array()) {
    return json::array();
  }
  return doc["rejected"];
}

int cmdStatus(const std::string& bpffs, bool asJson, const std::string& agent,
              const std::string& runDir) {
  Result<PinnedMaps> maps = PinnedMaps::open(bpffs);
  if (!maps) {
    std::cerr << "veerctl: " << maps.error().message << "\n";
    return 1;
  }
  Result<LiveState> live = maps->live();
  if (!live) {
    std::cerr << "veerctl: " << live.error().message << "\n";
    return 1;
  }
  const AgentTotals totals = agentTotals(agent);
  const json rejected = rejectedObjects(runDir);
  if (asJson) {
    json out = statusJson(*live, agent, totals);
    out["rejected_objects"] = rejected;
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::printf("generation %u, %llu applies, %u rejected, digest %016llx\n", live->state.gen,
              static_cast<unsigned long long>(live->state.applied), live->state.rejected,
              static_cast<unsigned long long>(live->state.digest));
  const veer_proxy& px = live->proxy;
  if (px.listen4.family || px.listen6.family) {
    std::printf("veer-proxy %s on %s, routes digest %016llx\n", px.ready ? "ready" : "NOT READY",
                proxyJson(px)["listen"].dump().c_str(),
                static_cast<unsigned long long>(px.routes_digest));
  }
  if (live->accel.sockets != 0) {
    std::printf("socket acceleration: %llu connection ends joined; %llu messages (%llu bytes) "
                "straight to a local peer, %llu through TCP\n",
                static_cast<unsigned long long>(live->accel.sockets),
                static_cast<unsigned long long>(live->accel.redirected),
                static_cast<unsigned long long>(live->accel.redirected_bytes),
                static_cast<unsigned long long>(live->accel.tcp));
  }
  std::printf("%-32s %-24s %-5s %-6s %-12s %6s %8s %10s %8s %12s %10s\n", "SERVICE", "ADDRESS",
              "PROTO", "PATH", "VERSION", "WEIGHT", "BACKENDS", "CONNECTS*", "REFUSED*",
              "CONNECTS**", "REFUSED**");
  for (const LiveService& s : live->services) {
    bool first = true;
    for (const LiveService::Version& v : s.versions) {
      std::string total = "-", refusedTotal = "-";
      if (totals) {
        auto it = totals->find(connectionLabels(v.ver));
        const ConnectionTotals t = it != totals->end() ? it->second : ConnectionTotals{};
        total = std::to_string(t.opened);
        refusedTotal = std::to_string(t.refused);
      }
      std::printf("%-32s %-24s %-5s %-6s %-12s %6u %8u %10llu %8llu %12s %10s\n",
                  first ? v.ver.service : "", first ? endpoint(s.key.addr, s.key.port).c_str() : "",
                  first ? protoName(s.key.proto) : "",
                  first ? (s.svc.flags & VEER_SVC_F_L7 ? (px.ready ? "l7" : "l7!") : "kernel") : "",
                  v.ver.subset[0] ? v.ver.subset : "-", v.ver.weight, v.ver.n_backends,
                  static_cast<unsigned long long>(v.stats.connects),
                  static_cast<unsigned long long>(v.stats.noBackend), total.c_str(),
                  refusedTotal.c_str());
      first = false;
    }
  }
  std::printf("* since this config was applied (the counters belong to its generation); an l7\n"
              "  service's requests are counted by veer-proxy, not here; l7! = proxy down, the\n"
              "  kernel applies the unconditional split meanwhile\n");
  if (totals) {
    std::printf("** since the agent started, across applies (its /metrics on %s)\n", agent.c_str());
  } else {
    std::printf("** not shown: the agent's /metrics: %s\n", totals.error().message.c_str());
  }
  for (const json& r : rejected) {
    std::printf("rejected %s (serving: %s)\n", r.value("object", "?").c_str(),
                r.value("serving", "?").c_str());
    for (const json& e : r.value("errors", json::array())) {
      std::printf("  %s\n", e.is_string() ? e.get<std::string>().c_str() : e.dump().c_str());
    }
  }
  return 0;
}

/** Every entry of a map, decoded by the caller. */
template <class K, class V, class F> json dumpMap(int fd, F decode) {
  json arr = json::array();
  K key{}, next{};
  const K* prev = nullptr;
  V val{};
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    key = next;
    prev = &key;
    if (bpf_map_lookup_elem(fd, &key, &val) == 0) {
      arr.push_back(decode(key, val));
    }
  }
  return arr;
}

int cmdDump(const std::string& bpffs) {
  Result<PinnedMaps> opened = PinnedMaps::open(bpffs);
  if (!opened) {
    std::cerr << "veerctl: " << opened.error().message << "\n";
    return 1;
  }
  const PinnedMaps& m = *opened;
  json out;
  Result<veer_state> st = m.state();
  if (st) {
    out["veer_state"] = {{"gen", st->gen},
                         {"applied", st->applied},
                         {"rejected", st->rejected},
                         {"digest", fmt::format("{:016x}", st->digest)}};
  }
  out["veer_svc"] = dumpMap<veer_svc_key, veer_service>(
      m.fd("veer_svc"), [](const veer_svc_key& k, const veer_service& v) {
        std::vector<uint32_t> ids(v.version_id,
                                  v.version_id + std::min<int>(v.n_versions, VEER_MAX_VERSIONS));
        std::vector<int> slots(v.slot, v.slot + VEER_WEIGHT_SLOTS);
        return json{{"key",
                     {{"address", endpoint(k.addr, k.port)},
                      {"proto", protoName(k.proto)},
                      {"gen", k.gen}}},
                    {"value", {{"svc_id", v.svc_id}, {"version_id", ids}, {"slot", slots}}}};
      });
  out["veer_version"] = dumpMap<veer_version_key, veer_version>(
      m.fd("veer_version"), [](const veer_version_key& k, const veer_version& v) {
        const size_t n = std::min<size_t>(v.n_backends, VEER_MAX_BACKENDS_PER_VERSION);
        return json{{"key", {{"id", k.id}, {"gen", k.gen}}},
                    {"value",
                     {{"svc_id", v.svc_id},
                      {"n_backends", v.n_backends},
                      {"backend_id", std::vector<uint32_t>(v.backend_id, v.backend_id + n)},
                      {"weight", v.weight},
                      {"service", v.service},
                      {"subset", v.subset}}}};
      });
  out["veer_maglev"] = dumpMap<
      veer_version_key, veer_maglev_ring>(m.fd("veer_maglev"), [](const veer_version_key& k,
                                                                  const veer_maglev_ring& v) {
    // By index into the version's backend_id list (veer_version of the same key).
    std::map<std::string, int> share;
    for (size_t i = 0; i < VEER_MAGLEV_SIZE; ++i) {
      share[std::to_string(v.backend_index[i])]++;
    }
    return json{{"key", {{"id", k.id}, {"gen", k.gen}}}, {"value", {{"entries_per_index", share}}}};
  });
  out["veer_backend"] = dumpMap<veer_backend_key, veer_backend>(
      m.fd("veer_backend"), [](const veer_backend_key& k, const veer_backend& v) {
        return json{{"key", {{"id", k.id}, {"gen", k.gen}}},
                    {"value", {{"address", endpoint(v.addr, v.port)}}}};
      });
  out["veer_revnat"] = dumpMap<veer_revnat_key, veer_revnat>(
      m.fd("veer_revnat"), [](const veer_revnat_key& k, const veer_revnat& v) {
        return json{{"key", {{"cookie", k.cookie}, {"backend", endpoint(k.addr, k.port)}}},
                    {"value", {{"service", endpoint(v.addr, v.port)}}}};
      });
  if (Result<veer_proxy> px = m.proxy()) {
    out["veer_proxy"] = proxyJson(*px);
  }
  out["veer_orig_dst"] = dumpMap<veer_orig_key, veer_orig_dst>(
      m.fd("veer_orig_dst"), [](const veer_orig_key& k, const veer_orig_dst& v) {
        return json{{"key", {{"client", endpoint(k.addr, k.port)}}},
                    {"value", {{"service", endpoint(v.addr, v.port)}}}};
      });
  std::cout << out.dump(2) << "\n";
  return 0;
}

int cmdWait(const std::vector<std::string>& paths, const std::string& bpffs, double timeout,
            const proxy::RouteOptions& routeOptions) {
  BuildResult built = buildFromPaths(paths);
  if (!built.ok()) {
    printDiagnostics(built.diags);
    std::cerr << "veerctl: the config is invalid; the agent will not apply it\n";
    return 1;
  }
  const uint64_t want = built.image.digest();
  // With veer-proxy configured, its route table must be this config's too: a new
  // pod in an L7-only subset changes no map.
  const std::string routes =
      proxy::RouteTable::fromPlan(built.plan, *built.config, routeOptions)->toJson();
  const uint64_t wantRoutes = fnv1a64(routes.data(), routes.size());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
  while (true) {
    Result<PinnedMaps> maps = PinnedMaps::open(bpffs);
    if (maps) {
      Result<veer_state> st = maps->state();
      Result<veer_proxy> px = maps->proxy();
      const bool proxied = px && (px->listen4.family || px->listen6.family);
      if (st && st->applied && st->digest == want &&
          (!proxied || (px->ready && px->routes_digest == wantRoutes))) {
        std::cout << "applied (digest " << std::hex << want;
        if (proxied) {
          std::cout << ", veer-proxy routes " << wantRoutes;
        }
        std::cout << std::dec << ")\n";
        return 0;
      }
    }
    if (std::chrono::steady_clock::now() > deadline) {
      std::cerr << "veerctl: timed out after " << timeout << " s waiting for digest " << std::hex
                << want << " (veer-proxy routes " << wantRoutes << ")" << std::dec << "\n";
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

PlanSummary summarizeLive(const LiveState& live) {
  PlanSummary out;
  out.virtualHostsKnown = false; // ingress virtual hosts are not compiled into maps
  for (const LiveService& s : live.services) {
    PlanSummary::Service ps;
    for (const LiveService::Version& v : s.versions) {
      ps.id = v.ver.service;
      PlanSummary::Version pv;
      pv.subset = v.ver.subset;
      pv.weight = v.ver.weight;
      for (const veer_backend& b : v.backends) {
        pv.backends.push_back(endpoint(b.addr, b.port));
      }
      std::sort(pv.backends.begin(), pv.backends.end());
      ps.versions.push_back(std::move(pv));
    }
    out.services[endpoint(s.key.addr, s.key.port) + "/" + protoName(s.key.proto)] = std::move(ps);
  }
  return out;
}

/** Exit codes as terraform plan -detailed-exitcode: 0 no changes, 2 changes, 1 error. */
int cmdPlan(const std::vector<std::string>& paths, const std::vector<std::string>& against,
            const std::string& bpffs, bool show) {
  BuildResult built = buildFromPaths(paths);
  printDiagnostics(built.diags);
  if (!built.ok()) {
    std::cerr << "invalid: the config would be rejected whole\n";
    return 1;
  }
  if (show) {
    std::cout << renderPlan(built.plan) << "\n";
  }
  PlanSummary before;
  if (!against.empty()) {
    BuildResult other = buildFromPaths(against);
    if (!other.ok()) {
      printDiagnostics(other.diags);
      std::cerr << "veerctl: the --against config is invalid\n";
      return 1;
    }
    before = summarize(other.plan);
  } else {
    Result<PinnedMaps> maps = PinnedMaps::open(bpffs);
    if (!maps) {
      std::cerr << "veerctl: " << maps.error().message
                << " (use --against PATH without a live datapath)\n";
      return 1;
    }
    Result<LiveState> live = maps->live();
    if (!live) {
      std::cerr << "veerctl: " << live.error().message << "\n";
      return 1;
    }
    before = summarizeLive(*live);
  }
  PlanSummary after = summarize(built.plan);
  PlanDiff diff = diffPlans(before, after);
  std::cout << diff.text;
  size_t l7 = 0;
  for (const auto& s : built.plan.services) {
    l7 += s.path == PlanPath::kL7 ? 1 : 0;
  }
  if (l7 != 0) {
    std::cout << l7 << " service port(s) need the L7 path (see --show for why)\n";
  }
  return diff.changes() ? 2 : 0;
}

std::pair<std::string, std::string> keyValue(const std::string& s, char sep) {
  size_t i = s.find(sep);
  if (i == std::string::npos) {
    return {s, ""};
  }
  std::string v = s.substr(i + 1);
  while (!v.empty() && v.front() == ' ') {
    v.erase(0, 1);
  }
  return {s.substr(0, i), v};
}

int cmdExplain(const std::vector<std::string>& paths, ExplainRequest req,
               const std::vector<std::string>& headers, const std::vector<std::string>& cookies) {
  for (const auto& h : headers) {
    req.headers.push_back(
        keyValue(h, h.find('=') != std::string::npos &&
                            (h.find(':') == std::string::npos || h.find('=') < h.find(':'))
                        ? '='
                        : ':'));
  }
  for (const auto& c : cookies) {
    req.cookies.push_back(keyValue(c, '='));
  }
  LoadResult loaded = loadPaths(paths);
  printDiagnostics(loaded.diags);
  if (hasErrors(loaded.diags)) {
    std::cerr << "invalid: the config would be rejected whole\n";
    return 1;
  }
  ResolveResult resolved = resolve(loaded.config);
  printDiagnostics(resolved.diags);
  if (hasErrors(resolved.diags)) {
    std::cerr << "invalid: the config would be rejected whole\n";
    return 1;
  }
  // A host served by an ingress virtual host (Contour, Gateway API) is explained as the
  // ingress routes it; any other host is a mesh service.
  Explanation vh = explainVirtualHost(resolved.plan, req);
  Explanation ex = vh.ok ? vh : explain(resolved.plan, loaded.config, req);
  std::cout << ex.text;
  return ex.ok ? 0 : 1;
}

} // namespace
} // namespace veer

int main(int argc, char** argv) {
  CLI::App app{"veerctl: inspect and drive veer"};
  app.set_version_flag("--version", std::string("veerctl ") + veer::veerVersion());
  app.require_subcommand(1);
  std::string bpffs = "/sys/fs/bpf";
  app.add_option("--bpffs", bpffs, "bpffs mount holding <bpffs>/veer")->capture_default_str();

  std::vector<std::string> paths;
  auto* validate =
      app.add_subcommand("validate", "load, validate and compile configs; print errors");
  validate->add_option("paths", paths, "files or directories")
      ->required()
      ->check(CLI::ExistingPath);

  bool asJson = false;
  auto* status =
      app.add_subcommand("status", "services, versions, weights and per-version counters");
  status->add_flag("--json", asJson, "print JSON");
  std::string agent = "127.0.0.1:9967";
  status
      ->add_option("--agent", agent,
                   "veer-agent's --metrics-listen ADDR:PORT, for totals since it started "
                   "(off: pinned counters only)")
      ->capture_default_str();
  std::string runDir = "/run/veer";
  status
      ->add_option("--run-dir", runDir,
                   "veer-agent's --run-dir, for the objects it rejected in cluster mode")
      ->capture_default_str();

  auto* dump = app.add_subcommand("dump", "every veer map as JSON");

  double timeout = 30;
  auto* wait = app.add_subcommand("wait", "wait until the live datapath runs the config at PATH");
  wait->add_option("paths", paths, "files or directories")->required()->check(CLI::ExistingPath);
  wait->add_option("--timeout", timeout, "seconds")->capture_default_str();
  veer::proxy::RouteOptions routeOptions;
  wait->add_option("--tag-header", routeOptions.tagHeader, "as given to veer-agent")
      ->capture_default_str();

  auto* uninstall = app.add_subcommand("uninstall", "detach and remove everything veer pinned");

  std::vector<std::string> against;
  bool live = false;
  bool show = false;
  auto* plan = app.add_subcommand(
      "plan",
      "what applying PATH would change in the datapath (exit 0: none, 2: changes, 1: error)");
  plan->add_option("paths", paths, "files or directories")->required()->check(CLI::ExistingPath);
  auto* againstOpt =
      plan->add_option("--against", against, "compare with this config instead of the live maps")
          ->check(CLI::ExistingPath);
  plan->add_flag("--live", live, "compare with the live maps (the default)")->excludes(againstOpt);
  plan->add_flag("--show", show, "print the whole plan (paths, why, rules) first");

  veer::ExplainRequest req;
  std::vector<std::string> headers;
  std::vector<std::string> cookies;
  auto* explain = app.add_subcommand("explain", "which rule a request matches and where it goes");
  explain->add_option("paths", paths, "files or directories")->required()->check(CLI::ExistingPath);
  explain
      ->add_option(
          "--host", req.host,
          "service host (reviews, reviews.ns, ...) or ingress virtual host (shop.example.com)")
      ->required();
  explain->add_option("--namespace,-n", req.ns, "namespace of short hosts and pods")
      ->capture_default_str();
  explain->add_option("--port", req.port, "service port (default: the first)");
  explain->add_option("--header,-H", headers, "request header NAME=VALUE or 'NAME: VALUE'");
  explain->add_option("--cookie", cookies, "cookie NAME=VALUE");
  explain->add_option("--uri", req.uri, "request path and query")->capture_default_str();
  explain->add_option("--method", req.method)->capture_default_str();
  explain->add_option("--authority", req.authority, "Host header (default: --host)");
  explain->add_option("--from-pod", req.fromPod,
                      "client pod NAME or NS/NAME (source labels, traffic tag)");

  CLI11_PARSE(app, argc, argv);
  if (*validate) {
    return veer::cmdValidate(paths);
  }
  if (*status) {
    return veer::cmdStatus(bpffs, asJson, agent, runDir);
  }
  if (*dump) {
    return veer::cmdDump(bpffs);
  }
  if (*wait) {
    return veer::cmdWait(paths, bpffs, timeout, routeOptions);
  }
  if (*plan) {
    return veer::cmdPlan(paths, against, bpffs, show);
  }
  if (*explain) {
    return veer::cmdExplain(paths, req, headers, cookies);
  }
  if (*uninstall) {
    if (veer::Status s = veer::Datapath::uninstall(bpffs); !s) {
      std::cerr << "veerctl: " << s.error().message << "\n";
      return 1;
    }
    return 0;
  }
  return 2;
}
