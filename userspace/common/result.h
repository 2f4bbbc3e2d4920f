#pragma once

#include <string>
#include <utility>
#include <variant>

namespace veer {

/** An error from OS or loader code: errno (0 if none applies) and a message with context. */
struct Error {
  int code = 0;
  std::string message;
};

/** Expected-style result: a value or an Error. No exceptions on the data path. */
template <class T> class [[nodiscard]] Result {
public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error error) : v_(std::move(error)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }
  const Error& error() const { return std::get<1>(v_); }

private:
  std::variant<T, Error> v_;
};

/** Result of an operation without a value. */
template <> class [[nodiscard]] Result<void> {
public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

private:
  Error error_;
  bool ok_ = true;
};

using Status = Result<void>;

/** Error carrying errno, formatted as "<context>: <strerror(err)>". */
Error osError(int err, const std::string& context);

} // namespace veer
