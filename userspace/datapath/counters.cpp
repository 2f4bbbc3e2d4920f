#include "datapath/counters.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cstring>
#include <vector>

namespace veer {

ConnectionLabels connectionLabels(const veer_version& v) {
  return serviceLabels(std::string_view(v.service, strnlen(v.service, sizeof(v.service))),
                       std::string_view(v.subset, strnlen(v.subset, sizeof(v.subset))));
}

Status ConnectionCounters::addGeneration(uint8_t gen,
                                         std::map<ConnectionLabels, ConnectionTotals>& out) const {
  const int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) {
    return osError(-ncpus, "count possible CPUs");
  }
  std::vector<veer_stats> percpu(ncpus);
  veer_version_key key{}, next{};
  const veer_version_key* prev = nullptr;
  while (bpf_map_get_next_key(maps_.fd("veer_version"), prev, &next) == 0) {
    key = next;
    prev = &key;
    if (key.gen != gen) {
      continue;
    }
    veer_version v{};
    if (bpf_map_lookup_elem(maps_.fd("veer_version"), &key, &v) != 0 ||
        bpf_map_lookup_elem(maps_.fd("veer_stats"), &key, percpu.data()) != 0) {
      continue; // deleted under us: an apply is replacing this generation
    }
    ConnectionTotals& t = out[connectionLabels(v)];
    for (const veer_stats& s : percpu) {
      t.opened += s.connects;
      t.refused += s.no_backend;
    }
  }
  return {};
}

Status ConnectionCounters::retireInactive() {
  Result<veer_state> st = maps_.state();
  if (!st) {
    return st.error();
  }
  const uint8_t inactive = (st->gen & 1) ^ 1;
  std::lock_guard lock(mu_);
  if (folded_ == inactive) {
    return {}; // folded already, and an apply since failed before the flip
  }
  std::map<ConnectionLabels, ConnectionTotals> counts;
  if (Status s = addGeneration(inactive, counts); !s) {
    return s;
  }
  for (const auto& [labels, t] : counts) {
    retired_[labels].opened += t.opened;
    retired_[labels].refused += t.refused;
  }
  folded_ = inactive;
  return {};
}

Result<std::map<ConnectionLabels, ConnectionTotals>> ConnectionCounters::read() const {
  Result<veer_state> st = maps_.state();
  if (!st) {
    return st.error();
  }
  const uint8_t live = st->gen & 1;
  std::lock_guard lock(mu_);
  std::map<ConnectionLabels, ConnectionTotals> out = retired_;
  for (uint8_t gen : {uint8_t{0}, uint8_t{1}}) {
    // The folded generation counts again once it is live with fresh entries.
    if (folded_ == gen && gen != live) {
      continue;
    }
    if (Status s = addGeneration(gen, out); !s) {
      return s.error();
    }
  }
  return out;
}

} // namespace veer
