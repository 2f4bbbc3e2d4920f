#pragma once

// The config directory as a ConfigSource: inotify on every directory under it
// (ConfigMap "..data" swaps included), and only whole, stable files delivered.

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "common/result.h"
#include "common/files.h"
#include "reconcile/config_source.h"

namespace veer {

/**
 * Watches a config directory and delivers its files' texts after each burst of
 * changes. A file that is being written (a write seen and no close after it: an
 * editor's in-place save in several writes, a writer keeping it open) is not
 * read: its last whole version stays in the snapshot (a new file is left out)
 * until the writer closes it. A file written in place (not renamed into place)
 * must then stay unchanged for kInPlaceSettleMs before it is read: a writer
 * that closes between two writes (`cat a > f; cat b >> f`) looks closed after
 * the first. Files renamed into place (ConfigMap swaps, `mv`, editors that
 * save by rename) are whole and wait only for the quiet period. Files are read
 * only when no change arrived while they were read, so what is delivered is
 * each file as some writer left it.
 */
class DirectorySource final : public ConfigSource {
public:
  /** A burst ends after this many ms without an event (an editor, a ConfigMap swap). */
  static constexpr uint64_t kQuietMs = 100;
  /** A directory that never goes quiet is read at least this often. */
  static constexpr uint64_t kMaxSettleMs = 2000;
  /** A file written in place is read once unchanged this long (gaps between writes up to it). */
  static constexpr uint64_t kInPlaceSettleMs = 1000;

  DirectorySource(std::string dir, proxy::TimeSource& clock, ConfigSink& sink);

  /** Starts watching, then reads the directory and delivers it. */
  Status init();

  const std::string& name() const override { return dir_; }
  int fd() const override { return fd_.get(); }
  void onReadable() override;
  std::optional<uint64_t> due() const override;
  void onTimer() override;
  void refresh() override;

private:
  struct Kept {
    std::shared_ptr<const std::string> text; // the last whole version read
  };

  /** Reads queued events; true if there were any. */
  bool readEvents();
  /** Watches every directory under dir_ not watched yet, each real directory once. */
  void watchTree();
  /**
   * Reads the directory; delivers unless a file changed while it was read, or
   * (unless forced) nothing differs from the last delivery.
   */
  void scan(bool force);

  std::string dir_;
  proxy::TimeSource& clock_;
  ConfigSink& sink_;
  Fd fd_;
  std::map<int, std::string> dirs_;         // watch descriptor -> canonical directory path
  std::set<std::string> writing_;           // canonical paths written and not closed since
  std::map<std::string, uint64_t> inPlace_; // canonical path -> last in-place write (ms)
  std::set<std::string> touched_;           // canonical paths with events since the scan began
  std::map<std::string, Kept> files_;       // canonical path -> last whole version
  std::set<std::string> heldLogged_;        // mid-write files already reported
  std::vector<ConfigText> delivered_;       // the last snapshot's texts
  std::optional<uint64_t> firstEvent_, lastEvent_; // of the pending burst (ms on the clock)
};

} // namespace veer
