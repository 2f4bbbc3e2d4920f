#include "datapath/datapath.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <iterator>

#include "common/files.h"
#include "datapath/mounts.h"
#include "veer_sock.skel.h"

namespace veer {
namespace {

namespace fs = std::filesystem;

/** libbpf returns -errno or NULL with errno set; normalise to a positive errno. */
int libbpfErr(long ret) {
  return ret < 0 ? static_cast<int>(-ret) : (errno ? errno : EINVAL);
}

/** The cgroup a pinned cgroup link is attached to (0 if detached). */
Result<uint64_t> linkCgroupId(int linkFd) {
  bpf_link_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(linkFd, &info, &len) != 0) {
    return osError(errno, "read link info");
  }
  return static_cast<uint64_t>(info.cgroup.cgroup_id);
}

/** A BPF object's info by fd; false when the kernel will not say. */
template <class Info> bool infoOf(int fd, Info& info) {
  uint32_t len = sizeof(info);
  return bpf_obj_get_info_by_fd(fd, &info, &len) == 0;
}

/** The program attached through a pinned link (0 if none or unreadable). */
uint32_t linkProgId(bpf_link* link) {
  bpf_link_info info{};
  return infoOf(bpf_link__fd(link), info) ? info.prog_id : 0;
}

/** Name and id of a loaded program, "id N" when it cannot be read. */
std::string progName(uint32_t id, std::string& nameOut) {
  Fd fd(bpf_prog_get_fd_by_id(id));
  bpf_prog_info info{};
  nameOut.clear();
  if (fd && infoOf(fd.get(), info)) {
    nameOut = info.name;
  }
  return (nameOut.empty() ? "(unnamed)" : nameOut) + " (prog id " + std::to_string(id) + ")";
}

} // namespace

Result<uint64_t> ownNetnsCookie() {
#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif
  Fd s(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s) {
    return osError(errno, "socket");
  }
  uint64_t cookie = 0;
  socklen_t len = sizeof(cookie);
  if (getsockopt(s.get(), SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) != 0) {
    return osError(errno, "getsockopt SO_NETNS_COOKIE");
  }
  return cookie;
}

bool kernelHasSockDestroyKfunc() {
  btf* vmlinux = btf__load_vmlinux_btf();
  const bool found =
      vmlinux != nullptr && btf__find_by_name_kind(vmlinux, "bpf_sock_destroy", BTF_KIND_FUNC) > 0;
  btf__free(vmlinux);
  return found;
}

FeatureReport probeKernelFeatures() {
  FeatureReport r;
  auto check = [&r](bool ok, const std::string& what) {
    (ok ? r.found : r.missing).push_back(what);
  };
  check(libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, nullptr) == 1,
        "prog type cgroup_sock_addr");
  check(libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SOCK_OPS, nullptr) == 1, "prog type sock_ops");
  check(libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_CGROUP_SOCKOPT, nullptr) == 1,
        "prog type cgroup_sockopt");
  check(libbpf_probe_bpf_helper(BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_sk_storage_get, nullptr) == 1,
        "helper sk_storage_get in sock_ops");
  check(libbpf_probe_bpf_map_type(BPF_MAP_TYPE_LRU_HASH, nullptr) == 1, "map type lru_hash");
  check(libbpf_probe_bpf_map_type(BPF_MAP_TYPE_PERCPU_HASH, nullptr) == 1, "map type percpu_hash");
  check(libbpf_probe_bpf_map_type(BPF_MAP_TYPE_SK_STORAGE, nullptr) == 1, "map type sk_storage");
  check(libbpf_probe_bpf_helper(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_FUNC_sk_storage_get, nullptr) ==
            1,
        "helper sk_storage_get in cgroup_sock_addr");
  check(libbpf_probe_bpf_helper(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_FUNC_get_netns_cookie,
                                nullptr) == 1,
        "helper get_netns_cookie in cgroup_sock_addr");
  check(libbpf_probe_bpf_helper(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_FUNC_get_socket_cookie,
                                nullptr) == 1,
        "helper get_socket_cookie in cgroup_sock_addr");
  check(libbpf_probe_bpf_helper(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_FUNC_map_update_elem,
                                nullptr) == 1,
        "helper map_update_elem in cgroup_sock_addr");
  // Affinity pins (idle timeout) and lanes (the client's cgroup and its ancestors).
  check(libbpf_probe_bpf_helper(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_FUNC_ktime_get_coarse_ns,
                                nullptr) == 1,
        "helper ktime_get_coarse_ns in cgroup_sock_addr");
  check(libbpf_probe_bpf_helper(BPF_PROG_TYPE_CGROUP_SOCK_ADDR,
                                BPF_FUNC_get_current_ancestor_cgroup_id, nullptr) == 1,
        "helper get_current_ancestor_cgroup_id in cgroup_sock_addr");
  // veer-proxy's liveness, seen by the connect hook itself: its listener in a sockmap
  // (Linux >= 5.7), looked up from BPF (>= 5.8) and released.
  check(libbpf_probe_bpf_map_type(BPF_MAP_TYPE_SOCKMAP, nullptr) == 1, "map type sockmap");
  check(libbpf_probe_bpf_helper(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_FUNC_sk_release, nullptr) == 1,
        "helper sk_release in cgroup_sock_addr");
  check(access("/sys/kernel/btf/vmlinux", R_OK) == 0, "kernel BTF (/sys/kernel/btf/vmlinux)");
  // Optional: socket recycling by iterator needs the bpf_sock_destroy kfunc (Linux >= 6.5);
  // without it the agent tries netlink SOCK_DESTROY (Recycler::load says which works).
  (kernelHasSockDestroyKfunc() ? r.found : r.optionalMissing)
      .push_back("kfunc bpf_sock_destroy (socket recycling by iterator)");
  const bool accel =
      libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SK_MSG, nullptr) == 1 &&
      libbpf_probe_bpf_map_type(BPF_MAP_TYPE_SOCKHASH, nullptr) == 1 &&
      libbpf_probe_bpf_helper(BPF_PROG_TYPE_SK_MSG, BPF_FUNC_msg_redirect_hash, nullptr) == 1 &&
      libbpf_probe_bpf_helper(BPF_PROG_TYPE_SK_MSG, BPF_FUNC_sk_storage_get, nullptr) == 1;
  (accel ? r.found : r.optionalMissing).push_back(kSocketAccelerationFeature);
  return r;
}

Datapath::~Datapath() {
  for (bpf_link* l : links_) {
    bpf_link__disconnect(l); // the pin keeps it attached
    bpf_link__destroy(l);
  }
  veer_sock_bpf__destroy(skel_);
}

Result<std::unique_ptr<Datapath>> Datapath::load(const std::string& bpffs, bool accelerate) {
  if (Status s = ensureBpffs(bpffs); !s) {
    return s.error();
  }
  // Whoever can rename or replace a pin can make a restarted agent miss its links and
  // attach a second program set beside the first: the tree is root's, 0700, or refused.
  for (const std::string& dir : {veerPinDir(bpffs), mapPinDir(bpffs), linkPinDir(bpffs)}) {
    if (Status s = ensurePrivateDir(dir); !s) {
      return Error{s.error().code, "pin directory: " + s.error().message};
    }
  }
  std::unique_ptr<Datapath> dp(new Datapath());
  dp->bpffs_ = bpffs;
  const std::string pinRoot = mapPinDir(bpffs);
  LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pinRoot.c_str());
  dp->skel_ = veer_sock_bpf__open_opts(&opts);
  if (!dp->skel_) {
    return osError(libbpfErr(0), "open BPF object veer_sock");
  }
  Result<uint64_t> hostNetns = ownNetnsCookie();
  if (!hostNetns) {
    return hostNetns.error();
  }
  dp->skel_->rodata->veer_host_netns_cookie = *hostNetns;
  dp->skel_->rodata->veer_accel_on = accelerate ? 1 : 0;
  // Off: not even loaded, so the rest runs on a kernel without it.
  bpf_program__set_autoload(dp->skel_->progs.veer_sk_msg, accelerate);
  if (int err = veer_sock_bpf__load(dp->skel_); err) {
    return osError(libbpfErr(err),
                   "load BPF object veer_sock (see the libbpf log above; pinned maps of another "
                   "layout in " +
                       pinRoot + " are removed by `veer-agent --uninstall`)");
  }
  std::vector<int> fds;
  for (const char* name : kMapNames) {
    bpf_map* m = bpf_object__find_map_by_name(dp->skel_->obj, name);
    if (!m) {
      return Error{ENOENT, std::string("map ") + name + " missing from veer_sock"};
    }
    fds.push_back(bpf_map__fd(m));
  }
  dp->maps_ = PinnedMaps::fromFds(std::move(fds));
  if (accelerate) {
    // Before any cgroup hook adds a socket: a socket takes the map's verdict program
    // when it joins. Replaces the program of an earlier agent on the pinned map.
    if (bpf_prog_attach(bpf_program__fd(dp->skel_->progs.veer_sk_msg),
                        bpf_map__fd(dp->skel_->maps.veer_sockets), BPF_SK_MSG_VERDICT, 0) != 0) {
      return osError(errno, "attach veer_sk_msg to map veer_sockets");
    }
  }
  return dp;
}

Status Datapath::attach(const std::string& cgroupPath) {
  return attachWhere(cgroupPath, /*proxyCgroup=*/false);
}

Status Datapath::attachProxy(const std::string& cgroupPath) {
  return attachWhere(cgroupPath, /*proxyCgroup=*/true);
}

Status Datapath::attachWhere(const std::string& cgroupPath, bool proxyCgroup) {
  Fd cg(open(cgroupPath.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cg) {
    return osError(errno, "open cgroup " + cgroupPath);
  }
  struct stat st {};
  if (fstat(cg.get(), &st) != 0) {
    return osError(errno, "stat cgroup " + cgroupPath);
  }
  const uint64_t cgroupId = st.st_ino; // cgroup v2 id == inode of its directory

  // SO_ORIGINAL_DST is answered in the proxy's cgroup only; everything else runs where the
  // clients are, but for veer_sk_msg, which load() put on its map.
  auto here = [proxyCgroup](bpf_program* prog) {
    return bpf_program__expected_attach_type(prog) != BPF_SK_MSG_VERDICT &&
           (bpf_program__expected_attach_type(prog) == BPF_CGROUP_GETSOCKOPT) == proxyCgroup;
  };
  if (Status s = checkHooks(cg.get(), cgroupPath, here); !s) {
    return s;
  }
  bpf_program* prog;
  bpf_object__for_each_program(prog, skel_->obj) {
    if (!here(prog)) {
      continue;
    }
    const std::string pin = linkPinDir(bpffs_) + "/" + bpf_program__name(prog);
    bpf_link* old = access(pin.c_str(), F_OK) == 0 ? bpf_link__open(pin.c_str()) : nullptr;
    if (old) {
      Result<uint64_t> id = linkCgroupId(bpf_link__fd(old));
      if (id && *id == cgroupId) {
        // Same cgroup: swap the program in place, no window without a program.
        int err = bpf_link__update_program(old, prog);
        if (err) {
          bpf_link__destroy(old);
          return osError(libbpfErr(err), "replace program in link " + pin);
        }
        links_.push_back(old);
        continue;
      }
      bpf_link__detach(old);
      bpf_link__unpin(old);
      bpf_link__destroy(old);
      unlink(pin.c_str()); // bpf_link__open does not record the pin path
    }
    bpf_link* link = bpf_program__attach_cgroup(prog, cg.get());
    if (!link) {
      return osError(libbpfErr(0),
                     std::string("attach ") + bpf_program__name(prog) + " to " + cgroupPath);
    }
    links_.push_back(link);
    if (int err = bpf_link__pin(link, pin.c_str()); err) {
      return osError(libbpfErr(err), "pin link " + pin);
    }
  }
  return {};
}

Status Datapath::checkHooks(int cgroupFd, const std::string& cgroupPath,
                            const std::function<bool(bpf_program*)>& ours) {
  bpf_program* prog;
  bpf_object__for_each_program(prog, skel_->obj) {
    if (!ours(prog)) {
      continue;
    }
    // The program veer serves this hook with now: the one in its pinned link, if any.
    const std::string pin = linkPinDir(bpffs_) + "/" + bpf_program__name(prog);
    uint32_t current = 0;
    if (access(pin.c_str(), F_OK) == 0) {
      if (bpf_link* old = bpf_link__open(pin.c_str())) {
        current = linkProgId(old);
        bpf_link__destroy(old);
      }
    }
    const bpf_attach_type type = bpf_program__expected_attach_type(prog);
    uint32_t ids[64];
    uint32_t count = std::size(ids);
    uint32_t flags = 0;
    if (bpf_prog_query(cgroupFd, type, 0, &flags, ids, &count) != 0) {
      return osError(errno, "query programs on " + cgroupPath);
    }
    for (uint32_t i = 0; i < std::min<uint32_t>(count, std::size(ids)); ++i) {
      if (ids[i] == current) {
        continue;
      }
      std::string name;
      const std::string what = progName(ids[i], name);
      const std::string hook = std::string(libbpf_bpf_attach_type_str(type)) + " of " + cgroupPath;
      // The kernel keeps the first 15 bytes of a name (veer_getpeernam).
      if (name == std::string(bpf_program__name(prog)).substr(0, BPF_OBJ_NAME_LEN - 1)) {
        return Error{EEXIST,
                     "another veer program set serves " + hook + ": " + what +
                         " is attached but not through the links pinned in " + linkPinDir(bpffs_) +
                         " (were pins moved, or does another agent run with other pins?); "
                         "refusing to attach a second set: detach it (bpftool cgroup tree) or "
                         "run veer-agent --uninstall with that agent's --bpffs"};
      }
      foreign_.push_back(what + " on " + hook);
    }
  }
  return {};
}

Status Datapath::uninstall(const std::string& bpffs) {
  std::error_code ec;
  const std::string links = linkPinDir(bpffs);
  if (fs::is_directory(links, ec)) {
    for (const auto& e : fs::directory_iterator(links, ec)) {
      int fd = bpf_obj_get(e.path().c_str());
      if (fd >= 0) {
        bpf_link_detach(fd);
        close(fd);
      }
    }
  }
  fs::remove_all(veerPinDir(bpffs), ec);
  if (ec) {
    return osError(ec.value(), "remove " + veerPinDir(bpffs));
  }
  return {};
}

} // namespace veer
