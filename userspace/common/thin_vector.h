#pragma once

#include <algorithm>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <new>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

namespace veer {

/**
 * A vector in one pointer: 8 bytes, where std::vector is 24, for the small lists a config
 * holds by the hundred thousand (a match's headers, a rule's destinations, a pod's IPs),
 * most of them empty or of one or two entries. Size and capacity live in the heap block
 * before the elements; an empty ThinVector allocates nothing. Offers the part of
 * std::vector's interface veer uses; iterators are pointers.
 */
template <class T> class ThinVector {
  static_assert(alignof(T) <= alignof(uint64_t), "elements follow an 8-byte header");

public:
  using value_type = T;
  using size_type = size_t;
  using iterator = T*;
  using const_iterator = const T*;
  using reference = T&;
  using const_reference = const T&;

  ThinVector() = default;
  ThinVector(std::initializer_list<T> init) { assign(init.begin(), init.end()); }
  template <class It> ThinVector(It first, It last) { assign(first, last); }
  ThinVector(const std::vector<T>& v) { assign(v.begin(), v.end()); } // NOLINT: as a copy
  ThinVector(const ThinVector& o) { assign(o.begin(), o.end()); }
  ThinVector(ThinVector&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  ThinVector& operator=(const ThinVector& o) {
    if (this != &o) {
      ThinVector copy(o);
      swap(copy);
    }
    return *this;
  }
  ThinVector& operator=(ThinVector&& o) noexcept {
    ThinVector(std::move(o)).swap(*this);
    return *this;
  }
  ~ThinVector() { release(); }
  void swap(ThinVector& o) noexcept { std::swap(h_, o.h_); }

  size_t size() const { return h_ != nullptr ? h_->size : 0; }
  size_t capacity() const { return h_ != nullptr ? h_->cap : 0; }
  bool empty() const { return size() == 0; }
  T* data() { return h_ != nullptr ? elems(h_) : nullptr; }
  const T* data() const { return h_ != nullptr ? elems(h_) : nullptr; }
  T* begin() { return data(); }
  T* end() { return data() + size(); }
  const T* begin() const { return data(); }
  const T* end() const { return data() + size(); }
  T& operator[](size_t i) { return data()[i]; }
  const T& operator[](size_t i) const { return data()[i]; }
  T& at(size_t i) {
    if (i >= size()) {
      throw std::out_of_range("ThinVector::at");
    }
    return data()[i];
  }
  const T& at(size_t i) const { return const_cast<ThinVector*>(this)->at(i); }
  T& front() { return data()[0]; }
  const T& front() const { return data()[0]; }
  T& back() { return data()[size() - 1]; }
  const T& back() const { return data()[size() - 1]; }

  void reserve(size_t n) {
    if (n > capacity()) {
      grow(n);
    }
  }
  void push_back(const T& v) { emplace_back(v); }
  void push_back(T&& v) { emplace_back(std::move(v)); }
  template <class... Args> T& emplace_back(Args&&... args) {
    if (size() == capacity()) {
      T tmp(std::forward<Args>(args)...); // args may point into this vector
      grow(std::max<size_t>(1, capacity() * 2));
      new (end_()) T(std::move(tmp));
    } else {
      new (end_()) T(std::forward<Args>(args)...);
    }
    ++h_->size;
    return back();
  }
  void pop_back() {
    back().~T();
    --h_->size;
  }
  /** Inserts [first, last) before pos. */
  template <class It> T* insert(const T* pos, It first, It last) {
    const size_t at = static_cast<size_t>(pos - data());
    std::vector<T> tail(std::make_move_iterator(begin() + at), std::make_move_iterator(end()));
    while (size() > at) {
      pop_back();
    }
    for (; first != last; ++first) {
      emplace_back(*first);
    }
    for (T& t : tail) {
      emplace_back(std::move(t));
    }
    return data() + at;
  }
  T* insert(const T* pos, T v) {
    T* one = &v;
    return insert(pos, std::make_move_iterator(one), std::make_move_iterator(one + 1));
  }
  template <class... Args> T* emplace(const T* pos, Args&&... args) {
    return insert(pos, T(std::forward<Args>(args)...));
  }
  T* erase(const T* first, const T* last) {
    T* f = data() + (first - data());
    T* l = data() + (last - data());
    T* e = std::move(l, end(), f);
    while (end() != e) {
      pop_back();
    }
    return f;
  }
  T* erase(const T* pos) { return erase(pos, pos + 1); }
  void clear() {
    while (!empty()) {
      pop_back();
    }
  }
  void shrink_to_fit() {
    if (empty()) {
      release();
    } else if (size() < capacity()) {
      grow(size());
    }
  }
  template <class It> void assign(It first, It last) {
    clear();
    if constexpr (std::is_base_of_v<std::forward_iterator_tag,
                                    typename std::iterator_traits<It>::iterator_category>) {
      reserve(static_cast<size_t>(std::distance(first, last)));
    }
    for (; first != last; ++first) {
      emplace_back(*first);
    }
  }

  friend bool operator==(const ThinVector& a, const ThinVector& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  }
  friend bool operator==(const ThinVector& a, const std::vector<T>& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  }
  friend auto operator<=>(const ThinVector& a, const ThinVector& b) {
    return std::lexicographical_compare_three_way(a.begin(), a.end(), b.begin(), b.end());
  }

private:
  struct Header {
    uint32_t size;
    uint32_t cap;
  };
  static T* elems(Header* h) { return reinterpret_cast<T*>(h + 1); }
  static const T* elems(const Header* h) { return reinterpret_cast<const T*>(h + 1); }
  T* end_() { return elems(h_) + h_->size; }

  void grow(size_t cap) {
    auto* h = static_cast<Header*>(::operator new(sizeof(Header) + cap * sizeof(T)));
    h->size = 0;
    h->cap = static_cast<uint32_t>(cap);
    if (h_ != nullptr) {
      T* from = elems(h_);
      for (uint32_t i = 0; i < h_->size; ++i) {
        new (elems(h) + i) T(std::move(from[i]));
        from[i].~T();
      }
      h->size = h_->size;
      ::operator delete(h_);
    }
    h_ = h;
  }
  void release() {
    if (h_ != nullptr) {
      clear();
      ::operator delete(h_);
      h_ = nullptr;
    }
  }

  Header* h_ = nullptr;
};

} // namespace veer
