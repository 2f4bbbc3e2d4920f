#include "common/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace veer {
namespace {

std::string octal(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04o", static_cast<unsigned>(mode));
  return buf;
}

} // namespace

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) {
      close(fd_);
    }
    fd_ = o.release();
  }
  return *this;
}

Fd::~Fd() {
  if (fd_ >= 0) {
    close(fd_);
  }
}

int Fd::release() {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

Result<std::string> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return osError(errno, "open " + path);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) {
    return osError(errno, "read " + path);
  }
  return ss.str();
}

Status writeFileAtomically(const std::string& path, const std::string& data, mode_t mode) {
  const std::string tmp = path + ".tmp";
  unlink(tmp.c_str()); // a leftover of a crash may have another owner or mode
  Fd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode));
  if (!fd) {
    return osError(errno, "create " + tmp);
  }
  if (fchmod(fd.get(), mode) != 0) {
    return osError(errno, "chmod " + tmp);
  }
  for (size_t done = 0; done < data.size();) {
    const ssize_t n = write(fd.get(), data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      const int err = errno;
      unlink(tmp.c_str());
      return osError(err, "write " + tmp);
    }
    done += static_cast<size_t>(n);
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    return osError(err, "rename " + tmp + " to " + path);
  }
  return {};
}

Status ensurePrivateDir(const std::string& path) {
  std::error_code ec;
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      return osError(ec.value(), "mkdir " + parent.string());
    }
  }
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return osError(errno, "mkdir " + path);
  }
  // O_NOFOLLOW|O_DIRECTORY: the checks below are about this directory, not a link's target.
  Fd fd(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    return osError(errno, "open directory " + path + " (a symlink is refused)");
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) {
    return osError(errno, "stat " + path);
  }
  if (st.st_uid != geteuid()) {
    return Error{EPERM, path + " is owned by uid " + std::to_string(st.st_uid) + ", not uid " +
                            std::to_string(geteuid()) + " (mode " + octal(st.st_mode & 07777) +
                            "): refused; whoever owns it can swap what is inside (remove it)"};
  }
  if ((st.st_mode & 07777) != 0700 && fchmod(fd.get(), 0700) != 0) {
    return osError(errno, "chmod 0700 " + path);
  }
  // Its parent decides who may rename it away and put another in its place.
  const std::string up = parent.empty() ? "." : parent.string();
  struct stat pst {};
  if (stat(up.c_str(), &pst) != 0) {
    return osError(errno, "stat " + up);
  }
  const bool othersWrite = (pst.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (pst.st_mode & S_ISVTX) == 0;
  if ((pst.st_uid != 0 && pst.st_uid != geteuid()) || othersWrite) {
    return Error{EPERM, path + ": its parent " + up + " (uid " + std::to_string(pst.st_uid) +
                            ", mode " + octal(pst.st_mode & 07777) +
                            ") lets another user replace it: refused"};
  }
  return {};
}

} // namespace veer
