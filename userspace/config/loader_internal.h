#pragma once

// Internals of the YAML loader, shared by its per-format files: loader.cpp (streams,
// documents, dispatch, metadata), loader_k8s.cpp (Service, Pod, EndpointSlice),
// loader_istio.cpp (DestinationRule, VirtualService, Gateway), loader_asm.cpp
// (TrafficLabel), loader_contour.cpp (IngressRoute, HTTPProxy), loader_gateway.cpp
// (Gateway API HTTPRoute). Not part of the library's interface.

#include "config/yaml.h"

#include <algorithm>
#include <array>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/strings.h"
#include "config/loader.h"

namespace veer::loading {

// Messages quote a scalar, a view into the Document. C++26 concatenates strings and
// string_views (P2591); until then, these do, for the loader only.
inline std::string operator+(std::string a, std::string_view b) {
  return a.append(b);
}
inline std::string operator+(const char* a, std::string_view b) {
  return std::string(a).append(b);
}
inline std::string operator+(std::string_view a, const char* b) {
  return std::string(a).append(b);
}

// How much of a value from a file a message quotes, and how long a message may be: a file
// that is not config (a secret a link led to) must not end up in the log.
inline constexpr size_t kMaxQuoteBytes = 40;
inline constexpr size_t kMaxMessageBytes = 400;

inline std::string describe(const yaml::Node& n) {
  switch (n.type()) {
  case yaml::NodeType::kMap:
    return "a map";
  case yaml::NodeType::kSequence:
    return "a sequence";
  case yaml::NodeType::kNull:
    return "nothing";
  case yaml::NodeType::kScalar:
    return "'" + excerpt(n.scalar(), kMaxQuoteBytes) + "'";
  default:
    return "nothing";
  }
}

/** Whole seconds of a Go-style duration of h, m and s parts ("3h", "1h30m", "45s", "0s"). */
inline std::optional<uint32_t> parseSeconds(const std::string& s) {
  uint64_t total = 0, n = 0;
  bool digits = false, any = false;
  for (char c : s) {
    if (c >= '0' && c <= '9') {
      n = n * 10 + static_cast<uint64_t>(c - '0');
      digits = true;
      if (n > UINT32_MAX) {
        return std::nullopt;
      }
      continue;
    }
    const uint64_t unit = c == 'h' ? 3600 : c == 'm' ? 60 : c == 's' ? 1 : 0;
    if (!digits || unit == 0) {
      return std::nullopt;
    }
    total += n * unit;
    n = 0;
    digits = false;
    any = true;
  }
  if (digits || !any || total > UINT32_MAX) {
    return std::nullopt; // a bare number has no unit; nothing at all is no duration
  }
  return static_cast<uint32_t>(total);
}

inline bool parseInt(std::string_view s, int64_t& out) {
  if (s.empty() || s.size() > 18) {
    return false;
  }
  size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  if (i == s.size()) {
    return false;
  }
  int64_t v = 0;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') {
      return false;
    }
    v = v * 10 + (s[i] - '0');
  }
  out = s[0] == '-' ? -v : v;
  return true;
}

/** A YAML map's entries by key, keeping key nodes for positions. */
struct Entry {
  yaml::Node key;
  yaml::Node value;
};

/**
 * The entries of one YAML map, sorted by key, each key once: what ObjectParser::fields()
 * returns for every map the loader reads. A flat vector, not a std::map: maps are small,
 * and a config of 10,000 services reads about a million of them.
 */
class Fields {
public:
  using value_type = std::pair<std::string_view, Entry>; // views of the Document's keys

  std::vector<value_type>::const_iterator begin() const { return entries_.begin(); }
  std::vector<value_type>::const_iterator end() const { return entries_.end(); }
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  /** The entry of key, or nullptr. */
  const Entry* find(std::string_view key) const {
    for (const auto& [k, e] : entries_) {
      if (k == key) {
        return &e;
      }
    }
    return nullptr;
  }

private:
  friend class ObjectParser;
  std::vector<value_type> entries_;
};

/**
 * The field names an object may have, as a view: a braced list of literals at the call
 * (an array on the stack, nothing allocated) or a static list of string_views.
 */
class Names {
public:
  // A parameter type: the braced list's array lives until the call's full expression
  // ends, as long as the Names does.
#if !defined(__clang__) // GCC's warning; clang has none of that name
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winit-list-lifetime"
#endif
  Names(std::initializer_list<std::string_view> l) : b_(l.begin()), e_(l.end()) {}
#if !defined(__clang__)
#pragma GCC diagnostic pop
#endif
  Names(const std::vector<std::string_view>& v) : b_(v.data()), e_(v.data() + v.size()) {}
  const std::string_view* begin() const {
    return b_;
  }
  const std::string_view* end() const {
    return e_;
  }
  bool contains(std::string_view name) const {
    return std::find(b_, e_, name) != e_;
  }

private:
  const std::string_view* b_;
  const std::string_view* e_;
};

/** Parses one object (one YAML document) and reports against it. */
class ObjectParser {
public:
  /** lineOffset: lines of the file before this document (its marks count from 0). */
  ObjectParser(FileName file, int lineOffset, Diagnostics& diags)
      : file_(std::move(file)), lineOffset_(lineOffset), diags_(diags) {}

  void setObject(std::string object) { object_ = std::move(object); }
  int lineOffset() const { return lineOffset_; }

  SourcePos pos(const yaml::Node& n) const {
    SourcePos p;
    p.file = file_;
    if (n.isDefined()) {
      yaml::Mark m = n.mark();
      if (!m.isNull()) {
        p.line = lineOffset_ + m.line + 1;
        p.column = SourcePos::column16(m.column + 1);
      }
    }
    return p;
  }

  void report(Diagnostic::Severity sev, const SourcePos& at, const std::string& field,
              std::string message) {
    Diagnostic d;
    d.severity = sev;
    d.pos = at;
    d.object = object_;
    d.field = excerpt(field, kMaxMessageBytes);
    d.message = excerpt(message, kMaxMessageBytes);
    diags_.push_back(std::move(d));
  }
  void error(const yaml::Node& at, const std::string& field, std::string message) {
    report(Diagnostic::Severity::kError, pos(at), field, std::move(message));
  }
  void warning(const yaml::Node& at, const std::string& field, std::string message) {
    report(Diagnostic::Severity::kWarning, pos(at), field, std::move(message));
  }

  /**
   * Entries of a map node; error if it is not a map. Unknown keys (not in known or
   * ignored) get a warning with a "did you mean" hint when checkUnknown. Keys in
   * unsupported are known to Istio but not to veer: a warning that they are ignored.
   */
  std::optional<Fields> fields(const yaml::Node& n, const std::string& path, Names known,
                               Names unsupported, bool checkUnknown) {
    if (!n.isMap()) {
      error(n, path, "expected a map, got " + describe(n));
      return std::nullopt;
    }
    Fields out;
    out.entries_.reserve(n.entries().size());
    auto sub = [&](std::string_view name) {
      return path.empty() ? std::string(name) : path + "." + std::string(name);
    };
    for (const auto& [k, value] : n.entries()) {
      if (!k.isScalar()) {
        error(k, path, "expected a string key, got " + describe(k));
        continue;
      }
      const std::string_view name = k.scalar();
      if (const Entry* first = out.find(name)) {
        error(k, sub(name),
              "duplicate key " + std::string(name) + " (first at line " +
                  std::to_string(pos(first->key).line) + ")");
        continue;
      }
      out.entries_.emplace_back(name, Entry{k, value});
      if (!checkUnknown || known.contains(name)) {
        continue;
      }
      if (unsupported.contains(name)) {
        warning(k, sub(name),
                "field " + std::string(name) + " is not supported by veer yet; ignored");
        continue;
      }
      std::vector<std::string> all(known.begin(), known.end());
      all.insert(all.end(), unsupported.begin(), unsupported.end());
      std::string hint = closest(std::string(name), all);
      warning(k, sub(name),
              "unknown field " + std::string(name) +
                  (hint.empty() ? "" : "; did you mean " + hint + "?"));
    }
    // Keys are unique (duplicates were refused above), so an unstable sort is enough, and
    // std::sort needs no buffer where std::stable_sort allocates one per map.
    std::sort(out.entries_.begin(), out.entries_.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    return out;
  }

  static const yaml::Node* get(const Fields& m, std::string_view key) {
    const Entry* e = m.find(key);
    if (e == nullptr || e->value.isNull()) {
      return nullptr;
    }
    return &e->value;
  }

  /** A scalar's text: a view into the Document, valid while it lives. */
  std::optional<std::string_view> string(const yaml::Node& n, const std::string& field) {
    if (!n.isScalar()) {
      error(n, field, "expected a string, got " + describe(n));
      return std::nullopt;
    }
    return n.scalar();
  }

  std::optional<int64_t> integer(const yaml::Node& n, const std::string& field) {
    int64_t v = 0;
    if (!n.isScalar() || !parseInt(n.scalar(), v)) {
      error(n, field, "expected an integer, got " + describe(n));
      return std::nullopt;
    }
    return v;
  }

  std::optional<bool> boolean(const yaml::Node& n, const std::string& field) {
    if (n.isScalar() && (n.scalar() == "true" || n.scalar() == "True")) {
      return true;
    }
    if (n.isScalar() && (n.scalar() == "false" || n.scalar() == "False")) {
      return false;
    }
    error(n, field, "expected true or false, got " + describe(n));
    return std::nullopt;
  }

  /** A protobuf Duration as YAML writes it: "5s", "0.5s", "100ms", "1m", "1h". */
  std::optional<std::string> duration(const yaml::Node& n, const std::string& field) {
    auto s = string(n, field);
    if (!s) {
      return std::nullopt;
    }
    size_t i = 0;
    bool digits = false;
    while (i < s->size() && (std::isdigit(static_cast<unsigned char>((*s)[i])) || (*s)[i] == '.')) {
      digits = digits || (*s)[i] != '.';
      ++i;
    }
    std::string unit(s->substr(i));
    if (!digits || (unit != "s" && unit != "ms" && unit != "us" && unit != "m" && unit != "h")) {
      error(n, field, "expected a duration like 5s or 100ms, got '" + *s + "'");
      return std::nullopt;
    }
    return std::string(*s);
  }

  std::optional<uint16_t> port(const yaml::Node& n, const std::string& field) {
    auto v = integer(n, field);
    if (!v) {
      return std::nullopt;
    }
    if (*v < 1 || *v > 65535) {
      error(n, field, "port " + std::to_string(*v) + " out of range 1..65535");
      return std::nullopt;
    }
    return static_cast<uint16_t>(*v);
  }

  std::optional<IpAddr> ip(const yaml::Node& n, const std::string& field) {
    auto s = string(n, field);
    if (!s) {
      return std::nullopt;
    }
    auto a = IpAddr::parse(*s);
    if (!a) {
      error(n, field, "expected an IP address, got '" + *s + "'");
    }
    return a;
  }

  std::optional<uint8_t> protocol(const yaml::Node& n, const std::string& field) {
    auto s = string(n, field);
    if (!s) {
      return std::nullopt;
    }
    if (*s == "TCP") {
      return 6;
    }
    if (*s == "UDP") {
      return 17;
    }
    if (*s == "SCTP") {
      warning(n, field, "protocol SCTP is not supported; port ignored");
    } else {
      error(n, field, "expected protocol TCP or UDP, got '" + *s + "'");
    }
    return std::nullopt;
  }

  Labels labels(const yaml::Node& n, const std::string& field) {
    Labels out;
    auto m = fields(n, field, {}, {}, false);
    if (!m) {
      return out;
    }
    for (const auto& [k, e] : *m) {
      if (e.value.isScalar()) {
        out.emplace(std::string(k), e.value.scalar()); // keys are unique: fields() checked
      } else {
        string(e.value, field + "." + std::string(k)); // the error
      }
    }
    return out;
  }

  std::vector<yaml::Node> sequence(const yaml::Node& n, const std::string& field) {
    std::vector<yaml::Node> out;
    if (!n.isSequence()) {
      error(n, field, "expected a list, got " + describe(n));
      return out;
    }
    for (const yaml::Node& item : n.items()) {
      out.push_back(item);
    }
    return out;
  }

  const FileName& file() const { return file_; }

private:
  FileName file_;
  int lineOffset_ = 0;
  Diagnostics& diags_;
  std::string object_;
};

inline std::string idx(const std::string& field, size_t i) {
  return field + "[" + std::to_string(i) + "]";
}

/** False (with an error at n) when RE2 rejects the regex v. */
bool checkRegex(ObjectParser& p, const yaml::Node& n, const std::string& field,
                const std::string& v);

/** Reads Kubernetes objects into a Config; one instance per loadPaths/loadString call. */
class Loader {
public:
  /** Loads the stream of fd, an open regular file, as the file path. */
  void loadFile(const std::string& path, int fd);

  void loadText(std::string_view text, const std::string& file);

  void fileError(const std::string& path, const std::string& message);

  /** The result, its object lists trimmed to their size. */
  LoadResult take();

  /** The sizes of a Config's object lists, in Config's member order. */
  using ListSizes = std::array<size_t, 8>;

  /**
   * One object a batch loaded, for the in-order merge: its identity, the diagnostic from
   * which on it is dropped when it turns out to be a duplicate (what a serial load would
   * not have reported: everything after its metadata), and the batch's list sizes once it
   * was added.
   */
  /** An object's identity: kind, namespace and name, the object's own interned strings. */
  struct ObjectKey {
    Str kind, ns, name;
    bool operator==(const ObjectKey&) const = default;
    std::string ref() const { return kind + " " + ns + "/" + name; } // "Kind ns/name"
  };
  struct ObjectKeyHash {
    size_t operator()(const ObjectKey& k) const {
      return (k.kind.hash() * 1000003 ^ k.ns.hash()) * 1000003 ^ k.name.hash();
    }
  };
  struct ObjectMark {
    ObjectKey key;
    SourcePos pos;
    size_t bodyDiags = 0; // result_.diags.size() when the metadata was read
    size_t endDiags = 0;  // ... and when the object was done
    ListSizes end{};
  };

  /** One document of a stream, as the splitter cut it. */
  struct Document {
    std::string text;
    int firstLine = 0; // 0-based line of the file where text starts
    size_t bytes = 0;  // its length in the stream; over kMaxDocumentBytes, text is dropped
  };
  /** Parses and loads one batch of a stream's documents (on a worker thread). */
  void loadBatch(std::vector<Document> docs, const FileName& file);

  /**
   * Takes a batch's objects and diagnostics, in stream order, dropping an object whose
   * "Kind ns/name" an earlier one (of any batch) already has: the only cross-document
   * check of loading, so batches can load in parallel and still read as if serial.
   */
  void merge(Loader&& batch);

private:
  void loadObject(ObjectParser& p, const yaml::Node& doc, const std::string& prefix);

  bool loadMeta(ObjectParser& p, const Fields& top, ObjectMeta& meta);

  void loadService(ObjectParser& p, ObjectMeta meta, const yaml::Node* spec);
  void loadSessionAffinity(ObjectParser& p, const Fields& s, Service& svc);

  void loadPod(ObjectParser& p, ObjectMeta meta, const yaml::Node* spec, const yaml::Node* status);

  void loadSlice(ObjectParser& p, ObjectMeta meta, const Fields& top);

  void loadDr(ObjectParser& p, ObjectMeta meta, const yaml::Node* spec);

  std::optional<LoadBalancer> loadTrafficPolicy(ObjectParser& p, const yaml::Node& n,
                                                const std::string& f);

  void loadVs(ObjectParser& p, ObjectMeta meta, const yaml::Node* spec);

  /**
   * Contour IngressRoute (contour.heptio.com/v1beta1) or HTTPProxy (projectcontour.io/v1)
   * as a VirtualService-shaped object in Config::ingressRoutes. Weights are kept as
   * written (relative); ingress.cpp normalizes them.
   */
  void loadContour(ObjectParser& p, ObjectMeta meta, const yaml::Node* spec);

  /** One Contour route (or HTTPProxy include when include) as a Route. */
  std::optional<Route> loadContourRoute(ObjectParser& p, const yaml::Node& n, const std::string& f,
                                        bool proxy, bool include);

  /** StringMatch: a map with exactly one of exact, prefix, regex. RE2 checks regexes here. */
  std::optional<StringMatch> loadStringMatch(ObjectParser& p, const yaml::Node& n,
                                             const std::string& f, bool* present = nullptr);

  ThinVector<KeyMatch> loadKeyMatches(ObjectParser& p, const yaml::Node& n, const std::string& f,
                                      bool lowercase);

  std::optional<HttpMatch> loadMatch(ObjectParser& p, const yaml::Node& n, const std::string& f,
                                     bool http);

  void loadHeaderOps(ObjectParser& p, const yaml::Node& n, const std::string& f, HeaderOps& out);

  HeaderActions loadHeaders(ObjectParser& p, const yaml::Node& n, const std::string& f);

  std::optional<double> percent(ObjectParser& p, const yaml::Node& n, const std::string& f);

  void loadActions(ObjectParser& p, const Fields& m, const std::string& f, RouteActions& a);

  void loadRoutes(ObjectParser& p, const yaml::Node* list, const std::string& field, bool http,
                  ThinVector<Route>& out);

  /** host, subset, port{number} of a Destination (also mirror and fallback targets). */
  bool loadTarget(ObjectParser& p, const yaml::Node& dest, const std::string& df, Str& host,
                  Str& subset, uint16_t& portOut, bool siblingsWeighted = false,
                  bool hasWeight = true);

  std::optional<RouteDestination> loadDestination(ObjectParser& p, const yaml::Node& n,
                                                  const std::string& f, bool http,
                                                  bool siblingsWeighted);

  void loadGateway(ObjectParser& p, ObjectMeta meta, const yaml::Node* spec);

  void loadTrafficLabel(ObjectParser& p, ObjectMeta meta, const yaml::Node* spec);

  // Gateway API (loader_gateway.cpp).
  void loadHttpRoute(ObjectParser& p, ObjectMeta meta, const yaml::Node* spec);
  /** One matches[] entry; pathKind/pathLen feed the precedence order. */
  std::optional<HttpMatch> loadGatewayMatch(ObjectParser& p, const yaml::Node& n,
                                            const std::string& f, int& pathKind, size_t& pathLen);
  /** Rule-level filters into r's header operations and actions. */
  void loadGatewayFilters(ObjectParser& p, const yaml::Node& n, const std::string& f,
                          const std::string& ns, Route& r);
  /** delegate: {name, namespace} (Istio http[].delegate, Contour routes[].delegate). */
  std::optional<Delegate> loadDelegate(ObjectParser& p, const yaml::Node& n, const std::string& f);
  /** A filters[] entry: its fields, and its type checked against the known ones. */
  struct GatewayFilter {
    Fields fields;
    std::string type;
  };
  std::optional<GatewayFilter> gatewayFilter(ObjectParser& p, const yaml::Node& n,
                                             const std::string& f);
  /** Request/ResponseHeaderModifier {set, add: [{name, value}], remove: [name]}. */
  bool loadGatewayHeaderModifier(ObjectParser& p, const yaml::Node& n, const std::string& f,
                                 HeaderOps& out);
  /** A backendRef (or, when mirror, a RequestMirror backendRef: no weight, no filters). */
  std::optional<RouteDestination> loadGatewayBackend(ObjectParser& p, const yaml::Node& n,
                                                     const std::string& f, const std::string& ns,
                                                     bool mirror);

  // Shared by the per-format loaders.
  size_t diagCount() const { return result_.diags.size(); }
  bool hasErrorsSince(size_t n) const {
    for (size_t i = n; i < result_.diags.size(); ++i) {
      if (result_.diags[i].severity == Diagnostic::Severity::kError) {
        return true;
      }
    }
    return false;
  }
  Config& config() { return result_.config; }

  LoadResult result_;
  std::vector<ObjectMark> marks_; // a batch's objects, in stream order
  std::unordered_map<ObjectKey, SourcePos, ObjectKeyHash> seen_; // merged: first position
};

} // namespace veer::loading
