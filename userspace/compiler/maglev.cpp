#include "compiler/maglev.h"

#include <algorithm>
#include <numeric>

#include "common/worker_pool.h"

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
  // pos[i] walks backend i's permutation offset, offset + skip, offset + 2 skip... (mod
  // size) by addition: filling a table takes about size * ln(size) probes, and a division
  // per probe was most of the time.
  std::vector<uint32_t> pos(n), skip(n);
  for (size_t i = 0; i < n; ++i) {
    const auto& s = names[i];
    pos[i] = static_cast<uint32_t>(fnv1a64(s.data(), s.size(), 0x9e3779b97f4a7c15ULL) % size);
    skip[i] =
        static_cast<uint32_t>(fnv1a64(s.data(), s.size(), 0xc2b2ae3d27d4eb4fULL) % (size - 1) + 1);
  }
  auto advance = [&](uint32_t i) {
    pos[i] += skip[i]; // both < size < 2^31: no overflow
    if (pos[i] >= size) {
      pos[i] -= size;
    }
  };
  std::sort(order.begin(), order.end(),
            [&](uint32_t a, uint32_t b) { return names[a] < names[b]; });

  constexpr uint32_t kEmpty = UINT32_MAX;
  table.assign(size, kEmpty);
  uint32_t filled = 0;
  while (true) {
    for (uint32_t i : order) {
      while (table[pos[i]] != kEmpty) {
        advance(i);
      }
      table[pos[i]] = i;
      advance(i);
      if (++filled == size) {
        return table;
      }
    }
  }
}

std::vector<std::shared_ptr<const veer_maglev_ring>>
MaglevCache::rings(const std::vector<std::vector<std::string>>& lists) {
  // Look up first (a list may repeat), then compute what is missing on every core: map
  // nodes do not move, and each worker writes only its own entries.
  std::vector<std::pair<const std::vector<std::string>*, Entry*>> todo;
  std::vector<const Entry*> entries; // of lists, in order
  entries.reserve(lists.size());
  for (const auto& names : lists) {
    auto [it, inserted] = rings_.try_emplace(names);
    if (inserted) {
      todo.emplace_back(&it->first, &it->second);
    }
    it->second.used = true;
    entries.push_back(&it->second);
  }
  auto build = [&](size_t from, size_t step) {
    for (size_t i = from; i < todo.size(); i += step) {
      auto ring = std::make_shared<veer_maglev_ring>();
      const std::vector<uint32_t> table = maglevTable(*todo[i].first, VEER_MAGLEV_SIZE);
      for (size_t j = 0; j < table.size(); ++j) {
        ring->backend_index[j] = static_cast<uint8_t>(table[j]);
      }
      todo[i].second->ring = std::move(ring);
    }
  };
  WorkerPool& pool = WorkerPool::shared();
  pool.parallelFor(todo.size() < 64 ? 1 : pool.threads(), build);
  computed_ += todo.size();
  std::vector<std::shared_ptr<const veer_maglev_ring>> out;
  out.reserve(lists.size());
  for (const Entry* e : entries) {
    out.push_back(e->ring);
  }
  return out;
}

void MaglevCache::sweep() {
  for (auto it = rings_.begin(); it != rings_.end();) {
    if (!it->second.used) {
      it = rings_.erase(it);
    } else {
      it->second.used = false;
      ++it;
    }
  }
}

} // namespace veer
