/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Affinity pins: an LRU of (client, service) -> backend that keeps an affine
 * client on its exact backend across Maglev rebuilds (a backend added to its
 * version would otherwise take ~1/(N+1) of the clients) for as long as that
 * backend is in the version the client's hash picks, until the client has been
 * idle for the service's timeout.
 */
#ifndef VEER_BPF_AFFINITY_H
#define VEER_BPF_AFFINITY_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "lib/maps.h"
#include "lib/common.h"

#define AFFINITY_NSEC_PER_SEC 1000000000ULL

/* Network namespace cookie of the node (host network), set by the agent
 * before load: processes there share one netns, so their cgroup tells them
 * apart instead. */
const volatile __u64 veer_host_netns_cookie = 0;

static __always_inline int affinity_in_node_netns(__u64 netns_cookie)
{
	return netns_cookie == veer_host_netns_cookie;
}

/*
 * affinity_client() - the session-affinity key of a client: a hash of its
 * pod's netns cookie, or of its cgroup id (cgroup_id, read by the caller only
 * when affinity_in_node_netns()) for a process in the node's netns. The
 * connect hooks compute it from the connecting task, the recycling iterators
 * from the socket; both must agree, so this is the one definition.
 */
static __always_inline __u64 affinity_client(__u64 netns_cookie, __u64 cgroup_id)
{
	if (affinity_in_node_netns(netns_cookie))
		return lb_mix64(cgroup_id ^ 0x9e3779b97f4a7c15ULL);
	return lb_mix64(netns_cookie);
}

/* The weight slot of an affine client: the slot table is laid out
 * cumulatively for affinity services, so this is its point on the weights. */
static __always_inline __u32 affinity_slot(__u64 client)
{
	return client % VEER_WEIGHT_SLOTS;
}

/* The version index a weight slot (an affine client's, or the round robin's)
 * names; VEER_NO_VERSION when out of range, a check the verifier needs. */
static __always_inline __u8 slot_version(const struct veer_service *svc, __u32 slot)
{
	lb_barrier_var(slot);
	if (slot >= VEER_WEIGHT_SLOTS)
		return VEER_NO_VERSION;
	return svc->slot[slot];
}

static __always_inline void affinity_key(struct veer_affinity_key *akey, __u64 client,
					 const struct veer_svc_key *svc)
{
	akey->client = client;
	__builtin_memcpy(akey->addr, svc->addr, sizeof(akey->addr));
	akey->port = svc->port;
	akey->proto = svc->proto;
}

/*
 * affinity_lookup() - the backend the client is pinned to, when the pin is
 * younger than timeout_s and its backend is still in version vkey.
 * Refreshes the pin's time (at most once a second: one write per client and
 * second, not per connection).
 */
static __always_inline const struct veer_backend *
affinity_lookup(const struct veer_affinity_key *akey, const struct veer_version_key *vkey,
		__u32 timeout_s)
{
	struct veer_member_key mkey = {};
	const struct veer_backend *be;
	struct veer_affinity *pin;
	__u64 now;

	pin = bpf_map_lookup_elem(&veer_affinity, akey);
	if (!pin)
		return NULL;
	now = bpf_ktime_get_coarse_ns();
	if (now - pin->last_used_ns > (__u64)timeout_s * AFFINITY_NSEC_PER_SEC)
		return NULL; /* expired: the caller re-picks and overwrites */
	mkey.version_id = vkey->id;
	mkey.gen = vkey->gen;
	mkey.port = pin->backend_port;
	__builtin_memcpy(mkey.addr, pin->backend, sizeof(mkey.addr));
	be = bpf_map_lookup_elem(&veer_member, &mkey);
	if (!be)
		return NULL; /* backend gone or not in this version any more */
	if (now - pin->last_used_ns >= AFFINITY_NSEC_PER_SEC)
		pin->last_used_ns = now;
	return be;
}

static __always_inline void affinity_store(const struct veer_affinity_key *akey,
					   const struct veer_backend *be)
{
	struct veer_affinity pin = {};

	pin.last_used_ns = bpf_ktime_get_coarse_ns();
	__builtin_memcpy(pin.backend, be->addr, sizeof(pin.backend));
	pin.backend_port = be->port;
	bpf_map_update_elem(&veer_affinity, akey, &pin, BPF_ANY);
}

#endif /* VEER_BPF_AFFINITY_H */
