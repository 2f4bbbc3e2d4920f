#include "k8s/informers.h"

#include <spdlog/spdlog.h>

#include <map>
#include <set>

#include <nlohmann/json.hpp>

namespace veer::k8s {
namespace {

using nlohmann::json;

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) {
    s += (s.empty() ? "" : ", ") + x;
  }
  return s;
}

Result<json> getJson(ApiClient& client, const std::string& path, StopToken& stop) {
  auto r = client.get(path, stop, std::chrono::seconds(30));
  if (!r) {
    return r.error();
  }
  if (r->status == 404) {
    return json(); // a group version that went away between /apis and this request
  }
  if (r->status != 200) {
    return Error{EIO, "GET " + path + ": HTTP " + std::to_string(r->status)};
  }
  json j = json::parse(r->body, nullptr, false);
  if (!j.is_object()) {
    return Error{EIO, "GET " + path + ": not a JSON object"};
  }
  return j;
}

} // namespace

const std::vector<WatchedKind>& watchedKinds() {
  // The versions are those loader.cpp accepts for each kind.
  static const std::vector<WatchedKind> kinds = {
      {"", {"v1"}, "Service", false},
      {"discovery.k8s.io", {"v1"}, "EndpointSlice", false},
      {"", {"v1"}, "Pod", true},
      {"networking.istio.io", {"v1", "v1beta1", "v1alpha3"}, "VirtualService", false},
      {"networking.istio.io", {"v1", "v1beta1", "v1alpha3"}, "DestinationRule", false},
      {"networking.istio.io", {"v1", "v1beta1", "v1alpha3"}, "Gateway", false},
      {"istio.alibabacloud.com", {"v1beta1"}, "TrafficLabel", false},
      {"gateway.networking.k8s.io", {"v1", "v1beta1"}, "HTTPRoute", false},
      {"projectcontour.io", {"v1"}, "HTTPProxy", false},
      {"contour.heptio.com", {"v1beta1"}, "IngressRoute", false},
  };
  return kinds;
}

Result<DiscoveryResult> discover(ApiClient& client, const std::vector<WatchedKind>& kinds,
                                 StopToken& stop) {
  std::set<std::pair<std::string, std::string>> served{{"", "v1"}};
  auto groups = getJson(client, "/apis", stop);
  if (!groups) {
    return groups.error();
  }
  if (groups->contains("groups") && (*groups)["groups"].is_array()) {
    for (const auto& g : (*groups)["groups"]) {
      if (!g.is_object() || !g.contains("versions") || !g["versions"].is_array()) {
        continue;
      }
      for (const auto& v : g["versions"]) {
        if (v.is_object()) {
          served.emplace(g.value("name", ""), v.value("version", ""));
        }
      }
    }
  }
  std::map<std::pair<std::string, std::string>, json> resources; // asked once per round
  DiscoveryResult out;
  for (const auto& k : kinds) {
    std::optional<ResourceType> found;
    for (const auto& v : k.versions) {
      std::pair<std::string, std::string> gv{k.group, v};
      if (served.count(gv) == 0) {
        continue;
      }
      auto it = resources.find(gv);
      if (it == resources.end()) {
        auto list =
            getJson(client, k.group.empty() ? "/api/" + v : "/apis/" + k.group + "/" + v, stop);
        if (!list) {
          return list.error();
        }
        it = resources.emplace(gv, std::move(*list)).first;
      }
      const json& rl = it->second;
      if (!rl.is_object() || !rl.contains("resources") || !rl["resources"].is_array()) {
        continue;
      }
      for (const auto& r : rl["resources"]) {
        std::string name = r.is_object() ? r.value("name", "") : "";
        // "pods/status" and the like are subresources, not collections.
        if (r.is_object() && r.value("kind", "") == k.kind && !name.empty() &&
            name.find('/') == std::string::npos) {
          found = ResourceType{k.group, v, name, k.kind, r.value("namespaced", true)};
          break;
        }
      }
      if (found) {
        break;
      }
    }
    out.push_back(std::move(found));
  }
  return out;
}

ClusterSource::ClusterSource(ApiClient& client, ObjectStore& store, Options options, Clock& clock)
    : client_(client), store_(store), options_(std::move(options)), clock_(clock),
      running_(options_.kinds.size()), announcedMissing_(options_.kinds.size(), false) {}

ClusterSource::~ClusterSource() {
  stop();
}

void ClusterSource::start() {
  thread_ = std::thread([this] { loop(); });
}

void ClusterSource::stop() {
  stop_.stop();
  if (thread_.joinable()) {
    thread_.join();
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& r : running_) {
    if (r) {
      stopOne(*r);
      r.reset();
    }
  }
}

void ClusterSource::stopOne(Running& r) {
  r.stop->stop();
  if (r.thread.joinable()) {
    r.thread.join();
  }
}

void ClusterSource::loop() {
  // Discovery failing (the server down at start, say) backs off like a reflector.
  Backoff backoff(options_.reflector.backoff, options_.reflector.seed + 7);
  while (!stop_.stopped()) {
    auto found = discover(client_, options_.kinds, stop_);
    Duration next = options_.rediscoverEvery;
    if (found) {
      ++discoveries_;
      backoff.reset();
      reconcile(*found);
    } else if (!stop_.stopped()) {
      spdlog::warn("k8s: discovery failed: {}", found.error().message);
      next = backoff.next();
    }
    if (!clock_.sleepFor(next, stop_)) {
      return;
    }
  }
}

void ClusterSource::reconcile(const DiscoveryResult& found) {
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < options_.kinds.size(); ++i) {
    const WatchedKind& k = options_.kinds[i];
    const std::optional<ResourceType>& type = found[i];
    auto& running = running_[i];
    if (k.ownNodeOnly && options_.nodeName.empty()) {
      if (!announcedMissing_[i]) {
        spdlog::info("k8s: no node name: {} not watched", k.kind);
        announcedMissing_[i] = true;
      }
      continue;
    }
    if (running && (!type || type->version != running->reflector->type().version)) {
      spdlog::info("k8s: {} no longer served at {}; its objects are dropped", k.kind,
                   running->reflector->type().apiVersion());
      stopOne(*running);
      running.reset();
      store_.replace(k.group, k.kind, {});
    }
    if (!type) {
      if (!announcedMissing_[i]) {
        spdlog::info("k8s: {} ({} {}) is not served (CRD not installed?); skipped until it is",
                     k.kind, k.group.empty() ? "core" : k.group, joined(k.versions));
        announcedMissing_[i] = true;
      }
      continue;
    }
    if (running) {
      continue;
    }
    announcedMissing_[i] = false;
    ReflectorOptions ro = options_.reflector;
    ro.seed += i;
    if (k.ownNodeOnly) {
      ro.fieldSelector = "spec.nodeName=" + options_.nodeName;
    }
    spdlog::info("k8s: watching {}{}", type->name(),
                 ro.fieldSelector.empty() ? "" : " (" + ro.fieldSelector + ")");
    running = std::make_unique<Running>();
    running->stop = std::make_unique<StopToken>();
    running->reflector = std::make_unique<Reflector>(client_, store_, *type, ro, clock_);
    Running* r = running.get();
    running->thread = std::thread([r] { r->reflector->run(*r->stop); });
  }
  discovered_ = true;
}

bool ClusterSource::synced() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!discovered_) {
    return false;
  }
  for (const auto& r : running_) {
    if (r && !r->reflector->stats().synced) {
      return false;
    }
  }
  return true;
}

std::vector<KindStatus> ClusterSource::status() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<KindStatus> out;
  for (size_t i = 0; i < options_.kinds.size(); ++i) {
    KindStatus s;
    s.kind = options_.kinds[i].kind;
    if (running_[i]) {
      s.type = running_[i]->reflector->type();
      s.counts = running_[i]->reflector->stats().snapshot();
    }
    out.push_back(std::move(s));
  }
  return out;
}

} // namespace veer::k8s
