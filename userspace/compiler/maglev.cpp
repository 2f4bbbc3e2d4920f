#include "compiler/maglev.h"

#include <algorithm>
#include <numeric>

namespace veer {

std::vector<uint32_t> maglevTable(const std::vector<std::string>& names, uint32_t size) {
  std::vector<uint32_t> table;
  const size_t n = names.size();
  if (n == 0) {
    return table;
  }
  if (n == 1) {
    table.assign(size, 0); // one backend owns every slot; no permutation to walk
    return table;
  }
  // Fill in name order sorted by hash so the result does not depend on input order.
  std::vector<uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::vector<uint64_t> offset(n), skip(n), next(n, 0);
  for (size_t i = 0; i < n; ++i) {
    const auto& s = names[i];
    offset[i] = fnv1a64(s.data(), s.size(), 0x9e3779b97f4a7c15ULL) % size;
    skip[i] = fnv1a64(s.data(), s.size(), 0xc2b2ae3d27d4eb4fULL) % (size - 1) + 1;
  }
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return names[a] < names[b];
  });

  constexpr uint32_t kEmpty = UINT32_MAX;
  table.assign(size, kEmpty);
  uint32_t filled = 0;
  while (true) {
    for (uint32_t i : order) {
      uint64_t c = (offset[i] + next[i] * skip[i]) % size;
      while (table[c] != kEmpty) {
        ++next[i];
        c = (offset[i] + next[i] * skip[i]) % size;
      }
      table[c] = i;
      ++next[i];
      if (++filled == size) {
        return table;
      }
    }
  }
}

} // namespace veer
