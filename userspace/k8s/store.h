#pragma once

// The objects veer reads from the API, slimmed to the fields veer uses (as Cilium's slim
// types do), keyed by group, kind, namespace and name, with callbacks on every change.

#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace veer::k8s {

struct ObjectKey {
  std::string group; // "" for the core group; Istio's and Gateway API's Gateway differ here
  std::string kind;
  std::string ns; // "" for cluster-scoped
  std::string name;
  auto operator<=>(const ObjectKey&) const = default;
};

struct ApiObject {
  ObjectKey key;
  std::string apiVersion;
  std::string resourceVersion;
  /** The slim object as a JSON text with apiVersion and kind, one value a line: what
   * loadString() reads. */
  std::string json;
  /**
   * The name diagnostics carry instead of a file: "api:Kind". Not one per object: the
   * loader interns file names for the process's life, at most 65,535 of them, and a
   * cluster's objects (EndpointSlices come and go with generated names) pass that; every
   * diagnostic names its object anyway ("api:VirtualService:19:11: error: VirtualService
   * shop/bad: spec...").
   */
  std::string sourceName() const;
};

/**
 * The slim form of an API object: apiVersion, kind, metadata (name, namespace, uid,
 * labels, veer.io/ annotations) and per kind only what the loader reads: a Pod's IPs,
 * Ready condition, node and container ports; a Service's spec and status.loadBalancer; an
 * EndpointSlice's endpoints and ports; a routing object's spec. managedFields, other
 * annotations and status are dropped. kind and apiVersion are given: list items lack them.
 */
ApiObject slimObject(const nlohmann::json& obj, const std::string& group, const std::string& kind,
                     const std::string& apiVersion);

/** Told of every change, in order, under the store's lock: keep it short (queue the work). */
class StoreListener {
public:
  virtual ~StoreListener() = default;
  virtual void onUpsert(const ApiObject& obj) = 0;
  /** obj is the last state the store had. */
  virtual void onDelete(const ApiObject& obj) = 0;
};

/** Thread-safe. An object whose slim form did not change calls no listener. */
class ObjectStore {
public:
  explicit ObjectStore(StoreListener* listener = nullptr) : listener_(listener) {}

  void upsert(ApiObject obj);
  void remove(const ObjectKey& key, const std::string& resourceVersion = "");
  /**
   * The whole current set of one group and kind (a LIST, or nothing when its CRD went
   * away): what is absent is deleted, the rest upserted.
   */
  void replace(const std::string& group, const std::string& kind, std::vector<ApiObject> objs);

  std::vector<ApiObject> snapshot() const;
  size_t size() const;
  /** The object, or nullptr-like empty key when absent (tests, veerctl). */
  bool get(const ObjectKey& key, ApiObject& out) const;
  /** Bytes of slim JSON held: memory follows what veer uses. */
  size_t jsonBytes() const;

private:
  void upsertLocked(ApiObject obj);

  mutable std::mutex mu_;
  std::map<ObjectKey, ApiObject> objects_;
  StoreListener* listener_;
  size_t bytes_ = 0;
};

} // namespace veer::k8s
