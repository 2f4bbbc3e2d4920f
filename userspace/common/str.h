#pragma once

#include <atomic>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <string_view>
#include <utility>

namespace veer {

namespace detail {
/** A Str's text, NUL-terminated, after its reference count (str.cpp's table owns them). */
struct StrRep {
  std::atomic<uint32_t> refs;
  uint32_t size;
  size_t hash;
  char text[1]; // size + 1 bytes, allocated with the rep
  std::string_view view() const { return {text, size}; }
};
} // namespace detail

/**
 * An immutable, interned string: 8 bytes, and every Str of one text shares one copy, freed
 * with the last Str that holds it. For the names a config repeats by the hundred thousand
 * (namespaces, hosts, label keys and values, subsets, field paths): a std::string costs 32
 * bytes plus a heap block past 15 characters in every copy. Making a Str looks the text up
 * in a process-wide table (a hash and a lock); copying one is an atomic increment;
 * comparing two for equality compares pointers. Any thread may make, copy and drop Strs.
 * Reads as a std::string_view; converts to a std::string where one is wanted (a copy, so a
 * hot path takes view() instead).
 */
class Str {
public:
  Str() = default;
  Str(std::string_view s);                                // NOLINT: implicit, a text is a Str
  Str(const char* s) : Str(std::string_view(s)) {}        // NOLINT
  Str(const std::string& s) : Str(std::string_view(s)) {} // NOLINT
  Str(const Str& o) noexcept : r_(o.r_) {
    if (r_ != nullptr) {
      r_->refs.fetch_add(1, std::memory_order_relaxed);
    }
  }
  Str(Str&& o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
  Str& operator=(const Str& o) noexcept {
    Str(o).swap(*this);
    return *this;
  }
  Str& operator=(Str&& o) noexcept {
    Str(std::move(o)).swap(*this);
    return *this;
  }
  ~Str() {
    if (r_ != nullptr && r_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      release(r_);
    }
  }
  void swap(Str& o) noexcept { std::swap(r_, o.r_); }

  std::string_view view() const { return r_ != nullptr ? r_->view() : std::string_view(); }
  operator std::string_view() const { return view(); } // NOLINT: reads as the text
  /** A copy of the text. */
  std::string str() const { return std::string(view()); }
  operator std::string() const { return str(); } // NOLINT: where a std::string is wanted
  const char* c_str() const { return r_ != nullptr ? r_->text : ""; }
  const char* data() const { return c_str(); }
  size_t size() const { return r_ != nullptr ? r_->size : 0; }
  size_t length() const { return size(); }
  bool empty() const { return r_ == nullptr; }
  char operator[](size_t i) const { return c_str()[i]; }
  const char* begin() const { return c_str(); }
  const char* end() const { return c_str() + size(); }
  size_t find(std::string_view s, size_t pos = 0) const { return view().find(s, pos); }
  size_t find(char c, size_t pos = 0) const { return view().find(c, pos); }
  size_t rfind(char c, size_t pos = std::string::npos) const { return view().rfind(c, pos); }
  std::string substr(size_t pos, size_t n = std::string::npos) const {
    return std::string(view().substr(pos, n));
  }
  bool starts_with(std::string_view s) const { return view().starts_with(s); }
  bool ends_with(std::string_view s) const { return view().ends_with(s); }
  int compare(std::string_view s) const { return view().compare(s); }
  /** The text's hash, computed once when it was interned. */
  size_t hash() const { return r_ != nullptr ? r_->hash : std::hash<std::string_view>{}({}); }

  /** Texts interned now (for tests and memory accounting). */
  static size_t liveCount();

  // Interned: one text, one Rep, so equal Strs hold the same pointer.
  friend bool operator==(const Str& a, const Str& b) { return a.r_ == b.r_; }
  friend bool operator==(const Str& a, std::string_view b) { return a.view() == b; }
  friend bool operator==(const Str& a, const std::string& b) { return a.view() == b; }
  friend bool operator==(const Str& a, const char* b) { return a.view() == b; }
  friend std::strong_ordering operator<=>(const Str& a, const Str& b) {
    return a.r_ == b.r_ ? std::strong_ordering::equal : a.view() <=> b.view();
  }
  friend std::strong_ordering operator<=>(const Str& a, std::string_view b) {
    return a.view() <=> b;
  }
  friend std::strong_ordering operator<=>(const Str& a, const std::string& b) {
    return a.view() <=> std::string_view(b);
  }
  friend std::strong_ordering operator<=>(const Str& a, const char* b) {
    return a.view() <=> std::string_view(b);
  }

private:
  using Rep = detail::StrRep;
  static void release(Rep* r);

  Rep* r_ = nullptr; // null: ""
};

inline std::string operator+(const Str& a, const char* b) {
  return a.str() + b;
}
inline std::string operator+(const Str& a, const std::string& b) {
  return a.str() + b;
}
inline std::string operator+(const Str& a, std::string_view b) {
  return a.str().append(b);
}
inline std::string operator+(const Str& a, const Str& b) {
  return a.str().append(b.view());
}
inline std::string operator+(const Str& a, char b) {
  return a.str() + b;
}
inline std::string operator+(const char* a, const Str& b) {
  return std::string(a).append(b.view());
}
inline std::string operator+(const std::string& a, const Str& b) {
  return std::string(a).append(b.view());
}
inline std::string operator+(std::string&& a, const Str& b) {
  return std::move(a.append(b.view()));
}
inline std::string operator+(char a, const Str& b) {
  return std::string(1, a).append(b.view());
}

std::ostream& operator<<(std::ostream& os, const Str& s);

} // namespace veer

template <> struct std::hash<veer::Str> {
  size_t operator()(const veer::Str& s) const noexcept { return s.hash(); }
};
