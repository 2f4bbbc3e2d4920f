#include "common/str.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <mutex>
#include <ostream>
#include <vector>

namespace veer {

namespace {

/**
 * The intern table: shards by hash, each an open-addressing set of Rep pointers under its
 * own lock, so loader threads rarely meet. A Rep leaves its shard when its last Str goes;
 * until then a lookup that finds it dying (no references) adds a fresh Rep beside it, so
 * a reference is only ever taken from a live Rep, and exactly one Str frees each.
 */
class Table {
  using Rep = detail::StrRep;

public:
  static constexpr size_t kShards = 64;

  Rep* intern(std::string_view s) {
    const size_t h = std::hash<std::string_view>{}(s);
    Shard& sh = shards_[shardOf(h)];
    std::lock_guard<std::mutex> lock(sh.mu);
    const size_t mask = sh.slots.size() - 1;
    size_t free = SIZE_MAX;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      Rep* r = sh.slots.empty() ? nullptr : sh.slots[i];
      if (r == nullptr) {
        break;
      }
      if (r == tombstone()) {
        if (free == SIZE_MAX) {
          free = i;
        }
        continue;
      }
      if (r->hash == h && r->view() == s) {
        uint32_t n = r->refs.load(std::memory_order_relaxed);
        while (n != 0 && !r->refs.compare_exchange_weak(n, n + 1, std::memory_order_relaxed)) {
        }
        if (n != 0) {
          return r;
        }
        // Dying: its last Str is on its way to release(); it keeps its slot until then.
      }
    }
    // The text runs past the struct's one-char array; a short one still needs the whole
    // struct, which the initialization below writes.
    void* mem = ::operator new(std::max(sizeof(Rep), offsetof(Rep, text) + s.size() + 1));
    auto* r = new (mem) Rep{{1}, static_cast<uint32_t>(s.size()), h, {}};
    std::memcpy(r->text, s.data(), s.size());
    r->text[s.size()] = '\0';
    insert(sh, r, free);
    return r;
  }

  void release(Rep* r) {
    Shard& sh = shards_[shardOf(r->hash)];
    {
      std::lock_guard<std::mutex> lock(sh.mu);
      const size_t mask = sh.slots.size() - 1;
      for (size_t i = r->hash & mask;; i = (i + 1) & mask) {
        if (sh.slots[i] == r) {
          sh.slots[i] = tombstone();
          --sh.live;
          ++sh.dead;
          break;
        }
      }
      if (sh.live * 8 < sh.slots.size() && sh.slots.size() > kMinSlots) { // 1/8 full: halve
        rehash(sh, sh.slots.size() / 2);
      }
    }
    r->~Rep();
    ::operator delete(r);
  }

  size_t liveCount() {
    size_t n = 0;
    for (Shard& sh : shards_) {
      std::lock_guard<std::mutex> lock(sh.mu);
      n += sh.live;
    }
    return n;
  }

private:
  static constexpr size_t kMinSlots = 16;
  struct Shard {
    std::mutex mu;
    std::vector<Rep*> slots; // size a power of two, or empty; null = never used
    size_t live = 0;
    size_t dead = 0; // tombstones
  };

  static Rep* tombstone() { return reinterpret_cast<Rep*>(alignof(Rep)); }
  static size_t shardOf(size_t h) { return (h >> 56) % kShards; }

  void insert(Shard& sh, Rep* r, size_t freeSlot) {
    if (sh.slots.empty() || (sh.live + sh.dead + 1) * 4 > sh.slots.size() * 3) {
      rehash(sh, std::max(kMinSlots, (sh.live + 1) * 2)); // at most 3/4 full
      freeSlot = SIZE_MAX;
    }
    const size_t mask = sh.slots.size() - 1;
    if (freeSlot == SIZE_MAX) {
      freeSlot = r->hash & mask;
      while (sh.slots[freeSlot] != nullptr && sh.slots[freeSlot] != tombstone()) {
        freeSlot = (freeSlot + 1) & mask;
      }
    }
    if (sh.slots[freeSlot] == tombstone()) {
      --sh.dead;
    }
    sh.slots[freeSlot] = r;
    ++sh.live;
  }

  static void rehash(Shard& sh, size_t atLeast) {
    size_t n = kMinSlots;
    while (n < atLeast) {
      n *= 2;
    }
    std::vector<Rep*> old = std::move(sh.slots);
    sh.slots.assign(n, nullptr);
    sh.dead = 0;
    for (Rep* r : old) {
      if (r != nullptr && r != tombstone()) {
        size_t i = r->hash & (n - 1);
        while (sh.slots[i] != nullptr) {
          i = (i + 1) & (n - 1);
        }
        sh.slots[i] = r;
      }
    }
  }

  Shard shards_[kShards];
};

Table& table() {
  static auto* t = new Table; // never destroyed: Strs in statics may outlive it otherwise
  return *t;
}

} // namespace

Str::Str(std::string_view s) {
  if (!s.empty()) {
    r_ = table().intern(s);
  }
}

void Str::release(Rep* r) {
  table().release(r);
}

size_t Str::liveCount() {
  return table().liveCount();
}

std::ostream& operator<<(std::ostream& os, const Str& s) {
  return os << s.view();
}

} // namespace veer
