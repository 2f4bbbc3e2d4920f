#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/hash.h"
#include "veer/maps.h"

namespace veer {

/**
 * Maglev lookup table (Eisenbud et al., NSDI'16): size entries, each the index
 * of a backend in names. Removing one of N backends moves only the entries it
 * owned; adding one takes about size/(N+1) entries. Deterministic: depends
 * only on the names and their order-independent hashes. size must be prime.
 * Returns an empty table when names is empty.
 */
std::vector<uint32_t> maglevTable(const std::vector<std::string>& names, uint32_t size);

/**
 * Kernel rings (veer_maglev values) by the backend names they are built from, kept from
 * one compile to the next: filling a 16381-entry table takes about 0.2 ms, so an apply
 * that recomputed every ring of a 30,000-version config spent seconds on versions whose
 * endpoints had not changed. Rings are shared with the map images that use them.
 */
class MaglevCache {
public:
  /**
   * The ring of each backend list (2..VEER_MAX_BACKENDS_PER_VERSION names, in version
   * order). The ones not cached are computed on every core.
   */
  std::vector<std::shared_ptr<const veer_maglev_ring>>
  rings(const std::vector<std::vector<std::string>>& lists);
  /** Forgets the rings not asked for since the last sweep: the cache holds the live config's. */
  void sweep();
  size_t size() const { return rings_.size(); }
  /** Rings computed (not found) since the cache was made. */
  uint64_t computed() const { return computed_; }

private:
  struct Entry {
    std::shared_ptr<const veer_maglev_ring> ring;
    bool used = false;
  };
  std::map<std::vector<std::string>, Entry> rings_;
  uint64_t computed_ = 0;
};

} // namespace veer
