#pragma once

// Files and directories the way veer's processes keep them: owned descriptors, whole
// reads, atomic replacement, and private directories.

#include <sys/types.h>

#include <string>

#include "common/result.h"

namespace veer {

/** An owned file descriptor. */
class Fd {
public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd();
  int get() const { return fd_; }
  int release();
  explicit operator bool() const { return fd_ >= 0; }

private:
  int fd_ = -1;
};

/** The whole content of a file. */
Result<std::string> readFile(const std::string& path);

/**
 * Replaces path with data atomically (a reader sees the old file or the new one, never a
 * mix), the new file created with mode (the umask does not widen or narrow it).
 */
Status writeFileAtomically(const std::string& path, const std::string& data, mode_t mode);

/**
 * Makes path a directory only this process's user may enter: created with mode 0700 (its
 * parents as needed), or, if it exists, a real directory (not a symlink) owned by this
 * user, narrowed to 0700. A directory owned by anyone else is refused: whoever owns it
 * can swap what is inside. So is one whose parent another user could rename it out of
 * (a parent not owned by root or this user, or writable by others without the sticky bit).
 */
Status ensurePrivateDir(const std::string& path);

} // namespace veer
