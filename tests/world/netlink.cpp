#include "netlink.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <netlink/addr.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <thread>

namespace veer::test {
namespace {

/** Owns one libnl object; libnl's own put function frees it. */
template <class T, void (*Put)(T*)> struct NlPtr {
  T* p = nullptr;
  NlPtr() = default;
  explicit NlPtr(T* ptr) : p(ptr) {}
  NlPtr(NlPtr&& other) noexcept : p(other.p) { other.p = nullptr; }
  NlPtr(const NlPtr&) = delete;
  NlPtr& operator=(const NlPtr&) = delete;
  NlPtr& operator=(NlPtr&&) = delete;
  ~NlPtr() {
    if (p != nullptr) {
      Put(p);
    }
  }
  T* get() const { return p; }
  T** out() { return &p; }
};
using LinkPtr = NlPtr<rtnl_link, rtnl_link_put>;
using VethPtr = NlPtr<rtnl_link, rtnl_link_veth_release>; // frees the peer too
using AddrPtr = NlPtr<nl_addr, nl_addr_put>;
using RtAddrPtr = NlPtr<rtnl_addr, rtnl_addr_put>;
using RoutePtr = NlPtr<rtnl_route, rtnl_route_put>;

/** An owned file descriptor of a netns file. */
struct NetnsFd {
  int fd = -1;
  NetnsFd() = default;
  NetnsFd(const NetnsFd&) = delete;
  NetnsFd& operator=(const NetnsFd&) = delete;
  ~NetnsFd() {
    if (fd >= 0) {
      ::close(fd);
    }
  }
};

std::string netnsPath(const std::string& name) {
  return std::string(kNetnsDir) + "/" + name;
}

Status openNetns(const std::string& name, NetnsFd& out) {
  out.fd = ::open(netnsPath(name).c_str(), O_RDONLY | O_CLOEXEC);
  if (out.fd < 0) {
    return osError(errno, "open netns " + netnsPath(name));
  }
  return {};
}

/**
 * Runs fn on a thread of its own and waits for it. Network namespaces belong to
 * threads, so that thread may setns() or unshare() into another one while the
 * caller's stays as it was whatever fn does or fails to do.
 */
Status onOwnThread(const std::function<Status()>& fn) {
  Status result;
  std::thread t([&result, &fn] { result = fn(); });
  t.join();
  return result;
}

/** An errno for a libnl error code, so callers can tell EEXIST from the rest. */
int nlErrno(int err) {
  switch (err < 0 ? -err : err) {
  case NLE_EXIST:
    return EEXIST;
  case NLE_OBJ_NOTFOUND:
  case NLE_NODEV:
    return ENODEV;
  case NLE_PERM:
    return EPERM;
  case NLE_NOADDR:
    return EADDRNOTAVAIL;
  case NLE_INVAL:
    return EINVAL;
  case NLE_BUSY:
    return EBUSY;
  case NLE_NOMEM:
    return ENOMEM;
  default:
    return EIO;
  }
}

/**
 * /run/netns as iproute2 sets it up: a shared mount point, so a namespace named
 * after this process's mount namespace was cloned is still seen (and removed) there.
 */
Status prepareNetnsDir() {
  if (::mkdir(kNetnsDir, 0755) != 0 && errno != EEXIST) {
    return osError(errno, std::string("mkdir ") + kNetnsDir);
  }
  if (::mount("", kNetnsDir, "none", MS_SHARED | MS_REC, nullptr) == 0) {
    return {};
  }
  if (errno != EINVAL) {
    return osError(errno, std::string("make ") + kNetnsDir + " a shared mount");
  }
  // Not a mount point yet: bind it onto itself first.
  if (::mount(kNetnsDir, kNetnsDir, "none", MS_BIND | MS_REC, nullptr) != 0) {
    return osError(errno, std::string("bind mount ") + kNetnsDir);
  }
  if (::mount("", kNetnsDir, "none", MS_SHARED | MS_REC, nullptr) != 0) {
    return osError(errno, std::string("make ") + kNetnsDir + " a shared mount");
  }
  return {};
}

/** Status from a libnl return code. */
Status nlStatus(int err, const std::string& what) {
  if (err >= 0) {
    return {};
  }
  return Error{nlErrno(err), what + ": " + nl_geterror(err)};
}

Result<AddrPtr> parseAddr(const std::string& text, int family) {
  AddrPtr a;
  int err = nl_addr_parse(text.c_str(), family, a.out());
  if (err < 0) {
    return Error{EINVAL, "bad address '" + text + "': " + nl_geterror(err)};
  }
  return a;
}

} // namespace

Status createNetns(const std::string& name) {
  if (auto s = prepareNetnsDir(); !s.ok()) {
    return s;
  }
  const std::string path = netnsPath(name);
  int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd < 0) {
    return osError(errno, "create " + path);
  }
  ::close(fd);
  Status s = onOwnThread([&path]() -> Status {
    if (::unshare(CLONE_NEWNET) != 0) {
      return osError(errno, "unshare(CLONE_NEWNET)");
    }
    // The bind mount keeps the namespace alive after this thread is gone.
    if (::mount("/proc/thread-self/ns/net", path.c_str(), "none", MS_BIND, nullptr) != 0) {
      return osError(errno, "bind mount the new netns on " + path);
    }
    return {};
  });
  if (!s.ok()) {
    ::unlink(path.c_str());
  }
  return s;
}

Status deleteNetns(const std::string& name) {
  const std::string path = netnsPath(name);
  struct stat ns;
  if (::stat(path.c_str(), &ns) != 0) {
    return errno == ENOENT ? Status{} : osError(errno, "stat " + path);
  }
  // Its processes would keep the namespace (and their sockets) alive.
  if (DIR* proc = ::opendir("/proc")) {
    const pid_t self = ::getpid();
    while (dirent* e = ::readdir(proc)) {
      char* end = nullptr;
      long pid = std::strtol(e->d_name, &end, 10);
      if (pid <= 0 || *end != '\0' || pid == self) {
        continue;
      }
      struct stat st;
      std::string link = std::string("/proc/") + e->d_name + "/ns/net";
      if (::stat(link.c_str(), &st) == 0 && st.st_dev == ns.st_dev && st.st_ino == ns.st_ino) {
        ::kill(static_cast<pid_t>(pid), SIGKILL);
      }
    }
    ::closedir(proc);
  }
  if (::umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL) {
    return osError(errno, "umount " + path);
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return osError(errno, "unlink " + path);
  }
  return {};
}

Status sysctlIn(const std::string& netns, const std::vector<std::string>& settings) {
  NetnsFd ns;
  if (auto s = openNetns(netns, ns); !s.ok()) {
    return s;
  }
  // /proc/sys/net shows the netns of the thread that opens the file.
  return onOwnThread([&]() -> Status {
    if (::setns(ns.fd, CLONE_NEWNET) != 0) {
      return osError(errno, "setns " + netns);
    }
    for (const auto& setting : settings) {
      auto eq = setting.find('=');
      if (eq == std::string::npos) {
        return Error{EINVAL, "sysctl '" + setting + "': expected name=value"};
      }
      std::string file = "/proc/sys/" + setting.substr(0, eq);
      for (size_t i = std::strlen("/proc/sys/"); i < file.size(); ++i) {
        file[i] = file[i] == '.' ? '/' : file[i];
      }
      const std::string value = setting.substr(eq + 1);
      int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0) {
        return osError(errno, "sysctl " + setting + " in " + netns);
      }
      ssize_t n = ::write(fd, value.data(), value.size());
      int err = errno;
      ::close(fd);
      if (n != static_cast<ssize_t>(value.size())) {
        return osError(n < 0 ? err : EIO, "sysctl " + setting + " in " + netns);
      }
    }
    return {};
  });
}

void Rtnl::SockDeleter::operator()(nl_sock* sk) const {
  nl_socket_free(sk);
}

Rtnl::~Rtnl() = default;

Result<Rtnl> Rtnl::open(const std::string& netns) {
  NetnsFd ns;
  if (auto s = openNetns(netns, ns); !s.ok()) {
    return s.error();
  }
  nl_sock* sk = nl_socket_alloc();
  if (sk == nullptr) {
    return Error{ENOMEM, "nl_socket_alloc"};
  }
  std::unique_ptr<nl_sock, SockDeleter> owned(sk);
  // A socket belongs to the netns it was created in, whichever thread uses it later.
  Status s = onOwnThread([&]() -> Status {
    if (::setns(ns.fd, CLONE_NEWNET) != 0) {
      return osError(errno, "setns " + netns);
    }
    return nlStatus(nl_connect(sk, NETLINK_ROUTE), "rtnetlink socket in " + netns);
  });
  if (!s.ok()) {
    return s.error();
  }
  return Rtnl(owned.release(), netns);
}

Error Rtnl::nlError(int err, const std::string& what) const {
  return Error{nlErrno(err), what + " in " + netns_ + ": " + nl_geterror(err)};
}

Result<int> Rtnl::ifindex(const std::string& link) {
  LinkPtr l;
  int err = rtnl_link_get_kernel(sk_.get(), 0, link.c_str(), l.out());
  if (err < 0) {
    return nlError(err, "find link " + link);
  }
  return rtnl_link_get_ifindex(l.get());
}

Status Rtnl::up(const std::string& link) {
  auto index = ifindex(link);
  if (!index.ok()) {
    return index.error();
  }
  LinkPtr change(rtnl_link_alloc());
  rtnl_link_set_ifindex(change.get(), *index);
  rtnl_link_set_flags(change.get(), IFF_UP);
  // RTM_NEWLINK on an ifindex changes only the flags named in the mask.
  int err = rtnl_link_add(sk_.get(), change.get(), 0);
  return err < 0 ? Status{nlError(err, "set " + link + " up")} : Status{};
}

Status Rtnl::addBridge(const std::string& name) {
  LinkPtr br(rtnl_link_bridge_alloc());
  if (br.get() == nullptr) {
    return Error{ENOMEM, "rtnl_link_bridge_alloc"};
  }
  rtnl_link_set_name(br.get(), name.c_str());
  rtnl_link_set_flags(br.get(), IFF_UP);
  int err = rtnl_link_add(sk_.get(), br.get(), NLM_F_CREATE | NLM_F_EXCL);
  return err < 0 ? Status{nlError(err, "add bridge " + name)} : Status{};
}

Status Rtnl::addVethToNetns(const std::string& name, const std::string& master,
                            const std::string& peer, const std::string& peerNetns) {
  auto masterIndex = ifindex(master);
  if (!masterIndex.ok()) {
    return masterIndex.error();
  }
  NetnsFd ns;
  if (auto s = openNetns(peerNetns, ns); !s.ok()) {
    return s;
  }
  VethPtr veth(rtnl_link_veth_alloc());
  if (veth.get() == nullptr) {
    return Error{ENOMEM, "rtnl_link_veth_alloc"};
  }
  rtnl_link_set_name(veth.get(), name.c_str());
  rtnl_link_set_master(veth.get(), *masterIndex);
  rtnl_link_set_flags(veth.get(), IFF_UP);
  LinkPtr other(rtnl_link_veth_get_peer(veth.get())); // a reference to the pair's peer
  if (other.get() == nullptr) {
    return Error{EINVAL, "veth " + name + " has no peer"};
  }
  rtnl_link_set_name(other.get(), peer.c_str());
  rtnl_link_set_ns_fd(other.get(), ns.fd);
  int err = rtnl_link_add(sk_.get(), veth.get(), NLM_F_CREATE | NLM_F_EXCL);
  return err < 0 ? Status{nlError(err,
                                  "add veth " + name + " (peer " + peer + " in " + peerNetns + ")")}
                 : Status{};
}

Status Rtnl::addAddress(const std::string& link, const std::string& cidr) {
  auto index = ifindex(link);
  if (!index.ok()) {
    return index.error();
  }
  auto local = parseAddr(cidr, AF_UNSPEC);
  if (!local.ok()) {
    return local.error();
  }
  RtAddrPtr addr(rtnl_addr_alloc());
  rtnl_addr_set_ifindex(addr.get(), *index);
  rtnl_addr_set_family(addr.get(), nl_addr_get_family(local->get()));
  rtnl_addr_set_prefixlen(addr.get(), static_cast<int>(nl_addr_get_prefixlen(local->get())));
  if (int err = rtnl_addr_set_local(addr.get(), local->get()); err < 0) {
    return nlError(err, "address " + cidr);
  }
  if (nl_addr_get_family(local->get()) == AF_INET6) {
    // Usable at once instead of tentative while duplicate detection runs.
    rtnl_addr_set_flags(addr.get(), IFA_F_NODAD);
  }
  int err = rtnl_addr_add(sk_.get(), addr.get(), NLM_F_EXCL);
  return err < 0 ? Status{nlError(err, "add address " + cidr + " to " + link)} : Status{};
}

Status Rtnl::addDefaultRoute(const std::string& link, const std::string& gateway) {
  auto index = ifindex(link);
  if (!index.ok()) {
    return index.error();
  }
  auto gw = parseAddr(gateway, AF_UNSPEC);
  if (!gw.ok()) {
    return gw.error();
  }
  const int family = nl_addr_get_family(gw->get());
  auto dst = parseAddr("default", family);
  if (!dst.ok()) {
    return dst.error();
  }
  RoutePtr route(rtnl_route_alloc());
  rtnl_route_set_family(route.get(), static_cast<uint8_t>(family));
  rtnl_route_set_table(route.get(), RT_TABLE_MAIN);
  rtnl_route_set_scope(route.get(), RT_SCOPE_UNIVERSE);
  rtnl_route_set_type(route.get(), RTN_UNICAST);
  rtnl_route_set_protocol(route.get(), RTPROT_STATIC);
  if (int err = rtnl_route_set_dst(route.get(), dst->get()); err < 0) {
    return nlError(err, "default route");
  }
  rtnl_nexthop* nh = rtnl_route_nh_alloc(); // owned by route once added
  rtnl_route_nh_set_ifindex(nh, *index);
  rtnl_route_nh_set_gateway(nh, gw->get());
  rtnl_route_add_nexthop(route.get(), nh);
  int err = rtnl_route_add(sk_.get(), route.get(), NLM_F_EXCL);
  return err < 0 ? Status{nlError(err, "add default route via " + gateway + " dev " + link)}
                 : Status{};
}

Status Rtnl::addBlackhole(const std::string& cidr) {
  auto dst = parseAddr(cidr, AF_UNSPEC);
  if (!dst.ok()) {
    return dst.error();
  }
  RoutePtr route(rtnl_route_alloc());
  rtnl_route_set_family(route.get(), static_cast<uint8_t>(nl_addr_get_family(dst->get())));
  rtnl_route_set_table(route.get(), RT_TABLE_MAIN);
  rtnl_route_set_scope(route.get(), RT_SCOPE_UNIVERSE);
  rtnl_route_set_type(route.get(), RTN_BLACKHOLE);
  rtnl_route_set_protocol(route.get(), RTPROT_STATIC);
  if (int err = rtnl_route_set_dst(route.get(), dst->get()); err < 0) {
    return nlError(err, "blackhole " + cidr);
  }
  int err = rtnl_route_add(sk_.get(), route.get(), NLM_F_EXCL);
  return err < 0 ? Status{nlError(err, "add blackhole route " + cidr)} : Status{};
}

} // namespace veer::test
