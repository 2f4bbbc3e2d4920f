/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Lanes (full-link gray without a proxy): the agent writes the cgroup of every
 * pod whose lane label (ASM_TRAFFIC_TAG) is set into veer_lane_of; a service
 * with lanes sends such a client to the version its lane maps to.
 */
#ifndef VEER_BPF_LANE_H
#define VEER_BPF_LANE_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "lib/maps.h"

/* The id of the cgroup at this level on the path to the client's cgroup, 0
 * when the client's cgroup is shallower. */
typedef __u64 (*lane_ancestor_fn)(void *src, int level);

/*
 * lane_of_cgroup() - the lane of the client in cgroup leaf: its own cgroup's,
 * else the nearest listed ancestor's (a pod's containers sit in child cgroups
 * of the pod cgroup the agent lists). 0 = no lane. ancestor(src, level) walks
 * up: the connect hooks read the current task's cgroups, the recycling
 * iterators a socket's; both inline it, so there is no indirect call.
 */
static __always_inline __u32 lane_of_cgroup(__u8 gen, __u64 leaf, lane_ancestor_fn ancestor,
					    void *src)
{
	struct veer_lane_key key = {};
	const struct veer_lane *lane;
	int level;

	key.gen = gen;
	key.cgroup_id = leaf;
	lane = bpf_map_lookup_elem(&veer_lane_of, &key);
	if (lane)
		return lane->id;
	/* Root (level 0) is never a pod; walk down to the leaf's parent. */
	for (level = VEER_LANE_MAX_DEPTH - 1; level >= 1; level--) {
		key.cgroup_id = ancestor(src, level);
		if (!key.cgroup_id || key.cgroup_id == leaf)
			continue; /* deeper than the leaf, or the leaf itself */
		lane = bpf_map_lookup_elem(&veer_lane_of, &key);
		if (lane)
			return lane->id;
	}
	return 0;
}

static __always_inline __u64 lane_current_ancestor(void *src, int level)
{
	return bpf_get_current_ancestor_cgroup_id(level);
}

/* The lane of the connecting process. */
static __always_inline __u32 lane_of_client(__u8 gen)
{
	return lane_of_cgroup(gen, bpf_get_current_cgroup_id(), lane_current_ancestor, NULL);
}

/* The version index a client in this lane gets, VEER_NO_VERSION if the
 * weights decide (no lane, or the lane names no version of this service). */
static __always_inline __u8 lane_version(const struct veer_service *svc, __u32 lane)
{
	if (!lane || lane >= VEER_MAX_LANES)
		return VEER_NO_VERSION;
	return svc->lane_version[lane];
}

#endif /* VEER_BPF_LANE_H */
