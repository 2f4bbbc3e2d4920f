#include "datapath/mounts.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <mntent.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/statfs.h>

#include <cerrno>
#include <filesystem>
#include <memory>

#include "datapath/maps.h"

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

Status prepareHostMounts(const std::string& bpffs, const std::string& cgroup2) {
  // Both opened before either is entered: /proc is still this process's view.
  Fd cgroupNs(open("/proc/1/ns/cgroup", O_RDONLY | O_CLOEXEC));
  if (!cgroupNs) {
    return osError(errno, "open /proc/1/ns/cgroup");
  }
  Fd mountNs(open("/proc/1/ns/mnt", O_RDONLY | O_CLOEXEC));
  if (!mountNs) {
    return osError(errno, "open /proc/1/ns/mnt");
  }
  // The cgroup namespace first: a cgroup2 mount shows the tree from the mounter's
  // namespace root, and the agent must attach at the host's root.
  if (setns(cgroupNs.get(), CLONE_NEWCGROUP) != 0) {
    return osError(errno, "setns to PID 1's cgroup namespace");
  }
  if (setns(mountNs.get(), CLONE_NEWNS) != 0) {
    return osError(errno, "setns to PID 1's mount namespace");
  }
  if (Status s = ensureBpffs(bpffs); !s) {
    return s;
  }
  return ensureMount(cgroup2, "cgroup2", CGROUP2_SUPER_MAGIC);
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
