#include "datapath/recycle.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <tuple>
#include <map>
#include <optional>
#include <string>
#include <thread>

#include "datapath/datapath.h"
#include "datapath/maps.h"
#include "veer_recycle.skel.h"

namespace veer {
namespace {

/** One /proc/<pid>/ns/net path per distinct network namespace. */
std::vector<std::string> allNetns() {
  namespace fs = std::filesystem;
  std::map<std::pair<dev_t, ino_t>, std::string> seen;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    const std::string ns = e.path().string() + "/ns/net";
    struct stat st {};
    if (stat(ns.c_str(), &st) == 0) {
      seen.emplace(std::make_pair(st.st_dev, st.st_ino), ns);
    }
  }
  std::vector<std::string> out;
  for (auto& [id, path] : seen) {
    out.push_back(std::move(path));
  }
  return out;
}

/** Runs an iterator link to its end in the calling thread's netns. */
Status drain(bpf_link* link) {
  Fd it(bpf_iter_create(bpf_link__fd(link)));
  if (!it) {
    return osError(errno, "bpf_iter_create");
  }
  char buf[4096];
  ssize_t r;
  while ((r = read(it.get(), buf, sizeof(buf))) > 0 || (r < 0 && errno == EINTR)) {
  }
  return r < 0 ? osError(errno, "read iterator") : Status{};
}

/** A target of a kind other than VEER_RECYCLE_PEER: the service's sockets. */
veer_recycle_key serviceKey(const PlanService& svc, uint8_t kind) {
  veer_recycle_key k{};
  std::memcpy(k.addr, svc.addr.bytes.data(), sizeof(k.addr));
  k.port = htons(svc.port);
  k.proto = svc.proto;
  k.kind = kind;
  return k;
}

/** A VEER_RECYCLE_PEER target: the service's sockets sent to backend b. */
veer_recycle_key peerKey(const PlanService& svc, const PlanBackend& b) {
  veer_recycle_key k = serviceKey(svc, VEER_RECYCLE_PEER);
  std::memcpy(k.backend, b.addr.bytes.data(), sizeof(k.backend));
  k.backend_port = htons(b.port);
  return k;
}

/** Adds or raises a target. */
void addTarget(RecycleTargets& out, const veer_recycle_key& k, uint32_t permille) {
  for (auto& [key, v] : out) {
    if (std::memcmp(&key, &k, sizeof(k)) == 0) {
      v.permille = std::max(v.permille, permille);
      return;
    }
  }
  out.emplace_back(k, veer_recycle{permille});
}

using ServiceKey = std::tuple<IpAddr, uint16_t, uint8_t>;

/** The weights by subset: what an affine client's version follows, besides its lane. */
std::map<std::string, uint32_t> weightsBySubset(const PlanService& s) {
  std::map<std::string, uint32_t> w;
  for (const PlanVersion& v : s.versions) {
    w[v.subset] = v.weight;
  }
  return w;
}

/** One sock_diag request (dump or destroy) on a NETLINK_SOCK_DIAG socket. */
struct DiagRequest {
  nlmsghdr nlh;
  inet_diag_req_v2 req;
};

/**
 * A dump request that also asks for each socket's veer_sock_nat
 * (INET_DIAG_REQ_SK_BPF_STORAGES, Linux >= 5.2): the translation tells which
 * service a socket was sent to a backend for, which its peer alone does not.
 */
struct DiagDumpRequest {
  DiagRequest base;
  nlattr storages; // INET_DIAG_REQ_SK_BPF_STORAGES, nested
  nlattr mapFd;    // SK_DIAG_BPF_STORAGE_REQ_MAP_FD
  uint32_t fd;
};

/** TCP_ESTABLISHED (include/net/tcp_states.h), as sock_diag reports idiag_state. */
constexpr uint8_t kTcpEstablished = 1;

/** A request of type with flags for the sockets of family and proto, in any state. */
DiagRequest diagRequest(uint16_t type, uint16_t flags, uint8_t family, uint8_t proto) {
  DiagRequest r{};
  r.nlh.nlmsg_len = sizeof(r);
  r.nlh.nlmsg_type = type;
  r.nlh.nlmsg_flags = flags;
  r.req.sdiag_family = family;
  r.req.sdiag_protocol = proto;
  r.req.idiag_states = ~0u;
  return r;
}

const veer_recycle* findTarget(const RecycleTargets& targets, const veer_recycle_key& key) {
  for (const auto& [k, v] : targets) {
    if (std::memcmp(&k, &key, sizeof(key)) == 0) {
      return &v;
    }
  }
  return nullptr;
}

/**
 * Whether the targets pick a socket with this translation and cookie: what
 * recycle_picks() in bpf/veer_recycle.bpf.c decides, but for
 * VEER_RECYCLE_AFFINITY (a dump shows no netns or cgroup; the agent drops those).
 */
bool netlinkPicks(const RecycleTargets& targets, const veer_sock_nat& nat, uint8_t proto,
                  uint8_t state, uint64_t cookie) {
  if (nat.flags & VEER_NAT_F_PROXY) {
    return false;
  }
  veer_recycle_key key{};
  std::memcpy(key.addr, nat.service, sizeof(key.addr));
  key.port = nat.service_port;
  key.proto = proto;
  if ((nat.flags & VEER_NAT_F_FALLBACK) && (proto != IPPROTO_TCP || state == kTcpEstablished)) {
    key.kind = VEER_RECYCLE_FALLBACK;
    if (findTarget(targets, key) != nullptr) {
      return true;
    }
  }
  key.kind = VEER_RECYCLE_PEER;
  std::memcpy(key.backend, nat.backend, sizeof(key.backend));
  key.backend_port = nat.backend_port;
  const veer_recycle* t = findTarget(targets, key);
  return t != nullptr && recyclePicks(cookie, t->permille);
}

/**
 * For a dumped UDP socket, whose translation the dump cannot carry (udp_diag puts
 * no socket storage in its answers): whether a VEER_RECYCLE_PEER target names its
 * peer, whatever service. So with netlink, UDP recycling is scoped by backend only.
 */
bool netlinkPicksUdpPeer(const RecycleTargets& targets, const inet_diag_sockid& id, uint8_t family,
                         uint64_t cookie) {
  __be32 peer[4] = {};
  if (family == AF_INET) {
    peer[2] = htonl(0xffff);
    peer[3] = id.idiag_dst[0];
  } else {
    std::memcpy(peer, id.idiag_dst, sizeof(peer));
  }
  for (const auto& [k, v] : targets) {
    if (k.kind == VEER_RECYCLE_PEER && k.proto == IPPROTO_UDP && k.backend_port == id.idiag_dport &&
        std::memcmp(k.backend, peer, sizeof(peer)) == 0 && recyclePicks(cookie, v.permille)) {
      return true;
    }
  }
  return false;
}

/** The veer_sock_nat of a dumped socket, from its INET_DIAG_SK_BPF_STORAGES attribute. */
std::optional<veer_sock_nat> dumpedNat(const nlmsghdr* h) {
  const auto* msg = reinterpret_cast<const inet_diag_msg*>(NLMSG_DATA(h));
  const char* at = reinterpret_cast<const char*>(msg) + NLA_ALIGN(sizeof(*msg));
  const char* end = reinterpret_cast<const char*>(h) + h->nlmsg_len;
  // Walks nested attributes: the storages, then the one storage, then its value.
  const int path[] = {INET_DIAG_SK_BPF_STORAGES, SK_DIAG_BPF_STORAGE,
                      SK_DIAG_BPF_STORAGE_MAP_VALUE};
  size_t depth = 0;
  while (at + sizeof(nlattr) <= end) {
    const auto* a = reinterpret_cast<const nlattr*>(at);
    if (a->nla_len < sizeof(nlattr) || at + a->nla_len > end) {
      return std::nullopt;
    }
    if ((a->nla_type & NLA_TYPE_MASK) != path[depth]) {
      at += NLA_ALIGN(a->nla_len);
      continue;
    }
    if (depth + 1 == std::size(path)) {
      if (a->nla_len - NLA_HDRLEN != sizeof(veer_sock_nat)) {
        return std::nullopt;
      }
      veer_sock_nat nat{};
      std::memcpy(&nat, at + NLA_HDRLEN, sizeof(nat));
      return nat;
    }
    end = at + a->nla_len;
    at += NLA_HDRLEN;
    depth++;
  }
  return std::nullopt;
}

/**
 * Asks the kernel to destroy the socket id names (cookie included: the very socket
 * dumped, not a reused tuple). 0 when it did, else the errno of the answer.
 */
int sockDestroy(int nl, uint8_t family, uint8_t proto, const inet_diag_sockid& id) {
  DiagRequest kill = diagRequest(SOCK_DESTROY, NLM_F_REQUEST | NLM_F_ACK, family, proto);
  kill.req.id = id;
  if (send(nl, &kill, sizeof(kill), 0) < 0) {
    return errno;
  }
  alignas(nlmsghdr) char buf[1024];
  ssize_t n = recv(nl, buf, sizeof(buf), 0);
  if (n < 0) {
    return errno;
  }
  const auto* h = reinterpret_cast<nlmsghdr*>(buf);
  if (!NLMSG_OK(h, n) || h->nlmsg_type != NLMSG_ERROR) {
    return EPROTO;
  }
  return -reinterpret_cast<nlmsgerr*>(NLMSG_DATA(h))->error;
}

/**
 * Dumps the sockets of one family and protocol in the calling thread's netns, each
 * with its veer_sock_nat (natMap), and destroys those the targets pick. Returns how
 * many were destroyed.
 */
Result<uint64_t> diagDestroy(const RecycleTargets& targets, int natMap, uint8_t family,
                             uint8_t proto) {
  Fd nl(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (!nl) {
    return osError(errno, "socket NETLINK_SOCK_DIAG");
  }
  DiagDumpRequest dump{};
  dump.base = diagRequest(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, family, proto);
  dump.base.nlh.nlmsg_len = sizeof(dump);
  dump.storages.nla_len = sizeof(dump) - offsetof(DiagDumpRequest, storages);
  dump.storages.nla_type = NLA_F_NESTED | INET_DIAG_REQ_SK_BPF_STORAGES;
  dump.mapFd.nla_len = NLA_HDRLEN + sizeof(dump.fd);
  dump.mapFd.nla_type = SK_DIAG_BPF_STORAGE_REQ_MAP_FD;
  dump.fd = static_cast<uint32_t>(natMap);
  static_assert(sizeof(DiagDumpRequest) == sizeof(DiagRequest) + 2 * NLA_HDRLEN + 4);
  if (send(nl.get(), &dump, sizeof(dump), 0) < 0) {
    return osError(errno, "sock_diag dump");
  }
  std::vector<inet_diag_sockid> doomed;
  alignas(nlmsghdr) char buf[32768];
  for (bool done = false; !done;) {
    ssize_t n = recv(nl.get(), buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return osError(errno, "sock_diag dump");
    }
    if (n == 0) {
      break;
    }
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type == NLMSG_DONE) {
        done = true;
        break;
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        const int err = -reinterpret_cast<nlmsgerr*>(NLMSG_DATA(h))->error;
        return osError(err, "sock_diag dump (tcp_diag/udp_diag modules?)");
      }
      const auto* msg = reinterpret_cast<const inet_diag_msg*>(NLMSG_DATA(h));
      const std::optional<veer_sock_nat> nat = dumpedNat(h);
      uint64_t cookie = 0;
      std::memcpy(&cookie, msg->id.idiag_cookie, sizeof(cookie));
      if (nat ? netlinkPicks(targets, *nat, proto, msg->idiag_state, cookie)
              : proto == IPPROTO_UDP && netlinkPicksUdpPeer(targets, msg->id, family, cookie)) {
        doomed.push_back(msg->id);
      }
    }
  }
  uint64_t destroyed = 0;
  for (const inet_diag_sockid& id : doomed) {
    const int err = sockDestroy(nl.get(), family, proto, id);
    if (err == 0) {
      destroyed++;
    } else if (err != ENOENT) { // ENOENT: closed meanwhile
      return osError(err, "SOCK_DESTROY (CONFIG_INET_DIAG_DESTROY?)");
    }
  }
  return destroyed;
}

} // namespace

RecyclePlan planRecycling(const Plan& before, const Plan& after) {
  RecyclePlan out;
  std::map<ServiceKey, const PlanService*> next;
  for (const PlanService& ps : after.services) {
    next[{ps.addr, ps.port, ps.proto}] = &ps;
  }
  std::map<uint32_t, RecycleTargets> later;
  for (const PlanService& old : before.services) {
    auto it = next.find({old.addr, old.port, old.proto});
    const PlanService* now = it == next.end() ? nullptr : it->second;
    std::set<PlanBackend> kept;
    if (now != nullptr) {
      for (const PlanVersion& v : now->versions) {
        kept.insert(v.backends.begin(), v.backends.end());
      }
    }
    const std::optional<uint32_t> grace = now != nullptr ? now->recycleGrace : old.recycleGrace;
    for (const PlanVersion& v : old.versions) {
      for (const PlanBackend& b : v.backends) {
        if (kept.count(b)) {
          continue;
        }
        if (old.proto == IPPROTO_UDP) {
          addTarget(out.now, peerKey(old, b), 1000);
        } else if (grace) {
          addTarget(later[*grace], peerKey(old, b), 1000);
        }
      }
    }
    if (now == nullptr || !grace) {
      continue;
    }
    if (now->affinity) {
      // A client may be sent to another version: the weights moved, a lane
      // changed its subset, or a pod joined or left a lane.
      if (weightsBySubset(old) != weightsBySubset(*now) || old.lanes != now->lanes ||
          (!now->lanes.empty() && before.laneClients != after.laneClients)) {
        addTarget(later[*grace], serviceKey(*now, VEER_RECYCLE_AFFINITY), 1000);
        out.byClient.push_back(now->id());
      }
      continue;
    }
    for (const PlanVersion& v : old.versions) {
      uint32_t w = 0;
      for (const PlanVersion& nv : now->versions) {
        if (nv.subset == v.subset) {
          w = nv.weight;
        }
      }
      if (v.weight == 0 || w >= v.weight) {
        continue;
      }
      const uint32_t permille = (v.weight - w) * 1000u / v.weight;
      for (const PlanBackend& b : v.backends) {
        if (kept.count(b)) {
          addTarget(later[*grace], peerKey(old, b), permille);
        }
      }
    }
  }
  for (auto& [g, targets] : later) {
    out.later.emplace_back(g, std::move(targets));
  }
  return out;
}

RecycleTargets proxyFallbackTargets(const LiveState& live) {
  RecycleTargets out;
  for (const LiveService& ls : live.services) {
    if ((ls.svc.flags & VEER_SVC_F_L7) && ls.key.proto == IPPROTO_TCP) {
      veer_recycle_key k{};
      std::memcpy(k.addr, ls.key.addr, sizeof(k.addr));
      k.port = ls.key.port;
      k.proto = ls.key.proto;
      k.kind = VEER_RECYCLE_FALLBACK;
      out.emplace_back(k, veer_recycle{1000});
    }
  }
  return out;
}

Recycler::~Recycler() {
  bpf_link__destroy(tcp_);
  bpf_link__destroy(udp_);
  veer_recycle_bpf__destroy(skel_);
}

Result<std::unique_ptr<Recycler>> Recycler::load(const std::string& bpffs) {
  return kernelHasSockDestroyKfunc() ? loadIterator(bpffs) : loadNetlink(bpffs);
}

const char* Recycler::modeName() const {
  return mode_ == Mode::kIterator ? "bpf_sock_destroy iterators" : "netlink SOCK_DESTROY";
}

Result<std::unique_ptr<Recycler>> Recycler::load(Mode mode, const std::string& bpffs) {
  if (mode == Mode::kNetlink) {
    return loadNetlink(bpffs);
  }
  if (!kernelHasSockDestroyKfunc()) {
    return Error{EOPNOTSUPP, "no bpf_sock_destroy kfunc in this kernel (Linux >= 6.5)"};
  }
  return loadIterator(bpffs);
}

Result<std::unique_ptr<Recycler>> Recycler::loadNetlink(const std::string& bpffs) {
  std::unique_ptr<Recycler> r(new Recycler());
  r->mode_ = Mode::kNetlink;
  const std::string natPin = mapPinDir(bpffs) + "/veer_sock_nat";
  r->natMap_ = Fd(bpf_obj_get(natPin.c_str()));
  if (!r->natMap_) {
    return osError(errno, "open pinned map " + natPin + " (Datapath::load first)");
  }
  // Probe: the dumps (with socket storage) must work, and destroying a socket that
  // does not exist says whether the kernel can destroy at all.
  RecycleTargets none;
  for (uint8_t proto : {uint8_t(IPPROTO_TCP), uint8_t(IPPROTO_UDP)}) {
    Result<uint64_t> n = diagDestroy(none, r->natMap_.get(), AF_INET, proto);
    if (!n) {
      return n.error();
    }
  }
  Fd nl(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (!nl) {
    return osError(errno, "socket NETLINK_SOCK_DIAG");
  }
  if (int err = sockDestroy(nl.get(), AF_INET, IPPROTO_UDP, inet_diag_sockid{}); err != ENOENT) {
    // EOPNOTSUPP: no CONFIG_INET_DIAG_DESTROY
    return osError(err, "netlink SOCK_DESTROY (needs CONFIG_INET_DIAG_DESTROY)");
  }
  return r;
}

Result<std::unique_ptr<Recycler>> Recycler::loadIterator(const std::string& bpffs) {
  std::unique_ptr<Recycler> r(new Recycler());
  r->mode_ = Mode::kIterator;
  // The datapath's maps (service, member, lane and socket storage) are reused
  // from their pins: the iterators judge sockets by the live config.
  const std::string pinRoot = mapPinDir(bpffs);
  LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pinRoot.c_str());
  r->skel_ = veer_recycle_bpf__open_opts(&opts);
  if (!r->skel_) {
    return osError(errno ? errno : EINVAL, "open veer_recycle (iter/tcp, iter/udp)");
  }
  Result<uint64_t> hostNetns = ownNetnsCookie();
  if (!hostNetns) {
    return hostNetns.error();
  }
  r->skel_->rodata->veer_host_netns_cookie = *hostNetns; // as veer_sock has it
  if (int err = veer_recycle_bpf__load(r->skel_); err) {
    return osError(err < 0 ? -err : EINVAL,
                   "load veer_recycle (iter/tcp, iter/udp) over the maps in " + pinRoot);
  }
  r->tcp_ = bpf_program__attach_iter(r->skel_->progs.veer_recycle_tcp, nullptr);
  r->udp_ = bpf_program__attach_iter(r->skel_->progs.veer_recycle_udp, nullptr);
  if (!r->tcp_ || !r->udp_) {
    return osError(errno ? errno : EINVAL, "attach the veer_recycle iterators");
  }
  return r;
}

Status Recycler::runNetlink(const RecycleTargets& targets, RecycleCount& count) {
  for (uint8_t proto : {uint8_t(IPPROTO_TCP), uint8_t(IPPROTO_UDP)}) {
    for (uint8_t family : {uint8_t(AF_INET), uint8_t(AF_INET6)}) {
      Result<uint64_t> n = diagDestroy(targets, natMap_.get(), family, proto);
      if (!n) {
        return n.error();
      }
      (proto == IPPROTO_TCP ? count.tcp : count.udp) += *n;
    }
  }
  return {};
}

Result<RecycleCount> Recycler::run(const RecycleTargets& targets) {
  RecycleCount count;
  uint64_t tcp0 = 0, udp0 = 0;
  if (mode_ == Mode::kIterator) {
    const int map = bpf_map__fd(skel_->maps.veer_recycle_targets_v2);
    veer_recycle_key key{}, next{};
    std::vector<veer_recycle_key> old;
    const veer_recycle_key* prev = nullptr;
    while (bpf_map_get_next_key(map, prev, &next) == 0) {
      old.push_back(next);
      key = next;
      prev = &key;
    }
    for (const veer_recycle_key& k : old) {
      bpf_map_delete_elem(map, &k);
    }
    for (const auto& [k, v] : targets) {
      if (bpf_map_update_elem(map, &k, &v, BPF_ANY) != 0) {
        return osError(errno, "update veer_recycle_targets");
      }
    }
    tcp0 = skel_->bss->destroyed_tcp;
    udp0 = skel_->bss->destroyed_udp;
  }
  Status status;
  // setns changes only the calling thread's namespace: a helper thread takes the tour.
  std::thread tour([&] {
    for (const std::string& path : allNetns()) {
      Fd ns(open(path.c_str(), O_RDONLY | O_CLOEXEC));
      if (!ns || setns(ns.get(), CLONE_NEWNET) != 0) {
        continue; // the process exited meanwhile
      }
      count.netns++;
      if (mode_ == Mode::kNetlink) {
        if (Status s = runNetlink(targets, count); !s) {
          status = s;
          return;
        }
        continue;
      }
      for (bpf_link* link : {tcp_, udp_}) {
        if (Status s = drain(link); !s) {
          status = s;
          return;
        }
      }
    }
  });
  tour.join();
  if (!status) {
    return status.error();
  }
  if (mode_ == Mode::kIterator) {
    count.tcp = skel_->bss->destroyed_tcp - tcp0;
    count.udp = skel_->bss->destroyed_udp - udp0;
  }
  return count;
}

} // namespace veer
