#include "k8s/reflector.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

namespace veer::k8s {
namespace {

using nlohmann::json;

// etcd stores objects up to 1.5 MiB; an event line far past that is a broken stream, and
// buffering it without end would take the agent's memory.
constexpr size_t kMaxEventBytes = 16u << 20;

/** A Status body's reason for a 504 "Too large resource version" (the server is behind the
 * version asked for, e.g. restored from a backup): relist from scratch, as client-go does. */
bool tooLargeVersion(const std::string& body) {
  json s = json::parse(body, nullptr, false);
  if (!s.is_object()) {
    return false;
  }
  auto details = s.find("details");
  if (details == s.end() || !details->is_object()) {
    return false;
  }
  auto causes = details->find("causes");
  if (causes == details->end() || !causes->is_array()) {
    return false;
  }
  for (const auto& c : *causes) {
    if (c.is_object() && c.value("reason", "") == "ResourceVersionTooLarge") {
      return true;
    }
  }
  return false;
}

std::string statusMessage(const std::string& body) {
  json s = json::parse(body, nullptr, false);
  if (s.is_object() && s.contains("message") && s["message"].is_string()) {
    return s["message"].get<std::string>();
  }
  return body.substr(0, 200);
}

} // namespace

std::string ResourceType::collectionPath() const {
  return (group.empty() ? "/api/" + version : "/apis/" + group + "/" + version) + "/" + resource;
}

std::string ResourceType::name() const {
  return group.empty() ? resource : resource + "." + group + "/" + version;
}

ReflectorCounts ReflectorStats::snapshot() const {
  return ReflectorCounts{lists,   listPages, watches,   events,     bookmarks, errors,
                         expired, throttled, backoffMs, lastSyncNs, synced};
}

Duration Backoff::next() {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  auto d = step_;
  auto jittered = d + std::chrono::duration_cast<Duration>(d * (policy_.jitter * u(rng_)));
  step_ = std::min(policy_.max, std::chrono::duration_cast<Duration>(step_ * policy_.factor));
  return std::min(policy_.max, jittered);
}

Reflector::Reflector(ApiClient& client, ObjectStore& store, ResourceType type,
                     ReflectorOptions options, Clock& clock)
    : client_(client), store_(store), type_(std::move(type)), options_(std::move(options)),
      clock_(clock), backoff_(options_.backoff, options_.seed), rng_(options_.seed + 1) {}

std::string Reflector::resourceVersion() const {
  std::lock_guard<std::mutex> lock(mu_);
  return rv_;
}

void Reflector::setVersion(std::string rv) {
  if (rv.empty()) {
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  rv_ = std::move(rv);
}

void Reflector::run(StopToken& stop) {
  while (!stop.stopped()) {
    Step l = list(stop);
    if (l.outcome != Outcome::kOk) {
      if (!wait(stop, l)) {
        return;
      }
      continue;
    }
    // Watch until the stream's version is gone; transient failures re-watch from the last
    // version seen, so a cut connection costs no relist.
    while (!stop.stopped()) {
      Step w = watch(stop);
      if (w.outcome == Outcome::kOk) {
        continue;
      }
      if (w.outcome == Outcome::kExpired) {
        break; // relist now: waiting would only widen the gap
      }
      if (!wait(stop, w)) {
        return;
      }
    }
  }
}

bool Reflector::wait(StopToken& stop, const Step& step) {
  Duration d = step.retryAfter ? Duration(std::chrono::seconds(*step.retryAfter)) : backoff_.next();
  stats_.backoffMs += d.count();
  return clock_.sleepFor(d, stop);
}

Reflector::Step Reflector::failed(const HttpResponse& r, const char* what) {
  Step s;
  if (r.status == 410 || (r.status == 504 && tooLargeVersion(r.body))) {
    ++stats_.expired;
    s.outcome = Outcome::kExpired;
    spdlog::info("k8s {}: {} at resourceVersion {}: {} ({}); listing again", type_.name(), what,
                 resourceVersion(), r.status, statusMessage(r.body));
    return s;
  }
  ++stats_.errors;
  if (r.status == 429) {
    ++stats_.throttled;
    s.outcome = Outcome::kThrottled;
    s.retryAfter = r.retryAfterSeconds;
    return s;
  }
  s.outcome = Outcome::kError;
  spdlog::warn("k8s {}: {} failed: HTTP {}: {}", type_.name(), what, r.status,
               statusMessage(r.body));
  return s;
}

Reflector::Step Reflector::list(StopToken& stop) {
  std::string rv;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // client-go's relistResourceVersion: "0" (any, from the server's cache) the first time,
    // then at least as new as what was seen, or "" (the newest, from etcd) once that is gone.
    rv = rvUnavailable_ ? "" : rv_.empty() ? "0" : rv_;
  }
  Step s = listOnce(stop, rv);
  if (s.outcome == Outcome::kExpired && !rv.empty()) {
    s = listOnce(stop, "");
  }
  return s;
}

Reflector::Step Reflector::listOnce(StopToken& stop, const std::string& rv) {
  std::vector<ApiObject> objs;
  std::string cont;
  std::string listRv;
  const std::string selector =
      options_.fieldSelector.empty() ? "" : "&fieldSelector=" + urlEncode(options_.fieldSelector);
  do {
    std::string q = type_.collectionPath() + "?";
    if (!cont.empty()) {
      q += "limit=" + std::to_string(options_.pageSize) + "&continue=" + urlEncode(cont);
    } else if (rv == "0") {
      q += "resourceVersion=0";
    } else {
      q += "limit=" + std::to_string(options_.pageSize) +
           (rv.empty() ? "" : "&resourceVersion=" + rv);
    }
    q += selector;
    ++stats_.listPages;
    auto r = client_.get(q, stop, std::chrono::seconds(120));
    if (!r) {
      if (!stop.stopped()) {
        ++stats_.errors;
        spdlog::warn("k8s {}: list failed: {}", type_.name(), r.error().message);
      }
      return Step{Outcome::kError, {}};
    }
    if (r->status != 200) {
      Step f = failed(*r, "list");
      if (f.outcome == Outcome::kExpired) {
        // Only a LIST that cannot be served marks the version gone (client-go): after a
        // watch's 410 a list "not older than" it still works, from the server's cache.
        std::lock_guard<std::mutex> lock(mu_);
        rvUnavailable_ = true;
      }
      return f;
    }
    json body = json::parse(r->body, nullptr, false);
    if (!body.is_object() || !body.contains("items") ||
        (!body["items"].is_array() && !body["items"].is_null())) {
      ++stats_.errors;
      spdlog::warn("k8s {}: list answered something that is not a list", type_.name());
      return Step{Outcome::kError, {}};
    }
    std::string listKind = body.value("kind", "");
    if (listKind != type_.kind + "List") {
      ++stats_.errors;
      spdlog::warn("k8s {}: list answered kind '{}', expected {}List", type_.name(), listKind,
                   type_.kind);
      return Step{Outcome::kError, {}};
    }
    const json& md = body["metadata"];
    listRv = md.is_object() ? md.value("resourceVersion", "") : "";
    cont = md.is_object() ? md.value("continue", "") : "";
    if (body["items"].is_array()) {
      for (const auto& item : body["items"]) {
        // Items carry no kind or apiVersion: they are the list's (FooList -> Foo, checked above).
        objs.push_back(slimObject(item, type_.group, type_.kind, type_.apiVersion()));
      }
    }
  } while (!cont.empty() && !stop.stopped());
  if (stop.stopped()) {
    return Step{Outcome::kError, {}};
  }
  size_t n = objs.size();
  store_.replace(type_.group, type_.kind, std::move(objs));
  {
    std::lock_guard<std::mutex> lock(mu_);
    rv_ = listRv;
    rvUnavailable_ = false;
  }
  ++stats_.lists;
  stats_.lastSyncNs =
      std::chrono::duration_cast<std::chrono::nanoseconds>(clock_.now().time_since_epoch()).count();
  stats_.synced = true;
  backoff_.reset();
  spdlog::debug("k8s {}: listed {} at resourceVersion {}", type_.name(), n, listRv);
  return Step{};
}

bool Reflector::handleEvent(std::string_view line, Step& step) {
  json ev = json::parse(line, nullptr, false);
  if (!ev.is_object() || !ev.contains("type") || !ev["type"].is_string() ||
      !ev.contains("object") || !ev["object"].is_object()) {
    ++stats_.errors;
    spdlog::warn("k8s {}: watch sent a line that is not an event: {}", type_.name(),
                 std::string(line.substr(0, 200)));
    step.outcome = Outcome::kError;
    return false;
  }
  const std::string type = ev["type"].get<std::string>();
  const json& obj = ev["object"];
  if (type == "ERROR") {
    HttpResponse r;
    r.status = obj.value("code", 500);
    r.body = obj.dump();
    step = failed(r, "watch");
    return false;
  }
  const json& md = obj.contains("metadata") ? obj["metadata"] : json::object();
  std::string rv = md.is_object() ? md.value("resourceVersion", "") : "";
  if (type == "BOOKMARK") {
    ++stats_.bookmarks;
    setVersion(std::move(rv));
    return true;
  }
  if (type != "ADDED" && type != "MODIFIED" && type != "DELETED") {
    ++stats_.errors;
    spdlog::warn("k8s {}: watch event of unknown type '{}'", type_.name(), type);
    step.outcome = Outcome::kError;
    return false;
  }
  ++stats_.events;
  ApiObject o = slimObject(obj, type_.group, type_.kind, type_.apiVersion());
  if (type == "DELETED") {
    store_.remove(o.key, o.resourceVersion);
  } else {
    store_.upsert(std::move(o));
  }
  setVersion(std::move(rv));
  return true;
}

Reflector::Step Reflector::watch(StopToken& stop) {
  std::uniform_real_distribution<double> u(1.0, 2.0);
  auto timeout = std::chrono::seconds(
      static_cast<int64_t>(static_cast<double>(options_.minWatchTimeout.count()) * u(rng_)));
  std::string q = type_.collectionPath() +
                  "?watch=1&allowWatchBookmarks=true&resourceVersion=" + resourceVersion() +
                  "&timeoutSeconds=" + std::to_string(timeout.count());
  if (!options_.fieldSelector.empty()) {
    q += "&fieldSelector=" + urlEncode(options_.fieldSelector);
  }
  ++stats_.watches;
  Step step;
  std::string buf;
  uint64_t before = stats_.events + stats_.bookmarks;
  TimePoint start = clock_.now();
  auto r = client_.stream(q, stop, timeout + std::chrono::seconds(30), [&](std::string_view data) {
    buf.append(data);
    size_t from = 0;
    for (size_t nl; (nl = buf.find('\n', from)) != std::string::npos; from = nl + 1) {
      std::string_view line(buf.data() + from, nl - from);
      if (line.find_first_not_of(" \r\t") == std::string_view::npos) {
        continue;
      }
      if (!handleEvent(line, step)) {
        return false;
      }
    }
    buf.erase(0, from);
    if (buf.size() > kMaxEventBytes) {
      ++stats_.errors;
      spdlog::warn("k8s {}: watch event longer than {} bytes; reconnecting", type_.name(),
                   kMaxEventBytes);
      step.outcome = Outcome::kError;
      return false;
    }
    return true;
  });
  if (!r) {
    if (stop.stopped()) {
      return step;
    }
    ++stats_.errors;
    spdlog::warn("k8s {}: watch failed: {}", type_.name(), r.error().message);
    return Step{Outcome::kError, {}};
  }
  if (r->status != 200) {
    return failed(*r, "watch");
  }
  if (step.outcome != Outcome::kOk) {
    return step;
  }
  // A watch the server ends at once without a single event is an error in disguise (client-go:
  // "very short watch"): back off rather than spin.
  if (stats_.events + stats_.bookmarks == before &&
      clock_.now() - start < std::chrono::seconds(1)) {
    spdlog::warn("k8s {}: watch ended at once without events", type_.name());
    return Step{Outcome::kError, {}};
  }
  backoff_.reset();
  return step;
}

} // namespace veer::k8s
