#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace veer {

/**
 * Maglev lookup table (Eisenbud et al., NSDI'16): size entries, each the index
 * of a backend in names. Removing one of N backends moves only the entries it
 * owned; adding one takes about size/(N+1) entries. Deterministic: depends
 * only on the names and their order-independent hashes. size must be prime.
 * Returns an empty table when names is empty.
 */
std::vector<uint32_t> maglevTable(const std::vector<std::string>& names, uint32_t size);

/** 64-bit FNV-1a, seeded; stable across runs and platforms. */
uint64_t fnv1a64(const void* data, size_t len, uint64_t seed = 0xcbf29ce484222325ULL);

} // namespace veer
