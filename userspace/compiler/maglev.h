#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/hash.h"

namespace veer {

/**
 * Maglev lookup table (Eisenbud et al., NSDI'16): size entries, each the index
 * of a backend in names. Removing one of N backends moves only the entries it
 * owned; adding one takes about size/(N+1) entries. Deterministic: depends
 * only on the names and their order-independent hashes. size must be prime.
 * Returns an empty table when names is empty.
 */
std::vector<uint32_t> maglevTable(const std::vector<std::string>& names, uint32_t size);

} // namespace veer
