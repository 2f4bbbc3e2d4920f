#pragma once

#include <memory>
#include <optional>
#include <utility>

namespace veer {

/**
 * An optional T kept on the heap, with value semantics (a copy copies the T). For large,
 * rarely set members, where std::optional would spend sizeof(T) in every object: a
 * config of 10,000 services holds 40,000 routes, and almost none has a mirror. Offers the
 * part of std::optional's interface veer uses.
 */
template <class T> class Boxed {
public:
  Boxed() = default;
  Boxed(std::nullopt_t) {}                                // NOLINT: as std::optional
  Boxed(const T& v) : p_(std::make_unique<T>(v)) {}       // NOLINT: as std::optional
  Boxed(T&& v) : p_(std::make_unique<T>(std::move(v))) {} // NOLINT: as std::optional
  Boxed(std::optional<T> v) // NOLINT: from the optional a reader returns
      : p_(v ? std::make_unique<T>(std::move(*v)) : nullptr) {}
  Boxed(const Boxed& o) : p_(o.p_ ? std::make_unique<T>(*o.p_) : nullptr) {}
  Boxed(Boxed&&) noexcept = default;
  Boxed& operator=(const Boxed& o) {
    if (this != &o) {
      p_ = o.p_ ? std::make_unique<T>(*o.p_) : nullptr;
    }
    return *this;
  }
  Boxed& operator=(Boxed&&) noexcept = default;
  Boxed& operator=(std::nullopt_t) {
    p_.reset();
    return *this;
  }

  explicit operator bool() const { return p_ != nullptr; }
  bool has_value() const { return p_ != nullptr; }
  void reset() { p_.reset(); }
  template <class... Args> T& emplace(Args&&... args) {
    p_ = std::make_unique<T>(std::forward<Args>(args)...);
    return *p_;
  }

  T& operator*() { return *p_; }
  const T& operator*() const { return *p_; }
  T* operator->() { return p_.get(); }
  const T* operator->() const { return p_.get(); }

  friend bool operator==(const Boxed& a, const Boxed& b) {
    return a.p_ && b.p_ ? *a.p_ == *b.p_ : a.p_ == b.p_;
  }

private:
  std::unique_ptr<T> p_;
};

/**
 * A T that is almost always its default, kept on the heap only when it is not: reads see
 * the T (a shared default when unset), writes go through mut(). For the large parts of a
 * rule that few rules set (a route's actions, header operations): 8 bytes instead of
 * hundreds in each of 40,000 routes. Assigning a T equal to T{} leaves it unset, so
 * "unset" and "default" are one state.
 */
template <class T> class Sparse {
public:
  Sparse& operator=(T v) {
    if (v == T{}) {
      v_.reset();
    } else {
      v_ = std::move(v);
    }
    return *this;
  }

  const T& operator*() const { return v_ ? *v_ : kDefault; }
  const T* operator->() const { return &**this; }
  /** The T to write to, allocated on first use. */
  T& mut() { return v_ ? *v_ : v_.emplace(); }

  friend bool operator==(const Sparse& a, const Sparse& b) { return *a == *b; }

private:
  static inline const T kDefault{};
  Boxed<T> v_; // unset: the default
};

} // namespace veer
