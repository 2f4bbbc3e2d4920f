// YAML -> Config: files and directories, YAML streams split into documents, and the
// dispatch of each object to its format's loader (loader_k8s.cpp, loader_istio.cpp,
// loader_asm.cpp, loader_contour.cpp, loader_gateway.cpp). YAML is parsed by libyaml into
// a read-only tree (yaml.h); a syntax error is a positioned Diagnostic. Unknown fields are
// warnings (with a "did you mean" hint), wrong types are errors naming file:line:col and
// the field path.

#include <algorithm>
#include <filesystem>
#include <deque>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <set>

#include "common/worker_pool.h"
#include "config/loader_internal.h"

namespace veer {
namespace {

using loading::Loader;
using Document = Loader::Document;

/** True for a document marker line: "---" or "..." at column 0, alone or before a space. */
bool isDocumentMarker(std::string_view line, std::string_view marker) {
  return line.substr(0, 3) == marker &&
         (line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r' || line[3] == '\n');
}

/**
 * Splits a stream at its document markers, line by line, so each document is parsed on
 * its own: a syntax error in one document does not hide the others (a stream parser stops
 * at the first), and only one document's text is held at a time. The split is exact: YAML
 * forbids "---" and "..." at column 0 inside content. A "---" is blanked rather than
 * dropped so content after it on the same line keeps its column. (It also kept yaml-cpp
 * 0.7's LoadAll hang, jbeder/yaml-cpp#1040, out of reach while the loader used yaml-cpp.)
 */
class DocumentSplitter {
public:
  explicit DocumentSplitter(std::function<void(Document&&)> emit) : emit_(std::move(emit)) {}

  /** The next line of the stream, with its newline when it has one. */
  void line(std::string_view line) {
    if (isDocumentMarker(line, "---")) {
      next(lineNo_);
      doc_.text.append("   ").append(line.substr(3));
    } else if (isDocumentMarker(line, "...")) {
      next(lineNo_ + 1);
    } else {
      doc_.text.append(line);
    }
    ++lineNo_;
  }

  /** The end of the stream: the last document. */
  void finish() { emit_(std::move(doc_)); }

private:
  void next(int firstLine) {
    emit_(std::move(doc_));
    doc_ = Document{std::string(), firstLine};
  }

  std::function<void(Document&&)> emit_;
  Document doc_;
  int lineNo_ = 0;
};

/**
 * Loads a stream's documents in batches on worker threads (parse and build the objects)
 * and merges the batches into the calling thread's Loader in stream order. Parsing
 * (libyaml) and building objects are most of the cost of a large config (10,000
 * services: 32 MiB of YAML); the merge only moves objects and checks duplicates, so
 * diagnostics and duplicate detection read exactly as if serial. A stream smaller than
 * one batch loads inline, with no thread.
 */
class ParallelLoad {
public:
  ParallelLoad(Loader& into, FileName file)
      : into_(into), file_(std::move(file)), pool_(WorkerPool::shared()) {}

  void add(Document&& doc) {
    batchBytes_ += doc.text.size();
    batch_.push_back(std::move(doc));
    if (batchBytes_ < kBatchBytes) {
      return;
    }
    if (pending_.size() >= pool_.threads()) {
      mergeOne();
    }
    pending_.push_back(pool_.submit(
        [docs = std::move(batch_), file = file_]() mutable { return loadBatch(std::move(docs), file); }));
    batch_.clear();
    batchBytes_ = 0;
  }

  /** Loads what is left and merges everything, in order. */
  void finish() {
    while (!pending_.empty()) {
      mergeOne();
    }
    into_.merge(loadBatch(std::move(batch_), file_));
    batch_.clear();
  }

private:
  static constexpr size_t kBatchBytes = 256 * 1024;

  static Loader loadBatch(std::vector<Document> docs, const FileName& file) {
    Loader batch;
    batch.loadBatch(std::move(docs), file);
    return batch;
  }

  void mergeOne() {
    Loader done = pending_.front().get();
    pending_.pop_front();
    into_.merge(std::move(done));
  }

  Loader& into_;
  const FileName file_;
  WorkerPool& pool_;
  std::vector<Document> batch_;
  size_t batchBytes_ = 0;
  std::deque<std::future<Loader>> pending_; // in stream order
};

/** Calls f(&Config::list) for each object list of a Config, in member order. */
template <class F>
void forEachList(F&& f) {
  f(&Config::services);
  f(&Config::pods);
  f(&Config::endpointSlices);
  f(&Config::destinationRules);
  f(&Config::virtualServices);
  f(&Config::gateways);
  f(&Config::trafficLabels);
  f(&Config::ingressRoutes);
}

Loader::ListSizes listSizes(const Config& c) {
  Loader::ListSizes out{};
  size_t i = 0;
  forEachList([&](auto list) { out[i++] = (c.*list).size(); });
  return out;
}

} // namespace
} // namespace veer

namespace veer::loading {

void Loader::loadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    fileError(path, "cannot read file");
    return;
  }
  // Line by line: a file of 10,000 objects is never in memory whole.
  ParallelLoad load(*this, path);
  DocumentSplitter split([&](Document&& doc) { load.add(std::move(doc)); });
  std::string line;
  while (std::getline(in, line)) {
    if (!in.eof()) {
      line.push_back('\n');
    }
    split.line(line);
  }
  if (in.bad()) {
    load.finish(); // what was read before the error still loads, in order
    fileError(path, "cannot read file");
    return;
  }
  split.finish();
  load.finish();
}

void Loader::loadText(std::string_view text, const std::string& file) {
  ParallelLoad load(*this, file);
  DocumentSplitter split([&](Document&& doc) { load.add(std::move(doc)); });
  for (size_t start = 0; start < text.size();) {
    const size_t end = text.find('\n', start);
    const size_t next = end == std::string_view::npos ? text.size() : end + 1;
    split.line(text.substr(start, next - start));
    start = next;
  }
  split.finish();
  load.finish();
}

void Loader::loadBatch(std::vector<Document> docs, const FileName& file) {
  for (Document& d : docs) {
    yaml::Document doc;
    yaml::ParseError error;
    const bool ok = yaml::parse(d.text, doc, error);
    d.text = std::string(); // free as we go
    if (ok) {
      ObjectParser p(file, d.firstLine, result_.diags);
      loadObject(p, doc.root(), "");
      continue;
    }
    Diagnostic diag;
    diag.pos.file = file;
    if (!error.mark.isNull()) {
      diag.pos.line = d.firstLine + error.mark.line + 1;
      diag.pos.column = error.mark.column + 1;
    }
    diag.message = "YAML syntax error: " + error.message;
    if (!error.context.empty()) {
      // Lines of the file, like the diagnostic's own position.
      diag.message += " " + error.context + " that starts at line " +
                      std::to_string(d.firstLine + error.contextMark.line + 1) + ", column " +
                      std::to_string(error.contextMark.column + 1);
    }
    result_.diags.push_back(std::move(diag));
  }
}

void Loader::merge(Loader&& batch) {
  Diagnostics& from = batch.result_.diags;
  Diagnostics& to = result_.diags;
  auto takeDiags = [&](size_t begin, size_t end) {
    to.insert(to.end(), std::make_move_iterator(from.begin() + static_cast<ptrdiff_t>(begin)),
              std::make_move_iterator(from.begin() + static_cast<ptrdiff_t>(end)));
  };
  auto takeObjects = [&](const ListSizes& begin, const ListSizes& end) {
    size_t i = 0;
    forEachList([&](auto list) {
      auto& src = batch.result_.config.*list;
      auto& dst = result_.config.*list;
      for (size_t j = begin[i]; j < end[i]; ++j) {
        dst.push_back(std::move(src[j]));
      }
      ++i;
    });
  };
  size_t diag = 0;
  ListSizes objects{};
  for (ObjectMark& m : batch.marks_) {
    takeDiags(diag, m.bodyDiags);
    auto [it, inserted] = seen_.emplace(m.key, m.pos);
    if (inserted) {
      takeDiags(m.bodyDiags, m.endDiags);
      takeObjects(objects, m.end);
    } else {
      const SourcePos& first = it->second;
      Diagnostic d;
      d.pos = m.pos;
      d.object = m.key.ref();
      d.message = "duplicate object; first defined at " + first.str();
      to.push_back(std::move(d));
    }
    diag = m.endDiags;
    objects = m.end;
  }
  takeDiags(diag, from.size()); // after the last object: syntax errors, non-objects
}

LoadResult Loader::take() {
  // The last chunk of each list is partly used.
  forEachList([&](auto list) { (result_.config.*list).shrink_to_fit(); });
  return std::move(result_);
}

void Loader::fileError(const std::string& path, const std::string& message) {
  Diagnostic d;
  d.pos.file = path;
  d.message = message;
  result_.diags.push_back(std::move(d));
}

void Loader::loadObject(ObjectParser& p, const yaml::Node& doc, const std::string& prefix) {
  if (doc.isNull()) {
    return; // empty document, e.g. a trailing "---"
  }
  auto top = p.fields(doc, prefix, {}, {}, false);
  if (!top) {
    return;
  }
  const yaml::Node* kindNode = ObjectParser::get(*top, "kind");
  const yaml::Node* apiNode = ObjectParser::get(*top, "apiVersion");
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
    const yaml::Node* items = ObjectParser::get(*top, "items");
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
  enum class Kind { kService, kPod, kSlice, kDr, kVs, kGw, kTl, kContour, kHttpRoute, kNone } k =
      Kind::kNone;
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
  } else if ((*api == "gateway.networking.k8s.io/v1" ||
              *api == "gateway.networking.k8s.io/v1beta1") &&
             *kind == "HTTPRoute") {
    k = Kind::kHttpRoute;
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
  // Whether it duplicates an earlier object is decided when batches merge (merge()).
  const size_t mark = marks_.size();
  marks_.push_back(ObjectMark{{meta.kind, meta.ns, meta.name}, meta.pos, diagCount()});
  const yaml::Node* spec = ObjectParser::get(*top, "spec");
  const yaml::Node* status = ObjectParser::get(*top, "status");
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
  case Kind::kHttpRoute:
    loadHttpRoute(p, std::move(meta), spec);
    break;
  case Kind::kNone:
    break;
  }
  marks_[mark].endDiags = diagCount();
  marks_[mark].end = listSizes(result_.config);
}

bool Loader::loadMeta(ObjectParser& p, const Fields& top, ObjectMeta& meta) {
  p.setObject(meta.kind + " (no name)"); // until the name is known
  const yaml::Node* md = ObjectParser::get(top, "metadata");
  if (md == nullptr) {
    p.report(Diagnostic::Severity::kError, meta.pos, "metadata", "missing metadata.name");
    return false;
  }
  auto m = p.fields(*md, "metadata", {}, {}, false);
  if (!m) {
    return false;
  }
  const yaml::Node* name = ObjectParser::get(*m, "name");
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
  if (const yaml::Node* ns = ObjectParser::get(*m, "namespace")) {
    if (auto v = p.string(*ns, "metadata.namespace"); v && !v->empty()) {
      meta.ns = *v;
    }
  }
  if (const yaml::Node* l = ObjectParser::get(*m, "labels")) {
    meta.labels = p.labels(*l, "metadata.labels");
  }
  if (const yaml::Node* a = ObjectParser::get(*m, "annotations")) {
    meta.annotations = p.labels(*a, "metadata.annotations");
  }
  if (const yaml::Node* u = ObjectParser::get(*m, "uid")) {
    meta.uid = p.string(*u, "metadata.uid").value_or("");
  }
  return true;
}

} // namespace veer::loading

namespace veer {
namespace {

using loading::Loader;
namespace fs = std::filesystem;

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

namespace {

std::vector<std::string> collectAll(const std::vector<std::string>& paths, Loader& loader) {
  std::vector<std::string> files;
  for (const auto& p : paths) {
    std::set<fs::path> stack;
    collect(fs::path(p), true, stack, files, loader);
  }
  return files;
}

} // namespace

LoadResult loadPaths(const std::vector<std::string>& paths) {
  Loader loader;
  for (const auto& f : collectAll(paths, loader)) {
    loader.loadFile(f);
  }
  return loader.take();
}

std::vector<std::string> listConfigFiles(const std::vector<std::string>& paths, Diagnostics& diags) {
  Loader loader;
  std::vector<std::string> files = collectAll(paths, loader);
  LoadResult walked = loader.take();
  diags.insert(diags.end(), std::make_move_iterator(walked.diags.begin()),
               std::make_move_iterator(walked.diags.end()));
  return files;
}

LoadResult loadTexts(const std::vector<ConfigText>& texts) {
  Loader loader;
  for (const ConfigText& t : texts) {
    loader.loadText(*t.text, t.file);
  }
  return loader.take();
}

LoadResult loadString(std::string_view yaml, const std::string& fileName) {
  Loader loader;
  loader.loadText(yaml, fileName);
  return loader.take();
}

} // namespace veer
