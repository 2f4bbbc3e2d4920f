// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Socket recycling: iter/tcp and iter/udp programs that destroy the sockets of
 * the iterated network namespace that veer_recycle_targets_v2 names
 * (Istio #13908: keep-alive clients that never re-balance; Cilium #25169: UDP
 * sockets stuck on a removed backend). The agent runs them once per netns (an
 * iterator sees the netns it was created in). Every target names the service a
 * socket was translated from (its veer_sock_nat), so a socket veer did not
 * translate, or translated for another service, is never hit. Three kinds:
 *  - a backend of a service (VEER_RECYCLE_PEER): a stable share of the
 *    service's sockets sent to it;
 *  - an affinity service (VEER_RECYCLE_AFFINITY): its sockets whose client's
 *    hash picks another version now. The client is computed as the connect
 *    hook did (lib/affinity.h), from the socket's netns and cgroup, against the
 *    live generation of the datapath's maps (reused from their pins);
 *  - an L7 service (VEER_RECYCLE_FALLBACK): its sockets that took the kernel
 *    path while veer-proxy was not serving.
 *
 * bpf_sock_destroy is a kfunc of Linux >= 6.5; this object is separate from
 * veer_sock so that nothing else depends on it.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

#include "lib/maps.h"
#include "lib/affinity.h"
#include "lib/lane.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The kernel types used, CO-RE relocated against the running kernel's BTF. */
struct bpf_iter_meta {
	void *seq;
} __attribute__((preserve_access_index));

struct net {
	__u64 net_cookie;
} __attribute__((preserve_access_index));

typedef struct {
	struct net *net;
} possible_net_t;

struct sock_common {
	unsigned char skc_state;
	possible_net_t skc_net;
} __attribute__((preserve_access_index));

#define TCP_ESTABLISHED 1 /* include/net/tcp_states.h */

struct kernfs_node {
	__u64 id;
} __attribute__((preserve_access_index));

struct cgroup {
	int level;
	struct kernfs_node *kn;
	struct cgroup *ancestors[0]; /* Linux >= 6.0; [level] is the cgroup itself */
} __attribute__((preserve_access_index));

struct sock_cgroup_data {
	struct cgroup *cgroup; /* the cgroup v2 of the socket's creator */
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
	struct sock_cgroup_data sk_cgrp_data;
} __attribute__((preserve_access_index));

struct udp_sock;

struct bpf_iter__tcp {
	struct bpf_iter_meta *meta;
	struct sock_common *sk_common;
} __attribute__((preserve_access_index));

struct bpf_iter__udp {
	struct bpf_iter_meta *meta;
	struct udp_sock *udp_sk;
} __attribute__((preserve_access_index));

/* Weak: the object loads on kernels without it (the agent then uses netlink
 * SOCK_DESTROY), and the call below is dead code the verifier drops. */
extern int bpf_sock_destroy(struct sock_common *sk) __ksym __weak;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, VEER_RECYCLE_TARGETS);
	__type(key, struct veer_recycle_key);
	__type(value, struct veer_recycle);
} veer_recycle_targets_v2 SEC(".maps");

/* Sockets destroyed since load, by protocol (read by the agent). */
__u64 destroyed_tcp = 0;
__u64 destroyed_udp = 0;

/* A cgroup's ancestor at a level, as bpf_get_current_ancestor_cgroup_id()
 * answers for the current task's. */
static __always_inline __u64 sock_cgroup_ancestor(void *src, int level)
{
	struct cgroup *cgrp = src;

	if (level > BPF_CORE_READ(cgrp, level))
		return 0;
	return BPF_CORE_READ(cgrp, ancestors[level], kn, id);
}

/*
 * affinity_moved() - whether the affine client of this socket would now be
 * sent to a version its backend is not in: the version choice of lb_select()
 * (lanes first, then the client's slot) against the live generation.
 */
static __always_inline int affinity_moved(struct sock *sk, const struct veer_sock_nat *nat,
					  __u8 proto)
{
	struct veer_member_key mkey = {};
	struct veer_svc_key skey = {};
	const struct veer_service *svc;
	const struct veer_state *state;
	struct cgroup *cgrp;
	__u64 netns, cgroup_id;
	__u32 zero = 0;
	__u8 idx = VEER_NO_VERSION;

	state = bpf_map_lookup_elem(&veer_state, &zero);
	if (!state)
		return 0;
	__builtin_memcpy(skey.addr, nat->service, sizeof(skey.addr));
	skey.port = nat->service_port;
	skey.proto = proto;
	skey.gen = state->gen & 1;
	svc = bpf_map_lookup_elem(&veer_svc, &skey);
	if (!svc || !(svc->flags & VEER_SVC_F_AFFINITY))
		return 0;
	cgrp = BPF_CORE_READ(sk, sk_cgrp_data.cgroup);
	cgroup_id = BPF_CORE_READ(cgrp, kn, id);
	if (svc->flags & VEER_SVC_F_LANES)
		idx = lane_version(svc,
				   lane_of_cgroup(skey.gen, cgroup_id, sock_cgroup_ancestor, cgrp));
	if (idx == VEER_NO_VERSION) {
		netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, net_cookie);
		idx = slot_version(svc, affinity_slot(affinity_client(netns, cgroup_id)));
	}
	if (idx >= VEER_MAX_VERSIONS)
		return 0; /* no version at all: nowhere better to go */
	mkey.version_id = svc->version_id[idx];
	mkey.gen = skey.gen;
	mkey.port = nat->backend_port;
	__builtin_memcpy(mkey.addr, nat->backend, sizeof(mkey.addr));
	return !bpf_map_lookup_elem(&veer_member, &mkey);
}

/* Whether a target picks this socket. sk is NULL for a TCP socket that is not
 * a full socket (request, time-wait): no storage, so not one veer translated. */
static __always_inline int recycle_picks(struct sock_common *skc, struct sock *sk, __u8 proto)
{
	struct veer_recycle_key key = {};
	const struct veer_sock_nat *nat;
	const struct veer_recycle *target;
	__u64 cookie;

	if (!sk)
		return 0;
	nat = bpf_sk_storage_get(&veer_sock_nat, sk, 0, 0);
	if (!nat || (nat->flags & VEER_NAT_F_PROXY))
		return 0;
	__builtin_memcpy(key.addr, nat->service, sizeof(key.addr));
	key.port = nat->service_port;
	key.proto = proto;
	/* Established only: destroying a connection still being set up would
	 * fail the client's connect() itself. */
	if ((nat->flags & VEER_NAT_F_FALLBACK) &&
	    (proto != IPPROTO_TCP || skc->skc_state == TCP_ESTABLISHED)) {
		key.kind = VEER_RECYCLE_FALLBACK;
		if (bpf_map_lookup_elem(&veer_recycle_targets_v2, &key))
			return 1;
	}
	key.kind = VEER_RECYCLE_AFFINITY;
	if (bpf_map_lookup_elem(&veer_recycle_targets_v2, &key) && affinity_moved(sk, nat, proto))
		return 1;
	key.kind = VEER_RECYCLE_PEER;
	__builtin_memcpy(key.backend, nat->backend, sizeof(key.backend));
	key.backend_port = nat->backend_port;
	target = bpf_map_lookup_elem(&veer_recycle_targets_v2, &key);
	if (!target)
		return 0;
	/* A fraction of the sockets: the same ones however often the agent runs
	 * (and the same ones the netlink path picks: see recyclePicks()). */
	cookie = bpf_get_socket_cookie(skc);
	return (cookie * 0x9e3779b97f4a7c15ULL >> 32) % 1000 < target->permille;
}

static __always_inline int recycle(struct sock_common *skc, struct sock *sk, __u8 proto)
{
	if (!bpf_sock_destroy)
		return 0;
	if (!recycle_picks(skc, sk, proto) || bpf_sock_destroy(skc))
		return 0;
	if (proto == IPPROTO_TCP)
		__sync_fetch_and_add(&destroyed_tcp, 1);
	else
		__sync_fetch_and_add(&destroyed_udp, 1);
	return 0;
}

SEC("iter/tcp")
int veer_recycle_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;

	if (!skc)
		return 0;
	return recycle(skc, (struct sock *)bpf_skc_to_tcp_sock(skc), IPPROTO_TCP);
}

SEC("iter/udp")
int veer_recycle_udp(struct bpf_iter__udp *ctx)
{
	struct sock *sk = (struct sock *)ctx->udp_sk;

	if (!sk)
		return 0;
	return recycle(&sk->__sk_common, sk, IPPROTO_UDP);
}
