// YAML -> Config. Every yaml-cpp exception is caught here and becomes a positioned
// Diagnostic; nothing escapes. Unknown Istio fields are warnings (with a "did you
// mean" hint), wrong types are errors naming file:line:col and the field path.

#include <re2/re2.h>
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

/** One document of a multi-document YAML stream. */
struct YamlDocument {
  std::string text;
  int firstLine = 0; // 0-based line of the file where text starts
};

/** True for a document marker line: "---" or "..." at column 0, alone or before a space. */
bool isDocumentMarker(std::string_view line, std::string_view marker) {
  return line.substr(0, 3) == marker &&
         (line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r' || line[3] == '\n');
}

/**
 * Splits a stream at its document markers, so each document is parsed on its
 * own with YAML::Load. yaml-cpp 0.7's LoadAll loops forever on some malformed
 * streams (jbeder/yaml-cpp#1040, fixed upstream after 0.8); one Load per
 * document cannot. The split is exact: YAML forbids "---" and "..." at
 * column 0 inside content. A "---" is blanked rather than dropped so content
 * after it on the same line keeps its column.
 */
std::vector<YamlDocument> splitDocuments(std::string_view text) {
  std::vector<YamlDocument> docs(1);
  int lineNo = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    const size_t next = end == std::string_view::npos ? text.size() : end + 1;
    std::string_view line = text.substr(start, next - start);
    if (isDocumentMarker(line, "---")) {
      docs.push_back(YamlDocument{"", lineNo});
      docs.back().text.append("   ").append(line.substr(3));
    } else if (isDocumentMarker(line, "...")) {
      docs.push_back(YamlDocument{"", lineNo + 1});
    } else {
      docs.back().text.append(line);
    }
    start = next;
    ++lineNo;
  }
  return docs;
}

namespace fs = std::filesystem;

constexpr const char* kServiceNameLabel = "kubernetes.io/service-name";

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

/** Whole seconds of a Go-style duration of h, m and s parts ("3h", "1h30m", "45s", "0s"). */
std::optional<uint32_t> parseSeconds(const std::string& s) {
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

/** A YAML map's entries by key, keeping key nodes for positions. */
struct Entry {
  YAML::Node key;
  YAML::Node value;
};

/** Parses one object (one YAML document) and reports against it. */
class ObjectParser {
public:
  /** lineOffset: lines of the file before this document (its marks count from 0). */
  ObjectParser(std::string file, int lineOffset, Diagnostics& diags)
      : file_(std::move(file)), lineOffset_(lineOffset), diags_(diags) {}

  void setObject(std::string object) { object_ = std::move(object); }
  int lineOffset() const { return lineOffset_; }

  SourcePos pos(const YAML::Node& n) const {
    SourcePos p;
    p.file = file_;
    if (n.IsDefined()) {
      YAML::Mark m = n.Mark();
      if (!m.is_null()) {
        p.line = lineOffset_ + m.line + 1;
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
      const YAML::Node k = it->first; // a copy: it-> is a proxy temporary
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

  std::optional<bool> boolean(const YAML::Node& n, const std::string& field) {
    if (n.IsScalar() && (n.Scalar() == "true" || n.Scalar() == "True")) {
      return true;
    }
    if (n.IsScalar() && (n.Scalar() == "false" || n.Scalar() == "False")) {
      return false;
    }
    error(n, field, "expected true or false, got " + describe(n));
    return std::nullopt;
  }

  /** A protobuf Duration as YAML writes it: "5s", "0.5s", "100ms", "1m", "1h". */
  std::optional<std::string> duration(const YAML::Node& n, const std::string& field) {
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
    std::string unit = s->substr(i);
    if (!digits || (unit != "s" && unit != "ms" && unit != "us" && unit != "m" && unit != "h")) {
      error(n, field, "expected a duration like 5s or 100ms, got '" + *s + "'");
      return std::nullopt;
    }
    return *s;
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
  int lineOffset_ = 0;
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
    for (const YamlDocument& doc : splitDocuments(text)) {
      YAML::Node node;
      try {
        node = YAML::Load(doc.text);
      } catch (const YAML::Exception& e) {
        Diagnostic d;
        d.pos.file = file;
        if (!e.mark.is_null()) {
          d.pos.line = doc.firstLine + e.mark.line + 1;
          d.pos.column = e.mark.column + 1;
        }
        d.message = "YAML syntax error: " + e.msg;
        result_.diags.push_back(std::move(d));
        continue;
      }
      ObjectParser p(file, doc.firstLine, result_.diags);
      try {
        loadObject(p, node, "");
      } catch (const YAML::Exception& e) {
        // Our accessors check types first; this is a last line of defence.
        SourcePos at{file, e.mark.is_null() ? 0 : doc.firstLine + e.mark.line + 1,
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
          ObjectParser sub(p.file(), p.lineOffset(), result_.diags);
          loadObject(sub, list[i], idx("items", i));
        }
      }
      return;
    }
    bool istio = *api == "networking.istio.io/v1alpha3" || *api == "networking.istio.io/v1beta1" ||
                 *api == "networking.istio.io/v1";
    enum class Kind { kService, kPod, kSlice, kDr, kVs, kGw, kTl, kContour, kNone } k = Kind::kNone;
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
    } else if (istio && *kind == "Gateway") {
      k = Kind::kGw;
    } else if (*api == "istio.alibabacloud.com/v1beta1" && *kind == "TrafficLabel") {
      k = Kind::kTl;
    } else if ((*api == "contour.heptio.com/v1beta1" && *kind == "IngressRoute") ||
               (*api == "projectcontour.io/v1" && *kind == "HTTPProxy")) {
      k = Kind::kContour;
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
    case Kind::kGw:
      loadGateway(p, std::move(meta), spec);
      break;
    case Kind::kTl:
      loadTrafficLabel(p, std::move(meta), spec);
      break;
    case Kind::kContour:
      loadContour(p, std::move(meta), spec);
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
    if (const YAML::Node* u = ObjectParser::get(*m, "uid")) {
      meta.uid = p.string(*u, "metadata.uid").value_or("");
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
    loadSessionAffinity(p, *s, svc);
    config().services.push_back(std::move(svc));
  }

  /** spec.sessionAffinity and sessionAffinityConfig.clientIP.timeoutSeconds, as the API validates them. */
  void loadSessionAffinity(ObjectParser& p, const std::map<std::string, Entry>& s, Service& svc) {
    if (const YAML::Node* sa = ObjectParser::get(s, "sessionAffinity")) {
      auto v = p.string(*sa, "spec.sessionAffinity");
      if (v && *v == "ClientIP") {
        svc.clientIpAffinity = true;
      } else if (v && *v != "None") {
        p.error(*sa, "spec.sessionAffinity", "expected ClientIP or None, got '" + *v + "'");
      }
    }
    const YAML::Node* cfg = ObjectParser::get(s, "sessionAffinityConfig");
    if (cfg == nullptr) {
      return;
    }
    auto c = p.fields(*cfg, "spec.sessionAffinityConfig", {"clientIP"}, {}, true);
    const YAML::Node* cip = c ? ObjectParser::get(*c, "clientIP") : nullptr;
    auto ci = cip ? p.fields(*cip, "spec.sessionAffinityConfig.clientIP", {"timeoutSeconds"}, {},
                             true)
                  : std::nullopt;
    const YAML::Node* t = ci ? ObjectParser::get(*ci, "timeoutSeconds") : nullptr;
    if (t == nullptr) {
      return;
    }
    const std::string f = "spec.sessionAffinityConfig.clientIP.timeoutSeconds";
    if (auto v = p.integer(*t, f)) {
      if (*v <= 0 || *v > 86400) {
        p.error(*t, f, "must be in 1..86400 (seconds), got " + std::to_string(*v));
      } else if (!svc.clientIpAffinity) {
        p.warning(*t, f, "ignored: spec.sessionAffinity is not ClientIP");
      } else {
        svc.affinityTimeout = static_cast<uint32_t>(*v);
      }
    }
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
    auto s = p.fields(*spec, "spec", {"host", "subsets", "trafficPolicy"},
                      {"exportTo", "workloadSelector"}, true);
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
    auto seconds = [&](const char* annotation, std::optional<uint32_t>& out) {
      auto a = dr.meta.annotations.find(annotation);
      if (a == dr.meta.annotations.end()) {
        return;
      }
      out = parseSeconds(a->second);
      if (!out) {
        p.report(Diagnostic::Severity::kError, dr.meta.pos,
                 std::string("metadata.annotations.") + annotation,
                 "expected a duration like 3h, 90m, 30s or 0s, got '" + a->second + "'");
      }
    };
    seconds(kAffinityTimeoutAnnotation, dr.affinityTimeout); // 0s: no pinning
    seconds(kRecycleGraceAnnotation, dr.recycleGrace);
    if (const YAML::Node* tp = ObjectParser::get(*s, "trafficPolicy")) {
      dr.loadBalancer = loadTrafficPolicy(p, *tp, "spec.trafficPolicy");
    }
    if (const YAML::Node* subsets = ObjectParser::get(*s, "subsets")) {
      auto items = p.sequence(*subsets, "spec.subsets");
      for (size_t i = 0; i < items.size(); ++i) {
        std::string f = idx("spec.subsets", i);
        auto m = p.fields(items[i], f, {"name", "labels", "trafficPolicy"}, {}, true);
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
        if (const YAML::Node* tp = ObjectParser::get(*m, "trafficPolicy")) {
          sub.loadBalancer = loadTrafficPolicy(p, *tp, f + ".trafficPolicy");
        }
        dr.subsets.push_back(std::move(sub));
      }
    }
    config().destinationRules.push_back(std::move(dr));
  }

  std::optional<LoadBalancer> loadTrafficPolicy(ObjectParser& p, const YAML::Node& n,
                                                const std::string& f) {
    auto m = p.fields(n, f, {"loadBalancer"},
                      {"connectionPool", "outlierDetection", "tls", "portLevelSettings", "tunnel",
                       "proxyProtocol"},
                      true);
    const YAML::Node* lbn = m ? ObjectParser::get(*m, "loadBalancer") : nullptr;
    if (lbn == nullptr) {
      return std::nullopt;
    }
    std::string lf = f + ".loadBalancer";
    auto lm = p.fields(*lbn, lf, {"simple", "consistentHash"},
                       {"localityLbSetting", "warmupDurationSecs", "warmup"}, true);
    if (!lm) {
      return std::nullopt;
    }
    LoadBalancer lb;
    lb.pos = p.pos(*lbn);
    lb.field = lf;
    const YAML::Node* simple = ObjectParser::get(*lm, "simple");
    const YAML::Node* ch = ObjectParser::get(*lm, "consistentHash");
    if (simple != nullptr && ch != nullptr) {
      p.error(*lbn, lf, "simple and consistentHash are exclusive");
      return std::nullopt;
    }
    if (simple != nullptr) {
      auto v = p.string(*simple, lf + ".simple");
      static const std::vector<std::string> kSimple = {"UNSPECIFIED", "ROUND_ROBIN", "LEAST_CONN",
                                                       "LEAST_REQUEST", "RANDOM", "PASSTHROUGH"};
      if (!v) {
        return std::nullopt;
      }
      if (std::find(kSimple.begin(), kSimple.end(), *v) == kSimple.end()) {
        std::string hint = closest(*v, kSimple);
        p.error(*simple, lf + ".simple",
                "unknown load balancer '" + *v + "'" +
                    (hint.empty() ? "; expected ROUND_ROBIN, LEAST_REQUEST, RANDOM or PASSTHROUGH"
                                  : "; did you mean " + hint + "?"));
        return std::nullopt;
      }
      lb.simple = *v;
      return lb;
    }
    if (ch == nullptr) {
      return std::nullopt;
    }
    std::string cf = lf + ".consistentHash";
    auto cm = p.fields(*ch, cf,
                       {"httpHeaderName", "httpCookie", "useSourceIp", "httpQueryParameterName"},
                       {"ringHash", "maglev", "minimumRingSize"}, true);
    if (!cm) {
      return std::nullopt;
    }
    int keys = 0;
    if (const YAML::Node* x = ObjectParser::get(*cm, "httpHeaderName")) {
      ++keys;
      lb.hash = LoadBalancer::Hash::kHeader;
      lb.hashKey = p.string(*x, cf + ".httpHeaderName").value_or("");
    }
    if (const YAML::Node* x = ObjectParser::get(*cm, "httpQueryParameterName")) {
      ++keys;
      lb.hash = LoadBalancer::Hash::kQueryParam;
      lb.hashKey = p.string(*x, cf + ".httpQueryParameterName").value_or("");
    }
    if (const YAML::Node* x = ObjectParser::get(*cm, "useSourceIp")) {
      ++keys;
      if (p.boolean(*x, cf + ".useSourceIp").value_or(false)) {
        lb.hash = LoadBalancer::Hash::kSourceIp;
      }
    }
    if (const YAML::Node* x = ObjectParser::get(*cm, "httpCookie")) {
      ++keys;
      lb.hash = LoadBalancer::Hash::kCookie;
      if (auto km = p.fields(*x, cf + ".httpCookie", {"name", "path", "ttl"}, {"attributes"}, true)) {
        if (const YAML::Node* y = ObjectParser::get(*km, "name")) {
          lb.hashKey = p.string(*y, cf + ".httpCookie.name").value_or("");
        } else {
          p.error(*x, cf + ".httpCookie.name", "missing name");
        }
        if (const YAML::Node* y = ObjectParser::get(*km, "path")) {
          lb.cookiePath = p.string(*y, cf + ".httpCookie.path").value_or("");
        }
        if (const YAML::Node* y = ObjectParser::get(*km, "ttl")) {
          lb.cookieTtl = p.duration(*y, cf + ".httpCookie.ttl").value_or("");
        }
      }
    }
    if (keys != 1) {
      p.error(*ch, cf,
              "expected exactly one of httpHeaderName, httpCookie, useSourceIp, "
              "httpQueryParameterName");
      return std::nullopt;
    }
    return lb;
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
    // No hosts: a delegate VirtualService, reachable only through another's http[].delegate.
    if (const YAML::Node* hosts = ObjectParser::get(*s, "hosts")) {
      auto hlist = p.sequence(*hosts, "spec.hosts");
      for (size_t i = 0; i < hlist.size(); ++i) {
        if (auto h = p.string(hlist[i], idx("spec.hosts", i))) {
          vs.hosts.push_back(*h);
          vs.hostPos.push_back(p.pos(hlist[i]));
        }
      }
    }
    bool meshBound = true;
    std::string names;
    const YAML::Node* gw = ObjectParser::get(*s, "gateways");
    if (gw != nullptr) {
      // Istio applies a VirtualService bound to gateways to mesh traffic only if "mesh" is listed.
      auto list = p.sequence(*gw, "spec.gateways");
      bool mesh = false;
      for (size_t i = 0; i < list.size(); ++i) {
        if (auto g = p.string(list[i], idx("spec.gateways", i))) {
          mesh = mesh || *g == "mesh";
          names += (names.empty() ? "" : ", ") + *g;
          vs.gateways.push_back(*g);
        }
      }
      meshBound = list.empty() || mesh;
    }
    // Parse every rule even when the object is ignored below: its errors are still errors.
    loadRoutes(p, ObjectParser::get(*s, "http"), "spec.http", true, vs.http);
    loadRoutes(p, ObjectParser::get(*s, "tcp"), "spec.tcp", false, vs.tcp);
    if (!meshBound) {
      p.warning(*gw, "spec.gateways",
                "bound to gateways (" + names +
                    ") and not to mesh; veer routes mesh traffic only; VirtualService ignored");
      return;
    }
    if (vs.hosts.empty() && ObjectParser::get(*s, "hosts") != nullptr) {
      p.error(*ObjectParser::get(*s, "hosts"), "spec.hosts", "empty hosts");
      return;
    }
    config().virtualServices.push_back(std::move(vs));
  }

  /**
   * Contour IngressRoute (contour.heptio.com/v1beta1) or HTTPProxy (projectcontour.io/v1)
   * as a VirtualService-shaped object in Config::ingressRoutes. Weights are kept as
   * written (relative); ingress.cpp normalizes them.
   */
  void loadContour(ObjectParser& p, ObjectMeta meta, const YAML::Node* spec) {
    const bool proxy = meta.kind == "HTTPProxy";
    const size_t start = diagCount();
    VirtualService vs;
    vs.meta = std::move(meta);
    if (spec == nullptr) {
      p.report(Diagnostic::Severity::kError, vs.meta.pos, "spec", "missing spec");
      return;
    }
    auto s = p.fields(*spec, "spec",
                      proxy ? std::vector<std::string>{"virtualhost", "routes", "includes"}
                            : std::vector<std::string>{"virtualhost", "routes"},
                      {"tcpproxy", "ingressClassName"}, true);
    if (!s) {
      return;
    }
    if (const YAML::Node* vh = ObjectParser::get(*s, "virtualhost")) {
      auto v = p.fields(*vh, "spec.virtualhost", {"fqdn", "tls"},
                        {"corsPolicy", "rateLimitPolicy", "authorization", "jwtProviders",
                         "ipAllowPolicy", "ipDenyPolicy"},
                        true);
      if (v) {
        const YAML::Node* fqdn = ObjectParser::get(*v, "fqdn");
        if (fqdn == nullptr) {
          p.error(*vh, "spec.virtualhost.fqdn", "missing fqdn");
        } else if (auto h = p.string(*fqdn, "spec.virtualhost.fqdn")) {
          if (h->empty() || h->find_first_of(" /:*") != std::string::npos) {
            p.error(*fqdn, "spec.virtualhost.fqdn", "'" + *h + "' is not a host name");
          } else {
            vs.hosts.push_back(*h);
            vs.hostPos.push_back(p.pos(*fqdn));
          }
        }
        if (const YAML::Node* tls = ObjectParser::get(*v, "tls")) {
          if (auto t = p.fields(*tls, "spec.virtualhost.tls", {"secretName"},
                                {"minimumProtocolVersion", "passthrough", "clientValidation",
                                 "enableFallbackCertificate", "maximumProtocolVersion"},
                                true)) {
            if (const YAML::Node* sn = ObjectParser::get(*t, "secretName")) {
              vs.tlsSecret = p.string(*sn, "spec.virtualhost.tls.secretName").value_or("");
            }
          }
        }
      }
    }
    if (const YAML::Node* routes = ObjectParser::get(*s, "routes")) {
      auto items = p.sequence(*routes, "spec.routes");
      for (size_t i = 0; i < items.size(); ++i) {
        if (auto r = loadContourRoute(p, items[i], idx("spec.routes", i), proxy, false)) {
          vs.http.push_back(std::move(*r));
        }
      }
    }
    if (const YAML::Node* inc = proxy ? ObjectParser::get(*s, "includes") : nullptr) {
      auto items = p.sequence(*inc, "spec.includes");
      for (size_t i = 0; i < items.size(); ++i) {
        if (auto r = loadContourRoute(p, items[i], idx("spec.includes", i), proxy, true)) {
          vs.http.push_back(std::move(*r));
        }
      }
    }
    if (vs.http.empty() && !hasErrorsSince(start)) {
      p.report(Diagnostic::Severity::kWarning, vs.meta.pos, "spec",
               proxy ? "no routes or includes; nothing to route" : "no routes; nothing to route");
    }
    config().ingressRoutes.push_back(std::move(vs));
  }

  /** One Contour route (or HTTPProxy include when include) as a Route. */
  std::optional<Route> loadContourRoute(ObjectParser& p, const YAML::Node& n, const std::string& f,
                                        bool proxy, bool include) {
    static const std::vector<std::string> kIrKnown = {"match", "services", "delegate"};
    static const std::vector<std::string> kIrUnsupported = {
        "permitInsecure", "enableWebsockets", "prefixRewrite", "timeoutPolicy", "retryPolicy",
        "headersPolicy"};
    static const std::vector<std::string> kHpKnown = {"conditions", "services"};
    static const std::vector<std::string> kHpUnsupported = {
        "enableWebsockets", "permitInsecure", "timeoutPolicy", "retryPolicy", "pathRewritePolicy",
        "requestHeadersPolicy", "responseHeadersPolicy", "cookieRewritePolicies",
        "loadBalancerPolicy", "healthCheckPolicy", "rateLimitPolicy", "requestRedirectPolicy",
        "directResponsePolicy", "authPolicy", "jwtVerificationPolicy", "ipAllowPolicy",
        "ipDenyPolicy", "internalRedirectPolicy", "queryParameterHashOptions"};
    auto m = include ? p.fields(n, f, {"name", "namespace", "conditions"}, {}, true)
                     : p.fields(n, f, proxy ? kHpKnown : kIrKnown,
                                proxy ? kHpUnsupported : kIrUnsupported, true);
    if (!m) {
      return std::nullopt;
    }
    size_t before = diagCount();
    Route r;
    r.pos = p.pos(n);
    r.field = f;
    HttpMatch hm;
    hm.pos = r.pos;
    hm.field = f + (proxy ? ".conditions" : ".match");
    bool anyCondition = false;
    if (const YAML::Node* match = proxy ? nullptr : ObjectParser::get(*m, "match")) {
      if (auto v = p.string(*match, f + ".match")) {
        if (v->empty() || (*v)[0] != '/') {
          p.error(*match, f + ".match", "a path prefix must start with /, got '" + *v + "'");
        } else {
          hm.uri = StringMatch{StringMatch::Op::kPrefix, *v, p.pos(*match)};
          anyCondition = true;
        }
      }
    }
    if (const YAML::Node* conds = proxy ? ObjectParser::get(*m, "conditions") : nullptr) {
      auto cl = p.sequence(*conds, f + ".conditions");
      for (size_t j = 0; j < cl.size(); ++j) {
        std::string cf = idx(f + ".conditions", j);
        auto c = p.fields(cl[j], cf, {"prefix", "header"}, {"exact", "regex", "queryParameter"},
                          true);
        if (!c) {
          continue;
        }
        if (c->size() != 1) {
          p.error(cl[j], cf, "expected exactly one of prefix, header");
          continue;
        }
        if (const YAML::Node* px = ObjectParser::get(*c, "prefix")) {
          auto v = p.string(*px, cf + ".prefix");
          if (!v) {
            continue;
          }
          if (v->empty() || (*v)[0] != '/') {
            p.error(*px, cf + ".prefix", "a path prefix must start with /, got '" + *v + "'");
          } else if (hm.uri) {
            p.error(*px, cf + ".prefix", "more than one prefix condition");
          } else {
            hm.uri = StringMatch{StringMatch::Op::kPrefix, *v, p.pos(*px)};
            anyCondition = true;
          }
        } else if (const YAML::Node* hd = ObjectParser::get(*c, "header")) {
          auto h = p.fields(*hd, cf + ".header",
                            {"name", "present", "notpresent", "exact", "notexact", "contains",
                             "notcontains"},
                            {"regex", "ignoreCase", "treatMissingAsEmpty"}, true);
          if (!h) {
            continue;
          }
          const YAML::Node* name = ObjectParser::get(*h, "name");
          if (name == nullptr) {
            p.error(*hd, cf + ".header.name", "missing name");
            continue;
          }
          KeyMatch km;
          km.key = p.string(*name, cf + ".header.name").value_or("");
          std::transform(km.key.begin(), km.key.end(), km.key.begin(),
                         [](unsigned char ch) { return std::tolower(ch); });
          km.match.pos = p.pos(*hd);
          int ops = 0;
          bool negate = false;
          for (const char* op : {"present", "notpresent", "exact", "notexact", "contains",
                                 "notcontains"}) {
            const YAML::Node* v = ObjectParser::get(*h, op);
            if (v == nullptr) {
              continue;
            }
            ++ops;
            std::string o = op;
            std::string opField = cf + ".header." + o;
            if (o == "present" || o == "notpresent") {
              if (p.boolean(*v, opField).value_or(false)) {
                km.present = true;
                negate = o == "notpresent";
              }
              continue;
            }
            std::string val = p.string(*v, opField).value_or("");
            negate = o.rfind("not", 0) == 0;
            if (o == "exact" || o == "notexact") {
              km.match.op = StringMatch::Op::kExact;
              km.match.value = val;
            } else {
              km.match.op = StringMatch::Op::kRegex;
              km.match.value = ".*" + RE2::QuoteMeta(val) + ".*";
            }
          }
          if (ops != 1) {
            p.error(*hd, cf + ".header",
                    "expected exactly one of present, notpresent, exact, notexact, contains, "
                    "notcontains");
            continue;
          }
          (negate ? hm.withoutHeaders : hm.headers).push_back(std::move(km));
          anyCondition = true;
        }
      }
    }
    if (anyCondition) {
      r.matches.push_back(std::move(hm));
    }
    if (include) {
      Delegate dg;
      dg.pos = r.pos;
      if (const YAML::Node* x = ObjectParser::get(*m, "name")) {
        dg.name = p.string(*x, f + ".name").value_or("");
        dg.pos = p.pos(*x);
      }
      if (const YAML::Node* x = ObjectParser::get(*m, "namespace")) {
        dg.ns = p.string(*x, f + ".namespace").value_or("");
      }
      if (dg.name.empty()) {
        p.error(n, f + ".name", "missing name");
      } else {
        r.delegate = dg;
      }
    } else if (const YAML::Node* d = proxy ? nullptr : ObjectParser::get(*m, "delegate")) {
      if (auto dm = p.fields(*d, f + ".delegate", {"name", "namespace"}, {}, true)) {
        Delegate dg;
        dg.pos = p.pos(*d);
        if (const YAML::Node* x = ObjectParser::get(*dm, "name")) {
          dg.name = p.string(*x, f + ".delegate.name").value_or("");
        }
        if (const YAML::Node* x = ObjectParser::get(*dm, "namespace")) {
          dg.ns = p.string(*x, f + ".delegate.namespace").value_or("");
        }
        if (dg.name.empty()) {
          p.error(*d, f + ".delegate.name", "missing name");
        } else {
          r.delegate = dg;
        }
      }
    }
    if (const YAML::Node* svcs = include ? nullptr : ObjectParser::get(*m, "services")) {
      auto sl = p.sequence(*svcs, f + ".services");
      for (size_t j = 0; j < sl.size(); ++j) {
        std::string sf = idx(f + ".services", j);
        auto e = p.fields(sl[j], sf, {"name", "port", "weight"},
                          {"strategy", "healthCheck", "validation", "protocol", "mirror",
                           "requestHeadersPolicy", "responseHeadersPolicy", "slowStartPolicy"},
                          true);
        if (!e) {
          continue;
        }
        RouteDestination d;
        d.pos = p.pos(sl[j]);
        d.field = sf;
        const YAML::Node* name = ObjectParser::get(*e, "name");
        const YAML::Node* port = ObjectParser::get(*e, "port");
        if (name == nullptr) {
          p.error(sl[j], sf + ".name", "missing name");
        } else {
          d.host = p.string(*name, sf + ".name").value_or("");
        }
        if (port == nullptr) {
          p.error(sl[j], sf + ".port", "missing port (Contour requires the Service port)");
        } else if (auto v = p.port(*port, sf + ".port")) {
          d.port = *v;
          d.portPos = p.pos(*port);
        }
        if (const YAML::Node* w = ObjectParser::get(*e, "weight")) {
          if (auto v = p.integer(*w, sf + ".weight")) {
            if (*v < 0 || *v > 1000000) {
              p.error(*w, sf + ".weight",
                      "weight " + std::to_string(*v) + " out of range 0..1000000");
            } else {
              d.weight = *v;
            }
          }
        }
        r.destinations.push_back(std::move(d));
      }
    }
    if (!include) {
      if (r.delegate && !r.destinations.empty()) {
        p.error(n, f, "services and delegate are exclusive");
      } else if (!r.delegate && ObjectParser::get(*m, "services") == nullptr) {
        p.error(n, f + ".services", proxy ? "missing services" : "missing services or delegate");
      } else if (!r.delegate && r.destinations.empty() && !hasErrorsSince(before)) {
        p.error(n, f + ".services", "empty services");
      }
    }
    if (hasErrorsSince(before)) {
      return std::nullopt;
    }
    return r;
  }

  /** StringMatch: a map with exactly one of exact, prefix, regex. RE2 checks regexes here. */
  std::optional<StringMatch> loadStringMatch(ObjectParser& p, const YAML::Node& n,
                                             const std::string& f, bool* present = nullptr) {
    auto m = p.fields(n, f, {"exact", "prefix", "regex"}, {}, true);
    if (!m) {
      return std::nullopt;
    }
    if (m->empty() && present != nullptr) {
      *present = true; // `{}`: present with any value
      return StringMatch{};
    }
    std::optional<StringMatch> out;
    int n1 = 0;
    for (const char* op : {"exact", "prefix", "regex"}) {
      auto it = m->find(op);
      if (it == m->end()) {
        continue;
      }
      ++n1;
      std::string v = it->second.value.IsNull() ? "" : p.string(it->second.value, f + "." + op).value_or("");
      StringMatch sm;
      sm.op = std::string(op) == "exact"    ? StringMatch::Op::kExact
              : std::string(op) == "prefix" ? StringMatch::Op::kPrefix
                                            : StringMatch::Op::kRegex;
      sm.value = v;
      sm.pos = p.pos(it->second.value.IsDefined() ? it->second.value : it->second.key);
      if (sm.op == StringMatch::Op::kRegex) {
        RE2::Options opts;
        opts.set_log_errors(false);
        RE2 re(v, opts);
        if (!re.ok()) {
          p.error(it->second.value, f + ".regex",
                  "invalid regex '" + v + "': " + re.error() + " (RE2 syntax)");
          return std::nullopt;
        }
      }
      out = sm;
    }
    if (n1 == 0) {
      p.error(n, f, "expected one of exact, prefix or regex");
      return std::nullopt;
    }
    if (n1 > 1) {
      p.error(n, f, "only one of exact, prefix or regex may be set");
      return std::nullopt;
    }
    return out;
  }

  std::vector<KeyMatch> loadKeyMatches(ObjectParser& p, const YAML::Node& n, const std::string& f,
                                       bool lowercase) {
    std::vector<KeyMatch> out;
    auto m = p.fields(n, f, {}, {}, false);
    if (!m) {
      return out;
    }
    for (const auto& [k, e] : *m) {
      KeyMatch km;
      km.key = k;
      if (lowercase) {
        std::transform(km.key.begin(), km.key.end(), km.key.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      }
      std::optional<StringMatch> sm;
      if (e.value.IsNull()) {
        km.present = true;
        sm = StringMatch{};
      } else {
        sm = loadStringMatch(p, e.value, f + "." + k, &km.present);
      }
      if (!sm) {
        continue;
      }
      km.match = *sm;
      km.match.pos = p.pos(e.key);
      out.push_back(std::move(km));
    }
    return out;
  }

  std::optional<HttpMatch> loadMatch(ObjectParser& p, const YAML::Node& n, const std::string& f,
                                     bool http) {
    static const std::vector<std::string> kHttp = {
        "name", "uri", "scheme", "method", "authority", "headers", "withoutHeaders",
        "queryParams", "sourceLabels", "sourceNamespace", "port", "gateways", "ignoreUriCase"};
    static const std::vector<std::string> kTcp = {"port", "sourceLabels", "sourceNamespace",
                                                  "gateways"};
    auto m = p.fields(n, f, http ? kHttp : kTcp,
                      http ? std::vector<std::string>{"statPrefix"}
                           : std::vector<std::string>{"destinationSubnets", "sourceSubnet"},
                      true);
    if (!m) {
      return std::nullopt;
    }
    HttpMatch hm;
    hm.pos = p.pos(n);
    hm.field = f;
    bool ok = true;
    auto sm = [&](const char* key, std::optional<StringMatch>& out) {
      if (const YAML::Node* v = ObjectParser::get(*m, key)) {
        out = loadStringMatch(p, *v, f + "." + key);
        ok = ok && out.has_value();
      }
    };
    if (const YAML::Node* v = ObjectParser::get(*m, "name")) {
      hm.name = p.string(*v, f + ".name").value_or("");
    }
    sm("uri", hm.uri);
    sm("scheme", hm.scheme);
    sm("method", hm.method);
    sm("authority", hm.authority);
    size_t before = diagCount();
    if (const YAML::Node* v = ObjectParser::get(*m, "headers")) {
      hm.headers = loadKeyMatches(p, *v, f + ".headers", true);
    }
    if (const YAML::Node* v = ObjectParser::get(*m, "withoutHeaders")) {
      hm.withoutHeaders = loadKeyMatches(p, *v, f + ".withoutHeaders", true);
    }
    if (const YAML::Node* v = ObjectParser::get(*m, "queryParams")) {
      hm.queryParams = loadKeyMatches(p, *v, f + ".queryParams", false);
    }
    if (hasErrorsSince(before)) {
      ok = false;
    }
    if (const YAML::Node* v = ObjectParser::get(*m, "sourceLabels")) {
      hm.sourceLabels = p.labels(*v, f + ".sourceLabels");
    }
    if (const YAML::Node* v = ObjectParser::get(*m, "sourceNamespace")) {
      hm.sourceNamespace = p.string(*v, f + ".sourceNamespace").value_or("");
    }
    if (const YAML::Node* v = ObjectParser::get(*m, "port")) {
      auto port = p.port(*v, f + ".port");
      ok = ok && port.has_value();
      hm.port = port.value_or(0);
    }
    if (const YAML::Node* v = ObjectParser::get(*m, "gateways")) {
      auto list = p.sequence(*v, f + ".gateways");
      for (size_t i = 0; i < list.size(); ++i) {
        if (auto g = p.string(list[i], idx(f + ".gateways", i))) {
          hm.gateways.push_back(*g);
        }
      }
    }
    if (const YAML::Node* v = ObjectParser::get(*m, "ignoreUriCase")) {
      auto b = p.boolean(*v, f + ".ignoreUriCase");
      ok = ok && b.has_value();
      hm.ignoreUriCase = b.value_or(false);
    }
    if (!ok) {
      return std::nullopt;
    }
    return hm;
  }

  void loadHeaderOps(ObjectParser& p, const YAML::Node& n, const std::string& f, HeaderOps& out) {
    auto m = p.fields(n, f, {"set", "add", "remove"}, {}, true);
    if (!m) {
      return;
    }
    for (const char* op : {"set", "add"}) {
      const YAML::Node* v = ObjectParser::get(*m, op);
      if (v == nullptr) {
        continue;
      }
      if (!v->IsMap()) {
        p.error(*v, f + "." + op, "expected a map of header: value, got " + describe(*v));
        continue;
      }
      auto& dst = std::string(op) == "set" ? out.set : out.add;
      for (auto it = v->begin(); it != v->end(); ++it) {
        if (!it->first.IsScalar()) {
          p.error(it->first, f + "." + op, "expected a header name");
          continue;
        }
        std::string key = it->first.Scalar();
        if (auto val = p.string(it->second, f + "." + op + "." + key)) {
          dst.emplace_back(key, *val);
        }
      }
    }
    if (const YAML::Node* v = ObjectParser::get(*m, "remove")) {
      auto list = p.sequence(*v, f + ".remove");
      for (size_t i = 0; i < list.size(); ++i) {
        if (auto h = p.string(list[i], idx(f + ".remove", i))) {
          out.remove.push_back(*h);
        }
      }
    }
  }

  HeaderActions loadHeaders(ObjectParser& p, const YAML::Node& n, const std::string& f) {
    HeaderActions h;
    h.pos = p.pos(n);
    auto m = p.fields(n, f, {"request", "response"}, {}, true);
    if (!m) {
      return h;
    }
    if (const YAML::Node* v = ObjectParser::get(*m, "request")) {
      loadHeaderOps(p, *v, f + ".request", h.request);
    }
    if (const YAML::Node* v = ObjectParser::get(*m, "response")) {
      loadHeaderOps(p, *v, f + ".response", h.response);
    }
    return h;
  }

  std::optional<double> percent(ObjectParser& p, const YAML::Node& n, const std::string& f) {
    // Percent{value: 50} or a plain number (older mirror_percent / fault percent).
    const YAML::Node* v = &n;
    std::map<std::string, Entry> m;
    if (n.IsMap()) {
      auto mm = p.fields(n, f, {"value"}, {}, true);
      if (!mm) {
        return std::nullopt;
      }
      m = *mm;
      v = ObjectParser::get(m, "value");
      if (v == nullptr) {
        return 0.0;
      }
    }
    if (!v->IsScalar()) {
      p.error(*v, f, "expected a percentage, got " + describe(*v));
      return std::nullopt;
    }
    char* end = nullptr;
    double d = std::strtod(v->Scalar().c_str(), &end);
    if (v->Scalar().empty() || end == nullptr || *end != '\0' || !(d >= 0 && d <= 100)) {
      p.error(*v, f, "expected a percentage 0..100, got '" + v->Scalar() + "'");
      return std::nullopt;
    }
    return d;
  }

  void loadActions(ObjectParser& p, const std::map<std::string, Entry>& m, const std::string& f,
                   RouteActions& a) {
    if (const YAML::Node* v = ObjectParser::get(m, "rewrite")) {
      if (auto rm = p.fields(*v, f + ".rewrite", {"uri", "authority"}, {"uriRegexRewrite"}, true)) {
        if (const YAML::Node* u = ObjectParser::get(*rm, "uri")) {
          a.rewriteUri = p.string(*u, f + ".rewrite.uri").value_or("");
        }
        if (const YAML::Node* u = ObjectParser::get(*rm, "authority")) {
          a.rewriteAuthority = p.string(*u, f + ".rewrite.authority").value_or("");
        }
      }
    }
    if (const YAML::Node* v = ObjectParser::get(m, "timeout")) {
      a.timeout = p.duration(*v, f + ".timeout").value_or("");
    }
    if (const YAML::Node* v = ObjectParser::get(m, "retries")) {
      if (auto rm = p.fields(*v, f + ".retries", {"attempts", "perTryTimeout", "retryOn"},
                             {"retryRemoteLocalities"}, true)) {
        if (const YAML::Node* x = ObjectParser::get(*rm, "attempts")) {
          a.retryAttempts = p.integer(*x, f + ".retries.attempts").value_or(-1);
        }
        if (const YAML::Node* x = ObjectParser::get(*rm, "perTryTimeout")) {
          a.retryPerTryTimeout = p.duration(*x, f + ".retries.perTryTimeout").value_or("");
        }
        if (const YAML::Node* x = ObjectParser::get(*rm, "retryOn")) {
          a.retryOn = p.string(*x, f + ".retries.retryOn").value_or("");
        }
      }
    }
    if (const YAML::Node* v = ObjectParser::get(m, "mirror")) {
      RouteDestination d;
      d.pos = p.pos(*v);
      d.field = f + ".mirror";
      if (loadTarget(p, *v, f + ".mirror", d.host, d.subset, d.port)) {
        a.mirror = d;
      }
    }
    for (const char* key : {"mirrorPercentage", "mirror_percent", "mirrorPercent"}) {
      if (const YAML::Node* v = ObjectParser::get(m, key)) {
        a.mirrorPercent = percent(p, *v, f + "." + key).value_or(-1);
      }
    }
    if (const YAML::Node* v = ObjectParser::get(m, "fault")) {
      if (auto fm = p.fields(*v, f + ".fault", {"delay", "abort"}, {}, true)) {
        if (const YAML::Node* d = ObjectParser::get(*fm, "delay")) {
          std::string df = f + ".fault.delay";
          if (auto dm = p.fields(*d, df, {"fixedDelay", "percentage", "percent"},
                                 {"exponentialDelay"}, true)) {
            if (const YAML::Node* x = ObjectParser::get(*dm, "fixedDelay")) {
              a.faultDelay = p.duration(*x, df + ".fixedDelay").value_or("");
            }
            a.faultDelayPercent = 100;
            for (const char* pk : {"percentage", "percent"}) {
              if (const YAML::Node* x = ObjectParser::get(*dm, pk)) {
                a.faultDelayPercent = percent(p, *x, df + "." + pk).value_or(-1);
              }
            }
          }
        }
        if (const YAML::Node* ab = ObjectParser::get(*fm, "abort")) {
          std::string af = f + ".fault.abort";
          if (auto am = p.fields(*ab, af, {"httpStatus", "percentage"},
                                 {"grpcStatus", "http2Error"}, true)) {
            if (const YAML::Node* x = ObjectParser::get(*am, "httpStatus")) {
              auto st = p.integer(*x, af + ".httpStatus");
              if (st && (*st < 200 || *st > 599)) {
                p.error(*x, af + ".httpStatus", "HTTP status " + std::to_string(*st) +
                                                    " out of range 200..599");
              } else {
                a.faultAbortStatus = st.value_or(0);
              }
            }
            a.faultAbortPercent = 100;
            if (const YAML::Node* x = ObjectParser::get(*am, "percentage")) {
              a.faultAbortPercent = percent(p, *x, af + ".percentage").value_or(-1);
            }
          }
        }
      }
    }
    if (const YAML::Node* v = ObjectParser::get(m, "redirect")) {
      if (auto rm = p.fields(*v, f + ".redirect", {"uri", "authority", "redirectCode", "scheme", "port"},
                             {"derivePort"}, true)) {
        std::string r;
        for (const char* k : {"uri", "authority", "scheme"}) {
          if (const YAML::Node* x = ObjectParser::get(*rm, k)) {
            r += std::string(r.empty() ? "" : ",") + k + "=" +
                 p.string(*x, f + ".redirect." + k).value_or("");
          }
        }
        a.redirect = r.empty() ? "redirect" : r;
      }
    }
    if (const YAML::Node* v = ObjectParser::get(m, "directResponse")) {
      if (auto dm = p.fields(*v, f + ".directResponse", {"status", "body"}, {}, true)) {
        if (const YAML::Node* x = ObjectParser::get(*dm, "status")) {
          a.directResponseStatus = p.integer(*x, f + ".directResponse.status").value_or(0);
        } else {
          p.error(*v, f + ".directResponse.status", "missing status");
        }
      }
    }
  }

  void loadRoutes(ObjectParser& p, const YAML::Node* list, const std::string& field, bool http,
                  std::vector<Route>& out) {
    if (list == nullptr) {
      return;
    }
    static const std::vector<std::string> kHttpKnown = {
        "name", "match", "route", "headers", "rewrite", "timeout", "retries", "mirror",
        "mirrorPercentage", "mirror_percent", "mirrorPercent", "fault", "delegate", "redirect",
        "directResponse"};
    static const std::vector<std::string> kHttpUnsupported = {"mirrors", "corsPolicy"};
    static const std::vector<std::string> kTcpKnown = {"match", "route"};
    auto items = p.sequence(*list, field);
    for (size_t i = 0; i < items.size(); ++i) {
      std::string f = idx(field, i);
      size_t before = diagCount();
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
      if (const YAML::Node* match = ObjectParser::get(*m, "match")) {
        auto ml = p.sequence(*match, f + ".match");
        for (size_t j = 0; j < ml.size(); ++j) {
          if (auto hm = loadMatch(p, ml[j], idx(f + ".match", j), http)) {
            r.matches.push_back(std::move(*hm));
          }
        }
      }
      if (http) {
        if (const YAML::Node* h = ObjectParser::get(*m, "headers")) {
          r.headers = loadHeaders(p, *h, f + ".headers");
        }
        loadActions(p, *m, f, r.actions);
        if (const YAML::Node* d = ObjectParser::get(*m, "delegate")) {
          if (auto dm = p.fields(*d, f + ".delegate", {"name", "namespace"}, {}, true)) {
            Delegate dg;
            dg.pos = p.pos(*d);
            if (const YAML::Node* x = ObjectParser::get(*dm, "name")) {
              dg.name = p.string(*x, f + ".delegate.name").value_or("");
            }
            if (const YAML::Node* x = ObjectParser::get(*dm, "namespace")) {
              dg.ns = p.string(*x, f + ".delegate.namespace").value_or("");
            }
            if (dg.name.empty()) {
              p.error(*d, f + ".delegate.name", "missing name");
            } else {
              r.delegate = dg;
            }
          }
        }
      }
      const YAML::Node* route = ObjectParser::get(*m, "route");
      if (route == nullptr) {
        if (!r.delegate && r.actions.redirect.empty() && r.actions.directResponseStatus == 0 &&
            !hasErrorsSince(before)) {
          p.error(items[i], f + ".route", "missing route");
        }
        if (r.delegate || !r.actions.redirect.empty() || r.actions.directResponseStatus != 0) {
          out.push_back(std::move(r));
        }
        continue;
      }
      if (r.delegate) {
        p.error(*route, f + ".route", "route and delegate are exclusive; delegate is set");
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

  /** host, subset, port{number} of a Destination (also mirror and fallback targets). */
  bool loadTarget(ObjectParser& p, const YAML::Node& dest, const std::string& df,
                  std::string& host, std::string& subset, uint16_t& portOut,
                  bool siblingsWeighted = false, bool hasWeight = true) {
    auto dm = p.fields(dest, df, {"host", "subset", "port"}, {}, true);
    if (!dm) {
      return false;
    }
    const YAML::Node* h = ObjectParser::get(*dm, "host");
    if (h == nullptr) {
      p.error(dest, df + ".host", "missing host");
      return false;
    }
    auto hs = p.string(*h, df + ".host");
    if (!hs) {
      return false;
    }
    host = *hs;
    if (const YAML::Node* sub = ObjectParser::get(*dm, "subset")) {
      auto v = p.string(*sub, df + ".subset");
      if (!v) {
        return false;
      }
      subset = *v;
    }
    if (const YAML::Node* port = ObjectParser::get(*dm, "port")) {
      if (!port->IsMap()) {
        int64_t v = 0;
        bool num = port->IsScalar() && parseInt(port->Scalar(), v);
        std::string hint = num ? "; write port: {number: " + port->Scalar() + "}" : "";
        if (num && !hasWeight && siblingsWeighted) {
          hint += ", or did you mean weight: " + port->Scalar() + "?";
        }
        p.error(*port, df + ".port", "expected a map with number, got " + describe(*port) + hint);
        return false;
      }
      auto pm = p.fields(*port, df + ".port", {"number"}, {}, true);
      const YAML::Node* num = pm ? ObjectParser::get(*pm, "number") : nullptr;
      if (num == nullptr) {
        p.error(*port, df + ".port.number", "missing number");
        return false;
      }
      auto v = p.port(*num, df + ".port.number");
      if (!v) {
        return false;
      }
      portOut = *v;
    }
    return true;
  }

  std::optional<RouteDestination> loadDestination(ObjectParser& p, const YAML::Node& n,
                                                  const std::string& f, bool http,
                                                  bool siblingsWeighted) {
    static const std::vector<std::string> kHttpKnown = {"destination", "weight", "headers",
                                                        "fallback"};
    static const std::vector<std::string> kTcpKnown = {"destination", "weight"};
    const auto& kKnown = http ? kHttpKnown : kTcpKnown;
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
    auto m = p.fields(n, f, kKnown, {}, !strayPortHint);
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
    if (!loadTarget(p, *dest, f + ".destination", rd.host, rd.subset, rd.port, siblingsWeighted,
                    rd.weight.has_value())) {
      return std::nullopt;
    }
    if (const YAML::Node* h = ObjectParser::get(*m, "headers")) {
      rd.headers = loadHeaders(p, *h, f + ".headers");
    }
    if (const YAML::Node* fb = ObjectParser::get(*m, "fallback")) {
      std::string ff = f + ".fallback";
      auto fm = p.fields(*fb, ff, {"case", "target"}, {}, true);
      if (!fm) {
        return std::nullopt;
      }
      Fallback out;
      out.pos = p.pos(*fb);
      if (const YAML::Node* c = ObjectParser::get(*fm, "case")) {
        auto cs = p.string(*c, ff + ".case");
        if (!cs) {
          return std::nullopt;
        }
        size_t start = 0;
        while (start <= cs->size()) {
          size_t bar = cs->find('|', start);
          std::string one = cs->substr(start, bar == std::string::npos ? std::string::npos : bar - start);
          if (one != "noinstances" && one != "noavailabled") {
            std::string hint = closest(one, {"noinstances", "noavailabled"});
            p.error(*c, ff + ".case",
                    "unknown fallback case '" + one + "'; expected noinstances or noavailabled" +
                        (hint.empty() ? "" : " (did you mean " + hint + "?)"));
            return std::nullopt;
          }
          out.cases.push_back(one);
          if (bar == std::string::npos) {
            break;
          }
          start = bar + 1;
        }
      } else {
        out.cases = {"noinstances", "noavailabled"};
      }
      const YAML::Node* t = ObjectParser::get(*fm, "target");
      if (t == nullptr) {
        p.error(*fb, ff + ".target", "missing target");
        return std::nullopt;
      }
      if (!loadTarget(p, *t, ff + ".target", out.host, out.subset, out.port)) {
        return std::nullopt;
      }
      rd.fallback = out;
    }
    return rd;
  }

  void loadGateway(ObjectParser& p, ObjectMeta meta, const YAML::Node* spec) {
    Gateway gw;
    gw.meta = std::move(meta);
    if (spec == nullptr) {
      p.report(Diagnostic::Severity::kError, gw.meta.pos, "spec", "missing spec");
      return;
    }
    auto s = p.fields(*spec, "spec", {"selector", "servers"}, {}, true);
    if (!s) {
      return;
    }
    if (const YAML::Node* sel = ObjectParser::get(*s, "selector")) {
      gw.selector = p.labels(*sel, "spec.selector");
    }
    if (const YAML::Node* servers = ObjectParser::get(*s, "servers")) {
      auto items = p.sequence(*servers, "spec.servers");
      for (size_t i = 0; i < items.size(); ++i) {
        std::string f = idx("spec.servers", i);
        auto m = p.fields(items[i], f, {"port", "hosts", "name", "bind", "tls", "defaultEndpoint"},
                          {}, true);
        if (!m) {
          continue;
        }
        Gateway::Server srv;
        srv.pos = p.pos(items[i]);
        const YAML::Node* port = ObjectParser::get(*m, "port");
        if (port == nullptr) {
          p.error(items[i], f + ".port", "missing port");
          continue;
        }
        auto pm = p.fields(*port, f + ".port", {"number", "name", "protocol", "targetPort"}, {}, true);
        if (!pm) {
          continue;
        }
        if (const YAML::Node* x = ObjectParser::get(*pm, "number")) {
          srv.port = p.port(*x, f + ".port.number").value_or(0);
        } else {
          p.error(*port, f + ".port.number", "missing number");
        }
        if (const YAML::Node* x = ObjectParser::get(*pm, "name")) {
          srv.portName = p.string(*x, f + ".port.name").value_or("");
        }
        if (const YAML::Node* x = ObjectParser::get(*pm, "protocol")) {
          srv.protocol = p.string(*x, f + ".port.protocol").value_or("");
          static const std::vector<std::string> kProtos = {"HTTP", "HTTPS", "GRPC", "HTTP2",
                                                           "MONGO", "TCP", "TLS"};
          if (std::find(kProtos.begin(), kProtos.end(), srv.protocol) == kProtos.end()) {
            std::string hint = closest(srv.protocol, kProtos);
            p.error(*x, f + ".port.protocol",
                    "unknown protocol '" + srv.protocol + "'" +
                        (hint.empty() ? "" : "; did you mean " + hint + "?"));
          }
        }
        const YAML::Node* hosts = ObjectParser::get(*m, "hosts");
        if (hosts == nullptr) {
          p.error(items[i], f + ".hosts", "missing hosts");
          continue;
        }
        auto hl = p.sequence(*hosts, f + ".hosts");
        for (size_t j = 0; j < hl.size(); ++j) {
          if (auto h = p.string(hl[j], idx(f + ".hosts", j))) {
            srv.hosts.push_back(*h);
          }
        }
        gw.servers.push_back(std::move(srv));
      }
    }
    config().gateways.push_back(std::move(gw));
  }

  void loadTrafficLabel(ObjectParser& p, ObjectMeta meta, const YAML::Node* spec) {
    TrafficLabel tl;
    tl.meta = std::move(meta);
    if (spec == nullptr) {
      p.report(Diagnostic::Severity::kError, tl.meta.pos, "spec", "missing spec");
      return;
    }
    auto s = p.fields(*spec, "spec", {"rules", "workloadSelector"}, {}, true);
    if (!s) {
      return;
    }
    if (const YAML::Node* ws = ObjectParser::get(*s, "workloadSelector")) {
      if (auto wm = p.fields(*ws, "spec.workloadSelector", {"labels"}, {}, true)) {
        if (const YAML::Node* l = ObjectParser::get(*wm, "labels")) {
          tl.workloadSelector = p.labels(*l, "spec.workloadSelector.labels");
        }
      }
    }
    const YAML::Node* rules = ObjectParser::get(*s, "rules");
    if (rules == nullptr) {
      p.error(*spec, "spec.rules", "missing rules");
      return;
    }
    auto items = p.sequence(*rules, "spec.rules");
    for (size_t i = 0; i < items.size(); ++i) {
      std::string f = idx("spec.rules", i);
      auto m = p.fields(items[i], f, {"labels", "attachTo", "protocols"}, {}, true);
      if (!m) {
        continue;
      }
      if (const YAML::Node* x = ObjectParser::get(*m, "protocols")) {
        tl.protocols = p.string(*x, f + ".protocols").value_or("");
      }
      if (const YAML::Node* x = ObjectParser::get(*m, "attachTo")) {
        auto l = p.sequence(*x, f + ".attachTo");
        for (size_t j = 0; j < l.size(); ++j) {
          if (auto a = p.string(l[j], idx(f + ".attachTo", j))) {
            tl.attachTo.push_back(*a);
          }
        }
      }
      const YAML::Node* labels = ObjectParser::get(*m, "labels");
      if (labels == nullptr) {
        p.error(items[i], f + ".labels", "missing labels");
        continue;
      }
      auto ll = p.sequence(*labels, f + ".labels");
      for (size_t j = 0; j < ll.size(); ++j) {
        std::string lf = idx(f + ".labels", j);
        auto lm = p.fields(ll[j], lf, {"name", "valueFrom"}, {}, true);
        if (!lm) {
          continue;
        }
        TrafficLabel::Label lab;
        lab.pos = p.pos(ll[j]);
        lab.field = lf;
        if (const YAML::Node* x = ObjectParser::get(*lm, "name")) {
          lab.name = p.string(*x, lf + ".name").value_or("");
        }
        if (lab.name.empty()) {
          p.error(ll[j], lf + ".name", "missing name");
          continue;
        }
        const YAML::Node* vf = ObjectParser::get(*lm, "valueFrom");
        if (vf == nullptr) {
          p.error(ll[j], lf + ".valueFrom", "missing valueFrom");
          continue;
        }
        auto vl = p.sequence(*vf, lf + ".valueFrom");
        for (size_t k = 0; k < vl.size(); ++k) {
          std::string vff = idx(lf + ".valueFrom", k);
          auto v = p.string(vl[k], vff);
          if (!v) {
            continue;
          }
          std::string text = *v;
          // A "// comment" after the value is part of a YAML plain scalar; say so and drop it.
          if (size_t c = text.find("//"); c != std::string::npos && c > 0 &&
                                          (text[c - 1] == ' ' || text[c - 1] == '\t')) {
            p.warning(vl[k], vff,
                      "text after '" + text.substr(0, text.find_last_not_of(" \t", c - 1) + 1) +
                          "' starts with //, which YAML does not treat as a comment (use #); "
                          "ignored");
            text = text.substr(0, text.find_last_not_of(" \t", c - 1) + 1);
          }
          TrafficLabel::Source src;
          src.pos = p.pos(vl[k]);
          if (text.rfind("$getContext(", 0) == 0 && text.back() == ')') {
            src.kind = TrafficLabel::Source::Kind::kContext;
            src.value = text.substr(12, text.size() - 13);
            std::transform(src.value.begin(), src.value.end(), src.value.begin(),
                           [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
            if (src.value.empty()) {
              p.error(vl[k], vff, "$getContext() needs a header name");
              continue;
            }
          } else if (text == "$(localLabel)") {
            src.kind = TrafficLabel::Source::Kind::kLocalLabel;
            src.value = kAsmTrafficTag;
          } else if (text.rfind("$", 0) == 0) {
            std::string hint = closest(text, {"$(localLabel)"});
            p.error(vl[k], vff,
                    "unknown value source '" + text +
                        "'; expected $getContext(header), $(localLabel) or a literal" +
                        (hint.empty() ? "" : "; did you mean " + hint + "?"));
            continue;
          } else {
            src.value = text;
          }
          lab.valueFrom.push_back(std::move(src));
        }
        tl.labels.push_back(std::move(lab));
      }
    }
    config().trafficLabels.push_back(std::move(tl));
  }

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
