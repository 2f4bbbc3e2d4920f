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

/*
 * lane_of_client() - the lane of the connecting process: its own cgroup's,
 * else the nearest listed ancestor's (a pod's containers sit in child cgroups
 * of the pod cgroup the agent lists). 0 = no lane.
 */
static __always_inline __u32 lane_of_client(__u8 gen)
{
	struct veer_lane_key key = {};
	const struct veer_lane *lane;
	__u64 leaf;
	int level;

	key.gen = gen;
	leaf = bpf_get_current_cgroup_id();
	key.cgroup_id = leaf;
	lane = bpf_map_lookup_elem(&veer_lane_of, &key);
	if (lane)
		return lane->id;
	/* Root (level 0) is never a pod; walk down to the leaf's parent. */
	for (level = VEER_LANE_MAX_DEPTH - 1; level >= 1; level--) {
		key.cgroup_id = bpf_get_current_ancestor_cgroup_id(level);
		if (!key.cgroup_id || key.cgroup_id == leaf)
			continue; /* deeper than the leaf, or the leaf itself */
		lane = bpf_map_lookup_elem(&veer_lane_of, &key);
		if (lane)
			return lane->id;
	}
	return 0;
}

/* The version index lanes choose for this client, VEER_NO_VERSION if none. */
static __always_inline __u8 lane_version(const struct veer_service *svc, __u8 gen)
{
	__u32 lane = lane_of_client(gen);

	if (!lane || lane >= VEER_MAX_LANES)
		return VEER_NO_VERSION;
	return svc->lane_version[lane];
}

#endif /* VEER_BPF_LANE_H */
