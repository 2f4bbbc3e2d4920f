#pragma once

// The resolver's insides, shared by its three rooms: resolve_index.cpp (the Config
// indexed once), resolve_validate.cpp (each Service's rules checked and classified) and
// resolve_build.cpp (the PlanServices). resolve.cpp runs them in that order. Only
// config/resolve*.cpp include this.

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "config/resolve.h"

namespace veer::resolver {

using Key = std::pair<Str, Str>; // (namespace, name)

/**
 * Hashes and compares any pair or tuple of strings, string_views included, so an index
 * keyed by strings is searched with views of the caller's strings (no copies).
 */
struct StringsHash {
  using is_transparent = void;
  // A Str's hash is std::hash of its text, computed once: the same for a view of it.
  static size_t hashOf(const Str& s) { return s.hash(); }
  static size_t hashOf(std::string_view s) { return std::hash<std::string_view>()(s); }
  template <class Tuple> size_t operator()(const Tuple& t) const {
    return std::apply(
        [](const auto&... s) {
          size_t h = 0;
          ((h = h * 1000003 ^ hashOf(s)), ...);
          return h;
        },
        t);
  }
};
struct StringsEqual {
  using is_transparent = void;
  template <class A, class B> bool operator()(const A& a, const B& b) const {
    return [&]<size_t... I>(std::index_sequence<I...>) {
      return ((std::string_view(std::get<I>(a)) == std::string_view(std::get<I>(b))) && ...);
    }
    (std::make_index_sequence<std::tuple_size_v<A>>());
  }
};
template <class K, class V> using Index = std::unordered_map<K, V, StringsHash, StringsEqual>;
using KeyView = std::pair<std::string_view, std::string_view>; // a Key to look up
using LabelKey = std::tuple<Str, Str, Str>;                    // ns, label, value
using LabelKeyView = std::tuple<std::string_view, std::string_view, std::string_view>;

inline std::string keyStr(const Key& k) {
  return k.first + "/" + k.second;
}

/**
 * name, name.ns, name.ns.svc, name.ns.svc.cluster.local -> (ns, name), as views of host
 * and ns (a lookup per destination: no allocation).
 */
std::optional<KeyView> parseHost(std::string_view host, std::string_view ns);

/** Whether have holds every label of want. */
bool matches(const Labels& have, const Labels& want);

/** A ready endpoint of one service port in one address family. */
struct Candidate {
  PlanBackend backend;
  const Pod* pod = nullptr; // for subset labels; null for slice endpoints without a Pod
};

/** The rules of one service, after validation, and what they need. */
struct ServiceRules {
  const VirtualService* vs = nullptr;
  ThinVector<PlanRoute> routes; // delegates inlined
  std::vector<PlanWhy> l7;      // findings that need request bytes
  std::vector<PlanWhy> kernel;  // conditions decidable per client pod
};

class Resolver {
public:
  /** owner, when set, is c: the plan's rules then point into it rather than copy it. */
  Resolver(const Config& c, std::shared_ptr<const Config> owner)
      : c_(c), owner_(std::move(owner)) {}
  /** Index, validate, build: the plan of the whole Config, with every finding. */
  ResolveResult run();

  /** The indexes subsets() reads (run() builds its own). */
  void indexEndpoints();
  /** After indexEndpoints(): every subset of a service port with its ready endpoints. */
  std::vector<SubsetEndpoints> subsets(const PlanService& ps, uint16_t port);

private:
  // ---- Indexing the Config (resolve_index.cpp) -------------------------------
  void index();
  std::vector<const Pod*> selected(const std::string& ns, const Labels& selector);
  std::string unknownHost(const std::string& host, const std::string& ns);
  const Service* lookup(const std::string& host, const std::string& ns, Key* key = nullptr);
  void indexDestinationRules();
  const TrafficLabel::Label* trafficLabel(const std::string& name, const std::string& ns,
                                          const TrafficLabel** owner);

  // ---- Validating and classifying each Service's rules (resolve_validate.cpp)
  static HttpMatch mergeMatch(const HttpMatch& parent, const HttpMatch& child);
  bool expand(const VirtualService& vs, ThinVector<PlanRoute>& out);
  static std::string matchWhat(const KeyMatch& k);
  void classify(const PlanRoute& pr, const std::string& ns, std::vector<PlanWhy>& l7,
                std::vector<PlanWhy>& kernel);
  void indexVirtualServices();
  bool decide(const VirtualService& vs, const Key& k, const SourcePos& hp, const std::string& field,
              ServiceRules& dec);
  static const ServicePort* destPort(const Service& dsvc, uint16_t port, uint16_t fromPort);
  bool validateRoute(const VirtualService& vs, const Route& r, const Key& k);

  // ---- Building the PlanServices (resolve_build.cpp) -------------------------
  /**
   * What building a range of services gives, merged in service order: the build runs on
   * every core for a large config (each service is built from read-only indexes; only its
   * own ServiceRules is moved from).
   */
  struct BuildOut {
    std::vector<PlanService> services;
    Diagnostics diags;
    DiagnosticSink diag{diags};
    std::vector<PlanLaneClient> laneClients; // sorted, each once
  };
  /** Fewer services than this build on the calling thread alone (every test, every seed). */
  static constexpr size_t kParallelBuild = 2048;
  static void addLaneClient(std::vector<PlanLaneClient>& all, PlanLaneClient client);
  std::optional<uint16_t> podTarget(const ServicePort& sp, const Pod& pod, const Service& svc,
                                    DiagnosticSink& diag);
  std::vector<Candidate> endpoints(const Service& svc, const ServicePort& sp, bool v4,
                                   DiagnosticSink& diag);
  std::vector<PlanBackend> pick(const std::vector<Candidate>& cands, const Labels& want);
  static Labels labelsOf(const Service& svc, const DestinationRule* dr, const std::string& name);
  void describe(PlanService& ps, ServiceRules* dec, bool lastUse, const DestinationRule* dr);
  std::string laneLabel(const std::string& subset, const std::string& ns,
                        const TrafficLabel** owner);
  template <class SubsetLabels>
  void compileLanes(PlanService& ps, const RouteDestination& d, size_t destinations,
                    const std::string& source, const Key& k, const std::vector<Candidate>& cands,
                    const SubsetLabels& subsetLabels, BuildOut& out);
  void build();
  void buildRange(size_t begin, size_t end, BuildOut& out);
  std::shared_ptr<const Route> share(const Route& r) const;

  // ---- state ------------------------------------------------------------------
  const Config& c_;
  std::shared_ptr<const Config> owner_;
  ResolveResult result_;
  DiagnosticSink diag_{result_.diags}; // the same finding can come from several ports or families
  // Indexes, so resolution stays linear in the size of the config. They are only looked
  // up; ordered_ is what is walked (diagnostics and the plan follow its order).
  Index<Key, const Service*> services_;
  std::vector<const Service*> ordered_; // each (namespace, name) once, sorted by it
  // The largest are keyed by views of the Config's own strings (it outlives the Resolver).
  Index<Key, const Pod*> pods_;
  Index<LabelKey, ThinVector<const Pod*>> podsByLabel_;    // -> pods, config order
  Index<Key, ThinVector<const EndpointSlice*>> slices_;    // (namespace, service) -> slices
  std::unordered_map<Str, const VirtualService*> vsByRef_; // "VirtualService ns/name"
  Index<Key, const VirtualService*> vsByKey_;
  Index<Key, const DestinationRule*> drs_;
  Index<Key, std::pair<const VirtualService*, SourcePos>> claims_;
  Index<Key, ServiceRules> serviceRules_;
  std::unordered_set<Key, StringsHash, StringsEqual> failed_;
};

} // namespace veer::resolver
