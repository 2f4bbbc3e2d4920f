#include "datapath/maps.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string_view>

namespace veer {
namespace {

int mapIndex(std::string_view name) {
  for (size_t i = 0; i < kMapNames.size(); ++i) {
    if (name == kMapNames[i]) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

/** Deletes every entry of map fd whose key has generation gen. */
template <class K> Status deleteGeneration(int fd, uint8_t gen, const char* name) {
  std::vector<K> doomed;
  K key{}, next{};
  const K* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    if (next.gen == gen) {
      doomed.push_back(next);
    }
    key = next;
    prev = &key;
  }
  for (const K& k : doomed) {
    if (bpf_map_delete_elem(fd, &k) != 0 && errno != ENOENT) {
      return osError(errno, std::string("delete from ") + name);
    }
  }
  return {};
}

/** value(v) is what the map holds for an entry's v (mapValue, or a version built from the
 * image's compact form). */
template <class K, class V, class Value>
Status writeGeneration(int fd, const std::vector<std::pair<K, V>>& entries, uint8_t gen,
                       const char* name, Value value) {
  for (const auto& [key, v] : entries) {
    K k = key;
    k.gen = gen;
    const auto& bytes = value(v);
    if (bpf_map_update_elem(fd, &k, &bytes, BPF_ANY) != 0) {
      return osError(errno, std::string("update ") + name);
    }
  }
  return {};
}

template <class K, class V>
Status writeGeneration(int fd, const std::vector<std::pair<K, V>>& entries, uint8_t gen,
                       const char* name) {
  return writeGeneration(
      fd, entries, gen, name, [](const V& v) -> const auto& { return mapValue(v); });
}

} // namespace

std::string veerPinDir(const std::string& bpffs) {
  return bpffs + "/veer";
}
std::string mapPinDir(const std::string& bpffs) {
  return veerPinDir(bpffs) + "/maps";
}
std::string linkPinDir(const std::string& bpffs) {
  return veerPinDir(bpffs) + "/links";
}

Result<PinnedMaps> PinnedMaps::open(const std::string& bpffs) {
  PinnedMaps maps;
  for (const char* name : kMapNames) {
    const std::string path = mapPinDir(bpffs) + "/" + name;
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0) {
      return osError(errno, "open pinned map " + path + " (is veer-agent running?)");
    }
    maps.fds_.emplace_back(fd);
  }
  return maps;
}

PinnedMaps PinnedMaps::fromFds(std::vector<int> fds) {
  PinnedMaps maps;
  for (int fd : fds) {
    maps.fds_.emplace_back(fcntl(fd, F_DUPFD_CLOEXEC, 0));
  }
  return maps;
}

int PinnedMaps::fd(const char* name) const {
  int i = mapIndex(name);
  return i < 0 ? -1 : fds_[i].get();
}

Result<veer_state> PinnedMaps::state() const {
  veer_state st{};
  uint32_t zero = 0;
  if (bpf_map_lookup_elem(fd("veer_state"), &zero, &st) != 0) {
    return osError(errno, "read veer_state");
  }
  return st;
}

Status PinnedMaps::apply(const MapImage& image) {
  Result<veer_state> live = state();
  if (!live) {
    return live.error();
  }
  const uint8_t target = (live->gen & 1) ^ 1;

  // The target generation was live two applies ago; no reader can still hold it.
  if (Status s = deleteGeneration<veer_svc_key>(fd("veer_svc"), target, "veer_svc"); !s) {
    return s;
  }
  for (const char* name : {"veer_version", "veer_maglev", "veer_stats"}) {
    if (Status s = deleteGeneration<veer_version_key>(fd(name), target, name); !s) {
      return s;
    }
  }
  if (Status s = deleteGeneration<veer_backend_key>(fd("veer_backend"), target, "veer_backend");
      !s) {
    return s;
  }
  if (Status s = deleteGeneration<veer_member_key>(fd("veer_member"), target, "veer_member"); !s) {
    return s;
  }
  if (Status s = deleteGeneration<veer_lane_key>(fd("veer_lane_of"), target, "veer_lane_of"); !s) {
    return s;
  }

  if (Status s = writeGeneration(fd("veer_backend"), image.backends, target, "veer_backend"); !s) {
    return s;
  }
  if (Status s = writeGeneration(fd("veer_maglev"), image.rings, target, "veer_maglev"); !s) {
    return s;
  }
  if (Status s = writeGeneration(fd("veer_member"), image.members, target, "veer_member"); !s) {
    return s;
  }
  if (Status s = writeGeneration(fd("veer_lane_of"), image.lanes, target, "veer_lane_of"); !s) {
    return s;
  }
  if (Status s = writeGeneration(fd("veer_version"), image.versions, target, "veer_version",
                                 [&](const ImageVersion& v) { return image.versionValue(v); });
      !s) {
    return s;
  }
  const int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) {
    return osError(-ncpus, "count possible CPUs");
  }
  std::vector<veer_stats> zeros(ncpus);
  for (auto [k, v] : image.versions) {
    k.gen = target;
    if (bpf_map_update_elem(fd("veer_stats"), &k, zeros.data(), BPF_ANY) != 0) {
      return osError(errno, "update veer_stats");
    }
  }
  if (Status s = writeGeneration(fd("veer_svc"), image.services, target, "veer_svc"); !s) {
    return s;
  }

  veer_state next = *live;
  next.gen = target;
  next.applied = live->applied + 1;
  next.digest = image.digest();
  uint32_t zero = 0;
  if (bpf_map_update_elem(fd("veer_state"), &zero, &next, BPF_ANY) != 0) {
    return osError(errno, "flip veer_state generation");
  }
  return {};
}

Status PinnedMaps::countRejected() {
  Result<veer_state> st = state();
  if (!st) {
    return st.error();
  }
  st->rejected++;
  uint32_t zero = 0;
  if (bpf_map_update_elem(fd("veer_state"), &zero, &*st, BPF_ANY) != 0) {
    return osError(errno, "update veer_state");
  }
  return {};
}

Result<veer_proxy> PinnedMaps::proxy() const {
  veer_proxy px{};
  uint32_t zero = 0;
  if (bpf_map_lookup_elem(fd("veer_proxy"), &zero, &px) != 0) {
    return osError(errno, "read veer_proxy");
  }
  // What proxy_backend() in bpf/lib/proxy.h decides, per family.
  if ((px.listen4.family && !proxyListening(VEER_PROXY_LISTENER_V4)) ||
      (px.listen6.family && !proxyListening(VEER_PROXY_LISTENER_V6))) {
    px.ready = 0;
  }
  return px;
}

bool PinnedMaps::proxyListening(uint32_t slot) const {
  uint64_t cookie = 0; // a sockmap answers userspace with the socket's cookie
  return bpf_map_lookup_elem(fd("veer_proxy_listeners"), &slot, &cookie) == 0;
}

Status PinnedMaps::setProxyListener(uint32_t slot, int sockFd) {
  const uint64_t value = static_cast<uint64_t>(sockFd);
  if (bpf_map_update_elem(fd("veer_proxy_listeners"), &slot, &value, BPF_ANY) != 0) {
    return osError(errno, "put veer-proxy's listener in veer_proxy_listeners");
  }
  return {};
}

Status PinnedMaps::clearProxyListeners() {
  for (uint32_t slot = 0; slot < VEER_PROXY_LISTENERS; ++slot) {
    // A sockmap says EINVAL for a slot that is already empty (slots are in range here).
    if (bpf_map_delete_elem(fd("veer_proxy_listeners"), &slot) != 0 && errno != EINVAL) {
      return osError(errno, "clear veer_proxy_listeners");
    }
  }
  return {};
}

Status PinnedMaps::setProxy(const veer_proxy& proxy) {
  uint32_t zero = 0;
  if (bpf_map_update_elem(fd("veer_proxy"), &zero, &proxy, BPF_ANY) != 0) {
    return osError(errno, "update veer_proxy");
  }
  return {};
}

Result<LiveState> PinnedMaps::live() const {
  LiveState out;
  Result<veer_state> st = state();
  if (!st) {
    return st.error();
  }
  out.state = *st;
  Result<veer_proxy> px = proxy();
  if (!px) {
    return px.error();
  }
  out.proxy = *px;
  const uint8_t gen = st->gen & 1;
  const int ncpus = libbpf_num_possible_cpus();
  std::vector<veer_stats> percpu(std::max(ncpus, 1));
  std::vector<veer_accel_stats> accel(percpu.size());
  uint32_t zero = 0;
  if (bpf_map_lookup_elem(fd("veer_accel_stats"), &zero, accel.data()) != 0) {
    return osError(errno, "read veer_accel_stats");
  }
  for (const veer_accel_stats& a : accel) {
    out.accel.sockets += a.sockets;
    out.accel.redirected += a.redirected;
    out.accel.redirected_bytes += a.redirected_bytes;
    out.accel.tcp += a.tcp;
  }

  veer_svc_key key{}, next{};
  const veer_svc_key* prev = nullptr;
  while (bpf_map_get_next_key(fd("veer_svc"), prev, &next) == 0) {
    key = next;
    prev = &key;
    if (key.gen != gen) {
      continue;
    }
    LiveService ls;
    ls.key = key;
    if (bpf_map_lookup_elem(fd("veer_svc"), &key, &ls.svc) != 0) {
      continue; // deleted under us
    }
    for (uint32_t i = 0; i < ls.svc.n_versions && i < VEER_MAX_VERSIONS; ++i) {
      LiveService::Version v;
      v.id = ls.svc.version_id[i];
      veer_version_key vkey{};
      vkey.id = v.id;
      vkey.gen = gen;
      if (bpf_map_lookup_elem(fd("veer_version"), &vkey, &v.ver) != 0) {
        return osError(errno, "read veer_version " + std::to_string(v.id));
      }
      if (bpf_map_lookup_elem(fd("veer_stats"), &vkey, percpu.data()) == 0) {
        for (const veer_stats& s : percpu) {
          v.stats.connects += s.connects;
          v.stats.noBackend += s.no_backend;
        }
      }
      for (uint32_t b = 0; b < v.ver.n_backends && b < VEER_MAX_BACKENDS_PER_VERSION; ++b) {
        const uint32_t id = v.ver.backend_id[b];
        veer_backend_key bkey{};
        bkey.id = id;
        bkey.gen = gen;
        veer_backend be{};
        if (bpf_map_lookup_elem(fd("veer_backend"), &bkey, &be) == 0) {
          v.backends.push_back(be);
        }
      }
      ls.versions.push_back(std::move(v));
    }
    out.services.push_back(std::move(ls));
  }
  std::sort(out.services.begin(), out.services.end(),
            [](const LiveService& a, const LiveService& b) { return a.svc.svc_id < b.svc.svc_id; });
  return out;
}

} // namespace veer
