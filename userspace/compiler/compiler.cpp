#include "compiler/compiler.h"

#include <netinet/in.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <map>
#include <string>

#include "compiler/maglev.h"

namespace veer {
namespace {

void copyName(char* dst, size_t len, std::string_view src) {
  std::memset(dst, 0, len);
  std::memcpy(dst, src.data(), std::min(src.size(), len - 1));
}

void copyAddr(__be32 dst[4], const IpAddr& a) {
  std::memcpy(dst, a.bytes.data(), 16);
}

template <class K, class V>
uint64_t hashEntries(uint64_t h, const std::vector<std::pair<K, V>>& entries) {
  for (const auto& [k, v] : entries) {
    h = fnv1a64(&k, sizeof(k), h);
    h = fnv1a64(&mapValue(v), sizeof(mapValue(v)), h);
  }
  return h;
}

} // namespace

veer_version MapImage::versionValue(const ImageVersion& v) const {
  veer_version out{};
  out.svc_id = v.svcId;
  out.n_backends = v.nBackends;
  out.weight = v.weight;
  std::copy_n(versionBackends.begin() + v.firstBackend, v.nBackends, out.backend_id);
  copyName(out.service, sizeof(out.service), v.service);
  copyName(out.subset, sizeof(out.subset), v.subset);
  return out;
}

uint64_t MapImage::digest() const {
  uint64_t h = 0xcbf29ce484222325ULL;
  h = hashEntries(h, services);
  for (const auto& [k, v] : versions) { // what versionValue() writes, without building it
    h = fnv1a64(&k, sizeof(k), h);
    for (uint32_t n : {v.svcId, uint32_t(v.nBackends), uint32_t(v.weight)}) {
      h = fnv1a64(&n, sizeof(n), h);
    }
    h = fnv1a64(versionBackends.data() + v.firstBackend, v.nBackends * sizeof(uint32_t), h);
    for (const Str* s : {&v.service, &v.subset}) {
      h = fnv1a64(s->data(), s->size(), h);
      h = fnv1a64("", 1, h); // field separator
    }
  }
  h = hashEntries(h, rings);
  h = hashEntries(h, backends);
  h = hashEntries(h, members);
  for (const auto& [client, id] : laneClients) {
    for (const Str* f : {&client.ns, &client.name, &client.uid, &client.lane}) {
      h = fnv1a64(f->data(), f->size(), h);
      h = fnv1a64("", 1, h); // field separator
    }
    h = fnv1a64(&id, sizeof(id), h);
  }
  return h;
}

std::vector<uint8_t> weightSlots(const std::vector<uint8_t>& weights) {
  std::vector<uint8_t> slots(VEER_WEIGHT_SLOTS, VEER_NO_VERSION);
  int total = 0;
  for (uint8_t w : weights) {
    total += w;
  }
  if (total == 0) {
    return slots;
  }
  std::vector<int> current(weights.size(), 0);
  for (int s = 0; s < VEER_WEIGHT_SLOTS; ++s) {
    size_t best = 0;
    for (size_t i = 0; i < weights.size(); ++i) {
      current[i] += weights[i];
      if (current[i] > current[best]) {
        best = i;
      }
    }
    current[best] -= total;
    slots[s] = static_cast<uint8_t>(best);
  }
  return slots;
}

std::vector<uint8_t> cumulativeSlots(const std::vector<uint8_t>& weights,
                                     const std::vector<size_t>& order) {
  std::vector<uint8_t> slots(VEER_WEIGHT_SLOTS, VEER_NO_VERSION);
  size_t next = 0;
  for (size_t i : order) {
    for (int n = 0; n < weights[i] && next < slots.size(); ++n) {
      slots[next++] = static_cast<uint8_t>(i);
    }
  }
  return slots;
}

CompileResult compile(const Plan& plan, MaglevCache* maglev) {
  MaglevCache local;
  MaglevCache& cache = maglev != nullptr ? *maglev : local;
  std::vector<std::vector<std::string>> ringNames; // backends of img.rings[i]'s version
  CompileResult out;
  MapImage& img = out.image;
  uint32_t versionId = 0;

  // Lane ids: every lane value a pod carries or a service routes, in name order.
  std::map<std::string, uint32_t> laneIds;
  for (const PlanLaneClient& c : plan.laneClients) {
    laneIds.emplace(c.lane, 0);
  }
  for (const PlanService& ps : plan.services) {
    for (const PlanLane& l : ps.lanes) {
      laneIds.emplace(l.value, 0);
    }
  }
  if (laneIds.size() >= VEER_MAX_LANES) {
    out.errors.push_back("too many lanes: " + std::to_string(laneIds.size()) + " (limit " +
                         std::to_string(VEER_MAX_LANES - 1) + ")");
    return out;
  }
  uint32_t nextLane = 1;
  for (auto& [value, id] : laneIds) {
    id = nextLane++;
  }
  for (const PlanLaneClient& c : plan.laneClients) {
    img.laneClients.emplace_back(c, laneIds[c.lane]);
  }

  if (plan.services.size() > VEER_MAX_SERVICES) {
    out.errors.push_back("too many service ports: " + std::to_string(plan.services.size()) +
                         " (limit " + std::to_string(VEER_MAX_SERVICES) + ")");
    return out;
  }
  // Sized up front: growing the vectors by doubling would hold the old and the new copy.
  size_t versions = 0, rings = 0, versionBackends = 0;
  for (const PlanService& ps : plan.services) {
    versions += ps.versions.size();
    for (const PlanVersion& pv : ps.versions) {
      rings += pv.backends.size() > 1;
      versionBackends += pv.backends.size();
    }
  }
  img.services.reserve(plan.services.size());
  img.versions.reserve(versions);
  img.versionBackends.reserve(versionBackends);
  img.members.reserve(versionBackends);
  img.backends.reserve(versionBackends); // at most; backends shared by versions count once
  // Backend ids in first-use order: an open-addressing index into img.backends, with room
  // for every backend of every version (a std::map node each held 2 MB at 10k services).
  std::vector<uint32_t> backendSlots(std::bit_ceil(versionBackends * 2 + 2), 0); // id + 1
  auto backendId = [&](const veer_backend& be) {
    const size_t mask = backendSlots.size() - 1;
    for (size_t i = fnv1a64(&be, sizeof(be)) & mask;; i = (i + 1) & mask) {
      if (backendSlots[i] == 0) {
        const auto id = static_cast<uint32_t>(img.backends.size());
        veer_backend_key bkey{};
        bkey.id = id;
        img.backends.emplace_back(bkey, be);
        backendSlots[i] = id + 1;
        return id;
      }
      if (std::memcmp(&img.backends[backendSlots[i] - 1].second, &be, sizeof(be)) == 0) {
        return backendSlots[i] - 1;
      }
    }
  };
  img.rings.reserve(rings);
  for (uint32_t svcId = 0; svcId < plan.services.size(); ++svcId) {
    const PlanService& ps = plan.services[svcId];
    if (ps.versions.size() > VEER_MAX_VERSIONS) {
      out.errors.push_back(ps.id() + ": " + std::to_string(ps.versions.size()) +
                           " versions (limit " + std::to_string(VEER_MAX_VERSIONS) + ")");
      continue;
    }
    veer_svc_key key{};
    copyAddr(key.addr, ps.addr);
    key.port = htons(ps.port);
    key.proto = ps.proto;
    veer_service svc{};
    svc.svc_id = svcId;
    const Str serviceName = ps.id();
    svc.n_versions = static_cast<uint8_t>(ps.versions.size());

    std::vector<uint8_t> weights;
    std::map<std::string, uint8_t> versionIndex; // subset -> index in version_id
    for (const PlanVersion& pv : ps.versions) {
      if (pv.backends.size() > VEER_MAX_BACKENDS_PER_VERSION) {
        out.errors.push_back(ps.id() + " version " + versionName(pv) + ": " +
                             std::to_string(pv.backends.size()) + " endpoints (limit " +
                             std::to_string(VEER_MAX_BACKENDS_PER_VERSION) + ")");
        continue;
      }
      const uint32_t vid = versionId++;
      versionIndex[pv.subset] = static_cast<uint8_t>(weights.size());
      svc.version_id[weights.size()] = vid;
      weights.push_back(pv.weight);

      veer_version_key vkey{};
      vkey.id = vid;
      ImageVersion ver;
      ver.svcId = svcId;
      ver.nBackends = static_cast<uint16_t>(pv.backends.size());
      ver.weight = pv.weight;
      ver.firstBackend = static_cast<uint32_t>(img.versionBackends.size());
      ver.service = serviceName;
      ver.subset = versionName(pv);
      img.versions.emplace_back(vkey, std::move(ver));

      for (size_t b = 0; b < pv.backends.size(); ++b) {
        const PlanBackend& pb = pv.backends[b];
        veer_backend be{};
        copyAddr(be.addr, pb.addr);
        be.port = htons(pb.port);
        be.family = pb.addr.v4 ? VEER_FAMILY_V4 : VEER_FAMILY_V6;
        img.versionBackends.push_back(backendId(be));
        veer_member_key mkey{};
        mkey.version_id = vid;
        mkey.port = htons(pb.port);
        copyAddr(mkey.addr, pb.addr);
        img.members.emplace_back(mkey, be);
      }
      if (pv.backends.size() < 2) {
        continue; // nothing to choose: no ring
      }
      std::vector<std::string> names; // the ring's input, in backend_id order
      for (const PlanBackend& pb : pv.backends) {
        names.push_back(pb.addr.str() + ":" + std::to_string(pb.port));
      }
      ringNames.push_back(std::move(names)); // computed together below
      img.rings.emplace_back(vkey, nullptr);
    }
    std::vector<uint8_t> slots;
    if (ps.affinity) {
      // Subset-name order, not route order: reordering a route list must not
      // reshuffle every client.
      std::vector<size_t> order(weights.size());
      for (size_t i = 0; i < order.size(); ++i) {
        order[i] = i;
      }
      std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        return versionName(ps.versions[a]) < versionName(ps.versions[b]);
      });
      slots = cumulativeSlots(weights, order);
      svc.flags |= VEER_SVC_F_AFFINITY;
      svc.affinity_timeout = ps.affinityTimeout;
    } else {
      slots = weightSlots(weights);
    }
    if (ps.path == PlanPath::kL7 && ps.proto == IPPROTO_TCP) {
      svc.flags |= VEER_SVC_F_L7; // to veer-proxy while it is ready; the slots above meanwhile
    }
    std::memcpy(svc.slot, slots.data(), VEER_WEIGHT_SLOTS);
    std::memset(svc.lane_version, VEER_NO_VERSION, sizeof(svc.lane_version));
    for (const PlanLane& l : ps.lanes) {
      if (auto it = versionIndex.find(l.subset); it != versionIndex.end()) {
        svc.lane_version[laneIds[l.value]] = it->second;
        svc.flags |= VEER_SVC_F_LANES;
      }
    }
    svc.n_versions = static_cast<uint8_t>(weights.size());
    img.services.emplace_back(key, svc);
  }
  if (img.backends.size() > VEER_MAX_BACKENDS) {
    out.errors.push_back("too many backends: " + std::to_string(img.backends.size()));
  }
  if (versionId > VEER_MAX_VERSION_IDS) {
    out.errors.push_back("too many versions: " + std::to_string(versionId));
  }
  std::vector<std::shared_ptr<const veer_maglev_ring>> made = cache.rings(ringNames);
  for (size_t i = 0; i < made.size(); ++i) {
    img.rings[i].second = std::move(made[i]);
  }
  cache.sweep();
  return out;
}

} // namespace veer
