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
template <class T>
class Boxed {
public:
  Boxed() = default;
  Boxed(std::nullopt_t) {} // NOLINT: as std::optional
  Boxed(const T& v) : p_(std::make_unique<T>(v)) {} // NOLINT: as std::optional
  Boxed(T&& v) : p_(std::make_unique<T>(std::move(v))) {} // NOLINT: as std::optional
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
  template <class... Args>
  T& emplace(Args&&... args) {
    p_ = std::make_unique<T>(std::forward<Args>(args)...);
    return *p_;
  }

  T& operator*() { return *p_; }
  const T& operator*() const { return *p_; }
  T* operator->() { return p_.get(); }
  const T* operator->() const { return p_.get(); }

private:
  std::unique_ptr<T> p_;
};

} // namespace veer
