/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Socket acceleration: when both ends of a TCP connection are on this node (a
 * client pod and veer-proxy, veer-proxy and a backend pod, two pods), what one
 * end sends is put straight into the other end's receive queue, past the TCP
 * stack, veth pairs and the bridge (the trick of Merbridge and Cilium's old
 * sockops acceleration). Opt-in: veer-agent --socket-acceleration.
 *
 * sockops: an established connection end joins veer_sockets under its own
 *          4-tuple, with a veer_accel record;
 * sk_msg:  a message on a member goes to the member under the swapped 4-tuple,
 *          or, when there is none (a remote peer, or the peer not added yet),
 *          through the TCP stack.
 *
 * Ordering: a socket's first message decides, once, between the two ways
 * (veer_accel.state), so a byte sent through TCP is never overtaken by a later
 * one delivered directly (the receiver reads its direct queue first). Only a
 * socket that sent nothing before joining can join (no TCP Fast Open data).
 *
 * Uniqueness: the 4-tuple names one connection on the node only when the
 * addresses are unique across network namespaces, which pod addresses are and
 * loopback and link-local addresses are not: those never join.
 */
#ifndef VEER_BPF_ACCEL_H
#define VEER_BPF_ACCEL_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lib/common.h"
#include "lib/maps.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

/* Set by the agent before load: 1 adds connections to veer_sockets. */
const volatile __u32 veer_accel_on = 0;

/* An address whose 4-tuple may repeat in another network namespace. */
static __always_inline int accel_shared_addr(const __be32 a[4])
{
	__u32 w0 = bpf_ntohl(a[0]);

	if (a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0xffff)) {
		__u32 v4 = bpf_ntohl(a[3]);

		return (v4 >> 24) == 127 || (v4 >> 16) == 0xa9fe; /* 127/8, 169.254/16 */
	}
	if (a[0] == 0 && a[1] == 0 && a[2] == 0 && a[3] == bpf_htonl(1))
		return 1;			/* ::1 */
	return (w0 & 0xffc00000) == 0xfe800000; /* fe80::/10 */
}

static __always_inline void accel_stats_add(__u64 sockets, __u64 redirected, __u64 bytes, __u64 tcp)
{
	__u32 zero = 0;
	struct veer_accel_stats *st = bpf_map_lookup_elem(&veer_accel_stats, &zero);

	if (!st)
		return;
	st->sockets += sockets;
	st->redirected += redirected;
	st->redirected_bytes += bytes;
	st->tcp += tcp;
}

/* The addresses of a key, IPv4-mapped for IPv4; -1 for another family. */
static __always_inline int accel_pair(struct veer_sock_pair *k, __u32 family, __be32 local4,
				      __be32 remote4, const __be32 local6[4],
				      const __be32 remote6[4])
{
	if (family == AF_INET) {
		k->local[2] = bpf_htonl(0xffff);
		k->local[3] = local4;
		k->remote[2] = bpf_htonl(0xffff);
		k->remote[3] = remote4;
		return 0;
	}
	if (family != AF_INET6)
		return -1;
	for (int i = 0; i < 4; i++) {
		k->local[i] = local6[i];
		k->remote[i] = remote6[i];
	}
	return 0;
}

/* sockops, on ACTIVE/PASSIVE_ESTABLISHED: the connection end joins veer_sockets. */
static __always_inline void accel_add(struct bpf_sock_ops *skops)
{
	struct veer_sock_pair key = {};
	struct veer_accel *acc;
	struct bpf_sock *sk;
	__u32 family = ctx_u32(skops->family);

	if (!veer_accel_on)
		return;
	/* Every address field, whatever the family: loads the compiler cannot merge
	 * across the branches below (the verifier refuses a moved ctx pointer). */
	__be32 l6[4] = {ctx_u32(skops->local_ip6[0]), ctx_u32(skops->local_ip6[1]),
			ctx_u32(skops->local_ip6[2]), ctx_u32(skops->local_ip6[3])};
	__be32 r6[4] = {ctx_u32(skops->remote_ip6[0]), ctx_u32(skops->remote_ip6[1]),
			ctx_u32(skops->remote_ip6[2]), ctx_u32(skops->remote_ip6[3])};

	if (accel_pair(&key, family, ctx_u32(skops->local_ip4), ctx_u32(skops->remote_ip4), l6, r6))
		return;
	if (accel_shared_addr(key.local) || accel_shared_addr(key.remote))
		return;
	/* Data this end already sent through the TCP stack (Fast Open) could be
	 * overtaken. What it received that way is no matter: the peer decided TCP
	 * for good when it sent it. */
	if (skops->data_segs_out != 0)
		return;
	key.local_port = ctx_u32(skops->local_port);
	key.remote_port = bpf_ntohl(ctx_u32(skops->remote_port));
	sk = skops->sk;
	if (!sk)
		return;
	acc = bpf_sk_storage_get(&veer_accel, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!acc)
		return;
	acc->state = VEER_ACCEL_UNDECIDED;
	if (bpf_sock_hash_update(skops, &veer_sockets, &key, BPF_ANY) == 0)
		accel_stats_add(1, 0, 0, 0);
}

/* sk_msg on a member of veer_sockets: straight to the peer, or through TCP. */
static __always_inline int accel_msg(struct sk_msg_md *msg)
{
	struct veer_sock_pair peer = {};
	struct veer_accel *acc;
	struct bpf_sock *sk = msg->sk;
	__u32 family = ctx_u32(msg->family);

	if (!sk)
		return SK_PASS;
	acc = bpf_sk_storage_get(&veer_accel, sk, 0, 0);
	if (!acc || acc->state == VEER_ACCEL_TCP)
		goto tcp;
	__be32 l6[4] = {ctx_u32(msg->local_ip6[0]), ctx_u32(msg->local_ip6[1]),
			ctx_u32(msg->local_ip6[2]), ctx_u32(msg->local_ip6[3])};
	__be32 r6[4] = {ctx_u32(msg->remote_ip6[0]), ctx_u32(msg->remote_ip6[1]),
			ctx_u32(msg->remote_ip6[2]), ctx_u32(msg->remote_ip6[3])};

	/* The peer's key: its local end is this socket's remote one. */
	if (accel_pair(&peer, family, ctx_u32(msg->remote_ip4), ctx_u32(msg->local_ip4), r6, l6))
		goto tcp;
	peer.local_port = bpf_ntohl(ctx_u32(msg->remote_port));
	peer.remote_port = ctx_u32(msg->local_port);
	if (bpf_msg_redirect_hash(msg, &veer_sockets, &peer, BPF_F_INGRESS) != SK_PASS) {
		/* Undecided: the peer is remote or not added yet; decide TCP for good.
		 * Redirecting: the peer left the map, closing; TCP tells the sender. */
		acc->state = VEER_ACCEL_TCP;
		goto tcp;
	}
	acc->state = VEER_ACCEL_REDIRECT;
	accel_stats_add(0, 1, msg->size, 0);
	return SK_PASS;
tcp:
	accel_stats_add(0, 0, 0, 1);
	return SK_PASS;
}

#endif /* VEER_BPF_ACCEL_H */
