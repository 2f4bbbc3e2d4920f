// YAML -> Config: files and directories, YAML streams split into documents, and the
// dispatch of each object to its format's loader (loader_k8s.cpp, loader_istio.cpp,
// loader_asm.cpp, loader_contour.cpp, loader_gateway.cpp). YAML is parsed by libyaml into
// a read-only tree (yaml.h); a syntax error is a positioned Diagnostic. Unknown fields are
// warnings (with a "did you mean" hint), wrong types are errors naming file:line:col and
// the field path.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <deque>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <set>

#include "common/files.h"
#include "common/memory.h"
#include "common/worker_pool.h"
#include "config/loader_internal.h"

namespace veer {
namespace {

using loading::Loader;
using Document = Loader::Document;

// A load this large leaves enough freed memory behind to give back at once.
constexpr size_t kReleaseAfterBytes = 4u << 20;

// What one read() asks for.
constexpr size_t kReadBytes = 64 * 1024;

/** "<what> is larger than N MiB (the limit)". */
std::string tooLarge(const std::string& what, size_t limit) {
  return what + " is larger than " + std::to_string(limit >> 20) + " MiB (the limit)";
}

/** True for a document marker line: "---" or "..." at column 0, alone or before a space. */
bool isDocumentMarker(std::string_view line, std::string_view marker) {
  return line.substr(0, 3) == marker && (line.size() == 3 || line[3] == ' ' || line[3] == '\t' ||
                                         line[3] == '\r' || line[3] == '\n');
}

/**
 * Splits a stream at its document markers, line by line, so each document is parsed on
 * its own: a syntax error in one document does not hide the others (a stream parser stops
 * at the first), and only one document's text is held at a time. The split is exact: YAML
 * forbids "---" and "..." at column 0 inside content. A "---" is blanked rather than
 * dropped so content after it on the same line keeps its column. (It also kept yaml-cpp
 * 0.7's LoadAll hang, jbeder/yaml-cpp#1040, out of reach while the loader used yaml-cpp.)
 * The stream comes in pieces of any size (feed()), so a file's longest line is never
 * held whole: a document that grows past kMaxDocumentBytes keeps only its length.
 */
class DocumentSplitter {
public:
  explicit DocumentSplitter(std::function<void(Document&&)> emit) : emit_(std::move(emit)) {}

  /** The next bytes of the stream. */
  void feed(std::string_view bytes) {
    while (!bytes.empty()) {
      const size_t nl = bytes.find('\n');
      const size_t n = nl == std::string_view::npos ? bytes.size() : nl + 1;
      const std::string_view piece = bytes.substr(0, n);
      bytes.remove_prefix(n);
      const bool ends = nl != std::string_view::npos;
      if (inLine_) {
        append(piece);
        finishLine(ends);
        continue;
      }
      if (head_.empty() && ends) {
        line(piece, true);
        continue;
      }
      // A line's start in parts: held until the line ends or is long enough that whether
      // it is a marker is known.
      head_.append(piece);
      if (!ends && head_.size() < kDecideBytes) {
        continue;
      }
      line(head_, ends);
      head_.clear();
    }
  }

  /** The end of the stream: the last document. */
  void finish() {
    if (!head_.empty()) {
      line(head_, true);
      head_.clear();
    }
    emit_(std::move(doc_));
  }

private:
  // Longer than a marker and its separator, so a held line start decides.
  static constexpr size_t kDecideBytes = 4096;

  /** A line's start (the whole line when ends). */
  void line(std::string_view start, bool ends) {
    if (isDocumentMarker(start, "---")) {
      next(lineNo_);
      append("   ");
      append(start.substr(3));
    } else if (isDocumentMarker(start, "...") && ends) {
      next(lineNo_ + 1);
    } else {
      append(start);
    }
    finishLine(ends);
  }

  void finishLine(bool ends) {
    inLine_ = !ends;
    if (ends) {
      ++lineNo_;
    }
  }

  void append(std::string_view bytes) {
    doc_.bytes += bytes.size();
    if (doc_.bytes > kMaxDocumentBytes) {
      doc_.text = std::string(); // never parsed: Loader::loadBatch reports it
    } else {
      doc_.text.append(bytes);
    }
  }

  void next(int firstLine) {
    emit_(std::move(doc_));
    doc_ = Document{std::string(), firstLine, 0};
  }

  std::function<void(Document&&)> emit_;
  Document doc_;
  std::string head_;    // the start of a line that came in parts, until it decides
  bool inLine_ = false; // the current line's start was decided; its rest follows
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
    pending_.push_back(pool_.submit([docs = std::move(batch_), file = file_]() mutable {
      return loadBatch(std::move(docs), file);
    }));
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
template <class F> void forEachList(F&& f) {
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

void Loader::loadFile(const std::string& path, int fd) {
  // In pieces: a file of 10,000 objects, or one long line, is never in memory whole.
  ParallelLoad load(*this, path);
  DocumentSplitter split([&](Document&& doc) { load.add(std::move(doc)); });
  std::string buf(kReadBytes, '\0');
  size_t total = 0;
  while (true) {
    const ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      load.finish(); // what was read before the error still loads, in order
      fileError(path, std::string("cannot read file: ") + std::strerror(errno));
      return;
    }
    if (n == 0) {
      break;
    }
    total += static_cast<size_t>(n);
    if (total > kMaxConfigFileBytes) {
      // It grew after its size was checked: what was read loads, and the error stops it.
      load.finish();
      fileError(path, tooLarge("file", kMaxConfigFileBytes));
      return;
    }
    split.feed(std::string_view(buf.data(), static_cast<size_t>(n)));
  }
  split.finish();
  load.finish();
}

void Loader::loadText(std::string_view text, const std::string& file) {
  ParallelLoad load(*this, file);
  DocumentSplitter split([&](Document&& doc) { load.add(std::move(doc)); });
  split.feed(text);
  split.finish();
  load.finish();
}

void Loader::loadBatch(std::vector<Document> docs, const FileName& file) {
  for (Document& d : docs) {
    if (d.bytes > kMaxDocumentBytes) {
      Diagnostic diag;
      diag.pos.file = file;
      diag.pos.line = d.firstLine + 1;
      diag.pos.column = 1;
      diag.message = tooLarge("YAML document", kMaxDocumentBytes) +
                     "; not parsed (split it into documents with ---)";
      result_.diags.push_back(std::move(diag));
      continue;
    }
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
      diag.pos.column = SourcePos::column16(error.mark.column + 1);
    }
    diag.message = "YAML syntax error: " + excerpt(error.message, loading::kMaxMessageBytes);
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
  enum class Kind {
    kService,
    kPod,
    kSlice,
    kDr,
    kVs,
    kGw,
    kTl,
    kContour,
    kHttpRoute,
    kNone
  } k = Kind::kNone;
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

/** A real file or directory, however many links lead to it. */
struct FileId {
  dev_t dev;
  ino_t ino;
  auto operator<=>(const FileId&) const = default;
};

/** True when path is root or lies under it (both canonical). */
bool within(const fs::path& path, const fs::path& root) {
  auto [r, p] = std::mismatch(root.begin(), root.end(), path.begin(), path.end());
  return r == root.end();
}

/**
 * The files a loadPaths call reads, in the order it reads them: each real directory is
 * listed once and each real file opened once, by device and inode, so links that join
 * directories into a DAG cost one visit per directory, not one per path (18 directories
 * linked two ways each took 22.9 s), and a file reached twice is not a duplicate of itself.
 */
class Walk {
public:
  explicit Walk(Loader& loader) : loader_(loader) {}

  /** A path named by the caller: a file is read as named; a directory is a boundary. */
  void top(const fs::path& path) {
    std::error_code ec;
    const fs::file_status st = fs::status(path, ec); // follows symlinks
    if (ec || !fs::exists(st)) {
      loader_.fileError(path.string(), "no such file or directory");
      return;
    }
    if (!fs::is_directory(st)) {
      file(path, fs::path()); // as named: no boundary, and a pipe (<(kubectl ...)) reads too
      return;
    }
    fs::path root = fs::canonical(path, ec);
    if (ec) {
      loader_.fileError(path.string(), "cannot resolve directory: " + ec.message());
      return;
    }
    directory(path, root);
  }

  std::vector<std::pair<std::string, Fd>>& files() { return files_; }

private:
  /** Lists dir (under root) and walks its entries in name order. */
  void directory(const fs::path& dir, const fs::path& root) {
    struct stat st {};
    if (stat(dir.c_str(), &st) != 0) {
      loader_.fileError(dir.string(),
                        std::string("cannot read directory: ") + std::strerror(errno));
      return;
    }
    if (!seen_.insert(FileId{st.st_dev, st.st_ino}).second) {
      return; // listed already: through another link, or a link loop
    }
    std::error_code ec;
    std::vector<fs::path> entries;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      std::string name = it->path().filename().string();
      if (name.rfind("..", 0) == 0) {
        continue; // ConfigMap internals (..data, ..2026_01_01): read via top-level links
      }
      entries.push_back(it->path());
    }
    if (ec) {
      loader_.fileError(dir.string(), "cannot list directory: " + ec.message());
      return;
    }
    std::sort(entries.begin(), entries.end());
    for (const fs::path& e : entries) {
      entry(e, root);
    }
  }

  void entry(const fs::path& path, const fs::path& root) {
    std::error_code ec;
    const fs::file_status link = fs::symlink_status(path, ec);
    if (ec) {
      loader_.fileError(path.string(), "cannot stat: " + ec.message());
      return;
    }
    if (fs::is_symlink(link)) {
      const fs::path target = fs::canonical(path, ec);
      if (ec) {
        loader_.fileError(path.string(), "broken symlink");
        return;
      }
      if (!within(target, root)) {
        loader_.fileError(path.string(), "symlink leads out of the config directory " +
                                             root.string() + " (to " + target.string() +
                                             "); not followed");
        return;
      }
    }
    const fs::file_status st = fs::status(path, ec);
    if (ec) {
      loader_.fileError(path.string(), "cannot stat: " + ec.message());
      return;
    }
    if (fs::is_directory(st)) {
      directory(path, root);
    } else if (fs::is_regular_file(st) && wantedExtension(path)) {
      file(path, root);
    }
  }

  /**
   * Opens a file to read, checked on the open descriptor (what is read is what was
   * checked, whatever is renamed meanwhile): with a read permission bit, at most
   * kMaxConfigFileBytes, and, under a directory (root not empty), a regular file inside
   * root. A file named by the caller (root empty) may be a pipe.
   */
  void file(const fs::path& path, const fs::path& root) {
    const std::string name = path.string();
    // Only regular files are read from a directory: the walk saw one, but if a FIFO took
    // its place meanwhile, O_NONBLOCK keeps the open from hanging the loader.
    Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | (root.empty() ? 0 : O_NONBLOCK)));
    if (!fd) {
      loader_.fileError(name, std::string("cannot open file: ") + std::strerror(errno));
      return;
    }
    struct stat st {};
    if (fstat(fd.get(), &st) != 0) {
      loader_.fileError(name, std::string("cannot stat file: ") + std::strerror(errno));
      return;
    }
    if (!root.empty() && !S_ISREG(st.st_mode)) {
      loader_.fileError(name, "not a regular file");
      return;
    }
    if (!seen_.insert(FileId{st.st_dev, st.st_ino}).second) {
      return; // read already, through another link
    }
    if (S_ISREG(st.st_mode) && (st.st_mode & (S_IRUSR | S_IRGRP | S_IROTH)) == 0) {
      // root reads it all the same; a file that nobody may read is not config.
      char mode[8];
      std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
      loader_.fileError(name, std::string("file mode ") + mode + " lets nobody read it; not read");
      return;
    }
    if (static_cast<uint64_t>(st.st_size) > kMaxConfigFileBytes) {
      loader_.fileError(name, tooLarge("file", kMaxConfigFileBytes) + "; not read");
      return;
    }
    if (!root.empty()) {
      // The path was checked link by link; the descriptor says what was really opened.
      std::error_code ec;
      const fs::path real = fs::read_symlink("/proc/self/fd/" + std::to_string(fd.get()), ec);
      if (ec || !within(real, root)) {
        loader_.fileError(name,
                          "leads out of the config directory " + root.string() + "; not read");
        return;
      }
    }
    files_.emplace_back(name, std::move(fd));
  }

  Loader& loader_;
  std::set<FileId> seen_;
  std::vector<std::pair<std::string, Fd>> files_;
};

} // namespace

LoadResult loadPaths(const std::vector<std::string>& paths) {
  Loader loader;
  Walk walk(loader);
  for (const auto& p : paths) {
    walk.top(fs::path(p));
  }
  size_t bytes = 0;
  for (auto& [name, fd] : walk.files()) {
    struct stat st {};
    bytes += fstat(fd.get(), &st) == 0 ? static_cast<size_t>(st.st_size) : 0;
    loader.loadFile(name, fd.get());
    fd = Fd(); // closed once read
  }
  LoadResult result = loader.take();
  if (bytes >= kReleaseAfterBytes) {
    releaseFreeMemory(); // the texts and trees, freed on every worker
  }
  return result;
}

std::vector<ConfigFile> openConfigFiles(const std::vector<std::string>& paths, Diagnostics& diags) {
  Loader loader;
  Walk walk(loader);
  for (const auto& p : paths) {
    walk.top(fs::path(p));
  }
  std::vector<ConfigFile> files;
  for (auto& [name, fd] : walk.files()) {
    files.push_back({name, std::move(fd)});
  }
  LoadResult walked = loader.take();
  diags.insert(diags.end(), std::make_move_iterator(walked.diags.begin()),
               std::make_move_iterator(walked.diags.end()));
  return files;
}

Result<std::string> readConfigFile(const ConfigFile& file) {
  std::string text;
  std::string buf(kReadBytes, '\0');
  while (true) {
    const ssize_t n = read(file.fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return osError(errno, "cannot read file");
    }
    if (n == 0) {
      return text;
    }
    if (text.size() + static_cast<size_t>(n) > kMaxConfigFileBytes) {
      return Error{EFBIG, tooLarge("file", kMaxConfigFileBytes)};
    }
    text.append(buf.data(), static_cast<size_t>(n));
  }
}

LoadResult loadTexts(const std::vector<ConfigText>& texts) {
  Loader loader;
  size_t bytes = 0;
  for (const ConfigText& t : texts) {
    loader.loadText(*t.text, t.file);
    bytes += t.text->size();
  }
  LoadResult result = loader.take();
  if (bytes >= kReleaseAfterBytes) {
    releaseFreeMemory(); // the trees, freed on every worker (the texts stay with the caller)
  }
  return result;
}

LoadResult loadString(std::string_view yaml, const std::string& fileName) {
  Loader loader;
  loader.loadText(yaml, fileName);
  return loader.take();
}

} // namespace veer
