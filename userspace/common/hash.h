#pragma once

#include <cstddef>
#include <cstdint>

namespace veer {

/** 64-bit FNV-1a, seeded; stable across runs and platforms. The default seed is the
 * standard offset basis, so fnv1a64(p, n) is plain FNV-1a (route table digests). */
uint64_t fnv1a64(const void* data, size_t len, uint64_t seed = 0xcbf29ce484222325ULL);

} // namespace veer
