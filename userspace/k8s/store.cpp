#include "k8s/store.h"

#include <nlohmann/json.hpp>

#include "config/model.h"

namespace veer::k8s {
namespace {

using nlohmann::json;

// Every annotation the loader reads is veer's own; keeping the prefix keeps new ones too.
constexpr std::string_view kVeerAnnotationPrefix = "veer.io/";
static_assert(std::string_view(kAffinityTimeoutAnnotation).starts_with(kVeerAnnotationPrefix));
static_assert(std::string_view(kRecycleGraceAnnotation).starts_with(kVeerAnnotationPrefix));

/** Copies the listed keys of from that exist into to. */
void keep(const json& from, json& to, std::initializer_list<const char*> keys) {
  if (!from.is_object()) {
    return;
  }
  for (const char* k : keys) {
    if (auto it = from.find(k); it != from.end()) {
      to[k] = *it;
    }
  }
}

json slimMeta(const json& md) {
  json out = json::object();
  keep(md, out, {"name", "namespace", "uid", "labels"});
  if (auto a = md.find("annotations"); a != md.end() && a->is_object()) {
    // The loader reads veer's own annotations only; kubectl's last-applied copy of the whole
    // object is often the largest field of all.
    json kept = json::object();
    for (auto it = a->begin(); it != a->end(); ++it) {
      if (it.key().starts_with(kVeerAnnotationPrefix)) {
        kept[it.key()] = it.value();
      }
    }
    if (!kept.empty()) {
      out["annotations"] = std::move(kept);
    }
  }
  return out;
}

json slimPod(const json& obj) {
  json out = json::object();
  json spec = json::object();
  if (auto s = obj.find("spec"); s != obj.end() && s->is_object()) {
    keep(*s, spec, {"nodeName", "hostNetwork"});
    if (auto cs = s->find("containers"); cs != s->end() && cs->is_array()) {
      json containers = json::array();
      for (const auto& c : *cs) {
        json slim = json::object();
        keep(c, slim, {"name", "ports"});
        containers.push_back(std::move(slim));
      }
      spec["containers"] = std::move(containers);
    }
  }
  out["spec"] = std::move(spec);
  if (auto st = obj.find("status"); st != obj.end() && st->is_object()) {
    json status = json::object();
    keep(*st, status, {"phase", "podIP", "podIPs"});
    if (auto cs = st->find("conditions"); cs != st->end() && cs->is_array()) {
      json conds = json::array();
      for (const auto& c : *cs) {
        if (c.is_object() && c.value("type", "") == "Ready") {
          json slim = json::object();
          keep(c, slim, {"type", "status"});
          conds.push_back(std::move(slim));
        }
      }
      status["conditions"] = std::move(conds);
    }
    out["status"] = std::move(status);
  }
  return out;
}

json slimService(const json& obj) {
  json out = json::object();
  if (auto s = obj.find("spec"); s != obj.end()) {
    json spec = json::object();
    keep(*s, spec,
         {"type", "clusterIP", "clusterIPs", "ports", "selector", "sessionAffinity",
          "sessionAffinityConfig", "externalIPs", "loadBalancerIP"});
    out["spec"] = std::move(spec);
  }
  if (auto st = obj.find("status"); st != obj.end() && st->is_object()) {
    json status = json::object();
    keep(*st, status, {"loadBalancer"});
    out["status"] = std::move(status);
  }
  return out;
}

json slimSlice(const json& obj) {
  json out = json::object();
  keep(obj, out, {"addressType", "ports"});
  if (auto es = obj.find("endpoints"); es != obj.end() && es->is_array()) {
    json eps = json::array();
    for (const auto& e : *es) {
      json slim = json::object();
      keep(e, slim, {"addresses", "conditions", "nodeName", "zone"});
      if (auto ref = e.find("targetRef"); ref != e.end()) {
        json r = json::object();
        keep(*ref, r, {"kind", "namespace", "name", "uid"});
        slim["targetRef"] = std::move(r);
      }
      eps.push_back(std::move(slim));
    }
    out["endpoints"] = std::move(eps);
  }
  return out;
}

} // namespace

std::string ApiObject::sourceName() const {
  return "api:" + key.kind;
}

ApiObject slimObject(const json& obj, const std::string& group, const std::string& kind,
                     const std::string& apiVersion) {
  json out;
  if (group.empty() && kind == "Pod") {
    out = slimPod(obj);
  } else if (group.empty() && kind == "Service") {
    out = slimService(obj);
  } else if (group == "discovery.k8s.io" && kind == "EndpointSlice") {
    out = slimSlice(obj);
  } else {
    // Routing objects: veer reads most of their spec and they are few; status is the
    // controllers' business.
    out = json::object();
    keep(obj, out, {"spec"});
  }
  ApiObject o;
  json md = json::object();
  if (auto m = obj.find("metadata"); m != obj.end() && m->is_object()) {
    md = slimMeta(*m);
    o.key.ns = m->value("namespace", "");
    o.key.name = m->value("name", "");
    o.resourceVersion = m->value("resourceVersion", "");
  }
  out["apiVersion"] = apiVersion;
  out["kind"] = kind;
  out["metadata"] = std::move(md);
  o.key.group = group;
  o.key.kind = kind;
  o.apiVersion = apiVersion;
  // One value a line (indent 0): a diagnostic's line points at the field, and columns stay
  // small (a position's column is 16 bits; a large EndpointSlice on one line passes that).
  o.json = out.dump(0);
  return o;
}

void ObjectStore::upsertLocked(ApiObject obj) {
  auto it = objects_.find(obj.key);
  if (it != objects_.end()) {
    if (it->second.json == obj.json) {
      it->second.resourceVersion = std::move(obj.resourceVersion);
      return; // nothing veer reads changed (a pod's unrelated status, say)
    }
    bytes_ -= it->second.json.size();
    bytes_ += obj.json.size();
    it->second = std::move(obj);
  } else {
    bytes_ += obj.json.size();
    it = objects_.emplace(obj.key, std::move(obj)).first;
  }
  if (listener_ != nullptr) {
    listener_->onUpsert(it->second);
  }
}

void ObjectStore::upsert(ApiObject obj) {
  std::lock_guard<std::mutex> lock(mu_);
  upsertLocked(std::move(obj));
}

void ObjectStore::remove(const ObjectKey& key, const std::string& resourceVersion) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) {
    return;
  }
  ApiObject last = std::move(it->second);
  objects_.erase(it);
  bytes_ -= last.json.size();
  if (!resourceVersion.empty()) {
    last.resourceVersion = resourceVersion;
  }
  if (listener_ != nullptr) {
    listener_->onDelete(last);
  }
}

void ObjectStore::replace(const std::string& group, const std::string& kind,
                          std::vector<ApiObject> objs) {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<ObjectKey, ApiObject*> fresh;
  for (auto& o : objs) {
    fresh[o.key] = &o;
  }
  for (auto it = objects_.begin(); it != objects_.end();) {
    const ObjectKey& k = it->first;
    if (k.group == group && k.kind == kind && fresh.count(k) == 0) {
      ApiObject last = std::move(it->second);
      it = objects_.erase(it);
      bytes_ -= last.json.size();
      if (listener_ != nullptr) {
        listener_->onDelete(last);
      }
    } else {
      ++it;
    }
  }
  for (auto& o : objs) {
    upsertLocked(std::move(o));
  }
}

std::vector<ApiObject> ObjectStore::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ApiObject> out;
  out.reserve(objects_.size());
  for (const auto& [k, o] : objects_) {
    out.push_back(o);
  }
  return out;
}

size_t ObjectStore::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return objects_.size();
}

bool ObjectStore::get(const ObjectKey& key, ApiObject& out) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) {
    return false;
  }
  out = it->second;
  return true;
}

size_t ObjectStore::jsonBytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_;
}

} // namespace veer::k8s
