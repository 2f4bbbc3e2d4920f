#pragma once

#include <compare>
#include <cstddef>
#include <initializer_list>
#include <iterator>
#include <type_traits>
#include <memory>
#include <utility>
#include <vector>

namespace veer {

/**
 * A list that grows a chunk of elements at a time and never moves what it holds: the
 * object lists of a Config (30,000 pods at 10,000 services). A std::vector growing by
 * doubling holds the old and the new copy at each step, and up to half its capacity
 * unused after; this holds at most one partly used chunk. Elements stay where they were
 * put, so pointers to them stay valid while the list grows. Offers the part of
 * std::vector's interface veer uses, with random-access iterators.
 */
template <class T, size_t kChunk = 64> class ChunkedList {
  static_assert((kChunk & (kChunk - 1)) == 0, "a power of two: indexing is a shift");

public:
  using value_type = T;
  using size_type = size_t;
  using reference = T&;
  using const_reference = const T&;

  template <bool kConst> class Iter {
  public:
    using iterator_category = std::random_access_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    using pointer = std::conditional_t<kConst, const T*, T*>;
    using reference = std::conditional_t<kConst, const T&, T&>;
    using List = std::conditional_t<kConst, const ChunkedList, ChunkedList>;

    Iter() = default;
    Iter(List* l, size_t i) : l_(l), i_(i) {}
    operator Iter<true>() const { return Iter<true>(l_, i_); } // NOLINT: iterator -> const

    reference operator*() const { return (*l_)[i_]; }
    pointer operator->() const { return &(*l_)[i_]; }
    reference operator[](difference_type n) const { return (*l_)[i_ + n]; }
    Iter& operator++() {
      ++i_;
      return *this;
    }
    Iter operator++(int) { return Iter(l_, i_++); }
    Iter& operator--() {
      --i_;
      return *this;
    }
    Iter operator--(int) { return Iter(l_, i_--); }
    Iter& operator+=(difference_type n) {
      i_ += n;
      return *this;
    }
    Iter& operator-=(difference_type n) {
      i_ -= n;
      return *this;
    }
    friend Iter operator+(Iter a, difference_type n) { return a += n; }
    friend Iter operator+(difference_type n, Iter a) { return a += n; }
    friend Iter operator-(Iter a, difference_type n) { return a -= n; }
    friend difference_type operator-(const Iter& a, const Iter& b) {
      return static_cast<difference_type>(a.i_) - static_cast<difference_type>(b.i_);
    }
    friend bool operator==(const Iter& a, const Iter& b) { return a.i_ == b.i_; }
    friend auto operator<=>(const Iter& a, const Iter& b) { return a.i_ <=> b.i_; }

  private:
    List* l_ = nullptr;
    size_t i_ = 0;
  };
  using iterator = Iter<false>;
  using const_iterator = Iter<true>;

  ChunkedList() = default;
  ChunkedList(std::initializer_list<T> init) {
    for (const T& v : init) {
      push_back(v);
    }
  }
  ChunkedList(const ChunkedList& o) {
    for (const T& v : o) {
      push_back(v);
    }
  }
  ChunkedList(ChunkedList&&) noexcept = default;
  ChunkedList& operator=(const ChunkedList& o) {
    if (this != &o) {
      ChunkedList copy(o);
      *this = std::move(copy);
    }
    return *this;
  }
  ChunkedList& operator=(ChunkedList&&) noexcept = default;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T& operator[](size_t i) { return chunks_[i / kChunk][i % kChunk]; }
  const T& operator[](size_t i) const { return chunks_[i / kChunk][i % kChunk]; }
  T& front() { return (*this)[0]; }
  const T& front() const { return (*this)[0]; }
  T& back() { return (*this)[size_ - 1]; }
  const T& back() const { return (*this)[size_ - 1]; }

  iterator begin() { return iterator(this, 0); }
  iterator end() { return iterator(this, size_); }
  const_iterator begin() const { return const_iterator(this, 0); }
  const_iterator end() const { return const_iterator(this, size_); }

  void push_back(const T& v) { emplace_back(v); }
  void push_back(T&& v) { emplace_back(std::move(v)); }
  template <class... Args> T& emplace_back(Args&&... args) {
    if (size_ % kChunk == 0) {
      chunks_.emplace_back().reserve(kChunk); // never grows past this: elements stay put
    } else if (chunks_.back().capacity() < kChunk) {
      chunks_.back().reserve(kChunk); // trimmed by shrink_to_fit: its elements move, once
    }
    ++size_;
    return chunks_.back().emplace_back(std::forward<Args>(args)...);
  }
  template <class It> void append(It first, It last) {
    for (; first != last; ++first) {
      emplace_back(*first);
    }
  }
  void clear() {
    chunks_.clear();
    size_ = 0;
  }
  /** Frees the unused part of the last chunk. Like std::vector's, it moves elements: those
   * of the last chunk (and again if the list grows after). */
  void shrink_to_fit() {
    if (!chunks_.empty() && chunks_.back().size() < kChunk) {
      chunks_.back().shrink_to_fit();
    }
    chunks_.shrink_to_fit();
  }

private:
  std::vector<std::vector<T>> chunks_; // each reserved to kChunk; all full but the last
  size_t size_ = 0;
};

} // namespace veer
