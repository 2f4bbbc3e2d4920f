/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Service lookup, weighted version choice and Maglev backend choice. */
#ifndef VEER_BPF_LB_H
#define VEER_BPF_LB_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <linux/in.h>

#include "lib/maps.h"
#include "lib/common.h"
#include "lib/proxy.h"
#include "lib/affinity.h"
#include "lib/lane.h"

/* Session-affinity identity of the connecting client: its pod (netns), or
 * its cgroup in the node's netns. */
static __always_inline __u64 lb_client_key(struct bpf_sock_addr *ctx)
{
	__u64 netns = bpf_get_netns_cookie(ctx);

	return affinity_client(netns,
			       affinity_in_node_netns(netns) ? bpf_get_current_cgroup_id() : 0);
}

static __always_inline void lb_count(const struct veer_version_key *vkey, int no_backend)
{
	struct veer_stats *st = bpf_map_lookup_elem(&veer_stats, vkey);

	if (!st)
		return;
	if (no_backend)
		st->no_backend++;
	else
		st->connects++;
}

/*
 * lb_select() - pick the backend for a connection to a service address.
 * @ctx: the hook's context; its socket cookie is the hash input inside the
 *       version, fetched only for services (it makes the kernel assign one).
 * @key: service key with addr/port/proto set; gen is filled in here.
 * @cookie: out, the socket cookie when a backend is returned.
 * @nat_flags: out, VEER_NAT_F_PROXY when the backend is veer-proxy,
 *             VEER_NAT_F_FALLBACK when an L7 service took the kernel path
 *             because the proxy was not serving.
 *
 * Returns the backend, or NULL with *refuse set when the service is known but
 * has no backend for the chosen version (the caller fails the connect), or
 * NULL with *refuse clear when the address is not a service.
 */
static __always_inline const struct veer_backend *lb_select(struct bpf_sock_addr *ctx,
							    struct veer_svc_key *key, __u64 *cookie,
							    __u32 *nat_flags, int *refuse)
{
	struct veer_version_key vkey = {};
	const struct veer_service *svc;
	const struct veer_version *ver;
	const struct veer_maglev_ring *ring;
	struct veer_backend_key bkey = {};
	struct veer_affinity_key akey = {};
	const struct veer_backend *be;
	struct veer_state *state;
	struct veer_rr *rr;
	__u32 zero = 0, slot, idx;
	__u64 seq, client = 0;
	int affinity;

	*refuse = 0;
	state = bpf_map_lookup_elem(&veer_state, &zero);
	if (!state)
		return NULL;
	key->gen = state->gen & 1;
	svc = bpf_map_lookup_elem(&veer_svc, key);
	if (!svc)
		return NULL;
	if (svc->flags & VEER_SVC_F_L7) {
		int fallback;
		const struct veer_backend *px = proxy_backend(ctx, key, &fallback);

		if (px) {
			*nat_flags = VEER_NAT_F_PROXY;
			return px;
		}
		if (fallback)
			*nat_flags = VEER_NAT_F_FALLBACK;
	}

	*refuse = 1;
	affinity = svc->flags & VEER_SVC_F_AFFINITY;
	if (affinity)
		client = lb_client_key(ctx);
	idx = VEER_NO_VERSION;
	if (svc->flags & VEER_SVC_F_LANES)
		idx = lane_version(svc, lane_of_client(key->gen)); /* whatever the weights */
	if (idx == VEER_NO_VERSION) {
		if (affinity) {
			slot = affinity_slot(client);
		} else {
			rr = bpf_map_lookup_elem(&veer_rr, &svc->svc_id);
			if (!rr)
				return NULL;
			seq = __sync_fetch_and_add(&rr->next, 1);
			slot = seq % VEER_WEIGHT_SLOTS;
		}
		idx = slot_version(svc, slot);
	}
	if (idx >= VEER_MAX_VERSIONS)
		return NULL;

	vkey.id = svc->version_id[idx];
	vkey.gen = key->gen;
	ver = bpf_map_lookup_elem(&veer_version, &vkey);
	if (!ver)
		return NULL;
	if (!ver->n_backends) {
		lb_count(&vkey, 1);
		return NULL;
	}
	*cookie = bpf_get_socket_cookie(ctx);
	if (affinity && svc->affinity_timeout) {
		affinity_key(&akey, client, key);
		be = affinity_lookup(&akey, &vkey, svc->affinity_timeout);
		if (be) {
			lb_count(&vkey, 0);
			return be;
		}
	}
	if (ver->n_backends == 1) {
		idx = 0; /* nothing to choose: no ring */
	} else {
		ring = bpf_map_lookup_elem(&veer_maglev, &vkey);
		if (!ring)
			return NULL;
		/* Under affinity the client's key also picks its backend, so it
		 * stays there while the ring does; otherwise each connection spreads. */
		slot = (affinity ? client >> 17 : lb_mix64(*cookie)) % VEER_MAGLEV_SIZE;
		lb_barrier_var(slot);
		if (slot >= VEER_MAGLEV_SIZE)
			return NULL;
		idx = ring->backend_index[slot];
	}
	if (idx >= VEER_MAX_BACKENDS_PER_VERSION)
		return NULL;
	bkey.id = ver->backend_id[idx];
	bkey.gen = key->gen;
	be = bpf_map_lookup_elem(&veer_backend, &bkey);
	if (!be)
		return NULL;
	if (affinity && svc->affinity_timeout)
		affinity_store(&akey, be);
	lb_count(&vkey, 0);
	return be;
}

/* Remember which service a connected socket's backend stands for (getpeername, recvmsg). */
static __always_inline void lb_remember_sock(struct bpf_sock *sk, const struct veer_backend *be,
					     const struct veer_svc_key *svc, __u32 flags)
{
	struct veer_sock_nat *nat;

	if (!sk)
		return;
	nat = bpf_sk_storage_get(&veer_sock_nat, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!nat)
		return;
	__builtin_memcpy(nat->backend, be->addr, sizeof(nat->backend));
	__builtin_memcpy(nat->service, svc->addr, sizeof(nat->service));
	nat->backend_port = be->port;
	nat->service_port = svc->port;
	nat->flags = flags;
}

/* Remember a datagram's backend for an unconnected UDP socket, which may talk
 * to many services and backends at once. */
static __always_inline void lb_remember_dgram(__u64 cookie, const struct veer_backend *be,
					      const struct veer_svc_key *svc)
{
	struct veer_revnat_key rkey = {};
	struct veer_revnat rval = {};

	rkey.cookie = cookie;
	__builtin_memcpy(rkey.addr, be->addr, sizeof(rkey.addr));
	rkey.port = be->port;
	__builtin_memcpy(rval.addr, svc->addr, sizeof(rval.addr));
	rval.port = svc->port;
	bpf_map_update_elem(&veer_revnat, &rkey, &rval, BPF_ANY);
}

/*
 * lb_reverse() - the service address a backend address stands for on this
 * socket: the socket's own translation first, then the datagram table.
 * Returns 1 and fills addr/port when found.
 */
static __always_inline int lb_reverse(struct bpf_sock_addr *ctx, __be32 addr[4], __be16 *port)
{
	const struct veer_sock_nat *nat = NULL;
	struct veer_revnat_key rkey = {};
	const struct veer_revnat *rev;

	if (ctx->sk)
		nat = bpf_sk_storage_get(&veer_sock_nat, ctx->sk, 0, 0);
	if (nat && nat->backend_port == *port && nat->backend[0] == addr[0] &&
	    nat->backend[1] == addr[1] && nat->backend[2] == addr[2] &&
	    nat->backend[3] == addr[3]) {
		__builtin_memcpy(addr, nat->service, sizeof(nat->service));
		*port = nat->service_port;
		return 1;
	}
	if (ctx->protocol != IPPROTO_UDP)
		return 0;
	rkey.cookie = bpf_get_socket_cookie(ctx);
	__builtin_memcpy(rkey.addr, addr, sizeof(rkey.addr));
	rkey.port = *port;
	rev = bpf_map_lookup_elem(&veer_revnat, &rkey);
	if (!rev)
		return 0;
	__builtin_memcpy(addr, rev->addr, sizeof(rev->addr));
	*port = rev->port;
	return 1;
}

#endif /* VEER_BPF_LB_H */
