#include "reconcile/directory_source.h"

#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <algorithm>
#include <filesystem>
#include <vector>

#include "common/files.h"

namespace veer {
namespace {

namespace fs = std::filesystem;

// IN_MODIFY and IN_CLOSE_WRITE together tell a file mid-write from one its writer closed.
constexpr uint32_t kWatchMask = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM |
                                IN_CREATE | IN_DELETE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;

std::string canonicalOr(const std::string& path) {
  std::error_code ec;
  fs::path canon = fs::canonical(path, ec);
  return ec ? path : canon.string();
}

} // namespace

DirectorySource::DirectorySource(std::string dir, proxy::TimeSource& clock, ConfigSink& sink)
    : dir_(std::move(dir)), clock_(clock), sink_(sink),
      fd_(inotify_init1(IN_CLOEXEC | IN_NONBLOCK)) {}

Status DirectorySource::init() {
  if (!fd_) {
    return osError(errno, "inotify_init1");
  }
  watchTree();
  if (dirs_.empty()) {
    return Error{ENOENT, "cannot watch " + dir_};
  }
  scan(true);
  return {};
}

void DirectorySource::watchTree() {
  // Each real directory once: symlinked directories can make a DAG whose paths
  // are exponentially many. Only inside the directory, which is all the loader reads.
  const std::string root = canonicalOr(dir_);
  std::set<std::pair<dev_t, ino_t>> seen;
  std::vector<fs::path> todo = {fs::path(dir_)};
  while (!todo.empty()) {
    const fs::path d = std::move(todo.back());
    todo.pop_back();
    struct stat st {};
    if (stat(d.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) ||
        !seen.emplace(st.st_dev, st.st_ino).second) {
      continue;
    }
    const std::string canon = canonicalOr(d.string());
    if (canon != root && canon.rfind(root + "/", 0) != 0) {
      continue; // a link out of the directory: the loader refuses it, nothing to watch
    }
    const int wd = inotify_add_watch(fd_.get(), canon.c_str(), kWatchMask);
    if (wd < 0) {
      if (errno != ENOENT) {
        spdlog::warn("{}", osError(errno, "inotify_add_watch " + canon).message);
      }
      continue;
    }
    dirs_[wd] = canon;
    std::error_code ec;
    for (fs::directory_iterator it(d, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->is_directory(ec)) { // follows symlinks, like the loader's walk
        todo.push_back(it->path());
      }
    }
  }
}

bool DirectorySource::readEvents() {
  alignas(inotify_event) char buf[16384];
  bool any = false;
  for (ssize_t n; (n = read(fd_.get(), buf, sizeof(buf))) > 0;) {
    any = true;
    for (char* p = buf; p < buf + n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(p);
      p += sizeof(inotify_event) + ev->len;
      if (ev->mask & IN_Q_OVERFLOW) {
        // Closes may have been lost: a file left marked would never be read again.
        spdlog::warn("inotify queue overflowed on {}; files being written may be read before "
                     "their writers close them",
                     dir_);
        writing_.clear();
        continue;
      }
      if (ev->mask & IN_IGNORED) {
        dirs_.erase(ev->wd); // the directory went (an old ConfigMap generation)
        continue;
      }
      auto dir = dirs_.find(ev->wd);
      if (dir == dirs_.end() || ev->len == 0) {
        continue; // the directory itself: the scan reads everything
      }
      const std::string path = dir->second + "/" + ev->name;
      touched_.insert(path);
      if (ev->mask & (IN_MODIFY | IN_CLOSE_WRITE)) {
        inPlace_[path] = clock_.nowMs();
      } else if (ev->mask & (IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO)) {
        inPlace_.erase(path); // a rename is whole; a deleted name has nothing to wait for
      }
      if (ev->mask & IN_MODIFY) {
        writing_.insert(path);
      } else if (ev->mask &
                 (IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO)) {
        // Closed by its writer, or a new inode at the name (a rename is whole).
        writing_.erase(path);
      }
    }
  }
  if (any) {
    const uint64_t now = clock_.nowMs();
    if (!firstEvent_) {
      firstEvent_ = now;
    }
    lastEvent_ = now;
  }
  return any;
}

void DirectorySource::onReadable() {
  readEvents();
}

std::optional<uint64_t> DirectorySource::due() const {
  std::optional<uint64_t> when;
  if (lastEvent_) {
    when = std::min(*lastEvent_ + kQuietMs, *firstEvent_ + kMaxSettleMs);
  }
  for (const auto& [path, at] : inPlace_) {
    when = std::min(when.value_or(UINT64_MAX), at + kInPlaceSettleMs);
  }
  return when;
}

void DirectorySource::onTimer() {
  const auto when = due();
  if (when && clock_.nowMs() >= *when) {
    scan(false);
  }
}

void DirectorySource::refresh() {
  scan(true);
}

void DirectorySource::scan(bool force) {
  readEvents(); // what happened up to now is in writing_
  firstEvent_.reset();
  lastEvent_.reset();
  touched_.clear();
  watchTree(); // directories made since (a new ConfigMap generation)

  // In-place writes that have settled: read from now on like any file.
  const uint64_t now = clock_.nowMs();
  std::erase_if(inPlace_, [&](const auto& w) { return now >= w.second + kInPlaceSettleMs; });

  ConfigSnapshot snap;
  std::map<std::string, Kept> next;
  std::set<std::string> read;
  std::map<std::string, bool> held; // mid-write files -> whether a whole version is kept
  for (const ConfigFile& file : openConfigFiles({dir_}, snap.diags)) {
    // What the descriptor really is: the path events name, whatever links led to it.
    std::error_code ec;
    const fs::path real = fs::read_symlink("/proc/self/fd/" + std::to_string(file.fd.get()), ec);
    const std::string canon = ec ? canonicalOr(file.name) : real.string();
    if (writing_.count(canon) != 0 || inPlace_.count(canon) != 0) {
      held[file.name] = files_.count(canon) != 0;
      if (auto kept = files_.find(canon); kept != files_.end()) {
        snap.texts.push_back({file.name, kept->second.text});
        next.emplace(canon, kept->second);
      }
      continue;
    }
    Result<std::string> text = readConfigFile(file);
    if (!text) {
      Diagnostic d;
      d.pos.file = file.name;
      d.message = text.error().message;
      snap.diags.push_back(std::move(d));
      continue;
    }
    auto shared = std::make_shared<const std::string>(std::move(*text));
    snap.texts.push_back({file.name, shared});
    next.emplace(canon, Kept{shared});
    read.insert(canon);
  }
  // A write that raced with the read is queued by now: that file may be torn.
  readEvents();
  for (const std::string& t : touched_) {
    if (read.count(t) != 0) {
      spdlog::info("config file {} changed while it was read; reading the directory again once "
                   "it settles",
                   t);
      return; // readEvents() left a burst pending: due() brings the next scan
    }
  }
  for (const auto& [file, kept] : held) {
    if (heldLogged_.insert(file).second) {
      spdlog::info("config file {} is being written in place; {} until it has been unchanged "
                   "for {} ms after its writer closed it",
                   file, kept ? "its last whole version stays" : "it is left out",
                   kInPlaceSettleMs);
    }
  }
  std::erase_if(heldLogged_, [&](const std::string& f) { return held.count(f) == 0; });
  files_ = std::move(next);
  const bool same = std::equal(snap.texts.begin(), snap.texts.end(), delivered_.begin(),
                               delivered_.end(), [](const ConfigText& a, const ConfigText& b) {
                                 return a.file == b.file && *a.text == *b.text;
                               });
  if (same && snap.diags.empty() && !force) {
    return; // a burst that ended where it began (touch, chmod, a temporary file)
  }
  delivered_ = snap.texts;
  sink_.update(dir_, std::move(snap));
}

} // namespace veer
