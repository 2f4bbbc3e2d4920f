#include "datapath/mounts.h"

#include <linux/magic.h>
#include <mntent.h>
#include <sys/mount.h>
#include <sys/statfs.h>

#include <cerrno>
#include <filesystem>
#include <memory>

namespace veer {
namespace {

Status ensureMount(const std::string& path, const char* type, long magic) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) {
    return osError(ec.value(), "mkdir " + path);
  }
  struct statfs st {};
  if (statfs(path.c_str(), &st) != 0) {
    return osError(errno, "statfs " + path);
  }
  if (st.f_type == magic) {
    return {};
  }
  if (mount(type, path.c_str(), type, 0, nullptr) != 0) {
    return osError(errno, std::string("mount -t ") + type + " " + path);
  }
  return {};
}

} // namespace

Status ensureBpffs(const std::string& path) {
  return ensureMount(path, "bpf", BPF_FS_MAGIC);
}

Result<std::string> findOrMountCgroup2() {
  std::unique_ptr<FILE, int (*)(FILE*)> f(setmntent("/proc/mounts", "r"), endmntent);
  if (!f) {
    return osError(errno, "open /proc/mounts");
  }
  while (mntent* m = getmntent(f.get())) {
    if (std::string(m->mnt_type) == "cgroup2") {
      return std::string(m->mnt_dir);
    }
  }
  const std::string path = "/run/veer/cgroup2";
  if (Status s = ensureMount(path, "cgroup2", CGROUP2_SUPER_MAGIC); !s) {
    return s.error();
  }
  return path;
}

} // namespace veer
