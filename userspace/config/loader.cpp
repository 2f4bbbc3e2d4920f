// YAML -> Config. Every yaml-cpp exception is caught here and becomes a positioned
// Diagnostic; nothing escapes. Unknown Istio fields are warnings (with a "did you
// mean" hint), wrong types are errors naming file:line:col and the field path.

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "config/loader.h"

namespace veer {
namespace {

namespace fs = std::filesystem;

constexpr const char* kServiceNameLabel = "kubernetes.io/service-name";
constexpr const char* kMatchUnsupported =
    "match conditions need the L7 path (not yet supported); rule ignored";

size_t editDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1);
  std::vector<size_t> cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) {
    prev[j] = j;
  }
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

/** The closest of candidates to word, if close enough to be a likely typo. */
std::string closest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t bestDist = 3; // at most 2 edits
  for (const auto& c : candidates) {
    size_t d = editDistance(word, c);
    if (d < bestDist && d < std::max(word.size(), c.size())) {
      best = c;
      bestDist = d;
    }
  }
  return best;
}

std::string describe(const YAML::Node& n) {
  switch (n.Type()) {
  case YAML::NodeType::Map:
    return "a map";
  case YAML::NodeType::Sequence:
    return "a sequence";
  case YAML::NodeType::Null:
    return "nothing";
  case YAML::NodeType::Scalar:
    return "'" + n.Scalar() + "'";
  default:
    return "nothing";
  }
}

bool parseInt(const std::string& s, int64_t& out) {
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
  YAML::Node key;
  YAML::Node value;
};

/** Parses one object (one YAML document) and reports against it. */
class ObjectParser {
public:
  ObjectParser(std::string file, Diagnostics& diags) : file_(std::move(file)), diags_(diags) {}

  void setObject(std::string object) { object_ = std::move(object); }

  SourcePos pos(const YAML::Node& n) const {
    SourcePos p;
    p.file = file_;
    if (n.IsDefined()) {
      YAML::Mark m = n.Mark();
      if (!m.is_null()) {
        p.line = m.line + 1;
        p.column = m.column + 1;
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
    d.field = field;
    d.message = std::move(message);
    diags_.push_back(std::move(d));
  }
  void error(const YAML::Node& at, const std::string& field, std::string message) {
    report(Diagnostic::Severity::kError, pos(at), field, std::move(message));
  }
  void warning(const YAML::Node& at, const std::string& field, std::string message) {
    report(Diagnostic::Severity::kWarning, pos(at), field, std::move(message));
  }

  /**
   * Entries of a map node; error if it is not a map. Unknown keys (not in known or
   * ignored) get a warning with a "did you mean" hint when checkUnknown. Keys in
   * unsupported are known to Istio but not to veer: a warning that they are ignored.
   */
  std::optional<std::map<std::string, Entry>> fields(const YAML::Node& n, const std::string& path,
                                                    const std::vector<std::string>& known,
                                                    const std::vector<std::string>& unsupported,
                                                    bool checkUnknown) {
    if (!n.IsMap()) {
      error(n, path, "expected a map, got " + describe(n));
      return std::nullopt;
    }
    std::map<std::string, Entry> out;
    for (auto it = n.begin(); it != n.end(); ++it) {
      const YAML::Node& k = it->first;
      std::string name = k.IsScalar() ? k.Scalar() : std::string();
      std::string sub = path.empty() ? name : path + "." + name;
      if (!k.IsScalar()) {
        error(k, path, "expected a string key, got " + describe(k));
        continue;
      }
      if (out.count(name) != 0) {
        error(k, sub, "duplicate key " + name + " (first at line " +
                          std::to_string(pos(out[name].key).line) + ")");
        continue;
      }
      out[name] = Entry{k, it->second};
      if (!checkUnknown) {
        continue;
      }
      bool isKnown = std::find(known.begin(), known.end(), name) != known.end();
      if (isKnown) {
        continue;
      }
      if (std::find(unsupported.begin(), unsupported.end(), name) != unsupported.end()) {
        warning(k, sub, "field " + name + " is not supported by veer yet; ignored");
        continue;
      }
      std::vector<std::string> all = known;
      all.insert(all.end(), unsupported.begin(), unsupported.end());
      std::string hint = closest(name, all);
      warning(k, sub,
              "unknown field " + name + (hint.empty() ? "" : "; did you mean " + hint + "?"));
    }
    return out;
  }

  static const YAML::Node* get(const std::map<std::string, Entry>& m, const std::string& key) {
    auto it = m.find(key);
    if (it == m.end() || it->second.value.IsNull()) {
      return nullptr;
    }
    return &it->second.value;
  }

  std::optional<std::string> string(const YAML::Node& n, const std::string& field) {
    if (!n.IsScalar()) {
      error(n, field, "expected a string, got " + describe(n));
      return std::nullopt;
    }
    return n.Scalar();
  }

  std::optional<int64_t> integer(const YAML::Node& n, const std::string& field) {
    int64_t v = 0;
    if (!n.IsScalar() || !parseInt(n.Scalar(), v)) {
      error(n, field, "expected an integer, got " + describe(n));
      return std::nullopt;
    }
    return v;
  }

  std::optional<uint16_t> port(const YAML::Node& n, const std::string& field) {
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

  std::optional<IpAddr> ip(const YAML::Node& n, const std::string& field) {
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

  std::optional<uint8_t> protocol(const YAML::Node& n, const std::string& field) {
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

  Labels labels(const YAML::Node& n, const std::string& field) {
    Labels out;
    auto m = fields(n, field, {}, {}, false);
    if (!m) {
      return out;
    }
    for (const auto& [k, e] : *m) {
      auto v = string(e.value, field + "." + k);
      if (v) {
        out[k] = *v;
      }
    }
    return out;
  }

  std::vector<YAML::Node> sequence(const YAML::Node& n, const std::string& field) {
    std::vector<YAML::Node> out;
    if (!n.IsSequence()) {
      error(n, field, "expected a list, got " + describe(n));
      return out;
    }
    for (const auto& item : n) {
      out.push_back(item);
    }
    return out;
  }

  const std::string& file() const { return file_; }

private:
  std::string file_;
  Diagnostics& diags_;
  std::string object_;
};

std::string idx(const std::string& field, size_t i) {
  return field + "[" + std::to_string(i) + "]";
}

class Loader {
public:
  void loadFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      fileError(path, "cannot read file");
      return;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    if (in.bad()) {
      fileError(path, "cannot read file");
      return;
    }
    loadText(ss.str(), path);
  }

  void loadText(std::string_view text, const std::string& file) {
    std::vector<YAML::Node> docs;
    try {
      docs = YAML::LoadAll(std::string(text));
    } catch (const YAML::Exception& e) {
      Diagnostic d;
      d.pos.file = file;
      if (!e.mark.is_null()) {
        d.pos.line = e.mark.line + 1;
        d.pos.column = e.mark.column + 1;
      }
      d.message = "YAML syntax error: " + e.msg;
      result_.diags.push_back(std::move(d));
      return;
    }
    for (const auto& doc : docs) {
      ObjectParser p(file, result_.diags);
      try {
        loadObject(p, doc, "");
      } catch (const YAML::Exception& e) {
        // Our accessors check types first; this is a last line of defence.
        SourcePos at{file, e.mark.is_null() ? 0 : e.mark.line + 1,
                     e.mark.is_null() ? 0 : e.mark.column + 1};
        p.report(Diagnostic::Severity::kError, at, "", "cannot read object: " + e.msg);
      }
    }
  }

  void fileError(const std::string& path, const std::string& message) {
    Diagnostic d;
    d.pos.file = path;
    d.message = message;
    result_.diags.push_back(std::move(d));
  }

  LoadResult take() { return std::move(result_); }

private:
  void loadObject(ObjectParser& p, const YAML::Node& doc, const std::string& prefix) {
    if (doc.IsNull()) {
      return; // empty document, e.g. a trailing "---"
    }
    auto top = p.fields(doc, prefix, {}, {}, false);
    if (!top) {
      return;
    }
    const YAML::Node* kindNode = ObjectParser::get(*top, "kind");
    const YAML::Node* apiNode = ObjectParser::get(*top, "apiVersion");
    if (kindNode == nullptr || apiNode == nullptr) {
      p.error(doc, prefix, "not a Kubernetes object: missing kind or apiVersion");
      return;
    }
    auto kind = p.string(*kindNode, prefix.empty() ? "kind" : prefix + ".kind");
    auto api = p.string(*apiNode, prefix.empty() ? "apiVersion" : prefix + ".apiVersion");
    if (!kind || !api) {
      return;
    }
    if (*kind == "List" && *api == "v1") {
      const YAML::Node* items = ObjectParser::get(*top, "items");
      if (items != nullptr) {
        auto list = p.sequence(*items, "items");
        for (size_t i = 0; i < list.size(); ++i) {
          ObjectParser sub(p.file(), result_.diags);
          loadObject(sub, list[i], idx("items", i));
        }
      }
      return;
    }
    bool istio = *api == "networking.istio.io/v1alpha3" || *api == "networking.istio.io/v1beta1" ||
                 *api == "networking.istio.io/v1";
    enum class Kind { kService, kPod, kSlice, kDr, kVs, kNone } k = Kind::kNone;
    if (*api == "v1" && *kind == "Service") {
      k = Kind::kService;
    } else if (*api == "v1" && *kind == "Pod") {
      k = Kind::kPod;
    } else if (*api == "discovery.k8s.io/v1" && *kind == "EndpointSlice") {
      k = Kind::kSlice;
    } else if (istio && *kind == "DestinationRule") {
      k = Kind::kDr;
    } else if (istio && *kind == "VirtualService") {
      k = Kind::kVs;
    }
    if (k == Kind::kNone) {
      p.warning(*kindNode, prefix,
                "kind " + *kind + " (apiVersion " + *api + ") is not used by veer; ignored");
      return;
    }

    ObjectMeta meta;
    meta.kind = *kind;
    meta.apiVersion = *api;
    meta.pos = p.pos(doc);
    if (!loadMeta(p, *top, meta)) {
      return;
    }
    p.setObject(meta.ref());
    if (!checkDuplicate(p, meta)) {
      return;
    }
    const YAML::Node* spec = ObjectParser::get(*top, "spec");
    const YAML::Node* status = ObjectParser::get(*top, "status");
    switch (k) {
    case Kind::kService:
      loadService(p, std::move(meta), spec);
      break;
    case Kind::kPod:
      loadPod(p, std::move(meta), spec, status);
      break;
    case Kind::kSlice:
      loadSlice(p, std::move(meta), *top);
      break;
    case Kind::kDr:
      loadDr(p, std::move(meta), spec);
      break;
    case Kind::kVs:
      loadVs(p, std::move(meta), spec);
      break;
    case Kind::kNone:
      break;
    }
  }

  bool loadMeta(ObjectParser& p, const std::map<std::string, Entry>& top, ObjectMeta& meta) {
    const YAML::Node* md = ObjectParser::get(top, "metadata");
    if (md == nullptr) {
      p.report(Diagnostic::Severity::kError, meta.pos, "metadata", "missing metadata.name");
      return false;
    }
    auto m = p.fields(*md, "metadata", {}, {}, false);
    if (!m) {
      return false;
    }
    const YAML::Node* name = ObjectParser::get(*m, "name");
    if (name == nullptr) {
      p.error(*md, "metadata", "missing metadata.name");
      return false;
    }
    auto n = p.string(*name, "metadata.name");
    if (!n || n->empty()) {
      return false;
    }
    meta.name = *n;
    meta.ns = "default";
    if (const YAML::Node* ns = ObjectParser::get(*m, "namespace")) {
      if (auto v = p.string(*ns, "metadata.namespace"); v && !v->empty()) {
        meta.ns = *v;
      }
    }
    if (const YAML::Node* l = ObjectParser::get(*m, "labels")) {
      meta.labels = p.labels(*l, "metadata.labels");
    }
    if (const YAML::Node* a = ObjectParser::get(*m, "annotations")) {
      meta.annotations = p.labels(*a, "metadata.annotations");
    }
    return true;
  }

  bool checkDuplicate(ObjectParser& p, const ObjectMeta& meta) {
    std::string key = meta.ref();
    auto [it, inserted] = seen_.emplace(key, meta.pos);
    if (!inserted) {
      const SourcePos& first = it->second;
      p.report(Diagnostic::Severity::kError, meta.pos, "",
               "duplicate object; first defined at " + first.file + ":" +
                   std::to_string(first.line) + ":" + std::to_string(first.column));
      return false;
    }
    return true;
  }

  void loadService(ObjectParser& p, ObjectMeta meta, const YAML::Node* spec) {
    Service svc;
    svc.meta = std::move(meta);
    if (spec == nullptr) {
      config().services.push_back(std::move(svc)); // no address, no ports: nothing to route
      return;
    }
    auto s = p.fields(*spec, "spec", {}, {}, false);
    if (!s) {
      return;
    }
    std::vector<std::string> ips;
    if (const YAML::Node* list = ObjectParser::get(*s, "clusterIPs")) {
      auto items = p.sequence(*list, "spec.clusterIPs");
      for (size_t i = 0; i < items.size(); ++i) {
        if (auto v = p.string(items[i], idx("spec.clusterIPs", i))) {
          if (*v != "None" && !v->empty()) {
            if (auto a = p.ip(items[i], idx("spec.clusterIPs", i))) {
              svc.clusterIPs.push_back(*a);
            }
          }
        }
      }
    } else if (const YAML::Node* one = ObjectParser::get(*s, "clusterIP")) {
      if (auto v = p.string(*one, "spec.clusterIP"); v && *v != "None" && !v->empty()) {
        if (auto a = p.ip(*one, "spec.clusterIP")) {
          svc.clusterIPs.push_back(*a);
        }
      }
    }
    if (svc.clusterIPs.size() == 2 && svc.clusterIPs[0].v4 == svc.clusterIPs[1].v4) {
      p.error(*ObjectParser::get(*s, "clusterIPs"), "spec.clusterIPs",
              "two clusterIPs of the same address family");
      svc.clusterIPs.resize(1);
    }
    if (const YAML::Node* ports = ObjectParser::get(*s, "ports")) {
      auto items = p.sequence(*ports, "spec.ports");
      for (size_t i = 0; i < items.size(); ++i) {
        std::string f = idx("spec.ports", i);
        auto pm = p.fields(items[i], f, {}, {}, false);
        if (!pm) {
          continue;
        }
        ServicePort sp;
        sp.pos = p.pos(items[i]);
        if (const YAML::Node* n = ObjectParser::get(*pm, "name")) {
          sp.name = p.string(*n, f + ".name").value_or("");
        }
        const YAML::Node* portNode = ObjectParser::get(*pm, "port");
        if (portNode == nullptr) {
          p.error(items[i], f + ".port", "missing port");
          continue;
        }
        auto port = p.port(*portNode, f + ".port");
        if (!port) {
          continue;
        }
        sp.port = *port;
        if (const YAML::Node* proto = ObjectParser::get(*pm, "protocol")) {
          auto pr = p.protocol(*proto, f + ".protocol");
          if (!pr) {
            continue;
          }
          sp.proto = *pr;
        }
        sp.targetPort = sp.port;
        if (const YAML::Node* tp = ObjectParser::get(*pm, "targetPort")) {
          int64_t v = 0;
          if (tp->IsScalar() && parseInt(tp->Scalar(), v)) {
            if (auto t = p.port(*tp, f + ".targetPort")) {
              sp.targetPort = *t;
            }
          } else if (tp->IsScalar()) {
            sp.targetPort = 0;
            sp.targetPortName = tp->Scalar();
          } else {
            p.error(*tp, f + ".targetPort",
                    "expected a port number or name, got " + describe(*tp));
          }
        }
        svc.ports.push_back(std::move(sp));
      }
    }
    if (const YAML::Node* sel = ObjectParser::get(*s, "selector")) {
      svc.selector = p.labels(*sel, "spec.selector");
    }
    config().services.push_back(std::move(svc));
  }

  void loadPod(ObjectParser& p, ObjectMeta meta, const YAML::Node* spec, const YAML::Node* status) {
    Pod pod;
    pod.meta = std::move(meta);
    auto addIp = [&](const IpAddr& a) {
      if (std::find(pod.ips.begin(), pod.ips.end(), a) == pod.ips.end()) {
        pod.ips.push_back(a);
      }
    };
    if (status != nullptr) {
      auto st = p.fields(*status, "status", {}, {}, false);
      if (st) {
        if (const YAML::Node* ip = ObjectParser::get(*st, "podIP")) {
          if (auto a = p.ip(*ip, "status.podIP")) {
            addIp(*a);
          }
        }
        if (const YAML::Node* ips = ObjectParser::get(*st, "podIPs")) {
          auto items = p.sequence(*ips, "status.podIPs");
          for (size_t i = 0; i < items.size(); ++i) {
            std::string f = idx("status.podIPs", i);
            auto m = p.fields(items[i], f, {}, {}, false);
            if (!m) {
              continue;
            }
            if (const YAML::Node* ip = ObjectParser::get(*m, "ip")) {
              if (auto a = p.ip(*ip, f + ".ip")) {
                addIp(*a);
              }
            }
          }
        }
        if (const YAML::Node* conds = ObjectParser::get(*st, "conditions")) {
          auto items = p.sequence(*conds, "status.conditions");
          for (size_t i = 0; i < items.size(); ++i) {
            std::string f = idx("status.conditions", i);
            auto m = p.fields(items[i], f, {}, {}, false);
            if (!m) {
              continue;
            }
            const YAML::Node* type = ObjectParser::get(*m, "type");
            const YAML::Node* value = ObjectParser::get(*m, "status");
            if (type != nullptr && type->IsScalar() && type->Scalar() == "Ready" &&
                value != nullptr) {
              auto v = p.string(*value, f + ".status");
              pod.ready = v && *v == "True";
            }
          }
        }
      }
    }
    if (spec != nullptr) {
      auto sp = p.fields(*spec, "spec", {}, {}, false);
      const YAML::Node* containers = sp ? ObjectParser::get(*sp, "containers") : nullptr;
      if (containers != nullptr) {
        auto items = p.sequence(*containers, "spec.containers");
        for (size_t i = 0; i < items.size(); ++i) {
          std::string f = idx("spec.containers", i);
          auto c = p.fields(items[i], f, {}, {}, false);
          const YAML::Node* ports = c ? ObjectParser::get(*c, "ports") : nullptr;
          if (ports == nullptr) {
            continue;
          }
          auto plist = p.sequence(*ports, f + ".ports");
          for (size_t j = 0; j < plist.size(); ++j) {
            std::string pf = idx(f + ".ports", j);
            auto pm = p.fields(plist[j], pf, {}, {}, false);
            if (!pm) {
              continue;
            }
            const YAML::Node* name = ObjectParser::get(*pm, "name");
            const YAML::Node* cp = ObjectParser::get(*pm, "containerPort");
            if (cp == nullptr) {
              p.error(plist[j], pf + ".containerPort", "missing containerPort");
              continue;
            }
            auto port = p.port(*cp, pf + ".containerPort");
            if (port && name != nullptr) {
              if (auto n = p.string(*name, pf + ".name")) {
                pod.namedPorts[*n] = *port;
              }
            }
          }
        }
      }
    }
    config().pods.push_back(std::move(pod));
  }

  void loadSlice(ObjectParser& p, ObjectMeta meta, const std::map<std::string, Entry>& top) {
    EndpointSlice es;
    es.meta = std::move(meta);
    auto svc = es.meta.labels.find(kServiceNameLabel);
    if (svc == es.meta.labels.end()) {
      p.report(Diagnostic::Severity::kWarning, es.meta.pos, "metadata.labels",
               std::string("no ") + kServiceNameLabel + " label; EndpointSlice ignored");
      return;
    }
    es.serviceName = svc->second;
    if (const YAML::Node* eps = ObjectParser::get(top, "endpoints")) {
      auto items = p.sequence(*eps, "endpoints");
      for (size_t i = 0; i < items.size(); ++i) {
        std::string f = idx("endpoints", i);
        auto m = p.fields(items[i], f, {}, {}, false);
        if (!m) {
          continue;
        }
        EndpointSlice::Endpoint ep;
        if (const YAML::Node* addrs = ObjectParser::get(*m, "addresses")) {
          auto list = p.sequence(*addrs, f + ".addresses");
          for (size_t j = 0; j < list.size(); ++j) {
            if (auto a = p.ip(list[j], idx(f + ".addresses", j))) {
              ep.addresses.push_back(*a);
            }
          }
        }
        if (const YAML::Node* conds = ObjectParser::get(*m, "conditions")) {
          auto cm = p.fields(*conds, f + ".conditions", {}, {}, false);
          const YAML::Node* ready = cm ? ObjectParser::get(*cm, "ready") : nullptr;
          if (ready != nullptr) {
            auto v = p.string(*ready, f + ".conditions.ready");
            if (v && (*v == "true" || *v == "True")) {
              ep.ready = true;
            } else if (v && (*v == "false" || *v == "False")) {
              ep.ready = false;
            } else if (v) {
              p.error(*ready, f + ".conditions.ready", "expected true or false, got '" + *v + "'");
            }
          }
        }
        if (const YAML::Node* ref = ObjectParser::get(*m, "targetRef")) {
          auto rm = p.fields(*ref, f + ".targetRef", {}, {}, false);
          if (rm) {
            const YAML::Node* kind = ObjectParser::get(*rm, "kind");
            const YAML::Node* name = ObjectParser::get(*rm, "name");
            if (kind != nullptr && name != nullptr && kind->IsScalar() &&
                kind->Scalar() == "Pod") {
              ep.podName = p.string(*name, f + ".targetRef.name").value_or("");
            }
          }
        }
        es.endpoints.push_back(std::move(ep));
      }
    }
    if (const YAML::Node* ports = ObjectParser::get(top, "ports")) {
      auto items = p.sequence(*ports, "ports");
      for (size_t i = 0; i < items.size(); ++i) {
        std::string f = idx("ports", i);
        auto m = p.fields(items[i], f, {}, {}, false);
        if (!m) {
          continue;
        }
        EndpointSlice::Port port;
        if (const YAML::Node* n = ObjectParser::get(*m, "name")) {
          port.name = p.string(*n, f + ".name").value_or("");
        }
        const YAML::Node* pn = ObjectParser::get(*m, "port");
        if (pn == nullptr) {
          continue; // "all ports" slices carry no port; the service's targetPort applies
        }
        auto v = p.port(*pn, f + ".port");
        if (!v) {
          continue;
        }
        port.port = *v;
        if (const YAML::Node* proto = ObjectParser::get(*m, "protocol")) {
          auto pr = p.protocol(*proto, f + ".protocol");
          if (!pr) {
            continue;
          }
          port.proto = *pr;
        }
        es.ports.push_back(std::move(port));
      }
    }
    config().endpointSlices.push_back(std::move(es));
  }

  void loadDr(ObjectParser& p, ObjectMeta meta, const YAML::Node* spec) {
    DestinationRule dr;
    dr.meta = std::move(meta);
    if (spec == nullptr) {
      p.report(Diagnostic::Severity::kError, dr.meta.pos, "spec", "missing spec");
      return;
    }
    auto s = p.fields(*spec, "spec", {"host", "subsets"},
                      {"trafficPolicy", "exportTo", "workloadSelector"}, true);
    if (!s) {
      return;
    }
    const YAML::Node* host = ObjectParser::get(*s, "host");
    if (host == nullptr) {
      p.error(*spec, "spec.host", "missing host");
      return;
    }
    auto h = p.string(*host, "spec.host");
    if (!h) {
      return;
    }
    dr.host = *h;
    dr.hostPos = p.pos(*host);
    if (const YAML::Node* subsets = ObjectParser::get(*s, "subsets")) {
      auto items = p.sequence(*subsets, "spec.subsets");
      for (size_t i = 0; i < items.size(); ++i) {
        std::string f = idx("spec.subsets", i);
        auto m = p.fields(items[i], f, {"name", "labels"}, {"trafficPolicy"}, true);
        if (!m) {
          continue;
        }
        Subset sub;
        sub.pos = p.pos(items[i]);
        const YAML::Node* name = ObjectParser::get(*m, "name");
        if (name == nullptr) {
          p.error(items[i], f + ".name", "missing subset name");
          continue;
        }
        auto n = p.string(*name, f + ".name");
        if (!n) {
          continue;
        }
        sub.name = *n;
        bool dup = std::any_of(dr.subsets.begin(), dr.subsets.end(),
                               [&](const Subset& o) { return o.name == sub.name; });
        if (dup) {
          p.error(*name, f + ".name", "subset " + sub.name + " defined twice");
          continue;
        }
        if (const YAML::Node* l = ObjectParser::get(*m, "labels")) {
          sub.labels = p.labels(*l, f + ".labels");
        }
        dr.subsets.push_back(std::move(sub));
      }
    }
    config().destinationRules.push_back(std::move(dr));
  }

  void loadVs(ObjectParser& p, ObjectMeta meta, const YAML::Node* spec) {
    VirtualService vs;
    vs.meta = std::move(meta);
    if (spec == nullptr) {
      p.report(Diagnostic::Severity::kError, vs.meta.pos, "spec", "missing spec");
      return;
    }
    auto s = p.fields(*spec, "spec", {"hosts", "http", "tcp", "gateways"}, {"tls", "exportTo"},
                      true);
    if (!s) {
      return;
    }
    const YAML::Node* hosts = ObjectParser::get(*s, "hosts");
    if (hosts == nullptr) {
      p.error(*spec, "spec.hosts", "missing hosts");
      return;
    }
    auto hlist = p.sequence(*hosts, "spec.hosts");
    for (size_t i = 0; i < hlist.size(); ++i) {
      if (auto h = p.string(hlist[i], idx("spec.hosts", i))) {
        vs.hosts.push_back(*h);
        vs.hostPos.push_back(p.pos(hlist[i]));
      }
    }
    if (const YAML::Node* gw = ObjectParser::get(*s, "gateways")) {
      // Istio applies a VirtualService bound to gateways to mesh traffic only if "mesh" is listed.
      auto list = p.sequence(*gw, "spec.gateways");
      bool mesh = false;
      std::string names;
      for (size_t i = 0; i < list.size(); ++i) {
        if (auto g = p.string(list[i], idx("spec.gateways", i))) {
          mesh = mesh || *g == "mesh";
          names += (names.empty() ? "" : ", ") + *g;
        }
      }
      if (!list.empty() && !mesh) {
        p.warning(*gw, "spec.gateways",
                  "bound to gateways (" + names +
                      ") and not to mesh; veer routes mesh traffic only; VirtualService ignored");
        return;
      }
    }
    loadRoutes(p, s->count("http") ? ObjectParser::get(*s, "http") : nullptr, "spec.http", true,
               vs.http);
    loadRoutes(p, s->count("tcp") ? ObjectParser::get(*s, "tcp") : nullptr, "spec.tcp", false,
               vs.tcp);
    config().virtualServices.push_back(std::move(vs));
  }

  void loadRoutes(ObjectParser& p, const YAML::Node* list, const std::string& field, bool http,
                  std::vector<Route>& out) {
    if (list == nullptr) {
      return;
    }
    static const std::vector<std::string> kHttpKnown = {"name", "match", "route"};
    static const std::vector<std::string> kHttpUnsupported = {
        "redirect", "directResponse", "delegate", "rewrite", "timeout", "retries", "fault",
        "mirror", "mirrors", "mirrorPercentage", "mirror_percent", "mirrorPercent", "corsPolicy",
        "headers"};
    static const std::vector<std::string> kTcpKnown = {"match", "route"};
    auto items = p.sequence(*list, field);
    for (size_t i = 0; i < items.size(); ++i) {
      std::string f = idx(field, i);
      auto m = p.fields(items[i], f, http ? kHttpKnown : kTcpKnown,
                        http ? kHttpUnsupported : std::vector<std::string>{}, true);
      if (!m) {
        continue;
      }
      Route r;
      r.pos = p.pos(items[i]);
      r.field = f;
      if (const YAML::Node* n = ObjectParser::get(*m, "name")) {
        r.name = p.string(*n, f + ".name").value_or("");
      }
      if (auto it = m->find("match"); it != m->end()) {
        p.warning(it->second.key, f + ".match", kMatchUnsupported);
        continue;
      }
      const YAML::Node* route = ObjectParser::get(*m, "route");
      if (route == nullptr) {
        if (http && (m->count("redirect") || m->count("directResponse") || m->count("delegate"))) {
          continue; // already warned: unsupported action
        }
        p.error(items[i], f + ".route", "missing route");
        continue;
      }
      auto dests = p.sequence(*route, f + ".route");
      bool anyWeight = false;
      for (const auto& d : dests) {
        if (d.IsMap() && d["weight"].IsDefined()) {
          anyWeight = true;
        }
      }
      for (size_t j = 0; j < dests.size(); ++j) {
        std::string df = idx(f + ".route", j);
        if (auto d = loadDestination(p, dests[j], df, http, anyWeight)) {
          r.destinations.push_back(std::move(*d));
        }
      }
      out.push_back(std::move(r));
    }
  }

  std::optional<RouteDestination> loadDestination(ObjectParser& p, const YAML::Node& n,
                                                  const std::string& f, bool http,
                                                  bool siblingsWeighted) {
    static const std::vector<std::string> kKnown = {"destination", "weight"};
    static const std::vector<std::string> kHttpUnsupported = {"headers"};
    if (!n.IsMap()) {
      p.error(n, f, "expected a map, got " + describe(n));
      return std::nullopt;
    }
    // "port: 5" beside destination, where weight was meant (Contour's docs do this).
    std::map<std::string, Entry> raw;
    for (auto it = n.begin(); it != n.end(); ++it) {
      if (it->first.IsScalar()) {
        raw[it->first.Scalar()] = Entry{it->first, it->second};
      }
    }
    auto stray = raw.find("port");
    bool strayPortHint = stray != raw.end() && raw.count("weight") == 0 && siblingsWeighted;
    if (strayPortHint) {
      int64_t v = 0;
      std::string val = stray->second.value.IsScalar() ? stray->second.value.Scalar() : "";
      bool num = parseInt(val, v);
      p.error(stray->second.key, f + ".port",
              "unknown field port" +
                  std::string(num ? "; did you mean weight: " + val + "?" : "; did you mean weight?") +
                  " (the other destinations have weights)");
    }
    auto m = p.fields(n, f, kKnown, http ? kHttpUnsupported : std::vector<std::string>{},
                      !strayPortHint);
    if (!m) {
      return std::nullopt;
    }
    if (strayPortHint) {
      // Report other unknowns too, but not port again.
      for (const auto& [k, e] : *m) {
        if (k != "port" && std::find(kKnown.begin(), kKnown.end(), k) == kKnown.end()) {
          std::string hint = closest(k, kKnown);
          p.warning(e.key, f + "." + k,
                    "unknown field " + k + (hint.empty() ? "" : "; did you mean " + hint + "?"));
        }
      }
    }
    RouteDestination rd;
    rd.pos = p.pos(n);
    rd.field = f;
    if (const YAML::Node* w = ObjectParser::get(*m, "weight")) {
      auto v = p.integer(*w, f + ".weight");
      if (!v) {
        return std::nullopt;
      }
      rd.weight = *v;
    }
    const YAML::Node* dest = ObjectParser::get(*m, "destination");
    if (dest == nullptr) {
      p.error(n, f + ".destination", "missing destination");
      return std::nullopt;
    }
    std::string df = f + ".destination";
    auto dm = p.fields(*dest, df, {"host", "subset", "port"}, {}, true);
    if (!dm) {
      return std::nullopt;
    }
    const YAML::Node* host = ObjectParser::get(*dm, "host");
    if (host == nullptr) {
      p.error(*dest, df + ".host", "missing host");
      return std::nullopt;
    }
    auto h = p.string(*host, df + ".host");
    if (!h) {
      return std::nullopt;
    }
    rd.host = *h;
    if (const YAML::Node* sub = ObjectParser::get(*dm, "subset")) {
      auto v = p.string(*sub, df + ".subset");
      if (!v) {
        return std::nullopt;
      }
      rd.subset = *v;
    }
    if (const YAML::Node* port = ObjectParser::get(*dm, "port")) {
      if (!port->IsMap()) {
        int64_t v = 0;
        bool num = port->IsScalar() && parseInt(port->Scalar(), v);
        std::string hint = num ? "; write port: {number: " + port->Scalar() + "}" : "";
        if (num && !rd.weight && siblingsWeighted) {
          hint += ", or did you mean weight: " + port->Scalar() + "?";
        }
        p.error(*port, df + ".port", "expected a map with number, got " + describe(*port) + hint);
        return std::nullopt;
      }
      auto pm = p.fields(*port, df + ".port", {"number"}, {}, true);
      const YAML::Node* num = pm ? ObjectParser::get(*pm, "number") : nullptr;
      if (num == nullptr) {
        p.error(*port, df + ".port.number", "missing number");
        return std::nullopt;
      }
      auto v = p.port(*num, df + ".port.number");
      if (!v) {
        return std::nullopt;
      }
      rd.port = *v;
    }
    return rd;
  }

  Config& config() { return result_.config; }

  LoadResult result_;
  std::map<std::string, SourcePos> seen_; // "Kind ns/name" -> first position
};

bool wantedExtension(const fs::path& p) {
  std::string ext = p.extension().string();
  return ext == ".yaml" || ext == ".yml" || ext == ".json";
}

void collect(const fs::path& path, bool top, std::set<fs::path>& stack,
             std::vector<std::string>& files, Loader& loader) {
  std::error_code ec;
  fs::file_status st = fs::status(path, ec); // follows symlinks
  if (ec || !fs::exists(st)) {
    loader.fileError(path.string(), top ? "no such file or directory" : "broken symlink");
    return;
  }
  if (fs::is_directory(st)) {
    fs::path canon = fs::canonical(path, ec);
    if (ec) {
      loader.fileError(path.string(), "cannot resolve directory: " + ec.message());
      return;
    }
    if (stack.count(canon) != 0) {
      return; // symlink loop
    }
    std::vector<fs::path> entries;
    for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
      std::string name = it->path().filename().string();
      if (name.rfind("..", 0) == 0) {
        continue; // ConfigMap internals (..data, ..2026_01_01): read via top-level links
      }
      entries.push_back(it->path());
    }
    if (ec) {
      loader.fileError(path.string(), "cannot list directory: " + ec.message());
      return;
    }
    std::sort(entries.begin(), entries.end());
    stack.insert(canon);
    for (const auto& e : entries) {
      collect(e, false, stack, files, loader);
    }
    stack.erase(canon);
    return;
  }
  if (top || (fs::is_regular_file(st) && wantedExtension(path))) {
    files.push_back(path.string());
  }
}

} // namespace

LoadResult loadPaths(const std::vector<std::string>& paths) {
  Loader loader;
  std::vector<std::string> files;
  for (const auto& p : paths) {
    std::set<fs::path> stack;
    collect(fs::path(p), true, stack, files, loader);
  }
  for (const auto& f : files) {
    loader.loadFile(f);
  }
  return loader.take();
}

LoadResult loadString(std::string_view yaml, const std::string& fileName) {
  Loader loader;
  loader.loadText(yaml, fileName);
  return loader.take();
}

} // namespace veer
