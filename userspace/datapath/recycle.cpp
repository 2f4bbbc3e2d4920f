#include "datapath/recycle.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
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
#include <string>
#include <thread>

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

veer_recycle_key targetKey(const PlanBackend& b, uint8_t proto) {
  veer_recycle_key k{};
  std::memcpy(k.addr, b.addr.bytes.data(), sizeof(k.addr));
  k.port = htons(b.port);
  k.proto = proto;
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
          addTarget(out.now, targetKey(b, old.proto), 1000);
        } else if (grace) {
          addTarget(later[*grace], targetKey(b, old.proto), 1000);
        }
      }
    }
    if (now == nullptr || !grace || now->affinity) {
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
          addTarget(later[*grace], targetKey(b, old.proto), permille);
        }
      }
    }
  }
  for (auto& [g, targets] : later) {
    out.later.emplace_back(g, std::move(targets));
  }
  return out;
}

Recycler::~Recycler() {
  bpf_link__destroy(tcp_);
  bpf_link__destroy(udp_);
  veer_recycle_bpf__destroy(skel_);
}

Result<std::unique_ptr<Recycler>> Recycler::load() {
  std::unique_ptr<Recycler> r(new Recycler());
  r->skel_ = veer_recycle_bpf__open_and_load();
  if (!r->skel_) {
    return osError(errno ? errno : EINVAL,
                   "load veer_recycle (needs iter/tcp, iter/udp and the bpf_sock_destroy kfunc, "
                   "Linux >= 6.5)");
  }
  r->tcp_ = bpf_program__attach_iter(r->skel_->progs.veer_recycle_tcp, nullptr);
  r->udp_ = bpf_program__attach_iter(r->skel_->progs.veer_recycle_udp, nullptr);
  if (!r->tcp_ || !r->udp_) {
    return osError(errno ? errno : EINVAL, "attach the veer_recycle iterators");
  }
  return r;
}

Result<RecycleCount> Recycler::run(const RecycleTargets& targets) {
  const int map = bpf_map__fd(skel_->maps.veer_recycle_targets);
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
  RecycleCount count;
  const uint64_t tcp0 = skel_->bss->destroyed_tcp, udp0 = skel_->bss->destroyed_udp;
  Status status;
  // setns changes only the calling thread's namespace: a helper thread takes the tour.
  std::thread tour([&] {
    for (const std::string& path : allNetns()) {
      Fd ns(open(path.c_str(), O_RDONLY | O_CLOEXEC));
      if (!ns || setns(ns.get(), CLONE_NEWNET) != 0) {
        continue; // the process exited meanwhile
      }
      count.netns++;
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
  count.tcp = skel_->bss->destroyed_tcp - tcp0;
  count.udp = skel_->bss->destroyed_udp - udp0;
  return count;
}

} // namespace veer
