#include "reconcile/reconciler.h"

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "datapath/lanes.h"

namespace veer {
namespace {

bool sameLanes(const std::vector<std::pair<veer_lane_key, veer_lane>>& a,
               const std::vector<std::pair<veer_lane_key, veer_lane>>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const auto& x, const auto& y) {
    return x.first.cgroup_id == y.first.cgroup_id && x.second.id == y.second.id;
  });
}

bool sameTexts(const std::vector<ConfigText>& a, const std::vector<ConfigText>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](const ConfigText& x, const ConfigText& y) { return *x.text == *y.text; });
}

/** "ns" of "Kind ns/name" ("" when it has none). */
std::string namespaceOf(const std::string& object) {
  const size_t space = object.find(' ');
  const size_t slash = object.find('/', space);
  return space == std::string::npos || slash == std::string::npos
             ? ""
             : object.substr(space + 1, slash - space - 1);
}

} // namespace

BuildResult buildConfig(const std::vector<ConfigText>& texts, MaglevCache& rings) {
  return buildFromTexts(texts, {.maglev = &rings});
}

Reconciler::Reconciler(ReconcilerOptions options, DatapathControl& dp, RoutePublisher* routes,
                       proxy::TimeSource& clock, BuildFn build)
    : options_(std::move(options)), dp_(dp), routes_(routes), clock_(clock),
      build_(std::move(build)), nextResync_(clock.nowMs() + options_.resyncEveryMs),
      worker_([this](BuildInput in) { return runBuild(std::move(in)); }) {}

Status Reconciler::start() {
  return worker_.start();
}

void Reconciler::expect(const std::string& source) {
  if (!sources_.contains(source)) {
    awaiting_.insert(source);
  }
}

void Reconciler::update(const std::string& source, ConfigSnapshot snapshot) {
  sources_[source] = std::move(snapshot);
  awaiting_.erase(source);
  if (!awaiting_.empty()) {
    spdlog::info("{} delivered; waiting for {} more source(s) before the first build", source,
                 awaiting_.size());
    return;
  }
  BuildInput in;
  in.seq = ++submitted_;
  for (const auto& [name, snap] : sources_) {
    in.texts.insert(in.texts.end(), snap.texts.begin(), snap.texts.end());
    in.diags.insert(in.diags.end(), snap.diags.begin(), snap.diags.end());
    if (snap.objects.empty()) {
      in.objects.resize(in.texts.size());
    } else {
      in.objects.insert(in.objects.end(), snap.objects.begin(), snap.objects.end());
    }
  }
  worker_.submit(std::move(in));
}

// On the build thread: only the input, build_, rings_ and lastGood_ are touched here.
BuildOutput Reconciler::runBuild(BuildInput in) {
  BuildOutput out;
  out.seq = in.seq;
  std::vector<ConfigText> whole; // accepted or rejected with the config
  ObjectTexts objects;           // rejected one by one
  for (size_t i = 0; i < in.texts.size(); ++i) {
    if (i >= in.objects.size() || in.objects[i].empty()) {
      whole.push_back(std::move(in.texts[i]));
    } else {
      objects[in.objects[i]].push_back(std::move(in.texts[i]));
    }
  }
  std::map<std::string, RejectedObject> rejected;
  // Puts an object back at its last good version, or leaves it out; noting why.
  auto revert = [&](const std::string& object, const Diagnostics& why, bool toLastGood) {
    RejectedObject& r = rejected[object];
    if (r.object.empty()) {
      r.object = object;
      auto cur = objects.find(object);
      r.text = cur == objects.end() ? nullptr : cur->second.front().text;
      r.errors = why;
    }
    auto good = lastGood_.find(object);
    r.keptLastGood = toLastGood && good != lastGood_.end();
    if (r.keptLastGood) {
      objects[object] = good->second;
    } else {
      objects.erase(object);
    }
  };
  for (int round = 1;; ++round) {
    std::vector<ConfigText> texts = whole;
    for (const auto& [object, versions] : objects) {
      texts.insert(texts.end(), versions.begin(), versions.end());
    }
    out.build = build_(texts, rings_);
    out.build.diags.insert(out.build.diags.begin(), in.diags.begin(), in.diags.end());
    if (out.build.ok()) {
      lastGood_ = std::move(objects);
      for (auto& [object, r] : rejected) {
        out.rejected.push_back(std::move(r));
      }
      break;
    }
    if (round == kMaxIsolationRounds) {
      break;
    }
    std::map<std::string, Diagnostics> blamed;
    for (const Diagnostic& d : out.build.diags) {
      if (d.severity != Diagnostic::Severity::kError) {
        continue;
      }
      if (!objects.contains(d.object)) {
        blamed.clear(); // not an object's fault alone: the whole config is rejected
        break;
      }
      blamed[d.object].push_back(d);
    }
    if (blamed.empty()) {
      break;
    }
    for (const auto& [object, errors] : blamed) {
      auto good = lastGood_.find(object);
      if (good == lastGood_.end() || !sameTexts(good->second, objects[object])) {
        revert(object, errors, true);
        continue;
      }
      // It failed as it last succeeded: something it depends on changed. Its namespace's
      // changes (edits, additions, deletions) go back to their last good versions; when
      // there are none left, the object itself is left out.
      const std::string ns = namespaceOf(object);
      std::set<std::string> changed;
      for (const auto& [other, versions] : objects) {
        auto g = lastGood_.find(other);
        if (namespaceOf(other) == ns && (g == lastGood_.end() || !sameTexts(g->second, versions))) {
          changed.insert(other);
        }
      }
      for (const auto& [other, versions] : lastGood_) {
        if (namespaceOf(other) == ns && !objects.contains(other)) {
          changed.insert(other);
        }
      }
      if (changed.empty()) {
        revert(object, errors, false);
        continue;
      }
      for (const std::string& other : changed) {
        Diagnostics why = errors;
        for (Diagnostic& d : why) {
          d.message += " (" + object + " fails unchanged: " + other +
                       ", a change in its namespace, is rejected)";
        }
        revert(other, why, true);
      }
    }
  }
  if (routes_ && out.build.ok()) {
    out.routesJson =
        proxy::RouteTable::fromPlan(out.build.plan, *out.build.config, options_.routeOptions)
            ->toJson();
  }
  return out;
}

void Reconciler::onBuilt() {
  std::optional<BuildOutput> out = worker_.take();
  if (!out) {
    return;
  }
  settled_ = out->seq;
  if (out->seq != submitted_) {
    // A newer change arrived while this one was built: its build is queued or running.
    spdlog::debug("config build {} superseded by {}", out->seq, submitted_);
    return;
  }
  applyBuilt(*out);
}

std::string Reconciler::sourceNames() const {
  std::string names;
  for (const auto& [name, snap] : sources_) {
    names += (names.empty() ? "" : ", ") + name;
  }
  return names;
}

void Reconciler::applyBuilt(BuildOutput& out) {
  BuildResult& built = out.build;
  for (const Diagnostic& d : built.diags) {
    if (d.severity == Diagnostic::Severity::kError) {
      spdlog::error("{}", d.format());
    } else {
      spdlog::warn("{}", d.format());
    }
  }
  if (!built.ok()) {
    spdlog::error("config in {} rejected; the last good config keeps serving", sourceNames());
    reject();
    return;
  }
  takeRejected(std::move(out.rejected));
  if (routes_) {
    // The proxy first: once the maps flip, L7 services may reach it with the new
    // config's routes.
    if (Status s = routes_->publish(out.routesJson); !s) {
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

void Reconciler::takeRejected(std::vector<RejectedObject> rejected) {
  std::map<std::string, std::shared_ptr<const std::string>> logged;
  for (const RejectedObject& r : rejected) {
    auto seen = rejectedLogged_.find(r.object);
    const bool sameVersion =
        seen != rejectedLogged_.end() &&
        (seen->second == r.text || (seen->second && r.text && *seen->second == *r.text));
    if (!sameVersion) {
      for (const Diagnostic& d : r.errors) {
        spdlog::error("{}", d.format());
      }
      spdlog::error("{} rejected; {}", r.object,
                    r.keptLastGood ? "its last good version keeps serving"
                                   : "it is left out (it never had a good version)");
    }
    logged[r.object] = r.text;
  }
  for (const auto& [object, text] : rejectedLogged_) {
    if (!logged.contains(object)) {
      spdlog::info("{} is accepted again", object);
    }
  }
  rejectedLogged_ = std::move(logged);
  rejected_ = std::move(rejected);
  rejectedCount_.store(rejected_.size(), std::memory_order_relaxed);
  writeRejectedFile();
}

void Reconciler::writeRejectedFile() const {
  if (options_.rejectedFile.empty()) {
    return;
  }
  nlohmann::json list = nlohmann::json::array();
  for (const RejectedObject& r : rejected_) {
    nlohmann::json errors = nlohmann::json::array();
    for (const Diagnostic& d : r.errors) {
      errors.push_back(d.format());
    }
    list.push_back({{"object", r.object},
                    {"serving", r.keptLastGood ? "last good version" : "none"},
                    {"errors", std::move(errors)}});
  }
  const std::string text = nlohmann::json{{"rejected", std::move(list)}}.dump(2) + "\n";
  // Written beside and renamed, so veerctl never reads half a file.
  const std::string tmp = options_.rejectedFile + ".tmp";
  Fd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd || write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
      rename(tmp.c_str(), options_.rejectedFile.c_str()) != 0) {
    spdlog::warn("{}: {}", options_.rejectedFile, strerror(errno));
  }
}

uint64_t Reconciler::due() const {
  uint64_t next = nextResync_;
  for (const auto& [at, targets] : pending_) {
    next = std::min(next, at);
  }
  return next;
}

void Reconciler::onTimer() {
  const uint64_t now = clock_.nowMs();
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
  if (now >= nextResync_) {
    resync();
    nextResync_ = now + options_.resyncEveryMs;
  }
}

void Reconciler::resync() {
  if (image_ && !image_->laneClients.empty()) {
    apply(false);
  }
}

void Reconciler::schedule(RecyclePlan plan) {
  if (plan.empty()) {
    return;
  }
  if (dp_.recycler() == nullptr) {
    spdlog::warn("this change makes existing sockets stale, but socket recycling is "
                 "off or unavailable; they stay where they are");
    return;
  }
  if (!plan.now.empty()) {
    recycle(plan.now, "now (UDP peers that left their service)");
  }
  if (!plan.byClient.empty() && !dp_.recyclerSeesClients()) {
    for (const std::string& svc : plan.byClient) {
      spdlog::warn("{} has session affinity: its weight change leaves existing connections "
                   "where they are; closing those whose client's hash moved needs the "
                   "bpf_sock_destroy iterators (Linux >= 6.5), and this node recycles with "
                   "{}",
                   svc, dp_.recycler());
    }
    for (auto& [grace, targets] : plan.later) {
      std::erase_if(targets, [](const auto& t) { return t.first.kind == VEER_RECYCLE_AFFINITY; });
    }
    std::erase_if(plan.later, [](const auto& l) { return l.second.empty(); });
  }
  for (auto& [grace, targets] : plan.later) {
    spdlog::info("recycling sockets of {} target(s) (backends, affinity services) in {}s",
                 targets.size(), grace);
    pending_.emplace_back(clock_.nowMs() + uint64_t{grace} * 1000, std::move(targets));
  }
}

void Reconciler::recycle(const RecycleTargets& targets, const char* when) {
  Result<RecycleCount> n = dp_.recycle(targets);
  if (!n) {
    spdlog::error("socket recycling failed: {}", n.error().message);
    return;
  }
  spdlog::info("recycled {}: destroyed {} TCP and {} UDP socket(s) for {} target(s) across {} "
               "network namespace(s)",
               when, n->tcp, n->udp, targets.size(), n->netns);
}

bool Reconciler::apply(bool logUnchanged) {
  std::vector<std::string> unmatched;
  image_->lanes = laneCgroups(options_.cgroupRoot, image_->laneClients, &unmatched);
  const uint64_t digest = image_->digest();
  Result<veer_state> live = dp_.state();
  if (live && live->applied && live->digest == digest && lanesApplied_ &&
      sameLanes(*lanesApplied_, image_->lanes)) {
    if (logUnchanged) {
      spdlog::info("config unchanged (digest {:016x}), nothing to apply", digest);
    }
    return true;
  }
  if (Status s = dp_.apply(*image_); !s) {
    spdlog::error("apply failed, the last good config keeps serving: {}", s.error().message);
    reject();
    return false;
  }
  lanesApplied_ = image_->lanes;
  spdlog::info("applied config digest {:016x}: {} service ports, {} versions, {} backends, "
               "{} lane pods in {} cgroups",
               digest, image_->services.size(), image_->versions.size(), image_->backends.size(),
               image_->laneClients.size(), image_->lanes.size());
  for (const std::string& pod : unmatched) {
    spdlog::info("lane pod {} has no cgroup under {} yet; its connections get the weights", pod,
                 options_.cgroupRoot);
  }
  return true;
}

void Reconciler::reject() {
  if (Status s = dp_.countRejected(); !s) {
    spdlog::warn("{}", s.error().message);
  }
}

} // namespace veer
