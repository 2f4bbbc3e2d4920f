#pragma once

#include <algorithm>
#include <initializer_list>
#include <stdexcept>
#include <utility>
#include <vector>

#include "common/thin_vector.h"

namespace veer {

/**
 * A sorted vector of (key, value) with the part of std::map's interface veer uses. For the
 * small maps a config holds by the hundred thousand (a pod's labels, a selector): one
 * allocation and 64 bytes an entry of two strings, where a std::map node costs a heap block
 * of about 100 bytes each and 48 for the map itself. Lookups are binary searches;
 * insertion is linear, which is what a map of a few entries wants.
 */
template <class K, class V> class FlatMap {
public:
  using key_type = K;
  using mapped_type = V;
  using value_type = std::pair<K, V>;
  using const_iterator = const value_type*;
  using iterator = value_type*;

  FlatMap() = default;
  FlatMap(std::initializer_list<value_type> init) {
    for (const value_type& v : init) {
      insert(v);
    }
  }

  const_iterator begin() const { return v_.begin(); }
  const_iterator end() const { return v_.end(); }
  iterator begin() { return v_.begin(); }
  iterator end() { return v_.end(); }
  size_t size() const { return v_.size(); }
  bool empty() const { return v_.empty(); }

  template <class Q> const_iterator find(const Q& key) const {
    auto it = lower(key);
    return it != v_.end() && !(key < it->first) ? it : v_.end();
  }
  template <class Q> iterator find(const Q& key) {
    auto it = lower(key);
    return it != v_.end() && !(key < it->first) ? it : v_.end();
  }
  template <class Q> size_t count(const Q& key) const { return find(key) != end() ? 1 : 0; }
  const V& at(const K& key) const {
    auto it = find(key);
    if (it == end()) {
      throw std::out_of_range("FlatMap::at");
    }
    return it->second;
  }
  V& operator[](const K& key) {
    auto it = lower(key);
    if (it == v_.end() || key < it->first) {
      it = v_.emplace(it, key, V());
    }
    return it->second;
  }
  /** Inserts v unless its key is there; as std::map::insert. */
  std::pair<iterator, bool> insert(value_type v) {
    auto it = lower(v.first);
    if (it != v_.end() && !(v.first < it->first)) {
      return {it, false};
    }
    return {v_.emplace(it, std::move(v)), true};
  }
  template <class... Args> std::pair<iterator, bool> emplace(Args&&... args) {
    return insert(value_type(std::forward<Args>(args)...));
  }

  friend bool operator==(const FlatMap& a, const FlatMap& b) { return a.v_ == b.v_; }

private:
  template <class Q> const_iterator lower(const Q& key) const {
    return std::lower_bound(v_.begin(), v_.end(), key,
                            [](const value_type& e, const Q& k) { return e.first < k; });
  }
  template <class Q> iterator lower(const Q& key) {
    return std::lower_bound(v_.begin(), v_.end(), key,
                            [](const value_type& e, const Q& k) { return e.first < k; });
  }

  ThinVector<value_type> v_; // sorted by key, each key once
};

} // namespace veer
