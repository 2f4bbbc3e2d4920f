#pragma once

// Where config comes from. A source hands the reconciler a snapshot of whole,
// stable config texts each time its content settles; the reconciler builds the
// union of every source's latest snapshot. The directory source is the first;
// a Kubernetes informer source plugs in the same way: it keeps the objects it
// watches (one text per object, named for diagnostics) and delivers a snapshot
// after each coalesced burst of events.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/loader.h"
#include "reconcile/clock.h"

namespace veer {

/** Everything one source holds now. */
struct ConfigSnapshot {
  std::vector<ConfigText> texts;
  Diagnostics diags; // what the source could not read, by file
  /**
   * Empty: the snapshot is accepted or rejected whole (a directory). Otherwise one entry
   * per text, the object it holds as diagnostics name it ("VirtualService shop/reviews"):
   * the reconciler then rejects only the objects an error names (see Reconciler).
   */
  std::vector<std::string> objects;
};

/** Receives snapshots (the Reconciler). */
class ConfigSink {
public:
  virtual ~ConfigSink() = default;
  /** source's content is now snapshot; replaces what it delivered before. */
  virtual void update(const std::string& source, ConfigSnapshot snapshot) = 0;
};

/**
 * A config source driven by its owner's event loop: poll fd() for POLLIN and
 * call onReadable(); call onTimer() once due() has passed. Neither blocks on
 * anything but reading what is ready. Snapshots go to the sink it was made with.
 */
class ConfigSource {
public:
  virtual ~ConfigSource() = default;

  /** Names the source in logs and to the sink (a directory's path). */
  virtual const std::string& name() const = 0;
  /** A descriptor to poll for POLLIN; -1 for none. */
  virtual int fd() const = 0;
  /** Reads what made fd() readable. */
  virtual void onReadable() = 0;
  /** When onTimer() is next needed (ms on the clock); nullopt: not until fd() is readable. */
  virtual std::optional<uint64_t> due() const = 0;
  virtual void onTimer() = 0;
  /** Reads everything again and delivers it (SIGHUP). */
  virtual void refresh() = 0;
};

} // namespace veer
